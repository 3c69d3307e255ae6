//! `/api/v1/orders`: create one order or a batch, idempotent by external id.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use patron_store::orders::{NewOrder, Order, Upserted};
use patron_store::users::Role;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::auth::{check_customer_access, Auth};
use crate::error::{ApiError, ApiResult, Json, Path};
use crate::AppState;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new().route("/orders", post(create)).route("/orders/{id}", get(get_one))
}

/// One item or a list of them.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    /// A batch.
    Many(Vec<T>),
    /// A single item.
    One(Box<T>),
}

impl<T> OneOrMany<T> {
    /// The items as a list.
    pub fn into_vec(self) -> Vec<T> {
        match self {
            OneOrMany::Many(v) => v,
            OneOrMany::One(t) => vec![*t],
        }
    }
}

/// Creates one order or a batch (all or nothing). An order whose `external_id` exists is updated
/// in place, so retrying a request is safe. Answers 201 with one result per order.
#[utoipa::path(post, path = "/api/v1/orders", tag = "orders", request_body(content = Vec<NewOrder>, description = "one order object or an array of them"),
    responses((status = 201, body = Vec<Upserted>), (status = 400, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
              (status = 409, body = crate::error::ErrorBody), (status = 413, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn create(State(state): State<AppState>, Auth(actor): Auth, Json(body): Json<serde_json::Value>) -> ApiResult<(StatusCode, Json<Vec<Upserted>>)> {
    // Parsed in two steps so the error names the item and field that did not fit.
    let orders: Vec<NewOrder> = match body {
        serde_json::Value::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, v)| serde_json::from_value(v).map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_json", format!("orders[{i}]: {e}")).field(format!("orders[{i}]"))))
            .collect::<ApiResult<_>>()?,
        v => vec![serde_json::from_value(v).map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_json", e.to_string()))?],
    };
    if actor.role == Role::Agent {
        for o in &orders {
            match o.customer_id {
                Some(id) => check_customer_access(&state, &actor, id).await?,
                None => return Err(ApiError::forbidden("create orders by external customer id (use customer_id)")),
            }
        }
    }
    Ok((StatusCode::CREATED, Json(state.store.create_orders(&actor, orders).await?)))
}

/// One order with its lines.
#[utoipa::path(get, path = "/api/v1/orders/{id}", tag = "orders", params(("id" = i64, Path, description = "order id")),
    responses((status = 200, body = Order), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get_one(State(state): State<AppState>, Auth(actor): Auth, Path(id): Path<i64>) -> ApiResult<Json<Order>> {
    let order = state.store.order(id).await?;
    check_customer_access(&state, &actor, order.customer_id).await?;
    Ok(Json(order))
}
