//! RFM: recency, frequency, monetary value; quintile scores; the 8 RFM value classes.
//!
//! - R = days since the last purchase, F = orders in the RFM window, M = spend in the window
//!   (window from [`crate::SummaryConfig::rfm_window_days`], default 365 days).
//! - Scores 1–5 by quintile over the customers with at least one order in the window
//!   ("scored customers"); 5 is best (most recent, most frequent, highest spend). Ties: a
//!   value's rank is the number of scored customers strictly worse than it (the rank of the
//!   first member of its tied group), and its score is `1 + ⌊5 × rank / n⌋`, so equal values
//!   always share a score and the tied group gets the lowest score it spans. Without ties each
//!   score holds ⌊n/5⌋ or ⌈n/5⌉ customers.
//! - Customers with purchases but no order in the window get scores 0 (not scored) and are
//!   still classed, with F = 0 and M = 0 (so they land in a "far, infrequent" class). Prospects
//!   (no purchase at all) get scores 0 and no class.
//! - Classes compare each customer's R, F, M with the mean over the scored customers (or with
//!   configured thresholds): recent ⇔ R ≤ threshold, frequent ⇔ F ≥ threshold,
//!   high value ⇔ M ≥ threshold (a value equal to the mean counts as the good side). When no
//!   customer is scored and no threshold is configured, every customer with purchases is
//!   far/infrequent/low (一般挽留, general win-back).

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::rank::Ranks;
use crate::summary::CustomerSummaries;
use crate::{AnalyticsError, Result};

/// The 8 RFM value classes of DESIGN §4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RfmClass {
    /// recent, frequent, high — 重要价值
    ImportantValue,
    /// far, frequent, high — 重要保持
    ImportantRetain,
    /// recent, infrequent, high — 重要发展
    ImportantDevelop,
    /// far, infrequent, high — 重要挽留
    ImportantWinBack,
    /// recent, frequent, low — 一般价值
    GeneralValue,
    /// far, frequent, low — 一般保持
    GeneralRetain,
    /// recent, infrequent, low — 一般发展
    GeneralDevelop,
    /// far, infrequent, low — 一般挽留
    GeneralWinBack,
}

impl RfmClass {
    /// All classes, in the order of DESIGN §4.
    pub const ALL: [RfmClass; 8] = [
        RfmClass::ImportantValue,
        RfmClass::ImportantRetain,
        RfmClass::ImportantDevelop,
        RfmClass::ImportantWinBack,
        RfmClass::GeneralValue,
        RfmClass::GeneralRetain,
        RfmClass::GeneralDevelop,
        RfmClass::GeneralWinBack,
    ];

    /// The class from the three comparisons.
    pub fn from_flags(recent: bool, frequent: bool, high: bool) -> RfmClass {
        match (high, recent, frequent) {
            (true, true, true) => RfmClass::ImportantValue,
            (true, false, true) => RfmClass::ImportantRetain,
            (true, true, false) => RfmClass::ImportantDevelop,
            (true, false, false) => RfmClass::ImportantWinBack,
            (false, true, true) => RfmClass::GeneralValue,
            (false, false, true) => RfmClass::GeneralRetain,
            (false, true, false) => RfmClass::GeneralDevelop,
            (false, false, false) => RfmClass::GeneralWinBack,
        }
    }

    /// English key (snake_case), as used in the API and in serialisation.
    pub fn key(self) -> &'static str {
        match self {
            RfmClass::ImportantValue => "important_value",
            RfmClass::ImportantRetain => "important_retain",
            RfmClass::ImportantDevelop => "important_develop",
            RfmClass::ImportantWinBack => "important_win_back",
            RfmClass::GeneralValue => "general_value",
            RfmClass::GeneralRetain => "general_retain",
            RfmClass::GeneralDevelop => "general_develop",
            RfmClass::GeneralWinBack => "general_win_back",
        }
    }

    /// Chinese label.
    pub fn label_zh(self) -> &'static str {
        match self {
            RfmClass::ImportantValue => "重要价值",
            RfmClass::ImportantRetain => "重要保持",
            RfmClass::ImportantDevelop => "重要发展",
            RfmClass::ImportantWinBack => "重要挽留",
            RfmClass::GeneralValue => "一般价值",
            RfmClass::GeneralRetain => "一般保持",
            RfmClass::GeneralDevelop => "一般发展",
            RfmClass::GeneralWinBack => "一般挽留",
        }
    }
}

/// Fixed thresholds replacing the base means in the class rule (each optional).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct RfmConfig {
    /// Recent ⇔ R ≤ this many days (default: mean R of the scored customers).
    pub recency_days: Option<f64>,
    /// Frequent ⇔ F ≥ this many orders (default: mean F).
    pub frequency: Option<f64>,
    /// High value ⇔ M ≥ this many cents (default: mean M).
    pub monetary_cents: Option<f64>,
}

