//! What the programme owes (IFRS 15 B39–B43: points are a material right; their share of the
//! revenue is deferred and recognised on redemption or expiry): outstanding points as of a
//! moment, by expiry month and by issue month (issued, redeemed, expired, reversed,
//! outstanding: the development table), the historical breakage rate, and the expected
//! liability = outstanding × (1 − breakage) × point value.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::query;
use crate::{Result, Store};

/// A month's row of the development table (points).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct IssueMonth {
    /// `YYYY-MM` (business time zone) the points were earned in.
    pub month: String,
    /// Earned.
    pub issued: i64,
    /// Spent on redemptions.
    pub redeemed: i64,
    /// Expired.
    pub expired: i64,
    /// Taken back (refunds, cancellations, negative adjustments).
    pub reversed: i64,
    /// Still held.
    pub outstanding: i64,
}

/// Outstanding points expiring in a month.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ExpiryMonth {
    /// `YYYY-MM`, or `never`.
    pub month: String,
    /// Points.
    pub points: i64,
}

/// The liability report.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Liability {
    /// The moment it is computed at.
    pub as_of: DateTime<Utc>,
    /// Value of one point, minor units.
    pub point_value_cents: i64,
    /// Outstanding points that can be spent.
    pub spendable: i64,
    /// Outstanding points still in their pending period.
    pub pending: i64,
    /// Spendable + pending.
    pub outstanding: i64,
    /// Members' debts (points owed back; not netted against the outstanding).
    pub debt: i64,
    /// Outstanding × point value.
    pub outstanding_value_cents: i64,
    /// Expired ÷ issued over the lots whose expiry has passed (0 when none has).
    pub breakage_rate: f64,
    /// Points issued in those lots (the rate's base).
    pub breakage_base_points: i64,
    /// Outstanding × (1 − breakage) × point value, rounded to the cent.
    pub expected_liability_cents: i64,
    /// Outstanding by month of expiry.
    pub by_expiry_month: Vec<ExpiryMonth>,
    /// The development table by month of issue.
    pub by_issue_month: Vec<IssueMonth>,
}

/// One lot as of the report's moment.
#[derive(Debug, Clone)]
pub struct LotAsOf {
    /// Points earned.
    pub points: i64,
    /// When earned.
    pub earned_at: DateTime<Utc>,
    /// When spendable.
    pub spendable_from: DateTime<Utc>,
    /// When it expires.
    pub expires_at: Option<DateTime<Utc>>,
    /// Drawn by redemptions, expiry and everything else, up to the moment.
    pub redeemed: i64,
    /// See `redeemed`.
    pub expired: i64,
    /// See `redeemed`.
    pub reversed: i64,
}

fn month(t: DateTime<Utc>, tz: chrono_tz::Tz) -> String {
    let d = t.with_timezone(&tz);
    format!("{:04}-{:02}", d.year(), d.month())
}

/// The report from lots as of `as_of` (pure: the hand computation a test compares with).
pub fn compute(lots: &[LotAsOf], debt: i64, point_value_cents: i64, as_of: DateTime<Utc>, tz: chrono_tz::Tz) -> Liability {
    let (mut spendable, mut pending) = (0i64, 0i64);
    let (mut base, mut base_expired) = (0i64, 0i64);
    let mut by_expiry: BTreeMap<String, i64> = BTreeMap::new();
    let mut by_issue: BTreeMap<String, IssueMonth> = BTreeMap::new();
    for l in lots {
        let outstanding = l.points - l.redeemed - l.expired - l.reversed;
        if outstanding > 0 {
            if l.spendable_from > as_of {
                pending += outstanding;
            } else {
                spendable += outstanding;
            }
            *by_expiry.entry(l.expires_at.map_or_else(|| "never".to_owned(), |e| month(e, tz))).or_default() += outstanding;
        }
        if l.expires_at.is_some_and(|e| e <= as_of) {
            base += l.points;
            base_expired += l.expired;
        }
        let m = month(l.earned_at, tz);
        let row = by_issue.entry(m.clone()).or_insert_with(|| IssueMonth { month: m, ..Default::default() });
        row.issued += l.points;
        row.redeemed += l.redeemed;
        row.expired += l.expired;
        row.reversed += l.reversed;
        row.outstanding += outstanding;
    }
    let outstanding = spendable + pending;
    let breakage_rate = if base > 0 { base_expired as f64 / base as f64 } else { 0.0 };
    let expected = (outstanding as f64 * (1.0 - breakage_rate) * point_value_cents as f64).round();
    Liability {
        as_of,
        point_value_cents,
        spendable,
        pending,
        outstanding,
        debt,
        outstanding_value_cents: outstanding.saturating_mul(point_value_cents),
        breakage_rate,
        breakage_base_points: base,
        expected_liability_cents: if expected.is_finite() { expected as i64 } else { 0 },
        by_expiry_month: by_expiry.into_iter().map(|(month, points)| ExpiryMonth { month, points }).collect(),
        by_issue_month: by_issue.into_values().collect(),
    }
}

