//! Holdout validation of the models (Fader, Hardie & Lee 2005, §5 and figures 1–4).
//!
//! The orders are split at `calibration_end`: BG/NBD and Gamma-Gamma are fitted on the
//! calibration period only (orders up to and including `calibration_end`, customers whose first
//! purchase day lies in it), and their forecasts are set against what the same customers did in
//! the holdout period (purchase days after `calibration_end` up to and including `holdout_end`;
//! several orders on one day are one purchase day, as everywhere in DESIGN §4):
//!
//! - **conditional expectations** ([`Validation::by_frequency`], FHL figure 4): customers grouped
//!   by calibration repeat purchases x = 0, 1, …, 6 and 7+; per group the mean number of holdout
//!   purchase days against the mean of E\[X(holdout_length) | x, t_x, T\] (eq. 10);
//! - **calibration histogram** ([`Validation::calibration_histogram`], FHL figure 3): customers by
//!   x against Σᵢ P(X(Tᵢ) = k), the model's distribution of repeat purchases for a customer of
//!   age Tᵢ (eq. 8);
//! - **tracking** ([`Validation::tracking`], FHL figures 1–2): repeat purchase days of the whole
//!   base per week over both periods against Σᵢ E\[X(t − first purchaseᵢ)\] (eq. 9);
//! - **spend**: Gamma-Gamma's E\[M | x, m\] against the mean holdout purchase-day spend, over the
//!   customers with repeat purchases in both periods.
//!
//! The expensive parts depend on few distinct values (x and T in days, days since a first
//! purchase), so they are computed once per distinct value.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::bgnbd::{self, BgNbdParams, BtydRows};
use crate::gamma_gamma;
use crate::optim::FitOptions;
use crate::summary::{summarize, Orders, SummaryConfig};
use crate::{date_from_day_number, AnalyticsError, Result, TimeUnit};

/// The last frequency bucket: `7` stands for 7 or more repeat purchases.
pub const TOP_BUCKET: u32 = 7;

/// What to validate: the split and the model settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ValidationConfig {
    /// Last day of the calibration period (day number, inclusive).
    pub calibration_end: i32,
    /// Last day of the holdout period (day number, inclusive); after `calibration_end`.
    pub holdout_end: i32,
    /// Time unit of the fit (α) and of `holdout_length`.
    pub time_unit: TimeUnit,
    /// Optimiser settings.
    pub fit: FitOptions,
}

/// The calibration fit of BG/NBD, as the document gives it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BgNbdSummary {
    /// r.
    pub r: f64,
    /// α, in the time unit.
    pub alpha: f64,
    /// a.
    pub a: f64,
    /// b.
    pub b: f64,
    /// Total log-likelihood at the estimate.
    pub log_likelihood: f64,
    /// Whether the optimiser converged.
    pub converged: bool,
}

/// The calibration fit of Gamma-Gamma (γ in minor units).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GammaGammaSummary {
    /// p.
    pub p: f64,
    /// q.
    pub q: f64,
    /// γ (minor units).
    pub gamma: f64,
    /// Whether the optimiser converged.
    pub converged: bool,
}

/// One bucket of the conditional expectations.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FrequencyBucket {
    /// Calibration repeat purchases (7 = 7 or more).
    pub frequency: u32,
    /// Customers in the bucket.
    pub customers: u64,
    /// Their mean number of holdout purchase days (`None` for an empty bucket).
    pub actual_mean: Option<f64>,
    /// Their mean E\[X(holdout_length) | x, t_x, T\] (`None` for an empty bucket).
    pub predicted_mean: Option<f64>,
}

/// Sums over all customers of the base.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Total {
    /// Holdout purchase days.
    pub actual: f64,
    /// Expected holdout purchase days.
    pub predicted: f64,
}

