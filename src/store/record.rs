//! The outside record: `<data>/state.json`, a small file next to sled (not inside it) holding
//! the newest durable event id, the newest outbox id and the epoch.
//!
//! sled 0.34 recovers a damaged log by keeping the prefix before the first bad checksum and
//! dropping the rest, silently. Without a witness outside sled, a damaged store would start
//! and hand out event ids, outbox ids and Message-IDs a second time. At start the store is
//! compared with this record ([`admit`]): a store that holds less refuses to start unless the
//! operator accepts the loss, which starts a new epoch above every id ever handed out.
//!
//! The record only ever names ids that are durable in the store (it is written after a
//! flush), so a crash between a write and the next record never looks like damage. It is
//! written atomically (temp file, fsync, rename, fsync of the folder).

use super::{codec, meta_keys, Store, StoreError};
use crate::domain::Timestamp;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The record's file name inside the data folder.
pub const RECORD_FILE: &str = "state.json";
/// How often the running server refreshes the record while ids move.
pub const RECORD_INTERVAL: Duration = Duration::from_secs(1);
/// The layout of `state.json` this build writes.
const RECORD_VERSION: u32 = 1;

/// Why the record could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("cannot read or write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is malformed: {source}")]
    Malformed {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where the store stands: what the record holds, and what a store reports about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// The event log's epoch.
    pub epoch: String,
    /// The newest event id handed out (0: none yet).
    pub event_id: u64,
    /// The newest outbox id handed out (0: none yet).
    pub outbox_id: u64,
}

/// `state.json` as written.
#[derive(Debug, Serialize, Deserialize)]
struct RecordFile {
    version: u32,
    #[serde(flatten)]
    position: Position,
    written_at: Timestamp,
}

/// The start was refused: the store holds less than the outside record says it held.
#[derive(Debug, thiserror::Error)]
#[error(
    "the store in {data} holds less than its outside record {record_file} ({problems}); it was \
     damaged or replaced. Restore the newest backup into a new folder with \
     `app restore FILE --data NEWDIR`, or start anyway on a new epoch with \
     `app serve --accept-data-loss` (what is missing stays lost; no id is reused)",
    data = data.display(),
    record_file = RECORD_FILE,
    problems = problems.join("; ")
)]
pub struct StartRefused {
    pub data: PathBuf,
    pub problems: Vec<String>,
}

/// What a start did with the record (for the log).
#[derive(Debug, PartialEq, Eq)]
pub enum Admission {
    /// The store holds at least what the record says (or there was no record yet).
    Whole,
    /// The store was behind; the loss was accepted and a new epoch started.
    NewEpoch { problems: Vec<String> },
}

/// The path of the record in `data`.
pub fn record_path(data: &Path) -> PathBuf {
    data.join(RECORD_FILE)
}

/// Reads the record of `data`; `None` when there is none (a new folder, or one from before
/// the record existed).
///
/// # Errors
/// The file exists but cannot be read or parsed.
pub fn read(data: &Path) -> Result<Option<Position>, RecordError> {
    let path = record_path(data);
    let text = match std::fs::read(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(RecordError::Io { path, source }),
    };
    let file: RecordFile =
        serde_json::from_slice(&text).map_err(|source| RecordError::Malformed { path, source })?;
    Ok(Some(file.position))
}

/// Writes `position` as the record of `data`, atomically: a reader (or a crash) sees the old
/// record or the new one, never a mix.
///
/// # Errors
/// The folder cannot be written or synced.
pub fn write(data: &Path, position: &Position) -> Result<(), RecordError> {
    let path = record_path(data);
    let temp = data.join(format!("{RECORD_FILE}.tmp"));
    let io = |source| RecordError::Io {
        path: path.clone(),
        source,
    };
    let file = RecordFile {
        version: RECORD_VERSION,
        position: position.clone(),
        written_at: Timestamp::now(),
    };
    let mut text = serde_json::to_vec_pretty(&file).expect("a record always serializes");
    text.push(b'\n');
    let mut out = std::fs::File::create(&temp).map_err(io)?;
    out.write_all(&text)
        .and_then(|()| out.sync_all())
        .map_err(io)?;
    drop(out);
    std::fs::rename(&temp, &path).map_err(io)?;
    sync_dir(data).map_err(io)
}

/// Makes a rename in `dir` durable (the directory entry is data too).
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// What `store` is missing compared with `record`, one sentence each; empty when the store
/// holds at least as much.
pub fn shortfalls(store: &Position, record: &Position) -> Vec<String> {
    let mut problems = Vec::new();
    if store.epoch != record.epoch {
        problems.push(format!(
            "its epoch is {}, the record's {}",
            store.epoch, record.epoch
        ));
    }
    if store.event_id < record.event_id {
        problems.push(format!(
            "its newest event id is {}, the record's {}",
            store.event_id, record.event_id
        ));
    }
    if store.outbox_id < record.outbox_id {
        problems.push(format!(
            "its newest outbox id is {}, the record's {}",
            store.outbox_id, record.outbox_id
        ));
    }
    problems
}

