//! The scheduler inside `patron serve`: runs the store's due work (SLA warnings and breaches,
//! confirmations by timeout, survey invitations by trigger and their delivery) every few
//! seconds. Several servers on one database may each run it; the store claims each piece of
//! work once.

use std::time::Duration;

use patron_store::jobs::JobReport;
use patron_store::Store;

use crate::outbox::Outbox;

/// One round: the due work, then the delivery of the invitations it (or an earlier round) made.
pub async fn run_round(store: &Store, outbox: &Outbox) -> patron_store::Result<JobReport> {
    let mut r = store.run_due_jobs().await?;
    r.surveys.delivered = store.deliver_invitations(&|m| outbox.deliver_invitation(m)).await?;
    Ok(r)
}

/// Runs the due work every `every` until the process ends. A failed round is logged and the
/// next one tries again (a busy database, a worker down).
pub fn spawn_scheduler(store: Store, every: Duration, outbox: Outbox) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match run_round(&store, &outbox).await {
                Ok(r) if r != Default::default() => tracing::info!(
                    warnings = r.sla.warnings,
                    breaches = r.sla.breaches,
                    auto_confirmed = r.sla.auto_confirmed,
                    invited = r.surveys.invited,
                    delivered = r.surveys.delivered,
                    expired_lots = r.loyalty.expired_lots,
                    "scheduler"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "scheduler round failed; retrying next round"),
            }
        }
    })
}
