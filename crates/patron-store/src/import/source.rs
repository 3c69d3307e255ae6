//! Reading an import file: encoding detection (UTF-8 with or without BOM, GB18030), CSV or JSON
//! lines, header resolution to canonical fields, and records with their spreadsheet row numbers.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Cursor, Read};

use super::fields::{normalise_header, FieldSpec};
use super::Rejection;
use crate::{Result, StoreError};

/// Text encodings the importer reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// UTF-8, with or without a byte-order mark.
    #[default]
    #[serde(rename = "utf-8", alias = "utf8")]
    Utf8,
    /// GB18030 (a superset of GBK and GB2312), common in exports from Chinese software.
    Gb18030,
}

impl std::str::FromStr for Encoding {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_lowercase().replace('_', "-").as_str() {
            "utf-8" | "utf8" => Ok(Encoding::Utf8),
            "gb18030" | "gbk" | "gb2312" => Ok(Encoding::Gb18030),
            _ => Err(StoreError::invalid("encoding", format!("encoding must be utf-8 or gb18030, not {s:?}"))),
        }
    }
}

impl std::fmt::Display for Encoding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Encoding::Utf8 => "utf-8",
            Encoding::Gb18030 => "gb18030",
        })
    }
}

/// File layouts the importer reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Comma-separated values with a header row.
    Csv,
    /// One JSON object per line.
    Jsonl,
}

impl Format {
    /// Guesses the layout from a file name (`.jsonl`, `.ndjson`, `.json` → JSON lines).
    pub fn from_file_name(name: &str) -> Format {
        let lower = name.to_lowercase();
        if lower.ends_with(".jsonl") || lower.ends_with(".ndjson") || lower.ends_with(".json") {
            Format::Jsonl
        } else {
            Format::Csv
        }
    }
}

pub(crate) const SNIFF: usize = 64 * 1024;

/// How much UTF-8 the start of a file holds: valid multi-byte characters and invalid sequences
/// (a character cut by the end of the window counts as neither).
fn utf8_evidence(head: &[u8]) -> (usize, usize) {
    let multibyte = |b: &[u8]| b.iter().filter(|&&x| x >= 0xC0).count();
    let (mut good, mut bad, mut rest) = (0, 0, head);
    loop {
        match std::str::from_utf8(rest) {
            Ok(_) => return (good + multibyte(rest), bad),
            Err(e) => {
                good += multibyte(&rest[..e.valid_up_to()]);
                match e.error_len() {
                    Some(n) => {
                        bad += 1;
                        rest = &rest[e.valid_up_to() + n..];
                    }
                    None => return (good, bad),
                }
            }
        }
    }
}

/// How much GB18030 the start of a file holds: non-ASCII characters and malformed sequences (a
/// character cut by the end of the window counts as neither).
fn gb18030_evidence(head: &[u8]) -> (usize, usize) {
    let mut decoder = encoding_rs::GB18030.new_decoder_without_bom_handling();
    let mut out = String::with_capacity(head.len() * 2 + 16);
    let (mut bad, mut rest) = (0, head);
    loop {
        let (result, read) = decoder.decode_to_string_without_replacement(rest, &mut out, false);
        rest = &rest[read..];
        match result {
            encoding_rs::DecoderResult::InputEmpty => break,
            encoding_rs::DecoderResult::Malformed(..) => bad += 1,
            encoding_rs::DecoderResult::OutputFull => out.reserve(rest.len() * 2 + 16),
        }
    }
    (out.chars().filter(|c| !c.is_ascii()).count(), bad)
}

/// The encoding of a file from its first [`SNIFF`] bytes unless `forced`, and whether it starts
/// with a UTF-8 BOM. UTF-8 when the bytes are UTF-8, start with a BOM, or are UTF-8 but for a
/// few stray bytes (at least four valid multi-byte characters per invalid sequence: the rows
/// holding the strays are then rejected, naming their column, and the rest load as written);
/// GB18030 when they are mostly not UTF-8 and GB18030 but for a few stray bytes, by the same
/// measure. One bad byte must not turn a UTF-8 file into GB18030 (every Chinese value would be
/// stored garbled), so anything between is a file-level error that asks for `--encoding`.
pub(crate) fn sniff(head: &[u8], forced: Option<Encoding>) -> Result<(Encoding, bool)> {
    let has_bom = head.starts_with(&[0xEF, 0xBB, 0xBF]);
    if let Some(e) = forced {
        return Ok((e, has_bom && e == Encoding::Utf8));
    }
    if has_bom {
        return Ok((Encoding::Utf8, true));
    }
    let (good, bad) = utf8_evidence(head);
    if bad == 0 || good >= 4 * bad {
        return Ok((Encoding::Utf8, false));
    }
    let (gb_good, gb_bad) = gb18030_evidence(head);
    if good < bad && (gb_bad == 0 || gb_good >= 4 * gb_bad) {
        Ok((Encoding::Gb18030, false))
    } else {
        Err(StoreError::File(format!(
            "cannot tell the file's encoding: its start has {bad} byte sequences that are not UTF-8 among {good} characters \
             that are, and {gb_bad} that are not GB18030 among {gb_good} that are; say which it is with --encoding utf-8 or \
             --encoding gb18030 (rows with bytes that are not in that encoding are then rejected)"
        )))
    }
}

