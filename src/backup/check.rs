//! `app check`: reads every record of every tree, decodes it, and checks what can be checked
//! from the inside — indexes against rows, counters against contents, the event log's ids
//! consecutive — and the store against its outside record. Each problem is one sentence.

use super::export::{be_u64, decode, uuid};
use super::BackupError;
use crate::domain::{Event, OutboxMail, OutboxStatus, Reservation, User};
use crate::store::keys::{due_key, email_u64_key, u64_key, uuid_u64_key};
use crate::store::meta_keys;
use crate::store::mutations::BusinessRecord;
use crate::store::record::{self, shortfalls};
use crate::store::Store;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;
use uuid::Uuid;

/// Problems found in the store of `data` (empty: whole). A record that cannot be read at
/// all ends the check with an error instead.
///
/// # Errors
/// A tree cannot be iterated (the store itself fails).
pub fn check_store(store: &Store, data: &Path) -> Result<Vec<String>, BackupError> {
    let mut problems = Vec::new();
    let mut note = |problem: Result<(), BackupError>| {
        if let Err(error) = problem {
            problems.push(error.to_string());
        }
    };
    let t = &store.trees;
    let counter = |key: &[u8]| -> Result<u64, BackupError> {
        match t.meta.get(key)? {
            Some(bytes) => decode("meta", &bytes),
            None => Ok(0),
        }
    };

    // Users and their email index, both ways.
    let mut user_ids = HashSet::new();
    for entry in t.users.iter() {
        let (key, value) = entry?;
        note((|| {
            let user: User = decode("users", &value)?;
            user_ids.insert(user.id);
            expect(
                key.as_ref() == user.id.as_bytes(),
                format!("users: user {} is stored under another key", user.id),
            )?;
            expect(
                t.user_emails.get(user.email.as_bytes())?.as_deref() == Some(user.id.as_bytes()),
                format!("user_emails: no entry for {}", user.email),
            )
        })());
    }
    let emails = t.user_emails.len();
    note(expect(
        emails == user_ids.len(),
        format!(
            "user_emails holds {emails} entries for {} users",
            user_ids.len()
        ),
    ));
    for entry in t.receipts.iter() {
        let (key, value) = entry?;
        note(uuid("receipts", &key).and_then(|_| be_u64("receipts", &value).map(drop)));
    }

    // Businesses and their three indexes.
    let mut business_ids = HashSet::new();
    for entry in t.businesses.iter() {
        let (_, value) = entry?;
        note((|| {
            let BusinessRecord { seq, business } = decode("businesses", &value)?;
            business_ids.insert(business.id);
            let id = Some(business.id.as_bytes().as_slice());
            let indexed = [
                (
                    "subdomains",
                    t.subdomains.get(business.subdomain.as_bytes())?,
                ),
                ("business_order", t.business_order.get(u64_key(seq))?),
                (
                    "owner_index",
                    t.owner_index
                        .get(email_u64_key(&business.owner_email, seq))?,
                ),
            ];
            for (tree, found) in indexed {
                expect(
                    found.as_deref() == id,
                    format!("{tree}: no entry for business {}", business.id),
                )?;
            }
            Ok(())
        })());
    }
    for (tree, len) in [
        ("subdomains", t.subdomains.len()),
        ("business_order", t.business_order.len()),
        ("owner_index", t.owner_index.len()),
    ] {
        note(expect(
            len == business_ids.len(),
            format!(
                "{tree} holds {len} entries for {} businesses",
                business_ids.len()
            ),
        ));
    }
    note(counter(meta_keys::BUSINESS_COUNT).and_then(|count| {
        expect(
            count == business_ids.len() as u64,
            format!(
                "business_count is {count}, the store holds {}",
                business_ids.len()
            ),
        )
    }));

    // Reservations, their id index and their counters.
    let mut per_business: HashMap<Uuid, u64> = HashMap::new();
    let mut reservations = 0u64;
    // Reservations of a deleted business that the writer has not purged yet.
    let mut purging = 0u64;
    for entry in t.reservations.iter() {
        let (key, value) = entry?;
        if t.purges.contains_key(key.get(..16).unwrap_or_default())? {
            purging += 1;
            continue;
        }
        reservations += 1;
        note((|| {
            let reservation: Reservation = decode("reservations", &value)?;
            *per_business.entry(reservation.business_id).or_default() += 1;
            expect(
                key.starts_with(reservation.business_id.as_bytes()),
                format!(
                    "reservations: {} is filed under another business",
                    reservation.id
                ),
            )?;
            expect(
                business_ids.contains(&reservation.business_id),
                format!("reservations: {} belongs to no business", reservation.id),
            )?;
            expect(
                t.reservation_ids.get(reservation.id.as_bytes())?.as_deref() == Some(&key[..]),
                format!(
                    "reservation_ids: no entry for reservation {}",
                    reservation.id
                ),
            )
        })());
    }
    let ids = t.reservation_ids.len() as u64;
    let filed = reservations + purging;
    note(expect(
        ids == filed,
        format!("reservation_ids holds {ids} entries for {filed} reservations"),
    ));
    note(counter(meta_keys::RESERVATION_COUNT).and_then(|count| {
        expect(
            count == reservations,
            format!("reservation_count is {count}, the store holds {reservations}"),
        )
    }));
    for entry in t.reservation_counts.iter() {
        let (key, value) = entry?;
        note((|| {
            let business = uuid("reservation_counts", &key)?;
            let count: u64 = decode("reservation_counts", &value)?;
            let found = per_business.remove(&business).unwrap_or(0);
            expect(
                count == found,
                format!("reservation_counts: business {business} counts {count}, holds {found}"),
            )
        })());
    }
    for (business, found) in per_business {
        problems.push(format!(
            "reservation_counts: business {business} holds {found} reservations and no count"
        ));
    }

    problems.extend(check_events(store)?);
    problems.extend(check_outbox(store)?);

    // The store against the outside record.
    match record::read(data) {
        Ok(Some(record)) => {
            let here = store.position()?;
            problems.extend(
                shortfalls(&here, &record)
                    .into_iter()
                    .map(|problem| format!("behind {}: {problem}", record::RECORD_FILE)),
            );
        }
        Ok(None) => {}
        Err(error) => problems.push(error.to_string()),
    }
    Ok(problems)
}

