//! Business mutations: create, update and delete, each with its event (and, for a create or
//! a reassignment, the new owner's welcome mail) in the same transaction.

use super::tx::{abort, TxResult};
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
        capacity: u64,
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
        self.append_event(&event, capacity)?;
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
        capacity: u64,
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
        self.append_event(&event, capacity)?;
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

    /// Removes the business, every index entry naming it and its reservations (listed before
    /// the transaction: sled transactions cannot scan).
    pub(super) fn delete_business(
        &self,
        id: Uuid,
        now: Timestamp,
        reservation_keys: &[sled::IVec],
        reservation_ids: &[Uuid],
        capacity: u64,
    ) -> TxResult<(Applied, Option<u64>)> {
        let record = self.business(id)?;
        let business = &record.business;
        self.businesses.remove(id.as_bytes())?;
        self.subdomains.remove(business.subdomain.as_bytes())?;
        self.business_order.remove(&u64_key(record.seq))?;
        self.owner_index
            .remove(email_u64_key(&business.owner_email, record.seq))?;
        for key in reservation_keys {
            self.reservations.remove(key)?;
        }
        for rid in reservation_ids {
            self.reservation_ids.remove(rid.as_bytes())?;
        }
        self.reservation_counts.remove(id.as_bytes())?;
        self.add_counter(meta_keys::BUSINESS_COUNT, -1)?;
        self.add_counter(
            meta_keys::RESERVATION_COUNT,
            -(reservation_keys.len() as i64),
        )?;
        let event_id = self.take_event_id()?;
        let event = Event::for_business(event_id, EventKind::BusinessDeleted, business, now);
        self.append_event(&event, capacity)?;
        Ok((Applied::Deleted(record.business), Some(event_id)))
    }
}
