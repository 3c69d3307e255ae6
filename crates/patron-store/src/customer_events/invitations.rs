//! Invitations to an event and its post-event survey, both through the outbox.
//!
//! **Invitations.** The members of a segment now, minus the global control group, those without
//! consent on the channel and those over a frequency cap (counted, not invited: a later run
//! invites them once they may be reached), each get one invitation row — keyed (customer, event),
//! so a rerun, or two at once, invites nobody twice — and, in the same transaction, one marketing
//! message under the outbox key `customer_event:<id>` (consent, the global control group, caps and
//! quiet hours are checked again when it is sent). The message is written out with the
//! placeholder [`PUBLIC_LINK`] where the invitee's registration link goes; the link's token is
//! derived from the link secret when the message is claimed (see `engagement::outbox`), so the
//! token is never stored — only its digest, in `customer_event_tokens`.
//!
//! **Post-event survey.** Each attendee is invited to the event's survey for the occasion
//! `event:<id>` (the survey's own rules: once per occasion, not within its re-contact limit),
//! with its single-use link (digest in `public_links`) in a transactional message under the key
//! `survey:<invitation id>`.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{event_in, invitation_key, EventRow};
use crate::db::{query, Tx};
use crate::engagement::campaigns::{consented_channel, preferred_channel, CampaignChannel};
use crate::engagement::outbox::{enqueue, public_link_token, NewMessage, PUBLIC_LINK};
use crate::engagement::templates::Rendered;
use crate::engagement::{Channel, Purpose};
use crate::segments::BUILTIN_PREFIX;
use crate::users::{digest, Actor};
use crate::{audit, events, Result, Store, StoreError};

/// At most this many invitees per request.
pub const MAX_AUDIENCE: usize = 20_000;

/// Whom to invite and how.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InviteRequest {
    /// A saved segment's key (`42`, `builtin:abcd:a`) or a segment rule (`city = "上海"`).
    #[schema(min_length = 1, max_length = 4000)]
    pub segment: String,
    /// `email` (the default), `sms`, `wechat`, `mail` or `preferred` (each customer's preferred
    /// consented channel).
    pub channel: Option<CampaignChannel>,
}

/// What an invitation run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct InvitationOutcome {
    /// Live members of the segment (in the caller's scope) now.
    pub audience: i64,
    /// Invited by this run (an invitation and its message).
    pub invited: i64,
    /// Invited by an earlier run (nothing sent again).
    pub already_invited: i64,
    /// In the global control group (no marketing).
    pub global_control: i64,
    /// Without consent on the channel.
    pub no_consent: i64,
    /// Over a frequency cap now.
    pub capped: i64,
}

/// How to send the post-event survey.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventSurveyRequest {
    /// `email` (the default), `sms`, `wechat` or `mail`.
    pub channel: Option<Channel>,
}

/// What sending the post-event survey did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct EventSurveyOutcome {
    /// Attendees checked in (live customers).
    pub attendees: i64,
    /// Invited to the survey now (a message each).
    pub sent: i64,
    /// Invited for this event already, or within the survey's re-contact limit.
    pub skipped: i64,
}

