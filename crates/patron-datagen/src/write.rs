//! Streaming CSV output: chunks are generated (optionally in parallel) and written in order.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use rayon::prelude::*;

use crate::gen::Generator;
use crate::model::Chunk;
use crate::util::{fmt_date, fmt_datetime, fmt_id, fmt_money};
use crate::Error;

pub const CUSTOMERS_HEADER: &[&str] = &[
    "customer_id",
    "kind",
    "name",
    "mobile",
    "email",
    "wechat_id",
    "gender",
    "birthday",
    "city",
    "tags",
    "owner",
    "referrer_id",
    "consent_sms",
    "consent_email",
    "consent_wechat",
    "created_at",
];
pub const CONTACTS_HEADER: &[&str] = &["contact_id", "customer_id", "name", "role", "mobile", "email", "interests", "notes"];
pub const ORDERS_HEADER: &[&str] = &[
    "order_id",
    "customer_id",
    "ordered_at",
    "amount",
    "discount",
    "currency",
    "channel",
    "store",
    "status",
    "category",
    "product",
    "quantity",
    "promo",
];
pub const INTERACTIONS_HEADER: &[&str] = &["interaction_id", "customer_id", "kind", "occurred_at", "channel", "payload"];
pub const TRUTH_HEADER: &[&str] =
    &["customer_id", "prospect", "lambda", "dropout", "nu", "alive_at_end", "purchases", "effective_age_days"];

/// Rows written per file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GenerateReport {
    pub customers: u64,
    pub contacts: u64,
    pub orders: u64,
    pub interactions: u64,
}

impl GenerateReport {
    pub fn total_rows(&self) -> u64 {
        self.customers + self.contacts + self.orders + self.interactions
    }
}

/// Appends one RFC 4180 field: quoted (with `"` doubled) exactly when it contains a comma, a
/// quote, CR or LF.
fn field(buf: &mut Vec<u8>, v: &[u8]) {
    // branch-free scan (vectorises); the special bytes are ASCII so UTF-8 text is safe to scan
    if v.iter().fold(false, |a, &c| a | (c == b',') | (c == b'"') | (c == b'\n') | (c == b'\r')) {
        buf.push(b'"');
        for &c in v {
            if c == b'"' {
                buf.push(b'"');
            }
            buf.push(c);
        }
        buf.push(b'"');
    } else {
        buf.extend_from_slice(v);
    }
}

/// Appends a field that cannot need quoting (ids, numbers, times, the static vocabulary, which a
/// test checks).
#[inline]
fn raw(buf: &mut Vec<u8>, v: &[u8]) {
    if v.len() <= 16 {
        // short pieces: a byte loop beats a memcpy call
        buf.reserve(16);
        for &c in v {
            buf.push(c);
        }
    } else {
        buf.extend_from_slice(v);
    }
}

/// Appends a record (comma-separated fields, LF).
fn record<I: AsRef<[u8]>>(buf: &mut Vec<u8>, fields: impl IntoIterator<Item = I>) {
    for (k, f) in fields.into_iter().enumerate() {
        if k > 0 {
            buf.push(b',');
        }
        field(buf, f.as_ref());
    }
    buf.push(b'\n');
}

fn b(v: bool) -> &'static [u8] {
    if v {
        b"true"
    } else {
        b"false"
    }
}

fn opt(v: &Option<String>) -> &[u8] {
    v.as_deref().unwrap_or("").as_bytes()
}

/// A chunk rendered as CSV bytes (done on the worker threads). Orders and interactions are
/// rendered without their leading id column (the ids are sequential over the file, so only the
/// writer knows them); `*_ends` are the row end offsets.
#[derive(Default)]
struct Encoded {
    customers: Vec<u8>,
    truth: Vec<u8>,
    contacts: Vec<u8>,
    orders: Vec<u8>,
    order_ends: Vec<usize>,
    interactions: Vec<u8>,
    interaction_ends: Vec<usize>,
    n_customers: u64,
    n_contacts: u64,
}

