//! Organisation units: a tree of regions, branches, stores and teams, each with a code (the
//! `store` an order file names is a unit's code). Users belong to units; a customer has a home
//! unit. The tree's closure (`unit_paths`) is rewritten in the transaction of every change, so
//! the scope predicate reads subtrees without a recursive query.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::db::{query, Tx};
use crate::users::Actor;
use crate::{audit, Result, Store, StoreError};

/// The kinds of unit.
pub const KINDS: &[&str] = &["region", "branch", "store", "team"];

/// The settings key of [`UnitSettings`].
pub const SETTINGS: &str = "units";

/// How customers get a home unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct UnitSettings {
    /// A customer without a home unit gets the unit whose code is the `store` of its first
    /// order (on by default).
    pub home_unit_from_first_order: bool,
}

impl Default for UnitSettings {
    fn default() -> Self {
        UnitSettings { home_unit_from_first_order: true }
    }
}

/// A unit.
#[derive(serde::Deserialize, Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Unit {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Code (unique; what order files name as `store` and imports as `home_unit`).
    pub code: String,
    /// `region`, `branch`, `store` or `team`.
    pub kind: String,
    /// The parent unit (none for a root).
    pub parent_id: Option<i64>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// A new unit.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUnit {
    /// Name.
    pub name: String,
    /// Code, unique.
    pub code: String,
    /// `region`, `branch`, `store` or `team`.
    pub kind: String,
    /// Parent unit.
    pub parent_id: Option<i64>,
}

/// A change to a unit: fields left out stay; `parent_id: null` makes it a root.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UnitPatch {
    /// New name.
    pub name: Option<String>,
    /// New code.
    pub code: Option<String>,
    /// New kind.
    pub kind: Option<String>,
    /// New parent (null: a root).
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<i64>)]
    pub parent_id: Option<Option<i64>>,
}

fn double_option<'de, T: Deserialize<'de>, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

const UNIT_COLS: &str = "id, name, code, kind, parent_id, created_at, updated_at";

fn check_text(field: &str, v: &str, max: usize) -> Result<String> {
    let t = v.trim();
    if t.is_empty() {
        return Err(StoreError::invalid(field, format!("{field} must not be empty")));
    }
    if t.chars().count() > max {
        return Err(StoreError::invalid(field, format!("{field} is longer than {max} characters")));
    }
    Ok(t.to_owned())
}

fn check_kind(k: &str) -> Result<String> {
    if KINDS.contains(&k) {
        Ok(k.to_owned())
    } else {
        Err(StoreError::invalid("kind", format!("kind must be one of {}", KINDS.join(", "))))
    }
}

/// Rewrites the closure of the whole tree from `units` (the tree is small: hundreds of rows).
async fn rebuild_paths(tx: &mut Tx) -> Result<()> {
    let rows: Vec<(i64, Option<i64>)> = tx.fetch_all(query("SELECT id, parent_id FROM units")).await?;
    let parent: HashMap<i64, Option<i64>> = rows.iter().copied().collect();
    tx.execute(query("DELETE FROM unit_paths")).await?;
    for (id, _) in &rows {
        let mut at = Some(*id);
        let mut steps = 0;
        while let Some(a) = at {
            tx.execute(query("INSERT INTO unit_paths (ancestor_id, descendant_id) VALUES ($1, $2)").bind(a).bind(*id)).await?;
            at = parent.get(&a).copied().flatten();
            steps += 1;
            if steps > rows.len() {
                return Err(StoreError::Internal("the unit tree has a cycle".into()));
            }
        }
    }
    Ok(())
}

impl Store {
    /// Every unit, by code.
    pub async fn units(&self) -> Result<Vec<Unit>> {
        self.db.reader().fetch_all(query(format!("SELECT {UNIT_COLS} FROM units ORDER BY code"))).await
    }

    /// One unit.
    pub async fn unit(&self, id: i64) -> Result<Unit> {
        self.db
            .reader()
            .fetch_optional(query(format!("SELECT {UNIT_COLS} FROM units WHERE id = $1")).bind(id))
            .await?
            .ok_or(StoreError::NotFound("unit"))
    }

