//! Where messages to customers go while no messaging provider is set: one text file per
//! message in the outbox folder (the demo's and a newcomer's setup; the engagement issue brings
//! real providers). A file is written under a temporary name and renamed, so a reader never
//! sees half a message.

use std::io::Write;
use std::path::PathBuf;

use patron_store::surveys::InvitationMessage;

/// The outbox folder and the address the links point to.
#[derive(Debug, Clone)]
pub struct Outbox {
    /// The folder (made when the first message is written).
    pub dir: PathBuf,
    /// The base of the links (`https://crm.example.com`).
    pub base_url: String,
}

impl Outbox {
    /// Writes a survey invitation as `survey-invitation-<id>.txt` (a second delivery of the same
    /// invitation replaces the file).
    pub fn deliver_invitation(&self, m: &InvitationMessage) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let to = match (&m.email, &m.mobile) {
            (Some(e), _) => e.clone(),
            (None, Some(p)) => p.clone(),
            (None, None) => "(no e-mail or mobile on file)".into(),
        };
        let url = format!("{}/p/s/{}", self.base_url.trim_end_matches('/'), m.token);
        let body = format!(
            "To: {to}\nCustomer: {}\nSubject: {}\n\n{}，您好！邀请您花一分钟告诉我们您的感受：\n{url}\n\n\
             Hello {}, please tell us how we did (one minute):\n{url}?lang=en\n\n(link valid until {})\n",
            m.customer_id,
            m.survey_name,
            m.name,
            m.name,
            m.expires_at.format("%Y-%m-%d %H:%M UTC"),
        );
        let name = format!("survey-invitation-{}.txt", m.invitation_id);
        let tmp = self.dir.join(format!(".{name}.tmp"));
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(body.as_bytes())?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, self.dir.join(name))
    }
}
