//! The one place where SQLite and PostgreSQL differ: connecting, migrating, binding values,
//! classifying errors and the bulk-load fast path. Everything above this module writes each query
//! once, in portable SQL with `$1` binds, and runs it through [`Db`] or [`Tx`].

use std::borrow::Cow;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use serde::de::DeserializeOwned;
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow, SqliteSynchronous};
use sqlx::types::Json;
use sqlx::{ConnectOptions, FromRow, Postgres, Sqlite, Transaction};

use crate::{Result, StoreError};

pub mod citus;
pub mod direct;

/// Which database engine a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// Embedded SQLite (a single file, WAL).
    Sqlite,
    /// PostgreSQL 15+.
    Postgres,
}

impl Engine {
    /// An integer `column` as an `ORDER BY` key that no index provides (PostgreSQL:
    /// `column + 0`), so that the planner finds the matching rows first and then sorts them,
    /// instead of walking the column's index until enough rows match a filter it misjudged.
    /// SQLite: the column (its plans for these lists come from its own indexes, FTS5 included).
    pub fn sort_without_index(self, column: &str) -> String {
        match self {
            Engine::Sqlite => column.to_owned(),
            Engine::Postgres => format!("{column} + 0"),
        }
    }

    /// `expr` as the left side of a case-insensitive `LIKE` whose pattern is lower-cased ASCII
    /// ([`crate::segments`]' `contains`). PostgreSQL: `LOWER(expr)`, its `LIKE` being
    /// case-sensitive. SQLite: `expr` itself, its `LIKE` already ignoring ASCII case, which is
    /// all its `LOWER` folds: the same matches without a lower-cased copy of every value (a
    /// million names: 0.27 → 0.16 s of a rule's scan).
    pub fn like_lower(self, expr: &str) -> String {
        match self {
            Engine::Sqlite => expr.to_owned(),
            Engine::Postgres => format!("LOWER({expr})"),
        }
    }

    /// What follows a table's name in `FROM` to make SQLite use `index` (` INDEXED BY index`;
    /// nothing on PostgreSQL, whose planner has the statistics of a new index at once). For a
    /// partial index that SQLite's statistics cannot know is empty (`sqlite_stat1` keeps no row
    /// for an index without entries), so the planner would rather skip-scan a full one.
    pub fn indexed_by(self, index: &str) -> String {
        match self {
            Engine::Sqlite => format!(" INDEXED BY {index}"),
            Engine::Postgres => String::new(),
        }
    }

    /// The VALUES list of a multi-row statement: `rows` tuples of `columns` placeholders, in
    /// argument order. SQLite gets anonymous `?`s: sqlx looks a named placeholder (`$n`) up by
    /// name, and SQLite finds a name by walking the statement's list, so binding a statement of n
    /// named parameters costs n² — anonymous ones keep it linear and allow large statements.
    pub fn values_rows(self, rows: usize, columns: usize) -> String {
        let mut out = String::with_capacity(rows * columns * 6);
        for r in 0..rows {
            out.push_str(if r == 0 { "(" } else { ", (" });
            for c in 0..columns {
                if c > 0 {
                    out.push_str(", ");
                }
                match self {
                    Engine::Sqlite => out.push('?'),
                    Engine::Postgres => {
                        out.push('$');
                        out.push_str(&(r * columns + c + 1).to_string());
                    }
                }
            }
            out.push(')');
        }
        out
    }

    /// The clause that locks the rows a `SELECT` returns until the transaction ends, against other
    /// writers that take it too: PostgreSQL's `FOR NO KEY UPDATE` (inserts of rows that refer to
    /// the locked row still go ahead; their foreign-key checks take only `FOR KEY SHARE`); nothing
    /// on SQLite, whose transactions hold the one write lock from `BEGIN IMMEDIATE` on.
    pub fn row_lock(self) -> &'static str {
        match self {
            Engine::Sqlite => "",
            Engine::Postgres => " FOR NO KEY UPDATE",
        }
    }

    /// The clause that claims a row for a worker: locks it like [`Engine::row_lock`], but skips
    /// a row another worker holds instead of waiting for it (PostgreSQL `FOR UPDATE SKIP
    /// LOCKED`), so that several schedulers share due work without doing any of it twice.
    /// Nothing on SQLite (one writer at a time).
    pub fn claim_lock(self) -> &'static str {
        match self {
            Engine::Sqlite => "",
            Engine::Postgres => " FOR UPDATE SKIP LOCKED",
        }
    }

    /// [`Engine::row_lock`] for a worker that would rather skip a row another transaction holds
    /// than wait for it (PostgreSQL `FOR NO KEY UPDATE SKIP LOCKED`): a sender claiming a batch
    /// locks each message's customer this way, so that two senders (or a sender and a request
    /// holding the customer) never wait on each other nor deadlock. Nothing on SQLite.
    pub fn row_lock_skip(self) -> &'static str {
        match self {
            Engine::Sqlite => "",
            Engine::Postgres => " FOR NO KEY UPDATE SKIP LOCKED",
        }
    }

    /// SQL for a sum that cannot overflow (issue 14 §2.2): no stored value, however large
    /// (an order written by SQL with `i64::MAX`), may make an aggregate fail. PostgreSQL sums
    /// a BIGINT column in NUMERIC (exact); SQLite's `SUM` raises "integer overflow", so its
    /// `TOTAL` sums in REAL (exact below 2⁵³ cents, about 9·10¹³ yuan). Combine the result
    /// with [`Engine::clamp_bigint`]; an empty set sums to NULL on PostgreSQL and 0 on SQLite.
    pub fn sum_wide(self, expr: &str) -> String {
        match self {
            Engine::Sqlite => format!("TOTAL({expr})"),
            Engine::Postgres => format!("SUM({expr})"),
        }
    }

    /// SQL that brings a wide numeric expression (from [`Engine::sum_wide`]) back to a BIGINT,
    /// saturating at the i64 range instead of failing; NULL becomes 0. SQLite's CAST of a REAL
    /// to INTEGER saturates by itself.
    pub fn clamp_bigint(self, expr: &str) -> String {
        match self {
            Engine::Sqlite => format!("CAST(COALESCE({expr}, 0) AS INTEGER)"),
            Engine::Postgres => {
                format!("CAST(LEAST(GREATEST(COALESCE({expr}, 0), -9223372036854775808), 9223372036854775807) AS BIGINT)")
            }
        }
    }

    /// SQL for the largest integer not above a non-negative numeric expression: SQLite's CAST
    /// truncates (its FLOOR needs the optional math functions), PostgreSQL's CAST rounds.
    pub fn floor_int(self, expr: &str) -> String {
        match self {
            Engine::Sqlite => format!("CAST({expr} AS INTEGER)"),
            Engine::Postgres => format!("CAST(FLOOR({expr}) AS BIGINT)"),
        }
    }

    /// SQL for a one-column subquery of the strings in the JSON array bound at `$param` (bind
    /// [`Arg::Json`]): one statement text for any number of values, where an `IN ($1, $2, …)` list
    /// is a new statement for each length (and quadratic for SQLite to prepare).
    pub fn json_strings(self, param: usize) -> String {
        match self {
            Engine::Sqlite => format!("SELECT value FROM json_each(${param})"),
            Engine::Postgres => format!("SELECT jsonb_array_elements_text(${param})"),
        }
    }

    /// A subquery yielding the integers of the JSON array bound at `$param` (`[1, 2]`).
    pub fn json_ints(self, param: usize) -> String {
        match self {
            Engine::Sqlite => format!("SELECT value FROM json_each(${param})"),
            Engine::Postgres => format!("SELECT CAST(jsonb_array_elements_text(${param}) AS BIGINT)"),
        }
    }

    /// A subquery of the rows of the JSON array of arrays bound at `$param` (`[[1, "a"], …]`),
    /// columns `c0, c1, …` cast to `types` (`BIGINT`, `TEXT`, or `JSON` for a nested document
    /// kept as JSON: text on SQLite, jsonb on PostgreSQL): many rows through one statement, for
    /// set-based `INSERT … SELECT` and `UPDATE … FROM` of rows computed outside SQL.
    pub fn json_tuples(self, param: usize, types: &[&str]) -> String {
        let cols: Vec<String> = types
            .iter()
            .enumerate()
            .map(|(i, t)| match (self, *t) {
                (Engine::Sqlite, "JSON") => format!("json_extract(value, '$[{i}]') AS c{i}"),
                (Engine::Postgres, "JSON") => format!("(e -> {i}) AS c{i}"),
                (Engine::Sqlite, t) => format!("CAST(json_extract(value, '$[{i}]') AS {t}) AS c{i}"),
                (Engine::Postgres, t) => format!("CAST(e ->> {i} AS {t}) AS c{i}"),
            })
            .collect();
        match self {
            Engine::Sqlite => format!("SELECT {} FROM json_each(${param})", cols.join(", ")),
            Engine::Postgres => format!("SELECT {} FROM jsonb_array_elements(${param}) AS e", cols.join(", ")),
        }
    }

    /// SQL true for the rows whose (`customer_col`, `id_col`) is one of the pairs of the JSON
    /// array bound at `$param` (`[[customer, id], …]`), written so that each engine finds them
    /// by its key: SQLite by the rowid, PostgreSQL by the primary key (customer, id) — an `IN`
    /// list per column makes PostgreSQL's planner scan the table (measured: 350 ms for a batch
    /// of a 860,500-row outbox, against 0.3 ms).
    pub fn key_pairs_in(self, customer_col: &str, id_col: &str, param: usize) -> String {
        match self {
            Engine::Sqlite => format!(
                "{id_col} IN (SELECT json_extract(value, '$[1]') FROM json_each(${param})) \
                 AND {customer_col} IN (SELECT json_extract(value, '$[0]') FROM json_each(${param}))"
            ),
            Engine::Postgres => format!(
                "({customer_col}, {id_col}) IN (SELECT CAST(e ->> 0 AS BIGINT), CAST(e ->> 1 AS BIGINT) FROM jsonb_array_elements(${param}) AS e)"
            ),
        }
    }

    /// SQL for the text of top-level key `key` in the JSON object column `doc` (NULL when the key
    /// is absent or JSON null), reading the key from placeholder `$param`, and the argument to bind
    /// there. SQLite takes a JSON path (the key quoted, so it must not contain `"`) and yields SQL
    /// numbers and 1/0 for booleans; both engines give the same text: `5`, `true`, `gold`.
    pub fn json_text(self, doc: &str, param: usize, key: &str) -> (String, Arg) {
        match self {
            Engine::Sqlite => (
                format!(
                    "(CASE json_type({doc}, ${param}) WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' \
                     ELSE CAST(json_extract({doc}, ${param}) AS TEXT) END)"
                ),
                Arg::Text(Some(format!("$.\"{key}\""))),
            ),
            Engine::Postgres => (format!("({doc} ->> ${param})"), Arg::Text(Some(key.to_owned()))),
        }
    }

    /// The text expression `expr` compared and sorted by code point on every engine (SQLite's
    /// BINARY collation; PostgreSQL's "C", whatever the database's own collation), so that a
    /// list sorted by name pages alike on both and a prefix is a range of it. PostgreSQL's
    /// `customers_live_name` index is on this expression.
    pub fn code_point_order(self, expr: &str) -> String {
        match self {
            Engine::Sqlite => expr.to_owned(),
            Engine::Postgres => format!("({expr} COLLATE \"C\")"),
        }
    }

    /// SQL true for the customers (table alias `alias`) whose name, mobile or email contain
    /// `text` (three characters or more: a trigram index finds nothing shorter), case-folded,
    /// found through the engine's trigram index, and the argument to bind as `$param`. SQLite:
    /// the FTS5 table `customer_search` (migration 0030), asked for `text` as one phrase;
    /// PostgreSQL: `LIKE '%text%'` over the pg_trgm indexes of the same migration.
    pub fn customer_substring(self, alias: &str, text: &str, param: usize) -> (String, Arg) {
        match self {
            Engine::Sqlite => (
                format!("{alias}.id IN (SELECT rowid FROM customer_search WHERE customer_search MATCH ${param})"),
                Arg::Text(Some(format!("\"{}\"", text.replace('"', "\"\"")))),
            ),
            Engine::Postgres => (
                format!(
                    "(LOWER({alias}.name) LIKE ${param} ESCAPE '\\' OR {alias}.mobile LIKE ${param} ESCAPE '\\' \
                     OR LOWER({alias}.email) LIKE ${param} ESCAPE '\\')"
                ),
                Arg::Text(Some(format!("%{}%", text.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")))),
            ),
        }
    }
}

/// How a PostgreSQL database is laid out: on one server, or distributed by Citus (detected at
/// connect: the `citus` extension is installed and `customers` is a distributed table).
///
/// Not an [`Engine`]: the SQL is PostgreSQL's either way. What differs is what the distributed
/// planner accepts, and those differences are handled in this module (see [`citus`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// One PostgreSQL server (or a Citus coordinator whose tables are not distributed yet).
    Single,
    /// A Citus coordinator with patron's tables distributed by customer.
    Citus,
}

/// A pool's connections at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// Open connections.
    pub size: u32,
    /// Of those, idle.
    pub idle: u32,
    /// The cap.
    pub max: u32,
}

/// A connection pool on one of the supported engines.
#[derive(Clone, Debug)]
pub enum Db {
    /// SQLite pool, the turn its writers take in this process ([`WriteTurn`]), read-only
    /// connections for point reads off sqlx's worker threads, and read-write ones for the
    /// transactions of [`Db::begin`] ([`direct`]; a file database only).
    Sqlite(SqlitePool, WriteTurn, Option<Arc<direct::DirectReaders>>, Option<Arc<direct::DirectWriters>>),
    /// PostgreSQL pool, and how the database is laid out.
    Postgres(PgPool, Layout),
}

/// The turn SQLite's writers take within this process (issue 15 §6). SQLite has one writer; a
/// second `BEGIN IMMEDIATE` waits in SQLite's busy handler, which sleeps and retries (1, 2, 5 …
/// up to 100 ms at a time), so under eight concurrent writers an order's commit waited up to a
/// second while the lock sat free between sleeps. Writers of this process queue here instead,
/// first come first served, and begin the moment the previous one ends; the busy handler is left
/// for other processes (a CLI import beside the server).
#[derive(Clone, Debug)]
pub struct WriteTurn {
    turn: Arc<tokio::sync::Semaphore>,
    // Ordinary writers line up here before they wait for `turn`, so at most one of them waits
    // for it at a time and an urgent writer is next but one (see [`Db::begin_urgent`]).
    line: Arc<tokio::sync::Semaphore>,
    // Dropped with the last handle of the database: tells its background tasks to end.
    _alive: Arc<tokio::sync::oneshot::Sender<()>>,
}

/// A writer's turn, held for the life of its transaction.
#[derive(Debug)]
pub struct WritePermit {
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl WriteTurn {
    /// A turn for a new pool, and what resolves when its last handle is gone.
    fn new() -> (WriteTurn, tokio::sync::oneshot::Receiver<()>) {
        let (alive, gone) = tokio::sync::oneshot::channel();
        let one = || Arc::new(tokio::sync::Semaphore::new(1));
        (WriteTurn { turn: one(), line: one(), _alive: Arc::new(alive) }, gone)
    }

    /// Waits for the turn, as long as SQLite's own busy timeout would have (a transaction held
    /// open past it is a fault, answered as busy rather than a request that never ends). An
    /// urgent writer skips the line of ordinary ones: it waits for the transaction running and
    /// at most one more.
    async fn take(&self, urgent: bool) -> Result<WritePermit> {
        let wait = async {
            if urgent {
                self.turn.clone().acquire_owned().await
            } else {
                let _in_line = self.line.acquire().await?;
                self.turn.clone().acquire_owned().await
            }
        };
        match tokio::time::timeout(Duration::from_secs(30), wait).await {
            Ok(Ok(permit)) => Ok(WritePermit { _permit: permit }),
            Ok(Err(_)) => Err(StoreError::Internal("the SQLite writer queue is closed".into())),
            Err(_) => Err(StoreError::Busy("another write has held the database for 30 s".into())),
        }
    }
}

/// Runs `work` to completion on a task of its own, whether or not the caller still waits for it
/// (see [`Db::begin`]); what it returns is dropped if nobody does.
async fn detached<T: Send + 'static>(work: impl std::future::Future<Output = T> + Send + 'static) -> Result<T> {
    tokio::spawn(work).await.map_err(|e| StoreError::Internal(format!("a database task failed: {e}")))
}

/// Moves SQLite's write-ahead log into the database every [`CHECKPOINT_EVERY`] (a passive checkpoint: it
/// waits for no reader or writer and none waits for it). By default the commit that takes the
/// log past 1,000 pages does it, copying and syncing the pages while holding the write lock, so
/// every writer queued behind it, and every read waiting for its audit entry, waited too: POST
/// /orders at 8 writers had a p99 of 65–415 ms at 1 M customers (issue 15 §6). Ends when the
/// last handle of the database is gone (`gone`) or the pool is closed. Each tick is
/// [`checkpoint_tick`].
async fn checkpoint_in_background(pool: SqlitePool, turn: Arc<tokio::sync::Semaphore>, mut gone: tokio::sync::oneshot::Receiver<()>) {
    let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut gone => return,
            _ = tick.tick() => {}
        }
        if pool.is_closed() {
            return;
        }
        if let Err(e) = checkpoint_tick(&pool, &turn, WAL_RESTART_FRAMES).await {
            if pool.is_closed() {
                return;
            }
            tracing::warn!(error = %e, "SQLite background checkpoint failed; the next tick tries again");
        }
    }
}

/// How often the background checkpoint runs. Each copies what the writers added since the last,
/// on the two cores the writers use too: at 8 writers making 5,000-6,000 orders/s (1 M
/// customers) a tick once a second copied about 300 MB and no request finished for 20-67 ms
/// at each; POST /orders' p99 26-48 ms. Every 250 ms: p99 18-19 ms at the same rate (100 ms:
/// 9.6 ms in one run). An idle tick finds nothing to copy and costs one statement.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// Log frames (pages) past which the background checkpoint restarts the log: 1 GiB of 4 KiB
/// pages. A restart costs the writers of that moment: at 64 MiB (a restart every second or two
/// under 8 writers at 1 M customers) POST /orders' p99 went from 29–32 to 64 ms, so the log is
/// bounded where restarts are rare (one in about 25 s of that load), not kept small.
const WAL_RESTART_FRAMES: i64 = 262_144;

