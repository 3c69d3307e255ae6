//! Answers through a survey link: what the public page shows (the questions and a greeting with
//! the customer's given name, nothing more), and the answer itself — checked against the
//! questions, stored once with the scores read from it, the link used, `survey.answered`
//! recorded, and for an unhappy answer (NPS 0–6, a 1–5 score of 1 or 2) a complaint opened for
//! the customer, all in one transaction.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{survey_in, Question};
use crate::db::query;
use crate::links::{self, LinkKind};
use crate::service::policies::customer_tier;
use crate::tickets::{open_in, Opening};
use crate::{events, Result, Store, StoreError};

/// What the public page of a survey link shows.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PublicSurvey {
    /// The survey's name.
    pub name: String,
    /// `nps`, `csat`, `listen` or `custom`.
    pub kind: String,
    /// The questions, in order.
    pub questions: Vec<Question>,
    /// The customer's given name, for the greeting (nothing else about them is shown).
    pub greeting_name: String,
    /// When the link stops working.
    pub expires_at: DateTime<Utc>,
}

/// One answer.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnswerValue {
    /// The question's key.
    pub question: String,
    /// A number (nps 0–10, scale 1–5), a text (text, single), a list of texts (multiple) or a
    /// boolean (switch).
    pub value: serde_json::Value,
}

/// A customer's answers.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnswerInput {
    /// One per question answered (each question at most once).
    pub answers: Vec<AnswerValue>,
}

/// A stored answer (staff's view: the 360 page, results).
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct SurveyAnswer {
    /// The invitation answered.
    pub invitation_id: i64,
    /// The customer.
    pub customer_id: i64,
    /// The survey.
    pub survey_id: i64,
    /// The survey's kind.
    pub kind: String,
    /// NPS answer (0–10).
    pub nps: Option<i64>,
    /// 1–5 score (CSAT, listen, a custom scale).
    pub score: Option<i64>,
    /// Would switch for a 2% lower price.
    pub would_switch: Option<bool>,
    /// The open answers, joined.
    pub comment: Option<String>,
    /// The complaint the answer opened.
    pub ticket_id: Option<i64>,
    /// When.
    pub answered_at: DateTime<Utc>,
}

/// The given name of a full name, for a greeting: the first word of a name with spaces
/// ("Anna Li" → "Anna"), a Chinese name without its one-character surname ("王小明" → "小明").
pub fn given_name(full: &str) -> String {
    let full = full.trim();
    if let Some((first, _)) = full.split_once(char::is_whitespace) {
        return first.to_owned();
    }
    let chars: Vec<char> = full.chars().collect();
    let han = chars.iter().all(|c| ('\u{4E00}'..='\u{9FFF}').contains(c));
    if han && (3..=4).contains(&chars.len()) {
        chars[1..].iter().collect()
    } else {
        full.to_owned()
    }
}

/// Checks the answers against the questions; the answers as a map by key.
fn check_answers(questions: &[Question], input: &AnswerInput) -> Result<serde_json::Map<String, serde_json::Value>> {
    if input.answers.len() > questions.len() {
        return Err(StoreError::invalid("answers", "more answers than questions"));
    }
    let mut out = serde_json::Map::new();
    for (i, a) in input.answers.iter().enumerate() {
        let field = format!("answers[{i}]");
        let Some(q) = questions.iter().find(|q| q.key == a.question) else {
            return Err(StoreError::invalid(format!("{field}.question"), "no such question in this survey"));
        };
        if out.contains_key(&q.key) {
            return Err(StoreError::invalid(format!("{field}.question"), "answered twice"));
        }
        let bad = |m: &str| StoreError::invalid(format!("{field}.value"), m.to_owned());
        let v = &a.value;
        let value = match q.kind.as_str() {
            "nps" => match v.as_i64() {
                Some(n) if (0..=10).contains(&n) => serde_json::json!(n),
                _ => return Err(bad("a whole number from 0 to 10")),
            },
            "scale" => match v.as_i64() {
                Some(n) if (1..=5).contains(&n) => serde_json::json!(n),
                _ => return Err(bad("a whole number from 1 to 5")),
            },
            "switch" => match v.as_bool() {
                Some(b) => serde_json::json!(b),
                None => return Err(bad("true or false")),
            },
            "text" => match v.as_str() {
                Some(t) => {
                    crate::tickets::check_len(&format!("{field}.value"), t, 2000)?;
                    let t = t.trim();
                    if t.is_empty() {
                        continue;
                    }
                    serde_json::json!(t)
                }
                None => return Err(bad("a text")),
            },
            "single" => match v.as_str() {
                Some(t) if q.options.iter().any(|o| o == t) => serde_json::json!(t),
                _ => return Err(bad("one of the question's options")),
            },
            _ => match v.as_array() {
                Some(list) if !list.is_empty() && list.iter().all(|x| x.as_str().is_some_and(|t| q.options.iter().any(|o| o == t))) => {
                    let mut chosen: Vec<&str> = list.iter().filter_map(|x| x.as_str()).collect();
                    chosen.dedup();
                    serde_json::json!(chosen)
                }
                _ => return Err(bad("a list of the question's options")),
            },
        };
        out.insert(q.key.clone(), value);
    }
    if let Some(q) = questions.iter().find(|q| q.required && !out.contains_key(&q.key)) {
        return Err(StoreError::invalid("answers", format!("the question {} needs an answer", q.key)));
    }
    if out.is_empty() {
        return Err(StoreError::invalid("answers", "nothing answered"));
    }
    Ok(out)
}

