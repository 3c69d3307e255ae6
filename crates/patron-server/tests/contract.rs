//! The API contract (issue 14 §1): what schemathesis found in `.ci/contract`, each as a
//! reproduction over a real server on loopback, on SQLite and PostgreSQL.

mod common;

use common::{error_code, json_of, spawn_app, TestApp};
use patron_store::test_both;
use patron_store::testing::TestDb;
use reqwest::Method;
use serde_json::{json, Value};

/// Sends a raw body with a content type and the admin token.
async fn raw(app: &TestApp, method: Method, path: &str, content_type: &str, body: &'static str) -> (u16, Value, String) {
    let r = app.req(method, path).header("content-type", content_type).body(body).send().await.expect("request");
    let ct = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let (s, v) = json_of(r).await;
    (s, v, ct)
}

async fn customer(app: &TestApp, body: Value) -> i64 {
    let (s, c) = app.post("/api/v1/customers", body).await;
    assert_eq!(s, 201, "{c}");
    c["id"].as_i64().expect("id")
}

test_both!(the_document_names_every_status_and_its_public_endpoints, |db: TestDb| async move {
    let app = spawn_app(db).await;
    // The document itself needs no token, like /healthz.
    let (s, doc) = json_of(app.http.get(format!("{}/api/v1/openapi.json", app.base)).send().await.unwrap()).await;
    assert_eq!(s, 200);
    assert_eq!(doc["paths"]["/healthz"]["get"]["security"], json!([]), "schemathesis: /healthz 'accepts requests without authentication'");
    assert_eq!(doc["paths"]["/api/v1/openapi.json"]["get"]["security"], json!([]));
    let mut ids = std::collections::HashSet::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            let has = |s: &str| responses.contains_key(s);
            let link = path.starts_with("/api/v1/public/");
            let public = path == "/healthz" || path == "/api/v1/openapi.json" || link;
            // Signed by the provider's HMAC instead of a token (401 for a bad signature), and
            // reached from outside like the links: rate-limited.
            let signed = path == "/api/v1/inbound/sms";
            assert_eq!(has("401"), !public, "{method} {path}: 401 wherever a token is needed");
            assert_eq!(
                has("429"),
                link || signed,
                "{method} {path}: the endpoints customers reach by a link are rate-limited, nothing else answers 429"
            );
            assert!(!has("500"), "{method} {path}: nothing answers (on purpose) 500");
            if link {
                assert_eq!(op["security"], json!([]), "{method} {path}: reached without a login");
                assert!(has("410"), "{method} {path}: an expired link");
            }
            assert!(has("414") && has("431"), "{method} {path}");
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            if params.iter().any(|p| p["in"] == "path") {
                assert!(has("400") && has("404"), "{method} {path}: a bad or unknown id");
            }
            if params.iter().any(|p| p["in"] == "query") {
                assert!(has("400"), "{method} {path}: a bad query value");
            }
            if op.get("requestBody").is_some() {
                assert!(has("400") && has("413") && has("415"), "{method} {path}: bodies");
            }
            if op["requestBody"]["content"].get("application/json").is_some() {
                assert!(has("422"), "{method} {path}");
            }
            if path != "/api/v1/openapi.json" && path != "/api/v1/segments/fields" {
                assert!(has("503"), "{method} {path}: a busy database");
            }
            assert!(ids.insert(op["operationId"].as_str().unwrap().to_owned()), "operationId {} twice", op["operationId"]);
        }
    }
    // Enums and ranges that lived only in prose.
    let param = |path: &str, name: &str| {
        doc["paths"][path]["get"]["parameters"].as_array().unwrap().iter().find(|p| p["name"] == name).unwrap()["schema"].clone()
    };
    assert_eq!(param("/api/v1/customers", "limit")["maximum"], 1000);
    assert_eq!(param("/api/v1/customers", "limit")["minimum"], 1);
    assert_eq!(param("/api/v1/customers/{id}/timeline", "limit")["maximum"], 500);
    assert_eq!(param("/api/v1/customers", "sort")["enum"], json!(["id", "-id", "name", "-name", "updated_at", "-updated_at"]));
    assert_eq!(param("/api/v1/customers", "kind")["enum"], json!(["person", "organisation"]));
    assert_eq!(param("/api/v1/customers/{id}/scores", "lang")["enum"], json!(["zh", "en"]));
    let run = &doc["components"]["schemas"]["RunRequest"]["properties"];
    assert_eq!((run["horizon_days"]["minimum"].as_i64(), run["horizon_days"]["maximum"].as_i64()), (Some(1), Some(3650)));
    assert_eq!(doc["components"]["schemas"]["NewInteraction"]["properties"]["kind"]["enum"].as_array().unwrap().len(), 8);
    // Orders and interactions: one object or a batch, and 200 as well as 201.
    let orders = &doc["paths"]["/api/v1/orders"]["post"];
    assert!(orders["requestBody"]["content"]["application/json"]["schema"]["oneOf"].is_array());
    assert!(orders["responses"]["200"].is_object() && orders["responses"]["201"].is_object());
});

