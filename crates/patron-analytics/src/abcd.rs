//! ABCD value tiers (DESIGN §4): customers ranked by value — A = top 20%, B = next 30%,
//! C = next 30%, D = bottom 20% (configurable) — with each tier's share of revenue.
//!
//! Population: customers with at least one purchase (prospects get no tier). Tie rule, the same
//! as for RFM scores: a customer's position is the number of ranked customers with a strictly
//! lower value, and tied customers share the tier of that position — i.e. a tied group gets the
//! lowest tier it spans (a block of equal values straddling a cut is not split arbitrarily, and
//! customers with equal, e.g. zero, value are not promoted above D by their index). A customer
//! with `below` customers under them is in A when `below × 100 ≥ (100 − 20) × n`, else in B
//! when `below × 100 ≥ (100 − 50) × n`, else in C when `below × 100 ≥ (100 − 80) × n`, else D
//! (integer arithmetic, so without ties 10 customers split exactly 2/3/3/2).
//!
//! With [`AbcdScheme::ValueLoyalty`] (the seeds' Gander case: order volume *and* loyalty) the
//! tiers are the cells of value × loyalty instead: A = high value and high loyalty, B = high
//! value and lower loyalty, C = lower value and high loyalty, D = both low. High value = the top
//! `high_value_percent` (40) % by value rank, with the same tie rule; high loyalty = a loyalty
//! index at or above the `high_loyalty_percentile` (50: the median) of the ranked customers'
//! indices (linear interpolation between order statistics); a customer without an index counts
//! as lower loyalty.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{AnalyticsError, Result};

/// ABCD value tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Tier {
    /// Top tier (default: top 20% by value).
    A,
    /// Second tier (default: next 30%).
    B,
    /// Third tier (default: next 30%).
    C,
    /// Bottom tier (default: bottom 20%).
    D,
}

impl Tier {
    /// All tiers, best first.
    pub const ALL: [Tier; 4] = [Tier::A, Tier::B, Tier::C, Tier::D];

    /// Key as used in the API ("A".."D").
    pub fn key(self) -> &'static str {
        match self {
            Tier::A => "A",
            Tier::B => "B",
            Tier::C => "C",
            Tier::D => "D",
        }
    }
}

/// What the customers are ranked by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AbcdBasis {
    /// Trailing-12-month spend (the default; needs no model).
    #[default]
    TrailingSpend,
    /// Discounted CLV from the fitted models (falls back to trailing spend when the models
    /// could not be fitted; the pipeline reports the basis used).
    Clv,
}

/// How the tiers are formed (the `abcd_basis` setting).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AbcdScheme {
    /// By value rank alone, with `cut_percent` (the default).
    #[default]
    Value,
    /// Value × loyalty: A = high value and high loyalty, B = high value and lower loyalty,
    /// C = lower value and high loyalty, D = both low.
    ValueLoyalty,
}

impl AbcdScheme {
    /// Key as stored and reported (`value`, `value_loyalty`).
    pub fn key(self) -> &'static str {
        match self {
            AbcdScheme::Value => "value",
            AbcdScheme::ValueLoyalty => "value_loyalty",
        }
    }
}

/// ABCD configuration.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AbcdConfig {
    /// Cumulative percentages of customers at the ends of A, B and C, top down
    /// (default `[20, 50, 80]`: A = top 20%, B = next 30%, C = next 30%, D = the rest).
    pub cut_percent: [u32; 3],
    /// Ranking value.
    pub basis: AbcdBasis,
    /// Value alone, or value × loyalty.
    #[serde(default)]
    pub scheme: AbcdScheme,
    /// Value × loyalty: high value = the top this many percent by value rank (default 40).
    #[serde(default = "default_high_value_percent")]
    pub high_value_percent: u32,
    /// Value × loyalty: high loyalty = a loyalty index at or above this percentile of the
    /// base's indices (default 50, the median).
    #[serde(default = "default_high_loyalty_percentile")]
    pub high_loyalty_percentile: f64,
}

fn default_high_value_percent() -> u32 {
    40
}

fn default_high_loyalty_percentile() -> f64 {
    50.0
}

impl Default for AbcdConfig {
    fn default() -> Self {
        AbcdConfig {
            cut_percent: [20, 50, 80],
            basis: AbcdBasis::TrailingSpend,
            scheme: AbcdScheme::Value,
            high_value_percent: default_high_value_percent(),
            high_loyalty_percentile: default_high_loyalty_percentile(),
        }
    }
}

