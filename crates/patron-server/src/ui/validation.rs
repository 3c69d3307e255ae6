//! The holdout validation on the analytics dashboard (issue 18 §1): the latest validation's
//! verdict in words, the conditional expectations, the weekly and cumulative tracking with the
//! calibration end marked, and the calibration histogram (drawn by `assets/validation.js` from
//! the JSON the card carries); managers start a new one from the card.

use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::post;
use axum::Router;
use minijinja::{context, Value};
use patron_analytics::validation::{Validation, TOP_BUCKET};
use patron_store::access::Permission;
use patron_store::validations::ValidationRecord;
use serde::{Deserialize, Serialize};

use super::analytics::script_json;
use super::error_page;
use crate::api::analytics::business_today;
use crate::api::validations::{request_settings, ValidationRequest};
use crate::auth::{permit, UiUser};
use crate::error::Form;
use crate::i18n::{labels, Lang};
use crate::AppState;

/// Routes of the card's form.
pub fn router() -> Router<AppState> {
    Router::new().route("/ui/analytics/validate", post(validate_now))
}

#[derive(Deserialize)]
struct ValidateForm {
    csrf: String,
    calibration_end: String,
    #[serde(default)]
    holdout_end: String,
}

async fn validate_now(State(state): State<AppState>, user: UiUser, Form(f): Form<ValidateForm>) -> Response {
    if let Err(e) = user.check_csrf(&f.csrf) {
        return error_page(&state, &user, e);
    }
    if let Err(e) = permit(&user.actor, Permission::AnalyticsRun) {
        return error_page(&state, &user, e);
    }
    let req = ValidationRequest {
        calibration_end: f.calibration_end,
        holdout_end: Some(f.holdout_end).filter(|s| !s.trim().is_empty()),
        time_unit: None,
    };
    let result: Result<ValidationRecord, crate::error::ApiError> = match request_settings(&req, business_today(&state)) {
        Ok((cal, hold, unit)) => state.store.run_validation(&user.actor, cal, hold, unit).await.map_err(Into::into),
        Err(e) => Err(e),
    };
    match result {
        Ok(_) => Redirect::to("/ui/analytics#validation").into_response(),
        Err(e) => error_page(&state, &user, e),
    }
}

/// What `assets/validation.js` draws, with its labels.
#[derive(Serialize)]
struct Charts {
    labels: serde_json::Value,
    buckets: Vec<String>,
    actual_mean: Vec<Option<f64>>,
    predicted_mean: Vec<Option<f64>>,
    actual_customers: Vec<u64>,
    expected_customers: Vec<f64>,
    weeks: Vec<String>,
    weekly_actual: Vec<u64>,
    weekly_expected: Vec<f64>,
    calibration_end_week: Option<String>,
}

/// A number of purchases as people read it (no decimals from 100 on).
fn amount(v: f64) -> String {
    if v.abs() >= 100.0 {
        let whole = format!("{:.0}", v.abs());
        let mut grouped = String::new();
        for (i, ch) in whole.chars().enumerate() {
            if i > 0 && (whole.len() - i) % 3 == 0 {
                grouped.push(',');
            }
            grouped.push(ch);
        }
        if v < 0.0 {
            grouped.insert(0, '-');
        }
        grouped
    } else {
        format!("{v:.1}")
    }
}

