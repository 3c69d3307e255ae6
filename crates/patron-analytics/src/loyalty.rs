//! Loyalty measurement (DESIGN §4, C7): four indicators, the loyalty index and the loyalty
//! matrix of 8 situations.
//!
//! The base is the customers with at least one purchase; prospects get `None` everywhere.
//! Each indicator is scaled to 0–1 by its mid-rank percentile within the base
//! ((number below + (number equal − 1)/2) / (n − 1); tied customers share a value):
//!
//! - **repeat purchase**: x per year of age, x × 365 / max(T, `min_age_days`) — the floor keeps
//!   a customer who bought twice in their first days from topping the base;
//! - **breadth**: distinct categories bought (available when the orders carry categories);
//! - **advocacy**: mean of the parts present for the customer: the percentile of referrals made
//!   (when a referrals column is given) and NPS promoter (1 if the latest NPS ≥ 9, else 0,
//!   when the customer answered);
//! - **competitor immunity**: mean of the parts present: the percentile of the share of orders
//!   at full price (when the orders carry the flag) and the survey answer "would you switch for
//!   a 2% lower price?" (no → 1, yes → 0) where answered.
//!
//! **Loyalty index** = 100 × the weighted mean of the indicators present for the customer
//! (default equal weights, renormalised over the present ones).
//!
//! **Loyalty matrix**: attitude strong ⇔ latest NPS ≥ 9, or, without an NPS answer, advocacy
//! ≥ 0.5 (no NPS and no advocacy data: weak — there is no evidence of attitude); behaviour high
//! ⇔ repeat-purchase indicator ≥ its base median; trend rising ⇔ spend in the recent 90 days
//! is positive and at least the baseline average 90-day spend. Strong+high = true loyalty, strong+low = latent,
//! weak+high = inertia (spurious), weak+low = no loyalty; each rising or falling.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::rank::{median, Ranks};
use crate::summary::CustomerSummaries;
use crate::{AnalyticsError, Result};

/// Optional per-customer inputs from outside the orders (each column, when present, has one
/// value per customer).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CustomerExtras {
    /// Referrals made by the customer.
    pub referrals: Option<Vec<u32>>,
    /// Latest NPS answer (0–10), if the customer answered.
    pub latest_nps: Option<Vec<Option<u8>>>,
    /// Answer to "would you switch for a 2% lower price?", if asked.
    pub would_switch_for_2pct: Option<Vec<Option<bool>>>,
}

/// Loyalty configuration.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LoyaltyConfig {
    /// Weights of repeat purchase, breadth, advocacy, competitor immunity (default all 1).
    pub weights: [f64; 4],
    /// Age floor in days of the repeat-purchase rate (default 90).
    pub min_age_days: u32,
    /// NPS at or above which a customer is a promoter / has a strong attitude (default 9).
    pub promoter_nps: u8,
}

impl Default for LoyaltyConfig {
    fn default() -> Self {
        LoyaltyConfig { weights: [1.0; 4], min_age_days: 90, promoter_nps: 9 }
    }
}

/// The four loyalty types of the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoyaltyType {
    /// Strong attitude, high behaviour.
    TrueLoyalty,
    /// Strong attitude, low behaviour.
    LatentLoyalty,
    /// Weak attitude, high behaviour (spurious loyalty).
    InertiaLoyalty,
    /// Weak attitude, low behaviour.
    NoLoyalty,
}

impl LoyaltyType {
    /// Chinese label.
    pub fn label_zh(self) -> &'static str {
        match self {
            LoyaltyType::TrueLoyalty => "真正忠诚",
            LoyaltyType::LatentLoyalty => "潜在忠诚",
            LoyaltyType::InertiaLoyalty => "惰性忠诚",
            LoyaltyType::NoLoyalty => "不忠诚",
        }
    }
}

/// Attitude side of the loyalty matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttitudeStrength {
    /// Promoter, or strong advocacy.
    Strong,
    /// Otherwise.
    Weak,
}

/// One of the 8 situations of the loyalty matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LoyaltySituation {
    /// Attitude × behaviour.
    pub kind: LoyaltyType,
    /// Trend: recent spend at or above the baseline.
    pub rising: bool,
}

