//! The loyalty API over a real server on each engine: the programme's settings, enrolment,
//! points earned by an order posted through the API, the member card, redemptions (201, the
//! same key answering the first result, 409 for a reused key with other content and for too
//! few points, 20 concurrent requests with one success), adjustments (manager+, a reason),
//! the ledger, the scheduler's expiry, and bad input refused in the error envelope.

mod common;

use common::{error_code, json_of, spawn_app, TestApp};
use patron_store::test_both;
use patron_store::testing::TestDb;
use patron_store::users::Role;
use reqwest::Method;
use serde_json::{json, Value};

async fn as_(app: &TestApp, token: &str, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut r = app.req_as(token, method, path);
    if let Some(b) = body {
        r = r.json(&b);
    }
    json_of(r.send().await.expect("request")).await
}

test_both!(points_from_an_order_to_a_redemption, |db: TestDb| async move {
    let app = spawn_app(db).await;
    let s = &app.db.store;
    let agent = s.create_user("agent@example.com", "小张", Role::Agent, None).await.unwrap();
    let (_, at) = s.create_token("a", Role::Agent, Some(agent.id)).await.unwrap();

    // The programme: off by default; agents may not change it; bad values are 422 by field.
    let (st, p) = app.get("/api/v1/loyalty/program").await;
    assert_eq!((st, p["enabled"].as_bool()), (200, Some(false)), "{p}");
    let mut p = p;
    p["enabled"] = json!(true);
    p["expiry_months"] = json!(12);
    let (st, _) = as_(&app, &at, Method::PUT, "/api/v1/loyalty/program", Some(p.clone())).await;
    assert_eq!(st, 403);
    let mut bad = p.clone();
    bad["tiers"] = json!([{"name": "金卡", "min_points_earned": 100, "multiplier": 1.5}, {"name": "银卡", "min_points_earned": 10, "multiplier": 1.0}]);
    let (st, e) = app.put("/api/v1/loyalty/program", bad).await;
    assert_eq!((st, e["error"]["field"].as_str()), (422, Some("tiers[1].min_points_earned")), "{e}");
    let (st, _) = app.put("/api/v1/loyalty/program", p).await;
    assert_eq!(st, 200);

    let (_, c) = app.post("/api/v1/customers", json!({"name": "王小明", "owner_id": agent.id})).await;
    let cid = c["id"].as_i64().unwrap();
    let (_, other) = app.post("/api/v1/customers", json!({"name": "李雪梅"})).await;
    let other = other["id"].as_i64().unwrap();
    // Not a member yet: 404; enrolment 201, twice 409; outside the agent's scope the customer
    // does not exist: 404.
    let (st, e) = app.get(&format!("/api/v1/loyalty/members/{cid}")).await;
    assert_eq!((st, error_code(&e).as_str()), (404, "not_found"));
    let (st, m) = as_(&app, &at, Method::POST, "/api/v1/loyalty/members", Some(json!({"customer_id": cid}))).await;
    assert_eq!((st, m["balance"].as_i64()), (201, Some(0)), "{m}");
    let (st, _) = app.post("/api/v1/loyalty/members", json!({"customer_id": cid})).await;
    assert_eq!(st, 409);
    let (st, _) = as_(&app, &at, Method::POST, "/api/v1/loyalty/members", Some(json!({"customer_id": other}))).await;
    assert_eq!(st, 404);
    let (st, _) = app.post("/api/v1/loyalty/members", json!({"customer_id": 987654321})).await;
    assert_eq!(st, 404);

    // An order of 250.00 yuan earns 250 points in its own transaction.
    let now = s.clock.now();
    let (st, o) =
        app.post("/api/v1/orders", json!({"external_id": "W1", "customer_id": cid, "ordered_at": now, "total_cents": 25000})).await;
    assert_eq!(st, 201, "{o}");
    let (st, m) = as_(&app, &at, Method::GET, &format!("/api/v1/loyalty/members/{cid}"), None).await;
    assert_eq!((st, m["balance"].as_i64(), m["spendable"].as_i64()), (200, Some(250), Some(250)), "{m}");
    assert_eq!(m["lots"][0]["remaining"].as_i64(), Some(250));

    let path = format!("/api/v1/loyalty/members/{cid}/redemptions");
    let (st, r1) = as_(&app, &at, Method::POST, &path, Some(json!({"points": 100, "idempotency_key": "till-7-0001"}))).await;
    assert_eq!(st, 201, "{r1}");
    let (st, r2) = as_(&app, &at, Method::POST, &path, Some(json!({"points": 100, "idempotency_key": "till-7-0001"}))).await;
    assert_eq!((st, r2["id"].clone()), (201, r1["id"].clone()), "the same key answers the first result");
    let (st, e) = app.post(&path, json!({"points": 101, "idempotency_key": "till-7-0001"})).await;
    assert_eq!((st, error_code(&e).as_str()), (409, "conflict"));
    let (st, e) = app.post(&path, json!({"points": 151, "idempotency_key": "too-much"})).await;
    assert_eq!((st, error_code(&e).as_str()), (409, "invalid_state"), "{e}");
    for bad in [
        json!({"points": 0, "idempotency_key": "z"}),
        json!({"points": -1, "idempotency_key": "n"}),
        json!({"points": 1, "idempotency_key": ""}),
    ] {
        let (st, e) = app.post(&path, bad).await;
        assert_eq!(st, 422, "{e}");
    }
    let (st, _) = app.post(&format!("/api/v1/loyalty/members/{other}/redemptions"), json!({"points": 1, "idempotency_key": "x"})).await;
    assert_eq!(st, 404);

    // 20 concurrent redemptions of 60% of the 150 left: exactly one is made.
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let req = app.req(Method::POST, &path).json(&json!({"points": 90, "idempotency_key": format!("c{i}")}));
            tokio::spawn(async move { json_of(req.send().await.expect("request")).await.0 })
        })
        .collect();
    let mut codes = Vec::new();
    for t in tasks {
        codes.push(t.await.unwrap());
    }
    assert_eq!(codes.iter().filter(|&&c| c == 201).count(), 1, "{codes:?}");
    assert_eq!(codes.iter().filter(|&&c| c == 409).count(), 19, "{codes:?}");

    // Adjustments: manager+, with a reason.
    let adj = format!("/api/v1/loyalty/members/{cid}/adjustments");
    let (st, _) = as_(&app, &at, Method::POST, &adj, Some(json!({"points": 10, "reason": "补录"}))).await;
    assert_eq!(st, 403);
    let (st, e) = app.post(&adj, json!({"points": 10, "reason": " "})).await;
    assert_eq!((st, e["error"]["field"].as_str()), (422, Some("reason")));
    let (st, e) = app.post(&adj, json!({"points": -100, "reason": "纠错"})).await;
    assert_eq!(st, 409, "{e}");
    let (st, a) = app.post(&adj, json!({"points": 40, "reason": "投诉补偿"})).await;
    assert_eq!((st, a["kind"].as_str(), a["points"].as_i64()), (201, Some("adjust"), Some(40)), "{a}");

    let (st, l) = app.get(&format!("/api/v1/loyalty/members/{cid}/ledger?limit=2")).await;
    assert_eq!(st, 200);
    assert_eq!(l["items"].as_array().unwrap().len(), 2);
    let (st, l2) = app.get(&format!("/api/v1/loyalty/members/{cid}/ledger?cursor={}", l["next_cursor"].as_str().unwrap())).await;
    assert_eq!(st, 200);
    let kinds: Vec<&str> =
        l["items"].as_array().unwrap().iter().chain(l2["items"].as_array().unwrap()).map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, vec!["adjust", "redeem", "redeem", "earn"]);
    let (st, _) = app.get(&format!("/api/v1/loyalty/members/{cid}/ledger?limit=0")).await;
    assert_eq!(st, 400);
    let (st, _) = app.get(&format!("/api/v1/loyalty/members/{cid}/ledger?cursor=zz")).await;
    assert_eq!(st, 400);

    // A refund through the API reverses the earning in the order's transaction.
    let (st, _) = app
        .post(
            "/api/v1/orders",
            json!({"external_id": "W1", "customer_id": cid, "ordered_at": now, "total_cents": 25000, "status": "refunded"}),
        )
        .await;
    assert_eq!(st, 200, "an update of the order");
    let (_, m) = app.get(&format!("/api/v1/loyalty/members/{cid}")).await;
    // 250 − 100 − 90 + 40 = 100 left, 250 taken back: a debt of 150.
    assert_eq!((m["balance"].as_i64(), m["debt"].as_i64()), (Some(-150), Some(150)), "{m}");

    // The catalogue: managers add rewards; a redemption with a reward; its fulfilment.
    let fish = json!({"name": "招牌酸菜鱼", "points": 10, "stock": 1, "cost_cents": 3800, "tiers": []});
    let (st, _) = as_(&app, &at, Method::POST, "/api/v1/loyalty/rewards", Some(fish.clone())).await;
    assert_eq!(st, 403);
    let (st, e) = app.post("/api/v1/loyalty/rewards", json!({"name": "", "points": 10})).await;
    assert_eq!(st, 422, "{e}");
    let (st, rw) = app.post("/api/v1/loyalty/rewards", fish).await;
    assert_eq!(st, 201, "{rw}");
    let (st, list) = as_(&app, &at, Method::GET, &format!("/api/v1/loyalty/rewards?customer_id={cid}"), None).await;
    assert_eq!((st, list["items"].as_array().map(Vec::len)), (200, Some(0)), "a debtor may choose nothing");
    app.post(&adj, json!({"points": 200, "reason": "补偿"})).await;
    let (_, list) = app.get(&format!("/api/v1/loyalty/rewards?customer_id={cid}")).await;
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1));
    let (st, red) = as_(&app, &at, Method::POST, &path, Some(json!({"reward_id": rw["id"], "idempotency_key": "fish-1"}))).await;
    assert_eq!((st, red["points"].as_i64()), (201, Some(10)), "{red}");
    let (st, e) = app.post(&path, json!({"reward_id": rw["id"], "idempotency_key": "fish-2"})).await;
    assert_eq!((st, error_code(&e).as_str()), (409, "invalid_state"), "out of stock: {e}");
    let (st, e) = app.post(&path, json!({"reward_id": 999999, "idempotency_key": "fish-3"})).await;
    assert_eq!(st, 404, "{e}");
    let (st, done) = app.patch(&format!("{path}/{}", red["id"]), json!({"status": "handed_over"})).await;
    assert_eq!((st, done["status"].as_str()), (200, Some("handed_over")));
    let (st, _) = app.patch(&format!("{path}/{}", red["id"]), json!({"status": "cancelled"})).await;
    assert_eq!(st, 409);
    let (st, reds) = app.get(&path).await;
    assert_eq!((st, reds["items"].as_array().map(Vec::len)), (200, Some(3)));

    // Reports: managers only.
    let (st, _) = as_(&app, &at, Method::GET, "/api/v1/loyalty/liability", None).await;
    assert_eq!(st, 403);
    let (st, l) = app.get("/api/v1/loyalty/liability").await;
    assert_eq!((st, l["outstanding"].as_i64()), (200, Some(40)), "{l}");
    let r = app.req(Method::GET, "/api/v1/loyalty/liability/export").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().starts_with("issue_month,issued,"));
    let (st, rs) = app.get("/api/v1/loyalty/referrals").await;
    assert_eq!((st, rs["paid"].as_i64()), (200, Some(0)));
});

