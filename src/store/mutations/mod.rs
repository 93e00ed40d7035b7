//! Every change to the store, applied inside a sled transaction over all the trees it
//! touches: the entity, its event (which is its activity entry too: the activity log is the
//! newest events of the log) and its outbox rows commit together or not at all (DESIGN
//! "writer"). The writer hands over a whole batch, which normally commits as one transaction
//! (see [`Store::apply_batch`](crate::store::Store::apply_batch)).
//!
//! Transaction closures may run more than once: they only read and write trees; new ids and
//! timestamps are chosen before the transaction starts ([`prepare`]).
//!
//! Layout, one job per file (mini-redis's `cmd/`): this file holds the vocabulary
//! ([`Mutation`], [`Applied`], the prepared form and the dispatch); `batch` turns a batch into
//! transactions; `tx` holds what every family shares (counters, event append, mail enqueue);
//! `users`, `businesses`, `reservations`, `receipts`, `sessions` and `outbox` hold one family of
//! mutations each; `closing` holds the steps of a delete (the business's future bookings
//! cancelled in chunks, then the delete).
//! Adding a mutation: a `Mutation` variant, its `Prepared` form and `prepare` arm, its arm in
//! `Tx::apply`, and a method in its family's file.

mod batch;
mod businesses;
mod closing;
mod outbox;
mod push;
mod receipts;
mod reservations;
mod sessions;
mod tx;
mod users;

use super::trees::Tx;
use super::StoreError;
use crate::domain::{
    AccessState, Business, BusinessPatch, EventKind, NewBusiness, NewReservation, NewUser,
    OutboxMail, Reservation, ReservationStatus, Timestamp, User,
};
pub use closing::CloseStep;
pub(crate) use closing::Closing;
pub use sessions::{AccessChange, SessionApplied, SessionMutation, UserRef};
use tx::TxResult;
use uuid::Uuid;

/// A change the writer applies.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum Mutation {
    CreateUser(NewUser),
    /// A new password or disabled flag; revokes the user's older tokens.
    ChangeAccess {
        who: UserRef,
        change: AccessChange,
    },
    /// Refresh-token families: login, refresh, logout, pruning.
    Session(SessionMutation),
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
    /// The mail drainer claims outbox rows before handing them to SMTP: each pending row's
    /// next attempt moves to its time here, durably, so no failure after the send can bring
    /// it back before then.
    ClaimMails {
        claims: Vec<(u64, Timestamp)>,
    },
    /// The mails of these outbox rows were accepted by the SMTP server: they leave the queue
    /// for the audit trail, durably before the drainer counts them sent, and, in a cluster,
    /// on every node, so no node sends them again.
    MailsSent {
        ids: Vec<u64>,
    },
    /// A mutation read from the cluster's log (`crate::cluster`): the clock and the new id
    /// were chosen by the node that published it, so every node applies it alike, and `seq`
    /// (its place in the log) is stored in the same transaction as its effects.
    Replicated {
        seq: u64,
        now: Timestamp,
        new_id: Uuid,
        inner: Box<Mutation>,
    },
    /// Tries of these claimed outbox rows failed: each is retried at its time or failed for
    /// good, durably before the drainer counts it, and, in a cluster, on every node, so every
    /// node counts the same tries and none sends a mail another has failed.
    ///
    /// Last of the variants, like any added later: bincode names a variant by its position,
    /// and a cluster's log keeps records written by earlier builds.
    MailsFailed {
        failures: Vec<MailFailure>,
    },
}

/// One failed try of a claimed outbox row, as [`Mutation::MailsFailed`] records it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct MailFailure {
    pub id: u64,
    /// The row's `next_attempt_at` as the drainer's claim set it: a row that has moved on
    /// since (claimed again after the claim ran out, requeued, sent) is left as it is.
    pub claimed_until: Timestamp,
    /// Tries so far, this one included.
    pub attempts: u32,
    /// When to try again; `None` fails the row for good (kept for `app outbox retry`).
    pub retry_at: Option<Timestamp>,
    /// What the SMTP server (or the transport) answered.
    pub error: String,
}

impl Mutation {
    /// The change itself, without the cluster's wrapping.
    pub fn inner(&self) -> &Mutation {
        match self {
            Mutation::Replicated { inner, .. } => inner.inner(),
            other => other,
        }
    }
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
    /// A user after a change of access, with the access state now in force.
    Account {
        user: User,
        access: AccessState,
    },
    Session(SessionApplied),
    /// The outbox rows a claim or a record of sends or failures changed, as they now are
    /// (rows it left alone are left out).
    Claimed(Vec<OutboxMail>),
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

/// A stored event as schema version 2 wrote it, before events carried their audience; read
/// only by the migration to version 3.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct EventV2 {
    pub id: u64,
    pub kind: EventKind,
    pub business_id: Uuid,
    pub timestamp: Timestamp,
    pub frame: String,
}

