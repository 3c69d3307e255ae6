//! Account management (issue 19 §1–§3): account teams and portfolios ([`team`]), contact
//! cadence by tier ([`cadence`]), relationship stage, people map and health reviews
//! ([`relationship`], [`reviews`]), and what the scheduler does for them ([`Store::run_accounts`]).
//!
//! Settings live under the key `accounts` ([`AccountSettings`]).

pub mod cadence;
pub mod digest;
pub mod kpis;
pub mod relationship;
pub mod reviews;
pub mod tasks;
pub mod team;

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::db::{query, Tx};
use crate::users::Actor;
use crate::{Result, Store, StoreError};

/// The settings key of [`AccountSettings`].
pub const SETTINGS_KEY: &str = "accounts";

/// The roles on an account team the product knows (free roles are allowed too).
pub const TEAM_ROLES: [&str; 4] = ["account_manager", "service", "technical", "executive_sponsor"];

/// How often the account digest goes out (`off`: never).
pub const DIGEST_PERIODS: [&str; 3] = ["weekly", "monthly", "off"];

/// The relationship stages, in order.
pub const STAGES: [&str; 4] = ["acquaintance", "breakthrough", "consolidation", "partnership"];

/// Weights of a review's parts in the review score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ReviewWeights {
    /// Responsiveness to the client's concerns.
    pub responsiveness: f64,
    /// Price competitive and fair for the value.
    pub price: f64,
    /// On-time delivery.
    pub delivery: f64,
    /// Other obligations kept.
    pub obligations: f64,
    /// Complaints resolved quickly and well.
    pub complaints: f64,
    /// Contract terms reasonable.
    pub contract: f64,
    /// The overall sentiment.
    pub sentiment: f64,
}

impl Default for ReviewWeights {
    fn default() -> Self {
        ReviewWeights { responsiveness: 1.0, price: 1.0, delivery: 1.0, obligations: 1.0, complaints: 1.0, contract: 1.0, sentiment: 2.0 }
    }
}

/// How account management behaves (settings key `accounts`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct AccountSettings {
    /// Interaction kinds that count as a meaningful contact (by a team member or the owner).
    pub meaningful_kinds: Vec<String>,
    /// Days between relationship reviews by tier (`A`, `B`, `C`, `D`, `default`).
    pub review_days: BTreeMap<String, i64>,
    /// Weights of the review's scores.
    pub review_weights: ReviewWeights,
    /// Share of the health score that the review gives (0–1); the rest comes from the
    /// measured signals available (complaints, reopens, surveys, P(alive), spend trend,
    /// on-time delivery).
    pub review_share: f64,
    /// A health score this many points below the previous review's notifies the owner.
    pub health_drop_alert: f64,
    /// Guidance shown on the 360 for each stage (editable).
    pub stage_guidance: BTreeMap<String, String>,
    /// The account digest to the account team: `weekly` (the last Monday–Sunday), `monthly`
    /// (the last calendar month) or `off`.
    pub digest: String,
}

impl Default for AccountSettings {
    fn default() -> Self {
        let days = [("A", 90), ("B", 180), ("C", 365), ("D", 365), ("default", 365)];
        let guidance = [
            ("acquaintance", "初识 — get to know their people and their needs; find one shared interest; agree how often to meet."),
            ("breakthrough", "突破 — deliver a first visible win; widen the ties beyond one contact; review the relationship."),
            ("consolidation", "巩固 — keep the cadence; resolve every complaint fast; meet the executive sponsor; plan together."),
            ("partnership", "伙伴 — joint goals and measures; regular reviews at senior level; share plans and forecasts."),
        ];
        AccountSettings {
            meaningful_kinds: vec!["call".into(), "visit".into(), "reply".into()],
            review_days: days.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
            review_weights: ReviewWeights::default(),
            review_share: 0.6,
            health_drop_alert: 5.0,
            stage_guidance: guidance.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            digest: "weekly".into(),
        }
    }
}

