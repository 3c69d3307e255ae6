//! `POST /api/v1/inbound/sms`: replies to SMS from the provider bridge, signed like the outbound
//! webhook (`X-Patron-Signature: sha256=<hex>` of the raw body with `--outbound-secret`).
//! 退订, TD, T or STOP withdraws the sender's SMS consent; any other reply is a `reply`
//! interaction.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::delivery::webhook::{verify, SIGNATURE_HEADER};
use crate::error::{ApiError, ApiResult, Json};
use crate::AppState;

/// Routes of this module (public: the caller adds the rate limit).
pub fn router() -> Router<AppState> {
    Router::new().route("/inbound/sms", post(sms))
}

/// A reply to an SMS.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InboundSms {
    /// The sender's mobile number.
    #[schema(min_length = 1, max_length = 32)]
    pub from: String,
    /// What they wrote.
    #[schema(max_length = 2000)]
    pub text: String,
}

/// What the reply did.
#[derive(Debug, Serialize, ToSchema)]
pub struct InboundOutcome {
    /// Whether it withdrew SMS consent.
    pub unsubscribed: bool,
}

/// Takes a reply (no login: the body's HMAC signature is the credential). 401 without a valid
/// signature (or when no secret is configured), 404 when no customer has the number.
#[utoipa::path(post, path = "/api/v1/inbound/sms", tag = "engagement", security(()), request_body = InboundSms,
    params(("X-Patron-Signature" = String, Header, description = "sha256=<hex>: HMAC-SHA256 of the raw body with the shared secret")),
    responses((status = 200, body = InboundOutcome), (status = 401, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody), (status = 429, body = crate::error::ErrorBody)))]
pub async fn sms(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> ApiResult<Json<InboundOutcome>> {
    let signature = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let signed = state.config.outbound_secret.as_deref().is_some_and(|s| !s.is_empty() && verify(s, &body, signature));
    if !signed {
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "bad_signature", "missing or wrong X-Patron-Signature"));
    }
    let m: InboundSms = serde_json::from_slice(&body)
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_json", format!("the body is not an inbound SMS: {e}")))?;
    if m.from.trim().is_empty() || m.from.len() > 32 || m.text.chars().count() > 2000 {
        return Err(
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", "from: 1 to 32 characters; text: at most 2000").field("from")
        );
    }
    let unsubscribed = state.store.inbound_sms(m.from.trim(), &m.text).await?;
    Ok(Json(InboundOutcome { unsubscribed }))
}
