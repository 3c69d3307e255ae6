//! The service loop on SQLite and PostgreSQL alike (`test_both!`): tickets through their whole
//! closed loop, SLA clocks in working time across a weekend and a holiday with the pause, breaches
//! recorded and escalated once however often and by however many schedulers the jobs run,
//! compensation authority, and the Pareto and complaint-rate reports on known data.

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Asia::Shanghai;
use patron_store::customers::NewCustomer;
use patron_store::events::EventFilter;
use patron_store::orders::NewOrder;
use patron_store::service::reports::{parse_month, Period};
use patron_store::service::PolicyInput;
use patron_store::testing::TestDb;
use patron_store::tickets::flow::ConfirmationAnswer;
use patron_store::tickets::{CompensationKind, NewComment, NewCompensation, NewTicket, SlaState, TicketFilter, TicketSort, Transition};
use patron_store::users::{Actor, Role};
use patron_store::{test_both, Clock, Store, StoreError};

/// A Shanghai local time as UTC.
fn sh(m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    Shanghai.with_ymd_and_hms(2026, m, d, h, min, 0).unwrap().with_timezone(&Utc)
}

fn admin() -> Actor {
    Actor::cli()
}

async fn customer(s: &Store, name: &str) -> i64 {
    let c = NewCustomer { name: name.into(), ..Default::default() };
    s.create_customer(&admin(), c).await.expect("customer").id
}

fn complaint(customer_id: i64, subject: &str, category: Option<&str>) -> NewTicket {
    NewTicket {
        customer_id,
        kind: "complaint".into(),
        channel: "phone".into(),
        subject: subject.into(),
        body: "等了四十分钟还没上菜".into(),
        category: category.map(str::to_owned),
        assignee_id: None,
        department: None,
        store: None,
        opened_at: None,
        order_id: None,
    }
}

fn to(state: &str) -> Transition {
    Transition { to: state.into(), root_cause: None, note: None }
}

fn state_err(e: StoreError) -> String {
    match e {
        StoreError::State(m) => m,
        other => panic!("expected a state conflict, got {other:?}"),
    }
}

fn field_of(e: StoreError) -> Option<String> {
    match e {
        StoreError::Invalid { field, .. } => field,
        other => panic!("expected an invalid value, got {other:?}"),
    }
}