impl LoyaltySituation {
    /// Key such as `true_loyalty_rising` or `no_loyalty_falling`.
    pub fn key(self) -> &'static str {
        use LoyaltyType::*;
        match (self.kind, self.rising) {
            (TrueLoyalty, true) => "true_loyalty_rising",
            (TrueLoyalty, false) => "true_loyalty_falling",
            (LatentLoyalty, true) => "latent_loyalty_rising",
            (LatentLoyalty, false) => "latent_loyalty_falling",
            (InertiaLoyalty, true) => "inertia_loyalty_rising",
            (InertiaLoyalty, false) => "inertia_loyalty_falling",
            (NoLoyalty, true) => "no_loyalty_rising",
            (NoLoyalty, false) => "no_loyalty_falling",
        }
    }

    /// The situation from its three dimensions.
    pub fn from_dimensions(attitude: AttitudeStrength, high_behaviour: bool, rising: bool) -> LoyaltySituation {
        let kind = match (attitude, high_behaviour) {
            (AttitudeStrength::Strong, true) => LoyaltyType::TrueLoyalty,
            (AttitudeStrength::Strong, false) => LoyaltyType::LatentLoyalty,
            (AttitudeStrength::Weak, true) => LoyaltyType::InertiaLoyalty,
            (AttitudeStrength::Weak, false) => LoyaltyType::NoLoyalty,
        };
        LoyaltySituation { kind, rising }
    }
}

/// Loyalty indicators, index and matrix situation, column-wise.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LoyaltyResult {
    /// Repeat-purchase indicator 0–1.
    pub repeat_purchase: Vec<Option<f64>>,
    /// Breadth indicator 0–1 (`None` without categories).
    pub breadth: Vec<Option<f64>>,
    /// Advocacy indicator 0–1 (`None` without referral/NPS data for the customer).
    pub advocacy: Vec<Option<f64>>,
    /// Competitor-immunity indicator 0–1 (`None` without full-price/survey data).
    pub competitor_immunity: Vec<Option<f64>>,
    /// Loyalty index 0–100.
    pub index: Vec<Option<f64>>,
    /// Loyalty-matrix situation.
    pub situation: Vec<Option<LoyaltySituation>>,
    /// Base median of the repeat-purchase indicator (the behaviour cut).
    pub repeat_purchase_median: f64,
}