test_both!(cost_to_serve_over_the_api, |db: TestDb| async move {
    let app = spawn_app(db).await;
    let s = &app.db.store;
    let agent = s.create_user("agent@example.com", "小张", Role::Agent, None).await.unwrap();
    let (_, at) = s.create_token("a", Role::Agent, Some(agent.id)).await.unwrap();
    // The rates: defaults, admins change them, bad values 422 by field, agents 403.
    let (st, rates) = app.get("/api/v1/analytics/cost-to-serve/settings").await;
    assert_eq!((st, rates["period_months"].as_i64()), (200, Some(12)), "{rates}");
    let mut r = rates.clone();
    r["margin_rate"] = json!(0.25);
    r["message_cents"]["sms"] = json!(7);
    let (st, saved) = app.put("/api/v1/analytics/cost-to-serve/settings", r.clone()).await;
    assert_eq!((st, saved["margin_rate"].as_f64()), (200, Some(0.25)), "{saved}");
    let mut bad = r.clone();
    bad["message_cents"]["fax"] = json!(1);
    let (st, e) = app.put("/api/v1/analytics/cost-to-serve/settings", bad).await;
    assert_eq!((st, e["error"]["field"].as_str()), (422, Some("message_cents")), "{e}");
    let (st, _) = as_(&app, &at, Method::PUT, "/api/v1/analytics/cost-to-serve/settings", Some(r)).await;
    assert_eq!(st, 403);
    // Before an analysis: an empty report; an unknown customer 404.
    let (st, rep) = app.get("/api/v1/analytics/cost-to-serve").await;
    assert_eq!((st, rep["run_id"].is_null(), rep["cells"].as_array().map(Vec::len)), (200, true, Some(0)), "{rep}");
    let (st, _) = app.get("/api/v1/analytics/cost-to-serve?customer_id=987654321").await;
    assert_eq!(st, 404);
    // After one: a customer with a ¥100 order has ¥25 margin and no cost.
    let (_, c) = app.post("/api/v1/customers", json!({"name": "周杰"})).await;
    let cid = c["id"].as_i64().unwrap();
    let (st, _) = app
        .post(
            "/api/v1/orders",
            json!([{"external_id": "C1", "customer_id": cid, "ordered_at": "2026-06-01T04:00:00Z", "total_cents": 10000}]),
        )
        .await;
    assert!(st == 200 || st == 201, "{st}");
    let (st, run) = app.post("/api/v1/analytics/runs", json!({"as_of": "2026-06-30"})).await;
    assert!(st == 200 || st == 201, "{st} {run}");
    let (st, rep) = app.get(&format!("/api/v1/analytics/cost-to-serve?customer_id={cid}")).await;
    assert_eq!(st, 200, "{rep}");
    assert_eq!(
        (
            rep["customer"]["margin_cents"].as_i64(),
            rep["customer"]["cost_to_serve_cents"].as_i64(),
            rep["customer"]["profit_cents"].as_i64()
        ),
        (Some(2_500), Some(0), Some(2_500)),
        "{rep}"
    );
    // Agents read only their own portfolio: the whole-base report is not theirs.
    let (st, _) = as_(&app, &at, Method::GET, "/api/v1/analytics/cost-to-serve", None).await;
    assert_eq!(st, 403);
});
