//! What the CLI tests share: the binary and the CDNOW sample as an orders file.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The `patron` binary of this build, logging warnings only.
pub fn patron() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_patron"));
    c.env("PATRON_LOG", "warn");
    c
}

/// A file of patron-analytics' test data.
pub fn analytics_data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../patron-analytics/tests/data").join(name)
}

/// CDNOW_sample.txt (`original_id sample_id YYYYMMDD cds dollars`) as `customer_id,date,amount`
/// in `dir/cdnow.csv`.
pub fn cdnow_csv(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(analytics_data("CDNOW_sample.txt")).expect("CDNOW sample");
    let mut csv = String::from("customer_id,date,amount\n");
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split_whitespace().collect();
        csv.push_str(&format!("{},{},{}\n", f[1], f[2], f[4]));
    }
    let path = dir.join("cdnow.csv");
    std::fs::write(&path, csv).expect("write");
    path
}
