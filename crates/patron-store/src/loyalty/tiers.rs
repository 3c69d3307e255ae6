//! Tiers on points earned in the rolling qualifying period (never on the balance).

use chrono::{DateTime, Utc};

use super::{LoyaltyProgram, NextTier};
use crate::db::{query, Query};

/// The query of a member's points earned in the qualifying period before `now`: earnings less
/// the reversals of orders (adjustments and redemptions do not count).
pub(crate) fn earned_query(customer_id: i64, p: &LoyaltyProgram, now: DateTime<Utc>) -> Query {
    let since = now.checked_sub_months(chrono::Months::new(p.qualifying_months.clamp(1, 60) as u32)).unwrap_or(now);
    query(
        "SELECT CAST(COALESCE(SUM(points), 0) AS BIGINT) FROM loyalty_entries WHERE customer_id = $1 AND created_at > $2 AND created_at <= $3 \
         AND (kind = 'earn' OR (kind IN ('reverse', 'debt') AND order_id IS NOT NULL))",
    )
    .bind(customer_id)
    .bind(since)
    .bind(now)
}

/// See [`earned_query`].
pub(crate) async fn earned_in_period(
    r: &mut crate::db::Reader<'_>,
    customer_id: i64,
    p: &LoyaltyProgram,
    now: DateTime<Utc>,
) -> crate::Result<i64> {
    let (n,): (i64,) = r.fetch_one(earned_query(customer_id, p, now)).await?;
    Ok(n.max(0))
}

/// The tier above `tier` (the lowest when none) and what it still needs.
pub(crate) fn next_tier(p: &LoyaltyProgram, tier: Option<&str>, earned: i64) -> Option<NextTier> {
    let pos = tier.and_then(|t| p.tiers.iter().position(|d| d.name == t));
    let next = match pos {
        Some(i) => p.tiers.get(i + 1)?,
        None => p.tiers.first()?,
    };
    Some(NextTier {
        name: next.name.clone(),
        min_points_earned: next.min_points_earned,
        points_to_go: (next.min_points_earned - earned).max(0),
    })
}
