//! Next best action (issue 12 §7, DESIGN.md C18): one recommended action per customer with its
//! reason in plain words, computed by each analysis run and stored with the scores
//! (`customer_scores.next_action`, `next_action_category_id`, `next_action_detail`).
//!
//! The rules and their priority order are in `patron_analytics::next_action`; the category an
//! upsell suggests comes from `patron_analytics::basket` (co-occurrence lift over every
//! customer's categories). This module gathers what those need — baskets, the last contact of
//! each organisation and its tier's cadence (`service_policies.contact_cadence_days`), the
//! latest NPS — and renders the stored figures as a sentence in Chinese or English.
//!
//! The reason names tiers, stages, days and categories, never money: it is shown to every role
//! that may see the customer, including those that see money masked.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use patron_analytics::basket::{category_lift, LiftConfig, LiftTable};
use patron_analytics::next_action::{next_action, Action, ActionInput};
use patron_analytics::AnalyticsOutput;
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use crate::analytics::day_date;
#[cfg(test)]
use crate::db::ColType;
use crate::db::{query, Arg};
use crate::engagement::calibrated::Calibration;
use crate::engagement::Channel;
use crate::{Result, Store};

/// The interaction kinds that count as contact with an organisation: a call, a visit, a reply.
/// Marketing messages and their opens and clicks do not.
pub const CONTACT_KINDS: [&str; 3] = ["call", "visit", "reply"];

/// What an analysis run stores besides the model scores: the next best action and the channel
/// calibration of each customer (index = position in the run's customer ids).
#[derive(Debug, Clone, Default)]
pub struct ScoreExtras {
    /// (action, suggested category, the figures behind the reason).
    pub actions: Vec<(Action, Option<i64>, Value)>,
    /// Channel calibration.
    pub calibration: Vec<Calibration>,
}

/// The extra columns of `customer_scores` (migration 0020), in the order of [`extra_args`].
#[cfg(test)]
pub(crate) const EXTRA_COLUMNS: [(&str, ColType); 8] = [
    ("next_action", ColType::Text),
    ("next_action_category_id", ColType::Int),
    ("next_action_detail", ColType::Text),
    ("preferred_channel", ColType::Text),
    ("response_rate_email", ColType::Float),
    ("response_rate_sms", ColType::Float),
    ("response_rate_wechat", ColType::Float),
    ("response_rate_mail", ColType::Float),
];

/// The values of [`EXTRA_COLUMNS`] for customer `c` (NULLs without extras).
pub(crate) fn extra_args(extras: Option<&ScoreExtras>, c: usize) -> Vec<Arg> {
    let action = extras.and_then(|e| e.actions.get(c));
    let cal = extras.and_then(|e| e.calibration.get(c));
    let rate = |i: usize| Arg::F64(cal.map(|k| k.rates[i]).filter(|v| v.is_finite()));
    vec![
        Arg::Text(action.map(|a| a.0.key().to_owned())),
        Arg::I64(action.and_then(|a| a.1)),
        Arg::Text(action.map(|a| a.2.to_string())),
        Arg::Text(cal.and_then(|k| k.preferred).map(|ch| ch.as_str().to_owned())),
        rate(0),
        rate(1),
        rate(2),
        rate(3),
    ]
}

/// A customer's next best action as the API answers it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NextAction {
    /// The customer.
    pub customer_id: i64,
    /// `win_back`, `retain`, `review`, `referral`, `nurture`, `upsell` or `none`.
    pub action: String,
    /// The category an upsell suggests.
    pub category_id: Option<i64>,
    /// Its name.
    pub category: Option<String>,
    /// Why, in English.
    pub reason_en: String,
    /// Why, in Chinese.
    pub reason_zh: String,
    /// The figures behind the reason (tier, stage, days, cadence, NPS, lift …).
    #[schema(value_type = Object)]
    pub detail: Value,
    /// The day of the analysis that chose it (none before the customer was first analysed).
    pub as_of: Option<NaiveDate>,
    /// The customer's preferred channel at that analysis (among the channels consented then).
    pub preferred_channel: Option<Channel>,
}

