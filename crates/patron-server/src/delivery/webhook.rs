//! SMS and WeChat through an HTTP webhook, so that any provider can be bridged: a JSON body
//! (message id, customer, channel, address, text) POSTed with `X-Patron-Signature:
//! sha256=<hex>`, the HMAC-SHA256 of the raw body with the shared secret (as GitHub signs its
//! webhooks), and the message id as `Idempotency-Key`. A 2xx is sent; a timeout, a connection
//! failure, a 5xx, 408 or 429 are tried again; any other 4xx is permanent.

use std::time::Duration;

use hmac::{Hmac, Mac};
use patron_store::engagement::outbox::{DeliveryOutcome, Outgoing};
use sha2::Sha256;

use super::ConfigError;

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "x-patron-signature";

/// `sha256=<hex>` of `body` with `secret`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    // HMAC takes a key of any length; new_from_slice cannot fail for it.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(body);
    let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// Whether `signature` (`sha256=<hex>`) is `body`'s with `secret`, compared in constant time.
pub fn verify(secret: &str, body: &[u8], signature: &str) -> bool {
    let Some(hex) = signature.strip_prefix("sha256=") else { return false };
    let Some(bytes) = decode_hex(hex) else { return false };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else { return false };
    mac.update(body);
    mac.verify_slice(&bytes).is_ok()
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

/// One webhook.
#[derive(Clone)]
pub struct WebhookAdapter {
    url: String,
    secret: String,
    http: reqwest::Client,
}

impl WebhookAdapter {
    /// A webhook at `url` signed with `secret`.
    pub fn new(url: &str, secret: String, timeout: Duration) -> Result<WebhookAdapter, ConfigError> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(ConfigError(format!("webhook {url:?}: expected http://… or https://…")));
        }
        let http = reqwest::Client::builder().timeout(timeout).build().map_err(|e| ConfigError(format!("HTTP client: {e}")))?;
        Ok(WebhookAdapter { url: url.to_owned(), secret, http })
    }

    /// Posts the message.
    pub async fn send(&self, m: &Outgoing) -> DeliveryOutcome {
        let body = serde_json::json!({
            "message_id": m.message_id,
            "customer_id": m.customer_id,
            "channel": m.channel,
            "purpose": m.purpose,
            "to": m.address,
            "text": m.content.text,
            "unsubscribe_url": m.unsubscribe_url,
        })
        .to_string();
        let res = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .header(SIGNATURE_HEADER, sign(&self.secret, body.as_bytes()))
            .header("idempotency-key", &m.message_id)
            .body(body)
            .send()
            .await;
        match res {
            Ok(r) if r.status().is_success() => DeliveryOutcome::Sent,
            Ok(r) if r.status().as_u16() == 408 || r.status().as_u16() == 429 || r.status().is_server_error() => {
                DeliveryOutcome::Transient(format!("webhook answered {}", r.status().as_u16()))
            }
            Ok(r) => DeliveryOutcome::Permanent(format!("webhook answered {}", r.status().as_u16())),
            Err(e) if e.is_timeout() => DeliveryOutcome::Transient("webhook timed out".into()),
            Err(e) => DeliveryOutcome::Transient(format!("webhook unreachable: {}", e.without_url())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_as_github_makes_them() {
        // GitHub's documented example: secret "It's a Secret to Everybody", payload "Hello, World!".
        let s = sign("It's a Secret to Everybody", b"Hello, World!");
        assert_eq!(s, "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17");
        assert!(verify("It's a Secret to Everybody", b"Hello, World!", &s));
        assert!(!verify("another secret", b"Hello, World!", &s));
        assert!(!verify("It's a Secret to Everybody", b"Hello, World!", "sha256=zz"));
    }
}
