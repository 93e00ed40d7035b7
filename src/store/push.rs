//! Push subscriptions and the push queue as the API, the push drainer and `app outbox` see
//! them (rows are queued by [`super::mutations`], in the transaction of their event).
//!
//! Trees: `push_subscriptions` (id → subscription), `push_endpoints` (endpoint → id, so the
//! same endpoint again is the same subscription), `push_owners` (an owner's email, or
//! [`ADMINS_KEY`] for every super admin's, → the ids, which is what an event's transaction
//! looks up) and `push_outbox` (subscription id → its one waiting push). Every change here is
//! one small transaction over the trees it touches, so an index never names a subscription
//! that a committed unsubscribe removed for longer than that transaction.

use super::{codec, decode, Store, StoreError};
use crate::domain::{
    OutboxPush, OutboxStatus, PushSubscription, Timestamp, MAX_SUBSCRIPTIONS_PER_USER,
};
use sled::transaction::{ConflictableTransactionError, TransactionalTree};
use sled::Transactional;
use uuid::Uuid;

/// The `push_owners` key of super admins' subscriptions (no email starts with a NUL byte).
pub(crate) const ADMINS_KEY: &[u8] = b"\0admins";

/// What a subscribe did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subscribed {
    /// A new subscription.
    Created(Uuid),
    /// The endpoint was already subscribed: its keys and owner are now the ones given.
    Existing(Uuid),
}

type TxResult<T> = sled::transaction::ConflictableTransactionResult<T, StoreError>;

fn tx_decode<T: serde::de::DeserializeOwned>(tree: &'static str, bytes: &[u8]) -> TxResult<T> {
    decode(tree, bytes).map_err(ConflictableTransactionError::Abort)
}

/// The `push_owners` key a subscription is filed under.
pub(crate) fn owner_key(subscription: &PushSubscription) -> Vec<u8> {
    if subscription.admin {
        ADMINS_KEY.to_vec()
    } else {
        subscription.email.as_bytes().to_vec()
    }
}

fn read_list(owners: &TransactionalTree, key: &[u8]) -> TxResult<Vec<Uuid>> {
    match owners.get(key)? {
        Some(bytes) => tx_decode("push_owners", &bytes),
        None => Ok(Vec::new()),
    }
}

fn write_list(owners: &TransactionalTree, key: &[u8], list: &[Uuid]) -> TxResult<()> {
    if list.is_empty() {
        owners.remove(key)?;
    } else {
        owners.insert(key, codec::encode(&list))?;
    }
    Ok(())
}

/// Removes `id` and everything that names it; returns the removed subscription.
fn remove_in(
    (subscriptions, endpoints, owners, outbox): (
        &TransactionalTree,
        &TransactionalTree,
        &TransactionalTree,
        &TransactionalTree,
    ),
    id: Uuid,
) -> TxResult<Option<PushSubscription>> {
    let Some(bytes) = subscriptions.remove(id.as_bytes())? else {
        return Ok(None);
    };
    let old: PushSubscription = tx_decode("push_subscriptions", &bytes)?;
    endpoints.remove(old.endpoint.as_bytes())?;
    let key = owner_key(&old);
    let mut list = read_list(owners, &key)?;
    list.retain(|other| *other != id);
    write_list(owners, &key, &list)?;
    outbox.remove(id.as_bytes())?;
    Ok(Some(old))
}

impl Store {
    fn push_trees(&self) -> [&sled::Tree; 4] {
        [
            &self.trees.push_subscriptions,
            &self.trees.push_endpoints,
            &self.trees.push_owners,
            &self.trees.push_outbox,
        ]
    }

