//! The points ledger: append-only entries under unique idempotency keys, lots of earned points,
//! draws on lots nearest expiry first, redemptions under the member's lock, adjustments,
//! reversals (with a debt for points spent already) and expiry by the scheduler, once.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{lock_member, program_in, MemberRow};
use crate::db::{query, Tx};
use crate::page::{decode_cursor, encode_cursor, Page};
use crate::users::Actor;
use crate::{audit, Result, Store, StoreError};

/// The order lots are spent in: nearest expiry first, then oldest; lots without expiry last.
pub(crate) const SPENDING_ORDER: &str = "ORDER BY CASE WHEN expires_at IS NULL THEN 1 ELSE 0 END, expires_at, earned_at, id";

/// A ledger entry.
#[derive(serde::Deserialize, Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Entry {
    /// Id.
    pub id: i64,
    /// `earn`, `redeem`, `expire`, `adjust`, `reverse` or `debt`.
    pub kind: String,
    /// Signed points: earnings and positive adjustments add, the rest take.
    pub points: i64,
    /// The idempotency key it was recorded under.
    pub idempotency_key: String,
    /// Where it comes from: `order:<id>`, `redemption:<id>`, `lot:<id>`, `referral:<customer>`, `manual`.
    pub source: String,
    /// Why (adjustments, reversals).
    pub reason: Option<String>,
    /// The order it is about.
    pub order_id: Option<i64>,
    /// The reward redeemed.
    pub reward_id: Option<i64>,
    /// For an earning: the debt it paid off first.
    pub debt_repaid: i64,
    /// Who recorded it (`user:<id>`, `token:<id>`, `cli`, `import`, `scheduler`).
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

const ENTRY_SELECT: &str =
    "SELECT id, kind, points, idempotency_key, source, reason, order_id, reward_id, debt_repaid, created_by, created_at FROM loyalty_entries";

/// `POST …/redemptions`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedemptionRequest {
    /// Points to spend (with `reward_id`: the reward's points, which may be left out).
    #[schema(minimum = 1)]
    pub points: Option<i64>,
    /// The reward chosen.
    pub reward_id: Option<i64>,
    /// The client's key: the same key with the same content answers the first result; with
    /// other content, 409.
    #[schema(min_length = 1, max_length = 200)]
    pub idempotency_key: String,
}

/// A redemption and its fulfilment.
#[derive(serde::Deserialize, Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Redemption {
    /// Id.
    pub id: i64,
    /// The member.
    pub customer_id: i64,
    /// Its ledger entry.
    pub entry_id: i64,
    /// Points spent.
    pub points: i64,
    /// The reward.
    pub reward_id: Option<i64>,
    /// `ordered`, `handed_over` or `cancelled` (points back).
    pub status: String,
    /// When.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

pub(crate) const REDEMPTION_SELECT: &str =
    "SELECT id, customer_id, entry_id, points, reward_id, status, created_at, updated_at FROM loyalty_redemptions";

/// `POST …/adjustments` (manager+).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdjustmentRequest {
    /// Points to add (positive) or take (negative); not zero.
    #[schema(minimum = -100_000_000, maximum = 100_000_000)]
    pub points: i64,
    /// Why (required).
    #[schema(min_length = 1, max_length = 500)]
    pub reason: String,
    /// A client's key for retries (default: a new one).
    #[schema(min_length = 1, max_length = 200)]
    pub idempotency_key: Option<String>,
}

/// A new entry (written by [`insert_entry`]).
pub(crate) struct NewEntry<'a> {
    pub(crate) kind: &'static str,
    pub(crate) points: i64,
    pub(crate) key: String,
    pub(crate) request: String,
    pub(crate) source: String,
    pub(crate) reason: Option<String>,
    pub(crate) order_id: Option<i64>,
    pub(crate) reward_id: Option<i64>,
    pub(crate) debt_repaid: i64,
    pub(crate) by: &'a str,
    pub(crate) at: DateTime<Utc>,
}

