//! Relationship reviews and the health score (issue 19 §3).
//!
//! A review scores six questions 1–5 (responsiveness, price, delivery, obligations,
//! complaints, contract) and an overall sentiment 1–5. Its **review score** (0–100) is the
//! weighted mean (weights: settings `review_weights`) mapped from 1–5 onto 0–100. The
//! **health score** combines it with the measured signals available now, each 0–100:
//!
//! - `complaint_rate`: 100 × (1 − min(1, 10 × complaints per completed order)), last 365 days;
//! - `reopen_rate`: 100 × (1 − reopened share of the tickets resolved), last 365 days;
//! - `survey`: the mean survey score (1–5 → 0–100; NPS 0–10 → 0–100 when no score), last 365 days;
//! - `p_alive`: 100 × P(alive) of the latest analysis;
//! - `spend_trend`: 50 + 50 × (last 90 days − the 90 before) / the larger of the two;
//! - `on_time_delivery`: 100 × the share of the account's deliveries with a promise done on or
//!   before it, last 365 days ([`on_time_delivery_signal`]; none without such deliveries).
//!
//! health = `review_share` × review score + (1 − `review_share`) × mean of the available
//! signals (the review score alone when none is available).

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use utoipa::ToSchema;

use super::{claim_alert, notify_account, AccountSettings};
use crate::db::{query, Tx};
use crate::users::Actor;
use crate::{audit, events, Result, Store, StoreError};

/// The six questions of a review, each 1–5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewScores {
    /// Responsiveness to the client's concerns.
    #[schema(minimum = 1, maximum = 5)]
    pub responsiveness: i64,
    /// Price competitive and fair for the value.
    #[schema(minimum = 1, maximum = 5)]
    pub price: i64,
    /// On-time delivery.
    #[schema(minimum = 1, maximum = 5)]
    pub delivery: i64,
    /// Other obligations kept.
    #[schema(minimum = 1, maximum = 5)]
    pub obligations: i64,
    /// Complaints resolved quickly and well.
    #[schema(minimum = 1, maximum = 5)]
    pub complaints: i64,
    /// Contract terms reasonable.
    #[schema(minimum = 1, maximum = 5)]
    pub contract: i64,
}

/// A review as written.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewReview {
    /// The six scores.
    pub scores: ReviewScores,
    /// Overall sentiment, 1–5.
    #[schema(minimum = 1, maximum = 5)]
    pub sentiment: i64,
    /// A note per question (keys as in `scores`; each at most 1000 characters).
    #[schema(value_type = Option<Object>)]
    pub notes: Option<BTreeMap<String, String>>,
    /// An overall note (at most 4000 characters).
    #[schema(max_length = 4000)]
    pub note: Option<String>,
}

/// The parts of a health score (each 0–100; null: not available).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HealthParts {
    /// The review's weighted mean mapped onto 0–100.
    pub review: f64,
    /// Few complaints per order.
    pub complaint_rate: Option<f64>,
    /// Few reopened tickets.
    pub reopen_rate: Option<f64>,
    /// Survey answers.
    pub survey: Option<f64>,
    /// P(alive).
    pub p_alive: Option<f64>,
    /// Spend trend (50: flat).
    pub spend_trend: Option<f64>,
    /// On-time delivery (from the fulfilment chain, when available).
    pub on_time_delivery: Option<f64>,
}

/// A recorded review.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Review {
    /// Id.
    pub id: i64,
    /// The customer.
    pub customer_id: i64,
    /// The reviewer (a user id).
    pub user_id: Option<i64>,
    /// Who (`user:<id>` …).
    pub by_actor: String,
    /// The six scores.
    pub scores: ReviewScores,
    /// Overall sentiment.
    pub sentiment: i64,
    /// Notes per question.
    pub notes: BTreeMap<String, String>,
    /// Overall note.
    pub note: Option<String>,
    /// Health score 0–100 (one decimal).
    pub health_score: f64,
    /// Its parts.
    pub parts: HealthParts,
    /// The previous review's health score.
    pub previous_health_score: Option<f64>,
    /// When.
    pub created_at: DateTime<Utc>,
}

