//! Surveys in the web UI: the list with the builder (built-in NPS, CSAT and listen surveys, or
//! custom questions one per line; a trigger), a survey's results (NPS, CSAT, response rate, the
//! score distribution and monthly trend as charts, keywords of the open answers, a breakdown by
//! tier, segment, store or agent), invitations by hand with their links shown once, pausing;
//! and the churn reason recorded from the customer 360.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::Duration;
use minijinja::context;
use patron_store::service::churn::ChurnReasonInput;
use patron_store::service::reports::Period;
use patron_store::surveys::{InvitationRequest, NewSurvey, Question, SurveyPatch, Trigger, QUESTION_TYPES};
use patron_store::users::Role;
use serde::Deserialize;

use super::analytics::script_json;
use super::{error_page, render};
use crate::api::tickets::public_base;
use crate::auth::{check_customer_access, require, UiUser};
use crate::error::{ApiError, Form, Path, Query};
use crate::i18n::labels;
use crate::AppState;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ui/surveys", get(list).post(create))
        .route("/ui/surveys/{id}", get(results))
        .route("/ui/surveys/{id}/invite", post(invite))
        .route("/ui/surveys/{id}/active", post(set_active))
        .route("/ui/customers/{id}/churn-reason", post(churn_reason))
}

async fn list_page(state: &AppState, user: &UiUser, error: Option<String>) -> Response {
    let ctx = async {
        require(&user.actor, Role::Manager, "manage surveys")?;
        let surveys = state.store.surveys().await?;
        let segments = state.store.segments().await?;
        Ok::<_, ApiError>(context! { surveys, segments, error, question_types => QUESTION_TYPES })
    }
    .await;
    match ctx {
        Ok(ctx) => render(state, "surveys.html", user.lang, Some(user), ctx),
        Err(e) => error_page(state, user, e),
    }
}

async fn list(State(state): State<AppState>, user: UiUser) -> Response {
    list_page(&state, &user, None).await
}

#[derive(Deserialize)]
struct NewSurveyForm {
    csrf: String,
    name: String,
    kind: String,
    #[serde(default)]
    questions: String,
    ask_switch: Option<String>,
    trigger: String,
    #[serde(default)]
    days: String,
    #[serde(default)]
    segment: String,
    #[serde(default)]
    every_days: String,
    expires_days: String,
    recontact_days: String,
}

/// A number field: empty is none, anything else must parse.
fn number(field: &str, v: &str) -> Result<Option<i64>, ApiError> {
    let v = v.trim();
    if v.is_empty() {
        return Ok(None);
    }
    v.parse().map(Some).map_err(|_| ApiError::bad_request(field, format!("{field}: not a whole number")))
}

/// The builder's questions, one per line: `type | question | option; option` (`type` one of
/// nps, scale, single, multiple, text, switch; a `*` after it makes the question required).
fn parse_questions(text: &str) -> Result<Vec<Question>, ApiError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().map(str::trim).filter(|l| !l.is_empty()).enumerate() {
        let mut parts = line.splitn(3, '|').map(str::trim);
        let kind = parts.next().unwrap_or_default();
        let (kind, required) = match kind.strip_suffix('*') {
            Some(k) => (k.trim(), true),
            None => (kind, false),
        };
        let text = parts.next().filter(|t| !t.is_empty()).map(str::to_owned);
        let options = parts
            .next()
            .map(|o| o.split([';', '；']).map(str::trim).filter(|o| !o.is_empty()).map(str::to_owned).collect())
            .unwrap_or_default();
        out.push(Question { key: format!("q{}", i + 1), kind: kind.to_owned(), text, options, required });
    }
    Ok(out)
}

async fn create(State(state): State<AppState>, user: UiUser, Form(f): Form<NewSurveyForm>) -> Response {
    if let Err(e) = user.check_csrf(&f.csrf) {
        return error_page(&state, &user, e);
    }
    let built = async {
        let trigger = match f.trigger.as_str() {
            "" | "none" => None,
            on => Some(Trigger {
                on: on.to_owned(),
                days: if on == "order_completed" { number("days", &f.days)? } else { None },
                segment: if on == "periodic" { Some(f.segment.clone()) } else { None },
                every_days: if on == "periodic" { number("every_days", &f.every_days)? } else { None },
            }),
        };
        let questions = if f.kind == "custom" { Some(parse_questions(&f.questions)?) } else { None };
        let new = NewSurvey {
            name: f.name.clone(),
            kind: f.kind.clone(),
            questions,
            ask_switch: f.ask_switch.is_some(),
            trigger,
            recontact_days: number("recontact_days", &f.recontact_days)?,
            expires_days: number("expires_days", &f.expires_days)?.unwrap_or(14),
        };
        Ok::<_, ApiError>(state.store.create_survey(&user.actor, new).await?)
    }
    .await;
    match built {
        Ok(s) => Redirect::to(&format!("/ui/surveys/{}", s.id)).into_response(),
        Err(e) if e.status.is_client_error() && e.status != axum::http::StatusCode::FORBIDDEN => {
            list_page(&state, &user, Some(e.message)).await
        }
        Err(e) => error_page(&state, &user, e),
    }
}

#[derive(Deserialize)]
struct ResultsQuery {
    by: Option<String>,
}

