//! Cost to serve (DESIGN.md C19, issue 13 §7): each customer's margin and the cost of serving
//! them over the analysis period, gathered from what the store holds — completed orders and
//! their lines (margin by category), tickets, granted compensations, messages the outbox sent,
//! rewards redeemed — and computed by `patron_analytics::cost_to_serve`. The analysis run
//! stores the figures with its scores ([`Store::run_analysis`]); the report groups them by the
//! profitability matrix's cells and the ABCD tiers.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Months, NaiveDate, TimeZone, Utc};
use patron_analytics::cost_to_serve::{quadrant, thresholds, ticket_cost, CustomerCost, Quadrant, Thresholds};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::db::query;
use crate::users::Actor;
use crate::{Result, Store, StoreError};

/// The `settings` key of the cost-to-serve rates.
pub const SETTINGS: &str = "cost_to_serve";

/// The rates the figures use (minor units).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CostSettings {
    /// The period, months up to the analysis day.
    #[schema(minimum = 1, maximum = 60)]
    pub period_months: i64,
    /// Cost of handling one ticket.
    #[schema(minimum = 0, maximum = 100_000_000)]
    pub ticket_cents: i64,
    /// Cost of a handling minute: the minutes from a ticket's opening to its resolution (or the
    /// period's end), at most `handling_cap_minutes` per ticket (the store records no agent time).
    #[schema(minimum = 0, maximum = 1_000_000)]
    pub handling_minute_cents: i64,
    /// Handling minutes counted per ticket at most.
    #[schema(minimum = 0, maximum = 100_000)]
    pub handling_cap_minutes: i64,
    /// Unit cost of a message sent, by channel (`email`, `sms`, `wechat`, `mail`), 0 to 1000000;
    /// a channel left out costs nothing.
    pub message_cents: BTreeMap<String, i64>,
    /// Margin rate of spend, 0 to 1, for categories without their own.
    #[schema(minimum = 0, maximum = 1)]
    pub margin_rate: f64,
    /// Margin rate by category name, 0 to 1.
    pub category_margin_rates: BTreeMap<String, f64>,
}

impl Default for CostSettings {
    fn default() -> Self {
        CostSettings {
            period_months: 12,
            ticket_cents: 2_000,
            handling_minute_cents: 100,
            handling_cap_minutes: 120,
            message_cents: [("email", 1), ("sms", 5), ("wechat", 1), ("mail", 300)].into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            margin_rate: 0.3,
            category_margin_rates: BTreeMap::new(),
        }
    }
}

impl CostSettings {
    /// Checks the values are usable.
    pub fn validate(&self) -> Result<()> {
        let bad = |f: &str, m: &str| Err(StoreError::invalid(f, m));
        if !(1..=60).contains(&self.period_months) {
            return bad("period_months", "must be 1 to 60");
        }
        if !(0..=100_000_000).contains(&self.ticket_cents) {
            return bad("ticket_cents", "must be 0 to 100000000");
        }
        if !(0..=1_000_000).contains(&self.handling_minute_cents) {
            return bad("handling_minute_cents", "must be 0 to 1000000");
        }
        if !(0..=100_000).contains(&self.handling_cap_minutes) {
            return bad("handling_cap_minutes", "must be 0 to 100000");
        }
        for (ch, v) in &self.message_cents {
            if !["email", "sms", "wechat", "mail"].contains(&ch.as_str()) {
                return bad("message_cents", "channels are email, sms, wechat and mail");
            }
            if !(0..=1_000_000).contains(v) {
                return bad(&format!("message_cents.{ch}"), "must be 0 to 1000000");
            }
        }
        let rate = |v: f64| v.is_finite() && (0.0..=1.0).contains(&v);
        if !rate(self.margin_rate) {
            return bad("margin_rate", "must be 0 to 1");
        }
        if self.category_margin_rates.len() > 1000 {
            return bad("category_margin_rates", "at most 1000 categories");
        }
        for (c, v) in &self.category_margin_rates {
            if c.trim().is_empty() || c.chars().count() > 200 {
                return bad("category_margin_rates", "category names of 1 to 200 characters");
            }
            if !rate(*v) {
                return bad(&format!("category_margin_rates.{c}"), "must be 0 to 1");
            }
        }
        Ok(())
    }

