//! `/ui/webhooks`: webhooks for administrators — subscribe a URL to event types (the secret is
//! shown once), see each webhook's delivery log, replay a delivery, turn a webhook on or off.

use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use minijinja::context;
use patron_store::users::Role;
use patron_store::webhooks::{NewWebhook, WebhookPatch};
use serde::Deserialize;

use super::{error_page, render};
use crate::auth::{require, UiUser};
use crate::error::{ApiError, Form, Path};
use crate::AppState;

/// Routes of the webhooks pages.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ui/webhooks", get(list).post(create))
        .route("/ui/webhooks/{id}", get(detail))
        .route("/ui/webhooks/{id}/active", post(set_active))
        .route("/ui/webhooks/{id}/delete", post(delete))
        .route("/ui/webhooks/{id}/deliveries/{delivery_id}/replay", post(replay))
}

#[derive(Deserialize)]
struct NewForm {
    csrf: String,
    url: String,
    /// Types separated by commas, spaces or new lines.
    events: String,
    #[serde(default)]
    secret: String,
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
    #[serde(default)]
    active: String,
}

async fn list_page(state: &AppState, user: &UiUser, extra: minijinja::Value) -> Response {
    let ctx = async {
        require(&user.actor, Role::Admin, "manage webhooks")?;
        Ok::<_, ApiError>(context! { section => "webhooks", webhooks => state.store.webhooks().await?, ..extra })
    }
    .await;
    match ctx {
        Ok(ctx) => render(state, "webhooks.html", user.lang, Some(user), ctx),
        Err(e) => error_page(state, user, e),
    }
}

async fn list(State(state): State<AppState>, user: UiUser) -> Response {
    list_page(&state, &user, context! {}).await
}

async fn create(State(state): State<AppState>, user: UiUser, Form(f): Form<NewForm>) -> Response {
    if let Err(e) = user.check_csrf(&f.csrf) {
        return error_page(&state, &user, e);
    }
    if let Err(e) = require(&user.actor, Role::Admin, "manage webhooks") {
        return error_page(&state, &user, e);
    }
    let events: Vec<String> =
        f.events.split([',', ' ', '\n', '\r', '，']).map(str::trim).filter(|e| !e.is_empty()).map(str::to_owned).collect();
    let secret = Some(f.secret.trim().to_owned()).filter(|s| !s.is_empty());
    match state.store.create_webhook(&user.actor, NewWebhook { url: f.url.trim().to_owned(), events, secret }).await {
        // The secret is shown on this page once, never again.
        Ok(created) => list_page(&state, &user, context! { created }).await,
        Err(e) => {
            let e = ApiError::from(e);
            if e.status.is_client_error() {
                list_page(&state, &user, context! { error => e.message, form => context! { url => f.url, events => f.events } }).await
            } else {
                error_page(&state, &user, e)
            }
        }
    }
}

async fn detail(State(state): State<AppState>, user: UiUser, Path(id): Path<i64>) -> Response {
    let ctx = async {
        require(&user.actor, Role::Admin, "manage webhooks")?;
        let webhook = state.store.webhook(id).await?;
        let deliveries = state.store.webhook_deliveries(id, None, None, 200).await?;
        Ok::<_, ApiError>(context! { section => "webhooks", webhook, deliveries })
    }
    .await;
    match ctx {
        Ok(ctx) => render(&state, "webhook.html", user.lang, Some(&user), ctx),
        Err(e) => error_page(&state, &user, e),
    }
}

async fn set_active(State(state): State<AppState>, user: UiUser, Path(id): Path<i64>, Form(f): Form<CsrfForm>) -> Response {
    let done = async {
        user.check_csrf(&f.csrf)?;
        require(&user.actor, Role::Admin, "manage webhooks")?;
        state.store.update_webhook(&user.actor, id, WebhookPatch { active: Some(f.active == "true"), ..Default::default() }).await?;
        Ok::<_, ApiError>(())
    }
    .await;
    match done {
        Ok(()) => Redirect::to(&format!("/ui/webhooks/{id}")).into_response(),
        Err(e) => error_page(&state, &user, e),
    }
}

async fn delete(State(state): State<AppState>, user: UiUser, Path(id): Path<i64>, Form(f): Form<CsrfForm>) -> Response {
    let done = async {
        user.check_csrf(&f.csrf)?;
        require(&user.actor, Role::Admin, "manage webhooks")?;
        state.store.delete_webhook(&user.actor, id).await?;
        Ok::<_, ApiError>(())
    }
    .await;
    match done {
        Ok(()) => Redirect::to("/ui/webhooks").into_response(),
        Err(e) => error_page(&state, &user, e),
    }
}

async fn replay(
    State(state): State<AppState>,
    user: UiUser,
    Path((id, delivery_id)): Path<(i64, i64)>,
    Form(f): Form<CsrfForm>,
) -> Response {
    let done = async {
        user.check_csrf(&f.csrf)?;
        require(&user.actor, Role::Admin, "manage webhooks")?;
        state.store.replay_delivery(&user.actor, id, delivery_id).await?;
        Ok::<_, ApiError>(())
    }
    .await;
    match done {
        Ok(()) => Redirect::to(&format!("/ui/webhooks/{id}")).into_response(),
        Err(e) => error_page(&state, &user, e),
    }
}
