//! Reservation mutations: create (with the customer's confirmation, the owner's notice and
//! the customer's reminder, due `--reminder-hours` before the start) and cancel (with the
//! customer's cancellation notice, and the reminder taken back), each with its event.
//!
//! A reservation's `starts_at` never changes once booked (there is no update), so the due
//! time of its reminder, fixed at booking, stays right; the `reminders` tree (reservation id
//! → outbox id) finds the row again when the reservation is cancelled first.

use super::tx::{abort, tx_decode, TxResult};
use super::BusinessRecord;
use super::{Applied, MailStamp};
use crate::domain::{
    Event, EventKind, MailKind, OutboxMail, OutboxStatus, Reservation, ReservationStatus, Timestamp,
};
use crate::store::keys::{due_key, read_u64, u64_key, uuid_u64_key};
use crate::store::trees::Tx;
use crate::store::{codec, meta_keys, StoreError};
use uuid::Uuid;

impl Tx<'_> {
    /// Stores a new reservation of an existing business.
    pub(super) fn create_reservation(
        &self,
        reservation: &Reservation,
        stamp: &MailStamp,
    ) -> TxResult<(Applied, Option<u64>)> {
        let business_id = reservation.business_id;
        let record = self.business(business_id)?;
        let id = self.take_event_id()?;
        let key = uuid_u64_key(business_id, id);
        self.reservations.insert(&key, codec::encode(reservation))?;
        self.reservation_ids
            .insert(reservation.id.as_bytes(), &key)?;
        self.add_reservation_count(business_id, 1)?;
        self.add_counter(meta_keys::RESERVATION_COUNT, 1)?;
        let event = Event::for_reservation(
            id,
            EventKind::ReservationCreated,
            &record.business,
            reservation,
            reservation.created_at,
        );
        self.append_event(&event)?;
        self.enqueue_mail(
            stamp,
            MailKind::ReservationConfirmation,
            &reservation.customer_email,
            &event,
            &record.business,
            Some(reservation),
        )?;
        self.enqueue_mail(
            stamp,
            MailKind::ReservationNotice,
            &record.business.owner_email,
            &event,
            &record.business,
            Some(reservation),
        )?;
        if let Some(due) = reminder_due(stamp.reminder_micros, reservation) {
            let outbox_id = self.enqueue_mail_due(
                stamp,
                MailKind::Reminder,
                &reservation.customer_email,
                &event,
                &record.business,
                Some(reservation),
                due,
            )?;
            self.reminders
                .insert(reservation.id.as_bytes(), &u64_key(outbox_id))?;
        }
        Ok((Applied::Reservation(reservation.clone()), Some(id)))
    }

    /// Marks a reservation of `business_id` cancelled; cancelling twice is a conflict.
    pub(super) fn cancel_reservation(
        &self,
        business_id: Uuid,
        reservation_id: Uuid,
        now: Timestamp,
        stamp: &MailStamp,
    ) -> TxResult<(Applied, Option<u64>)> {
        let record = self.business(business_id)?;
        let Some(key) = self.reservation_ids.get(reservation_id.as_bytes())? else {
            return abort(StoreError::NotFound("reservation"));
        };
        // A reservation of another business is "not found" here, never "forbidden".
        if !key.starts_with(business_id.as_bytes()) {
            return abort(StoreError::NotFound("reservation"));
        }
        let Some(bytes) = self.reservations.get(&key)? else {
            return abort(StoreError::NotFound("reservation"));
        };
        let reservation: Reservation = tx_decode("reservations", &bytes)?;
        if reservation.status == ReservationStatus::Cancelled {
            return abort(StoreError::Conflict {
                field: None,
                message: "this reservation is already cancelled".into(),
            });
        }
        let (reservation, id) = self.cancel_stored(
            &key,
            reservation,
            &record,
            now,
            stamp,
            MailKind::CancellationNotice,
        )?;
        Ok((Applied::Reservation(reservation), Some(id)))
    }

    /// Cancels a confirmed reservation stored under `key`: its event, its mail (`mail`: the
    /// customer's cancellation notice, or the closed notice when the business is deleted) and
    /// the removal of its reminder, all in this transaction. Returns it and its event id.
    #[allow(clippy::too_many_arguments)] // the transaction's context, shared by two callers
    pub(super) fn cancel_stored(
        &self,
        key: &[u8],
        mut reservation: Reservation,
        record: &BusinessRecord,
        now: Timestamp,
        stamp: &MailStamp,
        mail: MailKind,
    ) -> TxResult<(Reservation, u64)> {
        reservation.status = ReservationStatus::Cancelled;
        self.reservations.insert(key, codec::encode(&reservation))?;
        let id = self.take_event_id()?;
        let event = Event::for_reservation(
            id,
            EventKind::ReservationCancelled,
            &record.business,
            &reservation,
            now,
        );
        self.append_event(&event)?;
        self.enqueue_mail(
            stamp,
            mail,
            &reservation.customer_email,
            &event,
            &record.business,
            Some(&reservation),
        )?;
        self.drop_reminder(reservation.id)?;
        Ok((reservation, id))
    }

    /// Takes back the reminder of a reservation being cancelled, unless the drainer has
    /// already sent or given it up (then only the index entry goes).
    pub(super) fn drop_reminder(&self, reservation_id: Uuid) -> TxResult<()> {
        let Some(entry) = self.reminders.remove(reservation_id.as_bytes())? else {
            return Ok(());
        };
        // A damaged entry finds no row; `app check` reports such damage.
        let Some(outbox_id) = read_u64(&entry) else {
            return Ok(());
        };
        let key = u64_key(outbox_id);
        let Some(bytes) = self.outbox.get(key)? else {
            return Ok(());
        };
        let row: OutboxMail = tx_decode("outbox", &bytes)?;
        if row.kind == MailKind::Reminder && row.status == OutboxStatus::Pending {
            self.outbox.remove(&key)?;
            self.outbox_due
                .remove(&due_key(row.next_attempt_at, row.id))?;
        }
        Ok(())
    }
}

