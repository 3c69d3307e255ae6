//! Reports of the service loop: the complaint rate per 1,000 completed orders against the
//! zero-defect target, the Pareto of causes (DESIGN.md §4), and the agents' service KPIs.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use patron_analytics::service::{median, pareto, ParetoRow};
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::query;
use crate::{Result, Store, StoreError};

/// A period `[from, to)` in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct Period {
    /// Start (inclusive).
    pub from: DateTime<Utc>,
    /// End (exclusive).
    pub to: DateTime<Utc>,
}

impl Period {
    /// The period from the start of local day `from` to the start of local day `to` + 1 in the
    /// business time zone (both days included).
    pub fn days<Z: TimeZone>(tz: &Z, from: NaiveDate, to: NaiveDate) -> Result<Period> {
        if to < from {
            return Err(StoreError::invalid("to", "must not be before from"));
        }
        let start = |d: NaiveDate| {
            d.and_hms_opt(0, 0, 0)
                .and_then(|t| tz.from_local_datetime(&t).earliest())
                .map(|t| t.with_timezone(&Utc))
                .ok_or_else(|| StoreError::invalid("from", "not a day in the business time zone"))
        };
        Ok(Period { from: start(from)?, to: start(to.succ_opt().unwrap_or(to))? })
    }
}

/// One Pareto table.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Pareto {
    /// The period.
    pub period: Period,
    /// The ticket kind counted.
    pub kind: String,
    /// Tickets counted.
    pub total: u64,
    /// Causes by count, descending.
    pub categories: Vec<ParetoEntry>,
}

/// One cause of a Pareto table.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ParetoEntry {
    /// The cause: the root cause when resolved, else the intake category (`未分类` without one).
    pub category: String,
    /// Tickets.
    pub count: u64,
    /// Share of all (0–1).
    pub share: f64,
    /// Share of this cause and every more frequent one (0–1).
    pub cumulative_share: f64,
    /// In the vital few: the shortest prefix reaching 80%.
    pub vital_few: bool,
}

impl From<ParetoRow> for ParetoEntry {
    fn from(r: ParetoRow) -> Self {
        ParetoEntry { category: r.category, count: r.count, share: r.share, cumulative_share: r.cumulative_share, vital_few: r.vital_few }
    }
}

/// Complaints per 1,000 completed orders for one group.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ComplaintRate {
    /// The tier or store (absent for the whole).
    pub group: Option<String>,
    /// Complaints opened in the period.
    pub complaints: i64,
    /// Completed orders in the period.
    pub orders: i64,
    /// Complaints per 1,000 orders (absent without orders).
    pub per_1000: Option<f64>,
    /// At or below the target.
    pub on_target: bool,
}

/// The complaint-rate report.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ComplaintRates {
    /// The period.
    pub period: Period,
    /// Target per 1,000 orders (settings; 0 is zero defects).
    pub target_per_1000: f64,
    /// The whole business.
    pub overall: ComplaintRate,
    /// By the customers' value tier (the tier a complaint opened under; orders by the
    /// customer's tier now).
    pub by_tier: Vec<ComplaintRate>,
    /// By store.
    pub by_store: Vec<ComplaintRate>,
}

/// One agent's service KPIs for a month.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AgentKpis {
    /// The user.
    pub user_id: i64,
    /// Their name.
    pub name: String,
    /// Tickets assigned to them and resolved in the month.
    pub handled: i64,
    /// Median minutes from opening to first response, of their tickets opened in the month
    /// (working time where the ticket's policy counts working time).
    pub median_first_response_minutes: Option<f64>,
    /// Median minutes from opening to resolution of the tickets handled (same clock).
    pub median_resolution_minutes: Option<f64>,
    /// Share of the tickets handled with no breach recorded (0–1).
    pub sla_hit_rate: Option<f64>,
    /// Share of the tickets handled that the customer reopened (0–1).
    pub reopened_rate: Option<f64>,
    /// Mean CSAT (1–5) of the surveys about their resolved tickets (none yet).
    pub csat: Option<f64>,
    /// Praise tickets about them opened in the month.
    pub praise: i64,
}

/// The KPI report of a month.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ServiceKpis {
    /// `YYYY-MM`.
    pub month: String,
    /// The month in UTC.
    pub period: Period,
    /// One row per user with tickets in the month, by name.
    pub agents: Vec<AgentKpis>,
}

#[derive(sqlx::FromRow)]
struct KpiRow {
    assignee_id: i64,
    name: String,
    kind: String,
    business_hours: bool,
    opened_at: DateTime<Utc>,
    first_responded_at: Option<DateTime<Utc>>,
    resolved_at: Option<DateTime<Utc>>,
    reopened_count: i64,
    breached: bool,
}

