//! Next best action and channel calibration as data (issue 12 §7, §5) over a real server on
//! each engine: the analysis run stores each customer's action (review for an organisation
//! not contacted within its cadence, nurture for new customers, an upsell of the category with
//! the highest lift, none for a prospect), the API and the 360 page show it with its reason,
//! `next_action` and the calibration fields work in segments, and campaigns and journeys whose
//! channel is `preferred` go out on the calibrated channel among the consented ones. Bad input
//! is a 4xx.

mod common;

use chrono::{DateTime, Duration, Utc};
use common::{error_code, json_of, spawn_app, ui, ui_session, TestApp};
use patron_store::engagement::outbox::{DeliveryOutcome, NewMessage};
use patron_store::engagement::templates::Rendered;
use patron_store::engagement::{Channel, Purpose};
use patron_store::test_both;
use patron_store::testing::TestDb;
use patron_store::users::{Actor, Role};
use reqwest::Method;
use serde_json::{json, Value};

async fn customer(app: &TestApp, body: Value) -> i64 {
    let (st, c) = app.post("/api/v1/customers", body).await;
    assert_eq!(st, 201, "{c}");
    c["id"].as_i64().or_else(|| c["customer"]["id"].as_i64()).expect("customer id")
}

async fn order(app: &TestApp, customer_id: i64, ext: &str, at: DateTime<Utc>, categories: &[&str]) {
    let lines: Vec<Value> = categories.iter().map(|c| json!({"category": c, "unit_price_cents": 4400})).collect();
    let total = 4400 * (categories.len().max(1) as i64);
    let (st, o) = app
        .post(
            "/api/v1/orders",
            json!({"customer_id": customer_id, "external_id": ext, "ordered_at": at.to_rfc3339(), "store": "静安店",
                   "total_cents": total, "status": "completed", "lines": lines}),
        )
        .await;
    assert_eq!(st, 201, "{o}");
}

/// Runs the analysis as of today. The BG/NBD fit is off: on a dozen customers it is degenerate
/// (P(alive) ≈ 0 for everyone, so everyone is at risk); the stages then follow the rules alone.
async fn analyse(app: &TestApp) {
    let s = &app.db.store;
    let today = s.now().with_timezone(&s.config.business_tz).date_naive();
    let mut config = patron_analytics::AnalyticsConfig::default();
    config.model.enabled = false;
    s.run_analysis(&Actor::cli(), today, &config).await.unwrap();
}

async fn preview(app: &TestApp, rule: &str) -> Vec<i64> {
    let (st, p) = app.post("/api/v1/segments/preview", json!({"rule": rule, "limit": 1000})).await;
    assert_eq!(st, 200, "{rule}: {p}");
    let mut ids: Vec<i64> = p["members"].as_array().unwrap().iter().filter_map(|m| m["id"].as_i64()).collect();
    ids.sort_unstable();
    ids
}

