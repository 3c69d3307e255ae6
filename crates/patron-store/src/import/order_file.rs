//! Reads an orders file for analysis without a database (`patron analyze --orders FILE`): the
//! columns `customer_id, date, amount` (other names by header alias or `--map`), optionally
//! `status`, `category`, `discount` and `promo`; other columns are ignored. Rows are checked with
//! the import's parsers and rejected with the import's row/column/reason reports.

/// Hash maps keyed by file content: foldhash, as SipHash's DoS resistance buys nothing for a file
/// the user analyses on their own machine and costs a tenth of the reading time.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
use std::io::Read;

use patron_analytics::summary::NO_CATEGORY;
use patron_analytics::Orders;

use super::fields::FieldSpec;
use super::source::{self, Columns, Encoding, Format, Source};
use super::{Rejection, Rejections};
use crate::{values, Result, StoreError};

const CUSTOMER_ID: usize = 0;
const DATE: usize = 1;
const AMOUNT: usize = 2;
const STATUS: usize = 3;
const CATEGORY: usize = 4;
const DISCOUNT: usize = 5;
const PROMO: usize = 6;

const fn f(name: &'static str, aliases: &'static [&'static str], required: bool) -> FieldSpec {
    FieldSpec { name, aliases, required }
}

/// The fields of an analysis orders file.
pub static ORDER_FILE_SPEC: [FieldSpec; 7] = [
    f("customer_id", &["客户编号", "客户id", "会员编号", "customer", "cust_id"], true),
    f("date", &["ordered_at", "order_date", "下单时间", "订单时间", "日期", "purchase_date"], true),
    f("amount", &["金额", "实付金额", "订单金额", "total", "spend", "sales"], true),
    f("status", &["状态", "订单状态"], false),
    f("category", &["品类", "类别"], false),
    f("discount", &["优惠", "优惠金额"], false),
    f("promo", &["促销", "是否促销"], false),
];

/// How to read the file.
#[derive(Debug, Clone)]
pub struct OrderFileOptions {
    /// Forced encoding (detected otherwise).
    pub encoding: Option<Encoding>,
    /// `SOURCE=FIELD` header mappings.
    pub mappings: Vec<(String, String)>,
    /// Zone of times without an offset, and of calendar days.
    pub tz: chrono_tz::Tz,
}

/// The orders of a file, column-wise, with customers numbered in order of first appearance.
#[derive(Debug, Clone, Default)]
pub struct OrderFile {
    /// The file's customer ids, by customer index.
    pub customer_ids: Vec<String>,
    /// Completed orders (other statuses are skipped, not rejected).
    pub orders: Orders,
    /// Data rows read.
    pub rows_read: u64,
    /// Rows skipped because their status is not completed.
    pub rows_skipped: u64,
    /// The detected or forced encoding.
    pub encoding: Encoding,
    /// Rejected rows (at most the import's report limit are listed).
    pub rejections: Vec<Rejection>,
    /// Number of rejected rows.
    pub rejected: u64,
}

/// One row's parsed values, before customers and categories are numbered.
struct Parsed<'a> {
    customer: &'a str,
    day: i32,
    amount: i64,
    completed: bool,
    category: Option<&'a str>,
    /// Whether the row carried a discount or promo value (else full price is unknown).
    has_flags: bool,
    full_price: bool,
}

/// A problem with one field of a row.
struct FieldError {
    field: usize,
    value: String,
    reason: String,
}

/// Calendar days of the date prefixes seen so far (dates repeat a lot, times hardly ever).
type DayCache = HashMap<[u8; 10], i32>;

/// Parses one row's fields (`None` = empty or absent) with the import's parsers.
fn parse_row<'a>(v: &[Option<&'a str>; 7], tz: chrono_tz::Tz, days: &mut DayCache) -> std::result::Result<Parsed<'a>, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut fail = |field: usize, value: &str, reason: String| errors.push(FieldError { field, value: value.to_owned(), reason });
    for field in [CUSTOMER_ID, DATE, AMOUNT] {
        if v[field].is_none() {
            fail(field, "", "required".into());
        }
    }
    let day = v[DATE].and_then(|t| fast_day(t, tz, days).map_err(|e| fail(DATE, t, e)).ok());
    let amount = v[AMOUNT].and_then(|t| match values::parse_money(t) {
        Ok(a) if a < 0 => {
            fail(AMOUNT, t, "must not be negative (leave refunds out or give them a status)".into());
            None
        }
        Ok(a) => Some(a),
        Err(e) => {
            fail(AMOUNT, t, e);
            None
        }
    });
    let status = v[STATUS].map(|t| values::parse_order_status(t).map_err(|e| fail(STATUS, t, e)).unwrap_or("completed"));
    let discount = v[DISCOUNT].map(|t| values::parse_money(t).map_err(|e| fail(DISCOUNT, t, e)).unwrap_or(0)).unwrap_or(0);
    let promo = v[PROMO].map(|t| values::parse_bool(t).map_err(|e| fail(PROMO, t, e)).unwrap_or(false)).unwrap_or(false);
    match (errors.is_empty(), v[CUSTOMER_ID], day, amount) {
        (true, Some(customer), Some(day), Some(amount)) => Ok(Parsed {
            customer,
            day,
            amount,
            completed: status.unwrap_or("completed") == "completed",
            category: v[CATEGORY],
            has_flags: v[DISCOUNT].is_some() || v[PROMO].is_some(),
            full_price: discount == 0 && !promo,
        }),
        _ => Err(errors),
    }
}

/// Numbers distinct strings in order of first appearance (a piece's customers or categories).
#[derive(Default)]
struct Interner {
    by_hash: HashInterner,
    /// The last id handed out or found: files are often grouped by customer.
    last: Option<u32>,
}

impl Interner {
    fn id(&mut self, v: &str) -> u32 {
        if let Some(l) = self.last {
            if self.by_hash.names[l as usize] == v {
                return l;
            }
        }
        let i = self.by_hash.id(name_hash(v), v);
        self.last = Some(i);
        i
    }

    /// The names in order with their hashes, for [`HashInterner::id`] on the whole file.
    fn into_hashed(self) -> Vec<(u64, String)> {
        let HashInterner { hashes, names, .. } = self.by_hash;
        hashes.into_iter().zip(names).collect()
    }
}

/// The hash under which [`HashInterner`] files a name (fixed seed: pieces compute it in
/// parallel and the file-wide numbering reuses it).
fn name_hash(v: &str) -> u64 {
    use std::hash::BuildHasher;
    foldhash::fast::FixedState::default().hash_one(v)
}

/// Numbers names given their hashes. Keyed by the 64-bit hash, so the map never touches the
/// strings when it grows (with a million customers, rehashing String keys was most of the
/// merge) and a name is copied once, not twice; the rare second name with an equal hash is
/// filed by name.
#[derive(Default)]
struct HashInterner {
    by_hash: HashMap<u64, u32>,
    collided: HashMap<String, u32>,
    names: Vec<String>,
    hashes: Vec<u64>,
}

