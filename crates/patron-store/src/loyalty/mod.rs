//! The loyalty club (DESIGN.md C16, issue 13): one programme (its settings), members, and a
//! points ledger that cannot be double-spent ([`ledger`]), earned on completed orders
//! ([`earning`]), expired by the scheduler, with tiers on points earned ([`tiers`]), a rewards
//! catalogue ([`rewards`]), referrals ([`referrals`]) and the programme's liability
//! ([`liability`]).
//!
//! Points are integers. Earned points are lots; the balance is the lots' remaining points less
//! the member's debt (what a reversal could not take back), and the sum of the ledger's entries
//! equals it at every commit.

pub mod earning;
pub mod ledger;
pub mod liability;
pub mod membership;
pub mod referrals;
pub mod rewards;
pub mod tiers;

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::db::{query, Tx};
use crate::users::Actor;
use crate::{audit, Result, Store, StoreError};

/// The `settings` key of the programme.
pub const PROGRAM: &str = "loyalty";

/// How orders earn points: `points_per_yuan` of the order's value (of its lines in `category`,
/// when given), on orders of `channel` / `store` when given, times `multiplier`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EarnRule {
    /// Points per yuan (100 cents) of order value.
    #[schema(minimum = 0, maximum = 1000)]
    pub points_per_yuan: f64,
    /// Only lines of this category.
    pub category: Option<String>,
    /// Only orders of this channel.
    pub channel: Option<String>,
    /// Only orders of this store.
    pub store: Option<String>,
    /// Times this (default 1).
    #[schema(minimum = 0, maximum = 100)]
    pub multiplier: Option<f64>,
}

/// A bonus period: orders in it earn `multiplier` times (double points on 会员日). Between
/// `from` and `to` (business days, both included, each optional), and only on `day_of_month`
/// when given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BonusPeriod {
    /// Its name (会员日).
    pub name: String,
    /// First day.
    pub from: Option<NaiveDate>,
    /// Last day, included.
    pub to: Option<NaiveDate>,
    /// Only this day of each month (1–31).
    #[schema(minimum = 1, maximum = 31)]
    pub day_of_month: Option<u32>,
    /// Earn multiplier.
    #[schema(minimum = 0, maximum = 100)]
    pub multiplier: f64,
}

/// A tier, qualified on points earned in the qualifying period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TierDef {
    /// Its name (银卡, 金卡, 黑金).
    pub name: String,
    /// Points earned in the qualifying period to reach it.
    #[schema(minimum = 0)]
    pub min_points_earned: i64,
    /// Earn multiplier of its members.
    #[schema(minimum = 0, maximum = 100)]
    pub multiplier: f64,
    /// Benefits, as words the service policies and the member card show (优先服务, 生日礼).
    #[serde(default)]
    pub benefits: Vec<String>,
}

/// The programme's settings (`GET/PUT /api/v1/loyalty/program`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct LoyaltyProgram {
    /// Whether orders earn points (off until set).
    pub enabled: bool,
    /// What one point is worth, minor units (the liability's value).
    #[schema(minimum = 0, maximum = 10000)]
    pub point_value_cents: i64,
    /// Earn rules; an order line takes the most specific rule that matches it.
    pub earn_rules: Vec<EarnRule>,
    /// Bonus periods (the highest multiplier applies).
    pub bonus_periods: Vec<BonusPeriod>,
    /// Days before earned points can be spent (a return window).
    #[schema(minimum = 0, maximum = 365)]
    pub pending_days: i64,
    /// Points expire this many months after earning (0: never).
    #[schema(minimum = 0, maximum = 120)]
    pub expiry_months: i64,
    /// Expire at the end of the `expiry_months`-th month after earning instead.
    pub expiry_end_of_month: bool,
    /// The rolling period tiers qualify on, months.
    #[schema(minimum = 1, maximum = 60)]
    pub qualifying_months: i64,
    /// Tiers, lowest first.
    pub tiers: Vec<TierDef>,
    /// Days a member below their tier keeps it before moving down one tier.
    #[schema(minimum = 0, maximum = 3650)]
    pub downgrade_grace_days: i64,
    /// Enrol a customer on their first completed order.
    pub auto_enrol: bool,
    /// Points a referrer earns for a referee's first completed order.
    #[schema(minimum = 0, maximum = 100000000)]
    pub referral_points: i64,
    /// Referral rewards per referrer per calendar month (0: none).
    #[schema(minimum = 0, maximum = 10000)]
    pub referral_cap_per_month: i64,
}

