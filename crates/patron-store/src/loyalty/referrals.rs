//! Referrals: the referrer (the referee's `referrer_id`) earns the programme's referral points
//! when the referee's first completed order is past the pending period and not refunded; no
//! reward when the referee is the referrer (merged duplicates included) or shares a mobile,
//! email or WeChat id with them, nor beyond the referrer's monthly cap; reversed when that
//! first order is refunded later. Decided once per referee (`loyalty_referrals`).

use chrono::{DateTime, Datelike, TimeZone, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::ledger::{credit, insert_entry, reverse_credit, NewEntry, Reversal};
use super::{lock_member, LoyaltyProgram};
use crate::db::{query, Tx};
use crate::{Result, Store};

/// What the referral review did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct ReferralReport {
    /// Rewards paid.
    pub paid: u64,
    /// Refused by a fraud guard or the cap.
    pub refused: u64,
}

#[derive(serde::Deserialize, sqlx::FromRow)]
struct Party {
    id: i64,
    referrer_id: Option<i64>,
    mobile: Option<String>,
    email: Option<String>,
    wechat_id: Option<String>,
    merged_into: Option<i64>,
}

const PARTY: &str = "SELECT id, referrer_id, mobile, email, wechat_id, merged_into FROM customers";

/// Why a referral earns nothing (a fraud guard), if it does not.
fn guard(referee: &Party, referrer: &Party) -> Option<&'static str> {
    if referee.id == referrer.id || referee.merged_into == Some(referrer.id) || referrer.merged_into == Some(referee.id) {
        return Some("the referee is the referrer");
    }
    let same = |a: &Option<String>, b: &Option<String>| matches!((a, b), (Some(x), Some(y)) if !x.trim().is_empty() && x.trim().eq_ignore_ascii_case(y.trim()));
    if same(&referee.mobile, &referrer.mobile) || same(&referee.email, &referrer.email) || same(&referee.wechat_id, &referrer.wechat_id) {
        return Some("the referee shares a mobile, email or WeChat id with the referrer");
    }
    None
}

/// A decision: status, reason, the referee's first order, the points paid.
struct Decision<'a>(&'a str, Option<&'a str>, Option<i64>, i64);

async fn record(tx: &mut Tx, referrer: i64, referee: i64, d: Decision<'_>, at: DateTime<Utc>) -> Result<bool> {
    let n = tx
        .execute(
            query(
                "INSERT INTO loyalty_referrals (customer_id, referee_id, status, reason, order_id, points, decided_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (customer_id, referee_id) DO NOTHING",
            )
            .bind(referrer)
            .bind(referee)
            .bind(d.0)
            .bind(d.1)
            .bind(d.2)
            .bind(d.3)
            .bind(at),
        )
        .await?;
    Ok(n > 0)
}

/// Queues `customer_id` for the referral decision when they were referred and have a completed
/// (or since refunded) order, in the caller's transaction (an order's, an import's, a merge's);
/// once per referee, whatever reruns. Single-shard on Citus: the customer and their orders.
pub(crate) async fn queue(tx: &mut Tx, customer_id: i64) -> Result<()> {
    // Queued once, at the first order: later orders would only read all the customer's orders
    // again for the minimum that the conflict then throws away.
    let queued: Option<(i64,)> =
        tx.fetch_optional(query("SELECT customer_id FROM loyalty_referees WHERE customer_id = $1").bind(customer_id)).await?;
    if queued.is_some() {
        return Ok(());
    }
    tx.execute(
        query(
            "INSERT INTO loyalty_referees (customer_id, first_order_at) \
             SELECT o.customer_id, MIN(o.ordered_at) FROM orders o JOIN customers c ON c.id = o.customer_id \
             WHERE o.customer_id = $1 AND c.referrer_id IS NOT NULL AND c.deleted_at IS NULL AND o.status IN ('completed', 'refunded') \
             GROUP BY o.customer_id ON CONFLICT (customer_id) DO NOTHING",
        )
        .bind(customer_id),
    )
    .await?;
    Ok(())
}

