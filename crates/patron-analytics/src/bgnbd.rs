//! The BG/NBD model (Fader, Hardie & Lee 2005, "Counting your customers the easy way").
//!
//! While alive a customer buys at rate λ ~ Gamma(r, α); after each repeat purchase they drop
//! out with probability p ~ Beta(a, b). Per customer the data are (x, t_x, T): repeat purchases,
//! time of the last purchase and age, both from the first purchase.
//!
//! The fit is exact maximum likelihood over all customers: identical (x, t_x, T) rows are
//! aggregated with weights, the log-likelihood and its analytic gradient are evaluated in
//! parallel (per-x constants — the log-gamma and digamma terms — computed once per distinct x,
//! logs of α + t once per distinct time value), and L-BFGS minimises the mean negative
//! log-likelihood over (ln r, ln α, ln a, ln b). As in `lifetimes`, time is rescaled so that
//! the largest T is 1 and the start point is ln θ = 0.1 for all four; the result is mapped
//! back to the data's unit. Partial sums are combined in a fixed order, so a fit is
//! deterministic whatever the number of threads.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::optim::{minimize, newton, FitOptions};
use crate::special::{digamma, hyp2f1_scaled, ln_gamma, trigamma};
use crate::summary::CustomerSummaries;
use crate::{AnalyticsError, Result, TimeUnit};

/// BG/NBD parameters (all > 0); α is in the time unit of the data it was fitted on.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BgNbdParams {
    /// Shape of the purchase-rate gamma distribution.
    pub r: f64,
    /// Scale (rate parameter) of the purchase-rate gamma distribution, in time units.
    pub alpha: f64,
    /// Dropout beta distribution, first shape.
    pub a: f64,
    /// Dropout beta distribution, second shape.
    pub b: f64,
}

/// Aggregated (x, t_x, T) rows with weights (number of customers per row).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BtydRows {
    /// Repeat purchases.
    pub x: Vec<u32>,
    /// Recency: time from the first to the last purchase.
    pub t_x: Vec<f64>,
    /// Age T: time from the first purchase to the end of observation.
    pub age: Vec<f64>,
    /// Number of customers with this row.
    pub weight: Vec<f64>,
}

impl BtydRows {
    /// Aggregates one row per customer into distinct rows with weights, sorted by
    /// (x, t_x, T). Errors on NaN, negative values or t_x > T.
    pub fn aggregate(x: &[u32], t_x: &[f64], age: &[f64]) -> Result<BtydRows> {
        let n = x.len();
        for (column, got) in [("t_x", t_x.len()), ("age", age.len())] {
            if got != n {
                return Err(AnalyticsError::LengthMismatch { column, expected: n, got });
            }
        }
        if let Some(row) = (0..n).find(|&i| !(t_x[i].is_finite() && age[i].is_finite() && t_x[i] >= 0.0 && t_x[i] <= age[i])) {
            return Err(AnalyticsError::InvalidInput {
                field: "t_x/age",
                row,
                reason: format!("need 0 ≤ t_x ≤ T, got t_x = {}, T = {}", t_x[row], age[row]),
            });
        }
        if let Some(row) = (0..n).find(|&i| x[i] == 0 && t_x[i] != 0.0) {
            return Err(AnalyticsError::InvalidInput { field: "t_x", row, reason: "t_x must be 0 when x = 0".into() });
        }
        // Non-negative floats order like their bit patterns.
        let mut keys: Vec<(u32, u64, u64)> = (0..n).map(|i| (x[i], t_x[i].to_bits(), age[i].to_bits())).collect();
        keys.par_sort_unstable();
        let mut rows = BtydRows::default();
        for k in keys {
            let same = rows.x.last() == Some(&k.0)
                && rows.t_x.last().map(|v| v.to_bits()) == Some(k.1)
                && rows.age.last().map(|v| v.to_bits()) == Some(k.2);
            if let (true, Some(w)) = (same, rows.weight.last_mut()) {
                *w += 1.0;
            } else {
                rows.x.push(k.0);
                rows.t_x.push(f64::from_bits(k.1));
                rows.age.push(f64::from_bits(k.2));
                rows.weight.push(1.0);
            }
        }
        Ok(rows)
    }

    /// Aggregated rows of the customers with purchases in `s`, in `unit`. Uses integer-day
    /// keys (one sort of packed u64s), the fast path for the whole customer base.
    pub fn from_summaries(s: &CustomerSummaries, unit: TimeUnit) -> Result<BtydRows> {
        s.validate()?;
        // x < 2^20, t_x and T < 2^22 days (11,000 years) fit one u64 key.
        let mut keys: Vec<u64> = Vec::with_capacity(s.len());
        for c in 0..s.len() {
            if s.purchase_days[c] == 0 {
                continue;
            }
            let (x, tx, t) = (s.x[c], s.t_x[c], s.age[c]);
            if x >= 1 << 20 || t >= 1 << 22 || tx > t {
                return Err(AnalyticsError::InvalidInput {
                    field: "summaries",
                    row: c,
                    reason: format!("x = {x}, t_x = {tx}, T = {t} days: out of the supported range or t_x > T"),
                });
            }
            keys.push((u64::from(x) << 44) | (u64::from(tx) << 22) | u64::from(t));
        }
        keys.par_sort_unstable();
        let per_day = unit.per_day();
        let mut rows = BtydRows::default();
        let mut prev = None;
        for k in keys {
            if prev == Some(k) {
                if let Some(w) = rows.weight.last_mut() {
                    *w += 1.0;
                }
                continue;
            }
            prev = Some(k);
            rows.x.push((k >> 44) as u32);
            rows.t_x.push(((k >> 22) & 0x3f_ffff) as f64 * per_day);
            rows.age.push((k & 0x3f_ffff) as f64 * per_day);
            rows.weight.push(1.0);
        }
        Ok(rows)
    }

