//! Campaigns (issue 12 §2): a template sent on a channel to a segment's live members, minus the
//! global control group, those without consent on the channel and those over the frequency cap,
//! with a per-campaign holdout drawn at random (seeded, the seed stored) from the rest.
//!
//! A launch is one transaction: the campaign row is switched to `launched` first (a second
//! launch, concurrent or later, finds it launched and changes nothing), the audience is
//! classified by one set-based query, and the outbox rows — queued for the treated, `skipped`
//! with reason `holdout` (and the time) for the control group — are written by set-based
//! `INSERT … SELECT` statements under the outbox's unique key. Consent, the global control
//! group, caps and quiet hours are checked again when each message is sent.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use utoipa::ToSchema;

use super::outbox::message_id;
use super::{Channel, Purpose};
use crate::db::{query, Arg, Engine, Tx};
use crate::segments::{parse_rule, BUILTIN_PREFIX};
use crate::users::Actor;
use crate::{audit, Result, Store, StoreError};

/// Rows per `INSERT … SELECT` statement of a launch (bounded JSON documents, whatever the audience).
const LAUNCH_CHUNK: usize = 20_000;

/// The channel of a campaign: one channel, or each customer's preferred one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CampaignChannel {
    /// E-mail.
    Email,
    /// SMS.
    Sms,
    /// WeChat.
    Wechat,
    /// Direct mail.
    Mail,
    /// Each customer's preferred channel ([`preferred_channel`]).
    Preferred,
}

impl CampaignChannel {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            CampaignChannel::Email => "email",
            CampaignChannel::Sms => "sms",
            CampaignChannel::Wechat => "wechat",
            CampaignChannel::Mail => "mail",
            CampaignChannel::Preferred => "preferred",
        }
    }
    fn parse(s: &str) -> Result<CampaignChannel> {
        match s {
            "preferred" => Ok(CampaignChannel::Preferred),
            other => Channel::parse(other).map(CampaignChannel::from),
        }
    }
    /// The one channel, `None` for `preferred`.
    pub fn fixed(self) -> Option<Channel> {
        match self {
            CampaignChannel::Email => Some(Channel::Email),
            CampaignChannel::Sms => Some(Channel::Sms),
            CampaignChannel::Wechat => Some(Channel::Wechat),
            CampaignChannel::Mail => Some(Channel::Mail),
            CampaignChannel::Preferred => None,
        }
    }
}

impl From<Channel> for CampaignChannel {
    fn from(c: Channel) -> Self {
        match c {
            Channel::Email => CampaignChannel::Email,
            Channel::Sms => CampaignChannel::Sms,
            Channel::Wechat => CampaignChannel::Wechat,
            Channel::Mail => CampaignChannel::Mail,
        }
    }
}

/// SQL giving each customer's preferred channel, for campaigns (and later journeys) whose channel
/// is `preferred`: the LEFT JOINs to append after `FROM customers {c} …` and an expression that
/// yields the channel's name, NULL when the customer consents to none.
///
/// The consented channel with the highest response rate stored by the latest analysis (issue
/// 12 §5, [`super::calibrated`]); consent is the current one.
pub fn preferred_channel(c: &str) -> (String, String) {
    super::calibrated::preferred_channel_sql(c)
}

/// The first of `order` the customer consents to (joins, expression).
pub(crate) fn consented_channel(c: &str, order: &[Channel]) -> (String, String) {
    let mut joins = String::new();
    let mut expr = String::from("CASE");
    for (i, ch) in order.iter().enumerate() {
        let ch = ch.as_str();
        joins.push_str(&format!(
            " LEFT JOIN customer_consents pc{i} ON pc{i}.customer_id = {c}.id AND pc{i}.channel = '{ch}' AND pc{i}.granted"
        ));
        expr.push_str(&format!(" WHEN pc{i}.customer_id IS NOT NULL THEN '{ch}'"));
    }
    expr.push_str(" END");
    (joins, expr)
}

