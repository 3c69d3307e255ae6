//! Web analytics (issue 19 §8): sites, identity tokens for stitching, the dashboard, settings
//! and a customer's interests, under `/api/v1/web/…`. The public side (`/collect`, `/js/p.js`)
//! is `crate::collect`. Rules: `patron_store::web`; docs/web-analytics.md.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use chrono::NaiveDate;
use patron_store::web::{IdentityToken, NewSite, Site, WebInterest, WebOverview, WebSettings};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::auth::{check_customer_access, Auth};
use crate::error::{ApiError, ApiResult, Json, Path, Query};
use crate::AppState;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/web/sites", get(sites).post(create_site))
        .route("/web/identity-tokens", post(identity_token))
        .route("/web/overview", get(overview))
        .route("/web/settings", get(settings).put(put_settings))
        .route("/customers/{id}/web-interests", get(interests))
}

/// The sites allowed to send events, by id.
#[utoipa::path(get, path = "/api/v1/web/sites", tag = "web", responses((status = 200, body = Vec<Site>)))]
pub async fn sites(State(state): State<AppState>, _auth: Auth) -> ApiResult<Json<Vec<Site>>> {
    Ok(Json(state.store.web_sites().await?))
}

/// Adds a site: its origin is the only one whose browsers may send its events (CORS). The
/// snippet is `<script src="https://PATRON/js/p.js" data-site="ID" defer></script>`. 422 for an
/// origin that is not `http(s)://host[:port]`.
#[utoipa::path(post, path = "/api/v1/web/sites", tag = "web", request_body = NewSite,
    responses((status = 201, body = Site), (status = 422, body = crate::error::ErrorBody)))]
pub async fn create_site(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Json(body): Json<NewSite>,
) -> ApiResult<(StatusCode, Json<Site>)> {
    let site = state.store.create_web_site(&actor, &body).await?;
    state.collector.forget();
    Ok((StatusCode::CREATED, Json(site)))
}

/// Whom to make an identity token for.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IdentityTokenRequest {
    /// The customer who just logged in on the site.
    pub customer_id: i64,
}

/// A short-lived signed token naming the customer (10 minutes; audited) for the site to hand to
/// `patron.identify(token)` after the customer's login: that browser's page views of the last
/// 30 days and all later ones then belong to the customer. 404 for a customer outside the
/// caller's scope.
#[utoipa::path(post, path = "/api/v1/web/identity-tokens", tag = "web", request_body = IdentityTokenRequest,
    responses((status = 201, body = IdentityToken), (status = 404, body = crate::error::ErrorBody)))]
pub async fn identity_token(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Json(body): Json<IdentityTokenRequest>,
) -> ApiResult<(StatusCode, Json<IdentityToken>)> {
    check_customer_access(&state, &actor, body.customer_id).await?;
    Ok((StatusCode::CREATED, Json(state.store.issue_identity_token(&actor, body.customer_id).await?)))
}

/// The dashboard's range.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OverviewParams {
    /// First business day (default: 29 days before `to`).
    pub from: Option<NaiveDate>,
    /// Last business day, included (default: today).
    pub to: Option<NaiveDate>,
    /// One site (default: all).
    #[param(minimum = 1)]
    pub site_id: Option<i64>,
}

/// Visitors and page views per day, top pages, referrers, UTM campaigns (joined to patron's
/// campaign of that name) and clicked events over business days `from`–`to` (at most 367).
#[utoipa::path(get, path = "/api/v1/web/overview", tag = "web", params(OverviewParams),
    responses((status = 200, body = WebOverview), (status = 400, body = crate::error::ErrorBody)))]
pub async fn overview(State(state): State<AppState>, _auth: Auth, Query(p): Query<OverviewParams>) -> ApiResult<Json<WebOverview>> {
    let tz = state.store.config.business_tz;
    let to = p.to.unwrap_or_else(|| state.store.now().with_timezone(&tz).date_naive());
    let from = p.from.unwrap_or_else(|| to - chrono::Duration::days(29));
    if to < from {
        return Err(ApiError::bad_request("to", "to must not be before from"));
    }
    if (to - from).num_days() > 366 {
        return Err(ApiError::bad_request("from", "the range is at most 367 days"));
    }
    Ok(Json(state.store.web_overview(from, to, p.site_id).await?))
}

/// The web analytics settings: retention of raw events and of customers' page views, page
/// categories (URL patterns → category).
#[utoipa::path(get, path = "/api/v1/web/settings", tag = "web", responses((status = 200, body = WebSettings)))]
pub async fn settings(State(state): State<AppState>, _auth: Auth) -> ApiResult<Json<WebSettings>> {
    Ok(Json(state.store.web_settings().await?))
}

/// Replaces the web analytics settings (audited). 422 for a retention outside 1–3650 days or a
/// bad category rule.
#[utoipa::path(put, path = "/api/v1/web/settings", tag = "web", request_body = WebSettings,
    responses((status = 200, body = WebSettings), (status = 422, body = crate::error::ErrorBody)))]
pub async fn put_settings(State(state): State<AppState>, Auth(actor): Auth, Json(body): Json<WebSettings>) -> ApiResult<Json<WebSettings>> {
    state.store.set_web_settings(&actor, &body).await?;
    state.collector.forget();
    Ok(Json(body))
}

/// The customer's web interests: the categories of its page views (kept
/// `customer_retention_days`), most viewed first (empty until the customer is stitched to a
/// visitor). The segment field `web_interests` tests the same set.
#[utoipa::path(get, path = "/api/v1/customers/{id}/web-interests", tag = "web", params(("id" = i64, Path, description = "customer id")),
    responses((status = 200, body = Vec<WebInterest>), (status = 404, body = crate::error::ErrorBody)))]
pub async fn interests(State(state): State<AppState>, Auth(actor): Auth, Path(id): Path<i64>) -> ApiResult<Json<Vec<WebInterest>>> {
    check_customer_access(&state, &actor, id).await?;
    Ok(Json(state.store.web_interests(id).await?))
}