/// What a run's tiers mean (stated in the fit report).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AbcdDefinition {
    /// `value` or `value_loyalty` (the `abcd_basis` setting).
    pub basis: AbcdScheme,
    /// What value the customers were ranked by.
    pub value: AbcdBasis,
    /// Value alone: the cumulative cut percentages of A, B and C.
    pub cut_percent: Option<[u32; 3]>,
    /// Value × loyalty: high value = this top percentage by value rank.
    pub high_value_percent: Option<u32>,
    /// Value × loyalty: the percentile of the loyalty index that counts as high.
    pub high_loyalty_percentile: Option<f64>,
    /// Value × loyalty: the loyalty index at that percentile (`None` when no ranked customer
    /// has an index: then nobody is of high loyalty).
    pub high_loyalty_index: Option<f64>,
}

/// Count and shares of one tier.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TierSummary {
    /// The tier.
    pub tier: Tier,
    /// Number of customers in it.
    pub customers: usize,
    /// Its share of the ranked customers.
    pub customer_share: f64,
    /// Sum of the ranking value (cents of spend, or of CLV).
    pub value: f64,
    /// Its share of the total ranking value (0 when the total is 0).
    pub value_share: f64,
    /// Trailing-12-month revenue of the tier (cents).
    pub revenue_cents: i64,
    /// Its share of the total trailing-12-month revenue (0 when the total is 0).
    pub revenue_share: f64,
}

/// Tiers per customer and the per-tier report.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AbcdResult {
    /// Tier per customer (`None` for customers not ranked, i.e. prospects).
    pub tier: Vec<Option<Tier>>,
    /// One summary per tier, A to D.
    pub tiers: Vec<TierSummary>,
    /// What the customers were ranked by.
    pub basis: AbcdBasis,
    /// What the tiers mean.
    pub definition: AbcdDefinition,
}

impl Default for AbcdDefinition {
    fn default() -> Self {
        AbcdDefinition {
            basis: AbcdScheme::Value,
            value: AbcdBasis::TrailingSpend,
            cut_percent: Some([20, 50, 80]),
            high_value_percent: None,
            high_loyalty_percentile: None,
            high_loyalty_index: None,
        }
    }
}

/// Assigns ABCD tiers.
///
/// `value[c]` is the ranking value, `ranked[c]` says whether customer c takes part (customers
/// with purchases), `revenue_cents[c]` is the revenue used for the revenue shares
/// (trailing-12-month spend).
pub fn abcd_tiers(value: &[f64], ranked: &[bool], revenue_cents: &[i64], basis: AbcdBasis, config: &AbcdConfig) -> Result<AbcdResult> {
    let n = value.len();
    for (column, got) in [("ranked", ranked.len()), ("revenue_cents", revenue_cents.len())] {
        if got != n {
            return Err(AnalyticsError::LengthMismatch { column, expected: n, got });
        }
    }
    let [c1, c2, c3] = config.cut_percent;
    if !(c1 <= c2 && c2 <= c3 && c3 <= 100) {
        return Err(AnalyticsError::InvalidConfig {
            field: "abcd.cut_percent",
            reason: format!("{:?} must be non-decreasing percentages", config.cut_percent),
        });
    }
    if let Some(row) = value.iter().zip(ranked).position(|(v, &r)| r && !v.is_finite()) {
        return Err(AnalyticsError::InvalidInput { field: "value", row, reason: "not a finite number".into() });
    }
    let mut slot = vec![u32::MAX; n];
    let mut ranked_values = Vec::new();
    for c in 0..n {
        if ranked[c] {
            slot[c] = ranked_values.len() as u32;
            ranked_values.push(value[c]);
        }
    }
    let total = ranked_values.len();
    // A customer reaches a cut at c % when at least k = ⌈(100 − c) % of the ranked⌉ values are
    // strictly below theirs, i.e. when the k-th smallest value is below theirs: three order
    // statistics (selections, linear) decide every tier; a full sort is not needed.
    let mut scratch = ranked_values;
    let mut kth_smallest = |cut: u32| -> Option<f64> {
        let k = (u128::from(100 - cut) * total as u128).div_ceil(100) as usize;
        match k {
            0 => None,
            k => Some(*scratch.select_nth_unstable_by(k - 1, f64::total_cmp).1),
        }
    };
    let thresholds = [kth_smallest(c1), kth_smallest(c2), kth_smallest(c3)];
    // `None`: k = 0, every ranked customer reaches the cut.
    let reaches = |v: f64, threshold: Option<f64>| threshold.is_none_or(|t| t.total_cmp(&v).is_lt());
    let tier: Vec<Option<Tier>> = (0..n)
        .into_par_iter()
        .map(|c| {
            if slot[c] == u32::MAX {
                return None;
            }
            let v = value[c];
            Some(if reaches(v, thresholds[0]) {
                Tier::A
            } else if reaches(v, thresholds[1]) {
                Tier::B
            } else if reaches(v, thresholds[2]) {
                Tier::C
            } else {
                Tier::D
            })
        })
        .collect();

    let definition = AbcdDefinition { basis: AbcdScheme::Value, value: basis, cut_percent: Some(config.cut_percent), ..Default::default() };
    Ok(AbcdResult { tiers: summarize_tiers(&tier, value, revenue_cents), tier, basis, definition })
}