    /// The unit with code `code`.
    pub async fn unit_by_code(&self, code: &str) -> Result<Option<Unit>> {
        self.db.reader().fetch_optional(query(format!("SELECT {UNIT_COLS} FROM units WHERE code = $1")).bind(code.trim())).await
    }

    /// Creates a unit (audited).
    pub async fn create_unit(&self, actor: &Actor, input: NewUnit) -> Result<Unit> {
        let name = check_text("name", &input.name, 200)?;
        let code = check_text("code", &input.code, 100)?;
        let kind = check_kind(&input.kind)?;
        let now = self.now();
        let mut tx = self.db.begin().await?;
        if let Some(p) = input.parent_id {
            let found: Option<(i64,)> = tx.fetch_optional(query("SELECT id FROM units WHERE id = $1").bind(p)).await?;
            if found.is_none() {
                return Err(StoreError::invalid("parent_id", format!("no unit with id {p}")));
            }
        }
        let taken: Option<(i64,)> = tx.fetch_optional(query("SELECT id FROM units WHERE code = $1").bind(&code)).await?;
        if taken.is_some() {
            return Err(StoreError::Conflict(format!("a unit with code {code:?} exists")));
        }
        let unit: Unit = tx
            .fetch_one(
                query(format!(
                    "INSERT INTO units (name, code, kind, parent_id, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5) RETURNING {UNIT_COLS}"
                ))
                .bind(&name)
                .bind(&code)
                .bind(&kind)
                .bind(input.parent_id)
                .bind(now),
            )
            .await?;
        rebuild_paths(&mut tx).await?;
        audit::record(&mut tx, now, &actor.key, "create", "unit", Some(unit.id.to_string()), Some(format!("code={code} kind={kind}")))
            .await?;
        tx.commit().await?;
        Ok(unit)
    }

    /// Changes a unit; moving it under its own subtree is refused (audited).
    pub async fn update_unit(&self, actor: &Actor, id: i64, patch: UnitPatch) -> Result<Unit> {
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let cur: Unit = tx
            .fetch_optional(query(format!("SELECT {UNIT_COLS} FROM units WHERE id = $1")).bind(id))
            .await?
            .ok_or(StoreError::NotFound("unit"))?;
        let name = patch.name.as_deref().map(|n| check_text("name", n, 200)).transpose()?.unwrap_or(cur.name.clone());
        let code = patch.code.as_deref().map(|c| check_text("code", c, 100)).transpose()?.unwrap_or(cur.code.clone());
        let kind = patch.kind.as_deref().map(check_kind).transpose()?.unwrap_or(cur.kind.clone());
        let parent_id = patch.parent_id.unwrap_or(cur.parent_id);
        if let Some(p) = parent_id.filter(|p| Some(*p) != cur.parent_id) {
            let found: Option<(i64,)> = tx.fetch_optional(query("SELECT id FROM units WHERE id = $1").bind(p)).await?;
            if found.is_none() {
                return Err(StoreError::invalid("parent_id", format!("no unit with id {p}")));
            }
            let below: Option<(i64,)> = tx
                .fetch_optional(
                    query("SELECT descendant_id FROM unit_paths WHERE ancestor_id = $1 AND descendant_id = $2").bind(id).bind(p),
                )
                .await?;
            if below.is_some() {
                return Err(StoreError::invalid("parent_id", "a unit cannot move under itself or its own subtree"));
            }
        }
        if code != cur.code {
            let taken: Option<(i64,)> = tx.fetch_optional(query("SELECT id FROM units WHERE code = $1").bind(&code)).await?;
            if taken.is_some() {
                return Err(StoreError::Conflict(format!("a unit with code {code:?} exists")));
            }
        }
        let unit: Unit = tx
            .fetch_one(
                query(format!(
                    "UPDATE units SET name = $1, code = $2, kind = $3, parent_id = $4, updated_at = $5 WHERE id = $6 RETURNING {UNIT_COLS}"
                ))
                .bind(&name)
                .bind(&code)
                .bind(&kind)
                .bind(parent_id)
                .bind(now)
                .bind(id),
            )
            .await?;
        if parent_id != cur.parent_id {
            rebuild_paths(&mut tx).await?;
        }
        audit::record(
            &mut tx,
            now,
            &actor.key,
            "update",
            "unit",
            Some(id.to_string()),
            Some(format!("code={code} kind={kind} parent={parent_id:?}")),
        )
        .await?;
        tx.commit().await?;
        Ok(unit)
    }

