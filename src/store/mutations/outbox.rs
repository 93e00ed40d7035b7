//! Outbox mutations that go through the writer: the drainer's claim of the rows it is about
//! to send, and the record of what each send came to (accepted, to be retried, failed for
//! good). Through the writer, every outcome is durable before the drainer counts it and, in a
//! cluster, applied by every node in the log's order.

use super::tx::{tx_decode, TxResult};
use super::{Applied, MailFailure};
use crate::domain::{OutboxMail, OutboxStatus, Timestamp};
use crate::store::codec;
use crate::store::keys::{due_key, u64_key};
use crate::store::outbox::update_row;
use crate::store::trees::Tx;

impl Tx<'_> {
    /// Moves the next attempt of each pending row in `claims` to its time (the index moves
    /// with it, [`update_row`]). Rows already sent or failed are skipped (the claim is
    /// taken after a scan, which another update may have overtaken).
    pub(super) fn claim_mails(
        &self,
        claims: &[(u64, Timestamp)],
        now: Timestamp,
    ) -> TxResult<(Applied, Option<u64>)> {
        let mut claimed = Vec::with_capacity(claims.len());
        for (id, until) in claims {
            let row = update_row(self.outbox, self.outbox_due, *id, |row| {
                // A row claimed meanwhile (by another node of a cluster, whose claims go
                // through the same log) is no longer due: the first claim in log order wins
                // everywhere.
                if row.status != OutboxStatus::Pending || row.next_attempt_at > now {
                    return false;
                }
                row.next_attempt_at = *until;
                true
            })?;
            claimed.extend(row);
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

    /// Records failed tries: each row still under the claim its failure answers moves to its
    /// retry time, or out of the due index as failed for good, with the try counted and the
    /// answer kept. Rows that moved on meanwhile (sent, requeued, or claimed again once the
    /// claim ran out) are skipped, so a late report cannot undo a later outcome.
    pub(super) fn mails_failed(
        &self,
        failures: &[MailFailure],
    ) -> TxResult<(Applied, Option<u64>)> {
        let mut changed = Vec::with_capacity(failures.len());
        for failure in failures {
            let row = update_row(self.outbox, self.outbox_due, failure.id, |row| {
                if row.status != OutboxStatus::Pending
                    || row.next_attempt_at != failure.claimed_until
                {
                    return false;
                }
                row.attempts = failure.attempts;
                row.last_error = Some(failure.error.clone());
                match failure.retry_at {
                    Some(at) => row.next_attempt_at = at,
                    None => row.status = OutboxStatus::Failed,
                }
                true
            })?;
            changed.extend(row);
        }
        Ok((Applied::Claimed(changed), None))
    }
}
