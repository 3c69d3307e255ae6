//! Links that customers open without logging in (a ticket's confirmation, a survey invitation):
//! an unguessable token of which only the SHA-256 digest is stored, used once, before it
//! expires. A link belongs to its customer (one shard on Citus): it is found by its digest's
//! index, then read and locked together with its customer.

use chrono::{DateTime, Duration, Utc};

use crate::db::{query, Tx};
use crate::users::{digest, new_secret};
use crate::{Result, Store, StoreError};

/// What a link leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkKind {
    /// A resolved ticket the customer confirms or reopens.
    Confirmation,
    /// A survey invitation.
    Survey,
}

impl LinkKind {
    fn as_str(self) -> &'static str {
        match self {
            LinkKind::Confirmation => "confirmation",
            LinkKind::Survey => "survey",
        }
    }
}

/// A stored link.
#[derive(serde::Deserialize, Debug, Clone, sqlx::FromRow)]
pub struct Link {
    /// The customer it was made for.
    pub customer_id: i64,
    /// The ticket or invitation.
    pub subject_id: i64,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
    /// When it was used (answered), if it was.
    pub used_at: Option<DateTime<Utc>>,
}

/// Makes a link valid for `days`; returns the token, which is shown once and never stored.
pub(crate) async fn create(
    tx: &mut Tx,
    kind: LinkKind,
    customer_id: i64,
    subject_id: i64,
    now: DateTime<Utc>,
    days: i64,
) -> Result<String> {
    let token = new_secret("");
    insert(tx, kind, customer_id, subject_id, now, days, &digest(&token)).await?;
    Ok(token)
}

/// Stores a link by its token's digest (a token made elsewhere: one derived when its message is
/// sent, see `engagement::outbox::public_link_token`).
pub(crate) async fn insert(
    tx: &mut Tx,
    kind: LinkKind,
    customer_id: i64,
    subject_id: i64,
    now: DateTime<Utc>,
    days: i64,
    token_hash: &str,
) -> Result<()> {
    tx.execute(
        query(
            "INSERT INTO public_links (token_hash, kind, customer_id, subject_id, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(token_hash)
        .bind(kind.as_str())
        .bind(customer_id)
        .bind(subject_id)
        .bind(now)
        .bind(now + Duration::days(days)),
    )
    .await?;
    Ok(())
}

/// A token can only be one patron made: 64 hex digits. Anything else is unknown without a query.
fn well_formed(token: &str) -> bool {
    token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit())
}

const LINK_SELECT: &str = "SELECT customer_id, subject_id, expires_at, used_at FROM public_links WHERE token_hash = $1 AND kind = $2";

/// The link behind a token, still usable at `now`: NotFound for an unknown (or forged) token,
/// Gone when expired, State when used already. In `tx`, with the link's row locked (two answers
/// at once: the second waits and then finds it used).
pub(crate) async fn usable(tx: &mut Tx, kind: LinkKind, token: &str, now: DateTime<Utc>) -> Result<Link> {
    if !well_formed(token) {
        return Err(StoreError::NotFound("link"));
    }
    let found: Option<Link> = tx.fetch_optional(query(LINK_SELECT).bind(digest(token)).bind(kind.as_str())).await?;
    let Some(found) = found else { return Err(StoreError::NotFound("link")) };
    let locked: Option<Link> = tx
        .fetch_optional(
            query(format!("{LINK_SELECT} AND customer_id = $3{}", tx.engine().row_lock()))
                .bind(digest(token))
                .bind(kind.as_str())
                .bind(found.customer_id),
        )
        .await?;
    check(locked, now)
}

fn check(link: Option<Link>, now: DateTime<Utc>) -> Result<Link> {
    let link = link.ok_or(StoreError::NotFound("link"))?;
    if link.used_at.is_some() {
        return Err(StoreError::State("this link has been answered already".into()));
    }
    if link.expires_at <= now {
        return Err(StoreError::Gone("this link has expired".into()));
    }
    Ok(link)
}

/// Marks a link used (in the transaction that acts on the answer).
pub(crate) async fn mark_used(tx: &mut Tx, link: &Link, token: &str, now: DateTime<Utc>) -> Result<()> {
    tx.execute(
        query("UPDATE public_links SET used_at = $1 WHERE customer_id = $2 AND token_hash = $3")
            .bind(now)
            .bind(link.customer_id)
            .bind(digest(token)),
    )
    .await?;
    Ok(())
}

impl Store {
    /// The link behind a token if it can still be answered (for showing its page).
    pub async fn public_link(&self, kind: LinkKind, token: &str) -> Result<Link> {
        if !well_formed(token) {
            return Err(StoreError::NotFound("link"));
        }
        let link = self.db.reader().fetch_optional(query(LINK_SELECT).bind(digest(token)).bind(kind.as_str())).await?;
        check(link, self.now())
    }
}
