//! The whole pipeline in one call: summaries → RFM → BG/NBD and Gamma-Gamma fits → P(alive),
//! expected purchases, expected order value, CLV → loyalty → ABCD → lifecycle/churn.
//!
//! Model failures caused by the data (no repeat customers, an optimiser breakdown) do not fail
//! the run: the model columns are `None` and the report says why in `warnings`; invalid input
//! or configuration is an error.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::abcd::{abcd_tiers, abcd_value_loyalty, AbcdBasis, AbcdConfig, AbcdDefinition, AbcdResult, AbcdScheme, TierSummary};
use crate::bgnbd::{self, BgNbdFit, BtydRows};
use crate::gamma_gamma::{self, discounted_purchases_if_alive, GammaGammaFit};
use crate::lifecycle::{lifecycle, LifecycleConfig, LifecycleResult};
use crate::loyalty::{loyalty, CustomerExtras, LoyaltyConfig, LoyaltyResult};
use crate::optim::FitOptions;
use crate::rfm::{rfm, RfmConfig, RfmResult};
use crate::summary::{filled, summarize, CustomerSummaries, Orders, SummaryConfig};
use crate::{AnalyticsError, Result, TimeUnit};

/// Settings of the predictive models.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// Fit BG/NBD and Gamma-Gamma at all (default true).
    pub enabled: bool,
    /// Time unit of the BG/NBD fit and its horizons (default days).
    pub time_unit: TimeUnit,
    /// Horizon of "expected purchases", in days (default 365; converted to the time unit).
    pub horizon_days: u32,
    /// CLV horizon in months of 30 days (default 12).
    pub clv_months: u32,
    /// Monthly discount rate of the CLV (default 0.01).
    pub monthly_discount: f64,
    /// Optimiser settings.
    pub fit: FitOptions,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            enabled: true,
            time_unit: TimeUnit::Days,
            horizon_days: 365,
            clv_months: 12,
            monthly_discount: 0.01,
            fit: FitOptions::default(),
        }
    }
}

/// Configuration of the whole pipeline; `Default` gives the DESIGN §4 defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct AnalyticsConfig {
    /// Summary windows and the absolute-churn rule.
    pub summary: SummaryConfig,
    /// RFM class thresholds.
    pub rfm: RfmConfig,
    /// ABCD cut points and basis.
    pub abcd: AbcdConfig,
    /// Relative churn and lifecycle thresholds.
    pub lifecycle: LifecycleConfig,
    /// Loyalty weights.
    pub loyalty: LoyaltyConfig,
    /// Predictive models.
    pub model: ModelConfig,
}

/// Per-customer results, column-wise (index = customer index).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CustomerScores {
    /// RFM values, scores and classes.
    pub rfm: RfmResult,
    /// ABCD tiers.
    pub abcd: AbcdResult,
    /// Churn flags and lifecycle stages.
    pub lifecycle: LifecycleResult,
    /// Loyalty indicators, index and matrix.
    pub loyalty: LoyaltyResult,
    /// P(alive) (`None` for prospects or without a BG/NBD fit).
    pub p_alive: Vec<Option<f64>>,
    /// Expected purchases (purchase days) in the next `horizon_days`.
    pub expected_purchases: Vec<Option<f64>>,
    /// Expected value of a future purchase day (cents), Gamma-Gamma E[M | x, m].
    pub expected_order_value: Vec<Option<f64>>,
    /// Discounted CLV over `clv_months` (cents).
    pub clv: Vec<Option<f64>>,
}

/// Fitted parameters and run facts; serialises as
/// `{"bgnbd":{"r","alpha","a","b","log_likelihood","converged","iterations",…},
/// "gamma_gamma":{"p","q","gamma",…},…}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FitReport {
    /// The as-of day number.
    pub as_of: i32,
    /// The as-of date (ISO 8601).
    pub as_of_date: Option<String>,
    /// Customers in the input.
    pub customers: usize,
    /// Customers with at least one purchase.
    pub customers_with_purchases: usize,
    /// Orders on or before as_of that were used.
    pub orders_used: u64,
    /// Time unit of the BG/NBD parameters (α) and horizon.
    pub time_unit: TimeUnit,
    /// Expected-purchases horizon in the time unit.
    pub horizon: f64,
    /// CLV months.
    pub clv_months: u32,
    /// CLV monthly discount rate.
    pub monthly_discount: f64,
    /// BG/NBD fit (`None` when not fitted; see `warnings`).
    pub bgnbd: Option<BgNbdFit>,
    /// Gamma-Gamma fit (γ in cents; `None` when not fitted).
    pub gamma_gamma: Option<GammaGammaFit>,
    /// ABCD tier counts and revenue shares.
    pub abcd: Vec<TierSummary>,
    /// What ABCD ranked by (the value measure: trailing spend or CLV).
    pub abcd_basis: AbcdBasis,
    /// What the tiers mean: `basis` `value` (value rank alone) or `value_loyalty` (value ×
    /// loyalty), with the cut points and the loyalty index that counted as high.
    pub abcd_definition: AbcdDefinition,
    /// Why something was skipped or fell back.
    pub warnings: Vec<String>,
}

