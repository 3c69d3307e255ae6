//! Export of customer lists to CSV in the import format, so an export can be re-imported.

use std::io::Write;

use crate::customers::CustomerFilter;
use crate::db::query;
use crate::users::Actor;
use crate::{Result, Store, StoreError};

/// A value as a spreadsheet may show it without running it: one that starts with `=`, `+`, `-`,
/// `@`, a tab or a carriage return (a formula to Excel and LibreOffice: CSV injection) gets a
/// leading apostrophe, as OWASP recommends. The importer takes such an apostrophe off again, so
/// an export re-imports unchanged.
pub fn spreadsheet_safe(v: &str) -> std::borrow::Cow<'_, str> {
    match v.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => std::borrow::Cow::Owned(format!("'{v}")),
        _ => std::borrow::Cow::Borrowed(v),
    }
}

/// The value a spreadsheet-safe export wrote ([`spreadsheet_safe`]), as it was.
pub fn from_spreadsheet_safe(v: &str) -> &str {
    match v.strip_prefix('\'') {
        Some(rest) if rest.starts_with(['=', '+', '-', '@', '\t', '\r']) => rest,
        _ => v,
    }
}

#[derive(sqlx::FromRow)]
struct ExportRow {
    id: i64,
    external_id: Option<String>,
    kind: String,
    name: String,
    mobile: Option<String>,
    email: Option<String>,
    wechat_id: Option<String>,
    gender: Option<String>,
    birthday: Option<chrono::NaiveDate>,
    city: Option<String>,
    owner_email: Option<String>,
    referrer_id: Option<i64>,
    created_at: chrono::DateTime<chrono::Utc>,
}

