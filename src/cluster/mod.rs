//! Cluster mode (`app serve --nats URL[,URL...]`): several nodes share one order of changes,
//! a NATS JetStream stream, and each applies it to its own store (API.md "Several nodes").
//!
//! A node turns each change into a [`Record`] carrying every choice that is not
//! deterministic (the clock, new ids), publishes it, and answers its client once the stream
//! has acknowledged the record (stored on a quorum of NATS servers) **and** its own writer
//! has applied it (`follow`): the outcome, a conflict say, is the one every node reaches,
//! since every node applies the same records in the same order with the same code as a
//! single node. Event ids are the writer's counter, consecutive on every node; the log's
//! first record names the epoch. The newest applied log sequence is stored with each
//! record's effects, so a restarted node resumes the log exactly after it.
//!
//! Without NATS a node refuses writes (503 `storage_unavailable`) and keeps serving reads
//! and sockets from its store.

mod copies;
mod follow;
mod record;
mod settings;

pub use record::Record;
pub use settings::{ClusterSettings, NkeySeed};

use crate::store::{Applied, Mutation, StoreError};
use async_nats::jetstream::{self, stream};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::oneshot;
use uuid::Uuid;

/// The stream every node reads and writes.
pub const STREAM: &str = "APP_CHANGES";
/// Its one subject.
pub const SUBJECT: &str = "app.changes";
/// How long a publish waits for the stream's acknowledgement.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a node waits for its own writer to apply what it published. With the publish's
/// own wait it stays well under the 30 s a client commonly waits, so a node that cannot
/// apply answers 503 (outcome unknown) rather than leaving its client hanging.
const APPLY_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a starting node keeps trying to reach the stream (a NATS cluster starting with
/// it may take seconds to elect its JetStream leader).
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a publish with the same `Nats-Msg-Id` is recognised as a duplicate.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// Why cluster mode could not start.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot reach NATS at {urls}: {cause}")]
    Connect { urls: String, cause: String },
    #[error("cannot open the JetStream stream {STREAM}: {0}")]
    Stream(String),
    #[error("the stream {STREAM} names no epoch: {0}")]
    Epoch(String),
    #[error(
        "this node has applied the cluster's log up to record {applied}, but the log now starts \
         at record {first}: the records between were dropped by its retention \
         (--nats-keep-days). Seed this node from a backup of another node: `app backup FILE` \
         against a running node, then `app restore FILE --data NEW_DIR --replica` into a new, \
         empty folder, and start this node on it (docs/cluster.md)"
    )]
    Behind { applied: u64, first: u64 },
}

type Reply = oneshot::Sender<Result<Applied, StoreError>>;

/// The node's link to the log (cheap to clone).
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

struct Inner {
    node: String,
    client: async_nats::Client,
    js: jetstream::Context,
    epoch: String,
    /// The oldest record the log held when this node joined.
    first: u64,
    /// Publishers waiting for their record to be applied here, by record id.
    waiting: Mutex<HashMap<Uuid, Reply>>,
    /// The newest log sequence this node's writer has applied (or refused).
    applied: AtomicU64,
    /// The newest log sequence this node knows the stream holds.
    newest: AtomicU64,
}

/// What `/healthz` and `/metrics` show of the link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterStatus {
    pub node: String,
    pub connected: bool,
    /// Records of the stream this node has not applied yet.
    pub lag: u64,
    pub applied_seq: u64,
}

