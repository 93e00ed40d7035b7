//! The store's schema version: written on first open, checked at every open, and an older
//! store brought up to date one step at a time (what each version changed is listed at
//! [`SCHEMA_VERSION`]). A store from a newer build is refused rather than misread.

use super::{codec, decode, keys, meta_keys, mutations, StoreError, Trees};

/// The schema version this build writes; `Store::open` refuses a store from a newer build and
/// migrates an older one (see `migrate` below).
///
/// - 1: the activity log was a tree of its own, a copy of the newest 50 events.
/// - 2: the activity log is read from the `events` tree, which keeps at least 50 events.
/// - 3: every stored event ends with its audience (the owner emails that may receive it,
///   fixed at commit). Events written before have none recorded; the migration gives each
///   the current owner of its business, or an empty audience (super admins only) when the
///   business is gone — the only owner it can name, and never one who did not own it then
///   unless the business moved since, which version 2 did not record.
/// - 4: pending outbox rows are indexed by due time in `outbox_due` (failed rows are not), so
///   the drainer's scan reads what is due, not the whole queue; a deleted business's
///   reservations are removed in chunks after the delete (`purges`).
pub const SCHEMA_VERSION: u64 = 4;

/// Writes the schema version and epoch on first open; checks them afterwards, migrating
/// a store written by an older build.
pub(super) fn init_meta(db: &sled::Db, trees: &Trees) -> Result<String, StoreError> {
    let meta = &trees.meta;
    match meta.get(meta_keys::SCHEMA_VERSION)? {
        Some(bytes) => {
            let found: u64 = decode("meta", &bytes)?;
            if found > SCHEMA_VERSION {
                return Err(StoreError::TooNew { found });
            }
            if found < SCHEMA_VERSION {
                migrate(db, trees, found)?;
                meta.insert(meta_keys::SCHEMA_VERSION, codec::encode(&SCHEMA_VERSION))?;
            }
        }
        None => {
            meta.insert(meta_keys::SCHEMA_VERSION, codec::encode(&SCHEMA_VERSION))?;
        }
    }
    if let Some(bytes) = meta.get(meta_keys::EPOCH)? {
        return decode("meta", &bytes);
    }
    let epoch = uuid::Uuid::new_v4().simple().to_string();
    meta.insert(meta_keys::EPOCH, codec::encode(&epoch))?;
    Ok(epoch)
}

/// Brings a store of schema version `from` to [`SCHEMA_VERSION`]. Each step may run again
/// if the process dies before the new version is written, so each is idempotent.
fn migrate(db: &sled::Db, trees: &Trees, from: u64) -> Result<(), StoreError> {
    if from < 2 {
        // 1 → 2: the activity tree was a copy of the newest 50 events, which the events
        // tree holds too; the activity log is now read from there.
        db.drop_tree("activity")?;
    }
    if from < 3 {
        give_old_events_an_audience(trees)?;
    }
    if from < 4 {
        // 3 → 4: index the pending rows by due time. Inserting a key twice is harmless,
        // and nothing else writes before the migration ends.
        let outbox = db.open_tree("outbox")?;
        let due = db.open_tree("outbox_due")?;
        for entry in outbox.iter() {
            let (_, bytes) = entry?;
            let row: crate::domain::OutboxMail = decode("outbox", &bytes)?;
            if row.status == crate::domain::OutboxStatus::Pending {
                due.insert(keys::due_key(row.next_attempt_at, row.id), &[])?;
            }
        }
    }
    Ok(())
}

