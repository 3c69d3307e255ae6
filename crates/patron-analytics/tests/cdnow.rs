//! The published CDNOW results (Fader, Hardie & Lee 2005; Fader & Hardie 2013) and the
//! reference implementation `lifetimes`.
//!
//! Reference numbers below marked "lifetimes" were produced once with
//!
//! ```text
//! python3 -m venv /tmp/ltvenv
//! /tmp/ltvenv/bin/pip install "lifetimes==0.11.3" "pandas<2" "numpy<1.24" "scipy<1.11"
//! /tmp/ltvenv/bin/python ref.py
//! ```
//!
//! where ref.py is:
//!
//! ```text
//! import numpy as np, pandas as pd
//! from lifetimes import BetaGeoFitter, GammaGammaFitter
//! from scipy.special import hyp2f1
//! d = pd.read_csv('/work/shared/data/cdnow_customers_summary_with_transactions.csv')
//! bg = BetaGeoFitter(penalizer_coef=0.0); bg.fit(d['x'], d['t_x'], d['T'])
//! P = np.log(np.array([bg.params_[k] for k in ['r', 'alpha', 'a', 'b']]))
//! ll = -bg._negative_log_likelihood(P, d['x'].values, d['t_x'].values, d['T'].values, np.ones(len(d)), 0.0) * len(d)
//! print('bgnbd', *map(repr, [bg.params_['r'], bg.params_['alpha'], bg.params_['a'], bg.params_['b'], ll]))
//! rep = d[d['x'] > 0]
//! gg = GammaGammaFitter(penalizer_coef=0.0); gg.fit(rep['x'], rep['zbar'])
//! print('gg', repr(gg.params_['p']), repr(gg.params_['q']), repr(gg.params_['v']), len(rep))
//! for _, row in d[d['ID'].isin([1, 2, 3, 18, 100, 1500, 2357])].iterrows():
//!     x, tx, T, m = row['x'], row['t_x'], row['T'], row['zbar']
//!     pa = bg.conditional_probability_alive(x, tx, T)
//!     e10 = bg.conditional_expected_number_of_purchases_up_to_time(10, x, tx, T)
//!     e39 = bg.conditional_expected_number_of_purchases_up_to_time(39, x, tx, T)
//!     em = gg.conditional_expected_average_profit(pd.Series([x]), pd.Series([m])).iloc[0]
//!     clv = 0.0   # 12 months of 30 days = 30/7 weeks, monthly discount 1%
//!     for i in range(1, 13):
//!         t1 = 30.0 * i / 7.0; t0 = 30.0 * (i - 1) / 7.0
//!         de = bg.predict(t1, x, tx, T) - (bg.predict(t0, x, tx, T) if i > 1 else 0.0)
//!         clv += de * em / 1.01 ** i
//!     print('cust', int(row['ID']), x, tx, T, m, *map(repr, map(float, [pa, e10, e39, em, clv])))
//! for t in [1.0, 10.0, 52.0, 1000.0]:
//!     print('uncond', t, repr(float(bg.expected_number_of_purchases_up_to_time(t))))
//! ```

mod common;

use common::*;
use patron_analytics::gamma_gamma::{self, GammaGammaParams};
use patron_analytics::{bgnbd, summarize, BgNbdParams, BtydRows, FitOptions, SummaryConfig, TimeUnit};

/// |got − want| within half a unit of the 3rd significant digit of the published value.
fn assert_3_sig(name: &str, got: f64, published: f64) {
    let digits = published.abs().log10().floor();
    let half_unit = 0.5 * 10f64.powf(digits - 2.0);
    assert!((got - published).abs() <= half_unit, "{name}: {got} does not reproduce the published {published} to 3 significant digits");
}

fn rel(a: f64, b: f64) -> f64 {
    ((a - b) / b).abs()
}

fn summary_rows() -> (Vec<common::SummaryRow>, BtydRows) {
    let s = cdnow_summary();
    assert_eq!(s.len(), 2357);
    let x: Vec<u32> = s.iter().map(|r| r.x).collect();
    let tx: Vec<f64> = s.iter().map(|r| r.t_x).collect();
    let t: Vec<f64> = s.iter().map(|r| r.age).collect();
    let rows = BtydRows::aggregate(&x, &tx, &t).unwrap();
    (s, rows)
}

