//! Holdout validations and the ABCD tiering setting over a real server, on SQLite, PostgreSQL
//! and Citus: the 404 before the first validation, roles, bad input as 422 naming the field, the
//! document's counts against an independent SQL count, and ABCD by value × loyalty checked
//! customer by customer against the rule.

mod analytics_seed;
mod common;

use analytics_seed::{seed, CUSTOMERS};
use common::{error_code, json_of, spawn_app};
use patron_store::db::query;
use patron_store::test_both;
use patron_store::testing::TestDb;
use reqwest::Method;
use serde_json::{json, Value};

/// A base for the models: 300 customers whose first purchases spread over a year, buying at
/// exponentially distributed rates and dropping out after a purchase with their own probability
/// (the BG/NBD story, so that the calibration fit has something to find), imported through the
/// store. Returns an agent's token.
async fn varied_seed(app: &common::TestApp) -> String {
    use patron_store::import::{ImportKind, ImportOptions};
    use patron_store::users::{Actor, Role};
    let store = &app.db.store;
    let agent = store.create_user("agent@example.com", "Agent", Role::Agent, None).await.unwrap();
    let (_, token) = store.create_token("agent", Role::Agent, Some(agent.id)).await.unwrap();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut uniform = move || {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    let start = chrono::NaiveDate::from_ymd_opt(2024, 7, 1).unwrap();
    let end = chrono::NaiveDate::from_ymd_opt(2026, 6, 29).unwrap();
    let mut customers = String::from("customer_id,name\n");
    let mut orders = String::from("order_id,customer_id,ordered_at,amount\n");
    for i in 0..300 {
        customers.push_str(&format!("V{i:03},客户{i:03}\n"));
        let rate = -uniform().ln() / 25.0; // purchases per day, mean one in 25 days
        let dropout = 0.4 * uniform();
        let mut day = start + chrono::Duration::days((uniform() * 365.0) as i64);
        let mut k = 0;
        while day <= end {
            orders.push_str(&format!("W{i:03}-{k},V{i:03},{day} 12:00:00,{:.2}\n", 20.0 + 200.0 * uniform()));
            k += 1;
            if uniform() < dropout {
                break;
            }
            day += chrono::Duration::days(1 + (-uniform().ln() / rate) as i64);
        }
    }
    for (kind, text) in [(ImportKind::Customers, customers), (ImportKind::Orders, orders)] {
        let r = store
            .import(&Actor::cli(), Box::new(std::io::Cursor::new(text.into_bytes())), &ImportOptions::new(kind, "seed.csv"), &|_| {})
            .await
            .unwrap();
        assert!(r.committed, "{:?}", r.rejections);
    }
    token
}

test_both!(validations_roles_bad_input_and_counts, |db: TestDb| async move {
    let app = spawn_app(db).await;
    let agent = varied_seed(&app).await;

    let (s, b) = app.get("/api/v1/analytics/validations/latest").await;
    assert_eq!((s, error_code(&b).as_str()), (404, "not_found"), "{b}");
    let body = json!({"calibration_end": "2025-12-31"});
    let (s, b) = json_of(app.req_as(&agent, Method::POST, "/api/v1/analytics/validations").json(&body).send().await.unwrap()).await;
    assert_eq!((s, error_code(&b).as_str()), (403, "forbidden"));

    // The test clock's today is 2026-06-30.
    for (body, field) in [
        (json!({"calibration_end": "2025-13-01"}), "calibration_end"),
        (json!({"calibration_end": "31.12.2025"}), "calibration_end"),
        (json!({"calibration_end": "2025-12-31", "holdout_end": "2025-06-30"}), "holdout_end"),
        (json!({"calibration_end": "2025-12-31", "holdout_end": "2025-12-31"}), "holdout_end"),
        (json!({"calibration_end": "2025-12-31", "holdout_end": "2026-07-01"}), "holdout_end"),
        (json!({"calibration_end": "2025-12-31", "time_unit": "months"}), "time_unit"),
        // Nobody had bought by then: a calibration period without customers.
        (json!({"calibration_end": "2024-06-30"}), "calibration_end"),
    ] {
        let (s, b) = app.post("/api/v1/analytics/validations", body.clone()).await;
        assert_eq!((s, b["error"]["field"].as_str()), (422, Some(field)), "{body}: {b}");
        assert!(!b["error"]["message"].as_str().unwrap_or_default().is_empty());
    }
    let (s, b) = app.post("/api/v1/analytics/validations", json!({"calibration_end": "2025-12-31", "as_of": "x"})).await;
    assert!(s == 400 || s == 422, "{s} {b}");

    let (s, v) = app.post("/api/v1/analytics/validations", json!({"calibration_end": "2025-12-31"})).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(
        (v["calibration_end"].as_str(), v["holdout_end"].as_str(), v["time_unit"].as_str()),
        (Some("2025-12-31"), Some("2026-06-30"), Some("days"))
    );
    assert_eq!(v["holdout_length"], 181.0);
    // Independent counts: the base (first completed order on or before the calibration end)
    // and its purchase days in the holdout.
    let store = &app.db.store;
    let (cal, hold) = (
        patron_analytics::day_number(chrono::NaiveDate::from_ymd_opt(2025, 12, 31).unwrap()),
        patron_analytics::day_number(chrono::NaiveDate::from_ymd_opt(2026, 6, 30).unwrap()),
    );
    let (base,): (i64,) = store
        .db
        .reader()
        .fetch_one(query("SELECT COUNT(DISTINCT customer_id) FROM orders WHERE status = 'completed' AND ordered_day <= $1").bind(cal))
        .await
        .unwrap();
    let days: Vec<(i64, i64)> = store
        .db
        .reader()
        .fetch_all(
            query("SELECT DISTINCT customer_id, ordered_day FROM orders WHERE status = 'completed' AND ordered_day <= $1").bind(hold),
        )
        .await
        .unwrap();
    let first = |c: i64| days.iter().filter(|d| d.0 == c).map(|d| d.1).min();
    let holdout = days.iter().filter(|d| d.1 > i64::from(cal) && first(d.0).is_some_and(|f| f <= i64::from(cal))).count();
    assert!(base > 20 && holdout > 10, "the seed has a base and a holdout: {base} {holdout}");
    assert_eq!(v["customers"].as_i64(), Some(base));
    assert_eq!(v["total"]["actual"].as_f64(), Some(holdout as f64));
    let buckets = v["by_frequency"].as_array().unwrap();
    assert_eq!(buckets.iter().map(|b| b["frequency"].as_u64().unwrap()).collect::<Vec<_>>(), (0..8).collect::<Vec<_>>());
    assert_eq!(buckets.iter().map(|b| b["customers"].as_i64().unwrap()).sum::<i64>(), base);
    let predicted: f64 = buckets.iter().filter_map(|b| Some(b["predicted_mean"].as_f64()? * b["customers"].as_f64()?)).sum();
    assert!((predicted - v["total"]["predicted"].as_f64().unwrap()).abs() < 1e-9 * predicted.max(1.0));
    let hist = v["calibration_histogram"].as_array().unwrap();
    let expected: f64 = hist.iter().map(|b| b["expected_customers"].as_f64().unwrap()).sum();
    assert!((expected - base as f64).abs() < 1e-6);
    let repeat: i64 = v["tracking"].as_array().unwrap().iter().map(|w| w["actual"].as_i64().unwrap()).sum();
    // Every purchase day of the base but its first: the tracking's actual counts.
    let base_days = days.iter().filter(|d| first(d.0).is_some_and(|f| f <= i64::from(cal))).count() as i64;
    assert_eq!(repeat, base_days - base);
    for key in ["bgnbd", "total", "spend", "errors"] {
        assert!(v[key].is_object(), "{key}: {v}");
    }
    assert!(v["id"].as_i64().is_some() && v["created_at"].is_string());

    // The latest, for every role that reads analytics.
    let (s, latest) = json_of(app.req_as(&agent, Method::GET, "/api/v1/analytics/validations/latest").send().await.unwrap()).await;
    assert_eq!(s, 200);
    assert_eq!(latest, v);
    // A calibration period on which the fit runs off to the edge of the parameter space (here
    // a, b → ∞: no drop-out heterogeneity to find by then) is refused, naming the cause.
    let (s, b) = app.post("/api/v1/analytics/validations", json!({"calibration_end": "2025-09-30", "time_unit": "weeks"})).await;
    assert_eq!((s, b["error"]["field"].as_str()), (422, Some("calibration_end")), "{b}");
    assert!(b["error"]["message"].as_str().unwrap_or_default().contains("no fit on the calibration period"), "{b}");
    let body = json!({"calibration_end": "2025-12-31", "holdout_end": "2026-03-31", "time_unit": "days"});
    let (s, v2) = app.post("/api/v1/analytics/validations", body).await;
    assert_eq!(s, 201, "{v2}");
    assert_eq!(v2["holdout_length"], 90.0);
    // The same calibration fit; a shorter holdout holds fewer purchase days.
    assert_eq!(v2["bgnbd"], v["bgnbd"]);
    assert!(v2["total"]["actual"].as_f64().unwrap() <= v["total"]["actual"].as_f64().unwrap());
    let (_, latest) = app.get("/api/v1/analytics/validations/latest").await;
    assert_eq!(latest["id"], v2["id"]);
});

test_both!(abcd_by_value_and_loyalty_follows_the_setting, |db: TestDb| async move {
    let app = spawn_app(db).await;
    let (agent, _) = seed(&app).await;
    let (s, d) = app.get("/api/v1/analytics/abcd/settings").await;
    assert_eq!((s, d), (200, json!({"abcd_basis": "value", "high_value_percent": 40, "high_loyalty_percentile": 50.0})));
    let setting = json!({"abcd_basis": "value_loyalty", "high_value_percent": 40, "high_loyalty_percentile": 50.0});
    let (s, _) = json_of(app.req_as(&agent, Method::PUT, "/api/v1/analytics/abcd/settings").json(&setting).send().await.unwrap()).await;
    assert_eq!(s, 403);
    for (body, field) in [
        (json!({"abcd_basis": "loyalty"}), "abcd_basis"),
        (json!({"abcd_basis": "value_loyalty", "high_value_percent": 0}), "high_value_percent"),
        (json!({"abcd_basis": "value_loyalty", "high_loyalty_percentile": 100}), "high_loyalty_percentile"),
    ] {
        let (s, b) = app.put("/api/v1/analytics/abcd/settings", body.clone()).await;
        assert_eq!((s, b["error"]["field"].as_str()), (422, Some(field)), "{body}: {b}");
    }

    // Today's ranking first, then the setting.
    let (s, run) = app.post("/api/v1/analytics/runs", json!({})).await;
    assert_eq!(s, 201, "{run}");
    assert_eq!(run["report"]["abcd_definition"]["basis"], "value");
    assert_eq!(run["report"]["abcd_definition"]["cut_percent"], json!([20, 50, 80]));
    let (s, b) = app.put("/api/v1/analytics/abcd/settings", setting.clone()).await;
    assert_eq!((s, &b), (200, &setting));
    let (s, run) = app.post("/api/v1/analytics/runs", json!({})).await;
    assert_eq!(s, 201, "{run}");
    let def = &run["report"]["abcd_definition"];
    assert_eq!(
        (def["basis"].as_str(), def["value"].as_str(), def["high_value_percent"].as_u64()),
        (Some("value_loyalty"), Some("trailing_spend"), Some(40))
    );
    let threshold = def["high_loyalty_index"].as_f64().expect("a loyalty threshold");

    // Every customer's tier against the rule, from their own scores: high value = the top 40%
    // by trailing spend (a tie takes the lower side), high loyalty = index ≥ the median.
    let (_, page) = app.get("/api/v1/customers?limit=200").await;
    let ids: Vec<i64> = page["items"].as_array().unwrap().iter().map(|c| c["id"].as_i64().unwrap()).collect();
    assert_eq!(ids.len(), CUSTOMERS);
    let mut rows = Vec::new();
    for id in ids {
        let (s, sc) = app.get(&format!("/api/v1/customers/{id}/scores")).await;
        assert_eq!(s, 200, "{sc}");
        rows.push(sc);
    }
    let ranked: Vec<&Value> = rows.iter().filter(|r| r["purchase_days"].as_i64().unwrap() > 0).collect();
    let n = ranked.len() as i64;
    let mut indices: Vec<f64> = ranked.iter().filter_map(|r| r["loyalty_index"].as_f64()).collect();
    indices.sort_by(f64::total_cmp);
    let m = indices.len();
    let median = if m % 2 == 1 { indices[m / 2] } else { (indices[m / 2 - 1] + indices[m / 2]) / 2.0 };
    assert!((median - threshold).abs() < 1e-9, "{median} vs {threshold}");
    let mut counts = std::collections::BTreeMap::new();
    for r in &ranked {
        let spend = r["trailing_spend_cents"].as_i64().unwrap();
        let below = ranked.iter().filter(|o| o["trailing_spend_cents"].as_i64().unwrap() < spend).count() as i64;
        let high_value = below * 100 >= 60 * n;
        let high_loyalty = r["loyalty_index"].as_f64().is_some_and(|l| l >= threshold);
        let want = match (high_value, high_loyalty) {
            (true, true) => "A",
            (true, false) => "B",
            (false, true) => "C",
            (false, false) => "D",
        };
        assert_eq!(r["abcd_tier"].as_str(), Some(want), "{r}");
        *counts.entry(want).or_insert(0u64) += 1;
    }
    assert!(counts.len() == 4, "all four cells occur in the seed: {counts:?}");
    for t in run["report"]["abcd"].as_array().unwrap() {
        assert_eq!(t["customers"].as_u64(), counts.get(t["tier"].as_str().unwrap()).copied(), "{t}");
    }
    let shares: f64 = run["report"]["abcd"].as_array().unwrap().iter().map(|t| t["revenue_share"].as_f64().unwrap()).sum();
    assert!((shares - 1.0).abs() < 1e-9);
    assert!(rows.iter().filter(|r| r["purchase_days"].as_i64().unwrap() == 0).all(|r| r["abcd_tier"].is_null()));
});
