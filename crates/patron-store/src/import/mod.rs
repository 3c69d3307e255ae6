//! The importer for customers, contacts, orders and interactions from CSV or JSON lines.
//!
//! Every row is validated; rejected rows are reported with row, column, value and reason. A file is
//! all-or-nothing (one transaction, rolled back when any row is rejected) unless `skip_invalid`
//! is set. Re-importing the same file changes nothing: rows are upserts by external id, and a
//! customer's history records only real changes. Bulk rows go through a staging table filled by
//! the engine's fast path (see [`crate::db::Stage`]).

mod bulk;
mod fields;
mod fulfilment_load;
pub mod order_file;
mod order_load;
mod source;
mod ticket_load;

use crate::access::CustomerScope;
use std::collections::{HashMap, HashSet};
use std::io::Read;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::analytics::TOUCHED_STAGE;
use crate::customers::{record_change, upsert_consent, StoredCustomer, RESOLVABLE_CUSTOMER, RESOLVED_CUSTOMER_ID, STORED_CUSTOMER_COLUMNS};
use crate::db::{query, Arg, ColType, Engine, Query, Stage, Tx};
use crate::orders::Catalog;
use crate::users::Actor;
use crate::{audit, values, Result, Store, StoreError};
pub use fields::{normalise_header, FieldSpec};
pub use source::{Encoding, Format};
use source::{Record, Source};

/// What a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ImportKind {
    /// customers.csv
    Customers,
    /// contacts.csv (people of organisations)
    Contacts,
    /// orders.csv
    Orders,
    /// interactions.csv
    Interactions,
    /// tickets.csv (history from another helpdesk)
    Tickets,
    /// fulfilment.csv (steps of orders' fulfilment chains)
    Fulfilment,
}

impl ImportKind {
    /// The tables a large import of this kind fills, whose statistics it refreshes.
    fn bulk_tables(self) -> &'static [&'static str] {
        match self {
            ImportKind::Customers => &["customers", "customer_keys", "customer_consents", "customer_tags"],
            ImportKind::Contacts => &["contacts", "contact_keys"],
            ImportKind::Orders => &[
                "orders",
                "order_lines",
                "order_keys",
                "customer_summaries",
                "loyalty_members",
                "loyalty_entries",
                "loyalty_lots",
                "loyalty_tier_changes",
            ],
            ImportKind::Interactions => &["interactions", "interaction_keys"],
            ImportKind::Tickets => &["tickets", "ticket_keys"],
            ImportKind::Fulfilment => &["fulfilment_steps"],
        }
    }
}

impl std::str::FromStr for ImportKind {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "customers" => Ok(ImportKind::Customers),
            "contacts" => Ok(ImportKind::Contacts),
            "orders" => Ok(ImportKind::Orders),
            "interactions" => Ok(ImportKind::Interactions),
            "tickets" => Ok(ImportKind::Tickets),
            "fulfilment" => Ok(ImportKind::Fulfilment),
            _ => Err(StoreError::invalid(
                "kind",
                format!("kind must be customers, contacts, orders, interactions, tickets or fulfilment, not {s:?}"),
            )),
        }
    }
}

impl ImportKind {
    /// The name used in URLs and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            ImportKind::Customers => "customers",
            ImportKind::Contacts => "contacts",
            ImportKind::Orders => "orders",
            ImportKind::Interactions => "interactions",
            ImportKind::Tickets => "tickets",
            ImportKind::Fulfilment => "fulfilment",
        }
    }

    /// The fields of this kind.
    pub fn spec(self) -> &'static [FieldSpec] {
        match self {
            ImportKind::Customers => &fields::customer::SPEC,
            ImportKind::Contacts => &fields::contact::SPEC,
            ImportKind::Orders => &fields::order::SPEC,
            ImportKind::Interactions => &fields::interaction::SPEC,
            ImportKind::Tickets => &fields::ticket::SPEC,
            ImportKind::Fulfilment => &fields::fulfilment::SPEC,
        }
    }
}

/// How to import.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// What the file holds.
    pub kind: ImportKind,
    /// The file's name (for the report, the audit log and format detection).
    pub file_name: String,
    /// Force an encoding instead of detecting it.
    pub encoding: Option<Encoding>,
    /// Force a layout instead of guessing from the file name.
    pub format: Option<Format>,
    /// `SOURCE=FIELD` header mappings.
    pub mappings: Vec<(String, String)>,
    /// Load the valid rows even when some are rejected.
    pub skip_invalid: bool,
    /// Validate and report, write nothing.
    pub dry_run: bool,
}

impl ImportOptions {
    /// Defaults for `kind` and `file_name`.
    pub fn new(kind: ImportKind, file_name: impl Into<String>) -> Self {
        ImportOptions {
            kind,
            file_name: file_name.into(),
            encoding: None,
            format: None,
            mappings: Vec::new(),
            skip_invalid: false,
            dry_run: false,
        }
    }
}

/// A rejected row.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Rejection {
    /// Spreadsheet row (header = 1) or JSON line number.
    pub row: u64,
    /// The column as named in the file (empty when the whole row is unreadable).
    pub column: String,
    /// The offending value.
    pub value: String,
    /// What is wrong.
    pub reason: String,
}

impl Rejection {
    fn whole(row: u64, reason: &str) -> Rejection {
        Rejection { row, column: String::new(), value: String::new(), reason: reason.to_owned() }
    }
}

/// The outcome of an import.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ImportReport {
    /// What was imported.
    pub kind: ImportKind,
    /// File name.
    pub file_name: String,
    /// Encoding read.
    pub encoding: Encoding,
    /// Data rows read.
    pub rows_read: u64,
    /// Rows added.
    pub created: u64,
    /// Rows that changed an existing record.
    pub updated: u64,
    /// Rows that named an existing record and matched it: nothing was written for them.
    pub unchanged: u64,
    /// Rows rejected.
    pub rejected: u64,
    /// Whether the rows were written (false on a dry run or an all-or-nothing file with rejections).
    pub committed: bool,
    /// The rejected rows (the first 10,000).
    pub rejections: Vec<Rejection>,
}

/// Rejections kept in memory for the report; the count goes on beyond.
const MAX_REJECTIONS: usize = 10_000;
/// Rows validated and merged per round trip.
const BATCH: usize = 5_000;

/// Collects rejections for one file.
struct Rejections {
    names: Vec<String>,
    list: Vec<Rejection>,
    count: u64,
    rows: HashSet<u64>,
}

impl Rejections {
    fn add(&mut self, r: Rejection) {
        // One row may fail several checks; count it once but report each reason.
        if self.rows.insert(r.row) {
            self.count += 1;
        }
        if self.list.len() < MAX_REJECTIONS {
            self.list.push(r);
        }
    }
    fn field(&mut self, row: u64, field: usize, value: &str, reason: String) {
        let column = self.names.get(field).cloned().unwrap_or_default();
        self.add(Rejection { row, column, value: value.to_owned(), reason });
    }
}

/// Typed access to one record's values, recording a rejection for each bad one.
struct Row<'a> {
    rec: &'a Record,
    rej: &'a mut Rejections,
    ok: bool,
}

