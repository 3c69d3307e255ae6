//! `/api/v1/journeys`: journeys with a trigger, steps, a goal, a holdout and a re-entry rule
//! (issue 12 §6), enabled and disabled, and their report with the goal's lift; and a customer's
//! channel calibration (`/customers/{id}/channels`, §5) and journey entries.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use patron_store::engagement::calibration::ChannelPreferences;
use patron_store::journeys::run::JourneyEntry;
use patron_store::journeys::{Journey, JourneyReport, NewJourney};
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::{check_customer_access, Auth};
use crate::error::{ApiResult, Json, Path};
use crate::AppState;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/journeys", get(list).post(create))
        .route("/journeys/{id}", get(get_one))
        .route("/journeys/{id}/enable", post(enable))
        .route("/journeys/{id}/disable", post(disable))
        .route("/journeys/{id}/report", get(report))
        .route("/customers/{id}/channels", get(channels))
        .route("/customers/{id}/journeys", get(customer_entries))
}

/// Every journey.
#[derive(Serialize, ToSchema)]
pub struct JourneyList {
    /// By id.
    pub items: Vec<Journey>,
}

/// Lists the journeys (the three built-in ones exist, disabled, from the server's first start).
#[utoipa::path(get, path = "/api/v1/journeys", tag = "journeys", responses((status = 200, body = JourneyList)))]
pub async fn list(State(state): State<AppState>, _auth: Auth) -> ApiResult<Json<JourneyList>> {
    Ok(Json(JourneyList { items: state.store.journeys().await? }))
}

/// Makes a journey, disabled. Steps: `wait` {hours, days}, `condition` {rule, yes, no},
/// `send` {template_id, channel}, `task` {title, due_days}, `tag` {add, remove}, `exit`.
#[utoipa::path(post, path = "/api/v1/journeys", tag = "journeys", request_body = NewJourney,
    responses((status = 201, body = Journey), (status = 422, body = crate::error::ErrorBody)))]
pub async fn create(State(state): State<AppState>, Auth(actor): Auth, Json(j): Json<NewJourney>) -> ApiResult<(StatusCode, Json<Journey>)> {
    Ok((StatusCode::CREATED, Json(state.store.create_journey(&actor, j).await?)))
}

/// One journey.
#[utoipa::path(get, path = "/api/v1/journeys/{id}", tag = "journeys", params(("id" = i64, Path, description = "journey id")),
    responses((status = 200, body = Journey), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get_one(State(state): State<AppState>, _auth: Auth, Path(id): Path<i64>) -> ApiResult<Json<Journey>> {
    Ok(Json(state.store.journey(id).await?))
}

/// Enables a journey: it takes entries from the events and advances them.
#[utoipa::path(post, path = "/api/v1/journeys/{id}/enable", tag = "journeys", params(("id" = i64, Path, description = "journey id")),
    responses((status = 200, body = Journey), (status = 404, body = crate::error::ErrorBody)))]
pub async fn enable(State(state): State<AppState>, Auth(actor): Auth, Path(id): Path<i64>) -> ApiResult<Json<Journey>> {
    Ok(Json(state.store.set_journey_enabled(&actor, id, true).await?))
}

/// Disables a journey: no new entries, running ones pause.
#[utoipa::path(post, path = "/api/v1/journeys/{id}/disable", tag = "journeys", params(("id" = i64, Path, description = "journey id")),
    responses((status = 200, body = Journey), (status = 404, body = crate::error::ErrorBody)))]
pub async fn disable(State(state): State<AppState>, Auth(actor): Auth, Path(id): Path<i64>) -> ApiResult<Json<Journey>> {
    Ok(Json(state.store.set_journey_enabled(&actor, id, false).await?))
}

/// Entered, active, reached goal, exited, completed — per group — and the goal's lift of the
/// treated over the holdout with Newcombe's 95% interval ("too few to tell" under 30 a group).
#[utoipa::path(get, path = "/api/v1/journeys/{id}/report", tag = "journeys", params(("id" = i64, Path, description = "journey id")),
    responses((status = 200, body = JourneyReport), (status = 404, body = crate::error::ErrorBody)))]
pub async fn report(State(state): State<AppState>, _auth: Auth, Path(id): Path<i64>) -> ApiResult<Json<JourneyReport>> {
    Ok(Json(state.store.journey_report(id).await?))
}

/// A customer's channels: sends, responses, the Beta posterior of the response rate (mean and
/// 90% interval), consent, and the preferred channel.
#[utoipa::path(get, path = "/api/v1/customers/{id}/channels", tag = "customers", params(("id" = i64, Path, description = "customer id")),
    responses((status = 200, body = ChannelPreferences), (status = 404, body = crate::error::ErrorBody)))]
pub async fn channels(State(state): State<AppState>, Auth(actor): Auth, Path(id): Path<i64>) -> ApiResult<Json<ChannelPreferences>> {
    check_customer_access(&state, &actor, id).await?;
    Ok(Json(state.store.channel_preferences(id).await?))
}

/// A customer's journey entries, newest first.
#[derive(Serialize, ToSchema)]
pub struct EntryList {
    /// At most 100.
    pub items: Vec<JourneyEntry>,
}

/// A customer's journey entries.
#[utoipa::path(get, path = "/api/v1/customers/{id}/journeys", tag = "customers", params(("id" = i64, Path, description = "customer id")),
    responses((status = 200, body = EntryList), (status = 404, body = crate::error::ErrorBody)))]
pub async fn customer_entries(State(state): State<AppState>, Auth(actor): Auth, Path(id): Path<i64>) -> ApiResult<Json<EntryList>> {
    check_customer_access(&state, &actor, id).await?;
    Ok(Json(EntryList { items: state.store.customer_journey_entries(id).await? }))
}
