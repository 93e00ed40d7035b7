//! The outbox queue as the mail drainer and `app outbox` see it (rows are written by
//! [`super::mutations`], in the transaction of their cause).
//!
//! Three trees: `outbox` holds the queue (pending and failed rows) and `outbox_sent` the audit
//! trail of accepted mails, both keyed by the big-endian outbox id; `outbox_due` indexes the
//! pending rows only, by due time then id, so a scan reads what is due and stops at the first
//! row that is not — failed rows, and rows waiting out a retry, cost it nothing. Failed rows
//! are kept (out of the index) for `app outbox retry`. A row moves from the queue to the trail
//! in one small transaction over the trees, so it is always in exactly one of them (DESIGN
//! invariant 4: deleted from the queue only once the server took it), and every change of a
//! row's status or due time moves its index entry in the same transaction.
//!
//! The writer thread inserts new rows and records the drainer's claims and the outcomes of
//! its sends (`mutations::outbox`); here are the reads, the prune of the audit trail and
//! `app outbox retry`'s requeue (run on a stopped server's folder). Updates are
//! read-modify-write transactions, whose closures may run more than once: they only touch
//! trees.

use super::keys::{due_key, read_due_key, read_u64, u64_key};
use super::{codec, decode, Store, StoreError};
use crate::domain::{OutboxMail, OutboxStatus, Timestamp};
use sled::transaction::{
    ConflictableTransactionError, ConflictableTransactionResult, TransactionalTree,
};
use sled::Transactional;

/// What one scan of the queue found (see [`Store::scan_outbox`]).
#[derive(Debug, Clone, Default)]
pub struct OutboxScan {
    /// Rows due now, soonest due first, at most the scan's limit.
    pub due: Vec<OutboxMail>,
    /// The scan stopped at its limit of due rows, so `next_due` is unknown (the caller scans
    /// again at once).
    pub partial: bool,
    /// The earliest `next_attempt_at` of a pending row whose cause is durable and that is not
    /// in `due` (when to look again without a wake-up).
    pub next_due: Option<Timestamp>,
}

/// How many rows are in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxCounts {
    pub pending: u64,
    pub failed: u64,
    pub sent: u64,
}

type TxResult<T> = ConflictableTransactionResult<T, StoreError>;

/// Decodes a row inside a transaction, aborting it when the bytes are damaged.
fn tx_row(tree: &'static str, bytes: &[u8]) -> TxResult<OutboxMail> {
    decode(tree, bytes).map_err(ConflictableTransactionError::Abort)
}

/// Reads, changes and writes back one queued row, moving its `outbox_due` entry (`due`) with
/// it: the one place that keeps the index in step with a row's status and due time (the
/// drainer's claims and failed tries, `mutations::outbox`, and `app outbox retry`). `change`
/// answers `false` to leave the row as it is; `Ok(None)` then, and when the id is not queued.
pub(crate) fn update_row(
    outbox: &TransactionalTree,
    due: &TransactionalTree,
    id: u64,
    change: impl Fn(&mut OutboxMail) -> bool,
) -> TxResult<Option<OutboxMail>> {
    let key = u64_key(id);
    let Some(bytes) = outbox.get(key)? else {
        return Ok(None);
    };
    let mut row = tx_row("outbox", &bytes)?;
    let was_due = (row.status == OutboxStatus::Pending).then_some(row.next_attempt_at);
    if !change(&mut row) {
        return Ok(None);
    }
    if let Some(at) = was_due {
        due.remove(&due_key(at, id))?;
    }
    if row.status == OutboxStatus::Pending {
        due.insert(&due_key(row.next_attempt_at, id), &[])?;
    }
    outbox.insert(&key, codec::encode(&row))?;
    Ok(Some(row))
}

