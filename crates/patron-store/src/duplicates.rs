//! Duplicate customers: finding the likely ones, and merging two into one.
//!
//! Candidates (DESIGN.md C1) are the live customers that share a mobile number, an email address
//! or a WeChat id with the customer, or bear the same name in the same city (names compared
//! without spaces and case). Merging moves every record of the duplicate — orders with their
//! lines and events, interactions, notes, contact people, profile history — to the customer
//! kept, fills the kept profile's empty fields from the duplicate, takes the newer consent per
//! channel and the union of tags and attributes, points the duplicate's referrals at the kept
//! customer, and soft-deletes the duplicate with a history row saying where it went. Nothing is
//! deleted: the duplicate's row stays (hidden) for the audit trail, and remembers the customer
//! it was merged into, so that orders and interactions that source systems keep sending under
//! its external id land on that customer.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::customers::{record_change, upsert_consent, Customer, StoredCustomer, STORED_CUSTOMER_COLUMNS};
use crate::db::{query, Tx};
use crate::keys::{self, KeyTable};
use crate::users::Actor;
use crate::{audit, Result, Store, StoreError};

/// Most candidates listed for one customer.
const MAX_CANDIDATES: i64 = 50;

/// A customer that may be the same person or organisation as another.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct DuplicateCandidate {
    /// patron's id.
    pub id: i64,
    /// The id in the source system.
    pub external_id: Option<String>,
    /// Name.
    pub name: String,
    /// Mobile.
    pub mobile: Option<String>,
    /// Email.
    pub email: Option<String>,
    /// WeChat id.
    pub wechat_id: Option<String>,
    /// City.
    pub city: Option<String>,
    /// What the two share: `mobile`, `email`, `wechat_id`, `name_city`.
    #[sqlx(skip)]
    pub reasons: Vec<String>,
}

/// What a merge moved from the duplicate to the customer kept.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct MergeReport {
    /// The customer kept, as it is after the merge.
    pub customer: Option<Customer>,
    /// The duplicate, now soft-deleted.
    pub merged_id: i64,
    /// Orders moved.
    pub orders: u64,
    /// Interactions moved.
    pub interactions: u64,
    /// Notes moved.
    pub notes: u64,
    /// Contact people moved.
    pub contacts: u64,
    /// History rows moved.
    pub changes: u64,
    /// Customers whose referrer was the duplicate.
    pub referrals: u64,
    /// Loyalty points moved from the duplicate's membership.
    pub loyalty_points: i64,
    /// StoredCustomer fields of the kept customer filled or changed (tags, consents included).
    pub fields: Vec<String>,
}

/// A name as duplicates compare it, in SQL: lower-cased, without spaces (ASCII and ideographic).
/// Migration 0003 indexes `(city, name_key("name"))`: keep the two expressions the same.
fn name_key(expr: &str) -> String {
    format!("REPLACE(REPLACE(LOWER({expr}), ' ', ''), '\u{3000}', '')")
}

impl Store {
    /// Live customers that may duplicate `customer_id`, with what they share; newest id last.
    pub async fn duplicate_candidates(&self, customer_id: i64) -> Result<Vec<DuplicateCandidate>> {
        let me = self.customer(customer_id).await?;
        // One indexed lookup per shared key (an OR across the keys would scan the table); the
        // name is compared inside the city's rows by the database.
        let cols = "SELECT id, external_id, name, mobile, email, wechat_id, city FROM customers WHERE deleted_at IS NULL AND id <> $1";
        let mut lookups = Vec::new();
        for (column, value) in [("mobile", &me.mobile), ("email", &me.email), ("wechat_id", &me.wechat_id)] {
            if let Some(v) = value {
                let sql = format!("{cols} AND {column} = $2 ORDER BY id LIMIT $3");
                lookups.push((column, query(sql).bind(customer_id).bind(v.as_str()).bind(MAX_CANDIDATES)));
            }
        }
        if let Some(city) = &me.city {
            let sql = format!("{cols} AND city = $2 AND {} = {} ORDER BY id LIMIT $4", name_key("name"), name_key("$3"));
            lookups.push(("name_city", query(sql).bind(customer_id).bind(city.as_str()).bind(me.name.as_str()).bind(MAX_CANDIDATES)));
        }
        let mut found: Vec<DuplicateCandidate> = Vec::new();
        for (reason, q) in lookups {
            let rows: Vec<DuplicateCandidate> = self.db.reader().fetch_all(q).await?;
            for mut r in rows {
                match found.iter_mut().find(|f| f.id == r.id) {
                    Some(f) => f.reasons.push(reason.to_owned()),
                    None => {
                        r.reasons.push(reason.to_owned());
                        found.push(r);
                    }
                }
            }
        }
        found.sort_by_key(|c| c.id);
        found.truncate(MAX_CANDIDATES as usize);
        Ok(found)
    }

