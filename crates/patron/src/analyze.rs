//! `patron analyze`: score every customer, from the database (stored as scores rows) or from an
//! orders file (written as scores.csv + params.json, no database).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use patron_analytics::{AnalyticsConfig, AnalyticsOutput, CustomerExtras, TimeUnit};
use patron_store::import::order_file::{read_order_bytes, read_order_file, OrderFile, OrderFileOptions};
use patron_store::import::{write_rejections, Encoding};
use patron_store::users::Actor;
use patron_store::Store;

/// The orders file of file mode, shared by `analyze` and `validate`.
#[derive(clap::Args, Clone, Debug)]
pub struct OrdersFileArgs {
    /// File mode: an orders file with columns customer_id, date, amount (others ignored).
    #[arg(long, value_name = "FILE")]
    pub orders: Option<PathBuf>,
    /// File mode: map a source column to a field: --map ordered_at=date (repeatable).
    #[arg(long = "map", value_name = "SOURCE=FIELD", requires = "orders")]
    pub map: Vec<String>,
    /// File mode: force the encoding instead of detecting it.
    #[arg(long, value_parser = ["utf-8", "gb18030"], requires = "orders")]
    pub encoding: Option<String>,
    /// File mode: use the valid rows even if some are rejected.
    #[arg(long, requires = "orders")]
    pub skip_invalid: bool,
}

/// Column mappings (source column, field) and the forced encoding of an orders file.
pub type FileReading = (Vec<(String, String)>, Option<Encoding>);

impl OrdersFileArgs {
    /// The column mappings and the forced encoding, checked.
    pub fn mappings_and_encoding(&self) -> Result<FileReading> {
        Ok((crate::parse_pairs(&self.map, "--map")?, self.encoding.as_deref().map(str::parse::<Encoding>).transpose()?))
    }
}

/// Model settings shared by both modes.
#[derive(clap::Args, Clone, Debug)]
pub struct ModelArgs {
    /// Time unit of the BG/NBD model and of --horizon (weeks for comparison with the literature).
    #[arg(long, value_parser = ["days", "weeks"], default_value = "days")]
    pub time_unit: String,
    /// Horizon of "expected purchases", in the time unit (default 90 days or 13 weeks).
    #[arg(long)]
    pub horizon: Option<u32>,
    /// CLV horizon in months of 30 days.
    #[arg(long, default_value_t = 12)]
    pub clv_months: u32,
    /// Monthly discount rate of the CLV.
    #[arg(long, default_value_t = 0.01)]
    pub discount: f64,
}

impl ModelArgs {
    /// The pipeline configuration these flags describe (DESIGN §4 defaults otherwise).
    pub fn config(&self) -> Result<AnalyticsConfig> {
        let mut config = AnalyticsConfig::default();
        let unit = match self.time_unit.as_str() {
            "weeks" => TimeUnit::Weeks,
            _ => TimeUnit::Days,
        };
        let per_unit = if unit == TimeUnit::Weeks { 7 } else { 1 };
        let horizon = self.horizon.unwrap_or(if unit == TimeUnit::Weeks { 13 } else { 90 });
        if horizon == 0 {
            bail!("--horizon must be at least 1");
        }
        if self.clv_months == 0 || self.clv_months > 1200 {
            bail!("--clv-months must be between 1 and 1200");
        }
        if !(self.discount.is_finite() && (0.0..1.0).contains(&self.discount)) {
            bail!("--discount must be a monthly rate in [0, 1), e.g. 0.01");
        }
        config.model.time_unit = unit;
        config.model.horizon_days = horizon.checked_mul(per_unit).ok_or_else(|| anyhow!("--horizon is too large"))?;
        config.model.clv_months = self.clv_months;
        config.model.monthly_discount = self.discount;
        Ok(config)
    }
}

