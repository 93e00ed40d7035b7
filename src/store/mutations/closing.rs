//! Deleting a business that still has bookings (API.md "The lifecycle of a booking"): each
//! of its `confirmed` reservations that starts after the delete was asked is cancelled, with
//! its `reservation_cancelled` event and the customer's "business closed" mail, and only then
//! does the `business_deleted` event come.
//!
//! There can be 100 000 of them, and one transaction over all of them would hold sled's
//! global transaction lock long enough to stall every other request. So a delete happens in
//! three durable steps, each its own transaction:
//! 1. `DeleteBusiness` only files the business in the `closings` tree with the time of the
//!    request ([`Tx::begin_close`]), and its caller is answered once that is durable: from
//!    then on the business is gone to every read and change (404), as after step 3;
//! 2. the writer thread cancels [`CLOSE_CHUNK`](crate::writer::CLOSE_CHUNK) of them at a time
//!    between batches ([`Store::close_step`]), each chunk recording in the `closings` entry
//!    the key of the last reservation it looked at;
//! 3. the last step deletes the business (`Tx::delete_business`, which hands the leftover
//!    reservations to the purge) and removes the `closings` entry in the same transaction.
//!
//! A crash between steps loses nothing and repeats nothing: each chunk's cancellations,
//! mails and cursor commit together, and the next start resumes after the cursor.

use super::tx::{tx_decode, TxResult};
use super::{Applied, MailStamp};
use crate::domain::{Business, MailKind, Reservation, ReservationStatus, Timestamp};
use crate::store::keys::read_uuid;
use crate::store::trees::Tx;
use crate::store::{codec, decode, Store, StoreError};
use serde::{Deserialize, Serialize};
use sled::transaction::ConflictableTransactionError;
use uuid::Uuid;

/// A business whose deletion is under way (the value of its `closings` entry).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Closing {
    /// When the delete was asked: reservations starting after it are cancelled.
    pub since: Timestamp,
    /// The key of the last reservation already looked at; a resumed close goes on after it.
    pub after: Option<Vec<u8>>,
}

/// What one [`Store::close_step`] did.
#[derive(Debug)]
pub struct CloseStep {
    /// The business it worked on.
    pub business_id: Uuid,
    /// The business as it was, when this step deleted it (the close is over).
    pub deleted: Option<Business>,
    /// The newest event the step appended, if any.
    pub newest_event: Option<u64>,
    /// Reservations it cancelled.
    pub cancelled: usize,
}

/// Reservations looked at per step for each one cancelled at most: past or cancelled ones
/// cost only a read, but a business of 100 000 past bookings must still go in short steps.
const SCAN_FACTOR: usize = 8;

impl Tx<'_> {
    /// Starts deleting business `id` (step 1 above): no event yet, and the caller is answered
    /// once this is durable. From then on the business is gone to every read and change
    /// (`Tx::business`, `Store::business`): a second delete finds no business.
    pub(super) fn begin_close(&self, id: Uuid, now: Timestamp) -> TxResult<(Applied, Option<u64>)> {
        let record = self.business(id)?;
        let closing = Closing {
            since: now,
            after: None,
        };
        self.closings
            .insert(id.as_bytes(), codec::encode(&closing))?;
        Ok((Applied::Deleted(record.business), None))
    }
}

impl Store {
    /// Whether a business's deletion is under way.
    ///
    /// # Errors
    /// `Unavailable` when the tree cannot be read.
    pub fn close_pending(&self) -> Result<bool, StoreError> {
        Ok(!self.trees.closings.is_empty())
    }

    /// Cancels up to `limit` future bookings of the oldest business being deleted, in one
    /// transaction with its cursor, or deletes the business when none is left (steps 2 and 3
    /// above). `None`: no deletion is under way. Only the writer thread calls this, so what
    /// is read before the transaction is still there inside it; nothing is durable until
    /// [`Store::flush`].
    ///
    /// # Errors
    /// `Unavailable` or `Corrupt`.
    pub fn close_step(
        &self,
        limit: usize,
        stamp: &MailStamp,
    ) -> Result<Option<CloseStep>, StoreError> {
        let Some((business_key, value)) = self.trees.closings.first()? else {
            return Ok(None);
        };
        let closing: Closing = decode("closings", &value)?;
        let business_id = match read_uuid(&business_key) {
            Some(id) if self.trees.businesses.contains_key(&business_key)? => id,
            // Damage (not a key this build writes, or no such business): dropped, or every
            // later delete would wait behind it.
            _ => {
                tracing::error!(key = ?business_key, "dropped a closing entry without its business");
                self.trees.closings.remove(&business_key)?;
                return Ok(Some(CloseStep {
                    business_id: read_uuid(&business_key).unwrap_or_default(),
                    deleted: None,
                    newest_event: None,
                    cancelled: 0,
                }));
            }
        };
        let mut chunk = Vec::with_capacity(limit);
        let mut last = closing.after.clone();
        let mut done = true;
        let start = match &closing.after {
            // The smallest key after the cursor.
            Some(after) => [after.as_slice(), &[0]].concat(),
            None => business_key.to_vec(),
        };
        for (scanned, entry) in self.trees.reservations.range(start..).enumerate() {
            let (key, value) = entry?;
            if !key.starts_with(&business_key) {
                break;
            }
            if chunk.len() == limit || scanned == limit * SCAN_FACTOR {
                done = false;
                break;
            }
            let reservation: Reservation = decode("reservations", &value)?;
            if due_to_cancel(&reservation, closing.since) {
                chunk.push(key.to_vec());
            }
            last = Some(key.to_vec());
        }
        // A cluster's replica stamps the delete's record time, which every node shares (the
        // ids and order already are); a single node, the time of each step.
        let now = if self.cluster_applied()? > 0 {
            closing.since
        } else {
            Timestamp::now()
        };
        let (newest_event, deleted) = self.trees.transact(|tx| {
            let record = tx.stored_business(business_id)?;
            let mut newest = None;
            for key in &chunk {
                let Some(bytes) = tx.reservations.get(key)? else {
                    continue;
                };
                let reservation: Reservation = tx_decode("reservations", &bytes)?;
                if !due_to_cancel(&reservation, closing.since) {
                    continue;
                }
                let (_, id) = tx.cancel_stored(
                    key,
                    reservation,
                    &record,
                    now,
                    stamp,
                    MailKind::BusinessClosed,
                )?;
                newest = Some(id);
            }
            if done {
                let (_, id) = tx.delete_business(business_id, now)?;
                tx.closings.remove(&business_key)?;
                return Ok((id, Some(record.business)));
            }
            let cursor = Closing {
                since: closing.since,
                after: last.clone(),
            };
            tx.closings.insert(&business_key, codec::encode(&cursor))?;
            Ok::<_, ConflictableTransactionError<StoreError>>((newest, None))
        })?;
        self.trim_log_after_write(newest_event.is_some());
        tracing::debug!(%business_id, cancelled = chunk.len(), done, "closing a deleted business");
        Ok(Some(CloseStep {
            business_id,
            deleted,
            newest_event,
            cancelled: chunk.len(),
        }))
    }
}

