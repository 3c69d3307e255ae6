//! Account management (issue 19 §1–§3): account teams, portfolio reassignment, "my accounts",
//! contact cadence, relationship stage, the people map, relationship reviews, and the account
//! work on tasks (outcome, snooze, recurrence). docs/accounts.md.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::Router;
use patron_store::accounts::cadence::{CadenceFilter, CadenceRow};
use patron_store::accounts::kpis::{AmKpiReport, KpiCustomer};
use patron_store::accounts::relationship::{PeopleMap, Relationship, StageInput, TieInput};
use patron_store::accounts::reviews::{NewReview, Review, ReviewDue};
use patron_store::accounts::tasks::{AccountTask, TaskOutcome, TaskSchedule};
use patron_store::accounts::team::{AccountTeam, ReassignReport, Reassignment, ReassignmentRecord, TeamInput};
use patron_store::accounts::{AccountSettings, PortfolioRow};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::{check_customer_access, Auth};
use crate::error::{ApiError, ApiResult, Json, Path, Query};
use crate::AppState;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/customers/{id}/team", get(team).put(put_team))
        .route("/customers/{id}/reassignments", get(reassignments))
        .route("/customers/{id}/account", get(account))
        .route("/customers/{id}/relationship", get(relationship).put(put_relationship))
        .route("/customers/{id}/people", get(people))
        .route("/customers/{id}/people/ties", put(put_tie))
        .route("/customers/{id}/reviews", get(reviews).post(create_review))
        .route("/portfolios/reassign", post(reassign))
        .route("/portfolios/mine", get(mine))
        .route("/cadence/overdue", get(overdue))
        .route("/reviews/due", get(reviews_due))
        .route("/accounts/settings", get(settings).put(put_settings))
        .route("/tasks/{id}/complete", post(complete_task))
        .route("/tasks/{id}/schedule", post(schedule_task))
        .route("/kpis/account-managers", get(kpis))
        .route("/kpis/account-managers/{user_id}/customers", get(kpi_customers))
}

/// A list of rows.
#[derive(Serialize, ToSchema)]
pub struct Rows<T: ToSchema> {
    /// The rows.
    pub rows: Vec<T>,
}

/// A customer's account summary for the 360: contact cadence, handover note, stage, health.
#[derive(Serialize, ToSchema)]
pub struct AccountSummary {
    /// The contact position (null: not a managed account).
    pub cadence: Option<CadenceRow>,
    /// The next contact's due day.
    pub next_contact_due: Option<chrono::NaiveDate>,
    /// The handover note to the current owner (from the latest reassignment to them).
    pub handover: Option<ReassignmentRecord>,
    /// Relationship stage and guidance.
    pub relationship: Relationship,
    /// The latest health score.
    pub health_score: Option<f64>,
    /// The account team.
    pub team: AccountTeam,
}

/// Reads a customer's account team.
#[utoipa::path(get, path = "/api/v1/customers/{id}/team", tag = "accounts", params(("id" = i64, Path, description = "customer id")),
    responses((status = 200, body = AccountTeam), (status = 404, body = crate::error::ErrorBody)))]
pub async fn team(State(state): State<AppState>, Auth(actor): Auth, Path(id): Path<i64>) -> ApiResult<Json<AccountTeam>> {
    check_customer_access(&state, &actor, id).await?;
    Ok(Json(state.store.account_team(id).await?))
}

/// Replaces a customer's account team (roles: account_manager, service, technical,
/// executive_sponsor or a free role; at most one account_manager).
#[utoipa::path(put, path = "/api/v1/customers/{id}/team", tag = "accounts", params(("id" = i64, Path, description = "customer id")),
    request_body = TeamInput, responses((status = 200, body = AccountTeam), (status = 404, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn put_team(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<i64>,
    Json(t): Json<TeamInput>,
) -> ApiResult<Json<AccountTeam>> {
    check_customer_access(&state, &actor, id).await?;
    Ok(Json(state.store.set_account_team(&actor, id, t).await?))
}

/// A customer's changes of owner, newest first.
#[utoipa::path(get, path = "/api/v1/customers/{id}/reassignments", tag = "accounts", params(("id" = i64, Path, description = "customer id")),
    responses((status = 200, body = Rows<ReassignmentRecord>), (status = 404, body = crate::error::ErrorBody)))]
pub async fn reassignments(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<i64>,
) -> ApiResult<Json<Rows<ReassignmentRecord>>> {
    check_customer_access(&state, &actor, id).await?;
    Ok(Json(Rows { rows: state.store.reassignments(id).await? }))
}

