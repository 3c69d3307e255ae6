//! Rank helpers shared by RFM scores, ABCD tiers and loyalty percentiles.
//!
//! Tie rule used throughout: a value's rank is the number of values strictly below it, i.e.
//! the rank of the first element of its tied group, so tied values always get the same score.
//! Ranks come from one parallel sort of (value, index) pairs and a linear walk over the tied
//! groups — no per-element binary search, which would cost a cache miss per step at 10 M rows.

use rayon::prelude::*;

/// For each value: how many values are strictly below it, and how many equal it (itself
/// included). Values compare by `f64::total_cmp`.
pub(crate) struct Ranks {
    pub below: Vec<u32>,
    pub equal: Vec<u32>,
}

impl Ranks {
    pub(crate) fn new(values: &[f64]) -> Ranks {
        Ranks::by_counting(values).unwrap_or_else(|| Ranks::by_sorting(values))
    }

    /// Ranks of whole numbers within a span of at most a few times their count (recency in
    /// days, order counts, categories, referrals) by counting how often each occurs: two
    /// linear passes instead of a sort, which was most of the RFM stage. `None` for other
    /// values, and when both −0 and +0 occur (`total_cmp` tells them apart, counting would not).
    fn by_counting(values: &[f64]) -> Option<Ranks> {
        #[derive(Clone, Copy)]
        struct Span {
            lo: f64,
            hi: f64,
            whole: bool,
            neg_zero: bool,
            pos_zero: bool,
        }
        let empty = Span { lo: f64::INFINITY, hi: f64::NEG_INFINITY, whole: true, neg_zero: false, pos_zero: false };
        let join = |a: Span, b: Span| Span {
            lo: a.lo.min(b.lo),
            hi: a.hi.max(b.hi),
            whole: a.whole && b.whole,
            neg_zero: a.neg_zero || b.neg_zero,
            pos_zero: a.pos_zero || b.pos_zero,
        };
        let span = values
            .par_iter()
            .fold(
                || empty,
                |acc, &v| {
                    // `fract` of ±∞ and NaN is NaN, so they are not whole.
                    let one = Span {
                        lo: v,
                        hi: v,
                        whole: v.fract() == 0.0,
                        neg_zero: v == 0.0 && v.is_sign_negative(),
                        pos_zero: v == 0.0 && v.is_sign_positive(),
                    };
                    join(acc, one)
                },
            )
            .reduce(|| empty, join);
        let n = values.len();
        let limit = (4 * n).max(1 << 16) as f64;
        if n == 0 || !span.whole || (span.neg_zero && span.pos_zero) || span.hi - span.lo >= limit {
            return None;
        }
        // Exact: whole numbers below the limit apart, far below 2^53.
        let slot = |v: f64| (v - span.lo) as usize;
        let mut counts = vec![0u32; slot(span.hi) + 1];
        for &v in values {
            counts[slot(v)] += 1;
        }
        let mut starts = Vec::with_capacity(counts.len());
        let mut acc = 0u32;
        for &c in &counts {
            starts.push(acc);
            acc += c;
        }
        let below = values.par_iter().map(|&v| starts[slot(v)]).collect();
        let equal = values.par_iter().map(|&v| counts[slot(v)]).collect();
        Some(Ranks { below, equal })
    }

    /// Ranks of any values: one parallel sort of (key, index) pairs and a walk over the ties.
    fn by_sorting(values: &[f64]) -> Ranks {
        let n = values.len();
        // Sort (key, index) pairs whose integer key orders like `f64::total_cmp`: comparing
        // plain integers in place is several times faster than comparing through the index.
        let key = |v: f64| {
            let bits = v.to_bits();
            bits ^ ((((bits as i64) >> 63) as u64) >> 1) ^ (1 << 63)
        };
        let mut order: Vec<(u64, u32)> = values.par_iter().enumerate().map(|(i, &v)| (key(v), i as u32)).collect();
        order.par_sort_unstable();
        let mut below = vec![0u32; n];
        let mut equal = vec![0u32; n];
        let mut start = 0usize;
        while start < n {
            let k = order[start].0;
            let mut end = start + 1;
            while end < n && order[end].0 == k {
                end += 1;
            }
            for &(_, i) in &order[start..end] {
                below[i as usize] = start as u32;
                equal[i as usize] = (end - start) as u32;
            }
            start = end;
        }
        Ranks { below, equal }
    }

    /// [`Ranks::quantile_score`] of every value, without ranking them all when they are not
    /// counted: the score is 1 + how many of the `groups − 1` cuts the value passes, and it passes
    /// cut s when the k-th smallest value (k = ⌈s·n / groups⌉) is below it — a selection per cut
    /// (linear) instead of a sort of every value.
    pub(crate) fn quantile_scores(values: &[f64], groups: usize) -> Vec<u8> {
        if let Some(ranks) = Ranks::by_counting(values) {
            return (0..values.len()).into_par_iter().map(|i| ranks.quantile_score(i, groups)).collect();
        }
        let n = values.len();
        if n == 0 {
            return Vec::new();
        }
        let mut scratch = values.to_vec();
        let cuts: Vec<f64> = (1..groups)
            .map(|s| {
                let k = (s * n).div_ceil(groups).max(1);
                *scratch.select_nth_unstable_by(k - 1, f64::total_cmp).1
            })
            .collect();
        values.par_iter().map(|v| 1 + cuts.iter().filter(|c| c.total_cmp(v).is_lt()).count() as u8).collect()
    }

