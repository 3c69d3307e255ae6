//! The holdout validation against lifetimes 0.11.3 (fixtures in `data/validation.json`, written
//! once by `data/validation_fixtures.py`): FHL 2005 eq. 10 and eq. 8 with fixed parameters to
//! 1e-6, and the CDNOW split of FHL 2005 (calibration to 1997-09-30, holdout to 1998-06-30, weeks)
//! end to end.

mod common;

use common::*;
use patron_analytics::validation::{validate, ValidationConfig};
use patron_analytics::{day_number, summarize, BgNbdParams, FitOptions, SummaryConfig, TimeUnit};
use serde_json::Value;

fn fixtures() -> Value {
    let path = data_dir().join("validation.json");
    serde_json::from_str(&std::fs::read_to_string(&path).expect("validation.json")).expect("valid JSON")
}

fn params(v: &Value) -> BgNbdParams {
    let f = |k: &str| v[k].as_f64().unwrap();
    BgNbdParams { r: f("r"), alpha: f("alpha"), a: f("a"), b: f("b") }
}

/// |got − want| ≤ tol × max(|want|, floor).
fn close(what: &str, got: f64, want: f64, tol: f64, floor: f64) {
    assert!((got - want).abs() <= tol * want.abs().max(floor), "{what}: got {got}, lifetimes {want}");
}

#[test]
fn conditional_expectations_match_lifetimes() {
    let f = fixtures();
    let mut n = 0;
    for set in f["conditional"].as_array().unwrap() {
        let p = params(&set["params"]);
        for c in set["cases"].as_array().unwrap() {
            let (x, tx, t_age, t) =
                (c["x"].as_u64().unwrap() as u32, c["t_x"].as_f64().unwrap(), c["T"].as_f64().unwrap(), c["t"].as_f64().unwrap());
            let got = p.expected_purchases(x, tx, t_age, t);
            close(&format!("{p:?} x={x} t_x={tx} T={t_age} t={t}"), got, c["expected"].as_f64().unwrap(), 1e-6, 1e-9);
            n += 1;
        }
    }
    assert_eq!(n, 3 * 9 * 6);
}

#[test]
fn probabilities_of_n_purchases_match_lifetimes() {
    let f = fixtures();
    let mut n = 0;
    for set in f["probability"].as_array().unwrap() {
        let p = params(&set["params"]);
        for c in set["cases"].as_array().unwrap() {
            let (t, k) = (c["t"].as_f64().unwrap(), c["n"].as_u64().unwrap() as u32);
            close(&format!("{p:?} P(X({t}) = {k})"), p.probability_of_n_purchases(t, k), c["p"].as_f64().unwrap(), 1e-6, 1e-9);
            n += 1;
        }
    }
    assert_eq!(n, 3 * 7 * 9);
}

fn cdnow_validation() -> patron_analytics::Validation {
    let (orders, n) = cdnow_sample_orders();
    let config = ValidationConfig {
        calibration_end: calibration_end(),
        holdout_end: day_number(chrono::NaiveDate::from_ymd_opt(1998, 6, 30).unwrap()),
        time_unit: TimeUnit::Weeks,
        fit: FitOptions::default(),
    };
    validate(&orders, n, &config).unwrap()
}