    /// Number of distinct rows.
    pub fn len(&self) -> usize {
        self.x.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.x.is_empty()
    }

    /// Number of customers (sum of weights).
    pub fn customers(&self) -> f64 {
        self.weight.iter().sum()
    }

    fn validate(&self) -> Result<()> {
        let n = self.x.len();
        for (column, got) in [("t_x", self.t_x.len()), ("age", self.age.len()), ("weight", self.weight.len())] {
            if got != n {
                return Err(AnalyticsError::LengthMismatch { column, expected: n, got });
            }
        }
        for i in 0..n {
            let ok = self.t_x[i].is_finite()
                && self.age[i].is_finite()
                && self.t_x[i] >= 0.0
                && self.t_x[i] <= self.age[i]
                && self.weight[i].is_finite()
                && self.weight[i] >= 0.0
                && (self.x[i] > 0 || self.t_x[i] == 0.0);
            if !ok {
                return Err(AnalyticsError::InvalidInput {
                    field: "btyd rows",
                    row: i,
                    reason: format!(
                        "need 0 ≤ t_x ≤ T (t_x = 0 when x = 0) and weight ≥ 0; got x = {}, t_x = {}, T = {}, weight = {}",
                        self.x[i], self.t_x[i], self.age[i], self.weight[i]
                    ),
                });
            }
        }
        Ok(())
    }
}

/// Result of a BG/NBD fit. Serialises flat: `{"r","alpha","a","b","log_likelihood",
/// "converged","iterations",…}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BgNbdFit {
    /// Fitted parameters (α in the data's time unit).
    #[serde(flatten)]
    pub params: BgNbdParams,
    /// Total log-likelihood at the estimate (in the data's time unit).
    pub log_likelihood: f64,
    /// Whether the final gradient norm is below [`FitOptions::converged_gradient`].
    pub converged: bool,
    /// L-BFGS iterations.
    pub iterations: u64,
    /// Gradient norm of the mean negative log-likelihood in log-parameters at the estimate.
    pub gradient_norm: f64,
    /// Why the optimiser stopped.
    pub termination: String,
    /// Likelihood evaluations (value and gradient together) the optimiser used.
    pub evaluations: u64,
    /// Customers in the fit (sum of weights).
    pub customers: f64,
    /// Distinct (x, t_x, T) rows.
    pub distinct_rows: usize,
    /// Asymptotic standard errors from the observed information (`None` if singular).
    pub std_errors: Option<BgNbdParams>,
}

/// Distinct time values of the rows and, per row, indices into them (so that ln(α + t) is
/// computed once per distinct value and evaluation).
struct TimeTable {
    values: Vec<f64>,
    tx_idx: Vec<u32>,
    t_idx: Vec<u32>,
}

impl TimeTable {
    fn new(t_x: &[f64], age: &[f64], scale: f64) -> TimeTable {
        // Few distinct values (days) among many rows: found with a hash set rather than by
        // sorting every value, and numbered in increasing order through a map.
        type Hasher = foldhash::fast::FixedState;
        let bit = |v: f64| (v * scale).to_bits();
        let mut distinct = std::collections::HashSet::with_hasher(Hasher::default());
        distinct.extend(t_x.iter().chain(age.iter()).map(|&v| bit(v)));
        let mut bits: Vec<u64> = distinct.into_iter().collect();
        bits.sort_unstable_by(|a, b| f64::from_bits(*a).total_cmp(&f64::from_bits(*b)));
        let slot: std::collections::HashMap<u64, u32, Hasher> = bits.iter().enumerate().map(|(i, &b)| (b, i as u32)).collect();
        let find = |v: f64| slot.get(&bit(v)).copied().unwrap_or(0);
        let tx_idx = t_x.par_iter().map(|&v| find(v)).collect();
        let t_idx = age.par_iter().map(|&v| find(v)).collect();
        TimeTable { values: bits.into_iter().map(f64::from_bits).collect(), tx_idx, t_idx }
    }
}

const CHUNK: usize = 4096;

/// Mean negative log-likelihood and its gradient in log-parameters (scaled time).
fn objective(theta: &[f64], rows: &BtydRows, tt: &TimeTable, total_weight: f64) -> (f64, Vec<f64>) {
    let (ll, g) = log_likelihood_sums(theta, rows, tt);
    let grad = g.iter().map(|v| -v / total_weight).collect();
    (-ll / total_weight, grad)
}