/// Days from an instant's business day to `as_of_day` (0 when the instant is later).
fn days_to(as_of_day: i32, t: DateTime<Utc>, tz: chrono_tz::Tz) -> i64 {
    i64::from(as_of_day).saturating_sub(i64::from(crate::analytics::business_day(t, tz))).max(0)
}

fn date_of(day: Option<i32>) -> Value {
    day.and_then(day_date).map(|d| json!(d.to_string())).unwrap_or(Value::Null)
}

impl Store {
    /// Every customer's next best action for an analysis run, stored with the channel
    /// calibration read meanwhile (`calibration`, by customer as `customer_ids`); `baskets` are
    /// the categories each bought ([`crate::analytics::AnalysisInput::baskets`]).
    pub(crate) async fn score_extras(
        &self,
        customer_ids: &[i64],
        output: &AnalyticsOutput,
        latest_nps: Option<&[Option<u8>]>,
        as_of_day: i32,
        baskets: Vec<Vec<u32>>,
        calibration: Vec<Calibration>,
    ) -> Result<ScoreExtras> {
        if baskets.len() != customer_ids.len() {
            return Err(crate::StoreError::Internal(format!("{} customers for {} baskets", customer_ids.len(), baskets.len())));
        }
        let mut r = self.db.reader();
        // Where the phase's time goes at scale, logged at debug level as the run's phases are.
        let started = std::time::Instant::now();
        let table: LiftTable = category_lift(&baskets, &LiftConfig::default());
        tracing::debug!(ms = started.elapsed().as_millis() as u64, "next best action: category lift");
        let names: HashMap<i64, String> = r.fetch_all(query("SELECT id, name FROM categories")).await?.into_iter().collect();
        // Organisations: created when, last contacted when.
        let kinds = CONTACT_KINDS.map(|k| format!("'{k}'")).join(", ");
        let orgs: Vec<(i64, DateTime<Utc>, Option<DateTime<Utc>>)> = r
            .fetch_all(query(format!(
                "SELECT c.id, c.created_at, MAX(i.occurred_at) FROM customers c \
                 LEFT JOIN interactions i ON i.customer_id = c.id AND i.kind IN ({kinds}) \
                 WHERE c.kind = 'organisation' AND c.deleted_at IS NULL GROUP BY c.id, c.created_at"
            )))
            .await?;
        let orgs: HashMap<i64, (DateTime<Utc>, Option<DateTime<Utc>>)> = orgs.into_iter().map(|(id, c, l)| (id, (c, l))).collect();
        let cadence: HashMap<String, i64> = self.service_policies().await?.into_iter().map(|p| (p.tier, p.contact_cadence_days)).collect();
        tracing::debug!(ms = started.elapsed().as_millis() as u64, "next best action: organisations read");
        let tz = self.config.business_tz;
        let k = &output.scores;
        let s = &output.summaries;
        // Each customer's choice and its reasons stand alone: both cores (2.4 s for 1 M
        // customers on one, most of it building the reasons' JSON).
        use rayon::prelude::*;
        let actions: Vec<(Action, Option<i64>, Value)> = customer_ids
            .par_iter()
            .enumerate()
            .map(|(c, id)| {
                let tier = k.abcd.tier[c];
                let tier_key = tier.map(|t| t.key()).unwrap_or("default");
                let contact = orgs.get(id).map(|(created, last)| {
                    let days = days_to(as_of_day, last.unwrap_or(*created), tz);
                    let cad = cadence
                        .get(tier_key)
                        .copied()
                        .unwrap_or_else(|| crate::service::policies::default_policy(tier_key).contact_cadence_days);
                    (days, cad, *last)
                });
                let upsell = table.recommend(&baskets[c]);
                let input = ActionInput {
                    stage: k.lifecycle.stage[c],
                    tier,
                    rfm_class: k.rfm.class[c],
                    latest_nps: latest_nps.and_then(|v| v.get(c).copied().flatten()),
                    loyalty_situation: k.loyalty.situation[c],
                    contact: contact.map(|(d, cad, _)| (d, cad)),
                    upsell,
                };
                let action = next_action(&input);
                let mut detail = json!({
                    "stage": input.stage.key(),
                    "tier": tier.map(|t| t.key()),
                });
                let mut category = None;
                match action {
                    Action::WinBack => {
                        detail["rfm_class"] = json!(input.rfm_class.map(|x| x.key()));
                        detail["days_since_purchase"] = json!(k.rfm.recency_days[c]);
                        detail["last_purchase"] = date_of(s.last_purchase_day[c]);
                    }
                    Action::Retain => {
                        detail["p_alive"] = json!(k.p_alive[c].filter(|p| p.is_finite()));
                        detail["churn"] = json!(crate::analytics::churn_key(output, c));
                        detail["days_since_purchase"] = json!(k.rfm.recency_days[c]);
                    }
                    Action::Review => {
                        if let Some((days, cad, last)) = contact {
                            detail["days_since_contact"] = json!(days);
                            detail["cadence_days"] = json!(cad);
                            detail["last_contact"] = json!(last.map(|t| t.with_timezone(&tz).date_naive().to_string()));
                        }
                    }
                    Action::Referral => {
                        detail["nps"] = json!(input.latest_nps);
                        detail["loyalty_situation"] = json!(input.loyalty_situation.map(|l| l.key()));
                    }
                    Action::Nurture => {
                        detail["first_purchase"] = date_of(s.first_purchase_day[c]);
                        detail["days_since_purchase"] = json!(k.rfm.recency_days[c]);
                    }
                    Action::Upsell => {
                        if let Some(u) = upsell {
                            category = Some(i64::from(u.category));
                            detail["category_id"] = json!(u.category);
                            detail["category"] = json!(names.get(&i64::from(u.category)));
                            detail["because_of_id"] = json!(u.because_of);
                            detail["because_of"] = json!(names.get(&i64::from(u.because_of)));
                            detail["lift"] = json!((u.lift * 100.0).round() / 100.0);
                            detail["customers_with_both"] = json!(u.both);
                        }
                    }
                    Action::None => {}
                }
                (action, category, detail)
            })
            .collect();
        tracing::debug!(ms = started.elapsed().as_millis() as u64, "next best action: actions chosen");
        if calibration.len() != customer_ids.len() {
            return Err(crate::StoreError::Internal(format!("{} customers for {} calibrations", customer_ids.len(), calibration.len())));
        }
        Ok(ScoreExtras { actions, calibration })
    }

