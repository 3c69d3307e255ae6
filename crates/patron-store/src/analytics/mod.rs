//! Analytics in the store: the business day of each order, per-customer summaries kept current
//! as orders arrive, analysis runs (fitted parameters and fit report) and the latest scores per
//! customer, and the aggregates the dashboards draw.
//!
//! The models themselves live in `patron-analytics` (no IO); this module feeds them column-wise
//! data read with one query and writes their results back with the engine's bulk path.

use chrono::{DateTime, NaiveDate, Utc};
use patron_analytics::{AnalyticsConfig, AnalyticsOutput, CustomerExtras, Orders};
use serde::Serialize;

use crate::cost_to_serve::CostFigures;
use crate::db::{query, Arg, ColType, Stage, Tx};
use crate::next_action::ScoreExtras;
use crate::users::Actor;
use crate::{audit, Result, Store, StoreError};

mod input;
mod overview;

/// Names the models and definitions a scores row was computed with; stored with every row.
pub const MODEL_VERSION: &str = concat!("patron-analytics/", env!("CARGO_PKG_VERSION"), " bgnbd-gg-1");

/// Day number (days since 1970-01-01) of an instant's calendar day in the business time zone.
pub fn business_day(t: DateTime<Utc>, tz: chrono_tz::Tz) -> i32 {
    patron_analytics::day_number(t.with_timezone(&tz).date_naive())
}

/// Calendar date of a day number (for display); `None` out of range.
pub fn day_date(day: i32) -> Option<NaiveDate> {
    patron_analytics::date_from_day_number(day)
}

/// The all-time summary of a customer's completed orders, kept current as orders arrive.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct CustomerSummary {
    /// The customer.
    pub customer_id: i64,
    /// Completed orders.
    pub order_count: i64,
    /// Their total (cents).
    pub spend_cents: i64,
    /// Distinct purchase days (several orders on one day are one purchase day).
    pub purchase_days: i64,
    /// First purchase day (day number in the business time zone).
    pub first_purchase_day: Option<i64>,
    /// Last purchase day (day number).
    pub last_purchase_day: Option<i64>,
    /// Spend (cents) on the purchase days after the first (the BTYD repeat spend).
    pub repeat_spend_cents: i64,
    /// Time of the latest completed order.
    pub last_ordered_at: Option<DateTime<Utc>>,
}

/// One customer's latest scores (a row of `customer_scores`).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct ScoreRow {
    /// The customer.
    pub customer_id: i64,
    /// The analysis run that wrote the row.
    pub run_id: i64,
    /// The date the scores are as of (day number).
    pub as_of_day: i64,
    /// Models and definitions used.
    pub model_version: String,
    /// Distinct purchase days up to as_of.
    pub purchase_days: i64,
    /// First purchase day (day number).
    pub first_purchase_day: Option<i64>,
    /// Last purchase day (day number).
    pub last_purchase_day: Option<i64>,
    /// x: repeat purchase days.
    pub x: i64,
    /// t_x: days from the first to the last purchase day.
    pub t_x: i64,
    /// T: days from the first purchase day to as_of.
    pub age_days: i64,
    /// m: mean spend of the repeat purchase days (cents).
    pub m_cents: f64,
    /// Orders up to as_of.
    pub order_count: i64,
    /// Spend up to as_of (cents).
    pub spend_cents: i64,
    /// Spend in the trailing 12 months (cents).
    pub trailing_spend_cents: i64,
    /// Median gap between purchase days.
    pub median_gap_days: Option<f64>,
    /// R: days since the last purchase.
    pub recency_days: Option<i64>,
    /// F: orders in the RFM window.
    pub frequency: i64,
    /// M: spend in the RFM window (cents).
    pub monetary_cents: i64,
    /// R score 1–5.
    pub rfm_r: Option<i64>,
    /// F score 1–5.
    pub rfm_f: Option<i64>,
    /// M score 1–5.
    pub rfm_m: Option<i64>,
    /// RFM value class key (`important_value` …).
    pub rfm_class: Option<String>,
    /// ABCD tier (`A` … `D`).
    pub abcd_tier: Option<String>,
    /// Lifecycle stage key.
    pub lifecycle: String,
    /// Churn status: `none`, `relative` or `absolute`.
    pub churn: String,
    /// The customer's absolute-churn threshold in days.
    pub churn_threshold_days: Option<f64>,
    /// P(alive) from BG/NBD.
    pub p_alive: Option<f64>,
    /// Expected purchase days over the horizon.
    pub expected_purchases: Option<f64>,
    /// Gamma-Gamma expected value of a purchase day (cents).
    pub expected_order_value_cents: Option<f64>,
    /// Discounted CLV over the configured months (cents).
    pub clv_cents: Option<f64>,
    /// Loyalty index 0–100.
    pub loyalty_index: Option<f64>,
    /// Loyalty-matrix situation key.
    pub loyalty_situation: Option<String>,
    /// Cost to serve: revenue in the period (none when nothing happened in it).
    pub cts_revenue_cents: Option<i64>,
    /// Margin of that revenue.
    pub margin_cents: Option<i64>,
    /// Cost to serve: tickets, compensations, messages, rewards.
    pub cost_to_serve_cents: Option<i64>,
    /// Margin − cost to serve.
    pub profit_cents: Option<i64>,
    /// The profitability matrix's cell.
    pub cts_quadrant: Option<String>,
}

/// One analysis run: when, as of which date, and its fit report (parameters, convergence).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AnalysisRun {
    /// Run id.
    pub id: i64,
    /// As-of date.
    pub as_of: Option<NaiveDate>,
    /// Models and definitions used.
    pub model_version: String,
    /// Start of the run.
    pub started_at: DateTime<Utc>,
    /// End of the run.
    pub finished_at: DateTime<Utc>,
    /// Customers scored.
    pub customers: i64,
    /// Orders used.
    pub orders_used: i64,
    /// The configuration used.
    #[schema(value_type = Object)]
    pub config: serde_json::Value,
    /// The fit report: `bgnbd` {r, alpha, a, b, log_likelihood, converged, iterations …},
    /// `gamma_gamma` {p, q, gamma …}, `abcd` tiers with revenue shares, `warnings`.
    #[schema(value_type = Object)]
    pub report: serde_json::Value,
}

#[derive(sqlx::FromRow)]
struct RunDbRow {
    id: i64,
    as_of_day: i64,
    model_version: String,
    started_at: DateTime<Utc>,
    finished_at: DateTime<Utc>,
    customers: i64,
    orders_used: i64,
    config: String,
    report: String,
}

impl From<RunDbRow> for AnalysisRun {
    fn from(r: RunDbRow) -> Self {
        AnalysisRun {
            id: r.id,
            as_of: i32::try_from(r.as_of_day).ok().and_then(day_date),
            model_version: r.model_version,
            started_at: r.started_at,
            finished_at: r.finished_at,
            customers: r.customers,
            orders_used: r.orders_used,
            config: serde_json::from_str(&r.config).unwrap_or(serde_json::Value::Null),
            report: serde_json::from_str(&r.report).unwrap_or(serde_json::Value::Null),
        }
    }
}

