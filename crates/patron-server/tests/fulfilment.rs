//! The B2B fulfilment chain and joint account plans (issue 19 §5, §4) on each engine: the
//! on-time delivery rate on known data, bad input refused with nothing written, the late-step
//! event and notification (once, whatever reruns), the import with its row/column errors and
//! idempotent re-import (UTF-8 and GB18030), tickets naming an order, and the public scorecard
//! that shows the shared KPIs and nothing else.

mod common;

use common::{json_of, spawn_app, TestApp};
use patron_store::testing::TestDb;
use patron_store::users::Role;
use patron_store::{test_both, Clock};
use reqwest::Method;
use serde_json::{json, Value};

async fn customer(app: &TestApp, name: &str, owner: Option<i64>) -> i64 {
    let (s, c) = app.post("/api/v1/customers", json!({"name": name, "kind": "organisation", "owner_id": owner})).await;
    assert_eq!(s, 201, "{c}");
    c["id"].as_i64().unwrap()
}

async fn order(app: &TestApp, cid: i64, ext: &str) -> i64 {
    let (s, o) = app
        .post(
            "/api/v1/orders",
            json!({"external_id": ext, "customer_id": cid, "ordered_at": "2026-05-01T00:00:00Z", "total_cents": 1_000_000}),
        )
        .await;
    assert_eq!(s, 201, "{o}");
    o[0]["id"].as_i64().unwrap()
}

async fn step(app: &TestApp, order: i64, body: Value) -> (u16, Value) {
    app.post(&format!("/api/v1/orders/{order}/fulfilment"), body).await
}

/// Two organisations, five orders, known deliveries: 4 with a promise, 2 on time.
async fn known_data(app: &TestApp) -> (i64, i64, i64, [i64; 5], String) {
    let s = &app.db.store;
    let am = s.create_user("am@example.com", "客户经理李", Role::Agent, None).await.unwrap();
    let (_, am_token) = s.create_token("am", Role::Agent, Some(am.id)).await.unwrap();
    let a = customer(app, "华东机械有限公司", Some(am.id)).await;
    let b = customer(app, "西南电子集团", None).await;
    let o = [
        order(app, a, "PO-1").await,
        order(app, a, "PO-2").await,
        order(app, a, "PO-3").await,
        order(app, b, "PO-4").await,
        order(app, b, "PO-5").await,
    ];
    // PO-1: accepted, shipped, delivered on its promised day (the day ends at 16:00 UTC).
    for b in [
        json!({"step": "accepted", "at": "2026-05-01T08:00:00Z"}),
        json!({"step": "shipped", "at": "2026-05-05T08:00:00Z", "promised_at": "2026-05-06"}),
        json!({"step": "delivered", "at": "2026-05-10T10:00:00Z", "promised_at": "2026-05-10", "note": "签收"}),
    ] {
        let (st, v) = step(app, o[0], b).await;
        assert_eq!(st, 201, "{v}");
    }
    // PO-2: promised first, delivered two days late.
    let (st, v) = step(app, o[1], json!({"step": "delivered", "promised_at": "2026-05-10T00:00:00Z"})).await;
    assert_eq!((st, v["steps"][0]["at"].clone()), (201, Value::Null), "{v}");
    let (st, v) = step(app, o[1], json!({"step": "delivered", "at": "2026-05-12T00:00:00Z"})).await;
    assert_eq!((st, v["steps"][0]["late"].as_bool(), v["steps"][0]["late_minutes"].as_i64()), (200, Some(true), Some(2 * 24 * 60)), "{v}");
    // PO-3: early. PO-4: late. PO-5: no promise (not counted).
    assert_eq!(step(app, o[2], json!({"step": "delivered", "at": "2026-06-02T00:00:00Z", "promised_at": "2026-06-05"})).await.0, 201);
    assert_eq!(step(app, o[3], json!({"step": "delivered", "at": "2026-06-10T00:00:00Z", "promised_at": "2026-06-01"})).await.0, 201);
    assert_eq!(step(app, o[4], json!({"step": "delivered", "at": "2026-06-11T00:00:00Z"})).await.0, 201);
    (am.id, a, b, o, am_token)
}