/// Appends an entry; `None` when its key is taken already (recorded before: nothing to do).
pub(crate) async fn insert_entry(tx: &mut Tx, customer_id: i64, e: NewEntry<'_>) -> Result<Option<i64>> {
    let row: Option<(i64,)> = tx
        .fetch_optional(
            query(
                "INSERT INTO loyalty_entries (customer_id, kind, points, idempotency_key, request, source, reason, order_id, reward_id, \
                 debt_repaid, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
                 ON CONFLICT (customer_id, idempotency_key) DO NOTHING RETURNING id",
            )
            .bind(customer_id)
            .bind(e.kind)
            .bind(e.points)
            .bind(e.key)
            .bind(e.request)
            .bind(e.source)
            .bind(e.reason)
            .bind(e.order_id)
            .bind(e.reward_id)
            .bind(e.debt_repaid)
            .bind(e.by)
            .bind(e.at),
        )
        .await?;
    Ok(row.map(|r| r.0))
}

/// The entry recorded under `key`: (id, request).
pub(crate) async fn entry_by_key(tx: &mut Tx, customer_id: i64, key: &str) -> Result<Option<(i64, String, i64)>> {
    tx.fetch_optional(
        query("SELECT id, request, points FROM loyalty_entries WHERE customer_id = $1 AND idempotency_key = $2")
            .bind(customer_id)
            .bind(key),
    )
    .await
}

/// Credits `points` (> 0) earned at `earned_at` to a locked member: the debt first, the rest as
/// a lot. Returns the debt repaid. The caller has written entry `entry_id` with `points`.
pub(crate) async fn credit(
    tx: &mut Tx,
    member: &mut MemberRow,
    entry_id: i64,
    points: i64,
    earned_at: DateTime<Utc>,
    spendable_from: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
) -> Result<i64> {
    let repaid = member.debt.min(points);
    if repaid > 0 {
        member.debt -= repaid;
        tx.execute(query("UPDATE loyalty_members SET debt = $1 WHERE customer_id = $2").bind(member.debt).bind(member.customer_id)).await?;
        tx.execute(
            query("UPDATE loyalty_entries SET debt_repaid = $1 WHERE customer_id = $2 AND id = $3")
                .bind(repaid)
                .bind(member.customer_id)
                .bind(entry_id),
        )
        .await?;
    }
    let rest = points - repaid;
    if rest > 0 {
        tx.execute(
            query(
                "INSERT INTO loyalty_lots (customer_id, entry_id, points, remaining, earned_at, spendable_from, expires_at) \
                 VALUES ($1, $2, $3, $3, $4, $5, $6)",
            )
            .bind(member.customer_id)
            .bind(entry_id)
            .bind(rest)
            .bind(earned_at)
            .bind(spendable_from)
            .bind(expires_at),
        )
        .await?;
    }
    Ok(repaid)
}

/// Which lots to draw `want` points from, in spending order (`prefer`'s lot first; only lots
/// spendable at `spendable_at` when given). Takes at most what they hold.
pub(crate) async fn plan_draw(
    tx: &mut Tx,
    customer_id: i64,
    want: i64,
    spendable_at: Option<DateTime<Utc>>,
    prefer_entry: Option<i64>,
) -> Result<Vec<(i64, i64)>> {
    let mut sql = String::from("SELECT id, remaining, entry_id FROM loyalty_lots WHERE customer_id = $1 AND remaining > 0");
    if spendable_at.is_some() {
        sql.push_str(" AND spendable_from <= $2");
    }
    sql.push(' ');
    sql.push_str(SPENDING_ORDER);
    let mut q = query(sql).bind(customer_id);
    if let Some(at) = spendable_at {
        q = q.bind(at);
    }
    let mut lots: Vec<(i64, i64, i64)> = tx.fetch_all(q).await?;
    if let Some(e) = prefer_entry {
        // Stable: the preferred lot first, the rest in spending order.
        lots.sort_by_key(|l| l.2 != e);
    }
    let mut plan = Vec::new();
    let mut left = want;
    for (id, remaining, _) in lots {
        if left <= 0 {
            break;
        }
        let take = remaining.min(left);
        plan.push((id, take));
        left -= take;
    }
    Ok(plan)
}