/// What the models need from the database, column-wise (index = position in `customer_ids`).
#[derive(Debug, Clone, Default)]
pub struct AnalysisInput {
    /// Database ids of the (not deleted) customers, ascending.
    pub customer_ids: Vec<i64>,
    /// Completed orders on or before as_of.
    pub orders: Orders,
    /// Referrals and survey answers.
    pub extras: CustomerExtras,
    /// The categories each customer bought up to as_of (every line of their completed orders,
    /// the product's category where the line names none), ascending and distinct: the next
    /// best action's baskets.
    pub baskets: Vec<Vec<u32>>,
    /// Each customer's revenue and margin (cents) over the cost-to-serve period up to as_of
    /// (`None`: no completed order in it).
    pub period_sales: Vec<Option<(i64, i64)>>,
}

/// Counts, revenue and mean scores of one group on a dashboard.
#[derive(Debug, Clone, Serialize, serde::Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct GroupStat {
    /// The group key (an RFM class, tier, stage …; empty for "none").
    pub key: String,
    /// Customers in the group.
    pub customers: i64,
    /// Their spend in the trailing 12 months (cents).
    pub revenue_cents: i64,
    /// Their mean P(alive), where fitted.
    pub mean_p_alive: Option<f64>,
    /// Their total CLV (cents), where fitted.
    pub clv_cents: Option<f64>,
}

/// Churn counts of one group (by ABCD tier or RFM class).
#[derive(Debug, Clone, Serialize, serde::Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct ChurnStat {
    /// The group key.
    pub key: String,
    /// Customers in the group.
    pub customers: i64,
    /// Absolutely churned.
    pub absolute: i64,
    /// Relatively churned (still buying, much less).
    pub relative: i64,
}

/// A histogram bucket `[lower, upper)`.
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Bucket {
    /// Lower bound (inclusive).
    pub lower: f64,
    /// Upper bound (exclusive; inclusive for the last bucket).
    pub upper: f64,
    /// Customers in the bucket.
    pub customers: i64,
}

/// Everything the analytics dashboard draws, for one scope (the whole base, or an agent's portfolio).
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Overview {
    /// The latest run, if any.
    #[serde(default, skip_deserializing)]
    pub run: Option<AnalysisRun>,
    /// Customers in scope that have scores.
    pub scored_customers: i64,
    /// By RFM class (key = class key; customers without a class are left out).
    pub rfm_classes: Vec<GroupStat>,
    /// By ABCD tier with revenue.
    pub abcd_tiers: Vec<GroupStat>,
    /// By lifecycle stage.
    pub lifecycle: Vec<GroupStat>,
    /// Churn by ABCD tier.
    pub churn_by_tier: Vec<ChurnStat>,
    /// Churn by RFM class.
    pub churn_by_rfm_class: Vec<ChurnStat>,
    /// P(alive) histogram (10 buckets of 0.1).
    pub p_alive_histogram: Vec<Bucket>,
    /// CLV histogram (yuan buckets up to the 99th percentile).
    pub clv_histogram: Vec<Bucket>,
}

/// The summaries aggregation; `{scope}` narrows it to some customers (empty = everyone).
/// Orders of one day are one purchase day; the repeat spend leaves out the first purchase day,
/// whose spend one indexed lookup per customer finds (a window over the purchase days made
/// both engines sort them again: SQLite took 4.2 s instead of 2.9 s for 1 M orders).
fn summary_select(engine: crate::db::Engine, scope: &str) -> String {
    // Sums of money go wide and saturate (issue 14 §2.2): one stored order of `i64::MAX`
    // must not make a customer's summary, and with it every order write, fail.
    let sum = |e: &str| engine.sum_wide(e);
    let spend = engine.clamp_bigint(&sum("spend"));
    let repeat = engine.clamp_bigint(&format!(
        "{} - (SELECT {} FROM orders f WHERE f.customer_id = d.customer_id \
         AND f.ordered_day = MIN(d.ordered_day) AND f.status = 'completed')",
        sum("spend"),
        sum("f.total_cents")
    ));
    format!(
        "SELECT customer_id, CAST(SUM(n) AS BIGINT), {spend}, COUNT(*), MIN(ordered_day), MAX(ordered_day), {repeat}, MAX(last_at), $1 \
         FROM (SELECT customer_id, ordered_day, COUNT(*) AS n, {} AS spend, MAX(ordered_at) AS last_at \
               FROM orders WHERE status = 'completed' AND ordered_day IS NOT NULL {scope} \
               GROUP BY customer_id, ordered_day) d \
         WHERE true GROUP BY customer_id",
        sum("total_cents")
    )
}

const SUMMARY_COLUMNS: &str = "customer_id, order_count, spend_cents, purchase_days, first_purchase_day, last_purchase_day, \
     repeat_spend_cents, last_ordered_at, refreshed_at";

/// Makes the summaries' INSERT an upsert. The writers that refresh a customer's summary hold the
/// customer's row lock (API order writes) or run alone (SQLite), but a bulk import only shares
/// the rows it refers to: a summary another transaction committed between the import's DELETE and
/// its INSERT is then overwritten with the import's later, complete aggregate instead of failing
/// the import on the primary key.
const SUMMARY_UPSERT: &str = " ON CONFLICT (customer_id) DO UPDATE SET order_count = excluded.order_count, \
     spend_cents = excluded.spend_cents, purchase_days = excluded.purchase_days, first_purchase_day = excluded.first_purchase_day, \
     last_purchase_day = excluded.last_purchase_day, repeat_spend_cents = excluded.repeat_spend_cents, \
     last_ordered_at = excluded.last_ordered_at, refreshed_at = excluded.refreshed_at";

/// Customer ids whose summaries an import must refresh at its end.
pub(crate) static TOUCHED_STAGE: Stage = Stage { name: "patron_stage_touched", columns: &[("customer_id", ColType::Int)] };

/// Recomputes the summaries of the customers listed in [`TOUCHED_STAGE`] (which the caller
/// created and filled in this transaction). The cost is the touched customers' own orders,
/// independent of the size of the base.
pub(crate) async fn refresh_touched(tx: &mut Tx, now: DateTime<Utc>) -> Result<()> {
    refresh_listed(tx, now, TOUCHED_STAGE.name).await
}

