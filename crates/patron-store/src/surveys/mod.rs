//! Surveys (DESIGN.md C10): NPS, CSAT, "did we listen to you well?" and custom questionnaires,
//! sent as single-use links (`links`), answered once on a public page, with results by tier,
//! segment, store and agent, keywords of the open answers, and a complaint opened for every
//! unhappy answer. Answers feed the analytics (the latest NPS is the loyalty matrix's attitude,
//! the "2% cheaper" answer part of competitor immunity).
//!
//! Invitations and answers belong to their customer (keyed by `customer_id`, one shard on
//! Citus); the survey definitions are a small reference table.

pub mod answers;
pub mod invitations;
pub mod results;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use utoipa::ToSchema;

use crate::db::{query, Tx};
use crate::tickets::{check_len, clean, one_of};
use crate::users::Actor;
use crate::{audit, Result, Store, StoreError};

pub use answers::{AnswerInput, PublicSurvey, SurveyAnswer};
pub use invitations::{InvitationRequest, InviteOutcome, Invited, Skipped, TriggerReport};
pub use results::{GroupResult, KeywordCount, MonthResult, SurveyResults, ValueCount};

/// Survey kinds.
pub const KINDS: [&str; 4] = ["nps", "csat", "listen", "custom"];
/// Question types.
pub const QUESTION_TYPES: [&str; 6] = ["nps", "scale", "single", "multiple", "text", "switch"];
/// Trigger kinds.
pub const TRIGGERS: [&str; 3] = ["order_completed", "ticket_resolved", "periodic"];
/// The key of the "would you switch for a 2% lower price?" question.
pub const SWITCH_KEY: &str = "switch_2pct";

/// One question.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Question {
    /// Its key in the answers (`a`–`z`, `0`–`9`, `_`; 1–40 characters; unique in the survey).
    pub key: String,
    /// `nps` (0–10), `scale` (1–5), `single` (one of `options`), `multiple` (some of
    /// `options`), `text` (open, up to 2,000 characters) or `switch` (yes/no).
    #[serde(rename = "type")]
    pub kind: String,
    /// The question as asked (the built-in questions have a text in each language when empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The choices of `single` and `multiple` (2–20, each 1–100 characters).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    /// Must be answered.
    #[serde(default)]
    pub required: bool,
}

/// What invites customers to a survey on its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Trigger {
    /// `order_completed` (`days` after a completed order), `ticket_resolved` (when a ticket
    /// of theirs is resolved) or `periodic` (the members of `segment`, every `every_days`).
    pub on: String,
    /// Days after the order (0–90).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days: Option<i64>,
    /// A segment's key (periodic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<String>,
    /// Days between rounds (periodic, 1–365).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every_days: Option<i64>,
}

/// A survey.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Survey {
    /// Id.
    pub id: i64,
    /// Name (staff see it; customers see it as the page's title).
    pub name: String,
    /// `nps`, `csat`, `listen` or `custom`.
    pub kind: String,
    /// Its questions, in order.
    pub questions: Vec<Question>,
    /// What invites customers on its own (none: invitations by hand).
    pub trigger: Option<Trigger>,
    /// Not the same customer twice within this many days.
    pub recontact_days: i64,
    /// Days an invitation's link works.
    pub expires_days: i64,
    /// Still inviting and accepting answers.
    pub active: bool,
    /// Who made it.
    pub created_by: String,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// A new survey.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSurvey {
    /// Name (1–200 characters).
    pub name: String,
    /// `nps` (0–10 and "why?"), `csat` (1–5), `listen` ("did we listen to you well?", 1–5 and
    /// an open question) or `custom` (`questions` given).
    pub kind: String,
    /// The questions of a `custom` survey (1–30); the other kinds have theirs built in.
    pub questions: Option<Vec<Question>>,
    /// Adds "would you switch for a 2% lower price?" (competitor immunity).
    #[serde(default)]
    pub ask_switch: bool,
    /// What invites customers on its own.
    pub trigger: Option<Trigger>,
    /// Not the same customer twice within this many days (0–3650, default 90).
    pub recontact_days: Option<i64>,
    /// Days an invitation's link works (1–365).
    pub expires_days: i64,
}

/// A change to a survey (absent fields stay).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SurveyPatch {
    /// Name.
    pub name: Option<String>,
    /// Inviting and accepting answers, or not.
    pub active: Option<bool>,
    /// Not the same customer twice within this many days.
    pub recontact_days: Option<i64>,
}

