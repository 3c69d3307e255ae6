//! Journeys (issue 12 §6; DESIGN.md C13, the win-back plans of C6): a trigger (a kind of domain
//! event), steps (wait; a condition on a segment rule with a yes and a no branch; send a
//! template on a channel or the preferred one; a task for the customer's account manager; add
//! or remove a tag; exit), a goal that ends an entry early, a holdout share and a re-entry rule.
//!
//! The scheduler ([`run`]) reads the events table from each journey's cursor (entries and goals)
//! and advances the entries that are due, each step in one transaction with the entry's row
//! locked, so that two schedulers or a rerun never do a step twice; messages go to the outbox
//! under `journey:<journey>:<entry>:<step>` and tasks under the same source key.
//!
//! Journey steps only go forward (a branch names a later step), so every entry ends.

pub mod run;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use utoipa::ToSchema;

use crate::db::query;
use crate::engagement::templates::NewTemplate;
use crate::engagement::{Channel, Purpose};
use crate::users::Actor;
use crate::{audit, Result, Store, StoreError};

/// Most steps in a journey.
pub const MAX_STEPS: usize = 50;

/// The kinds of events a journey can start on or aim at: (name, event type, meaning).
pub const EVENT_KINDS: &[(&str, &str, &str)] = &[
    ("first_order", "order.created", "a customer's first completed order"),
    ("order_completed", "order.created", "a completed order"),
    ("customer_created", "customer.created", "a new customer"),
    ("ticket_confirmed", "ticket.confirmed", "a ticket confirmed closed by the customer"),
    ("complaint_confirmed", "ticket.confirmed", "a complaint confirmed closed by the customer"),
    ("survey_answered", "survey.answered", "a survey answered"),
    ("survey_detractor", "survey.answered", "an NPS answer of 0 to 6"),
    ("churned", "customer.churned", "became churned in an analysis run"),
    ("at_risk", "customer.at_risk", "became at risk in an analysis run"),
    ("loyalty_enrolled", "loyalty.enrolled", "joined the loyalty club"),
];

/// The event type behind a kind name.
pub fn event_type(kind: &str) -> Option<&'static str> {
    EVENT_KINDS.iter().find(|k| k.0 == kind).map(|k| k.1)
}

/// One step of a journey.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Step {
    /// Wait this long from when the step is reached (`hours` + 24 × `days`).
    Wait {
        /// Hours.
        #[serde(default)]
        hours: i64,
        /// Days.
        #[serde(default)]
        days: i64,
    },
    /// Whether the customer matches a segment rule now: go on at `yes` or `no` (step indexes,
    /// later than this one); an absent `yes` is the next step, an absent `no` ends the entry.
    Condition {
        /// The rule (segment syntax).
        rule: String,
        /// The step when the customer matches.
        yes: Option<usize>,
        /// The step when not.
        no: Option<usize>,
    },
    /// Send a template on a channel (`email`, `sms`, `wechat`, `mail`) or `preferred` (the
    /// customer's calibrated channel).
    Send {
        /// The template.
        template_id: i64,
        /// The channel or `preferred`.
        channel: String,
    },
    /// A task for the customer's account manager, due some days later.
    Task {
        /// What to do.
        title: String,
        /// Due this many days after (0: the same day).
        #[serde(default)]
        due_days: i64,
    },
    /// Add and/or remove a tag.
    Tag {
        /// Tag to add.
        add: Option<String>,
        /// Tag to remove.
        remove: Option<String>,
    },
    /// End the entry here.
    Exit,
}

/// A journey.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Journey {
    /// Id.
    pub id: i64,
    /// `nurture`, `win_back`, `complaint_check` for the built-in ones.
    pub builtin: Option<String>,
    /// Name.
    pub name: String,
    /// What starts an entry (see [`EVENT_KINDS`]).
    pub trigger: String,
    /// What ends an entry early as a success.
    pub goal: Option<String>,
    /// The steps.
    pub steps: Vec<Step>,
    /// Share of entries held out (percent): they walk the steps, but nothing is done for them.
    pub holdout_percent: f64,
    /// None: a customer enters once ever; N: again N days after the last entry.
    pub reentry_days: Option<i64>,
    /// Whether it takes entries and advances them.
    pub enabled: bool,
    /// When made.
    pub created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
