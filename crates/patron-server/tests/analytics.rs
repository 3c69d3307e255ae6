//! The analytics and segments API over a real server on loopback, on SQLite and PostgreSQL:
//! runs, the dashboard aggregates, per-customer scores with their reason, portfolio scoping,
//! roles, and saved / built-in segments with preview, members and CSV export.

mod analytics_seed;
mod common;

use analytics_seed::{seed, CUSTOMERS};
use common::{error_code, json_of, spawn_app, TestApp};
use patron_store::test_both;
use patron_store::testing::TestDb;
use patron_store::users::Role;
use reqwest::Method;
use serde_json::{json, Value};

async fn customer_id(app: &TestApp, external: &str) -> i64 {
    let (_, page) = app.get(&format!("/api/v1/customers?q={external}")).await;
    page["items"][0]["id"].as_i64().unwrap()
}

fn sum(v: &Value, key: &str) -> i64 {
    v.as_array().unwrap().iter().map(|g| g[key].as_i64().unwrap()).sum()
}

test_both!(runs_overview_scores_and_roles, |db: TestDb| async move {
    let app = spawn_app(db).await;
    let (agent, agent_id) = seed(&app).await;
    let prospect = customer_id(&app, "C010").await;
    let one_timer = customer_id(&app, "C011").await;
    let repeat = customer_id(&app, "C012").await;

    // Before any run: 404s with the envelope, and an empty overview.
    let (s, b) = app.get("/api/v1/analytics/runs/latest").await;
    assert_eq!((s, error_code(&b).as_str()), (404, "not_found"));
    let (s, b) = app.get(&format!("/api/v1/customers/{repeat}/scores")).await;
    assert_eq!((s, error_code(&b).as_str()), (404, "not_found"));
    let (s, o) = app.get("/api/v1/analytics/overview").await;
    assert_eq!(s, 200, "{o}");
    assert!(o["run"].is_null());
    assert_eq!(o["scored_customers"], 0);
    let (_, c360) = app.get(&format!("/api/v1/customers/{repeat}")).await;
    assert!(c360["scores"].is_null(), "{c360}");

    // Only managers and admins start runs; bad settings are 422 naming the field.
    let (s, b) = json_of(app.req_as(&agent, Method::POST, "/api/v1/analytics/runs").json(&json!({})).send().await.unwrap()).await;
    assert_eq!((s, error_code(&b).as_str()), (403, "forbidden"));
    for (body, field) in [
        (json!({"as_of": "2026-07-01"}), "as_of"),
        (json!({"as_of": "yesterday"}), "as_of"),
        (json!({"time_unit": "months"}), "time_unit"),
        (json!({"horizon_days": 0}), "horizon_days"),
        (json!({"monthly_discount": 2.0}), "monthly_discount"),
    ] {
        let (s, b) = app.post("/api/v1/analytics/runs", body.clone()).await;
        assert_eq!((s, b["error"]["field"].as_str()), (422, Some(field)), "{body}: {b}");
    }
    let (s, b) = app.post("/api/v1/analytics/runs", json!({"nope": 1})).await;
    assert!(s == 400 || s == 422, "{s} {b}");
    error_code(&b);

    // A manager runs it (as of today on the test clock).
    let (_, manager) = app.db.store.create_token("m", Role::Manager, None).await.unwrap();
    let (s, run) = json_of(app.req_as(&manager, Method::POST, "/api/v1/analytics/runs").json(&json!({})).send().await.unwrap()).await;
    assert_eq!(s, 201, "{run}");
    assert_eq!(run["as_of"], "2026-06-30");
    assert_eq!(run["customers"], CUSTOMERS as i64);
    let bg = &run["report"]["bgnbd"];
    assert!(bg["r"].as_f64().unwrap() > 0.0 && bg["alpha"].as_f64().unwrap() > 0.0, "{}", run["report"]);
    assert!(run["report"]["gamma_gamma"]["gamma"].as_f64().is_some(), "{}", run["report"]);
    let (s, latest) = app.get("/api/v1/analytics/runs/latest").await;
    assert_eq!(s, 200);
    assert_eq!(latest["id"], run["id"]);

    // The overview adds up: every customer has a lifecycle stage; the histograms count the buyers.
    let (_, o) = app.get("/api/v1/analytics/overview").await;
    assert_eq!(o["run"]["id"], run["id"]);
    assert_eq!(o["scored_customers"], CUSTOMERS as i64);
    assert_eq!(sum(&o["lifecycle"], "customers"), CUSTOMERS as i64, "{}", o["lifecycle"]);
    let prospects = o["lifecycle"].as_array().unwrap().iter().find(|g| g["key"] == "prospect").unwrap()["customers"].as_i64().unwrap();
    assert_eq!(prospects, (CUSTOMERS / 10) as i64);
    let buyers = CUSTOMERS as i64 - prospects;
    assert_eq!(sum(&o["p_alive_histogram"], "customers"), buyers);
    assert_eq!(sum(&o["clv_histogram"], "customers"), buyers);
    assert!(sum(&o["rfm_classes"], "customers") <= buyers);
    assert!(sum(&o["abcd_tiers"], "customers") <= buyers);
    for g in o["churn_by_tier"].as_array().unwrap().iter().chain(o["churn_by_rfm_class"].as_array().unwrap()) {
        assert!(g["absolute"].as_i64().unwrap() + g["relative"].as_i64().unwrap() <= g["customers"].as_i64().unwrap(), "{g}");
    }
    let tier_revenue: i64 = sum(&o["abcd_tiers"], "revenue_cents");
    assert!(tier_revenue > 0);

    // Scores with a reason: zh by default, en on request; prospects and one-time buyers read right.
    let (s, sc) = app.get(&format!("/api/v1/customers/{repeat}/scores")).await;
    assert_eq!(s, 200, "{sc}");
    assert_eq!(sc["as_of"], "2026-06-30");
    assert!(sc["p_alive"].as_f64().is_some() && sc["rfm_class"].is_string(), "{sc}");
    assert!(sc["reason"].as_str().unwrap().starts_with("存活概率"), "{sc}");
    let (_, sc) = app.get(&format!("/api/v1/customers/{repeat}/scores?lang=en")).await;
    let reason = sc["reason"].as_str().unwrap();
    assert!(reason.starts_with("P(alive)") && reason.contains("last purchase"), "{reason}");
    assert!(
        reason.contains(&format!("{} days ago", sc["days_since_last_purchase"]))
            || reason.contains("today")
            || reason.contains("1 day ago"),
        "{reason}"
    );
    let (_, sc) = app.get(&format!("/api/v1/customers/{prospect}/scores?lang=en")).await;
    assert_eq!(sc["lifecycle"], "prospect");
    assert!(sc["reason"].as_str().unwrap().starts_with("No purchase yet"), "{sc}");
    let (_, sc) = app.get(&format!("/api/v1/customers/{one_timer}/scores?lang=en")).await;
    assert!(sc["reason"].as_str().unwrap().contains("only one purchase"), "{sc}");
    let (s, b) = app.get(&format!("/api/v1/customers/{repeat}/scores?lang=fr")).await;
    assert_eq!((s, b["error"]["field"].as_str()), (400, Some("lang")));
    let (s, _) = app.get("/api/v1/customers/999999/scores").await;
    assert_eq!(s, 404);
    // The 360 carries the scores too.
    let (_, c360) = app.get(&format!("/api/v1/customers/{repeat}?lang=en")).await;
    assert!(c360["scores"]["reason"].as_str().unwrap().starts_with("P(alive)"), "{c360}");

    // Agents see their own portfolio only.
    let (_, mine) = app.get(&format!("/api/v1/customers?owner_id={agent_id}&limit=1000")).await;
    let mine: Vec<i64> = mine["items"].as_array().unwrap().iter().map(|c| c["id"].as_i64().unwrap()).collect();
    assert_eq!(mine.len(), CUSTOMERS / 3);
    let (_, o) = json_of(app.req_as(&agent, Method::GET, "/api/v1/analytics/overview").send().await.unwrap()).await;
    assert_eq!(o["scored_customers"], (CUSTOMERS / 3) as i64, "{o}");
    assert_eq!(sum(&o["lifecycle"], "customers"), (CUSTOMERS / 3) as i64);
    let (s, _) = json_of(app.req_as(&agent, Method::GET, &format!("/api/v1/customers/{}/scores", mine[0])).send().await.unwrap()).await;
    assert_eq!(s, 200);
    let (s, b) = json_of(app.req_as(&agent, Method::GET, &format!("/api/v1/customers/{one_timer}/scores")).send().await.unwrap()).await;
    assert_eq!((s, error_code(&b).as_str()), (404, "not_found"), "C011 belongs to the other agent: outside the scope it does not exist");
    let (s, _) = json_of(app.req_as(&agent, Method::GET, "/api/v1/analytics/runs/latest").send().await.unwrap()).await;
    assert_eq!(s, 200);

    // A run as of an earlier date is reproducible and becomes the latest.
    let (s, run2) =
        app.post("/api/v1/analytics/runs", json!({"as_of": "2026-01-31", "time_unit": "weeks", "horizon_days": 91, "clv_months": 6})).await;
    assert_eq!(s, 201, "{run2}");
    assert_eq!(run2["as_of"], "2026-01-31");
    assert_eq!(run2["report"]["time_unit"], "weeks");
    let (_, sc) = app.get(&format!("/api/v1/customers/{repeat}/scores")).await;
    assert_eq!(sc["as_of"], "2026-01-31");
});