impl Row<'_> {
    fn text(&self, i: usize) -> Option<String> {
        self.rec.values[i].clone()
    }
    fn required(&mut self, i: usize) -> String {
        match &self.rec.values[i] {
            Some(v) => v.clone(),
            None => {
                self.rej.field(self.rec.row, i, "", "required".into());
                self.ok = false;
                String::new()
            }
        }
    }
    fn parse<T>(&mut self, i: usize, f: impl Fn(&str) -> std::result::Result<T, String>) -> Option<T> {
        let v = self.rec.values[i].as_deref()?;
        match f(v) {
            Ok(t) => Some(t),
            Err(reason) => {
                self.rej.field(self.rec.row, i, v, reason);
                self.ok = false;
                None
            }
        }
    }
    fn reject(&mut self, i: usize, reason: String) {
        let v = self.rec.values[i].clone().unwrap_or_default();
        self.rej.field(self.rec.row, i, &v, reason);
        self.ok = false;
    }
}

impl Store {
    /// Imports one file. Returns the report; `Err` only for file-level problems (unreadable file,
    /// unknown or missing columns) and database failures — in both cases nothing is written.
    pub async fn import(
        &self,
        actor: &Actor,
        input: Box<dyn Read + Send>,
        opts: &ImportOptions,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<ImportReport> {
        let scope = CustomerScope::of(actor);
        // Rows of orders, interactions, contacts and tickets name customers the bulk loaders
        // resolve without reading them: a caller limited to part of the customers imports
        // customers only (their rows are checked one by one, see `load_customers`).
        if !scope.is_all() && opts.kind != ImportKind::Customers {
            return Err(StoreError::Forbidden(format!(
                "importing {} needs the all_customers permission; a caller limited to some units imports customers only",
                opts.kind.as_str()
            )));
        }
        let (reader, encoding) = source::open_bytes(input, opts.encoding)?;
        let format = opts.format.unwrap_or_else(|| Format::from_file_name(&opts.file_name));
        let src = Source::open(reader, encoding, format, opts.kind.spec(), &opts.mappings, opts.kind == ImportKind::Customers)?;
        let mut rej = Rejections { names: src.source_names(), list: Vec::new(), count: 0, rows: HashSet::new() };
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let mut counts = Counts::default();
        let import_actor = actor.key.clone();
        let mut loader = Loader::new(opts.kind, self.config.business_tz, now, import_actor, scope);
        loader.prepare(&mut tx).await?;
        let mut rows_read = 0u64;
        let started = std::time::Instant::now();
        if opts.kind == ImportKind::Orders {
            rows_read = loader.load_order_file(&self.db, &mut tx, src, opts, &mut rej, &mut counts, progress).await?;
        } else {
            // Parsed on a thread of its own, a batch ahead, while this task validates and writes
            // the previous one (the orders' reader does the same with validation too).
            let (send, mut recv) = tokio::sync::mpsc::channel(2);
            std::thread::Builder::new()
                .name("patron-import-read".into())
                .spawn(move || read_batches(src, send))
                .map_err(|e| StoreError::Internal(format!("cannot start the reader thread: {e}")))?;
            loop {
                match recv.recv().await {
                    Some(Parsed::Batch { records, rejections, rows_read: n, names }) => {
                        rows_read = n;
                        rej.names = names;
                        for r in rejections {
                            rej.add(r);
                        }
                        if !records.is_empty() {
                            loader.load(&mut tx, records, &mut rej, &mut counts).await?;
                        }
                        progress(rows_read);
                    }
                    Some(Parsed::Failed(e)) => return Err(e),
                    Some(Parsed::End) => break,
                    None => return Err(StoreError::Internal("the import reader thread stopped unexpectedly".into())),
                }
            }
        }
        let loaded = started.elapsed();
        let committed = !opts.dry_run && (rej.count == 0 || opts.skip_invalid);
        loader.finish(&mut tx, &mut rej, &mut counts, committed).await?;
        progress(rows_read);
        let finished = started.elapsed();
        // The customers' referrer check in `finish` may reject rows: decide again.
        let committed = !opts.dry_run && (rej.count == 0 || opts.skip_invalid);
        let report = ImportReport {
            kind: opts.kind,
            file_name: opts.file_name.clone(),
            encoding,
            rows_read,
            created: counts.created,
            updated: counts.updated,
            unchanged: counts.unchanged,
            rejected: rej.count,
            committed,
            rejections: {
                let mut l = rej.list;
                l.sort_by_key(|r| r.row);
                l
            },
        };
        if committed {
            tx.execute(
                query(
                    "INSERT INTO imports (kind, file_name, actor, started_at, finished_at, rows_read, rows_loaded, rows_rejected) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(opts.kind.as_str())
                .bind(opts.file_name.as_str())
                .bind(actor.key.as_str())
                .bind(now)
                .bind(crate::clock::truncate_micros(self.clock.now()))
                .bind(rows_read as i64)
                .bind((counts.created + counts.updated + counts.unchanged) as i64)
                .bind(report.rejected as i64),
            )
            .await?;
            let detail = format!(
                "file_rows={} created={} updated={} unchanged={} rejected={}",
                rows_read, counts.created, counts.updated, counts.unchanged, report.rejected
            );
            audit::record(&mut tx, now, &actor.key, "import", opts.kind.as_str(), None, Some(detail)).await?;
            let t0 = std::time::Instant::now();
            tx.commit().await?;
            let committed_at = t0.elapsed();
            // A bulk load leaves SQLite's write-ahead log as large as what it wrote (3.3 GB after
            // a million customers) until the next open: fold it into the database now.
            if rows_read >= 10_000 {
                self.db.checkpoint().await?;
                let checkpointed_at = t0.elapsed();
                self.db.analyze(opts.kind.bulk_tables()).await?;
                tracing::debug!(
                    commit_ms = committed_at.as_millis() as u64,
                    checkpoint_ms = (checkpointed_at - committed_at).as_millis() as u64,
                    analyze_ms = (t0.elapsed() - checkpointed_at).as_millis() as u64,
                    "import committed"
                );
            }
        } else {
            tx.rollback().await?;
        }
        // Phase times for tuning (PATRON_LOG=patron_store=debug); no file contents.
        tracing::debug!(
            kind = opts.kind.as_str(),
            rows_read,
            load_ms = loaded.as_millis() as u64,
            finish_ms = (finished - loaded).as_millis() as u64,
            commit_ms = (started.elapsed() - finished).as_millis() as u64,
            "import phases"
        );
        Ok(report)
    }
}

/// What the reader thread of a file (other than orders) sends.
enum Parsed {
    /// Up to [`BATCH`] rows parsed, and the rows that could not be.
    Batch {
        records: Vec<Record>,
        rejections: Vec<Rejection>,
        /// Data rows read so far (parsed or not).
        rows_read: u64,
        /// Source column names per field (JSON lines may change them).
        names: Vec<String>,
    },
    /// A file-level failure: the import stops and writes nothing.
    Failed(StoreError),
    End,
}

/// Parses the file into batches on the calling (dedicated) thread.
fn read_batches(mut src: Source, out: tokio::sync::mpsc::Sender<Parsed>) {
    let mut rows_read = 0u64;
    loop {
        let mut records = Vec::with_capacity(BATCH);
        let mut rejections = Vec::new();
        let mut done = false;
        // A file of nothing but bad rows still reports progress.
        while records.len() < BATCH && rejections.len() < BATCH {
            match src.next() {
                Ok(Some(Ok(rec))) => {
                    rows_read += 1;
                    records.push(rec);
                }
                Ok(Some(Err(r))) => {
                    rows_read += 1;
                    rejections.push(r);
                }
                Ok(None) => {
                    done = true;
                    break;
                }
                Err(e) => {
                    let _ = out.blocking_send(Parsed::Failed(e));
                    return;
                }
            }
        }
        // A closed channel means the writer stopped (a database error); nothing left to do.
        if out.blocking_send(Parsed::Batch { records, rejections, rows_read, names: src.source_names() }).is_err() {
            return;
        }
        if done {
            let _ = out.blocking_send(Parsed::End);
            return;
        }
    }
}

#[derive(Default)]
struct Counts {
    created: u64,
    /// Rows that changed a record that existed.
    updated: u64,
    /// Rows the same as the record they name (a re-import): nothing written for them.
    unchanged: u64,
}

const ORDER_STAGE: Stage = Stage {
    name: "patron_stage_orders",
    columns: &[
        ("row_no", ColType::Int),
        ("customer_id", ColType::Int),
        ("external_id", ColType::Text),
        ("ordered_at", ColType::Time),
        ("channel", ColType::Text),
        ("store", ColType::Text),
        ("currency", ColType::Text),
        ("total_cents", ColType::Int),
        ("discount_cents", ColType::Int),
        ("status", ColType::Text),
        ("product_id", ColType::Int),
        ("category_id", ColType::Int),
        ("quantity", ColType::Int),
        ("unit_price_cents", ColType::Int),
        ("promo", ColType::Bool),
        ("ordered_day", ColType::Int),
    ],
};

const INTERACTION_STAGE: Stage = Stage {
    name: "patron_stage_interactions",
    columns: &[
        ("row_no", ColType::Int),
        ("customer_id", ColType::Int),
        ("external_id", ColType::Text),
        ("kind", ColType::Text),
        ("channel", ColType::Text),
        ("occurred_at", ColType::Time),
        ("payload", ColType::Text),
    ],
};

/// A validated customer row.
struct CustomerIn {
    row: u64,
    external_id: String,
    kind: &'static str,
    name: String,
    mobile: Option<String>,
    email: Option<String>,
    wechat_id: Option<String>,
    gender: Option<&'static str>,
    birthday: Option<NaiveDate>,
    city: Option<String>,
    tags: Option<Vec<String>>,
    owner_id: Option<i64>,
    home_unit_id: Option<i64>,
    referrer: Option<String>,
    consents: Vec<(&'static str, bool)>,
    created_at: Option<DateTime<Utc>>,
    attributes: Vec<(String, String)>,
}

/// Columns of a new customer, as [`new_customer_cells`] writes them.
const NEW_CUSTOMER_COLUMNS: [&str; 16] = [
    "id",
    "external_id",
    "kind",
    "name",
    "mobile",
    "email",
    "wechat_id",
    "gender",
    "birthday",
    "city",
    "attributes",
    "owner_id",
    "created_at",
    "updated_at",
    "home_unit_id",
    "referrer_id",
];

/// One new customer's cells, in the order of [`NEW_CUSTOMER_COLUMNS`]. Custom attributes are a
/// JSON object of strings; a customer without a creation time in the file was created `now`.
fn new_customer_cells(cells: &mut dyn bulk::Cells, id: i64, c: &CustomerIn, referrer: Option<i64>, now: DateTime<Utc>) -> Result<()> {
    let attrs: serde_json::Map<String, serde_json::Value> =
        c.attributes.iter().map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone()))).collect();
    cells.int(Some(id))?;
    cells.text(Some(&c.external_id))?;
    cells.text(Some(c.kind))?;
    cells.text(Some(&c.name))?;
    cells.text(c.mobile.as_deref())?;
    cells.text(c.email.as_deref())?;
    cells.text(c.wechat_id.as_deref())?;
    cells.text(c.gender)?;
    cells.text(c.birthday.map(|d| d.format("%Y-%m-%d").to_string()).as_deref())?;
    cells.text(c.city.as_deref())?;
    cells.text(Some(&serde_json::Value::Object(attrs).to_string()))?;
    cells.int(c.owner_id)?;
    cells.time(c.created_at.unwrap_or(now))?;
    cells.time(now)?;
    cells.int(c.home_unit_id)?;
    cells.int(referrer)
}

