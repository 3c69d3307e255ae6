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

use crate::rank::Ranks;
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
        AbcdConfig {
            cut_percent: [20, 50, 80],
            basis: AbcdBasis::TrailingSpend,
        }
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
pub fn abcd_tiers(
    value: &[f64],
    ranked: &[bool],
    revenue_cents: &[i64],
    basis: AbcdBasis,
    config: &AbcdConfig,
) -> Result<AbcdResult> {
    let n = value.len();
    for (column, got) in [
        ("ranked", ranked.len()),
        ("revenue_cents", revenue_cents.len()),
    ] {
        if got != n {
            return Err(AnalyticsError::LengthMismatch {
                column,
                expected: n,
                got,
            });
        }
    }
    let [c1, c2, c3] = config.cut_percent;
    if !(c1 <= c2 && c2 <= c3 && c3 <= 100) {
        return Err(AnalyticsError::InvalidConfig {
            field: "abcd.cut_percent",
            reason: format!(
                "{:?} must be non-decreasing percentages",
                config.cut_percent
            ),
        });
    }
    if let Some(row) = value
        .iter()
        .zip(ranked)
        .position(|(v, &r)| r && !v.is_finite())
    {
        return Err(AnalyticsError::InvalidInput {
            field: "value",
            row,
            reason: "not a finite number".into(),
        });
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
    let ranks = Ranks::new(&ranked_values);
    let tier: Vec<Option<Tier>> = (0..n)
        .into_par_iter()
        .map(|c| {
            let i = slot[c] as usize;
            if i >= total {
                return None;
            }
            // Integer arithmetic: no rounding at the cut points.
            let below = u128::from(ranks.below[i]) * 100;
            let t = total as u128;
            Some(if below >= u128::from(100 - c1) * t {
                Tier::A
            } else if below >= u128::from(100 - c2) * t {
                Tier::B
            } else if below >= u128::from(100 - c3) * t {
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

    #[test]
    fn default_cut_points_on_ten_customers() {
        let value: Vec<f64> = (1..=10).map(f64::from).collect();
        let revenue: Vec<i64> = (1..=10).collect();
        let r = abcd_tiers(
            &value,
            &[true; 10],
            &revenue,
            AbcdBasis::TrailingSpend,
            &AbcdConfig::default(),
        )
        .unwrap();
        use Tier::*;
        assert_eq!(
            r.tier,
            vec![
                Some(D),
                Some(D),
                Some(C),
                Some(C),
                Some(C),
                Some(B),
                Some(B),
                Some(B),
                Some(A),
                Some(A)
            ]
        );
        let counts: Vec<usize> = r.tiers.iter().map(|t| t.customers).collect();
        assert_eq!(counts, vec![2, 3, 3, 2]);
        // revenue 55 in all: A = 9+10 = 19, B = 6+7+8 = 21, C = 3+4+5 = 12, D = 1+2 = 3
        let shares: Vec<f64> = r.tiers.iter().map(|t| t.revenue_share).collect();
        for (s, want) in shares
            .iter()
            .zip([19.0 / 55.0, 21.0 / 55.0, 12.0 / 55.0, 3.0 / 55.0])
        {
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
        let r = abcd_tiers(
            &value,
            &ranked,
            &rev,
            AbcdBasis::TrailingSpend,
            &AbcdConfig::default(),
        )
        .unwrap();
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
        let cfg = AbcdConfig {
            cut_percent: [10, 40, 90],
            ..Default::default()
        };
        let r = abcd_tiers(&value, &[true; 100], &rev, AbcdBasis::Clv, &cfg).unwrap();
        let counts: Vec<usize> = r.tiers.iter().map(|t| t.customers).collect();
        assert_eq!(counts, vec![10, 30, 50, 10]);
        assert_eq!(r.basis, AbcdBasis::Clv);
        let bad = AbcdConfig {
            cut_percent: [50, 20, 80],
            ..Default::default()
        };
        assert!(abcd_tiers(&value, &[true; 100], &rev, AbcdBasis::Clv, &bad).is_err());
        let mut nan = value.clone();
        nan[3] = f64::NAN;
        assert!(abcd_tiers(
            &nan,
            &[true; 100],
            &rev,
            AbcdBasis::Clv,
            &AbcdConfig::default()
        )
        .is_err());
    }
}
