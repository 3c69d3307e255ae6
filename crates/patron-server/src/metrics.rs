//! `/metrics` in the Prometheus text format (issue 14 §3): requests by route and status with
//! latency histograms, the database pool, the scheduler's lag, the outbox depth and import rows.
//!
//! Kept by hand rather than through a metrics crate: a handful of counters and one histogram
//! family do not justify a registry, and the exposition format is a few lines of text. Routes
//! are labelled by their pattern (`/api/v1/customers/{id}`), never by the concrete path, so the
//! number of series stays bounded and no id or search term reaches the scraper.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{MatchedPath, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::AppState;

/// Upper bounds of the latency buckets, seconds.
const BUCKETS: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

#[derive(Default)]
struct Latency {
    /// Cumulative counts per bucket (the last is +Inf).
    buckets: [u64; BUCKETS.len() + 1],
    sum: f64,
    count: u64,
}

/// What one server has counted since it started.
#[derive(Default)]
pub struct Metrics {
    /// (method, route, status) → requests.
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    /// (method, route) → latency.
    latency: Mutex<BTreeMap<(String, String), Latency>>,
    /// (kind, outcome) → import rows.
    import_rows: Mutex<BTreeMap<(String, &'static str), u64>>,
}

/// The scheduler runs beside the server, not inside a request: its last round is process-wide.
static SCHEDULER_LAST_ROUND_MS: AtomicI64 = AtomicI64::new(0);
static SCHEDULER_ROUNDS: AtomicU64 = AtomicU64::new(0);
static SCHEDULER_FAILURES: AtomicU64 = AtomicU64::new(0);
static SCHEDULER_LAST_DURATION_US: AtomicU64 = AtomicU64::new(0);

/// Records a scheduler round (called by [`crate::jobs::spawn_scheduler`]).
pub fn scheduler_round(ok: bool, took: std::time::Duration) {
    SCHEDULER_ROUNDS.fetch_add(1, Ordering::Relaxed);
    if ok {
        SCHEDULER_LAST_ROUND_MS.store(chrono::Utc::now().timestamp_millis(), Ordering::Relaxed);
    } else {
        SCHEDULER_FAILURES.fetch_add(1, Ordering::Relaxed);
    }
    SCHEDULER_LAST_DURATION_US.store(took.as_micros().min(u64::MAX as u128) as u64, Ordering::Relaxed);
}

impl Metrics {
    fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        if let Ok(mut m) = self.requests.lock() {
            *m.entry((method.to_owned(), route.to_owned(), status)).or_default() += 1;
        }
        if let Ok(mut m) = self.latency.lock() {
            let l = m.entry((method.to_owned(), route.to_owned())).or_default();
            for (i, b) in BUCKETS.iter().enumerate() {
                if seconds <= *b {
                    l.buckets[i] += 1;
                }
            }
            l.buckets[BUCKETS.len()] += 1;
            l.sum += seconds;
            l.count += 1;
        }
    }

    /// Counts the rows of one import by outcome (rows of a file that was not written count as
    /// rejected or not at all: `created` and `updated` only when committed).
    pub fn import_rows(&self, r: &patron_store::import::ImportReport) {
        let kind = serde_json::to_value(r.kind).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
        let written = |n: u64| if r.committed { n } else { 0 };
        if let Ok(mut m) = self.import_rows.lock() {
            for (outcome, n) in
                [("created", written(r.created)), ("updated", written(r.updated)), ("unchanged", r.unchanged), ("rejected", r.rejected)]
            {
                *m.entry((kind.clone(), outcome)).or_default() += n;
            }
        }
    }