/// Count, value and revenue of each tier, A to D.
fn summarize_tiers(tier: &[Option<Tier>], value: &[f64], revenue_cents: &[i64]) -> Vec<TierSummary> {
    let n = tier.len();
    let total = tier.iter().filter(|t| t.is_some()).count();
    let mut count = [0usize; 4];
    let mut val = [0f64; 4];
    let mut rev = [0i64; 4];
    for c in 0..n {
        if let Some(t) = tier[c] {
            let i = t as usize;
            count[i] += 1;
            val[i] += value[c];
            rev[i] = rev[i].saturating_add(revenue_cents[c]);
        }
    }
    let val_total: f64 = val.iter().sum();
    let rev_total: i64 = rev.iter().fold(0i64, |a, &b| a.saturating_add(b));
    let share = |part: f64, whole: f64| if whole != 0.0 { part / whole } else { 0.0 };
    Tier::ALL
        .iter()
        .map(|&t| {
            let i = t as usize;
            TierSummary {
                tier: t,
                customers: count[i],
                customer_share: share(count[i] as f64, total as f64),
                value: val[i],
                value_share: share(val[i], val_total),
                revenue_cents: rev[i],
                revenue_share: share(rev[i] as f64, rev_total as f64),
            }
        })
        .collect()
}

/// Assigns ABCD tiers as the cells of value × loyalty ([`AbcdScheme::ValueLoyalty`]):
/// `loyalty_index[c]` is the customer's loyalty index (0–100; `None`: lower loyalty); the other
/// arguments as in [`abcd_tiers`].
pub fn abcd_value_loyalty(
    value: &[f64],
    ranked: &[bool],
    loyalty_index: &[Option<f64>],
    revenue_cents: &[i64],
    basis: AbcdBasis,
    config: &AbcdConfig,
) -> Result<AbcdResult> {
    let n = value.len();
    if loyalty_index.len() != n {
        return Err(AnalyticsError::LengthMismatch { column: "loyalty_index", expected: n, got: loyalty_index.len() });
    }
    let (hv, pct) = (config.high_value_percent, config.high_loyalty_percentile);
    if hv > 100 {
        return Err(AnalyticsError::InvalidConfig { field: "abcd.high_value_percent", reason: format!("{hv} is not a percentage") });
    }
    if !(pct.is_finite() && (0.0..=100.0).contains(&pct)) {
        return Err(AnalyticsError::InvalidConfig { field: "abcd.high_loyalty_percentile", reason: format!("{pct} is not in 0..=100") });
    }
    // High value is "tier A" of a value ranking cut at the top `hv` %: the same tie rule.
    let cut = AbcdConfig { cut_percent: [hv, hv, hv], ..*config };
    let by_value = abcd_tiers(value, ranked, revenue_cents, basis, &cut)?;
    let mut indices: Vec<f64> = (0..n).filter(|&c| ranked[c]).filter_map(|c| loyalty_index[c]).filter(|v| v.is_finite()).collect();
    indices.sort_unstable_by(f64::total_cmp);
    let threshold = percentile(&indices, pct);
    let tier: Vec<Option<Tier>> = (0..n)
        .map(|c| {
            let high_value = by_value.tier[c]? == Tier::A;
            let high_loyalty = match (loyalty_index[c], threshold) {
                (Some(l), Some(t)) => l >= t,
                _ => false,
            };
            Some(match (high_value, high_loyalty) {
                (true, true) => Tier::A,
                (true, false) => Tier::B,
                (false, true) => Tier::C,
                (false, false) => Tier::D,
            })
        })
        .collect();
    let definition = AbcdDefinition {
        basis: AbcdScheme::ValueLoyalty,
        value: basis,
        cut_percent: None,
        high_value_percent: Some(hv),
        high_loyalty_percentile: Some(pct),
        high_loyalty_index: threshold,
    };
    Ok(AbcdResult { tiers: summarize_tiers(&tier, value, revenue_cents), tier, basis, definition })
}

