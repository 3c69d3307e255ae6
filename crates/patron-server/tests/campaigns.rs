//! Campaigns over a real server on each engine: a launch queues exactly one message for every
//! consented, uncapped, non-holdout member outside the global control group, records the
//! seeded holdout as skipped messages, and changes nothing when repeated; a second campaign
//! finds the first one's recipients over the cap; bad input is a 4xx that writes nothing; the
//! report's groups, conversions, revenue and lift equal a hand computation on a built dataset.

mod common;

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use common::{error_code, json_of, spawn_app, TestApp};
use patron_server::delivery::Delivery;
use patron_store::db::query;
use patron_store::engagement::campaigns::holdout_draw;
use patron_store::engagement::EngagementSettings;
use patron_store::interactions::NewInteraction;
use patron_store::orders::NewOrder;
use patron_store::test_both;
use patron_store::testing::TestDb;
use patron_store::users::{Actor, Role};
use reqwest::Method;
use serde_json::{json, Value};

async fn customer(app: &TestApp, i: usize, city: &str, consent: bool) -> i64 {
    let (st, c) = app
        .post(
            "/api/v1/customers",
            json!({"name": format!("林{i}"), "gender": "female", "city": city, "email": format!("k{i}@example.com"),
                "consents": {"email": consent}}),
        )
        .await;
    assert_eq!(st, 201, "{c}");
    c["id"].as_i64().unwrap()
}

async fn email_template(app: &TestApp) -> i64 {
    let (st, t) = app
        .post(
            "/api/v1/templates",
            json!({"name": "夏季新品", "channel": "email", "subject": "{{ salutation }}，夏季新品",
                "body_text": "{{ salutation }}，夏季新品到了：https://example.com/summer 退订：{{ unsubscribe_url }}"}),
        )
        .await;
    assert_eq!(st, 201, "{t}");
    t["template"]["id"].as_i64().unwrap()
}

/// The campaign's outbox rows: customer → (status, reason).
async fn rows(app: &TestApp, campaign: i64) -> HashMap<i64, (String, Option<String>)> {
    let r: Vec<(i64, String, Option<String>)> = app
        .db
        .store
        .db
        .reader()
        .fetch_all(query("SELECT customer_id, status, reason FROM outbox WHERE campaign_id = $1").bind(campaign))
        .await
        .unwrap();
    let n = r.len();
    let m: HashMap<i64, (String, Option<String>)> = r.into_iter().map(|(c, s, why)| (c, (s, why))).collect();
    assert_eq!(m.len(), n, "one message per customer");
    m
}