type ReviewRow = (
    i64,
    i64,
    Option<i64>,
    String,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
    Json<BTreeMap<String, String>>,
    Option<String>,
    f64,
    Json<HealthParts>,
    DateTime<Utc>,
);

const REVIEW_SELECT: &str =
    "SELECT id, customer_id, user_id, by_actor, responsiveness, price, delivery, obligations, complaints, contract, \
     sentiment, notes, note, health_score, parts, created_at FROM relationship_reviews";

fn review_of(r: ReviewRow) -> Review {
    Review {
        id: r.0,
        customer_id: r.1,
        user_id: r.2,
        by_actor: r.3,
        scores: ReviewScores { responsiveness: r.4, price: r.5, delivery: r.6, obligations: r.7, complaints: r.8, contract: r.9 },
        sentiment: r.10,
        notes: r.11 .0,
        note: r.12,
        health_score: r.13,
        parts: r.14 .0,
        previous_health_score: None,
        created_at: r.15,
    }
}

/// The review score (0–100) of `scores` and `sentiment` under the settings' weights.
pub fn review_score(s: &ReviewScores, sentiment: i64, settings: &AccountSettings) -> f64 {
    let w = &settings.review_weights;
    let parts = [
        (s.responsiveness, w.responsiveness),
        (s.price, w.price),
        (s.delivery, w.delivery),
        (s.obligations, w.obligations),
        (s.complaints, w.complaints),
        (s.contract, w.contract),
        (sentiment, w.sentiment),
    ];
    let total: f64 = parts.iter().map(|p| p.1).sum();
    if total <= 0.0 {
        return 0.0;
    }
    let mean = parts.iter().map(|(v, w)| *v as f64 * w).sum::<f64>() / total;
    (mean - 1.0) / 4.0 * 100.0
}

/// Combines the review score with the available signals (see the module).
pub fn health_score(parts: &HealthParts, settings: &AccountSettings) -> f64 {
    let signals: Vec<f64> =
        [parts.complaint_rate, parts.reopen_rate, parts.survey, parts.p_alive, parts.spend_trend, parts.on_time_delivery]
            .into_iter()
            .flatten()
            .filter(|v| v.is_finite())
            .collect();
    let h = if signals.is_empty() {
        parts.review
    } else {
        let mean = signals.iter().sum::<f64>() / signals.len() as f64;
        settings.review_share * parts.review + (1.0 - settings.review_share) * mean
    };
    (h.clamp(0.0, 100.0) * 10.0).round() / 10.0
}

/// The on-time delivery rate of the account's fulfilment chains (issue 19 §5) as a 0–100
/// signal: deliveries with a promise done since `since`, the share done on or before it.
pub(crate) async fn on_time_delivery_signal(tx: &mut Tx, customer_id: i64, since: DateTime<Utc>) -> Result<Option<f64>> {
    let (delivered, on_time): (i64, Option<i64>) = tx
        .fetch_one(
            query(
                "SELECT COUNT(*), SUM(CASE WHEN done_at <= promised_at THEN 1 ELSE 0 END) FROM fulfilment_steps \
                 WHERE customer_id = $1 AND step = 'delivered' AND done_at IS NOT NULL AND promised_at IS NOT NULL AND done_at >= $2",
            )
            .bind(customer_id)
            .bind(since),
        )
        .await?;
    Ok((delivered > 0).then(|| 100.0 * on_time.unwrap_or(0) as f64 / delivered as f64))
}

fn check_scores(s: &ReviewScores, sentiment: i64) -> Result<()> {
    for (field, v) in [
        ("scores.responsiveness", s.responsiveness),
        ("scores.price", s.price),
        ("scores.delivery", s.delivery),
        ("scores.obligations", s.obligations),
        ("scores.complaints", s.complaints),
        ("scores.contract", s.contract),
        ("sentiment", sentiment),
    ] {
        if !(1..=5).contains(&v) {
            return Err(StoreError::invalid(field, "must be 1 to 5"));
        }
    }
    Ok(())
}

