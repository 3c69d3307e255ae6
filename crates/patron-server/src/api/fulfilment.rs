//! The B2B fulfilment chain (issue 19 §5): `/api/v1/orders/{id}/fulfilment` (an order's steps,
//! record one), `/api/v1/fulfilment/on-time` (the on-time delivery rate) and
//! `/api/v1/fulfilment/settings` (the steps in use). Rules: `patron_store::fulfilment`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use chrono::NaiveDate;
use patron_store::fulfilment::{FulfilmentChain, FulfilmentSettings, NewStep, OnTimeReport};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::{check_customer_access, Auth};
use crate::error::{ApiError, ApiResult, Json, Path, Query};
use crate::AppState;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/orders/{id}/fulfilment", get(chain).post(record))
        .route("/fulfilment/on-time", get(on_time))
        .route("/fulfilment/settings", get(settings).put(put_settings))
}

/// The order's customer when the caller may see it; an order outside the scope is not found.
async fn order_customer(state: &AppState, actor: &patron_store::users::Actor, order_id: i64) -> ApiResult<i64> {
    let customer_id = state.store.order_customer(order_id).await?;
    if !state.store.customer_in_scope(actor, customer_id).await? {
        return Err(ApiError::not_found("order"));
    }
    check_customer_access(state, actor, customer_id).await?;
    Ok(customer_id)
}

/// The order's fulfilment chain: the recorded steps in the chain's order with their promise,
/// done time and lateness, and the steps in use not recorded yet.
#[utoipa::path(get, path = "/api/v1/orders/{id}/fulfilment", tag = "fulfilment", params(("id" = i64, Path, description = "order id")),
    responses((status = 200, body = FulfilmentChain), (status = 404, body = crate::error::ErrorBody)))]
pub async fn chain(State(state): State<AppState>, Auth(actor): Auth, Path(id): Path<i64>) -> ApiResult<Json<FulfilmentChain>> {
    order_customer(&state, &actor, id).await?;
    Ok(Json(state.store.fulfilment_chain(id).await?))
}

/// Records a step of the order (or changes it: a field not given keeps its stored value).
/// Refused with nothing written (422): an unknown or switched-off step, a done time in the
/// future, before the order, or out of the chain's order against the order's other steps; a
/// promise before the order. 409 for a cancelled order. A step done after its promise is late:
/// a `fulfilment.late` event and a notification to the account manager. Answers the chain:
/// 201 when the step was new, 200 when it was changed or the same.
#[utoipa::path(post, path = "/api/v1/orders/{id}/fulfilment", tag = "fulfilment", params(("id" = i64, Path, description = "order id")),
    request_body = NewStep,
    responses((status = 201, body = FulfilmentChain, description = "The step was recorded."),
              (status = 200, body = FulfilmentChain, description = "The step existed and was updated (or was the same)."),
              (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody),
              (status = 422, body = crate::error::ErrorBody)))]
pub async fn record(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<i64>,
    Json(body): Json<NewStep>,
) -> ApiResult<(StatusCode, Json<FulfilmentChain>)> {
    order_customer(&state, &actor, id).await?;
    let (chain, created) = state.store.record_fulfilment(&actor, id, &body).await?;
    Ok((if created { StatusCode::CREATED } else { StatusCode::OK }, Json(chain)))
}

/// The period and grouping of the on-time report.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OnTimeParams {
    /// First day (business time zone; default: 365 days before `to`).
    pub from: Option<NaiveDate>,
    /// Last day, included (default: today).
    pub to: Option<NaiveDate>,
    /// `customer`, `account_manager` or `month` (default `month`).
    #[param(pattern = "^(customer|account_manager|month)$")]
    pub by: Option<String>,
}

/// The on-time delivery rate: of the deliveries done in the period that had a promise, the
/// share done on or before it — overall and by customer, account manager (the customer's owner)
/// or month, over the customers in the caller's scope.
#[utoipa::path(get, path = "/api/v1/fulfilment/on-time", tag = "fulfilment", params(OnTimeParams),
    responses((status = 200, body = OnTimeReport), (status = 400, body = crate::error::ErrorBody)))]
pub async fn on_time(State(state): State<AppState>, Auth(actor): Auth, Query(p): Query<OnTimeParams>) -> ApiResult<Json<OnTimeReport>> {
    let tz = state.store.config.business_tz;
    let to = p.to.unwrap_or_else(|| state.store.now().with_timezone(&tz).date_naive());
    let from = p.from.unwrap_or_else(|| to - chrono::Duration::days(364));
    let period = super::service::period(&state, Some(from), Some(to))?;
    let by = p.by.as_deref().unwrap_or("month");
    if !matches!(by, "customer" | "account_manager" | "month") {
        return Err(ApiError::bad_request("by", "by must be customer, account_manager or month"));
    }
    Ok(Json(state.store.on_time(&actor, period, by).await?))
}

/// The fulfilment settings: the steps in use.
#[utoipa::path(get, path = "/api/v1/fulfilment/settings", tag = "fulfilment", responses((status = 200, body = FulfilmentSettings)))]
pub async fn settings(State(state): State<AppState>, _auth: Auth) -> ApiResult<Json<FulfilmentSettings>> {
    Ok(Json(state.store.fulfilment_settings().await?))
}

/// Replaces the fulfilment settings (admin): the steps in use, a subset of the chain that keeps
/// `delivered`. Steps recorded before stay; a switched-off step is refused on input.
#[utoipa::path(put, path = "/api/v1/fulfilment/settings", tag = "fulfilment", request_body = FulfilmentSettings,
    responses((status = 200, body = FulfilmentSettings), (status = 403, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn put_settings(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Json(body): Json<FulfilmentSettings>,
) -> ApiResult<Json<FulfilmentSettings>> {
    state.store.set_fulfilment_settings(&actor, &body).await?;
    Ok(Json(state.store.fulfilment_settings().await?))
}