/// The `pct` percentile of sorted `values`, interpolating linearly between order statistics
/// (50 = the median, the mean of the two middle values for an even count); `None` when empty.
fn percentile(sorted: &[f64], pct: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let pos = pct / 100.0 * last as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    Some(sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tiers by order statistics equal tiers by each value's rank (values strictly below it,
    /// ties sharing the first rank), the definition, on data with many ties, −0 and +0.
    #[test]
    fn tiers_follow_the_rank_definition() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let mut next = move |m: u64| rng.gen_range(0..m);
        for (n, spread) in [(1usize, 3u64), (7, 2), (100, 5), (1000, 40), (5000, 100_000)] {
            let value: Vec<f64> = (0..n).map(|i| if i % 17 == 0 { -0.0 } else { next(spread) as f64 - (spread / 4) as f64 }).collect();
            let ranked: Vec<bool> = (0..n).map(|i| i % 11 != 3).collect();
            let revenue = vec![1i64; n];
            for cut in [[20, 50, 80], [0, 0, 100], [33, 66, 99], [100, 100, 100], [10, 10, 10]] {
                let config = AbcdConfig { cut_percent: cut, ..AbcdConfig::default() };
                let got = abcd_tiers(&value, &ranked, &revenue, AbcdBasis::Clv, &config).unwrap().tier;
                let base: Vec<f64> = (0..n).filter(|&c| ranked[c]).map(|c| value[c]).collect();
                let t = base.len() as u128;
                for c in 0..n {
                    let want = ranked[c].then(|| {
                        let below = base.iter().filter(|v| v.total_cmp(&value[c]).is_lt()).count() as u128 * 100;
                        match cut {
                            [a, ..] if below >= u128::from(100 - a) * t => Tier::A,
                            [_, b, _] if below >= u128::from(100 - b) * t => Tier::B,
                            [_, _, c3] if below >= u128::from(100 - c3) * t => Tier::C,
                            _ => Tier::D,
                        }
                    });
                    assert_eq!(got[c], want, "n {n}, cut {cut:?}, customer {c}");
                }
            }
        }
    }

    #[test]
    fn default_cut_points_on_ten_customers() {
        let value: Vec<f64> = (1..=10).map(f64::from).collect();
        let revenue: Vec<i64> = (1..=10).collect();
        let r = abcd_tiers(&value, &[true; 10], &revenue, AbcdBasis::TrailingSpend, &AbcdConfig::default()).unwrap();
        use Tier::*;
        assert_eq!(r.tier, vec![Some(D), Some(D), Some(C), Some(C), Some(C), Some(B), Some(B), Some(B), Some(A), Some(A)]);
        let counts: Vec<usize> = r.tiers.iter().map(|t| t.customers).collect();
        assert_eq!(counts, vec![2, 3, 3, 2]);
        // revenue 55 in all: A = 9+10 = 19, B = 6+7+8 = 21, C = 3+4+5 = 12, D = 1+2 = 3
        let shares: Vec<f64> = r.tiers.iter().map(|t| t.revenue_share).collect();
        for (s, want) in shares.iter().zip([19.0 / 55.0, 21.0 / 55.0, 12.0 / 55.0, 3.0 / 55.0]) {
            assert!((s - want).abs() < 1e-15);
        }
        assert_eq!(r.tiers[0].revenue_cents, 19);
        assert!((r.tiers.iter().map(|t| t.revenue_share).sum::<f64>() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn ties_and_unranked() {
        // 6 zeros, then 1..4; customer 10 is a prospect.
        let mut value = vec![0.0; 6];
        value.extend([1.0, 2.0, 3.0, 4.0, 0.0]);
        let mut ranked = vec![true; 10];
        ranked.push(false);
        let rev: Vec<i64> = value.iter().map(|&v| v as i64).collect();
        let r = abcd_tiers(&value, &ranked, &rev, AbcdBasis::TrailingSpend, &AbcdConfig::default()).unwrap();
        // all zeros share the lowest tier they span (D), not split by index
        assert!(r.tier[..6].iter().all(|&t| t == Some(Tier::D)));
        assert_eq!(r.tier[6], Some(Tier::B)); // below = 6 → 60% ≥ 50%
        assert_eq!(r.tier[8], Some(Tier::A));
        assert_eq!(r.tier[10], None);
        assert_eq!(r.tiers.iter().map(|t| t.customers).sum::<usize>(), 10);
    }

    #[test]
    fn custom_cut_points_and_errors() {
        let value: Vec<f64> = (0..100).map(f64::from).collect();
        let rev = vec![1i64; 100];
        let cfg = AbcdConfig { cut_percent: [10, 40, 90], ..Default::default() };
        let r = abcd_tiers(&value, &[true; 100], &rev, AbcdBasis::Clv, &cfg).unwrap();
        let counts: Vec<usize> = r.tiers.iter().map(|t| t.customers).collect();
        assert_eq!(counts, vec![10, 30, 50, 10]);
        assert_eq!(r.basis, AbcdBasis::Clv);
        let bad = AbcdConfig { cut_percent: [50, 20, 80], ..Default::default() };
        assert!(abcd_tiers(&value, &[true; 100], &rev, AbcdBasis::Clv, &bad).is_err());
        let mut nan = value.clone();
        nan[3] = f64::NAN;
        assert!(abcd_tiers(&nan, &[true; 100], &rev, AbcdBasis::Clv, &AbcdConfig::default()).is_err());
    }

    /// Value × loyalty: 10 ranked customers with values 1..=10 (high value = the top 40%:
    /// values 7–10) and loyalty indices whose median is 45 (high loyalty: ≥ 45); one customer
    /// without an index (lower loyalty) and a prospect.
    #[test]
    fn value_and_loyalty_cells() {
        let mut value: Vec<f64> = (1..=10).map(f64::from).collect();
        value.push(0.0);
        let mut ranked = vec![true; 10];
        ranked.push(false);
        // by customer (value 1..10): loyalty
        let loyalty =
            [Some(90.0), Some(10.0), Some(45.0), Some(20.0), Some(80.0), None, Some(30.0), Some(70.0), Some(45.0), Some(5.0), Some(99.0)];
        let revenue: Vec<i64> = value.iter().map(|&v| v as i64 * 100).collect();
        let config = AbcdConfig { scheme: AbcdScheme::ValueLoyalty, ..AbcdConfig::default() };
        let r = abcd_value_loyalty(&value, &ranked, &loyalty, &revenue, AbcdBasis::TrailingSpend, &config).unwrap();
        // ranked indices 5 10 20 30 45 45 70 80 90 (9 of them): median 45
        assert_eq!(r.definition.high_loyalty_index, Some(45.0));
        assert_eq!(r.definition.basis, AbcdScheme::ValueLoyalty);
        assert_eq!(r.definition.high_value_percent, Some(40));
        use Tier::*;
        let want = [Some(C), Some(D), Some(C), Some(D), Some(C), Some(D), Some(B), Some(A), Some(A), Some(B), None];
        assert_eq!(r.tier, want);
        let counts: Vec<usize> = r.tiers.iter().map(|t| t.customers).collect();
        assert_eq!(counts, vec![2, 2, 3, 3]);
        // revenue 5500: A = 800 + 900, B = 700 + 1000, C = 100 + 300 + 500, D = 200 + 400 + 600
        let shares: Vec<f64> = r.tiers.iter().map(|t| t.revenue_share).collect();
        for (s, want) in shares.iter().zip([1700.0 / 5500.0, 1700.0 / 5500.0, 900.0 / 5500.0, 1200.0 / 5500.0]) {
            assert!((s - want).abs() < 1e-15, "{shares:?}");
        }
        // The cut points are configurable: the top 20% by value (values 9 and 10), loyalty at the
        // 75th percentile (of 9 sorted indices, position 0.75 × 8 = 6: 70).
        let config = AbcdConfig { high_value_percent: 20, high_loyalty_percentile: 75.0, ..config };
        let r = abcd_value_loyalty(&value, &ranked, &loyalty, &revenue, AbcdBasis::TrailingSpend, &config).unwrap();
        assert_eq!(r.definition.high_loyalty_index, Some(70.0));
        assert_eq!(r.tier[..10], [Some(C), Some(D), Some(D), Some(D), Some(C), Some(D), Some(D), Some(C), Some(B), Some(B)]);
        // Without any index nobody is highly loyal; bad settings are errors.
        let none = vec![None; 11];
        let r = abcd_value_loyalty(&value, &ranked, &none, &revenue, AbcdBasis::TrailingSpend, &config).unwrap();
        assert_eq!(r.definition.high_loyalty_index, None);
        assert!(r.tier.iter().flatten().all(|&t| t == B || t == D));
        for bad in [AbcdConfig { high_value_percent: 101, ..config }, AbcdConfig { high_loyalty_percentile: f64::NAN, ..config }] {
            assert!(abcd_value_loyalty(&value, &ranked, &loyalty, &revenue, AbcdBasis::TrailingSpend, &bad).is_err());
        }
    }

    #[test]
    fn percentiles_interpolate() {
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&[3.0], 50.0), Some(3.0));
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 50.0), Some(2.5));
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 100.0), Some(4.0));
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 0.0), Some(1.0));
    }
}