impl Default for LoyaltyProgram {
    fn default() -> Self {
        LoyaltyProgram {
            enabled: false,
            point_value_cents: 1,
            earn_rules: vec![EarnRule { points_per_yuan: 1.0, category: None, channel: None, store: None, multiplier: None }],
            bonus_periods: Vec::new(),
            pending_days: 0,
            expiry_months: 24,
            expiry_end_of_month: false,
            qualifying_months: 12,
            tiers: Vec::new(),
            downgrade_grace_days: 90,
            auto_enrol: true,
            referral_points: 0,
            referral_cap_per_month: 5,
        }
    }
}

fn finite_in(v: f64, lo: f64, hi: f64) -> bool {
    v.is_finite() && v >= lo && v <= hi
}

impl LoyaltyProgram {
    /// Checks the values are usable.
    pub fn validate(&self) -> Result<()> {
        let bad = |f: &str, m: &str| Err(StoreError::invalid(f, m));
        if !(0..=10_000).contains(&self.point_value_cents) {
            return bad("point_value_cents", "must be 0 to 10000");
        }
        if self.earn_rules.len() > 100 {
            return bad("earn_rules", "at most 100 rules");
        }
        for (i, r) in self.earn_rules.iter().enumerate() {
            if !finite_in(r.points_per_yuan, 0.0, 1000.0) {
                return bad(&format!("earn_rules[{i}].points_per_yuan"), "must be 0 to 1000");
            }
            if r.multiplier.is_some_and(|m| !finite_in(m, 0.0, 100.0)) {
                return bad(&format!("earn_rules[{i}].multiplier"), "must be 0 to 100");
            }
        }
        if self.bonus_periods.len() > 100 {
            return bad("bonus_periods", "at most 100 periods");
        }
        for (i, b) in self.bonus_periods.iter().enumerate() {
            if b.name.trim().is_empty() || b.name.chars().count() > 100 {
                return bad(&format!("bonus_periods[{i}].name"), "1 to 100 characters");
            }
            if !finite_in(b.multiplier, 0.0, 100.0) {
                return bad(&format!("bonus_periods[{i}].multiplier"), "must be 0 to 100");
            }
            if b.day_of_month.is_some_and(|d| !(1..=31).contains(&d)) {
                return bad(&format!("bonus_periods[{i}].day_of_month"), "must be 1 to 31");
            }
            if let (Some(f), Some(t)) = (b.from, b.to) {
                if t < f {
                    return bad(&format!("bonus_periods[{i}].to"), "must not be before from");
                }
            }
        }
        if !(0..=365).contains(&self.pending_days) {
            return bad("pending_days", "must be 0 to 365");
        }
        if !(0..=120).contains(&self.expiry_months) {
            return bad("expiry_months", "must be 0 (never) to 120");
        }
        if !(1..=60).contains(&self.qualifying_months) {
            return bad("qualifying_months", "must be 1 to 60");
        }
        if !(0..=3650).contains(&self.downgrade_grace_days) {
            return bad("downgrade_grace_days", "must be 0 to 3650");
        }
        if self.tiers.len() > 20 {
            return bad("tiers", "at most 20 tiers");
        }
        for (i, t) in self.tiers.iter().enumerate() {
            if t.name.trim().is_empty() || t.name.chars().count() > 50 {
                return bad(&format!("tiers[{i}].name"), "1 to 50 characters");
            }
            if t.min_points_earned < 0 || (i > 0 && t.min_points_earned <= self.tiers[i - 1].min_points_earned) {
                return bad(&format!("tiers[{i}].min_points_earned"), "must be 0 or more and rise from tier to tier");
            }
            if !finite_in(t.multiplier, 0.0, 100.0) {
                return bad(&format!("tiers[{i}].multiplier"), "must be 0 to 100");
            }
            if self.tiers[..i].iter().any(|o| o.name == t.name) {
                return bad(&format!("tiers[{i}].name"), "tier names must be unique");
            }
        }
        if !(0..=100_000_000).contains(&self.referral_points) {
            return bad("referral_points", "must be 0 to 100000000");
        }
        if !(0..=10_000).contains(&self.referral_cap_per_month) {
            return bad("referral_cap_per_month", "must be 0 to 10000");
        }
        Ok(())
    }

    /// When points earned at `at` can be spent.
    pub fn spendable_from(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        at + Duration::days(self.pending_days)
    }

