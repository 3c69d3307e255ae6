//! Access (issue 21): the permission every route declares ([`ROUTES`], enforced by the `Auth`
//! extractor before a handler runs and written into the OpenAPI document as `x-permission`),
//! and the administration of units, roles and users: `/api/v1/units`, `/api/v1/roles`,
//! `/api/v1/users`, `/api/v1/permissions`.

use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::routing::{get, patch, post, put};
use axum::Router;
use patron_store::access::roles::{RoleInfo, RoleInput};
use patron_store::access::sso::{SsoSettingsInput, SsoSettingsView};
use patron_store::access::two_factor::TwoFactorPolicy;
use patron_store::access::units::{NewUnit, Unit, UnitPatch};
use patron_store::access::Permission;
use patron_store::users::{NewUser, UserInfo, UserPatch};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Auth;
use crate::error::{ApiResult, Json, Path};
use crate::AppState;

use Permission as P;

/// What each route of the API needs: `(method, path as routed, permission)`; `None`: any
/// authenticated caller (the handler may narrow further: a caller's own notifications, a
/// ticket assigned to them). Per-customer routes also call `check_customer_access`, and
/// customer-reading queries compose the scope predicate (patron_store::access). A test
/// requires an entry for every operation of the OpenAPI document.
pub const ROUTES: &[(&str, &str, Option<Permission>)] = &[
    ("GET", "/api/v1/analytics/overview", Some(P::AnalyticsRead)),
    ("POST", "/api/v1/analytics/runs", Some(P::AnalyticsRun)),
    ("GET", "/api/v1/analytics/runs/latest", Some(P::AnalyticsRead)),
    ("GET", "/api/v1/analytics/runs", Some(P::AnalyticsRead)),
    ("GET", "/api/v1/analytics/migration", Some(P::AnalyticsRead)),
    ("GET", "/api/v1/analytics/cohorts", Some(P::AnalyticsRead)),
    ("GET", "/api/v1/analytics/trends", Some(P::AnalyticsRead)),
    ("GET", "/api/v1/analytics/history/settings", Some(P::AnalyticsRead)),
    ("PUT", "/api/v1/analytics/history/settings", Some(P::SettingsAdmin)),
    ("GET", "/api/v1/analytics/cost-to-serve", Some(P::AnalyticsRead)),
    ("GET", "/api/v1/analytics/cost-to-serve/settings", Some(P::AnalyticsRead)),
    ("PUT", "/api/v1/analytics/cost-to-serve/settings", Some(P::SettingsAdmin)),
    ("POST", "/api/v1/analytics/validations", Some(P::AnalyticsRun)),
    ("GET", "/api/v1/analytics/validations/latest", Some(P::AnalyticsRead)),
    ("GET", "/api/v1/analytics/abcd/settings", Some(P::AnalyticsRead)),
    ("PUT", "/api/v1/analytics/abcd/settings", Some(P::SettingsAdmin)),
    ("GET", "/api/v1/audit", Some(P::AuditRead)),
    ("GET", "/api/v1/audit/export", Some(P::AuditRead)),
    ("GET", "/api/v1/calendar", None),
    ("PUT", "/api/v1/calendar", Some(P::SettingsAdmin)),
    ("GET", "/api/v1/customers", Some(P::CustomersRead)),
    ("POST", "/api/v1/customers", Some(P::CustomersWrite)),
    ("DELETE", "/api/v1/customers/{id}", Some(P::CustomersDelete)),
    ("GET", "/api/v1/customers/{id}", Some(P::CustomersRead)),
    ("PATCH", "/api/v1/customers/{id}", Some(P::CustomersWrite)),
    ("GET", "/api/v1/customers/{id}/changes", Some(P::CustomersRead)),
    ("GET", "/api/v1/customers/{id}/churn-reason", Some(P::CustomersRead)),
    ("PUT", "/api/v1/customers/{id}/churn-reason", Some(P::CustomersWrite)),
    ("GET", "/api/v1/customers/{id}/contacts", Some(P::CustomersRead)),
    ("POST", "/api/v1/customers/{id}/contacts", Some(P::CustomersWrite)),
    ("GET", "/api/v1/customers/{id}/duplicates", Some(P::CustomersMerge)),
    ("POST", "/api/v1/customers/{id}/erase", Some(P::PersonalDataErase)),
    ("GET", "/api/v1/customers/{id}/interactions", Some(P::CustomersRead)),
    ("POST", "/api/v1/customers/{id}/merge", Some(P::CustomersMerge)),
    ("POST", "/api/v1/customers/{id}/notes", Some(P::CustomersWrite)),
    ("GET", "/api/v1/customers/{id}/orders", Some(P::CustomersRead)),
    ("GET", "/api/v1/customers/{id}/personal-data", Some(P::PersonalDataRead)),
    ("GET", "/api/v1/customers/{id}/plans", Some(P::CustomersRead)),
    ("POST", "/api/v1/customers/{id}/plans", Some(P::CustomersWrite)),
    ("GET", "/api/v1/customers/{id}/scores", Some(P::AnalyticsRead)),
    ("GET", "/api/v1/customers/{id}/survey-answers", Some(P::CustomersRead)),
    ("GET", "/api/v1/customers/{id}/timeline", Some(P::CustomersRead)),
    ("GET", "/api/v1/events", Some(P::EventsRead)),
    ("POST", "/api/v1/imports", Some(P::ImportsRun)),
    ("POST", "/api/v1/interactions", Some(P::CustomersWrite)),
    ("GET", "/api/v1/notifications", None),
    ("POST", "/api/v1/notifications/{id}/read", None),
    ("POST", "/api/v1/orders", Some(P::CustomersWrite)),
    ("GET", "/api/v1/orders/{id}", Some(P::CustomersRead)),
    ("GET", "/api/v1/orders/{id}/fulfilment", Some(P::CustomersRead)),
    ("POST", "/api/v1/orders/{id}/fulfilment", Some(P::CustomersWrite)),
    ("GET", "/api/v1/fulfilment/on-time", Some(P::AnalyticsRead)),
    ("GET", "/api/v1/fulfilment/settings", None),
    ("PUT", "/api/v1/fulfilment/settings", Some(P::SettingsAdmin)),
    ("GET", "/api/v1/permissions", None),
    ("GET", "/api/v1/masking", Some(P::SettingsAdmin)),
    ("PUT", "/api/v1/masking", Some(P::SettingsAdmin)),
    ("GET", "/api/v1/roles", Some(P::UsersAdmin)),
    ("POST", "/api/v1/roles", Some(P::UsersAdmin)),
    ("PUT", "/api/v1/roles/{name}", Some(P::UsersAdmin)),
    ("GET", "/api/v1/segments", Some(P::SegmentsRead)),
    ("POST", "/api/v1/segments", Some(P::SegmentsWrite)),
    ("GET", "/api/v1/segments/fields", Some(P::SegmentsRead)),
    ("POST", "/api/v1/segments/preview", Some(P::SegmentsRead)),
    ("DELETE", "/api/v1/segments/{key}", Some(P::SegmentsWrite)),
    ("GET", "/api/v1/segments/{key}", Some(P::SegmentsRead)),
    ("PUT", "/api/v1/segments/{key}", Some(P::SegmentsWrite)),
    ("GET", "/api/v1/segments/{key}/export", Some(P::CustomersExport)),
    ("GET", "/api/v1/segments/{key}/members", Some(P::SegmentsRead)),
    ("GET", "/api/v1/segments/{key}/sizes", Some(P::SegmentsRead)),
    ("GET", "/api/v1/service-policies", None),
    ("GET", "/api/v1/service-policies/{tier}", None),
    ("PUT", "/api/v1/service-policies/{tier}", Some(P::SettingsAdmin)),
    ("GET", "/api/v1/service/churn-reasons", Some(P::ServiceReports)),
    ("GET", "/api/v1/service/complaint-rate", Some(P::ServiceReports)),
    ("GET", "/api/v1/service/kpis", Some(P::ServiceReports)),
    ("GET", "/api/v1/service/pareto", Some(P::ServiceReports)),
    ("GET", "/api/v1/service/settings", None),
    ("PUT", "/api/v1/service/settings", Some(P::SettingsAdmin)),
    ("GET", "/api/v1/surveys", None),
    ("POST", "/api/v1/surveys", Some(P::SurveysManage)),
    ("GET", "/api/v1/surveys/{id}", None),
    ("PATCH", "/api/v1/surveys/{id}", Some(P::SurveysManage)),
    ("POST", "/api/v1/surveys/{id}/invitations", Some(P::CustomersWrite)),
    ("GET", "/api/v1/surveys/{id}/results", Some(P::SurveysManage)),
    ("GET", "/api/v1/tickets", Some(P::TicketsRead)),
    ("POST", "/api/v1/tickets", Some(P::TicketsWrite)),
    ("GET", "/api/v1/tickets/{id}", Some(P::TicketsRead)),
    ("POST", "/api/v1/tickets/{id}/assignment", Some(P::TicketsWrite)),
    ("POST", "/api/v1/tickets/{id}/comments", Some(P::TicketsWrite)),
    ("POST", "/api/v1/tickets/{id}/compensations", Some(P::TicketsWrite)),
    ("POST", "/api/v1/tickets/{id}/compensations/{cid}/decision", Some(P::CompensationApprove)),
    ("POST", "/api/v1/tickets/{id}/transitions", Some(P::TicketsWrite)),
    ("GET", "/api/v1/units", None),
    ("POST", "/api/v1/units", Some(P::UsersAdmin)),
    ("PATCH", "/api/v1/units/{id}", Some(P::UsersAdmin)),
    ("DELETE", "/api/v1/units/{id}", Some(P::UsersAdmin)),
    ("GET", "/api/v1/users", Some(P::UsersAdmin)),
    ("POST", "/api/v1/users", Some(P::UsersAdmin)),
    ("PATCH", "/api/v1/users/{id}", Some(P::UsersAdmin)),
    ("POST", "/api/v1/users/{id}/password", Some(P::UsersAdmin)),
    ("DELETE", "/api/v1/users/{id}/two-factor", Some(P::UsersAdmin)),
    ("GET", "/api/v1/two-factor/policy", Some(P::UsersAdmin)),
    ("PUT", "/api/v1/two-factor/policy", Some(P::UsersAdmin)),
    ("GET", "/api/v1/sso/settings", Some(P::SettingsAdmin)),
    ("PUT", "/api/v1/sso/settings", Some(P::SettingsAdmin)),
    ("GET", "/api/v1/loyalty/program", None),
    ("PUT", "/api/v1/loyalty/program", Some(P::LoyaltyAdmin)),
    ("POST", "/api/v1/loyalty/members", Some(P::LoyaltyRedeem)),
    ("GET", "/api/v1/loyalty/members/{customer_id}", Some(P::CustomersRead)),
    ("GET", "/api/v1/loyalty/members/{customer_id}/ledger", Some(P::CustomersRead)),
    ("POST", "/api/v1/loyalty/members/{customer_id}/redemptions", Some(P::LoyaltyRedeem)),
    ("GET", "/api/v1/loyalty/members/{customer_id}/redemptions", Some(P::CustomersRead)),
    ("PATCH", "/api/v1/loyalty/members/{customer_id}/redemptions/{id}", Some(P::LoyaltyRedeem)),
    ("POST", "/api/v1/loyalty/members/{customer_id}/adjustments", Some(P::LoyaltyAdjust)),
    ("GET", "/api/v1/loyalty/rewards", None),
    ("POST", "/api/v1/loyalty/rewards", Some(P::LoyaltyAdmin)),
    ("PUT", "/api/v1/loyalty/rewards/{id}", Some(P::LoyaltyAdmin)),
    ("GET", "/api/v1/loyalty/liability", Some(P::LoyaltyReports)),
    ("GET", "/api/v1/loyalty/liability/export", Some(P::LoyaltyReports)),
    ("GET", "/api/v1/loyalty/referrals", Some(P::LoyaltyReports)),
    ("GET", "/api/v1/engagement/settings", Some(P::SettingsAdmin)),
    ("PUT", "/api/v1/engagement/settings", Some(P::SettingsAdmin)),
    ("GET", "/api/v1/templates", None),
    ("POST", "/api/v1/templates", Some(P::TemplatesWrite)),
    ("POST", "/api/v1/templates/lint", None),
    ("GET", "/api/v1/templates/{id}", None),
    ("POST", "/api/v1/templates/{id}/preview", Some(P::CustomersRead)),
    ("GET", "/api/v1/customers/{id}/team", Some(P::CustomersRead)),
    ("PUT", "/api/v1/customers/{id}/team", Some(P::CustomersWrite)),
    ("GET", "/api/v1/customers/{id}/reassignments", Some(P::CustomersRead)),
    ("GET", "/api/v1/customers/{id}/account", Some(P::CustomersRead)),
    ("GET", "/api/v1/customers/{id}/relationship", Some(P::CustomersRead)),
    ("PUT", "/api/v1/customers/{id}/relationship", Some(P::CustomersWrite)),
    ("GET", "/api/v1/customers/{id}/people", Some(P::CustomersRead)),
    ("PUT", "/api/v1/customers/{id}/people/ties", Some(P::CustomersWrite)),
    ("GET", "/api/v1/customers/{id}/reviews", Some(P::CustomersRead)),
    ("POST", "/api/v1/customers/{id}/reviews", Some(P::CustomersWrite)),
    ("POST", "/api/v1/portfolios/reassign", Some(P::AllCustomers)),
    ("GET", "/api/v1/portfolios/mine", Some(P::CustomersRead)),
    ("GET", "/api/v1/cadence/overdue", Some(P::CustomersRead)),
    ("GET", "/api/v1/reviews/due", Some(P::CustomersRead)),
    ("GET", "/api/v1/kpis/account-managers", Some(P::AnalyticsRead)),
    ("GET", "/api/v1/kpis/account-managers/{user_id}/customers", Some(P::AnalyticsRead)),
    ("GET", "/api/v1/accounts/settings", Some(P::CustomersRead)),
    ("PUT", "/api/v1/accounts/settings", Some(P::SettingsAdmin)),
    ("POST", "/api/v1/tasks/{id}/complete", None),
    ("POST", "/api/v1/tasks/{id}/schedule", None),
    ("GET", "/api/v1/tasks", None),
    ("POST", "/api/v1/tasks", None),
    ("PATCH", "/api/v1/tasks/{id}", None),
    ("GET", "/api/v1/journeys", Some(P::JourneysManage)),
    ("POST", "/api/v1/journeys", Some(P::JourneysManage)),
    ("GET", "/api/v1/journeys/{id}", Some(P::JourneysManage)),
    ("POST", "/api/v1/journeys/{id}/enable", Some(P::JourneysManage)),
    ("POST", "/api/v1/journeys/{id}/disable", Some(P::JourneysManage)),
    ("GET", "/api/v1/journeys/{id}/report", Some(P::JourneysManage)),
    ("GET", "/api/v1/customers/{id}/channels", Some(P::CustomersRead)),
    ("GET", "/api/v1/customers/{id}/next-action", Some(P::CustomersRead)),
    ("GET", "/api/v1/customers/{id}/journeys", Some(P::CustomersRead)),
    ("GET", "/api/v1/campaigns", Some(P::CampaignsRead)),
    ("POST", "/api/v1/campaigns", Some(P::CampaignsWrite)),
    ("GET", "/api/v1/campaigns/global-control/report", Some(P::CampaignsRead)),
    ("GET", "/api/v1/campaigns/{id}", Some(P::CampaignsRead)),
    ("POST", "/api/v1/campaigns/{id}/launch", Some(P::CampaignsLaunch)),
    ("GET", "/api/v1/campaigns/{id}/report", Some(P::CampaignsRead)),
    ("GET", "/api/v1/customer-events", Some(P::CustomersRead)),
    ("POST", "/api/v1/customer-events", Some(P::CampaignsWrite)),
    ("GET", "/api/v1/customer-events/{id}", Some(P::CustomersRead)),
    ("PATCH", "/api/v1/customer-events/{id}", Some(P::CampaignsWrite)),
    ("POST", "/api/v1/customer-events/{id}/invitations", Some(P::CampaignsLaunch)),
    ("GET", "/api/v1/customer-events/{id}/registrations", Some(P::CustomersRead)),
    ("POST", "/api/v1/customer-events/{id}/registrations", Some(P::CustomersWrite)),
    ("DELETE", "/api/v1/customer-events/{id}/registrations/{customer_id}", Some(P::CustomersWrite)),
    ("POST", "/api/v1/customer-events/{id}/registrations/{customer_id}/check-in", Some(P::CustomersWrite)),
    ("POST", "/api/v1/customer-events/{id}/survey", Some(P::SurveysManage)),
    ("GET", "/api/v1/customer-events/{id}/report", Some(P::CampaignsRead)),
    ("GET", "/api/v1/web/sites", Some(P::AnalyticsRead)),
    ("POST", "/api/v1/web/sites", Some(P::SettingsAdmin)),
    ("POST", "/api/v1/web/identity-tokens", Some(P::CustomersWrite)),
    ("GET", "/api/v1/web/overview", Some(P::AnalyticsRead)),
    ("GET", "/api/v1/web/settings", Some(P::AnalyticsRead)),
    ("PUT", "/api/v1/web/settings", Some(P::SettingsAdmin)),
    ("GET", "/api/v1/customers/{id}/web-interests", Some(P::CustomersRead)),
    ("GET", "/api/v1/webhooks", Some(P::WebhooksManage)),
    ("POST", "/api/v1/webhooks", Some(P::WebhooksManage)),
    ("GET", "/api/v1/webhooks/{id}", Some(P::WebhooksManage)),
    ("PATCH", "/api/v1/webhooks/{id}", Some(P::WebhooksManage)),
    ("DELETE", "/api/v1/webhooks/{id}", Some(P::WebhooksManage)),
    ("GET", "/api/v1/webhooks/{id}/deliveries", Some(P::WebhooksManage)),
    ("POST", "/api/v1/webhooks/{id}/deliveries/{delivery_id}/replay", Some(P::WebhooksManage)),
];

