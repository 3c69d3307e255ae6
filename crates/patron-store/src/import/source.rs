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

/// Reads the start of the stream, decides the encoding and returns a UTF-8 reader of the whole.
/// The encoding of a file from its first [`SNIFF`] bytes (UTF-8 when they are, or start with a
/// BOM; GB18030 otherwise) unless `forced`, and whether it starts with a UTF-8 BOM.
pub(crate) fn sniff(head: &[u8], forced: Option<Encoding>) -> (Encoding, bool) {
    let has_bom = head.starts_with(&[0xEF, 0xBB, 0xBF]);
    let encoding = match forced {
        Some(e) => e,
        None if has_bom => Encoding::Utf8,
        None => match std::str::from_utf8(head) {
            Ok(_) => Encoding::Utf8,
            // A multi-byte character cut by the sniff window is still UTF-8.
            Err(e) if e.error_len().is_none() => Encoding::Utf8,
            Err(_) => Encoding::Gb18030,
        },
    };
    (encoding, has_bom)
}

pub(crate) fn decode(mut input: Box<dyn Read + Send>, forced: Option<Encoding>) -> Result<(Box<dyn Read + Send>, Encoding)> {
    let mut head = Vec::with_capacity(SNIFF);
    (&mut input).take(SNIFF as u64).read_to_end(&mut head)?;
    let (encoding, has_bom) = sniff(&head, forced);
    let rest = Cursor::new(head).chain(input);
    let reader: Box<dyn Read + Send> = match encoding {
        Encoding::Utf8 => {
            let mut r = BufReader::with_capacity(1 << 16, rest);
            if has_bom {
                r.consume(3);
            }
            Box::new(r)
        }
        Encoding::Gb18030 => Box::new(
            encoding_rs_io::DecodeReaderBytesBuilder::new()
                .encoding(Some(encoding_rs::GB18030))
                .bom_override(true)
                .build(rest),
        ),
    };
    Ok((reader, encoding))
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
        let mapped: HashMap<String, &str> = mappings.iter().map(|(src, dst)| (normalise_header(src), dst.as_str())).collect();
        for (_, dst) in mappings {
            if !spec.iter().any(|f| f.name == dst) {
                let names: Vec<&str> = spec.iter().map(|f| f.name).collect();
                return Err(StoreError::File(format!("--map target {dst:?} is not a field here (fields: {})", names.join(", "))));
            }
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
                return Err(StoreError::File(format!(
                    "missing required column {:?} (also accepted: {})",
                    f.name,
                    f.aliases.join(", ")
                )));
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
            let Some(v) = cell.map(|c| c.trim().to_owned()).filter(|c| !c.is_empty()) else { continue };
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

/// A stream of records, or row-level rejections for records that cannot be read at all.
pub(crate) enum Source {
    Csv { reader: csv::Reader<Box<dyn Read + Send>>, columns: Columns, record: csv::StringRecord },
    Jsonl { lines: std::io::Lines<BufReader<Box<dyn Read + Send>>>, line: u64, spec: &'static [FieldSpec], mappings: Vec<(String, String)>, allow_attributes: bool, columns: HashMap<Vec<String>, std::sync::Arc<Columns>>, names: Vec<String> },
}

impl Source {
    /// Opens a source: reads the header (CSV) so column errors surface before any row is loaded.
    pub fn open(
        input: Box<dyn Read + Send>,
        format: Format,
        spec: &'static [FieldSpec],
        mappings: &[(String, String)],
        allow_attributes: bool,
    ) -> Result<Source> {
        Source::open_with(input, format, spec, mappings, allow_attributes, false)
    }

    /// [`Source::open`] for a CSV whose unknown columns are ignored (JSON lines always use
    /// the strict mapping).
    pub fn open_with(
        input: Box<dyn Read + Send>,
        format: Format,
        spec: &'static [FieldSpec],
        mappings: &[(String, String)],
        allow_attributes: bool,
        ignore_unknown: bool,
    ) -> Result<Source> {
        match format {
            Format::Csv => {
                let mut reader = csv::ReaderBuilder::new().has_headers(true).flexible(false).from_reader(input);
                let headers = reader.headers().map_err(|e| StoreError::File(format!("cannot read the header row: {e}")))?;
                let headers: Vec<String> = headers.iter().map(str::to_owned).collect();
                if headers.iter().all(|h| h.trim().is_empty()) {
                    return Err(StoreError::File("the file is empty or has no header row".into()));
                }
                let columns = Columns::resolve_with(&headers, spec, mappings, allow_attributes, ignore_unknown)?;
                Ok(Source::Csv { reader, columns, record: csv::StringRecord::new() })
            }
            Format::Jsonl => Ok(Source::Jsonl {
                lines: BufReader::new(input).lines(),
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
            Source::Csv { reader, columns, record } => match reader.read_record(record) {
                Ok(false) => Ok(None),
                Ok(true) => {
                    let row = record.position().map(|p| p.record() + 1).unwrap_or(0);
                    Ok(Some(Ok(columns.record(row, record.iter().map(|c| Some(c.to_owned()))))))
                }
                Err(e) => {
                    let row = e.position().map(|p| p.record() + 1).unwrap_or(0);
                    let reason = match e.kind() {
                        csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
                            format!("expected {expected_len} fields, found {len} (an unquoted comma or a missing quote?)")
                        }
                        csv::ErrorKind::Utf8 { .. } => "not valid UTF-8 (is the file GB18030? try --encoding gb18030)".into(),
                        csv::ErrorKind::Io(_) => return Err(StoreError::File(format!("reading failed at row {row}: {e}"))),
                        _ => e.to_string(),
                    };
                    Ok(Some(Err(Rejection { row, column: String::new(), value: String::new(), reason })))
                }
            },
            Source::Jsonl { lines, line, spec, mappings, allow_attributes, columns, names } => loop {
                let Some(text) = lines.next() else { return Ok(None) };
                *line += 1;
                let text = text.map_err(|e| StoreError::File(format!("reading failed at line {line}: {e}")))?;
                let trimmed = text.trim().trim_start_matches('\u{feff}');
                if trimmed.is_empty() {
                    continue;
                }
                let obj = match serde_json::from_str::<serde_json::Value>(trimmed) {
                    Ok(serde_json::Value::Object(o)) => o,
                    Ok(_) => return Ok(Some(Err(Rejection::whole(*line, "a line must hold one JSON object")))),
                    Err(e) => return Ok(Some(Err(Rejection::whole(*line, &format!("not JSON: {e}"))))),
                };
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
                    serde_json::Value::Array(a) => Some(
                        a.iter().map(|x| x.as_str().map(str::to_owned).unwrap_or_else(|| x.to_string())).collect::<Vec<_>>().join(";"),
                    ),
                    other => Some(other.to_string()),
                });
                return Ok(Some(Ok(cols.record(*line, cells))));
            },
        }
    }
}
