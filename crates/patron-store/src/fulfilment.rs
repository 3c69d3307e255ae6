//! The B2B fulfilment chain (issue 19 §5): the steps of an order in the articles' order —
//! accepted (接受), dispatched (派发), produced (生产), tested (检测), packed (包装), shipped (运输),
//! delivered (交付), installed (安装), invoiced (发票), serviced (维修) — each with a promised time
//! and the time it was done; lateness per step, the on-time delivery rate, and the
//! `fulfilment.late` event (with a notification to the customer's owner) when a step is done
//! after its promise or its promise passes with the step not done.
//!
//! Rules a write must keep (the API and the import apply the same ones, in [`apply`]):
//! the step is one of the chain and not switched off in the settings; the order is not
//! cancelled; the done time is not in the future (5 minutes of clock skew allowed) nor before
//! the order was placed, and keeps the chain's order against the order's other done steps (an
//! earlier step not after it, a later step not before it); a promise is not before the order
//! was placed. Steps may be skipped (not every order is tested or installed). A promised day
//! without a time means the end of that business day.

use chrono::{DateTime, Duration, NaiveTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::access::CustomerScope;
use crate::customers::lock_customers;
use crate::db::{query, Tx};
use crate::service::reports::Period;
use crate::users::Actor;
use crate::{audit, events, values, Result, Store, StoreError};

/// The steps of the chain, in order.
pub const STEPS: [&str; 10] =
    ["accepted", "dispatched", "produced", "tested", "packed", "shipped", "delivered", "installed", "invoiced", "serviced"];

/// Chinese names of the steps (the articles' words), accepted in imports.
const STEPS_ZH: [(&str, &str); 14] = [
    ("接受", "accepted"),
    ("派发", "dispatched"),
    ("生产", "produced"),
    ("检测", "tested"),
    ("包装", "packed"),
    ("运输", "shipped"),
    ("发货", "shipped"),
    ("交付", "delivered"),
    ("送达", "delivered"),
    ("安装", "installed"),
    ("发票", "invoiced"),
    ("开票", "invoiced"),
    ("维修", "serviced"),
    ("服务", "serviced"),
];

/// The settings key of [`FulfilmentSettings`].
pub const SETTINGS: &str = "fulfilment";

/// Clock skew allowed for a done time "now".
const SKEW_MINUTES: i64 = 5;

/// How the fulfilment chain is kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct FulfilmentSettings {
    /// The steps in use, a subset of the chain (the others are switched off: refused on input
    /// and left out of the timeline). Default: all ten.
    pub steps: Vec<String>,
}

impl Default for FulfilmentSettings {
    fn default() -> Self {
        FulfilmentSettings { steps: STEPS.iter().map(|s| (*s).to_owned()).collect() }
    }
}

impl FulfilmentSettings {
    /// Checks the values are usable.
    pub fn validate(&self) -> Result<()> {
        if self.steps.is_empty() {
            return Err(StoreError::invalid("steps", "keep at least one step"));
        }
        for s in &self.steps {
            if !STEPS.contains(&s.as_str()) {
                return Err(StoreError::invalid("steps", format!("unknown step {s:?} (steps: {})", STEPS.join(", "))));
            }
        }
        if !self.steps.iter().any(|s| s == "delivered") {
            // The on-time rate is about deliveries: switching `delivered` off would empty it.
            return Err(StoreError::invalid("steps", "the delivered step cannot be switched off (the on-time rate counts it)"));
        }
        Ok(())
    }

    fn enabled(&self, step: &str) -> bool {
        self.steps.iter().any(|s| s == step)
    }
}

/// A step's place in the chain (0-based), or `None` for an unknown step.
pub fn position(step: &str) -> Option<usize> {
    STEPS.iter().position(|s| *s == step)
}

/// A step by its English or Chinese name (case and spaces ignored).
pub fn parse_step(v: &str) -> std::result::Result<&'static str, String> {
    let v = v.trim().to_lowercase();
    STEPS
        .iter()
        .find(|s| **s == v)
        .copied()
        .or_else(|| STEPS_ZH.iter().find(|(z, _)| *z == v).map(|(_, s)| *s))
        .ok_or_else(|| format!("unknown step (steps: {})", STEPS.join(", ")))
}