    /// Merges customer `merge_id` into `keep_id` in one transaction (see the module docs) and
    /// returns what moved. Both must be live and different.
    pub async fn merge_customers(&self, actor: &Actor, keep_id: i64, merge_id: i64) -> Result<MergeReport> {
        if keep_id == merge_id {
            return Err(StoreError::invalid("merge_id", "a customer cannot be merged into itself"));
        }
        let now = self.now();
        let mut tx = self.db.begin().await?;
        // On Citus: one connection per node, so that the events' seat counts (a reference table)
        // may be written after the statements below that span the shards.
        tx.one_connection_per_node().await?;
        // Both rows locked in id order first: orders arriving for either customer meanwhile wait
        // for the merge (and then land on the one kept), and two merges of the same pair in
        // opposite directions wait instead of deadlocking.
        crate::customers::lock_customers(&mut tx, &[keep_id, merge_id]).await?;
        let keep = profile(&mut tx, keep_id).await?.ok_or(StoreError::NotFound("customer"))?;
        let dup = profile(&mut tx, merge_id).await?.ok_or(StoreError::NotFound("customer to merge"))?;
        let mut report = MergeReport { merged_id: merge_id, ..Default::default() };

        // The duplicate is deleted first, so that nothing below can see it as live; files that
        // still name it (or a customer merged into it before) resolve to the one kept.
        tx.execute(
            query("UPDATE customers SET deleted_at = $1, updated_at = $1, merged_into = $2 WHERE id = $3")
                .bind(now)
                .bind(keep_id)
                .bind(merge_id),
        )
        .await?;
        tx.execute(query("UPDATE customers SET merged_into = $1 WHERE merged_into = $2").bind(keep_id).bind(merge_id)).await?;

        // Every record of the duplicate moves to the one kept: orders with their lines and events,
        // interactions, notes, people and history. Moved means copied under the kept customer,
        // ids and all, and the originals deleted: a row is never updated to another customer,
        // because on Citus its customer_id places it in a shard, and Citus refuses to change it.
        report.orders =
            move_rows(&mut tx, &["orders", "order_lines", "order_events", "fulfilment_steps"], Some(keys::ORDERS), merge_id, keep_id)
                .await?;
        report.interactions = move_rows(&mut tx, &["interactions"], Some(keys::INTERACTIONS), merge_id, keep_id).await?;
        report.notes = move_rows(&mut tx, &["notes"], None, merge_id, keep_id).await?;
        report.contacts = move_rows(&mut tx, &["contacts"], Some(keys::CONTACTS), merge_id, keep_id).await?;
        report.changes = move_rows(&mut tx, &["customer_changes"], None, merge_id, keep_id).await?;
        crate::customer_events::registrations::on_merge(&mut tx, merge_id, keep_id).await?;
        // Customers the duplicate referred now count as referred by the one kept, each with a
        // history row (not the kept customer itself, whose own referrer is handled below).
        let actor_key = actor.key.as_str();
        let referred: Vec<(i64,)> = tx
            .fetch_all(query("SELECT id FROM customers WHERE referrer_id = $1 AND id <> $2 ORDER BY id").bind(merge_id).bind(keep_id))
            .await?;
        for (id,) in &referred {
            tx.execute(query("UPDATE customers SET referrer_id = $1, updated_at = $2 WHERE id = $3").bind(keep_id).bind(now).bind(*id))
                .await?;
            record_change(&mut tx, *id, now, actor_key, "referrer_id", Some(merge_id.to_string()), Some(keep_id.to_string())).await?;
        }
        report.referrals = referred.len() as u64;

        // The kept profile: empty fields filled from the duplicate, each with a history row.
        let mut fill: Vec<(&str, Option<String>, String)> = Vec::new();
        let text = |k: &Option<String>, d: &Option<String>| if k.is_none() { d.clone() } else { None };
        for (field, k, d) in [
            ("mobile", &keep.mobile, &dup.mobile),
            ("email", &keep.email, &dup.email),
            ("wechat_id", &keep.wechat_id, &dup.wechat_id),
            ("gender", &keep.gender, &dup.gender),
            ("city", &keep.city, &dup.city),
        ] {
            if let Some(v) = text(k, d) {
                fill.push((field, None, v));
            }
        }
        if keep.birthday.is_none() {
            if let Some(b) = dup.birthday {
                fill.push(("birthday", None, b.to_string()));
            }
        }
        if keep.owner_id.is_none() {
            if let Some(o) = dup.owner_id {
                fill.push(("owner_id", None, o.to_string()));
            }
        }
        // A referrer taken over must be neither of the two.
        let referrer_was_dup = keep.referrer_id == Some(merge_id);
        let dup_referrer = dup.referrer_id.filter(|&r| r != keep_id && r != merge_id);
        if keep.referrer_id.is_none() || referrer_was_dup {
            if let Some(r) = dup_referrer {
                fill.push(("referrer_id", keep.referrer_id.map(|v| v.to_string()), r.to_string()));
            } else if referrer_was_dup {
                fill.push(("referrer_id", Some(merge_id.to_string()), String::new()));
            }
        }
        let mut attributes = keep.attributes.0.as_object().cloned().unwrap_or_default();
        let mut attributes_changed = false;
        if let Some(theirs) = dup.attributes.0.as_object() {
            for (k, v) in theirs {
                if !attributes.contains_key(k) {
                    attributes.insert(k.clone(), v.clone());
                    record_change(&mut tx, keep_id, now, actor_key, &format!("attr.{k}"), None, v.as_str().map(str::to_owned)).await?;
                    report.fields.push(format!("attr.{k}"));
                    attributes_changed = true;
                }
            }
        }
        for (field, old, new) in &fill {
            // Columns from the fixed list above, never from input.
            let value: Option<&str> = if new.is_empty() { None } else { Some(new.as_str()) };
            let q = match *field {
                "owner_id" | "referrer_id" => {
                    let id = value.map(str::parse::<i64>).transpose().map_err(|_| StoreError::Internal(format!("{field} {new:?}")))?;
                    query(format!("UPDATE customers SET {field} = $1 WHERE id = $2")).bind(id).bind(keep_id)
                }
                "birthday" => {
                    let day =
                        value.map(|v| v.parse::<NaiveDate>()).transpose().map_err(|_| StoreError::Internal(format!("birthday {new:?}")))?;
                    query("UPDATE customers SET birthday = $1 WHERE id = $2").bind(day).bind(keep_id)
                }
                _ => query(format!("UPDATE customers SET {field} = $1 WHERE id = $2")).bind(value.map(str::to_owned)).bind(keep_id),
            };
            tx.execute(q).await?;
            record_change(&mut tx, keep_id, now, actor_key, field, old.clone(), value.map(str::to_owned)).await?;
            report.fields.push((*field).to_owned());
        }
        if attributes_changed {
            tx.execute(
                query("UPDATE customers SET attributes = $1 WHERE id = $2").bind(serde_json::Value::Object(attributes)).bind(keep_id),
            )
            .await?;
        }

        // Tags: the union. Consents: per channel, the more recent statement wins.
        let tags_of = |rows: Vec<(String,)>| rows.into_iter().map(|t| t.0).collect::<Vec<String>>();
        let tags_sql = "SELECT tag FROM customer_tags WHERE customer_id = $1 ORDER BY tag";
        let kept_tags = tags_of(tx.fetch_all(query(tags_sql).bind(keep_id)).await?);
        let dup_tags = tags_of(tx.fetch_all(query(tags_sql).bind(merge_id)).await?);
        let mut all_tags = kept_tags.clone();
        all_tags.extend(dup_tags.iter().filter(|t| !kept_tags.contains(t)).cloned());
        all_tags.sort();
        if all_tags != kept_tags {
            for tag in all_tags.iter().filter(|t| !kept_tags.contains(t)) {
                tx.execute(query("INSERT INTO customer_tags (customer_id, tag) VALUES ($1, $2)").bind(keep_id).bind(tag.as_str())).await?;
            }
            record_change(&mut tx, keep_id, now, actor_key, "tags", Some(kept_tags.join(";")), Some(all_tags.join(";"))).await?;
            report.fields.push("tags".into());
        }
        tx.execute(query("DELETE FROM customer_tags WHERE customer_id = $1").bind(merge_id)).await?;
        let consents_sql = "SELECT channel, granted, recorded_at, source FROM customer_consents WHERE customer_id = $1";
        let kept: Vec<(String, bool, DateTime<Utc>, String)> = tx.fetch_all(query(consents_sql).bind(keep_id)).await?;
        let theirs: Vec<(String, bool, DateTime<Utc>, String)> = tx.fetch_all(query(consents_sql).bind(merge_id)).await?;
        for (channel, granted, at, source) in theirs {
            let mine = kept.iter().find(|k| k.0 == channel);
            if mine.is_some_and(|m| m.2 >= at) {
                continue;
            }
            upsert_consent(&mut tx, keep_id, &channel, granted, at, &source).await?;
            if mine.map(|m| m.1) != Some(granted) {
                record_change(
                    &mut tx,
                    keep_id,
                    now,
                    actor_key,
                    &format!("consent.{channel}"),
                    mine.map(|m| m.1.to_string()),
                    Some(granted.to_string()),
                )
                .await?;
                report.fields.push(format!("consent.{channel}"));
            }
        }
        tx.execute(query("DELETE FROM customer_consents WHERE customer_id = $1").bind(merge_id)).await?;

        // The duplicate's loyalty points move to the one kept, once (keyed by the duplicate).
        report.loyalty_points = crate::loyalty::membership::on_merge(&mut tx, keep_id, merge_id, actor_key, now).await?;
        // The orders that came may be the first of a referred customer (the kept one's referrer).
        crate::loyalty::referrals::queue(&mut tx, keep_id).await?;

        // Derived rows: the kept customer's summary from all orders now theirs; the duplicate's
        // scores and summary go (the kept customer's scores are redone by the next analysis).
        tx.execute(query("DELETE FROM customer_scores WHERE customer_id = $1").bind(merge_id)).await?;
        crate::analytics::refresh_customers(&mut tx, now, &[keep_id, merge_id]).await?;
        tx.execute(query("UPDATE customers SET updated_at = $1 WHERE id = $2").bind(now).bind(keep_id)).await?;

        let describe = |p: &StoredCustomer| match &p.external_id {
            Some(e) => format!("#{} {} ({e})", p.id, p.name),
            None => format!("#{} {}", p.id, p.name),
        };
        record_change(&mut tx, keep_id, now, actor_key, "merged", None, Some(describe(&dup))).await?;
        record_change(&mut tx, merge_id, now, actor_key, "merged_into", None, Some(describe(&keep))).await?;
        let detail = format!("merged={merge_id} orders={} interactions={} notes={}", report.orders, report.interactions, report.notes);
        audit::record(&mut tx, now, actor_key, "merge", "customer", Some(keep_id.to_string()), Some(detail)).await?;
        let payload = serde_json::json!({"merged_id": merge_id, "orders": report.orders, "by": actor_key});
        crate::events::append(&mut tx, keep_id, "customer.merged", Some(merge_id), payload, now).await?;
        tx.commit().await?;
        report.customer = Some(self.customer(keep_id).await?);
        Ok(report)
    }
}