/// [`queue`] for the customers an import touched (`patron_stage_touched`), in one statement.
pub(crate) async fn queue_touched(tx: &mut Tx) -> Result<()> {
    tx.execute(query(
        "INSERT INTO loyalty_referees (customer_id, first_order_at) \
         SELECT o.customer_id, MIN(o.ordered_at) FROM orders o JOIN customers c ON c.id = o.customer_id \
         WHERE o.customer_id IN (SELECT customer_id FROM patron_stage_touched) AND c.referrer_id IS NOT NULL \
         AND c.deleted_at IS NULL AND o.status IN ('completed', 'refunded') \
         GROUP BY o.customer_id ON CONFLICT (customer_id) DO NOTHING",
    ))
    .await?;
    Ok(())
}

/// Reverses the referral reward paid for `referee` when `order_id` (refunded or cancelled) was
/// the first order it was paid for; in the order's transaction.
pub(crate) async fn on_refund(tx: &mut Tx, referee: i64, order_id: i64, by: &str, now: DateTime<Utc>) -> Result<()> {
    let Some((Some(referrer),)): Option<(Option<i64>,)> =
        tx.fetch_optional(query("SELECT referrer_id FROM customers WHERE id = $1").bind(referee)).await?
    else {
        return Ok(());
    };
    let paid: Option<(i64,)> = tx
        .fetch_optional(
            query("SELECT points FROM loyalty_referrals WHERE customer_id = $1 AND referee_id = $2 AND status = 'paid' AND order_id = $3")
                .bind(referrer)
                .bind(referee)
                .bind(order_id),
        )
        .await?;
    let Some((points,)) = paid else { return Ok(()) };
    let Some(mut member) = lock_member(tx, referrer).await? else { return Ok(()) };
    let key = format!("referral:{referee}");
    let Some((earn,)): Option<(i64,)> = tx
        .fetch_optional(query("SELECT id FROM loyalty_entries WHERE customer_id = $1 AND idempotency_key = $2").bind(referrer).bind(&key))
        .await?
    else {
        return Ok(());
    };
    let r = Reversal {
        earn_entry: earn,
        points,
        key: format!("reverse:{key}"),
        source: key,
        reason: "referee's first order refunded".into(),
        order_id: None,
    };
    reverse_credit(tx, &mut member, r, by, now).await?;
    tx.execute(
        query("UPDATE loyalty_referrals SET status = 'reversed', reason = $1, decided_at = $2 WHERE customer_id = $3 AND referee_id = $4")
            .bind("the referee's first order was refunded")
            .bind(now)
            .bind(referrer)
            .bind(referee),
    )
    .await?;
    Ok(())
}

/// Referred customers against the others.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReferralGroup {
    /// `referred` or `others`.
    pub group: String,
    /// Customers (scored by the latest analysis).
    pub customers: i64,
    /// Mean P(alive) (BG/NBD).
    pub mean_p_alive: Option<f64>,
    /// Mean spend, minor units.
    pub mean_spend_cents: Option<f64>,
    /// Mean loyalty index.
    pub mean_loyalty_index: Option<f64>,
}

/// The referral report.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReferralStats {
    /// Referred and others.
    pub groups: Vec<ReferralGroup>,
    /// Rewards paid, refused and reversed.
    pub paid: i64,
    /// See `paid`.
    pub refused: i64,
    /// See `paid`.
    pub reversed: i64,
}

