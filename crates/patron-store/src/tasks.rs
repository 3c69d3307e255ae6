//! Tasks (issue 12 §6): a simple list of things to do — a title, perhaps a customer, an
//! assignee, a due day, done or not. People make them by hand; journeys make them for a
//! customer's account manager (one per journey step and entry, under a unique `source_key`).
//! Account management builds on this later.
//!
//! Who sees what: callers with `all_customers` see every task; others see the tasks assigned
//! to them and the tasks on customers in their scope.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::access::CustomerScope;
use crate::db::{query, Tx};
use crate::users::Actor;
use crate::{audit, Result, Store, StoreError};

/// Longest title.
pub const MAX_TITLE: usize = 200;

/// One task.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Task {
    /// Id.
    pub id: i64,
    /// What to do.
    pub title: String,
    /// The customer it is about.
    pub customer_id: Option<i64>,
    /// The customer's name (when the caller sees the customer).
    pub customer_name: Option<String>,
    /// Who is to do it (a user id).
    pub assignee_id: Option<i64>,
    /// The business day it is due.
    pub due_on: Option<NaiveDate>,
    /// Done.
    pub done: bool,
    /// When it was marked done.
    pub done_at: Option<DateTime<Utc>>,
    /// Who made it (`user:<id>`, `journey:<id>`).
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct TaskRow {
    id: i64,
    title: String,
    customer_id: Option<i64>,
    assignee_id: Option<i64>,
    due_on: Option<String>,
    done: bool,
    done_at: Option<DateTime<Utc>>,
    created_by: String,
    created_at: DateTime<Utc>,
}

impl From<TaskRow> for Task {
    fn from(r: TaskRow) -> Task {
        Task {
            id: r.id,
            title: r.title,
            customer_id: r.customer_id,
            customer_name: None,
            assignee_id: r.assignee_id,
            due_on: r.due_on.and_then(|d| NaiveDate::parse_from_str(&d, "%Y-%m-%d").ok()),
            done: r.done,
            done_at: r.done_at,
            created_by: r.created_by,
            created_at: r.created_at,
        }
    }
}

const TASK_SELECT: &str = "SELECT id, title, customer_id, assignee_id, due_on, done, done_at, created_by, created_at FROM tasks";

/// A task to make.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTask {
    /// What to do (1–200 characters).
    #[schema(min_length = 1, max_length = 200)]
    pub title: String,
    /// The customer it is about (in the caller's scope).
    #[schema(minimum = 1)]
    pub customer_id: Option<i64>,
    /// Who is to do it; the caller when absent.
    #[schema(minimum = 1)]
    pub assignee_id: Option<i64>,
    /// The business day it is due.
    pub due_on: Option<NaiveDate>,
}

/// Changes to a task (absent fields stay).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskPatch {
    /// New title.
    #[schema(min_length = 1, max_length = 200)]
    pub title: Option<String>,
    /// New assignee.
    #[schema(minimum = 1)]
    pub assignee_id: Option<i64>,
    /// New due day.
    pub due_on: Option<NaiveDate>,
    /// Done or not.
    pub done: Option<bool>,
}

/// Which tasks to list.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct TaskFilter {
    /// Only the caller's own.
    pub mine: Option<bool>,
    /// Done or open only.
    pub done: Option<bool>,
    /// One customer's.
    pub customer_id: Option<i64>,
}

fn check_title(t: &str) -> Result<String> {
    let t = t.trim();
    if t.is_empty() || t.chars().count() > MAX_TITLE {
        return Err(StoreError::invalid("title", format!("1 to {MAX_TITLE} characters")));
    }
    Ok(t.to_owned())
}

/// Writes a task in `tx` unless one with `source_key` exists already; returns its id when written.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn insert_task(
    tx: &mut Tx,
    title: &str,
    customer_id: Option<i64>,
    assignee_id: Option<i64>,
    due_on: Option<NaiveDate>,
    created_by: &str,
    source_key: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Option<i64>> {
    let row: Option<(i64,)> = tx
        .fetch_optional(
            query(
                "INSERT INTO tasks (title, customer_id, assignee_id, due_on, done, created_by, source_key, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, FALSE, $5, $6, $7, $7) ON CONFLICT (source_key) DO NOTHING RETURNING id",
            )
            .bind(title.to_owned())
            .bind(customer_id)
            .bind(assignee_id)
            .bind(due_on.map(|d| d.format("%Y-%m-%d").to_string()))
            .bind(created_by.to_owned())
            .bind(source_key.map(str::to_owned))
            .bind(now),
        )
        .await?;
    Ok(row.map(|r| r.0))
}

impl Store {
    async fn check_assignee(&self, id: i64) -> Result<()> {
        let found: Option<(i64,)> =
            self.db.reader().fetch_optional(query("SELECT id FROM users WHERE id = $1 AND disabled_at IS NULL").bind(id)).await?;
        if found.is_none() {
            return Err(StoreError::invalid("assignee_id", format!("no active user {id}")));
        }
        Ok(())
    }

    /// Whether `actor` sees task `t`: every task with `all_customers`, else their own and those
    /// on customers in their scope.
    async fn sees_task(&self, actor: &Actor, t: &Task) -> Result<bool> {
        if CustomerScope::of(actor).is_all() || (t.assignee_id.is_some() && t.assignee_id == actor.user_id) {
            return Ok(true);
        }
        match t.customer_id {
            Some(c) => self.customer_in_scope(actor, c).await,
            None => Ok(false),
        }
    }

