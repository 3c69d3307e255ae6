//! Invitations: one per customer and occasion, by hand (a list of customers or a segment; the
//! links are answered once to the caller) or by a survey's trigger (the scheduler: N days after
//! a completed order, when a ticket is resolved, every N days for a segment), never the same
//! customer twice within the survey's re-contact limit.
//!
//! Exactly once: an invitation is keyed by (customer, survey, occasion), so a second scheduler,
//! a retry or a crash never makes two. Triggers read the domain events (`order.created`,
//! `ticket.resolved`) from the survey's cursor; the cursor only passes events older than a
//! minute, so an event whose transaction committed late is read on the next round.
//! A triggered invitation is delivered afterwards (`queue_invitations`): its link is made and it
//! is put in the outbox as a transactional message in the transaction that marks it sent, so it
//! leaves through the configured channels (the file adapter when none is) exactly once.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{survey_in, SurveyRow, SURVEY_SELECT};
use crate::db::{query, Tx};
use crate::engagement::outbox::{self, NewMessage};
use crate::engagement::templates::Rendered;
use crate::engagement::{Channel, Purpose};
use crate::events::EventFilter;
use crate::links::{self, LinkKind};
use crate::users::{digest, Actor};
use crate::{audit, Result, Store, StoreError};

/// Whom to invite: `customer_ids` or a `segment`'s members (at most 10,000 per request).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvitationRequest {
    /// Customers by id.
    pub customer_ids: Option<Vec<i64>>,
    /// A segment's key (its members now).
    pub segment: Option<String>,
}

/// An invitation made by hand, with its link (shown once).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Invited {
    /// The customer.
    pub customer_id: i64,
    /// The invitation.
    pub invitation_id: i64,
    /// The customer's single-use link.
    pub url: String,
    /// The link's token (the server makes `url` of it).
    #[serde(skip)]
    pub token: String,
}

/// A customer not invited, and why.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Skipped {
    /// The customer.
    pub customer_id: i64,
    /// `unknown_customer` (no such live customer) or `recently_invited` (within the re-contact
    /// limit).
    pub reason: String,
}

/// What a request for invitations did.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InviteOutcome {
    /// Invited now.
    pub invited: Vec<Invited>,
    /// Not invited.
    pub skipped: Vec<Skipped>,
}

/// What the triggers did in one round.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct TriggerReport {
    /// Invitations made.
    pub invited: u64,
    /// Invitations put in the outbox.
    pub delivered: u64,
}

/// The occasion an invitation is for, with what it is about.
pub(crate) struct Occasion<'a> {
    pub source: &'a str,
    pub ticket_id: Option<i64>,
    pub agent_id: Option<i64>,
    pub store: Option<&'a str>,
}

/// Invites one customer in `tx`: None when they were invited within the re-contact limit or
/// for this occasion already; else the invitation's id.
pub(crate) async fn invite_in(
    tx: &mut Tx,
    survey: &SurveyRow,
    customer_id: i64,
    o: &Occasion<'_>,
    sent: bool,
    now: DateTime<Utc>,
) -> Result<Option<i64>> {
    if survey.recontact_days > 0 {
        let recent: Option<(i64,)> = tx
            .fetch_optional(
                query("SELECT id FROM survey_invitations WHERE customer_id = $1 AND survey_id = $2 AND created_at > $3 LIMIT 1")
                    .bind(customer_id)
                    .bind(survey.id)
                    .bind(now - Duration::days(survey.recontact_days)),
            )
            .await?;
        if recent.is_some() {
            return Ok(None);
        }
    }
    let row: Option<(i64,)> = tx
        .fetch_optional(
            query(
                "INSERT INTO survey_invitations (customer_id, survey_id, source, ticket_id, agent_id, store, created_at, expires_at, sent_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (customer_id, survey_id, source) DO NOTHING RETURNING id",
            )
            .bind(customer_id)
            .bind(survey.id)
            .bind(o.source)
            .bind(o.ticket_id)
            .bind(o.agent_id)
            .bind(o.store)
            .bind(now)
            .bind(now + Duration::days(survey.expires_days))
            .bind(if sent { Some(now) } else { None }),
        )
        .await?;
    if let Some((id,)) = row {
        crate::events::append(
            tx,
            customer_id,
            "survey.invited",
            Some(id),
            serde_json::json!({"survey_id": survey.id, "source": o.source}),
            now,
        )
        .await?;
    }
    Ok(row.map(|r| r.0))
}

