//! `patron analyze` end to end: file mode reproduces the published CDNOW fits through the CLI,
//! bad files are refused with file/row/column, and database mode stores one scores row per
//! customer on SQLite and PostgreSQL.

use std::path::Path;

use patron_store::db::query;
use patron_store::testing::TestDb;
use patron_store::{test_both, Store};

mod common;

use common::{cdnow_csv, patron};

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs()
}

#[test]
fn file_mode_reproduces_the_published_cdnow_fits() {
    let dir = tempfile::tempdir().unwrap();
    let file = cdnow_csv(dir.path());
    let (scores, params) = (dir.path().join("scores.csv"), dir.path().join("params.json"));
    let out = patron()
        .args(["analyze", "--orders"])
        .arg(&file)
        .args(["--as-of", "1997-09-30", "--time-unit", "weeks", "--out"])
        .arg(&scores)
        .arg("--params")
        .arg(&params)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let p: serde_json::Value = serde_json::from_slice(&std::fs::read(&params).unwrap()).unwrap();
    // Fader, Hardie & Lee (2005) and Fader & Hardie (2013), to the 3 significant digits
    // they publish (the analytics crate pins the full-precision values).
    for (path, want) in [
        ("/bgnbd/r", 0.243),
        ("/bgnbd/alpha", 4.414),
        ("/bgnbd/a", 0.793),
        ("/bgnbd/b", 2.426),
        ("/bgnbd/log_likelihood", -9582.4),
        ("/gamma_gamma/p", 6.25),
        ("/gamma_gamma/q", 3.74),
        ("/gamma_gamma/gamma", 15.44),
    ] {
        let got = p.pointer(path).and_then(|v| v.as_f64()).unwrap_or_else(|| panic!("{path} missing in {p}"));
        assert!(rel(got, want) < 5e-3, "{path}: {got} vs published {want}");
    }
    assert_eq!(p["bgnbd"]["converged"], true);
    assert!(p["timings_ms"]["total"].as_f64().is_some());

    let mut rdr = csv::Reader::from_path(&scores).unwrap();
    let header: Vec<String> = rdr.headers().unwrap().iter().map(str::to_owned).collect();
    for col in [
        "customer_id",
        "x",
        "t_x",
        "T",
        "m",
        "p_alive",
        "expected_purchases",
        "expected_order_value",
        "clv",
        "rfm_r",
        "rfm_f",
        "rfm_m",
        "rfm_class",
        "abcd_tier",
        "lifecycle",
        "churn",
    ] {
        assert!(header.iter().any(|h| h == col), "scores.csv lacks {col}: {header:?}");
    }
    let rows: Vec<csv::StringRecord> = rdr.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), 2357, "one row per customer");
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    // Customer 0001 of the sample: the summary file gives x = 2, t_x = 30.43, T = 38.86 weeks.
    let first = rows.iter().find(|r| &r[col("customer_id")] == "0001").expect("customer 0001");
    assert_eq!(&first[col("x")], "2");
    assert!((first[col("t_x")].parse::<f64>().unwrap() - 30.43).abs() < 0.01);
    assert!((first[col("T")].parse::<f64>().unwrap() - 38.86).abs() < 0.01);
    for r in &rows {
        let p: f64 = r[col("p_alive")].parse().unwrap();
        assert!((0.0..=1.0).contains(&p));
    }
}

/// An existing scores file is replaced (moved aside and deleted, not truncated in place): the
/// new one is complete, nothing is left beside it, and an output through a symlink is written
/// where the link points, as before.
#[test]
fn file_mode_replaces_an_existing_scores_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = cdnow_csv(dir.path());
    let run = |scores: &Path| {
        let out = patron()
            .args(["analyze", "--orders"])
            .arg(&file)
            .args(["--as-of", "1997-09-30", "--out"])
            .arg(scores)
            .arg("--params")
            .arg(dir.path().join("params.json"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        std::fs::read_to_string(scores).unwrap()
    };
    let scores = dir.path().join("scores.csv");
    let fresh = run(&scores);
    std::fs::write(&scores, "stale\n".repeat(100_000)).unwrap();
    let inode = |p: &Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap());
    let before = inode(&scores);
    assert_eq!(run(&scores), fresh, "replaced in full");
    assert_ne!(inode(&scores), before, "a new file, not the old one truncated");
    let mut names: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(names, ["cdnow.csv", "params.json", "scores.csv"], "nothing left aside");

    let target = dir.path().join("target.csv");
    std::fs::write(&target, "stale\n").unwrap();
    let link = dir.path().join("link.csv");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    assert_eq!(run(&link), fresh);
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "the link stays");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), fresh);
}

#[test]
fn file_mode_refuses_bad_rows_with_file_row_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.csv");
    std::fs::write(&file, "客户编号,日期,金额\nA,2026-01-01,10\nB,2026-02-30,5\nC,2026-01-03,abc\n").unwrap();
    let scores = dir.path().join("s.csv");
    let out = patron()
        .args(["analyze", "--orders"])
        .arg(&file)
        .args(["--as-of", "2026-06-30", "--out"])
        .arg(&scores)
        .arg("--params")
        .arg(dir.path().join("p.json"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.csv: row 3, column \"日期\""), "{err}");
    assert!(err.contains("bad.csv: row 4, column \"金额\""), "{err}");
    assert!(!scores.exists(), "nothing is written when rows are rejected");

    // Without --as-of the file mode does not guess.
    let out = patron().args(["analyze", "--orders"]).arg(&file).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--as-of"));
}

async fn count(store: &Store, sql: &str) -> i64 {
    let (n,): (i64,) = store.db.reader().fetch_one(query(sql.to_owned())).await.expect("count");
    n
}

test_both!(database_mode_stores_one_scores_row_per_customer, |db: TestDb| async move {
    let dir = tempfile::tempdir().unwrap();
    let gen = patron()
        .args(["generate", "--customers", "800", "--seed", "3", "--start", "2024-01-01", "--end", "2026-06-29", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(gen.status.success());
    for kind in ["customers", "orders"] {
        let out = patron().args(["import", kind]).arg(dir.path().join(format!("{kind}.csv"))).args(["--db", &db.url]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let out = patron().args(["analyze", "--rebuild", "--as-of", "2026-06-30", "--db", &db.url]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("BG/NBD: r = ") && stdout.contains("800 customers scored"), "{stdout}");
    assert_eq!(count(&db.store, "SELECT COUNT(*) FROM customer_scores").await, 800);
    assert_eq!(count(&db.store, "SELECT COUNT(*) FROM analytics_runs").await, 1);
    // The file mode over the same orders fits the same model (its customers are those with orders).
    let scores = dir.path().join("s.csv");
    let params = dir.path().join("p.json");
    let out = patron()
        .args(["analyze", "--orders"])
        .arg(dir.path().join("orders.csv"))
        .args(["--as-of", "2026-06-30", "--out"])
        .arg(&scores)
        .arg("--params")
        .arg(&params)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let file_fit: serde_json::Value = serde_json::from_slice(&std::fs::read(&params).unwrap()).unwrap();
    let run = db.store.latest_run().await.unwrap().unwrap();
    for k in ["r", "alpha", "a", "b"] {
        let (a, b) = (run.report["bgnbd"][k].as_f64().unwrap(), file_fit["bgnbd"][k].as_f64().unwrap());
        assert!(rel(a, b) < 1e-6, "{k}: database {a} vs file {b}");
    }
});