/// A promise: a time (RFC 3339 or a local time) or a day, which means the end of that business
/// day (a delivery any time that day is on time).
pub fn parse_promise(v: &str, tz: chrono_tz::Tz) -> std::result::Result<DateTime<Utc>, String> {
    let t = v.trim();
    if t.len() <= 10 {
        if let Ok(d) = values::parse_date(t) {
            let end = d
                .succ_opt()
                .and_then(|n| tz.from_local_datetime(&n.and_time(NaiveTime::MIN)).earliest())
                .ok_or_else(|| format!("not a day in {tz}: {v:?}"))?;
            return Ok(end.with_timezone(&Utc) - Duration::microseconds(1));
        }
    }
    values::parse_time(t, tz)
}

/// One step of an order's chain.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FulfilmentStep {
    /// The step.
    pub step: String,
    /// Its place in the chain, from 1.
    pub position: i64,
    /// When it was promised for (UTC; a promised day is its last moment).
    pub promised_at: Option<DateTime<Utc>>,
    /// When it was done (UTC); null while only promised.
    pub at: Option<DateTime<Utc>>,
    /// Done after its promise, or not done and the promise has passed.
    pub late: bool,
    /// Minutes late (done or now, against the promise); 0 when not late, null without a promise.
    pub late_minutes: Option<i64>,
    /// A note.
    pub note: Option<String>,
    /// When it was last written.
    pub updated_at: DateTime<Utc>,
    /// Who wrote it last (actor key).
    pub updated_by: String,
}

/// An order's chain.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FulfilmentChain {
    /// The order.
    pub order_id: i64,
    /// The order's id in the source system.
    pub external_id: Option<String>,
    /// The customer.
    pub customer_id: i64,
    /// When the order was placed.
    pub ordered_at: DateTime<Utc>,
    /// The recorded steps, in the chain's order.
    pub steps: Vec<FulfilmentStep>,
    /// Steps in use not recorded yet, in the chain's order.
    pub pending: Vec<String>,
    /// Whether any step is late.
    pub late: bool,
}

/// A step to record: `at` the time it was done (default now, unless only a promise is given).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewStep {
    /// The step: accepted, dispatched, produced, tested, packed, shipped, delivered, installed,
    /// invoiced or serviced.
    pub step: String,
    /// When it was done (not in the future, not before the order). Default: now, unless only
    /// `promised_at` is given (then the step is promised, not done).
    pub at: Option<DateTime<Utc>>,
    /// When it is promised for: an RFC 3339 time, or a day `YYYY-MM-DD` (the end of that
    /// business day).
    pub promised_at: Option<String>,
    /// A note (up to 2,000 characters).
    pub note: Option<String>,
}

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Applied {
    Created,
    Updated,
    Unchanged,
}

/// A validated write of one step.
pub(crate) struct StepWrite {
    pub step: &'static str,
    pub at: Option<DateTime<Utc>>,
    pub promised_at: Option<DateTime<Utc>>,
    pub note: Option<String>,
}

#[derive(serde::Deserialize, sqlx::FromRow)]
struct StepRow {
    step: String,
    seq: i64,
    promised_at: Option<DateTime<Utc>>,
    done_at: Option<DateTime<Utc>>,
    note: Option<String>,
    updated_at: DateTime<Utc>,
    updated_by: String,
}

const STEP_SELECT: &str = "SELECT step, seq, promised_at, done_at, note, updated_at, updated_by FROM fulfilment_steps";

