//! Parsing and validation of field values, shared by the importer and the API so both accept and
//! refuse exactly the same things. Each function returns a reason in plain words on failure.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

/// The largest amount of money one value may hold, in minor units (10¹³ cents, 100 billion
/// yuan): far above any real order, and far enough below `i64::MAX` that sums of many cannot
/// overflow.
pub const MAX_CENTS: i64 = 10_000_000_000_000;

/// Size caps (issue 14 §2.9), documented in the README and docs/import-format.md; each is
/// checked before any expensive work on the value.
/// Tags per customer.
pub const MAX_TAGS: usize = 100;
/// Characters per tag.
pub const MAX_TAG_CHARS: usize = 50;
/// Custom attributes per customer.
pub const MAX_ATTRIBUTES: usize = 100;
/// Characters per attribute name.
pub const MAX_ATTRIBUTE_NAME_CHARS: usize = 64;
/// A customer's attributes as JSON, in bytes (64 KiB).
pub const MAX_ATTRIBUTES_BYTES: usize = 64 * 1024;
/// Columns of an import file (or keys of a JSON line).
pub const MAX_IMPORT_COLUMNS: usize = 256;
/// Bytes of one field of an import file (64 KiB).
pub const MAX_FIELD_BYTES: usize = 64 * 1024;

/// Tags within [`MAX_TAGS`] and [`MAX_TAG_CHARS`] (already trimmed and de-duplicated).
pub fn check_tags(tags: &[String]) -> Result<(), String> {
    if tags.len() > MAX_TAGS {
        return Err(format!("at most {MAX_TAGS} tags per customer ({} given)", tags.len()));
    }
    if let Some(t) = tags.iter().find(|t| t.chars().count() > MAX_TAG_CHARS) {
        let head: String = t.chars().take(20).collect();
        return Err(format!("a tag is longer than {MAX_TAG_CHARS} characters ({head}…)"));
    }
    Ok(())
}

/// Attributes within [`MAX_ATTRIBUTES`], [`MAX_ATTRIBUTE_NAME_CHARS`] and
/// [`MAX_ATTRIBUTES_BYTES`].
pub fn check_attributes(attributes: &serde_json::Map<String, serde_json::Value>) -> Result<(), String> {
    if attributes.len() > MAX_ATTRIBUTES {
        return Err(format!("at most {MAX_ATTRIBUTES} attributes per customer ({} given)", attributes.len()));
    }
    if let Some(k) = attributes.keys().find(|k| k.chars().count() > MAX_ATTRIBUTE_NAME_CHARS) {
        let head: String = k.chars().take(20).collect();
        return Err(format!("an attribute name is longer than {MAX_ATTRIBUTE_NAME_CHARS} characters ({head}…)"));
    }
    let bytes = serde_json::to_vec(attributes).map(|v| v.len()).unwrap_or(usize::MAX);
    if bytes > MAX_ATTRIBUTES_BYTES {
        return Err(format!("the attributes take {bytes} bytes as JSON; at most {MAX_ATTRIBUTES_BYTES} (64 KiB)"));
    }
    Ok(())
}

/// The reason given for an amount above [`MAX_CENTS`], the same in the API and the importer.
pub fn too_much_money() -> String {
    format!("at most {} cents (¥100,000,000,000)", MAX_CENTS)
}

/// Money in major units ("128.50", "¥1,280", "-3.2") to minor units (cents). At most 2 decimals.
pub fn parse_money(s: &str) -> Result<i64, String> {
    if let Some(cents) = plain_money(s.as_bytes()) {
        return Ok(cents);
    }
    let t = s.trim();
    let t = t.strip_prefix('¥').or_else(|| t.strip_prefix('￥')).unwrap_or(t).trim();
    let (neg, t) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t),
    };
    let (int_part, frac_part) = match t.split_once('.') {
        Some((i, f)) => (i, f),
        None => (t, ""),
    };
    let int_digits: String = int_part.chars().filter(|c| *c != ',').collect();
    if int_digits.is_empty() && frac_part.is_empty() {
        return Err("not an amount".into());
    }
    if !int_digits.chars().all(|c| c.is_ascii_digit()) || !frac_part.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!("not an amount: {s:?}"));
    }
    if frac_part.len() > 2 {
        return Err("at most 2 decimals".into());
    }
    let whole: i64 = if int_digits.is_empty() { 0 } else { int_digits.parse().map_err(|_| "amount too large".to_string())? };
    let frac: i64 = match frac_part.len() {
        0 => 0,
        1 => i64::from(frac_part.as_bytes()[0] - b'0') * 10,
        _ => frac_part.parse().map_err(|_| "not an amount".to_string())?,
    };
    let cents = whole.checked_mul(100).and_then(|c| c.checked_add(frac)).ok_or_else(|| "amount too large".to_string())?;
    Ok(if neg { -cents } else { cents })
}

