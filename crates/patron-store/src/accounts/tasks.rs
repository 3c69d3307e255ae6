//! Tasks for account work (issue 19 §2): recurrence, snooze and an outcome. Done as a call,
//! visit or reply, a task on a customer records that contact as an interaction by the caller
//! (a meaningful contact: the cadence's next due day moves on).

use chrono::{Duration, NaiveDate};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::db::query;
use crate::tasks::Task;
use crate::users::Actor;
use crate::{audit, Result, Store, StoreError};

/// Outcomes a task is done with.
pub const OUTCOMES: [&str; 6] = ["call", "visit", "reply", "no_answer", "not_needed", "other"];

/// Finishing a task.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskOutcome {
    /// `call`, `visit`, `reply` (these record the contact), `no_answer`, `not_needed`, `other`.
    #[schema(pattern = "^(call|visit|reply|no_answer|not_needed|other)$")]
    pub outcome: String,
    /// What came of it (at most 2000 characters; kept on the interaction).
    #[schema(max_length = 2000)]
    pub note: Option<String>,
}

/// Snoozing a task or making it recur.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskSchedule {
    /// Snooze to this business day (today or later): the task is due then.
    pub snoozed_until: Option<NaiveDate>,
    /// Repeat every N days (1–3650) once done; 0 stops repeating.
    #[schema(minimum = 0, maximum = 3650)]
    pub recurrence_days: Option<i64>,
}

/// A task with its account-work fields.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AccountTask {
    /// The task.
    #[serde(flatten)]
    pub task: Task,
    /// Repeats every N days once done.
    pub recurrence_days: Option<i64>,
    /// Snoozed to this day.
    pub snoozed_until: Option<NaiveDate>,
    /// What it was done with.
    pub outcome: Option<String>,
    /// The interaction the outcome recorded.
    pub interaction_id: Option<i64>,
    /// The next task a recurrence made.
    pub next_task_id: Option<i64>,
}

impl Store {
    async fn task_extra(&self, id: i64) -> Result<(Option<i64>, Option<NaiveDate>, Option<String>)> {
        let row: Option<(Option<i64>, Option<String>, Option<String>)> = self
            .db
            .reader()
            .fetch_optional(query("SELECT recurrence_days, snoozed_until, outcome FROM tasks WHERE id = $1").bind(id))
            .await?;
        let (r, s, o) = row.ok_or(StoreError::NotFound("task"))?;
        Ok((r, s.and_then(|d| NaiveDate::parse_from_str(&d, "%Y-%m-%d").ok()), o))
    }

    /// A task the caller sees with its account-work fields.
    pub async fn account_task(&self, actor: &Actor, id: i64) -> Result<AccountTask> {
        let task = self.task(actor, id).await?;
        let (recurrence_days, snoozed_until, outcome) = self.task_extra(id).await?;
        Ok(AccountTask { task, recurrence_days, snoozed_until, outcome, interaction_id: None, next_task_id: None })
    }

    /// Snoozes a task (its due day becomes the snooze day) or sets its recurrence (audited).
    pub async fn schedule_task(&self, actor: &Actor, id: i64, s: TaskSchedule) -> Result<AccountTask> {
        let current = self.task(actor, id).await?;
        if s.snoozed_until.is_none() && s.recurrence_days.is_none() {
            return Err(StoreError::invalid("snoozed_until", "give snoozed_until or recurrence_days"));
        }
        if let Some(d) = s.snoozed_until {
            if current.done {
                return Err(StoreError::State("a done task cannot be snoozed".into()));
            }
            if d < self.business_today() {
                return Err(StoreError::invalid("snoozed_until", "must be today or later"));
            }
        }
        if let Some(r) = s.recurrence_days {
            if !(0..=3650).contains(&r) {
                return Err(StoreError::invalid("recurrence_days", "must be 0 to 3650"));
            }
        }
        let now = self.now();
        let mut tx = self.db.begin().await?;
        if let Some(d) = s.snoozed_until {
            let day = d.format("%Y-%m-%d").to_string();
            tx.execute(
                query("UPDATE tasks SET snoozed_until = $1, due_on = $1, updated_at = $2 WHERE id = $3").bind(day).bind(now).bind(id),
            )
            .await?;
        }
        if let Some(r) = s.recurrence_days {
            tx.execute(
                query("UPDATE tasks SET recurrence_days = $1, updated_at = $2 WHERE id = $3").bind((r > 0).then_some(r)).bind(now).bind(id),
            )
            .await?;
        }
        audit::record(&mut tx, now, &actor.key, "schedule", "task", Some(id.to_string()), None).await?;
        tx.commit().await?;
        self.account_task(actor, id).await
    }

