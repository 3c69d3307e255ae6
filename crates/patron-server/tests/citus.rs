//! Citus only, over HTTP: a worker that is down gives a clear 503 with `Retry-After` for the
//! customers it holds, not a hang and not a 500, and nothing is written; the other worker's
//! customers are served. Every other API test runs on Citus too, through `test_both!`.

mod common;

use common::spawn_app;
use patron_store::db::query;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_is_down_is_a_503_with_retry_after() {
    let app = spawn_app(patron_store::testing::test_citus_db().await).await;
    let store = app.db.store.clone();
    let mut by_port: std::collections::BTreeMap<i32, i64> = Default::default();
    for i in 0..40 {
        let (s, b) = app.post("/api/v1/customers", json!({"name": format!("客户{i}")})).await;
        assert_eq!(s, 201, "{b}");
        let id = b["id"].as_i64().unwrap();
        let (port,): (i32,) = store
            .db
            .reader()
            .fetch_one(
                query("SELECT nodeport FROM citus_shards WHERE shardid = get_shard_id_for_distribution_column('customers', $1)").bind(id),
            )
            .await
            .unwrap();
        by_port.entry(port).or_insert(id);
        if by_port.len() == 2 {
            break;
        }
    }
    assert_eq!(by_port.len(), 2, "customers on both workers");
    let (&down_port, &down) = by_port.iter().next_back().unwrap();
    let (_, &up) = by_port.iter().next().unwrap();
    // The worker "goes down" for this database only: its address now points at a closed port.
    let move_node = |from: i32, to: i32| {
        query("SELECT citus_update_node((SELECT nodeid FROM pg_dist_node WHERE nodeport = $1), '127.0.0.1', CAST($2 AS INTEGER))")
            .bind(from)
            .bind(to)
    };
    store.db.reader().execute(move_node(down_port, 5999)).await.unwrap();
    let r = app.req(reqwest::Method::GET, &format!("/api/v1/customers/{down}")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 503);
    assert!(r.headers().get("retry-after").is_some());
    let (_, b) = common::json_of(r).await;
    assert_eq!(b["error"]["code"], "busy", "{b}");
    let (s, b) = app.post(&format!("/api/v1/customers/{down}/notes"), json!({"body": "来过"})).await;
    assert_eq!((s, b["error"]["code"].as_str()), (503, Some("busy")), "{b}");
    let (s, b) = app.get(&format!("/api/v1/customers/{up}")).await;
    assert_eq!(s, 200, "{b}");
    store.db.reader().execute(move_node(5999, down_port)).await.unwrap();
    let (s, b) = app.get(&format!("/api/v1/customers/{down}/timeline")).await;
    assert_eq!(s, 200, "{b}");
    assert!(b["items"].as_array().unwrap().iter().all(|e| e["kind"] != "note"), "the refused note was not written: {b}");
}
