//! What an analysis run reads: the live customers, and one pass over their completed orders
//! with every line that gives the models their orders (amount, day, the main line's category,
//! full price or not), the next best action its baskets (the categories each customer bought)
//! and the cost to serve its period's revenue and margin. At 1 M customers / 9 M orders, one
//! pass instead of three (one per consumer, each joining the lines again) is most of what a
//! database analysis saves (issue 15 §5).

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

/// Completed orders up to `$1` with their lines, in order id order (an order's lines together),
/// within the order ids `($2, $3]` (SQLite; PostgreSQL reads [`PG_SCAN_SQL`]).
const SCAN_SQL: &str = "SELECT o.customer_id, o.id, o.ordered_day, o.total_cents, o.discount_cents, CAST(l.line_no AS BIGINT), \
     l.category_id, l.product_id, CAST(CASE WHEN l.promo THEN 1 ELSE 0 END AS BIGINT), l.quantity * l.unit_price_cents \
     FROM orders o LEFT JOIN order_lines l ON l.customer_id = o.customer_id AND l.order_id = o.id \
     WHERE o.status = 'completed' AND o.ordered_day <= $1 AND o.id > $2 AND o.id <= $3 ORDER BY o.id";

/// PostgreSQL's form of [`SCAN_SQL`]: the customers in `($2, $3]` (both tables' keys start with
/// the customer, so each side reads only its range), by customer and order: the order of both
/// primary keys, which a merge join reads without a sort. (Pages of order ids cost a scan of
/// every order per page: no index there starts with the order id, which Citus's keys start with
/// the customer.)
const PG_SCAN_SQL: &str = "SELECT o.customer_id, o.id, o.ordered_day, o.total_cents, o.discount_cents, CAST(l.line_no AS BIGINT), \
     l.category_id, l.product_id, CAST(CASE WHEN l.promo THEN 1 ELSE 0 END AS BIGINT), l.quantity * l.unit_price_cents \
     FROM orders o LEFT JOIN order_lines l ON l.customer_id = o.customer_id AND l.order_id = o.id \
     AND l.customer_id > $2 AND l.customer_id <= $3 \
     WHERE o.status = 'completed' AND o.ordered_day <= $1 AND o.customer_id > $2 AND o.customer_id <= $3 \
     ORDER BY o.customer_id, o.id";

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
        if (self.ctx.period.0..=self.ctx.period.1).contains(&o.day) {
            // The lines in their order whatever order the engine returned them in: the margin
            // is a sum of floats.
            self.parts.sort_unstable_by_key(|p| p.0);
            let names: &'a HashMap<i64, String> = self.ctx.category_names;
            self.named.clear();
            self.named.extend(self.parts.iter().map(|(_, cat, v)| (cat.and_then(|id| names.get(&id)).map(String::as_str), *v)));
            let margin = patron_analytics::cost_to_serve::order_margin(o.total, &self.named, |cat| self.ctx.settings.rate(cat));
            let sales = self.period_sales[c as usize].get_or_insert((0, 0));
            sales.0 = sales.0.saturating_add(o.total);
            sales.1 = sales.1.saturating_add(margin);
        }
    }
}

impl Store {
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
        let settings = self.cost_settings().await?;
        let as_of = day_date(as_of_day).ok_or_else(|| StoreError::invalid("as_of", format!("day {as_of_day} is out of range")))?;
        let first = patron_analytics::day_number(period(as_of, settings.period_months, self.config.business_tz).0);
        let category_names: HashMap<i64, String> =
            self.db.reader().fetch_all(query("SELECT id, name FROM categories")).await?.into_iter().collect();
        let product_categories: HashMap<i64, i64> =
            self.db.scan_all(query("SELECT id, category_id FROM products WHERE category_id IS NOT NULL")).await?.into_iter().collect();
        let ctx = ScanContext {
            index: &index,
            settings: &settings,
            category_names: &category_names,
            product_categories: &product_categories,
            period: (first, as_of_day),
        };
        let mut scan = OrderScan::new(ctx, customer_ids.len());
        // SQLite: the whole range in one statement stepped through the C API (sqlx's
        // row-by-row hand-over was most of the run). Stepping (SQLite's work) and the pass over
        // the rows (ours) take turns on one core otherwise; here the rows go in batches to a
        // second thread, so each has a core.
        phases.done("read input: customers");
        let stepped = self
            .db
            .sqlite_read(|raw| {
                let mut st = raw.prepare(SCAN_SQL)?;
                st.int(1, Some(i64::from(as_of_day)))?;
                st.int(2, Some(i64::MIN))?;
                st.int(3, Some(i64::MAX))?;
                const BATCH: usize = 4096;
                let (send, receive) = std::sync::mpsc::sync_channel::<Vec<ScanRow>>(4);
                let (recycle, reuse) = std::sync::mpsc::channel::<Vec<ScanRow>>();
                let scan = &mut scan;
                std::thread::scope(|threads| {
                    let pass = threads.spawn(move || -> Result<()> {
                        for mut batch in receive {
                            for row in batch.drain(..) {
                                scan.row(row)?;
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
                        batch.push((
                            st.column_int(0),
                            st.column_int(1),
                            st.column_int(2),
                            st.column_int(3),
                            st.column_int(4),
                            st.column_opt_int(5),
                            st.column_opt_int(6),
                            st.column_opt_int(7),
                            st.column_int(8),
                            st.column_opt_int(9),
                        ));
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
                    let passed = pass.join().map_err(|_| StoreError::Internal("the analysis' pass over the orders panicked".into()))?;
                    stepped.and(passed)
                })
            })
            .await?;
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
            let half = |low: i64, high: i64| query(PG_SCAN_SQL).bind(i64::from(as_of_day)).bind(low).bind(high);
            let lower_half = self.db.pg_for_each(half(i64::MIN, split), |row: ScanRow| scan.row(row));
            let upper_half = self.db.pg_for_each(half(split, i64::MAX), |row: ScanRow| upper.row(row));
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