impl Cluster {
    /// Connects to NATS, creates the stream if no node has yet (replicated on up to three
    /// servers, as many as the NATS cluster has), and reads the log's epoch, writing it
    /// first if the log is new (exactly one node's epoch record wins).
    ///
    /// # Errors
    /// When NATS or the stream cannot be reached within [`START_TIMEOUT`].
    pub async fn connect(settings: &ClusterSettings) -> Result<Self, ClusterError> {
        let urls = settings.shown_urls();
        let client = settings
            .signed_in()
            .name(&settings.node)
            .ping_interval(Duration::from_secs(2))
            .max_reconnects(None)
            .connection_timeout(Duration::from_secs(5))
            .connect(settings.urls.as_slice())
            .await
            .map_err(|e| ClusterError::Connect {
                urls: urls.clone(),
                cause: e.to_string(),
            })?;
        let mut js = jetstream::new(client.clone());
        js.set_timeout(PUBLISH_TIMEOUT);
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        let log = loop {
            match open_log(&js, settings.keep).await {
                Ok(found) => break found,
                Err(error) if tokio::time::Instant::now() < deadline => {
                    tracing::info!(%error, "waiting for the JetStream stream");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(error) => return Err(error),
            }
        };
        let Log {
            epoch,
            newest,
            first,
        } = log;
        tracing::info!(node = %settings.node, %epoch, first, newest, "joined the cluster's log");
        Ok(Self {
            inner: Arc::new(Inner {
                node: settings.node.clone(),
                client,
                js,
                epoch,
                first,
                waiting: Mutex::new(HashMap::new()),
                applied: AtomicU64::new(0),
                newest: AtomicU64::new(newest),
            }),
        })
    }

    /// The log's epoch: every node's store takes it.
    pub fn epoch(&self) -> &str {
        &self.inner.epoch
    }

    /// The oldest record the log held when this node joined: a store that has not applied
    /// the one before it cannot follow the log (`check_reachable`).
    pub fn first(&self) -> u64 {
        self.inner.first
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.inner.node
    }

    /// Publishes `mutation` and answers with its outcome once the stream holds it and this
    /// node has applied it.
    ///
    /// # Errors
    /// `NotWritable` (503 `storage_unavailable`) when NATS does not take the record; the
    /// mutation's own refusal; `Closed` when this node stops meanwhile.
    pub async fn submit(&self, mutation: Mutation) -> Result<Applied, StoreError> {
        if self.inner.client.connection_state() != async_nats::connection::State::Connected {
            return Err(unreachable("not connected to NATS"));
        }
        let record = Record::change(&self.inner.node, mutation);
        let Record::Change { id, .. } = &record else {
            return Err(StoreError::Closed);
        };
        let id = *id;
        let (reply, applied) = oneshot::channel();
        let waiting = Waiting::new(&self.inner, id, reply);
        let message = jetstream::message::PublishMessage::build()
            .payload(record.encode().into())
            .message_id(id.to_string());
        // Each step has the context's own timeout; this bounds their sum, so a publish whose
        // acknowledgement never comes fails rather than hangs.
        let published = tokio::time::timeout(2 * PUBLISH_TIMEOUT, async {
            let ack = self
                .inner
                .js
                .send_publish(SUBJECT, message)
                .await
                .map_err(|e| unreachable(&e.to_string()))?;
            // Sent but not acknowledged: the stream may hold it, so the outcome is unknown.
            ack.await.map_err(|e| unknown(&e.to_string()))
        })
        .await;
        let ack = published.unwrap_or_else(|_| Err(unknown("no acknowledgement in time")))?;
        self.inner.newest.fetch_max(ack.sequence, Ordering::AcqRel);
        let outcome = tokio::time::timeout(APPLY_TIMEOUT, applied).await;
        drop(waiting);
        match outcome {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(StoreError::Closed),
            Err(_) => Err(unknown("this node has not applied the record in time")),
        }
    }

    /// The link as `/healthz` shows it.
    pub fn status(&self) -> ClusterStatus {
        let applied = self.inner.applied.load(Ordering::Acquire);
        let newest = self.inner.newest.load(Ordering::Acquire);
        ClusterStatus {
            node: self.inner.node.clone(),
            connected: self.inner.client.connection_state()
                == async_nats::connection::State::Connected,
            lag: newest.saturating_sub(applied),
            applied_seq: applied,
        }
    }

    /// Takes the publisher's reply for record `id`, if it waits on this node.
    fn take_waiter(&self, id: &Uuid) -> Option<Reply> {
        self.inner
            .waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id)
    }
}

