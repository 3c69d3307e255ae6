//! What an analysis run reads: the live customers, and one pass over their completed orders
//! with every line that gives the models their orders (amount, day, the main line's category,
//! full price or not), the next best action its baskets (the categories each customer bought)
//! and the cost to serve its period's revenue and margin. At 1 M customers / 9 M orders, one
//! pass instead of three (one per consumer, each joining the lines again) is most of what a
//! database analysis saves (issue 15 §5). PostgreSQL joins the lines to their orders; SQLite
//! reads the orders and then the lines, each table in its own key's order, and the pass puts
//! each line with its order.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use patron_analytics::{CustomerExtras, Orders};

use super::{day_date, AnalysisInput};
use crate::cost_to_serve::{period, CostSettings};
use crate::db::query;
use crate::{Result, Store, StoreError};

/// One row of the pass: an order with one of its lines (the line's columns empty for an order
/// without lines): customer, order, day, total, discount, line number, the line's category,
/// its product, promotion (0/1) and list value (quantity × unit price).
type ScanRow = (i64, i64, i64, i64, i64, Option<i64>, Option<i64>, Option<i64>, i64, Option<i64>);

/// SQLite: the completed orders up to `$1`, by id (the table's own order). Joining each order's
/// lines in SQL looked every one of them up in the lines' key, which starts with the customer:
/// 7.7 s for 9 M orders in the sqlite3 shell, against 1.9 s for the orders and 2.0 s for the
/// lines each read in key order.
const SQLITE_ORDERS_SQL: &str = "SELECT id, customer_id, ordered_day, total_cents, discount_cents FROM orders \
     WHERE status = 'completed' AND ordered_day <= $1 ORDER BY id";

/// SQLite: every order line in key order (customer, order, line number), so that an order's
/// lines come together and by number.
const SQLITE_LINES_SQL: &str = "SELECT customer_id, order_id, line_no, category_id, product_id, CASE WHEN promo THEN 1 ELSE 0 END, \
     quantity * unit_price_cents FROM order_lines ORDER BY customer_id, order_id, line_no";

/// A row of [`SQLITE_ORDERS_SQL`]: order, customer, day, total, discount.
type OrderRow = (i64, i64, i64, i64, i64);

/// A row of [`SQLITE_LINES_SQL`]: customer, order, line number, category, product, promotion
/// (0/1) and list value.
type LineRow = (i64, i64, i64, Option<i64>, Option<i64>, i64, Option<i64>);

/// PostgreSQL: completed orders up to `day` with their lines, for the customers in `(low, high]`
/// (both tables' keys start with the customer, so each side reads only its range), by customer
/// and order: the order of both primary keys, which a merge join reads without a sort. (Pages of
/// order ids cost a scan of every order per page: no index there starts with the order id,
/// which Citus's keys start with the customer.) The values are written into the statement, as
/// COPY takes no binds; they are numbers. The bounds are cast from text, which holds `i64::MIN`
/// (a bare `-9223372036854775808` would be a numeric, and the key compared as one).
fn pg_scan_sql(day: i32, low: i64, high: i64) -> String {
    let (low, high) = (format!("CAST('{low}' AS BIGINT)"), format!("CAST('{high}' AS BIGINT)"));
    format!(
        "SELECT o.customer_id, o.id, o.ordered_day, o.total_cents, o.discount_cents, CAST(l.line_no AS BIGINT), \
         l.category_id, l.product_id, CAST(CASE WHEN l.promo THEN 1 ELSE 0 END AS BIGINT), l.quantity * l.unit_price_cents \
         FROM orders o LEFT JOIN order_lines l ON l.customer_id = o.customer_id AND l.order_id = o.id \
         AND l.customer_id > {low} AND l.customer_id <= {high} \
         WHERE o.status = 'completed' AND o.ordered_day <= {day} AND o.customer_id > {low} AND o.customer_id <= {high} \
         ORDER BY o.customer_id, o.id"
    )
}

/// A row of [`pg_scan_sql`] as the scan takes it.
fn pg_scan_row(r: &crate::db::CopyRow<'_>) -> Result<ScanRow> {
    Ok((
        r.required_int(0)?,
        r.required_int(1)?,
        r.required_int(2)?,
        r.required_int(3)?,
        r.required_int(4)?,
        r.int(5)?,
        r.int(6)?,
        r.int(7)?,
        r.required_int(8)?,
        r.int(9)?,
    ))
}

