//! Cohorts and trends (issue 18 §3): live customers by the business-time-zone month of their
//! first completed order, how many of each cohort buy in each later month and what they spend,
//! and the monthly trends of the whole base (new, active, repeat customers, orders, revenue, and
//! from the analysis runs the churn of A and B customers).
//!
//! Decision: for the whole base the analysis run precomputes the cells (cohort × month:
//! customers active, orders, revenue) from the orders it has read anyway, and stores them in
//! `cohort_months` (a few thousand rows at most), so both reports read a small table whatever
//! the size of the base; they are as of the latest run. A caller limited to some customers (an
//! agent's portfolio, a unit) gets the same computation live over their own customers' orders
//! up to today, as does everyone before the first run.

use std::collections::HashMap;

use chrono::{Datelike, NaiveDate};
use serde::Serialize;
use utoipa::ToSchema;

use crate::analytics::day_date;
use crate::db::{query, Arg, ColType, Stage, Tx};
use crate::users::Actor;
use crate::{Result, Store, StoreError};

/// Longest span of months a report covers.
pub const MAX_MONTHS: i32 = 240;

/// Month number: months since 1970-01 (1970-01 = 0).
pub fn month_of_date(d: NaiveDate) -> i32 {
    (d.year() - 1970) * 12 + d.month0() as i32
}

/// Month number of a day number (`None` out of range).
pub fn month_of_day(day: i32) -> Option<i32> {
    day_date(day).map(month_of_date)
}

/// `YYYY-MM` of a month number.
pub fn month_label(m: i32) -> String {
    format!("{:04}-{:02}", 1970 + m.div_euclid(12), m.rem_euclid(12) + 1)
}

/// Parses `YYYY-MM` (years 1970–9999) strictly; `field` names it in the error.
pub fn parse_month(s: &str, field: &str) -> Result<i32> {
    let bad = || StoreError::invalid(field, format!("{field} must be a month written YYYY-MM (from 1970-01), not {s:?}"));
    let b = s.as_bytes();
    if b.len() != 7 || b[4] != b'-' || !b.iter().enumerate().all(|(i, c)| i == 4 || c.is_ascii_digit()) {
        return Err(bad());
    }
    let year: i32 = s[..4].parse().map_err(|_| bad())?;
    let month: i32 = s[5..].parse().map_err(|_| bad())?;
    if !(1..=12).contains(&month) || year < 1970 {
        return Err(bad());
    }
    Ok((year - 1970) * 12 + month - 1)
}

/// One cell: the customers of cohort `cohort` with a completed order in month `month`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CohortCell {
    /// Month of the customers' first completed order.
    pub cohort: i32,
    /// The month of activity.
    pub month: i32,
    /// Customers of the cohort with a completed order in the month.
    pub customers: i64,
    /// Their completed orders in the month.
    pub orders: i64,
    /// The orders' total (cents).
    pub revenue_cents: i64,
}