/// What stamps outbox rows: the epoch and mail domain make Message-IDs unique per store;
/// `reminder_micros` (`--reminder-hours`) is how long before `starts_at` a booking's reminder
/// is due (0: no reminders).
#[derive(Debug, Clone)]
pub struct MailStamp {
    pub epoch: String,
    pub domain: String,
    pub reminder_micros: i64,
}

/// A mutation with every choice made before its transaction — new ids, the clock — so that applying it depends on the trees alone and a
/// closure that sled runs again does exactly the same thing.
enum Prepared<'a> {
    CreateUser(User),
    ChangeAccess {
        who: &'a UserRef,
        change: &'a AccessChange,
    },
    Session {
        mutation: &'a SessionMutation,
        /// The id of a family a login starts.
        family: Uuid,
        now: Timestamp,
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
    ClaimMails {
        claims: &'a [(u64, Timestamp)],
        now: Timestamp,
    },
    MailsSent {
        ids: &'a [u64],
        now: Timestamp,
    },
    MailsFailed(&'a [MailFailure]),
    Replicated {
        seq: u64,
        inner: Box<Prepared<'a>>,
    },
}

/// One mutation's result: what it produced and the id of the event it appended, if any.
pub type Outcome = Result<(Applied, Option<u64>), StoreError>;

/// The id of the event `outcome` appended, if it appended one.
pub fn event_id(outcome: &Outcome) -> Option<u64> {
    outcome.as_ref().ok().and_then(|(_, id)| *id)
}

/// Decides everything a mutation needs before its transaction.
fn prepare(mutation: &Mutation) -> Prepared<'_> {
    prepare_with(mutation, Timestamp::now(), Uuid::new_v4())
}

/// [`prepare`] with the clock and the one new id a mutation may take given: chosen here on
/// a single node, carried by the record in a cluster.
fn prepare_with(mutation: &Mutation, now: Timestamp, new_id: Uuid) -> Prepared<'_> {
    match mutation {
        Mutation::CreateUser(new) => Prepared::CreateUser(User {
            id: new_id,
            email: new.email.clone(),
            role: new.role,
            password_hash: new.password_hash.clone(),
            created_at: now,
        }),
        Mutation::ChangeAccess { who, change } => Prepared::ChangeAccess { who, change },
        Mutation::Session(mutation) => Prepared::Session {
            mutation,
            family: new_id,
            now,
        },
        Mutation::CreateBusiness(new) => Prepared::CreateBusiness(Business {
            id: new_id,
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
        Mutation::DeleteBusiness { id } => Prepared::DeleteBusiness { id: *id, now },
        Mutation::CreateReservation { business_id, new } => {
            Prepared::CreateReservation(Reservation {
                id: new_id,
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
        Mutation::ClaimMails { claims } => Prepared::ClaimMails { claims, now },
        Mutation::MailsSent { ids } => Prepared::MailsSent { ids, now },
        Mutation::MailsFailed { failures } => Prepared::MailsFailed(failures),
        Mutation::Replicated {
            seq,
            now,
            new_id,
            inner,
        } => Prepared::Replicated {
            seq: *seq,
            inner: Box::new(prepare_with(inner, *now, *new_id)),
        },
    }
}

impl Tx<'_> {
    /// Applies one prepared mutation inside the transaction. Rule checks come before the
    /// first write, though an abort discards every write of the transaction anyway.
    fn apply(
        &self,
        mutation: &Prepared<'_>,
        stamp: &MailStamp,
    ) -> TxResult<(Applied, Option<u64>)> {
        match mutation {
            Prepared::CreateUser(user) => self.create_user(user),
            Prepared::ChangeAccess { who, change } => self.change_access(who, change),
            Prepared::Session {
                mutation,
                family,
                now,
            } => self.session(mutation, *family, *now),
            Prepared::CreateBusiness(business) => self.create_business(business, stamp),
            Prepared::UpdateBusiness { id, patch, now } => {
                self.update_business(*id, patch, *now, stamp)
            }
            Prepared::DeleteBusiness { id, now } => self.begin_close(*id, *now),
            Prepared::CreateReservation(reservation) => self.create_reservation(reservation, stamp),
            Prepared::CancelReservation {
                business_id,
                reservation_id,
                now,
            } => self.cancel_reservation(*business_id, *reservation_id, *now, stamp),
            Prepared::MarkRead { user_id, up_to } => self.mark_read(*user_id, *up_to),
            Prepared::ClaimMails { claims, now } => self.claim_mails(claims, *now),
            Prepared::MailsSent { ids, now } => self.mails_sent(ids, *now),
            Prepared::MailsFailed(failures) => self.mails_failed(failures),
            Prepared::Replicated { seq, inner } => {
                let outcome = self.apply(inner, stamp)?;
                self.meta
                    .insert(super::meta_keys::CLUSTER_SEQ, super::codec::encode(seq))?;
                Ok(outcome)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Event;
    use crate::store::{codec, decode};

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
}
