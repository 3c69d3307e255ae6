//! The audit log: every change and every read of a full profile, with who and when. No PII in
//! `detail` — ids and field names only.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::db::{query, Tx};
use crate::page::{decode_cursor, encode_cursor, Page};
use crate::{Result, Store, StoreError};

mod group;
pub(crate) use group::GroupCommit;

/// One audit entry.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
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
    /// The customer it is about (none for entries about no one customer).
    pub customer_id: Option<i64>,
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
    /// Writes one audit entry outside any change (a read, a login …), committed with whatever
    /// other such entries are waiting ([`group`]); returns once it is committed.
    pub async fn audit(&self, actor: &str, action: &str, entity: &str, entity_id: Option<String>, detail: Option<String>) -> Result<()> {
        let entry = group::Entry {
            customer_id: subject(entity, entity_id.as_deref(), detail.as_deref()),
            at: self.now(),
            actor: actor.to_owned(),
            action: action.to_owned(),
            entity: entity.to_owned(),
            entity_id,
            detail,
        };
        self.audit_group.write(&self.db, entry).await
    }

    /// The newest audit entries, newest first.
    pub async fn audit_entries(&self, limit: i64, entity: Option<&str>, entity_id: Option<&str>) -> Result<Vec<AuditEntry>> {
        self.db
            .reader()
            .fetch_all(
                query(
                    "SELECT id, at, actor, action, entity, entity_id, NULLIF(customer_id, 0) AS customer_id, detail FROM audit_log \
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

/// Which audit entries (issue 14 §3, the audit viewer): every given filter must match.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// The actor key exactly: `user:<id>`, `token:<id>` or `cli`.
    pub actor: Option<String>,
    /// The customer an entry is about.
    pub customer_id: Option<i64>,
    /// The action exactly (`read`, `update`, `login_failed` …).
    pub action: Option<String>,
    /// At or after.
    pub from: Option<DateTime<Utc>>,
    /// Before.
    pub to: Option<DateTime<Utc>>,
}

/// Columns of the audit CSV export.
pub const AUDIT_CSV_COLUMNS: [&str; 8] = ["id", "at", "actor", "action", "entity", "entity_id", "customer_id", "detail"];

impl Store {
    /// A page of the audit entries `filter` selects, newest first; `cursor` is the previous
    /// page's `next_cursor`. `limit` 1–1000.
    pub async fn audit_page(&self, filter: &AuditFilter, cursor: Option<&str>, limit: i64) -> Result<Page<AuditEntry>> {
        let limit = limit.clamp(1, 1000);
        for (field, v) in [("actor", &filter.actor), ("action", &filter.action)] {
            if v.as_ref().is_some_and(|v| v.chars().count() > 100) {
                return Err(StoreError::invalid(field, "at most 100 characters"));
            }
        }
        if let (Some(f), Some(t)) = (filter.from, filter.to) {
            if t <= f {
                return Err(StoreError::invalid("to", "must be after from"));
            }
        }
        let mut sql = String::from(
            "SELECT id, at, actor, action, entity, entity_id, NULLIF(customer_id, 0) AS customer_id, detail FROM audit_log WHERE true",
        );
        let mut args: Vec<crate::db::Arg> = Vec::new();
        let cond = |sql: &mut String, args: &mut Vec<crate::db::Arg>, clause: &str, arg: crate::db::Arg| {
            args.push(arg);
            sql.push_str(&clause.replace('?', &format!("${}", args.len())));
        };
        if let Some(a) = &filter.actor {
            cond(&mut sql, &mut args, " AND actor = ?", a.clone().into());
        }
        if let Some(c) = filter.customer_id {
            cond(&mut sql, &mut args, " AND customer_id = ?", c.into());
        }
        if let Some(a) = &filter.action {
            cond(&mut sql, &mut args, " AND action = ?", a.clone().into());
        }
        if let Some(f) = filter.from {
            cond(&mut sql, &mut args, " AND at >= ?", crate::db::Arg::Time(Some(f)));
        }
        if let Some(t) = filter.to {
            cond(&mut sql, &mut args, " AND at < ?", crate::db::Arg::Time(Some(t)));
        }
        if let Some(c) = cursor {
            let before: i64 = decode_cursor(c)?;
            cond(&mut sql, &mut args, " AND id < ?", before.into());
        }
        cond(&mut sql, &mut args, " ORDER BY id DESC LIMIT ?", (limit + 1).into());
        let mut q = query(sql);
        for a in args {
            q.push(a);
        }
        let mut items: Vec<AuditEntry> = self.db.reader().fetch_all(q).await?;
        let next_cursor = if items.len() as i64 > limit {
            items.truncate(limit as usize);
            items.last().map(|e| encode_cursor(&e.id))
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }

    /// Every audit entry `filter` selects as CSV ([`AUDIT_CSV_COLUMNS`]), newest first, paged
    /// through so that no one query holds the whole log. Values that a spreadsheet would run
    /// as a formula get an apostrophe unless `raw`. The export itself is audited.
    pub async fn audit_csv(&self, actor: &str, filter: &AuditFilter, raw: bool) -> Result<Vec<u8>> {
        let mut w = csv::Writer::from_writer(Vec::new());
        let csv_err = |e: csv::Error| StoreError::Internal(format!("writing the audit CSV: {e}"));
        w.write_record(AUDIT_CSV_COLUMNS).map_err(csv_err)?;
        let mut cursor: Option<String> = None;
        let mut rows = 0u64;
        loop {
            let page = self.audit_page(filter, cursor.as_deref(), 1000).await?;
            for e in &page.items {
                let cells = [
                    e.id.to_string(),
                    e.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                    e.actor.clone(),
                    e.action.clone(),
                    e.entity.clone(),
                    e.entity_id.clone().unwrap_or_default(),
                    e.customer_id.map(|c| c.to_string()).unwrap_or_default(),
                    e.detail.clone().unwrap_or_default(),
                ];
                let cells: Vec<std::borrow::Cow<'_, str>> = cells
                    .iter()
                    .map(|c| if raw { std::borrow::Cow::Borrowed(c.as_str()) } else { crate::export::spreadsheet_safe(c) })
                    .collect();
                w.write_record(cells.iter().map(|c| c.as_bytes())).map_err(csv_err)?;
                rows += 1;
            }
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        let bytes = w.into_inner().map_err(|e| StoreError::Internal(format!("writing the audit CSV: {e}")))?;
        self.audit(actor, "export", "audit_log", None, Some(format!("rows={rows}"))).await?;
        Ok(bytes)
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