fn lateness(promised: Option<DateTime<Utc>>, done: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Option<i64> {
    let p = promised?;
    let against = done.unwrap_or(now);
    Some(if against > p { (against - p).num_minutes().max(1) } else { 0 })
}

impl StepRow {
    fn into_step(self, now: DateTime<Utc>) -> FulfilmentStep {
        let late_minutes = lateness(self.promised_at, self.done_at, now);
        FulfilmentStep {
            step: self.step,
            position: self.seq + 1,
            promised_at: self.promised_at,
            at: self.done_at,
            late: late_minutes.is_some_and(|m| m > 0),
            late_minutes,
            note: self.note,
            updated_at: self.updated_at,
            updated_by: self.updated_by,
        }
    }
}

/// The order a step is written for, read in the transaction.
#[derive(serde::Deserialize, sqlx::FromRow)]
pub(crate) struct OrderHead {
    pub customer_id: i64,
    pub id: i64,
    pub external_id: Option<String>,
    pub ordered_at: DateTime<Utc>,
    pub status: String,
}

pub(crate) async fn order_head(tx: &mut Tx, customer_id: i64, order_id: i64) -> Result<Option<OrderHead>> {
    tx.fetch_optional(
        query("SELECT customer_id, id, external_id, ordered_at, status FROM orders WHERE customer_id = $1 AND id = $2")
            .bind(customer_id)
            .bind(order_id),
    )
    .await
}

/// Validates and writes one step of `order` (whose customer the caller has locked) in `tx`:
/// the rules in the module's notes. A late step gets its event and notification here, once.
pub(crate) async fn apply(
    tx: &mut Tx,
    settings: &FulfilmentSettings,
    order: &OrderHead,
    w: &StepWrite,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<Applied> {
    if !settings.enabled(w.step) {
        return Err(StoreError::invalid("step", format!("the step {} is switched off in the fulfilment settings", w.step)));
    }
    if order.status == "cancelled" {
        return Err(StoreError::State("the order is cancelled: it has no fulfilment".into()));
    }
    if let Some(at) = w.at {
        if at > now + Duration::minutes(SKEW_MINUTES) {
            return Err(StoreError::invalid("at", "must not be in the future"));
        }
        if at < order.ordered_at {
            return Err(StoreError::invalid("at", "must not be before the order was placed"));
        }
    }
    if w.promised_at.is_some_and(|p| p < order.ordered_at) {
        return Err(StoreError::invalid("promised_at", "must not be before the order was placed"));
    }
    if w.note.as_deref().is_some_and(|n| n.chars().count() > 2000) {
        return Err(StoreError::invalid("note", "at most 2,000 characters"));
    }
    let seq = position(w.step).ok_or_else(|| StoreError::invalid("step", "unknown step"))? as i64;
    let existing: Vec<StepRow> = tx
        .fetch_all(query(format!("{STEP_SELECT} WHERE customer_id = $1 AND order_id = $2")).bind(order.customer_id).bind(order.id))
        .await?;
    let current = existing.iter().find(|r| r.step == w.step);
    // What the row will hold: a field not given keeps its value.
    let done_at = w.at.or(current.and_then(|c| c.done_at));
    let promised_at = w.promised_at.or(current.and_then(|c| c.promised_at));
    let note = w.note.clone().or(current.and_then(|c| c.note.clone()));
    if let Some(at) = done_at {
        for other in existing.iter().filter(|r| r.step != w.step) {
            let Some(o_at) = other.done_at else { continue };
            if other.seq < seq && o_at > at {
                return Err(StoreError::invalid(
                    "at",
                    format!("out of order: {} (an earlier step) was done at {}, after this time", other.step, o_at.to_rfc3339()),
                ));
            }
            if other.seq > seq && o_at < at {
                return Err(StoreError::invalid(
                    "at",
                    format!("out of order: {} (a later step) was done at {}, before this time", other.step, o_at.to_rfc3339()),
                ));
            }
        }
    }
    let late_now = matches!((promised_at, done_at), (Some(p), Some(d)) if d > p);
    let applied = match current {
        Some(c) if c.done_at == done_at && c.promised_at == promised_at && c.note == note => return Ok(Applied::Unchanged),
        Some(_) => {
            tx.execute(
                query(
                    "UPDATE fulfilment_steps SET done_at = $1, promised_at = $2, note = $3, updated_at = $4, updated_by = $5 \
                     WHERE customer_id = $6 AND order_id = $7 AND step = $8",
                )
                .bind(done_at)
                .bind(promised_at)
                .bind(note.clone())
                .bind(now)
                .bind(actor)
                .bind(order.customer_id)
                .bind(order.id)
                .bind(w.step),
            )
            .await?;
            Applied::Updated
        }
        None => {
            tx.execute(
                query(
                    "INSERT INTO fulfilment_steps (customer_id, order_id, step, seq, promised_at, done_at, note, created_at, updated_at, updated_by) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9)",
                )
                .bind(order.customer_id)
                .bind(order.id)
                .bind(w.step)
                .bind(seq)
                .bind(promised_at)
                .bind(done_at)
                .bind(note.clone())
                .bind(now)
                .bind(actor),
            )
            .await?;
            Applied::Created
        }
    };
    let payload = serde_json::json!({"order_id": order.id, "external_id": order.external_id, "step": w.step,
        "at": done_at, "promised_at": promised_at, "by": actor});
    events::append(tx, order.customer_id, "fulfilment.recorded", Some(order.id), payload, now).await?;
    if late_now {
        flag_late(tx, order.customer_id, order.id, order.external_id.as_deref(), w.step, promised_at, done_at, now).await?;
    }
    Ok(applied)
}

/// Marks a step late once: the `fulfilment.late` event and a notification to the customer's
/// owner, only by the writer that set `late_at` (a second scheduler, a retry find it set).
#[allow(clippy::too_many_arguments)]
async fn flag_late(
    tx: &mut Tx,
    customer_id: i64,
    order_id: i64,
    external_id: Option<&str>,
    step: &str,
    promised_at: Option<DateTime<Utc>>,
    done_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<bool> {
    let n = tx
        .execute(
            query("UPDATE fulfilment_steps SET late_at = $1 WHERE customer_id = $2 AND order_id = $3 AND step = $4 AND late_at IS NULL")
                .bind(now)
                .bind(customer_id)
                .bind(order_id)
                .bind(step),
        )
        .await?;
    if n == 0 {
        return Ok(false);
    }
    let late_minutes = lateness(promised_at, done_at, now);
    let payload = serde_json::json!({"order_id": order_id, "external_id": external_id, "step": step,
        "promised_at": promised_at, "at": done_at, "late_minutes": late_minutes});
    events::append(tx, customer_id, "fulfilment.late", Some(order_id), payload, now).await?;
    let order_name = external_id.map(str::to_owned).unwrap_or_else(|| format!("#{order_id}"));
    let message = match done_at {
        Some(_) => format!("Order {order_name}: step {step} was done {} min after its promise", late_minutes.unwrap_or(0)),
        None => format!("Order {order_name}: step {step} is past its promise and not done"),
    };
    for user in recipients(tx, customer_id).await? {
        tx.execute(
            query(
                "INSERT INTO notifications (user_id, kind, customer_id, ticket_id, message, created_at) VALUES ($1, 'fulfilment_late', $2, NULL, $3, $4)",
            )
            .bind(user)
            .bind(customer_id)
            .bind(message.clone())
            .bind(now),
        )
        .await?;
    }
    Ok(true)
}

/// Who hears of a late step: the customer's owner (the account manager) and the account team
/// (issue 19 §1), each once, when active.
async fn recipients(tx: &mut Tx, customer_id: i64) -> Result<Vec<i64>> {
    let mut rows: Vec<(i64,)> = tx
        .fetch_all(
            query("SELECT u.id FROM customers c JOIN users u ON u.id = c.owner_id WHERE c.id = $1 AND u.disabled_at IS NULL")
                .bind(customer_id),
        )
        .await?;
    rows.extend(
        tx.fetch_all::<(i64,)>(
            query("SELECT u.id FROM account_team t JOIN users u ON u.id = t.user_id WHERE t.customer_id = $1 AND u.disabled_at IS NULL ORDER BY u.id")
                .bind(customer_id),
        )
        .await?,
    );
    let mut ids: Vec<i64> = rows.into_iter().map(|r| r.0).collect();
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// A delivery as the on-time report reads it: customer, owner, done, promised.
type Delivery = (i64, Option<i64>, DateTime<Utc>, DateTime<Utc>);

/// The on-time delivery rate of one group.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OnTimeRow {
    /// The group: a customer id, an account manager's user id (`unassigned` for customers
    /// without an owner), a month `YYYY-MM` (business time zone), or `all`.
    pub key: String,
    /// A readable name: the account manager's name, the month; null for customers.
    pub label: Option<String>,
    /// Deliveries with a promise done in the period.
    pub delivered: i64,
    /// Of those, done on or before the promise.
    pub on_time: i64,
    /// `on_time / delivered` (0–1); null without deliveries.
    pub rate: Option<f64>,
}

/// The on-time delivery report.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OnTimeReport {
    /// The period (deliveries done in it).
    pub period: Period,
    /// `customer`, `account_manager` or `month`.
    pub by: String,
    /// Every delivery of the period.
    pub overall: OnTimeRow,
    /// One row per group, by key (months in order).
    pub rows: Vec<OnTimeRow>,
}

fn row(key: String, label: Option<String>, delivered: i64, on_time: i64) -> OnTimeRow {
    OnTimeRow { key, label, delivered, on_time, rate: (delivered > 0).then(|| on_time as f64 / delivered as f64) }
}

/// One customer's on-time rate over `[from, to)` in `tx`: (delivered, on time).
pub(crate) async fn customer_on_time(tx: &mut Tx, customer_id: i64, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<(i64, i64)> {
    let rows: Vec<(DateTime<Utc>, DateTime<Utc>)> = tx
        .fetch_all(
            query(
                "SELECT done_at, promised_at FROM fulfilment_steps WHERE customer_id = $1 AND step = 'delivered' \
                 AND done_at >= $2 AND done_at < $3 AND promised_at IS NOT NULL",
            )
            .bind(customer_id)
            .bind(from)
            .bind(to),
        )
        .await?;
    let on_time = rows.iter().filter(|(d, p)| d <= p).count() as i64;
    Ok((rows.len() as i64, on_time))
}

impl Store {
    /// The fulfilment settings.
    pub async fn fulfilment_settings(&self) -> Result<FulfilmentSettings> {
        self.setting(SETTINGS).await
    }

    /// Replaces the fulfilment settings (admin; audited).
    pub async fn set_fulfilment_settings(&self, actor: &Actor, s: &FulfilmentSettings) -> Result<()> {
        s.validate()?;
        self.put_setting(actor, SETTINGS, serde_json::to_value(s).map_err(|e| StoreError::Internal(e.to_string()))?).await
    }

    /// The customer an order belongs to (for the access check before reading or writing it).
    pub async fn order_customer(&self, order_id: i64) -> Result<i64> {
        let row: Option<(i64,)> =
            self.db.reader().fetch_optional(query("SELECT customer_id FROM orders WHERE id = $1").bind(order_id)).await?;
        row.map(|r| r.0).ok_or(StoreError::NotFound("order"))
    }

    /// Records a step of an order (or changes it: a field not given keeps its value). Returns
    /// the order's chain and whether the step was new.
    pub async fn record_fulfilment(&self, actor: &Actor, order_id: i64, input: &NewStep) -> Result<(FulfilmentChain, bool)> {
        let step = parse_step(&input.step).map_err(|m| StoreError::invalid("step", m))?;
        if input.step.trim() != step {
            // The API takes the chain's names only (the import also takes the Chinese ones).
            return Err(StoreError::invalid("step", format!("unknown step (steps: {})", STEPS.join(", "))));
        }
        let tz = self.config.business_tz;
        let promised_at = match input.promised_at.as_deref() {
            Some(p) => Some(parse_promise(p, tz).map_err(|m| StoreError::invalid("promised_at", m))?),
            None => None,
        };
        let now = self.now();
        let at = input.at.map(crate::clock::truncate_micros).or(if promised_at.is_none() { Some(now) } else { None });
        let customer_id = self.order_customer(order_id).await?;
        let settings = self.fulfilment_settings().await?;
        let mut tx = self.db.begin().await?;
        if lock_customers(&mut tx, &[customer_id]).await?.is_some() {
            return Err(StoreError::NotFound("order"));
        }
        let order = order_head(&mut tx, customer_id, order_id).await?.ok_or(StoreError::NotFound("order"))?;
        let w = StepWrite { step, at, promised_at, note: input.note.clone() };
        let applied = apply(&mut tx, &settings, &order, &w, &actor.key, now).await?;
        if applied != Applied::Unchanged {
            audit::record(&mut tx, now, &actor.key, "update", "fulfilment", Some(order_id.to_string()), Some(format!("step={step}")))
                .await?;
        }
        tx.commit().await?;
        let chain = self.fulfilment_chain(order_id).await?;
        Ok((chain, applied == Applied::Created))
    }

    /// An order's chain.
    pub async fn fulfilment_chain(&self, order_id: i64) -> Result<FulfilmentChain> {
        let customer_id = self.order_customer(order_id).await?;
        let mut chains = self.chains(customer_id, Some(order_id), 1).await?;
        chains.pop().ok_or(StoreError::NotFound("order"))
    }

    /// The chains of a customer's orders that have any step, newest order first (at most
    /// `limit`, 1–100): the 360's fulfilment timeline.
    pub async fn customer_fulfilment(&self, customer_id: i64, limit: i64) -> Result<Vec<FulfilmentChain>> {
        self.chains(customer_id, None, limit.clamp(1, 100)).await
    }

    async fn chains(&self, customer_id: i64, order_id: Option<i64>, limit: i64) -> Result<Vec<FulfilmentChain>> {
        let settings = self.fulfilment_settings().await?;
        let now = self.now();
        let mut r = self.db.reader();
        let heads: Vec<OrderHead> = match order_id {
            Some(id) => {
                r.fetch_all(
                    query("SELECT customer_id, id, external_id, ordered_at, status FROM orders WHERE customer_id = $1 AND id = $2")
                        .bind(customer_id)
                        .bind(id),
                )
                .await?
            }
            None => {
                r.fetch_all(
                    query(
                        "SELECT o.customer_id, o.id, o.external_id, o.ordered_at, o.status FROM orders o WHERE o.customer_id = $1 \
                         AND EXISTS (SELECT 1 FROM fulfilment_steps f WHERE f.customer_id = o.customer_id AND f.order_id = o.id) \
                         ORDER BY o.ordered_at DESC, o.id DESC LIMIT $2",
                    )
                    .bind(customer_id)
                    .bind(limit),
                )
                .await?
            }
        };
        let mut out = Vec::with_capacity(heads.len());
        for h in heads {
            let rows: Vec<StepRow> = r
                .fetch_all(
                    query(format!("{STEP_SELECT} WHERE customer_id = $1 AND order_id = $2 ORDER BY seq")).bind(h.customer_id).bind(h.id),
                )
                .await?;
            let recorded: Vec<String> = rows.iter().map(|s| s.step.clone()).collect();
            let steps: Vec<FulfilmentStep> = rows.into_iter().map(|s| s.into_step(now)).collect();
            let pending =
                STEPS.iter().filter(|s| settings.enabled(s) && !recorded.iter().any(|r| r == *s)).map(|s| (*s).to_owned()).collect();
            out.push(FulfilmentChain {
                order_id: h.id,
                external_id: h.external_id,
                customer_id: h.customer_id,
                ordered_at: h.ordered_at,
                late: steps.iter().any(|s| s.late),
                steps,
                pending,
            });
        }
        Ok(out)
    }

    /// The on-time delivery rate over the deliveries done in `period` with a promise, for the
    /// customers in `actor`'s scope, overall and grouped `by` customer, account manager (the
    /// customer's owner now) or month.
    pub async fn on_time(&self, actor: &Actor, period: Period, by: &str) -> Result<OnTimeReport> {
        if !matches!(by, "customer" | "account_manager" | "month") {
            return Err(StoreError::invalid("by", "by must be customer, account_manager or month"));
        }
        let sql = format!(
            "SELECT f.customer_id, c.owner_id, f.done_at, f.promised_at FROM fulfilment_steps f JOIN customers c ON c.id = f.customer_id \
             WHERE f.step = 'delivered' AND f.done_at >= $1 AND f.done_at < $2 AND f.promised_at IS NOT NULL AND {}",
            CustomerScope::of(actor).sql("c")
        );
        let rows: Vec<Delivery> = self.db.reader().fetch_all(query(sql).bind(period.from).bind(period.to)).await?;
        let tz = self.config.business_tz;
        let mut groups: std::collections::BTreeMap<(i64, String), (i64, i64)> = Default::default();
        let (mut all_d, mut all_o) = (0, 0);
        for (customer, owner, done, promised) in &rows {
            // Sort keys: numbers as numbers, months as text.
            let key = match by {
                "customer" => (*customer, customer.to_string()),
                "account_manager" => owner.map(|o| (o, o.to_string())).unwrap_or((i64::MAX, "unassigned".into())),
                _ => (0, done.with_timezone(&tz).format("%Y-%m").to_string()),
            };
            let g = groups.entry(key).or_default();
            g.0 += 1;
            all_d += 1;
            if done <= promised {
                g.1 += 1;
                all_o += 1;
            }
        }
        let names: std::collections::HashMap<i64, String> = if by == "account_manager" {
            let users: Vec<(i64, String)> = self.db.reader().fetch_all(query("SELECT id, name FROM users")).await?;
            users.into_iter().collect()
        } else {
            Default::default()
        };
        let out = groups
            .into_iter()
            .map(|((n, key), (d, o))| {
                let label = match by {
                    "account_manager" => names.get(&n).cloned(),
                    "month" => Some(key.clone()),
                    _ => None,
                };
                row(key, label, d, o)
            })
            .collect();
        Ok(OnTimeReport { period, by: by.to_owned(), overall: row("all".into(), None, all_d, all_o), rows: out })
    }

    /// Flags the steps whose promise has passed without their being done (the scheduler's
    /// lateness scan): each once, with its event and notification. Returns how many.
    pub async fn flag_overdue_fulfilment(&self) -> Result<u64> {
        let now = self.now();
        let due: Vec<(i64, i64, String, Option<DateTime<Utc>>)> = self
            .db
            .reader()
            .fetch_all(
                query(
                    "SELECT customer_id, order_id, step, promised_at FROM fulfilment_steps \
                     WHERE done_at IS NULL AND late_at IS NULL AND promised_at < $1 ORDER BY promised_at LIMIT 1000",
                )
                .bind(now),
            )
            .await?;
        let mut flagged = 0;
        for (customer_id, order_id, step, promised_at) in due {
            let mut tx = self.db.begin().await?;
            let ext: Option<(Option<String>,)> = tx
                .fetch_optional(query("SELECT external_id FROM orders WHERE customer_id = $1 AND id = $2").bind(customer_id).bind(order_id))
                .await?;
            let ext = ext.and_then(|e| e.0);
            if flag_late(&mut tx, customer_id, order_id, ext.as_deref(), &step, promised_at, None, now).await? {
                flagged += 1;
            }
            tx.commit().await?;
        }
        Ok(flagged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_parse_in_both_languages() {
        assert_eq!(parse_step("Delivered"), Ok("delivered"));
        assert_eq!(parse_step("安装"), Ok("installed"));
        assert!(parse_step("teleported").is_err());
    }

    #[test]
    fn a_promised_day_ends_at_midnight() {
        let tz = chrono_tz::Asia::Shanghai;
        let p = parse_promise("2026-03-05", tz).unwrap_or_default();
        assert_eq!(p.to_rfc3339(), "2026-03-05T15:59:59.999999+00:00");
        let t = parse_promise("2026-03-05T08:00:00Z", tz).unwrap_or_default();
        assert_eq!(t.to_rfc3339(), "2026-03-05T08:00:00+00:00");
    }

    #[test]
    fn lateness_counts_minutes() {
        let p = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single().unwrap_or_default();
        assert_eq!(lateness(Some(p), Some(p), p), Some(0));
        assert_eq!(lateness(Some(p), Some(p + Duration::hours(2)), p), Some(120));
        assert_eq!(lateness(Some(p), None, p + Duration::minutes(30)), Some(30));
        assert_eq!(lateness(None, Some(p), p), None);
    }
}