fn rows(v: &Value) -> Vec<(String, i64, i64, Option<f64>)> {
    v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (r["key"].as_str().unwrap().to_owned(), r["delivered"].as_i64().unwrap(), r["on_time"].as_i64().unwrap(), r["rate"].as_f64())
        })
        .collect()
}

test_both!(the_on_time_rate_on_known_data, |db: TestDb| async move {
    let app = spawn_app(db).await;
    let (am, a, b, o, am_token) = known_data(&app).await;
    let q = "/api/v1/fulfilment/on-time?from=2026-01-01&to=2026-06-30";
    let (s, v) = app.get(&format!("{q}&by=month")).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (v["overall"]["delivered"].as_i64(), v["overall"]["on_time"].as_i64(), v["overall"]["rate"].as_f64()),
        (Some(4), Some(2), Some(0.5))
    );
    assert_eq!(rows(&v), vec![("2026-05".into(), 2, 1, Some(0.5)), ("2026-06".into(), 2, 1, Some(0.5))]);
    let (_, v) = app.get(&format!("{q}&by=customer")).await;
    assert_eq!(rows(&v), vec![(a.to_string(), 3, 2, Some(2.0 / 3.0)), (b.to_string(), 1, 0, Some(0.0))]);
    let (_, v) = app.get(&format!("{q}&by=account_manager")).await;
    assert_eq!(rows(&v), vec![(am.to_string(), 3, 2, Some(2.0 / 3.0)), ("unassigned".into(), 1, 0, Some(0.0))]);
    assert_eq!(v["rows"][0]["label"], "客户经理李");
    // A period without deliveries: no rows, no rate.
    let (_, v) = app.get("/api/v1/fulfilment/on-time?from=2025-01-01&to=2025-12-31&by=month").await;
    assert_eq!((v["rows"].as_array().map(Vec::len), v["overall"]["rate"].clone()), (Some(0), Value::Null));
    // An agent's scope: their own customers only (the permission analytics.read is needed).
    let r = app.req_as(&am_token, Method::GET, &format!("{q}&by=customer")).send().await.unwrap();
    let (s, _) = json_of(r).await;
    assert!(s == 200 || s == 403, "{s}");
    // Bad grouping and periods are refused.
    assert_eq!(app.get(&format!("{q}&by=store")).await.0, 400);
    assert_eq!(app.get("/api/v1/fulfilment/on-time?from=2026-06-30&to=2026-01-01").await.0, 400);

    // The chain reads in the chain's order with the pending steps.
    let (s, c) = app.get(&format!("/api/v1/orders/{}/fulfilment", o[0])).await;
    assert_eq!(s, 200);
    let names: Vec<&str> = c["steps"].as_array().unwrap().iter().map(|s| s["step"].as_str().unwrap()).collect();
    assert_eq!(names, ["accepted", "shipped", "delivered"]);
    assert_eq!(c["late"], false);
    assert_eq!(c["pending"].as_array().unwrap().len(), 7);
    assert_eq!(app.get("/api/v1/orders/999999/fulfilment").await.0, 404);
});

test_both!(a_late_step_is_an_event_and_notifies_the_account_manager_once, |db: TestDb| async move {
    let app = spawn_app(db).await;
    let (_, a, _, o, am_token) = known_data(&app).await;
    let (_, ev) = app.get(&format!("/api/v1/events?type=fulfilment.late&customer_id={a}")).await;
    let late: Vec<&Value> = ev["items"].as_array().unwrap().iter().collect();
    assert_eq!(late.len(), 1, "{ev}");
    assert_eq!((late[0]["subject_id"].as_i64(), late[0]["payload"]["step"].as_str()), (Some(o[1]), Some("delivered")));
    let r = app.req_as(&am_token, Method::GET, "/api/v1/notifications").send().await.unwrap();
    let (_, n) = json_of(r).await;
    let mine: Vec<&Value> = n["items"].as_array().unwrap().iter().filter(|x| x["kind"] == "fulfilment_late").collect();
    assert_eq!(mine.len(), 1, "{n}");
    assert!(mine[0]["message"].as_str().unwrap().contains("PO-2"));
    // Writing the late step again does not repeat it.
    assert_eq!(step(&app, o[1], json!({"step": "delivered", "note": "客户签收晚"})).await.0, 200);
    // A promise passing with the step not done: the scheduler flags it once, however often it runs.
    assert_eq!(step(&app, o[2], json!({"step": "installed", "promised_at": "2026-06-20"})).await.0, 201);
    assert_eq!(app.db.store.run_due_jobs().await.unwrap().fulfilment_late, 1);
    assert_eq!(app.db.store.run_due_jobs().await.unwrap().fulfilment_late, 0);
    let (_, ev) = app.get(&format!("/api/v1/events?type=fulfilment.late&customer_id={a}")).await;
    assert_eq!(ev["items"].as_array().unwrap().len(), 2, "{ev}");
    let (_, c) = app.get(&format!("/api/v1/orders/{}/fulfilment", o[2])).await;
    assert_eq!(
        (c["late"].as_bool(), c["steps"][1]["step"].as_str(), c["steps"][1]["late"].as_bool()),
        (Some(true), Some("installed"), Some(true)),
        "{c}"
    );
});