    /// When points earned at `at` expire (`None`: never). The end of a month is the start of
    /// the next in the business time zone.
    pub fn expires_at(&self, at: DateTime<Utc>, tz: chrono_tz::Tz) -> Option<DateTime<Utc>> {
        if self.expiry_months <= 0 {
            return None;
        }
        let months = chrono::Months::new(self.expiry_months as u32);
        if self.expiry_end_of_month {
            let local = at.with_timezone(&tz).date_naive();
            let first = NaiveDate::from_ymd_opt(local.year(), local.month(), 1)?;
            let start_next = first.checked_add_months(months)?.checked_add_months(chrono::Months::new(1))?;
            tz.from_local_datetime(&start_next.and_hms_opt(0, 0, 0)?).earliest().map(|t| t.with_timezone(&Utc))
        } else {
            at.checked_add_months(months)
        }
    }

    /// The earn multiplier of tier `name` (1 without a tier).
    pub fn tier_multiplier(&self, name: Option<&str>) -> f64 {
        name.and_then(|n| self.tiers.iter().find(|t| t.name == n)).map_or(1.0, |t| t.multiplier)
    }
}

/// A programme member, with their points.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Member {
    /// The customer.
    pub customer_id: i64,
    /// Member number.
    pub member_no: String,
    /// `active`, `suspended` or `closed`.
    pub status: String,
    /// When they joined.
    pub joined_at: DateTime<Utc>,
    /// Points: lots remaining less debt.
    pub balance: i64,
    /// Points earned that cannot be spent yet (the pending period).
    pub pending: i64,
    /// Points that can be spent now.
    pub spendable: i64,
    /// Points a reversal could not take back; the next earnings pay them first.
    pub debt: i64,
    /// Tier held (none below the lowest).
    pub tier: Option<String>,
    /// Since when.
    pub tier_since: Option<DateTime<Utc>>,
    /// Since when below the tier (in the grace period).
    pub below_since: Option<DateTime<Utc>>,
    /// Points earned in the rolling qualifying period.
    pub earned_in_period: i64,
    /// The next tier up and the points earned it needs.
    pub next_tier: Option<NextTier>,
    /// The lots that expire next (their date and points).
    pub next_expiry: Option<NextExpiry>,
    /// Lots with points remaining, in spending order.
    pub lots: Vec<Lot>,
}

/// The next tier up.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NextTier {
    /// Its name.
    pub name: String,
    /// Points earned in the period it needs.
    pub min_points_earned: i64,
    /// Still to earn.
    pub points_to_go: i64,
}

/// The next expiry.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NextExpiry {
    /// When.
    pub at: DateTime<Utc>,
    /// Points expiring then.
    pub points: i64,
}

/// A lot of earned points.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Lot {
    /// Id.
    pub id: i64,
    /// The entry that earned it.
    pub entry_id: i64,
    /// Points earned.
    pub points: i64,
    /// Points not yet spent, expired or reversed.
    pub remaining: i64,
    /// When earned.
    pub earned_at: DateTime<Utc>,
    /// When they can be spent.
    pub spendable_from: DateTime<Utc>,
    /// When they expire (never when absent).
    pub expires_at: Option<DateTime<Utc>>,
}

/// `POST /api/v1/loyalty/members`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMember {
    /// The customer to enrol.
    pub customer_id: i64,
}

#[derive(serde::Deserialize, sqlx::FromRow)]
pub(crate) struct MemberRow {
    pub(crate) customer_id: i64,
    pub(crate) member_no: String,
    pub(crate) status: String,
    pub(crate) joined_at: DateTime<Utc>,
    pub(crate) debt: i64,
    pub(crate) tier: Option<String>,
    pub(crate) tier_since: Option<DateTime<Utc>>,
    pub(crate) below_since: Option<DateTime<Utc>>,
}

pub(crate) const MEMBER_SELECT: &str =
    "SELECT customer_id, member_no, status, joined_at, debt, tier, tier_since, below_since FROM loyalty_members";

/// A member's number: `M` and the customer id, so unique without a key table.
pub(crate) fn member_no(customer_id: i64) -> String {
    format!("M{customer_id}")
}

/// Reads the programme in a transaction.
pub(crate) async fn program_in(tx: &mut Tx) -> Result<LoyaltyProgram> {
    crate::settings::get_in(tx, PROGRAM).await
}

/// Locks member `customer_id`'s row until the transaction ends (`FOR NO KEY UPDATE` on
/// PostgreSQL; SQLite's transactions hold the one write lock already): every change to a
/// member's points happens under it, so concurrent redemptions take turns and each re-checks
/// the balance the others left.
pub(crate) async fn lock_member(tx: &mut Tx, customer_id: i64) -> Result<Option<MemberRow>> {
    let sql = format!("{MEMBER_SELECT} WHERE customer_id = $1{}", tx.engine().row_lock());
    tx.fetch_optional(query(sql).bind(customer_id)).await
}

