//! `/api/v1/events`: the domain events, in order, for consumers that poll (integrations; the
//! webhooks, journeys and loyalty consumers read the same table).

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use patron_store::events::{Event, EventFilter};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, Json, Query};
use crate::AppState;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new().route("/events", get(list))
}

/// Which events.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventParams {
    /// A type (`ticket.breached`) or every type of a noun (`ticket.*`).
    #[param(pattern = "^[a-z_]+(\\.[a-z_]+|\\.\\*)$")]
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// One customer's.
    pub customer_id: Option<i64>,
    /// Only events with a greater id (the last id of the previous page).
    #[param(minimum = 0)]
    pub after: Option<i64>,
    /// Page size, 1–1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

/// A page of events.
#[derive(Serialize, ToSchema)]
pub struct EventPage {
    /// Events in id order.
    pub items: Vec<Event>,
    /// Pass as `after` for the next page (absent when the page is not full).
    pub next_after: Option<i64>,
}

/// Events in id order after `after` (manager+).
#[utoipa::path(get, path = "/api/v1/events", tag = "events", params(EventParams),
    responses((status = 200, body = EventPage), (status = 403, body = crate::error::ErrorBody)))]
pub async fn list(State(state): State<AppState>, Auth(_actor): Auth, Query(p): Query<EventParams>) -> ApiResult<Json<EventPage>> {
    let limit = p.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("limit", "limit must be between 1 and 1000"));
    }
    let filter = EventFilter { kind: p.kind, customer_id: p.customer_id, subject_id: None, after: p.after };
    let items = state.store.events(&filter, limit).await.map_err(|e| match e {
        patron_store::StoreError::Invalid { field: Some(f), message } => ApiError::bad_request(&f, message),
        other => other.into(),
    })?;
    let next_after = (items.len() as i64 == limit).then(|| items.last().map(|e| e.id)).flatten();
    Ok(Json(EventPage { items, next_after }))
}
