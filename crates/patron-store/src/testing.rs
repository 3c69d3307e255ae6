//! Test support (feature `testing`): a fresh, migrated database per test on either engine, and a
//! macro that runs one test body on both. PostgreSQL comes from `PATRON_TEST_PG_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`); each test gets its own database, dropped after.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use chrono::{TimeZone, Utc};

use crate::{Engine, FixedClock, Store};

/// The instant test clocks start at: 2026-06-30 12:00 UTC.
pub fn test_now() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 30, 12, 0, 0).single().unwrap_or_default()
}

/// Administrative URL of the test PostgreSQL server.
pub fn pg_admin_url() -> String {
    std::env::var("PATRON_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A database that exists for one test.
pub struct TestDb {
    /// The store over it, with a fixed clock at [`test_now`].
    pub store: Store,
    /// Its URL.
    pub url: String,
    /// The clock (move it to simulate time passing).
    pub clock: Arc<FixedClock>,
    _dir: Option<tempfile::TempDir>,
    pg_name: Option<String>,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A unique name for a throw-away database or file.
pub fn unique_name() -> String {
    format!("patron_t_{}_{}_{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed), Utc::now().timestamp_subsec_nanos())
}

/// Creates an empty database on `engine` and returns its URL (and the temp dir holding a SQLite file).
pub async fn fresh_url(engine: Engine) -> (String, Option<tempfile::TempDir>, Option<String>) {
    match engine {
        Engine::Sqlite => {
            let dir = tempfile::tempdir().expect("temp dir for a test database");
            let url = format!("sqlite://{}", dir.path().join("test.db").display());
            (url, Some(dir), None)
        }
        Engine::Postgres => {
            let admin = pg_admin_url();
            let name = unique_name();
            let pool = sqlx::PgPool::connect(&admin).await.expect("PostgreSQL for tests (is it running? see .ci/run)");
            sqlx::query(&format!("CREATE DATABASE {name}")).execute(&pool).await.expect("create test database");
            pool.close().await;
            let base = admin.rsplit_once('/').map(|(b, _)| b.to_owned()).unwrap_or(admin);
            (format!("{base}/{name}"), None, Some(name))
        }
    }
}

/// A fresh, migrated store on `engine` with a fixed clock.
pub async fn test_db(engine: Engine) -> TestDb {
    let (url, dir, pg_name) = fresh_url(engine).await;
    let clock = Arc::new(FixedClock::new(test_now()));
    let store = Store::connect(&url).await.expect("connect to the test database").with_clock(clock.clone());
    TestDb { store, url, clock, _dir: dir, pg_name }
}

/// Drops a test PostgreSQL database (blocking; used from Drop).
pub fn drop_pg_database(name: &str) {
    let name = name.to_owned();
    let _ = std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
        rt.block_on(async {
            if let Ok(pool) = sqlx::PgPool::connect(&pg_admin_url()).await {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&pool).await;
                pool.close().await;
            }
        });
    })
    .join();
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(name) = self.pg_name.take() {
            drop_pg_database(&name);
        }
    }
}

/// Runs an async test body `|db: TestDb| async move { … }` once on SQLite and once on PostgreSQL,
/// as two tests named `<name>::sqlite` and `<name>::postgres`.
#[macro_export]
macro_rules! test_both {
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let db = $crate::testing::test_db($crate::Engine::Sqlite).await;
                ($body)(db).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let db = $crate::testing::test_db($crate::Engine::Postgres).await;
                ($body)(db).await;
            }
        }
    };
}
