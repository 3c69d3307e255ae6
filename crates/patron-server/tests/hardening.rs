//! Issue 14's defects (§2) and platform pieces (§3), each reproduced over a real server on
//! loopback, on SQLite and PostgreSQL (`test_both!`).

mod common;

use common::{error_code, json_of, spawn_app, ui_session, TestApp};
use patron_store::db::query;
use patron_store::test_both;
use patron_store::testing::TestDb;
use patron_store::users::Role;
use reqwest::Method;
use serde_json::{json, Value};

/// GET a UI page with a session; the status and the body.
async fn ui_get(app: &TestApp, cookie: &str, path: &str) -> (u16, String) {
    let r = app.http.get(format!("{}{path}", app.base)).header(reqwest::header::COOKIE, cookie).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

/// Uploads a file to `POST /api/v1/imports`.
async fn upload(app: &TestApp, token: &str, kind: &str, name: &str, bytes: Vec<u8>, extra: &[(&str, &str)]) -> (u16, Value) {
    let mut form = reqwest::multipart::Form::new().text("kind", kind.to_owned());
    for (k, v) in extra {
        form = form.text(k.to_string(), v.to_string());
    }
    let form = form.part("file", reqwest::multipart::Part::bytes(bytes).file_name(name.to_owned()));
    json_of(app.req_as(token, Method::POST, "/api/v1/imports").multipart(form).send().await.unwrap()).await
}

// §2.2: no stored row can make an aggregate fail. Two orders of i64::MAX cents written by SQL
// (past the API's bound) for one customer, and two customers whose scores say i64::MAX of
// trailing spend: the 360, new orders (the summary refresh), an analysis run, the overview, the
// analytics page, segment previews and the service reports all answer, with sums saturated.
test_both!(no_stored_amount_breaks_an_aggregate, |db: TestDb| async move {
    let app = spawn_app(db).await;
    let store = &app.db.store;
    let mut ids = Vec::new();
    for (i, name) in ["甲", "乙"].iter().enumerate() {
        let (s, c) = app.post("/api/v1/customers", json!({ "name": name })).await;
        assert_eq!(s, 201, "{c}");
        let id = c["id"].as_i64().unwrap();
        ids.push(id);
        for n in 0..2 {
            let body = json!({"external_id": format!("BIG{i}{n}"), "customer_id": id, "ordered_at": format!("2026-0{}-01T04:00:00Z", n + 3), "total_cents": 100});
            let (s, b) = app.post("/api/v1/orders", body).await;
            assert_eq!(s, 201, "{b}");
        }
    }
    store.db.reader().execute(query("UPDATE orders SET total_cents = 9223372036854775807")).await.unwrap();
    // Rows written past patron reach the kept summaries by a rebuild (`patron analyze --rebuild`):
    // its aggregation over them saturates.
    assert_eq!(store.rebuild_summaries().await.unwrap(), 2);

    // The 360 shows the customer's summed orders: saturated, not a 500.
    let (s, c) = app.get(&format!("/api/v1/customers/{}", ids[0])).await;
    assert_eq!(s, 200, "{c}");
    assert_eq!(c["stats"]["spend_cents"].as_i64(), Some(i64::MAX), "{c}");

    // A new order on a saturated summary has the aggregation recompute it over those rows.
    let (s, b) = app
        .post(
            "/api/v1/orders",
            json!({"external_id": "N1", "customer_id": ids[0], "ordered_at": "2026-05-01T04:00:00Z", "total_cents": 100}),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let summary = store.customer_summary(ids[0]).await.unwrap().unwrap();
    assert_eq!((summary.order_count, summary.spend_cents), (3, i64::MAX));

    // An analysis over them, and every dashboard over its scores.
    let (s, run) = app.post("/api/v1/analytics/runs", json!({})).await;
    assert_eq!(s, 201, "{run}");
    store
        .db
        .reader()
        .execute(query("UPDATE customer_scores SET trailing_spend_cents = 9223372036854775807, abcd_tier = 'A'"))
        .await
        .unwrap();
    // The whole base's overview is the run's, stored: aggregated again over the stored maxima.
    store.record_overview(run["id"].as_i64().unwrap()).await.unwrap();
    let (s, o) = app.get("/api/v1/analytics/overview").await;
    assert_eq!(s, 200, "{o}");
    let a = o["abcd_tiers"].as_array().unwrap().iter().find(|g| g["key"] == "A").cloned().unwrap_or_default();
    assert_eq!(a["revenue_cents"].as_i64(), Some(i64::MAX), "{o}");
    let cookie = ui_session(&app, "ui@example.com", Role::Admin).await;
    let (s, page) = ui_get(&app, &cookie, "/ui/analytics").await;
    assert_eq!(s, 200, "{page}");
    let (s, page) = ui_get(&app, &cookie, &format!("/ui/customers/{}", ids[0])).await;
    assert_eq!(s, 200, "{page}");
    for path in [
        format!("/api/v1/customers/{}/scores", ids[0]),
        "/api/v1/service/complaint-rate?from=2026-01-01&to=2026-12-31".to_owned(),
        "/api/v1/service/kpis?month=2026-03".to_owned(),
        format!("/api/v1/customers/{}/timeline", ids[0]),
    ] {
        let (s, b) = app.get(&path).await;
        assert_eq!(s, 200, "{path}: {b}");
    }
    // Both summaries hold the saturated sums since the rebuild.
    for (rule, n) in [("spend > 100", 2), ("trailing_spend > 1", 2)] {
        let (s, b) = app.post("/api/v1/segments/preview", json!({ "rule": rule })).await;
        assert_eq!((s, b["count"].as_i64()), (200, Some(n)), "{rule}: {b}");
    }
});

// §2.2: an imported amount is bounded like the API's: 10¹³ cents at most, the row rejected
// naming the column (amount or discount).
test_both!(imported_money_is_bounded_like_the_api, |db: TestDb| async move {
    let app = spawn_app(db).await;
    let (s, _) = app.post("/api/v1/customers", json!({"external_id": "C1", "name": "甲"})).await;
    assert_eq!(s, 201);
    let file = "order_id,customer_id,ordered_at,amount,discount\n\
                O1,C1,2026-01-01,100000000000.00,0\n\
                O2,C1,2026-01-01,100000000000.01,0\n\
                O3,C1,2026-01-01,5,100000000000.01\n\
                O4,C1,2026-01-01,92233720368547758.07,0\n";
    let (s, r) = upload(&app, &app.admin_token, "orders", "o.csv", file.into(), &[]).await;
    assert_eq!((s, error_code(&r).as_str()), (422, "rows_rejected"), "{r}");
    let r = &r["report"];
    let rej: Vec<(i64, &str)> =
        r["rejections"].as_array().unwrap().iter().map(|x| (x["row"].as_i64().unwrap(), x["column"].as_str().unwrap())).collect();
    assert_eq!(rej, vec![(3, "amount"), (4, "discount"), (5, "amount")], "{r}");
    assert!(r["rejections"][0]["reason"].as_str().unwrap().contains("10000000000000"), "{r}");
    let (s, r) = upload(
        &app,
        &app.admin_token,
        "orders",
        "o.csv",
        "order_id,customer_id,ordered_at,amount\nO1,C1,2026-01-01,100000000000.00\n".into(),
        &[],
    )
    .await;
    assert_eq!((s, r["created"].as_i64()), (200, Some(1)), "{r}");
});

// §2.6: an unterminated quote used to swallow the rest of the file into one value (1 row loaded,
// the next lost, 0 rejected). The file is refused as a whole, naming where the quote opened.
test_both!(an_unterminated_quote_refuses_the_file, |db: TestDb| async move {
    let app = spawn_app(db).await;
    let fixture = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../patron/tests/data/unterminated-quote.csv")).unwrap();
    for extra in [&[][..], &[("skip_invalid", "true")][..]] {
        let (s, r) = upload(&app, &app.admin_token, "customers", "q.csv", fixture.clone(), extra).await;
        assert_eq!((s, r["error"]["field"].as_str()), (422, Some("file")), "{r}");
        let msg = r["error"]["message"].as_str().unwrap();
        assert!(msg.contains("row 3 (line 3)") && msg.contains("never closed"), "{msg}");
    }
    let (_, list) = app.get("/api/v1/customers").await;
    assert_eq!(list["items"].as_array().map(Vec::len), Some(0), "nothing written: {list}");
});

// §2.8: dates far outside reason (`+99999-01-01`) were taken and broke the 360. Every date and
// time a client sends is within 1900-01-01..2100-01-01, and an order at most a day ahead of the
// clock (the test clock: 2026-06-30 12:00 UTC); 422 naming the field, or the rejected row's column.
test_both!(dates_outside_reason_are_refused, |db: TestDb| async move {
    let app = spawn_app(db).await;
    let (s, c) = app.post("/api/v1/customers", json!({"external_id": "D1", "name": "甲", "birthday": "1990-05-01"})).await;
    assert_eq!(s, 201, "{c}");
    let id = c["id"].as_i64().unwrap();
    for birthday in ["1899-12-31", "2100-01-02", "+99999-01-01"] {
        let (s, b) = app.post("/api/v1/customers", json!({"name": "乙", "birthday": birthday})).await;
        assert_eq!((s, b["error"]["field"].as_str()), (422, Some("birthday")), "{birthday}: {b}");
        let (s, b) = app.patch(&format!("/api/v1/customers/{id}"), json!({"birthday": birthday})).await;
        assert_eq!((s, b["error"]["field"].as_str()), (422, Some("birthday")), "{birthday}: {b}");
    }
    let order = |n: &str, at: &str| json!({"external_id": n, "customer_id": id, "ordered_at": at, "total_cents": 100});
    for at in ["1899-12-31T23:59:59Z", "2100-01-02T00:00:00Z", "2026-07-01T12:00:01Z", "2030-01-01T00:00:00+08:00"] {
        let (s, b) = app.post("/api/v1/orders", order("F1", at)).await;
        assert_eq!((s, b["error"]["field"].as_str()), (422, Some("ordered_at")), "{at}: {b}");
        let (s, b) = app.post("/api/v1/orders", json!([order("F0", "2026-06-01T00:00:00Z"), order("F1", at)])).await;
        assert_eq!((s, b["error"]["field"].as_str()), (422, Some("orders[1].ordered_at")), "{at}: {b}");
    }
    for at in ["1900-01-01T00:00:00Z", "2026-07-01T11:59:59Z"] {
        let (s, b) = app.post("/api/v1/orders", order(at, at)).await;
        assert_eq!(s, 201, "{at}: {b}");
    }
    let (s, b) = app
        .post(
            "/api/v1/interactions",
            json!({"external_id": "X0", "customer_id": id, "kind": "visit", "occurred_at": "0001-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!((s, b["error"]["field"].as_str()), (422, Some("occurred_at")), "{b}");
    let (s, b) = app.get("/api/v1/tickets?due_before=2200-01-01T00:00:00Z").await;
    assert_eq!((s, b["error"]["field"].as_str()), (400, Some("due_before")), "{b}");
    let (s, b) = app.get("/api/v1/service/pareto?kind=complaint&from=1800-01-01&to=2026-01-01").await;
    assert_eq!((s, b["error"]["field"].as_str()), (400, Some("from")), "{b}");

    // Imports: the row is rejected naming the column.
    let file = "customer_id,name,birthday\nD2,乙,1899-12-31\nD3,丙,2000-02-29\nD4,丁,2100/01/02\n";
    let (s, r) = upload(&app, &app.admin_token, "customers", "c.csv", file.into(), &[]).await;
    assert_eq!((s, error_code(&r).as_str()), (422, "rows_rejected"), "{r}");
    let rej: Vec<(i64, &str)> =
        r["report"]["rejections"].as_array().unwrap().iter().map(|x| (x["row"].as_i64().unwrap(), x["column"].as_str().unwrap())).collect();
    assert_eq!(rej, vec![(2, "birthday"), (4, "birthday")], "{r}");
    assert!(r["report"]["rejections"][0]["reason"].as_str().unwrap().contains("1900-01-01"), "{r}");
    let file = "order_id,customer_id,ordered_at,amount\nI1,D1,2026-07-01 20:00,1\nI2,D1,2026-07-01T12:00:01Z,1\nI3,D1,1899-12-31,1\nI4,D1,+99999-01-01T00:00:00Z,1\nI5,D1,2026-06-30,1\n";
    let (s, r) = upload(&app, &app.admin_token, "orders", "o.csv", file.into(), &[]).await;
    assert_eq!((s, error_code(&r).as_str()), (422, "rows_rejected"), "{r}");
    let rej: Vec<(i64, &str)> =
        r["report"]["rejections"].as_array().unwrap().iter().map(|x| (x["row"].as_i64().unwrap(), x["column"].as_str().unwrap())).collect();
    // 2026-07-01 20:00 in Shanghai is 12:00 UTC, a day ahead to the second: taken.
    assert_eq!(rej, vec![(3, "ordered_at"), (4, "ordered_at"), (5, "ordered_at")], "{r}");
    let file = "interaction_id,customer_id,kind,occurred_at\nX1,D1,visit,2101-01-01\n";
    let (s, r) = upload(&app, &app.admin_token, "interactions", "i.csv", file.into(), &[]).await;
    assert_eq!((s, r["report"]["rejections"][0]["column"].as_str()), (422, Some("occurred_at")), "{r}");
});

// §2.9: 100,000 tags, a 9 MiB attribute and 1 M import columns were all taken. Each has a cap
// (README, docs/import-format.md), checked before the expensive work, with a clear error.
test_both!(sizes_are_capped_with_clear_errors, |db: TestDb| async move {
    let app = spawn_app(db).await;
    let tags = |n: usize| (0..n).map(|i| format!("t{i}")).collect::<Vec<_>>();
    let (s, c) = app.post("/api/v1/customers", json!({"name": "甲", "tags": tags(100)})).await;
    assert_eq!((s, c["tags"].as_array().map(Vec::len)), (201, Some(100)), "{c}");
    let id = c["id"].as_i64().unwrap();
    for n in [101, 100_000] {
        let (s, b) = app.post("/api/v1/customers", json!({"name": "乙", "tags": tags(n)})).await;
        assert_eq!((s, b["error"]["field"].as_str()), (422, Some("tags")), "{n} tags");
        let (s, b) = app.patch(&format!("/api/v1/customers/{id}"), json!({"tags": tags(n)})).await;
        assert_eq!((s, b["error"]["field"].as_str()), (422, Some("tags")), "{n} tags");
    }
    let (s, b) = app.post("/api/v1/customers", json!({"name": "乙", "tags": ["x".repeat(51)]})).await;
    assert_eq!((s, b["error"]["field"].as_str()), (422, Some("tags[0]")), "{b}");

    let attrs = |n: usize, prefix: &str| Value::Object((0..n).map(|i| (format!("{prefix}{i}"), json!("v"))).collect());
    let (s, b) = app.post("/api/v1/customers", json!({"name": "乙", "attributes": attrs(101, "a")})).await;
    assert_eq!((s, b["error"]["field"].as_str()), (422, Some("attributes")), "{b}");
    let (s, b) = app.post("/api/v1/customers", json!({"name": "乙", "attributes": {"x".repeat(65): 1}})).await;
    assert_eq!((s, b["error"]["field"].as_str()), (422, Some("attributes")), "{b}");
    let big = "大".repeat(3 * 1024 * 1024);
    let (s, b) = app.post("/api/v1/customers", json!({"name": "乙", "attributes": {"note": big}})).await;
    assert_eq!((s, b["error"]["field"].as_str()), (422, Some("attributes")), "{b}");
    assert!(b["error"]["message"].as_str().unwrap().contains("64 KiB"), "{b}");
    // A patch adds to the stored attributes: 60 + 60 is over 100, 60 + 40 is not.
    let (s, _) = app.patch(&format!("/api/v1/customers/{id}"), json!({"attributes": attrs(60, "a")})).await;
    assert_eq!(s, 200);
    let (s, b) = app.patch(&format!("/api/v1/customers/{id}"), json!({"attributes": attrs(60, "b")})).await;
    assert_eq!((s, b["error"]["field"].as_str()), (422, Some("attributes")), "{b}");
    let (s, b) = app.patch(&format!("/api/v1/customers/{id}"), json!({"attributes": attrs(40, "b")})).await;
    assert_eq!(s, 200, "{b}");

    // Imports: a million columns fail at the 257th, without reading the rest of the header.
    let t = app.admin_token.clone();
    let mut wide = String::from("customer_id,name");
    for i in 0..1_000_000 {
        wide.push_str(&format!(",attr.c{i}"));
    }
    wide.push_str("\nW1,x\n");
    let started = std::time::Instant::now();
    let (s, r) = upload(&app, &t, "customers", "wide.csv", wide.into_bytes(), &[]).await;
    assert_eq!((s, r["error"]["field"].as_str()), (422, Some("file")), "{r}");
    assert!(r["error"]["message"].as_str().unwrap().contains("more than 256 columns"), "{r}");
    assert!(started.elapsed() < std::time::Duration::from_secs(20), "took {:?}", started.elapsed());
    let long = format!("customer_id,name,city\nL1,x,上海\nL2,{},杭州\n", "y".repeat(64 * 1024 + 1));
    let (s, r) = upload(&app, &t, "customers", "long.csv", long.into_bytes(), &[]).await;
    assert_eq!((s, r["error"]["field"].as_str()), (422, Some("file")), "{r}");
    let msg = r["error"]["message"].as_str().unwrap();
    assert!(msg.contains("row 3 (line 3), column \"name\"") && msg.contains("64 KiB"), "{msg}");
    let exactly = format!("customer_id,name\nL1,{}\n", "y".repeat(64 * 1024));
    let (s, r) = upload(&app, &t, "customers", "ok.csv", exactly.into_bytes(), &[("dry_run", "true")]).await;
    assert_eq!(s, 200, "64 KiB exactly is taken: {r}");
    let many_keys: serde_json::Map<String, Value> = (0..300).map(|i| (format!("attr.k{i}"), json!("v"))).collect();
    let (s, r) = upload(&app, &t, "customers", "k.jsonl", format!("{}\n", Value::Object(many_keys)).into_bytes(), &[]).await;
    assert_eq!((s, r["error"]["field"].as_str()), (422, Some("file")), "{r}");
    assert!(r["error"]["message"].as_str().unwrap().contains("line 1: more than 256 keys"), "{r}");
    // Rows: too many tags, a tag too long, attributes over 64 KiB: rejected naming the column.
    let file = format!(
        "customer_id,name,tags,attr.a,attr.b\nR1,x,{},,\nR2,x,{},,\nR3,x,,{},{}\nR4,x,a;b,1,2\n",
        tags(101).join(";"),
        "z".repeat(51),
        "q".repeat(40_000),
        "r".repeat(30_000)
    );
    let (s, r) = upload(&app, &t, "customers", "r.csv", file.into_bytes(), &[]).await;
    assert_eq!((s, error_code(&r).as_str()), (422, "rows_rejected"), "{r}");
    let rej: Vec<(i64, &str)> =
        r["report"]["rejections"].as_array().unwrap().iter().map(|x| (x["row"].as_i64().unwrap(), x["column"].as_str().unwrap())).collect();
    assert_eq!(rej, vec![(2, "tags"), (3, "tags"), (4, "attr.a")], "{r}");
});

// §2.11: the report said "updated" for rows that changed nothing; it says `unchanged`, in the
// API's JSON (and its schema), and on the UI's import page.
test_both!(imports_report_unchanged_rows, |db: TestDb| async move {
    let app = spawn_app(db).await;
    let t = app.admin_token.clone();
    let file = "customer_id,name,city\nV1,甲,上海\nV2,乙,北京\n";
    let (s, r) = upload(&app, &t, "customers", "v.csv", file.into(), &[]).await;
    assert_eq!((s, r["created"].as_u64()), (200, Some(2)), "{r}");
    let (s, r) =
        upload(&app, &t, "customers", "v.csv", file.replace("北京", "南京").into_bytes(), &[("map", "customer_id=external_id")]).await;
    assert_eq!((s, r["created"].as_u64(), r["updated"].as_u64(), r["unchanged"].as_u64()), (200, Some(0), Some(1), Some(1)), "{r}");
    let (_, doc) = app.get("/api/v1/openapi.json").await;
    let schema = &doc["components"]["schemas"]["ImportReport"];
    assert!(schema["properties"]["unchanged"].is_object(), "{schema}");
    assert!(schema["required"].as_array().unwrap().contains(&json!("unchanged")), "{schema}");
    // The UI's import page shows the count.
    let cookie = ui_session(&app, "ui@example.com", Role::Manager).await;
    let (s, page) = ui_get(&app, &cookie, "/ui/import").await;
    assert_eq!(s, 200);
    let csrf = page.split("name=\"csrf\" value=\"").nth(1).and_then(|r| r.split('"').next()).unwrap_or_default().to_owned();
    let form = reqwest::multipart::Form::new()
        .text("csrf", csrf)
        .text("kind", "customers")
        .part("file", reqwest::multipart::Part::bytes(file.as_bytes().to_vec()).file_name("v.csv"));
    let r = app.http.post(format!("{}/ui/import", app.base)).header(reqwest::header::COOKIE, &cookie).multipart(form).send().await.unwrap();
    let html = r.text().await.unwrap();
    assert!(html.contains("<b id=\"r-unchanged\">1</b>"), "{html}");
});

// §3: API tokens with an expiry and a read-only scope.
test_both!(read_only_and_expiring_tokens, |db: TestDb| async move {
    use patron_store::users::TokenOptions;
    let app = spawn_app(db).await;
    let store = &app.db.store;
    let (_, c) = app.post("/api/v1/customers", json!({"name": "甲"})).await;
    let id = c["id"].as_i64().unwrap();
    let (info, ro) = store
        .create_token_with("reader", Role::Admin, None, TokenOptions { expires_at: None, read_only: true, ..Default::default() })
        .await
        .unwrap();
    assert_eq!((info.scope.as_str(), info.expires_at), ("read_only", None));
    let (s, b) = json_of(app.req_as(&ro, Method::GET, &format!("/api/v1/customers/{id}")).send().await.unwrap()).await;
    assert_eq!(s, 200, "{b}");
    let writes = [
        (Method::POST, "/api/v1/customers".to_owned(), json!({"name": "乙"})),
        (Method::PATCH, format!("/api/v1/customers/{id}"), json!({"city": "上海"})),
        (Method::DELETE, format!("/api/v1/customers/{id}"), json!(null)),
        (Method::POST, "/api/v1/segments/preview".to_owned(), json!({"rule": "city = \"上海\""})),
    ];
    for (method, path, body) in writes {
        let (s, b) = json_of(app.req_as(&ro, method.clone(), &path).json(&body).send().await.unwrap()).await;
        assert_eq!((s, error_code(&b).as_str()), (403, "forbidden"), "{method} {path}: {b}");
        assert!(b["error"]["message"].as_str().unwrap().contains("read-only"), "{b}");
    }
    let (_, c) = app.get(&format!("/api/v1/customers/{id}")).await;
    assert!(c["city"].is_null() && c["deleted_at"].is_null(), "nothing was written: {c}");
    let (_, doc) = app.get("/api/v1/openapi.json").await;
    assert!(doc["paths"]["/api/v1/customers"]["post"]["responses"]["403"].is_object(), "every write documents 403");

    // An expiring token works until its time (the store's clock), then is refused like a bad one.
    let now = store.now();
    let err = store
        .create_token_with("past", Role::Admin, None, TokenOptions { expires_at: Some(now), read_only: false, ..Default::default() })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("future"), "{err}");
    let (info, rw) = store
        .create_token_with(
            "day",
            Role::Manager,
            None,
            TokenOptions { expires_at: Some(now + chrono::Duration::days(1)), read_only: false, ..Default::default() },
        )
        .await
        .unwrap();
    assert_eq!(info.scope, "read_write");
    let (s, _) =
        json_of(app.req_as(&rw, Method::PATCH, &format!("/api/v1/customers/{id}")).json(&json!({"city": "杭州"})).send().await.unwrap())
            .await;
    assert_eq!(s, 200);
    app.db.clock.set(now + chrono::Duration::days(1) + chrono::Duration::seconds(1));
    let (s, b) = json_of(app.req_as(&rw, Method::GET, "/api/v1/customers").send().await.unwrap()).await;
    assert_eq!((s, error_code(&b).as_str()), (401, "unauthorized"), "{b}");
    let listed = store.tokens().await.unwrap();
    assert!(listed.iter().any(|t| t.name == "day" && t.expires_at.is_some()), "listed with its expiry");
    // Revoked tokens stop at once (review item 8: tokens were untested).
    store.revoke_token(info.id).await.unwrap();
    assert!(store.token_actor(&rw).await.unwrap().is_none());
    assert!(matches!(store.revoke_token(info.id).await, Err(patron_store::StoreError::NotFound(_))));
});

// §3: the audit viewer: admins filter the log by actor, customer, action and time, page through
// it and export it as CSV; in the API and the web UI.
test_both!(audit_viewer_filters_pages_and_exports, |db: TestDb| async move {
    let app = spawn_app(db).await;
    let store = &app.db.store;
    let manager = store.create_user("m@example.com", "经理", Role::Manager, None).await.unwrap();
    let (mt, mtoken) = store.create_token("m", Role::Manager, Some(manager.id)).await.unwrap();
    let mut ids = Vec::new();
    for name in ["甲", "乙", "丙"] {
        let (_, c) = app.post("/api/v1/customers", json!({ "name": name })).await;
        ids.push(c["id"].as_i64().unwrap());
    }
    // The manager reads the first customer's 360 three times (each read is audited).
    for _ in 0..3 {
        let (s, _) = json_of(app.req_as(&mtoken, Method::GET, &format!("/api/v1/customers/{}", ids[0])).send().await.unwrap()).await;
        assert_eq!(s, 200);
    }
    let (s, b) = json_of(app.req_as(&mtoken, Method::GET, "/api/v1/audit").send().await.unwrap()).await;
    assert_eq!((s, error_code(&b).as_str()), (403, "forbidden"), "admins only");

    let actor = format!("token:{}", mt.id);
    let (s, page) = app.get(&format!("/api/v1/audit?actor={actor}&customer_id={}&action=read", ids[0])).await;
    assert_eq!(s, 200, "{page}");
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 3, "{page}");
    assert!(items.iter().all(|e| e["actor"] == actor.as_str() && e["customer_id"] == ids[0] && e["action"] == "read"), "{page}");
    assert!(items.windows(2).all(|w| w[0]["id"].as_i64() > w[1]["id"].as_i64()), "newest first");
    // By customer alone: the admin's create and the manager's reads.
    let (_, page) = app.get(&format!("/api/v1/audit?customer_id={}", ids[1])).await;
    assert!(page["items"].as_array().unwrap().iter().all(|e| e["customer_id"] == ids[1]), "{page}");
    assert!(!page["items"].as_array().unwrap().is_empty());
    // A user's entries by actor_id (user:<id>): a session login writes some.
    store.create_user("ui@example.com", "界面", Role::Admin, Some("a long enough password")).await.unwrap();
    let browser = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let _ = browser
        .post(format!("{}/ui/login", app.base))
        .form(&[("email", "ui@example.com"), ("password", "wrong password!")])
        .send()
        .await
        .unwrap();
    let (s, page) = app.get("/api/v1/audit?action=login_failed").await;
    assert_eq!(s, 200, "{page}");
    let failed = page["items"].as_array().unwrap().len();
    assert!(failed >= 1, "{page}");

    // Pages of two walk every entry once, in order.
    let (_, all) = app.get("/api/v1/audit?limit=1000").await;
    let all_ids: Vec<i64> = all["items"].as_array().unwrap().iter().map(|e| e["id"].as_i64().unwrap()).collect();
    let mut walked = Vec::new();
    let mut cursor = String::new();
    loop {
        let (s, page) = app.get(&format!("/api/v1/audit?limit=2{cursor}")).await;
        assert_eq!(s, 200, "{page}");
        walked.extend(page["items"].as_array().unwrap().iter().map(|e| e["id"].as_i64().unwrap()));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(walked, all_ids);
    // Time range: nothing before the test clock's now, everything from it on.
    let now = store.now();
    let enc = |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (_, page) = app.get(&format!("/api/v1/audit?to={}", enc(now - chrono::Duration::hours(1)))).await;
    assert_eq!(page["items"].as_array().map(Vec::len), Some(0), "{page}");
    let (_, page) = app.get(&format!("/api/v1/audit?from={}&to={}&limit=1000", enc(now), enc(now + chrono::Duration::hours(1)))).await;
    assert_eq!(page["items"].as_array().map(Vec::len), Some(all_ids.len()), "{page}");
    // Bad filters: 400 naming the parameter.
    for (q, field) in [
        ("actor=user:1&actor_id=2".to_owned(), "actor_id"),
        (format!("from={}&to={}", enc(now), enc(now)), "to"),
        ("cursor=zz".to_owned(), "cursor"),
        ("actor=somebody".to_owned(), "actor"),
        ("limit=0".to_owned(), "limit"),
    ] {
        let (s, b) = app.get(&format!("/api/v1/audit?{q}")).await;
        assert_eq!((s, b["error"]["field"].as_str()), (400, Some(field)), "{q}: {b}");
    }

    // CSV export of a filter: the header and one line per entry; the export is audited.
    let r = app.req(Method::GET, &format!("/api/v1/audit/export?actor={actor}")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.headers()[reqwest::header::CONTENT_TYPE].to_str().unwrap().starts_with("text/csv"));
    let text = r.text().await.unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("id,at,actor,action,entity,entity_id,customer_id,detail"));
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 3, "{text}");
    assert!(rows.iter().all(|l| l.contains(&format!(",{actor},read,customer,{},{},", ids[0], ids[0]))), "{text}");
    let (_, page) = app.get("/api/v1/audit?action=export").await;
    assert_eq!(page["items"][0]["entity"], "audit_log", "{page}");
    assert_eq!(page["items"][0]["detail"], "rows=3", "{page}");
    let (_, doc) = app.get("/api/v1/openapi.json").await;
    assert!(doc["paths"]["/api/v1/audit"]["get"].is_object() && doc["paths"]["/api/v1/audit/export"]["get"].is_object());

    // The web UI: admins only; the filter form, the table and the export link.
    let cookie = ui_session(&app, "audit-admin@example.com", Role::Admin).await;
    let (s, html) = ui_get(&app, &cookie, &format!("/ui/audit?actor={actor}&action=read&customer_id={}", ids[0])).await;
    assert_eq!(s, 200, "{html}");
    assert_eq!(html.matches("<td>read</td>").count(), 3, "{html}");
    assert!(html.contains("id=\"audit-export\" href=\"/ui/audit/export?actor="), "{html}");
    let (s, csv) = ui_get(&app, &cookie, &format!("/ui/audit/export?actor={actor}")).await;
    assert_eq!((s, csv.lines().count()), (200, 4), "{csv}");
    let (s, _) = ui_get(&app, &cookie, "/ui/audit?customer_id=abc").await;
    assert_eq!(s, 400);
    let cookie = ui_session(&app, "audit-manager@example.com", Role::Manager).await;
    let (s, _) = ui_get(&app, &cookie, "/ui/audit").await;
    assert_eq!(s, 403);
});
