//! Business mutations: create, update and delete, each with its event (and, for a create or
//! a reassignment, the new owner's welcome mail) in the same transaction.

use super::tx::{abort, tx_decode, TxResult};
use super::{Applied, BusinessRecord, MailStamp};
use crate::domain::{Business, BusinessPatch, Event, EventKind, MailKind, Timestamp};
use crate::store::keys::{email_u64_key, u64_key};
use crate::store::trees::Tx;
use crate::store::{meta_keys, StoreError};
use uuid::Uuid;

impl Tx<'_> {
    /// Stores a new business, refusing a subdomain already taken.
    pub(super) fn create_business(
        &self,
        business: &Business,
        stamp: &MailStamp,
    ) -> TxResult<(Applied, Option<u64>)> {
        if self
            .subdomains
            .get(business.subdomain.as_bytes())?
            .is_some()
        {
            return abort(StoreError::Conflict {
                field: Some("subdomain"),
                message: "this subdomain is already taken".into(),
            });
        }
        let id = self.take_event_id()?;
        self.put_business(&BusinessRecord {
            seq: id,
            business: business.clone(),
        })?;
        self.subdomains
            .insert(business.subdomain.as_bytes(), business.id.as_bytes())?;
        self.business_order
            .insert(&u64_key(id), business.id.as_bytes())?;
        self.owner_index.insert(
            email_u64_key(&business.owner_email, id),
            business.id.as_bytes(),
        )?;
        self.add_counter(meta_keys::BUSINESS_COUNT, 1)?;
        let event = Event::for_business(
            id,
            EventKind::BusinessCreated,
            business,
            business.created_at,
        );
        self.append_event(&event)?;
        self.enqueue_mail(
            stamp,
            MailKind::Welcome,
            &business.owner_email,
            &event,
            business,
            None,
        )?;
        Ok((Applied::Business(business.clone()), Some(id)))
    }

    /// Applies `patch`, moving the owner index entry and welcoming the new owner when the
    /// owner changes.
    pub(super) fn update_business(
        &self,
        id: Uuid,
        patch: &BusinessPatch,
        now: Timestamp,
        stamp: &MailStamp,
    ) -> TxResult<(Applied, Option<u64>)> {
        let mut record = self.business(id)?;
        let old_owner = record.business.owner_email.clone();
        if let Some(name) = &patch.name {
            record.business.name = name.clone();
        }
        if let Some(owner) = &patch.owner_email {
            record.business.owner_email = owner.clone();
        }
        record.business.updated_at = now;
        if record.business.owner_email != old_owner {
            self.owner_index
                .remove(email_u64_key(&old_owner, record.seq))?;
            self.owner_index.insert(
                email_u64_key(&record.business.owner_email, record.seq),
                id.as_bytes(),
            )?;
        }
        self.put_business(&record)?;
        let event_id = self.take_event_id()?;
        // Both owners may receive the move itself; only the new one what follows it.
        let event =
            Event::for_business(event_id, EventKind::BusinessUpdated, &record.business, now)
                .moved_from(&old_owner);
        self.append_event(&event)?;
        if record.business.owner_email != old_owner {
            // Queued with its cause (DESIGN invariant 4), like the welcome on create.
            self.enqueue_mail(
                stamp,
                MailKind::Handover,
                &record.business.owner_email,
                &event,
                &record.business,
                None,
            )?;
        }
        Ok((Applied::Business(record.business), Some(event_id)))
    }

    /// Deletes the business: the record, every index naming it and its reservation count go
    /// in this transaction with the `business_deleted` event, and the business joins the
    /// `purges` tree. Its reservations stay behind, unreachable (every read and write of a
    /// reservation goes through its business first), until the writer removes them
    /// [`PURGE_CHUNK`](crate::writer::PURGE_CHUNK) at a time between batches
    /// (`Store::purge_deleted`): one transaction over 100 000 of them held sled's global
    /// transaction lock long enough to stall every other request.
    ///
    /// The last step of a delete (`closing`): the business's future bookings are already
    /// cancelled, each with its event and mail, in chunks before this transaction, so this
    /// event comes after them.
    pub(super) fn delete_business(
        &self,
        id: Uuid,
        now: Timestamp,
    ) -> TxResult<(Applied, Option<u64>)> {
        let record = self.stored_business(id)?;
        let business = &record.business;
        self.businesses.remove(id.as_bytes())?;
        self.subdomains.remove(business.subdomain.as_bytes())?;
        self.business_order.remove(&u64_key(record.seq))?;
        self.owner_index
            .remove(email_u64_key(&business.owner_email, record.seq))?;
        let reservations = match self.reservation_counts.remove(id.as_bytes())? {
            Some(bytes) => tx_decode::<u64>("reservation_counts", &bytes)?,
            None => 0,
        };
        self.add_counter(meta_keys::BUSINESS_COUNT, -1)?;
        self.add_counter(
            meta_keys::RESERVATION_COUNT,
            -i64::try_from(reservations).unwrap_or(i64::MAX),
        )?;
        self.purges.insert(id.as_bytes(), &[])?;
        let event_id = self.take_event_id()?;
        let event = Event::for_business(event_id, EventKind::BusinessDeleted, business, now);
        self.append_event(&event)?;
        Ok((Applied::Deleted(record.business), Some(event_id)))
    }
}
