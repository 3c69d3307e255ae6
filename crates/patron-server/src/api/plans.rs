//! Joint account plans (issue 19 §4): `/api/v1/customers/{id}/plans` (make one, list them) and
//! the customer-facing scorecard `/api/v1/public/plans/{token}` (no login, rate-limited; the
//! page is `/p/plan/{token}`). Rules: `patron_store::plans`.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::Router;
use patron_store::plans::{NewPlan, Plan, Scorecard};
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::{check_customer_access, Auth};
use crate::error::{ApiResult, Json, Path};
use crate::AppState;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new().route("/customers/{id}/plans", get(list).post(create))
}

/// Public routes (the caller adds the rate limit).
pub fn public_router() -> Router<AppState> {
    Router::new().route("/public/plans/{token}", get(scorecard))
}

/// A plan just made, with its scorecard link (shown once: only the token's digest is kept).
#[derive(Serialize, ToSchema)]
pub struct PlanCreated {
    /// The plan.
    #[serde(flatten)]
    pub plan: Plan,
    /// The customer-facing scorecard: `https://…/p/plan/{token}`.
    pub scorecard_url: String,
}

/// Makes the organisation's account plan: goals, mutual expectations, shared KPIs with targets
/// (actuals computed from the data), owners, review date. It supersedes the current plan, whose
/// scorecard link stops working. 422 for a person (plans are for organisations), an unknown KPI
/// kind or a target out of its range.
#[utoipa::path(post, path = "/api/v1/customers/{id}/plans", tag = "plans", params(("id" = i64, Path, description = "customer id")),
    request_body = NewPlan,
    responses((status = 201, body = PlanCreated), (status = 404, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    Auth(actor): Auth,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Json(body): Json<NewPlan>,
) -> ApiResult<(StatusCode, Json<PlanCreated>)> {
    check_customer_access(&state, &actor, id).await?;
    let (plan, token) = state.store.create_plan(&actor, id, &body).await?;
    let scorecard_url = format!("{}/p/plan/{token}", super::tickets::public_base(&state, &headers));
    Ok((StatusCode::CREATED, Json(PlanCreated { plan, scorecard_url })))
}

/// The organisation's plans: the current one first, then the superseded ones, newest first,
/// each with its KPIs' actuals now.
#[utoipa::path(get, path = "/api/v1/customers/{id}/plans", tag = "plans", params(("id" = i64, Path, description = "customer id")),
    responses((status = 200, body = Vec<Plan>), (status = 404, body = crate::error::ErrorBody)))]
pub async fn list(State(state): State<AppState>, Auth(actor): Auth, Path(id): Path<i64>) -> ApiResult<Json<Vec<Plan>>> {
    check_customer_access(&state, &actor, id).await?;
    Ok(Json(state.store.plans(id).await?))
}

/// The customer-facing scorecard: the shared KPIs, their targets and actuals, and nothing else.
/// An unknown, forged, expired or superseded link answers 404.
#[utoipa::path(get, path = "/api/v1/public/plans/{token}", tag = "public",
    params(("token" = String, Path, description = "the token of the link", pattern = "^[0-9a-f]{64}$")),
    responses((status = 200, body = Scorecard), (status = 404, body = crate::error::ErrorBody)))]
pub async fn scorecard(State(state): State<AppState>, Path(token): Path<String>) -> ApiResult<Json<Scorecard>> {
    Ok(Json(state.store.plan_scorecard(&token).await?))
}
