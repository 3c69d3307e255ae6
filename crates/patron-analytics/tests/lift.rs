//! The lift intervals against statsmodels (tests/data/lift.json, made by
//! tests/data/lift_fixtures.py): Newcombe's hybrid score interval and Welch's interval, to 1e-6.

use patron_analytics::lift::{enough, newcombe_diff, t_quantile, welch_diff, Z_95};
use serde_json::Value;

fn fixtures() -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/lift.json")).expect("lift fixtures");
    serde_json::from_str(&text).expect("lift fixtures JSON")
}

#[test]
fn newcombe_matches_statsmodels() {
    let f = fixtures();
    let cases = f["proportions"].as_array().unwrap();
    assert!(cases.len() >= 10);
    for c in cases {
        let g = |k: &str| c[k].as_u64().unwrap();
        let i = newcombe_diff(g("count1"), g("n1"), g("count2"), g("n2"), Z_95).unwrap();
        for (ours, theirs) in [(i.estimate, &c["diff"]), (i.low, &c["low"]), (i.high, &c["high"])] {
            assert!((ours - theirs.as_f64().unwrap()).abs() < 1e-6, "{c}: {i:?}");
        }
    }
}

#[test]
fn welch_matches_statsmodels() {
    let f = fixtures();
    for c in f["means"].as_array().unwrap() {
        let v = |k: &str| c[k].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect::<Vec<f64>>();
        let i = welch_diff(&v("x1"), &v("x2")).unwrap();
        for (ours, theirs) in [(i.estimate, &c["diff"]), (i.low, &c["low"]), (i.high, &c["high"])] {
            let t = theirs.as_f64().unwrap();
            assert!((ours - t).abs() < 1e-6 * t.abs().max(1.0), "{ours} vs {t}");
        }
    }
}

#[test]
fn t_quantiles() {
    // scipy.stats.t.ppf(0.975, df) for df 1, 2.5, 10, 1000.
    for (df, q) in [(1.0, 12.706204736174694), (2.5, 3.5746548420036817), (10.0, 2.228138851986274), (1000.0, 1.9623390808264083)] {
        assert!((t_quantile(0.975, df) - q).abs() < 1e-9, "df {df}");
    }
    assert!(newcombe_diff(1, 0, 0, 5, Z_95).is_none());
    assert!(welch_diff(&[1.0], &[1.0, 2.0]).is_none());
    assert!(enough(30, 30) && !enough(1000, 29));
}