impl AccountSettings {
    /// Checks the values are usable.
    pub fn validate(&self) -> Result<()> {
        if self.meaningful_kinds.is_empty() {
            return Err(StoreError::invalid("meaningful_kinds", "give at least one interaction kind"));
        }
        for k in &self.meaningful_kinds {
            crate::values::parse_interaction_kind(k).map_err(|m| StoreError::invalid("meaningful_kinds", m))?;
        }
        for (tier, d) in &self.review_days {
            if !crate::service::policies::TIERS.contains(&tier.as_str()) {
                return Err(StoreError::invalid("review_days", format!("unknown tier {tier:?}")));
            }
            if !(1..=3650).contains(d) {
                return Err(StoreError::invalid("review_days", "days must be 1 to 3650"));
            }
        }
        let w = &self.review_weights;
        let ws = [w.responsiveness, w.price, w.delivery, w.obligations, w.complaints, w.contract, w.sentiment];
        if ws.iter().any(|x| !x.is_finite() || *x < 0.0 || *x > 100.0) || ws.iter().sum::<f64>() <= 0.0 {
            return Err(StoreError::invalid("review_weights", "weights must be 0 to 100 and not all 0"));
        }
        if !self.review_share.is_finite() || !(0.0..=1.0).contains(&self.review_share) {
            return Err(StoreError::invalid("review_share", "must be 0 to 1"));
        }
        if !self.health_drop_alert.is_finite() || !(0.0..=100.0).contains(&self.health_drop_alert) {
            return Err(StoreError::invalid("health_drop_alert", "must be 0 to 100"));
        }
        if !DIGEST_PERIODS.contains(&self.digest.as_str()) {
            return Err(StoreError::invalid("digest", format!("digest must be one of {}", DIGEST_PERIODS.join(", "))));
        }
        for (stage, text) in &self.stage_guidance {
            if !STAGES.contains(&stage.as_str()) {
                return Err(StoreError::invalid("stage_guidance", format!("unknown stage {stage:?}")));
            }
            if text.chars().count() > 2000 {
                return Err(StoreError::invalid("stage_guidance", "at most 2000 characters per stage"));
            }
        }
        Ok(())
    }

    /// Days between reviews for `tier`.
    pub fn review_days_for(&self, tier: &str) -> i64 {
        self.review_days.get(tier).or_else(|| self.review_days.get("default")).copied().unwrap_or(365)
    }
}

/// What the scheduler did for account management.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct AccountsReport {
    /// Contact tasks made for account managers (each due contact once).
    pub cadence_tasks: u64,
    /// Owners notified of an overdue review (each review cycle once).
    pub review_alerts: u64,
    /// Account digests made (one per account, recipient and period: in-app and by e-mail).
    pub digests: u64,
}

impl Store {
    /// The account-management settings.
    pub async fn account_settings(&self) -> Result<AccountSettings> {
        self.setting(SETTINGS_KEY).await
    }

    /// Replaces the account-management settings (audited).
    pub async fn set_account_settings(&self, actor: &Actor, s: &AccountSettings) -> Result<()> {
        s.validate()?;
        self.put_setting(actor, SETTINGS_KEY, serde_json::to_value(s).map_err(|e| StoreError::Internal(e.to_string()))?).await
    }

    /// Today in the business time zone.
    pub(crate) fn business_today(&self) -> NaiveDate {
        self.now().with_timezone(&self.config.business_tz).date_naive()
    }

    pub(crate) fn business_date(&self, t: DateTime<Utc>) -> NaiveDate {
        t.with_timezone(&self.config.business_tz).date_naive()
    }

    /// Everything of account management that falls due with time: one contact task per due
    /// contact, one notification per overdue review. Exactly once per occasion, whatever reruns.
    pub async fn run_accounts(&self) -> Result<AccountsReport> {
        let cadence_tasks = self.run_cadence_tasks().await?;
        let review_alerts = self.run_review_alerts().await?;
        let digests = self.run_account_digests().await?;
        Ok(AccountsReport { cadence_tasks, review_alerts, digests })
    }
}