/// The verdict in one sentence: predicted, actual, and the relative error in words.
pub fn verdict(v: &Validation, lang: Lang) -> String {
    let (p, a) = (amount(v.total.predicted), amount(v.total.actual));
    let days = (v.holdout_end - v.calibration_end).num_days();
    let (from, to) = (v.calibration_end.succ_opt().unwrap_or(v.calibration_end), v.holdout_end);
    match (v.errors.total_relative_error, lang) {
        (Some(e), Lang::En) => {
            let how = if e.abs() < 0.0005 {
                "spot on".to_owned()
            } else {
                format!("{:.1}% {}", e.abs() * 100.0, if e > 0.0 { "too high" } else { "too low" })
            };
            format!(
                "The model predicted {p} repeat purchases from {from} to {to} ({days} days after the calibration period); there were {a}: the forecast was {how}."
            )
        }
        (Some(e), Lang::Zh) => {
            let how = if e.abs() < 0.0005 {
                "完全吻合".to_owned()
            } else {
                format!("{}{:.1}%", if e > 0.0 { "偏高 " } else { "偏低 " }, e.abs() * 100.0)
            };
            format!("模型预测 {from} 至 {to}（校准期之后 {days} 天）复购 {p} 次，实际 {a} 次：预测{how}。")
        }
        (None, Lang::En) => format!("The model predicted {p} repeat purchases from {from} to {to}; there were none."),
        (None, Lang::Zh) => format!("模型预测 {from} 至 {to} 复购 {p} 次，实际没有复购。"),
    }
}

