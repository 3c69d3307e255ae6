//! Joint account plans (issue 19 §4): for an organisation, the goals, the mutual expectations
//! (ours of them, theirs of us), shared KPIs with targets whose actuals are computed from the
//! data, owners and a review date; and the customer-facing scorecard behind an unguessable,
//! expiring link (`/p/plan/{token}`) that shows the shared KPIs, their targets and actuals and
//! nothing else.
//!
//! KPI kinds and how their actuals are computed over the plan's window (the last
//! `window_days` days, at the time of reading):
//! - `on_time_delivery`: the percentage of the account's deliveries with a promise done on or
//!   before it ([`crate::fulfilment`]); target a percentage, met when at least it;
//! - `complaint_resolution_hours`: the mean hours from opening to resolution of the account's
//!   complaints resolved in the window; met when at most the target;
//! - `satisfaction`: the mean 1–5 score of the account's survey answers in the window; met when
//!   at least the target.
//!
//! A new plan supersedes the customer's current one: the older plan stays as history and its
//! scorecard link stops working (an erased customer's plans are superseded too). Only the SHA-256 digest of a link's token is stored (in
//! `plan_tokens`, found by the digest alone).

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use utoipa::ToSchema;

use crate::customers::lock_customers;
use crate::db::{query, Tx};
use crate::users::{digest, new_secret, Actor};
use crate::{audit, events, fulfilment, Result, Store, StoreError};

/// The KPI kinds.
pub const KPI_KINDS: [&str; 3] = ["on_time_delivery", "complaint_resolution_hours", "satisfaction"];

/// A shared KPI of a new plan.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKpi {
    /// What the two sides call it (1–100 characters), shown on the scorecard.
    pub name: String,
    /// The target: a percentage 0–100 for `on_time_delivery`, hours (0–8760) for
    /// `complaint_resolution_hours`, a score 1–5 for `satisfaction`.
    pub target: f64,
    /// `on_time_delivery`, `complaint_resolution_hours` or `satisfaction`.
    pub kind: String,
}

/// A new account plan.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPlan {
    /// The shared goals (1–10,000 characters).
    pub goals: String,
    /// What we expect of them (up to 10,000 characters).
    pub expectations_ours: String,
    /// What they expect of us (up to 10,000 characters).
    pub expectations_theirs: String,
    /// The shared KPIs (1–20).
    pub kpis: Vec<NewKpi>,
    /// The plan's owners on our side (users; default: the caller's user).
    pub owner_ids: Option<Vec<i64>>,
    /// When the two sides review the plan.
    pub review_on: Option<NaiveDate>,
    /// Days the actuals look back (7–730, default 90).
    pub window_days: Option<i64>,
    /// Days the scorecard link works (1–365, default 90).
    pub scorecard_days: Option<i64>,
}

/// A KPI with its actual.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Kpi {
    /// Name.
    pub name: String,
    /// Kind.
    pub kind: String,
    /// `percent`, `hours` or `score`.
    pub unit: String,
    /// `at_least` or `at_most`: how the actual meets the target.
    pub direction: String,
    /// The target.
    pub target: f64,
    /// The actual over the window (2 decimals); null without data.
    pub actual: Option<f64>,
    /// Whether the actual meets the target; null without data.
    pub met: Option<bool>,
    /// How many deliveries, complaints or answers the actual is computed from.
    pub basis: i64,
}

/// An account plan.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Plan {
    /// Id.
    pub id: i64,
    /// The organisation.
    pub customer_id: i64,
    /// Goals.
    pub goals: String,
    /// What we expect of them.
    pub expectations_ours: String,
    /// What they expect of us.
    pub expectations_theirs: String,
    /// The shared KPIs with their actuals now.
    pub kpis: Vec<Kpi>,
    /// Owners (user ids).
    pub owner_ids: Vec<i64>,
    /// Review date.
    pub review_on: Option<NaiveDate>,
    /// Days the actuals look back.
    pub window_days: i64,
    /// When the scorecard link stops working.
    pub scorecard_expires_at: DateTime<Utc>,
    /// Whether this is the customer's current plan (not superseded by a newer one).
    pub current: bool,
    /// When a newer plan replaced it.
    pub superseded_at: Option<DateTime<Utc>>,
    /// Who made it (actor key).
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// What the customer sees on the scorecard: the shared KPIs, targets and actuals — no names,
/// money, goals or anything else.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Scorecard {
    /// The KPIs.
    pub kpis: Vec<ScorecardKpi>,
    /// Days the actuals look back.
    pub window_days: i64,
    /// When the actuals were computed.
    pub as_of: DateTime<Utc>,
    /// When the link stops working.
    pub expires_at: DateTime<Utc>,
}

