//! One customer's timeline: orders, interactions, notes, profile changes, tickets,
//! compensations, survey answers, loyalty tier changes and customer events (registered, cancelled,
//! attended: kind `event`, read from the registrations themselves rather than copied into the
//! interactions, whose kinds SQLite cannot widen) and stitched web page views (kind `web`) merged,
//! newest first.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::db::query;
use crate::page::{decode_cursor, encode_cursor, Page};
use crate::{Result, Store};

/// One entry of a timeline.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct TimelineEntry {
    /// `order`, `interaction`, `note`, `change`, `ticket`, `compensation`, `survey`, `loyalty`, `event` or
    /// `web` (a stitched page view or click: title "pageview · TITLE", detail the path or event name).
    pub kind: String,
    /// Id of the row in its own table.
    pub id: i64,
    /// When (UTC).
    pub at: DateTime<Utc>,
    /// Short headline: order status and channel, interaction kind, note author, changed field.
    pub title: String,
    /// Details: store, payload, note text, "old → new".
    pub detail: Option<String>,
    /// Money involved, minor units (orders, compensations).
    pub amount_cents: Option<i64>,
}

impl Store {
    /// The merged timeline of a customer, newest first, `limit` entries after `cursor`.
    pub async fn timeline(&self, customer_id: i64, cursor: Option<&str>, limit: i64) -> Result<Page<TimelineEntry>> {
        let limit = limit.clamp(1, 500);
        // Each branch yields the same columns; the outer query orders and pages by (at, kind, id).
        // Each branch is cut to the page first (after the cursor, newest first, limit + 1 rows):
        // the page is among those, and a customer's thousands of orders are then not all read and
        // sorted for every page (a customer with ~280 orders cost the timeline five times a
        // customer with nine).
        let after = cursor.is_some();
        let union = BRANCHES
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let cursor = if after { format!(" AND ({}, '{}', {}) < ($3, $4, $5)", b.at, b.kind, b.id) } else { String::new() };
                format!(
                    "SELECT * FROM (SELECT '{}' AS kind, {} AS id, {} AS at, {} AS title, {} AS detail, {} AS amount_cents FROM {} \
                     WHERE {}{cursor} ORDER BY {} DESC, {} DESC LIMIT $2) b{i}",
                    b.kind, b.id, b.at, b.title, b.detail, b.amount, b.from, b.filter, b.at, b.id
                )
            })
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        let mut q = query(format!(
            "SELECT kind, id, at, title, detail, amount_cents FROM ({union}) t ORDER BY at DESC, kind DESC, id DESC LIMIT $2"
        ))
        .bind(customer_id)
        .bind(limit + 1);
        if let Some(c) = cursor {
            let (at, kind, id): (DateTime<Utc>, String, i64) = decode_cursor(c)?;
            q = q.bind(at).bind(kind).bind(id);
        }
        let mut items: Vec<TimelineEntry> = self.db.reader().fetch_all(q).await?;
        let next_cursor = if items.len() as i64 > limit {
            items.truncate(limit as usize);
            items.last().map(|e| encode_cursor(&(e.at, &e.kind, e.id)))
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }
}

/// One source of timeline entries: its kind, the expressions of an entry's columns, and where
/// its rows are (`$1` is the customer). A NULL column is cast to its type: each branch is a
/// subquery of its own, where PostgreSQL would take an untyped NULL for text.
struct Branch {
    kind: &'static str,
    id: &'static str,
    at: &'static str,
    title: &'static str,
    detail: &'static str,
    amount: &'static str,
    from: &'static str,
    filter: &'static str,
}

