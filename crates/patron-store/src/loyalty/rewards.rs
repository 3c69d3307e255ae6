//! The rewards catalogue: what members choose among (by tier, balance, active period and
//! stock); a redemption with a reward takes one from stock in its own transaction (never
//! oversold), and its fulfilment goes ordered → handed over, or cancelled (points back).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use utoipa::ToSchema;

use super::ledger::{insert_entry, NewEntry, Redemption, REDEMPTION_SELECT};
use super::lock_member;
use crate::db::{query, Tx};
use crate::users::Actor;
use crate::{audit, Result, Store, StoreError};

/// A reward.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Reward {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Points it costs.
    pub points: i64,
    /// Left in stock (unlimited when absent).
    pub stock: Option<i64>,
    /// What one costs the business, minor units.
    pub cost_cents: i64,
    /// Available from.
    pub active_from: Option<DateTime<Utc>>,
    /// Available until.
    pub active_to: Option<DateTime<Utc>>,
    /// Tiers that may choose it (every member when empty).
    pub tiers: Vec<String>,
    /// Picture.
    pub image_url: Option<String>,
    /// When added.
    pub created_at: DateTime<Utc>,
}

#[derive(serde::Deserialize, sqlx::FromRow)]
struct RewardRow {
    id: i64,
    name: String,
    points: i64,
    stock: Option<i64>,
    cost_cents: i64,
    active_from: Option<DateTime<Utc>>,
    active_to: Option<DateTime<Utc>>,
    #[serde(deserialize_with = "crate::db::direct::json_text")]
    tiers: Json<Vec<String>>,
    image_url: Option<String>,
    created_at: DateTime<Utc>,
}

impl From<RewardRow> for Reward {
    fn from(r: RewardRow) -> Self {
        Reward {
            id: r.id,
            name: r.name,
            points: r.points,
            stock: r.stock,
            cost_cents: r.cost_cents,
            active_from: r.active_from,
            active_to: r.active_to,
            tiers: r.tiers.0,
            image_url: r.image_url,
            created_at: r.created_at,
        }
    }
}

const REWARD_SELECT: &str =
    "SELECT id, name, points, stock, cost_cents, active_from, active_to, tiers, image_url, created_at FROM loyalty_rewards";

/// A new reward, or a reward's new definition.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RewardInput {
    /// Name (1–100 characters).
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    /// Points it costs.
    #[schema(minimum = 1, maximum = 100000000)]
    pub points: i64,
    /// In stock (unlimited when absent).
    #[schema(minimum = 0, maximum = 100000000)]
    pub stock: Option<i64>,
    /// What one costs the business, minor units.
    #[schema(minimum = 0, maximum = 10000000000000i64)]
    #[serde(default)]
    pub cost_cents: i64,
    /// Available from.
    pub active_from: Option<DateTime<Utc>>,
    /// Available until.
    pub active_to: Option<DateTime<Utc>>,
    /// Tiers that may choose it (every member when empty).
    #[serde(default)]
    pub tiers: Vec<String>,
    /// Picture (http or https).
    #[schema(max_length = 2000)]
    pub image_url: Option<String>,
}

impl RewardInput {
    fn validate(&self) -> Result<()> {
        let n = self.name.trim().chars().count();
        if n == 0 || n > 100 {
            return Err(StoreError::invalid("name", "1 to 100 characters"));
        }
        if !(1..=100_000_000).contains(&self.points) {
            return Err(StoreError::invalid("points", "must be 1 to 100000000"));
        }
        if self.stock.is_some_and(|s| !(0..=100_000_000).contains(&s)) {
            return Err(StoreError::invalid("stock", "must be 0 to 100000000"));
        }
        if !(0..=crate::values::MAX_CENTS).contains(&self.cost_cents) {
            return Err(StoreError::invalid("cost_cents", "must be 0 or more, within the money limit"));
        }
        if let (Some(f), Some(t)) = (self.active_from, self.active_to) {
            if t <= f {
                return Err(StoreError::invalid("active_to", "must be after active_from"));
            }
        }
        if self.tiers.len() > 20 || self.tiers.iter().any(|t| t.trim().is_empty() || t.chars().count() > 50) {
            return Err(StoreError::invalid("tiers", "at most 20 tier names of 1 to 50 characters"));
        }
        if let Some(u) = &self.image_url {
            if u.len() > 2000 || !(u.starts_with("https://") || u.starts_with("http://") || u.starts_with('/')) {
                return Err(StoreError::invalid("image_url", "an http(s) URL or a path, at most 2000 characters"));
            }
        }
        Ok(())
    }
}

