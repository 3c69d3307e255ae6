//! SQLite reads on patron's own read-only connections, stepped through the C API on the calling
//! thread (issue 15 §1).
//!
//! sqlx runs each SQLite statement on the connection's worker thread: the statement, every row
//! and the connection's return to the pool (a ping) are hand-offs between threads. A customer's
//! 360 is about ten small statements; at 1 M customers a third of the server's CPU went to those
//! hand-offs (futex wake-ups) and SQLite itself was under 1 %. Here a read takes an idle
//! connection from a small pool, runs its statements where it is (an indexed point read takes
//! microseconds, less than a hand-off), and gives the connection back: no thread hop at all.
//!
//! Only short point reads come here (the 360, a token, a setting): they run on the async worker
//! thread the way serialising a response does. Scans keep the pool ([`super::Db::sqlite_read`]
//! moves long ones off the worker). Rows decode through serde ([`RowDe`]) into the same structs
//! sqlx decodes on the other paths, so a read is written once; values are bound as sqlx binds
//! them on SQLite, so comparisons with stored text (timestamps) agree.
//!
//! Write transactions on a SQLite file come here too ([`DirectWriters`], issue 15 §6): an order
//! is some twenty short statements (customer, lock, catalogue, order, lines, key, event,
//! points, summary, home unit, audit), each of which was two hand-offs to the worker thread
//! while the transaction held the one write lock, so every writer queued behind them. Here they
//! run where the transaction's task is, under the same writers' turn ([`super::WriteTurn`]),
//! and `BEGIN`, `COMMIT` and the `ROLLBACK` of a transaction dropped unfinished (a client that
//! hung up) run without an await in between, so no connection goes back to the pool inside a
//! transaction. A statement that runs long (a campaign's launch over a million customers) holds
//! its runtime worker meanwhile, as it held a core on sqlx's thread before; the runtime's other
//! workers take over that worker's queued tasks.
//!
//! All of the `unsafe` of this path is here: a connection is used by one thread at a time (it
//! moves between threads only through the pool's mutex, opened with SQLITE_OPEN_NOMUTEX, which
//! SQLite allows), statements are finalised before their connection closes (`Drop`), and text is
//! bound with SQLITE_TRANSIENT (SQLite copies it).

use std::collections::HashMap;
use std::ffi::CString;
use std::ptr::NonNull;
use std::sync::Mutex;

use chrono::SecondsFormat;
use libsqlite3_sys as ffi;
use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};

use super::{raw_error, Arg, Query};
use crate::{Result, StoreError};

/// Idle connections kept for the next reads (more are opened under load and closed on return).
const KEEP_IDLE: usize = 16;
/// Prepared statements kept per read connection (a handful of reads come here; the cap only
/// guards against a caller building statement text per call).
const KEEP_STATEMENTS: usize = 64;
/// Idle write connections kept: one writes at a time (the writers' turn), and a second is there
/// for the one that begins while the first is being given back.
const KEEP_IDLE_WRITERS: usize = 2;
/// Prepared statements kept per write connection: every write path of the product comes here,
/// some with statement text that varies with the number of values (`IN ($2, $3, …)`).
const KEEP_WRITE_STATEMENTS: usize = 512;

/// Idle connections to one SQLite file, opened on first use (read-only or read-write).
struct Idle {
    path: CString,
    writable: bool,
    /// How many idle connections are kept.
    keep: usize,
    conns: Mutex<Vec<DirectConn>>,
}

impl Idle {
    fn new(path: &std::path::Path, writable: bool, keep: usize) -> Result<Idle> {
        let path = CString::new(path.to_string_lossy().as_bytes())
            .map_err(|_| StoreError::Config("the SQLite path contains a NUL byte".into()))?;
        Ok(Idle { path, writable, keep, conns: Mutex::new(Vec::new()) })
    }

    /// An idle connection, or a new one.
    fn take(&self) -> Result<DirectConn> {
        match self.conns.lock().map_or(None, |mut v| v.pop()) {
            Some(c) => Ok(c),
            None => DirectConn::open(&self.path, self.writable),
        }
    }

    /// Keeps `conn` for the next caller, or closes it when enough are kept.
    fn put(&self, conn: DirectConn) {
        if let Ok(mut idle) = self.conns.lock() {
            if idle.len() < self.keep {
                idle.push(conn);
            }
        }
    }
}

/// A pool of read-only connections to one SQLite file.
pub struct DirectReaders {
    idle: Idle,
}