/// Applies a draw for entry `entry_id`: the lots' remaining go down (never below zero: the
/// CHECK constraint) and the draws are recorded.
pub(crate) async fn apply_draw(tx: &mut Tx, customer_id: i64, entry_id: i64, plan: &[(i64, i64)]) -> Result<()> {
    for &(lot, take) in plan {
        tx.execute(
            query("UPDATE loyalty_lots SET remaining = remaining - $1 WHERE customer_id = $2 AND id = $3")
                .bind(take)
                .bind(customer_id)
                .bind(lot),
        )
        .await?;
        tx.execute(
            query("INSERT INTO loyalty_draws (customer_id, entry_id, lot_id, points) VALUES ($1, $2, $3, $4)")
                .bind(customer_id)
                .bind(entry_id)
                .bind(lot)
                .bind(take),
        )
        .await?;
    }
    Ok(())
}

/// Points a locked member can spend at `now`: spendable lots less the debt.
pub(crate) async fn spendable_in(tx: &mut Tx, member: &MemberRow, now: DateTime<Utc>) -> Result<i64> {
    let (sum,): (i64,) = tx
        .fetch_one(
            query("SELECT CAST(COALESCE(SUM(remaining), 0) AS BIGINT) FROM loyalty_lots WHERE customer_id = $1 AND remaining > 0 AND spendable_from <= $2")
                .bind(member.customer_id)
                .bind(now),
        )
        .await?;
    Ok((sum - member.debt).max(0))
}

/// What a reversal takes back (see [`reverse_credit`]).
pub(crate) struct Reversal {
    /// The entry that credited the points.
    pub(crate) earn_entry: i64,
    /// How many.
    pub(crate) points: i64,
    /// Its idempotency key (the debt's is `debt:<key>`).
    pub(crate) key: String,
    /// Its source.
    pub(crate) source: String,
    /// Why.
    pub(crate) reason: String,
    /// The order it is about.
    pub(crate) order_id: Option<i64>,
}

/// Takes back `points` credited by entry `earn_entry` (an order refunded or cancelled, a
/// referral reversed): from that entry's lot first, then any lot in spending order, and what
/// was spent already as a debt. Recorded under `key` (and `debt:<key>`); nothing when recorded.
pub(crate) async fn reverse_credit(tx: &mut Tx, member: &mut MemberRow, r: Reversal, by: &str, at: DateTime<Utc>) -> Result<bool> {
    let Reversal { earn_entry, points, key, source, reason, order_id } = r;
    let reason = reason.as_str();
    let customer_id = member.customer_id;
    if entry_by_key(tx, customer_id, &key).await?.is_some() {
        return Ok(false);
    }
    let plan = plan_draw(tx, customer_id, points, None, Some(earn_entry)).await?;
    let taken: i64 = plan.iter().map(|p| p.1).sum();
    let debt = points - taken;
    if taken > 0 {
        let e = NewEntry {
            kind: "reverse",
            points: -taken,
            key: key.clone(),
            request: String::new(),
            source: source.clone(),
            reason: Some(reason.to_owned()),
            order_id,
            reward_id: None,
            debt_repaid: 0,
            by,
            at,
        };
        let Some(id) = insert_entry(tx, customer_id, e).await? else { return Ok(false) };
        apply_draw(tx, customer_id, id, &plan).await?;
    }
    if debt > 0 {
        let e = NewEntry {
            kind: "debt",
            points: -debt,
            key: format!("debt:{key}"),
            request: String::new(),
            source,
            reason: Some(format!("{reason}: points spent already")),
            order_id,
            reward_id: None,
            debt_repaid: 0,
            by,
            at,
        };
        if insert_entry(tx, customer_id, e).await?.is_none() {
            return Ok(false);
        }
        member.debt += debt;
        tx.execute(
            query("UPDATE loyalty_members SET debt = $1, updated_at = $2 WHERE customer_id = $3")
                .bind(member.debt)
                .bind(at)
                .bind(customer_id),
        )
        .await?;
    }
    Ok(true)
}