pub use follow::follow;

/// A publisher's entry in the waiting map, removed when it stops waiting (answered, timed
/// out, or its client went away), so the map holds only live waiters.
struct Waiting<'a> {
    inner: &'a Inner,
    id: Uuid,
}

impl<'a> Waiting<'a> {
    fn new(inner: &'a Inner, id: Uuid, reply: Reply) -> Self {
        inner
            .waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, reply);
        Self { inner, id }
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.inner
            .waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.id);
    }
}

/// A refusal for want of the log: 503 `storage_unavailable`, nothing applied here.
fn unreachable(why: &str) -> StoreError {
    StoreError::NotWritable(format!("the cluster's log (NATS) is unreachable: {why}"))
}

/// A record sent whose fate is unknown (the stream may hold it and every node apply it
/// later): 503 `storage_unavailable` with the outcome unknown, as for a failed flush.
fn unknown(why: &str) -> StoreError {
    let cause = std::io::Error::other(format!("the cluster's log did not acknowledge: {why}"));
    StoreError::Flush(Arc::new(sled::Error::Io(cause)))
}

/// What a node learns of the log when it joins.
struct Log {
    epoch: String,
    /// The newest record's sequence (0: none).
    newest: u64,
    /// The oldest record the stream still holds (older ones were dropped by its retention).
    first: u64,
}

/// The stream's description, which names the epoch so that a node can learn it once the
/// epoch record itself has aged out of a log with a retention.
fn description(epoch: &str) -> String {
    format!("app cluster log, epoch {epoch}")
}

/// The epoch a stream's description names.
fn epoch_described(description: Option<&str>) -> Option<String> {
    description?
        .strip_prefix("app cluster log, epoch ")
        .map(str::trim)
        .filter(|epoch| !epoch.is_empty())
        .map(String::from)
}

/// Opens (or creates) the stream, applies `keep` (`--nats-keep-days`), reads its epoch and
/// extent, and raises its copies to as many as the NATS cluster allows ([`copies`]).
async fn open_log(js: &jetstream::Context, keep: Option<Duration>) -> Result<Log, ClusterError> {
    let stream_error = |e: &dyn std::fmt::Display| ClusterError::Stream(e.to_string());
    let mut config = stream::Config {
        name: STREAM.to_string(),
        subjects: vec![SUBJECT.to_string()],
        storage: stream::StorageType::File,
        duplicate_window: DUPLICATE_WINDOW,
        ..Default::default()
    };
    retain(&mut config, keep);
    let mut stream = copies::open_or_create(js, &config)
        .await
        .map_err(ClusterError::Stream)?;
    let info = stream.info().await.map_err(|e| stream_error(&e))?.clone();
    if info.state.last_sequence == 0 {
        // Only the first publish on an empty stream is taken: the other nodes' epoch
        // records are refused, and every node reads the winner's below.
        let epoch = Uuid::new_v4().simple().to_string();
        let message = jetstream::message::PublishMessage::build()
            .payload(Record::Init { epoch }.encode().into())
            .expected_last_sequence(0);
        if let Ok(ack) = js.send_publish(SUBJECT, message).await {
            let _ = ack.await;
        }
    }
    let state = stream
        .info()
        .await
        .map_err(|e| stream_error(&e))?
        .state
        .clone();
    let described = epoch_described(info.config.description.as_deref());
    let epoch = if state.first_sequence <= 1 {
        let first = stream
            .get_raw_message(1)
            .await
            .map_err(|e| ClusterError::Epoch(e.to_string()))?;
        match Record::decode(&first.payload) {
            Ok(Record::Init { epoch }) => epoch,
            Ok(Record::Change { .. }) => return Err(ClusterError::Epoch("a change".into())),
            Err(error) => return Err(ClusterError::Epoch(error.to_string())),
        }
    } else {
        described.clone().ok_or_else(|| {
            ClusterError::Epoch(format!(
                "its first record is gone (the stream starts at record {}) and its \
                 description names no epoch",
                state.first_sequence
            ))
        })?
    };
    // Written once by whichever node comes first (the same words from every node), and kept
    // in step with `--nats-keep-days` when a node starts with it.
    let mut wanted = info.config.clone();
    wanted.description = Some(description(&epoch));
    if keep.is_some() {
        retain(&mut wanted, keep);
    }
    if wanted.description != info.config.description
        || wanted.max_age != info.config.max_age
        || wanted.duplicate_window != info.config.duplicate_window
    {
        js.update_stream(&wanted)
            .await
            .map_err(|e| stream_error(&e))?;
        tracing::info!(max_age = ?wanted.max_age, "updated the log's settings");
    }
    copies::raise(js, &wanted).await;
    Ok(Log {
        epoch,
        newest: state.last_sequence,
        first: state.first_sequence.max(1),
    })
}

