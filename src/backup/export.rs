//! Store → backup records: every primary tree in key order, plus the secrets of the data
//! folder. Indexes and counters are left out; a restore rebuilds them from the rows.
//!
//! The caller makes the view consistent: offline the folder is ours alone; online the export
//! runs on the writer thread between batches (`Writer::exclusive`), so every tree the writer
//! changes holds exactly the changes up to one event id. The drainer moves mails from `outbox`
//! to `outbox_sent` on its own; `outbox` is read first, so a mail sent meanwhile appears in
//! both (a restore keeps the sent copy) and never in neither.

use super::format::{BackupWriter, FormatError, Header, Record, FORMAT_NAME, FORMAT_VERSION};
use super::BackupError;
use crate::domain::Timestamp;
use crate::store::codec;
use crate::store::mutations::{BusinessRecord, Closing};
use crate::store::{Store, SCHEMA_VERSION};
use base64::Engine;
use std::io::Write;
use std::path::Path;

/// Files of the data folder a backup carries, when present.
pub const SECRET_FILES: [&str; 2] = [crate::config::SECRET_FILE, "vapid.key"];

/// Writes the whole store and the data folder's secrets to `out` as one backup.
///
/// # Errors
/// A tree or a secret file cannot be read, a record cannot be decoded, or `out` fails.
pub fn export<W: Write>(store: &Store, data: &Path, out: W) -> Result<(W, Header), BackupError> {
    let position = store.position()?;
    let header = Header {
        format: FORMAT_NAME.into(),
        version: FORMAT_VERSION,
        created_at: Timestamp::now(),
        event_id: position.event_id,
        next_event_id: position.event_id + 1,
        next_outbox_id: position.outbox_id + 1,
        source_epoch: position.epoch,
        schema_version: SCHEMA_VERSION,
        cluster_seq: Some(store.cluster_applied()?).filter(|seq| *seq > 0),
    };
    let mut writer = BackupWriter::new(out, &header)?;
    for name in SECRET_FILES {
        match std::fs::read(data.join(name)) {
            Ok(bytes) => writer.record(&Record::Secret {
                name: name.into(),
                base64: base64::engine::general_purpose::STANDARD.encode(bytes),
            })?,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(FormatError::Io(error).into()),
        }
    }
    let trees = &store.trees;
    for entry in trees.users.iter() {
        let (_, value) = entry?;
        writer.record(&Record::User {
            user: decode("users", &value)?,
        })?;
    }
    for entry in trees.user_access.iter() {
        let (key, value) = entry?;
        writer.record(&Record::UserAccess {
            user_id: uuid("user_access", &key)?,
            access: decode("user_access", &value)?,
        })?;
    }
    // A replica must start from everything the other nodes hold, sessions included.
    if header.cluster_seq.is_some() {
        for entry in trees.refresh_families.iter() {
            let (key, value) = entry?;
            writer.record(&Record::RefreshFamily {
                id: uuid("refresh_families", &key)?,
                family: decode("refresh_families", &value)?,
            })?;
        }
        for entry in trees.refresh_tokens.iter() {
            let (key, value) = entry?;
            writer.record(&Record::RefreshToken {
                hash: base64::engine::general_purpose::STANDARD.encode(&key),
                token: decode("refresh_tokens", &value)?,
            })?;
        }
    }
    for entry in trees.receipts.iter() {
        let (key, value) = entry?;
        writer.record(&Record::Receipt {
            user_id: uuid("receipts", &key)?,
            up_to: be_u64("receipts", &value)?,
        })?;
    }
    for entry in trees.businesses.iter() {
        let (_, value) = entry?;
        let record: BusinessRecord = decode("businesses", &value)?;
        writer.record(&Record::Business {
            seq: record.seq,
            business: record.business,
        })?;
    }
    for entry in trees.closings.iter() {
        let (key, value) = entry?;
        let closing: Closing = decode("closings", &value)?;
        writer.record(&Record::Closing {
            business_id: uuid("closings", &key)?,
            since: closing.since,
        })?;
    }
    for entry in trees.reservations.iter() {
        let (key, value) = entry?;
        // A deleted business's reservations awaiting their purge are gone already.
        if trees
            .purges
            .contains_key(key.get(..16).unwrap_or_default())?
        {
            continue;
        }
        // Key: business id (16 bytes) ‖ creating event id (8 bytes, big-endian).
        let seq = be_u64("reservations", key.get(16..).unwrap_or_default())?;
        writer.record(&Record::Reservation {
            seq,
            reservation: decode("reservations", &value)?,
        })?;
    }
    for entry in trees.events.iter() {
        let (_, value) = entry?;
        writer.record(&Record::Event {
            event: decode("events", &value)?,
        })?;
    }
    for entry in trees.outbox.iter() {
        let (_, value) = entry?;
        writer.record(&Record::Outbox {
            mail: decode("outbox", &value)?,
        })?;
    }
    for entry in trees.outbox_sent.iter() {
        let (_, value) = entry?;
        writer.record(&Record::OutboxSent {
            mail: decode("outbox_sent", &value)?,
        })?;
    }
    for entry in trees.push_subscriptions.iter() {
        let (_, value) = entry?;
        writer.record(&Record::PushSubscription {
            subscription: decode("push_subscriptions", &value)?,
        })?;
    }
    for entry in trees.push_outbox.iter() {
        let (_, value) = entry?;
        writer.record(&Record::PushOutbox {
            push: decode("push_outbox", &value)?,
        })?;
    }
    Ok((writer.finish()?, header))
}

/// Decodes a stored value, naming its tree when it is damaged.
pub(super) fn decode<T: serde::de::DeserializeOwned>(
    tree: &'static str,
    bytes: &[u8],
) -> Result<T, BackupError> {
    codec::decode(bytes).map_err(|source| BackupError::Damaged {
        tree,
        why: source.to_string(),
    })
}

/// An 8-byte big-endian integer (a key or a raw value).
pub(super) fn be_u64(tree: &'static str, bytes: &[u8]) -> Result<u64, BackupError> {
    let array: [u8; 8] = bytes.try_into().map_err(|_| BackupError::Damaged {
        tree,
        why: format!("expected 8 bytes, found {}", bytes.len()),
    })?;
    Ok(u64::from_be_bytes(array))
}

/// A 16-byte uuid (a key or a raw value).
pub(super) fn uuid(tree: &'static str, bytes: &[u8]) -> Result<uuid::Uuid, BackupError> {
    let array: [u8; 16] = bytes.try_into().map_err(|_| BackupError::Damaged {
        tree,
        why: format!("expected a 16-byte id, found {} bytes", bytes.len()),
    })?;
    Ok(uuid::Uuid::from_bytes(array))
}
