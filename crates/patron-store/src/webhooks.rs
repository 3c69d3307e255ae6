//! Webhooks (issue 14 §3): subscriptions to the domain events of the `events` table, delivered
//! at least once to the subscriber's URL with an HMAC signature, retried with backoff, logged,
//! and turned off after too many failures in a row.
//!
//! The store's part is the bookkeeping: reading events into one delivery per (webhook, event)
//! under a unique key (so a second scheduler or a re-read never makes two), claiming a due
//! delivery for one sender at a time, and recording each attempt. The HTTP call itself is the
//! server's (`patron_server::webhooks`).

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use utoipa::ToSchema;

use crate::db::query;
use crate::events::{Event, EventFilter};
use crate::users::Actor;
use crate::{audit, Result, Store, StoreError};

/// Failed attempts in a row after which a webhook is turned off.
pub const DISABLE_AFTER_FAILURES: i64 = 20;
/// Attempts of one delivery before it is given up (then `failed`; a replay tries again).
pub const MAX_ATTEMPTS: i64 = 8;
/// How long a sender holds a claimed delivery before another may try it (a crashed sender's
/// claim runs out; the receiver sees the delivery again: at least once).
pub const CLAIM_LEASE: Duration = Duration::seconds(60);
/// Events are read into deliveries as soon as they are seen, but the cursor only passes events
/// older than this: ids are handed out at insert and committed in another order, so a younger
/// id may become visible after an older one was read (the unique key absorbs the re-reads).
const SETTLED: Duration = Duration::seconds(60);
/// Subscriptions per webhook, and webhooks in all (a bound for the fan-out's work per round).
const MAX_PATTERNS: usize = 50;
const MAX_WEBHOOKS: i64 = 100;

/// What one round of webhook work did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct WebhookReport {
    /// Deliveries made from new events.
    pub made: u64,
    /// Delivered (2xx) this round.
    pub delivered: u64,
    /// Attempts that failed this round (to be retried, or given up).
    pub failed: u64,
}

/// A subscription.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Webhook {
    /// Id.
    pub id: i64,
    /// Where deliveries are POSTed.
    pub url: String,
    /// Event types (`ticket.opened`), prefixes (`ticket.*`) or `*`.
    pub events: Vec<String>,
    /// Whether deliveries are made and sent.
    pub active: bool,
    /// Failed attempts in a row (turned off at 20).
    pub consecutive_failures: i64,
    /// Why it was turned off automatically, if it was.
    pub disabled_reason: Option<String>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// A webhook as created: the secret is shown this once.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CreatedWebhook {
    /// The webhook.
    #[serde(flatten)]
    pub webhook: Webhook,
    /// The signing secret (the one given, or a generated one): keep it, it is not shown again.
    pub secret: String,
}

/// A new subscription.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    /// `https://…` (or `http://` for a receiver on a private network).
    #[schema(max_length = 2000)]
    pub url: String,
    /// Event types, `noun.*` prefixes or `*` (1–50).
    #[schema(min_items = 1, max_items = 50)]
    pub events: Vec<String>,
    /// The HMAC key (16–200 characters); generated when left out.
    #[schema(min_length = 16, max_length = 200)]
    pub secret: Option<String>,
}

/// A change to a subscription; what is left out stays.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookPatch {
    /// New URL.
    #[schema(max_length = 2000)]
    pub url: Option<String>,
    /// New subscriptions.
    #[schema(min_items = 1, max_items = 50)]
    pub events: Option<Vec<String>>,
    /// Turn on (clears the failure count and the reason) or off.
    pub active: Option<bool>,
}

/// One delivery of one event to one webhook.
#[derive(serde::Deserialize, Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Delivery {
    /// Id (also the `X-Patron-Delivery` header).
    pub id: i64,
    /// The webhook.
    pub webhook_id: i64,
    /// The event delivered.
    pub event_id: i64,
    /// Its type.
    pub event_type: String,
    /// The customer it concerns.
    pub customer_id: i64,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    /// Attempts so far.
    pub attempts: i64,
    /// When it is (or was last) due.
    pub next_attempt_at: DateTime<Utc>,
    /// The receiver's last HTTP status.
    pub last_status: Option<i64>,
    /// The last failure in words (timeout, refused, HTTP 500 …).
    pub last_error: Option<String>,
    /// Made.
    pub created_at: DateTime<Utc>,
    /// When the receiver answered 2xx.
    pub delivered_at: Option<DateTime<Utc>>,
}

/// A delivery claimed for sending, with what to send.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The delivery (attempts already counts this one).
    pub delivery: Delivery,
    /// Where to.
    pub url: String,
    /// The signing key.
    pub secret: String,
    /// The event.
    pub event: Event,
}