test_both!(bad_fulfilment_input_is_refused_and_nothing_written, |db: TestDb| async move {
    let app = spawn_app(db).await;
    let (_, a, _, o, _) = known_data(&app).await;
    let (_, before) = app.get(&format!("/api/v1/orders/{}/fulfilment", o[0])).await;
    let (_, ev_before) = app.get(&format!("/api/v1/events?customer_id={a}&limit=1000")).await;
    for (body, field) in [
        (json!({"step": "teleported", "at": "2026-05-02T00:00:00Z"}), "step"),
        (json!({"step": "安装", "at": "2026-05-02T00:00:00Z"}), "step"),
        (json!({"step": "invoiced", "at": "2026-07-30T00:00:00Z"}), "at"),
        (json!({"step": "packed", "at": "2026-05-11T00:00:00Z"}), "at"),
        (json!({"step": "installed", "at": "2026-05-09T00:00:00Z"}), "at"),
        (json!({"step": "produced", "at": "2026-04-01T00:00:00Z"}), "at"),
        (json!({"step": "produced", "promised_at": "2026-04-01"}), "promised_at"),
        (json!({"step": "produced", "promised_at": "next week"}), "promised_at"),
    ] {
        let (s, e) = step(&app, o[0], body.clone()).await;
        assert_eq!((s, e["error"]["field"].as_str()), (422, Some(field)), "{body}: {e}");
    }
    let (s, e) = step(&app, o[0], json!({"step": "packed", "colour": "red"})).await;
    assert_eq!(s, 422, "{e}");
    let (_, after) = app.get(&format!("/api/v1/orders/{}/fulfilment", o[0])).await;
    assert_eq!(before["steps"], after["steps"]);
    let (_, ev_after) = app.get(&format!("/api/v1/events?customer_id={a}&limit=1000")).await;
    assert_eq!(ev_before["items"].as_array().unwrap().len(), ev_after["items"].as_array().unwrap().len());
    // A switched-off step is refused; `delivered` cannot be switched off.
    let (s, _) = app.put("/api/v1/fulfilment/settings", json!({"steps": ["accepted", "shipped", "delivered", "invoiced"]})).await;
    assert_eq!(s, 200);
    let (s, e) = step(&app, o[0], json!({"step": "tested", "at": "2026-05-03T00:00:00Z"})).await;
    assert_eq!((s, e["error"]["field"].as_str()), (422, Some("step")), "{e}");
    assert_eq!(app.put("/api/v1/fulfilment/settings", json!({"steps": ["accepted"]})).await.0, 422);
    let (_, c) = app.get(&format!("/api/v1/orders/{}/fulfilment", o[0])).await;
    assert_eq!(c["pending"], json!(["invoiced"]));
    // A cancelled order has no fulfilment.
    let (s, _) = app
        .post(
            "/api/v1/orders",
            json!({"external_id": "PO-X", "customer_id": a, "ordered_at": "2026-05-01T00:00:00Z", "total_cents": 5, "status": "cancelled"}),
        )
        .await;
    assert_eq!(s, 201);
    let (_, ord) = app.get(&format!("/api/v1/customers/{a}/orders")).await;
    let cancelled = ord["items"].as_array().unwrap().iter().find(|x| x["status"] == "cancelled").unwrap()["id"].as_i64().unwrap();
    assert_eq!(step(&app, cancelled, json!({"step": "accepted"})).await.0, 409);
});

