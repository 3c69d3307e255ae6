//! In-app notifications for staff: SLA warnings and breaches of their tickets, breaches
//! escalated to them as the assignee's manager, compensations waiting for their approval.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::{query, Tx};
use crate::users::Actor;
use crate::{Result, Store, StoreError};

/// One notification.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Notification {
    /// Id.
    pub id: i64,
    /// `sla_warning`, `sla_breach`, `escalation`, `approval`.
    pub kind: String,
    /// The customer concerned.
    pub customer_id: i64,
    /// The ticket concerned.
    pub ticket_id: Option<i64>,
    /// What happened, in words.
    pub message: String,
    /// When (UTC).
    pub created_at: DateTime<Utc>,
    /// When the user marked it read.
    pub read_at: Option<DateTime<Utc>>,
}

/// Notifies a user in `tx`.
pub(crate) async fn notify(
    tx: &mut Tx,
    user_id: i64,
    kind: &str,
    customer_id: i64,
    ticket_id: i64,
    message: &str,
    at: DateTime<Utc>,
) -> Result<()> {
    tx.execute(
        query("INSERT INTO notifications (user_id, kind, customer_id, ticket_id, message, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(user_id)
            .bind(kind)
            .bind(customer_id)
            .bind(ticket_id)
            .bind(message)
            .bind(at),
    )
    .await?;
    Ok(())
}

/// The users a breach escalates to: the assignee's manager; when there is none (no assignee, or
/// an assignee without a manager), every active manager.
pub(crate) async fn escalation_targets(tx: &mut Tx, assignee_id: Option<i64>) -> Result<Vec<i64>> {
    if let Some(a) = assignee_id {
        let row: Option<(Option<i64>,)> = tx.fetch_optional(query("SELECT u.manager_id FROM users u WHERE u.id = $1").bind(a)).await?;
        if let Some((Some(m),)) = row {
            let active: Option<(i64,)> =
                tx.fetch_optional(query("SELECT id FROM users WHERE id = $1 AND disabled_at IS NULL").bind(m)).await?;
            if let Some((m,)) = active {
                return Ok(vec![m]);
            }
        }
    }
    let rows: Vec<(i64,)> = tx.fetch_all(query("SELECT id FROM users WHERE role = 'manager' AND disabled_at IS NULL ORDER BY id")).await?;
    Ok(rows.into_iter().map(|r| r.0).collect())
}

impl Store {
    /// The caller's notifications, newest first (unread only if asked), at most `limit`.
    pub async fn notifications(&self, actor: &Actor, unread_only: bool, limit: i64) -> Result<Vec<Notification>> {
        let Some(user_id) = actor.user_id else { return Ok(Vec::new()) };
        let unread = if unread_only { " AND read_at IS NULL" } else { "" };
        self.db
            .reader()
            .fetch_all(
                query(format!(
                    "SELECT id, kind, customer_id, ticket_id, message, created_at, read_at FROM notifications \
                     WHERE user_id = $1{unread} ORDER BY id DESC LIMIT $2"
                ))
                .bind(user_id)
                .bind(limit.clamp(1, 500)),
            )
            .await
    }

    /// How many of the caller's notifications are unread (the bell's number).
    pub async fn unread_notifications(&self, actor: &Actor) -> Result<i64> {
        let Some(user_id) = actor.user_id else { return Ok(0) };
        let (n,): (i64,) = self
            .db
            .reader()
            .fetch_one(query("SELECT COUNT(*) FROM notifications WHERE user_id = $1 AND read_at IS NULL").bind(user_id))
            .await?;
        Ok(n)
    }

    /// Marks one of the caller's notifications read.
    pub async fn mark_notification_read(&self, actor: &Actor, id: i64) -> Result<()> {
        let Some(user_id) = actor.user_id else { return Err(StoreError::NotFound("notification")) };
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let n = tx
            .execute(
                query("UPDATE notifications SET read_at = COALESCE(read_at, $1) WHERE id = $2 AND user_id = $3")
                    .bind(now)
                    .bind(id)
                    .bind(user_id),
            )
            .await?;
        if n == 0 {
            return Err(StoreError::NotFound("notification"));
        }
        tx.commit().await
    }
}
