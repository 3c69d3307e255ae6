//! First-party, cookie-less web analytics (issue 19 §8, DESIGN.md C17; docs/web-analytics.md).
//!
//! Sites (`web_sites`) name the origins allowed to send events. A visitor is anonymous: a hash
//! of the site, the client address and the user agent under a salt that changes every business
//! day ([`visitor_id`]), so the same browser is a new visitor tomorrow and neither the address
//! nor the user agent is ever stored. A site in cookie mode keeps a random first-party id in the
//! browser instead ([`cookie_visitor_id`]), stable across days.
//!
//! Identity stitching: a short-lived token signed with the server's secret
//! ([`Store::issue_identity_token`]) names a customer; the site hands it to the browser, which
//! sends it back with `identify`. The visitor is then linked to the customer: its page views of
//! the last [`LOOKBACK_DAYS`] days and all later ones are copied into the customer-keyed
//! `web_customer_views` (timeline kind `web`, interests). A forged or expired token links
//! nothing.
//!
//! Events are written in batches by the server's collector ([`Store::store_web_hits`]); a daily
//! job rolls finished days up into `web_daily_stats` (kept for good) and prunes raw events past
//! the retention ([`Store::run_web_jobs`]).

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::db::{query, Arg, Query};
use crate::users::{new_secret, Actor};
use crate::{audit, Result, Store, StoreError};

/// The settings key of [`WebSettings`].
pub const SETTINGS: &str = "web";
/// The settings key of the server's secret for visitor salts and identity tokens (made on
/// first use; never shown by any endpoint).
const SECRET: &str = "web_secret";
/// Days before an identify whose page views of the visitor join the customer.
pub const LOOKBACK_DAYS: i64 = 30;
/// Minutes an identity token lives.
pub const TOKEN_MINUTES: i64 = 10;
/// Rows per multi-row insert (14 columns: well under both engines' parameter limits).
const CHUNK: usize = 500;

type HmacSha256 = Hmac<Sha256>;

/// How web analytics behaves (settings key `web`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct WebSettings {
    /// Days raw events are kept (1–3650); the daily aggregates are kept for good.
    #[schema(minimum = 1, maximum = 3650)]
    pub raw_retention_days: i64,
    /// Days a stitched customer's page views are kept (timeline, interests; 1–3650).
    #[schema(minimum = 1, maximum = 3650)]
    pub customer_retention_days: i64,
    /// Page categories: the first rule whose pattern matches a page's path names its category
    /// (the customer's `web_interests`).
    pub categories: Vec<CategoryRule>,
}

/// A URL pattern and the category of the pages it matches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CategoryRule {
    /// A path pattern: `*` matches any run of characters (`/menu/*`, `*/wine*`); without `*`
    /// the path must start with it.
    pub pattern: String,
    /// The category (1–50 characters).
    pub category: String,
}

impl Default for WebSettings {
    fn default() -> Self {
        WebSettings { raw_retention_days: 90, customer_retention_days: 365, categories: Vec::new() }
    }
}

impl WebSettings {
    /// Checks the values are usable.
    pub fn validate(&self) -> Result<()> {
        if !(1..=3650).contains(&self.raw_retention_days) {
            return Err(StoreError::invalid("raw_retention_days", "must be 1 to 3650 days"));
        }
        if !(1..=3650).contains(&self.customer_retention_days) {
            return Err(StoreError::invalid("customer_retention_days", "must be 1 to 3650 days"));
        }
        if self.categories.len() > 200 {
            return Err(StoreError::invalid("categories", "give at most 200 rules"));
        }
        for r in &self.categories {
            if r.pattern.is_empty() || r.pattern.chars().count() > 200 || !r.pattern.starts_with(['/', '*']) {
                return Err(StoreError::invalid("categories", "a pattern is 1 to 200 characters starting with / or *"));
            }
            if r.category.trim().is_empty() || r.category.chars().count() > 50 {
                return Err(StoreError::invalid("categories", "a category is 1 to 50 characters"));
            }
        }
        Ok(())
    }

    /// The category of a page's path, by the first matching rule.
    pub fn category_of(&self, path: &str) -> Option<String> {
        self.categories.iter().find(|r| pattern_matches(&r.pattern, path)).map(|r| r.category.clone())
    }
}

