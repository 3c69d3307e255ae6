//! Webhooks against a real receiver (an HTTP server on loopback) on each engine: admins only,
//! validation, one signed delivery per subscribed event (also with two senders at once), retries
//! with backoff after a 500, a delivery log, automatic turning off after 20 failures in a row,
//! and a replay.

mod common;

use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode};
use common::{csrf_of, json_of, spawn_app, ui, ui_session, TestApp};
use hmac::{Hmac, Mac};
use patron_store::test_both;
use patron_store::testing::TestDb;
use patron_store::users::Role;
use reqwest::Method;
use serde_json::{json, Value};
use sha2::Sha256;

/// What the receiver saw, and what it answers next (200 when the script runs out).
#[derive(Default)]
struct Receiver {
    got: Vec<(HeaderMap, Vec<u8>)>,
    script: Vec<u16>,
}

async fn start_receiver() -> (String, Arc<Mutex<Receiver>>) {
    let state = Arc::new(Mutex::new(Receiver::default()));
    let s = state.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let s = s.clone();
            async move {
                let mut r = s.lock().unwrap();
                r.got.push((headers, body.to_vec()));
                let code = if r.script.is_empty() { 200 } else { r.script.remove(0) };
                StatusCode::from_u16(code).unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, state)
}

async fn call(app: &TestApp, token: &str, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut r = app.req_as(token, method, path);
    if let Some(b) = body {
        r = r.json(&b);
    }
    json_of(r.send().await.expect("request")).await
}

/// The signature computed here, independently of the server's helper.
fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

fn advance(app: &TestApp, by: chrono::Duration) {
    use patron_store::Clock;
    app.db.clock.set(app.db.clock.now() + by);
}

const SECRET: &str = "s3cret-of-the-receiver-0123456789";