/// Everything [`analyze`] computes.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AnalyticsOutput {
    /// Per-customer summaries.
    pub summaries: CustomerSummaries,
    /// Per-customer scores.
    pub scores: CustomerScores,
    /// Parameters and run facts.
    pub report: FitReport,
}

/// Runs the whole analytics pipeline for `n_customers` customers as of `as_of` (day number).
///
/// ```
/// use patron_analytics::{analyze, AnalyticsConfig, CustomerExtras, Orders};
/// let orders = Orders {
///     customer: vec![0, 0, 1, 0, 2, 2],
///     day: vec![100, 130, 150, 170, 10, 300],
///     amount_cents: vec![2500, 1800, 990, 3100, 1200, 1500],
///     ..Default::default()
/// };
/// let out = analyze(&orders, 4, 365, &CustomerExtras::default(), &AnalyticsConfig::default()).unwrap();
/// assert_eq!(out.summaries.x, vec![2, 0, 1, 0]);
/// assert_eq!(out.scores.lifecycle.stage[3].key(), "prospect");
/// let json = serde_json::to_value(&out.report).unwrap();
/// assert!(json["bgnbd"]["r"].is_number());
/// ```
pub fn analyze(
    orders: &Orders,
    n_customers: usize,
    as_of: i32,
    extras: &CustomerExtras,
    config: &AnalyticsConfig,
) -> Result<AnalyticsOutput> {
    analyze_timed(orders, n_customers, as_of, extras, config).map(|(out, _)| out)
}

/// A model fit's outcome: data the model cannot be fitted to is a warning (and no model), not a
/// failure of the run; other errors are passed on.
fn fitted_or_warning<T>(result: Result<Option<T>>, warnings: &mut Vec<String>) -> Result<Option<T>> {
    match result {
        Err(e @ (AnalyticsError::InsufficientData { .. } | AnalyticsError::FitFailed { .. })) => {
            warnings.push(e.to_string());
            Ok(None)
        }
        other => other,
    }
}

/// Runs `f`, returning its result and its wall time in milliseconds.
fn timed<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let start = std::time::Instant::now();
    let out = f();
    (out, start.elapsed().as_secs_f64() * 1e3)
}

/// Wall time of one stage of [`analyze_timed`]. RFM and loyalty run alongside the BG/NBD and
/// Gamma-Gamma fits, so those four stages' times overlap.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageTiming {
    /// Stage name: summaries, rfm, bgnbd, gamma_gamma, scores, loyalty, abcd, lifecycle.
    pub stage: &'static str,
    /// Milliseconds.
    pub ms: f64,
}

