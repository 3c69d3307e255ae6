//! The REST API over a real server on loopback, on SQLite and PostgreSQL.

mod common;

use common::{error_code, json_of, spawn_app};
use patron_store::test_both;
use patron_store::testing::TestDb;
use patron_store::users::Role;
use reqwest::Method;
use serde_json::{json, Value};

test_both!(health_openapi_and_auth, |db: TestDb| async move {
    let app = spawn_app(db).await;
    let (s, body) = json_of(app.http.get(format!("{}/healthz", app.base)).send().await.unwrap()).await;
    assert_eq!(s, 200);
    assert_eq!(body["status"], "ok");
    let (s, doc) = app.get("/api/v1/openapi.json").await;
    assert_eq!(s, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for p in [
        "/api/v1/customers",
        "/api/v1/customers/{id}",
        "/api/v1/customers/{id}/timeline",
        "/api/v1/customers/{id}/duplicates",
        "/api/v1/customers/{id}/merge",
        "/api/v1/customers/{id}/personal-data",
        "/api/v1/customers/{id}/erase",
        "/api/v1/orders",
        "/api/v1/imports",
    ] {
        assert!(doc["paths"][p].is_object(), "OpenAPI lacks {p}");
    }
    // No token, a malformed header, an unknown token: 401 with the envelope and a challenge.
    let r = app.http.get(format!("{}/api/v1/customers", app.base)).send().await.unwrap();
    assert_eq!(r.headers().get("www-authenticate").map(|v| v.to_str().unwrap()), Some("Bearer"));
    let (s, body) = json_of(r).await;
    assert_eq!((s, error_code(&body).as_str()), (401, "unauthorized"));
    let (s, _) =
        json_of(app.http.get(format!("{}/api/v1/customers", app.base)).header("authorization", "Basic abc").send().await.unwrap()).await;
    assert_eq!(s, 401);
    let (s, _) = json_of(app.req_as("pat_nope", Method::GET, "/api/v1/customers").send().await.unwrap()).await;
    assert_eq!(s, 401);
    // Unknown routes and methods answer in the envelope too.
    let (s, body) = app.get("/api/v1/nothing-here").await;
    assert_eq!((s, error_code(&body).as_str()), (404, "not_found"));
    let (s, body) = json_of(app.req(Method::PUT, "/api/v1/customers").send().await.unwrap()).await;
    assert_eq!((s, error_code(&body).as_str()), (405, "method_not_allowed"));
});

test_both!(customer_360_crud_history_and_audit, |db: TestDb| async move {
    let app = spawn_app(db).await;
    let (s, c) = app
        .post("/api/v1/customers", json!({"external_id":"A1","name":"王伟","mobile":"13800138000","email":"wang@example.com","city":"上海","tags":["火锅"],"consents":{"sms":true}}))
        .await;
    assert_eq!(s, 201, "{c}");
    let id = c["id"].as_i64().unwrap();
    let (s, _) = app.post("/api/v1/orders", json!({"external_id":"O1","customer_id":id,"ordered_at":"2026-06-01T10:00:00Z","total_cents":12800,"lines":[{"product":"锅底","category":"火锅","unit_price_cents":12800}]})).await;
    assert_eq!(s, 201);
    let (s, v) = app.get(&format!("/api/v1/customers/{id}")).await;
    assert_eq!(s, 200);
    assert_eq!(v["customer"]["mobile"], "13800138000", "the 360 shows full values");
    assert_eq!(v["stats"]["order_count"], 1);
    assert_eq!(v["stats"]["spend_cents"], 12800);
    assert_eq!(v["recent_orders"][0]["lines"][0]["category"], "火锅");
    // Patch: history records old → new.
    let (s, v) = app.patch(&format!("/api/v1/customers/{id}"), json!({"city":"杭州","mobile":null})).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["city"], "杭州");
    let (_, changes) = app.get(&format!("/api/v1/customers/{id}/changes")).await;
    let city = changes.as_array().unwrap().iter().find(|c| c["field"] == "city").unwrap();
    assert_eq!((city["old_value"].as_str(), city["new_value"].as_str()), (Some("上海"), Some("杭州")));
    assert!(city["actor"].as_str().unwrap().starts_with("token:"));
    // Timeline merges the order and the changes.
    let (_, tl) = app.get(&format!("/api/v1/customers/{id}/timeline?limit=100")).await;
    let kinds: Vec<&str> = tl["items"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"order") && kinds.contains(&"change"), "{kinds:?}");
    // Lists mask PII for non-admin roles.
    let (_, manager) = app.db.store.create_token("m", Role::Manager, None).await.unwrap();
    let (_, list) = json_of(app.req_as(&manager, Method::GET, "/api/v1/customers?q=A1").send().await.unwrap()).await;
    assert_eq!(list["items"][0]["email"], "w***@example.com");
    let (_, list) = app.get("/api/v1/customers?q=A1").await;
    assert_eq!(list["items"][0]["email"], "wang@example.com");
    // Full-profile reads are audited.
    let reads = app.db.store.audit_entries(50, Some("customer"), Some(&id.to_string())).await.unwrap();
    assert!(reads.iter().any(|e| e.action == "read"));
    // Delete (soft): 204, then 404.
    let (s, _) = json_of(app.req(Method::DELETE, &format!("/api/v1/customers/{id}")).send().await.unwrap()).await;
    assert_eq!(s, 204);
    let (s, body) = app.get(&format!("/api/v1/customers/{id}")).await;
    assert_eq!((s, error_code(&body).as_str()), (404, "not_found"));
});

