//! `/api/v1/loyalty`: the programme's settings, members with their points, the ledger,
//! redemptions (under the member's lock, idempotent by the client's key) and adjustments
//! (manager+). Points are earned and reversed by the order writes themselves.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use patron_store::loyalty::ledger::{AdjustmentRequest, Entry, Redemption, RedemptionRequest};
use patron_store::loyalty::{LoyaltyProgram, Member, NewMember};
use patron_store::users::Role;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::{check_customer_access, require, Auth};
use crate::error::{ApiError, ApiResult, Json, Path, Query};
use crate::AppState;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/loyalty/program", get(program).put(put_program))
        .route("/loyalty/members", post(enrol))
        .route("/loyalty/members/{customer_id}", get(member))
        .route("/loyalty/members/{customer_id}/ledger", get(ledger))
        .route("/loyalty/members/{customer_id}/redemptions", post(redeem))
        .route("/loyalty/members/{customer_id}/adjustments", post(adjust))
}

/// The programme's settings.
#[utoipa::path(get, path = "/api/v1/loyalty/program", tag = "loyalty", responses((status = 200, body = LoyaltyProgram)))]
pub async fn program(State(state): State<AppState>, _auth: Auth) -> ApiResult<Json<LoyaltyProgram>> {
    Ok(Json(state.store.loyalty_program().await?))
}

/// Replaces the programme's settings (manager+; audited). Earning follows the new rules from
/// the next order on; points earned keep their lots.
#[utoipa::path(put, path = "/api/v1/loyalty/program", tag = "loyalty", request_body = LoyaltyProgram,
    responses((status = 200, body = LoyaltyProgram), (status = 403, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn put_program(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Json(p): Json<LoyaltyProgram>,
) -> ApiResult<Json<LoyaltyProgram>> {
    require(&actor, Role::Manager, "change the loyalty programme")?;
    Ok(Json(state.store.set_loyalty_program(&actor, &p).await?))
}

/// Enrols a customer (201); 409 when a member already.
#[utoipa::path(post, path = "/api/v1/loyalty/members", tag = "loyalty", request_body = NewMember,
    responses((status = 201, body = Member), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody)))]
pub async fn enrol(State(state): State<AppState>, Auth(actor): Auth, Json(m): Json<NewMember>) -> ApiResult<(StatusCode, Json<Member>)> {
    check_customer_access(&state, &actor, m.customer_id).await?;
    Ok((StatusCode::CREATED, Json(state.store.enrol_member(&actor, m.customer_id).await?)))
}

/// A member: balance, pending and spendable points, debt, tier and the points earned in the
/// qualifying period, the next expiry, and the lots in spending order. 404 for a customer who
/// is not a member.
#[utoipa::path(get, path = "/api/v1/loyalty/members/{customer_id}", tag = "loyalty", params(("customer_id" = i64, Path, description = "customer id")),
    responses((status = 200, body = Member), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn member(State(state): State<AppState>, Auth(actor): Auth, Path(id): Path<i64>) -> ApiResult<Json<Member>> {
    check_customer_access(&state, &actor, id).await?;
    Ok(Json(state.store.loyalty_member(id).await?))
}

/// Paging of the ledger.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LedgerParams {
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1–500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
}

/// A page of ledger entries.
#[derive(Serialize, ToSchema)]
pub struct LedgerPage {
    /// Newest first.
    pub items: Vec<Entry>,
    /// Cursor of the next page.
    pub next_cursor: Option<String>,
}

/// A member's ledger, newest first, each entry with its kind, source and reason.
#[utoipa::path(get, path = "/api/v1/loyalty/members/{customer_id}/ledger", tag = "loyalty",
    params(("customer_id" = i64, Path, description = "customer id"), LedgerParams),
    responses((status = 200, body = LedgerPage), (status = 400, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody)))]
pub async fn ledger(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<i64>,
    Query(p): Query<LedgerParams>,
) -> ApiResult<Json<LedgerPage>> {
    let limit = match p.limit {
        None => 50,
        Some(l) if (1..=500).contains(&l) => l,
        Some(_) => return Err(ApiError::bad_request("limit", "limit must be between 1 and 500")),
    };
    check_customer_access(&state, &actor, id).await?;
    let page = state.store.loyalty_ledger(id, p.cursor.as_deref(), limit).await?;
    Ok(Json(LedgerPage { items: page.items, next_cursor: page.next_cursor }))
}

/// Redeems points, for a reward when `reward_id` is given (201). 409 `invalid_state` when the
/// spendable points do not cover it (or the reward is out of stock); 409 `conflict` when the
/// key was used for a different request; the same key with the same content answers the first
/// result again (201). 404 for a customer who is not a member or an unknown reward.
#[utoipa::path(post, path = "/api/v1/loyalty/members/{customer_id}/redemptions", tag = "loyalty",
    params(("customer_id" = i64, Path, description = "customer id")), request_body = RedemptionRequest,
    responses((status = 201, body = Redemption), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn redeem(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<i64>,
    Json(r): Json<RedemptionRequest>,
) -> ApiResult<(StatusCode, Json<Redemption>)> {
    check_customer_access(&state, &actor, id).await?;
    let (red, _) = state.store.redeem_points(&actor, id, r).await?;
    Ok((StatusCode::CREATED, Json(red)))
}

/// Adds (positive) or takes (negative) points by hand, with a reason (manager+; 201). Taking
/// more than the balance: 409.
#[utoipa::path(post, path = "/api/v1/loyalty/members/{customer_id}/adjustments", tag = "loyalty",
    params(("customer_id" = i64, Path, description = "customer id")), request_body = AdjustmentRequest,
    responses((status = 201, body = Entry), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn adjust(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<i64>,
    Json(a): Json<AdjustmentRequest>,
) -> ApiResult<(StatusCode, Json<Entry>)> {
    require(&actor, Role::Manager, "adjust points")?;
    check_customer_access(&state, &actor, id).await?;
    Ok((StatusCode::CREATED, Json(state.store.adjust_points(&actor, id, a).await?)))
}