impl std::fmt::Debug for DirectReaders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectReaders").finish_non_exhaustive()
    }
}

impl DirectReaders {
    /// Readers of the database file at `path` (opened on first use).
    pub(crate) fn new(path: &std::path::Path) -> Result<DirectReaders> {
        Ok(DirectReaders { idle: Idle::new(path, false, KEEP_IDLE)? })
    }

    /// An idle connection, or a new one, in a read transaction of its own until it is given
    /// back: the reads of one checkout (a 360's ten statements) see one snapshot of the
    /// database, so its parts agree with each other, and SQLite looks for other connections'
    /// commits once instead of at each statement. A look that finds one (under load an audit
    /// group commit lands every millisecond or so) empties the connection's page cache: the
    /// 360's few dozen pages are read again with `pread`, without a memory map to unmap and map
    /// again ([`super::SQLITE_MMAP_SIZE`]).
    pub(crate) fn take(self: &std::sync::Arc<Self>) -> Result<DirectRead> {
        let mut conn = self.idle.take()?;
        // Deferred: the snapshot is taken by the first read.
        conn.run_plain("BEGIN")?;
        Ok(DirectRead { conn: Some(conn), home: self.clone() })
    }

    fn give_back(&self, mut conn: DirectConn) {
        // A connection whose read transaction does not end is closed, not kept.
        if conn.run_plain("COMMIT").is_err() {
            return;
        }
        self.idle.put(conn);
    }
}

/// A connection taken from [`DirectReaders`], given back when dropped.
pub struct DirectRead {
    conn: Option<DirectConn>,
    home: std::sync::Arc<DirectReaders>,
}

impl Drop for DirectRead {
    fn drop(&mut self) {
        if let Some(c) = self.conn.take() {
            self.home.give_back(c);
        }
    }
}

impl DirectRead {
    /// Every row of `q`, decoded into `T` by column name (structs) or position (tuples).
    pub(crate) fn fetch_all<T: DeserializeOwned>(&mut self, q: &Query) -> Result<Vec<T>> {
        let conn = self.conn.as_mut().ok_or_else(|| StoreError::Internal("direct read without a connection".into()))?;
        conn.rows(q, usize::MAX)
    }

    /// The first row of `q`, if any.
    pub(crate) fn fetch_optional<T: DeserializeOwned>(&mut self, q: &Query) -> Result<Option<T>> {
        let conn = self.conn.as_mut().ok_or_else(|| StoreError::Internal("direct read without a connection".into()))?;
        Ok(conn.rows(q, 1)?.pop())
    }
}

impl DirectRead {
    /// The connection for the C API ([`super::SqliteRaw`]), inside this checkout's read
    /// transaction: statements prepared on it are finalised before the checkout ends (lifetime).
    pub(crate) fn raw(&mut self) -> Result<super::SqliteRaw<'_>> {
        let conn = self.conn.as_mut().ok_or_else(|| StoreError::Internal("direct read without a connection".into()))?;
        Ok(super::SqliteRaw { _lock: None, db: conn.db, _borrow: std::marker::PhantomData })
    }
}

/// One connection (read-only, or read-write for [`DirectWriters`]) and its prepared statements.
struct DirectConn {
    db: NonNull<ffi::sqlite3>,
    statements: HashMap<String, NonNull<ffi::sqlite3_stmt>>,
    /// How many prepared statements it keeps.
    keep: usize,
}

// SAFETY: opened with SQLITE_OPEN_NOMUTEX (multi-thread mode): a connection may move between
// threads as long as one thread uses it at a time, which owning it (`&mut` for every use)
// guarantees.
unsafe impl Send for DirectConn {}