/// Total log-likelihood and its gradient w.r.t. (ln r, ln α, ln a, ln b).
fn log_likelihood_sums(theta: &[f64], rows: &BtydRows, tt: &TimeTable) -> (f64, [f64; 4]) {
    let (s, p) = likelihood_pass::<false>(theta, rows, tt);
    (s[0], [s[1] * p[0], s[2] * p[1], s[3] * p[2], s[4] * p[3]])
}

/// Total log-likelihood with its gradient and Hessian w.r.t. (ln r, ln α, ln a, ln b), in one
/// pass: Newton steps with the exact Hessian reach the optimum in about three passes, and the
/// last one's Hessian gives the standard errors (by differences of gradients that took five).
#[allow(clippy::needless_range_loop)] // index notation reads like the matrix algebra
fn log_likelihood_hessian(theta: &[f64], rows: &BtydRows, tt: &TimeTable) -> (f64, [f64; 4], [[f64; 4]; 4]) {
    let (s, p) = likelihood_pass::<true>(theta, rows, tt);
    let g = [s[1], s[2], s[3], s[4]];
    // Natural-parameter second derivatives, upper triangle row by row.
    let mut h = [[0.0; 4]; 4];
    let mut k = 5;
    for i in 0..4 {
        for j in i..4 {
            h[i][j] = s[k];
            h[j][i] = s[k];
            k += 1;
        }
    }
    // To log-parameters θ = ln p: ∂²/∂θi∂θj = p_i p_j ∂²/∂p_i∂p_j + [i = j] p_i ∂/∂p_i.
    let mut ht = [[0.0; 4]; 4];
    for i in 0..4 {
        for j in 0..4 {
            ht[i][j] = p[i] * p[j] * h[i][j] + if i == j { p[i] * g[i] } else { 0.0 };
        }
    }
    (s[0], [g[0] * p[0], g[1] * p[1], g[2] * p[2], g[3] * p[3]], ht)
}