    /// The margin rate of a category (by name; the default rate for none or an unlisted one).
    pub(crate) fn rate(&self, category: Option<&str>) -> f64 {
        category.and_then(|c| self.category_margin_rates.get(c)).copied().unwrap_or(self.margin_rate)
    }
}

/// The figures of one analysis: per customer (aligned with the run's customers; `None` when
/// nothing happened in the period) and where the matrix splits.
pub struct CostFigures {
    /// Per customer: the figures and the cell.
    pub customers: Vec<Option<(CustomerCost, Quadrant)>>,
    /// The medians.
    pub thresholds: Thresholds,
}

/// The business day's start of `d` in `tz`.
fn day_start(d: NaiveDate, tz: chrono_tz::Tz) -> DateTime<Utc> {
    d.and_hms_opt(0, 0, 0).and_then(|t| tz.from_local_datetime(&t).earliest()).map_or(DateTime::<Utc>::MIN_UTC, |t| t.with_timezone(&Utc))
}

/// The period of an analysis as of `as_of`: the first day and the instant after the last.
pub fn period(as_of: NaiveDate, months: i64, tz: chrono_tz::Tz) -> (NaiveDate, DateTime<Utc>, DateTime<Utc>) {
    let first = as_of.checked_sub_months(Months::new(months.clamp(1, 60) as u32)).and_then(|d| d.succ_opt()).unwrap_or(as_of);
    let end = as_of.succ_opt().unwrap_or(as_of);
    (first, day_start(first, tz), day_start(end, tz))
}

/// One cell of the report: an ABCD tier (`none` when unscored) and a matrix cell.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CostCell {
    /// `A`, `B`, `C`, `D` or `none`.
    pub abcd_tier: String,
    /// `carriage_trade`, `passive`, `aggressive` or `bargain_basement`.
    pub quadrant: String,
    /// Customers.
    pub customers: i64,
    /// Their revenue in the period.
    pub revenue_cents: i64,
    /// Their margin.
    pub margin_cents: i64,
    /// Their cost to serve.
    pub cost_cents: i64,
    /// Margin − cost.
    pub profit_cents: i64,
}

/// One customer's figures (from the latest analysis).
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct CustomerCostToServe {
    /// The customer.
    pub customer_id: i64,
    /// Revenue in the period.
    pub revenue_cents: i64,
    /// Margin.
    pub margin_cents: i64,
    /// Cost to serve.
    pub cost_to_serve_cents: i64,
    /// Margin − cost.
    pub profit_cents: i64,
    /// The matrix cell.
    pub quadrant: String,
}

/// `GET /api/v1/analytics/cost-to-serve`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CostToServeReport {
    /// The analysis the figures come from (none yet: empty).
    pub run_id: Option<i64>,
    /// Its day.
    pub as_of: Option<NaiveDate>,
    /// The period's first day.
    pub period_from: Option<NaiveDate>,
    /// Customers above this margin are high value (the median).
    pub margin_threshold_cents: i64,
    /// Customers above this cost are high cost (the median).
    pub cost_threshold_cents: i64,
    /// By tier and cell (cells without customers left out).
    pub cells: Vec<CostCell>,
    /// By cell over all tiers, in the matrix's order.
    pub quadrants: Vec<CostCell>,
    /// One customer's figures, when asked for.
    pub customer: Option<CustomerCostToServe>,
}

impl Store {
    /// The cost-to-serve rates.
    pub async fn cost_settings(&self) -> Result<CostSettings> {
        self.setting(SETTINGS).await
    }

    /// Replaces the cost-to-serve rates (audited); the next analysis uses them.
    pub async fn set_cost_settings(&self, actor: &Actor, s: &CostSettings) -> Result<CostSettings> {
        s.validate()?;
        self.put_setting(actor, SETTINGS, serde_json::to_value(s).map_err(|e| StoreError::Internal(e.to_string()))?).await?;
        Ok(s.clone())
    }

