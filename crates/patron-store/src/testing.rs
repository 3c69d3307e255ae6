//! Test support (feature `testing`): a fresh, migrated database per test on SQLite, PostgreSQL or
//! Citus, and a macro that runs one test body on all three. PostgreSQL comes from
//! `PATRON_TEST_PG_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`), the Citus
//! coordinator from `PATRON_TEST_CITUS_URL` (default `postgres://postgres@127.0.0.1:5433/postgres`,
//! started by `.ci/citus`) with the workers it lists in `PATRON_TEST_CITUS_WORKERS` (default
//! `127.0.0.1:5434,127.0.0.1:5435`). Each test gets its own database (on Citus: on every node,
//! distributed as `patron db distribute` does it), dropped after.

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

/// Administrative URL of the test Citus coordinator.
pub fn citus_admin_url() -> String {
    std::env::var("PATRON_TEST_CITUS_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5433/postgres".into())
}

/// The test Citus workers, `host:port` each.
pub fn citus_workers() -> Vec<(String, u16)> {
    let list = std::env::var("PATRON_TEST_CITUS_WORKERS").unwrap_or_else(|_| "127.0.0.1:5434,127.0.0.1:5435".into());
    list.split(',')
        .filter(|w| !w.trim().is_empty())
        .map(|w| {
            let (host, port) = w.trim().rsplit_once(':').expect("PATRON_TEST_CITUS_WORKERS: host:port,host:port");
            (host.to_owned(), port.parse().expect("PATRON_TEST_CITUS_WORKERS: a port number"))
        })
        .collect()
}

/// Shards per distributed table in test databases (`PATRON_TEST_CITUS_SHARDS`, default 4: a
/// few per worker, so that a test's customers spread over both workers and several shards,
/// while creating a database stays quick).
pub fn citus_test_shards() -> u32 {
    std::env::var("PATRON_TEST_CITUS_SHARDS").ok().and_then(|s| s.parse().ok()).unwrap_or(4)
}

/// The admin URL of every node of the test Citus cluster, the coordinator first.
fn citus_node_admin_urls() -> Vec<String> {
    let coordinator = citus_admin_url();
    let (scheme, rest) = coordinator.split_once("://").expect("PATRON_TEST_CITUS_URL: postgres://user@host:port/db");
    let user = rest.split_once('@').map(|(u, _)| format!("{u}@")).unwrap_or_default();
    let db = rest.rsplit_once('/').map(|(_, d)| d.to_owned()).unwrap_or_else(|| "postgres".into());
    let mut urls = vec![coordinator.clone()];
    for (host, port) in citus_workers() {
        urls.push(format!("{scheme}://{user}{host}:{port}/{db}"));
    }
    urls
}

/// The same server as `admin_url`, database `name`.
fn with_database(admin_url: &str, name: &str) -> String {
    let base = admin_url.rsplit_once('/').map(|(b, _)| b.to_owned()).unwrap_or_else(|| admin_url.to_owned());
    format!("{base}/{name}")
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
    /// The servers holding the database (admin URLs): one for PostgreSQL, every node for Citus.
    servers: Vec<String>,
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
    let servers = if pg_name.is_some() { vec![pg_admin_url()] } else { Vec::new() };
    let clock = Arc::new(FixedClock::new(test_now()));
    let store = Store::connect(&url).await.expect("connect to the test database").with_clock(clock.clone());
    TestDb { store, url, clock, _dir: dir, pg_name, servers }
}

/// Creates an empty database on every node of the test Citus cluster, with the extension and
/// the workers added, but not distributed; returns its URL (on the coordinator) and name.
/// Fails loudly when the cluster does not answer, as PostgreSQL does.
pub async fn fresh_citus_url() -> (String, String) {
    let name = unique_name();
    let nodes = citus_node_admin_urls();
    for admin in &nodes {
        let pool =
            sqlx::PgPool::connect(admin).await.unwrap_or_else(|e| panic!("Citus for tests at {admin} (is it running? see .ci/citus): {e}"));
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&pool).await.expect("create test database");
        pool.close().await;
        let pool = sqlx::PgPool::connect(&with_database(admin, &name)).await.expect("connect to the new test database");
        sqlx::query("CREATE EXTENSION citus").execute(&pool).await.expect("CREATE EXTENSION citus (is citus.so installed? see .ci/citus)");
        pool.close().await;
    }
    let url = with_database(&nodes[0], &name);
    let pool = sqlx::PgPool::connect(&url).await.expect("connect to the test database");
    let (host, port) = host_port(&nodes[0]);
    sqlx::query("SELECT citus_set_coordinator_host($1, $2)").bind(host).bind(port).execute(&pool).await.expect("set the coordinator host");
    for (host, port) in citus_workers() {
        add_citus_worker(&pool, &host, port).await;
    }
    pool.close().await;
    (url, name)
}

