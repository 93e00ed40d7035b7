//! The node's reading of the log: one ordered consumer from the sequence after the newest
//! this store applied, each record handed to the writer in log order (the writer applies
//! it like any mutation, and stores its sequence in the same transaction), and the outcome
//! handed to the publisher when it waits on this node.
//!
//! Two tasks, so that reading the next records never waits on an apply: the reader queues
//! records into the writer (whose queue keeps their order), the acknowledger awaits their
//! outcomes in the same order and moves the applied sequence.
//!
//! A record missing between two the consumer delivers was dropped by the log's retention
//! before this node applied it: the node can no longer be a replica, so it degrades (writes
//! refused, `/healthz` says why) and stops following; its restart then refuses to start until
//! it is seeded from a backup (`crate::cluster::check_reachable`).
//!
//! The ordered consumer lives on one NATS server. When that server dies, the library notices
//! only after two missed 15 s heartbeats, longer than a client waits for its answer; so the
//! reader watches for itself: a consumer that delivers nothing for [`STALLED_AFTER`] while
//! the stream holds a record it has not delivered is dropped, and a new one opened from the
//! next sequence to apply. Opening one needs JetStream's meta leader, which may itself be
//! electing (it was on the dead server) while the stream already answers; so before each new
//! consumer, and every [`DIRECT_WHILE_OPENING`] while it opens, the reader catches up record by
//! record from the stream's leader ([`catch_up_directly`]), and a node's writes never wait on
//! that election.

use super::{Cluster, Record, Reply, STREAM};
use crate::health::StoreHealth;
use crate::store::{Applied, Store, StoreError};
use crate::writer::Writer;
use async_nats::jetstream::consumer::{pull, DeliverPolicy};
use futures_util::StreamExt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Records read ahead of their apply.
const READ_AHEAD: usize = 4096;
/// How long the reader waits for a record the stream is known to hold before it takes its
/// consumer for lost (its server died) and opens another.
const STALLED_AFTER: Duration = Duration::from_secs(3);
/// How often an idle reader looks up the stream's newest sequence: records published by other
/// nodes show a stalled consumer even when this node publishes nothing, and keep `/healthz`'s
/// lag true.
const PROBE_EVERY: Duration = Duration::from_secs(2);
/// How long such a look-up may take (the stream may be electing a leader).
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the reader wakes while no record comes, to run those checks.
const IDLE_TICK: Duration = Duration::from_millis(500);
/// While a consumer is being opened, how often the records it is to deliver are read one by
/// one instead ([`catch_up_directly`]): opening one needs JetStream's meta leader, which takes
/// seconds to come back after a server's death (each try times out after 5 s), while the
/// stream still answers, and this node's own writes wait for their records to be applied.
const DIRECT_WHILE_OPENING: Duration = Duration::from_millis(200);

/// A record handed to the writer, in log order.
struct Handed {
    seq: u64,
    /// The writer's answer; `None` for a record that applies nothing (the epoch record, or
    /// one this build cannot read).
    outcome: Option<oneshot::Receiver<Result<Applied, StoreError>>>,
    waiter: Option<Reply>,
}

