//! Reads an orders file for analysis without a database (`patron analyze --orders FILE`): the
//! columns `customer_id, date, amount` (other names by header alias or `--map`), optionally
//! `status`, `category`, `discount` and `promo`; other columns are ignored. Rows are checked with
//! the import's parsers and rejected with the import's row/column/reason reports.

use std::collections::HashMap;
use std::io::Read;

use patron_analytics::summary::NO_CATEGORY;
use patron_analytics::Orders;

use super::fields::FieldSpec;
use super::source::{self, Encoding, Format, Source};
use super::{Rejection, Rejections, Row};
use crate::{values, Result};

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

/// Reads an analysis orders file. `Err` for file-level problems (unreadable, missing columns);
/// row-level problems are in [`OrderFile::rejections`] — the caller decides whether to go on.
pub fn read_order_file(input: Box<dyn Read + Send>, file_name: &str, opts: &OrderFileOptions, progress: &dyn Fn(u64)) -> Result<OrderFile> {
    let (reader, encoding) = source::decode(input, opts.encoding)?;
    let format = Format::from_file_name(file_name);
    let mut src = Source::open_with(reader, format, &ORDER_FILE_SPEC, &opts.mappings, false, true)?;
    let mut rej = Rejections { names: src.source_names(), list: Vec::new(), count: 0, rows: Default::default() };
    let mut out = OrderFile { encoding, ..Default::default() };
    let mut index: HashMap<String, u32> = HashMap::new();
    let mut categories: HashMap<String, u32> = HashMap::new();
    // Dates repeat a lot; parse each distinct text once.
    let mut days: HashMap<String, i32> = HashMap::new();
    let (mut has_category, mut has_price_flags) = (false, false);
    let mut category_col: Vec<u32> = Vec::new();
    let mut full_price_col: Vec<bool> = Vec::new();
    while let Some(next) = src.next()? {
        out.rows_read += 1;
        if out.rows_read % 100_000 == 0 {
            progress(out.rows_read);
        }
        let rec = match next {
            Ok(rec) => rec,
            Err(r) => {
                rej.add(r);
                continue;
            }
        };
        rej.names = src.source_names();
        let mut r = Row { rec: &rec, rej: &mut rej, ok: true };
        let customer = r.required(CUSTOMER_ID);
        let day = match rec.values[DATE].as_deref() {
            None => {
                r.required(DATE);
                None
            }
            Some(text) => match days.get(text) {
                Some(d) => Some(*d),
                None => r.parse(DATE, |v| parse_day(v, opts.tz)).inspect(|d| {
                    if days.len() < 1_000_000 {
                        days.insert(text.to_owned(), *d);
                    }
                }),
            },
        };
        let amount = r.parse(AMOUNT, values::parse_money);
        if rec.values[AMOUNT].is_none() {
            r.required(AMOUNT);
        }
        if amount.is_some_and(|a| a < 0) {
            r.reject(AMOUNT, "must not be negative (leave refunds out or give them a status)".into());
        }
        let status = r.parse(STATUS, values::parse_order_status).unwrap_or("completed");
        let discount = r.parse(DISCOUNT, values::parse_money).unwrap_or(0);
        let promo = r.parse(PROMO, values::parse_bool);
        let category = r.text(CATEGORY);
        let (true, Some(day), Some(amount)) = (r.ok && !customer.is_empty(), day, amount) else { continue };
        if status != "completed" {
            out.rows_skipped += 1;
            continue;
        }
        let next_index = index.len();
        let c = *index.entry(customer).or_insert_with_key(|k| {
            out.customer_ids.push(k.clone());
            next_index as u32
        });
        out.orders.customer.push(c);
        out.orders.day.push(day);
        out.orders.amount_cents.push(amount);
        let cat = match category {
            Some(name) => {
                has_category = true;
                let next = categories.len() as u32;
                *categories.entry(name).or_insert(next)
            }
            None => NO_CATEGORY,
        };
        category_col.push(cat);
        has_price_flags |= rec.values[DISCOUNT].is_some() || rec.values[PROMO].is_some();
        full_price_col.push(discount == 0 && !promo.unwrap_or(false));
    }
    progress(out.rows_read);
    // A column the file does not have stays empty, which the models read as "unknown".
    if has_category {
        out.orders.category = category_col;
    }
    if has_price_flags {
        out.orders.full_price = full_price_col;
    }
    out.rejected = rej.count;
    let mut list = rej.list;
    list.sort_by_key(|r| r.row);
    out.rejections = list;
    Ok(out)
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
        let f = read("cust,when,value\nc1,2026-13-01,1\nc2,2026-01-01,-3\n,2026-01-01,2\nc3,2026-01-01,x\n", &[("cust", "customer_id"), ("when", "date"), ("value", "amount")]).unwrap();
        assert_eq!(f.rejected, 4);
        let got: Vec<(u64, &str)> = f.rejections.iter().map(|r| (r.row, r.column.as_str())).collect();
        assert_eq!(got, vec![(2, "when"), (3, "value"), (4, "cust"), (5, "value")]);
        assert!(f.orders.is_empty());
    }

    #[test]
    fn missing_columns_are_a_file_error() {
        let err = read("customer_id,amount\nc1,1\n", &[]).unwrap_err();
        assert!(err.to_string().contains("missing required column \"date\""), "{err}");
    }
}