    /// Deletes a unit with no child unit, no member and no customer at home in it (audited).
    pub async fn delete_unit(&self, actor: &Actor, id: i64) -> Result<()> {
        let now = self.now();
        let mut tx = self.db.begin().await?;
        // Citus: the count of customers spans the shards, then reference tables are written.
        tx.one_connection_per_node().await?;
        let found: Option<(i64,)> = tx.fetch_optional(query("SELECT id FROM units WHERE id = $1").bind(id)).await?;
        if found.is_none() {
            return Err(StoreError::NotFound("unit"));
        }
        let (children,): (i64,) = tx.fetch_one(query("SELECT COUNT(*) FROM units WHERE parent_id = $1").bind(id)).await?;
        let (members,): (i64,) = tx.fetch_one(query("SELECT COUNT(*) FROM user_units WHERE unit_id = $1").bind(id)).await?;
        let (customers,): (i64,) =
            tx.fetch_one(query("SELECT COUNT(*) FROM customers WHERE home_unit_id = $1 AND deleted_at IS NULL").bind(id)).await?;
        if children + members + customers > 0 {
            return Err(StoreError::State(format!(
                "the unit is not empty ({children} child units, {members} users, {customers} customers): move them first"
            )));
        }
        tx.execute(query("DELETE FROM unit_paths WHERE ancestor_id = $1 OR descendant_id = $1").bind(id)).await?;
        tx.execute(query("DELETE FROM units WHERE id = $1").bind(id)).await?;
        audit::record(&mut tx, now, &actor.key, "delete", "unit", Some(id.to_string()), None).await?;
        tx.commit().await
    }

