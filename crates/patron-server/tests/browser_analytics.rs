//! The analytics dashboard and the segment builder in a real headless Chromium: run the analysis
//! from the empty dashboard, wait until every ECharts chart has drawn its canvas and the fit
//! report shows r; read the scores on a 360 page; type rules in the builder and watch the live
//! count (equal to the API's), a broken rule's position, saving and the saved list.

mod analytics_seed;
mod common;

use std::time::Duration;

use common::spawn_app;
use common::webdriver::Browser;
use patron_store::testing::test_db;
use patron_store::users::Role;
use patron_store::Engine;
use serde_json::json;

const PASSWORD: &str = "correct horse battery";

async fn seeded_app() -> common::TestApp {
    let app = spawn_app(test_db(Engine::Sqlite).await).await;
    analytics_seed::seed(&app).await;
    app.db.store.create_user("manager@example.com", "王经理", Role::Manager, Some(PASSWORD)).await.unwrap();
    app
}

async fn login(b: &Browser, app: &common::TestApp, path: &str) {
    b.goto(&format!("{}{path}", app.base)).await;
    b.find("#login-button").await;
    b.type_into("#email", "manager@example.com").await;
    b.type_into("#password", PASSWORD).await;
    b.click("#login-button").await;
    b.find("#customer-table").await;
    b.goto(&format!("{}{path}", app.base)).await;
}