/// How one attempt went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// The receiver answered 2xx.
    Delivered(u16),
    /// The receiver answered something else, or could not be reached (`None`: no answer).
    Failed(Option<u16>, String),
}

#[derive(serde::Deserialize, sqlx::FromRow)]
struct WebhookRow {
    id: i64,
    url: String,
    #[serde(deserialize_with = "crate::db::direct::json_text")]
    events: Json<Vec<String>>,
    secret: String,
    active: bool,
    consecutive_failures: i64,
    disabled_reason: Option<String>,
    event_cursor: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<WebhookRow> for Webhook {
    fn from(r: WebhookRow) -> Self {
        Webhook {
            id: r.id,
            url: r.url,
            events: r.events.0,
            active: r.active,
            consecutive_failures: r.consecutive_failures,
            disabled_reason: r.disabled_reason,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

const WEBHOOK_SELECT: &str =
    "SELECT id, url, events, secret, active, consecutive_failures, disabled_reason, event_cursor, created_at, updated_at FROM webhooks";
const DELIVERY_SELECT: &str = "SELECT id, webhook_id, event_id, event_type, customer_id, status, attempts, next_attempt_at, \
     last_status, last_error, created_at, delivered_at FROM webhook_deliveries";

/// `http://` or `https://`, a host part, no white space or control characters anywhere (the
/// OpenAPI document's pattern says the same).
pub fn check_url(url: &str) -> Result<()> {
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
    match rest {
        _ if url.chars().count() > 2000 => Err(StoreError::invalid("url", "at most 2,000 characters")),
        Some(r) if !r.is_empty() && !r.starts_with('/') && !url.chars().any(|c| c.is_whitespace() || c.is_control()) => Ok(()),
        _ => Err(StoreError::invalid("url", "expected an absolute http:// or https:// URL without spaces")),
    }
}

/// `noun.verb`, `noun.*` or `*`, in lower case with underscores.
pub fn check_events(events: &[String]) -> Result<()> {
    if events.is_empty() || events.len() > MAX_PATTERNS {
        return Err(StoreError::invalid("events", "subscribe to 1 to 50 event types"));
    }
    let word = |w: &str| !w.is_empty() && w.len() <= 40 && w.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    for (i, e) in events.iter().enumerate() {
        let ok = e == "*" || e.split_once('.').is_some_and(|(noun, verb)| word(noun) && (verb == "*" || word(verb)));
        if !ok {
            return Err(StoreError::invalid(
                format!("events[{i}]"),
                format!("{e:?} is not an event type (noun.verb, noun.* or *, e.g. ticket.opened, order.*)"),
            ));
        }
    }
    Ok(())
}

/// Whether `kind` matches one of the subscriptions.
pub fn subscribed(patterns: &[String], kind: &str) -> bool {
    patterns
        .iter()
        .any(|p| p == "*" || p == kind || p.strip_suffix(".*").is_some_and(|noun| kind.split_once('.').is_some_and(|(n, _)| n == noun)))
}

fn generate_secret() -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = rand::rngs::OsRng;
    (0..40).map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char).collect()
}

/// The wait before attempt `attempts + 1`: 30 s, 1 min, 2 min … up to 1 h.
pub fn backoff(attempts: i64) -> Duration {
    Duration::seconds(30i64.saturating_mul(1i64 << attempts.clamp(0, 7)).min(3600))
}

impl Store {
    /// Subscribes `url` to event types. Reading starts at the events there are now (a new
    /// webhook is not sent the past).
    pub async fn create_webhook(&self, actor: &Actor, w: NewWebhook) -> Result<CreatedWebhook> {
        check_url(&w.url)?;
        check_events(&w.events)?;
        let secret = match w.secret {
            Some(s) if !(16..=200).contains(&s.chars().count()) => {
                return Err(StoreError::invalid("secret", "16 to 200 characters (or leave it out to have one generated)"))
            }
            Some(s) if s.chars().any(char::is_control) => return Err(StoreError::invalid("secret", "no control characters")),
            Some(s) => s,
            None => generate_secret(),
        };
        let (count,): (i64,) = self.db.reader().fetch_one(query("SELECT COUNT(*) FROM webhooks")).await?;
        if count >= MAX_WEBHOOKS {
            return Err(StoreError::State(format!("at most {MAX_WEBHOOKS} webhooks; delete one first")));
        }
        let (cursor,): (i64,) = self.db.reader().fetch_one(query("SELECT COALESCE(MAX(id), 0) FROM events")).await?;
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let (id,): (i64,) = tx
            .fetch_one(
                query(
                    "INSERT INTO webhooks (url, events, secret, active, consecutive_failures, event_cursor, created_by, created_at, updated_at) \
                     VALUES ($1, $2, $3, TRUE, 0, $4, $5, $6, $6) RETURNING id",
                )
                .bind(w.url.clone())
                .bind(serde_json::json!(w.events))
                .bind(secret.clone())
                .bind(cursor)
                .bind(actor.key.clone())
                .bind(now),
            )
            .await?;
        audit::record(&mut tx, now, &actor.key, "create", "webhook", Some(id.to_string()), Some(w.events.join(","))).await?;
        let row: WebhookRow = tx.fetch_one(query(format!("{WEBHOOK_SELECT} WHERE id = $1")).bind(id)).await?;
        tx.commit().await?;
        Ok(CreatedWebhook { webhook: row.into(), secret })
    }

    /// Every webhook, oldest first.
    pub async fn webhooks(&self) -> Result<Vec<Webhook>> {
        let rows: Vec<WebhookRow> = self.db.reader().fetch_all(query(format!("{WEBHOOK_SELECT} ORDER BY id"))).await?;
        Ok(rows.into_iter().map(Webhook::from).collect())
    }

    /// One webhook.
    pub async fn webhook(&self, id: i64) -> Result<Webhook> {
        let row: Option<WebhookRow> = self.db.reader().fetch_optional(query(format!("{WEBHOOK_SELECT} WHERE id = $1")).bind(id)).await?;
        Ok(row.ok_or(StoreError::NotFound("webhook"))?.into())
    }

    /// Changes a webhook. Turning it on clears the failure count; its pending deliveries go on.
    pub async fn update_webhook(&self, actor: &Actor, id: i64, p: WebhookPatch) -> Result<Webhook> {
        if let Some(u) = &p.url {
            check_url(u)?;
        }
        if let Some(e) = &p.events {
            check_events(e)?;
        }
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let cur: Option<WebhookRow> =
            tx.fetch_optional(query(format!("{WEBHOOK_SELECT} WHERE id = $1{}", self.db.engine().row_lock())).bind(id)).await?;
        let cur = cur.ok_or(StoreError::NotFound("webhook"))?;
        let url = p.url.clone().unwrap_or(cur.url.clone());
        let events = p.events.clone().unwrap_or(cur.events.0.clone());
        let active = p.active.unwrap_or(cur.active);
        let turned_on = active && !cur.active;
        tx.execute(
            query(
                "UPDATE webhooks SET url = $1, events = $2, active = $3, \
                 consecutive_failures = CASE WHEN $4 THEN 0 ELSE consecutive_failures END, \
                 disabled_reason = CASE WHEN $3 THEN NULL ELSE disabled_reason END, updated_at = $5 WHERE id = $6",
            )
            .bind(url)
            .bind(serde_json::json!(events))
            .bind(active)
            .bind(turned_on)
            .bind(now)
            .bind(id),
        )
        .await?;
        audit::record(&mut tx, now, &actor.key, "update", "webhook", Some(id.to_string()), Some(format!("active={active}"))).await?;
        let row: WebhookRow = tx.fetch_one(query(format!("{WEBHOOK_SELECT} WHERE id = $1")).bind(id)).await?;
        tx.commit().await?;
        Ok(row.into())
    }

    /// Deletes a webhook and its delivery log.
    pub async fn delete_webhook(&self, actor: &Actor, id: i64) -> Result<()> {
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let n = tx.execute(query("DELETE FROM webhooks WHERE id = $1").bind(id)).await?;
        if n == 0 {
            return Err(StoreError::NotFound("webhook"));
        }
        tx.execute(query("DELETE FROM webhook_deliveries WHERE webhook_id = $1").bind(id)).await?;
        audit::record(&mut tx, now, &actor.key, "delete", "webhook", Some(id.to_string()), None).await?;
        tx.commit().await
    }

    /// A webhook's deliveries, newest first, optionally of one status; `before` pages by id.
    pub async fn webhook_deliveries(
        &self,
        webhook_id: i64,
        status: Option<&str>,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<Delivery>> {
        self.webhook(webhook_id).await?;
        if let Some(s) = status {
            if !matches!(s, "pending" | "delivered" | "failed") {
                return Err(StoreError::invalid("status", "pending, delivered or failed"));
            }
        }
        let rows: Vec<Delivery> = self
            .db
            .reader()
            .fetch_all(
                query(format!(
                    "{DELIVERY_SELECT} WHERE webhook_id = $1 AND ($2 IS NULL OR status = $2) AND ($3 IS NULL OR id < $3) ORDER BY id DESC LIMIT $4"
                ))
                .bind(webhook_id)
                .bind(status)
                .bind(before)
                .bind(limit.clamp(1, 1000)),
            )
            .await?;
        Ok(rows)
    }

    /// Sends a delivery again (whatever its status): pending now, attempts from zero.
    pub async fn replay_delivery(&self, actor: &Actor, webhook_id: i64, delivery_id: i64) -> Result<Delivery> {
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let d: Option<Delivery> = tx
            .fetch_optional(query(format!("{DELIVERY_SELECT} WHERE webhook_id = $1 AND id = $2")).bind(webhook_id).bind(delivery_id))
            .await?;
        let d = d.ok_or(StoreError::NotFound("delivery"))?;
        tx.execute(
            query(
                "UPDATE webhook_deliveries SET status = 'pending', attempts = 0, next_attempt_at = $1, last_error = NULL \
                 WHERE customer_id = $2 AND id = $3",
            )
            .bind(now)
            .bind(d.customer_id)
            .bind(d.id),
        )
        .await?;
        audit::record(
            &mut tx,
            now,
            &actor.key,
            "replay",
            "webhook_delivery",
            Some(d.id.to_string()),
            Some(format!("webhook {webhook_id}")),
        )
        .await?;
        let d: Delivery =
            tx.fetch_one(query(format!("{DELIVERY_SELECT} WHERE customer_id = $1 AND id = $2")).bind(d.customer_id).bind(d.id)).await?;
        tx.commit().await?;
        Ok(d)
    }

    /// Reads new events into deliveries for every active webhook; returns the deliveries made.
    /// Safe to run from several schedulers at once: (webhook, event) is unique.
    pub async fn fan_out_webhooks(&self) -> Result<u64> {
        let now = self.now();
        let hooks: Vec<WebhookRow> = self.db.reader().fetch_all(query(format!("{WEBHOOK_SELECT} WHERE active = TRUE ORDER BY id"))).await?;
        let mut made = 0;
        for h in hooks {
            let mut after = h.event_cursor;
            let mut cursor = h.event_cursor;
            let mut settled = true;
            loop {
                let events = self.events(&EventFilter { after: Some(after), ..Default::default() }, 500).await?;
                let full = events.len() == 500;
                let mut tx = self.db.begin().await?;
                for e in &events {
                    after = e.id;
                    if settled && e.occurred_at <= now - SETTLED {
                        cursor = e.id;
                    } else {
                        settled = false;
                    }
                    if !subscribed(&h.events.0, &e.kind) {
                        continue;
                    }
                    made += tx
                        .execute(
                            query(
                                "INSERT INTO webhook_deliveries (customer_id, webhook_id, event_id, event_type, status, attempts, next_attempt_at, created_at) \
                                 VALUES ($1, $2, $3, $4, 'pending', 0, $5, $5) ON CONFLICT (customer_id, webhook_id, event_id) DO NOTHING",
                            )
                            .bind(e.customer_id)
                            .bind(h.id)
                            .bind(e.id)
                            .bind(e.kind.clone())
                            .bind(now),
                        )
                        .await?;
                }
                if cursor > h.event_cursor {
                    tx.execute(query("UPDATE webhooks SET event_cursor = $1 WHERE id = $2 AND event_cursor < $1").bind(cursor).bind(h.id))
                        .await?;
                }
                tx.commit().await?;
                if !full {
                    break;
                }
            }
        }
        Ok(made)
    }

    /// Claims up to `limit` due deliveries of active webhooks for this sender: each is counted
    /// as an attempt and leased for [`CLAIM_LEASE`], so no other sender takes it meanwhile.
    pub async fn claim_deliveries(&self, limit: i64) -> Result<Vec<Outgoing>> {
        let now = self.now();
        let due: Vec<(i64, i64)> = self
            .db
            .reader()
            .fetch_all(
                query(
                    "SELECT d.customer_id, d.id FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id \
                     WHERE d.status = 'pending' AND d.next_attempt_at <= $1 AND w.active = TRUE ORDER BY d.next_attempt_at, d.id LIMIT $2",
                )
                .bind(now)
                .bind(limit.clamp(1, 1000)),
            )
            .await?;
        let mut out = Vec::with_capacity(due.len());
        for (customer_id, id) in due {
            let mut tx = self.db.begin().await?;
            // One statement decides the claim: of two senders, one updates the row and the other
            // finds it no longer due.
            let claimed = tx
                .execute(
                    query(
                        "UPDATE webhook_deliveries SET attempts = attempts + 1, next_attempt_at = $1 \
                         WHERE customer_id = $2 AND id = $3 AND status = 'pending' AND next_attempt_at <= $4",
                    )
                    .bind(now + CLAIM_LEASE)
                    .bind(customer_id)
                    .bind(id)
                    .bind(now),
                )
                .await?;
            if claimed == 0 {
                continue;
            }
            let delivery: Delivery =
                tx.fetch_one(query(format!("{DELIVERY_SELECT} WHERE customer_id = $1 AND id = $2")).bind(customer_id).bind(id)).await?;
            let hook: Option<WebhookRow> =
                tx.fetch_optional(query(format!("{WEBHOOK_SELECT} WHERE id = $1")).bind(delivery.webhook_id)).await?;
            let event: Option<Event> = crate::events::event_in(&mut tx, customer_id, delivery.event_id).await?;
            tx.commit().await?;
            if let (Some(h), Some(event)) = (hook, event) {
                out.push(Outgoing { delivery, url: h.url, secret: h.secret, event });
            }
        }
        Ok(out)
    }

    /// Records how an attempt went: delivered, or due again after the backoff (failed after
    /// [`MAX_ATTEMPTS`]); the webhook's failures in a row, and its automatic turning off.
    pub async fn record_attempt(&self, d: &Delivery, attempt: &Attempt) -> Result<()> {
        let now = self.now();
        let mut tx = self.db.begin().await?;
        match attempt {
            Attempt::Delivered(status) => {
                tx.execute(
                    query(
                        "UPDATE webhook_deliveries SET status = 'delivered', delivered_at = $1, last_status = $2, last_error = NULL \
                         WHERE customer_id = $3 AND id = $4",
                    )
                    .bind(now)
                    .bind(i64::from(*status))
                    .bind(d.customer_id)
                    .bind(d.id),
                )
                .await?;
                tx.execute(query("UPDATE webhooks SET consecutive_failures = 0 WHERE id = $1").bind(d.webhook_id)).await?;
            }
            Attempt::Failed(status, error) => {
                let gave_up = d.attempts >= MAX_ATTEMPTS;
                let error: String = error.chars().take(500).collect();
                tx.execute(
                    query(
                        "UPDATE webhook_deliveries SET status = $1, next_attempt_at = $2, last_status = $3, last_error = $4 \
                         WHERE customer_id = $5 AND id = $6",
                    )
                    .bind(if gave_up { "failed" } else { "pending" })
                    .bind(now + backoff(d.attempts - 1))
                    .bind(status.map(i64::from))
                    .bind(error)
                    .bind(d.customer_id)
                    .bind(d.id),
                )
                .await?;
                let reason = format!("turned off after {DISABLE_AFTER_FAILURES} failed deliveries in a row");
                tx.execute(
                    query(
                        "UPDATE webhooks SET consecutive_failures = consecutive_failures + 1, \
                         active = CASE WHEN consecutive_failures + 1 >= $1 THEN FALSE ELSE active END, \
                         disabled_reason = CASE WHEN consecutive_failures + 1 >= $1 THEN $2 ELSE disabled_reason END, updated_at = $3 \
                         WHERE id = $4",
                    )
                    .bind(DISABLE_AFTER_FAILURES)
                    .bind(reason)
                    .bind(now)
                    .bind(d.webhook_id),
                )
                .await?;
            }
        }
        tx.commit().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_types_prefixes_and_everything() {
        let p = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(subscribed(&p(&["ticket.opened"]), "ticket.opened"));
        assert!(!subscribed(&p(&["ticket.opened"]), "ticket.opened_again"));
        assert!(subscribed(&p(&["ticket.*"]), "ticket.breached"));
        assert!(!subscribed(&p(&["ticket.*"]), "tickets.breached"));
        assert!(subscribed(&p(&["*"]), "order.created"));
        assert!(check_events(&p(&["ticket.*", "order.created", "*"])).is_ok());
        for bad in ["Ticket.opened", "ticket", "ticket.", ".x", "a.b.c", "ticket.*x", ""] {
            assert!(check_events(&p(&[bad])).is_err(), "{bad}");
        }
        assert!(check_events(&[]).is_err());
    }

    #[test]
    fn backoff_doubles_up_to_an_hour() {
        let secs: Vec<i64> = (0..10).map(|a| backoff(a).num_seconds()).collect();
        assert_eq!(secs, vec![30, 60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]);
    }

    #[test]
    fn urls_must_be_absolute_http() {
        assert!(check_url("https://hooks.example.com/patron").is_ok());
        assert!(check_url("http://10.0.0.5:9000/in").is_ok());
        for bad in ["ftp://x", "https://", "https:///x", "hooks.example.com", "https://a b", "javascript:alert(1)"] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }
}