    /// The exposition text, with the gauges read now from the store.
    pub async fn render(&self, state: &AppState) -> String {
        let mut out = String::with_capacity(8 * 1024);
        out.push_str("# HELP patron_http_requests_total HTTP requests by method, route pattern and status.\n");
        out.push_str("# TYPE patron_http_requests_total counter\n");
        if let Ok(m) = self.requests.lock() {
            for ((method, route, status), n) in m.iter() {
                let _ =
                    writeln!(out, "patron_http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {n}", escape(route));
            }
        }
        out.push_str("# HELP patron_http_request_duration_seconds Time to answer, by method and route pattern.\n");
        out.push_str("# TYPE patron_http_request_duration_seconds histogram\n");
        if let Ok(m) = self.latency.lock() {
            for ((method, route), l) in m.iter() {
                let labels = format!("method=\"{method}\",route=\"{}\"", escape(route));
                for (i, b) in BUCKETS.iter().enumerate() {
                    let _ = writeln!(out, "patron_http_request_duration_seconds_bucket{{{labels},le=\"{b}\"}} {}", l.buckets[i]);
                }
                let _ = writeln!(out, "patron_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}", l.buckets[BUCKETS.len()]);
                let _ = writeln!(out, "patron_http_request_duration_seconds_sum{{{labels}}} {}", l.sum);
                let _ = writeln!(out, "patron_http_request_duration_seconds_count{{{labels}}} {}", l.count);
            }
        }
        out.push_str("# HELP patron_import_rows_total Rows of imports through the API by kind and outcome.\n");
        out.push_str("# TYPE patron_import_rows_total counter\n");
        if let Ok(m) = self.import_rows.lock() {
            for ((kind, outcome), n) in m.iter() {
                let _ = writeln!(out, "patron_import_rows_total{{kind=\"{}\",outcome=\"{outcome}\"}} {n}", escape(kind));
            }
        }
        let pool = state.store.db.pool_stats();
        out.push_str("# HELP patron_db_pool_connections Connections of the database pool by state.\n");
        out.push_str("# TYPE patron_db_pool_connections gauge\n");
        let _ = writeln!(out, "patron_db_pool_connections{{state=\"idle\"}} {}", pool.idle);
        let _ = writeln!(out, "patron_db_pool_connections{{state=\"in_use\"}} {}", pool.size.saturating_sub(pool.idle));
        out.push_str("# HELP patron_db_pool_max_connections The pool's cap.\n");
        out.push_str("# TYPE patron_db_pool_max_connections gauge\n");
        let _ = writeln!(out, "patron_db_pool_max_connections {}", pool.max);

        let last = SCHEDULER_LAST_ROUND_MS.load(Ordering::Relaxed);
        out.push_str("# HELP patron_scheduler_rounds_total Scheduler rounds run by this process, and those that failed.\n");
        out.push_str("# TYPE patron_scheduler_rounds_total counter\n");
        let _ = writeln!(out, "patron_scheduler_rounds_total{{outcome=\"ok\"}} {}", {
            SCHEDULER_ROUNDS.load(Ordering::Relaxed).saturating_sub(SCHEDULER_FAILURES.load(Ordering::Relaxed))
        });
        let _ = writeln!(out, "patron_scheduler_rounds_total{{outcome=\"failed\"}} {}", SCHEDULER_FAILURES.load(Ordering::Relaxed));
        out.push_str("# HELP patron_scheduler_lag_seconds Seconds since this process's scheduler last finished a round (-1: none yet).\n");
        out.push_str("# TYPE patron_scheduler_lag_seconds gauge\n");
        let lag = if last == 0 { -1.0 } else { (chrono::Utc::now().timestamp_millis() - last).max(0) as f64 / 1000.0 };
        let _ = writeln!(out, "patron_scheduler_lag_seconds {lag}");
        out.push_str("# HELP patron_scheduler_last_round_seconds How long the last round took.\n");
        out.push_str("# TYPE patron_scheduler_last_round_seconds gauge\n");
        let _ = writeln!(out, "patron_scheduler_last_round_seconds {}", SCHEDULER_LAST_DURATION_US.load(Ordering::Relaxed) as f64 / 1e6);

        // Gauges read from the database: a failure leaves them out rather than failing the
        // scrape (the scraper then sees the series vanish, which alerts can watch).
        match state.store.operational_gauges().await {
            Ok(g) => {
                out.push_str("# HELP patron_outbox_depth Messages to customers made but not yet delivered.\n");
                out.push_str("# TYPE patron_outbox_depth gauge\n");
                for (kind, n) in &g.outbox_depth {
                    let _ = writeln!(out, "patron_outbox_depth{{kind=\"{}\"}} {n}", escape(kind));
                }
                out.push_str("# HELP patron_events_latest_id The id of the newest domain event.\n");
                out.push_str("# TYPE patron_events_latest_id gauge\n");
                let _ = writeln!(out, "patron_events_latest_id {}", g.latest_event_id);
                out.push_str("# HELP patron_up 1 when the database answered this scrape.\n# TYPE patron_up gauge\npatron_up 1\n");
            }
            Err(e) => {
                tracing::warn!(error = %e, "metrics: database gauges unavailable");
                out.push_str("# HELP patron_up 1 when the database answered this scrape.\n# TYPE patron_up gauge\npatron_up 0\n");
            }
        }
        out
    }
}

/// Label values are route patterns and import kinds (ours), but escape them anyway.
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Counts every request by its route pattern (the middleware of [`crate::app`]).
pub async fn track(State(state): State<AppState>, req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let started = Instant::now();
    let method = req.method().as_str().to_owned();
    // The pattern the router matched; requests that matched nothing share one label so a
    // scanner probing random paths cannot grow the series without bound.
    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "unmatched".to_owned());
    let res = next.run(req).await;
    state.metrics.observe(&method, &route, res.status().as_u16(), started.elapsed().as_secs_f64());
    res
}

/// `GET /metrics` on the main listener: an administrator's API token only.
pub async fn admin_metrics(State(state): State<AppState>, crate::auth::Auth(actor): crate::auth::Auth) -> Response {
    if let Err(e) = crate::auth::require(&actor, patron_store::users::Role::Admin, "read metrics") {
        return e.into_response();
    }
    exposition(&state).await
}

/// `GET /metrics` on `--metrics-listen` (an address only the scraper reaches): no login.
pub async fn open_metrics(State(state): State<AppState>) -> Response {
    exposition(&state).await
}

async fn exposition(state: &AppState) -> Response {
    let body = state.metrics.render(state).await;
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body).into_response()
}

/// The router of a separate metrics listener.
pub fn metrics_app(state: AppState) -> axum::Router {
    axum::Router::new().route("/metrics", axum::routing::get(open_metrics)).with_state(state)
}

/// Serves [`metrics_app`] on `listener` (`patron serve --metrics-listen`).
pub async fn serve_metrics(listener: tokio::net::TcpListener, state: AppState) -> std::io::Result<()> {
    axum::serve(listener, metrics_app(state)).await
}