test_both!(a_complaint_closes_only_when_the_customer_confirms, |db: TestDb| async move {
    let s = &db.store;
    let a = admin();
    // Tuesday 2026-06-30 20:00 in Shanghai: after hours. The default tier's policy (no scores
    // yet): first response in 480 working minutes, resolution in 1,620.
    let cid = customer(s, "王建国").await;
    let t = s.create_ticket(&a, complaint(cid, "上菜太慢", Some("上菜慢"))).await.unwrap();
    assert_eq!((t.status.as_str(), t.tier.as_str(), t.business_hours), ("new", "default", true));
    assert_eq!(t.first_response_due_at, sh(7, 1, 17, 0), "Wednesday 09:00 + 8 working hours");
    assert_eq!(t.resolution_due_at, sh(7, 3, 18, 0), "three working days");
    assert_eq!(t.sla.first_response, SlaState::Pending);

    // Only the allowed moves.
    let err = state_err(s.transition_ticket(&a, t.id, to("resolved")).await.unwrap_err());
    assert!(err.contains("is new") && err.contains("allowed: acknowledged"), "{err}");
    let t1 = s.transition_ticket(&a, t.id, to("acknowledged")).await.unwrap().ticket;
    assert_eq!((t1.first_responded_at, t1.sla.first_response), (Some(db.clock.now()), SlaState::Met));
    s.transition_ticket(&a, t.id, to("in_progress")).await.unwrap();
    // A complaint resolves with a root cause from the list.
    assert_eq!(field_of(s.transition_ticket(&a, t.id, to("resolved")).await.unwrap_err()).as_deref(), Some("root_cause"));
    let wrong = Transition { to: "resolved".into(), root_cause: Some("天气".into()), note: None };
    assert_eq!(field_of(s.transition_ticket(&a, t.id, wrong).await.unwrap_err()).as_deref(), Some("root_cause"));
    let resolve = || Transition { to: "resolved".into(), root_cause: Some("上菜慢".into()), note: Some("后厨加派人手".into()) };
    let done = s.transition_ticket(&a, t.id, resolve()).await.unwrap();
    let token = done.confirmation_token.expect("a confirmation link on resolve");
    assert_eq!((done.ticket.status.as_str(), done.ticket.root_cause.as_deref()), ("resolved", Some("上菜慢")));
    assert_eq!(s.confirmation_view(&token).await.unwrap().subject, "上菜太慢");

    // The customer says it is not solved: reopened, their words kept.
    let back = s.answer_confirmation(&token, ConfirmationAnswer { confirmed: false, comment: Some("还是很慢".into()) }).await.unwrap();
    assert_eq!((back.status.as_str(), back.reopened_count, back.resolved_at), ("reopened", 1, None));
    assert!(state_err(s.answer_confirmation(&token, ConfirmationAnswer { confirmed: true, comment: None }).await.unwrap_err())
        .contains("answered"));
    let detail = s.ticket(t.id).await.unwrap();
    assert!(detail.comments.iter().any(|c| c.author == "customer" && c.public && c.body == "还是很慢"));
    assert!(detail.comments.iter().any(|c| !c.public && c.body == "后厨加派人手"), "the note is an internal comment");

    s.transition_ticket(&a, t.id, to("in_progress")).await.unwrap();
    let again = s.transition_ticket(&a, t.id, resolve()).await.unwrap();
    let second = again.confirmation_token.unwrap();
    assert_ne!(second, token);
    let closed = s.answer_confirmation(&second, ConfirmationAnswer { confirmed: true, comment: None }).await.unwrap();
    assert_eq!((closed.status.as_str(), closed.confirmed_by.as_deref()), ("confirmed", Some("customer")));
    let err = state_err(s.transition_ticket(&a, t.id, to("reopened")).await.unwrap_err());
    assert!(err.contains("none: it is closed"), "{err}");

    // Forged and malformed links are unknown.
    assert!(matches!(s.confirmation_view(&"0".repeat(64)).await, Err(StoreError::NotFound(_))));
    assert!(matches!(s.confirmation_view("../etc").await, Err(StoreError::NotFound(_))));

    // The whole loop is in the events, in order.
    let history: Vec<String> = s.ticket(t.id).await.unwrap().history.into_iter().map(|e| e.kind).collect();
    assert_eq!(
        history,
        [
            "ticket.opened",
            "ticket.acknowledged",
            "ticket.in_progress",
            "ticket.resolved",
            "ticket.reopened",
            "ticket.in_progress",
            "ticket.resolved",
            "ticket.confirmed"
        ]
    );
    let all = s.events(&EventFilter { kind: Some("ticket.*".into()), customer_id: Some(cid), ..Default::default() }, 100).await.unwrap();
    assert_eq!(all.len(), 8);
    // And on the customer's timeline.
    let tl = s.timeline(cid, None, 50).await.unwrap();
    assert!(tl.items.iter().any(|e| e.kind == "ticket" && e.detail.as_deref() == Some("上菜太慢")));
});