/// Database mode: analyse as of `as_of`, store scores and the run; print the fit.
pub async fn analyze_db(store: &Store, as_of: chrono::NaiveDate, rebuild: bool, config: &AnalyticsConfig) -> Result<()> {
    let started = Instant::now();
    let backfilled = store.backfill_order_days().await?;
    if backfilled > 0 {
        eprintln!("business days filled in for {backfilled} orders");
    }
    if rebuild {
        let n = store.rebuild_summaries().await?;
        eprintln!("summaries rebuilt for {n} customers in {:.1} s", started.elapsed().as_secs_f64());
    }
    let (run_id, out) = store.run_analysis(&Actor::cli(), as_of, config).await?;
    print_fit(&out);
    println!("run {run_id}: {} customers scored as of {as_of} in {:.1} s", out.summaries.len(), started.elapsed().as_secs_f64());
    let actions: Vec<String> = store.next_action_counts().await?.into_iter().map(|(a, n)| format!("{a} {n}")).collect();
    println!("next best actions: {}", actions.join(", "));
    Ok(())
}

fn print_fit(out: &AnalyticsOutput) {
    let r = &out.report;
    if let Some(bg) = &r.bgnbd {
        let p = bg.params;
        println!(
            "BG/NBD: r = {:.6}, alpha = {:.6}, a = {:.6}, b = {:.6}; log-likelihood {:.4}; {} iterations; converged: {}",
            p.r, p.alpha, p.a, p.b, bg.log_likelihood, bg.iterations, bg.converged
        );
    }
    if let Some(gg) = &r.gamma_gamma {
        let p = gg.params;
        println!("Gamma-Gamma: p = {:.6}, q = {:.6}, gamma = {:.6} (minor units); converged: {}", p.p, p.q, p.gamma, gg.converged);
    }
    for w in &r.warnings {
        eprintln!("warning: {w}");
    }
}

/// What file mode needs besides the model settings.
pub struct FileMode {
    /// The orders file.
    pub orders: PathBuf,
    /// As-of date.
    pub as_of: chrono::NaiveDate,
    /// Header mappings.
    pub mappings: Vec<(String, String)>,
    /// Forced encoding.
    pub encoding: Option<Encoding>,
    /// Business time zone for calendar days.
    pub tz: chrono_tz::Tz,
    /// Go on without the rejected rows.
    pub skip_invalid: bool,
    /// scores.csv path.
    pub out: PathBuf,
    /// params.json path.
    pub params: PathBuf,
}

/// File mode: read, analyse, write scores.csv and params.json. Returns the exit code
/// (0, 2 = rejected rows and nothing written, 3 = written without the rejected rows).
pub fn analyze_file(m: &FileMode, config: &AnalyticsConfig) -> Result<u8> {
    let total = Instant::now();
    let file = std::fs::File::open(&m.orders).with_context(|| format!("opening {}", m.orders.display()))?;
    let opts = OrderFileOptions { encoding: m.encoding, mappings: m.mappings.clone(), tz: m.tz };
    let name = m.orders.display().to_string();
    let quiet = !std::io::IsTerminal::is_terminal(&std::io::stderr());
    let progress = move |n: u64| {
        if !quiet {
            eprint!("\rreading: {n} rows");
        }
    };
    let read = read_orders(file, &name, &opts, &progress).map_err(|e| anyhow!("{name}: {e}"))?;
    if !quiet {
        eprintln!();
    }
    let read_ms = total.elapsed().as_secs_f64() * 1e3;
    if read.rejected > 0 {
        report_rejections(&read, &m.orders)?;
        if !m.skip_invalid {
            eprintln!("{name}: {} rows rejected — nothing written (use --skip-invalid to analyse the valid rows)", read.rejected);
            return Ok(2);
        }
    }
    let n = read.customer_ids.len();
    let as_of_day = patron_analytics::day_number(m.as_of);
    let (out, stages) = patron_analytics::analyze_timed(&read.orders, n, as_of_day, &CustomerExtras::default(), config)
        .map_err(|e| anyhow!("analysis failed: {e}"))?;
    print_fit(&out);
    let write_start = Instant::now();
    write_scores(&m.out, &read, &out, config.model.time_unit)?;
    let write_ms = write_start.elapsed().as_secs_f64() * 1e3;
    let mut timings = serde_json::Map::new();
    timings.insert("read".into(), read_ms.into());
    for s in &stages {
        timings.insert(s.stage.into(), s.ms.into());
    }
    timings.insert("write".into(), write_ms.into());
    timings.insert("total".into(), (total.elapsed().as_secs_f64() * 1e3).into());
    write_params(&m.params, &read, &out, timings)?;
    println!(
        "{}: {} customers, {} orders as of {} → {} and {} in {:.2} s",
        name,
        n,
        read.orders.len(),
        m.as_of,
        m.out.display(),
        m.params.display(),
        total.elapsed().as_secs_f64()
    );
    let code = if read.rejected > 0 { 3 } else { 0 };
    // The process ends right after this; freeing a million customer ids and a few hundred
    // MiB of columns one allocation at a time would only delay that (the OS takes it all back).
    std::mem::forget(read);
    std::mem::forget(out);
    Ok(code)
}