    /// Number of ranked values.
    pub(crate) fn len(&self) -> usize {
        self.below.len()
    }

    /// Quantile score 1..=groups of element `i` (higher value = higher score):
    /// `1 + ⌊groups × below / n⌋`.
    pub(crate) fn quantile_score(&self, i: usize, groups: usize) -> u8 {
        let n = self.len().max(1);
        (1 + groups * self.below[i] as usize / n) as u8
    }

    /// Mid-rank percentile of element `i` in [0, 1]: (below + (equal − 1)/2) / (n − 1);
    /// 0.5 when n = 1.
    pub(crate) fn mid_percentile(&self, i: usize) -> f64 {
        let n = self.len();
        if n <= 1 {
            return 0.5;
        }
        (f64::from(self.below[i]) + f64::from(self.equal[i].max(1) - 1) / 2.0) / (n - 1) as f64
    }
}

/// Median of `values` (mean of the two middle ones for an even count); NaN when empty.
pub(crate) fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    let mid = n / 2;
    let (lower, &mut hi, _) = v.select_nth_unstable_by(mid, f64::total_cmp);
    if n % 2 == 1 {
        hi
    } else {
        let lo = lower.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        0.5 * (lo + hi)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_keys_order_like_total_cmp() {
        let mut values = vec![-f64::INFINITY, -1e300, -2.5, -0.0, 0.0, 1e-300, 2.5, 7.0, f64::INFINITY, 3.0, -3.0];
        let r = Ranks::new(&values);
        values.sort_by(f64::total_cmp);
        let sorted = Ranks::new(&values);
        assert_eq!(sorted.below, (0..values.len() as u32).collect::<Vec<_>>(), "-0 and 0 differ, as in total_cmp");
        assert_eq!(r.below.iter().filter(|&&b| b == 0).count(), 1);
    }

    /// Counting and sorting give the same ranks wherever counting applies.
    #[test]
    fn counting_agrees_with_sorting() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut next = move || rng.gen::<u64>();
        let cases: Vec<Vec<f64>> = vec![
            (0..5000).map(|_| (next() % 400) as f64).collect(),
            (0..5000).map(|_| -((next() % 90) as f64)).collect(),
            (0..3000).map(|_| (next() % 7) as f64 - 3.0).collect(),
            (0..3000).map(|_| 1e15 + (next() % 50) as f64).collect(),
            vec![4.0],
        ];
        for values in &cases {
            let counted = Ranks::by_counting(values).expect("whole numbers in a narrow span are counted");
            let sorted = Ranks::by_sorting(values);
            assert_eq!(counted.below, sorted.below);
            assert_eq!(counted.equal, sorted.equal);
        }
        for values in [vec![0.5, 1.0], vec![f64::NAN, 1.0], vec![f64::INFINITY, 1.0], vec![-0.0, 0.0, 1.0], vec![0.0, 1e9], vec![]] {
            assert!(Ranks::by_counting(&values).is_none(), "{values:?} is not for counting");
        }
        // −0 alone (recency 0 negated) is counted like any other value.
        let r = Ranks::new(&[-0.0, -3.0, -0.0]);
        assert_eq!((r.below, r.equal), (vec![1, 0, 1], vec![2, 1, 2]));
    }

    /// Scores by selections equal scores by ranks (the definition), with ties, −0/+0, and
    /// values too spread out to be counted.
    #[test]
    fn quantile_scores_follow_the_ranks() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let mut next = move |m: u64| rng.gen_range(0..m);
        assert!(Ranks::quantile_scores(&[], 5).is_empty());
        for (n, spread) in [(1usize, 2u64), (4, 3), (11, 5), (997, 40), (5000, 1 << 40)] {
            let values: Vec<f64> =
                (0..n).map(|i| if i % 13 == 0 { -0.0 } else { next(spread) as f64 * 0.5 - (spread / 8) as f64 }).collect();
            let ranks = Ranks::by_sorting(&values);
            for groups in [2, 5, 10] {
                let want: Vec<u8> = (0..n).map(|i| ranks.quantile_score(i, groups)).collect();
                assert_eq!(Ranks::quantile_scores(&values, groups), want, "n {n}, groups {groups}");
            }
        }
    }

    #[test]
    fn ties_share_the_first_rank() {
        let values = [8.0, 1.0, 2.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 2.0];
        let r = Ranks::new(&values);
        assert_eq!(r.below, vec![9, 0, 1, 1, 4, 5, 6, 7, 8, 1]);
        assert_eq!(r.equal[2], 3);
        assert_eq!(r.quantile_score(1, 5), 1);
        // the 2s start at rank 1 → 1 + 5·1/10 = 1
        assert_eq!(r.quantile_score(2, 5), 1);
        assert_eq!(r.quantile_score(4, 5), 3);
        assert_eq!(r.quantile_score(0, 5), 5);
        assert_eq!(r.mid_percentile(1), 0.0);
        assert_eq!(r.mid_percentile(0), 1.0);
        assert!((r.mid_percentile(2) - 2.0 / 9.0).abs() < 1e-15);
        assert_eq!(Ranks::new(&[3.0, 3.0]).mid_percentile(0), 0.5);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[3.0, 1.0, 2.0, 10.0]), 2.5);
        assert!(median(&[]).is_nan());
    }
}
