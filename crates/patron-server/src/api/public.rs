//! `/api/v1/public/…`: what customers reach through a link, without a login. The token in the
//! path is the credential; every address is rate-limited (`ratelimit`), and a response says
//! nothing about the customer beyond what the link's holder already knows.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use patron_store::surveys::{AnswerInput, PublicSurvey};
use patron_store::tickets::flow::{ConfirmationAnswer, ConfirmationView};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiResult, Json, Path};
use crate::AppState;

/// Routes of this module (the caller adds the rate limit).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/public/confirmations/{token}", get(confirmation).post(answer_confirmation))
        .route("/public/surveys/{token}", get(survey).post(answer_survey))
}

/// What the customer's answer did.
#[derive(Serialize, ToSchema)]
pub struct ConfirmationOutcome {
    /// `confirmed` or `reopened`.
    pub status: String,
}

/// The resolved ticket a confirmation link is about: its subject and when it was resolved.
/// Unknown or forged links answer 404, expired ones 410, answered ones 409.
#[utoipa::path(get, path = "/api/v1/public/confirmations/{token}", tag = "public",
    params(("token" = String, Path, description = "the token of the link", pattern = "^[0-9a-f]{64}$")),
    responses((status = 200, body = ConfirmationView), (status = 409, body = crate::error::ErrorBody)))]
pub async fn confirmation(State(state): State<AppState>, Path(token): Path<String>) -> ApiResult<Json<ConfirmationView>> {
    Ok(Json(state.store.confirmation_view(&token).await?))
}

/// The customer's answer: solved (`confirmed: true`, the ticket is confirmed) or not (the
/// ticket is reopened with the comment). A link answers once.
#[utoipa::path(post, path = "/api/v1/public/confirmations/{token}", tag = "public",
    params(("token" = String, Path, description = "the token of the link", pattern = "^[0-9a-f]{64}$")), request_body = ConfirmationAnswer,
    responses((status = 200, body = ConfirmationOutcome), (status = 409, body = crate::error::ErrorBody)))]
pub async fn answer_confirmation(
    State(state): State<AppState>,
    Path(token): Path<String>,
    Json(a): Json<ConfirmationAnswer>,
) -> ApiResult<Json<ConfirmationOutcome>> {
    let t = state.store.answer_confirmation(&token, a).await?;
    Ok(Json(ConfirmationOutcome { status: t.status }))
}

/// A survey link's questions and a greeting with the customer's given name. Unknown or forged
/// links answer 404, expired ones (or a closed survey) 410, answered ones 409.
#[utoipa::path(get, path = "/api/v1/public/surveys/{token}", tag = "public",
    params(("token" = String, Path, description = "the token of the link", pattern = "^[0-9a-f]{64}$")),
    responses((status = 200, body = PublicSurvey), (status = 409, body = crate::error::ErrorBody)))]
pub async fn survey(State(state): State<AppState>, Path(token): Path<String>) -> ApiResult<Json<PublicSurvey>> {
    Ok(Json(state.store.public_survey(&token).await?))
}

/// What an answer did.
#[derive(Serialize, ToSchema)]
pub struct SurveyOutcome {
    /// `answered`.
    pub status: &'static str,
}

/// The customer's answers, once per link: `{answers: [{question, value}]}` (201). A second
/// answer is 409.
#[utoipa::path(post, path = "/api/v1/public/surveys/{token}", tag = "public",
    params(("token" = String, Path, description = "the token of the link", pattern = "^[0-9a-f]{64}$")), request_body = AnswerInput,
    responses((status = 201, body = SurveyOutcome), (status = 409, body = crate::error::ErrorBody)))]
pub async fn answer_survey(
    State(state): State<AppState>,
    Path(token): Path<String>,
    Json(a): Json<AnswerInput>,
) -> ApiResult<(StatusCode, Json<SurveyOutcome>)> {
    state.store.answer_survey(&token, a).await?;
    Ok((StatusCode::CREATED, Json(SurveyOutcome { status: "answered" })))
}
