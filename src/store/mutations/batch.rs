//! How the writer's batch becomes sled transactions: as few as refusals allow, normally one,
//! with every mutation seeing exactly the effects of those before it.
//!
//! Only the single writer thread calls [`Store::apply_batch`].

use super::{event_id, prepare, Applied, MailStamp, Mutation, Outcome, Prepared};
use crate::store::trees::Tx;
use crate::store::{Store, StoreError};
use sled::transaction::{
    ConflictableTransactionError, ConflictableTransactionResult, TransactionError,
};

/// Why a batch transaction was abandoned: the mutation at `index` refused (a rule, or a
/// damaged record). An aborted transaction has written nothing.
struct Refused {
    index: usize,
    error: StoreError,
}

impl Store {
    /// Applies one mutation in one transaction (see [`Store::apply_batch`]).
    ///
    /// # Errors
    /// `NotFound` / `Conflict` for rule violations (nothing is written); `Unavailable` or
    /// `Corrupt` for storage failures.
    pub fn apply(&self, mutation: &Mutation, stamp: &MailStamp) -> Outcome {
        self.apply_batch(std::slice::from_ref(mutation), stamp)
            .pop()
            .expect("one outcome per mutation")
    }

    /// Applies `mutations` in order and returns one outcome each, in as few sled transactions
    /// as possible: normally one for the whole batch, because each transaction costs a log
    /// write of its own (sled rolls its IO buffer per transaction) and takes the global
    /// transaction lock. Nothing is durable until [`Store::flush`].
    ///
    /// A mutation that refuses (`NotFound`, `Conflict`) aborts the transaction it is in, so
    /// the ones before it are committed in a transaction of their own, the refusal is
    /// recorded, and the batch goes on after it: every mutation sees exactly the effects of
    /// those before it, as if each ran alone, and event ids stay consecutive in commit order
    /// (DESIGN invariant 2).
    pub fn apply_batch(&self, mutations: &[Mutation], stamp: &MailStamp) -> Vec<Outcome> {
        let prepared: Vec<Prepared<'_>> = mutations.iter().map(prepare).collect();
        let outcomes = self.commit_prepared(&prepared, stamp);
        self.forget_changed_users(mutations);
        self.trim_log_after_write(outcomes.iter().any(|outcome| event_id(outcome).is_some()));
        outcomes
    }

