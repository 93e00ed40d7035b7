//! The embedded store: sled trees behind typed methods.
//!
//! Nothing outside this module touches a tree. Where things live:
//! - this file: [`Store`] (open, flush) and [`StoreError`]; `schema`: the schema version,
//!   checked at open, and the migrations of an older store;
//! - `trees`: the one list of sled trees, and the transaction over them;
//! - [`mutations`]: every write, which the single writer (`crate::writer`) applies a batch at
//!   a time, normally as one sled transaction (one file per family of mutations);
//! - `reads`: typed reads and paged listings; `outbox`: the mail queue as the drainer sees
//!   it; `purge`: removing a deleted business's reservations in chunks; `user_cache`: users
//!   as authentication reads them;
//! - `keys`: key layouts; [`codec`]: record encoding (the only place bincode appears);
//! - [`record`]: the outside record (`<data>/state.json`) that tells a damaged store apart.

mod cluster;
pub mod codec;
#[cfg(test)]
pub(crate) mod fixtures;
pub(crate) mod keys;
pub mod mutations;
mod outbox;
mod pages;
mod purge;
pub(crate) mod push;
mod reads;
pub mod record;
mod schema;
mod sessions;
mod trees;
mod user_cache;

pub use mutations::MailStamp;
pub use mutations::{event_id, Applied, CloseStep, MailFailure, Mutation};
pub use mutations::{AccessChange, SessionApplied, SessionMutation, UserRef};
pub use outbox::{OutboxCounts, OutboxScan};
pub use pages::{ActivityPage, UpcomingCursor};
pub use reads::{Page, PageCursor, Visibility};
pub use schema::SCHEMA_VERSION;
pub use sessions::PruneCandidates;
pub(crate) use trees::Trees;

use sled::transaction::TransactionError;
use std::path::Path;

/// How many entries the activity log shows (the design's "last 50"): the newest 50 events.
pub const ACTIVITY_LIMIT: u64 = 50;

/// How long [`Store::open`] waits for a store's lock before answering
/// [`StoreError::Locked`]: far longer than a dropped handle's last write takes, short enough
/// that a command run beside a live server (which holds the lock for good) answers at once.
pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_millis(500);
/// How often [`Store::open`] tries the lock again while it waits.
const LOCK_RETRY_EVERY: std::time::Duration = std::time::Duration::from_millis(10);

/// Whether sled refused to open because another handle holds the database's file lock.
fn is_lock_refusal(error: &sled::Error) -> bool {
    match error {
        sled::Error::Io(io) => {
            io.kind() == std::io::ErrorKind::WouldBlock || io.to_string().contains("lock")
        }
        _ => false,
    }
}

/// Why a store operation failed, split by how the caller reacts.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The thing does not exist (→ 404).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A uniqueness or state rule forbids it (→ 409); the message is for humans.
    #[error("{message}")]
    Conflict {
        field: Option<&'static str>,
        message: String,
    },
    /// The disk or the database failed (→ 500/503).
    #[error("storage failure: {0}")]
    Unavailable(#[from] sled::Error),
    /// A record could not be decoded: a bug or a damaged file.
    #[error("corrupt record in {tree}: {source}")]
    Corrupt {
        tree: &'static str,
        source: codec::CodecError,
    },
    /// The store was written by a newer build.
    #[error("store schema version {found} is newer than this build's {SCHEMA_VERSION}")]
    TooNew { found: u64 },
    /// The data folder is held by another process (sled takes an exclusive lock).
    #[error("the data folder is in use by another process (is `app serve` running?)")]
    Locked,
    /// The writer has stopped (shutdown in progress).
    #[error("the store is shutting down")]
    Closed,
    /// An fsync failed: changes applied in memory may not be on disk. The writer answers
    /// every caller of the batch with this, sharing the one cause.
    #[error("could not flush the store to disk: {0}")]
    Flush(#[source] std::sync::Arc<sled::Error>),
    /// The store is degraded (`crate::health`): the change was refused before it was applied.
    #[error("the store cannot be written: {0}")]
    NotWritable(String),
}

impl StoreError {
    /// Whether this is the disk refusing (as opposed to a rule, a missing thing, a bug in a
    /// record or a shutdown): what `crate::health` counts and degrades on.
    pub fn is_storage_failure(&self) -> bool {
        matches!(
            self,
            StoreError::Flush(_) | StoreError::Unavailable(sled::Error::Io(_))
        )
    }
}

impl From<TransactionError<StoreError>> for StoreError {
    fn from(error: TransactionError<StoreError>) -> Self {
        match error {
            TransactionError::Abort(inner) => inner,
            TransactionError::Storage(inner) => StoreError::Unavailable(inner),
        }
    }
}

/// Decodes `bytes` from `tree`, naming the tree on failure.
fn decode<T: serde::de::DeserializeOwned>(
    tree: &'static str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    codec::decode(bytes).map_err(|source| StoreError::Corrupt { tree, source })
}

/// Keys of the `meta` tree.
pub(crate) mod meta_keys {
    pub const SCHEMA_VERSION: &[u8] = b"schema_version";
    pub const EPOCH: &[u8] = b"epoch";
    pub const NEXT_EVENT_ID: &[u8] = b"next_event_id";
    pub const NEXT_OUTBOX_ID: &[u8] = b"next_outbox_id";
    pub const BUSINESS_COUNT: &[u8] = b"business_count";
    pub const RESERVATION_COUNT: &[u8] = b"reservation_count";
    /// The newest cluster log sequence applied (cluster mode only).
    pub const CLUSTER_SEQ: &[u8] = b"cluster_seq";
}

/// A cheap-to-clone handle on the open database.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    /// sled's log file, synced by [`Store::flush`] after sled's own flush (see there).
    log_file: std::sync::Arc<std::fs::File>,
    pub(crate) trees: Trees,
    /// The event log's epoch: random, created with the log, kept across restarts.
    epoch: std::sync::Arc<str>,
    /// How many events the log keeps for resume.
    retention: u64,
    /// How many events the `events` tree holds: the retention, but never fewer than the
    /// activity log shows.
    log_capacity: u64,
    /// Users as authentication reads them; the writer clears it when a user changes.
    user_cache: std::sync::Arc<user_cache::UserCache>,
}

