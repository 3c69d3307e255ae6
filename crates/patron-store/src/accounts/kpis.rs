//! Account-manager KPIs per month (issue 19 §7, DESIGN.md §4 "KPIs").
//!
//! The **portfolio** of a user for month M is the customers they owned at the start of M (the
//! first instant of M in the business time zone): ownership is read back through the history of
//! owner changes (`portfolio_reassignments` and the customer change log's `owner_id`), so a
//! reassignment later does not rewrite a past month. Customers created after the start, or
//! erased before it, are not in it.
//!
//! Per portfolio (the month "ends" at its last day, or today for the running month):
//!
//! - `average_customer_value_cents`: mean trailing-12-month spend (completed orders, the
//!   analysis' trailing window ending at the month's end) over the portfolio;
//! - `prospect_conversion`: prospects at the start (no completed order before it) with a first
//!   purchase in the month / prospects at the start;
//! - `valuable_customer_churn`: A/B customers at the start who became churned in the month (not
//!   absolutely churned at the start, absolutely churned at the end) / A/B customers at the start.
//!   Tiers and churn are recomputed from the order history as of each day (ABCD on trailing
//!   spend over the whole base, the absolute-churn rule of DESIGN §4), with the cut points and
//!   churn rule of the latest analysis run: scores are not kept per month;
//! - `data_accuracy`: share of the portfolio with a valid mobile, a valid e-mail, a consent
//!   recorded before the month's end, and created or changed in the 12 months before it;
//! - `cadence_adherence`: of the contact cycles of the portfolio's managed accounts whose due
//!   day falls in the month (and is decided: contacted, or past), the share contacted on or
//!   before the due day ([`contact_cycles`]);
//! - `review_coverage`: share of the portfolio's managed accounts whose relationship review is
//!   not overdue at the month's end;
//! - `satisfaction`: mean 1–5 answer of the portfolio's "did we listen to you well?" (`listen`)
//!   surveys answered in the month;
//! - `on_time_rate`: of the portfolio's deliveries with a promise done in the month, the share
//!   done on or before the promise.
//!
//! Each ratio is null when its denominator is 0. Every number has its customers behind it
//! ([`Store::account_manager_kpi_customers`]).

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use patron_analytics::abcd::{abcd_tiers, AbcdBasis, Tier};
use patron_analytics::summary::{summarize, Orders};
use patron_analytics::AnalyticsConfig;
use serde::Serialize;
use utoipa::ToSchema;

use crate::access::CustomerScope;
use crate::db::query;
use crate::service::reports::Period;
use crate::users::Actor;
use crate::{Result, Store, StoreError};

/// The KPIs a drill-down can name.
pub const KPIS: [&str; 9] = [
    "customers",
    "average_customer_value",
    "prospect_conversion",
    "valuable_customer_churn",
    "data_accuracy",
    "cadence_adherence",
    "review_coverage",
    "satisfaction",
    "on_time_rate",
];

/// One account manager's month.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AmKpiRow {
    /// The account manager (the owner of the portfolio at the month's start).
    pub user_id: i64,
    /// Their name.
    pub user_name: String,
    /// Customers in the portfolio at the month's start.
    pub customers: i64,
    /// Mean trailing-12-month spend of the portfolio at the month's end (cents).
    pub average_customer_value_cents: Option<i64>,
    /// Prospects at the start with a first purchase in the month / prospects at the start.
    pub prospect_conversion: Option<f64>,
    /// A/B customers at the start who became churned in the month / A/B at the start.
    pub valuable_customer_churn: Option<f64>,
    /// Share of the portfolio with valid mobile and e-mail, a consent and an update within 12 months.
    pub data_accuracy: Option<f64>,
    /// Share of the contacts due in the month made on time.
    pub cadence_adherence: Option<f64>,
    /// Share of the managed accounts whose review is not overdue at the month's end.
    pub review_coverage: Option<f64>,
    /// Mean "did we listen to you well?" answer (1–5) in the month.
    pub satisfaction: Option<f64>,
    /// Deliveries with a promise done on time in the month / such deliveries.
    pub on_time_rate: Option<f64>,
    /// Prospects at the start.
    pub prospects: i64,
    /// Of them, converted in the month.
    pub converted: i64,
    /// A/B customers at the start.
    pub valuable: i64,
    /// Of them, churned in the month.
    pub churned: i64,
    /// Customers whose data is complete and valid.
    pub accurate: i64,
    /// Contacts due in the month (decided).
    pub contacts_due: i64,
    /// Of them, made on time.
    pub contacts_on_time: i64,
    /// Managed accounts in the portfolio.
    pub managed: i64,
    /// Of them, with the review not overdue.
    pub reviews_current: i64,
    /// "Did we listen to you well?" answers in the month.
    pub answers: i64,
    /// Deliveries with a promise done in the month.
    pub delivered: i64,
    /// Of them, on time.
    pub on_time: i64,
}