/// The business-time-zone wording of an event's time: `2026-07-15 14:00–16:30`.
fn when(e: &EventRow, tz: chrono_tz::Tz) -> String {
    let (s, t) = (e.starts_at.with_timezone(&tz), e.ends_at.with_timezone(&tz));
    if s.date_naive() == t.date_naive() {
        format!("{}–{}", s.format("%Y-%m-%d %H:%M"), t.format("%H:%M"))
    } else {
        format!("{} – {}", s.format("%Y-%m-%d %H:%M"), t.format("%Y-%m-%d %H:%M"))
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The invitation as written into the outbox (zh-CN, then English), the link left as
/// [`PUBLIC_LINK`].
fn invitation_content(e: &EventRow, channel: Channel, tz: chrono_tz::Tz) -> Rendered {
    let when = when(e, tz);
    let place = e.place.clone().unwrap_or_else(|| "线上 / online".into());
    match channel {
        Channel::Sms | Channel::Wechat => {
            Rendered {
                subject: None, text: format!("诚邀您参加「{}」，{when}，{place}。报名：{PUBLIC_LINK}", e.title), html: None
            }
        }
        _ => {
            let text = format!(
                "诚邀您参加「{title}」\n时间：{when}\n地点：{place}\n\n{desc}\n\n报名或取消报名：{PUBLIC_LINK}\n\n\
                 You are invited to “{title}”, {when}, {place}. Register or cancel: {PUBLIC_LINK}\n",
                title = e.title,
                desc = e.description,
            );
            let html = format!(
                "<p>诚邀您参加「{title}」</p><p>时间：{when}<br>地点：{place}</p><p>{desc}</p>\
                 <p><a href=\"{PUBLIC_LINK}\">报名或取消报名 · Register or cancel</a></p>",
                title = html_escape(&e.title),
                place = html_escape(&place),
                desc = html_escape(&e.description).replace('\n', "<br>"),
            );
            Rendered { subject: Some(format!("活动邀请：{} · Invitation", e.title)), text, html: Some(html) }
        }
    }
}

/// The survey message (zh-CN, then English), the link left as [`PUBLIC_LINK`].
fn survey_content(e: &EventRow, channel: Channel) -> Rendered {
    match channel {
        Channel::Email | Channel::Mail => Rendered {
            subject: Some(format!("感谢参加「{}」· 请留下您的意见", e.title)),
            text: format!(
                "感谢您参加「{title}」。请花一分钟告诉我们您的感受：{PUBLIC_LINK}\n\n\
                 Thank you for attending “{title}”. Please tell us how it was: {PUBLIC_LINK}\n",
                title = e.title
            ),
            html: Some(format!(
                "<p>感谢您参加「{title}」。</p><p><a href=\"{PUBLIC_LINK}\">请告诉我们您的感受 · Tell us how it was</a></p>",
                title = html_escape(&e.title)
            )),
        },
        _ => Rendered { subject: None, text: format!("感谢参加「{}」，请留下您的意见：{PUBLIC_LINK}", e.title), html: None },
    }
}

/// Registers the digest of an invitee's link token (derived, never stored).
async fn store_token(tx: &mut Tx, secret: &str, event_id: i64, customer_id: i64) -> Result<()> {
    let token = public_link_token(secret, &invitation_key(event_id), customer_id);
    tx.execute(
        query(
            "INSERT INTO customer_event_tokens (token_hash, customer_id, event_id) VALUES ($1, $2, $3) ON CONFLICT (token_hash) DO NOTHING",
        )
        .bind(digest(&token))
        .bind(customer_id)
        .bind(event_id),
    )
    .await?;
    Ok(())
}

impl Store {
    /// Invites a segment's members to an event (see the module docs); audited. The event must be
    /// scheduled and not started.
    pub async fn invite_to_customer_event(&self, actor: &Actor, event_id: i64, req: InviteRequest) -> Result<InvitationOutcome> {
        let now = self.now();
        let event = self.customer_event(event_id).await?;
        if event.status != "scheduled" {
            return Err(StoreError::State("the event is cancelled".into()));
        }
        if event.starts_at <= now {
            return Err(StoreError::State("the event has started: invitations are closed".into()));
        }
        let segment = req.segment.trim();
        if segment.is_empty() || segment.chars().count() > 4000 {
            return Err(StoreError::invalid("segment", "a saved segment's key or a rule of 1 to 4000 characters"));
        }
        let rule = if segment.starts_with(BUILTIN_PREFIX) || segment.bytes().all(|b| b.is_ascii_digit()) {
            self.segment(segment)
                .await
                .map_err(|e| match e {
                    StoreError::NotFound(_) => StoreError::invalid("segment", format!("no segment with key {segment:?}")),
                    e => e,
                })?
                .rule
        } else {
            segment.to_owned()
        };
        crate::segments::parse_rule(&rule).map_err(|e| StoreError::invalid("segment", e.to_string()))?;
        let seg = self.segment_sql(actor, &rule, 5).map_err(|e| match e {
            StoreError::Invalid { message, .. } => StoreError::invalid("segment", message),
            e => e,
        })?;
        let channel = req.channel.unwrap_or(CampaignChannel::Email);
        let settings = self.engagement_settings().await?;
        let secret = self.link_secret().await?;
        let tz = self.config.business_tz;

        // Who, on which channel (NULL: no consent), whether over a cap, the tier — one query.
        let (joins, channel_expr) = match channel.fixed() {
            Some(ch) => consented_channel("c", &[ch]),
            None => preferred_channel("c"),
        };
        let mut q = query(format!(
            "SELECT c.id, {channel_expr} AS channel, COALESCE(mc.week, 0) >= $3 OR COALESCE(mc.month, 0) >= $4 AS capped, ts.abcd_tier \
             FROM {from} {joins} \
             LEFT JOIN customer_scores ts ON ts.customer_id = c.id \
             LEFT JOIN (SELECT customer_id, SUM(CASE WHEN COALESCE(sent_at, updated_at) > $1 THEN 1 ELSE 0 END) AS week, COUNT(*) AS month \
                 FROM outbox WHERE purpose = 'marketing' AND status IN ('sending', 'sent') AND COALESCE(sent_at, updated_at) > $2 \
                 GROUP BY customer_id) mc ON mc.customer_id = c.id \
             WHERE {cond} ORDER BY c.id",
            from = seg.from,
            cond = seg.condition,
        ))
        .bind(now - Duration::days(7))
        .bind(now - Duration::days(30))
        .bind(settings.cap_7_days)
        .bind(settings.cap_30_days);
        for a in seg.args {
            q.push(a);
        }
        let members: Vec<(i64, Option<String>, bool, Option<String>)> = self.db.reader().fetch_all(q).await?;
        if members.len() > MAX_AUDIENCE {
            return Err(StoreError::invalid("segment", format!("{} customers: at most {MAX_AUDIENCE} per invitation", members.len())));
        }
        let mut out = InvitationOutcome { audience: members.len() as i64, ..Default::default() };
        let mut eligible: Vec<(i64, Channel, Option<String>)> = Vec::new();
        for (id, ch, capped, tier) in members {
            if settings.in_global_control(id) {
                out.global_control += 1;
            } else if let Some(ch) = ch {
                if capped {
                    out.capped += 1;
                } else {
                    eligible.push((id, Channel::parse(&ch)?, tier));
                }
            } else {
                out.no_consent += 1;
            }
        }
        let key = invitation_key(event_id);
        let mut contents = std::collections::HashMap::new();
        for chunk in eligible.chunks(500) {
            let mut tx = self.db.begin().await?;
            // The definition as it is now, read in the transaction.
            let row = event_in(&mut tx, event_id).await?;
            for (customer_id, ch, tier) in chunk {
                let made = tx
                    .execute(
                        query(
                            "INSERT INTO customer_event_invitations (customer_id, event_id, channel, tier, invited_at) VALUES ($1, $2, $3, $4, $5) \
                             ON CONFLICT (customer_id, event_id) DO NOTHING",
                        )
                        .bind(*customer_id)
                        .bind(event_id)
                        .bind(ch.as_str())
                        .bind(tier.clone())
                        .bind(now),
                    )
                    .await?;
                if made == 0 {
                    out.already_invited += 1;
                    continue;
                }
                store_token(&mut tx, &secret, event_id, *customer_id).await?;
                let content = contents.entry(*ch).or_insert_with(|| invitation_content(&row, *ch, tz)).clone();
                enqueue(
                    &mut tx,
                    &NewMessage {
                        customer_id: *customer_id,
                        message_key: key.clone(),
                        channel: *ch,
                        purpose: Purpose::Marketing,
                        template_id: None,
                        campaign_id: None,
                        content: Some(content),
                        skipped: None,
                        not_before: now,
                    },
                    now,
                )
                .await?;
                events::append(
                    &mut tx,
                    *customer_id,
                    "customer_event.invited",
                    Some(event_id),
                    serde_json::json!({"channel": ch.as_str()}),
                    now,
                )
                .await?;
                out.invited += 1;
            }
            tx.commit().await?;
        }
        let mut tx = self.db.begin().await?;
        audit::record(
            &mut tx,
            now,
            &actor.key,
            "invite",
            "customer_event",
            Some(event_id.to_string()),
            Some(format!("audience={} invited={} already={}", out.audience, out.invited, out.already_invited)),
        )
        .await?;
        tx.commit().await?;
        Ok(out)
    }

    /// Sends the event's survey to its attendees (see the module docs); audited. The event must
    /// have ended and name a survey. Again: only attendees not invited yet (checked in since).
    pub async fn send_customer_event_survey(&self, actor: &Actor, event_id: i64, req: EventSurveyRequest) -> Result<EventSurveyOutcome> {
        let now = self.now();
        let event = self.customer_event(event_id).await?;
        let Some(survey_id) = event.survey_id else {
            return Err(StoreError::invalid("survey_id", "the event names no post-event survey (PATCH it with survey_id)"));
        };
        if event.ends_at > now {
            return Err(StoreError::State("the event has not ended yet".into()));
        }
        let channel = req.channel.unwrap_or(Channel::Email);
        let secret = self.link_secret().await?;
        let attendees: Vec<(i64,)> = self
            .db
            .reader()
            .fetch_all(
                query(
                    "SELECT r.customer_id FROM customer_event_registrations r JOIN customers c ON c.id = r.customer_id \
                     WHERE r.event_id = $1 AND r.attended_at IS NOT NULL AND c.deleted_at IS NULL ORDER BY r.customer_id",
                )
                .bind(event_id),
            )
            .await?;
        let mut out = EventSurveyOutcome { attendees: attendees.len() as i64, ..Default::default() };
        let source = format!("event:{event_id}");
        for chunk in attendees.chunks(500) {
            let mut tx = self.db.begin().await?;
            let row = event_in(&mut tx, event_id).await?;
            for (customer_id,) in chunk {
                let Some((invitation_id, days)) =
                    crate::surveys::invitations::invite_for(&mut tx, survey_id, *customer_id, &source, now).await?
                else {
                    out.skipped += 1;
                    continue;
                };
                let key = format!("survey:{invitation_id}");
                let token = public_link_token(&secret, &key, *customer_id);
                crate::links::insert(&mut tx, crate::links::LinkKind::Survey, *customer_id, invitation_id, now, days, &digest(&token))
                    .await?;
                enqueue(
                    &mut tx,
                    &NewMessage {
                        customer_id: *customer_id,
                        message_key: key,
                        channel,
                        purpose: Purpose::Transactional,
                        template_id: None,
                        campaign_id: None,
                        content: Some(survey_content(&row, channel)),
                        skipped: None,
                        not_before: now,
                    },
                    now,
                )
                .await?;
                out.sent += 1;
            }
            tx.commit().await?;
        }
        let mut tx = self.db.begin().await?;
        tx.execute(
            query("UPDATE customer_events SET survey_sent_at = COALESCE(survey_sent_at, $1) WHERE id = $2").bind(now).bind(event_id),
        )
        .await?;
        audit::record(
            &mut tx,
            now,
            &actor.key,
            "send_survey",
            "customer_event",
            Some(event_id.to_string()),
            Some(format!("survey={survey_id} sent={} skipped={}", out.sent, out.skipped)),
        )
        .await?;
        tx.commit().await?;
        Ok(out)
    }
}

/// When the event's links stop working: its end.
pub(crate) fn link_expiry(e: &EventRow) -> DateTime<Utc> {
    e.ends_at
}