test_both!(numbers_with_a_zero_fraction_are_integers, |db: TestDb| async move {
    // schemathesis: `{"referrer_id": 70032.0}` and `{"merge_id": 741093580.0}` were refused
    // ("invalid type: floating point, expected i64") and `/customers/124.0` was a 400, though
    // JSON Schema calls 151.0 an integer.
    let app = spawn_app(db).await;
    let a = customer(&app, json!({"name": "甲"})).await;
    let (s, c) = app.post("/api/v1/customers", json!({"name": "乙", "referrer_id": a as f64})).await;
    assert_eq!((s, c["referrer"]["id"].as_i64()), (201, Some(a)), "{c}");
    let b = c["id"].as_i64().unwrap();
    let (s, o) = app
        .post(
            "/api/v1/orders",
            json!({"customer_id": b as f64, "ordered_at": "2026-06-01T10:00:00Z", "total_cents": 1.28e4,
        "lines": [{"unit_price_cents": 12800.0, "quantity": 1.0}]}),
        )
        .await;
    assert_eq!(s, 201, "{o}");
    let (_, order) = app.get(&format!("/api/v1/orders/{}.0", o[0]["id"])).await;
    assert_eq!(order["total_cents"], 12800);
    for path in
        [format!("/api/v1/customers/{b}.0"), format!("/api/v1/customers/{b}/orders?limit=2.0"), "/api/v1/customers?limit=1e1".to_owned()]
    {
        let (s, v) = app.get(&path).await;
        assert_eq!(s, 200, "{path}: {v}");
    }
    let (s, v) = app.post(&format!("/api/v1/customers/{a}/merge"), json!({"merge_id": b as f64})).await;
    assert_eq!((s, v["merged_id"].as_i64()), (200, Some(b)), "{v}");
    // A fraction is no integer.
    let (s, v) = app.get("/api/v1/customers?limit=2.5").await;
    assert_eq!((s, v["error"]["field"].as_str()), (400, Some("limit")));
    let (s, v) = app.get(&format!("/api/v1/customers/{a}.5")).await;
    assert_eq!((s, error_code(&v).as_str()), (400, "invalid_path"));
    let (s, v) = app.post("/api/v1/customers", json!({"name": "丙", "owner_id": 1.5})).await;
    assert_eq!((s, v["error"]["field"].as_str()), (422, Some("owner_id")));
    // Read exactly: the largest double below 1 is below 1.
    let (s, v) = app.post("/api/v1/analytics/runs", json!({"monthly_discount": 0.9999999999999999, "clv_months": 1})).await;
    assert_eq!(s, 201, "schemathesis: 0.9999999999999999 was read as 1.0 and refused: {v}");
});