/// The KPIs of one month.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AmKpiReport {
    /// `YYYY-MM`.
    pub month: String,
    /// The first day.
    pub from: NaiveDate,
    /// The day the month is judged at: its last day, or today for the running month.
    pub to: NaiveDate,
    /// One row per account manager with a portfolio, by user id.
    pub rows: Vec<AmKpiRow>,
}

/// One customer behind the numbers of a manager's month.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct KpiCustomer {
    /// The customer.
    pub customer_id: i64,
    /// Name.
    pub name: String,
    /// Trailing-12-month spend at the month's end (cents).
    pub value_cents: i64,
    /// A prospect at the month's start.
    pub prospect_at_start: bool,
    /// A prospect who made a first purchase in the month.
    pub converted: bool,
    /// The ABCD tier at the month's start (null: a prospect).
    pub tier_at_start: Option<String>,
    /// Absolutely churned at the month's start.
    pub churned_at_start: bool,
    /// Became churned in the month.
    pub became_churned: bool,
    /// What the data lacks (`mobile`, `email`, `consent`, `stale`); empty when accurate.
    pub data_problems: Vec<String>,
    /// A managed account (has a team, or an organisation).
    pub managed: bool,
    /// Contact cycles due in the month (decided).
    pub contacts_due: i64,
    /// Of them, contacted on or before the due day.
    pub contacts_on_time: i64,
    /// The review is not overdue at the month's end (null: not a managed account).
    pub review_current: Option<bool>,
    /// The last review before the month's end.
    pub last_review_at: Option<DateTime<Utc>>,
    /// "Did we listen to you well?" answers in the month.
    pub answers: i64,
    /// Their mean (1–5).
    pub satisfaction: Option<f64>,
    /// Deliveries with a promise done in the month.
    pub delivered: i64,
    /// Of them, on time.
    pub on_time: i64,
}

/// One contact cycle: due on `due`, closed by the contact on `contact` (none yet: open).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cycle {
    /// The due day (the cycle's start + the cadence).
    pub due: NaiveDate,
    /// The contact that closed the cycle.
    pub contact: Option<NaiveDate>,
}

impl Cycle {
    /// Contacted on or before the due day.
    pub fn on_time(&self) -> bool {
        self.contact.is_some_and(|c| c <= self.due)
    }
}

/// The contact cycles of an account from `start` (its creation day), with the days of its
/// meaningful contacts and its cadence: a cycle starts at the previous contact (or `start`) and
/// is due `cadence_days` later; the next contact after its start closes it, on time or late.
/// As in the cadence list, an overdue cycle stays one cycle until the contact is made. Contacts
/// on or before a cycle's start close nothing.
pub fn contact_cycles(start: NaiveDate, contacts: &[NaiveDate], cadence_days: i64) -> Vec<Cycle> {
    let mut days: Vec<NaiveDate> = contacts.to_vec();
    days.sort_unstable();
    let mut s = start;
    let mut out = Vec::new();
    for c in days {
        if c <= s {
            continue;
        }
        out.push(Cycle { due: s + Duration::days(cadence_days), contact: Some(c) });
        s = c;
    }
    out.push(Cycle { due: s + Duration::days(cadence_days), contact: None });
    out
}

