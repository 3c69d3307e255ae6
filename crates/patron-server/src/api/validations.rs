//! `/api/v1/analytics/validations`: holdout validations of the models (issue 18 §1) — make one
//! (managers and admins) and read the latest — and `/api/v1/analytics/abcd/settings`, the ABCD
//! tiering setting (issue 18 §4).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use chrono::NaiveDate;
use patron_analytics::TimeUnit;
use patron_store::abcd::AbcdSettings;
use patron_store::validations::ValidationRecord;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::analytics::business_today;
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, Json};
use crate::AppState;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/analytics/validations", post(create))
        .route("/analytics/validations/latest", get(latest))
        .route("/analytics/abcd/settings", get(abcd_settings).put(put_abcd_settings))
}

/// What to validate.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidationRequest {
    /// Last day of the calibration period (`YYYY-MM-DD`, inclusive): the models are fitted on
    /// the orders up to it, for the customers whose first purchase is on or before it.
    #[schema(value_type = String, format = Date, example = "2025-12-31")]
    pub calibration_end: String,
    /// Last day of the holdout period (`YYYY-MM-DD`, inclusive; after `calibration_end`, not
    /// after today; default today in the business time zone).
    #[schema(value_type = Option<String>, format = Date, example = "2026-06-30")]
    pub holdout_end: Option<String>,
    /// Time unit of α and `holdout_length`: `days` (default) or `weeks`.
    pub time_unit: Option<String>,
}

/// The calibration fit of BG/NBD.
#[derive(Serialize, ToSchema)]
pub struct BgNbdFitDoc {
    /// r.
    pub r: f64,
    /// α in the time unit.
    pub alpha: f64,
    /// a.
    pub a: f64,
    /// b.
    pub b: f64,
    /// Total log-likelihood.
    pub log_likelihood: f64,
    /// Whether the optimiser converged.
    pub converged: bool,
}

/// The calibration fit of Gamma-Gamma (γ in minor units).
#[derive(Serialize, ToSchema)]
pub struct GammaGammaFitDoc {
    /// p.
    pub p: f64,
    /// q.
    pub q: f64,
    /// γ (minor units).
    pub gamma: f64,
    /// Whether the optimiser converged.
    pub converged: bool,
}

/// Conditional expectations of one calibration-frequency bucket.
#[derive(Serialize, ToSchema)]
pub struct FrequencyBucketDoc {
    /// Calibration repeat purchase days, 0–6; 7 means 7 or more.
    #[schema(minimum = 0, maximum = 7)]
    pub frequency: u32,
    /// Customers in the bucket.
    pub customers: u64,
    /// Their mean holdout purchase days (null for an empty bucket).
    pub actual_mean: Option<f64>,
    /// Their mean E[X(holdout_length) | x, t_x, T] (null for an empty bucket).
    pub predicted_mean: Option<f64>,
}

/// Sums over all customers.
#[derive(Serialize, ToSchema)]
pub struct TotalDoc {
    /// Holdout purchase days.
    pub actual: f64,
    /// Expected holdout purchase days.
    pub predicted: f64,
}

/// One bucket of the calibration histogram.
#[derive(Serialize, ToSchema)]
pub struct HistogramBucketDoc {
    /// Calibration repeat purchase days, 0–6; 7 means 7 or more.
    #[schema(minimum = 0, maximum = 7)]
    pub frequency: u32,
    /// Customers with that many.
    pub actual_customers: u64,
    /// Σᵢ P(X(Tᵢ) = frequency) (FHL 2005 eq. 8; 7+: customers less the rest).
    pub expected_customers: f64,
}

/// One week of the tracking chart.
#[derive(Serialize, ToSchema)]
pub struct TrackingWeekDoc {
    /// First day of the week.
    pub period_start: NaiveDate,
    /// Repeat purchase days of the base in the week.
    pub actual: u64,
    /// The model's expectation.
    pub expected: f64,
}

