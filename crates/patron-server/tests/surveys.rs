//! Surveys over a real server on each engine: a manager creates and sends a survey, customers
//! answer on the public endpoint (no login, once, rate-limited), an unhappy answer opens a
//! complaint, the results and the customer's answers, the scheduler's invitations written to the
//! outbox folder, churn reasons; and bad input (forged, expired and used links, wrong answers).

mod common;

use common::{error_code, json_of, spawn_app, TestApp};
use patron_server::outbox::Outbox;
use patron_store::testing::TestDb;
use patron_store::users::Role;
use patron_store::{test_both, Clock};
use reqwest::Method;
use serde_json::{json, Value};

async fn as_(app: &TestApp, token: &str, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut r = app.req_as(token, method, path);
    if let Some(b) = body {
        r = r.json(&b);
    }
    json_of(r.send().await.expect("request")).await
}

async fn public(app: &TestApp, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut r = app.http.request(method, format!("{}{path}", app.base));
    if let Some(b) = body {
        r = r.json(&b);
    }
    json_of(r.send().await.expect("request")).await
}

/// The API path of a link's URL (`…/p/s/{token}` → `/api/v1/public/surveys/{token}`).
fn api_of(url: &str) -> String {
    let token = url.rsplit('/').next().unwrap();
    format!("/api/v1/public/surveys/{token}")
}

