//! Settings stored as one JSON value per key: the business calendar and the service settings.
//! A key never written reads as its default, so a new database works without set-up.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use utoipa::ToSchema;

use crate::calendar::BusinessCalendar;
use crate::db::{query, Tx};
use crate::users::Actor;
use crate::{audit, Result, Store, StoreError};

/// The key of the business calendar.
pub const CALENDAR: &str = "calendar";
/// The key of [`ServiceSettings`].
pub const SERVICE: &str = "service";

/// How the service loop behaves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceSettings {
    /// Days a customer has to confirm a resolution before it counts as confirmed by timeout
    /// (and the life of the confirmation link).
    pub confirmation_days: i64,
    /// Minutes before a due time that the assignee is warned.
    pub warning_minutes: i64,
    /// Target complaints per 1,000 completed orders (0: zero defects).
    pub complaint_target_per_1000: f64,
    /// Root causes a resolved complaint is filed under.
    pub root_causes: Vec<String>,
    /// Reasons a churned customer gave.
    pub churn_reasons: Vec<String>,
}

impl Default for ServiceSettings {
    fn default() -> Self {
        let list = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect();
        ServiceSettings {
            confirmation_days: 7,
            warning_minutes: 15,
            complaint_target_per_1000: 0.0,
            root_causes: list(&["上菜慢", "菜品质量", "服务态度", "外卖延迟", "收费错误", "环境卫生", "预订问题", "其他"]),
            churn_reasons: list(&["价格", "口味", "服务", "搬家", "竞争对手", "其他"]),
        }
    }
}

impl ServiceSettings {
    /// Checks the values are usable.
    pub fn validate(&self) -> Result<()> {
        if !(1..=365).contains(&self.confirmation_days) {
            return Err(StoreError::invalid("confirmation_days", "must be 1 to 365 days"));
        }
        if !(0..=24 * 60).contains(&self.warning_minutes) {
            return Err(StoreError::invalid("warning_minutes", "must be 0 to 1440 minutes"));
        }
        if !self.complaint_target_per_1000.is_finite() || self.complaint_target_per_1000 < 0.0 {
            return Err(StoreError::invalid("complaint_target_per_1000", "must be 0 or more"));
        }
        for (field, list) in [("root_causes", &self.root_causes), ("churn_reasons", &self.churn_reasons)] {
            if list.is_empty() || list.len() > 200 {
                return Err(StoreError::invalid(field, "give 1 to 200 entries"));
            }
            if list.iter().any(|c| c.trim().is_empty() || c.chars().count() > 100) {
                return Err(StoreError::invalid(field, "entries must be 1 to 100 characters"));
            }
        }
        Ok(())
    }
}

/// Reads a setting in a transaction (its default when never written).
pub(crate) async fn get_in<T: DeserializeOwned + Default>(tx: &mut Tx, key: &str) -> Result<T> {
    let row: Option<SettingRow> = tx.fetch_optional(query("SELECT value FROM settings WHERE key = $1").bind(key)).await?;
    parse(key, row)
}

/// A stored setting's row.
#[derive(sqlx::FromRow, Deserialize)]
struct SettingRow {
    #[serde(deserialize_with = "crate::db::direct::json_text")]
    value: Json<serde_json::Value>,
}

fn parse<T: DeserializeOwned + Default>(key: &str, row: Option<SettingRow>) -> Result<T> {
    match row {
        Some(SettingRow { value: Json(v) }) => {
            serde_json::from_value(v).map_err(|e| StoreError::Internal(format!("stored setting {key:?} unreadable: {e}")))
        }
        None => Ok(T::default()),
    }
}

impl Store {
    /// A setting (its default when never written).
    pub async fn setting<T: DeserializeOwned + Default>(&self, key: &str) -> Result<T> {
        // Read on most requests (masking): a direct read on SQLite ([`crate::db::ReadConn`]).
        let row = self.db.read_conn().await?.fetch_optional(query("SELECT value FROM settings WHERE key = $1").bind(key)).await?;
        parse(key, row)
    }

    /// The business calendar.
    pub async fn calendar(&self) -> Result<BusinessCalendar> {
        self.setting(CALENDAR).await
    }

    /// Replaces the business calendar (admin; audited).
    pub async fn set_calendar(&self, actor: &Actor, cal: &BusinessCalendar) -> Result<()> {
        cal.validate()?;
        self.put_setting(actor, CALENDAR, serde_json::to_value(cal).map_err(|e| StoreError::Internal(e.to_string()))?).await
    }

    /// The service settings.
    pub async fn service_settings(&self) -> Result<ServiceSettings> {
        self.setting(SERVICE).await
    }

    /// Replaces the service settings (admin; audited).
    pub async fn set_service_settings(&self, actor: &Actor, s: &ServiceSettings) -> Result<()> {
        s.validate()?;
        self.put_setting(actor, SERVICE, serde_json::to_value(s).map_err(|e| StoreError::Internal(e.to_string()))?).await
    }

    pub(crate) async fn put_setting(&self, actor: &Actor, key: &str, value: serde_json::Value) -> Result<()> {
        let now: DateTime<Utc> = self.now();
        let mut tx = self.db.begin().await?;
        tx.execute(
            query(
                "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            )
            .bind(key)
            .bind(value)
            .bind(now),
        )
        .await?;
        audit::record(&mut tx, now, &actor.key, "update", "setting", Some(key.to_owned()), None).await?;
        tx.commit().await
    }
}