/// The measured signals of a customer now.
async fn signals(tx: &mut Tx, customer_id: i64, now: DateTime<Utc>) -> Result<HealthParts> {
    let year = now - Duration::days(365);
    let (orders,): (i64,) = tx
        .fetch_one(
            query("SELECT COUNT(*) FROM orders WHERE customer_id = $1 AND status = 'completed' AND ordered_at > $2 AND ordered_at <= $3")
                .bind(customer_id)
                .bind(year)
                .bind(now),
        )
        .await?;
    let (complaints,): (i64,) = tx
        .fetch_one(
            query("SELECT COUNT(*) FROM tickets WHERE customer_id = $1 AND kind = 'complaint' AND opened_at > $2 AND opened_at <= $3")
                .bind(customer_id)
                .bind(year)
                .bind(now),
        )
        .await?;
    let complaint_rate = if orders > 0 {
        Some(100.0 * (1.0 - (10.0 * complaints as f64 / orders as f64).min(1.0)))
    } else if complaints > 0 {
        Some(0.0)
    } else {
        None
    };
    let (resolved, reopened): (i64, i64) = tx
        .fetch_one(
            query(
                "SELECT COUNT(*), COALESCE(SUM(CASE WHEN reopened_count > 0 THEN 1 ELSE 0 END), 0) FROM tickets \
                 WHERE customer_id = $1 AND resolved_at IS NOT NULL AND resolved_at > $2",
            )
            .bind(customer_id)
            .bind(year),
        )
        .await?;
    let reopen_rate = (resolved > 0).then(|| 100.0 * (1.0 - reopened as f64 / resolved as f64));
    let (score, nps): (Option<f64>, Option<f64>) = tx
        .fetch_one(
            query(
                "SELECT AVG(CAST(score AS DOUBLE PRECISION)), AVG(CAST(nps AS DOUBLE PRECISION)) FROM survey_answers \
                 WHERE customer_id = $1 AND answered_at > $2",
            )
            .bind(customer_id)
            .bind(year),
        )
        .await?;
    let survey = score.map(|s| (s - 1.0) / 4.0 * 100.0).or(nps.map(|n| n * 10.0));
    let p: Option<(Option<f64>,)> =
        tx.fetch_optional(query("SELECT p_alive FROM customer_scores WHERE customer_id = $1").bind(customer_id)).await?;
    let p_alive = p.and_then(|r| r.0).filter(|v| v.is_finite()).map(|v| (v * 100.0).clamp(0.0, 100.0));
    let q90 = now - Duration::days(90);
    let q180 = now - Duration::days(180);
    let (recent, prior): (f64, f64) = tx
        .fetch_one(
            query(
                "SELECT CAST(COALESCE(SUM(CASE WHEN ordered_at > $2 THEN total_cents ELSE 0 END), 0) AS DOUBLE PRECISION), \
                 CAST(COALESCE(SUM(CASE WHEN ordered_at <= $2 THEN total_cents ELSE 0 END), 0) AS DOUBLE PRECISION) \
                 FROM orders WHERE customer_id = $1 AND status = 'completed' AND ordered_at > $3 AND ordered_at <= $4",
            )
            .bind(customer_id)
            .bind(q90)
            .bind(q180)
            .bind(now),
        )
        .await?;
    let top = recent.max(prior);
    let spend_trend = (top > 0.0).then(|| 50.0 + 50.0 * ((recent - prior) / top).clamp(-1.0, 1.0));
    let on_time_delivery = on_time_delivery_signal(tx, customer_id, year).await?;
    Ok(HealthParts { review: 0.0, complaint_rate, reopen_rate, survey, p_alive, spend_trend, on_time_delivery })
}

/// One account's review position.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReviewDue {
    /// The customer.
    pub customer_id: i64,
    /// Name.
    pub name: String,
    /// Tier.
    pub tier: String,
    /// The owner.
    pub owner_id: Option<i64>,
    /// The account manager.
    pub account_manager_id: Option<i64>,
    /// Days between reviews for the tier.
    pub interval_days: i64,
    /// The last review.
    pub last_review_at: Option<DateTime<Utc>>,
    /// The last health score.
    pub last_health_score: Option<f64>,
    /// The business day the next review is due.
    pub due_on: NaiveDate,
    /// Days past it (negative: days left).
    pub days_overdue: i64,
}

