//! Every change to the store, applied inside a sled transaction over all the trees it
//! touches: the entity, its event (which is its activity entry too: the activity log is the
//! newest events of the log) and its outbox rows commit together or not at all (DESIGN
//! "writer"). The writer hands over a whole batch, which normally commits
//! as one transaction (see [`Store::apply_batch`]).
//!
//! Only the single writer thread calls [`Store::apply_batch`], so reads taken just before a
//! transaction (to list what a delete must remove) cannot be invalidated by another write.
//! Transaction closures may run more than once: they only read and write trees; new ids and
//! timestamps are chosen before the transaction starts.

use super::keys::{email_u64_key, u64_key, uuid_u64_key};
use super::{codec, decode, meta_keys, Store, StoreError};
use crate::domain::{
    Business, BusinessPatch, Event, EventKind, MailKind, NewBusiness, NewReservation, NewUser,
    OutboxMail, OutboxStatus, Reservation, ReservationStatus, Timestamp, User,
};
use sled::transaction::{
    ConflictableTransactionError, ConflictableTransactionResult, TransactionError,
    TransactionalTree,
};
use sled::Transactional;
use uuid::Uuid;

/// A change the writer applies.
#[derive(Debug, Clone)]
pub enum Mutation {
    CreateUser(NewUser),
    /// A new password hash for the user with this email (`app user password`).
    SetPassword {
        email: String,
        password_hash: String,
    },
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

/// The leading fields of a stored [`Event`], all that pruning needs: bincode reads them and
/// ignores the rest, so dropping an old event does not copy its frame.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct EventHead {
    pub id: u64,
    #[allow(dead_code)] // present to keep the layout of `Event`'s first fields
    pub kind: EventKind,
    pub business_id: Uuid,
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