test_both!(webhooks_deliver_signed_events_once_retry_and_replay, |db: TestDb| async move {
    let app = spawn_app(db).await;
    let s = &app.db.store;
    let (url, receiver) = start_receiver().await;
    let (_, manager) = s.create_token("m", Role::Manager, None).await.unwrap();
    let admin = app.admin_token.clone();

    // Admins only; bad input is a 422 naming the field.
    let new = json!({"url": url, "events": ["customer.*", "order.created"], "secret": SECRET});
    let (st, _) = call(&app, &manager, Method::POST, "/api/v1/webhooks", Some(new.clone())).await;
    assert_eq!(st, 403);
    let (st, e) = call(&app, &admin, Method::POST, "/api/v1/webhooks", Some(json!({"url": url, "events": ["Ticket opened"]}))).await;
    assert_eq!((st, e["error"]["field"].as_str()), (422, Some("events[0]")), "{e}");
    let (st, e) = call(&app, &admin, Method::POST, "/api/v1/webhooks", Some(json!({"url": "ftp://x/y", "events": ["*"]}))).await;
    assert_eq!((st, e["error"]["field"].as_str()), (422, Some("url")), "{e}");
    let (st, e) = call(&app, &admin, Method::POST, "/api/v1/webhooks", Some(json!({"url": url, "events": ["*"], "secret": "short"}))).await;
    assert_eq!((st, e["error"]["field"].as_str()), (422, Some("secret")), "{e}");
    let (st, hook) = call(&app, &admin, Method::POST, "/api/v1/webhooks", Some(new)).await;
    assert_eq!(st, 201, "{hook}");
    assert_eq!(hook["secret"], SECRET);
    let id = hook["id"].as_i64().unwrap();
    let (_, listed) = call(&app, &admin, Method::GET, "/api/v1/webhooks", None).await;
    assert!(listed[0].get("secret").is_none(), "the secret is shown once: {listed}");

    // Three subscribed events (a customer made and changed, an order) and one that is not
    // (a ticket).
    let (st, c) = app.post("/api/v1/customers", json!({"name": "王小明", "mobile": "13800000001"})).await;
    assert_eq!(st, 201);
    let cid = c["id"].as_i64().unwrap();
    let (st, _) = app.patch(&format!("/api/v1/customers/{cid}"), json!({"city": "上海", "tags": ["会员"]})).await;
    assert_eq!(st, 200);
    let order = json!({"customer_id": cid, "external_id": "W-1", "ordered_at": "2026-06-01T10:00:00Z", "total_cents": 12800, "status": "completed"});
    let (st, o) = app.post("/api/v1/orders", order).await;
    assert_eq!(st, 201, "{o}");
    let (st, t) =
        app.post("/api/v1/tickets", json!({"customer_id": cid, "kind": "complaint", "subject": "菜凉了", "channel": "phone"})).await;
    assert_eq!(st, 201, "{t}");

    // Two senders at once (two servers' schedulers): each event is delivered once.
    let (a, b) = tokio::join!(patron_server::webhooks::run_round(s), patron_server::webhooks::run_round(s));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.delivered + b.delivered, 3, "{a:?} {b:?}");
    let got: Vec<(HeaderMap, Vec<u8>)> = receiver.lock().unwrap().got.drain(..).collect();
    assert_eq!(got.len(), 3);
    let mut types = Vec::new();
    for (h, body) in &got {
        assert_eq!(h["x-patron-signature"].to_str().unwrap(), sign(SECRET, body), "signature over the raw body");
        assert_eq!(h["content-type"], "application/json");
        let v: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(h["x-patron-event"].to_str().unwrap(), v["event"]["type"].as_str().unwrap());
        assert_eq!(h["x-patron-delivery"].to_str().unwrap(), v["delivery_id"].to_string());
        assert_eq!(v["event"]["customer_id"], cid);
        types.push(v["event"]["type"].as_str().unwrap().to_owned());
        if v["event"]["type"] == "customer.updated" {
            // Field names, never values (no personal data in the event log).
            assert_eq!(v["event"]["payload"]["fields"], json!(["city", "tags"]), "{v}");
            assert!(!String::from_utf8_lossy(body).contains("上海"));
        }
    }
    types.sort();
    assert_eq!(types, ["customer.created", "customer.updated", "order.created"]);
    // Later rounds (also once the events have settled and the cursor moves) send nothing again.
    advance(&app, chrono::Duration::minutes(2));
    let r = patron_server::webhooks::run_round(s).await.unwrap();
    assert_eq!((r.made, r.delivered, r.failed), (0, 0, 0));

    // A receiver's 500: retried after the backoff, not before; the log shows the attempts.
    receiver.lock().unwrap().script = vec![500];
    let (st, _) = app.patch(&format!("/api/v1/customers/{cid}"), json!({"city": "杭州"})).await;
    assert_eq!(st, 200);
    let r = patron_server::webhooks::run_round(s).await.unwrap();
    assert_eq!((r.made, r.delivered, r.failed), (1, 0, 1));
    let (_, log) = call(&app, &admin, Method::GET, &format!("/api/v1/webhooks/{id}/deliveries?status=pending"), None).await;
    assert_eq!(log.as_array().unwrap().len(), 1, "{log}");
    assert_eq!((log[0]["attempts"].as_i64(), log[0]["last_status"].as_i64()), (Some(1), Some(500)), "{log}");
    let r = patron_server::webhooks::run_round(s).await.unwrap();
    assert_eq!(r.delivered + r.failed, 0, "not due before the backoff");
    advance(&app, chrono::Duration::seconds(31));
    let r = patron_server::webhooks::run_round(s).await.unwrap();
    assert_eq!(r.delivered, 1);
    let retried: Vec<(HeaderMap, Vec<u8>)> = receiver.lock().unwrap().got.drain(..).collect();
    assert_eq!(retried.len(), 2);
    assert_eq!(retried[0].1.len(), retried[1].1.len(), "the same event again");
    let v: Value = serde_json::from_slice(&retried[1].1).unwrap();
    assert_eq!(v["attempt"], 2);
    let (_, hook_now) = call(&app, &admin, Method::GET, &format!("/api/v1/webhooks/{id}"), None).await;
    assert_eq!(hook_now["consecutive_failures"], 0, "a success clears the failures");

    // 20 failures in a row turn the webhook off, with the reason.
    receiver.lock().unwrap().script = vec![503; 25];
    for i in 0..20 {
        let (st, _) = app.post("/api/v1/customers", json!({"name": format!("客户{i}")})).await;
        assert_eq!(st, 201);
    }
    let r = patron_server::webhooks::run_round(s).await.unwrap();
    assert_eq!((r.made, r.failed), (20, 20));
    let (_, off) = call(&app, &admin, Method::GET, &format!("/api/v1/webhooks/{id}"), None).await;
    assert_eq!(off["active"], false, "{off}");
    assert!(off["disabled_reason"].as_str().unwrap().contains("20"), "{off}");
    advance(&app, chrono::Duration::hours(2));
    let r = patron_server::webhooks::run_round(s).await.unwrap();
    assert_eq!((r.made, r.delivered, r.failed), (0, 0, 0), "an inactive webhook gets nothing");

    // Turned back on, the pending deliveries go; a replay of a delivered one goes again.
    receiver.lock().unwrap().script.clear();
    receiver.lock().unwrap().got.clear();
    let (st, on) = call(&app, &admin, Method::PATCH, &format!("/api/v1/webhooks/{id}"), Some(json!({"active": true}))).await;
    assert_eq!((st, on["consecutive_failures"].as_i64()), (200, Some(0)), "{on}");
    let r = patron_server::webhooks::run_round(s).await.unwrap();
    assert_eq!(r.delivered, 20);
    let (_, done) = call(&app, &admin, Method::GET, &format!("/api/v1/webhooks/{id}/deliveries?status=delivered&limit=1"), None).await;
    let did = done[0]["id"].as_i64().unwrap();
    let (st, replayed) = call(&app, &admin, Method::POST, &format!("/api/v1/webhooks/{id}/deliveries/{did}/replay"), None).await;
    assert_eq!((st, replayed["status"].as_str()), (200, Some("pending")), "{replayed}");
    let (st, _) = call(&app, &admin, Method::POST, &format!("/api/v1/webhooks/{id}/deliveries/999999/replay"), None).await;
    assert_eq!(st, 404);
    receiver.lock().unwrap().got.clear();
    let r = patron_server::webhooks::run_round(s).await.unwrap();
    assert_eq!(r.delivered, 1);
    let again = receiver.lock().unwrap().got.pop().unwrap();
    assert_eq!(again.0["x-patron-delivery"].to_str().unwrap(), did.to_string());

    // Deleting removes it and its log.
    let (st, _) = call(&app, &admin, Method::DELETE, &format!("/api/v1/webhooks/{id}"), None).await;
    assert_eq!(st, 204);
    let (st, _) = call(&app, &admin, Method::GET, &format!("/api/v1/webhooks/{id}/deliveries"), None).await;
    assert_eq!(st, 404);
});