/// The FHL 2005 split of the CDNOW sample: the same base, the same counts, and forecasts equal
/// to lifetimes' within the two fits' difference (the fitted parameters agree to ~1e-5).
#[test]
fn cdnow_split_matches_lifetimes() {
    let f = fixtures();
    let want = &f["cdnow"];
    let v = cdnow_validation();
    assert_eq!(v.calibration_end.to_string(), "1997-09-30");
    assert_eq!(v.holdout_end.to_string(), "1998-06-30");
    assert_eq!(v.holdout_length, 39.0);
    assert_eq!(v.customers, 2357);
    // The published calibration estimates (FHL 2005): r = 0.243, α = 4.414, a = 0.793, b = 2.426.
    let lt = params(&want["bgnbd"]);
    for (name, got, w) in [("r", v.bgnbd.r, lt.r), ("alpha", v.bgnbd.alpha, lt.alpha), ("a", v.bgnbd.a, lt.a), ("b", v.bgnbd.b, lt.b)] {
        close(name, got, w, 1e-4, 0.0);
    }
    assert!(v.bgnbd.converged);
    close("log-likelihood", v.bgnbd.log_likelihood, want["bgnbd"]["log_likelihood"].as_f64().unwrap(), 1e-8, 0.0);
    assert_eq!(v.total.actual, want["total"]["actual"].as_f64().unwrap());
    close("total predicted", v.total.predicted, want["total"]["predicted"].as_f64().unwrap(), 1e-4, 0.0);
    for (got, w) in v.by_frequency.iter().zip(want["by_frequency"].as_array().unwrap()) {
        assert_eq!(got.customers, w["customers"].as_u64().unwrap(), "bucket {}", got.frequency);
        assert_eq!(got.actual_mean, w["actual_mean"].as_f64(), "bucket {}", got.frequency);
        close(
            &format!("bucket {} predicted", got.frequency),
            got.predicted_mean.unwrap(),
            w["predicted_mean"].as_f64().unwrap(),
            1e-4,
            0.0,
        );
    }
    for (got, w) in v.calibration_histogram.iter().zip(want["calibration_histogram"].as_array().unwrap()) {
        assert_eq!(got.actual_customers, w["actual_customers"].as_u64().unwrap(), "bucket {}", got.frequency);
        close(&format!("histogram {}", got.frequency), got.expected_customers, w["expected_customers"].as_f64().unwrap(), 1e-4, 0.0);
    }
    // Spend: lifetimes' figures are in dollars.
    let spend = &want["spend"];
    assert_eq!(v.spend.customers, spend["customers"].as_u64().unwrap());
    close("actual spend", v.spend.actual_mean.unwrap() / 100.0, spend["actual_mean"].as_f64().unwrap(), 1e-12, 0.0);
    close("predicted spend", v.spend.predicted_mean.unwrap() / 100.0, spend["predicted_mean"].as_f64().unwrap(), 1e-4, 0.0);
    close("MAE", v.errors.mae_per_customer, want["mae_per_customer"].as_f64().unwrap(), 1e-4, 0.0);
    let rel = v.errors.total_relative_error.unwrap();
    assert!((rel - (v.total.predicted - v.total.actual) / v.total.actual).abs() < 1e-15);
    eprintln!("CDNOW holdout: predicted {:.1} repeat purchase days, actual {} ({:+.1}%)", v.total.predicted, v.total.actual, 100.0 * rel);
}

/// With lifetimes' own parameters, the per-customer forecasts summed over the CDNOW base equal
/// lifetimes' total to 1e-6 (no fit in between).
#[test]
fn cdnow_forecast_with_lifetimes_parameters() {
    let f = fixtures();
    let want = &f["cdnow"];
    let p = params(&want["bgnbd"]);
    let (orders, n) = cdnow_sample_orders();
    let s = summarize(&orders, n, calibration_end(), &SummaryConfig::default()).unwrap();
    let w = |d: u32| f64::from(d) / 7.0;
    let total: f64 = (0..n).filter(|&c| s.purchase_days[c] > 0).map(|c| p.expected_purchases(s.x[c], w(s.t_x[c]), w(s.age[c]), 39.0)).sum();
    close("total predicted", total, want["total"]["predicted"].as_f64().unwrap(), 1e-6, 0.0);
    let mut expected = [0.0; 7];
    for c in (0..n).filter(|&c| s.purchase_days[c] > 0) {
        for (k, e) in expected.iter_mut().enumerate() {
            *e += p.probability_of_n_purchases(w(s.age[c]), k as u32);
        }
    }
    for (k, e) in expected.iter().enumerate() {
        close(&format!("histogram {k}"), *e, want["calibration_histogram"][k]["expected_customers"].as_f64().unwrap(), 1e-6, 0.0);
    }
}

/// Tracking (FHL 2005 figures 1–2): 78 weeks from the sample's first day; the weekly actual
/// counts add up to the base's repeat purchase days in both periods, the expectations to
/// Σᵢ E[X(age at the holdout end)] of eq. 9.
#[test]
fn cdnow_tracking_adds_up() {
    let v = cdnow_validation();
    assert_eq!(v.tracking.first().unwrap().period_start.to_string(), "1997-01-01");
    assert_eq!(v.tracking.len(), 78);
    let (orders, n) = cdnow_sample_orders();
    let hold = day_number(chrono::NaiveDate::from_ymd_opt(1998, 6, 30).unwrap());
    let s = summarize(&orders, n, hold, &SummaryConfig::default()).unwrap();
    let repeat: u64 = (0..n).map(|c| u64::from(s.x[c])).sum();
    assert_eq!(v.tracking.iter().map(|w| w.actual).sum::<u64>(), repeat);
    let p = BgNbdParams { r: v.bgnbd.r, alpha: v.bgnbd.alpha, a: v.bgnbd.a, b: v.bgnbd.b };
    let want: f64 = (0..n).filter(|&c| s.purchase_days[c] > 0).map(|c| p.expected_purchases_new_customer(f64::from(s.age[c]) / 7.0)).sum();
    let got: f64 = v.tracking.iter().map(|w| w.expected).sum();
    close("cumulative expectation", got, want, 1e-9, 0.0);
    // The holdout weeks' expectations are the unconditional forecast; their sum is of the
    // order of the conditional total (FHL report both close to the actual).
    let holdout: f64 = v.tracking.iter().filter(|w| w.period_start > v.calibration_end).map(|w| w.expected).sum();
    assert!((holdout / v.total.predicted - 1.0).abs() < 0.2, "{holdout} vs {}", v.total.predicted);
}
