//! Holdout validations of the models on the database (issue 18 §1): the completed orders up to
//! the holdout end are read column-wise, `patron_analytics::validation` fits the models on the
//! calibration period and sets their forecasts against the holdout, and the document is kept
//! (`analytics_validations`) so the dashboard can show the latest.

use chrono::{DateTime, NaiveDate, Utc};
use patron_analytics::validation::{validate, Validation, ValidationConfig};
use patron_analytics::{AnalyticsError, FitOptions, Orders, TimeUnit};
use serde::Serialize;

use crate::db::query;
use crate::users::Actor;
use crate::{audit, Result, Store, StoreError};

/// A stored validation: its id, when it was made, and the document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ValidationRecord {
    /// Id.
    pub id: i64,
    /// When the validation was made.
    pub created_at: DateTime<Utc>,
    /// The validation document (its keys at the top level, beside `id` and `created_at`).
    #[serde(flatten)]
    pub document: Validation,
}

/// The first day the store can hold (day numbers before it are refused as out of range).
fn earliest() -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 2).unwrap_or(NaiveDate::MIN)
}

/// An analytics error caused by the request, as the store's 4xx error naming the field.
fn invalid(e: AnalyticsError) -> StoreError {
    match e {
        AnalyticsError::InvalidConfig { field, reason } => StoreError::invalid(field, reason),
        AnalyticsError::InsufficientData { reason, .. } | AnalyticsError::FitFailed { reason, .. } => {
            StoreError::invalid("calibration_end", reason)
        }
        other => StoreError::Internal(other.to_string()),
    }
}

impl Store {
    /// Validates the models on the database: fitted on the completed orders up to
    /// `calibration_end`, checked against the purchase days after it up to `holdout_end`
    /// (both inclusive, business days); stores and returns the document. 422-type errors for a
    /// holdout end not after the calibration end and for a calibration period without customers.
    pub async fn run_validation(
        &self,
        actor: &Actor,
        calibration_end: NaiveDate,
        holdout_end: NaiveDate,
        time_unit: TimeUnit,
    ) -> Result<ValidationRecord> {
        if calibration_end < earliest() {
            return Err(StoreError::invalid("calibration_end", "calibration_end must be after 1970-01-01"));
        }
        if holdout_end <= calibration_end {
            return Err(StoreError::invalid(
                "holdout_end",
                format!("the holdout end {holdout_end} must be after the calibration end {calibration_end}"),
            ));
        }
        let (cal, hold) = (patron_analytics::day_number(calibration_end), patron_analytics::day_number(holdout_end));
        let (n, orders) = self.validation_orders(hold).await?;
        let config = ValidationConfig { calibration_end: cal, holdout_end: hold, time_unit, fit: FitOptions::default() };
        // CPU-bound (rayon inside): off the async workers.
        let document = tokio::task::spawn_blocking(move || validate(&orders, n, &config))
            .await
            .map_err(|e| StoreError::Internal(format!("validation task failed: {e}")))?
            .map_err(invalid)?;
        let text = serde_json::to_string(&document).map_err(|e| StoreError::Internal(e.to_string()))?;
        let created_at = self.now();
        let unit = match time_unit {
            TimeUnit::Days => "days",
            TimeUnit::Weeks => "weeks",
        };
        let mut tx = self.db.begin().await?;
        let (id,): (i64,) = tx
            .fetch_one(
                query(
                    "INSERT INTO analytics_validations (calibration_end_day, holdout_end_day, time_unit, customers, created_at, document) \
                     VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                )
                .bind(cal)
                .bind(hold)
                .bind(unit)
                .bind(i64::try_from(document.customers).unwrap_or(i64::MAX))
                .bind(created_at)
                .bind(text),
            )
            .await?;
        let detail = format!("calibration_end={calibration_end} holdout_end={holdout_end} customers={}", document.customers);
        audit::record(&mut tx, created_at, &actor.key, "validate", "analytics_validation", Some(id.to_string()), Some(detail)).await?;
        tx.commit().await?;
        Ok(ValidationRecord { id, created_at, document })
    }

    /// The latest validation (`None` before the first).
    pub async fn latest_validation(&self) -> Result<Option<ValidationRecord>> {
        let row: Option<(i64, DateTime<Utc>, String)> = self
            .db
            .reader()
            .fetch_optional(query("SELECT id, created_at, document FROM analytics_validations ORDER BY id DESC LIMIT 1"))
            .await?;
        row.map(|(id, created_at, text)| {
            let document =
                serde_json::from_str(&text).map_err(|e| StoreError::Internal(format!("stored validation {id} unreadable: {e}")))?;
            Ok(ValidationRecord { id, created_at, document })
        })
        .transpose()
    }

    /// The (not deleted) customers and their completed orders up to `last_day`, column-wise
    /// (customer index = position among the ids in ascending order).
    async fn validation_orders(&self, last_day: i32) -> Result<(usize, Orders)> {
        self.backfill_order_days().await?;
        let ids: Vec<(i64,)> = self.db.reader().fetch_all(query("SELECT id FROM customers WHERE deleted_at IS NULL ORDER BY id")).await?;
        let index: std::collections::HashMap<i64, u32> = ids.iter().enumerate().map(|(i, r)| (r.0, i as u32)).collect();
        let rows: Vec<(i64, i64, i64)> = self
            .db
            .reader()
            .fetch_all(
                query("SELECT customer_id, ordered_day, total_cents FROM orders WHERE status = 'completed' AND ordered_day <= $1")
                    .bind(last_day),
            )
            .await?;
        let mut orders = Orders {
            customer: Vec::with_capacity(rows.len()),
            day: Vec::with_capacity(rows.len()),
            amount_cents: Vec::with_capacity(rows.len()),
            ..Default::default()
        };
        for (customer_id, day, total) in rows {
            // Orders of deleted customers stay out, as in the analysis.
            let Some(&c) = index.get(&customer_id) else { continue };
            orders.customer.push(c);
            orders.day.push(i32::try_from(day).map_err(|_| StoreError::Internal(format!("order day {day} out of range")))?);
            orders.amount_cents.push(total);
        }
        Ok((ids.len(), orders))
    }
}