    /// Each customer's figures over the period up to `as_of` (inclusive), for `customer_ids`
    /// (a run's customers, in its order) with `period_sales` their revenue and margin in the
    /// period (aligned; read with the run's orders, [`Store::analysis_input`]), and the matrix's
    /// split over those with anything in the period.
    pub async fn cost_figures(&self, customer_ids: &[i64], as_of: NaiveDate, period_sales: &[Option<(i64, i64)>]) -> Result<CostFigures> {
        if customer_ids.len() != period_sales.len() {
            return Err(StoreError::Internal(format!("{} customers for {} period sales", customer_ids.len(), period_sales.len())));
        }
        let s = self.cost_settings().await?;
        let tz = self.config.business_tz;
        let (_, from, to) = period(as_of, s.period_months, tz);
        let mut by: HashMap<i64, CustomerCost> = HashMap::new();
        let mut r = self.db.reader();
        for (id, sales) in customer_ids.iter().zip(period_sales) {
            if let Some((revenue_cents, margin_cents)) = *sales {
                by.insert(*id, CustomerCost { revenue_cents, margin_cents, ..CustomerCost::default() });
            }
        }

        // Tickets opened in the period.
        let tickets: Vec<(i64, DateTime<Utc>, Option<DateTime<Utc>>)> = r
            .fetch_all(
                query("SELECT customer_id, opened_at, resolved_at FROM tickets WHERE opened_at >= $1 AND opened_at < $2")
                    .bind(from)
                    .bind(to),
            )
            .await?;
        for (cid, opened, resolved) in tickets {
            let minutes = (resolved.unwrap_or(to).min(to) - opened).num_minutes();
            let c = by.entry(cid).or_default();
            c.ticket_cents =
                c.ticket_cents.saturating_add(ticket_cost(minutes, s.ticket_cents, s.handling_minute_cents, s.handling_cap_minutes));
        }

        // Compensations granted in the period.
        let comps: Vec<(i64, i64)> = r
            .fetch_all(
                query(
                    "SELECT customer_id, CAST(SUM(amount_cents) AS BIGINT) FROM compensations WHERE status = 'granted' \
                     AND COALESCE(decided_at, requested_at) >= $1 AND COALESCE(decided_at, requested_at) < $2 GROUP BY customer_id",
                )
                .bind(from)
                .bind(to),
            )
            .await?;
        for (cid, cents) in comps {
            let c = by.entry(cid).or_default();
            c.compensation_cents = c.compensation_cents.saturating_add(cents);
        }

        // Messages the outbox sent in the period.
        let sent: Vec<(i64, String, i64)> = r
            .fetch_all(
                query(
                    "SELECT customer_id, channel, COUNT(*) FROM outbox WHERE status = 'sent' AND sent_at >= $1 AND sent_at < $2 \
                     GROUP BY customer_id, channel",
                )
                .bind(from)
                .bind(to),
            )
            .await?;
        for (cid, channel, n) in sent {
            let unit = s.message_cents.get(&channel).copied().unwrap_or(0);
            let c = by.entry(cid).or_default();
            c.message_cents = c.message_cents.saturating_add(unit.saturating_mul(n));
        }

        // Rewards redeemed in the period and not cancelled, at their cost.
        let rewards: Vec<(i64, i64)> = r
            .fetch_all(
                query(
                    "SELECT r.customer_id, CAST(SUM(w.cost_cents) AS BIGINT) FROM loyalty_redemptions r \
                     JOIN loyalty_rewards w ON w.id = r.reward_id WHERE r.status <> 'cancelled' AND r.created_at >= $1 AND r.created_at < $2 \
                     GROUP BY r.customer_id",
                )
                .bind(from)
                .bind(to),
            )
            .await?;
        for (cid, cents) in rewards {
            let c = by.entry(cid).or_default();
            c.reward_cents = c.reward_cents.saturating_add(cents);
        }

        let active: Vec<CustomerCost> = customer_ids.iter().filter_map(|id| by.get(id).copied()).collect();
        let t = thresholds(&active);
        let customers = customer_ids.iter().map(|id| by.get(id).map(|c| (*c, quadrant(c, &t)))).collect();
        Ok(CostFigures { customers, thresholds: t })
    }