/// Reads the start of the stream, decides the encoding and returns a UTF-8 reader of the whole
/// (GB18030 transcoded; bytes that are not GB18030 become U+FFFD). For the analysis reader,
/// which parses text; the importer reads bytes and decodes each field ([`open_bytes`]).
pub(crate) fn decode(input: Box<dyn Read + Send>, forced: Option<Encoding>) -> Result<(Box<dyn Read + Send>, Encoding)> {
    let (rest, encoding) = open_bytes(input, forced)?;
    let reader: Box<dyn Read + Send> = match encoding {
        Encoding::Utf8 => rest,
        Encoding::Gb18030 => {
            Box::new(encoding_rs_io::DecodeReaderBytesBuilder::new().encoding(Some(encoding_rs::GB18030)).bom_override(true).build(rest))
        }
    };
    Ok((reader, encoding))
}

/// Reads the start of the stream and decides the encoding ([`sniff`]); returns the whole stream
/// as bytes, a UTF-8 BOM left out.
pub(crate) fn open_bytes(mut input: Box<dyn Read + Send>, forced: Option<Encoding>) -> Result<(Box<dyn Read + Send>, Encoding)> {
    let mut head = Vec::with_capacity(SNIFF);
    (&mut input).take(SNIFF as u64).read_to_end(&mut head)?;
    let (encoding, has_bom) = sniff(&head, forced)?;
    let mut r = BufReader::with_capacity(1 << 16, Cursor::new(head).chain(input));
    if has_bom {
        r.consume(3);
    }
    Ok((Box::new(r), encoding))
}

impl Encoding {
    /// The text of `bytes` in this encoding, bytes that are not in it as U+FFFD (for messages).
    pub(crate) fn decode_lossy(self, bytes: &[u8]) -> String {
        match self {
            Encoding::Utf8 => String::from_utf8_lossy(bytes).into_owned(),
            Encoding::Gb18030 => encoding_rs::GB18030.decode_without_bom_handling(bytes).0.into_owned(),
        }
    }

    /// The text of `bytes` in this encoding; `Err` with a reason when they are not, or when they
    /// hold NUL (which PostgreSQL's text cannot store, so no engine takes it).
    pub(crate) fn decode_field<'a>(self, bytes: &'a [u8]) -> std::result::Result<std::borrow::Cow<'a, str>, String> {
        if bytes.contains(&0) {
            return Err("contains a NUL character (U+0000)".into());
        }
        match self {
            Encoding::Utf8 => std::str::from_utf8(bytes).map(std::borrow::Cow::Borrowed).map_err(|e| {
                let at = e.valid_up_to();
                format!(
                    "not valid UTF-8 (if the file is in another encoding, give --encoding): byte 0x{:02X} at position {}",
                    bytes.get(at).copied().unwrap_or_default(),
                    at + 1
                )
            }),
            Encoding::Gb18030 => encoding_rs::GB18030
                .decode_without_bom_handling_and_without_replacement(bytes)
                .ok_or_else(|| "not valid GB18030 (if the file is in another encoding, give --encoding)".to_owned()),
        }
    }
}

/// A record with values in canonical field order.
pub(crate) struct Record {
    /// Spreadsheet row (header = 1) or JSON line number.
    pub row: u64,
    /// One value per canonical field, None when empty or absent.
    pub values: Vec<Option<String>>,
    /// Custom attribute columns (`attr.NAME`), customers only.
    pub attributes: Vec<(String, String)>,
}

/// Where each source column goes.
#[derive(Clone)]
enum Target {
    Field(usize),
    Attribute(String),
    /// A column this reader does not use (analysis files carry more than they need).
    Ignore,
}

/// How source headers map to canonical fields, and the headers as written (for messages).
pub(crate) struct Columns {
    targets: Vec<Target>,
    /// Source header per canonical field (for rejection reports).
    pub source_names: Vec<String>,
    fields: usize,
}

