//! The analytics dashboard (`/ui/analytics`: ECharts drawn by `assets/analytics.js` from JSON the
//! page carries), the "run analysis now" button, and the scores panel of the customer 360.

use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use minijinja::{context, Value};
use patron_store::analytics::{AnalysisRun, Bucket, ChurnStat, GroupStat, Overview};
use patron_store::users::Role;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::{error_page, render, CsrfForm};
use crate::api::analytics::{business_today, run_settings, scores_of, RunRequest};
use crate::auth::{require, UiUser};
use crate::error::{ApiError, Form, Query};
use crate::i18n::{key_label, labels, yuan, yuan_f, Lang};
use crate::AppState;

/// Routes of the dashboard.
pub fn router() -> Router<AppState> {
    Router::new().route("/ui/analytics", get(dashboard)).route("/ui/analytics/run", post(run_now))
}

/// Lifecycle stages in funnel order (prospect first).
const STAGES: [&str; 7] = ["prospect", "new", "active", "loyal", "at_risk", "churned", "won_back"];
/// RFM classes in the order DESIGN §4 lists them.
const RFM_CLASSES: [&str; 8] = [
    "important_value",
    "important_retain",
    "important_develop",
    "important_win_back",
    "general_value",
    "general_retain",
    "general_develop",
    "general_win_back",
];

#[derive(Deserialize, Default)]
struct DashQuery {
    ran: Option<String>,
}

async fn dashboard(State(state): State<AppState>, user: UiUser, Query(q): Query<DashQuery>) -> Response {
    // Every role may look; the store narrows an agent to their own portfolio.
    if let Err(e) = require(&user.actor, Role::Agent, "read analytics") {
        return error_page(&state, &user, e);
    }
    let overview = match state.store.analytics_overview(&user.actor).await {
        Ok(o) => o,
        Err(e) => return error_page(&state, &user, e.into()),
    };
    let lang = user.lang;
    let can_run = user.actor.role >= Role::Manager;
    // The latest holdout validation (issue 18 §1), shown with or without a run.
    let validation = match state.store.latest_validation().await {
        Ok(v) => super::validation::card(v.as_ref(), lang, can_run, business_today(&state)),
        Err(e) => return error_page(&state, &user, e.into()),
    };
    let Some(run) = overview.run.clone() else {
        return render(
            &state,
            "analytics.html",
            lang,
            Some(&user),
            context! { section => "analytics", run => None::<()>, can_run, ran => false, validation },
        );
    };
    let charts = script_json(&chart_data(&overview, lang));
    let abcd = abcd_rows(&overview.abcd_tiers, lang);
    let fit = fit_report(&run, lang);
    // How the base is changing (issue 18 §2, §3): migration, cohorts, trends.
    let history = super::history::dashboard_data(&state, &user.actor, lang).await;
    render(
        &state,
        "analytics.html",
        lang,
        Some(&user),
        context! {
            section => "analytics",
            run => context! {
                id => run.id,
                as_of => run.as_of.map(|d| d.to_string()),
                finished_at => run.finished_at.to_rfc3339(),
                customers => run.customers,
                orders_used => run.orders_used,
            },
            scored => overview.scored_customers,
            charts, abcd, fit, can_run, history, validation,
            ran => q.ran.is_some(),
        },
    )
}

async fn run_now(State(state): State<AppState>, user: UiUser, Form(f): Form<CsrfForm>) -> Response {
    if let Err(e) = user.check_csrf(&f.csrf) {
        return error_page(&state, &user, e);
    }
    if let Err(e) = require(&user.actor, Role::Manager, "run the analysis") {
        return error_page(&state, &user, e);
    }
    // The same defaults as the API, as of today in the business time zone.
    let settings = run_settings(&RunRequest::default(), business_today(&state));
    let result = match settings {
        Ok((as_of, config)) => crate::api::analytics::start_run(&state, &user.actor, as_of, &config).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(_) => Redirect::to("/ui/analytics?ran=1").into_response(),
        Err(e) => error_page(&state, &user, e),
    }
}

// ---- chart data ----------------------------------------------------------------------------

