//! `/api/v1/masking`: which roles see personal data and money in full, masked or not at all
//! (`patron_store::access::masking`), and the one step every customer-facing response takes
//! through it ([`masked`]).

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use patron_store::access::masking::{FieldMask, MaskingSettings, Surface};
use patron_store::users::Actor;
use serde::Serialize;

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, Json};
use crate::AppState;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new().route("/masking", get(settings).put(put_settings))
}

/// `value` as `actor` may see it on `surface`: personal data and money masked by the caller's role.
pub async fn masked<T: Serialize>(state: &AppState, actor: &Actor, surface: Surface, value: &T) -> ApiResult<Json<serde_json::Value>> {
    let mask = state.store.field_mask(actor, surface).await?;
    Ok(Json(masked_with(&mask, value)?))
}

/// [`masked`] with a mask at hand (the web UI's pages).
pub fn masked_with<T: Serialize>(mask: &FieldMask, value: &T) -> ApiResult<serde_json::Value> {
    let mut v = serde_json::to_value(value).map_err(|e| ApiError::from(patron_store::StoreError::Internal(e.to_string())))?;
    mask.apply_json(&mut v);
    Ok(v)
}

/// The masking rules by role (a role without a rule sees money in full, and personal data in
/// full when it holds `contact_details.read`, masked otherwise).
#[utoipa::path(get, path = "/api/v1/masking", tag = "access", responses((status = 200, body = MaskingSettings), (status = 403, body = crate::error::ErrorBody)))]
pub async fn settings(State(state): State<AppState>, _auth: Auth) -> ApiResult<Json<MaskingSettings>> {
    Ok(Json(state.store.masking_settings().await?))
}

/// Replaces the masking rules (audited). Every role named must exist.
#[utoipa::path(put, path = "/api/v1/masking", tag = "access", request_body = MaskingSettings,
    responses((status = 200, body = MaskingSettings), (status = 403, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn put_settings(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Json(s): Json<MaskingSettings>,
) -> ApiResult<Json<MaskingSettings>> {
    state.store.set_masking_settings(&actor, &s).await?;
    Ok(Json(state.store.masking_settings().await?))
}
