//! Churn reasons (the rest of DESIGN.md C6): when the analysis marks a customer churned or
//! relatively churned, staff record why (from a call, a ticket's root cause or a survey
//! answer) from the editable list in the service settings; a report counts churned customers
//! by segment (ABCD tier or RFM class) and reason.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::db::query;
use crate::tickets::{check_len, clean};
use crate::users::Actor;
use crate::{audit, events, settings, Result, Store, StoreError};

/// A churn reason to record.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChurnReasonInput {
    /// One of the service settings' `churn_reasons`.
    pub reason: String,
    /// Where it was learnt: `call` (default), `ticket:<id>` or `survey:<invitation id>`.
    pub source: Option<String>,
    /// What the customer said (up to 2,000 characters).
    pub note: Option<String>,
}

/// A customer's recorded churn reason.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct ChurnReason {
    /// The customer.
    pub customer_id: i64,
    /// The reason.
    pub reason: String,
    /// `call`, `ticket:<id>` or `survey:<invitation id>`.
    pub source: String,
    /// What the customer said.
    pub note: Option<String>,
    /// Who recorded it.
    pub recorded_by: String,
    /// When.
    pub recorded_at: DateTime<Utc>,
}

/// One cell of the churn report.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ChurnReasonCount {
    /// The segment (ABCD tier or RFM class; `(none)` without scores).
    pub segment: String,
    /// The reason (`(unknown)`: churned, no reason recorded).
    pub reason: String,
    /// Churned customers.
    pub customers: u64,
}

/// Churned customers by segment and reason (the latest analysis's churn marks).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ChurnReasonReport {
    /// `tier` or `rfm`.
    pub by: String,
    /// The reasons of the list, in its order, then `(unknown)`.
    pub reasons: Vec<String>,
    /// Cells with customers, by segment then reason.
    pub cells: Vec<ChurnReasonCount>,
    /// Churned customers in all.
    pub churned: u64,
    /// Of whom with a reason.
    pub with_reason: u64,
}

fn check_source(s: &str) -> bool {
    s == "call"
        || ["ticket:", "survey:"]
            .iter()
            .any(|p| s.strip_prefix(p).is_some_and(|id| !id.is_empty() && id.len() <= 19 && id.bytes().all(|b| b.is_ascii_digit())))
}

impl Store {
    /// Records why a churned customer left (replacing an earlier reason; the change is an
    /// event). 409 when the latest analysis does not mark the customer churned.
    pub async fn set_churn_reason(&self, actor: &Actor, customer_id: i64, input: ChurnReasonInput) -> Result<ChurnReason> {
        let s: settings::ServiceSettings = self.service_settings().await?;
        let reason = input.reason.trim().to_owned();
        if !s.churn_reasons.contains(&reason) {
            return Err(StoreError::invalid("reason", format!("reason must be one of {}", s.churn_reasons.join(", "))));
        }
        let source = clean(input.source).unwrap_or_else(|| "call".into());
        if !check_source(&source) {
            return Err(StoreError::invalid("source", "source is call, ticket:<id> or survey:<invitation id>"));
        }
        let note = clean(input.note);
        if let Some(n) = &note {
            check_len("note", n, 2000)?;
        }
        let now = self.now();
        let mut tx = self.db.begin().await?;
        if crate::customers::lock_customers(&mut tx, &[customer_id]).await?.is_some() {
            return Err(StoreError::NotFound("customer"));
        }
        let churn: Option<(String,)> =
            tx.fetch_optional(query("SELECT churn FROM customer_scores WHERE customer_id = $1").bind(customer_id)).await?;
        if !matches!(churn.as_ref().map(|c| c.0.as_str()), Some("absolute" | "relative")) {
            return Err(StoreError::State("the latest analysis does not mark this customer churned or relatively churned".into()));
        }
        tx.execute(
            query(
                "INSERT INTO churn_reasons (customer_id, reason, source, note, recorded_by, recorded_at) VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (customer_id) DO UPDATE SET reason = excluded.reason, source = excluded.source, note = excluded.note, \
                 recorded_by = excluded.recorded_by, recorded_at = excluded.recorded_at",
            )
            .bind(customer_id)
            .bind(reason.clone())
            .bind(source.clone())
            .bind(note.clone())
            .bind(actor.key.clone())
            .bind(now),
        )
        .await?;
        let payload = serde_json::json!({"reason": reason, "source": source, "by": actor.key});
        events::append(&mut tx, customer_id, "customer.churn_reason", None, payload, now).await?;
        audit::record(&mut tx, now, &actor.key, "churn_reason", "customer", Some(customer_id.to_string()), Some(reason.clone())).await?;
        tx.commit().await?;
        Ok(ChurnReason { customer_id, reason, source, note, recorded_by: actor.key.clone(), recorded_at: now })
    }

    /// A customer's churn reason, if one is recorded.
    pub async fn churn_reason(&self, customer_id: i64) -> Result<Option<ChurnReason>> {
        self.db
            .reader()
            .fetch_optional(
                query("SELECT customer_id, reason, source, note, recorded_by, recorded_at FROM churn_reasons WHERE customer_id = $1")
                    .bind(customer_id),
            )
            .await
    }

    /// Churned customers (absolutely or relatively, by the latest analysis) by segment and reason.
    pub async fn churn_reason_report(&self, by: &str) -> Result<ChurnReasonReport> {
        let column = match by {
            "tier" => "k.abcd_tier",
            "rfm" => "k.rfm_class",
            _ => return Err(StoreError::invalid("by", "by must be tier or rfm")),
        };
        let rows: Vec<(Option<String>, Option<String>, i64)> = self
            .db
            .reader()
            .fetch_all(query(format!(
                "SELECT {column}, r.reason, COUNT(*) FROM customer_scores k \
                 JOIN customers c ON c.id = k.customer_id AND c.deleted_at IS NULL \
                 LEFT JOIN churn_reasons r ON r.customer_id = k.customer_id \
                 WHERE k.churn IN ('absolute', 'relative') GROUP BY {column}, r.reason"
            )))
            .await?;
        let s: settings::ServiceSettings = self.service_settings().await?;
        let mut reasons = s.churn_reasons.clone();
        let mut cells: BTreeMap<(String, String), u64> = BTreeMap::new();
        let (mut churned, mut with_reason) = (0u64, 0u64);
        for (segment, reason, n) in rows {
            let n = n.max(0) as u64;
            churned += n;
            if reason.is_some() {
                with_reason += n;
            }
            let reason = reason.unwrap_or_else(|| "(unknown)".into());
            if reason != "(unknown)" && !reasons.contains(&reason) {
                // A reason since taken off the list still counts.
                reasons.push(reason.clone());
            }
            *cells.entry((segment.unwrap_or_else(|| "(none)".into()), reason)).or_default() += n;
        }
        reasons.push("(unknown)".into());
        Ok(ChurnReasonReport {
            by: by.to_owned(),
            reasons,
            cells: cells.into_iter().map(|((segment, reason), customers)| ChurnReasonCount { segment, reason, customers }).collect(),
            churned,
            with_reason,
        })
    }
}