    /// Stores `new` (its id is used only when the endpoint is new), durably. The same
    /// endpoint again is the same subscription, now with `new`'s keys and owner (a browser
    /// has one subscription, whoever signed in last).
    ///
    /// # Errors
    /// `Conflict` past [`MAX_SUBSCRIPTIONS_PER_USER`]; `Unavailable`, `Corrupt`.
    pub fn subscribe_push(&self, new: &PushSubscription) -> Result<Subscribed, StoreError> {
        let outcome = self.push_trees()[..].transaction(|trees| {
            let [subscriptions, endpoints, owners, outbox] = trees.as_slice() else {
                return Err(ConflictableTransactionError::Storage(
                    sled::Error::ReportableBug("four push trees, four views".into()),
                ));
            };
            let mut subscription = new.clone();
            let existing = match endpoints.get(new.endpoint.as_bytes())? {
                Some(bytes) => Uuid::from_slice(&bytes).ok(),
                None => None,
            };
            if let Some(id) = existing {
                if let Some(bytes) = subscriptions.get(id.as_bytes())? {
                    let mut old: PushSubscription = tx_decode("push_subscriptions", &bytes)?;
                    if old.user_id == new.user_id {
                        // The same browser again: new keys, the same subscription and queue.
                        old.p256dh.clone_from(&new.p256dh);
                        old.auth.clone_from(&new.auth);
                        subscriptions.insert(id.as_bytes(), codec::encode(&old))?;
                        return Ok(Subscribed::Existing(id));
                    }
                }
                // Someone else signed in on that browser: the endpoint is theirs now, and
                // nothing queued for the former owner goes to it.
                remove_in((subscriptions, endpoints, owners, outbox), id)?;
                subscription.id = id;
            }
            let key = owner_key(&subscription);
            let mut list = read_list(owners, &key)?;
            let mut mine = 0;
            for other in &list {
                if let Some(bytes) = subscriptions.get(other.as_bytes())? {
                    let other: PushSubscription = tx_decode("push_subscriptions", &bytes)?;
                    mine += usize::from(other.user_id == subscription.user_id);
                }
            }
            if mine >= MAX_SUBSCRIPTIONS_PER_USER {
                return Err(ConflictableTransactionError::Abort(StoreError::Conflict {
                    field: None,
                    message: format!(
                        "a user may hold at most {MAX_SUBSCRIPTIONS_PER_USER} push \
                         subscriptions; remove one first"
                    ),
                }));
            }
            list.push(subscription.id);
            write_list(owners, &key, &list)?;
            subscriptions.insert(subscription.id.as_bytes(), codec::encode(&subscription))?;
            endpoints.insert(subscription.endpoint.as_bytes(), subscription.id.as_bytes())?;
            Ok(match existing {
                Some(id) => Subscribed::Existing(id),
                None => Subscribed::Created(subscription.id),
            })
        })?;
        self.flush()?;
        Ok(outcome)
    }

    /// Removes subscription `id` with its waiting push, durably. With `owner`, only that
    /// user's own subscription is removed (anyone else's is `NotFound`, like a missing one).
    ///
    /// # Errors
    /// `NotFound`; `Unavailable`, `Corrupt`.
    pub fn unsubscribe_push(&self, id: Uuid, owner: Option<Uuid>) -> Result<(), StoreError> {
        self.push_trees()[..].transaction(|trees| {
            let [subscriptions, endpoints, owners, outbox] = trees.as_slice() else {
                return Err(ConflictableTransactionError::Storage(
                    sled::Error::ReportableBug("four push trees, four views".into()),
                ));
            };
            let mine = match subscriptions.get(id.as_bytes())? {
                Some(bytes) => {
                    let subscription: PushSubscription = tx_decode("push_subscriptions", &bytes)?;
                    owner.is_none_or(|owner| owner == subscription.user_id)
                }
                None => false,
            };
            if !mine {
                return Err(ConflictableTransactionError::Abort(StoreError::NotFound(
                    "push subscription",
                )));
            }
            remove_in((subscriptions, endpoints, owners, outbox), id)?;
            Ok(())
        })?;
        self.flush()
    }

    /// Subscription `id`, if it exists.
    ///
    /// # Errors
    /// `Unavailable`, `Corrupt`.
    pub fn push_subscription(&self, id: Uuid) -> Result<Option<PushSubscription>, StoreError> {
        match self.trees.push_subscriptions.get(id.as_bytes())? {
            Some(bytes) => Ok(Some(decode("push_subscriptions", &bytes)?)),
            None => Ok(None),
        }
    }

    /// Every subscription (for backups), in id order.
    ///
    /// # Errors
    /// `Unavailable`, `Corrupt`.
    pub fn push_subscriptions(&self) -> Result<Vec<PushSubscription>, StoreError> {
        let mut all = Vec::new();
        for entry in self.trees.push_subscriptions.iter().values() {
            all.push(decode("push_subscriptions", &entry?)?);
        }
        Ok(all)
    }

