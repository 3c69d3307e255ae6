//! The journeys' scheduler work: entries and goals from the events table (each journey reads
//! from its own cursor; the cursor only passes events older than a minute, so an event whose
//! transaction committed late is read on the next round — reading one twice is harmless, the
//! keys below make it a no-op), then the steps that are due.
//!
//! Exactly once: an entry is keyed by (customer, journey, trigger event) and by (customer,
//! journey, active) — at most one running entry per customer and journey. A step is done in one
//! transaction with the entry's row locked and its position checked again, and moves the
//! position on; its message is keyed `journey:<journey>:<entry>:<step>` in the outbox and its
//! task by the same source key. Two schedulers or a rerun find the step done.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::types::Json;
use utoipa::ToSchema;

use super::{event_type, JourneyRow, Step, JOURNEY_SELECT};
use crate::db::{query, Tx};
use crate::engagement::outbox::{enqueue, NewMessage};
use crate::engagement::Channel;
use crate::events::Event;
use crate::users::Actor;
use crate::{Result, Store, StoreError};

/// Events younger than this may still be joined by ones with smaller ids (transactions that
/// committed late): the cursor waits for them.
const SETTLED: Duration = Duration::minutes(1);

/// What one round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct JourneyRunReport {
    /// Entries made.
    pub entered: u64,
    /// Entries ended by their goal.
    pub reached_goal: u64,
    /// Steps done.
    pub steps: u64,
    /// Messages put in the outbox (held-out ones as skipped).
    pub messages: u64,
    /// Tasks made.
    pub tasks: u64,
}

#[derive(serde::Deserialize, sqlx::FromRow)]
struct EntryRow {
    customer_id: i64,
    id: i64,
    journey_id: i64,
    grp: String,
    status: String,
    step: i64,
    next_at: DateTime<Utc>,
    #[serde(deserialize_with = "crate::db::direct::json_text")]
    log: Json<Vec<serde_json::Value>>,
}

#[derive(serde::Deserialize, sqlx::FromRow)]
struct EventRow {
    id: i64,
    kind: String,
    customer_id: i64,
    subject_id: Option<i64>,
    #[serde(deserialize_with = "crate::db::direct::json_text")]
    payload: Json<serde_json::Value>,
    occurred_at: DateTime<Utc>,
}

/// Appends what step `step` did to an entry's log.
fn note(log: &mut Vec<serde_json::Value>, step: usize, now: DateTime<Utc>, kind: &str, detail: serde_json::Value) {
    log.push(serde_json::json!({"step": step, "kind": kind, "at": now, "detail": detail}));
}

/// Whether an event of `kind`'s type is one of that kind (`first_order` reads the customer's
/// earlier events).
async fn is_kind(store: &Store, kind: &str, e: &Event) -> Result<bool> {
    if event_type(kind) != Some(e.kind.as_str()) {
        return Ok(false);
    }
    let completed = || e.payload.get("status").and_then(|v| v.as_str()) == Some("completed");
    Ok(match kind {
        "order_completed" => completed(),
        "first_order" => {
            if !completed() {
                return Ok(false);
            }
            let earlier: Vec<(Json<serde_json::Value>,)> = store
                .db
                .reader()
                .fetch_all(
                    query("SELECT payload FROM events WHERE customer_id = $1 AND type = 'order.created' AND id < $2")
                        .bind(e.customer_id)
                        .bind(e.id),
                )
                .await?;
            !earlier.iter().any(|(p,)| p.0.get("status").and_then(|v| v.as_str()) == Some("completed"))
        }
        "complaint_confirmed" => e.payload.get("kind").and_then(|v| v.as_str()) == Some("complaint"),
        "survey_detractor" => e.payload.get("nps").and_then(|v| v.as_i64()).is_some_and(|n| n <= 6),
        _ => true,
    })
}

