//! `/api/v1/webhooks`: subscriptions to domain events, their delivery log and replays
//! (administrators only: a webhook sees every customer's events).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use patron_store::webhooks::{CreatedWebhook, Delivery, NewWebhook, Webhook, WebhookPatch};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::Auth;
use crate::error::{ApiResult, Json, Path, Query};
use crate::AppState;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/webhooks", get(list).post(create))
        .route("/webhooks/{id}", get(get_one).patch(update).delete(delete))
        .route("/webhooks/{id}/deliveries", get(deliveries))
        .route("/webhooks/{id}/deliveries/{delivery_id}/replay", post(replay))
}

/// Which deliveries.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveryParams {
    /// Only this status.
    #[param(pattern = "^(pending|delivered|failed)$")]
    pub status: Option<String>,
    /// Only ids below this (the next page: the last id of the previous one).
    #[param(minimum = 1)]
    pub before: Option<i64>,
    /// At most this many, newest first (1–1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

/// Every webhook.
#[utoipa::path(get, path = "/api/v1/webhooks", tag = "webhooks", responses((status = 200, body = [Webhook]), (status = 403, body = crate::error::ErrorBody)))]
pub async fn list(State(state): State<AppState>, _auth: Auth) -> ApiResult<Json<Vec<Webhook>>> {
    Ok(Json(state.store.webhooks().await?))
}

/// Subscribes a URL to event types (`ticket.opened`, `order.*`, `*`). Deliveries are POSTed as
/// JSON with `X-Patron-Event`, `X-Patron-Delivery` and `X-Patron-Signature: sha256=<hex>` (the
/// HMAC-SHA256 of the raw body with the secret). The secret is in this answer only.
#[utoipa::path(post, path = "/api/v1/webhooks", tag = "webhooks", request_body = NewWebhook,
    responses((status = 201, body = CreatedWebhook), (status = 403, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody),
              (status = 422, body = crate::error::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Json(w): Json<NewWebhook>,
) -> ApiResult<(StatusCode, Json<CreatedWebhook>)> {
    Ok((StatusCode::CREATED, Json(state.store.create_webhook(&actor, w).await?)))
}

/// One webhook.
#[utoipa::path(get, path = "/api/v1/webhooks/{id}", tag = "webhooks", params(("id" = i64, Path, description = "webhook id")),
    responses((status = 200, body = Webhook), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get_one(State(state): State<AppState>, _auth: Auth, Path(id): Path<i64>) -> ApiResult<Json<Webhook>> {
    Ok(Json(state.store.webhook(id).await?))
}

/// Changes a webhook's URL or events, or turns it on (clearing its failures) or off.
#[utoipa::path(patch, path = "/api/v1/webhooks/{id}", tag = "webhooks", params(("id" = i64, Path, description = "webhook id")), request_body = WebhookPatch,
    responses((status = 200, body = Webhook), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
              (status = 422, body = crate::error::ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<i64>,
    Json(p): Json<WebhookPatch>,
) -> ApiResult<Json<Webhook>> {
    Ok(Json(state.store.update_webhook(&actor, id, p).await?))
}

/// Deletes a webhook and its delivery log.
#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", tag = "webhooks", params(("id" = i64, Path, description = "webhook id")),
    responses((status = 204), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn delete(State(state): State<AppState>, Auth(actor): Auth, Path(id): Path<i64>) -> ApiResult<StatusCode> {
    state.store.delete_webhook(&actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A webhook's delivery log, newest first: status, attempts, the receiver's last answer.
#[utoipa::path(get, path = "/api/v1/webhooks/{id}/deliveries", tag = "webhooks", params(("id" = i64, Path, description = "webhook id"), DeliveryParams),
    responses((status = 200, body = [Delivery]), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn deliveries(
    State(state): State<AppState>,
    _auth: Auth,
    Path(id): Path<i64>,
    Query(p): Query<DeliveryParams>,
) -> ApiResult<Json<Vec<Delivery>>> {
    Ok(Json(state.store.webhook_deliveries(id, p.status.as_deref(), p.before, p.limit.unwrap_or(100)).await?))
}

/// Sends a delivery again on the next scheduler round (whatever its status; attempts restart).
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/deliveries/{delivery_id}/replay", tag = "webhooks",
    params(("id" = i64, Path, description = "webhook id"), ("delivery_id" = i64, Path, description = "delivery id")),
    responses((status = 200, body = Delivery), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn replay(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path((id, delivery_id)): Path<(i64, i64)>,
) -> ApiResult<Json<Delivery>> {
    Ok(Json(state.store.replay_delivery(&actor, id, delivery_id).await?))
}
