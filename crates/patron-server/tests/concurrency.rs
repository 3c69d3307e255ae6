//! Concurrent writers against a real server, on each engine: a chain's tills posting orders for
//! one member at the same time, a client's retries of one order arriving together, and patches of
//! one customer racing each other. Nothing may be lost, refused with a false 409, or overwritten.

mod common;

use std::sync::Arc;

use common::{json_of, spawn_app, TestApp};
use patron_store::db::query;
use patron_store::test_both;
use patron_store::testing::TestDb;
use reqwest::Method;
use serde_json::{json, Value};
use tokio::sync::Barrier;

/// How many clients write at once.
const WRITERS: usize = 8;

/// POSTs `body` to `path` as admin from a task of its own, all tasks starting together.
async fn all_at_once(app: &TestApp, path: &str, bodies: Vec<Value>) -> Vec<(u16, Value)> {
    let barrier = Arc::new(Barrier::new(bodies.len()));
    let mut tasks = Vec::new();
    for body in bodies {
        let (http, url, token, barrier) = (app.http.clone(), format!("{}{path}", app.base), app.admin_token.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            json_of(http.request(Method::POST, url).bearer_auth(token).json(&body).send().await.expect("request")).await
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.expect("writer task"));
    }
    out
}

fn order(external_id: &str, customer_id: i64, day: u32, total_cents: i64) -> Value {
    json!({"external_id": external_id, "customer_id": customer_id,
           "ordered_at": format!("2026-05-{:02}T0{}:30:00Z", 1 + day % 28, day % 10), "total_cents": total_cents})
}

async fn count(app: &TestApp, sql: &str, id: i64) -> i64 {
    let (n,): (i64,) = app.db.store.db.reader().fetch_one(query(sql.to_owned()).bind(id)).await.expect("count");
    n
}

test_both!(concurrent_distinct_orders_for_one_customer_are_all_written, |db: TestDb| async move {
    let app = spawn_app(db).await;
    let (s, c) = app.post("/api/v1/customers", json!({"external_id": "M1", "name": "常客"})).await;
    assert_eq!(s, 201, "{c}");
    let id = c["id"].as_i64().unwrap();

    // 8 tills × 25 single orders, the tills running at once.
    let mut expected_spend = 0;
    let mut tills = Vec::new();
    for w in 0..WRITERS {
        let orders: Vec<Value> = (0..25)
            .map(|i| {
                let total = 1000 + (w * 25 + i) as i64;
                expected_spend += total;
                order(&format!("T{w}-{i}"), id, (w * 25 + i) as u32, total)
            })
            .collect();
        let (http, base, token) = (app.http.clone(), app.base.clone(), app.admin_token.clone());
        tills.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            for o in orders {
                let r = http.post(format!("{base}/api/v1/orders")).bearer_auth(&token).json(&o).send().await.expect("request");
                let (s, body) = json_of(r).await;
                statuses.push((s, body));
            }
            statuses
        }));
    }
    for t in tills {
        for (s, body) in t.await.unwrap() {
            assert_eq!(s, 201, "every distinct order is created: {body}");
            assert_eq!(body[0]["created"], true, "{body}");
        }
    }
    // 8 batches of 50 for the same customer, at once.
    let batches: Vec<Value> = (0..WRITERS)
        .map(|w| {
            Value::Array(
                (0..50)
                    .map(|i| {
                        let total = 500 + (w * 50 + i) as i64;
                        expected_spend += total;
                        order(&format!("B{w}-{i}"), id, (w * 50 + i) as u32, total)
                    })
                    .collect(),
            )
        })
        .collect();
    for (s, body) in all_at_once(&app, "/api/v1/orders", batches).await {
        assert_eq!(s, 201, "every batch is created: {body}");
        assert_eq!(body.as_array().unwrap().len(), 50);
    }

    let n = count(&app, "SELECT COUNT(*) FROM orders WHERE customer_id = $1", id).await;
    assert_eq!(n, (WRITERS * 25 + WRITERS * 50) as i64, "N concurrent distinct orders give N rows");
    let kept = app.db.store.customer_summary(id).await.unwrap().expect("a summary");
    assert_eq!(kept.order_count, n);
    assert_eq!(kept.spend_cents, expected_spend, "the summary counts every order sent");
    // The summary kept current under concurrency equals a recomputation from the orders.
    app.db.store.rebuild_summaries().await.unwrap();
    let rebuilt = app.db.store.customer_summary(id).await.unwrap().expect("a summary");
    assert_eq!(kept, rebuilt);
});