impl DirectConn {
    fn open(path: &CString, writable: bool) -> Result<DirectConn> {
        let mut db: *mut ffi::sqlite3 = std::ptr::null_mut();
        let access = if writable { ffi::SQLITE_OPEN_READWRITE } else { ffi::SQLITE_OPEN_READONLY };
        let flags = access | ffi::SQLITE_OPEN_NOMUTEX;
        // SAFETY: `path` is NUL-terminated; SQLite writes a handle (possibly non-null on error,
        // which must still be closed) to `db`.
        let rc = unsafe { ffi::sqlite3_open_v2(path.as_ptr(), &mut db, flags, std::ptr::null()) };
        let Some(handle) = NonNull::new(db) else {
            return Err(StoreError::Internal(format!("SQLite could not open a reader (code {rc})")));
        };
        let keep = if writable { KEEP_WRITE_STATEMENTS } else { KEEP_STATEMENTS };
        let mut conn = DirectConn { db: handle, statements: HashMap::new(), keep };
        if rc != ffi::SQLITE_OK {
            return Err(raw_error(handle, rc));
        }
        // SAFETY: the connection is open and ours.
        unsafe { ffi::sqlite3_busy_timeout(handle.as_ptr(), 30_000) };
        // As the pool's connections (Db::connect): pages read into the connection's own cache.
        conn.run_plain(&format!("PRAGMA mmap_size = {}", super::SQLITE_MMAP_SIZE))?;
        conn.run_plain("PRAGMA temp_store = memory")?;
        if writable {
            // Every setting of the pool's connections that bears on a write (Db::connect): the
            // file is in WAL mode already (a setting of the file, made by the pool).
            conn.run_plain(&format!("PRAGMA cache_size = {}", -super::SQLITE_WRITE_CACHE_KIB))?;
            conn.run_plain("PRAGMA foreign_keys = ON")?;
            conn.run_plain("PRAGMA synchronous = NORMAL")?;
            conn.run_plain(&format!("PRAGMA journal_size_limit = {}", super::SQLITE_JOURNAL_SIZE_LIMIT))?;
            conn.run_plain("PRAGMA wal_autocheckpoint = 0")?;
        } else {
            conn.run_plain("PRAGMA cache_size = -16384")?;
        }
        Ok(conn)
    }

    /// Runs `sql`, which takes no arguments and whose rows (a pragma's) are not wanted.
    fn run_plain(&mut self, sql: &str) -> Result<()> {
        let stmt = self.prepare(sql)?;
        // SAFETY: the statement was just prepared on this connection.
        unsafe {
            let rc = ffi::sqlite3_step(stmt.as_ptr());
            ffi::sqlite3_reset(stmt.as_ptr());
            if rc != ffi::SQLITE_ROW && rc != ffi::SQLITE_DONE {
                return Err(raw_error(self.db, rc));
            }
        }
        Ok(())
    }

    /// The statement for `sql` (portable `$n` placeholders), prepared once per connection and
    /// kept under the text as written.
    fn prepare(&mut self, sql: &str) -> Result<NonNull<ffi::sqlite3_stmt>> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(*s);
        }
        if self.statements.len() >= self.keep {
            self.finalize_all();
        }
        let key = sql.to_owned();
        let sql = &sqlite_placeholders(sql);
        let len = i32::try_from(sql.len()).map_err(|_| StoreError::Internal("statement too long".into()))?;
        let mut stmt: *mut ffi::sqlite3_stmt = std::ptr::null_mut();
        let mut tail: *const std::ffi::c_char = std::ptr::null();
        // SAFETY: the connection is open and ours; `sql` is valid for `len` bytes.
        let rc = unsafe {
            ffi::sqlite3_prepare_v3(self.db.as_ptr(), sql.as_ptr().cast(), len, ffi::SQLITE_PREPARE_PERSISTENT, &mut stmt, &mut tail)
        };
        if rc != ffi::SQLITE_OK {
            return Err(raw_error(self.db, rc));
        }
        let stmt = NonNull::new(stmt).ok_or_else(|| StoreError::Internal("empty statement".into()))?;
        // SQLite prepares the first statement of the text; sqlx would have run every one. A
        // second is refused rather than skipped without a word.
        let used = (tail as usize).saturating_sub(sql.as_ptr() as usize).min(sql.len());
        if !sql.as_bytes()[used..].iter().all(|b| b.is_ascii_whitespace() || *b == b';') {
            // SAFETY: just prepared, not kept anywhere.
            unsafe { ffi::sqlite3_finalize(stmt.as_ptr()) };
            return Err(StoreError::Internal("one SQL statement at a time on a direct connection".into()));
        }
        self.statements.insert(key, stmt);
        Ok(stmt)
    }

    fn finalize_all(&mut self) {
        for (_, s) in self.statements.drain() {
            // SAFETY: each statement is live and finalised once (drained from the map).
            unsafe { ffi::sqlite3_finalize(s.as_ptr()) };
        }
    }

    /// Up to `max` rows of `q`. The statement is reset afterwards whatever happens (its read
    /// ends; the checkout's transaction, [`DirectReaders::take`], goes on).
    fn rows<T: DeserializeOwned>(&mut self, q: &Query, max: usize) -> Result<Vec<T>> {
        let stmt = self.prepare(&q.sql)?;
        let db = self.db;
        let result = (|| {
            for (i, a) in q.args.iter().enumerate() {
                bind(db, stmt, i as i32 + 1, a)?;
            }
            let mut out = Vec::new();
            while out.len() < max {
                // SAFETY: the statement is live and its connection ours.
                match unsafe { ffi::sqlite3_step(stmt.as_ptr()) } {
                    ffi::SQLITE_ROW => out.push(decode_row(stmt)?),
                    ffi::SQLITE_DONE => break,
                    rc => return Err(raw_error(db, rc)),
                }
            }
            Ok(out)
        })();
        // SAFETY: the statement is live; resetting ends its read and clearing drops the bound
        // copies of the arguments.
        unsafe {
            ffi::sqlite3_reset(stmt.as_ptr());
            ffi::sqlite3_clear_bindings(stmt.as_ptr());
        }
        result
    }
}

