//! Group commit of audit entries written outside a change's transaction: every read of a full
//! profile writes one (issue 15 §1). One transaction per read made every 360 a write — three
//! statements and a commit on SQLite's one writer — and each commit made the other connections
//! drop their page caches. Entries now queue for one writer task, which commits whatever has
//! queued in one transaction and one multi-row INSERT; each caller waits until its own entry is
//! committed, so no entry is lost and no read answers before its audit row is durable.
//!
//! Nothing waits on a timer: while one group commits, the next gathers, so a lone read pays one
//! commit as before and a busy server pays one commit per group.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};

use crate::db::{query, Db};
use crate::{Result, StoreError};

/// At most this many entries per transaction (7 parameters each, within both engines' limits).
const GROUP_MAX: usize = 256;
/// Entries waiting beyond this make callers wait to enqueue (back-pressure, not memory growth).
const QUEUE_MAX: usize = 8192;

/// One audit entry, its subject resolved.
pub(crate) struct Entry {
    pub customer_id: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub entity: String,
    pub entity_id: Option<String>,
    pub detail: Option<String>,
}

/// What a waiting caller is told: committed, or the group's error (copied for each caller).
type Outcome = std::result::Result<(), ErrorCopy>;

/// The group's error as each caller sees it: busy stays busy (503, try again), anything else is
/// an internal error (500).
#[derive(Clone)]
enum ErrorCopy {
    Busy(String),
    Other(String),
}

impl From<ErrorCopy> for StoreError {
    fn from(e: ErrorCopy) -> StoreError {
        match e {
            ErrorCopy::Busy(m) => StoreError::Busy(m),
            ErrorCopy::Other(m) => StoreError::Internal(format!("audit group commit: {m}")),
        }
    }
}

struct Pending {
    entry: Entry,
    done: oneshot::Sender<Outcome>,
}

/// The queue to the writer task, started on first use on the caller's runtime (and again if that
/// runtime has gone, as between tests). Shared by a store's clones.
#[derive(Clone, Default)]
pub(crate) struct GroupCommit(Arc<Mutex<Option<mpsc::Sender<Pending>>>>);

impl GroupCommit {
    /// Queues `entry` and waits until the transaction holding it has committed.
    pub(crate) async fn write(&self, db: &Db, entry: Entry) -> Result<()> {
        let (done, committed) = oneshot::channel();
        let sender = self.sender(db);
        if let Err(mpsc::error::SendError(p)) = sender.send(Pending { entry, done }).await {
            // The writer's runtime ended between the check and the send: write it alone.
            return write_group(db, vec![p.entry]).await;
        }
        match committed.await {
            Ok(outcome) => outcome.map_err(StoreError::from),
            Err(_) => Err(StoreError::Internal("the audit writer stopped before committing an entry".into())),
        }
    }

    fn sender(&self, db: &Db) -> mpsc::Sender<Pending> {
        let mut slot = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match slot.as_ref() {
            Some(s) if !s.is_closed() => s.clone(),
            _ => {
                let (tx, rx) = mpsc::channel(QUEUE_MAX);
                tokio::spawn(run(db.clone(), rx));
                *slot = Some(tx.clone());
                tx
            }
        }
    }
}

/// The writer: takes whatever has queued (up to [`GROUP_MAX`]), commits it, tells each caller.
/// Ends when every store clone (every sender) is gone.
async fn run(db: Db, mut rx: mpsc::Receiver<Pending>) {
    let mut group = Vec::with_capacity(GROUP_MAX);
    while rx.recv_many(&mut group, GROUP_MAX).await > 0 {
        let (entries, waiters): (Vec<Entry>, Vec<oneshot::Sender<Outcome>>) = group.drain(..).map(|p| (p.entry, p.done)).unzip();
        let outcome = write_group(&db, entries).await.map_err(|e| match e {
            StoreError::Busy(m) => ErrorCopy::Busy(m),
            e => ErrorCopy::Other(e.to_string()),
        });
        for w in waiters {
            // A caller that gave up (its request was cancelled) no longer listens; its entry is
            // committed all the same.
            let _ = w.send(outcome.clone());
        }
    }
}

/// Writes `entries` in one transaction, one INSERT per [`GROUP_MAX`] rows.
async fn write_group(db: &Db, entries: Vec<Entry>) -> Result<()> {
    // Reads wait for this commit: it does not queue behind every waiting write.
    let mut tx = db.begin_urgent().await?;
    let mut entries = entries.into_iter().peekable();
    while entries.peek().is_some() {
        let chunk: Vec<Entry> = entries.by_ref().take(GROUP_MAX).collect();
        let mut q = query(format!(
            "INSERT INTO audit_log (customer_id, at, actor, action, entity, entity_id, detail) VALUES {}",
            db.engine().values_rows(chunk.len(), 7)
        ));
        for e in chunk {
            q = q.bind(e.customer_id).bind(e.at).bind(e.actor).bind(e.action).bind(e.entity).bind(e.entity_id).bind(e.detail);
        }
        tx.execute(q).await?;
    }
    tx.commit().await
}
