//! `/api/v1/interactions`: record touchpoint events, one or a batch, idempotent by external id.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use patron_store::interactions::NewInteraction;
use patron_store::orders::Upserted;

use crate::api::orders::{created_status, one_or_many};
use crate::auth::{check_customer_access, Auth};
use crate::error::{ApiError, ApiResult, Json};
use crate::AppState;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new().route("/interactions", post(create))
}

/// Records one interaction or a batch (all or nothing); the same `external_id` updates in place.
/// 201 when at least one interaction was created, 200 when every one existed already.
#[utoipa::path(post, path = "/api/v1/interactions", tag = "interactions", request_body(content = Vec<NewInteraction>, description = "one interaction object or an array of 1–10,000 of them"),
    responses((status = 201, body = Vec<Upserted>, description = "At least one interaction was created."),
              (status = 200, body = Vec<Upserted>, description = "Every interaction existed already (by external id) and was updated in place."),
              (status = 403, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Json(body): Json<serde_json::Value>,
) -> ApiResult<(StatusCode, Json<Vec<Upserted>>)> {
    let items: Vec<NewInteraction> = one_or_many(body, "interactions")?;
    if !actor.can(patron_store::access::Permission::AllCustomers) {
        for it in &items {
            match it.customer_id {
                Some(id) => check_customer_access(&state, &actor, id).await?,
                None => return Err(ApiError::forbidden("record interactions by external customer id (use customer_id)")),
            }
        }
    }
    let results = state.store.create_interactions(&actor, items).await?;
    Ok((created_status(&results), Json(results)))
}