impl HashInterner {
    fn id<S: AsRef<str> + Into<String>>(&mut self, hash: u64, name: S) -> u32 {
        use std::collections::hash_map::Entry;
        let next = self.names.len() as u32;
        match self.by_hash.entry(hash) {
            Entry::Vacant(e) => {
                e.insert(next);
            }
            Entry::Occupied(e) if self.names[*e.get() as usize] == name.as_ref() => return *e.get(),
            Entry::Occupied(_) => match self.collided.get(name.as_ref()) {
                Some(i) => return *i,
                None => {
                    self.collided.insert(name.as_ref().to_owned(), next);
                }
            },
        }
        self.names.push(name.into());
        self.hashes.push(hash);
        next
    }
}

/// Completed orders column-wise, customers and categories numbered (within a piece, or in the
/// file).
#[derive(Default)]
struct Cols {
    customer: Vec<u32>,
    day: Vec<i32>,
    amount: Vec<i64>,
    category: Vec<u32>,
    full_price: Vec<bool>,
    has_category: bool,
    has_flags: bool,
    /// Whether the file has a category column, and a discount or promo column: without one,
    /// the column's vector stays empty rather than holding a value per order that says
    /// "unknown" (5 bytes an order written and copied for nothing).
    keep_category: bool,
    keep_flags: bool,
}

impl Cols {
    fn new(n: usize, keep_category: bool, keep_flags: bool) -> Cols {
        Cols {
            customer: Vec::with_capacity(n),
            day: Vec::with_capacity(n),
            amount: Vec::with_capacity(n),
            category: Vec::with_capacity(if keep_category { n } else { 0 }),
            full_price: Vec::with_capacity(if keep_flags { n } else { 0 }),
            keep_category,
            keep_flags,
            ..Cols::default()
        }
    }

    /// An emptied piece's columns, ready for the next piece (see [`ColsPool`]).
    fn cleared(mut self, n: usize, keep_category: bool, keep_flags: bool) -> Cols {
        for v in [&mut self.customer, &mut self.category] {
            v.clear();
        }
        self.day.clear();
        self.amount.clear();
        self.full_price.clear();
        self.customer.reserve(n);
        self.day.reserve(n);
        self.amount.reserve(n);
        if keep_category {
            self.category.reserve(n);
        }
        if keep_flags {
            self.full_price.reserve(n);
        }
        Cols { has_category: false, has_flags: false, keep_category, keep_flags, ..self }
    }

    /// Adds a parsed row, numbering its customer and category with `customers` / `categories`.
    fn push(&mut self, p: &Parsed<'_>, customers: &mut Interner, categories: &mut Interner) {
        self.customer.push(customers.id(p.customer));
        self.day.push(p.day);
        self.amount.push(p.amount);
        if self.keep_category {
            self.category.push(p.category.map_or(NO_CATEGORY, |c| categories.id(c)));
        }
        self.has_category |= p.category.is_some();
        self.has_flags |= p.has_flags;
        if self.keep_flags {
            self.full_price.push(p.full_price);
        }
    }
}

/// Columns of pieces already merged, for the next pieces to fill: fresh ones cost a page
/// fault every 4 KiB, for every order of the file (a tenth of the reading).
#[derive(Default)]
struct ColsPool(std::sync::Mutex<Vec<Cols>>);

impl ColsPool {
    fn take(&self, n: usize, keep_category: bool, keep_flags: bool) -> Cols {
        match self.0.lock().ok().and_then(|mut free| free.pop()) {
            Some(cols) => cols.cleared(n, keep_category, keep_flags),
            None => Cols::new(n, keep_category, keep_flags),
        }
    }

    fn put(&self, cols: Cols) {
        if let Ok(mut free) = self.0.lock() {
            free.push(cols);
        }
    }
}

/// Accumulates rows into the column-wise result, numbering customers and categories in order
/// of first appearance in the file.
struct Builder {
    out: OrderFile,
    cols: Cols,
    customers: HashInterner,
    categories: HashInterner,
}

impl Builder {
    fn new(cols: Cols) -> Builder {
        Builder { out: OrderFile::default(), cols, customers: HashInterner::default(), categories: HashInterner::default() }
    }

    /// Adds a parsed row (the JSON-lines path; CSV goes by pieces).
    fn push(&mut self, p: &Parsed<'_>) {
        let c = &mut self.cols;
        c.customer.push(self.customers.id(name_hash(p.customer), p.customer));
        c.day.push(p.day);
        c.amount.push(p.amount);
        c.category.push(p.category.map_or(NO_CATEGORY, |v| self.categories.id(name_hash(v), v)));
        c.has_category |= p.category.is_some();
        c.has_flags |= p.has_flags;
        c.full_price.push(p.full_price);
    }

    /// Adds a piece's rows, renumbering its customers and categories. A piece numbers them in
    /// order of first appearance within the piece, so numbering its lists in order keeps the
    /// file's order of first appearance — and the file-wide map is consulted once per distinct
    /// customer of a piece rather than once per row.
    fn push_piece(&mut self, piece: &mut Piece) {
        let customers: Vec<u32> = std::mem::take(&mut piece.customers).into_iter().map(|(h, c)| self.customers.id(h, c)).collect();
        let categories: Vec<u32> = std::mem::take(&mut piece.categories).into_iter().map(|(h, c)| self.categories.id(h, c)).collect();
        self.out.rows_skipped += piece.skipped;
        let (to, from) = (&mut self.cols, &piece.cols);
        to.customer.extend(from.customer.iter().map(|&c| customers[c as usize]));
        to.day.extend_from_slice(&from.day);
        to.amount.extend_from_slice(&from.amount);
        to.category.extend(from.category.iter().map(|&c| if c == NO_CATEGORY { c } else { categories[c as usize] }));
        to.full_price.extend_from_slice(&from.full_price);
        to.has_category |= from.has_category;
        to.has_flags |= from.has_flags;
    }

    fn finish(mut self, rej: Rejections) -> OrderFile {
        self.out.customer_ids = self.customers.names;
        let c = self.cols;
        self.out.orders.customer = c.customer;
        self.out.orders.day = c.day;
        self.out.orders.amount_cents = c.amount;
        // A column the file does not have stays empty, which the models read as "unknown".
        if c.has_category {
            self.out.orders.category = c.category;
        }
        if c.has_flags {
            self.out.orders.full_price = c.full_price;
        }
        self.out.rejected = rej.count;
        let mut list = rej.list;
        list.sort_by_key(|r| r.row);
        self.out.rejections = list;
        self.out
    }
}

/// Reads an analysis orders file. `Err` for file-level problems (unreadable, missing columns);
/// row-level problems are in [`OrderFile::rejections`] — the caller decides whether to go on.
/// CSV is parsed in parallel blocks; JSON lines go through the import's record reader.
pub fn read_order_file(input: Box<dyn Read + Send>, file_name: &str, opts: &OrderFileOptions, progress: &dyn Fn(u64)) -> Result<OrderFile> {
    let (reader, encoding) = source::decode(input, opts.encoding)?;
    let mut out = match Format::from_file_name(file_name) {
        Format::Csv => read_csv(reader, opts, progress, BLOCK)?,
        Format::Jsonl => read_records(reader, opts, progress)?,
    };
    out.encoding = encoding;
    Ok(out)
}