pub(crate) struct JourneyRow {
    pub id: i64,
    pub builtin: Option<String>,
    pub name: String,
    pub trigger_kind: String,
    pub goal_kind: Option<String>,
    pub steps: Json<Vec<Step>>,
    pub holdout_percent: f64,
    pub reentry_days: Option<i64>,
    pub enabled: bool,
    pub event_cursor: i64,
    pub created_at: DateTime<Utc>,
}

impl From<JourneyRow> for Journey {
    fn from(r: JourneyRow) -> Journey {
        Journey {
            id: r.id,
            builtin: r.builtin,
            name: r.name,
            trigger: r.trigger_kind,
            goal: r.goal_kind,
            steps: r.steps.0,
            holdout_percent: r.holdout_percent,
            reentry_days: r.reentry_days,
            enabled: r.enabled,
            created_at: r.created_at,
        }
    }
}

pub(crate) const JOURNEY_SELECT: &str =
    "SELECT id, builtin, name, trigger_kind, goal_kind, steps, holdout_percent, reentry_days, enabled, \
     event_cursor, created_at FROM journeys";

/// A journey to make.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewJourney {
    /// Name (1–200 characters).
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// What starts an entry: one of the names of [`EVENT_KINDS`].
    pub trigger: String,
    /// What ends an entry early (one of the same names).
    pub goal: Option<String>,
    /// 1 to 50 steps.
    pub steps: Vec<Step>,
    /// Holdout share, 0–90 percent.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 90)]
    pub holdout_percent: f64,
    /// Days before a customer may enter again (1–3650); absent: never again.
    #[schema(minimum = 1, maximum = 3650)]
    pub reentry_days: Option<i64>,
}