/// A new campaign.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCampaign {
    /// Name (1–200 characters).
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// A saved segment's key (`42`, `builtin:abcd:a`) or a segment rule (`city = "上海"`).
    #[schema(min_length = 1, max_length = 4000)]
    pub segment: String,
    /// `email`, `sms`, `wechat`, `mail` or `preferred`.
    pub channel: CampaignChannel,
    /// A marketing template (of the campaign's channel unless `preferred`).
    #[schema(minimum = 1)]
    pub template_id: i64,
    /// Share of the eligible audience held out as the control group, percent (0–90; default 10).
    #[serde(default = "default_holdout")]
    #[schema(minimum = 0, maximum = 90)]
    pub holdout_percent: f64,
    /// Days after the send (the skip time for the control group) in which an order counts as a
    /// conversion (1–365; default 7).
    #[serde(default = "default_window")]
    #[schema(minimum = 1, maximum = 365)]
    pub conversion_window_days: i64,
    /// Not sent before this time (UTC); absent: at launch. At most a year ahead, not in the past.
    pub send_at: Option<DateTime<Utc>>,
}

fn default_holdout() -> f64 {
    10.0
}
fn default_window() -> i64 {
    7
}

/// A campaign's counts: at launch (audience and who was left out why) and of its messages now.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct CampaignCounts {
    /// Live members of the segment at launch.
    pub audience: i64,
    /// The per-campaign holdout (control group; recorded as skipped messages).
    pub holdout: i64,
    /// Members in the global control group.
    pub global_control: i64,
    /// Members without consent on the channel (on any channel, for `preferred`).
    pub no_consent: i64,
    /// Members over a frequency cap at launch.
    pub capped: i64,
    /// Messages waiting to be sent (queued or being sent).
    pub queued: i64,
    /// Messages sent.
    pub sent: i64,
    /// Messages that failed for good.
    pub failed: i64,
    /// Messages skipped at send time (consent withdrawn, capped, quiet, no address …; not the holdout).
    pub skipped: i64,
}

/// A campaign.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Campaign {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// The segment rule as it was at creation.
    pub segment_rule: String,
    /// The saved segment's key, when one was named.
    pub segment_key: Option<String>,
    /// The channel.
    pub channel: CampaignChannel,
    /// The template.
    pub template_id: i64,
    /// Holdout share, percent.
    pub holdout_percent: f64,
    /// Conversion window, days.
    pub conversion_window_days: i64,
    /// Not sent before (UTC).
    pub send_at: Option<DateTime<Utc>>,
    /// `draft` or `launched`.
    pub status: String,
    /// Seed of the holdout draw.
    pub seed: i64,
    /// When it was launched (UTC).
    pub launched_at: Option<DateTime<Utc>>,
    /// Who made it.
    pub created_by: String,
    /// When (UTC).
    pub created_at: DateTime<Utc>,
    /// Counts.
    pub counts: CampaignCounts,
}

#[derive(serde::Deserialize, sqlx::FromRow)]
struct CampaignRow {
    id: i64,
    name: String,
    segment_rule: String,
    segment_key: Option<String>,
    channel: String,
    template_id: i64,
    holdout_percent: f64,
    conversion_window_days: i64,
    send_at: Option<DateTime<Utc>>,
    status: String,
    seed: i64,
    #[serde(deserialize_with = "crate::db::direct::json_text_opt")]
    launch_counts: Option<Json<CampaignCounts>>,
    launched_at: Option<DateTime<Utc>>,
    created_by: String,
    created_at: DateTime<Utc>,
}

const CAMPAIGN_COLS: &str = "id, name, segment_rule, segment_key, channel, template_id, holdout_percent, conversion_window_days, send_at, \
     status, seed, launch_counts, launched_at, created_by, created_at";

impl CampaignRow {
    fn into_campaign(self) -> Result<Campaign> {
        Ok(Campaign {
            id: self.id,
            name: self.name,
            segment_rule: self.segment_rule,
            segment_key: self.segment_key,
            channel: CampaignChannel::parse(&self.channel)?,
            template_id: self.template_id,
            holdout_percent: self.holdout_percent,
            conversion_window_days: self.conversion_window_days,
            send_at: self.send_at,
            status: self.status,
            seed: self.seed,
            launched_at: self.launched_at,
            created_by: self.created_by,
            created_at: self.created_at,
            counts: self.launch_counts.map(|j| j.0).unwrap_or_default(),
        })
    }
}