/// Whether `path` matches `pattern` (`*` any run; without `*`, a prefix).
fn pattern_matches(pattern: &str, path: &str) -> bool {
    if !pattern.contains('*') {
        return path.starts_with(pattern);
    }
    let parts: Vec<&str> = pattern.split('*').collect();
    let mut rest = path;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(part) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return part.is_empty() || rest.ends_with(part);
        } else if let Some(at) = rest.find(part) {
            rest = &rest[at + part.len()..];
        } else {
            return false;
        }
    }
    true
}

/// A site allowed to send events.
#[derive(serde::Deserialize, Debug, Clone, PartialEq, Serialize, ToSchema, sqlx::FromRow)]
pub struct Site {
    /// Id (the snippet's `data-site`).
    pub id: i64,
    /// Name.
    pub name: String,
    /// The origin pages are served from (`https://shop.example.com`): the only origin whose
    /// browsers may send events for the site (CORS).
    pub origin: String,
    /// Whether the snippet keeps a first-party visitor id (a cookie) rather than the daily hash.
    pub cookie_mode: bool,
    /// When it was added.
    pub created_at: DateTime<Utc>,
}

/// A new site.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSite {
    /// Name (1–100 characters).
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    /// Origin: `http(s)://host[:port]`, no path.
    pub origin: String,
    /// First-party cookie mode (default false: cookie-less).
    #[serde(default)]
    pub cookie_mode: bool,
}

/// Normalises an origin (`HTTPS://Shop.example.com/` → `https://shop.example.com`); None when it
/// is not `http(s)://host[:port]`.
pub fn normalise_origin(origin: &str) -> Option<String> {
    let o = origin.trim().trim_end_matches('/').to_ascii_lowercase();
    let rest = o.strip_prefix("https://").or_else(|| o.strip_prefix("http://"))?;
    let ok = !rest.is_empty()
        && rest.len() <= 253
        && rest.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    ok.then_some(o)
}

/// An event the collector has checked and hashed, ready to store.
#[derive(Debug, Clone)]
pub struct Hit {
    /// The site.
    pub site_id: i64,
    /// The visitor hash.
    pub visitor: String,
    /// When it came (the server's clock).
    pub at: DateTime<Utc>,
    /// What it is.
    pub what: HitKind,
}

/// A page view or click, or an identify.
#[derive(Debug, Clone)]
pub enum HitKind {
    /// A page view or a click on a `data-patron-event` element (boxed: the identify is small).
    View(Box<View>),
    /// A verified identity token: link the visitor to this customer.
    Identify(i64),
}

/// The stored fields of a page view or click.
#[derive(Debug, Clone, Default)]
pub struct View {
    /// `pageview` or `click`.
    pub kind: &'static str,
    /// The page's path (no query string).
    pub path: String,
    /// The page's URL (query string kept: UTM fields; fragment dropped).
    pub url: String,
    /// The page's title.
    pub title: Option<String>,
    /// The referring host, when another site.
    pub referrer_host: Option<String>,
    /// The `data-patron-event` name of a click.
    pub event_name: Option<String>,
    /// `utm_source`.
    pub utm_source: Option<String>,
    /// `utm_medium`.
    pub utm_medium: Option<String>,
    /// `utm_campaign`.
    pub utm_campaign: Option<String>,
    /// `utm_term`.
    pub utm_term: Option<String>,
    /// `utm_content`.
    pub utm_content: Option<String>,
    /// The page's category by the settings' rules.
    pub category: Option<String>,
}

/// A page URL taken apart: `(origin, path, query pairs)`.
pub type ParsedUrl = (String, String, Vec<(String, String)>);