/// Customer id → position in the run's customers: a table when the ids are dense (as
/// sequences make them: one lookup per order of millions), a hash map otherwise.
enum CustomerIndex {
    Dense { first: i64, slots: Vec<u32> },
    Sparse(HashMap<i64, u32>),
}

impl CustomerIndex {
    /// The index of `ids` (ascending).
    fn new(ids: &[i64]) -> CustomerIndex {
        if let (Some(&first), Some(&last)) = (ids.first(), ids.last()) {
            let span = u64::try_from(i128::from(last) - i128::from(first) + 1).unwrap_or(u64::MAX);
            if span <= (ids.len() as u64).saturating_mul(4).max(1024) {
                let mut slots = vec![u32::MAX; span as usize];
                for (i, id) in ids.iter().enumerate() {
                    slots[(id - first) as usize] = i as u32;
                }
                return CustomerIndex::Dense { first, slots };
            }
        }
        CustomerIndex::Sparse(ids.iter().enumerate().map(|(i, id)| (*id, i as u32)).collect())
    }

    fn get(&self, id: i64) -> Option<u32> {
        match self {
            CustomerIndex::Dense { first, slots } => {
                let slot = id.checked_sub(*first).and_then(|d| usize::try_from(d).ok())?;
                slots.get(slot).copied().filter(|&i| i != u32::MAX)
            }
            CustomerIndex::Sparse(map) => map.get(&id).copied(),
        }
    }
}

/// Order id → position in the pass's orders, filled in id order: a table while the ids are
/// dense (as a sequence makes them), a hash map once they are not.
enum OrderPositions {
    Dense { first: i64, slots: Vec<u32> },
    Sparse(HashMap<i64, u32>),
}

impl OrderPositions {
    fn insert(&mut self, id: i64, position: u32) {
        if let OrderPositions::Dense { first, slots } = self {
            if slots.is_empty() {
                *first = id;
            }
            let slot = id.checked_sub(*first).and_then(|d| usize::try_from(d).ok());
            // A table at most four times as long as the orders it holds (and 1 M slots).
            let bound = (position as usize).saturating_add(1).saturating_mul(4).max(1 << 20);
            match slot {
                Some(slot) if slot < bound => {
                    if slot >= slots.len() {
                        slots.resize(slot + 1, u32::MAX);
                    }
                    slots[slot] = position;
                    return;
                }
                _ => {
                    let first = *first;
                    let map = slots.iter().enumerate().filter(|(_, p)| **p != u32::MAX).map(|(i, p)| (first + i as i64, *p)).collect();
                    *self = OrderPositions::Sparse(map);
                }
            }
        }
        if let OrderPositions::Sparse(map) = self {
            map.insert(id, position);
        }
    }

    fn get(&self, id: i64) -> Option<u32> {
        match self {
            OrderPositions::Dense { first, slots } => {
                let slot = id.checked_sub(*first).and_then(|d| usize::try_from(d).ok())?;
                slots.get(slot).copied().filter(|&p| p != u32::MAX)
            }
            OrderPositions::Sparse(map) => map.get(&id).copied(),
        }
    }
}

/// The order being put together from its lines.
struct Current {
    /// Customer index; `None` for a customer deleted since (the order is left out).
    customer: Option<u32>,
    id: i64,
    day: i32,
    total: i64,
    discount: i64,
    /// Line 1's category and promotion: the order's category and full price for the models.
    main: Option<(Option<i64>, bool)>,
}

/// What every pass over the orders looks values up in (shared by PostgreSQL's two passes).
#[derive(Clone, Copy)]
struct ScanContext<'a> {
    index: &'a CustomerIndex,
    settings: &'a CostSettings,
    category_names: &'a HashMap<i64, String>,
    /// Product → category, for lines without a category of their own (looked up here rather
    /// than joined: a join probed `products` once per line, 0.6 s of SQLite's 4.1 s at 9 M).
    product_categories: &'a HashMap<i64, i64>,
    /// The cost-to-serve period, first and last day (inclusive).
    period: (i32, i32),
}

