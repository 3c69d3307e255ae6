//! The SLA clocks' due work, run by the scheduler: a warning shortly before a due time and a
//! breach at it, each recorded once (with its event, the assignee warned, a breach escalated
//! to the assignee's manager with an audit entry), and resolutions the customer did not answer
//! within the confirmation period confirmed by timeout.
//!
//! Each piece of work is found by a plain query and then claimed by locking the ticket's row
//! alone (`FOR UPDATE SKIP LOCKED` on PostgreSQL: another scheduler's claim is skipped, one
//! statement on one shard on Citus), re-checked under the lock, done and marked in one
//! transaction. A second scheduler, a second run or a crash between the two never does it twice.

use chrono::{DateTime, Duration, Utc};

use super::{flow, ticket_row, TicketRow, TICKET_COLUMNS, TICKET_FROM};
use crate::db::query;
use crate::{audit, events, notifications, settings, Result, Store};

/// The work the clocks have to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Work {
    FirstResponseWarning,
    FirstResponseBreach,
    ResolutionWarning,
    ResolutionBreach,
    AutoConfirm,
}

/// What a run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct SlaReport {
    /// Warnings raised.
    pub warnings: u64,
    /// Breaches recorded (and escalated).
    pub breaches: u64,
    /// Resolutions confirmed by timeout.
    pub auto_confirmed: u64,
}

/// The tickets still running their resolution clock (not waiting on the customer).
const RUNNING: &str = "t.status IN ('new', 'acknowledged', 'in_progress', 'reopened') AND t.paused_at IS NULL";

impl Work {
    /// The condition a ticket meets while this work is due (`$1` now, `$2` now + warning).
    fn condition(self) -> String {
        match self {
            Work::FirstResponseWarning => "t.status NOT IN ('resolved', 'confirmed') AND t.first_responded_at IS NULL \
                 AND t.first_response_warned_at IS NULL AND t.first_response_breached_at IS NULL \
                 AND t.first_response_due_at > $1 AND t.first_response_due_at <= $2"
                .into(),
            Work::FirstResponseBreach => "t.status NOT IN ('resolved', 'confirmed') AND t.first_responded_at IS NULL \
                 AND t.first_response_breached_at IS NULL AND t.first_response_due_at <= $1 AND $2 = $2"
                .into(),
            Work::ResolutionWarning => format!(
                "{RUNNING} AND t.resolution_warned_at IS NULL AND t.resolution_breached_at IS NULL \
                 AND t.resolution_due_at > $1 AND t.resolution_due_at <= $2"
            ),
            Work::ResolutionBreach => format!("{RUNNING} AND t.resolution_breached_at IS NULL AND t.resolution_due_at <= $1 AND $2 = $2"),
            Work::AutoConfirm => "t.status = 'resolved' AND t.resolved_at <= $2".into(),
        }
    }

    fn clock(self) -> &'static str {
        match self {
            Work::FirstResponseWarning | Work::FirstResponseBreach => "first_response",
            _ => "resolution",
        }
    }
}

impl Store {
    /// Does the SLA work that is due at the store's now.
    pub async fn run_sla(&self) -> Result<SlaReport> {
        let now = self.now();
        let s: settings::ServiceSettings = self.service_settings().await?;
        let warn_until = now + Duration::minutes(s.warning_minutes);
        let confirm_before = now - Duration::days(s.confirmation_days);
        let mut report = SlaReport::default();
        for work in
            [Work::FirstResponseBreach, Work::ResolutionBreach, Work::FirstResponseWarning, Work::ResolutionWarning, Work::AutoConfirm]
        {
            let second = if work == Work::AutoConfirm { confirm_before } else { warn_until };
            loop {
                let due: Vec<(i64, i64)> = self
                    .db
                    .reader()
                    .fetch_all(
                        query(format!("SELECT t.customer_id, t.id FROM tickets t WHERE {} ORDER BY t.id LIMIT 500", work.condition()))
                            .bind(now)
                            .bind(second),
                    )
                    .await?;
                let mut done = 0;
                for (customer_id, id) in &due {
                    if self.claim_and_do(work, *customer_id, *id, now, second).await? {
                        done += 1;
                    }
                }
                match work {
                    Work::FirstResponseWarning | Work::ResolutionWarning => report.warnings += done,
                    Work::FirstResponseBreach | Work::ResolutionBreach => report.breaches += done,
                    Work::AutoConfirm => report.auto_confirmed += done,
                }
                // A full page may have more behind it; a page where nothing was done (all claimed
                // by another scheduler) ends the round rather than spinning on it.
                if due.len() < 500 || done == 0 {
                    break;
                }
            }
        }
        Ok(report)
    }