test_both!(every_422_about_one_field_names_it, |db: TestDb| async move {
    // The probe: an order's `ordered_at` or `total_cents` of the wrong kind answered field null.
    let app = spawn_app(db).await;
    let id = customer(&app, json!({"name": "丁"})).await;
    let order = |extra: Value| {
        let mut o = json!({"customer_id": id, "ordered_at": "2026-06-01T10:00:00Z", "total_cents": 100});
        o.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        o
    };
    for (body, field) in [
        (order(json!({"ordered_at": "yesterday"})), "ordered_at"),
        (order(json!({"ordered_at": 5})), "ordered_at"),
        (order(json!({"total_cents": "a lot"})), "total_cents"),
        (order(json!({"total_cents": -1})), "total_cents"),
        (order(json!({"status": "shipped"})), "status"),
        (order(json!({"lines": [{"unit_price_cents": 100, "quantity": 0}]})), "lines[0].quantity"),
        (order(json!({"lines": [{"quantity": 1}]})), "lines[0].unit_price_cents"),
        (json!({"customer_id": id, "total_cents": 100}), "ordered_at"),
        (json!({"ordered_at": "2026-06-01T10:00:00Z", "total_cents": 100}), "customer_id"),
        (json!([order(json!({})), order(json!({"total_cents": 1.5}))]), "orders[1].total_cents"),
        (json!([order(json!({})), order(json!({"colour": "red"}))]), "orders[1].colour"),
    ] {
        let (s, b) = app.post("/api/v1/orders", body.clone()).await;
        assert_eq!((s, b["error"]["field"].as_str()), (422, Some(field)), "{body} → {b}");
    }
    let (s, b) = app.post("/api/v1/interactions", json!([{"customer_id": id, "kind": "page_view", "occurred_at": "2026-06-01T10:00:00Z"}, {"customer_id": id, "kind": "teleport", "occurred_at": "2026-06-01T10:00:00Z"}])).await;
    assert_eq!((s, b["error"]["field"].as_str()), (422, Some("interactions[1].kind")), "{b}");
    let (s, b) = app.post("/api/v1/customers", json!({"name": "戊", "consents": {"pigeon": true}})).await;
    assert_eq!((s, b["error"]["field"].as_str()), (422, Some("consents")), "{b}");
});

test_both!(values_the_document_refuses_are_refused, |db: TestDb| async move {
    // schemathesis: values outside enums and ranges that existed only in prose were taken
    // (`as_of: ""` ran an analysis) or refused though the schema allowed them (`sort=`).
    let app = spawn_app(db).await;
    let id = customer(&app, json!({"name": "己"})).await;
    for (body, field) in [
        (json!({"name": "x", "kind": "company"}), "kind"),
        (json!({"name": "x", "gender": "m"}), "gender"),
        (json!({"name": " \u{3000}"}), "name"),
        (json!({"name": "x\u{0}y"}), "name"),
        (json!({"name": "x".repeat(201)}), "name"),
        (json!({"name": "x", "mobile": "12345"}), "mobile"),
        (json!({"name": "x", "email": "a@b"}), "email"),
        (json!({"name": "x", "tags": ["t".repeat(51)]}), "tags[0]"),
        (json!({"name": "x", "external_id": "e".repeat(201)}), "external_id"),
    ] {
        let (s, b) = app.post("/api/v1/customers", body.clone()).await;
        assert_eq!((s, b["error"]["field"].as_str()), (422, Some(field)), "{body} → {b}");
    }
    for (body, field) in [
        (json!({"as_of": ""}), "as_of"),
        (json!({"as_of": "2026-6-1"}), "as_of"),
        (json!({"horizon_days": 0}), "horizon_days"),
        (json!({"horizon_days": 3651}), "horizon_days"),
        (json!({"monthly_discount": 1}), "monthly_discount"),
        (json!({"time_unit": "months"}), "time_unit"),
    ] {
        let (s, b) = app.post("/api/v1/analytics/runs", body.clone()).await;
        assert_eq!((s, b["error"]["field"].as_str()), (422, Some(field)), "{body} → {b}");
    }
    // schemathesis on PostgreSQL: a NUL anywhere in the attributes was a 500 (jsonb refuses
    // `\u0000`); now a 422 naming where, on both engines.
    for (attributes, field) in
        [(json!({"a": ["x\u{0}"]}), "attributes.a[0]"), (json!({"a": {"b\u{0}": 1}}), "attributes.a"), (json!({"a\u{0}": 1}), "attributes")]
    {
        let (s, b) = app.patch(&format!("/api/v1/customers/{id}"), json!({ "attributes": attributes })).await;
        assert_eq!((s, b["error"]["field"].as_str()), (422, Some(field)), "{b}");
        let (s, b) = app.post("/api/v1/customers", json!({ "name": "x", "attributes": attributes })).await;
        assert_eq!((s, b["error"]["field"].as_str()), (422, Some(field)), "{b}");
    }
    let nested = json!({"a": {"b": [1, 2.5, "ok", null, {"c": true}]}});
    let (s, c) = app.patch(&format!("/api/v1/customers/{id}"), json!({ "attributes": nested })).await;
    assert_eq!((s, &c["attributes"]), (200, &nested), "{c}");
    let (s, b) = app.post(&format!("/api/v1/customers/{id}/notes"), json!({"body": ""})).await;
    assert_eq!((s, b["error"]["field"].as_str()), (422, Some("body")));
    let (s, b) = app.post("/api/v1/orders", json!([])).await;
    assert_eq!(s, 422, "{b}");
    for (path, field) in [
        ("/api/v1/customers?sort=", "sort"),
        ("/api/v1/customers?kind=company", "kind"),
        ("/api/v1/customers?limit=1001", "limit"),
        ("/api/v1/customers?q=a%00b", "q"),
        ("/api/v1/customers?cursor=zz", "cursor"),
        ("/api/v1/segments?kind=person", "kind"),
        ("/api/v1/segments?counts=yes", "counts"),
        ("/api/v1/segments/builtin:rfm:important_win_back/members?limit=-1", "limit"),
    ] {
        let (s, b) = app.get(path).await;
        assert_eq!((s, error_code(&b).as_str(), b["error"]["field"].as_str()), (400, "invalid_query", Some(field)), "{path} → {b}");
    }
    let (s, b) = app.get(&format!("/api/v1/customers/{id}/scores?lang=fr")).await;
    assert_eq!((s, b["error"]["field"].as_str()), (400, Some("lang")));
    // What the document allows is taken: the largest page, the canonical values.
    let (s, _) = app.get("/api/v1/customers?limit=1000&sort=-updated_at&kind=organisation").await;
    assert_eq!(s, 200);
    let (s, c) = app.post("/api/v1/customers", json!({"name": " 庚 ", "kind": "organisation", "gender": null, "mobile": "+8613800138000", "email": "G@Example.com", "consents": {"sms": true}})).await;
    assert_eq!((s, c["mobile"].as_str(), c["email"].as_str()), (201, Some("13800138000"), Some("g@example.com")), "{c}");
});

