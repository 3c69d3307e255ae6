//! `/api/v1/customers`: the customer 360 and everything hanging off one customer.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use patron_store::contacts::{Contact, NewContact};
use patron_store::customers::{
    Change, Customer, CustomerFilter, CustomerListItem, CustomerPatch, CustomerSort, NewCustomer, OrderStats, Page,
};
use patron_store::duplicates::{DuplicateCandidate, MergeReport};
use patron_store::interactions::Interaction;
use patron_store::notes::{NewNote, Note};
use patron_store::orders::Order;
use patron_store::privacy::PersonalData;
use patron_store::timeline::TimelineEntry;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::masking::masked;
use crate::auth::{check_customer_access, Auth};
use crate::error::{ApiError, ApiResult, Json, Path, Query};
use crate::AppState;
use patron_store::access::masking::Surface;
use patron_store::access::{CustomerScope, Permission};

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/customers", get(list).post(create))
        .route("/customers/{id}", get(get_one).patch(patch).delete(delete))
        .route("/customers/{id}/timeline", get(timeline))
        .route("/customers/{id}/changes", get(changes))
        .route("/customers/{id}/orders", get(orders))
        .route("/customers/{id}/interactions", get(interactions))
        .route("/customers/{id}/contacts", get(contacts).post(add_contact))
        .route("/customers/{id}/notes", axum::routing::post(add_note))
        .route("/customers/{id}/duplicates", get(duplicates))
        .route("/customers/{id}/merge", axum::routing::post(merge))
        .route("/customers/{id}/personal-data", get(personal_data))
        .route("/customers/{id}/erase", axum::routing::post(erase))
}

/// List filters, sort and paging.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Search: a WeChat id or external id, exactly; a complete mobile number or email address,
    /// exactly; three characters or more, anywhere in the name, mobile or email (any case); one
    /// or two characters, the start of the name.
    pub q: Option<String>,
    /// Only customers with this tag.
    pub tag: Option<String>,
    /// Only customers of this account manager.
    pub owner_id: Option<i64>,
    /// Only customers in this city.
    pub city: Option<String>,
    /// `person` or `organisation`.
    pub kind: Option<String>,
    /// Only customers whose home unit is this unit.
    pub home_unit_id: Option<i64>,
    /// `id` (default), `-id`, `name`, `-name`, `updated_at`, `-updated_at`.
    #[param(value_type = Option<String>)]
    pub sort: Option<CustomerSort>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1–1000 (default 50).
    pub limit: Option<i64>,
}

/// Paging of a sub-list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1–500 (default 50).
    pub limit: Option<i64>,
}

fn check_limit(limit: Option<i64>, max: i64) -> ApiResult<i64> {
    match limit {
        None => Ok(50),
        Some(l) if (1..=max).contains(&l) => Ok(l),
        Some(_) => Err(ApiError::bad_request("limit", format!("limit must be between 1 and {max}"))),
    }
}

/// A page of customers.
#[derive(Serialize, ToSchema)]
pub struct CustomerPage {
    /// Rows.
    pub items: Vec<CustomerListItem>,
    /// Cursor of the next page.
    pub next_cursor: Option<String>,
}

/// Lists customers. Agents see their own portfolio. Mobile and email are masked in lists except
/// for admins; the full values are in the (audited) customer 360.
#[utoipa::path(get, path = "/api/v1/customers", tag = "customers", params(ListParams),
    responses((status = 200, body = CustomerPage), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody)))]
pub async fn list(State(state): State<AppState>, Auth(actor): Auth, Query(p): Query<ListParams>) -> ApiResult<Json<serde_json::Value>> {
    let limit = check_limit(p.limit, 1000)?;
    if let Some(k) = &p.kind {
        if k != "person" && k != "organisation" {
            return Err(ApiError::bad_request("kind", "kind must be person or organisation"));
        }
    }
    // The caller's scope (patron_store::access) narrows every list and count.
    let filter = CustomerFilter {
        q: p.q,
        tag: p.tag,
        owner_id: p.owner_id,
        city: p.city,
        kind: p.kind,
        home_unit_id: p.home_unit_id,
        scope: Some(CustomerScope::of(&actor)),
    };
    let page = state.store.list_customers(&filter, p.sort.unwrap_or_default(), p.cursor.as_deref(), limit).await?;
    masked(&state, &actor, Surface::List, &CustomerPage { items: page.items, next_cursor: page.next_cursor }).await
}

/// The customer 360: profile, order totals, people and latest orders.
#[derive(Serialize, ToSchema)]
pub struct Customer360 {
    /// Profile.
    pub customer: Customer,
    /// Order totals.
    pub stats: OrderStats,
    /// People of an organisation.
    pub contacts: Vec<Contact>,
    /// The 10 latest orders.
    pub recent_orders: Vec<Order>,
    /// The latest analysis scores with a plain-words reason (`null` before the first analysis).
    pub scores: Option<crate::api::analytics::CustomerScores>,
}

