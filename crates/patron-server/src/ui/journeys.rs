//! `/ui/tasks` ("my tasks": open first, mark done, add one) and `/ui/journeys` (the list, a new
//! journey with a step editor as a plain form — one row per step, no drag and drop — and each
//! journey's steps and report with the goal's lift).

use std::collections::HashMap;

use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::NaiveDate;
use minijinja::context;
use patron_store::access::Permission;
use patron_store::journeys::{NewJourney, Step, EVENT_KINDS};
use patron_store::tasks::{NewTask, TaskFilter, TaskPatch};
use serde::Deserialize;

use super::{error_page, render};
use crate::auth::{permit, UiUser};
use crate::error::{ApiError, Form, Path};
use crate::AppState;

/// Rows of the step editor.
const STEP_ROWS: usize = 10;

/// Routes of the tasks and journeys pages.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ui/tasks", get(tasks).post(create_task))
        .route("/ui/tasks/{id}/done", post(task_done))
        .route("/ui/journeys", get(journeys).post(create_journey))
        .route("/ui/journeys/{id}", get(journey))
        .route("/ui/journeys/{id}/enabled", post(set_enabled))
}

#[derive(Deserialize)]
struct TaskForm {
    csrf: String,
    title: String,
    #[serde(default)]
    due_on: String,
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
    #[serde(default)]
    value: String,
}

async fn tasks_page(state: &AppState, user: &UiUser, extra: minijinja::Value) -> Response {
    let ctx = async {
        let mine = state.store.tasks(&user.actor, &TaskFilter { mine: Some(true), ..Default::default() }).await?;
        Ok::<_, ApiError>(context! { section => "tasks", tasks => mine, ..extra })
    }
    .await;
    match ctx {
        Ok(ctx) => render(state, "tasks.html", user.lang, Some(user), ctx),
        Err(e) => error_page(state, user, e),
    }
}

async fn tasks(State(state): State<AppState>, user: UiUser) -> Response {
    tasks_page(&state, &user, context! {}).await
}

async fn create_task(State(state): State<AppState>, user: UiUser, Form(f): Form<TaskForm>) -> Response {
    if let Err(e) = user.check_csrf(&f.csrf) {
        return error_page(&state, &user, e);
    }
    let due_on = NaiveDate::parse_from_str(f.due_on.trim(), "%Y-%m-%d").ok();
    let t = NewTask { title: f.title.clone(), customer_id: None, assignee_id: None, due_on };
    match state.store.create_task(&user.actor, t).await {
        Ok(_) => Redirect::to("/ui/tasks").into_response(),
        Err(e) => {
            let e = ApiError::from(e);
            if e.status.is_client_error() {
                tasks_page(&state, &user, context! { error => e.message }).await
            } else {
                error_page(&state, &user, e)
            }
        }
    }
}

async fn task_done(State(state): State<AppState>, user: UiUser, Path(id): Path<i64>, Form(f): Form<CsrfForm>) -> Response {
    let done = async {
        user.check_csrf(&f.csrf)?;
        state.store.update_task(&user.actor, id, TaskPatch { done: Some(f.value != "false"), ..Default::default() }).await?;
        Ok::<_, ApiError>(())
    }
    .await;
    match done {
        Ok(()) => Redirect::to("/ui/tasks").into_response(),
        Err(e) => error_page(&state, &user, e),
    }
}

async fn journeys_page(state: &AppState, user: &UiUser, extra: minijinja::Value) -> Response {
    let ctx = async {
        permit(&user.actor, Permission::JourneysManage)?;
        let journeys = state.store.journeys().await?;
        let mut reports = Vec::new();
        for j in &journeys {
            reports.push(state.store.journey_report(j.id).await?);
        }
        let templates = state.store.templates().await?;
        let kinds: Vec<_> = EVENT_KINDS.iter().map(|k| context! { name => k.0, about => k.2 }).collect();
        Ok::<_, ApiError>(
            context! { section => "journeys", journeys, reports, templates, kinds, rows => (0..STEP_ROWS).collect::<Vec<_>>(), ..extra },
        )
    }
    .await;
    match ctx {
        Ok(ctx) => render(state, "journeys.html", user.lang, Some(user), ctx),
        Err(e) => error_page(state, user, e),
    }
}

async fn journeys(State(state): State<AppState>, user: UiUser) -> Response {
    journeys_page(&state, &user, context! {}).await
}