/// One pass over the rows at log-parameters `theta`: the sums of the log-likelihood, its
/// first derivatives in the natural parameters (r, α, a, b) and, with `HESS`, its second
/// derivatives (rr, rα, ra, rb, αα, αa, αb, aa, ab, bb). Also returns (r, α, a, b).
///
/// Per row, ll = A + ln(e^a3 + e^a4) (x > 0) or A + a3 (x = 0), with A the terms in x alone,
/// a3 = −(r+x) ln(α+T) and a4 = ln a − ln(b+x−1) − (r+x) ln(α+t_x). With the weights
/// w3, w4 = e^(a3|a4 − lse), the log-sum-exp's Hessian is w3 H3 + w4 H4 + w3 w4 d dᵀ, d = ∇a3 − ∇a4.
fn likelihood_pass<const HESS: bool>(theta: &[f64], rows: &BtydRows, tt: &TimeTable) -> ([f64; 15], [f64; 4]) {
    let (r, alpha, a, b) = (theta[0].exp(), theta[1].exp(), theta[2].exp(), theta[3].exp());
    let ln_alpha = alpha.ln();
    let (lg_r, lg_b, lg_ab) = (ln_gamma(r), ln_gamma(b), ln_gamma(a + b));
    let (dg_r, dg_b, dg_ab) = (digamma(r), digamma(b), digamma(a + b));
    let (tg_r, tg_b, tg_ab) = if HESS { (trigamma(r), trigamma(b), trigamma(a + b)) } else { (0.0, 0.0, 0.0) };
    let ln_a = a.ln();
    let (inv_alpha, inv_a) = (1.0 / alpha, 1.0 / a);
    let (log_t, inv_t): (Vec<f64>, Vec<f64>) = tt.values.iter().map(|&v| ((alpha + v).ln(), 1.0 / (alpha + v))).unzip();

    struct XConst {
        x: u32,
        a12: f64,
        dr: f64,
        da: f64,
        db: f64,
        ln_a_bx1: f64,
        inv_bx1: f64,
        /// Second derivatives of the x-only terms: rr, aa (= ab), bb.
        hrr: f64,
        haa: f64,
        hbb: f64,
    }
    let x_const = |x: u32| -> XConst {
        if x == 0 {
            return XConst {
                x,
                a12: r * ln_alpha,
                dr: ln_alpha,
                da: 0.0,
                db: 0.0,
                ln_a_bx1: 0.0,
                inv_bx1: 0.0,
                hrr: 0.0,
                haa: 0.0,
                hbb: 0.0,
            };
        }
        let xf = f64::from(x);
        let bx1 = b + xf - 1.0;
        let (hrr, haa, hbb) = if HESS {
            let tg_abx = trigamma(a + b + xf);
            (trigamma(r + xf) - tg_r, tg_ab - tg_abx, tg_ab + trigamma(b + xf) - tg_b - tg_abx)
        } else {
            (0.0, 0.0, 0.0)
        };
        XConst {
            x,
            a12: ln_gamma(r + xf) - lg_r + r * ln_alpha + lg_ab + ln_gamma(b + xf) - lg_b - ln_gamma(a + b + xf),
            dr: digamma(r + xf) - dg_r + ln_alpha,
            da: dg_ab - digamma(a + b + xf),
            db: dg_ab + digamma(b + xf) - dg_b - digamma(a + b + xf),
            ln_a_bx1: ln_a - bx1.ln(),
            inv_bx1: 1.0 / bx1,
            hrr,
            haa,
            hbb,
        }
    };

    let partial: Vec<[f64; 15]> = (0..rows.len())
        .into_par_iter()
        .step_by(CHUNK)
        .map(|start| {
            let end = (start + CHUNK).min(rows.len());
            let mut acc = [0.0f64; 15];
            let mut xc = x_const(rows.x[start]);
            for i in start..end {
                let x = rows.x[i];
                if x != xc.x {
                    xc = x_const(x);
                }
                let w = rows.weight[i];
                let s = r + f64::from(x);
                let (lt, it) = (log_t[tt.t_idx[i] as usize], inv_t[tt.t_idx[i] as usize]);
                let a3 = -s * lt;
                if x == 0 {
                    acc[0] += w * (xc.a12 + a3);
                    acc[1] += w * (xc.dr - lt);
                    acc[2] += w * (r * inv_alpha - s * it);
                    if HESS {
                        acc[6] += w * (inv_alpha - it);
                        acc[9] += w * (-r * inv_alpha * inv_alpha + s * it * it);
                    }
                    continue;
                }
                let (ltx, itx) = (log_t[tt.tx_idx[i] as usize], inv_t[tt.tx_idx[i] as usize]);
                let a4 = xc.ln_a_bx1 - s * ltx;
                // log(e^a3 + e^a4) and the two weights e^(a_k − lse) from one exp:
                // with e = e^−|a3 − a4|, the larger term's weight is 1/(1 + e), the other's e/(1 + e).
                let e = (-(a3 - a4).abs()).exp();
                // ln(1 + e) with e in (0, 1]: `ln` of 1 + e is off by at most an ulp of 1
                // (2e-16 absolute), far below the rounding of the summed log-likelihood, and
                // costs about half of `ln_1p` (this loop is most of the fit).
                let lse = a3.max(a4) + (1.0 + e).ln();
                let w_big = 1.0 / (1.0 + e);
                let (w3, w4) = if a3 >= a4 { (w_big, e * w_big) } else { (e * w_big, w_big) };
                acc[0] += w * (xc.a12 + lse);
                acc[1] += w * (xc.dr - w3 * lt - w4 * ltx);
                acc[2] += w * (r * inv_alpha - s * (w3 * it + w4 * itx));
                acc[3] += w * (xc.da + w4 * inv_a);
                acc[4] += w * (xc.db - w4 * xc.inv_bx1);
                if HESS {
                    let w34 = w3 * w4;
                    let d = [ltx - lt, s * (itx - it), -inv_a, xc.inv_bx1];
                    acc[5] += w * (xc.hrr + w34 * d[0] * d[0]);
                    acc[6] += w * (inv_alpha - w3 * it - w4 * itx + w34 * d[0] * d[1]);
                    acc[7] += w * (w34 * d[0] * d[2]);
                    acc[8] += w * (w34 * d[0] * d[3]);
                    acc[9] += w * (-r * inv_alpha * inv_alpha + s * (w3 * it * it + w4 * itx * itx) + w34 * d[1] * d[1]);
                    acc[10] += w * (w34 * d[1] * d[2]);
                    acc[11] += w * (w34 * d[1] * d[3]);
                    acc[12] += w * (xc.haa - w4 * inv_a * inv_a + w34 * d[2] * d[2]);
                    acc[13] += w * (xc.haa + w34 * d[2] * d[3]);
                    acc[14] += w * (xc.hbb + w4 * xc.inv_bx1 * xc.inv_bx1 + w34 * d[3] * d[3]);
                }
            }
            acc
        })
        .collect();
    // Fixed summation order: deterministic regardless of scheduling.
    let mut tot = [0.0f64; 15];
    for p in &partial {
        for k in 0..15 {
            tot[k] += p[k];
        }
    }
    (tot, [r, alpha, a, b])
}

