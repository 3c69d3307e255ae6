//! `/api/v1/loyalty`: the programme's settings, members with their points, the ledger,
//! redemptions (under the member's lock, idempotent by the client's key) and adjustments
//! (manager+). Points are earned and reversed by the order writes themselves.

use axum::extract::State;
use axum::http::header;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, Utc};
use patron_store::loyalty::ledger::{AdjustmentRequest, Entry, Redemption, RedemptionRequest};
use patron_store::loyalty::liability::Liability;
use patron_store::loyalty::referrals::ReferralStats;
use patron_store::loyalty::rewards::{FulfilmentUpdate, Reward, RewardInput};
use patron_store::loyalty::{LoyaltyProgram, Member, NewMember};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::{check_customer_access, Auth};
use crate::error::{ApiError, ApiResult, Json, Path, Query};
use crate::AppState;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/loyalty/program", get(program).put(put_program))
        .route("/loyalty/members", post(enrol))
        .route("/loyalty/members/{customer_id}", get(member))
        .route("/loyalty/members/{customer_id}/ledger", get(ledger))
        .route("/loyalty/members/{customer_id}/redemptions", get(redemptions).post(redeem))
        .route("/loyalty/members/{customer_id}/adjustments", post(adjust))
        .route("/loyalty/members/{customer_id}/redemptions/{id}", axum::routing::patch(fulfil))
        .route("/loyalty/rewards", get(rewards).post(create_reward))
        .route("/loyalty/rewards/{id}", axum::routing::put(update_reward))
        .route("/loyalty/liability", get(liability))
        .route("/loyalty/liability/export", get(liability_export))
        .route("/loyalty/referrals", get(referrals))
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
    check_customer_access(&state, &actor, id).await?;
    Ok((StatusCode::CREATED, Json(state.store.adjust_points(&actor, id, a).await?)))
}

/// A member's redemptions.
#[derive(Serialize, ToSchema)]
pub struct RedemptionList {
    /// Newest first (at most 200).
    pub items: Vec<Redemption>,
}

/// A member's redemptions with their fulfilment status.
#[utoipa::path(get, path = "/api/v1/loyalty/members/{customer_id}/redemptions", tag = "loyalty",
    params(("customer_id" = i64, Path, description = "customer id")),
    responses((status = 200, body = RedemptionList), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn redemptions(State(state): State<AppState>, Auth(actor): Auth, Path(id): Path<i64>) -> ApiResult<Json<RedemptionList>> {
    check_customer_access(&state, &actor, id).await?;
    state.store.loyalty_member(id).await?;
    Ok(Json(RedemptionList { items: state.store.redemptions(id).await? }))
}

/// Records a redemption's fulfilment: `handed_over`, or `cancelled` (the points back, the
/// reward back in stock). Only an `ordered` redemption changes (409).
#[utoipa::path(patch, path = "/api/v1/loyalty/members/{customer_id}/redemptions/{id}", tag = "loyalty",
    params(("customer_id" = i64, Path, description = "customer id"), ("id" = i64, Path, description = "redemption id")), request_body = FulfilmentUpdate,
    responses((status = 200, body = Redemption), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn fulfil(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path((customer_id, id)): Path<(i64, i64)>,
    Json(u): Json<FulfilmentUpdate>,
) -> ApiResult<Json<Redemption>> {
    check_customer_access(&state, &actor, customer_id).await?;
    Ok(Json(state.store.fulfil_redemption(&actor, customer_id, id, u).await?))
}

/// Which rewards to list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RewardParams {
    /// Only what this member may choose now (tier, active period, stock, spendable points).
    pub customer_id: Option<i64>,
}

/// The rewards catalogue.
#[derive(Serialize, ToSchema)]
pub struct RewardList {
    /// Cheapest first.
    pub items: Vec<Reward>,
}

/// The rewards catalogue, or what one member may choose.
#[utoipa::path(get, path = "/api/v1/loyalty/rewards", tag = "loyalty", params(RewardParams),
    responses((status = 200, body = RewardList), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn rewards(State(state): State<AppState>, Auth(actor): Auth, Query(p): Query<RewardParams>) -> ApiResult<Json<RewardList>> {
    if let Some(c) = p.customer_id {
        check_customer_access(&state, &actor, c).await?;
    }
    Ok(Json(RewardList { items: state.store.rewards(p.customer_id).await? }))
}

/// Adds a reward (manager+; 201).
#[utoipa::path(post, path = "/api/v1/loyalty/rewards", tag = "loyalty", request_body = RewardInput,
    responses((status = 201, body = Reward), (status = 403, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn create_reward(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Json(r): Json<RewardInput>,
) -> ApiResult<(StatusCode, Json<Reward>)> {
    Ok((StatusCode::CREATED, Json(state.store.create_reward(&actor, r).await?)))
}

/// Replaces a reward's definition, its stock included (manager+).
#[utoipa::path(put, path = "/api/v1/loyalty/rewards/{id}", tag = "loyalty", params(("id" = i64, Path, description = "reward id")), request_body = RewardInput,
    responses((status = 200, body = Reward), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody)))]
pub async fn update_reward(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<i64>,
    Json(r): Json<RewardInput>,
) -> ApiResult<Json<Reward>> {
    Ok(Json(state.store.update_reward(&actor, id, r).await?))
}

/// The moment of a liability report.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LiabilityParams {
    /// As of this moment (default now).
    pub as_of: Option<DateTime<Utc>>,
}

/// What the programme owes (manager+): outstanding spendable and pending points and their
/// value, by expiry month and by issue month (the development table), the breakage rate, and
/// the expected liability = outstanding × (1 − breakage) × point value (IFRS 15 B39–B43).
#[utoipa::path(get, path = "/api/v1/loyalty/liability", tag = "loyalty", params(LiabilityParams),
    responses((status = 200, body = Liability), (status = 403, body = crate::error::ErrorBody)))]
pub async fn liability(State(state): State<AppState>, _auth: Auth, Query(p): Query<LiabilityParams>) -> ApiResult<Json<Liability>> {
    Ok(Json(state.store.loyalty_liability(p.as_of).await?))
}

/// The development table as CSV (manager+): issue_month, issued, redeemed, expired, reversed,
/// outstanding.
#[utoipa::path(get, path = "/api/v1/loyalty/liability/export", tag = "loyalty", params(LiabilityParams),
    responses((status = 200, content_type = "text/csv", body = String), (status = 403, body = crate::error::ErrorBody)))]
pub async fn liability_export(State(state): State<AppState>, _auth: Auth, Query(p): Query<LiabilityParams>) -> ApiResult<Response> {
    let body = state.store.loyalty_liability(p.as_of).await?.to_csv();
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (header::CONTENT_DISPOSITION, "attachment; filename=\"loyalty-liability.csv\""),
        ],
        body,
    )
        .into_response())
}

/// Referred customers against the others (retention as P(alive), spend, loyalty index, with
/// counts, from the latest analysis) and the referral rewards paid, refused and reversed
/// (manager+).
#[utoipa::path(get, path = "/api/v1/loyalty/referrals", tag = "loyalty",
    responses((status = 200, body = ReferralStats), (status = 403, body = crate::error::ErrorBody)))]
pub async fn referrals(State(state): State<AppState>, _auth: Auth) -> ApiResult<Json<ReferralStats>> {
    Ok(Json(state.store.referral_stats().await?))
}