test_both!(next_action_is_stored_served_and_segmentable, |db: TestDb| async move {
    let app = spawn_app(db).await;
    let s = &app.db.store;
    let clock = app.db.clock.clone();
    let t0 = s.now();
    // Created now; the analysis is 200 days later.
    let org = customer(&app, json!({"name": "华东贸易有限公司", "kind": "organisation"})).await;
    let org_called = customer(&app, json!({"name": "申城实业有限公司", "kind": "organisation"})).await;
    let person = customer(&app, json!({"name": "陈静", "gender": "female"})).await;
    let prospect = customer(&app, json!({"name": "林浩", "gender": "male"})).await;
    // Baskets: four customers buy tea and coffee, two buy desserts, one coffee only — so
    // lift(coffee → tea) = 7·4 / (5·4) = 1.4, seen by 4 customers.
    let mut both = Vec::new();
    for i in 0..4 {
        both.push(customer(&app, json!({"name": format!("茶咖{i}"), "gender": "male"})).await);
    }
    let mut sweet = Vec::new();
    for i in 0..2 {
        sweet.push(customer(&app, json!({"name": format!("甜点{i}"), "gender": "female"})).await);
    }
    let target = customer(&app, json!({"name": "周咖啡", "gender": "male"})).await;

    // Before any analysis: none, without a date.
    let (st, n) = app.get(&format!("/api/v1/customers/{person}/next-action")).await;
    assert_eq!(st, 200, "{n}");
    assert_eq!((n["action"].as_str(), n["as_of"].is_null()), (Some("none"), true), "{n}");

    clock.set(t0 + Duration::days(200));
    let now = s.now();
    for (i, c) in both.iter().enumerate() {
        order(&app, *c, &format!("B{i}a"), now - Duration::days(30), &["茶", "咖啡"]).await;
        order(&app, *c, &format!("B{i}b"), now - Duration::days(10), &["咖啡", "茶"]).await;
    }
    for (i, c) in sweet.iter().enumerate() {
        order(&app, *c, &format!("S{i}a"), now - Duration::days(30), &["甜点"]).await;
        order(&app, *c, &format!("S{i}b"), now - Duration::days(10), &["甜点"]).await;
    }
    order(&app, target, "Ta", now - Duration::days(30), &["咖啡"]).await;
    order(&app, target, "Tb", now - Duration::days(10), &["咖啡"]).await;
    for (c, ext) in [(org, "O1"), (org_called, "O2"), (person, "P1")] {
        order(&app, c, ext, now - Duration::days(2), &[]).await;
    }
    let (st, r) = app
        .post(
            "/api/v1/interactions",
            json!({"customer_id": org_called, "kind": "call", "occurred_at": (now - Duration::days(1)).to_rfc3339()}),
        )
        .await;
    assert_eq!(st, 201, "{r}");
    analyse(&app).await;

    let nba = |id: i64| {
        let app = &app;
        async move {
            let (st, n) = app.get(&format!("/api/v1/customers/{id}/next-action")).await;
            assert_eq!(st, 200, "{n}");
            n
        }
    };
    let n = nba(org).await;
    assert_eq!(n["action"], "review", "{n}");
    assert_eq!(n["detail"]["days_since_contact"].as_i64(), Some(200), "{n}");
    assert!(n["detail"]["last_contact"].is_null(), "{n}");
    let cadence = n["detail"]["cadence_days"].as_i64().unwrap();
    assert!([30, 60, 90, 180].contains(&cadence), "{n}");
    assert!(n["reason_en"].as_str().unwrap().contains("never contacted in the 200 days"), "{n}");
    assert!(n["reason_zh"].as_str().unwrap().contains("从未联系"), "{n}");
    assert!(n["as_of"].is_string(), "{n}");
    // Contacted yesterday: within the cadence, so the new customer's nurture.
    assert_eq!(nba(org_called).await["action"], "nurture");
    let n = nba(person).await;
    assert_eq!(n["action"], "nurture", "{n}");
    assert!(n["reason_zh"].as_str().unwrap().contains("新客户"), "{n}");
    assert_eq!(nba(prospect).await["action"], "none");
    // The upsell: the coffee-only customer is a repeat customer; tea is suggested because of coffee.
    let k = s.customer_scores(target).await.unwrap().unwrap();
    assert!(["active", "loyal", "won_back"].contains(&k.lifecycle.as_str()), "{k:?}");
    let n = nba(target).await;
    assert_eq!((n["action"].as_str(), n["category"].as_str()), (Some("upsell"), Some("茶")), "{n}");
    assert!((n["detail"]["lift"].as_f64().unwrap() - 1.4).abs() < 1e-9, "{n}");
    assert_eq!(n["detail"]["because_of"], "咖啡");
    assert_eq!(n["detail"]["customers_with_both"].as_i64(), Some(4));
    let tea = n["category_id"].as_i64().unwrap();
    // Those who have both already, and the dessert buyers (desserts go with nothing), get none.
    for c in both.iter().chain(&sweet) {
        assert_eq!(nba(*c).await["action"], "none", "customer {c}");
    }

    // Segments.
    assert_eq!(preview(&app, r#"next_action = "review""#).await, vec![org]);
    assert_eq!(preview(&app, r#"next_action = "推荐品类""#).await, vec![target]);
    assert_eq!(preview(&app, &format!("next_action = \"upsell\" and next_action_category_id = {tea}")).await, vec![target]);
    let mut nurtured = vec![org_called, person];
    nurtured.sort_unstable();
    assert_eq!(preview(&app, r#"next_action in ("nurture", "review") and kind = "person""#).await, vec![person]);
    assert_eq!(preview(&app, r#"next_action = "nurture""#).await, nurtured);
    let (st, e) = app.post("/api/v1/segments/preview", json!({"rule": r#"next_action = "call_them""#})).await;
    assert!((400..500).contains(&st), "{e}");
    error_code(&e);

    // Bad input and access.
    let (st, e) = app.get("/api/v1/customers/abc/next-action").await;
    assert_eq!(st, 400, "{e}");
    error_code(&e);
    let (st, e) = app.get("/api/v1/customers/99999999/next-action").await;
    assert_eq!(st, 404, "{e}");
    error_code(&e);
    let agent = s.create_user("agent@example.com", "李经理", Role::Agent, None).await.unwrap();
    let (_, token) = s.create_token("a", Role::Agent, Some(agent.id)).await.unwrap();
    let (st, e) = json_of(app.req_as(&token, Method::GET, &format!("/api/v1/customers/{org}/next-action")).send().await.unwrap()).await;
    assert!(st == 403 || st == 404, "an agent outside the portfolio: {st} {e}");

    // The 360 page shows it, in the user's language.
    let cookie = ui_session(&app, "boss@example.com", Role::Admin).await;
    let (st, html) = ui(&app, &cookie, Method::GET, &format!("/ui/customers/{org}"), &[]).await;
    assert_eq!(st, 200);
    assert!(html.contains("id=\"next-action-card\"") && html.contains("data-action=\"review\""), "{html}");
    assert!(html.contains("回顾合作关系") && html.contains("从未联系"));
});

/// Sends `n` messages on `ch` to a customer and records them sent.
async fn sent(app: &TestApp, c: i64, ch: Channel, n: usize, tag: &str) {
    let s = &app.db.store;
    for i in 0..n {
        let m = NewMessage {
            customer_id: c,
            message_key: format!("test:{tag}:{i}"),
            channel: ch,
            purpose: Purpose::Transactional,
            template_id: None,
            campaign_id: None,
            content: Some(Rendered { subject: Some("周女士".into()), text: "周女士，您好".into(), html: None }),
            skipped: None,
            not_before: s.now(),
        };
        assert!(s.enqueue_message(m).await.unwrap());
    }
    let (out, _) = s.claim_due_messages(100, Duration::minutes(5), "http://localhost").await.unwrap();
    for o in &out {
        s.record_delivery(o, &DeliveryOutcome::Sent).await.unwrap();
    }
}

test_both!(preferred_means_the_calibrated_channel, |db: TestDb| async move {
    let app = spawn_app(db).await;
    let s = &app.db.store;
    let c = customer(
        &app,
        json!({"name": "周敏", "gender": "female", "city": "杭州", "email": "zm@example.com", "mobile": "13800000077",
               "consents": {"sms": true, "email": true}}),
    )
    .await;
    // Another customer who answered nothing: the prior's tie goes to e-mail.
    let other = customer(
        &app,
        json!({"name": "吴涛", "gender": "male", "city": "杭州", "email": "wt@example.com", "mobile": "13800000078",
               "consents": {"sms": true, "email": true}}),
    )
    .await;
    // Three SMS, two answered by a reply; one e-mail, not answered.
    sent(&app, c, Channel::Sms, 3, "s").await;
    sent(&app, c, Channel::Email, 1, "e").await;
    for _ in 0..2 {
        let (st, r) = app
            .post("/api/v1/interactions", json!({"customer_id": c, "kind": "reply", "channel": "sms", "occurred_at": s.now().to_rfc3339()}))
            .await;
        assert_eq!(st, 201, "{r}");
    }
    // Not analysed yet: the live figures are shown, but nothing is calibrated — e-mail first.
    let (_, p) = app.get(&format!("/api/v1/customers/{c}/channels")).await;
    assert_eq!((p["preferred_channel"].as_str(), p["rates_as_of"].is_null()), (Some("email"), true), "{p}");
    assert_eq!(s.preferred_channel(c).await.unwrap(), Some(Channel::Email));

    analyse(&app).await;
    let (_, p) = app.get(&format!("/api/v1/customers/{c}/channels")).await;
    assert_eq!(p["preferred_channel"], "sms", "{p}");
    assert!(p["rates_as_of"].is_string(), "{p}");
    let k = s.customer_next_action(c).await.unwrap();
    assert_eq!(k.preferred_channel, Some(Channel::Sms));
    // The stored rates: Beta(3, 2) for SMS = 0.6, Beta(1, 2) for e-mail = 1/3, ½ untried.
    assert_eq!(preview(&app, "response_rate_sms > 0.59 and response_rate_sms < 0.61").await, vec![c]);
    assert_eq!(preview(&app, "response_rate_email > 0.33 and response_rate_email < 0.34").await, vec![c]);
    assert_eq!(preview(&app, "response_rate_wechat = 0.5 and response_rate_mail = 0.5 and city = \"杭州\"").await, vec![c, other]);
    assert_eq!(preview(&app, r#"preferred_channel = "sms""#).await, vec![c]);
    assert_eq!(preview(&app, r#"preferred_channel = "邮件""#).await, vec![other]);
    let (st, e) = app.post("/api/v1/segments/preview", json!({"rule": r#"preferred_channel = "fax""#})).await;
    assert!((400..500).contains(&st), "{e}");

    // A campaign on `preferred`: SMS for the one who answers SMS, e-mail for the other.
    let (st, tpl) =
        app.post("/api/v1/templates", json!({"name": "周末", "channel": "sms", "body_text": "{{ salutation }}，周末八折，回T退订"})).await;
    assert_eq!(st, 201, "{tpl}");
    let template = tpl["template"]["id"].as_i64().unwrap();
    let settings = s.engagement_settings().await.unwrap();
    let (st, camp) = app
        .post(
            "/api/v1/campaigns",
            json!({"name": "杭州周末", "segment": "city = \"杭州\"", "channel": "preferred", "template_id": template, "holdout_percent": 0}),
        )
        .await;
    assert_eq!(st, 201, "{camp}");
    let id = camp["id"].as_i64().unwrap();
    let (st, l) = app.post(&format!("/api/v1/campaigns/{id}/launch"), json!({})).await;
    assert_eq!(st, 200, "{l}");
    let channel_of = |msgs: Vec<patron_store::engagement::outbox::OutboxMessage>, prefix: &str| {
        msgs.into_iter().filter(|m| m.message_key.starts_with(prefix)).map(|m| m.channel).collect::<Vec<_>>()
    };
    for (who, want) in [(c, "sms"), (other, "email")] {
        let got = channel_of(s.customer_messages(who).await.unwrap(), "campaign:");
        if settings.in_global_control(who) {
            assert!(got.is_empty());
        } else {
            assert_eq!(got, vec![want.to_owned()], "customer {who}");
        }
    }

    // A journey step on `preferred`, after the SMS consent was withdrawn: e-mail now.
    let (st, _) = app.patch(&format!("/api/v1/customers/{c}"), json!({"consents": {"sms": false}})).await;
    assert_eq!(st, 200);
    assert_eq!(s.preferred_channel(c).await.unwrap(), Some(Channel::Email));
    let (st, et) = app
        .post("/api/v1/templates", json!({"name": "感谢", "channel": "email", "subject": "{{ salutation }}，谢谢", "body_text": "{{ salutation }}，感谢您的光临。"}))
        .await;
    assert_eq!(st, 201, "{et}");
    let (st, j) = app
        .post(
            "/api/v1/journeys",
            json!({"name": "首单感谢", "trigger": "first_order",
                   "steps": [{"type": "send", "template_id": et["template"]["id"], "channel": "preferred"}]}),
        )
        .await;
    assert_eq!(st, 201, "{j}");
    let (st, _) = app.post(&format!("/api/v1/journeys/{}/enable", j["id"]), json!({})).await;
    assert_eq!(st, 200);
    order(&app, c, "J1", s.now(), &[]).await;
    s.run_journeys().await.unwrap();
    let got = channel_of(s.customer_messages(c).await.unwrap(), "journey:");
    assert_eq!(got, vec!["email".to_owned()]);
});
