//! Channel calibration as data (issue 12 §5): each analysis run stores every customer's
//! posterior mean response rate per channel (`customer_scores.response_rate_*`) and the
//! preferred channel among the channels consented to then (`preferred_channel`), so that
//! segments can use them and a campaign of a million customers resolves `preferred` in one
//! query.
//!
//! A message whose channel is `preferred` goes out on the consented channel — consent as it is
//! at launch or send time — with the highest stored rate; a customer the analysis has not
//! scored yet has the prior's rate ½ on every channel. Ties go to the order e-mail, SMS,
//! WeChat, mail.

use std::collections::HashMap;

use super::calibration::tally;
use super::Channel;
use crate::db::{query, Tx};
use crate::{Result, Store};

/// The rate of a channel never tried: the mean of the uniform prior Beta(1, 1).
pub const PRIOR_RATE: f64 = 0.5;

/// The stored column of a channel's rate.
pub fn rate_column(ch: Channel) -> &'static str {
    match ch {
        Channel::Email => "response_rate_email",
        Channel::Sms => "response_rate_sms",
        Channel::Wechat => "response_rate_wechat",
        Channel::Mail => "response_rate_mail",
    }
}

/// One customer's calibration at an analysis run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Calibration {
    /// Posterior mean response rate per channel, in the order of [`Channel::ALL`].
    pub rates: [f64; 4],
    /// The preferred channel among those consented to at the run.
    pub preferred: Option<Channel>,
}

/// The consented channel with the highest rate (ties: the earlier in [`Channel::ALL`]).
pub fn choose(rates: [f64; 4], consented: [bool; 4]) -> Option<Channel> {
    let mut best: Option<usize> = None;
    for i in 0..4 {
        if consented[i] && best.is_none_or(|b| rates[i] > rates[b]) {
            best = Some(i);
        }
    }
    best.map(|i| Channel::ALL[i])
}

/// SQL giving each customer's calibrated preferred channel: the LEFT JOINs to append after
/// `FROM customers {c} …` and an expression that yields the channel's name, NULL when the
/// customer consents to none. The same choice as [`choose`] over the stored rates.
pub fn preferred_channel_sql(c: &str) -> (String, String) {
    let mut joins = format!(" LEFT JOIN customer_scores pk ON pk.customer_id = {c}.id");
    let rate = |ch: Channel| format!("COALESCE(pk.{}, {PRIOR_RATE:.1})", rate_column(ch));
    for (i, ch) in Channel::ALL.iter().enumerate() {
        joins.push_str(&format!(
            " LEFT JOIN customer_consents pc{i} ON pc{i}.customer_id = {c}.id AND pc{i}.channel = '{}' AND pc{i}.granted",
            ch.as_str()
        ));
    }
    let mut expr = String::from("CASE");
    for (i, ch) in Channel::ALL.iter().enumerate() {
        let mut cond = format!("pc{i}.customer_id IS NOT NULL");
        for (j, other) in Channel::ALL.iter().enumerate() {
            if i == j {
                continue;
            }
            // Better than every earlier consented channel, at least as good as every later one.
            let op = if j < i { ">" } else { ">=" };
            cond.push_str(&format!(" AND (pc{j}.customer_id IS NULL OR {} {op} {})", rate(*ch), rate(*other)));
        }
        expr.push_str(&format!(" WHEN {cond} THEN '{}'", ch.as_str()));
    }
    expr.push_str(" END");
    (joins, expr)
}

/// The stored rates of a scores row (e-mail, SMS, WeChat, mail).
pub(crate) type RatesRow = (Option<f64>, Option<f64>, Option<f64>, Option<f64>);

/// The calibrated preferred channel of one customer now (stored rates, current consents).
pub(crate) async fn preferred_in(tx: &mut Tx, customer_id: i64) -> Result<Option<Channel>> {
    let row: Option<RatesRow> = tx
        .fetch_optional(
            query(
                "SELECT response_rate_email, response_rate_sms, response_rate_wechat, response_rate_mail \
                 FROM customer_scores WHERE customer_id = $1",
            )
            .bind(customer_id),
        )
        .await?;
    let rates = stored_rates(row);
    let consents: Vec<(String,)> =
        tx.fetch_all(query("SELECT channel FROM customer_consents WHERE customer_id = $1 AND granted").bind(customer_id)).await?;
    let consented = Channel::ALL.map(|ch| consents.iter().any(|(c,)| c == ch.as_str()));
    Ok(choose(rates, consented))
}

/// The stored rates of a scores row, the prior where none is stored.
pub(crate) fn stored_rates(row: Option<RatesRow>) -> [f64; 4] {
    let r = row.unwrap_or_default();
    [r.0, r.1, r.2, r.3].map(|v| v.filter(|x| x.is_finite()).unwrap_or(PRIOR_RATE))
}

