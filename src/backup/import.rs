//! Backup records → a fresh store: the rows as they were, every index and counter rebuilt
//! from them, the next ids kept (so no id is reused), and a new epoch (the store was opened
//! fresh), so every client resyncs by itself.

use super::format::{Header, Record};
use super::BackupError;
use crate::domain::{MailKind, OutboxMail, OutboxStatus};
use crate::store::codec;
use crate::store::keys::{due_key, email_u64_key, u64_key, uuid_u64_key};
use crate::store::meta_keys;
use crate::store::mutations::{BusinessRecord, Closing};
use crate::store::Store;
use base64::Engine;
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use uuid::Uuid;

/// Rebuilds counters while records arrive.
#[derive(Default)]
pub struct Importer {
    /// `app restore --replica`: the store becomes a replica of the cluster's log at the
    /// backup's position, so it takes what every node holds (sessions) and leaves what was
    /// the source node's own (its browsers' push subscriptions, which that node serves).
    replica: bool,
    businesses: u64,
    reservations: u64,
    per_business: HashMap<Uuid, u64>,
}

impl Importer {
    /// An importer for a plain restore, or with `replica` for `app restore --replica`.
    pub fn new(replica: bool) -> Self {
        Self {
            replica,
            ..Self::default()
        }
    }

    /// Writes one record into `store` (and its secret files into `data`).
    ///
    /// # Errors
    /// The store or the folder cannot be written, or a secret has an unknown name.
    pub fn apply(&mut self, store: &Store, data: &Path, record: Record) -> Result<(), BackupError> {
        let t = &store.trees;
        match record {
            Record::Secret { name, base64 } => {
                // Only the names a backup writes: a name is a path, and a crafted file must
                // not write outside the folder.
                if !super::export::SECRET_FILES.contains(&name.as_str()) {
                    return Err(BackupError::Refused(format!(
                        "the backup names an unknown secret file {name:?}"
                    )));
                }
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(base64.as_bytes())
                    .map_err(|_| {
                        BackupError::Refused(format!("the secret {name} is not base64"))
                    })?;
                write_private(&data.join(&name), &bytes)?;
            }
            Record::User { user } => {
                t.users.insert(user.id.as_bytes(), codec::encode(&user))?;
                t.user_emails
                    .insert(user.email.as_bytes(), user.id.as_bytes())?;
            }
            Record::UserAccess { user_id, access } => {
                t.user_access
                    .insert(user_id.as_bytes(), codec::encode(&access))?;
            }
            Record::Receipt { user_id, up_to } => {
                t.receipts.insert(user_id.as_bytes(), &u64_key(up_to))?;
            }
            Record::Business { seq, business } => {
                let id = business.id;
                t.subdomains
                    .insert(business.subdomain.as_bytes(), id.as_bytes())?;
                t.business_order.insert(u64_key(seq), id.as_bytes())?;
                t.owner_index
                    .insert(email_u64_key(&business.owner_email, seq), id.as_bytes())?;
                t.businesses.insert(
                    id.as_bytes(),
                    codec::encode(&BusinessRecord { seq, business }),
                )?;
                self.businesses += 1;
            }
            Record::Reservation { seq, reservation } => {
                let key = uuid_u64_key(reservation.business_id, seq);
                t.reservation_ids.insert(reservation.id.as_bytes(), &key)?;
                t.reservations.insert(key, codec::encode(&reservation))?;
                *self
                    .per_business
                    .entry(reservation.business_id)
                    .or_default() += 1;
                self.reservations += 1;
            }
            Record::Event { event } => {
                t.business_events
                    .insert(uuid_u64_key(event.business_id, event.id), &[])?;
                t.events.insert(u64_key(event.id), codec::encode(&event))?;
            }
            Record::Outbox { mail } => {
                if mail.status == OutboxStatus::Pending {
                    t.outbox_due
                        .insert(due_key(mail.next_attempt_at, mail.id), &[])?;
                }
                // The index a cancel takes a scheduled reminder back by.
                if let (MailKind::Reminder, Some(reservation)) = (mail.kind, &mail.reservation) {
                    t.reminders
                        .insert(reservation.id.as_bytes(), &u64_key(mail.id))?;
                }
                t.outbox.insert(u64_key(mail.id), codec::encode(&mail))?;
            }
            Record::RefreshFamily { id, family } => {
                if self.replica {
                    t.refresh_families
                        .insert(id.as_bytes(), codec::encode(&family))?;
                }
            }
            Record::RefreshToken { hash, token } => {
                if self.replica {
                    let hash = base64::engine::general_purpose::STANDARD
                        .decode(hash.as_bytes())
                        .ok()
                        .filter(|bytes| bytes.len() == 32)
                        .ok_or_else(|| {
                            BackupError::Refused(format!(
                                "a refresh token's hash {hash:?} is not 32 bytes of base64"
                            ))
                        })?;
                    t.refresh_tokens.insert(hash, codec::encode(&token))?;
                }
            }
            Record::PushSubscription { .. } | Record::PushOutbox { .. } if self.replica => {}
            Record::PushSubscription { subscription } => {
                let key = crate::store::push::owner_key(&subscription);
                let mut owners: Vec<Uuid> = match t.push_owners.get(&key)? {
                    Some(bytes) => codec::decode(&bytes).map_err(|source| {
                        crate::store::StoreError::Corrupt {
                            tree: "push_owners",
                            source,
                        }
                    })?,
                    None => Vec::new(),
                };
                owners.push(subscription.id);
                t.push_owners.insert(key, codec::encode(&owners))?;
                t.push_endpoints
                    .insert(subscription.endpoint.as_bytes(), subscription.id.as_bytes())?;
                t.push_subscriptions
                    .insert(subscription.id.as_bytes(), codec::encode(&subscription))?;
            }
            // Resumed from its start: what the source already cancelled is cancelled, and a
            // cancelled booking is not cancelled again.
            Record::Closing { business_id, since } => {
                let closing = Closing { since, after: None };
                t.closings
                    .insert(business_id.as_bytes(), codec::encode(&closing))?;
            }
            Record::PushOutbox { push } => {
                t.push_outbox
                    .insert(push.subscription_id.as_bytes(), codec::encode(&push))?;
            }
            Record::OutboxSent { mail } => {
                // Sent while an online backup read the queue: the sent copy is the truth.
                if let Some(bytes) = t.outbox.remove(u64_key(mail.id))? {
                    let queued: OutboxMail = codec::decode(&bytes).map_err(|source| {
                        crate::store::StoreError::Corrupt {
                            tree: "outbox",
                            source,
                        }
                    })?;
                    t.outbox_due
                        .remove(due_key(queued.next_attempt_at, queued.id))?;
                }
                t.outbox_sent
                    .insert(u64_key(mail.id), codec::encode(&mail))?;
            }
        }
        Ok(())
    }

    /// Writes the counters and next ids, and makes everything durable.
    ///
    /// # Errors
    /// The store cannot be written or flushed.
    pub fn finish(self, store: &Store, header: &Header) -> Result<(), BackupError> {
        let t = &store.trees;
        for (business_id, count) in &self.per_business {
            t.reservation_counts
                .insert(business_id.as_bytes(), codec::encode(count))?;
        }
        let meta = [
            (meta_keys::NEXT_EVENT_ID, header.next_event_id),
            (meta_keys::NEXT_OUTBOX_ID, header.next_outbox_id),
            (meta_keys::BUSINESS_COUNT, self.businesses),
            (meta_keys::RESERVATION_COUNT, self.reservations),
        ];
        for (key, value) in meta {
            t.meta.insert(key, codec::encode(&value))?;
        }
        store.flush()?;
        Ok(())
    }
}

/// Writes a file readable by its owner only (0600), durably.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), BackupError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(())
}
