//! The pages customers open from a link, without a login (mobile first): the confirmation of a
//! resolved ticket and surveys. A GET only shows the page (mail scanners fetch every link); the
//! answer is a POST. Nothing about the customer is shown beyond the ticket's subject or a
//! greeting with their given name.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use axum_extra::extract::CookieJar;
use minijinja::context;
use patron_store::surveys::answers::AnswerValue;
use patron_store::surveys::{AnswerInput, PublicSurvey};
use patron_store::tickets::flow::ConfirmationAnswer;
use patron_store::StoreError;
use serde::Deserialize;

use super::render;
use crate::error::{Form, Path};
use crate::i18n::Lang;
use crate::AppState;

/// Routes of this module (the caller adds the rate limit).
pub fn router() -> Router<AppState> {
    Router::new().route("/p/confirm/{token}", get(confirm_page).post(confirm)).route("/p/s/{token}", get(survey_page).post(answer_survey))
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
    closed_page(state, "public_confirm.html", lang, e)
}

fn closed_page(state: &AppState, template: &str, lang: Lang, e: StoreError) -> Response {
    let (status, message) = match e {
        StoreError::NotFound(_) => (StatusCode::NOT_FOUND, "link_unknown"),
        StoreError::Gone(_) => (StatusCode::GONE, "link_expired"),
        StoreError::State(_) => (StatusCode::CONFLICT, "link_used"),
        other => return crate::error::ApiError::from(other).into_response(),
    };
    let mut res = render(state, template, lang, None, context! { state => "closed", message });
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

async fn confirm(
    State(state): State<AppState>,
    jar: CookieJar,
    Path(token): Path<String>,
    Query(p): Query<LangParam>,
    Form(f): Form<AnswerForm>,
) -> Response {
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

fn survey_form(state: &AppState, lang: Lang, survey: PublicSurvey, token: &str, error: Option<String>) -> Response {
    let status = if error.is_some() { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
    let mut res =
        render(state, "public_survey.html", lang, None, context! { state => "open", survey, token, error, lang_code => lang.code() });
    *res.status_mut() = status;
    res
}

async fn survey_page(State(state): State<AppState>, jar: CookieJar, Path(token): Path<String>, Query(p): Query<LangParam>) -> Response {
    let lang = lang_of(&p, &jar);
    match state.store.public_survey(&token).await {
        Ok(survey) => survey_form(&state, lang, survey, &token, None),
        Err(e) => closed_page(&state, "public_survey.html", lang, e),
    }
}

/// The form's fields (`q_<key>`, repeated for several choices) as the answers of the survey's
/// questions; the store checks them.
fn answers_of(survey: &PublicSurvey, fields: &[(String, String)]) -> AnswerInput {
    let mut answers = Vec::new();
    for q in &survey.questions {
        let name = format!("q_{}", q.key);
        let values: Vec<&str> = fields.iter().filter(|(k, _)| *k == name).map(|(_, v)| v.as_str()).collect();
        let Some(first) = values.first().copied() else { continue };
        let value = match q.kind.as_str() {
            "nps" | "scale" => first.trim().parse::<i64>().map(serde_json::Value::from).unwrap_or_else(|_| serde_json::Value::from(first)),
            "switch" => serde_json::Value::Bool(first == "yes"),
            "multiple" => serde_json::json!(values),
            "text" if first.trim().is_empty() => continue,
            _ => serde_json::Value::from(first),
        };
        answers.push(AnswerValue { question: q.key.clone(), value });
    }
    AnswerInput { answers }
}

async fn answer_survey(
    State(state): State<AppState>,
    jar: CookieJar,
    Path(token): Path<String>,
    Query(p): Query<LangParam>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let lang = lang_of(&p, &jar);
    let survey = match state.store.public_survey(&token).await {
        Ok(s) => s,
        Err(e) => return closed_page(&state, "public_survey.html", lang, e),
    };
    let input = answers_of(&survey, &fields);
    match state.store.answer_survey(&token, input).await {
        Ok(a) => {
            let message = if a.ticket_id.is_some() { "survey_thanks_sorry" } else { "survey_thanks" };
            render(&state, "public_survey.html", lang, None, context! { state => "done", message })
        }
        Err(StoreError::Invalid { message, .. }) => survey_form(&state, lang, survey, &token, Some(message)),
        Err(e) => closed_page(&state, "public_survey.html", lang, e),
    }
}