test_both!(openapi_lists_the_analytics_paths, |db: TestDb| async move {
    let app = spawn_app(db).await;
    let (s, doc) = app.get("/api/v1/openapi.json").await;
    assert_eq!(s, 200);
    for p in [
        "/api/v1/analytics/overview",
        "/api/v1/analytics/runs/latest",
        "/api/v1/analytics/runs",
        "/api/v1/customers/{id}/scores",
        "/api/v1/analytics/migration",
        "/api/v1/analytics/cohorts",
        "/api/v1/analytics/trends",
        "/api/v1/analytics/history/settings",
        "/api/v1/segments/{key}/sizes",
    ] {
        assert!(doc["paths"][p].is_object(), "OpenAPI lacks {p}");
    }
    assert!(doc["paths"]["/api/v1/analytics/runs"]["get"].is_object() && doc["paths"]["/api/v1/analytics/runs"]["post"].is_object());
    for schema in [
        "Overview",
        "GroupStat",
        "ChurnStat",
        "Bucket",
        "AnalysisRun",
        "CustomerScores",
        "RunRequest",
        "RunInfo",
        "Migration",
        "MigrationCell",
        "CohortReport",
        "Cohort",
        "TrendReport",
        "TrendMonth",
        "HistorySettings",
        "SegmentSize",
    ] {
        assert!(doc["components"]["schemas"][schema].is_object(), "OpenAPI lacks the schema {schema}");
    }
});

