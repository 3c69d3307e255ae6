//! `/api/v1/notifications`: the caller's in-app notifications (SLA warnings, breaches escalated
//! to them, approvals waiting) — the bell in the UI.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use patron_store::notifications::Notification;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Auth;
use crate::error::{ApiResult, Json, Path, Query};
use crate::AppState;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new().route("/notifications", get(list)).route("/notifications/{id}/read", post(mark_read))
}

/// Which notifications.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct NotificationParams {
    /// Only unread ones.
    pub unread: Option<bool>,
    /// At most this many, newest first (1–500, default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
}

/// The caller's notifications.
#[derive(Serialize, ToSchema)]
pub struct Notifications {
    /// Unread, in all.
    pub unread: i64,
    /// Newest first.
    pub items: Vec<Notification>,
}

/// The caller's notifications, newest first (tokens without a user have none).
#[utoipa::path(get, path = "/api/v1/notifications", tag = "notifications", params(NotificationParams), responses((status = 200, body = Notifications)))]
pub async fn list(State(state): State<AppState>, Auth(actor): Auth, Query(p): Query<NotificationParams>) -> ApiResult<Json<Notifications>> {
    let limit = p.limit.unwrap_or(50).clamp(1, 500);
    let items = state.store.notifications(&actor, p.unread.unwrap_or(false), limit).await?;
    Ok(Json(Notifications { unread: state.store.unread_notifications(&actor).await?, items }))
}

/// Marks one of the caller's notifications read.
#[utoipa::path(post, path = "/api/v1/notifications/{id}/read", tag = "notifications", params(("id" = i64, Path, description = "notification id")),
    responses((status = 204)))]
pub async fn mark_read(State(state): State<AppState>, Auth(actor): Auth, Path(id): Path<i64>) -> ApiResult<StatusCode> {
    state.store.mark_notification_read(&actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