#[derive(serde::Deserialize, sqlx::FromRow)]
pub(crate) struct SurveyRow {
    id: i64,
    name: String,
    kind: String,
    #[serde(deserialize_with = "crate::db::direct::json_text")]
    questions: Json<Vec<Question>>,
    #[serde(deserialize_with = "crate::db::direct::json_text")]
    trigger: Json<Option<Trigger>>,
    recontact_days: i64,
    expires_days: i64,
    active: bool,
    pub(crate) event_cursor: i64,
    created_by: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<SurveyRow> for Survey {
    fn from(r: SurveyRow) -> Self {
        Survey {
            id: r.id,
            name: r.name,
            kind: r.kind,
            questions: r.questions.0,
            trigger: r.trigger.0,
            recontact_days: r.recontact_days,
            expires_days: r.expires_days,
            active: r.active,
            created_by: r.created_by,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

pub(crate) const SURVEY_SELECT: &str = "SELECT id, name, kind, questions, trigger, recontact_days, expires_days, active, event_cursor, \
     created_by, created_at, updated_at FROM surveys";

fn question(key: &str, kind: &str, required: bool) -> Question {
    Question { key: key.into(), kind: kind.into(), text: None, options: Vec::new(), required }
}

/// The built-in questions of a kind.
pub fn built_in_questions(kind: &str) -> Vec<Question> {
    match kind {
        "nps" => vec![question("nps", "nps", true), question("why", "text", false)],
        "csat" => vec![question("csat", "scale", true), question("comment", "text", false)],
        "listen" => vec![question("listen", "scale", true), question("comment", "text", false)],
        _ => Vec::new(),
    }
}

fn check_questions(qs: &[Question]) -> Result<()> {
    if qs.is_empty() || qs.len() > 30 {
        return Err(StoreError::invalid("questions", "a custom survey needs 1 to 30 questions"));
    }
    let mut keys: Vec<&str> = Vec::new();
    for (i, q) in qs.iter().enumerate() {
        let field = format!("questions[{i}]");
        if q.key.is_empty() || q.key.len() > 40 || !q.key.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
            return Err(StoreError::invalid(format!("{field}.key"), "keys are 1 to 40 of a-z, 0-9 and _"));
        }
        if keys.contains(&q.key.as_str()) {
            return Err(StoreError::invalid(format!("{field}.key"), format!("the key {} is used twice", q.key)));
        }
        keys.push(&q.key);
        one_of(&format!("{field}.type"), &q.kind, &QUESTION_TYPES)?;
        if let Some(t) = &q.text {
            check_len(&format!("{field}.text"), t, 500)?;
        }
        let choices = matches!(q.kind.as_str(), "single" | "multiple");
        if choices {
            if q.options.len() < 2 || q.options.len() > 20 {
                return Err(StoreError::invalid(format!("{field}.options"), "give 2 to 20 options"));
            }
            for o in &q.options {
                if o.trim().is_empty() {
                    return Err(StoreError::invalid(format!("{field}.options"), "options must not be empty"));
                }
                check_len(&format!("{field}.options"), o, 100)?;
            }
            if q.options.iter().enumerate().any(|(j, o)| q.options[..j].contains(o)) {
                return Err(StoreError::invalid(format!("{field}.options"), "options must differ"));
            }
        } else if !q.options.is_empty() {
            return Err(StoreError::invalid(format!("{field}.options"), "only single and multiple choice questions have options"));
        }
    }
    Ok(())
}

fn check_trigger(t: &Trigger) -> Result<()> {
    one_of("trigger.on", &t.on, &TRIGGERS)?;
    match t.on.as_str() {
        "order_completed" => match t.days {
            Some(d) if (0..=90).contains(&d) => {}
            _ => return Err(StoreError::invalid("trigger.days", "days after the order: 0 to 90")),
        },
        "periodic" => {
            match t.every_days {
                Some(d) if (1..=365).contains(&d) => {}
                _ => return Err(StoreError::invalid("trigger.every_days", "every_days: 1 to 365")),
            }
            if t.segment.as_deref().is_none_or(|s| s.trim().is_empty()) {
                return Err(StoreError::invalid("trigger.segment", "a periodic survey needs a segment"));
            }
        }
        _ => {}
    }
    let extra = match t.on.as_str() {
        "order_completed" => t.segment.is_some() || t.every_days.is_some(),
        "ticket_resolved" => t.days.is_some() || t.segment.is_some() || t.every_days.is_some(),
        _ => t.days.is_some(),
    };
    if extra {
        return Err(StoreError::invalid("trigger", format!("a {} trigger takes only its own fields", t.on)));
    }
    Ok(())
}

fn check_recontact(days: i64) -> Result<()> {
    if !(0..=3650).contains(&days) {
        return Err(StoreError::invalid("recontact_days", "0 to 3650 days"));
    }
    Ok(())
}

/// A survey read in a transaction.
pub(crate) async fn survey_in(tx: &mut Tx, id: i64) -> Result<SurveyRow> {
    tx.fetch_optional(query(format!("{SURVEY_SELECT} WHERE id = $1")).bind(id)).await?.ok_or(StoreError::NotFound("survey"))
}

impl Store {
    /// Creates a survey.
    pub async fn create_survey(&self, actor: &Actor, s: NewSurvey) -> Result<Survey> {
        let name = s.name.trim().to_owned();
        if name.is_empty() {
            return Err(StoreError::invalid("name", "a survey needs a name"));
        }
        check_len("name", &name, 200)?;
        one_of("kind", &s.kind, &KINDS)?;
        let mut questions = match (s.kind.as_str(), s.questions) {
            ("custom", Some(q)) => {
                check_questions(&q)?;
                q
            }
            ("custom", None) => return Err(StoreError::invalid("questions", "a custom survey needs its questions")),
            (_, Some(_)) => return Err(StoreError::invalid("questions", format!("an {} survey has its questions built in", s.kind))),
            (kind, None) => built_in_questions(kind),
        };
        if s.ask_switch {
            if questions.iter().any(|q| q.key == SWITCH_KEY) {
                return Err(StoreError::invalid("ask_switch", format!("the survey has a question {SWITCH_KEY} already")));
            }
            questions.push(question(SWITCH_KEY, "switch", false));
        }
        if let Some(t) = &s.trigger {
            check_trigger(t)?;
        }
        if let Some(seg) = s.trigger.as_ref().and_then(|t| t.segment.as_deref()) {
            self.segment(seg).await.map_err(|e| match e {
                StoreError::NotFound(_) => StoreError::invalid("trigger.segment", format!("no segment {seg}")),
                other => other,
            })?;
        }
        let recontact_days = s.recontact_days.unwrap_or(90);
        // A periodic survey's cursor is the day of its last round instead.
        let s_periodic = s.trigger.as_ref().is_some_and(|t| t.on == "periodic");
        check_recontact(recontact_days)?;
        if !(1..=365).contains(&s.expires_days) {
            return Err(StoreError::invalid("expires_days", "links work 1 to 365 days"));
        }
        let now = self.now();
        // A trigger applies to occasions from now on: its cursor starts after the events there
        // are (a new survey does not invite for every order and ticket of the past).
        let (cursor,): (i64,) = self.db.reader().fetch_one(query("SELECT COALESCE(MAX(id), 0) FROM events")).await?;
        let mut tx = self.db.begin().await?;
        let (id,): (i64,) = tx
            .fetch_one(
                query(
                    "INSERT INTO surveys (name, kind, questions, trigger, recontact_days, expires_days, active, event_cursor, created_by, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, TRUE, $9, $7, $8, $8) RETURNING id",
                )
                .bind(name)
                .bind(s.kind)
                .bind(serde_json::json!(questions))
                .bind(serde_json::json!(s.trigger))
                .bind(recontact_days)
                .bind(s.expires_days)
                .bind(actor.key.clone())
                .bind(now)
                .bind(if s_periodic { 0 } else { cursor }),
            )
            .await?;
        audit::record(&mut tx, now, &actor.key, "create", "survey", Some(id.to_string()), None).await?;
        let row = survey_in(&mut tx, id).await?;
        tx.commit().await?;
        Ok(row.into())
    }

    /// Every survey, newest first.
    pub async fn surveys(&self) -> Result<Vec<Survey>> {
        let rows: Vec<SurveyRow> = self.db.reader().fetch_all(query(format!("{SURVEY_SELECT} ORDER BY id DESC"))).await?;
        Ok(rows.into_iter().map(Survey::from).collect())
    }

    /// One survey.
    pub async fn survey(&self, id: i64) -> Result<Survey> {
        let row: Option<SurveyRow> = self.db.reader().fetch_optional(query(format!("{SURVEY_SELECT} WHERE id = $1")).bind(id)).await?;
        Ok(row.ok_or(StoreError::NotFound("survey"))?.into())
    }

    /// Renames, pauses or resumes a survey, or changes its re-contact limit.
    pub async fn update_survey(&self, actor: &Actor, id: i64, p: SurveyPatch) -> Result<Survey> {
        let name = clean(p.name);
        if let Some(n) = &name {
            check_len("name", n, 200)?;
        }
        if let Some(d) = p.recontact_days {
            check_recontact(d)?;
        }
        let now = self.now();
        let mut tx = self.db.begin().await?;
        survey_in(&mut tx, id).await?;
        tx.execute(
            query(
                "UPDATE surveys SET name = COALESCE($1, name), active = COALESCE($2, active), recontact_days = COALESCE($3, recontact_days), \
                 updated_at = $4 WHERE id = $5",
            )
            .bind(name)
            .bind(p.active)
            .bind(p.recontact_days)
            .bind(now)
            .bind(id),
        )
        .await?;
        audit::record(&mut tx, now, &actor.key, "update", "survey", Some(id.to_string()), p.active.map(|a| format!("active={a}"))).await?;
        let row = survey_in(&mut tx, id).await?;
        tx.commit().await?;
        Ok(row.into())
    }
}
