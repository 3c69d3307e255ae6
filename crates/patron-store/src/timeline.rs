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
        let union = "SELECT 'order' AS kind, id, ordered_at AS at, \
                 status || COALESCE(' · ' || channel, '') AS title, store AS detail, total_cents AS amount_cents \
                 FROM orders WHERE customer_id = $1 \
             UNION ALL SELECT 'interaction', id, occurred_at, kind || COALESCE(' · ' || channel, ''), payload, NULL \
                 FROM interactions WHERE customer_id = $1 \
             UNION ALL SELECT 'note', id, created_at, author, body, NULL FROM notes WHERE customer_id = $1 \
             UNION ALL SELECT 'change', id, changed_at, field, \
                 COALESCE(old_value, '∅') || ' → ' || COALESCE(new_value, '∅') || ' (' || actor || ')', NULL \
                 FROM customer_changes WHERE customer_id = $1 \
             UNION ALL SELECT 'ticket', id, opened_at, kind || ' · ' || status, subject, NULL FROM tickets WHERE customer_id = $1 \
             UNION ALL SELECT 'compensation', id, requested_at, kind || ' · ' || status, reason, amount_cents \
                 FROM compensations WHERE customer_id = $1 \
             UNION ALL SELECT 'survey', invitation_id, answered_at, kind || COALESCE(' · NPS ' || nps, ' · ' || score || '/5', ''), comment, NULL \
                 FROM survey_answers WHERE customer_id = $1 \
             UNION ALL SELECT 'loyalty', id, changed_at, COALESCE(from_tier, '—') || ' → ' || COALESCE(to_tier, '—'), reason, NULL \
                 FROM loyalty_tier_changes WHERE customer_id = $1 \
             UNION ALL SELECT 'event', r.event_id, r.registered_at, 'registered · ' || e.title, r.source, NULL \
                 FROM customer_event_registrations r JOIN customer_events e ON e.id = r.event_id \
                 WHERE r.customer_id = $1 AND r.source <> 'walk_in' \
                 AND (r.attended_at IS NULL OR r.attended_at <> r.registered_at) AND (r.cancelled_at IS NULL OR r.cancelled_at <> r.registered_at) \
             UNION ALL SELECT 'event', r.event_id, r.cancelled_at, 'cancelled · ' || e.title, NULL, NULL \
                 FROM customer_event_registrations r JOIN customer_events e ON e.id = r.event_id \
                 WHERE r.customer_id = $1 AND r.status = 'cancelled' AND r.cancelled_at IS NOT NULL \
             UNION ALL SELECT 'event', r.event_id, r.attended_at, 'attended · ' || e.title, COALESCE(e.place, e.link), NULL \
                 FROM customer_event_registrations r JOIN customer_events e ON e.id = r.event_id \
                 WHERE r.customer_id = $1 AND r.attended_at IS NOT NULL \
             UNION ALL SELECT 'web', id, at, kind || ' · ' || COALESCE(title, path), COALESCE(event_name, path), NULL \
                 FROM web_customer_views WHERE customer_id = $1";
        let mut q = query(format!(
            "SELECT kind, id, at, title, detail, amount_cents FROM ({union}) t {} ORDER BY at DESC, kind DESC, id DESC LIMIT $2",
            if cursor.is_some() { "WHERE (at, kind, id) < ($3, $4, $5)" } else { "" }
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
