//! E-mail over SMTP with lettre: multipart text + HTML, the message id as `Message-ID` (the
//! same on every attempt), and on marketing mail `List-Unsubscribe` with
//! `List-Unsubscribe-Post: List-Unsubscribe=One-Click` (RFC 8058). Plain SMTP (a local relay,
//! with or without AUTH) always; STARTTLS and TLS with the `smtp-tls` feature (rustls).
//! A permanent SMTP reply (5xx) fails the message; anything else is tried again.
//!
//! On a plain relay the messages of a sending round go over **one connection** (opened on the
//! first, checked with a NOOP after an idle second, closed with QUIT at the end of the round,
//! dropped and opened again after any error); TLS relays get a connection per message from
//! lettre's transport.

use std::time::{Duration, Instant};

use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::AsyncSmtpConnection;
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use patron_store::engagement::outbox::{DeliveryOutcome, Outgoing};
use patron_store::engagement::Purpose;

use super::ConfigError;

/// An SMTP relay.
pub struct SmtpAdapter {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// A plain relay: its address and credentials, for the connection kept across a round.
    plain: Option<Plain>,
    timeout: Duration,
    /// The open connection and when it was last used.
    conn: tokio::sync::Mutex<Option<(AsyncSmtpConnection, Instant)>>,
}

struct Plain {
    host: String,
    port: u16,
    credentials: Option<Credentials>,
}

macro_rules! raw_header {
    ($t:ident, $name:literal) => {
        #[derive(Clone)]
        struct $t(String);
        impl lettre::message::header::Header for $t {
            fn name() -> HeaderName {
                HeaderName::new_from_ascii_str($name)
            }
            fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
                Ok($t(s.to_owned()))
            }
            fn display(&self) -> HeaderValue {
                HeaderValue::new(Self::name(), self.0.clone())
            }
        }
    };
}
raw_header!(ListUnsubscribe, "List-Unsubscribe");
raw_header!(ListUnsubscribePost, "List-Unsubscribe-Post");