/// [`read_order_file`] for a file whose bytes are in memory, typically mapped: CSV in UTF-8 (with
/// or without a BOM) is parsed straight from `bytes`, without the copy a reader makes. `Ok(None)`
/// when the file needs the streaming reader instead (JSON lines, or an encoding to transcode).
/// `parsed` gets each range of `bytes` that has been parsed and is not read again, so that the
/// caller of a mapped file can give those pages back as it goes.
pub fn read_order_bytes(
    bytes: &[u8],
    file_name: &str,
    opts: &OrderFileOptions,
    progress: &dyn Fn(u64),
    parsed: &dyn Fn(std::ops::Range<usize>),
) -> Result<Option<OrderFile>> {
    if Format::from_file_name(file_name) != Format::Csv {
        return Ok(None);
    }
    let (encoding, bom) = source::sniff(&bytes[..bytes.len().min(source::SNIFF)], opts.encoding)?;
    if encoding != Encoding::Utf8 {
        return Ok(None);
    }
    let base = bytes.as_ptr() as usize;
    let done = |block: &[u8]| {
        let start = block.as_ptr() as usize - base;
        parsed(start..start + block.len());
    };
    let mut out = read_csv_bytes(&bytes[if bom { 3 } else { 0 }..], opts, progress, BLOCK, &done)?;
    out.encoding = encoding;
    Ok(Some(out))
}

fn read_records(reader: Box<dyn Read + Send>, opts: &OrderFileOptions, progress: &dyn Fn(u64)) -> Result<OrderFile> {
    // `read_order_file` hands over text already decoded to UTF-8.
    let mut src = Source::open_with(reader, Encoding::Utf8, Format::Jsonl, &ORDER_FILE_SPEC, &opts.mappings, false, true)?;
    let mut rej = Rejections { names: src.source_names(), list: Vec::new(), count: 0, rows: Default::default() };
    // Any record may carry any field.
    let mut b = Builder::new(Cols::new(0, true, true));
    let mut days = DayCache::default();
    while let Some(next) = src.next()? {
        b.out.rows_read += 1;
        if b.out.rows_read.is_multiple_of(100_000) {
            progress(b.out.rows_read);
        }
        if rej.names != src.source_names_ref() {
            rej.names = src.source_names();
        }
        match next {
            Err(r) => rej.add(r),
            Ok(rec) => {
                let v: [Option<&str>; 7] = std::array::from_fn(|i| rec.values[i].as_deref());
                match parse_row(&v, opts.tz, &mut days) {
                    Ok(p) if !p.completed => b.out.rows_skipped += 1,
                    Ok(p) => b.push(&p),
                    Err(errors) => {
                        for e in errors {
                            rej.field(rec.row, e.field, &e.value, e.reason);
                        }
                    }
                }
            }
        }
    }
    progress(b.out.rows_read);
    Ok(b.finish(rej))
}

/// Bytes read per block; each block is cut at a record boundary and parsed by all cores.
const BLOCK: usize = 16 << 20;

/// The CSV fast path: blocks cut at record boundaries (newlines outside quotes), each split into
/// pieces parsed in parallel, merged in file order so customers are numbered as they appear.
fn read_csv(mut reader: Box<dyn Read + Send>, opts: &OrderFileOptions, progress: &dyn Fn(u64), block_size: usize) -> Result<OrderFile> {
    let mut buf: Vec<u8> = Vec::with_capacity(BLOCK * 2);
    let eof = fill(&mut reader, &mut buf, block_size)?;
    let layout = CsvLayout::from_header(&buf, eof, block_size, opts)?;
    buf.drain(..layout.header_end.min(buf.len()));
    // A thread reads and cuts blocks while this one parses them (see `parse_blocks`).
    std::thread::scope(|scope| {
        let (block_tx, block_rx) = std::sync::mpsc::sync_channel::<BlockMsg<Vec<u8>>>(1);
        let (free_tx, free_rx) = std::sync::mpsc::channel::<Vec<u8>>();
        scope.spawn(move || read_blocks(reader, buf, eof, block_size, &block_tx, &free_rx));
        // The reader reuses the buffers (fresh memory costs page faults).
        parse_blocks(&layout, opts, progress, block_rx, false, |block| {
            let _ = free_tx.send(block);
        })
    })
}

/// [`read_csv`] over bytes already in memory (a mapped file): the blocks are slices of `bytes`,
/// so nothing is copied before parsing.
fn read_csv_bytes(
    bytes: &[u8],
    opts: &OrderFileOptions,
    progress: &dyn Fn(u64),
    block_size: usize,
    parsed: &dyn Fn(&[u8]),
) -> Result<OrderFile> {
    use rayon::prelude::*;
    let head = &bytes[..bytes.len().min(block_size)];
    let layout = CsvLayout::from_header(head, head.len() == bytes.len(), block_size, opts)?;
    let mut rest = &bytes[layout.header_end.min(bytes.len())..];
    // Whether the whole file is plain lines (no quote, no CR), scanned once on all cores: then
    // blocks are cut at their last newline and pieces split at newlines without scanning each
    // block for quotes again on one core (two serial scans of the file).
    let plain = rest.par_chunks(1 << 20).all(|c| memchr::memchr2(b'"', b'\r', c).is_none());
    let blocks = std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut window = block_size;
        loop {
            if window >= rest.len() {
                return Some(BlockMsg::Block(std::mem::take(&mut rest)));
            }
            let cut = if plain { memchr::memrchr(b'\n', &rest[..window]).map_or(0, |i| i + 1) } else { record_boundary(&rest[..window]) };
            if cut > 0 {
                let (block, tail) = rest.split_at(cut);
                rest = tail;
                return Some(BlockMsg::Block(block));
            }
            if window > 512 << 20 {
                rest = &[];
                return Some(BlockMsg::RecordTooLarge);
            }
            // No record ends within the window: widen it.
            window *= 2;
        }
    });
    parse_blocks(&layout, opts, progress, blocks, plain, parsed)
}

/// Where the fields are in a CSV file's records, from its header row.
struct CsvLayout {
    /// Column of each field of [`ORDER_FILE_SPEC`].
    positions: Vec<Option<usize>>,
    /// The header of each field as written (for rejection reports).
    names: Vec<String>,
    /// Columns in the header.
    width: usize,
    /// Where the first data record starts.
    header_end: usize,
}

impl CsvLayout {
    /// Reads the header row at the start of `buf` (the first `block_size` bytes of the input, or
    /// all of it when `eof`).
    fn from_header(buf: &[u8], eof: bool, block_size: usize, opts: &OrderFileOptions) -> Result<CsvLayout> {
        let mut r = csv::ReaderBuilder::new().has_headers(true).flexible(true).from_reader(buf);
        let h = r.headers().map_err(|e| StoreError::File(format!("cannot read the header row: {e}")))?.clone();
        let header_end = r.position().byte() as usize;
        let headers: Vec<String> = h.iter().map(str::to_owned).collect();
        if headers.iter().all(|h| h.trim().is_empty()) {
            return Err(StoreError::File("the file is empty or has no header row".into()));
        }
        if !eof && header_end >= buf.len() {
            return Err(StoreError::File(format!("the header row is longer than {block_size} bytes")));
        }
        let columns = Columns::resolve_with(&headers, &ORDER_FILE_SPEC, &opts.mappings, false, true)?;
        Ok(CsvLayout { positions: columns.positions(), names: columns.source_names.clone(), width: headers.len(), header_end })
    }
}