/// Routes that read across every customer and are not narrowed to a scope yet (the event
/// stream, the audit log, service and survey reports): besides their permission they need
/// `all_customers`, so that a caller limited to some units cannot read the others through them.
pub const WHOLE_BASE: &[(&str, &str)] = &[
    ("GET", "/api/v1/events"),
    ("GET", "/api/v1/audit"),
    ("GET", "/api/v1/audit/export"),
    ("GET", "/api/v1/service/churn-reasons"),
    ("GET", "/api/v1/service/complaint-rate"),
    ("GET", "/api/v1/service/kpis"),
    ("GET", "/api/v1/service/pareto"),
    ("GET", "/api/v1/surveys/{id}/results"),
    ("GET", "/api/v1/loyalty/liability"),
    ("GET", "/api/v1/loyalty/liability/export"),
    ("GET", "/api/v1/loyalty/referrals"),
    ("GET", "/api/v1/analytics/cost-to-serve"),
    ("GET", "/api/v1/segments/{key}/sizes"),
    ("GET", "/api/v1/webhooks/{id}/deliveries"),
    ("GET", "/api/v1/journeys/{id}/report"),
    ("GET", "/api/v1/campaigns/{id}/report"),
    ("GET", "/api/v1/campaigns/global-control/report"),
    ("GET", "/api/v1/customer-events/{id}/report"),
];

