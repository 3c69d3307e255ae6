//! The scheduler inside `patron serve`: runs the store's due work (SLA warnings and breaches,
//! confirmations by timeout) every few seconds. Several servers on one database may each run
//! it; the store claims each piece of work once.

use std::time::Duration;

use patron_store::Store;

/// Runs the due work every `every` until the process ends. A failed round is logged and the
/// next one tries again (a busy database, a worker down).
pub fn spawn_scheduler(store: Store, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match store.run_due_jobs().await {
                Ok(r) if r != Default::default() => {
                    tracing::info!(warnings = r.sla.warnings, breaches = r.sla.breaches, auto_confirmed = r.sla.auto_confirmed, "scheduler")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "scheduler round failed; retrying next round"),
            }
        }
    })
}