/// The card's context: the latest validation (or none), its verdict, charts and table, and
/// whether the viewer may start one.
pub fn card(latest: Option<&ValidationRecord>, lang: Lang, can_run: bool, today: chrono::NaiveDate) -> Value {
    let t = labels(lang);
    let l = |k: &str| serde_json::Value::String(t.get(k).copied().unwrap_or(k).to_owned());
    // A default split for the form: the holdout is the last half-year.
    let default_cal = today.checked_sub_months(chrono::Months::new(6)).unwrap_or(today);
    let Some(r) = latest else {
        return context! { doc => None::<()>, can_run, default_cal => default_cal.to_string() };
    };
    let v = &r.document;
    let bucket = |k: u32| if k >= TOP_BUCKET { format!("{k}+") } else { k.to_string() };
    let week_of = |d: chrono::NaiveDate| v.tracking.iter().rev().find(|w| w.period_start <= d).map(|w| w.period_start.to_string());
    let charts = Charts {
        labels: serde_json::json!({
            "actual": l("val_actual"),
            "predicted": l("val_predicted"),
            "expected": l("val_expected"),
            "frequency": l("val_frequency_axis"),
            "per_customer": l("val_per_customer"),
            "customers": l("customers_n"),
            "weekly": l("val_weekly"),
            "cumulative": l("val_cumulative"),
            "calibration_end": l("val_calibration_end"),
        }),
        buckets: v.by_frequency.iter().map(|b| bucket(b.frequency)).collect(),
        actual_mean: v.by_frequency.iter().map(|b| b.actual_mean).collect(),
        predicted_mean: v.by_frequency.iter().map(|b| b.predicted_mean).collect(),
        actual_customers: v.calibration_histogram.iter().map(|b| b.actual_customers).collect(),
        expected_customers: v.calibration_histogram.iter().map(|b| b.expected_customers).collect(),
        weeks: v.tracking.iter().map(|w| w.period_start.to_string()).collect(),
        weekly_actual: v.tracking.iter().map(|w| w.actual).collect(),
        weekly_expected: v.tracking.iter().map(|w| w.expected).collect(),
        calibration_end_week: week_of(v.calibration_end),
    };
    let rows: Vec<Value> = v
        .by_frequency
        .iter()
        .map(|b| {
            context! {
                frequency => bucket(b.frequency),
                customers => b.customers,
                actual => b.actual_mean.map(|x| format!("{x:.3}")).unwrap_or_else(|| "—".into()),
                predicted => b.predicted_mean.map(|x| format!("{x:.3}")).unwrap_or_else(|| "—".into()),
            }
        })
        .collect();
    let unit = t.get(if v.time_unit == patron_analytics::TimeUnit::Weeks { "unit_weeks" } else { "unit_days" }).copied().unwrap_or("");
    context! {
        doc => context! {
            id => r.id,
            calibration_end => v.calibration_end.to_string(),
            holdout_end => v.holdout_end.to_string(),
            holdout_length => format!("{} {unit}", amount(v.holdout_length)),
            customers => v.customers,
            verdict => verdict(v, lang),
            mae => format!("{:.3}", v.errors.mae_per_customer),
            spend_customers => v.spend.customers,
            spend_actual => v.spend.actual_mean.map(crate::i18n::yuan_f).unwrap_or_else(|| "—".into()),
            spend_predicted => v.spend.predicted_mean.map(crate::i18n::yuan_f).unwrap_or_else(|| "—".into()),
            rows,
            warnings => v.warnings.clone(),
        },
        charts => script_json(&charts),
        can_run,
        default_cal => v.calibration_end.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use patron_analytics::validation::{BgNbdSummary, Errors, SpendCheck, Total};

    fn doc(predicted: f64, actual: f64) -> Validation {
        let d = |s: &str| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap_or_default();
        Validation {
            calibration_end: d("1997-09-30"),
            holdout_end: d("1998-06-30"),
            time_unit: patron_analytics::TimeUnit::Weeks,
            holdout_length: 39.0,
            customers: 2357,
            bgnbd: BgNbdSummary { r: 0.243, alpha: 4.414, a: 0.793, b: 2.426, log_likelihood: -9582.4, converged: true },
            gamma_gamma: None,
            by_frequency: Vec::new(),
            total: Total { actual, predicted },
            calibration_histogram: Vec::new(),
            tracking: Vec::new(),
            spend: SpendCheck { customers: 0, actual_mean: None, predicted_mean: None },
            errors: Errors { mae_per_customer: 0.8, total_relative_error: (actual > 0.0).then(|| (predicted - actual) / actual) },
            warnings: Vec::new(),
        }
    }

    #[test]
    fn verdicts_in_both_languages() {
        let v = doc(1653.4, 1882.0);
        assert_eq!(
            verdict(&v, Lang::En),
            "The model predicted 1,653 repeat purchases from 1997-10-01 to 1998-06-30 (273 days after the calibration period); there were 1,882: the forecast was 12.1% too low."
        );
        assert_eq!(
            verdict(&v, Lang::Zh),
            "模型预测 1997-10-01 至 1998-06-30（校准期之后 273 天）复购 1,653 次，实际 1,882 次：预测偏低 12.1%。"
        );
        assert!(verdict(&doc(55.0, 50.0), Lang::En).ends_with("there were 50.0: the forecast was 10.0% too high."));
        assert!(verdict(&doc(3.2, 0.0), Lang::Zh).ends_with("实际没有复购。"));
        assert_eq!(amount(1234567.4), "1,234,567");
    }

    /// The dashboard renders with the card in both states, in both languages.
    #[test]
    fn the_card_renders() {
        let env = crate::ui::templates(patron_store::StoreConfig::default().business_tz);
        let today = chrono::NaiveDate::from_ymd_opt(2026, 6, 30).unwrap_or_default();
        let mut v = doc(1653.4, 1882.0);
        v.by_frequency = vec![patron_analytics::validation::FrequencyBucket {
            frequency: 7,
            customers: 3,
            actual_mean: Some(6.0),
            predicted_mean: None,
        }];
        v.warnings = vec!["w".into()];
        let record = ValidationRecord { id: 4, created_at: chrono::Utc::now(), document: v };
        for lang in [Lang::Zh, Lang::En] {
            for (latest, can_run) in [(None, true), (Some(&record), false), (Some(&record), true)] {
                let ctx = context! {
                    run => None::<()>, can_run, ran => false, validation => card(latest, lang, can_run, today),
                    t => labels(lang), lang => lang.tag(), user => context! { name => "u", role => "manager" }, csrf => "c",
                };
                let html = env.get_template("analytics.html").and_then(|t| t.render(ctx)).unwrap_or_else(|e| panic!("{e:#}"));
                assert!(html.contains("id=\"validation\""), "{html}");
                assert_eq!(html.contains("id=\"val-verdict\""), latest.is_some());
                assert_eq!(html.contains("validation.js"), latest.is_some());
                assert_eq!(html.contains("id=\"val-form\""), can_run);
                if latest.is_some() {
                    assert!(html.contains("7+") && html.contains(&verdict(&record.document, lang)), "{html}");
                }
            }
        }
    }
}