/// Recomputes the summaries of the customers listed in the temporary table `stage`.
async fn refresh_listed(tx: &mut Tx, now: DateTime<Utc>, stage: &str) -> Result<()> {
    let scope = format!("AND customer_id IN (SELECT customer_id FROM {stage})");
    if tx.engine() == crate::db::Engine::Postgres {
        // Filling the touched-customers stage turned hash joins off for the batch statements
        // (`Stage::fill`); this aggregation over every touched customer needs them.
        tx.execute(query("RESET enable_hashjoin")).await?;
        tx.execute(query("RESET enable_mergejoin")).await?;
        // Temporary tables get no statistics by themselves: without them the planner guessed
        // the stage's size and the DELETE below took 0.4–0.5 s instead of 0.1–0.16 s for 110,000
        // touched customers (the ANALYZE itself: 20–30 ms).
        tx.execute(query(format!("ANALYZE {stage}"))).await?;
    }
    tx.execute(query(format!("DELETE FROM customer_summaries WHERE customer_id IN (SELECT customer_id FROM {stage})"))).await?;
    tx.execute(
        query(format!("INSERT INTO customer_summaries ({SUMMARY_COLUMNS}) {}{SUMMARY_UPSERT}", summary_select(tx.engine(), &scope)))
            .bind(now),
    )
    .await?;
    Ok(())
}

/// Completed orders a [`NewSummaries`] follows at most; past them a file's summaries are left to
/// the SQL aggregation (the days kept per customer would grow with the file).
const NEW_SUMMARIES_MAX_ORDERS: usize = 20_000_000;

/// Sums below this are exact in SQLite's `TOTAL()` (a double) whatever the order of addition,
/// so the figures computed here equal the aggregation's.
const EXACT_FLOAT_SUM: i128 = 1 << 53;

/// The summaries of the customers an orders import writes new orders for, computed from those
/// rows as they are written, so that a customer who had no completed order before the file does
/// not need the aggregation over their orders read back from the tables at the end (SQLite,
/// 1 M new orders: about a second of a seven-second import). The figures are those of
/// [`summary_select`], which the tests compare. Given up (the aggregation then runs for every
/// touched customer, as before) once any order of the file changes a stored one, past
/// [`NEW_SUMMARIES_MAX_ORDERS`], or for sums where SQLite's `TOTAL()` could round.
#[derive(Default)]
pub(crate) struct NewSummaries {
    by_customer: foldhash::HashMap<i64, NewSummary>,
    orders: usize,
    given_up: bool,
}

/// One customer's completed orders in the file.
struct NewSummary {
    count: i64,
    spend: i128,
    first_day: i64,
    first_day_spend: i128,
    last_day: i64,
    /// Purchase days (with repeats until the end).
    days: Vec<i64>,
    last_at: DateTime<Utc>,
}

impl NewSummaries {
    /// Counts one new order of `customer_id` (only completed orders count, as in the aggregation).
    pub(crate) fn add(&mut self, customer_id: i64, status: &str, day: i64, cents: i64, at: DateTime<Utc>) {
        if self.given_up || status != "completed" {
            return;
        }
        self.orders += 1;
        if self.orders > NEW_SUMMARIES_MAX_ORDERS || cents < 0 {
            return self.give_up();
        }
        let cents = i128::from(cents);
        let s = self.by_customer.entry(customer_id).or_insert_with(|| NewSummary {
            count: 0,
            spend: 0,
            first_day: day,
            first_day_spend: 0,
            last_day: day,
            days: Vec::new(),
            last_at: at,
        });
        s.count += 1;
        s.spend += cents;
        if day < s.first_day {
            (s.first_day, s.first_day_spend) = (day, cents);
        } else if day == s.first_day {
            s.first_day_spend += cents;
        }
        s.last_day = s.last_day.max(day);
        s.last_at = s.last_at.max(at);
        if s.days.last() != Some(&day) {
            s.days.push(day);
        }
        if s.spend >= EXACT_FLOAT_SUM {
            self.give_up();
        }
    }

    /// From now on the aggregation refreshes every touched customer.
    pub(crate) fn give_up(&mut self) {
        self.given_up = true;
        self.by_customer = Default::default();
    }
}

/// The columns of `customer_summaries` a [`NewSummaries`] writes.
const NEW_SUMMARY_COLUMNS: &[(&str, ColType)] = &[
    ("customer_id", ColType::Int),
    ("order_count", ColType::Int),
    ("spend_cents", ColType::Int),
    ("purchase_days", ColType::Int),
    ("first_purchase_day", ColType::Int),
    ("last_purchase_day", ColType::Int),
    ("repeat_spend_cents", ColType::Int),
    ("last_ordered_at", ColType::Time),
    ("refreshed_at", ColType::Time),
];

/// The summaries a [`NewSummaries`] computed, staged for one insert (PostgreSQL).
static NEW_SUMMARY_STAGE: Stage = Stage { name: "patron_stage_summaries", columns: NEW_SUMMARY_COLUMNS };

/// SQLite: the same rows appended straight to the table.
static NEW_SUMMARY_ROWS: Stage = Stage { name: "customer_summaries", columns: NEW_SUMMARY_COLUMNS };

/// Customers with a summary before an import, whose summaries the aggregation recomputes.
static RESUMMARISE_STAGE: Stage = Stage { name: "patron_stage_resummarise", columns: &[("customer_id", ColType::Int)] };

/// Refreshes the summaries of the customers in [`TOUCHED_STAGE`] after an import of orders:
/// those who had no summary (no completed order) before get the figures `new` computed from the
/// file's rows; the others, or all when `new` gave up, are recomputed by the aggregation.
pub(crate) async fn refresh_touched_with(tx: &mut Tx, now: DateTime<Utc>, new: NewSummaries) -> Result<()> {
    if new.given_up {
        return refresh_touched(tx, now).await;
    }
    let had: std::collections::HashSet<i64> = tx
        .fetch_all::<(i64,)>(query(format!(
            "SELECT customer_id FROM customer_summaries WHERE customer_id IN (SELECT customer_id FROM {})",
            TOUCHED_STAGE.name
        )))
        .await?
        .into_iter()
        .map(|(id,)| id)
        .collect();
    let clamp = |v: i128| i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX });
    // In customer order: the summaries' key. From the map's order, every insert landed on a
    // random page of the table (0.31 s for 110,000 customers; 0.03 s in order).
    let mut fresh: Vec<(i64, NewSummary)> = new.by_customer.into_iter().filter(|(id, _)| !had.contains(id)).collect();
    fresh.sort_unstable_by_key(|(id, _)| *id);
    let rows: Vec<Vec<Arg>> = fresh
        .into_iter()
        .map(|(id, mut s)| {
            s.days.sort_unstable();
            s.days.dedup();
            vec![
                Arg::I64(Some(id)),
                Arg::I64(Some(s.count)),
                Arg::I64(Some(clamp(s.spend))),
                Arg::I64(Some(s.days.len() as i64)),
                Arg::I64(Some(s.first_day)),
                Arg::I64(Some(s.last_day)),
                Arg::I64(Some(clamp(s.spend - s.first_day_spend))),
                Arg::Time(Some(s.last_at)),
                Arg::Time(Some(now)),
            ]
        })
        .collect();
    let expected = rows.len() as u64;
    let inserted = if tx.engine() == crate::db::Engine::Sqlite {
        // The transaction holds SQLite's only write lock: none of these customers can have
        // gained a summary since `had` was read.
        NEW_SUMMARY_ROWS.fill(tx, rows).await?;
        expected
    } else if tx.layout() == crate::db::Layout::Single && copied_straight_in(tx, &rows).await? {
        expected
    } else {
        NEW_SUMMARY_STAGE.create(tx).await?;
        NEW_SUMMARY_STAGE.fill(tx, rows).await?;
        // An order written through the API meanwhile may have given one of these customers a
        // summary: that one is kept, and then every touched customer is recomputed by the
        // aggregation, which sees all committed orders.
        let inserted = tx
            .execute(query(format!(
                "INSERT INTO customer_summaries ({SUMMARY_COLUMNS}) SELECT {SUMMARY_COLUMNS} FROM {} WHERE true \
                 ON CONFLICT (customer_id) DO NOTHING",
                NEW_SUMMARY_STAGE.name
            )))
            .await?;
        NEW_SUMMARY_STAGE.drop_table(tx).await?;
        inserted
    };
    if inserted != expected {
        return refresh_touched(tx, now).await;
    }
    if !had.is_empty() {
        RESUMMARISE_STAGE.create(tx).await?;
        RESUMMARISE_STAGE.fill(tx, had.into_iter().map(|id| vec![Arg::I64(Some(id))]).collect()).await?;
        refresh_listed(tx, now, RESUMMARISE_STAGE.name).await?;
        RESUMMARISE_STAGE.drop_table(tx).await?;
    }
    Ok(())
}