async fn upload(app: &TestApp, name: &str, bytes: Vec<u8>) -> (u16, Value) {
    let form = reqwest::multipart::Form::new()
        .text("kind", "fulfilment")
        .part("file", reqwest::multipart::Part::bytes(bytes).file_name(name.to_owned()));
    json_of(app.req(Method::POST, "/api/v1/imports").multipart(form).send().await.unwrap()).await
}

test_both!(the_fulfilment_import_names_row_and_column_and_reimports_idempotently, |db: TestDb| async move {
    let app = spawn_app(db).await;
    let a = customer(&app, "华北重工", None).await;
    let o1 = order(&app, a, "EXT-1").await;
    order(&app, a, "EXT-2").await;
    let bad = "订单号,环节,完成时间,承诺时间,备注\n\
               EXT-1,接受,2026-05-01 09:00,,\n\
               EXT-1,delivered,2026-05-09 10:00,2026-05-10,签收\n\
               EXT-9,shipped,2026-05-02 10:00,,\n\
               EXT-1,teleport,2026-05-02 10:00,,\n\
               EXT-1,packed,2026-08-01 10:00,,\n\
               EXT-1,shipped,2026-05-20 10:00,,\n\
               EXT-1,接受,2026-05-01 09:00,,\n";
    let (s, r) = upload(&app, "fulfilment.csv", bad.as_bytes().to_vec()).await;
    assert_eq!((s, r["error"]["code"].as_str()), (422, Some("rows_rejected")), "{r}");
    let r = &r["report"];
    assert_eq!((r["committed"].as_bool(), r["rejected"].as_i64()), (Some(false), Some(5)), "{r}");
    let rej: Vec<(i64, String)> = r["rejections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| (x["row"].as_i64().unwrap(), x["column"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(
        rej,
        vec![(4, "订单号".into()), (5, "环节".into()), (6, "完成时间".into()), (7, "完成时间".into()), (8, "环节".into())],
        "{r}"
    );
    let (_, c) = app.get(&format!("/api/v1/orders/{o1}/fulfilment")).await;
    assert_eq!(c["steps"].as_array().unwrap().len(), 0, "all or nothing");

    // A good file in GB18030, then again: the second changes nothing.
    let good = "订单号,环节,完成时间,承诺时间,备注\nEXT-1,接受,2026-05-01 09:00,,\nEXT-1,交付,2026-05-09 10:00,2026-05-10,签收\nEXT-2,发货,,2026-05-20,\n";
    let (bytes, _, _) = encoding_rs::GB18030.encode(good);
    let (s, r) = upload(&app, "fulfilment.csv", bytes.to_vec()).await;
    assert_eq!(
        (s, r["committed"].as_bool(), r["created"].as_i64(), r["encoding"].as_str()),
        (200, Some(true), Some(3), Some("gb18030")),
        "{r}"
    );
    let (_, r) = upload(&app, "fulfilment.csv", bytes.to_vec()).await;
    assert_eq!((r["created"].as_i64(), r["updated"].as_i64(), r["unchanged"].as_i64()), (Some(0), Some(0), Some(3)), "{r}");
    let (_, c) = app.get(&format!("/api/v1/orders/{o1}/fulfilment")).await;
    assert_eq!(c["steps"][1]["note"], "签收");
    assert_eq!(c["steps"][1]["promised_at"], "2026-05-10T15:59:59.999999Z");
});

test_both!(a_ticket_names_one_of_its_customers_orders, |db: TestDb| async move {
    let app = spawn_app(db).await;
    let a = customer(&app, "甲公司", None).await;
    let b = customer(&app, "乙公司", None).await;
    let oa = order(&app, a, "A-1").await;
    let ob = order(&app, b, "B-1").await;
    let t = |order: i64| json!({"customer_id": a, "kind": "complaint", "channel": "phone", "subject": "交付延迟", "order_id": order});
    let (s, v) = app.post("/api/v1/tickets", t(oa)).await;
    assert_eq!((s, v["order_id"].as_i64()), (201, Some(oa)), "{v}");
    let (s, e) = app.post("/api/v1/tickets", t(ob)).await;
    assert_eq!((s, e["error"]["field"].as_str()), (422, Some("order_id")), "{e}");
    let (_, list) = app.get(&format!("/api/v1/tickets?customer_id={a}")).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "nothing written for the refused one");
});