/// [`analyze`], also returning the wall time of each stage (for benchmarks and run logs; kept
/// out of [`FitReport`] so that reports of identical runs compare equal).
pub fn analyze_timed(
    orders: &Orders,
    n_customers: usize,
    as_of: i32,
    extras: &CustomerExtras,
    config: &AnalyticsConfig,
) -> Result<(AnalyticsOutput, Vec<StageTiming>)> {
    let mut timings = Vec::new();
    let mut clock = std::time::Instant::now();
    // Records the time since the previous lap (or since `clock` was last reset) as `stage`.
    let lap = |stage: &'static str, timings: &mut Vec<StageTiming>, clock: &mut std::time::Instant| {
        let now = std::time::Instant::now();
        timings.push(StageTiming { stage, ms: (now - *clock).as_secs_f64() * 1e3 });
        *clock = now;
    };
    let mc = &config.model;
    if !(mc.monthly_discount.is_finite() && mc.monthly_discount > -1.0) {
        return Err(AnalyticsError::InvalidConfig {
            field: "model.monthly_discount",
            reason: format!("{} must be finite and > −1", mc.monthly_discount),
        });
    }
    let s = summarize(orders, n_customers, as_of, &config.summary)?;
    lap("summaries", &mut timings, &mut clock);
    let unit = mc.time_unit;
    let horizon = unit.from_days(f64::from(mc.horizon_days));
    // The two fits and the model-free scores need only the summaries, so they run side by
    // side: the serial parts of one (the optimiser's steps between passes, the ends of
    // parallel sorts) leave a core the others can use.
    let ((rfm_result, t_rfm, loyalty_result, t_loyalty), (bg_result, t_bg, gg_result, t_gg)) = rayon::join(
        || {
            let (rfm_result, t_rfm) = timed(|| rfm(&s, &config.rfm));
            let (loyalty_result, t_loyalty) = timed(|| loyalty(&s, extras, &config.loyalty));
            (rfm_result, t_rfm, loyalty_result, t_loyalty)
        },
        || {
            if !mc.enabled {
                return (Ok(None), 0.0, Ok(None), 0.0);
            }
            let ((bg, t_bg), (gg, t_gg)) = rayon::join(
                || timed(|| BtydRows::from_summaries(&s, unit).and_then(|rows| bgnbd::fit(&rows, &mc.fit)).map(Some)),
                || timed(|| gamma_gamma::fit(&s.x, &s.m, &mc.fit).map(Some)),
            );
            (bg, t_bg, gg, t_gg)
        },
    );
    clock = std::time::Instant::now();
    let rfm_result = rfm_result?;
    timings.push(StageTiming { stage: "rfm", ms: t_rfm });
    let mut warnings = Vec::new();
    let bg_fit = fitted_or_warning(bg_result, &mut warnings)?;
    if let Some(f) = bg_fit.as_ref().filter(|f| !f.converged) {
        warnings.push(format!("BG/NBD did not converge ({}); gradient norm {:e}", f.termination, f.gradient_norm));
    }
    let gg_fit = fitted_or_warning(gg_result, &mut warnings)?;
    if let Some(f) = &gg_fit {
        if !f.converged {
            warnings.push(format!("Gamma-Gamma did not converge ({}); gradient norm {:e}", f.termination, f.gradient_norm));
        }
        if f.params.q <= 1.0 {
            warnings.push(format!("Gamma-Gamma q = {} ≤ 1: the mean spend is infinite, no expected order value", f.params.q));
        }
    }
    let mut models = None;
    if mc.enabled {
        timings.push(StageTiming { stage: "bgnbd", ms: t_bg });
        timings.push(StageTiming { stage: "gamma_gamma", ms: t_gg });
        models = bg_fit.as_ref().map(|bg| score_models(&s, bg, gg_fit.as_ref(), mc, horizon));
        lap("scores", &mut timings, &mut clock);
    }
    let models = models.unwrap_or_else(|| ModelColumns::empty(n_customers));
    let loyalty_result = loyalty_result?;
    timings.push(StageTiming { stage: "loyalty", ms: t_loyalty });

    let ranked: Vec<bool> = s.purchase_days.iter().map(|&d| d > 0).collect();
    let clv_complete = models.clv.iter().zip(&ranked).all(|(v, &r)| !r || v.is_some());
    let (values, basis): (Vec<f64>, AbcdBasis) = match config.abcd.basis {
        AbcdBasis::Clv if clv_complete && gg_fit.is_some() => (models.clv.iter().map(|v| v.unwrap_or(0.0)).collect(), AbcdBasis::Clv),
        AbcdBasis::Clv => {
            warnings.push("ABCD: CLV not available for every customer, ranked by trailing-12-month spend".into());
            (s.trailing_spend_cents.iter().map(|&v| v as f64).collect(), AbcdBasis::TrailingSpend)
        }
        AbcdBasis::TrailingSpend => (s.trailing_spend_cents.iter().map(|&v| v as f64).collect(), AbcdBasis::TrailingSpend),
    };
    let abcd_result = match config.abcd.scheme {
        AbcdScheme::Value => abcd_tiers(&values, &ranked, &s.trailing_spend_cents, basis, &config.abcd)?,
        AbcdScheme::ValueLoyalty => {
            let r = abcd_value_loyalty(&values, &ranked, &loyalty_result.index, &s.trailing_spend_cents, basis, &config.abcd)?;
            if r.definition.high_loyalty_index.is_none() && ranked.iter().any(|&x| x) {
                warnings.push("ABCD by value and loyalty: no customer has a loyalty index, so nobody counts as highly loyal".into());
            }
            r
        }
    };
    lap("abcd", &mut timings, &mut clock);

    let lifecycle_result = lifecycle(
        &s,
        &config.summary.churn,
        &config.lifecycle,
        bg_fit.as_ref().map(|_| models.p_alive.as_slice()),
        Some(&loyalty_result.index),
    )?;
    lap("lifecycle", &mut timings, &mut clock);

    let report = FitReport {
        as_of,
        as_of_date: crate::date_from_day_number(as_of).map(|d| d.to_string()),
        customers: n_customers,
        customers_with_purchases: ranked.iter().filter(|&&r| r).count(),
        orders_used: s.order_count.iter().map(|&c| u64::from(c)).sum(),
        time_unit: unit,
        horizon,
        clv_months: mc.clv_months,
        monthly_discount: mc.monthly_discount,
        bgnbd: bg_fit,
        gamma_gamma: gg_fit,
        abcd: abcd_result.tiers.clone(),
        abcd_basis: basis,
        abcd_definition: abcd_result.definition,
        warnings,
    };
    let out = AnalyticsOutput {
        summaries: s,
        scores: CustomerScores {
            rfm: rfm_result,
            abcd: abcd_result,
            lifecycle: lifecycle_result,
            loyalty: loyalty_result,
            p_alive: models.p_alive,
            expected_purchases: models.expected_purchases,
            expected_order_value: models.expected_order_value,
            clv: models.clv,
        },
        report,
    };
    Ok((out, timings))
}