fn encode(c: &Chunk, owners: &[String], truth: bool) -> Encoded {
    let mut e = Encoded {
        customers: Vec::with_capacity(c.customers.len() * 160),
        contacts: Vec::with_capacity(c.contacts.len() * 120),
        orders: Vec::with_capacity(c.orders.len() * 120),
        order_ends: Vec::with_capacity(c.orders.len()),
        interactions: Vec::with_capacity(c.interactions.len() * 70),
        interaction_ends: Vec::with_capacity(c.interactions.len()),
        n_customers: c.customers.len() as u64,
        n_contacts: c.contacts.len() as u64,
        ..Encoded::default()
    };
    let (mut b1, mut b2, mut b3, mut b4, mut b5) = ([0u8; 32], [0u8; 32], [0u8; 32], [0u8; 32], [0u8; 32]);
    let mut tags = String::new();
    for x in &c.customers {
        tags.clear();
        for (k, t) in x.tags.iter().enumerate() {
            if k > 0 {
                tags.push(';');
            }
            tags.push_str(t);
        }
        let id = fmt_id(&mut b1, b"C", x.index + 1, 7);
        let referrer = x.referrer.map_or(&b""[..], |r| fmt_id(&mut b2, b"C", r + 1, 7));
        let birthday = x.birthday.map_or(&b""[..], |d| fmt_date(&mut b3, d));
        let owner = x.owner.and_then(|o| owners.get(o)).map_or("", String::as_str);
        record(
            &mut e.customers,
            [
                id,
                x.kind.as_str().as_bytes(),
                x.name.as_bytes(),
                opt(&x.mobile),
                opt(&x.email),
                opt(&x.wechat_id),
                x.gender.map_or("", |g| g.as_str()).as_bytes(),
                birthday,
                x.city.as_bytes(),
                tags.as_bytes(),
                owner.as_bytes(),
                referrer,
                b(x.consent_sms),
                b(x.consent_email),
                b(x.consent_wechat),
                fmt_datetime(&mut b4, x.created_at),
            ],
        );
        if truth {
            let id = fmt_id(&mut b1, b"C", x.index + 1, 7);
            let y = &x.truth;
            record(
                &mut e.truth,
                [
                    id,
                    b(y.prospect),
                    format!("{:.6}", y.lambda).as_bytes(),
                    format!("{:.6}", y.dropout).as_bytes(),
                    format!("{:.8}", y.nu).as_bytes(),
                    b(y.alive_at_end),
                    y.purchases.to_string().as_bytes(),
                    format!("{:.3}", y.effective_age_days).as_bytes(),
                ],
            );
        }
    }
    for x in &c.contacts {
        record(
            &mut e.contacts,
            [
                x.contact_id.as_bytes(),
                fmt_id(&mut b1, b"C", x.customer_index + 1, 7),
                x.name.as_bytes(),
                x.role.as_bytes(),
                opt(&x.mobile),
                opt(&x.email),
                x.interests.as_bytes(),
                x.notes.as_bytes(),
            ],
        );
    }
    let mut last_customer = u64::MAX;
    let mut cid = [0u8; 32];
    let mut cid_len = 0;
    for o in &c.orders {
        if o.customer_index != last_customer {
            last_customer = o.customer_index;
            cid_len = fmt_id(&mut cid, b"C", o.customer_index + 1, 7).len();
        }
        let buf = &mut e.orders;
        raw(buf, &cid[..cid_len]);
        raw(buf, b",");
        raw(buf, fmt_datetime(&mut b2, o.ordered_at));
        raw(buf, b",");
        raw(buf, fmt_money(&mut b3, o.amount_cents));
        raw(buf, b",");
        raw(buf, fmt_money(&mut b4, o.discount_cents));
        raw(buf, b",CNY,");
        raw(buf, o.channel.as_bytes());
        raw(buf, b",");
        raw(buf, o.store.as_bytes());
        raw(buf, b",");
        raw(buf, o.status.as_str().as_bytes());
        raw(buf, b",");
        raw(buf, o.category.as_bytes());
        raw(buf, b",");
        raw(buf, o.product.as_bytes());
        raw(buf, b",");
        raw(buf, fmt_id(&mut b5, b"", u64::from(o.quantity), 1));
        raw(buf, if o.promo { b",true\n" } else { b",false\n" });
        e.order_ends.push(e.orders.len());
    }
    last_customer = u64::MAX;
    for x in &c.interactions {
        if x.customer_index != last_customer {
            last_customer = x.customer_index;
            cid_len = fmt_id(&mut cid, b"C", x.customer_index + 1, 7).len();
        }
        let buf = &mut e.interactions;
        raw(buf, &cid[..cid_len]);
        raw(buf, b",");
        raw(buf, x.kind.as_bytes());
        raw(buf, b",");
        raw(buf, fmt_datetime(&mut b2, x.occurred_at));
        raw(buf, b",");
        raw(buf, x.channel.as_bytes());
        raw(buf, b",");
        field(buf, x.payload.as_bytes());
        raw(buf, b"\n");
        e.interaction_ends.push(e.interactions.len());
    }
    e
}

/// One output file, buffered in 1 MiB blocks.
struct Out {
    path: PathBuf,
    file: File,
    buf: Vec<u8>,
}

const BUF: usize = 1 << 20;

impl Out {
    fn create(dir: &Path, name: &str, header: &[&str]) -> Result<Out, Error> {
        let path = dir.join(name);
        let file = File::create(&path).map_err(|source| Error::Io { path: path.clone(), source })?;
        let mut out = Out { path, file, buf: Vec::with_capacity(BUF + 4096) };
        record(&mut out.buf, header);
        Ok(out)
    }