/// How long a restarting checkpoint waits for the readers of the log before it gives up until
/// the next tick; writers wait behind it meanwhile, so it is short.
const WAL_RESTART_WAIT_MS: u32 = 20;

/// What one background checkpoint did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Checkpointed {
    /// Every frame of the log is in the database, and the log is short enough to stay.
    Passive,
    /// The log was longer than the limit; the next writer starts it again from its beginning.
    Restarted,
    /// Some frames are not in the database yet, or the log's readers did not finish in time.
    Busy,
}

/// One tick of the background checkpoint: a passive checkpoint, then, when the log holds more
/// than `restart_frames` frames all copied into the database, a restart of the log.
///
/// A log starts again from its beginning only when a writer finds no reader using it. Under a
/// steady load of short reads some reader always is (each began while the log held frames not
/// yet copied), so the log never restarted and grew by every write: 1.7 GB after 30 s of 8
/// writers at 1 M customers, each page lookup searching more of its index. A restarting
/// checkpoint takes the write lock and waits for the readers of that moment to finish (new
/// readers then read the database file alone), so that the next writer starts the log again
/// from its beginning (never cut back: [`SQLITE_JOURNAL_SIZE_LIMIT`]); it waits at most
/// [`WAL_RESTART_WAIT_MS`], on a connection whose busy timeout is set for it (the connection is
/// not returned to the pool if the usual timeout cannot be set back). A truncating checkpoint
/// instead was measured and rejected: at 64 MiB it took POST /orders' p99 from 25 to 115 ms.
pub(crate) async fn checkpoint_tick(pool: &SqlitePool, turn: &tokio::sync::Semaphore, restart_frames: i64) -> Result<Checkpointed> {
    let (busy, log, copied): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)").fetch_one(pool).await?;
    if busy != 0 || copied < log {
        return Ok(Checkpointed::Busy);
    }
    if log <= restart_frames {
        return Ok(Checkpointed::Passive);
    }
    sync_database_file(pool).await;
    // What the writers added during that sync, copied and synced too, still without their turn.
    // Under 8 writers at 5,000 orders/s (1 M customers) the log grew by about 300 MB a second,
    // and the restart copied and synced what came during the sync with every writer waiting:
    // the turn held 107-118 ms, a restart every 4 s; 42-76 ms with this. Frames a reader still
    // needs stay for the restart.
    sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(PASSIVE)").fetch_one(pool).await?;
    sync_database_file(pool).await;
    let mut conn = pool.acquire().await?;
    // patron's writers wait for their turn meanwhile (woken as it is given back) rather than
    // finding SQLite's lock taken and sleeping in its busy handler's growing steps.
    let _turn = turn.acquire().await.map_err(|_| StoreError::Internal("the SQLite writer queue is closed".into()))?;
    let held = std::time::Instant::now();
    sqlx::query(&format!("PRAGMA busy_timeout = {WAL_RESTART_WAIT_MS}")).execute(&mut *conn).await?;
    let restarted: std::result::Result<(i64, i64, i64), sqlx::Error> =
        sqlx::query_as("PRAGMA wal_checkpoint(RESTART)").fetch_one(&mut *conn).await;
    let usual = format!("PRAGMA busy_timeout = {}", SQLITE_BUSY_TIMEOUT.as_millis());
    if sqlx::query(&usual).execute(&mut *conn).await.is_err() {
        conn.close_on_drop();
    }
    tracing::debug!(frames = log, turn_held_ms = held.elapsed().as_millis() as u64, "SQLite log restarted");
    Ok(match restarted? {
        (0, _, _) => Checkpointed::Restarted,
        _ => Checkpointed::Busy,
    })
}

/// Writes the database file's pages that checkpoints copied out of the log to the disk, before a
/// restarting checkpoint takes the writers' turn. Under writes a passive checkpoint copies the
/// frames it may but finds the log grown meanwhile, and SQLite syncs the database file only
/// when a checkpoint has copied the very last frame; so the copies of a whole log (about
/// [`WAL_RESTART_FRAMES`] pages, a GiB) waited in the page cache for the restarting checkpoint,
/// whose `fsync` then took 170-214 ms with every writer, and every read waiting for its audit
/// entry, behind it (`perf trace`, 8 writers and 16 readers of the 360 on the 1 M-customer
/// database). Synced here first, with nobody waiting, the restart's own sync has only the pages
/// of the moment since. A file that cannot be opened or synced here is left to SQLite's own
/// sync, as before.
async fn sync_database_file(pool: &SqlitePool) {
    let path = pool.connect_options().get_filename().to_path_buf();
    let synced = tokio::task::spawn_blocking(move || std::fs::OpenOptions::new().read(true).write(true).open(path)?.sync_data()).await;
    if let Ok(Err(e)) = synced {
        tracing::debug!(error = %e, "SQLite database file not synced ahead of a log restart");
    }
}

/// One value bound to a `$n` placeholder. Owned, so a query can be built once and run on either engine.
#[derive(Debug, Clone)]
pub enum Arg {
    /// Integer (NULL when `None`).
    I64(Option<i64>),
    /// Float (NULL when `None`).
    F64(Option<f64>),
    /// Text (NULL when `None`).
    Text(Option<String>),
    /// Boolean (NULL when `None`).
    Bool(Option<bool>),
    /// Timestamp in UTC (NULL when `None`).
    Time(Option<DateTime<Utc>>),
    /// Calendar date (NULL when `None`).
    Date(Option<NaiveDate>),
    /// JSON document (jsonb on PostgreSQL, text on SQLite).
    Json(serde_json::Value),
}

macro_rules! arg_from {
    ($t:ty, $variant:ident, $conv:expr) => {
        impl From<$t> for Arg {
            fn from(v: $t) -> Self {
                Arg::$variant(Some($conv(v)))
            }
        }
        impl From<Option<$t>> for Arg {
            fn from(v: Option<$t>) -> Self {
                Arg::$variant(v.map($conv))
            }
        }
    };
}
arg_from!(i64, I64, |v| v);
arg_from!(i32, I64, i64::from);
arg_from!(f64, F64, |v| v);
arg_from!(String, Text, |v| v);
arg_from!(&str, Text, |v: &str| v.to_owned());
arg_from!(&String, Text, |v: &String| v.clone());
arg_from!(bool, Bool, |v| v);
arg_from!(DateTime<Utc>, Time, |v| v);
arg_from!(NaiveDate, Date, |v| v);
impl From<serde_json::Value> for Arg {
    fn from(v: serde_json::Value) -> Self {
        Arg::Json(v)
    }
}
impl From<Option<&Option<String>>> for Arg {
    fn from(v: Option<&Option<String>>) -> Self {
        Arg::Text(v.cloned().flatten())
    }
}

/// A portable SQL statement with its arguments.
#[derive(Debug, Clone)]
pub struct Query {
    sql: Cow<'static, str>,
    args: Vec<Arg>,
    /// PostgreSQL: planned for its own arguments at every call ([`Query::planned_per_call`]).
    per_call: bool,
}

/// Starts a query; bind arguments in `$1, $2, …` order with [`Query::bind`].
pub fn query(sql: impl Into<Cow<'static, str>>) -> Query {
    Query { sql: sql.into(), args: Vec::new(), per_call: false }
}

impl Query {
    /// Binds the next argument.
    pub fn bind(mut self, arg: impl Into<Arg>) -> Self {
        self.args.push(arg.into());
        self
    }
    /// Binds the next argument in place (for loops building multi-row statements).
    pub fn push(&mut self, arg: impl Into<Arg>) {
        self.args.push(arg.into());
    }
    /// The bound arguments (to move them into another statement).
    pub fn into_args(self) -> Vec<Arg> {
        self.args
    }
    /// Number of arguments bound so far.
    pub fn arg_count(&self) -> usize {
        self.args.len()
    }
    /// PostgreSQL: plans the statement for its arguments at every call (sqlx's unnamed
    /// statement) instead of preparing it once. After five calls PostgreSQL may switch a
    /// prepared statement to one plan for any argument, which for a value-dependent filter is a
    /// trap: the list's name search (`LIKE $1` with `ORDER BY id LIMIT 51`) then walked every
    /// customer in id order, 0.45 s a page instead of 5 ms through the trigram index, 16
    /// requests/s under load at 1 M. For statements that filter by what a user typed or chose,
    /// where planning (~1 ms) is small beside a bad plan. SQLite: no effect.
    pub fn planned_per_call(mut self) -> Self {
        self.per_call = true;
        self
    }
}

/// Binds a list of [`Arg`]s to a sqlx query of either engine (the `bind` methods share their names).
macro_rules! bind_args {
    ($q:expr, $args:expr) => {{
        let mut q = $q;
        for a in $args {
            q = match a {
                Arg::I64(v) => q.bind(v),
                Arg::F64(v) => q.bind(v),
                Arg::Text(v) => q.bind(v),
                Arg::Bool(v) => q.bind(v),
                Arg::Time(v) => q.bind(v),
                Arg::Date(v) => q.bind(v),
                Arg::Json(v) => q.bind(Json(v)),
            };
        }
        q
    }};
}

/// Rows decodable from both engines (what `#[derive(sqlx::FromRow)]` produces for portable types).
pub trait Row: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin {}
impl<T> Row for T where T: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin {}

/// Generates the four execution methods for a type whose variants hold an executor expression.
macro_rules! exec_methods {
    ($self:ident, $sqlite:pat => $se:expr, $pg:pat => $pe:expr) => {
        /// Runs a statement; returns the number of rows affected.
        pub async fn execute(&mut $self, q: Query) -> Result<u64> {
            let Query { sql, args, per_call } = q;
            Ok(match $self.as_exec() {
                $sqlite => bind_args!(sqlx::query::<Sqlite>(&sql), args).execute($se).await?.rows_affected(),
                $pg => bind_args!(sqlx::query::<Postgres>(&sql), args).persistent(!per_call).execute($pe).await?.rows_affected(),
            })
        }
        /// Fetches all rows.
        pub async fn fetch_all<T: Row>(&mut $self, q: Query) -> Result<Vec<T>> {
            let Query { sql, args, per_call } = q;
            Ok(match $self.as_exec() {
                $sqlite => bind_args!(sqlx::query_as::<Sqlite, T>(&sql), args).fetch_all($se).await?,
                $pg => bind_args!(sqlx::query_as::<Postgres, T>(&sql), args).persistent(!per_call).fetch_all($pe).await?,
            })
        }
        /// Fetches at most one row.
        pub async fn fetch_optional<T: Row>(&mut $self, q: Query) -> Result<Option<T>> {
            let Query { sql, args, per_call } = q;
            Ok(match $self.as_exec() {
                $sqlite => bind_args!(sqlx::query_as::<Sqlite, T>(&sql), args).fetch_optional($se).await?,
                $pg => bind_args!(sqlx::query_as::<Postgres, T>(&sql), args).persistent(!per_call).fetch_optional($pe).await?,
            })
        }
        /// Fetches exactly one row.
        pub async fn fetch_one<T: Row>(&mut $self, q: Query) -> Result<T> {
            let Query { sql, args, per_call } = q;
            Ok(match $self.as_exec() {
                $sqlite => bind_args!(sqlx::query_as::<Sqlite, T>(&sql), args).fetch_one($se).await?,
                $pg => bind_args!(sqlx::query_as::<Postgres, T>(&sql), args).persistent(!per_call).fetch_one($pe).await?,
            })
        }
    };
}

enum PoolRef<'a> {
    Sqlite(&'a SqlitePool),
    Postgres(&'a PgPool),
}

/// Read access through the pool. Methods take `&mut self` only to share one macro with [`Tx`].
pub struct Reader<'a>(&'a Db);

impl Reader<'_> {
    fn as_exec(&mut self) -> PoolRef<'_> {
        match self.0 {
            Db::Sqlite(p, ..) => PoolRef::Sqlite(p),
            Db::Postgres(p, _) => PoolRef::Postgres(p),
        }
    }
    exec_methods!(self, PoolRef::Sqlite(p) => p, PoolRef::Postgres(p) => p);
}

/// How long a [`ScanReader`]'s statement may run on PostgreSQL before the server cancels it.
const SCAN_TIMEOUT_MS: u64 = 30_000;

/// Reads that scan much of the base for a rule somebody just wrote (segment counts and
/// previews), from [`Db::scan_reader`]. On PostgreSQL they run in a read transaction of their
/// own with three settings for it alone:
///
/// - `work_mem` 32 MB (the server's default is 4 MB): a set in a rule (`tag = "下午茶" or …`,
///   324,000 tagged customers at 1 M) is then hashed once instead of probed for each of the
///   million customers, 1.2 s → 0.55 s; hash joins stay in one batch.
/// - `jit` off: compiling the plan cost ~80 ms of a 1 s count, and a rule runs once.
/// - `statement_timeout` ([`SCAN_TIMEOUT_MS`]): a client that hangs up does not stop its
///   statement (sqlx sends no cancel), so a costly rule clicked repeatedly kept several backends
///   busy for minutes. The server now ends it; the caller gets [`StoreError::TimedOut`].
///
/// SQLite: the pool's reads, as [`Db::reader`].
pub enum ScanReader<'a> {
    /// SQLite: through the pool.
    Sqlite(&'a SqlitePool),
    /// PostgreSQL: a read transaction with the settings above (dropped: rolled back).
    Postgres(Transaction<'static, Postgres>),
}

enum ScanRef<'a> {
    Sqlite(&'a SqlitePool),
    Postgres(&'a mut sqlx::PgConnection),
}

// The shared macro also makes `execute`, which scans never call.
#[allow(dead_code)]
impl ScanReader<'_> {
    fn as_exec(&mut self) -> ScanRef<'_> {
        match self {
            ScanReader::Sqlite(p) => ScanRef::Sqlite(p),
            ScanReader::Postgres(t) => ScanRef::Postgres(&mut *t),
        }
    }
    exec_methods!(self, ScanRef::Sqlite(p) => p, ScanRef::Postgres(c) => &mut *c);
}

/// One connection held for a series of short reads (the statements of a customer's 360).
/// Each statement run on the pool takes a connection and gives it back, and sqlx pings every
/// connection it is given back (on SQLite a hop to the connection's worker thread, and a task):
/// on one held connection the series pays that once (issue 15 §1). On a SQLite file it is a
/// direct reader with no worker thread at all ([`direct`]). Rows decode through `FromRow` on
/// sqlx's connections and through serde on the direct one, so row types derive both.
pub enum ReadConn {
    /// A SQLite connection of sqlx's pool (an in-memory database).
    Sqlite(sqlx::pool::PoolConnection<Sqlite>),
    /// A PostgreSQL connection.
    Postgres(sqlx::pool::PoolConnection<Postgres>),
    /// A read-only SQLite connection stepped on the calling thread.
    Direct(direct::DirectRead),
}

/// A sqlx connection of a [`ReadConn`], for the shared execution methods.
struct Pooled<'a>(TxRef<'a>);

// The shared macro also makes `execute`, which reads never call.
#[allow(dead_code)]
impl Pooled<'_> {
    fn as_exec(&mut self) -> TxRef<'_> {
        match &mut self.0 {
            TxRef::Sqlite(c) => TxRef::Sqlite(c),
            TxRef::Postgres(c) => TxRef::Postgres(c),
        }
    }
    exec_methods!(self, TxRef::Sqlite(c) => &mut *c, TxRef::Postgres(c) => &mut *c);
}

impl ReadConn {
    /// Fetches all rows.
    pub async fn fetch_all<T: Row + DeserializeOwned>(&mut self, q: Query) -> Result<Vec<T>> {
        match self {
            ReadConn::Direct(d) => d.fetch_all(&q),
            ReadConn::Sqlite(c) => Pooled(TxRef::Sqlite(c)).fetch_all(q).await,
            ReadConn::Postgres(c) => Pooled(TxRef::Postgres(c)).fetch_all(q).await,
        }
    }

    /// Fetches at most one row.
    pub async fn fetch_optional<T: Row + DeserializeOwned>(&mut self, q: Query) -> Result<Option<T>> {
        match self {
            ReadConn::Direct(d) => d.fetch_optional(&q),
            ReadConn::Sqlite(c) => Pooled(TxRef::Sqlite(c)).fetch_optional(q).await,
            ReadConn::Postgres(c) => Pooled(TxRef::Postgres(c)).fetch_optional(q).await,
        }
    }

    /// Fetches exactly one row (`RowNotFound` as sqlx reports it when there is none).
    pub async fn fetch_one<T: Row + DeserializeOwned>(&mut self, q: Query) -> Result<T> {
        match self {
            ReadConn::Direct(d) => d.fetch_optional(&q)?.ok_or_else(|| StoreError::from(sqlx::Error::RowNotFound)),
            ReadConn::Sqlite(c) => Pooled(TxRef::Sqlite(c)).fetch_one(q).await,
            ReadConn::Postgres(c) => Pooled(TxRef::Postgres(c)).fetch_one(q).await,
        }
    }

    /// The engine of this connection.
    pub fn engine(&self) -> Engine {
        match self {
            ReadConn::Sqlite(_) | ReadConn::Direct(_) => Engine::Sqlite,
            ReadConn::Postgres(_) => Engine::Postgres,
        }
    }
}