/// PostgreSQL (one server): COPYs new summaries straight into `customer_summaries`, on the bet
/// that no order written through the API meanwhile gave one of these customers a summary; a
/// savepoint takes the bet back when one did (the unique key refuses the COPY), and the caller
/// goes the way of the stage and `ON CONFLICT`. The stage cost a million orders' import 0.5 s,
/// the COPY 0.2 s. (Not on Citus, where a savepoint around a COPY into shards on the workers
/// is not worth the risk for this.)
async fn copied_straight_in(tx: &mut Tx, rows: &[Vec<Arg>]) -> Result<bool> {
    tx.execute(query("SAVEPOINT patron_new_summaries")).await?;
    match NEW_SUMMARY_ROWS.fill(tx, rows.to_vec()).await {
        Ok(()) => {
            tx.execute(query("RELEASE SAVEPOINT patron_new_summaries")).await?;
            Ok(true)
        }
        Err(e) => {
            tracing::debug!(error = %e, "new summaries collided with summaries written meanwhile");
            tx.execute(query("ROLLBACK TO SAVEPOINT patron_new_summaries")).await?;
            Ok(false)
        }
    }
}

/// The SELECT of one customer's summary ([`CustomerSummary`]'s columns).
const SUMMARY_OF_CUSTOMER: &str = "SELECT customer_id, order_count, spend_cents, purchase_days, first_purchase_day, last_purchase_day, \
     repeat_spend_cents, last_ordered_at FROM customer_summaries WHERE customer_id = $1";

/// A customer's summary, read on `c` (none before their first completed order).
pub(crate) async fn read_summary(c: &mut crate::db::ReadConn, customer_id: i64) -> Result<Option<CustomerSummary>> {
    c.fetch_optional(query(SUMMARY_OF_CUSTOMER).bind(customer_id)).await
}

/// A completed order just created through the API, as its customer's summary counts it.
pub(crate) struct CompletedOrder {
    /// The order (already written in the transaction).
    pub id: i64,
    /// Its business day.
    pub day: i64,
    /// Its total (cents, not negative).
    pub cents: i64,
    /// When it was placed.
    pub at: DateTime<Utc>,
}

/// Adds a completed order just created through the API to its customer's summary: the stored
/// figures plus this order, in three indexed statements. The aggregation of [`refresh_customers`]
/// reads every completed order of the customer instead, and under SQLite's one write lock that
/// was 2–4 ms an order for a customer with 5,000 orders (a B2B account, a regular of ten years;
/// `bench/api/history.py` measures the whole request). The figures are the aggregation's ([`summary_select`]; the
/// tests compare after every kind of order). The aggregation still runs where the stored figures
/// cannot simply be added to: no summary yet, or a spend where SQLite's `TOTAL()` could round.
/// The caller creates the customer's orders one at a time and calls this after each, before
/// the next is written, so that the same-day test sees only the orders before it.
pub(crate) async fn add_to_summary(tx: &mut Tx, now: DateTime<Utc>, customer_id: i64, o: &CompletedOrder) -> Result<()> {
    let s: Option<CustomerSummary> = tx.fetch_optional(query(SUMMARY_OF_CUSTOMER).bind(customer_id)).await?;
    let Some(s) = s else { return refresh_customers(tx, now, &[customer_id]).await };
    let (Some(first), Some(last)) = (s.first_purchase_day, s.last_purchase_day) else {
        return refresh_customers(tx, now, &[customer_id]).await;
    };
    let spend = i128::from(s.spend_cents) + i128::from(o.cents);
    if o.cents < 0 || s.spend_cents < 0 || s.repeat_spend_cents < 0 || spend >= EXACT_FLOAT_SUM {
        return refresh_customers(tx, now, &[customer_id]).await;
    }
    let same_day: Option<(i64,)> = tx
        .fetch_optional(
            query("SELECT id FROM orders WHERE customer_id = $1 AND ordered_day = $2 AND status = 'completed' AND id <> $3 LIMIT 1")
                .bind(customer_id)
                .bind(o.day)
                .bind(o.id),
        )
        .await?;
    // Repeat spend is the spend after the first purchase day: an order on a later day adds to
    // it, one on the first day does not, and one before the first day makes all the earlier
    // spend repeat spend.
    let repeat = match o.day.cmp(&first) {
        std::cmp::Ordering::Greater => s.repeat_spend_cents + o.cents,
        std::cmp::Ordering::Equal => s.repeat_spend_cents,
        std::cmp::Ordering::Less => s.spend_cents,
    };
    let last_at = s.last_ordered_at.map_or(o.at, |t| t.max(o.at));
    tx.execute(
        query(
            "UPDATE customer_summaries SET order_count = $2, spend_cents = $3, purchase_days = $4, first_purchase_day = $5, \
             last_purchase_day = $6, repeat_spend_cents = $7, last_ordered_at = $8, refreshed_at = $9 WHERE customer_id = $1",
        )
        .bind(customer_id)
        .bind(s.order_count + 1)
        .bind(s.spend_cents + o.cents)
        .bind(s.purchase_days + i64::from(same_day.is_none()))
        .bind(first.min(o.day))
        .bind(last.max(o.day))
        .bind(repeat)
        .bind(last_at)
        .bind(now),
    )
    .await?;
    Ok(())
}

/// Recomputes the summaries of a few customers (after orders were written through the API).
pub(crate) async fn refresh_customers(tx: &mut Tx, now: DateTime<Utc>, ids: &[i64]) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = (0..ids.len()).map(|i| format!("${}", i + 2)).collect();
    let list = list.join(", ");
    // The delete has no leading `now` bind, so its placeholders start at $1.
    let del_list: Vec<String> = (0..ids.len()).map(|i| format!("${}", i + 1)).collect();
    let mut del = query(format!("DELETE FROM customer_summaries WHERE customer_id IN ({})", del_list.join(", ")));
    for id in ids {
        del.push(*id);
    }
    tx.execute(del).await?;
    let mut ins = query(format!(
        "INSERT INTO customer_summaries ({SUMMARY_COLUMNS}) {}{SUMMARY_UPSERT}",
        summary_select(tx.engine(), &format!("AND customer_id IN ({list})"))
    ))
    .bind(now);
    for id in ids {
        ins.push(*id);
    }
    tx.execute(ins).await?;
    Ok(())
}