/// Whether entry `entry` of this journey falls in its holdout: the first 8 bytes of
/// SHA-256("journey:<id>:<customer>:<trigger event>") as a fraction of 2⁶⁴, below the share.
pub fn in_holdout(journey_id: i64, customer_id: i64, trigger_event_id: i64, percent: f64) -> bool {
    let h = Sha256::digest(format!("journey:{journey_id}:{customer_id}:{trigger_event_id}").as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&h[..8]);
    (u64::from_be_bytes(b) as f64 / 18_446_744_073_709_551_616.0) < percent / 100.0
}

impl Store {
    /// One scheduler round for the journeys: entries and goals from the events, then the due
    /// steps. Safe to run from several schedulers at once and to repeat.
    pub async fn run_journeys(&self) -> Result<JourneyRunReport> {
        let now = self.now();
        let mut report = JourneyRunReport::default();
        let journeys: Vec<JourneyRow> = self.db.reader().fetch_all(query(format!("{JOURNEY_SELECT} WHERE enabled ORDER BY id"))).await?;
        for j in &journeys {
            self.follow_journey_events(j, now, &mut report).await?;
        }
        self.advance_due_entries(&journeys, now, &mut report).await?;
        Ok(report)
    }

    async fn follow_journey_events(&self, j: &JourneyRow, now: DateTime<Utc>, report: &mut JourneyRunReport) -> Result<()> {
        let mut types: Vec<&str> = Vec::new();
        for k in std::iter::once(j.trigger_kind.as_str()).chain(j.goal_kind.as_deref()) {
            if let Some(t) = event_type(k) {
                if !types.contains(&t) {
                    types.push(t);
                }
            }
        }
        if types.is_empty() {
            return Ok(());
        }
        let list = serde_json::json!(types);
        let mut after = j.event_cursor;
        let mut cursor = j.event_cursor;
        let mut settled = true;
        'pages: loop {
            let rows: Vec<EventRow> = self
                .db
                .reader()
                .fetch_all(
                    query(format!(
                        "SELECT id, type AS kind, customer_id, subject_id, payload, occurred_at FROM events \
                         WHERE id > $1 AND type IN ({}) ORDER BY id LIMIT 500",
                        self.db.engine().json_strings(2)
                    ))
                    .bind(after)
                    .bind(list.clone()),
                )
                .await?;
            let full = rows.len() == 500;
            for r in rows {
                let e = Event {
                    id: r.id,
                    kind: r.kind,
                    customer_id: r.customer_id,
                    subject_id: r.subject_id,
                    payload: r.payload.0,
                    occurred_at: r.occurred_at,
                };
                if e.occurred_at > now {
                    break 'pages;
                }
                after = e.id;
                if settled && e.occurred_at <= now - SETTLED {
                    cursor = e.id;
                } else {
                    settled = false;
                }
                if let Some(goal) = &j.goal_kind {
                    if is_kind(self, goal, &e).await? && self.reach_goal(j, &e).await? {
                        report.reached_goal += 1;
                    }
                }
                if is_kind(self, &j.trigger_kind, &e).await? && self.enter(j, &e).await? {
                    report.entered += 1;
                }
            }
            if !full {
                break;
            }
        }
        if cursor > j.event_cursor {
            let mut tx = self.db.begin().await?;
            tx.execute(query("UPDATE journeys SET event_cursor = $1 WHERE id = $2 AND event_cursor < $1").bind(cursor).bind(j.id)).await?;
            tx.commit().await?;
        }
        Ok(())
    }

    /// Ends the customer's running entry (entered before the event) as reached its goal.
    async fn reach_goal(&self, j: &JourneyRow, e: &Event) -> Result<bool> {
        let mut tx = self.db.begin().await?;
        let n = tx
            .execute(
                query(
                    "UPDATE journey_entries SET status = 'goal', active = NULL, ended_at = $1 \
                     WHERE customer_id = $2 AND journey_id = $3 AND active = 1 AND trigger_event_id < $4",
                )
                .bind(e.occurred_at)
                .bind(e.customer_id)
                .bind(j.id)
                .bind(e.id),
            )
            .await?;
        if n > 0 {
            crate::events::append(
                &mut tx,
                e.customer_id,
                "journey.goal",
                Some(j.id),
                serde_json::json!({"journey_id": j.id, "event_id": e.id}),
                e.occurred_at,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(n > 0)
    }

    /// Enters the customer, unless they are in the journey now, or the re-entry rule says no,
    /// or this event entered them already.
    async fn enter(&self, j: &JourneyRow, e: &Event) -> Result<bool> {
        let mut tx = self.db.begin().await?;
        let live: Option<(i64,)> = tx
            .fetch_optional(
                query(format!("SELECT id FROM customers WHERE id = $1 AND deleted_at IS NULL{}", tx.engine().row_lock()))
                    .bind(e.customer_id),
            )
            .await?;
        if live.is_none() {
            tx.rollback().await?;
            return Ok(false);
        }
        let (count, last): (i64, Option<DateTime<Utc>>) = tx
            .fetch_one(
                query("SELECT COUNT(*), MAX(entered_at) FROM journey_entries WHERE customer_id = $1 AND journey_id = $2")
                    .bind(e.customer_id)
                    .bind(j.id),
            )
            .await?;
        let allowed = match (count, j.reentry_days, last) {
            (0, _, _) => true,
            (_, None, _) => false,
            (_, Some(days), Some(last)) => e.occurred_at >= last + Duration::days(days),
            (_, Some(_), None) => true,
        };
        if !allowed {
            tx.rollback().await?;
            return Ok(false);
        }
        let grp = if in_holdout(j.id, e.customer_id, e.id, j.holdout_percent) { "holdout" } else { "treated" };
        let row: Option<(i64,)> = tx
            .fetch_optional(
                query(
                    "INSERT INTO journey_entries (customer_id, journey_id, trigger_event_id, grp, status, active, step, next_at, log, entered_at) \
                     VALUES ($1, $2, $3, $4, 'active', 1, 0, $5, $6, $5) ON CONFLICT DO NOTHING RETURNING id",
                )
                .bind(e.customer_id)
                .bind(j.id)
                .bind(e.id)
                .bind(grp)
                .bind(e.occurred_at)
                .bind(serde_json::json!([])),
            )
            .await?;
        let Some((entry,)) = row else {
            tx.rollback().await?;
            return Ok(false);
        };
        crate::events::append(
            &mut tx,
            e.customer_id,
            "journey.entered",
            Some(j.id),
            serde_json::json!({"journey_id": j.id, "entry_id": entry, "group": grp, "trigger_event_id": e.id}),
            e.occurred_at,
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn advance_due_entries(&self, journeys: &[JourneyRow], now: DateTime<Utc>, report: &mut JourneyRunReport) -> Result<()> {
        loop {
            let due: Vec<(i64, i64, i64)> = self
                .db
                .reader()
                .fetch_all(
                    query(
                        "SELECT customer_id, id, journey_id FROM journey_entries WHERE status = 'active' AND next_at <= $1 \
                         ORDER BY next_at, id LIMIT 500",
                    )
                    .bind(now),
                )
                .await?;
            let mut progressed = false;
            let full = due.len() == 500;
            for (customer_id, id, journey_id) in due {
                let Some(j) = journeys.iter().find(|j| j.id == journey_id) else { continue };
                if self.advance(j, customer_id, id, now, report).await? {
                    progressed = true;
                }
            }
            if !(full && progressed) {
                return Ok(());
            }
        }
    }

    /// Does the due steps of one entry in one transaction; false when another scheduler had
    /// done them.
    async fn advance(&self, j: &JourneyRow, customer_id: i64, id: i64, now: DateTime<Utc>, report: &mut JourneyRunReport) -> Result<bool> {
        let mut tx = self.db.begin().await?;
        let engine = tx.engine();
        let row: Option<EntryRow> = tx
            .fetch_optional(
                query(format!(
                    "SELECT customer_id, id, journey_id, grp, status, step, next_at, log FROM journey_entries \
                     WHERE customer_id = $1 AND id = $2{}",
                    engine.row_lock()
                ))
                .bind(customer_id)
                .bind(id),
            )
            .await?;
        let Some(entry) = row else {
            tx.rollback().await?;
            return Ok(false);
        };
        if entry.status != "active" || entry.next_at > now || entry.journey_id != j.id {
            tx.rollback().await?;
            return Ok(false);
        }
        let held_out = entry.grp == "holdout";
        let steps = &j.steps.0;
        let mut log = entry.log.0.clone();
        let mut at = entry.next_at;
        let mut step = usize::try_from(entry.step).unwrap_or(usize::MAX);
        let mut end: Option<&str> = None;
        let mut steps_done = 0u64;
        loop {
            let Some(s) = steps.get(step) else {
                end = Some("completed");
                break;
            };
            let key = format!("journey:{}:{}:{step}", j.id, entry.id);
            match s {
                Step::Wait { hours, days } => {
                    let until = at + Duration::hours(*hours) + Duration::days(*days);
                    if until > now {
                        // The wait is the position: the next step falls due at `until`.
                        step += 1;
                        at = until;
                        break;
                    }
                    at = until;
                    step += 1;
                }
                Step::Condition { rule, yes, no } => {
                    let matched = self.matches_rule(&mut tx, customer_id, rule).await?;
                    note(&mut log, step, now, "condition", serde_json::json!({"matched": matched}));
                    match if matched { yes.or(Some(step + 1)) } else { *no } {
                        Some(next) => step = next,
                        None => {
                            end = Some("exited");
                            break;
                        }
                    }
                }
                Step::Send { template_id, channel } => {
                    let ch = match channel.as_str() {
                        "preferred" => crate::engagement::calibrated::preferred_in(&mut tx, customer_id).await?,
                        c => Channel::parse(c).ok(),
                    };
                    let skipped = if held_out {
                        Some("holdout".to_owned())
                    } else if ch.is_none() {
                        Some("no_consent".to_owned())
                    } else {
                        None
                    };
                    let template = match self.template(*template_id).await {
                        Ok(t) => Some(t),
                        Err(StoreError::NotFound(_)) => None,
                        Err(e) => return Err(e),
                    };
                    let channel = ch.or(template.as_ref().map(|t| t.channel)).unwrap_or(Channel::Email);
                    let m = NewMessage {
                        customer_id,
                        message_key: key.clone(),
                        channel,
                        purpose: template.as_ref().map(|t| t.purpose).unwrap_or(crate::engagement::Purpose::Marketing),
                        template_id: Some(*template_id),
                        campaign_id: None,
                        content: None,
                        skipped: skipped.clone(),
                        not_before: now,
                    };
                    if enqueue(&mut tx, &m, now).await? {
                        report.messages += 1;
                    }
                    note(&mut log, step, now, "send", serde_json::json!({"channel": channel.as_str(), "skipped": skipped}));
                    step += 1;
                }
                Step::Task { title, due_days } => {
                    if !held_out {
                        let owner: Option<(Option<i64>,)> =
                            tx.fetch_optional(query("SELECT owner_id FROM customers WHERE id = $1").bind(customer_id)).await?;
                        let due: NaiveDate = now.with_timezone(&self.config.business_tz).date_naive() + Duration::days(*due_days);
                        let made = crate::tasks::insert_task(
                            &mut tx,
                            title,
                            Some(customer_id),
                            owner.and_then(|o| o.0),
                            Some(due),
                            &format!("journey:{}", j.id),
                            Some(&key),
                            now,
                        )
                        .await?;
                        if made.is_some() {
                            report.tasks += 1;
                        }
                        note(&mut log, step, now, "task", serde_json::json!({"task_id": made}));
                    } else {
                        note(&mut log, step, now, "task", serde_json::json!({"skipped": "holdout"}));
                    }
                    step += 1;
                }
                Step::Tag { add, remove } => {
                    if !held_out {
                        if let Some(t) = add {
                            tx.execute(
                                query("INSERT INTO customer_tags (customer_id, tag) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                                    .bind(customer_id)
                                    .bind(t.trim().to_owned()),
                            )
                            .await?;
                        }
                        if let Some(t) = remove {
                            tx.execute(
                                query("DELETE FROM customer_tags WHERE customer_id = $1 AND tag = $2")
                                    .bind(customer_id)
                                    .bind(t.trim().to_owned()),
                            )
                            .await?;
                        }
                    }
                    note(
                        &mut log,
                        step,
                        now,
                        "tag",
                        serde_json::json!({"add": add, "remove": remove, "skipped": held_out.then_some("holdout")}),
                    );
                    step += 1;
                }
                Step::Exit => {
                    end = Some("exited");
                    break;
                }
            }
            steps_done += 1;
        }
        match end {
            Some(status) => {
                tx.execute(
                    query(
                        "UPDATE journey_entries SET status = $1, active = NULL, ended_at = $2, step = $3, log = $4 \
                         WHERE customer_id = $5 AND id = $6",
                    )
                    .bind(status)
                    .bind(now)
                    .bind(step as i64)
                    .bind(serde_json::Value::Array(log))
                    .bind(customer_id)
                    .bind(id),
                )
                .await?;
                crate::events::append(
                    &mut tx,
                    customer_id,
                    "journey.ended",
                    Some(j.id),
                    serde_json::json!({"journey_id": j.id, "entry_id": id, "status": status}),
                    now,
                )
                .await?;
            }
            None => {
                tx.execute(
                    query("UPDATE journey_entries SET step = $1, next_at = $2, log = $3 WHERE customer_id = $4 AND id = $5")
                        .bind(step as i64)
                        .bind(at)
                        .bind(serde_json::Value::Array(log))
                        .bind(customer_id)
                        .bind(id),
                )
                .await?;
            }
        }
        tx.commit().await?;
        report.steps += steps_done;
        Ok(true)
    }

    /// Whether live customer `customer_id` matches a segment rule now (read in `tx`).
    async fn matches_rule(&self, tx: &mut Tx, customer_id: i64, rule: &str) -> Result<bool> {
        let s = self.segment_sql_for_one(&Actor::cli(), rule, 2)?;
        let mut q = query(format!("SELECT c.id FROM {} WHERE c.id = $1 AND {}", s.from, s.condition));
        q.push(customer_id);
        for a in s.args {
            q.push(a);
        }
        let found: Option<(i64,)> = tx.fetch_optional(q).await?;
        Ok(found.is_some())
    }
}

/// One entry of a customer, as the 360 and the report list it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JourneyEntry {
    /// Id.
    pub id: i64,
    /// The journey.
    pub journey_id: i64,
    /// The customer.
    pub customer_id: i64,
    /// `treated` or `holdout`.
    pub group: String,
    /// `active`, `goal`, `exited`, `completed`.
    pub status: String,
    /// The next step.
    pub step: i64,
    /// When it falls due.
    pub next_at: DateTime<Utc>,
    /// What was done.
    #[schema(value_type = Vec<Object>)]
    pub log: Vec<serde_json::Value>,
}

impl Store {
    /// A customer's journey entries, newest first.
    pub async fn customer_journey_entries(&self, customer_id: i64) -> Result<Vec<JourneyEntry>> {
        let rows: Vec<EntryRow> = self
            .db
            .reader()
            .fetch_all(
                query(
                    "SELECT customer_id, id, journey_id, grp, status, step, next_at, log FROM journey_entries \
                     WHERE customer_id = $1 ORDER BY id DESC LIMIT 100",
                )
                .bind(customer_id),
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| JourneyEntry {
                id: r.id,
                journey_id: r.journey_id,
                customer_id: r.customer_id,
                group: r.grp,
                status: r.status,
                step: r.step,
                next_at: r.next_at,
                log: r.log.0,
            })
            .collect())
    }
}
