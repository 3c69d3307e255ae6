//! Surveys and churn reasons on SQLite, PostgreSQL and Citus (`test_both!`): invitations by hand
//! and by trigger (each once, whatever runs the scheduler), answers through single-use links,
//! complaints from unhappy answers, results (NPS, CSAT, keywords) on known data, the answers in
//! the analysis input, and churn reasons by segment.

use chrono::{Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Asia::Shanghai;
use patron_analytics::AnalyticsConfig;
use patron_store::customers::NewCustomer;
use patron_store::events::EventFilter;
use patron_store::orders::NewOrder;
use patron_store::service::churn::ChurnReasonInput;
use patron_store::service::reports::{parse_month, Period};
use patron_store::surveys::answers::AnswerValue;
use patron_store::surveys::{AnswerInput, InvitationRequest, NewSurvey, Question, Trigger};
use patron_store::testing::TestDb;
use patron_store::tickets::{NewTicket, TicketFilter, TicketSort, Transition};
use patron_store::users::{Actor, Role};
use patron_store::{test_both, Clock, Store, StoreError};
use serde_json::json;

fn admin() -> Actor {
    Actor::cli()
}

/// A customer with an e-mail address (where their invitations go).
async fn customer(s: &Store, name: &str) -> i64 {
    let email: String = name.bytes().map(|b| format!("{b:02x}")).collect();
    let c = NewCustomer { name: name.into(), email: Some(format!("{email}@example.com")), ..Default::default() };
    s.create_customer(&admin(), c).await.expect("customer").id
}

const PUBLIC_URL: &str = "https://crm.example.com";

/// The survey invitations in the outbox as a sender claims them: (customer, survey name, the
/// link's token, the text). Checks that the token is nowhere in the database.
async fn received(s: &Store) -> Vec<(i64, String, String, String)> {
    let (batch, _) = s.claim_due_messages(1000, Duration::minutes(5), PUBLIC_URL).await.unwrap();
    let mut out = Vec::new();
    for m in batch {
        let prefix = format!("{PUBLIC_URL}/p/s/");
        let Some(at) = m.content.text.find(&prefix) else { continue };
        let token: String = m.content.text[at + prefix.len()..].chars().take_while(|c| c.is_ascii_hexdigit()).collect();
        assert_eq!(token.len(), 64, "{}", m.content.text);
        let (stored,): (i64,) =
            s.db.reader()
                .fetch_one(
                    patron_store::db::query(
                        "SELECT COUNT(*) FROM outbox WHERE CAST(content AS TEXT) LIKE $1 OR CAST(links AS TEXT) LIKE $1 OR token_hash = $2",
                    )
                    .bind(format!("%{token}%"))
                    .bind(token.clone()),
                )
                .await
                .unwrap();
        assert_eq!(stored, 0, "the link's token is stored only as a digest");
        out.push((m.customer_id, m.content.subject.clone().unwrap_or_default(), token, m.content.text.clone()));
    }
    out
}

fn survey(kind: &str, trigger: Option<Trigger>) -> NewSurvey {
    NewSurvey {
        name: format!("{kind} 调查"),
        kind: kind.into(),
        questions: None,
        ask_switch: false,
        trigger,
        recontact_days: None,
        expires_days: 14,
    }
}

fn answers(pairs: &[(&str, serde_json::Value)]) -> AnswerInput {
    AnswerInput { answers: pairs.iter().map(|(q, v)| AnswerValue { question: (*q).into(), value: v.clone() }).collect() }
}

fn field_of(e: StoreError) -> Option<String> {
    match e {
        StoreError::Invalid { field, .. } => field,
        other => panic!("expected an invalid value, got {other:?}"),
    }
}

fn whole_year() -> Period {
    Period::days(&Shanghai, NaiveDate::from_ymd_opt(2020, 1, 1).unwrap(), NaiveDate::from_ymd_opt(2030, 12, 31).unwrap()).unwrap()
}

test_both!(an_nps_survey_from_invitation_to_results, |db: TestDb| async move {
    let s = &db.store;
    let a = admin();
    let mut new = survey("nps", None);
    new.ask_switch = true;
    let sv = s.create_survey(&a, new).await.unwrap();
    let keys: Vec<&str> = sv.questions.iter().map(|q| q.key.as_str()).collect();
    assert_eq!(keys, ["nps", "why", "switch_2pct"]);
    let ids = [customer(s, "王小明").await, customer(s, "李雪梅").await, customer(s, "张伟").await];

    // Invitations: one per customer, unknown ids reported, not twice within the re-contact limit.
    let out =
        s.invite(&a, sv.id, InvitationRequest { customer_ids: Some(vec![ids[0], ids[1], ids[2], 999_999]), segment: None }).await.unwrap();
    assert_eq!(out.invited.len(), 3);
    assert_eq!(out.skipped.len(), 1);
    assert_eq!((out.skipped[0].customer_id, out.skipped[0].reason.as_str()), (999_999, "unknown_customer"));
    let again = s.invite(&a, sv.id, InvitationRequest { customer_ids: Some(vec![ids[0]]), segment: None }).await.unwrap();
    assert_eq!((again.invited.len(), again.skipped[0].reason.as_str()), (0, "recently_invited"));
    let token = |i: usize| out.invited[i].token.clone();

    // The page greets with the given name only.
    let page = s.public_survey(&token(0)).await.unwrap();
    assert_eq!((page.greeting_name.as_str(), page.questions.len()), ("小明", 3));

    // Bad answers are refused naming the value; nothing is stored.
    let bad = |v| answers(&[("nps", v)]);
    assert_eq!(field_of(s.answer_survey(&token(0), bad(json!(11))).await.unwrap_err()).as_deref(), Some("answers[0].value"));
    assert_eq!(field_of(s.answer_survey(&token(0), bad(json!("9"))).await.unwrap_err()).as_deref(), Some("answers[0].value"));
    assert_eq!(
        field_of(s.answer_survey(&token(0), answers(&[("colour", json!(1))])).await.unwrap_err()).as_deref(),
        Some("answers[0].question")
    );
    assert_eq!(
        field_of(s.answer_survey(&token(0), answers(&[("why", json!("好"))])).await.unwrap_err()).as_deref(),
        Some("answers"),
        "nps is required"
    );

    // A promoter, a passive who would switch, a detractor: the detractor opens a complaint.
    let promoter =
        s.answer_survey(&token(0), answers(&[("nps", json!(10)), ("why", json!("菜品质量很好，服务员态度热情"))])).await.unwrap();
    assert_eq!((promoter.nps, promoter.ticket_id), (Some(10), None));
    assert!(matches!(s.answer_survey(&token(0), answers(&[("nps", json!(1))])).await, Err(StoreError::State(_))), "once");
    assert!(matches!(s.public_survey(&token(0)).await, Err(StoreError::State(_))));
    s.answer_survey(&token(1), answers(&[("nps", json!(8)), ("switch_2pct", json!(true))])).await.unwrap();
    let detractor =
        s.answer_survey(&token(2), answers(&[("nps", json!(3)), ("why", json!("上菜速度太慢，服务员态度冷淡"))])).await.unwrap();
    let ticket_id = detractor.ticket_id.expect("a complaint for the detractor");
    let t = s.ticket(ticket_id).await.unwrap().ticket;
    assert_eq!((t.kind.as_str(), t.channel.as_str(), t.customer_id), ("complaint", "survey", ids[2]));
    assert!(t.body.contains("NPS 3") && t.body.contains("上菜速度太慢"), "{}", t.body);
    let timeline = s.timeline(ids[2], None, 50).await.unwrap();
    assert!(timeline.items.iter().any(|e| e.kind == "survey" && e.title.contains("NPS 3")), "{:?}", timeline.items);

    // Forged and unknown links.
    assert!(matches!(s.public_survey("not-a-token").await, Err(StoreError::NotFound(_))));
    assert!(matches!(s.public_survey(&"a".repeat(64)).await, Err(StoreError::NotFound(_))));

    // Results: (1 promoter − 1 detractor) / 3 × 100 = 0; keywords from the two open answers.
    let r = s.survey_results(sv.id, whole_year(), Some("tier")).await.unwrap();
    assert_eq!((r.invited, r.responses, r.promoters, r.passives, r.detractors), (3, 3, 1, 1, 1));
    assert_eq!(r.nps, Some(0.0));
    assert_eq!(r.would_switch_share, Some(1.0));
    assert_eq!(r.distribution.len(), 11);
    assert_eq!(r.distribution.iter().map(|v| v.count).sum::<u64>(), 3);
    let top: Vec<(&str, u64)> = r.keywords.iter().map(|k| (k.term.as_str(), k.count)).collect();
    assert!(top.contains(&("服务员", 2)) && top.contains(&("态度", 2)), "{top:?}");
    assert_eq!(r.groups.len(), 1);
    assert_eq!((r.groups[0].key.as_str(), r.groups[0].responses), ("default", 3));
    assert_eq!(r.complaints_opened, 1);
    let answered = s.events(&EventFilter { kind: Some("survey.answered".into()), ..Default::default() }, 100).await.unwrap();
    assert_eq!(answered.len(), 3);

    // The answers reach the analysis: the latest NPS and the switch answer.
    let input = s.analysis_input(patron_store::analytics::business_day(s.now(), Shanghai)).await.unwrap();
    let at = |id: i64| input.customer_ids.iter().position(|c| *c == id).unwrap();
    let nps = input.extras.latest_nps.as_ref().expect("NPS answers");
    assert_eq!((nps[at(ids[0])], nps[at(ids[2])]), (Some(10), Some(3)));
    assert_eq!(input.extras.would_switch_for_2pct.as_ref().unwrap()[at(ids[1])], Some(true));

    // An expired link: 410.
    let later =
        s.invite(&a, sv.id, InvitationRequest { customer_ids: Some(vec![customer(s, "赵六").await]), segment: None }).await.unwrap();
    db.clock.set(db.clock.now() + Duration::days(15));
    assert!(matches!(s.public_survey(&later.invited[0].token).await, Err(StoreError::Gone(_))));
    assert!(matches!(s.answer_survey(&later.invited[0].token, answers(&[("nps", json!(9))])).await, Err(StoreError::Gone(_))));
});

test_both!(custom_surveys_check_their_questions, |db: TestDb| async move {
    let s = &db.store;
    let a = admin();
    let q = |key: &str, kind: &str, options: &[&str]| Question {
        key: key.into(),
        kind: kind.into(),
        text: Some(format!("{key}?")),
        options: options.iter().map(|o| (*o).to_owned()).collect(),
        required: false,
    };
    let mut new = survey("custom", None);
    new.questions = Some(vec![q("dish", "single", &["鱼", "鸡"]), q("dish", "text", &[])]);
    assert_eq!(field_of(s.create_survey(&a, new.clone()).await.unwrap_err()).as_deref(), Some("questions[1].key"));
    new.questions = Some(vec![q("dish", "single", &["鱼"])]);
    assert_eq!(field_of(s.create_survey(&a, new.clone()).await.unwrap_err()).as_deref(), Some("questions[0].options"));
    new.questions =
        Some(vec![q("dish", "single", &["鱼", "鸡"]), q("extras", "multiple", &["饮料", "甜点", "汤"]), q("stars", "scale", &[])]);
    let sv = s.create_survey(&a, new).await.unwrap();
    let mut nps = survey("nps", None);
    nps.questions = Some(vec![q("x", "text", &[])]);
    assert_eq!(field_of(s.create_survey(&a, nps).await.unwrap_err()).as_deref(), Some("questions"));
    let bad_trigger = survey("csat", Some(Trigger { on: "periodic".into(), days: None, segment: None, every_days: Some(30) }));
    assert_eq!(field_of(s.create_survey(&a, bad_trigger).await.unwrap_err()).as_deref(), Some("trigger.segment"));

    let cid = customer(s, "钱七").await;
    let out = s.invite(&a, sv.id, InvitationRequest { customer_ids: Some(vec![cid]), segment: None }).await.unwrap();
    let token = &out.invited[0].token;
    let e = s.answer_survey(token, answers(&[("dish", json!("牛"))])).await.unwrap_err();
    assert_eq!(field_of(e).as_deref(), Some("answers[0].value"));
    let e = s.answer_survey(token, answers(&[("extras", json!(["饮料", "酒"]))])).await.unwrap_err();
    assert_eq!(field_of(e).as_deref(), Some("answers[0].value"));
    let ok =
        s.answer_survey(token, answers(&[("dish", json!("鱼")), ("extras", json!(["汤", "甜点"])), ("stars", json!(2))])).await.unwrap();
    assert_eq!(ok.score, Some(2));
    assert!(ok.ticket_id.is_some(), "2 of 5 is unhappy");
});

test_both!(triggers_invite_once_whatever_runs_them, |db: TestDb| async move {
    let s = &db.store;
    let a = admin();
    let agent = s.create_user("agent@example.com", "客服小周", Role::Agent, None).await.unwrap();
    let csat = s
        .create_survey(&a, survey("csat", Some(Trigger { on: "ticket_resolved".into(), days: None, segment: None, every_days: None })))
        .await
        .unwrap();
    let after_order = s
        .create_survey(&a, survey("nps", Some(Trigger { on: "order_completed".into(), days: Some(3), segment: None, every_days: None })))
        .await
        .unwrap();
    let cid = customer(s, "孙八").await;
    let ticket = NewTicket {
        customer_id: cid,
        kind: "inquiry".into(),
        channel: "phone".into(),
        subject: "发票".into(),
        body: String::new(),
        category: None,
        assignee_id: Some(agent.id),
        department: None,
        store: Some("徐汇店".into()),
        opened_at: None,
        order_id: None,
    };
    let t = s.create_ticket(&a, ticket.clone()).await.unwrap();
    for st in ["acknowledged", "in_progress", "resolved"] {
        s.transition_ticket(&a, t.id, Transition { to: st.into(), root_cause: None, note: None }).await.unwrap();
    }
    let order = NewOrder {
        external_id: Some("T-1".into()),
        customer_id: Some(cid),
        customer_external_id: None,
        ordered_at: db.clock.now(),
        channel: None,
        store: Some("徐汇店".into()),
        currency: None,
        total_cents: Some(12_800),
        discount_cents: None,
        status: None,
        lines: Vec::new(),
    };
    s.create_orders(&a, vec![order]).await.unwrap();

    // Two schedulers at once, then again: the resolved ticket's survey once; the order's not yet.
    let other = Store::connect(&db.url).await.unwrap().with_clock(db.clock.clone());
    let (r1, r2) = tokio::join!(s.run_due_jobs(), other.run_due_jobs());
    assert_eq!(r1.unwrap().surveys.invited + r2.unwrap().surveys.invited, 1);
    assert_eq!(s.run_due_jobs().await.unwrap().surveys.invited, 0);
    // Three days on, the order's.
    db.clock.set(db.clock.now() + Duration::days(3) + Duration::minutes(2));
    let (r1, r2) = tokio::join!(s.run_due_jobs(), other.run_due_jobs());
    assert_eq!(r1.unwrap().surveys.invited + r2.unwrap().surveys.invited, 1);
    assert_eq!(s.run_due_jobs().await.unwrap().surveys.invited, 0);

    // Into the outbox: each invitation once, whatever runs it, as a transactional message on
    // the customer's e-mail, with its link.
    let (d1, d2) = tokio::join!(s.queue_invitations(), other.queue_invitations());
    assert_eq!(d1.unwrap() + d2.unwrap(), 2);
    assert_eq!(s.queue_invitations().await.unwrap(), 0);
    let sent = received(s).await;
    assert_eq!(sent.len(), 2);
    assert!(sent.iter().all(|m| m.0 == cid && m.3.contains("孙八")));

    // The CSAT answer about the agent's ticket counts for the agent.
    let csat_msg = sent.iter().find(|m| m.1 == "csat 调查").unwrap();
    s.answer_survey(&csat_msg.2, answers(&[("csat", json!(4))])).await.unwrap();
    // Praise goes to the team feed with the agent's name, not the customer's.
    let mut praise = NewTicket { kind: "praise".into(), subject: "表扬小周".into(), body: "小周很耐心".into(), ..ticket.clone() };
    praise.assignee_id = Some(agent.id);
    s.create_ticket(&a, praise).await.unwrap();
    let feed = s.praise_feed(10).await.unwrap();
    assert_eq!(feed.len(), 1);
    assert_eq!((feed[0].subject.as_str(), feed[0].agent_name.as_deref()), ("表扬小周", Some("客服小周")));
    let r = s.survey_results(csat.id, whole_year(), Some("agent")).await.unwrap();
    assert_eq!((r.responses, r.csat_mean, r.csat_satisfied_share), (1, Some(4.0), Some(1.0)));
    assert_eq!(r.groups[0].key, "客服小周");
    let r = s.survey_results(after_order.id, whole_year(), Some("store")).await.unwrap();
    assert_eq!((r.invited, r.responses), (1, 0));
    assert!(matches!(s.survey_results(csat.id, whole_year(), Some("colour")).await, Err(StoreError::Invalid { .. })));
});

test_both!(agent_csat_in_the_month_of_the_answer, |db: TestDb| async move {
    let s = &db.store;
    let a = admin();
    db.clock.set(Utc.with_ymd_and_hms(2026, 5, 12, 3, 0, 0).unwrap());
    let agent = s.create_user("a2@example.com", "客服小林", Role::Agent, None).await.unwrap();
    s.create_survey(&a, survey("csat", Some(Trigger { on: "ticket_resolved".into(), days: None, segment: None, every_days: None })))
        .await
        .unwrap();
    let mut scores = Vec::new();
    for (i, score) in [5, 4, 1].into_iter().enumerate() {
        let cid = customer(s, &format!("客户{i}")).await;
        let t = s
            .create_ticket(
                &a,
                NewTicket {
                    customer_id: cid,
                    kind: "inquiry".into(),
                    channel: "web".into(),
                    subject: "问询".into(),
                    body: String::new(),
                    category: None,
                    assignee_id: Some(agent.id),
                    department: None,
                    store: None,
                    opened_at: None,
                    order_id: None,
                },
            )
            .await
            .unwrap();
        for st in ["acknowledged", "in_progress", "resolved"] {
            s.transition_ticket(&a, t.id, Transition { to: st.into(), root_cause: None, note: None }).await.unwrap();
        }
        scores.push(score);
    }
    s.run_due_jobs().await.unwrap();
    s.queue_invitations().await.unwrap();
    let mut tokens: Vec<(i64, String)> = received(s).await.into_iter().map(|m| (m.0, m.2)).collect();
    tokens.sort();
    for ((_, token), score) in tokens.iter().zip(scores) {
        s.answer_survey(token, answers(&[("csat", json!(score))])).await.unwrap();
    }
    let kpis = s.service_kpis(parse_month("2026-05").unwrap()).await.unwrap();
    let mine = kpis.agents.iter().find(|k| k.user_id == agent.id).unwrap();
    assert_eq!(mine.handled, 3);
    let csat = mine.csat.unwrap();
    assert!((csat - 10.0 / 3.0).abs() < 1e-9, "{csat}");
    // The 1 of 5 opened a complaint, assigned to the agent whose ticket it was about.
    let complaints =
        s.tickets(&a, &TicketFilter { kind: Some("complaint".into()), ..Default::default() }, TicketSort::Newest, None, 10).await.unwrap();
    assert_eq!(complaints.items.len(), 1);
    assert_eq!((complaints.items[0].channel.as_str(), complaints.items[0].assignee_id), ("survey", Some(agent.id)));
    // The manager's team view: the tickets of the users who report to them.
    let boss = s.create_user("boss2@example.com", "店长", Role::Manager, None).await.unwrap();
    let team = |m: i64| TicketFilter { team_of: Some(m), ..Default::default() };
    assert_eq!(s.tickets(&a, &team(boss.id), TicketSort::Newest, None, 10).await.unwrap().items.len(), 0);
    s.set_user_manager(&a, agent.id, Some(boss.id)).await.unwrap();
    assert_eq!(
        s.tickets(&a, &team(boss.id), TicketSort::Newest, None, 10).await.unwrap().items.len(),
        4,
        "three inquiries and the complaint"
    );
});

test_both!(churn_reasons_by_segment, |db: TestDb| async move {
    let s = &db.store;
    let a = admin();
    db.clock.set(Utc.with_ymd_and_hms(2026, 11, 30, 4, 0, 0).unwrap());
    // Two regulars who stopped a year ago, one still coming.
    let mut ids = Vec::new();
    for (n, name) in ["周一", "吴二", "郑三"].iter().enumerate() {
        let cid = customer(s, name).await;
        ids.push(cid);
        let mut orders = Vec::new();
        for k in 0..8u32 {
            // The first two: every three days in January 2025; the third: monthly in 2026.
            let (y, m, d) = if n == 2 { (2026, 4 + k, 10) } else { (2025, 1, 1 + k * 3) };
            orders.push(NewOrder {
                external_id: Some(format!("C{n}-{k}")),
                customer_id: Some(cid),
                customer_external_id: None,
                ordered_at: Shanghai.with_ymd_and_hms(y, m, d, 12, 0, 0).unwrap().with_timezone(&Utc),
                channel: None,
                store: None,
                currency: None,
                total_cents: Some(10_000),
                discount_cents: None,
                status: None,
                lines: Vec::new(),
            });
        }
        s.create_orders(&a, orders).await.unwrap();
    }
    s.run_analysis(&a, NaiveDate::from_ymd_opt(2026, 11, 30).unwrap(), &AnalyticsConfig::default()).await.unwrap();
    let churn = |id| async move { s.customer_scores(id).await.unwrap().unwrap().churn };
    assert_eq!(churn(ids[0]).await, "absolute");
    assert_eq!(churn(ids[2]).await, "none");

    let reason = |r: &str| ChurnReasonInput { reason: r.into(), source: None, note: Some("搬到北京了".into()) };
    assert_eq!(field_of(s.set_churn_reason(&a, ids[0], reason("天气")).await.unwrap_err()).as_deref(), Some("reason"));
    assert!(matches!(s.set_churn_reason(&a, ids[2], reason("搬家")).await, Err(StoreError::State(_))), "not churned");
    let mut bad_source = reason("搬家");
    bad_source.source = Some("ticket:abc".into());
    assert_eq!(field_of(s.set_churn_reason(&a, ids[0], bad_source).await.unwrap_err()).as_deref(), Some("source"));
    s.set_churn_reason(&a, ids[0], reason("价格")).await.unwrap();
    let r = s.set_churn_reason(&a, ids[0], reason("搬家")).await.unwrap();
    assert_eq!((r.reason.as_str(), r.source.as_str()), ("搬家", "call"));
    assert_eq!(s.churn_reason(ids[0]).await.unwrap().unwrap().reason, "搬家", "the latest replaces");

    let report = s.churn_reason_report("tier").await.unwrap();
    assert_eq!((report.churned, report.with_reason), (2, 1));
    assert_eq!(report.cells.iter().map(|c| c.customers).sum::<u64>(), 2);
    assert!(report.cells.iter().any(|c| c.reason == "搬家" && c.customers == 1));
    assert!(report.cells.iter().any(|c| c.reason == "(unknown)" && c.customers == 1));
    assert_eq!(report.reasons.last().map(String::as_str), Some("(unknown)"));
    assert!(matches!(s.churn_reason_report("colour").await, Err(StoreError::Invalid { .. })));
    let events = s.events(&EventFilter { kind: Some("customer.churn_reason".into()), ..Default::default() }, 10).await.unwrap();
    assert_eq!(events.len(), 2, "both recordings are history");
});