impl DirectConn {
    /// Runs `q` to its end (rows it returns are not wanted); the number of rows it changed.
    fn execute(&mut self, q: &Query) -> Result<u64> {
        let stmt = self.prepare(&q.sql)?;
        let db = self.db;
        let result = (|| {
            for (i, a) in q.args.iter().enumerate() {
                bind(db, stmt, i as i32 + 1, a)?;
            }
            loop {
                // SAFETY: the statement is live and its connection ours.
                match unsafe { ffi::sqlite3_step(stmt.as_ptr()) } {
                    ffi::SQLITE_ROW => continue,
                    ffi::SQLITE_DONE => break,
                    rc => return Err(raw_error(db, rc)),
                }
            }
            // SAFETY: the connection is open; read right after the statement, before any other.
            Ok(u64::try_from(unsafe { ffi::sqlite3_changes64(db.as_ptr()) }).unwrap_or(0))
        })();
        // SAFETY: as in `rows`.
        unsafe {
            ffi::sqlite3_reset(stmt.as_ptr());
            ffi::sqlite3_clear_bindings(stmt.as_ptr());
        }
        result
    }

    /// Whether the connection is inside a transaction (not in autocommit mode).
    fn in_transaction(&self) -> bool {
        // SAFETY: the connection is open and ours.
        unsafe { ffi::sqlite3_get_autocommit(self.db.as_ptr()) == 0 }
    }
}

/// Read-write connections to one SQLite file for write transactions stepped on the calling
/// thread (see the module's documentation). Callers hold the writers' turn.
pub struct DirectWriters {
    idle: Idle,
}

impl std::fmt::Debug for DirectWriters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectWriters").finish_non_exhaustive()
    }
}

impl DirectWriters {
    /// Writers of the database file at `path` (opened on first use).
    pub(crate) fn new(path: &std::path::Path) -> Result<DirectWriters> {
        Ok(DirectWriters { idle: Idle::new(path, true, KEEP_IDLE_WRITERS)? })
    }

    /// A transaction that holds SQLite's write lock from its start (`BEGIN IMMEDIATE`), as the
    /// pool's transactions do, on an idle connection or a new one.
    pub(crate) fn begin(self: &std::sync::Arc<Self>) -> Result<DirectTx> {
        let mut conn = self.idle.take()?;
        // A connection left inside a transaction never comes back (`give_back`); checked anyway,
        // since a BEGIN there would fail and the work would run in a stranger's transaction.
        if conn.in_transaction() {
            return Err(StoreError::Internal("an idle SQLite writer was inside a transaction".into()));
        }
        if let Err(e) = conn.run_plain("BEGIN IMMEDIATE") {
            // Busy past the timeout (another process's long write): the connection is fine.
            self.give_back(conn);
            return Err(e);
        }
        Ok(DirectTx { conn: Some(conn), home: self.clone() })
    }

    fn give_back(&self, conn: DirectConn) {
        // Only a connection whose transaction has ended is kept; any other is closed (dropped),
        // which rolls back whatever it holds.
        if conn.in_transaction() {
            return;
        }
        self.idle.put(conn);
    }
}

/// A write transaction of [`DirectWriters`]: committed by [`DirectTx::commit`], rolled back when
/// dropped without it, and its connection given back either way.
pub struct DirectTx {
    conn: Option<DirectConn>,
    home: std::sync::Arc<DirectWriters>,
}

impl DirectTx {
    fn conn(&mut self) -> Result<&mut DirectConn> {
        self.conn.as_mut().ok_or_else(|| StoreError::Internal("a write transaction without a connection".into()))
    }

    /// Runs `q`; the number of rows it changed.
    pub(crate) fn execute(&mut self, q: &Query) -> Result<u64> {
        self.conn()?.execute(q)
    }