/// When the reminder of `reservation` is due: `reminder_micros` before it starts, or none
/// when reminders are off or that moment is already past at booking (it starts sooner).
pub(crate) fn reminder_due(reminder_micros: i64, reservation: &Reservation) -> Option<Timestamp> {
    if reminder_micros <= 0 {
        return None;
    }
    let due = reservation.starts_at.plus_micros(-reminder_micros);
    (due > reservation.created_at).then_some(due)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn booked(starts_in_micros: i64) -> Reservation {
        let now = Timestamp::from_micros(1_000_000_000_000);
        Reservation {
            id: Uuid::nil(),
            business_id: Uuid::nil(),
            customer_name: "Ann".into(),
            customer_email: "ann@example.com".into(),
            starts_at: now.plus_micros(starts_in_micros),
            service: "Cut".into(),
            status: ReservationStatus::Confirmed,
            created_at: now,
        }
    }

    #[test]
    fn a_reminder_is_due_its_window_before_the_start_and_only_when_that_is_still_ahead() {
        let hour = 3_600_000_000;
        let reservation = booked(48 * hour);
        assert_eq!(
            reminder_due(24 * hour, &reservation),
            Some(reservation.starts_at.plus_micros(-24 * hour))
        );
        assert_eq!(reminder_due(0, &reservation), None, "reminders off");
        assert_eq!(
            reminder_due(24 * hour, &booked(23 * hour)),
            None,
            "inside the window"
        );
        assert_eq!(
            reminder_due(24 * hour, &booked(24 * hour)),
            None,
            "due at booking"
        );
        assert_eq!(reminder_due(hour, &booked(-hour)), None, "in the past");
    }
}
