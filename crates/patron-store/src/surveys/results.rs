//! A survey's results over a period: responses and response rate, NPS ((promoters − detractors)
//! / answers × 100; 9–10 promote, 0–6 detract), CSAT (mean and share of 4–5), the distribution
//! of the main score, keywords of the open answers (jieba for Chinese), the trend by month and
//! a breakdown by tier, segment (the customer's RFM class), store or agent.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use patron_analytics::keywords::keywords;
use patron_analytics::service::{csat, nps};
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::query;
use crate::service::reports::Period;
use crate::{Result, Store, StoreError};

/// How many answers gave a value.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ValueCount {
    /// The value (0–10 or 1–5).
    pub value: i64,
    /// Answers.
    pub count: u64,
}

/// A keyword of the open answers.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct KeywordCount {
    /// The word.
    pub term: String,
    /// Answers that use it.
    pub count: u64,
}

/// The scores of a group of answers.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GroupResult {
    /// The group (a tier, RFM class, store, or agent's name).
    pub key: String,
    /// Answers.
    pub responses: u64,
    /// NPS (−100 to 100), when NPS was asked.
    pub nps: Option<f64>,
    /// Mean 1–5 score, when one was asked.
    pub csat_mean: Option<f64>,
}

/// One month of the trend.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MonthResult {
    /// `YYYY-MM` (business time zone).
    pub month: String,
    /// Answers.
    pub responses: u64,
    /// NPS.
    pub nps: Option<f64>,
    /// Mean 1–5 score.
    pub csat_mean: Option<f64>,
}

/// A survey's results.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SurveyResults {
    /// The survey.
    pub survey_id: i64,
    /// The period (answers and invitations in it).
    pub period: Period,
    /// Invitations made in the period.
    pub invited: u64,
    /// Answers in the period.
    pub responses: u64,
    /// Answers per invitation of the period (0–1; none without invitations).
    pub response_rate: Option<f64>,
    /// NPS (−100 to 100).
    pub nps: Option<f64>,
    /// NPS answers of 9–10.
    pub promoters: u64,
    /// NPS answers of 7–8.
    pub passives: u64,
    /// NPS answers of 0–6.
    pub detractors: u64,
    /// Mean 1–5 score.
    pub csat_mean: Option<f64>,
    /// Share of 1–5 scores that are 4 or 5.
    pub csat_satisfied_share: Option<f64>,
    /// Answers that would switch for a 2% lower price, of those asked.
    pub would_switch_share: Option<f64>,
    /// The main score's distribution (NPS 0–10, else the 1–5 score).
    pub distribution: Vec<ValueCount>,
    /// The most used words of the open answers (at most 30).
    pub keywords: Vec<KeywordCount>,
    /// By month.
    pub trend: Vec<MonthResult>,
    /// The breakdown asked for (`by`), largest group first.
    pub groups: Vec<GroupResult>,
    /// Complaints opened by unhappy answers.
    pub complaints_opened: u64,
}

#[derive(sqlx::FromRow)]
struct Row {
    answered_at: DateTime<Utc>,
    nps: Option<i64>,
    score: Option<i64>,
    would_switch: Option<bool>,
    comment: Option<String>,
    ticket_id: Option<i64>,
    group_key: Option<String>,
}

/// The breakdowns results can be grouped by.
pub const GROUPINGS: [&str; 4] = ["tier", "segment", "store", "agent"];

fn scores_of(rows: &[&Row]) -> (Option<f64>, Option<f64>) {
    let n: Vec<u8> = rows.iter().filter_map(|r| r.nps.and_then(|v| u8::try_from(v).ok())).collect();
    let s: Vec<u8> = rows.iter().filter_map(|r| r.score.and_then(|v| u8::try_from(v).ok())).collect();
    (nps(&n), csat(&s).map(|c| c.0))
}

