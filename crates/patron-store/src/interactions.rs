//! Interactions: touchpoint events (page views, clicks, calls, visits, message opens, replies,
//! event attendance), idempotent by external id.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::customers::{lock_customers, resolve_customer};
use crate::db::{query, Tx};
use crate::orders::Upserted;
use crate::page::{decode_cursor, encode_cursor, Page};
use crate::users::Actor;
use crate::values;
use crate::{audit, Result, Store, StoreError};

/// A recorded interaction.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Interaction {
    /// Id.
    pub id: i64,
    /// Customer.
    pub customer_id: i64,
    /// Id in the source system.
    pub external_id: Option<String>,
    /// Kind: page_view, click, call, visit, sms_open, email_open, reply, event.
    pub kind: String,
    /// Channel.
    pub channel: Option<String>,
    /// When (UTC).
    pub occurred_at: DateTime<Utc>,
    /// Free payload (a URL, a call summary, an event name).
    pub payload: Option<String>,
}

/// A new interaction. Give the customer by `customer_id` or `customer_external_id`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewInteraction {
    /// Id in the source system; sending it again updates instead of adding.
    pub external_id: Option<String>,
    /// patron customer id.
    pub customer_id: Option<i64>,
    /// Customer's external id.
    pub customer_external_id: Option<String>,
    /// Kind.
    pub kind: String,
    /// Channel.
    pub channel: Option<String>,
    /// When.
    pub occurred_at: DateTime<Utc>,
    /// Payload.
    pub payload: Option<String>,
}

impl Store {
    /// Creates or updates (by external id) a batch of interactions in one transaction.
    pub async fn create_interactions(&self, actor: &Actor, items: Vec<NewInteraction>) -> Result<Vec<Upserted>> {
        if items.is_empty() {
            return Err(StoreError::invalid("interactions", "no interactions given"));
        }
        if items.len() > 10_000 {
            return Err(StoreError::invalid("interactions", "at most 10,000 per request; use the import for more"));
        }
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let batch = items.len() > 1;
        let mut out = Vec::with_capacity(items.len());
        let prefix = |i: usize| if batch { format!("interactions[{i}].") } else { String::new() };
        let mut customers = Vec::with_capacity(items.len());
        for (i, it) in items.iter().enumerate() {
            customers.push(resolve_customer(&mut tx, it.customer_id, it.customer_external_id.as_deref(), &prefix(i)).await?);
        }
        // Locked before the external ids are looked up, so that the same interaction sent twice
        // at once is added once and the second request finds it (see `create_orders`).
        if let Some(gone) = lock_customers(&mut tx, &customers).await? {
            let i = customers.iter().position(|&c| c == gone).unwrap_or(0);
            return Err(StoreError::invalid(format!("{}customer_id", prefix(i)), format!("customer {gone} was deleted meanwhile")));
        }
        for (i, (it, customer_id)) in items.into_iter().zip(customers).enumerate() {
            out.push(upsert_interaction(&mut tx, it, customer_id, &prefix(i)).await?);
        }
        audit::record(&mut tx, now, &actor.key, "upsert", "interaction", None, Some(format!("interactions={}", out.len()))).await?;
        tx.commit().await?;
        Ok(out)
    }

    /// A customer's interactions, newest first.
    pub async fn customer_interactions(&self, customer_id: i64, cursor: Option<&str>, limit: i64) -> Result<Page<Interaction>> {
        let limit = limit.clamp(1, 500);
        let mut q = query(format!(
            "SELECT id, customer_id, external_id, kind, channel, occurred_at, payload FROM interactions WHERE customer_id = $1 {} \
             ORDER BY occurred_at DESC, id DESC LIMIT $2",
            if cursor.is_some() { "AND (occurred_at, id) < ($3, $4)" } else { "" }
        ))
        .bind(customer_id)
        .bind(limit + 1);
        if let Some(c) = cursor {
            let (at, id): (DateTime<Utc>, i64) = decode_cursor(c)?;
            q = q.bind(at).bind(id);
        }
        let mut items: Vec<Interaction> = self.db.reader().fetch_all(q).await?;
        let next_cursor = if items.len() as i64 > limit {
            items.truncate(limit as usize);
            items.last().map(|r| encode_cursor(&(r.occurred_at, r.id)))
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }
}

/// Writes one interaction of `customer_id` (resolved and locked by the caller).
async fn upsert_interaction(tx: &mut Tx, it: NewInteraction, customer_id: i64, prefix: &str) -> Result<Upserted> {
    let err = |field: &str, m: String| StoreError::invalid(format!("{prefix}{field}"), m);
    let kind = values::parse_interaction_kind(&it.kind).map_err(|m| err("kind", m))?;
    let external_id = it.external_id.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    if let Some(ext) = &external_id {
        let existing = crate::keys::find(tx, crate::keys::INTERACTIONS, ext, customer_id).await?;
        if let Some((owner, id)) = existing {
            if owner != customer_id {
                return Err(StoreError::Conflict(format!("{prefix}external_id: interaction {ext:?} belongs to another customer")));
            }
            tx.execute(
                query("UPDATE interactions SET kind = $1, channel = $2, occurred_at = $3, payload = $4 WHERE customer_id = $5 AND id = $6")
                    .bind(kind)
                    .bind(it.channel)
                    .bind(it.occurred_at)
                    .bind(it.payload)
                    .bind(customer_id)
                    .bind(id),
            )
            .await?;
            return Ok(Upserted { id, external_id, created: false });
        }
    }
    let (id,): (i64,) = tx
        .fetch_one(
            query(
                "INSERT INTO interactions (customer_id, external_id, kind, channel, occurred_at, payload) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            )
            .bind(customer_id)
            .bind(external_id.clone())
            .bind(kind)
            .bind(it.channel)
            .bind(it.occurred_at)
            .bind(it.payload),
        )
        .await?;
    if let Some(ext) = &external_id {
        crate::keys::claim(tx, crate::keys::INTERACTIONS, ext, customer_id, Some(id)).await?;
    }
    Ok(Upserted { id, external_id, created: true })
}
