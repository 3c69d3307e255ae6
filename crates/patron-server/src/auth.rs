//! Authentication and authorisation as extractors. The API takes `Authorization: Bearer <token>`;
//! the web UI takes a session cookie (HttpOnly, SameSite=Lax) plus a CSRF token on every write.

use axum::extract::{FromRequestParts, MatchedPath};
use axum::http::request::Parts;
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::CookieJar;
use patron_store::access::Permission;
use patron_store::users::{Actor, Role, Session};

use crate::error::{ApiError, ApiResult};
use crate::i18n::Lang;
use crate::AppState;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "patron_session";

/// An authenticated API caller.
#[derive(Debug, Clone)]
pub struct Auth(pub Actor);

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let value = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).ok_or_else(ApiError::unauthorized)?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty() && t.len() < 200)
            .ok_or_else(ApiError::unauthorized)?;
        match state.store.token_actor(token).await? {
            // A read-only token reads: any method but GET (and HEAD) is refused before the
            // handler runs (issue 14 §3).
            Some(t) if t.read_only && !matches!(parts.method, Method::GET | Method::HEAD) => {
                Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", "this token is read-only (GET requests only)"))
            }
            Some(t) => {
                // The permission the route declares (crate::api::access::ROUTES), checked before
                // the handler runs: the declaration in the OpenAPI document is what is enforced.
                if let Some(path) = parts.extensions.get::<MatchedPath>() {
                    if let Some(Some(p)) = crate::api::access::declared(&parts.method, path.as_str()) {
                        permit(&t.actor, p)?;
                    }
                    if crate::api::access::whole_base(&parts.method, path.as_str()) {
                        permit(&t.actor, Permission::AllCustomers)?;
                    }
                }
                Ok(Auth(t.actor))
            }
            None => Err(ApiError::unauthorized()),
        }
    }
}

/// Refuses callers below `min`: a caller passes when its permissions contain every permission
/// of the built-in role `min` (for the built-in roles, exactly the old level comparison). Kept
/// for code not yet converted to [`permit`].
pub fn require(actor: &Actor, min: Role, what: &str) -> ApiResult<()> {
    if actor.permissions.contains(min.permissions()) {
        Ok(())
    } else {
        Err(ApiError::forbidden(what))
    }
}

/// Refuses callers without permission `p` (403 naming it).
pub fn permit(actor: &Actor, p: Permission) -> ApiResult<()> {
    if actor.can(p) {
        Ok(())
    } else {
        Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", format!("this needs the permission {p}")))
    }
}

/// The one check of every per-customer route: a customer outside the caller's scope (its home
/// unit outside the subtrees of the caller's units, not owned by the caller, and no
/// `all_customers`) does not exist for it: 404, as a missing or deleted one.
pub async fn check_customer_access(state: &AppState, actor: &Actor, customer_id: i64) -> ApiResult<()> {
    if state.store.customer_in_scope(actor, customer_id).await? {
        Ok(())
    } else {
        Err(ApiError::not_found("customer"))
    }
}

/// A logged-in web user, with the language of the page.
#[derive(Debug, Clone)]
pub struct UiUser {
    /// The session.
    pub session: Session,
    /// The actor for store calls.
    pub actor: Actor,
    /// Page language.
    pub lang: Lang,
}

/// Sends a browser without a session to the login page.
pub struct LoginRedirect;

impl IntoResponse for LoginRedirect {
    fn into_response(self) -> Response {
        Redirect::to("/ui/login").into_response()
    }
}

impl FromRequestParts<AppState> for UiUser {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let jar = CookieJar::from_headers(&parts.headers);
        let lang = Lang::from_jar(&jar);
        let Some(secret) = jar.get(SESSION_COOKIE).map(|c| c.value().to_owned()) else {
            return Err(LoginRedirect.into_response());
        };
        match state.store.session(&secret).await {
            Ok(Some(session)) => Ok(UiUser { actor: Actor::user(&session.user), session, lang }),
            Ok(None) => Err(LoginRedirect.into_response()),
            Err(e) => Err(ApiError::from(e).into_response()),
        }
    }
}

impl UiUser {
    /// Checks the CSRF token a form or htmx request sent back.
    pub fn check_csrf(&self, sent: &str) -> ApiResult<()> {
        // Length check first, then a comparison that does not stop at the first difference.
        let a = sent.as_bytes();
        let b = self.session.csrf_token.as_bytes();
        let same = a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0;
        if same {
            Ok(())
        } else {
            Err(ApiError::new(StatusCode::FORBIDDEN, "csrf", "the form has expired; reload the page and try again"))
        }
    }
}
