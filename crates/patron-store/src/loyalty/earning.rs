//! Earning on completed orders and reversing on refunded or cancelled ones, in the transaction
//! that writes the order: one order at a time (the API), or in bulk at the end of an orders
//! import (one statement per table for the members without a debt).

use chrono::{DateTime, Utc};

use super::ledger::{credit, entry_by_key, insert_entry, reverse_credit, NewEntry, Reversal};
use super::{enrol_in, lock_member, LoyaltyProgram};
use crate::db::{query, Arg, ColType, Stage, Tx};
use crate::Result;

/// The order facts earning needs.
#[derive(serde::Deserialize, Debug, Clone, sqlx::FromRow)]
pub struct OrderFacts {
    /// Order id.
    pub id: i64,
    /// Customer.
    pub customer_id: i64,
    /// When ordered.
    pub ordered_at: DateTime<Utc>,
    /// Channel.
    pub channel: Option<String>,
    /// Store.
    pub store: Option<String>,
    /// Amount paid, minor units.
    pub total_cents: i64,
    /// Status.
    pub status: String,
}

/// The most specific rule matching (channel, store, category): a rule matches when each
/// criterion it names equals the order's; more criteria named, more specific.
fn best_rule<'a>(p: &'a LoyaltyProgram, o: &OrderFacts, category: Option<&str>) -> Option<&'a super::EarnRule> {
    p.earn_rules
        .iter()
        .filter(|r| {
            r.channel.as_deref().is_none_or(|c| o.channel.as_deref() == Some(c))
                && r.store.as_deref().is_none_or(|s| o.store.as_deref() == Some(s))
                && r.category.as_deref().is_none_or(|c| category == Some(c))
        })
        .max_by_key(|r| usize::from(r.channel.is_some()) + usize::from(r.store.is_some()) + 2 * usize::from(r.category.is_some()))
}

fn rule_rate(r: Option<&super::EarnRule>) -> f64 {
    r.map_or(0.0, |r| r.points_per_yuan * r.multiplier.unwrap_or(1.0))
}

/// Points an order earns: its value (spread over its lines by their list value, when category
/// rules exist) times the matching rules' points per yuan, times the tier's multiplier and the
/// highest bonus period's, rounded down. `lines`: (category, list value in cents).
pub fn order_points(p: &LoyaltyProgram, o: &OrderFacts, lines: &[(Option<String>, i64)], tier_multiplier: f64, tz: chrono_tz::Tz) -> i64 {
    if o.total_cents <= 0 {
        return 0;
    }
    let lines_total: i64 = lines.iter().map(|l| l.1.max(0)).sum();
    let has_category_rules = p.earn_rules.iter().any(|r| r.category.is_some());
    let rate_cents: f64 = if has_category_rules && lines_total > 0 {
        lines
            .iter()
            .map(|(c, v)| o.total_cents as f64 * (*v).max(0) as f64 / lines_total as f64 * rule_rate(best_rule(p, o, c.as_deref())))
            .sum()
    } else {
        o.total_cents as f64 * rule_rate(best_rule(p, o, None))
    };
    let day = o.ordered_at.with_timezone(&tz).date_naive();
    let bonus = p
        .bonus_periods
        .iter()
        .filter(|b| {
            b.from.is_none_or(|f| day >= f)
                && b.to.is_none_or(|t| day <= t)
                && b.day_of_month.is_none_or(|d| chrono::Datelike::day(&day) == d)
        })
        .map(|b| b.multiplier)
        .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))))
        .unwrap_or(1.0);
    let points = rate_cents / 100.0 * tier_multiplier * bonus;
    // A hair above to keep 2.9999999 from losing a point to binary fractions.
    let points = (points + 1e-9).floor();
    if points.is_finite() && points > 0.0 {
        points.min(1e15) as i64
    } else {
        0
    }
}

/// The key an order's earning is recorded under.
pub(crate) fn order_key(order_id: i64) -> String {
    format!("order:{order_id}")
}

async fn order_lines(tx: &mut Tx, p: &LoyaltyProgram, customer_id: i64, order_id: i64) -> Result<Vec<(Option<String>, i64)>> {
    if !p.earn_rules.iter().any(|r| r.category.is_some()) {
        return Ok(Vec::new());
    }
    tx.fetch_all(
        query(
            "SELECT c.name, l.quantity * l.unit_price_cents FROM order_lines l LEFT JOIN categories c ON c.id = l.category_id \
             WHERE l.customer_id = $1 AND l.order_id = $2 ORDER BY l.line_no",
        )
        .bind(customer_id)
        .bind(order_id),
    )
    .await
}

