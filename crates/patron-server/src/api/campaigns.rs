//! `/api/v1/campaigns`: campaigns to a segment on a channel with a per-campaign holdout,
//! launched once (a set-based write of the outbox in one transaction), their counts, their
//! response/conversion/lift report, and the global control group's report.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use chrono::{Datelike, Duration, NaiveDate};
use patron_store::engagement::campaigns::{Campaign, NewCampaign};
use patron_store::engagement::report::{CampaignReport, GlobalControlReport};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, Json, Path, Query};
use crate::AppState;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/campaigns", get(list).post(create))
        .route("/campaigns/global-control/report", get(global_control_report))
        .route("/campaigns/{id}", get(get_one))
        .route("/campaigns/{id}/launch", post(launch))
        .route("/campaigns/{id}/report", get(report))
}

/// Campaigns, newest first.
#[derive(Serialize, ToSchema)]
pub struct CampaignList {
    /// At most 500 (counts at launch; the campaign itself has its message counts).
    pub items: Vec<Campaign>,
}

/// Lists campaigns.
#[utoipa::path(get, path = "/api/v1/campaigns", tag = "engagement", responses((status = 200, body = CampaignList)))]
pub async fn list(State(state): State<AppState>, _auth: Auth) -> ApiResult<Json<CampaignList>> {
    Ok(Json(CampaignList { items: state.store.campaigns().await? }))
}

/// Creates a draft campaign (audited). The segment (a saved segment's key or a rule) is checked
/// and kept as it is now; the template must be a marketing template of the channel.
#[utoipa::path(post, path = "/api/v1/campaigns", tag = "engagement", request_body = NewCampaign,
    responses((status = 201, body = Campaign), (status = 403, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Json(c): Json<NewCampaign>,
) -> ApiResult<(StatusCode, Json<Campaign>)> {
    Ok((StatusCode::CREATED, Json(state.store.create_campaign(&actor, c).await?)))
}

/// A campaign with its counts: audience, holdout, global control, no consent, capped (at
/// launch) and queued, sent, failed, skipped (its messages now).
#[utoipa::path(get, path = "/api/v1/campaigns/{id}", tag = "engagement", params(("id" = i64, Path, description = "campaign id")),
    responses((status = 200, body = Campaign), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get_one(State(state): State<AppState>, _auth: Auth, Path(id): Path<i64>) -> ApiResult<Json<Campaign>> {
    Ok(Json(state.store.campaign(id).await?))
}

/// Launches a campaign (audited): the audience is taken now and its messages are queued, the
/// holdout recorded as skipped — one transaction. Launching again changes nothing.
#[utoipa::path(post, path = "/api/v1/campaigns/{id}/launch", tag = "engagement", params(("id" = i64, Path, description = "campaign id")),
    responses((status = 200, body = Campaign), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn launch(State(state): State<AppState>, Auth(actor): Auth, Path(id): Path<i64>) -> ApiResult<Json<Campaign>> {
    Ok(Json(state.store.launch_campaign(&actor, id).await?))
}

/// Response, conversion and lift: per group (treated, control) n, responders, converters,
/// revenue; the conversion difference with Newcombe's 95% interval, relative lift, revenue per
/// recipient difference with Welch's 95% interval, incremental orders and revenue; cumulative
/// conversion by day. Groups under 30 are "too few to tell" (no lift).
#[utoipa::path(get, path = "/api/v1/campaigns/{id}/report", tag = "engagement", params(("id" = i64, Path, description = "campaign id")),
    responses((status = 200, body = CampaignReport), (status = 404, body = crate::error::ErrorBody)))]
pub async fn report(State(state): State<AppState>, _auth: Auth, Path(id): Path<i64>) -> ApiResult<Json<CampaignReport>> {
    Ok(Json(state.store.campaign_report(id).await?))
}

/// The period of the global control report.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PeriodParams {
    /// First day (business time zone); default 90 days before `to`.
    pub from: Option<NaiveDate>,
    /// Last day, inclusive; default today. At most ten years after `from`.
    pub to: Option<NaiveDate>,
}

/// Revenue per customer of the global control group (no marketing at all) against everyone
/// else over a period, with Welch's 95% interval of the difference.
#[utoipa::path(get, path = "/api/v1/campaigns/global-control/report", tag = "engagement", params(PeriodParams),
    responses((status = 200, body = GlobalControlReport), (status = 400, body = crate::error::ErrorBody)))]
pub async fn global_control_report(
    State(state): State<AppState>,
    _auth: Auth,
    Query(p): Query<PeriodParams>,
) -> ApiResult<Json<GlobalControlReport>> {
    let today = state.store.now().with_timezone(&state.store.config.business_tz).date_naive();
    let to = p.to.unwrap_or(today);
    let from = p.from.or_else(|| to.checked_sub_signed(Duration::days(89))).unwrap_or(to);
    if from.year() < 1900 || to.year() > 9999 {
        return Err(ApiError::bad_request("from", "the period lies between the years 1900 and 9999"));
    }
    if to < from || (to - from).num_days() > 3660 {
        return Err(ApiError::bad_request("to", "the period ends on or after its first day, at most ten years later"));
    }
    Ok(Json(state.store.global_control_report(from, to).await?))
}