test_both!(list_filters_and_cursor_pages, |db: TestDb| async move {
    let app = spawn_app(db).await;
    for i in 0..7 {
        let city = if i % 2 == 0 { "上海" } else { "北京" };
        let (s, _) = app.post("/api/v1/customers", json!({"external_id": format!("L{i}"), "name": format!("客户{i}"), "city": city, "tags": if i < 3 { vec!["vip"] } else { vec![] }})).await;
        assert_eq!(s, 201);
    }
    let (_, p) = app.get("/api/v1/customers?city=%E4%B8%8A%E6%B5%B7").await;
    assert_eq!(p["items"].as_array().unwrap().len(), 4);
    let (_, p) = app.get("/api/v1/customers?tag=vip").await;
    assert_eq!(p["items"].as_array().unwrap().len(), 3);
    let mut seen = Vec::new();
    let mut path = "/api/v1/customers?limit=3&sort=-name".to_string();
    loop {
        let (s, p) = app.get(&path).await;
        assert_eq!(s, 200, "{p}");
        seen.extend(p["items"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap().to_owned()));
        match p["next_cursor"].as_str() {
            Some(c) => path = format!("/api/v1/customers?limit=3&sort=-name&cursor={c}"),
            None => break,
        }
    }
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.reverse();
    assert_eq!(seen, sorted);
    assert_eq!(seen.len(), 7);
});

