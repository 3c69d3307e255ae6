//! patron's storage layer: one repository API over SQLite (embedded default) and PostgreSQL,
//! versioned migrations for both, and the CSV / JSON-lines importer and exporter.
//!
//! Each domain concept has its module (`customers`, `orders`, `interactions`, `contacts`,
//! `notes`, `timeline`, `users`, `audit`, `import`, `export`); engine differences live in [`db`].

pub mod abcd;
pub mod access;
pub mod accounts;
pub mod analytics;
pub mod audit;
pub mod backup;
pub mod calendar;
pub mod clock;
pub mod cohorts;
pub mod contacts;
pub mod cost_to_serve;
pub mod customer_events;
pub mod customers;
pub mod db;
pub mod duplicates;
pub mod engagement;
pub mod events;
pub mod export;
pub mod fulfilment;
pub mod history;
pub mod import;
pub mod interactions;
pub mod jobs;
pub mod journeys;
pub(crate) mod keys;
pub mod links;
pub mod loyalty;
pub mod next_action;
pub mod notes;
pub mod notifications;
pub mod orders;
pub mod page;
pub mod plans;
pub mod privacy;
pub mod segments;
pub mod service;
pub mod settings;
pub mod surveys;
pub mod tasks;
#[cfg(feature = "testing")]
pub mod testing;
pub mod tickets;
pub mod timeline;
pub mod users;
pub mod validations;
pub mod values;
pub mod web;
pub mod webhooks;

use std::sync::Arc;

pub use chrono_tz::Tz as BusinessTz;
pub use clock::{Clock, FixedClock, SystemClock};
pub use db::{Db, Engine};

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The requested row does not exist (or is deleted).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A unique key is already taken (external id, email …).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The request does not fit the record's current state (a ticket transition that is not
    /// allowed from where the ticket is, a link answered already); the message says why.
    #[error("{0}")]
    State(String),
    /// The caller may not do this (a permission or scope it lacks); the message says which.
    #[error("{0}")]
    Forbidden(String),
    /// The record existed but is no more usable (an expired link).
    #[error("{0}")]
    Gone(String),
    /// A referenced row does not exist.
    #[error("reference to a missing row: {0}")]
    Reference(String),
    /// A value is not acceptable.
    #[error("{message}")]
    Invalid {
        /// The offending field, when there is one.
        field: Option<String>,
        /// What is wrong, in words for the user.
        message: String,
    },
    /// Bad configuration (database URL, time zone …).
    #[error("configuration: {0}")]
    Config(String),
    /// An import file could not be read at all (not a row-level rejection).
    #[error("{0}")]
    File(String),
    /// The database could not take the write now: SQLite's one writer is busy past the wait
    /// (a long import, say), or PostgreSQL gave up on a lock, a deadlock or serialisation.
    /// Trying again later may succeed.
    #[error("the database is busy: {0}")]
    Busy(String),
    /// The database stopped a statement that ran past its time limit (PostgreSQL's
    /// `statement_timeout`, set for the reads of a rule somebody wrote: [`db::ScanReader`]).
    /// Nothing was changed; a narrower request, or the same one when the server is less loaded,
    /// may succeed.
    #[error("the database stopped a statement past its time limit: {0}")]
    TimedOut(String),
    /// A broken invariant inside patron.
    #[error("internal: {0}")]
    Internal(String),
    /// Any other database failure.
    #[error("database: {0}")]
    Database(sqlx::Error),
    /// Migrations failed.
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Reading or writing a file failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        db::classify(&e).unwrap_or(StoreError::Database(e))
    }
}

impl StoreError {
    /// An invalid value for `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        StoreError::Invalid { field: Some(field.into()), message: message.into() }
    }
}

/// Result alias for the store.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Settings that change how data is interpreted.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Time zone whose calendar days the business counts in (default Asia/Shanghai); also the
    /// zone of imported times written without an offset.
    pub business_tz: chrono_tz::Tz,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig { business_tz: chrono_tz::Asia::Shanghai }
    }
}

/// The store: a database pool, the clock and configuration. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    /// The pool.
    pub db: Db,
    /// Source of "now" (fixed in tests).
    pub clock: Arc<dyn Clock>,
    /// Interpretation settings.
    pub config: StoreConfig,
    /// Audit entries of reads, committed in groups.
    audit_group: audit::GroupCommit,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("engine", &self.db.engine()).field("config", &self.config).finish()
    }
}

impl Store {
    /// Connects (applying migrations) with the system clock and default configuration.
    pub async fn connect(url: &str) -> Result<Store> {
        Ok(Store {
            db: Db::connect(url).await?,
            clock: Arc::new(SystemClock),
            config: StoreConfig::default(),
            audit_group: audit::GroupCommit::default(),
        })
    }

    /// Replaces the clock (tests fix time).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Store {
        self.clock = clock;
        self
    }

    /// Replaces the configuration.
    pub fn with_config(mut self, config: StoreConfig) -> Store {
        self.config = config;
        self
    }

    /// Current time, truncated to microseconds (the precision both engines keep).
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        clock::truncate_micros(self.clock.now())
    }
}