/// Fits BG/NBD by maximum likelihood on aggregated rows (time unit = the rows' unit).
pub fn fit(rows: &BtydRows, opts: &FitOptions) -> Result<BgNbdFit> {
    rows.validate()?;
    let total_weight = rows.customers();
    if rows.is_empty() || total_weight <= 0.0 {
        return Err(AnalyticsError::InsufficientData { model: "BG/NBD", reason: "no customers".into() });
    }
    let repeat_weight: f64 = (0..rows.len()).filter(|&i| rows.x[i] > 0).map(|i| rows.weight[i]).sum();
    if repeat_weight <= 0.0 {
        return Err(AnalyticsError::InsufficientData {
            model: "BG/NBD",
            reason: "no customer with a repeat purchase (the dropout process is not identified)".into(),
        });
    }
    let max_age = rows.age.iter().copied().fold(0.0, f64::max);
    if max_age <= 0.0 {
        return Err(AnalyticsError::InsufficientData { model: "BG/NBD", reason: "all customers have age 0".into() });
    }
    let scale = 1.0 / max_age;
    let start = warm_start(rows, scale, opts);
    let tt = TimeTable::new(&rows.t_x, &rows.age, scale);
    let f = |theta: &[f64]| objective(theta, rows, &tt, total_weight);
    // The mean negative log-likelihood with its Hessian, in one pass.
    let with_hessian = |theta: &[f64]| {
        let (ll, g, h) = log_likelihood_hessian(theta, rows, &tt);
        (-ll / total_weight, g.map(|v| -v / total_weight), h.map(|row| row.map(|v| -v / total_weight)))
    };
    // From a sample fit, Newton steps reach the optimum in about three passes over the data;
    // L-BFGS takes over if they do not (and the Hessian is then computed at its optimum).
    let (m, hess) = match newton(with_hessian, start, opts, "Newton steps converged") {
        Ok(found) => found,
        Err(best) => {
            let m = minimize(&f, best, opts).map_err(|reason| AnalyticsError::FitFailed { model: "BG/NBD", reason })?;
            let hess = with_hessian(&m.x).2;
            (m, hess)
        }
    };
    let th = &m.x;
    let params = BgNbdParams { r: th[0].exp(), alpha: th[1].exp() / scale, a: th[2].exp(), b: th[3].exp() };
    // ll in the data's unit: scaling time by s changes each customer's ll by −x ln s.
    let sum_wx: f64 = (0..rows.len()).map(|i| rows.weight[i] * f64::from(rows.x[i])).sum();
    let log_likelihood = -m.cost * total_weight + sum_wx * scale.ln();
    // The observed information of the total log-likelihood; the time scale changes only
    // ln α, by a constant, so the log-parameters' standard errors are the same in any unit.
    let info = hess.map(|row| row.map(|v| v * total_weight));
    let std_errors = std_errors_from_information(info).map(|se| BgNbdParams {
        r: params.r * se[0],
        alpha: params.alpha * se[1],
        a: params.a * se[2],
        b: params.b * se[3],
    });
    Ok(BgNbdFit {
        params,
        log_likelihood,
        converged: m.gradient_norm < opts.converged_gradient && th.iter().all(|v| v.is_finite()),
        iterations: m.iterations,
        gradient_norm: m.gradient_norm,
        termination: m.termination,
        evaluations: m.evaluations,
        customers: total_weight,
        distinct_rows: rows.len(),
        std_errors,
    })
}

/// Distinct rows above which the fit starts from a fit on a sample of them.
const WARM_START_ROWS: usize = 50_000;

/// Start values of the full fit (log-parameters in scaled time). On a large base, the optimum
/// of a systematic sample of about 20,000 distinct rows (every k-th of the sorted rows, so
/// every part of the (x, t_x, T) range is represented): the full fit then only polishes it,
/// in a third of the likelihood evaluations. The estimate is still the full data's optimum to
/// the optimiser's tolerance; the sample only moves where the search begins.
fn warm_start(rows: &BtydRows, scale: f64, opts: &FitOptions) -> Vec<f64> {
    let cold = vec![0.1; 4];
    if rows.len() <= WARM_START_ROWS {
        return cold;
    }
    let step = rows.len() / 20_000;
    let mut sample = BtydRows::default();
    for i in (0..rows.len()).step_by(step) {
        sample.x.push(rows.x[i]);
        sample.t_x.push(rows.t_x[i]);
        sample.age.push(rows.age[i]);
        sample.weight.push(rows.weight[i]);
    }
    if sample.x.iter().all(|&x| x == 0) {
        return cold;
    }
    let tt = TimeTable::new(&sample.t_x, &sample.age, scale);
    let weight = sample.customers();
    let f = |theta: &[f64]| objective(theta, &sample, &tt, weight);
    match minimize(&f, cold.clone(), opts) {
        Ok(m) if m.x.iter().all(|v| v.is_finite()) => m.x,
        _ => cold,
    }
}

/// Standard errors from the observed information matrix (minus the log-likelihood's Hessian):
/// the square roots of its inverse's diagonal; `None` if it is singular or not positive there.
#[allow(clippy::needless_range_loop)] // index notation reads like the matrix algebra
pub(crate) fn std_errors_from_information<const N: usize>(info: [[f64; N]; N]) -> Option<[f64; N]> {
    let inv = invert(info)?;
    let mut se = [0.0; N];
    for i in 0..N {
        if inv[i][i].is_nan() || inv[i][i] <= 0.0 {
            return None;
        }
        se[i] = inv[i][i].sqrt();
    }
    Some(se)
}

/// Gauss-Jordan inversion with partial pivoting (small matrices only).
#[allow(clippy::needless_range_loop)]
pub(crate) fn invert<const N: usize>(mut m: [[f64; N]; N]) -> Option<[[f64; N]; N]> {
    let mut inv = [[0.0; N]; N];
    for (i, row) in inv.iter_mut().enumerate() {
        row[i] = 1.0;
    }
    for col in 0..N {
        let pivot = (col..N).max_by(|&i, &j| m[i][col].abs().total_cmp(&m[j][col].abs()))?;
        if m[pivot][col].is_nan() || m[pivot][col].abs() <= 1e-300 {
            return None;
        }
        m.swap(col, pivot);
        inv.swap(col, pivot);
        let p = m[col][col];
        for k in 0..N {
            m[col][k] /= p;
            inv[col][k] /= p;
        }
        for i in 0..N {
            if i != col {
                let f = m[i][col];
                for k in 0..N {
                    m[i][k] -= f * m[col][k];
                    inv[i][k] -= f * inv[col][k];
                }
            }
        }
    }
    Some(inv)
}

