//! Journeys, tasks and channel calibration over a real server on each engine (issue 12 §5, §6):
//! entries from the events table with an injected clock (waits), a yes/no branch, the goal
//! ending an entry early, the re-entry rule, once at a time, two schedulers racing with one
//! message and one task per step, the holdout recorded; tasks scoped to their agents; the Beta
//! posterior of each channel and the preferred channel; bad input refused with nothing written.

mod common;

use chrono::Duration;
use common::{error_code, json_of, spawn_app, TestApp};
use patron_store::engagement::outbox::{DeliveryOutcome, NewMessage};
use patron_store::engagement::templates::Rendered;
use patron_store::engagement::{Channel, Purpose};
use patron_store::tasks::TaskFilter;
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

async fn order(app: &TestApp, customer_id: i64, ext: &str) {
    let at = app.db.store.now().to_rfc3339();
    let (st, o) = app
        .post(
            "/api/v1/orders",
            json!({"customer_id": customer_id, "external_id": ext, "ordered_at": at, "store": "静安店", "total_cents": 8800, "status": "completed"}),
        )
        .await;
    assert_eq!(st, 201, "{o}");
}

/// Runs two scheduler rounds at once (two schedulers racing).
async fn race(app: &TestApp) {
    let s = &app.db.store;
    let (a, b) = tokio::join!(s.run_journeys(), s.run_journeys());
    a.unwrap();
    b.unwrap();
}

fn journey_messages(msgs: &[patron_store::engagement::outbox::OutboxMessage]) -> Vec<&patron_store::engagement::outbox::OutboxMessage> {
    msgs.iter().filter(|m| m.message_key.starts_with("journey:")).collect()
}

