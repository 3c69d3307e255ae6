//! The one outbox of messages to customers. A message is a row written **before** anything is
//! sent, under a unique key (occasion, customer, channel) and with a message id derived from
//! that key, which the channel passes to the provider as its idempotency key. A sender claims a
//! batch of due rows in one transaction: each row under its customer's row lock (so that two
//! senders cannot both pass a cap; on PostgreSQL and Citus `SKIP LOCKED`, one shard per
//! statement, so that senders share the due rows instead of waiting on each other; on SQLite
//! the one writer), re-checks consent, the global control group, the frequency caps and quiet
//! hours at that moment, renders the template for the customer, and leases the row while the
//! channel sends it. The outcomes are recorded after the delivery, in one transaction per
//! delivered group ([`Store::record_deliveries`]): a row is `sent` only once its channel took it.
//! A sender killed between delivery and record leaves `sending` rows whose lease runs out: the
//! next sender takes them over with the same message ids (docs/campaigns.md, "Delivery
//! guarantees").

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use utoipa::ToSchema;

use super::personal;
use super::templates::{MessageTemplate, Rendered};
use super::{Channel, EngagementSettings, Purpose};
use crate::customers::upsert_consent;
use crate::db::{query, Tx};
use crate::users::digest;
use crate::{Result, Store, StoreError};

/// A message to put in the outbox.
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// The customer.
    pub customer_id: i64,
    /// The occasion (`campaign:<id>`, `survey:<invitation id>`, `journey:<id>:<step>`).
    pub message_key: String,
    /// The channel.
    pub channel: Channel,
    /// Marketing or transactional.
    pub purpose: Purpose,
    /// The template rendered at send time (or `content`).
    pub template_id: Option<i64>,
    /// The campaign it belongs to.
    pub campaign_id: Option<i64>,
    /// A message written out already.
    pub content: Option<Rendered>,
    /// `None`: queued; `Some(reason)`: recorded as skipped (a holdout member, no consent …).
    pub skipped: Option<String>,
    /// Not sent before this time.
    pub not_before: DateTime<Utc>,
}

/// The provider's idempotency key of a message: from its unique key, so every attempt of every
/// sender passes the same one.
pub fn message_id(message_key: &str, customer_id: i64, channel: Channel) -> String {
    let d = digest(&format!("{message_key}|{customer_id}|{}", channel.as_str()));
    format!("{}@patron", &d[..32])
}

/// Writes a message in `tx` unless its key is there already (then nothing changes); returns
/// whether it was written.
pub(crate) async fn enqueue(tx: &mut Tx, m: &NewMessage, now: DateTime<Utc>) -> Result<bool> {
    enqueue_to(tx, m, None, now).await
}

/// As [`enqueue`], to `recipient` instead of the customer's own address when given: a message
/// about the customer for one of our users (the account digest). Transactional only.
pub(crate) async fn enqueue_to(tx: &mut Tx, m: &NewMessage, recipient: Option<&str>, now: DateTime<Utc>) -> Result<bool> {
    let status = if m.skipped.is_some() { "skipped" } else { "queued" };
    let content = match &m.content {
        Some(c) => Some(serde_json::to_value(c).map_err(|e| StoreError::Internal(e.to_string()))?),
        None => None,
    };
    let n = tx
        .execute(
            query(
                "INSERT INTO outbox (customer_id, message_key, channel, purpose, message_id, template_id, campaign_id, content, status, \
                 reason, next_attempt_at, created_at, updated_at, recipient_address) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, $13) \
                 ON CONFLICT (customer_id, message_key, channel) DO NOTHING",
            )
            .bind(m.customer_id)
            .bind(m.message_key.clone())
            .bind(m.channel.as_str())
            .bind(m.purpose.as_str())
            .bind(message_id(&m.message_key, m.customer_id, m.channel))
            .bind(m.template_id)
            .bind(m.campaign_id)
            .bind(crate::db::Arg::Json(content.unwrap_or(serde_json::Value::Null)))
            .bind(status)
            .bind(m.skipped.clone())
            .bind(m.not_before)
            .bind(now)
            .bind(recipient.map(str::to_owned)),
        )
        .await?;
    Ok(n > 0)
}

/// A message claimed for sending: everything the channel needs.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The customer.
    pub customer_id: i64,
    /// Row id.
    pub id: i64,
    /// The idempotency key / Message-ID.
    pub message_id: String,
    /// The channel.
    pub channel: Channel,
    /// Marketing or transactional.
    pub purpose: Purpose,
    /// Where it goes (e-mail address, mobile, WeChat id, postal address).
    pub address: String,
    /// The customer's name (for direct mail).
    pub name: String,
    /// What it says (links already pointed through tracking).
    pub content: Rendered,
    /// The unsubscribe link (marketing).
    pub unsubscribe_url: String,
    /// This attempt's number (1 for the first).
    pub attempt: i64,
}