/// The pass's state: what each consumer gets, filled order by order.
struct OrderScan<'a> {
    ctx: ScanContext<'a>,
    orders: Orders,
    baskets: Vec<Vec<u32>>,
    period_sales: Vec<Option<(i64, i64)>>,
    current: Option<Current>,
    /// (line number, category, list value) of the current order's lines with a value: the
    /// margin's split (one buffer for every order).
    parts: Vec<(i64, Option<i64>, i64)>,
    /// The same by category name, for the margin.
    named: Vec<(Option<&'a str>, i64)>,
    /// SQLite's two scans: where each order read went in `orders`, whether its lines came, and
    /// the order whose lines are being read.
    positions: OrderPositions,
    lined: Vec<bool>,
    lines_of: Option<u32>,
}

impl<'a> OrderScan<'a> {
    /// An empty pass over the orders of `n` customers.
    fn new(ctx: ScanContext<'a>, n: usize) -> Self {
        OrderScan {
            ctx,
            orders: Orders::default(),
            baskets: vec![Vec::new(); n],
            period_sales: vec![None; n],
            current: None,
            parts: Vec::new(),
            named: Vec::new(),
            positions: OrderPositions::Dense { first: 0, slots: Vec::new() },
            lined: Vec::new(),
            lines_of: None,
        }
    }

    /// Adds the finished pass `other` over later customers: its orders after these, its
    /// customers' baskets and period sales to theirs.
    fn absorb(&mut self, other: OrderScan<'a>) {
        // Every column named, so that a column added to `Orders` cannot be left out here.
        let Orders { customer, day, amount_cents, category, full_price } = other.orders;
        self.orders.customer.extend(customer);
        self.orders.day.extend(day);
        self.orders.amount_cents.extend(amount_cents);
        self.orders.category.extend(category);
        self.orders.full_price.extend(full_price);
        for (mine, theirs) in self.baskets.iter_mut().zip(other.baskets) {
            mine.extend(theirs);
        }
        for (mine, theirs) in self.period_sales.iter_mut().zip(other.period_sales) {
            if let Some((revenue, margin)) = theirs {
                let m = mine.get_or_insert((0, 0));
                m.0 = m.0.saturating_add(revenue);
                m.1 = m.1.saturating_add(margin);
            }
        }
    }

    fn row(&mut self, (customer_id, order_id, day, total, discount, line_no, line_category, product, promo, value): ScanRow) -> Result<()> {
        if self.current.as_ref().is_none_or(|o| o.id != order_id) {
            self.finish_order();
            let day = i32::try_from(day).map_err(|_| StoreError::Internal(format!("order day {day} out of range")))?;
            self.current = Some(Current { customer: self.ctx.index.get(customer_id), id: order_id, day, total, discount, main: None });
            self.parts.clear();
        }
        let Some(o) = self.current.as_mut() else { return Ok(()) };
        let (Some(c), Some(line_no)) = (o.customer, line_no) else { return Ok(()) };
        let product_category = || product.and_then(|p| self.ctx.product_categories.get(&p).copied());
        if let Some(category) = line_category.or_else(product_category).and_then(|v| u32::try_from(v).ok()) {
            self.baskets[c as usize].push(category);
        }
        if line_no == 1 {
            o.main = Some((line_category, promo != 0));
        }
        if let Some(v) = value {
            self.parts.push((line_no, line_category, v));
        }
        Ok(())
    }

    fn finish_order(&mut self) {
        let Some(o) = self.current.take() else { return };
        let Some(c) = o.customer else { return };
        let (category, promo) = o.main.unwrap_or((None, false));
        self.orders.customer.push(c);
        self.orders.day.push(o.day);
        self.orders.amount_cents.push(o.total);
        self.orders.category.push(category.and_then(|v| u32::try_from(v).ok()).unwrap_or(patron_analytics::summary::NO_CATEGORY));
        self.orders.full_price.push(o.discount == 0 && !promo);
        self.add_sale(c, o.day, o.total);
    }

