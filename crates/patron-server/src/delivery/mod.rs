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
        match self.route(m) {
            Route::Smtp(s) => s.send(m).await,
            Route::Webhook(w) => w.send(m).await,
            Route::File => self.file.write(m),
        }
    }

    /// The adapter a message leaves through.
    fn route(&self, m: &Outgoing) -> Route<'_> {
        match (m.channel, &self.smtp, &self.sms, &self.wechat) {
            (Channel::Email, Some(s), _, _) => Route::Smtp(s),
            (Channel::Sms, _, Some(w), _) | (Channel::Wechat, _, _, Some(w)) => Route::Webhook(w),
            _ => Route::File,
        }
    }

    /// Waits until `n` more messages of `channel` may leave at `rate` messages per second
    /// (see [`reserve`]).
    async fn pace(&self, channel: Channel, rate: f64, n: u32) {
        let gap = Duration::from_secs_f64(1.0 / rate.max(0.001));
        let wait = {
            let mut slots = self.next_slot.lock().await;
            let (next, wait) = reserve(slots.get(&channel).copied(), Instant::now(), gap, n);
            slots.insert(channel, next);
            wait
        };
        if wait >= MIN_SLEEP {
            tokio::time::sleep(wait).await;
        }
    }

    /// Delivers a claimed batch, each message paced by the channel's rate (`rate` messages per
    /// second): the file adapter's messages with one write and one `fsync` per file; e-mail one
    /// after the other over one pooled SMTP connection; webhooks [`WEBHOOK_PARALLEL`] at a time.
    /// With `record`, each outcome is recorded as soon as it is known and only then: the file
    /// adapter's after its write (one transaction for them all), each e-mail's before the next
    /// is sent, each group of webhooks' before the next group — so a `kill -9` re-delivers at
    /// most the batch's file lines, one e-mail, or one group of webhooks (docs/campaigns.md).
    /// Messages not tried before `deadline` (the lease's half; e-mail and webhooks only) are
    /// given back to the queue (with `record`) and have no outcome (`None`). Without `record`,
    /// nothing is recorded: what a crash right after the delivery leaves.
    pub async fn deliver(
        &self,
        batch: &[Outgoing],
        record: Option<&Store>,
        rate: f64,
        deadline: Instant,
    ) -> patron_store::Result<Vec<Option<DeliveryOutcome>>> {
        let mut outcomes: Vec<Option<DeliveryOutcome>> = vec![None; batch.len()];
        let (mut files, mut mail, mut hooks) = (Vec::new(), Vec::new(), Vec::new());
        for (i, m) in batch.iter().enumerate() {
            match self.route(m) {
                Route::File => files.push(i),
                Route::Smtp(_) => mail.push(i),
                Route::Webhook(_) => hooks.push(i),
            }
        }
        if !files.is_empty() {
            // Written at once: the batch waits for the slot of its last message, per channel.
            let mut per_channel: HashMap<Channel, u32> = HashMap::new();
            for &i in &files {
                *per_channel.entry(batch[i].channel).or_default() += 1;
            }
            for (channel, n) in per_channel {
                self.pace(channel, rate, n).await;
            }
            let ms: Vec<&Outgoing> = files.iter().map(|&i| &batch[i]).collect();
            let written = self.file.write_batch(&ms);
            if let Some(store) = record {
                let pairs: Vec<(&Outgoing, &DeliveryOutcome)> = ms.iter().copied().zip(written.iter()).collect();
                store.record_deliveries(&pairs).await?;
            }
            for (&i, o) in files.iter().zip(written) {
                outcomes[i] = Some(o);
            }
        }
        let mut first = true;
        let mut late: Vec<usize> = Vec::new();
        for group in hooks.chunks(WEBHOOK_PARALLEL) {
            if !first && Instant::now() >= deadline {
                late.extend_from_slice(group);
                continue;
            }
            first = false;
            let mut tasks = tokio::task::JoinSet::new();
            for (n, &i) in group.iter().enumerate() {
                let m = &batch[i];
                self.pace(m.channel, rate, 1).await;
                if let Route::Webhook(w) = self.route(m) {
                    let (w, m) = (w.clone(), m.clone());
                    tasks.spawn(async move { (n, w.send(&m).await) });
                }
            }
            let mut got: Vec<Option<DeliveryOutcome>> = vec![None; group.len()];
            while let Some(done) = tasks.join_next().await {
                match done {
                    Ok((n, o)) => got[n] = Some(o),
                    Err(e) => tracing::warn!(error = %e, "a webhook delivery task failed"),
                }
            }
            // A task that died has an unknown outcome: tried again (same idempotency key).
            let got: Vec<DeliveryOutcome> =
                got.into_iter().map(|o| o.unwrap_or_else(|| DeliveryOutcome::Transient("delivery task failed".into()))).collect();
            if let Some(store) = record {
                let pairs: Vec<(&Outgoing, &DeliveryOutcome)> = group.iter().map(|&i| &batch[i]).zip(got.iter()).collect();
                store.record_deliveries(&pairs).await?;
            }
            for (&i, o) in group.iter().zip(got) {
                outcomes[i] = Some(o);
            }
        }
        for &i in &mail {
            if !first && Instant::now() >= deadline {
                late.push(i);
                continue;
            }
            first = false;
            let m = &batch[i];
            self.pace(m.channel, rate, 1).await;
            let o = self.send(m).await;
            if let Some(store) = record {
                store.record_delivery(m, &o).await?;
            }
            outcomes[i] = Some(o);
        }
        if let Some(store) = record {
            let back: Vec<&Outgoing> = late.iter().map(|&i| &batch[i]).collect();
            store.release_messages(&back).await?;
        }
        Ok(outcomes)
    }

    /// Sends everything due now, in batches, until nothing due is left (at most `max` messages):
    /// each batch claimed in one transaction, delivered, and its outcomes recorded (see
    /// [`Delivery::deliver`]).
    pub async fn send_due(&self, store: &Store, max: u64) -> patron_store::Result<SendReport> {
        let mut r = SendReport::default();
        let rate = store.engagement_settings().await?.rate_per_second;
        let lease_secs = i64::try_from(self.config.timeout.as_secs()).unwrap_or(60).saturating_mul(4).max(60);
        // A claim outlives the slowest send of its batch by far: delivery stops trying new
        // messages at half the lease, and a message started then ends within the timeout.
        let lease = chrono::Duration::seconds(lease_secs);
        let half = Duration::from_secs(u64::try_from(lease_secs / 2).unwrap_or(30));
        // No more than the rate limit lets out in half the lease.
        let by_rate = (rate.max(0.001) * half.as_secs_f64()).floor().clamp(1.0, BATCH as f64) as i64;
        let mut total = 0u64;
        while total < max {
            let size = by_rate.min(i64::try_from(max - total).unwrap_or(BATCH)).max(1);
            let started = Instant::now();
            let deadline = started + half;
            let (batch, claimed) = store.claim_due_messages(size, lease, &self.config.public_url).await?;
            let claim_ms = started.elapsed().as_secs_f64() * 1000.0;
            r.skipped += claimed.skipped;
            r.deferred += claimed.deferred;
            r.failed += claimed.failed;
            if batch.is_empty() && claimed == Default::default() {
                break;
            }
            total += claimed.claimed + claimed.skipped + claimed.deferred + claimed.failed;
            let outcomes = self.deliver(&batch, Some(store), rate, deadline).await?;
            tracing::debug!(claimed = claimed.claimed, claim_ms, total_ms = started.elapsed().as_secs_f64() * 1000.0, "outbox batch");
            for o in outcomes {
                match o {
                    Some(DeliveryOutcome::Sent) => r.sent += 1,
                    Some(DeliveryOutcome::Permanent(_)) => r.failed += 1,
                    Some(DeliveryOutcome::Transient(_)) => r.retrying += 1,
                    // Given back: claimed again by the next batch.
                    None => total = total.saturating_sub(1),
                }
            }
        }
        if let Some(smtp) = &self.smtp {
            smtp.close().await;
        }
        Ok(r)
    }
}