/// Every source of a timeline, in the order the entries were merged before.
const BRANCHES: [Branch; 12] = [
    Branch {
        kind: "order",
        id: "id",
        at: "ordered_at",
        title: "status || COALESCE(' · ' || channel, '')",
        detail: "store",
        amount: "total_cents",
        from: "orders",
        filter: "customer_id = $1",
    },
    Branch {
        kind: "interaction",
        id: "id",
        at: "occurred_at",
        title: "kind || COALESCE(' · ' || channel, '')",
        detail: "payload",
        amount: "CAST(NULL AS BIGINT)",
        from: "interactions",
        filter: "customer_id = $1",
    },
    Branch { kind: "note", id: "id", at: "created_at", title: "author", detail: "body", amount: "CAST(NULL AS BIGINT)", from: "notes", filter: "customer_id = $1" },
    Branch {
        kind: "change",
        id: "id",
        at: "changed_at",
        title: "field",
        detail: "COALESCE(old_value, '∅') || ' → ' || COALESCE(new_value, '∅') || ' (' || actor || ')'",
        amount: "CAST(NULL AS BIGINT)",
        from: "customer_changes",
        filter: "customer_id = $1",
    },
    Branch {
        kind: "ticket",
        id: "id",
        at: "opened_at",
        title: "kind || ' · ' || status",
        detail: "subject",
        amount: "CAST(NULL AS BIGINT)",
        from: "tickets",
        filter: "customer_id = $1",
    },
    Branch {
        kind: "compensation",
        id: "id",
        at: "requested_at",
        title: "kind || ' · ' || status",
        detail: "reason",
        amount: "amount_cents",
        from: "compensations",
        filter: "customer_id = $1",
    },
    Branch {
        kind: "survey",
        id: "invitation_id",
        at: "answered_at",
        title: "kind || COALESCE(' · NPS ' || nps, ' · ' || score || '/5', '')",
        detail: "comment",
        amount: "CAST(NULL AS BIGINT)",
        from: "survey_answers",
        filter: "customer_id = $1",
    },
    Branch {
        kind: "loyalty",
        id: "id",
        at: "changed_at",
        title: "COALESCE(from_tier, '—') || ' → ' || COALESCE(to_tier, '—')",
        detail: "reason",
        amount: "CAST(NULL AS BIGINT)",
        from: "loyalty_tier_changes",
        filter: "customer_id = $1",
    },
    Branch {
        kind: "event",
        id: "r.event_id",
        at: "r.registered_at",
        title: "'registered · ' || e.title",
        detail: "r.source",
        amount: "CAST(NULL AS BIGINT)",
        from: "customer_event_registrations r JOIN customer_events e ON e.id = r.event_id",
        filter: "r.customer_id = $1 AND r.source <> 'walk_in' \
                 AND (r.attended_at IS NULL OR r.attended_at <> r.registered_at) AND (r.cancelled_at IS NULL OR r.cancelled_at <> r.registered_at)",
    },
    Branch {
        kind: "event",
        id: "r.event_id",
        at: "r.cancelled_at",
        title: "'cancelled · ' || e.title",
        detail: "CAST(NULL AS TEXT)",
        amount: "CAST(NULL AS BIGINT)",
        from: "customer_event_registrations r JOIN customer_events e ON e.id = r.event_id",
        filter: "r.customer_id = $1 AND r.status = 'cancelled' AND r.cancelled_at IS NOT NULL",
    },
    Branch {
        kind: "event",
        id: "r.event_id",
        at: "r.attended_at",
        title: "'attended · ' || e.title",
        detail: "COALESCE(e.place, e.link)",
        amount: "CAST(NULL AS BIGINT)",
        from: "customer_event_registrations r JOIN customer_events e ON e.id = r.event_id",
        filter: "r.customer_id = $1 AND r.attended_at IS NOT NULL",
    },
    Branch {
        kind: "web",
        id: "id",
        at: "at",
        title: "kind || ' · ' || COALESCE(title, path)",
        detail: "COALESCE(event_name, path)",
        amount: "CAST(NULL AS BIGINT)",
        from: "web_customer_views",
        filter: "customer_id = $1",
    },
];