    /// How many customers the latest analysis gave each action, in priority order.
    pub async fn next_action_counts(&self) -> Result<Vec<(String, i64)>> {
        let rows: Vec<(Option<String>, i64)> =
            self.db.reader().fetch_all(query("SELECT next_action, COUNT(*) FROM customer_scores GROUP BY next_action")).await?;
        Ok(Action::ALL
            .iter()
            .map(|a| (a.key().to_owned(), rows.iter().filter(|r| r.0.as_deref() == Some(a.key())).map(|r| r.1).sum()))
            .collect())
    }

    /// A customer's next best action from the latest analysis (`none`, without a date, before
    /// the customer was first analysed).
    pub async fn customer_next_action(&self, customer_id: i64) -> Result<NextAction> {
        type Row = (i64, Option<String>, Option<i64>, Option<String>, Option<String>);
        let row: Option<Row> = self
            .db
            .reader()
            .fetch_optional(
                query(
                    "SELECT as_of_day, next_action, next_action_category_id, next_action_detail, preferred_channel \
                     FROM customer_scores WHERE customer_id = $1",
                )
                .bind(customer_id),
            )
            .await?;
        let Some((day, action, category_id, detail, preferred)) = row else {
            return Ok(NextAction {
                customer_id,
                action: Action::None.key().into(),
                category_id: None,
                category: None,
                reason_en: "Not analysed yet: the next analysis run will recommend an action.".into(),
                reason_zh: "尚未分析：下次分析后给出建议。".into(),
                detail: json!({}),
                as_of: None,
                preferred_channel: None,
            });
        };
        let detail: Value = detail.and_then(|d| serde_json::from_str(&d).ok()).unwrap_or_else(|| json!({}));
        let action = action.as_deref().and_then(Action::parse);
        // Scores of a run before migration 0020 have no action: say so rather than guess.
        let (reason_en, reason_zh) = match action {
            Some(a) => (reason(a, &detail, false), reason(a, &detail, true)),
            None => {
                ("Not computed by the latest analysis run: run the analysis again.".into(), "最近一次分析未计算此项，请重新分析。".into())
            }
        };
        let category = detail.get("category").and_then(Value::as_str).map(str::to_owned);
        Ok(NextAction {
            customer_id,
            action: action.unwrap_or(Action::None).key().into(),
            category_id,
            category,
            reason_en,
            reason_zh,
            detail,
            as_of: i32::try_from(day).ok().and_then(day_date),
            preferred_channel: preferred.as_deref().and_then(|p| Channel::parse(p).ok()),
        })
    }
}