/// Sets the stream's retention to `keep` (`None`: forever). Its duplicate window may not be
/// longer.
fn retain(config: &mut stream::Config, keep: Option<Duration>) {
    let keep = keep.unwrap_or(Duration::ZERO);
    config.max_age = keep;
    config.duplicate_window = if keep.is_zero() {
        DUPLICATE_WINDOW
    } else {
        DUPLICATE_WINDOW.min(keep)
    };
}

/// Refuses a store that needs records the log no longer holds: it has applied up to
/// `applied`, and the log's oldest record is `first`.
///
/// # Errors
/// [`ClusterError::Behind`] naming how to seed the node.
pub fn check_reachable(applied: u64, first: u64) -> Result<(), ClusterError> {
    // Record 1 is the epoch record, which changes no store: missing it loses nothing.
    if applied.max(1) + 1 >= first {
        return Ok(());
    }
    Err(ClusterError::Behind { applied, first })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_behind_the_logs_oldest_record_is_refused_with_the_way_out() {
        assert!(
            check_reachable(0, 1).is_ok(),
            "a fresh node replays a whole log"
        );
        assert!(
            check_reachable(41, 42).is_ok(),
            "it needs 42 on, which the log holds"
        );
        assert!(check_reachable(100, 42).is_ok());
        let error = check_reachable(40, 42).unwrap_err().to_string();
        assert!(error.contains("up to record 40"), "{error}");
        assert!(
            error.contains("app restore FILE --data NEW_DIR --replica"),
            "{error}"
        );
        assert!(
            check_reachable(0, 2).is_ok(),
            "only the epoch record is gone"
        );
        assert!(
            check_reachable(0, 3).is_err(),
            "a fresh node cannot replay a trimmed log"
        );
    }

    #[test]
    fn the_streams_description_names_its_epoch() {
        let epoch = "0f3a9c";
        assert_eq!(
            epoch_described(Some(&description(epoch))).as_deref(),
            Some(epoch)
        );
        assert_eq!(epoch_described(None), None);
        assert_eq!(epoch_described(Some("someone else's stream")), None);
        assert_eq!(epoch_described(Some("app cluster log, epoch ")), None);
    }

    #[test]
    fn a_retention_bounds_the_duplicate_window() {
        let mut config = stream::Config::default();
        retain(&mut config, None);
        assert_eq!(
            (config.max_age, config.duplicate_window),
            (Duration::ZERO, DUPLICATE_WINDOW)
        );
        retain(&mut config, Some(Duration::from_secs(30)));
        assert_eq!(config.max_age, Duration::from_secs(30));
        assert_eq!(config.duplicate_window, Duration::from_secs(30));
        retain(&mut config, Some(Duration::from_secs(86_400)));
        assert_eq!(config.duplicate_window, DUPLICATE_WINDOW);
    }
}