/// Invites one customer to survey `survey_id` for an occasion of another module (`event:<id>`:
/// an event's attendees) in `tx`: the invitation's id and the days its link works; None when
/// they were invited for this occasion already or within the re-contact limit. A paused survey
/// is refused (409).
pub(crate) async fn invite_for(
    tx: &mut Tx,
    survey_id: i64,
    customer_id: i64,
    source: &str,
    now: DateTime<Utc>,
) -> Result<Option<(i64, i64)>> {
    let survey = survey_in(tx, survey_id).await?;
    if !survey.active {
        return Err(StoreError::State("the survey is paused".into()));
    }
    let occasion = Occasion { source, ticket_id: None, agent_id: None, store: None };
    Ok(invite_in(tx, &survey, customer_id, &occasion, true, now).await?.map(|id| (id, survey.expires_days)))
}

/// Events older than this are final: no transaction that took an earlier id is still open.
const SETTLED: Duration = Duration::seconds(60);

/// A customer's name, e-mail, mobile and WeChat id.
type Addresses = (String, Option<String>, Option<String>, Option<String>);

impl Store {
    /// Invites customers by hand; answers each link once.
    pub async fn invite(&self, actor: &Actor, survey_id: i64, req: InvitationRequest) -> Result<InviteOutcome> {
        let ids = match (req.customer_ids, req.segment) {
            (Some(ids), None) => ids,
            (None, Some(seg)) => {
                let s = self.segment(&seg).await.map_err(|e| match e {
                    StoreError::NotFound(_) => StoreError::invalid("segment", format!("no segment {seg}")),
                    other => other,
                })?;
                self.segment_customer_ids(actor, &s.rule).await?
            }
            _ => return Err(StoreError::invalid("customer_ids", "give customer_ids or a segment, not both")),
        };
        if ids.is_empty() {
            return Err(StoreError::invalid("customer_ids", "nobody to invite"));
        }
        if ids.len() > 10_000 {
            return Err(StoreError::invalid("customer_ids", format!("{} customers: at most 10,000 per request", ids.len())));
        }
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let survey = survey_in(&mut tx, survey_id).await?;
        if !survey.active {
            return Err(StoreError::State("the survey is paused".into()));
        }
        let source = format!("manual:{}", now.timestamp_micros());
        let mut out = InviteOutcome { invited: Vec::new(), skipped: Vec::new() };
        let mut seen = std::collections::HashSet::new();
        for customer_id in ids {
            if !seen.insert(customer_id) {
                continue;
            }
            // Only customers in the caller's scope (crate::access): others do not exist for it.
            let live: Option<(i64,)> = tx
                .fetch_optional(
                    query(format!(
                        "SELECT c.id FROM customers c WHERE c.id = $1 AND c.deleted_at IS NULL AND {}",
                        crate::access::CustomerScope::of(actor).sql("c")
                    ))
                    .bind(customer_id),
                )
                .await?;
            if live.is_none() {
                out.skipped.push(Skipped { customer_id, reason: "unknown_customer".into() });
                continue;
            }
            let occasion = Occasion { source: &source, ticket_id: None, agent_id: None, store: None };
            match invite_in(&mut tx, &survey, customer_id, &occasion, true, now).await? {
                Some(invitation_id) => {
                    let token = links::create(&mut tx, LinkKind::Survey, customer_id, invitation_id, now, survey.expires_days).await?;
                    out.invited.push(Invited { customer_id, invitation_id, url: String::new(), token });
                }
                None => out.skipped.push(Skipped { customer_id, reason: "recently_invited".into() }),
            }
        }
        audit::record(
            &mut tx,
            now,
            &actor.key,
            "invite",
            "survey",
            Some(survey_id.to_string()),
            Some(format!("invited={}", out.invited.len())),
        )
        .await?;
        tx.commit().await?;
        Ok(out)
    }

