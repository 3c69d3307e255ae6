//! `/api/v1/customer-events`: customer events (issue 19 §6) — seminars, forums, club
//! activities: definitions, invitations to a segment through the outbox, registrations (staff;
//! invitees register on the public page `/p/e/{token}`), check-in, the post-event survey and
//! the report. (`/api/v1/events` is the domain-event log.) Rules: `patron_store::customer_events`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::Router;
use patron_store::customer_events::{
    CustomerEvent, CustomerEventPatch, CustomerEventReport, EventSurveyOutcome, EventSurveyRequest, InvitationOutcome, InviteRequest,
    NewCustomerEvent, Registration,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{check_customer_access, Auth};
use crate::error::{ApiResult, Json, Path};
use crate::AppState;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/customer-events", get(list).post(create))
        .route("/customer-events/{id}", get(get_one).patch(update))
        .route("/customer-events/{id}/invitations", post(invite))
        .route("/customer-events/{id}/registrations", get(registrations).post(register))
        .route("/customer-events/{id}/registrations/{customer_id}", delete(cancel))
        .route("/customer-events/{id}/registrations/{customer_id}/check-in", post(check_in))
        .route("/customer-events/{id}/survey", post(send_survey))
        .route("/customer-events/{id}/report", get(report))
}

/// Events, the latest start first.
#[derive(Serialize, ToSchema)]
pub struct CustomerEventList {
    /// At most 500, each with its counts.
    pub items: Vec<CustomerEvent>,
}

/// An event's registrations.
#[derive(Serialize, ToSchema)]
pub struct RegistrationList {
    /// Of customers in the caller's scope, cancelled ones included (at most 5,000).
    pub items: Vec<Registration>,
}

/// A customer to register.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRegistration {
    /// The customer (in the caller's scope).
    #[schema(minimum = 1)]
    pub customer_id: i64,
}

/// Lists events with their counts (invited, registered, attended, seats taken).
#[utoipa::path(get, path = "/api/v1/customer-events", tag = "customer_events", responses((status = 200, body = CustomerEventList)))]
pub async fn list(State(state): State<AppState>, _auth: Auth) -> ApiResult<Json<CustomerEventList>> {
    Ok(Json(CustomerEventList { items: state.store.customer_events().await? }))
}

/// Makes an event (audited): title, kind, description, start and end, a place or a link (or
/// both), capacity, optionally the post-event survey.
#[utoipa::path(post, path = "/api/v1/customer-events", tag = "customer_events", request_body = NewCustomerEvent,
    responses((status = 201, body = CustomerEvent), (status = 403, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Json(body): Json<NewCustomerEvent>,
) -> ApiResult<(StatusCode, Json<CustomerEvent>)> {
    Ok((StatusCode::CREATED, Json(state.store.create_customer_event(&actor, body).await?)))
}

/// An event with its counts.
#[utoipa::path(get, path = "/api/v1/customer-events/{id}", tag = "customer_events", params(("id" = i64, Path, description = "event id")),
    responses((status = 200, body = CustomerEvent), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get_one(State(state): State<AppState>, _auth: Auth, Path(id): Path<i64>) -> ApiResult<Json<CustomerEvent>> {
    Ok(Json(state.store.customer_event(id).await?))
}

/// Changes an event (audited): the fields given. `status: cancelled` closes registration (the
/// invitees' page says so); the capacity may not go below the seats taken.
#[utoipa::path(patch, path = "/api/v1/customer-events/{id}", tag = "customer_events", params(("id" = i64, Path, description = "event id")),
    request_body = CustomerEventPatch,
    responses((status = 200, body = CustomerEvent), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<i64>,
    Json(body): Json<CustomerEventPatch>,
) -> ApiResult<Json<CustomerEvent>> {
    Ok(Json(state.store.update_customer_event(&actor, id, body).await?))
}

/// Invites a segment's members (audited): one invitation per customer and event, its message in
/// the outbox (marketing: consent, the global control group, caps and quiet hours apply, now and
/// again at sending). Those not reachable now are counted, not invited; running it again invites
/// only customers not invited yet. 409 once the event has started or when it is cancelled.
#[utoipa::path(post, path = "/api/v1/customer-events/{id}/invitations", tag = "customer_events", params(("id" = i64, Path, description = "event id")),
    request_body = InviteRequest,
    responses((status = 200, body = InvitationOutcome), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn invite(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<i64>,
    Json(body): Json<InviteRequest>,
) -> ApiResult<Json<InvitationOutcome>> {
    Ok(Json(state.store.invite_to_customer_event(&actor, id, body).await?))
}

/// The event's registrations of customers in the caller's scope: status, source, times,
/// attendance, whether invited.
#[utoipa::path(get, path = "/api/v1/customer-events/{id}/registrations", tag = "customer_events", params(("id" = i64, Path, description = "event id")),
    responses((status = 200, body = RegistrationList), (status = 404, body = crate::error::ErrorBody)))]
pub async fn registrations(State(state): State<AppState>, Auth(actor): Auth, Path(id): Path<i64>) -> ApiResult<Json<RegistrationList>> {
    Ok(Json(RegistrationList { items: state.store.customer_event_registrations(&actor, id).await? }))
}

/// Registers a customer (audited). 409 when the event is full, has started or is cancelled;
/// registered already: the registration as it is.
#[utoipa::path(post, path = "/api/v1/customer-events/{id}/registrations", tag = "customer_events", params(("id" = i64, Path, description = "event id")),
    request_body = NewRegistration,
    responses((status = 201, body = Registration), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn register(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<i64>,
    Json(body): Json<NewRegistration>,
) -> ApiResult<(StatusCode, Json<Registration>)> {
    check_customer_access(&state, &actor, body.customer_id).await?;
    Ok((StatusCode::CREATED, Json(state.store.register_for_customer_event(&actor, id, body.customer_id).await?)))
}

/// Cancels a customer's registration (audited; the seat is freed). 404 without one; 409 once
/// the event has started or the customer was checked in.
#[utoipa::path(delete, path = "/api/v1/customer-events/{id}/registrations/{customer_id}", tag = "customer_events",
    params(("id" = i64, Path, description = "event id"), ("customer_id" = i64, Path, description = "customer id")),
    responses((status = 200, body = Registration), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody)))]
