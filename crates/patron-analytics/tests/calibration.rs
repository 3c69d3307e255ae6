//! The channel calibration's posterior against scipy (tests/data/beta.json, made by
//! tests/data/beta_fixtures.py with scipy.stats.beta.ppf).

use patron_analytics::calibration::response_posterior;

#[test]
fn posteriors_equal_scipy() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/beta.json")).expect("beta fixtures");
    let doc: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    let cases = doc["cases"].as_array().expect("cases");
    assert!(cases.len() >= 10);
    for c in cases {
        let (s, r) = (c["sends"].as_u64().unwrap(), c["responses"].as_u64().unwrap());
        let p = response_posterior(s, r);
        for (got, want) in [(p.mean, &c["mean"]), (p.low, &c["low"]), (p.high, &c["high"])] {
            let want = want.as_f64().unwrap();
            assert!((got - want).abs() < 1e-9, "sends={s} responses={r}: {got} vs scipy {want}");
        }
    }
}
