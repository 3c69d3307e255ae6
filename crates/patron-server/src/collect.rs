//! `POST /collect` and `/js/p.js`: first-party web analytics (issue 19 §8, docs/web-analytics.md).
//!
//! `/collect` needs no login: it is rate-limited per client address, answers CORS only for the
//! configured sites' origins, drops events under Do-Not-Track or Global Privacy Control and from
//! bots (by user agent), and answers 202 as soon as the event is checked and queued — the same
//! answer whether it was kept, dropped or carried a forged token (no oracle).
//!
//! Writes are batched by the [`Collector`]: events wait in memory until 100 ms have passed since
//! the first of a batch or [`BATCH`] have queued, then go in one transaction of multi-row
//! inserts; the queue is flushed on shutdown. Durability decision: these are analytics, not
//! money — a crash may lose the last ~100 ms of events, and a full queue drops new ones.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use patron_store::web::{self, Hit, HitKind, Site, View, WebSettings};
use patron_store::Store;
use serde::Deserialize;

use crate::error::ApiError;
use crate::AppState;

/// Events written per transaction at most (and the queue length that flushes at once).
pub const BATCH: usize = 1000;
/// How long the first event of a batch waits for others.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// Events queued at most; beyond it new events are dropped (the database is not keeping up).
const MAX_QUEUE: usize = 200_000;
/// How long the sites and settings are cached.
const CACHE_FOR: Duration = Duration::from_secs(30);

/// The snippet (`/js/p.js`), hand-minified: page views (with SPA navigation), clicks on
/// `data-patron-event` elements, `patron.identify(token)`; nothing under DNT or GPC; a
/// first-party id only with `data-cookie`.
pub const SNIPPET: &str = include_str!("p.js");

/// The sites by id and the settings, with when they were read.
type Cached = (Instant, Arc<HashMap<i64, Site>>, Arc<WebSettings>);

/// The write-behind queue of events and the caches `/collect` needs.
#[derive(Default)]
pub struct Collector {
    queue: Mutex<Vec<Hit>>,
    wake: tokio::sync::Notify,
    full: tokio::sync::Notify,
    started: AtomicBool,
    writing: tokio::sync::Mutex<()>,
    secret: tokio::sync::OnceCell<Vec<u8>>,
    cache: Mutex<Option<Cached>>,
    /// Events dropped because the queue was full or a batch failed to write.
    pub dropped: AtomicU64,
}

impl Collector {
    /// Queues a hit; the first one starts the writer.
    pub fn enqueue(self: &Arc<Self>, store: &Store, hit: Hit) {
        let n = {
            let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            if q.len() >= MAX_QUEUE {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            q.push(hit);
            q.len()
        };
        if !self.started.swap(true, Ordering::SeqCst) {
            tokio::spawn(self.clone().run(store.clone()));
        }
        if n == 1 {
            self.wake.notify_one();
        }
        if n >= BATCH {
            self.full.notify_one();
        }
    }

    fn queued(&self) -> usize {
        self.queue.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    async fn run(self: Arc<Self>, store: Store) {
        loop {
            if self.queued() == 0 {
                self.wake.notified().await;
            }
            let deadline = tokio::time::Instant::now() + FLUSH_EVERY;
            while self.queued() < BATCH {
                tokio::select! {
                    _ = tokio::time::sleep_until(deadline) => break,
                    _ = self.full.notified() => {}
                }
            }
            self.flush(&store).await;
        }
    }

    /// Writes everything queued now (the writer's rounds, and shutdown).
    pub async fn flush(&self, store: &Store) {
        let _one_writer = self.writing.lock().await;
        loop {
            let batch: Vec<Hit> = {
                let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
                let n = q.len().min(BATCH);
                q.drain(..n).collect()
            };
            if batch.is_empty() {
                return;
            }
            if let Err(e) = store.store_web_hits(&batch).await {
                self.dropped.fetch_add(batch.len() as u64, Ordering::Relaxed);
                tracing::warn!(error = %e, events = batch.len(), "web events not written");
            }
        }
    }

    /// Forgets the cached sites and settings (after a change through the API).
    pub fn forget(&self) {
        *self.cache.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    async fn sites(&self, store: &Store) -> Result<(Arc<HashMap<i64, Site>>, Arc<WebSettings>), ApiError> {
        if let Some((at, sites, settings)) = self.cache.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            if at.elapsed() < CACHE_FOR {
                return Ok((sites.clone(), settings.clone()));
            }
        }
        let sites: Arc<HashMap<i64, Site>> = Arc::new(store.web_sites().await?.into_iter().map(|s| (s.id, s)).collect());
        let settings = Arc::new(store.web_settings().await?);
        *self.cache.lock().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), sites.clone(), settings.clone()));
        Ok((sites, settings))
    }

    async fn secret(&self, store: &Store) -> Result<&[u8], ApiError> {
        Ok(self.secret.get_or_try_init(|| store.web_secret()).await?.as_slice())
    }
}

