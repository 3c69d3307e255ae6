//! Generates the demo files and prints the throughput.
//!
//! `cargo run --release -p patron-datagen --example generate -- [CUSTOMERS] [DIR] [--serial] [--truth] [--gen-only]`

use std::time::Instant;

use patron_datagen::{default_account_managers, write_csv_files, GeneratorConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let positional: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let customers = positional.first().map_or(Ok(100_000), |s| s.parse())?;
    let dir = positional.get(1).map_or("target/datagen-example", |s| s.as_str());
    let mut cfg = GeneratorConfig::new(customers, 42);
    cfg.parallel = !args.iter().any(|a| a == "--serial");
    cfg.write_truth = args.iter().any(|a| a == "--truth");
    cfg.owners = default_account_managers(8).into_iter().map(|m| m.email).collect();

    let t = Instant::now();
    if args.iter().any(|a| a == "--gen-only") {
        // Generation alone, single thread, nothing written.
        let g = patron_datagen::Generator::new(&cfg)?;
        let (mut orders, mut k) = (0, 0);
        while k < customers {
            orders += g.chunk(k..k + cfg.chunk_size).orders.len();
            k += cfg.chunk_size;
        }
        let secs = t.elapsed().as_secs_f64();
        println!("generated {orders} orders in {secs:.2} s ({:.0} orders/s, nothing written)", orders as f64 / secs);
        return Ok(());
    }
    let report = write_csv_files(&cfg, std::path::Path::new(dir), &|_| {})?;
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{customers} customers: {} contacts, {} orders, {} interactions in {secs:.2} s \
         ({:.0} order rows/s, {:.0} rows/s in all; parallel = {})",
        report.contacts,
        report.orders,
        report.interactions,
        report.orders as f64 / secs,
        report.total_rows() as f64 / secs,
        cfg.parallel
    );
    Ok(())
}