/// Customers (id, city, owner) and their P(alive), read through the customers and scores APIs —
/// an evaluation of rules that shares no code with the segment compiler.
async fn scored_customers(app: &TestApp) -> Vec<(i64, String, Option<i64>, Option<f64>, Option<String>)> {
    let (_, page) = app.get("/api/v1/customers?limit=1000").await;
    let mut out = Vec::new();
    for c in page["items"].as_array().unwrap() {
        let id = c["id"].as_i64().unwrap();
        let (s, sc) = app.get(&format!("/api/v1/customers/{id}/scores")).await;
        assert_eq!(s, 200, "{sc}");
        out.push((
            id,
            c["city"].as_str().unwrap_or("").to_owned(),
            c["owner_id"].as_i64(),
            sc["p_alive"].as_f64(),
            sc["rfm_class"].as_str().map(str::to_owned),
        ));
    }
    out
}

test_both!(segments_preview_crud_and_export, |db: TestDb| async move {
    let app = spawn_app(db).await;
    let (agent, agent_id) = seed(&app).await;
    let (s, _) = app.post("/api/v1/analytics/runs", json!({})).await;
    assert_eq!(s, 201);
    let (_, manager) = app.db.store.create_token("m", Role::Manager, None).await.unwrap();
    let rows = scored_customers(&app).await;

    // Preview: the live count equals an independent count, with the first 20 members.
    let rule = r#"p_alive < 0.5 and city in ("上海", "杭州")"#;
    let expected = rows.iter().filter(|r| r.3.is_some_and(|p| p < 0.5) && (r.1 == "上海" || r.1 == "杭州")).count() as i64;
    assert!(expected > 0, "the seed should have customers slipping away in 上海/杭州");
    let (s, p) = app.post("/api/v1/segments/preview", json!({ "rule": rule })).await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(p["count"], expected);
    assert_eq!(p["members"].as_array().unwrap().len() as i64, expected.min(20));
    // Chinese labels work as values; an agent counts within their portfolio.
    let wb = rows.iter().filter(|r| r.4.as_deref() == Some("important_win_back")).count() as i64;
    let (_, p) = app.post("/api/v1/segments/preview", json!({ "rule": "rfm_class = \"重要挽留\"", "limit": 0 })).await;
    assert_eq!((p["count"].as_i64(), p["members"].as_array().unwrap().len()), (Some(wb), 0));
    let mine =
        rows.iter().filter(|r| r.2 == Some(agent_id) && r.3.is_some_and(|p| p < 0.5) && (r.1 == "上海" || r.1 == "杭州")).count() as i64;
    let (s, p) =
        json_of(app.req_as(&agent, Method::POST, "/api/v1/segments/preview").json(&json!({ "rule": rule })).send().await.unwrap()).await;
    assert_eq!((s, p["count"].as_i64()), (200, Some(mine)), "{p}");
    assert!(p["members"].as_array().unwrap().iter().all(|m| m["owner_id"] == agent_id));

    // A rule problem is 422 on field "rule" with its position.
    let (s, b) = app.post("/api/v1/segments/preview", json!({ "rule": "p_alive <" })).await;
    assert_eq!((s, error_code(&b).as_str(), b["error"]["field"].as_str()), (422, "invalid", Some("rule")), "{b}");
    assert!(b["error"]["message"].as_str().unwrap().starts_with("column 10:"), "{b}");
    let (s, b) = app.post("/api/v1/segments/preview", json!({ "rule": "citty = \"上海\"" })).await;
    assert_eq!((s, b["error"]["field"].as_str()), (422, Some("rule")));
    assert!(b["error"]["message"].as_str().unwrap().contains("did you mean \"city\""), "{b}");
    let (s, b) = app.post("/api/v1/segments/preview", json!({ "rule": "city = \"上海\"", "limit": 5000 })).await;
    assert_eq!((s, b["error"]["field"].as_str()), (422, Some("limit")), "a value in a body is unprocessable, not a bad request");

    // Saved segments: managers create, names are unique, agents may not write.
    let body = json!({"name": "上海杭州流失风险", "description": "win-back list", "rule": rule});
    let (s, b) = json_of(app.req_as(&agent, Method::POST, "/api/v1/segments").json(&body).send().await.unwrap()).await;
    assert_eq!((s, error_code(&b).as_str()), (403, "forbidden"));
    let (s, seg) = json_of(app.req_as(&manager, Method::POST, "/api/v1/segments").json(&body).send().await.unwrap()).await;
    assert_eq!(s, 201, "{seg}");
    assert_eq!(seg["count"], expected);
    let key = seg["key"].as_str().unwrap().to_owned();
    let (s, b) = app.post("/api/v1/segments", body.clone()).await;
    assert_eq!((s, error_code(&b).as_str()), (409, "conflict"), "{b}");
    let (s, b) = app.post("/api/v1/segments", json!({"name": "broken", "rule": "clv >"})).await;
    assert_eq!((s, b["error"]["field"].as_str()), (422, Some("rule")));
    let (s, one) = app.get(&format!("/api/v1/segments/{key}")).await;
    assert_eq!((s, one["count"].as_i64(), one["rule"].as_str()), (200, Some(expected), Some(rule)));
    let (s, one) = json_of(app.req_as(&agent, Method::GET, &format!("/api/v1/segments/{key}")).send().await.unwrap()).await;
    assert_eq!((s, one["count"].as_i64()), (200, Some(mine)));
    let (s, list) = app.get("/api/v1/segments?counts=true").await;
    assert_eq!(s, 200);
    let list = list.as_array().unwrap();
    assert!(list.iter().any(|x| x["key"] == key.as_str() && x["count"] == expected));
    let wb_builtin = list.iter().find(|x| x["key"] == "builtin:rfm:important_win_back").unwrap();
    assert_eq!((wb_builtin["builtin"].as_bool(), wb_builtin["count"].as_i64()), (Some(true), Some(wb)));
    let (_, saved_only) = app.get("/api/v1/segments?kind=saved").await;
    assert_eq!(saved_only.as_array().unwrap().len(), 1);

    // Update: rename, a bad rule, a taken name; built-ins are read-only.
    let (_, other) = app.post("/api/v1/segments", json!({"name": "上海", "rule": "city = \"上海\""})).await;
    let (s, b) =
        json_of(app.req(Method::PUT, &format!("/api/v1/segments/{key}")).json(&json!({"name": "流失风险"})).send().await.unwrap()).await;
    assert_eq!((s, b["name"].as_str()), (200, Some("流失风险")), "{b}");
    let (s, b) =
        json_of(app.req(Method::PUT, &format!("/api/v1/segments/{key}")).json(&json!({"rule": "p_alive < \"x\""})).send().await.unwrap())
            .await;
    assert_eq!((s, b["error"]["field"].as_str()), (422, Some("rule")), "{b}");
    let (s, b) =
        json_of(app.req(Method::PUT, &format!("/api/v1/segments/{key}")).json(&json!({"name": "上海"})).send().await.unwrap()).await;
    assert_eq!((s, error_code(&b).as_str()), (409, "conflict"), "{b}");
    for method in [Method::PUT, Method::DELETE] {
        let (s, b) =
            json_of(app.req(method, "/api/v1/segments/builtin:rfm:important_win_back").json(&json!({"name": "x"})).send().await.unwrap())
                .await;
        assert_eq!((s, error_code(&b).as_str()), (409, "read_only"), "{b}");
    }
    let (s, b) = app.get("/api/v1/segments/builtin:rfm:nothing").await;
    assert_eq!((s, error_code(&b).as_str()), (404, "not_found"));

    // Members and CSV export (header + one line per member).
    let (s, m) = app.get(&format!("/api/v1/segments/{key}/members?limit=5")).await;
    assert_eq!((s, m["count"].as_i64(), m["members"].as_array().unwrap().len() as i64), (200, Some(expected), expected.min(5)));
    let r = app.req(Method::GET, &format!("/api/v1/segments/{key}/export")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    assert!(r.headers()["content-disposition"].to_str().unwrap().contains(".csv"));
    let text = r.text().await.unwrap();
    assert_eq!(text.lines().count() as i64, expected + 1, "{text}");
    let r = app.req(Method::GET, "/api/v1/segments/builtin:rfm:important_win_back/export").send().await.unwrap();
    assert_eq!(r.text().await.unwrap().lines().count() as i64, wb + 1);
    let (s, b) = json_of(app.req_as(&agent, Method::GET, &format!("/api/v1/segments/{key}/export")).send().await.unwrap()).await;
    assert_eq!((s, error_code(&b).as_str()), (403, "forbidden"));

    // Delete.
    let (s, _) = json_of(app.req_as(&agent, Method::DELETE, &format!("/api/v1/segments/{key}")).send().await.unwrap()).await;
    assert_eq!(s, 403);
    let (s, _) = json_of(app.req(Method::DELETE, &format!("/api/v1/segments/{key}")).send().await.unwrap()).await;
    assert_eq!(s, 204);
    let (s, b) = app.get(&format!("/api/v1/segments/{key}")).await;
    assert_eq!((s, error_code(&b).as_str()), (404, "not_found"));
    let (s, _) =
        json_of(app.req(Method::DELETE, &format!("/api/v1/segments/{}", other["key"].as_str().unwrap())).send().await.unwrap()).await;
    assert_eq!(s, 204);
    let (s, fields) = app.get("/api/v1/segments/fields").await;
    assert_eq!(s, 200);
    assert!(fields.as_array().unwrap().iter().any(|f| f["name"] == "p_alive"));
});

test_both!(openapi_lists_the_segment_paths, |db: TestDb| async move {
    let app = spawn_app(db).await;
    let (_, doc) = app.get("/api/v1/openapi.json").await;
    for p in [
        "/api/v1/segments",
        "/api/v1/segments/preview",
        "/api/v1/segments/fields",
        "/api/v1/segments/{key}",
        "/api/v1/segments/{key}/members",
        "/api/v1/segments/{key}/export",
    ] {
        assert!(doc["paths"][p].is_object(), "OpenAPI lacks {p}");
    }
    for m in ["get", "put", "delete"] {
        assert!(doc["paths"]["/api/v1/segments/{key}"][m].is_object(), "OpenAPI lacks {m} /segments/{{key}}");
    }
    for schema in ["Segment", "SegmentWithCount", "SegmentMembers", "SegmentMember", "PreviewRequest", "NewSegment", "SegmentPatch"] {
        assert!(doc["components"]["schemas"][schema].is_object(), "OpenAPI lacks the schema {schema}");
    }
});

/// Every customer's value of `key` in the latest scores (`none` without one), by id.
async fn latest_values(app: &TestApp, key: &str) -> std::collections::BTreeMap<i64, (String, i64, Option<i64>)> {
    let (_, page) = app.get("/api/v1/customers?limit=1000").await;
    let mut out = std::collections::BTreeMap::new();
    for c in page["items"].as_array().unwrap() {
        let id = c["id"].as_i64().unwrap();
        let (s, sc) = app.get(&format!("/api/v1/customers/{id}/scores")).await;
        assert_eq!(s, 200, "{sc}");
        let v = sc[key].as_str().unwrap_or("none").to_owned();
        out.insert(id, (v, sc["trailing_spend_cents"].as_i64().unwrap(), c["owner_id"].as_i64()));
    }
    out
}

test_both!(score_history_migration_and_segment_sizes_over_http, |db: TestDb| async move {
    let app = spawn_app(db).await;
    let (agent, agent_id) = seed(&app).await;
    let (_, runs) = app.get("/api/v1/analytics/runs").await;
    assert_eq!(runs, json!([]));
    let (s, b) = app.get("/api/v1/analytics/migration").await;
    assert_eq!((s, error_code(&b).as_str()), (404, "not_found"), "{b}");
    let (s, seg) = app.post("/api/v1/segments", json!({"name": "A 类", "rule": "abcd_tier = \"A\""})).await;
    assert_eq!(s, 201, "{seg}");

    let (s, run1) = app.post("/api/v1/analytics/runs", json!({"as_of": "2026-01-31"})).await;
    assert_eq!(s, 201, "{run1}");
    let tiers1 = latest_values(&app, "abcd_tier").await;
    let classes1 = latest_values(&app, "rfm_class").await;
    let (s, run2) = app.post("/api/v1/analytics/runs", json!({})).await;
    assert_eq!(s, 201, "{run2}");
    let tiers2 = latest_values(&app, "abcd_tier").await;
    let classes2 = latest_values(&app, "rfm_class").await;
    let (r1, r2) = (run1["id"].as_i64().unwrap(), run2["id"].as_i64().unwrap());

    let (s, runs) = app.get("/api/v1/analytics/runs").await;
    assert_eq!(s, 200, "{runs}");
    let listed: Vec<(i64, &str, bool)> =
        runs.as_array().unwrap().iter().map(|r| (r["id"].as_i64().unwrap(), r["as_of"].as_str().unwrap(), r["history"] == true)).collect();
    assert_eq!(listed, vec![(r2, "2026-06-30", true), (r1, "2026-01-31", true)]);
    assert_eq!(runs[0]["customers"], CUSTOMERS as i64);

    // The matrix against the scores read customer by customer after each run.
    type Cells = std::collections::BTreeMap<(String, String), (i64, i64)>;
    let expect = |a: &std::collections::BTreeMap<i64, (String, i64, Option<i64>)>,
                  b: &std::collections::BTreeMap<i64, (String, i64, Option<i64>)>,
                  owner: Option<i64>|
     -> Cells {
        let mut cells = Cells::new();
        for (id, (to, spend, o)) in b {
            if owner.is_some() && *o != owner {
                continue;
            }
            let e = cells.entry((a[id].0.clone(), to.clone())).or_default();
            e.0 += 1;
            e.1 += spend;
        }
        cells
    };
    let got = |m: &Value| -> Cells {
        m["cells"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    (c["from"].as_str().unwrap().to_owned(), c["to"].as_str().unwrap().to_owned()),
                    (c["customers"].as_i64().unwrap(), c["revenue_cents"].as_i64().unwrap()),
                )
            })
            .collect()
    };
    let (s, m) = app.get("/api/v1/analytics/migration").await;
    assert_eq!(s, 200, "{m}");
    assert_eq!((m["from_run"].as_i64(), m["to_run"].as_i64(), m["dimension"].as_str()), (Some(r1), Some(r2), Some("abcd_tier")));
    let tiers = expect(&tiers1, &tiers2, None);
    assert_eq!(got(&m), tiers);
    let (s, m) = app.get(&format!("/api/v1/analytics/migration?from_run={r1}&to_run={r2}&dimension=rfm_class")).await;
    assert_eq!(s, 200, "{m}");
    assert_eq!(got(&m), expect(&classes1, &classes2, None));
    let (s, m) = json_of(app.req_as(&agent, Method::GET, "/api/v1/analytics/migration").send().await.unwrap()).await;
    assert_eq!(s, 200, "{m}");
    assert_eq!(got(&m), expect(&tiers1, &tiers2, Some(agent_id)));
    assert_eq!(got(&m).values().map(|c| c.0).sum::<i64>(), (CUSTOMERS / 3) as i64);
    // Bad input: unknown runs (422 on the field), an unknown dimension (400: outside the schema).
    for (q, field) in [(format!("from_run={}", r2 + 50), "from_run"), ("to_run=0".to_owned(), "to_run")] {
        let (s, b) = app.get(&format!("/api/v1/analytics/migration?{q}")).await;
        assert_eq!((s, b["error"]["field"].as_str()), (422, Some(field)), "{q}: {b}");
    }
    let (s, b) = app.get("/api/v1/analytics/migration?dimension=city").await;
    assert_eq!(s, 400, "{b}");
    error_code(&b);

    // "A customers who became B" is a segment whose count is the matrix's cell.
    let ab = tiers.get(&("A".to_owned(), "B".to_owned())).map_or(0, |c| c.0);
    let (s, p) =
        app.post("/api/v1/segments/preview", json!({"rule": "previous_abcd_tier = \"A\" and abcd_tier = \"B\"", "limit": 0})).await;
    assert_eq!((s, p["count"].as_i64()), (200, Some(ab)), "{p}");
    let (_, fields) = app.get("/api/v1/segments/fields").await;
    assert!(fields.as_array().unwrap().iter().any(|f| f["name"] == "previous_lifecycle"), "{fields}");

    // The saved segment's size at each run; agents cannot read whole-base sizes.
    let key = seg["key"].as_str().unwrap();
    let (s, sizes) = app.get(&format!("/api/v1/segments/{key}/sizes")).await;
    assert_eq!(s, 200, "{sizes}");
    let count = |t: &std::collections::BTreeMap<i64, (String, i64, Option<i64>)>| t.values().filter(|v| v.0 == "A").count() as i64;
    assert_eq!(
        sizes,
        json!([
            {"run_id": r1, "as_of": "2026-01-31", "customers": count(&tiers1)},
            {"run_id": r2, "as_of": "2026-06-30", "customers": count(&tiers2)}
        ])
    );
    let (s, _) = json_of(app.req_as(&agent, Method::GET, &format!("/api/v1/segments/{key}/sizes")).send().await.unwrap()).await;
    assert_eq!(s, 403);
    let (s, _) = app.get("/api/v1/segments/987654/sizes").await;
    assert_eq!(s, 404);

    // The retention setting: read by anyone with analytics, changed by admins, checked.
    let (s, h) = app.get("/api/v1/analytics/history/settings").await;
    assert_eq!((s, h), (200, json!({"runs": 24})));
    let (s, b) = app.put("/api/v1/analytics/history/settings", json!({"runs": 1})).await;
    assert_eq!((s, b["error"]["field"].as_str()), (422, Some("runs")), "{b}");
    let (s, _) =
        json_of(app.req_as(&agent, Method::PUT, "/api/v1/analytics/history/settings").json(&json!({"runs": 5})).send().await.unwrap())
            .await;
    assert_eq!(s, 403);
    let (s, h) = app.put("/api/v1/analytics/history/settings", json!({"runs": 5})).await;
    assert_eq!((s, h), (200, json!({"runs": 5})));
});