/// Columns of `customer_scores`, in the order [`score_args`] produces them.
static SCORES_TABLE: Stage = Stage {
    name: "customer_scores",
    columns: &[
        ("customer_id", ColType::Int),
        ("run_id", ColType::Int),
        ("as_of_day", ColType::Int),
        ("model_version", ColType::Text),
        ("purchase_days", ColType::Int),
        ("first_purchase_day", ColType::Int),
        ("last_purchase_day", ColType::Int),
        ("x", ColType::Int),
        ("t_x", ColType::Int),
        ("age_days", ColType::Int),
        ("m_cents", ColType::Float),
        ("order_count", ColType::Int),
        ("spend_cents", ColType::Int),
        ("trailing_spend_cents", ColType::Int),
        ("median_gap_days", ColType::Float),
        ("recency_days", ColType::Int),
        ("frequency", ColType::Int),
        ("monetary_cents", ColType::Int),
        ("rfm_r", ColType::Int),
        ("rfm_f", ColType::Int),
        ("rfm_m", ColType::Int),
        ("rfm_class", ColType::Text),
        ("abcd_tier", ColType::Text),
        ("lifecycle", ColType::Text),
        ("churn", ColType::Text),
        ("churn_threshold_days", ColType::Float),
        ("p_alive", ColType::Float),
        ("expected_purchases", ColType::Float),
        ("expected_order_value_cents", ColType::Float),
        ("clv_cents", ColType::Float),
        ("loyalty_index", ColType::Float),
        ("loyalty_situation", ColType::Text),
        ("cts_revenue_cents", ColType::Int),
        ("margin_cents", ColType::Int),
        ("cost_to_serve_cents", ColType::Int),
        ("profit_cents", ColType::Int),
        ("cts_quadrant", ColType::Text),
        // The run before's values (crate::history), for the segment fields previous_*.
        ("previous_abcd_tier", ColType::Text),
        ("previous_rfm_class", ColType::Text),
        ("previous_lifecycle", ColType::Text),
        // Next best action and channel calibration (crate::next_action::EXTRA_COLUMNS).
        ("next_action", ColType::Text),
        ("next_action_category_id", ColType::Int),
        ("next_action_detail", ColType::Text),
        ("preferred_channel", ColType::Text),
        ("response_rate_email", ColType::Float),
        ("response_rate_sms", ColType::Float),
        ("response_rate_wechat", ColType::Float),
        ("response_rate_mail", ColType::Float),
    ],
};

/// The names of the `customer_scores` columns an analysis run writes, in order.
#[cfg(test)]
pub(crate) fn score_column_names() -> Vec<&'static str> {
    SCORES_TABLE.columns.iter().map(|c| c.0).collect()
}

/// A finite float, or NULL (NaN and infinities are not stored).
/// A customer's latest scores, read on `c`.
pub(crate) async fn read_scores(c: &mut crate::db::ReadConn, customer_id: i64) -> Result<Option<ScoreRow>> {
    let cols: Vec<&str> = SCORES_TABLE.columns.iter().map(|c| c.0).collect();
    c.fetch_optional(query(format!("SELECT {} FROM customer_scores WHERE customer_id = $1", cols.join(", "))).bind(customer_id)).await
}

fn finite(v: Option<f64>) -> Arg {
    Arg::F64(v.filter(|f| f.is_finite()))
}

/// Churn status key of customer `c`: absolute wins over relative.
pub fn churn_key(out: &AnalyticsOutput, c: usize) -> &'static str {
    let l = &out.scores.lifecycle;
    if l.absolute_churn.get(c).copied().unwrap_or(false) {
        "absolute"
    } else if l.relative_churn.get(c).copied().unwrap_or(false) {
        "relative"
    } else {
        "none"
    }
}