/// The scores read from an answer: the first NPS, the first 1–5 scale, the switch answer, the
/// open texts joined.
fn scores(
    questions: &[Question],
    a: &serde_json::Map<String, serde_json::Value>,
) -> (Option<i64>, Option<i64>, Option<bool>, Option<String>) {
    let first = |kind: &str| questions.iter().filter(|q| q.kind == kind).find_map(|q| a.get(&q.key));
    let nps = first("nps").and_then(|v| v.as_i64());
    let score = first("scale").and_then(|v| v.as_i64());
    let switch = first("switch").and_then(|v| v.as_bool());
    let texts: Vec<&str> = questions.iter().filter(|q| q.kind == "text").filter_map(|q| a.get(&q.key)?.as_str()).collect();
    let comment = if texts.is_empty() { None } else { Some(texts.join("\n")) };
    (nps, score, switch, comment)
}

/// An answer is unhappy at NPS 0–6 (a detractor) or a 1–5 score of 1 or 2.
pub fn unhappy(nps: Option<i64>, score: Option<i64>) -> bool {
    nps.is_some_and(|n| n <= 6) || score.is_some_and(|s| s <= 2)
}

impl Store {
    /// What the page of a survey link shows (404 unknown, 410 expired, 409 answered).
    pub async fn public_survey(&self, token: &str) -> Result<PublicSurvey> {
        let link = self.public_link(LinkKind::Survey, token).await?;
        let mut r = self.db.reader();
        let inv: Option<(i64,)> = r
            .fetch_optional(
                query("SELECT survey_id FROM survey_invitations WHERE customer_id = $1 AND id = $2")
                    .bind(link.customer_id)
                    .bind(link.subject_id),
            )
            .await?;
        let (survey_id,) = inv.ok_or(StoreError::NotFound("link"))?;
        let survey = self.survey(survey_id).await?;
        if !survey.active {
            return Err(StoreError::Gone("this survey is closed".into()));
        }
        let name: Option<(String,)> =
            r.fetch_optional(query("SELECT name FROM customers WHERE id = $1 AND deleted_at IS NULL").bind(link.customer_id)).await?;
        let (name,) = name.ok_or(StoreError::NotFound("link"))?;
        Ok(PublicSurvey {
            name: survey.name,
            kind: survey.kind,
            questions: survey.questions,
            greeting_name: given_name(&name),
            expires_at: link.expires_at,
        })
    }

