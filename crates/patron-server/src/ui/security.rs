//! The login's second step and single sign-on (issue 21 §4), and `/ui/account/security` where a
//! user turns two-factor login on and off.
//!
//! After a right password, a user with an authenticator (or whose role requires one) gets a
//! short-lived login challenge in a cookie, not a session: `/ui/login/code` asks for a code (or a
//! recovery code); `/ui/login/enrol` has a user whose role requires two factors set one up first.
//! The session starts only when the step passes. Wrong codes count against the account like
//! wrong passwords ([`crate::ratelimit::LoginThrottle`]) and end the challenge after five.
//!
//! `/ui/login/sso` sends the browser to the OpenID Connect provider; `/ui/login/sso/callback`
//! checks what comes back ([`crate::sso`]) and starts the session of the matched or created user.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use axum_extra::extract::cookie::{Cookie, SameSite};
use axum_extra::extract::CookieJar;
use minijinja::context;
use patron_store::access::two_factor::{ChallengePurpose, Enrolment, LoginChallenge};
use patron_store::users::User;
use serde::Deserialize;

use super::{error_page, login_throttled, render, start_session};
use crate::auth::UiUser;
use crate::error::{ApiError, Form, Query};
use crate::i18n::Lang;
use crate::AppState;

/// Cookie of a login waiting for its second step.
pub const CHALLENGE_COOKIE: &str = "patron_login_step";
/// Cookie binding an SSO login to the browser that started it.
pub const SSO_COOKIE: &str = "patron_sso";
/// The issuer name authenticator apps show.
const TOTP_ISSUER: &str = "patron";

/// Routes of the second step, SSO and the security page.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ui/login/code", get(code_page).post(code))
        .route("/ui/login/enrol", get(enrol_page).post(enrol))
        .route("/ui/login/sso", get(sso_start))
        .route("/ui/login/sso/callback", get(sso_callback))
        .route("/ui/account/security", get(security))
        .route("/ui/account/security/enrol", post(security_enrol))
        .route("/ui/account/security/confirm", post(security_confirm))
        .route("/ui/account/security/disable", post(security_disable))
        .route("/ui/account/security/recovery", post(security_recovery))
}

/// An authenticator's QR code as SVG (drawn here: no image leaves the server).
pub fn qr_svg(text: &str) -> String {
    use qrcodegen::{QrCode, QrCodeEcc};
    let Ok(qr) = QrCode::encode_text(text, QrCodeEcc::Medium) else { return String::new() };
    let border = 4;
    let size = qr.size() + 2 * border;
    let mut path = String::new();
    for y in 0..qr.size() {
        for x in 0..qr.size() {
            if qr.get_module(x, y) {
                path.push_str(&format!("M{},{}h1v1h-1z", x + border, y + border));
            }
        }
    }
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" id=\"totp-qr\" viewBox=\"0 0 {size} {size}\" width=\"220\" height=\"220\" shape-rendering=\"crispEdges\" role=\"img\" aria-label=\"QR\"><rect width=\"{size}\" height=\"{size}\" fill=\"#fff\"/><path d=\"{path}\" fill=\"#000\"/></svg>"
    )
}

/// The enrolment as the page shows it: QR code, the key grouped for typing, the address.
fn enrolment_ctx(e: &Enrolment) -> minijinja::Value {
    let grouped: Vec<String> = e.secret.as_bytes().chunks(4).map(|c| String::from_utf8_lossy(c).into_owned()).collect();
    context! { qr => minijinja::Value::from_safe_string(qr_svg(&e.uri)), secret => grouped.join(" "), uri => e.uri.clone() }
}

