//! `/api/v1/surveys`: NPS, CSAT, listen and custom surveys — definitions, invitations (each
//! link answered once to the caller), results; a customer's answers; churn reasons and the
//! churn-by-segment-and-reason report. Customers answer through `/api/v1/public/surveys/{token}`
//! (`public`) or the page `/p/s/{token}`.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use chrono::NaiveDate;
use patron_store::service::churn::{ChurnReason, ChurnReasonInput, ChurnReasonReport};
use patron_store::surveys::{InvitationRequest, InviteOutcome, NewSurvey, Survey, SurveyAnswer, SurveyPatch, SurveyResults};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::tickets::public_base;
use crate::auth::{check_customer_access, Auth};
use crate::error::{ApiError, ApiResult, Json, Path, Query};
use crate::AppState;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/surveys", get(list).post(create))
        .route("/surveys/{id}", get(get_one).patch(update))
        .route("/surveys/{id}/invitations", post(invite))
        .route("/surveys/{id}/results", get(results))
        .route("/customers/{id}/survey-answers", get(customer_answers))
        .route("/customers/{id}/churn-reason", get(churn_reason).put(set_churn_reason))
        .route("/service/churn-reasons", get(churn_report))
}

/// Every survey.
#[derive(Serialize, ToSchema)]
pub struct SurveyList {
    /// Newest first.
    pub items: Vec<Survey>,
}

/// Lists the surveys.
#[utoipa::path(get, path = "/api/v1/surveys", tag = "surveys", responses((status = 200, body = SurveyList)))]
pub async fn list(State(state): State<AppState>, _auth: Auth) -> ApiResult<Json<SurveyList>> {
    Ok(Json(SurveyList { items: state.store.surveys().await? }))
}

/// Creates a survey (manager+): `nps`, `csat` and `listen` have their questions built in,
/// `custom` takes `questions`; `ask_switch` adds "would you switch for a 2% lower price?";
/// a `trigger` invites customers on its own.
#[utoipa::path(post, path = "/api/v1/surveys", tag = "surveys", request_body = NewSurvey,
    responses((status = 201, body = Survey), (status = 403, body = crate::error::ErrorBody)))]
pub async fn create(State(state): State<AppState>, Auth(actor): Auth, Json(s): Json<NewSurvey>) -> ApiResult<(StatusCode, Json<Survey>)> {
    Ok((StatusCode::CREATED, Json(state.store.create_survey(&actor, s).await?)))
}

/// One survey.
#[utoipa::path(get, path = "/api/v1/surveys/{id}", tag = "surveys", params(("id" = i64, Path, description = "survey id")),
    responses((status = 200, body = Survey)))]
pub async fn get_one(State(state): State<AppState>, _auth: Auth, Path(id): Path<i64>) -> ApiResult<Json<Survey>> {
    Ok(Json(state.store.survey(id).await?))
}

/// Renames, pauses (`active: false`: its links stop accepting answers) or resumes a survey, or
/// changes its re-contact limit (manager+).
#[utoipa::path(patch, path = "/api/v1/surveys/{id}", tag = "surveys", params(("id" = i64, Path, description = "survey id")), request_body = SurveyPatch,
    responses((status = 200, body = Survey), (status = 403, body = crate::error::ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<i64>,
    Json(p): Json<SurveyPatch>,
) -> ApiResult<Json<Survey>> {
    Ok(Json(state.store.update_survey(&actor, id, p).await?))
}

/// Invites customers (`customer_ids`, or a `segment`'s members; at most 10,000): one
/// invitation each, not within the survey's re-contact limit. Each link is in this response
/// only (agents invite their own customers).
#[utoipa::path(post, path = "/api/v1/surveys/{id}/invitations", tag = "surveys", params(("id" = i64, Path, description = "survey id")),
    request_body = InvitationRequest, responses((status = 201, body = InviteOutcome), (status = 409, body = crate::error::ErrorBody)))]
pub async fn invite(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<i64>,
    headers: HeaderMap,
    Json(r): Json<InvitationRequest>,
) -> ApiResult<(StatusCode, Json<InviteOutcome>)> {
    let mut out = state.store.invite(&actor, id, r).await?;
    let base = public_base(&state, &headers);
    for i in &mut out.invited {
        i.url = format!("{base}/p/s/{}", i.token);
    }
    Ok((StatusCode::CREATED, Json(out)))
}