/// Brings order `order_id`'s points in line with its status, in the caller's transaction: a
/// completed order of a member earns once (`order:<id>`; enrolling the customer first when the
/// programme enrols automatically); a refunded or cancelled one that earned is reversed once.
pub(crate) async fn sync_order(
    tx: &mut Tx,
    p: &LoyaltyProgram,
    tz: chrono_tz::Tz,
    customer_id: i64,
    order_id: i64,
    by: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    if !p.enabled {
        return Ok(());
    }
    let o: Option<OrderFacts> = tx
        .fetch_optional(
            query("SELECT id, customer_id, ordered_at, channel, store, total_cents, status FROM orders WHERE customer_id = $1 AND id = $2")
                .bind(customer_id)
                .bind(order_id),
        )
        .await?;
    let Some(o) = o else { return Ok(()) };
    match o.status.as_str() {
        "completed" => {
            super::referrals::queue(tx, customer_id).await?;
            let mut member = match lock_member(tx, customer_id).await? {
                Some(m) => m,
                None if p.auto_enrol => {
                    enrol_in(tx, customer_id, o.ordered_at).await?;
                    crate::events::append(
                        tx,
                        customer_id,
                        "loyalty.enrolled",
                        None,
                        serde_json::json!({"by": "first order", "order_id": o.id}),
                        o.ordered_at,
                    )
                    .await?;
                    match lock_member(tx, customer_id).await? {
                        Some(m) => m,
                        None => return Ok(()),
                    }
                }
                None => return Ok(()),
            };
            if member.status != "active" || entry_by_key(tx, customer_id, &order_key(o.id)).await?.is_some() {
                return Ok(());
            }
            let lines = order_lines(tx, p, customer_id, o.id).await?;
            let points = order_points(p, &o, &lines, p.tier_multiplier(member.tier.as_deref()), tz);
            if points <= 0 {
                return Ok(());
            }
            let e = NewEntry {
                kind: "earn",
                points,
                key: order_key(o.id),
                request: String::new(),
                source: order_key(o.id),
                reason: None,
                order_id: Some(o.id),
                reward_id: None,
                debt_repaid: 0,
                by,
                at: o.ordered_at,
            };
            if let Some(id) = insert_entry(tx, customer_id, e).await? {
                credit(tx, &mut member, id, points, o.ordered_at, p.spendable_from(o.ordered_at), p.expires_at(o.ordered_at, tz)).await?;
            }
            if !p.tiers.is_empty() {
                super::tiers::evaluate(tx, p, customer_id, now).await?;
            }
        }
        "refunded" | "cancelled" => {
            // A referral paid for this order (the referee's first) goes back first.
            super::referrals::on_refund(tx, customer_id, o.id, by, now).await?;
            let Some(mut member) = lock_member(tx, customer_id).await? else { return Ok(()) };
            let earned = match entry_by_key(tx, customer_id, &order_key(o.id)).await? {
                Some((earn_id, _, points)) => Some((earn_id, points)),
                None => merged_earning(tx, customer_id, o.id).await?,
            };
            let Some((earn_id, points)) = earned else { return Ok(()) };
            let r = Reversal {
                earn_entry: earn_id,
                points,
                key: format!("reverse:{}", order_key(o.id)),
                source: order_key(o.id),
                reason: format!("order {}", o.status),
                order_id: Some(o.id),
            };
            reverse_credit(tx, &mut member, r, by, now).await?;
        }
        _ => {}
    }
    Ok(())
}