/// One bucket of the calibration histogram.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HistogramBucket {
    /// Calibration repeat purchases (7 = 7 or more).
    pub frequency: u32,
    /// Customers with that many.
    pub actual_customers: u64,
    /// Σᵢ P(X(Tᵢ) = frequency) (7: the customers less the other buckets' expectations).
    pub expected_customers: f64,
}

/// One week of the tracking plot.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrackingWeek {
    /// First day of the week (the last week may be shorter: it ends on `holdout_end`).
    pub period_start: chrono::NaiveDate,
    /// Repeat purchase days of the base in the week.
    pub actual: u64,
    /// The model's expectation of them.
    pub expected: f64,
}

/// The spend check (money in minor units).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SpendCheck {
    /// Customers with repeat purchases in both periods.
    pub customers: u64,
    /// Mean over them of their mean holdout purchase-day spend (`None` without customers).
    pub actual_mean: Option<f64>,
    /// Mean over them of Gamma-Gamma's E\[M | x, m\] (`None` without customers or without a fit).
    pub predicted_mean: Option<f64>,
}

/// Summary errors of the holdout forecast.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Errors {
    /// Mean over customers of |actual − predicted| holdout purchase days.
    pub mae_per_customer: f64,
    /// (predicted − actual) / actual over the whole base; positive = over-forecast (`None` when
    /// nobody bought in the holdout).
    pub total_relative_error: Option<f64>,
}

/// The validation document (`validation.json`, the API's body).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Validation {
    /// Last day of the calibration period.
    pub calibration_end: chrono::NaiveDate,
    /// Last day of the holdout period.
    pub holdout_end: chrono::NaiveDate,
    /// Time unit of α and `holdout_length`.
    pub time_unit: TimeUnit,
    /// holdout_end − calibration_end in the time unit.
    pub holdout_length: f64,
    /// Customers of the base (first purchase day in the calibration period).
    pub customers: u64,
    /// The calibration fit.
    pub bgnbd: BgNbdSummary,
    /// The calibration fit of the spend model (`None` when it could not be fitted).
    pub gamma_gamma: Option<GammaGammaSummary>,
    /// Conditional expectations by calibration frequency 0–6 and 7+.
    pub by_frequency: Vec<FrequencyBucket>,
    /// Holdout purchase days, actual and predicted, over all customers.
    pub total: Total,
    /// Calibration repeat purchases, actual and expected, 0–6 and 7+.
    pub calibration_histogram: Vec<HistogramBucket>,
    /// Weekly repeat purchase days over both periods.
    pub tracking: Vec<TrackingWeek>,
    /// Gamma-Gamma against the holdout spend.
    pub spend: SpendCheck,
    /// Summary errors.
    pub errors: Errors,
    /// What was left out, and why.
    pub warnings: Vec<String>,
}