impl Columns {
    /// Resolves headers for `spec`, honouring `--map SOURCE=FIELD`. Unknown or duplicate columns
    /// and missing required fields are file-level errors.
    pub fn resolve(headers: &[String], spec: &[FieldSpec], mappings: &[(String, String)], allow_attributes: bool) -> Result<Columns> {
        Columns::resolve_with(headers, spec, mappings, allow_attributes, false)
    }

    /// [`Columns::resolve`], optionally ignoring unknown columns instead of refusing them.
    pub fn resolve_with(
        headers: &[String],
        spec: &[FieldSpec],
        mappings: &[(String, String)],
        allow_attributes: bool,
        ignore_unknown: bool,
    ) -> Result<Columns> {
        // A `--map` target is a field's name or any alias its header may have (`external_id`,
        // as the API calls it, for `customer_id`; 手机 for `mobile`), matched as headers are.
        let mut mapped: HashMap<String, &str> = HashMap::with_capacity(mappings.len());
        for (src, dst) in mappings {
            let norm = normalise_header(dst);
            let Some(field) = spec.iter().find(|f| f.name == dst || f.matches(&norm)) else {
                let names: Vec<&str> = spec.iter().map(|f| f.name).collect();
                return Err(StoreError::File(format!("--map target {dst:?} is not a field here (fields: {})", names.join(", "))));
            };
            mapped.insert(normalise_header(src), field.name);
        }
        let mut targets = Vec::with_capacity(headers.len());
        let mut source_names = vec![String::new(); spec.len()];
        for h in headers {
            let h = h.trim().trim_start_matches('\u{feff}');
            let norm = normalise_header(h);
            let target = if let Some(dst) = mapped.get(&norm) {
                spec.iter().position(|f| f.name == *dst).map(Target::Field)
            } else if let Some(i) = spec.iter().position(|f| f.matches(&norm)) {
                Some(Target::Field(i))
            } else {
                allow_attributes.then(|| attribute_name(h)).flatten().map(Target::Attribute)
            };
            match target {
                Some(Target::Field(i)) => {
                    if !source_names[i].is_empty() {
                        return Err(StoreError::File(format!(
                            "columns {:?} and {h:?} both mean field {:?}; keep one or --map one elsewhere",
                            source_names[i], spec[i].name
                        )));
                    }
                    source_names[i] = h.to_owned();
                    targets.push(Target::Field(i));
                }
                Some(t) => targets.push(t),
                None if ignore_unknown => targets.push(Target::Ignore),
                None => {
                    let names: Vec<&str> = spec.iter().map(|f| f.name).collect();
                    return Err(StoreError::File(format!(
                        "unknown column {h:?} (known fields: {}; map it with --map {h:?}=FIELD{})",
                        names.join(", "),
                        if allow_attributes { ", or name it attr.NAME for a custom attribute" } else { "" }
                    )));
                }
            }
        }
        for (i, f) in spec.iter().enumerate() {
            if f.required && source_names[i].is_empty() {
                return Err(StoreError::File(format!("missing required column {:?} (also accepted: {})", f.name, f.aliases.join(", "))));
            }
            if source_names[i].is_empty() {
                source_names[i] = f.name.to_owned();
            }
        }
        Ok(Columns { targets, source_names, fields: spec.len() })
    }

    /// For each canonical field, the index of the source column holding it (if any).
    pub fn positions(&self) -> Vec<Option<usize>> {
        let mut out = vec![None; self.fields];
        for (col, t) in self.targets.iter().enumerate() {
            if let Target::Field(i) = t {
                out[*i] = Some(col);
            }
        }
        out
    }

    fn record(&self, row: u64, cells: impl Iterator<Item = Option<String>>) -> Record {
        let mut values = vec![None; self.fields];
        let mut attributes = Vec::new();
        for (target, cell) in self.targets.iter().zip(cells) {
            // An apostrophe patron's export put before a would-be formula comes off again.
            let Some(v) = cell.map(|c| crate::export::from_spreadsheet_safe(c.trim()).to_owned()).filter(|c| !c.is_empty()) else {
                continue;
            };
            match target {
                Target::Field(i) => values[*i] = Some(v),
                Target::Attribute(name) => attributes.push((name.clone(), v)),
                Target::Ignore => {}
            }
        }
        Record { row, values, attributes }
    }
}

/// `attr.NAME` (any case) → `NAME`; byte-safe for headers in any script.
fn attribute_name(header: &str) -> Option<String> {
    let prefix = header.get(..5)?;
    let name = header.get(5..)?.trim();
    (prefix.eq_ignore_ascii_case("attr.") && !name.is_empty()).then(|| name.to_owned())
}

