//! Compensation on a ticket: granted at once within the frontline authority of the ticket's
//! tier policy (or by a manager), else waiting for a manager's decision. Every request and
//! decision is an event, and grants show on the customer's timeline.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{check_len, locked_ticket};
use crate::db::{query, Reader, Tx};
use crate::service::policies::policy_in;
use crate::users::{Actor, Role};
use crate::{audit, events, notifications, Result, Store, StoreError};

/// What is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CompensationKind {
    /// Money back.
    Refund,
    /// A voucher.
    Voucher,
    /// A gift.
    Gift,
    /// Loyalty points (valued in cents).
    Points,
}

impl CompensationKind {
    fn as_str(self) -> &'static str {
        match self {
            CompensationKind::Refund => "refund",
            CompensationKind::Voucher => "voucher",
            CompensationKind::Gift => "gift",
            CompensationKind::Points => "points",
        }
    }
}

/// A compensation request.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCompensation {
    /// Value in cents (1 to 10,000,000).
    #[schema(minimum = 1, maximum = 10000000)]
    pub amount_cents: i64,
    /// `refund`, `voucher`, `gift` or `points`.
    pub kind: CompensationKind,
    /// Why (1–500 characters).
    pub reason: String,
}

/// A compensation.
#[derive(serde::Deserialize, Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Compensation {
    /// Id.
    pub id: i64,
    /// The ticket.
    pub ticket_id: i64,
    /// Value in cents.
    pub amount_cents: i64,
    /// `refund`, `voucher`, `gift` or `points`.
    pub kind: String,
    /// Why.
    pub reason: String,
    /// `granted`, `pending` (waiting for a manager) or `refused`.
    pub status: String,
    /// Who asked.
    pub requested_by: String,
    /// When.
    pub requested_at: DateTime<Utc>,
    /// Who decided (the requester when granted at once).
    pub decided_by: Option<String>,
    /// When decided.
    pub decided_at: Option<DateTime<Utc>>,
}

const COMPENSATION_SELECT: &str =
    "SELECT id, ticket_id, amount_cents, kind, reason, status, requested_by, requested_at, decided_by, decided_at \
     FROM compensations";

/// A ticket's compensations, oldest first.
pub(crate) async fn of_ticket(r: &mut Reader<'_>, customer_id: i64, ticket_id: i64) -> Result<Vec<Compensation>> {
    r.fetch_all(
        query(format!("{COMPENSATION_SELECT} WHERE customer_id = $1 AND ticket_id = $2 ORDER BY id")).bind(customer_id).bind(ticket_id),
    )
    .await
}

async fn one(tx: &mut Tx, customer_id: i64, id: i64) -> Result<Compensation> {
    tx.fetch_one(query(format!("{COMPENSATION_SELECT} WHERE customer_id = $1 AND id = $2")).bind(customer_id).bind(id)).await
}

impl Store {
    /// Asks for a compensation on a ticket: granted at once when the actor is a manager or admin,
    /// or an agent within the authority of the ticket's tier; otherwise pending, with the
    /// managers notified.
    pub async fn compensate(&self, actor: &Actor, ticket_id: i64, c: NewCompensation) -> Result<Compensation> {
        if !(1..=10_000_000).contains(&c.amount_cents) {
            return Err(StoreError::invalid("amount_cents", "must be 1 to 10,000,000 cents"));
        }
        let reason = c.reason.trim().to_owned();
        if reason.is_empty() {
            return Err(StoreError::invalid("reason", "say why the customer is compensated"));
        }
        check_len("reason", &reason, 500)?;
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let t = locked_ticket(&mut tx, ticket_id).await?;
        let authority = policy_in(&mut tx, &t.tier).await?.compensation_authority_cents;
        let granted = actor.role >= Role::Manager || c.amount_cents <= authority;
        let status = if granted { "granted" } else { "pending" };
        let (id,): (i64,) = tx
            .fetch_one(
                query(
                    "INSERT INTO compensations (customer_id, ticket_id, amount_cents, kind, reason, status, requested_by, requested_at, \
                     decided_by, decided_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
                )
                .bind(t.customer_id)
                .bind(ticket_id)
                .bind(c.amount_cents)
                .bind(c.kind.as_str())
                .bind(reason)
                .bind(status)
                .bind(actor.key.clone())
                .bind(now)
                .bind(granted.then(|| actor.key.clone()))
                .bind(granted.then_some(now)),
            )
            .await?;
        let payload = serde_json::json!({"compensation_id": id, "amount_cents": c.amount_cents, "kind": c.kind.as_str(),
            "authority_cents": authority, "by": actor.key});
        let kind = if granted { "compensation.granted" } else { "compensation.requested" };
        events::append(&mut tx, t.customer_id, kind, Some(ticket_id), payload, now).await?;
        if !granted {
            let message = format!("工单 #{ticket_id} 的补偿 ¥{:.2} 超出权限，待审批", c.amount_cents as f64 / 100.0);
            for m in notifications::escalation_targets(&mut tx, actor.user_id).await? {
                notifications::notify(&mut tx, m, "approval", t.customer_id, ticket_id, &message, now).await?;
            }
        }
        audit::record(
            &mut tx,
            now,
            &actor.key,
            "compensate",
            "ticket",
            Some(ticket_id.to_string()),
            Some(format!("customer={} {status} {}", t.customer_id, c.amount_cents)),
        )
        .await?;
        let out = one(&mut tx, t.customer_id, id).await?;
        tx.commit().await?;
        Ok(out)
    }

    /// A manager's decision on a pending compensation (the caller checks the role).
    pub async fn decide_compensation(&self, actor: &Actor, ticket_id: i64, compensation_id: i64, approve: bool) -> Result<Compensation> {
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let t = locked_ticket(&mut tx, ticket_id).await?;
        let c: Option<Compensation> = tx
            .fetch_optional(
                query(format!("{COMPENSATION_SELECT} WHERE customer_id = $1 AND id = $2 AND ticket_id = $3"))
                    .bind(t.customer_id)
                    .bind(compensation_id)
                    .bind(ticket_id),
            )
            .await?;
        let c = c.ok_or(StoreError::NotFound("compensation"))?;
        if c.status != "pending" {
            return Err(StoreError::State(format!("compensation #{compensation_id} is {} already", c.status)));
        }
        let status = if approve { "granted" } else { "refused" };
        tx.execute(
            query("UPDATE compensations SET status = $1, decided_by = $2, decided_at = $3 WHERE customer_id = $4 AND id = $5")
                .bind(status)
                .bind(actor.key.clone())
                .bind(now)
                .bind(t.customer_id)
                .bind(compensation_id),
        )
        .await?;
        let payload =
            serde_json::json!({"compensation_id": compensation_id, "amount_cents": c.amount_cents, "kind": c.kind, "by": actor.key});
        events::append(&mut tx, t.customer_id, &format!("compensation.{status}"), Some(ticket_id), payload, now).await?;
        audit::record(
            &mut tx,
            now,
            &actor.key,
            "decide",
            "compensation",
            Some(compensation_id.to_string()),
            Some(format!("customer={} {status}", t.customer_id)),
        )
        .await?;
        let out = one(&mut tx, t.customer_id, compensation_id).await?;
        tx.commit().await?;
        Ok(out)
    }
}