/// Takes a page URL apart; None when it is not an absolute http(s) URL.
pub fn parse_url(url: &str) -> Option<ParsedUrl> {
    let url = url.split('#').next().unwrap_or("");
    let scheme_end = url.find("://")?;
    let scheme = url[..scheme_end].to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let rest = &url[scheme_end + 3..];
    let host_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let host = &rest[..host_end];
    if host.is_empty() {
        return None;
    }
    let after = &rest[host_end..];
    let (path, q) = match after.split_once('?') {
        Some((p, q)) => (p, q),
        None => (after, ""),
    };
    let path = if path.is_empty() { "/".to_owned() } else { percent_decode(path) };
    let pairs = q
        .split('&')
        .filter(|s| !s.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(&k.replace('+', " ")), percent_decode(&v.replace('+', " ")))
        })
        .collect();
    Some((format!("{scheme}://{}", host.to_ascii_lowercase()), path, pairs))
}

/// Decodes `%XX` escapes (invalid ones and invalid UTF-8 are kept or replaced, never refused).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let digit = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (digit(b[i + 1]), digit(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The anonymous visitor of cookie-less mode: SHA-256 of the day's salt, the site, the client
/// address and the user agent (32 hex digits). The salt is an HMAC of the server's secret and
/// the business day, so yesterday's visitor cannot be recomputed from today's.
pub fn visitor_id(secret: &[u8], day: NaiveDate, site_id: i64, address: &str, user_agent: &str) -> String {
    let salt = hmac(secret, format!("salt:{day}").as_bytes());
    let mut h = Sha256::new();
    h.update(salt);
    h.update(format!("\0{site_id}\0{address}\0{user_agent}").as_bytes());
    hex(&h.finalize()[..16])
}

/// The visitor of cookie mode: an HMAC of the browser's first-party id and the site.
pub fn cookie_visitor_id(secret: &[u8], site_id: i64, browser_id: &str) -> String {
    hex(&hmac(secret, format!("cookie:{site_id}:{browser_id}").as_bytes())[..16])
}

fn hmac(key: &[u8], msg: &[u8]) -> Vec<u8> {
    // An HMAC accepts keys of any length.
    let mut m = <HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    m.update(msg);
    m.finalize().into_bytes().to_vec()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// An identity token just issued.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct IdentityToken {
    /// The token to hand to `patron.identify(token)` in the customer's browser.
    pub token: String,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
}

/// Visitors and page views of a day.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct WebDay {
    /// The business day.
    pub day: NaiveDate,
    /// Distinct visitors.
    pub visitors: i64,
    /// Page views.
    pub pageviews: i64,
}

/// A ranked value (page, referrer, event) with its views and visitors.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct WebRow {
    /// The page path, referring host or event name.
    pub key: String,
    /// Page views (clicks for events).
    pub views: i64,
    /// Visitors, summed over days (a visitor counts once a day).
    pub visitors: i64,
}

/// A UTM campaign, joined to patron's campaign of that name when there is one.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct WebCampaign {
    /// `utm_campaign` as sent.
    pub utm_campaign: String,
    /// Page views.
    pub views: i64,
    /// Visitors, summed over days.
    pub visitors: i64,
    /// patron's campaign whose name is the UTM value (case-insensitive), if any.
    pub campaign_id: Option<i64>,
    /// Its name.
    pub campaign_name: Option<String>,
}

/// The web analytics dashboard over a range of business days.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct WebOverview {
    /// First day.
    pub from: NaiveDate,
    /// Last day.
    pub to: NaiveDate,
    /// The site, when one was asked for.
    pub site_id: Option<i64>,
    /// Page views in the range.
    pub pageviews: i64,
    /// Visitors in the range, summed over days.
    pub visitors: i64,
    /// Every day of the range, in order (zeros included).
    pub days: Vec<WebDay>,
    /// The 20 pages with the most views.
    pub top_pages: Vec<WebRow>,
    /// The 20 referring hosts with the most views.
    pub referrers: Vec<WebRow>,
    /// The 20 UTM campaigns with the most views.
    pub campaigns: Vec<WebCampaign>,
    /// The 20 most clicked `data-patron-event` names.
    pub events: Vec<WebRow>,
}

/// A customer's interest: a page category and the views in it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct WebInterest {
    /// The category.
    pub category: String,
    /// Page views in it (of the views kept: `customer_retention_days`).
    pub views: i64,
}

/// What the daily web job did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct WebReport {
    /// Days rolled up into the daily aggregates.
    pub rolled_up_days: u64,
    /// Raw events deleted past the retention.
    pub pruned_events: u64,
}