/// The cells of completed orders given column-wise (customer index, business day, amount).
pub fn cohort_cells(customer: &[u32], day: &[i32], amount_cents: &[i64]) -> Vec<CohortCell> {
    let n = customer.len().min(day.len()).min(amount_cents.len());
    let mut first: HashMap<u32, i32> = HashMap::new();
    for i in 0..n {
        let e = first.entry(customer[i]).or_insert(day[i]);
        *e = (*e).min(day[i]);
    }
    let cohort: HashMap<u32, i32> = first.into_iter().filter_map(|(c, d)| month_of_day(d).map(|m| (c, m))).collect();
    let mut cells: HashMap<(i32, i32), (i64, i64, i128)> = HashMap::new();
    let mut active: Vec<u64> = Vec::with_capacity(n);
    // A day's month changes rarely between consecutive orders of a file; cache the last one.
    let mut last: Option<(i32, i32)> = None;
    for i in 0..n {
        let m = match last {
            Some((d, m)) if d == day[i] => m,
            _ => match month_of_day(day[i]) {
                Some(m) => {
                    last = Some((day[i], m));
                    m
                }
                None => continue,
            },
        };
        let Some(&c) = cohort.get(&customer[i]) else { continue };
        let e = cells.entry((c, m)).or_insert((0, 0, 0));
        e.1 += 1;
        e.2 += i128::from(amount_cents[i]);
        // (customer, month) pairs, deduplicated below: the distinct active customers.
        active.push((u64::from(customer[i]) << 32) | u64::from(m as u32));
    }
    active.sort_unstable();
    active.dedup();
    for key in active {
        let c = (key >> 32) as u32;
        let m = (key & 0xffff_ffff) as u32 as i32;
        if let Some(e) = cohort.get(&c).and_then(|co| cells.get_mut(&(*co, m))) {
            e.0 += 1;
        }
    }
    let mut out: Vec<CohortCell> = cells
        .into_iter()
        .map(|((cohort, month), (customers, orders, rev))| CohortCell {
            cohort,
            month,
            customers,
            orders,
            revenue_cents: i64::try_from(rev).unwrap_or(if rev < 0 { i64::MIN } else { i64::MAX }),
        })
        .collect();
    out.sort_by_key(|c| (c.cohort, c.month));
    out
}

static COHORT_TABLE: Stage = Stage {
    name: "cohort_months",
    columns: &[
        ("cohort", ColType::Int),
        ("month", ColType::Int),
        ("run_id", ColType::Int),
        ("customers", ColType::Int),
        ("orders", ColType::Int),
        ("revenue_cents", ColType::Int),
    ],
};

/// Replaces the precomputed cells with run `run_id`'s.
pub(crate) async fn store_cells(tx: &mut Tx, run_id: i64, cells: &[CohortCell]) -> Result<()> {
    tx.execute(query("DELETE FROM cohort_months")).await?;
    let rows: Vec<Vec<Arg>> = cells
        .iter()
        .map(|c| {
            vec![
                Arg::I64(Some(i64::from(c.cohort))),
                Arg::I64(Some(i64::from(c.month))),
                Arg::I64(Some(run_id)),
                Arg::I64(Some(c.customers)),
                Arg::I64(Some(c.orders)),
                Arg::I64(Some(c.revenue_cents)),
            ]
        })
        .collect();
    COHORT_TABLE.fill(tx, rows).await
}

/// One cohort.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Cohort {
    /// Month of the first completed order, `YYYY-MM`.
    pub cohort: String,
    /// Customers whose first completed order was in that month.
    pub customers: i64,
    /// `active[k]`: how many of them have a completed order in month cohort + k (k = 0 … up to the last month).
    pub active: Vec<i64>,
    /// `revenue_cents[k]`: the total of those orders (cents).
    pub revenue_cents: Vec<i64>,
}

/// The cohort report.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CohortReport {
    /// First cohort, `YYYY-MM`.
    pub from: String,
    /// Last cohort, `YYYY-MM`.
    pub to: String,
    /// The last month counted (`YYYY-MM`): the current month, or the latest run's as-of month.
    pub last_month: String,
    /// `run`: precomputed by analysis run `run_id` (as of its date); `live`: computed now.
    pub source: String,
    /// The run the figures come from (source `run`).
    pub run_id: Option<i64>,
    /// One per month from `from` to `to` (up to the last month), oldest first.
    pub cohorts: Vec<Cohort>,
}

/// One month of the trends.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct TrendMonth {
    /// `YYYY-MM`.
    pub month: String,
    /// Customers whose first completed order was in the month.
    pub new_customers: i64,
    /// Customers with a completed order in the month.
    pub active_customers: i64,
    /// Active customers who are not new.
    pub repeat_customers: i64,
    /// Completed orders.
    pub orders: i64,
    /// Their total (cents).
    pub revenue_cents: i64,
    /// The latest analysis run as of a day in the month, if any.
    pub run_id: Option<i64>,
    /// A and B customers in that run.
    pub ab_customers: Option<i64>,
    /// Of them, churned (relatively or absolutely) in that run.
    pub churned_ab_customers: Option<i64>,
    /// churned_ab_customers / ab_customers (null without A or B customers).
    pub churn_rate: Option<f64>,
}

