//! The scheduler inside `patron serve`: runs the store's due work (SLA warnings and breaches,
//! confirmations by timeout, survey invitations by trigger put in the outbox) and sends the
//! outbox's due messages every few seconds. Several servers on one database may each run it;
//! the store claims each piece of work, and each message, once.

use std::sync::Arc;
use std::time::Duration;

use patron_store::jobs::JobReport;
use patron_store::Store;

use crate::delivery::{Delivery, SendReport};
use crate::outbox::Outbox;

/// Messages sent per round at most (the rest wait for the next round).
const SEND_PER_ROUND: u64 = 100_000;

/// One round with the outbox's messages written by the file adapter into the outbox folder.
pub async fn run_round(store: &Store, outbox: &Outbox) -> patron_store::Result<JobReport> {
    let delivery = Delivery::files(outbox.dir.clone(), &outbox.base_url);
    Ok(run_round_with(store, &delivery).await?.0)
}

/// One round: the due work (the survey invitations it, or an earlier round, made put in the
/// outbox) and the outbox's due messages through `delivery`.
pub async fn run_round_with(store: &Store, delivery: &Delivery) -> patron_store::Result<(JobReport, SendReport)> {
    let started = std::time::Instant::now();
    let mut r = store.run_due_jobs().await?;
    let jobs_ms = started.elapsed().as_millis();
    r.surveys.delivered = store.queue_invitations().await?;
    r.webhooks = crate::webhooks::run_round(store).await?;
    let before_send = started.elapsed().as_millis();
    let sent = delivery.send_due(store, SEND_PER_ROUND).await?;
    tracing::debug!(jobs_ms, before_send_ms = before_send, total_ms = started.elapsed().as_millis(), "scheduler round timings");
    Ok((r, sent))
}

/// Runs the due work every `every` until the process ends, messages through the file adapter.
pub fn spawn_scheduler(store: Store, every: Duration, outbox: Outbox) -> tokio::task::JoinHandle<()> {
    let delivery = Arc::new(Delivery::files(outbox.dir.clone(), &outbox.base_url));
    spawn_scheduler_with(store, every, delivery)
}

/// Runs the due work every `every` until the process ends. A failed round is logged and the
/// next one tries again (a busy database, a worker down).
pub fn spawn_scheduler_with(store: Store, every: Duration, delivery: Arc<Delivery>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let started = std::time::Instant::now();
            let round = run_round_with(&store, &delivery).await;
            crate::metrics::scheduler_round(round.is_ok(), started.elapsed());
            match round {
                Ok((r, s)) if r != Default::default() || s != Default::default() => tracing::info!(
                    warnings = r.sla.warnings,
                    breaches = r.sla.breaches,
                    auto_confirmed = r.sla.auto_confirmed,
                    invited = r.surveys.invited,
                    delivered = r.surveys.delivered,
                    webhooks_delivered = r.webhooks.delivered,
                    webhooks_failed = r.webhooks.failed,
                    expired_lots = r.loyalty.expired_lots,
                    sent = s.sent,
                    retrying = s.retrying,
                    failed = s.failed,
                    skipped = s.skipped,
                    deferred = s.deferred,
                    "scheduler"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "scheduler round failed; retrying next round"),
            }
        }
    })
}
