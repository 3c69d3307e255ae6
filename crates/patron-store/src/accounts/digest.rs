//! The account digest (issue 19 §4): per managed account and period (setting `digest`: the last
//! Monday–Sunday, or the last calendar month, in the business time zone), to each member of the
//! account team and the owner, in-app (a notification `account_digest`) and by e-mail through
//! the outbox (to the user's address, transactional): new needs (inquiries and suggestions) and
//! notes, late fulfilment steps, open and breached tickets, survey answers, score and tier
//! changes (reviews, stage and loyalty tier), praise received.
//!
//! A digest is made on the first scheduler run after its period ends, once per account,
//! recipient and period: the key `digest:{period}:{user}` is claimed in `account_alerts` in the
//! same transaction as the notification and the outbox row (whose own unique key is the same),
//! so reruns and two schedulers at once make one. An account with nothing to report in the
//! period gets no digest.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{Datelike, Duration, NaiveDate};

use super::cadence::MANAGED;
use super::{claim_alert, notify_account};
use crate::db::query;
use crate::engagement::outbox::{enqueue_to, NewMessage};
use crate::engagement::templates::Rendered;
use crate::engagement::{Channel, Purpose};
use crate::service::reports::Period;
use crate::{Result, Store};

/// What happened on one account in a period.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DigestContent {
    /// Inquiries and suggestions opened.
    pub needs: i64,
    /// Notes written.
    pub notes: i64,
    /// Fulfilment steps found late.
    pub late_steps: i64,
    /// Tickets open now.
    pub open_tickets: i64,
    /// Tickets that breached a deadline in the period.
    pub breached_tickets: i64,
    /// Survey answers.
    pub answers: i64,
    /// Their mean 1–5 score, when scored.
    pub mean_score: Option<f64>,
    /// Their mean NPS answer 0–10, when asked.
    pub mean_nps: Option<f64>,
    /// Reviews (health scores), stage and loyalty tier changes.
    pub score_changes: i64,
    /// The latest health score of the period's reviews.
    pub health_score: Option<f64>,
    /// Praise received.
    pub praise: i64,
}

impl DigestContent {
    /// Nothing to report (open tickets alone are no news).
    pub fn is_empty(&self) -> bool {
        self.needs + self.notes + self.late_steps + self.breached_tickets + self.answers + self.score_changes + self.praise == 0
    }

    /// The digest's lines, in Chinese then English.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut line = |n: i64, zh: &str, en: &str| {
            if n > 0 {
                out.push(format!("{zh}：{n} · {en}: {n}"));
            }
        };
        line(self.needs, "新需求（咨询、建议）", "New needs (inquiries, suggestions)");
        line(self.notes, "新备注", "New notes");
        line(self.late_steps, "延迟的履约环节", "Late fulfilment steps");
        line(self.open_tickets, "未结工单", "Open tickets");
        line(self.breached_tickets, "超时工单", "Breached tickets");
        line(self.praise, "收到表扬", "Praise received");
        line(self.score_changes, "评分与等级变化", "Score and tier changes");
        if self.answers > 0 {
            let mut s = format!("问卷回答：{} · Survey answers: {}", self.answers, self.answers);
            if let Some(m) = self.mean_score {
                s.push_str(&format!(" (1–5: {m:.1})"));
            }
            if let Some(m) = self.mean_nps {
                s.push_str(&format!(" (NPS 0–10: {m:.1})"));
            }
            out.push(s);
        }
        if let Some(h) = self.health_score {
            out.push(format!("最新健康度：{h:.1} · Latest health score: {h:.1}"));
        }
        out
    }
}

/// The last complete digest period before `today`: its key (`2026-W26`, `2026-05`) and days.
pub fn digest_period(kind: &str, today: NaiveDate) -> Option<(String, NaiveDate, NaiveDate)> {
    match kind {
        "weekly" => {
            let monday = today - Duration::days(i64::from(today.weekday().num_days_from_monday()));
            let from = monday - Duration::days(7);
            let iso = from.iso_week();
            Some((format!("{}-W{:02}", iso.year(), iso.week()), from, monday - Duration::days(1)))
        }
        "monthly" => {
            let first = today.with_day(1)?;
            let last = first.pred_opt()?;
            let from = last.with_day(1)?;
            Some((from.format("%Y-%m").to_string(), from, last))
        }
        _ => None,
    }
}

