//! `/ui/users`: user administration for holders of `users.admin` (issue 21 §3) — the list with
//! roles, units and two-factor state, a new user, a user's role, units and name, deactivation
//! (its sessions and tokens stop at once), a password reset, a two-factor reset for a lost
//! phone, and the policy of which roles must log in with two factors. Every change goes through
//! the same store functions as `/api/v1/users` and is audited there.

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use minijinja::context;
use patron_store::access::two_factor::TwoFactorPolicy;
use patron_store::access::Permission;
use patron_store::users::{NewUser, UserPatch};

use super::{error_page, render};
use crate::auth::{permit, UiUser};
use crate::error::{ApiError, Path};
use crate::AppState;

/// Routes of the users pages.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ui/users", get(list).post(create))
        .route("/ui/users/two-factor-policy", post(set_policy))
        .route("/ui/users/{id}", get(detail).post(update))
        .route("/ui/users/{id}/active", post(set_active))
        .route("/ui/users/{id}/password", post(reset_password))
        .route("/ui/users/{id}/two-factor", post(reset_two_factor))
}

/// A form's fields, repeated ones (unit and role checkboxes) kept.
struct Fields(Vec<(String, String)>);

impl Fields {
    fn parse(body: &[u8]) -> Result<Fields, ApiError> {
        serde_urlencoded::from_bytes(body).map(Fields).map_err(|_| ApiError::bad_request("body", "an unreadable form"))
    }
    fn one(&self, key: &str) -> String {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()).unwrap_or_default()
    }
    fn all(&self, key: &str) -> Vec<String> {
        self.0.iter().filter(|(k, _)| k == key).map(|(_, v)| v.clone()).collect()
    }
    fn ids(&self, key: &str) -> Result<Vec<i64>, ApiError> {
        self.all(key).iter().map(|v| v.parse().map_err(|_| ApiError::bad_request(key, "not a unit id"))).collect()
    }
}

/// The checks of every write: the form's CSRF token and `users.admin`.
fn guard(user: &UiUser, f: &Fields) -> Result<(), ApiError> {
    user.check_csrf(&f.one("csrf"))?;
    permit(&user.actor, Permission::UsersAdmin)
}

async fn list_page(state: &AppState, user: &UiUser, extra: minijinja::Value) -> Response {
    let ctx = async {
        permit(&user.actor, Permission::UsersAdmin)?;
        let users = state.store.user_infos().await?;
        let units = state.store.units().await?;
        let roles = state.store.roles().await?;
        let policy = state.store.two_factor_policy().await?;
        Ok::<_, ApiError>(context! { section => "users", users, units, roles, policy, ..extra })
    }
    .await;
    match ctx {
        Ok(ctx) => render(state, "users.html", user.lang, Some(user), ctx),
        Err(e) => error_page(state, user, e),
    }
}

async fn list(State(state): State<AppState>, user: UiUser) -> Response {
    list_page(&state, &user, context! {}).await
}

async fn create(State(state): State<AppState>, user: UiUser, body: Bytes) -> Response {
    let result = async {
        let f = Fields::parse(&body)?;
        guard(&user, &f)?;
        let password = Some(f.one("password")).filter(|p| !p.is_empty());
        let input = NewUser { email: f.one("email"), name: f.one("name"), role: f.one("role"), unit_ids: f.ids("unit_ids")?, password };
        Ok::<_, ApiError>(state.store.create_user_as(&user.actor, &input).await?)
    }
    .await;
    match result {
        Ok(u) => Redirect::to(&format!("/ui/users/{}", u.id)).into_response(),
        Err(e) if e.status.is_client_error() && e.code != "csrf" && e.code != "forbidden" => {
            list_page(&state, &user, context! { error => e.message }).await
        }
        Err(e) => error_page(&state, &user, e),
    }
}

async fn detail_page(state: &AppState, user: &UiUser, id: i64, extra: minijinja::Value) -> Response {
    let ctx = async {
        permit(&user.actor, Permission::UsersAdmin)?;
        let u = state.store.user_info(id).await?;
        let units = state.store.units().await?;
        let roles = state.store.roles().await?;
        Ok::<_, ApiError>(context! { section => "users", u, units, roles, ..extra })
    }
    .await;
    match ctx {
        Ok(ctx) => render(state, "users.html", user.lang, Some(user), ctx),
        Err(e) => error_page(state, user, e),
    }
}

async fn detail(State(state): State<AppState>, user: UiUser, Path(id): Path<i64>) -> Response {
    detail_page(&state, &user, id, context! {}).await
}

/// After a change: the user's page again, with the refusal or a note of what was done.
async fn after(state: &AppState, user: &UiUser, id: i64, result: Result<&'static str, ApiError>) -> Response {
    match result {
        Ok(done) => detail_page(state, user, id, context! { done }).await,
        Err(e) if e.status.is_client_error() && e.code != "csrf" && e.code != "forbidden" && e.status.as_u16() != 404 => {
            detail_page(state, user, id, context! { error => e.message }).await
        }
        Err(e) => error_page(state, user, e),
    }
}

async fn update(State(state): State<AppState>, user: UiUser, Path(id): Path<i64>, body: Bytes) -> Response {
    let result = async {
        let f = Fields::parse(&body)?;
        guard(&user, &f)?;
        let patch = UserPatch { role: Some(f.one("role")), unit_ids: Some(f.ids("unit_ids")?), name: Some(f.one("name")), active: None };
        state.store.update_user(&user.actor, id, &patch).await?;
        Ok("saved")
    }
    .await;
    after(&state, &user, id, result).await
}

async fn set_active(State(state): State<AppState>, user: UiUser, Path(id): Path<i64>, body: Bytes) -> Response {
    let result = async {
        let f = Fields::parse(&body)?;
        guard(&user, &f)?;
        let active = f.one("active") == "true";
        state.store.update_user(&user.actor, id, &UserPatch { active: Some(active), ..Default::default() }).await?;
        Ok(if active { "activated" } else { "deactivated" })
    }
    .await;
    after(&state, &user, id, result).await
}

async fn reset_password(State(state): State<AppState>, user: UiUser, Path(id): Path<i64>, body: Bytes) -> Response {
    let result = async {
        let f = Fields::parse(&body)?;
        guard(&user, &f)?;
        state.store.reset_password(&user.actor, id, &f.one("password")).await?;
        Ok("password_reset")
    }
    .await;
    after(&state, &user, id, result).await
}

async fn reset_two_factor(State(state): State<AppState>, user: UiUser, Path(id): Path<i64>, body: Bytes) -> Response {
    let result = async {
        let f = Fields::parse(&body)?;
        guard(&user, &f)?;
        state.store.disable_two_factor(&user.actor, id).await?;
        Ok("two_factor_reset")
    }
    .await;
    after(&state, &user, id, result).await
}

async fn set_policy(State(state): State<AppState>, user: UiUser, body: Bytes) -> Response {
    let result = async {
        let f = Fields::parse(&body)?;
        guard(&user, &f)?;
        state.store.set_two_factor_policy(&user.actor, &TwoFactorPolicy { required_roles: f.all("required_roles") }).await?;
        Ok::<_, ApiError>(())
    }
    .await;
    match result {
        Ok(()) => Redirect::to("/ui/users").into_response(),
        Err(e) if e.status.is_client_error() && e.code != "csrf" && e.code != "forbidden" => {
            list_page(&state, &user, context! { error => e.message }).await
        }
        Err(e) => error_page(&state, &user, e),
    }
}
