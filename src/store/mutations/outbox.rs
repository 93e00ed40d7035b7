//! Outbox mutations that go through the writer: the drainer's claim of the rows it is about
//! to send, and the record of the ones the SMTP server accepted (the updates after a failed
//! send are the drainer's own: `store::outbox`).

use super::tx::{tx_decode, TxResult};
use super::Applied;
use crate::domain::{OutboxMail, OutboxStatus, Timestamp};
use crate::store::codec;
use crate::store::keys::{due_key, u64_key};
use crate::store::trees::Tx;

impl Tx<'_> {
    /// Moves the next attempt of each pending row in `claims` to its time, keeping the
    /// `outbox_due` index in step. Rows already sent or failed are skipped (the claim is
    /// taken after a scan, which another update may have overtaken).
    pub(super) fn claim_mails(
        &self,
        claims: &[(u64, Timestamp)],
        now: Timestamp,
    ) -> TxResult<(Applied, Option<u64>)> {
        let mut claimed = Vec::with_capacity(claims.len());
        for (id, until) in claims {
            let key = u64_key(*id);
            let Some(bytes) = self.outbox.get(key)? else {
                continue;
            };
            let mut row: OutboxMail = tx_decode("outbox", &bytes)?;
            // A row claimed meanwhile (by another node of a cluster, whose claims go through
            // the same log) is no longer due: the first claim in log order wins everywhere.
            if row.status != OutboxStatus::Pending || row.next_attempt_at > now {
                continue;
            }
            self.outbox_due.remove(&due_key(row.next_attempt_at, *id))?;
            row.next_attempt_at = *until;
            self.outbox_due.insert(&due_key(*until, *id), &[])?;
            self.outbox.insert(&key, codec::encode(&row))?;
            claimed.push(row);
        }
        Ok((Applied::Claimed(claimed), None))
    }

    /// Moves the rows `ids`, whose mails the SMTP server accepted, out of the queue (and the
    /// due index) into the audit trail, marked sent at `now`; answers with the rows moved. On
    /// every node of a cluster alike, so no node sends them again. Rows already gone are
    /// skipped.
    pub(super) fn mails_sent(
        &self,
        ids: &[u64],
        now: Timestamp,
    ) -> TxResult<(Applied, Option<u64>)> {
        let mut marked = Vec::with_capacity(ids.len());
        for id in ids {
            let key = u64_key(*id);
            let Some(bytes) = self.outbox.get(key)? else {
                continue;
            };
            let mut row: OutboxMail = tx_decode("outbox", &bytes)?;
            if row.status == OutboxStatus::Pending {
                self.outbox_due.remove(&due_key(row.next_attempt_at, *id))?;
            }
            row.status = OutboxStatus::Sent;
            row.sent_at = Some(now);
            row.attempts = row.attempts.saturating_add(1);
            self.outbox.remove(&key)?;
            self.outbox_sent.insert(&key, codec::encode(&row))?;
            marked.push(row);
        }
        Ok((Applied::Claimed(marked), None))
    }
}