test_both!(journeys_advance_exactly_once, |db: TestDb| async move {
    let app = spawn_app(db).await;
    let s = &app.db.store;
    let clock = app.db.clock.clone();
    let start = s.now();
    let agent = s.create_user("owner@example.com", "王经理", Role::Agent, None).await.unwrap();
    let (_, tpl) =
        app.post("/api/v1/templates", json!({"name": "回访", "channel": "sms", "body_text": "{{ salutation }}，周末见。回T退订"})).await;
    let template = tpl["template"]["id"].as_i64().expect("template");

    let steps = json!([
        {"type": "wait", "days": 1},
        {"type": "condition", "rule": "city = \"上海\"", "yes": 2, "no": 4},
        {"type": "send", "template_id": template, "channel": "preferred"},
        {"type": "exit"},
        {"type": "task", "title": "打个电话", "due_days": 2},
        {"type": "tag", "add": "已回访"}
    ]);
    // Bad input: 4xx in the envelope, nothing written.
    let (_, before) = app.get("/api/v1/journeys").await;
    let n_before = before["items"].as_array().unwrap().len();
    for (body, field) in [
        (json!({"name": "x", "trigger": "nope", "steps": steps}), "trigger"),
        (
            json!({"name": "x", "trigger": "first_order", "steps": [{"type": "wait", "days": 1}, {"type": "condition", "rule": "city = \"上海\"", "yes": 0}]}),
            "steps[1]",
        ),
        (json!({"name": "x", "trigger": "first_order", "steps": [{"type": "condition", "rule": "nonsense >>> 1"}]}), "steps[0]"),
        (json!({"name": "x", "trigger": "first_order", "steps": [{"type": "send", "template_id": 999999, "channel": "sms"}]}), "steps[0]"),
        (json!({"name": "x", "trigger": "first_order", "steps": [], "holdout_percent": 5}), "steps"),
        (json!({"name": "x", "trigger": "first_order", "steps": steps, "holdout_percent": 95}), "holdout_percent"),
        (json!({"name": "x", "trigger": "first_order", "steps": steps, "reentry_days": 0}), "reentry_days"),
    ] {
        let (st, e) = app.post("/api/v1/journeys", body).await;
        assert_eq!(st, 422, "{e}");
        assert_eq!(e["error"]["field"], field, "{e}");
        error_code(&e);
    }
    let (st, e) = app.post("/api/v1/journeys", json!({"name": "x", "trigger": "first_order", "steps": [{"type": "teleport"}]})).await;
    assert!((400..500).contains(&st), "{e}");
    error_code(&e);
    let (_, after) = app.get("/api/v1/journeys").await;
    assert_eq!(after["items"].as_array().unwrap().len(), n_before);
    // Agents may not manage journeys.
    let (_, agent_token) = s.create_token("a", Role::Agent, Some(agent.id)).await.unwrap();
    let (st, _) = json_of(app.req_as(&agent_token, Method::GET, "/api/v1/journeys").send().await.unwrap()).await;
    assert_eq!(st, 403);

    let (st, j) = app
        .post(
            "/api/v1/journeys",
            json!({"name": "新客回访", "trigger": "first_order", "goal": "order_completed", "steps": steps, "reentry_days": 30}),
        )
        .await;
    assert_eq!(st, 201, "{j}");
    let jid = j["id"].as_i64().unwrap();
    assert_eq!(j["enabled"], false);
    let (st, j) = app.post(&format!("/api/v1/journeys/{jid}/enable"), json!({})).await;
    assert_eq!((st, j["enabled"].as_bool()), (200, Some(true)), "{j}");

    let shanghai =
        customer(&app, json!({"name": "李娜", "gender": "female", "city": "上海", "mobile": "13800000001", "consents": {"sms": true}}))
            .await;
    let beijing = customer(
        &app,
        json!({"name": "赵强", "gender": "male", "city": "北京", "mobile": "13800000002", "owner_id": agent.id, "consents": {"sms": true}}),
    )
    .await;
    let goal =
        customer(&app, json!({"name": "钱多", "gender": "male", "city": "上海", "mobile": "13800000003", "consents": {"sms": true}})).await;
    for (c, ext) in [(shanghai, "A1"), (beijing, "B1"), (goal, "C1")] {
        order(&app, c, ext).await;
    }
    race(&app).await;
    race(&app).await;
    for c in [shanghai, beijing, goal] {
        let entries = s.customer_journey_entries(c).await.unwrap();
        assert_eq!(entries.len(), 1, "one entry each, whatever ran twice: {entries:?}");
        assert_eq!((entries[0].status.as_str(), entries[0].step), ("active", 1), "{entries:?}");
    }
    // The goal: a second order within the wait ends that entry early.
    clock.set(start + Duration::hours(2));
    order(&app, goal, "C2").await;
    race(&app).await;
    assert_eq!(s.customer_journey_entries(goal).await.unwrap()[0].status, "goal");
    // Not a day yet: nothing sent.
    assert!(journey_messages(&s.customer_messages(shanghai).await.unwrap()).is_empty());

    // A day later, two schedulers at once: the branch, one message, one task, one tag.
    clock.set(start + Duration::hours(25));
    race(&app).await;
    race(&app).await;
    let msgs = s.customer_messages(shanghai).await.unwrap();
    let jm = journey_messages(&msgs);
    assert_eq!(jm.len(), 1, "{msgs:?}");
    assert_eq!(jm[0].channel, "sms");
    let e = &s.customer_journey_entries(shanghai).await.unwrap()[0];
    assert_eq!(e.status, "exited", "{e:?}");
    assert!(journey_messages(&s.customer_messages(beijing).await.unwrap()).is_empty());
    let tasks = s.tasks(&Actor::cli(), &TaskFilter { customer_id: Some(beijing), ..Default::default() }).await.unwrap();
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    assert_eq!((tasks[0].assignee_id, tasks[0].title.as_str()), (Some(agent.id), "打个电话"));
    let (_, c) = app.get(&format!("/api/v1/customers/{beijing}")).await;
    assert!(c.to_string().contains("已回访"), "{c}");
    assert_eq!(s.customer_journey_entries(beijing).await.unwrap()[0].status, "completed");
    assert_eq!(s.customer_journey_entries(goal).await.unwrap()[0].status, "goal");

    // The report.
    let (st, r) = app.get(&format!("/api/v1/journeys/{jid}/report")).await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["total"]["entered"], 3);
    assert_eq!(r["total"]["reached_goal"], 1);
    assert_eq!(r["total"]["exited"], 1);
    assert_eq!(r["total"]["completed"], 1);
    assert_eq!(r["total"]["active"], 0);
    assert_eq!(r["lift"]["too_few_to_tell"], true);
    let (st, _) = app.get("/api/v1/journeys/999999/report").await;
    assert_eq!(st, 404);

    // Re-entry and once at a time: every completed order starts this one; 30 days between entries.
    let (st, j2) = app
        .post(
            "/api/v1/journeys",
            json!({"name": "复购", "trigger": "order_completed", "steps": [{"type": "wait", "days": 10}], "reentry_days": 30, "holdout_percent": 50}),
        )
        .await;
    assert_eq!(st, 201, "{j2}");
    let j2 = j2["id"].as_i64().unwrap();
    app.post(&format!("/api/v1/journeys/{j2}/enable"), json!({})).await;
    let regular = customer(&app, json!({"name": "孙丽", "gender": "female", "mobile": "13800000009", "consents": {"sms": true}})).await;
    let t0 = start + Duration::days(2);
    clock.set(t0);
    order(&app, regular, "R1").await;
    race(&app).await;
    clock.set(t0 + Duration::days(1));
    order(&app, regular, "R2").await; // in the journey now: no second entry
    race(&app).await;
    assert_eq!(s.customer_journey_entries(regular).await.unwrap().iter().filter(|e| e.journey_id == j2).count(), 1);
    clock.set(t0 + Duration::days(12));
    race(&app).await; // the wait is over: completed
    order(&app, regular, "R3").await; // ended, but within 30 days of the last entry
    race(&app).await;
    let mine: Vec<_> = s.customer_journey_entries(regular).await.unwrap().into_iter().filter(|e| e.journey_id == j2).collect();
    assert_eq!(mine.len(), 1, "{mine:?}");
    assert_eq!(mine[0].status, "completed");
    clock.set(t0 + Duration::days(31));
    order(&app, regular, "R4").await;
    race(&app).await;
    let mine: Vec<_> = s.customer_journey_entries(regular).await.unwrap().into_iter().filter(|e| e.journey_id == j2).collect();
    assert_eq!(mine.len(), 2, "re-entered after 30 days: {mine:?}");

    // The holdout is recorded per entry: twenty customers at 50%, both groups present.
    for i in 0..20 {
        let c = customer(&app, json!({"name": format!("客{i}"), "mobile": format!("139000000{i:02}")})).await;
        order(&app, c, &format!("H{i}")).await;
    }
    race(&app).await;
    let (_, r) = app.get(&format!("/api/v1/journeys/{j2}/report")).await;
    let (t, h) = (r["treated"]["entered"].as_i64().unwrap(), r["holdout"]["entered"].as_i64().unwrap());
    assert_eq!(t + h, 22, "{r}");
    assert!(t > 0 && h > 0, "{r}");
    // Disabled: no new entries.
    app.post(&format!("/api/v1/journeys/{j2}/disable"), json!({})).await;
    let late = customer(&app, json!({"name": "迟到", "mobile": "13900000099"})).await;
    order(&app, late, "L1").await;
    race(&app).await;
    assert!(!s.customer_journey_entries(late).await.unwrap().iter().any(|e| e.journey_id == j2));
});