/// Parses blocks of whole records in order. Three stages run at once: something produces the
/// blocks (a reading thread, or slices of a mapped file), this thread parses each block on all
/// cores, and a thread numbers the parsed pieces' customers into the file-wide lists (serial
/// work that, run in line, left a core idle). `plain`: every block is known to be plain lines
/// (no quote, no CR). `done` gets each block back once it is parsed.
fn parse_blocks<B: AsRef<[u8]>>(
    layout: &CsvLayout,
    opts: &OrderFileOptions,
    progress: &dyn Fn(u64),
    blocks: impl IntoIterator<Item = BlockMsg<B>>,
    plain: bool,
    mut done: impl FnMut(B),
) -> Result<OrderFile> {
    use rayon::prelude::*;
    let CsvLayout { positions, width, .. } = layout;
    let (positions, width) = (positions.as_slice(), *width);
    let mut rej = Rejections { names: layout.names.clone(), list: Vec::new(), count: 0, rows: Default::default() };
    // Records before the current block, plus the header row: the spreadsheet row of a record.
    let mut rows_before: u64 = 1;
    let pieces_per_block = rayon::current_num_threads().max(1) * 4;
    let keep_category = positions[CATEGORY].is_some();
    let keep_flags = positions[DISCOUNT].is_some() || positions[PROMO].is_some();
    let pool = &ColsPool::default();
    std::thread::scope(|scope| {
        let (piece_tx, piece_rx) = std::sync::mpsc::sync_channel::<Vec<Piece>>(2);
        let merger = scope.spawn(move || {
            let mut b = Builder::new(Cols::new(0, keep_category, keep_flags));
            for pieces in piece_rx {
                for mut piece in pieces {
                    b.push_piece(&mut piece);
                    pool.put(piece.cols);
                }
            }
            b
        });
        let mut failed = None;
        for msg in blocks {
            let block = match msg {
                BlockMsg::Block(block) => block,
                BlockMsg::Failed(e) => {
                    failed = Some(e);
                    break;
                }
                BlockMsg::RecordTooLarge => {
                    failed = Some(StoreError::File(format!(
                        "a record near row {} is larger than 512 MiB (an unclosed quote, or a quote inside an unquoted field?)",
                        rows_before + 1
                    )));
                    break;
                }
            };
            let bytes = block.as_ref();
            let bounds = split_points(bytes, pieces_per_block, plain);
            let mut parsed: Vec<Piece> =
                bounds.par_windows(2).map(|w| parse_piece(&bytes[w[0]..w[1]], positions, width, opts.tz, pool, plain)).collect();
            for piece in &mut parsed {
                for (local, e) in std::mem::take(&mut piece.errors) {
                    let row = rows_before + local;
                    match e.field {
                        usize::MAX => rej.add(Rejection { row, column: String::new(), value: String::new(), reason: e.reason }),
                        f => rej.field(row, f, &e.value, e.reason),
                    }
                }
                rows_before += piece.records;
            }
            progress(rows_before - 1);
            if piece_tx.send(parsed).is_err() {
                break; // the merger panicked; join() below passes the panic on
            }
            done(block);
        }
        drop(piece_tx);
        let mut b = merger.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        if let Some(e) = failed {
            return Err(e);
        }
        b.out.rows_read = rows_before - 1;
        Ok(b.finish(rej))
    })
}

/// A block of whole records, or why no more come.
enum BlockMsg<B> {
    Block(B),
    Failed(StoreError),
    /// No record ends within 512 MiB.
    RecordTooLarge,
}

/// Reads `reader` (after the `buf` already read) in blocks cut at record boundaries and sends
/// them in order; buffers come back on `free` to be filled again.
fn read_blocks(
    mut reader: Box<dyn Read + Send>,
    mut buf: Vec<u8>,
    mut eof: bool,
    block_size: usize,
    out: &std::sync::mpsc::SyncSender<BlockMsg<Vec<u8>>>,
    free: &std::sync::mpsc::Receiver<Vec<u8>>,
) {
    loop {
        let cut = if eof { buf.len() } else { record_boundary(&buf) };
        if cut == 0 && !eof {
            // No record ends in this block: read more.
            match fill(&mut reader, &mut buf, block_size) {
                Ok(e) => eof = e,
                Err(e) => {
                    let _ = out.send(BlockMsg::Failed(e));
                    return;
                }
            }
            if buf.len() > 512 << 20 {
                let _ = out.send(BlockMsg::RecordTooLarge);
                return;
            }
            continue;
        }
        let mut next = free.try_recv().unwrap_or_else(|_| Vec::with_capacity(block_size * 2));
        next.clear();
        next.extend_from_slice(&buf[cut..]);
        buf.truncate(cut);
        if out.send(BlockMsg::Block(std::mem::replace(&mut buf, next))).is_err() {
            return; // the parser stopped
        }
        if eof && buf.is_empty() {
            return;
        }
        if !eof {
            match fill(&mut reader, &mut buf, block_size) {
                Ok(e) => eof = e,
                Err(e) => {
                    let _ = out.send(BlockMsg::Failed(e));
                    return;
                }
            }
        }
    }
}

/// Appends up to `n` bytes; true at the end of the input.
fn fill(reader: &mut Box<dyn Read + Send>, buf: &mut Vec<u8>, n: usize) -> Result<bool> {
    let before = buf.len();
    reader.take(n as u64).read_to_end(buf)?;
    Ok(buf.len() - before < n)
}

/// The end (exclusive) of the last complete record in `buf`: just after the last newline that
/// is outside quotes (the block starts at a record boundary, outside quotes). 0 if none.
fn record_boundary(buf: &[u8]) -> usize {
    if memchr::memchr(b'"', buf).is_none() {
        // No quotes (the usual export): the last newline ends a record.
        return memchr::memrchr(b'\n', buf).map_or(0, |i| i + 1);
    }
    let mut in_quotes = false;
    let mut last = 0;
    for (i, &c) in buf.iter().enumerate() {
        match c {
            b'"' => in_quotes = !in_quotes,
            b'\n' if !in_quotes => last = i + 1,
            _ => {}
        }
    }
    last
}

/// Offsets splitting a block of whole records into about `pieces` parts at record boundaries.
/// `plain`: the block is known to hold no quote.
fn split_points(block: &[u8], pieces: usize, plain: bool) -> Vec<usize> {
    let mut points = vec![0];
    let step = (block.len() / pieces).max(1);
    if plain || memchr::memchr(b'"', block).is_none() {
        // No quotes: every newline is a record boundary.
        let mut target = step;
        while target < block.len() {
            match memchr::memchr(b'\n', &block[target - 1..]) {
                Some(i) if target + i < block.len() => {
                    points.push(target + i);
                    target += i + step;
                }
                _ => break,
            }
        }
        points.push(block.len());
        return points;
    }
    let mut target = step;
    let mut in_quotes = false;
    for (i, &c) in block.iter().enumerate() {
        match c {
            b'"' => in_quotes = !in_quotes,
            b'\n' if !in_quotes && i + 1 >= target && i + 1 < block.len() => {
                points.push(i + 1);
                target = i + 1 + step;
            }
            _ => {}
        }
    }
    points.push(block.len());
    points
}