test_both!(the_webhooks_pages_are_for_admins_and_show_the_secret_once, |db: TestDb| async move {
    let app = spawn_app(db).await;
    let (url, _receiver) = start_receiver().await;
    let manager = ui_session(&app, "m@example.com", Role::Manager).await;
    let (st, _) = ui(&app, &manager, Method::GET, "/ui/webhooks", &[]).await;
    assert_eq!(st, 403);

    let admin = ui_session(&app, "a@example.com", Role::Admin).await;
    let (st, page) = ui(&app, &admin, Method::GET, "/ui/webhooks", &[]).await;
    assert_eq!(st, 200);
    assert!(page.contains("id=\"nav-webhooks\""));
    let csrf = csrf_of(&page);
    // A form without the CSRF token is refused; a bad event type is shown as an error.
    let (st, _) = ui(&app, &admin, Method::POST, "/ui/webhooks", &[("csrf", "forged"), ("url", &url), ("events", "*")]).await;
    assert_eq!(st, 403);
    let (st, page) = ui(&app, &admin, Method::POST, "/ui/webhooks", &[("csrf", &csrf), ("url", &url), ("events", "Ticket opened")]).await;
    assert_eq!(st, 200);
    assert!(page.contains("id=\"webhook-error\""), "{page}");
    let (st, page) =
        ui(&app, &admin, Method::POST, "/ui/webhooks", &[("csrf", &csrf), ("url", &url), ("events", "customer.*, order.created")]).await;
    assert_eq!(st, 200);
    assert!(page.contains("id=\"webhook-secret\""), "{page}");
    let hooks = app.db.store.webhooks().await.unwrap();
    assert_eq!(hooks.len(), 1);
    assert_eq!(hooks[0].events, ["customer.*", "order.created"]);
    let id = hooks[0].id;
    let (_, list) = ui(&app, &admin, Method::GET, "/ui/webhooks", &[]).await;
    assert!(!list.contains("id=\"webhook-secret\""), "shown once");

    // A delivery in the log, replayed from the page; turned off from the page.
    let (st, _) = app.post("/api/v1/customers", json!({"name": "王小明"})).await;
    assert_eq!(st, 201);
    patron_server::webhooks::run_round(&app.db.store).await.unwrap();
    let (st, page) = ui(&app, &admin, Method::GET, &format!("/ui/webhooks/{id}"), &[]).await;
    assert_eq!(st, 200);
    assert!(page.contains("delivery-delivered") && page.contains("customer.created"), "{page}");
    let did = app.db.store.webhook_deliveries(id, None, None, 1).await.unwrap()[0].id;
    let (st, _) = ui(&app, &admin, Method::POST, &format!("/ui/webhooks/{id}/deliveries/{did}/replay"), &[("csrf", &csrf)]).await;
    assert_eq!(st, 303);
    assert_eq!(app.db.store.webhook_deliveries(id, Some("pending"), None, 10).await.unwrap().len(), 1);
    let (st, _) = ui(&app, &admin, Method::POST, &format!("/ui/webhooks/{id}/active"), &[("csrf", &csrf), ("active", "false")]).await;
    assert_eq!(st, 303);
    assert!(!app.db.store.webhook(id).await.unwrap().active);
});