    /// Marks a task done with an outcome (audited). A call, visit or reply on a customer
    /// records the contact as an interaction by the caller; a recurring task makes its next
    /// occurrence, due the recurrence's days after today.
    pub async fn complete_task(&self, actor: &Actor, id: i64, o: TaskOutcome) -> Result<AccountTask> {
        let outcome = o.outcome.trim().to_lowercase();
        if !OUTCOMES.contains(&outcome.as_str()) {
            return Err(StoreError::invalid("outcome", format!("outcome must be one of {}", OUTCOMES.join(", "))));
        }
        let note = o.note.as_deref().map(str::trim).filter(|n| !n.is_empty()).map(str::to_owned);
        if note.as_ref().is_some_and(|n| n.chars().count() > 2000) {
            return Err(StoreError::invalid("note", "at most 2000 characters"));
        }
        let current = self.task(actor, id).await?;
        if current.done {
            return Err(StoreError::State("the task is done already".into()));
        }
        let (recurrence, _, _) = self.task_extra(id).await?;
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let n = tx
            .execute(
                query("UPDATE tasks SET done = TRUE, done_at = $1, outcome = $2, updated_at = $1 WHERE id = $3 AND done = FALSE")
                    .bind(now)
                    .bind(outcome.clone())
                    .bind(id),
            )
            .await?;
        if n == 0 {
            return Err(StoreError::State("the task is done already".into()));
        }
        let mut interaction_id = None;
        if let (Some(c), true) = (current.customer_id, ["call", "visit", "reply"].contains(&outcome.as_str())) {
            let live: Option<(i64,)> =
                tx.fetch_optional(query("SELECT id FROM customers WHERE id = $1 AND deleted_at IS NULL").bind(c)).await?;
            if live.is_some() {
                let (iid,): (i64,) = tx
                    .fetch_one(
                        query(
                            "INSERT INTO interactions (customer_id, kind, channel, occurred_at, payload, user_id) \
                             VALUES ($1, $2, 'task', $3, $4, $5) RETURNING id",
                        )
                        .bind(c)
                        .bind(outcome.clone())
                        .bind(now)
                        .bind(note.clone())
                        .bind(actor.user_id),
                    )
                    .await?;
                interaction_id = Some(iid);
            }
        }
        let mut next_task_id = None;
        if let Some(days) = recurrence.filter(|d| *d > 0) {
            let due = self.business_today() + Duration::days(days);
            next_task_id = crate::tasks::insert_task(
                &mut tx,
                &current.title,
                current.customer_id,
                current.assignee_id,
                Some(due),
                &current.created_by,
                Some(&format!("recur:{id}")),
                now,
            )
            .await?;
            if let Some(n) = next_task_id {
                tx.execute(query("UPDATE tasks SET recurrence_days = $1 WHERE id = $2").bind(days).bind(n)).await?;
            }
        }
        audit::record(&mut tx, now, &actor.key, "complete", "task", Some(id.to_string()), Some(format!("outcome={outcome}"))).await?;
        tx.commit().await?;
        let mut t = self.account_task(actor, id).await?;
        t.interaction_id = interaction_id;
        t.next_task_id = next_task_id;
        Ok(t)
    }
}
