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

mod follow;
mod record;

pub use record::Record;

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

/// `--nats` and `--node-name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSettings {
    pub urls: Vec<String>,
    pub node: String,
}

impl ClusterSettings {
    /// Cluster mode when `--nats` names at least one server; the node's name defaults to the
    /// host's.
    pub fn from_flags(nats: Option<&str>, node: Option<&str>) -> Option<Self> {
        let urls: Vec<String> = nats?
            .split(',')
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .map(String::from)
            .collect();
        if urls.is_empty() {
            return None;
        }
        let node = node
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .map(String::from)
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| "node".to_string());
        Some(Self { urls, node })
    }
}

/// Why cluster mode could not start.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot reach NATS at {urls}: {cause}")]
    Connect { urls: String, cause: String },
    #[error("cannot open the JetStream stream {STREAM}: {0}")]
    Stream(String),
    #[error("the stream {STREAM} does not start with an epoch record: {0}")]
    Epoch(String),
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
        let urls = settings.urls.join(",");
        let client = async_nats::ConnectOptions::new()
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
        let (epoch, newest) = loop {
            match open_log(&js).await {
                Ok(found) => break found,
                Err(error) if tokio::time::Instant::now() < deadline => {
                    tracing::info!(%error, "waiting for the JetStream stream");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(error) => return Err(error),
            }
        };
        tracing::info!(node = %settings.node, %epoch, newest, "joined the cluster's log");
        Ok(Self {
            inner: Arc::new(Inner {
                node: settings.node.clone(),
                client,
                js,
                epoch,
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

/// Opens (or creates) the stream and returns its epoch and newest sequence.
async fn open_log(js: &jetstream::Context) -> Result<(String, u64), ClusterError> {
    let stream_error = |e: &dyn std::fmt::Display| ClusterError::Stream(e.to_string());
    let mut last_error = None;
    let mut opened = None;
    // As many copies as the NATS cluster allows, up to three: a single server refuses more
    // than one.
    for replicas in [3, 2, 1] {
        let config = stream::Config {
            name: STREAM.to_string(),
            subjects: vec![SUBJECT.to_string()],
            storage: stream::StorageType::File,
            num_replicas: replicas,
            duplicate_window: DUPLICATE_WINDOW,
            ..Default::default()
        };
        match js.get_or_create_stream(config).await {
            Ok(stream) => {
                opened = Some(stream);
                break;
            }
            Err(error) => last_error = Some(error.to_string()),
        }
    }
    let Some(mut stream) = opened else {
        return Err(ClusterError::Stream(last_error.unwrap_or_default()));
    };
    let info = stream.info().await.map_err(|e| stream_error(&e))?;
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
    let first = stream
        .get_raw_message(1)
        .await
        .map_err(|e| ClusterError::Epoch(e.to_string()))?;
    let epoch = match Record::decode(&first.payload) {
        Ok(Record::Init { epoch }) => epoch,
        Ok(Record::Change { .. }) => return Err(ClusterError::Epoch("a change".into())),
        Err(error) => return Err(ClusterError::Epoch(error.to_string())),
    };
    let newest = stream
        .info()
        .await
        .map_err(|e| stream_error(&e))?
        .state
        .last_sequence;
    Ok((epoch, newest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flags_name_the_servers_and_the_node() {
        assert_eq!(ClusterSettings::from_flags(None, Some("a")), None);
        assert_eq!(ClusterSettings::from_flags(Some(" , "), None), None);
        assert_eq!(
            ClusterSettings::from_flags(Some("nats://h1:4222, nats://h2:4222"), Some("n1")),
            Some(ClusterSettings {
                urls: vec!["nats://h1:4222".into(), "nats://h2:4222".into()],
                node: "n1".into(),
            })
        );
    }
}