/// The earning of order `order_id` when a customer since merged into `customer_id` made it: the
/// order moved with the merge, but its earning stayed on the duplicate's (closed) ledger and only
/// what was left of it moved, as a `merge:<duplicate>` entry naming the order. A refund then
/// takes back what the order earned from the customer kept: that entry's lot first, the rest
/// from other lots and, for points spent already (before or after the merge), as a debt.
/// Returns (the entry to draw from first, or 0 when nothing of it moved; the points earned);
/// `None` when no merged customer earned on the order, or the duplicate had reversed it.
async fn merged_earning(tx: &mut Tx, customer_id: i64, order_id: i64) -> Result<Option<(i64, i64)>> {
    // Merges flatten chains (`merged_into` always names the customer kept), so one level is all.
    let duplicates: Vec<(i64,)> =
        tx.fetch_all(query("SELECT id FROM customers WHERE merged_into = $1 ORDER BY id").bind(customer_id)).await?;
    let key = order_key(order_id);
    for (dup,) in duplicates {
        let Some((_, _, points)) = entry_by_key(tx, dup, &key).await? else { continue };
        if entry_by_key(tx, dup, &format!("reverse:{key}")).await?.is_some()
            || entry_by_key(tx, dup, &format!("debt:reverse:{key}")).await?.is_some()
        {
            return Ok(None);
        }
        let moved: Option<(i64,)> = tx
            .fetch_optional(
                query("SELECT id FROM loyalty_entries WHERE customer_id = $1 AND order_id = $2 AND source = $3 ORDER BY id LIMIT 1")
                    .bind(customer_id)
                    .bind(order_id)
                    .bind(format!("merge:{dup}")),
            )
            .await?;
        return Ok(Some((moved.map_or(0, |m| m.0), points)));
    }
    Ok(None)
}

/// The earnings of an import, staged for one statement per table.
static EARN_STAGE: Stage = Stage {
    name: "patron_stage_loyalty",
    columns: &[
        ("customer_id", ColType::Int),
        ("order_id", ColType::Int),
        ("points", ColType::Int),
        ("idem_key", ColType::Text),
        ("earned_at", ColType::Time),
        ("spendable_from", ColType::Time),
        ("expires_at", ColType::Time),
    ],
};