test_both!(tasks_are_scoped_to_their_agents, |db: TestDb| async move {
    let app = spawn_app(db).await;
    let s = &app.db.store;
    let a1 = s.create_user("a1@example.com", "小张", Role::Agent, None).await.unwrap();
    let a2 = s.create_user("a2@example.com", "小李", Role::Agent, None).await.unwrap();
    let (_, t1) = s.create_token("a1", Role::Agent, Some(a1.id)).await.unwrap();
    let (_, t2) = s.create_token("a2", Role::Agent, Some(a2.id)).await.unwrap();
    let x = customer(&app, json!({"name": "甲", "owner_id": a1.id})).await;
    let y = customer(&app, json!({"name": "乙", "owner_id": a2.id})).await;

    let (st, t) = json_of(
        app.req_as(&t1, Method::POST, "/api/v1/tasks")
            .json(&json!({"title": "回访甲", "customer_id": x, "due_on": "2026-07-03"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 201, "{t}");
    assert_eq!((t["assignee_id"].as_i64(), t["customer_name"].as_str()), (Some(a1.id), Some("甲")));
    let task = t["id"].as_i64().unwrap();
    // A customer outside the agent's scope does not exist for them.
    let (st, e) =
        json_of(app.req_as(&t1, Method::POST, "/api/v1/tasks").json(&json!({"title": "x", "customer_id": y})).send().await.unwrap()).await;
    assert_eq!((st, error_code(&e).as_str()), (404, "not_found"), "{e}");
    // Bad input: the envelope, nothing written.
    for (body, code) in [
        (json!({"title": "  "}), 422),
        (json!({"title": "x".repeat(201)}), 422),
        (json!({"title": "x", "assignee_id": 999999}), 422),
        (json!({"title": "x", "due_on": "tomorrow"}), 422),
        (json!({"title": "x", "colour": "red"}), 422),
    ] {
        let (st, e) = json_of(app.req_as(&t1, Method::POST, "/api/v1/tasks").json(&body).send().await.unwrap()).await;
        assert!(st == code || st == 400, "{body}: {st} {e}");
        error_code(&e);
    }
    let all = s.tasks(&Actor::cli(), &TaskFilter::default()).await.unwrap();
    assert_eq!(all.len(), 1, "{all:?}");
    // A manager's task for the second agent, about nobody.
    let (st, m) = app.post("/api/v1/tasks", json!({"title": "整理名单", "assignee_id": a2.id})).await;
    assert_eq!(st, 201, "{m}");
    let list = |tok: String, q: &'static str| {
        let app = &app;
        async move {
            let (st, l) = json_of(app.req_as(&tok, Method::GET, &format!("/api/v1/tasks{q}")).send().await.unwrap()).await;
            assert_eq!(st, 200, "{l}");
            l["items"].as_array().unwrap().iter().map(|t| t["title"].as_str().unwrap().to_owned()).collect::<Vec<_>>()
        }
    };
    assert_eq!(list(t1.clone(), "").await, vec!["回访甲"]);
    assert_eq!(list(t2.clone(), "").await, vec!["整理名单"]);
    assert_eq!(list(t2.clone(), "?mine=true").await, vec!["整理名单"]);
    let (_, everything) = app.get("/api/v1/tasks").await;
    assert_eq!(everything["items"].as_array().unwrap().len(), 2);
    // Only who sees a task changes it.
    let (st, _) =
        json_of(app.req_as(&t2, Method::PATCH, &format!("/api/v1/tasks/{task}")).json(&json!({"done": true})).send().await.unwrap()).await;
    assert_eq!(st, 404);
    let (st, d) =
        json_of(app.req_as(&t1, Method::PATCH, &format!("/api/v1/tasks/{task}")).json(&json!({"done": true})).send().await.unwrap()).await;
    assert_eq!((st, d["done"].as_bool()), (200, Some(true)), "{d}");
    assert!(d["done_at"].is_string());
    assert_eq!(list(t1.clone(), "?done=false").await, Vec::<String>::new());
    let (st, e) =
        json_of(app.req_as(&t1, Method::PATCH, &format!("/api/v1/tasks/{task}")).json(&json!({"title": ""})).send().await.unwrap()).await;
    assert_eq!((st, e["error"]["field"].as_str()), (422, Some("title")), "{e}");
});

test_both!(channel_calibration_prefers_the_channel_answered, |db: TestDb| async move {
    let app = spawn_app(db).await;
    let s = &app.db.store;
    let c = customer(
        &app,
        json!({"name": "周敏", "gender": "female", "email": "zm@example.com", "mobile": "13800000077", "consents": {"sms": true, "email": true}}),
    )
    .await;
    // Three SMS sent, two answered by a reply; one e-mail sent, not answered.
    let now = s.now();
    for (i, ch) in [Channel::Sms, Channel::Sms, Channel::Sms, Channel::Email].into_iter().enumerate() {
        let m = NewMessage {
            customer_id: c,
            message_key: format!("test:{i}"),
            channel: ch,
            purpose: Purpose::Transactional,
            template_id: None,
            campaign_id: None,
            content: Some(Rendered { subject: Some("周女士".into()), text: "周女士，您好".into(), html: None }),
            skipped: None,
            not_before: now,
        };
        assert!(s.enqueue_message(m).await.unwrap());
    }
    let (out, _) = s.claim_due_messages(100, Duration::minutes(5), "http://localhost").await.unwrap();
    assert_eq!(out.len(), 4);
    for o in &out {
        s.record_delivery(o, &DeliveryOutcome::Sent).await.unwrap();
    }
    for _ in 0..2 {
        let (st, r) = app
            .post("/api/v1/interactions", json!({"customer_id": c, "kind": "reply", "channel": "sms", "occurred_at": now.to_rfc3339()}))
            .await;
        assert_eq!(st, 201, "{r}");
    }
    // The preferred channel is calibrated by an analysis run (calibration as data): before
    // one, every channel has the prior's ½ and the tie goes to e-mail.
    assert_eq!(s.preferred_channel(c).await.unwrap(), Some(Channel::Email));
    let today = s.now().with_timezone(&s.config.business_tz).date_naive();
    s.run_analysis(&Actor::cli(), today, &Default::default()).await.unwrap();
    let (st, p) = app.get(&format!("/api/v1/customers/{c}/channels")).await;
    assert_eq!(st, 200, "{p}");
    assert_eq!(p["preferred_channel"], "sms", "{p}");
    let by = |ch: &str| p["channels"].as_array().unwrap().iter().find(|x| x["channel"] == ch).unwrap().clone();
    let sms = by("sms");
    assert_eq!((sms["sends"].as_i64(), sms["responses"].as_i64()), (Some(3), Some(2)));
    let want = patron_analytics::calibration::response_posterior(3, 2);
    assert!((sms["response_rate"].as_f64().unwrap() - 0.6).abs() < 1e-12);
    assert!((sms["low"].as_f64().unwrap() - want.low).abs() < 1e-12 && (sms["high"].as_f64().unwrap() - want.high).abs() < 1e-12);
    let email = by("email");
    assert_eq!((email["sends"].as_i64(), email["responses"].as_i64()), (Some(1), Some(0)));
    assert!((email["response_rate"].as_f64().unwrap() - 1.0 / 3.0).abs() < 1e-12);
    // WeChat was never tried (mean ½) but has no consent: not preferred.
    assert!((by("wechat")["response_rate"].as_f64().unwrap() - 0.5).abs() < 1e-12);
    assert_eq!(s.preferred_channel(c).await.unwrap(), Some(Channel::Sms));
    // Consent withdrawn: the e-mail it is.
    let (st, _) = app.patch(&format!("/api/v1/customers/{c}"), json!({"consents": {"sms": false}})).await;
    assert_eq!(st, 200);
    assert_eq!(s.preferred_channel(c).await.unwrap(), Some(Channel::Email));
    let (st, _) = app.get("/api/v1/customers/999999/channels").await;
    assert_eq!(st, 404);
});
