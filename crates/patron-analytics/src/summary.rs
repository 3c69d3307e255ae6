//! Per-customer summaries from orders as of a date (DESIGN §4, BTYD convention).
//!
//! The orders are grouped by customer once (a counting sort by customer index, in parallel
//! over customer ranges), each customer's orders are sorted by day, and one pass per customer
//! computes every field; no allocation happens per customer (scratch buffers are per thread).

use rayon::prelude::*;

use crate::{AnalyticsError, Result};

/// Category id meaning "no category" in [`Orders::category`].
pub const NO_CATEGORY: u32 = u32::MAX;

/// Orders, column-wise: one value per order in each column.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Orders {
    /// Customer index (`0..n_customers`) of each order.
    pub customer: Vec<u32>,
    /// Day number of the order (days since 1970-01-01 in the business time zone).
    pub day: Vec<i32>,
    /// Order amount in minor units (cents).
    pub amount_cents: Vec<i64>,
    /// Product category id per order ([`NO_CATEGORY`] for none); an empty column means the
    /// data has no categories at all (the breadth indicator is then unavailable).
    pub category: Vec<u32>,
    /// Whether the order was at full price (no discount/promotion); an empty column means
    /// unknown (the full-price share is then unavailable).
    pub full_price: Vec<bool>,
}

impl Orders {
    /// Number of orders.
    pub fn len(&self) -> usize {
        self.customer.len()
    }

    /// Whether there are no orders.
    pub fn is_empty(&self) -> bool {
        self.customer.is_empty()
    }

    fn validate(&self, n_customers: usize) -> Result<()> {
        let n = self.customer.len();
        for (column, got) in [("day", self.day.len()), ("amount_cents", self.amount_cents.len())] {
            if got != n {
                return Err(AnalyticsError::LengthMismatch { column, expected: n, got });
            }
        }
        for (column, got) in [("category", self.category.len()), ("full_price", self.full_price.len())] {
            if got != 0 && got != n {
                return Err(AnalyticsError::LengthMismatch { column, expected: n, got });
            }
        }
        if u32::try_from(n_customers).is_err() {
            return Err(AnalyticsError::InvalidConfig {
                field: "n_customers",
                reason: format!("{n_customers} exceeds the u32 customer index space"),
            });
        }
        // The largest index first, by chunks (a per-element `position_first` was 60 ms of a
        // 9 M-order run); the position of a bad one only when there is one.
        let largest = self.customer.par_chunks(SCAN_CHUNK).map(|ch| ch.iter().copied().max().unwrap_or(0)).max();
        let bad = match largest {
            Some(c) if c as usize >= n_customers => self.customer.iter().position(|&c| c as usize >= n_customers),
            _ => None,
        };
        if let Some(row) = bad {
            return Err(AnalyticsError::CustomerOutOfRange { row, customer: self.customer[row], n_customers });
        }
        Ok(())
    }
}

/// The absolute-churn rule, needed already while summarising (to find returns after churn).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ChurnRule {
    /// Minimum silence before a customer counts as churned (default 180 days).
    pub churn_floor_days: u32,
    /// Multiple of the customer's median gap between purchase days (default 3).
    pub gap_multiplier: f64,
}

impl Default for ChurnRule {
    fn default() -> Self {
        ChurnRule { churn_floor_days: 180, gap_multiplier: 3.0 }
    }
}

impl ChurnRule {
    /// Churn threshold in days: `max(churn_floor_days, gap_multiplier × median_gap)`.
    pub fn threshold_days(&self, median_gap_days: Option<f64>) -> f64 {
        let floor = f64::from(self.churn_floor_days);
        match median_gap_days {
            Some(g) => floor.max(self.gap_multiplier * g),
            None => floor,
        }
    }
}

/// Windows used by the summaries. All windows end on `as_of` inclusive: a window of `w` days
/// holds the days `as_of − w + 1 ..= as_of`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SummaryConfig {
    /// RFM window for F and M (default 365 days).
    pub rfm_window_days: u32,
    /// Window of the trailing-12-month spend (default 365 days).
    pub trailing_days: u32,
    /// The "recent" window of relative churn (default 90 days).
    pub recent_days: u32,
    /// The baseline period before the recent window (default 365 days = "the prior 12 months").
    pub baseline_days: u32,
    /// The absolute-churn rule (used to detect returns after churn, i.e. "won back").
    pub churn: ChurnRule,
}

impl Default for SummaryConfig {
    fn default() -> Self {
        SummaryConfig { rfm_window_days: 365, trailing_days: 365, recent_days: 90, baseline_days: 365, churn: ChurnRule::default() }
    }
}