test_both!(bad_requests_get_clear_4xx_never_5xx, |db: TestDb| async move {
    let app = spawn_app(db).await;
    let (_, c) = app.post("/api/v1/customers", json!({"external_id":"B1","name":"甲"})).await;
    let id = c["id"].as_i64().unwrap();
    let raw =
        |method: Method, path: &str, body: &'static str| app.req(method, path).header("content-type", "application/json").body(body).send();
    // Malformed JSON, wrong types, unknown fields, missing fields.
    let (s, b) = json_of(raw(Method::POST, "/api/v1/customers", "{\"name\":").await.unwrap()).await;
    assert_eq!((s, error_code(&b).as_str()), (400, "invalid_json"));
    let (s, b) = json_of(raw(Method::POST, "/api/v1/customers", "{\"name\": 5}").await.unwrap()).await;
    assert_eq!((s, error_code(&b).as_str()), (422, "invalid_json"), "{b}");
    let (s, _) = json_of(raw(Method::POST, "/api/v1/customers", "{\"name\":\"x\",\"colour\":\"red\"}").await.unwrap()).await;
    assert_eq!(s, 422);
    let (s, _) = json_of(raw(Method::POST, "/api/v1/customers", "{}").await.unwrap()).await;
    assert_eq!(s, 422);
    let (s, b) = json_of(app.req(Method::POST, "/api/v1/customers").body("{\"name\":\"x\"}").send().await.unwrap()).await;
    assert_eq!((s, error_code(&b).as_str()), (415, "unsupported_media_type"));
    // Invalid values name the field.
    let (s, b) = app.post("/api/v1/customers", json!({"name":"x","email":"nope"})).await;
    assert_eq!((s, b["error"]["field"].as_str()), (422, Some("email")));
    let (s, b) = app.post("/api/v1/customers", json!({"name":"x","mobile":"12345"})).await;
    assert_eq!((s, b["error"]["field"].as_str()), (422, Some("mobile")));
    let (s, b) = app.post("/api/v1/customers", json!({"name":"   "})).await;
    assert_eq!((s, b["error"]["field"].as_str()), (422, Some("name")));
    let (s, b) = app.post("/api/v1/customers", json!({"name":"x","consents":{"pigeon":true}})).await;
    assert_eq!((s, b["error"]["field"].as_str()), (422, Some("consents")));
    // Conflicts and unknown references.
    let (s, b) = app.post("/api/v1/customers", json!({"external_id":"B1","name":"乙"})).await;
    assert_eq!((s, error_code(&b).as_str()), (409, "conflict"));
    let (s, b) = app.post("/api/v1/customers", json!({"name":"乙","owner_id":99999})).await;
    assert_eq!((s, error_code(&b).as_str()), (422, "unknown_reference"));
    // Unknown ids, bad path and query values, bad cursors.
    let (s, _) = app.get("/api/v1/customers/999999").await;
    assert_eq!(s, 404);
    let (s, b) = app.get("/api/v1/customers/abc").await;
    assert_eq!((s, error_code(&b).as_str()), (400, "invalid_path"));
    let (s, _) = app.get("/api/v1/customers/99999999999999999999999").await;
    assert_eq!(s, 400);
    let (s, b) = app.get("/api/v1/customers?cursor=zzz").await;
    assert_eq!((s, b["error"]["field"].as_str()), (400, Some("cursor")));
    let (s, _) = app.get(&format!("/api/v1/customers/{id}/timeline?cursor=7b7d")).await;
    assert_eq!(s, 400);
    let (s, b) = app.get("/api/v1/customers?limit=0").await;
    assert_eq!((s, b["error"]["field"].as_str()), (400, Some("limit")));
    let (s, b) = app.get("/api/v1/customers?limit=many").await;
    assert_eq!((s, error_code(&b).as_str(), b["error"]["field"].as_str()), (400, "invalid_query", Some("limit")));
    let (s, _) = app.get("/api/v1/customers?sort=shoe_size").await;
    assert_eq!(s, 400);
    let (s, _) = app.get("/api/v1/customers?kind=robot").await;
    assert_eq!(s, 400);
    let (s, b) = app.get("/api/v1/customers?frobnicate=1").await;
    assert_eq!((s, b["error"]["field"].as_str()), (400, Some("frobnicate")));
    // Paths outside the API: a page for people, the envelope under /api/.
    let (s, b) = app.get("/api/v2/customers").await;
    assert_eq!((s, error_code(&b).as_str()), (404, "not_found"));
    let r = app.req(reqwest::Method::GET, "/no/such/page").send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.headers()[reqwest::header::CONTENT_TYPE].to_str().unwrap().starts_with("text/html"));
    assert!(r.text().await.unwrap().contains("没有找到"));
    let (s, _) = app.patch("/api/v1/customers/999999", json!({"city":"x"})).await;
    assert_eq!(s, 404);
    let (s, _) = app.post("/api/v1/customers/999999/notes", json!({"body":"hi"})).await;
    assert_eq!(s, 404);
    let (s, _) = app.post(&format!("/api/v1/customers/{id}/notes"), json!({"body":""})).await;
    assert_eq!(s, 422);
    let (s, b) = app.post(&format!("/api/v1/customers/{id}/contacts"), json!({"name":"陈"})).await;
    assert_eq!((s, error_code(&b).as_str()), (422, "invalid"), "contacts belong to organisations");
    // A huge body is refused with 413 before it is parsed. The server may answer and close the
    // connection before all of the body is written, and an HTTP client then fails on the write
    // (broken pipe) without reading the answer. So this request goes over a bare socket that
    // writes the body on one task while it reads the answer on another.
    let body = format!("{{\"name\":\"{}\"}}", "x".repeat(11 * 1024 * 1024));
    let head = format!(
        "POST /api/v1/customers HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        app.addr,
        app.admin_token,
        body.len()
    );
    let answer = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let sock = tokio::net::TcpStream::connect(app.addr).await.unwrap();
        let (mut rd, mut wr) = sock.into_split();
        let writer = tokio::spawn(async move {
            // A write into a connection the server has closed fails; its answer is read anyway.
            if wr.write_all(head.as_bytes()).await.is_ok() {
                let _ = wr.write_all(body.as_bytes()).await;
            }
            wr
        });
        let mut out = Vec::new();
        // The server closes the connection after its answer; a reset then is the end too.
        let _ = rd.read_to_end(&mut out).await;
        drop(writer.await);
        String::from_utf8_lossy(&out).into_owned()
    })
    .await
    .expect("an answer to the oversized request");
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("\"too_large\""), "{answer}");
    // Orders: bad ones name the item and field; batches are all or nothing.
    let (s, b) = app
        .post(
            "/api/v1/orders",
            json!([
                {"external_id":"O1","customer_id":id,"ordered_at":"2026-06-01T10:00:00Z","total_cents":100},
                {"external_id":"O2","customer_id":424242,"ordered_at":"2026-06-01T10:00:00Z","total_cents":100}
            ]),
        )
        .await;
    assert_eq!((s, b["error"]["field"].as_str()), (422, Some("orders[1].customer_id")), "{b}");
    let (s, b) =
        app.post("/api/v1/orders", json!([{"external_id":"O1","customer_id":id,"ordered_at":"yesterday","total_cents":100}])).await;
    assert_eq!((s, b["error"]["field"].as_str()), (422, Some("ordered_at")), "a batch of one names the field as one order does: {b}");
    let (s, _) = app.post("/api/v1/orders", json!({"customer_id":id,"ordered_at":"2026-06-01T10:00:00Z"})).await;
    assert_eq!(s, 422, "an order needs a total or lines");
    let (s, _) = app.post("/api/v1/orders", json!({"customer_id":id,"ordered_at":"2026-06-01T10:00:00Z","total_cents":-5})).await;
    assert_eq!(s, 422);
    let (s, _) = app.post("/api/v1/orders", json!([])).await;
    assert_eq!(s, 422);
    let (_, orders) = app.get(&format!("/api/v1/customers/{id}/orders")).await;
    assert_eq!(orders["items"].as_array().unwrap().len(), 0, "nothing written by failed batches");
    let (s, _) = app.post("/api/v1/interactions", json!({"customer_id":id,"kind":"teleport","occurred_at":"2026-06-01T10:00:00Z"})).await;
    assert_eq!(s, 422);
});