/// Why a row naming a customer outside the importer's scope is rejected.
const OUT_OF_SCOPE: &str = "no such customer in your scope";

/// Per-file state: caches and the work deferred to the end of the file.
struct Loader {
    kind: ImportKind,
    tz: chrono_tz::Tz,
    now: DateTime<Utc>,
    actor: String,
    /// Customer external id → id, for rows referring to customers.
    /// (foldhash: looked up once per order row, where SipHash shows in profiles.)
    customers: foldhash::HashMap<String, i64>,
    /// External ids seen in this file → first row, to refuse duplicates.
    /// Per row (hashed with foldhash: SipHash was a tenth of a million-order import's client time).
    seen: foldhash::HashMap<String, u64>,
    owners: HashMap<String, i64>,
    /// Unit code → id, for the `home_unit` column.
    units: HashMap<String, i64>,
    /// Whose scope rows must stay in (see [`crate::access`]), and for a limited scope the units
    /// it covers (the subtrees of the importer's units).
    scope: CustomerScope,
    scope_units: HashSet<i64>,
    catalog: Catalog,
    /// (row, customer external id, referrer external id), resolved when the whole file is in.
    referrals: Vec<(u64, String, String)>,
    /// Customers whose orders changed; their summaries are refreshed at the end.
    touched: foldhash::HashSet<i64>,
    /// Orders files: the summaries of customers new to buying, from the rows written.
    new_summaries: crate::analytics::NewSummaries,
    /// Stored customers whose rows changed nothing (so far: the referrers come at the end).
    unchanged: foldhash::HashSet<i64>,
    /// Rows locked `FOR KEY SHARE` by [`lock_keys`] so far: (table, id).
    locked: foldhash::HashSet<(&'static str, i64)>,
    /// PostgreSQL orders files: every customer whose orders were written is locked by
    /// [`lock_keys`], so the new summaries' foreign key holds without its trigger.
    customers_locked: bool,
    /// PostgreSQL: the customer id sequence, for new customers COPYed with reserved ids.
    customer_ids: bulk::IdSequence,
    /// Fulfilment files: the steps in use.
    fulfilment: Option<crate::fulfilment::FulfilmentSettings>,
}

impl Loader {
    fn new(kind: ImportKind, tz: chrono_tz::Tz, now: DateTime<Utc>, actor: String, scope: CustomerScope) -> Self {
        Loader {
            kind,
            tz,
            now,
            actor,
            customers: foldhash::HashMap::default(),
            seen: Default::default(),
            owners: HashMap::new(),
            units: HashMap::new(),
            scope,
            scope_units: HashSet::new(),
            catalog: Catalog::default(),
            referrals: Vec::new(),
            touched: Default::default(),
            new_summaries: Default::default(),
            unchanged: Default::default(),
            locked: Default::default(),
            customers_locked: false,
            customer_ids: bulk::IdSequence::default(),
            fulfilment: None,
        }
    }