test_both!(campaign_launch_is_exactly_once, |db: TestDb| async move {
    let app = spawn_app(db).await;
    let s = &app.db.store;
    let settings = EngagementSettings { global_control_percent: 20.0, cap_7_days: 1, rate_per_second: 100_000.0, ..Default::default() };
    s.set_engagement_settings(&Actor::cli(), &settings).await.unwrap();
    let outbox_dir = tempfile::tempdir().unwrap();
    let delivery = Delivery::files(outbox_dir.path().to_owned(), &app.base);

    // 48 in 上海 (every sixth without e-mail consent), 8 in 杭州.
    let mut shanghai = Vec::new();
    let mut consented = HashSet::new();
    for i in 0..56 {
        let consent = i % 6 != 5;
        let id = customer(&app, i, if i < 48 { "上海" } else { "杭州" }, consent).await;
        if consent {
            consented.insert(id);
        }
        if i < 48 {
            shanghai.push(id);
        }
    }
    let template = email_template(&app).await;

    // Bad input: 4xx with the envelope, and nothing written.
    let base = json!({"name": "夏季", "segment": "city = \"上海\"", "channel": "email", "template_id": template, "holdout_percent": 25});
    let mut bad = Vec::new();
    for (field, value) in [
        ("holdout_percent", json!(95)),
        ("segment", json!("city = ")),
        ("segment", json!("999999")),
        ("channel", json!("fax")),
        ("template_id", json!(999_999)),
        ("conversion_window_days", json!(0)),
        ("name", json!("  ")),
        ("send_at", json!("2020-01-01T00:00:00Z")),
    ] {
        let mut b = base.clone();
        b[field] = value;
        bad.push((field, b));
    }
    let (_, sms_t) =
        app.post("/api/v1/templates", json!({"name": "短信", "channel": "sms", "body_text": "{{ salutation }}，周末八折，回T退订"})).await;
    let mut wrong_channel = base.clone();
    wrong_channel["template_id"] = sms_t["template"]["id"].clone();
    bad.push(("template_id", wrong_channel));
    for (field, b) in bad {
        let (st, e) = app.post("/api/v1/campaigns", b).await;
        assert!((400..500).contains(&st), "{field}: {st} {e}");
        let code = error_code(&e);
        assert!(!code.is_empty(), "{e}");
        if st == 422 && code == "invalid" {
            assert_eq!(e["error"]["field"], field, "{e}");
        }
    }
    let (_, list) = app.get("/api/v1/campaigns").await;
    assert_eq!(list["items"], json!([]), "nothing written");
    // Agents may not create or launch; unknown campaigns are 404.
    let agent = s.create_user("agent@example.com", "小张", Role::Agent, None).await.unwrap();
    let (_, at) = s.create_token("a", Role::Agent, Some(agent.id)).await.unwrap();
    let (st, e) = json_of(app.req_as(&at, Method::POST, "/api/v1/campaigns").json(&base).send().await.unwrap()).await;
    assert_eq!((st, error_code(&e).as_str()), (403, "forbidden"));
    let (st, e) = app.post("/api/v1/campaigns/424242/launch", json!({})).await;
    assert_eq!((st, error_code(&e).as_str()), (404, "not_found"), "{e}");

    // A first campaign to the first twelve of 上海, no holdout, sent: they reach the cap of one a week.
    let first_twelve = shanghai[11];
    let (st, a) = app
        .post(
            "/api/v1/campaigns",
            json!({"name": "预热", "segment": format!("city = \"上海\" and id <= {first_twelve}"), "channel": "email",
                "template_id": template, "holdout_percent": 0}),
        )
        .await;
    assert_eq!(st, 201, "{a}");
    let a_id = a["id"].as_i64().unwrap();
    let (st, a) = app.post(&format!("/api/v1/campaigns/{a_id}/launch"), json!({})).await;
    assert_eq!(st, 200, "{a}");
    let a_sent: HashSet<i64> =
        shanghai[..12].iter().copied().filter(|id| consented.contains(id) && !settings.in_global_control(*id)).collect();
    assert_eq!(a["counts"]["queued"].as_u64(), Some(a_sent.len() as u64), "{a}");
    let r = delivery.send_due(s, 1000).await.unwrap();
    assert_eq!(r.sent, a_sent.len() as u64, "{r:?}");

    // The campaign: 上海 with a 25% holdout.
    let (st, c) = app.post("/api/v1/campaigns", base.clone()).await;
    assert_eq!(st, 201, "{c}");
    let id = c["id"].as_i64().unwrap();
    assert_eq!((c["status"].as_str(), c["conversion_window_days"].as_i64()), (Some("draft"), Some(7)));
    let (st, launched) = app.post(&format!("/api/v1/campaigns/{id}/launch"), json!({})).await;
    assert_eq!(st, 200, "{launched}");

    let gc: Vec<i64> = shanghai.iter().copied().filter(|c| settings.in_global_control(*c)).collect();
    assert!(!gc.is_empty(), "a 20% global control group among 48");
    let no_consent = shanghai.iter().filter(|c| !settings.in_global_control(**c) && !consented.contains(c)).count();
    let eligible: Vec<i64> =
        shanghai.iter().copied().filter(|c| !settings.in_global_control(*c) && consented.contains(c) && !a_sent.contains(c)).collect();
    let seed = launched["seed"].as_i64().unwrap();
    let holdout = holdout_draw(seed, &eligible, 25.0);
    assert_eq!(holdout.len(), (eligible.len() as f64 * 0.25).round() as usize);
    let counts = &launched["counts"];
    let want = json!({"audience": 48, "global_control": gc.len(), "no_consent": no_consent, "capped": a_sent.len(),
        "holdout": holdout.len(), "queued": eligible.len() - holdout.len(), "sent": 0, "failed": 0, "skipped": 0});
    assert_eq!(counts, &want, "{launched}");

    // Exactly one queued message for each treated member; the holdout skipped, with the reason.
    let before = rows(&app, id).await;
    assert_eq!(before.len(), eligible.len());
    for c in &eligible {
        let (status, reason) = &before[c];
        if holdout.contains(c) {
            assert_eq!((status.as_str(), reason.as_deref()), ("skipped", Some("holdout")));
        } else {
            assert_eq!((status.as_str(), reason.as_deref()), ("queued", None));
        }
    }

    // Launching again (and again at a later time) changes nothing.
    app.db.clock.set(s.now() + Duration::minutes(5));
    let (st, again) = app.post(&format!("/api/v1/campaigns/{id}/launch"), json!({})).await;
    assert_eq!(st, 200);
    assert_eq!((&again["counts"], &again["launched_at"], &again["seed"]), (counts, &launched["launched_at"], &launched["seed"]));
    assert_eq!(rows(&app, id).await, before);
    let (n,): (i64,) = s.db.reader().fetch_one(query("SELECT COUNT(*) FROM outbox")).await.unwrap();
    assert_eq!(n as usize, a_sent.len() + eligible.len());

    // A second campaign to the same members, launched before the first is sent: nothing is sent
    // yet, so nobody new is over the cap at launch — the sender holds the cap of one a week
    // across both campaigns: every eligible member gets exactly one message, from one of them.
    let mut second = base.clone();
    second["name"] = json!("夏季二次");
    second["holdout_percent"] = json!(0);
    let (_, c2) = app.post("/api/v1/campaigns", second).await;
    let id2 = c2["id"].as_i64().unwrap();
    let (st, c2) = app.post(&format!("/api/v1/campaigns/{id2}/launch"), json!({})).await;
    assert_eq!(
        (st, c2["counts"]["queued"].as_u64(), c2["counts"]["capped"].as_u64()),
        (200, Some(eligible.len() as u64), Some(a_sent.len() as u64)),
        "{c2}"
    );
    let r = delivery.send_due(s, 1000).await.unwrap();
    assert_eq!((r.sent, r.skipped), (eligible.len() as u64, (eligible.len() - holdout.len()) as u64), "{r:?}");
    let (_, one) = app.get(&format!("/api/v1/campaigns/{id}")).await;
    let (_, two) = app.get(&format!("/api/v1/campaigns/{id2}")).await;
    let count = |c: &Value, k: &str| c["counts"][k].as_u64().unwrap();
    assert_eq!(count(&one, "sent") + count(&one, "skipped"), (eligible.len() - holdout.len()) as u64, "{one}");
    assert_eq!(count(&two, "sent") + count(&two, "skipped"), eligible.len() as u64, "{two}");
    assert_eq!(count(&one, "sent") + count(&two, "sent"), eligible.len() as u64);
    assert_eq!((count(&one, "queued"), count(&two, "queued"), count(&one, "holdout")), (0, 0, holdout.len() as u64));
    let written = std::fs::read_to_string(outbox_dir.path().join("messages-email.jsonl")).unwrap();
    let mut per_customer: HashMap<i64, usize> = HashMap::new();
    for line in written.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        *per_customer.entry(v["customer_id"].as_i64().unwrap()).or_default() += 1;
    }
    for c in &shanghai {
        let want = usize::from(a_sent.contains(c)) + usize::from(eligible.contains(c));
        assert_eq!(per_customer.get(c).copied().unwrap_or(0), want, "customer {c}");
    }
    let (_, list) = app.get("/api/v1/campaigns").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 3);
    let (_, audit) = app.get("/api/v1/audit?action=launch").await;
    let launches = audit["items"].as_array().unwrap().iter().filter(|e| e["entity"] == "campaign").count();
    assert_eq!(launches, 3, "one audit entry per launch, none for the repeat: {audit}");
});