/// Starts a login's second step: the challenge cookie and the way to its page.
pub async fn second_step(state: &AppState, jar: CookieJar, user: &User, purpose: ChallengePurpose) -> Response {
    match state.store.create_login_challenge(user, purpose).await {
        Ok(secret) => {
            let cookie = Cookie::build((CHALLENGE_COOKIE, secret))
                .path("/ui/login")
                .http_only(true)
                .same_site(SameSite::Strict)
                .secure(state.config.secure_cookies)
                .build();
            let to = if purpose == ChallengePurpose::Enrol { "/ui/login/enrol" } else { "/ui/login/code" };
            (jar.add(cookie), Redirect::to(to)).into_response()
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// The challenge of this browser, or the login page.
async fn challenge(state: &AppState, jar: &CookieJar) -> Result<(String, LoginChallenge), Response> {
    let Some(secret) = jar.get(CHALLENGE_COOKIE).map(|c| c.value().to_owned()) else {
        return Err(Redirect::to("/ui/login").into_response());
    };
    match state.store.login_challenge(&secret).await {
        Ok(Some(c)) => Ok((secret, c)),
        Ok(None) => Err(Redirect::to("/ui/login").into_response()),
        Err(e) => Err(ApiError::from(e).into_response()),
    }
}

fn step_page(state: &AppState, lang: Lang, status: StatusCode, ctx: minijinja::Value) -> Response {
    let mut res = render(state, "login_step.html", lang, None, ctx);
    *res.status_mut() = status;
    res
}

async fn code_page(State(state): State<AppState>, jar: CookieJar) -> Response {
    let lang = Lang::from_jar(&jar);
    match challenge(&state, &jar).await {
        Ok((_, c)) if c.purpose == ChallengePurpose::Code => step_page(&state, lang, StatusCode::OK, context! { mode => "code" }),
        Ok(_) => Redirect::to("/ui/login/enrol").into_response(),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
struct CodeForm {
    code: String,
}

/// Ends the challenge cookie (the step passed, or the challenge is over).
fn without_challenge(jar: CookieJar) -> CookieJar {
    jar.remove(Cookie::build(CHALLENGE_COOKIE).path("/ui/login"))
}

async fn code(
    State(state): State<AppState>,
    jar: CookieJar,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    Form(f): Form<CodeForm>,
) -> Response {
    let lang = Lang::from_jar(&jar);
    let (secret, c) = match challenge(&state, &jar).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let now = std::time::Instant::now();
    let email = c.user.email.clone();
    // The same throttle as the password: per address, then per account.
    if !state.logins.by_address.allow(peer.ip(), now) {
        return login_throttled(&state, lang, &email, std::time::Duration::from_secs(60));
    }
    if let Some(wait) = state.logins.locked(&email, now) {
        let _ = state.store.audit("anonymous", "login_refused_locked", "login", None, None).await;
        return login_throttled(&state, lang, &email, wait);
    }
    match state.store.verify_second_factor(c.user.id, &f.code).await {
        Ok(Some(_)) => {
            state.logins.succeeded(&email);
            let _ = state.store.end_login_challenge(&secret).await;
            start_session(&state, without_challenge(jar), &c.user).await
        }
        Ok(None) => {
            let id = Some(c.user.id.to_string());
            let _ = state.store.audit("anonymous", "login_code_failed", "user", id.clone(), None).await;
            let over = state.store.login_challenge_failed(&secret).await.unwrap_or(true);
            if let Some(lock) = state.logins.failed(&email, now) {
                let _ = state.store.audit("anonymous", "login_locked", "user", id, Some(format!("minutes={}", lock.as_secs() / 60))).await;
                return (without_challenge(jar), login_throttled(&state, lang, &email, lock)).into_response();
            }
            if over {
                return (without_challenge(jar), Redirect::to("/ui/login")).into_response();
            }
            step_page(&state, lang, StatusCode::UNAUTHORIZED, context! { mode => "code", failed => true })
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}

async fn enrol_page(State(state): State<AppState>, jar: CookieJar) -> Response {
    let lang = Lang::from_jar(&jar);
    let c = match challenge(&state, &jar).await {
        Ok((_, c)) if c.purpose == ChallengePurpose::Enrol => c,
        Ok(_) => return Redirect::to("/ui/login/code").into_response(),
        Err(r) => return r,
    };
    let enrolment = match state.store.pending_enrolment(&c.user, TOTP_ISSUER).await {
        Ok(Some(e)) => Ok(e),
        Ok(None) => state.store.start_totp_enrolment(&c.user, TOTP_ISSUER).await,
        Err(e) => Err(e),
    };
    match enrolment {
        Ok(e) => step_page(&state, lang, StatusCode::OK, context! { mode => "enrol", enrolment => enrolment_ctx(&e) }),
        Err(e) => ApiError::from(e).into_response(),
    }
}

async fn enrol(
    State(state): State<AppState>,
    jar: CookieJar,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    Form(f): Form<CodeForm>,
) -> Response {
    let lang = Lang::from_jar(&jar);
    let (secret, c) = match challenge(&state, &jar).await {
        Ok((s, c)) if c.purpose == ChallengePurpose::Enrol => (s, c),
        Ok(_) => return Redirect::to("/ui/login/code").into_response(),
        Err(r) => return r,
    };
    if !state.logins.by_address.allow(peer.ip(), std::time::Instant::now()) {
        return login_throttled(&state, lang, &c.user.email, std::time::Duration::from_secs(60));
    }
    match state.store.confirm_totp(&format!("user:{}", c.user.id), c.user.id, &f.code).await {
        Ok(codes) => {
            state.logins.succeeded(&c.user.email);
            let _ = state.store.end_login_challenge(&secret).await;
            // The session starts with this page, which shows the recovery codes once.
            let res = start_session(&state, without_challenge(jar), &c.user).await;
            let (parts, _) = res.into_parts();
            let mut page = step_page(&state, lang, StatusCode::OK, context! { mode => "codes", codes });
            for v in parts.headers.get_all(axum::http::header::SET_COOKIE) {
                page.headers_mut().append(axum::http::header::SET_COOKIE, v.clone());
            }
            page
        }
        Err(patron_store::StoreError::Invalid { .. }) => {
            let over = state.store.login_challenge_failed(&secret).await.unwrap_or(true);
            if over {
                return (without_challenge(jar), Redirect::to("/ui/login")).into_response();
            }
            match state.store.pending_enrolment(&c.user, TOTP_ISSUER).await {
                Ok(Some(e)) => step_page(
                    &state,
                    lang,
                    StatusCode::UNAUTHORIZED,
                    context! { mode => "enrol", failed => true, enrolment => enrolment_ctx(&e) },
                ),
                Ok(None) => Redirect::to("/ui/login/enrol").into_response(),
                Err(e) => ApiError::from(e).into_response(),
            }
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}

// ---- single sign-on ------------------------------------------------------------------------

fn redirect_uri(state: &AppState, headers: &HeaderMap) -> String {
    format!("{}/ui/login/sso/callback", crate::api::tickets::public_base(state, headers))
}

fn sso_failed(state: &AppState, lang: Lang, message: String) -> Response {
    let mut res = render(state, "login.html", lang, None, context! { sso => true, sso_error => message });
    *res.status_mut() = StatusCode::BAD_GATEWAY;
    res
}

async fn sso_start(State(state): State<AppState>, jar: CookieJar, headers: HeaderMap) -> Response {
    let lang = Lang::from_jar(&jar);
    let settings = match state.store.sso_settings().await {
        Ok(s) if s.enabled => s,
        Ok(_) => return Redirect::to("/ui/login").into_response(),
        Err(e) => return ApiError::from(e).into_response(),
    };
    let d = match crate::sso::discover(&settings).await {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "single sign-on: discovery failed");
            return sso_failed(&state, lang, e.to_string());
        }
    };
    let (login_state, nonce, verifier) = (crate::sso::random_token(32), crate::sso::random_token(32), crate::sso::random_token(48));
    if let Err(e) = state.store.create_oidc_login(&login_state, &verifier, &nonce).await {
        return ApiError::from(e).into_response();
    }
    let url = crate::sso::authorization_url(&d, &settings, &redirect_uri(&state, &headers), &login_state, &nonce, &verifier);
    // The state also in a cookie of this browser: a callback started elsewhere does not log in here.
    let cookie = Cookie::build((SSO_COOKIE, login_state))
        .path("/ui/login/sso")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.config.secure_cookies)
        .build();
    (jar.add(cookie), Redirect::to(&url)).into_response()
}

#[derive(Deserialize)]
struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

async fn sso_callback(State(state): State<AppState>, jar: CookieJar, headers: HeaderMap, Query(q): Query<Callback>) -> Response {
    let lang = Lang::from_jar(&jar);
    let jar_state = jar.get(SSO_COOKIE).map(|c| c.value().to_owned());
    let jar = jar.remove(Cookie::build(SSO_COOKIE).path("/ui/login/sso"));
    if let Some(err) = q.error {
        let err: String = err.chars().filter(|c| c.is_ascii_graphic()).take(100).collect();
        return (jar, sso_failed(&state, lang, format!("the identity provider: {err}"))).into_response();
    }
    let (Some(code), Some(login_state)) = (q.code, q.state) else {
        return (jar, sso_failed(&state, lang, "the identity provider sent no code".into())).into_response();
    };
    if jar_state.as_deref() != Some(login_state.as_str()) {
        return (jar, sso_failed(&state, lang, "this login was not started in this browser; start again".into())).into_response();
    }
    let result = async {
        let settings = state.store.sso_settings().await.map_err(|e| e.to_string())?;
        if !settings.enabled {
            return Err("single sign-on is off".to_owned());
        }
        let (verifier, nonce) =
            state.store.take_oidc_login(&login_state).await.map_err(|e| e.to_string())?.ok_or("this login has expired; start again")?;
        let d = crate::sso::discover(&settings).await.map_err(|e| e.to_string())?;
        let id = crate::sso::finish(&d, &settings, &code, &redirect_uri(&state, &headers), &verifier, &nonce, state.store.now())
            .await
            .map_err(|e| e.to_string())?;
        state.store.sso_user(&id.issuer, &id.subject, &id.email, id.name.as_deref()).await.map_err(|e| e.to_string())
    }
    .await;
    match result {
        Ok(user) => {
            let _ = state.store.audit(&format!("user:{}", user.id), "login_sso", "user", Some(user.id.to_string()), None).await;
            start_session(&state, jar, &user).await
        }
        Err(message) => {
            tracing::warn!(error = %message, "single sign-on failed");
            (jar, sso_failed(&state, lang, message)).into_response()
        }
    }
}

// ---- the user's own security page ---------------------------------------------------------

async fn security_page(state: &AppState, user: &UiUser, extra: minijinja::Value) -> Response {
    match state.store.two_factor_status(&user.session.user).await {
        Ok(status) => render(state, "security.html", user.lang, Some(user), context! { status, ..extra }),
        Err(e) => error_page(state, user, e.into()),
    }
}

async fn security(State(state): State<AppState>, user: UiUser) -> Response {
    security_page(&state, &user, context! {}).await
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

#[derive(Deserialize)]
struct CsrfCodeForm {
    csrf: String,
    #[serde(default)]
    code: String,
}

async fn security_enrol(State(state): State<AppState>, user: UiUser, Form(f): Form<CsrfForm>) -> Response {
    if let Err(e) = user.check_csrf(&f.csrf) {
        return error_page(&state, &user, e);
    }
    match state.store.start_totp_enrolment(&user.session.user, TOTP_ISSUER).await {
        Ok(e) => security_page(&state, &user, context! { enrolment => enrolment_ctx(&e) }).await,
        Err(e) => security_page(&state, &user, context! { error => ApiError::from(e).message }).await,
    }
}

async fn security_confirm(State(state): State<AppState>, user: UiUser, Form(f): Form<CsrfCodeForm>) -> Response {
    if let Err(e) = user.check_csrf(&f.csrf) {
        return error_page(&state, &user, e);
    }
    match state.store.confirm_totp(&user.actor.key, user.session.user.id, &f.code).await {
        Ok(codes) => security_page(&state, &user, context! { codes }).await,
        Err(e) => {
            let message = ApiError::from(e).message;
            let enrolment = state.store.pending_enrolment(&user.session.user, TOTP_ISSUER).await.ok().flatten().map(|e| enrolment_ctx(&e));
            security_page(&state, &user, context! { error => message, enrolment }).await
        }
    }
}

async fn security_disable(State(state): State<AppState>, user: UiUser, Form(f): Form<CsrfCodeForm>) -> Response {
    if let Err(e) = user.check_csrf(&f.csrf) {
        return error_page(&state, &user, e);
    }
    let u = &user.session.user;
    let refused = match state.store.two_factor_required(u).await {
        Ok(true) => Some("required"),
        Ok(false) => match state.store.verify_second_factor(u.id, &f.code).await {
            Ok(Some(_)) => None,
            Ok(None) => Some("wrong_code"),
            Err(e) => return error_page(&state, &user, e.into()),
        },
        Err(e) => return error_page(&state, &user, e.into()),
    };
    if let Some(reason) = refused {
        return security_page(&state, &user, context! { refused => reason }).await;
    }
    match state.store.disable_two_factor(&user.actor, u.id).await {
        Ok(()) => Redirect::to("/ui/account/security").into_response(),
        Err(e) => error_page(&state, &user, e.into()),
    }
}

async fn security_recovery(State(state): State<AppState>, user: UiUser, Form(f): Form<CsrfForm>) -> Response {
    if let Err(e) = user.check_csrf(&f.csrf) {
        return error_page(&state, &user, e);
    }
    match state.store.regenerate_recovery_codes(&user.actor.key, user.session.user.id).await {
        Ok(codes) => security_page(&state, &user, context! { codes }).await,
        Err(e) => security_page(&state, &user, context! { error => ApiError::from(e).message }).await,
    }
}