/// Adds a worker to the Citus database `pool` is connected to (its coordinator).
///
/// Adding a node syncs metadata over a connection Citus marks essential; while another test
/// moves shards or takes a worker out, or right after the database was made on the worker, that
/// connection can fail once ("failure on connection marked as essential"). The call is
/// idempotent: a few tries, then a loud failure.
pub async fn add_citus_worker(pool: &sqlx::PgPool, host: &str, port: u16) {
    let mut tries = 0;
    loop {
        match sqlx::query("SELECT citus_add_node($1, $2)").bind(host).bind(i32::from(port)).execute(pool).await {
            Ok(_) => return,
            Err(e) if tries < 4 => {
                tries += 1;
                eprintln!("add Citus worker {host}:{port} (try {tries}): {e}");
                tokio::time::sleep(std::time::Duration::from_millis(250 * tries)).await;
            }
            Err(e) => panic!("add Citus worker {host}:{port}: {e}"),
        }
    }
}

/// Host and port of a `postgres://user@host:port/db` URL.
fn host_port(url: &str) -> (String, i32) {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.split_once('@').map_or(rest, |(_, r)| r);
    let hostport = rest.split_once('/').map_or(rest, |(h, _)| h);
    match hostport.rsplit_once(':') {
        Some((h, p)) => (h.to_owned(), p.parse().expect("a port number")),
        None => (hostport.to_owned(), 5432),
    }
}

/// A fresh store on the test Citus cluster: a database on every node, distributed as
/// `patron db distribute` does it (with [`citus_test_shards`] shards), and a fixed clock.
pub async fn test_citus_db() -> TestDb {
    let (url, name) = fresh_citus_url().await;
    let servers = citus_node_admin_urls();
    // Dropped with the test even if distributing fails.
    let mut cleanup = DropGuard { name: Some(name.clone()), servers: servers.clone() };
    crate::db::citus::distribute(&url, Some(citus_test_shards())).await.expect("distribute the test database");
    let clock = Arc::new(FixedClock::new(test_now()));
    let store = Store::connect(&url).await.expect("connect to the test database").with_clock(clock.clone());
    assert!(store.db.is_distributed(), "the test database must be distributed");
    cleanup.name = None;
    TestDb { store, url, clock, _dir: None, pg_name: Some(name), servers }
}

struct DropGuard {
    name: Option<String>,
    servers: Vec<String>,
}

impl Drop for DropGuard {
    fn drop(&mut self) {
        if let Some(name) = self.name.take() {
            drop_databases(&name, &self.servers);
        }
    }
}

/// Drops a test PostgreSQL database (blocking; used from Drop).
pub fn drop_pg_database(name: &str) {
    drop_databases(name, &[pg_admin_url()]);
}

/// Drops database `name` on each server (admin URLs), in order (blocking; used from Drop).
pub fn drop_databases(name: &str, servers: &[String]) {
    let name = name.to_owned();
    let servers = servers.to_vec();
    let _ = std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
        rt.block_on(async {
            for admin in servers {
                if let Ok(pool) = sqlx::PgPool::connect(&admin).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&pool).await;
                    pool.close().await;
                }
            }
        });
    })
    .join();
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(name) = self.pg_name.take() {
            drop_databases(&name, &self.servers);
        }
    }
}

/// Runs an async test body `|db: TestDb| async move { … }` on SQLite, on PostgreSQL and on Citus,
/// as three tests named `<name>::sqlite`, `<name>::postgres` and `<name>::citus`.
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
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn citus() {
                let db = $crate::testing::test_citus_db().await;
                ($body)(db).await;
            }
        }
    };
}