    /// Commits `prepared` in as few transactions as refusals allow (see `apply_batch`).
    fn commit_prepared(&self, prepared: &[Prepared<'_>], stamp: &MailStamp) -> Vec<Outcome> {
        let mut outcomes = Vec::with_capacity(prepared.len());
        let (mut start, mut end) = (0, prepared.len());
        // Each turn either settles `start..end` or shrinks `end`, so this ends.
        while start < prepared.len() {
            let batch = &prepared[start..end];
            match self.trees.transact(|tx| apply_all(tx, batch, stamp)) {
                Ok(done) => {
                    outcomes.extend(done.into_iter().map(Ok));
                    start = end;
                    end = prepared.len();
                }
                Err(TransactionError::Abort(Refused { index: 0, error })) => {
                    let by_rule =
                        matches!(error, StoreError::NotFound(_) | StoreError::Conflict { .. });
                    if let (Prepared::Replicated { seq, .. }, true) = (&prepared[start], by_rule) {
                        // A record refused by a rule is refused alike on every node, so it is
                        // applied all the same: a node whose last records were refusals must
                        // not look behind the log once they have aged out of it. (A damaged
                        // record here is this node's own trouble: replayed after a restart.)
                        if let Err(error) = self.note_cluster_seq(*seq) {
                            outcomes.push(Err(error));
                            start += 1;
                            continue;
                        }
                    }
                    outcomes.push(Err(error));
                    start += 1;
                    end = prepared.len();
                }
                // Commit the ones before the refusal; it comes first in the next turn.
                Err(TransactionError::Abort(Refused { index, .. })) => end = start + index,
                Err(TransactionError::Storage(error)) => {
                    tracing::error!(%error, "a batch transaction failed");
                    let error = error.to_string();
                    outcomes.extend((start..end).map(|_| {
                        Err(StoreError::Unavailable(sled::Error::Io(
                            std::io::Error::other(error.clone()),
                        )))
                    }));
                    start = end;
                    end = prepared.len();
                }
            }
        }
        outcomes
    }
}

/// The body of a batch transaction: applies each prepared mutation in order, and aborts at
/// the first refusal, naming it.
fn apply_all(
    tx: &Tx<'_>,
    prepared: &[Prepared<'_>],
    stamp: &MailStamp,
) -> ConflictableTransactionResult<Vec<(Applied, Option<u64>)>, Refused> {
    let mut done = Vec::with_capacity(prepared.len());
    for (index, mutation) in prepared.iter().enumerate() {
        match tx.apply(mutation, stamp) {
            Ok(outcome) => done.push(outcome),
            Err(ConflictableTransactionError::Abort(error)) => {
                return Err(ConflictableTransactionError::Abort(Refused {
                    index,
                    error,
                }))
            }
            Err(ConflictableTransactionError::Conflict) => {
                return Err(ConflictableTransactionError::Conflict)
            }
            Err(ConflictableTransactionError::Storage(error)) => {
                return Err(ConflictableTransactionError::Storage(error))
            }
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::fixtures::{create, stamp, store};
    use uuid::Uuid;

    #[test]
    fn a_refusal_inside_a_batch_fails_alone_and_leaves_no_gap_in_event_ids() {
        let (_dir, store) = store();
        let first = store.apply_batch(&[create("a")], &stamp());
        let Ok((Applied::Business(a), Some(1))) = &first[0] else {
            panic!("first create: {first:?}");
        };
        let batch = [
            create("b"),
            create("a"), // taken: refused, nothing written
            create("c"),
            // A delete only begins here (no event until its bookings are cancelled: closing),
            // and the business is gone from here on.
            Mutation::DeleteBusiness { id: a.id },
            create("b"),                           // taken earlier in this very batch
            create("a"),                           // still taken while "a" closes
            Mutation::DeleteBusiness { id: a.id }, // gone already
            Mutation::DeleteBusiness { id: Uuid::nil() }, // no such business
            create("d"),
        ];
        let outcomes = store.apply_batch(&batch, &stamp());
        let ids: Vec<Option<u64>> = outcomes.iter().map(event_id).collect();
        assert_eq!(
            ids,
            [
                Some(2),
                None,
                Some(3),
                None,
                None,
                None,
                None,
                None,
                Some(4)
            ]
        );
        assert!(matches!(outcomes[3], Ok((Applied::Deleted(_), None))));
        assert!(matches!(outcomes[6], Err(StoreError::NotFound("business"))));
        assert!(matches!(
            outcomes[1],
            Err(StoreError::Conflict {
                field: Some("subdomain"),
                ..
            })
        ));
        assert!(matches!(outcomes[4], Err(StoreError::Conflict { .. })));
        assert!(matches!(outcomes[5], Err(StoreError::Conflict { .. })));
        assert!(matches!(outcomes[7], Err(StoreError::NotFound("business"))));
        // Finishing the delete takes the next id, and frees the subdomain.
        let step = store.close_step(10, &stamp()).unwrap().unwrap();
        assert_eq!(step.newest_event, Some(5));
        assert!(store.apply(&create("a"), &stamp()).is_ok());
        assert_eq!(store.next_event_id().unwrap(), 7);
        let logged: Vec<u64> = store
            .trees
            .events
            .iter()
            .keys()
            .map(|key| crate::store::keys::read_u64(&key.unwrap()).unwrap())
            .collect();
        assert_eq!(logged, [1, 2, 3, 4, 5, 6]);
    }

    /// The ids in the event log and in its per-business index, oldest first.
    fn retained(store: &Store) -> (Vec<u64>, Vec<u64>) {
        use crate::store::keys::{read_u64, uuid_u64_suffix};
        let trees = &store.trees;
        let log = trees
            .events
            .iter()
            .keys()
            .map(|key| read_u64(&key.unwrap()).unwrap());
        let mut index: Vec<u64> = (trees.business_events.iter().keys())
            .flat_map(|key| uuid_u64_suffix(&key.unwrap()))
            .collect();
        index.sort_unstable();
        (log.collect(), index)
    }

    #[test]
    fn invariant_2_the_log_and_its_index_hold_the_newest_capacity_after_every_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let store = Store::open(&path, 1 << 20, 60).unwrap();
        for round in 0..15u64 {
            let batch: Vec<Mutation> = (0..7).map(|i| create(&format!("r{round}x{i}"))).collect();
            store.apply_batch(&batch, &stamp());
            let newest = (round + 1) * 7;
            let expected: Vec<u64> = (newest.saturating_sub(60) + 1..=newest).collect();
            assert_eq!(
                retained(&store),
                (expected.clone(), expected),
                "after batch {round}"
            );
        }
        // A delete's closing step appends its event in a transaction of its own: trimmed too.
        let Ok((Applied::Business(business), _)) = store.apply(&create("closes"), &stamp()) else {
            panic!("create");
        };
        store
            .apply(&Mutation::DeleteBusiness { id: business.id }, &stamp())
            .unwrap();
        let step = store.close_step(10, &stamp()).unwrap().unwrap();
        assert_eq!(step.newest_event, Some(107));
        let expected: Vec<u64> = (48..=107).collect();
        assert_eq!(retained(&store), (expected.clone(), expected));
        // A store reopened with a smaller retention trims at open (the activity log's 50 stay).
        drop(store);
        let store = Store::open(&path, 1 << 20, 5).unwrap();
        let expected: Vec<u64> = (58..=107).collect();
        assert_eq!(retained(&store), (expected.clone(), expected));
    }
}
