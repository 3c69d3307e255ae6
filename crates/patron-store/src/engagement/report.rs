//! What a campaign earned (issue 12 §4) and what marketing as a whole earns (the global control
//! group, §2). A campaign's groups are its recipients (`treated`: every message that was queued,
//! whatever became of it — intention to treat, so that send-time exclusions cannot bias the
//! comparison) and its holdout (`control`: the skipped `holdout` messages). Each recipient's
//! window starts at the send (the scheduled time while not sent) or, for the control group, at
//! the skip time, and lasts the campaign's `conversion_window_days`. A response is an open, a
//! click or a reply in the window; a conversion a completed order in it.

use std::collections::HashMap;

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use patron_analytics::lift::{enough, newcombe_diff, welch_diff, Interval, MIN_GROUP, Z_95};
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::query;
use crate::{Result, Store, StoreError};

/// An estimate with its 95% interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, ToSchema)]
pub struct Estimate {
    /// The point estimate.
    pub estimate: f64,
    /// Lower bound.
    pub low: f64,
    /// Upper bound.
    pub high: f64,
}

impl From<Interval> for Estimate {
    fn from(i: Interval) -> Self {
        Estimate { estimate: i.estimate, low: i.low, high: i.high }
    }
}

/// One group of a campaign.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct GroupResult {
    /// Customers in the group.
    pub n: u64,
    /// Of them, those who opened, clicked or replied in their window.
    pub responders: u64,
    /// Of them, those with a completed order in their window.
    pub converters: u64,
    /// Completed orders in the windows.
    pub orders: u64,
    /// Their revenue, cents.
    pub revenue_cents: i64,
    /// converters / n (0 for an empty group).
    pub conversion_rate: f64,
    /// responders / n.
    pub response_rate: f64,
    /// revenue / n, cents.
    pub revenue_per_recipient_cents: f64,
}

/// The lift of the treated group over the control group.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Lift {
    /// Conversion rate treated − control, with Newcombe's hybrid score 95% interval.
    pub conversion_difference: Estimate,
    /// (treated rate − control rate) / control rate; absent when the control rate is 0.
    pub relative_lift: Option<f64>,
    /// Revenue per recipient treated − control (cents) with Welch's 95% interval; absent when
    /// neither group has any spread to estimate from.
    pub revenue_per_recipient_difference_cents: Option<Estimate>,
    /// Orders the campaign added: treated orders − control orders scaled to the treated group.
    pub incremental_orders: f64,
    /// Revenue it added, cents (the same scaling).
    pub incremental_revenue_cents: i64,
}

/// Cumulative conversion by day since the window started.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct DayPoint {
    /// Day 1 is the first 24 hours of the window.
    pub day: i64,
    /// Share of the treated group converted by the end of the day.
    pub treated: f64,
    /// Share of the control group converted by then.
    pub control: f64,
}

/// A campaign's response, conversion and lift.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct CampaignReport {
    /// The campaign.
    pub campaign_id: i64,
    /// Its conversion window, days.
    pub conversion_window_days: i64,
    /// Whether every recipient's window has closed (the numbers are final).
    pub complete: bool,
    /// The recipients.
    pub treated: GroupResult,
    /// The holdout.
    pub control: GroupResult,
    /// Both groups smaller than this say nothing ("too few to tell").
    pub min_group: u64,
    /// A group is smaller than `min_group`: `lift` is absent.
    pub too_few_to_tell: bool,
    /// The lift, when both groups are big enough.
    pub lift: Option<Lift>,
    /// Cumulative conversion by day, both groups.
    pub by_day: Vec<DayPoint>,
}

/// Revenue per customer in a group over a period.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct RevenueGroup {
    /// Customers.
    pub n: u64,
    /// Of them, with a completed order in the period.
    pub buyers: u64,
    /// Revenue of completed orders in the period, cents.
    pub revenue_cents: i64,
    /// revenue / n, cents.
    pub revenue_per_customer_cents: f64,
}

/// The global control group against everyone else over a period.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct GlobalControlReport {
    /// First day (business time zone).
    pub from: NaiveDate,
    /// Last day, inclusive.
    pub to: NaiveDate,
    /// The group's share of customers (setting), percent.
    pub global_control_percent: f64,
    /// The global control group: no marketing at all.
    pub control: RevenueGroup,
    /// Everyone else.
    pub marketed: RevenueGroup,
    /// Below `min_group` customers in a group the difference is not given.
    pub min_group: u64,
    /// A group is too small to tell.
    pub too_few_to_tell: bool,
    /// Revenue per customer, everyone else − the control group (cents), with Welch's 95% interval.
    pub difference_cents: Option<Estimate>,
}