    async fn prepare(&mut self, tx: &mut Tx) -> Result<()> {
        match self.kind {
            ImportKind::Customers => {
                let users: Vec<(String, i64)> = tx.fetch_all(query("SELECT email, id FROM users")).await?;
                self.owners = users.into_iter().collect();
                let units: Vec<(String, i64)> = tx.fetch_all(query("SELECT code, id FROM units")).await?;
                self.units = units.into_iter().collect();
                if let CustomerScope::Limited(Some(u)) = self.scope {
                    let rows: Vec<(i64,)> = tx
                        .fetch_all(
                            query("SELECT p.descendant_id FROM unit_paths p JOIN user_units uu ON uu.unit_id = p.ancestor_id WHERE uu.user_id = $1")
                                .bind(u),
                        )
                        .await?;
                    self.scope_units = rows.into_iter().map(|r| r.0).collect();
                }
            }
            ImportKind::Orders => ORDER_STAGE.create(tx).await?,
            ImportKind::Interactions => INTERACTION_STAGE.create(tx).await?,
            ImportKind::Contacts => {}
            ImportKind::Fulfilment => self.fulfilment = Some(crate::settings::get_in(tx, crate::fulfilment::SETTINGS).await?),
            ImportKind::Tickets => {
                let users: Vec<(String, i64)> = tx.fetch_all(query("SELECT email, id FROM users")).await?;
                self.owners = users.into_iter().collect();
            }
        }
        Ok(())
    }

    /// Whether a customer with this owner and home unit is in the importer's scope.
    fn in_scope(&self, owner_id: Option<i64>, home_unit_id: Option<i64>) -> bool {
        match self.scope {
            CustomerScope::All => true,
            CustomerScope::Limited(None) => false,
            CustomerScope::Limited(Some(u)) => owner_id == Some(u) || home_unit_id.is_some_and(|h| self.scope_units.contains(&h)),
        }
    }

    /// Marks an external id as seen; false (and a rejection) when the file already had it.
    fn first_time(&mut self, row: &mut Row<'_>, field: usize, ext: &str) -> bool {
        match self.seen.get(ext) {
            Some(first) => {
                row.reject(field, format!("duplicate id in this file (first at row {first})"));
                false
            }
            None => {
                self.seen.insert(ext.to_owned(), row.rec.row);
                true
            }
        }
    }

    /// Resolves customer external ids for a batch (cached), one query per batch for the misses.
    async fn resolve_customers(&mut self, tx: &mut Tx, ids: impl Iterator<Item = String>) -> Result<()> {
        let missing: Vec<String> = {
            let mut m: Vec<String> = ids.filter(|i| !self.customers.contains_key(i)).collect();
            m.sort();
            m.dedup();
            m
        };
        for part in missing.chunks(FIND_CUSTOMERS_AT_ONCE) {
            let found: Vec<(String, i64)> = tx.fetch_all(find_customers(tx.engine(), part)).await?;
            self.customers.extend(found);
        }
        // Bound the cache: a very large file referring to many customers keeps memory in check.
        if self.customers.len() > 2_000_000 {
            self.customers.clear();
        }
        Ok(())
    }

    async fn load(&mut self, tx: &mut Tx, batch: Vec<Record>, rej: &mut Rejections, counts: &mut Counts) -> Result<()> {
        match self.kind {
            ImportKind::Customers => self.load_customers(tx, batch, rej, counts).await,
            ImportKind::Contacts => self.load_contacts(tx, batch, rej, counts).await,
            // Orders stream through `load_order_file`.
            ImportKind::Orders => Err(StoreError::Internal("orders are not loaded in batches".into())),
            ImportKind::Interactions => self.load_interactions(tx, batch, rej, counts).await,
            ImportKind::Tickets => self.load_tickets(tx, batch, rej, counts).await,
            ImportKind::Fulfilment => self.load_fulfilment(tx, batch, rej, counts).await,
        }
    }

    /// Work deferred to the end of the file. `will_commit`: the transaction is to be committed
    /// (the summaries of touched customers are refreshed only then).
    async fn finish(&mut self, tx: &mut Tx, rej: &mut Rejections, counts: &mut Counts, will_commit: bool) -> Result<()> {
        match self.kind {
            ImportKind::Customers => self.finish_referrals(tx, rej, counts).await,
            ImportKind::Orders => {
                ORDER_STAGE.drop_table(tx).await?;
                if will_commit && !self.touched.is_empty() {
                    let touched = std::mem::take(&mut self.touched);
                    let mut customers: Vec<i64> = touched.iter().copied().collect();
                    customers.sort_unstable();
                    let ids: Vec<Vec<Arg>> = touched.into_iter().map(|id| vec![Arg::I64(Some(id))]).collect();
                    let t0 = std::time::Instant::now();
                    TOUCHED_STAGE.create(tx).await?;
                    TOUCHED_STAGE.fill(tx, ids).await?;
                    let t_touched = t0.elapsed();
                    // Summaries only of touched customers, each locked by the load: their
                    // foreign key is kept without a trigger per row (1.06-1.33 s of a million
                    // orders' new summaries with the triggers, 0.64 s without).
                    let quiet = self.customers_locked && tx.fk_triggers(false).await?;
                    crate::analytics::refresh_touched_with(tx, self.now, std::mem::take(&mut self.new_summaries)).await?;
                    if quiet {
                        tx.fk_triggers(true).await?;
                    }
                    let t_summaries = t0.elapsed();
                    // Points for the completed orders, reversals for the refunded (issue 13).
                    let loyalty = crate::loyalty::program_in(tx).await?;
                    crate::loyalty::earning::sync_touched(tx, &loyalty, self.tz, self.now).await?;
                    TOUCHED_STAGE.drop_table(tx).await?;
                    let t_loyalty = t0.elapsed();
                    // Customers without a home unit get their first order's store (a setting).
                    crate::access::units::assign_home_units(tx, self.now, &self.actor, &customers).await?;
                    tracing::debug!(
                        touched_ms = t_touched.as_millis() as u64,
                        summaries_ms = (t_summaries - t_touched).as_millis() as u64,
                        loyalty_ms = (t_loyalty - t_summaries).as_millis() as u64,
                        units_ms = (t0.elapsed() - t_loyalty).as_millis() as u64,
                        "orders finished"
                    );
                }
                Ok(())
            }
            ImportKind::Interactions => INTERACTION_STAGE.drop_table(tx).await,
            ImportKind::Contacts | ImportKind::Tickets | ImportKind::Fulfilment => Ok(()),
        }
    }

    // ---- orders -------------------------------------------------------------------------

    // ---- interactions ---------------------------------------------------------------------

