//! Delivery of the outbox: the channels (e-mail over SMTP, SMS and WeChat through a signed
//! HTTP webhook, and, with no provider configured, a file adapter writing JSON lines — direct
//! mail always goes to a CSV of recipients and addresses), a per-channel rate limit applied at
//! send time, and the round that sends what is due (the scheduler's and `patron jobs run-once`).

pub mod file;
pub mod smtp;
pub mod webhook;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use patron_store::engagement::outbox::{DeliveryOutcome, Outgoing};
use patron_store::engagement::Channel;
use patron_store::Store;
use serde::Serialize;

/// How messages leave (the `patron serve` / `jobs run-once` flags).
#[derive(Debug, Clone, Default)]
pub struct DeliveryConfig {
    /// `smtp://user:pass@host:port` (plain, for a local relay); `smtps://` (TLS) and
    /// `smtp://…?tls=required` (STARTTLS) with the `smtp-tls` feature.
    pub smtp_url: Option<String>,
    /// The sender of e-mail (`patron <crm@example.com>`).
    pub mail_from: Option<String>,
    /// Where SMS go (a provider bridge).
    pub sms_webhook: Option<String>,
    /// Where WeChat messages go.
    pub wechat_webhook: Option<String>,
    /// The shared secret of the webhooks' signatures (outbound and inbound).
    pub outbound_secret: Option<String>,
    /// The base of the links in messages.
    pub public_url: String,
    /// The folder of the file adapter (and the direct-mail CSV).
    pub outbox_dir: PathBuf,
    /// How long a provider may take to answer.
    pub timeout: Duration,
}

/// What a channel failed with: worth another try, or not.
pub type SendResult = DeliveryOutcome;

/// The channels, built once from the configuration.
pub struct Delivery {
    config: DeliveryConfig,
    file: file::FileAdapter,
    smtp: Option<smtp::SmtpAdapter>,
    sms: Option<webhook::WebhookAdapter>,
    wechat: Option<webhook::WebhookAdapter>,
    /// When each channel may send its next message (the rate limit).
    next_slot: tokio::sync::Mutex<HashMap<Channel, Instant>>,
}

/// What one sending round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SendReport {
    /// Taken by a provider (or written by the file adapter).
    pub sent: u64,
    /// To be tried again later.
    pub retrying: u64,
    /// Failed for good (a 4xx, a refused address, a template that does not render).
    pub failed: u64,
    /// Skipped at send time (consent withdrawn, capped, global control, no address).
    pub skipped: u64,
    /// Waiting for the end of quiet hours.
    pub deferred: u64,
}

/// A configuration problem (bad URL, webhook without a secret).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl Delivery {
    /// The channels of `config`.
    pub fn new(config: DeliveryConfig) -> Result<Delivery, ConfigError> {
        if config.timeout.is_zero() {
            return Err(ConfigError("the provider timeout must be above zero".into()));
        }
        let smtp = match &config.smtp_url {
            Some(url) => Some(smtp::SmtpAdapter::new(url, config.mail_from.as_deref(), config.timeout)?),
            None => None,
        };
        let webhook = |url: &Option<String>, what: &str| -> Result<Option<webhook::WebhookAdapter>, ConfigError> {
            match url {
                None => Ok(None),
                Some(u) => {
                    let secret = config
                        .outbound_secret
                        .clone()
                        .filter(|s| !s.is_empty())
                        .ok_or_else(|| ConfigError(format!("--{what}-webhook needs --outbound-secret (the webhook is signed)")))?;
                    Ok(Some(webhook::WebhookAdapter::new(u, secret, config.timeout)?))
                }
            }
        };
        let sms = webhook(&config.sms_webhook, "sms")?;
        let wechat = webhook(&config.wechat_webhook, "wechat")?;
        Ok(Delivery {
            file: file::FileAdapter { dir: config.outbox_dir.clone() },
            config,
            smtp,
            sms,
            wechat,
            next_slot: tokio::sync::Mutex::new(HashMap::new()),
        })
    }

    /// Delivery through the file adapter only (no provider), into `dir`, links to `public_url`.
    pub fn files(dir: PathBuf, public_url: &str) -> Delivery {
        let config =
            DeliveryConfig { public_url: public_url.to_owned(), outbox_dir: dir, timeout: Duration::from_secs(10), ..Default::default() };
        Delivery {
            file: file::FileAdapter { dir: config.outbox_dir.clone() },
            config,
            smtp: None,
            sms: None,
            wechat: None,
            next_slot: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Sends one claimed message on its channel.
    pub async fn send(&self, m: &Outgoing) -> SendResult {
        match (m.channel, &self.smtp, &self.sms, &self.wechat) {
            (Channel::Email, Some(s), _, _) => s.send(m).await,
            (Channel::Sms, _, Some(w), _) | (Channel::Wechat, _, _, Some(w)) => w.send(m).await,
            (Channel::Mail, ..) => self.file.direct_mail(m),
            _ => self.file.write(m),
        }
    }

    /// Waits for the channel's next slot (`rate` messages per second).
    async fn pace(&self, channel: Channel, rate: f64) {
        let gap = Duration::from_secs_f64(1.0 / rate.max(0.001));
        let wait = {
            let mut slots = self.next_slot.lock().await;
            let now = Instant::now();
            let slot = slots.get(&channel).copied().filter(|s| *s > now).unwrap_or(now);
            slots.insert(channel, slot + gap);
            slot.saturating_duration_since(now)
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// Sends everything due now, in batches, until nothing due is left (at most `max` messages).
    pub async fn send_due(&self, store: &Store, max: u64) -> patron_store::Result<SendReport> {
        let mut r = SendReport::default();
        let rate = store.engagement_settings().await?.rate_per_second;
        // A claim outlives the slowest send of its batch by far.
        let lease = chrono::Duration::seconds(i64::try_from(self.config.timeout.as_secs()).unwrap_or(60).saturating_mul(4).max(60));
        let mut total = 0u64;
        while total < max {
            let (batch, claimed) =
                store.claim_due_messages(50.min(i64::try_from(max - total).unwrap_or(50)), lease, &self.config.public_url).await?;
            r.skipped += claimed.skipped;
            r.deferred += claimed.deferred;
            r.failed += claimed.failed;
            if batch.is_empty() && claimed == Default::default() {
                break;
            }
            total += claimed.claimed + claimed.skipped + claimed.deferred + claimed.failed;
            for m in batch {
                self.pace(m.channel, rate).await;
                let outcome = self.send(&m).await;
                store.record_delivery(&m, &outcome).await?;
                match outcome {
                    DeliveryOutcome::Sent => r.sent += 1,
                    DeliveryOutcome::Permanent(_) => r.failed += 1,
                    DeliveryOutcome::Transient(_) => r.retrying += 1,
                }
            }
        }
        Ok(r)
    }
}