fn order(customer_id: i64, at: DateTime<Utc>, cents: i64, status: &str) -> NewOrder {
    NewOrder { customer_id: Some(customer_id), ordered_at: at, total_cents: Some(cents), status: Some(status.into()), ..Default::default() }
}

test_both!(campaign_report_equals_a_hand_computation, |db: TestDb| async move {
    let app = spawn_app(db).await;
    let s = &app.db.store;
    s.set_engagement_settings(
        &Actor::cli(),
        &EngagementSettings { global_control_percent: 0.0, rate_per_second: 100_000.0, ..Default::default() },
    )
    .await
    .unwrap();
    let mut ids = Vec::new();
    for i in 0..80 {
        ids.push(customer(&app, i, "苏州", true).await);
    }
    let template = email_template(&app).await;
    let (_, c) = app
        .post(
            "/api/v1/campaigns",
            json!({"name": "苏州", "segment": "city = \"苏州\"", "channel": "email", "template_id": template, "holdout_percent": 50,
                "conversion_window_days": 7}),
        )
        .await;
    let id = c["id"].as_i64().unwrap();
    // Before launch: empty groups, too few to tell.
    let (st, r) = app.get(&format!("/api/v1/campaigns/{id}/report")).await;
    assert_eq!((st, r["too_few_to_tell"].as_bool(), r["treated"]["n"].as_u64()), (200, Some(true), Some(0)), "{r}");
    let (_, launched) = app.post(&format!("/api/v1/campaigns/{id}/launch"), json!({})).await;
    let t0 = s.now();
    let holdout = holdout_draw(launched["seed"].as_i64().unwrap(), &ids, 50.0);
    assert_eq!(holdout.len(), 40);
    let outbox_dir = tempfile::tempdir().unwrap();
    let sent = Delivery::files(outbox_dir.path().to_owned(), &app.base).send_due(s, 1000).await.unwrap();
    assert_eq!(sent.sent, 40);
    let treated: Vec<i64> = ids.iter().copied().filter(|c| !holdout.contains(c)).collect();
    let control: Vec<i64> = ids.iter().copied().filter(|c| holdout.contains(c)).collect();

    // The dataset: treated 0..12 buy 100.00 on day 2 (0..4 twice, the second on day 5); treated
    // 12..15 buy after the window (day 8) or cancelled; control 0..5 buy 80.00 on day 3 and
    // control 5 bought before the send. Treated 0..20 click on day 1, control 0..2 reply.
    let h = Duration::hours;
    let mut orders = Vec::new();
    for (k, c) in treated.iter().enumerate() {
        if k < 12 {
            orders.push(order(*c, t0 + h(30), 10_000, "completed"));
        }
        if k < 4 {
            orders.push(order(*c, t0 + h(100), 2_500, "completed"));
        }
        if k == 12 || k == 13 {
            orders.push(order(*c, t0 + h(8 * 24 + 1), 9_000, "completed"));
        }
        if k == 14 {
            orders.push(order(*c, t0 + h(30), 9_000, "cancelled"));
        }
    }
    for (k, c) in control.iter().enumerate() {
        if k < 5 {
            orders.push(order(*c, t0 + h(60), 8_000, "completed"));
        }
        if k == 5 {
            orders.push(order(*c, t0 - h(2), 8_000, "completed"));
        }
    }
    // Ten days on: every window has closed, and the orders are in the past.
    app.db.clock.set(t0 + Duration::days(10));
    s.create_orders(&Actor::cli(), orders).await.unwrap();
    let mut touches = Vec::new();
    for (k, c) in treated.iter().enumerate().take(20) {
        touches.push(NewInteraction {
            external_id: Some(format!("click-{k}")),
            customer_id: Some(*c),
            customer_external_id: None,
            kind: "click".into(),
            channel: Some("email".into()),
            occurred_at: t0 + h(5),
            payload: None,
        });
    }
    for (k, c) in control.iter().enumerate().take(2) {
        touches.push(NewInteraction {
            external_id: Some(format!("reply-{k}")),
            customer_id: Some(*c),
            customer_external_id: None,
            kind: "reply".into(),
            channel: Some("email".into()),
            occurred_at: t0 + h(10),
            payload: None,
        });
    }
    s.create_interactions(&Actor::cli(), touches).await.unwrap();

    let (st, r) = app.get(&format!("/api/v1/campaigns/{id}/report")).await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["complete"], true);
    let t = &r["treated"];
    assert_eq!(
        (t["n"].as_u64(), t["responders"].as_u64(), t["converters"].as_u64(), t["orders"].as_u64(), t["revenue_cents"].as_i64()),
        (Some(40), Some(20), Some(12), Some(16), Some(12 * 10_000 + 4 * 2_500)),
        "{r}"
    );
    let c = &r["control"];
    assert_eq!(
        (c["n"].as_u64(), c["responders"].as_u64(), c["converters"].as_u64(), c["orders"].as_u64(), c["revenue_cents"].as_i64()),
        (Some(40), Some(2), Some(5), Some(5), Some(5 * 8_000)),
        "{r}"
    );
    // By hand: 12/40 − 5/40 = 0.175; relative (0.3 − 0.125) / 0.125 = 1.4; incremental orders
    // 16 − 5 = 11, revenue 130,000 − 40,000 = 90,000.
    let lift = &r["lift"];
    let d = lift["conversion_difference"]["estimate"].as_f64().unwrap();
    assert!((d - 0.175).abs() < 1e-12, "{r}");
    assert!((lift["relative_lift"].as_f64().unwrap() - 1.4).abs() < 1e-12);
    assert!((lift["incremental_orders"].as_f64().unwrap() - 11.0).abs() < 1e-12);
    assert_eq!(lift["incremental_revenue_cents"].as_i64(), Some(90_000));
    // The interval is Newcombe's (its numbers are pinned to statsmodels in patron-analytics).
    let nc = patron_analytics::lift::newcombe_diff(12, 40, 5, 40, patron_analytics::lift::Z_95).unwrap();
    assert!((lift["conversion_difference"]["low"].as_f64().unwrap() - nc.low).abs() < 1e-12);
    assert!((lift["conversion_difference"]["high"].as_f64().unwrap() - nc.high).abs() < 1e-12);
    // Revenue per recipient: 3,250 − 1,000 = 2,250 cents, Welch's interval around it.
    let rev = &lift["revenue_per_recipient_difference_cents"];
    assert!((rev["estimate"].as_f64().unwrap() - 2_250.0).abs() < 1e-9, "{r}");
    assert!(rev["low"].as_f64().unwrap() < 2_250.0 && rev["high"].as_f64().unwrap() > 2_250.0);
    // Cumulative conversion: treated 12/40 from day 2, control 5/40 from day 3.
    let by_day = r["by_day"].as_array().unwrap();
    assert_eq!(by_day.len(), 7);
    let day = |d: usize, g: &str| by_day[d - 1][g].as_f64().unwrap();
    assert_eq!((day(1, "treated"), day(2, "treated"), day(7, "treated")), (0.0, 0.3, 0.3));
    assert_eq!((day(2, "control"), day(3, "control"), day(7, "control")), (0.0, 0.125, 0.125));

    // The global control report: with no group at all, too few to tell.
    let (st, g) = app.get("/api/v1/campaigns/global-control/report?from=2026-06-01&to=2026-07-31").await;
    assert_eq!((st, g["too_few_to_tell"].as_bool(), g["marketed"]["n"].as_u64()), (200, Some(true), Some(80)), "{g}");
    assert_eq!(g["marketed"]["revenue_cents"].as_i64(), Some(12 * 10_000 + 4 * 2_500 + 2 * 9_000 + 6 * 8_000));
    let (st, e) = app.get("/api/v1/campaigns/global-control/report?from=2026-07-31&to=2026-06-01").await;
    assert_eq!((st, error_code(&e).as_str(), e["error"]["field"].as_str()), (400, "invalid", Some("to")), "{e}");
    let (st, _) = app.get("/api/v1/campaigns/global-control/report?from=yesterday").await;
    assert_eq!(st, 400);
});