/// Reads the orders file: a regular UTF-8 CSV file is mapped into memory and parsed in place
/// (copying 200 MB through `read` was a tenth of the reading); anything else (a pipe, JSON
/// lines, GB18030) streams through the reader.
pub(crate) fn read_orders(
    file: std::fs::File,
    name: &str,
    opts: &OrderFileOptions,
    progress: &dyn Fn(u64),
) -> patron_store::Result<OrderFile> {
    let len = file.metadata().ok().filter(|m| m.is_file()).map_or(0, |m| m.len());
    if len > 0 {
        // A file of up to 1 GiB is read in whole when mapped (one call instead of a page fault
        // per few pages); a larger one comes in page by page, ahead of the parser, so that a
        // file larger than memory never has to fit.
        let mut options = memmap2::MmapOptions::new();
        if len <= 1 << 30 {
            options.populate();
        }
        // SAFETY: the mapping is only read, and only while this function runs. Should another
        // process truncate the file meanwhile, reading the lost pages raises SIGBUS (the
        // process ends; nothing has been written yet); should it rewrite the file, the rows
        // read may mix old and new bytes, as they could when reading with `read` as it changes.
        if let Ok(map) = unsafe { options.map(&file) } {
            let _ = map.advise(memmap2::Advice::Sequential);
            // Parsed blocks are unmapped as the parser leaves them: they are not read again, and
            // mapped they would count in the process's memory (10 GiB for a 10 GiB file).
            let release = |range: std::ops::Range<usize>| {
                // SAFETY: the file is mapped read-only, so dropping pages loses nothing (touched
                // again, they would be read from the file), and nothing refers to these bytes.
                let _ = unsafe { map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, range.start, range.len()) };
            };
            if let Some(read) = read_order_bytes(&map, name, opts, progress, &release)? {
                return Ok(read);
            }
        }
    }
    let mut file = file;
    std::io::Seek::rewind(&mut file)?;
    read_order_file(Box::new(std::io::BufReader::with_capacity(1 << 20, file)), name, opts, progress)
}

pub(crate) fn report_rejections(read: &OrderFile, file: &Path) -> Result<()> {
    let rej_path = PathBuf::from(format!("{}.rejected.csv", file.display()));
    let out = std::fs::File::create(&rej_path).with_context(|| format!("creating {}", rej_path.display()))?;
    write_rejections(out, &read.rejections)?;
    for x in read.rejections.iter().take(10) {
        eprintln!("{}: row {}, column {:?}: {} (value {:?})", file.display(), x.row, x.column, x.reason, x.value);
    }
    if read.rejected > 10 {
        eprintln!("… {} more", read.rejected - 10);
    }
    eprintln!("rejected rows written to {}", rej_path.display());
    Ok(())
}

/// Columns of scores.csv. Money is in the file's major units (as amounts were given); t_x and T
/// are in the model's time unit.
const SCORES_HEADER: [&str; 21] = [
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
    "recency_days",
    "frequency",
    "monetary",
    "trailing_spend",
    "loyalty_index",
];

