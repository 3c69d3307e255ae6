//! Real receivers for the delivery tests: an SMTP server (aiosmtpd in `target/smtp-venv`, see
//! `.ci/run`) and a webhook receiver (a small axum server) on loopback.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A running SMTP sink: its port and the folder of the messages it accepted.
pub struct SmtpSink {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Child,
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Python of the virtualenv `.ci/run` makes (with aiosmtpd).
fn venv_python() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/smtp-venv/bin/python")
}

impl SmtpSink {
    /// Starts the sink on a free loopback port and waits until it listens.
    pub fn start() -> SmtpSink {
        let python = venv_python();
        assert!(python.exists(), "{} missing: run `bash .ci/run` (it installs aiosmtpd into target/smtp-venv)", python.display());
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port");
        let dir = tempfile::tempdir().expect("temp dir");
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support/smtp_sink.py");
        let mut child = Command::new(python)
            .arg(script)
            .arg(port.to_string())
            .arg(dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the SMTP sink");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("sink output");
        assert_eq!(line.trim(), "READY", "the SMTP sink did not start");
        SmtpSink { port, dir, child }
    }

    /// The messages accepted so far (raw).
    pub fn messages(&self) -> Vec<String> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .expect("sink dir")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        files.sort();
        files.iter().map(|p| std::fs::read_to_string(p).expect("message")).collect()
    }
}

/// A header of a raw message (first occurrence, unfolded).
pub fn header(raw: &str, name: &str) -> Option<String> {
    let head = raw.split("\r\n\r\n").next().unwrap_or(raw);
    let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
    unfolded.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
    })
}

/// One request the webhook receiver got.
#[derive(Debug, Clone)]
pub struct Hook {
    pub signature: String,
    pub idempotency_key: String,
    pub body: Vec<u8>,
    pub json: serde_json::Value,
}

/// A webhook receiver: records every request; answers with the status `answer` gives for it.
pub struct Receiver {
    pub url: String,
    pub got: Arc<Mutex<Vec<Hook>>>,
}

/// Starts a receiver on a loopback port.
pub async fn receiver(answer: fn(&serde_json::Value, usize) -> u16) -> Receiver {
    use axum::body::Bytes;
    use axum::http::{HeaderMap, StatusCode};
    let got: Arc<Mutex<Vec<Hook>>> = Arc::default();
    let g = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let g = g.clone();
            async move {
                let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                let h = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
                let mut list = g.lock().unwrap();
                let earlier = list.iter().filter(|x| x.json["message_id"] == json["message_id"]).count();
                let status = answer(&json, earlier);
                list.push(Hook { signature: h("x-patron-signature"), idempotency_key: h("idempotency-key"), body: body.to_vec(), json });
                StatusCode::from_u16(status).unwrap_or(StatusCode::OK)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Receiver { url: format!("http://{addr}/hook"), got }
}

/// A running OpenID Connect provider (panva/oidc-provider under node, installed into
/// `target/oidc-provider` by `.ci/run`; the script is `tests/support/oidc/provider.mjs`).
pub struct OidcProvider {
    /// Its issuer, `http://127.0.0.1:PORT`.
    pub issuer: String,
    child: Child,
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl OidcProvider {
    /// Starts the provider with one client (`client_id`, `client_secret`, `redirect_uri`) and
    /// waits until it listens.
    pub fn start(redirect_uri: &str, client_id: &str, client_secret: &str) -> OidcProvider {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/oidc-provider");
        assert!(
            dir.join("node_modules/oidc-provider").exists(),
            "{} missing: run `bash .ci/run` (it installs oidc-provider from tests/support/oidc/package-lock.json)",
            dir.display()
        );
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support/oidc/provider.mjs");
        // Node itself now and then hangs before it listens (its main thread parked on a lock
        // inside startup, seen about once in 40 starts on a loaded machine): a start that has
        // not said READY within 30 s is killed and tried again, rather than hanging the suite.
        for _ in 0..3 {
            let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port");
            let mut child = Command::new("node")
                .arg(&script)
                .arg(port.to_string())
                .arg(redirect_uri)
                .arg(client_id)
                .arg(client_secret)
                .env("OIDC_PROVIDER_DIR", &dir)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("start node with the OIDC provider");
            let mut out = BufReader::new(child.stdout.take().expect("stdout"));
            let (ready_tx, ready_rx) = std::sync::mpsc::channel();
            // Reads until READY (then tells), and afterwards keeps reading what it prints (its
            // notices): a closed pipe would end node at its next line.
            std::thread::spawn(move || {
                let mut line = String::new();
                while out.read_line(&mut line).unwrap_or(0) > 0 {
                    if line.trim() == "READY" {
                        let _ = ready_tx.send(());
                        let _ = std::io::copy(&mut out, &mut std::io::sink());
                        return;
                    }
                    line.clear();
                }
            });
            if ready_rx.recv_timeout(Duration::from_secs(30)).is_ok() {
                return OidcProvider { issuer: format!("http://127.0.0.1:{port}"), child };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("the OIDC provider did not start (3 tries)");
    }

    /// The account that logs in at the provider next (as a person would type it there).
    pub async fn next_login(&self, email: &str) {
        let r = reqwest::Client::new()
            .post(format!("{}/test/next-login", self.issuer))
            .query(&[("email", email)])
            .send()
            .await
            .expect("the provider answers");
        assert_eq!(r.status().as_u16(), 204);
    }
}