/// Gamma-Gamma against the holdout spend (minor units).
#[derive(Serialize, ToSchema)]
pub struct SpendDoc {
    /// Customers with repeat purchases in both periods.
    pub customers: u64,
    /// Their mean holdout purchase-day spend (null without customers).
    pub actual_mean: Option<f64>,
    /// Their mean E[M | x, m] (null without customers or without a spend fit).
    pub predicted_mean: Option<f64>,
}

/// Summary errors.
#[derive(Serialize, ToSchema)]
pub struct ErrorsDoc {
    /// Mean |actual − predicted| holdout purchase days per customer.
    pub mae_per_customer: f64,
    /// (predicted − actual) / actual over the base; positive = over-forecast (null when nobody
    /// bought in the holdout).
    pub total_relative_error: Option<f64>,
}

/// A holdout validation (Fader, Hardie & Lee 2005): the models fitted on the calibration period
/// and their forecasts against the holdout period. The same document as `patron validate
/// --out validation.json`, with `id` and `created_at`; money in minor units. See docs/analytics.md.
#[derive(Serialize, ToSchema)]
pub struct ValidationDoc {
    /// Id of the stored validation.
    pub id: i64,
    /// When it was made.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Last day of the calibration period.
    pub calibration_end: NaiveDate,
    /// Last day of the holdout period.
    pub holdout_end: NaiveDate,
    /// `days` or `weeks`.
    #[schema(value_type = String, example = "days")]
    pub time_unit: String,
    /// holdout_end − calibration_end in the time unit.
    pub holdout_length: f64,
    /// Customers whose first purchase is in the calibration period.
    pub customers: u64,
    /// The calibration fit.
    pub bgnbd: BgNbdFitDoc,
    /// The calibration fit of the spend model (null when it could not be fitted).
    pub gamma_gamma: Option<GammaGammaFitDoc>,
    /// Conditional expectations, buckets 0–7 (FHL 2005 figure 4).
    pub by_frequency: Vec<FrequencyBucketDoc>,
    /// Sums over all customers.
    pub total: TotalDoc,
    /// Calibration repeat purchases, actual and expected (FHL 2005 figure 3).
    pub calibration_histogram: Vec<HistogramBucketDoc>,
    /// Weekly repeat purchase days over both periods (FHL 2005 figures 1–2).
    pub tracking: Vec<TrackingWeekDoc>,
    /// The spend check.
    pub spend: SpendDoc,
    /// Summary errors.
    pub errors: ErrorsDoc,
    /// What was left out, and why.
    pub warnings: Vec<String>,
}

fn invalid(field: &str, message: String) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message).field(field)
}

fn date(field: &str, s: &str) -> ApiResult<NaiveDate> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").map_err(|_| invalid(field, format!("{field} must be a date YYYY-MM-DD, not {s:?}")))
}

/// The dates and unit a request describes.
pub fn request_settings(req: &ValidationRequest, today: NaiveDate) -> ApiResult<(NaiveDate, NaiveDate, TimeUnit)> {
    let calibration_end = date("calibration_end", &req.calibration_end)?;
    let holdout_end = match req.holdout_end.as_deref().filter(|s| !s.trim().is_empty()) {
        None => today,
        Some(s) => date("holdout_end", s)?,
    };
    // Orders after today do not exist yet: a holdout reaching past today would count them as
    // missed purchases.
    if holdout_end > today {
        return Err(invalid("holdout_end", format!("holdout_end {holdout_end} is after today ({today})")));
    }
    if holdout_end <= calibration_end {
        return Err(invalid("holdout_end", format!("holdout_end {holdout_end} must be after calibration_end {calibration_end}")));
    }
    let unit = match req.time_unit.as_deref() {
        None | Some("days") => TimeUnit::Days,
        Some("weeks") => TimeUnit::Weeks,
        Some(other) => return Err(invalid("time_unit", format!("time_unit must be days or weeks, not {other:?}"))),
    };
    Ok((calibration_end, holdout_end, unit))
}

