//! The Gamma-Gamma spend model (Fader & Hardie 2013) and discounted CLV.
//!
//! A customer's purchase values are Gamma(p, ν) with ν ~ Gamma(q, γ); the data per repeat
//! customer are x (repeat purchases) and m (their mean value). Fitted by exact maximum
//! likelihood over customers with x ≥ 1 and m > 0 (others carry no information on spend
//! variation, or a non-positive mean that the model cannot have; they are skipped), with
//! identical (x, m) rows aggregated. m is divided by its mean before fitting (the model is
//! scale-equivariant in γ), so the start point ln θ = 0.1 (as in `lifetimes`) suits any
//! currency unit; γ and the log-likelihood are mapped back.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::bgnbd::{std_errors_from_information, BgNbdParams};
use crate::optim::{minimize, newton, FitOptions};
use crate::special::{digamma, ln_gamma, trigamma};
use crate::{AnalyticsError, Result, TimeUnit};

/// Gamma-Gamma parameters (all > 0); γ is in the spend unit of the data.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GammaGammaParams {
    /// Shape of the per-purchase value distribution.
    pub p: f64,
    /// Shape of the gamma mixing distribution of ν.
    pub q: f64,
    /// Scale of the gamma mixing distribution of ν (spend unit).
    pub gamma: f64,
}

/// Result of a Gamma-Gamma fit; serialises flat (`{"p","q","gamma","log_likelihood",…}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GammaGammaFit {
    /// Fitted parameters.
    #[serde(flatten)]
    pub params: GammaGammaParams,
    /// Total log-likelihood at the estimate (density of m in the data's spend unit).
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
    /// Customers used (x ≥ 1 and m > 0).
    pub customers: f64,
    /// Asymptotic standard errors (`None` if the information matrix is singular).
    pub std_errors: Option<GammaGammaParams>,
}

struct Rows {
    x: Vec<u32>,
    m: Vec<f64>,
    weight: Vec<f64>,
    // Per-row constants of the log-likelihood: ln m and ln x.
    ln_m: Vec<f64>,
    ln_x: Vec<f64>,
}

const CHUNK: usize = 4096;

/// Total log-likelihood (scaled m) and gradient w.r.t. (ln p, ln q, ln γ).
fn ll_sums(theta: &[f64], rows: &Rows) -> (f64, [f64; 3]) {
    let (t, n) = ll_pass::<false>(theta, rows);
    (t[0], [t[1] * n[0], t[2] * n[1], t[3] * n[2]])
}

/// Total log-likelihood with its gradient and Hessian w.r.t. (ln p, ln q, ln γ), in one pass
/// (for Newton steps with the exact Hessian; the last one's gives the standard errors).
fn ll_hessian(theta: &[f64], rows: &Rows) -> (f64, [f64; 3], [[f64; 3]; 3]) {
    let (t, n) = ll_pass::<true>(theta, rows);
    let g = [t[1], t[2], t[3]];
    let h = [[t[4], t[5], t[6]], [t[5], t[7], t[8]], [t[6], t[8], t[9]]];
    // To log-parameters θ = ln v: ∂²/∂θi∂θj = v_i v_j ∂²/∂v_i∂v_j + [i = j] v_i ∂/∂v_i.
    let ht: [[f64; 3]; 3] =
        std::array::from_fn(|i| std::array::from_fn(|j| n[i] * n[j] * h[i][j] + if i == j { n[i] * g[i] } else { 0.0 }));
    (t[0], [g[0] * n[0], g[1] * n[1], g[2] * n[2]], ht)
}

