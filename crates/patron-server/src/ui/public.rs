//! The pages customers open from a link, without a login (mobile first): the confirmation of a
//! resolved ticket. A GET only shows the page (mail scanners fetch every link); the answer is a
//! POST. Nothing about the customer is shown beyond the ticket's subject.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use axum_extra::extract::CookieJar;
use minijinja::context;
use patron_store::tickets::flow::ConfirmationAnswer;
use patron_store::StoreError;
use serde::Deserialize;

use super::render;
use crate::error::{Form, Path};
use crate::i18n::Lang;
use crate::AppState;

/// Routes of this module (the caller adds the rate limit).
pub fn router() -> Router<AppState> {
    Router::new().route("/p/confirm/{token}", get(confirm_page).post(confirm))
}

#[derive(Deserialize)]
struct LangParam {
    lang: Option<String>,
}

/// The page's language: `?lang=`, else the cookie, else zh-CN.
fn lang_of(p: &LangParam, jar: &CookieJar) -> Lang {
    match p.lang.as_deref() {
        Some("en") => Lang::En,
        Some("zh") => Lang::Zh,
        _ => Lang::from_jar(jar),
    }
}

/// The page for a link that cannot be answered, with the status that says why.
fn closed(state: &AppState, lang: Lang, e: StoreError) -> Response {
    let (status, message) = match e {
        StoreError::NotFound(_) => (StatusCode::NOT_FOUND, "link_unknown"),
        StoreError::Gone(_) => (StatusCode::GONE, "link_expired"),
        StoreError::State(_) => (StatusCode::CONFLICT, "link_used"),
        other => return crate::error::ApiError::from(other).into_response(),
    };
    let mut res = render(state, "public_confirm.html", lang, None, context! { state => "closed", message });
    *res.status_mut() = status;
    res
}

async fn confirm_page(State(state): State<AppState>, jar: CookieJar, Path(token): Path<String>, Query(p): Query<LangParam>) -> Response {
    let lang = lang_of(&p, &jar);
    match state.store.confirmation_view(&token).await {
        Ok(view) => render(&state, "public_confirm.html", lang, None, context! { state => "open", view, token, lang_code => lang.code() }),
        Err(e) => closed(&state, lang, e),
    }
}

#[derive(Deserialize)]
struct AnswerForm {
    answer: String,
    comment: Option<String>,
}

async fn confirm(State(state): State<AppState>, jar: CookieJar, Path(token): Path<String>, Query(p): Query<LangParam>, Form(f): Form<AnswerForm>) -> Response {
    let lang = lang_of(&p, &jar);
    let confirmed = match f.answer.as_str() {
        "yes" => true,
        "no" => false,
        _ => return (StatusCode::BAD_REQUEST, "answer must be yes or no").into_response(),
    };
    let comment = f.comment.filter(|c| !c.trim().is_empty());
    match state.store.answer_confirmation(&token, ConfirmationAnswer { confirmed, comment }).await {
        Ok(_) => {
            let message = if confirmed { "confirm_thanks_confirmed" } else { "confirm_thanks_reopened" };
            render(&state, "public_confirm.html", lang, None, context! { state => "done", message })
        }
        Err(StoreError::Invalid { message, .. }) => (StatusCode::UNPROCESSABLE_ENTITY, message).into_response(),
        Err(e) => closed(&state, lang, e),
    }
}