/// Validates the models on the whole base (Fader–Hardie–Lee holdout check): fits BG/NBD and
/// Gamma-Gamma on the orders up to `calibration_end` and sets their forecasts against the
/// purchase days up to `holdout_end`; stores and returns the document. Managers and admins.
/// 422 for malformed dates, a holdout end not after the calibration end or after today, and a
/// calibration period without customers.
#[utoipa::path(post, path = "/api/v1/analytics/validations", tag = "analytics", request_body = ValidationRequest,
    responses((status = 201, body = ValidationDoc), (status = 400, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Json(req): Json<ValidationRequest>,
) -> ApiResult<(StatusCode, Json<ValidationRecord>)> {
    let (calibration_end, holdout_end, unit) = request_settings(&req, business_today(&state))?;
    let record = state.store.run_validation(&actor, calibration_end, holdout_end, unit).await?;
    Ok((StatusCode::CREATED, Json(record)))
}

/// The latest holdout validation (404 before the first). It describes the whole base, not any
/// one customer: every role that reads analytics may see it.
#[utoipa::path(get, path = "/api/v1/analytics/validations/latest", tag = "analytics",
    responses((status = 200, body = ValidationDoc), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn latest(State(state): State<AppState>, _auth: Auth) -> ApiResult<Json<ValidationRecord>> {
    state.store.latest_validation().await?.map(Json).ok_or_else(|| ApiError::not_found("validation"))
}

/// The ABCD tiering setting: `abcd_basis` `value` or `value_loyalty`, and the latter's cut points.
#[utoipa::path(get, path = "/api/v1/analytics/abcd/settings", tag = "analytics",
    responses((status = 200, body = AbcdSettings), (status = 403, body = crate::error::ErrorBody)))]
pub async fn abcd_settings(State(state): State<AppState>, _auth: Auth) -> ApiResult<Json<AbcdSettings>> {
    Ok(Json(state.store.abcd_settings().await?))
}

/// Replaces the ABCD tiering setting (audited); the next analysis run uses it and its report
/// states it (`report.abcd_definition`).
#[utoipa::path(put, path = "/api/v1/analytics/abcd/settings", tag = "analytics", request_body = AbcdSettings,
    responses((status = 200, body = AbcdSettings), (status = 403, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn put_abcd_settings(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Json(s): Json<AbcdSettings>,
) -> ApiResult<Json<AbcdSettings>> {
    Ok(Json(state.store.set_abcd_settings(&actor, &s).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_settings_check_every_field() {
        let today = NaiveDate::from_ymd_opt(2026, 6, 30).unwrap_or_default();
        let req = |c: &str, h: Option<&str>, u: Option<&str>| ValidationRequest {
            calibration_end: c.into(),
            holdout_end: h.map(Into::into),
            time_unit: u.map(Into::into),
        };
        let (c, h, u) = request_settings(&req("2025-12-31", None, None), today).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((c.to_string(), h, u), ("2025-12-31".to_owned(), today, TimeUnit::Days));
        let (_, h, u) = request_settings(&req("2025-12-31", Some("2026-03-31"), Some("weeks")), today).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((h.to_string(), u), ("2026-03-31".to_owned(), TimeUnit::Weeks));
        for (r, field) in [
            (req("31/12/2025", None, None), "calibration_end"),
            (req("2025-12-31", Some("2026-02-30"), None), "holdout_end"),
            (req("2025-12-31", Some("2025-12-31"), None), "holdout_end"),
            (req("2025-12-31", Some("2025-06-30"), None), "holdout_end"),
            (req("2025-12-31", Some("2026-07-01"), None), "holdout_end"),
            (req("2025-12-31", None, Some("months")), "time_unit"),
        ] {
            let e = request_settings(&r, today).err().unwrap_or_else(|| panic!("{r:?} accepted"));
            assert_eq!((e.status, e.field.as_deref()), (StatusCode::UNPROCESSABLE_ENTITY, Some(field)), "{r:?}");
        }
    }
}
