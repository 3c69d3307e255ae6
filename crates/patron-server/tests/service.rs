//! The service loop over a real server on each engine: an agent works a complaint end to end,
//! the customer answers on the public confirmation endpoint (no login, rate-limited), breaches
//! reach the manager's notifications, compensation within and above authority, the events
//! stream, policies and the reports.

mod common;

use common::{error_code, json_of, spawn_app, TestApp};
use patron_store::testing::TestDb;
use patron_store::users::{Actor, Role};
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

/// A manager and an agent reporting to them, with tokens; the agent owns a customer.
async fn staff(app: &TestApp) -> (String, String, i64, i64) {
    let s = &app.db.store;
    let manager = s.create_user("boss@example.com", "店长", Role::Manager, None).await.unwrap();
    let agent = s.create_user("agent@example.com", "小张", Role::Agent, None).await.unwrap();
    s.set_user_manager(&Actor::cli(), agent.id, Some(manager.id)).await.unwrap();
    let (_, mt) = s.create_token("m", Role::Manager, Some(manager.id)).await.unwrap();
    let (_, at) = s.create_token("a", Role::Agent, Some(agent.id)).await.unwrap();
    let (st, c) = app.post("/api/v1/customers", json!({"name": "王建国", "owner_id": agent.id, "mobile": "13800138000"})).await;
    assert_eq!(st, 201, "{c}");
    (mt, at, c["id"].as_i64().unwrap(), agent.id)
}

test_both!(an_agent_works_a_complaint_and_the_customer_confirms, |db: TestDb| async move {
    let app = spawn_app(db).await;
    let (mt, at, cid, agent_id) = staff(&app).await;
    let (s, t) = as_(&app, &at, Method::POST, "/api/v1/tickets",
        Some(json!({"customer_id": cid, "kind": "complaint", "channel": "store", "subject": "上菜太慢", "body": "等了四十分钟", "category": "上菜慢", "assignee_id": agent_id}))).await;
    assert_eq!(s, 201, "{t}");
    let id = t["id"].as_i64().unwrap();
    assert_eq!(
        (t["status"].as_str(), t["tier"].as_str(), t["sla"]["first_response"].as_str()),
        (Some("new"), Some("default"), Some("pending"))
    );
    let path = format!("/api/v1/tickets/{id}");
    // Not allowed from `new`: 409 naming the allowed move.
    let (s, e) = as_(&app, &at, Method::POST, &format!("{path}/transitions"), Some(json!({"to": "resolved"}))).await;
    assert_eq!((s, error_code(&e).as_str()), (409, "invalid_state"));
    assert!(e["error"]["message"].as_str().unwrap().contains("allowed: acknowledged"), "{e}");
    // A public reply acknowledges and meets the first response.
    let (s, t) =
        as_(&app, &at, Method::POST, &format!("{path}/comments"), Some(json!({"body": "您好，我们马上处理", "public": true}))).await;
    assert_eq!((s, t["status"].as_str(), t["sla"]["first_response"].as_str()), (201, Some("acknowledged"), Some("met")));
    let (s, _) = as_(&app, &at, Method::POST, &format!("{path}/transitions"), Some(json!({"to": "in_progress"}))).await;
    assert_eq!(s, 200);
    let (s, e) = as_(&app, &at, Method::POST, &format!("{path}/transitions"), Some(json!({"to": "resolved"}))).await;
    assert_eq!((s, e["error"]["field"].as_str()), (422, Some("root_cause")), "{e}");
    let (s, done) =
        as_(&app, &at, Method::POST, &format!("{path}/transitions"), Some(json!({"to": "resolved", "root_cause": "上菜慢"}))).await;
    assert_eq!((s, done["status"].as_str()), (200, Some("resolved")), "{done}");
    let url = done["confirmation_url"].as_str().expect("a confirmation link");
    let token = url.rsplit('/').next().unwrap().to_owned();
    assert!(url.starts_with(&format!("{}/p/confirm/", app.base)), "{url}");
    let (_, again) = as_(&app, &at, Method::GET, &path, None).await;
    assert!(again.get("confirmation_url").is_none() && !again.to_string().contains(&token), "the token is shown once");

    // The customer's side: no login, nothing about them beyond the subject.
    let link = format!("/api/v1/public/confirmations/{token}");
    let (s, view) = public(&app, Method::GET, &link, None).await;
    assert_eq!((s, view["subject"].as_str()), (200, Some("上菜太慢")), "{view}");
    assert!(!view.to_string().contains("王建国") && !view.to_string().contains("13800138000"));
    let (s, r) = public(&app, Method::POST, &link, Some(json!({"confirmed": false, "comment": "还是很慢"}))).await;
    assert_eq!((s, r["status"].as_str()), (200, Some("reopened")), "{r}");
    let (s, e) = public(&app, Method::POST, &link, Some(json!({"confirmed": true}))).await;
    assert_eq!((s, error_code(&e).as_str()), (409, "invalid_state"));
    let (s, e) = public(&app, Method::GET, &format!("/api/v1/public/confirmations/{}", "ab".repeat(32)), None).await;
    assert_eq!((s, error_code(&e).as_str()), (404, "not_found"));

    // Around again; then the link expires unanswered and the resolution confirms by timeout.
    for to in ["in_progress"] {
        as_(&app, &at, Method::POST, &format!("{path}/transitions"), Some(json!({"to": to}))).await;
    }
    let (_, done) =
        as_(&app, &at, Method::POST, &format!("{path}/transitions"), Some(json!({"to": "resolved", "root_cause": "上菜慢"}))).await;
    let second = done["confirmation_url"].as_str().unwrap().rsplit('/').next().unwrap().to_owned();
    app.db.clock.set(app.db.clock.now() + chrono::Duration::days(8));
    let (s, e) = public(&app, Method::GET, &format!("/api/v1/public/confirmations/{second}"), None).await;
    assert_eq!((s, error_code(&e).as_str()), (410, "gone"));
    assert_eq!(app.db.store.run_due_jobs().await.unwrap().sla.auto_confirmed, 1);
    let (_, t) = as_(&app, &at, Method::GET, &path, None).await;
    assert_eq!(
        (t["status"].as_str(), t["confirmed_by"].as_str(), t["reopened_count"].as_i64()),
        (Some("confirmed"), Some("timeout"), Some(1))
    );
    let kinds: Vec<&str> = t["history"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds.first(), Some(&"ticket.opened"));
    assert_eq!(kinds.last(), Some(&"ticket.confirmed"));
    // The events stream: managers only, paged by id.
    let (s, _) = as_(&app, &at, Method::GET, "/api/v1/events", None).await;
    assert_eq!(s, 403);
    let (s, page) = as_(&app, &mt, Method::GET, &format!("/api/v1/events?type=ticket.*&customer_id={cid}&limit=3"), None).await;
    assert_eq!((s, page["items"].as_array().unwrap().len()), (200, 3), "{page}");
    let after = page["next_after"].as_i64().unwrap();
    let (_, rest) = as_(&app, &mt, Method::GET, &format!("/api/v1/events?type=ticket.*&after={after}"), None).await;
    assert_eq!(rest["items"].as_array().unwrap().len() + 3, kinds.len());
    // The customer's timeline shows the ticket.
    let (_, tl) = as_(&app, &at, Method::GET, &format!("/api/v1/customers/{cid}/timeline"), None).await;
    assert!(tl["items"].as_array().unwrap().iter().any(|e| e["kind"] == "ticket"), "{tl}");
});

