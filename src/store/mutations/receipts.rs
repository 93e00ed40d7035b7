//! Read receipts: how far each user has read the events they may see.

use super::tx::{abort, TxResult};
use super::Applied;
use crate::store::keys::{read_u64, u64_key};
use crate::store::trees::Tx;
use crate::store::StoreError;
use uuid::Uuid;

impl Tx<'_> {
    /// Moves the user's read position to `up_to`, and returns where it ends up.
    pub(super) fn mark_read(&self, user_id: Uuid, up_to: u64) -> TxResult<(Applied, Option<u64>)> {
        if self.users.get(user_id.as_bytes())?.is_none() {
            return abort(StoreError::NotFound("user"));
        }
        let newest = self.newest_event_id()?;
        let current = match self.receipts.get(user_id.as_bytes())? {
            Some(bytes) => read_u64(&bytes).unwrap_or(0),
            None => 0,
        };
        // Receipts only move forward, and never past what exists.
        let stored = current.max(up_to.min(newest));
        self.receipts.insert(user_id.as_bytes(), &u64_key(stored))?;
        Ok((Applied::ReadUpTo(stored), None))
    }
}