    /// Adds an order of customer `c` to the customer's revenue and margin when it falls in the
    /// cost-to-serve period, its lines' values being in `parts`.
    fn add_sale(&mut self, c: u32, day: i32, total: i64) {
        if !(self.ctx.period.0..=self.ctx.period.1).contains(&day) {
            return;
        }
        // The lines in their order whatever order the engine returned them in: the margin is a
        // sum of floats.
        self.parts.sort_unstable_by_key(|p| p.0);
        let names: &'a HashMap<i64, String> = self.ctx.category_names;
        self.named.clear();
        self.named.extend(self.parts.iter().map(|(_, cat, v)| (cat.and_then(|id| names.get(&id)).map(String::as_str), *v)));
        let margin = patron_analytics::cost_to_serve::order_margin(total, &self.named, |cat| self.ctx.settings.rate(cat));
        let sales = self.period_sales[c as usize].get_or_insert((0, 0));
        sales.0 = sales.0.saturating_add(total);
        sales.1 = sales.1.saturating_add(margin);
    }

    /// SQLite's first scan: an order without its lines, which [`OrderScan::line`] adds (main
    /// category, promotion, basket, margin). An order of a customer deleted since is left out,
    /// and so are its lines.
    fn order(&mut self, (id, customer_id, day, total, discount): OrderRow) -> Result<()> {
        let Some(c) = self.ctx.index.get(customer_id) else { return Ok(()) };
        let day = i32::try_from(day).map_err(|_| StoreError::Internal(format!("order day {day} out of range")))?;
        let position = u32::try_from(self.orders.customer.len()).map_err(|_| StoreError::Internal("too many orders to analyse".into()))?;
        self.positions.insert(id, position);
        self.orders.customer.push(c);
        self.orders.day.push(day);
        self.orders.amount_cents.push(total);
        self.orders.category.push(patron_analytics::summary::NO_CATEGORY);
        self.orders.full_price.push(discount == 0);
        self.lined.push(false);
        Ok(())
    }

    /// SQLite's second scan: a line of an order read by the first (one of the same customer, as
    /// the join on both columns has it), an order's lines together and by number.
    fn line(&mut self, (customer_id, order_id, line_no, line_category, product, promo, value): LineRow) {
        let Some(position) = self.positions.get(order_id) else { return };
        let p = position as usize;
        let c = self.orders.customer[p];
        if self.ctx.index.get(customer_id) != Some(c) {
            return;
        }
        if self.lines_of != Some(position) {
            self.finish_lines();
            self.lines_of = Some(position);
            self.lined[p] = true;
        }
        let product_category = || product.and_then(|p| self.ctx.product_categories.get(&p).copied());
        if let Some(category) = line_category.or_else(product_category).and_then(|v| u32::try_from(v).ok()) {
            self.baskets[c as usize].push(category);
        }
        if line_no == 1 {
            self.orders.category[p] = line_category.and_then(|v| u32::try_from(v).ok()).unwrap_or(patron_analytics::summary::NO_CATEGORY);
            if promo != 0 {
                self.orders.full_price[p] = false;
            }
        }
        if let Some(v) = value {
            self.parts.push((line_no, line_category, v));
        }
    }

    /// Ends the lines of the order being read: its sale in the period.
    fn finish_lines(&mut self) {
        if let Some(position) = self.lines_of.take() {
            let p = position as usize;
            self.add_sale(self.orders.customer[p], self.orders.day[p], self.orders.amount_cents[p]);
        }
        self.parts.clear();
    }

    /// After SQLite's second scan: the last order's lines, and the sales of the orders that
    /// had none.
    fn finish_scans(&mut self) {
        self.finish_lines();
        for p in 0..self.lined.len() {
            if !self.lined[p] {
                self.add_sale(self.orders.customer[p], self.orders.day[p], self.orders.amount_cents[p]);
            }
        }
    }
}

/// Steps `st` to its end, each row read by `read` and handed in batches to `pass` on a second
/// thread, so that SQLite's stepping (ours here) and the pass over the rows each have a core.
fn step_in_batches<R: Send>(
    st: &mut crate::db::RawStmt<'_>,
    read: impl Fn(&mut crate::db::RawStmt<'_>) -> R,
    mut pass: impl FnMut(R) -> Result<()> + Send,
) -> Result<()> {
    const BATCH: usize = 4096;
    let (send, receive) = std::sync::mpsc::sync_channel::<Vec<R>>(4);
    let (recycle, reuse) = std::sync::mpsc::channel::<Vec<R>>();
    std::thread::scope(|threads| {
        let passing = threads.spawn(move || -> Result<()> {
            for mut batch in receive {
                for row in batch.drain(..) {
                    pass(row)?;
                }
                // Back to the stepping side: no allocation per batch.
                let _ = recycle.send(batch);
            }
            Ok(())
        });
        let mut stepped: Result<()> = Ok(());
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            match st.step() {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    stepped = Err(e);
                    break;
                }
            }
            batch.push(read(st));
            if batch.len() == BATCH {
                let next = reuse.try_recv().unwrap_or_else(|_| Vec::with_capacity(BATCH));
                // A closed channel means the pass stopped on an error, reported below.
                if send.send(std::mem::replace(&mut batch, next)).is_err() {
                    break;
                }
            }
        }
        if !batch.is_empty() {
            let _ = send.send(batch);
        }
        drop(send);
        let passed = passing.join().map_err(|_| StoreError::Internal("the analysis' pass over the orders panicked".into()))?;
        stepped.and(passed)
    })
}