/// The seed's completed orders (customer index, date), from its own rule (analytics_seed).
fn seed_orders() -> Vec<(usize, chrono::NaiveDate, i64)> {
    let start = chrono::NaiveDate::from_ymd_opt(2024, 7, 1).unwrap();
    let end = chrono::NaiveDate::from_ymd_opt(2026, 6, 29).unwrap();
    let mut out = Vec::new();
    for i in 0..CUSTOMERS {
        let first = start + chrono::Duration::days((i as i64 * 11) % 300);
        let (count, gap) = match i % 10 {
            0 => (0, 1),
            1 => (1, 1),
            _ => (2 + (i as i64 * 7) % 12, 10 + (i as i64 * 13) % 50),
        };
        let count = if i % 7 == 3 { count.min(3) } else { count };
        for k in 0..count {
            let day = first + chrono::Duration::days(k * gap);
            if day > end {
                break;
            }
            let amount = 40 + (i * 37 + k as usize * 11) % 300;
            out.push((i, day, amount as i64 * 100 + 50));
        }
    }
    out
}

test_both!(cohorts_and_trends_over_http, |db: TestDb| async move {
    use chrono::Datelike;
    let app = spawn_app(db).await;
    let (agent, _) = seed(&app).await;
    // Bad months are 422 naming the parameter, on both reports, before and after a run.
    for path in ["/api/v1/analytics/cohorts", "/api/v1/analytics/trends"] {
        for (q, field) in [("from=2026-13", "from"), ("to=2026-6", "to"), ("from=2026-05&to=2026-04", "from"), ("from=abc", "from")] {
            let (s, b) = app.get(&format!("{path}?{q}")).await;
            assert_eq!((s, b["error"]["field"].as_str()), (422, Some(field)), "{path}?{q}: {b}");
        }
        let (s, b) = app.get(&format!("{path}?month=2026-01")).await;
        assert_eq!(s, 400, "{b}");
    }
    let (s, live) = app.get("/api/v1/analytics/cohorts?from=2024-07&to=2026-06").await;
    assert_eq!((s, live["source"].as_str()), (200, Some("live")), "{live}");
    let (s, _) = app.post("/api/v1/analytics/runs", json!({})).await;
    assert_eq!(s, 201);

    // Counted here from the seed's rule: months as (year, month), first order per customer.
    let orders = seed_orders();
    let ym = |d: chrono::NaiveDate| (d.year(), d.month());
    let mut first: std::collections::BTreeMap<usize, (i32, u32)> = std::collections::BTreeMap::new();
    for (c, d, _) in &orders {
        let e = first.entry(*c).or_insert(ym(*d));
        *e = (*e).min(ym(*d));
    }
    let months: Vec<(i32, u32)> = (0..24).map(|k| (2024 + (6 + k) / 12, ((6 + k) % 12 + 1) as u32)).collect();
    for (who, token) in [("admin", None), ("agent", Some(&agent))] {
        let only = |c: usize| token.is_none() || c.is_multiple_of(3);
        let get = |path: String| {
            let req = match token {
                Some(t) => app.req_as(t, Method::GET, &path),
                None => app.req(Method::GET, &path),
            };
            async move { json_of(req.send().await.unwrap()).await }
        };
        let (s, r) = get("/api/v1/analytics/cohorts?from=2024-07&to=2026-06".into()).await;
        assert_eq!(s, 200, "{r}");
        assert_eq!(r["source"], if token.is_none() { "run" } else { "live" });
        let cohorts = r["cohorts"].as_array().unwrap();
        assert_eq!(cohorts.len(), 24);
        for (ci, c) in months.iter().enumerate() {
            let got = &cohorts[ci];
            assert_eq!(got["cohort"], format!("{:04}-{:02}", c.0, c.1));
            let members: Vec<usize> = first.iter().filter(|(k, f)| **f == *c && only(**k)).map(|(k, _)| *k).collect();
            assert_eq!(got["customers"], members.len() as i64, "{who} {c:?}");
            for (k, m) in months[ci..].iter().enumerate() {
                let mut active = std::collections::BTreeSet::new();
                let mut revenue = 0;
                for (cust, d, cents) in &orders {
                    if members.contains(cust) && ym(*d) == *m {
                        active.insert(*cust);
                        revenue += cents;
                    }
                }
                assert_eq!(got["active"][k], active.len() as i64, "{who} {c:?} +{k}");
                assert_eq!(got["revenue_cents"][k], revenue, "{who} {c:?} +{k}");
            }
        }
        let (s, t) = get("/api/v1/analytics/trends?from=2024-07&to=2026-06".into()).await;
        assert_eq!(s, 200, "{t}");
        for (k, m) in months.iter().enumerate() {
            let got = &t["months"][k];
            let in_month: Vec<&(usize, chrono::NaiveDate, i64)> = orders.iter().filter(|o| only(o.0) && ym(o.1) == *m).collect();
            let active: std::collections::BTreeSet<usize> = in_month.iter().map(|o| o.0).collect();
            let new = first.iter().filter(|(c, f)| **f == *m && only(**c)).count() as i64;
            assert_eq!(got["orders"], in_month.len() as i64, "{who} {m:?}");
            assert_eq!(got["revenue_cents"], in_month.iter().map(|o| o.2).sum::<i64>());
            assert_eq!((got["active_customers"].as_i64(), got["new_customers"].as_i64()), (Some(active.len() as i64), Some(new)));
            assert_eq!(got["repeat_customers"], active.len() as i64 - new);
            // The run (as of 2026-06-30) gives June its churn rate; other months have none.
            assert_eq!(got["churn_rate"].is_number(), *m == (2026, 6), "{who} {m:?}: {got}");
        }
    }
});