    /// Every row of `q`, decoded into `T` by column name (structs) or position (tuples).
    pub(crate) fn fetch_all<T: DeserializeOwned>(&mut self, q: &Query) -> Result<Vec<T>> {
        self.conn()?.rows(q, usize::MAX)
    }

    /// The first row of `q`, if any (a change it makes is made whole: SQLite makes all of a
    /// statement's changes at its first step).
    pub(crate) fn fetch_optional<T: DeserializeOwned>(&mut self, q: &Query) -> Result<Option<T>> {
        Ok(self.conn()?.rows(q, 1)?.pop())
    }

    /// The connection's handle, for the C API ([`super::SqliteRaw`]).
    pub(crate) fn handle(&mut self) -> Result<NonNull<ffi::sqlite3>> {
        Ok(self.conn()?.db)
    }

    /// Commits. When the commit fails the transaction is rolled back (by SQLite, or on drop).
    pub(crate) fn commit(mut self) -> Result<()> {
        self.conn()?.run_plain("COMMIT")
    }

    /// Rolls back.
    pub(crate) fn rollback(mut self) -> Result<()> {
        self.conn()?.run_plain("ROLLBACK")
    }
}

impl Drop for DirectTx {
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else { return };
        if conn.in_transaction() && conn.run_plain("ROLLBACK").is_err() {
            // Closed (dropped) rather than kept: closing rolls back.
            return;
        }
        self.home.give_back(conn);
    }
}

impl Drop for DirectConn {
    fn drop(&mut self) {
        self.finalize_all();
        // SAFETY: every statement is finalised; the handle is closed once.
        unsafe { ffi::sqlite3_close(self.db.as_ptr()) };
    }
}

/// The current row of `stmt` as a `T` (by column name for structs, by position for tuples).
pub(crate) fn decode_row<T: DeserializeOwned>(stmt: NonNull<ffi::sqlite3_stmt>) -> Result<T> {
    Ok(T::deserialize(RowDe { stmt })?)
}

/// `$n` placeholders as `?n` (SQLite reads both, but `$n` there is a *named* parameter: bound by
/// position it would only work while each number appears in order once).
pub(crate) fn sqlite_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        if c == '\'' {
            quoted = !quoted;
        }
        if c == '$' && !quoted && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out
}

/// Binds `a` to parameter `i` the way sqlx binds it on SQLite (booleans as 0/1, timestamps as
/// RFC 3339 text, dates as `YYYY-MM-DD`, JSON as text).
pub(crate) fn bind(db: NonNull<ffi::sqlite3>, stmt: NonNull<ffi::sqlite3_stmt>, i: i32, a: &Arg) -> Result<()> {
    fn text(stmt: NonNull<ffi::sqlite3_stmt>, i: i32, s: &str) -> Result<i32> {
        let len = i32::try_from(s.len()).map_err(|_| StoreError::invalid("value", "text value too long"))?;
        // SAFETY: `s` is valid for `len` bytes; SQLITE_TRANSIENT makes SQLite copy it at once.
        Ok(unsafe { ffi::sqlite3_bind_text(stmt.as_ptr(), i, s.as_ptr().cast(), len, ffi::SQLITE_TRANSIENT()) })
    }
    let s = stmt.as_ptr();
    // SAFETY: the statement is live; SQLite checks the parameter index.
    let rc = unsafe {
        match a {
            Arg::I64(Some(v)) => ffi::sqlite3_bind_int64(s, i, *v),
            Arg::F64(Some(v)) => ffi::sqlite3_bind_double(s, i, *v),
            Arg::Bool(Some(v)) => ffi::sqlite3_bind_int64(s, i, i64::from(*v)),
            Arg::Text(Some(v)) => text(stmt, i, v)?,
            Arg::Time(Some(t)) => text(stmt, i, &t.to_rfc3339_opts(SecondsFormat::AutoSi, false))?,
            Arg::Date(Some(d)) => text(stmt, i, &d.format("%F").to_string())?,
            Arg::Json(v) => text(stmt, i, &v.to_string())?,
            Arg::I64(None) | Arg::F64(None) | Arg::Bool(None) | Arg::Text(None) | Arg::Time(None) | Arg::Date(None) => {
                ffi::sqlite3_bind_null(s, i)
            }
        }
    };
    if rc == ffi::SQLITE_OK {
        Ok(())
    } else {
        Err(raw_error(db, rc))
    }
}

