//! The bulk write paths both loaders share: one row's cells written once for both engines
//! ([`Cells`]: a PostgreSQL COPY buffer, or the parameters of a prepared SQLite statement),
//! prepared multi-row inserts on SQLite, and ids reserved ahead of a PostgreSQL COPY.

use chrono::{DateTime, SecondsFormat, Utc};

use crate::db::{query, CopyRows, Engine, Query, RawStmt, ReadConn, SqliteRaw, Tx};
use crate::{Result, StoreError};

/// Rows per prepared multi-row insert on SQLite (16 columns into the orders stage: 1,024
/// parameters).
pub(super) const ROWS_PER_INSERT: usize = 64;

/// SQLite: inserts `rows` into `table (columns)` by prepared multi-row statements
/// ([`ROWS_PER_INSERT`] rows each); `bind` writes one row's cells.
pub(super) fn insert_rows<T>(
    raw: &SqliteRaw<'_>,
    table: &str,
    columns: &[&str],
    rows: &[T],
    bind: impl for<'s, 'h> Fn(&mut Params<'s, 'h>, &T) -> Result<()>,
) -> Result<()> {
    let ncols = columns.len();
    let insert_sql = |n: usize| {
        let one = format!("({})", vec!["?"; ncols].join(","));
        format!("INSERT INTO {table} ({}) VALUES {}", columns.join(", "), vec![one; n].join(","))
    };
    let mut groups = rows.chunks_exact(ROWS_PER_INSERT);
    if rows.len() >= ROWS_PER_INSERT {
        let mut many = raw.prepare(&insert_sql(ROWS_PER_INSERT))?;
        for group in groups.by_ref() {
            for (i, r) in group.iter().enumerate() {
                bind(&mut Params { stmt: &mut many, next: (i * ncols) as i32 + 1 }, r)?;
            }
            many.exec()?;
        }
    }
    if !groups.remainder().is_empty() {
        let mut one = raw.prepare(&insert_sql(1))?;
        for r in groups.remainder() {
            bind(&mut Params { stmt: &mut one, next: 1 }, r)?;
            one.exec()?;
        }
    }
    Ok(())
}

/// One row's values, written cell by cell into a PostgreSQL COPY buffer or into the parameters
/// of a prepared SQLite statement, so each table's columns are listed once for both engines.
pub(super) trait Cells {
    fn int(&mut self, v: Option<i64>) -> Result<()>;
    fn text(&mut self, v: Option<&str>) -> Result<()>;
    fn time(&mut self, v: DateTime<Utc>) -> Result<()>;
    fn bool(&mut self, v: bool) -> Result<()>;
}

impl Cells for CopyRows {
    fn int(&mut self, v: Option<i64>) -> Result<()> {
        CopyRows::int(self, v);
        Ok(())
    }
    fn text(&mut self, v: Option<&str>) -> Result<()> {
        CopyRows::text(self, v);
        Ok(())
    }
    fn time(&mut self, v: DateTime<Utc>) -> Result<()> {
        CopyRows::time(self, v);
        Ok(())
    }
    fn bool(&mut self, v: bool) -> Result<()> {
        CopyRows::bool(self, v);
        Ok(())
    }
}

/// The parameters of a prepared SQLite statement, from `next` on.
pub(super) struct Params<'s, 'h> {
    stmt: &'s mut RawStmt<'h>,
    next: i32,
}

impl Cells for Params<'_, '_> {
    fn int(&mut self, v: Option<i64>) -> Result<()> {
        self.next += 1;
        self.stmt.int(self.next - 1, v)
    }
    fn text(&mut self, v: Option<&str>) -> Result<()> {
        self.next += 1;
        self.stmt.text(self.next - 1, v)
    }
    fn time(&mut self, v: DateTime<Utc>) -> Result<()> {
        // The text form sqlx writes for a `DateTime<Utc>`, so every reader parses it alike.
        self.text(Some(&v.to_rfc3339_opts(SecondsFormat::AutoSi, false)))
    }
    fn bool(&mut self, v: bool) -> Result<()> {
        self.int(Some(i64::from(v)))
    }
}

/// Ids for the new rows of a table, known before they are written (so rows that refer to them
/// can be written in bulk too, without `RETURNING`).
#[derive(Default)]
pub(super) struct IdSequence {
    /// PostgreSQL: the sequence's name as an SQL string literal (looked up on first use), so
    /// that it resolves once per statement rather than once per id.
    literal: String,
}

impl IdSequence {
    /// Reserves `n` new ids of `table`'s `id` column in one round trip: from the sequence on
    /// PostgreSQL (as one row of text rather than a row each); on SQLite the ids after the
    /// largest, which only this transaction can take (SQLite has one writer, and a transaction
    /// whose snapshot is older than another writer's commit cannot write at all).
    pub(super) async fn reserve(&mut self, tx: &mut Tx, table: &str, n: usize) -> Result<Vec<i64>> {
        if tx.engine() == Engine::Sqlite {
            let (last,): (i64,) = tx.fetch_one(query(format!("SELECT COALESCE(MAX(id), 0) FROM {table}"))).await?;
            return Ok((last + 1..).take(n).collect());
        }
        if self.literal.is_empty() {
            let (name,): (String,) = tx.fetch_one(sequence_of(table)).await?;
            self.learn(&name);
        }
        let (reserved,): (String,) = tx.fetch_one(self.statement(n)).await?;
        reserved_ids(table, &reserved, n)
    }

