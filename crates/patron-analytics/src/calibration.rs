//! Channel calibration (issue 12 §5; DESIGN.md C12): how likely a customer is to answer on a
//! channel, from their own history there. With `s` messages sent and `r` answered (opened,
//! clicked, replied), the response rate's posterior under a uniform prior is
//! Beta(1 + r, 1 + s − r); its mean is the estimate and its 5% and 95% quantiles the 90%
//! interval. A channel never tried has mean ½ and the interval of the uniform, (0.05, 0.95).

use serde::Serialize;

use crate::lift::inc_beta;

/// A response rate's posterior summary.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Posterior {
    /// Posterior mean (1 + r) / (2 + s).
    pub mean: f64,
    /// 5% quantile.
    pub low: f64,
    /// 95% quantile.
    pub high: f64,
}

/// The posterior of the response rate after `responses` of `sends` were answered (responses
/// beyond the sends count as sends answered).
pub fn response_posterior(sends: u64, responses: u64) -> Posterior {
    let r = responses.min(sends) as f64;
    let s = sends as f64;
    let (a, b) = (1.0 + r, 1.0 + s - r);
    Posterior { mean: a / (a + b), low: beta_quantile(0.05, a, b), high: beta_quantile(0.95, a, b) }
}

/// The `p` quantile of Beta(a, b) (a, b > 0; 0 < p < 1): bisection on the regularised
/// incomplete beta function, to about 1e-12.
pub fn beta_quantile(p: f64, a: f64, b: f64) -> f64 {
    if p <= 0.0 {
        return 0.0;
    }
    if p >= 1.0 {
        return 1.0;
    }
    let (mut lo, mut hi) = (0.0_f64, 1.0_f64);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if inc_beta(mid, a, b) < p {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo < 1e-13 {
            break;
        }
    }
    0.5 * (lo + hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// P(Binomial(n, x) ≥ k), summed term by term: for whole a and b, I_x(a, b) equals
    /// P(Binomial(a + b − 1, x) ≥ a) — an independent way to check the quantiles.
    fn binomial_tail(n: u64, k: u64, x: f64) -> f64 {
        let mut total = 0.0;
        for j in k..=n {
            let ln_choose = (1..=n).map(|i| (i as f64).ln()).sum::<f64>()
                - (1..=j).map(|i| (i as f64).ln()).sum::<f64>()
                - (1..=n - j).map(|i| (i as f64).ln()).sum::<f64>();
            total += (ln_choose + j as f64 * x.ln() + (n - j) as f64 * (1.0 - x).ln()).exp();
        }
        total
    }

    #[test]
    fn quantiles_match_the_binomial_identity() {
        for &(s, r) in &[(0u64, 0u64), (1, 0), (1, 1), (5, 2), (10, 0), (10, 9), (40, 7), (120, 33)] {
            let post = response_posterior(s, r);
            let (a, b) = (1 + r, 1 + s - r);
            for (q, p) in [(post.low, 0.05), (post.high, 0.95)] {
                let cdf = binomial_tail(a + b - 1, a, q);
                assert!((cdf - p).abs() < 1e-9, "s={s} r={r}: CDF at {q} is {cdf}, not {p}");
            }
            assert!((post.mean - (1.0 + r as f64) / (2.0 + s as f64)).abs() < 1e-15);
            assert!(post.low < post.mean && post.mean < post.high);
        }
    }

    #[test]
    fn closed_forms_and_reference_values() {
        // Beta(1, 1): the uniform; Beta(1, b): 1 − (1 − p)^(1/b); Beta(a, 1): p^(1/a).
        let u = response_posterior(0, 0);
        assert!((u.low - 0.05).abs() < 1e-12 && (u.high - 0.95).abs() < 1e-12);
        let none = response_posterior(9, 0); // Beta(1, 10)
        assert!((none.low - (1.0 - 0.95f64.powf(0.1))).abs() < 1e-12);
        assert!((none.high - (1.0 - 0.05f64.powf(0.1))).abs() < 1e-12);
        let all = response_posterior(4, 4); // Beta(5, 1)
        assert!((all.low - 0.05f64.powf(0.2)).abs() < 1e-12);
        assert!((all.high - 0.95f64.powf(0.2)).abs() < 1e-12);
    }
}