/// Messages claimed per batch at most.
pub const BATCH: i64 = 500;

/// The shortest wait [`Delivery::pace`] sleeps: tokio's timer sleeps at least a millisecond, so
/// sleeping each 10 µs gap of a fast channel would cap it near 1,000 messages a second (it
/// did: issue 12's file adapter). A shorter wait is carried instead: the reserved slots keep
/// the average rate, and a later wait, grown past this, sleeps it off.
const MIN_SLEEP: Duration = Duration::from_millis(1);

/// Pacing arithmetic: given a channel's next free slot (None: never used), the time now and
/// the gap between messages, reserves slots for `n` messages; returns the next free slot and
/// how long to wait before the last of them may leave. An idle channel starts at `now` (no
/// credit for the time it was idle).
fn reserve(next: Option<Instant>, now: Instant, gap: Duration, n: u32) -> (Instant, Duration) {
    let first = next.filter(|s| *s > now).unwrap_or(now);
    let last = first + gap * n.saturating_sub(1);
    (last + gap, last.saturating_duration_since(now))
}

/// Webhook deliveries in flight at once.
pub const WEBHOOK_PARALLEL: usize = 4;

/// Where a message leaves.
enum Route<'a> {
    Smtp(&'a smtp::SmtpAdapter),
    Webhook(&'a webhook::WebhookAdapter),
    File,
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::{reserve, MIN_SLEEP};

    /// Sends `count` messages one at a time through [`reserve`] on a simulated clock whose
    /// sleeps last what was asked plus a millisecond (tokio's worst case); returns the time taken.
    fn simulate(rate: f64, count: u32, per_call: u32) -> Duration {
        let gap = Duration::from_secs_f64(1.0 / rate);
        let start = Instant::now();
        let (mut now, mut next) = (start, None);
        let mut sent = 0;
        while sent < count {
            let (n, wait) = reserve(next, now, gap, per_call);
            next = Some(n);
            if wait >= MIN_SLEEP {
                now += wait + Duration::from_millis(1);
            }
            sent += per_call;
        }
        now - start
    }

    #[test]
    fn pacing_keeps_the_rate_without_a_millisecond_per_message() {
        // A slow channel: 200 messages at 100 a second take about two seconds, never less.
        let slow = simulate(100.0, 200, 1);
        assert!(slow >= Duration::from_millis(1_980) && slow <= Duration::from_millis(2_400), "{slow:?}");
        // A fast one: 10,000 at 100,000 a second, one at a time, take well under the 10 s that
        // a sleep per 10 µs gap took (each at least a millisecond).
        let fast = simulate(100_000.0, 10_000, 1);
        assert!(fast >= Duration::from_millis(99) && fast <= Duration::from_millis(250), "{fast:?}");
        // A file batch reserves its 500 slots at once: 20 batches of 500 at 5,000 a second.
        let batches = simulate(5_000.0, 10_000, 500);
        assert!(batches >= Duration::from_millis(1_900) && batches <= Duration::from_millis(2_100), "{batches:?}");
    }
}