/// `123`, `123.4`, `123.45` or `.5` — no sign, currency, separators or spaces — parsed without
/// allocating (bulk files are almost all like this); `None` sends anything else to the full parser.
pub(crate) fn plain_money(t: &[u8]) -> Option<i64> {
    if t.len() > 15 {
        return None;
    }
    let (mut cents, mut digits, mut decimals): (i64, u32, Option<u32>) = (0, 0, None);
    for &c in t {
        match c {
            b'0'..=b'9' => {
                cents = cents * 10 + i64::from(c - b'0');
                digits += 1;
                if let Some(d) = decimals.as_mut() {
                    *d += 1;
                }
            }
            b'.' if decimals.is_none() => decimals = Some(0),
            _ => return None,
        }
    }
    match (digits, decimals) {
        (0, _) => None,
        (_, None | Some(0)) => Some(cents * 100),
        (_, Some(1)) => Some(cents * 10),
        (_, Some(2)) => Some(cents),
        _ => None,
    }
}

/// Formats minor units as a decimal string with 2 decimals ("128.50").
pub fn format_money(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let a = cents.unsigned_abs();
    format!("{sign}{}.{:02}", a / 100, a % 100)
}

/// A calendar date: `YYYY-MM-DD`, `YYYY/MM/DD` or `YYYYMMDD`.
pub fn parse_date(s: &str) -> Result<NaiveDate, String> {
    let t = s.trim();
    for fmt in ["%Y-%m-%d", "%Y/%m/%d", "%Y%m%d"] {
        if let Ok(d) = NaiveDate::parse_from_str(t, fmt) {
            return check_date(d);
        }
    }
    Err(format!("not a date (expected YYYY-MM-DD): {s:?}"))
}

/// The earliest date patron takes from a client (issue 14 §2.8): dates far outside reason
/// (`+99999-01-01`) broke the 360's first and last order.
pub fn min_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(1900, 1, 1).unwrap_or_default()
}

/// The latest date patron takes from a client (inclusive).
pub fn max_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(2100, 1, 1).unwrap_or_default()
}

/// The reason given for a date or time out of [`min_date`]..=[`max_date`].
pub fn date_out_of_range() -> String {
    "must be between 1900-01-01 and 2100-01-01".into()
}

/// `d` when it is within 1900-01-01..=2100-01-01.
pub fn check_date(d: NaiveDate) -> Result<NaiveDate, String> {
    if d < min_date() || d > max_date() {
        Err(date_out_of_range())
    } else {
        Ok(d)
    }
}

/// A time whose date as written is within 1900-01-01..=2100-01-01. The offset it was written
/// with is gone by now, so its UTC date may be a day off either way.
pub fn check_time(t: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let d = t.date_naive();
    if d.succ_opt().is_none_or(|n| n < min_date()) || d.pred_opt().is_none_or(|p| p > max_date()) {
        return Err(date_out_of_range());
    }
    Ok(t)
}

/// An order's time: in range, and at most a day after `now` (a till's clock may run ahead, an
/// order from next year is a typing error).
pub fn check_order_time(t: DateTime<Utc>, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    check_time(t)?;
    if t > now + chrono::Duration::days(1) {
        return Err(format!("must not be more than a day in the future (now {})", now.format("%Y-%m-%dT%H:%M:%SZ")));
    }
    Ok(t)
}