/// Notifies a user about an account (no ticket) in `tx`.
pub(crate) async fn notify_account(
    tx: &mut Tx,
    user_id: i64,
    kind: &str,
    customer_id: i64,
    message: &str,
    at: DateTime<Utc>,
) -> Result<()> {
    tx.execute(
        query("INSERT INTO notifications (user_id, kind, customer_id, ticket_id, message, created_at) VALUES ($1, $2, $3, NULL, $4, $5)")
            .bind(user_id)
            .bind(kind)
            .bind(customer_id)
            .bind(message)
            .bind(at),
    )
    .await?;
    Ok(())
}

/// Claims a one-time alert for a customer in `tx`; true when this call claimed it.
pub(crate) async fn claim_alert(tx: &mut Tx, customer_id: i64, key: &str, at: DateTime<Utc>) -> Result<bool> {
    let row: Option<(i64,)> = tx
        .fetch_optional(
            query(
                "INSERT INTO account_alerts (customer_id, alert_key, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (customer_id, alert_key) DO NOTHING RETURNING customer_id",
            )
            .bind(customer_id)
            .bind(key)
            .bind(at),
        )
        .await?;
    Ok(row.is_some())
}

/// Checks that `id` is an active user; refused on `field` otherwise.
pub(crate) async fn check_user(tx: &mut Tx, field: &str, id: i64) -> Result<String> {
    let row: Option<(String,)> = tx.fetch_optional(query("SELECT name FROM users WHERE id = $1 AND disabled_at IS NULL").bind(id)).await?;
    row.map(|r| r.0).ok_or_else(|| StoreError::invalid(field, format!("no active user {id}")))
}

/// One account of a portfolio ("My accounts").
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PortfolioRow {
    /// The customer.
    pub customer_id: i64,
    /// Name.
    pub name: String,
    /// ABCD tier (`default` before the first analysis).
    pub tier: String,
    /// Predicted lifetime value (cents).
    pub clv_cents: Option<i64>,
    /// P(alive).
    pub p_alive: Option<f64>,
    /// The owner.
    pub owner_id: Option<i64>,
    /// The account manager.
    pub account_manager_id: Option<i64>,
    /// The last meaningful contact.
    pub last_contact_at: Option<DateTime<Utc>>,
    /// The next contact's due day.
    pub next_contact_due: NaiveDate,
    /// Days past it (negative: days left).
    pub days_overdue: i64,
    /// Open tickets.
    pub open_tickets: i64,
    /// Relationship stage.
    pub relationship_stage: Option<String>,
    /// The latest review's health score.
    pub health_score: Option<f64>,
}

impl Store {
    /// A user's portfolio as `actor` sees it: the managed accounts they own or are on the team of.
    pub async fn portfolio(&self, actor: &Actor, user_id: i64) -> Result<Vec<PortfolioRow>> {
        let ids = self.portfolio_ids(actor, user_id).await?;
        let rows = self.cadence_rows(actor, Some(&ids)).await?;
        let all: Vec<i64> = rows.iter().map(|r| r.customer_id).collect();
        let health = self.latest_health(&all).await?;
        let open: Vec<(i64, i64)> = if all.is_empty() {
            Vec::new()
        } else {
            self.db
                .reader()
                .fetch_all(
                    query(format!(
                        "SELECT customer_id, COUNT(*) FROM tickets WHERE customer_id IN ({}) AND status NOT IN ('resolved', 'confirmed') \
                         GROUP BY customer_id",
                        self.db.engine().json_ints(1)
                    ))
                    .bind(serde_json::json!(all)),
                )
                .await?
        };
        let open: std::collections::HashMap<i64, i64> = open.into_iter().collect();
        Ok(rows
            .into_iter()
            .map(|r| PortfolioRow {
                customer_id: r.customer_id,
                name: r.name,
                tier: r.tier,
                clv_cents: r.clv_cents,
                p_alive: r.p_alive,
                owner_id: r.owner_id,
                account_manager_id: r.account_manager_id,
                last_contact_at: r.last_contact_at,
                next_contact_due: r.next_contact_due,
                days_overdue: r.days_overdue,
                open_tickets: open.get(&r.customer_id).copied().unwrap_or(0),
                relationship_stage: r.relationship_stage,
                health_score: health.get(&r.customer_id).map(|h| h.0),
            })
            .collect())
    }
}
