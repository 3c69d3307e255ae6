//! The demo's surveys: a year of monthly NPS waves (with the "2% cheaper" question) answered in
//! Chinese with open text, detractors whose answers opened complaints, and a CSAT survey sent by
//! its trigger when tickets are resolved (answered within a few days, so agents have a CSAT),
//! all through the real store API on a demo clock; then churn reasons for some churned customers.

use std::sync::Arc;

use anyhow::Result;
use chrono::{DateTime, Duration, Utc};
use patron_store::db::query;
use patron_store::engagement::outbox::{DeliveryOutcome, Outgoing};
use patron_store::service::churn::ChurnReasonInput;
use patron_store::surveys::answers::AnswerValue;
use patron_store::surveys::{AnswerInput, InvitationRequest, NewSurvey, Trigger};
use patron_store::users::Actor;
use patron_store::{FixedClock, Store};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const PROMOTER: [&str; 6] = [
    "菜品质量很好，服务员态度热情",
    "环境干净，上菜速度快",
    "锅底味道正宗，每周都来",
    "服务周到，孩子也很喜欢",
    "性价比高，朋友聚餐首选",
    "会员活动很实惠",
];
const PASSIVE: [&str; 5] = ["味道还行，就是排队太久", "菜品不错，价格有点贵", "环境一般，服务还可以", "上菜速度有时候慢", "停车不太方便"];
const DETRACTOR: [&str; 6] = [
    "上菜速度太慢，等了四十分钟",
    "服务员态度冷淡",
    "菜品质量下降，肉不新鲜",
    "外卖送得太慢，汤都凉了",
    "账单算错了还不承认",
    "价格涨了太多",
];

/// What the demo made.
pub struct DemoSurveys {
    /// NPS answers.
    pub nps_answers: usize,
    /// CSAT answers.
    pub csat_answers: usize,
    /// Complaints opened by unhappy answers.
    pub complaints: usize,
    /// Churn reasons recorded.
    pub churn_reasons: usize,
}

/// The CSAT survey its trigger sends when a ticket is resolved; made before the year of tickets
/// (at `since`) so their resolutions invite customers.
pub async fn csat_survey(store: &Store, since: DateTime<Utc>) -> Result<i64> {
    let s = store.clone().with_clock(Arc::new(FixedClock::new(since)));
    let new = NewSurvey {
        name: "售后服务满意度".into(),
        kind: "csat".into(),
        questions: None,
        ask_switch: false,
        trigger: Some(Trigger { on: "ticket_resolved".into(), days: None, segment: None, every_days: None }),
        recontact_days: Some(30),
        expires_days: 7,
    };
    Ok(s.create_survey(&Actor::cli(), new).await?.id)
}

fn nps_value(rng: &mut StdRng) -> (i64, &'static [&'static str]) {
    let r: f64 = rng.gen();
    if r < 0.45 {
        (rng.gen_range(9..=10), &PROMOTER)
    } else if r < 0.75 {
        (rng.gen_range(7..=8), &PASSIVE)
    } else {
        (rng.gen_range(0..=6), &DETRACTOR)
    }
}

