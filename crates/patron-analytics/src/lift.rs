//! Lift of a campaign over its control group (issue 12 §4): the difference of two conversion
//! rates with Newcombe's hybrid score interval (the Wilson intervals of each group combined —
//! statsmodels' `confint_proportions_2indep(method="newcomb")`), and the difference of two means
//! (revenue per recipient) with Welch's interval. Pure functions; fixtures in
//! `tests/data/lift.json` from `tests/data/lift_fixtures.py` pin them to statsmodels.

use serde::Serialize;

/// The standard normal quantile of 0.975 (a two-sided 95% interval).
pub const Z_95: f64 = 1.959_963_984_540_054;

/// Groups smaller than this are "too few to tell".
pub const MIN_GROUP: u64 = 30;

/// An estimate with its interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Interval {
    /// The point estimate.
    pub estimate: f64,
    /// Lower bound.
    pub low: f64,
    /// Upper bound.
    pub high: f64,
}

/// Whether both groups are big enough to say anything ("too few to tell" otherwise).
pub fn enough(n_treated: u64, n_control: u64) -> bool {
    n_treated >= MIN_GROUP && n_control >= MIN_GROUP
}

/// Wilson's score interval of `count` successes in `n` trials (n > 0).
pub fn wilson(count: u64, n: u64, z: f64) -> (f64, f64) {
    let n = n as f64;
    let p = count as f64 / n;
    let z2 = z * z;
    let denom = 1.0 + z2 / n;
    let center = (p + z2 / (2.0 * n)) / denom;
    let half = z / denom * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    (center - half, center + half)
}

/// p₁ − p₂ with Newcombe's hybrid score interval (method 10 of Newcombe 1998); `None` when a
/// group is empty.
pub fn newcombe_diff(count1: u64, n1: u64, count2: u64, n2: u64, z: f64) -> Option<Interval> {
    if n1 == 0 || n2 == 0 || count1 > n1 || count2 > n2 {
        return None;
    }
    let (p1, p2) = (count1 as f64 / n1 as f64, count2 as f64 / n2 as f64);
    let (l1, u1) = wilson(count1, n1, z);
    let (l2, u2) = wilson(count2, n2, z);
    let d = p1 - p2;
    Some(Interval {
        estimate: d,
        low: d - ((p1 - l1).powi(2) + (u2 - p2).powi(2)).sqrt(),
        high: d + ((u1 - p1).powi(2) + (p2 - l2).powi(2)).sqrt(),
    })
}

/// Mean and sample variance (n − 1).
pub fn mean_var(x: &[f64]) -> (f64, f64) {
    let n = x.len() as f64;
    let m = x.iter().sum::<f64>() / n;
    let v = x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (n - 1.0);
    (m, v)
}

/// mean₁ − mean₂ with Welch's 95% interval (unequal variances, Welch–Satterthwaite degrees of
/// freedom); `None` with fewer than two in a group or no variance at all.
pub fn welch_diff(x1: &[f64], x2: &[f64]) -> Option<Interval> {
    if x1.len() < 2 || x2.len() < 2 {
        return None;
    }
    let (n1, n2) = (x1.len() as f64, x2.len() as f64);
    let (m1, v1) = mean_var(x1);
    let (m2, v2) = mean_var(x2);
    let (a, b) = (v1 / n1, v2 / n2);
    let se = (a + b).sqrt();
    if se <= 0.0 || !se.is_finite() {
        return None;
    }
    let df = (a + b).powi(2) / (a * a / (n1 - 1.0) + b * b / (n2 - 1.0));
    let t = t_quantile(0.975, df);
    let d = m1 - m2;
    Some(Interval { estimate: d, low: d - t * se, high: d + t * se })
}

/// The regularised incomplete beta function I_x(a, b) (continued fraction, Lentz).
pub fn inc_beta(x: f64, a: f64, b: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let ln_front = a * x.ln() + b * (1.0 - x).ln() - crate::special::ln_beta(a, b);
    if x > (a + 1.0) / (a + b + 2.0) {
        return 1.0 - inc_beta(1.0 - x, b, a);
    }
    let tiny = 1e-300;
    let (mut c, mut d) = (1.0, 1.0 - (a + b) * x / (a + 1.0));
    if d.abs() < tiny {
        d = tiny;
    }
    d = 1.0 / d;
    let mut f = d;
    for m in 1..10_000 {
        let m = m as f64;
        for step in 0..2 {
            let num = if step == 0 {
                m * (b - m) * x / ((a + 2.0 * m - 1.0) * (a + 2.0 * m))
            } else {
                -(a + m) * (a + b + m) * x / ((a + 2.0 * m) * (a + 2.0 * m + 1.0))
            };
            d = 1.0 + num * d;
            if d.abs() < tiny {
                d = tiny;
            }
            c = 1.0 + num / c;
            if c.abs() < tiny {
                c = tiny;
            }
            d = 1.0 / d;
            f *= c * d;
        }
        if (c * d - 1.0).abs() < 1e-16 {
            break;
        }
    }
    (ln_front.exp() * f) / a
}

/// Student's t distribution function with `df` degrees of freedom (df > 0, not necessarily whole).
pub fn t_cdf(t: f64, df: f64) -> f64 {
    let x = df / (df + t * t);
    let tail = 0.5 * inc_beta(x, df / 2.0, 0.5);
    if t >= 0.0 {
        1.0 - tail
    } else {
        tail
    }
}

/// The quantile of Student's t (bisection to machine precision; p in (0.5, 1)).
pub fn t_quantile(p: f64, df: f64) -> f64 {
    let (mut lo, mut hi) = (0.0_f64, 1.0_f64);
    while t_cdf(hi, df) < p {
        hi *= 2.0;
        if hi > 1e12 {
            return f64::INFINITY;
        }
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if t_cdf(mid, df) < p {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo <= 1e-15 * hi.max(1.0) {
            break;
        }
    }
    0.5 * (lo + hi)
}