/// Header of exported customer files (the import's canonical names).
pub const CUSTOMER_HEADER: [&str; 16] = [
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

impl Store {
    /// Writes every customer matching `filter` as CSV; returns the number of rows. Customers
    /// without an external id are exported with `P<id>` so the file re-imports without clashes.
    /// Values a spreadsheet would run as a formula are neutralised ([`spreadsheet_safe`]) unless
    /// `raw` (for machines reading the file).
    pub async fn export_customers<W: Write>(&self, actor: &Actor, filter: &CustomerFilter, out: W, raw: bool) -> Result<u64> {
        let io = |e: csv::Error| StoreError::Io(std::io::Error::other(e));
        let mut w = csv::Writer::from_writer(out);
        w.write_record(CUSTOMER_HEADER).map_err(io)?;
        let mut after = 0i64;
        let mut n = 0u64;
        // The exporter's scope (crate::access), whatever the filter says.
        let filter = &CustomerFilter { scope: Some(crate::access::CustomerScope::of(actor)), ..filter.clone() };
        // The exporter's masking rule (crate::access::masking): an export shows no more than the
        // exporter's profile view.
        let mask = self.field_mask(actor, crate::access::masking::Surface::Profile).await?;
        loop {
            // Page by id with the same filter the list uses, so the two never disagree.
            let page = self.list_customers(filter, crate::customers::CustomerSort::Id, cursor_after(after).as_deref(), 1000).await?;
            if page.items.is_empty() {
                break;
            }
            let ids: Vec<i64> = page.items.iter().map(|c| c.id).collect();
            n += self.write_customer_rows(&mut w, &ids, raw, &mask).await?;
            after = *ids.last().unwrap_or(&after);
            if page.next_cursor.is_none() {
                break;
            }
        }
        w.flush()?;
        self.audit(&actor.key, "export", "customers", None, Some(format!("rows={n}"))).await?;
        Ok(n)
    }

    /// Writes the customers `ids` (at most a few thousand; one statement per table) as CSV rows in
    /// the import format, in id order; returns the number written. Shared by every export.
    pub(crate) async fn write_customer_rows<W: Write>(
        &self,
        w: &mut csv::Writer<W>,
        ids: &[i64],
        raw: bool,
        mask: &crate::access::masking::FieldMask,
    ) -> Result<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        let io = |e: csv::Error| StoreError::Io(std::io::Error::other(e));
        let mut n = 0u64;
        let placeholders: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
        let list = placeholders.join(", ");
        let mut q = query(format!(
            "SELECT c.id, c.external_id, c.kind, c.name, c.mobile, c.email, c.wechat_id, c.gender, c.birthday, c.city, \
             u.email AS owner_email, c.referrer_id, c.created_at \
             FROM customers c LEFT JOIN users u ON u.id = c.owner_id \
             WHERE c.id IN ({list}) ORDER BY c.id"
        ));
        let mut tq = query(format!("SELECT customer_id, tag FROM customer_tags WHERE customer_id IN ({list}) ORDER BY customer_id, tag"));
        let mut cq = query(format!("SELECT customer_id, channel, granted FROM customer_consents WHERE customer_id IN ({list})"));
        for id in ids {
            q.push(*id);
            tq.push(*id);
            cq.push(*id);
        }
        let rows: Vec<ExportRow> = self.db.reader().fetch_all(q).await?;
        let tags: Vec<(i64, String)> = self.db.reader().fetch_all(tq).await?;
        let consents: Vec<(i64, String, bool)> = self.db.reader().fetch_all(cq).await?;
        // The referrers' external ids by a second query: on Citus a referrer lives in another
        // shard, and a join of `customers` to itself is refused.
        let mut referrers: Vec<i64> = rows.iter().filter_map(|r| r.referrer_id).collect();
        referrers.sort_unstable();
        referrers.dedup();
        let referrer_ids: std::collections::HashMap<i64, Option<String>> = if referrers.is_empty() {
            Default::default()
        } else {
            let list = serde_json::Value::Array(referrers.iter().map(|&i| i.into()).collect());
            let q = query(format!("SELECT id, external_id FROM customers WHERE id IN ({})", self.db.engine().json_ints(1))).bind(list);
            self.db.reader().fetch_all::<(i64, Option<String>)>(q).await?.into_iter().collect()
        };
        for r in rows {
            let t: Vec<&str> = tags.iter().filter(|(c, _)| *c == r.id).map(|(_, t)| t.as_str()).collect();
            let consent =
                |ch: &str| consents.iter().find(|(c, x, _)| *c == r.id && x == ch).map(|(_, _, g)| g.to_string()).unwrap_or_default();
            let ext = r.external_id.clone().unwrap_or_else(|| format!("P{}", r.id));
            let referrer = r.referrer_id.and_then(|id| referrer_ids.get(&id).cloned().flatten());
            let mobile = mask.personal_text(r.mobile.clone());
            let email = mask.personal_text(r.email.clone());
            let wechat_id = mask.personal_text(r.wechat_id.clone());
            let birthday = mask.birthday(r.birthday);
            let record = [
                ext.as_str(),
                &r.kind,
                &r.name,
                mobile.as_deref().unwrap_or(""),
                email.as_deref().unwrap_or(""),
                wechat_id.as_deref().unwrap_or(""),
                r.gender.as_deref().unwrap_or(""),
                &birthday.map(|d| d.to_string()).unwrap_or_default(),
                r.city.as_deref().unwrap_or(""),
                &t.join(";"),
                r.owner_email.as_deref().unwrap_or(""),
                referrer.as_deref().unwrap_or(""),
                &consent("sms"),
                &consent("email"),
                &consent("wechat"),
                &r.created_at.to_rfc3339(),
            ];
            if raw {
                w.write_record(record).map_err(io)?;
            } else {
                w.write_record(record.iter().map(|v| spreadsheet_safe(v).into_owned())).map_err(io)?;
            }
            n += 1;
        }
        Ok(n)
    }
}

fn cursor_after(id: i64) -> Option<String> {
    #[derive(serde::Serialize)]
    struct C<'a> {
        s: &'a str,
        v: Option<String>,
        i: i64,
    }
    (id > 0).then(|| crate::page::encode_cursor(&C { s: "id", v: None, i: id }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_neutralised_and_read_back() {
        for v in ["=HYPERLINK(\"http://x\")", "+86", "-1", "@SUM(A1)", "\tx", "\rx"] {
            let safe = spreadsheet_safe(v);
            assert!(safe.starts_with('\''), "{v}");
            assert_eq!(from_spreadsheet_safe(&safe), v);
        }
        for v in ["王伟", "", "'quoted'", "a=b"] {
            assert_eq!(spreadsheet_safe(v), v);
            assert_eq!(from_spreadsheet_safe(v), v);
        }
    }
}
