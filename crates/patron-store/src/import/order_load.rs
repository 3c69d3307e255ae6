//! `import orders`: the bulk path.
//!
//! A reader thread parses and validates the file (CSV/JSON, money, times, duplicates) while the
//! importing task resolves customers and catalogue names and writes, so parsing overlaps the
//! database's work. Writes take each engine's fast path:
//!
//! - **SQLite:** per chunk, one range probe tells whether any stored order id falls within the
//!   chunk's ids. If none does (the usual first load), the rows go straight into `orders` and
//!   `order_lines` through prepared multi-row inserts stepped directly on the transaction's
//!   connection ([`SqliteRaw`]: sqlx's worker round trip per statement would cost more than the
//!   insert). Otherwise they go into the staging table the same way, and the chunk is checked
//!   and merged by the set statements below, run on the same handle. Set statements, not a statement
//!   per order: each statement on `orders` opens cursors on the table and its four indexes, which
//!   costs more than the row itself.
//! - **PostgreSQL:** per chunk, the same range probe, and only when it finds stored ids in the
//!   range, an indexed probe per order, tell which order ids exist already. New orders get ids
//!   reserved from the sequence and are COPYed straight into `orders` and
//!   `order_lines`; existing ones are COPYed into the staging table, and at the end of the file
//!   the set statements check for moved order ids and merge the stage (the planner sees the real
//!   size once instead of a growing table every few thousand rows). A look-ahead task finds the
//!   chunk's customers and reserves its ids on a second connection while the transaction
//!   writes the chunk before ([`LookAhead`]), and the COPY text is made a slice at a time while
//!   the server takes in the slice before, so the server's one connection rarely waits.
//!
//!   Foreign keys: PostgreSQL checks each one by a trigger per row, and on 1 M orders those four
//!   checks cost 32 of the 49 seconds (measured with `EXPLAIN ANALYZE`). When the role may set
//!   `session_replication_role` (a superuser, or granted `SET` on it), the load does what
//!   `pg_restore --disable-triggers` does and sets it to `replica` for the transaction, and
//!   keeps what the triggers guarantee by construction and by set statements: every customer
//!   and catalogue id comes from a lookup in this transaction, and is locked `FOR KEY SHARE`
//!   (the lock the trigger takes) once per file, in one statement per chunk, so that nobody can
//!   delete it before the commit; every line's order is written by this same load. Otherwise
//!   the triggers run as usual.
//!
//! When no staged order exists yet, the merge is a plain `INSERT` (no `ON CONFLICT`: its
//! speculative insertion costs PostgreSQL about a third of the insert).
//!
//! Either way the file is one transaction, and when it will be rolled back anyway (a dry run, or
//! rejected rows without `--skip-invalid`) the merge is skipped: the counts come from the checks.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use super::bulk::{copy_rows, insert_rows, Cells};
use super::source::{Record, Source};
use super::{fields, ImportOptions, Loader, Rejection, Rejections, Row, ORDER_STAGE};
use crate::db::{off_the_workers, query, CopyRows, Engine, ReadConn, SqliteRaw, Tx};
use crate::{values, Result, StoreError};

use fields::order as f;

/// Rows parsed per message from the reader thread: large enough that per-chunk statements are
/// noise (at 8,192, 123 chunks of a million orders spent 0.4 s on their round trips and COPY
/// set-ups), small enough for frequent progress. The first chunks are smaller
/// ([`FIRST_CHUNK`], growing fourfold), so the database starts work sooner.
const CHUNK: usize = 32_768;
/// The first chunk's rows.
const FIRST_CHUNK: usize = 2_048;
/// Chunks parsed ahead of the writer.
const AHEAD: usize = 4;
/// SQLite: a chunk with at least this many new customer ids resolves them by one walk of their
/// range of the index (see `resolve_customers_sqlite`), reading at most this many rows per id.
const RANGE_RESOLVE_MIN: usize = 16;
const RANGE_RESOLVE_ROWS_PER_ID: usize = 4;

const MOVED_REASON: &str = "this order id belongs to another customer";

// The merge, in portable SQL: SQLite runs it per chunk, PostgreSQL once per file.

/// Staged orders whose id belongs to another customer: they are refused rather than moved.
/// (Through the key table, which knows every order id: on Citus the order may be in any shard.)
const MOVED_SQL: &str = "SELECT s.row_no, s.external_id FROM patron_stage_orders s JOIN order_keys k ON k.external_id = s.external_id \
     WHERE k.customer_id <> s.customer_id";
/// Staged orders that exist already (updates; the rest are created).
const EXISTING_SQL: &str = "SELECT COUNT(*) FROM patron_stage_orders s JOIN order_keys k ON k.external_id = s.external_id";
/// Staged orders that exist and differ from what is stored (in the order or its line 1): the
/// report's `updated`; the other existing ones are `unchanged`.
const CHANGED_SQL: &str = "SELECT COUNT(*) FROM patron_stage_orders s \
     JOIN orders o ON o.customer_id = s.customer_id AND o.external_id = s.external_id \
     LEFT JOIN order_lines l ON l.customer_id = o.customer_id AND l.order_id = o.id AND l.line_no = 1 \
     WHERE o.ordered_at IS DISTINCT FROM s.ordered_at OR o.ordered_day IS DISTINCT FROM s.ordered_day \
     OR o.channel IS DISTINCT FROM s.channel OR o.store IS DISTINCT FROM s.store OR o.currency IS DISTINCT FROM s.currency \
     OR o.total_cents IS DISTINCT FROM s.total_cents OR o.discount_cents IS DISTINCT FROM s.discount_cents \
     OR o.status IS DISTINCT FROM s.status OR l.order_id IS NULL OR l.product_id IS DISTINCT FROM s.product_id \
     OR l.category_id IS DISTINCT FROM s.category_id OR l.quantity IS DISTINCT FROM s.quantity \
     OR l.unit_price_cents IS DISTINCT FROM s.unit_price_cents OR l.promo IS DISTINCT FROM s.promo";