impl BgNbdParams {
    /// P(X(t) = n | r, α, a, b): the probability that a customer just acquired makes `n` repeat
    /// purchases in (0, t] (FHL 2005 eq. 8).
    pub fn probability_of_n_purchases(&self, t: f64, n: u32) -> f64 {
        let BgNbdParams { r, alpha, a, b } = *self;
        if t.is_nan() || t <= 0.0 {
            return if n == 0 { 1.0 } else { 0.0 };
        }
        // Ratios of gamma and beta functions as finite products (sums of logs), and
        // ln(α/(α+t)) as −ln(1 + t/α): exact also for the huge r, α, a, b a fit reaches when the
        // base shows little heterogeneity (ln Γ differences of huge arguments cancel to NaN).
        let ln_q = -(t / alpha).ln_1p(); // ln(α/(α+t))
        let ln_p = (t / (alpha + t)).ln(); // ln(t/(α+t))
        let rising = |x: f64, k: u32| -> f64 { (0..k).map(|i| (x + f64::from(i)).ln()).sum() }; // ln Γ(x+k)/Γ(x)
        let ln_k_fact = |k: u32| -> f64 { (1..=k).map(|i| f64::from(i).ln()).sum() };
        // B(a, b+n)/B(a, b) = Γ(b+n)/Γ(b) · Γ(a+b)/Γ(a+b+n).
        let ln_first_beta = rising(b, n) - rising(a + b, n);
        // The NBD term Γ(r+n)/(Γ(r) n!) (α/(α+t))^r (t/(α+t))^n.
        let ln_nbd_n = rising(r, n) - ln_k_fact(n) + r * ln_q + f64::from(n) * ln_p;
        let first = (ln_first_beta + ln_nbd_n).exp();
        if n == 0 {
            return first;
        }
        // 1 − P(NBD < n) = P(NBD ≥ n), the NBD terms j < n by their recurrence.
        let (mut term, mut below) = ((r * ln_q).exp(), 0.0);
        let ratio = ln_p.exp();
        for j in 0..n {
            below += term;
            term *= (r + f64::from(j)) / f64::from(j + 1) * ratio;
        }
        let tail = (1.0 - below).max(0.0);
        // B(a+1, b+n−1)/B(a, b) = a · Γ(b+n−1)/Γ(b) · Γ(a+b)/Γ(a+b+n).
        let ln_second_beta = a.ln() + rising(b, n - 1) - rising(a + b, n);
        first + ln_second_beta.exp() * tail
    }
}