    /// Runs the surveys' triggers: invitations for the occasions that are due.
    pub async fn run_survey_triggers(&self) -> Result<u64> {
        let now = self.now();
        let surveys: Vec<SurveyRow> = self.db.reader().fetch_all(query(format!("{SURVEY_SELECT} WHERE active ORDER BY id"))).await?;
        let mut invited = 0;
        for s in surveys {
            let Some(trigger) = s.trigger.0.clone() else { continue };
            invited += match trigger.on.as_str() {
                "ticket_resolved" => self.follow_events(&s, "ticket.resolved", Duration::zero(), now).await?,
                "order_completed" => self.follow_events(&s, "order.created", Duration::days(trigger.days.unwrap_or(0)), now).await?,
                "periodic" => {
                    self.periodic_round(&s, trigger.segment.as_deref().unwrap_or(""), trigger.every_days.unwrap_or(30), now).await?
                }
                _ => 0,
            };
        }
        Ok(invited)
    }

    /// Reads `kind` events from the survey's cursor and invites for those at least `delay` old.
    async fn follow_events(&self, s: &SurveyRow, kind: &str, delay: Duration, now: DateTime<Utc>) -> Result<u64> {
        let mut invited = 0;
        let mut after = s.event_cursor;
        let mut cursor = s.event_cursor;
        let mut settled = true;
        'pages: loop {
            let events =
                self.events(&EventFilter { kind: Some(kind.into()), customer_id: None, subject_id: None, after: Some(after) }, 500).await?;
            let full = events.len() == 500;
            for e in events {
                if e.occurred_at > now - delay {
                    break 'pages;
                }
                after = e.id;
                if settled && e.occurred_at <= now - delay - SETTLED {
                    cursor = e.id;
                } else {
                    settled = false;
                }
                let Some(subject) = e.subject_id else { continue };
                let mut tx = self.db.begin().await?;
                let (source, ticket_id, agent_id, store) = if kind == "ticket.resolved" {
                    let t: Option<(Option<i64>, Option<String>)> = tx
                        .fetch_optional(
                            query("SELECT assignee_id, store FROM tickets WHERE customer_id = $1 AND id = $2")
                                .bind(e.customer_id)
                                .bind(subject),
                        )
                        .await?;
                    let Some((agent, store)) = t else { continue };
                    (format!("ticket:{subject}"), Some(subject), agent, store)
                } else {
                    if e.payload.get("status").and_then(|v| v.as_str()) != Some("completed") {
                        continue;
                    }
                    (format!("order:{subject}"), None, None, e.payload.get("store").and_then(|v| v.as_str()).map(str::to_owned))
                };
                let live: Option<(i64,)> =
                    tx.fetch_optional(query("SELECT id FROM customers WHERE id = $1 AND deleted_at IS NULL").bind(e.customer_id)).await?;
                if live.is_none() {
                    continue;
                }
                let occasion = Occasion { source: &source, ticket_id, agent_id, store: store.as_deref() };
                if invite_in(&mut tx, s, e.customer_id, &occasion, false, now).await?.is_some() {
                    invited += 1;
                }
                tx.commit().await?;
            }
            if !full {
                break;
            }
        }
        if cursor > s.event_cursor {
            let mut tx = self.db.begin().await?;
            tx.execute(query("UPDATE surveys SET event_cursor = $1 WHERE id = $2 AND event_cursor < $1").bind(cursor).bind(s.id)).await?;
            tx.commit().await?;
        }
        Ok(invited)
    }

    /// A periodic survey's round for its segment, when `every_days` have passed since the last.
    async fn periodic_round(&self, s: &SurveyRow, segment: &str, every_days: i64, now: DateTime<Utc>) -> Result<u64> {
        let today = now.with_timezone(&self.config.business_tz).date_naive();
        let day = i64::from(chrono::Datelike::num_days_from_ce(&today));
        // The cursor holds the day of the last round (0: none yet).
        if s.event_cursor > 0 && day - s.event_cursor < every_days {
            return Ok(0);
        }
        let seg = match self.segment(segment).await {
            Ok(seg) => seg,
            // A segment deleted since: nothing to do until the survey is changed.
            Err(StoreError::NotFound(_)) => return Ok(0),
            Err(e) => return Err(e),
        };
        let members = self.segment_customer_ids(&Actor::cli(), &seg.rule).await?;
        let source = format!("periodic:{today}");
        let mut invited = 0;
        for chunk in members.chunks(500) {
            let mut tx = self.db.begin().await?;
            for &customer_id in chunk {
                let occasion = Occasion { source: &source, ticket_id: None, agent_id: None, store: None };
                if invite_in(&mut tx, s, customer_id, &occasion, false, now).await?.is_some() {
                    invited += 1;
                }
            }
            tx.commit().await?;
        }
        let mut tx = self.db.begin().await?;
        tx.execute(query("UPDATE surveys SET event_cursor = $1 WHERE id = $2").bind(day).bind(s.id)).await?;
        tx.commit().await?;
        Ok(invited)
    }

    /// Puts the invitations the triggers made in the outbox, each as one transactional message
    /// (key `survey:<invitation id>`) on the customer's e-mail, else their mobile, else WeChat,
    /// with its link, in the transaction that marks it sent: a second scheduler or a crash
    /// neither doubles nor loses one, and the outbox's channels, retries and quiet hours take
    /// it from there. The link's token is derived from the message's key
    /// ([`outbox::public_link_token`]): only its digest is stored, and the sender writes the
    /// link into the message at every attempt.
    pub async fn queue_invitations(&self) -> Result<u64> {
        let now = self.now();
        let secret = self.link_secret().await?;
        let mut queued = 0;
        loop {
            let due: Vec<(i64, i64)> = self
                .db
                .reader()
                .fetch_all(
                    query("SELECT customer_id, id FROM survey_invitations WHERE sent_at IS NULL AND expires_at > $1 ORDER BY id LIMIT 500")
                        .bind(now),
                )
                .await?;
            let mut done = 0;
            let mut tx = self.db.begin().await?;
            for &(customer_id, id) in &due {
                let claim = tx.engine().claim_lock();
                let claimed: Option<(i64,)> = tx
                    .fetch_optional(
                        query(format!(
                            "SELECT survey_id FROM survey_invitations WHERE customer_id = $1 AND id = $2 AND sent_at IS NULL{claim}"
                        ))
                        .bind(customer_id)
                        .bind(id),
                    )
                    .await?;
                let Some((survey_id,)) = claimed else { continue };
                let survey = survey_in(&mut tx, survey_id).await?;
                let contact: Option<Addresses> = tx
                    .fetch_optional(
                        query("SELECT name, email, mobile, wechat_id FROM customers WHERE id = $1 AND deleted_at IS NULL")
                            .bind(customer_id),
                    )
                    .await?;
                let expires_at = now + Duration::days(survey.expires_days);
                tx.execute(
                    query("UPDATE survey_invitations SET sent_at = $1, expires_at = $2 WHERE customer_id = $3 AND id = $4")
                        .bind(now)
                        .bind(expires_at)
                        .bind(customer_id)
                        .bind(id),
                )
                .await?;
                done += 1;
                // Erased meanwhile: marked sent, nothing goes out.
                let Some((name, email, mobile, wechat_id)) = contact else { continue };
                let has = |v: &Option<String>| v.as_deref().is_some_and(|a| !a.trim().is_empty());
                // No address at all: an SMS the sender records as skipped (`no_address`).
                let channel = if has(&email) {
                    Channel::Email
                } else if has(&mobile) || !has(&wechat_id) {
                    Channel::Sms
                } else {
                    Channel::Wechat
                };
                let message_key = format!("survey:{id}");
                let token = outbox::public_link_token(&secret, &message_key, customer_id);
                links::insert(&mut tx, LinkKind::Survey, customer_id, id, now, survey.expires_days, &digest(&token)).await?;
                let url = outbox::PUBLIC_LINK;
                let until = expires_at.with_timezone(&self.config.business_tz).format("%Y-%m-%d %H:%M");
                let text = format!(
                    "{name}，您好！邀请您花一分钟告诉我们您的感受：\n{url}\n\nHello {name}, please tell us how we did (one minute):\n\
                     {url}?lang=en\n\n（链接有效期至 {until} / link valid until {until}）"
                );
                let m = NewMessage {
                    customer_id,
                    message_key,
                    channel,
                    purpose: Purpose::Transactional,
                    template_id: None,
                    campaign_id: None,
                    content: Some(Rendered { subject: Some(survey.name.clone()), text, html: None }),
                    skipped: None,
                    not_before: now,
                };
                outbox::enqueue(&mut tx, &m, now).await?;
            }
            tx.commit().await?;
            queued += done;
            if due.len() < 500 || done == 0 {
                return Ok(queued);
            }
        }
    }
}