impl Store {
    /// Scans the queue at `now`: the pending rows that are due (at most `limit`, soonest due
    /// first) and whose cause is durable (`event_id <= durable_event_id`), so a mail never
    /// goes out for a change a crash could still undo. It walks the `outbox_due` index and
    /// stops at the first row not yet due, so its cost is what is due (plus the few rows whose
    /// cause is not durable yet), not the length of the queue.
    ///
    /// # Errors
    /// `Unavailable` or `Corrupt` when a tree cannot be read.
    pub fn scan_outbox(
        &self,
        now: Timestamp,
        durable_event_id: u64,
        limit: usize,
    ) -> Result<OutboxScan, StoreError> {
        let mut scan = OutboxScan::default();
        for entry in self.trees.outbox_due.iter().keys() {
            let key = entry?;
            let Some((at, id)) = read_due_key(&key) else {
                continue; // not a key this build writes; `app check` reports such damage
            };
            if at > now {
                scan.next_due = Some(at);
                break;
            }
            // An entry without its pending row is an update this scan overtook.
            let Some(bytes) = self.trees.outbox.get(u64_key(id))? else {
                continue;
            };
            let row: OutboxMail = decode("outbox", &bytes)?;
            if row.status != OutboxStatus::Pending || row.event_id > durable_event_id {
                continue; // the doorbell rings once the cause is durable
            }
            if scan.due.len() == limit {
                scan.partial = true;
                break;
            }
            scan.due.push(row);
        }
        Ok(scan)
    }

    /// How many rows are pending (the `app_outbox_pending` gauge): the length of the due
    /// index, keys only, so no row is decoded.
    ///
    /// # Errors
    /// `Unavailable`.
    pub fn pending_mail_count(&self) -> Result<u64, StoreError> {
        let mut count = 0;
        for key in self.trees.outbox_due.iter().keys() {
            key?;
            count += 1;
        }
        Ok(count)
    }

    /// Makes a queued row (failed or pending) due at `now` with a fresh count of tries.
    ///
    /// # Errors
    /// `Conflict` when the mail was already sent, `NotFound` when there is no such row.
    pub fn requeue_mail(&self, id: u64, now: Timestamp) -> Result<OutboxMail, StoreError> {
        match self.update_queued(id, |row| requeue(row, now)) {
            Err(StoreError::NotFound(_)) if self.trees.outbox_sent.contains_key(u64_key(id))? => {
                Err(StoreError::Conflict {
                    field: None,
                    message: format!("mail {id} was already sent"),
                })
            }
            other => other,
        }
    }

    /// Requeues every failed row (see [`Store::requeue_mail`]); returns them.
    ///
    /// # Errors
    /// `Unavailable` or `Corrupt`.
    pub fn requeue_failed_mails(&self, now: Timestamp) -> Result<Vec<OutboxMail>, StoreError> {
        let failed = self.queued_mails(Some(OutboxStatus::Failed))?;
        let mut requeued = Vec::with_capacity(failed.len());
        for row in failed {
            requeued.push(self.update_queued(row.id, |row| requeue(row, now))?);
        }
        Ok(requeued)
    }

    /// The queue in id order: every row, or only those with `status`.
    ///
    /// # Errors
    /// `Unavailable` or `Corrupt`.
    pub fn queued_mails(
        &self,
        status: Option<OutboxStatus>,
    ) -> Result<Vec<OutboxMail>, StoreError> {
        let mut rows = Vec::new();
        for entry in self.trees.outbox.iter() {
            let (_, bytes) = entry?;
            let row: OutboxMail = decode("outbox", &bytes)?;
            if status.is_none_or(|wanted| wanted == row.status) {
                rows.push(row);
            }
        }
        Ok(rows)
    }

    /// The audit trail of accepted mails, in id order.
    ///
    /// # Errors
    /// `Unavailable` or `Corrupt`.
    pub fn sent_mails(&self) -> Result<Vec<OutboxMail>, StoreError> {
        self.trees
            .outbox_sent
            .iter()
            .values()
            .map(|bytes| decode("outbox_sent", &bytes?))
            .collect()
    }

    /// How many rows are pending, failed and sent (kept in the audit trail).
    ///
    /// # Errors
    /// `Unavailable` or `Corrupt`.
    pub fn outbox_counts(&self) -> Result<OutboxCounts, StoreError> {
        let mut counts = OutboxCounts::default();
        for row in self.queued_mails(None)? {
            match row.status {
                OutboxStatus::Pending => counts.pending += 1,
                OutboxStatus::Failed => counts.failed += 1,
                OutboxStatus::Sent => {} // never queued; counted from the trail below
            }
        }
        counts.sent = self.trees.outbox_sent.len() as u64;
        Ok(counts)
    }