impl SummaryConfig {
    fn validate(&self) -> Result<()> {
        for (field, v) in [
            ("rfm_window_days", self.rfm_window_days),
            ("trailing_days", self.trailing_days),
            ("recent_days", self.recent_days),
            ("baseline_days", self.baseline_days),
        ] {
            if v == 0 || v > 100_000 {
                return Err(AnalyticsError::InvalidConfig { field, reason: format!("{v} is not in 1..=100000") });
            }
        }
        if !(self.churn.gap_multiplier.is_finite() && self.churn.gap_multiplier >= 0.0) {
            return Err(AnalyticsError::InvalidConfig {
                field: "churn.gap_multiplier",
                reason: format!("{} is not a finite non-negative number", self.churn.gap_multiplier),
            });
        }
        Ok(())
    }
}

/// Per-customer summaries, column-wise (index = customer index). Customers without any order on
/// or before `as_of` ("prospects") have `purchase_days == 0`, `None` dates and zeros elsewhere.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct CustomerSummaries {
    /// The date the summaries are taken at (day number).
    pub as_of: i32,
    /// Length of the recent window (days ending on `as_of`) the summaries were taken with
    /// (relative churn needs a purchase day in it; 0 in hand-made summaries: none).
    pub recent_days: u32,
    /// Whether the orders carried categories (else `distinct_categories` is meaningless).
    pub has_categories: bool,
    /// Whether the orders carried full-price flags (else `full_price_share` is `None`).
    pub has_full_price: bool,
    /// Number of distinct purchase days (several orders on one day are one purchase day).
    pub purchase_days: Vec<u32>,
    /// First purchase day.
    pub first_purchase_day: Vec<Option<i32>>,
    /// Last purchase day (on or before `as_of`).
    pub last_purchase_day: Vec<Option<i32>>,
    /// x: repeat purchase days = purchase_days − 1 (0 for prospects).
    pub x: Vec<u32>,
    /// t_x: days from the first to the last purchase day.
    pub t_x: Vec<u32>,
    /// T: the customer's age, days from the first purchase day to `as_of`.
    pub age: Vec<u32>,
    /// m: mean spend (cents) of the repeat purchase days, i.e. excluding the first purchase
    /// day, orders of one day summed into one purchase day; 0 when x = 0.
    pub m: Vec<f64>,
    /// Number of orders up to `as_of`.
    pub order_count: Vec<u32>,
    /// Total spend (cents) up to `as_of`.
    pub total_spend_cents: Vec<i64>,
    /// F: orders in the RFM window.
    pub window_orders: Vec<u32>,
    /// M: spend (cents) in the RFM window.
    pub window_spend_cents: Vec<i64>,
    /// Spend (cents) in the trailing window (default 12 months).
    pub trailing_spend_cents: Vec<i64>,
    /// Median gap in days between consecutive purchase days (`None` with < 2 purchase days;
    /// the mean of the two middle gaps for an even count).
    pub median_gap_days: Vec<Option<f64>>,
    /// Number of distinct categories bought.
    pub distinct_categories: Vec<u32>,
    /// Share of orders at full price (`None` for prospects or without flags).
    pub full_price_share: Vec<Option<f64>>,
    /// Spend (cents) in the recent window (default the last 90 days).
    pub recent_spend_cents: Vec<i64>,
    /// Baseline: average spend (cents) per recent-window length (90 days) over the baseline
    /// period (the 365 days before the recent window). The average runs over the part of
    /// the period in which the customer existed, but never over fewer than 90 days, so a
    /// young customer is not compared with a baseline diluted by days before their first
    /// purchase.
    pub baseline_spend_cents: Vec<f64>,
    /// Distinct purchase days in the baseline period.
    pub baseline_purchase_days: Vec<u32>,
    /// The most recent purchase day that ended a churn-length silence, judged by the churn rule
    /// as it stood at that time (threshold from the median of the gaps before it); `None` if the
    /// customer never came back after being churned.
    pub last_return_day: Vec<Option<i32>>,
}

impl CustomerSummaries {
    /// Number of customers.
    pub fn len(&self) -> usize {
        self.purchase_days.len()
    }

    /// Whether there are no customers.
    pub fn is_empty(&self) -> bool {
        self.purchase_days.is_empty()
    }

    /// R: days since the last purchase (`None` for prospects).
    pub fn recency_days(&self, customer: usize) -> Option<u32> {
        self.last_purchase_day.get(customer).copied().flatten().map(|d| (self.as_of - d).max(0) as u32)
    }

    /// Whether the customer has at least one purchase on or before `as_of`.
    pub fn has_purchases(&self, customer: usize) -> bool {
        self.purchase_days.get(customer).is_some_and(|&n| n > 0)
    }

