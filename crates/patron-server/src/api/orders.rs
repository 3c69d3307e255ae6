//! `/api/v1/orders`: create one order or a batch, idempotent by external id.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use patron_store::orders::{NewOrder, Order, Upserted};
use serde::de::DeserializeOwned;

use crate::auth::{check_customer_access, Auth};
use crate::error::{from_json, ApiError, ApiResult, Json, Path};
use crate::AppState;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new().route("/orders", post(create)).route("/orders/{id}", get(get_one))
}

/// The items of a body that holds one object or an array of them, each read into `T`; an error
/// names the item and field (`orders[1].ordered_at`) in a batch, the field alone otherwise (the
/// store names fields the same way).
pub fn one_or_many<T: DeserializeOwned>(body: serde_json::Value, collection: &str) -> ApiResult<Vec<T>> {
    match body {
        serde_json::Value::Array(items) if items.len() == 1 => Ok(vec![from_json(items.into_iter().next().unwrap_or_default(), "")?]),
        serde_json::Value::Array(items) => {
            items.into_iter().enumerate().map(|(i, v)| from_json(v, &format!("{collection}[{i}]"))).collect()
        }
        v => Ok(vec![from_json(v, "")?]),
    }
}

/// 201 when the request created at least one record, 200 when every one existed already (by
/// external id) and was updated in place: a retried request answers 200.
pub fn created_status(results: &[Upserted]) -> StatusCode {
    if results.iter().any(|u| u.created) {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    }
}

/// Creates one order or a batch (all or nothing). An order whose `external_id` exists is updated
/// in place, so retrying a request is safe. Answers one result per order: 201 when at least one
/// order was created, 200 when every one existed already (`created: false`).
#[utoipa::path(post, path = "/api/v1/orders", tag = "orders", request_body(content = Vec<NewOrder>, description = "one order object or an array of 1–10,000 of them"),
    responses((status = 201, body = Vec<Upserted>, description = "At least one order was created."),
              (status = 200, body = Vec<Upserted>, description = "Every order existed already (by external id) and was updated in place."),
              (status = 403, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Json(body): Json<serde_json::Value>,
) -> ApiResult<(StatusCode, Json<Vec<Upserted>>)> {
    let orders: Vec<NewOrder> = one_or_many(body, "orders")?;
    if !actor.can(patron_store::access::Permission::AllCustomers) {
        for o in &orders {
            match o.customer_id {
                Some(id) => check_customer_access(&state, &actor, id).await?,
                None => return Err(ApiError::forbidden("create orders by external customer id (use customer_id)")),
            }
        }
    }
    let results = state.store.create_orders(&actor, orders).await?;
    Ok((created_status(&results), Json(results)))
}

/// One order with its lines.
#[utoipa::path(get, path = "/api/v1/orders/{id}", tag = "orders", params(("id" = i64, Path, description = "order id")),
    responses((status = 200, body = Order), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get_one(State(state): State<AppState>, Auth(actor): Auth, Path(id): Path<i64>) -> ApiResult<Json<serde_json::Value>> {
    let order = state.store.order(id).await?;
    // An order of a customer outside the scope does not exist for the caller.
    if !state.store.customer_in_scope(&actor, order.customer_id).await? {
        return Err(ApiError::not_found("order"));
    }
    super::masking::masked(&state, &actor, patron_store::access::masking::Surface::Profile, &order).await
}