/// What one piece of a block parsed into.
struct Piece {
    /// Records in the piece (valid or not).
    records: u64,
    /// Completed orders, customers and categories numbered within the piece.
    cols: Cols,
    /// The piece's customers and categories in order of first appearance, with their hashes.
    customers: Vec<(u64, String)>,
    categories: Vec<(u64, String)>,
    /// Rows skipped because they are not completed.
    skipped: u64,
    /// (1-based record number within the piece, error); field `usize::MAX` = the whole row.
    errors: Vec<(u64, FieldError)>,
}

/// Per-piece parsing state: the day cache and the piece's customer and category numbering.
#[derive(Default)]
struct PieceState {
    days: DayCache,
    customers: Interner,
    categories: Interner,
}

impl Piece {
    /// Checks and adds one record of `len` fields (`field(i)` = the i-th field's bytes).
    fn record<'r>(
        &mut self,
        st: &mut PieceState,
        len: usize,
        field: impl Fn(usize) -> Option<&'r [u8]>,
        positions: &[Option<usize>],
        width: usize,
        tz: chrono_tz::Tz,
    ) {
        self.records += 1;
        // A blank line is not a record.
        if len == 1 && field(0).is_some_and(|f| f.iter().all(u8::is_ascii_whitespace)) {
            self.records -= 1;
            return;
        }
        if len != width {
            let reason = format!("expected {width} fields, found {len} (an unquoted comma or a missing quote?)");
            self.errors.push((self.records, FieldError { field: usize::MAX, value: String::new(), reason }));
            return;
        }
        let mut bad_utf8 = None;
        let v: [Option<&str>; 7] = std::array::from_fn(|f| {
            let cell = positions[f].and_then(&field)?;
            match std::str::from_utf8(cell) {
                Ok(t) => Some(t.trim()).filter(|t| !t.is_empty()),
                Err(_) => {
                    bad_utf8.get_or_insert(f);
                    None
                }
            }
        });
        if let Some(f) = bad_utf8 {
            let reason = "not valid UTF-8 (is the file GB18030? try --encoding gb18030)".to_owned();
            self.errors.push((self.records, FieldError { field: f, value: String::new(), reason }));
            return;
        }
        match parse_row(&v, tz, &mut st.days) {
            Ok(p) if !p.completed => self.skipped += 1,
            Ok(p) => self.cols.push(&p, &mut st.customers, &mut st.categories),
            Err(errors) => {
                let n = self.records;
                self.errors.extend(errors.into_iter().map(|e| (n, e)));
            }
        }
    }
}

/// Whether a piece can be split at newlines and commas alone: no quotes, and every carriage
/// return is part of a CRLF (a lone CR ends a record for a CSV reader).
fn plain_lines(bytes: &[u8]) -> bool {
    memchr::memchr(b'"', bytes).is_none() && memchr::memchr_iter(b'\r', bytes).all(|i| bytes.get(i + 1) == Some(&b'\n'))
}

/// Parses one piece of a block (whole records). `plain`: the piece is known to hold no quote
/// and no CR (else it is checked here).
fn parse_piece(bytes: &[u8], positions: &[Option<usize>], width: usize, tz: chrono_tz::Tz, pool: &ColsPool, plain: bool) -> Piece {
    let mut piece = Piece {
        records: 0,
        cols: pool.take(bytes.len() / 24, positions[CATEGORY].is_some(), positions[DISCOUNT].is_some() || positions[PROMO].is_some()),
        customers: Vec::new(),
        categories: Vec::new(),
        skipped: 0,
        errors: Vec::new(),
    };
    let mut st = PieceState::default();
    if plain || plain_lines(bytes) {
        // The common export: split lines and fields directly (the CSV state machine and the copy
        // into a record were a third of the reading time).
        let mut fields: Vec<&[u8]> = Vec::with_capacity(width);
        let mut fast = FastLines::new(positions, width);
        let mut start = 0;
        let ends = memchr::memchr_iter(b'\n', bytes).chain((bytes.last() != Some(&b'\n')).then_some(bytes.len()));
        for end in ends {
            let mut line = &bytes[start..end];
            start = end + 1;
            if let [rest @ .., b'\r'] = line {
                line = rest;
            }
            // An empty line is not a record for a CSV reader either.
            if line.is_empty() {
                continue;
            }
            if let Some(fast) = fast.as_mut() {
                if fast.record(line, &mut piece, &mut st) {
                    continue;
                }
            }
            fields.clear();
            fields.extend(line.split(|&c| c == b','));
            piece.record(&mut st, fields.len(), |i| fields.get(i).copied(), positions, width, tz);
        }
    } else {
        let mut r = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(bytes);
        let mut rec = csv::ByteRecord::new();
        loop {
            match r.read_byte_record(&mut rec) {
                Ok(false) => break,
                Ok(true) => {}
                Err(e) => {
                    piece.records += 1;
                    piece.errors.push((piece.records, FieldError { field: usize::MAX, value: String::new(), reason: e.to_string() }));
                    continue;
                }
            }
            piece.record(&mut st, rec.len(), |i| rec.get(i), positions, width, tz);
        }
    }
    piece.customers = st.customers.into_hashed();
    piece.categories = st.categories.into_hashed();
    piece
}

/// The shortcut for the most common analysis file: only customer, date and amount are read
/// (no status, category, discount or promo column) and a line holds plain values — an ASCII
/// customer id or one without surrounding spaces, `YYYY-MM-DD[ HH:MM[:SS[.f]]]`, a plain
/// amount. Such a line is read straight from its bytes; any other line goes to the general
/// path, which gives the same values and reports what is wrong.
struct FastLines<'a> {
    /// For each column of the file: 0, 1 or 2 for the customer, date and amount, else
    /// `u8::MAX` (a table lookup per cell; searching the three positions was 8 % of parsing).
    role: Vec<u8>,
    width: usize,
    /// The previous line's customer (files are usually grouped by customer) and its number.
    last_customer: &'a [u8],
    last_customer_id: u32,
    /// The previous line's date and its day.
    last_date: [u8; 10],
    last_day: i32,
}

