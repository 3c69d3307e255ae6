//! Keyset pagination: a page of rows and an opaque cursor naming the position after its last row.

use serde::de::DeserializeOwned;
use serde::Serialize;
use utoipa::ToSchema;

use crate::{Result, StoreError};

/// One page of a list.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Page<T> {
    /// The rows.
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Encodes a cursor position as lowercase hex of its JSON (opaque to clients, URL-safe).
pub fn encode_cursor<T: Serialize>(pos: &T) -> String {
    let json = serde_json::to_vec(pos).unwrap_or_default();
    json.iter().map(|b| format!("{b:02x}")).collect()
}

/// Decodes a cursor made by [`encode_cursor`]; anything else is a 400-class error on `cursor`.
pub fn decode_cursor<T: DeserializeOwned>(s: &str) -> Result<T> {
    let bad = || StoreError::invalid("cursor", "invalid cursor (pass next_cursor from the previous page unchanged)");
    if !s.len().is_multiple_of(2) || s.len() > 2048 || !s.is_ascii() {
        return Err(bad());
    }
    let bytes: Option<Vec<u8>> = (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect();
    serde_json::from_slice(&bytes.ok_or_else(bad)?).map_err(|_| bad())
}