fn write_scores(path: &Path, read: &OrderFile, out: &AnalyticsOutput, unit: TimeUnit) -> Result<()> {
    use rayon::prelude::*;
    let (file, old_file) = create_replacing(path).with_context(|| format!("creating {}", path.display()))?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    w.write_all(SCORES_HEADER.join(",").as_bytes())?;
    w.write_all(b"\n")?;
    // Rows are formatted into one buffer per block of customers, blocks in parallel, and written
    // in order: a record per customer through `csv::Writer` allocated ~20 strings each and made
    // writing the slowest stage of the whole pipeline.
    const BLOCK: usize = 32 * 1024;
    let n = read.customer_ids.len();
    let blocks: Vec<std::ops::Range<usize>> = (0..n).step_by(BLOCK).map(|s| s..(s + BLOCK).min(n)).collect();
    // A thread writes the formatted groups while the next ones are formatted: the write is
    // the kernel copying into the page cache, serial, and as long as the formatting.
    // Written buffers are reused: fresh ones cost a page fault per 4 KiB.
    let pool = std::sync::Mutex::new(Vec::<Vec<u8>>::new());
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Vec<u8>>>(1);
        let pool = &pool;
        let writer = scope.spawn(move || -> std::io::Result<()> {
            for bufs in rx {
                for b in bufs {
                    w.write_all(&b)?;
                    if let Ok(mut free) = pool.lock() {
                        free.push(b);
                    }
                }
            }
            w.flush()
        });
        for group in blocks.chunks(4) {
            let bufs: Vec<Vec<u8>> = group
                .par_iter()
                .map(|r| {
                    let mut b = pool.lock().ok().and_then(|mut free| free.pop()).unwrap_or_default();
                    b.clear();
                    score_rows(&mut b, r.clone(), read, out, unit);
                    b
                })
                .collect();
            if tx.send(bufs).is_err() {
                break; // the writer failed; its error is returned below
            }
        }
        drop(tx);
        writer.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
    .with_context(|| format!("writing {}", path.display()))?;
    if let Some(deleting) = old_file {
        let _ = deleting.join();
    }
    Ok(())
}

/// Creates `path` for writing. An existing regular file is renamed aside and deleted by a
/// thread while the new one is written: truncating a scores file of 160 MB in place freed its
/// pages in line (30–50 ms), and ext4 flushes a file that was truncated and rewritten when it
/// is closed (60 ms) — together a third of the writing stage. The returned thread is the
/// deletion. Anything else (a pipe, a device, a symlink) is opened as usual.
fn create_replacing(path: &Path) -> std::io::Result<(std::fs::File, Option<std::thread::JoinHandle<()>>)> {
    let regular = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_file());
    let aside = path
        .file_name()
        .filter(|_| regular)
        .map(|name| path.with_file_name(format!(".{}.old-{}", name.to_string_lossy(), std::process::id())));
    let Some(aside) = aside.filter(|aside| std::fs::rename(path, aside).is_ok()) else {
        return Ok((std::fs::File::create(path)?, None));
    };
    match std::fs::File::create(path) {
        Ok(file) => {
            // Without a thread (none to be had), the old file is deleted here.
            let deleting = std::thread::Builder::new().spawn({
                let aside = aside.clone();
                move || drop(std::fs::remove_file(aside))
            });
            if deleting.is_err() {
                let _ = std::fs::remove_file(&aside);
            }
            Ok((file, deleting.ok()))
        }
        Err(e) => {
            // Put the old file back: nothing was written.
            let _ = std::fs::rename(&aside, path);
            Err(e)
        }
    }
}