/// Whether a reward is open to a member of `tier` at `now` (its stock aside).
fn open_to(r: &Reward, tier: Option<&str>, now: DateTime<Utc>) -> std::result::Result<(), String> {
    if r.active_from.is_some_and(|f| now < f) || r.active_to.is_some_and(|t| now >= t) {
        return Err(format!("reward {} is not available now", r.id));
    }
    if !r.tiers.is_empty() && !tier.is_some_and(|t| r.tiers.iter().any(|x| x == t)) {
        return Err(format!("reward {} is for members of {}", r.id, r.tiers.join(", ")));
    }
    Ok(())
}

/// Takes one of reward `reward_id` from stock for a member of `tier` at `now`; returns its
/// points. The decrement is one conditional UPDATE (`stock > 0`), which concurrent redemptions
/// take in turns on the row: never oversold. Not found: 404; not open to the member or out
/// of stock: 409; nothing taken.
pub(crate) async fn take_stock(tx: &mut Tx, reward_id: i64, tier: Option<&str>, now: DateTime<Utc>) -> Result<i64> {
    let r: Reward = tx
        .fetch_optional::<RewardRow>(query(format!("{REWARD_SELECT} WHERE id = $1")).bind(reward_id))
        .await?
        .ok_or(StoreError::NotFound("reward"))?
        .into();
    open_to(&r, tier, now).map_err(StoreError::State)?;
    if r.stock.is_some() {
        let n = tx.execute(query("UPDATE loyalty_rewards SET stock = stock - 1 WHERE id = $1 AND stock > 0").bind(reward_id)).await?;
        if n == 0 {
            return Err(StoreError::State(format!("reward {reward_id} is out of stock")));
        }
    }
    Ok(r.points)
}

/// `PATCH …/redemptions/{id}`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FulfilmentUpdate {
    /// `handed_over`, or `cancelled` (points back, the reward back in stock).
    #[schema(pattern = "^(handed_over|cancelled)$")]
    pub status: String,
}

impl Store {
    /// The catalogue; for a member (`customer_id`), only what their tier may choose now, in
    /// stock, with `points` within their spendable balance.
    pub async fn rewards(&self, customer_id: Option<i64>) -> Result<Vec<Reward>> {
        let rows: Vec<RewardRow> = self.db.reader().fetch_all(query(format!("{REWARD_SELECT} ORDER BY points, id"))).await?;
        let all: Vec<Reward> = rows.into_iter().map(Reward::from).collect();
        let Some(cid) = customer_id else { return Ok(all) };
        let m = self.loyalty_member(cid).await?;
        let now = self.now();
        Ok(all
            .into_iter()
            .filter(|r| open_to(r, m.tier.as_deref(), now).is_ok() && r.stock != Some(0) && r.points <= m.spendable)
            .collect())
    }

    /// Adds a reward (the caller checks manager+).
    pub async fn create_reward(&self, actor: &Actor, r: RewardInput) -> Result<Reward> {
        r.validate()?;
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let row: RewardRow = tx
            .fetch_one(
                query(format!(
                    "INSERT INTO loyalty_rewards (name, points, stock, cost_cents, active_from, active_to, tiers, image_url, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {}",
                    &REWARD_SELECT["SELECT ".len()..REWARD_SELECT.len() - " FROM loyalty_rewards".len()]
                ))
                .bind(r.name.trim())
                .bind(r.points)
                .bind(r.stock)
                .bind(r.cost_cents)
                .bind(r.active_from)
                .bind(r.active_to)
                .bind(serde_json::json!(r.tiers))
                .bind(r.image_url)
                .bind(now),
            )
            .await?;
        audit::record(&mut tx, now, &actor.key, "create", "reward", Some(row.id.to_string()), None).await?;
        tx.commit().await?;
        Ok(row.into())
    }

    /// Replaces a reward's definition (the caller checks manager+).
    pub async fn update_reward(&self, actor: &Actor, id: i64, r: RewardInput) -> Result<Reward> {
        r.validate()?;
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let n = tx
            .execute(
                query(
                    "UPDATE loyalty_rewards SET name = $1, points = $2, stock = $3, cost_cents = $4, active_from = $5, active_to = $6, \
                     tiers = $7, image_url = $8 WHERE id = $9",
                )
                .bind(r.name.trim())
                .bind(r.points)
                .bind(r.stock)
                .bind(r.cost_cents)
                .bind(r.active_from)
                .bind(r.active_to)
                .bind(serde_json::json!(r.tiers))
                .bind(r.image_url)
                .bind(id),
            )
            .await?;
        if n == 0 {
            return Err(StoreError::NotFound("reward"));
        }
        audit::record(&mut tx, now, &actor.key, "update", "reward", Some(id.to_string()), None).await?;
        let row: RewardRow = tx.fetch_one(query(format!("{REWARD_SELECT} WHERE id = $1")).bind(id)).await?;
        tx.commit().await?;
        Ok(row.into())
    }