/// An open transaction on either engine. Dropped without [`Tx::commit`], it rolls back.
pub enum Tx {
    /// SQLite transaction, and the writer's turn, given back after the transaction (fields drop
    /// in order).
    Sqlite(Transaction<'static, Sqlite>, WritePermit),
    /// SQLite transaction stepped on the calling thread ([`direct::DirectWriters`]), and the
    /// writer's turn, given back after the transaction has ended (fields drop in order).
    Direct(direct::DirectTx, WritePermit),
    /// PostgreSQL transaction, and how the database is laid out.
    Postgres(Transaction<'static, Postgres>, Layout),
}

enum TxRef<'a> {
    Sqlite(&'a mut sqlx::SqliteConnection),
    Postgres(&'a mut sqlx::PgConnection),
}

/// Indexes a transaction dropped for a rewrite of their table (SQLite), to put back.
#[derive(Debug, Default)]
pub struct DroppedIndexes {
    /// Their `CREATE INDEX` statements.
    create: Vec<String>,
    /// Their rows of `sqlite_stat1` (table, index, stat).
    stats: Vec<(String, Option<String>, String)>,
}

impl Tx {
    /// Runs a statement; returns the number of rows affected.
    pub async fn execute(&mut self, q: Query) -> Result<u64> {
        match self {
            Tx::Direct(d, _) => d.execute(&q),
            Tx::Sqlite(t, _) => Pooled(TxRef::Sqlite(t)).execute(q).await,
            Tx::Postgres(t, _) => Pooled(TxRef::Postgres(t)).execute(q).await,
        }
    }

    /// Fetches all rows.
    pub async fn fetch_all<T: Row + DeserializeOwned>(&mut self, q: Query) -> Result<Vec<T>> {
        match self {
            Tx::Direct(d, _) => d.fetch_all(&q),
            Tx::Sqlite(t, _) => Pooled(TxRef::Sqlite(t)).fetch_all(q).await,
            Tx::Postgres(t, _) => Pooled(TxRef::Postgres(t)).fetch_all(q).await,
        }
    }

    /// Fetches at most one row.
    pub async fn fetch_optional<T: Row + DeserializeOwned>(&mut self, q: Query) -> Result<Option<T>> {
        match self {
            Tx::Direct(d, _) => d.fetch_optional(&q),
            Tx::Sqlite(t, _) => Pooled(TxRef::Sqlite(t)).fetch_optional(q).await,
            Tx::Postgres(t, _) => Pooled(TxRef::Postgres(t)).fetch_optional(q).await,
        }
    }

    /// Fetches exactly one row (`RowNotFound` as sqlx reports it when there is none).
    pub async fn fetch_one<T: Row + DeserializeOwned>(&mut self, q: Query) -> Result<T> {
        match self {
            Tx::Direct(d, _) => d.fetch_optional(&q)?.ok_or_else(|| StoreError::from(sqlx::Error::RowNotFound)),
            Tx::Sqlite(t, _) => Pooled(TxRef::Sqlite(t)).fetch_one(q).await,
            Tx::Postgres(t, _) => Pooled(TxRef::Postgres(t)).fetch_one(q).await,
        }
    }

    /// Commits the transaction.
    pub async fn commit(self) -> Result<()> {
        match self {
            // The turn (the second field) is given back once the commit has run. The commit
            // runs here even when it is the one that starts the log again after a checkpoint
            // (syncing its header; it no longer cuts the file back: SQLITE_JOURNAL_SIZE_LIMIT);
            // the other writers wait for it in any case. Moving every commit off the runtime's workers (`block_in_place`) was
            // tried and measured no better (writers alone ~1,000-1,240/s, p99 12-19 ms, both ways).
            Tx::Direct(d, _turn) => d.commit()?,
            Tx::Sqlite(t, _) => t.commit().await?,
            Tx::Postgres(t, _) => t.commit().await?,
        }
        Ok(())
    }

    /// Rolls the transaction back.
    pub async fn rollback(self) -> Result<()> {
        match self {
            Tx::Direct(d, _turn) => d.rollback()?,
            Tx::Sqlite(t, _) => t.rollback().await?,
            Tx::Postgres(t, _) => t.rollback().await?,
        }
        Ok(())
    }

    /// The engine this transaction runs on.
    pub fn engine(&self) -> Engine {
        match self {
            Tx::Sqlite(..) | Tx::Direct(..) => Engine::Sqlite,
            Tx::Postgres(..) => Engine::Postgres,
        }
    }

    /// How the database is laid out (SQLite: [`Layout::Single`]).
    pub fn layout(&self) -> Layout {
        match self {
            Tx::Sqlite(..) | Tx::Direct(..) => Layout::Single,
            Tx::Postgres(_, l) => *l,
        }
    }

    /// Lets this transaction's commit return before its WAL is on disk (PostgreSQL and Citus:
    /// `synchronous_commit = off` for this transaction alone), for records whose loss in a
    /// crash of the database server costs a repetition the caller tolerates anyway — a
    /// delivery's outcome, whose loss re-sends the message under the same message id. A crash of
    /// patron loses nothing: the server has the commit. Saves a disk flush (~4 ms here) per
    /// commit. SQLite: nothing (WAL with `synchronous = NORMAL` does not flush at commit).
    pub async fn relaxed_commit(&mut self) -> Result<()> {
        if self.engine() == Engine::Postgres {
            self.execute(query("SET LOCAL synchronous_commit = off")).await?;
        }
        Ok(())
    }

    /// Before this transaction rewrites every row of `table`: on SQLite, drops its secondary
    /// indexes (those created by `CREATE INDEX`; keys stay) and returns what puts them back
    /// ([`Tx::restore_indexes`], in the same transaction): building an index once over a
    /// million rows costs a fraction of keeping it current row by row (an analysis run's scores:
    /// 9.4 s instead of 11.9 s in the sqlite3 shell). Readers on other connections see the old
    /// table and indexes until the commit. PostgreSQL: nothing (a dropped index would lock
    /// readers out of the table until the commit).
    pub async fn drop_indexes_for_rewrite(&mut self, table: &str) -> Result<DroppedIndexes> {
        let mut dropped = DroppedIndexes::default();
        if self.engine() != Engine::Sqlite {
            return Ok(dropped);
        }
        let indexes: Vec<(String, String)> = self
            .fetch_all(query("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = $1 AND sql IS NOT NULL").bind(table))
            .await?;
        let (has_stats,): (i64,) = self.fetch_one(query("SELECT COUNT(*) FROM sqlite_master WHERE name = 'sqlite_stat1'")).await?;
        if has_stats > 0 {
            // The planner's statistics of the dropped indexes go with them; put back as they were.
            dropped.stats = self.fetch_all(query("SELECT tbl, idx, stat FROM sqlite_stat1 WHERE tbl = $1").bind(table)).await?;
        }
        for (name, sql) in indexes {
            self.execute(query(format!("DROP INDEX \"{}\"", name.replace('"', "\"\"")))).await?;
            dropped.create.push(sql);
        }
        Ok(dropped)
    }

    /// Recreates the indexes [`Tx::drop_indexes_for_rewrite`] dropped, with their statistics.
    pub async fn restore_indexes(&mut self, dropped: DroppedIndexes) -> Result<()> {
        for sql in dropped.create {
            self.execute(query(sql)).await?;
        }
        for (tbl, idx, stat) in dropped.stats {
            self.execute(query("DELETE FROM sqlite_stat1 WHERE tbl = $1 AND idx IS $2").bind(tbl.clone()).bind(idx.clone())).await?;
            self.execute(query("INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES ($1, $2, $3)").bind(tbl).bind(idx).bind(stat)).await?;
        }
        Ok(())
    }

    /// Whether one statement may lock rows of many customers (`… WHERE id IN (…) FOR UPDATE`):
    /// SQLite (whose transaction holds the one write lock anyway) and PostgreSQL on one server.
    /// Citus locks rows only in statements that stay on one shard, so a batch there locks
    /// customer by customer.
    pub fn locks_across_customers(&self) -> bool {
        self.layout() != Layout::Citus
    }

    /// PostgreSQL: turns the per-row foreign-key triggers off (`replica`) or back on for the
    /// rest of the transaction, when the role may set `session_replication_role` (a superuser,
    /// or granted `SET` on it); returns whether it did. Only for writes whose references the
    /// caller guarantees itself (see `import::order_load`). SQLite: does nothing.
    ///
    /// Citus: does nothing. The foreign keys are checked on the workers, in connections that
    /// this setting does not reach, and the locks that stand in for the triggers would be
    /// `FOR KEY SHARE` across shards, which Citus refuses.
    pub async fn fk_triggers(&mut self, on: bool) -> Result<bool> {
        if self.engine() != Engine::Postgres || self.layout() == Layout::Citus {
            return Ok(false);
        }
        let (may,): (bool,) = self.fetch_one(query("SELECT has_parameter_privilege('session_replication_role', 'SET')")).await?;
        if may {
            let role = if on { "DEFAULT" } else { "replica" };
            self.execute(query(format!("SET LOCAL session_replication_role = {role}"))).await?;
        }
        Ok(may)
    }

    /// Whether `table.column` (text) sorts by bytes, as Rust compares `str`s: then the lowest
    /// and highest of a set of values can be found here and sent as two binds instead of the
    /// set. SQLite: always (its default `BINARY` collation is `memcmp`). PostgreSQL: when the
    /// column's collation, or the database's default it stands for, is libc's `C`, `POSIX` or
    /// `C.UTF-8` (code point order, which UTF-8 keeps in bytes); ICU and language collations
    /// do not. (`datlocprovider` is read through `to_jsonb` because servers before 15 lack it:
    /// their collations are all libc.)
    pub async fn sorts_bytewise(&mut self, table: &str, column: &str) -> Result<bool> {
        if self.engine() == Engine::Sqlite {
            return Ok(true);
        }
        let found: Option<(bool,)> = self
            .fetch_optional(
                query(
                    "SELECT CASE WHEN co.collname = 'default' \
                     THEN COALESCE(to_jsonb(d) ->> 'datlocprovider', 'c') = 'c' AND d.datcollate IN ('C', 'POSIX', 'C.UTF-8', 'C.utf8') \
                     ELSE co.collprovider = 'c' AND co.collcollate IN ('C', 'POSIX', 'C.UTF-8', 'C.utf8') END \
                     FROM pg_attribute a JOIN pg_collation co ON co.oid = a.attcollation \
                     JOIN pg_database d ON d.datname = current_database() \
                     WHERE a.attrelid = to_regclass($1) AND a.attname = $2",
                )
                .bind(table)
                .bind(column),
            )
            .await?;
        Ok(found.is_some_and(|(b,)| b))
    }

    /// Citus: runs the rest of the transaction's statements that span shards over one
    /// connection per node (`citus.multi_shard_modify_mode = sequential`). Citus needs that in
    /// a transaction that writes a reference table (the catalogue of products and categories)
    /// after a statement that spanned the shards of a table referring to it; call it before
    /// the first such statement. Elsewhere: does nothing.
    pub async fn one_connection_per_node(&mut self) -> Result<()> {
        if self.layout() == Layout::Citus {
            self.execute(query("SET LOCAL citus.multi_shard_modify_mode TO 'sequential'")).await?;
        }
        Ok(())
    }

    /// PostgreSQL only: one COPY fed chunk by chunk, `next` giving each payload (COPY text
    /// format; `None` after the last); the server reads a chunk while the next is made.
    pub async fn copy_in_chunks(&mut self, statement: &str, mut next: impl FnMut() -> Option<Vec<u8>>) -> Result<u64> {
        match self {
            Tx::Postgres(t, _) => {
                let mut copy = t.copy_in_raw(statement).await?;
                while let Some(payload) = next() {
                    if let Err(e) = copy.send(payload).await {
                        // Abort so the connection returns to a usable state; the original error matters.
                        let _ = copy.abort("patron: send failed").await;
                        return Err(e.into());
                    }
                }
                Ok(copy.finish().await?)
            }
            Tx::Sqlite(..) | Tx::Direct(..) => Err(StoreError::Internal("COPY is PostgreSQL only".into())),
        }
    }

    /// PostgreSQL only: streams rows in COPY text format into `table (columns)`. The caller
    /// formats the payload with [`copy_text_field`].
    pub async fn copy_in(&mut self, statement: &str, payload: Vec<u8>) -> Result<u64> {
        let mut once = Some(payload);
        self.copy_in_chunks(statement, move || once.take()).await
    }
}

/// PostgreSQL: runs `statements` one after another on connections of the pool.
async fn run_each(pool: sqlx::PgPool, statements: Vec<String>) -> std::result::Result<(), sqlx::Error> {
    for sql in statements {
        sqlx::query(&sql).execute(&pool).await?;
    }
    Ok(())
}

/// Appends one field in PostgreSQL COPY text format (tab separated, `\N` for NULL).
pub fn copy_text_field(buf: &mut Vec<u8>, value: Option<&str>) {
    match value {
        None => buf.extend_from_slice(b"\\N"),
        Some(s) => {
            for b in s.bytes() {
                match b {
                    b'\\' => buf.extend_from_slice(b"\\\\"),
                    b'\t' => buf.extend_from_slice(b"\\t"),
                    b'\n' => buf.extend_from_slice(b"\\n"),
                    b'\r' => buf.extend_from_slice(b"\\r"),
                    _ => buf.push(b),
                }
            }
        }
    }
}

/// SQLite: the bytes of the database file a connection reads through a memory map: none; every
/// connection reads pages with `pread` into its own cache. A connection whose next transaction
/// finds the log changed by another's commit (under load the audit group commit lands every
/// millisecond or so) drops its cache and, with a map, unmaps and maps the whole file again
/// (`pagerBeginReadTransaction`), page-faulting in every page it then touches. `munmap` and
/// `mmap` hold the process's memory-map lock, so one connection that had scanned most of the
/// file (a segment preview) blocked every other's mapping for the 10-15 ms its unmap took. On
/// the 1 M-customer database (bench/api's, 16 connections, interleaved 10 s runs, AMD VM,
/// 2026-12-06) the 360 went from 4,170-5,424 requests/s (p99 5.4-15.9 ms) with 2 GiB maps to
/// 7,361-10,611 (p99 2.9-4.4 ms) without; a request right after a preview from up to 17-26 ms to
/// under 6 ms; previews and an analysis run no slower.
pub(crate) const SQLITE_MMAP_SIZE: u64 = 0;

/// SQLite: the page cache (KiB) of each of the pool's connections when the direct connections
/// ([`direct`]) do the writing, so that the pool serves reads: lists, searches, the timeline,
/// segment scans and an analysis run's reads. Under writes a connection's cache lasts one
/// transaction, and a scan reads each page once, so a big cache bought nothing there and cost
/// its emptying: with 64 MiB the first request on a connection after a preview took 3-12 ms
/// (freeing the 16,384 pages the scan had filled) and two previews over consents 2.0 and 4.3 s
/// against 0.3 and 0.7 s; with 8 MiB, under 2 ms, and an analysis run 8.7-8.9 s against
/// 10.7-12.7 s (interleaved, same database).
const SQLITE_READ_CACHE_KIB: i64 = 8 * 1024;

/// SQLite: the page cache (KiB) of a connection that writes (the direct writers, and the pool's
/// when it writes too: an in-memory database, `PATRON_SQLITE_WRITES=sqlx`): an import's chunk
/// and its indexes' pages stay in memory until the commit.
pub(crate) const SQLITE_WRITE_CACHE_KIB: i64 = 64 * 1024;

/// SQLite: the size the write-ahead log is cut back to when a writer starts it again after a
/// checkpoint (`journal_size_limit`): -1, never; the next writers write the file over from its
/// beginning, so it stays at its peak (about [`WAL_RESTART_FRAMES`] pages, 1 GiB, until the
/// last connection closes and removes it). Cut back to 64 MiB, the commit that starts the log
/// again `ftruncate`s up to a GiB of pages, dirty ones among them, while every writer waits:
/// 8 writers alone on the 1 M-customer database, 10 s runs, interleaved, had a p99 of 346-402 ms
/// (max 453-505 ms) in the 3 of 6 runs that restarted the log, against 104-136 ms (max
/// 204-242 ms) in the 4 of 6 that did without the cut; the others' p99 was 10-14 ms either way.
pub(crate) const SQLITE_JOURNAL_SIZE_LIMIT: i64 = -1;

/// How long a SQLite statement waits for a lock another connection holds.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(30);

impl Db {
    /// Connects to `url` (`sqlite://path`, `sqlite::memory:`, `postgres://…`) and applies migrations.
    /// A SQLite file is created if missing, in WAL mode with foreign keys on.
    pub async fn connect(url: &str) -> Result<Db> {
        let db = if url.starts_with("sqlite:") {
            let in_memory = url.contains(":memory:") || url.contains("mode=memory");
            // `PATRON_SQLITE_WRITES=sqlx` keeps every transaction on sqlx (bench/api compares).
            let direct_writes = !in_memory && std::env::var("PATRON_SQLITE_WRITES").map_or(true, |v| v != "sqlx");
            let cache_kib = if direct_writes { SQLITE_READ_CACHE_KIB } else { SQLITE_WRITE_CACHE_KIB };
            let opts = SqliteConnectOptions::from_str(url)
                .map_err(|e| StoreError::Config(format!("bad SQLite URL: {e}")))?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                // NORMAL in WAL mode survives a killed process (only an OS crash may lose the last commits).
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(SQLITE_BUSY_TIMEOUT)
                .pragma("cache_size", (-cache_kib).to_string())
                .pragma("temp_store", "memory")
                .pragma("mmap_size", SQLITE_MMAP_SIZE.to_string())
                .pragma("journal_size_limit", SQLITE_JOURNAL_SIZE_LIMIT.to_string())
                // No commit copies the log into the database: a background task does
                // ([`checkpoint_in_background`]).
                .pragma("wal_autocheckpoint", "0")
                // Statements carry customer data in their text (multi-row inserts); never log them.
                .disable_statement_logging();
            let pool = SqlitePoolOptions::new()
                // An in-memory database lives in one connection; a file allows concurrent readers.
                .max_connections(if in_memory { 1 } else { 8 })
                .min_connections(if in_memory { 1 } else { 0 })
                .idle_timeout(if in_memory { None } else { Some(Duration::from_secs(600)) })
                .max_lifetime(if in_memory { None } else { Some(Duration::from_secs(1800)) })
                // sqlx pings a connection on every checkout by default: for SQLite a round trip to
                // the connection's worker thread per statement, which doubled the hops of a 360
                // read. A file connection cannot go stale as a network one can.
                .test_before_acquire(false)
                .connect_with(opts.clone())
                .await?;
            sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
            let (turn, gone) = WriteTurn::new();
            if !in_memory {
                tokio::spawn(checkpoint_in_background(pool.clone(), turn.turn.clone(), gone));
            }
            // `PATRON_SQLITE_READS=sqlx` keeps every read on sqlx (bench/api compares the two).
            let direct = std::env::var("PATRON_SQLITE_READS").map_or(true, |v| v != "sqlx");
            let readers = if in_memory || !direct { None } else { Some(Arc::new(direct::DirectReaders::new(opts.get_filename())?)) };
            let writers = if !direct_writes { None } else { Some(Arc::new(direct::DirectWriters::new(opts.get_filename())?)) };
            Db::Sqlite(pool, turn, readers, writers)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let opts = sqlx::postgres::PgConnectOptions::from_str(url)
                .map_err(|e| StoreError::Config(format!("bad PostgreSQL URL: {e}")))?
                .disable_statement_logging();
            let pool = PgPoolOptions::new().max_connections(16).acquire_timeout(Duration::from_secs(30)).connect_with(opts).await?;
            let has_citus = citus::installed(&pool).await?;
            migrate_postgres(&pool, has_citus).await?;
            let layout = if has_citus && citus::is_distributed(&pool).await? {
                // Tables added by the migrations just applied join the distribution.
                citus::distribute_pool(&pool, None).await?;
                Layout::Citus
            } else {
                Layout::Single
            };
            Db::Postgres(pool, layout)
        } else {
            return Err(StoreError::Config(format!("unsupported database URL (expected sqlite://… or postgres://…): {}", redact_url(url))));
        };
        Ok(db)
    }

    /// The engine of this pool.
    pub fn engine(&self) -> Engine {
        match self {
            Db::Sqlite(..) => Engine::Sqlite,
            Db::Postgres(..) => Engine::Postgres,
        }
    }

    /// How the database is laid out (SQLite: [`Layout::Single`]).
    pub fn layout(&self) -> Layout {
        match self {
            Db::Sqlite(..) => Layout::Single,
            Db::Postgres(_, l) => *l,
        }
    }

    /// Whether a transaction may rewrite many rows of a customer table, stay open through a
    /// long computation, and then write the shared tables: one PostgreSQL server. Not SQLite,
    /// whose one writer would hold the write lock all along, nor Citus, which refuses a change
    /// to a reference table after a parallel change to a distributed one in the same
    /// transaction.
    pub(crate) fn rewrites_early(&self) -> bool {
        matches!(self, Db::Postgres(_, Layout::Single))
    }

    /// Read access through the pool (each statement on its own connection).
    pub fn reader(&self) -> Reader<'_> {
        Reader(self)
    }

    /// Reads for a rule somebody just wrote ([`ScanReader`]: on PostgreSQL a read transaction
    /// with more memory for hashing, no JIT and a statement timeout).
    pub async fn scan_reader(&self) -> Result<ScanReader<'_>> {
        self.scan_reader_with(SCAN_TIMEOUT_MS).await
    }

    /// [`Db::scan_reader`] with a timeout of `timeout_ms` (tests).
    pub(crate) async fn scan_reader_with(&self, timeout_ms: u64) -> Result<ScanReader<'_>> {
        match self {
            Db::Sqlite(p, ..) => Ok(ScanReader::Sqlite(p)),
            Db::Postgres(p, _) => {
                // Begun on a task of its own, as `Db::begin` says why.
                let pool = p.clone();
                let mut tx = detached(async move { pool.begin().await }).await??;
                sqlx::query(
                    "SELECT set_config('work_mem', '32MB', true), set_config('jit', 'off', true), \
                     set_config('statement_timeout', $1, true)",
                )
                .bind(timeout_ms.to_string())
                .execute(&mut *tx)
                .await?;
                Ok(ScanReader::Postgres(tx))
            }
        }
    }