#[test]
fn bgnbd_reproduces_published_cdnow_fit() {
    let (_, rows) = summary_rows();
    assert_eq!(rows.customers(), 2357.0);
    let fit = bgnbd::fit(&rows, &FitOptions::default()).unwrap();
    eprintln!("BG/NBD on CDNOW: {fit:?}");
    assert!(fit.converged, "{fit:?}");
    let p = fit.params;
    assert_3_sig("r", p.r, 0.243);
    assert_3_sig("alpha", p.alpha, 4.414);
    assert_3_sig("a", p.a, 0.793);
    assert_3_sig("b", p.b, 2.426);
    assert!((fit.log_likelihood - -9582.4).abs() < 0.05, "ll {}", fit.log_likelihood);
    // lifetimes (scipy BFGS, tol 1e-7) reaches the same optimum
    for (got, lt) in [(p.r, 0.24259292827982182), (p.alpha, 4.413532265271819), (p.a, 0.7928859664406882), (p.b, 2.42575238262586)] {
        assert!(rel(got, lt) < 1e-3, "{got} vs lifetimes {lt}");
    }
    assert!(rel(fit.log_likelihood, -9582.425560567368) < 1e-7);
    let se = fit.std_errors.unwrap();
    assert!(se.r > 0.0 && se.r < 0.05 && se.alpha < 1.0);
    // deterministic: the same fit twice, bit for bit
    let again = bgnbd::fit(&rows, &FitOptions::default()).unwrap();
    assert_eq!(again.params, fit.params);
}

#[test]
fn gamma_gamma_reproduces_published_cdnow_fit() {
    let (s, _) = summary_rows();
    let x: Vec<u32> = s.iter().map(|r| r.x).collect();
    let m: Vec<f64> = s.iter().map(|r| r.zbar).collect();
    let fit = gamma_gamma::fit(&x, &m, &FitOptions::default()).unwrap();
    eprintln!("Gamma-Gamma on CDNOW: {fit:?}");
    assert_eq!(fit.customers, 946.0);
    assert!(fit.converged);
    assert_3_sig("p", fit.params.p, 6.25);
    assert_3_sig("q", fit.params.q, 3.74);
    assert_3_sig("gamma", fit.params.gamma, 15.44);
    for (got, lt) in [(fit.params.p, 6.248802496075312), (fit.params.q, 3.744588460923114), (fit.params.gamma, 15.44774806492914)] {
        assert!(rel(got, lt) < 1e-3, "{got} vs lifetimes {lt}");
    }
    // the same fit in cents: γ scales, p and q do not
    let cents: Vec<f64> = m.iter().map(|v| v * 100.0).collect();
    let fc = gamma_gamma::fit(&x, &cents, &FitOptions::default()).unwrap();
    assert!(rel(fc.params.p, fit.params.p) < 1e-6 && rel(fc.params.q, fit.params.q) < 1e-6);
    assert!(rel(fc.params.gamma, 100.0 * fit.params.gamma) < 1e-6);
    assert!((fc.log_likelihood - (fit.log_likelihood - 946.0 * 100f64.ln())).abs() < 1e-6);
}

#[test]
fn summaries_of_the_cdnow_sample_equal_the_summary_file() {
    let (orders, n) = cdnow_sample_orders();
    assert_eq!(orders.len(), 6919);
    assert_eq!(n, 2357);
    let s = summarize(&orders, n, calibration_end(), &SummaryConfig::default()).unwrap();
    let file = cdnow_summary();
    let close = |a: f64, b: f64| (a - b).abs() <= 0.005 + 1e-9;
    for r in &file {
        let c = (r.id - 1) as usize;
        assert_eq!(s.x[c], r.x, "x of customer {}", r.id);
        assert!(close(patron_analytics::days_to_weeks(f64::from(s.t_x[c])), r.t_x), "t_x of {}", r.id);
        assert!(close(patron_analytics::days_to_weeks(f64::from(s.age[c])), r.age), "T of {}", r.id);
        assert!(close(s.m[c] / 100.0, r.zbar), "zbar of {}: {} vs {}", r.id, s.m[c] / 100.0, r.zbar);
    }
    // later transactions (after 1997-09-30) are in the sample but excluded
    let later = orders.day.iter().filter(|&&d| d > calibration_end()).count();
    assert!(later > 0);
    assert_eq!(s.order_count.iter().map(|&c| c as usize).sum::<usize>(), orders.len() - later);
}

/// lifetimes' parameters, so these compare the formulas and not the fits.
const LT: BgNbdParams = BgNbdParams { r: 0.24259292827982182, alpha: 4.413532265271819, a: 0.7928859664406882, b: 2.42575238262586 };
const LT_GG: GammaGammaParams = GammaGammaParams { p: 6.248802496075312, q: 3.744588460923114, gamma: 15.44774806492914 };