/// Whether deleting the business cancels `reservation`: confirmed, and starting after the
/// delete was asked.
fn due_to_cancel(reservation: &Reservation, since: Timestamp) -> bool {
    reservation.status == ReservationStatus::Confirmed && reservation.starts_at > since
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{EventKind, NewReservation, OutboxStatus};
    use crate::store::fixtures::{create, stamp, store};
    use crate::store::mutations::Outcome;
    use crate::store::Mutation;

    const HOUR: i64 = 3_600_000_000;

    fn book(store: &Store, stamp: &MailStamp, business_id: Uuid, starts_in: i64) -> Outcome {
        let new = NewReservation {
            customer_name: "Ann".into(),
            customer_email: "ann@example.com".into(),
            starts_at: Timestamp::now().plus_micros(starts_in),
            service: "Cut".into(),
        };
        store.apply(&Mutation::CreateReservation { business_id, new }, stamp)
    }

    fn pending_kinds(store: &Store) -> Vec<MailKind> {
        let rows = store.queued_mails(Some(OutboxStatus::Pending)).unwrap();
        rows.into_iter().map(|row| row.kind).collect()
    }

    #[test]
    fn a_delete_cancels_only_confirmed_future_bookings_in_steps_then_deletes_once() {
        let (_dir, store) = store();
        let stamp = MailStamp {
            reminder_micros: HOUR,
            ..stamp()
        };
        let Applied::Business(business) = store.apply(&create("gone"), &stamp).unwrap().0 else {
            panic!("a business");
        };
        let id = business.id;
        for _ in 0..3 {
            book(&store, &stamp, id, 5 * HOUR).unwrap();
        }
        book(&store, &stamp, id, -HOUR).unwrap();
        let Applied::Reservation(cancelled) = book(&store, &stamp, id, 5 * HOUR).unwrap().0 else {
            panic!("a reservation");
        };
        store
            .apply(
                &Mutation::CancelReservation {
                    business_id: id,
                    reservation_id: cancelled.id,
                },
                &stamp,
            )
            .unwrap();
        // Four reminders were scheduled; the cancel took its own back.
        assert_eq!(store.trees.reminders.len(), 3);
        let before = store.next_event_id().unwrap();

        let (applied, event) = store
            .apply(&Mutation::DeleteBusiness { id }, &stamp)
            .unwrap();
        assert!(matches!(applied, Applied::Deleted(_)) && event.is_none());
        // While it closes, it is gone to every read and change, as once it is deleted; a
        // second delete finds nothing.
        assert!(store.business(id).unwrap().is_none());
        let listed = store.list_businesses(None, 10, None).unwrap();
        assert_eq!((listed.items.len(), listed.count), (0, 0));
        let refused = book(&store, &stamp, id, 5 * HOUR).unwrap_err();
        assert!(
            matches!(refused, StoreError::NotFound("business")),
            "{refused:?}"
        );
        let again = store
            .apply(&Mutation::DeleteBusiness { id }, &stamp)
            .unwrap_err();
        assert!(
            matches!(again, StoreError::NotFound("business")),
            "{again:?}"
        );

        let mut steps = Vec::new();
        while let Some(step) = store.close_step(2, &stamp).unwrap() {
            steps.push((step.cancelled, step.deleted.is_some()));
        }
        assert_eq!(steps, [(2, false), (1, true)]);
        assert!(!store.close_pending().unwrap());
        let kinds_in_order: Vec<EventKind> = (before..store.next_event_id().unwrap())
            .map(|id| store.event(id).unwrap().unwrap().kind)
            .collect();
        use EventKind::{BusinessDeleted as Deleted, ReservationCancelled as Cancelled};
        assert_eq!(kinds_in_order, [Cancelled, Cancelled, Cancelled, Deleted]);
        let pending = pending_kinds(&store);
        let closed = pending.iter().filter(|k| **k == MailKind::BusinessClosed);
        assert_eq!(closed.count(), 3, "{pending:?}");
        assert!(!pending.contains(&MailKind::Reminder), "{pending:?}");
        assert!(store.trees.reminders.is_empty());
    }
}