impl Store {
    /// Checks a journey's definition.
    pub async fn check_journey(&self, j: &NewJourney) -> Result<()> {
        let name = j.name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(StoreError::invalid("name", "1 to 200 characters"));
        }
        let names = || EVENT_KINDS.iter().map(|k| k.0).collect::<Vec<_>>().join(", ");
        if event_type(&j.trigger).is_none() {
            return Err(StoreError::invalid("trigger", format!("one of {}", names())));
        }
        if j.goal.as_deref().is_some_and(|g| event_type(g).is_none()) {
            return Err(StoreError::invalid("goal", format!("one of {}", names())));
        }
        if !(j.holdout_percent.is_finite() && (0.0..=90.0).contains(&j.holdout_percent)) {
            return Err(StoreError::invalid("holdout_percent", "0 to 90"));
        }
        if j.reentry_days.is_some_and(|d| !(1..=3650).contains(&d)) {
            return Err(StoreError::invalid("reentry_days", "1 to 3650 days, or absent for never"));
        }
        if j.steps.is_empty() || j.steps.len() > MAX_STEPS {
            return Err(StoreError::invalid("steps", format!("1 to {MAX_STEPS} steps")));
        }
        for (i, s) in j.steps.iter().enumerate() {
            let bad = |m: String| StoreError::invalid(format!("steps[{i}]"), m);
            match s {
                Step::Wait { hours, days } => {
                    if *hours < 0 || *days < 0 || *hours > 24 * 3650 || *days > 3650 || *hours + *days == 0 {
                        return Err(bad("a wait of 1 hour to 10 years (hours and days at least 0)".into()));
                    }
                }
                Step::Condition { rule, yes, no } => {
                    crate::segments::parse_rule(rule).map_err(|e| bad(format!("rule: {e}")))?;
                    for target in [yes, no].into_iter().flatten() {
                        if *target <= i || *target >= j.steps.len() {
                            return Err(bad(format!("a branch goes to a later step ({} to {})", i + 1, j.steps.len() - 1)));
                        }
                    }
                }
                Step::Send { template_id, channel } => {
                    if channel != "preferred" && Channel::parse(channel).is_err() {
                        return Err(bad("channel: email, sms, wechat, mail or preferred".into()));
                    }
                    match self.template(*template_id).await {
                        Ok(_) => {}
                        Err(StoreError::NotFound(_)) => return Err(bad(format!("no template {template_id}"))),
                        Err(e) => return Err(e),
                    }
                }
                Step::Task { title, due_days } => {
                    if title.trim().is_empty() || title.chars().count() > crate::tasks::MAX_TITLE {
                        return Err(bad("a task title of 1 to 200 characters".into()));
                    }
                    if !(0..=365).contains(due_days) {
                        return Err(bad("due_days 0 to 365".into()));
                    }
                }
                Step::Tag { add, remove } => {
                    if add.is_none() && remove.is_none() {
                        return Err(bad("a tag to add or to remove".into()));
                    }
                    for t in [add, remove].into_iter().flatten() {
                        crate::values::check_tags(&[t.trim().to_owned()]).map_err(|m| bad(m.to_string()))?;
                        if t.trim().is_empty() {
                            return Err(bad("an empty tag".into()));
                        }
                    }
                }
                Step::Exit => {}
            }
        }
        Ok(())
    }

    /// Makes a journey, disabled (audited).
    pub async fn create_journey(&self, actor: &Actor, j: NewJourney) -> Result<Journey> {
        self.check_journey(&j).await?;
        let id = self.insert_journey(actor, None, &j).await?;
        self.journey(id).await
    }

    async fn insert_journey(&self, actor: &Actor, builtin: Option<&str>, j: &NewJourney) -> Result<i64> {
        let now = self.now();
        // New journeys start at the newest event: they take entries from now on.
        let (cursor,): (i64,) = self.db.reader().fetch_one(query("SELECT COALESCE(MAX(id), 0) FROM events")).await?;
        let mut tx = self.db.begin().await?;
        let row: Option<(i64,)> = tx
            .fetch_optional(
                query(
                    "INSERT INTO journeys (builtin, name, trigger_kind, goal_kind, steps, holdout_percent, reentry_days, enabled, \
                     event_cursor, created_by, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, FALSE, $8, $9, $10, $10) \
                     ON CONFLICT (builtin) DO NOTHING RETURNING id",
                )
                .bind(builtin.map(str::to_owned))
                .bind(j.name.trim().to_owned())
                .bind(j.trigger.clone())
                .bind(j.goal.clone())
                .bind(serde_json::to_value(&j.steps).map_err(|e| StoreError::Internal(e.to_string()))?)
                .bind(j.holdout_percent)
                .bind(j.reentry_days)
                .bind(cursor)
                .bind(actor.key.clone())
                .bind(now),
            )
            .await?;
        let Some((id,)) = row else {
            tx.rollback().await?;
            return Err(StoreError::Conflict(format!("built-in journey {}", builtin.unwrap_or_default())));
        };
        audit::record(&mut tx, now, &actor.key, "create", "journey", Some(id.to_string()), Some(j.name.trim().to_owned())).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// One journey.
    pub async fn journey(&self, id: i64) -> Result<Journey> {
        let row: Option<JourneyRow> = self.db.reader().fetch_optional(query(format!("{JOURNEY_SELECT} WHERE id = $1")).bind(id)).await?;
        Ok(row.ok_or(StoreError::NotFound("journey"))?.into())
    }

    /// Every journey, by id.
    pub async fn journeys(&self) -> Result<Vec<Journey>> {
        let rows: Vec<JourneyRow> = self.db.reader().fetch_all(query(format!("{JOURNEY_SELECT} ORDER BY id"))).await?;
        Ok(rows.into_iter().map(Journey::from).collect())
    }

    /// Enables or disables a journey (audited). Enabling starts its cursor at the newest event
    /// when it was never enabled before, so it does not replay history.
    pub async fn set_journey_enabled(&self, actor: &Actor, id: i64, enabled: bool) -> Result<Journey> {
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let n =
            tx.execute(query("UPDATE journeys SET enabled = $1, updated_at = $2 WHERE id = $3").bind(enabled).bind(now).bind(id)).await?;
        if n == 0 {
            tx.rollback().await?;
            return Err(StoreError::NotFound("journey"));
        }
        let action = if enabled { "enable" } else { "disable" };
        audit::record(&mut tx, now, &actor.key, action, "journey", Some(id.to_string()), None).await?;
        tx.commit().await?;
        self.journey(id).await
    }

    /// Creates the three built-in journeys (disabled) and their templates, once; returns how
    /// many were made now.
    pub async fn ensure_builtin_journeys(&self) -> Result<u64> {
        let have: Vec<(Option<String>,)> =
            self.db.reader().fetch_all(query("SELECT builtin FROM journeys WHERE builtin IS NOT NULL")).await?;
        let have: Vec<String> = have.into_iter().filter_map(|r| r.0).collect();
        let actor = Actor::cli();
        let mut made = 0;
        for (key, name, templates, build) in builtins() {
            if have.iter().any(|h| h == key) {
                continue;
            }
            let mut ids = Vec::new();
            for template in templates {
                match self.create_template(&actor, template).await? {
                    Ok(t) => ids.push(t.template.id),
                    Err(report) => return Err(StoreError::Internal(format!("built-in template of {key} fails the lint: {report:?}"))),
                }
            }
            let j = build(&ids);
            match self.insert_journey(&actor, Some(key), &NewJourney { name: name.into(), ..j }).await {
                Ok(_) => made += 1,
                Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(made)
    }
}

type Builtin = (&'static str, &'static str, Vec<NewTemplate>, fn(&[i64]) -> NewJourney);

/// The built-in journeys: (key, name, the templates its messages use, the journey given the
/// templates' ids).
fn builtins() -> Vec<Builtin> {
    let sms = |name: &str, text: &str| NewTemplate {
        name: name.into(),
        channel: Channel::Sms,
        purpose: Purpose::Marketing,
        subject: None,
        body_text: text.into(),
        body_html: None,
    };
    vec![
        (
            "nurture",
            "新客培育 New-customer nurture",
            vec![
                sms("新客致谢", "{{ salutation }}，感谢您第一次光临{{ last_purchase.store }}！您点的{{ last_purchase.product }}还满意吗？期待再见。退订回T"),
                sms("新客推荐", "{{ salutation }}，和您口味相近的客人最近常点{{ favourite_category }}，下次来不妨试试。退订回T"),
            ],
            |t| NewJourney {
                name: String::new(),
                trigger: "first_order".into(),
                goal: Some("order_completed".into()),
                steps: vec![
                    Step::Tag { add: Some("新客培育".into()), remove: None },
                    Step::Wait { hours: 0, days: 1 },
                    Step::Send { template_id: t[0], channel: "preferred".into() },
                    Step::Wait { hours: 0, days: 6 },
                    Step::Send { template_id: t[1], channel: "preferred".into() },
                    Step::Wait { hours: 0, days: 23 },
                    Step::Task { title: "新客 30 天回访：还没有第二次光临".into(), due_days: 3 },
                    Step::Tag { add: None, remove: Some("新客培育".into()) },
                ],
                holdout_percent: 10.0,
                reentry_days: None,
            },
        ),
        (
            "win_back",
            "流失挽回 Win-back (A/B)",
            vec![sms(
                "挽回：客户经理来信",
                "{{ salutation }}，好久不见！想念您在{{ last_purchase.store }}点的{{ last_purchase.product }}。\
                 送您一张满200减30的券，下次来直接出示本短信即可。—— 您的客户经理 {{ manager_name | default(\"会员服务团队\") }} 退订回T",
            )],
            |t| NewJourney {
                name: String::new(),
                trigger: "churned".into(),
                goal: Some("order_completed".into()),
                steps: vec![
                    Step::Condition { rule: r#"abcd_tier in ("A", "B")"#.into(), yes: None, no: None },
                    Step::Send { template_id: t[0], channel: "preferred".into() },
                    Step::Wait { hours: 0, days: 7 },
                    Step::Task { title: "挽回电话：流失的 A/B 级客户".into(), due_days: 2 },
                    Step::Wait { hours: 0, days: 30 },
                ],
                holdout_percent: 20.0,
                reentry_days: Some(180),
            },
        ),
        (
            "complaint_check",
            "投诉后回访 Post-complaint check",
            vec![sms("投诉后回访", "{{ salutation }}，上次给您添麻烦了。问题解决后还满意吗？有任何不妥请直接回复，{{ manager_name | default(\"我们\") }}会亲自跟进。")],
            |t| NewJourney {
                name: String::new(),
                trigger: "complaint_confirmed".into(),
                goal: None,
                steps: vec![
                    Step::Wait { hours: 0, days: 3 },
                    Step::Send { template_id: t[0], channel: "preferred".into() },
                    Step::Task { title: "投诉后回访：确认客户满意".into(), due_days: 2 },
                ],
                holdout_percent: 0.0,
                reentry_days: Some(30),
            },
        ),
    ]
}

/// One group's numbers in a journey's report.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct JourneyGroup {
    /// Entries.
    pub entered: i64,
    /// Still running.
    pub active: i64,
    /// Ended by the goal.
    pub reached_goal: i64,
    /// Ended by an exit step or a branch to the end.
    pub exited: i64,
    /// Walked every step.
    pub completed: i64,
    /// reached_goal / entered.
    pub goal_rate: Option<f64>,
}

/// Goal conversion of the treated over the holdout.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JourneyLift {
    /// Treated goal rate − holdout goal rate (absolute); none when too few to tell.
    pub difference: Option<f64>,
    /// Newcombe's hybrid score 95% interval, low.
    pub low: Option<f64>,
    /// … high.
    pub high: Option<f64>,
    /// Set when a group has fewer than 30 entries.
    pub too_few_to_tell: bool,
}

/// A journey's report.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JourneyReport {
    /// The journey.
    pub journey_id: i64,
    /// Both groups together.
    pub total: JourneyGroup,
    /// Entries that got the steps.
    pub treated: JourneyGroup,
    /// Entries held out.
    pub holdout: JourneyGroup,
    /// The goal's lift.
    pub lift: JourneyLift,
}