    /// Bounds the audit trail to the `keep` newest ids; returns how many entries it dropped.
    ///
    /// # Errors
    /// `Unavailable`.
    pub fn prune_sent_mails(&self, keep: u64) -> Result<u64, StoreError> {
        let sent = &self.trees.outbox_sent;
        let skip = usize::try_from(keep).unwrap_or(usize::MAX);
        let Some(boundary) = sent.iter().keys().rev().nth(skip) else {
            return Ok(0);
        };
        let boundary = read_u64(&boundary?).unwrap_or(0);
        let mut dropped = 0;
        for key in sent.range(..=u64_key(boundary)).keys() {
            sent.remove(key?)?;
            dropped += 1;
        }
        Ok(dropped)
    }

    /// Runs `change` on queued row `id` in a transaction.
    fn update_queued(
        &self,
        id: u64,
        change: impl Fn(&mut OutboxMail),
    ) -> Result<OutboxMail, StoreError> {
        let row = (&self.trees.outbox, &self.trees.outbox_due).transaction(|(outbox, due)| {
            update_row(outbox, due, id, |row| {
                change(row);
                true
            })
        })?;
        row.ok_or(StoreError::NotFound("mail"))
    }
}

/// A fresh start for a requeued row: due now, with every try available again.
fn requeue(row: &mut OutboxMail, now: Timestamp) {
    row.status = OutboxStatus::Pending;
    row.attempts = 0;
    row.next_attempt_at = now;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Business, MailKind};
    use crate::store::MailFailure;

    fn row(id: u64, event_id: u64, next_attempt_at: Timestamp) -> OutboxMail {
        let now = Timestamp::now();
        OutboxMail {
            id,
            message_id: format!("<outbox-{id}.e@localhost>"),
            kind: MailKind::Welcome,
            to: "owner@example.com".into(),
            event_id,
            business: Business {
                id: uuid::Uuid::new_v4(),
                name: "Salon".into(),
                subdomain: "salon".into(),
                owner_email: "owner@example.com".into(),
                created_at: now,
                updated_at: now,
            },
            reservation: None,
            status: OutboxStatus::Pending,
            attempts: 0,
            next_attempt_at,
            last_error: None,
            created_at: now,
            sent_at: None,
        }
    }

    /// `mutation` (what the drainer records through the writer) applied as the writer applies
    /// it; returns the rows it changed.
    fn record(store: &Store, mutation: crate::store::Mutation) -> Vec<OutboxMail> {
        let outcome = store.apply_batch(&[mutation], &crate::store::fixtures::stamp());
        match outcome.into_iter().next() {
            Some(Ok((crate::store::Applied::Claimed(rows), None))) => rows,
            other => panic!("unexpected outcome {other:?}"),
        }
    }

    /// What the drainer records once the SMTP server took `ids`; how many rows moved.
    fn mark_sent(store: &Store, ids: &[u64]) -> usize {
        record(
            store,
            crate::store::Mutation::MailsSent { ids: ids.to_vec() },
        )
        .len()
    }

    /// What the drainer records after failed tries; the rows changed.
    fn record_failures(store: &Store, failures: Vec<MailFailure>) -> Vec<OutboxMail> {
        record(store, crate::store::Mutation::MailsFailed { failures })
    }

    /// A failed try of row `id` claimed until `claimed_until`: retried at `retry_at`, or
    /// failed for good without one.
    fn failure(
        id: u64,
        claimed_until: Timestamp,
        retry_at: Option<Timestamp>,
        error: &str,
    ) -> MailFailure {
        MailFailure {
            id,
            claimed_until,
            attempts: 1,
            retry_at,
            error: error.into(),
        }
    }

    fn store_with(rows: &[OutboxMail]) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db"), 1 << 20, 100).unwrap();
        for row in rows {
            store
                .trees
                .outbox
                .insert(u64_key(row.id), codec::encode(row))
                .unwrap();
            store
                .trees
                .outbox_due
                .insert(due_key(row.next_attempt_at, row.id), &[])
                .unwrap();
        }
        (dir, store)
    }

    #[test]
    fn scan_returns_due_rows_of_durable_causes_only() {
        let now = Timestamp::now();
        let later = now.plus_micros(5_000_000);
        let (_dir, store) = store_with(&[row(1, 1, now), row(2, 2, later), row(3, 9, now)]);
        let scan = store.scan_outbox(now, 2, 10).unwrap();
        assert_eq!(scan.due.iter().map(|r| r.id).collect::<Vec<_>>(), vec![1]);
        assert_eq!(store.pending_mail_count().unwrap(), 3);
        assert_eq!(scan.next_due, Some(later));
        assert!(!scan.partial);
    }

    #[test]
    fn a_scan_stops_at_its_limit_of_due_rows() {
        let now = Timestamp::now();
        let later = now.plus_micros(5_000_000);
        let (_dir, store) = store_with(&[row(1, 1, later), row(2, 2, now), row(3, 3, now)]);
        let scan = store.scan_outbox(now, 9, 1).unwrap();
        assert_eq!(scan.due.iter().map(|r| r.id).collect::<Vec<_>>(), vec![2]);
        assert!(scan.partial);
    }

    #[test]
    fn failed_and_waiting_rows_stay_out_of_the_scan_and_each_update_moves_the_index() {
        let now = Timestamp::now();
        let later = now.plus_micros(60_000_000);
        let (_dir, store) = store_with(&[row(1, 1, now), row(2, 2, now), row(3, 3, now)]);
        let changed = record_failures(
            &store,
            vec![
                failure(1, now, None, "550"),
                failure(2, now, Some(later), "421"),
            ],
        );
        assert_eq!(changed.len(), 2);
        // Only the index is read: it holds the two pending rows, by due time.
        let keys: Vec<(Timestamp, u64)> = store
            .trees
            .outbox_due
            .iter()
            .keys()
            .map(|key| read_due_key(&key.unwrap()).unwrap())
            .collect();
        assert_eq!(keys, [(now, 3), (later, 2)]);
        let scan = store.scan_outbox(now, 9, 10).unwrap();
        assert_eq!(scan.due.iter().map(|r| r.id).collect::<Vec<_>>(), vec![3]);
        assert_eq!(scan.next_due, Some(later));
        assert_eq!(mark_sent(&store, &[3]), 1);
        store.requeue_mail(1, now).unwrap();
        assert_eq!(store.pending_mail_count().unwrap(), 2);
        let scan = store.scan_outbox(now, 9, 10).unwrap();
        assert_eq!(scan.due.iter().map(|r| r.id).collect::<Vec<_>>(), vec![1]);
    }

    #[test]
    fn a_sent_row_moves_to_the_audit_trail_once() {
        let now = Timestamp::now();
        let (_dir, store) = store_with(&[row(1, 1, now)]);
        assert_eq!(mark_sent(&store, &[1]), 1);
        assert_eq!(mark_sent(&store, &[1]), 0);
        let sent = store.sent_mails().unwrap();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].status, OutboxStatus::Sent);
        assert_eq!(sent[0].attempts, 1);
        assert!(sent[0].sent_at.is_some_and(|at| at >= now));
        assert_eq!(
            store.pending_mail_count().unwrap(),
            0,
            "out of the due index too"
        );
        assert!(store.queued_mails(None).unwrap().is_empty());
        assert!(matches!(
            store.requeue_mail(1, now),
            Err(StoreError::Conflict { .. })
        ));
    }

    #[test]
    fn failed_rows_are_kept_and_requeued_with_fresh_tries() {
        let now = Timestamp::now();
        let (_dir, store) = store_with(&[row(1, 1, now), row(2, 2, now)]);
        record_failures(&store, vec![failure(1, now, None, "550 no such user")]);
        let counts = store.outbox_counts().unwrap();
        assert_eq!((counts.pending, counts.failed, counts.sent), (1, 1, 0));
        let failed = store.queued_mails(Some(OutboxStatus::Failed)).unwrap();
        assert_eq!(failed[0].last_error.as_deref(), Some("550 no such user"));
        let requeued = store.requeue_failed_mails(now).unwrap();
        assert_eq!(requeued.len(), 1);
        assert_eq!(requeued[0].attempts, 0);
        assert_eq!(requeued[0].status, OutboxStatus::Pending);
        assert!(matches!(
            store.requeue_mail(7, now),
            Err(StoreError::NotFound(_))
        ));
    }

    #[test]
    fn a_claim_moves_a_due_row_and_its_index_entry_and_the_first_claim_wins() {
        let now = Timestamp::now();
        let later = now.plus_micros(60_000_000);
        let (_dir, store) = store_with(&[row(1, 1, now), row(2, 2, now), row(3, 3, later)]);
        record_failures(&store, vec![failure(2, now, None, "550")]);
        let claim = |until: Timestamp| crate::store::Mutation::ClaimMails {
            claims: vec![(1, until), (2, until), (3, until), (9, until)],
        };
        // Only row 1 is pending and due: row 2 failed, row 3 waits, row 9 does not exist.
        let claimed = record(&store, claim(later));
        assert_eq!(claimed.iter().map(|r| r.id).collect::<Vec<_>>(), vec![1]);
        assert_eq!(claimed[0].next_attempt_at, later);
        let scan = store.scan_outbox(now, 9, 10).unwrap();
        assert!(scan.due.is_empty(), "the claimed row is no longer due");
        assert_eq!(scan.next_due, Some(later));
        assert_eq!(
            store.pending_mail_count().unwrap(),
            2,
            "rows 1 and 3, once each"
        );
        // A second claim taken from the same scan (another node's, in a cluster) finds it gone.
        assert!(record(&store, claim(later.plus_micros(1))).is_empty());
    }

    #[test]
    fn a_failure_is_recorded_only_on_a_row_still_under_the_claim_it_answers() {
        let now = Timestamp::now();
        let later = now.plus_micros(60_000_000);
        let rows: Vec<_> = (1..=4).map(|id| row(id, id, now)).collect();
        let (_dir, store) = store_with(&rows);
        assert_eq!(mark_sent(&store, &[1]), 1);
        store.requeue_mail(2, later).unwrap(); // `app outbox retry` moved it on
        let changed = record_failures(
            &store,
            vec![
                failure(1, now, None, "550 too late: sent"),
                failure(2, now, None, "550 too late: requeued"),
                failure(3, later, None, "550 another claim's"),
                failure(4, now, Some(later), "421 this claim's"),
                failure(9, now, None, "550 no such row"),
            ],
        );
        assert_eq!(changed.iter().map(|r| r.id).collect::<Vec<_>>(), vec![4]);
        assert_eq!(changed[0].attempts, 1);
        assert_eq!(changed[0].next_attempt_at, later);
        let counts = store.outbox_counts().unwrap();
        assert_eq!((counts.pending, counts.failed, counts.sent), (3, 0, 1));
        let queued = store.queued_mails(None).unwrap();
        assert!(queued.iter().all(|r| r.id == 4 || r.last_error.is_none()));
        // Reported twice (a record replayed), the second finds the row moved on.
        assert!(record_failures(&store, vec![failure(4, now, None, "550")]).is_empty());
    }

    #[test]
    fn pruning_keeps_the_newest_sent_ids() {
        let now = Timestamp::now();
        let rows: Vec<_> = (1..=5).map(|id| row(id, id, now)).collect();
        let (_dir, store) = store_with(&rows);
        assert_eq!(mark_sent(&store, &[1, 2, 3, 4, 5]), 5);
        assert_eq!(store.prune_sent_mails(2).unwrap(), 3);
        let left: Vec<u64> = store.sent_mails().unwrap().iter().map(|r| r.id).collect();
        assert_eq!(left, vec![4, 5]);
        assert_eq!(store.prune_sent_mails(2).unwrap(), 0);
    }
}
