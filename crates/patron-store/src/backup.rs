//! Backups (issue 14 §3). SQLite: an online copy with `VACUUM INTO` — it reads one snapshot of
//! the database in a read transaction, so writers go on meanwhile and the copy holds every
//! transaction committed before it began and none after (WAL mode), already compacted; and a
//! restore that checks the copy before it replaces the database file. PostgreSQL: `pg_dump`
//! (custom format) and `pg_restore`, which know the server's own formats; the CLI runs or names
//! them.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::ConnectOptions;

use crate::db::{query, Db};
use crate::{Result, Store, StoreError};

/// The file of a `sqlite:` URL (`None` for PostgreSQL URLs and in-memory databases).
pub fn sqlite_file(url: &str) -> Result<Option<PathBuf>> {
    if !url.starts_with("sqlite:") {
        return Ok(None);
    }
    if url.contains(":memory:") || url.contains("mode=memory") {
        return Err(StoreError::Config("an in-memory database has no file to back up or restore".into()));
    }
    let opts = SqliteConnectOptions::from_str(url).map_err(|e| StoreError::Config(format!("bad SQLite URL: {e}")))?;
    Ok(Some(opts.get_filename().to_path_buf()))
}

impl Store {
    /// Writes an online copy of this SQLite database to `out`, which must not exist yet;
    /// returns its size in bytes. Writers are not stopped: the copy is one consistent snapshot.
    pub async fn backup_sqlite(&self, out: &Path) -> Result<u64> {
        if !matches!(self.db, Db::Sqlite(..)) {
            return Err(StoreError::Config("VACUUM INTO backs up SQLite only; for PostgreSQL use pg_dump".into()));
        }
        if out.exists() {
            return Err(StoreError::Config(format!("{} exists already; back up to a new file", out.display())));
        }
        let path = out.to_str().ok_or_else(|| StoreError::Config(format!("{} is not a UTF-8 path", out.display())))?;
        self.db.reader().execute(query("VACUUM INTO $1").bind(path)).await?;
        Ok(std::fs::metadata(out)?.len())
    }
}

/// Checks that `file` is a healthy patron SQLite database (integrity check, patron's tables and
/// migrations), without changing it; returns its number of applied migrations.
pub async fn check_sqlite_backup(file: &Path) -> Result<i64> {
    if !file.is_file() {
        return Err(StoreError::Config(format!("{} is not a file", file.display())));
    }
    let mut conn = SqliteConnectOptions::new()
        .filename(file)
        .read_only(true)
        .connect()
        .await
        .map_err(|e| StoreError::Config(format!("{} cannot be opened as SQLite: {e}", file.display())))?;
    let not_patron = |e: sqlx::Error| StoreError::Config(format!("{} is not a patron SQLite database: {e}", file.display()));
    let (check,): (String,) = sqlx::query_as("PRAGMA integrity_check").fetch_one(&mut conn).await.map_err(not_patron)?;
    if check != "ok" {
        return Err(StoreError::Config(format!("{} fails SQLite's integrity check: {check}", file.display())));
    }
    let (migrations,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM _sqlx_migrations WHERE success").fetch_one(&mut conn).await.map_err(not_patron)?;
    let _: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM customers").fetch_one(&mut conn).await.map_err(not_patron)?;
    Ok(migrations)
}

/// Restores the SQLite backup `from` as the database of `to_url`: the backup is checked first,
/// copied next to the target and renamed over it (so a failed copy leaves the target as it was),
/// and the target's old write-ahead log is removed. An existing target is replaced only with
/// `replace`. Stop `patron serve` on the target first. Returns the restored store (migrated to
/// this version).
pub async fn restore_sqlite(from: &Path, to_url: &str, replace: bool) -> Result<Store> {
    let Some(target) = sqlite_file(to_url)? else {
        return Err(StoreError::Config("restore writes SQLite databases; for PostgreSQL use pg_restore".into()));
    };
    check_sqlite_backup(from).await?;
    if target.exists() && !replace {
        return Err(StoreError::Config(format!("{} exists; pass --force to replace it with the backup", target.display())));
    }
    if let (Ok(a), Ok(b)) = (from.canonicalize(), target.canonicalize()) {
        if a == b {
            return Err(StoreError::Config("the backup and the target are the same file".into()));
        }
    }
    let mut staging = target.clone().into_os_string();
    staging.push(".restoring");
    let staging = PathBuf::from(staging);
    std::fs::copy(from, &staging)?;
    std::fs::File::open(&staging)?.sync_all()?;
    for suffix in ["-wal", "-shm"] {
        let mut side = target.clone().into_os_string();
        side.push(suffix);
        match std::fs::remove_file(PathBuf::from(side)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
    }
    std::fs::rename(&staging, &target)?;
    Store::connect(to_url).await
}