/// One pass over the rows at log-parameters `theta`: the sums of the log-likelihood, its first
/// derivatives in (p, q, γ) and, with `HESS`, its second derivatives (pp, pq, pγ, qq, qγ, γγ).
/// Also returns (p, q, γ).
fn ll_pass<const HESS: bool>(theta: &[f64], rows: &Rows) -> ([f64; 10], [f64; 3]) {
    let (p, q, g) = (theta[0].exp(), theta[1].exp(), theta[2].exp());
    let (lg_q, dg_q, ln_g) = (ln_gamma(q), digamma(q), g.ln());
    let tg_q = if HESS { trigamma(q) } else { 0.0 };
    let inv_g = 1.0 / g;
    let partial: Vec<[f64; 10]> = (0..rows.x.len())
        .into_par_iter()
        .step_by(CHUNK)
        .map(|start| {
            let end = (start + CHUNK).min(rows.x.len());
            let mut acc = [0.0; 10];
            // per-x constants, recomputed when x changes (rows are sorted by x)
            let mut cur_x = u32::MAX;
            let (mut lgd, mut dg_pxq, mut dg_px, mut tg_pxq, mut tg_px) = (0.0, 0.0, 0.0, 0.0, 0.0);
            for i in start..end {
                let x = rows.x[i];
                let xf = f64::from(x);
                if x != cur_x {
                    cur_x = x;
                    lgd = ln_gamma(p * xf + q) - ln_gamma(p * xf);
                    dg_pxq = digamma(p * xf + q);
                    dg_px = digamma(p * xf);
                    if HESS {
                        tg_pxq = trigamma(p * xf + q);
                        tg_px = trigamma(p * xf);
                    }
                }
                let w = rows.weight[i];
                let xmg = xf * rows.m[i] + g;
                let ln_xmg = xmg.ln();
                let px = p * xf;
                acc[0] += w * (lgd - lg_q + q * ln_g + (px - 1.0) * rows.ln_m[i] + px * rows.ln_x[i] - (px + q) * ln_xmg);
                acc[1] += w * xf * (dg_pxq - dg_px + rows.ln_m[i] + rows.ln_x[i] - ln_xmg);
                acc[2] += w * (dg_pxq - dg_q + ln_g - ln_xmg);
                acc[3] += w * (q * inv_g - (px + q) / xmg);
                if HESS {
                    let inv_xmg = 1.0 / xmg;
                    acc[4] += w * xf * xf * (tg_pxq - tg_px);
                    acc[5] += w * xf * tg_pxq;
                    acc[6] -= w * xf * inv_xmg;
                    acc[7] += w * (tg_pxq - tg_q);
                    acc[8] += w * (inv_g - inv_xmg);
                    acc[9] += w * (-q * inv_g * inv_g + (px + q) * inv_xmg * inv_xmg);
                }
            }
            acc
        })
        .collect();
    let mut t = [0.0; 10];
    for a in &partial {
        for k in 0..10 {
            t[k] += a[k];
        }
    }
    (t, [p, q, g])
}

/// Fits Gamma-Gamma on one row per customer: `x` repeat purchases and `m` mean repeat value.
/// Customers with x = 0 or m ≤ 0 are skipped.
pub fn fit(x: &[u32], m: &[f64], opts: &FitOptions) -> Result<GammaGammaFit> {
    if m.len() != x.len() {
        return Err(AnalyticsError::LengthMismatch { column: "m", expected: x.len(), got: m.len() });
    }
    if let Some(row) = m.iter().position(|v| !v.is_finite()) {
        return Err(AnalyticsError::InvalidInput { field: "m", row, reason: "not a finite number".into() });
    }
    let mut keys: Vec<(u32, u64)> = (0..x.len()).filter(|&i| x[i] >= 1 && m[i] > 0.0).map(|i| (x[i], m[i].to_bits())).collect();
    if keys.len() < 2 {
        return Err(AnalyticsError::InsufficientData {
            model: "Gamma-Gamma",
            reason: format!("{} customers with a repeat purchase and positive spend; need at least 2", keys.len()),
        });
    }
    keys.par_sort_unstable();
    let mut xs = Vec::with_capacity(keys.len());
    let mut ms = Vec::with_capacity(keys.len());
    let mut ws: Vec<f64> = Vec::with_capacity(keys.len());
    for (kx, km) in keys {
        if xs.last() == Some(&kx) && ms.last().map(|v: &f64| v.to_bits()) == Some(km) {
            if let Some(w) = ws.last_mut() {
                *w += 1.0;
            }
        } else {
            xs.push(kx);
            ms.push(f64::from_bits(km));
            ws.push(1.0);
        }
    }
    let total: f64 = ws.iter().sum();
    let scale = ms.iter().zip(&ws).map(|(m, w)| m * w).sum::<f64>() / total;
    let m_scaled: Vec<f64> = ms.iter().map(|v| v / scale).collect();
    let rows = Rows {
        ln_m: m_scaled.iter().map(|v| v.ln()).collect(),
        ln_x: xs.iter().map(|&v| f64::from(v).ln()).collect(),
        x: xs,
        m: m_scaled,
        weight: ws,
    };
    let f = |theta: &[f64]| {
        let (ll, g) = ll_sums(theta, &rows);
        (-ll / total, g.iter().map(|v| -v / total).collect())
    };
    let with_hessian = |theta: &[f64]| {
        let (ll, g, h) = ll_hessian(theta, &rows);
        (-ll / total, g.map(|v| -v / total), h.map(|row| row.map(|v| -v / total)))
    };
    // As in BG/NBD: on a large base, fit a systematic sample of the sorted rows first, then
    // Newton steps with the exact Hessian on all rows (L-BFGS if they do not converge).
    let start = warm_start(&rows, opts).unwrap_or_else(|| vec![0.1; 3]);
    let (res, hess) = match newton(with_hessian, start, opts, "Newton steps converged") {
        Ok(found) => found,
        Err(best) => {
            let m = minimize(&f, best, opts).map_err(|reason| AnalyticsError::FitFailed { model: "Gamma-Gamma", reason })?;
            let hess = with_hessian(&m.x).2;
            (m, hess)
        }
    };
    let th = &res.x;
    let params = GammaGammaParams { p: th[0].exp(), q: th[1].exp(), gamma: th[2].exp() * scale };
    let std_errors = std_errors_from_information(hess.map(|row| row.map(|v| v * total))).map(|se| GammaGammaParams {
        p: params.p * se[0],
        q: params.q * se[1],
        gamma: params.gamma * se[2],
    });
    Ok(GammaGammaFit {
        params,
        // density of m = density of m/scale divided by scale
        log_likelihood: -res.cost * total - total * scale.ln(),
        converged: res.gradient_norm < opts.converged_gradient && th.iter().all(|v| v.is_finite()),
        iterations: res.iterations,
        gradient_norm: res.gradient_norm,
        termination: res.termination,
        evaluations: res.evaluations,
        customers: total,
        std_errors,
    })
}