    /// PostgreSQL: [`IdSequence::reserve`] on a connection outside the import's transaction
    /// (a sequence hands out ids outside transactions anyway), so that it can run while the
    /// transaction writes.
    pub(super) async fn reserve_on(&mut self, conn: &mut ReadConn, table: &str, n: usize) -> Result<Vec<i64>> {
        if self.literal.is_empty() {
            let (name,): (String,) = conn.fetch_one(sequence_of(table)).await?;
            self.learn(&name);
        }
        let (reserved,): (String,) = conn.fetch_one(self.statement(n)).await?;
        reserved_ids(table, &reserved, n)
    }

    fn learn(&mut self, sequence: &str) {
        self.literal = format!("'{}'", sequence.replace('\'', "''"));
    }

    /// `n` ids as one row of text.
    fn statement(&self, n: usize) -> Query {
        query(format!("SELECT string_agg(CAST(nextval({}) AS TEXT), ',') FROM generate_series(1, $1)", self.literal)).bind(n as i64)
    }
}

/// The sequence behind `table`'s `id` column.
fn sequence_of(table: &str) -> Query {
    query("SELECT pg_get_serial_sequence($1, 'id')").bind(table)
}

/// The ids of [`IdSequence::statement`]'s answer, `n` of them.
fn reserved_ids(table: &str, reserved: &str, n: usize) -> Result<Vec<i64>> {
    let ids: Vec<i64> = reserved
        .split(',')
        .map(|id| id.parse().map_err(|_| StoreError::Internal(format!("the {table} id sequence returned {id:?}"))))
        .collect::<Result<_>>()?;
    if ids.len() != n {
        return Err(StoreError::Internal(format!("reserved {} {table} ids for {n} rows", ids.len())));
    }
    Ok(ids)
}

/// Rows per COPY message of [`copy_rows`].
const COPY_SLICE: usize = 1_024;

/// PostgreSQL: COPYs `rows` into `table (columns)` in slices, each formatted while the server
/// takes in the one before (formatted whole first, a million orders' text kept the server idle
/// for about a second).
pub(super) async fn copy_rows<T>(
    tx: &mut Tx,
    table: &str,
    columns: &[&str],
    rows: &[T],
    mut cells: impl FnMut(&mut CopyRows, &T) -> Result<()>,
) -> Result<()> {
    let mut slices = rows.chunks(COPY_SLICE);
    let mut failed = None;
    let statement = format!("COPY {table} ({}) FROM STDIN", columns.join(", "));
    tx.copy_in_chunks(&statement, || {
        let slice = slices.next()?;
        let mut buf = CopyRows::new();
        for r in slice {
            if let Err(e) = cells(&mut buf, r) {
                // Ends the COPY; the error fails the file, whose transaction then rolls back.
                failed = Some(e);
                return None;
            }
            buf.end_row();
        }
        Some(buf.take())
    })
    .await?;
    failed.map_or(Ok(()), Err)
}

/// Writes new rows into `table (columns)`: by COPY on PostgreSQL, by prepared multi-row inserts
/// on the transaction's own connection on SQLite; `cells` writes one row's cells for either.
pub(super) async fn write_rows<T>(
    tx: &mut Tx,
    table: &str,
    columns: &[&str],
    rows: &[T],
    cells: impl Fn(&mut dyn Cells, &T) -> Result<()>,
) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    match tx.engine() {
        Engine::Postgres => copy_rows(tx, table, columns, rows, |c, r| cells(c, r)).await?,
        Engine::Sqlite => {
            let raw = tx.sqlite_raw().await?;
            insert_rows(&raw, table, columns, rows, |p, r| cells(p, r))?;
        }
    }
    Ok(())
}

/// Like [`write_rows`], for a table with triggers that write a full-text index (customers: the
/// search index). On SQLite every multi-row `INSERT` is a statement of its own, and FTS5 flushes
/// its pending terms into a new segment of the index at each statement and then merges those
/// segments (110,000 customers: 1,700 flushes, a third of the import's time with the statement
/// journal the triggers need). So the rows go into a temporary stage by the same prepared
/// inserts and on by one `INSERT … SELECT`: one flush per call. PostgreSQL: COPY, as
/// [`write_rows`].
pub(super) async fn write_rows_indexed<T>(
    tx: &mut Tx,
    table: &str,
    columns: &[&str],
    rows: &[T],
    cells: impl Fn(&mut dyn Cells, &T) -> Result<()>,
) -> Result<()> {
    if rows.is_empty() || tx.engine() == Engine::Postgres {
        return write_rows(tx, table, columns, rows, cells).await;
    }
    let cols = columns.join(", ");
    let stage = format!("patron_stage_{table}");
    let raw = tx.sqlite_raw().await?;
    // The stage takes its columns' affinities from the table; rolled back with the transaction.
    raw.execute(&format!("CREATE TEMP TABLE {stage} AS SELECT {cols} FROM main.{table} WHERE false"))?;
    insert_rows(&raw, &stage, columns, rows, |p, r| cells(p, r))?;
    raw.execute(&format!("INSERT INTO main.{table} ({cols}) SELECT {cols} FROM temp.{stage} ORDER BY rowid"))?;
    raw.execute(&format!("DROP TABLE temp.{stage}"))?;
    Ok(())
}