/// Reads the step editor's rows (`s{i}_type`, `s{i}_days` …); empty rows are skipped.
fn steps_of(f: &HashMap<String, String>) -> Result<Vec<Step>, String> {
    let get = |i: usize, k: &str| f.get(&format!("s{i}_{k}")).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    let num = |i: usize, k: &str| -> Result<Option<i64>, String> {
        get(i, k).map(|v| v.parse::<i64>().map_err(|_| format!("step {}: {k} is not a number", i + 1))).transpose()
    };
    let mut steps = Vec::new();
    for i in 0..STEP_ROWS {
        let Some(kind) = get(i, "type") else { continue };
        let step = match kind.as_str() {
            "wait" => Step::Wait { hours: num(i, "hours")?.unwrap_or(0), days: num(i, "days")?.unwrap_or(0) },
            "condition" => Step::Condition {
                rule: get(i, "rule").unwrap_or_default(),
                yes: num(i, "yes")?.map(|v| usize::try_from(v).unwrap_or(usize::MAX)),
                no: num(i, "no")?.map(|v| usize::try_from(v).unwrap_or(usize::MAX)),
            },
            "send" => {
                Step::Send { template_id: num(i, "template")?.unwrap_or(0), channel: get(i, "channel").unwrap_or("preferred".into()) }
            }
            "task" => Step::Task { title: get(i, "title").unwrap_or_default(), due_days: num(i, "days")?.unwrap_or(0) },
            "tag" => Step::Tag { add: get(i, "add"), remove: get(i, "remove") },
            "exit" => Step::Exit,
            other => return Err(format!("step {}: unknown type {other}", i + 1)),
        };
        steps.push(step);
    }
    Ok(steps)
}

async fn create_journey(State(state): State<AppState>, user: UiUser, Form(f): Form<HashMap<String, String>>) -> Response {
    if let Err(e) = user.check_csrf(f.get("csrf").map(String::as_str).unwrap_or("")) {
        return error_page(&state, &user, e);
    }
    if let Err(e) = permit(&user.actor, Permission::JourneysManage) {
        return error_page(&state, &user, e);
    }
    let text = |k: &str| f.get(k).map(|v| v.trim().to_owned()).unwrap_or_default();
    let made = async {
        let steps = steps_of(&f).map_err(|m| ApiError::from(patron_store::StoreError::invalid("steps", m)))?;
        let holdout_percent = text("holdout_percent").parse::<f64>().unwrap_or(0.0);
        let reentry_days = text("reentry_days").parse::<i64>().ok();
        let goal = Some(text("goal")).filter(|g| !g.is_empty());
        let j = NewJourney { name: text("name"), trigger: text("trigger"), goal, steps, holdout_percent, reentry_days };
        Ok::<_, ApiError>(state.store.create_journey(&user.actor, j).await?)
    }
    .await;
    match made {
        Ok(j) => Redirect::to(&format!("/ui/journeys/{}", j.id)).into_response(),
        Err(e) if e.status.is_client_error() => journeys_page(&state, &user, context! { error => e.message, form => f }).await,
        Err(e) => error_page(&state, &user, e),
    }
}

async fn journey(State(state): State<AppState>, user: UiUser, Path(id): Path<i64>) -> Response {
    let ctx = async {
        permit(&user.actor, Permission::JourneysManage)?;
        let journey = state.store.journey(id).await?;
        let report = state.store.journey_report(id).await?;
        let steps: Vec<_> = journey
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| context! { n => i, step => serde_json::to_value(s).unwrap_or_default() })
            .collect();
        Ok::<_, ApiError>(context! { section => "journeys", journey, report, steps })
    }
    .await;
    match ctx {
        Ok(ctx) => render(&state, "journey.html", user.lang, Some(&user), ctx),
        Err(e) => error_page(&state, &user, e),
    }
}

async fn set_enabled(State(state): State<AppState>, user: UiUser, Path(id): Path<i64>, Form(f): Form<CsrfForm>) -> Response {
    let done = async {
        user.check_csrf(&f.csrf)?;
        permit(&user.actor, Permission::JourneysManage)?;
        state.store.set_journey_enabled(&user.actor, id, f.value == "true").await?;
        Ok::<_, ApiError>(())
    }
    .await;
    match done {
        Ok(()) => Redirect::to(&format!("/ui/journeys/{id}")).into_response(),
        Err(e) => error_page(&state, &user, e),
    }
}