/// Distinct rows above which the fit starts from a fit on a sample of them.
const WARM_START_ROWS: usize = 50_000;

/// The optimum of a systematic sample of about 20,000 of the (sorted) rows, as the start of the
/// full fit; `None` on a small base or if the sample fit fails.
fn warm_start(rows: &Rows, opts: &FitOptions) -> Option<Vec<f64>> {
    if rows.x.len() <= WARM_START_ROWS {
        return None;
    }
    let step = rows.x.len() / 20_000;
    let pick = |v: &[f64]| -> Vec<f64> { v.iter().step_by(step).copied().collect() };
    let sample = Rows {
        x: rows.x.iter().step_by(step).copied().collect(),
        m: pick(&rows.m),
        weight: pick(&rows.weight),
        ln_m: pick(&rows.ln_m),
        ln_x: pick(&rows.ln_x),
    };
    let total: f64 = sample.weight.iter().sum();
    let f = |theta: &[f64]| {
        let (ll, g) = ll_sums(theta, &sample);
        (-ll / total, g.iter().map(|v| -v / total).collect::<Vec<f64>>())
    };
    minimize(&f, vec![0.1; 3], opts).ok().map(|m| m.x).filter(|x| x.iter().all(|v| v.is_finite()))
}

impl GammaGammaParams {
    /// Log-likelihood of one customer's mean repeat value m over x ≥ 1 purchases.
    pub fn log_likelihood(&self, x: u32, m: f64) -> f64 {
        let GammaGammaParams { p, q, gamma } = *self;
        let xf = f64::from(x);
        let px = p * xf;
        ln_gamma(px + q) - ln_gamma(px) - ln_gamma(q) + q * gamma.ln() + (px - 1.0) * m.ln() + px * xf.ln()
            - (px + q) * (xf * m + gamma).ln()
    }

    /// Population mean purchase value p·γ/(q − 1); `None` when q ≤ 1 (the mean is infinite).
    pub fn population_mean(&self) -> Option<f64> {
        (self.q > 1.0).then(|| self.p * self.gamma / (self.q - 1.0))
    }

    /// E[M | x, m] = (γ + x·m)·p / (p·x + q − 1) for x ≥ 1; the population mean for x = 0.
    /// `None` when q ≤ 1.
    pub fn expected_order_value(&self, x: u32, m: f64) -> Option<f64> {
        if x == 0 {
            return self.population_mean();
        }
        let xf = f64::from(x);
        (self.q > 1.0).then(|| (self.gamma + xf * m) * self.p / (self.p * xf + self.q - 1.0))
    }
}

/// Σ_{i=1..H} (E[X(30i)] − E[X(30(i−1))]) / (1+d)^i divided by P(alive), i.e. the discounted
/// expected purchases over H months for an alive customer with (x, T); 30 days are converted
/// into the model's `unit`. Shared by all customers with equal (x, T).
pub fn discounted_purchases_if_alive(bg: &BgNbdParams, unit: TimeUnit, x: u32, age: f64, months: u32, monthly_discount: f64) -> f64 {
    let month = unit.from_days(30.0);
    let mut prev = 0.0;
    let mut total = 0.0;
    let mut factor = 1.0;
    for i in 1..=months {
        let cur = bg.expected_purchases_if_alive(x, age, month * f64::from(i));
        factor /= 1.0 + monthly_discount;
        total += (cur - prev) * factor;
        prev = cur;
    }
    total
}

