//! `/api/v1/tickets`: the closed complaint loop — open, work, resolve with a root cause, the
//! customer's confirmation, comments and replies, assignment, and compensation within the
//! tier's authority. Agents work the tickets assigned to them and those of their customers.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, Utc};
use patron_store::page::Page;
use patron_store::tickets::{
    Compensation, NewComment, NewCompensation, NewTicket, Ticket, TicketDetail, TicketFilter, TicketSort, Transition,
};
use patron_store::users::Actor;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::{check_customer_access, Auth};
use crate::error::{ApiError, ApiResult, Json, Path, Query};
use crate::AppState;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/tickets", get(list).post(create))
        .route("/tickets/{id}", get(get_one))
        .route("/tickets/{id}/transitions", post(transition))
        .route("/tickets/{id}/comments", post(comment))
        .route("/tickets/{id}/assignment", post(assign))
        .route("/tickets/{id}/compensations", post(compensate))
        .route("/tickets/{id}/compensations/{cid}/decision", post(decide))
}

/// List filters, sort and paging.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// A state, or `open` (neither resolved nor confirmed).
    #[param(pattern = "^(open|new|acknowledged|in_progress|waiting_on_customer|resolved|confirmed|reopened)$")]
    pub status: Option<String>,
    /// `complaint`, `inquiry`, `suggestion` or `praise`.
    #[param(pattern = "^(complaint|inquiry|suggestion|praise)$")]
    pub kind: Option<String>,
    /// Assigned to this user (`me` is not a value: use your user id).
    pub assignee_id: Option<i64>,
    /// One customer's.
    pub customer_id: Option<i64>,
    /// With (true) or without (false) a breach.
    pub breached: Option<bool>,
    /// Open tickets whose next due time is before this instant (the "due soon" view).
    pub due_before: Option<DateTime<Utc>>,
    /// `newest` (default) or `due` (the next due time first).
    #[param(pattern = "^(newest|due)$")]
    pub sort: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1–500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
}

/// A page of tickets.
#[derive(Serialize, ToSchema)]
pub struct TicketPage {
    /// Rows.
    pub items: Vec<Ticket>,
    /// Cursor of the next page.
    pub next_cursor: Option<String>,
}

/// A ticket after a transition; `confirmation_url` when it was just resolved (the link to send
/// the customer, shown once).
#[derive(Serialize, ToSchema)]
pub struct TransitionResult {
    /// The ticket.
    #[serde(flatten)]
    pub ticket: Ticket,
    /// The customer's single-use confirmation link (only on the response that resolves).
    pub confirmation_url: Option<String>,
}

/// An assignment.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Assignment {
    /// The user (null: nobody).
    pub assignee_id: Option<i64>,
    /// The department (kept when absent).
    pub department: Option<String>,
}

/// A manager's decision on a pending compensation.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// Grant (true) or refuse (false).
    pub approve: bool,
}

/// The base of the links customers are sent: the configured public address, else the address
/// this request came to.
pub fn public_base(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(url) = &state.config.public_url {
        return url.trim_end_matches('/').to_owned();
    }
    let host =
        headers.get(header::HOST).and_then(|h| h.to_str().ok()).filter(|h| h.chars().all(|c| c.is_ascii_graphic())).unwrap_or("localhost");
    let scheme = if state.config.secure_cookies { "https" } else { "http" };
    format!("{scheme}://{host}")
}

/// The ticket if the caller may work it. A ticket of a customer outside the caller's scope (and
/// not assigned to the caller) does not exist for it: 404, as its customer does (issue 21 §2).
async fn workable(state: &AppState, actor: &Actor, id: i64) -> ApiResult<TicketDetail> {
    let detail = state.store.ticket(id).await?;
    if state.store.may_work_ticket(actor, &detail.ticket).await? {
        Ok(detail)
    } else {
        Err(ApiError::not_found("ticket"))
    }
}

/// Lists tickets, newest first or by due time.
#[utoipa::path(get, path = "/api/v1/tickets", tag = "tickets", params(ListParams), responses((status = 200, body = TicketPage)))]
pub async fn list(State(state): State<AppState>, Auth(actor): Auth, Query(p): Query<ListParams>) -> ApiResult<Json<TicketPage>> {
    let limit = p.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad_request("limit", "limit must be between 1 and 500"));
    }
    let sort = match p.sort.as_deref() {
        None | Some("newest") => TicketSort::Newest,
        Some("due") => TicketSort::Due,
        Some(_) => return Err(ApiError::bad_request("sort", "sort must be newest or due")),
    };
    let filter = TicketFilter {
        status: p.status,
        kind: p.kind,
        assignee_id: p.assignee_id,
        customer_id: p.customer_id,
        breached: p.breached,
        due_before: p.due_before,
        team_of: None,
    };
    let Page { items, next_cursor } =
        state.store.tickets(&actor, &filter, sort, p.cursor.as_deref(), limit).await.map_err(|e| match e {
            // Filters are query values: a bad one is a bad request, not an unprocessable body.
            patron_store::StoreError::Invalid { field: Some(f), message } => ApiError::bad_request(&f, message),
            other => other.into(),
        })?;
    Ok(Json(TicketPage { items, next_cursor }))
}

/// Opens a ticket. Its clocks come from the customer's tier policy; `opened_at` (history from
/// another helpdesk) is for managers and admins.
#[utoipa::path(post, path = "/api/v1/tickets", tag = "tickets", request_body = NewTicket,
    responses((status = 201, body = Ticket), (status = 403, body = crate::error::ErrorBody)))]
