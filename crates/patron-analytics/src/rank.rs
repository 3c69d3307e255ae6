//! Rank helpers shared by RFM scores, ABCD tiers and loyalty percentiles.
//!
//! Tie rule used throughout: a value's rank is the number of values strictly below it, i.e.
//! the rank of the first element of its tied group, so tied values always get the same score.

use rayon::prelude::*;

/// Sorted copy of `values` (ascending, total order on f64).
pub(crate) fn sorted_f64(values: &[f64]) -> Vec<f64> {
    let mut v = values.to_vec();
    v.par_sort_unstable_by(|a, b| a.total_cmp(b));
    v
}

/// Number of values in `sorted` strictly below `v`.
pub(crate) fn count_below(sorted: &[f64], v: f64) -> usize {
    sorted.partition_point(|&k| k.total_cmp(&v).is_lt())
}

/// Number of values in `sorted` strictly above `v`.
pub(crate) fn count_above(sorted: &[f64], v: f64) -> usize {
    sorted.len() - sorted.partition_point(|&k| k.total_cmp(&v).is_le())
}

/// Quantile score 1..=groups of `v` among `sorted` (higher value = higher score):
/// `1 + ⌊groups × (number strictly below) / n⌋`.
pub(crate) fn quantile_score(sorted: &[f64], v: f64, groups: usize) -> u8 {
    let n = sorted.len().max(1);
    (1 + groups * count_below(sorted, v) / n) as u8
}

/// Mid-rank percentile of `v` in `sorted` in [0, 1]: (below + (equal − 1)/2) / (n − 1);
/// 0.5 when n = 1 or all values are equal.
pub(crate) fn mid_percentile(sorted: &[f64], v: f64) -> f64 {
    let n = sorted.len();
    if n <= 1 {
        return 0.5;
    }
    let below = count_below(sorted, v);
    let equal = n - below - count_above(sorted, v);
    (below as f64 + (equal.max(1) - 1) as f64 / 2.0) / (n - 1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_share_the_first_rank() {
        let s = sorted_f64(&[1.0, 2.0, 2.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]);
        assert_eq!(quantile_score(&s, 1.0, 5), 1);
        // the 2s start at rank 1 → 1 + 5·1/10 = 1
        assert_eq!(quantile_score(&s, 2.0, 5), 1);
        assert_eq!(quantile_score(&s, 3.0, 5), 3);
        assert_eq!(quantile_score(&s, 8.0, 5), 5);
        assert_eq!(mid_percentile(&s, 1.0), 0.0);
        assert_eq!(mid_percentile(&s, 8.0), 1.0);
        assert!((mid_percentile(&s, 2.0) - 2.0 / 9.0).abs() < 1e-15);
        assert_eq!(mid_percentile(&sorted_f64(&[3.0, 3.0]), 3.0), 0.5);
    }
}
