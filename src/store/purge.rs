//! The second half of deleting a business: removing its reservations a chunk at a time.
//!
//! The delete itself (`mutations::businesses`) removes the business and files its id in the
//! `purges` tree; its reservations are unreachable from then on, since every read and write
//! of a reservation starts from its business. The writer thread calls
//! [`Store::purge_deleted`] between batches until nothing is left, and again at the next
//! start when a stop or a crash cut it short: each chunk is its own transaction, so a purge
//! resumes where the last committed chunk left it.

use super::keys::read_uuid;
use super::{decode, StoreError};
use crate::domain::Reservation;
use crate::store::Store;
use sled::transaction::ConflictableTransactionError;
use uuid::Uuid;

impl Store {
    /// Whether a deleted business still has reservations to remove.
    ///
    /// # Errors
    /// `Unavailable` when the tree cannot be read.
    pub fn purge_pending(&self) -> Result<bool, StoreError> {
        Ok(!self.trees.purges.is_empty())
    }

    /// Whether `business_id` is deleted with its reservations not yet all removed (backup
    /// and check leave those reservations out).
    ///
    /// # Errors
    /// `Unavailable` when the tree cannot be read.
    pub fn purging(&self, business_id: Uuid) -> Result<bool, StoreError> {
        Ok(self.trees.purges.contains_key(business_id.as_bytes())?)
    }

    /// Removes up to `limit` reservations of the oldest pending purge in one transaction
    /// (its `purges` entry goes with the last of them); returns whether any purge remains.
    /// Only the writer thread calls this, so the keys listed before the transaction are
    /// still there inside it.
    ///
    /// # Errors
    /// `Unavailable` or `Corrupt`.
    pub fn purge_deleted(&self, limit: usize) -> Result<bool, StoreError> {
        let Some(first) = self.trees.purges.first()? else {
            return Ok(false);
        };
        let business_key = first.0;
        let mut chunk = Vec::with_capacity(limit);
        for entry in self
            .trees
            .reservations
            .scan_prefix(&business_key)
            .take(limit + 1)
        {
            let (key, value) = entry?;
            let reservation: Reservation = decode("reservations", &value)?;
            chunk.push((key, reservation.id));
        }
        let last_chunk = chunk.len() <= limit;
        chunk.truncate(limit);
        self.trees.transact(|tx| {
            for (key, id) in &chunk {
                tx.reservations.remove(key)?;
                tx.reservation_ids.remove(id.as_bytes())?;
                // A reminder already sent or given up leaves its index entry until now.
                tx.reminders.remove(id.as_bytes())?;
            }
            if last_chunk {
                tx.purges.remove(&business_key)?;
            }
            Ok::<_, ConflictableTransactionError<StoreError>>(())
        })?;
        tracing::debug!(
            business = ?read_uuid(&business_key),
            removed = chunk.len(),
            done = last_chunk,
            "purged reservations of a deleted business"
        );
        Ok(!last_chunk || !self.trees.purges.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{NewBusiness, NewReservation, Timestamp};
    use crate::store::fixtures::stamp;
    use crate::store::{Applied, Mutation};

    fn business(store: &Store, subdomain: &str) -> Uuid {
        let create = Mutation::CreateBusiness(NewBusiness {
            name: "Salon".into(),
            subdomain: subdomain.into(),
            owner_email: "owner@example.com".into(),
        });
        match store.apply(&create, &stamp()).unwrap().0 {
            Applied::Business(business) => business.id,
            other => panic!("{other:?}"),
        }
    }

    fn book(store: &Store, business_id: Uuid, n: usize) {
        let batch: Vec<Mutation> = (0..n)
            .map(|i| Mutation::CreateReservation {
                business_id,
                new: NewReservation {
                    customer_name: format!("Customer {i}"),
                    customer_email: format!("c{i}@example.com"),
                    starts_at: Timestamp::now().plus_micros(3_600_000_000),
                    service: "Cut".into(),
                },
            })
            .collect();
        for outcome in store.apply_batch(&batch, &stamp()) {
            outcome.unwrap();
        }
    }

    #[test]
    fn a_delete_answers_at_once_and_its_reservations_go_in_chunks_leaving_others_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db"), 1 << 20, 100).unwrap();
        let (gone, kept) = (business(&store, "gone"), business(&store, "kept"));
        book(&store, gone, 25);
        book(&store, kept, 3);
        store
            .apply(&Mutation::DeleteBusiness { id: gone }, &stamp())
            .unwrap();
        // Its 25 future bookings are cancelled first, in steps, the last one deleting it.
        while store.close_step(10, &stamp()).unwrap().is_some() {}
        // The delete already shows: counts, and no purge has run yet.
        assert_eq!(store.reservation_count().unwrap(), 3);
        assert!(store.purging(gone).unwrap() && store.purge_pending().unwrap());
        assert_eq!(store.trees.reservations.len(), 28);
        let mut chunks = 0;
        while store.purge_deleted(10).unwrap() {
            chunks += 1;
            assert!(chunks < 10, "the purge ends");
        }
        assert_eq!(
            chunks, 2,
            "25 reservations in chunks of 10: two with more to come"
        );
        assert!(!store.purging(gone).unwrap() && !store.purge_pending().unwrap());
        assert_eq!(store.trees.reservations.len(), 3);
        assert_eq!(store.trees.reservation_ids.len(), 3);
        assert!(!store.purge_deleted(10).unwrap());
    }
}
