//! Property tests: probability bounds, monotone expectations, balanced quintiles and one
//! class / tier / stage per customer.

use patron_analytics::{analyze, summarize, AnalyticsConfig, BgNbdParams, CustomerExtras, LifecycleStage, Orders, SummaryConfig};
use proptest::prelude::*;

fn params() -> impl Strategy<Value = BgNbdParams> {
    (0.01f64..20.0, 0.01f64..500.0, 0.01f64..10.0, 0.01f64..10.0).prop_map(|(r, alpha, a, b)| BgNbdParams { r, alpha, a, b })
}

/// (x, t_x, T) with 0 ≤ t_x ≤ T and t_x = 0 when x = 0.
fn customer() -> impl Strategy<Value = (u32, f64, f64)> {
    (0u32..200, 0.0f64..1.0, 0.0f64..2000.0).prop_map(|(x, frac, age)| (x, if x == 0 { 0.0 } else { frac * age }, age))
}

/// Random orders of up to `n` customers over days 0..=1000 (as_of 1000), amounts 0–500.00.
fn orders(n: u32) -> impl Strategy<Value = (Orders, usize)> {
    prop::collection::vec((0..n, 0i32..1100, 0i64..50_000, 0u32..5, any::<bool>()), 0..300).prop_map(move |rows| {
        let o = Orders {
            customer: rows.iter().map(|r| r.0).collect(),
            day: rows.iter().map(|r| r.1).collect(),
            amount_cents: rows.iter().map(|r| r.2).collect(),
            category: rows.iter().map(|r| r.3).collect(),
            full_price: rows.iter().map(|r| r.4).collect(),
        };
        (o, n as usize)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn p_alive_is_a_probability(p in params(), (x, t_x, age) in customer()) {
        let v = p.p_alive(x, t_x, age);
        prop_assert!((0.0..=1.0).contains(&v), "P(alive) = {v}");
    }

    #[test]
    fn expected_purchases_grow_with_the_horizon(p in params(), (x, t_x, age) in customer(), t1 in 0.0f64..3000.0, dt in 0.0f64..3000.0) {
        let e1 = p.expected_purchases(x, t_x, age, t1);
        let e2 = p.expected_purchases(x, t_x, age, t1 + dt);
        prop_assert!(e1.is_finite() && e2.is_finite() && e1 >= 0.0, "E = {e1}, {e2}");
        prop_assert!(e2 >= e1 * (1.0 - 1e-9) - 1e-12, "E[X({t1})] = {e1} > E[X({})] = {e2}", t1 + dt);
        // never more than the customer could make at the posterior mean rate… bounded by the
        // expectation for a customer who never drops out: (r+x)/(α+T) · t
        let bound = (p.r + f64::from(x)) / (p.alpha + age) * (t1 + dt);
        prop_assert!(e2 <= bound * (1.0 + 1e-9) + 1e-12, "E = {e2} above the no-dropout bound {bound}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn quintile_scores_are_balanced((o, n) in orders(60)) {
        let s = summarize(&o, n, 1000, &SummaryConfig::default()).unwrap();
        let r = patron_analytics::rfm(&s, &Default::default()).unwrap();
        let scored: Vec<usize> = (0..n).filter(|&c| s.window_orders[c] > 0).collect();
        let m = scored.len();
        prop_assert_eq!(r.scored_customers, m);
        let columns: [(&[u8], Vec<f64>); 3] = [
            (&r.r_score, scored.iter().map(|&c| f64::from(r.recency_days[c].unwrap())).collect()),
            (&r.f_score, scored.iter().map(|&c| f64::from(s.window_orders[c])).collect()),
            (&r.m_score, scored.iter().map(|&c| s.window_spend_cents[c] as f64).collect()),
        ];
        for (scores, values) in columns {
            // largest group of tied values
            let mut sorted = values.clone();
            sorted.sort_by(f64::total_cmp);
            let mut tie = if m > 0 { 1 } else { 0 };
            let mut run = 1;
            for w in sorted.windows(2) {
                run = if w[0] == w[1] { run + 1 } else { 1 };
                tie = tie.max(run);
            }
            for score in 1..=5u8 {
                let count = scored.iter().filter(|&&c| scores[c] == score).count();
                // scores take the rank of a tied group's first member, so a score holds at most
                // ⌈m/5⌉ customers plus the spill of one tied group
                prop_assert!(count < m.div_ceil(5) + tie.max(1), "score {score}: {count} of {m}, ties {tie}");
                if tie <= 1 {
                    prop_assert!(count >= m / 5, "score {score}: {count} of {m} without ties");
                }
            }
            // unscored customers have score 0, scored ones 1..=5
            for (score, orders) in scores.iter().zip(&s.window_orders) {
                prop_assert_eq!(*score == 0, *orders == 0);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn every_customer_gets_one_class_tier_and_stage((o, n) in orders(40)) {
        let out = analyze(&o, n, 1000, &CustomerExtras::default(), &AnalyticsConfig::default()).unwrap();
        let s = &out.summaries;
        let sc = &out.scores;
        prop_assert_eq!(sc.rfm.class.len(), n);
        prop_assert_eq!(sc.abcd.tier.len(), n);
        prop_assert_eq!(sc.lifecycle.stage.len(), n);
        for c in 0..n {
            let buyer = s.purchase_days[c] > 0;
            prop_assert_eq!(sc.rfm.class[c].is_some(), buyer);
            prop_assert_eq!(sc.abcd.tier[c].is_some(), buyer);
            prop_assert_eq!(sc.lifecycle.stage[c] == LifecycleStage::Prospect, !buyer);
            prop_assert_eq!(sc.loyalty.situation[c].is_some(), buyer);
            if let Some(p) = sc.p_alive[c] {
                prop_assert!((0.0..=1.0).contains(&p));
            }
            if let Some(i) = sc.loyalty.index[c] {
                prop_assert!((0.0..=100.0).contains(&i));
            }
        }
        let tiered: usize = out.report.abcd.iter().map(|t| t.customers).sum();
        prop_assert_eq!(tiered, out.report.customers_with_purchases);
    }
}