type Counts = HashMap<i64, i64>;

impl Store {
    async fn digest_counts(&self, sql: &str, p: &Period) -> Result<Counts> {
        let rows: Vec<(i64, i64)> = self.db.reader().fetch_all(query(sql.to_owned()).bind(p.from).bind(p.to)).await?;
        Ok(rows.into_iter().collect())
    }

    /// What happened on every account in `p` (accounts with nothing are left out).
    pub async fn digest_contents(&self, p: &Period) -> Result<BTreeMap<i64, DigestContent>> {
        let needs = self
            .digest_counts(
                "SELECT customer_id, COUNT(*) FROM tickets WHERE kind IN ('inquiry', 'suggestion') AND opened_at >= $1 AND opened_at < $2 GROUP BY customer_id",
                p,
            )
            .await?;
        let praise = self
            .digest_counts(
                "SELECT customer_id, COUNT(*) FROM tickets WHERE kind = 'praise' AND opened_at >= $1 AND opened_at < $2 GROUP BY customer_id",
                p,
            )
            .await?;
        let notes = self
            .digest_counts("SELECT customer_id, COUNT(*) FROM notes WHERE created_at >= $1 AND created_at < $2 GROUP BY customer_id", p)
            .await?;
        let late = self
            .digest_counts(
                "SELECT customer_id, COUNT(*) FROM fulfilment_steps WHERE late_at >= $1 AND late_at < $2 GROUP BY customer_id",
                p,
            )
            .await?;
        let breached = self
            .digest_counts(
                "SELECT customer_id, COUNT(*) FROM tickets WHERE (first_response_breached_at >= $1 AND first_response_breached_at < $2) \
                 OR (resolution_breached_at >= $1 AND resolution_breached_at < $2) GROUP BY customer_id",
                p,
            )
            .await?;
        let open: Vec<(i64, i64)> = self
            .db
            .reader()
            .fetch_all(query(
                "SELECT customer_id, COUNT(*) FROM tickets WHERE status NOT IN ('resolved', 'confirmed') GROUP BY customer_id",
            ))
            .await?;
        let open: Counts = open.into_iter().collect();
        let answers: Vec<(i64, i64, Option<f64>, Option<f64>)> = self
            .db
            .reader()
            .fetch_all(
                query(
                    "SELECT customer_id, COUNT(*), AVG(CAST(score AS DOUBLE PRECISION)), AVG(CAST(nps AS DOUBLE PRECISION)) FROM survey_answers \
                     WHERE answered_at >= $1 AND answered_at < $2 GROUP BY customer_id",
                )
                .bind(p.from)
                .bind(p.to),
            )
            .await?;
        let changes: Vec<(i64, i64, String, sqlx::types::Json<serde_json::Value>)> = self
            .db
            .reader()
            .fetch_all(
                query(
                    "SELECT customer_id, id, type, payload FROM events WHERE type IN ('relationship.reviewed', 'relationship.stage_changed', \
                     'loyalty.tier_changed') AND occurred_at >= $1 AND occurred_at < $2 ORDER BY customer_id, id",
                )
                .bind(p.from)
                .bind(p.to),
            )
            .await?;
        let mut out: BTreeMap<i64, DigestContent> = BTreeMap::new();
        for (c, n) in needs {
            out.entry(c).or_default().needs = n;
        }
        for (c, n) in praise {
            out.entry(c).or_default().praise = n;
        }
        for (c, n) in notes {
            out.entry(c).or_default().notes = n;
        }
        for (c, n) in late {
            out.entry(c).or_default().late_steps = n;
        }
        for (c, n) in breached {
            out.entry(c).or_default().breached_tickets = n;
        }
        for (c, n, score, nps) in answers {
            let d = out.entry(c).or_default();
            d.answers = n;
            d.mean_score = score;
            d.mean_nps = nps;
        }
        for (c, _, kind, payload) in changes {
            let d = out.entry(c).or_default();
            d.score_changes += 1;
            if kind == "relationship.reviewed" {
                d.health_score = payload.0.get("health_score").and_then(serde_json::Value::as_f64).or(d.health_score);
            }
        }
        for (c, d) in out.iter_mut() {
            d.open_tickets = open.get(c).copied().unwrap_or(0);
        }
        Ok(out)
    }