impl Store {
    /// Where this store stands, as written so far (durable once a flush returns after this).
    ///
    /// # Errors
    /// The `meta` tree cannot be read.
    pub fn position(&self) -> Result<Position, StoreError> {
        Ok(Position {
            epoch: self.epoch().to_string(),
            event_id: self.next_event_id()? - 1,
            outbox_id: self.meta_counter(meta_keys::NEXT_OUTBOX_ID)?.max(1) - 1,
        })
    }

    /// Where this store stands, made durable first: what a record may name.
    ///
    /// # Errors
    /// The store cannot be read or flushed.
    pub fn durable_position(&self) -> Result<Position, StoreError> {
        // Read, then flush: everything the read saw was written before the flush began, so
        // the flush makes it durable.
        let position = self.position()?;
        self.flush()?;
        Ok(position)
    }

    /// Starts a new epoch whose next event id and next outbox id lie above `floor` (and above
    /// what the store holds), so no id of an earlier life is handed out again. The log keeps
    /// its older events: the new epoch sends every resuming client to `resync_required`.
    ///
    /// # Errors
    /// The store cannot be written or flushed.
    pub fn begin_new_epoch(mut self, floor: &Position) -> Result<Self, StoreError> {
        let here = self.position()?;
        let next_event = here.event_id.max(floor.event_id) + 1;
        let next_outbox = here.outbox_id.max(floor.outbox_id) + 1;
        let epoch = uuid::Uuid::new_v4().simple().to_string();
        let meta = &self.trees.meta;
        meta.insert(meta_keys::EPOCH, codec::encode(&epoch))?;
        meta.insert(meta_keys::NEXT_EVENT_ID, codec::encode(&next_event))?;
        meta.insert(meta_keys::NEXT_OUTBOX_ID, codec::encode(&next_outbox))?;
        meta.insert(EPOCH_FIRST_EVENT_ID, codec::encode(&next_event))?;
        self.flush()?;
        self.epoch = epoch.into();
        Ok(self)
    }

    /// The first event id of the current epoch when it began on a store that already had
    /// events (`--accept-data-loss`); 1 otherwise. Events below it belong to an earlier life.
    ///
    /// # Errors
    /// The `meta` tree cannot be read.
    pub fn epoch_first_event_id(&self) -> Result<u64, StoreError> {
        Ok(self.meta_counter(EPOCH_FIRST_EVENT_ID)?.max(1))
    }
}

/// `meta` key of [`Store::epoch_first_event_id`].
const EPOCH_FIRST_EVENT_ID: &[u8] = b"epoch_first_event_id";

/// Opens the store of `data` for `app serve`. sled 0.34 refuses a log that no longer
/// matches its snapshot file (a truncated `db`) with a corruption error: that is a damaged
/// store too, refused like one ([`StartRefused`]). With `accept_data_loss` the snapshot files
/// are moved aside (into `<data>/damaged-<time>/`), and sled rebuilds what the log still
/// holds by scanning it; [`admit`] then compares that with the record.
///
/// # Errors
/// [`StartRefused`], or the store cannot be opened for another reason (locked, I/O).
pub fn open_for_serve(
    data: &Path,
    cache_bytes: u64,
    retention: u64,
    accept_data_loss: bool,
) -> anyhow::Result<Store> {
    let path = crate::config::db_path(data);
    match Store::open(&path, cache_bytes, retention) {
        Err(StoreError::Unavailable(error @ sled::Error::Corruption { .. })) => {
            if !accept_data_loss {
                return Err(StartRefused {
                    data: data.to_path_buf(),
                    problems: vec![format!("sled cannot read it: {error}")],
                }
                .into());
            }
            let aside = data.join(format!("damaged-{}", Timestamp::now().as_micros()));
            std::fs::create_dir_all(&aside)?;
            for entry in std::fs::read_dir(&path)? {
                let entry = entry?;
                if entry.file_name().to_string_lossy().starts_with("snap.") {
                    std::fs::rename(entry.path(), aside.join(entry.file_name()))?;
                }
            }
            tracing::warn!(
                %error,
                aside = %aside.display(),
                "the store's snapshot does not match its log; moved it aside to recover the log"
            );
            Ok(Store::open(&path, cache_bytes, retention)?)
        }
        other => Ok(other?),
    }
}