/// Upserts the staged orders by external id, in file order. An order that is the same as stored
/// is left alone: re-importing yesterday's full export then writes no new row versions and no
/// index entries for it.
const MERGE_ORDERS_SQL: &str = "INSERT INTO orders (customer_id, external_id, ordered_at, channel, store, currency, total_cents, discount_cents, status, ordered_day) \
     SELECT customer_id, external_id, ordered_at, channel, store, currency, total_cents, discount_cents, status, ordered_day \
     FROM patron_stage_orders WHERE true ORDER BY row_no \
     ON CONFLICT (customer_id, external_id) DO UPDATE SET ordered_at = excluded.ordered_at, ordered_day = excluded.ordered_day, channel = excluded.channel, \
     store = excluded.store, currency = excluded.currency, total_cents = excluded.total_cents, \
     discount_cents = excluded.discount_cents, status = excluded.status \
     WHERE orders.ordered_at IS DISTINCT FROM excluded.ordered_at OR orders.ordered_day IS DISTINCT FROM excluded.ordered_day \
     OR orders.channel IS DISTINCT FROM excluded.channel OR orders.store IS DISTINCT FROM excluded.store \
     OR orders.currency IS DISTINCT FROM excluded.currency OR orders.total_cents IS DISTINCT FROM excluded.total_cents \
     OR orders.discount_cents IS DISTINCT FROM excluded.discount_cents OR orders.status IS DISTINCT FROM excluded.status";
/// Inserts the staged orders when none of them exists yet (the usual first load): a plain insert
/// skips the speculative insertion that `ON CONFLICT` costs per row.
const INSERT_ORDERS_SQL: &str = "INSERT INTO orders (customer_id, external_id, ordered_at, channel, store, currency, total_cents, discount_cents, status, ordered_day) \
     SELECT customer_id, external_id, ordered_at, channel, store, currency, total_cents, discount_cents, status, ordered_day \
     FROM patron_stage_orders ORDER BY row_no";
/// Inserts line 1 of staged orders that were all new.
const INSERT_LINES_SQL: &str =
    "INSERT INTO order_lines (customer_id, order_id, line_no, product_id, category_id, quantity, unit_price_cents, promo) \
     SELECT s.customer_id, o.id, 1, s.product_id, s.category_id, s.quantity, s.unit_price_cents, s.promo \
     FROM patron_stage_orders s JOIN orders o ON o.customer_id = s.customer_id AND o.external_id = s.external_id";
/// Upserts line 1 of each staged order (other lines of an order stay as they are; an unchanged
/// line is left alone).
const MERGE_LINES_SQL: &str =
    "INSERT INTO order_lines (customer_id, order_id, line_no, product_id, category_id, quantity, unit_price_cents, promo) \
     SELECT s.customer_id, o.id, 1, s.product_id, s.category_id, s.quantity, s.unit_price_cents, s.promo \
     FROM patron_stage_orders s JOIN orders o ON o.customer_id = s.customer_id AND o.external_id = s.external_id WHERE true \
     ON CONFLICT (customer_id, order_id, line_no) DO UPDATE SET product_id = excluded.product_id, \
     category_id = excluded.category_id, quantity = excluded.quantity, unit_price_cents = excluded.unit_price_cents, \
     promo = excluded.promo \
     WHERE order_lines.product_id IS DISTINCT FROM excluded.product_id OR order_lines.category_id IS DISTINCT FROM excluded.category_id \
     OR order_lines.quantity IS DISTINCT FROM excluded.quantity OR order_lines.unit_price_cents IS DISTINCT FROM excluded.unit_price_cents \
     OR order_lines.promo IS DISTINCT FROM excluded.promo";

/// The statements that merge the stage, given how many staged orders exist already. The
/// transaction holds the write lock on SQLite; on PostgreSQL a concurrent writer of the same new
/// order id makes the plain insert fail with a conflict, and the whole file rolls back.
fn merge_sql(existing: u64) -> (&'static str, &'static str) {
    if existing == 0 {
        (INSERT_ORDERS_SQL, INSERT_LINES_SQL)
    } else {
        (MERGE_ORDERS_SQL, MERGE_LINES_SQL)
    }
}

/// Columns of `orders` written by the load after `id`: customer_id … status.
fn order_cells(c: &mut impl Cells, r: &Resolved<'_>) -> Result<()> {
    let o = &r.o;
    c.int(Some(r.customer_id))?;
    c.text(Some(&o.external_id))?;
    c.time(o.ordered_at)?;
    c.text(o.channel.as_deref())?;
    c.text(o.store.as_deref())?;
    c.text(Some(&o.currency))?;
    c.int(Some(o.amount))?;
    c.int(Some(o.discount))?;
    c.text(Some(o.status))
}

/// Columns of an order's line 1 after its keys: product_id … promo.
fn line_cells(c: &mut impl Cells, r: &Resolved<'_>) -> Result<()> {
    c.int(r.product_id)?;
    c.int(r.category_id)?;
    c.int(Some(r.o.quantity))?;
    c.int(Some(r.unit_price))?;
    c.bool(r.o.promo)
}

/// A row of [`ORDER_STAGE`].
fn stage_cells(c: &mut impl Cells, r: &Resolved<'_>) -> Result<()> {
    c.int(Some(r.o.row as i64))?;
    order_cells(c, r)?;
    line_cells(c, r)?;
    c.int(Some(r.o.ordered_day))
}

/// A row of [`NEW_ORDER_COLUMNS`].
fn new_order_cells(c: &mut impl Cells, id: i64, r: &Resolved<'_>) -> Result<()> {
    c.int(Some(id))?;
    order_cells(c, r)?;
    c.int(Some(r.o.ordered_day))
}

/// A row of [`NEW_LINE_COLUMNS`].
fn new_line_cells(c: &mut impl Cells, id: i64, r: &Resolved<'_>) -> Result<()> {
    c.int(Some(r.customer_id))?;
    c.int(Some(id))?;
    c.int(Some(1))?;
    line_cells(c, r)
}

/// Columns of a new order, as [`new_order_cells`] writes them.
const NEW_ORDER_COLUMNS: [&str; 11] = [
    "id",
    "customer_id",
    "external_id",
    "ordered_at",
    "channel",
    "store",
    "currency",
    "total_cents",
    "discount_cents",
    "status",
    "ordered_day",
];
/// Columns of a new order's line, as [`new_line_cells`] writes them.
const NEW_LINE_COLUMNS: [&str; 8] =
    ["customer_id", "order_id", "line_no", "product_id", "category_id", "quantity", "unit_price_cents", "promo"];

/// A validated order row.
pub(super) struct OrderIn {
    row: u64,
    external_id: String,
    customer: String,
    ordered_at: DateTime<Utc>,
    amount: i64,
    discount: i64,
    currency: String,
    channel: Option<String>,
    store: Option<String>,
    status: &'static str,
    category: Option<String>,
    product: Option<String>,
    quantity: i64,
    promo: bool,
    /// Business day of `ordered_at` (computed on the reader thread).
    ordered_day: i64,
}