test_both!(orders_and_interactions_are_idempotent, |db: TestDb| async move {
    let app = spawn_app(db).await;
    let (_, c) = app.post("/api/v1/customers", json!({"external_id":"C9","name":"丙"})).await;
    let id = c["id"].as_i64().unwrap();
    let order = json!({"external_id":"X1","customer_external_id":"C9","ordered_at":"2026-06-01T10:00:00Z","discount_cents":200,
        "lines":[{"product":"奶茶","category":"茶饮","quantity":2,"unit_price_cents":1800,"promo":true}]});
    let (s, r1) = app.post("/api/v1/orders", order.clone()).await;
    assert_eq!(s, 201);
    assert_eq!(r1[0]["created"], true);
    // Sent again: nothing new, so 200 (not 201) and `created: false`.
    let (s, r2) = app.post("/api/v1/orders", order).await;
    assert_eq!((s, r2[0]["created"].as_bool(), &r2[0]["id"]), (200, Some(false), &r1[0]["id"]));
    let (_, o) = app.get(&format!("/api/v1/orders/{}", r1[0]["id"])).await;
    assert_eq!(o["total_cents"], 3400);
    let ev = json!([{"external_id":"E1","customer_id":id,"kind":"page_view","occurred_at":"2026-06-02T10:00:00Z","payload":"/menu"},
                    {"external_id":"E2","customer_id":id,"kind":"sms_open","occurred_at":"2026-06-03T10:00:00Z"}]);
    let (s, r) = app.post("/api/v1/interactions", ev.clone()).await;
    assert_eq!((s, r.as_array().unwrap().len()), (201, 2));
    let (s, r) = app.post("/api/v1/interactions", ev).await;
    assert_eq!((s, r[0]["created"].as_bool(), r[1]["created"].as_bool()), (200, Some(false), Some(false)));
    let (_, list) = app.get(&format!("/api/v1/customers/{id}/interactions")).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    assert_eq!(list["items"][0]["kind"], "sms_open", "newest first");
});

async fn upload(app: &common::TestApp, token: &str, kind: &str, name: &str, bytes: Vec<u8>, extra: &[(&str, &str)]) -> (u16, Value) {
    let mut form = reqwest::multipart::Form::new().text("kind", kind.to_owned());
    for (k, v) in extra {
        form = form.text(k.to_string(), v.to_string());
    }
    form = form.part("file", reqwest::multipart::Part::bytes(bytes).file_name(name.to_owned()));
    json_of(app.req_as(token, Method::POST, "/api/v1/imports").multipart(form).send().await.unwrap()).await
}