    async fn load_interactions(&mut self, tx: &mut Tx, batch: Vec<Record>, rej: &mut Rejections, counts: &mut Counts) -> Result<()> {
        use fields::interaction as f;
        let mut valid = Vec::with_capacity(batch.len());
        for rec in &batch {
            let mut r = Row { rec, rej: &mut *rej, ok: true };
            let external_id = r.required(f::EXTERNAL_ID);
            let customer = r.required(f::CUSTOMER_ID);
            let kind = r.parse(f::KIND, values::parse_interaction_kind);
            if rec.values[f::KIND].is_none() {
                r.required(f::KIND);
            }
            let at = r.parse(f::OCCURRED_AT, |v| values::parse_time(v, self.tz));
            if rec.values[f::OCCURRED_AT].is_none() {
                r.required(f::OCCURRED_AT);
            }
            let ok = r.ok && !external_id.is_empty() && self.first_time(&mut r, f::EXTERNAL_ID, &external_id);
            if let (true, Some(kind), Some(at)) = (ok && r.ok, kind, at) {
                valid.push((rec.row, external_id, customer, kind, r.text(f::CHANNEL), at, r.text(f::PAYLOAD)));
            }
        }
        self.resolve_customers(tx, valid.iter().map(|v| v.2.clone())).await?;
        let mut staged = Vec::with_capacity(valid.len());
        let mut customer_ids = Vec::with_capacity(valid.len());
        for (row, ext, customer, kind, channel, at, payload) in valid {
            let Some(&customer_id) = self.customers.get(&customer) else {
                let column = rej.names[f::CUSTOMER_ID].clone();
                rej.add(Rejection { row, column, value: customer, reason: "unknown customer (import customers first)".into() });
                continue;
            };
            customer_ids.push(customer_id);
            staged.push(vec![
                Arg::I64(Some(row as i64)),
                Arg::I64(Some(customer_id)),
                Arg::Text(Some(ext)),
                Arg::Text(Some(kind.to_owned())),
                Arg::Text(channel),
                Arg::Time(Some(at)),
                Arg::Text(payload),
            ]);
        }
        if staged.is_empty() {
            return Ok(());
        }
        let staged_n = staged.len() as i64;
        INTERACTION_STAGE.fill(tx, staged).await?;
        // The staged ids that exist already, and whether each belongs to another customer.
        // (Through the key table: on Citus the interaction may be in any shard.)
        let stored: Vec<(i64, String, bool)> = tx
            .fetch_all(query(
                "SELECT s.row_no, s.external_id, k.customer_id <> s.customer_id FROM patron_stage_interactions s \
                 JOIN interaction_keys k ON k.external_id = s.external_id",
            ))
            .await?;
        let mut existing = 0i64;
        let mut moved = 0i64;
        let mut known: foldhash::HashSet<String> = Default::default();
        for (row_no, ext, other_customer) in stored {
            if !other_customer {
                existing += 1;
                known.insert(ext);
                continue;
            }
            moved += 1;
            let column = rej.names[f::EXTERNAL_ID].clone();
            rej.add(Rejection { row: row_no as u64, column, value: ext, reason: "this interaction id belongs to another customer".into() });
            tx.execute(query("DELETE FROM patron_stage_interactions WHERE row_no = $1").bind(row_no)).await?;
        }
        let staged_n = staged_n - moved;
        // As for orders: with the privilege, the customers are locked here and the per-row
        // foreign-key trigger (a quarter of this insert on PostgreSQL) is left out.
        let triggers_off = tx.fk_triggers(false).await?;
        if triggers_off {
            lock_keys(tx, "customers", customer_ids.into_iter(), &mut self.locked).await?;
        }
        let written: Vec<(i64, i64, String)> = tx
            .fetch_all(query(
                "INSERT INTO interactions (customer_id, external_id, kind, channel, occurred_at, payload) \
                 SELECT customer_id, external_id, kind, channel, occurred_at, payload FROM patron_stage_interactions WHERE true ORDER BY row_no \
                 ON CONFLICT (customer_id, external_id) DO UPDATE SET kind = excluded.kind, channel = excluded.channel, \
                 occurred_at = excluded.occurred_at, payload = excluded.payload \
                 WHERE interactions.kind IS DISTINCT FROM excluded.kind OR interactions.channel IS DISTINCT FROM excluded.channel \
                 OR interactions.occurred_at IS DISTINCT FROM excluded.occurred_at OR interactions.payload IS DISTINCT FROM excluded.payload \
                 RETURNING id, customer_id, external_id",
            ))
            .await?;
        if triggers_off {
            tx.fk_triggers(true).await?;
        }
        // The new interactions' keys (the rows written that were not known before).
        let new_keys: Vec<&(i64, i64, String)> = written.iter().filter(|(_, _, ext)| !known.contains(ext)).collect();
        bulk::write_rows(
            tx,
            "interaction_keys",
            &["external_id", "customer_id", "interaction_id"],
            &new_keys,
            |cells, (id, customer_id, ext)| {
                cells.text(Some(ext))?;
                cells.int(Some(*customer_id))?;
                cells.int(Some(*id))
            },
        )
        .await?;
        INTERACTION_STAGE.clear(tx).await?;
        // The upsert returns the rows it inserted or changed: of the known ones, those changed.
        let changed = (written.len() - new_keys.len()) as u64;
        counts.updated += changed;
        counts.unchanged += (existing as u64).saturating_sub(changed);
        counts.created += (staged_n - existing) as u64;
        Ok(())
    }

    // ---- contacts -------------------------------------------------------------------------

    async fn load_contacts(&mut self, tx: &mut Tx, batch: Vec<Record>, rej: &mut Rejections, counts: &mut Counts) -> Result<()> {
        use fields::contact as f;
        let mut valid = Vec::new();
        for rec in &batch {
            let mut r = Row { rec, rej: &mut *rej, ok: true };
            let ext = r.required(f::EXTERNAL_ID);
            let customer = r.required(f::CUSTOMER_ID);
            let name = r.required(f::NAME);
            let mobile = r.parse(f::MOBILE, values::parse_mobile);
            let email = r.parse(f::EMAIL, values::parse_email);
            let ok = r.ok && !ext.is_empty() && self.first_time(&mut r, f::EXTERNAL_ID, &ext);
            if ok && r.ok {
                valid.push((rec.row, ext, customer, name, r.text(f::ROLE), mobile, email, r.text(f::INTERESTS), r.text(f::NOTES)));
            }
        }
        self.resolve_customers(tx, valid.iter().map(|v| v.2.clone())).await?;
        for (row, ext, customer, name, role, mobile, email, interests, notes) in valid {
            let Some(&customer_id) = self.customers.get(&customer) else {
                let column = rej.names[f::CUSTOMER_ID].clone();
                rej.add(Rejection { row, column, value: customer, reason: "unknown customer (import customers first)".into() });
                continue;
            };
            let existing = crate::keys::find(tx, crate::keys::CONTACTS, &ext, customer_id).await?;
            match existing {
                Some((owner, _)) if owner != customer_id => {
                    let column = rej.names[f::EXTERNAL_ID].clone();
                    rej.add(Rejection { row, column, value: ext, reason: "this contact id belongs to another customer".into() });
                }
                Some((_, id)) => {
                    // Only a contact that differs is written (and counted as updated).
                    let changed = tx
                        .execute(
                            query(
                                "UPDATE contacts SET name = $1, role = $2, mobile = $3, email = $4, interests = $5, notes = $6, \
                             updated_at = $7 WHERE customer_id = $8 AND id = $9 AND NOT (name = $1 AND role IS NOT DISTINCT FROM $2 \
                             AND mobile IS NOT DISTINCT FROM $3 AND email IS NOT DISTINCT FROM $4 AND interests IS NOT DISTINCT FROM $5 \
                             AND notes IS NOT DISTINCT FROM $6)",
                            )
                            .bind(name)
                            .bind(role)
                            .bind(mobile)
                            .bind(email)
                            .bind(interests)
                            .bind(notes)
                            .bind(self.now)
                            .bind(customer_id)
                            .bind(id),
                        )
                        .await?;
                    if changed > 0 {
                        counts.updated += 1;
                    } else {
                        counts.unchanged += 1;
                    }
                }
                None => {
                    let (id,): (i64,) = tx
                        .fetch_one(
                            query(
                                "INSERT INTO contacts (customer_id, external_id, name, role, mobile, email, interests, notes, created_at, updated_at) \
                                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) RETURNING id",
                            )
                            .bind(customer_id)
                            .bind(ext.as_str())
                        .bind(name)
                        .bind(role)
                        .bind(mobile)
                        .bind(email)
                            .bind(interests)
                            .bind(notes)
                            .bind(self.now),
                        )
                        .await?;
                    crate::keys::claim(tx, crate::keys::CONTACTS, &ext, customer_id, Some(id)).await?;
                    counts.created += 1;
                }
            }
        }
        Ok(())
    }