/// What the reader thread sends.
enum Chunk {
    Rows {
        /// Data rows read so far (valid or not).
        rows_read: u64,
        orders: Vec<OrderIn>,
        rejections: Vec<Rejection>,
        /// Source column names per field (JSON lines may change them).
        names: Vec<String>,
        /// SQLite file: per order, its customer's id (`None`: unknown), looked up by the reader
        /// thread ([`CustomerLookup`]); `None` when the writer looks them up.
        customer_ids: Option<Vec<Option<i64>>>,
    },
    /// A file-level failure: the import stops and writes nothing.
    Failed(StoreError),
    End,
}

/// Parses and validates the whole file on the calling (dedicated) thread, handing each chunk to
/// `out`, which returns false once the writer has stopped. The writer hands written chunks back
/// through `spent`: their strings are freed here, where they were allocated (freeing another
/// thread's allocations was 4% of the writer's time), and their room is filled again.
fn read_orders(
    mut src: Source,
    tz: chrono_tz::Tz,
    now: DateTime<Utc>,
    spent: std::sync::mpsc::Receiver<Vec<OrderIn>>,
    mut lookup: Option<CustomerLookup>,
    mut out: impl FnMut(Chunk) -> bool,
) {
    // External ids seen in this file → first row, to refuse duplicates.
    let mut seen: foldhash::HashMap<String, u64> = foldhash::HashMap::default();
    let mut rej = Rejections { names: src.source_names(), list: Vec::new(), count: 0, rows: HashSet::new() };
    let mut rows_read = 0u64;
    let mut size = FIRST_CHUNK;
    loop {
        let mut orders = Vec::new();
        while let Ok(mut used) = spent.try_recv() {
            used.clear();
            orders = used;
        }
        orders.reserve(size);
        let mut rejections = Vec::new();
        let mut done = false;
        while orders.len() < size {
            match src.next() {
                Ok(Some(Ok(rec))) => {
                    rows_read += 1;
                    if rej.names != src.source_names_ref() {
                        rej.names = src.source_names();
                    }
                    if let Some(o) = validate(&rec, &mut rej, tz, now, &mut seen) {
                        orders.push(o);
                    }
                    // Hand every rejection to the writer (which counts and caps them).
                    rejections.append(&mut rej.list);
                }
                Ok(Some(Err(r))) => {
                    rows_read += 1;
                    rejections.push(r);
                }
                Ok(None) => {
                    done = true;
                    break;
                }
                Err(e) => {
                    out(Chunk::Failed(e));
                    return;
                }
            }
            // A file of nothing but bad rows still reports progress.
            if rejections.len() >= size {
                break;
            }
        }
        size = (size * 4).min(CHUNK);
        rej.rows.clear();
        let customer_ids = match lookup.as_mut().map(|l| l.ids(&orders)).transpose() {
            Ok(ids) => ids,
            Err(e) => {
                out(Chunk::Failed(e));
                return;
            }
        };
        let msg = Chunk::Rows { rows_read, orders, rejections, names: rej.names.clone(), customer_ids };
        // A closed channel means the writer stopped (a database error); nothing left to do.
        if !out(msg) {
            return;
        }
        if done {
            // Its read transaction ends before the writer can commit and checkpoint.
            drop(lookup);
            out(Chunk::End);
            return;
        }
    }
}

/// Validates one record; rejections go to `rej`.
fn validate(
    rec: &Record,
    rej: &mut Rejections,
    tz: chrono_tz::Tz,
    now: DateTime<Utc>,
    seen: &mut foldhash::HashMap<String, u64>,
) -> Option<OrderIn> {
    let mut r = Row { rec, rej, ok: true };
    let external_id = r.required(f::EXTERNAL_ID);
    let customer = r.required(f::CUSTOMER_ID);
    let ordered_at = r.parse(f::ORDERED_AT, |v| values::parse_time(v, tz).and_then(|t| values::check_order_time(t, now)));
    if rec.values[f::ORDERED_AT].is_none() {
        r.required(f::ORDERED_AT);
    }
    let amount = r.parse(f::AMOUNT, values::parse_money);
    if rec.values[f::AMOUNT].is_none() {
        r.required(f::AMOUNT);
    }
    if amount.is_some_and(|a| a < 0) {
        r.reject(f::AMOUNT, "must not be negative (record refunds with status refunded)".into());
    }
    // The API's bound (issue 14 §2.2): one value may hold at most 10¹³ cents.
    if amount.is_some_and(|a| a > values::MAX_CENTS) {
        r.reject(f::AMOUNT, values::too_much_money());
    }
    let discount = r.parse(f::DISCOUNT, values::parse_money).unwrap_or(0);
    if discount < 0 {
        r.reject(f::DISCOUNT, "must not be negative".into());
    }
    if discount > values::MAX_CENTS {
        r.reject(f::DISCOUNT, values::too_much_money());
    }
    let currency = r.parse(f::CURRENCY, values::parse_currency).unwrap_or_else(|| "CNY".into());
    let status = r.parse(f::STATUS, values::parse_order_status).unwrap_or("completed");
    let quantity = r
        .parse(f::QUANTITY, |v| match v.parse::<i64>() {
            Ok(q) if q >= 1 => Ok(q),
            _ => Err("quantity must be a whole number ≥ 1".into()),
        })
        .unwrap_or(1);
    let promo = r.parse(f::PROMO, values::parse_bool).unwrap_or(false);
    // Only an otherwise valid row claims its id, as the other kinds do.
    if r.ok && !external_id.is_empty() {
        match seen.get(&external_id) {
            Some(first) => r.reject(f::EXTERNAL_ID, format!("duplicate id in this file (first at row {first})")),
            None => {
                seen.insert(external_id.clone(), rec.row);
            }
        }
    }
    let (true, Some(ordered_at), Some(amount)) = (r.ok && !external_id.is_empty(), ordered_at, amount) else {
        return None;
    };
    Some(OrderIn {
        row: rec.row,
        external_id,
        customer,
        ordered_at,
        amount,
        discount,
        currency,
        channel: r.text(f::CHANNEL),
        store: r.text(f::STORE),
        status,
        category: r.text(f::CATEGORY),
        product: r.text(f::PRODUCT),
        quantity,
        promo,
        ordered_day: i64::from(crate::analytics::business_day(ordered_at, tz)),
    })
}

/// An order ready to write: customer and catalogue resolved.
struct Resolved<'o> {
    o: &'o OrderIn,
    customer_id: i64,
    category_id: Option<i64>,
    product_id: Option<i64>,
    unit_price: i64,
}

