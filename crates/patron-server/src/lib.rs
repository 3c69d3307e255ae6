//! patron's HTTP server: the REST API under `/api/v1` (documented by the OpenAPI document at
//! `/api/v1/openapi.json`), `/healthz`, and the server-rendered web UI under `/ui` with its
//! assets embedded in the binary.

pub mod api;
pub mod auth;
pub mod collect;
pub mod delivery;
pub mod error;
pub mod i18n;
pub mod jobs;
pub mod metrics;
pub mod outbox;
pub mod ratelimit;
pub mod sso;
pub mod ui;
pub mod webhooks;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use patron_store::Store;
use tokio::net::TcpListener;

/// Server settings.
#[derive(Clone)]
pub struct ServerConfig {
    /// How long a login lasts.
    pub session_ttl: chrono::Duration,
    /// Mark cookies `Secure` (set when served over HTTPS behind a proxy).
    pub secure_cookies: bool,
    /// Largest import upload, bytes.
    pub max_upload_bytes: usize,
    /// The address customers reach the server at, for the links they are sent
    /// (`https://crm.example.com`); without it, links use the address the request came to.
    pub public_url: Option<String>,
    /// How long a client may take to send a request's headers (and how long a kept-alive
    /// connection may idle before its next request).
    pub header_read_timeout: std::time::Duration,
    /// How long a client may take to send a request's body.
    pub body_read_timeout: std::time::Duration,
    /// Connections served at once; more wait to be accepted.
    pub max_connections: usize,
    /// The shared secret of signed webhooks (inbound SMS checks it; `--outbound-secret`).
    pub outbound_secret: Option<String>,
    /// `POST /collect`: events a client address may send at once, and per minute sustained.
    pub collect_burst: u32,
    /// See `collect_burst`.
    pub collect_per_minute: u32,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            session_ttl: chrono::Duration::hours(12),
            secure_cookies: false,
            max_upload_bytes: 512 * 1024 * 1024,
            public_url: None,
            header_read_timeout: std::time::Duration::from_secs(10),
            body_read_timeout: std::time::Duration::from_secs(300),
            max_connections: 1024,
            outbound_secret: None,
            collect_burst: 120,
            collect_per_minute: 600,
        }
    }
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("session_ttl_minutes", &self.session_ttl.num_minutes())
            .field("secure_cookies", &self.secure_cookies)
            .field("max_upload_bytes", &self.max_upload_bytes)
            .field("public_url", &self.public_url)
            .field("header_read_timeout", &self.header_read_timeout)
            .field("body_read_timeout", &self.body_read_timeout)
            .field("max_connections", &self.max_connections)
            .field("collect_per_minute", &self.collect_per_minute)
            .field("outbound_secret", &self.outbound_secret.as_ref().map(|_| "(set)"))
            .finish()
    }
}

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    /// The store.
    pub store: Store,
    /// Settings.
    pub config: Arc<ServerConfig>,
    /// Templates of the web UI.
    pub templates: Arc<minijinja::Environment<'static>>,
    /// The rate limit of the endpoints customers reach without a login.
    pub limiter: Arc<ratelimit::RateLimiter>,
    /// Failed logins per address and per account.
    pub logins: Arc<ratelimit::LoginThrottle>,
    /// Requests and imports counted for `/metrics`.
    pub metrics: Arc<metrics::Metrics>,
    /// The write-behind queue of web analytics events (`/collect`).
    pub collector: Arc<collect::Collector>,
    /// The rate limit of `/collect`.
    pub collect_limiter: Arc<ratelimit::RateLimiter>,
}

impl AppState {
    /// State over `store` with `config`.
    pub fn new(store: Store, config: ServerConfig) -> Self {
        let templates = Arc::new(ui::templates(store.config.business_tz));
        let collect_limiter = Arc::new(ratelimit::RateLimiter::new(config.collect_burst, config.collect_per_minute));
        AppState {
            store,
            config: Arc::new(config),
            templates,
            limiter: Arc::new(ratelimit::RateLimiter::default()),
            logins: Arc::new(ratelimit::LoginThrottle::default()),
            metrics: Arc::new(metrics::Metrics::default()),
            collector: Arc::new(collect::Collector::default()),
            collect_limiter,
        }
    }
}

/// The whole application: API, UI, health check and assets.
pub fn app(state: AppState) -> Router {
    let json_limit = DefaultBodyLimit::max(10 * 1024 * 1024);
    Router::new()
        .merge(api::router(&state).layer(json_limit))
        .merge(ui::router(&state))
        .merge(collect::router(&state))
        .route("/metrics", axum::routing::get(metrics::admin_metrics))
        // Innermost of the layers below, so it sees each route's pattern and its final status.
        .layer(axum::middleware::from_fn_with_state(state.clone(), metrics::track))
        .layer(axum::middleware::from_fn(error::limits))
        // A body that trickles in slower than this is cut off (a slowloris on the body).
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(state.config.body_read_timeout))
        .layer(axum::middleware::from_fn_with_state(state.clone(), common_headers))
        .layer(tower_http::trace::TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
            // Method and path only: query strings may hold search terms (names, mobiles).
            tracing::info_span!("http", method = %req.method(), path = %req.uri().path())
        }))
        .with_state(state)
}

/// Headers every response carries: no content sniffing (API and UI alike), and behind HTTPS
/// (`--secure-cookies`) Strict-Transport-Security so browsers keep to it.
async fn common_headers(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::http::{header, HeaderValue};
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if state.config.secure_cookies {
        h.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000; includeSubDomains"));
    }
    res
}

/// Serves `app` on `listener` until ctrl-c / SIGTERM, then lets open requests finish (up to
/// 30 s). A client that does not send its request's headers within the header-read timeout is
/// disconnected (slowloris: half a header, or nothing, used to hold a connection for minutes),
/// and at most `max_connections` are served at once, so a flood of slow connections cannot
/// starve the others.
pub async fn serve(listener: TcpListener, state: AppState) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let config = state.config.clone();
    let (collector, store) = (state.collector.clone(), state.store.clone());
    let app = app(state);
    let slots = Arc::new(tokio::sync::Semaphore::new(config.max_connections.max(1)));
    let (closing, closed) = tokio::sync::watch::channel(false);
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: not fatal for the server.
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let app = app.clone();
        let mut closed = closed.clone();
        let header_read_timeout = config.header_read_timeout;
        tokio::spawn(async move {
            let _slot = permit;
            let service = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(axum::extract::ConnectInfo(peer));
                let mut app = app.clone();
                async move { tower_service::Service::call(&mut app, req.map(axum::body::Body::new)).await }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_read_timeout)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(error = %e, "connection ended");
                    }
                }
                _ = closed.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
    let _ = closing.send(true);
    // Every slot back means every connection has finished.
    let all = u32::try_from(config.max_connections.max(1)).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(30), slots.acquire_many(all)).await;
    // Web events still queued are written before the process ends.
    collector.flush(&store).await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