test_both!(the_same_order_sent_at_once_is_created_once, |db: TestDb| async move {
    let app = spawn_app(db).await;
    let (_, c) = app.post("/api/v1/customers", json!({"external_id": "M2", "name": "重试"})).await;
    let id = c["id"].as_i64().unwrap();
    for round in 0..20 {
        let same = order(&format!("R{round}"), id, round, 2000 + i64::from(round));
        let answers = all_at_once(&app, "/api/v1/orders", vec![same; WRITERS]).await;
        let mut created = 0;
        let mut ids = Vec::new();
        for (s, body) in &answers {
            let was_created = body[0]["created"].as_bool().unwrap_or_else(|| panic!("round {round}: {s} {body}"));
            assert!(*s == 200 || *s == 201, "round {round}: a retry gets the success answer, not {s}: {body}");
            created += usize::from(was_created);
            ids.push(body[0]["id"].as_i64().unwrap());
        }
        assert_eq!(created, 1, "round {round}: exactly one request adds the order: {answers:?}");
        ids.dedup();
        assert_eq!(ids.len(), 1, "round {round}: every answer names the same order: {answers:?}");
    }
    assert_eq!(count(&app, "SELECT COUNT(*) FROM orders WHERE customer_id = $1", id).await, 20);
    // Interactions promise the same.
    let same = json!({"external_id": "I1", "customer_id": id, "kind": "page_view", "occurred_at": "2026-06-01T10:00:00Z"});
    let answers = all_at_once(&app, "/api/v1/interactions", vec![same; WRITERS]).await;
    assert_eq!(answers.iter().filter(|(s, _)| *s == 200 || *s == 201).count(), WRITERS, "{answers:?}");
    assert_eq!(answers.iter().filter(|(_, b)| b[0]["created"] == true).count(), 1, "{answers:?}");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM interactions WHERE customer_id = $1", id).await, 1);
});

test_both!(concurrent_patches_of_one_customer_all_apply, |db: TestDb| async move {
    let app = spawn_app(db).await;
    let (_, c) = app.post("/api/v1/customers", json!({"name": "改资料"})).await;
    let id = c["id"].as_i64().unwrap();
    let path = format!("/api/v1/customers/{id}");
    for round in 0..3 {
        let barrier = Arc::new(Barrier::new(WRITERS));
        let mut tasks = Vec::new();
        for w in 0..WRITERS {
            let (http, url, token, barrier) = (app.http.clone(), format!("{}{path}", app.base), app.admin_token.clone(), barrier.clone());
            let body = json!({"attributes": {format!("k{round}_{w}"): w, "last": format!("{round}-{w}")}});
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                json_of(http.request(Method::PATCH, url).bearer_auth(token).json(&body).send().await.expect("request")).await
            }));
        }
        for t in tasks {
            let (s, body) = t.await.unwrap();
            assert_eq!(s, 200, "{body}");
        }
    }
    let (_, now) = app.get(&path).await;
    for round in 0..3 {
        for w in 0..WRITERS {
            assert_eq!(
                now["customer"]["attributes"][format!("k{round}_{w}")],
                json!(w),
                "no patch is lost: {}",
                now["customer"]["attributes"]
            );
        }
    }
    // Each patch saw the one before it: the history of `last` is one chain.
    let (_, changes) = app.get(&format!("{path}/changes")).await;
    let mut last: Vec<&Value> = changes.as_array().unwrap().iter().filter(|c| c["field"] == "attr.last").collect();
    last.reverse();
    assert_eq!(last.len(), 3 * WRITERS);
    assert_eq!(last[0]["old_value"], Value::Null);
    for pair in last.windows(2) {
        assert_eq!(pair[1]["old_value"], pair[0]["new_value"], "history chains: {pair:?}");
    }
    assert_eq!(last.last().unwrap()["new_value"], now["customer"]["attributes"]["last"]);
});
