//! `/api/v1/service-policies`, `/api/v1/service/…` and `/api/v1/calendar`: service by value —
//! each tier's policy, the business calendar the clocks count in, the service settings, and the
//! reports (complaint rate, Pareto of causes, agents' KPIs).

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use chrono::NaiveDate;
use patron_store::calendar::BusinessCalendar;
use patron_store::service::reports::{parse_month, ComplaintRates, Pareto, Period, ServiceKpis};
use patron_store::service::{PolicyInput, ServicePolicy};
use patron_store::settings::ServiceSettings;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, Json, Path, Query};
use crate::AppState;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/service-policies", get(policies))
        .route("/service-policies/{tier}", get(policy).put(put_policy))
        .route("/calendar", get(calendar).put(put_calendar))
        .route("/service/settings", get(settings).put(put_settings))
        .route("/service/pareto", get(pareto))
        .route("/service/complaint-rate", get(complaint_rate))
        .route("/service/kpis", get(kpis))
}

/// Every tier's service policy (A to D, then `default` for customers without scores).
#[utoipa::path(get, path = "/api/v1/service-policies", tag = "service", responses((status = 200, body = Vec<ServicePolicy>)))]
pub async fn policies(State(state): State<AppState>, _auth: Auth) -> ApiResult<Json<Vec<ServicePolicy>>> {
    Ok(Json(state.store.service_policies().await?))
}

/// One tier's service policy.
#[utoipa::path(get, path = "/api/v1/service-policies/{tier}", tag = "service",
    params(("tier" = String, Path, description = "`A`, `B`, `C`, `D` or `default`", pattern = "^(A|B|C|D|default)$")),
    responses((status = 200, body = ServicePolicy)))]
pub async fn policy(State(state): State<AppState>, _auth: Auth, Path(tier): Path<String>) -> ApiResult<Json<ServicePolicy>> {
    Ok(Json(state.store.service_policy(&tier).await.map_err(|_| ApiError::not_found("tier"))?))
}

/// Replaces a tier's policy (admin). Open tickets keep the clocks they opened with.
#[utoipa::path(put, path = "/api/v1/service-policies/{tier}", tag = "service",
    params(("tier" = String, Path, description = "`A`, `B`, `C`, `D` or `default`", pattern = "^(A|B|C|D|default)$")), request_body = PolicyInput,
    responses((status = 200, body = ServicePolicy), (status = 403, body = crate::error::ErrorBody)))]
pub async fn put_policy(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(tier): Path<String>,
    Json(p): Json<PolicyInput>,
) -> ApiResult<Json<ServicePolicy>> {
    if !patron_store::service::TIERS.contains(&tier.as_str()) {
        return Err(ApiError::not_found("tier"));
    }
    Ok(Json(state.store.set_service_policy(&actor, &tier, &p).await?))
}

/// The business calendar: working hours per weekday, holidays and make-up working days.
#[utoipa::path(get, path = "/api/v1/calendar", tag = "service", responses((status = 200, body = BusinessCalendar)))]
pub async fn calendar(State(state): State<AppState>, _auth: Auth) -> ApiResult<Json<BusinessCalendar>> {
    Ok(Json(state.store.calendar().await?))
}

/// Replaces the business calendar (admin).
#[utoipa::path(put, path = "/api/v1/calendar", tag = "service", request_body = BusinessCalendar,
    responses((status = 200, body = BusinessCalendar), (status = 403, body = crate::error::ErrorBody)))]
pub async fn put_calendar(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Json(cal): Json<BusinessCalendar>,
) -> ApiResult<Json<BusinessCalendar>> {
    state.store.set_calendar(&actor, &cal).await?;
    Ok(Json(state.store.calendar().await?))
}

/// The service settings: confirmation period, warning lead, complaint target, root causes,
/// churn reasons.
#[utoipa::path(get, path = "/api/v1/service/settings", tag = "service", responses((status = 200, body = ServiceSettings)))]
pub async fn settings(State(state): State<AppState>, _auth: Auth) -> ApiResult<Json<ServiceSettings>> {
    Ok(Json(state.store.service_settings().await?))
}