/// Creates a customer.
#[utoipa::path(post, path = "/api/v1/customers", tag = "customers", request_body = NewCustomer,
    responses((status = 201, body = Customer), (status = 400, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Json(input): Json<NewCustomer>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    let mut input = input;
    if !actor.can(Permission::AllCustomers) && input.home_unit_id.is_none() {
        // A limited caller's new customer without a home unit joins the caller's own portfolio
        // (so that it stays in the caller's scope).
        if input.owner_id.is_some() && input.owner_id != actor.user_id {
            return Err(ApiError::forbidden("assign customers to someone else"));
        }
        input.owner_id = actor.user_id;
    }
    check_unit_visible(&state, &actor, input.home_unit_id, input.owner_id).await?;
    check_referrer_visible(&state, &actor, input.referrer_id).await?;
    let c = state.store.create_customer(&actor, input).await?;
    Ok((StatusCode::CREATED, masked(&state, &actor, Surface::Profile, &c).await?))
}

/// Reads one customer's 360 (recorded in the audit log).
#[utoipa::path(get, path = "/api/v1/customers/{id}", tag = "customers", params(("id" = i64, Path, description = "customer id"), crate::api::analytics::LangParams),
    responses((status = 200, body = Customer360), (status = 400, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get_one(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<i64>,
    Query(q): Query<crate::api::analytics::LangParams>,
) -> ApiResult<Json<serde_json::Value>> {
    let lang = q.lang()?;
    // The profile's own read answers 404 for a missing or deleted customer; the scope check adds
    // a statement only for callers whose scope is narrower than every customer.
    if !CustomerScope::of(&actor).is_all() {
        check_customer_access(&state, &actor, id).await?;
    }
    // One connection for the whole read (the scores are one indexed row by primary key: cheap
    // enough to include in every 360).
    let p = state.store.customer_360(id, 10).await?;
    let scores = p.scores.map(|s| crate::api::analytics::CustomerScores::new(s, lang));
    let (customer, stats, contacts, recent_orders) = (p.customer, p.stats, p.contacts, p.recent_orders);
    state.store.audit(&actor.key, "read", "customer", Some(id.to_string()), None).await?;
    masked(&state, &actor, Surface::Profile, &Customer360 { customer, stats, contacts, recent_orders, scores }).await
}

/// Changes a customer; fields left out stay, `null` clears. Every change is kept in the history.
#[utoipa::path(patch, path = "/api/v1/customers/{id}", tag = "customers", params(("id" = i64, Path, description = "customer id")), request_body = CustomerPatch,
    responses((status = 200, body = Customer), (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)))]
pub async fn patch(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<i64>,
    Json(p): Json<CustomerPatch>,
) -> ApiResult<Json<serde_json::Value>> {
    check_customer_access(&state, &actor, id).await?;
    if !actor.can(Permission::AllCustomers) && p.owner_id.is_some() {
        return Err(ApiError::forbidden("change a customer's owner"));
    }
    if let Some(unit) = p.home_unit_id {
        let owner = state.store.customer_owner(id).await?;
        check_unit_visible(&state, &actor, unit, owner).await?;
    }
    check_referrer_visible(&state, &actor, p.referrer_id.flatten()).await?;
    let c = state.store.update_customer(&actor, id, p).await?;
    masked(&state, &actor, Surface::Profile, &c).await
}

/// A referrer the caller may not see is refused exactly like one that does not exist: an agent
/// could otherwise read any customer's name off its own customer's 360, or tell which ids exist.
async fn check_referrer_visible(state: &AppState, actor: &patron_store::users::Actor, referrer: Option<i64>) -> ApiResult<()> {
    match referrer {
        Some(r) if check_customer_access(state, actor, r).await.is_err() => {
            Err(patron_store::StoreError::Reference(format!("referrer_id: customer {r} is not visible to this caller")).into())
        }
        _ => Ok(()),
    }
}

/// A limited caller may give a customer a home unit only where the customer stays in its scope
/// (a unit of its subtrees, or a customer it owns): it cannot hand a customer out of its sight.
async fn check_unit_visible(state: &AppState, actor: &patron_store::users::Actor, unit: Option<i64>, owner: Option<i64>) -> ApiResult<()> {
    let CustomerScope::Limited(user) = CustomerScope::of(actor) else { return Ok(()) };
    if owner.is_some() && owner == user {
        return Ok(());
    }
    let mine = match (unit, user) {
        (Some(u), Some(me)) => state.store.unit_in_user_subtrees(me, u).await?,
        _ => false,
    };
    if mine {
        Ok(())
    } else {
        Err(ApiError::forbidden("give a customer a home unit outside your units"))
    }
}

/// Deletes a customer (soft: hidden, every record kept).
#[utoipa::path(delete, path = "/api/v1/customers/{id}", tag = "customers", params(("id" = i64, Path, description = "customer id")),
    responses((status = 204), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn delete(State(state): State<AppState>, Auth(actor): Auth, Path(id): Path<i64>) -> ApiResult<StatusCode> {
    check_customer_access(&state, &actor, id).await?;
    state.store.delete_customer(&actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Likely duplicates of a customer.
#[derive(Serialize, ToSchema)]
pub struct Duplicates {
    /// Live customers sharing a mobile, email or WeChat id, or the same name in the same city.
    pub items: Vec<DuplicateCandidate>,
}

/// Live customers that may be the same as this one, and what they share (`mobile`, `email`,
/// `wechat_id`, `name_city`). Managers and admins; contacts are masked except for admins.
#[utoipa::path(get, path = "/api/v1/customers/{id}/duplicates", tag = "customers", params(("id" = i64, Path, description = "customer id")),
    responses((status = 200, body = Duplicates), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn duplicates(State(state): State<AppState>, Auth(actor): Auth, Path(id): Path<i64>) -> ApiResult<Json<serde_json::Value>> {
    check_customer_access(&state, &actor, id).await?;
    let mut items = state.store.duplicate_candidates(id).await?;
    // Candidates outside the caller's scope do not exist for it.
    if !actor.can(Permission::AllCustomers) {
        let mut visible = Vec::with_capacity(items.len());
        for c in items {
            if state.store.customer_in_scope(&actor, c.id).await? {
                visible.push(c);
            }
        }
        items = visible;
    }
    masked(&state, &actor, Surface::List, &Duplicates { items }).await
}

/// Which customer to merge into this one.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MergeRequest {
    /// The duplicate: its orders, interactions, notes, contacts and history move to this
    /// customer, which keeps its own values and takes the duplicate's where it has none; the
    /// duplicate is then deleted (soft).
    pub merge_id: i64,
}

/// Merges a duplicate into this customer, in one transaction. Managers and admins.
#[utoipa::path(post, path = "/api/v1/customers/{id}/merge", tag = "customers", params(("id" = i64, Path, description = "the customer kept")),
    request_body = MergeRequest,
    responses((status = 200, body = MergeReport), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody)))]
pub async fn merge(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<i64>,
    Json(m): Json<MergeRequest>,
) -> ApiResult<Json<MergeReport>> {
    check_customer_access(&state, &actor, id).await?;
    if !state.store.customer_in_scope(&actor, m.merge_id).await? {
        return Err(ApiError::not_found("customer"));
    }
    Ok(Json(state.store.merge_customers(&actor, id, m.merge_id).await?))
}

/// A copy of everything patron holds on the customer (a person's right of access): profile,
/// people, every order, interaction, note and history row. Managers and admins; audited.
#[utoipa::path(get, path = "/api/v1/customers/{id}/personal-data", tag = "customers", params(("id" = i64, Path, description = "customer id")),
    responses((status = 200, body = PersonalData), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn personal_data(State(state): State<AppState>, Auth(actor): Auth, Path(id): Path<i64>) -> ApiResult<Json<PersonalData>> {
    check_customer_access(&state, &actor, id).await?;
    Ok(Json(state.store.personal_data(&actor, id).await?))
}

/// Erases the customer's personal data (a person's right to erasure): contact details,
/// demographics, attributes, tags, notes, interaction payloads, the people of an organisation
/// and the values in the history are cleared and the name pseudonymised; orders stay for the
/// books, attached to the pseudonymised, hidden customer. Irreversible; admins only; audited.
#[utoipa::path(post, path = "/api/v1/customers/{id}/erase", tag = "customers", params(("id" = i64, Path, description = "customer id")),
    responses((status = 204), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn erase(State(state): State<AppState>, Auth(actor): Auth, Path(id): Path<i64>) -> ApiResult<StatusCode> {
    check_customer_access(&state, &actor, id).await?;
    state.store.erase_customer(&actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A page of timeline entries.
#[derive(Serialize, ToSchema)]
pub struct TimelinePage {
    /// Entries, newest first.
    pub items: Vec<TimelineEntry>,
    /// Cursor of the next page.
    pub next_cursor: Option<String>,
}

/// Orders, interactions, notes and changes of one customer, merged, newest first.
#[utoipa::path(get, path = "/api/v1/customers/{id}/timeline", tag = "customers", params(("id" = i64, Path, description = "customer id"), PageParams),
    responses((status = 200, body = TimelinePage), (status = 400, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn timeline(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<i64>,
    Query(p): Query<PageParams>,
) -> ApiResult<Json<TimelinePage>> {
    check_customer_access(&state, &actor, id).await?;
    let mut page = state.store.timeline(id, p.cursor.as_deref(), check_limit(p.limit, 500)?).await?;
    let mask = state.store.field_mask(&actor, Surface::Profile).await?;
    page.items.iter_mut().for_each(|e| mask.timeline_entry(e));
    Ok(Json(TimelinePage { items: page.items, next_cursor: page.next_cursor }))
}

/// The change history of a customer's profile, newest first (at most 500).
#[utoipa::path(get, path = "/api/v1/customers/{id}/changes", tag = "customers", params(("id" = i64, Path, description = "customer id")),
    responses((status = 200, body = Vec<Change>), (status = 404, body = crate::error::ErrorBody)))]
pub async fn changes(State(state): State<AppState>, Auth(actor): Auth, Path(id): Path<i64>) -> ApiResult<Json<Vec<Change>>> {
    check_customer_access(&state, &actor, id).await?;
    let mask = state.store.field_mask(&actor, Surface::Profile).await?;
    let mut changes = state.store.customer_changes(id, 500).await?;
    for c in &mut changes {
        c.old_value = mask.change_value(&c.field, c.old_value.take());
        c.new_value = mask.change_value(&c.field, c.new_value.take());
    }
    Ok(Json(changes))
}

/// A page of orders.
#[derive(Serialize, ToSchema)]
pub struct OrderPage {
    /// Orders, newest first.
    pub items: Vec<Order>,
    /// Cursor of the next page.
    pub next_cursor: Option<String>,
}

/// A customer's orders, newest first.
#[utoipa::path(get, path = "/api/v1/customers/{id}/orders", tag = "orders", params(("id" = i64, Path, description = "customer id"), PageParams),
    responses((status = 200, body = OrderPage), (status = 404, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)))]
pub async fn orders(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<i64>,
    Query(p): Query<PageParams>,
) -> ApiResult<Json<serde_json::Value>> {
    check_customer_access(&state, &actor, id).await?;
    let page: Page<Order> = state.store.customer_orders(id, p.cursor.as_deref(), check_limit(p.limit, 500)?).await?;
    masked(&state, &actor, Surface::Profile, &OrderPage { items: page.items, next_cursor: page.next_cursor }).await
}

/// A page of interactions.
#[derive(Serialize, ToSchema)]
pub struct InteractionPage {
    /// Interactions, newest first.
    pub items: Vec<Interaction>,
    /// Cursor of the next page.
    pub next_cursor: Option<String>,
}

/// A customer's interactions, newest first.
#[utoipa::path(get, path = "/api/v1/customers/{id}/interactions", tag = "interactions", params(("id" = i64, Path, description = "customer id"), PageParams),
    responses((status = 200, body = InteractionPage), (status = 404, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)))]
pub async fn interactions(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<i64>,
    Query(p): Query<PageParams>,
) -> ApiResult<Json<InteractionPage>> {
    check_customer_access(&state, &actor, id).await?;
    let page = state.store.customer_interactions(id, p.cursor.as_deref(), check_limit(p.limit, 500)?).await?;
    Ok(Json(InteractionPage { items: page.items, next_cursor: page.next_cursor }))
}

/// The people of an organisation customer.
#[utoipa::path(get, path = "/api/v1/customers/{id}/contacts", tag = "customers", params(("id" = i64, Path, description = "customer id")),
    responses((status = 200, body = Vec<Contact>), (status = 404, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)))]