    async fn with_names(&self, actor: &Actor, mut tasks: Vec<Task>) -> Result<Vec<Task>> {
        let mut ids: Vec<i64> = tasks.iter().filter_map(|t| t.customer_id).collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.is_empty() {
            return Ok(tasks);
        }
        let engine = self.db.engine();
        let sql = format!(
            "SELECT c.id, c.name FROM customers c WHERE c.id IN ({}) AND c.deleted_at IS NULL AND {}",
            engine.json_ints(1),
            CustomerScope::of(actor).sql("c")
        );
        let names: Vec<(i64, String)> = self.db.reader().fetch_all(query(sql).bind(serde_json::json!(ids))).await?;
        let names: std::collections::HashMap<i64, String> = names.into_iter().collect();
        for t in &mut tasks {
            t.customer_name = t.customer_id.and_then(|c| names.get(&c).cloned());
        }
        Ok(tasks)
    }

    /// Makes a task (audited). The customer must be in the caller's scope; the assignee an
    /// active user (the caller when absent).
    pub async fn create_task(&self, actor: &Actor, t: NewTask) -> Result<Task> {
        let title = check_title(&t.title)?;
        if let Some(c) = t.customer_id {
            if !self.customer_in_scope(actor, c).await? {
                return Err(StoreError::NotFound("customer"));
            }
        }
        let assignee = t.assignee_id.or(actor.user_id);
        if let Some(a) = assignee {
            self.check_assignee(a).await?;
        }
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let id = insert_task(&mut tx, &title, t.customer_id, assignee, t.due_on, &actor.key, None, now)
            .await?
            .ok_or_else(|| StoreError::Internal("task not written".into()))?;
        audit::record(&mut tx, now, &actor.key, "create", "task", Some(id.to_string()), Some(title)).await?;
        tx.commit().await?;
        self.task(actor, id).await
    }

    /// One task the caller sees (NotFound otherwise).
    pub async fn task(&self, actor: &Actor, id: i64) -> Result<Task> {
        let row: Option<TaskRow> = self.db.reader().fetch_optional(query(format!("{TASK_SELECT} WHERE id = $1")).bind(id)).await?;
        let t: Task = row.ok_or(StoreError::NotFound("task"))?.into();
        if !self.sees_task(actor, &t).await? {
            return Err(StoreError::NotFound("task"));
        }
        self.with_names(actor, vec![t]).await?.pop().ok_or(StoreError::NotFound("task"))
    }

    /// The tasks the caller sees, open first by due day (at most 500).
    pub async fn tasks(&self, actor: &Actor, f: &TaskFilter) -> Result<Vec<Task>> {
        let scope = CustomerScope::of(actor);
        let mut sql = format!("{TASK_SELECT} WHERE 1 = 1");
        let mut q_args: Vec<crate::db::Arg> = Vec::new();
        let me = actor.user_id.unwrap_or(0);
        if f.mine.unwrap_or(false) {
            sql.push_str(&format!(" AND assignee_id = {me}"));
        } else if !scope.is_all() {
            sql.push_str(&format!(" AND (assignee_id = {me} OR (customer_id IS NOT NULL AND {}))", scope.sql_for("customer_id")));
        }
        if let Some(d) = f.done {
            q_args.push(d.into());
            sql.push_str(&format!(" AND done = ${}", q_args.len()));
        }
        if let Some(c) = f.customer_id {
            q_args.push(c.into());
            sql.push_str(&format!(" AND customer_id = ${}", q_args.len()));
        }
        sql.push_str(" ORDER BY done, CASE WHEN due_on IS NULL THEN 1 ELSE 0 END, due_on, id LIMIT 500");
        let mut q = query(sql);
        for a in q_args {
            q.push(a);
        }
        let rows: Vec<TaskRow> = self.db.reader().fetch_all(q).await?;
        self.with_names(actor, rows.into_iter().map(Task::from).collect()).await
    }

    /// Changes a task the caller sees (audited): title, assignee, due day, done.
    pub async fn update_task(&self, actor: &Actor, id: i64, p: TaskPatch) -> Result<Task> {
        let current = self.task(actor, id).await?;
        let title = p.title.as_deref().map(check_title).transpose()?;
        if let Some(a) = p.assignee_id {
            self.check_assignee(a).await?;
        }
        let now = self.now();
        let done = p.done.unwrap_or(current.done);
        let done_at = match (current.done, done) {
            (false, true) => Some(now),
            (true, true) => current.done_at,
            _ => None,
        };
        let mut tx = self.db.begin().await?;
        tx.execute(
            query("UPDATE tasks SET title = $1, assignee_id = $2, due_on = $3, done = $4, done_at = $5, updated_at = $6 WHERE id = $7")
                .bind(title.clone().unwrap_or(current.title.clone()))
                .bind(p.assignee_id.or(current.assignee_id))
                .bind(p.due_on.or(current.due_on).map(|d| d.format("%Y-%m-%d").to_string()))
                .bind(done)
                .bind(done_at)
                .bind(now)
                .bind(id),
        )
        .await?;
        let detail = format!("done={done}{}", p.assignee_id.map(|a| format!(" assignee={a}")).unwrap_or_default());
        audit::record(&mut tx, now, &actor.key, "update", "task", Some(id.to_string()), Some(detail)).await?;
        tx.commit().await?;
        self.task(actor, id).await
    }
}