/// The account summary shown on the 360: next contact due, handover note, stage, health, team.
#[utoipa::path(get, path = "/api/v1/customers/{id}/account", tag = "accounts", params(("id" = i64, Path, description = "customer id")),
    responses((status = 200, body = AccountSummary), (status = 404, body = crate::error::ErrorBody)))]
pub async fn account(State(state): State<AppState>, Auth(actor): Auth, Path(id): Path<i64>) -> ApiResult<Json<AccountSummary>> {
    check_customer_access(&state, &actor, id).await?;
    Ok(Json(summary(&state, &actor, id).await?))
}

/// The account summary of a customer the caller sees.
pub async fn summary(state: &AppState, actor: &patron_store::users::Actor, id: i64) -> ApiResult<AccountSummary> {
    let cadence = state.store.next_contact(actor, id).await?;
    let handover = state.store.handover(id).await?;
    // The handover note is for the new owner (and those who see every customer).
    let handover = handover.filter(|h| Some(h.to_user_id) == actor.user_id || actor.can(patron_store::access::Permission::AllCustomers));
    let relationship = state.store.relationship(id).await?;
    let health_score = state.store.reviews(id).await?.first().map(|r| r.health_score);
    let team = state.store.account_team(id).await?;
    Ok(AccountSummary {
        next_contact_due: cadence.as_ref().map(|c| c.next_contact_due),
        cadence,
        handover,
        relationship,
        health_score,
        team,
    })
}

/// Reads the relationship stage with its history and guidance.
#[utoipa::path(get, path = "/api/v1/customers/{id}/relationship", tag = "accounts", params(("id" = i64, Path, description = "customer id")),
    responses((status = 200, body = Relationship), (status = 404, body = crate::error::ErrorBody)))]
pub async fn relationship(State(state): State<AppState>, Auth(actor): Auth, Path(id): Path<i64>) -> ApiResult<Json<Relationship>> {
    check_customer_access(&state, &actor, id).await?;
    Ok(Json(state.store.relationship(id).await?))
}

/// Sets the relationship stage (acquaintance, breakthrough, consolidation, partnership) with a reason.
#[utoipa::path(put, path = "/api/v1/customers/{id}/relationship", tag = "accounts", params(("id" = i64, Path, description = "customer id")),
    request_body = StageInput, responses((status = 200, body = Relationship), (status = 404, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn put_relationship(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<i64>,
    Json(s): Json<StageInput>,
) -> ApiResult<Json<Relationship>> {
    check_customer_access(&state, &actor, id).await?;
    Ok(Json(state.store.set_relationship_stage(&actor, id, s).await?))
}

/// The people map: the client's people, our ties to them, the single-threaded flag.
#[utoipa::path(get, path = "/api/v1/customers/{id}/people", tag = "accounts", params(("id" = i64, Path, description = "customer id")),
    responses((status = 200, body = PeopleMap), (status = 404, body = crate::error::ErrorBody)))]
pub async fn people(State(state): State<AppState>, Auth(actor): Auth, Path(id): Path<i64>) -> ApiResult<Json<PeopleMap>> {
    check_customer_access(&state, &actor, id).await?;
    Ok(Json(state.store.people_map(id).await?))
}

/// Records or changes a tie between one of our users and one of the client's people.
#[utoipa::path(put, path = "/api/v1/customers/{id}/people/ties", tag = "accounts", params(("id" = i64, Path, description = "customer id")),
    request_body = TieInput, responses((status = 200, body = PeopleMap), (status = 404, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn put_tie(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<i64>,
    Json(t): Json<TieInput>,
) -> ApiResult<Json<PeopleMap>> {
    check_customer_access(&state, &actor, id).await?;
    Ok(Json(state.store.set_tie(&actor, id, t).await?))
}

/// A customer's relationship reviews, newest first, each with the previous health score.
#[utoipa::path(get, path = "/api/v1/customers/{id}/reviews", tag = "accounts", params(("id" = i64, Path, description = "customer id")),
    responses((status = 200, body = Rows<Review>), (status = 404, body = crate::error::ErrorBody)))]
pub async fn reviews(State(state): State<AppState>, Auth(actor): Auth, Path(id): Path<i64>) -> ApiResult<Json<Rows<Review>>> {
    check_customer_access(&state, &actor, id).await?;
    Ok(Json(Rows { rows: state.store.reviews(id).await? }))
}

