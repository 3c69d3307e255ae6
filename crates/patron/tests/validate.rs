//! `patron validate` end to end: the CDNOW split of Fader, Hardie & Lee (2005) through the CLI
//! against lifetimes' numbers, bad input refused with clear messages, and database mode storing
//! the same document the file mode writes, on SQLite and PostgreSQL.

use patron_store::test_both;
use patron_store::testing::TestDb;
use serde_json::Value;

mod common;

use common::{analytics_data, cdnow_csv, patron};

fn close(what: &str, got: &Value, want: &Value, tol: f64) {
    let (g, w) = (got.as_f64().unwrap_or(f64::NAN), want.as_f64().unwrap_or(f64::NAN));
    assert!((g - w).abs() <= tol * w.abs(), "{what}: got {g}, want {w}");
}

#[test]
fn cdnow_split_through_the_cli_matches_lifetimes() {
    let dir = tempfile::tempdir().unwrap();
    let file = cdnow_csv(dir.path());
    let out_path = dir.path().join("validation.json");
    let out = patron()
        .args(["validate", "--orders"])
        .arg(&file)
        .args(["--calibration-end", "1997-09-30", "--holdout-end", "1998-06-30", "--time-unit", "weeks", "--out"])
        .arg(&out_path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("2357 customers") && stdout.contains("7+") && stdout.contains("holdout repeat purchase days"), "{stdout}");
    let v: Value = serde_json::from_slice(&std::fs::read(&out_path).unwrap()).unwrap();
    let fixtures: Value = serde_json::from_slice(&std::fs::read(analytics_data("validation.json")).unwrap()).unwrap();
    let want = &fixtures["cdnow"];
    for key in ["calibration_end", "holdout_end", "holdout_length", "customers"] {
        assert_eq!(v[key], want[key], "{key}");
    }
    assert_eq!(v["time_unit"], "weeks");
    // The published calibration estimates (FHL 2005) to 3 digits; lifetimes' to 1e-4.
    for (k, published) in [("r", 0.243), ("alpha", 4.414), ("a", 0.793), ("b", 2.426)] {
        close(k, &v["bgnbd"][k], &want["bgnbd"][k], 1e-4);
        assert!((v["bgnbd"][k].as_f64().unwrap() - published).abs() < 6e-4, "{k}");
    }
    assert_eq!(v["total"]["actual"], want["total"]["actual"]);
    close("total predicted", &v["total"]["predicted"], &want["total"]["predicted"], 1e-4);
    for k in 0..8 {
        let (g, w) = (&v["by_frequency"][k], &want["by_frequency"][k]);
        assert_eq!((g["frequency"].as_u64(), &g["customers"], &g["actual_mean"]), (Some(k as u64), &w["customers"], &w["actual_mean"]));
        close(&format!("bucket {k}"), &g["predicted_mean"], &w["predicted_mean"], 1e-4);
        let (g, w) = (&v["calibration_histogram"][k], &want["calibration_histogram"][k]);
        assert_eq!(g["actual_customers"], w["actual_customers"]);
        close(&format!("histogram {k}"), &g["expected_customers"], &w["expected_customers"], 1e-4);
    }
    assert_eq!(v["tracking"].as_array().unwrap().len(), 78);
    assert_eq!(v["tracking"][0]["period_start"], "1997-01-01");
    // Money in minor units (cents); lifetimes' in dollars.
    assert_eq!(v["spend"]["customers"], want["spend"]["customers"]);
    let cents = |x: &Value| Value::from(x.as_f64().unwrap() / 100.0);
    close("actual spend", &cents(&v["spend"]["actual_mean"]), &want["spend"]["actual_mean"], 1e-12);
    close("predicted spend", &cents(&v["spend"]["predicted_mean"]), &want["spend"]["predicted_mean"], 1e-4);
    close("MAE", &v["errors"]["mae_per_customer"], &want["mae_per_customer"], 1e-4);
}