/// 2 → 3: rewrites each event stored without an audience (see [`SCHEMA_VERSION`]). An
/// event already in the new layout is left alone, so a migration cut short runs again.
fn give_old_events_an_audience(trees: &Trees) -> Result<(), StoreError> {
    use crate::domain::{Audience, Event};
    for entry in trees.events.iter() {
        let (key, value) = entry?;
        // The new layout only adds a trailing field: an old record is too short for it.
        if codec::decode::<Event>(&value).is_ok() {
            continue;
        }
        let old: mutations::EventV2 = decode("events", &value)?;
        let audience = match trees.businesses.get(old.business_id.as_bytes())? {
            Some(bytes) => {
                let record: mutations::BusinessRecord = decode("businesses", &bytes)?;
                Audience::owner(&record.business.owner_email)
            }
            None => Audience::default(),
        };
        let event = Event {
            id: old.id,
            kind: old.kind,
            business_id: old.business_id,
            timestamp: old.timestamp,
            frame: old.frame,
            audience,
        };
        trees.events.insert(key, codec::encode(&event))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{fixtures, Store, Visibility};

    #[test]
    fn a_version_1_store_drops_its_activity_copy_and_reads_activity_from_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            // A version 1 store: the same log, plus the activity tree it used to keep.
            let store = Store::open(&path, 1 << 20, 100).unwrap();
            let newest = fixtures::create_businesses(&store, 60);
            let activity = store.db.open_tree("activity").unwrap();
            for id in newest - 49..=newest {
                let event = store.trees.events.get(keys::u64_key(id)).unwrap().unwrap();
                activity.insert(keys::u64_key(id), event).unwrap();
            }
            store
                .trees
                .meta
                .insert(meta_keys::SCHEMA_VERSION, codec::encode(&1u64))
                .unwrap();
            store.flush().unwrap();
        }
        let store = Store::open(&path, 1 << 20, 100).unwrap();
        let version: u64 = decode(
            "meta",
            &store
                .trees
                .meta
                .get(meta_keys::SCHEMA_VERSION)
                .unwrap()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        assert!(!store
            .db
            .tree_names()
            .iter()
            .any(|name| name.as_ref() == b"activity"));
        let activity = store.activity(&Visibility::All, None, 60).unwrap();
        assert_eq!(
            fixtures::event_ids(&activity),
            (11..=60).rev().collect::<Vec<u64>>()
        );
        // Reopening a migrated store changes nothing.
        drop(store);
        let store = Store::open(&path, 1 << 20, 100).unwrap();
        assert_eq!(
            store.activity(&Visibility::All, None, 60).unwrap().len(),
            50
        );
    }

    #[test]
    fn a_version_2_store_gives_its_events_the_current_owner_or_admins_only() {
        use crate::domain::{Audience, Event, EventKind, Timestamp};
        /// An event as version 2 stored it: no audience.
        #[derive(serde::Serialize)]
        struct Old<'a> {
            id: u64,
            kind: EventKind,
            business_id: uuid::Uuid,
            timestamp: Timestamp,
            frame: &'a str,
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let kept = {
            let store = Store::open(&path, 1 << 20, 100).unwrap();
            fixtures::create_businesses(&store, 1);
            let kept = store.business_by_subdomain("s0").unwrap().unwrap();
            let gone = uuid::Uuid::new_v4();
            for (id, business_id) in [(1, kept.id), (2, gone)] {
                let old = Old {
                    id,
                    kind: EventKind::BusinessCreated,
                    business_id,
                    timestamp: Timestamp::from_micros(0),
                    frame: "{}",
                };
                store
                    .trees
                    .events
                    .insert(keys::u64_key(id), codec::encode(&old))
                    .unwrap();
            }
            store
                .trees
                .meta
                .insert(meta_keys::SCHEMA_VERSION, codec::encode(&2u64))
                .unwrap();
            store.flush().unwrap();
            kept
        };
        for _ in 0..2 {
            // The second open finds nothing left to migrate.
            let store = Store::open(&path, 1 << 20, 100).unwrap();
            let first: Event = store.event(1).unwrap().unwrap();
            assert_eq!(first.audience, Audience::owner(&kept.owner_email));
            assert_eq!(first.frame, "{}");
            let second: Event = store.event(2).unwrap().unwrap();
            assert_eq!(second.audience, Audience::default(), "its business is gone");
        }
    }

    #[test]
    fn a_version_3_store_gets_its_pending_mails_indexed_by_due_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            // A version 3 store: outbox rows, no due index.
            let store = Store::open(&path, 1 << 20, 100).unwrap();
            fixtures::create_businesses(&store, 3);
            store.trees.outbox_due.clear().unwrap();
            store
                .trees
                .meta
                .insert(meta_keys::SCHEMA_VERSION, codec::encode(&3u64))
                .unwrap();
            store.flush().unwrap();
        }
        let store = Store::open(&path, 1 << 20, 100).unwrap();
        let scan = store
            .scan_outbox(crate::domain::Timestamp::now(), 3, 10)
            .unwrap();
        let ids: Vec<u64> = scan.due.iter().map(|row| row.id).collect();
        assert_eq!(ids, [1, 2, 3]);
        assert_eq!(store.pending_mail_count().unwrap(), 3);
    }

    #[test]
    fn a_store_from_a_newer_build_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            let store = Store::open(&path, 1 << 20, 100).unwrap();
            let newer = SCHEMA_VERSION + 1;
            store
                .trees
                .meta
                .insert(meta_keys::SCHEMA_VERSION, codec::encode(&newer))
                .unwrap();
            store.flush().unwrap();
        }
        assert!(matches!(
            Store::open(&path, 1 << 20, 100),
            Err(StoreError::TooNew { .. })
        ));
    }
}