/// Records a relationship review; answers with its health score (0–100) and parts.
#[utoipa::path(post, path = "/api/v1/customers/{id}/reviews", tag = "accounts", params(("id" = i64, Path, description = "customer id")),
    request_body = NewReview, responses((status = 201, body = Review), (status = 404, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn create_review(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<i64>,
    Json(r): Json<NewReview>,
) -> ApiResult<(StatusCode, Json<Review>)> {
    check_customer_access(&state, &actor, id).await?;
    Ok((StatusCode::CREATED, Json(state.store.create_review(&actor, id, r).await?)))
}

/// Moves accounts from one owner to another in one transaction, kept as history with a
/// handover note (needs `all_customers`).
#[utoipa::path(post, path = "/api/v1/portfolios/reassign", tag = "accounts", request_body = Reassignment,
    responses((status = 200, body = ReassignReport), (status = 403, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn reassign(State(state): State<AppState>, Auth(actor): Auth, Json(r): Json<Reassignment>) -> ApiResult<Json<ReassignReport>> {
    Ok(Json(state.store.reassign_portfolio(&actor, r).await?))
}

/// Whose portfolio.
#[derive(Debug, Deserialize, IntoParams)]
pub struct UserParams {
    /// A user (the caller when absent).
    pub user_id: Option<i64>,
}

fn user_or_self(actor: &patron_store::users::Actor, user_id: Option<i64>) -> ApiResult<i64> {
    match user_id.or(actor.user_id) {
        Some(u) if u >= 1 => Ok(u),
        Some(_) => Err(ApiError::from(patron_store::StoreError::invalid("user_id", "must be a user id"))),
        None => Err(ApiError::from(patron_store::StoreError::invalid("user_id", "give user_id (the caller has no user)"))),
    }
}

/// A user's portfolio ("My accounts"): tier, CLV, P(alive), next contact due, open tickets,
/// stage and health of the managed accounts they own or are on the team of.
#[utoipa::path(get, path = "/api/v1/portfolios/mine", tag = "accounts", params(UserParams),
    responses((status = 200, body = Rows<PortfolioRow>), (status = 422, body = crate::error::ErrorBody)))]
pub async fn mine(State(state): State<AppState>, Auth(actor): Auth, Query(p): Query<UserParams>) -> ApiResult<Json<Rows<PortfolioRow>>> {
    let u = user_or_self(&actor, p.user_id)?;
    Ok(Json(Rows { rows: state.store.portfolio(&actor, u).await? }))
}

/// Managed accounts whose last meaningful contact is older than their cadence.
#[utoipa::path(get, path = "/api/v1/cadence/overdue", tag = "accounts",
    params(("user_id" = Option<i64>, Query, description = "the account manager"), ("tier" = Option<String>, Query, description = "A, B, C, D or default")),
    responses((status = 200, body = Rows<CadenceRow>), (status = 422, body = crate::error::ErrorBody)))]
pub async fn overdue(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Query(f): Query<CadenceFilter>,
) -> ApiResult<Json<Rows<CadenceRow>>> {
    Ok(Json(Rows { rows: state.store.cadence_overdue(&actor, &f).await? }))
}

/// Relationship reviews due (today or overdue) in a user's portfolio (everyone's the caller
/// sees when absent).
#[utoipa::path(get, path = "/api/v1/reviews/due", tag = "accounts", params(("user_id" = Option<i64>, Query, description = "whose portfolio")),
    responses((status = 200, body = Rows<ReviewDue>)))]
pub async fn reviews_due(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Query(p): Query<UserParams>,
) -> ApiResult<Json<Rows<ReviewDue>>> {
    Ok(Json(Rows { rows: state.store.reviews_due(&actor, p.user_id, true).await? }))
}

/// The account-management settings.
#[utoipa::path(get, path = "/api/v1/accounts/settings", tag = "accounts", responses((status = 200, body = AccountSettings)))]
pub async fn settings(State(state): State<AppState>, Auth(_actor): Auth) -> ApiResult<Json<AccountSettings>> {
    Ok(Json(state.store.account_settings().await?))
}

/// Replaces the account-management settings.
#[utoipa::path(put, path = "/api/v1/accounts/settings", tag = "accounts", request_body = AccountSettings,
    responses((status = 200, body = AccountSettings), (status = 422, body = crate::error::ErrorBody)))]
pub async fn put_settings(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Json(s): Json<AccountSettings>,
) -> ApiResult<Json<AccountSettings>> {
    state.store.set_account_settings(&actor, &s).await?;
    Ok(Json(state.store.account_settings().await?))
}

