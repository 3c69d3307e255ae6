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

/// Every row of a paged list: `fetch` gets the page after a cursor (`None` for the first), and
/// is called until a page says it is the last.
pub(crate) async fn all_pages<T, F, Fut>(mut fetch: F) -> Result<Vec<T>>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: std::future::Future<Output = Result<Page<T>>>,
{
    let mut all = Vec::new();
    let mut cursor = None;
    loop {
        let page = fetch(cursor.take()).await?;
        all.extend(page.items);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(all),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_pages_follows_cursors_to_the_last_page() {
        // Pages of two out of five rows; the cursor is the next row's index.
        let rows: Vec<i32> = (0..5).collect();
        let mut calls = Vec::new();
        let fetch = |cursor: Option<String>| {
            let start: usize = cursor.as_deref().map_or(0, |c| c.parse().unwrap_or(usize::MAX));
            calls.push(start);
            let items: Vec<i32> = rows.iter().skip(start).take(2).copied().collect();
            let next = (start + 2 < rows.len()).then(|| (start + 2).to_string());
            std::future::ready(Ok(Page { items, next_cursor: next }))
        };
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("a runtime");
        assert_eq!(rt.block_on(all_pages(fetch)).expect("pages"), rows);
        assert_eq!(calls, vec![0, 2, 4]);
    }
}