/// `YYYY-MM` → the month's first day.
pub fn parse_month(month: &str) -> Result<NaiveDate> {
    NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d")
        .ok()
        .filter(|d| (1900..=2100).contains(&d.year()))
        .ok_or_else(|| StoreError::invalid("month", "expected YYYY-MM"))
}

impl Store {
    /// The Pareto of causes of the tickets of `kind` opened in the period.
    pub async fn pareto(&self, kind: &str, period: Period) -> Result<Pareto> {
        crate::tickets::one_of("kind", kind, &crate::tickets::KINDS)?;
        let rows: Vec<(Option<String>, i64)> = self
            .db
            .reader()
            .fetch_all(
                query(
                    "SELECT COALESCE(root_cause, category), COUNT(*) FROM tickets WHERE kind = $1 AND opened_at >= $2 AND opened_at < $3 \
                     GROUP BY COALESCE(root_cause, category)",
                )
                .bind(kind)
                .bind(period.from)
                .bind(period.to),
            )
            .await?;
        let total = rows.iter().map(|r| r.1.max(0) as u64).sum();
        let table = pareto(rows.into_iter().map(|(c, n)| (c.unwrap_or_else(|| "未分类".into()), n.max(0) as u64)), 0.8);
        Ok(Pareto { period, kind: kind.to_owned(), total, categories: table.into_iter().map(ParetoEntry::from).collect() })
    }

    /// Complaints per 1,000 completed orders in the period: overall, by tier and by store.
    pub async fn complaint_rates(&self, period: Period) -> Result<ComplaintRates> {
        let target = self.service_settings().await?.complaint_target_per_1000;
        let mut r = self.db.reader();
        let complaints = "FROM tickets WHERE kind = 'complaint' AND opened_at >= $1 AND opened_at < $2";
        let orders = "FROM orders o WHERE o.status = 'completed' AND o.ordered_at >= $1 AND o.ordered_at < $2";
        let count = |sql: String| query(sql).bind(period.from).bind(period.to);
        let (c_all,): (i64,) = r.fetch_one(count(format!("SELECT COUNT(*) {complaints}"))).await?;
        let (o_all,): (i64,) = r.fetch_one(count(format!("SELECT COUNT(*) {orders}"))).await?;
        let c_tier: Vec<(String, i64)> = r.fetch_all(count(format!("SELECT tier, COUNT(*) {complaints} GROUP BY tier"))).await?;
        // Orders by the customer's tier now: scores are per customer, joined on the customer.
        let o_tier: Vec<(Option<String>, i64)> = r
            .fetch_all(count(
                "SELECT s.abcd_tier, COUNT(*) FROM orders o LEFT JOIN customer_scores s ON s.customer_id = o.customer_id \
                 WHERE o.status = 'completed' AND o.ordered_at >= $1 AND o.ordered_at < $2 GROUP BY s.abcd_tier"
                    .into(),
            ))
            .await?;
        let c_store: Vec<(Option<String>, i64)> = r.fetch_all(count(format!("SELECT store, COUNT(*) {complaints} GROUP BY store"))).await?;
        let o_store: Vec<(Option<String>, i64)> = r.fetch_all(count(format!("SELECT o.store, COUNT(*) {orders} GROUP BY o.store"))).await?;
        let rate = |group: Option<String>, complaints: i64, orders: i64| {
            let per_1000 = (orders > 0).then(|| complaints as f64 * 1000.0 / orders as f64);
            ComplaintRate { group, complaints, orders, per_1000, on_target: per_1000.map_or(complaints == 0, |p| p <= target + 1e-9) }
        };
        let merge = |c: Vec<(String, i64)>, o: Vec<(String, i64)>| {
            let mut groups: BTreeMap<String, (i64, i64)> = BTreeMap::new();
            for (g, n) in c {
                groups.entry(g).or_default().0 += n;
            }
            for (g, n) in o {
                groups.entry(g).or_default().1 += n;
            }
            groups.into_iter().map(|(g, (c, o))| rate(Some(g), c, o)).collect::<Vec<_>>()
        };
        let named =
            |v: Vec<(Option<String>, i64)>, none: &str| v.into_iter().map(|(g, n)| (g.unwrap_or_else(|| none.to_owned()), n)).collect();
        Ok(ComplaintRates {
            period,
            target_per_1000: target,
            overall: rate(None, c_all, o_all),
            by_tier: merge(c_tier, named(o_tier, "default")),
            by_store: merge(named(c_store, "(none)"), named(o_store, "(none)")),
        })
    }