/// The thresholds actually used (means or configured values).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct RfmThresholds {
    /// Recency threshold in days (NaN serialises as null when undefined).
    pub recency_days: f64,
    /// Frequency threshold (orders).
    pub frequency: f64,
    /// Monetary threshold (cents).
    pub monetary_cents: f64,
}

/// RFM values, scores and classes, column-wise.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RfmResult {
    /// R: days since the last purchase (`None` for prospects).
    pub recency_days: Vec<Option<u32>>,
    /// F: orders in the window.
    pub frequency: Vec<u32>,
    /// M: spend in the window (cents).
    pub monetary_cents: Vec<i64>,
    /// R score 1–5 (0 = not scored: no order in the window).
    pub r_score: Vec<u8>,
    /// F score 1–5 (0 = not scored).
    pub f_score: Vec<u8>,
    /// M score 1–5 (0 = not scored).
    pub m_score: Vec<u8>,
    /// Value class (`None` only for prospects).
    pub class: Vec<Option<RfmClass>>,
    /// Number of scored customers.
    pub scored_customers: usize,
    /// Thresholds the classes were computed with.
    pub thresholds: RfmThresholds,
}

/// Computes RFM values, scores and classes from the summaries.
pub fn rfm(s: &CustomerSummaries, config: &RfmConfig) -> Result<RfmResult> {
    for (field, v) in [("recency_days", config.recency_days), ("frequency", config.frequency), ("monetary_cents", config.monetary_cents)] {
        if v.is_some_and(|v| !v.is_finite()) {
            return Err(AnalyticsError::InvalidConfig { field, reason: "threshold must be finite".into() });
        }
    }
    s.validate()?;
    let n = s.len();
    let recency_days: Vec<Option<u32>> = (0..n).into_par_iter().map(|c| s.recency_days(c)).collect();
    let scored = |c: usize| s.window_orders[c] > 0;

    // Goodness keys of the scored customers: −R (more recent is better), F, M; `slot[c]` is
    // customer c's position among the scored ones.
    let mut slot = vec![u32::MAX; n];
    let mut r_keys = Vec::new();
    let mut f_keys = Vec::new();
    let mut m_keys = Vec::new();
    let (mut sum_r, mut sum_f, mut sum_m) = (0.0, 0.0, 0.0);
    for c in 0..n {
        if scored(c) {
            slot[c] = r_keys.len() as u32;
            let r = f64::from(recency_days[c].unwrap_or(0));
            r_keys.push(-r);
            f_keys.push(f64::from(s.window_orders[c]));
            m_keys.push(s.window_spend_cents[c] as f64);
            sum_r += r;
            sum_f += f64::from(s.window_orders[c]);
            sum_m += s.window_spend_cents[c] as f64;
        }
    }
    let n_scored = r_keys.len();
    let mean = |sum: f64| {
        if n_scored > 0 {
            sum / n_scored as f64
        } else {
            f64::NAN
        }
    };
    let thresholds = RfmThresholds {
        recency_days: config.recency_days.unwrap_or(mean(sum_r)),
        frequency: config.frequency.unwrap_or(mean(sum_f)),
        monetary_cents: config.monetary_cents.unwrap_or(mean(sum_m)),
    };
    let (r_scores, (f_scores, m_scores)) = rayon::join(
        || Ranks::quantile_scores(&r_keys, 5),
        || rayon::join(|| Ranks::quantile_scores(&f_keys, 5), || Ranks::quantile_scores(&m_keys, 5)),
    );

    let rows: Vec<(u8, u8, u8, Option<RfmClass>)> = (0..n)
        .into_par_iter()
        .map(|c| {
            let Some(r) = recency_days[c] else {
                return (0, 0, 0, None);
            };
            let f = s.window_orders[c];
            let m = s.window_spend_cents[c];
            // NaN thresholds (nobody scored) make every comparison false: general win-back.
            let class = RfmClass::from_flags(
                f64::from(r) <= thresholds.recency_days,
                f64::from(f) >= thresholds.frequency,
                m as f64 >= thresholds.monetary_cents,
            );
            let i = slot[c] as usize;
            if i >= n_scored {
                return (0, 0, 0, Some(class));
            }
            (r_scores[i], f_scores[i], m_scores[i], Some(class))
        })
        .collect();

    Ok(RfmResult {
        recency_days,
        frequency: s.window_orders.clone(),
        monetary_cents: s.window_spend_cents.clone(),
        r_score: rows.par_iter().map(|r| r.0).collect(),
        f_score: rows.par_iter().map(|r| r.1).collect(),
        m_score: rows.par_iter().map(|r| r.2).collect(),
        class: rows.par_iter().map(|r| r.3).collect(),
        scored_customers: n_scored,
        thresholds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::summary::{summarize, Orders, SummaryConfig};

    fn summaries(rows: &[(u32, i32, i64)], n: usize, as_of: i32) -> CustomerSummaries {
        let o = Orders {
            customer: rows.iter().map(|r| r.0).collect(),
            day: rows.iter().map(|r| r.1).collect(),
            amount_cents: rows.iter().map(|r| r.2).collect(),
            ..Default::default()
        };
        summarize(&o, n, as_of, &SummaryConfig::default()).unwrap()
    }

    #[test]
    fn labels_and_keys() {
        assert_eq!(RfmClass::ImportantValue.label_zh(), "重要价值");
        assert_eq!(RfmClass::GeneralWinBack.key(), "general_win_back");
        assert_eq!(serde_json::to_string(&RfmClass::ImportantWinBack).unwrap(), "\"important_win_back\"");
        let keys: std::collections::HashSet<_> = RfmClass::ALL.iter().map(|c| c.key()).collect();
        assert_eq!(keys.len(), 8);
    }

    #[test]
    fn scores_quintiles_and_ties() {
        // 10 customers, customer i buys i+1 orders of 100 cents each, the last one on day 1000 − i.
        let mut rows = Vec::new();
        for i in 0..10u32 {
            for k in 0..=i {
                rows.push((i, 1000 - i as i32 - 10 * k as i32, 100));
            }
        }
        let s = summaries(&rows, 10, 1000);
        let r = rfm(&s, &RfmConfig::default()).unwrap();
        assert_eq!(r.scored_customers, 10);
        assert_eq!(r.f_score, vec![1, 1, 2, 2, 3, 3, 4, 4, 5, 5]);
        assert_eq!(r.m_score, vec![1, 1, 2, 2, 3, 3, 4, 4, 5, 5]);
        // customer 0 is the most recent (R = 0)
        assert_eq!(r.r_score, vec![5, 5, 4, 4, 3, 3, 2, 2, 1, 1]);
        // ties: all customers with one order get the same F score
        let rows2: Vec<_> = (0..10u32).map(|i| (i, 990, 100 * i64::from(i + 1))).collect();
        let s2 = summaries(&rows2, 10, 1000);
        let r2 = rfm(&s2, &RfmConfig::default()).unwrap();
        assert!(r2.f_score.iter().all(|&f| f == 1));
        assert!(r2.r_score.iter().all(|&f| f == 1));
        assert_eq!(r2.m_score, vec![1, 1, 2, 2, 3, 3, 4, 4, 5, 5]);
    }

    #[test]
    fn classes_against_means() {
        // as_of 1000. c0: recent, 3 orders, 3000 → important value
        //             c1: far (R=300), 3 orders, 3000 → important retain
        //             c2: recent, 1 order, 100 → general develop
        //             c3: far, 1 order, 100 → general win-back
        //             c4: only bought 500 days ago → not scored, general win-back
        //             c5: prospect → no class
        let rows = [
            (0, 1000, 1000),
            (0, 990, 1000),
            (0, 980, 1000),
            (1, 700, 1000),
            (1, 690, 1000),
            (1, 680, 1000),
            (2, 999, 100),
            (3, 701, 100),
            (4, 500, 5000),
        ];
        let s = summaries(&rows, 6, 1000);
        let r = rfm(&s, &RfmConfig::default()).unwrap();
        assert_eq!(r.scored_customers, 4);
        // mean R = (0 + 300 + 1 + 299)/4 = 150, mean F = 2, mean M = 1550
        assert_eq!(r.thresholds.recency_days, 150.0);
        assert_eq!(r.thresholds.frequency, 2.0);
        assert_eq!(r.thresholds.monetary_cents, 1550.0);
        assert_eq!(
            r.class,
            vec![
                Some(RfmClass::ImportantValue),
                Some(RfmClass::ImportantRetain),
                Some(RfmClass::GeneralDevelop),
                Some(RfmClass::GeneralWinBack),
                Some(RfmClass::GeneralWinBack),
                None
            ]
        );
        assert_eq!((r.r_score[4], r.f_score[4], r.m_score[4]), (0, 0, 0));
        // configured thresholds override the means
        let cfg = RfmConfig { recency_days: Some(400.0), frequency: Some(1.0), monetary_cents: Some(50.0) };
        let r = rfm(&s, &cfg).unwrap();
        assert_eq!(r.class[3], Some(RfmClass::ImportantValue));
        // M is the spend in the window: c4's old 5000 cents do not count
        assert_eq!(r.class[4], Some(RfmClass::GeneralWinBack));
    }
}