impl BgNbdParams {
    /// Checks that all four parameters are finite and positive.
    pub fn validate(&self) -> Result<()> {
        for (field, v) in [("r", self.r), ("alpha", self.alpha), ("a", self.a), ("b", self.b)] {
            if !(v.is_finite() && v > 0.0) {
                return Err(AnalyticsError::InvalidConfig { field, reason: format!("BG/NBD parameter must be > 0, got {v}") });
            }
        }
        Ok(())
    }

    /// Log-likelihood of one customer's (x, t_x, T).
    pub fn log_likelihood(&self, x: u32, t_x: f64, age: f64) -> f64 {
        let BgNbdParams { r, alpha, a, b } = *self;
        let xf = f64::from(x);
        let a1 = ln_gamma(r + xf) - ln_gamma(r) + r * alpha.ln();
        let a2 = ln_gamma(a + b) + ln_gamma(b + xf) - ln_gamma(b) - ln_gamma(a + b + xf);
        let a3 = -(r + xf) * (alpha + age).ln();
        if x == 0 {
            return a1 + a2 + a3;
        }
        let a4 = a.ln() - (b + xf - 1.0).ln() - (r + xf) * (alpha + t_x).ln();
        let m = a3.max(a4);
        a1 + a2 + m + (-(a3 - a4).abs()).exp().ln_1p()
    }

    /// P(alive | x, t_x, T) = 1 / (1 + \[x > 0\] · a/(b+x−1) · ((α+T)/(α+t_x))^(r+x)); 1 when x = 0.
    pub fn p_alive(&self, x: u32, t_x: f64, age: f64) -> f64 {
        if x == 0 {
            return 1.0;
        }
        let BgNbdParams { r, alpha, a, b } = *self;
        let xf = f64::from(x);
        let log_odds_dead = a.ln() - (b + xf - 1.0).ln() + (r + xf) * ((alpha + age).ln() - (alpha + t_x).ln());
        // Logistic in a form that cannot overflow.
        if log_odds_dead > 0.0 {
            let e = (-log_odds_dead).exp();
            e / (1.0 + e)
        } else {
            1.0 / (1.0 + log_odds_dead.exp())
        }
    }

    /// E[X(t) | x, t_x, T]: expected purchases in the next `t` time units (FHL 2005 eq. 10),
    /// = P(alive) × [`Self::expected_purchases_if_alive`].
    pub fn expected_purchases(&self, x: u32, t_x: f64, age: f64, t: f64) -> f64 {
        self.p_alive(x, t_x, age) * self.expected_purchases_if_alive(x, age, t)
    }

    /// E[X(t)] for a customer just acquired (FHL 2005 eq. 9): purchases in (0, t] after the
    /// first purchase.
    pub fn expected_purchases_new_customer(&self, t: f64) -> f64 {
        self.expected_purchases_if_alive(0, 0.0, t)
    }

    /// Expected purchases in the next `t` units for a customer known to be alive at age T with x
    /// repeat purchases: E_p[(1 − (1 + p·t/(α+T))^−(r+x)) / p] over the posterior p ~ Beta(a, b+x);
    /// in closed form (a+b+x−1)/(a−1) · [1 − ((α+T)/(α+T+t))^(r+x) ₂F₁(r+x, b+x; a+b+x−1; t/(α+T+t))].
    /// Depends on (x, T, t) only, so it can be shared by customers with equal (x, T).
    pub fn expected_purchases_if_alive(&self, x: u32, age: f64, t: f64) -> f64 {
        if t.is_nan() || t <= 0.0 {
            return 0.0;
        }
        let BgNbdParams { r, alpha, a, b } = *self;
        let xf = f64::from(x);
        let s = r + xf;
        let bx = b + xf;
        let u = t / (alpha + age);
        // A dropout distribution concentrated on one p (a fit to a base without heterogeneity
        // in dropout drifts to huge a and b): the expectation over p is its value at the mean,
        // to the relative variance b/(a(a+b+1)) < 1e-10 — and the 2F1 there, with c ~ a + b,
        // would take a million series terms per call.
        if bx / (a * (a + bx + 1.0)) < 1e-10 {
            let p = a / (a + bx);
            return -(-s * (p * u).ln_1p()).exp_m1() / p;
        }
        // A huge a + b + x with a moderate a (p near 0 for everyone): the binomial series in
        // p·u converges fast whatever u, as the moments E[p^j] = (a)_j/(a+b+x)_j are tiny; the
        // closed form's 2F1 would have c ~ a + b + x, a million series terms per call.
        if a + bx > 1e6 && u * (a + s + 50.0) / (a + bx) <= 0.25 {
            return if_alive_series(s, a, bx, u);
        }
        // Small horizons: the binomial series in u has no removable singularities; used while
        // its terms shrink at least 4× per step.
        if u * ((s + 1.0) / (a + bx)).max(1.0) <= 0.25 {
            return if_alive_series(s, a, bx, u);
        }
        // The closed form divides by (a − 1), and for x = 0 has a + b − 1 as the 2F1's c; both
        // are removable singularities, next to which 1 − 2F1(…) cancels. Within 1e-3 of them,
        // interpolate (cubic) through a0 ± 1e-3, a0 ± 2e-3, where the cancellation costs
        // ~1e-10 and the interpolation error is O(1e-12).
        const H: f64 = 1e-3;
        for a0 in [1.0, 1.0 - bx] {
            if (a - a0).abs() < H && a0 - 2.0 * H > 0.0 {
                let t = (a - a0) / H;
                let f = |k: f64| if_alive_closed(s, a0 + k * H, bx, u);
                return f(-2.0) * (t + 1.0) * (t - 1.0) * (t - 2.0) / -12.0
                    + f(-1.0) * (t + 2.0) * (t - 1.0) * (t - 2.0) / 6.0
                    + f(1.0) * (t + 2.0) * (t + 1.0) * (t - 2.0) / -6.0
                    + f(2.0) * (t + 2.0) * (t + 1.0) * (t - 1.0) / 12.0;
            }
        }
        if_alive_closed(s, a, bx, u)
    }
}

