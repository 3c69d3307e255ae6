//! The web UI: server-rendered HTML (minijinja, auto-escaped) with htmx, every asset embedded.
//! Login with a session cookie and CSRF tokens; customer list, customer 360, edit with history,
//! import with the rejected-rows report; the analytics dashboard and the segment builder
//! (submodules); zh-CN and English.

mod accounts;
pub mod analytics;
mod audit;
mod campaigns;
mod customer_events;
mod fulfilment;
mod history;
mod journeys;
mod kpis;
mod loyalty;
mod optout;
mod plans;
mod public;
mod security;
mod segments;
mod surveys;
mod tickets;
mod users;
pub mod validation;
mod web;
mod webhooks;

use axum::extract::{Multipart, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use axum_extra::extract::cookie::{Cookie, SameSite};
use axum_extra::extract::CookieJar;
use chrono::DateTime;
use minijinja::{context, Environment, Value};
use patron_store::access::masking::{Surface, Visibility};
use patron_store::customers::{CustomerFilter, CustomerPatch, CustomerSort};
use patron_store::users::Role;
use serde::Deserialize;

use crate::api::masking::masked_with;
use crate::auth::{check_customer_access, UiUser, SESSION_COOKIE};
use crate::error::{ApiError, Form, Path, Query};
use crate::i18n::{labels, Lang, LANG_COOKIE};
use crate::AppState;

/// The UI routes and assets.
pub fn router(state: &AppState) -> Router<AppState> {
    let max_upload_bytes = state.config.max_upload_bytes;
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/customers") }))
        .route("/ui", get(|| async { Redirect::to("/ui/customers") }))
        .route("/ui/login", get(login_page).post(login))
        .route("/ui/logout", axum::routing::post(logout))
        .route("/ui/lang/{code}", get(set_lang))
        .route("/ui/customers", get(customers))
        .route("/ui/customers/{id}", get(customer))
        .route("/ui/customers/{id}/timeline", get(timeline_rows))
        .route("/ui/customers/{id}/edit", get(edit_page).post(edit))
        .route("/ui/customers/{id}/notes", axum::routing::post(add_note))
        .route("/ui/customers/{id}/merge", axum::routing::post(merge))
        .route("/ui/customers/{id}/personal-data", get(personal_data))
        .route("/ui/customers/{id}/erase", axum::routing::post(erase))
        .route("/ui/import", get(import_page).post(import).layer(axum::extract::DefaultBodyLimit::max(max_upload_bytes)))
        .merge(analytics::router())
        .merge(validation::router())
        .merge(audit::router())
        .merge(webhooks::router())
        .merge(web::router())
        .merge(security::router())
        .merge(users::router())
        .merge(journeys::router())
        .merge(accounts::router())
        .merge(campaigns::router())
        .merge(segments::router())
        .merge(tickets::router())
        .merge(surveys::router())
        .merge(loyalty::router())
        .merge(fulfilment::router())
        .merge(kpis::router())
        .merge(plans::router())
        .merge(customer_events::router())
        .merge(customer_events::public_router().route_layer(middleware::from_fn_with_state(state.clone(), crate::ratelimit::limit_links)))
        .merge(plans::public_router().route_layer(middleware::from_fn_with_state(state.clone(), crate::ratelimit::limit_links)))
        .merge(public::router().route_layer(middleware::from_fn_with_state(state.clone(), crate::ratelimit::limit_links)))
        .merge(optout::router().route_layer(middleware::from_fn_with_state(state.clone(), crate::ratelimit::limit_links)))
        .route("/assets/{file}", get(asset))
        .fallback(page_not_found)
        .layer(middleware::from_fn(security_headers))
}

/// Any other path: a page saying so (in the visitor's language) rather than an empty 404, or the
/// API's JSON envelope under `/api/`.
async fn page_not_found(State(state): State<AppState>, jar: CookieJar, uri: axum::http::Uri) -> Response {
    if uri.path().starts_with("/api/") {
        return ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint (see /api/v1/openapi.json)").into_response();
    }
    let mut res = render(&state, "error.html", Lang::from_jar(&jar), None, context! { title => "not_found", message => "" });
    *res.status_mut() = StatusCode::NOT_FOUND;
    res
}

/// Builds the template environment (templates are compiled into the binary).
pub fn templates(tz: patron_store::BusinessTz) -> Environment<'static> {
    let mut env = Environment::new();
    for (name, src) in [
        ("base.html", include_str!("../../templates/base.html")),
        ("login.html", include_str!("../../templates/login.html")),
        ("login_step.html", include_str!("../../templates/login_step.html")),
        ("security.html", include_str!("../../templates/security.html")),
        ("users.html", include_str!("../../templates/users.html")),
        ("customers.html", include_str!("../../templates/customers.html")),
        ("customer.html", include_str!("../../templates/customer.html")),
        ("accounts.html", include_str!("../../templates/accounts.html")),
        ("accounts_overdue.html", include_str!("../../templates/accounts_overdue.html")),
        ("relationship.html", include_str!("../../templates/relationship.html")),
        ("timeline_rows.html", include_str!("../../templates/timeline_rows.html")),
        ("edit.html", include_str!("../../templates/edit.html")),
        ("import.html", include_str!("../../templates/import.html")),
        ("error.html", include_str!("../../templates/error.html")),
        ("analytics.html", include_str!("../../templates/analytics.html")),
        ("validation_card.html", include_str!("../../templates/validation_card.html")),
        ("segments.html", include_str!("../../templates/segments.html")),
        ("segment_preview.html", include_str!("../../templates/segment_preview.html")),
        ("public_confirm.html", include_str!("../../templates/public_confirm.html")),
        ("public_survey.html", include_str!("../../templates/public_survey.html")),
        ("surveys.html", include_str!("../../templates/surveys.html")),
        ("survey.html", include_str!("../../templates/survey.html")),
        ("tickets.html", include_str!("../../templates/tickets.html")),
        ("ticket.html", include_str!("../../templates/ticket.html")),
        ("ticket_new.html", include_str!("../../templates/ticket_new.html")),
        ("notifications.html", include_str!("../../templates/notifications.html")),
        ("audit.html", include_str!("../../templates/audit.html")),
        ("webhooks.html", include_str!("../../templates/webhooks.html")),
        ("webhook.html", include_str!("../../templates/webhook.html")),
        ("web.html", include_str!("../../templates/web.html")),
        ("web_interests.html", include_str!("../../templates/web_interests.html")),
        ("service.html", include_str!("../../templates/service.html")),
        ("tasks.html", include_str!("../../templates/tasks.html")),
        ("journeys.html", include_str!("../../templates/journeys.html")),
        ("journey.html", include_str!("../../templates/journey.html")),
        ("campaigns.html", include_str!("../../templates/campaigns.html")),
        ("campaign_new.html", include_str!("../../templates/campaign_new.html")),
        ("campaign.html", include_str!("../../templates/campaign.html")),
        ("campaign_report.html", include_str!("../../templates/campaign_report.html")),
        ("loyalty.html", include_str!("../../templates/loyalty.html")),
        ("loyalty_card.html", include_str!("../../templates/loyalty_card.html")),
        ("cost_to_serve.html", include_str!("../../templates/cost_to_serve.html")),
        ("fulfilment.html", include_str!("../../templates/fulfilment.html")),
        ("fulfilment_card.html", include_str!("../../templates/fulfilment_card.html")),
        ("kpis.html", include_str!("../../templates/kpis.html")),
        ("kpi_customers.html", include_str!("../../templates/kpi_customers.html")),
        ("plans.html", include_str!("../../templates/plans.html")),
        ("public_plan.html", include_str!("../../templates/public_plan.html")),
        ("customer_events.html", include_str!("../../templates/customer_events.html")),
        ("customer_event.html", include_str!("../../templates/customer_event.html")),
        ("public_event.html", include_str!("../../templates/public_event.html")),
    ] {
        // The sources are fixed at compile time and covered by tests; a broken one is a build defect.
        if let Err(e) = env.add_template(name, src) {
            tracing::error!(template = name, error = %e, "template does not compile");
        }
    }
    // minijinja's own `urlencode` needs a feature this build leaves out; the pages use it for
    // query strings (paging links, example rules).
    env.add_filter("urlencode", |v: String| percent_encode(&v));
    // Cents → ¥1,234.56; model outputs (CLV …) are fractional cents and are rounded.
    env.add_filter("money", |v: Value| match v.as_i64() {
        Some(cents) => crate::i18n::yuan(cents),
        None => f64::try_from(v).map(crate::i18n::yuan_f).unwrap_or_default(),
    });
    // A stored value (status, channel, interaction kind …) in the page's language: `t` is the
    // page's labels.
    env.add_filter("term", |v: String, t: Value| {
        crate::i18n::term(&v, |key| t.get_item(&Value::from(key)).ok().filter(|l| !l.is_undefined() && !l.is_none()).map(|l| l.to_string()))
    });
    env.add_filter("dt", move |v: String| match DateTime::parse_from_rfc3339(&v) {
        Ok(t) => t.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string(),
        Err(_) => v,
    });
    env.add_filter("date", move |v: String| match DateTime::parse_from_rfc3339(&v) {
        Ok(t) => t.with_timezone(&tz).format("%Y-%m-%d").to_string(),
        Err(_) => v,
    });
    env
}