impl Store {
    /// Decides the referral rewards that are due (the scheduler), each once: the referees
    /// queued in `loyalty_referees` whose first order is past the pending period.
    pub async fn run_referrals(&self) -> Result<ReferralReport> {
        let p: LoyaltyProgram = self.loyalty_program().await?;
        let mut report = ReferralReport::default();
        if !p.enabled || p.referral_points <= 0 {
            return Ok(report);
        }
        let now = self.now();
        let tz = self.config.business_tz;
        let due_before = now - chrono::Duration::days(p.pending_days);
        let mut after = 0i64;
        loop {
            let waiting: Vec<(i64,)> = self
                .db
                .reader()
                .fetch_all(
                    query(
                        "SELECT customer_id FROM loyalty_referees WHERE decided_at IS NULL AND first_order_at <= $1 AND customer_id > $2 \
                         ORDER BY customer_id LIMIT 500",
                    )
                    .bind(due_before)
                    .bind(after),
                )
                .await?;
            let Some(&(last,)) = waiting.last() else { break };
            after = last;
            for (referee,) in waiting {
                self.decide_referral(&p, referee, now, tz, &mut report).await?;
            }
        }
        Ok(report)
    }

    /// Decides one queued referee, in one transaction with its queue row claimed (a second
    /// scheduler finds it decided).
    async fn decide_referral(
        &self,
        p: &LoyaltyProgram,
        referee_id: i64,
        now: DateTime<Utc>,
        tz: chrono_tz::Tz,
        report: &mut ReferralReport,
    ) -> Result<()> {
        let mut tx = self.db.begin().await?;
        let claimed = tx
            .execute(
                query("UPDATE loyalty_referees SET decided_at = $1 WHERE customer_id = $2 AND decided_at IS NULL")
                    .bind(now)
                    .bind(referee_id),
            )
            .await?;
        if claimed == 0 {
            return Ok(());
        }
        let referee: Option<Party> =
            tx.fetch_optional(query(format!("{PARTY} WHERE id = $1 AND deleted_at IS NULL")).bind(referee_id)).await?;
        let Some(referee) = referee else {
            // Erased or merged away: the customer kept is queued by the merge.
            tx.commit().await?;
            return Ok(());
        };
        let Some(referrer_id) = referee.referrer_id else {
            tx.commit().await?;
            return Ok(());
        };
        let decided: Option<(String,)> = tx
            .fetch_optional(
                query("SELECT status FROM loyalty_referrals WHERE customer_id = $1 AND referee_id = $2").bind(referrer_id).bind(referee.id),
            )
            .await?;
        if decided.is_some() {
            tx.commit().await?;
            return Ok(());
        }
        let first: Option<(i64, DateTime<Utc>, String)> = tx
            .fetch_optional(
                query(
                    "SELECT id, ordered_at, status FROM orders WHERE customer_id = $1 AND status IN ('completed', 'refunded') \
                     ORDER BY ordered_at, id LIMIT 1",
                )
                .bind(referee.id),
            )
            .await?;
        let Some((order_id, ordered_at, status)) = first else {
            // No order left to decide on (cancelled meanwhile): the next completed one queues again.
            tx.execute(query("DELETE FROM loyalty_referees WHERE customer_id = $1").bind(referee.id)).await?;
            tx.commit().await?;
            return Ok(());
        };
        if ordered_at + chrono::Duration::days(p.pending_days) > now {
            // Still pending (the queue held a later order than the first): wait for it.
            tx.execute(
                query("UPDATE loyalty_referees SET decided_at = NULL, first_order_at = $1 WHERE customer_id = $2")
                    .bind(ordered_at)
                    .bind(referee.id),
            )
            .await?;
            tx.commit().await?;
            return Ok(());
        }
        let referrer: Option<Party> = tx.fetch_optional(query(format!("{PARTY} WHERE id = $1")).bind(referrer_id)).await?;
        let Some(referrer) = referrer else {
            tx.commit().await?;
            return Ok(());
        };
        let Some(mut member) = lock_member(&mut tx, referrer_id).await?.filter(|m| m.status == "active") else {
            record(
                &mut tx,
                referrer_id,
                referee.id,
                Decision("refused", Some("the referrer is not an active member"), Some(order_id), 0),
                now,
            )
            .await?;
            tx.commit().await?;
            report.refused += 1;
            return Ok(());
        };
        let local = now.with_timezone(&tz);
        let month_start = tz.with_ymd_and_hms(local.year(), local.month(), 1, 0, 0, 0).earliest().map_or(now, |t| t.with_timezone(&Utc));
        let (this_month,): (i64,) = tx
            .fetch_one(
                query("SELECT COUNT(*) FROM loyalty_referrals WHERE customer_id = $1 AND status <> 'refused' AND decided_at >= $2")
                    .bind(referrer_id)
                    .bind(month_start),
            )
            .await?;
        let refusal = if status != "completed" {
            Some("the referee's first order was refunded")
        } else if let Some(why) = guard(&referee, &referrer) {
            Some(why)
        } else if this_month >= p.referral_cap_per_month {
            Some("the referrer's monthly cap is reached")
        } else {
            None
        };
        if let Some(why) = refusal {
            record(&mut tx, referrer_id, referee.id, Decision("refused", Some(why), Some(order_id), 0), now).await?;
            tx.commit().await?;
            report.refused += 1;
            return Ok(());
        }
        if !record(&mut tx, referrer_id, referee.id, Decision("paid", None, Some(order_id), p.referral_points), now).await? {
            tx.commit().await?;
            return Ok(());
        }
        let key = format!("referral:{}", referee.id);
        let e = NewEntry {
            kind: "earn",
            points: p.referral_points,
            key: key.clone(),
            request: String::new(),
            source: key,
            reason: Some("referral".into()),
            order_id: None,
            reward_id: None,
            debt_repaid: 0,
            by: "scheduler",
            at: now,
        };
        if let Some(id) = insert_entry(&mut tx, referrer_id, e).await? {
            credit(&mut tx, &mut member, id, p.referral_points, now, now, p.expires_at(now, tz)).await?;
        }
        tx.commit().await?;
        report.paid += 1;
        Ok(())
    }

