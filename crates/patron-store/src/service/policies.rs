//! One service policy per value tier: how fast a customer of the tier is answered and helped,
//! how often they are contacted, and how much frontline staff may grant them without approval.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use utoipa::ToSchema;

use crate::db::{query, Query, Tx};
use crate::users::Actor;
use crate::{audit, Result, Store, StoreError};

/// The tiers a policy exists for: the ABCD value tiers and `default` (customers without scores).
pub const TIERS: [&str; 5] = ["A", "B", "C", "D", "default"];

/// A tier's service policy.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ServicePolicy {
    /// `A`, `B`, `C`, `D` or `default`.
    pub tier: String,
    /// Minutes to the first response.
    pub first_response_minutes: i64,
    /// Minutes to resolution.
    pub resolution_minutes: i64,
    /// Whether the minutes count in working time (the business calendar) or around the clock.
    pub business_hours: bool,
    /// Days between contacts with the customer.
    pub contact_cadence_days: i64,
    /// What an agent may grant as compensation without a manager's approval (cents).
    pub compensation_authority_cents: i64,
    /// Premium services the tier gets (专属客服, 优先上菜 …).
    pub premium: Vec<String>,
}

/// A policy as written by `PUT /service-policies/{tier}`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyInput {
    /// Minutes to the first response (1–525,600).
    #[schema(minimum = 1, maximum = 525600)]
    pub first_response_minutes: i64,
    /// Minutes to resolution (1–525,600, not less than the first response).
    #[schema(minimum = 1, maximum = 525600)]
    pub resolution_minutes: i64,
    /// Count in working time (true) or around the clock.
    pub business_hours: bool,
    /// Days between contacts (1–3650).
    #[schema(minimum = 1, maximum = 3650)]
    pub contact_cadence_days: i64,
    /// Compensation an agent may grant alone, cents (0–10,000,000).
    #[schema(minimum = 0, maximum = 10000000)]
    pub compensation_authority_cents: i64,
    /// Premium services (at most 20, each up to 50 characters).
    #[serde(default)]
    pub premium: Vec<String>,
}

#[derive(serde::Deserialize, sqlx::FromRow)]
struct PolicyRow {
    tier: String,
    first_response_minutes: i64,
    resolution_minutes: i64,
    business_hours: bool,
    contact_cadence_days: i64,
    compensation_authority_cents: i64,
    #[serde(deserialize_with = "crate::db::direct::json_text")]
    premium: Json<Vec<String>>,
}

impl From<PolicyRow> for ServicePolicy {
    fn from(r: PolicyRow) -> Self {
        ServicePolicy {
            tier: r.tier,
            first_response_minutes: r.first_response_minutes,
            resolution_minutes: r.resolution_minutes,
            business_hours: r.business_hours,
            contact_cadence_days: r.contact_cadence_days,
            compensation_authority_cents: r.compensation_authority_cents,
            premium: r.premium.0,
        }
    }
}

/// The policy a tier has until an administrator changes it: the most valuable customers are
/// answered within half an hour around the clock and may be granted ¥200 on the spot.
pub fn default_policy(tier: &str) -> ServicePolicy {
    let (first, resolution, business_hours, cadence, authority, premium): (i64, i64, bool, i64, i64, &[&str]) = match tier {
        "A" => (30, 4 * 60, false, 30, 20_000, &["专属客服", "优先上菜", "生日礼遇"]),
        "B" => (60, 8 * 60, true, 60, 10_000, &["优先处理"]),
        "C" => (4 * 60, 2 * 9 * 60, true, 90, 5_000, &[]),
        _ => (8 * 60, 3 * 9 * 60, true, 180, 2_000, &[]),
    };
    ServicePolicy {
        tier: tier.to_owned(),
        first_response_minutes: first,
        resolution_minutes: resolution,
        business_hours,
        contact_cadence_days: cadence,
        compensation_authority_cents: authority,
        premium: premium.iter().map(|s| (*s).to_owned()).collect(),
    }
}

const POLICY_SELECT: &str = "SELECT tier, first_response_minutes, resolution_minutes, business_hours, contact_cadence_days, \
     compensation_authority_cents, premium FROM service_policies";

fn tier_query(customer_id: i64) -> Query {
    query("SELECT abcd_tier FROM customer_scores WHERE customer_id = $1").bind(customer_id)
}

fn tier_of(row: Option<(Option<String>,)>) -> String {
    row.and_then(|r| r.0).filter(|t| TIERS.contains(&t.as_str())).unwrap_or_else(|| "default".into())
}

fn policy_query(tier: &str) -> Query {
    query(format!("{POLICY_SELECT} WHERE tier = $1")).bind(tier)
}

fn policy_of(tier: &str, row: Option<PolicyRow>) -> ServicePolicy {
    row.map(ServicePolicy::from).unwrap_or_else(|| default_policy(tier))
}

