//! Account management over a real server on each engine (issue 19 §1–§3): account teams
//! widen an agent's scope; bulk reassignment in one transaction with history and a handover
//! note; contact cadence due and overdue with an injected clock; the scheduler's contact task
//! made once however often (and however many at once) the jobs run; a task done as a call
//! records the contact; relationship stage with history; reviews and the health score; bad
//! input refused with the error envelope and nothing written.

mod common;

use chrono::Duration;
use common::{error_code, json_of, spawn_app, TestApp};
use patron_store::test_both;
use patron_store::testing::TestDb;
use patron_store::users::Role;
use reqwest::Method;
use serde_json::{json, Value};

async fn org(app: &TestApp, name: &str, owner: Option<i64>) -> i64 {
    let (st, c) = app.post("/api/v1/customers", json!({"name": name, "kind": "organisation", "owner_id": owner})).await;
    assert_eq!(st, 201, "{c}");
    c["id"].as_i64().or_else(|| c["customer"]["id"].as_i64()).expect("customer id")
}

async fn as_user(app: &TestApp, token: &str, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut r = app.req_as(token, method, path);
    if let Some(b) = body {
        r = r.json(&b);
    }
    json_of(r.send().await.expect("request")).await
}

test_both!(teams_widen_scope_and_reassignment_keeps_history, |db: TestDb| async move {
    let app = spawn_app(db).await;
    let s = &app.db.store;
    let a1 = s.create_user("a1@example.com", "李一", Role::Agent, None).await.unwrap();
    let a2 = s.create_user("a2@example.com", "王二", Role::Agent, None).await.unwrap();
    let (_, t1) = s.create_token("a1", Role::Agent, Some(a1.id)).await.unwrap();
    let (_, t2) = s.create_token("a2", Role::Agent, Some(a2.id)).await.unwrap();

    // An unowned account is invisible to an agent until the agent joins its team.
    let acme = org(&app, "Acme 贸易", None).await;
    let (st, _) = as_user(&app, &t1, Method::GET, &format!("/api/v1/customers/{acme}"), None).await;
    assert_eq!(st, 404);
    let (st, team) = app
        .put(
            &format!("/api/v1/customers/{acme}/team"),
            json!({"members": [{"user_id": a1.id, "role": "service"}, {"user_id": a2.id, "role": "account_manager"}]}),
        )
        .await;
    assert_eq!(st, 200, "{team}");
    assert_eq!(team["members"][0]["role"], "account_manager");
    let (st, _) = as_user(&app, &t1, Method::GET, &format!("/api/v1/customers/{acme}"), None).await;
    assert_eq!(st, 200);
    let (st, list) = as_user(&app, &t1, Method::GET, "/api/v1/customers", None).await;
    assert_eq!(st, 200, "{list}");
    assert!(list.to_string().contains("Acme"), "{list}");

    // Bad teams: two account managers, an unknown user, a bad role: refused, team unchanged.
    for (body, field) in [
        (json!({"members": [{"user_id": a1.id, "role": "account_manager"}, {"user_id": a2.id, "role": "account_manager"}]}), "members"),
        (json!({"members": [{"user_id": 999999, "role": "service"}]}), "members[0].user_id"),
        (json!({"members": [{"user_id": a1.id, "role": "Bad Role!"}]}), "members[0].role"),
    ] {
        let (st, e) = app.put(&format!("/api/v1/customers/{acme}/team"), body).await;
        assert_eq!(st, 422, "{e}");
        assert_eq!(e["error"]["field"], field, "{e}");
    }
    let (_, team) = app.get(&format!("/api/v1/customers/{acme}/team")).await;
    assert_eq!(team["members"].as_array().map(Vec::len), Some(2));

    // Bulk reassignment: three accounts of a1 move to a2 in one go, with history and a note.
    let mut ids = Vec::new();
    for n in ["甲公司", "乙公司", "丙公司"] {
        ids.push(org(&app, n, Some(a1.id)).await);
    }
    let other = org(&app, "丁公司", Some(a2.id)).await;
    // Refused as a whole: one listed account is not a1's; an unknown new owner; an agent.
    let (st, e) = app
        .post(
            "/api/v1/portfolios/reassign",
            json!({"from_user_id": a1.id, "to_user_id": a2.id, "customer_ids": [ids[0], other], "note": "x"}),
        )
        .await;
    assert_eq!((st, e["error"]["field"].as_str()), (422, Some("customer_ids")), "{e}");
    let (st, e) =
        app.post("/api/v1/portfolios/reassign", json!({"from_user_id": a1.id, "to_user_id": 999999, "customer_ids": ids.clone()})).await;
    assert_eq!((st, e["error"]["field"].as_str()), (422, Some("to_user_id")), "{e}");
    let (st, _) = as_user(
        &app,
        &t1,
        Method::POST,
        "/api/v1/portfolios/reassign",
        Some(json!({"from_user_id": a1.id, "to_user_id": a2.id, "customer_ids": ids.clone()})),
    )
    .await;
    assert_eq!(st, 403);
    for id in &ids {
        assert_eq!(s.customer_owner(*id).await.unwrap(), Some(a1.id), "nothing moved by a refused request");
        assert!(s.reassignments(*id).await.unwrap().is_empty());
    }
    let (st, r) = app
        .post(
            "/api/v1/portfolios/reassign",
            json!({"from_user_id": a1.id, "to_user_id": a2.id, "customer_ids": ids.clone(), "note": "客户喜欢周二上午拜访"}),
        )
        .await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["moved"], 3);
    for id in &ids {
        assert_eq!(s.customer_owner(*id).await.unwrap(), Some(a2.id));
        let h = s.reassignments(*id).await.unwrap();
        assert_eq!(h.len(), 1);
        assert_eq!((h[0].from_user_id, h[0].to_user_id), (Some(a1.id), a2.id));
        assert!(!h[0].by_actor.is_empty());
    }
    let (st, acct) = as_user(&app, &t2, Method::GET, &format!("/api/v1/customers/{}/account", ids[0]), None).await;
    assert_eq!(st, 200, "{acct}");
    assert_eq!(acct["handover"]["note"], "客户喜欢周二上午拜访", "{acct}");
    // The former owner no longer sees the account.
    let (st, _) = as_user(&app, &t1, Method::GET, &format!("/api/v1/customers/{}/account", ids[0]), None).await;
    assert_eq!(st, 404);
    // My accounts of a2: the three moved, the fourth owned, Acme through the team.
    let (st, mine) = as_user(&app, &t2, Method::GET, "/api/v1/portfolios/mine", None).await;
    assert_eq!(st, 200, "{mine}");
    assert_eq!(mine["rows"].as_array().map(Vec::len), Some(5), "{mine}");
});