/// A campaign message: customer, status, reason, next attempt (the skip time), sent at.
type MessageRow = (i64, String, Option<String>, DateTime<Utc>, Option<DateTime<Utc>>);

#[derive(Default)]
struct Recipient {
    control: bool,
    start: Option<DateTime<Utc>>,
    responded: bool,
    first_order_day: Option<i64>,
    orders: u64,
    revenue: i64,
}

fn group(rs: &[&Recipient]) -> GroupResult {
    let n = rs.len() as u64;
    let mut g = GroupResult { n, ..Default::default() };
    for r in rs {
        g.responders += u64::from(r.responded);
        g.converters += u64::from(r.first_order_day.is_some());
        g.orders += r.orders;
        g.revenue_cents = g.revenue_cents.saturating_add(r.revenue);
    }
    if n > 0 {
        g.conversion_rate = g.converters as f64 / n as f64;
        g.response_rate = g.responders as f64 / n as f64;
        g.revenue_per_recipient_cents = g.revenue_cents as f64 / n as f64;
    }
    g
}

/// The lift of `t` over `c` from the groups' figures and each recipient's revenue (pure).
pub fn lift(t: &GroupResult, c: &GroupResult, revenue_t: &[f64], revenue_c: &[f64]) -> Option<Lift> {
    if !enough(t.n, c.n) {
        return None;
    }
    let conversion_difference = newcombe_diff(t.converters, t.n, c.converters, c.n, Z_95)?.into();
    let scale = t.n as f64 / c.n as f64;
    Some(Lift {
        conversion_difference,
        relative_lift: (c.conversion_rate > 0.0).then(|| (t.conversion_rate - c.conversion_rate) / c.conversion_rate),
        revenue_per_recipient_difference_cents: welch_diff(revenue_t, revenue_c).map(Estimate::from),
        incremental_orders: t.orders as f64 - c.orders as f64 * scale,
        incremental_revenue_cents: (t.revenue_cents as f64 - c.revenue_cents as f64 * scale).round() as i64,
    })
}

impl Store {
    /// A campaign's report (NotFound for an unknown campaign; a draft has empty groups).
    pub async fn campaign_report(&self, id: i64) -> Result<CampaignReport> {
        let campaign = self.campaign(id).await?;
        let window = Duration::days(campaign.conversion_window_days);
        let now = self.now();
        let rows: Vec<MessageRow> = self
            .db
            .reader()
            .fetch_all(query("SELECT customer_id, status, reason, next_attempt_at, sent_at FROM outbox WHERE campaign_id = $1").bind(id))
            .await?;
        let mut recipients: HashMap<i64, Recipient> = HashMap::with_capacity(rows.len());
        let (mut first, mut last) = (None::<DateTime<Utc>>, None::<DateTime<Utc>>);
        for (customer_id, status, reason, next_attempt_at, sent_at) in rows {
            let control = status == "skipped" && reason.as_deref() == Some("holdout");
            let start = sent_at.unwrap_or(next_attempt_at);
            first = Some(first.map_or(start, |f| f.min(start)));
            last = Some(last.map_or(start, |l| l.max(start)));
            recipients.insert(customer_id, Recipient { control, start: Some(start), ..Default::default() });
        }
        if let (Some(from), Some(to)) = (first, last) {
            let until = to + window;
            let responses: Vec<(i64, DateTime<Utc>)> = self
                .db
                .reader()
                .fetch_all(
                    query(
                        "SELECT i.customer_id, i.occurred_at FROM interactions i JOIN outbox o ON o.customer_id = i.customer_id \
                         WHERE o.campaign_id = $1 AND i.kind IN ('email_open', 'sms_open', 'click', 'reply') \
                         AND i.occurred_at >= $2 AND i.occurred_at < $3",
                    )
                    .bind(id)
                    .bind(from)
                    .bind(until),
                )
                .await?;
            for (customer_id, at) in responses {
                if let Some(r) = recipients.get_mut(&customer_id) {
                    if r.start.is_some_and(|s| at >= s && at < s + window) {
                        r.responded = true;
                    }
                }
            }
            let orders: Vec<(i64, DateTime<Utc>, i64)> = self
                .db
                .reader()
                .fetch_all(
                    query(
                        "SELECT r.customer_id, r.ordered_at, r.total_cents FROM orders r JOIN outbox o ON o.customer_id = r.customer_id \
                         WHERE o.campaign_id = $1 AND r.status = 'completed' AND r.ordered_at >= $2 AND r.ordered_at < $3",
                    )
                    .bind(id)
                    .bind(from)
                    .bind(until),
                )
                .await?;
            for (customer_id, at, cents) in orders {
                if let Some(r) = recipients.get_mut(&customer_id) {
                    if let Some(start) = r.start.filter(|s| at >= *s && at < *s + window) {
                        // Day 1 is the first 24 hours.
                        let day = (at - start).num_seconds() / 86_400 + 1;
                        r.first_order_day = Some(r.first_order_day.map_or(day, |d| d.min(day)));
                        r.orders += 1;
                        r.revenue = r.revenue.saturating_add(cents);
                    }
                }
            }
        }
        let treated: Vec<&Recipient> = recipients.values().filter(|r| !r.control).collect();
        let control: Vec<&Recipient> = recipients.values().filter(|r| r.control).collect();
        let (t, c) = (group(&treated), group(&control));
        let rev = |rs: &[&Recipient]| rs.iter().map(|r| r.revenue as f64).collect::<Vec<f64>>();
        let lift = lift(&t, &c, &rev(&treated), &rev(&control));
        let days = campaign.conversion_window_days;
        let cumulative = |rs: &[&Recipient]| {
            let mut per_day = vec![0u64; days as usize + 1];
            for r in rs {
                if let Some(d) = r.first_order_day {
                    per_day[d.clamp(1, days) as usize] += 1;
                }
            }
            let n = rs.len().max(1) as f64;
            let mut acc = 0u64;
            per_day
                .into_iter()
                .skip(1)
                .map(|k| {
                    acc += k;
                    acc as f64 / n
                })
                .collect::<Vec<f64>>()
        };
        let (ct, cc) = (cumulative(&treated), cumulative(&control));
        let by_day = (1..=days).map(|d| DayPoint { day: d, treated: ct[d as usize - 1], control: cc[d as usize - 1] }).collect();
        Ok(CampaignReport {
            campaign_id: id,
            conversion_window_days: days,
            complete: campaign.status == "launched" && last.is_none_or(|l| l + window <= now),
            too_few_to_tell: lift.is_none(),
            treated: t,
            control: c,
            min_group: MIN_GROUP,
            lift,
            by_day,
        })
    }