/// One aggregated row: (site, day, dimension, value, views, visitors).
type StatRow = (i64, NaiveDate, String, String, i64, i64);

/// The grouped counts of raw events of days `$1`–`$2` (site `$3`, 0 for all), one branch per
/// dimension; `extra` narrows further.
fn raw_stats_sql(extra: &str) -> String {
    let cond = format!("day >= $1 AND day <= $2 AND ($3 = 0 OR site_id = $3) {extra}");
    let branch = |dim: &str, col: &str, kind: &str| {
        let (val, group, notnull) = if col.is_empty() {
            ("''".to_owned(), String::new(), String::new())
        } else {
            (col.to_owned(), format!(", {col}"), format!(" AND {col} IS NOT NULL"))
        };
        format!(
            "SELECT site_id, day, '{dim}' AS dimension, {val} AS value, COUNT(*) AS views, COUNT(DISTINCT visitor) AS visitors \
             FROM web_events WHERE kind = '{kind}' AND {cond}{notnull} GROUP BY site_id, day{group}"
        )
    };
    [
        branch("total", "", "pageview"),
        branch("page", "path", "pageview"),
        branch("referrer", "referrer_host", "pageview"),
        branch("campaign", "utm_campaign", "pageview"),
        branch("event", "event_name", "click"),
    ]
    .join(" UNION ALL ")
}

impl Store {
    /// The server's secret for visitor salts and identity tokens, made on first use.
    pub async fn web_secret(&self) -> Result<Vec<u8>> {
        let read = query("SELECT value FROM settings WHERE key = $1").bind(SECRET);
        let row: Option<(sqlx::types::Json<serde_json::Value>,)> = self.db.reader().fetch_optional(read).await?;
        let value = match row {
            Some((v,)) => v.0,
            None => {
                // Two servers starting at once: the first insert wins and both read it back.
                let mut tx = self.db.begin().await?;
                tx.execute(
                    query("INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3) ON CONFLICT (key) DO NOTHING")
                        .bind(SECRET)
                        .bind(serde_json::Value::String(new_secret("")))
                        .bind(self.now()),
                )
                .await?;
                let v: serde_json::Value = crate::settings::get_in(&mut tx, SECRET).await?;
                tx.commit().await?;
                v
            }
        };
        value.as_str().map(|s| s.as_bytes().to_vec()).ok_or_else(|| StoreError::Internal("stored web secret unreadable".into()))
    }

    /// The web analytics settings.
    pub async fn web_settings(&self) -> Result<WebSettings> {
        self.setting(SETTINGS).await
    }

    /// Replaces the web analytics settings (audited).
    pub async fn set_web_settings(&self, actor: &Actor, s: &WebSettings) -> Result<()> {
        s.validate()?;
        self.put_setting(actor, SETTINGS, serde_json::to_value(s).map_err(|e| StoreError::Internal(e.to_string()))?).await
    }

