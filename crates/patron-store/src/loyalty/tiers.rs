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

/// A tier change.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct TierChange {
    /// The member.
    pub customer_id: i64,
    /// Tier before (none below the lowest).
    pub from: Option<String>,
    /// Tier after.
    pub to: Option<String>,
    /// Why, in words.
    pub reason: String,
}

/// The highest tier whose threshold `earned` reaches (its index).
fn qualified(p: &LoyaltyProgram, earned: i64) -> Option<usize> {
    p.tiers.iter().rposition(|t| earned >= t.min_points_earned)
}

/// Evaluates a locked member's tier at `now` on the points earned in the qualifying period: up
/// at once to the highest tier reached; below the tier held, a grace period starts, after which
/// the member moves down one tier (and a new grace period starts if still below). Records a
/// change (table, event) and returns it.
pub(crate) async fn evaluate(
    tx: &mut crate::db::Tx,
    p: &LoyaltyProgram,
    customer_id: i64,
    now: DateTime<Utc>,
) -> crate::Result<Option<TierChange>> {
    let sql = format!("SELECT tier, below_since FROM loyalty_members WHERE customer_id = $1{}", tx.engine().row_lock());
    let Some((tier, below_since)): Option<(Option<String>, Option<DateTime<Utc>>)> =
        tx.fetch_optional(query(sql).bind(customer_id)).await?
    else {
        return Ok(None);
    };
    let (earned,): (i64,) = tx.fetch_one(earned_query(customer_id, p, now)).await?;
    let held = tier.as_deref().and_then(|t| p.tiers.iter().position(|d| d.name == t));
    let reached = qualified(p, earned);
    let months = p.qualifying_months;
    let (new_tier, new_below, reason) = match (reached, held) {
        (Some(r), h) if h.is_none_or(|h| r > h) => {
            (Some(r), None, format!("earned {earned} points in the last {months} months (≥ {})", p.tiers[r].min_points_earned))
        }
        (r, Some(h)) if r.is_none_or(|r| r < h) => match below_since {
            None => {
                tx.execute(
                    query("UPDATE loyalty_members SET below_since = $1, tier_checked_at = $1 WHERE customer_id = $2")
                        .bind(now)
                        .bind(customer_id),
                )
                .await?;
                return Ok(None);
            }
            Some(since) if now >= since + chrono::Duration::days(p.downgrade_grace_days) => {
                let down = h.checked_sub(1);
                let still_below = down.is_some_and(|d| r.is_none_or(|r| r < d));
                let reason = format!(
                    "earned {earned} points in the last {months} months, below {} for {} days (grace {} days)",
                    p.tiers[h].name,
                    (now - since).num_days(),
                    p.downgrade_grace_days
                );
                (down, if still_below { Some(now) } else { None }, reason)
            }
            Some(_) => {
                tx.execute(query("UPDATE loyalty_members SET tier_checked_at = $1 WHERE customer_id = $2").bind(now).bind(customer_id))
                    .await?;
                return Ok(None);
            }
        },
        // A tier no longer defined (the programme changed): the tier reached, at once.
        (r, None) if tier.is_some() => (r, None, format!("tier {} is no longer in the programme", tier.as_deref().unwrap_or_default())),
        _ => {
            tx.execute(
                query("UPDATE loyalty_members SET below_since = NULL, tier_checked_at = $1 WHERE customer_id = $2")
                    .bind(now)
                    .bind(customer_id),
            )
            .await?;
            return Ok(None);
        }
    };
    let to = new_tier.map(|i| p.tiers[i].name.clone());
    if to == tier {
        return Ok(None);
    }
    tx.execute(
        query("UPDATE loyalty_members SET tier = $1, tier_since = $2, below_since = $3, tier_checked_at = $2, updated_at = $2 WHERE customer_id = $4")
            .bind(to.clone())
            .bind(now)
            .bind(new_below)
            .bind(customer_id),
    )
    .await?;
    tx.execute(
        query("INSERT INTO loyalty_tier_changes (customer_id, from_tier, to_tier, reason, changed_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(customer_id)
            .bind(tier.clone())
            .bind(to.clone())
            .bind(reason.clone())
            .bind(now),
    )
    .await?;
    let payload = serde_json::json!({"from": tier, "to": to, "reason": reason, "earned_in_period": earned});
    crate::events::append(tx, customer_id, "loyalty.tier_changed", None, payload, now).await?;
    Ok(Some(TierChange { customer_id, from: tier, to, reason }))
}

impl crate::Store {
    /// The scheduler's daily tier review: members holding a tier (or in a grace period) not
    /// evaluated for a day, each under their lock. Returns the changes made.
    pub async fn review_tiers(&self) -> crate::Result<Vec<TierChange>> {
        let now = self.now();
        let p = self.loyalty_program().await?;
        if !p.enabled || p.tiers.is_empty() {
            return Ok(Vec::new());
        }
        let day_ago = now - chrono::Duration::days(1);
        let mut changes = Vec::new();
        let mut after = 0i64;
        loop {
            let due: Vec<(i64,)> = self
                .db
                .reader()
                .fetch_all(
                    query(
                        "SELECT customer_id FROM loyalty_members WHERE customer_id > $1 AND status = 'active' \
                         AND (tier IS NOT NULL OR below_since IS NOT NULL) AND (tier_checked_at IS NULL OR tier_checked_at <= $2) \
                         ORDER BY customer_id LIMIT 500",
                    )
                    .bind(after)
                    .bind(day_ago),
                )
                .await?;
            let Some(&(last,)) = due.last() else { break };
            after = last;
            for (customer_id,) in due {
                let mut tx = self.db.begin().await?;
                if let Some(c) = evaluate(&mut tx, &p, customer_id, now).await? {
                    changes.push(c);
                }
                tx.execute(query("UPDATE loyalty_members SET tier_checked_at = $1 WHERE customer_id = $2").bind(now).bind(customer_id))
                    .await?;
                tx.commit().await?;
            }
        }
        Ok(changes)
    }
}