/// Enrols a customer (nothing when a member already); returns whether it did.
pub(crate) async fn enrol_in(tx: &mut Tx, customer_id: i64, at: DateTime<Utc>) -> Result<bool> {
    let n = tx
        .execute(
            query(
                "INSERT INTO loyalty_members (customer_id, member_no, status, joined_at, updated_at) VALUES ($1, $2, 'active', $3, $3) \
                 ON CONFLICT (customer_id) DO NOTHING",
            )
            .bind(customer_id)
            .bind(member_no(customer_id))
            .bind(at),
        )
        .await?;
    Ok(n > 0)
}

impl Store {
    /// The programme's settings.
    pub async fn loyalty_program(&self) -> Result<LoyaltyProgram> {
        self.setting(PROGRAM).await
    }

    /// Replaces the programme's settings (audited).
    pub async fn set_loyalty_program(&self, actor: &Actor, p: &LoyaltyProgram) -> Result<LoyaltyProgram> {
        p.validate()?;
        let now = self.now();
        let mut tx = self.db.begin().await?;
        tx.execute(
            query(
                "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            )
            .bind(PROGRAM)
            .bind(serde_json::to_value(p).map_err(|e| StoreError::Internal(e.to_string()))?)
            .bind(now),
        )
        .await?;
        audit::record(&mut tx, now, &actor.key, "update", "setting", Some(PROGRAM.to_owned()), None).await?;
        tx.commit().await?;
        Ok(p.clone())
    }

    /// Enrols a customer in the programme: 409 when a member already.
    pub async fn enrol_member(&self, actor: &Actor, customer_id: i64) -> Result<Member> {
        let now = self.now();
        let mut tx = self.db.begin().await?;
        if crate::customers::lock_customers(&mut tx, &[customer_id]).await?.is_some() {
            return Err(StoreError::NotFound("customer"));
        }
        if !enrol_in(&mut tx, customer_id, now).await? {
            return Err(StoreError::Conflict(format!("customer {customer_id} is a member already")));
        }
        crate::events::append(&mut tx, customer_id, "loyalty.enrolled", None, serde_json::json!({"by": actor.key}), now).await?;
        audit::record(&mut tx, now, &actor.key, "enrol", "customer", Some(customer_id.to_string()), Some("loyalty".into())).await?;
        tx.commit().await?;
        self.loyalty_member(customer_id).await
    }

    /// A member with their points, tier and lots.
    pub async fn loyalty_member(&self, customer_id: i64) -> Result<Member> {
        let program = self.loyalty_program().await?;
        let now = self.now();
        let mut r = self.db.reader();
        let row: MemberRow = r
            .fetch_optional(query(format!("{MEMBER_SELECT} WHERE customer_id = $1")).bind(customer_id))
            .await?
            .ok_or(StoreError::NotFound("member"))?;
        let lots: Vec<Lot> = r
            .fetch_all(
                query(format!(
                    "SELECT id, entry_id, points, remaining, earned_at, spendable_from, expires_at FROM loyalty_lots \
                     WHERE customer_id = $1 AND remaining > 0 {}",
                    ledger::SPENDING_ORDER
                ))
                .bind(customer_id),
            )
            .await?;
        let total: i64 = lots.iter().map(|l| l.remaining).sum();
        let pending: i64 = lots.iter().filter(|l| l.spendable_from > now).map(|l| l.remaining).sum();
        let spendable = (total - pending - row.debt).max(0);
        let next_expiry = lots
            .iter()
            .filter_map(|l| l.expires_at)
            .min()
            .map(|at| NextExpiry { at, points: lots.iter().filter(|l| l.expires_at == Some(at)).map(|l| l.remaining).sum() });
        let earned_in_period = tiers::earned_in_period(&mut r, customer_id, &program, now).await?;
        let next_tier = tiers::next_tier(&program, row.tier.as_deref(), earned_in_period);
        Ok(Member {
            customer_id: row.customer_id,
            member_no: row.member_no,
            status: row.status,
            joined_at: row.joined_at,
            balance: total - row.debt,
            pending,
            spendable,
            debt: row.debt,
            tier: row.tier,
            tier_since: row.tier_since,
            below_since: row.below_since,
            earned_in_period,
            next_tier,
            next_expiry,
            lots,
        })
    }
}