    /// Checks that every column has one value per customer (the fields are public, so a
    /// caller may have assembled them by hand).
    pub fn validate(&self) -> Result<()> {
        let n = self.purchase_days.len();
        let lens = [
            ("first_purchase_day", self.first_purchase_day.len()),
            ("last_purchase_day", self.last_purchase_day.len()),
            ("x", self.x.len()),
            ("t_x", self.t_x.len()),
            ("age", self.age.len()),
            ("m", self.m.len()),
            ("order_count", self.order_count.len()),
            ("total_spend_cents", self.total_spend_cents.len()),
            ("window_orders", self.window_orders.len()),
            ("window_spend_cents", self.window_spend_cents.len()),
            ("trailing_spend_cents", self.trailing_spend_cents.len()),
            ("median_gap_days", self.median_gap_days.len()),
            ("distinct_categories", self.distinct_categories.len()),
            ("full_price_share", self.full_price_share.len()),
            ("recent_spend_cents", self.recent_spend_cents.len()),
            ("baseline_spend_cents", self.baseline_spend_cents.len()),
            ("baseline_purchase_days", self.baseline_purchase_days.len()),
            ("last_return_day", self.last_return_day.len()),
        ];
        for (column, got) in lens {
            if got != n {
                return Err(AnalyticsError::LengthMismatch { column, expected: n, got });
            }
        }
        Ok(())
    }
}

/// One order as grouped for a customer.
#[derive(Debug, Clone, Copy, Default)]
struct Rec {
    day: i32,
    category: u32,
    amount: i64,
    full_price: bool,
}

/// One customer's summary row before it is written into the columns.
#[derive(Debug, Clone, Copy, Default)]
struct Row {
    purchase_days: u32,
    first: Option<i32>,
    last: Option<i32>,
    x: u32,
    t_x: u32,
    age: u32,
    m: f64,
    order_count: u32,
    total_spend: i64,
    window_orders: u32,
    window_spend: i64,
    trailing_spend: i64,
    median_gap: Option<f64>,
    distinct_categories: u32,
    full_price_share: Option<f64>,
    recent_spend: i64,
    baseline_spend: f64,
    baseline_purchase_days: u32,
    last_return_day: Option<i32>,
}

/// Per-thread scratch buffers, reused across customers.
#[derive(Default)]
struct Scratch {
    recs: Vec<Rec>,
    gaps: Vec<u32>,
    sorted_gaps: Vec<u32>,
    categories: Vec<u32>,
}

/// Computes the per-customer summaries of `orders` as of `as_of` (orders after `as_of` are
/// ignored). `n_customers` fixes the length of every output column.
pub fn summarize(orders: &Orders, n_customers: usize, as_of: i32, config: &SummaryConfig) -> Result<CustomerSummaries> {
    orders.validate(n_customers)?;
    config.validate()?;
    let has_categories = !orders.category.is_empty();
    let has_full_price = !orders.full_price.is_empty();

    let grouped = group_by_customer(orders, n_customers, as_of);

    let mut out = CustomerSummaries {
        as_of,
        recent_days: config.recent_days,
        has_categories,
        has_full_price,
        purchase_days: vec![0; n_customers],
        first_purchase_day: filled(n_customers, None),
        last_purchase_day: filled(n_customers, None),
        x: vec![0; n_customers],
        t_x: vec![0; n_customers],
        age: vec![0; n_customers],
        m: vec![0.0; n_customers],
        order_count: vec![0; n_customers],
        total_spend_cents: vec![0; n_customers],
        window_orders: vec![0; n_customers],
        window_spend_cents: vec![0; n_customers],
        trailing_spend_cents: vec![0; n_customers],
        median_gap_days: filled(n_customers, None),
        distinct_categories: vec![0; n_customers],
        full_price_share: filled(n_customers, None),
        recent_spend_cents: vec![0; n_customers],
        baseline_spend_cents: vec![0.0; n_customers],
        baseline_purchase_days: vec![0; n_customers],
        last_return_day: filled(n_customers, None),
    };

    // Customers are processed in blocks; each block owns disjoint chunks of every column.
    const BLOCK: usize = 4096;
    let mut blocks = Vec::with_capacity(n_customers.div_ceil(BLOCK));
    {
        let mut c_pd = out.purchase_days.chunks_mut(BLOCK);
        let mut c_first = out.first_purchase_day.chunks_mut(BLOCK);
        let mut c_last = out.last_purchase_day.chunks_mut(BLOCK);
        let mut c_x = out.x.chunks_mut(BLOCK);
        let mut c_tx = out.t_x.chunks_mut(BLOCK);
        let mut c_age = out.age.chunks_mut(BLOCK);
        let mut c_m = out.m.chunks_mut(BLOCK);
        let mut c_oc = out.order_count.chunks_mut(BLOCK);
        let mut c_ts = out.total_spend_cents.chunks_mut(BLOCK);
        let mut c_wo = out.window_orders.chunks_mut(BLOCK);
        let mut c_ws = out.window_spend_cents.chunks_mut(BLOCK);
        let mut c_tr = out.trailing_spend_cents.chunks_mut(BLOCK);
        let mut c_mg = out.median_gap_days.chunks_mut(BLOCK);
        let mut c_dc = out.distinct_categories.chunks_mut(BLOCK);
        let mut c_fp = out.full_price_share.chunks_mut(BLOCK);
        let mut c_rs = out.recent_spend_cents.chunks_mut(BLOCK);
        let mut c_bs = out.baseline_spend_cents.chunks_mut(BLOCK);
        let mut c_bd = out.baseline_purchase_days.chunks_mut(BLOCK);
        let mut c_lr = out.last_return_day.chunks_mut(BLOCK);
        let mut start = 0;
        while start < n_customers {
            let (
                Some(purchase_days),
                Some(first),
                Some(last),
                Some(x),
                Some(t_x),
                Some(age),
                Some(m),
                Some(order_count),
                Some(total_spend),
                Some(window_orders),
                Some(window_spend),
                Some(trailing_spend),
                Some(median_gap),
                Some(distinct_categories),
                Some(full_price_share),
                Some(recent_spend),
                Some(baseline_spend),
                Some(baseline_purchase_days),
                Some(last_return_day),
            ) = (
                c_pd.next(),
                c_first.next(),
                c_last.next(),
                c_x.next(),
                c_tx.next(),
                c_age.next(),
                c_m.next(),
                c_oc.next(),
                c_ts.next(),
                c_wo.next(),
                c_ws.next(),
                c_tr.next(),
                c_mg.next(),
                c_dc.next(),
                c_fp.next(),
                c_rs.next(),
                c_bs.next(),
                c_bd.next(),
                c_lr.next(),
            )
            else {
                break;
            };
            blocks.push(BlockOut {
                start,
                purchase_days,
                first,
                last,
                x,
                t_x,
                age,
                m,
                order_count,
                total_spend,
                window_orders,
                window_spend,
                trailing_spend,
                median_gap,
                distinct_categories,
                full_price_share,
                recent_spend,
                baseline_spend,
                baseline_purchase_days,
                last_return_day,
            });
            start += BLOCK;
        }
    }

    let ctx = Ctx { as_of, config, has_categories, has_full_price };
    blocks.into_par_iter().for_each_init(Scratch::default, |scratch, mut block| {
        for i in 0..block.purchase_days.len() {
            let c = block.start + i;
            let row = match &grouped {
                Grouped::Scattered { offsets, recs } => summarize_customer(&recs[offsets[c]..offsets[c + 1]], &ctx, scratch),
                Grouped::InPlace { offsets } => {
                    // The customer's orders, copied into a reused buffer (sorted by day
                    // if they are not already).
                    let mut recs = std::mem::take(&mut scratch.recs);
                    recs.clear();
                    recs.extend((offsets[c]..offsets[c + 1]).map(|i| orders.rec(i)));
                    if !recs.windows(2).all(|w| w[0].day <= w[1].day) {
                        recs.sort_unstable_by_key(|r| r.day);
                    }
                    let row = summarize_customer(&recs, &ctx, scratch);
                    scratch.recs = recs;
                    row
                }
            };
            block.write(i, &row);
        }
    });
    Ok(out)
}

