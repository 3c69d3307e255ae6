//! Customer events (issue 19 §6) on each engine: registration over capacity refused and the
//! last seat won by one of two concurrent registrations; invitations exactly once however often
//! (and however concurrently) they run, their registration link derived when sent and never
//! stored; the public page (forged, malformed and expired links 404, nothing shown but the event
//! and the invitee's own registration, rate-limited); check-in, walk-ins, cancellation, the
//! post-event survey through the outbox once, the timeline and the domain events; a merge that
//! keeps one seat; the report on known data computed independently here; bad input refused with
//! the error envelope.

mod common;

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use common::{error_code, json_of, spawn_app, TestApp};
use patron_store::engagement::EngagementSettings;
use patron_store::orders::NewOrder;
use patron_store::test_both;
use patron_store::testing::TestDb;
use patron_store::users::{Actor, Role};
use reqwest::Method;
use serde_json::{json, Value};

async fn quiet_settings(app: &TestApp) {
    app.db
        .store
        .set_engagement_settings(
            &Actor::cli(),
            &EngagementSettings { global_control_percent: 0.0, rate_per_second: 100_000.0, ..Default::default() },
        )
        .await
        .unwrap();
}

async fn customer(app: &TestApp, name: &str, city: &str, consent: bool) -> i64 {
    let (st, c) = app
        .post(
            "/api/v1/customers",
            json!({"name": name, "gender": "female", "city": city, "email": format!("{}@example.com", name.replace(' ', "")),
                "consents": {"email": consent}}),
        )
        .await;
    assert_eq!(st, 201, "{c}");
    c["id"].as_i64().unwrap()
}

/// An event starting `days` from the test clock's now, lasting two hours.
async fn event(app: &TestApp, title: &str, days: i64, capacity: i64) -> Value {
    let now = app.db.store.now();
    let starts = now + Duration::days(days);
    let (st, e) = app
        .post(
            "/api/v1/customer-events",
            json!({"title": title, "kind": "seminar", "description": "主厨讲解", "starts_at": starts, "ends_at": starts + Duration::hours(2),
                "place": "上海徐汇店", "link": "https://meet.example.com/x", "capacity": capacity}),
        )
        .await;
    assert_eq!(st, 201, "{e}");
    e
}

async fn register(app: &TestApp, event: i64, customer: i64) -> (u16, Value) {
    app.post(&format!("/api/v1/customer-events/{event}/registrations"), json!({"customer_id": customer})).await
}

fn at(v: &Value) -> DateTime<Utc> {
    v.as_str().unwrap().parse().unwrap()
}

test_both!(registration_over_capacity_is_refused_and_the_last_seat_goes_once, |db: TestDb| async move {
    let app = spawn_app(db).await;
    let ids: Vec<i64> = {
        let mut v = Vec::new();
        for i in 0..12 {
            v.push(customer(&app, &format!("座位{i}"), "上海", true).await);
        }
        v
    };
    // One seat, two registrations at once: one wins, the other is refused.
    let e = event(&app, "小型品鉴会", 7, 1).await;
    let id = e["id"].as_i64().unwrap();
    let path = format!("/api/v1/customer-events/{id}/registrations");
    let a = app.req(Method::POST, &path).json(&json!({"customer_id": ids[0]})).send();
    let b = app.req(Method::POST, &path).json(&json!({"customer_id": ids[1]})).send();
    let (ra, rb) = tokio::join!(a, b);
    let (sa, va) = json_of(ra.unwrap()).await;
    let (sb, vb) = json_of(rb.unwrap()).await;
    let mut statuses = [sa, sb];
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 409], "{va} {vb}");
    let loser = if sa == 409 { &va } else { &vb };
    assert_eq!(error_code(loser), "invalid_state");
    let winner = if sa == 201 { ids[0] } else { ids[1] };
    let (_, got) = app.get(&format!("/api/v1/customer-events/{id}")).await;
    assert_eq!((got["seats_taken"].as_i64(), got["registered"].as_i64()), (Some(1), Some(1)), "{got}");

    // Over capacity: refused, nothing written. The winner again: the same registration.
    let (st, v) = register(&app, id, ids[2]).await;
    assert_eq!((st, error_code(&v)), (409, "invalid_state".into()), "{v}");
    let (st, v) = register(&app, id, winner).await;
    assert_eq!((st, v["status"].as_str()), (201, Some("registered")), "{v}");
    let (_, got) = app.get(&format!("/api/v1/customer-events/{id}")).await;
    assert_eq!(got["seats_taken"], 1, "{got}");

    // Cancelling frees the seat for someone else; cancelling again changes nothing.
    let r = app.req(Method::DELETE, &format!("{path}/{winner}")).send().await.unwrap();
    let (st, v) = json_of(r).await;
    assert_eq!((st, v["status"].as_str()), (200, Some("cancelled")), "{v}");
    let r = app.req(Method::DELETE, &format!("{path}/{winner}")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let (st, _) = register(&app, id, ids[2]).await;
    assert_eq!(st, 201);
    let (_, got) = app.get(&format!("/api/v1/customer-events/{id}")).await;
    assert_eq!((got["seats_taken"].as_i64(), got["registered"].as_i64()), (Some(1), Some(1)), "{got}");
    // The capacity cannot go below the seats taken... (raising it is fine)
    let (st, v) = app.patch(&format!("/api/v1/customer-events/{id}"), json!({"capacity": 3})).await;
    assert_eq!(st, 200, "{v}");

    // Ten registrations at once for three seats: exactly three get one.
    let e = event(&app, "十抢三", 7, 3).await;
    let id = e["id"].as_i64().unwrap();
    let path = format!("/api/v1/customer-events/{id}/registrations");
    let tasks: Vec<_> =
        ids[2..12].iter().map(|c| tokio::spawn(app.req(Method::POST, &path).json(&json!({"customer_id": c})).send())).collect();
    let mut won = 0;
    for t in tasks {
        let r = t.await.unwrap().unwrap();
        match r.status().as_u16() {
            201 => won += 1,
            409 => {}
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(won, 3);
    let (_, got) = app.get(&format!("/api/v1/customer-events/{id}")).await;
    assert_eq!((got["seats_taken"].as_i64(), got["registered"].as_i64()), (Some(3), Some(3)), "{got}");
    let (_, regs) = app.get(&path).await;
    assert_eq!(regs["items"].as_array().unwrap().len(), 3, "{regs}");
});

/// The registration links in the claimed invitation messages: customer → token.
async fn claimed_links(app: &TestApp, base: &str) -> HashMap<i64, String> {
    let (out, _) = app.db.store.claim_due_messages(1000, Duration::minutes(5), base).await.unwrap();
    let mut links = HashMap::new();
    for o in out {
        assert!(!o.content.text.contains("{{public_url}}"), "{}", o.content.text);
        if let Some(i) = o.content.text.find(&format!("{base}/p/e/")) {
            let token: String = o.content.text[i + base.len() + 5..].chars().take(64).collect();
            assert!(token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit()), "{}", o.content.text);
            let html = o.content.html.clone().unwrap_or_default();
            assert!(html.contains(&token), "the HTML part carries the same link: {html}");
            links.insert(o.customer_id, token);
        }
    }
    links
}

