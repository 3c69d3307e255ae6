//! The file adapter: with no provider for a channel (the embedded default, the demo), each
//! message is appended as one JSON line to `messages-<channel>.jsonl` in the outbox folder, and
//! direct mail to `direct-mail.csv` (recipient, address, text). Lines are flushed to disk before
//! the message counts as sent; a reader deduplicates by `message_id` (a crash between the write
//! and the record of it can repeat a line, never lose one).

use std::io::Write;
use std::path::PathBuf;

use patron_store::engagement::outbox::{DeliveryOutcome, Outgoing};

/// The folder messages are written to.
#[derive(Debug, Clone)]
pub struct FileAdapter {
    /// The folder (made on first use).
    pub dir: PathBuf,
}

impl FileAdapter {
    fn append(&self, name: &str, header: Option<&str>, line: &str) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let path = self.dir.join(name);
        let new = !path.exists();
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        let mut buf = String::new();
        if let (true, Some(h)) = (new, header) {
            buf.push_str(h);
            buf.push('\n');
        }
        buf.push_str(line);
        buf.push('\n');
        f.write_all(buf.as_bytes())?;
        f.sync_data()
    }

    /// Appends a message as a JSON line.
    pub fn write(&self, m: &Outgoing) -> DeliveryOutcome {
        let line = serde_json::json!({
            "message_id": m.message_id,
            "customer_id": m.customer_id,
            "channel": m.channel,
            "purpose": m.purpose,
            "to": m.address,
            "subject": m.content.subject,
            "text": m.content.text,
            "html": m.content.html,
            "unsubscribe_url": m.unsubscribe_url,
        });
        match self.append(&format!("messages-{}.jsonl", m.channel.as_str()), None, &line.to_string()) {
            Ok(()) => DeliveryOutcome::Sent,
            Err(e) => DeliveryOutcome::Transient(format!("writing the outbox folder: {e}")),
        }
    }

    /// Appends a letter to the direct-mail CSV (message id, recipient, address, text).
    pub fn direct_mail(&self, m: &Outgoing) -> DeliveryOutcome {
        let mut w = csv::WriterBuilder::new().has_headers(false).from_writer(Vec::new());
        let row = w.write_record([m.message_id.as_str(), m.name.as_str(), m.address.as_str(), m.content.text.as_str()]);
        let bytes = row.and_then(|_| w.into_inner().map_err(|e| e.into_error().into()));
        let line = match bytes {
            Ok(b) => String::from_utf8_lossy(&b).trim_end().to_owned(),
            Err(e) => return DeliveryOutcome::Permanent(format!("direct mail row: {e}")),
        };
        match self.append("direct-mail.csv", Some("message_id,name,address,text"), &line) {
            Ok(()) => DeliveryOutcome::Sent,
            Err(e) => DeliveryOutcome::Transient(format!("writing the direct-mail file: {e}")),
        }
    }
}