fn check_key(key: &str) -> Result<()> {
    if key.trim().is_empty() || key.chars().count() > 200 {
        return Err(StoreError::invalid("idempotency_key", "1 to 200 characters"));
    }
    if ["order:", "reverse:", "debt:", "expire:", "cancel:", "referral:", "merge:", "close:"].iter().any(|p| key.starts_with(p)) {
        return Err(StoreError::invalid(
            "idempotency_key",
            "keys starting order:, reverse:, debt:, expire:, cancel:, referral:, merge: or close: are patron's own",
        ));
    }
    Ok(())
}

async fn active_member(tx: &mut Tx, customer_id: i64) -> Result<MemberRow> {
    let m = lock_member(tx, customer_id).await?.ok_or(StoreError::NotFound("member"))?;
    if m.status != "active" {
        return Err(StoreError::State(format!("the member is {}", m.status)));
    }
    Ok(m)
}

impl Store {
    /// A member's ledger, newest first (`limit` 1–500).
    pub async fn loyalty_ledger(&self, customer_id: i64, cursor: Option<&str>, limit: i64) -> Result<Page<Entry>> {
        let limit = limit.clamp(1, 500);
        let mut r = self.db.reader();
        let found: Option<(i64,)> =
            r.fetch_optional(query("SELECT customer_id FROM loyalty_members WHERE customer_id = $1").bind(customer_id)).await?;
        if found.is_none() {
            return Err(StoreError::NotFound("member"));
        }
        let mut q = query(format!(
            "{ENTRY_SELECT} WHERE customer_id = $1 {} ORDER BY id DESC LIMIT $2",
            if cursor.is_some() { "AND id < $3" } else { "" }
        ))
        .bind(customer_id)
        .bind(limit + 1);
        if let Some(c) = cursor {
            let id: i64 = decode_cursor(c)?;
            q = q.bind(id);
        }
        let mut items: Vec<Entry> = r.fetch_all(q).await?;
        let next_cursor = if items.len() as i64 > limit {
            items.truncate(limit as usize);
            items.last().map(|e| encode_cursor(&e.id))
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }

    /// Redeems points (with a reward, when given) for a member: under the member's lock, the
    /// spendable balance re-checked, lots drawn nearest expiry first, a reward's stock taken in
    /// the same transaction. Returns the redemption and whether it was made now (`false`: the
    /// same key and content answered before, this is the first result).
    pub async fn redeem_points(&self, actor: &Actor, customer_id: i64, r: RedemptionRequest) -> Result<(Redemption, bool)> {
        check_key(&r.idempotency_key)?;
        if let Some(p) = r.points {
            if p <= 0 {
                return Err(StoreError::invalid("points", "must be 1 or more"));
            }
        }
        if r.points.is_none() && r.reward_id.is_none() {
            return Err(StoreError::invalid("points", "give points or a reward_id"));
        }
        let now = self.now();
        let request = serde_json::json!({"points": r.points, "reward_id": r.reward_id}).to_string();
        let mut tx = self.db.begin().await?;
        let member = active_member(&mut tx, customer_id).await?;
        if let Some((entry_id, first, _)) = entry_by_key(&mut tx, customer_id, &r.idempotency_key).await? {
            if first != request {
                return Err(StoreError::Conflict("idempotency_key: used before for a different request".into()));
            }
            let red: Redemption = tx
                .fetch_one(query(format!("{REDEMPTION_SELECT} WHERE customer_id = $1 AND entry_id = $2")).bind(customer_id).bind(entry_id))
                .await?;
            return Ok((red, false));
        }
        let points = match r.reward_id {
            Some(reward_id) => {
                let reward_points = super::rewards::take_stock(&mut tx, reward_id, member.tier.as_deref(), now).await?;
                if r.points.is_some_and(|p| p != reward_points) {
                    return Err(StoreError::invalid("points", format!("the reward costs {reward_points} points")));
                }
                reward_points
            }
            None => r.points.unwrap_or_default(),
        };
        let spendable = spendable_in(&mut tx, &member, now).await?;
        if points > spendable {
            return Err(StoreError::State(format!("not enough spendable points: {spendable} spendable, {points} asked")));
        }
        let e = NewEntry {
            kind: "redeem",
            points: -points,
            key: r.idempotency_key.clone(),
            request,
            source: String::new(),
            reason: None,
            order_id: None,
            reward_id: r.reward_id,
            debt_repaid: 0,
            by: &actor.key,
            at: now,
        };
        let entry_id = insert_entry(&mut tx, customer_id, e)
            .await?
            .ok_or_else(|| StoreError::Internal("redemption key taken under the lock".into()))?;
        let plan = plan_draw(&mut tx, customer_id, points, Some(now), None).await?;
        if plan.iter().map(|p| p.1).sum::<i64>() != points {
            return Err(StoreError::Internal("the spendable lots do not cover the balance".into()));
        }
        apply_draw(&mut tx, customer_id, entry_id, &plan).await?;
        let red: Redemption = tx
            .fetch_one(
                query(format!(
                    "INSERT INTO loyalty_redemptions (customer_id, entry_id, points, reward_id, status, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, 'ordered', $5, $5) RETURNING {}",
                    &REDEMPTION_SELECT["SELECT ".len()..REDEMPTION_SELECT.len() - " FROM loyalty_redemptions".len()]
                ))
                .bind(customer_id)
                .bind(entry_id)
                .bind(points)
                .bind(r.reward_id)
                .bind(now),
            )
            .await?;
        tx.execute(
            query("UPDATE loyalty_entries SET source = $1 WHERE customer_id = $2 AND id = $3")
                .bind(format!("redemption:{}", red.id))
                .bind(customer_id)
                .bind(entry_id),
        )
        .await?;
        crate::events::append(
            &mut tx,
            customer_id,
            "loyalty.redeemed",
            Some(red.id),
            serde_json::json!({"points": points, "reward_id": r.reward_id}),
            now,
        )
        .await?;
        audit::record(&mut tx, now, &actor.key, "redeem", "customer", Some(customer_id.to_string()), Some(format!("points={points}")))
            .await?;
        tx.commit().await?;
        Ok((red, true))
    }

    /// Adds or takes points by hand (the caller checks manager+), with a reason. Taking more
    /// than the balance is refused (409).
    pub async fn adjust_points(&self, actor: &Actor, customer_id: i64, a: AdjustmentRequest) -> Result<Entry> {
        if a.points == 0 {
            return Err(StoreError::invalid("points", "must not be zero"));
        }
        if a.points.unsigned_abs() > 100_000_000 {
            return Err(StoreError::invalid("points", "at most 100000000 either way"));
        }
        let reason = a.reason.trim().to_owned();
        if reason.is_empty() || reason.chars().count() > 500 {
            return Err(StoreError::invalid("reason", "a reason is required (at most 500 characters)"));
        }
        let key = match a.idempotency_key {
            Some(k) => {
                check_key(&k)?;
                k
            }
            None => format!("adjust:{:016x}{:016x}", rand::random::<u64>(), rand::random::<u64>()),
        };
        let now = self.now();
        let request = serde_json::json!({"points": a.points, "reason": reason}).to_string();
        let mut tx = self.db.begin().await?;
        let mut member = lock_member(&mut tx, customer_id).await?.ok_or(StoreError::NotFound("member"))?;
        if let Some((id, first, _)) = entry_by_key(&mut tx, customer_id, &key).await? {
            if first != request {
                return Err(StoreError::Conflict("idempotency_key: used before for a different request".into()));
            }
            return tx.fetch_one(query(format!("{ENTRY_SELECT} WHERE customer_id = $1 AND id = $2")).bind(customer_id).bind(id)).await;
        }
        let program = program_in(&mut tx).await?;
        let plan = if a.points < 0 {
            let plan = plan_draw(&mut tx, customer_id, -a.points, None, None).await?;
            let have: i64 = plan.iter().map(|p| p.1).sum::<i64>() - member.debt;
            if have < -a.points {
                return Err(StoreError::State(format!("the balance is {} points; cannot take {}", have.max(0), -a.points)));
            }
            plan
        } else {
            Vec::new()
        };
        let e = NewEntry {
            kind: "adjust",
            points: a.points,
            key,
            request,
            source: "manual".into(),
            reason: Some(reason.clone()),
            order_id: None,
            reward_id: None,
            debt_repaid: 0,
            by: &actor.key,
            at: now,
        };
        let id = insert_entry(&mut tx, customer_id, e)
            .await?
            .ok_or_else(|| StoreError::Internal("adjustment key taken under the lock".into()))?;
        if a.points > 0 {
            credit(&mut tx, &mut member, id, a.points, now, now, program.expires_at(now, self.config.business_tz)).await?;
        } else {
            apply_draw(&mut tx, customer_id, id, &plan).await?;
        }
        audit::record(&mut tx, now, &actor.key, "adjust", "customer", Some(customer_id.to_string()), Some(format!("points={}", a.points)))
            .await?;
        let entry: Entry =
            tx.fetch_one(query(format!("{ENTRY_SELECT} WHERE customer_id = $1 AND id = $2")).bind(customer_id).bind(id)).await?;
        tx.commit().await?;
        Ok(entry)
    }

    /// Expires the lots due by now, each once (`expire:<lot>`), under each member's lock:
    /// a second scheduler finds them expired. Returns (lots, points).
    pub async fn expire_due_lots(&self) -> Result<(u64, i64)> {
        let now = self.now();
        let (mut lots, mut points) = (0u64, 0i64);
        loop {
            let due: Vec<(i64,)> = self
                .db
                .reader()
                .fetch_all(
                    query("SELECT DISTINCT customer_id FROM loyalty_lots WHERE remaining > 0 AND expires_at <= $1 ORDER BY customer_id LIMIT 500").bind(now),
                )
                .await?;
            if due.is_empty() {
                break;
            }
            let mut progressed = false;
            for (customer_id,) in due {
                let mut tx = self.db.begin().await?;
                if lock_member(&mut tx, customer_id).await?.is_none() {
                    continue;
                }
                let lots_due: Vec<(i64, i64)> = tx
                    .fetch_all(
                        query("SELECT id, remaining FROM loyalty_lots WHERE customer_id = $1 AND remaining > 0 AND expires_at <= $2 ORDER BY id")
                            .bind(customer_id)
                            .bind(now),
                    )
                    .await?;
                for (lot, remaining) in lots_due {
                    let e = NewEntry {
                        kind: "expire",
                        points: -remaining,
                        key: format!("expire:{lot}"),
                        request: String::new(),
                        source: format!("lot:{lot}"),
                        reason: None,
                        order_id: None,
                        reward_id: None,
                        debt_repaid: 0,
                        by: "scheduler",
                        at: now,
                    };
                    if let Some(id) = insert_entry(&mut tx, customer_id, e).await? {
                        apply_draw(&mut tx, customer_id, id, &[(lot, remaining)]).await?;
                        lots += 1;
                        points += remaining;
                        progressed = true;
                    }
                }
                tx.commit().await?;
            }
            if !progressed {
                break;
            }
        }
        Ok((lots, points))
    }
}
