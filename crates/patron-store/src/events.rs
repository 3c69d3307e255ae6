//! Domain events: every state change the service loop (and the modules after it) makes is
//! appended here in the same transaction as the change, so a consumer (journeys, webhooks,
//! loyalty) that reads the table never sees a change without its event or an event without its
//! change. Types are `noun.verb`: `ticket.opened`, `ticket.breached`, `survey.answered` …

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::types::Json;
use utoipa::ToSchema;

use crate::db::{query, Tx};
use crate::{Result, Store, StoreError};

/// One event.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Event {
    /// Id; ids grow with time, `after` pages by them.
    pub id: i64,
    /// `noun.verb`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The customer it concerns.
    pub customer_id: i64,
    /// The ticket, survey … it is about.
    pub subject_id: Option<i64>,
    /// Details (what changed, from and to).
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    /// When (UTC).
    pub occurred_at: DateTime<Utc>,
}

#[derive(serde::Deserialize, sqlx::FromRow)]
struct EventRow {
    id: i64,
    kind: String,
    customer_id: i64,
    subject_id: Option<i64>,
    #[serde(deserialize_with = "crate::db::direct::json_text")]
    payload: Json<serde_json::Value>,
    occurred_at: DateTime<Utc>,
}

impl From<EventRow> for Event {
    fn from(r: EventRow) -> Self {
        Event {
            id: r.id,
            kind: r.kind,
            customer_id: r.customer_id,
            subject_id: r.subject_id,
            payload: r.payload.0,
            occurred_at: r.occurred_at,
        }
    }
}

/// Appends an event in `tx`.
pub(crate) async fn append(
    tx: &mut Tx,
    customer_id: i64,
    kind: &str,
    subject_id: Option<i64>,
    payload: serde_json::Value,
    at: DateTime<Utc>,
) -> Result<i64> {
    let (id,): (i64,) = tx
        .fetch_one(
            query("INSERT INTO events (customer_id, type, subject_id, payload, occurred_at) VALUES ($1, $2, $3, $4, $5) RETURNING id")
                .bind(customer_id)
                .bind(kind)
                .bind(subject_id)
                .bind(payload)
                .bind(at),
        )
        .await?;
    Ok(id)
}

/// What to list.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Exact type, or a noun with `.*` (`ticket.*`).
    pub kind: Option<String>,
    /// One customer's.
    pub customer_id: Option<i64>,
    /// One subject's (with `customer_id`).
    pub subject_id: Option<i64>,
    /// Only ids greater than this.
    pub after: Option<i64>,
}

const EVENT_SELECT: &str = "SELECT id, type AS kind, customer_id, subject_id, payload, occurred_at FROM events";

/// One event of a customer, read in `tx`.
pub(crate) async fn event_in(tx: &mut Tx, customer_id: i64, id: i64) -> Result<Option<Event>> {
    let row: Option<EventRow> =
        tx.fetch_optional(query(format!("{EVENT_SELECT} WHERE customer_id = $1 AND id = $2")).bind(customer_id).bind(id)).await?;
    Ok(row.map(Event::from))
}

impl Store {
    /// Events in id order, at most `limit` (1–1000), after `filter.after`.
    pub async fn events(&self, filter: &EventFilter, limit: i64) -> Result<Vec<Event>> {
        let limit = limit.clamp(1, 1000);
        let mut sql = format!("{EVENT_SELECT} WHERE id > $1");
        let mut q_args: Vec<crate::db::Arg> = vec![filter.after.unwrap_or(0).into()];
        if let Some(kind) = &filter.kind {
            if kind.len() > 100 {
                return Err(StoreError::invalid("type", "at most 100 characters"));
            }
            match kind.strip_suffix(".*") {
                Some(noun) => {
                    q_args.push(format!("{noun}.%").into());
                    sql.push_str(&format!(" AND type LIKE ${}", q_args.len()));
                }
                None => {
                    q_args.push(kind.clone().into());
                    sql.push_str(&format!(" AND type = ${}", q_args.len()));
                }
            }
        }
        if let Some(c) = filter.customer_id {
            q_args.push(c.into());
            sql.push_str(&format!(" AND customer_id = ${}", q_args.len()));
        }
        if let Some(s) = filter.subject_id {
            q_args.push(s.into());
            sql.push_str(&format!(" AND subject_id = ${}", q_args.len()));
        }
        q_args.push(limit.into());
        sql.push_str(&format!(" ORDER BY id LIMIT ${}", q_args.len()));
        let mut q = query(sql);
        for a in q_args {
            q.push(a);
        }
        let rows: Vec<EventRow> = self.db.reader().fetch_all(q).await?;
        Ok(rows.into_iter().map(Event::from).collect())
    }
}