fn stage_words(key: &str, zh: bool) -> &'static str {
    match (key, zh) {
        ("churned", true) => "已流失",
        ("churned", false) => "churned",
        ("at_risk", true) => "有流失风险",
        ("at_risk", false) => "at risk",
        ("new", true) => "新客户",
        ("new", false) => "new",
        ("loyal", true) => "忠诚",
        ("loyal", false) => "loyal",
        ("won_back", true) => "已挽回",
        ("won_back", false) => "won back",
        ("prospect", true) => "尚未购买",
        ("prospect", false) => "a prospect (no purchase yet)",
        (_, true) => "活跃",
        (_, false) => "active",
    }
}

/// The reason of an action in plain words, from its stored figures.
pub fn reason(action: Action, d: &Value, zh: bool) -> String {
    let tier = d.get("tier").and_then(Value::as_str);
    let int = |k: &str| d.get(k).and_then(Value::as_i64);
    let text = |k: &str| d.get(k).and_then(Value::as_str).unwrap_or("");
    let stage = stage_words(text("stage"), zh);
    let who = match (tier, zh) {
        (Some(t), true) => format!("{t}类客户"),
        (Some(t), false) => format!("A tier-{t} customer"),
        (None, true) => "客户".to_owned(),
        (None, false) => "A customer".to_owned(),
    };
    match (action, zh) {
        (Action::WinBack, true) => {
            let days = int("days_since_purchase").map(|n| format!("，已 {n} 天未购买")).unwrap_or_default();
            format!("{who}已流失{days}，曾是高价值客户：建议挽回（客户经理亲自联系，附专属优惠）。")
        }
        (Action::WinBack, false) => {
            let days = int("days_since_purchase").map(|n| format!(", no purchase for {n} days")).unwrap_or_default();
            format!("{who} who spent a lot has churned{days}: win them back (a personal message from the account manager with an offer).")
        }
        (Action::Retain, true) => {
            let p = d.get("p_alive").and_then(Value::as_f64).map(|p| format!("，仍活跃的概率 {:.0}%", p * 100.0)).unwrap_or_default();
            format!("{who}价值高但有流失风险{p}：建议主动维系，了解原因。")
        }
        (Action::Retain, false) => {
            let p =
                d.get("p_alive").and_then(Value::as_f64).map(|p| format!(" (chance still active {:.0}%)", p * 100.0)).unwrap_or_default();
            format!("{who} of high value is at risk{p}: get in touch to keep them and learn why.")
        }
        (Action::Review, true) => {
            let cad = int("cadence_days").unwrap_or(0);
            match (int("days_since_contact"), d.get("last_contact").and_then(Value::as_str)) {
                (Some(n), Some(_)) => format!(
                    "企业客户已 {n} 天未联系（{}类客户应每 {cad} 天联系一次）：建议回顾合作关系，安排拜访或电话。",
                    tier.unwrap_or("默认")
                ),
                (Some(n), None) => format!("企业客户建档 {n} 天从未联系（应每 {cad} 天联系一次）：建议回顾合作关系，安排拜访或电话。"),
                _ => "企业客户超过联系周期未联系：建议回顾合作关系。".to_owned(),
            }
        }
        (Action::Review, false) => {
            let cad = int("cadence_days").unwrap_or(0);
            match (int("days_since_contact"), d.get("last_contact").and_then(Value::as_str)) {
                (Some(n), Some(_)) => format!("The organisation was last contacted {n} days ago (its tier calls for contact every {cad} days): review the relationship, plan a visit or a call."),
                (Some(n), None) => format!("The organisation was never contacted in the {n} days since it was created (every {cad} days is its tier's cadence): review the relationship, plan a visit or a call."),
                _ => "The organisation is overdue for contact: review the relationship.".to_owned(),
            }
        }
        (Action::Referral, true) => {
            format!("{who}忠诚且愿意推荐（NPS {} 分）：建议邀请推荐新客户。", int("nps").unwrap_or(0))
        }
        (Action::Referral, false) => {
            format!("{who} who is loyal scored {} out of 10 for recommending us: ask for a referral.", int("nps").unwrap_or(0))
        }
        (Action::Nurture, true) => {
            let first = d.get("first_purchase").and_then(Value::as_str).map(|f| format!("（首次购买 {f}）")).unwrap_or_default();
            format!("新客户{first}：建议培育，感谢首单并引导第二次购买。")
        }
        (Action::Nurture, false) => {
            let first = d.get("first_purchase").and_then(Value::as_str).map(|f| format!(" (first purchase {f})")).unwrap_or_default();
            format!("A new customer{first}: nurture them — thank them for the first order and invite a second.")
        }
        (Action::Upsell, true) => {
            let lift = d.get("lift").and_then(Value::as_f64).unwrap_or(0.0);
            format!(
                "买「{}」的客户购买「{}」的可能是平均的 {lift:.1} 倍，而该客户尚未买过：建议推荐「{}」。",
                text("because_of"),
                text("category"),
                text("category")
            )
        }
        (Action::Upsell, false) => {
            let lift = d.get("lift").and_then(Value::as_f64).unwrap_or(0.0);
            format!(
                "Customers who buy {} are {lift:.1} times as likely as average to buy {}, which this customer has not bought yet: suggest {}.",
                text("because_of"),
                text("category"),
                text("category")
            )
        }
        (Action::None, true) => format!("客户{stage}，暂无需要采取的行动。"),
        (Action::None, false) => format!("The customer is {stage}; nothing calls for action now."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scores_table_ends_with_the_extra_columns() {
        assert_eq!(extra_args(None, 0).len(), EXTRA_COLUMNS.len());
        let names = crate::analytics::score_column_names();
        let tail: Vec<&str> = names[names.len() - EXTRA_COLUMNS.len()..].to_vec();
        assert_eq!(tail, EXTRA_COLUMNS.map(|c| c.0).to_vec());
    }

    #[test]
    fn reasons_in_both_languages_name_the_figures() {
        let d = json!({"tier": "A", "stage": "churned", "days_since_purchase": 240});
        assert!(reason(Action::WinBack, &d, false).contains("240 days"));
        assert!(reason(Action::WinBack, &d, true).contains("A类客户已流失，已 240 天未购买"));
        let d = json!({"tier": "B", "stage": "active", "days_since_contact": 75, "cadence_days": 60, "last_contact": "2026-09-01"});
        assert!(reason(Action::Review, &d, false).contains("75 days ago") && reason(Action::Review, &d, false).contains("every 60 days"));
        assert!(reason(Action::Review, &d, true).contains("75 天未联系"));
        let d = json!({"category": "茶", "because_of": "咖啡", "lift": 1.28, "stage": "active"});
        assert!(reason(Action::Upsell, &d, false).contains("buy 咖啡 are 1.3 times"));
        assert!(reason(Action::Upsell, &d, true).contains("建议推荐「茶」"));
        assert_eq!(
            reason(Action::None, &json!({"stage": "prospect"}), false),
            "The customer is a prospect (no purchase yet); nothing calls for action now."
        );
    }
}