    /// SQLite file: one of the direct readers ([`direct`]), for a thread of its own to step
    /// statements on ([`direct::DirectRead::raw`]) in one read transaction. `None` on an
    /// in-memory database (its one connection may be the caller's) and on PostgreSQL.
    pub fn sqlite_direct_read(&self) -> Result<Option<direct::DirectRead>> {
        match self {
            Db::Sqlite(_, _, Some(readers), _) => Ok(Some(readers.take()?)),
            _ => Ok(None),
        }
    }

    /// One connection for a series of short reads ([`ReadConn`]): on a SQLite file one of the
    /// direct readers ([`direct`]).
    pub async fn read_conn(&self) -> Result<ReadConn> {
        Ok(match self {
            Db::Sqlite(_, _, Some(readers), _) => ReadConn::Direct(readers.take()?),
            Db::Sqlite(p, ..) => ReadConn::Sqlite(p.acquire().await?),
            Db::Postgres(p, _) => ReadConn::Postgres(p.acquire().await?),
        })
    }

    /// Begins a transaction. On SQLite it takes the write lock at once (`BEGIN IMMEDIATE`) so a
    /// read-then-write transaction cannot fail half-way with a busy error.
    ///
    /// Safe to cancel at any point. sqlx's own begin is not (0.8.6, both engines): a caller
    /// dropped after `BEGIN` ran and before sqlx made its `Transaction` (a client that hangs up
    /// mid-request) sent the connection back to the pool inside an open transaction, which
    /// nothing rolled back. On SQLite it kept the write lock until the connection closed, ten
    /// minutes later: every write meanwhile waited 30 s and failed, and every 360 with it
    /// (bench/api saw the server stop answering after a wrk run ended); on PostgreSQL the next
    /// borrower's statements ran inside it, to be discarded. So the begin runs on a task of its
    /// own, which finishes whatever happens to the caller: a transaction nobody takes is
    /// dropped, and so rolled back, before the writer's turn it holds is given back.
    pub async fn begin(&self) -> Result<Tx> {
        self.begin_in_turn(false).await
    }

    /// Begins a transaction that a queue of ordinary writers does not hold up (SQLite: it waits
    /// for the transaction running and at most one more; PostgreSQL: as [`Db::begin`]). For the
    /// audit entries of reads, committed in groups that the reads wait for: behind eight
    /// clients POSTing orders, the 360 waited for every order queued before its group and fell
    /// from ~3,500 to ~650 requests/s (issue 15 §6, reads unaffected by writes).
    pub(crate) async fn begin_urgent(&self) -> Result<Tx> {
        self.begin_in_turn(true).await
    }

    async fn begin_in_turn(&self, urgent: bool) -> Result<Tx> {
        match self {
            Db::Sqlite(_, turn, _, Some(writers)) => {
                let permit = turn.take(urgent).await?;
                // No await from here on: a caller dropped meanwhile drops the transaction, which
                // rolls back before the turn is given back.
                Ok(Tx::Direct(writers.begin()?, permit))
            }
            Db::Sqlite(p, turn, ..) => {
                let permit = turn.take(urgent).await?;
                let pool = p.clone();
                let (tx, permit) = detached(async move { (pool.begin_with("BEGIN IMMEDIATE").await, permit) }).await?;
                Ok(Tx::Sqlite(tx?, permit))
            }
            Db::Postgres(p, l) => {
                let pool = p.clone();
                Ok(Tx::Postgres(detached(async move { pool.begin().await }).await??, *l))
            }
        }
    }

    /// Begins a transaction for bulk rows whose references the work made or read itself (an
    /// analysis run's million score rows name the run it inserts and customers it read, and
    /// customer rows are never deleted). SQLite checks no foreign key in it: with the checks
    /// on it visited every score row to delete them (1.25 s against 0.47 s by truncation) and
    /// probed two parent keys per row inserted (a million rows 3.7 → 2.9 s). The setting cannot
    /// change inside a transaction, and a connection without it must serve nobody else, so the
    /// transaction has a file connection to itself, closed when it ends whichever way (an
    /// in-memory database lives in its one connection, which keeps the checks). PostgreSQL:
    /// as [`Db::begin`] ([`Tx::fk_triggers`] does the same there, within the transaction).
    pub async fn begin_without_reference_checks(&self) -> Result<Tx> {
        let Db::Sqlite(p, turn, ..) = self else { return self.begin().await };
        let permit = turn.take(false).await?;
        let pool = p.clone();
        let (tx, permit) = detached(async move {
            let begun = async {
                let mut conn = pool.acquire().await?;
                let (file,): (String,) =
                    sqlx::query_as("SELECT file FROM pragma_database_list WHERE name = 'main'").fetch_one(&mut *conn).await?;
                if !file.is_empty() {
                    conn.close_on_drop();
                    sqlx::query("PRAGMA foreign_keys = OFF").execute(&mut *conn).await?;
                }
                Transaction::begin(conn, Some("BEGIN IMMEDIATE".into())).await
            };
            (begun.await, permit)
        })
        .await?;
        Ok(Tx::Sqlite(tx?, permit))
    }

    /// Checks the database answers.
    pub async fn ping(&self) -> Result<()> {
        let _: (i64,) = self.reader().fetch_one(query("SELECT CAST(1 AS BIGINT)")).await?;
        Ok(())
    }

    /// SQLite: moves the write-ahead log into the database and truncates it (after bulk work,
    /// whose log would otherwise stay as large as the write). Nothing on PostgreSQL.
    pub async fn checkpoint(&self) -> Result<()> {
        if let Db::Sqlite(p, ..) = self {
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(p).await?;
        }
        Ok(())
    }

    /// Refreshes the planner's statistics of `tables` after a bulk load. PostgreSQL (and Citus,
    /// which passes it on to the shards): without it the planner keeps the estimates of the
    /// empty tables: after a million-order import a customer's ledger read chose the
    /// `created_at` index and took 36 ms instead of 0.2 ms (bench/loyalty). SQLite: `ANALYZE`
    /// from a sample (`analysis_limit`, a few hundred milliseconds at a million rows), so the
    /// planner knows which index narrows most (a city's customers against a name prefix).
    pub async fn analyze(&self, tables: &[&str]) -> Result<()> {
        match self {
            Db::Postgres(p, _) => {
                // Two at a time, on two connections: each samples its table with one server
                // process (a million orders' eight tables took 0.6-0.8 s one after another).
                let (mut first, mut second) = (Vec::new(), Vec::new());
                for (i, t) in tables.iter().enumerate() {
                    if i % 2 == 0 { &mut first } else { &mut second }.push(format!("ANALYZE {t}"));
                }
                futures_util::future::try_join(run_each(p.clone(), first), run_each(p.clone(), second)).await?;
            }
            Db::Sqlite(p, ..) => {
                // One connection: the limit is a setting of the connection that runs ANALYZE.
                let mut conn = p.acquire().await?;
                sqlx::query("PRAGMA analysis_limit = 1000").execute(&mut *conn).await?;
                for t in tables {
                    sqlx::query(&format!("ANALYZE {t}")).execute(&mut *conn).await?;
                }
                sqlx::query("PRAGMA analysis_limit = 0").execute(&mut *conn).await?;
            }
        }
        Ok(())
    }

    /// After a committed transaction replaced most rows of `tables` (an analysis run deletes and
    /// rewrites every customer's scores). PostgreSQL: `ANALYZE`, so the planner knows the new
    /// rows at once (the first run's scores had no statistics at all: a tier filter was estimated
    /// at 5,000 rows of 450,000 and joined by index, 1.2 s instead of 0.5 s); and when
    /// autovacuum is off (as on this project's test machines), `VACUUM` too, since nothing else
    /// would reclaim the million dead rows each run leaves, or set the visibility map and hint
    /// bits that the next readers would otherwise set page by page. Neither blocks readers or
    /// writers. The tables are refreshed at once, each on a connection of its own (each is one
    /// backend's work, and the run waits for both). SQLite: nothing (a rewritten table's free
    /// pages are reused; its statistics are kept by the rewrite itself, [`Tx::restore_indexes`]).
    pub async fn refresh_after_rewrite(&self, tables: &[&str]) -> Result<()> {
        if let Db::Postgres(p, _) = self {
            let (autovacuum,): (String,) = sqlx::query_as("SELECT current_setting('autovacuum')").fetch_one(p).await?;
            let verb = if autovacuum == "on" { "ANALYZE" } else { "VACUUM (ANALYZE)" };
            let refresh = |t: &&str| {
                let sql = format!("{verb} {t}");
                async move { sqlx::query(&sql).execute(p).await }
            };
            futures_util::future::try_join_all(tables.iter().map(refresh)).await?;
        }
        Ok(())
    }

    /// The pool's connections now, for `/metrics`.
    pub fn pool_stats(&self) -> PoolStats {
        match self {
            Db::Sqlite(p, ..) => PoolStats { size: p.size(), idle: p.num_idle() as u32, max: p.options().get_max_connections() },
            Db::Postgres(p, _) => PoolStats { size: p.size(), idle: p.num_idle() as u32, max: p.options().get_max_connections() },
        }
    }

    /// Closes the pool, waiting for connections to finish (checkpoints SQLite's WAL).
    pub async fn close(&self) {
        match self {
            Db::Sqlite(p, ..) => p.close().await,
            Db::Postgres(p, _) => p.close().await,
        }
    }
}

/// Applies the PostgreSQL migrations that are not applied yet.
///
/// When every migration is recorded already, the migrator is not run at all: it would begin
/// with `CREATE TABLE IF NOT EXISTS _sqlx_migrations`, which a role that does not own that
/// table may not run on a server with Citus loaded ("must be owner"), although it changes
/// nothing. On Citus, tables are created as plain local tables (no automatic conversion to
/// Citus local tables when they refer to a reference table: such a table could never be
/// distributed afterwards, see [`citus`]); the caller distributes them right after.
async fn migrate_postgres(pool: &PgPool, has_citus: bool) -> Result<()> {
    let migrator = sqlx::migrate!("./migrations/postgres");
    let (recorded,): (bool,) = sqlx::query_as("SELECT to_regclass('_sqlx_migrations') IS NOT NULL").fetch_one(pool).await?;
    if recorded {
        let applied: Vec<(i64, Vec<u8>)> =
            sqlx::query_as("SELECT version, checksum FROM _sqlx_migrations WHERE success").fetch_all(pool).await?;
        let pending = migrator
            .iter()
            .filter(|m| m.migration_type.is_up_migration())
            .any(|m| !applied.iter().any(|(v, c)| *v == m.version && c.as_slice() == &*m.checksum));
        if !pending {
            return Ok(());
        }
    }
    let mut conn = pool.acquire().await?;
    if has_citus {
        sqlx::query("SET citus.enable_local_reference_table_foreign_keys = off").execute(&mut *conn).await?;
    }
    // On Citus one statement at a time (see `citus::migrate`).
    let ran = if has_citus { citus::migrate(&mut conn, &migrator).await } else { migrator.run(&mut *conn).await.map_err(Into::into) };
    if has_citus {
        // The setting must not follow this connection back into the pool.
        conn.detach();
    }
    ran?;
    Ok(())
}

/// A database URL with any password replaced, safe for messages and logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}://{}:***@{}", &url[..s], &creds[..c], &url[at + 1..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// What a database error means for the caller, independent of the engine.
pub(crate) fn classify(err: &sqlx::Error) -> Option<StoreError> {
    let db_err = err.as_database_error()?;
    let msg = db_err.message().to_owned();
    let busy = if db_err.try_downcast_ref::<sqlx::postgres::PgDatabaseError>().is_some() {
        db_err.code().is_some_and(|c| pg_busy(&c))
    } else {
        // SQLite reports its extended result code as a number.
        db_err.code().and_then(|c| c.parse().ok()).is_some_and(sqlite_busy)
    };
    if busy {
        return Some(StoreError::Busy(msg));
    }
    // query_canceled: on patron's connections only a statement timeout cancels (ScanReader).
    if db_err.code().as_deref() == Some("57014") && db_err.try_downcast_ref::<sqlx::postgres::PgDatabaseError>().is_some() {
        return Some(StoreError::TimedOut(msg));
    }
    match db_err.kind() {
        sqlx::error::ErrorKind::UniqueViolation => Some(StoreError::Conflict(msg)),
        sqlx::error::ErrorKind::ForeignKeyViolation => Some(StoreError::Reference(msg)),
        sqlx::error::ErrorKind::CheckViolation | sqlx::error::ErrorKind::NotNullViolation => {
            Some(StoreError::Invalid { field: None, message: msg })
        }
        _ => None,
    }
}

/// Whether an SQLite result code means "busy, try again": SQLITE_BUSY and SQLITE_LOCKED with
/// their extended codes (the primary code is the low byte).
fn sqlite_busy(code: i32) -> bool {
    matches!(code & 0xff, ffi::SQLITE_BUSY | ffi::SQLITE_LOCKED)
}

/// Whether a PostgreSQL SQLSTATE means "try again": serialization_failure, deadlock_detected,
/// lock_not_available, and the connection exceptions (class 08) that a Citus coordinator
/// reports when a worker holding the shard does not answer (`08006`).
fn pg_busy(sqlstate: &str) -> bool {
    matches!(sqlstate, "40001" | "40P01" | "55P03") || sqlstate.starts_with("08")
}

/// Appends `v` as chrono's `%Y-%m-%d %H:%M:%S%.f+00` writes it (fraction in 0, 3, 6 or 9
/// digits), digit by digit: formatting through chrono parsed the format string for every value
/// and was a tenth of a million-order import's client time.
fn push_utc_timestamp(buf: &mut Vec<u8>, v: DateTime<Utc>) {
    use chrono::{Datelike, Timelike};
    let (year, nanos) = (v.year(), v.nanosecond());
    if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
        // Years beyond four digits and leap seconds: as chrono writes them.
        use std::io::Write;
        let _ = write!(buf, "{}", v.format("%Y-%m-%d %H:%M:%S%.f+00"));
        return;
    }
    fn digits(buf: &mut Vec<u8>, n: u32, width: u32) {
        for k in (0..width).rev() {
            buf.push(b'0' + (n / 10u32.pow(k) % 10) as u8);
        }
    }
    digits(buf, year as u32, 4);
    let mut fields = [v.month(), v.day(), v.hour(), v.minute(), v.second()].into_iter();
    let mut sep = [b'-', b'-', b' ', b':', b':'].into_iter();
    while let (Some(f), Some(s)) = (fields.next(), sep.next()) {
        buf.push(s);
        digits(buf, f, 2);
    }
    match nanos {
        0 => {}
        n if n % 1_000_000 == 0 => {
            buf.push(b'.');
            digits(buf, n / 1_000_000, 3);
        }
        n if n % 1_000 == 0 => {
            buf.push(b'.');
            digits(buf, n / 1_000, 6);
        }
        n => {
            buf.push(b'.');
            digits(buf, n, 9);
        }
    }
    buf.extend_from_slice(b"+00");
}