    /// The latest analysis's figures by ABCD tier and matrix cell, and one customer's when
    /// `customer_id` is given.
    pub async fn cost_to_serve_report(&self, customer_id: Option<i64>) -> Result<CostToServeReport> {
        let run = self.latest_run().await?;
        let settings = self.cost_settings().await?;
        let mut r = self.db.reader();
        type CellRow = (Option<String>, String, i64, Option<i64>, Option<i64>, Option<i64>, Option<i64>);
        let rows: Vec<CellRow> = r
            .fetch_all(query(
                "SELECT abcd_tier, cts_quadrant, COUNT(*), CAST(SUM(cts_revenue_cents) AS BIGINT), CAST(SUM(margin_cents) AS BIGINT), \
                 CAST(SUM(cost_to_serve_cents) AS BIGINT), CAST(SUM(profit_cents) AS BIGINT) \
                 FROM customer_scores WHERE cts_quadrant IS NOT NULL GROUP BY abcd_tier, cts_quadrant",
            ))
            .await?;
        // The medians are the largest margin of the low-value half and the largest cost of the
        // low-cost half (the lower median is one of the customers).
        let (mt, ct): (Option<i64>, Option<i64>) = r
            .fetch_one(query(
                "SELECT (SELECT MAX(margin_cents) FROM customer_scores WHERE cts_quadrant IN ('aggressive', 'bargain_basement')), \
                 (SELECT MAX(cost_to_serve_cents) FROM customer_scores WHERE cts_quadrant IN ('passive', 'bargain_basement'))",
            ))
            .await?;
        let cell = |tier: String, q: &str| CostCell {
            abcd_tier: tier,
            quadrant: q.to_owned(),
            customers: 0,
            revenue_cents: 0,
            margin_cents: 0,
            cost_cents: 0,
            profit_cents: 0,
        };
        let mut cells: Vec<CostCell> = Vec::new();
        let mut quadrants: Vec<CostCell> = Quadrant::ALL.iter().map(|q| cell("all".into(), q.key())).collect();
        for (tier, q, n, rev, margin, cost, profit) in rows {
            let mut c = cell(tier.unwrap_or_else(|| "none".into()), &q);
            (c.customers, c.revenue_cents, c.margin_cents, c.cost_cents, c.profit_cents) =
                (n, rev.unwrap_or(0), margin.unwrap_or(0), cost.unwrap_or(0), profit.unwrap_or(0));
            if let Some(a) = quadrants.iter_mut().find(|a| a.quadrant == q) {
                a.customers += c.customers;
                a.revenue_cents += c.revenue_cents;
                a.margin_cents += c.margin_cents;
                a.cost_cents += c.cost_cents;
                a.profit_cents += c.profit_cents;
            }
            cells.push(c);
        }
        let order = |q: &str| Quadrant::ALL.iter().position(|x| x.key() == q).unwrap_or(4);
        cells.sort_by(|a, b| a.abcd_tier.cmp(&b.abcd_tier).then(order(&a.quadrant).cmp(&order(&b.quadrant))));
        let customer = match customer_id {
            Some(id) => {
                r.fetch_optional(
                    query(
                        "SELECT customer_id, cts_revenue_cents AS revenue_cents, margin_cents, cost_to_serve_cents, profit_cents, \
                         cts_quadrant AS quadrant FROM customer_scores WHERE customer_id = $1 AND cts_quadrant IS NOT NULL",
                    )
                    .bind(id),
                )
                .await?
            }
            None => None,
        };
        let as_of = run.as_ref().and_then(|r| r.as_of);
        Ok(CostToServeReport {
            run_id: run.as_ref().map(|r| r.id),
            as_of,
            period_from: as_of.map(|d| period(d, settings.period_months, self.config.business_tz).0),
            margin_threshold_cents: mt.unwrap_or(0),
            cost_threshold_cents: ct.unwrap_or(0),
            cells,
            quadrants,
            customer,
        })
    }
}