impl Liability {
    /// The development table as CSV (month, issued, redeemed, expired, reversed, outstanding).
    pub fn to_csv(&self) -> String {
        let mut out = String::from("issue_month,issued,redeemed,expired,reversed,outstanding\n");
        for r in &self.by_issue_month {
            out.push_str(&format!("{},{},{},{},{},{}\n", r.month, r.issued, r.redeemed, r.expired, r.reversed, r.outstanding));
        }
        out
    }
}

impl Store {
    /// The liability as of `as_of` (default now), from the lots earned by then and the draws
    /// recorded by then.
    pub async fn loyalty_liability(&self, as_of: Option<DateTime<Utc>>) -> Result<Liability> {
        let as_of = as_of.unwrap_or_else(|| self.now());
        let p = self.loyalty_program().await?;
        let mut r = self.db.reader();
        /// customer, id, points, earned, spendable, expires.
        type LotRow = (i64, i64, i64, DateTime<Utc>, DateTime<Utc>, Option<DateTime<Utc>>);
        let lots: Vec<LotRow> = r
            .fetch_all(
                query("SELECT customer_id, id, points, earned_at, spendable_from, expires_at FROM loyalty_lots WHERE earned_at <= $1")
                    .bind(as_of),
            )
            .await?;
        let draws: Vec<(i64, i64, String, i64)> = r
            .fetch_all(
                query(
                    "SELECT d.customer_id, d.lot_id, e.kind, CAST(SUM(d.points) AS BIGINT) FROM loyalty_draws d \
                     JOIN loyalty_entries e ON e.customer_id = d.customer_id AND e.id = d.entry_id \
                     WHERE e.created_at <= $1 GROUP BY d.customer_id, d.lot_id, e.kind",
                )
                .bind(as_of),
            )
            .await?;
        let mut drawn: std::collections::HashMap<(i64, i64), (i64, i64, i64)> = Default::default();
        for (c, lot, kind, points) in draws {
            let d = drawn.entry((c, lot)).or_default();
            match kind.as_str() {
                "redeem" => d.0 += points,
                "expire" => d.1 += points,
                _ => d.2 += points,
            }
        }
        let lots: Vec<LotAsOf> = lots
            .into_iter()
            .map(|(c, id, points, earned_at, spendable_from, expires_at)| {
                let (redeemed, expired, reversed) = drawn.get(&(c, id)).copied().unwrap_or_default();
                LotAsOf { points, earned_at, spendable_from, expires_at, redeemed, expired, reversed }
            })
            .collect();
        // Debts as of the moment: debt entries less the repayments recorded by then.
        let (debt,): (i64,) = r
            .fetch_one(
                query(
                    "SELECT CAST(COALESCE(SUM(CASE WHEN kind = 'debt' THEN -points ELSE -debt_repaid END), 0) AS BIGINT) FROM loyalty_entries \
                     WHERE created_at <= $1 AND (kind = 'debt' OR debt_repaid > 0)",
                )
                .bind(as_of),
            )
            .await?;
        Ok(compute(&lots, debt.max(0), p.point_value_cents, as_of, self.config.business_tz))
    }
}
