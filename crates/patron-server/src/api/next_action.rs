//! `/api/v1/customers/{id}/next-action`: a customer's next best action with its reason in
//! Chinese and English (issue 12 §7), as the latest analysis run chose it.

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use patron_store::next_action::NextAction;

use crate::auth::{check_customer_access, Auth};
use crate::error::{ApiResult, Json, Path};
use crate::AppState;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new().route("/customers/{id}/next-action", get(next_action))
}

/// A customer's next best action: `win_back`, `retain`, `review`, `referral`, `nurture`,
/// `upsell` (with the category) or `none`, the reason in plain words (`reason_zh`,
/// `reason_en`) and the figures behind it. Chosen by the latest analysis run (`patron
/// analyze`); before the customer was first analysed the action is `none` and `as_of` is null.
#[utoipa::path(get, path = "/api/v1/customers/{id}/next-action", tag = "customers", params(("id" = i64, Path, description = "customer id")),
    responses((status = 200, body = NextAction), (status = 404, body = crate::error::ErrorBody)))]
pub async fn next_action(State(state): State<AppState>, Auth(actor): Auth, Path(id): Path<i64>) -> ApiResult<Json<NextAction>> {
    check_customer_access(&state, &actor, id).await?;
    Ok(Json(state.store.customer_next_action(id).await?))
}