/// The period and breakdown of results.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ResultsParams {
    /// First day (default: 364 days before `to`).
    pub from: Option<NaiveDate>,
    /// Last day, included (default: today).
    pub to: Option<NaiveDate>,
    /// Break down by `tier`, `segment` (RFM class), `store` or `agent`.
    #[param(pattern = "^(tier|segment|store|agent)$")]
    pub by: Option<String>,
}

/// A survey's results in a period (manager+): responses and rate, NPS, CSAT, distribution,
/// keywords of the open answers, the trend by month, and a breakdown.
#[utoipa::path(get, path = "/api/v1/surveys/{id}/results", tag = "surveys", params(("id" = i64, Path, description = "survey id"), ResultsParams),
    responses((status = 200, body = SurveyResults), (status = 403, body = crate::error::ErrorBody)))]
pub async fn results(
    State(state): State<AppState>,
    Auth(_actor): Auth,
    Path(id): Path<i64>,
    Query(p): Query<ResultsParams>,
) -> ApiResult<Json<SurveyResults>> {
    let tz = state.store.config.business_tz;
    let to = p.to.unwrap_or_else(|| state.store.now().with_timezone(&tz).date_naive());
    let from = p.from.or_else(|| to.checked_sub_signed(chrono::Duration::days(364)));
    let period = super::service::period(&state, from, Some(to))?;
    let r = state.store.survey_results(id, period, p.by.as_deref()).await.map_err(|e| match e {
        patron_store::StoreError::Invalid { field: Some(f), message } => ApiError::bad_request(&f, message),
        other => other.into(),
    })?;
    Ok(Json(r))
}

/// A customer's survey answers.
#[derive(Serialize, ToSchema)]
pub struct AnswerList {
    /// Newest first (at most 100).
    pub items: Vec<SurveyAnswer>,
}

/// A customer's survey answers, newest first.
#[utoipa::path(get, path = "/api/v1/customers/{id}/survey-answers", tag = "surveys", params(("id" = i64, Path, description = "customer id")),
    responses((status = 200, body = AnswerList), (status = 403, body = crate::error::ErrorBody)))]
pub async fn customer_answers(State(state): State<AppState>, Auth(actor): Auth, Path(id): Path<i64>) -> ApiResult<Json<AnswerList>> {
    check_customer_access(&state, &actor, id).await?;
    Ok(Json(AnswerList { items: state.store.customer_survey_answers(id).await? }))
}

/// A customer's churn reason (null when none is recorded).
#[utoipa::path(get, path = "/api/v1/customers/{id}/churn-reason", tag = "surveys", params(("id" = i64, Path, description = "customer id")),
    responses((status = 200, body = Option<ChurnReason>), (status = 403, body = crate::error::ErrorBody)))]
pub async fn churn_reason(State(state): State<AppState>, Auth(actor): Auth, Path(id): Path<i64>) -> ApiResult<Json<Option<ChurnReason>>> {
    check_customer_access(&state, &actor, id).await?;
    Ok(Json(state.store.churn_reason(id).await?))
}

/// Records why a churned customer left (a reason of the service settings' list; replaces an
/// earlier one). 409 when the latest analysis does not mark the customer churned.
#[utoipa::path(put, path = "/api/v1/customers/{id}/churn-reason", tag = "surveys", params(("id" = i64, Path, description = "customer id")),
    request_body = ChurnReasonInput,
    responses((status = 200, body = ChurnReason), (status = 403, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
pub async fn set_churn_reason(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<i64>,
    Json(r): Json<ChurnReasonInput>,
) -> ApiResult<Json<ChurnReason>> {
    check_customer_access(&state, &actor, id).await?;
    Ok(Json(state.store.set_churn_reason(&actor, id, r).await?))
}

/// The breakdown of the churn report.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ChurnParams {
    /// `tier` (ABCD, default) or `rfm` (RFM class).
    #[param(pattern = "^(tier|rfm)$")]
    pub by: Option<String>,
}

/// Churned customers (by the latest analysis) by segment and reason (manager+).
#[utoipa::path(get, path = "/api/v1/service/churn-reasons", tag = "surveys", params(ChurnParams),
    responses((status = 200, body = ChurnReasonReport), (status = 403, body = crate::error::ErrorBody)))]
pub async fn churn_report(
    State(state): State<AppState>,
    Auth(_actor): Auth,
    Query(p): Query<ChurnParams>,
) -> ApiResult<Json<ChurnReasonReport>> {
    let by = p.by.unwrap_or_else(|| "tier".into());
    if by != "tier" && by != "rfm" {
        return Err(ApiError::bad_request("by", "by must be tier or rfm"));
    }
    Ok(Json(state.store.churn_reason_report(&by).await?))
}
