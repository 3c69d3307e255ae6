//! Account-manager KPIs over a real server on each engine (issue 19 §7, DESIGN.md §4): known
//! portfolios, orders, contacts, reviews, survey answers and deliveries; each KPI computed here
//! from the data the test wrote and compared with the API; portfolios as they were at the start
//! of the month (a reassignment later rewrites nothing, one before moves the customer); the
//! customers behind each number; an agent's KPIs over their scope; bad months and KPIs refused
//! with the envelope.

mod common;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use common::{spawn_app, TestApp};
use patron_store::test_both;
use patron_store::testing::TestDb;
use patron_store::users::Role;
use serde_json::{json, Value};

/// Noon in Shanghai of a day (04:00 UTC).
fn noon(day: &str) -> DateTime<Utc> {
    let d = NaiveDate::parse_from_str(day, "%Y-%m-%d").unwrap();
    Utc.from_utc_datetime(&d.and_hms_opt(4, 0, 0).unwrap())
}

struct Org<'a> {
    name: &'a str,
    owner: i64,
    /// Created on this day.
    created: &'a str,
    /// Mobile, e-mail and a consent.
    complete: bool,
    cadence_days: Option<i64>,
}

async fn org(app: &TestApp, o: &Org<'_>) -> i64 {
    app.db.clock.set(noon(o.created));
    let mut body = json!({"name": o.name, "kind": "organisation", "owner_id": o.owner});
    if o.complete {
        let b = o.name.as_bytes();
        body["mobile"] = json!(format!("1380000{:02}{:02}", b[0] % 100, b[1] % 100));
        body["email"] = json!(format!("buyer-{}@example.com", o.name[..2].to_lowercase()));
        body["consents"] = json!({"email": true});
    }
    let (st, c) = app.post("/api/v1/customers", body).await;
    assert_eq!(st, 201, "{c}");
    let id = c["id"].as_i64().or_else(|| c["customer"]["id"].as_i64()).expect("customer id");
    if let Some(d) = o.cadence_days {
        let (st, p) = app.patch(&format!("/api/v1/customers/{id}"), json!({"contact_cadence_days": d})).await;
        assert_eq!(st, 200, "{p}");
    }
    id
}

async fn order(app: &TestApp, cid: i64, day: &str, cents: i64) -> i64 {
    let (st, o) = app.post("/api/v1/orders", json!({"customer_id": cid, "ordered_at": noon(day), "total_cents": cents})).await;
    assert_eq!(st, 201, "{o}");
    o[0]["id"].as_i64().unwrap()
}

async fn call(app: &TestApp, cid: i64, day: &str) {
    let (st, r) = app.post("/api/v1/interactions", json!({"customer_id": cid, "kind": "call", "occurred_at": noon(day)})).await;
    assert!(st == 201 || st == 200, "{r}");
}

fn row(r: &Value, user: i64) -> &Value {
    r["rows"].as_array().unwrap().iter().find(|x| x["user_id"] == user).unwrap_or_else(|| panic!("no row of user {user}: {r}"))
}

fn close(a: &Value, b: Option<f64>) -> bool {
    match (a.as_f64(), b) {
        (Some(x), Some(y)) => (x - y).abs() < 1e-9,
        (None, None) => a.is_null(),
        _ => false,
    }
}