    /// The customer's answer through their link, once. Returns the stored answer.
    pub async fn answer_survey(&self, token: &str, input: AnswerInput) -> Result<SurveyAnswer> {
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let link = links::usable(&mut tx, LinkKind::Survey, token, now).await?;
        let customer_id = link.customer_id;
        if crate::customers::lock_customers(&mut tx, &[customer_id]).await?.is_some() {
            return Err(StoreError::NotFound("link"));
        }
        // (survey, the ticket it asks about, that ticket's agent, store)
        type InvitationRow = (i64, Option<i64>, Option<i64>, Option<String>);
        let inv: Option<InvitationRow> = tx
            .fetch_optional(
                query("SELECT survey_id, ticket_id, agent_id, store FROM survey_invitations WHERE customer_id = $1 AND id = $2 AND answered_at IS NULL")
                    .bind(customer_id)
                    .bind(link.subject_id),
            )
            .await?;
        let (survey_id, about_ticket, agent_id, store) =
            inv.ok_or_else(|| StoreError::State("this survey has been answered already".into()))?;
        let survey = survey_in(&mut tx, survey_id).await?;
        if !survey.active {
            return Err(StoreError::Gone("this survey is closed".into()));
        }
        let questions = survey.questions.0.clone();
        let answers = check_answers(&questions, &input)?;
        let (nps, score, would_switch, comment) = scores(&questions, &answers);
        let tier = customer_tier(&mut tx, customer_id).await?;
        let mut ticket_id = None;
        if unhappy(nps, score) {
            let owner: Option<(Option<i64>,)> =
                tx.fetch_optional(query("SELECT owner_id FROM customers WHERE id = $1").bind(customer_id)).await?;
            let assignee = owner.and_then(|o| o.0).or(agent_id);
            let headline = match (nps, score) {
                (Some(n), _) => format!("NPS {n}"),
                (None, Some(s)) => format!("{s}/5"),
                _ => String::new(),
            };
            let subject: String = format!("{} · {headline}", survey.name).chars().take(200).collect();
            let mut body = headline.clone();
            if let Some(c) = &comment {
                body.push_str(&format!("\n“{c}”"));
            }
            if let Some(t) = about_ticket {
                body.push_str(&format!("\n(ticket #{t})"));
            }
            let opening = Opening {
                customer_id,
                kind: "complaint",
                channel: "survey",
                subject: &subject,
                body: &body,
                category: None,
                store: store.as_deref(),
                assignee_id: assignee,
                department: None,
                opened_at: now,
                by: "survey",
            };
            ticket_id = Some(open_in(&mut tx, self, opening, now).await?);
        }
        tx.execute(
            query(
                "INSERT INTO survey_answers (customer_id, invitation_id, survey_id, kind, answers, nps, score, would_switch, comment, tier, store, agent_id, ticket_id, answered_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
            )
            .bind(customer_id)
            .bind(link.subject_id)
            .bind(survey_id)
            .bind(survey.kind.clone())
            .bind(serde_json::Value::Object(answers))
            .bind(nps)
            .bind(score)
            .bind(would_switch)
            .bind(comment.clone())
            .bind(tier.clone())
            .bind(store)
            .bind(agent_id)
            .bind(ticket_id)
            .bind(now),
        )
        .await?;
        tx.execute(
            query("UPDATE survey_invitations SET answered_at = $1 WHERE customer_id = $2 AND id = $3")
                .bind(now)
                .bind(customer_id)
                .bind(link.subject_id),
        )
        .await?;
        links::mark_used(&mut tx, &link, token, now).await?;
        let payload = serde_json::json!({"survey_id": survey_id, "kind": survey.kind, "nps": nps, "score": score,
            "would_switch": would_switch, "tier": tier, "ticket_id": ticket_id, "about_ticket_id": about_ticket});
        events::append(&mut tx, customer_id, "survey.answered", Some(link.subject_id), payload, now).await?;
        tx.commit().await?;
        Ok(SurveyAnswer {
            invitation_id: link.subject_id,
            customer_id,
            survey_id,
            kind: survey.kind,
            nps,
            score,
            would_switch,
            comment,
            ticket_id,
            answered_at: now,
        })
    }

    /// A customer's survey answers, newest first (at most 100).
    pub async fn customer_survey_answers(&self, customer_id: i64) -> Result<Vec<SurveyAnswer>> {
        self.db
            .reader()
            .fetch_all(
                query(
                    "SELECT invitation_id, customer_id, survey_id, kind, nps, score, would_switch, comment, ticket_id, answered_at \
                     FROM survey_answers WHERE customer_id = $1 ORDER BY answered_at DESC, invitation_id DESC LIMIT 100",
                )
                .bind(customer_id),
            )
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greeting_uses_the_given_name_only() {
        assert_eq!(given_name("王小明"), "小明");
        assert_eq!(given_name("李娜"), "李娜");
        assert_eq!(given_name("Anna Li"), "Anna");
        assert_eq!(given_name("  Bo  "), "Bo");
    }

    #[test]
    fn unhappy_answers() {
        assert!(unhappy(Some(6), None) && !unhappy(Some(7), None));
        assert!(unhappy(None, Some(2)) && !unhappy(None, Some(3)));
        assert!(!unhappy(None, None));
    }
}