    // ---- customers ------------------------------------------------------------------------

    fn validate_customer(&mut self, rec: &Record, rej: &mut Rejections) -> Option<CustomerIn> {
        use fields::customer as f;
        let mut r = Row { rec, rej, ok: true };
        let external_id = r.required(f::EXTERNAL_ID);
        let name = r.required(f::NAME);
        if name.chars().count() > 200 {
            r.reject(f::NAME, "name is longer than 200 characters".into());
        }
        let kind = r.parse(f::KIND, values::parse_kind).unwrap_or("person");
        let mobile = r.parse(f::MOBILE, values::parse_mobile);
        let email = r.parse(f::EMAIL, values::parse_email);
        let gender = r.parse(f::GENDER, values::parse_gender);
        let birthday = r.parse(f::BIRTHDAY, values::parse_date);
        let tags = rec.values[f::TAGS].as_deref().map(values::parse_tags);
        if let Some(Err(m)) = tags.as_deref().map(values::check_tags) {
            r.reject(f::TAGS, m);
        }
        if !rec.attributes.is_empty() {
            let map: serde_json::Map<String, serde_json::Value> =
                rec.attributes.iter().map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone()))).collect();
            if let Err(m) = values::check_attributes(&map) {
                // Named after the largest attribute's column.
                let (name, value) =
                    rec.attributes.iter().max_by_key(|(_, v)| v.len()).map(|(k, v)| (k.clone(), v.clone())).unwrap_or_default();
                r.rej.add(Rejection { row: rec.row, column: format!("attr.{name}"), value, reason: m });
                r.ok = false;
            }
        }
        let owners = &self.owners;
        let owner_id = r.parse(f::OWNER, |v| {
            let email = v.trim().to_lowercase();
            owners.get(&email).copied().ok_or_else(|| "no user with this email (add the user first)".to_string())
        });
        let units = &self.units;
        let home_unit_id = r
            .parse(f::HOME_UNIT, |v| units.get(v.trim()).copied().ok_or_else(|| "no unit with this code (add the unit first)".to_string()));
        let referrer = r.text(f::REFERRER_ID);
        if referrer.is_some() && referrer.as_deref() == Some(external_id.as_str()) {
            r.reject(f::REFERRER_ID, "a customer cannot refer themselves".into());
        }
        let mut consents = Vec::new();
        for (i, ch) in [(f::CONSENT_SMS, "sms"), (f::CONSENT_EMAIL, "email"), (f::CONSENT_WECHAT, "wechat")] {
            if let Some(b) = r.parse(i, values::parse_bool) {
                consents.push((ch, b));
            }
        }
        let tz = self.tz;
        let created_at = r.parse(f::CREATED_AT, |v| values::parse_time(v, tz));
        let ok = r.ok && !external_id.is_empty() && self.first_time(&mut r, f::EXTERNAL_ID, &external_id);
        if !(ok && r.ok) {
            return None;
        }
        Some(CustomerIn {
            row: rec.row,
            external_id,
            kind,
            name,
            mobile,
            email,
            wechat_id: r.text(f::WECHAT_ID),
            gender,
            birthday,
            city: r.text(f::CITY),
            tags,
            owner_id,
            home_unit_id,
            referrer,
            consents,
            created_at,
            attributes: rec.attributes.clone(),
        })
    }

    async fn load_customers(&mut self, tx: &mut Tx, batch: Vec<Record>, rej: &mut Rejections, counts: &mut Counts) -> Result<()> {
        let valid: Vec<CustomerIn> = batch.iter().filter_map(|rec| self.validate_customer(rec, rej)).collect();
        if valid.is_empty() {
            return Ok(());
        }
        // The batch's stored customers, then their tags and consents: a query each, the keys
        // bound as one JSON array (numbered parameters cost SQLite quadratic time to bind).
        let engine = tx.engine();
        let keys = serde_json::Value::Array(valid.iter().map(|c| serde_json::Value::String(c.external_id.clone())).collect());
        let q = query(format!("SELECT {STORED_CUSTOMER_COLUMNS} FROM customers WHERE external_id IN ({})", engine.json_strings(1)));
        let rows: Vec<StoredCustomer> = tx.fetch_all(q.bind(keys)).await?;
        // Looked up by external id, so every row found has one.
        let existing: HashMap<String, StoredCustomer> = rows.into_iter().filter_map(|r| Some((r.external_id.clone()?, r))).collect();
        let live = serde_json::Value::Array(existing.values().filter(|o| o.deleted_at.is_none()).map(|o| o.id.into()).collect());
        let mut old_tags: HashMap<i64, Vec<String>> = HashMap::new();
        let mut old_consents: HashMap<i64, Vec<(String, bool)>> = HashMap::new();
        if live.as_array().is_some_and(|ids| !ids.is_empty()) {
            let q = query(format!(
                "SELECT customer_id, tag FROM customer_tags WHERE customer_id IN ({}) ORDER BY customer_id, tag",
                engine.json_ints(1)
            ));
            for (id, tag) in tx.fetch_all::<(i64, String)>(q.bind(live.clone())).await? {
                old_tags.entry(id).or_default().push(tag);
            }
            let q = query(format!(
                "SELECT customer_id, channel, granted FROM customer_consents WHERE customer_id IN ({})",
                engine.json_ints(1)
            ));
            for (id, channel, granted) in tx.fetch_all::<(i64, String, bool)>(q.bind(live)).await? {
                old_consents.entry(id).or_default().push((channel, granted));
            }
        }
        let mut fresh = Vec::new();
        for c in valid {
            // A new customer's referrer is written with the row when it is known by then (see
            // `insert_customers`); the others are linked at the end of the file.
            if let (Some(r), true) = (&c.referrer, existing.contains_key(&c.external_id)) {
                self.referrals.push((c.row, c.external_id.clone(), r.clone()));
            }
            match existing.get(&c.external_id) {
                Some(old) if old.deleted_at.is_some() => {
                    let column = rej.names[fields::customer::EXTERNAL_ID].clone();
                    let reason = match old.merged_into {
                        Some(into) => format!("this customer was merged into customer #{into}"),
                        None => "this customer was deleted".into(),
                    };
                    rej.add(Rejection { row: c.row, column, value: c.external_id.clone(), reason });
                }
                Some(old)
                    if !self.in_scope(old.owner_id, old.home_unit_id)
                        || !self.in_scope(c.owner_id.or(old.owner_id), c.home_unit_id.or(old.home_unit_id)) =>
                {
                    // Outside the importer's scope the customer does not exist for them: the
                    // row is refused, with the reason, and nothing of it is written.
                    let column = rej.names[fields::customer::EXTERNAL_ID].clone();
                    rej.add(Rejection { row: c.row, column, value: c.external_id.clone(), reason: OUT_OF_SCOPE.into() });
                }
                Some(old) => {
                    let tags = old_tags.remove(&old.id).unwrap_or_default();
                    let consents = old_consents.remove(&old.id).unwrap_or_default();
                    if self.update_customer(tx, old, &c, tags, consents).await? {
                        counts.updated += 1;
                    } else {
                        // The referrer, set at the end, may still change it.
                        self.unchanged.insert(old.id);
                        counts.unchanged += 1;
                    }
                    self.customers.insert(c.external_id.clone(), old.id);
                }
                None if !self.in_scope(c.owner_id, c.home_unit_id) => {
                    let column = rej.names[fields::customer::EXTERNAL_ID].clone();
                    rej.add(Rejection {
                        row: c.row,
                        column,
                        value: c.external_id.clone(),
                        reason: "the new customer would be outside your scope (give a home_unit of yours)".into(),
                    });
                }
                None => fresh.push(c),
            }
        }
        counts.created += fresh.len() as u64;
        self.insert_customers(tx, &fresh).await
    }

    /// Writes new customers with their tags and consents in bulk (COPY on PostgreSQL, prepared
    /// multi-row inserts on the transaction's connection on SQLite), their ids reserved first.
    /// Against multi-row inserts through sqlx (thousands of parameters per statement to copy,
    /// parse and bind), 110,000 customers, three interleaved runs each on a noisy 2-core VM:
    /// SQLite 7.3–9.1 → 5.5–7.5 s, PostgreSQL 9.4–12.8 → 8.4–9.5 s (client CPU 5.7 → 4.8 s and
    /// 2.1 → 1.5 s). A statement per customer, tag and consent had taken a minute.
    async fn insert_customers(&mut self, tx: &mut Tx, fresh: &[CustomerIn]) -> Result<()> {
        if fresh.is_empty() {
            return Ok(());
        }
        let ids = self.customer_ids.reserve(tx, "customers", fresh.len()).await?;
        let new: Vec<(i64, &CustomerIn)> = ids.into_iter().zip(fresh).collect();
        let mut tags: Vec<(i64, &str)> = Vec::new();
        let mut consents: Vec<(i64, &str, bool)> = Vec::new();
        for &(id, c) in &new {
            self.customers.insert(c.external_id.clone(), id);
            tags.extend(c.tags.iter().flatten().map(|t| (id, t.as_str())));
            consents.extend(c.consents.iter().map(|(ch, granted)| (id, *ch, *granted)));
        }
        // Referrers already known (earlier in the file, this batch included, or stored and named
        // by an earlier row) go in with the row; the rest are linked at the end of the file
        // (`finish_referrals`), which had updated every referred customer a second time.
        let new: Vec<(i64, &CustomerIn, Option<i64>)> = new
            .into_iter()
            .map(|(id, c)| {
                let referrer = c.referrer.as_ref().and_then(|r| self.customers.get(r).copied());
                if let (Some(r), None) = (&c.referrer, referrer) {
                    self.referrals.push((c.row, c.external_id.clone(), r.clone()));
                }
                (id, c, referrer)
            })
            .collect();
        let now = self.now;
        bulk::write_rows_indexed(tx, "customers", &NEW_CUSTOMER_COLUMNS, &new, |cells, (id, c, referrer)| {
            new_customer_cells(cells, *id, c, *referrer, now)
        })
        .await?;
        // Their external ids in the key table (see `crate::keys`); a taken one fails the file.
        // (On SQLite the key table is a view of the customers, and a row written to it is a
        // trigger that does nothing.)
        if tx.engine() != Engine::Sqlite {
            bulk::write_rows(tx, "customer_keys", &["external_id", "customer_id"], &new, |cells, (id, c, _)| {
                cells.text(Some(&c.external_id))?;
                cells.int(Some(*id))
            })
            .await?;
        }
        // Tags and consents refer only to the customers just inserted by this transaction,
        // which nobody else can see, let alone delete: PostgreSQL's per-row foreign-key
        // triggers (a third of the customers import) check nothing here.
        let triggers_off = !(tags.is_empty() && consents.is_empty()) && tx.fk_triggers(false).await?;
        bulk::write_rows(tx, "customer_tags", &["customer_id", "tag"], &tags, |cells, (id, tag)| {
            cells.int(Some(*id))?;
            cells.text(Some(tag))
        })
        .await?;
        bulk::write_rows(
            tx,
            "customer_consents",
            &["customer_id", "channel", "granted", "recorded_at", "source"],
            &consents,
            |cells, (id, channel, granted)| {
                cells.int(Some(*id))?;
                cells.text(Some(channel))?;
                cells.bool(*granted)?;
                cells.time(now)?;
                cells.text(Some("import"))
            },
        )
        .await?;
        if triggers_off {
            tx.fk_triggers(true).await?;
        }
        Ok(())
    }

    /// Writes only what differs, with a history row per changed field. `old_tags` (sorted) and
    /// `old_consents` are the customer's as stored.
    async fn update_customer(
        &self,
        tx: &mut Tx,
        old: &StoredCustomer,
        c: &CustomerIn,
        old_tags: Vec<String>,
        old_consents: Vec<(String, bool)>,
    ) -> Result<bool> {
        let mut changes: Vec<(String, Option<String>, Option<String>)> = Vec::new();
        let mut diff = |field: &str, o: Option<String>, n: Option<String>| {
            if o != n {
                changes.push((field.to_owned(), o, n));
            }
        };
        diff("kind", Some(old.kind.clone()), Some(c.kind.to_owned()));
        diff("name", Some(old.name.clone()), Some(c.name.clone()));
        // Columns absent from the file (None) keep their value; present ones replace it.
        let keep = |o: &Option<String>, n: &Option<String>| if n.is_some() { n.clone() } else { o.clone() };
        let mobile = keep(&old.mobile, &c.mobile);
        let email = keep(&old.email, &c.email);
        let wechat = keep(&old.wechat_id, &c.wechat_id);
        let gender = keep(&old.gender, &c.gender.map(str::to_owned));
        let city = keep(&old.city, &c.city);
        let birthday = c.birthday.or(old.birthday);
        let owner_id = c.owner_id.or(old.owner_id);
        let home_unit_id = c.home_unit_id.or(old.home_unit_id);
        diff("mobile", old.mobile.clone(), mobile.clone());
        diff("email", old.email.clone(), email.clone());
        diff("wechat_id", old.wechat_id.clone(), wechat.clone());
        diff("gender", old.gender.clone(), gender.clone());
        diff("birthday", old.birthday.map(|d| d.to_string()), birthday.map(|d| d.to_string()));
        diff("city", old.city.clone(), city.clone());
        diff("owner_id", old.owner_id.map(|v| v.to_string()), owner_id.map(|v| v.to_string()));
        diff("home_unit_id", old.home_unit_id.map(|v| v.to_string()), home_unit_id.map(|v| v.to_string()));
        let mut attrs = old.attributes.0.clone();
        if let Some(obj) = attrs.as_object_mut() {
            for (k, v) in &c.attributes {
                let before = obj.get(k).map(|x| x.as_str().map(str::to_owned).unwrap_or_else(|| x.to_string()));
                if before.as_deref() != Some(v.as_str()) {
                    diff(&format!("attr.{k}"), before, Some(v.clone()));
                    obj.insert(k.clone(), serde_json::Value::String(v.clone()));
                }
            }
        }
        let tags_changed = c.tags.as_ref().is_some_and(|t| *t != old_tags);
        if tags_changed {
            diff("tags", Some(old_tags.join(";")), c.tags.as_ref().map(|t| t.join(";")));
        }
        let mut consent_changes = Vec::new();
        for (ch, granted) in &c.consents {
            let before = old_consents.iter().find(|(x, _)| x == ch).map(|(_, g)| *g);
            if before != Some(*granted) {
                diff(&format!("consent.{ch}"), before.map(|b| b.to_string()), Some(granted.to_string()));
                consent_changes.push((*ch, *granted));
            }
        }
        if changes.is_empty() {
            return Ok(false);
        }
        tx.execute(
            query(
                "UPDATE customers SET kind = $1, name = $2, mobile = $3, email = $4, wechat_id = $5, gender = $6, birthday = $7, \
                 city = $8, owner_id = $9, attributes = $10, updated_at = $11, home_unit_id = $13 WHERE id = $12",
            )
            .bind(c.kind)
            .bind(c.name.as_str())
            .bind(mobile)
            .bind(email)
            .bind(wechat)
            .bind(gender)
            .bind(birthday)
            .bind(city)
            .bind(owner_id)
            .bind(attrs)
            .bind(self.now)
            .bind(old.id)
            .bind(home_unit_id),
        )
        .await?;
        if tags_changed {
            if let Some(tags) = &c.tags {
                crate::customers::set_tags(tx, old.id, tags).await?;
            }
        }
        for (ch, granted) in consent_changes {
            upsert_consent(tx, old.id, ch, granted, self.now, "import").await?;
        }
        for (field, o, n) in changes {
            record_change(tx, old.id, self.now, &self.actor, &field, o, n).await?;
        }
        Ok(true)
    }

    /// Sets referrers once every customer of the file exists, so a referrer may come later in the file.
    async fn finish_referrals(&mut self, tx: &mut Tx, rej: &mut Rejections, counts: &mut Counts) -> Result<()> {
        let referrals = std::mem::take(&mut self.referrals);
        let ids: Vec<String> = referrals.iter().flat_map(|(_, c, r)| [c.clone(), r.clone()]).collect();
        self.resolve_customers(tx, ids.into_iter()).await?;
        let mut links: Vec<(i64, i64)> = Vec::with_capacity(referrals.len());
        for (row, customer, referrer) in referrals {
            match (self.customers.get(&customer), self.customers.get(&referrer)) {
                (Some(&cid), Some(&rid)) => links.push((cid, rid)),
                (Some(_), None) => {
                    let column = rej.names[fields::customer::REFERRER_ID].clone();
                    rej.add(Rejection { row, column, value: referrer, reason: "unknown referrer customer".into() });
                }
                _ => {}
            }
        }
        if links.is_empty() {
            return Ok(());
        }
        // Set-based: the stored referrers in one query, the changed ones written by one
        // statement through a stage (a query and an update per customer were most of a customers
        // import with referrals).
        let ids = serde_json::Value::Array(links.iter().map(|&(cid, _)| cid.into()).collect());
        let q = query(format!("SELECT id, referrer_id FROM customers WHERE id IN ({})", tx.engine().json_ints(1)));
        let stored: HashMap<i64, Option<i64>> = tx.fetch_all::<(i64, Option<i64>)>(q.bind(ids)).await?.into_iter().collect();
        let changed: Vec<(i64, i64, Option<i64>)> = links
            .into_iter()
            .filter_map(|(cid, rid)| {
                let old = stored.get(&cid).copied().flatten();
                (old != Some(rid)).then_some((cid, rid, old))
            })
            .collect();
        if changed.is_empty() {
            return Ok(());
        }
        // A row that changed only its referrer changed its customer after all.
        for (cid, _, _) in &changed {
            if self.unchanged.remove(cid) {
                counts.unchanged -= 1;
                counts.updated += 1;
            }
        }
        REFERRAL_STAGE.create(tx).await?;
        REFERRAL_STAGE.fill(tx, changed.iter().map(|&(cid, rid, _)| vec![Arg::I64(Some(cid)), Arg::I64(Some(rid))]).collect()).await?;
        tx.execute(query(format!(
            // UPDATE … FROM (SQLite ≥ 3.33, PostgreSQL): a join, where a correlated subquery
            // scanned the unindexed stage once per customer.
            "UPDATE customers SET referrer_id = s.referrer_id FROM {stage} s WHERE customers.id = s.customer_id",
            stage = REFERRAL_STAGE.name
        )))
        .await?;
        REFERRAL_STAGE.drop_table(tx).await?;
        // A referrer replaced (not a first one) is a change of the profile, with its history row.
        for (cid, rid, old) in changed {
            if let Some(old) = old {
                record_change(tx, cid, self.now, &self.actor, "referrer_id", Some(old.to_string()), Some(rid.to_string())).await?;
            }
        }
        Ok(())
    }
}

