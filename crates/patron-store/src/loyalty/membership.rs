//! Memberships that end with their customer: a merge moves the duplicate's points (its lots,
//! with their dates, and its debt) to the customer kept and closes the duplicate's membership;
//! an erasure of personal data closes the membership, forfeits its points and clears the free
//! text of its ledger, which stays (points and dates, no personal data) for the liability
//! figures. Both run in the merge's or the erasure's transaction, under idempotency keys, so the
//! points move once.

use chrono::{DateTime, Utc};

use super::ledger::{apply_draw, credit, insert_entry, NewEntry};
use super::{enrol_in, lock_member, MemberRow};
use crate::db::{query, Tx};
use crate::Result;

/// A lot with points left: id, its earning entry's order, remaining, earned, spendable, expiry.
type LotRow = (i64, Option<i64>, i64, DateTime<Utc>, DateTime<Utc>, Option<DateTime<Utc>>);

async fn open_lots(tx: &mut Tx, customer_id: i64) -> Result<Vec<LotRow>> {
    tx.fetch_all(
        query(
            "SELECT l.id, e.order_id, l.remaining, l.earned_at, l.spendable_from, l.expires_at FROM loyalty_lots l \
             JOIN loyalty_entries e ON e.customer_id = l.customer_id AND e.id = l.entry_id \
             WHERE l.customer_id = $1 AND l.remaining > 0 ORDER BY l.id",
        )
        .bind(customer_id),
    )
    .await
}

/// Draws every lot of a locked member to zero under one entry (`kind`, `key`); returns the
/// points taken (nothing when the key was used).
async fn drain(
    tx: &mut Tx,
    member: &MemberRow,
    lots: &[LotRow],
    (kind, key, reason): (&'static str, String, String),
    by: &str,
    at: DateTime<Utc>,
) -> Result<i64> {
    let total: i64 = lots.iter().map(|l| l.2).sum();
    if total == 0 {
        return Ok(0);
    }
    let e = NewEntry {
        kind,
        points: -total,
        key: key.clone(),
        request: String::new(),
        source: key,
        reason: Some(reason),
        order_id: None,
        reward_id: None,
        debt_repaid: 0,
        by,
        at,
    };
    let Some(id) = insert_entry(tx, member.customer_id, e).await? else { return Ok(0) };
    let plan: Vec<(i64, i64)> = lots.iter().map(|l| (l.0, l.2)).collect();
    apply_draw(tx, member.customer_id, id, &plan).await?;
    Ok(total)
}

async fn close(tx: &mut Tx, customer_id: i64, at: DateTime<Utc>) -> Result<()> {
    tx.execute(query("UPDATE loyalty_members SET status = 'closed', updated_at = $1 WHERE customer_id = $2").bind(at).bind(customer_id))
        .await?;
    Ok(())
}

/// Moves the points of `merge_id` (merged into `keep_id`) to `keep_id`, in the merge's
/// transaction: each lot with points left becomes a lot of the kept customer with the same
/// dates (entries keyed `merge:<merge_id>:<lot>`), the debt follows (`merge:<merge_id>:debt`),
/// the duplicate's lots are drawn to zero and its membership closed. The kept customer is
/// enrolled when they were not a member. Returns the points moved.
pub(crate) async fn on_merge(tx: &mut Tx, keep_id: i64, merge_id: i64, by: &str, at: DateTime<Utc>) -> Result<i64> {
    let Some(mut dup) = lock_member(tx, merge_id).await? else { return Ok(0) };
    if dup.status == "closed" {
        return Ok(0);
    }
    enrol_in(tx, keep_id, at).await?;
    let Some(mut keep) = lock_member(tx, keep_id).await? else { return Ok(0) };
    let lots = open_lots(tx, merge_id).await?;
    let reason_out = format!("merged into customer #{keep_id}");
    let moved = drain(tx, &dup, &lots, ("adjust", format!("merge:{merge_id}:out"), reason_out), by, at).await?;
    if moved > 0 {
        for &(lot, order_id, remaining, earned_at, spendable_from, expires_at) in &lots {
            let key = format!("merge:{merge_id}:{lot}");
            let e = NewEntry {
                kind: "earn",
                points: remaining,
                key: key.clone(),
                request: String::new(),
                source: format!("merge:{merge_id}"),
                reason: Some(format!("from merged customer #{merge_id}")),
                order_id,
                reward_id: None,
                debt_repaid: 0,
                by,
                // The date it was earned, so that tiers qualify on it as before.
                at: earned_at,
            };
            if let Some(id) = insert_entry(tx, keep_id, e).await? {
                credit(tx, &mut keep, id, remaining, earned_at, spendable_from, expires_at).await?;
            }
        }
    }
    if dup.debt > 0 {
        let debt = dup.debt;
        let out = NewEntry {
            kind: "adjust",
            points: debt,
            key: format!("merge:{merge_id}:debt-out"),
            request: String::new(),
            source: format!("merge:{merge_id}"),
            reason: Some(format!("debt moved to customer #{keep_id}")),
            order_id: None,
            reward_id: None,
            debt_repaid: 0,
            by,
            at,
        };
        let into = NewEntry {
            kind: "debt",
            points: -debt,
            key: format!("merge:{merge_id}:debt"),
            request: String::new(),
            source: format!("merge:{merge_id}"),
            reason: Some(format!("debt of merged customer #{merge_id}")),
            order_id: None,
            reward_id: None,
            debt_repaid: 0,
            by,
            at,
        };
        if insert_entry(tx, merge_id, out).await?.is_some() && insert_entry(tx, keep_id, into).await?.is_some() {
            dup.debt = 0;
            keep.debt += debt;
            tx.execute(query("UPDATE loyalty_members SET debt = 0, updated_at = $1 WHERE customer_id = $2").bind(at).bind(merge_id))
                .await?;
            tx.execute(
                query("UPDATE loyalty_members SET debt = $1, updated_at = $2 WHERE customer_id = $3")
                    .bind(keep.debt)
                    .bind(at)
                    .bind(keep_id),
            )
            .await?;
        }
    }
    close(tx, merge_id, at).await?;
    let payload = serde_json::json!({"merged_id": merge_id, "points": moved, "debt": keep.debt, "by": by});
    crate::events::append(tx, keep_id, "loyalty.points_merged", Some(merge_id), payload, at).await?;
    Ok(moved)
}

/// Closes the membership of an erased customer in the erasure's transaction: the points left
/// are forfeited (an `expire` entry keyed `close:erasure`, counted as breakage), and the ledger's
/// free text (adjustment reasons, requests) is cleared; points, kinds and dates stay.
pub(crate) async fn on_erasure(tx: &mut Tx, customer_id: i64, by: &str, at: DateTime<Utc>) -> Result<()> {
    let Some(member) = lock_member(tx, customer_id).await? else { return Ok(()) };
    let lots = open_lots(tx, customer_id).await?;
    drain(tx, &member, &lots, ("expire", "close:erasure".into(), "membership closed: personal data erased".into()), by, at).await?;
    close(tx, customer_id, at).await?;
    tx.execute(
        query("UPDATE loyalty_entries SET reason = CASE WHEN kind = 'adjust' THEN 'erased' ELSE reason END, request = '' WHERE customer_id = $1")
            .bind(customer_id),
    )
    .await?;
    Ok(())
}