test_both!(links_expire_and_unanswered_resolutions_confirm_by_timeout, |db: TestDb| async move {
    let s = &db.store;
    let a = admin();
    let cid = customer(s, "李雪").await;
    let mut inquiry = complaint(cid, "营业时间", None);
    inquiry.kind = "inquiry".into();
    let t = s.create_ticket(&a, inquiry).await.unwrap();
    for st in ["acknowledged", "in_progress"] {
        s.transition_ticket(&a, t.id, to(st)).await.unwrap();
    }
    let token = s.transition_ticket(&a, t.id, to("resolved")).await.unwrap().confirmation_token.unwrap();
    // Six days later nothing happens; after seven the resolution counts as confirmed.
    db.clock.set(db.clock.now() + chrono::Duration::days(6));
    assert_eq!(s.run_due_jobs().await.unwrap().sla.auto_confirmed, 0);
    db.clock.set(db.clock.now() + chrono::Duration::days(1) + chrono::Duration::minutes(1));
    assert!(matches!(s.confirmation_view(&token).await, Err(StoreError::Gone(_))), "the link has expired");
    assert_eq!(s.run_due_jobs().await.unwrap().sla.auto_confirmed, 1);
    assert_eq!(s.run_due_jobs().await.unwrap().sla.auto_confirmed, 0, "once");
    let t = s.ticket(t.id).await.unwrap().ticket;
    assert_eq!((t.status.as_str(), t.confirmed_by.as_deref()), ("confirmed", Some("timeout")));
});

test_both!(sla_counts_working_time_across_a_holiday_and_stands_while_waiting, |db: TestDb| async move {
    let s = &db.store;
    let a = admin();
    let policy = PolicyInput {
        first_response_minutes: 60,
        resolution_minutes: 600,
        business_hours: true,
        contact_cadence_days: 30,
        compensation_authority_cents: 5000,
        premium: vec![],
    };
    s.set_service_policy(&a, "default", &policy).await.unwrap();
    let manager = s.create_user("boss@example.com", "店长", Role::Manager, None).await.unwrap();
    let agent = s.create_user("agent@example.com", "小张", Role::Agent, None).await.unwrap();
    s.set_user_manager(&a, agent.id, Some(manager.id)).await.unwrap();
    let cid = customer(s, "赵敏").await;
    // Thursday 2026-06-18 17:00, the eve of the Dragon Boat holiday (Friday to Sunday off).
    db.clock.set(sh(6, 18, 17, 0));
    let mut new = complaint(cid, "外卖洒了", Some("外卖延迟"));
    new.assignee_id = Some(agent.id);
    let t = s.create_ticket(&a, new).await.unwrap();
    assert_eq!(t.first_response_due_at, sh(6, 18, 18, 0));
    assert_eq!(t.resolution_due_at, sh(6, 22, 18, 0), "1 h on Thursday, the holiday and weekend skipped, 9 h on Monday");

    // 15 minutes before the first response is due: one warning, to the assignee.
    db.clock.set(sh(6, 18, 17, 50));
    let r = s.run_due_jobs().await.unwrap();
    assert_eq!((r.sla.warnings, r.sla.breaches), (1, 0));
    assert_eq!(s.run_due_jobs().await.unwrap().sla.warnings, 0, "warned once");
    let agent_actor = Actor::user(&agent);
    assert_eq!(s.notifications(&agent_actor, true, 10).await.unwrap()[0].kind, "sla_warning");
    // At the due time: one breach, escalated to the agent's manager, audited.
    db.clock.set(sh(6, 18, 18, 1));
    assert_eq!(s.run_due_jobs().await.unwrap().sla.breaches, 1);
    assert_eq!(s.run_due_jobs().await.unwrap().sla.breaches, 0, "recorded once");
    let boss = s.notifications(&Actor::user(&manager), false, 10).await.unwrap();
    assert_eq!(boss.len(), 1);
    assert_eq!((boss[0].kind.as_str(), boss[0].ticket_id), ("escalation", Some(t.id)));
    assert!(s.audit_entries(20, Some("ticket"), Some(&t.id.to_string())).await.unwrap().iter().any(|e| e.action == "escalate"));
    let t1 = s.ticket(t.id).await.unwrap().ticket;
    assert_eq!((t1.sla.first_response, t1.breaches.len()), (SlaState::Breached, 1));
    assert_eq!(t1.breaches[0].at, sh(6, 18, 18, 0), "the breach is dated at the due time");

    // Monday: acknowledged, worked, then waiting on the customer from 10:00 (8 working hours left).
    db.clock.set(sh(6, 22, 9, 30));
    s.transition_ticket(&a, t.id, to("acknowledged")).await.unwrap();
    s.transition_ticket(&a, t.id, to("in_progress")).await.unwrap();
    db.clock.set(sh(6, 22, 10, 0));
    s.transition_ticket(&a, t.id, to("waiting_on_customer")).await.unwrap();
    // Wednesday: the due time has passed but the clock stood.
    db.clock.set(sh(6, 24, 10, 0));
    assert_eq!(s.run_due_jobs().await.unwrap().sla.breaches, 0);
    assert_eq!(s.ticket(t.id).await.unwrap().ticket.sla.resolution, SlaState::Pending);
    let resumed = s.transition_ticket(&a, t.id, to("in_progress")).await.unwrap().ticket;
    assert_eq!(resumed.resolution_due_at, sh(6, 24, 18, 0), "the 8 hours left when the wait began");
    db.clock.set(sh(6, 24, 17, 50));
    assert_eq!(s.run_due_jobs().await.unwrap().sla.warnings, 1);
    db.clock.set(sh(6, 24, 18, 0) + chrono::Duration::seconds(1));
    let r = s.run_due_jobs().await.unwrap();
    assert_eq!((r.sla.breaches, s.run_due_jobs().await.unwrap().sla.breaches), (1, 0));
    let breached = s.events(&EventFilter { kind: Some("ticket.breached".into()), ..Default::default() }, 10).await.unwrap();
    assert_eq!(breached.len(), 2);
    assert_eq!(breached[1].payload["clock"], "resolution");
    assert_eq!(s.notifications(&Actor::user(&manager), false, 10).await.unwrap().len(), 2);
});