/// Per-file state of the PostgreSQL path.
#[derive(Default)]
struct PgState {
    /// Orders whose id exists already, for the staging table.
    copy: Option<CopyRows>,
    staged: u64,
    /// Foreign keys are kept by this load instead of per-row triggers (see the module docs).
    own_checks: bool,
    /// The order id sequence.
    sequence: super::bulk::IdSequence,
    /// `order_keys.external_id` sorts as Rust compares strings ([`Tx::sorts_bytewise`]).
    bytewise: bool,
    /// Order ids the look-ahead reserved and no order took yet.
    spare: std::collections::VecDeque<i64>,
    /// Cleared once a chunk held stored orders: the look-ahead stops reserving an id per row.
    all_new: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// Where a file's load spent its time (`PATRON_LOG=patron_store=debug`).
#[derive(Default)]
struct Timings {
    wait: std::time::Duration,
    resolve: std::time::Duration,
    write: std::time::Duration,
}

/// The valid orders of the reader thread's next message (its rejections go to `rej`), with their
/// customers' ids when the reader thread looked them up; `None` at the end of the file.
#[allow(clippy::type_complexity)]
fn next_rows(msg: Option<Chunk>, rej: &mut Rejections, rows_read: &mut u64) -> Result<Option<(Vec<OrderIn>, Option<Vec<Option<i64>>>)>> {
    match msg {
        Some(Chunk::Rows { rows_read: n, orders, rejections, names, customer_ids }) => {
            *rows_read = n;
            rej.names = names;
            for r in rejections {
                rej.add(r);
            }
            Ok(Some((orders, customer_ids)))
        }
        Some(Chunk::Failed(e)) => Err(e),
        Some(Chunk::End) => Ok(None),
        None => Err(StoreError::Internal("the import reader thread stopped unexpectedly".into())),
    }
}

/// SQLite file: the reader thread's lookup of each chunk's customers, on a read connection of its
/// own. It sees what the import's transaction sees of them: that transaction holds SQLite's one
/// write lock from before the first chunk, so nobody commits a change meanwhile, and the import
/// of orders changes no customer.
struct CustomerLookup {
    conn: crate::db::direct::DirectRead,
    /// Customer external ids found so far → ids.
    known: foldhash::HashMap<String, i64>,
}

impl CustomerLookup {
    /// Per order of `orders`, its customer's id (`None`: unknown or erased).
    fn ids(&mut self, orders: &[OrderIn]) -> Result<Vec<Option<i64>>> {
        resolve_customers_sqlite(&self.conn.raw()?, &mut self.known, orders)?;
        Ok(customer_ids_of(&self.known, orders))
    }
}

/// Per order of `orders`, its customer's id in `known` (`None`: unknown or erased).
fn customer_ids_of(known: &foldhash::HashMap<String, i64>, orders: &[OrderIn]) -> Vec<Option<i64>> {
    // A customer's orders usually come together: one lookup for a run of them.
    let mut last: Option<(&str, Option<i64>)> = None;
    orders
        .iter()
        .map(|o| match last {
            Some((c, id)) if c == o.customer => id,
            _ => {
                let id = known.get(&o.customer).copied();
                last = Some((&o.customer, id));
                id
            }
        })
        .collect()
}

/// SQLite: looks up the chunk's customer ids not in `known` yet, into `known`. An `IN` list of
/// numbered parameters is quadratic for SQLite to prepare, and a probe per id costs two B-tree
/// descents (index, then row) per customer: 0.45 s of a million-order file. Files are usually grouped by
/// customer, so a chunk's new ids tend to be most of the ids in their range: one walk of the
/// `external_id` index over the range, bounded at a few rows per wanted id, resolves those it
/// reaches, and only the ids beyond where it stopped (a scattered chunk) are probed one by
/// one.
fn resolve_customers_sqlite(raw: &SqliteRaw<'_>, known: &mut foldhash::HashMap<String, i64>, orders: &[OrderIn]) -> Result<()> {
    let mut wanted: Vec<&str> = orders.iter().map(|o| o.customer.as_str()).filter(|c| !known.contains_key(*c)).collect();
    // A customer's orders usually come together: most repeats go before the sort.
    wanted.dedup();
    // Bytewise, as SQLite's BINARY collation of the index compares.
    wanted.sort_unstable();
    wanted.dedup();
    // Ids at or below this one were settled by the range walk.
    let mut settled: Option<String> = None;
    if let (Some(lo), Some(hi), true) = (wanted.first(), wanted.last(), wanted.len() >= RANGE_RESOLVE_MIN) {
        let limit = (wanted.len() * RANGE_RESOLVE_ROWS_PER_ID) as i64;
        let mut walk = raw.prepare(&format!(
            "SELECT external_id, {}, {} FROM customers WHERE external_id BETWEEN ?1 AND ?2 ORDER BY external_id LIMIT ?3",
            crate::customers::RESOLVED_CUSTOMER_ID,
            crate::customers::RESOLVABLE_CUSTOMER
        ))?;
        walk.text(1, Some(lo))?;
        walk.text(2, Some(hi))?;
        walk.int(3, Some(limit))?;
        let want: foldhash::HashSet<&str> = wanted.iter().copied().collect();
        let mut rows = 0i64;
        let mut last: Option<String> = None;
        while walk.step()? {
            rows += 1;
            let (id, resolvable) = (walk.column_int(1), walk.column_int(2) != 0);
            let Some(ext) = walk.column_str(0) else { continue };
            if resolvable && want.contains(ext) {
                known.insert(ext.to_owned(), id);
            }
            if rows == limit {
                last = Some(ext.to_owned());
            }
        }
        // Short of the limit: the walk reached the end of the range.
        settled = if rows < limit { Some((*hi).to_owned()) } else { last };
    }
    let mut find = raw.prepare(&format!(
        "SELECT {} FROM customers WHERE external_id = ?1 AND {}",
        crate::customers::RESOLVED_CUSTOMER_ID,
        crate::customers::RESOLVABLE_CUSTOMER
    ))?;
    for c in wanted {
        if settled.as_deref().is_some_and(|s| c <= s) {
            continue;
        }
        find.text(1, Some(c))?;
        if find.step()? {
            known.insert(c.to_owned(), find.column_int(0));
        }
        find.reset();
    }
    // Bound the cache, as `resolve_customers` does.
    if known.len() > 2_000_000 {
        known.clear();
    }
    Ok(())
}

/// The chunk's orders with their ids: `ids` gives an order's (customer, category, product) ids,
/// `None` for an unknown customer, whose row is rejected.
fn resolved<'o>(
    orders: &'o [OrderIn],
    rej: &mut Rejections,
    mut ids: impl FnMut(usize, &'o OrderIn) -> Result<Option<(i64, Option<i64>, Option<i64>)>>,
) -> Result<Vec<Resolved<'o>>> {
    let mut out = Vec::with_capacity(orders.len());
    for (i, o) in orders.iter().enumerate() {
        let Some((customer_id, category_id, product_id)) = ids(i, o)? else {
            let column = rej.names[f::CUSTOMER_ID].clone();
            rej.add(Rejection {
                row: o.row,
                column,
                value: o.customer.clone(),
                reason: "unknown customer (import customers first)".into(),
            });
            continue;
        };
        let unit_price = (o.amount + o.discount) / o.quantity;
        out.push(Resolved { o, customer_id, category_id, product_id, unit_price });
    }
    Ok(out)
}

