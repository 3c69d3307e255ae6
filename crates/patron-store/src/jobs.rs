//! The scheduler's work: everything that falls due with time rather than with a request (SLA
//! warnings and breaches, confirmations by timeout; survey sends and journeys later). `patron
//! serve` runs it every few seconds; `patron jobs run-once` runs it once (cron, tests,
//! operators). Every piece of work is claimed and done exactly once, whatever runs it and
//! however often (see `tickets::sla`).

use serde::Serialize;
use utoipa::ToSchema;

use crate::tickets::sla::SlaReport;
use crate::{Result, Store};

/// What one run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct JobReport {
    /// The SLA clocks' work.
    pub sla: SlaReport,
}

impl Store {
    /// Runs everything that is due now.
    pub async fn run_due_jobs(&self) -> Result<JobReport> {
        Ok(JobReport { sla: self.run_sla().await? })
    }
}