test_both!(two_schedulers_record_each_breach_once, |db: TestDb| async move {
    let s = &db.store;
    let a = admin();
    s.create_user("m@example.com", "经理", Role::Manager, None).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..24 {
        let cid = customer(s, &format!("客户{i}")).await;
        ids.push(s.create_ticket(&a, complaint(cid, "投诉", None)).await.unwrap().id);
    }
    // Past every first-response due time, not yet past resolution: 24 breaches to record.
    db.clock.set(sh(7, 2, 12, 0));
    // A second server on the same database: its own pool, its own connections.
    let other = Store::connect(&db.url).await.unwrap().with_clock(db.clock.clone());
    let (r1, r2) = tokio::join!(s.run_due_jobs(), other.run_due_jobs());
    let (r1, r2) = (r1.unwrap(), r2.unwrap());
    assert_eq!(r1.sla.breaches + r2.sla.breaches, 24, "{r1:?} {r2:?}");
    let (r3, r4) = tokio::join!(s.run_due_jobs(), other.run_due_jobs());
    assert_eq!(r3.unwrap().sla.breaches + r4.unwrap().sla.breaches, 0);
    let breached = s.events(&EventFilter { kind: Some("ticket.breached".into()), ..Default::default() }, 1000).await.unwrap();
    assert_eq!(breached.len(), 24);
    let mut subjects: Vec<i64> = breached.iter().filter_map(|e| e.subject_id).collect();
    subjects.sort_unstable();
    assert_eq!(subjects, ids, "each ticket once");
    let (n,): (i64,) = s.db.reader().fetch_one(patron_store::db::query("SELECT COUNT(*) FROM notifications")).await.unwrap();
    assert_eq!(n, 24, "one escalation each");
});