/// The month of `YYYY-MM`.
pub fn parse_month(s: &str) -> Result<NaiveDate> {
    let bad = || StoreError::invalid("month", "a month is YYYY-MM");
    let (y, m) = s.trim().split_once('-').ok_or_else(bad)?;
    if y.len() != 4 || m.len() != 2 {
        return Err(bad());
    }
    let (y, m): (i32, u32) = (y.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    NaiveDate::from_ymd_opt(y, m, 1).filter(|d| d.year() >= 1970).ok_or_else(bad)
}

fn next_month(first: NaiveDate) -> NaiveDate {
    let (y, m) = if first.month() == 12 { (first.year() + 1, 1) } else { (first.year(), first.month() + 1) };
    NaiveDate::from_ymd_opt(y, m, 1).unwrap_or(first)
}

/// The facts of one customer, the manager's whose portfolio it was in.
#[derive(Debug, Clone)]
struct Facts {
    user_id: i64,
    c: KpiCustomer,
}

type CustomerSqlRow =
    (i64, String, Option<i64>, String, Option<String>, Option<String>, DateTime<Utc>, DateTime<Utc>, Option<i64>, Option<String>);

/// A change of owner: customer, from, to, when.
type OwnerChange = (i64, Option<i64>, Option<i64>, DateTime<Utc>);
/// A logged change of the `owner_id` field: customer, old value, new value, when.
type LoggedChange = (i64, Option<String>, Option<String>, DateTime<Utc>);
/// A customer's changes of owner: from, to, when.
type OwnerHistory = HashMap<i64, Vec<(Option<i64>, Option<i64>, DateTime<Utc>)>>;

fn ratio(n: i64, d: i64) -> Option<f64> {
    (d > 0).then(|| n as f64 / d as f64)
}

impl Store {
    /// The month `YYYY-MM` as a period and the day it is judged at; a future month is refused.
    fn kpi_month(&self, month: &str) -> Result<(NaiveDate, Period, NaiveDate, DateTime<Utc>)> {
        let first = parse_month(month)?;
        let today = self.business_today();
        if first > today {
            return Err(StoreError::invalid("month", "the month has not begun"));
        }
        let last = next_month(first).pred_opt().unwrap_or(first);
        let period = Period::days(&self.config.business_tz, first, last)?;
        let end = last.min(today);
        let as_of_end = period.to.min(self.now() + Duration::microseconds(1));
        Ok((first, period, end, as_of_end))
    }

    /// The facts of every customer in the portfolios (at the month's start) that `actor` sees.
    async fn kpi_facts(&self, actor: &Actor, month: &str) -> Result<(NaiveDate, NaiveDate, Vec<Facts>)> {
        let (first, period, end, as_of_end) = self.kpi_month(month)?;
        let engine = self.db.engine();
        let start = period.from;
        let rows: Vec<CustomerSqlRow> = self
            .db
            .reader()
            .fetch_all(
                query(format!(
                    "SELECT c.id, c.name, c.owner_id, c.kind, c.mobile, c.email, c.created_at, c.updated_at, c.contact_cadence_days, s.abcd_tier \
                     FROM customers c LEFT JOIN customer_scores s ON s.customer_id = c.id \
                     WHERE c.created_at < $1 AND (c.deleted_at IS NULL OR c.deleted_at >= $1) AND {} ORDER BY c.id",
                    CustomerScope::of(actor).sql("c")
                ))
                .bind(start),
            )
            .await?;
        if rows.is_empty() {
            return Ok((first, end, Vec::new()));
        }
        // Who owned each customer at the start: the last change of owner before it, else the
        // previous owner of the first change after it, else the owner now.
        let moves: Vec<(i64, Option<i64>, i64, DateTime<Utc>)> =
            self.db.reader().fetch_all(query("SELECT customer_id, from_user_id, to_user_id, at FROM portfolio_reassignments")).await?;
        let mut changes: Vec<OwnerChange> = moves.into_iter().map(|(c, f, t, at)| (c, f, Some(t), at)).collect();
        let logged: Vec<LoggedChange> = self
            .db
            .reader()
            .fetch_all(query("SELECT customer_id, old_value, new_value, changed_at FROM customer_changes WHERE field = 'owner_id'"))
            .await?;
        let user = |v: Option<String>| v.and_then(|s| s.trim().parse::<i64>().ok());
        changes.extend(logged.into_iter().map(|(c, o, n, at)| (c, user(o), user(n), at)));
        changes.sort_by_key(|x| (x.0, x.3));
        let mut by_customer: OwnerHistory = HashMap::new();
        for (c, f, t, at) in changes {
            by_customer.entry(c).or_default().push((f, t, at));
        }
        let owner_at_start = |id: i64, now_owner: Option<i64>| -> Option<i64> {
            let Some(ch) = by_customer.get(&id) else { return now_owner };
            if let Some(before) = ch.iter().rev().find(|x| x.2 < start) {
                return before.1;
            }
            ch.first().map(|x| x.0).unwrap_or(now_owner)
        };
        let portfolio: Vec<(i64, CustomerSqlRow)> = rows.into_iter().filter_map(|r| owner_at_start(r.0, r.2).map(|u| (u, r))).collect();
        if portfolio.is_empty() {
            return Ok((first, end, Vec::new()));
        }
        let ids: Vec<i64> = portfolio.iter().map(|(_, r)| r.0).collect();
        let ids_json = serde_json::json!(ids);

        // Tiers, churn and value recomputed from the order history of the whole base.
        self.backfill_order_days().await?;
        let config: AnalyticsConfig = self.latest_run().await?.and_then(|r| serde_json::from_value(r.config).ok()).unwrap_or_default();
        let start_day = patron_analytics::day_number(first);
        let end_day = patron_analytics::day_number(end);
        let order_rows: Vec<(i64, i64, i64)> = self
            .db
            .reader()
            .fetch_all(
                query(
                    "SELECT o.customer_id, o.ordered_day, o.total_cents FROM orders o JOIN customers c ON c.id = o.customer_id \
                     WHERE o.status = 'completed' AND o.ordered_day <= $1 AND (c.deleted_at IS NULL OR c.deleted_at >= $2)",
                )
                .bind(i64::from(end_day))
                .bind(start),
            )
            .await?;
        let mut index: HashMap<i64, u32> = HashMap::new();
        for id in ids.iter().copied().chain(order_rows.iter().map(|r| r.0)) {
            let n = index.len() as u32;
            index.entry(id).or_insert(n);
        }
        let mut orders = Orders::default();
        for (c, day, total) in &order_rows {
            let Ok(day) = i32::try_from(*day) else { continue };
            orders.customer.push(index[c]);
            orders.day.push(day);
            orders.amount_cents.push(*total);
        }
        let n = index.len();
        let analytics = |e: patron_analytics::AnalyticsError| StoreError::Internal(e.to_string());
        let s0 = summarize(&orders, n, start_day - 1, &config.summary).map_err(analytics)?;
        let s1 = summarize(&orders, n, end_day, &config.summary).map_err(analytics)?;
        let ranked: Vec<bool> = (0..n).map(|c| s0.has_purchases(c)).collect();
        let values: Vec<f64> = s0.trailing_spend_cents.iter().map(|&v| v as f64).collect();
        let tiers = abcd_tiers(&values, &ranked, &s0.trailing_spend_cents, AbcdBasis::TrailingSpend, &config.abcd).map_err(analytics)?;
        let churn = config.summary.churn;
        let churned = |s: &patron_analytics::CustomerSummaries, c: usize| {
            s.recency_days(c).is_some_and(|r| f64::from(r) > churn.threshold_days(s.median_gap_days[c]))
        };

        // Data accuracy: consents and changes before the month's end.
        let in_ids = engine.json_ints(1);
        let consents: Vec<(i64,)> = self
            .db
            .reader()
            .fetch_all(
                query(format!("SELECT DISTINCT customer_id FROM customer_consents WHERE customer_id IN ({in_ids}) AND recorded_at < $2"))
                    .bind(ids_json.clone())
                    .bind(as_of_end),
            )
            .await?;
        let consents: HashSet<i64> = consents.into_iter().map(|r| r.0).collect();
        let changed: Vec<(i64, Option<DateTime<Utc>>)> = self
            .db
            .reader()
            .fetch_all(
                query(format!(
                    "SELECT customer_id, MAX(changed_at) FROM customer_changes WHERE customer_id IN ({in_ids}) AND changed_at < $2 GROUP BY customer_id"
                ))
                .bind(ids_json.clone())
                .bind(as_of_end),
            )
            .await?;
        let changed: HashMap<i64, DateTime<Utc>> = changed.into_iter().filter_map(|(c, t)| t.map(|t| (c, t))).collect();

        // Cadence: the team, the meaningful contacts, the policies.
        let settings = self.account_settings().await?;
        let team: Vec<(i64, i64)> = self
            .db
            .reader()
            .fetch_all(
                query(format!("SELECT customer_id, user_id FROM account_team WHERE customer_id IN ({in_ids})")).bind(ids_json.clone()),
            )
            .await?;
        let mut teams: HashMap<i64, HashSet<i64>> = HashMap::new();
        for (c, u) in team {
            teams.entry(c).or_default().insert(u);
        }
        let kinds: Vec<String> = settings
            .meaningful_kinds
            .iter()
            .filter_map(|k| crate::values::parse_interaction_kind(k).ok())
            .map(|k| format!("'{k}'"))
            .collect();
        let kinds = if kinds.is_empty() { "'call'".to_owned() } else { kinds.join(", ") };
        let contacts: Vec<(i64, DateTime<Utc>, Option<i64>)> = self
            .db
            .reader()
            .fetch_all(
                query(format!(
                    "SELECT customer_id, occurred_at, user_id FROM interactions WHERE customer_id IN ({in_ids}) AND kind IN ({kinds}) AND occurred_at < $2"
                ))
                .bind(ids_json.clone())
                .bind(as_of_end),
            )
            .await?;
        let mut contact_days: HashMap<i64, Vec<(NaiveDate, Option<i64>)>> = HashMap::new();
        for (c, at, u) in contacts {
            contact_days.entry(c).or_default().push((self.business_date(at), u));
        }
        let mut policies = HashMap::new();
        for tier in crate::service::policies::TIERS {
            policies.insert(tier.to_owned(), self.service_policy(tier).await?.contact_cadence_days);
        }
        let reviews: Vec<(i64, Option<DateTime<Utc>>)> = self
            .db
            .reader()
            .fetch_all(
                query(format!(
                    "SELECT customer_id, MAX(created_at) FROM relationship_reviews WHERE customer_id IN ({in_ids}) AND created_at < $2 GROUP BY customer_id"
                ))
                .bind(ids_json.clone())
                .bind(as_of_end),
            )
            .await?;
        let reviews: HashMap<i64, DateTime<Utc>> = reviews.into_iter().filter_map(|(c, t)| t.map(|t| (c, t))).collect();
        let answers: Vec<(i64, i64)> = self
            .db
            .reader()
            .fetch_all(
                query(format!(
                    "SELECT customer_id, score FROM survey_answers WHERE customer_id IN ({in_ids}) AND kind = 'listen' AND score IS NOT NULL \
                     AND answered_at >= $2 AND answered_at < $3"
                ))
                .bind(ids_json.clone())
                .bind(start)
                .bind(as_of_end),
            )
            .await?;
        let mut scores: HashMap<i64, Vec<i64>> = HashMap::new();
        for (c, s) in answers {
            scores.entry(c).or_default().push(s);
        }
        let deliveries: Vec<(i64, DateTime<Utc>, DateTime<Utc>)> = self
            .db
            .reader()
            .fetch_all(
                query(format!(
                    "SELECT customer_id, done_at, promised_at FROM fulfilment_steps WHERE customer_id IN ({in_ids}) AND step = 'delivered' \
                     AND promised_at IS NOT NULL AND done_at IS NOT NULL AND done_at >= $2 AND done_at < $3"
                ))
                .bind(ids_json)
                .bind(start)
                .bind(as_of_end),
            )
            .await?;
        let mut delivered: HashMap<i64, (i64, i64)> = HashMap::new();
        for (c, done, promised) in deliveries {
            let e = delivered.entry(c).or_default();
            e.0 += 1;
            e.1 += i64::from(done <= promised);
        }

        let year_before_end = as_of_end - Duration::days(365);
        let today = self.business_today();
        let mut out = Vec::with_capacity(portfolio.len());
        for (user_id, (id, name, now_owner, kind, mobile, email, created_at, updated_at, own_cadence, tier_now)) in portfolio {
            let ix = index[&id] as usize;
            let prospect_at_start = !s0.has_purchases(ix);
            let converted = prospect_at_start && s1.first_purchase_day[ix].is_some_and(|d| d >= start_day);
            let tier_at_start = tiers.tier[ix].map(|t| t.key().to_owned());
            let churned_at_start = churned(&s0, ix);
            let valuable = matches!(tiers.tier[ix], Some(Tier::A | Tier::B));
            let became_churned = valuable && !churned_at_start && churned(&s1, ix);
            let mut data_problems = Vec::new();
            if mobile.as_deref().is_none_or(|m| crate::values::parse_mobile(m).is_err()) {
                data_problems.push("mobile".to_owned());
            }
            if email.as_deref().is_none_or(|m| crate::values::parse_email(m).is_err()) {
                data_problems.push("email".to_owned());
            }
            if !consents.contains(&id) {
                data_problems.push("consent".to_owned());
            }
            // The last update before the month's end: the row's own time when it is earlier,
            // else the change log (and the creation).
            let last_update =
                if updated_at < as_of_end { updated_at } else { changed.get(&id).copied().unwrap_or(created_at).max(created_at) };
            if last_update < year_before_end {
                data_problems.push("stale".to_owned());
            }
            let team = teams.get(&id);
            let managed = team.is_some_and(|t| !t.is_empty()) || kind == "organisation";
            let tier_now = tier_now.filter(|t| crate::service::policies::TIERS.contains(&t.as_str())).unwrap_or_else(|| "default".into());
            let (mut contacts_due, mut contacts_on_time) = (0, 0);
            let mut review_current = None;
            if managed {
                let cadence = own_cadence.unwrap_or_else(|| policies.get(&tier_now).copied().unwrap_or(90));
                let ours = |u: &Option<i64>| u.is_none_or(|u| Some(u) == now_owner || u == user_id || team.is_some_and(|t| t.contains(&u)));
                let days: Vec<NaiveDate> =
                    contact_days.get(&id).map(|v| v.iter().filter(|(_, u)| ours(u)).map(|(d, _)| *d).collect()).unwrap_or_default();
                for cy in contact_cycles(self.business_date(created_at), &days, cadence) {
                    // Decided: contacted, or the due day is past (by the month's end).
                    let decided = cy.contact.is_some() || cy.due < today;
                    if cy.due >= first && cy.due <= end && decided {
                        contacts_due += 1;
                        contacts_on_time += i64::from(cy.on_time());
                    }
                }
                let base = self.business_date(reviews.get(&id).copied().unwrap_or(created_at));
                review_current = Some(end <= base + Duration::days(settings.review_days_for(&tier_now)));
            }
            let sc = scores.get(&id);
            let (d, o) = delivered.get(&id).copied().unwrap_or_default();
            out.push(Facts {
                user_id,
                c: KpiCustomer {
                    customer_id: id,
                    name,
                    value_cents: s1.trailing_spend_cents[ix],
                    prospect_at_start,
                    converted,
                    tier_at_start,
                    churned_at_start,
                    became_churned,
                    data_problems,
                    managed,
                    contacts_due,
                    contacts_on_time,
                    review_current,
                    last_review_at: reviews.get(&id).copied(),
                    answers: sc.map(|v| v.len() as i64).unwrap_or(0),
                    satisfaction: sc.filter(|v| !v.is_empty()).map(|v| v.iter().sum::<i64>() as f64 / v.len() as f64),
                    delivered: d,
                    on_time: o,
                },
            });
        }
        Ok((first, end, out))
    }

    /// The account-manager KPIs of month `YYYY-MM` over the customers `actor` sees.
    pub async fn account_manager_kpis(&self, actor: &Actor, month: &str) -> Result<AmKpiReport> {
        let (first, end, facts) = self.kpi_facts(actor, month).await?;
        let users: Vec<(i64, String)> = self.db.reader().fetch_all(query("SELECT id, name FROM users")).await?;
        let names: HashMap<i64, String> = users.into_iter().collect();
        let mut groups: std::collections::BTreeMap<i64, Vec<&KpiCustomer>> = Default::default();
        for f in &facts {
            groups.entry(f.user_id).or_default().push(&f.c);
        }
        let rows = groups
            .into_iter()
            .map(|(user_id, cs)| {
                let n = cs.len() as i64;
                let count = |p: &dyn Fn(&KpiCustomer) -> bool| cs.iter().filter(|c| p(c)).count() as i64;
                let sum = |p: &dyn Fn(&KpiCustomer) -> i64| cs.iter().map(|c| p(c)).sum::<i64>();
                let value: i64 = sum(&|c| c.value_cents);
                let prospects = count(&|c| c.prospect_at_start);
                let converted = count(&|c| c.converted);
                let valuable = count(&|c| matches!(c.tier_at_start.as_deref(), Some("A" | "B")));
                let churned = count(&|c| c.became_churned);
                let accurate = count(&|c| c.data_problems.is_empty());
                let contacts_due = sum(&|c| c.contacts_due);
                let contacts_on_time = sum(&|c| c.contacts_on_time);
                let managed = count(&|c| c.managed);
                let reviews_current = count(&|c| c.review_current == Some(true));
                let answers = sum(&|c| c.answers);
                let score_sum: f64 = cs.iter().filter_map(|c| c.satisfaction.map(|s| s * c.answers as f64)).sum();
                let delivered = sum(&|c| c.delivered);
                let on_time = sum(&|c| c.on_time);
                AmKpiRow {
                    user_id,
                    user_name: names.get(&user_id).cloned().unwrap_or_default(),
                    customers: n,
                    average_customer_value_cents: (n > 0).then(|| (value as f64 / n as f64).round() as i64),
                    prospect_conversion: ratio(converted, prospects),
                    valuable_customer_churn: ratio(churned, valuable),
                    data_accuracy: ratio(accurate, n),
                    cadence_adherence: ratio(contacts_on_time, contacts_due),
                    review_coverage: ratio(reviews_current, managed),
                    satisfaction: (answers > 0).then(|| score_sum / answers as f64),
                    on_time_rate: ratio(on_time, delivered),
                    prospects,
                    converted,
                    valuable,
                    churned,
                    accurate,
                    contacts_due,
                    contacts_on_time,
                    managed,
                    reviews_current,
                    answers,
                    delivered,
                    on_time,
                }
            })
            .collect();
        Ok(AmKpiReport { month: first.format("%Y-%m").to_string(), from: first, to: end, rows })
    }

    /// The customers behind one manager's number: the KPI's population (its denominator), each
    /// with the facts that put it in the numerator or not. `kpi` null: the whole portfolio.
    pub async fn account_manager_kpi_customers(
        &self,
        actor: &Actor,
        user_id: i64,
        month: &str,
        kpi: Option<&str>,
    ) -> Result<Vec<KpiCustomer>> {
        let kpi = kpi.unwrap_or("customers");
        if !KPIS.contains(&kpi) {
            return Err(StoreError::invalid("kpi", format!("kpi must be one of {}", KPIS.join(", "))));
        }
        let (_, _, facts) = self.kpi_facts(actor, month).await?;
        Ok(facts
            .into_iter()
            .filter(|f| f.user_id == user_id)
            .map(|f| f.c)
            .filter(|c| match kpi {
                "prospect_conversion" => c.prospect_at_start,
                "valuable_customer_churn" => matches!(c.tier_at_start.as_deref(), Some("A" | "B")),
                "cadence_adherence" => c.contacts_due > 0,
                "review_coverage" => c.managed,
                "satisfaction" => c.answers > 0,
                "on_time_rate" => c.delivered > 0,
                _ => true,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn cycles_close_on_the_next_contact() {
        // Every 10 days from 1 Jan: contacts on 8 Jan (on time), 8 Jan again (no new cycle),
        // 25 Jan (late: due 18 Jan); open cycle due 4 Feb.
        let c = contact_cycles(d("2026-01-01"), &[d("2026-01-25"), d("2026-01-08"), d("2026-01-08")], 10);
        assert_eq!(
            c,
            vec![
                Cycle { due: d("2026-01-11"), contact: Some(d("2026-01-08")) },
                Cycle { due: d("2026-01-18"), contact: Some(d("2026-01-25")) },
                Cycle { due: d("2026-02-04"), contact: None },
            ]
        );
        assert_eq!(c.iter().map(Cycle::on_time).collect::<Vec<_>>(), [true, false, false]);
        // A contact before the start closes nothing.
        assert_eq!(contact_cycles(d("2026-01-10"), &[d("2026-01-01")], 5), vec![Cycle { due: d("2026-01-15"), contact: None }]);
    }

    #[test]
    fn months_parse() {
        assert_eq!(parse_month("2026-05").unwrap(), d("2026-05-01"));
        for bad in ["2026-13", "2026-5", "26-05", "2026/05", "", "abcd-ef", "1969-12"] {
            assert!(parse_month(bad).is_err(), "{bad}");
        }
        assert_eq!(next_month(d("2026-12-01")), d("2027-01-01"));
    }
}