/// Follows the log into `writer` until `shutdown`, or until the log has dropped records this
/// node has not applied (then `health` is degraded).
pub async fn follow(
    cluster: Cluster,
    store: Store,
    writer: Writer,
    health: Arc<StoreHealth>,
    shutdown: CancellationToken,
) {
    let start = match store.cluster_applied() {
        Ok(seq) => seq,
        Err(error) => {
            tracing::error!(%error, "cannot read the applied log sequence; not following");
            return;
        }
    };
    cluster.inner.applied.fetch_max(start, Ordering::AcqRel);
    let (handed, acks) = mpsc::channel(READ_AHEAD);
    let acknowledger = tokio::spawn(acknowledge(cluster.clone(), acks));
    let mut next = start + 1;
    while !shutdown.is_cancelled() {
        let ended = match read(&cluster, &writer, &handed, &mut next, &shutdown).await {
            Ok(ended) => Some(ended),
            Err(error) => {
                tracing::warn!(%error, next, "reading the cluster's log failed; catching up record by record, then retrying");
                catch_up_directly(&cluster, &writer, &handed, &mut next, &shutdown)
                    .await
                    .unwrap_or_else(|error| {
                        tracing::warn!(%error, next, "reading the cluster's log record by record failed too");
                        None
                    })
            }
        };
        match ended {
            Some(Read::Stopped) => break,
            Some(Read::Gap { missing }) => {
                let why = format!(
                    "the cluster's log dropped records {next} to {missing} (its retention) \
                     before this node applied them; seed this node from another node's backup \
                     (app restore --replica, docs/cluster.md)"
                );
                tracing::error!("{why}");
                health.failed("following the cluster's log", &why);
                break;
            }
            None => {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
        }
    }
    drop(handed);
    let _ = acknowledger.await;
}

/// How a reading of the log ended, short of a failure of its consumer.
enum Read {
    /// Shutting down.
    Stopped,
    /// Records from `next` to `missing` are gone from the log.
    Gap { missing: u64 },
}

/// Reads from `next` on until `shutdown`, a gap, or a failure of the consumer (`Err`, read
/// again from where it stopped).
async fn read(
    cluster: &Cluster,
    writer: &Writer,
    handed: &mpsc::Sender<Handed>,
    next: &mut u64,
    shutdown: &CancellationToken,
) -> Result<Read, String> {
    let js = &cluster.inner.js;
    let stream = js.get_stream(STREAM).await.map_err(|e| e.to_string())?;
    let opening = stream.create_consumer(pull::OrderedConfig {
        deliver_policy: DeliverPolicy::ByStartSequence {
            start_sequence: *next,
        },
        ..Default::default()
    });
    tokio::pin!(opening);
    let consumer = loop {
        tokio::select! {
            () = shutdown.cancelled() => return Ok(Read::Stopped),
            opened = &mut opening => break opened.map_err(|e| e.to_string())?,
            () = tokio::time::sleep(DIRECT_WHILE_OPENING) => {
                // The consumer starts where `next` was; it skips what this applies meanwhile.
                if let Some(read) = catch_up_directly(cluster, writer, handed, next, shutdown).await? {
                    return Ok(read);
                }
            }
        }
    };
    let mut messages = consumer.messages().await.map_err(|e| e.to_string())?;
    let mut idle_since = Instant::now();
    let mut probed = Instant::now();
    loop {
        let polled = tokio::select! {
            () = shutdown.cancelled() => return Ok(Read::Stopped),
            polled = tokio::time::timeout(IDLE_TICK, messages.next()) => polled,
        };
        let Ok(message) = polled else {
            if probed.elapsed() >= PROBE_EVERY {
                if let Ok(Ok(info)) = tokio::time::timeout(PROBE_TIMEOUT, stream.get_info()).await {
                    let newest = &cluster.inner.newest;
                    newest.fetch_max(info.state.last_sequence, Ordering::AcqRel);
                }
                probed = Instant::now();
            }
            let newest = cluster.inner.newest.load(Ordering::Acquire);
            if newest >= *next && idle_since.elapsed() >= STALLED_AFTER {
                return Err(format!(
                    "the consumer delivered nothing for {STALLED_AFTER:?} while the stream \
                     holds up to sequence {newest}"
                ));
            }
            continue;
        };
        let message = message
            .ok_or("the consumer ended")?
            .map_err(|e| e.to_string())?;
        let (seq, pending) = {
            let info = message.info().map_err(|e| e.to_string())?;
            (info.stream_sequence, info.pending)
        };
        if seq < *next {
            continue;
        }
        // Nothing but the retention removes records; record 1 is the epoch record, which
        // applies nothing.
        if seq > *next && !(*next == 1 && seq == 2) {
            return Ok(Read::Gap { missing: seq - 1 });
        }
        cluster
            .inner
            .newest
            .fetch_max(seq + pending, Ordering::AcqRel);
        if !hand(cluster, writer, handed, seq, &message.payload).await {
            return Ok(Read::Stopped);
        }
        *next = seq + 1;
        idle_since = Instant::now();
    }
}

/// Applies what the stream holds from `next` on, reading each record from the stream's
/// leader by its sequence: no consumer, so no meta leader needed. `None` once caught up
/// with the stream as it was when this began.
async fn catch_up_directly(
    cluster: &Cluster,
    writer: &Writer,
    handed: &mpsc::Sender<Handed>,
    next: &mut u64,
    shutdown: &CancellationToken,
) -> Result<Option<Read>, String> {
    let js = &cluster.inner.js;
    let stream = tokio::time::timeout(PROBE_TIMEOUT, js.get_stream(STREAM))
        .await
        .map_err(|_| "the stream's info timed out".to_string())?
        .map_err(|e| e.to_string())?;
    let state = &stream.cached_info().state;
    let (first, newest) = (state.first_sequence, state.last_sequence);
    cluster.inner.newest.fetch_max(newest, Ordering::AcqRel);
    if *next < first {
        // As in `read`: record 1, the epoch record, may be gone without anything lost.
        if !(*next == 1 && first == 2) {
            return Ok(Some(Read::Gap { missing: first - 1 }));
        }
        *next = first;
    }
    let caught_up_from = *next;
    while *next <= newest {
        if shutdown.is_cancelled() {
            return Ok(Some(Read::Stopped));
        }
        let message = tokio::time::timeout(PROBE_TIMEOUT, stream.get_raw_message(*next))
            .await
            .map_err(|_| format!("reading record {next} timed out"))?
            .map_err(|e| format!("reading record {next}: {e}"))?;
        if !hand(cluster, writer, handed, *next, &message.payload).await {
            return Ok(Some(Read::Stopped));
        }
        *next += 1;
    }
    if *next > caught_up_from {
        tracing::info!(
            from = caught_up_from,
            to = *next - 1,
            "caught up with the cluster's log record by record"
        );
    }
    Ok(None)
}

/// Hands the record at `seq` to the writer, and its outcome to the acknowledger, in log
/// order. Returns false when the node is stopping.
async fn hand(
    cluster: &Cluster,
    writer: &Writer,
    handed: &mpsc::Sender<Handed>,
    seq: u64,
    payload: &[u8],
) -> bool {
    let record = match Record::decode(payload) {
        Ok(record) => record.into_mutation(seq),
        Err(error) => {
            // Every node runs the same build and skips it alike.
            tracing::error!(%error, seq, "a record of the cluster's log cannot be read; skipped");
            None
        }
    };
    let entry = match record {
        Some((id, mutation)) => {
            let (reply, outcome) = oneshot::channel();
            if writer.enqueue(mutation, reply).await.is_err() {
                return false; // the writer has stopped: shutting down
            }
            Handed {
                seq,
                outcome: Some(outcome),
                waiter: cluster.take_waiter(&id),
            }
        }
        None => Handed {
            seq,
            outcome: None,
            waiter: None,
        },
    };
    handed.send(entry).await.is_ok()
}

/// Awaits each handed record's outcome in log order, moves the applied sequence, and
/// answers the publisher waiting on this node.
async fn acknowledge(cluster: Cluster, mut handed: mpsc::Receiver<Handed>) {
    while let Some(Handed {
        seq,
        outcome,
        waiter,
    }) = handed.recv().await
    {
        let result = match outcome {
            Some(outcome) => outcome.await.unwrap_or(Err(StoreError::Closed)),
            None => Err(StoreError::NotFound("record")),
        };
        if let Err(error) = &result {
            if matches!(error, StoreError::NotWritable(_) | StoreError::Flush(_))
                || error.is_storage_failure()
            {
                tracing::error!(%error, seq, "this node could not apply a record of the log");
            }
        }
        cluster.inner.applied.fetch_max(seq, Ordering::AcqRel);
        if let Some(waiter) = waiter {
            let _ = waiter.send(result);
        }
    }
}

impl Cluster {
    /// Returns once this node has applied everything the stream held when it joined: a node
    /// serves only after catching up, so its first answers are the cluster's.
    pub async fn caught_up(&self, shutdown: &CancellationToken) {
        let target = self.inner.newest.load(Ordering::Acquire);
        let mut said = tokio::time::Instant::now();
        while self.inner.applied.load(Ordering::Acquire) < target && !shutdown.is_cancelled() {
            if said.elapsed() > Duration::from_secs(5) {
                let applied = self.inner.applied.load(Ordering::Acquire);
                tracing::info!(applied, target, "catching up with the cluster's log");
                said = tokio::time::Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::domain::{EventKind, NewReservation, Timestamp};
    use crate::health::StoreHealth;
    use crate::metrics::Metrics;
    use crate::store::fixtures::{create, stamp, store};
    use crate::store::Mutation;
    use crate::writer::Writer;
    use std::sync::Arc;
    use tokio::sync::oneshot;
    use uuid::Uuid;

    fn replicated(seq: u64, inner: Mutation) -> Mutation {
        Mutation::Replicated {
            seq,
            now: Timestamp::now(),
            new_id: Uuid::from_u128(u128::from(seq)),
            inner: Box::new(inner),
        }
    }

    /// Record `seq`: a booking at `salon`.
    fn booking(seq: u64, salon: Uuid) -> Mutation {
        replicated(
            seq,
            Mutation::CreateReservation {
                business_id: salon,
                new: NewReservation {
                    customer_name: format!("C{seq}"),
                    customer_email: "c@example.com".into(),
                    starts_at: Timestamp::now().plus_micros(86_400_000_000),
                    service: "cut".into(),
                },
            },
        )
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_replica_stopped_mid_delete_finishes_it_before_the_next_record() {
        // A node killed between two steps of a delete read from the log resumes the log after
        // the delete's record: the records after it must still take their ids after every
        // cancellation, as on the nodes that did not stop (DESIGN invariant 2 across nodes).
        let (_dir, store) = store();
        let salon = Uuid::from_u128(1);
        let bookings = 3 * crate::writer::CLOSE_CHUNK as u64;
        let mut log = vec![replicated(1, create("salon"))];
        log.extend((2..2 + bookings).map(|seq| booking(seq, salon)));
        log.push(replicated(
            2 + bookings,
            Mutation::DeleteBusiness { id: salon },
        ));
        for outcome in store.apply_batch(&log, &stamp()) {
            outcome.unwrap();
        }
        // The delete is filed and none of its steps ran: what a kill -9 right after it leaves.
        assert!(store.close_pending().unwrap());
        let health = StoreHealth::new(Arc::new(Metrics::default()));
        let (writer, _, thread) = Writer::start(store.clone(), stamp(), health).unwrap();
        let (reply, answer) = oneshot::channel();
        let next = replicated(3 + bookings, create("after"));
        writer.enqueue(next, reply).await.unwrap();
        answer.await.unwrap().unwrap();
        // Every booking's cancellation, then the delete, then the next record.
        let newest = store.next_event_id().unwrap() - 1;
        assert_eq!(newest, 1 + bookings + bookings + 2);
        let kinds: Vec<EventKind> = (newest - 2..=newest)
            .map(|id| store.event(id).unwrap().unwrap().kind)
            .collect();
        assert_eq!(
            kinds,
            [
                EventKind::ReservationCancelled,
                EventKind::BusinessDeleted,
                EventKind::BusinessCreated
            ]
        );
        writer.stop().await;
        tokio::task::spawn_blocking(move || thread.join().unwrap())
            .await
            .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_replicated_delete_finishes_before_the_next_record_however_records_are_batched() {
        // Every node must give the cancellations of a delete the same ids (DESIGN invariant
        // 2 across nodes): queued at once, the create after the delete still comes last.
        let (_dir, store) = store();
        let health = StoreHealth::new(Arc::new(Metrics::default()));
        let (writer, _, thread) = Writer::start(store.clone(), stamp(), health).unwrap();
        let salon = Uuid::from_u128(1);
        let booking = |seq: u64| booking(seq, salon);
        let log = vec![
            replicated(1, create("salon")),
            booking(2),
            booking(3),
            replicated(4, Mutation::DeleteBusiness { id: salon }),
            replicated(5, create("after")),
        ];
        let mut answers = Vec::new();
        for mutation in log {
            let (reply, answer) = oneshot::channel();
            writer.enqueue(mutation, reply).await.unwrap();
            answers.push(answer);
        }
        for answer in answers {
            answer.await.unwrap().unwrap();
        }
        let newest = store.next_event_id().unwrap() - 1;
        let kinds: Vec<EventKind> = (1..=newest)
            .map(|id| store.event(id).unwrap().unwrap().kind)
            .collect();
        assert_eq!(kinds.last(), Some(&EventKind::BusinessCreated), "{kinds:?}");
        let deleted = kinds.iter().position(|k| *k == EventKind::BusinessDeleted);
        assert_eq!(deleted, Some(kinds.len() - 2), "{kinds:?}");
        assert_eq!(store.cluster_applied().unwrap(), 5);
        writer.stop().await;
        tokio::task::spawn_blocking(move || thread.join().unwrap())
            .await
            .unwrap();
    }
}