test_both!(compensation_within_authority_is_granted_above_it_waits, |db: TestDb| async move {
    let s = &db.store;
    let a = admin();
    let manager = s.create_user("boss@example.com", "店长", Role::Manager, None).await.unwrap();
    let agent = s.create_user("agent@example.com", "小张", Role::Agent, None).await.unwrap();
    s.set_user_manager(&a, agent.id, Some(manager.id)).await.unwrap();
    let cid = customer(s, "周芷若").await;
    let t = s.create_ticket(&a, complaint(cid, "收费多了", Some("收费错误"))).await.unwrap();
    let me = Actor::user(&agent);
    // The default tier's authority: ¥20.
    let small = NewCompensation { amount_cents: 2000, kind: CompensationKind::Voucher, reason: "致歉券".into() };
    assert_eq!(s.compensate(&me, t.id, small).await.unwrap().status, "granted");
    let big = NewCompensation { amount_cents: 5000, kind: CompensationKind::Refund, reason: "退差价".into() };
    let pending = s.compensate(&me, t.id, big.clone()).await.unwrap();
    assert_eq!((pending.status.as_str(), pending.decided_by.as_deref()), ("pending", None));
    assert_eq!(s.notifications(&Actor::user(&manager), true, 10).await.unwrap()[0].kind, "approval");
    let decided = s.decide_compensation(&Actor::user(&manager), t.id, pending.id, true).await.unwrap();
    assert_eq!(decided.status, "granted");
    assert!(
        state_err(s.decide_compensation(&Actor::user(&manager), t.id, pending.id, false).await.unwrap_err()).contains("granted already")
    );
    // A manager grants above the authority directly.
    assert_eq!(s.compensate(&Actor::user(&manager), t.id, big).await.unwrap().status, "granted");
    let bad = NewCompensation { amount_cents: 0, kind: CompensationKind::Gift, reason: "x".into() };
    assert_eq!(field_of(s.compensate(&me, t.id, bad).await.unwrap_err()).as_deref(), Some("amount_cents"));
    let kinds: Vec<String> = s.ticket(t.id).await.unwrap().history.into_iter().map(|e| e.kind).collect();
    assert_eq!(kinds, ["ticket.opened", "compensation.granted", "compensation.requested", "compensation.granted", "compensation.granted"]);
    let tl = s.timeline(cid, None, 50).await.unwrap();
    assert_eq!(tl.items.iter().filter(|e| e.kind == "compensation").count(), 3);
});

test_both!(pareto_and_complaint_rate_on_known_data, |db: TestDb| async move {
    let s = &db.store;
    let a = admin();
    let cid = customer(s, "钱多多").await;
    let mut orders = Vec::new();
    for i in 0..40 {
        let store = if i < 30 { "南京西路店" } else { "徐家汇店" };
        orders.push(NewOrder {
            customer_id: Some(cid),
            ordered_at: sh(6, 1 + i % 20, 12, 0),
            total_cents: Some(10_000),
            store: Some(store.into()),
            ..Default::default()
        });
    }
    s.create_orders(&a, orders).await.unwrap();
    let mut tickets = Vec::new();
    for (cat, n) in [("上菜慢", 5), ("菜品质量", 3), ("服务态度", 1), ("收费错误", 1)] {
        for _ in 0..n {
            let mut t = complaint(cid, "投诉", Some(cat));
            t.store = Some("南京西路店".into());
            tickets.push(s.create_ticket(&a, t).await.unwrap().id);
        }
    }
    // The 服务态度 complaint turns out to be slow service: its root cause counts.
    let id = tickets[8];
    for st in ["acknowledged", "in_progress"] {
        s.transition_ticket(&a, id, to(st)).await.unwrap();
    }
    s.transition_ticket(&a, id, Transition { to: "resolved".into(), root_cause: Some("上菜慢".into()), note: None }).await.unwrap();
    let period = Period::days(
        &Shanghai,
        chrono::NaiveDate::from_ymd_opt(2026, 6, 1).unwrap(),
        chrono::NaiveDate::from_ymd_opt(2026, 6, 30).unwrap(),
    )
    .unwrap();
    let p = s.pareto("complaint", period).await.unwrap();
    assert_eq!(p.total, 10);
    let table: Vec<(&str, u64, bool)> = p.categories.iter().map(|c| (c.category.as_str(), c.count, c.vital_few)).collect();
    assert_eq!(table, [("上菜慢", 6, true), ("菜品质量", 3, true), ("收费错误", 1, false)]);
    assert!((p.categories[1].cumulative_share - 0.9).abs() < 1e-12);
    let r = s.complaint_rates(period).await.unwrap();
    assert_eq!((r.overall.complaints, r.overall.orders), (10, 40));
    assert_eq!(r.overall.per_1000, Some(250.0));
    assert!(!r.overall.on_target, "the target is zero defects");
    let nanjing = r.by_store.iter().find(|g| g.group.as_deref() == Some("南京西路店")).unwrap();
    assert_eq!((nanjing.complaints, nanjing.orders, nanjing.per_1000), (10, 30, Some(10.0 * 1000.0 / 30.0)));
    let xujiahui = r.by_store.iter().find(|g| g.group.as_deref() == Some("徐家汇店")).unwrap();
    assert_eq!((xujiahui.complaints, xujiahui.on_target), (0, true));
    assert_eq!(r.by_tier.iter().map(|g| g.group.clone().unwrap()).collect::<Vec<_>>(), ["default"]);
});

