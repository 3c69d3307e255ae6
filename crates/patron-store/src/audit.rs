//! The audit log: every change and every read of a full profile, with who and when. No PII in
//! `detail` — ids and field names only.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::db::{query, Tx};
use crate::{Result, Store};

/// One audit entry.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct AuditEntry {
    /// Row id.
    pub id: i64,
    /// When it happened (UTC).
    pub at: DateTime<Utc>,
    /// Who: `user:<id>` or `token:<id>` or `cli`.
    pub actor: String,
    /// What: `read`, `create`, `update`, `delete`, `import`, `export`, `login` …
    pub action: String,
    /// Which kind of thing.
    pub entity: String,
    /// Which one.
    pub entity_id: Option<String>,
    /// Extra facts (field names, counts), never personal data.
    pub detail: Option<String>,
}

/// Writes an audit entry inside a transaction (so it commits or rolls back with the change).
pub async fn record(
    tx: &mut Tx,
    at: DateTime<Utc>,
    actor: &str,
    action: &str,
    entity: &str,
    entity_id: Option<String>,
    detail: Option<String>,
) -> Result<()> {
    tx.execute(
        query("INSERT INTO audit_log (at, actor, action, entity, entity_id, detail) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(at)
            .bind(actor)
            .bind(action)
            .bind(entity)
            .bind(entity_id)
            .bind(detail),
    )
    .await?;
    Ok(())
}

impl Store {
    /// Writes one audit entry in its own transaction (for reads, which have none).
    pub async fn audit(&self, actor: &str, action: &str, entity: &str, entity_id: Option<String>, detail: Option<String>) -> Result<()> {
        let mut tx = self.db.begin().await?;
        record(&mut tx, self.now(), actor, action, entity, entity_id, detail).await?;
        tx.commit().await
    }

    /// The newest audit entries, newest first.
    pub async fn audit_entries(&self, limit: i64, entity: Option<&str>, entity_id: Option<&str>) -> Result<Vec<AuditEntry>> {
        self.db
            .reader()
            .fetch_all(
                query(
                    "SELECT id, at, actor, action, entity, entity_id, detail FROM audit_log \
                     WHERE ($1 IS NULL OR entity = $1) AND ($2 IS NULL OR entity_id = $2) \
                     ORDER BY id DESC LIMIT $3",
                )
                .bind(entity)
                .bind(entity_id)
                .bind(limit),
            )
            .await
    }
}
