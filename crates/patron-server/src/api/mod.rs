//! The REST API under `/api/v1`: one module per domain concept, merged here, and the OpenAPI
//! document generated from the handlers' annotations.

pub mod access;
pub mod accounts;
pub mod analytics;
pub mod audit;
pub mod campaigns;
pub mod contract;
pub mod customer_events;
pub mod customers;
pub mod events;
pub mod fulfilment;
pub mod imports;
pub mod inbound;
pub mod interactions;
pub mod journeys;
pub mod loyalty;
pub mod masking;
pub mod next_action;
pub mod notifications;
pub mod orders;
pub mod plans;
pub mod public;
pub mod segments;
pub mod service;
pub mod surveys;
pub mod tasks;
pub mod templates;
pub mod tickets;
pub mod validations;
pub mod web;
pub mod webhooks;

use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::error::{ApiError, ApiResult};
use crate::AppState;

/// The API routes, plus `/healthz`.
pub fn router(state: &AppState) -> Router<AppState> {
    let max_upload_bytes = state.config.max_upload_bytes;
    // Reached by customers through a link, without a login: rate-limited per address.
    let public = public::router()
        .merge(plans::public_router())
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), crate::ratelimit::limit_links));
    let v1 = Router::new()
        .route("/openapi.json", get(openapi_json))
        .merge(customers::router())
        .merge(analytics::router())
        .merge(validations::router())
        .merge(segments::router())
        .merge(orders::router())
        .merge(fulfilment::router())
        .merge(plans::router())
        .merge(interactions::router())
        .merge(imports::router(max_upload_bytes))
        .merge(tickets::router())
        .merge(service::router())
        .merge(events::router())
        .merge(audit::router())
        .merge(notifications::router())
        .merge(surveys::router())
        .merge(webhooks::router())
        .merge(loyalty::router())
        .merge(templates::router())
        .merge(tasks::router())
        .merge(accounts::router())
        .merge(journeys::router())
        .merge(next_action::router())
        .merge(campaigns::router())
        .merge(customer_events::router())
        .merge(access::router())
        .merge(masking::router())
        .merge(web::router())
        .merge(public)
        .merge(inbound::router().route_layer(axum::middleware::from_fn_with_state(state.clone(), crate::ratelimit::limit_links)))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed);
    Router::new().route("/healthz", get(healthz)).nest("/api/v1", v1)
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint (see /api/v1/openapi.json)")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this endpoint does not accept that method")
}

/// Health of the server and its database.
#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: &'static str,
    /// `sqlite` or `postgres`.
    pub database: patron_store::Engine,
    /// patron's version.
    pub version: &'static str,
}

/// Liveness and database reachability (no authentication). 503 when the database does not answer.
#[utoipa::path(get, path = "/healthz", tag = "platform", security(()), responses((status = 200, body = Health), (status = 503, body = crate::error::ErrorBody)))]
pub async fn healthz(axum::extract::State(state): axum::extract::State<AppState>) -> ApiResult<Json<Health>> {
    if let Err(e) = state.store.db.ping().await {
        tracing::warn!(error = %e, "health check: the database does not answer");
        return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the database does not answer"));
    }
    Ok(Json(Health { status: "ok", database: state.store.db.engine(), version: env!("CARGO_PKG_VERSION") }))
}

/// The OpenAPI document (`contract::document`: utoipa's, completed).
async fn openapi_json() -> Json<&'static serde_json::Value> {
    Json(contract::document())
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()));
    }
}