    /// Makes the digests of the last complete period (see the module): returns how many.
    pub(crate) async fn run_account_digests(&self) -> Result<u64> {
        let settings = self.account_settings().await?;
        let Some((key, from, to)) = digest_period(&settings.digest, self.business_today()) else { return Ok(0) };
        let period = Period::days(&self.config.business_tz, from, to)?;
        let contents = self.digest_contents(&period).await?;
        if contents.is_empty() {
            return Ok(0);
        }
        let accounts: Vec<(i64, String, Option<i64>)> = self
            .db
            .reader()
            .fetch_all(query(format!("SELECT c.id, c.name, c.owner_id FROM customers c WHERE c.deleted_at IS NULL AND {MANAGED}")))
            .await?;
        let team: Vec<(i64, i64)> = self.db.reader().fetch_all(query("SELECT customer_id, user_id FROM account_team")).await?;
        let mut teams: HashMap<i64, Vec<i64>> = HashMap::new();
        for (c, u) in team {
            teams.entry(c).or_default().push(u);
        }
        let users: Vec<(i64, String)> = self.db.reader().fetch_all(query("SELECT id, email FROM users WHERE disabled_at IS NULL")).await?;
        let users: HashMap<i64, String> = users.into_iter().collect();
        let prefix = format!("digest:{key}:");
        let done: Vec<(i64, String)> = self
            .db
            .reader()
            .fetch_all(query("SELECT customer_id, alert_key FROM account_alerts WHERE alert_key LIKE $1").bind(format!("{prefix}%")))
            .await?;
        let done: HashSet<(i64, String)> = done.into_iter().collect();
        let now = self.now();
        let mut made = 0;
        for (id, name, owner) in accounts {
            let Some(content) = contents.get(&id).filter(|c| !c.is_empty()) else { continue };
            let mut recipients: Vec<i64> = owner.into_iter().chain(teams.get(&id).into_iter().flatten().copied()).collect();
            recipients.sort_unstable();
            recipients.dedup();
            let recipients: Vec<i64> =
                recipients.into_iter().filter(|u| users.contains_key(u) && !done.contains(&(id, format!("{prefix}{u}")))).collect();
            if recipients.is_empty() {
                continue;
            }
            let lines = content.lines();
            let subject = format!("客户动态 {name} {key} · Account digest");
            let text = format!("{subject}\n{from} – {to}\n\n{}\n", lines.join("\n"));
            let mut tx = self.db.begin().await?;
            for u in recipients {
                let alert = format!("{prefix}{u}");
                if !claim_alert(&mut tx, id, &alert, now).await? {
                    continue;
                }
                notify_account(&mut tx, u, "account_digest", id, &format!("{subject}: {}", lines.join("; ")), now).await?;
                let m = NewMessage {
                    customer_id: id,
                    message_key: alert,
                    channel: Channel::Email,
                    purpose: Purpose::Transactional,
                    template_id: None,
                    campaign_id: None,
                    content: Some(Rendered { subject: Some(subject.clone()), text: text.clone(), html: None }),
                    skipped: None,
                    not_before: now,
                };
                enqueue_to(&mut tx, &m, users.get(&u).map(String::as_str), now).await?;
                made += 1;
            }
            tx.commit().await?;
        }
        Ok(made)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn periods_are_the_last_complete_week_or_month() {
        // Tuesday 30 June 2026: the week of 22–28 June (ISO week 26), the month of May.
        assert_eq!(digest_period("weekly", d("2026-06-30")), Some(("2026-W26".into(), d("2026-06-22"), d("2026-06-28"))));
        assert_eq!(digest_period("weekly", d("2026-06-29")), Some(("2026-W26".into(), d("2026-06-22"), d("2026-06-28"))));
        assert_eq!(digest_period("monthly", d("2026-06-30")), Some(("2026-05".into(), d("2026-05-01"), d("2026-05-31"))));
        assert_eq!(digest_period("monthly", d("2026-01-01")), Some(("2025-12".into(), d("2025-12-01"), d("2025-12-31"))));
        assert_eq!(digest_period("off", d("2026-06-30")), None);
    }
}
