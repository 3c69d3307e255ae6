//! Customer-base analytics for patron (pure functions, no IO, no async).
//!
//! Everything here works on plain column-wise data (structs of `Vec`s) and follows the
//! definitions of DESIGN.md §4:
//!
//! - [`summary`]: per-customer summaries from orders as of a date (x, t_x, T, m, windows, gaps…),
//! - [`mod@rfm`]: RFM values, quintile scores and the 8 RFM value classes,
//! - [`abcd`]: ABCD value tiers with each tier's share of revenue,
//! - [`mod@lifecycle`]: absolute/relative churn and the lifecycle stage,
//! - [`bgnbd`]: the BG/NBD model (fit, P(alive), expected purchases),
//! - [`gamma_gamma`]: the Gamma-Gamma spend model and discounted CLV,
//! - [`mod@loyalty`]: the four loyalty indicators, the loyalty index and the loyalty matrix,
//! - [`service`]: the Pareto of complaint causes, NPS, CSAT and medians of the service loop,
//! - [`basket`]: category co-occurrence lift (the category to suggest),
//! - [`next_action`]: the next best action's priority rules,
//! - [`validation`]: the holdout validation of the models (calibration fit against holdout),
//! - [`pipeline`]: [`analyze`], which runs all of it and returns column-wise scores and a
//!   serialisable fit report.
//!
//! # Conventions
//!
//! - **Dates** are calendar days as `i32` day numbers: days since 1970-01-01 in the business
//!   time zone ([`day_number`] / [`date_from_day_number`] convert from/to `chrono::NaiveDate`).
//!   An order on day `as_of` counts as "on or before `as_of`".
//! - **Money** is integer minor units (`i64` cents) in inputs and in sums; means and model
//!   outputs (m, E\[M\], CLV) are `f64` in the same minor units.
//! - **Customers** are dense indices `0..n_customers` (`u32`); the caller maps its ids.
//! - Models run in days by default; [`TimeUnit::Weeks`] (days / 7) exists for comparison with
//!   the literature.

#![warn(missing_docs)]

pub mod abcd;
pub mod basket;
pub mod bgnbd;
pub mod calibration;
pub mod cost_to_serve;
pub mod gamma_gamma;
pub mod keywords;
pub mod lifecycle;
pub mod lift;
pub mod loyalty;
pub mod next_action;
mod optim;
pub mod pipeline;
mod rank;
pub mod rfm;
pub mod service;
pub mod special;
pub mod summary;
pub mod validation;

pub use abcd::{abcd_tiers, abcd_value_loyalty, AbcdBasis, AbcdConfig, AbcdDefinition, AbcdResult, AbcdScheme, Tier, TierSummary};
pub use bgnbd::{BgNbdFit, BgNbdParams, BtydRows};
pub use gamma_gamma::{clv, GammaGammaFit, GammaGammaParams};
pub use lifecycle::{lifecycle, LifecycleConfig, LifecycleResult, LifecycleStage};
pub use loyalty::{loyalty, AttitudeStrength, CustomerExtras, LoyaltyConfig, LoyaltyResult, LoyaltySituation, LoyaltyType};
pub use optim::FitOptions;
pub use pipeline::{analyze, analyze_timed, AnalyticsConfig, AnalyticsOutput, CustomerScores, FitReport, ModelConfig, StageTiming};
pub use rfm::RfmThresholds;
pub use rfm::{rfm, RfmClass, RfmConfig, RfmResult};
pub use summary::{summarize, ChurnRule, CustomerSummaries, Orders, SummaryConfig, NO_CATEGORY};
pub use validation::{validate, Validation, ValidationConfig};

use serde::{Deserialize, Serialize};

/// The one error type of this crate: every failure caused by input data or configuration.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AnalyticsError {
    /// Two columns that must have one value per row (or per customer) differ in length.
    #[error("column `{column}` has {got} values, expected {expected}")]
    LengthMismatch {
        /// Name of the offending column.
        column: &'static str,
        /// Length it should have.
        expected: usize,
        /// Length it has.
        got: usize,
    },
    /// An order refers to a customer index outside `0..n_customers`.
    #[error("order row {row}: customer index {customer} is out of range (n_customers = {n_customers})")]
    CustomerOutOfRange {
        /// Order row (0-based).
        row: usize,
        /// The customer index found.
        customer: u32,
        /// Number of customers declared.
        n_customers: usize,
    },
    /// A value in the input is unusable (negative age, NaN, …).
    #[error("invalid value in `{field}` at row {row}: {reason}")]
    InvalidInput {
        /// Column name.
        field: &'static str,
        /// Row (0-based).
        row: usize,
        /// What is wrong.
        reason: String,
    },
    /// A configuration value is out of its domain.
    #[error("invalid configuration `{field}`: {reason}")]
    InvalidConfig {
        /// Configuration field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The data cannot identify a model (for example no repeat customers for Gamma-Gamma).
    #[error("not enough data to fit {model}: {reason}")]
    InsufficientData {
        /// Model name.
        model: &'static str,
        /// Why.
        reason: String,
    },
    /// The optimiser failed outright (not merely "did not converge", which is reported in the fit).
    #[error("{model} fit failed: {reason}")]
    FitFailed {
        /// Model name.
        model: &'static str,
        /// Optimiser message.
        reason: String,
    },
}

/// Result alias of this crate.
pub type Result<T, E = AnalyticsError> = std::result::Result<T, E>;

/// Time unit of the BG/NBD model's x-axis (t_x, T, horizons).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeUnit {
    /// Calendar days (the product's default).
    #[default]
    Days,
    /// Weeks = days / 7 (the unit of the published CDNOW results).
    Weeks,
}

impl TimeUnit {
    /// Length of one day in this unit.
    pub fn per_day(self) -> f64 {
        match self {
            TimeUnit::Days => 1.0,
            TimeUnit::Weeks => 1.0 / 7.0,
        }
    }

    /// Converts a number of days into this unit.
    pub fn from_days(self, days: f64) -> f64 {
        days * self.per_day()
    }
}

/// Converts a number of days to weeks (days / 7).
pub fn days_to_weeks(days: f64) -> f64 {
    days / 7.0
}

/// Day number (days since 1970-01-01) of a calendar date.
pub fn day_number(date: chrono::NaiveDate) -> i32 {
    // NaiveDate's range (±262,143 years) keeps this well inside i32.
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
    (date - epoch).num_days() as i32
}

/// Calendar date of a day number; `None` outside chrono's date range.
pub fn date_from_day_number(day: i32) -> Option<chrono::NaiveDate> {
    chrono::NaiveDate::from_ymd_opt(1970, 1, 1)?.checked_add_signed(chrono::TimeDelta::try_days(i64::from(day))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_numbers_round_trip() {
        let d = chrono::NaiveDate::from_ymd_opt(1997, 9, 30).unwrap();
        let n = day_number(d);
        assert_eq!(n, 10_134);
        assert_eq!(date_from_day_number(n), Some(d));
        assert_eq!(day_number(chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()), 0);
        assert!((days_to_weeks(272.0) - 38.857_142_857).abs() < 1e-8);
        assert_eq!(TimeUnit::Weeks.from_days(14.0), 2.0);
    }
}