test_both!(every_4xx_is_the_json_envelope, |db: TestDb| async move {
    // The probe: 414, 431 and a multipart body without a boundary answered text/plain or nothing.
    let app = spawn_app(db).await;
    let check = |s: u16, v: &Value, ct: &str, status: u16, code: &str| {
        assert_eq!((s, error_code(v).as_str()), (status, code), "{v}");
        assert!(ct.starts_with("application/json"), "{status}: content type {ct}");
    };
    let long = format!("/api/v1/customers?q={}", "x".repeat(9 * 1024));
    let r = app.req(Method::GET, &long).send().await.unwrap();
    let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
    let (s, v) = json_of(r).await;
    check(s, &v, &ct, 414, "uri_too_long");
    let r = app.req(Method::GET, "/api/v1/customers").header("x-padding", "p".repeat(40 * 1024)).send().await.unwrap();
    let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
    let (s, v) = json_of(r).await;
    check(s, &v, &ct, 431, "headers_too_large");
    let (s, v, ct) = raw(&app, Method::POST, "/api/v1/imports", "multipart/form-data", "--x\r\n").await;
    check(s, &v, &ct, 400, "invalid_multipart");
    let (s, v, ct) = raw(&app, Method::POST, "/api/v1/imports", "text/csv", "a,b\n").await;
    check(s, &v, &ct, 415, "unsupported_media_type");
    let (s, v, ct) = raw(&app, Method::POST, "/api/v1/customers", "text/plain", "{\"name\":\"x\"}").await;
    check(s, &v, &ct, 415, "unsupported_media_type");
    let (s, v, ct) = raw(&app, Method::POST, "/api/v1/customers", "application/json", "{\"name\":").await;
    check(s, &v, &ct, 400, "invalid_json");
    // An upload over the limit (20 MiB in tests) is a 413 in the envelope too. The server stops
    // reading at the limit, so the connection is not reused.
    let big = reqwest::multipart::Form::new()
        .text("kind", "customers")
        .part("file", reqwest::multipart::Part::bytes(vec![b'x'; 21 * 1024 * 1024]).file_name("big.csv"));
    let r = app.req(Method::POST, "/api/v1/imports").header("connection", "close").multipart(big).send().await.unwrap();
    let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
    let (s, v) = json_of(r).await;
    check(s, &v, &ct, 413, "too_large");
    // Import form fields: true/false only, no unknown values, no `null` text.
    let form = |k: &str, v: &str| {
        reqwest::multipart::Form::new()
            .text("kind", "customers")
            .text(k.to_owned(), v.to_owned())
            .part("file", reqwest::multipart::Part::bytes(b"customer_id,name\nZ1,z\n".to_vec()).file_name("c.csv"))
    };
    for (k, v) in [("dry_run", "null"), ("skip_invalid", "yes"), ("encoding", "latin-1"), ("map", "=name")] {
        let (s, b) = json_of(app.req(Method::POST, "/api/v1/imports").multipart(form(k, v)).send().await.unwrap()).await;
        assert_eq!((s, b["error"]["field"].as_str()), (400, Some(k)), "{k}={v}: {b}");
    }
    let (s, b) = json_of(app.req(Method::POST, "/api/v1/imports").multipart(form("dry_run", "true")).send().await.unwrap()).await;
    assert_eq!((s, b["committed"].as_bool()), (200, Some(false)), "{b}");
});