impl<'a> FastLines<'a> {
    fn new(positions: &[Option<usize>], width: usize) -> Option<FastLines<'a>> {
        if positions[STATUS..].iter().any(Option::is_some) {
            return None;
        }
        let at = [positions[CUSTOMER_ID]?, positions[DATE]?, positions[AMOUNT]?];
        let mut role = vec![u8::MAX; width];
        for (k, &p) in at.iter().enumerate() {
            *role.get_mut(p)? = k as u8;
        }
        Some(FastLines { role, width, last_customer: &[], last_customer_id: 0, last_date: [0; 10], last_day: 0 })
    }

    /// Reads one line if it is plain; false leaves it to the general path (nothing was added).
    fn record(&mut self, line: &'a [u8], piece: &mut Piece, st: &mut PieceState) -> bool {
        let mut cells: [&[u8]; 3] = [&[]; 3];
        let mut n = 0;
        for (i, cell) in line.split(|&c| c == b',').enumerate() {
            if let Some(&k) = self.role.get(i).filter(|&&k| k < 3) {
                cells[k as usize] = cell;
            }
            n += 1;
        }
        let [customer, date, amount] = cells;
        // A cell that is empty or has anything `str::trim` could remove (or might: non-ASCII at
        // an end) is not plain.
        let plain = |c: &[u8]| matches!((c.first(), c.last()), (Some(a), Some(z)) if a.is_ascii_graphic() && z.is_ascii_graphic());
        if n != self.width || !plain(customer) {
            return false;
        }
        let Some(day) = self.day(date) else { return false };
        let Some(amount) = values::plain_money(amount) else { return false };
        let customer_id = if customer == self.last_customer {
            self.last_customer_id
        } else {
            let Ok(name) = std::str::from_utf8(customer) else { return false };
            let id = st.customers.id(name);
            self.last_customer = customer;
            self.last_customer_id = id;
            id
        };
        piece.records += 1;
        let c = &mut piece.cols;
        c.customer.push(customer_id);
        c.day.push(day);
        c.amount.push(amount);
        // No category, discount or promo column (see `new`), so those columns stay empty.
        true
    }

    /// The day of `YYYY-MM-DD`, optionally followed by a clock time (a local time's calendar
    /// day is its date, as in [`fast_day`]); `None` for anything else.
    fn day(&mut self, b: &[u8]) -> Option<i32> {
        if b.len() < 10 || (b.len() > 10 && !((b[10] == b' ' || b[10] == b'T') && is_clock(&b[11..]))) {
            return None;
        }
        if b[..10] == self.last_date {
            return Some(self.last_day);
        }
        let digit = |i: usize| b[i].is_ascii_digit().then(|| u32::from(b[i] - b'0'));
        if b[4] != b'-' || b[7] != b'-' {
            return None;
        }
        let year = digit(0)? * 1000 + digit(1)? * 100 + digit(2)? * 10 + digit(3)?;
        let month = digit(5)? * 10 + digit(6)?;
        let dom = digit(8)? * 10 + digit(9)?;
        self.last_day = month_day(year as i32, month, dom)?;
        self.last_date.copy_from_slice(&b[..10]);
        Some(self.last_day)
    }
}

/// First year of [`MONTH_STARTS`].
const TABLE_FIRST_YEAR: i32 = 1900;
/// Years covered by [`MONTH_STARTS`] (1900–2199).
const TABLE_YEARS: usize = 300;

/// The day number of the 1st of every month of 1900–2199, and of 2200-01-01 (so each month's
/// length is the difference to the next entry). In a file grouped by customer the month changes
/// on most lines, and computing its start there was 2 % of a whole analysis run.
static MONTH_STARTS: [i32; TABLE_YEARS * 12 + 1] = {
    let mut t = [0; TABLE_YEARS * 12 + 1];
    let mut i = 0;
    while i < t.len() {
        let year = TABLE_FIRST_YEAR + (i / 12) as i32;
        t[i] = days_from_civil(year, (i % 12) as u32 + 1, 1);
        i += 1;
    }
    t
};

/// The day number of a date: from [`MONTH_STARTS`] within its years, else by [`civil_day`];
/// `None` for an invalid date.
fn month_day(year: i32, month: u32, day: u32) -> Option<i32> {
    let offset = year.wrapping_sub(TABLE_FIRST_YEAR) as usize;
    if offset >= TABLE_YEARS || !(1..=12).contains(&month) {
        return civil_day(year, month, day);
    }
    let i = offset * 12 + month as usize - 1;
    let (first, next) = (MONTH_STARTS[i], MONTH_STARTS[i + 1]);
    (day >= 1 && day as i32 <= next - first).then(|| first + day as i32 - 1)
}

/// The day number ([`patron_analytics::day_number`]: days since 1970-01-01) of a valid
/// proleptic Gregorian date from year 1 on, by integer arithmetic (H. Hinnant's
/// `days_from_civil`); `None` for an invalid date. Going through chrono's `NaiveDate` was a
/// tenth of the reading time.
fn civil_day(year: i32, month: u32, day: u32) -> Option<i32> {
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if year < 1 || day == 0 || day > days_in_month {
        return None;
    }
    Some(days_from_civil(year, month, day))
}

/// H. Hinnant's `days_from_civil` for a valid date (no checks; `const` for [`MONTH_STARTS`]).
const fn days_from_civil(year: i32, month: u32, day: u32) -> i32 {
    // Years start in March, so the leap day is the last day of the year.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year as i32;
    era * 146_097 + day_of_era - 719_468
}

/// The business day of a date or time, with a fast path for `YYYY-MM-DD[ HH:MM[:SS[.f]]]` (a
/// local time's calendar day is its date) and the full parsers for everything else.
fn fast_day(v: &str, tz: chrono_tz::Tz, cache: &mut DayCache) -> std::result::Result<i32, String> {
    let b = v.as_bytes();
    let date_like =
        b.len() >= 10 && b[4] == b'-' && b[7] == b'-' && b[..10].iter().enumerate().all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if date_like && (b.len() == 10 || ((b[10] == b' ' || b[10] == b'T') && is_clock(&b[11..]))) {
        let mut key = [0u8; 10];
        key.copy_from_slice(&b[..10]);
        if let Some(d) = cache.get(&key) {
            return Ok(*d);
        }
        // The bytes checked above are ASCII, so slicing at 10 is on a char boundary.
        let d = parse_day(&v[..10], tz)?;
        cache.insert(key, d);
        return Ok(d);
    }
    parse_day(v, tz)
}

/// `HH:MM`, `HH:MM:SS` or `HH:MM:SS.fraction`, in range, and nothing else (no offset).
fn is_clock(b: &[u8]) -> bool {
    let two = |i: usize, max: u8| {
        b.get(i..i + 2).is_some_and(|d| d[0].is_ascii_digit() && d[1].is_ascii_digit() && (d[0] - b'0') * 10 + (d[1] - b'0') <= max)
    };
    if !(two(0, 23) && b.get(2) == Some(&b':') && two(3, 59)) {
        return false;
    }
    match b.len() {
        5 => true,
        8 => b[5] == b':' && two(6, 59),
        n if n > 9 => b[5] == b':' && two(6, 59) && b[8] == b'.' && b[9..].iter().all(u8::is_ascii_digit),
        _ => false,
    }
}