/// Runs the holdout validation on `orders` of `n_customers` customers (orders after
/// `holdout_end` are ignored).
pub fn validate(orders: &Orders, n_customers: usize, config: &ValidationConfig) -> Result<Validation> {
    let (cal, hold) = (config.calibration_end, config.holdout_end);
    let date = |field: &'static str, d: i32| {
        date_from_day_number(d).ok_or_else(|| AnalyticsError::InvalidConfig { field, reason: format!("day {d} is out of range") })
    };
    let (cal_date, hold_date) = (date("calibration_end", cal)?, date("holdout_end", hold)?);
    if hold <= cal {
        return Err(AnalyticsError::InvalidConfig {
            field: "holdout_end",
            reason: format!("the holdout end {hold_date} must be after the calibration end {cal_date}"),
        });
    }
    let unit = config.time_unit;
    let s = summarize(orders, n_customers, cal, &SummaryConfig::default())?;
    let in_base = |c: usize| s.purchase_days[c] > 0;
    let customers = (0..n_customers).filter(|&c| in_base(c)).count();
    if customers == 0 {
        return Err(AnalyticsError::InsufficientData {
            model: "BG/NBD",
            reason: format!("no customer made a first purchase on or before the calibration end {cal_date}"),
        });
    }
    let mut warnings = Vec::new();
    let rows = BtydRows::from_summaries(&s, unit)?;
    let (bg, gg) = rayon::join(|| bgnbd::fit(&rows, &config.fit), || gamma_gamma::fit(&s.x, &s.m, &config.fit));
    let bg = bg?;
    let p = bg.params;
    if !bg.converged && [p.r, p.alpha, p.a, p.b].iter().any(|v| !(1e-8..=1e8).contains(v)) {
        // The optimiser ran off to the edge of the parameter space: forecasts from there mean
        // nothing (and the expectations' series need millions of terms).
        return Err(AnalyticsError::FitFailed {
            model: "BG/NBD",
            reason: format!(
                "no fit on the calibration period up to {cal_date} ({}; r = {:.3e}, α = {:.3e}, a = {:.3e}, b = {:.3e}): \
                 the base needs more repeat customers before the calibration end",
                bg.termination, p.r, p.alpha, p.a, p.b
            ),
        });
    }
    if !bg.converged {
        warnings.push(format!("BG/NBD did not converge ({}); gradient norm {:e}", bg.termination, bg.gradient_norm));
    }
    let gg = match gg {
        Ok(f) => Some(f),
        Err(e) => {
            warnings.push(format!("no spend check: {e}"));
            None
        }
    };
    let params = bg.params;
    let holdout_length = unit.from_days(f64::from(hold - cal));

    // Each base customer's distinct purchase days up to the holdout end, with the day's spend:
    // (customer, day) keys sorted once. Days map to u32 in order (sign bit flipped).
    let day_key = |d: i32| (d as u32) ^ 0x8000_0000;
    let mut keyed: Vec<(u64, i64)> = (0..orders.len())
        .into_par_iter()
        .filter_map(|i| {
            let (c, d) = (orders.customer[i] as usize, orders.day[i]);
            (d <= hold && in_base(c)).then(|| (((c as u64) << 32) | u64::from(day_key(d)), orders.amount_cents[i]))
        })
        .collect();
    keyed.par_sort_unstable_by_key(|k| k.0);
    let first_min = (0..n_customers).filter_map(|c| s.first_purchase_day[c]).min().unwrap_or(cal);
    let span = (hold - first_min) as usize + 1;
    let mut repeat_by_day = vec![0u64; span];
    let mut holdout_days = vec![0u32; n_customers];
    let mut holdout_spend = vec![0i64; n_customers];
    let mut i = 0;
    while i < keyed.len() {
        let key = keyed[i].0;
        let mut spend = 0i64;
        while i < keyed.len() && keyed[i].0 == key {
            spend = spend.saturating_add(keyed[i].1);
            i += 1;
        }
        let c = (key >> 32) as usize;
        let d = ((key as u32) ^ 0x8000_0000) as i32;
        if Some(d) != s.first_purchase_day[c] {
            repeat_by_day[(d - first_min) as usize] += 1;
        }
        if d > cal {
            holdout_days[c] += 1;
            holdout_spend[c] = holdout_spend[c].saturating_add(spend);
        }
    }
    drop(keyed);

    // E[X(holdout_length) | x, t_x, T]: the part after P(alive) depends on (x, T) only.
    let xt_key = |c: usize| (u64::from(s.x[c]) << 32) | u64::from(s.age[c]);
    let mut distinct: Vec<u64> = (0..n_customers).filter(|&c| in_base(c)).map(xt_key).collect();
    distinct.par_sort_unstable();
    distinct.dedup();
    let if_alive: Vec<f64> = distinct
        .par_iter()
        .map(|&k| params.expected_purchases_if_alive((k >> 32) as u32, unit.from_days((k & 0xffff_ffff) as f64), holdout_length))
        .collect();
    let predicted: Vec<f64> = (0..n_customers)
        .into_par_iter()
        .map(|c| {
            if !in_base(c) {
                return 0.0;
            }
            let e = distinct.binary_search(&xt_key(c)).map(|j| if_alive[j]).unwrap_or(0.0);
            params.p_alive(s.x[c], unit.from_days(f64::from(s.t_x[c])), unit.from_days(f64::from(s.age[c]))) * e
        })
        .collect();

    let buckets = TOP_BUCKET as usize + 1;
    let mut count = vec![0u64; buckets];
    let mut actual_sum = vec![0f64; buckets];
    let mut predicted_sum = vec![0f64; buckets];
    let mut abs_error = 0.0;
    let mut ages: std::collections::BTreeMap<u32, u64> = std::collections::BTreeMap::new();
    let mut spend_customers = 0u64;
    let mut spend_actual = 0.0;
    let mut spend_predicted = 0.0;
    let mut spend_predicted_missing = gg.is_none();
    for c in (0..n_customers).filter(|&c| in_base(c)) {
        let k = s.x[c].min(TOP_BUCKET) as usize;
        let actual = f64::from(holdout_days[c]);
        count[k] += 1;
        actual_sum[k] += actual;
        predicted_sum[k] += predicted[c];
        abs_error += (actual - predicted[c]).abs();
        *ages.entry(s.age[c]).or_default() += 1;
        if s.x[c] >= 1 && holdout_days[c] >= 1 {
            spend_customers += 1;
            spend_actual += holdout_spend[c] as f64 / actual;
            match gg.as_ref().and_then(|g| g.params.expected_order_value(s.x[c], s.m[c])) {
                Some(v) => spend_predicted += v,
                None => spend_predicted_missing = true,
            }
        }
    }
    let mean = |sum: f64, n: u64| (n > 0).then(|| sum / n as f64);
    let by_frequency = (0..buckets)
        .map(|k| FrequencyBucket {
            frequency: k as u32,
            customers: count[k],
            actual_mean: mean(actual_sum[k], count[k]),
            predicted_mean: mean(predicted_sum[k], count[k]),
        })
        .collect();
    let total = Total { actual: actual_sum.iter().sum(), predicted: predicted_sum.iter().sum() };

    // Σᵢ P(X(Tᵢ) = k), once per distinct age.
    let ages: Vec<(u32, u64)> = ages.into_iter().collect();
    let per_age: Vec<[f64; TOP_BUCKET as usize]> = ages
        .par_iter()
        .map(|&(age, _)| {
            let t = unit.from_days(f64::from(age));
            std::array::from_fn(|k| params.probability_of_n_purchases(t, k as u32))
        })
        .collect();
    let mut expected = vec![0f64; buckets];
    for ((_, n), p) in ages.iter().zip(&per_age) {
        for k in 0..TOP_BUCKET as usize {
            expected[k] += *n as f64 * p[k];
        }
    }
    expected[TOP_BUCKET as usize] = customers as f64 - expected[..TOP_BUCKET as usize].iter().sum::<f64>();
    let calibration_histogram = (0..buckets)
        .map(|k| HistogramBucket { frequency: k as u32, actual_customers: count[k], expected_customers: expected[k] })
        .collect();

    // Tracking: cumulative expected repeat purchase days by the end of day D is
    // Σ_d n_first(d) E[X(D − d)], with E[X(k days)] computed once per k.
    let mut first_on = vec![0u64; span];
    for c in 0..n_customers {
        if let Some(f) = s.first_purchase_day[c] {
            first_on[(f - first_min) as usize] += 1;
        }
    }
    let e_new: Vec<f64> = (0..span).into_par_iter().map(|k| params.expected_purchases_new_customer(unit.from_days(k as f64))).collect();
    let cumulative = |end: usize| -> f64 { (0..=end).filter(|&d| first_on[d] > 0).map(|d| first_on[d] as f64 * e_new[end - d]).sum() };
    let week_starts: Vec<usize> = (0..span).step_by(7).collect();
    let ends: Vec<f64> = week_starts.par_iter().map(|&w| cumulative((w + 6).min(span - 1))).collect();
    let mut tracking = Vec::with_capacity(week_starts.len());
    let mut before = 0.0;
    for (j, &w) in week_starts.iter().enumerate() {
        let last = (w + 6).min(span - 1);
        let period_start = date("tracking", first_min + w as i32)?;
        tracking.push(TrackingWeek { period_start, actual: repeat_by_day[w..=last].iter().sum(), expected: ends[j] - before });
        before = ends[j];
    }

    // Parameters at an extreme the expectations cannot be evaluated at (NaN or infinity) give
    // no forecast to validate: refused like a fit that failed, never a document with holes.
    let finite = total.predicted.is_finite()
        && predicted_sum.iter().all(|v| v.is_finite())
        && expected.iter().all(|v| v.is_finite())
        && tracking.iter().all(|w| w.expected.is_finite());
    if !finite {
        return Err(AnalyticsError::FitFailed {
            model: "BG/NBD",
            reason: format!(
                "the calibration fit up to {cal_date} (r = {:.3e}, α = {:.3e}, a = {:.3e}, b = {:.3e}) gives no finite forecast: \
                 the base needs more repeat customers before the calibration end",
                params.r, params.alpha, params.a, params.b
            ),
        });
    }
    if spend_customers > 0 && spend_predicted_missing && gg.is_some() {
        warnings.push("no expected spend: Gamma-Gamma's q ≤ 1 (the mean spend is infinite)".into());
    }
    let spend = SpendCheck {
        customers: spend_customers,
        actual_mean: mean(spend_actual, spend_customers),
        predicted_mean: if spend_predicted_missing { None } else { mean(spend_predicted, spend_customers) },
    };
    let errors = Errors {
        mae_per_customer: abs_error / customers as f64,
        total_relative_error: (total.actual > 0.0).then(|| (total.predicted - total.actual) / total.actual),
    };
    Ok(Validation {
        calibration_end: cal_date,
        holdout_end: hold_date,
        time_unit: unit,
        holdout_length,
        customers: customers as u64,
        bgnbd: BgNbdSummary {
            r: params.r,
            alpha: params.alpha,
            a: params.a,
            b: params.b,
            log_likelihood: bg.log_likelihood,
            converged: bg.converged,
        },
        gamma_gamma: gg.map(|g| GammaGammaSummary { p: g.params.p, q: g.params.q, gamma: g.params.gamma, converged: g.converged }),
        by_frequency,
        total,
        calibration_histogram,
        tracking,
        spend,
        errors,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: BgNbdParams = BgNbdParams { r: 0.243, alpha: 4.414, a: 0.793, b: 2.426 };

    #[test]
    fn probabilities_sum_to_one() {
        for t in [0.1, 1.0, 39.0, 500.0] {
            let total: f64 = (0..2000).map(|n| P.probability_of_n_purchases(t, n)).sum();
            assert!((total - 1.0).abs() < 1e-9, "t = {t}: {total}");
            // the mean of the distribution is E[X(t)] (eq. 9)
            let mean: f64 = (0..2000).map(|n| f64::from(n) * P.probability_of_n_purchases(t, n)).sum();
            assert!((mean - P.expected_purchases_new_customer(t)).abs() < 1e-7 * mean.max(1.0), "t = {t}: {mean}");
        }
        // A fit to a base of regular buyers drifts to huge r, α (and a, b): the distribution must
        // stay a distribution (its Poisson limit here: rate r/α = 0.1, no drop-out to speak of).
        let huge = BgNbdParams { r: 1e9, alpha: 1e10, a: 1e-3, b: 1e8 };
        for t in [1.0, 30.0, 400.0] {
            let p: Vec<f64> = (0..400).map(|n| huge.probability_of_n_purchases(t, n)).collect();
            assert!(p.iter().all(|v| v.is_finite() && *v >= 0.0), "t = {t}: {p:?}");
            assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-6, "t = {t}");
            let poisson0 = (-0.1 * t).exp();
            assert!((p[0] - poisson0).abs() < 1e-6, "t = {t}: {} vs {poisson0}", p[0]);
        }
        assert_eq!(P.probability_of_n_purchases(0.0, 0), 1.0);
        assert_eq!(P.probability_of_n_purchases(0.0, 3), 0.0);
    }

    fn orders(rows: &[(u32, i32, i64)]) -> Orders {
        Orders {
            customer: rows.iter().map(|r| r.0).collect(),
            day: rows.iter().map(|r| r.1).collect(),
            amount_cents: rows.iter().map(|r| r.2).collect(),
            ..Default::default()
        }
    }

    fn config(cal: i32, hold: i32) -> ValidationConfig {
        ValidationConfig { calibration_end: cal, holdout_end: hold, time_unit: TimeUnit::Days, fit: FitOptions::default() }
    }

    #[test]
    fn bad_splits_are_errors() {
        let o = orders(&[(0, 10, 100), (1, 20, 100)]);
        let e = validate(&o, 2, &config(30, 30)).unwrap_err();
        assert!(matches!(e, AnalyticsError::InvalidConfig { field: "holdout_end", .. }), "{e}");
        let e = validate(&o, 2, &config(30, 10)).unwrap_err();
        assert!(matches!(e, AnalyticsError::InvalidConfig { field: "holdout_end", .. }), "{e}");
        // nobody bought by day 5
        let e = validate(&o, 2, &config(5, 40)).unwrap_err();
        assert!(matches!(e, AnalyticsError::InsufficientData { .. }), "{e}");
    }

    /// Holdout purchase days, same-day orders, customers first seen in the holdout, orders
    /// after the holdout end, the weekly counts and the spend check, on a small base counted by
    /// hand.
    #[test]
    fn holdout_counts_by_hand() {
        let mut rows = Vec::new();
        // Some spread so that both models can be fitted.
        for c in 0..40u32 {
            let first = (c % 5) as i32;
            rows.push((c, first, 1000 + i64::from(c)));
            for k in 0..(c % 4) {
                rows.push((c, first + 7 * (k as i32 + 1) + (c % 3) as i32, 500 + 100 * i64::from(k) + i64::from(c % 7) * 10));
            }
        }
        // customer 40: two orders on day 50 (one purchase day, spend 300) and one on day 60; the
        // holdout is days 41..=70.
        rows.extend([(40, 1, 100), (40, 8, 200), (40, 50, 100), (40, 50, 200), (40, 60, 600), (40, 71, 999)]);
        // customer 41 is new in the holdout: not in the base.
        rows.push((41, 45, 100));
        let o = orders(&rows);
        let v = validate(&o, 42, &config(40, 70)).unwrap();
        assert_eq!(v.customers, 41);
        assert_eq!(v.holdout_length, 30.0);
        assert_eq!(v.total.actual, 2.0);
        let b1 = v.by_frequency[1];
        // x = 1 in calibration: customers c % 4 == 1 (10 of them) and customer 40.
        assert_eq!(b1.customers, 11);
        assert!((b1.actual_mean.unwrap() - 2.0 / 11.0).abs() < 1e-15);
        assert_eq!(v.by_frequency.iter().map(|b| b.customers).sum::<u64>(), 41);
        assert_eq!(v.calibration_histogram.iter().map(|b| b.actual_customers).sum::<u64>(), 41);
        let expected: f64 = v.calibration_histogram.iter().map(|b| b.expected_customers).sum();
        assert!((expected - 41.0).abs() < 1e-9);
        // spend: only customer 40 bought again in both periods: (300 + 600) / 2 per purchase day.
        assert_eq!(v.spend.customers, 1);
        assert_eq!(v.spend.actual_mean, Some(450.0));
        // tracking: weeks from day 0 (1970-01-01) to day 70; repeat purchase days counted once.
        let repeat_days: u64 = v.tracking.iter().map(|w| w.actual).sum();
        let calibration_repeats: u64 = (0..40u64).map(|c| c % 4).sum::<u64>() + 1;
        assert_eq!(repeat_days, calibration_repeats + 2);
        assert_eq!(v.tracking.len(), 11);
        assert_eq!(v.tracking[0].period_start.to_string(), "1970-01-01");
        assert_eq!(v.tracking[10].period_start.to_string(), "1970-03-12");
        // the expectation of the whole period is Σ E[X(70 − first)]
        let e: f64 = v.tracking.iter().map(|w| w.expected).sum();
        let p = BgNbdParams { r: v.bgnbd.r, alpha: v.bgnbd.alpha, a: v.bgnbd.a, b: v.bgnbd.b };
        let want: f64 = (0..41u32)
            .map(|c| if c == 40 { 1 } else { (c % 5) as i32 })
            .map(|f| p.expected_purchases_new_customer(f64::from(70 - f)))
            .sum();
        assert!((e - want).abs() < 1e-9 * want, "{e} vs {want}");
        assert!(v.errors.mae_per_customer > 0.0);
        let rel = v.errors.total_relative_error.unwrap();
        assert!((rel - (v.total.predicted - 2.0) / 2.0).abs() < 1e-12);
    }
}