/// What [`ScanContext`] borrows besides the customers.
struct ScanLookups {
    settings: CostSettings,
    category_names: HashMap<i64, String>,
    product_categories: HashMap<i64, i64>,
    period: (i32, i32),
}

impl ScanLookups {
    fn context<'a>(&'a self, index: &'a CustomerIndex) -> ScanContext<'a> {
        ScanContext {
            index,
            settings: &self.settings,
            category_names: &self.category_names,
            product_categories: &self.product_categories,
            period: self.period,
        }
    }
}

impl Store {
    /// The cost settings, categories and products a pass over the orders as of the day uses.
    async fn scan_lookups(&self, as_of_day: i32) -> Result<ScanLookups> {
        let settings = self.cost_settings().await?;
        let as_of = day_date(as_of_day).ok_or_else(|| StoreError::invalid("as_of", format!("day {as_of_day} is out of range")))?;
        let first = patron_analytics::day_number(period(as_of, settings.period_months, self.config.business_tz).0);
        let category_names: HashMap<i64, String> =
            self.db.reader().fetch_all(query("SELECT id, name FROM categories")).await?.into_iter().collect();
        let product_categories: HashMap<i64, i64> =
            self.db.scan_all(query("SELECT id, category_id FROM products WHERE category_id IS NOT NULL")).await?.into_iter().collect();
        Ok(ScanLookups { settings, category_names, product_categories, period: (first, as_of_day) })
    }

