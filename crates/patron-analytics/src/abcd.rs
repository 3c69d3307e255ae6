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

/// ABCD configuration.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AbcdConfig {
    /// Cumulative percentages of customers at the ends of A, B and C, top down
    /// (default `[20, 50, 80]`: A = top 20%, B = next 30%, C = next 30%, D = the rest).
    pub cut_percent: [u32; 3],
    /// Ranking value.
    pub basis: AbcdBasis,
}

impl Default for AbcdConfig {
    fn default() -> Self {
        AbcdConfig { cut_percent: [20, 50, 80], basis: AbcdBasis::TrailingSpend }
    }
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
    let tiers = Tier::ALL
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
        .collect();
    Ok(AbcdResult { tier, tiers, basis })
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
}