/// Whether route `method path` reads across every customer ([`WHOLE_BASE`]).
pub fn whole_base(method: &Method, path: &str) -> bool {
    WHOLE_BASE.iter().any(|(m, p)| *m == method.as_str() && *p == path)
}

/// The permission route `method path` declares: `None` when the route is not in [`ROUTES`],
/// `Some(None)` when any authenticated caller may call it.
pub fn declared(method: &Method, path: &str) -> Option<Option<Permission>> {
    ROUTES.iter().find(|(m, p, _)| *m == method.as_str() && *p == path).map(|r| r.2)
}

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/permissions", get(permissions))
        .route("/units", get(list_units).post(create_unit))
        .route("/units/{id}", patch(update_unit).delete(delete_unit))
        .route("/roles", get(list_roles).post(create_role))
        .route("/roles/{name}", put(update_role))
        .route("/users", get(list_users).post(create_user))
        .route("/users/{id}", patch(update_user))
        .route("/users/{id}/password", post(reset_password))
        .route("/users/{id}/two-factor", axum::routing::delete(reset_two_factor))
        .route("/two-factor/policy", get(two_factor_policy).put(put_two_factor_policy))
        .route("/sso/settings", get(sso_settings).put(put_sso_settings))
}

/// One permission of the catalogue.
#[derive(Serialize, ToSchema)]
pub struct PermissionInfo {
    /// Name (`customers.read`).
    pub name: &'static str,
    /// What it allows.
    pub description: &'static str,
}

