//! Every change to the store, each applied as one sled transaction over all the trees it
//! touches: the entity, its event, its activity entry and its outbox rows commit together or
//! not at all (DESIGN "writer").
//!
//! Only the single writer thread calls [`Store::apply`], so reads taken just before a
//! transaction (to list what a delete must remove) cannot be invalidated by another write.
//! Transaction closures may run more than once: they only read and write trees.

use super::keys::{email_u64_key, u64_key, uuid_u64_key};
use super::{codec, decode, meta_keys, Store, StoreError, ACTIVITY_LIMIT};
use crate::domain::{
    Business, BusinessPatch, Event, EventKind, MailKind, NewBusiness, NewReservation, NewUser,
    OutboxMail, OutboxStatus, Reservation, ReservationStatus, Timestamp, User,
};
use sled::transaction::{
    ConflictableTransactionError, ConflictableTransactionResult, TransactionalTree,
};
use sled::Transactional;
use uuid::Uuid;

/// A change the writer applies.
#[derive(Debug, Clone)]
pub enum Mutation {
    CreateUser(NewUser),
    CreateBusiness(NewBusiness),
    UpdateBusiness {
        id: Uuid,
        patch: BusinessPatch,
    },
    DeleteBusiness {
        id: Uuid,
    },
    CreateReservation {
        business_id: Uuid,
        new: NewReservation,
    },
    CancelReservation {
        business_id: Uuid,
        reservation_id: Uuid,
    },
    /// A read receipt: everything the user sees up to `up_to` is read.
    MarkRead {
        user_id: Uuid,
        up_to: u64,
    },
}

/// What a mutation produced.
#[derive(Debug, Clone)]
pub enum Applied {
    User(User),
    Business(Business),
    Deleted(Business),
    Reservation(Reservation),
    /// The stored read position after a receipt (never moves backwards).
    ReadUpTo(u64),
}

/// The trees as seen inside one transaction, by name.
struct Tx<'a> {
    meta: &'a TransactionalTree,
    users: &'a TransactionalTree,
    user_emails: &'a TransactionalTree,
    businesses: &'a TransactionalTree,
    business_order: &'a TransactionalTree,
    owner_index: &'a TransactionalTree,
    subdomains: &'a TransactionalTree,
    reservations: &'a TransactionalTree,
    reservation_ids: &'a TransactionalTree,
    reservation_counts: &'a TransactionalTree,
    events: &'a TransactionalTree,
    business_events: &'a TransactionalTree,
    activity: &'a TransactionalTree,
    outbox: &'a TransactionalTree,
    receipts: &'a TransactionalTree,
}

type TxResult<T> = ConflictableTransactionResult<T, StoreError>;

fn abort<T>(error: StoreError) -> TxResult<T> {
    Err(ConflictableTransactionError::Abort(error))
}

fn tx_decode<T: serde::de::DeserializeOwned>(tree: &'static str, bytes: &[u8]) -> TxResult<T> {
    decode(tree, bytes).map_err(ConflictableTransactionError::Abort)
}

/// A stored business with the sequence number that orders listings (its creating event id).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct BusinessRecord {
    pub seq: u64,
    pub business: Business,
}

/// What stamps outbox rows: the epoch and mail domain make Message-IDs unique per store.
#[derive(Debug, Clone)]
pub struct MailStamp {
    pub epoch: String,
    pub domain: String,
}

