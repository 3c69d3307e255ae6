//! What an event did: invited, registered, attended, and the attendees' spend and retention over
//! the 90 days after it against comparable invitees who did not attend.
//!
//! The groups are drawn from the invitees only (a walk-in who was not invited is counted among
//! the attendees but compared with no one): `attendees` — invitees checked in; `comparison` —
//! invitees not checked in whose value tier when invited (none counts as a tier of its own) is one
//! of the attendees' tiers, so that an event that drew the A customers is not compared with the
//! D customers it also invited. Each customer's window is the 90 days from the event's end. A
//! customer is retained with a completed order in the window; spend is the window's completed
//! orders. The differences carry the intervals of the campaigns' report
//! (`patron_analytics::lift`): Newcombe's hybrid score interval for the retention rates, Welch's
//! for the spend per customer, and nothing below 30 customers in a group ("too few to tell").
//! Attending is chosen, not assigned: the difference describes the two groups, it does not
//! prove what the event caused.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Duration, Utc};
use patron_analytics::lift::{enough, newcombe_diff, welch_diff, MIN_GROUP, Z_95};
use serde::Serialize;
use utoipa::ToSchema;

use super::invitation_key;
use crate::db::query;
use crate::engagement::report::Estimate;
use crate::{Result, Store};

/// Days after the event the report looks at.
pub const WINDOW_DAYS: i64 = 90;

/// One group of the report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct ReportGroup {
    /// Customers.
    pub n: u64,
    /// Of them, with a completed order in the window.
    pub retained: u64,
    /// retained / n (0 for an empty group).
    pub retention_rate: f64,
    /// Completed orders in the window.
    pub orders: u64,
    /// Their total, cents.
    pub spend_cents: i64,
    /// spend / n, cents.
    pub spend_per_customer_cents: f64,
}

/// An event's report.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct CustomerEventReport {
    /// The event.
    pub event_id: i64,
    /// Customers invited.
    pub invited: u64,
    /// Invitations sent (the message went out).
    pub invitations_sent: u64,
    /// Registrations holding a seat now.
    pub registered: u64,
    /// Invitees who registered (holding a seat or not).
    pub invitees_registered: u64,
    /// Attendees checked in (walk-ins included).
    pub attended: u64,
    /// Attendees who were not invited.
    pub walk_ins: u64,
    /// Days after the event's end each customer is followed.
    pub window_days: i64,
    /// The window's start: the event's end.
    pub window_from: DateTime<Utc>,
    /// Its end.
    pub window_to: DateTime<Utc>,
    /// Whether the window has closed (the numbers are final).
    pub complete: bool,
    /// Invitees who attended.
    pub attendees: ReportGroup,
    /// Invitees of the attendees' tiers who did not attend.
    pub comparison: ReportGroup,
    /// The tiers the comparison is drawn from (`none`: no tier when invited).
    pub tiers: Vec<String>,
    /// Below this many customers in a group the differences are not given.
    pub min_group: u64,
    /// A group is smaller than `min_group`.
    pub too_few_to_tell: bool,
    /// Retention rate attendees − comparison, with Newcombe's hybrid score 95% interval.
    pub retention_difference: Option<Estimate>,
    /// Spend per customer attendees − comparison (cents), with Welch's 95% interval.
    pub spend_difference_cents: Option<Estimate>,
}

fn summary(spend: &[(u64, i64)]) -> ReportGroup {
    let n = spend.len() as u64;
    let mut g = ReportGroup { n, ..Default::default() };
    for (orders, cents) in spend {
        g.orders += orders;
        g.retained += u64::from(*orders > 0);
        g.spend_cents = g.spend_cents.saturating_add(*cents);
    }
    if n > 0 {
        g.retention_rate = g.retained as f64 / n as f64;
        g.spend_per_customer_cents = g.spend_cents as f64 / n as f64;
    }
    g
}