pub async fn cancel(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path((id, customer_id)): Path<(i64, i64)>,
) -> ApiResult<Json<Registration>> {
    check_customer_access(&state, &actor, customer_id).await?;
    Ok(Json(state.store.cancel_customer_event_registration(&actor, id, customer_id).await?))
}

/// Checks a customer in (audited; again changes nothing): from an hour before the start to a
/// day after the end. A customer not registered is registered as a walk-in (taking a seat
/// whatever the capacity). 409 outside those hours or for a cancelled event.
#[utoipa::path(post, path = "/api/v1/customer-events/{id}/registrations/{customer_id}/check-in", tag = "customer_events",
    params(("id" = i64, Path, description = "event id"), ("customer_id" = i64, Path, description = "customer id")),
    responses((status = 200, body = Registration), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody)))]
pub async fn check_in(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path((id, customer_id)): Path<(i64, i64)>,
) -> ApiResult<Json<Registration>> {
    check_customer_access(&state, &actor, customer_id).await?;
    Ok(Json(state.store.check_in_customer_event(&actor, id, customer_id).await?))
}

/// Sends the event's survey to its attendees through the outbox (audited): each attendee is
/// invited once for this event (the survey's re-contact limit applies) with a single-use link.
/// 422 when the event names no survey; 409 before the event has ended or for a paused survey.
#[utoipa::path(post, path = "/api/v1/customer-events/{id}/survey", tag = "customer_events", params(("id" = i64, Path, description = "event id")),
    request_body = EventSurveyRequest,
    responses((status = 200, body = EventSurveyOutcome), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn send_survey(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<i64>,
    Json(body): Json<EventSurveyRequest>,
) -> ApiResult<Json<EventSurveyOutcome>> {
    Ok(Json(state.store.send_customer_event_survey(&actor, id, body).await?))
}

/// The report: invited, invitations sent, registered, attended, walk-ins; the attendees' spend
/// and retention (a completed order) over the 90 days after the event against invitees of the
/// same value tiers who did not attend, with the campaigns' intervals (Newcombe for retention,
/// Welch for spend per customer; groups under 30 are "too few to tell").
#[utoipa::path(get, path = "/api/v1/customer-events/{id}/report", tag = "customer_events", params(("id" = i64, Path, description = "event id")),
    responses((status = 200, body = CustomerEventReport), (status = 404, body = crate::error::ErrorBody)))]
pub async fn report(State(state): State<AppState>, _auth: Auth, Path(id): Path<i64>) -> ApiResult<Json<CustomerEventReport>> {
    Ok(Json(state.store.customer_event_report(id).await?))
}