struct ModelColumns {
    p_alive: Vec<Option<f64>>,
    expected_purchases: Vec<Option<f64>>,
    expected_order_value: Vec<Option<f64>>,
    clv: Vec<Option<f64>>,
}

impl ModelColumns {
    fn empty(n: usize) -> Self {
        // Filled in parallel: four 16 MB columns written by one thread were a pause of both cores.
        ModelColumns {
            p_alive: filled(n, None),
            expected_purchases: filled(n, None),
            expected_order_value: filled(n, None),
            clv: filled(n, None),
        }
    }
}

/// Per-customer model outputs. The expensive parts (the 2F1-based expectations) depend on
/// (x, T) only, so they are computed once per distinct (x, T) and looked up.
fn score_models(s: &CustomerSummaries, bg: &BgNbdFit, gg: Option<&GammaGammaFit>, mc: &ModelConfig, horizon: f64) -> ModelColumns {
    let n = s.len();
    let unit = mc.time_unit;
    let params = bg.params;
    let key = |c: usize| (u64::from(s.x[c]) << 32) | u64::from(s.age[c]);
    // The distinct keys, found through a hash set (a sort of a million keys, then a binary
    // search per customer, cost more than the expectations themselves); numbered by a map.
    let mut seen = std::collections::HashSet::with_hasher(foldhash::fast::FixedState::default());
    for c in 0..n {
        if s.purchase_days[c] > 0 {
            seen.insert(key(c));
        }
    }
    let mut keys: Vec<u64> = seen.into_iter().collect();
    keys.sort_unstable();
    let index: std::collections::HashMap<u64, u32, foldhash::fast::FixedState> =
        keys.iter().enumerate().map(|(i, &k)| (k, i as u32)).collect();
    // (expected purchases over the horizon if alive, discounted purchases over the CLV months if alive)
    let per_key: Vec<(f64, f64)> = keys
        .par_iter()
        .map(|&k| {
            let x = (k >> 32) as u32;
            let age = unit.from_days((k & 0xffff_ffff) as f64);
            (
                params.expected_purchases_if_alive(x, age, horizon),
                discounted_purchases_if_alive(&params, unit, x, age, mc.clv_months, mc.monthly_discount),
            )
        })
        .collect();
    // (p_alive, expected purchases, expected order value, CLV) per customer, written straight
    // into the four columns in parallel.
    let mut cols = ModelColumns::empty(n);
    cols.p_alive
        .par_iter_mut()
        .zip(cols.expected_purchases.par_iter_mut())
        .zip(cols.expected_order_value.par_iter_mut())
        .zip(cols.clv.par_iter_mut())
        .enumerate()
        .for_each(|(c, (((p_alive, expected), eov_out), clv_out))| {
            if s.purchase_days[c] == 0 {
                return;
            }
            let Some(&i) = index.get(&key(c)) else {
                return;
            };
            let (e_alive, d_alive) = per_key[i as usize];
            let p = params.p_alive(s.x[c], unit.from_days(f64::from(s.t_x[c])), unit.from_days(f64::from(s.age[c])));
            let eov = gg.and_then(|g| g.params.expected_order_value(s.x[c], s.m[c]));
            *p_alive = Some(p);
            *expected = Some(p * e_alive);
            *eov_out = eov;
            *clv_out = eov.map(|v| p * v * d_alive);
        });
    cols
}