test_both!(imports_over_http, |db: TestDb| async move {
    let app = spawn_app(db).await;
    let t = app.admin_token.clone();
    let (s, r) = upload(&app, &t, "customers", "c.csv", "客户编号,姓名,手机\nI1,赵一,13700000001\nI2,钱二,13700000002\n".into(), &[]).await;
    assert_eq!((s, r["created"].as_u64()), (200, Some(2)), "{r}");
    let (gb, _, _) = encoding_rs::GB18030.encode("客户编号,姓名\nI3,孙三\n");
    let (s, r) = upload(&app, &t, "customers", "gb.csv", gb.into_owned(), &[]).await;
    assert_eq!((s, r["encoding"].as_str()), (200, Some("gb18030")), "{r}");
    // One byte that is not UTF-8 rejects its row, naming the column; the file stays UTF-8.
    let one_bad = b"customer_id,name,city\nGB1,\xe7\x8e\x8b\xe5\xb0\x8f\xe6\x98\x8e,\xe4\xb8\x8a\xe6\xb5\xb7\nGB3,bad\xffbyte,\xe6\x9d\xad\xe5\xb7\x9e\n";
    let (s, r) = upload(&app, &t, "customers", "u.csv", one_bad.to_vec(), &[]).await;
    assert_eq!((s, error_code(&r).as_str()), (422, "rows_rejected"), "{r}");
    assert_eq!((r["report"]["encoding"].as_str(), r["report"]["rejected"].as_u64()), (Some("utf-8"), Some(1)), "{r}");
    assert_eq!((r["report"]["rejections"][0]["row"].as_u64(), r["report"]["rejections"][0]["column"].as_str()), (Some(3), Some("name")));
    let (s, r) = upload(&app, &t, "customers", "u.csv", one_bad.to_vec(), &[("skip_invalid", "true")]).await;
    assert_eq!((s, r["created"].as_u64()), (200, Some(1)), "{r}");
    let (_, list) = app.get("/api/v1/customers?q=GB1").await;
    assert_eq!((list["items"][0]["name"].as_str(), list["items"][0]["city"].as_str()), (Some("王小明"), Some("上海")));
    let bad = "order_id,customer_id,ordered_at,amount\nA,I1,2026-01-01,10\nB,NOBODY,2026-01-01,10\nC,I2,2026-01-01,1.005\n";
    let (s, r) = upload(&app, &t, "orders", "o.csv", bad.into(), &[]).await;
    assert_eq!((s, error_code(&r).as_str()), (422, "rows_rejected"));
    assert_eq!(r["report"]["rejected"], 2);
    assert_eq!(r["report"]["rejections"][0]["row"], 3);
    assert_eq!(r["report"]["rejections"][0]["column"], "customer_id");
    let (s, r) = upload(&app, &t, "orders", "o.csv", bad.into(), &[("skip_invalid", "true")]).await;
    assert_eq!((s, r["created"].as_u64(), r["committed"].as_bool()), (200, Some(1), Some(true)), "{r}");
    let (s, r) = upload(&app, &t, "orders", "o.csv", "order_id,customer_id,ordered_at,amount,shoe\n".into(), &[]).await;
    assert_eq!((s, r["error"]["field"].as_str()), (422, Some("file")), "{r}");
    let (s, r) = upload(&app, &t, "robots", "o.csv", "x".into(), &[]).await;
    assert_eq!((s, r["error"]["field"].as_str()), (400, Some("kind")));
    let (s, _) = upload(&app, &t, "orders", "o.csv", "x".into(), &[("frobnicate", "1")]).await;
    assert_eq!(s, 400);
    let form = reqwest::multipart::Form::new().text("kind", "orders");
    let (s, r) = json_of(app.req(Method::POST, "/api/v1/imports").multipart(form).send().await.unwrap()).await;
    assert_eq!((s, r["error"]["field"].as_str()), (400, Some("file")));
    let (s, b) = json_of(app.req(Method::POST, "/api/v1/imports").body("not multipart").send().await.unwrap()).await;
    assert_eq!((s, error_code(&b).as_str()), (415, "unsupported_media_type"));
    // Agents may not import.
    let u = app.db.store.create_user("agent@example.com", "Agent", Role::Agent, None).await.unwrap();
    let (_, agent) = app.db.store.create_token("a", Role::Agent, Some(u.id)).await.unwrap();
    let (s, r) = upload(&app, &agent, "customers", "c.csv", "customer_id,name\nZ,z\n".into(), &[]).await;
    assert_eq!((s, error_code(&r).as_str()), (403, "forbidden"));
});

