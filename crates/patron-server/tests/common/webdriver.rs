//! A small W3C WebDriver client over reqwest, enough to drive Debian's chromedriver and headless
//! Chromium in tests (navigation, finding elements, typing, clicking, reading text, screenshots).
//! Written here rather than adding a WebDriver crate: those pull a TLS stack we do not need on
//! loopback, and the handful of calls below is the whole protocol surface the tests use.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

/// The element key of the W3C protocol.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A chromedriver process and one browser session.
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::Client,
    _profile: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session.
    pub async fn start() -> Browser {
        Browser::start_with(&[]).await
    }

    /// Starts chromedriver and a headless Chromium session with more command-line switches
    /// (`--user-agent=…`: web analytics drops "HeadlessChrome" as a bot).
    #[allow(dead_code)]
    pub async fn start_with(extra_args: &[&str]) -> Browser {
        let driver_bin = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
        let port = free_port();
        let driver = Command::new(&driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {driver_bin} ({e}); install chromium and chromium-driver (see .ci/run)"));
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().expect("http client");
        for _ in 0..200 {
            if http.get(format!("{base}/status")).send().await.map(|r| r.status().is_success()).unwrap_or(false) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = tempfile::tempdir().expect("profile dir");
        let chrome_bin = std::env::var("CHROME_BIN").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let mut args: Vec<String> = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1400,1000",
        ]
        .map(str::to_owned)
        .to_vec();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        args.extend(extra_args.iter().map(|a| (*a).to_owned()));
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": chrome_bin, "args": args }
        }}});
        let res: Value =
            http.post(format!("{base}/session")).json(&caps).send().await.expect("new session").json().await.expect("session json");
        let session = res["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {res}")).to_owned();
        Browser { driver, base, session, http, _profile: profile }
    }

    async fn cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        self.try_cmd(method, path, body).await.unwrap_or_else(|(err, message)| panic!("webdriver {path}: {err}: {message}"))
    }

    /// One command; a protocol error comes back as (error, message) instead of a panic.
    async fn try_cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<Value, (String, String)> {
        let url = format!("{}/session/{}{}", self.base, self.session, path);
        let mut req = self.http.request(method, url);
        req = req.json(&body.unwrap_or(json!({})));
        let v: Value = req.send().await.expect("webdriver request").json().await.expect("webdriver json");
        if let Some(err) = v["value"].get("error") {
            return Err((err.as_str().unwrap_or_default().to_owned(), v["value"]["message"].to_string()));
        }
        Ok(v["value"].clone())
    }

    /// Runs a command on the element matching `css`, finding it again when htmx replaced it
    /// between the lookup and the command: "stale element reference", or, from ChromeDriver
    /// when the swap lands mid-command, an "unknown error" whose node "does not belong to the
    /// document" (seen on the import report's `#r-created` while the report was polled).
    async fn on_element(&self, method: reqwest::Method, css: &str, action: &str, body: Option<Value>) -> Value {
        let mut last = (String::new(), String::new());
        for _ in 0..50 {
            let id = self.find(css).await;
            match self.try_cmd(method.clone(), &format!("/element/{id}/{action}"), body.clone()).await {
                Ok(v) => return v,
                Err(e)
                    if e.0 == "stale element reference" || (e.0 == "unknown error" && e.1.contains("does not belong to the document")) =>
                {
                    last = e
                }
                Err((err, message)) => panic!("webdriver {css} {action}: {err}: {message}"),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("webdriver {css} {action}: element kept going stale: {}: {}", last.0, last.1);
    }

    /// Resizes the window (a phone: 390 × 844).
    pub async fn set_window_size(&self, width: u32, height: u32) {
        self.cmd(reqwest::Method::POST, "/window/rect", Some(json!({ "width": width, "height": height }))).await;
    }

    /// Runs a script in the page and returns its value.
    pub async fn script(&self, js: &str) -> Value {
        self.cmd(reqwest::Method::POST, "/execute/sync", Some(json!({ "script": js, "args": [] }))).await
    }

    /// Opens a URL.
    pub async fn goto(&self, url: &str) {
        self.cmd(reqwest::Method::POST, "/url", Some(json!({ "url": url }))).await;
    }

    /// The current URL.
    pub async fn url(&self) -> String {
        self.cmd(reqwest::Method::GET, "/url", None).await.as_str().unwrap_or_default().to_owned()
    }

    /// Waits (up to 10 s) for an element matching a CSS selector and returns its id.
    pub async fn find(&self, css: &str) -> String {
        for _ in 0..100 {
            let url = format!("{}/session/{}/element", self.base, self.session);
            let v: Value = self
                .http
                .post(url)
                .json(&json!({"using": "css selector", "value": css}))
                .send()
                .await
                .expect("find")
                .json()
                .await
                .expect("find json");
            if let Some(id) = v["value"][ELEMENT].as_str() {
                return id.to_owned();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no element {css} on {}", self.url().await);
    }

    /// Types into an element.
    pub async fn type_into(&self, css: &str, text: &str) {
        self.on_element(reqwest::Method::POST, css, "clear", None).await;
        self.on_element(reqwest::Method::POST, css, "value", Some(json!({ "text": text }))).await;
    }

    /// Clicks an element.
    pub async fn click(&self, css: &str) {
        self.on_element(reqwest::Method::POST, css, "click", None).await;
    }

    /// The visible text of an element.
    pub async fn text(&self, css: &str) -> String {
        self.on_element(reqwest::Method::GET, css, "text", None).await.as_str().unwrap_or_default().to_owned()
    }

    /// Waits (up to 10 s) until the element's text contains `needle`; returns the text.
    pub async fn wait_text(&self, css: &str, needle: &str) -> String {
        let mut last = String::new();
        for _ in 0..100 {
            last = self.text(css).await;
            if last.contains(needle) {
                return last;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{css} never contained {needle:?}; last text: {last:?}");
    }

    /// Sets a cookie on the current site.
    pub async fn add_cookie(&self, name: &str, value: &str) {
        self.cmd(reqwest::Method::POST, "/cookie", Some(json!({"cookie": {"name": name, "value": value, "path": "/"}}))).await;
    }

    /// Sends a file path to a file input.
    pub async fn upload(&self, css: &str, path: &std::path::Path) {
        self.on_element(reqwest::Method::POST, css, "value", Some(json!({ "text": path.display().to_string() }))).await;
    }

    /// Saves a PNG screenshot (for looking at the page when a test is written or fails).
    pub async fn screenshot(&self, path: &std::path::Path) {
        let b64 = self.cmd(reqwest::Method::GET, "/screenshot", None).await;
        if let Some(s) = b64.as_str() {
            let _ = std::fs::write(path, decode_base64(s));
        }
    }

    /// Ends the session and the driver.
    pub async fn quit(mut self) {
        let _ = self.http.delete(format!("{}/session/{}", self.base, self.session)).send().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
    }
}

fn decode_base64(s: &str) -> Vec<u8> {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut buf = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        let Some(v) = T.iter().position(|&x| x == c) else { continue };
        buf = (buf << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
        }
    }
    out
}