    fn flush(&mut self) -> Result<(), Error> {
        self.file.write_all(&self.buf).map_err(|source| Error::Io { path: self.path.clone(), source })?;
        self.buf.clear();
        Ok(())
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.buf.extend_from_slice(bytes);
        if self.buf.len() >= BUF {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes rows from `bytes` (ending at `ends`), each prefixed by `prefix` + the next id.
    fn put_numbered(&mut self, prefix: &[u8], next: &mut u64, bytes: &[u8], ends: &[usize]) -> Result<(), Error> {
        let mut idb = [0u8; 32];
        let mut start = 0;
        for &end in ends {
            *next += 1;
            self.buf.extend_from_slice(fmt_id(&mut idb, prefix, *next, 9));
            self.buf.push(b',');
            self.buf.extend_from_slice(&bytes[start..end]);
            start = end;
            if self.buf.len() >= BUF {
                self.flush()?;
            }
        }
        Ok(())
    }

    fn finish(mut self) -> Result<(), Error> {
        self.flush()?;
        self.file.flush().map_err(|source| Error::Io { path: self.path.clone(), source })
    }
}

struct Files {
    customers: Out,
    contacts: Out,
    orders: Out,
    interactions: Out,
    truth: Option<Out>,
    report: GenerateReport,
}

impl Files {
    fn write(&mut self, e: &Encoded) -> Result<(), Error> {
        self.customers.put(&e.customers)?;
        if let Some(t) = &mut self.truth {
            t.put(&e.truth)?;
        }
        self.contacts.put(&e.contacts)?;
        self.orders.put_numbered(b"O", &mut self.report.orders, &e.orders, &e.order_ends)?;
        self.interactions.put_numbered(b"I", &mut self.report.interactions, &e.interactions, &e.interaction_ends)?;
        self.report.customers += e.n_customers;
        self.report.contacts += e.n_contacts;
        Ok(())
    }
}

impl Generator {
    /// Writes `customers.csv`, `contacts.csv`, `orders.csv`, `interactions.csv` (and `truth.csv`
    /// when configured) into `dir` (created if missing), streaming chunk by chunk. `progress` is
    /// called after each chunk with the number of customers written so far.
    ///
    /// With `parallel`, chunks are generated *and rendered to CSV bytes* on the rayon pool in
    /// batches; the calling thread only prefixes the sequential order/interaction ids and writes.
    pub fn write_csv_files(&self, dir: &Path, progress: &dyn Fn(u64)) -> Result<GenerateReport, Error> {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io { path: dir.to_path_buf(), source })?;
        let cfg = self.config();
        let mut files = Files {
            customers: Out::create(dir, "customers.csv", CUSTOMERS_HEADER)?,
            contacts: Out::create(dir, "contacts.csv", CONTACTS_HEADER)?,
            orders: Out::create(dir, "orders.csv", ORDERS_HEADER)?,
            interactions: Out::create(dir, "interactions.csv", INTERACTIONS_HEADER)?,
            truth: if cfg.write_truth { Some(Out::create(dir, "truth.csv", TRUTH_HEADER)?) } else { None },
            report: GenerateReport::default(),
        };
        let ranges: Vec<_> = (0..cfg.customers.div_ceil(cfg.chunk_size))
            .map(|k| k * cfg.chunk_size..((k + 1) * cfg.chunk_size).min(cfg.customers))
            .collect();
        let render = |r: &std::ops::Range<u64>| encode(&self.chunk(r.clone()), &cfg.owners, cfg.write_truth);

        if cfg.parallel {
            // A producer thread renders batches of chunks on the rayon pool and hands them over in
            // order through a bounded channel; this thread writes them.
            let batch = rayon::current_num_threads().max(1) * 2;
            let (tx, rx) = mpsc::sync_channel::<Encoded>(batch);
            std::thread::scope(|s| -> Result<(), Error> {
                s.spawn(|| {
                    for group in ranges.chunks(batch) {
                        let encoded: Vec<Encoded> = group.par_iter().map(render).collect();
                        for e in encoded {
                            if tx.send(e).is_err() {
                                return; // the writer stopped on an error
                            }
                        }
                    }
                    drop(tx);
                });
                for e in rx {
                    files.write(&e)?;
                    progress(files.report.customers);
                }
                Ok(())
            })?;
        } else {
            for r in &ranges {
                files.write(&render(r))?;
                progress(files.report.customers);
            }
        }

        let report = files.report;
        files.customers.finish()?;
        files.contacts.finish()?;
        files.orders.finish()?;
        files.interactions.finish()?;
        if let Some(t) = files.truth {
            t.finish()?;
        }
        Ok(report)
    }
}