/// Day number of a date (`1997-01-01`, `1997/01/01`, `19970101`) or of a time's calendar day in `tz`.
fn parse_day(v: &str, tz: chrono_tz::Tz) -> std::result::Result<i32, String> {
    if let Ok(d) = values::parse_date(v) {
        return Ok(patron_analytics::day_number(d));
    }
    values::parse_time(v, tz)
        .map(|t| crate::analytics::business_day(t, tz))
        .map_err(|_| format!("not a date or time (expected e.g. 2025-03-04 or 2025-03-04 18:23:00): {v:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str, mappings: &[(&str, &str)]) -> Result<OrderFile> {
        let opts = OrderFileOptions {
            encoding: None,
            mappings: mappings.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect(),
            tz: chrono_tz::Asia::Shanghai,
        };
        read_order_file(Box::new(std::io::Cursor::new(text.as_bytes().to_vec())), "o.csv", &opts, &|_| {})
    }

    #[test]
    fn reads_aliases_ignores_extra_columns_and_skips_cancelled() {
        let f = read(
            "\u{feff}order_id,会员编号,下单时间,金额,状态,store\nA,c1,2026-01-01T17:00:00Z,12.50,,S1\nB,c2,2026-01-02,3,cancelled,S1\nC,c1,20260105,1.5,completed,S2\n",
            &[],
        )
        .unwrap();
        assert_eq!(f.rows_read, 3);
        assert_eq!(f.rows_skipped, 1);
        assert_eq!(f.customer_ids, vec!["c1"]);
        let d = |y, m, d| patron_analytics::day_number(chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap());
        // 17:00Z is already 01:00 on the 2nd in Shanghai.
        assert_eq!(f.orders.day, vec![d(2026, 1, 2), d(2026, 1, 5)]);
        assert_eq!(f.orders.amount_cents, vec![1250, 150]);
        assert!(f.orders.category.is_empty() && f.orders.full_price.is_empty());
    }

    #[test]
    fn bad_rows_are_reported_with_row_and_column() {
        let f = read(
            "cust,when,value\nc1,2026-13-01,1\nc2,2026-01-01,-3\n,2026-01-01,2\nc3,2026-01-01,x\n",
            &[("cust", "customer_id"), ("when", "date"), ("value", "amount")],
        )
        .unwrap();
        assert_eq!(f.rejected, 4);
        let got: Vec<(u64, &str)> = f.rejections.iter().map(|r| (r.row, r.column.as_str())).collect();
        assert_eq!(got, vec![(2, "when"), (3, "value"), (4, "cust"), (5, "value")]);
        assert!(f.orders.is_empty());
    }

    #[test]
    fn quoted_newlines_and_many_blocks_keep_rows_and_order() {
        // Enough rows for several pieces per block, a quoted field with a newline and a comma,
        // and a bad row far down: row numbers must still be the spreadsheet's.
        let mut text = String::from("customer_id,date,amount,note\n");
        for i in 0..50_000 {
            if i == 123 {
                text.push_str("c123,2026-01-01 08:00,1.00,\"line one\nline, two\"\n");
            } else if i == 40_000 {
                text.push_str("c40000,2026-01-01,oops,x\n");
            } else {
                text.push_str(&format!("c{},2026-01-{:02} 10:{:02}:00,{}.50,n\n", i % 977, i % 28 + 1, i % 60, i % 90));
            }
        }
        let f = read(&text, &[]).unwrap();
        // The same through many small blocks (records cut across block ends).
        let opts = OrderFileOptions { encoding: None, mappings: Vec::new(), tz: chrono_tz::Asia::Shanghai };
        let small = read_csv(Box::new(std::io::Cursor::new(text.clone().into_bytes())), &opts, &|_| {}, 4096).unwrap();
        assert_eq!(
            (small.rows_read, small.rejected, &small.orders, &small.customer_ids),
            (f.rows_read, f.rejected, &f.orders, &f.customer_ids)
        );
        assert_eq!(small.rejections[0].row, 40_002);
        assert_eq!(f.rows_read, 50_000);
        assert_eq!(f.rejected, 1);
        assert_eq!((f.rejections[0].row, f.rejections[0].column.as_str()), (40_002, "amount"));
        assert_eq!(f.orders.len(), 49_999);
        assert_eq!(f.customer_ids[..3], ["c0".to_string(), "c1".into(), "c2".into()]);
        assert_eq!(f.orders.amount_cents[123], 100);
        // A file without quotes takes the memchr path; small blocks must read it the same.
        let unquoted = text.replace("\"line one\nline, two\"", "plain");
        let whole = read(&unquoted, &[]).unwrap();
        let blocks = read_csv(Box::new(std::io::Cursor::new(unquoted.into_bytes())), &opts, &|_| {}, 1000).unwrap();
        assert_eq!(
            (blocks.rows_read, blocks.rejected, &blocks.orders, &blocks.customer_ids),
            (whole.rows_read, whole.rejected, &whole.orders, &whole.customer_ids)
        );
        assert_eq!((whole.rows_read, whole.orders.len(), whole.rejections[0].row), (50_000, 49_999, 40_002));
    }

    #[test]
    fn bytes_in_memory_read_like_the_stream() {
        // The mapped-file path cuts its blocks out of the bytes; with quotes, small blocks, a BOM
        // or no final newline it must give what the streaming reader gives.
        let opts = OrderFileOptions { encoding: None, mappings: Vec::new(), tz: chrono_tz::Asia::Shanghai };
        let mut text = String::from("customer_id,date,amount,note\n");
        for i in 0..20_000 {
            match i {
                77 => text.push_str("c77,2026-01-01,1.00,\"a\nlong, quoted\nnote\"\n"),
                15_000 => text.push_str("c15000,2026-02-30,2.00,x\n"),
                _ => text.push_str(&format!("c{},2026-01-{:02},{}.25,n\n", i % 501, i % 28 + 1, i % 70)),
            }
        }
        for (variant, bytes) in [
            ("quoted", text.clone().into_bytes()),
            ("unquoted", text.replace("\"a\nlong, quoted\nnote\"", "plain").into_bytes()),
            ("bom, no final newline", [&b"\xEF\xBB\xBF"[..], text.trim_end().as_bytes()].concat()),
        ] {
            let stream = read_order_file(Box::new(std::io::Cursor::new(bytes.clone())), "o.csv", &opts, &|_| {}).unwrap();
            for block in [300, 4096, BLOCK] {
                let start = if bytes.starts_with(b"\xEF\xBB\xBF") { 3 } else { 0 };
                let mem = read_csv_bytes(&bytes[start..], &opts, &|_| {}, block, &|_| {}).unwrap();
                let got = (mem.rows_read, mem.rejected, &mem.orders, &mem.customer_ids, mem.rejections.first().map(|r| r.row));
                let want =
                    (stream.rows_read, stream.rejected, &stream.orders, &stream.customer_ids, stream.rejections.first().map(|r| r.row));
                assert_eq!(got, want, "{variant}, blocks of {block}");
            }
            // Every byte after the header is reported parsed once, in order, to the end.
            let ranges = std::sync::Mutex::new(Vec::new());
            let mem = read_order_bytes(&bytes, "o.csv", &opts, &|_| {}, &|r| ranges.lock().unwrap().push(r)).unwrap().unwrap();
            let ranges = ranges.into_inner().unwrap();
            assert!(ranges.first().is_some_and(|r| r.start > 0), "{variant}: starts after the header");
            assert!(ranges.windows(2).all(|w| w[0].end == w[1].start), "{variant}: contiguous");
            assert_eq!(ranges.last().map(|r| r.end), Some(bytes.len()), "{variant}");
            assert_eq!((mem.rows_read, mem.rejected, mem.orders.len()), (20_000, 1, 19_999), "{variant}");
            assert_eq!(mem.rejections[0].row, 15_002, "{variant}");
        }
        // What the in-memory path does not take, it hands back to the streaming reader.
        let gbk = encoding_rs::GB18030.encode("客户,日期,金额\n张三,2026-01-01,1.00\n").0.into_owned();
        assert!(read_order_bytes(&gbk, "o.csv", &opts, &|_| {}, &|_| {}).unwrap().is_none());
        assert!(read_order_bytes(text.as_bytes(), "o.jsonl", &opts, &|_| {}, &|_| {}).unwrap().is_none());
        // A header-only file and an empty one are read, or refused, as the stream does.
        let header_only = read_order_bytes(b"customer_id,date,amount\n", "o.csv", &opts, &|_| {}, &|_| {}).unwrap().unwrap();
        assert_eq!((header_only.rows_read, header_only.orders.len()), (0, 0));
        assert!(read_order_bytes(b"", "o.csv", &opts, &|_| {}, &|_| {}).is_err());
    }

    #[test]
    fn customers_are_numbered_by_first_appearance_across_pieces() {
        // Interleaved customers, so every piece sees customers other pieces saw first.
        let mut text = String::from("customer_id,date,amount,category\n");
        let mut expect: Vec<String> = Vec::new();
        for i in 0..30_000u32 {
            let c = format!("k{}", (i.wrapping_mul(7919)) % 3_001);
            if !expect.contains(&c) {
                expect.push(c.clone());
            }
            text.push_str(&format!("{c},2026-02-01,1,cat{}\n", i % 5));
        }
        let opts = OrderFileOptions { encoding: None, mappings: Vec::new(), tz: chrono_tz::Asia::Shanghai };
        let f = read_csv(Box::new(std::io::Cursor::new(text.into_bytes())), &opts, &|_| {}, 2048).unwrap();
        assert_eq!(f.customer_ids, expect);
        for (o, &c) in f.orders.customer.iter().enumerate() {
            assert_eq!(f.customer_ids[c as usize], format!("k{}", ((o as u32).wrapping_mul(7919)) % 3_001));
        }
        assert_eq!(f.orders.category[..6], [0, 1, 2, 3, 4, 0]);
    }

    #[test]
    fn day_fast_path_agrees_with_the_full_parser() {
        let tz = chrono_tz::Asia::Shanghai;
        let mut cache = DayCache::default();
        for v in [
            "2026-03-04",
            "2026-03-04 23:59",
            "2026-03-04 23:59:59",
            "2026-03-04T00:00:00.123",
            "2026-03-04T20:00:00Z",
            "2026-03-04 10:00:00+02:00",
            "2026/03/04",
            "20260304",
        ] {
            assert_eq!(fast_day(v, tz, &mut cache), parse_day(v, tz), "{v}");
        }
        for v in ["2026-03-04 24:00", "2026-13-04", "2026-03-04 10:00 garbage", "２０２６-03-04"] {
            assert!(fast_day(v, tz, &mut cache).is_err(), "{v}");
        }
    }

    #[test]
    fn plain_line_days_agree_with_chrono() {
        // Every day of four centuries (leap rules included) and a few far years.
        let mut date = chrono::NaiveDate::from_ymd_opt(1899, 12, 1).unwrap();
        let end = chrono::NaiveDate::from_ymd_opt(2301, 3, 1).unwrap();
        while date < end {
            use chrono::Datelike;
            let expect = Some(patron_analytics::day_number(date));
            assert_eq!(civil_day(date.year(), date.month(), date.day()), expect, "{date}");
            assert_eq!(month_day(date.year(), date.month(), date.day()), expect, "{date} (table)");
            date = date.succ_opt().unwrap();
        }
        for (y, m, d) in [(1, 1, 1), (400, 2, 29), (9999, 12, 31), (1969, 12, 31)] {
            let date = chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap();
            assert_eq!(civil_day(y, m, d), Some(patron_analytics::day_number(date)));
        }
        for (y, m, d) in [
            (2026, 2, 29),
            (1900, 2, 29),
            (2026, 4, 31),
            (2026, 0, 1),
            (2026, 13, 1),
            (2026, 1, 0),
            (0, 1, 1),
            (2199, 12, 32),
            (1900, 1, 0),
        ] {
            assert_eq!(civil_day(y, m, d), None, "{y}-{m}-{d}");
            assert_eq!(month_day(y, m, d), None, "{y}-{m}-{d} (table)");
        }
        // A line the shortcut reads gives the same order as the general path.
        let tz = chrono_tz::Asia::Shanghai;
        let mut cache = DayCache::default();
        let mut fast = FastLines::new(&[Some(0), Some(1), Some(2), None, None, None, None], 3).unwrap();
        for v in ["2024-02-29", "2026-03-04 23:59:59", "2000-01-01T00:00"] {
            assert_eq!(fast.day(v.as_bytes()), fast_day(v, tz, &mut cache).ok(), "{v}");
        }
        for v in ["2026-02-29", "2026-03-04Z", "2026/03/04", " 2026-03-04", "2026-03-04 24:00", "2026-03-00", "2026-04-31", "9999-12-32"] {
            assert_eq!(fast.day(v.as_bytes()), None, "{v}");
        }
        // Every day of a few years, in and out of order (the previous date is cached).
        let mut date = chrono::NaiveDate::from_ymd_opt(2023, 11, 1).unwrap();
        while date < chrono::NaiveDate::from_ymd_opt(2025, 3, 31).unwrap() {
            for d in [date, date - chrono::Days::new(40), date] {
                let v = d.format("%Y-%m-%d").to_string();
                assert_eq!(fast.day(v.as_bytes()), Some(patron_analytics::day_number(d)), "{v}");
            }
            date = date.succ_opt().unwrap();
        }
    }

    #[test]
    fn a_read_error_mid_file_is_reported_not_hung_on() {
        // The reading thread fails after several blocks were parsed: the error comes back
        // from the pipeline (nothing waits forever, nothing panics).
        struct FailAfter(std::io::Cursor<Vec<u8>>, u64);
        impl Read for FailAfter {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                if self.0.position() >= self.1 {
                    return Err(std::io::Error::other("disk on fire"));
                }
                self.0.read(buf)
            }
        }
        let mut text = String::from("customer_id,date,amount\n");
        for i in 0..20_000 {
            text.push_str(&format!("c{},2026-01-{:02},{}.25\n", i / 7, i % 28 + 1, i % 50));
        }
        let opts = OrderFileOptions { encoding: None, mappings: Vec::new(), tz: chrono_tz::Asia::Shanghai };
        let reader = FailAfter(std::io::Cursor::new(text.into_bytes()), 200_000);
        let err = read_csv(Box::new(reader), &opts, &|_| {}, 8192).unwrap_err();
        assert!(err.to_string().contains("disk on fire"), "{err}");
    }

    #[test]
    fn missing_columns_are_a_file_error() {
        let err = read("customer_id,amount\nc1,1\n", &[]).unwrap_err();
        assert!(err.to_string().contains("missing required column \"date\""), "{err}");
    }
}
