//! `patron validate`: the holdout validation of the models (Fader–Hardie–Lee 2005), from an
//! orders file (written as validation.json, no database) or on the database (stored; the
//! dashboard shows the latest). Both print the conditional-expectations table.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use patron_analytics::validation::{validate, Validation, ValidationConfig};
use patron_analytics::{FitOptions, TimeUnit};
use patron_store::import::order_file::OrderFileOptions;
use patron_store::import::Encoding;
use patron_store::users::Actor;
use patron_store::Store;

use crate::analyze::{read_orders, report_rejections};

/// What file mode needs.
pub struct FileMode {
    /// The orders file.
    pub orders: PathBuf,
    /// Last day of the calibration period.
    pub calibration_end: chrono::NaiveDate,
    /// Last day of the holdout period.
    pub holdout_end: chrono::NaiveDate,
    /// Time unit of the fit.
    pub time_unit: TimeUnit,
    /// Header mappings.
    pub mappings: Vec<(String, String)>,
    /// Forced encoding.
    pub encoding: Option<Encoding>,
    /// Business time zone for calendar days.
    pub tz: chrono_tz::Tz,
    /// Go on without the rejected rows.
    pub skip_invalid: bool,
    /// validation.json path.
    pub out: PathBuf,
}

/// The split's checks before anything is read: a clear error instead of a run that cannot mean
/// anything.
pub fn check_split(calibration_end: chrono::NaiveDate, holdout_end: chrono::NaiveDate) -> Result<()> {
    if holdout_end <= calibration_end {
        anyhow::bail!("--holdout-end {holdout_end} must be after --calibration-end {calibration_end}");
    }
    Ok(())
}

/// File mode: read, validate, write validation.json. Returns the exit code (0; 2 = rejected rows
/// and nothing written; 3 = written without the rejected rows), as `analyze --orders`.
pub fn validate_file(m: &FileMode) -> Result<u8> {
    check_split(m.calibration_end, m.holdout_end)?;
    let total = Instant::now();
    let file = std::fs::File::open(&m.orders).with_context(|| format!("opening {}", m.orders.display()))?;
    let opts = OrderFileOptions { encoding: m.encoding, mappings: m.mappings.clone(), tz: m.tz };
    let name = m.orders.display().to_string();
    let read = read_orders(file, &name, &opts, &|_: u64| {}).map_err(|e| anyhow!("{name}: {e}"))?;
    if read.rejected > 0 {
        report_rejections(&read, &m.orders)?;
        if !m.skip_invalid {
            eprintln!("{name}: {} rows rejected — nothing written (use --skip-invalid to validate on the valid rows)", read.rejected);
            return Ok(2);
        }
    }
    let config = ValidationConfig {
        calibration_end: patron_analytics::day_number(m.calibration_end),
        holdout_end: patron_analytics::day_number(m.holdout_end),
        time_unit: m.time_unit,
        fit: FitOptions::default(),
    };
    let v = validate(&read.orders, read.customer_ids.len(), &config).map_err(|e| anyhow!("validation failed: {e}"))?;
    print_table(&v);
    let mut f = std::fs::File::create(&m.out).with_context(|| format!("creating {}", m.out.display()))?;
    serde_json::to_writer_pretty(&mut f, &v)?;
    writeln!(f)?;
    println!(
        "{name}: {} customers, {} orders → {} in {:.2} s",
        read.customer_ids.len(),
        read.orders.len(),
        m.out.display(),
        total.elapsed().as_secs_f64()
    );
    Ok(if read.rejected > 0 { 3 } else { 0 })
}

/// Database mode: validate, store, print.
pub async fn validate_db(store: &Store, calibration_end: chrono::NaiveDate, holdout_end: chrono::NaiveDate, unit: TimeUnit) -> Result<()> {
    check_split(calibration_end, holdout_end)?;
    let started = Instant::now();
    let record = store.run_validation(&Actor::cli(), calibration_end, holdout_end, unit).await?;
    print_table(&record.document);
    println!("validation {} stored in {:.1} s", record.id, started.elapsed().as_secs_f64());
    Ok(())
}

fn num(v: Option<f64>) -> String {
    v.map_or_else(|| "–".into(), |v| format!("{v:.3}"))
}

/// The document in words and a table (FHL 2005 figure 4's numbers).
pub fn print_table(v: &Validation) {
    let unit = match v.time_unit {
        TimeUnit::Days => "days",
        TimeUnit::Weeks => "weeks",
    };
    println!(
        "calibration up to {}, holdout {} days to {} ({} {unit}); {} customers",
        v.calibration_end,
        (v.holdout_end - v.calibration_end).num_days(),
        v.holdout_end,
        v.holdout_length,
        v.customers
    );
    let b = &v.bgnbd;
    println!(
        "BG/NBD on the calibration period: r = {:.6}, alpha = {:.6}, a = {:.6}, b = {:.6}; log-likelihood {:.4}; converged: {}",
        b.r, b.alpha, b.a, b.b, b.log_likelihood, b.converged
    );
    println!("{:>18} {:>10} {:>14} {:>16}", "repeat purchases", "customers", "holdout actual", "holdout predicted");
    for f in &v.by_frequency {
        let label =
            if f.frequency >= patron_analytics::validation::TOP_BUCKET { format!("{}+", f.frequency) } else { f.frequency.to_string() };
        println!("{label:>18} {:>10} {:>14} {:>16}", f.customers, num(f.actual_mean), num(f.predicted_mean));
    }
    let rel = v.errors.total_relative_error.map_or_else(String::new, |r| format!(" ({:+.1}%)", 100.0 * r));
    println!(
        "holdout repeat purchase days: predicted {:.1}, actual {}{rel}; mean absolute error per customer {:.3}",
        v.total.predicted, v.total.actual, v.errors.mae_per_customer
    );
    let s = &v.spend;
    println!(
        "spend per purchase day ({} customers buying again in both periods, minor units): predicted {}, actual {}",
        s.customers,
        num(s.predicted_mean),
        num(s.actual_mean)
    );
    for w in &v.warnings {
        eprintln!("warning: {w}");
    }
}