test_both!(agents_see_only_their_portfolio, |db: TestDb| async move {
    let app = spawn_app(db).await;
    let store = &app.db.store;
    let a = store.create_user("a@example.com", "A", Role::Agent, None).await.unwrap();
    let b = store.create_user("b@example.com", "B", Role::Agent, None).await.unwrap();
    let (_, ta) = store.create_token("ta", Role::Agent, Some(a.id)).await.unwrap();
    let (_, mine) = app.post("/api/v1/customers", json!({"name":"A的客户","owner_id":a.id})).await;
    let (_, theirs) = app.post("/api/v1/customers", json!({"name":"B的客户","owner_id":b.id})).await;
    let (s, list) = json_of(app.req_as(&ta, Method::GET, "/api/v1/customers").send().await.unwrap()).await;
    assert_eq!(s, 200);
    let names: Vec<&str> = list["items"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["A的客户"]);
    let (s, _) = json_of(app.req_as(&ta, Method::GET, &format!("/api/v1/customers/{}", mine["id"])).send().await.unwrap()).await;
    assert_eq!(s, 200);
    // Outside the scope a customer does not exist (issue 21): 404, as a missing one.
    let (s, body) = json_of(app.req_as(&ta, Method::GET, &format!("/api/v1/customers/{}", theirs["id"])).send().await.unwrap()).await;
    assert_eq!((s, error_code(&body).as_str()), (404, "not_found"));
    let (s, _) = json_of(
        app.req_as(&ta, Method::PATCH, &format!("/api/v1/customers/{}", theirs["id"])).json(&json!({"city":"x"})).send().await.unwrap(),
    )
    .await;
    assert_eq!(s, 404);
    let (s, _) = json_of(
        app.req_as(&ta, Method::PATCH, &format!("/api/v1/customers/{}", mine["id"])).json(&json!({"owner_id": b.id})).send().await.unwrap(),
    )
    .await;
    assert_eq!(s, 403, "agents cannot hand customers over");
    let (s, _) = json_of(app.req_as(&ta, Method::DELETE, &format!("/api/v1/customers/{}", mine["id"])).send().await.unwrap()).await;
    assert_eq!(s, 403);
    // An agent's new customer joins their portfolio.
    let (s, c) = json_of(app.req_as(&ta, Method::POST, "/api/v1/customers").json(&json!({"name":"新客"})).send().await.unwrap()).await;
    assert_eq!((s, c["owner"]["id"].as_i64()), (201, Some(a.id)));
    // A referrer outside the portfolio is refused exactly like a missing one (the 360 would
    // show its name; 422 against 200 would tell which ids exist).
    let patch = |r: i64| json!({"referrer_id": r});
    let (s1, e1) = json_of(
        app.req_as(&ta, Method::PATCH, &format!("/api/v1/customers/{}", mine["id"]))
            .json(&patch(theirs["id"].as_i64().unwrap()))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let (s2, e2) =
        json_of(app.req_as(&ta, Method::PATCH, &format!("/api/v1/customers/{}", mine["id"])).json(&patch(987_654)).send().await.unwrap())
            .await;
    assert_eq!((s1, error_code(&e1)), (s2, error_code(&e2)), "{e1} {e2}");
    assert_eq!((s1, e1["error"]["message"].clone()), (422, e2["error"]["message"].clone()));
    let (s, e) = json_of(
        app.req_as(&ta, Method::POST, "/api/v1/customers").json(&json!({"name":"x","referrer_id": theirs["id"]})).send().await.unwrap(),
    )
    .await;
    assert_eq!((s, error_code(&e).as_str()), (422, "unknown_reference"));
    let (s, _) = json_of(
        app.req_as(&ta, Method::PATCH, &format!("/api/v1/customers/{}", mine["id"]))
            .json(&json!({"referrer_id": c["id"]}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 200, "a customer of their own may refer");
    let (_, v) = json_of(app.req_as(&ta, Method::GET, &format!("/api/v1/customers/{}", mine["id"])).send().await.unwrap()).await;
    assert_eq!(v["customer"]["referrer"]["name"], "新客");
});

test_both!(duplicates_and_merge_over_http, |db: TestDb| async move {
    let app = spawn_app(db).await;
    let store = &app.db.store;
    let (_, keep) = app.post("/api/v1/customers", json!({"name":"王伟","mobile":"13800138000","city":"上海"})).await;
    let (_, dup) = app.post("/api/v1/customers", json!({"name":"王伟","email":"w@example.com","city":"上海","tags":["会员"]})).await;
    let (_, other) = app.post("/api/v1/customers", json!({"name":"李娜","mobile":"13800138000"})).await;
    let (keep, dup, other) = (keep["id"].as_i64().unwrap(), dup["id"].as_i64().unwrap(), other["id"].as_i64().unwrap());
    let (s, _) = app
        .post("/api/v1/orders", json!({"external_id":"M1","customer_id":dup,"ordered_at":"2026-05-01T04:00:00Z","total_cents":5000}))
        .await;
    assert_eq!(s, 201);

    let (s, body) = app.get(&format!("/api/v1/customers/{keep}/duplicates")).await;
    assert_eq!(s, 200);
    let found: Vec<(i64, String)> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["id"].as_i64().unwrap(), c["reasons"][0].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(found, vec![(dup, "name_city".to_owned()), (other, "mobile".to_owned())]);
    assert_eq!(body["items"][1]["mobile"], "13800138000", "an admin sees contacts in full");

    // Agents may neither list nor merge; bad requests are 4xx with the envelope.
    let agent = store.create_user("ag@example.com", "坐席", Role::Agent, None).await.unwrap();
    let (_, ta) = store.create_token("ta", Role::Agent, Some(agent.id)).await.unwrap();
    let (s, b) = json_of(app.req_as(&ta, Method::GET, &format!("/api/v1/customers/{keep}/duplicates")).send().await.unwrap()).await;
    assert_eq!((s, error_code(&b).as_str()), (403, "forbidden"));
    let (s, _) = json_of(
        app.req_as(&ta, Method::POST, &format!("/api/v1/customers/{keep}/merge")).json(&json!({"merge_id": dup})).send().await.unwrap(),
    )
    .await;
    assert_eq!(s, 403);
    let (s, b) = app.post(&format!("/api/v1/customers/{keep}/merge"), json!({"merge_id": keep})).await;
    assert_eq!((s, b["error"]["field"].as_str()), (422, Some("merge_id")));
    let (s, b) = app.post(&format!("/api/v1/customers/{keep}/merge"), json!({"merge_id": 999999})).await;
    assert_eq!((s, error_code(&b).as_str()), (404, "not_found"));
    let (s, _) = app.post(&format!("/api/v1/customers/{keep}/merge"), json!({"merge": dup})).await;
    assert_eq!(s, 422, "unknown field");
    let (s, _) = app.get("/api/v1/customers/999999/duplicates").await;
    assert_eq!(s, 404);

    let (s, report) = app.post(&format!("/api/v1/customers/{keep}/merge"), json!({"merge_id": dup})).await;
    assert_eq!((s, report["orders"].as_i64(), report["merged_id"].as_i64()), (200, Some(1), Some(dup)), "{report}");
    assert_eq!(report["customer"]["email"], "w@example.com");
    assert_eq!(report["customer"]["tags"], json!(["会员"]));
    let (s, _) = app.get(&format!("/api/v1/customers/{dup}")).await;
    assert_eq!(s, 404, "the duplicate is gone from reads");
    let (_, orders) = app.get(&format!("/api/v1/customers/{keep}/orders")).await;
    assert_eq!(orders["items"][0]["external_id"], "M1");
    let (audit,): (i64,) = store
        .db
        .reader()
        .fetch_one(
            patron_store::db::query("SELECT COUNT(*) FROM audit_log WHERE action = 'merge' AND entity_id = $1").bind(keep.to_string()),
        )
        .await
        .unwrap();
    assert_eq!(audit, 1);
});

test_both!(personal_data_export_and_erasure_over_http, |db: TestDb| async move {
    let app = spawn_app(db).await;
    let store = &app.db.store;
    let (_, c) = app.post("/api/v1/customers", json!({"name":"赵敏","mobile":"13700137000","email":"zm@example.com"})).await;
    let id = c["id"].as_i64().unwrap();
    let (s, _) = app
        .post("/api/v1/orders", json!({"external_id":"P1","customer_id":id,"ordered_at":"2026-05-01T04:00:00Z","total_cents":8800}))
        .await;
    assert_eq!(s, 201);
    let manager = store.create_user("m@example.com", "经理", Role::Manager, None).await.unwrap();
    let (_, tm) = store.create_token("tm", Role::Manager, Some(manager.id)).await.unwrap();
    let agent = store.create_user("ag2@example.com", "坐席", Role::Agent, None).await.unwrap();
    let (_, ta) = store.create_token("ta", Role::Agent, Some(agent.id)).await.unwrap();

    let url = format!("/api/v1/customers/{id}/personal-data");
    let (s, _) = json_of(app.req_as(&ta, Method::GET, &url).send().await.unwrap()).await;
    assert_eq!(s, 403, "agents may not export");
    let (s, copy) = json_of(app.req_as(&tm, Method::GET, &url).send().await.unwrap()).await;
    assert_eq!(
        (s, copy["customer"]["email"].as_str(), copy["orders"][0]["external_id"].as_str()),
        (200, Some("zm@example.com"), Some("P1"))
    );

    // The same copy as a download from the web UI, with a session.
    store.create_user("ui@example.com", "界面", Role::Manager, Some("a long enough password")).await.unwrap();
    let browser = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let r = browser
        .post(format!("{}/ui/login", app.base))
        .form(&[("email", "ui@example.com"), ("password", "a long enough password")])
        .send()
        .await
        .unwrap();
    let cookies: Vec<String> = r
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_owned))
        .collect();
    let r = browser
        .get(format!("{}/ui/customers/{id}/personal-data", app.base))
        .header(reqwest::header::COOKIE, cookies.join("; "))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()[reqwest::header::CONTENT_DISPOSITION].to_str().unwrap().starts_with("attachment"));
    let download: Value = r.json().await.unwrap();
    assert_eq!(download["customer"]["email"], "zm@example.com");

    let erase = format!("/api/v1/customers/{id}/erase");
    let (s, b) = json_of(app.req_as(&tm, Method::POST, &erase).send().await.unwrap()).await;
    assert_eq!((s, error_code(&b).as_str()), (403, "forbidden"), "erasure is for admins");
    let r = app.req(Method::POST, &erase).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let (s, _) = app.get(&format!("/api/v1/customers/{id}")).await;
    assert_eq!(s, 404);
    let (s, _) = json_of(app.req(Method::POST, &erase).send().await.unwrap()).await;
    assert_eq!(s, 404, "erased already");
    let (s, _) = app.get(&url).await;
    assert_eq!(s, 404);
    let (s, _) = app.get("/api/v1/customers/abc/personal-data").await;
    assert_eq!(s, 400);
});

