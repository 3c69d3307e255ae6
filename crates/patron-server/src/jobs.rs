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
    r.webhooks = crate::webhooks::run_round(store).await?;
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
            let started = std::time::Instant::now();
            let round = run_round(&store, &outbox).await;
            crate::metrics::scheduler_round(round.is_ok(), started.elapsed());
            match round {
                Ok(r) if r != Default::default() => tracing::info!(
                    warnings = r.sla.warnings,
                    breaches = r.sla.breaches,
                    auto_confirmed = r.sla.auto_confirmed,
                    invited = r.surveys.invited,
                    delivered = r.surveys.delivered,
                    webhooks_delivered = r.webhooks.delivered,
                    webhooks_failed = r.webhooks.failed,
                    expired_lots = r.loyalty.expired_lots,
                    "scheduler"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "scheduler round failed; retrying next round"),
            }
        }
    })
}