/// The position of a customer in a holdout draw with `seed` (SplitMix64 of the seed and the id):
/// the holdout is the lowest-ranked share of the eligible audience.
pub fn holdout_rank(seed: i64, customer_id: i64) -> u64 {
    let mut z = (seed as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (customer_id as u64);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The holdout of a launch: `round(n × percent / 100)` of the eligible customers, those ranked
/// lowest by [`holdout_rank`] (ties by id). The same seed and audience draw the same group.
pub fn holdout_draw(seed: i64, eligible: &[i64], percent: f64) -> HashSet<i64> {
    let k = ((eligible.len() as f64) * percent / 100.0).round().clamp(0.0, eligible.len() as f64) as usize;
    let mut ranked: Vec<(u64, i64)> = eligible.iter().map(|id| (holdout_rank(seed, *id), *id)).collect();
    if k < ranked.len() {
        ranked.select_nth_unstable(k);
    }
    ranked.truncate(k);
    ranked.into_iter().map(|(_, id)| id).collect()
}

/// The outbox occasion of a campaign's messages.
pub fn campaign_message_key(campaign_id: i64) -> String {
    format!("campaign:{campaign_id}")
}

impl Store {
    /// Creates a draft campaign (manager; audited). The segment is resolved now: a saved
    /// segment's key or a rule, checked; the template must be a marketing template of the
    /// channel (any channel's, for `preferred`).
    pub async fn create_campaign(&self, actor: &Actor, c: NewCampaign) -> Result<Campaign> {
        let name = c.name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(StoreError::invalid("name", "1 to 200 characters"));
        }
        let segment = c.segment.trim();
        if segment.is_empty() || segment.chars().count() > 4000 {
            return Err(StoreError::invalid("segment", "a saved segment's key or a rule of 1 to 4000 characters"));
        }
        let (rule, key) = if segment.starts_with(BUILTIN_PREFIX) || segment.bytes().all(|b| b.is_ascii_digit()) {
            let s = self.segment(segment).await.map_err(|e| match e {
                StoreError::NotFound(_) => StoreError::invalid("segment", format!("no segment with key {segment:?}")),
                e => e,
            })?;
            (s.rule, Some(s.key))
        } else {
            (segment.to_owned(), None)
        };
        parse_rule(&rule).map_err(|e| StoreError::invalid("segment", e.to_string()))?;
        if !(c.holdout_percent.is_finite() && (0.0..=90.0).contains(&c.holdout_percent)) {
            return Err(StoreError::invalid("holdout_percent", "must be 0 to 90"));
        }
        if !(1..=365).contains(&c.conversion_window_days) {
            return Err(StoreError::invalid("conversion_window_days", "must be 1 to 365"));
        }
        let now = self.now();
        if let Some(at) = c.send_at {
            if at < now - Duration::minutes(5) || at > now + Duration::days(365) {
                return Err(StoreError::invalid("send_at", "must be from now to a year ahead"));
            }
        }
        let template = self.template(c.template_id).await.map_err(|e| match e {
            StoreError::NotFound(_) => StoreError::invalid("template_id", "no such template"),
            e => e,
        })?;
        if template.purpose != Purpose::Marketing {
            return Err(StoreError::invalid("template_id", "a campaign sends a marketing template"));
        }
        if let Some(ch) = c.channel.fixed() {
            if template.channel != ch {
                return Err(StoreError::invalid(
                    "template_id",
                    format!("the template is for {}, not {}", template.channel.as_str(), ch.as_str()),
                ));
            }
        }
        let seed = i64::from(rand::random::<u32>());
        let mut tx = self.db.begin().await?;
        let row: CampaignRow = tx
            .fetch_one(
                query(format!(
                    "INSERT INTO campaigns (name, segment_rule, segment_key, channel, template_id, holdout_percent, conversion_window_days, \
                     send_at, status, seed, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'draft', $9, $10, $11) \
                     RETURNING {CAMPAIGN_COLS}"
                ))
                .bind(name)
                .bind(rule)
                .bind(key)
                .bind(c.channel.as_str())
                .bind(c.template_id)
                .bind(c.holdout_percent)
                .bind(c.conversion_window_days)
                .bind(c.send_at)
                .bind(seed)
                .bind(&actor.key)
                .bind(now),
            )
            .await?;
        audit::record(&mut tx, now, &actor.key, "create", "campaign", Some(row.id.to_string()), None).await?;
        tx.commit().await?;
        row.into_campaign()
    }

    /// A campaign with its counts.
    pub async fn campaign(&self, id: i64) -> Result<Campaign> {
        let row: Option<CampaignRow> =
            self.db.reader().fetch_optional(query(format!("SELECT {CAMPAIGN_COLS} FROM campaigns WHERE id = $1")).bind(id)).await?;
        let mut c = row.ok_or(StoreError::NotFound("campaign"))?.into_campaign()?;
        if c.status == "launched" {
            self.message_counts(&mut c.counts, id).await?;
        }
        Ok(c)
    }

    async fn message_counts(&self, counts: &mut CampaignCounts, id: i64) -> Result<()> {
        let rows: Vec<(String, Option<String>, i64)> = self
            .db
            .reader()
            .fetch_all(
                query(
                    "SELECT status, CASE WHEN reason = 'holdout' THEN reason END AS r, COUNT(*) FROM outbox WHERE campaign_id = $1 \
                     GROUP BY status, CASE WHEN reason = 'holdout' THEN reason END",
                )
                .bind(id),
            )
            .await?;
        counts.queued = 0;
        counts.sent = 0;
        counts.failed = 0;
        counts.skipped = 0;
        for (status, holdout, n) in rows {
            match (status.as_str(), holdout.is_some()) {
                ("queued" | "sending", _) => counts.queued += n,
                ("sent", _) => counts.sent += n,
                ("failed", _) => counts.failed += n,
                ("skipped", false) => counts.skipped += n,
                _ => {}
            }
        }
        Ok(())
    }

    /// Campaigns, newest first (at most 500), with their counts at launch (message counts on
    /// the campaign itself).
    pub async fn campaigns(&self) -> Result<Vec<Campaign>> {
        let rows: Vec<CampaignRow> =
            self.db.reader().fetch_all(query(format!("SELECT {CAMPAIGN_COLS} FROM campaigns ORDER BY id DESC LIMIT 500"))).await?;
        rows.into_iter().map(CampaignRow::into_campaign).collect()
    }

    /// Launches a draft campaign (manager; audited): everything in one transaction; a launched
    /// campaign is returned as it is (a second launch, or a retry, changes nothing).
    pub async fn launch_campaign(&self, actor: &Actor, id: i64) -> Result<Campaign> {
        let now = self.now();
        let mut tx = self.db.begin().await?;
        // First the claim: a concurrent launch waits on this row and then finds it launched.
        let n = tx
            .execute(
                query("UPDATE campaigns SET status = 'launched', launched_at = $1 WHERE id = $2 AND status = 'draft'").bind(now).bind(id),
            )
            .await?;
        if n == 0 {
            tx.rollback().await?;
            return self.campaign(id).await;
        }
        let row: CampaignRow = tx.fetch_one(query(format!("SELECT {CAMPAIGN_COLS} FROM campaigns WHERE id = $1")).bind(id)).await?;
        let c = row.into_campaign()?;
        let counts = self.launch_in(&mut tx, actor, &c, now).await?;
        tx.execute(
            query("UPDATE campaigns SET launch_counts = $1 WHERE id = $2")
                .bind(Arg::Json(serde_json::to_value(&counts).map_err(|e| StoreError::Internal(e.to_string()))?))
                .bind(id),
        )
        .await?;
        audit::record(
            &mut tx,
            now,
            &actor.key,
            "launch",
            "campaign",
            Some(id.to_string()),
            Some(format!("audience={} holdout={} queued={}", counts.audience, counts.holdout, counts.queued)),
        )
        .await?;
        tx.commit().await?;
        self.campaign(id).await
    }

    /// The counts a launch would give now, writing nothing (the wizard's review step).
    pub async fn campaign_launch_preview(&self, actor: &Actor, id: i64) -> Result<CampaignCounts> {
        let c = self.campaign(id).await?;
        if c.status != "draft" {
            return Ok(c.counts);
        }
        let mut tx = self.db.begin().await?;
        let (counts, _, _) = self.audience(&mut tx, actor, &c, self.now()).await?;
        tx.rollback().await?;
        Ok(counts)
    }

    async fn launch_in(&self, tx: &mut Tx, actor: &Actor, c: &Campaign, now: DateTime<Utc>) -> Result<CampaignCounts> {
        let (counts, eligible, holdout) = self.audience(tx, actor, c, now).await?;
        let key = campaign_message_key(c.id);
        let start = c.send_at.filter(|at| *at > now).unwrap_or(now);
        let sql = insert_sql(tx.engine());
        for chunk in eligible.chunks(LAUNCH_CHUNK) {
            let rows: Vec<serde_json::Value> = chunk
                .iter()
                .map(|(id, ch)| {
                    let (status, reason) = if holdout.contains(id) { ("skipped", Some("holdout")) } else { ("queued", None) };
                    serde_json::json!([id, ch.as_str(), message_id(&key, *id, *ch), status, reason])
                })
                .collect();
            tx.execute(
                query(sql.clone())
                    .bind(Arg::Json(serde_json::Value::Array(rows)))
                    .bind(key.clone())
                    .bind(c.template_id)
                    .bind(c.id)
                    .bind(start)
                    .bind(now),
            )
            .await?;
        }
        Ok(counts)
    }

    /// The audience of a launch now: the counts, the eligible members with their channel, and
    /// the holdout drawn from them.
    async fn audience(
        &self,
        tx: &mut Tx,
        actor: &Actor,
        c: &Campaign,
        now: DateTime<Utc>,
    ) -> Result<(CampaignCounts, Vec<(i64, Channel)>, HashSet<i64>)> {
        let settings = self.engagement_settings().await?;
        // Who, on which channel (NULL: no consent), and whether over a cap — one query.
        let (joins, channel_expr) = match c.channel.fixed() {
            Some(ch) => consented_channel("c", &[ch]),
            None => preferred_channel("c"),
        };
        let seg = self.segment_sql(actor, &c.segment_rule, 5)?;
        let mut q = query(format!(
            "SELECT c.id, {channel_expr} AS channel, COALESCE(mc.week, 0) >= $3 OR COALESCE(mc.month, 0) >= $4 AS capped \
             FROM {from} {joins} \
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
        let members: Vec<(i64, Option<String>, bool)> = tx.fetch_all(q).await?;

        let mut counts = CampaignCounts { audience: members.len() as i64, ..Default::default() };
        let mut eligible: Vec<(i64, Channel)> = Vec::with_capacity(members.len());
        for (id, channel, capped) in members {
            if settings.in_global_control(id) {
                counts.global_control += 1;
                continue;
            }
            let Some(channel) = channel else {
                counts.no_consent += 1;
                continue;
            };
            if capped {
                counts.capped += 1;
                continue;
            }
            eligible.push((id, Channel::parse(&channel)?));
        }
        let ids: Vec<i64> = eligible.iter().map(|e| e.0).collect();
        let holdout = holdout_draw(c.seed, &ids, c.holdout_percent);
        counts.holdout = holdout.len() as i64;
        counts.queued = eligible.len() as i64 - counts.holdout;
        Ok((counts, eligible, holdout))
    }
}

/// The set-based insert of a launch's messages (rows from the JSON bound at `$1`).
fn insert_sql(engine: Engine) -> String {
    format!(
        "INSERT INTO outbox (customer_id, message_key, channel, purpose, message_id, template_id, campaign_id, status, reason, \
         next_attempt_at, created_at, updated_at) \
         SELECT t.c0, $2, t.c1, 'marketing', t.c2, $3, $4, t.c3, t.c4, $5, $6, $6 FROM ({}) t WHERE 1 = 1 \
         ON CONFLICT (customer_id, message_key, channel) DO NOTHING",
        engine.json_tuples(1, &["BIGINT", "TEXT", "TEXT", "TEXT", "TEXT"])
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_holdout_is_its_share_and_repeats_with_the_seed() {
        let ids: Vec<i64> = (1..=1000).collect();
        let a = holdout_draw(7, &ids, 10.0);
        assert_eq!(a.len(), 100);
        assert_eq!(a, holdout_draw(7, &ids, 10.0));
        let b = holdout_draw(8, &ids, 10.0);
        assert_ne!(a, b);
        // Spread over the ids, not a block of them.
        assert!(a.iter().filter(|id| **id <= 500).count() > 30 && a.iter().filter(|id| **id > 500).count() > 30);
        assert!(holdout_draw(7, &ids, 0.0).is_empty());
        assert_eq!(holdout_draw(7, &ids[..3], 10.0).len(), 0);
        assert_eq!(holdout_draw(7, &ids[..5], 10.0).len(), 1);
    }
}