#[test]
fn bad_input_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let file = cdnow_csv(dir.path());
    let out_path = dir.path().join("v.json");
    let run = |args: &[&str]| {
        let out = patron().args(["validate", "--orders"]).arg(&file).args(args).arg("--out").arg(&out_path).output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    for (args, message) in [
        (&["--calibration-end", "1998-06-30", "--holdout-end", "1997-09-30"][..], "must be after --calibration-end"),
        (&["--calibration-end", "1997-09-30", "--holdout-end", "1997-09-30"][..], "must be after --calibration-end"),
        (&["--calibration-end", "1997-13-01", "--holdout-end", "1998-06-30"][..], "--calibration-end"),
        (&["--calibration-end", "1997-09-30", "--holdout-end", "soon"][..], "--holdout-end"),
        (&["--calibration-end", "1997-09-30"][..], "--holdout-end DATE is required"),
        (&["--calibration-end", "1996-12-31", "--holdout-end", "1998-06-30"][..], "no customer made a first purchase"),
    ] {
        let (code, err) = run(args);
        assert_eq!(code, Some(1), "{args:?}: {err}");
        assert!(err.contains(message), "{args:?}: {err}");
        assert!(!out_path.exists(), "{args:?}: nothing written");
    }
    // Rejected rows: reported with file, row and column; nothing written (exit 2), or written
    // without them with --skip-invalid (exit 3).
    let bad = dir.path().join("bad.csv");
    let mut text = std::fs::read_to_string(&file).unwrap();
    text.push_str("X1,1997-02-30,5\n");
    std::fs::write(&bad, text).unwrap();
    let args = ["--calibration-end", "1997-09-30", "--holdout-end", "1998-06-30"];
    let out = patron().args(["validate", "--orders"]).arg(&bad).args(args).arg("--out").arg(&out_path).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("bad.csv: row 6921, column \"date\""),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out_path.exists());
    let out =
        patron().args(["validate", "--orders"]).arg(&bad).args(args).arg("--skip-invalid").arg("--out").arg(&out_path).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&std::fs::read(&out_path).unwrap()).unwrap();
    assert_eq!(v["customers"], 2357);
}

test_both!(database_mode_stores_what_file_mode_writes, |db: TestDb| async move {
    let dir = tempfile::tempdir().unwrap();
    let gen = patron()
        .args(["generate", "--customers", "400", "--seed", "5", "--start", "2024-01-01", "--end", "2026-06-29", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(gen.status.success());
    for kind in ["customers", "orders"] {
        let out = patron().args(["import", kind]).arg(dir.path().join(format!("{kind}.csv"))).args(["--db", &db.url]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let split = ["--calibration-end", "2025-12-31", "--holdout-end", "2026-06-29"];
    let out = patron().arg("validate").args(split).args(["--db", &db.url]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("validation 1 stored") && stdout.contains("repeat purchases"), "{stdout}");
    let stored = db.store.latest_validation().await.unwrap().expect("stored");
    let stored = serde_json::to_value(&stored.document).unwrap();

    let path = dir.path().join("v.json");
    let out =
        patron().args(["validate", "--orders"]).arg(dir.path().join("orders.csv")).args(split).arg("--out").arg(&path).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let file: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    // The same base, counts and fit (the customers are numbered differently; the fit does not
    // depend on it, sums over customers may differ in the last bits).
    for key in ["customers", "holdout_length", "calibration_end", "holdout_end"] {
        assert_eq!(stored[key], file[key], "{key}");
    }
    assert_eq!(stored["total"]["actual"], file["total"]["actual"]);
    assert_eq!(stored["spend"]["customers"], file["spend"]["customers"]);
    close("r", &stored["bgnbd"]["r"], &file["bgnbd"]["r"], 1e-9);
    close("predicted", &stored["total"]["predicted"], &file["total"]["predicted"], 1e-9);
    for k in 0..8 {
        let (a, b) = (&stored["by_frequency"][k], &file["by_frequency"][k]);
        assert_eq!((&a["customers"], &a["actual_mean"]), (&b["customers"], &b["actual_mean"]), "bucket {k}");
        assert_eq!(stored["calibration_histogram"][k]["actual_customers"], file["calibration_histogram"][k]["actual_customers"]);
    }
    let weeks =
        |v: &Value| v["tracking"].as_array().unwrap().iter().map(|w| (w["period_start"].clone(), w["actual"].clone())).collect::<Vec<_>>();
    assert_eq!(weeks(&stored), weeks(&file));
    assert!(stored["total"]["actual"].as_f64().unwrap() > 0.0);

    // Bad splits on the database: clear errors, nothing stored.
    let out =
        patron().args(["validate", "--calibration-end", "2026-06-29", "--holdout-end", "2025-12-31", "--db", &db.url]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("must be after --calibration-end"));
    let out =
        patron().args(["validate", "--calibration-end", "2020-01-01", "--holdout-end", "2025-12-31", "--db", &db.url]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no customer made a first purchase"), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(db.store.latest_validation().await.unwrap().map(|v| v.id), Some(1));
});