    /// Reads what an analysis as of `as_of_day` needs: the customers; their completed orders up
    /// to that day (amount, category of the main line, full price = no discount and no
    /// promotion) and with them the categories each bought and their revenue and margin over
    /// the cost-to-serve period (one pass); the referrals each customer made and their latest
    /// survey answers.
    pub async fn analysis_input(&self, as_of_day: i32) -> Result<AnalysisInput> {
        self.backfill_order_days().await?;
        let mut phases = super::Phases::start();
        // A million ids: stepped (Db::scan_all), not handed over row by row by sqlx (1.2 s).
        let ids: Vec<(i64,)> = self.db.scan_all(query("SELECT id FROM customers WHERE deleted_at IS NULL ORDER BY id")).await?;
        let customer_ids: Vec<i64> = ids.into_iter().map(|r| r.0).collect();
        let index = CustomerIndex::new(&customer_ids);
        let lookups = self.scan_lookups(as_of_day).await?;
        let ctx = lookups.context(&index);
        let mut scan = OrderScan::new(ctx, customer_ids.len());
        phases.done("read input: customers");
        // SQLite: the orders and the lines at once, in one snapshot, each stepped through the C
        // API on a connection and a thread of its own (sqlx's row-by-row hand-over was most of
        // the run; one after the other the two scans took 4.5–6.6 s at 9 M orders, the sqlite3
        // shell's alone 2.5 and 2.7 s). The orders go through the pass as they come, on a
        // third thread; the lines are kept until then and follow them.
        let read_order = |st: &mut crate::db::RawStmt<'_>| -> OrderRow {
            (st.column_int(0), st.column_int(1), st.column_int(2), st.column_int(3), st.column_int(4))
        };
        let read_line = |st: &mut crate::db::RawStmt<'_>| -> LineRow {
            (
                st.column_int(0),
                st.column_int(1),
                st.column_int(2),
                st.column_opt_int(3),
                st.column_opt_int(4),
                st.column_int(5),
                st.column_opt_int(6),
            )
        };
        let stepped = self
            .db
            .sqlite_read_both_in_snapshot(
                |raw| {
                    let mut orders = raw.prepare(SQLITE_ORDERS_SQL)?;
                    orders.int(1, Some(i64::from(as_of_day)))?;
                    step_in_batches(&mut orders, read_order, |row| scan.order(row))
                },
                |raw| {
                    // In batches: one vector of 9 M lines would copy itself as it grew.
                    const BATCH: usize = 65_536;
                    let mut lines = raw.prepare(SQLITE_LINES_SQL)?;
                    let mut kept: Vec<Vec<LineRow>> = Vec::new();
                    while lines.step()? {
                        if kept.last().is_none_or(|b| b.len() == BATCH) {
                            kept.push(Vec::with_capacity(BATCH));
                        }
                        if let Some(batch) = kept.last_mut() {
                            batch.push(read_line(&mut lines));
                        }
                    }
                    Ok(kept)
                },
            )
            .await?;
        if let Some(((), lines)) = &stepped {
            for row in lines.iter().flatten() {
                scan.line(*row);
            }
            scan.finish_scans();
        }
        if stepped.is_none() {
            // PostgreSQL: the same pass over statements whose rows stream in as they come. One
            // backend doing the whole merge join was most of the phase (psql's own copy of the
            // statement's rows to /dev/null: 10.5 s of patron's 11.4 s at 9 M orders), so two
            // statements read the two halves of the customers on two backends at once, each
            // into a scan of its own (7.0 s for both in psql). The halves put together in
            // customer order are the rows of one statement in its order. Halves of the orders,
            // by the statistics: the older half of the customers holds two thirds of them.
            let median = match self.db.pg_column_median("orders", "customer_id").await? {
                Some(m) => Some(m),
                None => customer_ids.get(customer_ids.len() / 2).copied(),
            };
            let split = median.map_or(i64::MAX, |m| m.saturating_sub(1));
            let mut upper = OrderScan::new(ctx, customer_ids.len());
            // Each half as a binary COPY: its rows read in place (Db::pg_copy_out_each).
            let (lower_sql, upper_sql) = (pg_scan_sql(as_of_day, i64::MIN, split), pg_scan_sql(as_of_day, split, i64::MAX));
            let lower_half = self.db.pg_copy_out_each(&lower_sql, |r| scan.row(pg_scan_row(r)?));
            let upper_half = self.db.pg_copy_out_each(&upper_sql, |r| upper.row(pg_scan_row(r)?));
            futures_util::future::try_join(lower_half, upper_half).await?;
            scan.finish_order();
            upper.finish_order();
            scan.absorb(upper);
        }
        scan.finish_order();
        phases.done("read input: orders");
        let OrderScan { orders, mut baskets, period_sales, .. } = scan;
        for b in &mut baskets {
            b.sort_unstable();
            b.dedup();
        }
        let extras = self.customer_extras(&index, customer_ids.len(), as_of_day).await?;
        phases.done("read input: extras");
        Ok(AnalysisInput { customer_ids, orders, extras, baskets, period_sales })
    }

    /// The referrals each of the `n` customers made and their latest survey answers as of the day.
    async fn customer_extras(&self, index: &CustomerIndex, n: usize, as_of_day: i32) -> Result<CustomerExtras> {
        let referrals: Vec<(i64, i64)> = self
            .db
            .reader()
            .fetch_all(query(
                "SELECT referrer_id, COUNT(*) FROM customers WHERE referrer_id IS NOT NULL AND deleted_at IS NULL GROUP BY referrer_id",
            ))
            .await?;
        let mut made = vec![0u32; n];
        for (referrer, count) in referrals {
            if let Some(c) = index.get(referrer) {
                made[c as usize] = u32::try_from(count).unwrap_or(u32::MAX);
            }
        }
        // Survey answers: each customer's latest NPS (the loyalty matrix's attitude, part of
        // advocacy) and latest answer to "would you switch for a 2% lower price?" (competitor
        // immunity), as of the analysis day.
        let as_of_end = day_date(as_of_day.saturating_add(1))
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .and_then(|t| chrono::TimeZone::from_local_datetime(&self.config.business_tz, &t).earliest())
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        let answers: Vec<(i64, Option<i64>, Option<bool>)> = self
            .db
            .reader()
            .fetch_all(
                query(
                    "SELECT customer_id, nps, would_switch FROM survey_answers \
                     WHERE (nps IS NOT NULL OR would_switch IS NOT NULL) AND answered_at < $1 ORDER BY answered_at, invitation_id",
                )
                .bind(as_of_end),
            )
            .await?;
        let mut latest_nps: Vec<Option<u8>> = vec![None; n];
        let mut would_switch: Vec<Option<bool>> = vec![None; n];
        for (customer_id, nps, switch) in answers {
            if let Some(c) = index.get(customer_id) {
                if let Some(v) = nps.and_then(|v| u8::try_from(v).ok()) {
                    latest_nps[c as usize] = Some(v);
                }
                if switch.is_some() {
                    would_switch[c as usize] = switch;
                }
            }
        }
        let asked = |v: &[Option<u8>]| v.iter().any(Option::is_some);
        Ok(CustomerExtras {
            referrals: Some(made),
            latest_nps: asked(&latest_nps).then_some(latest_nps),
            would_switch_for_2pct: would_switch.iter().any(Option::is_some).then_some(would_switch),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{test_db, test_now};
    use crate::users::Actor;
    use rand::{Rng, SeedableRng};

    /// Completed orders up to `$1` joined with their lines in SQL, in the order each engine's
    /// pass gives (order id on SQLite, customer and order id on PostgreSQL): the reference for
    /// SQLite's two scans and for PostgreSQL's two halves.
    const JOINED_SQL: &str = "SELECT o.customer_id, o.id, o.ordered_day, o.total_cents, o.discount_cents, CAST(l.line_no AS BIGINT), \
         l.category_id, l.product_id, CAST(CASE WHEN l.promo THEN 1 ELSE 0 END AS BIGINT), l.quantity * l.unit_price_cents \
         FROM orders o LEFT JOIN order_lines l ON l.customer_id = o.customer_id AND l.order_id = o.id \
         WHERE o.status = 'completed' AND o.ordered_day <= $1 ORDER BY ";

    /// Orders with none, one or several lines, numbered from 1 or not, with and without
    /// category, product, promotion and discount, in and before the cost-to-serve period, of
    /// every status, of customers deleted since, with ids far apart (SQLite's table of order
    /// positions becomes a map), and on SQLite lines that name another customer than their
    /// order's (the join leaves them out): the input read is the join's, field for field.
    #[tokio::test]
    async fn the_pass_over_the_orders_reads_what_the_join_gives() {
        // PostgreSQL's halves come as binary COPYs (Db::pg_copy_out_each); Citus plans them too.
        for leg in ["sqlite", "postgres", "citus"] {
            let t = match leg {
                "sqlite" => test_db(crate::Engine::Sqlite).await,
                "postgres" => test_db(crate::Engine::Postgres).await,
                _ => crate::testing::test_citus_db().await,
            };
            let s = &t.store;
            let engine = s.db.engine();
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
            let mut customers = Vec::new();
            for i in 0..40 {
                let new = crate::customers::NewCustomer { external_id: Some(format!("C{i}")), name: format!("C{i}"), ..Default::default() };
                customers.push(s.create_customer(&Actor::cli(), new).await.unwrap().id);
            }
            let mut tx = s.db.begin().await.unwrap();
            for (id, name) in [(1i64, "饮品"), (2, "甜点"), (3, "咖啡")] {
                tx.execute(query("INSERT INTO categories (id, name) VALUES ($1, $2)").bind(id).bind(name)).await.unwrap();
            }
            for (id, category) in [(10i64, Some(2i64)), (11, None), (12, Some(3))] {
                tx.execute(
                    query("INSERT INTO products (id, name, category_id) VALUES ($1, $2, $3)")
                        .bind(id)
                        .bind(format!("P{id}"))
                        .bind(category),
                )
                .await
                .unwrap();
            }
            let mut id = 0i64;
            for n in 0..600 {
                id += rng.gen_range(1..4);
                if n == 500 {
                    id += 5_000_000;
                }
                let customer = customers[rng.gen_range(0..customers.len())];
                let at = test_now() - chrono::Duration::hours(rng.gen_range(0..24 * 600));
                let status = ["completed", "completed", "completed", "completed", "cancelled", "refunded"][rng.gen_range(0..6)];
                let discount = if rng.gen_bool(0.2) { 500 } else { 0 };
                tx.execute(
                    query("INSERT INTO orders (id, customer_id, ordered_at, total_cents, discount_cents, status) VALUES ($1, $2, $3, $4, $5, $6)")
                        .bind(id)
                        .bind(customer)
                        .bind(at)
                        .bind(rng.gen_range(100..50_000i64))
                        .bind(discount)
                        .bind(status),
                )
                .await
                .unwrap();
                let first = if rng.gen_bool(0.15) { 2 } else { 1 };
                for line_no in first..first + rng.gen_range(0..4i64) {
                    let category = [None, Some(1i64), Some(2), Some(3)][rng.gen_range(0..4)];
                    let product = [None, Some(10i64), Some(11), Some(12)][rng.gen_range(0..4)];
                    tx.execute(
                        query(
                            "INSERT INTO order_lines (customer_id, order_id, line_no, product_id, category_id, quantity, unit_price_cents, promo) \
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                        )
                        .bind(customer)
                        .bind(id)
                        .bind(line_no)
                        .bind(product)
                        .bind(category)
                        .bind(rng.gen_range(1..4i64))
                        .bind(rng.gen_range(100..9_000i64))
                        .bind(rng.gen_bool(0.3)),
                    )
                    .await
                    .unwrap();
                }
                if engine == crate::Engine::Sqlite && n % 50 == 7 {
                    // SQLite keeps no key from a line's customer to its order's.
                    let other = customers[(customers.iter().position(|c| *c == customer).unwrap_or(0) + 1) % customers.len()];
                    tx.execute(
                        query("INSERT INTO order_lines (customer_id, order_id, line_no, category_id, unit_price_cents) VALUES ($1, $2, 9, 1, 700)")
                            .bind(other)
                            .bind(id),
                    )
                    .await
                    .unwrap();
                }
            }
            for c in &customers[..3] {
                tx.execute(query("UPDATE customers SET deleted_at = $1 WHERE id = $2").bind(test_now()).bind(*c)).await.unwrap();
            }
            tx.commit().await.unwrap();

            let as_of_day = crate::analytics::business_day(test_now(), s.config.business_tz) - 30;
            let input = s.analysis_input(as_of_day).await.unwrap();
            // The reference: the join, through the same pass as PostgreSQL's rows.
            let index = CustomerIndex::new(&input.customer_ids);
            let lookups = s.scan_lookups(as_of_day).await.unwrap();
            let mut joined = OrderScan::new(lookups.context(&index), input.customer_ids.len());
            let order = if engine == crate::Engine::Sqlite { "o.id" } else { "o.customer_id, o.id" };
            let rows: Vec<ScanRow> =
                s.db.reader().fetch_all(query(format!("{JOINED_SQL}{order}")).bind(i64::from(as_of_day))).await.unwrap();
            for row in rows {
                joined.row(row).unwrap();
            }
            joined.finish_order();
            let OrderScan { orders, mut baskets, period_sales, .. } = joined;
            for b in &mut baskets {
                b.sort_unstable();
                b.dedup();
            }
            assert_eq!(input.customer_ids.len(), 37, "{leg}");
            assert!(orders.customer.len() > 300, "{leg}: {} orders", orders.customer.len());
            assert_eq!(input.orders.customer, orders.customer, "{leg}");
            assert_eq!(input.orders.day, orders.day, "{leg}");
            assert_eq!(input.orders.amount_cents, orders.amount_cents, "{leg}");
            assert_eq!(input.orders.category, orders.category, "{leg}");
            assert_eq!(input.orders.full_price, orders.full_price, "{leg}");
            assert_eq!(input.baskets, baskets, "{leg}");
            assert_eq!(input.period_sales, period_sales, "{leg}");
            let in_period = period_sales.iter().filter(|p| p.is_some()).count();
            assert!(in_period > 10, "{leg}: {in_period} customers bought in the period");
            assert!(orders.day.iter().any(|d| *d < lookups.period.0), "{leg}: orders before the period too");
            assert!(orders.full_price.iter().any(|f| *f) && orders.full_price.iter().any(|f| !*f));
            assert!(orders.category.contains(&patron_analytics::summary::NO_CATEGORY) && orders.category.contains(&2));
        }
    }
}