/// Replaces the service settings (admin).
#[utoipa::path(put, path = "/api/v1/service/settings", tag = "service", request_body = ServiceSettings,
    responses((status = 200, body = ServiceSettings), (status = 403, body = crate::error::ErrorBody)))]
pub async fn put_settings(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Json(s): Json<ServiceSettings>,
) -> ApiResult<Json<ServiceSettings>> {
    state.store.set_service_settings(&actor, &s).await?;
    Ok(Json(state.store.service_settings().await?))
}

/// A period of days in the business time zone.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PeriodParams {
    /// First day (default: 30 days before `to`).
    pub from: Option<NaiveDate>,
    /// Last day, included (default: today).
    pub to: Option<NaiveDate>,
}

/// A period and the kind of ticket counted.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ParetoParams {
    /// First day (default: 30 days before `to`).
    pub from: Option<NaiveDate>,
    /// Last day, included (default: today).
    pub to: Option<NaiveDate>,
    /// The ticket kind (default `complaint`).
    #[param(pattern = "^(complaint|inquiry|suggestion|praise)$")]
    pub kind: Option<String>,
}

pub(crate) fn period(state: &AppState, from: Option<NaiveDate>, to: Option<NaiveDate>) -> ApiResult<Period> {
    let tz = state.store.config.business_tz;
    let to = to.unwrap_or_else(|| state.store.now().with_timezone(&tz).date_naive());
    let from = from.unwrap_or_else(|| to - chrono::Duration::days(29));
    if to < from {
        return Err(ApiError::bad_request("to", "to must not be before from"));
    }
    Period::days(&tz, from, to).map_err(|e| ApiError::bad_request("from", e.to_string()))
}

/// The Pareto of causes: tickets of a kind (default complaints) opened in the period, by cause
/// (the root cause when resolved, else the intake category), with the vital few that make 80%
/// (manager+).
#[utoipa::path(get, path = "/api/v1/service/pareto", tag = "service", params(ParetoParams),
    responses((status = 200, body = Pareto), (status = 403, body = crate::error::ErrorBody)))]
pub async fn pareto(State(state): State<AppState>, Auth(_actor): Auth, Query(p): Query<ParetoParams>) -> ApiResult<Json<Pareto>> {
    let period = period(&state, p.from, p.to)?;
    Ok(Json(state.store.pareto(p.kind.as_deref().unwrap_or("complaint"), period).await?))
}

/// Complaints per 1,000 completed orders in the period, overall, by tier and by store, against
/// the target (manager+).
#[utoipa::path(get, path = "/api/v1/service/complaint-rate", tag = "service", params(PeriodParams),
    responses((status = 200, body = ComplaintRates), (status = 403, body = crate::error::ErrorBody)))]
pub async fn complaint_rate(
    State(state): State<AppState>,
    Auth(_actor): Auth,
    Query(p): Query<PeriodParams>,
) -> ApiResult<Json<ComplaintRates>> {
    let period = period(&state, p.from, p.to)?;
    Ok(Json(state.store.complaint_rates(period).await?))
}

/// A month.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MonthParams {
    /// `YYYY-MM` (default: this month).
    #[param(pattern = "^(19[0-9]{2}|20[0-9]{2}|2100)-(0[1-9]|1[0-2])$")]
    pub month: Option<String>,
}

/// Service KPIs per agent for a month: tickets handled, median first-response and resolution
/// minutes, SLA hit rate, reopened rate, CSAT, praise (manager+).
#[utoipa::path(get, path = "/api/v1/service/kpis", tag = "service", params(MonthParams),
    responses((status = 200, body = ServiceKpis), (status = 403, body = crate::error::ErrorBody)))]
pub async fn kpis(State(state): State<AppState>, Auth(_actor): Auth, Query(p): Query<MonthParams>) -> ApiResult<Json<ServiceKpis>> {
    let month = match p.month {
        Some(m) => parse_month(&m).map_err(|e| ApiError::bad_request("month", e.to_string()))?,
        None => {
            let today = state.store.now().with_timezone(&state.store.config.business_tz).date_naive();
            NaiveDate::from_ymd_opt(chrono::Datelike::year(&today), chrono::Datelike::month(&today), 1).unwrap_or(today)
        }
    };
    Ok(Json(state.store.service_kpis(month).await?))
}