/// The tier a customer is served at: their ABCD tier from the latest analysis, else `default`.
pub(crate) async fn customer_tier(tx: &mut Tx, customer_id: i64) -> Result<String> {
    Ok(tier_of(tx.fetch_optional(tier_query(customer_id)).await?))
}

/// A tier's policy, read in `tx`.
pub(crate) async fn policy_in(tx: &mut Tx, tier: &str) -> Result<ServicePolicy> {
    Ok(policy_of(tier, tx.fetch_optional(policy_query(tier)).await?))
}

fn check_tier(tier: &str) -> Result<()> {
    if TIERS.contains(&tier) {
        Ok(())
    } else {
        Err(StoreError::invalid("tier", format!("tier must be one of {}", TIERS.join(", "))))
    }
}

impl PolicyInput {
    fn validate(&self) -> Result<()> {
        let range = |field: &str, v: i64, lo: i64, hi: i64| {
            if (lo..=hi).contains(&v) {
                Ok(())
            } else {
                Err(StoreError::invalid(field, format!("must be {lo} to {hi}")))
            }
        };
        range("first_response_minutes", self.first_response_minutes, 1, 525_600)?;
        range("resolution_minutes", self.resolution_minutes, 1, 525_600)?;
        range("contact_cadence_days", self.contact_cadence_days, 1, 3650)?;
        range("compensation_authority_cents", self.compensation_authority_cents, 0, 10_000_000)?;
        if self.resolution_minutes < self.first_response_minutes {
            return Err(StoreError::invalid("resolution_minutes", "must not be less than first_response_minutes"));
        }
        if self.premium.len() > 20 || self.premium.iter().any(|p| p.trim().is_empty() || p.chars().count() > 50) {
            return Err(StoreError::invalid("premium", "at most 20 entries of 1 to 50 characters"));
        }
        Ok(())
    }
}

impl Store {
    /// Every tier's policy, A to D then `default`.
    pub async fn service_policies(&self) -> Result<Vec<ServicePolicy>> {
        let rows: Vec<PolicyRow> = self.db.reader().fetch_all(query(POLICY_SELECT)).await?;
        let stored: Vec<ServicePolicy> = rows.into_iter().map(ServicePolicy::from).collect();
        Ok(TIERS.iter().map(|t| stored.iter().find(|p| p.tier == *t).cloned().unwrap_or_else(|| default_policy(t))).collect())
    }

    /// One tier's policy.
    pub async fn service_policy(&self, tier: &str) -> Result<ServicePolicy> {
        check_tier(tier)?;
        Ok(policy_of(tier, self.db.reader().fetch_optional(policy_query(tier)).await?))
    }

    /// The tier a customer is served at now and its policy.
    pub async fn customer_policy(&self, customer_id: i64) -> Result<ServicePolicy> {
        let tier = tier_of(self.db.reader().fetch_optional(tier_query(customer_id)).await?);
        Ok(policy_of(&tier, self.db.reader().fetch_optional(policy_query(&tier)).await?))
    }

    /// Replaces a tier's policy (admin; audited). Tickets keep the clocks of the policy they
    /// opened under.
    pub async fn set_service_policy(&self, actor: &Actor, tier: &str, p: &PolicyInput) -> Result<ServicePolicy> {
        check_tier(tier)?;
        p.validate()?;
        let now: DateTime<Utc> = self.now();
        let premium: Vec<String> = p.premium.iter().map(|s| s.trim().to_owned()).collect();
        let mut tx = self.db.begin().await?;
        tx.execute(
            query(
                "INSERT INTO service_policies (tier, first_response_minutes, resolution_minutes, business_hours, contact_cadence_days, \
                 compensation_authority_cents, premium, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                 ON CONFLICT (tier) DO UPDATE SET first_response_minutes = excluded.first_response_minutes, \
                 resolution_minutes = excluded.resolution_minutes, business_hours = excluded.business_hours, \
                 contact_cadence_days = excluded.contact_cadence_days, compensation_authority_cents = excluded.compensation_authority_cents, \
                 premium = excluded.premium, updated_at = excluded.updated_at",
            )
            .bind(tier)
            .bind(p.first_response_minutes)
            .bind(p.resolution_minutes)
            .bind(p.business_hours)
            .bind(p.contact_cadence_days)
            .bind(p.compensation_authority_cents)
            .bind(serde_json::json!(premium))
            .bind(now),
        )
        .await?;
        let detail = serde_json::json!({"first_response_minutes": p.first_response_minutes, "resolution_minutes": p.resolution_minutes,
            "business_hours": p.business_hours, "compensation_authority_cents": p.compensation_authority_cents});
        audit::record(&mut tx, now, &actor.key, "update", "service_policy", Some(tier.to_owned()), Some(detail.to_string())).await?;
        let out = policy_in(&mut tx, tier).await?;
        tx.commit().await?;
        Ok(out)
    }
}