/// The trends report.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TrendReport {
    /// First month, `YYYY-MM`.
    pub from: String,
    /// Last month asked, `YYYY-MM`.
    pub to: String,
    /// The last month counted (`YYYY-MM`).
    pub last_month: String,
    /// `run` or `live` (as for cohorts).
    pub source: String,
    /// The run the order figures come from (source `run`).
    pub run_id: Option<i64>,
    /// One per month from `from` to `to` (up to the last month).
    pub months: Vec<TrendMonth>,
}

/// The cells a caller's figures come from.
struct Cells {
    cells: Vec<CohortCell>,
    last_month: i32,
    run_id: Option<i64>,
}

impl Store {
    /// This month (business time zone), by the store's clock.
    fn current_month(&self) -> i32 {
        month_of_date(self.now().with_timezone(&self.config.business_tz).date_naive())
    }

    /// The cells for `actor`: precomputed for the whole base, live for a narrower scope.
    async fn cells_for(&self, actor: &Actor) -> Result<Cells> {
        let scope = crate::access::CustomerScope::of(actor);
        if scope.is_all() {
            let rows: Vec<(i64, i64, i64, i64, i64, i64)> = self
                .db
                .reader()
                .fetch_all(query(
                    "SELECT cohort, month, run_id, customers, orders, revenue_cents FROM cohort_months ORDER BY cohort, month",
                ))
                .await?;
            if let Some(run_id) = rows.first().map(|r| r.2) {
                let as_of: Option<(i64,)> =
                    self.db.reader().fetch_optional(query("SELECT as_of_day FROM analytics_runs WHERE id = $1").bind(run_id)).await?;
                let last_month =
                    as_of.and_then(|(d,)| i32::try_from(d).ok()).and_then(month_of_day).unwrap_or_else(|| self.current_month());
                let cells = rows
                    .into_iter()
                    .map(|(cohort, month, _, customers, orders, revenue_cents)| CohortCell {
                        cohort: cohort as i32,
                        month: month as i32,
                        customers,
                        orders,
                        revenue_cents,
                    })
                    .collect();
                return Ok(Cells { cells, last_month, run_id: Some(run_id) });
            }
        }
        let today = self.now().with_timezone(&self.config.business_tz).date_naive();
        let rows: Vec<(i64, i64, i64)> = self
            .db
            .reader()
            .fetch_all(
                query(format!(
                    "SELECT o.customer_id, o.ordered_day, o.total_cents FROM orders o \
                     JOIN customers c ON c.id = o.customer_id AND c.deleted_at IS NULL AND {} \
                     WHERE o.status = 'completed' AND o.ordered_day IS NOT NULL AND o.ordered_day <= $1",
                    scope.sql("c")
                ))
                .bind(i64::from(patron_analytics::day_number(today))),
            )
            .await?;
        let mut index: HashMap<i64, u32> = HashMap::new();
        let (mut cust, mut days, mut amounts) =
            (Vec::with_capacity(rows.len()), Vec::with_capacity(rows.len()), Vec::with_capacity(rows.len()));
        for (c, d, a) in rows {
            let next = index.len() as u32;
            cust.push(*index.entry(c).or_insert(next));
            days.push(i32::try_from(d).unwrap_or(i32::MAX));
            amounts.push(a);
        }
        Ok(Cells { cells: cohort_cells(&cust, &days, &amounts), last_month: month_of_date(today), run_id: None })
    }