/// Marks a task done with an outcome; a call, visit or reply records the contact.
#[utoipa::path(post, path = "/api/v1/tasks/{id}/complete", tag = "tasks", params(("id" = i64, Path, description = "task id")),
    request_body = TaskOutcome, responses((status = 200, body = AccountTask), (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn complete_task(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<i64>,
    Json(o): Json<TaskOutcome>,
) -> ApiResult<Json<AccountTask>> {
    Ok(Json(state.store.complete_task(&actor, id, o).await?))
}

/// Snoozes a task to a day, or sets its recurrence.
#[utoipa::path(post, path = "/api/v1/tasks/{id}/schedule", tag = "tasks", params(("id" = i64, Path, description = "task id")),
    request_body = TaskSchedule, responses((status = 200, body = AccountTask), (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn schedule_task(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<i64>,
    Json(s): Json<TaskSchedule>,
) -> ApiResult<Json<AccountTask>> {
    Ok(Json(state.store.schedule_task(&actor, id, s).await?))
}

/// Which month (and, for a drill-down, which KPI).
#[derive(Debug, Deserialize, IntoParams)]
pub struct KpiParams {
    /// `YYYY-MM` in the business time zone (default: the running month); not a future month.
    pub month: Option<String>,
    /// Drill-down only: `customers` (default), `average_customer_value`, `prospect_conversion`,
    /// `valuable_customer_churn`, `data_accuracy`, `cadence_adherence`, `review_coverage`,
    /// `satisfaction` or `on_time_rate`.
    pub kpi: Option<String>,
}

/// The month asked for, checked (a query parameter: 400 when bad).
fn kpi_month(state: &AppState, month: Option<&str>) -> ApiResult<String> {
    let today = state.store.now().with_timezone(&state.store.config.business_tz).date_naive();
    let Some(m) = month else { return Ok(today.format("%Y-%m").to_string()) };
    let first = patron_store::accounts::kpis::parse_month(m).map_err(|_| ApiError::bad_request("month", "a month is YYYY-MM"))?;
    if first > today {
        return Err(ApiError::bad_request("month", "the month has not begun"));
    }
    Ok(first.format("%Y-%m").to_string())
}

/// The customers behind one account manager's KPI.
#[derive(Serialize, ToSchema)]
pub struct KpiCustomers {
    /// `YYYY-MM`.
    pub month: String,
    /// The account manager.
    pub user_id: i64,
    /// The KPI whose population is listed.
    pub kpi: String,
    /// The customers (the KPI's denominator), each with the facts behind the numerator.
    pub rows: Vec<KpiCustomer>,
}

/// Account-manager KPIs of a month (DESIGN.md §4): per manager, the portfolio as it was at the
/// month's start — average customer value, prospect conversion, valuable-customer churn, data
/// accuracy, cadence adherence, review coverage, satisfaction and on-time delivery.
#[utoipa::path(get, path = "/api/v1/kpis/account-managers", tag = "accounts",
    params(("month" = Option<String>, Query, description = "YYYY-MM (default: this month)")),
    responses((status = 200, body = AmKpiReport), (status = 400, body = crate::error::ErrorBody)))]
pub async fn kpis(State(state): State<AppState>, Auth(actor): Auth, Query(p): Query<KpiParams>) -> ApiResult<Json<AmKpiReport>> {
    let month = kpi_month(&state, p.month.as_deref())?;
    Ok(Json(state.store.account_manager_kpis(&actor, &month).await?))
}

/// The customers behind one manager's KPI of a month (the KPI's population, with the facts).
#[utoipa::path(get, path = "/api/v1/kpis/account-managers/{user_id}/customers", tag = "accounts",
    params(("user_id" = i64, Path, description = "the account manager"), KpiParams),
    responses((status = 200, body = KpiCustomers), (status = 400, body = crate::error::ErrorBody)))]
pub async fn kpi_customers(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(user_id): Path<i64>,
    Query(p): Query<KpiParams>,
) -> ApiResult<Json<KpiCustomers>> {
    let month = kpi_month(&state, p.month.as_deref())?;
    let kpi = p.kpi.unwrap_or_else(|| "customers".into());
    if !patron_store::accounts::kpis::KPIS.contains(&kpi.as_str()) {
        return Err(ApiError::bad_request("kpi", format!("kpi must be one of {}", patron_store::accounts::kpis::KPIS.join(", "))));
    }
    let rows = state.store.account_manager_kpi_customers(&actor, user_id, &month, Some(&kpi)).await?;
    Ok(Json(KpiCustomers { month, user_id, kpi, rows }))
}