/// A row that did not decode into the requested type: a fault of the code (a column renamed, a
/// type changed), reported as an internal error naming what failed.
#[derive(Debug)]
struct DecodeError(String);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for DecodeError {}
impl de::Error for DecodeError {
    fn custom<M: std::fmt::Display>(msg: M) -> Self {
        DecodeError(msg.to_string())
    }
}
impl From<DecodeError> for StoreError {
    fn from(e: DecodeError) -> Self {
        StoreError::Internal(format!("decoding a SQLite row: {}", e.0))
    }
}

/// The current row of a statement as a serde map (column name → value) or sequence.
struct RowDe {
    stmt: NonNull<ffi::sqlite3_stmt>,
}

impl RowDe {
    fn width(&self) -> i32 {
        // SAFETY: the statement is live.
        unsafe { ffi::sqlite3_column_count(self.stmt.as_ptr()) }
    }
}

impl<'de> de::Deserializer<'de> for RowDe {
    type Error = DecodeError;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> std::result::Result<V::Value, DecodeError> {
        let n = self.width();
        v.visit_map(Columns { stmt: self.stmt, at: 0, n })
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, v: V) -> std::result::Result<V::Value, DecodeError> {
        let n = self.width();
        v.visit_seq(Columns { stmt: self.stmt, at: 0, n })
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _name: &'static str, v: V) -> std::result::Result<V::Value, DecodeError> {
        v.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit unit_struct
        seq tuple_struct map struct enum identifier ignored_any
    }
}

/// Columns `at..n` of the current row.
struct Columns {
    stmt: NonNull<ffi::sqlite3_stmt>,
    at: i32,
    n: i32,
}

impl<'de> MapAccess<'de> for Columns {
    type Error = DecodeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> std::result::Result<Option<K::Value>, DecodeError> {
        if self.at >= self.n {
            return Ok(None);
        }
        // SAFETY: the statement is live and `at` in range; the name is NUL-terminated and owned
        // by SQLite until the statement is finalised; copied before anything else runs.
        let name = unsafe {
            let p = ffi::sqlite3_column_name(self.stmt.as_ptr(), self.at);
            if p.is_null() {
                return Err(DecodeError("a column without a name".into()));
            }
            std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned()
        };
        seed.deserialize(name.into_deserializer()).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> std::result::Result<V::Value, DecodeError> {
        let value = Value { stmt: self.stmt, col: self.at };
        self.at += 1;
        seed.deserialize(value)
    }
}

impl<'de> SeqAccess<'de> for Columns {
    type Error = DecodeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> std::result::Result<Option<T::Value>, DecodeError> {
        if self.at >= self.n {
            return Ok(None);
        }
        let value = Value { stmt: self.stmt, col: self.at };
        self.at += 1;
        seed.deserialize(value).map(Some)
    }
}

/// One column of the current row.
struct Value {
    stmt: NonNull<ffi::sqlite3_stmt>,
    col: i32,
}

impl Value {
    fn kind(&self) -> i32 {
        // SAFETY: the statement is live with a row ready.
        unsafe { ffi::sqlite3_column_type(self.stmt.as_ptr(), self.col) }
    }