    /// Referred customers against the others (the latest analysis's scores), and the rewards.
    pub async fn referral_stats(&self) -> Result<ReferralStats> {
        let mut r = self.db.reader();
        /// group, customers, mean P(alive), spend, loyalty index.
        type GroupRow = (String, i64, Option<f64>, Option<f64>, Option<f64>);
        let groups: Vec<GroupRow> = r
            .fetch_all(query(
                "SELECT CASE WHEN c.referrer_id IS NOT NULL THEN 'referred' ELSE 'others' END AS grp, COUNT(*), \
                 CAST(AVG(s.p_alive) AS DOUBLE PRECISION), CAST(AVG(s.spend_cents) AS DOUBLE PRECISION), CAST(AVG(s.loyalty_index) AS DOUBLE PRECISION) \
                 FROM customers c JOIN customer_scores s ON s.customer_id = c.id WHERE c.deleted_at IS NULL AND c.merged_into IS NULL \
                 GROUP BY CASE WHEN c.referrer_id IS NOT NULL THEN 'referred' ELSE 'others' END ORDER BY 1 DESC",
            ))
            .await?;
        let counts: Vec<(String, i64)> = r.fetch_all(query("SELECT status, COUNT(*) FROM loyalty_referrals GROUP BY status")).await?;
        let count = |s: &str| counts.iter().find(|c| c.0 == s).map_or(0, |c| c.1);
        Ok(ReferralStats {
            groups: groups
                .into_iter()
                .map(|(group, customers, mean_p_alive, mean_spend_cents, mean_loyalty_index)| ReferralGroup {
                    group,
                    customers,
                    mean_p_alive,
                    mean_spend_cents,
                    mean_loyalty_index,
                })
                .collect(),
            paid: count("paid"),
            refused: count("refused"),
            reversed: count("reversed"),
        })
    }
}