/// Percent-decoding of the user and password of a URL.
fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Some(v) = std::str::from_utf8(&b[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl SmtpAdapter {
    /// A relay from `smtp://[user:pass@]host[:port]` (`smtps://` and `?tls=required` need the
    /// `smtp-tls` feature).
    pub fn new(url: &str, from: Option<&str>, timeout: Duration) -> Result<SmtpAdapter, ConfigError> {
        let bad = |why: &str| ConfigError(format!("--smtp-url: {why} (expected smtp://user:pass@host:port)"));
        let from: Mailbox = from
            .ok_or_else(|| ConfigError("--smtp-url needs --mail-from (the sender's address)".into()))?
            .parse()
            .map_err(|e| ConfigError(format!("--mail-from: {e}")))?;
        let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("no scheme"))?;
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let rest = rest.trim_end_matches('/');
        let (userinfo, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, rest),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p.parse::<u16>().map_err(|_| bad("bad port"))?)),
            None => (hostport, None),
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let tls = match (scheme, query) {
            ("smtp", "") => false,
            ("smtp", q) if q.contains("tls=required") || q.contains("tls=opportunistic") => true,
            ("smtps", _) => true,
            _ => return Err(bad("unknown scheme or option")),
        };
        let mut builder = if tls {
            #[cfg(feature = "smtp-tls")]
            {
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url).map_err(|e| bad(&e.to_string()))?
            }
            #[cfg(not(feature = "smtp-tls"))]
            {
                return Err(ConfigError(
                    "--smtp-url: TLS needs patron built with the smtp-tls feature; use smtp:// to a local relay".into(),
                ));
            }
        } else {
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host).port(port.unwrap_or(25))
        };
        let credentials = userinfo.map(|u| {
            let (user, pass) = u.split_once(':').unwrap_or((u, ""));
            Credentials::new(decode(user), decode(pass))
        });
        if let Some(c) = &credentials {
            builder = builder.credentials(c.clone());
        }
        let plain = (!tls).then(|| Plain { host: host.to_owned(), port: port.unwrap_or(25), credentials });
        Ok(SmtpAdapter { transport: builder.timeout(Some(timeout)).build(), from, plain, timeout, conn: tokio::sync::Mutex::new(None) })
    }

    /// A new connection to the plain relay, authenticated when credentials are given.
    async fn connect(&self, p: &Plain) -> Result<AsyncSmtpConnection, DeliveryOutcome> {
        let tcp = match tokio::time::timeout(self.timeout, tokio::net::TcpStream::connect((p.host.as_str(), p.port))).await {
            Ok(Ok(t)) => t,
            Ok(Err(e)) => return Err(DeliveryOutcome::Transient(format!("SMTP: connecting: {e}"))),
            Err(_) => return Err(DeliveryOutcome::Transient("SMTP: connecting timed out".into())),
        };
        // Every SMTP command is a small write: with Nagle's algorithm and the relay's delayed
        // ACK each message waited about 40 ms.
        let _ = tcp.set_nodelay(true);
        let hello = ClientId::default();
        let mut conn = AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &hello).await.map_err(classify)?;
        if let Some(c) = &p.credentials {
            conn.auth(&[Mechanism::Plain, Mechanism::Login], c).await.map_err(classify)?;
        }
        Ok(conn)
    }

    /// Sends over the round's connection (opened when there is none, or when an idle one no
    /// longer answers); an error drops it.
    async fn send_plain(&self, p: &Plain, email: &Message) -> Result<(), DeliveryOutcome> {
        let mut slot = self.conn.lock().await;
        let mut conn = match slot.take() {
            Some((mut c, used)) => {
                if !c.has_broken() && (used.elapsed() < Duration::from_secs(1) || c.test_connected().await) {
                    c
                } else {
                    c.abort().await;
                    self.connect(p).await?
                }
            }
            None => self.connect(p).await?,
        };
        match conn.send(email.envelope(), &email.formatted()).await {
            Ok(_) => {
                *slot = Some((conn, Instant::now()));
                Ok(())
            }
            Err(e) => {
                conn.abort().await;
                Err(classify(e))
            }
        }
    }

    /// Ends the round's connection (QUIT), if one is open.
    pub async fn close(&self) {
        if let Some((mut c, _)) = self.conn.lock().await.take() {
            if c.quit().await.is_err() {
                c.abort().await;
            }
        }
    }

    /// Sends one e-mail.
    pub async fn send(&self, m: &Outgoing) -> DeliveryOutcome {
        let to: Mailbox = match m.address.parse() {
            Ok(t) => t,
            Err(e) => return DeliveryOutcome::Permanent(format!("bad address: {e}")),
        };
        let mut b = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(m.content.subject.clone().unwrap_or_default())
            .message_id(Some(format!("<{}>", m.message_id)));
        if m.purpose == Purpose::Marketing {
            b = b
                .header(ListUnsubscribe(format!("<{}>", m.unsubscribe_url)))
                .header(ListUnsubscribePost("List-Unsubscribe=One-Click".into()));
        }
        let built = match &m.content.html {
            Some(h) => b.multipart(MultiPart::alternative_plain_html(m.content.text.clone(), h.clone())),
            None => b.singlepart(SinglePart::plain(m.content.text.clone())),
        };
        let email = match built {
            Ok(e) => e,
            Err(e) => return DeliveryOutcome::Permanent(format!("building the e-mail: {e}")),
        };
        let sent = match &self.plain {
            Some(p) => match tokio::time::timeout(self.timeout.saturating_mul(2), self.send_plain(p, &email)).await {
                Ok(r) => r,
                Err(_) => {
                    // Timed out mid-conversation: the connection is in an unknown state.
                    if let Some((mut c, _)) = self.conn.lock().await.take() {
                        c.abort().await;
                    }
                    return DeliveryOutcome::Transient("SMTP: timed out".into());
                }
            },
            None => self.transport.send(email).await.map(|_| ()).map_err(classify),
        };
        match sent {
            Ok(()) => DeliveryOutcome::Sent,
            Err(o) => o,
        }
    }
}

/// A permanent SMTP reply (5xx) fails the message; anything else is tried again.
fn classify(e: lettre::transport::smtp::Error) -> DeliveryOutcome {
    if e.is_permanent() {
        DeliveryOutcome::Permanent(format!("SMTP: {e}"))
    } else {
        DeliveryOutcome::Transient(format!("SMTP: {e}"))
    }
}