impl Store {
    /// Records a review and its health score (audited; an event). A score this many points
    /// (setting) below the previous review's notifies the owner.
    pub async fn create_review(&self, actor: &Actor, customer_id: i64, r: NewReview) -> Result<Review> {
        check_scores(&r.scores, r.sentiment)?;
        let note = r.note.as_deref().map(str::trim).filter(|n| !n.is_empty()).map(str::to_owned);
        if note.as_ref().is_some_and(|n| n.chars().count() > 4000) {
            return Err(StoreError::invalid("note", "at most 4000 characters"));
        }
        let notes = r.notes.unwrap_or_default();
        for (k, v) in &notes {
            if !["responsiveness", "price", "delivery", "obligations", "complaints", "contract", "sentiment"].contains(&k.as_str()) {
                return Err(StoreError::invalid("notes", format!("unknown question {k:?}")));
            }
            if v.chars().count() > 1000 {
                return Err(StoreError::invalid(format!("notes.{k}"), "at most 1000 characters"));
            }
        }
        let settings = self.account_settings().await?;
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let owner: Option<(Option<i64>, String)> =
            tx.fetch_optional(query("SELECT owner_id, name FROM customers WHERE id = $1 AND deleted_at IS NULL").bind(customer_id)).await?;
        let (owner, _) = owner.ok_or(StoreError::NotFound("customer"))?;
        let mut parts = signals(&mut tx, customer_id, now).await?;
        parts.review = (review_score(&r.scores, r.sentiment, &settings) * 10.0).round() / 10.0;
        let health = health_score(&parts, &settings);
        let previous: Option<(f64,)> = tx
            .fetch_optional(
                query("SELECT health_score FROM relationship_reviews WHERE customer_id = $1 ORDER BY created_at DESC, id DESC LIMIT 1")
                    .bind(customer_id),
            )
            .await?;
        let s = r.scores;
        let (id,): (i64,) = tx
            .fetch_one(
                query(
                    "INSERT INTO relationship_reviews (customer_id, user_id, by_actor, responsiveness, price, delivery, obligations, complaints, \
                     contract, sentiment, notes, note, health_score, parts, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) RETURNING id",
                )
                .bind(customer_id)
                .bind(actor.user_id)
                .bind(actor.key.clone())
                .bind(s.responsiveness)
                .bind(s.price)
                .bind(s.delivery)
                .bind(s.obligations)
                .bind(s.complaints)
                .bind(s.contract)
                .bind(r.sentiment)
                .bind(serde_json::json!(notes))
                .bind(note.clone())
                .bind(health)
                .bind(serde_json::to_value(&parts).map_err(|e| StoreError::Internal(e.to_string()))?)
                .bind(now),
            )
            .await?;
        let previous = previous.map(|p| p.0);
        events::append(
            &mut tx,
            customer_id,
            "relationship.reviewed",
            Some(id),
            serde_json::json!({"health_score": health, "previous_health_score": previous}),
            now,
        )
        .await?;
        if let (Some(prev), Some(owner)) = (previous, owner) {
            if prev - health >= settings.health_drop_alert && prev > health {
                let msg = format!("Health score fell from {prev:.1} to {health:.1} at the latest relationship review");
                notify_account(&mut tx, owner, "health_drop", customer_id, &msg, now).await?;
            }
        }
        audit::record(
            &mut tx,
            now,
            &actor.key,
            "create",
            "relationship_review",
            Some(id.to_string()),
            Some(format!("customer={customer_id} health={health}")),
        )
        .await?;
        tx.commit().await?;
        Ok(Review {
            id,
            customer_id,
            user_id: actor.user_id,
            by_actor: actor.key.clone(),
            scores: s,
            sentiment: r.sentiment,
            notes,
            note,
            health_score: health,
            parts,
            previous_health_score: previous,
            created_at: now,
        })
    }

