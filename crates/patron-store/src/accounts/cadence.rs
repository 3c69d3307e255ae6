//! Contact cadence by tier (issue 19 §2): how often each managed account is to be contacted
//! (the tier's service policy, or the customer's own `contact_cadence_days`), when it was last
//! contacted meaningfully, when the next contact is due and by how many days it is overdue; and
//! the scheduler's one task per due contact.
//!
//! A **managed account** has an account team, or is an organisation with an owner. A
//! **meaningful contact** is an interaction of a kind in the settings' `meaningful_kinds`,
//! recorded by the owner or a team member, or without a recorded user (imported from the
//! team's own systems).

use std::collections::HashMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::access::CustomerScope;
use crate::db::query;
use crate::users::Actor;
use crate::{Result, Store, StoreError};

/// One managed account's contact position.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CadenceRow {
    /// The customer.
    pub customer_id: i64,
    /// Their name.
    pub name: String,
    /// ABCD tier (`default` before the first analysis).
    pub tier: String,
    /// The owner.
    pub owner_id: Option<i64>,
    /// The account manager (the team's `account_manager`, else the owner).
    pub account_manager_id: Option<i64>,
    /// Days between meaningful contacts.
    pub cadence_days: i64,
    /// `customer` (their own) or `tier` (the tier's service policy).
    pub cadence_source: String,
    /// The last meaningful contact.
    pub last_contact_at: Option<DateTime<Utc>>,
    /// The business day the next contact is due.
    pub next_contact_due: NaiveDate,
    /// Days past that day (negative: days left).
    pub days_overdue: i64,
    /// Predicted customer lifetime value (cents), when analysed.
    pub clv_cents: Option<i64>,
    /// Probability the customer is still active, when analysed.
    pub p_alive: Option<f64>,
    /// When the customer was created (the start of the first cycle).
    #[serde(skip)]
    pub created_at: DateTime<Utc>,
    /// Relationship stage.
    pub relationship_stage: Option<String>,
}

/// Which overdue accounts to list.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct CadenceFilter {
    /// Accounts whose account manager is this user.
    pub user_id: Option<i64>,
    /// One tier (`A`, `B`, `C`, `D`, `default`).
    pub tier: Option<String>,
}

type ManagedSqlRow = (i64, String, Option<i64>, Option<i64>, DateTime<Utc>, Option<String>, Option<f64>, Option<f64>, Option<String>);

/// The predicate of a managed account on `customers c`.
pub(crate) const MANAGED: &str =
    "(EXISTS (SELECT 1 FROM account_team mt WHERE mt.customer_id = c.id) OR (c.kind = 'organisation' AND c.owner_id IS NOT NULL))";