/// Σ_{k≥1} (s)_k (a)_{k−1} / ((a+bx)_{k−1} k!) (−1)^{k+1} u^k: the expectation over p of the
/// binomial series of (1 − (1+pu)^−s)/p, using E[p^j] = (a)_j/(a+bx)_j.
fn if_alive_series(s: f64, a: f64, bx: f64, u: f64) -> f64 {
    let mut term = s * u;
    let mut sum = term;
    for k in 1..2000 {
        let kf = f64::from(k);
        term *= -u * (s + kf) * (a + kf - 1.0) / ((a + bx + kf - 1.0) * (kf + 1.0));
        sum += term;
        if term.abs() <= 1e-17 * sum.abs() {
            break;
        }
    }
    sum
}

/// The closed form with ₂F₁, u = t/(α+T), z = u/(1+u), (1−z)^s folded into the 2F1.
fn if_alive_closed(s: f64, a: f64, bx: f64, u: f64) -> f64 {
    let c = a + bx - 1.0;
    let z = u / (1.0 + u);
    let g = hyp2f1_scaled(s, bx, c, z, s);
    c / (a - 1.0) * (1.0 - g)
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: BgNbdParams = BgNbdParams { r: 0.243, alpha: 4.414, a: 0.793, b: 2.426 };

    #[test]
    fn gradient_matches_finite_differences() {
        let rows =
            BtydRows::aggregate(&[0, 0, 1, 3, 7, 2], &[0.0, 0.0, 5.0, 20.0, 30.5, 1.0], &[10.0, 35.0, 30.0, 31.0, 38.0, 2.0]).unwrap();
        assert_eq!(rows.len(), 6);
        let tt = TimeTable::new(&rows.t_x, &rows.age, 1.0 / 38.0);
        let theta = [-0.3, 0.2, -0.1, 0.4];
        let (_, g) = log_likelihood_sums(&theta, &rows, &tt);
        for j in 0..4 {
            let h = 1e-6;
            let mut up = theta;
            let mut dn = theta;
            up[j] += h;
            dn[j] -= h;
            let num = (log_likelihood_sums(&up, &rows, &tt).0 - log_likelihood_sums(&dn, &rows, &tt).0) / (2.0 * h);
            assert!((num - g[j]).abs() < 1e-6 * (1.0 + num.abs()), "param {j}: analytic {} numeric {num}", g[j]);
        }
        // the aggregated sum equals the per-customer log-likelihoods (scaled time)
        let s = 1.0 / 38.0;
        let p = BgNbdParams { r: theta[0].exp(), alpha: theta[1].exp(), a: theta[2].exp(), b: theta[3].exp() };
        let direct: f64 = (0..rows.len()).map(|i| rows.weight[i] * p.log_likelihood(rows.x[i], rows.t_x[i] * s, rows.age[i] * s)).sum();
        assert!((direct - log_likelihood_sums(&theta, &rows, &tt).0).abs() < 1e-10);
    }

    #[test]
    fn hessian_matches_central_differences_of_the_gradient() {
        let rows = BtydRows::aggregate(
            &[0, 0, 1, 3, 7, 2, 12, 1],
            &[0.0, 0.0, 5.0, 20.0, 30.5, 1.0, 37.0, 36.0],
            &[10.0, 35.0, 30.0, 31.0, 38.0, 2.0, 38.0, 36.5],
        )
        .unwrap();
        let tt = TimeTable::new(&rows.t_x, &rows.age, 1.0 / 38.0);
        for theta in [[-0.3, 0.2, -0.1, 0.4], [-1.4, -2.0, -0.2, 0.9], [0.5, 1.5, 1.0, -1.0]] {
            let (ll, g, h) = log_likelihood_hessian(&theta, &rows, &tt);
            let (ll0, g0) = log_likelihood_sums(&theta, &rows, &tt);
            assert_eq!((ll, g), (ll0, g0), "the Hessian pass gives the same value and gradient");
            for j in 0..4 {
                let step = 1e-5;
                let (mut up, mut dn) = (theta, theta);
                up[j] += step;
                dn[j] -= step;
                let (gu, gd) = (log_likelihood_sums(&up, &rows, &tt).1, log_likelihood_sums(&dn, &rows, &tt).1);
                for i in 0..4 {
                    let num = (gu[i] - gd[i]) / (2.0 * step);
                    assert!(
                        (num - h[i][j]).abs() < 1e-6 * (1.0 + num.abs()),
                        "θ {theta:?}, H[{i}][{j}]: analytic {} numeric {num}",
                        h[i][j]
                    );
                }
            }
        }
    }

    #[test]
    fn aggregation_counts_identical_rows() {
        let rows = BtydRows::aggregate(&[1, 0, 1, 0], &[2.0, 0.0, 2.0, 0.0], &[5.0, 5.0, 5.0, 4.0]).unwrap();
        assert_eq!(rows.x, vec![0, 0, 1]);
        assert_eq!(rows.age, vec![4.0, 5.0, 5.0]);
        assert_eq!(rows.weight, vec![1.0, 1.0, 2.0]);
        assert!(BtydRows::aggregate(&[1], &[6.0], &[5.0]).is_err());
        assert!(BtydRows::aggregate(&[0], &[1.0], &[5.0]).is_err());
        assert!(BtydRows::aggregate(&[1], &[f64::NAN], &[5.0]).is_err());
    }

    #[test]
    fn p_alive_closed_form() {
        assert_eq!(P.p_alive(0, 0.0, 30.0), 1.0);
        let (x, tx, t) = (2u32, 30.43, 38.86);
        let want = 1.0 / (1.0 + P.a / (P.b + 1.0) * ((P.alpha + t) / (P.alpha + tx)).powf(P.r + 2.0));
        assert!((P.p_alive(x, tx, t) - want).abs() < 1e-15);
        // bought on the last day: only the dropout chance after that purchase remains
        assert!((P.p_alive(5, 38.0, 38.0) - 1.0 / (1.0 + P.a / (P.b + 4.0))).abs() < 1e-15);
        // long silence after a burst: nearly dead
        assert!(P.p_alive(50, 1.0, 300.0) < 1e-10);
    }

    #[test]
    fn series_and_closed_form_agree_where_both_apply() {
        for &(x, age) in &[(0u32, 0.0), (0, 30.0), (3, 20.0), (12, 50.0)] {
            for &u in &[0.02, 0.1, 0.2] {
                let t = u * (P.alpha + age);
                let s = P.r + f64::from(x);
                let bx = P.b + f64::from(x);
                let a = if_alive_series(s, P.a, bx, u);
                let b = if_alive_closed(s, P.a, bx, u);
                assert!(((a - b) / b).abs() < 1e-9, "x={x} T={age} u={u}: {a} vs {b}");
                let _ = t;
            }
        }
    }

    /// Huge a and b (a fit without dropout heterogeneity): the fixed-p limit, at once.
    #[test]
    fn concentrated_dropout_is_the_fixed_p_limit() {
        let p = BgNbdParams { r: 2.3e-5, alpha: 0.073, a: 1.05e17, b: 5.1e16 };
        let start = std::time::Instant::now();
        for t in [1.0, 26.0, 100.0] {
            let e = p.expected_purchases_if_alive(3, 30.0, t);
            let q = p.a / (p.a + p.b + 3.0);
            let want = (1.0 - (1.0 + q * t / (p.alpha + 30.0)).powf(-(p.r + 3.0))) / q;
            assert!((e - want).abs() < 1e-12 * want, "{e} vs {want}");
            // just below the switch the closed form agrees
            let near = BgNbdParams { r: 0.9, alpha: 2.0, a: 3.0e5, b: 1.0e5 };
            let (u, s) = (t / (near.alpha + 30.0), near.r + 3.0);
            let fixed = -(-s * (near.a / (near.a + near.b + 3.0) * u).ln_1p()).exp_m1() / (near.a / (near.a + near.b + 3.0));
            let got = near.expected_purchases_if_alive(3, 30.0, t);
            assert!((got - fixed).abs() < 1e-5 * fixed, "{got} vs {fixed}");
        }
        assert!(start.elapsed().as_secs() < 5);
    }

    #[test]
    fn removable_singularities_are_smooth() {
        // a → 1 and a + b − 1 → 0 (x = 0): values on both sides and at the point agree.
        for base in [BgNbdParams { a: 1.0, ..P }, BgNbdParams { a: 0.6, b: 0.4, ..P }] {
            let at = base.expected_purchases_if_alive(0, 10.0, 52.0);
            let lo = BgNbdParams { a: base.a - 1e-3, ..base }.expected_purchases_if_alive(0, 10.0, 52.0);
            let hi = BgNbdParams { a: base.a + 1e-3, ..base }.expected_purchases_if_alive(0, 10.0, 52.0);
            assert!(at.is_finite() && at > 0.0);
            assert!((at - 0.5 * (lo + hi)).abs() < 1e-5 * at, "{lo} {at} {hi}");
        }
    }
}