struct Ctx<'a> {
    as_of: i32,
    config: &'a SummaryConfig,
    has_categories: bool,
    has_full_price: bool,
}

/// Mutable chunks of every output column for one block of customers.
struct BlockOut<'a> {
    start: usize,
    purchase_days: &'a mut [u32],
    first: &'a mut [Option<i32>],
    last: &'a mut [Option<i32>],
    x: &'a mut [u32],
    t_x: &'a mut [u32],
    age: &'a mut [u32],
    m: &'a mut [f64],
    order_count: &'a mut [u32],
    total_spend: &'a mut [i64],
    window_orders: &'a mut [u32],
    window_spend: &'a mut [i64],
    trailing_spend: &'a mut [i64],
    median_gap: &'a mut [Option<f64>],
    distinct_categories: &'a mut [u32],
    full_price_share: &'a mut [Option<f64>],
    recent_spend: &'a mut [i64],
    baseline_spend: &'a mut [f64],
    baseline_purchase_days: &'a mut [u32],
    last_return_day: &'a mut [Option<i32>],
}

impl BlockOut<'_> {
    fn write(&mut self, i: usize, r: &Row) {
        self.purchase_days[i] = r.purchase_days;
        self.first[i] = r.first;
        self.last[i] = r.last;
        self.x[i] = r.x;
        self.t_x[i] = r.t_x;
        self.age[i] = r.age;
        self.m[i] = r.m;
        self.order_count[i] = r.order_count;
        self.total_spend[i] = r.total_spend;
        self.window_orders[i] = r.window_orders;
        self.window_spend[i] = r.window_spend;
        self.trailing_spend[i] = r.trailing_spend;
        self.median_gap[i] = r.median_gap;
        self.distinct_categories[i] = r.distinct_categories;
        self.full_price_share[i] = r.full_price_share;
        self.recent_spend[i] = r.recent_spend;
        self.baseline_spend[i] = r.baseline_spend;
        self.baseline_purchase_days[i] = r.baseline_purchase_days;
        self.last_return_day[i] = r.last_return_day;
    }
}

/// The orders on or before `as_of`, grouped by customer.
enum Grouped {
    /// The orders are already grouped by customer, all on or before `as_of`: customer `c`'s
    /// are `orders[offsets[c]..offsets[c + 1]]` (not necessarily sorted by day).
    InPlace { offsets: Vec<usize> },
    /// Customer `c`'s records are `recs[offsets[c]..offsets[c + 1]]`, sorted by day.
    Scattered { offsets: Vec<usize>, recs: Vec<Rec> },
}