/// Discounted CLV over `months` months at `monthly_discount`:
/// Σ_{i=1..H} (E[X(30i) | x, t_x, T] − E[X(30(i−1)) | x, t_x, T]) · E\[M\] / (1+d)^i,
/// with t_x, T in the model's `unit`.
#[allow(clippy::too_many_arguments)]
pub fn clv(
    bg: &BgNbdParams,
    unit: TimeUnit,
    x: u32,
    t_x: f64,
    age: f64,
    expected_order_value: f64,
    months: u32,
    monthly_discount: f64,
) -> f64 {
    bg.p_alive(x, t_x, age) * expected_order_value * discounted_purchases_if_alive(bg, unit, x, age, months, monthly_discount)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hessian_matches_central_differences_of_the_gradient() {
        let rows = Rows {
            x: vec![1, 1, 2, 5, 9],
            m: vec![0.4, 1.3, 0.9, 2.2, 1.0],
            weight: vec![3.0, 1.0, 2.0, 1.0, 4.0],
            ln_m: [0.4f64, 1.3, 0.9, 2.2, 1.0].map(f64::ln).to_vec(),
            ln_x: [1.0f64, 1.0, 2.0, 5.0, 9.0].map(f64::ln).to_vec(),
        };
        for theta in [[0.5, 0.3, -0.2], [1.8, 1.2, 0.9], [-0.7, 2.0, 0.1]] {
            let (ll, g, h) = ll_hessian(&theta, &rows);
            assert_eq!((ll, g), ll_sums(&theta, &rows), "the Hessian pass gives the same value and gradient");
            for j in 0..3 {
                let step = 1e-5;
                let (mut up, mut dn) = (theta, theta);
                up[j] += step;
                dn[j] -= step;
                let (gu, gd) = (ll_sums(&up, &rows).1, ll_sums(&dn, &rows).1);
                for i in 0..3 {
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
    fn gradient_matches_finite_differences() {
        let rows = Rows {
            x: vec![1, 1, 2, 5],
            m: vec![0.5, 2.0, 1.1, 0.9],
            weight: vec![1.0, 2.0, 1.0, 3.0],
            ln_m: vec![0.5f64.ln(), 2.0f64.ln(), 1.1f64.ln(), 0.9f64.ln()],
            ln_x: vec![0.0, 0.0, 2f64.ln(), 5f64.ln()],
        };
        let theta = [0.7, 0.3, -0.2];
        let (ll, g) = ll_sums(&theta, &rows);
        let p = GammaGammaParams { p: theta[0].exp(), q: theta[1].exp(), gamma: theta[2].exp() };
        let direct: f64 = (0..4).map(|i| rows.weight[i] * p.log_likelihood(rows.x[i], rows.m[i])).sum();
        assert!((ll - direct).abs() < 1e-12);
        for j in 0..3 {
            let h = 1e-6;
            let mut up = theta;
            let mut dn = theta;
            up[j] += h;
            dn[j] -= h;
            let num = (ll_sums(&up, &rows).0 - ll_sums(&dn, &rows).0) / (2.0 * h);
            assert!((num - g[j]).abs() < 1e-6 * (1.0 + num.abs()));
        }
    }

    #[test]
    fn expected_order_value_formula() {
        let gg = GammaGammaParams { p: 6.25, q: 3.74, gamma: 15.44 };
        assert!((gg.population_mean().unwrap() - 6.25 * 15.44 / 2.74).abs() < 1e-12);
        assert_eq!(gg.expected_order_value(0, 99.0), gg.population_mean());
        let e = gg.expected_order_value(2, 22.35).unwrap();
        assert!((e - (15.44 + 2.0 * 22.35) * 6.25 / (6.25 * 2.0 + 2.74)).abs() < 1e-12);
        assert_eq!(GammaGammaParams { q: 0.9, ..gg }.expected_order_value(3, 10.0), None);
    }

    #[test]
    fn too_little_data_is_an_error() {
        assert!(matches!(fit(&[0, 1], &[0.0, 5.0], &FitOptions::default()), Err(AnalyticsError::InsufficientData { .. })));
        assert!(fit(&[1, 2], &[5.0], &FitOptions::default()).is_err());
    }
}