/// Compares `store` with the record of `data` before anything is served: a store behind the
/// record is refused unless `accept_data_loss`, which starts a new epoch above the record.
/// Writes the record afterwards (a folder without one gets one).
///
/// # Errors
/// [`StartRefused`] (wrapped in `anyhow`) for a store behind its record; a `RecordError`
/// when the record cannot be read or written.
pub fn admit(
    store: Store,
    data: &Path,
    accept_data_loss: bool,
) -> anyhow::Result<(Store, Admission)> {
    let here = store.position()?;
    let (store, admission) = match read(data)? {
        None => (store, Admission::Whole),
        Some(record) => {
            let problems = shortfalls(&here, &record);
            if problems.is_empty() {
                (store, Admission::Whole)
            } else if accept_data_loss {
                let store = store.begin_new_epoch(&record)?;
                (store, Admission::NewEpoch { problems })
            } else {
                return Err(StartRefused {
                    data: data.to_path_buf(),
                    problems,
                }
                .into());
            }
        }
    };
    write(data, &store.durable_position()?)?;
    Ok((store, admission))
}

/// Keeps the record fresh while the server runs: at most once per [`RECORD_INTERVAL`], and
/// only when an id moved, it flushes and writes the record (off the request path, on the
/// blocking pool). The final record is written at the clean stop by [`write_final`].
pub async fn keep(store: Store, data: PathBuf, shutdown: CancellationToken) {
    let mut last = store.position().ok();
    let mut tick = tokio::time::interval(RECORD_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = store.position().ok();
        if now.is_none() || now == last {
            continue;
        }
        let (store, data) = (store.clone(), data.clone());
        let written = tokio::task::spawn_blocking(move || -> Result<Position, RecordError> {
            let position = store.durable_position()?;
            write(&data, &position)?;
            Ok(position)
        })
        .await;
        match written {
            Ok(Ok(position)) => last = Some(position),
            Ok(Err(error)) => tracing::warn!(%error, "could not refresh the outside record"),
            Err(error) => tracing::warn!(%error, "the outside record task failed"),
        }
    }
}

/// Writes the record at a clean stop, after the writer's last flush.
///
/// # Errors
/// The store cannot be read or flushed, or the record cannot be written.
pub fn write_final(store: &Store, data: &Path) -> Result<(), RecordError> {
    write(data, &store.durable_position()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(epoch: &str, event_id: u64, outbox_id: u64) -> Position {
        Position {
            epoch: epoch.into(),
            event_id,
            outbox_id,
        }
    }

    #[test]
    fn a_store_at_or_ahead_of_its_record_has_no_shortfall() {
        assert!(shortfalls(&at("e", 5, 3), &at("e", 5, 3)).is_empty());
        // Ahead: writes after the last refresh, then a crash. Not damage.
        assert!(shortfalls(&at("e", 9, 7), &at("e", 5, 3)).is_empty());
    }

    #[test]
    fn a_store_behind_its_record_or_on_another_epoch_is_named() {
        assert_eq!(shortfalls(&at("e", 4, 3), &at("e", 5, 3)).len(), 1);
        assert_eq!(shortfalls(&at("e", 5, 2), &at("e", 5, 3)).len(), 1);
        assert_eq!(shortfalls(&at("f", 9, 9), &at("e", 5, 3)).len(), 1);
        assert_eq!(shortfalls(&at("f", 0, 0), &at("e", 5, 3)).len(), 3);
    }

    #[test]
    fn the_record_round_trips_and_replaces_itself_atomically() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
        write(dir.path(), &at("e", 1, 2)).unwrap();
        write(dir.path(), &at("e", 3, 4)).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(at("e", 3, 4)));
        assert!(!dir.path().join(format!("{RECORD_FILE}.tmp")).exists());
        std::fs::write(record_path(dir.path()), "{").unwrap();
        assert!(matches!(
            read(dir.path()),
            Err(RecordError::Malformed { .. })
        ));
    }

    #[test]
    fn a_new_epoch_moves_every_counter_above_the_record() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db"), 1 << 20, 100).unwrap();
        let old = store.epoch().to_string();
        let store = store.begin_new_epoch(&at(&old, 50, 70)).unwrap();
        let now = store.position().unwrap();
        assert_ne!(now.epoch, old);
        assert_eq!((now.event_id, now.outbox_id), (50, 70));
        assert_eq!(store.next_event_id().unwrap(), 51);
        assert_eq!(store.epoch_first_event_id().unwrap(), 51);
        drop(store);
        // The epoch is stored, not only held in memory.
        let store = Store::open(&dir.path().join("db"), 1 << 20, 100).unwrap();
        assert_eq!(store.epoch(), now.epoch);
    }
}
