//! Test support: `spawn_app` starts the real server on a loopback port over a fresh database.
#![allow(dead_code)]

pub mod webdriver;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use patron_server::{AppState, ServerConfig};
use patron_store::testing::TestDb;
use patron_store::users::Role;

/// A running server and what a test needs to talk to it.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// The address.
    pub addr: SocketAddr,
    /// An HTTP client (no cookies).
    pub http: reqwest::Client,
    /// An admin API token.
    pub admin_token: String,
    /// The database (kept alive for the test).
    pub db: TestDb,
}

/// Starts the server over `db` and waits until `/healthz` answers.
pub async fn spawn_app(db: TestDb) -> TestApp {
    spawn_app_with(db, ServerConfig { max_upload_bytes: 20 * 1024 * 1024, ..Default::default() }).await
}

/// [`spawn_app`] with server settings of the test's own.
pub async fn spawn_app_with(db: TestDb, config: ServerConfig) -> TestApp {
    let (_, admin_token) = db.store.create_token("test-admin", Role::Admin, None).await.expect("admin token");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
    let addr = listener.local_addr().expect("local address");
    // Kept-alive connections are dropped after half the server's header read timeout idle: hyper
    // starts that timeout as soon as an answer is sent, so the server closes a connection idle
    // that long, and a request sent on it at that moment fails with an incomplete message (what
    // one Citus leg's failure looked like).
    let idle = config.header_read_timeout / 2;
    let state = AppState::new(db.store.clone(), config);
    tokio::spawn(async move {
        let _ = patron_server::serve(listener, state).await;
    });
    let base = format!("http://{addr}");
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).pool_idle_timeout(idle).build().expect("http client");
    // Readiness by polling, never a fixed sleep.
    for _ in 0..200 {
        if let Ok(r) = http.get(format!("{base}/healthz")).send().await {
            if r.status().is_success() {
                return TestApp { base, addr, http, admin_token, db };
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("server did not become healthy at {base}");
}

impl TestApp {
    /// A request with the admin token.
    pub fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.req_as(&self.admin_token, method, path)
    }
    /// A request with a given token.
    pub fn req_as(&self, token: &str, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}{}", self.base, path)).bearer_auth(token)
    }
    /// GET with the admin token, returning status and JSON.
    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        json_of(self.req(reqwest::Method::GET, path).send().await.expect("request")).await
    }
    /// POST JSON with the admin token.
    pub async fn post(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        json_of(self.req(reqwest::Method::POST, path).json(&body).send().await.expect("request")).await
    }
    /// PUT JSON with the admin token.
    #[allow(dead_code)]
    pub async fn put(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        json_of(self.req(reqwest::Method::PUT, path).json(&body).send().await.expect("request")).await
    }
    /// PATCH JSON with the admin token.
    pub async fn patch(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        json_of(self.req(reqwest::Method::PATCH, path).json(&body).send().await.expect("request")).await
    }
}

/// Status and JSON body (Null when the body is empty or not JSON).
pub async fn json_of(r: reqwest::Response) -> (u16, serde_json::Value) {
    let status = r.status().as_u16();
    let text = r.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::Null))
}

/// Asserts the error envelope and returns its code.
pub fn error_code(body: &serde_json::Value) -> String {
    let e = &body["error"];
    assert!(e.is_object(), "not an error envelope: {body}");
    assert!(e["message"].is_string(), "error without message: {body}");
    assert!(e.get("field").is_some(), "error without field key: {body}");
    e["code"].as_str().unwrap_or_default().to_owned()
}

/// Where browser tests put their screenshots (`target/screenshots`, created if missing).
pub fn screenshots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots");
    let _ = std::fs::create_dir_all(&dir);
    dir
}

/// A logged-in web UI session (the cookie header) of an existing user.
pub async fn ui_login(app: &TestApp, email: &str, password: &str) -> String {
    let browser = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("http client");
    let r = browser.post(format!("{}/ui/login", app.base)).form(&[("email", email), ("password", password)]).send().await.expect("login");
    let cookies: Vec<String> = r
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_owned))
        .collect();
    assert!(!cookies.is_empty(), "login of {email} failed: {}", r.status());
    cookies.join("; ")
}

/// A logged-in web UI session (the cookie header) for a new user of `role`.
pub async fn ui_session(app: &TestApp, email: &str, role: Role) -> String {
    app.db.store.create_user(email, "界面", role, Some("a long enough password")).await.expect("user");
    ui_login(app, email, "a long enough password").await
}

/// A UI request with a session (a form body when `form` is not empty; redirects not followed):
/// the status and the body.
pub async fn ui(app: &TestApp, cookie: &str, method: reqwest::Method, path: &str, form: &[(&str, &str)]) -> (u16, String) {
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("http client");
    let mut r = client.request(method, format!("{}{path}", app.base)).header(reqwest::header::COOKIE, cookie);
    if !form.is_empty() {
        r = r.form(form);
    }
    let r = r.send().await.expect("request");
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

/// The CSRF token of the first form on a page.
pub fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a form with a CSRF token") + "name=\"csrf\" value=\"".len();
    html[at..].split('"').next().unwrap_or_default().to_owned()
}