test_both!(a_survey_from_sending_to_results, |db: TestDb| async move {
    let app = spawn_app(db).await;
    let s = &app.db.store;
    let agent = s.create_user("agent@example.com", "小张", Role::Agent, None).await.unwrap();
    let (_, at) = s.create_token("a", Role::Agent, Some(agent.id)).await.unwrap();
    let mut customers = Vec::new();
    for name in ["王小明", "李雪梅"] {
        let (st, c) = app.post("/api/v1/customers", json!({"name": name, "owner_id": agent.id})).await;
        assert_eq!(st, 201, "{c}");
        customers.push(c["id"].as_i64().unwrap());
    }

    // Agents do not make surveys; managers do. Bad definitions are 422 naming the field.
    let new = json!({"name": "用餐体验", "kind": "nps", "ask_switch": true, "expires_days": 14});
    let (st, _) = as_(&app, &at, Method::POST, "/api/v1/surveys", Some(new.clone())).await;
    assert_eq!(st, 403);
    let (st, e) = app.post("/api/v1/surveys", json!({"name": "x", "kind": "custom", "expires_days": 14})).await;
    assert_eq!((st, e["error"]["field"].as_str()), (422, Some("questions")), "{e}");
    let (st, e) = app.post("/api/v1/surveys", json!({"name": "x", "kind": "nps", "expires_days": 0})).await;
    assert_eq!(st, 422, "{e}");
    let (st, sv) = app.post("/api/v1/surveys", new).await;
    assert_eq!(st, 201, "{sv}");
    let id = sv["id"].as_i64().unwrap();

    // The agent invites its own customers; each link comes back once.
    let (st, out) =
        as_(&app, &at, Method::POST, &format!("/api/v1/surveys/{id}/invitations"), Some(json!({"customer_ids": customers}))).await;
    assert_eq!(st, 201, "{out}");
    let urls: Vec<String> = out["invited"].as_array().unwrap().iter().map(|i| i["url"].as_str().unwrap().to_owned()).collect();
    assert_eq!(urls.len(), 2);
    assert!(urls[0].starts_with(&app.base) && urls[0].contains("/p/s/"), "{urls:?}");

    // The customer's view: the questions and the given name, nothing else.
    let (st, page) = public(&app, Method::GET, &api_of(&urls[0]), None).await;
    assert_eq!((st, page["greeting_name"].as_str()), (200, Some("小明")), "{page}");
    assert!(page.get("customer_id").is_none() && !page.to_string().contains("王"), "{page}");
    // Wrong answers: 422 naming the answer; nothing used up.
    let (st, e) = public(&app, Method::POST, &api_of(&urls[0]), Some(json!({"answers": [{"question": "nps", "value": 12}]}))).await;
    assert_eq!((st, e["error"]["field"].as_str()), (422, Some("answers[0].value")), "{e}");
    let (st, e) = public(&app, Method::POST, &api_of(&urls[0]), Some(json!({"answers": [{"question": "why", "value": "好"}]}))).await;
    assert_eq!((st, e["error"]["field"].as_str()), (422, Some("answers")), "{e}");
    let (st, r) = public(
        &app,
        Method::POST,
        &api_of(&urls[0]),
        Some(json!({"answers": [{"question": "nps", "value": 10}, {"question": "why", "value": "环境好，菜品质量高"}]})),
    )
    .await;
    assert_eq!((st, r["status"].as_str()), (201, Some("answered")), "{r}");
    let (st, e) = public(&app, Method::POST, &api_of(&urls[0]), Some(json!({"answers": [{"question": "nps", "value": 0}]}))).await;
    assert_eq!((st, error_code(&e).as_str()), (409, "invalid_state"), "answered once");
    let (st, _) = public(&app, Method::GET, &api_of(&urls[0]), None).await;
    assert_eq!(st, 409);
    // A detractor: a complaint for the customer, on channel survey.
    let (st, _) = public(&app, Method::POST, &api_of(&urls[1]), Some(json!({"answers": [{"question": "nps", "value": 2}, {"question": "why", "value": "上菜太慢"}, {"question": "switch_2pct", "value": true}]}))).await;
    assert_eq!(st, 201);
    let (st, list) = app.get(&format!("/api/v1/tickets?customer_id={}", customers[1])).await;
    assert_eq!(st, 200);
    let t = &list["items"][0];
    assert_eq!((t["kind"].as_str(), t["channel"].as_str()), (Some("complaint"), Some("survey")), "{list}");

    // Forged links: 404, in the envelope.
    let (st, e) = public(&app, Method::GET, &format!("/api/v1/public/surveys/{}", "ab".repeat(32)), None).await;
    assert_eq!((st, error_code(&e).as_str()), (404, "not_found"));

    // Results (manager+): NPS (1 − 1) / 2 = 0, the keywords, by tier.
    let (st, _) = as_(&app, &at, Method::GET, &format!("/api/v1/surveys/{id}/results"), None).await;
    assert_eq!(st, 403);
    let (st, r) = app.get(&format!("/api/v1/surveys/{id}/results?by=tier")).await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(
        (r["responses"].as_i64(), r["nps"].as_f64(), r["detractors"].as_i64(), r["would_switch_share"].as_f64()),
        (Some(2), Some(0.0), Some(1), Some(1.0)),
        "{r}"
    );
    assert!(r["keywords"].as_array().unwrap().iter().any(|k| k["term"] == "上菜"), "{r}");
    let (st, _) = app.get(&format!("/api/v1/surveys/{id}/results?by=colour")).await;
    assert_eq!(st, 400);
    let (st, a) = as_(&app, &at, Method::GET, &format!("/api/v1/customers/{}/survey-answers", customers[1]), None).await;
    assert_eq!((st, a["items"][0]["nps"].as_i64()), (200, Some(2)), "{a}");

    // An expired link: 410.
    let (st, c) = app.post("/api/v1/customers", json!({"name": "赵六"})).await;
    assert_eq!(st, 201);
    let (_, out) = app.post(&format!("/api/v1/surveys/{id}/invitations"), json!({"customer_ids": [c["id"]]})).await;
    let url = out["invited"][0]["url"].as_str().unwrap().to_owned();
    app.db.clock.set(app.db.clock.now() + chrono::Duration::days(15));
    let (st, e) = public(&app, Method::GET, &api_of(&url), None).await;
    assert_eq!((st, error_code(&e).as_str()), (410, "gone"), "{e}");

    // Paused: no more invitations.
    let (st, p) = app.patch(&format!("/api/v1/surveys/{id}"), json!({"active": false})).await;
    assert_eq!((st, p["active"].as_bool()), (200, Some(false)));
    let (st, _) = app.post(&format!("/api/v1/surveys/{id}/invitations"), json!({"customer_ids": [c["id"]]})).await;
    assert_eq!(st, 409);

    // Churn reasons: only for customers the analysis marks churned.
    let (st, e) = app.put(&format!("/api/v1/customers/{}/churn-reason", customers[0]), json!({"reason": "价格"})).await;
    assert_eq!(st, 409, "{e}");
    let (st, e) = app.put(&format!("/api/v1/customers/{}/churn-reason", customers[0]), json!({"reason": "价格", "source": "phone"})).await;
    assert_eq!(st, 422, "{e}");
    let (st, r) = app.get("/api/v1/service/churn-reasons?by=rfm").await;
    assert_eq!((st, r["churned"].as_i64()), (200, Some(0)), "{r}");
    let (st, _) = as_(&app, &at, Method::GET, "/api/v1/service/churn-reasons", None).await;
    assert_eq!(st, 403);
});