impl Orders {
    /// Order `i` as a summary record.
    fn rec(&self, i: usize) -> Rec {
        Rec {
            day: self.day[i],
            category: self.category.get(i).copied().unwrap_or(NO_CATEGORY),
            amount: self.amount_cents[i],
            full_price: self.full_price.get(i).copied().unwrap_or(false),
        }
    }
}

/// Groups the orders on or before `as_of` by customer (offsets have length n_customers + 1).
fn group_by_customer(orders: &Orders, n_customers: usize, as_of: i32) -> Grouped {
    // Counting sort. Counts first (parallel over order chunks, merged per chunk so the
    // result does not depend on scheduling).
    let n = orders.len();
    if let Some(offsets) = group_sorted(orders, n_customers, as_of) {
        return Grouped::InPlace { offsets };
    }
    let keep = |i: usize| orders.day[i] <= as_of;
    let chunk = (n / rayon::current_num_threads().clamp(1, 8)).max(1 << 16);
    let partial: Vec<Vec<u32>> = (0..n)
        .into_par_iter()
        .with_min_len(chunk)
        .fold(
            || vec![0u32; n_customers],
            |mut counts, i| {
                if keep(i) {
                    counts[orders.customer[i] as usize] += 1;
                }
                counts
            },
        )
        .collect();
    let mut counts = vec![0u32; n_customers];
    for p in &partial {
        counts.par_iter_mut().zip(p.par_iter()).for_each(|(c, &v)| *c += v);
    }
    drop(partial);
    let mut offsets = Vec::with_capacity(n_customers + 1);
    let mut acc = 0usize;
    offsets.push(0);
    for &c in &counts {
        acc += c as usize;
        offsets.push(acc);
    }
    drop(counts);
    let total = acc;
    let mut recs = vec![Rec::default(); total];

    // Scatter: the customers are split into contiguous ranges, one per task; each task scans
    // all orders and writes only its own customers' records into its own slice of `recs`
    // (disjoint, so no locking and no unsafe code).
    let n_parts = rayon::current_num_threads().clamp(1, 8);
    let mut parts: Vec<(usize, usize, &mut [Rec])> = Vec::with_capacity(n_parts);
    {
        let mut rest: &mut [Rec] = &mut recs;
        let mut lo = 0usize;
        for p in 0..n_parts {
            let hi = if p + 1 == n_parts { n_customers } else { n_customers * (p + 1) / n_parts };
            let len = offsets[hi] - offsets[lo];
            let (head, tail) = rest.split_at_mut(len);
            parts.push((lo, hi, head));
            rest = tail;
            lo = hi;
        }
    }
    let has_cat = !orders.category.is_empty();
    let has_fp = !orders.full_price.is_empty();
    parts.into_par_iter().for_each(|(lo, hi, slice)| {
        let base = offsets[lo];
        let mut cursor: Vec<usize> = offsets[lo..hi].iter().map(|&o| o - base).collect();
        for i in 0..n {
            let c = orders.customer[i] as usize;
            if c < lo || c >= hi || !keep(i) {
                continue;
            }
            let pos = &mut cursor[c - lo];
            slice[*pos] = Rec {
                day: orders.day[i],
                category: if has_cat { orders.category[i] } else { NO_CATEGORY },
                amount: orders.amount_cents[i],
                full_price: has_fp && orders.full_price[i],
            };
            *pos += 1;
        }
        // Sort each customer's records by day (skipped when already in order, the common case
        // when orders arrive sorted by time).
        for c in lo..hi {
            let seg = &mut slice[offsets[c] - base..offsets[c + 1] - base];
            if !seg.windows(2).all(|w| w[0].day <= w[1].day) {
                seg.sort_unstable_by_key(|r| r.day);
            }
        }
    });
    Grouped::Scattered { offsets, recs }
}

/// [`group_by_customer`] for the common file that is already grouped by customer (customer
/// numbers never decrease, as when customers are numbered in order of first appearance in a
/// file written customer by customer) with no order after `as_of`: the orders stay where they
/// are (copying them into records cost a fifth of the stage) and only the offsets are
/// computed. `None` otherwise.
fn group_sorted(orders: &Orders, n_customers: usize, as_of: i32) -> Option<Vec<usize>> {
    let customer = &orders.customer;
    // By chunks in parallel (rayon's per-element `all` and `position` were several times
    // slower): each chunk lists where a new customer starts, or fails if a customer number
    // goes down; then those starts are spread over the customers in between (no orders).
    let late = orders.day.par_chunks(SCAN_CHUNK).map(|ch| ch.iter().copied().max().unwrap_or(i32::MIN)).max();
    if late.is_some_and(|d| d > as_of) || customer.last().is_some_and(|&c| c as usize >= n_customers) {
        return None;
    }
    let starts: Option<Vec<Vec<(u32, usize)>>> = customer
        .par_chunks(SCAN_CHUNK)
        .enumerate()
        .map(|(k, ch)| {
            let base = k * SCAN_CHUNK;
            let mut prev = if base == 0 { None } else { Some(customer[base - 1]) };
            let mut starts = Vec::new();
            for (i, &c) in ch.iter().enumerate() {
                match prev {
                    Some(p) if p == c => continue,
                    Some(p) if p > c => return None,
                    _ => {}
                }
                starts.push((c, base + i));
                prev = Some(c);
            }
            Some(starts)
        })
        .collect();
    let mut offsets = Vec::with_capacity(n_customers + 1);
    for &(c, at) in starts?.iter().flatten() {
        offsets.resize(c as usize + 1, at);
    }
    offsets.resize(n_customers + 1, customer.len());
    Some(offsets)
}