/// The permission catalogue (docs/access.md).
#[utoipa::path(get, path = "/api/v1/permissions", tag = "access", responses((status = 200, body = Vec<PermissionInfo>)))]
pub async fn permissions(_auth: Auth) -> Json<Vec<PermissionInfo>> {
    Json(Permission::ALL.iter().map(|p| PermissionInfo { name: p.as_str(), description: p.description() }).collect())
}

/// Every organisation unit, by code.
#[utoipa::path(get, path = "/api/v1/units", tag = "access", responses((status = 200, body = Vec<Unit>)))]
pub async fn list_units(State(state): State<AppState>, _auth: Auth) -> ApiResult<Json<Vec<Unit>>> {
    Ok(Json(state.store.units().await?))
}

/// Creates a unit (users.admin).
#[utoipa::path(post, path = "/api/v1/units", tag = "access", request_body = NewUnit,
    responses((status = 201, body = Unit), (status = 403, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn create_unit(State(state): State<AppState>, Auth(actor): Auth, Json(u): Json<NewUnit>) -> ApiResult<(StatusCode, Json<Unit>)> {
    Ok((StatusCode::CREATED, Json(state.store.create_unit(&actor, u).await?)))
}

/// Changes a unit (users.admin): name, code, kind, parent (not under its own subtree).
#[utoipa::path(patch, path = "/api/v1/units/{id}", tag = "access", params(("id" = i64, Path, description = "unit id")), request_body = UnitPatch,
    responses((status = 200, body = Unit), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn update_unit(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<i64>,
    Json(p): Json<UnitPatch>,
) -> ApiResult<Json<Unit>> {
    Ok(Json(state.store.update_unit(&actor, id, p).await?))
}

/// Deletes an empty unit (no child unit, user or customer; else 409).
#[utoipa::path(delete, path = "/api/v1/units/{id}", tag = "access", params(("id" = i64, Path, description = "unit id")),
    responses((status = 204), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
pub async fn delete_unit(State(state): State<AppState>, Auth(actor): Auth, Path(id): Path<i64>) -> ApiResult<StatusCode> {
    state.store.delete_unit(&actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The built-in roles and the custom ones, with their permissions.
#[utoipa::path(get, path = "/api/v1/roles", tag = "access", responses((status = 200, body = Vec<RoleInfo>), (status = 403, body = crate::error::ErrorBody)))]
pub async fn list_roles(State(state): State<AppState>, _auth: Auth) -> ApiResult<Json<Vec<RoleInfo>>> {
    Ok(Json(state.store.roles().await?))
}

/// Creates a custom role from the catalogue's permissions.
#[utoipa::path(post, path = "/api/v1/roles", tag = "access", request_body = RoleInput,
    responses((status = 201, body = RoleInfo), (status = 403, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn create_role(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Json(r): Json<RoleInput>,
) -> ApiResult<(StatusCode, Json<RoleInfo>)> {
    Ok((StatusCode::CREATED, Json(state.store.create_role(&actor, &r).await?)))
}

/// A custom role's new permissions.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RolePermissions {
    /// Permission names from the catalogue.
    pub permissions: Vec<String>,
}

/// Replaces a custom role's permissions (built-in roles: 409); its users have them at their
/// next request.
#[utoipa::path(put, path = "/api/v1/roles/{name}", tag = "access", params(("name" = String, Path, description = "role name")), request_body = RolePermissions,
    responses((status = 200, body = RoleInfo), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn update_role(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(name): Path<String>,
    Json(r): Json<RolePermissions>,
) -> ApiResult<Json<RoleInfo>> {
    Ok(Json(state.store.update_role(&actor, &name, &r.permissions).await?))
}

/// Every user with role and units.
#[utoipa::path(get, path = "/api/v1/users", tag = "access", responses((status = 200, body = Vec<UserInfo>), (status = 403, body = crate::error::ErrorBody)))]
pub async fn list_users(State(state): State<AppState>, _auth: Auth) -> ApiResult<Json<Vec<UserInfo>>> {
    Ok(Json(state.store.user_infos().await?))
}

/// Creates a user (audited).
#[utoipa::path(post, path = "/api/v1/users", tag = "access", request_body = NewUser,
    responses((status = 201, body = UserInfo), (status = 403, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn create_user(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Json(u): Json<NewUser>,
) -> ApiResult<(StatusCode, Json<UserInfo>)> {
    Ok((StatusCode::CREATED, Json(state.store.create_user_as(&actor, &u).await?)))
}

/// Changes a user's role, units, name or activity; `active: false` ends its sessions and
/// revokes its tokens at once (audited).
#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "access", params(("id" = i64, Path, description = "user id")), request_body = UserPatch,
    responses((status = 200, body = UserInfo), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn update_user(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<i64>,
    Json(p): Json<UserPatch>,
) -> ApiResult<Json<UserInfo>> {
    Ok(Json(state.store.update_user(&actor, id, &p).await?))
}

/// A new password.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordReset {
    /// At least 10 characters.
    pub password: String,
}

/// Sets a user's password and ends its sessions (audited).
#[utoipa::path(post, path = "/api/v1/users/{id}/password", tag = "access", params(("id" = i64, Path, description = "user id")), request_body = PasswordReset,
    responses((status = 204), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn reset_password(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<i64>,
    Json(p): Json<PasswordReset>,
) -> ApiResult<StatusCode> {
    state.store.reset_password(&actor, id, &p.password).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Turns a user's two-factor login off (a lost phone): the user logs in with the password
/// alone, or enrols again at the next login when the role requires two factors (audited).
#[utoipa::path(delete, path = "/api/v1/users/{id}/two-factor", tag = "access", params(("id" = i64, Path, description = "user id")),
    responses((status = 204), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn reset_two_factor(State(state): State<AppState>, Auth(actor): Auth, Path(id): Path<i64>) -> ApiResult<StatusCode> {
    state.store.disable_two_factor(&actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Which roles must log in with two factors (TOTP).
#[utoipa::path(get, path = "/api/v1/two-factor/policy", tag = "access",
    responses((status = 200, body = TwoFactorPolicy), (status = 403, body = crate::error::ErrorBody)))]
pub async fn two_factor_policy(State(state): State<AppState>, _auth: Auth) -> ApiResult<Json<TwoFactorPolicy>> {
    Ok(Json(state.store.two_factor_policy().await?))
}

/// Replaces the two-factor policy: users of the roles named must log in with a second factor;
/// those without one enrol at their next login before their session starts (audited).
#[utoipa::path(put, path = "/api/v1/two-factor/policy", tag = "access", request_body = TwoFactorPolicy,
    responses((status = 200, body = TwoFactorPolicy), (status = 403, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn put_two_factor_policy(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Json(p): Json<TwoFactorPolicy>,
) -> ApiResult<Json<TwoFactorPolicy>> {
    Ok(Json(state.store.set_two_factor_policy(&actor, &p).await?))
}

/// The OpenID Connect provider for single sign-on (the client secret only as set or not).
#[utoipa::path(get, path = "/api/v1/sso/settings", tag = "access",
    responses((status = 200, body = SsoSettingsView), (status = 403, body = crate::error::ErrorBody)))]
pub async fn sso_settings(State(state): State<AppState>, _auth: Auth) -> ApiResult<Json<SsoSettingsView>> {
    Ok(Json(state.store.sso_settings_view().await?))
}

/// Replaces the single sign-on settings: issuer, client id and secret (left out: kept), the role
/// and unit of users created at their first login (audited, without the secret).
#[utoipa::path(put, path = "/api/v1/sso/settings", tag = "access", request_body = SsoSettingsInput,
    responses((status = 200, body = SsoSettingsView), (status = 403, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn put_sso_settings(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Json(s): Json<SsoSettingsInput>,
) -> ApiResult<Json<SsoSettingsView>> {
    Ok(Json(state.store.set_sso_settings(&actor, &s).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every operation of the document declares its permission (a new route without an entry
    /// in [`ROUTES`] fails here), and every entry is a real operation.
    #[test]
    fn every_operation_declares_a_permission() {
        let doc = crate::api::contract::document();
        let mut missing = Vec::new();
        let mut ops = Vec::new();
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            if path.starts_with("/api/v1/public/") || path == "/healthz" || path == "/api/v1/openapi.json" {
                continue;
            }
            // Public operations (`security: [{}]`, e.g. the signed inbound SMS hook) take no token.
            let public = |op: &serde_json::Value| {
                op["security"].as_array().is_some_and(|s| s.len() == 1 && s[0].as_object().is_some_and(|o| o.is_empty()))
            };
            for (method, op) in item.as_object().into_iter().flatten().map(|(m, op)| (m.to_uppercase(), op)) {
                if public(op) {
                    continue;
                }
                let m: Method = method.parse().unwrap_or(Method::GET);
                if declared(&m, path).is_none() {
                    missing.push(format!("{method} {path}"));
                }
                ops.push((method, path.clone()));
            }
        }
        assert!(missing.is_empty(), "routes without a permission in api::access::ROUTES: {missing:?}");
        for (m, p, _) in ROUTES {
            assert!(ops.iter().any(|(om, op)| om == m && op == p), "ROUTES names {m} {p}, which the document does not have");
        }
    }
}