#[allow(clippy::too_many_arguments)] // the row's parts, each from its own module
fn score_args(
    out: &AnalyticsOutput,
    c: usize,
    customer_id: i64,
    run_id: i64,
    as_of: i32,
    cts: Option<&CostFigures>,
    extras: Option<&ScoreExtras>,
    before: Option<&crate::history::Before>,
) -> Vec<Arg> {
    let cost = cts.and_then(|f| f.customers.get(c).copied().flatten());
    let s = &out.summaries;
    let k = &out.scores;
    let scored = k.rfm.class[c].is_some();
    let score = |v: u8| Arg::I64((scored && v > 0).then_some(i64::from(v)));
    let mut args = vec![
        Arg::I64(Some(customer_id)),
        Arg::I64(Some(run_id)),
        Arg::I64(Some(i64::from(as_of))),
        Arg::Text(Some(MODEL_VERSION.into())),
        Arg::I64(Some(i64::from(s.purchase_days[c]))),
        Arg::I64(s.first_purchase_day[c].map(i64::from)),
        Arg::I64(s.last_purchase_day[c].map(i64::from)),
        Arg::I64(Some(i64::from(s.x[c]))),
        Arg::I64(Some(i64::from(s.t_x[c]))),
        Arg::I64(Some(i64::from(s.age[c]))),
        finite(Some(s.m[c])),
        Arg::I64(Some(i64::from(s.order_count[c]))),
        Arg::I64(Some(s.total_spend_cents[c])),
        Arg::I64(Some(s.trailing_spend_cents[c])),
        finite(s.median_gap_days[c]),
        Arg::I64(k.rfm.recency_days[c].map(i64::from)),
        Arg::I64(Some(i64::from(k.rfm.frequency[c]))),
        Arg::I64(Some(k.rfm.monetary_cents[c])),
        score(k.rfm.r_score[c]),
        score(k.rfm.f_score[c]),
        score(k.rfm.m_score[c]),
        Arg::Text(k.rfm.class[c].map(|v| v.key().to_owned())),
        Arg::Text(k.abcd.tier[c].map(|v| v.key().to_owned())),
        Arg::Text(Some(k.lifecycle.stage[c].key().to_owned())),
        Arg::Text(Some(churn_key(out, c).to_owned())),
        finite(k.lifecycle.churn_threshold_days[c]),
        finite(k.p_alive[c]),
        finite(k.expected_purchases[c]),
        finite(k.expected_order_value[c]),
        finite(k.clv[c]),
        finite(k.loyalty.index[c]),
        Arg::Text(k.loyalty.situation[c].map(|v| v.key().to_owned())),
        Arg::I64(cost.map(|x| x.0.revenue_cents)),
        Arg::I64(cost.map(|x| x.0.margin_cents)),
        Arg::I64(cost.map(|x| x.0.cost_cents())),
        Arg::I64(cost.map(|x| x.0.profit_cents())),
        Arg::Text(cost.map(|x| x.1.key().to_owned())),
    ];
    use crate::history::{key_of, ABCD_CODES, LIFECYCLE_CODES, RFM_CODES};
    let prev = |codes: &[&'static str], code: Option<u8>| Arg::Text(code.and_then(|c| key_of(codes, i64::from(c))).map(str::to_owned));
    args.push(prev(ABCD_CODES, before.map(|b| b.abcd_tier)));
    args.push(prev(RFM_CODES, before.map(|b| b.rfm_class)));
    args.push(prev(LIFECYCLE_CODES, before.map(|b| b.lifecycle)));
    args.extend(crate::next_action::extra_args(extras, c));
    args
}

impl Store {
    /// The business day of an instant (calendar day in the configured time zone).
    pub fn business_day(&self, t: DateTime<Utc>) -> i32 {
        business_day(t, self.config.business_tz)
    }

    /// Fills `orders.ordered_day` where it is missing (rows written before the column existed, or
    /// by other tools); idempotent. Returns the number of orders updated.
    pub async fn backfill_order_days(&self) -> Result<u64> {
        let mut total = 0u64;
        loop {
            let rows: Vec<(i64, i64, DateTime<Utc>)> = self
                .db
                .reader()
                .fetch_all(query(format!(
                    "SELECT customer_id, id, ordered_at FROM orders{} WHERE ordered_day IS NULL LIMIT 5000",
                    self.db.engine().indexed_by("orders_day_missing")
                )))
                .await?;
            if rows.is_empty() {
                break;
            }
            let mut tx = self.db.begin().await?;
            let mut touched: Vec<i64> = Vec::with_capacity(rows.len());
            for (customer_id, id, at) in &rows {
                tx.execute(
                    query("UPDATE orders SET ordered_day = $1 WHERE customer_id = $2 AND id = $3")
                        .bind(self.business_day(*at))
                        .bind(*customer_id)
                        .bind(*id),
                )
                .await?;
                touched.push(*customer_id);
            }
            touched.sort_unstable();
            touched.dedup();
            TOUCHED_STAGE.create(&mut tx).await?;
            TOUCHED_STAGE.fill(&mut tx, touched.into_iter().map(|id| vec![Arg::I64(Some(id))]).collect()).await?;
            refresh_touched(&mut tx, self.now()).await?;
            TOUCHED_STAGE.drop_table(&mut tx).await?;
            tx.commit().await?;
            total += rows.len() as u64;
        }
        Ok(total)
    }

    /// Rebuilds every customer's summary with one aggregation the database runs.
    pub async fn rebuild_summaries(&self) -> Result<u64> {
        self.backfill_order_days().await?;
        let mut tx = self.db.begin().await?;
        tx.execute(query("DELETE FROM customer_summaries")).await?;
        let n = tx
            .execute(
                query(format!("INSERT INTO customer_summaries ({SUMMARY_COLUMNS}) {}", summary_select(self.db.engine(), "")))
                    .bind(self.now()),
            )
            .await?;
        tx.commit().await?;
        Ok(n)
    }

    /// A customer's live summary (`None` before their first completed order).
    pub async fn customer_summary(&self, customer_id: i64) -> Result<Option<CustomerSummary>> {
        self.db.reader().fetch_optional(query(SUMMARY_OF_CUSTOMER).bind(customer_id)).await
    }

    /// The start of a run's save, which needs no model: its transaction, where everyone stood
    /// before the run, and the scores cleared for the new rows (their secondary indexes dropped
    /// on SQLite, to be built once afterwards).
    async fn clear_scores_for_run(&self) -> Result<ClearedScores> {
        // As in save_analysis: no reference checks.
        let mut tx = self.db.begin_without_reference_checks().await?;
        let (before, dropped) = clear_scores(&mut tx).await?;
        Ok(ClearedScores { tx, before, dropped })
    }

    /// Stores a run's parameters and report and replaces every customer's scores row, in one
    /// transaction (readers see the old scores or the new ones, never a mix), begun by
    /// `cleared` when the caller started it ([`Store::clear_scores_for_run`]). Returns the run
    /// id and where everyone stood before the run. The statistics of the rewritten tables are
    /// left to the caller ([`Db::refresh_after_rewrite`](crate::db::Db::refresh_after_rewrite)).
    #[allow(clippy::too_many_arguments)] // the run's parts, each from its own module
    pub(crate) async fn save_analysis(
        &self,
        actor: &Actor,
        customer_ids: &[i64],
        output: &AnalyticsOutput,
        config: &AnalyticsConfig,
        started_at: DateTime<Utc>,
        cost_to_serve: Option<&CostFigures>,
        extras: Option<&ScoreExtras>,
        cohorts: Option<&[crate::cohorts::CohortCell]>,
        cleared: Option<ClearedScores>,
    ) -> Result<(i64, crate::history::Standing)> {
        if customer_ids.len() != output.summaries.len() {
            return Err(StoreError::Internal(format!(
                "{} customer ids for {} scored customers",
                customer_ids.len(),
                output.summaries.len()
            )));
        }
        let as_of = output.report.as_of;
        let report = serde_json::to_string(&output.report).map_err(|e| StoreError::Internal(e.to_string()))?;
        let config_json = serde_json::to_string(config).map_err(|e| StoreError::Internal(e.to_string()))?;
        // A and B customers and those of them churned: the trends' churn rate (crate::cohorts).
        let (mut ab_customers, mut ab_churned) = (0i64, 0i64);
        for c in 0..customer_ids.len() {
            if matches!(output.scores.abcd.tier[c].map(|t| t.key()), Some("A" | "B")) {
                ab_customers += 1;
                if churn_key(output, c) != "none" {
                    ab_churned += 1;
                }
            }
        }
        let keep = self.history_settings().await?.runs;
        let (mut tx, cleared) = match cleared {
            Some(ClearedScores { tx, before, dropped }) => (tx, Some((before, dropped))),
            // Every row this transaction writes names the run it inserts or customers read
            // at the start of the run (customer rows are never deleted: erasure and merges
            // keep them).
            None => (self.db.begin_without_reference_checks().await?, None),
        };
        let mut phases = Phases::start();
        let (run_id,): (i64,) = tx
            .fetch_one(
                query(
                    "INSERT INTO analytics_runs (as_of_day, model_version, started_at, finished_at, customers, orders_used, config, report, \
                     ab_customers, ab_churned, snapshot_customers) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $5) RETURNING id",
                )
                .bind(as_of)
                .bind(MODEL_VERSION)
                .bind(started_at)
                .bind(self.now())
                .bind(customer_ids.len() as i64)
                .bind(i64::try_from(output.report.orders_used).unwrap_or(i64::MAX))
                .bind(config_json)
                .bind(report)
                .bind(ab_customers)
                .bind(ab_churned),
            )
            .await?;
        // Who was churned or at risk before this run: those who become so now get an event
        // (`customer.churned`, `customer.at_risk`) that journeys start on.
        // The shared tables first (crate::history::retire_snapshots says why): the retention of
        // older snapshots, and the cohorts.
        let cutoff = crate::history::retire_snapshots(&mut tx, keep).await?;
        phases.done("save: retire snapshots");
        if let Some(cells) = cohorts {
            crate::cohorts::store_cells(&mut tx, run_id, cells).await?;
        }
        phases.done("save: cohorts");
        let (before, dropped) = match cleared {
            Some(c) => c,
            None => clear_scores(&mut tx).await?,
        };
        // PostgreSQL: no per-row foreign-key checks (two lookups a row, about half of writing a
        // million rows). The rows name the run inserted above and customers read at the start
        // of the run, and customers rows are never deleted (erasure and merges keep the row).
        let own_checks = tx.fk_triggers(false).await?;
        // In chunks, so the argument vectors of a million customers never exist at once.
        const CHUNK: usize = 20_000;
        let mut starts = (0..customer_ids.len()).step_by(CHUNK);
        SCORES_TABLE
            .fill_chunks(&mut tx, || {
                let start = starts.next()?;
                let end = (start + CHUNK).min(customer_ids.len());
                Some(
                    (start..end)
                        .map(|c| {
                            score_args(output, c, customer_ids[c], run_id, as_of, cost_to_serve, extras, before.codes.get(&customer_ids[c]))
                        })
                        .collect(),
                )
            })
            .await?;
        if own_checks {
            tx.fk_triggers(true).await?;
        }
        tx.restore_indexes(dropped).await?;
        phases.done("save: write scores");
        // The compact snapshot of this run; older ones beyond the retention go.
        let snapshot_row = |c: usize| crate::history::SnapshotRow {
            customer_id: customer_ids[c],
            trailing_spend_cents: output.summaries.trailing_spend_cents[c],
            clv_cents: output.scores.clv[c].filter(|v| v.is_finite()),
            p_alive: output.scores.p_alive[c].filter(|v| v.is_finite()),
            abcd_tier: output.scores.abcd.tier[c].map(|t| t.key()),
            rfm_class: output.scores.rfm.class[c].map(|v| v.key()),
            lifecycle: output.scores.lifecycle.stage[c].key(),
            churn: churn_key(output, c),
        };
        crate::history::write_snapshot(&mut tx, run_id, customer_ids.len(), snapshot_row, cutoff).await?;
        phases.done("save: snapshot");
        let now = self.now();
        let mut became: Vec<(i64, &'static str, serde_json::Value)> = Vec::new();
        for (c, &id) in customer_ids.iter().enumerate() {
            let old = before.codes.get(&id);
            let churn = churn_key(output, c);
            let stage = output.scores.lifecycle.stage[c].key();
            let tier = output.scores.abcd.tier[c].map(|t| t.key());
            // Churn code 0 is "none" (crate::history::CHURN_CODES).
            if churn != "none" && old.map_or(0, |b| b.churn) == 0 {
                became.push((id, "customer.churned", serde_json::json!({"run_id": run_id, "churn": churn, "tier": tier})));
            }
            let old_stage = old.and_then(|b| crate::history::key_of(crate::history::LIFECYCLE_CODES, i64::from(b.lifecycle)));
            if stage == "at_risk" && old_stage != Some("at_risk") {
                became.push((id, "customer.at_risk", serde_json::json!({"run_id": run_id, "tier": tier})));
            }
        }
        let engine = tx.engine();
        for chunk in became.chunks(2000) {
            let mut q = query(format!(
                "INSERT INTO events (customer_id, type, subject_id, payload, occurred_at) VALUES {}",
                engine.values_rows(chunk.len(), 5)
            ));
            for (id, kind, payload) in chunk {
                q.push(*id);
                q.push(*kind);
                q.push(run_id);
                q.push(Arg::Json(payload.clone()));
                q.push(now);
            }
            tx.execute(q).await?;
        }
        let detail = format!("as_of_day={as_of} customers={}", customer_ids.len());
        audit::record(&mut tx, self.now(), &actor.key, "analyze", "analytics_run", Some(run_id.to_string()), Some(detail)).await?;
        phases.done("save: events");
        tx.commit().await?;
        phases.done("save: commit");
        Ok((run_id, before))
    }

    /// Runs the whole analysis as of `as_of` over the database and stores the results.
    /// The ABCD tiering follows the `abcd` setting ([`crate::abcd::AbcdSettings`]).
    pub async fn run_analysis(&self, actor: &Actor, as_of: NaiveDate, config: &AnalyticsConfig) -> Result<(i64, AnalyticsOutput)> {
        let started_at = self.now();
        let mut phases = Phases::start();
        let config = self.abcd_settings().await?.apply(config)?;
        let config = &config;
        let as_of_day = patron_analytics::day_number(as_of);
        let input = self.analysis_input(as_of_day).await?;
        phases.done("read input");
        let n = input.customer_ids.len();
        let latest_nps = input.extras.latest_nps.clone();
        let (orders, extras, config_copy) = (input.orders, input.extras, *config);
        let (customer_ids, baskets, period_sales) = (input.customer_ids, input.baskets, input.period_sales);
        // The models are CPU-bound (rayon inside); keep them off the async workers. The cohort
        // cells (crate::cohorts) come from the same orders.
        let models = tokio::task::spawn_blocking(move || {
            let cells = crate::cohorts::cohort_cells(&orders.customer, &orders.day, &orders.amount_cents);
            (patron_analytics::analyze(&orders, n, as_of_day, &extras, &config_copy), cells)
        });
        // Meanwhile the channels' calibration reads what each customer was sent and answered
        // (it needs no model): on PostgreSQL the server's work, on SQLite a second core's.
        // On PostgreSQL the save's start (reading where everyone stood, clearing the scores:
        // the server's work, 2–3 s at 1 M) runs then too (Db::rewrites_early says where not).
        let clear_early = async {
            if self.db.rewrites_early() {
                self.clear_scores_for_run().await.map(Some)
            } else {
                Ok(None)
            }
        };
        // The cost to serve needs no model either, and the next best action only the models and
        // the calibration: both are computed while the server clears (PostgreSQL at 1 M: the
        // clear took 3.3 s, the models 1.3 s; the cost to serve and the next best action, 1.2 s,
        // used to follow it).
        let compute = async {
            let mut phases = Phases::start();
            // Cost to serve over the period up to the analysis day, stored with the scores.
            let (models, calibration, cts) = futures_util::future::join3(
                models,
                self.calibrate_all(&customer_ids),
                self.cost_figures(&customer_ids, as_of, &period_sales),
            )
            .await;
            let (output, cells) = models.map_err(|e| StoreError::Internal(format!("analysis task failed: {e}")))?;
            let output = output.map_err(|e| StoreError::invalid("as_of", e.to_string()))?;
            let (calibration, cts) = (calibration?, cts?);
            phases.done("models (with the calibration and the cost to serve)");
            // Next best action and channel calibration (issue 12 §7, §5), stored with the scores.
            let extras = self.score_extras(&customer_ids, &output, latest_nps.as_deref(), as_of_day, baskets, calibration).await?;
            phases.done("next best action");
            Ok::<_, StoreError>((output, cells, cts, extras))
        };
        let (computed, cleared) = futures_util::future::join(compute, clear_early).await;
        let (output, cells, cts, extras) = computed?;
        let cleared = cleared?;
        phases.done("models, next best action and the clear");
        let (run_id, before) =
            self.save_analysis(actor, &customer_ids, &output, config, started_at, Some(&cts), Some(&extras), Some(&cells), cleared).await?;
        phases.done("save");
        // The run is stored. The statistics of the rewritten tables (and, without autovacuum,
        // their dead rows: Db::refresh_after_rewrite) are refreshed on other connections while
        // the run's records below are made (PostgreSQL at 1 M: 1.7 s, against 0.5 s for the
        // records). It is housekeeping, so a failure there is reported, not the run's.
        let refresh = async {
            let started = std::time::Instant::now();
            if let Err(e) = self.db.refresh_after_rewrite(&["customer_scores", "score_snapshots"]).await {
                tracing::warn!(error = %e, "refreshing the statistics of the scores failed");
            }
            tracing::debug!(
                phase = "refresh statistics (beside the records)",
                ms = started.elapsed().as_millis() as u64,
                "analysis phase done"
            );
        };
        let records = async {
            let mut phases = Phases::start();
            // Saved segments' sizes at this run and the migration since the run before
            // (crate::history), over the scores just committed.
            self.record_segment_sizes(run_id).await?;
            phases.done("segment sizes");
            self.record_migrations(run_id, &customer_ids, &output, &before).await?;
            phases.done("migrations");
            self.store_overview(run_id, &overview::overview_of(&output)).await?;
            phases.done("overview");
            Ok::<(), StoreError>(())
        };
        let ((), records) = futures_util::future::join(refresh, records).await;
        records?;
        phases.done("records and statistics");
        Ok((run_id, output))
    }

    /// The latest analysis run.
    pub async fn latest_run(&self) -> Result<Option<AnalysisRun>> {
        let row: Option<RunDbRow> = self
            .db
            .reader()
            .fetch_optional(query(
                "SELECT id, as_of_day, model_version, started_at, finished_at, customers, orders_used, config, report \
                 FROM analytics_runs ORDER BY id DESC LIMIT 1",
            ))
            .await?;
        Ok(row.map(AnalysisRun::from))
    }

    /// A customer's latest scores (`None` before the first analysis).
    pub async fn customer_scores(&self, customer_id: i64) -> Result<Option<ScoreRow>> {
        read_scores(&mut self.db.read_conn().await?, customer_id).await
    }
}

/// Reads where everyone stood before a run and clears the scores for its rows (their
/// secondary indexes dropped on SQLite, to be built once afterwards), in `tx`.
async fn clear_scores(tx: &mut Tx) -> Result<(crate::history::Standing, crate::db::DroppedIndexes)> {
    let mut phases = Phases::start();
    // Read as small codes: a million customers' previous values stay a few tens of MB.
    let before = crate::history::read_before(tx).await?;
    phases.done("save: read previous scores");
    let dropped = tx.drop_indexes_for_rewrite("customer_scores").await?;
    tx.execute(query("DELETE FROM customer_scores")).await?;
    phases.done("save: clear scores");
    Ok((before, dropped))
}

/// A run's save begun: its transaction, where everyone stood before it, and the secondary
/// indexes of the scores dropped for the rewrite ([`Store::clear_scores_for_run`]).
pub(crate) struct ClearedScores {
    tx: Tx,
    before: crate::history::Standing,
    dropped: crate::db::DroppedIndexes,
}

/// How long each phase of an analysis run took, logged at debug level (`RUST_LOG=patron_store=debug`):
/// where a run's time goes at scale (issue 15 §5).
struct Phases {
    last: std::time::Instant,
}

impl Phases {
    fn start() -> Phases {
        Phases { last: std::time::Instant::now() }
    }

    fn done(&mut self, phase: &str) {
        let now = std::time::Instant::now();
        tracing::debug!(phase, ms = now.duration_since(self.last).as_millis() as u64, "analysis phase done");
        self.last = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn business_days_follow_the_zone() {
        let t = DateTime::parse_from_rfc3339("2026-01-01T17:00:00Z").map(|t| t.with_timezone(&Utc)).unwrap_or_default();
        // 17:00 UTC is 01:00 the next day in Shanghai.
        assert_eq!(day_date(business_day(t, chrono_tz::Asia::Shanghai)), NaiveDate::from_ymd_opt(2026, 1, 2));
        assert_eq!(day_date(business_day(t, chrono_tz::UTC)), NaiveDate::from_ymd_opt(2026, 1, 1));
    }

    #[tokio::test]
    async fn new_summaries_that_meet_one_written_meanwhile_are_taken_back_whole() {
        // One PostgreSQL server: an import's new summaries go straight in unless a customer
        // gained a summary since the import looked (an order through the API). Then the
        // savepoint takes the whole COPY back, the summary written meanwhile stays as it was,
        // and the transaction goes on.
        let t = crate::testing::test_db(crate::Engine::Postgres).await;
        let s = &t.store;
        let new = |ext: &str| crate::customers::NewCustomer { external_id: Some(ext.into()), name: ext.into(), ..Default::default() };
        let a = s.create_customer(&Actor::cli(), new("A")).await.unwrap().id;
        let b = s.create_customer(&Actor::cli(), new("B")).await.unwrap().id;
        let now = crate::testing::test_now();
        let row = |id: i64, count: i64| {
            let ints = [id, count, 100 * count, 1, 20_000, 20_000, 0];
            let mut r: Vec<Arg> = ints.iter().map(|&v| Arg::I64(Some(v))).collect();
            r.extend([Arg::Time(Some(now)), Arg::Time(Some(now))]);
            r
        };
        let mut tx = s.db.begin().await.unwrap();
        NEW_SUMMARY_ROWS.fill(&mut tx, vec![row(a, 1)]).await.unwrap();
        tx.commit().await.unwrap();

        let mut tx = s.db.begin().await.unwrap();
        assert!(!copied_straight_in(&mut tx, &[row(b, 5), row(a, 7)]).await.unwrap(), "a's summary exists");
        async fn counts(tx: &mut Tx) -> Vec<(i64, i64)> {
            tx.fetch_all(query("SELECT customer_id, order_count FROM customer_summaries ORDER BY customer_id")).await.unwrap()
        }
        assert_eq!(counts(&mut tx).await, vec![(a, 1)], "nothing of the refused COPY stays, b's row included");
        assert!(copied_straight_in(&mut tx, &[row(b, 5)]).await.unwrap(), "the transaction goes on");
        tx.commit().await.unwrap();
        let mut tx = s.db.begin().await.unwrap();
        assert_eq!(counts(&mut tx).await, vec![(a, 1), (b, 5)]);
        tx.rollback().await.unwrap();
    }
}
