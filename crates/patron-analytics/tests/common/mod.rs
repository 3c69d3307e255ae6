//! Loaders of the CDNOW reference data in /work/shared/data (tests may read files; the
//! library does not).
#![allow(dead_code)]

use std::path::PathBuf;

use patron_analytics::{day_number, Orders};

/// The CDNOW reference files, copied into the crate (`tests/data`, see its README) so a fresh
/// clone tests without anything beside it.
pub fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

fn read(name: &str) -> String {
    let path = data_dir().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// One row of cdnow_customers_summary_with_transactions.csv (weeks, rounded to 2 decimals).
#[derive(Debug, Clone, Copy)]
pub struct SummaryRow {
    pub id: u32,
    pub x: u32,
    pub t_x: f64,
    pub age: f64,
    pub zbar: f64,
}

pub fn cdnow_summary() -> Vec<SummaryRow> {
    read("cdnow_customers_summary_with_transactions.csv")
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            SummaryRow {
                id: f[0].parse().unwrap(),
                x: f[1].parse().unwrap(),
                t_x: f[2].parse().unwrap(),
                age: f[3].parse().unwrap(),
                zbar: f[4].parse().unwrap(),
            }
        })
        .collect()
}

/// CDNOW_sample.txt as orders: customer index = sample_id − 1, dollars → cents.
/// Returns (orders, number of customers).
pub fn cdnow_sample_orders() -> (Orders, usize) {
    let mut o = Orders::default();
    let mut n = 0usize;
    for line in read("CDNOW_sample.txt").lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 5 {
            continue;
        }
        let id: u32 = f[1].parse().unwrap();
        let date = chrono::NaiveDate::parse_from_str(f[2], "%Y%m%d").unwrap();
        let dollars: f64 = f[4].parse().unwrap();
        o.customer.push(id - 1);
        o.day.push(day_number(date));
        o.amount_cents.push((dollars * 100.0).round() as i64);
        n = n.max(id as usize);
    }
    (o, n)
}

/// 1997-09-30, the end of the CDNOW calibration period.
pub fn calibration_end() -> i32 {
    day_number(chrono::NaiveDate::from_ymd_opt(1997, 9, 30).unwrap())
}
