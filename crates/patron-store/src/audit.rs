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

/// The customer an entry is about: the customer itself, or the one whose note or contact it
/// records (`customer=ID` in the detail); 0 for entries about no one customer. On Citus the
/// audit log is distributed by it, so that the entry lands in the shard of the change it
/// records (one shard for the whole transaction) rather than on every node.
fn subject(entity: &str, entity_id: Option<&str>, detail: Option<&str>) -> i64 {
    let id = match entity {
        "customer" => entity_id,
        _ => detail.and_then(|d| d.split(' ').find_map(|fact| fact.strip_prefix("customer="))),
    };
    id.and_then(|v| v.parse().ok()).unwrap_or(0)
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
        query("INSERT INTO audit_log (customer_id, at, actor, action, entity, entity_id, detail) VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .bind(subject(entity, entity_id.as_deref(), detail.as_deref()))
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

#[cfg(test)]
mod tests {
    #[test]
    fn entries_are_placed_with_their_customer() {
        assert_eq!(super::subject("customer", Some("42"), None), 42);
        assert_eq!(super::subject("note", Some("7"), Some("customer=42")), 42);
        assert_eq!(super::subject("order", Some("7"), Some("orders=1")), 0);
        assert_eq!(super::subject("customers", None, Some("rows=3")), 0);
        assert_eq!(super::subject("customer", Some("x"), None), 0);
    }
}
