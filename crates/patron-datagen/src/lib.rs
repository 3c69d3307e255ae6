//! Deterministic synthetic CRM data for patron: a Chinese restaurant-and-retail chain
//! ("patron demo") with people and organisations, their contacts, orders and interactions.
//!
//! Used by `patron demo`, `patron generate`, the tests and the benchmarks. The output follows
//! `docs/import-format.md`: `customers.csv`, `contacts.csv`, `orders.csv`, `interactions.csv`
//! (UTF-8 without BOM, LF, RFC 4180 quoting), times `YYYY-MM-DD HH:MM:SS` in the business time
//! zone Asia/Shanghai without an offset, money in yuan with 2 decimals, booleans `true`/`false`.
//!
//! # Usage
//!
//! ```no_run
//! use patron_datagen::{default_account_managers, write_csv_files, GeneratorConfig};
//!
//! let managers = default_account_managers(5); // create these users first
//! let mut cfg = GeneratorConfig::new(100_000, 42);
//! cfg.owners = managers.iter().map(|m| m.email.clone()).collect();
//! let report = write_csv_files(&cfg, std::path::Path::new("demo-data"), &|done| eprintln!("{done}"))?;
//! println!("{} orders", report.orders);
//! # Ok::<(), patron_datagen::Error>(())
//! ```
//!
//! In memory (tests): `Generator::new(&cfg)?.chunk(0..1000)` returns the records of customers
//! 0..1000 ([`Chunk`]); order and interaction ids are given by the writer (sequential in file
//! order), so a chunk's orders carry none.
//!
//! # Determinism
//!
//! Each customer has its own `ChaCha8Rng` stream (key from the seed, stream = customer index),
//! so chunks can be generated in any order or in parallel; rows are written in customer-index
//! order (a customer's orders and interactions in time order), and the same
//! (seed, customers, start, end, owners, other config fields) gives byte-identical files.
//! `chunk_size` and `parallel` never change the output.
//!
//! # The purchase process (the truth the analytics should recover)
//!
//! Customers arrive in index order over `[start, end]` (their customer ids follow registration
//! order) with the seasonal intensity below. 10 % (`prospect_share`) never buy. For the others,
//! the first arrival is their first purchase, then, in days ([`ModelParams`], defaults in
//! [`TrueParams::DEFAULT`]):
//!
//! - while active, purchases follow a Poisson process with rate `λ·s(t)`, `λ ~ Gamma(r, α)`
//!   (shape, rate) and `s(t)` the seasonal multiplier;
//! - after each *repeat* purchase the customer drops out for good with probability
//!   `p ~ Beta(a, b)` (BG/NBD: nobody drops out at the first purchase);
//! - each order's paid amount is `z ~ Gamma(p, ν)` yuan with `ν ~ Gamma(q, γ)` per customer
//!   (Gamma-Gamma), rounded to cents.
//!
//! People and organisations (3 %) have their own parameters:
//!
//! | segment | r | α | a | b | p | q | γ | mean days between purchases α/r | mean dropout a/(a+b) | mean order ¥ pγ/(q−1) |
//! |---|---|---|---|---|---|---|---|---|---|---|
//! | person | 1.0 | 30 | 0.7 | 5.5 | 6 | 4 | 55 | 30 | 0.113 | 110 |
//! | organisation | 1.2 | 45 | 0.5 | 5.0 | 4 | 5 | 800 | 37.5 | 0.091 | 800 |
//!
//! The completed orders are exactly the purchases of this process. In addition, 1.5 % of
//! purchases are followed on the same day by an extra order that is `refunded` (⅔) or
//! `cancelled` (⅓); analytics that drop non-completed orders see the pure process. A customer's
//! purchases on one day count as one purchase day in the BTYD summaries; with these rates that
//! is rare. Amount is independent of category, channel and promotion; a promotion's `discount`
//! is 10–30 % of the list price (`amount + discount`), so `amount` keeps the Gamma-Gamma law.
//!
//! # Seasonality
//!
//! `s(t) = weekday(d) · annual(d) · intraday(h) / norm(year)`, piecewise constant per hour:
//! lunch and dinner peaks (and near-zero nights), weekends (Sat ×1.4, Sun ×1.3, Fri ×1.15),
//! the two weeks before Chinese New Year ×1.6 and its week ×1.2, July–August ×1.15, Golden
//! Week ×1.3, Valentine's day/520/Double 11 ×1.3, late December ×1.2. `norm(year)` makes the
//! mean of `s` over every calendar year exactly 1, so `r/α` is the mean yearly rate. It is
//! implemented as a change of clock: with `S(t) = ∫ s`, purchase gaps are drawn in "effective
//! days" and mapped back with `S⁻¹` (no rejection), which is exact for the modulated process.
//! The BG/NBD expectations hold with the customer's effective age `S(end) − S(first purchase)`
//! ([`Truth::effective_age_days`], [`Generator::effective_days`],
//! [`ModelParams::expected_repeat_purchases`]). The same clock places registrations and
//! interactions, so they follow the same daily and yearly rhythm.

mod clock;
mod gen;
mod model;
mod params;
mod util;
mod vocab;
mod write;

use std::path::{Path, PathBuf};

pub use gen::{default_account_managers, Generator, GeneratorConfig, MAX_CUSTOMERS};
pub use model::{
    customer_id, interaction_id, order_id, AccountManager, Chunk, Contact, Customer, CustomerKind, Gender, Interaction, Order, OrderStatus,
    Truth,
};
pub use params::{ModelParams, TrueParams};
pub use write::{GenerateReport, CONTACTS_HEADER, CUSTOMERS_HEADER, INTERACTIONS_HEADER, ORDERS_HEADER, TRUTH_HEADER};

/// Everything that can go wrong while generating.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid generator configuration: {0}")]
    Config(String),
    #[error("cannot write {}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
}

/// Generates the configured data into `dir` (see [`Generator::write_csv_files`]).
pub fn write_csv_files(cfg: &GeneratorConfig, dir: &Path, progress: &dyn Fn(u64)) -> Result<GenerateReport, Error> {
    Generator::new(cfg)?.write_csv_files(dir, progress)
}

/// The records of customers `range` in memory (see [`Generator::chunk`]).
pub fn generate_chunk(cfg: &GeneratorConfig, range: std::ops::Range<u64>) -> Result<Chunk, Error> {
    Ok(Generator::new(cfg)?.chunk(range))
}
