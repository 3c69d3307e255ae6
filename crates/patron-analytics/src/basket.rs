//! Category co-occurrence lift (issue 12 §7, DESIGN.md C18): which category to suggest to a
//! customer, from what customers with a like basket buy.
//!
//! Each customer's basket is the set of categories they bought (completed orders up to the
//! analysis day, every line). Over the `N` customers with a non-empty basket, `n(a)` customers
//! bought category `a` and `n(a, b)` bought both `a` and `b`; the lift of the rule "bought a →
//! buys b" is
//!
//! ```text
//! lift(a → b) = P(b | a) / P(b) = N · n(a, b) / (n(a) · n(b))
//! ```
//!
//! (symmetric in a and b). "Customers whose baskets are like this one's" are those who share a
//! category `a` with it; the suggestion for a basket `S` is the category `b ∉ S` with the
//! highest `lift(a → b)` over the `a ∈ S`, among rules seen in at least
//! [`LiftConfig::min_support`] customers and with a lift above [`LiftConfig::min_lift`].
//! Ties go to the rule more customers followed (`n(a, b)`), then to the smaller category id `b`,
//! then to the smaller `a` — the same basket always gets the same suggestion.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// Thresholds of the rules that may suggest a category.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LiftConfig {
    /// Customers who must have bought both categories (default 3): a pair seen once is chance.
    pub min_support: u32,
    /// The lift a rule must exceed (default 1.0: buying `a` must make `b` more likely).
    pub min_lift: f64,
}

impl Default for LiftConfig {
    fn default() -> Self {
        LiftConfig { min_support: 3, min_lift: 1.0 }
    }
}

/// A suggested category and the rule that suggests it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Upsell {
    /// The category to suggest (`b`).
    pub category: u32,
    /// The category of the customer's basket it goes with (`a`).
    pub because_of: u32,
    /// lift(a → b).
    pub lift: f64,
    /// Customers who bought both.
    pub both: u32,
}

/// The co-occurrence counts and the rules above the thresholds, by antecedent.
#[derive(Debug, Clone, Default)]
pub struct LiftTable {
    /// Customers with a non-empty basket (`N`).
    pub baskets: u32,
    counts: HashMap<u32, u32>,
    pairs: HashMap<(u32, u32), u32>,
    /// Per antecedent `a`: (b, lift, n(a, b)), best first.
    rules: HashMap<u32, Vec<(u32, f64, u32)>>,
}

/// Whether rule `x` ranks before rule `y` (higher lift, then more customers, then smaller
/// consequent, then smaller antecedent).
fn better(x: &Upsell, y: &Upsell) -> bool {
    (x.lift, x.both, std::cmp::Reverse(x.category), std::cmp::Reverse(x.because_of))
        > (y.lift, y.both, std::cmp::Reverse(y.category), std::cmp::Reverse(y.because_of))
}

/// Counts the baskets (each a customer's categories; duplicates and order do not matter) and
/// keeps the rules above the thresholds.
pub fn category_lift(baskets: &[Vec<u32>], config: &LiftConfig) -> LiftTable {
    let mut counts: HashMap<u32, u32> = HashMap::new();
    let mut pairs: HashMap<(u32, u32), u32> = HashMap::new();
    let mut n = 0u32;
    let mut set: Vec<u32> = Vec::new();
    for basket in baskets {
        set.clear();
        set.extend_from_slice(basket);
        set.sort_unstable();
        set.dedup();
        if set.is_empty() {
            continue;
        }
        n += 1;
        for (i, &a) in set.iter().enumerate() {
            *counts.entry(a).or_default() += 1;
            for &b in &set[i + 1..] {
                *pairs.entry((a, b)).or_default() += 1;
            }
        }
    }
    let mut rules: HashMap<u32, Vec<(u32, f64, u32)>> = HashMap::new();
    for (&(a, b), &both) in &pairs {
        if both < config.min_support {
            continue;
        }
        let (na, nb) = (counts[&a], counts[&b]);
        let lift = f64::from(n) * f64::from(both) / (f64::from(na) * f64::from(nb));
        if lift > config.min_lift {
            rules.entry(a).or_default().push((b, lift, both));
            rules.entry(b).or_default().push((a, lift, both));
        }
    }
    for list in rules.values_mut() {
        list.sort_by(|x, y| y.1.total_cmp(&x.1).then(y.2.cmp(&x.2)).then(x.0.cmp(&y.0)));
    }
    LiftTable { baskets: n, counts, pairs, rules }
}

impl LiftTable {
    /// Customers who bought category `a`.
    pub fn count(&self, a: u32) -> u32 {
        self.counts.get(&a).copied().unwrap_or(0)
    }

    /// Customers who bought both `a` and `b` (`a ≠ b`).
    pub fn both(&self, a: u32, b: u32) -> u32 {
        let key = if a < b { (a, b) } else { (b, a) };
        self.pairs.get(&key).copied().unwrap_or(0)
    }

    /// lift(a → b), whatever the thresholds; `None` when either category was never bought.
    pub fn lift(&self, a: u32, b: u32) -> Option<f64> {
        let (na, nb) = (self.count(a), self.count(b));
        (na > 0 && nb > 0 && a != b).then(|| f64::from(self.baskets) * f64::from(self.both(a, b)) / (f64::from(na) * f64::from(nb)))
    }

