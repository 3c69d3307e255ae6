//! `/metrics` on a real server on each engine: admins only on the main address, open on the
//! separate metrics listener; requests counted by route pattern (never by concrete path, so no
//! id reaches the scraper), latency histograms consistent with the counts, import rows by
//! outcome, pool and outbox gauges.

mod common;

use common::{spawn_app, TestApp};
use patron_server::AppState;
use patron_store::test_both;
use patron_store::testing::TestDb;
use patron_store::users::Role;
use reqwest::Method;
use serde_json::json;

async fn scrape(app: &TestApp, token: &str) -> (u16, String, String) {
    let r = app.req_as(token, Method::GET, "/metrics").send().await.expect("scrape");
    let status = r.status().as_u16();
    let ct = r.headers().get("content-type").map(|v| v.to_str().unwrap_or("").to_owned()).unwrap_or_default();
    (status, ct, r.text().await.expect("body"))
}

/// The value of the sample whose name-and-labels is exactly `series`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')).and_then(|v| v.trim().parse().ok()))
}

test_both!(metrics_count_requests_by_route_for_admins_only, |db: TestDb| async move {
    let app = spawn_app(db).await;
    let s = &app.db.store;
    let (_, agent) = s.create_token("agent", Role::Agent, None).await.unwrap();

    // Three 404s on one route pattern with different ids, one created customer.
    for id in [987_654_321_i64, 987_654_322, 987_654_323] {
        let (st, _) = app.get(&format!("/api/v1/customers/{id}")).await;
        assert_eq!(st, 404);
    }
    let (st, _) = app.post("/api/v1/customers", json!({"name": "王小明"})).await;
    assert_eq!(st, 201);
    let (st, _) = app.get("/api/v1/no/such/path/13800138000").await;
    assert_eq!(st, 404);

    // No token: 401; an agent: 403; an admin: the exposition.
    let r = app.http.get(format!("{}/metrics", app.base)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let (st, _, _) = scrape(&app, &agent).await;
    assert_eq!(st, 403);
    let (st, ct, text) = scrape(&app, &app.admin_token).await;
    assert_eq!(st, 200, "{text}");
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");

    let by_route = r#"patron_http_requests_total{method="GET",route="/api/v1/customers/{id}",status="404"}"#;
    assert_eq!(sample(&text, by_route), Some(3.0), "{text}");
    assert_eq!(sample(&text, r#"patron_http_requests_total{method="POST",route="/api/v1/customers",status="201"}"#), Some(1.0));
    // Paths are never labels: no id, no probe path.
    assert!(!text.contains("987654321") && !text.contains("13800138000"), "{text}");
    assert!(sample(&text, r#"patron_http_requests_total{method="GET",route="unmatched",status="404"}"#).is_some(), "{text}");
    // The histogram: +Inf bucket = count = the requests of that route; buckets never decrease.
    let labels = r#"method="GET",route="/api/v1/customers/{id}""#;
    assert_eq!(sample(&text, &format!("patron_http_request_duration_seconds_count{{{labels}}}")), Some(3.0));
    assert_eq!(sample(&text, &format!("patron_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}}")), Some(3.0));
    let buckets: Vec<f64> = text
        .lines()
        .filter(|l| l.starts_with(&format!("patron_http_request_duration_seconds_bucket{{{labels},")))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse().ok()))
        .collect();
    assert_eq!(buckets.len(), 12);
    assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{buckets:?}");
    // Gauges read from the store.
    assert_eq!(sample(&text, "patron_up"), Some(1.0));
    assert_eq!(sample(&text, r#"patron_outbox_depth{kind="survey_invitation"}"#), Some(0.0));
    assert!(sample(&text, "patron_db_pool_max_connections").is_some_and(|m| m >= 1.0));
    // The scrapes themselves are counted too (the 401 and the 403 above).
    assert_eq!(sample(&text, r#"patron_http_requests_total{method="GET",route="/metrics",status="403"}"#), Some(1.0));
});

test_both!(metrics_count_import_rows_and_serve_on_their_own_listener, |db: TestDb| async move {
    // One server state behind two listeners, as `patron serve --metrics-listen` runs it.
    let (_, admin) = db.store.create_token("admin", Role::Admin, None).await.unwrap();
    let state = AppState::new(db.store.clone(), Default::default());
    let main = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let side = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (main_addr, side_addr) = (main.local_addr().unwrap(), side.local_addr().unwrap());
    tokio::spawn(patron_server::serve(main, state.clone()));
    tokio::spawn(patron_server::metrics::serve_metrics(side, state));
    let http = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..200 {
        if http.get(format!("http://{main_addr}/healthz")).send().await.is_ok_and(|r| r.status().is_success()) {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(ready, "server did not become healthy");

    let csv = "customer_id,name,mobile\nM1,王伟,13900000001\nM2,李娜,13900000002\nM3,赵六,not-a-mobile\n";
    let form = reqwest::multipart::Form::new()
        .text("kind", "customers")
        .text("skip_invalid", "true")
        .part("file", reqwest::multipart::Part::bytes(csv.as_bytes().to_vec()).file_name("customers.csv"));
    let r = http.post(format!("http://{main_addr}/api/v1/imports")).bearer_auth(&admin).multipart(form).send().await.unwrap();
    let report: serde_json::Value = r.json().await.unwrap();
    assert_eq!((report["created"].as_u64(), report["rejected"].as_u64()), (Some(2), Some(1)), "{report}");

    // The side listener needs no login; the main one still does.
    let r = http.get(format!("http://{side_addr}/metrics")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let text = r.text().await.unwrap();
    assert_eq!(sample(&text, r#"patron_import_rows_total{kind="customers",outcome="created"}"#), Some(2.0), "{text}");
    assert_eq!(sample(&text, r#"patron_import_rows_total{kind="customers",outcome="rejected"}"#), Some(1.0), "{text}");
    assert_eq!(sample(&text, r#"patron_http_requests_total{method="POST",route="/api/v1/imports",status="200"}"#), Some(1.0));
    assert_eq!(http.get(format!("http://{main_addr}/metrics")).send().await.unwrap().status().as_u16(), 401);
});