    /// Claims one ticket for `work` and does it; false when another scheduler holds it or it no
    /// longer needs doing.
    async fn claim_and_do(&self, work: Work, customer_id: i64, id: i64, now: DateTime<Utc>, second: DateTime<Utc>) -> Result<bool> {
        let mut tx = self.db.begin().await?;
        let claim = tx.engine().claim_lock();
        let claimed: Option<(i64,)> = tx
            .fetch_optional(
                query(format!("SELECT t.id FROM tickets t WHERE t.customer_id = $3 AND t.id = $4 AND {}{claim}", work.condition()))
                    .bind(now)
                    .bind(second)
                    .bind(customer_id)
                    .bind(id),
            )
            .await?;
        if claimed.is_none() {
            tx.rollback().await?;
            return Ok(false);
        }
        let t: TicketRow = tx
            .fetch_one(
                query(format!("SELECT {TICKET_COLUMNS} {TICKET_FROM} WHERE t.customer_id = $1 AND t.id = $2")).bind(customer_id).bind(id),
            )
            .await?;
        let clock = work.clock();
        match work {
            Work::FirstResponseWarning | Work::ResolutionWarning => {
                let due = if work == Work::FirstResponseWarning { t.first_response_due_at } else { t.resolution_due_at };
                tx.execute(
                    query(format!("UPDATE tickets SET {clock}_warned_at = $1 WHERE customer_id = $2 AND id = $3"))
                        .bind(now)
                        .bind(customer_id)
                        .bind(id),
                )
                .await?;
                events::append(&mut tx, customer_id, "ticket.warning", Some(id), serde_json::json!({"clock": clock, "due_at": due}), now)
                    .await?;
                if let Some(a) = t.assignee_id {
                    let what = if clock == "first_response" { "首次响应" } else { "解决" };
                    let message = format!("工单 #{id}「{}」{what}时限将到：{}", t.subject, due.format("%Y-%m-%d %H:%M UTC"));
                    notifications::notify(&mut tx, a, "sla_warning", customer_id, id, &message, now).await?;
                }
            }
            Work::FirstResponseBreach | Work::ResolutionBreach => {
                let due = if work == Work::FirstResponseBreach { t.first_response_due_at } else { t.resolution_due_at };
                tx.execute(
                    query(format!("UPDATE tickets SET {clock}_breached_at = $1 WHERE customer_id = $2 AND id = $3"))
                        .bind(due)
                        .bind(customer_id)
                        .bind(id),
                )
                .await?;
                let payload = serde_json::json!({"clock": clock, "due_at": due, "tier": t.tier, "assignee_id": t.assignee_id});
                events::append(&mut tx, customer_id, "ticket.breached", Some(id), payload, due).await?;
                let what = if clock == "first_response" { "首次响应" } else { "解决" };
                let message = format!("工单 #{id}「{}」（{} 级客户）{what}超时，已升级给您", t.subject, t.tier);
                let targets = notifications::escalation_targets(&mut tx, t.assignee_id).await?;
                for m in &targets {
                    notifications::notify(&mut tx, *m, "escalation", customer_id, id, &message, now).await?;
                }
                if let Some(a) = t.assignee_id {
                    if !targets.contains(&a) {
                        notifications::notify(&mut tx, a, "sla_breach", customer_id, id, &message, now).await?;
                    }
                }
                let detail = format!("customer={customer_id} {clock} breached at {due}; escalated to users {targets:?}");
                audit::record(&mut tx, now, "scheduler", "escalate", "ticket", Some(id.to_string()), Some(detail)).await?;
            }
            Work::AutoConfirm => {
                flow::apply(&mut tx, self, &t, "confirmed", None, "timeout", now).await?;
            }
        }
        ticket_row(&mut tx, customer_id, id).await?;
        tx.commit().await?;
        Ok(true)
    }
}