    /// Parses the month range (defaults: the 12 months up to `last`).
    fn month_range(from: Option<&str>, to: Option<&str>, last: i32) -> Result<(i32, i32)> {
        let to = match to.map(str::trim).filter(|s| !s.is_empty()) {
            Some(s) => parse_month(s, "to")?,
            None => last,
        };
        let from = match from.map(str::trim).filter(|s| !s.is_empty()) {
            Some(s) => parse_month(s, "from")?,
            None => to.min(last) - 11,
        };
        if from > to {
            return Err(StoreError::invalid("from", format!("from ({}) is after to ({})", month_label(from), month_label(to))));
        }
        if to - from >= MAX_MONTHS {
            return Err(StoreError::invalid("to", format!("a report covers at most {MAX_MONTHS} months")));
        }
        Ok((from.max(0), to))
    }

    /// Cohorts from `from` to `to` (`YYYY-MM`; default the last 12 months) for what `actor` sees.
    pub async fn cohorts(&self, actor: &Actor, from: Option<&str>, to: Option<&str>) -> Result<CohortReport> {
        // The range is checked before anything is read.
        Self::month_range(from, to, self.current_month())?;
        let data = self.cells_for(actor).await?;
        let (from, to) = Self::month_range(from, to, data.last_month)?;
        let by: HashMap<(i32, i32), &CohortCell> = data.cells.iter().map(|c| ((c.cohort, c.month), c)).collect();
        let cohorts = (from..=to.min(data.last_month))
            .map(|c| {
                let cell = |m: i32| by.get(&(c, m)).copied();
                let months = c..=data.last_month;
                Cohort {
                    cohort: month_label(c),
                    customers: cell(c).map_or(0, |x| x.customers),
                    active: months.clone().map(|m| cell(m).map_or(0, |x| x.customers)).collect(),
                    revenue_cents: months.map(|m| cell(m).map_or(0, |x| x.revenue_cents)).collect(),
                }
            })
            .collect();
        Ok(CohortReport {
            from: month_label(from),
            to: month_label(to),
            last_month: month_label(data.last_month),
            source: if data.run_id.is_some() { "run" } else { "live" }.into(),
            run_id: data.run_id,
            cohorts,
        })
    }