test_both!(global_control_report_compares_revenue, |db: TestDb| async move {
    let app = spawn_app(db).await;
    let s = &app.db.store;
    let settings = EngagementSettings { global_control_percent: 30.0, ..Default::default() };
    s.set_engagement_settings(&Actor::cli(), &settings).await.unwrap();
    let mut orders = Vec::new();
    let (mut gc, mut others) = (Vec::new(), Vec::new());
    let t0 = s.now();
    for i in 0..160 {
        let id = customer(&app, i, "南京", true).await;
        let cents = 1_000 * (i as i64 % 7);
        if cents > 0 {
            orders.push(order(id, t0 - Duration::days(3), cents, "completed"));
        }
        if settings.in_global_control(id) {
            gc.push(cents as f64)
        } else {
            others.push(cents as f64)
        }
    }
    s.create_orders(&Actor::cli(), orders).await.unwrap();
    assert!(gc.len() >= 30 && others.len() >= 30, "{} {}", gc.len(), others.len());
    let (st, g) = app.get("/api/v1/campaigns/global-control/report?from=2026-06-01&to=2026-06-30").await;
    assert_eq!(st, 200, "{g}");
    assert_eq!((g["control"]["n"].as_u64(), g["marketed"]["n"].as_u64()), (Some(gc.len() as u64), Some(others.len() as u64)));
    let want = patron_analytics::lift::welch_diff(&others, &gc).unwrap();
    let d = &g["difference_cents"];
    assert!((d["estimate"].as_f64().unwrap() - want.estimate).abs() < 1e-9, "{g}");
    assert!((d["low"].as_f64().unwrap() - want.low).abs() < 1e-9);
    assert!((d["high"].as_f64().unwrap() - want.high).abs() < 1e-9);
});