/// The rejection of a JSON line holding bytes that are not in the file's encoding, naming the key
/// whose value holds the first of them when the rest of the line is readable JSON.
fn undecodable_line(line: u64, bytes: &[u8], encoding: Encoding, reason: String) -> Rejection {
    let lossy = encoding.decode_lossy(bytes);
    if let Ok(serde_json::Value::Object(obj)) = serde_json::from_str::<serde_json::Value>(lossy.trim()) {
        if let Some((key, value)) = obj.iter().find(|(_, v)| v.to_string().contains('\u{fffd}')) {
            let value = value.as_str().map(str::to_owned).unwrap_or_else(|| value.to_string());
            return Rejection { row: line, column: key.clone(), value, reason };
        }
    }
    Rejection { row: line, column: String::new(), value: String::new(), reason }
}

/// Where a CSV's reader stands as to quotes, followed byte by byte as the CSV reader pulls them
/// (the `csv` crate reads a quote that is never closed to the end of the file as one value, without
/// an error: issue 14 §2.6). Mirrors `csv_core`'s states: a quote opens a quoted field only at the
/// start of a field, `""` inside one is a quote, and a quote closes it otherwise.
#[derive(Debug, Default)]
pub(crate) struct QuoteState {
    /// The reader has returned the end of the input.
    eof: bool,
    in_quotes: bool,
    /// Just after a quote inside a quoted field (a second one makes an escaped quote).
    quote_seen: bool,
    /// At the start of a field.
    field_start: bool,
    /// The current record has any byte (blank lines are no records to the `csv` crate).
    record_has_bytes: bool,
    /// Records finished so far (the header is record 0) and lines started so far.
    records: u64,
    lines: u64,
    /// The spreadsheet row and file line where the open quote opened.
    opened_at: (u64, u64),
    /// Fields of the current record so far, and bytes of the current field.
    fields: usize,
    field_bytes: usize,
    /// A size cap the input broke (issue 14 §2.9); the reader then fails at once, so a file of
    /// a million columns costs no more than its first 257.
    over: Option<Over>,
}

/// Which size cap a CSV broke, and where.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Over {
    Columns { row: u64, line: u64 },
    Field { row: u64, line: u64, column: usize },
}

impl QuoteState {
    fn new() -> QuoteState {
        QuoteState { field_start: true, lines: 1, fields: 1, ..Default::default() }
    }

    fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if self.over.is_some() {
                return;
            }
            // A field's bytes as written (quotes included), its separator not.
            self.field_bytes += 1;
            if self.field_bytes > crate::values::MAX_FIELD_BYTES
                && ((self.in_quotes && !self.quote_seen) || !matches!(b, b',' | b'\n' | b'\r'))
            {
                self.over = Some(Over::Field { row: self.records + 1, line: self.lines, column: self.fields });
                return;
            }
            if b == b'\n' {
                self.lines += 1;
            }
            if self.in_quotes {
                if self.quote_seen {
                    self.quote_seen = false;
                    if b == b'"' {
                        continue;
                    }
                    self.in_quotes = false;
                    // Fall through: the byte after a closing quote.
                } else {
                    if b == b'"' {
                        self.quote_seen = true;
                    }
                    continue;
                }
            }
            match b {
                b',' => {
                    self.field_start = true;
                    self.field_bytes = 0;
                    self.fields += 1;
                    if self.fields > crate::values::MAX_IMPORT_COLUMNS {
                        self.over = Some(Over::Columns { row: self.records + 1, line: self.lines });
                        return;
                    }
                }
                b'\n' | b'\r' => {
                    if self.record_has_bytes {
                        self.records += 1;
                    }
                    self.record_has_bytes = false;
                    self.field_start = true;
                    self.field_bytes = 0;
                    self.fields = 1;
                }
                b'"' if self.field_start => {
                    self.in_quotes = true;
                    self.record_has_bytes = true;
                    self.field_start = false;
                    self.opened_at = (self.records + 1, self.lines);
                }
                _ => {
                    self.record_has_bytes = true;
                    self.field_start = false;
                }
            }
        }
    }

    /// Whether the input ended inside a quoted field (a closing quote as its last byte closed it).
    fn unterminated(&self) -> bool {
        self.eof && self.in_quotes && !self.quote_seen
    }
}

impl Over {
    /// The file-level error, naming the row, line and column (by its header when known).
    fn error(self, headers: &[String]) -> StoreError {
        match self {
            Over::Columns { row, line } => StoreError::File(format!(
                "row {row} (line {line}): more than {} columns; an import file has at most {} (map or drop the others)",
                crate::values::MAX_IMPORT_COLUMNS,
                crate::values::MAX_IMPORT_COLUMNS
            )),
            Over::Field { row, line, column } => {
                let name = headers.get(column - 1).map(|h| format!("column {h:?}")).unwrap_or_else(|| format!("column {column}"));
                StoreError::File(format!(
                    "row {row} (line {line}), {name}: a value longer than {} bytes (64 KiB), the most one field may hold \
                     (a quote that is never closed makes one value of the rest of the file)",
                    crate::values::MAX_FIELD_BYTES
                ))
            }
        }
    }
}

