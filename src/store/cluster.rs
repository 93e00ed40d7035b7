//! What cluster mode (`crate::cluster`) needs of the store: the newest log sequence applied,
//! which the writer stores with each replicated record's effects (so a restart resumes the
//! log exactly after it), and the log's epoch, which a fresh store takes from the log so
//! that every node hands out the same `epoch` with the same ids.

use super::{codec, decode, meta_keys, Store, StoreError};

impl Store {
    /// The newest cluster log sequence this store has applied (0: none).
    pub fn cluster_applied(&self) -> Result<u64, StoreError> {
        match self.trees.meta.get(meta_keys::CLUSTER_SEQ)? {
            Some(bytes) => decode("meta", &bytes),
            None => Ok(0),
        }
    }

    /// Records that the log's record `seq` was applied though it changed nothing (refused on
    /// every node alike). Durable with the writer's next flush.
    pub(crate) fn note_cluster_seq(&self, seq: u64) -> Result<(), StoreError> {
        if seq > self.cluster_applied()? {
            self.trees
                .meta
                .insert(meta_keys::CLUSTER_SEQ, codec::encode(&seq))?;
        }
        Ok(())
    }

    /// Makes `epoch` (the cluster log's) this store's epoch. A store that has applied nothing
    /// of a log and holds no event takes it; a store already on it is left alone; any other
    /// store belongs to another history and is refused, since serving it would hand out ids
    /// that mean something else on the other nodes.
    ///
    /// # Errors
    /// `NotWritable` for a store of another history; storage failures.
    pub fn adopt_epoch(mut self, epoch: &str) -> Result<Self, StoreError> {
        if &*self.epoch == epoch {
            return Ok(self);
        }
        if self.cluster_applied()? > 0 || self.next_event_id()? > 1 || self.user_count() > 0 {
            return Err(StoreError::NotWritable(format!(
                "this data folder holds another history (epoch {}) than the cluster's log \
                 (epoch {epoch}); give this node an empty --data folder, from which it \
                 replays the log (docs/cluster.md)",
                self.epoch
            )));
        }
        self.trees
            .meta
            .insert(meta_keys::EPOCH, codec::encode(&epoch.to_string()))?;
        self.flush()?;
        self.epoch = epoch.into();
        Ok(self)
    }
}

impl Store {
    /// Makes this store, just filled from a cluster node's backup (`app restore --replica`),
    /// a replica of the log with `epoch` that has applied every record up to `seq`: a node
    /// started on it replays the log from `seq + 1`.
    ///
    /// # Errors
    /// The store cannot be written or flushed.
    pub fn seed_replica(mut self, epoch: &str, seq: u64) -> Result<Self, StoreError> {
        let meta = &self.trees.meta;
        meta.insert(meta_keys::EPOCH, codec::encode(&epoch.to_string()))?;
        meta.insert(meta_keys::CLUSTER_SEQ, codec::encode(&seq))?;
        self.flush()?;
        self.epoch = epoch.into();
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use crate::domain::{EventKind, NewReservation, Timestamp};
    use crate::store::fixtures::{create, stamp, store};
    use crate::store::{Applied, Mutation, StoreError};
    use uuid::Uuid;

    /// A created business's id, its event id and creation time, or why it was refused.
    type Seen = Result<(Uuid, Option<u64>, String), String>;

    fn replicated(seq: u64, inner: Mutation) -> Mutation {
        Mutation::Replicated {
            seq,
            now: Timestamp::from_micros(1_700_000_000_000_000 + seq as i64),
            new_id: Uuid::from_u128(u128::from(seq)),
            inner: Box::new(inner),
        }
    }

    #[test]
    fn the_same_records_give_the_same_store_on_every_node() {
        // The cluster's promise: ids, event ids and refusals follow the log alone
        // (DESIGN invariant 2 across nodes).
        let log = [
            replicated(2, create("a")),
            replicated(3, create("b")),
            replicated(4, create("a")),
        ];
        let run = |batched: bool| {
            let (dir, store) = store();
            let outcomes = if batched {
                store.apply_batch(&log, &stamp())
            } else {
                log.iter().map(|m| store.apply(m, &stamp())).collect()
            };
            let seen: Vec<Seen> = outcomes
                .into_iter()
                .map(|outcome| match outcome {
                    Ok((Applied::Business(b), id)) => Ok((b.id, id, b.created_at.to_string())),
                    Ok(other) => Err(format!("{other:?}")),
                    Err(StoreError::Conflict { .. }) => Err("conflict".into()),
                    Err(error) => Err(error.to_string()),
                })
                .collect();
            // A refused record counts as applied too: refused alike on every node, it needs
            // no replay, and a node whose last records were refusals is not behind the log.
            let applied = store.cluster_applied().unwrap();
            (dir, seen, applied)
        };
        let (_a, one_by_one, applied) = run(false);
        let (_b, batched, applied_batched) = run(true);
        assert_eq!(one_by_one, batched);
        assert_eq!((applied, applied_batched), (4, 4));
        assert_eq!(one_by_one[0].as_ref().unwrap().0, Uuid::from_u128(2));
        assert_eq!(one_by_one[1].as_ref().unwrap().1, Some(2));
        assert_eq!(one_by_one[2], Err("conflict".to_string()));
    }

    #[test]
    fn a_replicated_delete_stamps_its_cancellations_with_the_records_time() {
        // Every node runs the close steps at its own moment; the events must still be equal.
        let (_dir, store) = store();
        let stamp = stamp();
        let salon = Uuid::from_u128(1);
        store
            .apply(&replicated(1, create("salon")), &stamp)
            .unwrap();
        let booking = Mutation::CreateReservation {
            business_id: salon,
            new: NewReservation {
                customer_name: "C".into(),
                customer_email: "c@example.com".into(),
                starts_at: Timestamp::now().plus_micros(86_400_000_000),
                service: "cut".into(),
            },
        };
        store.apply(&replicated(2, booking), &stamp).unwrap();
        let delete = replicated(3, Mutation::DeleteBusiness { id: salon });
        let Mutation::Replicated { now: asked, .. } = &delete else {
            unreachable!("a replicated record");
        };
        let asked = *asked;
        store.apply(&delete, &stamp).unwrap();
        while store.close_step(10, &stamp).unwrap().is_some() {}
        let newest = store.next_event_id().unwrap() - 1;
        let closing: Vec<(EventKind, Timestamp)> = (newest - 1..=newest)
            .map(|id| store.event(id).unwrap().unwrap())
            .map(|event| (event.kind, event.timestamp))
            .collect();
        assert_eq!(
            closing,
            [
                (EventKind::ReservationCancelled, asked),
                (EventKind::BusinessDeleted, asked)
            ]
        );
    }

    #[test]
    fn a_fresh_store_takes_the_logs_epoch_and_a_used_one_refuses_it() {
        let (_dir, fresh) = store();
        let adopted = fresh.adopt_epoch("log-epoch").unwrap();
        assert_eq!(adopted.epoch(), "log-epoch");
        // Again: already on it.
        let adopted = adopted.adopt_epoch("log-epoch").unwrap();
        adopted.apply(&create("a"), &stamp()).unwrap();
        assert!(adopted.clone().adopt_epoch("other").is_err());
        assert_eq!(adopted.epoch(), "log-epoch");
    }
}