    /// Every queued push (pending and failed), by subscription id. The queue holds at most
    /// one row per subscription, so reading it whole is bounded by the subscriptions.
    ///
    /// # Errors
    /// `Unavailable`, `Corrupt`.
    pub fn push_rows(&self) -> Result<Vec<OutboxPush>, StoreError> {
        let mut rows = Vec::new();
        for entry in self.trees.push_outbox.iter().values() {
            rows.push(decode("push_outbox", &entry?)?);
        }
        Ok(rows)
    }

    /// Records that the push service accepted `sent` at `now`: the row goes, unless events
    /// were merged into it while the push was in flight, in which case it stays for them
    /// alone (the coalescing window, which starts at `last_push_at`, decides when).
    ///
    /// # Errors
    /// `Unavailable`, `Corrupt`.
    pub fn record_push_sent(&self, sent: &OutboxPush, now: Timestamp) -> Result<(), StoreError> {
        let trees = (&self.trees.push_outbox, &self.trees.push_subscriptions);
        trees.transaction(|(outbox, subscriptions)| {
            let key = sent.subscription_id.as_bytes();
            if let Some(bytes) = subscriptions.get(key)? {
                let mut subscription: PushSubscription = tx_decode("push_subscriptions", &bytes)?;
                subscription.last_push_at = Some(now);
                subscriptions.insert(key, codec::encode(&subscription))?;
            }
            let Some(bytes) = outbox.get(key)? else {
                return Ok(());
            };
            let mut row: OutboxPush = tx_decode("push_outbox", &bytes)?;
            if row.last_event_id <= sent.last_event_id {
                outbox.remove(key)?;
            } else {
                row.events = row.events.saturating_sub(sent.events).max(1);
                row.first_event_id = sent.last_event_id + 1;
                row.status = OutboxStatus::Pending;
                row.attempts = 0;
                row.next_attempt_at = now;
                row.last_error = None;
                outbox.insert(key, codec::encode(&row))?;
            }
            Ok(())
        })?;
        Ok(())
    }

    /// Records a failed try of the push for subscription `id`: it waits until
    /// `next_attempt_at`, or is `failed` when `next_attempt_at` is `None`.
    ///
    /// # Errors
    /// `Unavailable`, `Corrupt`.
    pub fn record_push_failure(
        &self,
        id: Uuid,
        attempts: u32,
        next_attempt_at: Option<Timestamp>,
        error: &str,
    ) -> Result<(), StoreError> {
        self.trees.push_outbox.transaction(|outbox| {
            let Some(bytes) = outbox.get(id.as_bytes())? else {
                return Ok(());
            };
            let mut row: OutboxPush = tx_decode("push_outbox", &bytes)?;
            row.attempts = attempts;
            row.last_error = Some(error.to_string());
            match next_attempt_at {
                Some(at) => {
                    row.status = OutboxStatus::Pending;
                    row.next_attempt_at = at;
                }
                None => row.status = OutboxStatus::Failed,
            }
            outbox.insert(id.as_bytes(), codec::encode(&row))?;
            Ok(())
        })?;
        Ok(())
    }

    /// Removes subscription `id` and its push: the push service said it is gone (404/410).
    ///
    /// # Errors
    /// `Unavailable`, `Corrupt`.
    pub fn remove_push_subscription(&self, id: Uuid) -> Result<(), StoreError> {
        match self.unsubscribe_push(id, None) {
            Err(StoreError::NotFound(_)) => Ok(()),
            other => other,
        }
    }

    /// Puts failed pushes back in the queue, due now (`app outbox retry`); returns how many.
    ///
    /// # Errors
    /// `Unavailable`, `Corrupt`.
    pub fn retry_failed_pushes(&self, now: Timestamp) -> Result<usize, StoreError> {
        let mut count = 0;
        for row in self.push_rows()? {
            if row.status != OutboxStatus::Failed {
                continue;
            }
            let key = row.subscription_id;
            self.trees.push_outbox.transaction(|outbox| {
                if let Some(bytes) = outbox.get(key.as_bytes())? {
                    let mut row: OutboxPush = tx_decode("push_outbox", &bytes)?;
                    if row.status == OutboxStatus::Failed {
                        row.status = OutboxStatus::Pending;
                        row.attempts = 0;
                        row.next_attempt_at = now;
                        outbox.insert(key.as_bytes(), codec::encode(&row))?;
                    }
                }
                Ok::<_, ConflictableTransactionError<StoreError>>(())
            })?;
            count += 1;
        }
        self.flush()?;
        Ok(count)
    }
}