impl Store {
    /// Opens (or creates) the store at `path`, with a sled page cache of `cache_bytes`, keeping
    /// `retention` events.
    ///
    /// # Errors
    /// [`StoreError::Locked`] when another handle still has it open after
    /// [`LOCK_WAIT`]; `TooNew` for a newer schema.
    pub fn open(path: &Path, cache_bytes: u64, retention: u64) -> Result<Self, StoreError> {
        let db = Self::open_db_waiting_for_the_lock(path, cache_bytes)?;
        let trees = Trees::open(&db)?;
        let epoch = schema::init_meta(&db, &trees)?;
        db.flush()?;
        // sled 0.34 names its one log file `db` inside the folder it was given.
        let log_file = std::fs::File::open(path.join("db")).map_err(sled::Error::Io)?;
        let retention = retention.max(1);
        let store = Self {
            db,
            log_file: std::sync::Arc::new(log_file),
            trees,
            epoch: epoch.into(),
            retention,
            log_capacity: retention.max(ACTIVITY_LIMIT),
            user_cache: Default::default(),
        };
        store.trim_log()?;
        Ok(store)
    }

    /// Opens sled's database, retrying for up to [`LOCK_WAIT`] while its file lock is held.
    ///
    /// A handle dropped a moment ago can still hold the lock: sled's IO pool closes its copy
    /// of the log file only when the last write it was given returns, after `Db` is gone. A
    /// process that closes the store and opens it again (a migration test, a restart in
    /// place) would otherwise see its own ghost as "another process".
    fn open_db_waiting_for_the_lock(path: &Path, cache_bytes: u64) -> Result<sled::Db, StoreError> {
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        loop {
            let opened = sled::Config::new()
                .path(path)
                .cache_capacity(cache_bytes)
                .mode(sled::Mode::HighThroughput)
                .open();
            match opened {
                Ok(db) => return Ok(db),
                Err(error) if is_lock_refusal(&error) => {
                    if std::time::Instant::now() >= deadline {
                        return Err(StoreError::Locked);
                    }
                    std::thread::sleep(LOCK_RETRY_EVERY);
                }
                Err(other) => return Err(StoreError::Unavailable(other)),
            }
        }
    }

    /// Drops the events beyond the log's capacity (the retention, at least the activity log's
    /// 50) and their index entries, oldest first: at open (a store reopened with a smaller
    /// retention, or one killed before its last trim) and after each of the writer's
    /// transactions ([`Store::trim_log_after_write`]). Only the writer thread calls it (open:
    /// before it starts), so nothing races it; readers only ever see the oldest ids go.
    ///
    /// Outside the transactions that append, so a create does not read, decode and remove the
    /// event it pushes out. In between, the log holds a batch more than its capacity; a crash
    /// in between leaves it to the next open. Readers never see a gap: everything removed is
    /// below `next - retention`, which `oldest_event_id` already reports as gone, so an event
    /// whose index entry went first is outside every window a read or a replay accepts.
    fn trim_log(&self) -> Result<(), StoreError> {
        let next = self.next_event_id()?;
        let keep_from = next.saturating_sub(self.log_capacity).max(1);
        for entry in self.trees.events.range(..keys::u64_key(keep_from)) {
            let (key, value) = entry?;
            let event: mutations::EventHead = decode("events", &value)?;
            self.trees
                .business_events
                .remove(keys::uuid_u64_key(event.business_id, event.id))?;
            self.trees.events.remove(key)?;
        }
        Ok(())
    }

    /// [`Store::trim_log`] after a committed write that appended events (`appended`; the
    /// others cannot have grown the log, and skip its read). The write's outcome stands
    /// whatever happens here: a failure is logged, and the next append (or open) retries it.
    fn trim_log_after_write(&self, appended: bool) {
        if !appended {
            return;
        }
        if let Err(error) = self.trim_log() {
            tracing::error!(%error, "could not trim the event log to its retention");
        }
    }