async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
        ),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    res
}

/// Renders a template with the common context (labels, user, CSRF token, language).
fn render(state: &AppState, name: &str, lang: Lang, user: Option<&UiUser>, ctx: Value) -> Response {
    let common = context! {
        t => labels(lang),
        lang => lang.tag(),
        user => user.map(|u| context! { name => u.session.user.name.clone(), role => u.session.user.role.as_str() }),
        csrf => user.map(|u| u.session.csrf_token.clone()),
    };
    let merged = context! { ..ctx, ..common };
    match state.templates.get_template(name).and_then(|t| t.render(merged)) {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(template = name, error = %e, "template failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

/// An error shown as a page.
fn error_page(state: &AppState, user: &UiUser, e: ApiError) -> Response {
    let title = match e.status {
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::FORBIDDEN => "forbidden",
        _ => "error",
    };
    let message = if e.status.is_server_error() { String::new() } else { e.message.clone() };
    let mut res = render(state, "error.html", user.lang, Some(user), context! { title, message });
    *res.status_mut() = e.status;
    res
}

// ---- login ------------------------------------------------------------------------------

/// Whether the login page offers single sign-on.
async fn sso_on(state: &AppState) -> bool {
    state.store.sso_settings().await.map(|s| s.enabled).unwrap_or(false)
}

async fn login_page(State(state): State<AppState>, jar: CookieJar) -> Response {
    let sso = sso_on(&state).await;
    render(&state, "login.html", Lang::from_jar(&jar), None, context! { failed => false, sso })
}

#[derive(Deserialize)]
struct LoginForm {
    email: String,
    password: String,
}

/// The login page saying that logins are paused, with 429 and `Retry-After`.
pub(crate) fn login_throttled(state: &AppState, lang: Lang, email: &str, wait: std::time::Duration) -> Response {
    let minutes = wait.as_secs().div_ceil(60).max(1);
    let mut res = render(state, "login.html", lang, None, context! { throttled => minutes, email });
    *res.status_mut() = StatusCode::TOO_MANY_REQUESTS;
    if let Ok(v) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
        res.headers_mut().insert(header::RETRY_AFTER, v);
    }
    res
}

async fn login(
    State(state): State<AppState>,
    jar: CookieJar,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    Form(f): Form<LoginForm>,
) -> Response {
    let lang = Lang::from_jar(&jar);
    let now = std::time::Instant::now();
    // Per address first (a burst of guesses at many accounts), then per account (slow guessing
    // from many addresses): either way the password is not even checked.
    if !state.logins.by_address.allow(peer.ip(), now) {
        return login_throttled(&state, lang, &f.email, std::time::Duration::from_secs(60));
    }
    if let Some(wait) = state.logins.locked(&f.email, now) {
        let _ = state.store.audit("anonymous", "login_refused_locked", "login", None, None).await;
        return login_throttled(&state, lang, &f.email, wait);
    }
    let user = match state.store.authenticate(&f.email, &f.password).await {
        Ok(Some(u)) => u,
        Ok(None) => {
            // The audit names the account by its user id when there is one, never by the email.
            let known = state.store.user_by_email(&f.email).await.ok().flatten().map(|u| u.id.to_string());
            let _ = state.store.audit("anonymous", "login_failed", "user", known.clone(), None).await;
            if let Some(lock) = state.logins.failed(&f.email, now) {
                let _ =
                    state.store.audit("anonymous", "login_locked", "user", known, Some(format!("minutes={}", lock.as_secs() / 60))).await;
                return login_throttled(&state, lang, &f.email, lock);
            }
            let sso = sso_on(&state).await;
            let mut res = render(&state, "login.html", lang, None, context! { failed => true, email => f.email, sso });
            *res.status_mut() = StatusCode::UNAUTHORIZED;
            return res;
        }
        Err(e) => return ApiError::from(e).into_response(),
    };
    // A second factor due (enrolled, or the role requires one): no session yet, and the
    // account's failures are not forgotten until the code passes.
    let enrolled = match state.store.two_factor_enabled(user.id).await {
        Ok(b) => b,
        Err(e) => return ApiError::from(e).into_response(),
    };
    if enrolled {
        return security::second_step(&state, jar, &user, patron_store::access::two_factor::ChallengePurpose::Code).await;
    }
    match state.store.two_factor_required(&user).await {
        Ok(true) => return security::second_step(&state, jar, &user, patron_store::access::two_factor::ChallengePurpose::Enrol).await,
        Ok(false) => {}
        Err(e) => return ApiError::from(e).into_response(),
    }
    state.logins.succeeded(&f.email);
    start_session(&state, jar, &user).await
}

/// Starts `user`'s session: the cookie, and on to the customers.
pub(crate) async fn start_session(state: &AppState, jar: CookieJar, user: &patron_store::users::User) -> Response {
    match state.store.create_session(user, state.config.session_ttl).await {
        Ok((secret, _csrf)) => {
            let cookie = Cookie::build((SESSION_COOKIE, secret))
                .path("/")
                .http_only(true)
                .same_site(SameSite::Lax)
                .secure(state.config.secure_cookies)
                .build();
            (jar.add(cookie), Redirect::to("/ui/customers")).into_response()
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn logout(State(state): State<AppState>, user: UiUser, jar: CookieJar, Form(f): Form<CsrfForm>) -> Response {
    if let Err(e) = user.check_csrf(&f.csrf) {
        return error_page(&state, &user, e);
    }
    if let Some(c) = jar.get(SESSION_COOKIE) {
        let _ = state.store.delete_session(c.value()).await;
    }
    (jar.remove(Cookie::build(SESSION_COOKIE).path("/")), Redirect::to("/ui/login")).into_response()
}

async fn set_lang(jar: CookieJar, headers: HeaderMap, Path(code): Path<String>) -> Response {
    let lang = if code == "en" { Lang::En } else { Lang::Zh };
    let cookie = Cookie::build((LANG_COOKIE, lang.code())).path("/").same_site(SameSite::Lax).permanent().build();
    // Back to the page the switch was clicked on, but only within this site.
    let back = headers
        .get(header::REFERER)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| r.find("/ui/").map(|i| r[i..].to_owned()))
        .filter(|p| !p.contains("//") && !p.starts_with("/ui/lang"))
        .unwrap_or_else(|| "/ui/customers".into());
    (jar.add(cookie), Redirect::to(&back)).into_response()
}

// ---- customers ----------------------------------------------------------------------------

#[derive(Deserialize, Default)]
struct ListQuery {
    q: Option<String>,
    city: Option<String>,
    tag: Option<String>,
    kind: Option<String>,
    sort: Option<String>,
    cursor: Option<String>,
}

fn empty_none(s: Option<String>) -> Option<String> {
    s.filter(|v| !v.trim().is_empty())
}

async fn customers(State(state): State<AppState>, user: UiUser, Query(q): Query<ListQuery>) -> Response {
    let sort = match q.sort.as_deref() {
        Some("name") => CustomerSort::Name,
        Some("-updated_at") => CustomerSort::UpdatedAtDesc,
        _ => CustomerSort::Id,
    };
    // The caller's scope (patron_store::access) narrows the list and its count.
    let filter = CustomerFilter {
        q: empty_none(q.q.clone()),
        tag: empty_none(q.tag.clone()),
        owner_id: None,
        city: empty_none(q.city.clone()),
        kind: empty_none(q.kind.clone()).filter(|k| k == "person" || k == "organisation"),
        home_unit_id: None,
        scope: Some(patron_store::access::CustomerScope::of(&user.actor)),
    };
    let page = match state.store.list_customers(&filter, sort, empty_none(q.cursor.clone()).as_deref(), 50).await {
        Ok(p) => p,
        Err(e) => return error_page(&state, &user, e.into()),
    };
    let total = state.store.count_customers(&filter).await.unwrap_or(0);
    let (cities, tags) = state.store.customer_facets().await.unwrap_or_default();
    let items =
        match state.store.field_mask(&user.actor, Surface::List).await.map_err(ApiError::from).and_then(|m| masked_with(&m, &page.items)) {
            Ok(v) => v,
            Err(e) => return error_page(&state, &user, e),
        };
    let next = page.next_cursor.map(|cursor| {
        let params = [
            ("q", q.q.clone().unwrap_or_default()),
            ("city", q.city.clone().unwrap_or_default()),
            ("tag", q.tag.clone().unwrap_or_default()),
            ("kind", q.kind.clone().unwrap_or_default()),
            ("sort", q.sort.clone().unwrap_or_default()),
            ("cursor", cursor),
        ];
        format!("/ui/customers?{}", encode_query(&params))
    });
    render(
        &state,
        "customers.html",
        user.lang,
        Some(&user),
        context! {
            items, next, total, cities, tags,
            q => q.q.unwrap_or_default(), city => q.city.unwrap_or_default(), tag => q.tag.unwrap_or_default(),
            kind => q.kind.unwrap_or_default(), sort => q.sort.unwrap_or_default(), paged => q.cursor.is_some(),
        },
    )
}

/// `application/x-www-form-urlencoded` query string.
fn encode_query(params: &[(&str, String)]) -> String {
    params.iter().filter(|(_, v)| !v.is_empty()).map(|(k, v)| format!("{k}={}", percent_encode(v))).collect::<Vec<_>>().join("&")
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[derive(Deserialize, Default)]
struct CustomerQuery {
    /// What the loyalty card just did (`redeemed`, `adjusted`), to confirm it.
    loyalty: Option<String>,
}

async fn customer(State(state): State<AppState>, user: UiUser, Path(id): Path<i64>, Query(q): Query<CustomerQuery>) -> Response {
    let done = q.loyalty.filter(|v| v == "redeemed" || v == "adjusted");
    customer_page(&state, &user, id, context! { loyalty_done => done }, StatusCode::OK).await
}

/// The customer 360 with `extra` in its context (a form's error), answered with `status`.
async fn customer_page(state: &AppState, user: &UiUser, id: i64, extra: Value, status: StatusCode) -> Response {
    match customer_context(state, user, id).await {
        Ok(ctx) => {
            let _ = state.store.audit(&user.actor.key, "read", "customer", Some(id.to_string()), None).await;
            let mut res = render(state, "customer.html", user.lang, Some(user), context! { ..extra, ..ctx });
            if res.status() == StatusCode::OK {
                *res.status_mut() = status;
            }
            res
        }
        Err(e) => error_page(state, user, e),
    }
}

async fn customer_context(state: &AppState, user: &UiUser, id: i64) -> Result<Value, ApiError> {
    check_customer_access(state, &user.actor, id).await?;
    // Personal data and money as the user's role may see them (patron_store::access::masking).
    let mask = state.store.field_mask(&user.actor, Surface::Profile).await?;
    let list_mask = state.store.field_mask(&user.actor, Surface::List).await?;
    let c = state.store.customer(id).await?;
    let stats = state.store.order_stats(id).await?;
    let avg = if stats.order_count > 0 { mask.money(stats.spend_cents / stats.order_count) } else { Some(0) };
    let contacts = masked_with(&mask, &state.store.contacts(id).await?)?;
    let orders = masked_with(&mask, &state.store.customer_orders(id, None, 10).await?.items)?;
    let mut timeline = state.store.timeline(id, None, 20).await?;
    timeline.items.iter_mut().for_each(|e| mask.timeline_entry(e));
    let mut changes = state.store.customer_changes(id, 20).await?;
    for ch in &mut changes {
        ch.old_value = mask.change_value(&ch.field, ch.old_value.take());
        ch.new_value = mask.change_value(&ch.field, ch.new_value.take());
    }
    let consents: Vec<Value> = ["sms", "email", "wechat"]
        .iter()
        .map(|ch| {
            let found = c.consents.iter().find(|x| x.channel == *ch);
            context! { channel => *ch, granted => found.map(|x| x.granted), recorded_at => found.map(|x| x.recorded_at.to_rfc3339()), source => found.map(|x| x.source.clone()) }
        })
        .collect();
    let more = timeline.next_cursor.map(|cur| format!("/ui/customers/{id}/timeline?cursor={}", percent_encode(&cur)));
    let scores = analytics::score_panel(state, id, user.lang, &mask).await?;
    // Likely duplicates, for those who may merge them (managers and admins); contacts masked
    // as in lists, except for admins.
    let duplicates = if !user.actor.can(patron_store::access::Permission::CustomersMerge) {
        serde_json::Value::Array(Vec::new())
    } else {
        let mut found = Vec::new();
        for d in state.store.duplicate_candidates(id).await? {
            if state.store.customer_in_scope(&user.actor, d.id).await? {
                found.push(d);
            }
        }
        masked_with(&list_mask, &found)?
    };
    let open_tickets = state
        .store
        .tickets(
            &user.actor,
            &patron_store::tickets::TicketFilter { customer_id: Some(id), status: Some("open".into()), ..Default::default() },
            patron_store::tickets::TicketSort::Due,
            None,
            20,
        )
        .await?
        .items;
    let policy = state.store.customer_policy(id).await?;
    let survey_answers = state.store.customer_survey_answers(id).await?;
    let churn_reason = state.store.churn_reason(id).await?;
    let churn_reasons = state.store.service_settings().await?.churn_reasons;
    let c = masked_with(&mask, &c)?;
    let stats = masked_with(&mask, &stats)?;
    // Channel calibration (issue 12 §5) and the customer's tasks.
    let channels = state.store.channel_preferences(id).await?;
    let nba = state.store.customer_next_action(id).await?;
    let next_action = context! {
        action => nba.action.clone(),
        label => crate::i18n::key_label(user.lang, "nba", &nba.action),
        reason => if user.lang == crate::i18n::Lang::Zh { nba.reason_zh.clone() } else { nba.reason_en.clone() },
        as_of => nba.as_of.map(|d| d.to_string()),
    };
    let tasks = state
        .store
        .tasks(&user.actor, &patron_store::tasks::TaskFilter { customer_id: Some(id), done: Some(false), ..Default::default() })
        .await?;
    let loyalty = loyalty::member_card(state, user, id).await?;
    // The customer's margin, cost to serve and profit are money: shown only to roles that see
    // money in full.
    let cost = if mask.money == Visibility::Full { loyalty::cost_card(state, id).await? } else { None };
    // Account management (issue 19): next contact, handover note, stage and guidance, health.
    let account = crate::api::accounts::summary(state, &user.actor, id).await?;
    Ok(
        context! { c, stats, avg, contacts, orders, consents, timeline => timeline.items, more, changes, scores, duplicates, open_tickets, policy,
        survey_answers, churn_reason, churn_reasons, channels, next_action, tasks, loyalty, cost, account },
    )
}

#[derive(Deserialize)]
struct CursorQuery {
    cursor: Option<String>,
}

/// The next timeline rows (an htmx fragment).
async fn timeline_rows(State(state): State<AppState>, user: UiUser, Path(id): Path<i64>, Query(q): Query<CursorQuery>) -> Response {
    if let Err(e) = check_customer_access(&state, &user.actor, id).await {
        return e.into_response();
    }
    let mask = match state.store.field_mask(&user.actor, Surface::Profile).await {
        Ok(m) => m,
        Err(e) => return ApiError::from(e).into_response(),
    };
    match state.store.timeline(id, q.cursor.as_deref(), 20).await {
        Ok(mut page) => {
            page.items.iter_mut().for_each(|e| mask.timeline_entry(e));
            let more = page.next_cursor.map(|cur| format!("/ui/customers/{id}/timeline?cursor={}", percent_encode(&cur)));
            render(&state, "timeline_rows.html", user.lang, Some(&user), context! { timeline => page.items, more })
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}

async fn edit_page(State(state): State<AppState>, user: UiUser, Path(id): Path<i64>) -> Response {
    if let Err(e) = check_customer_access(&state, &user.actor, id).await {
        return error_page(&state, &user, e);
    }
    let mask = match state.store.field_mask(&user.actor, Surface::Profile).await {
        Ok(m) => m,
        Err(e) => return error_page(&state, &user, e.into()),
    };
    match state.store.customer(id).await {
        Ok(c) => {
            let consent = |ch: &str| c.consents.iter().any(|x| x.channel == ch && x.granted);
            // A role that does not see personal data in full cannot change it either: the form
            // shows what the role sees, read-only, and saving keeps what is stored.
            let personal_locked = mask.personal != Visibility::Full;
            let form = EditForm {
                csrf: String::new(),
                name: c.name.clone(),
                mobile: mask.personal_text(c.mobile.clone()).unwrap_or_default(),
                email: mask.personal_text(c.email.clone()).unwrap_or_default(),
                wechat_id: mask.personal_text(c.wechat_id.clone()).unwrap_or_default(),
                gender: c.gender.clone().unwrap_or_default(),
                birthday: mask.birthday(c.birthday).map(|d| d.to_string()).unwrap_or_default(),
                city: c.city.clone().unwrap_or_default(),
                tags: c.tags.join("; "),
                consent_sms: consent("sms").then(|| "on".into()),
                consent_email: consent("email").then(|| "on".into()),
                consent_wechat: consent("wechat").then(|| "on".into()),
            };
            let c = match masked_with(&mask, &c) {
                Ok(c) => c,
                Err(e) => return error_page(&state, &user, e),
            };
            render(
                &state,
                "edit.html",
                user.lang,
                Some(&user),
                context! { c, form, personal_locked, error => None::<String>, field => None::<String> },
            )
        }
        Err(e) => error_page(&state, &user, e.into()),
    }
}

#[derive(Deserialize, serde::Serialize, Debug)]
struct EditForm {
    #[serde(default)]
    csrf: String,
    name: String,
    #[serde(default)]
    mobile: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    wechat_id: String,
    #[serde(default)]
    gender: String,
    #[serde(default)]
    birthday: String,
    #[serde(default)]
    city: String,
    #[serde(default)]
    tags: String,
    consent_sms: Option<String>,
    consent_email: Option<String>,
    consent_wechat: Option<String>,
}

fn opt(s: &str) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_owned())
}

async fn edit(State(state): State<AppState>, user: UiUser, Path(id): Path<i64>, Form(f): Form<EditForm>) -> Response {
    if let Err(e) = user.check_csrf(&f.csrf) {
        return error_page(&state, &user, e);
    }
    if let Err(e) = check_customer_access(&state, &user.actor, id).await {
        return error_page(&state, &user, e);
    }
    let personal_locked = match state.store.field_mask(&user.actor, Surface::Profile).await {
        Ok(m) => m.personal != Visibility::Full,
        Err(e) => return error_page(&state, &user, e.into()),
    };
    let birthday = if personal_locked {
        None
    } else {
        match opt(&f.birthday).map(|b| patron_store::values::parse_date(&b)).transpose() {
            Ok(b) => Some(b),
            Err(m) => return edit_error(&state, &user, id, &f, m, "birthday").await,
        }
    };
    let consents = [("sms", &f.consent_sms), ("email", &f.consent_email), ("wechat", &f.consent_wechat)];
    let current = match state.store.customer(id).await {
        Ok(c) => c,
        Err(e) => return error_page(&state, &user, e.into()),
    };
    // Record a consent only when the box differs from what is on file (unchecked with nothing
    // on file is "not recorded", not a refusal).
    let consents = consents
        .iter()
        .filter_map(|(ch, v)| {
            let now = v.is_some();
            let before = current.consents.iter().find(|x| x.channel == *ch).map(|x| x.granted);
            (before != Some(now) && (now || before.is_some())).then(|| (ch.to_string(), now))
        })
        .collect();
    let patch = CustomerPatch {
        name: Some(f.name.clone()),
        // Fields the role does not see in full are left as stored.
        mobile: (!personal_locked).then(|| opt(&f.mobile)),
        email: (!personal_locked).then(|| opt(&f.email)),
        wechat_id: (!personal_locked).then(|| opt(&f.wechat_id)),
        gender: Some(opt(&f.gender)),
        birthday,
        city: Some(opt(&f.city)),
        tags: Some(patron_store::values::parse_tags(&f.tags)),
        consents: Some(consents),
        ..Default::default()
    };
    match state.store.update_customer(&user.actor, id, patch).await {
        Ok(_) => Redirect::to(&format!("/ui/customers/{id}?saved=1#history")).into_response(),
        Err(patron_store::StoreError::Invalid { field, message }) => {
            edit_error(&state, &user, id, &f, message, field.as_deref().unwrap_or("")).await
        }
        Err(e) => error_page(&state, &user, e.into()),
    }
}

async fn edit_error(state: &AppState, user: &UiUser, id: i64, f: &EditForm, error: String, field: &str) -> Response {
    match state.store.customer(id).await {
        Ok(c) => {
            let mut res = render(state, "edit.html", user.lang, Some(user), context! { c, form => f, error, field });
            *res.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            res
        }
        Err(e) => error_page(state, user, e.into()),
    }
}

#[derive(Deserialize)]
struct NoteForm {
    csrf: String,
    body: String,
}

async fn add_note(State(state): State<AppState>, user: UiUser, Path(id): Path<i64>, Form(f): Form<NoteForm>) -> Response {
    if let Err(e) = user.check_csrf(&f.csrf) {
        return error_page(&state, &user, e);
    }
    if let Err(e) = check_customer_access(&state, &user.actor, id).await {
        return error_page(&state, &user, e);
    }
    match state.store.create_note(&user.actor, id, patron_store::notes::NewNote { body: f.body }).await {
        Ok(_) => Redirect::to(&format!("/ui/customers/{id}#timeline")).into_response(),
        Err(e) => error_page(&state, &user, e.into()),
    }
}

#[derive(Deserialize)]
struct MergeForm {
    csrf: String,
    merge_id: i64,
}

/// Merges a duplicate into the customer shown, then shows the result.
async fn merge(State(state): State<AppState>, user: UiUser, Path(id): Path<i64>, Form(f): Form<MergeForm>) -> Response {
    if let Err(e) = user.check_csrf(&f.csrf) {
        return error_page(&state, &user, e);
    }
    if let Err(e) = crate::auth::require(&user.actor, Role::Manager, "merge customers") {
        return error_page(&state, &user, e);
    }
    match state.store.merge_customers(&user.actor, id, f.merge_id).await {
        Ok(_) => Redirect::to(&format!("/ui/customers/{id}#history")).into_response(),
        Err(e) => error_page(&state, &user, e.into()),
    }
}

/// Everything held on the customer, as a JSON download (managers and admins; audited).
async fn personal_data(State(state): State<AppState>, user: UiUser, Path(id): Path<i64>) -> Response {
    if let Err(e) = crate::auth::require(&user.actor, Role::Manager, "export a customer's personal data") {
        return error_page(&state, &user, e);
    }
    match state.store.personal_data(&user.actor, id).await {
        Ok(data) => {
            let disposition = format!("attachment; filename=\"customer-{id}-personal-data.json\"");
            let mut res = axum::Json(data).into_response();
            if let Ok(v) = HeaderValue::from_str(&disposition) {
                res.headers_mut().insert(header::CONTENT_DISPOSITION, v);
            }
            res
        }
        Err(e) => error_page(&state, &user, e.into()),
    }
}

/// Erases the customer's personal data (admins; irreversible), then back to the list.
async fn erase(State(state): State<AppState>, user: UiUser, Path(id): Path<i64>, Form(f): Form<CsrfForm>) -> Response {
    if let Err(e) = user.check_csrf(&f.csrf) {
        return error_page(&state, &user, e);
    }
    if let Err(e) = crate::auth::require(&user.actor, Role::Admin, "erase a customer's personal data") {
        return error_page(&state, &user, e);
    }
    match state.store.erase_customer(&user.actor, id).await {
        Ok(()) => Redirect::to("/ui/customers").into_response(),
        Err(e) => error_page(&state, &user, e.into()),
    }
}

// ---- import -------------------------------------------------------------------------------

async fn import_page(State(state): State<AppState>, user: UiUser) -> Response {
    if let Err(e) = crate::auth::require(&user.actor, Role::Manager, "import data") {
        return error_page(&state, &user, e);
    }
    render(&state, "import.html", user.lang, Some(&user), context! { report => None::<()> })
}

async fn import(State(state): State<AppState>, user: UiUser, headers: HeaderMap, multipart: Multipart) -> Response {
    if let Err(e) = crate::auth::require(&user.actor, Role::Manager, "import data") {
        return error_page(&state, &user, e);
    }
    // Multipart bodies carry the CSRF token in a header (set by the page) since the form parts
    // are read in order and the file may be large.
    let sent = headers.get("x-csrf-token").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let (opts, file, csrf_field) = match read_import_form(multipart).await {
        Ok(v) => v,
        Err(e) => return error_page(&state, &user, e),
    };
    let token = if sent.is_empty() { csrf_field } else { sent };
    if let Err(e) = user.check_csrf(&token) {
        return error_page(&state, &user, e);
    }
    let imported = state.store.import(&user.actor, Box::new(std::io::Cursor::new(file)), &opts, &|_| {}).await;
    if let Ok(r) = &imported {
        state.metrics.import_rows(r);
    }
    match imported {
        Ok(mut report) => {
            let status = if report.committed || opts.dry_run { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
            for r in &mut report.rejections {
                r.reason = crate::i18n::import_reason(user.lang, &r.reason);
            }
            let mut res = render(&state, "import.html", user.lang, Some(&user), context! { report, dry_run => opts.dry_run });
            *res.status_mut() = status;
            res
        }
        Err(e) => error_page(&state, &user, e.into()),
    }
}

/// The import form: the API's fields plus the CSRF token.
async fn read_import_form(mut multipart: Multipart) -> Result<(patron_store::import::ImportOptions, Vec<u8>, String), ApiError> {
    // Re-use the API's parser for everything but `csrf`, which it would refuse as unknown.
    let mut csrf = String::new();
    let mut kind = None;
    let mut file = None;
    let mut flags = (false, false);
    let mut encoding = None;
    while let Some(field) = multipart.next_field().await.map_err(|e| ApiError::new(e.status(), "invalid_multipart", e.body_text()))? {
        let name = field.name().unwrap_or_default().to_owned();
        if name == "file" {
            let fname = field.file_name().unwrap_or("upload.csv").to_owned();
            let bytes = field.bytes().await.map_err(|e| ApiError::new(e.status(), "invalid_multipart", e.body_text()))?;
            file = Some((fname, bytes.to_vec()));
            continue;
        }
        let text = field.text().await.map_err(|e| ApiError::new(e.status(), "invalid_multipart", e.body_text()))?;
        match name.as_str() {
            "csrf" => csrf = text,
            "kind" => {
                kind = Some(text.parse::<patron_store::import::ImportKind>().map_err(|e| ApiError::bad_request("kind", e.to_string()))?)
            }
            "skip_invalid" => flags.0 = true,
            "dry_run" => flags.1 = true,
            "encoding" if !text.is_empty() => {
                encoding =
                    Some(text.parse::<patron_store::import::Encoding>().map_err(|e| ApiError::bad_request("encoding", e.to_string()))?)
            }
            _ => {}
        }
    }
    let kind = kind.ok_or_else(|| ApiError::bad_request("kind", "choose what the file holds"))?;
    let (name, bytes) = file.filter(|(_, b)| !b.is_empty()).ok_or_else(|| ApiError::bad_request("file", "choose a file"))?;
    let mut opts = patron_store::import::ImportOptions::new(kind, name);
    opts.skip_invalid = flags.0;
    opts.dry_run = flags.1;
    opts.encoding = encoding;
    Ok((opts, bytes, csrf))
}

// ---- assets -------------------------------------------------------------------------------

async fn asset(Path(file): Path<String>) -> Response {
    let (body, mime): (&'static [u8], &str) = match file.as_str() {
        "htmx.min.js" => (include_bytes!("../../assets/htmx.min.js"), "text/javascript; charset=utf-8"),
        "app.js" => (include_bytes!("../../assets/app.js"), "text/javascript; charset=utf-8"),
        "app.css" => (include_bytes!("../../assets/app.css"), "text/css; charset=utf-8"),
        "public.css" => (include_bytes!("../../assets/public.css"), "text/css; charset=utf-8"),
        "analytics.js" => (include_bytes!("../../assets/analytics.js"), "text/javascript; charset=utf-8"),
        "history.js" => (include_bytes!("../../assets/history.js"), "text/javascript; charset=utf-8"),
        "validation.js" => (include_bytes!("../../assets/validation.js"), "text/javascript; charset=utf-8"),
        "service.js" => (include_bytes!("../../assets/service.js"), "text/javascript; charset=utf-8"),
        "surveys.js" => (include_bytes!("../../assets/surveys.js"), "text/javascript; charset=utf-8"),
        "analytics.css" => (include_bytes!("../../assets/analytics.css"), "text/css; charset=utf-8"),
        "echarts.LICENSE" => (include_bytes!("../../assets/echarts.LICENSE"), "text/plain; charset=utf-8"),
        "echarts.min.js" => {
            // 1 MB that changes only with the ECharts version, which the page puts in the URL
            // (`?v=5.6.0`): cache it for a year.
            let body: &'static [u8] = include_bytes!("../../assets/echarts.min.js");
            let headers =
                [(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=31536000, immutable")];
            return (headers, body).into_response();
        }
        _ => return (StatusCode::NOT_FOUND, "not found").into_response(),
    };
    ([(header::CONTENT_TYPE, mime), (header::CACHE_CONTROL, "public, max-age=3600")], body).into_response()
}