#[cfg(test)]
mod tests {

    #[tokio::test]
    async fn an_urgent_writer_waits_for_at_most_one_queued_writer() {
        // The transaction running holds the turn; four ordinary writers queue, then an urgent
        // one (the audit entries that reads wait for). It must not wait for all four.
        let (turn, _gone) = WriteTurn::new();
        let running = turn.take(false).await.expect("the first turn");
        let served = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut writers = Vec::new();
        for (name, urgent) in [("a", false), ("b", false), ("c", false), ("d", false), ("urgent", true)] {
            let (turn, served) = (turn.clone(), served.clone());
            writers.push(tokio::spawn(async move {
                let _permit = turn.take(urgent).await.expect("a turn");
                served.lock().expect("the list").push(name);
                // Held across a yield, as a transaction is held across its statements.
                tokio::task::yield_now().await;
            }));
            // Each is waiting before the next arrives (a current-thread runtime runs the spawned
            // task up to its first wait here).
            tokio::task::yield_now().await;
        }
        drop(running);
        for w in writers {
            w.await.expect("a writer");
        }
        let served = served.lock().expect("the list").clone();
        assert_eq!(served.len(), 5);
        let at = served.iter().position(|n| *n == "urgent").expect("served");
        assert!(at <= 1, "the urgent writer waited for {at} queued writers: {served:?}");
        // The ordinary ones kept their order.
        let ordinary: Vec<&str> = served.iter().copied().filter(|n| *n != "urgent").collect();
        assert_eq!(ordinary, ["a", "b", "c", "d"]);
    }

