//! `/api/v1/templates`: message templates per channel, refused with the lint's reasons when
//! they greet generically or say nothing personal (422), and previewed for one customer.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use patron_store::engagement::templates::{CreatedTemplate, LintReport, MessageTemplate, NewTemplate, Rendered};
use patron_store::engagement::EngagementSettings;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::tickets::public_base;
use crate::auth::{check_customer_access, Auth};
use crate::error::{ApiResult, ErrorDetail, Json, Path};
use crate::AppState;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/templates", get(list).post(create))
        .route("/templates/lint", post(lint))
        .route("/templates/{id}", get(get_one))
        .route("/templates/{id}/preview", post(preview))
        .route("/engagement/settings", get(settings).put(put_settings))
}

/// The engagement settings: global control share and salt, frequency caps, quiet hours, rate,
/// attempts, and the generic greetings the lint refuses.
#[utoipa::path(get, path = "/api/v1/engagement/settings", tag = "engagement", responses((status = 200, body = EngagementSettings)))]
pub async fn settings(State(state): State<AppState>, _auth: Auth) -> ApiResult<Json<EngagementSettings>> {
    Ok(Json(state.store.engagement_settings().await?))
}

/// Replaces the engagement settings (admin; audited).
#[utoipa::path(put, path = "/api/v1/engagement/settings", tag = "engagement", request_body = EngagementSettings,
    responses((status = 200, body = EngagementSettings), (status = 403, body = crate::error::ErrorBody)))]
pub async fn put_settings(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Json(s): Json<EngagementSettings>,
) -> ApiResult<Json<EngagementSettings>> {
    state.store.set_engagement_settings(&actor, &s).await?;
    Ok(Json(state.store.engagement_settings().await?))
}

/// Every template.
#[derive(Serialize, ToSchema)]
pub struct TemplateList {
    /// Newest first.
    pub items: Vec<MessageTemplate>,
}

/// The answer to a template the lint refuses: the error envelope (code `lint`) and every reason.
#[derive(Serialize, ToSchema)]
pub struct LintRejection {
    /// The first reason.
    pub error: ErrorDetail,
    /// All reasons and warnings (absent when the body itself was invalid JSON or against the
    /// schema: then the envelope alone says why).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lint: Option<LintReport>,
}

/// Lists the templates.
#[utoipa::path(get, path = "/api/v1/templates", tag = "engagement", responses((status = 200, body = TemplateList)))]
pub async fn list(State(state): State<AppState>, _auth: Auth) -> ApiResult<Json<TemplateList>> {
    Ok(Json(TemplateList { items: state.store.templates().await? }))
}

/// Creates a template (manager+). The personalisation lint runs first: a generic greeting (also
/// as a fallback value), an unknown variable, a marketing message without a personal variable
/// are refused with 422 and every reason under `lint`; warnings come back with the template.
#[utoipa::path(post, path = "/api/v1/templates", tag = "engagement", request_body = NewTemplate,
    responses((status = 201, body = CreatedTemplate), (status = 403, body = crate::error::ErrorBody),
        (status = 422, body = LintRejection, description = "the lint's reasons (or an invalid body in the error envelope)")))]
pub async fn create(State(state): State<AppState>, Auth(actor): Auth, Json(t): Json<NewTemplate>) -> ApiResult<Response> {
    Ok(match state.store.create_template(&actor, t).await? {
        Ok(created) => (StatusCode::CREATED, Json(created)).into_response(),
        Err(report) => rejection(report),
    })
}

fn rejection(report: LintReport) -> Response {
    let first = report.errors.first().cloned();
    let message = report.errors.iter().map(|e| e.message.as_str()).collect::<Vec<_>>().join("; ");
    let error = ErrorDetail { code: "lint".into(), message, field: first.map(|f| f.field) };
    (StatusCode::UNPROCESSABLE_ENTITY, Json(LintRejection { error, lint: Some(report) })).into_response()
}

/// Lints a template without saving it (the editor's live lint).
#[utoipa::path(post, path = "/api/v1/templates/lint", tag = "engagement", request_body = NewTemplate,
    responses((status = 200, body = LintReport)))]
pub async fn lint(State(state): State<AppState>, _auth: Auth, Json(t): Json<NewTemplate>) -> ApiResult<Json<LintReport>> {
    Ok(Json(state.store.lint_template(&t).await?))
}

/// One template.
#[utoipa::path(get, path = "/api/v1/templates/{id}", tag = "engagement", params(("id" = i64, Path, description = "template id")),
    responses((status = 200, body = MessageTemplate)))]
pub async fn get_one(State(state): State<AppState>, _auth: Auth, Path(id): Path<i64>) -> ApiResult<Json<MessageTemplate>> {
    Ok(Json(state.store.template(id).await?))
}

/// Whom to preview a template for.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplatePreviewRequest {
    /// The customer.
    #[schema(minimum = 1)]
    pub customer_id: i64,
}

/// A template rendered for one customer (in the caller's portfolio), strictly: 422 when it
/// does not render for them (no last purchase to name, say). The unsubscribe link is a sample.
#[utoipa::path(post, path = "/api/v1/templates/{id}/preview", tag = "engagement", params(("id" = i64, Path, description = "template id")),
    request_body = TemplatePreviewRequest, responses((status = 200, body = Rendered), (status = 403, body = crate::error::ErrorBody)))]
pub async fn preview(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<i64>,
    headers: HeaderMap,
    Json(p): Json<TemplatePreviewRequest>,
) -> ApiResult<Json<Rendered>> {
    check_customer_access(&state, &actor, p.customer_id).await?;
    let url = format!("{}/p/u/preview", public_base(&state, &headers));
    Ok(Json(state.store.preview_template(id, p.customer_id, &url).await?))
}