test_both!(responses_say_nosniff_and_https_servers_hsts, |db: TestDb| async move {
    let app = spawn_app(db).await;
    for path in ["/healthz", "/api/v1/customers", "/api/v1/nothing", "/ui/login"] {
        let r = app.req(Method::GET, path).send().await.unwrap();
        assert_eq!(r.headers().get("x-content-type-options").map(|v| v.to_str().unwrap()), Some("nosniff"), "{path}");
        assert!(r.headers().get("strict-transport-security").is_none(), "not without HTTPS: {path}");
    }
    let secure = patron_store::testing::test_db(app.db.store.db.engine()).await;
    let https = common::spawn_app_with(secure, patron_server::ServerConfig { secure_cookies: true, ..Default::default() }).await;
    let r = https.req(Method::GET, "/api/v1/customers").send().await.unwrap();
    assert_eq!(r.headers().get("strict-transport-security").map(|v| v.to_str().unwrap()), Some("max-age=31536000; includeSubDomains"));
});

test_both!(login_guessing_is_throttled_and_locks_the_account, |db: TestDb| async move {
    // A probe found 30 wrong passwords in 1.2 s, then the right one worked.
    let app = spawn_app(db).await;
    app.db.store.create_user("boss@example.com", "店长", Role::Manager, Some("correct horse battery")).await.unwrap();
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let login = |password: &'static str| {
        let (http, url) = (http.clone(), format!("{}/ui/login", app.base));
        async move {
            let r = http.post(url).form(&[("email", "boss@example.com"), ("password", password)]).send().await.unwrap();
            (r.status().as_u16(), r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned()))
        }
    };
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(login("wrong password").await.0);
    }
    assert_eq!(statuses, [401, 401, 401, 401, 429], "the fifth failure locks the account");
    let (s, retry) = login("correct horse battery").await;
    assert_eq!((s, retry.is_some()), (429, true), "the right password does not get in while locked");
    let audit = app.db.store.audit_entries(50, None, None).await.unwrap();
    assert_eq!(audit.iter().filter(|e| e.action == "login_failed").count(), 5);
    assert!(audit.iter().any(|e| e.action == "login_locked") && audit.iter().any(|e| e.action == "login_refused_locked"));
    assert!(audit.iter().all(|e| !e.detail.as_deref().unwrap_or_default().contains("boss@")), "no email in the audit");
    // Another account from the same address still gets its own tries, until the address runs
    // out (10 at once): then every login from it waits.
    let mut other = Vec::new();
    for _ in 0..6 {
        let r =
            http.post(format!("{}/ui/login", app.base)).form(&[("email", "nobody@example.com"), ("password", "x")]).send().await.unwrap();
        other.push(r.status().as_u16());
    }
    assert!(other.contains(&429) && other[0] == 401, "{other:?}");
});