/// JSON to embed in a `<script type="application/json">` element. HTML escaping would not do:
/// the element's content is raw text (entities are not decoded), so instead every character
/// that could end the element or start markup is written as a JSON `\u` escape, which
/// `JSON.parse` reads back unchanged. Marked safe so the template does not escape it again.
pub(crate) fn script_json<T: Serialize>(v: &T) -> Value {
    let text = serde_json::to_string(v).unwrap_or_else(|_| "{}".into());
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\'' => out.push_str("\\u0027"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    Value::from_safe_string(out)
}

/// One bar / slice: a translated name and its numbers (revenue in yuan for the axes).
#[derive(Serialize)]
struct Item {
    key: String,
    name: String,
    customers: i64,
    revenue: f64,
}

#[derive(Serialize)]
struct ChurnItem {
    name: String,
    absolute: i64,
    relative: i64,
    none: i64,
}

#[derive(Serialize)]
struct BarItem {
    label: String,
    customers: i64,
}

/// Everything `assets/analytics.js` draws, with the labels it needs, in the page's language.
#[derive(Serialize)]
struct Charts {
    labels: Json,
    rfm: Vec<Item>,
    abcd: Vec<Item>,
    lifecycle: Vec<Item>,
    churn_tier: Vec<ChurnItem>,
    churn_rfm: Vec<ChurnItem>,
    p_alive: Vec<BarItem>,
    clv: Vec<BarItem>,
}

fn cents_to_yuan(cents: i64) -> f64 {
    cents as f64 / 100.0
}

/// Groups in a fixed order (every known key, zero when absent), then any unknown keys.
fn ordered(groups: &[GroupStat], order: &[&str], prefix: &str, lang: Lang) -> Vec<Item> {
    let item = |key: &str, g: Option<&GroupStat>| Item {
        key: key.to_owned(),
        name: key_label(lang, prefix, key),
        customers: g.map_or(0, |g| g.customers),
        revenue: g.map_or(0.0, |g| cents_to_yuan(g.revenue_cents)),
    };
    let mut out: Vec<Item> = order.iter().map(|k| item(k, groups.iter().find(|g| g.key == *k))).collect();
    out.extend(groups.iter().filter(|g| !order.contains(&g.key.as_str()) && !g.key.is_empty()).map(|g| item(&g.key, Some(g))));
    out
}

fn churn_items(stats: &[ChurnStat], order: &[&str], prefix: &str, lang: Lang) -> Vec<ChurnItem> {
    let mut keys: Vec<&str> = order.iter().copied().filter(|k| stats.iter().any(|s| s.key == *k)).collect();
    keys.extend(stats.iter().map(|s| s.key.as_str()).filter(|k| !order.contains(k) && !k.is_empty()));
    keys.into_iter()
        .filter_map(|k| stats.iter().find(|s| s.key == k))
        .map(|s| ChurnItem {
            name: key_label(lang, prefix, &s.key),
            absolute: s.absolute,
            relative: s.relative,
            none: (s.customers - s.absolute - s.relative).max(0),
        })
        .collect()
}

fn buckets(b: &[Bucket], money: bool) -> Vec<BarItem> {
    b.iter()
        .map(|b| BarItem {
            label: if money {
                format!("{}–{}", short_yuan(b.lower), short_yuan(b.upper))
            } else {
                format!("{:.1}–{:.1}", b.lower, b.upper)
            },
            customers: b.customers,
        })
        .collect()
}

/// A yuan bucket bound without cents (`¥1,500`), or with them below ¥1.
fn short_yuan(v: f64) -> String {
    if v.abs() < 1.0 && v != 0.0 {
        return yuan_f(v * 100.0);
    }
    let s = yuan_f(v * 100.0);
    s.strip_suffix(".00").map(str::to_owned).unwrap_or(s)
}

fn chart_data(o: &Overview, lang: Lang) -> Charts {
    let t = labels(lang);
    let l = |k: &str| Json::String(t.get(k).copied().unwrap_or(k).to_owned());
    let labels = serde_json::json!({
        "customers": l("customers_n"),
        "revenue": l("revenue_12m"),
        "absolute": l("churn_absolute"),
        "relative": l("churn_relative"),
        "none": l("not_churned"),
        "p_alive": l("p_alive"),
        "clv": l("clv"),
    });
    Charts {
        labels,
        rfm: ordered(&o.rfm_classes, &RFM_CLASSES, "rfm", lang),
        abcd: ordered(&o.abcd_tiers, &["A", "B", "C", "D"], "tier", lang),
        lifecycle: ordered(&o.lifecycle, &STAGES, "life", lang),
        churn_tier: churn_items(&o.churn_by_tier, &["A", "B", "C", "D"], "tier", lang),
        churn_rfm: churn_items(&o.churn_by_rfm_class, &RFM_CLASSES, "rfm", lang),
        p_alive: buckets(&o.p_alive_histogram, false),
        clv: buckets(&o.clv_histogram, true),
    }
}

/// The ABCD table: customers, revenue and both shares, per tier.
fn abcd_rows(tiers: &[GroupStat], lang: Lang) -> Vec<Value> {
    // Saturating: each tier's revenue may itself be saturated at i64::MAX (issue 14 §2.2).
    let customers: i64 = tiers.iter().fold(0i64, |a, g| a.saturating_add(g.customers));
    let revenue: i64 = tiers.iter().fold(0i64, |a, g| a.saturating_add(g.revenue_cents));
    let pct = |part: i64, total: i64| if total > 0 { format!("{:.1}%", part as f64 * 100.0 / total as f64) } else { "—".into() };
    ordered(tiers, &["A", "B", "C", "D"], "tier", lang)
        .into_iter()
        .map(|item| {
            let g = tiers.iter().find(|g| g.key == item.key);
            let rev = g.map_or(0, |g| g.revenue_cents);
            context! {
                key => item.key,
                name => item.name,
                customers => item.customers,
                customer_share => pct(item.customers, customers),
                revenue => yuan(rev),
                revenue_share => pct(rev, revenue),
                mean_p_alive => g.and_then(|g| g.mean_p_alive).map(|p| format!("{p:.2}")).unwrap_or_else(|| "—".into()),
                clv => g.and_then(|g| g.clv_cents).map(yuan_f).unwrap_or_else(|| "—".into()),
            }
        })
        .collect()
}

/// `v` to `digits` significant digits, plainly (no exponent for the sizes parameters have).
fn sig(v: f64, digits: i32) -> String {
    if !v.is_finite() {
        return "—".into();
    }
    if v == 0.0 {
        return "0".into();
    }
    let mag = v.abs().log10().floor() as i32;
    let decimals = (digits - 1 - mag).clamp(0, 12) as usize;
    format!("{v:.decimals$}")
}

fn num(v: &Json, key: &str) -> Option<f64> {
    v.get(key).and_then(Json::as_f64)
}

/// The fit report as display rows: parameters with standard errors, log-likelihood, iterations,
/// convergence; γ converted from cents to yuan.
fn fit_report(run: &AnalysisRun, lang: Lang) -> Value {
    let t = labels(lang);
    let word = |k: &str| t.get(k).copied().unwrap_or(k).to_owned();
    let r = &run.report;
    let param = |fit: &Json, key: &str, label: &str, scale: f64| {
        let se = fit.get("std_errors").and_then(|s| num(s, key)).map(|v| sig(v / scale, 3)).unwrap_or_else(|| "—".into());
        context! { id => format!("fit-{key}"), name => label, estimate => num(fit, key).map(|v| sig(v / scale, 4)).unwrap_or_else(|| "—".into()), std_error => se }
    };
    let model = |fit: &Json, params: Vec<Value>| {
        if fit.is_object() {
            Some(context! {
                params,
                log_likelihood => num(fit, "log_likelihood").map(|v| format!("{v:.2}")).unwrap_or_else(|| "—".into()),
                iterations => fit.get("iterations").and_then(Json::as_u64),
                converged => fit.get("converged").and_then(Json::as_bool).map(|c| word(if c { "yes" } else { "no" })),
                customers => num(fit, "customers").map(|v| v.round() as i64),
            })
        } else {
            None
        }
    };
    let bg = r.get("bgnbd").cloned().unwrap_or(Json::Null);
    let gg = r.get("gamma_gamma").cloned().unwrap_or(Json::Null);
    let unit = match r.get("time_unit").and_then(Json::as_str) {
        Some("weeks") => word("unit_weeks"),
        _ => word("unit_days"),
    };
    let bgnbd =
        model(&bg, vec![param(&bg, "r", "r", 1.0), param(&bg, "alpha", "α", 1.0), param(&bg, "a", "a", 1.0), param(&bg, "b", "b", 1.0)]);
    let gamma = model(&gg, vec![param(&gg, "p", "p", 1.0), param(&gg, "q", "q", 1.0), param(&gg, "gamma", &word("gamma_yuan"), 100.0)]);
    let warnings: Vec<String> = r
        .get("warnings")
        .and_then(Json::as_array)
        .map(|w| w.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    context! {
        bgnbd, gamma, warnings, unit,
        horizon => num(r, "horizon").map(|h| sig(h, 4)),
        clv_months => r.get("clv_months").and_then(Json::as_u64),
        monthly_discount => num(r, "monthly_discount").map(|d| format!("{:.1}%", d * 100.0)),
        model_version => run.model_version.clone(),
    }
}

// ---- the customer 360 panel ----------------------------------------------------------------

/// The scores panel of the customer 360 (`None` before the customer was first analysed).
pub(super) async fn score_panel(
    state: &AppState,
    customer_id: i64,
    lang: Lang,
    mask: &patron_store::access::masking::FieldMask,
) -> Result<Option<Value>, ApiError> {
    let Some(s) = scores_of(state, customer_id, lang).await? else { return Ok(None) };
    let k = &s.scores;
    let opt_label = |prefix: &str, key: &Option<String>| key.as_deref().map(|v| key_label(lang, prefix, v));
    let t = labels(lang);
    let churn = match k.churn.as_str() {
        "absolute" => "churn_absolute",
        "relative" => "churn_relative",
        _ => "churn_none",
    };
    let rfm_scores = match (k.rfm_r, k.rfm_f, k.rfm_m) {
        (Some(r), Some(f), Some(m)) => Some(format!("R{r} F{f} M{m}")),
        _ => None,
    };
    Ok(Some(context! {
        as_of => s.as_of.map(|d| d.to_string()),
        rfm_scores,
        rfm_class => opt_label("rfm", &k.rfm_class),
        abcd_tier => opt_label("tier", &k.abcd_tier),
        lifecycle => key_label(lang, "life", &k.lifecycle),
        lifecycle_key => k.lifecycle.clone(),
        churn => t.get(churn).copied().unwrap_or(churn),
        churn_key => k.churn.clone(),
        p_alive => k.p_alive.map(|p| format!("{p:.2}")),
        expected_purchases => k.expected_purchases.map(|e| format!("{e:.2}")),
        expected_order_value => k.expected_order_value_cents.and_then(|v| masked_money_f(mask, v)).map(yuan_f),
        clv => k.clv_cents.and_then(|v| masked_money_f(mask, v)).map(yuan_f),
        loyalty_index => k.loyalty_index.map(|v| format!("{v:.0}")),
        loyalty_situation => opt_label("loy", &k.loyalty_situation),
        days_since => s.days_since_last_purchase,
        reason => s.reason.clone(),
    }))
}

/// A fractional amount of money as the mask lets it be seen.
fn masked_money_f(mask: &patron_store::access::masking::FieldMask, cents: f64) -> Option<f64> {
    if !cents.is_finite() {
        return None;
    }
    mask.money(cents.round() as i64).map(|c| c as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_json_cannot_close_the_element() {
        let v = script_json(&serde_json::json!({"name": "</script><b>'&\u{2028}"}));
        let s = v.to_string();
        assert!(!s.contains('<') && !s.contains('>') && !s.contains('&') && !s.contains('\''), "{s}");
        let back: serde_json::Value = serde_json::from_str(&s).unwrap_or_default();
        assert_eq!(back["name"], "</script><b>'&\u{2028}");
    }

    #[test]
    fn significant_digits() {
        assert_eq!(sig(0.24259, 4), "0.2426");
        assert_eq!(sig(4.41359, 4), "4.414");
        assert_eq!(sig(30.123, 4), "30.12");
        assert_eq!(sig(12345.6, 4), "12346");
        assert_eq!(sig(f64::NAN, 4), "—");
    }

    #[test]
    fn groups_keep_the_funnel_order_and_fill_gaps() {
        let g =
            |key: &str, n: i64| GroupStat { key: key.into(), customers: n, revenue_cents: n * 100, mean_p_alive: None, clv_cents: None };
        let items = ordered(&[g("churned", 2), g("prospect", 5), g("odd", 1)], &STAGES, "life", Lang::En);
        let names: Vec<&str> = items.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["Prospect", "New", "Active", "Loyal", "At risk", "Churned", "Won back", "odd"]);
        assert_eq!(items[0].customers, 5);
        assert_eq!(items[1].customers, 0);
        assert_eq!(short_yuan(1500.0), "¥1,500");
        assert_eq!(short_yuan(0.5), "¥0.50");
    }

    /// Template problems only show at render time (and are logged, not raised): render every
    /// page and fragment of this feature once, in both languages.
    #[test]
    fn templates_render() {
        let env = crate::ui::templates(patron_store::StoreConfig::default().business_tz);
        let fit = context! { bgnbd => context! { params => vec![context! { id => "fit-r", name => "r", estimate => "0.5", std_error => "0.1" }],
        log_likelihood => "-1.0", iterations => 3, converged => "yes", customers => 5 }, gamma => None::<()>, warnings => vec!["w"], unit => "days" };
        let run = context! { id => 1, as_of => "2026-06-30", finished_at => "2026-06-30T12:00:00Z", customers => 3, orders_used => 4 };
        let scores = context! { reason => "r", lifecycle => "Active", lifecycle_key => "active", churn => "none", churn_key => "none", as_of => "2026-06-30" };
        let cases: Vec<(&str, Value)> = vec![
            ("analytics.html", context! { run => None::<()>, can_run => true, ran => false }),
            (
                "analytics.html",
                context! { run, scored => 3, charts => context! { labels => context! {} }, abcd => Vec::<Value>::new(), fit, can_run => false, ran => true },
            ),
            (
                "segments.html",
                context! { builtin => Vec::<Value>::new(), saved => vec![context! { key => "1", id => 1, name => "n", rule => "x", count => 2, key_q => "1", dom_id => "1" }],
                fields => Vec::<Value>::new(), examples => vec!["a"], rule => "", name => "", description => "", error => "e", field => "rule", saved_flash => true, can_edit => true },
            ),
            ("segment_preview.html", context! { empty => true }),
            ("segment_preview.html", context! { error => "bad", column => 3, snippet => "abc\n  ^" }),
            (
                "segment_preview.html",
                context! { count => 1, members => vec![context! { id => 1, name => "n", spend => "¥1.00" }], export => "/x" },
            ),
            (
                "customer.html",
                context! { c => context! { id => 1, name => "n", tags => Vec::<String>::new(), attributes => context! {} }, stats => context! { order_count => 0 }, scores },
            ),
            (
                "customer.html",
                context! { c => context! { id => 1, name => "n", tags => Vec::<String>::new(), attributes => context! {} }, stats => context! { order_count => 0 },
                open_tickets => Vec::<Value>::new(), policy => context! { tier => "A", first_response_minutes => 30, resolution_minutes => 240, compensation_authority_cents => 20000, premium => vec!["专属客服"] } },
            ),
            ("tickets.html", context! { tickets => Vec::<Value>::new(), view => "mine", views => vec!["mine", "all"] }),
            ("notifications.html", context! { items => Vec::<Value>::new() }),
            ("public_confirm.html", context! { state => "closed", message => "link_used" }),
        ];
        for lang in [Lang::Zh, Lang::En] {
            for (name, ctx) in &cases {
                let common =
                    context! { t => labels(lang), lang => lang.tag(), user => context! { name => "u", role => "manager" }, csrf => "c" };
                let out = env.get_template(name).and_then(|t| t.render(context! { ..ctx.clone(), ..common }));
                if let Err(e) = out {
                    panic!("{name}: {e:#}");
                }
            }
        }
    }
}
