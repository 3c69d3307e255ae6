//! The ABCD tiering setting (issue 18 §4): `abcd_basis` `value` (value rank alone, the default)
//! or `value_loyalty` (the articles' Gander case: A = high value and high loyalty, B = high
//! value and lower loyalty, C = lower value and high loyalty, D = both low), with the two cut
//! points of the latter. Every analysis run on the database uses it ([`Store::run_analysis`]).

use patron_analytics::{AbcdScheme, AnalyticsConfig};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::users::Actor;
use crate::{Result, Store, StoreError};

/// The `settings` key of [`AbcdSettings`].
pub const SETTINGS: &str = "abcd";

/// How the analysis forms the ABCD tiers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct AbcdSettings {
    /// `value`: A = top 20%, B = next 30%, C = next 30%, D = the rest by value (trailing-12-month
    /// spend); `value_loyalty`: the cells of high/lower value × high/lower loyalty.
    #[schema(value_type = String, example = "value_loyalty")]
    pub abcd_basis: String,
    /// `value_loyalty`: high value = the top this many percent by value rank (1–99, default 40).
    #[schema(minimum = 1, maximum = 99)]
    pub high_value_percent: u32,
    /// `value_loyalty`: high loyalty = a loyalty index at or above this percentile of the base's
    /// indices (1–99, default 50: the median).
    #[schema(minimum = 1, maximum = 99)]
    pub high_loyalty_percentile: f64,
}

impl Default for AbcdSettings {
    fn default() -> Self {
        AbcdSettings { abcd_basis: "value".into(), high_value_percent: 40, high_loyalty_percentile: 50.0 }
    }
}

impl AbcdSettings {
    /// The scheme named by `abcd_basis`.
    pub fn scheme(&self) -> Result<AbcdScheme> {
        match self.abcd_basis.as_str() {
            "value" => Ok(AbcdScheme::Value),
            "value_loyalty" => Ok(AbcdScheme::ValueLoyalty),
            other => Err(StoreError::invalid("abcd_basis", format!("abcd_basis must be value or value_loyalty, not {other:?}"))),
        }
    }

    /// Checks the values are usable.
    pub fn validate(&self) -> Result<()> {
        self.scheme()?;
        if !(1..=99).contains(&self.high_value_percent) {
            return Err(StoreError::invalid("high_value_percent", "must be 1 to 99"));
        }
        if !(self.high_loyalty_percentile.is_finite() && (1.0..=99.0).contains(&self.high_loyalty_percentile)) {
            return Err(StoreError::invalid("high_loyalty_percentile", "must be 1 to 99"));
        }
        Ok(())
    }

    /// `config` with these settings' tiering.
    pub fn apply(&self, config: &AnalyticsConfig) -> Result<AnalyticsConfig> {
        let mut config = *config;
        config.abcd.scheme = self.scheme()?;
        config.abcd.high_value_percent = self.high_value_percent;
        config.abcd.high_loyalty_percentile = self.high_loyalty_percentile;
        Ok(config)
    }
}

impl Store {
    /// The ABCD tiering setting (its default when never written).
    pub async fn abcd_settings(&self) -> Result<AbcdSettings> {
        self.setting(SETTINGS).await
    }

    /// Replaces the ABCD tiering setting (audited); the next analysis run uses it.
    pub async fn set_abcd_settings(&self, actor: &Actor, s: &AbcdSettings) -> Result<AbcdSettings> {
        s.validate()?;
        self.put_setting(actor, SETTINGS, serde_json::to_value(s).map_err(|e| StoreError::Internal(e.to_string()))?).await?;
        Ok(s.clone())
    }
}