/// Earns and reverses for the orders of the customers an import touched (`patron_stage_touched`),
/// in the import's transaction. Returns the orders that earned.
pub(crate) async fn sync_touched(tx: &mut Tx, p: &LoyaltyProgram, tz: chrono_tz::Tz, now: DateTime<Utc>) -> Result<u64> {
    if !p.enabled {
        return Ok(0);
    }
    const TOUCHED: &str = "SELECT customer_id FROM patron_stage_touched";
    super::referrals::queue_touched(tx).await?;
    if p.auto_enrol {
        tx.execute(
            query(format!(
                "INSERT INTO loyalty_members (customer_id, member_no, status, joined_at, updated_at) \
                 SELECT customer_id, 'M' || CAST(customer_id AS TEXT), 'active', MIN(ordered_at), $1 FROM orders \
                 WHERE customer_id IN ({TOUCHED}) AND status = 'completed' GROUP BY customer_id \
                 ON CONFLICT (customer_id) DO NOTHING"
            ))
            .bind(now),
        )
        .await?;
    }
    // (order facts…, tier, debt)
    type Candidate = (i64, i64, DateTime<Utc>, Option<String>, Option<String>, i64, String, Option<String>, i64);
    let candidates: Vec<Candidate> = tx
        .fetch_all(query(format!(
            "SELECT o.id, o.customer_id, o.ordered_at, o.channel, o.store, o.total_cents, o.status, m.tier, m.debt \
             FROM orders o JOIN loyalty_members m ON m.customer_id = o.customer_id \
             WHERE o.customer_id IN ({TOUCHED}) AND o.status = 'completed' AND m.status = 'active' \
             AND NOT EXISTS (SELECT 1 FROM loyalty_entries e WHERE e.customer_id = o.customer_id AND e.idempotency_key = 'order:' || CAST(o.id AS TEXT))"
        )))
        .await?;
    // (category, list value) of each order's lines.
    type Lines = Vec<(Option<String>, i64)>;
    let mut lines: foldhash::HashMap<(i64, i64), Lines> = Default::default();
    if !candidates.is_empty() && p.earn_rules.iter().any(|r| r.category.is_some()) {
        let rows: Vec<(i64, i64, Option<String>, i64)> = tx
            .fetch_all(query(format!(
                "SELECT l.customer_id, l.order_id, c.name, l.quantity * l.unit_price_cents FROM order_lines l \
                 LEFT JOIN categories c ON c.id = l.category_id WHERE l.customer_id IN ({TOUCHED})"
            )))
            .await?;
        for (c, o, name, v) in rows {
            lines.entry((c, o)).or_default().push((name, v));
        }
    }
    let mut bulk = Vec::new();
    let mut one_by_one = Vec::new();
    let mut earned = 0u64;
    for (id, customer_id, ordered_at, channel, store, total_cents, status, tier, debt) in candidates {
        if debt > 0 {
            one_by_one.push((customer_id, id));
            continue;
        }
        let o = OrderFacts { id, customer_id, ordered_at, channel, store, total_cents, status };
        let l = lines.get(&(customer_id, id)).map(Vec::as_slice).unwrap_or(&[]);
        let points = order_points(p, &o, l, p.tier_multiplier(tier.as_deref()), tz);
        if points > 0 {
            earned += 1;
            bulk.push(vec![
                Arg::I64(Some(customer_id)),
                Arg::I64(Some(id)),
                Arg::I64(Some(points)),
                Arg::Text(Some(order_key(id))),
                Arg::Time(Some(ordered_at)),
                Arg::Time(Some(p.spendable_from(ordered_at))),
                Arg::Time(p.expires_at(ordered_at, tz)),
            ]);
        }
    }
    if !bulk.is_empty() {
        EARN_STAGE.create(tx).await?;
        EARN_STAGE.fill(tx, bulk).await?;
        tx.execute(query(
            "INSERT INTO loyalty_entries (customer_id, kind, points, idempotency_key, request, source, order_id, debt_repaid, created_by, created_at) \
             SELECT customer_id, 'earn', points, idem_key, '', idem_key, order_id, 0, 'import', earned_at FROM patron_stage_loyalty WHERE true \
             ON CONFLICT (customer_id, idempotency_key) DO NOTHING",
        ))
        .await?;
        tx.execute(query(
            "INSERT INTO loyalty_lots (customer_id, entry_id, points, remaining, earned_at, spendable_from, expires_at) \
             SELECT s.customer_id, e.id, s.points, s.points, s.earned_at, s.spendable_from, s.expires_at FROM patron_stage_loyalty s \
             JOIN loyalty_entries e ON e.customer_id = s.customer_id AND e.idempotency_key = s.idem_key \
             WHERE NOT EXISTS (SELECT 1 FROM loyalty_lots l WHERE l.customer_id = e.customer_id AND l.entry_id = e.id)",
        ))
        .await?;
        EARN_STAGE.drop_table(tx).await?;
    }
    // Reversals (refunds and cancellations of orders that earned) and members with a debt:
    // few, one at a time through the same path as the API.
    let mut reversals: Vec<(i64, i64)> = tx
        .fetch_all(query(format!(
            "SELECT o.customer_id, o.id FROM orders o JOIN loyalty_entries e ON e.customer_id = o.customer_id \
             AND e.idempotency_key = 'order:' || CAST(o.id AS TEXT) \
             WHERE o.customer_id IN ({TOUCHED}) AND o.status IN ('refunded', 'cancelled') \
             AND NOT EXISTS (SELECT 1 FROM loyalty_entries r WHERE r.customer_id = o.customer_id \
                 AND r.idempotency_key IN ('reverse:order:' || CAST(o.id AS TEXT), 'debt:reverse:order:' || CAST(o.id AS TEXT)))"
        )))
        .await?;
    // Orders that came with a merge earned on the duplicate's ledger (see `merged_earning`):
    // refunds of those are looked for at the customers kept, which are few.
    let kept: Vec<(i64,)> = tx
        .fetch_all(query(format!("SELECT DISTINCT merged_into FROM customers WHERE merged_into IN ({TOUCHED}) ORDER BY merged_into")))
        .await?;
    for (keep,) in kept {
        let refunded: Vec<(i64, i64)> = tx
            .fetch_all(
                query(
                    "SELECT o.customer_id, o.id FROM orders o WHERE o.customer_id = $1 AND o.status IN ('refunded', 'cancelled') \
                     AND NOT EXISTS (SELECT 1 FROM loyalty_entries r WHERE r.customer_id = o.customer_id AND r.idempotency_key IN \
                     ('order:' || CAST(o.id AS TEXT), 'reverse:order:' || CAST(o.id AS TEXT), 'debt:reverse:order:' || CAST(o.id AS TEXT)))",
                )
                .bind(keep),
            )
            .await?;
        reversals.extend(refunded);
    }
    earned += one_by_one.len() as u64;
    for (customer_id, order_id) in one_by_one.into_iter().chain(reversals) {
        sync_order(tx, p, tz, customer_id, order_id, "import", now).await?;
    }
    if !p.tiers.is_empty() {
        // Tiers on what the file earned: the touched members, one statement each.
        let members: Vec<(i64,)> = tx
            .fetch_all(query(format!("SELECT customer_id FROM loyalty_members WHERE customer_id IN ({TOUCHED}) AND status = 'active'")))
            .await?;
        for (customer_id,) in members {
            super::tiers::evaluate(tx, p, customer_id, now).await?;
        }
    }
    Ok(earned)
}