/// The OpenAPI 3.1 document of `/api/v1`.
#[derive(OpenApi)]
#[openapi(
    info(title = "patron API", description = "patron, the loyalty-first CRM. Every endpoint except /healthz and /api/v1/openapi.json needs `Authorization: Bearer <token>` (create one with `patron token create`). Errors (every 4xx and 5xx) are `{\"error\":{\"code\",\"message\",\"field\"}}` as application/json. Requests are checked against this document: a value outside it is refused (422 in a JSON body, 400 in a query, path or form). A number with a zero fraction (151.0) is an integer. No string may contain NUL (U+0000). Money is in minor units (cents), times in UTC (RFC 3339)."),
    servers((url = "/")),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    paths(
        healthz,
        customers::list, customers::create, customers::get_one, customers::patch, customers::delete,
        customers::timeline, customers::changes, customers::orders, customers::interactions,
        customers::contacts, customers::add_contact, customers::add_note, customers::duplicates, customers::merge,
        customers::personal_data, customers::erase,
        orders::create, orders::get_one,
        fulfilment::chain, fulfilment::record, fulfilment::on_time, fulfilment::settings, fulfilment::put_settings,
        interactions::create,
        imports::create,
        analytics::overview, analytics::latest_run, analytics::create_run, analytics::customer_scores, analytics::cost_to_serve,
        analytics::cost_settings, analytics::put_cost_settings, analytics::list_runs, analytics::migration, analytics::cohorts,
        analytics::trends, analytics::history_settings, analytics::put_history_settings,
        validations::create, validations::latest, validations::abcd_settings, validations::put_abcd_settings,
        segments::list, segments::fields, segments::create, segments::get_one, segments::update, segments::delete,
        segments::preview, segments::members, segments::export, segments::sizes,
        tickets::list, tickets::create, tickets::get_one, tickets::transition, tickets::comment, tickets::assign,
        tickets::compensate, tickets::decide,
        service::policies, service::policy, service::put_policy, service::calendar, service::put_calendar,
        service::settings, service::put_settings, service::pareto, service::complaint_rate, service::kpis,
        events::list, notifications::list, notifications::mark_read, audit::list, audit::export,
        surveys::list, surveys::create, surveys::get_one, surveys::update, surveys::invite, surveys::results,
        surveys::customer_answers, surveys::churn_reason, surveys::set_churn_reason, surveys::churn_report,
        public::confirmation, public::answer_confirmation, public::survey, public::answer_survey,
        plans::create, plans::list, plans::scorecard,
        webhooks::list, webhooks::create, webhooks::get_one, webhooks::update, webhooks::delete, webhooks::deliveries, webhooks::replay,
        loyalty::program, loyalty::put_program, loyalty::enrol, loyalty::member, loyalty::ledger, loyalty::redeem, loyalty::adjust,
        loyalty::redemptions, loyalty::fulfil, loyalty::rewards, loyalty::create_reward, loyalty::update_reward, loyalty::liability,
        loyalty::liability_export, loyalty::referrals,
        inbound::sms,
        templates::list, templates::create, templates::lint, templates::get_one, templates::preview,
        templates::settings, templates::put_settings,
        tasks::list, tasks::create, tasks::update,
        journeys::list, journeys::create, journeys::get_one, journeys::enable, journeys::disable, journeys::report,
        journeys::channels, journeys::customer_entries,
        next_action::next_action,
        campaigns::list, campaigns::create, campaigns::get_one, campaigns::launch, campaigns::report, campaigns::global_control_report,
        access::permissions, access::list_units, access::create_unit, access::update_unit, access::delete_unit,
        access::list_roles, access::create_role, access::update_role,
        access::list_users, access::create_user, access::update_user, access::reset_password,
        access::reset_two_factor, access::two_factor_policy, access::put_two_factor_policy, access::sso_settings, access::put_sso_settings,
        masking::settings, masking::put_settings,
        accounts::team, accounts::put_team, accounts::reassignments, accounts::account, accounts::relationship,
        accounts::put_relationship, accounts::people, accounts::put_tie, accounts::reviews, accounts::create_review,
        accounts::reassign, accounts::mine, accounts::overdue, accounts::reviews_due, accounts::settings, accounts::put_settings,
        accounts::complete_task, accounts::schedule_task, accounts::kpis, accounts::kpi_customers,
        customer_events::list, customer_events::create, customer_events::get_one, customer_events::update, customer_events::invite,
        customer_events::registrations, customer_events::register, customer_events::cancel, customer_events::check_in,
        customer_events::send_survey, customer_events::report,
        web::sites, web::create_site, web::identity_token, web::overview, web::settings, web::put_settings, web::interests,
    ),
    components(schemas(crate::error::ErrorBody, crate::error::ErrorDetail)),
    tags(
        (name = "customers", description = "Customer 360: profiles, history, timeline"),
        (name = "orders", description = "Orders and their lines"),
        (name = "plans", description = "Joint account plans with shared KPIs and the customer-facing scorecard (docs/fulfilment.md)"),
        (name = "fulfilment", description = "The B2B fulfilment chain of orders: steps with promised and done times, lateness, the on-time delivery rate (docs/fulfilment.md)"),
        (name = "interactions", description = "Touchpoint events"),
        (name = "imports", description = "CSV / JSON-lines import"),
        (name = "analytics", description = "RFM, ABCD, lifecycle, churn, BG/NBD, Gamma-Gamma, CLV and loyalty: runs, dashboards, per-customer scores"),
        (name = "segments", description = "Saved and built-in rule-based segments, evaluated live (filter language: docs/segments.md)"),
        (name = "tickets", description = "The closed complaint loop: tickets with SLA clocks by value tier, root causes, customer confirmation, compensation"),
        (name = "service", description = "Service policies by tier, the business calendar, service settings and reports (complaint rate, Pareto, KPIs)"),
        (name = "surveys", description = "NPS, CSAT, listen and custom surveys: definitions, invitations, results; customers' answers; churn reasons"),
        (name = "loyalty", description = "The loyalty club: programme, members, the points ledger, redemptions, adjustments, rewards, liability, referrals"),
        (name = "engagement", description = "Message templates with the personalisation lint, campaigns with holdouts and lift, the outbox"),
        (name = "accounts", description = "Account management: account teams, portfolios and reassignment, contact cadence, relationship stage, people map, reviews and health (docs/accounts.md)"),
        (name = "customer_events", description = "Customer events (seminars, forums, club activities): invitations through the outbox, registration, check-in, the post-event survey and the report (docs/customer-events.md)"),
        (name = "tasks", description = "Tasks: title, customer, assignee, due day, done"),
        (name = "journeys", description = "Journeys: trigger, waits, branches, sends, tasks, tags, goal, holdout, re-entry; reports with lift"),
        (name = "events", description = "Domain events (`noun.verb`), in order"),
        (name = "audit", description = "The audit log (admins): filtered, paged and exported as CSV"),
        (name = "notifications", description = "The caller's in-app notifications"),
        (name = "public", description = "What customers reach through a link, without a login (rate-limited)"),
        (name = "webhooks", description = "Subscriptions to domain events (admins): signed deliveries, retried with backoff, a delivery log, replays"),
        (name = "web", description = "First-party, cookie-less web analytics: sites, identity stitching tokens, the dashboard, settings, customers' web interests (docs/web-analytics.md; the public side is POST /collect and /js/p.js)"),
        (name = "platform", description = "Health and metadata"),
        (name = "access", description = "Organisation units, roles and permissions, users (docs/access.md)"),
    )
)]
pub struct ApiDoc;