impl Store {
    /// The managed accounts `actor` sees, restricted to `ids` when given, with their contact
    /// position (at most 10,000).
    pub(crate) async fn cadence_rows(&self, actor: &Actor, ids: Option<&[i64]>) -> Result<Vec<CadenceRow>> {
        let engine = self.db.engine();
        let mut q = query(String::new());
        let mut sql = format!(
            "SELECT c.id, c.name, c.owner_id, c.contact_cadence_days, c.created_at, s.abcd_tier, s.clv_cents, s.p_alive, c.relationship_stage \
             FROM customers c LEFT JOIN customer_scores s ON s.customer_id = c.id \
             WHERE c.deleted_at IS NULL AND {MANAGED} AND {}",
            CustomerScope::of(actor).sql("c")
        );
        if let Some(ids) = ids {
            sql.push_str(&format!(" AND c.id IN ({})", engine.json_ints(1)));
            q.push(serde_json::json!(ids));
        }
        sql.push_str(" ORDER BY c.id LIMIT 10000");
        let mut full = query(sql);
        for a in q.into_args() {
            full.push(a);
        }
        let rows: Vec<ManagedSqlRow> = self.db.reader().fetch_all(full).await?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let all: Vec<i64> = rows.iter().map(|r| r.0).collect();
        let settings = self.account_settings().await?;
        let kinds = settings
            .meaningful_kinds
            .iter()
            .filter_map(|k| crate::values::parse_interaction_kind(k).ok())
            .map(|k| format!("'{k}'"))
            .collect::<Vec<_>>()
            .join(", ");
        let kinds = if kinds.is_empty() { "'call'".to_owned() } else { kinds };
        let now = self.now();
        let last: Vec<(i64, Option<DateTime<Utc>>)> = self
            .db
            .reader()
            .fetch_all(
                query(format!(
                    "SELECT i.customer_id, MAX(i.occurred_at) FROM interactions i JOIN customers c ON c.id = i.customer_id \
                     WHERE i.customer_id IN ({}) AND i.kind IN ({kinds}) AND i.occurred_at <= $2 \
                     AND (i.user_id IS NULL OR i.user_id = c.owner_id OR EXISTS \
                     (SELECT 1 FROM account_team t WHERE t.customer_id = i.customer_id AND t.user_id = i.user_id)) \
                     GROUP BY i.customer_id",
                    engine.json_ints(1)
                ))
                .bind(serde_json::json!(all))
                .bind(now),
            )
            .await?;
        let last: HashMap<i64, Option<DateTime<Utc>>> = last.into_iter().collect();
        let ams: Vec<(i64, i64)> = self
            .db
            .reader()
            .fetch_all(
                query(format!(
                    "SELECT customer_id, user_id FROM account_team WHERE role = 'account_manager' AND customer_id IN ({})",
                    engine.json_ints(1)
                ))
                .bind(serde_json::json!(all)),
            )
            .await?;
        let ams: HashMap<i64, i64> = ams.into_iter().collect();
        let mut policies = HashMap::new();
        for tier in crate::service::policies::TIERS {
            policies.insert(tier.to_owned(), self.service_policy(tier).await?.contact_cadence_days);
        }
        let today = self.business_today();
        Ok(rows
            .into_iter()
            .map(|(id, name, owner_id, own_cadence, created_at, tier, clv, p_alive, stage)| {
                let tier = tier.filter(|t| crate::service::policies::TIERS.contains(&t.as_str())).unwrap_or_else(|| "default".into());
                let (cadence_days, cadence_source) = match own_cadence {
                    Some(d) => (d, "customer"),
                    None => (policies.get(&tier).copied().unwrap_or(90), "tier"),
                };
                let last_contact_at = last.get(&id).copied().flatten();
                let start = self.business_date(last_contact_at.unwrap_or(created_at));
                let next_contact_due = start + Duration::days(cadence_days);
                CadenceRow {
                    customer_id: id,
                    name,
                    tier,
                    owner_id,
                    account_manager_id: ams.get(&id).copied().or(owner_id),
                    cadence_days,
                    cadence_source: cadence_source.into(),
                    last_contact_at,
                    next_contact_due,
                    days_overdue: (today - next_contact_due).num_days(),
                    clv_cents: clv.filter(|v| v.is_finite()).map(|v| v.round().clamp(i64::MIN as f64, i64::MAX as f64) as i64),
                    p_alive: p_alive.filter(|v| v.is_finite()),
                    created_at,
                    relationship_stage: stage,
                }
            })
            .collect())
    }

    /// Managed accounts whose last meaningful contact is older than their cadence, most overdue
    /// first (then by value).
    pub async fn cadence_overdue(&self, actor: &Actor, f: &CadenceFilter) -> Result<Vec<CadenceRow>> {
        if let Some(t) = &f.tier {
            if !crate::service::policies::TIERS.contains(&t.as_str()) {
                return Err(StoreError::invalid("tier", format!("tier must be one of {}", crate::service::policies::TIERS.join(", "))));
            }
        }
        let mut rows: Vec<CadenceRow> = self
            .cadence_rows(actor, None)
            .await?
            .into_iter()
            .filter(|r| r.days_overdue > 0)
            .filter(|r| f.user_id.is_none() || r.account_manager_id == f.user_id)
            .filter(|r| f.tier.is_none() || f.tier.as_deref() == Some(r.tier.as_str()))
            .collect();
        rows.sort_by(|a, b| {
            b.days_overdue.cmp(&a.days_overdue).then(b.clv_cents.cmp(&a.clv_cents)).then(a.customer_id.cmp(&b.customer_id))
        });
        Ok(rows)
    }

    /// One customer's contact position (None when not a managed account).
    pub async fn next_contact(&self, actor: &Actor, customer_id: i64) -> Result<Option<CadenceRow>> {
        Ok(self.cadence_rows(actor, Some(&[customer_id])).await?.pop())
    }

    /// Makes one task for the account manager of each account whose contact is due, keyed by
    /// the account and the due day: a rerun, or a second scheduler at once, makes none again.
    pub(crate) async fn run_cadence_tasks(&self) -> Result<u64> {
        let rows = self.cadence_rows(&Actor::cli(), None).await?;
        let now = self.now();
        let mut made = 0;
        let due: Vec<&CadenceRow> = rows.iter().filter(|r| r.days_overdue >= 0 && r.account_manager_id.is_some()).collect();
        if due.is_empty() {
            return Ok(0);
        }
        let mut tx = self.db.begin().await?;
        for r in due {
            let key = format!("cadence:{}:{}", r.customer_id, r.next_contact_due);
            let title = format!("Regular contact due (every {} days)", r.cadence_days);
            let written = crate::tasks::insert_task(
                &mut tx,
                &title,
                Some(r.customer_id),
                r.account_manager_id,
                Some(r.next_contact_due),
                "cadence",
                Some(&key),
                now,
            )
            .await?;
            if written.is_some() {
                made += 1;
            }
        }
        tx.commit().await?;
        Ok(made)
    }
}