/// The event log: decodable, consecutive within the epoch, ending at the newest id, and
/// mirrored by the per-business index.
fn check_events(store: &Store) -> Result<Vec<String>, BackupError> {
    let t = &store.trees;
    let mut problems = Vec::new();
    let first_of_epoch = store.epoch_first_event_id()?;
    let newest = store.next_event_id()? - 1;
    let mut previous: Option<u64> = None;
    let mut logged = BTreeSet::new();
    for entry in t.events.iter() {
        let (key, value) = entry?;
        let event: Event = match decode("events", &value) {
            Ok(event) => event,
            Err(error) => {
                problems.push(error.to_string());
                continue;
            }
        };
        if key.as_ref() != u64_key(event.id) {
            problems.push(format!(
                "events: event {} is stored under another key",
                event.id
            ));
        }
        if let Some(before) = previous {
            // Below the epoch's first id lie events of an earlier life (--accept-data-loss).
            if event.id != before + 1 && event.id != first_of_epoch {
                problems.push(format!("events: ids jump from {before} to {}", event.id));
            }
        }
        if t.business_events
            .get(uuid_u64_key(event.business_id, event.id))?
            .is_none()
        {
            problems.push(format!("business_events: no entry for event {}", event.id));
        }
        logged.insert(event.id);
        previous = Some(event.id);
    }
    // A new epoch (--accept-data-loss) starts above the counter; until its first event,
    // the log ends in the earlier life.
    let epoch_has_events = newest >= first_of_epoch;
    match previous {
        Some(last) if epoch_has_events && last != newest => problems.push(format!(
            "events: the newest event is {last}, the counter says {newest}"
        )),
        None if epoch_has_events => {
            problems.push(format!(
                "events: the log is empty, the counter says {newest}"
            ));
        }
        _ => {}
    }
    let indexed = t.business_events.len();
    if indexed != logged.len() {
        problems.push(format!(
            "business_events holds {indexed} entries for {} events",
            logged.len()
        ));
    }
    Ok(problems)
}

/// The outbox: decodable, each id in one tree only, none at or past the next id.
fn check_outbox(store: &Store) -> Result<Vec<String>, BackupError> {
    let t = &store.trees;
    let mut problems = Vec::new();
    let next = match t.meta.get(meta_keys::NEXT_OUTBOX_ID)? {
        Some(bytes) => decode::<u64>("meta", &bytes)?.max(1),
        None => 1,
    };
    for (name, tree) in [("outbox", &t.outbox), ("outbox_sent", &t.outbox_sent)] {
        for entry in tree.iter() {
            let (key, value) = entry?;
            let mail: OutboxMail = match decode(name, &value) {
                Ok(mail) => mail,
                Err(error) => {
                    problems.push(error.to_string());
                    continue;
                }
            };
            if key.as_ref() != u64_key(mail.id) {
                problems.push(format!(
                    "{name}: mail {} is stored under another key",
                    mail.id
                ));
            }
            if mail.id >= next {
                problems.push(format!(
                    "{name}: mail {} is at or past the next outbox id {next}",
                    mail.id
                ));
            }
            let indexed = t
                .outbox_due
                .contains_key(due_key(mail.next_attempt_at, mail.id))?;
            if (name == "outbox" && mail.status == OutboxStatus::Pending) != indexed {
                problems.push(format!(
                    "outbox_due: mail {} is {} the due index",
                    mail.id,
                    if indexed {
                        "wrongly in"
                    } else {
                        "missing from"
                    }
                ));
            }
            if name == "outbox_sent" && t.outbox.contains_key(u64_key(mail.id))? {
                problems.push(format!("outbox: mail {} is both queued and sent", mail.id));
            }
        }
    }
    Ok(problems)
}

/// `Ok` when `holds`, else the problem.
fn expect(holds: bool, problem: String) -> Result<(), BackupError> {
    if holds {
        Ok(())
    } else {
        Err(BackupError::Inconsistent(problem))
    }
}
