//! The file adapter: with no provider for a channel (the embedded default, the demo), each
//! message is appended as one JSON line to `messages-<channel>.jsonl` in the outbox folder, and
//! direct mail to `direct-mail.csv` (message id, recipient, address, text). A batch is written
//! with one append and one `fsync` per file, before any of its messages counts as sent; a
//! reader deduplicates by `message_id` (a crash between the write and the record of it can
//! repeat the lines of that one batch, never lose one — see docs/campaigns.md).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use patron_store::engagement::outbox::{DeliveryOutcome, Outgoing};
use patron_store::engagement::Channel;

/// The header of the direct-mail CSV.
const DIRECT_MAIL_HEADER: &str = "message_id,name,address,text";

/// The folder messages are written to.
#[derive(Debug, Clone)]
pub struct FileAdapter {
    /// The folder (made on first use).
    pub dir: PathBuf,
}

/// The file a message goes to.
fn file_of(m: &Outgoing) -> String {
    match m.channel {
        Channel::Mail => "direct-mail.csv".to_owned(),
        c => format!("messages-{}.jsonl", c.as_str()),
    }
}

/// A message's JSON line (no newline).
fn json_line(m: &Outgoing) -> String {
    serde_json::json!({
        "message_id": m.message_id,
        "customer_id": m.customer_id,
        "channel": m.channel,
        "purpose": m.purpose,
        "to": m.address,
        "subject": m.content.subject,
        "text": m.content.text,
        "html": m.content.html,
        "unsubscribe_url": m.unsubscribe_url,
    })
    .to_string()
}

/// A letter's CSV row (no newline).
fn csv_row(m: &Outgoing) -> Result<String, String> {
    let mut w = csv::WriterBuilder::new().has_headers(false).from_writer(Vec::new());
    let row = w.write_record([m.message_id.as_str(), m.name.as_str(), m.address.as_str(), m.content.text.as_str()]);
    let bytes = row.and_then(|_| w.into_inner().map_err(|e| e.into_error().into()));
    match bytes {
        Ok(b) => Ok(String::from_utf8_lossy(&b).trim_end().to_owned()),
        Err(e) => Err(format!("direct mail row: {e}")),
    }
}

impl FileAdapter {
    /// Appends `lines` (each ending in a newline) to `name` and flushes the file to disk once.
    fn append(&self, name: &str, header: Option<&str>, lines: &str) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let path = self.dir.join(name);
        let new = !path.exists();
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        if let (true, Some(h)) = (new, header) {
            let mut buf = String::with_capacity(h.len() + 1 + lines.len());
            buf.push_str(h);
            buf.push('\n');
            buf.push_str(lines);
            f.write_all(buf.as_bytes())?;
        } else {
            f.write_all(lines.as_bytes())?;
        }
        f.sync_data()
    }

    /// Writes a batch: every message's line appended to its channel's file, one `fsync` per
    /// file; the outcomes in the order of `batch`.
    pub fn write_batch(&self, batch: &[&Outgoing]) -> Vec<DeliveryOutcome> {
        let mut outcomes: Vec<Option<DeliveryOutcome>> = vec![None; batch.len()];
        // Per file: its lines and the messages they are.
        let mut files: BTreeMap<String, (String, Vec<usize>)> = BTreeMap::new();
        for (i, m) in batch.iter().enumerate() {
            let line = if m.channel == Channel::Mail { csv_row(m) } else { Ok(json_line(m)) };
            match line {
                Ok(l) => {
                    let (buf, idx) = files.entry(file_of(m)).or_default();
                    buf.push_str(&l);
                    buf.push('\n');
                    idx.push(i);
                }
                Err(e) => outcomes[i] = Some(DeliveryOutcome::Permanent(e)),
            }
        }
        for (name, (lines, idx)) in files {
            let header = (name == "direct-mail.csv").then_some(DIRECT_MAIL_HEADER);
            let outcome = match self.append(&name, header, &lines) {
                Ok(()) => DeliveryOutcome::Sent,
                Err(e) => DeliveryOutcome::Transient(format!("writing {name} in the outbox folder: {e}")),
            };
            for i in idx {
                outcomes[i] = Some(outcome.clone());
            }
        }
        outcomes.into_iter().map(|o| o.unwrap_or_else(|| DeliveryOutcome::Transient("not written".into()))).collect()
    }

    /// Appends a message as a JSON line (a letter as a CSV row).
    pub fn write(&self, m: &Outgoing) -> DeliveryOutcome {
        self.write_batch(&[m]).pop().unwrap_or_else(|| DeliveryOutcome::Transient("not written".into()))
    }

    /// Appends a letter to the direct-mail CSV (message id, recipient, address, text).
    pub fn direct_mail(&self, m: &Outgoing) -> DeliveryOutcome {
        self.write(m)
    }
}
