//! rewards (issue 13).

use chrono::{DateTime, Utc};

use crate::db::Tx;
use crate::{Result, StoreError};

/// Takes one of reward `reward_id` from stock for a member of `tier` at `now`; returns its
/// points. Not found, not active, not for the tier or out of stock: an error, nothing taken.
pub(crate) async fn take_stock(_tx: &mut Tx, _reward_id: i64, _tier: Option<&str>, _now: DateTime<Utc>) -> Result<i64> {
    Err(StoreError::NotFound("reward"))
}