    #[tokio::test]
    async fn sqlite_is_built_without_locks_shared_by_every_connection() {
        // `.cargo/config.toml` sets LIBSQLITE3_FLAGS; a build that lost them would make every
        // page fetch of every connection take one global mutex again (issue 15).
        let db = Db::connect("sqlite::memory:").await.expect("a database");
        let options: Vec<(String,)> = db.reader().fetch_all(query("PRAGMA compile_options")).await.expect("the options");
        let options: Vec<String> = options.into_iter().map(|(o,)| o).collect();
        assert!(!options.iter().any(|o| o == "ENABLE_MEMORY_MANAGEMENT"), "{options:?}");
        assert!(options.iter().any(|o| o == "DEFAULT_MEMSTATUS=0"), "{options:?}");
        assert!(options.iter().any(|o| o == "DISABLE_PAGECACHE_OVERFLOW_STATS"), "{options:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_transaction_without_reference_checks_leaves_every_pooled_connection_checking() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let db = Db::connect(&format!("sqlite://{}", dir.path().join("refs.db").display())).await.expect("a database");
        let Db::Sqlite(pool, ..) = &db else { unreachable!("a SQLite URL") };
        let orphan = || query("INSERT INTO customer_tags (customer_id, tag) VALUES (424242, 'x')");
        // Inside, a row naming no customer goes in (the caller vouches for its references) …
        let mut tx = db.begin_without_reference_checks().await.expect("begin");
        tx.execute(orphan()).await.expect("not checked inside");
        tx.commit().await.expect("commit");
        // … and one that was dropped, not committed, is taken back.
        let mut dropped = db.begin_without_reference_checks().await.expect("begin");
        dropped.execute(query("INSERT INTO customer_tags (customer_id, tag) VALUES (424242, 'dropped')")).await.expect("not checked");
        drop(dropped);
        // Every connection the pool can hand out checks them again: all eight held at once.
        let mut held = Vec::new();
        for _ in 0..8 {
            let mut conn = pool.acquire().await.expect("a pooled connection");
            let (on,): (i64,) = sqlx::query_as("PRAGMA foreign_keys").fetch_one(&mut *conn).await.expect("the setting");
            assert_eq!(on, 1, "a pooled connection without foreign-key checks");
            held.push(conn);
        }
        drop(held);
        let mut tx = db.begin().await.expect("begin");
        let refused = tx.execute(query("INSERT INTO customer_tags (customer_id, tag) VALUES (424243, 'y')")).await;
        assert!(refused.is_err(), "an ordinary transaction checks references");
        drop(tx);
        let tags: Vec<(String,)> = db.reader().fetch_all(query("SELECT tag FROM customer_tags ORDER BY tag")).await.expect("tags");
        assert_eq!(tags, vec![("x".to_owned(),)]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn transactions_on_a_sqlite_file_run_on_patrons_connections_and_end_whichever_way() {
        use sqlx::types::Json;
        use std::collections::BTreeMap;
        let dir = tempfile::tempdir().expect("a temporary directory");
        let db = Db::connect(&format!("sqlite://{}", dir.path().join("direct.db").display())).await.expect("a database");
        let now = Utc::now();
        let put = |key: &str, value: &str| {
            query("INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3)").bind(key.to_owned()).bind(value.to_owned()).bind(now)
        };
        let keys = || query("SELECT key FROM settings WHERE key LIKE 't.%' ORDER BY key");
        // Issue 15 §6: a file database's transactions are stepped on the caller's thread.
        let mut tx = db.begin().await.expect("begin");
        assert!(matches!(tx, Tx::Direct(..)), "a transaction on a SQLite file goes through DirectWriters");
        assert_eq!(tx.execute(put("t.list", r#"["a","b"]"#)).await.expect("insert"), 1);
        tx.execute(put("t.map", r#"{"x":1,"y":2}"#)).await.expect("insert");
        // JSON kept as text reads as sqlx reads it: lists and maps (`Json<…>`) from the text.
        let (list,): (Json<Vec<String>>,) = tx.fetch_one(query("SELECT value FROM settings WHERE key = 't.list'")).await.expect("a list");
        assert_eq!(list.0, ["a", "b"]);
        let (map,): (Json<BTreeMap<String, i64>>,) =
            tx.fetch_one(query("SELECT value FROM settings WHERE key = 't.map'")).await.expect("a map");
        assert_eq!(map.0, BTreeMap::from([("x".to_owned(), 1), ("y".to_owned(), 2)]));
        // Rows affected, and a duplicate key told apart as a conflict; the transaction goes on.
        assert_eq!(tx.execute(query("UPDATE settings SET updated_at = $1 WHERE key LIKE 't.%'").bind(now)).await.expect("update"), 2);
        let twice = tx.execute(put("t.list", "[]")).await.expect_err("the key is taken");
        assert!(matches!(twice, StoreError::Conflict(_)), "{twice:?}");
        let none: Option<(String,)> = tx.fetch_optional(query("SELECT key FROM settings WHERE key = 't.none'")).await.expect("a read");
        assert!(none.is_none());
        let missing = tx.fetch_one::<(String,)>(query("SELECT key FROM settings WHERE key = 't.none'")).await.expect_err("no row");
        assert!(matches!(missing, StoreError::Database(sqlx::Error::RowNotFound)), "{missing:?}");
        // The C API on the same transaction sees its changes.
        let seen: Vec<(String,)> = tx.sqlite_raw().await.expect("the handle").fetch_all(&keys()).expect("keys");
        assert_eq!(seen.len(), 2);
        tx.commit().await.expect("commit");
        let committed: Vec<(String,)> = db.reader().fetch_all(keys()).await.expect("keys");
        assert_eq!(committed, [("t.list".to_owned(),), ("t.map".to_owned(),)]);
        // Dropped without a commit: taken back, and the connection serves the next one.
        let mut dropped = db.begin().await.expect("begin");
        dropped.execute(put("t.dropped", "1")).await.expect("insert");
        drop(dropped);
        // Cancelled while open (a client that hung up): taken back too, and the writers' turn
        // is free at once (the next begin would wait 30 s and fail if it were not).
        let cancelled = tokio::time::timeout(Duration::from_millis(50), async {
            let mut tx = db.begin().await.expect("begin");
            tx.execute(put("t.cancelled", "1")).await.expect("insert");
            std::future::pending::<()>().await;
        })
        .await;
        assert!(cancelled.is_err(), "the future was cut short");
        let mut next = tokio::time::timeout(Duration::from_secs(5), db.begin()).await.expect("the turn is free").expect("begin");
        next.execute(put("t.next", "1")).await.expect("insert");
        next.rollback().await.expect("rollback");
        let left: Vec<(String,)> = db.reader().fetch_all(keys()).await.expect("keys");
        assert_eq!(left, [("t.list".to_owned(),), ("t.map".to_owned(),)], "only the committed rows are there");
    }

    #[tokio::test]
    async fn a_busy_database_is_told_apart_from_a_failure() {
        use sqlx::{ConnectOptions, Connection};
        // Two connections to one SQLite file: while one holds the write lock, the other's write
        // fails at once (no busy wait) with SQLITE_BUSY, which must read as "busy, try again".
        let dir = tempfile::tempdir().expect("a temporary directory");
        let opts = SqliteConnectOptions::new().filename(dir.path().join("busy.db")).create_if_missing(true).busy_timeout(Duration::ZERO);
        let mut holder = opts.connect().await.expect("first connection");
        sqlx::query("CREATE TABLE t (x INTEGER)").execute(&mut holder).await.expect("table");
        sqlx::query("BEGIN IMMEDIATE").execute(&mut holder).await.expect("write lock");
        let mut other = opts.connect().await.expect("second connection");
        let err = sqlx::query("INSERT INTO t VALUES (1)").execute(&mut other).await.expect_err("the lock is held");
        assert!(matches!(StoreError::from(err), StoreError::Busy(_)));
        sqlx::query("ROLLBACK").execute(&mut holder).await.expect("release");
        holder.close().await.expect("close");
        // The codes for the same situation (SQLite extended codes; PostgreSQL SQLSTATEs); a
        // unique violation, a constraint or a plain error are not "busy".
        assert!(["40001", "40P01", "55P03", "08006"].iter().all(|c| pg_busy(c)) && !pg_busy("23505") && !pg_busy("XX000"));
        assert!([5, 517, 6, 262].into_iter().all(sqlite_busy) && ![19, 2067, 1].into_iter().any(sqlite_busy));
    }

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_reads_at_once_see_one_state_of_the_database() {
        // Issue 15 §5: the analysis reads the orders and their lines at once on two
        // connections. A write commits after the first read has begun and before the second
        // reads anything: neither sees it, so both snapshots are the one taken before it.
        let t = crate::testing::test_db(Engine::Sqlite).await;
        let db = &t.store.db;
        let mut tx = db.begin().await.expect("begin");
        tx.execute(query("CREATE TABLE t (x INTEGER)")).await.expect("table");
        tx.execute(query("INSERT INTO t VALUES (1)")).await.expect("row");
        tx.commit().await.expect("commit");
        let path = t.url.trim_start_matches("sqlite://").to_owned();
        let (first_read, wait_first_read) = std::sync::mpsc::channel::<()>();
        let (committed, wait_committed) = (std::sync::mpsc::channel::<()>(), std::sync::mpsc::channel::<()>());
        let writer = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            runtime.block_on(async {
                use sqlx::ConnectOptions;
                let mut conn = SqliteConnectOptions::new().filename(&path).connect().await.expect("the writer's connection");
                wait_first_read.recv().expect("the first read");
                sqlx::query("INSERT INTO t VALUES (2)").execute(&mut conn).await.expect("the write commits");
            });
            committed.0.send(()).expect("told");
            wait_committed.0.send(()).expect("told");
        });
        let count = |raw: &SqliteRaw<'_>| -> Result<i64> { Ok(raw.fetch_all::<(i64,)>(&query("SELECT COUNT(*) FROM t"))?[0].0) };
        let (first, second) = db
            .sqlite_read_both_in_snapshot(
                move |raw| {
                    let before = count(raw)?;
                    first_read.send(()).expect("told");
                    committed.1.recv().expect("the write");
                    Ok((before, count(raw)?, std::thread::current().id()))
                },
                move |raw| {
                    wait_committed.1.recv().expect("the write");
                    Ok((count(raw)?, std::thread::current().id()))
                },
            )
            .await
            .expect("read")
            .expect("SQLite");
        writer.join().expect("the writer");
        assert_eq!((first.0, first.1, second.0), (1, 1, 1));
        assert_ne!(first.2, second.1, "on two threads");
        let (now,): (i64,) = db.reader().fetch_one(query("SELECT COUNT(*) FROM t")).await.expect("count");
        assert_eq!(now, 2);

        // With the write lock held elsewhere past the wait, the two run one after the other on
        // one connection: the same answers, on one thread.
        let held = db.begin().await.expect("the lock");
        let started = std::time::Instant::now();
        let (first, second) = db
            .sqlite_read_both_in_snapshot(
                |raw| Ok((count(raw)?, std::thread::current().id())),
                |raw| Ok((count(raw)?, std::thread::current().id())),
            )
            .await
            .expect("read")
            .expect("SQLite");
        assert!(started.elapsed() >= SNAPSHOT_LOCK_WAIT);
        assert_eq!((first.0, second.0), (2, 2));
        assert_eq!(first.1, second.1, "on one thread");
        drop(held);
        // Every connection went back to the pool outside a transaction: a write goes through.
        let mut tx = db.begin().await.expect("begin");
        tx.execute(query("INSERT INTO t VALUES (3)")).await.expect("row");
        tx.commit().await.expect("commit");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_long_log_starts_again_once_the_readers_of_that_moment_finish() {
        // Issue 15 §6: under steady reads the log never started again by itself. A pool as
        // Db::connect makes it, without its background task, so that only these ticks run.
        let dir = tempfile::tempdir().expect("a temporary directory");
        let opts = SqliteConnectOptions::new()
            .filename(dir.path().join("wal.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(SQLITE_BUSY_TIMEOUT)
            .pragma("journal_size_limit", SQLITE_JOURNAL_SIZE_LIMIT.to_string())
            .pragma("wal_autocheckpoint", "0");
        let pool = SqlitePoolOptions::new().max_connections(4).connect_with(opts).await.expect("pool");
        let turn = tokio::sync::Semaphore::new(1);
        let log_bytes = || std::fs::metadata(dir.path().join("wal.db-wal")).expect("the log file").len();
        let write = |n: i64| {
            let pool = pool.clone();
            async move {
                sqlx::query("INSERT INTO t (x) SELECT randomblob(4000) FROM (WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < $1) SELECT i FROM r)")
                    .bind(n)
                    .execute(&pool)
                    .await
                    .expect("rows written");
            }
        };
        let log_frames = |pool: SqlitePool| async move {
            let (_, log, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)").fetch_one(&pool).await.expect("checkpoint");
            log
        };
        sqlx::query("CREATE TABLE t (x BLOB)").execute(&pool).await.expect("table");
        write(150).await;
        // A reader whose snapshot was taken while the log held frames not yet copied.
        let mut reader = pool.acquire().await.expect("reader");
        sqlx::query("BEGIN").execute(&mut *reader).await.expect("begin");
        let count = "SELECT COUNT(*) FROM t";
        let (seen,): (i64,) = sqlx::query_as(count).fetch_one(&mut *reader).await.expect("count");
        write(150).await;
        // Frames after its snapshot cannot be copied yet, so nothing restarts.
        assert_eq!(checkpoint_tick(&pool, &turn, 100).await.expect("tick"), Checkpointed::Busy);
        let (still,): (i64,) = sqlx::query_as(count).fetch_one(&mut *reader).await.expect("count");
        assert_eq!(still, seen);
        sqlx::query("COMMIT").execute(&mut *reader).await.expect("end");
        // The next reader begins before they are copied, so it reads the log too (as every read
        // of a busy server does). Everything is copied now, but the restart waits for that reader
        // briefly and gives up; the reader keeps its snapshot.
        sqlx::query("BEGIN").execute(&mut *reader).await.expect("begin");
        let (seen,): (i64,) = sqlx::query_as(count).fetch_one(&mut *reader).await.expect("count");
        assert_eq!(seen, 300);
        assert_eq!(checkpoint_tick(&pool, &turn, 100).await.expect("tick"), Checkpointed::Busy);
        assert_eq!(log_frames(pool.clone()).await, log_frames(pool.clone()).await);
        let (still,): (i64,) = sqlx::query_as(count).fetch_one(&mut *reader).await.expect("count");
        assert_eq!(still, seen);
        sqlx::query("COMMIT").execute(&mut *reader).await.expect("end");
        // A reader beginning now reads the database file alone (every frame is copied), so it
        // does not hold the restart back.
        sqlx::query("BEGIN").execute(&mut *reader).await.expect("begin");
        let (now_seen,): (i64,) = sqlx::query_as(count).fetch_one(&mut *reader).await.expect("count");
        assert_eq!(now_seen, 300);
        assert!(log_frames(pool.clone()).await > 100);
        let peak = log_bytes();
        assert_eq!(checkpoint_tick(&pool, &turn, 100).await.expect("tick"), Checkpointed::Restarted);
        assert!(turn.try_acquire().is_ok(), "the writers' turn is given back");
        sqlx::query("COMMIT").execute(&mut *reader).await.expect("end");
        // The next write starts the log from its beginning; a short log stays as it is; the
        // connection that waited has its usual timeout back.
        write(10).await;
        assert!(log_frames(pool.clone()).await < 100, "the log starts again from its beginning");
        // Written over, not cut back (SQLITE_JOURNAL_SIZE_LIMIT): no writer truncates the file.
        assert_eq!(log_bytes(), peak, "the log file keeps its size");
        assert_eq!(checkpoint_tick(&pool, &turn, 100).await.expect("tick"), Checkpointed::Passive);
        drop(reader);
        let mut conns = Vec::new();
        for _ in 0..4 {
            conns.push(pool.acquire().await.expect("connection"));
        }
        for c in &mut conns {
            let (ms,): (i64,) = sqlx::query_as("PRAGMA busy_timeout").fetch_one(&mut **c).await.expect("timeout");
            assert_eq!(ms, 30_000);
        }
        drop(conns);
        pool.close().await;
    }

    #[tokio::test]
    async fn a_real_lock_on_the_raw_sqlite_path_is_busy() {
        use sqlx::{ConnectOptions, Connection};
        // The C API path (analysis reads and bulk writes, db::direct): a write stepped while
        // another connection holds the write lock fails with SQLITE_BUSY, read as busy — both a
        // plain statement and a prepared one — and goes through once the lock is released.
        let dir = tempfile::tempdir().expect("a temporary directory");
        let opts = SqliteConnectOptions::new().filename(dir.path().join("raw.db")).create_if_missing(true).busy_timeout(Duration::ZERO);
        let mut holder = opts.connect().await.expect("first connection");
        sqlx::query("CREATE TABLE t (x INTEGER PRIMARY KEY)").execute(&mut holder).await.expect("table");
        sqlx::query("BEGIN IMMEDIATE").execute(&mut holder).await.expect("write lock");
        let mut other = opts.connect().await.expect("second connection");
        {
            let mut lock = other.lock_handle().await.expect("handle");
            let db = lock.as_raw_handle();
            let raw = SqliteRaw { _lock: Some(lock), db, _borrow: PhantomData };
            assert!(matches!(raw.execute("INSERT INTO t VALUES (1)"), Err(StoreError::Busy(_))));
            let mut st = raw.prepare("INSERT INTO t VALUES (?1)").expect("prepared");
            st.int(1, Some(2)).expect("bound");
            assert!(matches!(st.exec(), Err(StoreError::Busy(_))));
        }
        sqlx::query("ROLLBACK").execute(&mut holder).await.expect("release");
        {
            let mut lock = other.lock_handle().await.expect("handle");
            let db = lock.as_raw_handle();
            let raw = SqliteRaw { _lock: Some(lock), db, _borrow: PhantomData };
            assert_eq!(raw.execute("INSERT INTO t VALUES (1)").expect("the lock is free"), 1);
        }
        other.close().await.expect("close");
        holder.close().await.expect("close");
    }

    #[tokio::test]
    async fn a_real_postgres_lock_is_busy() {
        use sqlx::{Connection, PgConnection};
        // Two sessions of the test server: one holds a row lock, the other's update gives up at
        // its lock timeout (55P03) and a NOWAIT lock at once — both read as busy, not failures.
        let url = crate::testing::pg_admin_url();
        let mut holder = PgConnection::connect(&url).await.expect("PostgreSQL (PATRON_TEST_PG_URL)");
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        let table = format!("patron_busy_{}_{nanos}", std::process::id());
        sqlx::query(&format!("CREATE TABLE {table} (x INT PRIMARY KEY)")).execute(&mut holder).await.expect("table");
        sqlx::query(&format!("INSERT INTO {table} VALUES (1)")).execute(&mut holder).await.expect("row");
        sqlx::query("BEGIN").execute(&mut holder).await.expect("begin");
        sqlx::query(&format!("SELECT x FROM {table} WHERE x = 1 FOR UPDATE")).execute(&mut holder).await.expect("row lock");
        let mut other = PgConnection::connect(&url).await.expect("second session");
        sqlx::query("SET lock_timeout = '100ms'").execute(&mut other).await.expect("timeout");
        let waited =
            sqlx::query(&format!("UPDATE {table} SET x = 2 WHERE x = 1")).execute(&mut other).await.expect_err("the row is locked");
        let nowait =
            sqlx::query(&format!("SELECT x FROM {table} WHERE x = 1 FOR UPDATE NOWAIT")).execute(&mut other).await.expect_err("locked");
        sqlx::query("ROLLBACK").execute(&mut holder).await.expect("release");
        let updated = sqlx::query(&format!("UPDATE {table} SET x = 2 WHERE x = 1")).execute(&mut other).await.expect("free now");
        sqlx::query(&format!("DROP TABLE {table}")).execute(&mut holder).await.expect("drop");
        assert!(matches!(StoreError::from(waited), StoreError::Busy(_)));
        assert!(matches!(StoreError::from(nowait), StoreError::Busy(_)));
        assert_eq!(updated.rows_affected(), 1);
        other.close().await.expect("close");
        holder.close().await.expect("close");
    }

    #[tokio::test]
    async fn a_scan_read_has_its_own_settings_and_a_time_limit_on_postgres() {
        let t = crate::testing::test_db(Engine::Postgres).await;
        let db = &t.store.db;
        let setting = "SELECT current_setting('work_mem'), current_setting('jit'), current_setting('statement_timeout')";
        let before: (String, String, String) = db.reader().fetch_one(query(setting)).await.expect("settings");
        let mut scan = db.scan_reader().await.expect("a scan reader");
        let inside: (String, String, String) = scan.fetch_one(query(setting)).await.expect("settings");
        assert_eq!(inside, ("32MB".to_owned(), "off".to_owned(), "30s".to_owned()));
        drop(scan);
        // The transaction's alone: the pool's connections keep the server's settings.
        for _ in 0..4 {
            let after: (String, String, String) = db.reader().fetch_one(query(setting)).await.expect("settings");
            assert_eq!(after, before);
        }
        // A statement past the limit is ended by the server, and says so.
        let mut scan = db.scan_reader_with(200).await.expect("a scan reader");
        let err = scan.fetch_one::<(i64,)>(query("SELECT CAST(1 AS BIGINT) FROM pg_sleep(30)")).await.expect_err("cancelled");
        assert!(matches!(err, StoreError::TimedOut(_)), "{err:?}");
        // SQLite: the pool's reads.
        let t = crate::testing::test_db(Engine::Sqlite).await;
        let mut scan = t.store.db.scan_reader().await.expect("a scan reader");
        let (one,): (i64,) = scan.fetch_one(query("SELECT CAST(1 AS BIGINT)")).await.expect("a read");
        assert_eq!(one, 1);
    }

    #[test]
    fn timestamps_are_written_as_chrono_formats_them() {
        use chrono::TimeZone;
        let base = Utc.with_ymd_and_hms(2026, 3, 9, 7, 5, 3).unwrap();
        for nanos in [0, 1, 120_000_000, 123_000, 123_456_789, 999_999_999, 5_000_000, 40] {
            for t in [base, Utc.with_ymd_and_hms(1, 1, 1, 0, 0, 0).unwrap(), Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap()] {
                let t = t + chrono::Duration::nanoseconds(nanos);
                let mut buf = Vec::new();
                push_utc_timestamp(&mut buf, t);
                assert_eq!(String::from_utf8(buf).unwrap(), t.format("%Y-%m-%d %H:%M:%S%.f+00").to_string());
            }
        }
    }

    #[test]
    fn values_lists_number_placeholders_for_postgres_only() {
        assert_eq!(Engine::Postgres.values_rows(2, 3), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(Engine::Sqlite.values_rows(2, 3), "(?, ?, ?), (?, ?, ?)");
        assert_eq!(Engine::Sqlite.values_rows(1, 1), "(?)");
    }

    #[test]
    fn copy_escapes_control_characters() {
        let mut buf = Vec::new();
        copy_text_field(&mut buf, Some("a\tb\\c\nd"));
        buf.push(b'\t');
        copy_text_field(&mut buf, None);
        assert_eq!(buf, b"a\\tb\\\\c\\nd\t\\N");
    }

    #[test]
    fn copy_binary_rows_encode_by_column_type_and_refuse_a_mismatch() {
        let columns = [("n", ColType::Int), ("f", ColType::Float), ("t", ColType::Text), ("none", ColType::Text)];
        let mut buf = Vec::new();
        copy_binary_rows(
            &mut buf,
            &columns,
            &[vec![Arg::I64(Some(-2)), Arg::F64(Some(0.5)), Arg::Text(Some("重".into())), Arg::Text(None)]],
        )
        .expect("matching types");
        let mut want = vec![0, 4];
        want.extend([0, 0, 0, 8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe]);
        want.extend([0, 0, 0, 8, 0x3f, 0xe0, 0, 0, 0, 0, 0, 0]);
        want.extend([0, 0, 0, 3, 0xe9, 0x87, 0x8d]);
        want.extend([0xff, 0xff, 0xff, 0xff]);
        assert_eq!(buf, want);
        let err = copy_binary_rows(&mut Vec::new(), &columns[..1], &[vec![Arg::Text(Some("x".into()))]]).unwrap_err();
        assert!(err.to_string().contains("COPY column n"), "{err}");
        assert!(copy_binary_rows(&mut Vec::new(), &columns[..1], &[vec![]]).is_err(), "a short row");
        assert_eq!(COPY_BINARY_HEADER.len(), 19);
        // SMALLINT and REAL in their own widths, and what they cannot hold refused.
        let narrow = [("s", ColType::SmallInt), ("r", ColType::Real)];
        let mut buf = Vec::new();
        copy_binary_rows(&mut buf, &narrow, &[vec![Arg::I64(Some(-2)), Arg::F64(Some(0.5))]]).expect("in range");
        assert_eq!(buf, [0, 2, 0, 0, 0, 2, 0xff, 0xfe, 0, 0, 0, 4, 0x3f, 0, 0, 0]);
        for row in [
            vec![Arg::I64(Some(40_000)), Arg::F64(Some(0.5))],
            vec![Arg::I64(Some(1)), Arg::F64(Some(1e-70))],
            vec![Arg::I64(Some(1)), Arg::F64(Some(1e300))],
        ] {
            assert!(copy_binary_rows(&mut Vec::new(), &narrow, std::slice::from_ref(&row)).is_err(), "{row:?}");
        }
    }

    #[test]
    fn copy_out_reader_reads_rows_split_anywhere() {
        let columns = [("a", ColType::Int), ("b", ColType::Int), ("c", ColType::SmallInt)];
        let rows = vec![
            vec![Arg::I64(Some(1)), Arg::I64(None), Arg::I64(Some(-3))],
            vec![Arg::I64(Some(i64::MAX)), Arg::I64(Some(-7)), Arg::I64(Some(2))],
        ];
        let mut stream = COPY_BINARY_HEADER.to_vec();
        copy_binary_rows(&mut stream, &columns, &rows).expect("rows");
        stream.extend_from_slice(COPY_BINARY_TRAILER);
        let want = vec![(1, None, -3), (i64::MAX, Some(-7), 2)];
        for piece in 1..=stream.len() {
            let mut reader = CopyOutReader::default();
            let mut got = Vec::new();
            for chunk in stream.chunks(piece) {
                reader
                    .feed(chunk, &mut |r: &CopyRow<'_>| {
                        got.push((r.required_int(0)?, r.int(1)?, r.required_int(2)?));
                        Ok(())
                    })
                    .expect("a well-formed stream");
            }
            reader.finish().expect("ended with the trailer");
            assert_eq!(got, want, "pieces of {piece} bytes");
        }
        // Cut short, or not the binary format at all: an error, never a row made up.
        let mut reader = CopyOutReader::default();
        reader.feed(&stream[..stream.len() - 5], &mut |_: &CopyRow<'_>| Ok(())).expect("so far so good");
        assert!(reader.finish().is_err());
        let mut reader = CopyOutReader::default();
        assert!(reader.feed(b"1\t2\n3\t4\n.................", &mut |_: &CopyRow<'_>| Ok(())).is_err());
        // A NULL where a value must be, and a field that is no integer.
        let mut reader = CopyOutReader::default();
        let r = reader.feed(&stream, &mut |r: &CopyRow<'_>| r.required_int(1).map(drop));
        assert!(r.is_err());
        let mut text = COPY_BINARY_HEADER.to_vec();
        copy_binary_rows(&mut text, &[("t", ColType::Text)], &[vec![Arg::Text(Some("abc".into()))]]).expect("row");
        let mut reader = CopyOutReader::default();
        assert!(reader.feed(&text, &mut |r: &CopyRow<'_>| r.int(0).map(drop)).is_err());
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact_url("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("sqlite://x.db"), "sqlite://x.db");
    }
}

/// Column types of a staging table.
#[derive(Debug, Clone, Copy)]
pub enum ColType {
    /// Integer.
    Int,
    /// Text.
    Text,
    /// Timestamp (UTC).
    Time,
    /// Boolean.
    Bool,
    /// Double-precision float.
    Float,
    /// 16-bit integer (PostgreSQL's SMALLINT: a binary COPY must send 2 bytes).
    SmallInt,
    /// Single-precision float (PostgreSQL's REAL: 4 bytes in a binary COPY; SQLite keeps 8).
    Real,
}

/// A temporary table that a bulk load fills by the engine's fast path (multi-row prepared inserts
/// on SQLite, COPY on PostgreSQL) before portable `INSERT … SELECT … ON CONFLICT` statements merge
/// it into the real tables.
#[derive(Debug)]
pub struct Stage {
    /// Table name.
    pub name: &'static str,
    /// Columns in fill order.
    pub columns: &'static [(&'static str, ColType)],
}

impl Stage {
    /// (Re)creates the empty staging table for this transaction.
    pub async fn create(&self, tx: &mut Tx) -> Result<()> {
        let engine = tx.engine();
        let cols: Vec<String> = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, (n, t))| {
                // On SQLite a leading `row_no` is the rowid: a scan returns the rows in file
                // order, so `ORDER BY row_no` costs no sort (row numbers are unique in a file).
                if i == 0 && *n == "row_no" && engine == Engine::Sqlite {
                    return format!("{n} INTEGER PRIMARY KEY");
                }
                let ty = match (t, engine) {
                    (ColType::Int, _) => "BIGINT",
                    (ColType::Text, _) => "TEXT",
                    (ColType::Time, Engine::Sqlite) => "TEXT",
                    (ColType::Time, Engine::Postgres) => "TIMESTAMPTZ",
                    (ColType::Bool, Engine::Sqlite) => "INTEGER",
                    (ColType::Bool, Engine::Postgres) => "BOOLEAN",
                    (ColType::Float, Engine::Sqlite) => "REAL",
                    (ColType::Float, Engine::Postgres) => "DOUBLE PRECISION",
                    (ColType::SmallInt, Engine::Sqlite) => "INTEGER",
                    (ColType::SmallInt, Engine::Postgres) => "SMALLINT",
                    (ColType::Real, _) => "REAL",
                };
                format!("{n} {ty}")
            })
            .collect();
        tx.execute(query(format!("DROP TABLE IF EXISTS {}", self.name))).await?;
        let suffix = if engine == Engine::Postgres { " ON COMMIT DROP" } else { "" };
        tx.execute(query(format!("CREATE TEMP TABLE {} ({}){suffix}", self.name, cols.join(", ")))).await?;
        Ok(())
    }

    /// Appends rows (each with one [`Arg`] per column, in order). Also works as the bulk insert
    /// into a permanent table whose name and columns the `Stage` describes.
    pub async fn fill(&self, tx: &mut Tx, rows: Vec<Vec<Arg>>) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let ncols = self.columns.len();
        let names: Vec<&str> = self.columns.iter().map(|c| c.0).collect();
        match tx.engine() {
            Engine::Sqlite => {
                // One prepared single-row INSERT stepped per row through the C API: multi-row
                // INSERTs through sqlx bound every value through its worker thread and parsed a
                // 30,000-placeholder statement per chunk (a million scores of an analysis run).
                let placeholders: Vec<String> = (1..=ncols).map(|i| format!("?{i}")).collect();
                let sql = format!("INSERT INTO {} ({}) VALUES ({})", self.name, names.join(", "), placeholders.join(", "));
                let raw = tx.sqlite_raw().await?;
                off_the_workers(|| {
                    let mut st = raw.prepare(&sql)?;
                    for row in &rows {
                        for (i, a) in row.iter().enumerate() {
                            st.arg(i as i32 + 1, a)?;
                        }
                        st.exec()?;
                    }
                    Ok::<(), StoreError>(())
                })?;
            }
            Engine::Postgres => {
                tx.copy_in(&format!("COPY {} ({}) FROM STDIN", self.name, names.join(", ")), copy_text_rows(&rows, ncols)).await?;
                // Temporary tables get no statistics from autovacuum; without them the planner
                // joins a batch against the whole target table by sequential scan.
                if self.name.starts_with("patron_stage") {
                    tx.execute(query(format!("ANALYZE {}", self.name))).await?;
                    // The target tables grow inside this same transaction, which autovacuum
                    // cannot see, so their statistics say "small" and the planner hashes the
                    // whole table for every batch (quadratic in the file). A batch touches a few
                    // thousand keys: index lookups are the right plan for the rest of the load.
                    tx.execute(query("SET LOCAL enable_hashjoin = off")).await?;
                    tx.execute(query("SET LOCAL enable_mergejoin = off")).await?;
                }
            }
        }
        Ok(())
    }

    /// Appends rows chunk by chunk, `next` giving each chunk (`None` after the last), into a
    /// permanent table. PostgreSQL: one COPY for every chunk, so that the server works through
    /// one chunk while the next is made and formatted (a COPY per chunk waited for the server
    /// to finish each before making the next). SQLite: as [`Stage::fill`], the chunks made on a
    /// second thread meanwhile.
    pub async fn fill_chunks(&self, tx: &mut Tx, mut next: impl FnMut() -> Option<Vec<Vec<Arg>>> + Send) -> Result<()> {
        if tx.engine() == Engine::Sqlite {
            // The chunks are made on a second thread while this one inserts the previous one:
            // making a million analysis rows and inserting them took turns on one core.
            let names: Vec<&str> = self.columns.iter().map(|c| c.0).collect();
            let placeholders: Vec<String> = (1..=names.len()).map(|i| format!("?{i}")).collect();
            let sql = format!("INSERT INTO {} ({}) VALUES ({})", self.name, names.join(", "), placeholders.join(", "));
            let raw = tx.sqlite_raw().await?;
            return off_the_workers(|| {
                // One row a statement: multi-row statements measured no faster here.
                let mut st = raw.prepare(&sql)?;
                std::thread::scope(|threads| {
                    let (send, receive) = std::sync::mpsc::sync_channel::<Vec<Vec<Arg>>>(2);
                    // Inserted chunks go back to be freed where they were made: the inserting
                    // thread is the busy one, and freeing another thread's memory costs more.
                    let (done, inserted) = std::sync::mpsc::channel::<Vec<Vec<Arg>>>();
                    threads.spawn(move || {
                        while let Some(rows) = next() {
                            inserted.try_iter().for_each(drop);
                            // Closed: the inserts stopped on an error, returned below.
                            if send.send(rows).is_err() {
                                break;
                            }
                        }
                        drop(send);
                        inserted.iter().for_each(drop);
                    });
                    for rows in receive {
                        // A row of another width would shift every value after it.
                        if let Some(row) = rows.iter().find(|r| r.len() != names.len()) {
                            return Err(StoreError::Internal(format!("{} values for {} columns of {}", row.len(), names.len(), self.name)));
                        }
                        for row in &rows {
                            st.exec_row(row)?;
                        }
                        // Closed only once the maker has ended; then drop here.
                        let _ = done.send(rows);
                    }
                    Ok(())
                })
            });
        }
        // Binary COPY: the server takes values as they are rather than parsing text (floats
        // above all): a run's million score rows 11.2 → 9.4 s in psql. A value that does not
        // match its column's type is refused before anything is sent.
        let names: Vec<&str> = self.columns.iter().map(|c| c.0).collect();
        // A value refused ends the stream; its error is returned and the transaction, which
        // the caller then drops, takes back whatever was sent.
        let mut failed = None;
        let mut ended = false;
        let mut header = Some(COPY_BINARY_HEADER.to_vec());
        let statement = format!("COPY {} ({}) FROM STDIN WITH (FORMAT binary)", self.name, names.join(", "));
        tx.copy_in_chunks(&statement, || {
            if ended || failed.is_some() {
                return None;
            }
            let mut buf = header.take().unwrap_or_default();
            match next() {
                Some(rows) => match copy_binary_rows(&mut buf, self.columns, &rows) {
                    Ok(()) => Some(buf),
                    Err(e) => {
                        failed = Some(e);
                        None
                    }
                },
                None => {
                    ended = true;
                    buf.extend_from_slice(COPY_BINARY_TRAILER);
                    Some(buf)
                }
            }
        })
        .await
        .and_then(|n| failed.map_or(Ok(n), Err))?;
        Ok(())
    }

    /// Empties the table for the next batch.
    pub async fn clear(&self, tx: &mut Tx) -> Result<()> {
        tx.execute(query(format!("DELETE FROM {}", self.name))).await?;
        Ok(())
    }

    /// Drops the table.
    pub async fn drop_table(&self, tx: &mut Tx) -> Result<()> {
        tx.execute(query(format!("DROP TABLE IF EXISTS {}", self.name))).await?;
        if tx.engine() == Engine::Postgres {
            // Back to the planner's defaults (see `fill`): what follows a load — summaries over
            // every touched customer — is an aggregation that wants hash joins.
            tx.execute(query("RESET enable_hashjoin")).await?;
            tx.execute(query("RESET enable_mergejoin")).await?;
        }
        Ok(())
    }
}

/// The start of a binary COPY: signature, flags, header extension length.
const COPY_BINARY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// The end of a binary COPY: a field count of -1.
const COPY_BINARY_TRAILER: &[u8] = &[0xff, 0xff];

/// Appends rows of [`Arg`]s in PostgreSQL's binary COPY format for columns of `columns`' types
/// (BIGINT, DOUBLE PRECISION, TEXT, TIMESTAMPTZ, BOOLEAN, as [`Stage::create`] makes them).
fn copy_binary_rows(buf: &mut Vec<u8>, columns: &[(&str, ColType)], rows: &[Vec<Arg>]) -> Result<()> {
    /// Microseconds from the Unix epoch to PostgreSQL's, 2000-01-01.
    const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
    let ncols = i16::try_from(columns.len()).map_err(|_| StoreError::Internal("too many COPY columns".into()))?;
    let field = |buf: &mut Vec<u8>, bytes: &[u8]| -> Result<()> {
        let len = i32::try_from(bytes.len()).map_err(|_| StoreError::Internal("a COPY value over 2 GiB".into()))?;
        buf.extend_from_slice(&len.to_be_bytes());
        buf.extend_from_slice(bytes);
        Ok(())
    };
    for row in rows {
        if row.len() != columns.len() {
            return Err(StoreError::Internal(format!("COPY row of {} values for {} columns", row.len(), columns.len())));
        }
        buf.extend_from_slice(&ncols.to_be_bytes());
        for ((name, ty), a) in columns.iter().zip(row) {
            match (ty, a) {
                (_, Arg::I64(None) | Arg::F64(None) | Arg::Text(None) | Arg::Bool(None) | Arg::Time(None) | Arg::Date(None)) => {
                    buf.extend_from_slice(&(-1i32).to_be_bytes())
                }
                (ColType::Int, Arg::I64(Some(v))) => field(buf, &v.to_be_bytes())?,
                (ColType::Float, Arg::F64(Some(v))) => field(buf, &v.to_be_bytes())?,
                (ColType::Float, Arg::I64(Some(v))) => field(buf, &(*v as f64).to_be_bytes())?,
                (ColType::SmallInt, Arg::I64(Some(v))) => {
                    let v =
                        i16::try_from(*v).map_err(|_| StoreError::Internal(format!("COPY column {name}: {v} out of SMALLINT's range")))?;
                    field(buf, &v.to_be_bytes())?
                }
                // PostgreSQL refuses what a REAL cannot hold (an overflow, or an underflow to
                // 0 from a value that was not 0); so does this, before anything is sent.
                (ColType::Real, Arg::F64(Some(v))) => {
                    let r = *v as f32;
                    if !r.is_finite() || (r == 0.0 && *v != 0.0) {
                        return Err(StoreError::Internal(format!("COPY column {name}: {v} out of REAL's range")));
                    }
                    field(buf, &r.to_be_bytes())?
                }
                (ColType::Text, Arg::Text(Some(v))) => field(buf, v.as_bytes())?,
                (ColType::Text, Arg::Json(v)) => field(buf, v.to_string().as_bytes())?,
                (ColType::Bool, Arg::Bool(Some(v))) => field(buf, &[u8::from(*v)])?,
                (ColType::Time, Arg::Time(Some(t))) => {
                    let micros = t
                        .timestamp_micros()
                        .checked_sub(PG_EPOCH_MICROS)
                        .ok_or_else(|| StoreError::Internal(format!("{name}: time out of range")))?;
                    field(buf, &micros.to_be_bytes())?
                }
                (ty, a) => return Err(StoreError::Internal(format!("COPY column {name} ({ty:?}) given {a:?}"))),
            }
        }
    }
    Ok(())
}

/// One row of a binary COPY out ([`Db::pg_copy_out_each`]): its fields, read in place.
#[derive(Debug)]
pub struct CopyRow<'a> {
    buf: &'a [u8],
    fields: &'a [Option<(usize, usize)>],
}

impl CopyRow<'_> {
    /// Field `i` as an integer (`None` for NULL): an int8, int4 or int2 by its width.
    pub fn int(&self, i: usize) -> Result<Option<i64>> {
        let Some(field) = self.fields.get(i) else {
            return Err(StoreError::Internal(format!("COPY row of {} fields has no field {i}", self.fields.len())));
        };
        let Some((start, end)) = *field else { return Ok(None) };
        let b = &self.buf[start..end];
        Ok(Some(match *b {
            [a, b2, c, d, e, f, g, h] => i64::from_be_bytes([a, b2, c, d, e, f, g, h]),
            [a, b2, c, d] => i64::from(i32::from_be_bytes([a, b2, c, d])),
            [a, b2] => i64::from(i16::from_be_bytes([a, b2])),
            _ => return Err(StoreError::Internal(format!("COPY field {i}: {} bytes is no integer", b.len()))),
        }))
    }

    /// Field `i` as an integer that is never NULL.
    pub fn required_int(&self, i: usize) -> Result<i64> {
        self.int(i)?.ok_or_else(|| StoreError::Internal(format!("COPY field {i} is NULL")))
    }
}

/// PostgreSQL's binary COPY format as it arrives, in pieces of any size: the signature and
/// header, then each tuple (a field count, each field's length or -1 for NULL, its bytes),
/// then the trailer (a field count of -1).
#[derive(Debug, Default)]
struct CopyOutReader {
    buf: Vec<u8>,
    header_read: bool,
    ended: bool,
    fields: Vec<Option<(usize, usize)>>,
}

impl CopyOutReader {
    fn feed(&mut self, chunk: &[u8], each: &mut impl FnMut(&CopyRow<'_>) -> Result<()>) -> Result<()> {
        self.buf.extend_from_slice(chunk);
        let buf = &self.buf;
        let at = |p: usize, n: usize| buf.get(p..p + n);
        let mut pos = 0;
        if !self.header_read {
            let Some(head) = at(0, COPY_BINARY_HEADER.len()) else { return Ok(()) };
            // The signature, the flags and the extension's length (its bytes follow).
            if head[..11] != COPY_BINARY_HEADER[..11] {
                return Err(StoreError::Internal("COPY out: not PostgreSQL's binary format".into()));
            }
            let extension = u32::from_be_bytes([head[15], head[16], head[17], head[18]]) as usize;
            if buf.len() < head.len() + extension {
                return Ok(());
            }
            pos = head.len() + extension;
            self.header_read = true;
        }
        while !self.ended {
            let Some(count) = at(pos, 2) else { break };
            let count = i16::from_be_bytes([count[0], count[1]]);
            if count == -1 {
                self.ended = true;
                pos += 2;
                break;
            }
            self.fields.clear();
            let mut p = pos + 2;
            let mut whole = true;
            for _ in 0..count.max(0) {
                let Some(len) = at(p, 4) else {
                    whole = false;
                    break;
                };
                let len = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
                p += 4;
                if len < 0 {
                    self.fields.push(None);
                    continue;
                }
                let len = len as usize;
                if buf.len() < p + len {
                    whole = false;
                    break;
                }
                self.fields.push(Some((p, p + len)));
                p += len;
            }
            if !whole {
                break;
            }
            each(&CopyRow { buf, fields: &self.fields })?;
            pos = p;
        }
        self.buf.drain(..pos);
        Ok(())
    }

    /// The stream has ended: it must have ended with the trailer, nothing left over.
    fn finish(&self) -> Result<()> {
        if !self.ended || !self.buf.is_empty() {
            return Err(StoreError::Internal("COPY out ended in the middle of a row".into()));
        }
        Ok(())
    }
}

/// Rows of [`Arg`]s in COPY text format.
fn copy_text_rows(rows: &[Vec<Arg>], ncols: usize) -> Vec<u8> {
    let mut buf = Vec::with_capacity(rows.len() * ncols * 12);
    for row in rows {
        for (c, a) in row.iter().enumerate() {
            if c > 0 {
                buf.push(b'\t');
            }
            copy_text_arg(&mut buf, a);
        }
        buf.push(b'\n');
    }
    buf
}

fn copy_text_arg(buf: &mut Vec<u8>, a: &Arg) {
    use std::io::Write;
    match a {
        Arg::I64(Some(v)) => {
            let _ = write!(buf, "{v}");
        }
        Arg::F64(Some(v)) => {
            let _ = write!(buf, "{v}");
        }
        Arg::Text(Some(s)) => copy_text_field(buf, Some(s)),
        Arg::Bool(Some(b)) => buf.push(if *b { b't' } else { b'f' }),
        Arg::Time(Some(t)) => {
            let _ = write!(buf, "{}", t.to_rfc3339());
        }
        Arg::Date(Some(d)) => {
            let _ = write!(buf, "{d}");
        }
        Arg::Json(v) => copy_text_field(buf, Some(&v.to_string())),
        _ => copy_text_field(buf, None),
    }
}

// ---- SQLite's C API on sqlx's own connection ---------------------------------------------------
//
// sqlx runs every SQLite statement on a worker thread and hands rows back through channels, which
// costs far more than the statement itself when a bulk load runs one small statement per row. A
// bulk load instead locks the connection of its open transaction (`lock_handle`: the worker
// cannot run anything meanwhile) and steps prepared statements directly. All of the `unsafe` for
// that is here: the handle is valid while the lock is held, a statement never outlives the
// `SqliteRaw` it came from (lifetime), and text is bound with SQLITE_TRANSIENT (SQLite copies it),
// except by `RawStmt::exec_row`, whose bindings end before its borrow of the row does.

use libsqlite3_sys as ffi;
use std::marker::PhantomData;
use std::ptr::NonNull;

/// The open SQLite transaction's connection, held for direct prepared statements (see above).
/// Keep it for short, synchronous stretches: it blocks the calling thread while statements run.
pub struct SqliteRaw<'a> {
    // Held, not used: while it lives the worker thread cannot touch the connection (`None`: a
    // connection of [`direct::DirectWriters`], which has no worker thread).
    _lock: Option<sqlx::sqlite::LockedSqliteHandle<'a>>,
    db: NonNull<ffi::sqlite3>,
    // Borrows the transaction or connection the handle belongs to.
    _borrow: PhantomData<&'a mut ()>,
}

/// A prepared statement on a [`SqliteRaw`] connection; finalised on drop.
pub struct RawStmt<'h> {
    stmt: NonNull<ffi::sqlite3_stmt>,
    db: NonNull<ffi::sqlite3>,
    _conn: PhantomData<&'h ()>,
}

impl Tx {
    /// Every row of a read of many rows in this transaction (as [`Db::scan_all`]).
    pub async fn scan_all<T: Row + DeserializeOwned>(&mut self, q: Query) -> Result<Vec<T>> {
        if self.engine() == Engine::Sqlite {
            let raw = self.sqlite_raw().await?;
            return off_the_workers(|| raw.fetch_all(&q));
        }
        self.fetch_all(q).await
    }

    /// SQLite only: the transaction's connection for direct prepared statements ([`SqliteRaw`]).
    pub async fn sqlite_raw(&mut self) -> Result<SqliteRaw<'_>> {
        match self {
            Tx::Sqlite(t, _) => {
                let mut lock = (**t).lock_handle().await?;
                let db = lock.as_raw_handle();
                Ok(SqliteRaw { _lock: Some(lock), db, _borrow: PhantomData })
            }
            Tx::Direct(d, _) => Ok(SqliteRaw { _lock: None, db: d.handle()?, _borrow: PhantomData }),
            Tx::Postgres(..) => Err(StoreError::Internal("the SQLite C API on a PostgreSQL transaction".into())),
        }
    }
}

impl Db {
    /// Every row of a read of many rows (an analysis run's inputs). On SQLite the rows are
    /// stepped through the C API off the async workers instead of being handed over one by one
    /// from sqlx's worker thread ([`Db::sqlite_read`]).
    pub async fn scan_all<T: Row + DeserializeOwned>(&self, q: Query) -> Result<Vec<T>> {
        match self.sqlite_read(|raw| raw.fetch_all(&q)).await? {
            Some(rows) => Ok(rows),
            None => self.reader().fetch_all(q).await,
        }
    }

    /// PostgreSQL only: the middle of an integer column's values by the planner's statistics
    /// (the histogram `ANALYZE` keeps), so that a long read can be split into halves of about
    /// the same number of rows. `None` on SQLite, and where there are no statistics (a table
    /// never analysed, a Citus coordinator's shell of a distributed table).
    pub async fn pg_column_median(&self, table: &str, column: &str) -> Result<Option<i64>> {
        let Db::Postgres(p, _) = self else { return Ok(None) };
        let bounds: Option<(Option<String>,)> = sqlx::query_as(
            "SELECT CAST(histogram_bounds AS TEXT) FROM pg_stats WHERE schemaname = current_schema() AND tablename = $1 AND attname = $2",
        )
        .bind(table)
        .bind(column)
        .fetch_optional(p)
        .await?;
        let Some((Some(text),)) = bounds else { return Ok(None) };
        let values: Option<Vec<i64>> = text.trim_matches(|c| c == '{' || c == '}').split(',').map(|v| v.trim().parse().ok()).collect();
        Ok(values.and_then(|v| v.get(v.len() / 2).copied()))
    }

    /// PostgreSQL only (`false` on SQLite): hands each row of one statement to `each` as it
    /// arrives, on one pooled connection, holding one row at a time (an analysis run's nine
    /// million order rows). The statement runs to its end or the first error of `each`.
    pub async fn pg_for_each<T: Row>(&self, q: Query, mut each: impl FnMut(T) -> Result<()>) -> Result<bool> {
        use futures_util::TryStreamExt;
        let Db::Postgres(p, _) = self else { return Ok(false) };
        let Query { sql, args, per_call } = q;
        let mut conn = p.acquire().await?;
        let mut rows = bind_args!(sqlx::query_as::<Postgres, T>(&sql), args).persistent(!per_call).fetch(&mut *conn);
        while let Some(row) = rows.try_next().await? {
            each(row)?;
        }
        Ok(true)
    }

    /// PostgreSQL only (`false` on SQLite): runs `COPY (select) TO STDOUT (FORMAT binary)` on one
    /// pooled connection and hands each row to `each` as it arrives, its fields read in place.
    /// The server does what the SELECT costs it; the driver builds no row per row, which for
    /// an analysis run's nine million order rows took a core's seconds away from the two
    /// backends reading them. COPY takes no binds: `select` must hold its values (numbers
    /// only, never text a user wrote). The statement runs to its end or the first error of
    /// `each`; after an error the connection is closed rather than returned mid-stream.
    pub async fn pg_copy_out_each(&self, select: &str, mut each: impl FnMut(&CopyRow<'_>) -> Result<()>) -> Result<bool> {
        use futures_util::TryStreamExt;
        let Db::Postgres(p, _) = self else { return Ok(false) };
        let mut conn = p.acquire().await?;
        let statement = format!("COPY ({select}) TO STDOUT (FORMAT binary)");
        let mut reader = CopyOutReader::default();
        let read = async {
            let mut stream = conn.copy_out_raw(&statement).await?;
            while let Some(chunk) = stream.try_next().await? {
                reader.feed(&chunk, &mut each)?;
            }
            reader.finish()
        }
        .await;
        if read.is_err() {
            drop(conn.detach());
        }
        read.map(|()| true)
    }

    /// SQLite only (`None` on PostgreSQL): runs `read` on one pooled connection through the C
    /// API, for reads of millions of rows. sqlx hands each row over from the connection's worker
    /// thread on its own: streaming nine million orders that way was most of a database analysis
    /// (issue 15 §5); stepping them here costs SQLite's own time. `read` runs on this thread (on
    /// a multi-threaded runtime the others take over its tasks meanwhile).
    pub async fn sqlite_read<T>(&self, read: impl FnOnce(&SqliteRaw<'_>) -> Result<T>) -> Result<Option<T>> {
        let Db::Sqlite(p, ..) = self else { return Ok(None) };
        let mut conn = p.acquire().await?;
        let mut lock = conn.lock_handle().await?;
        let db = lock.as_raw_handle();
        let raw = SqliteRaw { _lock: Some(lock), db, _borrow: PhantomData };
        off_the_workers(|| read(&raw)).map(Some)
    }

    /// SQLite only (`None` on PostgreSQL): [`Db::sqlite_read`] with every statement of `read`
    /// in one read transaction, so that they all see one state of the database. The
    /// transaction ends before the connection goes back to the pool; a connection whose
    /// transaction could not be ended is closed instead.
    pub async fn sqlite_read_in_snapshot<T>(&self, read: impl FnOnce(&SqliteRaw<'_>) -> Result<T>) -> Result<Option<T>> {
        let Db::Sqlite(p, ..) = self else { return Ok(None) };
        let mut conn = p.acquire().await?;
        let mut lock = conn.lock_handle().await?;
        let db = lock.as_raw_handle();
        let raw = SqliteRaw { _lock: Some(lock), db, _borrow: PhantomData };
        let (out, ended) = off_the_workers(|| {
            let out = raw.execute("BEGIN").and_then(|_| read(&raw));
            // It only read: ending it lets go of the snapshot, whichever way.
            (out, raw.execute("ROLLBACK"))
        });
        drop(raw);
        if ended.is_err() {
            conn.close_on_drop();
        }
        out.map(Some)
    }
}

impl Db {
    /// SQLite only (`None` on PostgreSQL): `first` and `second` at once, each on a read
    /// connection of its own stepped on a thread of its own, in one state of the database: both
    /// read transactions begin while this process holds SQLite's write lock, so nothing commits
    /// between their snapshots. When the lock is not to be had within [`SNAPSHOT_LOCK_WAIT`] (a
    /// long import holds it) or the pool has no three connections (an in-memory database), they
    /// run one after the other in one read transaction instead, as [`Db::sqlite_read_in_snapshot`]
    /// would: the same rows, on one core.
    pub async fn sqlite_read_both_in_snapshot<A: Send, B: Send>(
        &self,
        first: impl FnOnce(&SqliteRaw<'_>) -> Result<A> + Send,
        second: impl FnOnce(&SqliteRaw<'_>) -> Result<B> + Send,
    ) -> Result<Option<(A, B)>> {
        let Db::Sqlite(p, ..) = self else { return Ok(None) };
        if p.options().get_max_connections() < 3 {
            return self.sqlite_read_in_snapshot(|raw| Ok((first(raw)?, second(raw)?))).await;
        }
        let (mut one, mut other) = (p.acquire().await?, p.acquire().await?);
        let Ok(Ok(lock)) = tokio::time::timeout(SNAPSHOT_LOCK_WAIT, self.begin()).await else {
            drop((one, other));
            return self.sqlite_read_in_snapshot(|raw| Ok((first(raw)?, second(raw)?))).await;
        };
        let (mut l1, mut l2) = (one.lock_handle().await?, other.lock_handle().await?);
        let (d1, d2) = (l1.as_raw_handle(), l2.as_raw_handle());
        let (r1, r2) =
            (SqliteRaw { _lock: Some(l1), db: d1, _borrow: PhantomData }, SqliteRaw { _lock: Some(l2), db: d2, _borrow: PhantomData });
        // No await from the BEGINs to the ROLLBACKs: a caller dropped meanwhile (a client that
        // hangs up) cannot send a connection back to the pool inside its read transaction.
        let (out, ended1, ended2) = off_the_workers(|| {
            // A read transaction takes its snapshot at its first read.
            let begin = |raw: &SqliteRaw<'_>| raw.execute("BEGIN").and_then(|_| raw.execute("SELECT COUNT(*) FROM sqlite_master"));
            let began = begin(&r1).and_then(|_| begin(&r2));
            // Both snapshots are taken: the write lock goes (rolled back on its connection).
            drop(lock);
            let out = began.and_then(|_| {
                std::thread::scope(|threads| {
                    let lent = Lent(&r2);
                    let second = threads.spawn(move || {
                        let lent = lent;
                        second(lent.0)
                    });
                    let a = first(&r1);
                    let b = second.join().map_err(|_| StoreError::Internal("a read of the database panicked".into()))?;
                    Ok((a?, b?))
                })
            });
            // They only read: ending them lets go of the snapshot, whichever way.
            (out, r1.execute("ROLLBACK"), r2.execute("ROLLBACK"))
        });
        drop((r1, r2));
        if ended1.is_err() {
            one.close_on_drop();
        }
        if ended2.is_err() {
            other.close_on_drop();
        }
        out.map(Some)
    }
}

/// How long [`Db::sqlite_read_both_in_snapshot`] waits for the write lock before it reads on
/// one connection instead (an ordinary write holds it for milliseconds).
const SNAPSHOT_LOCK_WAIT: Duration = Duration::from_secs(1);

/// A [`SqliteRaw`] lent to one other thread while the lender leaves it alone.
struct Lent<'r, 'a>(&'r SqliteRaw<'a>);

// SAFETY: sqlx opens SQLite connections in multi-thread mode: a connection may be used on any
// thread, by one at a time. While lent, only the borrowing (scoped) thread uses the connection:
// the lender does not touch it until that thread has ended, and sqlx's worker is held off by the
// lock the `SqliteRaw` holds.
unsafe impl Send for Lent<'_, '_> {}

/// Runs `work` (long synchronous SQLite work) so that, on a multi-threaded runtime, the other
/// workers take over this thread's tasks meanwhile.
pub(crate) fn off_the_workers<T>(work: impl FnOnce() -> T) -> T {
    let on_many_threads =
        tokio::runtime::Handle::try_current().is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if on_many_threads {
        tokio::task::block_in_place(work)
    } else {
        work()
    }
}

impl SqliteRaw<'_> {
    /// Every row of `q`, decoded through serde as on the direct readers ([`direct`]).
    pub fn fetch_all<T: DeserializeOwned>(&self, q: &Query) -> Result<Vec<T>> {
        let mut st = self.prepare(&q.sql)?;
        for (i, a) in q.args.iter().enumerate() {
            st.arg(i as i32 + 1, a)?;
        }
        let mut out = Vec::new();
        while st.step()? {
            out.push(direct::decode_row(st.stmt)?);
        }
        Ok(out)
    }

    /// Prepares one statement (`?`, `?N` or the portable `$N` placeholders).
    pub fn prepare(&self, sql: &str) -> Result<RawStmt<'_>> {
        let sql = &direct::sqlite_placeholders(sql);
        let db = self.db;
        let len = i32::try_from(sql.len()).map_err(|_| StoreError::Internal("statement too long".into()))?;
        let mut stmt: *mut ffi::sqlite3_stmt = std::ptr::null_mut();
        // SAFETY: `db` is the open connection, exclusively ours while the lock is held; `sql`
        // is valid for `len` bytes; SQLite writes the statement pointer (or null) to `stmt`.
        let rc = unsafe { ffi::sqlite3_prepare_v2(db.as_ptr(), sql.as_ptr().cast(), len, &mut stmt, std::ptr::null_mut()) };
        if rc != ffi::SQLITE_OK {
            return Err(raw_error(db, rc));
        }
        let stmt = NonNull::new(stmt).ok_or_else(|| StoreError::Internal("empty statement".into()))?;
        Ok(RawStmt { stmt, db, _conn: PhantomData })
    }

    /// Runs one statement without parameters; returns the rows it changed.
    pub fn execute(&self, sql: &str) -> Result<u64> {
        self.prepare(sql)?.exec()?;
        // SAFETY: the connection is open and exclusively ours while the lock is held.
        Ok(unsafe { ffi::sqlite3_changes64(self.db.as_ptr()) }.max(0) as u64)
    }
}

impl RawStmt<'_> {
    /// Binds an integer or NULL to parameter `i` (1-based).
    pub fn int(&mut self, i: i32, v: Option<i64>) -> Result<()> {
        // SAFETY: the statement is live (finalised only on drop); SQLite checks the index.
        let rc = unsafe {
            match v {
                Some(v) => ffi::sqlite3_bind_int64(self.stmt.as_ptr(), i, v),
                None => ffi::sqlite3_bind_null(self.stmt.as_ptr(), i),
            }
        };
        self.check(rc)
    }

    /// Binds `a` to parameter `i` (1-based) as sqlx binds it on SQLite.
    pub fn arg(&mut self, i: i32, a: &Arg) -> Result<()> {
        direct::bind(self.db, self.stmt, i, a)
    }

    /// Binds text or NULL to parameter `i` (1-based); SQLite copies the text.
    pub fn text(&mut self, i: i32, v: Option<&str>) -> Result<()> {
        let rc = match v {
            Some(s) => {
                let len = i32::try_from(s.len()).map_err(|_| StoreError::invalid("value", "text value too long"))?;
                // SAFETY: `s` is valid UTF-8 for `len` bytes; SQLITE_TRANSIENT makes SQLite copy
                // it before returning, so the binding never points into our memory.
                unsafe { ffi::sqlite3_bind_text(self.stmt.as_ptr(), i, s.as_ptr().cast(), len, ffi::SQLITE_TRANSIENT()) }
            }
            // SAFETY: as in `int`.
            None => unsafe { ffi::sqlite3_bind_null(self.stmt.as_ptr(), i) },
        };
        self.check(rc)
    }

    /// Runs the statement one step: `true` when a row is ready to read, `false` when done.
    /// Errors (constraint violations included) reset the statement.
    pub fn step(&mut self) -> Result<bool> {
        // SAFETY: the statement is live and its connection exclusively ours.
        match unsafe { ffi::sqlite3_step(self.stmt.as_ptr()) } {
            ffi::SQLITE_ROW => Ok(true),
            ffi::SQLITE_DONE => Ok(false),
            rc => {
                let err = raw_error(self.db, rc);
                self.reset();
                Err(err)
            }
        }
    }

    /// Integer column `i` (0-based) of the current row.
    pub fn column_int(&mut self, i: i32) -> i64 {
        // SAFETY: the statement is live; SQLite returns 0 for an index out of range or NULL.
        unsafe { ffi::sqlite3_column_int64(self.stmt.as_ptr(), i) }
    }

    /// Integer column `i` (0-based) of the current row, `None` when NULL.
    pub fn column_opt_int(&mut self, i: i32) -> Option<i64> {
        // SAFETY: as in `column_int`; the type is read before the value converts it.
        unsafe {
            if ffi::sqlite3_column_type(self.stmt.as_ptr(), i) == ffi::SQLITE_NULL {
                None
            } else {
                Some(ffi::sqlite3_column_int64(self.stmt.as_ptr(), i))
            }
        }
    }

    /// Text column `i` (0-based) of the current row, `None` when NULL or not UTF-8. Borrowed
    /// until the statement steps again.
    pub fn column_str(&mut self, i: i32) -> Option<&str> {
        // SAFETY: the statement is live; SQLite returns a pointer to the value's UTF-8 text (or
        // null for NULL) valid until the next step, reset or finalise, which all take `&mut
        // self` and so end this borrow first; `sqlite3_column_bytes` gives its length.
        unsafe {
            let p = ffi::sqlite3_column_text(self.stmt.as_ptr(), i);
            if p.is_null() {
                return None;
            }
            let n = usize::try_from(ffi::sqlite3_column_bytes(self.stmt.as_ptr(), i)).ok()?;
            std::str::from_utf8(std::slice::from_raw_parts(p, n)).ok()
        }
    }

    /// Makes the statement ready to run again (bindings are kept until re-bound).
    pub fn reset(&mut self) {
        // SAFETY: the statement is live. The return code repeats the last step's error, which
        // `step` has already reported.
        unsafe { ffi::sqlite3_reset(self.stmt.as_ptr()) };
    }

    /// Binds `row` to the parameters in order, runs the statement (no rows returned) and
    /// resets it. Text is bound without a copy (`SQLITE_STATIC`): SQLite copies it into the new
    /// record anyway, and the bindings are cleared before this returns, so nothing points into
    /// `row` afterwards (a run's million score rows: 5.5–7.0 → 4.9–5.7 s, interleaved).
    pub fn exec_row(&mut self, row: &[Arg]) -> Result<()> {
        /// Clears the bindings on every way out, so that none outlives the borrow of `row`.
        struct Unbind(NonNull<ffi::sqlite3_stmt>);
        impl Drop for Unbind {
            fn drop(&mut self) {
                // SAFETY: the statement is live (finalised only when the RawStmt drops).
                unsafe { ffi::sqlite3_clear_bindings(self.0.as_ptr()) };
            }
        }
        let _unbind = Unbind(self.stmt);
        for (i, a) in row.iter().enumerate() {
            let i = i32::try_from(i + 1).map_err(|_| StoreError::Internal("too many parameters".into()))?;
            match a {
                Arg::Text(Some(s)) => {
                    let len = i32::try_from(s.len()).map_err(|_| StoreError::invalid("value", "text value too long"))?;
                    // SAFETY: `s` is valid UTF-8 for `len` bytes and outlives the binding,
                    // which `_unbind` clears before the borrow of `row` ends.
                    let rc = unsafe { ffi::sqlite3_bind_text(self.stmt.as_ptr(), i, s.as_ptr().cast(), len, ffi::SQLITE_STATIC()) };
                    self.check(rc)?;
                }
                a => direct::bind(self.db, self.stmt, i, a)?,
            }
        }
        self.step()?;
        self.reset();
        Ok(())
    }

    /// Runs a statement that returns no rows, then resets it.
    pub fn exec(&mut self) -> Result<()> {
        self.step()?;
        self.reset();
        Ok(())
    }

    fn check(&self, rc: i32) -> Result<()> {
        if rc == ffi::SQLITE_OK {
            Ok(())
        } else {
            Err(raw_error(self.db, rc))
        }
    }
}

impl Drop for RawStmt<'_> {
    fn drop(&mut self) {
        // SAFETY: the statement is live and dropped once; the connection outlives it ('h).
        unsafe { ffi::sqlite3_finalize(self.stmt.as_ptr()) };
    }
}

/// The connection's last error as a [`StoreError`], classified like sqlx errors are.
fn raw_error(db: NonNull<ffi::sqlite3>, rc: i32) -> StoreError {
    // SAFETY: the connection is open; `sqlite3_errmsg` returns a NUL-terminated string owned by
    // SQLite, copied here before any other call can change it.
    let (code, msg) = unsafe {
        let code = ffi::sqlite3_extended_errcode(db.as_ptr());
        let p = ffi::sqlite3_errmsg(db.as_ptr());
        let msg = if p.is_null() { format!("SQLite error {rc}") } else { std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned() };
        (code, msg)
    };
    match code {
        ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => StoreError::Conflict(msg),
        ffi::SQLITE_CONSTRAINT_FOREIGNKEY => StoreError::Reference(msg),
        ffi::SQLITE_CONSTRAINT_CHECK | ffi::SQLITE_CONSTRAINT_NOTNULL => StoreError::Invalid { field: None, message: msg },
        _ if sqlite_busy(code) => StoreError::Busy(msg),
        _ => StoreError::Internal(format!("SQLite: {msg} (code {code})")),
    }
}

/// Rows in PostgreSQL COPY text format, written straight from typed values (no per-cell
/// allocation): `int`, `text`, … per column, then `end_row`.
#[derive(Default)]
pub struct CopyRows {
    buf: Vec<u8>,
    at_start: bool,
    rows: usize,
}

impl CopyRows {
    /// An empty buffer.
    pub fn new() -> Self {
        CopyRows { buf: Vec::with_capacity(1 << 20), at_start: true, rows: 0 }
    }
    fn sep(&mut self) {
        if !self.at_start {
            self.buf.push(b'\t');
        }
        self.at_start = false;
    }
    /// An integer column.
    pub fn int(&mut self, v: Option<i64>) {
        self.sep();
        match v {
            Some(v) => self.buf.extend_from_slice(itoa::Buffer::new().format(v).as_bytes()),
            None => self.buf.extend_from_slice(b"\\N"),
        }
    }
    /// A text column.
    pub fn text(&mut self, v: Option<&str>) {
        self.sep();
        copy_text_field(&mut self.buf, v);
    }
    /// A boolean column.
    pub fn bool(&mut self, v: bool) {
        self.sep();
        self.buf.push(if v { b't' } else { b'f' });
    }
    /// A timestamp column (UTC).
    pub fn time(&mut self, v: DateTime<Utc>) {
        self.sep();
        push_utc_timestamp(&mut self.buf, v);
    }
    /// Ends the current row.
    pub fn end_row(&mut self) {
        self.buf.push(b'\n');
        self.at_start = true;
        self.rows += 1;
    }
    /// Rows written so far.
    pub fn rows(&self) -> usize {
        self.rows
    }
    /// The COPY payload, leaving the buffer empty.
    pub fn take(&mut self) -> Vec<u8> {
        self.rows = 0;
        self.at_start = true;
        std::mem::take(&mut self.buf)
    }
}
