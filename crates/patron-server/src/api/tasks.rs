//! `/api/v1/tasks`: a simple list of things to do (title, customer, assignee, due day, done).
//! Callers see every task with `all_customers`, otherwise their own and those on customers in
//! their scope (issue 12 §6).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, patch};
use axum::Router;
use patron_store::tasks::{NewTask, Task, TaskFilter, TaskPatch};
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::Auth;
use crate::error::{ApiResult, Json, Path, Query};
use crate::AppState;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new().route("/tasks", get(list).post(create)).route("/tasks/{id}", patch(update))
}

/// The tasks the caller sees.
#[derive(Serialize, ToSchema)]
pub struct TaskList {
    /// Open first, by due day (at most 500).
    pub items: Vec<Task>,
}

/// Lists the tasks the caller sees (`mine=true`: only those assigned to the caller).
#[utoipa::path(get, path = "/api/v1/tasks", tag = "tasks",
    params(("mine" = Option<bool>, Query, description = "only the caller's own"),
        ("done" = Option<bool>, Query, description = "done or open only"),
        ("customer_id" = Option<i64>, Query, description = "one customer's")),
    responses((status = 200, body = TaskList)))]
pub async fn list(State(state): State<AppState>, Auth(actor): Auth, Query(f): Query<TaskFilter>) -> ApiResult<Json<TaskList>> {
    Ok(Json(TaskList { items: state.store.tasks(&actor, &f).await? }))
}

/// Makes a task (the customer in the caller's scope; the assignee an active user, the caller
/// when absent).
#[utoipa::path(post, path = "/api/v1/tasks", tag = "tasks", request_body = NewTask,
    responses((status = 201, body = Task), (status = 404, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn create(State(state): State<AppState>, Auth(actor): Auth, Json(t): Json<NewTask>) -> ApiResult<(StatusCode, Json<Task>)> {
    Ok((StatusCode::CREATED, Json(state.store.create_task(&actor, t).await?)))
}

/// Changes a task the caller sees: title, assignee, due day, done.
#[utoipa::path(patch, path = "/api/v1/tasks/{id}", tag = "tasks", params(("id" = i64, Path, description = "task id")),
    request_body = TaskPatch, responses((status = 200, body = Task), (status = 404, body = crate::error::ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<i64>,
    Json(p): Json<TaskPatch>,
) -> ApiResult<Json<Task>> {
    Ok(Json(state.store.update_task(&actor, id, p).await?))
}
