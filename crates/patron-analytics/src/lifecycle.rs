//! Churn (absolute and relative) and the lifecycle stage (DESIGN §4).
//!
//! - **Absolute churn**: days since the last purchase > `max(churn_floor_days, gap_multiplier ×
//!   median gap between purchase days)` (defaults 180 and 3; a customer with one purchase day
//!   has no gap, so the floor applies).
//! - **Relative churn** ("still buying, but less than before"): not absolutely churned, at
//!   least one purchase day in the recent window (the last 90 days), at least
//!   `min_baseline_purchase_days` (2) purchase days in the baseline period, and recent (90-day)
//!   spend < `relative_drop_ratio` (50%) × the baseline average 90-day spend (see
//!   [`crate::CustomerSummaries::baseline_spend_cents`]). A customer with no purchase in the
//!   recent window who is not yet past the absolute-churn threshold is not relatively churned
//!   (their stage follows P(alive)). The two are exclusive so churn reports do not count a
//!   customer twice.
//! - **Stage**, first matching rule wins:
//!   1. `prospect`: no purchase;
//!   2. `churned`: absolute churn;
//!   3. `at_risk`: relative churn, or P(alive) < `at_risk_p_alive` (0.5) when the model ran;
//!   4. `new`: exactly one purchase day;
//!   5. `won_back`: came back after having been churned — a purchase ended a silence longer
//!      than the churn threshold as it stood then (see
//!      [`crate::CustomerSummaries::last_return_day`]) — and that return lies within
//!      `won_back_window_days` (default 365; `None` = ever);
//!   6. `loyal`: loyalty index ≥ `loyal_index` (70);
//!   7. `active`: everyone else (repeat customers, not at risk).

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::summary::{ChurnRule, CustomerSummaries};
use crate::{AnalyticsError, Result};

/// Lifecycle stage of a customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LifecycleStage {
    /// No purchase yet.
    Prospect,
    /// One purchase day.
    New,
    /// Repeat customer, not at risk.
    Active,
    /// Active with a loyalty index at or above the threshold.
    Loyal,
    /// Relative churn or a low P(alive).
    AtRisk,
    /// Absolute churn.
    Churned,
    /// Returned after having been churned.
    WonBack,
}

impl LifecycleStage {
    /// All stages in lifecycle order.
    pub const ALL: [LifecycleStage; 7] = [
        LifecycleStage::Prospect,
        LifecycleStage::New,
        LifecycleStage::Active,
        LifecycleStage::Loyal,
        LifecycleStage::AtRisk,
        LifecycleStage::Churned,
        LifecycleStage::WonBack,
    ];

    /// English key.
    pub fn key(self) -> &'static str {
        match self {
            LifecycleStage::Prospect => "prospect",
            LifecycleStage::New => "new",
            LifecycleStage::Active => "active",
            LifecycleStage::Loyal => "loyal",
            LifecycleStage::AtRisk => "at_risk",
            LifecycleStage::Churned => "churned",
            LifecycleStage::WonBack => "won_back",
        }
    }

    /// Chinese label.
    pub fn label_zh(self) -> &'static str {
        match self {
            LifecycleStage::Prospect => "潜在客户",
            LifecycleStage::New => "新客户",
            LifecycleStage::Active => "活跃客户",
            LifecycleStage::Loyal => "忠诚客户",
            LifecycleStage::AtRisk => "流失风险",
            LifecycleStage::Churned => "已流失",
            LifecycleStage::WonBack => "已挽回",
        }
    }
}

/// Thresholds of relative churn and of the stages (absolute churn is [`ChurnRule`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LifecycleConfig {
    /// Relative churn when recent spend < this × baseline (default 0.5).
    pub relative_drop_ratio: f64,
    /// Purchase days needed in the baseline period for relative churn (default 2).
    pub min_baseline_purchase_days: u32,
    /// At risk when P(alive) is below this (default 0.5).
    pub at_risk_p_alive: f64,
    /// Loyal when the loyalty index (0–100) is at least this (default 70).
    pub loyal_index: f64,
    /// A return after churn counts as "won back" for this many days (default 365; `None`: always).
    pub won_back_window_days: Option<u32>,
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        LifecycleConfig {
            relative_drop_ratio: 0.5,
            min_baseline_purchase_days: 2,
            at_risk_p_alive: 0.5,
            loyal_index: 70.0,
            won_back_window_days: Some(365),
        }
    }
}

/// Churn flags and stages, column-wise.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LifecycleResult {
    /// Lifecycle stage per customer.
    pub stage: Vec<LifecycleStage>,
    /// Absolute churn flag.
    pub absolute_churn: Vec<bool>,
    /// Relative churn flag (never set together with absolute churn).
    pub relative_churn: Vec<bool>,
    /// The customer's absolute-churn threshold in days (`None` for prospects).
    pub churn_threshold_days: Vec<Option<f64>>,
}

