//! The scheduler's work: everything that falls due with time rather than with a request (SLA
//! warnings and breaches, confirmations by timeout, survey invitations by trigger, journeys). `patron
//! serve` runs it every few seconds; `patron jobs run-once` runs it once (cron, tests,
//! operators). Every piece of work is claimed and done exactly once, whatever runs it and
//! however often (see `tickets::sla`).

use serde::Serialize;
use utoipa::ToSchema;

use crate::surveys::TriggerReport;
use crate::tickets::sla::SlaReport;
use crate::{Result, Store};

/// What one run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct JobReport {
    /// The SLA clocks' work.
    pub sla: SlaReport,
    /// The surveys' triggers (invitations made; delivered by `deliver_invitations`).
    pub surveys: TriggerReport,
    /// Webhook deliveries (made, sent and failed by the server's sender).
    pub webhooks: crate::webhooks::WebhookReport,
    /// The loyalty programme's expiry.
    pub loyalty: LoyaltyReport,
    /// The journeys' entries, goals and steps.
    pub journeys: crate::journeys::run::JourneyRunReport,
    /// Account management: contact tasks and overdue-review notifications.
    pub accounts: crate::accounts::AccountsReport,
    /// Fulfilment steps found past their promise and not done (each flagged once).
    pub fulfilment_late: u64,
    /// Web analytics: days rolled up, raw events pruned.
    pub web: crate::web::WebReport,
}

/// What the scheduler did to the loyalty programme.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct LoyaltyReport {
    /// Lots expired (each once).
    pub expired_lots: u64,
    /// Points they held.
    pub expired_points: i64,
    /// Tier changes of the daily review.
    pub tier_changes: u64,
    /// Referral rewards paid.
    pub referrals_paid: u64,
    /// Referral rewards refused (fraud guards, the monthly cap).
    pub referrals_refused: u64,
}

impl Store {
    /// Runs everything that is due now. Invitations the survey triggers make wait for
    /// [`Store::deliver_invitations`], which the caller runs with its delivery.
    pub async fn run_due_jobs(&self) -> Result<JobReport> {
        let started = std::time::Instant::now();
        let ms = || started.elapsed().as_millis();
        let sla = self.run_sla().await?;
        let sla_ms = ms();
        let invited = self.run_survey_triggers().await?;
        let surveys_ms = ms();
        let (expired_lots, expired_points) = self.expire_due_lots().await?;
        let tier_changes = self.review_tiers().await?.len() as u64;
        let referrals = self.run_referrals().await?;
        let loyalty_ms = ms();
        let loyalty = LoyaltyReport {
            expired_lots,
            expired_points,
            tier_changes,
            referrals_paid: referrals.paid,
            referrals_refused: referrals.refused,
        };
        let journeys = self.run_journeys().await?;
        let journeys_ms = ms();
        let accounts = self.run_accounts().await?;
        let accounts_ms = ms();
        let fulfilment_late = self.flag_overdue_fulfilment().await?;
        let web = self.run_web_jobs().await?;
        // Where a round's time goes (cumulative), for an operator who finds rounds slow.
        tracing::debug!(sla_ms, surveys_ms, loyalty_ms, journeys_ms, accounts_ms, total_ms = ms(), "due jobs (cumulative ms)");
        Ok(JobReport {
            web,
            sla,
            surveys: TriggerReport { invited, delivered: 0 },
            loyalty,
            journeys,
            accounts,
            fulfilment_late,
            ..Default::default()
        })
    }
}

/// Gauges of the work waiting, for `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OperationalGauges {
    /// (kind, messages made but not delivered yet): `survey_invitation` …
    pub outbox_depth: Vec<(String, i64)>,
    /// The newest domain event's id (0: none), so a scraper sees the event rate.
    pub latest_event_id: i64,
}

impl Store {
    /// Reads the gauges: cheap, indexed counts (the unsent invitations' index leads with `sent_at`).
    pub async fn operational_gauges(&self) -> Result<OperationalGauges> {
        let now = self.clock.now();
        let (invitations,): (i64,) = self
            .db
            .reader()
            .fetch_one(crate::db::query("SELECT COUNT(*) FROM survey_invitations WHERE sent_at IS NULL AND expires_at > $1").bind(now))
            .await?;
        let (latest,): (Option<i64>,) = self.db.reader().fetch_one(crate::db::query("SELECT MAX(id) FROM events")).await?;
        let (hooks,): (i64,) =
            self.db.reader().fetch_one(crate::db::query("SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'pending'")).await?;
        Ok(OperationalGauges {
            outbox_depth: vec![("survey_invitation".into(), invitations), ("webhook_delivery".into(), hooks)],
            latest_event_id: latest.unwrap_or(0),
        })
    }
}