async fn page(app: &TestApp, method: Method, path: &str, form: &[(&str, &str)]) -> (u16, String) {
    let client = reqwest::Client::new();
    let mut r = client.request(method, format!("{}{path}", app.base));
    if !form.is_empty() {
        r = r.form(form);
    }
    let r = r.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

test_both!(invitations_go_out_exactly_once_and_the_link_registers, |db: TestDb| async move {
    let app = spawn_app(db).await;
    quiet_settings(&app).await;
    let s = &app.db.store;
    let mut invitees = Vec::new();
    for i in 0..6 {
        invitees.push(customer(&app, &format!("杭州客户{i}"), "杭州", true).await);
    }
    let no_consent = customer(&app, "杭州无同意", "杭州", false).await;
    let elsewhere = customer(&app, "北京客户", "北京", true).await;
    let e = event(&app, "西湖茶会", 10, 50).await;
    let id = e["id"].as_i64().unwrap();
    let inv = format!("/api/v1/customer-events/{id}/invitations");
    let body = json!({"segment": "city = \"杭州\"", "channel": "email"});
    let (st, o) = app.post(&inv, body.clone()).await;
    assert_eq!(st, 200, "{o}");
    assert_eq!((o["audience"].as_i64(), o["invited"].as_i64(), o["no_consent"].as_i64()), (Some(7), Some(6), Some(1)), "{o}");
    // Again: nobody twice.
    let (_, o) = app.post(&inv, body.clone()).await;
    assert_eq!((o["invited"].as_i64(), o["already_invited"].as_i64()), (Some(0), Some(6)), "{o}");
    // Two more customers, then two runs at once: each new customer invited by exactly one.
    invitees.push(customer(&app, "杭州新客甲", "杭州", true).await);
    invitees.push(customer(&app, "杭州新客乙", "杭州", true).await);
    let a = app.req(Method::POST, &inv).json(&body).send();
    let b = app.req(Method::POST, &inv).json(&body).send();
    let (ra, rb) = tokio::join!(a, b);
    let (sa, oa) = json_of(ra.unwrap()).await;
    let (sb, ob) = json_of(rb.unwrap()).await;
    assert_eq!((sa, sb), (200, 200), "{oa} {ob}");
    assert_eq!(oa["invited"].as_i64().unwrap() + ob["invited"].as_i64().unwrap(), 2, "{oa} {ob}");
    let key = format!("customer_event:{id}");
    let rows: Vec<(i64, String)> =
        s.db.reader()
            .fetch_all(patron_store::db::query("SELECT customer_id, purpose FROM outbox WHERE message_key = $1").bind(key.clone()))
            .await
            .unwrap();
    let who: HashSet<i64> = rows.iter().map(|r| r.0).collect();
    assert_eq!(rows.len(), 8, "one message per invitee: {rows:?}");
    assert_eq!(who, invitees.iter().copied().collect::<HashSet<_>>());
    assert!(rows.iter().all(|r| r.1 == "marketing"));
    assert!(!who.contains(&no_consent) && !who.contains(&elsewhere));
    let (_, got) = app.get(&format!("/api/v1/customer-events/{id}")).await;
    assert_eq!(got["invited"], 8, "{got}");

    // Sent: each message carries its own link; neither the token nor the link is stored.
    let base = "https://crm.example.com";
    let links = claimed_links(&app, base).await;
    assert_eq!(links.len(), 8);
    assert_eq!(links.values().collect::<HashSet<_>>().len(), 8, "a token per invitee");
    let token = links[&invitees[0]].clone();
    let stored: Vec<(String,)> =
        s.db.reader()
            .fetch_all(patron_store::db::query(
                "SELECT COALESCE(CAST(content AS TEXT), '') || ' ' || COALESCE(CAST(links AS TEXT), '') FROM outbox \
             UNION ALL SELECT token_hash FROM customer_event_tokens",
            ))
            .await
            .unwrap();
    assert!(stored.iter().all(|(t,)| !t.contains(&token)), "the token is nowhere in the database");

    // The page: the event, nothing about the customer; register, then it says so.
    let (st, html) = page(&app, Method::GET, &format!("/p/e/{token}"), &[]).await;
    assert_eq!(st, 200, "{html}");
    assert!(html.contains("西湖茶会") && html.contains("上海徐汇店"), "{html}");
    assert!(!html.contains("杭州客户0") && !html.contains("@example.com"), "nothing about the customer: {html}");
    assert!(!html.contains("meet.example.com"), "the meeting link only once registered");
    let (st, html) = page(&app, Method::POST, &format!("/p/e/{token}?lang=en"), &[("action", "register")]).await;
    assert_eq!(st, 200, "{html}");
    assert!(html.contains("You are registered") && html.contains("meet.example.com"), "{html}");
    let (st, _) = page(&app, Method::POST, &format!("/p/e/{token}"), &[("action", "register")]).await;
    assert_eq!(st, 200, "registering twice changes nothing");
    let (_, regs) = app.get(&format!("/api/v1/customer-events/{id}/registrations")).await;
    let items = regs["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{regs}");
    assert_eq!(
        (items[0]["customer_id"].as_i64(), items[0]["source"].as_str(), items[0]["invited"].as_bool()),
        (Some(invitees[0]), Some("link"), Some(true))
    );
    // Cancel through the link.
    let (st, html) = page(&app, Method::POST, &format!("/p/e/{token}?lang=en"), &[("action", "cancel")]).await;
    assert_eq!(st, 200);
    assert!(html.contains("Your registration is cancelled"), "{html}");
    let (_, got) = app.get(&format!("/api/v1/customer-events/{id}")).await;
    assert_eq!(got["seats_taken"], 0, "{got}");
    let (_, tl) = app.get(&format!("/api/v1/customers/{}/timeline", invitees[0])).await;
    let ev: Vec<&Value> = tl["items"].as_array().unwrap().iter().filter(|x| x["kind"] == "event").collect();
    assert!(ev.iter().any(|x| x["title"] == "cancelled · 西湖茶会" && x["id"] == id), "{tl}");
    let (st, _) = page(&app, Method::POST, &format!("/p/e/{token}"), &[("action", "register")]).await;
    assert_eq!(st, 200);

    // On the timeline and in the event log.
    let (_, tl) = app.get(&format!("/api/v1/customers/{}/timeline", invitees[0])).await;
    let ev: Vec<&Value> = tl["items"].as_array().unwrap().iter().filter(|x| x["kind"] == "event").collect();
    assert!(ev.iter().any(|x| x["title"] == "registered · 西湖茶会" && x["id"] == id), "{tl}");
    let (_, log) = app.get(&format!("/api/v1/events?type=customer_event.registered&customer_id={}", invitees[0])).await;
    assert_eq!(log["items"].as_array().unwrap().len(), 2, "{log}");

    // Forged, malformed, a bad action: 404 / 400, telling nothing.
    let forged = "ab".repeat(32);
    assert_eq!(page(&app, Method::GET, &format!("/p/e/{forged}"), &[]).await.0, 404);
    assert_eq!(page(&app, Method::POST, &format!("/p/e/{forged}"), &[("action", "register")]).await.0, 404);
    assert_eq!(page(&app, Method::GET, "/p/e/not-a-token", &[]).await.0, 404);
    assert_eq!(page(&app, Method::POST, &format!("/p/e/{token}"), &[("action", "dance")]).await.0, 400);
    // After the event: the link has expired (404 alike).
    app.db.clock.set(at(&e["ends_at"]) + Duration::minutes(1));
    let (st, html) = page(&app, Method::GET, &format!("/p/e/{token}"), &[]).await;
    assert_eq!(st, 404);
    assert!(!html.contains("西湖茶会"), "{html}");
    // Rate-limited like the other links: a burst from one address ends in 429.
    let mut limited = false;
    for _ in 0..40 {
        if page(&app, Method::GET, &format!("/p/e/{forged}"), &[]).await.0 == 429 {
            limited = true;
            break;
        }
    }
    assert!(limited);
});

test_both!(check_in_the_survey_once_and_the_timeline, |db: TestDb| async move {
    let app = spawn_app(db).await;
    quiet_settings(&app).await;
    let s = &app.db.store;
    let a = customer(&app, "签到甲", "南京", true).await;
    let b = customer(&app, "签到乙", "南京", true).await;
    let c = customer(&app, "现场丙", "南京", true).await;
    let e = event(&app, "会员俱乐部", 2, 2).await;
    let id = e["id"].as_i64().unwrap();
    let base = format!("/api/v1/customer-events/{id}/registrations");
    assert_eq!(register(&app, id, a).await.0, 201);
    assert_eq!(register(&app, id, b).await.0, 201);
    // Too early for the door.
    let (st, v) = app.post(&format!("{base}/{a}/check-in"), json!({})).await;
    assert_eq!((st, error_code(&v)), (409, "invalid_state".into()), "{v}");
    // No survey yet, and the event has not ended.
    let (st, v) = app.post(&format!("/api/v1/customer-events/{id}/survey"), json!({})).await;
    assert_eq!((st, v["error"]["field"].as_str()), (422, Some("survey_id")), "{v}");

    app.db.clock.set(at(&e["starts_at"]) - Duration::minutes(30));
    let (st, v) = app.post(&format!("{base}/{a}/check-in"), json!({})).await;
    assert_eq!((st, v["attended_at"].is_string()), (200, true), "{v}");
    let first = v["attended_at"].clone();
    app.db.clock.set(at(&e["starts_at"]) + Duration::minutes(10));
    let (st, v) = app.post(&format!("{base}/{a}/check-in"), json!({})).await;
    assert_eq!((st, &v["attended_at"]), (200, &first), "a second check-in changes nothing: {v}");
    // A walk-in takes a seat past the capacity.
    let (st, v) = app.post(&format!("{base}/{c}/check-in"), json!({})).await;
    assert_eq!((st, v["source"].as_str(), v["invited"].as_bool()), (200, Some("walk_in"), Some(false)), "{v}");
    let (_, got) = app.get(&format!("/api/v1/customer-events/{id}")).await;
    assert_eq!((got["seats_taken"].as_i64(), got["attended"].as_i64(), got["registered"].as_i64()), (Some(3), Some(2), Some(3)), "{got}");
    // Checked in: the registration stays; started: no more registrations.
    let r = app.req(Method::DELETE, &format!("{base}/{a}")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 409);
    let d = customer(&app, "迟到丁", "南京", true).await;
    assert_eq!(register(&app, id, d).await.0, 409);
    let (_, log) = app.get(&format!("/api/v1/events?type=customer_event.attended&customer_id={a}")).await;
    assert_eq!(log["items"].as_array().unwrap().len(), 1, "{log}");

    // The survey: before the end 409, after it once to the two attendees.
    let (_, survey) =
        app.post("/api/v1/surveys", json!({"name": "俱乐部满意度", "kind": "csat", "recontact_days": 0, "expires_days": 14})).await;
    let survey_id = survey["id"].as_i64().unwrap();
    let (st, _) = app.patch(&format!("/api/v1/customer-events/{id}"), json!({"survey_id": survey_id})).await;
    assert_eq!(st, 200);
    let (st, _) = app.post(&format!("/api/v1/customer-events/{id}/survey"), json!({})).await;
    assert_eq!(st, 409);
    app.db.clock.set(at(&e["ends_at"]) + Duration::hours(1));
    let (st, o) = app.post(&format!("/api/v1/customer-events/{id}/survey"), json!({"channel": "email"})).await;
    assert_eq!((st, o["attendees"].as_i64(), o["sent"].as_i64()), (200, Some(2), Some(2)), "{o}");
    let (_, o) = app.post(&format!("/api/v1/customer-events/{id}/survey"), json!({})).await;
    assert_eq!((o["sent"].as_i64(), o["skipped"].as_i64()), (Some(0), Some(2)), "{o}");
    let rows: Vec<(i64, String, String)> =
        s.db.reader()
            .fetch_all(patron_store::db::query(
                "SELECT customer_id, message_key, purpose FROM outbox WHERE message_key LIKE 'survey:%' ORDER BY customer_id",
            ))
            .await
            .unwrap();
    assert_eq!(rows.iter().map(|r| r.0).collect::<Vec<_>>(), {
        let mut v = vec![a, c];
        v.sort_unstable();
        v
    });
    let (out, _) = s.claim_due_messages(100, Duration::minutes(5), "https://crm.example.com").await.unwrap();
    let text = &out.iter().find(|o| o.customer_id == a).unwrap().content.text;
    let i = text.find("https://crm.example.com/p/s/").expect("the survey link");
    let token: String = text[i + 28..].chars().take(64).collect();
    let (st, html) = page(&app, Method::GET, &format!("/p/s/{token}"), &[]).await;
    assert_eq!(st, 200, "the survey opens: {html}");
    assert!(html.contains("俱乐部满意度"));

    // Timelines: attended, registered.
    let (_, tl) = app.get(&format!("/api/v1/customers/{a}/timeline")).await;
    assert!(tl["items"].as_array().unwrap().iter().any(|x| x["kind"] == "event" && x["title"] == "attended · 会员俱乐部"), "{tl}");
    let (_, tl) = app.get(&format!("/api/v1/customers/{b}/timeline")).await;
    let kinds: Vec<&str> =
        tl["items"].as_array().unwrap().iter().filter(|x| x["kind"] == "event").filter_map(|x| x["title"].as_str()).collect();
    assert_eq!(kinds, vec!["registered · 会员俱乐部"], "{tl}");
    let (_, tl) = app.get(&format!("/api/v1/customers/{c}/timeline")).await;
    let kinds: Vec<&str> =
        tl["items"].as_array().unwrap().iter().filter(|x| x["kind"] == "event").filter_map(|x| x["title"].as_str()).collect();
    assert_eq!(kinds, vec!["attended · 会员俱乐部"], "a walk-in shows once: {tl}");
});

test_both!(a_merge_keeps_one_seat, |db: TestDb| async move {
    let app = spawn_app(db).await;
    let keep = customer(&app, "合并甲", "苏州", true).await;
    let dup = customer(&app, "合并甲乙", "苏州", true).await;
    let other = customer(&app, "合并丙", "苏州", true).await;
    let e = event(&app, "合并测试会", 5, 3).await;
    let id = e["id"].as_i64().unwrap();
    for c in [keep, dup, other] {
        assert_eq!(register(&app, id, c).await.0, 201);
    }
    let (st, v) = app.post(&format!("/api/v1/customers/{keep}/merge"), json!({"merge_id": dup})).await;
    assert_eq!(st, 200, "{v}");
    let (_, got) = app.get(&format!("/api/v1/customer-events/{id}")).await;
    assert_eq!((got["seats_taken"].as_i64(), got["registered"].as_i64()), (Some(2), Some(2)), "{got}");
    let (_, regs) = app.get(&format!("/api/v1/customer-events/{id}/registrations")).await;
    let who: HashSet<i64> = regs["items"].as_array().unwrap().iter().map(|r| r["customer_id"].as_i64().unwrap()).collect();
    assert_eq!(who, HashSet::from([keep, other]));
    // The freed seat can be taken.
    let d = customer(&app, "合并丁", "苏州", true).await;
    assert_eq!(register(&app, id, d).await.0, 201);
});

// ---- the report, computed independently -------------------------------------------------

fn wilson(k: f64, n: f64, z: f64) -> (f64, f64) {
    let p = k / n;
    let c = (p + z * z / (2.0 * n)) / (1.0 + z * z / n);
    let h = z / (1.0 + z * z / n) * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt();
    (c - h, c + h)
}

/// Student's t density.
fn t_pdf(x: f64, df: f64) -> f64 {
    fn ln_gamma(x: f64) -> f64 {
        // Stirling's series, shifted up for precision.
        let mut x = x;
        let mut acc = 0.0;
        while x < 10.0 {
            acc -= x.ln();
            x += 1.0;
        }
        acc + (x - 0.5) * x.ln() - x + 0.5 * (2.0 * std::f64::consts::PI).ln() + 1.0 / (12.0 * x) - 1.0 / (360.0 * x.powi(3))
            + 1.0 / (1260.0 * x.powi(5))
    }
    let c = ln_gamma((df + 1.0) / 2.0) - ln_gamma(df / 2.0) - 0.5 * (df * std::f64::consts::PI).ln();
    (c - (df + 1.0) / 2.0 * (1.0 + x * x / df).ln()).exp()
}

/// The 0.975 quantile of t by Simpson integration of the density from 0 and bisection.
fn t975(df: f64) -> f64 {
    let cdf0 = |t: f64| {
        let n = 2000;
        let h = t / n as f64;
        let mut s = t_pdf(0.0, df) + t_pdf(t, df);
        for i in 1..n {
            s += t_pdf(i as f64 * h, df) * if i % 2 == 1 { 4.0 } else { 2.0 };
        }
        s * h / 3.0
    };
    let (mut lo, mut hi) = (1.0, 4.0);
    for _ in 0..60 {
        let mid = (lo + hi) / 2.0;
        if cdf0(mid) < 0.475 {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    (lo + hi) / 2.0
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * b.abs().max(1.0)
}

test_both!(the_report_matches_a_hand_computation, |db: TestDb| async move {
    let app = spawn_app(db).await;
    quiet_settings(&app).await;
    let s = &app.db.store;
    // 36 invitees who come, 40 who do not, and 2 walk-ins who were not invited.
    let mut coming = Vec::new();
    let mut absent = Vec::new();
    for i in 0..36 {
        coming.push(customer(&app, &format!("到场{i}"), "成都", true).await);
    }
    for i in 0..40 {
        absent.push(customer(&app, &format!("缺席{i}"), "成都", true).await);
    }
    let walk_in_a = customer(&app, "路过甲", "重庆", true).await;
    let walk_in_b = customer(&app, "路过乙", "重庆", true).await;
    let e = event(&app, "蓉城论坛", 3, 60).await;
    let id = e["id"].as_i64().unwrap();
    let (_, o) = app.post(&format!("/api/v1/customer-events/{id}/invitations"), json!({"segment": "city = \"成都\""})).await;
    assert_eq!(o["invited"], 76, "{o}");
    for c in coming.iter().chain(absent[..5].iter()) {
        assert_eq!(register(&app, id, *c).await.0, 201);
    }
    let starts = at(&e["starts_at"]);
    let ends = at(&e["ends_at"]);
    app.db.clock.set(starts);
    for c in coming.iter().chain([walk_in_a, walk_in_b].iter()) {
        let (st, v) = app.post(&format!("/api/v1/customer-events/{id}/registrations/{c}/check-in"), json!({})).await;
        assert_eq!(st, 200, "{v}");
    }
    // Orders: in the window (counted), before it, after it, cancelled (not counted).
    app.db.clock.set(ends + Duration::days(95));
    let mut orders = Vec::new();
    let mut spend: HashMap<i64, i64> = HashMap::new();
    let order = |c: i64, at: DateTime<Utc>, cents: i64, status: &str| NewOrder {
        customer_id: Some(c),
        ordered_at: at,
        total_cents: Some(cents),
        status: Some(status.into()),
        ..Default::default()
    };
    for (i, c) in coming.iter().enumerate() {
        if i % 3 != 0 {
            let cents = 10_000 + (i as i64) * 1_357;
            orders.push(order(*c, ends + Duration::days(1 + i as i64), cents, "completed"));
            *spend.entry(*c).or_default() += cents;
            if i % 5 == 0 {
                orders.push(order(*c, ends + Duration::days(60), 2_500, "completed"));
                *spend.entry(*c).or_default() += 2_500;
            }
        }
    }
    for (j, c) in absent.iter().enumerate() {
        if j % 4 == 0 {
            let cents = 8_000 + (j as i64) * 911;
            orders.push(order(*c, ends + Duration::days(2 + j as i64), cents, "completed"));
            *spend.entry(*c).or_default() += cents;
        }
        // Outside the window or not completed: not counted.
        orders.push(order(*c, starts - Duration::days(3), 99_900, "completed"));
        if j % 7 == 0 {
            orders.push(order(*c, ends + Duration::days(91), 55_500, "completed"));
            orders.push(order(*c, ends + Duration::days(10), 44_400, "cancelled"));
        }
    }
    orders.push(order(walk_in_a, ends + Duration::days(3), 77_700, "completed"));
    s.create_orders(&Actor::cli(), orders).await.unwrap();

    let (st, r) = app.get(&format!("/api/v1/customer-events/{id}/report")).await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(
        (
            r["invited"].as_i64(),
            r["registered"].as_i64(),
            r["invitees_registered"].as_i64(),
            r["attended"].as_i64(),
            r["walk_ins"].as_i64()
        ),
        (Some(76), Some(43), Some(41), Some(38), Some(2)),
        "{r}"
    );
    assert_eq!(r["complete"], true);
    assert_eq!(r["tiers"], json!(["none"]));
    let group = |ids: &[i64]| {
        let v: Vec<f64> = ids.iter().map(|c| *spend.get(c).unwrap_or(&0) as f64).collect();
        let retained = v.iter().filter(|x| **x > 0.0).count() as f64;
        (v, retained)
    };
    let (va, ka) = group(&coming);
    let (vc, kc) = group(&absent);
    assert_eq!(r["attendees"]["n"], 36);
    assert_eq!(r["attendees"]["retained"].as_f64(), Some(ka));
    assert_eq!(r["attendees"]["spend_cents"].as_f64(), Some(va.iter().sum::<f64>()));
    assert_eq!(r["comparison"]["n"], 40);
    assert_eq!(r["comparison"]["retained"].as_f64(), Some(kc));
    assert_eq!(r["comparison"]["spend_cents"].as_f64(), Some(vc.iter().sum::<f64>()));
    assert_eq!(r["too_few_to_tell"], false);
    // Newcombe's hybrid score interval of the retention difference.
    let (n1, n2) = (36.0, 40.0);
    let (p1, p2) = (ka / n1, kc / n2);
    let (l1, u1) = wilson(ka, n1, 1.959_963_984_540_054);
    let (l2, u2) = wilson(kc, n2, 1.959_963_984_540_054);
    let d = p1 - p2;
    let rd = &r["retention_difference"];
    assert!(close(rd["estimate"].as_f64().unwrap(), d, 1e-12), "{rd}");
    assert!(close(rd["low"].as_f64().unwrap(), d - ((p1 - l1).powi(2) + (u2 - p2).powi(2)).sqrt(), 1e-9), "{rd}");
    assert!(close(rd["high"].as_f64().unwrap(), d + ((u1 - p1).powi(2) + (p2 - l2).powi(2)).sqrt(), 1e-9), "{rd}");
    // Welch's interval of the spend per customer difference.
    let mv = |x: &[f64]| {
        let m = x.iter().sum::<f64>() / x.len() as f64;
        (m, x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (x.len() as f64 - 1.0))
    };
    let ((m1, v1), (m2, v2)) = (mv(&va), mv(&vc));
    let (a, b) = (v1 / n1, v2 / n2);
    let df = (a + b).powi(2) / (a * a / (n1 - 1.0) + b * b / (n2 - 1.0));
    let t = t975(df);
    let se = (a + b).sqrt();
    let sd = &r["spend_difference_cents"];
    assert!(close(sd["estimate"].as_f64().unwrap(), m1 - m2, 1e-12), "{sd}");
    assert!(close(sd["low"].as_f64().unwrap(), m1 - m2 - t * se, 1e-6), "{sd} t={t}");
    assert!(close(sd["high"].as_f64().unwrap(), m1 - m2 + t * se, 1e-6), "{sd} t={t}");
    // Small events say "too few to tell".
    let e2 = event(&app, "小沙龙", 3, 10).await;
    let (_, r2) = app.get(&format!("/api/v1/customer-events/{}/report", e2["id"])).await;
    assert_eq!((r2["too_few_to_tell"].as_bool(), r2["retention_difference"].is_null()), (Some(true), true), "{r2}");
});

test_both!(bad_input_is_refused_with_the_envelope, |db: TestDb| async move {
    let app = spawn_app(db).await;
    let now = app.db.store.now();
    let ok = json!({"title": "好活动", "starts_at": now + Duration::days(3), "ends_at": now + Duration::days(3) + Duration::hours(2),
        "place": "上海", "capacity": 10});
    let with = |k: &str, v: Value| {
        let mut b = ok.clone();
        b[k] = v;
        b
    };
    for (body, status, field) in [
        (with("title", json!("   ")), 422, "title"),
        (with("capacity", json!(0)), 422, "capacity"),
        (with("capacity", json!(100_001)), 422, "capacity"),
        (with("kind", json!("party")), 422, "kind"),
        (with("link", json!("ftp://example.com")), 422, "link"),
        (with("ends_at", json!(now + Duration::days(2))), 422, "ends_at"),
        (with("starts_at", json!("1999-12-31T00:00:00Z")), 422, "starts_at"),
        (with("place", Value::Null), 422, "place"),
        (with("survey_id", json!(424242)), 422, "survey_id"),
        (with("colour", json!("red")), 422, ""),
        (with("starts_at", json!("tomorrow")), 422, ""),
    ] {
        let (st, v) = app.post("/api/v1/customer-events", body.clone()).await;
        assert_eq!(st, status, "{body} → {v}");
        error_code(&v);
        if !field.is_empty() {
            assert_eq!(v["error"]["field"].as_str(), Some(field), "{body} → {v}");
        }
    }
    let (_, list) = app.get("/api/v1/customer-events").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 0, "nothing written: {list}");

    let (st, e) = app.post("/api/v1/customer-events", ok.clone()).await;
    assert_eq!(st, 201, "{e}");
    let id = e["id"].as_i64().unwrap();
    let c = customer(&app, "坏输入", "上海", true).await;
    for (method, path, body, status) in [
        (Method::GET, "/api/v1/customer-events/999999".to_owned(), Value::Null, 404),
        (Method::PATCH, "/api/v1/customer-events/999999".to_owned(), json!({"title": "x"}), 404),
        (Method::PATCH, format!("/api/v1/customer-events/{id}"), json!({"status": "maybe"}), 422),
        (Method::PATCH, format!("/api/v1/customer-events/{id}"), json!({"ends_at": now}), 422),
        (Method::POST, format!("/api/v1/customer-events/{id}/invitations"), json!({"segment": "city = = 1"}), 422),
        (Method::POST, format!("/api/v1/customer-events/{id}/invitations"), json!({"segment": "999999"}), 422),
        (Method::POST, format!("/api/v1/customer-events/{id}/invitations"), json!({"segment": "city = \"上海\"", "channel": "fax"}), 422),
        (Method::POST, "/api/v1/customer-events/999999/invitations".to_owned(), json!({"segment": "city = \"上海\""}), 404),
        (Method::POST, "/api/v1/customer-events/999999/registrations".to_owned(), json!({"customer_id": c}), 404),
        (Method::POST, format!("/api/v1/customer-events/{id}/registrations"), json!({"customer_id": 999999}), 404),
        (Method::POST, format!("/api/v1/customer-events/{id}/registrations"), json!({"customer_id": "one"}), 422),
        (Method::DELETE, format!("/api/v1/customer-events/{id}/registrations/{c}"), Value::Null, 404),
        (Method::POST, format!("/api/v1/customer-events/{id}/registrations/999999/check-in"), json!({}), 404),
        (Method::POST, format!("/api/v1/customer-events/{id}/survey"), json!({"channel": "pigeon"}), 422),
        (Method::GET, "/api/v1/customer-events/999999/report".to_owned(), Value::Null, 404),
        (Method::GET, "/api/v1/customer-events/abc".to_owned(), Value::Null, 400),
    ] {
        let mut r = app.req(method.clone(), &path);
        if !body.is_null() {
            r = r.json(&body);
        }
        let (st, v) = json_of(r.send().await.unwrap()).await;
        assert_eq!(st, status, "{method} {path} {body} → {v}");
        error_code(&v);
    }
    // An agent may check in but not make events or invite.
    let (_, agent) = app.db.store.create_token("agent", Role::Agent, None).await.unwrap();
    let r = app.req_as(&agent, Method::POST, "/api/v1/customer-events").json(&ok).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let r = app
        .req_as(&agent, Method::POST, &format!("/api/v1/customer-events/{id}/invitations"))
        .json(&json!({"segment": "city = \"上海\""}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
});

test_both!(the_pages_check_in_at_the_door_in_both_languages, |db: TestDb| async move {
    let app = spawn_app(db).await;
    let cookie = common::ui_session(&app, "events-admin@example.com", Role::Admin).await;
    let (st, html) = common::ui(&app, &cookie, Method::GET, "/ui/customer-events", &[]).await;
    assert_eq!(st, 200, "{html}");
    assert!(html.contains("客户活动") && html.contains("id=\"event-form\""), "{html}");
    let csrf = common::csrf_of(&html);
    let (st, html) = common::ui(
        &app,
        &cookie,
        Method::POST,
        "/ui/customer-events",
        &[
            ("csrf", &csrf),
            ("title", "门店开放日"),
            ("kind", "club"),
            ("starts_at", "2026-06-30T20:30"),
            ("ends_at", "2026-06-30T22:00"),
            ("place", "上海静安店"),
            ("capacity", "20"),
        ],
    )
    .await;
    assert_eq!(st, 303, "{html}");
    let (_, list) = app.get("/api/v1/customer-events").await;
    let id = list["items"][0]["id"].as_i64().unwrap();
    // A bad form: the list again with the reason, 422.
    let (st, html) = common::ui(
        &app,
        &cookie,
        Method::POST,
        "/ui/customer-events",
        &[("csrf", &csrf), ("title", "缺地点"), ("starts_at", "2026-07-01T10:00"), ("ends_at", "2026-07-01T12:00"), ("capacity", "20")],
    )
    .await;
    assert_eq!(st, 422, "{html}");
    assert!(html.contains("id=\"event-error\""));
    let c = customer(&app, "开放日客人", "上海", true).await;
    let page_path = format!("/ui/customer-events/{id}");
    let (_, html) = common::ui(&app, &cookie, Method::GET, &page_path, &[]).await;
    let (st, _) =
        common::ui(&app, &cookie, Method::POST, &format!("{page_path}/register"), &[("csrf", &csrf), ("customer_id", &c.to_string())])
            .await;
    assert_eq!(st, 200);
    assert!(html.contains("id=\"invite-form\"") && html.contains("id=\"event-report\""), "{html}");
    // The door opens an hour before (the test clock is 12:00 UTC, 20:00 in Shanghai); the
    // button checks the customer in.
    let (_, html) = common::ui(&app, &cookie, Method::GET, &page_path, &[]).await;
    assert!(html.contains(&format!("/check-in/{c}")), "{html}");
    let (st, _) = common::ui(&app, &cookie, Method::POST, &format!("{page_path}/check-in/{c}"), &[("csrf", &csrf)]).await;
    assert_eq!(st, 303);
    let (_, html) = common::ui(&app, &cookie, Method::GET, &page_path, &[]).await;
    assert!(html.contains("已签到") && !html.contains(&format!("/check-in/{c}")), "{html}");
    let en = format!("{cookie}; patron_lang=en");
    let (st, html) = common::ui(&app, &en, Method::GET, &page_path, &[]).await;
    assert_eq!(st, 200);
    assert!(html.contains("Checked in") && html.contains("Registrations") && html.contains("Report"), "{html}");
});