    /// The column as text (valid until the next step; copied by the visitor as needed).
    fn text(&self) -> std::result::Result<&str, DecodeError> {
        // SAFETY: text first, then its length (SQLite's documented order); the bytes stay valid
        // until the statement steps or resets, which cannot happen while `self` is borrowed.
        let bytes = unsafe {
            let p = ffi::sqlite3_column_text(self.stmt.as_ptr(), self.col);
            let len = ffi::sqlite3_column_bytes(self.stmt.as_ptr(), self.col);
            if p.is_null() {
                &[][..]
            } else {
                std::slice::from_raw_parts(p, len.max(0) as usize)
            }
        };
        std::str::from_utf8(bytes).map_err(|_| DecodeError(format!("column {} is not UTF-8", self.col)))
    }
}

/// `YYYY-MM-DD HH:MM:SS[.f]+HH` (the offset without minutes, as the bulk import writes
/// timestamps and sqlx reads them) completed to `+HH:00`, which chrono's parser requires.
fn complete_offset(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let n = b.len();
    let shaped = n >= 22
        && b[4] == b'-'
        && b[7] == b'-'
        && (b[10] == b' ' || b[10] == b'T')
        && b[13] == b':'
        && (b[n - 3] == b'+' || b[n - 3] == b'-')
        && b[n - 2].is_ascii_digit()
        && b[n - 1].is_ascii_digit()
        && b[..4].iter().all(u8::is_ascii_digit);
    shaped.then(|| format!("{s}:00"))
}

impl<'de> de::Deserializer<'de> for Value {
    type Error = DecodeError;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> std::result::Result<V::Value, DecodeError> {
        // SAFETY (all arms): the statement is live with a row ready; `col` is in range.
        match self.kind() {
            ffi::SQLITE_INTEGER => v.visit_i64(unsafe { ffi::sqlite3_column_int64(self.stmt.as_ptr(), self.col) }),
            ffi::SQLITE_FLOAT => v.visit_f64(unsafe { ffi::sqlite3_column_double(self.stmt.as_ptr(), self.col) }),
            ffi::SQLITE_NULL => v.visit_none(),
            ffi::SQLITE_BLOB => Err(DecodeError(format!("column {} is a blob", self.col))),
            _ => v.visit_str(self.text()?),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> std::result::Result<V::Value, DecodeError> {
        if self.kind() == ffi::SQLITE_NULL {
            v.visit_none()
        } else {
            v.visit_some(self)
        }
    }

    /// SQLite keeps booleans as 0 and 1.
    fn deserialize_bool<V: Visitor<'de>>(self, v: V) -> std::result::Result<V::Value, DecodeError> {
        match self.kind() {
            // SAFETY: as in deserialize_any.
            ffi::SQLITE_INTEGER => v.visit_bool(unsafe { ffi::sqlite3_column_int64(self.stmt.as_ptr(), self.col) } != 0),
            _ => self.deserialize_any(v),
        }
    }

    /// What asks for a borrowed string is a parsed type (timestamps, dates): timestamps written
    /// with an hour-only offset get their minutes (see [`complete_offset`]).
    fn deserialize_str<V: Visitor<'de>>(self, v: V) -> std::result::Result<V::Value, DecodeError> {
        if self.kind() != ffi::SQLITE_TEXT {
            return self.deserialize_any(v);
        }
        let s = self.text()?;
        match complete_offset(s) {
            Some(full) => v.visit_str(&full),
            None => v.visit_str(s),
        }
    }

    /// As sqlx reads an integer: a float column is truncated (SQLite's own conversion).
    fn deserialize_i64<V: Visitor<'de>>(self, v: V) -> std::result::Result<V::Value, DecodeError> {
        match self.kind() {
            // SAFETY: as in deserialize_any.
            ffi::SQLITE_INTEGER | ffi::SQLITE_FLOAT => v.visit_i64(unsafe { ffi::sqlite3_column_int64(self.stmt.as_ptr(), self.col) }),
            _ => self.deserialize_any(v),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _name: &'static str, v: V) -> std::result::Result<V::Value, DecodeError> {
        v.visit_newtype_struct(self)
    }

    /// A list kept as JSON text (`Json<Vec<…>>`), as sqlx decodes it.
    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> std::result::Result<V::Value, DecodeError> {
        match self.json()? {
            Some(json) => de::Deserializer::deserialize_seq(json, v).map_err(|e| DecodeError(format!("column {}: {e}", self.col))),
            None => self.deserialize_any(v),
        }
    }

    /// A map kept as JSON text, as sqlx decodes it.
    fn deserialize_map<V: Visitor<'de>>(self, v: V) -> std::result::Result<V::Value, DecodeError> {
        match self.json()? {
            Some(json) => de::Deserializer::deserialize_map(json, v).map_err(|e| DecodeError(format!("column {}: {e}", self.col))),
            None => self.deserialize_any(v),
        }
    }

    /// A struct kept as JSON text (`Json<Struct>`), as sqlx decodes it.
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        v: V,
    ) -> std::result::Result<V::Value, DecodeError> {
        match self.json()? {
            Some(json) => {
                de::Deserializer::deserialize_struct(json, name, fields, v).map_err(|e| DecodeError(format!("column {}: {e}", self.col)))
            }
            None => self.deserialize_any(v),
        }
    }

    serde::forward_to_deserialize_any! {
        i8 i16 i32 i128 u8 u16 u32 u64 u128 f32 f64 char string bytes byte_buf unit unit_struct
        tuple tuple_struct enum identifier ignored_any
    }
}

impl Value {
    /// A text column's JSON, for a type that reads a list, map or struct from it (nothing else
    /// can come of text); `None` for other columns.
    fn json(&self) -> std::result::Result<Option<serde_json::Value>, DecodeError> {
        if self.kind() != ffi::SQLITE_TEXT {
            return Ok(None);
        }
        serde_json::from_str(self.text()?).map(Some).map_err(|e| DecodeError(format!("column {} is not JSON: {e}", self.col)))
    }
}