test_both!(cadence_due_overdue_and_one_task_per_cycle, |db: TestDb| async move {
    let app = spawn_app(db).await;
    let s = &app.db.store;
    let clock = app.db.clock.clone();
    let t0 = s.now();
    let am = s.create_user("am@example.com", "客户经理", Role::Agent, None).await.unwrap();
    let (_, tok) = s.create_token("am", Role::Agent, Some(am.id)).await.unwrap();
    let c = org(&app, "华东机械", Some(am.id)).await;
    // Out-of-range cadence: refused, nothing written.
    let (st, e) = app.patch(&format!("/api/v1/customers/{c}"), json!({"contact_cadence_days": 0})).await;
    assert_eq!((st, e["error"]["field"].as_str()), (422, Some("contact_cadence_days")), "{e}");
    let (st, p) = app.patch(&format!("/api/v1/customers/{c}"), json!({"contact_cadence_days": 10})).await;
    assert_eq!(st, 200, "{p}");
    let (_, acct) = app.get(&format!("/api/v1/customers/{c}/account")).await;
    assert_eq!(acct["cadence"]["cadence_days"], 10, "{acct}");
    assert_eq!(acct["cadence"]["cadence_source"], "customer");
    let due0 = acct["next_contact_due"].as_str().expect("due").to_owned();

    clock.set(t0 + Duration::days(5));
    let (_, o) = app.get(&format!("/api/v1/cadence/overdue?user_id={}", am.id)).await;
    assert_eq!(o["rows"].as_array().map(Vec::len), Some(0), "{o}");
    assert_eq!(s.run_due_jobs().await.unwrap().accounts.cadence_tasks, 0);

    clock.set(t0 + Duration::days(12));
    let (st, o) = app.get(&format!("/api/v1/cadence/overdue?user_id={}&tier=default", am.id)).await;
    assert_eq!(st, 200, "{o}");
    assert_eq!(o["rows"].as_array().map(Vec::len), Some(1), "{o}");
    assert_eq!(o["rows"][0]["days_overdue"], 2, "{o}");
    let (st, e) = app.get("/api/v1/cadence/overdue?tier=Z").await;
    // The tier is an enum in the OpenAPI document: refused as a bad query parameter.
    assert_eq!((st, error_code(&e).as_str(), e["error"]["field"].as_str()), (400, "invalid_query", Some("tier")), "{e}");

    // Jobs twice, then two at once: one task for the account manager.
    assert_eq!(s.run_due_jobs().await.unwrap().accounts.cadence_tasks, 1);
    assert_eq!(s.run_due_jobs().await.unwrap().accounts.cadence_tasks, 0);
    let (a, b) = tokio::join!(s.run_accounts(), s.run_accounts());
    assert_eq!(a.unwrap().cadence_tasks + b.unwrap().cadence_tasks, 0);
    let (_, tasks) = as_user(&app, &tok, Method::GET, "/api/v1/tasks?mine=true", None).await;
    let tasks = tasks["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    assert_eq!(tasks[0]["due_on"].as_str(), Some(due0.as_str()));
    let task = tasks[0]["id"].as_i64().expect("task id");

    // Snooze to tomorrow, recur every 10 days, then done as a call: the contact is recorded.
    let tomorrow = (s.now() + Duration::days(1)).with_timezone(&s.config.business_tz).date_naive().to_string();
    let (st, t) = as_user(
        &app,
        &tok,
        Method::POST,
        &format!("/api/v1/tasks/{task}/schedule"),
        Some(json!({"snoozed_until": tomorrow, "recurrence_days": 10})),
    )
    .await;
    assert_eq!(st, 200, "{t}");
    assert_eq!((t["due_on"].as_str(), t["recurrence_days"].as_i64()), (Some(tomorrow.as_str()), Some(10)), "{t}");
    let (st, e) = as_user(&app, &tok, Method::POST, &format!("/api/v1/tasks/{task}/complete"), Some(json!({"outcome": "lunch"}))).await;
    assert_eq!(st, 422, "{e}");
    let (st, t) =
        as_user(&app, &tok, Method::POST, &format!("/api/v1/tasks/{task}/complete"), Some(json!({"outcome": "call", "note": "谈了续约"})))
            .await;
    assert_eq!(st, 200, "{t}");
    assert!(t["interaction_id"].as_i64().is_some() && t["next_task_id"].as_i64().is_some(), "{t}");
    let (_, o) = app.get(&format!("/api/v1/cadence/overdue?user_id={}", am.id)).await;
    assert_eq!(o["rows"].as_array().map(Vec::len), Some(0), "{o}");
    let (_, acct) = app.get(&format!("/api/v1/customers/{c}/account")).await;
    assert_eq!(acct["cadence"]["days_overdue"], -10, "{acct}");
    // No new cadence task until the next cycle falls due.
    assert_eq!(s.run_due_jobs().await.unwrap().accounts.cadence_tasks, 0);
    clock.set(t0 + Duration::days(22));
    assert_eq!(s.run_due_jobs().await.unwrap().accounts.cadence_tasks, 1);
    assert_eq!(s.run_due_jobs().await.unwrap().accounts.cadence_tasks, 0);

    // null: back to the tier's cadence (the default tier's policy).
    let (st, _) = app.patch(&format!("/api/v1/customers/{c}"), json!({"contact_cadence_days": null})).await;
    assert_eq!(st, 200);
    let (_, acct) = app.get(&format!("/api/v1/customers/{c}/account")).await;
    assert_eq!(acct["cadence"]["cadence_source"], "tier", "{acct}");
});

test_both!(stage_reviews_health_and_bad_input, |db: TestDb| async move {
    let app = spawn_app(db).await;
    let s = &app.db.store;
    let clock = app.db.clock.clone();
    let t0 = s.now();
    let owner = s.create_user("own@example.com", "主管", Role::Agent, None).await.unwrap();
    let (_, tok) = s.create_token("own", Role::Agent, Some(owner.id)).await.unwrap();
    let c = org(&app, "南方物流", Some(owner.id)).await;

    // Stage with history; an unknown stage refused, nothing written.
    let (st, r) = app.put(&format!("/api/v1/customers/{c}/relationship"), json!({"stage": "acquaintance", "reason": "首次拜访"})).await;
    assert_eq!(st, 200, "{r}");
    let (st, r) = app.put(&format!("/api/v1/customers/{c}/relationship"), json!({"stage": "breakthrough", "reason": "拿下第一单"})).await;
    assert_eq!(st, 200, "{r}");
    assert_eq!((r["stage"].as_str(), r["history"].as_array().map(Vec::len)), (Some("breakthrough"), Some(2)), "{r}");
    assert!(r["guidance"].as_str().is_some_and(|g| g.contains("突破")));
    let (st, e) = app.put(&format!("/api/v1/customers/{c}/relationship"), json!({"stage": "marriage", "reason": "x"})).await;
    assert_eq!((st, e["error"]["field"].as_str()), (422, Some("stage")), "{e}");
    let (_, r) = app.get(&format!("/api/v1/customers/{c}/relationship")).await;
    assert_eq!((r["stage"].as_str(), r["history"].as_array().map(Vec::len)), (Some("breakthrough"), Some(2)));

    // People map: one tie is single-threaded, two are not; a strength of 6 is refused.
    let (st, ct) =
        app.post(&format!("/api/v1/customers/{c}/contacts"), json!({"name": "赵采购", "role": "采购经理", "interests": "钓鱼"})).await;
    assert_eq!(st, 201, "{ct}");
    let contact = ct["id"].as_i64().expect("contact id");
    let (st, pm) = app
        .put(
            &format!("/api/v1/customers/{c}/people/ties"),
            json!({"contact_id": contact, "user_id": owner.id, "strength": 4, "shared_interests": "钓鱼"}),
        )
        .await;
    assert_eq!(st, 200, "{pm}");
    assert_eq!(pm["single_threaded"], true, "{pm}");
    let (st, e) =
        app.put(&format!("/api/v1/customers/{c}/people/ties"), json!({"contact_id": contact, "user_id": owner.id, "strength": 6})).await;
    assert_eq!(st, 422, "{e}");
    let (_, pm) = app.get(&format!("/api/v1/customers/{c}/people")).await;
    assert_eq!(pm["people"][0]["ties"][0]["strength"], 4, "{pm}");

    // A review of 4s: (4 − 1) / 4 = 75 with no measured signal yet.
    let good = json!({"scores": {"responsiveness": 4, "price": 4, "delivery": 4, "obligations": 4, "complaints": 4, "contract": 4}, "sentiment": 4, "note": "稳定"});
    let (st, r) = app.post(&format!("/api/v1/customers/{c}/reviews"), good).await;
    assert_eq!(st, 201, "{r}");
    assert_eq!(r["health_score"].as_f64(), Some(75.0), "{r}");
    // Bad reviews: a 6, a sentiment of 0, a missing score: refused with nothing written.
    for body in [
        json!({"scores": {"responsiveness": 6, "price": 4, "delivery": 4, "obligations": 4, "complaints": 4, "contract": 4}, "sentiment": 4}),
        json!({"scores": {"responsiveness": 4, "price": 4, "delivery": 4, "obligations": 4, "complaints": 4, "contract": 4}, "sentiment": 0}),
        json!({"scores": {"responsiveness": 4}, "sentiment": 4}),
    ] {
        let (st, e) = app.post(&format!("/api/v1/customers/{c}/reviews"), body).await;
        assert!(st == 422 || st == 400, "{st} {e}");
        assert!(e["error"]["code"].is_string(), "{e}");
    }
    let (_, list) = app.get(&format!("/api/v1/customers/{c}/reviews")).await;
    assert_eq!(list["rows"].as_array().map(Vec::len), Some(1));

    // A falling review: weighted (sentiment counts double), 25 → the owner is notified.
    let bad = json!({"scores": {"responsiveness": 2, "price": 2, "delivery": 2, "obligations": 2, "complaints": 2, "contract": 2}, "sentiment": 2});
    let (st, r) = app.post(&format!("/api/v1/customers/{c}/reviews"), bad).await;
    assert_eq!(st, 201, "{r}");
    assert_eq!((r["health_score"].as_f64(), r["previous_health_score"].as_f64()), (Some(25.0), Some(75.0)), "{r}");
    let (_, notes) = as_user(&app, &tok, Method::GET, "/api/v1/notifications", None).await;
    assert!(notes.to_string().contains("health_drop"), "{notes}");

    // Measured signals: a completed order and a complaint on it bring the complaint rate in.
    let (st, o) = app
        .post("/api/v1/orders", json!({"customer_id": c, "external_id": "o-1", "ordered_at": s.now().to_rfc3339(), "total_cents": 10000, "status": "completed"}))
        .await;
    assert_eq!(st, 201, "{o}");
    let mixed = json!({"scores": {"responsiveness": 5, "price": 5, "delivery": 5, "obligations": 5, "complaints": 5, "contract": 5}, "sentiment": 5});
    let (_, r) = app.post(&format!("/api/v1/customers/{c}/reviews"), mixed).await;
    // review 100, complaint_rate 100 (no complaint), spend_trend 100 (all spend recent).
    assert_eq!(r["parts"]["complaint_rate"].as_f64(), Some(100.0), "{r}");
    assert_eq!(r["health_score"].as_f64(), Some(100.0), "{r}");

    // Reviews due by tier: the default tier every 365 days; overdue notifies once per cycle.
    let (_, due) = app.get(&format!("/api/v1/reviews/due?user_id={}", owner.id)).await;
    assert_eq!(due["rows"].as_array().map(Vec::len), Some(0), "{due}");
    clock.set(t0 + Duration::days(367));
    let (_, due) = app.get(&format!("/api/v1/reviews/due?user_id={}", owner.id)).await;
    assert_eq!(due["rows"].as_array().map(Vec::len), Some(1), "{due}");
    assert_eq!(s.run_due_jobs().await.unwrap().accounts.review_alerts, 1);
    assert_eq!(s.run_due_jobs().await.unwrap().accounts.review_alerts, 0);

    // Unknown customer: the envelope, 404.
    let (st, e) = app.post("/api/v1/customers/999999/reviews", json!({"scores": {"responsiveness": 4, "price": 4, "delivery": 4, "obligations": 4, "complaints": 4, "contract": 4}, "sentiment": 4})).await;
    assert_eq!((st, error_code(&e).as_str()), (404, "not_found"), "{e}");
});

test_both!(my_accounts_page_and_the_account_card, |db: TestDb| async move {
    let app = spawn_app(db).await;
    let s = &app.db.store;
    let cookie = common::ui_session(&app, "am-ui@example.com", Role::Agent).await;
    let me = s.users().await.unwrap().into_iter().find(|u| u.email == "am-ui@example.com").expect("user").id;
    let c = org(&app, "西部电器", Some(me)).await;
    let (st, _) = app.put(&format!("/api/v1/customers/{c}/relationship"), json!({"stage": "consolidation", "reason": "续约"})).await;
    assert_eq!(st, 200);
    let review = json!({"scores": {"responsiveness": 3, "price": 3, "delivery": 3, "obligations": 3, "complaints": 3, "contract": 3}, "sentiment": 3});
    let (st, _) = app.post(&format!("/api/v1/customers/{c}/reviews"), review).await;
    assert_eq!(st, 201);
    for path in ["/ui/accounts", "/ui/accounts?sort=health&desc=1", "/ui/accounts?overdue=1"] {
        let (st, html) = common::ui(&app, &cookie, Method::GET, path, &[]).await;
        assert_eq!(st, 200, "{path}: {html}");
        assert!(html.contains("account-list"), "{html}");
        if !path.contains("overdue") {
            assert!(html.contains("西部电器") && html.contains("50"), "{path}: {html}");
        }
    }
    let (st, html) = common::ui(&app, &cookie, Method::GET, &format!("/ui/customers/{c}"), &[]).await;
    assert_eq!(st, 200, "{html}");
    assert!(html.contains("account-card") && html.contains("next-contact") && html.contains("health-score"), "{html}");
});