impl Store {
    /// The results of a survey in `period`, broken down `by` tier, segment, store or agent.
    pub async fn survey_results(&self, survey_id: i64, period: Period, by: Option<&str>) -> Result<SurveyResults> {
        self.survey(survey_id).await?;
        let group = match by {
            None => "NULL",
            Some("tier") => "a.tier",
            Some("segment") => "s.rfm_class",
            Some("store") => "a.store",
            Some("agent") => "u.name",
            Some(_) => return Err(StoreError::invalid("by", format!("by must be one of {}", GROUPINGS.join(", ")))),
        };
        let joins = match by {
            Some("segment") => "LEFT JOIN customer_scores s ON s.customer_id = a.customer_id",
            Some("agent") => "LEFT JOIN users u ON u.id = a.agent_id",
            _ => "",
        };
        let mut r = self.db.reader();
        let rows: Vec<Row> = r
            .fetch_all(
                query(format!(
                    "SELECT a.answered_at, a.nps, a.score, a.would_switch, a.comment, a.ticket_id, {group} AS group_key \
                     FROM survey_answers a {joins} WHERE a.survey_id = $1 AND a.answered_at >= $2 AND a.answered_at < $3"
                ))
                .bind(survey_id)
                .bind(period.from)
                .bind(period.to),
            )
            .await?;
        let (invited,): (i64,) = r
            .fetch_one(
                query("SELECT COUNT(*) FROM survey_invitations WHERE survey_id = $1 AND created_at >= $2 AND created_at < $3")
                    .bind(survey_id)
                    .bind(period.from)
                    .bind(period.to),
            )
            .await?;
        let all: Vec<&Row> = rows.iter().collect();
        let (nps_all, csat_mean) = scores_of(&all);
        let npss: Vec<i64> = rows.iter().filter_map(|r| r.nps).collect();
        let scores: Vec<u8> = rows.iter().filter_map(|r| r.score.and_then(|v| u8::try_from(v).ok())).collect();
        let switches: Vec<bool> = rows.iter().filter_map(|r| r.would_switch).collect();
        let mut distribution: BTreeMap<i64, u64> = BTreeMap::new();
        let (lo, hi, main): (i64, i64, Vec<i64>) =
            if npss.is_empty() { (1, 5, scores.iter().map(|&s| i64::from(s)).collect()) } else { (0, 10, npss.clone()) };
        if !main.is_empty() {
            for v in lo..=hi {
                distribution.insert(v, 0);
            }
        }
        for v in main {
            *distribution.entry(v).or_default() += 1;
        }
        let tz = self.config.business_tz;
        let mut months: BTreeMap<String, Vec<&Row>> = BTreeMap::new();
        for row in &rows {
            months.entry(row.answered_at.with_timezone(&tz).format("%Y-%m").to_string()).or_default().push(row);
        }
        let trend = months
            .into_iter()
            .map(|(month, rs)| {
                let (n, c) = scores_of(&rs);
                MonthResult { month, responses: rs.len() as u64, nps: n, csat_mean: c }
            })
            .collect();
        let mut groups: Vec<GroupResult> = Vec::new();
        if by.is_some() {
            let mut by_key: BTreeMap<String, Vec<&Row>> = BTreeMap::new();
            for row in &rows {
                by_key.entry(row.group_key.clone().unwrap_or_else(|| "(none)".into())).or_default().push(row);
            }
            groups = by_key
                .into_iter()
                .map(|(key, rs)| {
                    let (n, c) = scores_of(&rs);
                    GroupResult { key, responses: rs.len() as u64, nps: n, csat_mean: c }
                })
                .collect();
            groups.sort_by(|a, b| b.responses.cmp(&a.responses).then_with(|| a.key.cmp(&b.key)));
        }
        let responses = rows.len() as u64;
        Ok(SurveyResults {
            survey_id,
            period,
            invited: invited as u64,
            responses,
            response_rate: (invited > 0).then(|| responses as f64 / invited as f64),
            nps: nps_all,
            promoters: npss.iter().filter(|&&n| n >= 9).count() as u64,
            passives: npss.iter().filter(|&&n| (7..=8).contains(&n)).count() as u64,
            detractors: npss.iter().filter(|&&n| n <= 6).count() as u64,
            csat_mean,
            csat_satisfied_share: csat(&scores).map(|c| c.1),
            would_switch_share: (!switches.is_empty()).then(|| switches.iter().filter(|&&w| w).count() as f64 / switches.len() as f64),
            distribution: distribution.into_iter().map(|(value, count)| ValueCount { value, count }).collect(),
            keywords: keywords(rows.iter().filter_map(|r| r.comment.as_deref()), 30)
                .into_iter()
                .map(|k| KeywordCount { term: k.term, count: k.count })
                .collect(),
            trend,
            groups,
            complaints_opened: rows.iter().filter(|r| r.ticket_id.is_some()).count() as u64,
        })
    }
}