/// Seeds the NPS waves, answers the CSAT invitations the tickets' resolutions made, and records
/// churn reasons.
pub async fn seed(store: &Store, seed: u64, now: DateTime<Utc>) -> Result<DemoSurveys> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5e_7a_11);
    let cli = Actor::cli();
    let clock = Arc::new(FixedClock::new(now - Duration::days(365)));
    let s = store.clone().with_clock(clock.clone());
    let customers: Vec<(i64,)> =
        store.db.reader().fetch_all(query("SELECT id FROM customers WHERE deleted_at IS NULL ORDER BY id")).await?;
    let nps = s
        .create_survey(
            &cli,
            NewSurvey {
                name: "用餐体验 NPS".into(),
                kind: "nps".into(),
                questions: None,
                ask_switch: true,
                trigger: None,
                recontact_days: Some(90),
                expires_days: 14,
            },
        )
        .await?;
    let mut out = DemoSurveys { nps_answers: 0, csat_answers: 0, complaints: 0, churn_reasons: 0 };
    let wave = (customers.len() / 25).clamp(10, 400);
    for month in 0..12 {
        let at = now - Duration::days(360 - month * 30);
        clock.set(at);
        let ids: Vec<i64> = (0..wave).map(|_| customers[rng.gen_range(0..customers.len())].0).collect();
        let invited = s.invite(&cli, nps.id, InvitationRequest { customer_ids: Some(ids), segment: None }).await?;
        for inv in invited.invited {
            if !rng.gen_bool(0.55) {
                continue;
            }
            clock.set(at + Duration::minutes(rng.gen_range(10..72 * 60)));
            let (score, texts) = nps_value(&mut rng);
            let mut answers = vec![AnswerValue { question: "nps".into(), value: serde_json::json!(score) }];
            if rng.gen_bool(0.7) {
                answers.push(AnswerValue { question: "why".into(), value: serde_json::json!(texts[rng.gen_range(0..texts.len())]) });
            }
            if rng.gen_bool(0.6) {
                answers.push(AnswerValue { question: "switch_2pct".into(), value: serde_json::json!(score <= 6 || rng.gen_bool(0.15)) });
            }
            let a = s.answer_survey(&inv.token, AnswerInput { answers }).await?;
            out.nps_answers += 1;
            out.complaints += usize::from(a.ticket_id.is_some());
        }
    }
    // CSAT: the invitations the resolutions made, answered a few hours to days after.
    clock.set(now);
    store.run_due_jobs().await?;
    store.queue_invitations().await?;
    let sent = received_invitations(store).await?;
    for (customer_id, token) in sent {
        let resolved: Option<(Option<DateTime<Utc>>,)> = store
            .db
            .reader()
            .fetch_optional(
                query(
                    "SELECT t.resolved_at FROM survey_invitations i JOIN tickets t ON t.customer_id = i.customer_id AND t.id = i.ticket_id \
                     WHERE i.customer_id = $1 ORDER BY i.id DESC LIMIT 1",
                )
                .bind(customer_id),
            )
            .await?;
        let Some((Some(resolved_at),)) = resolved else { continue };
        if !rng.gen_bool(0.6) {
            continue;
        }
        let at = resolved_at + Duration::minutes(rng.gen_range(30..96 * 60));
        if at >= now {
            continue;
        }
        clock.set(at);
        let score = [5, 5, 5, 4, 4, 4, 3, 2, 1][rng.gen_range(0..9)];
        let mut answers = vec![AnswerValue { question: "csat".into(), value: serde_json::json!(score) }];
        if score <= 3 || rng.gen_bool(0.3) {
            let pool: &[&str] = if score <= 3 { &DETRACTOR } else { &PROMOTER };
            answers.push(AnswerValue { question: "comment".into(), value: serde_json::json!(pool[rng.gen_range(0..pool.len())]) });
        }
        let a = s.answer_survey(&token, AnswerInput { answers }).await?;
        out.csat_answers += 1;
        out.complaints += usize::from(a.ticket_id.is_some());
    }
    // Churn reasons for about a third of the churned customers.
    clock.set(now);
    let reasons = store.service_settings().await?.churn_reasons;
    let churned: Vec<(i64,)> = store
        .db
        .reader()
        .fetch_all(query("SELECT customer_id FROM customer_scores WHERE churn IN ('absolute', 'relative') ORDER BY customer_id"))
        .await?;
    for (customer_id,) in churned {
        if !rng.gen_bool(0.35) {
            continue;
        }
        let reason = reasons[[0, 0, 1, 2, 2, 3, 4, 4, 5][rng.gen_range(0..9)].min(reasons.len() - 1)].clone();
        s.set_churn_reason(&cli, customer_id, ChurnReasonInput { reason, source: Some("call".into()), note: None }).await?;
        out.churn_reasons += 1;
    }
    Ok(out)
}

/// The survey invitations in the outbox as their customers received them: claimed, recorded as
/// sent, and each link's token read from the text (customer, token). Other due messages are
/// given back to the queue for the demo server's sender.
async fn received_invitations(store: &Store) -> Result<Vec<(i64, String)>> {
    let mut out = Vec::new();
    for _ in 0..100 {
        let (batch, _) = store.claim_due_messages(500, chrono::Duration::minutes(10), "http://demo.invalid").await?;
        let (surveys, others): (Vec<&Outgoing>, Vec<&Outgoing>) = batch.iter().partition(|m| survey_token(&m.content.text).is_some());
        let sent: Vec<(&Outgoing, &DeliveryOutcome)> = surveys.iter().map(|m| (*m, &DeliveryOutcome::Sent)).collect();
        store.record_deliveries(&sent).await?;
        store.release_messages(&others).await?;
        if surveys.is_empty() {
            break;
        }
        out.extend(surveys.iter().filter_map(|m| survey_token(&m.content.text).map(|t| (m.customer_id, t))));
    }
    Ok(out)
}

/// The token of the survey link in a message's text (`…/p/s/<64 hex digits>`).
fn survey_token(text: &str) -> Option<String> {
    let at = text.find("/p/s/")? + "/p/s/".len();
    let token: String = text[at..].chars().take_while(|c| c.is_ascii_hexdigit()).collect();
    (token.len() == 64).then_some(token)
}