/// Formats the scores.csv rows of customers `range`: whole numbers as integers, others as the
/// shortest decimal that reads back to the same f64 (zmij; `Display` cost half the stage), empty
/// fields for values that do not apply.
fn score_rows(b: &mut Vec<u8>, range: std::ops::Range<usize>, read: &OrderFile, out: &AnalyticsOutput, unit: TimeUnit) {
    let s = &out.summaries;
    let k = &out.scores;
    b.reserve(range.len() * 160);
    let mut ints = itoa::Buffer::new();
    let mut floats = zmij::Buffer::new();
    let mut num = |b: &mut Vec<u8>, f: f64| {
        if f.fract() == 0.0 && f.abs() < 1e15 {
            b.extend_from_slice(ints.format(f as i64).as_bytes());
        } else {
            b.extend_from_slice(floats.format(f).as_bytes());
        }
    };
    for c in range {
        push_csv_field(b, &read.customer_ids[c]);
        let scored = k.rfm.class[c].is_some();
        let fields: [Option<f64>; 8] = [
            Some(f64::from(s.x[c])),
            Some(unit.from_days(f64::from(s.t_x[c]))),
            Some(unit.from_days(f64::from(s.age[c]))),
            Some(s.m[c] / 100.0),
            k.p_alive[c],
            k.expected_purchases[c],
            k.expected_order_value[c].map(|v| v / 100.0),
            k.clv[c].map(|v| v / 100.0),
        ];
        for v in fields {
            b.push(b',');
            if let Some(f) = v.filter(|f| f.is_finite()) {
                num(b, f);
            }
        }
        for v in [k.rfm.r_score[c], k.rfm.f_score[c], k.rfm.m_score[c]] {
            b.push(b',');
            if scored && v > 0 {
                b.push(b'0' + v % 10);
            }
        }
        for label in [
            k.rfm.class[c].map(|v| v.key()).unwrap_or_default(),
            k.abcd.tier[c].map(|v| v.key()).unwrap_or_default(),
            k.lifecycle.stage[c].key(),
            patron_store::analytics::churn_key(out, c),
        ] {
            b.push(b',');
            b.extend_from_slice(label.as_bytes());
        }
        b.push(b',');
        if let Some(v) = k.rfm.recency_days[c] {
            num(b, f64::from(v));
        }
        for v in [f64::from(k.rfm.frequency[c]), k.rfm.monetary_cents[c] as f64 / 100.0, s.trailing_spend_cents[c] as f64 / 100.0] {
            b.push(b',');
            num(b, v);
        }
        b.push(b',');
        if let Some(f) = k.loyalty.index[c].filter(|f| f.is_finite()) {
            num(b, f);
        }
        b.push(b'\n');
    }
}

/// Appends one CSV field, quoted (RFC 4180) only when it holds a comma, quote or line break.
fn push_csv_field(b: &mut Vec<u8>, v: &str) {
    if v.bytes().any(|c| matches!(c, b',' | b'"' | b'\n' | b'\r')) {
        b.push(b'"');
        b.extend_from_slice(v.replace('"', "\"\"").as_bytes());
        b.push(b'"');
    } else {
        b.extend_from_slice(v.as_bytes());
    }
}

fn write_params(path: &Path, read: &OrderFile, out: &AnalyticsOutput, timings: serde_json::Map<String, serde_json::Value>) -> Result<()> {
    let mut report = serde_json::to_value(&out.report)?;
    // γ is a scale parameter in money: give it in the file's major units, like the amounts.
    // (Its log-likelihood stays that of the data in minor units.)
    for path in ["/gamma_gamma/gamma", "/gamma_gamma/std_errors/gamma"] {
        if let Some(gamma) = report.pointer_mut(path) {
            if let Some(g) = gamma.as_f64() {
                *gamma = (g / 100.0).into();
            }
        }
    }
    let flat = |v: &serde_json::Value, keys: &[&str]| -> serde_json::Value {
        let mut m = serde_json::Map::new();
        for k in keys {
            if let Some(x) = v.get(*k) {
                m.insert((*k).into(), x.clone());
            }
        }
        serde_json::Value::Object(m)
    };
    let bgnbd = report.get("bgnbd").filter(|v| !v.is_null()).map(|v| {
        flat(v, &["r", "alpha", "a", "b", "log_likelihood", "converged", "iterations", "gradient_norm", "termination", "distinct_rows"])
    });
    let gg = report
        .get("gamma_gamma")
        .filter(|v| !v.is_null())
        .map(|v| flat(v, &["p", "q", "gamma", "log_likelihood", "converged", "iterations", "customers"]));
    let doc = serde_json::json!({
        "bgnbd": bgnbd,
        "gamma_gamma": gg,
        "amount_unit": "major (as in the file; gamma too)",
        "customers": read.customer_ids.len(),
        "orders": read.orders.len(),
        "rows_read": read.rows_read,
        "rows_skipped_not_completed": read.rows_skipped,
        "rows_rejected": read.rejected,
        "timings_ms": timings,
        "report": report,
    });
    let mut f = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    serde_json::to_writer_pretty(&mut f, &doc)?;
    writeln!(f)?;
    Ok(())
}