/// PostgreSQL: a chunk from the reader thread with what the look-ahead found for it.
struct Ahead {
    /// The reader thread's message (`None`: the thread stopped without one).
    chunk: Option<Chunk>,
    /// Per order: its customer's id, `None` for an unknown customer.
    customer_ids: Vec<Option<i64>>,
    /// The distinct (category, product) names of orders with a known customer, and per order
    /// the index of its pair (unused for an unknown customer).
    pairs: Vec<(Option<String>, Option<String>)>,
    pair_of: Vec<u32>,
    /// Order ids reserved for the chunk's rows.
    ids: Vec<i64>,
}

/// PostgreSQL: looks up the customers a chunk names and reserves its order ids, on a pool
/// connection outside the import's transaction, a chunk ahead of the writer. Both are safe
/// there: a customer found is locked (or checked by its trigger) when its orders are written,
/// and reserved ids are only ever used once, whatever happens to the transaction.
struct LookAhead {
    db: crate::db::Db,
    chunks: mpsc::Receiver<Chunk>,
    out: mpsc::Sender<Result<Ahead>>,
    all_new: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl LookAhead {
    async fn run(mut self) {
        let mut conn = match self.db.read_conn().await {
            Ok(c) => c,
            Err(e) => {
                let _ = self.out.send(Err(e)).await;
                return;
            }
        };
        let mut known: foldhash::HashMap<String, Option<i64>> = Default::default();
        let mut sequence = super::bulk::IdSequence::default();
        loop {
            let chunk = self.chunks.recv().await;
            let last = !matches!(chunk, Some(Chunk::Rows { .. }));
            let next = match &chunk {
                Some(Chunk::Rows { orders, .. }) => self.prepare(&mut conn, &mut known, &mut sequence, orders).await,
                _ => Ok(Ahead { chunk: None, customer_ids: Vec::new(), pairs: Vec::new(), pair_of: Vec::new(), ids: Vec::new() }),
            };
            let next = next.map(|a| Ahead { chunk, ..a });
            let failed = next.is_err();
            if self.out.send(next).await.is_err() || last || failed {
                return;
            }
        }
    }

    /// Looks up a chunk's customers and catalogue name pairs (so that the writer hashes no
    /// name: a million orders' lookups were 0.2 s of its time between COPYs) and reserves ids.
    async fn prepare(
        &self,
        conn: &mut ReadConn,
        known: &mut foldhash::HashMap<String, Option<i64>>,
        sequence: &mut super::bulk::IdSequence,
        orders: &[OrderIn],
    ) -> Result<Ahead> {
        // Bound the memory of a file naming very many customers (as `Loader::resolve_customers`).
        if known.len() > 2_000_000 {
            known.clear();
        }
        let mut wanted: Vec<&str> = orders.iter().map(|o| o.customer.as_str()).filter(|c| !known.contains_key(*c)).collect();
        wanted.sort_unstable();
        wanted.dedup();
        // Unknown ones too, as `None`: their rows are rejected, not looked up again.
        let mut found: foldhash::HashMap<String, i64> = Default::default();
        for part in wanted.chunks(super::FIND_CUSTOMERS_AT_ONCE) {
            found.extend(conn.fetch_all::<(String, i64)>(super::find_customers(Engine::Postgres, part)).await?);
        }
        for w in wanted {
            let id = found.get(w).copied();
            known.insert(w.to_owned(), id);
        }
        let mut customer_ids = Vec::with_capacity(orders.len());
        let mut pair_index: foldhash::HashMap<(Option<&str>, Option<&str>), u32> = Default::default();
        let mut pairs = Vec::new();
        let mut pair_of = Vec::with_capacity(orders.len());
        // A customer's orders usually come together: one lookup for a run of them.
        let mut last: Option<(&str, Option<i64>)> = None;
        for o in orders {
            let id = match last {
                Some((c, id)) if c == o.customer => id,
                _ => known.get(&o.customer).copied().flatten(),
            };
            last = Some((&o.customer, id));
            customer_ids.push(id);
            if id.is_none() {
                pair_of.push(u32::MAX);
                continue;
            }
            let names = (o.category.as_deref(), o.product.as_deref());
            let at = *pair_index.entry(names).or_insert_with(|| {
                pairs.push((names.0.map(str::to_owned), names.1.map(str::to_owned)));
                (pairs.len() - 1) as u32
            });
            pair_of.push(at);
        }
        let ids = if self.all_new.load(std::sync::atomic::Ordering::Relaxed) && !orders.is_empty() {
            sequence.reserve_on(conn, "orders", orders.len()).await?
        } else {
            Vec::new()
        };
        Ok(Ahead { chunk: None, customer_ids, pairs, pair_of, ids })
    }
}

/// Aborts a task when dropped (the writer returned early: nothing waits for its look-ahead).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Loader {
    /// Reads, validates and writes a whole orders file; returns the data rows read. The merge
    /// that PostgreSQL defers to the end of the file runs here too; the summaries are refreshed
    /// in [`Loader::finish`].
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn load_order_file(
        &mut self,
        db: &crate::db::Db,
        tx: &mut Tx,
        src: Source,
        opts: &ImportOptions,
        rej: &mut Rejections,
        counts: &mut super::Counts,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<u64> {
        let (tz, now) = (self.tz, self.now);
        let engine = tx.engine();
        let mut pg = PgState::default();
        // Catalogue names new to the database are written as they turn up, after other chunks'
        // orders went into every shard.
        tx.one_connection_per_node().await?;
        if engine == Engine::Postgres {
            pg.own_checks = tx.fk_triggers(false).await?;
            pg.bytewise = tx.sorts_bytewise("order_keys", "external_id").await?;
        }
        let reader = std::thread::Builder::new().name("patron-import-read".into());
        let no_reader = |e: std::io::Error| StoreError::Internal(format!("cannot start the reader thread: {e}"));
        let mut rows_read = 0u64;
        let started = std::time::Instant::now();
        let mut t = Timings::default();
        let (spent, spent_recv) = std::sync::mpsc::channel();
        match engine {
            Engine::Sqlite => {
                // The whole file on the transaction's connection, taken once and kept on this
                // thread: each hand-over from sqlx's worker thread cost about a millisecond on a
                // busy 2-core machine (0.2 s of a million orders when taken twice a chunk). So the
                // chunks come through a blocking channel.
                let (send, recv) = std::sync::mpsc::sync_channel(AHEAD);
                // On a file, the reader thread also looks up the customers, on a read connection
                // of its own (a tenth of the writer's time, where the reader thread had room).
                let lookup = db.sqlite_direct_read()?.map(|conn| CustomerLookup { conn, known: Default::default() });
                reader.spawn(move || read_orders(src, tz, now, spent_recv, lookup, |c| send.send(c).is_ok())).map_err(no_reader)?;
                let raw = tx.sqlite_raw().await?;
                off_the_workers(|| -> Result<()> {
                    // Pages go through the connection's cache: no connection maps the file
                    // ([`crate::db::SQLITE_MMAP_SIZE`]), and mapping the growing file had cost
                    // the load a tenth of its time (the sqlite3 shell's own load of the same
                    // rows: 6.1 s without a map, 6.7-7.0 s with one).
                    self.load_chunks_sqlite(&raw, &recv, &spent, opts, rej, counts, progress, &mut rows_read, &mut t)
                })?;
            }
            Engine::Postgres => {
                let (send, recv) = mpsc::channel(AHEAD);
                reader.spawn(move || read_orders(src, tz, now, spent_recv, None, |c| send.blocking_send(c).is_ok())).map_err(no_reader)?;
                // Customers looked up and order ids reserved a chunk ahead, on a connection of
                // their own, while the transaction writes the chunk before (they were 1 s of a
                // million orders' 10, with the server otherwise idle).
                let (ready_send, mut ready) = mpsc::channel(1);
                pg.all_new.store(!opts.dry_run, std::sync::atomic::Ordering::Relaxed);
                let ahead = LookAhead { db: db.clone(), chunks: recv, out: ready_send, all_new: pg.all_new.clone() };
                let _ahead = AbortOnDrop(tokio::spawn(ahead.run()));
                loop {
                    let t0 = std::time::Instant::now();
                    let next = ready.recv().await;
                    t.wait += t0.elapsed();
                    let Some(next) = next else {
                        return Err(StoreError::Internal("the import look-ahead stopped unexpectedly".into()));
                    };
                    let Ahead { chunk, customer_ids, pairs, pair_of, ids } = next?;
                    let Some((orders, _)) = next_rows(chunk, rej, &mut rows_read)? else { break };
                    let t1 = std::time::Instant::now();
                    pg.spare.extend(ids);
                    // (Names only of rows that will be written: a rejected row adds nothing.)
                    let mut pair_ids = Vec::with_capacity(pairs.len());
                    for (category, product) in &pairs {
                        pair_ids.push(match self.catalog.cached(category.as_deref(), product.as_deref()) {
                            Some(found) => found,
                            None => self.catalog.resolve(tx, category.as_deref(), product.as_deref()).await?,
                        });
                    }
                    let rows = resolved(&orders, rej, |i, _| {
                        let Some(customer_id) = customer_ids.get(i).copied().flatten() else { return Ok(None) };
                        let (category_id, product_id) = pair_of
                            .get(i)
                            .and_then(|&p| pair_ids.get(p as usize))
                            .copied()
                            .ok_or_else(|| StoreError::Internal("the look-ahead gave an order no catalogue pair".into()))?;
                        Ok(Some((customer_id, category_id, product_id)))
                    })?;
                    t.resolve += t1.elapsed();
                    let t2 = std::time::Instant::now();
                    let write = !opts.dry_run && (opts.skip_invalid || rej.count == 0);
                    self.write_pg(tx, &rows, write, &mut pg, counts).await?;
                    t.write += t2.elapsed();
                    drop(rows);
                    // (A reader that has stopped needs no room.)
                    let _ = spent.send(orders);
                    progress(rows_read);
                }
            }
        }
        let read_ms = started.elapsed().as_millis() as u64;
        if engine == Engine::Postgres {
            let own_checks = pg.own_checks;
            self.merge_pg(tx, opts, rej, counts, pg).await?;
            self.customers_locked = own_checks;
            if own_checks {
                // The summaries and anything after the load run with the triggers again.
                tx.fk_triggers(true).await?;
            }
        }
        tracing::debug!(
            wait_ms = t.wait.as_millis() as u64,
            resolve_ms = t.resolve.as_millis() as u64,
            write_ms = t.write.as_millis() as u64,
            read_ms,
            merge_ms = started.elapsed().as_millis() as u64 - read_ms,
            "orders loaded"
        );
        Ok(rows_read)
    }

    /// SQLite: resolves and writes every chunk the reader thread sends, on the transaction's
    /// connection; returns after the last.
    #[allow(clippy::too_many_arguments)]
    fn load_chunks_sqlite(
        &mut self,
        raw: &SqliteRaw<'_>,
        recv: &std::sync::mpsc::Receiver<Chunk>,
        spent: &std::sync::mpsc::Sender<Vec<OrderIn>>,
        opts: &ImportOptions,
        rej: &mut Rejections,
        counts: &mut super::Counts,
        progress: &(dyn Fn(u64) + Send + Sync),
        rows_read: &mut u64,
        t: &mut Timings,
    ) -> Result<()> {
        loop {
            let t0 = std::time::Instant::now();
            let msg = recv.recv().ok();
            t.wait += t0.elapsed();
            let Some((orders, customer_ids)) = next_rows(msg, rej, rows_read)? else { return Ok(()) };
            let t1 = std::time::Instant::now();
            // Found by the reader thread, or else here (an in-memory database).
            let customer_ids = match customer_ids {
                Some(ids) => ids,
                None => {
                    resolve_customers_sqlite(raw, &mut self.customers, &orders)?;
                    customer_ids_of(&self.customers, &orders)
                }
            };
            let catalog = &mut self.catalog;
            let rows = resolved(&orders, rej, |i, o| {
                let Some(customer_id) = customer_ids.get(i).copied().flatten() else { return Ok(None) };
                let (category_id, product_id) = match catalog.cached(o.category.as_deref(), o.product.as_deref()) {
                    Some(ids) => ids,
                    None => catalog.resolve_raw(raw, o.category.as_deref(), o.product.as_deref())?,
                };
                Ok(Some((customer_id, category_id, product_id)))
            })?;
            t.resolve += t1.elapsed();
            let t2 = std::time::Instant::now();
            // Once the file is certain to roll back, only look ids up (for the report); writing
            // would be thrown away.
            let write = !opts.dry_run && (opts.skip_invalid || rej.count == 0);
            self.merge_sqlite(raw, &rows, write, rej, counts)?;
            t.write += t2.elapsed();
            drop(rows);
            // (A reader that has stopped needs no room.)
            let _ = spent.send(orders);
            progress(*rows_read);
        }
    }

    /// SQLite: stages one chunk with prepared multi-row inserts, then checks and merges it with
    /// the set statements PostgreSQL runs once per file (see the module docs).
    fn merge_sqlite(
        &mut self,
        raw: &SqliteRaw<'_>,
        rows: &[Resolved<'_>],
        write: bool,
        rej: &mut Rejections,
        counts: &mut super::Counts,
    ) -> Result<()> {
        if self.insert_new_sqlite(raw, rows, write, counts)? {
            return Ok(());
        }
        let names: Vec<&str> = ORDER_STAGE.columns.iter().map(|c| c.0).collect();
        insert_rows(raw, ORDER_STAGE.name, &names, rows, |c, r| stage_cells(c, r))?;
        let mut moved_rows = HashSet::new();
        {
            let mut moved = raw.prepare(MOVED_SQL)?;
            while moved.step()? {
                moved_rows.insert(moved.column_int(0));
            }
        }
        if !moved_rows.is_empty() {
            let mut del = raw.prepare("DELETE FROM patron_stage_orders WHERE row_no = ?1")?;
            for r in rows.iter().filter(|r| moved_rows.contains(&(r.o.row as i64))) {
                let column = rej.names[f::EXTERNAL_ID].clone();
                rej.add(Rejection { row: r.o.row, column, value: r.o.external_id.clone(), reason: MOVED_REASON.into() });
                del.int(1, Some(r.o.row as i64))?;
                del.exec()?;
            }
        }
        let existing = {
            let mut q = raw.prepare(EXISTING_SQL)?;
            if q.step()? {
                q.column_int(0).max(0) as u64
            } else {
                0
            }
        };
        let staged = (rows.len() - moved_rows.len()) as u64;
        let changed = if existing == 0 {
            0
        } else {
            let mut q = raw.prepare(CHANGED_SQL)?;
            if q.step()? {
                q.column_int(0).max(0) as u64
            } else {
                existing
            }
        };
        counts.updated += changed;
        counts.unchanged += existing.saturating_sub(changed);
        counts.created += staged.saturating_sub(existing);
        if write {
            // Orders changed or added through the merge: the summaries come from the aggregation.
            self.new_summaries.give_up();
            let (orders_sql, lines_sql) = merge_sql(existing);
            raw.execute(orders_sql)?;
            raw.execute(lines_sql)?;
            for r in rows.iter().filter(|r| !moved_rows.contains(&(r.o.row as i64))) {
                self.touched.insert(r.customer_id);
            }
        }
        raw.execute("DELETE FROM patron_stage_orders")?;
        Ok(())
    }

    /// SQLite: when no stored order id falls within the chunk's range of ids (the usual first
    /// load), inserts the chunk straight into `orders` and `order_lines`, skipping the stage and
    /// the merge, and returns true; otherwise returns false and writes nothing. Ids count on from
    /// the largest: the transaction holds SQLite's only write lock.
    fn insert_new_sqlite(&mut self, raw: &SqliteRaw<'_>, rows: &[Resolved<'_>], write: bool, counts: &mut super::Counts) -> Result<bool> {
        let ids = || rows.iter().map(|r| r.o.external_id.as_str());
        // Text compares bytewise in SQLite (BINARY collation), as `str` does.
        let (Some(lo), Some(hi)) = (ids().min(), ids().max()) else { return Ok(true) };
        let mut probe =
            raw.prepare("SELECT EXISTS (SELECT 1 FROM orders WHERE external_id BETWEEN ?1 AND ?2), COALESCE(MAX(id), 0) FROM orders")?;
        probe.text(1, Some(lo))?;
        probe.text(2, Some(hi))?;
        let (overlaps, last_id) = if probe.step()? { (probe.column_int(0) != 0, probe.column_int(1)) } else { (true, 0) };
        drop(probe);
        if overlaps {
            return Ok(false);
        }
        counts.created += rows.len() as u64;
        if !write {
            return Ok(true);
        }
        let numbered: Vec<(i64, &Resolved<'_>)> = (last_id + 1..).zip(rows).collect();
        insert_rows(raw, "orders", &NEW_ORDER_COLUMNS, &numbered, |c, (id, r)| new_order_cells(c, *id, r))?;
        insert_rows(raw, "order_lines", &NEW_LINE_COLUMNS, &numbered, |c, (id, r)| new_line_cells(c, *id, r))?;
        self.touched.extend(rows.iter().map(|r| r.customer_id));
        self.add_new_summaries(rows.iter());
        Ok(true)
    }

    /// Counts new orders, as written, into the summaries of customers new to buying.
    fn add_new_summaries<'r, 'o: 'r>(&mut self, rows: impl Iterator<Item = &'r Resolved<'o>>) {
        for r in rows {
            self.new_summaries.add(r.customer_id, r.o.status, r.o.ordered_day, r.o.amount, r.o.ordered_at);
        }
    }

    /// PostgreSQL: writes one chunk. New orders are COPYed into `orders` and `order_lines`
    /// with ids reserved from the sequence; orders whose id exists already are COPYed into the
    /// staging table for [`Loader::merge_pg`]. `write` false (the file rolls back anyway):
    /// new orders are only counted.
    async fn write_pg(
        &mut self,
        tx: &mut Tx,
        rows: &[Resolved<'_>],
        write: bool,
        pg: &mut PgState,
        counts: &mut super::Counts,
    ) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let ids = || serde_json::Value::Array(rows.iter().map(|r| serde_json::Value::String(r.o.external_id.clone())).collect());
        // A file of new orders usually has ids in a range no stored order falls into; one range
        // probe (bounds in the database's collation) then saves an index probe per order.
        // (The key table knows every order id, in whichever shard its order is on Citus.)
        let (overlaps,): (bool,) = if pg.bytewise {
            // The bounds found here: the server parsing a JSON list of 8,192 ids twice per chunk
            // was 0.8 s of a million orders.
            let (mut lo, mut hi) = (rows[0].o.external_id.as_str(), rows[0].o.external_id.as_str());
            for r in &rows[1..] {
                let id = r.o.external_id.as_str();
                lo = lo.min(id);
                hi = hi.max(id);
            }
            tx.fetch_one(query("SELECT EXISTS (SELECT 1 FROM order_keys WHERE external_id BETWEEN $1 AND $2)").bind(lo).bind(hi)).await?
        } else {
            tx.fetch_one(
                query(
                    "SELECT EXISTS (SELECT 1 FROM order_keys WHERE external_id BETWEEN \
                     (SELECT MIN(e) FROM jsonb_array_elements_text($1) AS e) AND (SELECT MAX(e) FROM jsonb_array_elements_text($1) AS e))",
                )
                .bind(ids()),
            )
            .await?
        };
        let existing: HashSet<String> = if overlaps {
            let found: Vec<(String,)> = tx
                .fetch_all(
                    query(format!("SELECT external_id FROM order_keys WHERE external_id IN ({})", Engine::Postgres.json_strings(1)))
                        .bind(ids()),
                )
                .await?;
            found.into_iter().map(|(e,)| e).collect()
        } else {
            HashSet::new()
        };
        if pg.own_checks && write {
            // Each customer and catalogue row referred to, locked once per file.
            super::lock_keys(tx, "customers", rows.iter().map(|r| r.customer_id), &mut self.locked).await?;
            super::lock_keys(tx, "products", rows.iter().filter_map(|r| r.product_id), &mut self.locked).await?;
            super::lock_keys(tx, "categories", rows.iter().filter_map(|r| r.category_id), &mut self.locked).await?;
        }
        if !write || !existing.is_empty() {
            // Ids for every row would go unused from here on.
            pg.all_new.store(false, std::sync::atomic::Ordering::Relaxed);
        }
        let fresh = rows.len() - existing.len();
        counts.created += fresh as u64;
        if write && fresh > 0 {
            let mut reserved: Vec<i64> = pg.spare.drain(..fresh.min(pg.spare.len())).collect();
            if reserved.len() < fresh {
                reserved.extend(pg.sequence.reserve(tx, "orders", fresh - reserved.len()).await?);
            }
            let new_rows: Vec<(i64, &Resolved<'_>)> =
                reserved.into_iter().zip(rows.iter().filter(|r| !existing.contains(&r.o.external_id))).collect();
            copy_rows(tx, "orders", &NEW_ORDER_COLUMNS, &new_rows, |c, (id, r)| new_order_cells(c, *id, r)).await?;
            copy_rows(tx, "order_lines", &NEW_LINE_COLUMNS, &new_rows, |c, (id, r)| new_line_cells(c, *id, r)).await?;
            // Their ids in the key table (see `crate::keys`): a concurrent load of the same new
            // id fails here, and the whole file with it.
            let (summaries, touched) = (&mut self.new_summaries, &mut self.touched);
            copy_rows(tx, "order_keys", &["external_id", "customer_id", "order_id"], &new_rows, |c, (id, r)| {
                c.text(Some(&r.o.external_id));
                c.int(Some(r.customer_id));
                c.int(Some(*id));
                // The new orders counted here, while the server takes in the slice before.
                summaries.add(r.customer_id, r.o.status, r.o.ordered_day, r.o.amount, r.o.ordered_at);
                touched.insert(r.customer_id);
                Ok(())
            })
            .await?;
        }
        if write && !existing.is_empty() {
            // Merged at the end: the summaries come from the aggregation.
            self.new_summaries.give_up();
        }
        let copy = pg.copy.get_or_insert_with(CopyRows::new);
        for r in rows.iter().filter(|r| existing.contains(&r.o.external_id)) {
            stage_cells(copy, r)?;
            copy.end_row();
        }
        if write && !existing.is_empty() {
            // (New orders' customers were counted as their keys were written.)
            self.touched.extend(rows.iter().filter(|r| existing.contains(&r.o.external_id)).map(|r| r.customer_id));
        }
        pg.staged += existing.len() as u64;
        if copy.rows() > 0 {
            let names: Vec<&str> = ORDER_STAGE.columns.iter().map(|c| c.0).collect();
            tx.copy_in(&format!("COPY {} ({}) FROM STDIN", ORDER_STAGE.name, names.join(", ")), copy.take()).await?;
        }
        Ok(())
    }

    /// PostgreSQL: checks and merges the whole stage (see the module docs).
    async fn merge_pg(
        &mut self,
        tx: &mut Tx,
        opts: &ImportOptions,
        rej: &mut Rejections,
        counts: &mut super::Counts,
        pg: PgState,
    ) -> Result<()> {
        if pg.staged == 0 {
            return Ok(());
        }
        // Temporary tables get no statistics from autovacuum.
        tx.execute(query(format!("ANALYZE {}", ORDER_STAGE.name))).await?;
        let t0 = std::time::Instant::now();
        let moved: Vec<(i64, String)> = tx.fetch_all(query(MOVED_SQL)).await?;
        let t_moved = t0.elapsed();
        for chunk in moved.chunks(1000) {
            let list: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let mut del = query(format!("DELETE FROM patron_stage_orders WHERE row_no IN ({})", list.join(", ")));
            for (row_no, _) in chunk {
                del.push(*row_no);
            }
            tx.execute(del).await?;
        }
        for (row_no, ext) in moved.iter() {
            let column = rej.names[f::EXTERNAL_ID].clone();
            rej.add(Rejection { row: *row_no as u64, column, value: ext.clone(), reason: MOVED_REASON.into() });
        }
        let (existing,): (i64,) = tx.fetch_one(query(EXISTING_SQL)).await?;
        let staged = pg.staged.saturating_sub(moved.len() as u64);
        let existing = existing.max(0) as u64;
        let (changed,): (i64,) = if existing == 0 { (0,) } else { tx.fetch_one(query(CHANGED_SQL)).await? };
        let changed = changed.max(0) as u64;
        counts.updated += changed;
        counts.unchanged += existing.saturating_sub(changed);
        // Staged orders existed when their chunk was probed; the rest were written directly.
        counts.created += staged.saturating_sub(existing);
        if opts.dry_run || (rej.count > 0 && !opts.skip_invalid) {
            // Rolled back anyway: the counts above are the report.
            return Ok(());
        }
        let t_check = t0.elapsed();
        let (orders_sql, lines_sql) = merge_sql(existing);
        tx.execute(query(orders_sql)).await?;
        let t_orders = t0.elapsed();
        tx.execute(query(lines_sql)).await?;
        tracing::debug!(
            moved_ms = t_moved.as_millis() as u64,
            check_ms = t_check.as_millis() as u64,
            orders_ms = (t_orders - t_check).as_millis() as u64,
            lines_ms = (t0.elapsed() - t_orders).as_millis() as u64,
            "orders merged"
        );
        Ok(())
    }
}