/// One KPI on the scorecard.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ScorecardKpi {
    /// Name.
    pub name: String,
    /// Kind.
    pub kind: String,
    /// `percent`, `hours` or `score`.
    pub unit: String,
    /// `at_least` or `at_most`.
    pub direction: String,
    /// Target.
    pub target: f64,
    /// Actual; null without data.
    pub actual: Option<f64>,
    /// Met; null without data.
    pub met: Option<bool>,
}

fn unit_of(kind: &str) -> (&'static str, &'static str) {
    match kind {
        "on_time_delivery" => ("percent", "at_least"),
        "complaint_resolution_hours" => ("hours", "at_most"),
        _ => ("score", "at_least"),
    }
}

fn validate(p: &NewPlan) -> Result<()> {
    let text = |field: &str, v: &str, min: usize| {
        let n = v.trim().chars().count();
        if n < min || v.chars().count() > 10_000 {
            return Err(StoreError::invalid(field, if min > 0 { "1 to 10,000 characters" } else { "at most 10,000 characters" }));
        }
        Ok(())
    };
    text("goals", &p.goals, 1)?;
    text("expectations_ours", &p.expectations_ours, 0)?;
    text("expectations_theirs", &p.expectations_theirs, 0)?;
    if p.kpis.is_empty() || p.kpis.len() > 20 {
        return Err(StoreError::invalid("kpis", "give 1 to 20 KPIs"));
    }
    for (i, k) in p.kpis.iter().enumerate() {
        let n = k.name.trim().chars().count();
        if n == 0 || k.name.chars().count() > 100 {
            return Err(StoreError::invalid(format!("kpis[{i}].name"), "1 to 100 characters"));
        }
        let range = match k.kind.as_str() {
            "on_time_delivery" => 0.0..=100.0,
            "complaint_resolution_hours" => 0.0..=8760.0,
            "satisfaction" => 1.0..=5.0,
            _ => return Err(StoreError::invalid(format!("kpis[{i}].kind"), format!("kind must be one of {}", KPI_KINDS.join(", ")))),
        };
        if !k.target.is_finite() || !range.contains(&k.target) {
            return Err(StoreError::invalid(
                format!("kpis[{i}].target"),
                format!("for {} the target is {} to {}", k.kind, range.start(), range.end()),
            ));
        }
    }
    if p.window_days.is_some_and(|d| !(7..=730).contains(&d)) {
        return Err(StoreError::invalid("window_days", "7 to 730 days"));
    }
    if p.scorecard_days.is_some_and(|d| !(1..=365).contains(&d)) {
        return Err(StoreError::invalid("scorecard_days", "1 to 365 days"));
    }
    if p.owner_ids.as_ref().is_some_and(|o| o.len() > 20) {
        return Err(StoreError::invalid("owner_ids", "at most 20 owners"));
    }
    Ok(())
}

#[derive(serde::Deserialize, sqlx::FromRow)]
struct PlanRow {
    id: i64,
    customer_id: i64,
    goals: String,
    expectations_ours: String,
    expectations_theirs: String,
    #[serde(deserialize_with = "crate::db::direct::json_text")]
    kpis: Json<Vec<NewKpi>>,
    #[serde(deserialize_with = "crate::db::direct::json_text")]
    owner_ids: Json<Vec<i64>>,
    review_on: Option<String>,
    window_days: i64,
    scorecard_expires_at: DateTime<Utc>,
    superseded_at: Option<DateTime<Utc>>,
    created_by: String,
    created_at: DateTime<Utc>,
}