    /// Adds a site (audited).
    pub async fn create_web_site(&self, actor: &Actor, s: &NewSite) -> Result<Site> {
        let name = s.name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(StoreError::invalid("name", "must be 1 to 100 characters"));
        }
        let origin =
            normalise_origin(&s.origin).ok_or_else(|| StoreError::invalid("origin", "must be http(s)://host[:port] without a path"))?;
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let site: Site = tx
            .fetch_one(
                query(
                    "INSERT INTO web_sites (name, origin, cookie_mode, created_at) VALUES ($1, $2, $3, $4) \
                     RETURNING id, name, origin, cookie_mode, created_at",
                )
                .bind(name)
                .bind(origin)
                .bind(s.cookie_mode)
                .bind(now),
            )
            .await?;
        audit::record(&mut tx, now, &actor.key, "create", "web_site", Some(site.id.to_string()), None).await?;
        tx.commit().await?;
        Ok(site)
    }

    /// Every site, by id.
    pub async fn web_sites(&self) -> Result<Vec<Site>> {
        self.db.reader().fetch_all(query("SELECT id, name, origin, cookie_mode, created_at FROM web_sites ORDER BY id")).await
    }

    /// A signed token naming `customer_id`, valid [`TOKEN_MINUTES`] (audited). Nothing is
    /// stored: the signature is the proof. The caller checks the customer is in its scope.
    pub async fn issue_identity_token(&self, actor: &Actor, customer_id: i64) -> Result<IdentityToken> {
        let secret = self.web_secret().await?;
        let now = self.now();
        let expires_at = now + Duration::minutes(TOKEN_MINUTES);
        let exp = expires_at.timestamp();
        let sig = hex(&hmac(&secret, format!("identify:{customer_id}:{exp}").as_bytes()));
        let mut tx = self.db.begin().await?;
        audit::record(&mut tx, now, &actor.key, "create", "web_identity_token", None, Some(format!("customer={customer_id}"))).await?;
        tx.commit().await?;
        Ok(IdentityToken { token: format!("{customer_id}.{exp}.{sig}"), expires_at })
    }

    /// The customer a token names, when its signature holds and it has not expired at `now`.
    pub fn verify_identity_token(secret: &[u8], token: &str, now: DateTime<Utc>) -> Option<i64> {
        let mut parts = token.split('.');
        let (cid, exp, sig) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || sig.len() != 64 {
            return None;
        }
        let (customer_id, expires): (i64, i64) = (cid.parse().ok()?, exp.parse().ok()?);
        let sig: Vec<u8> = (0..32).map(|i| u8::from_str_radix(sig.get(2 * i..2 * i + 2)?, 16).ok()).collect::<Option<_>>()?;
        let mut m = <HmacSha256 as Mac>::new_from_slice(secret).ok()?;
        m.update(format!("identify:{customer_id}:{expires}").as_bytes());
        // Constant-time comparison: no timing oracle on the signature.
        m.verify_slice(&sig).ok()?;
        (expires > now.timestamp()).then_some(customer_id)
    }

    /// Writes a batch of hits in one transaction: page views and clicks (multi-row inserts; a
    /// linked visitor's also into the customer's views), then identifies (link the visitor,
    /// copy its views of the last [`LOOKBACK_DAYS`] days to the customer).
    pub async fn store_web_hits(&self, hits: &[Hit]) -> Result<()> {
        if hits.is_empty() {
            return Ok(());
        }
        let engine = self.db.engine();
        let tz = self.config.business_tz;
        let mut tx = self.db.begin().await?;
        let mut visitors: Vec<&str> = hits.iter().filter(|h| matches!(h.what, HitKind::View(_))).map(|h| h.visitor.as_str()).collect();
        visitors.sort_unstable();
        visitors.dedup();
        let links: HashMap<String, i64> = if visitors.is_empty() {
            HashMap::new()
        } else {
            let rows: Vec<(String, i64)> = tx
                .fetch_all(
                    query(format!("SELECT visitor, customer_id FROM web_visitor_links WHERE visitor IN ({})", engine.json_strings(1)))
                        .bind(serde_json::json!(visitors)),
                )
                .await?;
            rows.into_iter().collect()
        };
        let views: Vec<(String, &Hit, &View)> = hits
            .iter()
            .filter_map(|h| match &h.what {
                HitKind::View(v) => Some((format!("{}{}", h.visitor, &new_secret("")[..16]), h, v.as_ref())),
                HitKind::Identify(_) => None,
            })
            .collect();
        for chunk in views.chunks(CHUNK) {
            let mut q = query(format!(
                "INSERT INTO web_events (event_key, customer_id, site_id, visitor, at, day, kind, path, url, title, referrer_host, \
                 event_name, utm_source, utm_medium, utm_campaign, utm_term, utm_content, category) VALUES {}",
                engine.values_rows(chunk.len(), 18)
            ));
            for (key, h, v) in chunk {
                q.push(key.as_str());
                q.push(links.get(&h.visitor).copied());
                q.push(h.site_id);
                q.push(h.visitor.as_str());
                q.push(h.at);
                q.push(h.at.with_timezone(&tz).date_naive());
                q.push(v.kind);
                q.push(v.path.as_str());
                q.push(v.url.as_str());
                for o in [
                    &v.title,
                    &v.referrer_host,
                    &v.event_name,
                    &v.utm_source,
                    &v.utm_medium,
                    &v.utm_campaign,
                    &v.utm_term,
                    &v.utm_content,
                    &v.category,
                ] {
                    q.push(o.clone());
                }
            }
            tx.execute(q).await?;
        }
        let linked: Vec<CustomerView> = views
            .iter()
            .filter_map(|(key, h, v)| {
                links.get(&h.visitor).map(|c| CustomerView {
                    customer_id: *c,
                    event_key: key.clone(),
                    site_id: h.site_id,
                    at: h.at,
                    kind: v.kind.to_owned(),
                    path: v.path.clone(),
                    title: v.title.clone(),
                    event_name: v.event_name.clone(),
                    category: v.category.clone(),
                })
            })
            .collect();
        insert_customer_views(&mut tx, engine, &linked).await?;
        for h in hits {
            let HitKind::Identify(customer_id) = h.what else { continue };
            let exists: Option<(i64,)> =
                tx.fetch_optional(query("SELECT id FROM customers WHERE id = $1 AND deleted_at IS NULL").bind(customer_id)).await?;
            if exists.is_none() {
                continue;
            }
            // The newest identify wins (a shared computer); a delete and an insert, as the
            // customer of a row is never updated.
            tx.execute(query("DELETE FROM web_visitor_links WHERE visitor = $1").bind(h.visitor.as_str())).await?;
            tx.execute(
                query("INSERT INTO web_visitor_links (visitor, customer_id, site_id, linked_at) VALUES ($1, $2, $3, $4)")
                    .bind(h.visitor.as_str())
                    .bind(customer_id)
                    .bind(h.site_id)
                    .bind(h.at),
            )
            .await?;
            let earlier: Vec<CustomerView> = tx
                .fetch_all(
                    query(
                        "SELECT $1 AS customer_id, event_key, site_id, at, kind, path, title, event_name, category FROM web_events \
                         WHERE visitor = $2 AND at >= $3 AND at <= $4",
                    )
                    .bind(customer_id)
                    .bind(h.visitor.as_str())
                    .bind(h.at - Duration::days(LOOKBACK_DAYS))
                    .bind(h.at),
                )
                .await?;
            insert_customer_views(&mut tx, engine, &earlier).await?;
        }
        tx.commit().await
    }

    /// The dashboard over business days `from`–`to` (one site, or all): finished days that were
    /// rolled up come from the daily aggregates, the others from the raw events.
    pub async fn web_overview(&self, from: NaiveDate, to: NaiveDate, site_id: Option<i64>) -> Result<WebOverview> {
        if to < from {
            return Err(StoreError::invalid("to", "must not be before from"));
        }
        if (to - from).num_days() > 366 {
            return Err(StoreError::invalid("to", "the range is at most 367 days"));
        }
        let site = site_id.unwrap_or(0);
        let mut r = self.db.reader();
        let mut rows: Vec<StatRow> =
            r.fetch_all(query(raw_stats_sql("AND day NOT IN (SELECT day FROM web_rollups)")).bind(from).bind(to).bind(site)).await?;
        let rolled: Vec<StatRow> = r
            .fetch_all(
                query(
                    "SELECT site_id, day, dimension, value, views, visitors FROM web_daily_stats \
                     WHERE day >= $1 AND day <= $2 AND ($3 = 0 OR site_id = $3)",
                )
                .bind(from)
                .bind(to)
                .bind(site),
            )
            .await?;
        rows.extend(rolled);
        let mut days: BTreeMap<NaiveDate, (i64, i64)> = BTreeMap::new();
        let mut d = from;
        while d <= to {
            days.insert(d, (0, 0));
            d += Duration::days(1);
        }
        let mut dims: HashMap<String, HashMap<String, (i64, i64)>> = HashMap::new();
        for (_, day, dim, value, views, visitors) in rows {
            if dim == "total" {
                let e = days.entry(day).or_default();
                e.0 += visitors;
                e.1 += views;
            } else {
                let e = dims.entry(dim).or_default().entry(value).or_default();
                e.0 += views;
                e.1 += visitors;
            }
        }
        let top = |dim: &str| -> Vec<WebRow> {
            let mut v: Vec<WebRow> = dims
                .get(dim)
                .map(|m| m.iter().map(|(k, (views, visitors))| WebRow { key: k.clone(), views: *views, visitors: *visitors }).collect())
                .unwrap_or_default();
            v.sort_by(|a, b| b.views.cmp(&a.views).then_with(|| a.key.cmp(&b.key)));
            v.truncate(20);
            v
        };
        let campaigns_named: Vec<(i64, String)> = r.fetch_all(query("SELECT id, name FROM campaigns ORDER BY id")).await?;
        let campaigns = top("campaign")
            .into_iter()
            .map(|w| {
                let found = campaigns_named.iter().find(|(_, n)| n.trim().to_lowercase() == w.key.trim().to_lowercase());
                WebCampaign {
                    utm_campaign: w.key,
                    views: w.views,
                    visitors: w.visitors,
                    campaign_id: found.map(|c| c.0),
                    campaign_name: found.map(|c| c.1.clone()),
                }
            })
            .collect();
        let days: Vec<WebDay> = days.into_iter().map(|(day, (visitors, pageviews))| WebDay { day, visitors, pageviews }).collect();
        Ok(WebOverview {
            from,
            to,
            site_id,
            pageviews: days.iter().map(|d| d.pageviews).sum(),
            visitors: days.iter().map(|d| d.visitors).sum(),
            days,
            top_pages: top("page"),
            referrers: top("referrer"),
            campaigns,
            events: top("event"),
        })
    }

    /// A customer's interests: the categories of its page views (those kept), most first — the
    /// same set the segment field `web_interests` tests.
    pub async fn web_interests(&self, customer_id: i64) -> Result<Vec<WebInterest>> {
        let rows: Vec<(String, i64)> = self
            .db
            .reader()
            .fetch_all(
                query(
                    "SELECT category, COUNT(*) FROM web_customer_views WHERE customer_id = $1 AND category IS NOT NULL \
                     AND kind = 'pageview' GROUP BY category ORDER BY COUNT(*) DESC, category",
                )
                .bind(customer_id),
            )
            .await?;
        Ok(rows.into_iter().map(|(category, views)| WebInterest { category, views }).collect())
    }

    /// The daily web job: rolls every finished business day not rolled up yet into the
    /// aggregates (one transaction a day, once), then deletes raw events and customer views
    /// past their retention.
    pub async fn run_web_jobs(&self) -> Result<WebReport> {
        let settings = self.web_settings().await?;
        let now = self.now();
        let today = now.with_timezone(&self.config.business_tz).date_naive();
        let pending: Vec<(NaiveDate,)> = self
            .db
            .reader()
            .fetch_all(
                query("SELECT DISTINCT day FROM web_events WHERE day < $1 AND day NOT IN (SELECT day FROM web_rollups) ORDER BY day")
                    .bind(today),
            )
            .await?;
        let mut report = WebReport::default();
        for (day,) in pending {
            let mut tx = self.db.begin().await?;
            // Claims the day first: a second runner's insert conflicts and it skips the day.
            let claimed = tx
                .execute(query("INSERT INTO web_rollups (day, rolled_at) VALUES ($1, $2) ON CONFLICT (day) DO NOTHING").bind(day).bind(now))
                .await?;
            if claimed == 0 {
                continue;
            }
            let rows: Vec<StatRow> = tx.fetch_all(query(raw_stats_sql("")).bind(day).bind(day).bind(0i64)).await?;
            for chunk in rows.chunks(CHUNK) {
                let mut q = query(format!(
                    "INSERT INTO web_daily_stats (site_id, day, dimension, value, views, visitors) VALUES {} \
                     ON CONFLICT (site_id, day, dimension, value) DO UPDATE SET views = excluded.views, visitors = excluded.visitors",
                    self.db.engine().values_rows(chunk.len(), 6)
                ));
                for (site, d, dim, value, views, visitors) in chunk {
                    q.push(*site);
                    q.push(*d);
                    q.push(dim.as_str());
                    q.push(value.as_str());
                    q.push(*views);
                    q.push(*visitors);
                }
                tx.execute(q).await?;
            }
            tx.commit().await?;
            report.rolled_up_days += 1;
        }
        // Raw events of days not rolled up yet are kept whatever their age.
        let cutoff = today - Duration::days(settings.raw_retention_days);
        let mut tx = self.db.begin().await?;
        report.pruned_events =
            tx.execute(query("DELETE FROM web_events WHERE day < $1 AND day IN (SELECT day FROM web_rollups)").bind(cutoff)).await?;
        tx.execute(query("DELETE FROM web_customer_views WHERE at < $1").bind(now - Duration::days(settings.customer_retention_days)))
            .await?;
        tx.commit().await?;
        Ok(report)
    }
}