test_both!(triggered_invitations_go_to_the_outbox_once, |db: TestDb| async move {
    let app = spawn_app(db).await;
    let (st, sv) = app
        .post("/api/v1/surveys", json!({"name": "售后满意度", "kind": "csat", "trigger": {"on": "ticket_resolved"}, "expires_days": 7}))
        .await;
    assert_eq!(st, 201, "{sv}");
    let (_, c) = app.post("/api/v1/customers", json!({"name": "孙八", "email": "sun@example.com"})).await;
    let (st, t) =
        app.post("/api/v1/tickets", json!({"customer_id": c["id"], "kind": "inquiry", "channel": "email", "subject": "发票"})).await;
    assert_eq!(st, 201, "{t}");
    let path = format!("/api/v1/tickets/{}/transitions", t["id"]);
    for to in ["acknowledged", "in_progress", "resolved"] {
        let (st, r) = app.post(&path, json!({"to": to})).await;
        assert_eq!(st, 200, "{r}");
    }
    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox { dir: dir.path().join("outbox"), base_url: app.base.clone() };
    let r = patron_server::jobs::run_round(&app.db.store, &outbox).await.unwrap();
    assert_eq!((r.surveys.invited, r.surveys.delivered), (1, 1));
    let r = patron_server::jobs::run_round(&app.db.store, &outbox).await.unwrap();
    assert_eq!((r.surveys.invited, r.surveys.delivered), (0, 0), "once");
    // Through the outbox: the file adapter's e-mail file, one line.
    let files: Vec<_> = std::fs::read_dir(&outbox.dir).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].ends_with("messages-email.jsonl"), "{files:?}");
    let lines = std::fs::read_to_string(&files[0]).unwrap();
    assert_eq!(lines.lines().count(), 1, "{lines}");
    let m: serde_json::Value = serde_json::from_str(lines.trim()).unwrap();
    assert_eq!(
        (m["to"].as_str(), m["purpose"].as_str(), m["subject"].as_str()),
        (Some("sun@example.com"), Some("transactional"), Some("售后满意度"))
    );
    let text = m["text"].as_str().unwrap();
    assert!(text.contains("孙八"), "{text}");
    let url = text.split_whitespace().find(|w| w.starts_with(&app.base) && w.contains("/p/s/") && !w.contains("lang=")).unwrap();
    let (st, page) = public(&app, Method::GET, &api_of(url), None).await;
    assert_eq!((st, page["name"].as_str()), (200, Some("售后满意度")), "{page}");
    let (st, _) = public(&app, Method::POST, &api_of(url), Some(json!({"answers": [{"question": "csat", "value": 5}]}))).await;
    assert_eq!(st, 201);
});