const PLAN_SELECT: &str =
    "SELECT id, customer_id, goals, expectations_ours, expectations_theirs, kpis, owner_ids, review_on, window_days, \
     scorecard_expires_at, superseded_at, created_by, created_at FROM account_plans";

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// The actual of one KPI kind for a customer over `[from, to)`: (actual, basis).
async fn actual(tx: &mut Tx, customer_id: i64, kind: &str, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<(Option<f64>, i64)> {
    match kind {
        "on_time_delivery" => {
            let (delivered, on_time) = fulfilment::customer_on_time(tx, customer_id, from, to).await?;
            Ok(((delivered > 0).then(|| round2(on_time as f64 * 100.0 / delivered as f64)), delivered))
        }
        "complaint_resolution_hours" => {
            let rows: Vec<(DateTime<Utc>, DateTime<Utc>)> = tx
                .fetch_all(
                    query(
                        "SELECT opened_at, resolved_at FROM tickets WHERE customer_id = $1 AND kind = 'complaint' \
                         AND resolved_at IS NOT NULL AND resolved_at >= $2 AND resolved_at < $3",
                    )
                    .bind(customer_id)
                    .bind(from)
                    .bind(to),
                )
                .await?;
            let n = rows.len() as i64;
            let total: f64 = rows.iter().map(|(o, r)| (*r - *o).num_seconds().max(0) as f64 / 3600.0).sum();
            Ok(((n > 0).then(|| round2(total / n as f64)), n))
        }
        _ => {
            let rows: Vec<(i64,)> = tx
                .fetch_all(
                    query(
                        "SELECT score FROM survey_answers WHERE customer_id = $1 AND score IS NOT NULL AND answered_at >= $2 AND answered_at < $3",
                    )
                    .bind(customer_id)
                    .bind(from)
                    .bind(to),
                )
                .await?;
            let n = rows.len() as i64;
            let total: i64 = rows.iter().map(|r| r.0).sum();
            Ok(((n > 0).then(|| round2(total as f64 / n as f64)), n))
        }
    }
}

async fn kpis_of(tx: &mut Tx, row: &PlanRow, now: DateTime<Utc>) -> Result<Vec<Kpi>> {
    let from = now - Duration::days(row.window_days);
    let mut out = Vec::with_capacity(row.kpis.0.len());
    for k in &row.kpis.0 {
        let (unit, direction) = unit_of(&k.kind);
        let (actual, basis) = actual(tx, row.customer_id, &k.kind, from, now).await?;
        let met = actual.map(|a| if direction == "at_most" { a <= k.target } else { a >= k.target });
        out.push(Kpi {
            name: k.name.clone(),
            kind: k.kind.clone(),
            unit: unit.into(),
            direction: direction.into(),
            target: k.target,
            actual,
            met,
            basis,
        });
    }
    Ok(out)
}

async fn plan_of(tx: &mut Tx, row: PlanRow, now: DateTime<Utc>) -> Result<Plan> {
    let kpis = kpis_of(tx, &row, now).await?;
    Ok(Plan {
        id: row.id,
        customer_id: row.customer_id,
        goals: row.goals,
        expectations_ours: row.expectations_ours,
        expectations_theirs: row.expectations_theirs,
        kpis,
        owner_ids: row.owner_ids.0,
        review_on: row.review_on.and_then(|d| NaiveDate::parse_from_str(&d, "%Y-%m-%d").ok()),
        window_days: row.window_days,
        scorecard_expires_at: row.scorecard_expires_at,
        current: row.superseded_at.is_none(),
        superseded_at: row.superseded_at,
        created_by: row.created_by,
        created_at: row.created_at,
    })
}

/// A token can only be one patron made: 64 hex digits.
fn well_formed(token: &str) -> bool {
    token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit())
}