/// A reader that shows every byte it passes to a [`QuoteState`].
struct QuoteWatch {
    inner: Box<dyn Read + Send>,
    state: std::sync::Arc<std::sync::Mutex<QuoteState>>,
}

impl Read for QuoteWatch {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Ok(mut st) = self.state.lock() {
            if n == 0 && !buf.is_empty() {
                st.eof = true;
            }
            st.feed(&buf[..n]);
            if st.over.is_some() {
                return Err(std::io::Error::other("the file breaks a size cap"));
            }
        }
        Ok(n)
    }
}

/// A stream of records, or row-level rejections for records that cannot be read at all.
/// Both read bytes and decode each field (CSV) or line (JSON lines) in the file's encoding, so a
/// byte that is not in it rejects its row, naming the column, instead of becoming U+FFFD.
pub(crate) enum Source {
    Csv {
        reader: csv::Reader<Box<dyn Read + Send>>,
        columns: Columns,
        headers: Vec<String>,
        record: csv::ByteRecord,
        encoding: Encoding,
        quotes: std::sync::Arc<std::sync::Mutex<QuoteState>>,
    },
    Jsonl {
        lines: BufReader<Box<dyn Read + Send>>,
        buf: Vec<u8>,
        encoding: Encoding,
        line: u64,
        spec: &'static [FieldSpec],
        mappings: Vec<(String, String)>,
        allow_attributes: bool,
        columns: HashMap<Vec<String>, std::sync::Arc<Columns>>,
        names: Vec<String>,
    },
}

impl Source {
    /// Opens a source of bytes in `encoding` (see [`open_bytes`]): reads the header (CSV) so
    /// column errors surface before any row is loaded.
    pub fn open(
        input: Box<dyn Read + Send>,
        encoding: Encoding,
        format: Format,
        spec: &'static [FieldSpec],
        mappings: &[(String, String)],
        allow_attributes: bool,
    ) -> Result<Source> {
        Source::open_with(input, encoding, format, spec, mappings, allow_attributes, false)
    }

    /// [`Source::open`] for a CSV whose unknown columns are ignored (JSON lines always use
    /// the strict mapping).
    #[allow(clippy::too_many_arguments)]
    pub fn open_with(
        input: Box<dyn Read + Send>,
        encoding: Encoding,
        format: Format,
        spec: &'static [FieldSpec],
        mappings: &[(String, String)],
        allow_attributes: bool,
        ignore_unknown: bool,
    ) -> Result<Source> {
        match format {
            Format::Csv => {
                let quotes = std::sync::Arc::new(std::sync::Mutex::new(QuoteState::new()));
                let watched: Box<dyn Read + Send> = Box::new(QuoteWatch { inner: input, state: quotes.clone() });
                let mut reader = csv::ReaderBuilder::new().has_headers(true).flexible(false).from_reader(watched);
                let raw = match reader.byte_headers() {
                    Ok(raw) => raw,
                    Err(e) => {
                        return Err(match quotes.lock().ok().and_then(|q| q.over) {
                            Some(over) => over.error(&[]),
                            None => StoreError::File(format!("cannot read the header row: {e}")),
                        })
                    }
                };
                if quotes.lock().is_ok_and(|q| q.unterminated()) {
                    return Err(StoreError::File("row 1 (line 1): a quote opens a column name in the header and is never closed".into()));
                }
                let headers = raw
                    .iter()
                    .enumerate()
                    .map(|(i, h)| {
                        encoding
                            .decode_field(h)
                            .map(|h| h.into_owned())
                            .map_err(|m| StoreError::File(format!("header of column {}: {m}", i + 1)))
                    })
                    .collect::<Result<Vec<String>>>()?;
                if headers.iter().all(|h| h.trim().is_empty()) {
                    return Err(StoreError::File("the file is empty or has no header row".into()));
                }
                let columns = Columns::resolve_with(&headers, spec, mappings, allow_attributes, ignore_unknown)?;
                let headers = headers.iter().map(|h| h.trim().trim_start_matches('\u{feff}').to_owned()).collect();
                Ok(Source::Csv { reader, columns, headers, record: csv::ByteRecord::new(), encoding, quotes })
            }
            Format::Jsonl => Ok(Source::Jsonl {
                lines: BufReader::new(input),
                buf: Vec::new(),
                encoding,
                line: 0,
                spec,
                mappings: mappings.to_vec(),
                allow_attributes,
                columns: HashMap::new(),
                names: spec.iter().map(|f| f.name.to_owned()).collect(),
            }),
        }
    }

