//! patron's HTTP server: the REST API under `/api/v1` (documented by the OpenAPI document at
//! `/api/v1/openapi.json`), `/healthz`, and the server-rendered web UI under `/ui` with its
//! assets embedded in the binary.

pub mod api;
pub mod auth;
pub mod error;
pub mod i18n;
pub mod jobs;
pub mod ratelimit;
pub mod ui;

use std::net::SocketAddr;
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
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig { session_ttl: chrono::Duration::hours(12), secure_cookies: false, max_upload_bytes: 512 * 1024 * 1024, public_url: None }
    }
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("session_ttl_minutes", &self.session_ttl.num_minutes())
            .field("secure_cookies", &self.secure_cookies)
            .field("max_upload_bytes", &self.max_upload_bytes)
            .field("public_url", &self.public_url)
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
}

impl AppState {
    /// State over `store` with `config`.
    pub fn new(store: Store, config: ServerConfig) -> Self {
        let templates = Arc::new(ui::templates(store.config.business_tz));
        AppState { store, config: Arc::new(config), templates, limiter: Arc::new(ratelimit::RateLimiter::default()), logins: Arc::new(ratelimit::LoginThrottle::default()) }
    }
}

/// The whole application: API, UI, health check and assets.
pub fn app(state: AppState) -> Router {
    let json_limit = DefaultBodyLimit::max(10 * 1024 * 1024);
    Router::new()
        .merge(api::router(&state).layer(json_limit))
        .merge(ui::router(&state))
        .layer(axum::middleware::from_fn(error::limits))
        .layer(axum::middleware::from_fn_with_state(state.clone(), common_headers))
        .layer(tower_http::trace::TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
            // Method and path only: query strings may hold search terms (names, mobiles).
            tracing::info_span!("http", method = %req.method(), path = %req.uri().path())
        }))
        .with_state(state)
}

/// Headers every response carries: no content sniffing (API and UI alike), and behind HTTPS
/// (`--secure-cookies`) Strict-Transport-Security so browsers keep to it.
async fn common_headers(axum::extract::State(state): axum::extract::State<AppState>, req: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    use axum::http::{header, HeaderValue};
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if state.config.secure_cookies {
        h.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000; includeSubDomains"));
    }
    res
}

/// Serves `app` on `listener` until ctrl-c / SIGTERM.
pub async fn serve(listener: TcpListener, state: AppState) -> std::io::Result<()> {
    let app = app(state).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app).with_graceful_shutdown(shutdown_signal()).await
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