    /// The units a user belongs to, by id.
    pub async fn user_unit_ids(&self, user_id: i64) -> Result<Vec<i64>> {
        let rows: Vec<(i64,)> =
            self.db.reader().fetch_all(query("SELECT unit_id FROM user_units WHERE user_id = $1 ORDER BY unit_id").bind(user_id)).await?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// Sets the units a user belongs to (audited).
    pub async fn set_user_units(&self, actor: &Actor, user_id: i64, unit_ids: &[i64]) -> Result<()> {
        let now = self.now();
        let mut tx = self.db.begin().await?;
        set_user_units_in(&mut tx, user_id, unit_ids).await?;
        audit::record(&mut tx, now, &actor.key, "update", "user", Some(user_id.to_string()), Some(format!("units={unit_ids:?}"))).await?;
        tx.commit().await
    }

    /// The unit settings.
    pub async fn unit_settings(&self) -> Result<UnitSettings> {
        self.setting(SETTINGS).await
    }
}

/// Replaces a user's units in `tx`; an unknown unit is refused on `unit_ids`.
pub(crate) async fn set_user_units_in(tx: &mut Tx, user_id: i64, unit_ids: &[i64]) -> Result<()> {
    let found: Option<(i64,)> = tx.fetch_optional(query("SELECT id FROM users WHERE id = $1").bind(user_id)).await?;
    if found.is_none() {
        return Err(StoreError::NotFound("user"));
    }
    let mut ids = unit_ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    for u in &ids {
        let found: Option<(i64,)> = tx.fetch_optional(query("SELECT id FROM units WHERE id = $1").bind(*u)).await?;
        if found.is_none() {
            return Err(StoreError::invalid("unit_ids", format!("no unit with id {u}")));
        }
    }
    tx.execute(query("DELETE FROM user_units WHERE user_id = $1").bind(user_id)).await?;
    for u in ids {
        tx.execute(query("INSERT INTO user_units (user_id, unit_id) VALUES ($1, $2)").bind(user_id).bind(u)).await?;
    }
    Ok(())
}

/// Checks a home unit exists, in `tx` (refused on `field`).
pub(crate) async fn check_unit(tx: &mut Tx, id: Option<i64>, field: &str) -> Result<()> {
    if let Some(u) = id {
        let found: Option<(i64,)> = tx.fetch_optional(query("SELECT id FROM units WHERE id = $1").bind(u)).await?;
        if found.is_none() {
            return Err(StoreError::invalid(field, format!("no unit with id {u}")));
        }
    }
    Ok(())
}

impl Store {
    /// Replaces the unit settings (audited).
    pub async fn set_unit_settings(&self, actor: &Actor, s: &UnitSettings) -> Result<()> {
        self.put_setting(actor, SETTINGS, serde_json::to_value(s).map_err(|e| StoreError::Internal(e.to_string()))?).await
    }
}

/// Gives customers `ids` without a home unit the unit whose code is the `store` of their first
/// order (by time, then id), when [`UnitSettings::home_unit_from_first_order`] is on; each
/// change is written to the customer's history. The caller holds the customers' row locks.
pub(crate) async fn assign_home_units(tx: &mut Tx, now: DateTime<Utc>, actor: &str, ids: &[i64]) -> Result<()> {
    let settings: UnitSettings = crate::settings::get_in(tx, SETTINGS).await?;
    if !settings.home_unit_from_first_order || ids.is_empty() {
        return Ok(());
    }
    let codes: HashMap<String, i64> = tx.fetch_all::<(String, i64)>(query("SELECT code, id FROM units")).await?.into_iter().collect();
    if codes.is_empty() {
        return Ok(());
    }
    let engine = tx.engine();
    // The first order of each customer without a home unit, a chunk of customers a statement
    // (customers and orders are co-located on Citus: the join runs on each shard). Only the
    // orders at the first order's time are read, by the (customer, time) index: a customer
    // whose first order named no unit (bought online) keeps no home unit, and every later
    // order of theirs comes here again.
    for chunk in ids.chunks(5000) {
        let list = serde_json::Value::Array(chunk.iter().map(|&i| i.into()).collect());
        let rows: Vec<(i64, Option<String>)> = tx
            .fetch_all(
                query(format!(
                    "SELECT c.id, o.store FROM customers c JOIN orders o ON o.customer_id = c.id \
                     WHERE c.id IN ({}) AND c.home_unit_id IS NULL AND c.deleted_at IS NULL \
                     AND o.ordered_at = (SELECT MIN(f.ordered_at) FROM orders f WHERE f.customer_id = c.id) ORDER BY c.id, o.ordered_at, o.id",
                    engine.json_ints(1)
                ))
                .bind(list),
            )
            .await?;
        let mut last = None;
        for (id, store) in rows {
            if last == Some(id) {
                continue;
            }
            last = Some(id);
            let Some(unit) = store.as_deref().and_then(|s| codes.get(s.trim())).copied() else { continue };
            tx.execute(query("UPDATE customers SET home_unit_id = $1, updated_at = $2 WHERE id = $3").bind(unit).bind(now).bind(id))
                .await?;
            crate::customers::record_change(tx, id, now, actor, "home_unit_id", None, Some(unit.to_string())).await?;
        }
    }
    Ok(())
}

impl Store {
    /// Whether unit `unit` is in the subtree of one of user `user_id`'s units.
    pub async fn unit_in_user_subtrees(&self, user_id: i64, unit: i64) -> Result<bool> {
        let row: Option<(i64,)> = self
            .db
            .reader()
            .fetch_optional(
                query("SELECT p.descendant_id FROM unit_paths p JOIN user_units uu ON uu.unit_id = p.ancestor_id WHERE uu.user_id = $1 AND p.descendant_id = $2")
                    .bind(user_id)
                    .bind(unit),
            )
            .await?;
        Ok(row.is_some())
    }
}