impl Tx<'_> {
    fn counter(&self, key: &[u8]) -> TxResult<u64> {
        match self.meta.get(key)? {
            Some(bytes) => tx_decode("meta", &bytes),
            None => Ok(0),
        }
    }

    fn set_counter(&self, key: &[u8], value: u64) -> TxResult<()> {
        self.meta.insert(key, codec::encode(&value))?;
        Ok(())
    }

    fn add_counter(&self, key: &[u8], delta: i64) -> TxResult<()> {
        let value = self.counter(key)?.saturating_add_signed(delta);
        self.set_counter(key, value)
    }

    fn add_reservation_count(&self, business_id: Uuid, delta: i64) -> TxResult<()> {
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

    /// Takes the next event id; ids are consecutive because only this writer takes them and
    /// the counter commits with the event (DESIGN invariant 2).
    fn take_event_id(&self) -> TxResult<u64> {
        let id = self.counter(meta_keys::NEXT_EVENT_ID)?.max(1);
        self.set_counter(meta_keys::NEXT_EVENT_ID, id + 1)?;
        Ok(id)
    }

    /// Appends `event` to the log, the per-business index and the activity log, and drops
    /// whatever falls out of the retention window and the 50-entry activity log.
    fn append_event(&self, event: &Event, retention: u64) -> TxResult<()> {
        let encoded = codec::encode(event);
        self.events.insert(&u64_key(event.id), encoded.clone())?;
        self.business_events
            .insert(&uuid_u64_key(event.business_id, event.id), &[])?;
        self.activity.insert(&u64_key(event.id), encoded)?;
        if event.id > ACTIVITY_LIMIT {
            self.activity.remove(&u64_key(event.id - ACTIVITY_LIMIT))?;
        }
        if event.id > retention {
            let old_id = event.id - retention;
            if let Some(bytes) = self.events.remove(&u64_key(old_id))? {
                let old: Event = tx_decode("events", &bytes)?;
                self.business_events
                    .remove(&uuid_u64_key(old.business_id, old.id))?;
            }
        }
        Ok(())
    }

    fn enqueue_mail(
        &self,
        stamp: &MailStamp,
        kind: MailKind,
        to: &str,
        event: &Event,
        business: &Business,
        reservation: Option<&Reservation>,
    ) -> TxResult<()> {
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
            next_attempt_at: event.timestamp,
            last_error: None,
            created_at: event.timestamp,
            sent_at: None,
        };
        self.outbox.insert(&u64_key(id), codec::encode(&row))?;
        Ok(())
    }

    fn business(&self, id: Uuid) -> TxResult<BusinessRecord> {
        match self.businesses.get(id.as_bytes())? {
            Some(bytes) => tx_decode("businesses", &bytes),
            None => abort(StoreError::NotFound("business")),
        }
    }

    fn put_business(&self, record: &BusinessRecord) -> TxResult<()> {
        self.businesses
            .insert(record.business.id.as_bytes(), codec::encode(record))?;
        Ok(())
    }
}

impl Store {
    /// Applies one mutation in one transaction. Returns what it produced and the id of the
    /// event it appended, if any. Not durable until [`Store::flush`].
    ///
    /// # Errors
    /// `NotFound` / `Conflict` for rule violations (nothing is written); `Unavailable` or
    /// `Corrupt` for storage failures.
    pub fn apply(
        &self,
        mutation: &Mutation,
        stamp: &MailStamp,
    ) -> Result<(Applied, Option<u64>), StoreError> {
        let now = Timestamp::now();
        match mutation {
            Mutation::CreateUser(new) => self.create_user(new, now),
            Mutation::CreateBusiness(new) => self.create_business(new, stamp, now),
            Mutation::UpdateBusiness { id, patch } => self.update_business(*id, patch, now),
            Mutation::DeleteBusiness { id } => self.delete_business(*id, now),
            Mutation::CreateReservation { business_id, new } => {
                self.create_reservation(*business_id, new, stamp, now)
            }
            Mutation::CancelReservation {
                business_id,
                reservation_id,
            } => self.cancel_reservation(*business_id, *reservation_id, stamp, now),
            Mutation::MarkRead { user_id, up_to } => self.mark_read(*user_id, *up_to),
        }
    }