impl Store {
    /// Entered, active, reached goal, exited and completed per group, and the lift of the goal.
    pub async fn journey_report(&self, id: i64) -> Result<JourneyReport> {
        self.journey(id).await?;
        let rows: Vec<(String, String, i64)> = self
            .db
            .reader()
            .fetch_all(query("SELECT grp, status, COUNT(*) FROM journey_entries WHERE journey_id = $1 GROUP BY grp, status").bind(id))
            .await?;
        let mut treated = JourneyGroup::default();
        let mut holdout = JourneyGroup::default();
        let mut total = JourneyGroup::default();
        for (grp, status, n) in rows {
            for g in [if grp == "holdout" { &mut holdout } else { &mut treated }, &mut total] {
                g.entered += n;
                match status.as_str() {
                    "active" => g.active += n,
                    "goal" => g.reached_goal += n,
                    "exited" => g.exited += n,
                    _ => g.completed += n,
                }
            }
        }
        for g in [&mut treated, &mut holdout, &mut total] {
            g.goal_rate = (g.entered > 0).then(|| g.reached_goal as f64 / g.entered as f64);
        }
        use patron_analytics::lift;
        let (nt, nh) = (treated.entered as u64, holdout.entered as u64);
        let enough = lift::enough(nt, nh);
        let interval =
            if enough { lift::newcombe_diff(treated.reached_goal as u64, nt, holdout.reached_goal as u64, nh, lift::Z_95) } else { None };
        let lift = JourneyLift {
            difference: interval.map(|i| i.estimate),
            low: interval.map(|i| i.low),
            high: interval.map(|i| i.high),
            too_few_to_tell: !enough,
        };
        Ok(JourneyReport { journey_id: id, total, treated, holdout, lift })
    }
}
