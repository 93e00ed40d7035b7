//! What every mutation family does inside a transaction: meta counters (event and outbox
//! ids, totals), appending to the event log, queueing mail, and reading or writing a business
//! record. Kept apart from the families so each rule about ids and the log has one home.

use super::{BusinessRecord, MailStamp};
use crate::domain::{Business, Event, MailKind, OutboxMail, OutboxStatus, Reservation, Timestamp};
use crate::store::keys::{due_key, u64_key, uuid_u64_key};
use crate::store::trees::Tx;
use crate::store::{codec, decode, meta_keys, StoreError};
use sled::transaction::{ConflictableTransactionError, ConflictableTransactionResult};
use uuid::Uuid;

/// A step inside a transaction: an abort carries the refusal, which discards every write.
pub(super) type TxResult<T> = ConflictableTransactionResult<T, StoreError>;

/// Refuses the mutation: its transaction aborts with `error`.
pub(super) fn abort<T>(error: StoreError) -> TxResult<T> {
    Err(ConflictableTransactionError::Abort(error))
}

/// Decodes a record read inside a transaction; a damaged one aborts it as `Corrupt`.
pub(super) fn tx_decode<T: serde::de::DeserializeOwned>(
    tree: &'static str,
    bytes: &[u8],
) -> TxResult<T> {
    decode(tree, bytes).map_err(ConflictableTransactionError::Abort)
}

impl Tx<'_> {
    /// A counter from `meta` (0 when never written).
    pub(super) fn counter(&self, key: &[u8]) -> TxResult<u64> {
        match self.meta.get(key)? {
            Some(bytes) => tx_decode("meta", &bytes),
            None => Ok(0),
        }
    }

    fn set_counter(&self, key: &[u8], value: u64) -> TxResult<()> {
        self.meta.insert(key, codec::encode(&value))?;
        Ok(())
    }

    /// Moves a `meta` counter by `delta`, never below 0.
    pub(super) fn add_counter(&self, key: &[u8], delta: i64) -> TxResult<()> {
        let value = self.counter(key)?.saturating_add_signed(delta);
        self.set_counter(key, value)
    }

    /// Moves a business's reservation count; a count of 0 is stored as no entry.
    pub(super) fn add_reservation_count(&self, business_id: Uuid, delta: i64) -> TxResult<()> {
        let current = match self.reservation_counts.get(business_id.as_bytes())? {
            Some(bytes) => tx_decode("reservation_counts", &bytes)?,
            None => 0u64,
        };
        let value = current.saturating_add_signed(delta);
        if value == 0 {
            self.reservation_counts.remove(business_id.as_bytes())?;
        } else {
            self.reservation_counts
                .insert(business_id.as_bytes(), codec::encode(&value))?;
        }
        Ok(())
    }

    /// The id of the newest event (0 for an empty log).
    pub(super) fn newest_event_id(&self) -> TxResult<u64> {
        Ok(self.counter(meta_keys::NEXT_EVENT_ID)?.max(1) - 1)
    }

    /// Takes the next event id; ids are consecutive because only this writer takes them and
    /// the counter commits with the event (DESIGN invariant 2).
    pub(super) fn take_event_id(&self) -> TxResult<u64> {
        let id = self.counter(meta_keys::NEXT_EVENT_ID)?.max(1);
        self.set_counter(meta_keys::NEXT_EVENT_ID, id + 1)?;
        Ok(id)
    }

    /// Appends `event` to the log and the per-business index. What falls out of the log's
    /// capacity leaves it after the transaction ([`Store::trim_log`](crate::store::Store)),
    /// once per batch, so the transaction holds only what the mutation itself writes.
    pub(super) fn append_event(&self, event: &Event) -> TxResult<()> {
        self.events
            .insert(&u64_key(event.id), codec::encode(event))?;
        // Its pushes commit with it, like its mails (a crash delays them, never loses them).
        self.enqueue_pushes(event)?;
        self.business_events
            .insert(&uuid_u64_key(event.business_id, event.id), &[])?;
        Ok(())
    }

    /// Queues a mail caused by `event`, in the event's transaction (DESIGN invariant 4: a
    /// committed cause always has its mail queued).
    pub(super) fn enqueue_mail(
        &self,
        stamp: &MailStamp,
        kind: MailKind,
        to: &str,
        event: &Event,
        business: &Business,
        reservation: Option<&Reservation>,
    ) -> TxResult<()> {
        self.enqueue_mail_due(
            stamp,
            kind,
            to,
            event,
            business,
            reservation,
            event.timestamp,
        )?;
        Ok(())
    }

    /// [`Tx::enqueue_mail`] for a mail first due at `due` (a reminder, due before the
    /// appointment) rather than at once; returns the row's outbox id.
    #[allow(clippy::too_many_arguments)] // enqueue_mail's, plus the due time
    pub(super) fn enqueue_mail_due(
        &self,
        stamp: &MailStamp,
        kind: MailKind,
        to: &str,
        event: &Event,
        business: &Business,
        reservation: Option<&Reservation>,
        due: Timestamp,
    ) -> TxResult<u64> {
        let id = self.counter(meta_keys::NEXT_OUTBOX_ID)?.max(1);
        self.set_counter(meta_keys::NEXT_OUTBOX_ID, id + 1)?;
        let row = OutboxMail {
            id,
            message_id: format!("<outbox-{id}.{}@{}>", stamp.epoch, stamp.domain),
            kind,
            to: to.to_string(),
            event_id: event.id,
            business: business.clone(),
            reservation: reservation.cloned(),
            status: OutboxStatus::Pending,
            attempts: 0,
            next_attempt_at: due,
            last_error: None,
            created_at: event.timestamp,
            sent_at: None,
        };
        self.outbox.insert(&u64_key(id), codec::encode(&row))?;
        self.outbox_due
            .insert(&due_key(row.next_attempt_at, id), &[])?;
        Ok(id)
    }

    /// The business `id`, or a `NotFound` refusal. A business whose deletion is under way
    /// (`closing`) is gone already to every change, as to every read: its delete was answered.
    pub(super) fn business(&self, id: Uuid) -> TxResult<BusinessRecord> {
        if self.closings.get(id.as_bytes())?.is_some() {
            return abort(StoreError::NotFound("business"));
        }
        self.stored_business(id)
    }

    /// The business `id` as stored, even while its deletion is under way (only the steps of
    /// that deletion read it so).
    pub(super) fn stored_business(&self, id: Uuid) -> TxResult<BusinessRecord> {
        match self.businesses.get(id.as_bytes())? {
            Some(bytes) => tx_decode("businesses", &bytes),
            None => abort(StoreError::NotFound("business")),
        }
    }

    pub(super) fn put_business(&self, record: &BusinessRecord) -> TxResult<()> {
        self.businesses
            .insert(record.business.id.as_bytes(), codec::encode(record))?;
        Ok(())
    }
}