    /// Runs `body` in one transaction over every tree.
    fn transact<T>(&self, body: impl Fn(&Tx<'_>) -> TxResult<T>) -> Result<T, StoreError> {
        let t = &self.trees;
        let trees = [
            &t.meta,
            &t.users,
            &t.user_emails,
            &t.businesses,
            &t.business_order,
            &t.owner_index,
            &t.subdomains,
            &t.reservations,
            &t.reservation_ids,
            &t.reservation_counts,
            &t.events,
            &t.business_events,
            &t.activity,
            &t.outbox,
            &t.receipts,
        ];
        let result = trees[..].transaction(|view| {
            let tx = Tx {
                meta: &view[0],
                users: &view[1],
                user_emails: &view[2],
                businesses: &view[3],
                business_order: &view[4],
                owner_index: &view[5],
                subdomains: &view[6],
                reservations: &view[7],
                reservation_ids: &view[8],
                reservation_counts: &view[9],
                events: &view[10],
                business_events: &view[11],
                activity: &view[12],
                outbox: &view[13],
                receipts: &view[14],
            };
            body(&tx)
        });
        Ok(result?)
    }

    fn create_user(
        &self,
        new: &NewUser,
        now: Timestamp,
    ) -> Result<(Applied, Option<u64>), StoreError> {
        let user = User {
            id: Uuid::new_v4(),
            email: new.email.clone(),
            role: new.role,
            password_hash: new.password_hash.clone(),
            created_at: now,
        };
        self.transact(|tx| {
            if tx.user_emails.get(user.email.as_bytes())?.is_some() {
                return abort(StoreError::Conflict {
                    field: Some("email"),
                    message: "a user with this email already exists".into(),
                });
            }
            tx.users.insert(user.id.as_bytes(), codec::encode(&user))?;
            tx.user_emails
                .insert(user.email.as_bytes(), user.id.as_bytes())?;
            // A new user starts with nothing unread: history before them is not news.
            let seen = tx.counter(meta_keys::NEXT_EVENT_ID)?.max(1) - 1;
            tx.receipts.insert(user.id.as_bytes(), &u64_key(seen))?;
            Ok(())
        })?;
        Ok((Applied::User(user), None))
    }

    fn create_business(
        &self,
        new: &NewBusiness,
        stamp: &MailStamp,
        now: Timestamp,
    ) -> Result<(Applied, Option<u64>), StoreError> {
        let business = Business {
            id: Uuid::new_v4(),
            name: new.name.clone(),
            subdomain: new.subdomain.clone(),
            owner_email: new.owner_email.clone(),
            created_at: now,
            updated_at: now,
        };
        let event_id = self.transact(|tx| {
            if tx.subdomains.get(business.subdomain.as_bytes())?.is_some() {
                return abort(StoreError::Conflict {
                    field: Some("subdomain"),
                    message: "this subdomain is already taken".into(),
                });
            }
            let id = tx.take_event_id()?;
            tx.put_business(&BusinessRecord {
                seq: id,
                business: business.clone(),
            })?;
            tx.subdomains
                .insert(business.subdomain.as_bytes(), business.id.as_bytes())?;
            tx.business_order
                .insert(&u64_key(id), business.id.as_bytes())?;
            tx.owner_index.insert(
                email_u64_key(&business.owner_email, id),
                business.id.as_bytes(),
            )?;
            tx.add_counter(meta_keys::BUSINESS_COUNT, 1)?;
            let event = Event::for_business(id, EventKind::BusinessCreated, &business, now);
            tx.append_event(&event, self.retention)?;
            tx.enqueue_mail(
                stamp,
                MailKind::Welcome,
                &business.owner_email,
                &event,
                &business,
                None,
            )?;
            Ok(id)
        })?;
        Ok((Applied::Business(business), Some(event_id)))
    }

    fn update_business(
        &self,
        id: Uuid,
        patch: &BusinessPatch,
        now: Timestamp,
    ) -> Result<(Applied, Option<u64>), StoreError> {
        let (business, event_id) = self.transact(|tx| {
            let mut record = tx.business(id)?;
            let old_owner = record.business.owner_email.clone();
            if let Some(name) = &patch.name {
                record.business.name = name.clone();
            }
            if let Some(owner) = &patch.owner_email {
                record.business.owner_email = owner.clone();
            }
            record.business.updated_at = now;
            if record.business.owner_email != old_owner {
                tx.owner_index
                    .remove(email_u64_key(&old_owner, record.seq))?;
                tx.owner_index.insert(
                    email_u64_key(&record.business.owner_email, record.seq),
                    id.as_bytes(),
                )?;
            }
            tx.put_business(&record)?;
            let event_id = tx.take_event_id()?;
            let event =
                Event::for_business(event_id, EventKind::BusinessUpdated, &record.business, now);
            tx.append_event(&event, self.retention)?;
            Ok((record.business, event_id))
        })?;
        Ok((Applied::Business(business), Some(event_id)))
    }

    fn delete_business(
        &self,
        id: Uuid,
        now: Timestamp,
    ) -> Result<(Applied, Option<u64>), StoreError> {
        // Listed outside the transaction (sled transactions cannot scan); only this writer
        // adds reservations, so the list is complete.
        let mut reservation_keys = Vec::new();
        let mut reservation_ids = Vec::new();
        for entry in self.trees.reservations.scan_prefix(id.as_bytes()) {
            let (key, value) = entry?;
            let reservation: Reservation = decode("reservations", &value)?;
            reservation_keys.push(key);
            reservation_ids.push(reservation.id);
        }
        let (business, event_id) = self.transact(|tx| {
            let record = tx.business(id)?;
            let business = &record.business;
            tx.businesses.remove(id.as_bytes())?;
            tx.subdomains.remove(business.subdomain.as_bytes())?;
            tx.business_order.remove(&u64_key(record.seq))?;
            tx.owner_index
                .remove(email_u64_key(&business.owner_email, record.seq))?;
            for key in &reservation_keys {
                tx.reservations.remove(key)?;
            }
            for rid in &reservation_ids {
                tx.reservation_ids.remove(rid.as_bytes())?;
            }
            tx.reservation_counts.remove(id.as_bytes())?;
            tx.add_counter(meta_keys::BUSINESS_COUNT, -1)?;
            tx.add_counter(
                meta_keys::RESERVATION_COUNT,
                -(reservation_keys.len() as i64),
            )?;
            let event_id = tx.take_event_id()?;
            let event = Event::for_business(event_id, EventKind::BusinessDeleted, business, now);
            tx.append_event(&event, self.retention)?;
            Ok((record.business, event_id))
        })?;
        Ok((Applied::Deleted(business), Some(event_id)))
    }

    fn create_reservation(
        &self,
        business_id: Uuid,
        new: &NewReservation,
        stamp: &MailStamp,
        now: Timestamp,
    ) -> Result<(Applied, Option<u64>), StoreError> {
        let reservation = Reservation {
            id: Uuid::new_v4(),
            business_id,
            customer_name: new.customer_name.clone(),
            customer_email: new.customer_email.clone(),
            starts_at: new.starts_at,
            service: new.service.clone(),
            status: ReservationStatus::Confirmed,
            created_at: now,
        };
        let event_id = self.transact(|tx| {
            let record = tx.business(business_id)?;
            let id = tx.take_event_id()?;
            let key = uuid_u64_key(business_id, id);
            tx.reservations.insert(&key, codec::encode(&reservation))?;
            tx.reservation_ids.insert(reservation.id.as_bytes(), &key)?;
            tx.add_reservation_count(business_id, 1)?;
            tx.add_counter(meta_keys::RESERVATION_COUNT, 1)?;
            let event = Event::for_reservation(
                id,
                EventKind::ReservationCreated,
                &record.business,
                &reservation,
                now,
            );
            tx.append_event(&event, self.retention)?;
            tx.enqueue_mail(
                stamp,
                MailKind::ReservationConfirmation,
                &reservation.customer_email,
                &event,
                &record.business,
                Some(&reservation),
            )?;
            tx.enqueue_mail(
                stamp,
                MailKind::ReservationNotice,
                &record.business.owner_email,
                &event,
                &record.business,
                Some(&reservation),
            )?;
            Ok(id)
        })?;
        Ok((Applied::Reservation(reservation), Some(event_id)))
    }

    fn cancel_reservation(
        &self,
        business_id: Uuid,
        reservation_id: Uuid,
        stamp: &MailStamp,
        now: Timestamp,
    ) -> Result<(Applied, Option<u64>), StoreError> {
        let (reservation, event_id) = self.transact(|tx| {
            let record = tx.business(business_id)?;
            let Some(key) = tx.reservation_ids.get(reservation_id.as_bytes())? else {
                return abort(StoreError::NotFound("reservation"));
            };
            // A reservation of another business is "not found" here, never "forbidden".
            if !key.starts_with(business_id.as_bytes()) {
                return abort(StoreError::NotFound("reservation"));
            }
            let Some(bytes) = tx.reservations.get(&key)? else {
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
            tx.reservations.insert(&key, codec::encode(&reservation))?;
            let id = tx.take_event_id()?;
            let event = Event::for_reservation(
                id,
                EventKind::ReservationCancelled,
                &record.business,
                &reservation,
                now,
            );
            tx.append_event(&event, self.retention)?;
            tx.enqueue_mail(
                stamp,
                MailKind::CancellationNotice,
                &reservation.customer_email,
                &event,
                &record.business,
                Some(&reservation),
            )?;
            Ok((reservation, id))
        })?;
        Ok((Applied::Reservation(reservation), Some(event_id)))
    }

    fn mark_read(&self, user_id: Uuid, up_to: u64) -> Result<(Applied, Option<u64>), StoreError> {
        let stored = self.transact(|tx| {
            if tx.users.get(user_id.as_bytes())?.is_none() {
                return abort(StoreError::NotFound("user"));
            }
            let newest = tx.counter(meta_keys::NEXT_EVENT_ID)?.max(1) - 1;
            let current = match tx.receipts.get(user_id.as_bytes())? {
                Some(bytes) => super::keys::read_u64(&bytes).unwrap_or(0),
                None => 0,
            };
            // Receipts only move forward, and never past what exists.
            let stored = current.max(up_to.min(newest));
            tx.receipts.insert(user_id.as_bytes(), &u64_key(stored))?;
            Ok(stored)
        })?;
        Ok((Applied::ReadUpTo(stored), None))
    }
}