/// Moves every row of `tables` from customer `from` to customer `to`, keeping the rows' ids:
/// copies them into temporary tables under `to`, deletes the originals (children first), and
/// writes the copies back (the first table, the parent, first). The first table's external ids
/// follow in `key`'s key table. Returns the number of rows of the first table moved. Portable:
/// SQLite's ids are unique per table, so the originals must go before the copies come back.
async fn move_rows(tx: &mut Tx, tables: &[&'static str], key: Option<KeyTable>, from: i64, to: i64) -> Result<u64> {
    let stage = |t: &str| format!("patron_merge_{t}");
    for t in tables {
        tx.execute(query(format!("DROP TABLE IF EXISTS {}", stage(t)))).await?;
        // The same columns in the same order, so that `SELECT *` copies them back.
        tx.execute(query(format!("CREATE TEMP TABLE {} AS SELECT * FROM {t} WHERE 1 = 0", stage(t)))).await?;
        tx.execute(query(format!("INSERT INTO {} SELECT * FROM {t} WHERE customer_id = $1", stage(t))).bind(from)).await?;
        tx.execute(query(format!("UPDATE {} SET customer_id = $1", stage(t))).bind(to)).await?;
    }
    for t in tables.iter().rev() {
        tx.execute(query(format!("DELETE FROM {t} WHERE customer_id = $1")).bind(from)).await?;
    }
    let mut moved = 0;
    for (i, t) in tables.iter().enumerate() {
        let n = tx.execute(query(format!("INSERT INTO {t} SELECT * FROM {}", stage(t)))).await?;
        if i == 0 {
            moved = n;
            if let Some(k) = key {
                tx.execute(
                    query(format!(
                        "UPDATE {} SET customer_id = $1 WHERE external_id IN (SELECT external_id FROM {} WHERE external_id IS NOT NULL)",
                        k.table,
                        stage(t)
                    ))
                    .bind(to),
                )
                .await?;
            }
        }
    }
    for t in tables {
        tx.execute(query(format!("DROP TABLE {}", stage(t)))).await?;
    }
    Ok(moved)
}

/// A live customer as stored, read (and on PostgreSQL locked) in the transaction.
async fn profile(tx: &mut Tx, id: i64) -> Result<Option<StoredCustomer>> {
    let lock = tx.engine().row_lock();
    tx.fetch_optional(query(format!("SELECT {STORED_CUSTOMER_COLUMNS} FROM customers WHERE id = $1 AND deleted_at IS NULL{lock}")).bind(id))
        .await
}
