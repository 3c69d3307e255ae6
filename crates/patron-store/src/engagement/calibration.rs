//! Channel calibration (issue 12 §5; DESIGN.md C12): per customer and channel, the messages
//! sent and those answered (an open or a click of that message, a reply on the channel), the
//! Beta posterior of the response rate (patron_analytics::calibration), and the preferred
//! channel — the highest posterior mean among the channels the customer consented to. Campaigns
//! and journeys whose channel is `preferred` send there.

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use utoipa::ToSchema;

use super::Channel;
use crate::db::{query, Tx};
use crate::{Result, Store};

/// One channel of one customer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ChannelStat {
    /// The channel.
    pub channel: Channel,
    /// Whether the customer consented to it.
    pub consented: bool,
    /// Messages sent on it.
    pub sends: i64,
    /// Of those, answered (opened, clicked, replied).
    pub responses: i64,
    /// Posterior mean of the response rate, Beta(1 + responses, 1 + sends − responses).
    pub response_rate: f64,
    /// 5% quantile of the posterior.
    pub low: f64,
    /// 95% quantile of the posterior.
    pub high: f64,
}

/// A customer's channels (sends, responses and rates counted live) and the preferred one.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ChannelPreferences {
    /// The customer.
    pub customer_id: i64,
    /// The channel a `preferred` message goes out on now: the consented channel with the
    /// highest response rate stored by the latest analysis (ties: e-mail, SMS, WeChat, mail);
    /// none without any consent.
    pub preferred_channel: Option<Channel>,
    /// The analysis day of the stored rates behind `preferred_channel` (none before the
    /// customer was first analysed: every channel then has the prior's ½).
    pub rates_as_of: Option<chrono::NaiveDate>,
    /// Every channel, in the order e-mail, SMS, WeChat, mail.
    pub channels: Vec<ChannelStat>,
}

/// One customer's (sends, responses) per channel in the order of [`Channel::ALL`], from their
/// sent messages (id, channel) and their answers (kind, channel, payload).
pub(crate) fn tally(sent: &[(i64, String)], answers: &[(String, Option<String>, Option<String>)]) -> [(i64, i64); 4] {
    let channel_of: HashMap<i64, &str> = sent.iter().map(|(id, ch)| (*id, ch.as_str())).collect();
    // Opens and clicks name their message (`outbox:<id>` or `outbox:<id>:<link>`): a message
    // answered twice is one response. Replies name none: each counts on its channel.
    let mut answered: HashSet<i64> = HashSet::new();
    let mut replies: HashMap<&str, i64> = HashMap::new();
    for (kind, channel, payload) in answers {
        let message = payload.as_deref().and_then(|p| p.strip_prefix("outbox:")).and_then(|p| p.split(':').next()?.parse::<i64>().ok());
        match (kind.as_str(), message) {
            ("reply", _) => *replies.entry(channel.as_deref().unwrap_or_default()).or_default() += 1,
            (_, Some(id)) if channel_of.contains_key(&id) => {
                answered.insert(id);
            }
            _ => {}
        }
    }
    Channel::ALL.map(|ch| {
        let sends = sent.iter().filter(|(_, c)| c == ch.as_str()).count() as i64;
        let responses = (answered.iter().filter(|id| channel_of.get(id) == Some(&ch.as_str())).count() as i64
            + replies.get(ch.as_str()).copied().unwrap_or(0))
        .min(sends);
        (sends, responses)
    })
}

/// Reads a customer's calibration in `tx`.
pub(crate) async fn preferences_in(tx: &mut Tx, customer_id: i64) -> Result<ChannelPreferences> {
    let sent: Vec<(i64, String)> =
        tx.fetch_all(query("SELECT id, channel FROM outbox WHERE customer_id = $1 AND status = 'sent'").bind(customer_id)).await?;
    let answers: Vec<(String, Option<String>, Option<String>)> = tx
        .fetch_all(
            query("SELECT kind, channel, payload FROM interactions WHERE customer_id = $1 AND kind IN ('click', 'email_open', 'sms_open', 'reply')")
                .bind(customer_id),
        )
        .await?;
    let consents: Vec<(String, bool)> =
        tx.fetch_all(query("SELECT channel, granted FROM customer_consents WHERE customer_id = $1").bind(customer_id)).await?;
    let counts = tally(&sent, &answers);
    let mut channels = Vec::new();
    for (ch, (sends, responses)) in Channel::ALL.into_iter().zip(counts) {
        let p = patron_analytics::calibration::response_posterior(sends as u64, responses as u64);
        let consented = consents.iter().any(|(c, g)| c == ch.as_str() && *g);
        channels.push(ChannelStat { channel: ch, consented, sends, responses, response_rate: p.mean, low: p.low, high: p.high });
    }
    let mut preferred: Option<&ChannelStat> = None;
    for s in channels.iter().filter(|s| s.consented) {
        if preferred.is_none_or(|p| s.response_rate > p.response_rate) {
            preferred = Some(s);
        }
    }
    Ok(ChannelPreferences { customer_id, preferred_channel: preferred.map(|p| p.channel), rates_as_of: None, channels })
}

impl Store {
    /// A customer's channel calibration and preferred channel.
    pub async fn channel_preferences(&self, customer_id: i64) -> Result<ChannelPreferences> {
        let mut tx = self.db.begin().await?;
        let mut p = preferences_in(&mut tx, customer_id).await?;
        // What a `preferred` message would go out on: the rates of the latest analysis
        // (channel calibration as data, `calibrated`), not the live counts above.
        p.preferred_channel = super::calibrated::preferred_in(&mut tx, customer_id).await?;
        let day: Option<(i64,)> =
            tx.fetch_optional(query("SELECT as_of_day FROM customer_scores WHERE customer_id = $1").bind(customer_id)).await?;
        p.rates_as_of = day.and_then(|d| i32::try_from(d.0).ok()).and_then(crate::analytics::day_date);
        tx.rollback().await?;
        Ok(p)
    }
}