type Answer = (String, Option<String>, Option<String>);

/// Customers whose messages, answers and consents an analysis run reads at once to calibrate.
const CALIBRATION_CHUNK: usize = 50_000;

impl Store {
    /// Every customer's calibration from their messages and answers so far (for an analysis
    /// run; index = position in `customer_ids`). Read by ranges of [`CALIBRATION_CHUNK`]
    /// customers, so that memory holds one range's messages, answers and consents, not the
    /// whole base's.
    pub(crate) async fn calibrate_all(&self, customer_ids: &[i64]) -> Result<Vec<Calibration>> {
        let mut out = vec![Calibration { rates: [PRIOR_RATE; 4], preferred: None }; customer_ids.len()];
        let mut order: Vec<usize> = (0..customer_ids.len()).collect();
        order.sort_unstable_by_key(|&i| customer_ids[i]);
        let none: Vec<Answer> = Vec::new();
        for chunk in order.chunks(CALIBRATION_CHUNK) {
            let (Some(&first), Some(&last)) = (chunk.first(), chunk.last()) else { continue };
            let (lo, hi) = (customer_ids[first], customer_ids[last]);
            // Stepped, not handed over row by row by sqlx (Db::scan_all): a million customers'
            // consents are a million rows.
            let sent: Vec<(i64, i64, String)> = self
                .db
                .scan_all(
                    query("SELECT customer_id, id, channel FROM outbox WHERE customer_id BETWEEN $1 AND $2 AND status = 'sent'")
                        .bind(lo)
                        .bind(hi),
                )
                .await?;
            let answers: Vec<(i64, String, Option<String>, Option<String>)> = self
                .db
                .scan_all(
                    query(
                        "SELECT customer_id, kind, channel, payload FROM interactions WHERE customer_id BETWEEN $1 AND $2 \
                         AND kind IN ('click', 'email_open', 'sms_open', 'reply')",
                    )
                    .bind(lo)
                    .bind(hi),
                )
                .await?;
            let consents: Vec<(i64, String)> = self
                .db
                .scan_all(
                    query("SELECT customer_id, channel FROM customer_consents WHERE customer_id BETWEEN $1 AND $2 AND granted")
                        .bind(lo)
                        .bind(hi),
                )
                .await?;
            let mut sent_by: HashMap<i64, Vec<(i64, String)>> = HashMap::new();
            for (c, id, ch) in sent {
                sent_by.entry(c).or_default().push((id, ch));
            }
            let mut answers_by: HashMap<i64, Vec<Answer>> = HashMap::new();
            for (c, kind, ch, payload) in answers {
                answers_by.entry(c).or_default().push((kind, ch, payload));
            }
            let mut consent_by: HashMap<i64, [bool; 4]> = HashMap::new();
            for (c, ch) in consents {
                if let Some(i) = Channel::ALL.iter().position(|x| x.as_str() == ch) {
                    consent_by.entry(c).or_default()[i] = true;
                }
            }
            for &i in chunk {
                let id = customer_ids[i];
                let rates = match sent_by.get(&id) {
                    None => [PRIOR_RATE; 4],
                    Some(sent) => tally(sent, answers_by.get(&id).unwrap_or(&none))
                        .map(|(s, r)| patron_analytics::calibration::response_posterior(s.max(0) as u64, r.max(0) as u64).mean),
                };
                out[i] = Calibration { rates, preferred: choose(rates, consent_by.get(&id).copied().unwrap_or_default()) };
            }
        }
        Ok(out)
    }

    /// The channel a `preferred` message goes out on for this customer now: the consented
    /// channel with the highest response rate stored by the latest analysis (½ on every channel
    /// before the customer was scored); `None` when the customer consented to none.
    pub async fn preferred_channel(&self, customer_id: i64) -> Result<Option<Channel>> {
        let mut tx = self.db.begin().await?;
        let p = preferred_in(&mut tx, customer_id).await?;
        tx.rollback().await?;
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_highest_consented_rate_wins_ties_in_channel_order() {
        assert_eq!(choose([0.5, 0.6, 0.7, 0.1], [true, true, false, true]), Some(Channel::Sms));
        assert_eq!(choose([0.5, 0.5, 0.5, 0.5], [false, true, true, true]), Some(Channel::Sms));
        assert_eq!(choose([0.2, 0.5, 0.5, 0.9], [true, false, false, false]), Some(Channel::Email));
        assert_eq!(choose([0.2, 0.5, 0.5, 0.9], [false; 4]), None);
        assert_eq!(stored_rates(Some((Some(0.25), None, Some(f64::NAN), Some(0.75)))), [0.25, 0.5, 0.5, 0.75]);
    }
}
