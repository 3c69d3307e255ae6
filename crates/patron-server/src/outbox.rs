//! The outbox folder of a server with no messaging provider: the file adapter
//! ([`crate::delivery::file`]) writes every channel's messages there as JSON lines (the demo's and
//! a newcomer's setup), survey invitations included.

use std::path::PathBuf;

/// The outbox folder and the address the links point to.
#[derive(Debug, Clone)]
pub struct Outbox {
    /// The folder (made when the first message is written).
    pub dir: PathBuf,
    /// The base of the links (`https://crm.example.com`).
    pub base_url: String,
}