/// A point in time: RFC 3339, or a local date/time in `tz` (`YYYY-MM-DD HH:MM[:SS]`, with `/` too,
/// or a bare date meaning midnight). Returned in UTC.
pub fn parse_time(s: &str, tz: Tz) -> Result<DateTime<Utc>, String> {
    let t = s.trim();
    // The commonest shape, `2025-03-04 18:23:00` (every row of an export), read by position:
    // chrono's format strings are interpreted anew on every call (a tenth of an import's
    // parsing). Anything else, or a value out of range, takes the general path below.
    if let Some(n) = plain_local_time(t) {
        if check_date(n.date()).is_ok() {
            if let Some(d) = tz.from_local_datetime(&n).earliest() {
                return Ok(d.with_timezone(&Utc));
            }
        }
    }
    if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
        // The date as written, as the API's document bounds it.
        check_date(dt.date_naive())?;
        return Ok(dt.with_timezone(&Utc));
    }
    let naive = ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M:%S%.f", "%Y/%m/%d %H:%M", "%Y-%m-%dT%H:%M:%S%.f"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(t, f).ok())
        .map(Ok)
        .or_else(|| match parse_date(t) {
            Ok(d) => Some(Ok(d.and_time(NaiveTime::MIN))),
            Err(e) if e == date_out_of_range() => Some(Err(e)),
            Err(_) => None,
        })
        .transpose()?;
    if let Some(n) = naive {
        check_date(n.date())?;
    }
    match naive {
        Some(n) => tz
            .from_local_datetime(&n)
            .earliest()
            .map(|d| d.with_timezone(&Utc))
            .ok_or_else(|| format!("time does not exist in {tz}: {s:?}")),
        None => Err(format!("not a time (expected e.g. 2025-03-04 18:23:00 or RFC 3339): {s:?}")),
    }
}

/// `YYYY-MM-DD HH:MM:SS` exactly, as `%Y-%m-%d %H:%M:%S` reads it; `None` for any other shape
/// or an invalid date or time (a leap second included), which the general path then reads or
/// explains.
fn plain_local_time(t: &str) -> Option<NaiveDateTime> {
    let b = t.as_bytes();
    if b.len() != 19 || b[4] != b'-' || b[7] != b'-' || b[10] != b' ' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<u32> {
        b[range].iter().try_fold(0u32, |n, &c| c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0')))
    };
    let date = NaiveDate::from_ymd_opt(i32::try_from(num(0..4)?).ok()?, num(5..7)?, num(8..10)?)?;
    Some(date.and_time(NaiveTime::from_hms_opt(num(11..13)?, num(14..16)?, num(17..19)?)?))
}

/// A yes/no value.
pub fn parse_bool(s: &str) -> Result<bool, String> {
    match s.trim().to_lowercase().as_str() {
        "true" | "yes" | "y" | "1" | "是" | "t" => Ok(true),
        "false" | "no" | "n" | "0" | "否" | "f" => Ok(false),
        _ => Err(format!("not a yes/no value: {s:?}")),
    }
}

/// A mainland China mobile number, normalised to 11 digits (`+86`, spaces and dashes removed).
pub fn parse_mobile(s: &str) -> Result<String, String> {
    let digits: String = s.chars().filter(|c| !matches!(c, ' ' | '-' | '(' | ')')).collect();
    let digits = digits.strip_prefix("+86").or_else(|| digits.strip_prefix("0086")).unwrap_or(&digits);
    let digits = if digits.len() == 13 && digits.starts_with("86") { &digits[2..] } else { digits };
    let b = digits.as_bytes();
    if b.len() == 11 && b[0] == b'1' && (b'3'..=b'9').contains(&b[1]) && b.iter().all(u8::is_ascii_digit) {
        Ok(digits.to_owned())
    } else {
        Err(format!("not a mainland China mobile number (11 digits starting 13–19): {s:?}"))
    }
}

/// An email address (a practical check: one `@`, a dot in the domain, no spaces).
pub fn parse_email(s: &str) -> Result<String, String> {
    let t = s.trim();
    let ok = match t.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !t.chars().any(char::is_whitespace)
        }
        None => false,
    };
    if ok {
        Ok(t.to_lowercase())
    } else {
        Err(format!("not an email address: {s:?}"))
    }
}

/// Customer kind: `person` or `organisation`.
pub fn parse_kind(s: &str) -> Result<&'static str, String> {
    match s.trim().to_lowercase().as_str() {
        "person" | "individual" | "个人" | "p" => Ok("person"),
        "organisation" | "organization" | "company" | "企业" | "机构" | "公司" | "o" => Ok("organisation"),
        _ => Err(format!("kind must be person or organisation: {s:?}")),
    }
}