impl Store {
    /// Makes a plan for an organisation, superseding its current one (whose link stops
    /// working). Returns the plan and the scorecard token (shown once, never stored).
    pub async fn create_plan(&self, actor: &Actor, customer_id: i64, p: &NewPlan) -> Result<(Plan, String)> {
        validate(p)?;
        let now = self.now();
        let owners: Vec<i64> = match &p.owner_ids {
            Some(o) => {
                let mut o = o.clone();
                o.sort_unstable();
                o.dedup();
                o
            }
            None => actor.user_id.into_iter().collect(),
        };
        let mut tx = self.db.begin().await?;
        if lock_customers(&mut tx, &[customer_id]).await?.is_some() {
            return Err(StoreError::NotFound("customer"));
        }
        let (kind,): (String,) = tx.fetch_one(query("SELECT kind FROM customers WHERE id = $1").bind(customer_id)).await?;
        if kind != "organisation" {
            return Err(StoreError::invalid("customer_id", "account plans are for organisations (this customer is a person)"));
        }
        for o in &owners {
            let found: Option<(i64,)> =
                tx.fetch_optional(query("SELECT id FROM users WHERE id = $1 AND disabled_at IS NULL").bind(*o)).await?;
            if found.is_none() {
                return Err(StoreError::invalid("owner_ids", format!("no active user {o}")));
            }
        }
        // The current plan is superseded: its link no longer finds it (the token's row stays; on
        // Citus it lives in the token's shard, not the customer's).
        let old: Vec<(i64,)> =
            tx.fetch_all(query("SELECT id FROM account_plans WHERE customer_id = $1 AND superseded_at IS NULL").bind(customer_id)).await?;
        for (id,) in &old {
            tx.execute(
                query("UPDATE account_plans SET superseded_at = $1 WHERE customer_id = $2 AND id = $3")
                    .bind(now)
                    .bind(customer_id)
                    .bind(*id),
            )
            .await?;
        }
        let expires = now + Duration::days(p.scorecard_days.unwrap_or(90));
        let kpis: Vec<NewKpi> =
            p.kpis.iter().map(|k| NewKpi { name: k.name.trim().to_owned(), target: k.target, kind: k.kind.clone() }).collect();
        let (id,): (i64,) = tx
            .fetch_one(
                query(
                    "INSERT INTO account_plans (customer_id, goals, expectations_ours, expectations_theirs, kpis, owner_ids, review_on, \
                     window_days, scorecard_expires_at, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
                )
                .bind(customer_id)
                .bind(p.goals.trim())
                .bind(p.expectations_ours.trim())
                .bind(p.expectations_theirs.trim())
                .bind(serde_json::to_value(&kpis).map_err(|e| StoreError::Internal(e.to_string()))?)
                .bind(serde_json::to_value(&owners).map_err(|e| StoreError::Internal(e.to_string()))?)
                .bind(p.review_on.map(|d| d.format("%Y-%m-%d").to_string()))
                .bind(p.window_days.unwrap_or(90))
                .bind(expires)
                .bind(actor.key.as_str())
                .bind(now),
            )
            .await?;
        let token = new_secret("");
        tx.execute(
            query("INSERT INTO plan_tokens (token_hash, customer_id, plan_id, expires_at) VALUES ($1, $2, $3, $4)")
                .bind(digest(&token))
                .bind(customer_id)
                .bind(id)
                .bind(expires),
        )
        .await?;
        events::append(&mut tx, customer_id, "plan.created", Some(id), serde_json::json!({"kpis": kpis.len(), "by": actor.key}), now)
            .await?;
        audit::record(&mut tx, now, &actor.key, "create", "account_plan", Some(id.to_string()), Some(format!("customer={customer_id}")))
            .await?;
        let row: PlanRow =
            tx.fetch_one(query(format!("{PLAN_SELECT} WHERE customer_id = $1 AND id = $2")).bind(customer_id).bind(id)).await?;
        let plan = plan_of(&mut tx, row, now).await?;
        tx.commit().await?;
        Ok((plan, token))
    }

    /// A customer's plans, the current first, then the older ones newest first.
    pub async fn plans(&self, customer_id: i64) -> Result<Vec<Plan>> {
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let rows: Vec<PlanRow> =
            tx.fetch_all(query(format!("{PLAN_SELECT} WHERE customer_id = $1 ORDER BY id DESC LIMIT 100")).bind(customer_id)).await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push(plan_of(&mut tx, r, now).await?);
        }
        tx.rollback().await?;
        Ok(out)
    }

    /// The scorecard behind a public token: NotFound for an unknown, forged, expired or
    /// superseded one (the page answers 404 alike, telling nothing).
    pub async fn plan_scorecard(&self, token: &str) -> Result<Scorecard> {
        if !well_formed(token) {
            return Err(StoreError::NotFound("scorecard"));
        }
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let found: Option<(i64, i64, DateTime<Utc>)> = tx
            .fetch_optional(query("SELECT customer_id, plan_id, expires_at FROM plan_tokens WHERE token_hash = $1").bind(digest(token)))
            .await?;
        let Some((customer_id, plan_id, expires_at)) = found.filter(|f| f.2 > now) else {
            return Err(StoreError::NotFound("scorecard"));
        };
        let row: Option<PlanRow> = tx
            .fetch_optional(
                query(format!("{PLAN_SELECT} WHERE customer_id = $1 AND id = $2 AND superseded_at IS NULL"))
                    .bind(customer_id)
                    .bind(plan_id),
            )
            .await?;
        let Some(row) = row else { return Err(StoreError::NotFound("scorecard")) };
        let kpis = kpis_of(&mut tx, &row, now).await?;
        tx.rollback().await?;
        Ok(Scorecard {
            kpis: kpis
                .into_iter()
                .map(|k| ScorecardKpi {
                    name: k.name,
                    kind: k.kind,
                    unit: k.unit,
                    direction: k.direction,
                    target: k.target,
                    actual: k.actual,
                    met: k.met,
                })
                .collect(),
            window_days: row.window_days,
            as_of: now,
            expires_at,
        })
    }
}