    /// Appends `event` to the log and the per-business index, and drops whatever falls out
    /// of the log's `capacity` (the retention, at least the activity log's 50: the activity
    /// log is the newest events of this log).
    fn append_event(&self, event: &Event, capacity: u64) -> TxResult<()> {
        self.events
            .insert(&u64_key(event.id), codec::encode(event))?;
        self.business_events
            .insert(&uuid_u64_key(event.business_id, event.id), &[])?;
        if event.id > capacity {
            let old_id = event.id - capacity;
            if let Some(bytes) = self.events.remove(&u64_key(old_id))? {
                let old: EventHead = tx_decode("events", &bytes)?;
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

/// A mutation with every choice made before its transaction — new ids, the clock, the
/// reservations a delete removes — so that applying it depends on the trees alone and a
/// closure that sled runs again does exactly the same thing.
enum Prepared<'a> {
    CreateUser(User),
    SetPassword {
        email: &'a str,
        password_hash: &'a str,
    },
    CreateBusiness(Business),
    UpdateBusiness {
        id: Uuid,
        patch: &'a BusinessPatch,
        now: Timestamp,
    },
    DeleteBusiness {
        id: Uuid,
        now: Timestamp,
        reservation_keys: Vec<sled::IVec>,
        reservation_ids: Vec<Uuid>,
    },
    CreateReservation(Reservation),
    CancelReservation {
        business_id: Uuid,
        reservation_id: Uuid,
        now: Timestamp,
    },
    MarkRead {
        user_id: Uuid,
        up_to: u64,
    },
}

/// Why a batch transaction was abandoned: the mutation at `index` refused (a rule, or a
/// damaged record). An aborted transaction has written nothing.
struct Refused {
    index: usize,
    error: StoreError,
}

/// One mutation's result: what it produced and the id of the event it appended, if any.
pub type Outcome = Result<(Applied, Option<u64>), StoreError>;

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
    /// (DESIGN invariant 2). A delete runs alone, after everything before it has committed,
    /// because it lists the business's reservations outside its transaction.
    pub fn apply_batch(&self, mutations: &[Mutation], stamp: &MailStamp) -> Vec<Outcome> {
        let mut outcomes = Vec::with_capacity(mutations.len());
        let mut rest = mutations;
        while let Some(first) = rest.first() {
            if let Mutation::DeleteBusiness { id } = first {
                match self.prepare_delete(*id) {
                    Ok(prepared) => outcomes.extend(self.commit_prepared(&[prepared], stamp)),
                    Err(error) => outcomes.push(Err(error)),
                }
                rest = &rest[1..];
                continue;
            }
            let end = rest
                .iter()
                .position(|m| matches!(m, Mutation::DeleteBusiness { .. }))
                .unwrap_or(rest.len());
            let prepared: Vec<Prepared<'_>> = rest[..end].iter().map(prepare).collect();
            outcomes.extend(self.commit_prepared(&prepared, stamp));
            rest = &rest[end..];
        }
        self.forget_changed_users(mutations);
        outcomes
    }

    /// Commits `prepared` in as few transactions as refusals allow (see `apply_batch`).
    fn commit_prepared(&self, prepared: &[Prepared<'_>], stamp: &MailStamp) -> Vec<Outcome> {
        let mut outcomes = Vec::with_capacity(prepared.len());
        let (mut start, mut end) = (0, prepared.len());
        // Each turn either settles `start..end` or shrinks `end`, so this ends.
        while start < prepared.len() {
            match self.transact(|tx| apply_all(tx, &prepared[start..end], stamp, self.log_capacity))
            {
                Ok(done) => {
                    outcomes.extend(done.into_iter().map(Ok));
                    start = end;
                    end = prepared.len();
                }
                Err(TransactionError::Abort(Refused { index: 0, error })) => {
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

    /// A delete's preparation: the business's reservations, listed outside the transaction
    /// (sled transactions cannot scan). Only the writer adds reservations and everything
    /// before the delete has committed, so the list is complete.
    fn prepare_delete(&self, id: Uuid) -> Result<Prepared<'static>, StoreError> {
        let mut reservation_keys = Vec::new();
        let mut reservation_ids = Vec::new();
        for entry in self.trees.reservations.scan_prefix(id.as_bytes()) {
            let (key, value) = entry?;
            let reservation: Reservation = decode("reservations", &value)?;
            reservation_keys.push(key);
            reservation_ids.push(reservation.id);
        }
        Ok(Prepared::DeleteBusiness {
            id,
            now: Timestamp::now(),
            reservation_keys,
            reservation_ids,
        })
    }

    /// Runs `body` in one transaction over every tree.
    fn transact<T, E>(
        &self,
        body: impl Fn(&Tx<'_>) -> ConflictableTransactionResult<T, E>,
    ) -> Result<T, TransactionError<E>> {
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
            &t.outbox,
            &t.receipts,
        ];
        trees[..].transaction(|view| {
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
                outbox: &view[12],
                receipts: &view[13],
            };
            body(&tx)
        })
    }
}

/// Decides everything a mutation other than a delete needs before its transaction.
fn prepare(mutation: &Mutation) -> Prepared<'_> {
    let now = Timestamp::now();
    match mutation {
        Mutation::CreateUser(new) => Prepared::CreateUser(User {
            id: Uuid::new_v4(),
            email: new.email.clone(),
            role: new.role,
            password_hash: new.password_hash.clone(),
            created_at: now,
        }),
        Mutation::SetPassword {
            email,
            password_hash,
        } => Prepared::SetPassword {
            email,
            password_hash,
        },
        Mutation::CreateBusiness(new) => Prepared::CreateBusiness(Business {
            id: Uuid::new_v4(),
            name: new.name.clone(),
            subdomain: new.subdomain.clone(),
            owner_email: new.owner_email.clone(),
            created_at: now,
            updated_at: now,
        }),
        Mutation::UpdateBusiness { id, patch } => Prepared::UpdateBusiness {
            id: *id,
            patch,
            now,
        },
        Mutation::DeleteBusiness { .. } => {
            unreachable!("deletes are prepared by Store::prepare_delete")
        }
        Mutation::CreateReservation { business_id, new } => {
            Prepared::CreateReservation(Reservation {
                id: Uuid::new_v4(),
                business_id: *business_id,
                customer_name: new.customer_name.clone(),
                customer_email: new.customer_email.clone(),
                starts_at: new.starts_at,
                service: new.service.clone(),
                status: ReservationStatus::Confirmed,
                created_at: now,
            })
        }
        Mutation::CancelReservation {
            business_id,
            reservation_id,
        } => Prepared::CancelReservation {
            business_id: *business_id,
            reservation_id: *reservation_id,
            now,
        },
        Mutation::MarkRead { user_id, up_to } => Prepared::MarkRead {
            user_id: *user_id,
            up_to: *up_to,
        },
    }
}

/// The body of a batch transaction: applies each prepared mutation in order, and aborts at
/// the first refusal, naming it.
fn apply_all(
    tx: &Tx<'_>,
    prepared: &[Prepared<'_>],
    stamp: &MailStamp,
    capacity: u64,
) -> ConflictableTransactionResult<Vec<(Applied, Option<u64>)>, Refused> {
    let mut done = Vec::with_capacity(prepared.len());
    for (index, mutation) in prepared.iter().enumerate() {
        match tx.apply(mutation, stamp, capacity) {
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

impl Tx<'_> {
    /// Applies one prepared mutation inside the transaction. Rule checks come before the
    /// first write, though an abort discards every write of the transaction anyway.
    fn apply(
        &self,
        mutation: &Prepared<'_>,
        stamp: &MailStamp,
        capacity: u64,
    ) -> TxResult<(Applied, Option<u64>)> {
        match mutation {
            Prepared::CreateUser(user) => self.create_user(user),
            Prepared::SetPassword {
                email,
                password_hash,
            } => self.set_password(email, password_hash),
            Prepared::CreateBusiness(business) => self.create_business(business, stamp, capacity),
            Prepared::UpdateBusiness { id, patch, now } => {
                self.update_business(*id, patch, *now, capacity)
            }
            Prepared::DeleteBusiness {
                id,
                now,
                reservation_keys,
                reservation_ids,
            } => self.delete_business(*id, *now, reservation_keys, reservation_ids, capacity),
            Prepared::CreateReservation(reservation) => {
                self.create_reservation(reservation, stamp, capacity)
            }
            Prepared::CancelReservation {
                business_id,
                reservation_id,
                now,
            } => self.cancel_reservation(*business_id, *reservation_id, *now, stamp, capacity),
            Prepared::MarkRead { user_id, up_to } => self.mark_read(*user_id, *up_to),
        }
    }

    fn create_user(&self, user: &User) -> TxResult<(Applied, Option<u64>)> {
        if self.user_emails.get(user.email.as_bytes())?.is_some() {
            return abort(StoreError::Conflict {
                field: Some("email"),
                message: "a user with this email already exists".into(),
            });
        }
        self.users.insert(user.id.as_bytes(), codec::encode(user))?;
        self.user_emails
            .insert(user.email.as_bytes(), user.id.as_bytes())?;
        // A new user starts with nothing unread: history before them is not news.
        let seen = self.counter(meta_keys::NEXT_EVENT_ID)?.max(1) - 1;
        self.receipts.insert(user.id.as_bytes(), &u64_key(seen))?;
        Ok((Applied::User(user.clone()), None))
    }

    fn set_password(&self, email: &str, password_hash: &str) -> TxResult<(Applied, Option<u64>)> {
        let Some(id) = self.user_emails.get(email.as_bytes())? else {
            return abort(StoreError::NotFound("user"));
        };
        let Some(bytes) = self.users.get(&id)? else {
            return abort(StoreError::NotFound("user"));
        };
        let mut user: User = tx_decode("users", &bytes)?;
        user.password_hash = password_hash.to_string();
        self.users.insert(&id, codec::encode(&user))?;
        Ok((Applied::User(user), None))
    }

    fn create_business(
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

    fn update_business(
        &self,
        id: Uuid,
        patch: &BusinessPatch,
        now: Timestamp,
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
        let event =
            Event::for_business(event_id, EventKind::BusinessUpdated, &record.business, now);
        self.append_event(&event, capacity)?;
        Ok((Applied::Business(record.business), Some(event_id)))
    }

    fn delete_business(
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

    fn create_reservation(
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

    fn cancel_reservation(
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

    fn mark_read(&self, user_id: Uuid, up_to: u64) -> TxResult<(Applied, Option<u64>)> {
        if self.users.get(user_id.as_bytes())?.is_none() {
            return abort(StoreError::NotFound("user"));
        }
        let newest = self.counter(meta_keys::NEXT_EVENT_ID)?.max(1) - 1;
        let current = match self.receipts.get(user_id.as_bytes())? {
            Some(bytes) => super::keys::read_u64(&bytes).unwrap_or(0),
            None => 0,
        };
        // Receipts only move forward, and never past what exists.
        let stored = current.max(up_to.min(newest));
        self.receipts.insert(user_id.as_bytes(), &u64_key(stored))?;
        Ok((Applied::ReadUpTo(stored), None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::NewBusiness;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db"), 1 << 20, 100).unwrap();
        (dir, store)
    }

    fn stamp() -> MailStamp {
        MailStamp {
            epoch: "e".into(),
            domain: "example.com".into(),
        }
    }

    fn create(subdomain: &str) -> Mutation {
        Mutation::CreateBusiness(NewBusiness {
            name: format!("Salon {subdomain}"),
            subdomain: subdomain.into(),
            owner_email: "owner@example.com".into(),
        })
    }

    fn event_id(outcome: &Outcome) -> Option<u64> {
        outcome.as_ref().ok().and_then(|(_, id)| *id)
    }

    #[test]
    fn an_event_head_reads_the_first_fields_of_a_stored_event() {
        let now = Timestamp::now();
        let business = Business {
            id: Uuid::new_v4(),
            name: "Salon".into(),
            subdomain: "salon".into(),
            owner_email: "o@example.com".into(),
            created_at: now,
            updated_at: now,
        };
        let event = Event::for_business(77, EventKind::BusinessDeleted, &business, now);
        let head: EventHead = decode("events", &codec::encode(&event)).unwrap();
        assert_eq!(head.id, 77);
        assert_eq!(head.kind, EventKind::BusinessDeleted);
        assert_eq!(head.business_id, business.id);
    }

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
            Mutation::DeleteBusiness { id: a.id },
            create("b"),                           // taken earlier in this very batch
            create("a"),                           // free again after the delete
            Mutation::DeleteBusiness { id: a.id }, // already gone
        ];
        let outcomes = store.apply_batch(&batch, &stamp());
        let ids: Vec<Option<u64>> = outcomes.iter().map(event_id).collect();
        assert_eq!(ids, [Some(2), None, Some(3), Some(4), None, Some(5), None]);
        assert!(matches!(
            outcomes[1],
            Err(StoreError::Conflict {
                field: Some("subdomain"),
                ..
            })
        ));
        assert!(matches!(outcomes[4], Err(StoreError::Conflict { .. })));
        assert!(matches!(outcomes[6], Err(StoreError::NotFound("business"))));
        assert_eq!(store.next_event_id().unwrap(), 6);
        let logged: Vec<u64> = store
            .trees
            .events
            .iter()
            .keys()
            .map(|key| super::super::keys::read_u64(&key.unwrap()).unwrap())
            .collect();
        assert_eq!(logged, [1, 2, 3, 4, 5]);
    }
}