    /// Revenue per customer of the global control group against everyone else, from day `from`
    /// to day `to` inclusive (business time zone; at most ten years), over live customers.
    pub async fn global_control_report(&self, from: NaiveDate, to: NaiveDate) -> Result<GlobalControlReport> {
        if to < from {
            return Err(StoreError::invalid("to", "must not be before from"));
        }
        if from.year() < 1900 || to.year() > 9999 {
            return Err(StoreError::invalid("from", "the period lies between the years 1900 and 9999"));
        }
        if (to - from).num_days() > 3660 {
            return Err(StoreError::invalid("to", "at most ten years after from"));
        }
        let tz = self.config.business_tz;
        let start =
            |d: NaiveDate| tz.from_local_datetime(&d.and_hms_opt(0, 0, 0).unwrap_or_default()).earliest().map(|t| t.with_timezone(&Utc));
        let (Some(a), Some(b)) = (start(from), to.succ_opt().and_then(start)) else {
            return Err(StoreError::invalid("from", "not a day of the calendar"));
        };
        let settings = self.engagement_settings().await?;
        let rows: Vec<(i64, i64)> = self
            .db
            .reader()
            .fetch_all(
                query(format!(
                    "SELECT c.id, {} FROM customers c LEFT JOIN orders o ON o.customer_id = c.id AND o.status = 'completed' \
                     AND o.ordered_at >= $1 AND o.ordered_at < $2 WHERE c.deleted_at IS NULL GROUP BY c.id",
                    self.db.engine().clamp_bigint(&self.db.engine().sum_wide("o.total_cents"))
                ))
                .bind(a)
                .bind(b),
            )
            .await?;
        let (mut control, mut marketed) = (Vec::new(), Vec::new());
        for (id, cents) in rows {
            if settings.in_global_control(id) {
                control.push(cents);
            } else {
                marketed.push(cents);
            }
        }
        let summary = |v: &[i64]| {
            let n = v.len() as u64;
            let revenue: i64 = v.iter().fold(0i64, |a, c| a.saturating_add(*c));
            RevenueGroup {
                n,
                buyers: v.iter().filter(|c| **c > 0).count() as u64,
                revenue_cents: revenue,
                revenue_per_customer_cents: if n > 0 { revenue as f64 / n as f64 } else { 0.0 },
            }
        };
        let f = |v: &[i64]| v.iter().map(|c| *c as f64).collect::<Vec<f64>>();
        let ok = enough(control.len() as u64, marketed.len() as u64);
        Ok(GlobalControlReport {
            from,
            to,
            global_control_percent: settings.global_control_percent,
            control: summary(&control),
            marketed: summary(&marketed),
            min_group: MIN_GROUP,
            too_few_to_tell: !ok,
            difference_cents: if ok { welch_diff(&f(&marketed), &f(&control)).map(Estimate::from) } else { None },
        })
    }
}