    /// A member's redemptions, newest first (at most 200).
    pub async fn redemptions(&self, customer_id: i64) -> Result<Vec<Redemption>> {
        self.db
            .reader()
            .fetch_all(query(format!("{REDEMPTION_SELECT} WHERE customer_id = $1 ORDER BY id DESC LIMIT 200")).bind(customer_id))
            .await
    }

    /// Records a redemption's fulfilment: handed over, or cancelled — the points back (as lots
    /// keeping the expiry of the lots they came from; what came from lots expired meanwhile is
    /// not returned) and the reward back in stock. Only an `ordered` redemption changes (409).
    pub async fn fulfil_redemption(&self, actor: &Actor, customer_id: i64, id: i64, u: FulfilmentUpdate) -> Result<Redemption> {
        if u.status != "handed_over" && u.status != "cancelled" {
            return Err(StoreError::invalid("status", "handed_over or cancelled"));
        }
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let mut member = lock_member(&mut tx, customer_id).await?.ok_or(StoreError::NotFound("member"))?;
        let red: Redemption = tx
            .fetch_optional(query(format!("{REDEMPTION_SELECT} WHERE customer_id = $1 AND id = $2")).bind(customer_id).bind(id))
            .await?
            .ok_or(StoreError::NotFound("redemption"))?;
        if red.status != "ordered" {
            return Err(StoreError::State(format!("the redemption is {} already", red.status)));
        }
        if u.status == "cancelled" {
            let draws: Vec<(i64, Option<DateTime<Utc>>)> = tx
                .fetch_all(
                    query(
                        "SELECT d.points, l.expires_at FROM loyalty_draws d JOIN loyalty_lots l ON l.customer_id = d.customer_id AND l.id = d.lot_id \
                         WHERE d.customer_id = $1 AND d.entry_id = $2 ORDER BY d.lot_id",
                    )
                    .bind(customer_id)
                    .bind(red.entry_id),
                )
                .await?;
            let back: i64 = draws.iter().filter(|d| d.1.is_none_or(|e| e > now)).map(|d| d.0).sum();
            if back > 0 {
                let e = NewEntry {
                    kind: "reverse",
                    points: back,
                    key: format!("cancel:redemption:{id}"),
                    request: String::new(),
                    source: format!("redemption:{id}"),
                    reason: Some("redemption cancelled".into()),
                    order_id: None,
                    reward_id: red.reward_id,
                    debt_repaid: 0,
                    by: &actor.key,
                    at: now,
                };
                let entry = insert_entry(&mut tx, customer_id, e)
                    .await?
                    .ok_or_else(|| StoreError::Internal("cancellation recorded twice".into()))?;
                let mut repaid = 0;
                for (points, expires_at) in draws.into_iter().filter(|d| d.1.is_none_or(|e| e > now)) {
                    repaid += super::ledger::credit(&mut tx, &mut member, entry, points, now, now, expires_at).await?;
                }
                if repaid > 0 {
                    tx.execute(
                        query("UPDATE loyalty_entries SET debt_repaid = $1 WHERE customer_id = $2 AND id = $3")
                            .bind(repaid)
                            .bind(customer_id)
                            .bind(entry),
                    )
                    .await?;
                }
            }
            if let Some(reward) = red.reward_id {
                tx.execute(query("UPDATE loyalty_rewards SET stock = stock + 1 WHERE id = $1 AND stock IS NOT NULL").bind(reward)).await?;
            }
        }
        tx.execute(
            query("UPDATE loyalty_redemptions SET status = $1, updated_at = $2 WHERE customer_id = $3 AND id = $4")
                .bind(&u.status)
                .bind(now)
                .bind(customer_id)
                .bind(id),
        )
        .await?;
        crate::events::append(&mut tx, customer_id, "loyalty.redemption_changed", Some(id), serde_json::json!({"status": u.status}), now)
            .await?;
        audit::record(&mut tx, now, &actor.key, &u.status, "customer", Some(customer_id.to_string()), Some(format!("redemption={id}")))
            .await?;
        let red: Redemption =
            tx.fetch_one(query(format!("{REDEMPTION_SELECT} WHERE customer_id = $1 AND id = $2")).bind(customer_id).bind(id)).await?;
        tx.commit().await?;
        Ok(red)
    }
}