test_both!(breaches_reach_the_manager_and_compensation_waits_above_authority, |db: TestDb| async move {
    let app = spawn_app(db).await;
    let (mt, at, cid, agent_id) = staff(&app).await;
    let (_, t) = as_(
        &app,
        &at,
        Method::POST,
        "/api/v1/tickets",
        Some(json!({"customer_id": cid, "kind": "complaint", "channel": "phone", "subject": "收费多了", "assignee_id": agent_id})),
    )
    .await;
    let id = t["id"].as_i64().unwrap();
    // Past the first-response due time (Wednesday 17:00), not the resolution's (Friday): the
    // scheduler records the breach, once.
    app.db.clock.set(app.db.clock.now() + chrono::Duration::days(1));
    assert_eq!(app.db.store.run_due_jobs().await.unwrap().sla.breaches, 1);
    assert_eq!(app.db.store.run_due_jobs().await.unwrap().sla.breaches, 0);
    let (s, n) = as_(&app, &mt, Method::GET, "/api/v1/notifications?unread=true", None).await;
    assert_eq!((s, n["unread"].as_i64()), (200, Some(1)), "{n}");
    assert_eq!((n["items"][0]["kind"].as_str(), n["items"][0]["ticket_id"].as_i64()), (Some("escalation"), Some(id)));
    let nid = n["items"][0]["id"].as_i64().unwrap();
    let r = app.req_as(&mt, Method::POST, &format!("/api/v1/notifications/{nid}/read")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 204);
    let (_, n) = as_(&app, &mt, Method::GET, "/api/v1/notifications", None).await;
    assert_eq!(n["unread"].as_i64(), Some(0));
    let (_, t) = as_(&app, &at, Method::GET, &format!("/api/v1/tickets/{id}"), None).await;
    assert_eq!((t["sla"]["first_response"].as_str(), t["breaches"][0]["kind"].as_str()), (Some("breached"), Some("first_response")));
    let (_, list) = as_(&app, &mt, Method::GET, "/api/v1/tickets?breached=true&status=open&sort=due", None).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);

    // Within the default tier's authority (¥20) the agent grants; above it the manager decides.
    let comp = format!("/api/v1/tickets/{id}/compensations");
    let (s, c) = as_(&app, &at, Method::POST, &comp, Some(json!({"amount_cents": 1500, "kind": "voucher", "reason": "致歉券"}))).await;
    assert_eq!((s, c["status"].as_str()), (201, Some("granted")), "{c}");
    let (s, c) = as_(&app, &at, Method::POST, &comp, Some(json!({"amount_cents": 8800, "kind": "refund", "reason": "退差价"}))).await;
    assert_eq!((s, c["status"].as_str()), (202, Some("pending")), "{c}");
    let decision = format!("{comp}/{}/decision", c["id"]);
    let (s, _) = as_(&app, &at, Method::POST, &decision, Some(json!({"approve": true}))).await;
    assert_eq!(s, 403, "agents do not approve their own requests");
    let (s, c) = as_(&app, &mt, Method::POST, &decision, Some(json!({"approve": false}))).await;
    assert_eq!((s, c["status"].as_str()), (200, Some("refused")));
    let (s, _) = as_(&app, &mt, Method::POST, &decision, Some(json!({"approve": true}))).await;
    assert_eq!(s, 409);
    let (s, e) = as_(&app, &at, Method::POST, &comp, Some(json!({"amount_cents": -5, "kind": "gift", "reason": "x"}))).await;
    assert_eq!((s, e["error"]["field"].as_str()), (422, Some("amount_cents")), "{e}");

    // Another agent's customer's ticket does not exist for this agent: 404 like the customer,
    // for reading and for every change (issue 21 §2: outside the scope, not 403).
    let other = app.db.store.create_user("b@example.com", "乙", Role::Agent, None).await.unwrap();
    let (_, ot) = app.db.store.create_token("b", Role::Agent, Some(other.id)).await.unwrap();
    let (s, e) = as_(&app, &ot, Method::GET, &format!("/api/v1/tickets/{id}"), None).await;
    assert_eq!((s, error_code(&e).as_str()), (404, "not_found"), "{e}");
    assert!(!e.to_string().contains("王建国") && !e.to_string().contains(&cid.to_string()), "the refusal names nothing: {e}");
    let (s, _) = as_(&app, &ot, Method::POST, &format!("/api/v1/tickets/{id}/comments"), Some(json!({"body": "x", "public": false}))).await;
    assert_eq!(s, 404);
    let (s, _) = as_(&app, &ot, Method::GET, &format!("/api/v1/customers/{cid}"), None).await;
    assert_eq!(s, 404, "as its customer");
    let (s, l) = as_(&app, &ot, Method::GET, "/api/v1/tickets", None).await;
    assert_eq!((s, l["items"].as_array().unwrap().len()), (200, 0));
    let (s, _) = as_(
        &app,
        &ot,
        Method::POST,
        "/api/v1/tickets",
        Some(json!({"customer_id": cid, "kind": "praise", "channel": "web", "subject": "好"})),
    )
    .await;
    // Outside the scope the customer does not exist (issue 21): the same 422 as an unknown id.
    assert_eq!(s, 422);
});