    /// The category to suggest to a customer with this basket, if a rule suggests one.
    pub fn recommend(&self, basket: &[u32]) -> Option<Upsell> {
        let mut best: Option<Upsell> = None;
        for &a in basket {
            let Some(list) = self.rules.get(&a) else { continue };
            // The list is in rank order: its first category not yet bought is `a`'s best.
            let Some(&(b, lift, both)) = list.iter().find(|(b, _, _)| !basket.contains(b)) else { continue };
            let cand = Upsell { category: b, because_of: a, lift, both };
            if best.as_ref().is_none_or(|x| better(&cand, x)) {
                best = Some(cand);
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Eight customers over categories 1 (咖啡), 2 (茶), 3 (甜点), 4 (杯具), 5 (礼盒):
    ///
    /// ```text
    /// c0 {1,2,3}  c1 {1,3}  c2 {1,3,4}  c3 {2,4}  c4 {2,3}  c5 {1,3}  c6 {4}  c7 {}  c8 {1, 5}
    /// ```
    ///
    /// By hand: N = 8 (c7 has no basket); n(1) = 5 (c0 c1 c2 c5 c8), n(2) = 3, n(3) = 5,
    /// n(4) = 3, n(5) = 1; n(1,3) = 4 (c0 c1 c2 c5), n(1,2) = 1, n(2,3) = 2, n(1,4) = 1,
    /// n(3,4) = 1, n(2,4) = 1, n(1,5) = 1.
    /// lift(1,3) = 8·4/(5·5) = 32/25 = 1.28; lift(2,3) = 8·2/(3·5) = 16/15; lift(2,4) = 8/9;
    /// lift(1,5) = 8/5 = 1.6 but seen once.
    fn baskets() -> Vec<Vec<u32>> {
        vec![vec![1, 2, 3], vec![3, 1, 1], vec![1, 3, 4], vec![2, 4], vec![2, 3], vec![1, 3], vec![4], vec![], vec![1, 5]]
    }

    #[test]
    fn counts_and_lifts_match_the_hand_computation() {
        let t = category_lift(&baskets(), &LiftConfig::default());
        assert_eq!(t.baskets, 8);
        assert_eq!([t.count(1), t.count(2), t.count(3), t.count(4), t.count(5)], [5, 3, 5, 3, 1]);
        assert_eq!([t.both(1, 3), t.both(3, 1), t.both(1, 2), t.both(2, 3), t.both(2, 4), t.both(1, 5)], [4, 4, 1, 2, 1, 1]);
        let close = |x: Option<f64>, want: f64| (x.unwrap_or(f64::NAN) - want).abs() < 1e-12;
        assert!(close(t.lift(1, 3), 32.0 / 25.0));
        assert!(close(t.lift(3, 1), 32.0 / 25.0));
        assert!(close(t.lift(2, 3), 16.0 / 15.0));
        assert!(close(t.lift(2, 4), 8.0 / 9.0));
        assert!(close(t.lift(1, 5), 8.0 / 5.0));
        assert_eq!(t.lift(1, 9), None);
    }

    #[test]
    fn suggestions_follow_the_thresholds_and_the_ranking() {
        // Support 3: only 1 ↔ 3 (seen by 4) qualifies.
        let t = category_lift(&baskets(), &LiftConfig::default());
        let s = t.recommend(&[1]).unwrap();
        assert_eq!((s.category, s.because_of, s.both), (3, 1, 4));
        assert!((s.lift - 1.28).abs() < 1e-12);
        assert_eq!(t.recommend(&[3]).map(|s| s.category), Some(1));
        assert_eq!(t.recommend(&[1, 3]), None, "already bought both");
        assert_eq!(t.recommend(&[2]), None, "2 → 3 is seen twice only");
        assert_eq!(t.recommend(&[]), None);
        // Support 1: 1 → 5 (1.6) beats 1 → 3 (1.28); 2 → 3 (16/15) is a rule, 2 → 4 (8/9 < 1) is not.
        let t = category_lift(&baskets(), &LiftConfig { min_support: 1, min_lift: 1.0 });
        assert_eq!(t.recommend(&[1]).map(|s| s.category), Some(5));
        assert_eq!(t.recommend(&[1, 5]).map(|s| s.category), Some(3));
        let s = t.recommend(&[2]).unwrap();
        assert_eq!((s.category, s.because_of), (3, 2));
        // From {2, 4}: 2 → 3 (16/15) against 4 → … (4,1): 8/15, (4,3): 8/15 — below 1.
        assert_eq!(t.recommend(&[4, 2]).map(|s| (s.category, s.because_of)), Some((3, 2)));
    }

    #[test]
    fn ties_go_to_support_then_the_smaller_ids() {
        // 10 and 20 each go with 30 and 40 alike: the same lift, the same support.
        let b: Vec<Vec<u32>> = vec![vec![10, 30, 40], vec![10, 30, 40], vec![10, 30, 40], vec![20], vec![50], vec![50], vec![50]];
        let t = category_lift(&b, &LiftConfig::default());
        let s = t.recommend(&[10]).unwrap();
        assert_eq!(s.category, 30, "30 and 40 tie: the smaller id");
        let s = t.recommend(&[30, 40]).unwrap();
        assert_eq!((s.category, s.because_of), (10, 30), "from 30 and from 40 alike: the smaller antecedent");
        // Deterministic whatever the input order.
        let mut rev = b.clone();
        rev.reverse();
        assert_eq!(category_lift(&rev, &LiftConfig::default()).recommend(&[40]), t.recommend(&[40]));
    }
}