/// `n` copies of `v`, written in parallel: a column whose zero value is not all zero bytes
/// (`None` of an `Option<i32>`) is otherwise filled by one thread, a page fault every 4 KiB.
pub(crate) fn filled<T: Clone + Send + Sync>(n: usize, v: T) -> Vec<T> {
    let mut out = Vec::with_capacity(n);
    out.par_extend(rayon::iter::repeat_n(v, n));
    out
}

/// Orders per task in the chunked scans over the order columns.
const SCAN_CHUNK: usize = 1 << 16;

/// Summarises one customer's records (sorted by day, all on or before `as_of`).
fn summarize_customer(recs: &[Rec], ctx: &Ctx<'_>, scratch: &mut Scratch) -> Row {
    let mut row = Row::default();
    if recs.is_empty() {
        return row;
    }
    let as_of = ctx.as_of;
    let cfg = ctx.config;
    // Inclusive lower bounds of each window (a day d is inside iff d >= bound).
    let window_from = as_of - cfg.rfm_window_days as i32 + 1;
    let trailing_from = as_of - cfg.trailing_days as i32 + 1;
    let recent_from = as_of - cfg.recent_days as i32 + 1;
    let baseline_from = recent_from - cfg.baseline_days as i32;

    scratch.gaps.clear();
    scratch.categories.clear();
    let mut full_price_orders = 0u32;
    let mut baseline_spend: i64 = 0;
    let mut repeat_spend: i64 = 0;
    let mut prev_day: Option<i32> = None;
    let first_day = recs[0].day;

    for r in recs {
        row.order_count += 1;
        row.total_spend = row.total_spend.saturating_add(r.amount);
        if r.day >= window_from {
            row.window_orders += 1;
            row.window_spend = row.window_spend.saturating_add(r.amount);
        }
        if r.day >= trailing_from {
            row.trailing_spend = row.trailing_spend.saturating_add(r.amount);
        }
        if r.day >= recent_from {
            row.recent_spend = row.recent_spend.saturating_add(r.amount);
        } else if r.day >= baseline_from {
            baseline_spend = baseline_spend.saturating_add(r.amount);
        }
        if r.full_price {
            full_price_orders += 1;
        }
        if ctx.has_categories && r.category != NO_CATEGORY {
            scratch.categories.push(r.category);
        }
        if r.day != first_day {
            repeat_spend = repeat_spend.saturating_add(r.amount);
        }
        if prev_day != Some(r.day) {
            // A new purchase day.
            row.purchase_days += 1;
            if let Some(p) = prev_day {
                scratch.gaps.push((r.day - p) as u32);
            }
            if r.day < recent_from && r.day >= baseline_from {
                row.baseline_purchase_days += 1;
            }
            prev_day = Some(r.day);
        }
    }
    let last_day = prev_day.unwrap_or(first_day);
    row.first = Some(first_day);
    row.last = Some(last_day);
    row.x = row.purchase_days - 1;
    row.t_x = (last_day - first_day) as u32;
    row.age = (as_of - first_day) as u32;
    row.m = if row.x > 0 { repeat_spend as f64 / f64::from(row.x) } else { 0.0 };
    if ctx.has_full_price {
        row.full_price_share = Some(f64::from(full_price_orders) / f64::from(row.order_count));
    }
    if ctx.has_categories {
        scratch.categories.sort_unstable();
        scratch.categories.dedup();
        row.distinct_categories = scratch.categories.len() as u32;
    }
    // Baseline per recent-window length over the customer's exposure within the baseline
    // period, floored at one recent window (see the field's doc).
    let exposure = i64::from(recent_from) - i64::from(first_day.max(baseline_from));
    if exposure > 0 {
        let exposure = exposure.clamp(i64::from(cfg.recent_days), i64::from(cfg.baseline_days).max(i64::from(cfg.recent_days)));
        row.baseline_spend = baseline_spend as f64 * f64::from(cfg.recent_days) / exposure as f64;
    }
    row.last_return_day = last_return_day(&scratch.gaps, first_day, &cfg.churn, &mut scratch.sorted_gaps);
    // `last_return_day` leaves every gap in `sorted_gaps`, in order: the median is read off.
    row.median_gap = sorted_median(&scratch.sorted_gaps);
    row
}