test_both!(policies_calendar_and_bad_input, |db: TestDb| async move {
    let s = &db.store;
    let a = admin();
    let policies = s.service_policies().await.unwrap();
    assert_eq!(policies.iter().map(|p| p.tier.as_str()).collect::<Vec<_>>(), ["A", "B", "C", "D", "default"]);
    assert!(policies[0].first_response_minutes < policies[4].first_response_minutes, "the best customers are answered first");
    let mut p = PolicyInput {
        first_response_minutes: -5,
        resolution_minutes: 60,
        business_hours: false,
        contact_cadence_days: 30,
        compensation_authority_cents: 0,
        premium: vec!["专属客服".into()],
    };
    assert_eq!(field_of(s.set_service_policy(&a, "A", &p).await.unwrap_err()).as_deref(), Some("first_response_minutes"));
    p.first_response_minutes = 90;
    assert_eq!(field_of(s.set_service_policy(&a, "A", &p).await.unwrap_err()).as_deref(), Some("resolution_minutes"));
    p.resolution_minutes = 120;
    assert_eq!(field_of(s.set_service_policy(&a, "Z", &p).await.unwrap_err()).as_deref(), Some("tier"));
    assert_eq!(s.set_service_policy(&a, "A", &p).await.unwrap().first_response_minutes, 90);
    assert_eq!(s.service_policy("A").await.unwrap().premium, ["专属客服"]);
    // Unknown customer, kind, channel; empty subject; backdating by an agent; a bad assignee.
    let cid = customer(s, "孙悟空").await;
    assert_eq!(field_of(s.create_ticket(&a, complaint(9999, "x", None)).await.unwrap_err()).as_deref(), Some("customer_id"));
    let mut t = complaint(cid, "x", None);
    t.kind = "rant".into();
    assert_eq!(field_of(s.create_ticket(&a, t).await.unwrap_err()).as_deref(), Some("kind"));
    let mut t = complaint(cid, "  ", None);
    t.channel = "fax".into();
    assert_eq!(field_of(s.create_ticket(&a, t).await.unwrap_err()).as_deref(), Some("channel"));
    assert_eq!(field_of(s.create_ticket(&a, complaint(cid, "  ", None)).await.unwrap_err()).as_deref(), Some("subject"));
    let agent = s.create_user("ag@example.com", "甲", Role::Agent, None).await.unwrap();
    let mut t = complaint(cid, "旧工单", None);
    t.opened_at = Some(db.clock.now() - chrono::Duration::days(30));
    assert_eq!(field_of(s.create_ticket(&Actor::user(&agent), t.clone()).await.unwrap_err()).as_deref(), Some("opened_at"));
    let old = s.create_ticket(&a, t).await.unwrap();
    assert_eq!(old.opened_at, db.clock.now() - chrono::Duration::days(30), "managers migrate history");
    let mut t = complaint(cid, "x", None);
    t.assignee_id = Some(424242);
    assert_eq!(field_of(s.create_ticket(&a, t).await.unwrap_err()).as_deref(), Some("assignee_id"));
    let c = NewComment { body: " ".into(), public: true, attachments: vec![] };
    assert_eq!(field_of(s.comment_ticket(&a, old.id, c).await.unwrap_err()).as_deref(), Some("body"));
    assert!(matches!(s.transition_ticket(&a, 777_777, to("acknowledged")).await, Err(StoreError::NotFound(_))));
    // A public reply meets the first response and acknowledges a new ticket.
    let fresh = s.create_ticket(&a, complaint(cid, "新的", None)).await.unwrap();
    let c = NewComment { body: "您好，我们马上处理".into(), public: true, attachments: vec![] };
    let replied = s.comment_ticket(&a, fresh.id, c).await.unwrap();
    assert_eq!((replied.status.as_str(), replied.sla.first_response), ("acknowledged", SlaState::Met));
    // Lists: open tickets, by due time; agents see theirs only.
    let page = s.tickets(&a, &TicketFilter { status: Some("open".into()), ..Default::default() }, TicketSort::Due, None, 1).await.unwrap();
    assert_eq!(page.items[0].id, old.id, "the backdated ticket is the most overdue");
    let next = s
        .tickets(&a, &TicketFilter { status: Some("open".into()), ..Default::default() }, TicketSort::Due, page.next_cursor.as_deref(), 10)
        .await
        .unwrap();
    assert_eq!(next.items.len(), 1);
    assert!(s.tickets(&Actor::user(&agent), &TicketFilter::default(), TicketSort::Newest, None, 10).await.unwrap().items.is_empty());
    // Calendar and KPIs.
    let mut cal = s.calendar().await.unwrap();
    cal.weekdays = vec![None; 7];
    assert_eq!(field_of(s.set_calendar(&a, &cal).await.unwrap_err()).as_deref(), Some("weekdays"));
    let kpis = s.service_kpis(parse_month("2026-06").unwrap()).await.unwrap();
    assert!(kpis.agents.is_empty(), "no assigned tickets");
    assert!(parse_month("2026-13").is_err());
});