/// An invitee with their tier, registration status and check-in time.
type Invitee = (i64, Option<String>, Option<String>, Option<DateTime<Utc>>);

impl Store {
    /// The event's report (see the module docs).
    pub async fn customer_event_report(&self, event_id: i64) -> Result<CustomerEventReport> {
        let event = self.customer_event(event_id).await?;
        let now = self.now();
        let (from, to) = (event.ends_at, event.ends_at + Duration::days(WINDOW_DAYS));
        // Every invitee with their tier, registration and attendance.
        let invitees: Vec<Invitee> = self
            .db
            .reader()
            .fetch_all(
                query(
                    "SELECT i.customer_id, i.tier, r.status, r.attended_at FROM customer_event_invitations i \
                     LEFT JOIN customer_event_registrations r ON r.customer_id = i.customer_id AND r.event_id = i.event_id \
                     WHERE i.event_id = $1",
                )
                .bind(event_id),
            )
            .await?;
        let (sent,): (i64,) = self
            .db
            .reader()
            .fetch_one(
                query(
                    "SELECT COUNT(*) FROM customer_event_invitations i JOIN outbox o ON o.customer_id = i.customer_id AND o.message_key = $2 \
                     WHERE i.event_id = $1 AND o.status = 'sent'",
                )
                .bind(event_id)
                .bind(invitation_key(event_id)),
            )
            .await?;
        let orders: Vec<(i64, i64)> = self
            .db
            .reader()
            .fetch_all(
                query(
                    "SELECT o.customer_id, o.total_cents FROM orders o JOIN customer_event_invitations i ON i.customer_id = o.customer_id \
                     WHERE i.event_id = $1 AND o.status = 'completed' AND o.ordered_at >= $2 AND o.ordered_at < $3",
                )
                .bind(event_id)
                .bind(from)
                .bind(to),
            )
            .await?;
        let mut spend: HashMap<i64, (u64, i64)> = HashMap::new();
        for (c, cents) in orders {
            let s = spend.entry(c).or_default();
            s.0 += 1;
            s.1 = s.1.saturating_add(cents);
        }
        let tier = |t: &Option<String>| t.clone().unwrap_or_else(|| "none".into());
        let tiers: BTreeSet<String> = invitees.iter().filter(|i| i.3.is_some()).map(|i| tier(&i.1)).collect();
        let (mut att, mut cmp) = (Vec::new(), Vec::new());
        for (c, t, _, attended) in &invitees {
            let s = spend.get(c).copied().unwrap_or((0, 0));
            if attended.is_some() {
                att.push(s);
            } else if tiers.contains(&tier(t)) {
                cmp.push(s);
            }
        }
        let (attendees, comparison) = (summary(&att), summary(&cmp));
        let ok = enough(attendees.n, comparison.n);
        let per = |v: &[(u64, i64)]| v.iter().map(|s| s.1 as f64).collect::<Vec<f64>>();
        let invitees_attended = attendees.n;
        Ok(CustomerEventReport {
            event_id,
            invited: invitees.len() as u64,
            invitations_sent: sent as u64,
            registered: event.registered as u64,
            invitees_registered: invitees.iter().filter(|i| i.2.is_some()).count() as u64,
            attended: event.attended as u64,
            walk_ins: (event.attended as u64).saturating_sub(invitees_attended),
            window_days: WINDOW_DAYS,
            window_from: from,
            window_to: to,
            complete: to <= now,
            retention_difference: if ok {
                newcombe_diff(attendees.retained, attendees.n, comparison.retained, comparison.n, Z_95).map(Estimate::from)
            } else {
                None
            },
            spend_difference_cents: if ok { welch_diff(&per(&att), &per(&cmp)).map(Estimate::from) } else { None },
            attendees,
            comparison,
            tiers: tiers.into_iter().collect(),
            min_group: MIN_GROUP,
            too_few_to_tell: !ok,
        })
    }
}