    /// Service KPIs per agent for the month starting on `month` (its first day, business time).
    pub async fn service_kpis(&self, month: NaiveDate) -> Result<ServiceKpis> {
        let tz = self.config.business_tz;
        let last = month.checked_add_months(chrono::Months::new(1)).and_then(|d| d.pred_opt()).unwrap_or(month);
        let period = Period::days(&tz, month, last)?;
        let cal = self.calendar().await?;
        let rows: Vec<KpiRow> = self
            .db
            .reader()
            .fetch_all(
                query(
                    "SELECT t.assignee_id, u.name, t.kind, t.business_hours, t.opened_at, t.first_responded_at, t.resolved_at, \
                     t.reopened_count, (t.first_response_breached_at IS NOT NULL OR t.resolution_breached_at IS NOT NULL) AS breached \
                     FROM tickets t JOIN users u ON u.id = t.assignee_id \
                     WHERE (t.opened_at >= $1 AND t.opened_at < $2) OR (t.resolved_at >= $1 AND t.resolved_at < $2)",
                )
                .bind(period.from)
                .bind(period.to),
            )
            .await?;
        // CSAT: the mean 1–5 score of the surveys about the agent's resolved tickets answered
        // in the month.
        let csat_rows: Vec<(i64, f64)> = self
            .db
            .reader()
            .fetch_all(
                query(
                    "SELECT agent_id, AVG(CAST(score AS DOUBLE PRECISION)) FROM survey_answers \
                     WHERE agent_id IS NOT NULL AND score IS NOT NULL AND answered_at >= $1 AND answered_at < $2 GROUP BY agent_id",
                )
                .bind(period.from)
                .bind(period.to),
            )
            .await?;
        let csat: BTreeMap<i64, f64> = csat_rows.into_iter().collect();
        let within = |at: Option<DateTime<Utc>>| at.is_some_and(|a| a >= period.from && a < period.to);
        let mut by_agent: BTreeMap<i64, Vec<KpiRow>> = BTreeMap::new();
        for r in rows {
            by_agent.entry(r.assignee_id).or_default().push(r);
        }
        let mut agents: Vec<AgentKpis> = by_agent
            .into_iter()
            .map(|(user_id, rows)| {
                let name = rows.first().map(|r| r.name.clone()).unwrap_or_default();
                let opened: Vec<&KpiRow> = rows.iter().filter(|r| within(Some(r.opened_at))).collect();
                let handled: Vec<&KpiRow> = rows.iter().filter(|r| within(r.resolved_at)).collect();
                let mut first: Vec<i64> = opened
                    .iter()
                    .filter_map(|r| r.first_responded_at.map(|f| cal.minutes_between(&tz, r.opened_at, f, r.business_hours)))
                    .collect();
                let mut resolution: Vec<i64> = handled
                    .iter()
                    .filter_map(|r| r.resolved_at.map(|f| cal.minutes_between(&tz, r.opened_at, f, r.business_hours)))
                    .collect();
                let share = |n: usize| (!handled.is_empty()).then(|| n as f64 / handled.len() as f64);
                AgentKpis {
                    user_id,
                    name,
                    handled: handled.len() as i64,
                    median_first_response_minutes: median(&mut first),
                    median_resolution_minutes: median(&mut resolution),
                    sla_hit_rate: share(handled.iter().filter(|r| !r.breached).count()),
                    reopened_rate: share(handled.iter().filter(|r| r.reopened_count > 0).count()),
                    csat: csat.get(&user_id).copied(),
                    praise: opened.iter().filter(|r| r.kind == "praise").count() as i64,
                }
            })
            .collect();
        agents.sort_by(|a, b| a.name.cmp(&b.name).then(a.user_id.cmp(&b.user_id)));
        Ok(ServiceKpis { month: month.format("%Y-%m").to_string(), period, agents })
    }
}

/// Praise shared on the team feed: what the customer said and who it was for (never the
/// customer's name: every agent sees the feed).
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Praise {
    /// The ticket.
    pub ticket_id: i64,
    /// Subject.
    pub subject: String,
    /// What the customer said.
    pub body: String,
    /// The agent praised (the assignee), when there is one.
    pub agent_name: Option<String>,
    /// The store, when known.
    pub store: Option<String>,
    /// When.
    pub opened_at: DateTime<Utc>,
}

impl Store {
    /// The latest praise, newest first (at most `limit`, 1–100).
    pub async fn praise_feed(&self, limit: i64) -> Result<Vec<Praise>> {
        self.db
            .reader()
            .fetch_all(
                query(
                    "SELECT t.id AS ticket_id, t.subject, t.body, u.name AS agent_name, t.store, t.opened_at FROM tickets t \
                     LEFT JOIN users u ON u.id = t.assignee_id WHERE t.kind = 'praise' ORDER BY t.opened_at DESC, t.id DESC LIMIT $1",
                )
                .bind(limit.clamp(1, 100)),
            )
            .await
    }
}