    /// Monthly trends from `from` to `to` (`YYYY-MM`; default the last 12 months) for what
    /// `actor` sees, with the churn of A and B customers from the runs as of each month.
    pub async fn trends(&self, actor: &Actor, from: Option<&str>, to: Option<&str>) -> Result<TrendReport> {
        Self::month_range(from, to, self.current_month())?;
        let data = self.cells_for(actor).await?;
        let (from, to) = Self::month_range(from, to, data.last_month)?;
        let mut per: HashMap<i32, (i64, i64, i64, i64)> = HashMap::new();
        for c in &data.cells {
            let e = per.entry(c.month).or_default();
            e.1 += c.customers;
            e.2 += c.orders;
            e.3 = e.3.saturating_add(c.revenue_cents);
            if c.cohort == c.month {
                e.0 += c.customers;
            }
        }
        // Churn of A and B customers per run: stored with the run for the whole base, counted
        // from the snapshots for a narrower scope.
        let scope = crate::access::CustomerScope::of(actor);
        let runs: Vec<(i64, i64, Option<i64>, Option<i64>)> = if scope.is_all() {
            self.db.reader().fetch_all(query("SELECT id, as_of_day, ab_customers, ab_churned FROM analytics_runs ORDER BY id")).await?
        } else {
            let counts: Vec<(i64, i64, i64)> = self
                .db
                .reader()
                .fetch_all(query(format!(
                    "SELECT run_id, CAST(SUM(CASE WHEN abcd_tier IN (1, 2) THEN 1 ELSE 0 END) AS BIGINT), \
                     CAST(SUM(CASE WHEN abcd_tier IN (1, 2) AND churn > 0 THEN 1 ELSE 0 END) AS BIGINT) \
                     FROM score_snapshots WHERE {} GROUP BY run_id",
                    scope.sql_for("customer_id")
                )))
                .await?;
            let days: Vec<(i64, i64)> = self.db.reader().fetch_all(query("SELECT id, as_of_day FROM analytics_runs")).await?;
            let days: HashMap<i64, i64> = days.into_iter().collect();
            let mut v: Vec<(i64, i64, Option<i64>, Option<i64>)> =
                counts.into_iter().filter_map(|(id, ab, ch)| days.get(&id).map(|d| (id, *d, Some(ab), Some(ch)))).collect();
            v.sort_by_key(|r| r.0);
            v
        };
        // The latest run (highest id) as of each month.
        let mut run_of: HashMap<i32, (i64, Option<i64>, Option<i64>)> = HashMap::new();
        for (id, day, ab, ch) in runs {
            if ab.is_none() {
                continue;
            }
            if let Some(m) = i32::try_from(day).ok().and_then(month_of_day) {
                run_of.insert(m, (id, ab, ch));
            }
        }
        let months = (from..=to.min(data.last_month))
            .map(|m| {
                let (new, active, orders, revenue) = per.get(&m).copied().unwrap_or_default();
                let run = run_of.get(&m).copied();
                let (ab, ch) = run.map_or((None, None), |r| (r.1, r.2));
                TrendMonth {
                    month: month_label(m),
                    new_customers: new,
                    active_customers: active,
                    repeat_customers: active - new,
                    orders,
                    revenue_cents: revenue,
                    run_id: run.map(|r| r.0),
                    ab_customers: ab,
                    churned_ab_customers: ch,
                    churn_rate: match (ab, ch) {
                        (Some(a), Some(c)) if a > 0 => Some(c as f64 / a as f64),
                        _ => None,
                    },
                }
            })
            .collect();
        Ok(TrendReport {
            from: month_label(from),
            to: month_label(to),
            last_month: month_label(data.last_month),
            source: if data.run_id.is_some() { "run" } else { "live" }.into(),
            run_id: data.run_id,
            months,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_parse_strictly() {
        assert_eq!(parse_month("1970-01", "from").ok(), Some(0));
        assert_eq!(parse_month("2026-12", "from").ok(), Some(56 * 12 + 11));
        for bad in ["2026-13", "2026-00", "2026-1", "26-01", "2026/01", "1969-12", "２０２６-01", "2026-01-01", ""] {
            assert!(parse_month(bad, "from").is_err(), "{bad}");
        }
        assert_eq!(month_label(56 * 12 + 11), "2026-12");
        let d = NaiveDate::from_ymd_opt(2026, 3, 31).unwrap_or_default();
        assert_eq!(month_of_day(patron_analytics::day_number(d)), Some(month_of_date(d)));
    }

    #[test]
    fn cells_count_distinct_customers() {
        let d = |y, m, day| patron_analytics::day_number(NaiveDate::from_ymd_opt(y, m, day).unwrap_or_default());
        // Customer 0: Jan (two orders), Mar. Customer 1: Feb, Feb.
        let cells = cohort_cells(
            &[0, 0, 1, 0, 1],
            &[d(2026, 1, 5), d(2026, 1, 6), d(2026, 2, 1), d(2026, 3, 1), d(2026, 2, 9)],
            &[10, 20, 5, 7, 1],
        );
        let jan = month_of_date(NaiveDate::from_ymd_opt(2026, 1, 1).unwrap_or_default());
        assert_eq!(
            cells,
            vec![
                CohortCell { cohort: jan, month: jan, customers: 1, orders: 2, revenue_cents: 30 },
                CohortCell { cohort: jan, month: jan + 2, customers: 1, orders: 1, revenue_cents: 7 },
                CohortCell { cohort: jan + 1, month: jan + 1, customers: 1, orders: 2, revenue_cents: 6 },
            ]
        );
    }
}