test_both!(the_public_scorecard_shows_the_shared_kpis_and_nothing_else, |db: TestDb| async move {
    let app = spawn_app(db).await;
    let (_, a, b, _, _) = known_data(&app).await;
    let plan = json!({
        "goals": "年度采购额提升20%，秘密目标：替换竞争对手",
        "expectations_ours": "按时付款（账期60天）",
        "expectations_theirs": "准时交付",
        "kpis": [
            {"name": "准时交付率", "target": 98, "kind": "on_time_delivery"},
            {"name": "投诉解决时长", "target": 48, "kind": "complaint_resolution_hours"},
            {"name": "满意度", "target": 4.5, "kind": "satisfaction"}
        ],
        "review_on": "2026-09-30"
    });
    let (s, p) = app.post(&format!("/api/v1/customers/{a}/plans"), plan.clone()).await;
    assert_eq!(s, 201, "{p}");
    let url = p["scorecard_url"].as_str().unwrap().to_owned();
    assert!(url.starts_with(&format!("{}/p/plan/", app.base)), "{url}");
    let token = url.rsplit('/').next().unwrap().to_owned();
    // The actuals from the data: 2 of 3 deliveries on time in the last 90 days.
    assert_eq!(
        (p["kpis"][0]["actual"].as_f64(), p["kpis"][0]["met"].as_bool(), p["kpis"][0]["basis"].as_i64()),
        (Some(66.67), Some(false), Some(3))
    );
    assert_eq!((p["kpis"][1]["actual"].clone(), p["kpis"][2]["met"].clone()), (Value::Null, Value::Null));
    let (_, list) = app.get(&format!("/api/v1/customers/{a}/plans")).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert!(!list.to_string().contains(&token), "the token is shown once");

    // The customer's side: KPIs, targets, actuals — no names, money, goals or other customers.
    let (s, v) = json_of(app.http.get(format!("{}/api/v1/public/plans/{token}", app.base)).send().await.unwrap()).await;
    assert_eq!(s, 200, "{v}");
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["as_of", "expires_at", "kpis", "window_days"]);
    let text = v.to_string();
    for secret in ["华东机械", "西南电子", "客户经理李", "秘密目标", "账期", "cents", "customer", "PO-", "准时交付\"", "user"]
    {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
    // No ids at all: each KPI holds exactly what is shared.
    for k in v["kpis"].as_array().unwrap() {
        let keys: Vec<&String> = k.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["actual", "direction", "kind", "met", "name", "target", "unit"]);
    }
    let _ = (a, b);
    assert_eq!(v["kpis"][0]["name"], "准时交付率");
    for lang in ["zh", "en"] {
        let r = app.http.get(format!("{url}?lang={lang}")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let html = r.text().await.unwrap();
        assert!(html.contains("准时交付率") && html.contains("66.67"), "{html}");
        for secret in ["华东机械", "西南电子", "客户经理李", "秘密目标", "账期", "¥", "/ui/"] {
            assert!(!html.contains(secret), "{secret} leaked on the page");
        }
    }
    // A forged token and a malformed one: 404; so the page.
    let forged = "ab".repeat(32);
    assert_eq!(app.http.get(format!("{}/api/v1/public/plans/{forged}", app.base)).send().await.unwrap().status(), 404);
    assert_eq!(app.http.get(format!("{}/p/plan/{forged}", app.base)).send().await.unwrap().status(), 404);
    assert_eq!(app.http.get(format!("{}/p/plan/nope", app.base)).send().await.unwrap().status(), 404);

    // A person has no account plan; bad KPIs are refused.
    let (_, person) = app.post("/api/v1/customers", json!({"name": "张三"})).await;
    let (s, _) = app.post(&format!("/api/v1/customers/{}/plans", person["id"]), plan.clone()).await;
    assert_eq!(s, 422);
    let mut bad = plan.clone();
    bad["kpis"][0]["target"] = json!(120);
    let (s, e) = app.post(&format!("/api/v1/customers/{a}/plans"), bad).await;
    assert_eq!((s, e["error"]["field"].as_str()), (422, Some("kpis[0].target")), "{e}");

    // Expired: 404.
    let now = app.db.clock.now();
    app.db.clock.set(now + chrono::Duration::days(91));
    assert_eq!(app.http.get(url.as_str()).send().await.unwrap().status(), 404);
    app.db.clock.set(now);
    assert_eq!(app.http.get(url.as_str()).send().await.unwrap().status(), 200);
    // A new plan supersedes the old one: its link stops working.
    let (s, p2) = app.post(&format!("/api/v1/customers/{a}/plans"), plan).await;
    assert_eq!(s, 201);
    assert_eq!(app.http.get(url.as_str()).send().await.unwrap().status(), 404);
    assert_eq!(app.http.get(p2["scorecard_url"].as_str().unwrap()).send().await.unwrap().status(), 200);
    let (_, list) = app.get(&format!("/api/v1/customers/{a}/plans")).await;
    assert_eq!((list[0]["current"].as_bool(), list[1]["current"].as_bool()), (Some(true), Some(false)));
});