/// Gender: `male`, `female` or `unknown`.
pub fn parse_gender(s: &str) -> Result<&'static str, String> {
    match s.trim().to_lowercase().as_str() {
        "male" | "m" | "男" => Ok("male"),
        "female" | "f" | "女" => Ok("female"),
        "unknown" | "other" | "未知" | "u" => Ok("unknown"),
        _ => Err(format!("gender must be male, female or unknown: {s:?}")),
    }
}

/// Order status.
pub fn parse_order_status(s: &str) -> Result<&'static str, String> {
    match s.trim().to_lowercase().as_str() {
        "completed" | "complete" | "paid" | "已完成" | "完成" => Ok("completed"),
        "cancelled" | "canceled" | "已取消" | "取消" => Ok("cancelled"),
        "refunded" | "已退款" | "退款" => Ok("refunded"),
        "pending" | "待支付" => Ok("pending"),
        _ => Err(format!("status must be completed, cancelled, refunded or pending: {s:?}")),
    }
}

/// Interaction kinds patron records.
pub const INTERACTION_KINDS: [&str; 8] = ["page_view", "click", "call", "visit", "sms_open", "email_open", "reply", "event"];

/// Interaction kind.
pub fn parse_interaction_kind(s: &str) -> Result<&'static str, String> {
    let t = s.trim().to_lowercase();
    INTERACTION_KINDS
        .iter()
        .find(|k| **k == t)
        .copied()
        .ok_or_else(|| format!("kind must be one of {}: {s:?}", INTERACTION_KINDS.join(", ")))
}

/// Consent channels.
pub const CONSENT_CHANNELS: [&str; 5] = ["sms", "email", "wechat", "phone", "mail"];

/// ISO 4217-shaped currency code (three letters), upper-cased.
pub fn parse_currency(s: &str) -> Result<String, String> {
    let t = s.trim().to_uppercase();
    if t.len() == 3 && t.chars().all(|c| c.is_ascii_uppercase()) {
        Ok(t)
    } else {
        Err(format!("currency must be a 3-letter code like CNY: {s:?}"))
    }
}