test_both!(policies_reports_and_bad_input, |db: TestDb| async move {
    let app = spawn_app(db).await;
    let (mt, at, cid, _) = staff(&app).await;
    let (s, list) = app.get("/api/v1/service-policies").await;
    assert_eq!((s, list.as_array().unwrap().len()), (200, 5));
    let good = json!({"first_response_minutes": 30, "resolution_minutes": 240, "business_hours": false, "contact_cadence_days": 30,
        "compensation_authority_cents": 20000, "premium": ["专属客服"]});
    let (s, _) = as_(&app, &mt, Method::PUT, "/api/v1/service-policies/A", Some(good.clone())).await;
    assert_eq!(s, 403, "admins set policies");
    let mut bad = good.clone();
    bad["first_response_minutes"] = json!(-1);
    let (s, e) = json_of(app.req(Method::PUT, "/api/v1/service-policies/A").json(&bad).send().await.unwrap()).await;
    assert_eq!((s, e["error"]["field"].as_str()), (422, Some("first_response_minutes")), "{e}");
    let (s, p) = json_of(app.req(Method::PUT, "/api/v1/service-policies/A").json(&good).send().await.unwrap()).await;
    assert_eq!((s, p["compensation_authority_cents"].as_i64()), (200, Some(20000)), "{p}");
    let (s, _) = app.get("/api/v1/service-policies/Z").await;
    assert!(s == 400 || s == 404, "{s}");
    let (s, cal) = app.get("/api/v1/calendar").await;
    assert_eq!((s, cal["weekdays"][0][0].as_str()), (200, Some("09:00")));
    // Bad tickets.
    for (body, field) in [
        (json!({"customer_id": 999999, "kind": "complaint", "channel": "phone", "subject": "x"}), "customer_id"),
        (json!({"customer_id": cid, "kind": "rant", "channel": "phone", "subject": "x"}), "kind"),
        (json!({"customer_id": cid, "kind": "complaint", "channel": "phone", "subject": "  "}), "subject"),
    ] {
        let (s, e) = app.post("/api/v1/tickets", body).await;
        assert_eq!((s, e["error"]["field"].as_str()), (422, Some(field)), "{e}");
    }
    let (s, _) = as_(
        &app,
        &at,
        Method::POST,
        "/api/v1/tickets",
        Some(json!({"customer_id": cid, "kind": "complaint", "channel": "phone", "subject": "旧", "opened_at": "2026-05-01T00:00:00Z"})),
    )
    .await;
    assert_eq!(s, 403, "agents do not backdate");
    let (s, _) = app.get("/api/v1/tickets/424242").await;
    assert_eq!(s, 404);
    // Reports over known tickets.
    for cat in ["上菜慢", "上菜慢", "上菜慢", "菜品质量"] {
        app.post(
            "/api/v1/tickets",
            json!({"customer_id": cid, "kind": "complaint", "channel": "store", "subject": "投诉", "category": cat}),
        )
        .await;
    }
    let (s, p) = as_(&app, &mt, Method::GET, "/api/v1/service/pareto?from=2026-06-01&to=2026-06-30", None).await;
    assert_eq!((s, p["total"].as_u64()), (200, Some(4)), "{p}");
    assert_eq!((p["categories"][0]["category"].as_str(), p["categories"][0]["vital_few"].as_bool()), (Some("上菜慢"), Some(true)));
    assert_eq!(p["categories"][0]["cumulative_share"].as_f64(), Some(0.75));
    let (s, _) = as_(&app, &at, Method::GET, "/api/v1/service/pareto", None).await;
    assert_eq!(s, 403);
    let (s, e) = as_(&app, &mt, Method::GET, "/api/v1/service/pareto?from=2026-06-30&to=2026-06-01", None).await;
    assert_eq!(s, 400, "{e}");
    let (s, r) = as_(&app, &mt, Method::GET, "/api/v1/service/complaint-rate?from=2026-06-01&to=2026-06-30", None).await;
    assert_eq!((s, r["overall"]["complaints"].as_i64(), r["overall"]["orders"].as_i64()), (200, Some(4), Some(0)), "{r}");
    let (s, k) = as_(&app, &mt, Method::GET, "/api/v1/service/kpis?month=2026-06", None).await;
    assert_eq!((s, k["month"].as_str()), (200, Some("2026-06")), "{k}");
    let (s, _) = as_(&app, &mt, Method::GET, "/api/v1/service/kpis?month=2026-13", None).await;
    assert_eq!(s, 400);
});

test_both!(public_links_are_rate_limited_not_overwhelmed, |db: TestDb| async move {
    let app = spawn_app(db).await;
    let forged = format!("/api/v1/public/confirmations/{}", "0".repeat(64));
    let mut statuses = Vec::new();
    for _ in 0..45 {
        let (s, body) = public(&app, Method::GET, &forged, None).await;
        if s == 429 {
            assert_eq!(error_code(&body), "rate_limited");
        }
        statuses.push(s);
    }
    assert!(statuses.iter().all(|s| *s == 404 || *s == 429), "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 404).count(), 30, "the burst, then 429: {statuses:?}");
    let r = app.http.get(format!("{}{forged}", app.base)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 429);
    assert_eq!(r.headers()["retry-after"], "60");
    // Staff endpoints are not limited by it.
    let (s, _) = app.get("/api/v1/tickets").await;
    assert_eq!(s, 200);
});
