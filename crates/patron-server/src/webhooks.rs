//! Sending webhook deliveries: the scheduler reads new events into deliveries (the store's
//! bookkeeping, `patron_store::webhooks`), claims the due ones and POSTs each to its receiver,
//! signed as GitHub signs its webhooks: `X-Patron-Signature: sha256=<hex>`, the HMAC-SHA256 of the
//! raw body with the webhook's secret. A 2xx answer delivers; anything else (another status, a
//! timeout, a refused connection) is retried with backoff, so a receiver sees each event at least
//! once and must de-duplicate by `X-Patron-Delivery`.

use std::sync::OnceLock;
use std::time::Duration;

use hmac::{Hmac, Mac};
use patron_store::webhooks::{Attempt, Outgoing, WebhookReport};
use patron_store::Store;
use serde::Serialize;
use sha2::Sha256;

/// How long a receiver may take to answer.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Deliveries claimed per batch.
const BATCH: i64 = 100;

/// The HTTP client: one per process, so connections to a receiver are reused.
fn client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            // A receiver's redirect is not followed: the signature was made for the URL the
            // administrator entered, and a redirect could point anywhere.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("patron-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new())
    })
}

/// `sha256=<hex of HMAC-SHA256(secret, body)>`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    // HMAC takes a key of any length; `new_from_slice` cannot fail for it.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    let mut hex = String::with_capacity(7 + 64);
    hex.push_str("sha256=");
    for b in bytes {
        hex.push_str(&format!("{b:02x}"));
    }
    hex
}

/// The body a receiver gets.
#[derive(Serialize)]
struct Body<'a> {
    delivery_id: i64,
    webhook_id: i64,
    attempt: i64,
    event: &'a patron_store::events::Event,
}

/// Sends one claimed delivery and says how it went.
pub async fn send(o: &Outgoing) -> Attempt {
    let body = Body { delivery_id: o.delivery.id, webhook_id: o.delivery.webhook_id, attempt: o.delivery.attempts, event: &o.event };
    let body = match serde_json::to_vec(&body) {
        Ok(b) => b,
        Err(e) => return Attempt::Failed(None, format!("encoding the body: {e}")),
    };
    let res = client()
        .post(&o.url)
        .header("content-type", "application/json")
        .header("x-patron-event", &o.event.kind)
        .header("x-patron-delivery", o.delivery.id.to_string())
        .header("x-patron-signature", signature(&o.secret, &body))
        .body(body)
        .send()
        .await;
    match res {
        Ok(r) if r.status().is_success() => Attempt::Delivered(r.status().as_u16()),
        Ok(r) => Attempt::Failed(Some(r.status().as_u16()), format!("HTTP {}", r.status())),
        Err(e) if e.is_timeout() => Attempt::Failed(None, format!("no answer within {} s", TIMEOUT.as_secs())),
        Err(e) if e.is_connect() => Attempt::Failed(None, "could not connect".into()),
        Err(e) => Attempt::Failed(None, format!("request failed: {}", e.without_url())),
    }
}

/// Reads new events into deliveries and sends what is due, batch by batch.
pub async fn run_round(store: &Store) -> patron_store::Result<WebhookReport> {
    let mut r = WebhookReport { made: store.fan_out_webhooks().await?, ..Default::default() };
    loop {
        let batch = store.claim_deliveries(BATCH).await?;
        let full = batch.len() as i64 == BATCH;
        // Up to eight receivers' answers awaited at once: one slow receiver does not hold the rest.
        let mut sends = tokio::task::JoinSet::new();
        for (i, o) in batch.into_iter().enumerate() {
            if i >= 8 {
                if let Some(Ok((o, a))) = sends.join_next().await {
                    record(store, &o, &a, &mut r).await?;
                }
            }
            sends.spawn(async move {
                let a = send(&o).await;
                (o, a)
            });
        }
        while let Some(done) = sends.join_next().await {
            if let Ok((o, a)) = done {
                record(store, &o, &a, &mut r).await?;
            }
        }
        if !full {
            return Ok(r);
        }
    }
}

async fn record(store: &Store, o: &Outgoing, a: &Attempt, r: &mut WebhookReport) -> patron_store::Result<()> {
    store.record_attempt(&o.delivery, a).await?;
    match a {
        Attempt::Delivered(_) => r.delivered += 1,
        Attempt::Failed(..) => r.failed += 1,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_githubs_hmac_sha256() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