/// The referrer links of a customers import that change a stored referrer.
static REFERRAL_STAGE: Stage =
    Stage { name: "patron_stage_referrals", columns: &[("customer_id", ColType::Int), ("referrer_id", ColType::Int)] };

/// Writes rejections as CSV (`row,column,value,reason`).
pub fn write_rejections<W: std::io::Write>(out: W, rejections: &[Rejection]) -> Result<()> {
    let mut w = csv::Writer::from_writer(out);
    let io = |e: csv::Error| StoreError::Io(std::io::Error::other(e));
    w.write_record(["row", "column", "value", "reason"]).map_err(io)?;
    for r in rejections {
        w.write_record([r.row.to_string().as_str(), &r.column, &r.value, &r.reason]).map_err(io)?;
    }
    w.flush()?;
    Ok(())
}

/// External ids looked up per statement by [`find_customers`].
pub(super) const FIND_CUSTOMERS_AT_ONCE: usize = 20_000;

/// Finds the customers (external id, id) that rows naming `ids` belong to: live ones, and for
/// a merged one the customer it was merged into.
pub(super) fn find_customers(engine: Engine, ids: &[impl AsRef<str>]) -> Query {
    let list = serde_json::Value::Array(ids.iter().map(|id| serde_json::Value::String(id.as_ref().to_owned())).collect());
    let sql = format!(
        "SELECT external_id, {RESOLVED_CUSTOMER_ID} FROM customers WHERE {RESOLVABLE_CUSTOMER} AND external_id IN ({})",
        engine.json_strings(1)
    );
    query(sql).bind(list)
}

/// PostgreSQL: locks the rows of `table` with these ids `FOR KEY SHARE`, the lock its foreign-key
/// triggers take, each once per file (`locked` remembers them), so that a write made without
/// the triggers (see [`Tx::fk_triggers`]) cannot end up pointing at a row someone else deleted.
/// An id that is gone already fails the import as a conflict.
pub(super) async fn lock_keys(
    tx: &mut Tx,
    table: &'static str,
    ids: impl Iterator<Item = i64>,
    locked: &mut foldhash::HashSet<(&'static str, i64)>,
) -> Result<()> {
    let new: Vec<serde_json::Value> = ids.filter(|&id| locked.insert((table, id))).map(serde_json::Value::from).collect();
    if new.is_empty() {
        return Ok(());
    }
    let wanted = new.len() as i64;
    let sql = format!("SELECT COUNT(*) FROM (SELECT id FROM {table} WHERE id IN ({}) FOR KEY SHARE) AS locked", tx.engine().json_ints(1));
    let (found,): (i64,) = tx.fetch_one(query(sql).bind(serde_json::Value::Array(new))).await?;
    if found != wanted {
        return Err(StoreError::Conflict(format!("{} {table} referenced by this file were deleted during the import", wanted - found)));
    }
    Ok(())
}