pub async fn create(State(state): State<AppState>, Auth(actor): Auth, Json(t): Json<NewTicket>) -> ApiResult<(StatusCode, Json<Ticket>)> {
    check_customer_access(&state, &actor, t.customer_id).await.map_err(|e| match e.status {
        // An unknown customer is a bad value, as for every other role.
        StatusCode::NOT_FOUND => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", format!("no customer with id {}", t.customer_id))
                .field("customer_id")
        }
        _ => e,
    })?;
    if !actor.can(patron_store::access::Permission::TicketsManage) && t.opened_at.is_some() {
        return Err(ApiError::forbidden("backdate a ticket (opened_at)"));
    }
    Ok((StatusCode::CREATED, Json(state.store.create_ticket(&actor, t).await?)))
}

/// One ticket with its comments, compensations and event history.
#[utoipa::path(get, path = "/api/v1/tickets/{id}", tag = "tickets", params(("id" = i64, Path, description = "ticket id")),
    responses((status = 200, body = TicketDetail), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody, description = "No such ticket, or its customer is outside your scope.")))]
pub async fn get_one(State(state): State<AppState>, Auth(actor): Auth, Path(id): Path<i64>) -> ApiResult<Json<TicketDetail>> {
    Ok(Json(workable(&state, &actor, id).await?))
}

/// Moves a ticket: `new → acknowledged → in_progress ⇄ waiting_on_customer → resolved →
/// confirmed`, `resolved → reopened → in_progress`. Any other move answers 409 naming the
/// allowed ones. Resolving a complaint needs a `root_cause`; it answers the customer's
/// `confirmation_url`.
#[utoipa::path(post, path = "/api/v1/tickets/{id}/transitions", tag = "tickets", params(("id" = i64, Path, description = "ticket id")), request_body = Transition,
    responses((status = 200, body = TransitionResult), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody, description = "No such ticket, or its customer is outside your scope."), (status = 409, body = crate::error::ErrorBody)))]
pub async fn transition(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<i64>,
    headers: HeaderMap,
    Json(t): Json<Transition>,
) -> ApiResult<Json<TransitionResult>> {
    workable(&state, &actor, id).await?;
    let change = state.store.transition_ticket(&actor, id, t).await?;
    let confirmation_url = change.confirmation_token.map(|token| format!("{}/p/confirm/{token}", public_base(&state, &headers)));
    Ok(Json(TransitionResult { ticket: change.ticket, confirmation_url }))
}

/// Adds an internal comment or a public reply (the first public reply meets the first response).
#[utoipa::path(post, path = "/api/v1/tickets/{id}/comments", tag = "tickets", params(("id" = i64, Path, description = "ticket id")), request_body = NewComment,
    responses((status = 201, body = Ticket), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody, description = "No such ticket, or its customer is outside your scope."), (status = 409, body = crate::error::ErrorBody)))]
pub async fn comment(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<i64>,
    Json(c): Json<NewComment>,
) -> ApiResult<(StatusCode, Json<Ticket>)> {
    workable(&state, &actor, id).await?;
    Ok((StatusCode::CREATED, Json(state.store.comment_ticket(&actor, id, c).await?)))
}

/// Assigns a ticket to a user and department (managers and admins; agents may take an
/// unassigned ticket of their customer for themselves).
#[utoipa::path(post, path = "/api/v1/tickets/{id}/assignment", tag = "tickets", params(("id" = i64, Path, description = "ticket id")), request_body = Assignment,
    responses((status = 200, body = Ticket), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody, description = "No such ticket, or its customer is outside your scope.")))]
pub async fn assign(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<i64>,
    Json(a): Json<Assignment>,
) -> ApiResult<Json<Ticket>> {
    let detail = workable(&state, &actor, id).await?;
    let takes_it_for_itself = detail.ticket.assignee_id.is_none() && a.assignee_id.is_some() && a.assignee_id == actor.user_id;
    if !(actor.can(patron_store::access::Permission::TicketsManage) || takes_it_for_itself) {
        return Err(ApiError::forbidden("assign tickets to others (take an unassigned one for yourself)"));
    }
    Ok(Json(state.store.assign_ticket(&actor, id, a.assignee_id, a.department).await?))
}

/// Compensates the customer: granted at once within the frontline authority of the ticket's
/// tier (201, `status: granted`), else waiting for a manager (202, `status: pending`).
/// Managers and admins grant directly.
#[utoipa::path(post, path = "/api/v1/tickets/{id}/compensations", tag = "tickets", params(("id" = i64, Path, description = "ticket id")), request_body = NewCompensation,
    responses((status = 201, body = Compensation, description = "Granted."), (status = 202, body = Compensation, description = "Above the authority: waiting for a manager's decision."),
              (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody, description = "No such ticket, or its customer is outside your scope.")))]
pub async fn compensate(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<i64>,
    Json(c): Json<NewCompensation>,
) -> ApiResult<(StatusCode, Json<Compensation>)> {
    workable(&state, &actor, id).await?;
    let out = state.store.compensate(&actor, id, c).await?;
    let status = if out.status == "pending" { StatusCode::ACCEPTED } else { StatusCode::CREATED };
    Ok((status, Json(out)))
}

/// A manager's decision on a pending compensation (a second decision answers 409).
#[utoipa::path(post, path = "/api/v1/tickets/{id}/compensations/{cid}/decision", tag = "tickets",
    params(("id" = i64, Path, description = "ticket id"), ("cid" = i64, Path, description = "compensation id")), request_body = Decision,
    responses((status = 200, body = Compensation), (status = 403, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
pub async fn decide(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path((id, cid)): Path<(i64, i64)>,
    Json(d): Json<Decision>,
) -> ApiResult<Json<Compensation>> {
    Ok(Json(state.store.decide_compensation(&actor, id, cid, d.approve).await?))
}