/// Median of sorted `values` (mean of the two middle ones for an even count); `None` when empty.
fn sorted_median(values: &[u32]) -> Option<f64> {
    let n = values.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(f64::from(values[n / 2])),
        _ => Some((f64::from(values[n / 2 - 1]) + f64::from(values[n / 2])) / 2.0),
    }
}

/// Median of `values` (mean of the two middle ones for an even count); `None` when empty.
#[cfg(test)]
fn median(values: &[u32], buf: &mut Vec<u32>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    buf.clear();
    buf.extend_from_slice(values);
    let n = buf.len();
    let mid = n / 2;
    let (_, &mut hi, _) = buf.select_nth_unstable(mid);
    if n % 2 == 1 {
        Some(f64::from(hi))
    } else {
        // The largest of the lower half is the other middle value.
        let lo = buf[..mid].iter().copied().max().unwrap_or(hi);
        Some((f64::from(lo) + f64::from(hi)) / 2.0)
    }
}

/// The most recent purchase day that followed a silence longer than the churn threshold as it
/// stood then (from the median of the earlier gaps only).
fn last_return_day(gaps: &[u32], first_day: i32, rule: &ChurnRule, sorted: &mut Vec<u32>) -> Option<i32> {
    sorted.clear();
    let mut day = first_day;
    let mut result = None;
    for &g in gaps {
        let prior_median = sorted_median(sorted);
        day += g as i32;
        if f64::from(g) > rule.threshold_days(prior_median) {
            result = Some(day);
        }
        // Keep `sorted` ordered (insertion; gaps per customer are few).
        let pos = sorted.partition_point(|&v| v <= g);
        sorted.insert(pos, g);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn orders(rows: &[(u32, i32, i64)]) -> Orders {
        Orders {
            customer: rows.iter().map(|r| r.0).collect(),
            day: rows.iter().map(|r| r.1).collect(),
            amount_cents: rows.iter().map(|r| r.2).collect(),
            ..Default::default()
        }
    }

    /// Orders grouped by customer (summarised in place, offsets found by chunks) and the same
    /// orders shuffled (scattered by the counting sort) summarise alike, across many chunks,
    /// with customers without orders at the start, in between and at the end.
    #[test]
    fn grouped_and_shuffled_orders_summarise_alike() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let mut next = move |m: u64| rng.gen_range(0..m);
        let n_customers = 60_000;
        let mut rows = Vec::new();
        for c in 1..n_customers - 3 {
            if c % 7 == 0 {
                continue;
            }
            for _ in 0..next(9) {
                rows.push((c as u32, 100 + next(900) as i32, 100 + next(50_000) as i64));
            }
        }
        assert!(rows.len() > 3 * SCAN_CHUNK, "spans several scan chunks");
        let grouped = orders(&rows);
        let as_of = 1000;
        let offsets = group_sorted(&grouped, n_customers, as_of).expect("grouped by customer");
        assert_eq!(offsets.len(), n_customers + 1);
        let mut own = vec![0; n_customers];
        for r in &rows {
            own[r.0 as usize] += 1;
        }
        for c in 0..n_customers {
            assert_eq!(offsets[c + 1] - offsets[c], own[c], "customer {c}");
        }
        for i in (1..rows.len()).rev() {
            rows.swap(i, next(i as u64 + 1) as usize);
        }
        let shuffled = orders(&rows);
        assert!(group_sorted(&shuffled, n_customers, as_of).is_none());
        let config = SummaryConfig::default();
        let a = summarize(&grouped, n_customers, as_of, &config).unwrap();
        let b = summarize(&shuffled, n_customers, as_of, &config).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.purchase_days[0], 0);
        assert_eq!(a.purchase_days[n_customers - 1], 0);
    }

    #[test]
    fn btyd_fields_and_same_day_orders() {
        // customer 0: days 10 (two orders), 20, 40 (two orders); as_of 100; one order after as_of.
        let o = orders(&[(0, 40, 500), (0, 10, 100), (0, 20, 300), (0, 10, 200), (0, 40, 100), (0, 150, 9999), (2, 100, 700)]);
        let s = summarize(&o, 3, 100, &SummaryConfig::default()).unwrap();
        assert_eq!(s.purchase_days, vec![3, 0, 1]);
        assert_eq!(s.x, vec![2, 0, 0]);
        assert_eq!(s.t_x, vec![30, 0, 0]);
        assert_eq!(s.age, vec![90, 0, 0]);
        assert_eq!(s.first_purchase_day[0], Some(10));
        assert_eq!(s.last_purchase_day[0], Some(40));
        assert_eq!(s.last_purchase_day[1], None);
        // repeat days: day 20 = 300, day 40 = 600 → m = 450; the first day's 300 excluded
        assert_eq!(s.m[0], 450.0);
        assert_eq!(s.m[2], 0.0);
        assert_eq!(s.order_count, vec![5, 0, 1]);
        assert_eq!(s.total_spend_cents, vec![1200, 0, 700]);
        // gaps 10 and 20 → median 15
        assert_eq!(s.median_gap_days[0], Some(15.0));
        assert_eq!(s.median_gap_days[2], None);
        assert_eq!(s.recency_days(0), Some(60));
        assert_eq!(s.recency_days(1), None);
    }

    #[test]
    fn windows_are_inclusive_of_as_of_and_exclusive_of_start() {
        // RFM window 365 days ending at as_of=1000 holds days 636..=1000.
        let o = orders(&[(0, 635, 1), (0, 636, 10), (0, 1000, 100)]);
        let s = summarize(&o, 1, 1000, &SummaryConfig::default()).unwrap();
        assert_eq!(s.window_orders[0], 2);
        assert_eq!(s.window_spend_cents[0], 110);
        assert_eq!(s.trailing_spend_cents[0], 110);
        // recent window 911..=1000; baseline 546..=910
        assert_eq!(s.recent_spend_cents[0], 100);
        assert_eq!(s.baseline_purchase_days[0], 2);
        // customer existed in the whole baseline (first purchase 635 > 546, exposure 911−635=276 days)
        assert!((s.baseline_spend_cents[0] - 11.0 * 90.0 / 276.0).abs() < 1e-12);
    }

    #[test]
    fn baseline_uses_full_year_for_old_customers() {
        let o = orders(&[(0, 0, 1000), (0, 700, 3650), (0, 800, 3650)]);
        let s = summarize(&o, 1, 1000, &SummaryConfig::default()).unwrap();
        // baseline 546..=910 holds 7300 cents over 365 days → 1800 per 90 days
        assert!((s.baseline_spend_cents[0] - 1800.0).abs() < 1e-9);
        assert_eq!(s.baseline_purchase_days[0], 2);
        assert_eq!(s.recent_spend_cents[0], 0);
    }

    #[test]
    fn categories_and_full_price() {
        let mut o = orders(&[(0, 1, 10), (0, 2, 10), (0, 3, 10), (0, 3, 10)]);
        o.category = vec![5, NO_CATEGORY, 5, 7];
        o.full_price = vec![true, false, true, true];
        let s = summarize(&o, 1, 10, &SummaryConfig::default()).unwrap();
        assert_eq!(s.distinct_categories[0], 2);
        assert_eq!(s.full_price_share[0], Some(0.75));
        assert!(s.has_categories && s.has_full_price);
    }

    #[test]
    fn won_back_return_uses_threshold_of_the_time() {
        // Single purchase then a 200-day silence (> 180 floor) then back: a return.
        let o = orders(&[(0, 0, 1), (0, 200, 1), (0, 210, 1)]);
        let s = summarize(&o, 1, 220, &SummaryConfig::default()).unwrap();
        assert_eq!(s.last_return_day[0], Some(200));
        // Regular 100-day rhythm: 3×median = 300 > 250, not a return.
        let o = orders(&[(0, 0, 1), (0, 100, 1), (0, 200, 1), (0, 450, 1)]);
        let s = summarize(&o, 1, 460, &SummaryConfig::default()).unwrap();
        assert_eq!(s.last_return_day[0], None);
        // 10-day rhythm, then 181 days: 181 > max(180, 30) → return.
        let o = orders(&[(0, 0, 1), (0, 10, 1), (0, 20, 1), (0, 201, 1)]);
        let s = summarize(&o, 1, 201, &SummaryConfig::default()).unwrap();
        assert_eq!(s.last_return_day[0], Some(201));
    }

    #[test]
    fn median_even_and_odd() {
        let mut buf = Vec::new();
        assert_eq!(median(&[5, 1, 3], &mut buf), Some(3.0));
        assert_eq!(median(&[5, 1, 3, 10], &mut buf), Some(4.0));
        assert_eq!(median(&[], &mut buf), None);
        // The sorted gaps left by last_return_day give the same median.
        for gaps in [vec![5u32, 1, 3], vec![5, 1, 3, 10], vec![7], vec![], vec![4, 4, 9, 1, 30, 2]] {
            let mut sorted = Vec::new();
            last_return_day(&gaps, 0, &ChurnRule::default(), &mut sorted);
            assert_eq!(sorted_median(&sorted), median(&gaps, &mut buf), "{gaps:?}");
        }
    }

    #[test]
    fn bad_input_is_an_error() {
        let o = orders(&[(0, 1, 10), (5, 2, 10)]);
        assert!(matches!(summarize(&o, 2, 10, &SummaryConfig::default()), Err(AnalyticsError::CustomerOutOfRange { row: 1, .. })));
        let mut o = orders(&[(0, 1, 10)]);
        o.day.push(3);
        assert!(matches!(summarize(&o, 1, 10, &SummaryConfig::default()), Err(AnalyticsError::LengthMismatch { .. })));
        let o = orders(&[(0, 1, 10)]);
        let cfg = SummaryConfig { recent_days: 0, ..Default::default() };
        assert!(matches!(summarize(&o, 1, 10, &cfg), Err(AnalyticsError::InvalidConfig { .. })));
    }
}