test_both!(account_manager_kpis_on_known_data, |db: TestDb| async move {
    let app = spawn_app(db).await;
    let s = &app.db.store;
    let am1 = s.create_user("am1@example.com", "周经理", Role::Agent, None).await.unwrap().id;
    let am2 = s.create_user("am2@example.com", "吴经理", Role::Agent, None).await.unwrap().id;
    let am3 = s.create_user("am3@example.com", "郑经理", Role::Agent, None).await.unwrap().id;

    // The base (every customer an organisation: a managed account).
    let p1 = org(&app, &Org { name: "P1 潜客甲", owner: am1, created: "2025-06-01", complete: true, cadence_days: Some(30) }).await;
    let p2 = org(&app, &Org { name: "P2 潜客乙", owner: am1, created: "2025-06-01", complete: false, cadence_days: None }).await;
    let p3 = org(&app, &Org { name: "P3 潜客丙", owner: am2, created: "2025-06-01", complete: false, cadence_days: None }).await;
    let v1 = org(&app, &Org { name: "V1 大客户甲", owner: am1, created: "2025-03-01", complete: false, cadence_days: None }).await;
    let v2 = org(&app, &Org { name: "V2 大客户乙", owner: am1, created: "2025-06-01", complete: false, cadence_days: Some(30) }).await;
    let v3 = org(&app, &Org { name: "V3 中客户", owner: am2, created: "2025-06-01", complete: true, cadence_days: Some(30) }).await;
    // Complete, but created 15 months before the month's end and never changed: stale.
    let l1 = org(&app, &Org { name: "L1 小客户甲", owner: am2, created: "2025-03-01", complete: true, cadence_days: None }).await;
    let l2 = org(&app, &Org { name: "L2 小客户乙", owner: am1, created: "2025-06-01", complete: false, cadence_days: None }).await;
    let r1 = org(&app, &Org { name: "R1 移交甲", owner: am1, created: "2025-06-01", complete: false, cadence_days: None }).await;
    let r2 = org(&app, &Org { name: "R2 移交乙", owner: am2, created: "2025-06-01", complete: false, cadence_days: None }).await;

    // R2 moves from am2 to am1 before May: in am1's May portfolio, in am2's April one.
    app.db.clock.set(noon("2026-04-15"));
    let (st, r) = app
        .post("/api/v1/portfolios/reassign", json!({"from_user_id": am2, "to_user_id": am1, "customer_ids": [r2], "note": "交接"}))
        .await;
    assert_eq!(st, 200, "{r}");

    // Orders (completed), reviews, answers and deliveries, written at the end of June.
    app.db.clock.set(noon("2026-06-30"));
    let orders: Vec<(i64, &str, i64)> = vec![
        (p1, "2026-05-10", 10_000),    // a prospect's first purchase in May
        (p3, "2026-06-05", 20_000),    // in June: not May's
        (v1, "2025-11-15", 1_000_000), // one purchase: silent 166 days at May's start, 197 at its end
        (v2, "2026-02-01", 500_000),
        (v2, "2026-04-01", 500_000),
        (v3, "2025-12-01", 300_000),
        (v3, "2026-03-01", 300_000),
        (l1, "2025-10-01", 10_000), // churned before May
        (l2, "2026-04-20", 5_000),
    ];
    let mut order_ids = std::collections::HashMap::new();
    for (c, day, cents) in &orders {
        order_ids.insert((*c, *day), order(&app, *c, day, *cents).await);
    }
    // Contacts (cadence 30 days): V2 contacted 10 Apr, due 10 May, contacted 5 May (on time);
    // P1 contacted 1 Apr, due 1 May, contacted 20 May (late); V3 contacted 25 Apr, due 25 May,
    // no contact (late); V2's 20 June contact is after May.
    for (c, day) in [(v2, "2026-04-10"), (v2, "2026-05-05"), (v2, "2026-06-20"), (p1, "2026-04-01"), (p1, "2026-05-20"), (v3, "2026-04-25")]
    {
        call(&app, c, day).await;
    }
    // Deliveries in May with a promise: V2's on time, L2's two days late.
    for (o, at, promised) in
        [(order_ids[&(v2, "2026-04-01")], "2026-05-03", "2026-05-05"), (order_ids[&(l2, "2026-04-20")], "2026-05-12", "2026-05-10")]
    {
        let (st, r) = app
            .post(&format!("/api/v1/orders/{o}/fulfilment"), json!({"step": "delivered", "at": noon(at), "promised_at": promised}))
            .await;
        assert!(st == 201 || st == 200, "{r}");
    }
    // "Did we listen to you well?": V2 4 and L2 5 in May; V3 2 in June.
    let (st, sv) = app.post("/api/v1/surveys", json!({"name": "倾听", "kind": "listen", "expires_days": 60})).await;
    assert_eq!(st, 201, "{sv}");
    let sid = sv["id"].as_i64().unwrap();
    app.db.clock.set(noon("2026-05-18"));
    let (st, inv) = app.post(&format!("/api/v1/surveys/{sid}/invitations"), json!({"customer_ids": [v2, l2, v3]})).await;
    assert_eq!(st, 201, "{inv}");
    let token_of = |cid: i64| -> String {
        let i = inv["invited"].as_array().unwrap().iter().find(|i| i["customer_id"] == cid).unwrap_or_else(|| panic!("{inv}"));
        i["url"].as_str().unwrap().rsplit('/').next().unwrap().to_owned()
    };
    for (cid, day, score) in [(v2, "2026-05-20", 4), (l2, "2026-05-21", 5), (v3, "2026-06-05", 2)] {
        app.db.clock.set(noon(day));
        let r = app
            .http
            .post(format!("{}/api/v1/public/surveys/{}", app.base, token_of(cid)))
            .json(&json!({"answers": [{"question": "listen", "value": score}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 201);
    }
    // L1's review comes after May (May: overdue, created 2025-03-01 + 365 days).
    app.db.clock.set(noon("2026-06-15"));
    let review = json!({"scores": {"responsiveness": 4, "price": 4, "delivery": 4, "obligations": 4, "complaints": 4, "contract": 4}, "sentiment": 4});
    let (st, r) = app.post(&format!("/api/v1/customers/{l1}/reviews"), review.clone()).await;
    assert_eq!(st, 201, "{r}");
    // V1 (also created 2025-03-01) was reviewed in May: covered.
    app.db.clock.set(noon("2026-05-03"));
    let (st, r) = app.post(&format!("/api/v1/customers/{v1}/reviews"), review).await;
    assert_eq!(st, 201, "{r}");
    app.db.clock.set(noon("2026-06-30"));

    let (st, may) = app.get("/api/v1/kpis/account-managers?month=2026-05").await;
    assert_eq!(st, 200, "{may}");
    assert_eq!(
        (may["month"].as_str(), may["from"].as_str(), may["to"].as_str()),
        (Some("2026-05"), Some("2026-05-01"), Some("2026-05-31"))
    );
    assert_eq!(may["rows"].as_array().unwrap().len(), 2, "am3 has no portfolio: {may}");

    // The definitions, computed from what was written.
    let portfolio1 = [p1, p2, v1, v2, l2, r1, r2];
    let portfolio2 = [p3, v3, l1];
    // Average customer value: spend of the 12 months up to 31 May (from 1 June 2025), mean.
    let spend = |c: i64| -> i64 { orders.iter().filter(|o| o.0 == c && o.1 >= "2025-06-01" && o.1 <= "2026-05-31").map(|o| o.2).sum() };
    let mean = |p: &[i64]| (p.iter().map(|c| spend(*c)).sum::<i64>() as f64 / p.len() as f64).round() as i64;
    // Prospects at the start: no order before May; converted: first order in May.
    let first_order = |c: i64| orders.iter().filter(|o| o.0 == c).map(|o| o.1).min();
    let conv = |p: &[i64]| {
        let prospects: Vec<i64> = p.iter().copied().filter(|c| first_order(*c).is_none_or(|d| d >= "2026-05-01")).collect();
        let converted = prospects.iter().filter(|c| first_order(**c).is_some_and(|d| d <= "2026-05-31")).count();
        (prospects.len(), converted)
    };
    // Tiers at 1 May over the ranked base (customers with purchases by 30 April), trailing
    // spend 1 May 2025 – 30 April 2026: V1 = V2 = 10,000.00 > V3 6,000.00 > L1 100.00 > L2
    // 50.00; five ranked, a customer with `below` lower ones is A when below ≥ 4 (80% of 5),
    // B when below ≥ 2.5: V1 and V2 have 3 below → B; no A.
    let ranked: Vec<(i64, i64)> = [v1, v2, v3, l1, l2]
        .iter()
        .map(|c| (*c, orders.iter().filter(|o| o.0 == *c && o.1 >= "2025-05-01" && o.1 <= "2026-04-30").map(|o| o.2).sum()))
        .collect();
    let valuable = |c: i64| {
        let v = ranked.iter().find(|r| r.0 == c).map(|r| r.1);
        v.is_some_and(|v| ranked.iter().filter(|r| r.1 < v).count() * 100 >= 50 * ranked.len())
    };
    assert!(valuable(v1) && valuable(v2) && !valuable(v3) && !valuable(l1) && !valuable(l2));
    // Became churned in May: silent > 180 days at 31 May, not at 30 April (one purchase day,
    // so the floor of 180 applies): V1 only (166 → 197 days).
    let r1v = row(&may, am1);
    assert_eq!(r1v["customers"].as_i64(), Some(portfolio1.len() as i64), "{r1v}");
    assert_eq!(r1v["average_customer_value_cents"].as_i64(), Some(mean(&portfolio1)), "{r1v}");
    let (pr, cv) = conv(&portfolio1);
    assert_eq!((pr, cv), (4, 1));
    assert!(close(&r1v["prospect_conversion"], Some(cv as f64 / pr as f64)), "{r1v}");
    assert!(close(&r1v["valuable_customer_churn"], Some(1.0 / 2.0)), "{r1v}");
    // Data accuracy: only P1 has mobile, e-mail and consent and was made within 12 months.
    assert!(close(&r1v["data_accuracy"], Some(1.0 / 7.0)), "{r1v}");
    // Cadence: V2's due 10 May made on time, P1's due 1 May late.
    assert!(close(&r1v["cadence_adherence"], Some(0.5)), "{r1v}");
    // Reviews: all seven current (V1 reviewed 3 May, the others created June 2025: due June 2026).
    assert!(close(&r1v["review_coverage"], Some(1.0)), "{r1v}");
    assert!(close(&r1v["satisfaction"], Some((4.0 + 5.0) / 2.0)), "{r1v}");
    assert!(close(&r1v["on_time_rate"], Some(0.5)), "{r1v}");

    let r2v = row(&may, am2);
    assert_eq!(r2v["customers"].as_i64(), Some(3), "{r2v}");
    assert_eq!(r2v["average_customer_value_cents"].as_i64(), Some(mean(&portfolio2)), "{r2v}");
    let (pr, cv) = conv(&portfolio2);
    assert_eq!((pr, cv), (1, 0));
    assert!(close(&r2v["prospect_conversion"], Some(0.0)), "{r2v}");
    assert!(close(&r2v["valuable_customer_churn"], None), "no A/B customers: {r2v}");
    // V3 complete and recent; L1 complete but stale; P3 incomplete.
    assert!(close(&r2v["data_accuracy"], Some(1.0 / 3.0)), "{r2v}");
    assert!(close(&r2v["cadence_adherence"], Some(0.0)), "{r2v}");
    assert!(close(&r2v["review_coverage"], Some(2.0 / 3.0)), "{r2v}");
    assert!(close(&r2v["satisfaction"], None), "{r2v}");
    assert!(close(&r2v["on_time_rate"], None), "{r2v}");

    // April: R2 was still am2's.
    let (st, april) = app.get("/api/v1/kpis/account-managers?month=2026-04").await;
    assert_eq!(st, 200, "{april}");
    assert_eq!((row(&april, am1)["customers"].as_i64(), row(&april, am2)["customers"].as_i64()), (Some(6), Some(4)), "{april}");

    // The customers behind the numbers.
    let (st, d) = app.get(&format!("/api/v1/kpis/account-managers/{am1}/customers?month=2026-05&kpi=valuable_customer_churn")).await;
    assert_eq!(st, 200, "{d}");
    let mut behind: Vec<(i64, bool)> = d["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["customer_id"].as_i64().unwrap(), r["became_churned"].as_bool().unwrap()))
        .collect();
    behind.sort();
    assert_eq!(behind, vec![(v1, true), (v2, false)], "{d}");
    let (_, d) = app.get(&format!("/api/v1/kpis/account-managers/{am1}/customers?month=2026-05&kpi=prospect_conversion")).await;
    let mut ids: Vec<i64> = d["rows"].as_array().unwrap().iter().map(|r| r["customer_id"].as_i64().unwrap()).collect();
    ids.sort();
    let mut want = vec![p1, p2, r1, r2];
    want.sort();
    assert_eq!(ids, want, "{d}");
    let (_, d) = app.get(&format!("/api/v1/kpis/account-managers/{am2}/customers?month=2026-05&kpi=data_accuracy")).await;
    let l1row = d["rows"].as_array().unwrap().iter().find(|r| r["customer_id"] == l1).unwrap();
    assert_eq!(l1row["data_problems"], json!(["stale"]), "{d}");

    // A reassignment now does not rewrite May (nor June: R1 was am1's when June began).
    let (st, r) = app.post("/api/v1/portfolios/reassign", json!({"from_user_id": am1, "to_user_id": am3, "customer_ids": [r1]})).await;
    assert_eq!(st, 200, "{r}");
    let (_, again) = app.get("/api/v1/kpis/account-managers?month=2026-05").await;
    assert_eq!(again, may, "May unchanged by a later reassignment");
    let (_, june) = app.get("/api/v1/kpis/account-managers?month=2026-06").await;
    assert_eq!(row(&june, am1)["customers"].as_i64(), Some(7), "{june}");
    assert!(june["rows"].as_array().unwrap().iter().all(|r| r["user_id"] != am3), "{june}");

    // Bad input: 400 in the envelope.
    for q in ["month=2026-13", "month=2026-5", "month=2099-01", "month=x"] {
        let (st, e) = app.get(&format!("/api/v1/kpis/account-managers?{q}")).await;
        assert_eq!((st, e["error"]["field"].as_str()), (400, Some("month")), "{q}: {e}");
    }
    let (st, e) = app.get(&format!("/api/v1/kpis/account-managers/{am1}/customers?month=2026-05&kpi=happiness")).await;
    assert_eq!((st, e["error"]["field"].as_str()), (400, Some("kpi")), "{e}");
    // An agent reads the KPIs over the customers in their scope: am1 no longer sees R1.
    let (_, tok) = s.create_token("a", Role::Agent, Some(am1)).await.unwrap();
    let r = app.req_as(&tok, reqwest::Method::GET, "/api/v1/kpis/account-managers?month=2026-05").send().await.unwrap();
    let mine: Value = r.json().await.unwrap();
    let rows = mine["rows"].as_array().unwrap();
    assert_eq!((rows.len(), rows[0]["user_id"].as_i64(), rows[0]["customers"].as_i64()), (1, Some(am1), Some(6)), "{mine}");
});

async fn members(app: &TestApp, rule: &str) -> Vec<i64> {
    let (st, p) = app.post("/api/v1/segments/preview", json!({"rule": rule, "limit": 1000})).await;
    assert_eq!(st, 200, "{rule}: {p}");
    let mut ids: Vec<i64> = p["members"].as_array().unwrap().iter().map(|m| m["id"].as_i64().unwrap()).collect();
    ids.sort();
    ids
}

test_both!(days_overdue_is_a_segment_field_as_the_cadence_list_computes_it, |db: TestDb| async move {
    let app = spawn_app(db).await;
    let s = &app.db.store;
    let am = s.create_user("am@example.com", "客户经理", Role::Agent, None).await.unwrap().id;
    // Created 1 June, every 10 days, never contacted: due 11 June, 19 days overdue on 30 June.
    let late = org(&app, &Org { name: "LA 逾期", owner: am, created: "2026-06-01", complete: false, cadence_days: Some(10) }).await;
    // Created 1 June, contacted 25 June: due 5 July (−5).
    let soon = org(&app, &Org { name: "SO 将到期", owner: am, created: "2026-06-01", complete: false, cadence_days: Some(10) }).await;
    // Created today, the tier's cadence (default 180 days): −180.
    let fresh = org(&app, &Org { name: "FR 新客户", owner: am, created: "2026-06-30", complete: false, cadence_days: None }).await;
    // A person without a team is not a managed account: no value.
    let (st, p) = app.post("/api/v1/customers", json!({"name": "散客", "owner_id": am})).await;
    assert_eq!(st, 201, "{p}");
    let person = p["id"].as_i64().or_else(|| p["customer"]["id"].as_i64()).unwrap();
    app.db.clock.set(noon("2026-06-30"));
    call(&app, soon, "2026-06-25").await;

    let (st, list) = app.get("/api/v1/cadence/overdue").await;
    assert_eq!(st, 200, "{list}");
    let rows = list["rows"].as_array().unwrap();
    assert_eq!((rows.len(), rows[0]["customer_id"].as_i64(), rows[0]["days_overdue"].as_i64()), (1, Some(late), Some(19)), "{list}");

    assert_eq!(members(&app, "days_overdue > 0").await, vec![late]);
    assert_eq!(members(&app, "days_overdue = 19").await, vec![late]);
    assert_eq!(members(&app, "days_overdue >= -5").await, vec![late, soon]);
    let mut neg = vec![soon, fresh];
    neg.sort();
    assert_eq!(members(&app, "days_overdue < 0").await, neg);
    assert_eq!(members(&app, "days_overdue = -180").await, vec![fresh]);
    assert_eq!(members(&app, "days_overdue is null").await, vec![person]);
    assert_eq!(members(&app, "not days_overdue > 0").await.len(), 3, "not is the exact complement");

    // The customer's own cadence changes it at once; a team member's call restarts the cycle.
    let (st, _) = app.patch(&format!("/api/v1/customers/{late}"), json!({"contact_cadence_days": 30})).await;
    assert_eq!(st, 200);
    assert_eq!(members(&app, "days_overdue = -1").await, vec![late]);
    let (st, _) = app.post("/api/v1/segments/preview", json!({"rule": "days_overdue > \"x\""})).await;
    assert_eq!(st, 422);
});

test_both!(the_account_digest_goes_once_per_period_and_recipient, |db: TestDb| async move {
    let app = spawn_app(db).await;
    let s = &app.db.store;
    let am = s.create_user("am@example.com", "客户经理", Role::Agent, None).await.unwrap();
    let svc = s.create_user("svc@example.com", "服务专员", Role::Agent, None).await.unwrap();
    let quiet_owner = s.create_user("q@example.com", "闲", Role::Agent, None).await.unwrap();
    let acme = org(&app, &Org { name: "AC 华东机械", owner: am.id, created: "2026-06-01", complete: true, cadence_days: None }).await;
    let quiet =
        org(&app, &Org { name: "QU 无动态", owner: quiet_owner.id, created: "2026-06-01", complete: true, cadence_days: None }).await;
    let (st, t) = app
        .put(
            &format!("/api/v1/customers/{acme}/team"),
            json!({"members": [{"user_id": am.id, "role": "account_manager"}, {"user_id": svc.id, "role": "service"}]}),
        )
        .await;
    assert_eq!(st, 200, "{t}");
    // Week 26 (22–28 June): praise, an inquiry and a note.
    app.db.clock.set(noon("2026-06-24"));
    for kind in ["praise", "inquiry"] {
        let (st, t) = app.post("/api/v1/tickets", json!({"customer_id": acme, "kind": kind, "channel": "phone", "subject": "交付"})).await;
        assert_eq!(st, 201, "{t}");
    }
    let (st, n) = app.post(&format!("/api/v1/customers/{acme}/notes"), json!({"body": "客户计划扩产"})).await;
    assert!(st == 201 || st == 200, "{n}");

    // Tuesday 30 June: the week's digest, once per recipient, however often the jobs run.
    app.db.clock.set(noon("2026-06-30"));
    assert_eq!(s.run_due_jobs().await.unwrap().accounts.digests, 2);
    assert_eq!(s.run_due_jobs().await.unwrap().accounts.digests, 0);
    for u in [&am, &svc] {
        let n = s.notifications(&patron_store::users::Actor::user(u), false, 100).await.unwrap();
        let d: Vec<_> = n.iter().filter(|n| n.kind == "account_digest").collect();
        assert_eq!(d.len(), 1, "{n:?}");
        assert_eq!(d[0].customer_id, acme);
        assert!(
            d[0].message.contains("Praise received: 1") && d[0].message.contains("New needs (inquiries, suggestions): 1"),
            "{}",
            d[0].message
        );
        assert!(d[0].message.contains("New notes: 1") && d[0].message.contains("Open tickets: 2"), "{}", d[0].message);
    }
    // No news, no digest.
    let n = s.notifications(&patron_store::users::Actor::user(&quiet_owner), false, 100).await.unwrap();
    assert!(n.iter().all(|n| n.kind != "account_digest" || n.customer_id != quiet), "{n:?}");
    // By e-mail through the outbox, to the team member's address (not the customer's).
    let (out, _) = s.claim_due_messages(100, chrono::Duration::minutes(5), "http://patron.test").await.unwrap();
    let mut to: Vec<String> = out.iter().filter(|m| m.customer_id == acme).map(|m| m.address.clone()).collect();
    to.sort();
    assert_eq!(to, vec!["am@example.com".to_owned(), "svc@example.com".to_owned()]);
    assert!(out.iter().all(|m| m.content.subject.as_deref().is_some_and(|s| s.contains("2026-W26"))));

    // Week 27: a late delivery; two schedulers at once make each digest once.
    app.db.clock.set(noon("2026-07-01"));
    let o = order(&app, acme, "2026-06-20", 100_000).await;
    let (st, r) = app
        .post(
            &format!("/api/v1/orders/{o}/fulfilment"),
            json!({"step": "delivered", "at": noon("2026-07-01"), "promised_at": "2026-06-28"}),
        )
        .await;
    assert!(st == 201 || st == 200, "{r}");
    app.db.clock.set(noon("2026-07-07"));
    let (a, b) = tokio::join!(s.run_due_jobs(), s.run_due_jobs());
    assert_eq!(a.unwrap().accounts.digests + b.unwrap().accounts.digests, 2);
    let n = s.notifications(&patron_store::users::Actor::user(&am), false, 100).await.unwrap();
    let d: Vec<_> = n.iter().filter(|n| n.kind == "account_digest").collect();
    assert_eq!(d.len(), 2, "{n:?}");
    assert!(d[0].message.contains("Late fulfilment steps: 1"), "{}", d[0].message);

    // Monthly, or off, by setting.
    let (st, mut set) = app.get("/api/v1/accounts/settings").await;
    assert_eq!((st, set["digest"].as_str()), (200, Some("weekly")), "{set}");
    set["digest"] = json!("daily");
    let (st, e) = app.put("/api/v1/accounts/settings", set.clone()).await;
    assert_eq!((st, e["error"]["field"].as_str()), (422, Some("digest")), "{e}");
    set["digest"] = json!("monthly");
    let (st, _) = app.put("/api/v1/accounts/settings", set).await;
    assert_eq!(st, 200);
    // July's first days: June's digest (the activity of 24 June and 1 July's lateness is July's).
    assert_eq!(s.run_due_jobs().await.unwrap().accounts.digests, 2);
    assert_eq!(s.run_due_jobs().await.unwrap().accounts.digests, 0);
});

test_both!(the_pages_show_kpis_overdue_contacts_people_and_reviews, |db: TestDb| async move {
    use reqwest::Method;
    let app = spawn_app(db).await;
    let s = &app.db.store;
    let am = s.create_user("am@example.com", "周经理", Role::Agent, None).await.unwrap().id;
    let late = org(&app, &Org { name: "LA 逾期公司", owner: am, created: "2026-05-01", complete: true, cadence_days: Some(10) }).await;
    app.db.clock.set(noon("2026-06-30"));
    order(&app, late, "2026-05-10", 50_000).await;
    let (st, c) = app
        .post(&format!("/api/v1/customers/{late}/contacts"), json!({"name": "采购王经理", "role": "采购总监", "interests": "钓鱼"}))
        .await;
    assert!(st == 201 || st == 200, "{c}");
    let contact = c["id"].as_i64().unwrap();
    let cookie = common::ui_session(&app, "mgr@example.com", Role::Manager).await;

    // The KPI dashboard (zh and en), each number linking to its customers, and the trend chart.
    let (st, page) = common::ui(&app, &cookie, Method::GET, "/ui/kpis?month=2026-06&trend=data_accuracy", &[]).await;
    assert_eq!(st, 200, "{page}");
    assert!(page.contains(&format!("kpi-row-{am}")) && page.contains("周经理") && page.contains("资料准确率"), "{page}");
    assert!(page.contains("kpi-trend") && page.contains(&format!("trend-{am}")) && page.contains("2026-01"), "{page}");
    assert!(
        page.contains(&format!("/ui/kpis/{am}?month=2026-06&amp;kpi=data_accuracy"))
            || page.contains(&format!("/ui/kpis/{am}?month=2026-06&kpi=data_accuracy")),
        "{page}"
    );
    let (st, page) = common::ui(&app, &cookie, Method::GET, &format!("/ui/kpis/{am}?month=2026-06&kpi=customers"), &[]).await;
    assert_eq!(st, 200);
    assert!(page.contains("LA 逾期公司") && page.contains("¥500.00"), "{page}");
    let (st, _) = common::ui(&app, &cookie, Method::GET, "/ui/kpis?month=2099-01", &[]).await;
    assert_eq!(st, 400);
    let en = format!("{cookie}; patron_lang=en");
    let (st, page) = common::ui(&app, &en, Method::GET, "/ui/kpis?month=2026-06", &[]).await;
    assert_eq!(st, 200);
    assert!(page.contains("Account-manager KPIs") && page.contains("Cadence adherence"), "{page}");

    // The overdue contacts page, filtered by manager and tier.
    let (st, page) = common::ui(&app, &cookie, Method::GET, &format!("/ui/accounts/overdue?user_id={am}"), &[]).await;
    assert_eq!(st, 200);
    assert!(page.contains("overdue-list") && page.contains("LA 逾期公司") && page.contains("周经理"), "{page}");
    let (st, page) = common::ui(&app, &cookie, Method::GET, "/ui/accounts/overdue?tier=A", &[]).await;
    assert_eq!(st, 200);
    assert!(!page.contains("LA 逾期公司"), "tier filter");
    let (st, _) = common::ui(&app, &cookie, Method::GET, "/ui/accounts/overdue?tier=Z", &[]).await;
    assert_eq!(st, 400);

    // The relationship page: a tie through the people-map editor, a review through the form.
    let (st, page) = common::ui(&app, &cookie, Method::GET, &format!("/ui/customers/{late}/relationship"), &[]).await;
    assert_eq!(st, 200);
    assert!(page.contains("采购王经理") && page.contains("single-threaded") && page.contains("review-form"), "{page}");
    let csrf = common::csrf_of(&page);
    let amid = am.to_string();
    let cid = contact.to_string();
    let (st, _) = common::ui(
        &app,
        &cookie,
        Method::POST,
        &format!("/ui/customers/{late}/relationship/ties"),
        &[
            ("csrf", &csrf),
            ("contact_id", &cid),
            ("user_id", &amid),
            ("strength", "4"),
            ("shared_interests", "钓鱼"),
            ("last_contact_on", "2026-06-20"),
        ],
    )
    .await;
    assert_eq!(st, 303);
    let (_, map) = app.get(&format!("/api/v1/customers/{late}/people")).await;
    assert_eq!((map["ties"].as_i64(), map["people"][0]["ties"][0]["strength"].as_i64()), (Some(1), Some(4)), "{map}");
    let mut review: Vec<(&str, &str)> = vec![("csrf", &csrf), ("note", "交付改善")];
    for q in ["responsiveness", "price", "delivery", "obligations", "complaints", "contract", "sentiment"] {
        review.push((q, "4"));
    }
    let (st, _) = common::ui(&app, &cookie, Method::POST, &format!("/ui/customers/{late}/relationship/reviews"), &review).await;
    assert_eq!(st, 303);
    review.retain(|(k, _)| *k != "price");
    review.push(("price", "6"));
    let (st, _) = common::ui(&app, &cookie, Method::POST, &format!("/ui/customers/{late}/relationship/reviews"), &review).await;
    assert_eq!(st, 422, "a score of 6 is refused");
    let (st, page) = common::ui(&app, &cookie, Method::GET, &format!("/ui/customers/{late}/relationship"), &[]).await;
    assert_eq!(st, 200);
    assert!(page.contains("health-trend") && page.contains("交付改善") && page.contains("钓鱼"), "{page}");
    let (_, reviews) = app.get(&format!("/api/v1/customers/{late}/reviews")).await;
    assert_eq!(reviews["rows"].as_array().map(Vec::len), Some(1), "{reviews}");
});