test_both!(ticket_history_imports_with_its_breaches_idempotently, |db: TestDb| async move {
    use patron_store::import::{ImportKind, ImportOptions};
    let s = &db.store;
    let a = admin();
    s.create_user("zhang@example.com", "张", Role::Agent, None).await.unwrap();
    let customers = "customer_id,name\nK1,甲\nK2,乙\n";
    async fn load(s: &Store, kind: ImportKind, text: &str, skip: bool) -> patron_store::import::ImportReport {
        let mut o = ImportOptions::new(kind, "t.csv");
        o.skip_invalid = skip;
        s.import(&Actor::cli(), Box::new(std::io::Cursor::new(text.as_bytes().to_vec())), &o, &|_| {}).await.unwrap()
    }
    assert!(load(s, ImportKind::Customers, customers, false).await.committed);
    // Opened Monday 2026-06-01 09:00 in Shanghai: the default tier answers within 480 working
    // minutes (17:00) and resolves within 1,620 (Wednesday 18:00).
    let tickets = "工单编号,客户编号,类型,渠道,主题,分类,根本原因,状态,创建时间,首次响应时间,解决时间,负责人\n\
T1,K1,投诉,电话,上菜慢,上菜慢,上菜慢,已关闭,2026-06-01 09:00,2026-06-01 10:00,2026-06-02 12:00,zhang@example.com\n\
T2,K2,complaint,store,菜凉了,菜品质量,,resolved,2026-06-01 09:00,2026-06-02 09:30,2026-06-05 12:00,\n\
T3,K1,inquiry,web,营业时间,,,,2026-06-01 09:00,,,\n\
T4,NOBODY,praise,store,好,,,,2026-06-01 09:00,,,\n\
T5,K1,rant,store,x,,,,2026-06-01 09:00,,,\n\
T6,K2,complaint,store,x,,,resolved,2026-06-01 09:00,,,\n\
T7,K2,complaint,store,x,,,,2026-06-01 09:00,2026-05-30 09:00,,\n";
    let r = load(s, ImportKind::Tickets, tickets, false).await;
    assert!(!r.committed);
    let mut rows: Vec<(u64, String)> = r.rejections.iter().map(|x| (x.row, x.column.clone())).collect();
    rows.sort();
    assert_eq!(
        rows,
        [(5, "客户编号".to_owned()), (6, "类型".into()), (7, "解决时间".into()), (8, "首次响应时间".into())],
        "{:#?}",
        r.rejections
    );
    let r = load(s, ImportKind::Tickets, tickets, true).await;
    assert_eq!((r.committed, r.created), (true, 3), "{:?}", r.rejections);
    let all = s.tickets(&a, &TicketFilter::default(), TicketSort::Newest, None, 10).await.unwrap().items;
    let by_subject = |subj: &str| all.iter().find(|t| t.subject == subj).unwrap().clone();
    let t1 = by_subject("上菜慢");
    assert_eq!(
        (t1.status.as_str(), t1.confirmed_by.as_deref(), t1.sla.first_response, t1.sla.resolution),
        ("confirmed", Some("import"), SlaState::Met, SlaState::Met)
    );
    assert_eq!(t1.resolution_due_at, sh(6, 3, 18, 0));
    let t2 = by_subject("菜凉了");
    assert_eq!((t2.sla.first_response, t2.sla.resolution), (SlaState::Breached, SlaState::Breached));
    assert_eq!(t2.breaches.iter().map(|b| b.at).collect::<Vec<_>>(), [sh(6, 1, 17, 0), sh(6, 3, 18, 0)], "dated at the due times");
    assert_eq!(by_subject("营业时间").status, "new");
    // Again: nothing new, nothing changed; then a change updates in place.
    let again = load(s, ImportKind::Tickets, tickets, true).await;
    assert_eq!((again.created, again.updated), (0, 0));
    let changed = "ticket_id,customer_id,kind,subject,status,opened_at,resolved_at\nT3,K1,inquiry,营业时间,resolved,2026-06-01 09:00,2026-06-01 11:00\n";
    let r = load(s, ImportKind::Tickets, changed, false).await;
    assert_eq!((r.created, r.updated), (0, 1));
    assert_eq!(
        s.tickets(&a, &TicketFilter { status: Some("resolved".into()), ..Default::default() }, TicketSort::Newest, None, 10)
            .await
            .unwrap()
            .items
            .len(),
        2
    );
    // The same id for another customer is refused.
    let moved = "ticket_id,customer_id,kind,subject,opened_at\nT3,K2,inquiry,x,2026-06-01 09:00\n";
    let r = load(s, ImportKind::Tickets, moved, true).await;
    assert!(r.rejections[0].reason.contains("another customer"), "{:?}", r.rejections);
    let imported = s.events(&EventFilter { kind: Some("ticket.imported".into()), ..Default::default() }, 100).await.unwrap();
    assert_eq!(imported.len(), 4, "three created, one updated");
    // The Pareto reads the history.
    let period = Period::days(
        &Shanghai,
        chrono::NaiveDate::from_ymd_opt(2026, 6, 1).unwrap(),
        chrono::NaiveDate::from_ymd_opt(2026, 6, 30).unwrap(),
    )
    .unwrap();
    let p = s.pareto("complaint", period).await.unwrap();
    assert_eq!(p.categories.iter().map(|c| (c.category.as_str(), c.count)).collect::<Vec<_>>(), [("上菜慢", 1), ("菜品质量", 1)]);
});