/// The public routes: `/collect` (rate-limited) and `/js/p.js`.
pub fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/collect", post(collect).options(preflight))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), limit))
        .layer(axum::extract::DefaultBodyLimit::max(16 * 1024))
        .route("/js/p.js", get(snippet))
}

async fn snippet() -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("application/javascript; charset=utf-8")),
            (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600")),
        ],
        SNIPPET,
    )
        .into_response()
}

/// 429 in the error envelope once the address's `/collect` bucket is empty.
async fn limit(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if state.collect_limiter.allow(crate::ratelimit::client_ip(&req), Instant::now()) {
        next.run(req).await
    } else {
        ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "too many events from your address; try again in a minute")
            .into_response()
    }
}

/// An event as the snippet sends it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Event {
    site: i64,
    #[serde(rename = "type")]
    kind: String,
    url: Option<String>,
    referrer: Option<String>,
    title: Option<String>,
    #[serde(alias = "name")]
    event: Option<String>,
    token: Option<String>,
    /// The first-party id of cookie mode.
    visitor: Option<String>,
}

/// User agents of crawlers, monitors and scripts (case-insensitive substrings).
const BOTS: &[&str] = &[
    "bot",
    "crawl",
    "spider",
    "slurp",
    "headless",
    "lighthouse",
    "curl/",
    "wget",
    "python-requests",
    "go-http-client",
    "java/",
    "okhttp",
    "phantomjs",
    "facebookexternalhit",
    "preview",
    "monitor",
    "pingdom",
    "uptime",
    "scrapy",
];

/// Whether a user agent is a bot's (or missing).
pub fn is_bot(user_agent: Option<&str>) -> bool {
    match user_agent {
        None => true,
        Some(ua) => {
            let ua = ua.to_ascii_lowercase();
            ua.trim().is_empty() || BOTS.iter().any(|b| ua.contains(b))
        }
    }
}

fn header_is(headers: &HeaderMap, name: &str, value: &str) -> bool {
    headers.get(name).and_then(|v| v.to_str().ok()).is_some_and(|v| v.trim() == value)
}

fn origin_of(headers: &HeaderMap) -> Option<String> {
    headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()).and_then(web::normalise_origin)
}

fn cors(mut res: Response, origin: Option<&str>) -> Response {
    if let Some(o) = origin.and_then(|o| HeaderValue::from_str(o).ok()) {
        let h = res.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o);
        h.insert(header::VARY, HeaderValue::from_static("Origin"));
    }
    res
}

/// CORS preflight: allowed for the configured sites' origins only.
async fn preflight(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let (sites, _) = match state.collector.sites(&state.store).await {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    match origin_of(&headers) {
        Some(o) if sites.values().any(|s| s.origin == o) => {
            let mut res = cors(StatusCode::NO_CONTENT.into_response(), Some(&o));
            let h = res.headers_mut();
            h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("POST"));
            h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("content-type"));
            h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400"));
            res
        }
        _ => ApiError::new(StatusCode::FORBIDDEN, "origin_not_allowed", "this origin is not a configured site").into_response(),
    }
}

fn invalid(field: &str, message: &str) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message.to_owned()).field(field)
}

fn text(v: Option<String>, max: usize) -> Option<String> {
    v.map(|s| s.trim().chars().filter(|c| *c != '\0').take(max).collect::<String>()).filter(|s| !s.is_empty())
}

/// `POST /collect`: one event, answered 202.
async fn collect(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let origin = origin_of(&headers);
    match accept(&state, peer.ip(), &headers, origin.as_deref(), &body).await {
        Ok(allowed) => cors(StatusCode::ACCEPTED.into_response(), if allowed { origin.as_deref() } else { None }),
        Err(e) => e.into_response(),
    }
}