/// Waits (up to 10 s) until the element's whole text equals `want`.
async fn wait_exact(b: &Browser, css: &str, want: &str) {
    let mut last = String::new();
    for _ in 0..100 {
        last = b.text(css).await;
        if last.trim() == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{css} never read {want:?}; last text: {last:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_runs_the_analysis_and_draws_every_chart() {
    let app = seeded_app().await;
    let b = Browser::start().await;
    login(&b, &app, "/ui/analytics").await;

    // No run yet: the empty state and the button.
    b.find("#no-run").await;
    b.click("#run-button").await;
    b.find("#run-flash").await;
    assert_eq!(b.text("#run-as-of").await, "2026-06-30");
    assert_eq!(b.text("#run-scored").await, analytics_seed::CUSTOMERS.to_string());

    // Every chart has drawn a canvas (analytics.js marks a container once its chart is set).
    for id in ["chart-rfm", "chart-lifecycle", "chart-abcd", "chart-churn-tier", "chart-churn-rfm", "chart-p-alive", "chart-clv"] {
        b.find(&format!("#{id}[data-drawn=\"1\"] canvas")).await;
    }
    // The fit report shows the BG/NBD and Gamma-Gamma parameters from the run.
    let (_, run) = app.get("/api/v1/analytics/runs/latest").await;
    let r = run["report"]["bgnbd"]["r"].as_f64().unwrap();
    let shown: f64 = b.text("#fit-r td.num").await.parse().unwrap();
    assert!((shown - r).abs() <= r * 1e-3, "fit table r {shown} vs run {r}");
    let fit = b.text("#fit-bgnbd").await;
    assert!(fit.contains("α") && fit.contains("对数似然"), "{fit}");
    assert!(b.text("#fit-gg").await.contains("γ（元）"));
    // ABCD table: four tiers whose revenue shares add up to about 100%.
    let abcd = b.text("#abcd-table").await;
    assert!(abcd.contains("A 级") && abcd.contains("D 级"), "{abcd}");
    b.screenshot(&common::screenshots().join("analytics.png")).await;

    // English labels after the language switch; the charts draw again.
    b.click("#lang-switch").await;
    b.wait_text("#fit-report", "Model fit report").await;
    b.find("#chart-lifecycle[data-drawn=\"1\"] canvas").await;
    assert!(b.text("#abcd-table").await.contains("Tier A"));

    // A customer 360 shows the scores panel with the plain-words reason.
    let (_, page) = app.get("/api/v1/customers?q=C012").await;
    let id = page["items"][0]["id"].as_i64().unwrap();
    b.goto(&format!("{}/ui/customers/{id}", app.base)).await;
    let reason = b.text("#score-reason").await;
    assert!(reason.contains("P(alive)") && reason.contains("last purchase"), "{reason}");
    let (_, sc) = app.get(&format!("/api/v1/customers/{id}/scores?lang=en")).await;
    assert!(reason.contains(sc["reason"].as_str().unwrap()), "{reason} vs {sc}");
    assert!(b.text("#score-clv").await.starts_with('¥'));
    assert!(!b.text("#score-lifecycle").await.is_empty());
    b.screenshot(&common::screenshots().join("customer360-scores.png")).await;
    b.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segment_builder_previews_live_and_saves() {
    let app = seeded_app().await;
    let (s, _) = app.post("/api/v1/analytics/runs", json!({})).await;
    assert_eq!(s, 201);
    let b = Browser::start().await;
    login(&b, &app, "/ui/segments").await;
    b.find("#preview-empty").await;
    // Built-in segments are listed with live counts.
    let (_, wb) = app.get("/api/v1/segments/builtin:rfm:important_win_back").await;
    wait_exact(&b, "#segment-builtin-rfm-important-win-back .segment-count", &wb["count"].to_string()).await;

    // Type a rule: the live count equals the API's.
    let rule = r#"p_alive < 0.5 and city in ("上海", "杭州")"#;
    let (_, p) = app.post("/api/v1/segments/preview", json!({ "rule": rule })).await;
    let expected = p["count"].as_i64().unwrap();
    assert!(expected > 0);
    b.type_into("#rule", rule).await;
    wait_exact(&b, "#preview-count", &expected.to_string()).await;
    let members = b.text("#preview-members").await;
    assert!(members.contains(p["members"][0]["name"].as_str().unwrap()), "{members}");
    b.find("#preview-export").await;
    b.screenshot(&common::screenshots().join("segment-builder.png")).await;

    // A broken rule: the message with its position and a caret under it.
    b.type_into("#rule", "p_alive < 0.5 and citty = \"上海\"").await;
    let err = b.wait_text("#preview-error", "字符位置 19").await;
    assert!(err.contains("did you mean \"city\""), "{err}");
    assert!(b.text("#preview-caret").await.contains('^'));
    b.screenshot(&common::screenshots().join("segment-error.png")).await;

    // Fix it, name it, save it: it is listed with its count.
    b.type_into("#rule", rule).await;
    wait_exact(&b, "#preview-count", &expected.to_string()).await;
    b.type_into("#segment-name", "上海杭州流失风险").await;
    b.type_into("#segment-description", "赢回名单").await;
    b.click("#save-segment").await;
    b.find("#segment-saved").await;
    let saved = b.wait_text("#saved-segments", "上海杭州流失风险").await;
    assert!(saved.contains(&expected.to_string()), "{saved}");
    // The builder holds the saved rule and previews it again.
    wait_exact(&b, "#preview-count", &expected.to_string()).await;
    // Saving the same name again is refused with the reason.
    b.type_into("#segment-name", "上海杭州流失风险").await;
    b.click("#save-segment").await;
    b.wait_text("#save-error", "already").await;
    let (_, list) = app.get("/api/v1/segments?kind=saved").await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    b.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_charts_draw_and_a_flow_opens_its_segment() {
    let app = seeded_app().await;
    let (s, seg) = app.post("/api/v1/segments", json!({"name": "A 类客户", "rule": "abcd_tier = \"A\""})).await;
    assert_eq!(s, 201, "{seg}");
    for body in [json!({"as_of": "2026-01-31"}), json!({})] {
        let (s, run) = app.post("/api/v1/analytics/runs", body).await;
        assert_eq!(s, 201, "{run}");
    }
    let b = Browser::start().await;
    login(&b, &app, "/ui/analytics").await;
    // How the base is changing: the Sankey, the cohorts and the trends have drawn.
    for id in [
        "chart-migration",
        "chart-cohort-heatmap",
        "chart-cohort-revenue",
        "chart-trends-customers",
        "chart-trends-revenue",
        "chart-trends-churn",
    ] {
        b.find(&format!("#{id}[data-drawn=\"1\"] canvas")).await;
    }
    b.script("document.getElementById('history-title').scrollIntoView()").await;
    b.screenshot(&common::screenshots().join("analytics-history.png")).await;
    // The flows are links to their segments; the first flow's count is the segment's.
    let (_, m) = app.get("/api/v1/analytics/migration").await;
    let first = &m["cells"][0];
    let flows = b.text("#migration-flows").await;
    assert!(flows.contains(&format!(": {}", first["customers"])), "{flows} vs {m}");
    b.click("#migration-flows li a").await;
    b.find("#preview-count").await;
    let url = b.url().await;
    assert!(url.contains("/ui/segments?rule=") && url.contains("previous_abcd_tier"), "{url}");
    let rule = b.script("return document.getElementById('rule').value").await;
    let (_, p) = app.post("/api/v1/segments/preview", json!({"rule": rule, "limit": 0})).await;
    wait_exact(&b, "#preview-count", &p["count"].to_string()).await;
    // The saved segment's page shows its size at both runs.
    b.goto(&format!("{}/ui/segments?key={}", app.base, seg["key"].as_str().unwrap())).await;
    let sizes = b.text("#segment-sizes-table").await;
    let (_, series) = app.get(&format!("/api/v1/segments/{}/sizes", seg["key"].as_str().unwrap())).await;
    assert_eq!(series.as_array().unwrap().len(), 2, "{series}");
    for z in series.as_array().unwrap() {
        assert!(sizes.contains(z["as_of"].as_str().unwrap()) && sizes.contains(&z["customers"].to_string()), "{sizes} vs {series}");
    }
    b.quit().await;
}