pub async fn contacts(State(state): State<AppState>, Auth(actor): Auth, Path(id): Path<i64>) -> ApiResult<Json<serde_json::Value>> {
    check_customer_access(&state, &actor, id).await?;
    masked(&state, &actor, Surface::Profile, &state.store.contacts(id).await?).await
}

/// Adds a person to an organisation customer.
#[utoipa::path(post, path = "/api/v1/customers/{id}/contacts", tag = "customers", params(("id" = i64, Path, description = "customer id")), request_body = NewContact,
    responses((status = 201, body = Contact), (status = 404, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
pub async fn add_contact(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<i64>,
    Json(c): Json<NewContact>,
) -> ApiResult<(StatusCode, Json<Contact>)> {
    check_customer_access(&state, &actor, id).await?;
    Ok((StatusCode::CREATED, Json(state.store.create_contact(&actor, id, c).await?)))
}

/// Adds a note to a customer.
#[utoipa::path(post, path = "/api/v1/customers/{id}/notes", tag = "customers", params(("id" = i64, Path, description = "customer id")), request_body = NewNote,
    responses((status = 201, body = Note), (status = 404, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn add_note(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<i64>,
    Json(n): Json<NewNote>,
) -> ApiResult<(StatusCode, Json<Note>)> {
    check_customer_access(&state, &actor, id).await?;
    Ok((StatusCode::CREATED, Json(state.store.create_note(&actor, id, n).await?)))
}