/// What a channel made of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// The provider took it.
    Sent,
    /// A timeout, a connection failure, a 5xx: tried again later.
    Transient(String),
    /// A 4xx, a refused address: not tried again.
    Permanent(String),
}

/// What one claim round found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct ClaimReport {
    /// Messages claimed for sending.
    pub claimed: u64,
    /// Skipped at send time (consent withdrawn, capped, global control, no address).
    pub skipped: u64,
    /// Put off to the end of quiet hours.
    pub deferred: u64,
    /// Failed to render (strict templates: a missing variable).
    pub failed: u64,
}

#[derive(sqlx::FromRow)]
struct Due {
    customer_id: i64,
    id: i64,
    template_id: Option<i64>,
}

#[derive(serde::Deserialize, sqlx::FromRow)]
struct Row {
    customer_id: i64,
    id: i64,
    message_key: String,
    channel: String,
    purpose: String,
    message_id: String,
    #[serde(deserialize_with = "crate::db::direct::json_text_opt")]
    content: Option<Json<serde_json::Value>>,
    status: String,
    attempts: i64,
    next_attempt_at: DateTime<Utc>,
    lease_until: Option<DateTime<Utc>>,
    recipient_address: Option<String>,
}

#[derive(serde::Deserialize, sqlx::FromRow)]
struct Contact {
    id: i64,
    name: String,
    deleted_at: Option<DateTime<Utc>>,
    mobile: Option<String>,
    email: Option<String>,
    wechat_id: Option<String>,
    city: Option<String>,
    address: Option<String>,
}

/// A message in the outbox, as listed.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct OutboxMessage {
    /// Row id.
    pub id: i64,
    /// The customer.
    pub customer_id: i64,
    /// The occasion.
    pub message_key: String,
    /// The channel.
    pub channel: String,
    /// `queued`, `sending`, `sent`, `failed` or `skipped`.
    pub status: String,
    /// Why it was skipped or failed.
    pub reason: Option<String>,
    /// Attempts so far.
    pub attempts: i64,
    /// The idempotency key.
    pub message_id: String,
    /// When it went out.
    pub sent_at: Option<DateTime<Utc>>,
    /// Next attempt.
    pub next_attempt_at: DateTime<Utc>,
}

/// Where a written-out message's public link goes (see [`public_link_token`]); replaced when the
/// message is claimed for sending.
pub const PUBLIC_LINK: &str = "{{public_url}}";

/// The token of the public link a message carries (an event's registration page for
/// `customer_event:<id>`, a survey for `survey:<invitation id>`): derived from the link secret,
/// the message's key and its customer, so it is the same on every attempt and is never stored —
/// the module that made the message keeps only its digest.
pub(crate) fn public_link_token(secret: &str, message_key: &str, customer_id: i64) -> String {
    digest(&format!("{secret}:public:{message_key}:{customer_id}"))
}

/// The page a message's public link opens, by the message's key.
fn public_link_path(message_key: &str) -> Option<&'static str> {
    if message_key.starts_with("customer_event:") {
        Some("/p/e/")
    } else if message_key.starts_with("survey:") {
        Some("/p/s/")
    } else {
        None
    }
}

/// The secret the link tokens of messages are derived from (settings key `link_secret`, made
/// on first use): the token of a message is the same on every attempt, so a link in a message
/// sent before a crash keeps working after the retry; only its digest is stored with the row.
const LINK_SECRET: &str = "link_secret";