    /// A customer's reviews, newest first (each with the one before's health score: the trend).
    pub async fn reviews(&self, customer_id: i64) -> Result<Vec<Review>> {
        let rows: Vec<ReviewRow> = self
            .db
            .reader()
            .fetch_all(
                query(format!("{REVIEW_SELECT} WHERE customer_id = $1 ORDER BY created_at DESC, id DESC LIMIT 200")).bind(customer_id),
            )
            .await?;
        let mut out: Vec<Review> = rows.into_iter().map(review_of).collect();
        let previous: Vec<Option<f64>> = out.iter().skip(1).map(|r| Some(r.health_score)).chain(std::iter::once(None)).collect();
        for (r, p) in out.iter_mut().zip(previous) {
            r.previous_health_score = p;
        }
        Ok(out)
    }

    /// The latest health score of each of `ids` that has one.
    pub(crate) async fn latest_health(&self, ids: &[i64]) -> Result<std::collections::HashMap<i64, (f64, DateTime<Utc>)>> {
        if ids.is_empty() {
            return Ok(Default::default());
        }
        let rows: Vec<(i64, f64, DateTime<Utc>, i64)> = self
            .db
            .reader()
            .fetch_all(
                query(format!(
                    "SELECT customer_id, health_score, created_at, id FROM relationship_reviews WHERE customer_id IN ({}) ORDER BY customer_id, created_at, id",
                    self.db.engine().json_ints(1)
                ))
                .bind(serde_json::json!(ids)),
            )
            .await?;
        Ok(rows.into_iter().map(|(c, h, at, _)| (c, (h, at))).collect())
    }

    /// The review position of the managed accounts `actor` sees (of `user_id`'s portfolio when
    /// given: owned, account manager or on the team), most overdue first.
    pub async fn reviews_due(&self, actor: &Actor, user_id: Option<i64>, only_due: bool) -> Result<Vec<ReviewDue>> {
        let ids = match user_id {
            Some(u) => Some(self.portfolio_ids(actor, u).await?),
            None => None,
        };
        let rows = self.cadence_rows(actor, ids.as_deref()).await?;
        let settings = self.account_settings().await?;
        let all: Vec<i64> = rows.iter().map(|r| r.customer_id).collect();
        let last = self.latest_health(&all).await?;
        let today = self.business_today();
        let mut out: Vec<ReviewDue> = rows
            .into_iter()
            .map(|r| {
                let interval_days = settings.review_days_for(&r.tier);
                let l = last.get(&r.customer_id).copied();
                let start = self.business_date(l.map(|x| x.1).unwrap_or(r.created_at));
                let due_on = start + Duration::days(interval_days);
                ReviewDue {
                    customer_id: r.customer_id,
                    name: r.name,
                    tier: r.tier,
                    owner_id: r.owner_id,
                    account_manager_id: r.account_manager_id,
                    interval_days,
                    last_review_at: l.map(|x| x.1),
                    last_health_score: l.map(|x| x.0),
                    due_on,
                    days_overdue: (today - due_on).num_days(),
                }
            })
            .filter(|r| !only_due || r.days_overdue >= 0)
            .collect();
        out.sort_by(|a, b| b.days_overdue.cmp(&a.days_overdue).then(a.customer_id.cmp(&b.customer_id)));
        Ok(out)
    }

    /// Notifies the owner (else the account manager) of each overdue review, once per review cycle.
    pub(crate) async fn run_review_alerts(&self) -> Result<u64> {
        let due: Vec<ReviewDue> = self.reviews_due(&Actor::cli(), None, true).await?.into_iter().filter(|r| r.days_overdue > 0).collect();
        if due.is_empty() {
            return Ok(0);
        }
        let now = self.now();
        let mut made = 0;
        let mut tx = self.db.begin().await?;
        for r in due {
            let Some(to) = r.owner_id.or(r.account_manager_id) else { continue };
            if claim_alert(&mut tx, r.customer_id, &format!("review_overdue:{}", r.due_on), now).await? {
                let msg = format!("Relationship review overdue since {} (every {} days for tier {})", r.due_on, r.interval_days, r.tier);
                notify_account(&mut tx, to, "review_overdue", r.customer_id, &msg, now).await?;
                made += 1;
            }
        }
        tx.commit().await?;
        Ok(made)
    }
}