/// A stitched customer's view, as copied into `web_customer_views`.
#[derive(serde::Deserialize, Debug, Clone, sqlx::FromRow)]
struct CustomerView {
    customer_id: i64,
    event_key: String,
    site_id: i64,
    at: DateTime<Utc>,
    kind: String,
    path: String,
    title: Option<String>,
    event_name: Option<String>,
    category: Option<String>,
}

async fn insert_customer_views(tx: &mut crate::db::Tx, engine: crate::Engine, rows: &[CustomerView]) -> Result<()> {
    for chunk in rows.chunks(CHUNK) {
        let mut q: Query = query(format!(
            "INSERT INTO web_customer_views (customer_id, event_key, site_id, at, kind, path, title, event_name, category) VALUES {} \
             ON CONFLICT (customer_id, event_key) DO NOTHING",
            engine.values_rows(chunk.len(), 9)
        ));
        for v in chunk {
            let args: [Arg; 9] = [
                v.customer_id.into(),
                v.event_key.as_str().into(),
                v.site_id.into(),
                v.at.into(),
                v.kind.as_str().into(),
                v.path.as_str().into(),
                v.title.clone().into(),
                v.event_name.clone().into(),
                v.category.clone().into(),
            ];
            for a in args {
                q.push(a);
            }
        }
        tx.execute(q).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_patterns_and_tokens() {
        let (origin, path, q) = parse_url("HTTPS://Shop.Example.com/menu/%E9%85%92?utm_campaign=spring+sale&x#top").unwrap();
        assert_eq!((origin.as_str(), path.as_str()), ("https://shop.example.com", "/menu/酒"));
        assert_eq!(q[0], ("utm_campaign".to_owned(), "spring sale".to_owned()));
        assert!(parse_url("javascript:alert(1)").is_none());
        assert_eq!(parse_url("http://a.com").unwrap().1, "/");
        assert!(pattern_matches("/menu/", "/menu/wine"));
        assert!(pattern_matches("*/wine*", "/menu/wine/red"));
        assert!(!pattern_matches("/menu/*/red", "/menu/wine/white"));
        assert_eq!(normalise_origin("HTTPS://Shop.example.com/").as_deref(), Some("https://shop.example.com"));
        assert!(normalise_origin("https://a.com/path").is_none());
        let now = Utc::now();
        let secret = b"s3cret";
        let exp = (now + Duration::minutes(10)).timestamp();
        let sig = hex(&hmac(secret, format!("identify:7:{exp}").as_bytes()));
        assert_eq!(Store::verify_identity_token(secret, &format!("7.{exp}.{sig}"), now), Some(7));
        assert_eq!(Store::verify_identity_token(secret, &format!("8.{exp}.{sig}"), now), None, "another customer: forged");
        assert_eq!(Store::verify_identity_token(b"other", &format!("7.{exp}.{sig}"), now), None);
        assert_eq!(Store::verify_identity_token(secret, &format!("7.{exp}.{sig}"), now + Duration::minutes(11)), None, "expired");
        assert_eq!(Store::verify_identity_token(secret, "7.x.é", now), None);
        let day = NaiveDate::from_ymd_opt(2026, 5, 1).unwrap();
        let a = visitor_id(secret, day, 1, "10.0.0.1", "UA");
        assert_eq!(a, visitor_id(secret, day, 1, "10.0.0.1", "UA"));
        assert_ne!(a, visitor_id(secret, day.succ_opt().unwrap(), 1, "10.0.0.1", "UA"), "the salt rotates daily");
        assert_ne!(a, visitor_id(secret, day, 2, "10.0.0.1", "UA"));
    }
}