    /// Makes everything written so far durable (fsync). Returns once it is on disk.
    ///
    /// sled's flush is not enough on its own: on Linux it ends each log write with
    /// `sync_file_range`, which waits for the data to reach the device but neither flushes
    /// the device's write cache nor persists the file's new size, so a power cut could take
    /// an acknowledged change (invariant 1; a killed process loses nothing either way).
    /// `fdatasync` on the log file does both, once per flush, i.e. once per writer batch.
    ///
    /// # Errors
    /// [`StoreError::Flush`] when the disk refused.
    pub fn flush(&self) -> Result<(), StoreError> {
        let failed = |error| StoreError::Flush(std::sync::Arc::new(error));
        self.db.flush().map_err(failed)?;
        self.log_file
            .sync_data()
            .map_err(|error| failed(sled::Error::Io(error)))?;
        Ok(())
    }

    /// The epoch of the event log.
    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    /// The sled tree the bus watches. Only `crate::bus` calls this.
    pub(crate) fn events_tree(&self) -> &sled::Tree {
        &self.trees.events
    }

    /// The id the next event will get (1 for an empty log).
    pub fn next_event_id(&self) -> Result<u64, StoreError> {
        self.meta_counter(meta_keys::NEXT_EVENT_ID)
            .map(|n| n.max(1))
    }

    /// A counter from `meta` (0 when never written).
    fn meta_counter(&self, key: &[u8]) -> Result<u64, StoreError> {
        match self.trees.meta.get(key)? {
            Some(bytes) => decode("meta", &bytes),
            None => Ok(0),
        }
    }

    /// Answers when the database can be read (for `/healthz`).
    pub fn health_check(&self) -> Result<(), StoreError> {
        self.trees.meta.get(meta_keys::SCHEMA_VERSION)?;
        Ok(())
    }

    /// Forgets cached users when `mutations` may have changed one (after they committed).
    fn forget_changed_users(&self, mutations: &[Mutation]) {
        if mutations.iter().any(|m| {
            matches!(
                m.inner(),
                Mutation::CreateUser(_) | Mutation::ChangeAccess { .. }
            )
        }) {
            self.user_cache.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opening_waits_out_a_handle_that_lets_go_of_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let holder = Store::open(&path, 1 << 20, 100).unwrap();
        // Taken before the holder's clock starts, so the wait below is at least its sleep.
        let started = std::time::Instant::now();
        let release = std::thread::spawn(move || {
            std::thread::sleep(LOCK_WAIT / 5);
            drop(holder);
        });
        let store = Store::open(&path, 1 << 20, 100).expect("the lock was let go within LOCK_WAIT");
        // It did wait: the holder was alive when the first attempt ran.
        assert!(started.elapsed() >= LOCK_WAIT / 5);
        release.join().unwrap();
        drop(store);
    }

    #[test]
    fn opening_a_store_held_for_good_answers_locked_after_the_wait() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let holder = Store::open(&path, 1 << 20, 100).unwrap();
        let started = std::time::Instant::now();
        assert!(matches!(
            Store::open(&path, 1 << 20, 100),
            Err(StoreError::Locked)
        ));
        assert!(started.elapsed() >= LOCK_WAIT);
        // The holder is untouched by the refused attempts.
        holder
            .trees
            .meta
            .insert(b"still", b"mine".to_vec())
            .unwrap();
        holder.flush().unwrap();
    }

    #[test]
    fn a_retention_under_50_still_shows_50_activities_but_replays_only_what_it_retains() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db"), 1 << 20, 5).unwrap();
        let newest = fixtures::create_businesses(&store, 60);
        assert_eq!(newest, 60);
        let all = Visibility::All;
        let activity = store.activity(&all, None, newest).unwrap();
        assert_eq!(
            fixtures::event_ids(&activity),
            (11..=60).rev().collect::<Vec<u64>>()
        );
        // Activity up to the durable watermark: the newest 50 written, of which 40 are durable.
        assert_eq!(store.activity(&all, None, 50).unwrap().len(), 40);
        assert_eq!(store.oldest_event_id().unwrap(), 56);
        assert!(store.replay_after(&all, 54, newest, 100).unwrap().is_none());
        let replay = store.replay_after(&all, 55, newest, 100).unwrap().unwrap();
        assert_eq!(fixtures::event_ids(&replay), [56, 57, 58, 59, 60]);
        let (unread, items) = store.notifications(&all, 0, newest, 50).unwrap();
        assert_eq!(
            (unread, fixtures::event_ids(&items)),
            (5, vec![60, 59, 58, 57, 56])
        );
        let mine = Visibility::Audience("owner@example.com".into());
        let (unread, items) = store.notifications(&mine, 0, newest, 50).unwrap();
        assert_eq!(
            (unread, fixtures::event_ids(&items)),
            (5, vec![60, 59, 58, 57, 56])
        );
        let (unread, _) = store.notifications(&mine, 58, newest, 50).unwrap();
        assert_eq!(unread, 2);
    }
}