    /// [`Source::source_names`] without a copy: a caller keeping names for its messages compares
    /// its copy with these on every row and copies only when they changed (a JSON line with
    /// other keys), where copying them for every row cost a dozen allocations a row.
    pub fn source_names_ref(&self) -> &[String] {
        match self {
            Source::Csv { columns, .. } => &columns.source_names,
            Source::Jsonl { names, .. } => names,
        }
    }

    /// Source header names per canonical field, for messages.
    pub fn source_names(&self) -> Vec<String> {
        match self {
            Source::Csv { columns, .. } => columns.source_names.clone(),
            Source::Jsonl { names, .. } => names.clone(),
        }
    }

    /// The next record: `Ok(Some(Ok(rec)))`, a row that cannot be read `Ok(Some(Err(rej)))`, the
    /// end `Ok(None)`, or a file-level failure `Err`.
    pub fn next(&mut self) -> Result<Option<std::result::Result<Record, Rejection>>> {
        match self {
            Source::Csv { reader, columns, headers, record, encoding, quotes } => match reader.read_byte_record(record) {
                _ if quotes.lock().is_ok_and(|q| q.over.is_some()) => Err(quotes
                    .lock()
                    .ok()
                    .and_then(|q| q.over)
                    .map(|o| o.error(headers))
                    .unwrap_or_else(|| StoreError::File("size cap".into()))),
                // The whole input has been read: a quote still open swallowed the rest of the
                // file into one value, so no row after it can be trusted.
                _ if quotes.lock().is_ok_and(|q| q.unterminated()) => {
                    let (row, line) = quotes.lock().map(|q| q.opened_at).unwrap_or_default();
                    Err(StoreError::File(format!(
                        "row {row} (line {line}): a quote opens a value there and is never closed, so the rest of the file \
                         would be read as that one value; close the quote (a quote inside a quoted value is written \"\")"
                    )))
                }
                Ok(false) => Ok(None),
                Ok(true) => {
                    let row = record.position().map(|p| p.record() + 1).unwrap_or(0);
                    let mut cells = Vec::with_capacity(record.len());
                    for (i, bytes) in record.iter().enumerate() {
                        match encoding.decode_field(bytes) {
                            Ok(text) => cells.push(Some(text.into_owned())),
                            Err(reason) => {
                                let column = headers.get(i).cloned().unwrap_or_else(|| format!("column {}", i + 1));
                                let value = encoding.decode_lossy(bytes);
                                return Ok(Some(Err(Rejection { row, column, value, reason })));
                            }
                        }
                    }
                    Ok(Some(Ok(columns.record(row, cells.into_iter()))))
                }
                Err(e) => {
                    let row = e.position().map(|p| p.record() + 1).unwrap_or(0);
                    let reason = match e.kind() {
                        csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
                            format!("expected {expected_len} fields, found {len} (an unquoted comma or a missing quote?)")
                        }
                        csv::ErrorKind::Io(_) => return Err(StoreError::File(format!("reading failed at row {row}: {e}"))),
                        _ => e.to_string(),
                    };
                    Ok(Some(Err(Rejection { row, column: String::new(), value: String::new(), reason })))
                }
            },
            Source::Jsonl { lines, buf, encoding, line, spec, mappings, allow_attributes, columns, names } => loop {
                buf.clear();
                // A line holds at most what its keys and values may (256 × 64 KiB): read no more.
                let cap = (crate::values::MAX_IMPORT_COLUMNS * crate::values::MAX_FIELD_BYTES) as u64;
                let n = (&mut *lines)
                    .take(cap + 1)
                    .read_until(b'\n', buf)
                    .map_err(|e| StoreError::File(format!("reading failed at line {}: {e}", *line + 1)))?;
                if n == 0 {
                    return Ok(None);
                }
                *line += 1;
                if n as u64 > cap {
                    return Err(StoreError::File(format!("line {}: longer than {cap} bytes (16 MiB), more than a line may hold", *line)));
                }
                let text = match encoding.decode_field(buf) {
                    Ok(text) => text,
                    Err(reason) => return Ok(Some(Err(undecodable_line(*line, buf, *encoding, reason)))),
                };
                let trimmed = text.trim().trim_start_matches('\u{feff}');
                if trimmed.is_empty() {
                    continue;
                }
                let obj = match serde_json::from_str::<serde_json::Value>(trimmed) {
                    Ok(serde_json::Value::Object(o)) => o,
                    Ok(_) => return Ok(Some(Err(Rejection::whole(*line, "a line must hold one JSON object")))),
                    Err(e) => return Ok(Some(Err(Rejection::whole(*line, &format!("not JSON: {e}"))))),
                };
                if obj.len() > crate::values::MAX_IMPORT_COLUMNS {
                    return Err(StoreError::File(format!(
                        "line {}: more than {} keys; a line has at most {}",
                        *line,
                        crate::values::MAX_IMPORT_COLUMNS,
                        crate::values::MAX_IMPORT_COLUMNS
                    )));
                }
                if let Some((k, _)) =
                    obj.iter().find(|(_, v)| v.as_str().map_or_else(|| v.to_string().len(), str::len) > crate::values::MAX_FIELD_BYTES)
                {
                    return Err(StoreError::File(format!(
                        "line {}, key {k:?}: a value longer than {} bytes (64 KiB), the most one field may hold",
                        *line,
                        crate::values::MAX_FIELD_BYTES
                    )));
                }
                let keys: Vec<String> = obj.keys().cloned().collect();
                let cols = match columns.get(&keys) {
                    Some(c) => c.clone(),
                    None => {
                        let c = std::sync::Arc::new(Columns::resolve(&keys, spec, mappings, *allow_attributes)?);
                        *names = c.source_names.clone();
                        columns.insert(keys, c.clone());
                        c
                    }
                };
                let cells = obj.into_iter().map(|(_, v)| match v {
                    serde_json::Value::Null => None,
                    serde_json::Value::String(s) => Some(s),
                    serde_json::Value::Array(a) => {
                        Some(a.iter().map(|x| x.as_str().map(str::to_owned).unwrap_or_else(|| x.to_string())).collect::<Vec<_>>().join(";"))
                    }
                    other => Some(other.to_string()),
                });
                return Ok(Some(Ok(cols.record(*line, cells))));
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gb(text: &str) -> Vec<u8> {
        encoding_rs::GB18030.encode(text).0.into_owned()
    }

    #[test]
    fn one_stray_byte_does_not_make_a_utf8_file_gb18030() {
        let file = b"customer_id,name,city\nGB1,\xe7\x8e\x8b\xe5\xb0\x8f\xe6\x98\x8e,\xe4\xb8\x8a\xe6\xb5\xb7\nGB3,bad\xffbyte,\xe6\x9d\xad\xe5\xb7\x9e\n";
        assert_eq!(sniff(file, None).unwrap(), (Encoding::Utf8, false));
        assert_eq!(sniff("客户,城市\n王小明,上海\n".as_bytes(), None).unwrap(), (Encoding::Utf8, false));
        assert_eq!(sniff(b"\xef\xbb\xbfa,b\n", None).unwrap(), (Encoding::Utf8, true));
    }

    #[test]
    fn gb18030_is_told_from_its_bytes_even_short() {
        assert_eq!(sniff(&gb("客户编号,姓名,城市\nG1,欧阳锋,西安\n"), None).unwrap(), (Encoding::Gb18030, false));
        // 王小明 in GBK holds a pair (D0 A1) that happens to be valid UTF-8: still GB18030.
        assert_eq!(sniff(&gb("名字\n王小明,上海\n"), None).unwrap(), (Encoding::Gb18030, false));
        // A multi-byte character cut by the end of the window does not count against either.
        let mut cut = gb("客户,上海,杭州,北京,广州");
        cut.pop();
        assert_eq!(sniff(&cut, None).unwrap().0, Encoding::Gb18030);
        let utf8 = "客户,上海,杭州,北京,广州".as_bytes();
        assert_eq!(sniff(&utf8[..utf8.len() - 1], None).unwrap().0, Encoding::Utf8);
    }

    #[test]
    fn undecidable_start_asks_for_the_encoding_and_forcing_wins() {
        let mixed = b"name\n\xcd\xf5\xd0\xa1\n\xe7\x8e\x8b\xff\n";
        let err = sniff(mixed, None).unwrap_err().to_string();
        assert!(err.contains("cannot tell the file's encoding") && err.contains("--encoding"), "{err}");
        assert_eq!(sniff(mixed, Some(Encoding::Gb18030)).unwrap(), (Encoding::Gb18030, false));
        assert_eq!(sniff(b"\xef\xbb\xbfa", Some(Encoding::Utf8)).unwrap(), (Encoding::Utf8, true));
    }

    #[test]
    fn fields_decode_strictly_and_name_the_bad_byte() {
        assert_eq!(Encoding::Utf8.decode_field("上海".as_bytes()).unwrap(), "上海");
        let err = Encoding::Utf8.decode_field(b"bad\xffbyte").unwrap_err();
        assert!(err.starts_with("not valid UTF-8") && err.ends_with("byte 0xFF at position 4"), "{err}");
        assert_eq!(Encoding::Gb18030.decode_field(&gb("欧阳锋")).unwrap(), "欧阳锋");
        assert!(Encoding::Gb18030.decode_field(b"\xc5\xb7\xff").unwrap_err().starts_with("not valid GB18030"));
        assert!(Encoding::Utf8.decode_field(b"a\0b").unwrap_err().contains("NUL"));
    }

    fn read_all(bytes: &[u8], format: Format) -> Vec<std::result::Result<Vec<Option<String>>, Rejection>> {
        let spec = super::super::ImportKind::Customers.spec();
        let (input, encoding) = open_bytes(Box::new(Cursor::new(bytes.to_vec())), None).unwrap();
        let mut src = Source::open(input, encoding, format, spec, &[], true).unwrap();
        let mut out = Vec::new();
        while let Some(r) = src.next().unwrap() {
            out.push(r.map(|rec| rec.values));
        }
        out
    }

    #[test]
    fn an_unterminated_quote_fails_the_file_at_the_row_it_opened() {
        let spec = super::super::ImportKind::Customers.spec();
        let read = |bytes: &[u8]| -> std::result::Result<usize, String> {
            let (input, encoding) = open_bytes(Box::new(Cursor::new(bytes.to_vec())), None).map_err(|e| e.to_string())?;
            let mut src = Source::open(input, encoding, Format::Csv, spec, &[], true).map_err(|e| e.to_string())?;
            let mut n = 0;
            while src.next().map_err(|e| e.to_string())?.is_some() {
                n += 1;
            }
            Ok(n)
        };
        // Quoted newlines and escaped quotes before it count as one row, not as lines.
        let file = "customer_id,name,city\nA1,\"王\n小明\",上海\nA2,\"say \"\"hi\"\"\",x\nA3,\"李四,北京\nA4,赵五,杭州\n";
        let err = read(file.as_bytes()).unwrap_err();
        assert!(err.contains("row 4 (line 5)") && err.contains("never closed"), "{err}");
        // A quote inside an unquoted value is a character; a closed quote at the very end is fine.
        assert_eq!(read(b"customer_id,name\nA1,ab\"c\nA2,\"x\"").unwrap(), 2);
        assert_eq!(read(b"customer_id,name\r\nA1,\"x\"\"\"\r\n").unwrap(), 1);
        assert!(read(b"customer_id,\"name\nA1,x\n").unwrap_err().contains("row 1"));
    }

    #[test]
    fn a_bad_byte_rejects_its_row_naming_the_column() {
        let mut csv = "客户编号,姓名,城市\nA1,王小明,上海\nA2,".as_bytes().to_vec();
        csv.extend_from_slice(b"x\xffy,\xe6\x9d\xad\xe5\xb7\x9e\nA3,\xe6\x9d\x8e\xe5\x9b\x9b,\xe5\x8c\x97\xe4\xba\xac\n");
        let rows = read_all(&csv, Format::Csv);
        assert_eq!(rows.len(), 3);
        assert!(rows[0].as_ref().unwrap().contains(&Some("王小明".into())));
        let rej = rows[1].as_ref().unwrap_err();
        assert_eq!((rej.row, rej.column.as_str(), rej.value.as_str()), (3, "姓名", "x\u{fffd}y"));
        assert!(rows[2].as_ref().unwrap().contains(&Some("北京".into())));
        // GB18030 throughout but for one byte that is not GB18030.
        let mut gbfile = gb("客户编号,姓名,城市\nG1,欧阳锋,西安\nG2,郭靖,");
        gbfile.extend_from_slice(b"\xff\n");
        gbfile.extend_from_slice(&gb("G3,黄蓉,桃花岛\n"));
        let rows = read_all(&gbfile, Format::Csv);
        assert!(rows[0].as_ref().unwrap().contains(&Some("欧阳锋".into())));
        assert_eq!(rows[1].as_ref().unwrap_err().column, "城市");
        assert!(rows[2].as_ref().unwrap().contains(&Some("桃花岛".into())));
        // JSON lines: the key whose value holds the byte.
        let mut jsonl =
            "{\"customer_id\":\"J1\",\"name\":\"郭靖\",\"city\":\"襄阳\"}\n{\"customer_id\":\"J2\",\"name\":\"杨".as_bytes().to_vec();
        jsonl.extend_from_slice(b"\xff\"}\n{\"customer_id\":\"J3\",\"name\":\"x\"}\n");
        let rows = read_all(&jsonl, Format::Jsonl);
        assert_eq!(rows.len(), 3);
        let rej = rows[1].as_ref().unwrap_err();
        assert_eq!((rej.row, rej.column.as_str()), (2, "name"));
        assert!(rows[2].is_ok());
    }
}