/// Computes churn flags and lifecycle stages. `p_alive` and `loyalty_index` are per customer
/// and optional (a `None` column or value skips that rule).
pub fn lifecycle(
    s: &CustomerSummaries,
    churn: &ChurnRule,
    config: &LifecycleConfig,
    p_alive: Option<&[Option<f64>]>,
    loyalty_index: Option<&[Option<f64>]>,
) -> Result<LifecycleResult> {
    s.validate()?;
    let n = s.len();
    for (column, col) in [("p_alive", p_alive), ("loyalty_index", loyalty_index)] {
        if let Some(col) = col {
            if col.len() != n {
                return Err(AnalyticsError::LengthMismatch { column, expected: n, got: col.len() });
            }
        }
    }
    for (field, v) in [
        ("relative_drop_ratio", config.relative_drop_ratio),
        ("at_risk_p_alive", config.at_risk_p_alive),
        ("loyal_index", config.loyal_index),
    ] {
        if !v.is_finite() {
            return Err(AnalyticsError::InvalidConfig { field, reason: "must be finite".into() });
        }
    }
    // Straight into the four columns (a vector of rows copied apart was a fifth of the stage).
    type Columns = (Vec<LifecycleStage>, ((Vec<bool>, Vec<bool>), Vec<Option<f64>>));
    let (stage, ((absolute_churn, relative_churn), churn_threshold_days)): Columns = (0..n)
        .into_par_iter()
        .map(|c| {
            let Some(recency) = s.recency_days(c) else {
                return (LifecycleStage::Prospect, ((false, false), None));
            };
            let threshold = churn.threshold_days(s.median_gap_days[c]);
            let absolute = f64::from(recency) > threshold;
            // Still buying: a purchase day inside the recent window (recency < its length).
            let still_buying = recency < s.recent_days;
            let relative = !absolute
                && still_buying
                && s.baseline_purchase_days[c] >= config.min_baseline_purchase_days
                && (s.recent_spend_cents[c] as f64) < config.relative_drop_ratio * s.baseline_spend_cents[c];
            let low_p_alive = p_alive.and_then(|p| p[c]).is_some_and(|p| p < config.at_risk_p_alive);
            let won_back = s.last_return_day[c].is_some_and(|d| match config.won_back_window_days {
                Some(w) => i64::from(d) > i64::from(s.as_of) - i64::from(w),
                None => true,
            });
            let loyal = loyalty_index.and_then(|l| l[c]).is_some_and(|l| l >= config.loyal_index);
            let stage = if absolute {
                LifecycleStage::Churned
            } else if relative || low_p_alive {
                LifecycleStage::AtRisk
            } else if s.purchase_days[c] == 1 {
                LifecycleStage::New
            } else if won_back {
                LifecycleStage::WonBack
            } else if loyal {
                LifecycleStage::Loyal
            } else {
                LifecycleStage::Active
            };
            (stage, ((absolute, relative), Some(threshold)))
        })
        .unzip();
    Ok(LifecycleResult { stage, absolute_churn, relative_churn, churn_threshold_days })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::summary::{summarize, Orders, SummaryConfig};
    use LifecycleStage::*;

    fn run(
        rows: &[(u32, i32, i64)],
        n: usize,
        as_of: i32,
        p_alive: Option<&[Option<f64>]>,
        loyalty: Option<&[Option<f64>]>,
    ) -> LifecycleResult {
        run_with(rows, n, as_of, p_alive, loyalty, &LifecycleConfig::default())
    }

    fn run_with(
        rows: &[(u32, i32, i64)],
        n: usize,
        as_of: i32,
        p_alive: Option<&[Option<f64>]>,
        loyalty: Option<&[Option<f64>]>,
        lc: &LifecycleConfig,
    ) -> LifecycleResult {
        let o = Orders {
            customer: rows.iter().map(|r| r.0).collect(),
            day: rows.iter().map(|r| r.1).collect(),
            amount_cents: rows.iter().map(|r| r.2).collect(),
            ..Default::default()
        };
        let cfg = SummaryConfig::default();
        let s = summarize(&o, n, as_of, &cfg).unwrap();
        lifecycle(&s, &cfg.churn, lc, p_alive, loyalty).unwrap()
    }

    #[test]
    fn absolute_churn_floor_and_gap_multiple() {
        // c0: one purchase 180 days ago → not churned (needs > 180); c1: 181 days → churned.
        // c2: gaps of 100 days → threshold 300; silent 250 → not churned; c3: silent 301 → churned.
        let rows = [
            (0, 820, 1),
            (1, 819, 1),
            (2, 450, 1),
            (2, 550, 1),
            (2, 650, 1),
            (2, 750, 1),
            (3, 399, 1),
            (3, 499, 1),
            (3, 599, 1),
            (3, 699, 1),
        ];
        let r = run(&rows, 4, 1000, None, None);
        assert_eq!(r.absolute_churn, vec![false, true, false, true]);
        assert_eq!(r.churn_threshold_days, vec![Some(180.0), Some(180.0), Some(300.0), Some(300.0)]);
        // c2 is not churned and bought nothing in the last 90 days after 3 baseline purchase
        // days: not buying at all is not "buying less", so no relative churn; without a model
        // the stage is active.
        assert!(!r.relative_churn[2]);
        assert_eq!(r.stage, vec![New, Churned, Active, Churned]);
    }

    #[test]
    fn relative_churn() {
        // baseline 546..=910 (365 days, customers older than that).
        // c0: 4 × 1000 in baseline → 4000×90/365 ≈ 986 per 90 days; recent 400 < 493 → relative churn.
        // c1: same baseline, recent 500 ≥ 493 → not.
        // c2: only 1 purchase day in baseline → never relative churn.
        let mut rows = Vec::new();
        for c in 0..2u32 {
            rows.push((c, 100, 1));
            for d in [600, 700, 800, 900] {
                rows.push((c, d, 1000));
            }
        }
        rows.push((0, 990, 400));
        rows.push((1, 990, 500));
        rows.extend([(2, 100, 1), (2, 600, 100_000), (2, 990, 1)]);
        let r = run(&rows, 3, 1000, None, None);
        assert_eq!(r.relative_churn, vec![true, false, false]);
        assert_eq!(r.stage[0], AtRisk);
        assert_eq!(r.stage[1], Active);
    }

    /// Both sides of the "still buying" line: the same history with one small purchase on the
    /// first day of the recent window is relative churn; with that purchase one day earlier
    /// (outside the window, so nothing recent) it is not, and the stage follows P(alive).
    #[test]
    fn relative_churn_needs_a_recent_purchase_day() {
        // as_of 1000: recent window 911..=1000, baseline 546..=910.
        let history = |last: i32| vec![(0u32, 100, 1), (0, 600, 1000), (0, 700, 1000), (0, 800, 1000), (0, 880, 1000), (0, last, 10)];
        let r = run(&history(911), 1, 1000, None, None);
        assert_eq!((r.absolute_churn[0], r.relative_churn[0], r.stage[0]), (false, true, AtRisk));
        for (p, stage) in [(0.3, AtRisk), (0.9, Active)] {
            let r = run(&history(910), 1, 1000, Some(&[Some(p)]), None);
            assert_eq!((r.absolute_churn[0], r.relative_churn[0], r.stage[0]), (false, false, stage), "P(alive) {p}");
        }
        // Hand-made summaries without a recent window flag nobody.
        let o = Orders {
            customer: vec![0; 6],
            day: history(911).iter().map(|r| r.1).collect(),
            amount_cents: history(911).iter().map(|r| r.2).collect(),
            ..Default::default()
        };
        let cfg = SummaryConfig::default();
        let mut s = summarize(&o, 1, 1000, &cfg).unwrap();
        s.recent_days = 0;
        assert!(!lifecycle(&s, &cfg.churn, &LifecycleConfig::default(), None, None).unwrap().relative_churn[0]);
    }

    #[test]
    fn p_alive_loyalty_won_back_and_prospect() {
        let rows = [
            (0, 900, 1),
            (0, 950, 1),
            (1, 900, 1),
            (1, 950, 1),
            (2, 900, 1),
            (2, 950, 1),
            // c3: bought day 100, silent for 700 days, came back: won back
            (3, 100, 1),
            (3, 800, 1),
            (3, 990, 1),
        ];
        let p = [Some(0.3), Some(0.9), Some(0.9), Some(0.9), None];
        let l = [Some(90.0), Some(90.0), Some(69.9), Some(95.0), None];
        let r = run(&rows, 5, 1000, Some(&p), Some(&l));
        assert_eq!(r.stage, vec![AtRisk, Loyal, Active, WonBack, Prospect]);
        // the return on day 800 counts while it lies within the window ending on as_of
        let w = |days| LifecycleConfig { won_back_window_days: Some(days), ..Default::default() };
        assert_eq!(run_with(&rows, 5, 1000, Some(&p), Some(&l), &w(201)).stage[3], WonBack);
        assert_eq!(run_with(&rows, 5, 1000, Some(&p), Some(&l), &w(200)).stage[3], Loyal);
        let ever = LifecycleConfig { won_back_window_days: None, ..Default::default() };
        assert_eq!(run_with(&rows, 5, 1000, Some(&p), Some(&l), &ever).stage[3], WonBack);
    }
}