/// Computes the loyalty indicators, index and matrix.
pub fn loyalty(s: &CustomerSummaries, extras: &CustomerExtras, config: &LoyaltyConfig) -> Result<LoyaltyResult> {
    s.validate()?;
    let n = s.len();
    let lens = [
        ("referrals", extras.referrals.as_ref().map(Vec::len)),
        ("latest_nps", extras.latest_nps.as_ref().map(Vec::len)),
        ("would_switch_for_2pct", extras.would_switch_for_2pct.as_ref().map(Vec::len)),
    ];
    for (column, len) in lens {
        if let Some(got) = len {
            if got != n {
                return Err(AnalyticsError::LengthMismatch { column, expected: n, got });
            }
        }
    }
    if config.weights.iter().any(|w| !(w.is_finite() && *w >= 0.0)) {
        return Err(AnalyticsError::InvalidConfig { field: "loyalty.weights", reason: "weights must be finite and ≥ 0".into() });
    }
    if let Some(row) = extras.latest_nps.as_ref().and_then(|v| v.iter().position(|a| a.is_some_and(|a| a > 10))) {
        return Err(AnalyticsError::InvalidInput { field: "latest_nps", row, reason: "NPS must be 0–10".into() });
    }
    let in_base = |c: usize| s.purchase_days[c] > 0;
    let min_age = f64::from(config.min_age_days.max(1));
    let repeat_raw = |c: usize| f64::from(s.x[c]) * 365.0 / f64::from(s.age[c]).max(min_age);
    // `slot[c]`: customer c's position in the base (u32::MAX outside it).
    let mut slot = vec![u32::MAX; n];
    let mut base_len = 0u32;
    for (c, sl) in slot.iter_mut().enumerate() {
        if in_base(c) {
            *sl = base_len;
            base_len += 1;
        }
    }
    let base: Vec<usize> = (0..n).filter(|&c| in_base(c)).collect();
    let ranks_of = |f: &(dyn Fn(usize) -> f64 + Sync)| Ranks::new(&base.par_iter().map(|&c| f(c)).collect::<Vec<_>>());
    let repeat_ranks = ranks_of(&repeat_raw);
    let breadth_ranks = s.has_categories.then(|| ranks_of(&|c| f64::from(s.distinct_categories[c])));
    let fp_ranks = s.has_full_price.then(|| ranks_of(&|c| s.full_price_share[c].unwrap_or(0.0)));
    let referral_ranks = extras.referrals.as_ref().map(|r| ranks_of(&|c| f64::from(r[c])));

    let repeat: Vec<Option<f64>> =
        (0..n).into_par_iter().map(|c| in_base(c).then(|| repeat_ranks.mid_percentile(slot[c] as usize))).collect();
    let repeat_median = median(&repeat.iter().flatten().copied().collect::<Vec<_>>());
    let promoter = config.promoter_nps;
    // Column by column: a row of five options per customer was a 72 MB vector written once
    // and copied apart again. Each indicator is `None` outside the base.
    let column = |f: &(dyn Fn(usize, usize) -> Option<f64> + Sync)| -> Vec<Option<f64>> {
        (0..n).into_par_iter().map(|c| if in_base(c) { f(c, slot[c] as usize) } else { None }).collect()
    };
    let nps = |c: usize| extras.latest_nps.as_ref().and_then(|v| v[c]);
    let breadth = column(&|_, i| breadth_ranks.as_ref().map(|b| b.mid_percentile(i)));
    let advocacy = column(&|c, i| {
        mean_of([referral_ranks.as_ref().map(|r| r.mid_percentile(i)), nps(c).map(|v| if v >= promoter { 1.0 } else { 0.0 })])
    });
    let competitor_immunity = column(&|c, i| {
        mean_of([
            fp_ranks.as_ref().filter(|_| s.full_price_share[c].is_some()).map(|r| r.mid_percentile(i)),
            extras.would_switch_for_2pct.as_ref().and_then(|v| v[c]).map(|switch| if switch { 0.0 } else { 1.0 }),
        ])
    });
    let (index, situation): (Vec<Option<f64>>, Vec<Option<LoyaltySituation>>) = (0..n)
        .into_par_iter()
        .map(|c| {
            if !in_base(c) {
                return (None, None);
            }
            let indicators = [repeat[c], breadth[c], advocacy[c], competitor_immunity[c]];
            let (mut num, mut den) = (0.0, 0.0);
            for (v, w) in indicators.iter().zip(config.weights) {
                if let Some(v) = v {
                    num += w * v;
                    den += w;
                }
            }
            let index = (den > 0.0).then(|| 100.0 * num / den);
            let attitude = match nps(c) {
                Some(v) if v >= promoter => AttitudeStrength::Strong,
                Some(_) => AttitudeStrength::Weak,
                None if advocacy[c].is_some_and(|a| a >= 0.5) => AttitudeStrength::Strong,
                None => AttitudeStrength::Weak,
            };
            let high = repeat[c].is_some_and(|r| r >= repeat_median);
            let recent = s.recent_spend_cents[c] as f64;
            let rising = recent > 0.0 && recent >= s.baseline_spend_cents[c];
            (index, Some(LoyaltySituation::from_dimensions(attitude, high, rising)))
        })
        .unzip();
    Ok(LoyaltyResult {
        repeat_purchase: repeat,
        breadth,
        advocacy,
        competitor_immunity,
        index,
        situation,
        repeat_purchase_median: repeat_median,
    })
}