/// Checks and queues an event; returns whether the request's origin is the site's (for CORS).
async fn accept(state: &AppState, ip: std::net::IpAddr, headers: &HeaderMap, origin: Option<&str>, body: &[u8]) -> Result<bool, ApiError> {
    let mut value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", "the body must be a JSON object"))?;
    crate::error::integral_floats_as_integers(&mut value);
    let e: Event = crate::error::from_json(value, "")?;
    let (sites, settings) = state.collector.sites(&state.store).await?;
    let site = sites.get(&e.site).ok_or_else(|| invalid("site", "no such site"))?;
    if origin.is_some_and(|o| o != site.origin) {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "origin_not_allowed", "this origin is not the site's"));
    }
    let kind = match e.kind.as_str() {
        "pageview" => "pageview",
        "click" | "event" => "click",
        "identify" => "identify",
        _ => return Err(invalid("type", "type must be pageview, click or identify")),
    };
    let url = text(e.url, 2000);
    let parsed = match url.as_deref() {
        Some(u) => Some(web::parse_url(u).ok_or_else(|| invalid("url", "url must be an absolute http(s) URL"))?),
        None if kind == "identify" => None,
        None => return Err(invalid("url", "url is required")),
    };
    let event_name = text(e.event, 100);
    if kind == "click" && event_name.is_none() {
        return Err(invalid("event", "a click needs the event's name"));
    }
    let token = text(e.token, 200);
    if kind == "identify" && token.is_none() {
        return Err(invalid("token", "identify needs the token"));
    }
    let browser_id =
        e.visitor.filter(|v| (8..=64).contains(&v.len()) && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    // The visitor's choices and bots: dropped, with the same answer as a kept event.
    if header_is(headers, "dnt", "1") || header_is(headers, "sec-gpc", "1") {
        return Ok(true);
    }
    let ua = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok());
    if is_bot(ua) {
        return Ok(true);
    }
    let store = &state.store;
    let secret = state.collector.secret(store).await?;
    let now = store.now();
    let visitor = match browser_id {
        Some(id) if site.cookie_mode => web::cookie_visitor_id(secret, site.id, &id),
        _ => web::visitor_id(secret, now.with_timezone(&store.config.business_tz).date_naive(), site.id, &ip.to_string(), ua.unwrap_or("")),
    };
    let what = if kind == "identify" {
        match token.as_deref().and_then(|t| Store::verify_identity_token(secret, t, now)) {
            Some(customer_id) => HitKind::Identify(customer_id),
            // A forged or expired token links nothing, and says so to no one.
            None => return Ok(true),
        }
    } else {
        let Some((page_origin, path, query)) = parsed else { return Ok(true) };
        let utm = |k: &str| text(query.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()), 200);
        let referrer_host = text(e.referrer, 2000)
            .and_then(|r| web::parse_url(&r))
            .map(|(o, _, _)| o.split_once("://").map(|(_, h)| h.to_owned()).unwrap_or(o))
            .filter(|h| page_origin.split_once("://").map(|(_, own)| own != h).unwrap_or(true));
        let url = url.unwrap_or_default();
        let url = url.split('#').next().unwrap_or("").to_owned();
        HitKind::View(Box::new(View {
            kind,
            category: settings.category_of(&path),
            path: path.chars().take(500).collect(),
            url,
            title: text(e.title, 300),
            referrer_host,
            event_name,
            utm_source: utm("utm_source"),
            utm_medium: utm("utm_medium"),
            utm_campaign: utm("utm_campaign"),
            utm_term: utm("utm_term"),
            utm_content: utm("utm_content"),
        }))
    };
    state.collector.enqueue(store, Hit { site_id: site.id, visitor, at: now, what });
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bots_and_the_snippet() {
        assert!(is_bot(None));
        assert!(is_bot(Some("Mozilla/5.0 (compatible; Googlebot/2.1)")));
        assert!(is_bot(Some("Mozilla/5.0 HeadlessChrome/120.0")));
        assert!(!is_bot(Some("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36")));
        assert!(SNIPPET.len() < 2048, "the snippet is {} bytes", SNIPPET.len());
    }
}
