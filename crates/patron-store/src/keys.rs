//! The key tables that keep external ids unique across the whole database.
//!
//! On Citus a unique constraint must include the distribution column, so `UNIQUE (external_id)`
//! cannot stay on tables distributed by customer. Each external id instead has a row in a key
//! table distributed by the id itself (`customer_keys`, `order_keys`, `interaction_keys`,
//! `contact_keys`, `ticket_keys`), written in the same transaction as the row it names: a second customer,
//! order, interaction or contact with the same id fails on the key's primary key, on any
//! engine. Looking an id up there is a single-shard read. On SQLite the key tables are views
//! over the rows (which keep their own UNIQUE constraints) and writing to them does nothing.

use crate::db::{query, Tx};
use crate::{Result, StoreError};

/// One key table: its name and the column naming the row (none for customers: the customer is
/// the row).
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyTable {
    pub table: &'static str,
    pub row: Option<&'static str>,
    /// The table of the rows named (none for customers).
    pub rows: Option<&'static str>,
    /// What the key names, for messages.
    pub what: &'static str,
}

/// Customers' external ids.
pub(crate) const CUSTOMERS: KeyTable = KeyTable { table: "customer_keys", row: None, rows: None, what: "customer" };
/// Orders' external ids.
pub(crate) const ORDERS: KeyTable = KeyTable { table: "order_keys", row: Some("order_id"), rows: Some("orders"), what: "order" };
/// Interactions' external ids.
pub(crate) const INTERACTIONS: KeyTable =
    KeyTable { table: "interaction_keys", row: Some("interaction_id"), rows: Some("interactions"), what: "interaction" };
/// Tickets' external ids (history imported from another helpdesk).
pub(crate) const TICKETS: KeyTable = KeyTable { table: "ticket_keys", row: Some("ticket_id"), rows: Some("tickets"), what: "ticket" };
/// Contact people's external ids.
pub(crate) const CONTACTS: KeyTable = KeyTable { table: "contact_keys", row: Some("contact_id"), rows: Some("contacts"), what: "contact" };

/// Records that `external_id` names customer `customer_id` (and row `row_id` of that customer,
/// for tables other than customers). Taken already: a conflict on `external_id`.
pub(crate) async fn claim(tx: &mut Tx, k: KeyTable, external_id: &str, customer_id: i64, row_id: Option<i64>) -> Result<()> {
    let q = match (k.row, row_id) {
        (Some(col), Some(id)) => query(format!("INSERT INTO {} (external_id, customer_id, {col}) VALUES ($1, $2, $3)", k.table))
            .bind(external_id)
            .bind(customer_id)
            .bind(id),
        (None, _) => {
            query(format!("INSERT INTO {} (external_id, customer_id) VALUES ($1, $2)", k.table)).bind(external_id).bind(customer_id)
        }
        (Some(_), None) => return Err(StoreError::Internal(format!("{}: a key without its row", k.table))),
    };
    match tx.execute(q).await {
        Err(StoreError::Conflict(_)) => Err(StoreError::Conflict(format!("external_id: {} {external_id:?} exists already", k.what))),
        other => other.map(|_| ()),
    }
}

/// The customer and row an external id names, if any.
pub(crate) async fn lookup(tx: &mut Tx, k: KeyTable, external_id: &str) -> Result<Option<(i64, i64)>> {
    let row = k.row.unwrap_or("customer_id");
    tx.fetch_optional(query(format!("SELECT customer_id, {row} FROM {} WHERE external_id = $1", k.table)).bind(external_id)).await
}

/// The customer and row an external id names, for a write to customer `customer_id`, whose row
/// the caller has locked: first among that customer's own rows, then in the key table (a row of
/// another customer's). The customer's own rows come first because they are in the shard the
/// lock is on. On Citus a transaction commits on each node in turn (two-phase commit), so right
/// after a concurrent request for the same customer released the lock, its new key may not be
/// visible yet in the key table's shard, while its row is in the customer's.
pub(crate) async fn find(tx: &mut Tx, k: KeyTable, external_id: &str, customer_id: i64) -> Result<Option<(i64, i64)>> {
    if let Some(rows) = k.rows {
        let own: Option<(i64,)> = tx
            .fetch_optional(
                query(format!("SELECT id FROM {rows} WHERE customer_id = $1 AND external_id = $2")).bind(customer_id).bind(external_id),
            )
            .await?;
        if let Some((id,)) = own {
            return Ok(Some((customer_id, id)));
        }
    }
    lookup(tx, k, external_id).await
}