#[test]
fn predictions_match_lifetimes() {
    // id, x, t_x, T, zbar, P(alive), E[X(10)], E[X(39)], E[M], CLV(12 months, 1%) — lifetimes
    type Case = (u32, u32, f64, f64, f64, f64, f64, f64, f64, f64);
    let cases: &[Case] = &[
        (1, 2, 30.43, 38.86, 22.35, 0.726609136799059, 0.35693100864690896, 1.2259104241743999, 24.658616189236472, 35.87104282847429),
        (2, 1, 1.71, 38.86, 11.77, 0.2122273880722099, 0.05820268119915057, 0.20325062425619006, 18.911479869929103, 4.5840427944709985),
        (3, 0, 0.0, 38.86, 0.0, 1.0, 0.05421009733134889, 0.1947808579394776, 35.17100215250665, 8.243626092419344),
        (18, 1, 4.86, 38.86, 9.99, 0.310915280966149, 0.08526751962786228, 0.297764230720575, 17.674697381966816, 6.276474570137169),
        (100, 1, 23.86, 38.29, 26.22, 0.6469884214257884, 0.1796986292610012, 0.6267951461314717, 28.95165231434206, 21.63457611948957),
        (1500, 0, 0.0, 31.14, 0.0, 1.0, 0.06553028755807049, 0.23219750252198235, 35.17100215250665, 9.788515912577616),
        (2357, 0, 0.0, 27.0, 0.0, 1.0, 0.0737983542622355, 0.2589775055748141, 35.17100215250665, 10.888610000831905),
    ];
    for &(id, x, tx, t, m, pa, e10, e39, em, clv) in cases {
        assert!(rel(LT.p_alive(x, tx, t), pa) < 1e-12, "P(alive) of {id}");
        assert!(rel(LT.expected_purchases(x, tx, t, 10.0), e10) < 1e-9, "E[X(10)] of {id}");
        assert!(rel(LT.expected_purchases(x, tx, t, 39.0), e39) < 1e-9, "E[X(39)] of {id}");
        let ev = LT_GG.expected_order_value(x, m).unwrap();
        assert!(rel(ev, em) < 1e-12, "E[M] of {id}");
        let c = gamma_gamma::clv(&LT, TimeUnit::Weeks, x, tx, t, ev, 12, 0.01);
        assert!(rel(c, clv) < 1e-9, "CLV of {id}: {c} vs {clv}");
    }
    for (t, want) in [(1.0, 0.05318473689563137), (10.0, 0.4317609895226626), (52.0, 1.444020769869069), (1000.0, 6.573096101730836)] {
        assert!(rel(LT.expected_purchases_new_customer(t), want) < 1e-9, "E[X({t})]");
    }
}

#[test]
fn pipeline_on_the_cdnow_sample_in_weeks() {
    let (orders, n) = cdnow_sample_orders();
    let mut cfg = patron_analytics::AnalyticsConfig::default();
    cfg.model.time_unit = TimeUnit::Weeks;
    let out = patron_analytics::analyze(&orders, n, calibration_end(), &Default::default(), &cfg).unwrap();
    let bg = out.report.bgnbd.as_ref().unwrap();
    // unrounded summaries: the same published values
    assert_3_sig("r", bg.params.r, 0.243);
    assert_3_sig("alpha", bg.params.alpha, 4.414);
    assert_3_sig("a", bg.params.a, 0.793);
    assert_3_sig("b", bg.params.b, 2.426);
    let gg = out.report.gamma_gamma.as_ref().unwrap();
    assert_3_sig("p", gg.params.p, 6.25);
    assert_3_sig("q", gg.params.q, 3.74);
    assert_3_sig("gamma (cents)", gg.params.gamma / 100.0, 15.44);
    assert!(out.report.warnings.is_empty(), "{:?}", out.report.warnings);
    let json = serde_json::to_value(&out.report).unwrap();
    for k in ["r", "alpha", "a", "b", "log_likelihood", "converged", "iterations"] {
        assert!(!json["bgnbd"][k].is_null(), "bgnbd.{k}");
    }
    for k in ["p", "q", "gamma"] {
        assert!(json["gamma_gamma"][k].is_number(), "gamma_gamma.{k}");
    }
    assert!((out.report.horizon - 365.0 / 7.0).abs() < 1e-12);
    // every customer has purchases here: every model column is filled
    assert!(out.scores.clv.iter().all(|v| v.is_some_and(|v| v.is_finite() && v >= 0.0)));
}