test_both!(the_pages_show_the_chain_the_on_time_chart_and_the_plan, |db: TestDb| async move {
    let app = spawn_app(db).await;
    let (_, a, _, o, _) = known_data(&app).await;
    let cookie = common::ui_session(&app, "mgr@example.com", Role::Manager).await;
    let (s, html) = common::ui(&app, &cookie, Method::GET, &format!("/ui/customers/{a}"), &[]).await;
    assert_eq!(s, 200);
    assert!(html.contains(&format!("hx-get=\"/ui/customers/{a}/fulfilment\"")) && html.contains("plans-link"));
    // The 360's card: the chains as a timeline, late steps marked, pending steps listed.
    let (s, card) = common::ui(&app, &cookie, Method::GET, &format!("/ui/customers/{a}/fulfilment"), &[]).await;
    assert_eq!(s, 200);
    assert!(card.contains(&format!("chain-{}", o[1])) && card.contains("PO-2") && card.contains("延迟"), "{card}");
    assert!(card.contains("data-step=\"installed\""), "pending steps shown");
    // Recording a step through the card's form.
    let csrf = common::csrf_of(&card);
    let oid = o[2].to_string();
    let (s, _) = common::ui(
        &app,
        &cookie,
        Method::POST,
        &format!("/ui/customers/{a}/fulfilment"),
        &[("csrf", &csrf), ("order_id", &oid), ("step", "invoiced"), ("at", "2026-06-03T09:30"), ("promised_on", ""), ("note", "已开票")],
    )
    .await;
    assert_eq!(s, 303);
    let (_, c) = app.get(&format!("/api/v1/orders/{}/fulfilment", o[2])).await;
    assert_eq!((c["steps"][1]["step"].as_str(), c["steps"][1]["at"].as_str()), (Some("invoiced"), Some("2026-06-03T01:30:00Z")), "{c}");
    // The on-time chart.
    let (s, page) = common::ui(&app, &cookie, Method::GET, "/ui/fulfilment?from=2026-01-01&to=2026-06-30", &[]).await;
    assert_eq!(s, 200);
    assert!(page.contains("<svg") && page.contains("2026-05") && page.contains("50.0%") && page.contains("客户经理李"), "{page}");
    // The plan page: make a plan, the link shown once.
    let (s, page) = common::ui(&app, &cookie, Method::GET, &format!("/ui/customers/{a}/plans"), &[]).await;
    assert_eq!(s, 200);
    let csrf = common::csrf_of(&page);
    let (s, page) = common::ui(
        &app,
        &cookie,
        Method::POST,
        &format!("/ui/customers/{a}/plans"),
        &[
            ("csrf", &csrf),
            ("goals", "共同降低交付周期"),
            ("expectations_ours", ""),
            ("expectations_theirs", ""),
            ("kpi_name_0", "准时交付率"),
            ("kpi_kind_0", "on_time_delivery"),
            ("kpi_target_0", "95"),
            ("kpi_name_1", ""),
            ("kpi_kind_1", "satisfaction"),
            ("kpi_target_1", ""),
            ("review_on", "2026-12-31"),
        ],
    )
    .await;
    assert_eq!(s, 201, "{page}");
    assert!(page.contains("p&#x2f;plan&#x2f;") && page.contains("66.67"), "{page}");
});