/// Mean of the present values, `None` if none is present.
fn mean_of<const N: usize>(parts: [Option<f64>; N]) -> Option<f64> {
    let (sum, count) = parts.into_iter().flatten().fold((0.0, 0u32), |(s, n), v| (s + v, n + 1));
    (count > 0).then(|| sum / f64::from(count))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::summary::{summarize, Orders, SummaryConfig};

    fn base() -> CustomerSummaries {
        // as_of 1000; all customers first bought on day 500 (age 500).
        // c0: 5 purchase days, recent spend ↑; c1: 3 days, nothing recent; c2: 1 day; c3: prospect.
        let rows: &[(u32, i32, i64, u32, bool)] = &[
            (0, 500, 100, 1, true),
            (0, 600, 100, 2, true),
            (0, 700, 100, 3, true),
            (0, 800, 100, 1, true),
            (0, 950, 5000, 1, true),
            (1, 500, 100, 1, false),
            (1, 600, 100, 1, false),
            (1, 700, 100, 1, true),
            (2, 500, 100, 2, false),
        ];
        let o = Orders {
            customer: rows.iter().map(|r| r.0).collect(),
            day: rows.iter().map(|r| r.1).collect(),
            amount_cents: rows.iter().map(|r| r.2).collect(),
            category: rows.iter().map(|r| r.3).collect(),
            full_price: rows.iter().map(|r| r.4).collect(),
        };
        summarize(&o, 4, 1000, &SummaryConfig::default()).unwrap()
    }

    #[test]
    fn indicators_index_and_matrix() {
        let s = base();
        let r = loyalty(&s, &CustomerExtras::default(), &LoyaltyConfig::default()).unwrap();
        // repeat rates 4, 2, 0 (per 500 days) → percentiles 1, 0.5, 0
        assert_eq!(r.repeat_purchase, vec![Some(1.0), Some(0.5), Some(0.0), None]);
        // categories 3, 1, 1 → 1, 0.25, 0.25 (the tied pair shares the mid-rank)
        assert_eq!(r.breadth, vec![Some(1.0), Some(0.25), Some(0.25), None]);
        // full-price shares 1, 1/3, 0 → 1, 0.5, 0
        assert_eq!(r.competitor_immunity, vec![Some(1.0), Some(0.5), Some(0.0), None]);
        assert_eq!(r.advocacy, vec![None, None, None, None]);
        // index: mean of the three available indicators
        assert!((r.index[0].unwrap() - 100.0).abs() < 1e-12);
        assert!((r.index[1].unwrap() - 100.0 * 1.25 / 3.0).abs() < 1e-12);
        assert_eq!(r.index[3], None);
        assert_eq!(r.repeat_purchase_median, 0.5);
        // no attitude data → weak; c0 high & rising, c1 high (= median) & falling, c2 low
        let keys: Vec<_> = r.situation.iter().map(|s| s.map(|s| s.key())).collect();
        assert_eq!(keys, vec![Some("inertia_loyalty_rising"), Some("inertia_loyalty_falling"), Some("no_loyalty_falling"), None]);
    }

    #[test]
    fn attitude_from_nps_or_advocacy_and_weights() {
        let s = base();
        let extras = CustomerExtras {
            referrals: Some(vec![0, 3, 1, 0]),
            latest_nps: Some(vec![Some(9), None, Some(6), None]),
            would_switch_for_2pct: Some(vec![Some(true), None, None, None]),
        };
        let r = loyalty(&s, &extras, &LoyaltyConfig::default()).unwrap();
        // c0: referral pct 0, promoter 1 → 0.5; c1: referral pct 1 → 1; c2: pct 0.5, detractor → 0.25
        assert_eq!(r.advocacy, vec![Some(0.5), Some(1.0), Some(0.25), None]);
        // c0 immunity: full-price pct 1 and "would switch" 0 → 0.5
        assert_eq!(r.competitor_immunity[0], Some(0.5));
        let kinds: Vec<_> = r.situation.iter().map(|s| s.map(|s| s.kind)).collect();
        assert_eq!(kinds, vec![Some(LoyaltyType::TrueLoyalty), Some(LoyaltyType::TrueLoyalty), Some(LoyaltyType::NoLoyalty), None]);
        // weights: only repeat purchase counts
        let cfg = LoyaltyConfig { weights: [1.0, 0.0, 0.0, 0.0], ..Default::default() };
        let r = loyalty(&s, &extras, &cfg).unwrap();
        assert_eq!(r.index[1], Some(50.0));
        let bad = CustomerExtras { latest_nps: Some(vec![Some(11), None, None, None]), ..Default::default() };
        assert!(loyalty(&s, &bad, &LoyaltyConfig::default()).is_err());
    }
}
