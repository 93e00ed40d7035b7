//! Reservation mutations: create (with the customer's confirmation and the owner's notice)
//! and cancel (with the customer's cancellation notice), each with its event.

use super::tx::{abort, tx_decode, TxResult};
use super::{Applied, MailStamp};
use crate::domain::{Event, EventKind, MailKind, Reservation, ReservationStatus, Timestamp};
use crate::store::keys::uuid_u64_key;
use crate::store::trees::Tx;
use crate::store::{codec, meta_keys, StoreError};
use uuid::Uuid;

impl Tx<'_> {
    /// Stores a new reservation of an existing business.
    pub(super) fn create_reservation(
        &self,
        reservation: &Reservation,
        stamp: &MailStamp,
        capacity: u64,
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
        self.append_event(&event, capacity)?;
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
        Ok((Applied::Reservation(reservation.clone()), Some(id)))
    }

    /// Marks a reservation of `business_id` cancelled; cancelling twice is a conflict.
    pub(super) fn cancel_reservation(
        &self,
        business_id: Uuid,
        reservation_id: Uuid,
        now: Timestamp,
        stamp: &MailStamp,
        capacity: u64,
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
        let mut reservation: Reservation = tx_decode("reservations", &bytes)?;
        if reservation.status == ReservationStatus::Cancelled {
            return abort(StoreError::Conflict {
                field: None,
                message: "this reservation is already cancelled".into(),
            });
        }
        reservation.status = ReservationStatus::Cancelled;
        self.reservations
            .insert(&key, codec::encode(&reservation))?;
        let id = self.take_event_id()?;
        let event = Event::for_reservation(
            id,
            EventKind::ReservationCancelled,
            &record.business,
            &reservation,
            now,
        );
        self.append_event(&event, capacity)?;
        self.enqueue_mail(
            stamp,
            MailKind::CancellationNotice,
            &reservation.customer_email,
            &event,
            &record.business,
            Some(&reservation),
        )?;
        Ok((Applied::Reservation(reservation), Some(id)))
    }
}