test_both!(a_resent_batch_answers_200_and_a_batch_with_one_new_order_201, |db: TestDb| async move {
    let app = spawn_app(db).await;
    let id = customer(&app, json!({"name": "辛"})).await;
    let o = |ext: &str| json!({"external_id": ext, "customer_id": id, "ordered_at": "2026-06-01T10:00:00Z", "total_cents": 100});
    let (s, r) = app.post("/api/v1/orders", json!([o("R1"), o("R2")])).await;
    assert_eq!((s, r[0]["created"].as_bool(), r[1]["created"].as_bool()), (201, Some(true), Some(true)));
    let (s, r) = app.post("/api/v1/orders", json!([o("R1"), o("R2")])).await;
    assert_eq!((s, r[0]["created"].as_bool(), r[1]["created"].as_bool()), (200, Some(false), Some(false)));
    let (s, r) = app.post("/api/v1/orders", json!([o("R2"), o("R3")])).await;
    assert_eq!((s, r[0]["created"].as_bool(), r[1]["created"].as_bool()), (201, Some(false), Some(true)), "one created: 201");
    let ev = json!({"external_id": "E1", "customer_id": id, "kind": "visit", "occurred_at": "2026-06-01T10:00:00Z"});
    let (s, _) = app.post("/api/v1/interactions", ev.clone()).await;
    assert_eq!(s, 201);
    let (s, r) = app.post("/api/v1/interactions", ev).await;
    assert_eq!((s, r[0]["created"].as_bool()), (200, Some(false)));
});

test_both!(healthz_answers_503_when_the_database_does_not, |db: TestDb| async move {
    let app = spawn_app(db).await;
    app.db.store.db.close().await;
    let r = app.http.get(format!("{}/healthz", app.base)).send().await.unwrap();
    let (s, v) = json_of(r).await;
    assert_eq!((s, error_code(&v).as_str()), (503, "unavailable"));
});

test_both!(an_order_whose_lines_add_up_past_the_money_limit_is_refused, |db: TestDb| async move {
    // schemathesis: lines of 10^13 cents × 334,051 stored a 3.3 × 10^18 total, and the next
    // order's summary overflowed (a 500 on SQLite).
    let app = spawn_app(db).await;
    let id = customer(&app, json!({"name": "大户"})).await;
    let order = json!({"customer_id": id, "ordered_at": "2026-06-01T10:00:00Z",
        "lines": [{"unit_price_cents": 10_000_000_000_000_i64, "quantity": 334051}, {"unit_price_cents": 1}]});
    let (s, e) = app.post("/api/v1/orders", order).await;
    assert_eq!((s, e["error"]["field"].as_str()), (422, Some("lines")), "{e}");
    let at_limit =
        json!({"customer_id": id, "ordered_at": "2026-06-01T10:00:00Z", "lines": [{"unit_price_cents": 10_000_000_000_000_i64}]});
    assert_eq!(app.post("/api/v1/orders", at_limit.clone()).await.0, 201);
    assert_eq!(app.post("/api/v1/orders", at_limit).await.0, 201, "a second order at the limit sums without overflow");
    let (s, c) = app.get(&format!("/api/v1/customers/{id}")).await;
    assert_eq!((s, c["stats"]["spend_cents"].as_i64()), (200, Some(20_000_000_000_000)));
});