/// Tags from one cell: separated by `;`, `；`, `|` or `,` inside the cell; trimmed, de-duplicated.
pub fn parse_tags(s: &str) -> Vec<String> {
    let mut tags: Vec<String> = s.split([';', '；', '|', '，']).map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned).collect();
    tags.sort();
    tags.dedup();
    tags
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money() {
        assert_eq!(parse_money("128.50"), Ok(12850));
        assert_eq!(parse_money("128.5"), Ok(12850));
        assert_eq!(parse_money("128"), Ok(12800));
        assert_eq!(parse_money("¥1,280.05"), Ok(128005));
        assert_eq!(parse_money("-3.20"), Ok(-320));
        assert_eq!(parse_money(".5"), Ok(50));
        assert!(parse_money("1.234").is_err());
        assert!(parse_money("abc").is_err());
        // The allocation-free path agrees with the full parser wherever it answers.
        for v in ["0", "7", "7.", "7.0", "7.05", ".05", "123456789012.34", "1.2.3", ".", "", "1.234", "12a", "١٢"] {
            let full = {
                let t = v;
                let (i, f) = t.split_once('.').unwrap_or((t, ""));
                if (i.is_empty() && f.is_empty())
                    || !i.bytes().all(|c| c.is_ascii_digit())
                    || !f.bytes().all(|c| c.is_ascii_digit())
                    || f.len() > 2
                {
                    None
                } else {
                    let whole: i64 = if i.is_empty() { 0 } else { i.parse().unwrap() };
                    let frac: i64 = if f.is_empty() { 0 } else { format!("{f:0<2}").parse().unwrap() };
                    Some(whole * 100 + frac)
                }
            };
            assert_eq!(plain_money(v.as_bytes()), full, "{v:?}");
            if let Some(c) = full {
                assert_eq!(parse_money(v), Ok(c), "{v:?}");
            }
        }
        assert!(parse_money("").is_err());
        assert!(parse_money("99999999999999999999").is_err());
        assert_eq!(format_money(12850), "128.50");
        assert_eq!(format_money(-5), "-0.05");
    }

    #[test]
    fn times_are_business_local_unless_offset_given() {
        let tz = chrono_tz::Asia::Shanghai;
        let t = parse_time("2025-03-04 18:23:00", tz).unwrap();
        assert_eq!(t.to_rfc3339(), "2025-03-04T10:23:00+00:00");
        assert_eq!(parse_time("2025/03/04 18:23", tz).unwrap(), t);
        assert_eq!(parse_time("2025-03-04T10:23:00Z", tz).unwrap(), t);
        assert_eq!(parse_time("2025-03-04", tz).unwrap().to_rfc3339(), "2025-03-03T16:00:00+00:00");
        assert_eq!(parse_time("20250304", tz).unwrap().to_rfc3339(), "2025-03-03T16:00:00+00:00");
        assert!(parse_time("2025-13-04", tz).is_err());
        assert!(parse_time("yesterday", tz).is_err());
    }

    #[test]
    fn the_positional_time_reader_agrees_with_chrono() {
        // Independent reference: chrono's own reading of the format, then the zone.
        let by_chrono = |v: &str, tz: Tz| {
            NaiveDateTime::parse_from_str(v, "%Y-%m-%d %H:%M:%S%.f")
                .ok()
                .filter(|n| check_date(n.date()).is_ok())
                .and_then(|n| tz.from_local_datetime(&n).earliest())
                .map(|d| d.with_timezone(&Utc))
        };
        let cases = [
            "2025-03-04 18:23:00",
            "2024-02-29 23:59:59",
            "2023-02-29 12:00:00",
            "2025-12-31 24:00:00",
            "2025-06-30 23:59:60",
            "1900-01-01 00:00:00",
            "1899-12-31 23:59:59",
            "2100-01-01 08:00:00",
            "2100-01-02 00:00:00",
            "0000-01-01 00:00:00",
            "2025-1-04 18:23:00 ",
            "2025-03-04 18:2a:00",
            "2025-03-04T18:23:00",
            "2025-03-04 18:23:00.5",
            "１９９８-03-04 18:23:00",
        ];
        for tz in [chrono_tz::Asia::Shanghai, chrono_tz::America::New_York] {
            for v in cases.iter().copied().chain(["2025-03-09 02:30:00", "2025-11-02 01:30:00"]) {
                if let Some(n) = plain_local_time(v) {
                    assert_eq!(Some(n), NaiveDateTime::parse_from_str(v, "%Y-%m-%d %H:%M:%S").ok(), "{v:?}");
                }
                if let Some(expected) = by_chrono(v.trim(), tz) {
                    assert_eq!(parse_time(v, tz), Ok(expected), "{v:?} in {tz}");
                } else if plain_local_time(v.trim()).is_some() {
                    // Shaped like the fast path but out of range or missing in the zone: the
                    // general path explains it.
                    assert!(parse_time(v, tz).is_err(), "{v:?} in {tz}");
                }
            }
        }
        // A local time skipped by a clock change does not exist.
        assert!(parse_time("2025-03-09 02:30:00", chrono_tz::America::New_York).unwrap_err().contains("does not exist"));
    }

    #[test]
    fn mobiles_and_emails() {
        assert_eq!(parse_mobile("+86 138-0013-8000").unwrap(), "13800138000");
        assert_eq!(parse_mobile("8613800138000").unwrap(), "13800138000");
        assert!(parse_mobile("12800138000").is_err());
        assert!(parse_mobile("1380013800").is_err());
        assert_eq!(parse_email("Li.Lei@Example.com").unwrap(), "li.lei@example.com");
        assert!(parse_email("li@lei").is_err());
        assert!(parse_email("a b@c.com").is_err());
        assert!(parse_email("@c.com").is_err());
    }

    #[test]
    fn enums_accept_chinese() {
        assert_eq!(parse_bool("是"), Ok(true));
        assert_eq!(parse_gender("女"), Ok("female"));
        assert_eq!(parse_kind("企业"), Ok("organisation"));
        assert_eq!(parse_order_status("已退款"), Ok("refunded"));
        assert_eq!(parse_tags("辣味爱好者；下午茶|辣味爱好者"), vec!["下午茶", "辣味爱好者"]);
    }
}