test_both!(slow_clients_cannot_hold_the_server, |db: TestDb| async move {
    // A probe held connections for minutes with half a header, or nothing (slowloris).
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let config =
        patron_server::ServerConfig { header_read_timeout: std::time::Duration::from_secs(1), max_connections: 16, ..Default::default() };
    let app = common::spawn_app_with(db, config).await;
    let mut slow = Vec::new();
    for i in 0..40 {
        let mut s = tokio::net::TcpStream::connect(app.addr).await.unwrap();
        if i % 2 == 0 {
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ").await.unwrap();
        }
        slow.push(s);
    }
    // More slow connections than the server serves at once, and still it answers others.
    let started = std::time::Instant::now();
    let (s, body) = app.get("/api/v1/customers").await;
    assert_eq!(s, 200, "{body}");
    assert!(started.elapsed() < std::time::Duration::from_secs(20), "answered after {:?}", started.elapsed());
    // A client that never finishes its headers is disconnected (EOF or reset), not kept.
    let mut buf = [0u8; 256];
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), slow[0].read(&mut buf)).await;
    match read {
        Ok(Ok(n)) => {
            assert!(n == 0 || String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 408"), "{}", String::from_utf8_lossy(&buf[..n]))
        }
        Ok(Err(_)) => {}
        Err(_) => panic!("a half-sent request still holds its connection after 10 s"),
    }
});