/// For a JSON document kept as text: `#[serde(deserialize_with = "…")]` on a `Json<T>` field
/// read by the direct path (sqlx decodes it on the others).
pub(crate) fn json_text<'de, D, T>(d: D) -> std::result::Result<sqlx::types::Json<T>, D::Error>
where
    D: de::Deserializer<'de>,
    T: DeserializeOwned,
{
    let s = <std::borrow::Cow<'de, str> as de::Deserialize>::deserialize(d)?;
    serde_json::from_str(&s).map(sqlx::types::Json).map_err(de::Error::custom)
}

/// [`json_text`] for a column that may be NULL (`Option<Json<T>>`).
pub(crate) fn json_text_opt<'de, D, T>(d: D) -> std::result::Result<Option<sqlx::types::Json<T>>, D::Error>
where
    D: de::Deserializer<'de>,
    T: DeserializeOwned,
{
    match <Option<std::borrow::Cow<'de, str>> as de::Deserialize>::deserialize(d)? {
        Some(s) => serde_json::from_str(&s).map(|v| Some(sqlx::types::Json(v))).map_err(de::Error::custom),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_direct_writer_finding_the_lock_held_reports_busy_and_stays_usable() {
        // A real lock, held by another connection to the file, met on the C API path.
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("busy.db");
        // An empty file is an empty database (the pool creates the file; writers never do).
        std::fs::File::create(&path).expect("the file");
        let writers = std::sync::Arc::new(DirectWriters::new(&path).expect("writers"));
        let c = CString::new(path.to_string_lossy().as_bytes()).expect("a path");
        let mut holder = DirectConn::open(&c, true).expect("a connection");
        holder.run_plain("PRAGMA journal_mode = WAL").expect("WAL");
        holder.run_plain("CREATE TABLE t (x INTEGER PRIMARY KEY)").expect("a table");
        holder.run_plain("BEGIN IMMEDIATE").expect("the write lock");
        let mut waiting = DirectConn::open(&c, true).expect("a connection");
        waiting.run_plain("PRAGMA busy_timeout = 0").expect("no wait");
        let busy = waiting.run_plain("BEGIN IMMEDIATE").expect_err("the lock is held");
        assert!(matches!(busy, StoreError::Busy(_)), "{busy:?}");
        assert!(!waiting.in_transaction());
        // Given back as a writer would be, then used once the lock is free: a write, a key
        // taken twice (a conflict, as sqlx reports it) and the row count of a change.
        writers.give_back(waiting);
        holder.run_plain("ROLLBACK").expect("let go");
        let mut tx = writers.begin().expect("begin");
        let insert = crate::db::query("INSERT INTO t (x) VALUES ($1)").bind(7_i64);
        assert_eq!(tx.execute(&insert).expect("a row"), 1);
        let again = tx.execute(&insert).expect_err("the key is taken");
        assert!(matches!(again, StoreError::Conflict(_)), "{again:?}");
        // Two statements in one text are refused, not cut to the first.
        let two = crate::db::query("DELETE FROM t; DELETE FROM t");
        assert!(matches!(tx.execute(&two), Err(StoreError::Internal(_))));
        tx.commit().expect("commit");
        let rows: Vec<(i64,)> = writers.begin().expect("begin").fetch_all(&crate::db::query("SELECT x FROM t")).expect("rows");
        assert_eq!(rows, [(7,)]);
    }

    #[test]
    fn placeholders_become_numbered_question_marks_outside_quotes() {
        assert_eq!(sqlite_placeholders("SELECT a FROM t WHERE x = $1 AND y = $12"), "SELECT a FROM t WHERE x = ?1 AND y = ?12");
        assert_eq!(sqlite_placeholders("SELECT '$1' || $2"), "SELECT '$1' || ?2");
    }

    #[test]
    fn hour_offsets_get_their_minutes() {
        assert_eq!(complete_offset("2026-03-09 07:05:03.120+00").as_deref(), Some("2026-03-09 07:05:03.120+00:00"));
        assert_eq!(complete_offset("2026-03-09 07:05:03+00"), Some("2026-03-09 07:05:03+00:00".into()));
        assert_eq!(complete_offset("2026-03-09T07:05:03+00:00"), None);
        assert_eq!(complete_offset("2026-03-09"), None);
        assert_eq!(complete_offset("上海 2026-03-09 07:05:03+00"), None);
    }
}