/// A URL in a message's text (tracking follows these); compiled once.
fn url_pattern() -> Option<&'static regex::Regex> {
    static URL: std::sync::OnceLock<Option<regex::Regex>> = std::sync::OnceLock::new();
    URL.get_or_init(|| regex::Regex::new(r#"https?://[^\s<>"'）)，。]+"#).ok()).as_ref()
}

impl Store {
    /// The link secret (made on first use).
    pub(crate) async fn link_secret(&self) -> Result<String> {
        let current: Option<String> = self.setting::<Option<String>>(LINK_SECRET).await?;
        if let Some(s) = current {
            return Ok(s);
        }
        let secret = crate::users::new_secret("");
        let mut tx = self.db.begin().await?;
        tx.execute(
            query("INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3) ON CONFLICT (key) DO NOTHING")
                .bind(LINK_SECRET)
                .bind(serde_json::Value::String(secret))
                .bind(self.now()),
        )
        .await?;
        tx.commit().await?;
        Ok(self.setting::<Option<String>>(LINK_SECRET).await?.unwrap_or_default())
    }

    /// Puts one message in the outbox (nothing when its key is there already).
    pub async fn enqueue_message(&self, m: NewMessage) -> Result<bool> {
        let mut tx = self.db.begin().await?;
        let written = enqueue(&mut tx, &m, self.now()).await?;
        tx.commit().await?;
        Ok(written)
    }

    /// Claims up to `limit` due messages for sending, each leased for `lease`, in one
    /// transaction (see the module docs); `base_url` is the base of the links in them.
    ///
    /// Set-based: a batch costs a fixed handful of statements (the due rows, their customers and
    /// rows locked, consents, caps, template variables) plus one update per message, whatever
    /// its size; on Citus the locks are taken customer by customer (one shard per statement).
    pub async fn claim_due_messages(&self, limit: i64, lease: Duration, base_url: &str) -> Result<(Vec<Outgoing>, ClaimReport)> {
        let now = self.now();
        let settings = self.engagement_settings().await?;
        let secret = self.link_secret().await?;
        let limit = limit.clamp(1, 10_000);
        // Read without a lock (one statement over every shard on Citus), each in the due
        // index's order so that taking a batch off a long queue reads the batch, not the queue:
        // first the messages whose sender's lease ran out, then the queued ones whose time came.
        // Each row is claimed below under its lock, and only when it is still due then.
        let mut due: Vec<Due> = self
            .db
            .reader()
            .fetch_all(
                query("SELECT customer_id, id, template_id FROM outbox WHERE status = 'sending' AND lease_until <= $1 LIMIT $2")
                    .bind(now)
                    .bind(limit),
            )
            .await?;
        let room = limit - i64::try_from(due.len()).unwrap_or(limit);
        if room > 0 {
            let queued: Vec<Due> = self
                .db
                .reader()
                .fetch_all(
                    query(
                        "SELECT customer_id, id, template_id FROM outbox WHERE status = 'queued' AND next_attempt_at <= $1 \
                         ORDER BY next_attempt_at LIMIT $2",
                    )
                    .bind(now)
                    .bind(room),
                )
                .await?;
            due.extend(queued);
        }
        if due.is_empty() {
            return Ok((Vec::new(), ClaimReport::default()));
        }
        let mut templates: HashMap<i64, Option<(MessageTemplate, personal::Wanted)>> = HashMap::new();
        for d in &due {
            if let Some(id) = d.template_id {
                if let std::collections::hash_map::Entry::Vacant(e) = templates.entry(id) {
                    match self.template(id).await {
                        Ok(t) => {
                            let wanted = t.wanted();
                            e.insert(Some((t, wanted)));
                        }
                        Err(StoreError::NotFound(_)) => {
                            e.insert(None);
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        // Locked in one order (customer, row) by every sender; on PostgreSQL a row another
        // sender holds is skipped, not waited for: it is that sender's.
        due.sort_by_key(|d| (d.customer_id, d.id));
        let started = std::time::Instant::now();
        let mut tx = self.db.begin().await?;
        let (contacts, rows) = lock_due(&mut tx, &due).await?;
        let locked_ms = started.elapsed().as_secs_f64() * 1000.0;
        let policy = BatchPolicy::read(&mut tx, &rows, &contacts, now).await?;
        let policy_ms = started.elapsed().as_secs_f64() * 1000.0;
        let wanted = templates.values().flatten().fold(personal::Wanted::default(), |w, (_, t)| w.or(*t));
        let personalised: Vec<i64> = {
            let mut ids: Vec<i64> =
                rows.iter().filter(|r| r.content.as_ref().is_none_or(|c| c.0.is_null())).map(|r| r.customer_id).collect();
            ids.dedup();
            ids
        };
        let variables = personal::read_many(&mut tx, &personalised, self.config.business_tz, wanted).await?;
        let variables_ms = started.elapsed().as_secs_f64() * 1000.0;
        let mut caps = policy.caps;
        let mut out = Vec::new();
        let mut sending = Vec::new();
        let mut report = ClaimReport::default();
        for row in rows {
            let Some(contact) = contacts.get(&row.customer_id) else { continue };
            let template = due
                .binary_search_by_key(&(row.customer_id, row.id), |d| (d.customer_id, d.id))
                .ok()
                .and_then(|i| due[i].template_id)
                .and_then(|id| templates.get(&id).and_then(|t| t.as_ref()));
            let ctx = ClaimContext {
                now,
                settings: &settings,
                secret: &secret,
                base_url,
                template,
                consents: &policy.consents,
                caps: &mut caps,
                variables: &variables,
            };
            match self.claim_one(&mut tx, &row, contact, ctx).await? {
                Claim::Gone => {}
                Claim::Skipped => report.skipped += 1,
                Claim::Deferred => report.deferred += 1,
                Claim::Failed => report.failed += 1,
                Claim::Send(row, o) => {
                    report.claimed += 1;
                    sending.push(row);
                    out.push(*o);
                }
            }
        }
        mark_sending(&mut tx, &sending, now + lease, now).await?;
        let decided_ms = started.elapsed().as_secs_f64() * 1000.0;
        tx.commit().await?;
        tracing::debug!(
            rows = out.len(),
            locked_ms,
            policy_ms,
            variables_ms,
            decided_ms,
            committed_ms = started.elapsed().as_secs_f64() * 1000.0,
            "outbox claim (cumulative ms)"
        );
        Ok((out, report))
    }

    /// Decides one locked message of a batch: skipped (erased customer, a marketing block, no
    /// address), deferred (quiet hours), failed (does not render) or claimed for sending.
    async fn claim_one(&self, tx: &mut Tx, row: &Row, contact: &Contact, ctx: ClaimContext<'_>) -> Result<Claim> {
        let now = ctx.now;
        let still_due = match row.status.as_str() {
            "queued" => row.next_attempt_at <= now,
            "sending" => row.lease_until.is_some_and(|l| l <= now),
            _ => false,
        };
        if !still_due {
            return Ok(Claim::Gone);
        }
        let channel = Channel::parse(&row.channel)?;
        let purpose = Purpose::parse(&row.purpose)?;
        if contact.deleted_at.is_some() {
            self.finish(tx, row, "skipped", Some("customer_deleted".into()), now).await?;
            return Ok(Claim::Skipped);
        }
        if purpose == Purpose::Marketing {
            let (week, month) = ctx.caps.get(&row.customer_id).copied().unwrap_or((0, 0));
            let reason = if ctx.settings.in_global_control(row.customer_id) {
                Some("global_control")
            } else if !ctx.consents.contains(&(row.customer_id, row.channel.clone())) {
                Some("no_consent")
            } else if week >= ctx.settings.cap_7_days || month >= ctx.settings.cap_30_days {
                Some("capped")
            } else {
                None
            };
            if let Some(reason) = reason {
                self.finish(tx, row, "skipped", Some(reason.into()), now).await?;
                return Ok(Claim::Skipped);
            }
        }
        if matches!(channel, Channel::Sms | Channel::Wechat) {
            let allowed = ctx.settings.next_allowed(now, self.config.business_tz);
            if allowed > now {
                tx.execute(
                    query("UPDATE outbox SET status = 'queued', next_attempt_at = $1, lease_until = NULL, updated_at = $2 WHERE customer_id = $3 AND id = $4")
                        .bind(allowed)
                        .bind(now)
                        .bind(row.customer_id)
                        .bind(row.id),
                )
                .await?;
                return Ok(Claim::Deferred);
            }
        }
        // A message for one of our users about the customer (the account digest) goes to them.
        let address = match channel {
            _ if row.recipient_address.is_some() => row.recipient_address.clone(),
            Channel::Email => contact.email.clone(),
            Channel::Sms => contact.mobile.clone(),
            Channel::Wechat => contact.wechat_id.clone(),
            Channel::Mail => contact.address.clone().or(contact.city.clone()),
        };
        let Some(address) = address.filter(|a| !a.trim().is_empty()) else {
            self.finish(tx, row, "skipped", Some("no_address".into()), now).await?;
            return Ok(Claim::Skipped);
        };
        let token = digest(&format!("{}:{}", ctx.secret, row.message_id));
        let base = ctx.base_url.trim_end_matches('/');
        let unsubscribe_url = format!("{base}/p/u/{token}");
        let rendered = match (&row.content, ctx.template) {
            (Some(Json(c)), _) if !c.is_null() => serde_json::from_value::<Rendered>(c.clone()).map_err(|e| e.to_string()),
            (_, Some((t, _))) => match ctx.variables.get(&row.customer_id) {
                Some(v) => {
                    let mut vars = v.clone();
                    vars.unsubscribe_url = unsubscribe_url.clone();
                    t.render(&vars)
                }
                None => Err("the customer is no longer on file".to_owned()),
            },
            _ => Err("the message has neither content nor a template".to_owned()),
        };
        let mut content = match rendered {
            Ok(c) => c,
            Err(e) => {
                self.finish(tx, row, "failed", Some(format!("render: {e}")), now).await?;
                return Ok(Claim::Failed);
            }
        };
        // Links (but the unsubscribe link) go through /t/{token}/{n}.
        let mut links: Vec<String> = Vec::new();
        if let Some(re) = url_pattern() {
            for m in re.find_iter(&content.text) {
                let u = m.as_str().to_owned();
                if u != unsubscribe_url && !links.contains(&u) {
                    links.push(u);
                }
            }
            if let Some(h) = &content.html {
                for m in re.find_iter(h) {
                    let u = m.as_str().to_owned();
                    if u != unsubscribe_url && !links.contains(&u) {
                        links.push(u);
                    }
                }
            }
        }
        for (i, u) in links.iter().enumerate() {
            let tracked = format!("{base}/t/{token}/{i}");
            content.text = content.text.replace(u.as_str(), &tracked);
            content.html = content.html.map(|h| h.replace(u.as_str(), &tracked));
        }
        // The public link a written-out message carries (an event's registration page, a
        // survey), from its token derived now: after the tracking rewrite, so that the link is
        // neither tracked nor kept in `links`.
        if let Some(path) = public_link_path(&row.message_key) {
            let url = format!("{base}{path}{}", public_link_token(ctx.secret, &row.message_key, row.customer_id));
            content.text = content.text.replace(PUBLIC_LINK, &url);
            content.html = content.html.map(|h| h.replace(PUBLIC_LINK, &url));
        }
        if channel == Channel::Email && purpose == Purpose::Marketing {
            content.html = content.html.map(|h| format!("{h}<img src=\"{base}/t/{token}/open.gif\" width=\"1\" height=\"1\" alt=\"\">"));
        }
        let sending = Sending { customer_id: row.customer_id, id: row.id, token_hash: digest(&token), links: links.clone() };
        if purpose == Purpose::Marketing {
            // The next message of this customer in the batch counts this one against the caps.
            let c = ctx.caps.entry(row.customer_id).or_insert((0, 0));
            c.0 += 1;
            c.1 += 1;
        }
        Ok(Claim::Send(
            sending,
            Box::new(Outgoing {
                customer_id: row.customer_id,
                id: row.id,
                message_id: row.message_id.clone(),
                channel,
                purpose,
                address,
                name: contact.name.clone(),
                content,
                unsubscribe_url,
                attempt: row.attempts + 1,
            }),
        ))
    }

    async fn finish(&self, tx: &mut Tx, row: &Row, status: &str, reason: Option<String>, now: DateTime<Utc>) -> Result<()> {
        tx.execute(
            query("UPDATE outbox SET status = $1, reason = $2, lease_until = NULL, updated_at = $3 WHERE customer_id = $4 AND id = $5")
                .bind(status)
                .bind(reason)
                .bind(now)
                .bind(row.customer_id)
                .bind(row.id),
        )
        .await?;
        Ok(())
    }

    /// Records what the channel made of a claimed message: sent; failed for good; or tried
    /// again after 30 s × 2^(attempt − 1) (at most 6 hours), until the settings' attempts are spent.
    pub async fn record_delivery(&self, o: &Outgoing, outcome: &DeliveryOutcome) -> Result<()> {
        self.record_deliveries(&[(o, outcome)]).await
    }

    /// Records the outcomes of a delivered batch in one transaction (each as
    /// [`Store::record_delivery`] does). Only rows still `sending` change: a message whose lease
    /// ran out and that another sender took over is that sender's to record.
    pub async fn record_deliveries(&self, outcomes: &[(&Outgoing, &DeliveryOutcome)]) -> Result<()> {
        if outcomes.is_empty() {
            return Ok(());
        }
        let now = self.now();
        let max_attempts = self.engagement_settings().await?.max_attempts;
        let mut tx = self.db.begin().await?;
        // An outcome lost with a crash of the database server re-sends its message (same id):
        // the at-least-once window the claim has already; no flush per e-mail for it.
        tx.relaxed_commit().await?;
        // The common outcome in one statement for the batch; the others row by row.
        let mut sent: Vec<(i64, i64)> = Vec::new();
        for (o, outcome) in outcomes {
            let (status, reason, next) = match outcome {
                DeliveryOutcome::Sent => {
                    sent.push((o.customer_id, o.id));
                    continue;
                }
                DeliveryOutcome::Permanent(r) => ("failed", Some(r.clone()), now),
                DeliveryOutcome::Transient(r) if o.attempt >= max_attempts => {
                    ("failed", Some(format!("{r} (after {} attempts)", o.attempt)), now)
                }
                DeliveryOutcome::Transient(r) => {
                    let secs = (30i64 << (o.attempt - 1).clamp(0, 20)).min(6 * 3600);
                    ("queued", Some(r.clone()), now + Duration::seconds(secs))
                }
            };
            tx.execute(
                query(format!(
                    "UPDATE outbox SET status = $1, reason = $2, next_attempt_at = $3, lease_until = NULL, \
                     updated_at = $4 WHERE customer_id = $5 AND id = $6 AND {STILL_SENDING}",
                ))
                .bind(status)
                .bind(reason)
                .bind(next)
                .bind(now)
                .bind(o.customer_id)
                .bind(o.id),
            )
            .await?;
        }
        if !sent.is_empty() {
            let engine = tx.engine();
            tx.execute(
                query(format!(
                    "UPDATE outbox SET status = 'sent', reason = NULL, next_attempt_at = $1, lease_until = NULL, sent_at = $1, \
                     updated_at = $1 WHERE {} AND {STILL_SENDING}",
                    engine.key_pairs_in("customer_id", "id", 2)
                ))
                .bind(now)
                .bind(serde_json::json!(sent)),
            )
            .await?;
        }
        tx.commit().await
    }

    /// Gives claimed messages that were not tried back to the queue, due now, their claim not
    /// counted as an attempt (a sender that stops a batch before its lease runs out).
    pub async fn release_messages(&self, messages: &[&Outgoing]) -> Result<()> {
        if messages.is_empty() {
            return Ok(());
        }
        let now = self.now();
        let mut tx = self.db.begin().await?;
        for o in messages {
            tx.execute(
                query(format!(
                    "UPDATE outbox SET status = 'queued', attempts = attempts - 1, next_attempt_at = $1, lease_until = NULL, \
                     updated_at = $1 WHERE customer_id = $2 AND id = $3 AND {STILL_SENDING}",
                ))
                .bind(now)
                .bind(o.customer_id)
                .bind(o.id),
            )
            .await?;
        }
        tx.commit().await
    }

    /// A customer's messages, newest first (at most 200).
    pub async fn customer_messages(&self, customer_id: i64) -> Result<Vec<OutboxMessage>> {
        self.db
            .reader()
            .fetch_all(
                query(
                    "SELECT id, customer_id, message_key, channel, status, reason, attempts, message_id, sent_at, next_attempt_at \
                     FROM outbox WHERE customer_id = $1 ORDER BY id DESC LIMIT 200",
                )
                .bind(customer_id),
            )
            .await
    }

    /// The message behind a link token (customer, row, channel, links); NotFound for an unknown token.
    async fn message_of_token(&self, tx: &mut Tx, token: &str) -> Result<(i64, i64, Channel, Vec<String>)> {
        if !(token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit())) {
            return Err(StoreError::NotFound("link"));
        }
        let row: Option<TokenRow> = tx
            .fetch_optional(query("SELECT customer_id, id, channel, links FROM outbox WHERE token_hash = $1").bind(digest(token)))
            .await?;
        let (c, id, ch, links) = row.ok_or(StoreError::NotFound("link"))?;
        Ok((c, id, Channel::parse(&ch)?, links.map(|l| l.0).unwrap_or_default()))
    }

    /// The channel an unsubscribe link would withdraw (for its page).
    pub async fn unsubscribe_channel(&self, token: &str) -> Result<Channel> {
        let mut tx = self.db.begin().await?;
        let (_, _, channel, _) = self.message_of_token(&mut tx, token).await?;
        tx.rollback().await?;
        Ok(channel)
    }

    /// Withdraws the consent of the message's channel (source `unsubscribe`), once; again is a no-op.
    pub async fn unsubscribe(&self, token: &str) -> Result<Channel> {
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let (customer_id, _, channel, _) = self.message_of_token(&mut tx, token).await?;
        withdraw(&mut tx, customer_id, channel, now, "unsubscribe").await?;
        tx.commit().await?;
        Ok(channel)
    }

    /// A click on link `n` of a message: a `click` interaction, and the original URL (only a
    /// URL that was in the message).
    pub async fn track_click(&self, token: &str, n: usize) -> Result<String> {
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let (customer_id, id, channel, links) = self.message_of_token(&mut tx, token).await?;
        let url = links.get(n).cloned().ok_or(StoreError::NotFound("link"))?;
        record_interaction(&mut tx, customer_id, "click", channel, now, &format!("outbox:{id}:{n}")).await?;
        tx.commit().await?;
        Ok(url)
    }

    /// An opened e-mail (the pixel): an `email_open` interaction.
    pub async fn track_open(&self, token: &str) -> Result<()> {
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let (customer_id, id, channel, _) = self.message_of_token(&mut tx, token).await?;
        record_interaction(&mut tx, customer_id, "email_open", channel, now, &format!("outbox:{id}")).await?;
        tx.commit().await
    }

    /// A reply to an SMS from `mobile`: 退订, TD, T or STOP withdraws SMS consent (source
    /// `unsubscribe`); anything else is a `reply` interaction. Returns whether it was an opt-out;
    /// NotFound when no live customer has the number.
    pub async fn inbound_sms(&self, mobile: &str, text: &str) -> Result<bool> {
        let now = self.now();
        let word = text.trim().trim_matches(|c: char| c.is_ascii_punctuation() || "。！".contains(c)).to_uppercase();
        let opt_out = ["退订", "TD", "T", "STOP", "UNSUBSCRIBE"].contains(&word.as_str());
        let ids: Vec<(i64,)> = self
            .db
            .reader()
            .fetch_all(query("SELECT id FROM customers WHERE mobile = $1 AND deleted_at IS NULL ORDER BY id LIMIT 50").bind(mobile))
            .await?;
        if ids.is_empty() {
            return Err(StoreError::NotFound("customer"));
        }
        let mut tx = self.db.begin().await?;
        for (id,) in ids {
            if opt_out {
                withdraw(&mut tx, id, Channel::Sms, now, "unsubscribe").await?;
            } else {
                let payload: String = text.chars().take(1000).collect();
                record_interaction(&mut tx, id, "reply", Channel::Sms, now, &payload).await?;
            }
        }
        tx.commit().await?;
        Ok(opt_out)
    }
}

async fn withdraw(tx: &mut Tx, customer_id: i64, channel: Channel, now: DateTime<Utc>, source: &str) -> Result<()> {
    let current: Option<(bool,)> = tx
        .fetch_optional(
            query("SELECT granted FROM customer_consents WHERE customer_id = $1 AND channel = $2").bind(customer_id).bind(channel.as_str()),
        )
        .await?;
    if current.is_some_and(|c| !c.0) {
        return Ok(());
    }
    upsert_consent(tx, customer_id, channel.as_str(), false, now, source).await?;
    crate::customers::record_change(
        tx,
        customer_id,
        now,
        source,
        &format!("consent.{}", channel.as_str()),
        Some("true".into()),
        Some("false".into()),
    )
    .await?;
    crate::events::append(
        tx,
        customer_id,
        "consent.withdrawn",
        None,
        serde_json::json!({"channel": channel.as_str(), "source": source}),
        now,
    )
    .await?;
    Ok(())
}

async fn record_interaction(tx: &mut Tx, customer_id: i64, kind: &str, channel: Channel, now: DateTime<Utc>, payload: &str) -> Result<()> {
    tx.execute(
        query("INSERT INTO interactions (customer_id, kind, channel, occurred_at, payload) VALUES ($1, $2, $3, $4, $5)")
            .bind(customer_id)
            .bind(kind)
            .bind(channel.as_str())
            .bind(now)
            .bind(payload),
    )
    .await?;
    Ok(())
}

/// Customer, row, channel and links of the message behind a token.
type TokenRow = (i64, i64, String, Option<Json<Vec<String>>>);

/// The columns of an outbox row a sender claims.
const ROW_COLUMNS: &str =
    "customer_id, id, message_key, channel, purpose, message_id, content, status, attempts, next_attempt_at, lease_until, recipient_address";

/// Locks the customers of `due` (sorted by customer and row) and then their due rows, skipping
/// what another sender holds, and reads them: the contacts by customer, the rows in order.
/// Where one statement may lock rows of many customers, two statements; on Citus a customer
/// and a row at a time, each statement on one shard.
async fn lock_due(tx: &mut Tx, due: &[Due]) -> Result<(HashMap<i64, Contact>, Vec<Row>)> {
    let engine = tx.engine();
    let (address_sql, address_key) = engine.json_text("attributes", 2, "address");
    let contact_sql = |filter: &str| {
        format!(
            "SELECT id, name, mobile, email, wechat_id, city, {address_sql} AS address, deleted_at FROM customers WHERE {filter}{}",
            engine.row_lock_skip()
        )
    };
    let row_sql = |filter: &str| format!("SELECT {ROW_COLUMNS} FROM outbox WHERE {filter}{}", engine.claim_lock());
    let mut contacts: HashMap<i64, Contact> = HashMap::new();
    let mut rows: Vec<Row> = Vec::with_capacity(due.len());
    if tx.locks_across_customers() {
        let mut customers: Vec<i64> = due.iter().map(|d| d.customer_id).collect();
        customers.dedup();
        let found: Vec<Contact> = tx
            .fetch_all(
                query(contact_sql(&format!("id IN ({}) ORDER BY id", engine.json_ints(1))))
                    .bind(serde_json::json!(customers))
                    .bind(address_key),
            )
            .await?;
        contacts.extend(found.into_iter().map(|c| (c.id, c)));
        let pairs: Vec<(i64, i64)> = due.iter().filter(|d| contacts.contains_key(&d.customer_id)).map(|d| (d.customer_id, d.id)).collect();
        if pairs.is_empty() {
            return Ok((contacts, rows));
        }
        rows = tx
            .fetch_all(
                query(row_sql(&format!("{} ORDER BY customer_id, id", engine.key_pairs_in("customer_id", "id", 1))))
                    .bind(serde_json::json!(pairs)),
            )
            .await?;
    } else {
        let mut last: Option<i64> = None;
        for d in due {
            if last != Some(d.customer_id) {
                last = Some(d.customer_id);
                let c: Option<Contact> =
                    tx.fetch_optional(query(contact_sql("id = $1")).bind(d.customer_id).bind(address_key.clone())).await?;
                if let Some(c) = c {
                    contacts.insert(c.id, c);
                }
            }
            if !contacts.contains_key(&d.customer_id) {
                continue;
            }
            let row: Option<Row> = tx.fetch_optional(query(row_sql("customer_id = $1 AND id = $2")).bind(d.customer_id).bind(d.id)).await?;
            rows.extend(row);
        }
    }
    Ok((contacts, rows))
}

/// What the marketing rules need to know of a batch's customers, read at the claim: whose
/// consent each channel has, and how many marketing messages each was sent in the last 7 and
/// 30 days.
struct BatchPolicy {
    consents: std::collections::HashSet<(i64, String)>,
    caps: HashMap<i64, (i64, i64)>,
}

impl BatchPolicy {
    async fn read(tx: &mut Tx, rows: &[Row], contacts: &HashMap<i64, Contact>, now: DateTime<Utc>) -> Result<BatchPolicy> {
        // The status is tested in the sums, not the WHERE: there SQLite's planner took the
        // `(status, next_attempt_at)` index and read every sent message for each batch (127 ms
        // a batch after 100,000 sends, growing), where the customers' few rows are what counts.
        let sent = "status IN ('sending', 'sent')";
        let mut customers: Vec<i64> = rows
            .iter()
            .filter(|r| r.purpose == Purpose::Marketing.as_str() && contacts.get(&r.customer_id).is_some_and(|c| c.deleted_at.is_none()))
            .map(|r| r.customer_id)
            .collect();
        customers.dedup();
        let mut policy = BatchPolicy { consents: Default::default(), caps: HashMap::new() };
        if customers.is_empty() {
            return Ok(policy);
        }
        let engine = tx.engine();
        let ids = serde_json::json!(customers);
        let consents: Vec<(i64, String, bool)> = tx
            .fetch_all(
                query(format!(
                    "SELECT customer_id, channel, granted FROM customer_consents WHERE customer_id IN ({})",
                    engine.json_ints(1)
                ))
                .bind(ids.clone()),
            )
            .await?;
        policy.consents = consents.into_iter().filter(|c| c.2).map(|c| (c.0, c.1)).collect();
        let caps: Vec<(i64, i64, i64)> = tx
            .fetch_all(
                query(format!(
                    "SELECT customer_id, COALESCE(SUM(CASE WHEN {sent} AND COALESCE(sent_at, updated_at) > $2 THEN 1 ELSE 0 END), 0), \
                     COALESCE(SUM(CASE WHEN {sent} THEN 1 ELSE 0 END), 0) \
                     FROM outbox WHERE customer_id IN ({}) AND purpose = 'marketing' \
                     AND COALESCE(sent_at, updated_at) > $3 GROUP BY customer_id",
                    engine.json_ints(1)
                ))
                .bind(ids)
                .bind(now - Duration::days(7))
                .bind(now - Duration::days(30)),
            )
            .await?;
        policy.caps = caps.into_iter().map(|(c, week, month)| (c, (week, month))).collect();
        Ok(policy)
    }
}

/// "The row is still `sending`" in a form no index answers: after a reset or a big batch,
/// PostgreSQL's statistics on `outbox_due (status, …)` lag, and with `status = 'sending'` it
/// ANDed that index's bitmap (142,500 entries, many dead) into every row's primary-key lookup:
/// 1.3 s to record a batch of 500 sent messages, against 4 ms through the key alone
/// (`EXPLAIN ANALYZE` on the 1 M-customer bench database). `status` is never NULL.
const STILL_SENDING: &str = "COALESCE(status, '') = 'sending'";

/// What deciding one message of a batch needs besides the message.
struct ClaimContext<'a> {
    now: DateTime<Utc>,
    settings: &'a EngagementSettings,
    secret: &'a str,
    base_url: &'a str,
    template: Option<&'a (MessageTemplate, personal::Wanted)>,
    consents: &'a std::collections::HashSet<(i64, String)>,
    caps: &'a mut HashMap<i64, (i64, i64)>,
    variables: &'a HashMap<i64, personal::PersonalVariables>,
}

enum Claim {
    Gone,
    Skipped,
    Deferred,
    Failed,
    /// Claimed: the row to mark `sending` (with the batch's others) and the message.
    Send(Sending, Box<Outgoing>),
}

/// A claimed message's row as the claim leaves it: `sending`, leased, with its link token's
/// hash and its tracked links.
struct Sending {
    customer_id: i64,
    id: i64,
    token_hash: String,
    links: Vec<String>,
}

/// Marks a batch's claimed rows `sending` (one attempt more, leased until `lease_until`): in
/// one statement where one statement may write many customers' rows (SQLite, PostgreSQL),
/// else row by row, each on its customer's shard (Citus). A statement a row cost SQLite
/// ~130 µs each at 1 M customers (a worker-thread round trip and its wake-up per row), a
/// fifth of the file adapter's time (issue 12).
async fn mark_sending(tx: &mut Tx, rows: &[Sending], lease_until: DateTime<Utc>, now: DateTime<Utc>) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    if tx.locks_across_customers() {
        let engine = tx.engine();
        let tuples: Vec<serde_json::Value> = rows.iter().map(|r| serde_json::json!([r.customer_id, r.id, r.token_hash, r.links])).collect();
        tx.execute(
            query(format!(
                "UPDATE outbox SET status = 'sending', attempts = attempts + 1, lease_until = $1, token_hash = j.c2, links = j.c3, \
                 updated_at = $2 FROM ({}) AS j WHERE outbox.customer_id = j.c0 AND outbox.id = j.c1",
                engine.json_tuples(3, &["BIGINT", "BIGINT", "TEXT", "JSON"])
            ))
            .bind(lease_until)
            .bind(now)
            .bind(serde_json::Value::Array(tuples)),
        )
        .await?;
        return Ok(());
    }
    for r in rows {
        tx.execute(
            query(
                "UPDATE outbox SET status = 'sending', attempts = attempts + 1, lease_until = $1, token_hash = $2, links = $3, \
                 updated_at = $4 WHERE customer_id = $5 AND id = $6",
            )
            .bind(lease_until)
            .bind(r.token_hash.as_str())
            .bind(serde_json::json!(r.links))
            .bind(now)
            .bind(r.customer_id)
            .bind(r.id),
        )
        .await?;
    }
    Ok(())
}