async fn results_page(state: &AppState, user: &UiUser, id: i64, by: Option<String>, extra: minijinja::Value) -> Response {
    let ctx = async {
        require(&user.actor, Role::Manager, "see survey results")?;
        let survey = state.store.survey(id).await?;
        let tz = state.store.config.business_tz;
        let today = state.store.now().with_timezone(&tz).date_naive();
        let period = Period::days(&tz, today - Duration::days(364), today)?;
        let by = by.filter(|b| patron_store::surveys::results::GROUPINGS.contains(&b.as_str())).unwrap_or_else(|| "tier".into());
        let r = state.store.survey_results(id, period, Some(&by)).await?;
        let segments = state.store.segments().await?;
        let t = labels(user.lang);
        let chart = script_json(&serde_json::json!({
            "labels": { "answers": t.get("answers"), "nps": "NPS", "csat": t.get("csat_mean") },
            "values": r.distribution.iter().map(|v| v.value).collect::<Vec<_>>(),
            "counts": r.distribution.iter().map(|v| v.count).collect::<Vec<_>>(),
            "nps_scale": survey.questions.iter().any(|q| q.kind == "nps"),
            "months": r.trend.iter().map(|m| m.month.clone()).collect::<Vec<_>>(),
            "trend_nps": r.trend.iter().map(|m| m.nps.map(|v| (v * 10.0).round() / 10.0)).collect::<Vec<_>>(),
            "trend_csat": r.trend.iter().map(|m| m.csat_mean.map(|v| (v * 100.0).round() / 100.0)).collect::<Vec<_>>(),
        }));
        Ok::<_, ApiError>(context! { survey, r, by, chart, segments, ..extra })
    }
    .await;
    match ctx {
        Ok(ctx) => render(state, "survey.html", user.lang, Some(user), ctx),
        Err(e) => error_page(state, user, e),
    }
}

async fn results(State(state): State<AppState>, user: UiUser, Path(id): Path<i64>, Query(q): Query<ResultsQuery>) -> Response {
    results_page(&state, &user, id, q.by, context! {}).await
}

#[derive(Deserialize)]
struct InviteForm {
    csrf: String,
    #[serde(default)]
    customer_ids: String,
    #[serde(default)]
    segment: String,
}

async fn invite(
    State(state): State<AppState>,
    user: UiUser,
    Path(id): Path<i64>,
    headers: HeaderMap,
    Form(f): Form<InviteForm>,
) -> Response {
    if let Err(e) = user.check_csrf(&f.csrf) {
        return error_page(&state, &user, e);
    }
    let done = async {
        require(&user.actor, Role::Manager, "invite to surveys")?;
        let req = if f.segment.trim().is_empty() {
            let ids: Result<Vec<i64>, _> =
                f.customer_ids.split([',', ' ', '\n', '，']).map(str::trim).filter(|s| !s.is_empty()).map(str::parse).collect();
            InvitationRequest {
                customer_ids: Some(ids.map_err(|_| ApiError::bad_request("customer_ids", "customer ids are numbers separated by commas"))?),
                segment: None,
            }
        } else {
            InvitationRequest { customer_ids: None, segment: Some(f.segment.trim().to_owned()) }
        };
        let mut out = state.store.invite(&user.actor, id, req).await?;
        let base = public_base(&state, &headers);
        for i in &mut out.invited {
            i.url = format!("{base}/p/s/{}", i.token);
        }
        Ok::<_, ApiError>(out)
    }
    .await;
    match done {
        Ok(invited) => results_page(&state, &user, id, None, context! { invited }).await,
        Err(e) if e.status.is_client_error() && e.status != axum::http::StatusCode::FORBIDDEN => {
            results_page(&state, &user, id, None, context! { invite_error => e.message }).await
        }
        Err(e) => error_page(&state, &user, e),
    }
}

#[derive(Deserialize)]
struct ActiveForm {
    csrf: String,
    active: String,
}

async fn set_active(State(state): State<AppState>, user: UiUser, Path(id): Path<i64>, Form(f): Form<ActiveForm>) -> Response {
    if let Err(e) = user.check_csrf(&f.csrf) {
        return error_page(&state, &user, e);
    }
    if let Err(e) = require(&user.actor, Role::Manager, "change surveys") {
        return error_page(&state, &user, e);
    }
    match state.store.update_survey(&user.actor, id, SurveyPatch { active: Some(f.active == "true"), ..Default::default() }).await {
        Ok(_) => Redirect::to(&format!("/ui/surveys/{id}")).into_response(),
        Err(e) => error_page(&state, &user, e.into()),
    }
}

#[derive(Deserialize)]
struct ChurnForm {
    csrf: String,
    reason: String,
    #[serde(default)]
    note: String,
}

async fn churn_reason(State(state): State<AppState>, user: UiUser, Path(id): Path<i64>, Form(f): Form<ChurnForm>) -> Response {
    if let Err(e) = user.check_csrf(&f.csrf) {
        return error_page(&state, &user, e);
    }
    let done = async {
        check_customer_access(&state, &user.actor, id).await?;
        let note = Some(f.note.clone()).filter(|n| !n.trim().is_empty());
        state.store.set_churn_reason(&user.actor, id, ChurnReasonInput { reason: f.reason.clone(), source: None, note }).await?;
        Ok::<_, ApiError>(())
    }
    .await;
    match done {
        Ok(()) => Redirect::to(&format!("/ui/customers/{id}#churn-card")).into_response(),
        Err(e) => error_page(&state, &user, e),
    }
}
