//! Notes staff write on a customer.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::db::query;
use crate::users::Actor;
use crate::{audit, Result, Store, StoreError};

/// A note on a customer.
#[derive(serde::Deserialize, Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Note {
    /// Id.
    pub id: i64,
    /// Customer.
    pub customer_id: i64,
    /// Who wrote it (actor key).
    pub author: String,
    /// Text.
    pub body: String,
    /// When (UTC).
    pub created_at: DateTime<Utc>,
}

/// A new note.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewNote {
    /// Text (1–10,000 characters).
    pub body: String,
}

impl Store {
    /// Adds a note to a customer.
    pub async fn create_note(&self, actor: &Actor, customer_id: i64, note: NewNote) -> Result<Note> {
        let body = note.body.trim();
        if body.is_empty() || body.chars().count() > 10_000 {
            return Err(StoreError::invalid("body", "a note has 1 to 10,000 characters"));
        }
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let exists: Option<(i64,)> =
            tx.fetch_optional(query("SELECT id FROM customers WHERE id = $1 AND deleted_at IS NULL").bind(customer_id)).await?;
        if exists.is_none() {
            return Err(StoreError::NotFound("customer"));
        }
        let n: Note = tx
            .fetch_one(
                query("INSERT INTO notes (customer_id, author, body, created_at) VALUES ($1, $2, $3, $4) RETURNING id, customer_id, author, body, created_at")
                    .bind(customer_id)
                    .bind(&actor.key)
                    .bind(body)
                    .bind(now),
            )
            .await?;
        audit::record(&mut tx, now, &actor.key, "create", "note", Some(n.id.to_string()), Some(format!("customer={customer_id}"))).await?;
        tx.commit().await?;
        Ok(n)
    }
}
