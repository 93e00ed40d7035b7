//! The writer thread itself: takes batches off the queue, commits each as one transaction
//! and one flush ([`commit_batch`]), runs exclusive jobs between batches, and does two kinds
//! of background work in small chunks when nothing else waits (or one chunk between two
//! batches, so a steady load does not starve it): cancelling the future bookings of a
//! business being deleted (then deleting it), as fast as the bus's subscribers take the
//! events (`pace`), and purging the reservations of deleted businesses.
//!
//! A storage failure (a refused flush or transaction) puts the server in the degraded state
//! (`crate::health`); from then on every batch is refused before it is applied, so nothing
//! can be half-done in memory while the disk is full, and no purge runs.

use super::pace::{Idle, Pace, SharedProbe};
use super::{Job, Request};
use crate::health::StoreHealth;
use crate::store::{event_id, Applied, MailStamp, Mutation, Store, StoreError};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{mpsc, oneshot, watch};

/// Most reservations of a deleted business removed in one transaction: small enough that a
/// request queued behind a chunk waits milliseconds (API.md: no request waits more than 1 s
/// on a big delete).
pub const PURGE_CHUNK: usize = 1_000;

/// Most bookings a business being deleted has cancelled in one transaction. Each takes an
/// event and a mail row besides the reservation, so fewer than a purge chunk.
pub const CLOSE_CHUNK: usize = 250;

/// Where the thread's requests come from and where it reports.
pub(super) struct Context {
    pub store: Store,
    pub stamp: MailStamp,
    pub queue: mpsc::Receiver<Request>,
    pub durable: Arc<AtomicU64>,
    pub watermark: watch::Sender<u64>,
    pub health: Arc<StoreHealth>,
    pub probe: SharedProbe,
}

pub(super) fn run(context: Context) {
    let Context {
        store,
        stamp,
        mut queue,
        durable,
        watermark,
        health,
        probe,
    } = context;
    // Reused batch after batch: a fresh pair of large vectors per batch made glibc consolidate
    // its free lists on every allocation (~5 % of this thread in a profile of creates).
    let mut mutations = Vec::with_capacity(super::MAX_BATCH);
    let mut replies = Vec::with_capacity(super::MAX_BATCH);
    let mut stopping = false;
    let mut exclusive: Option<Job> = None;
    // A purge or a delete left over by the last run (stopped or crashed mid-way) resumes now.
    let mut purging = store.purge_pending().unwrap_or(true);
    let mut closing = store.close_pending().unwrap_or(true);
    let mut pace = Pace::new(probe);
    let closer = Closer {
        store: &store,
        stamp: &stamp,
        durable: &durable,
        watermark: &watermark,
        health: &health,
    };
    // A replica stopped between two steps of a delete read from the cluster's log finishes it
    // before it takes the next record, as the nodes that did not stop did: otherwise the
    // records after the delete would take ids among its cancellations on this node only.
    if closing && store.cluster_applied().unwrap_or(0) > 0 {
        while closing && !health.is_degraded() {
            (closing, purging) = closer.step(purging);
        }
    }
    while !stopping {
        let first = if (purging || closing) && !health.is_degraded() {
            match queue.try_recv() {
                Ok(request) => request,
                Err(TryRecvError::Empty) => {
                    if closing && pace.ready() {
                        (closing, purging) = closer.step(purging);
                        continue;
                    }
                    if purging {
                        purging = purge_step(&store, &health);
                        continue;
                    }
                    // A delete waits for the sockets to take its last chunk.
                    match pace.idle(&mut queue) {
                        Idle::Request(request) => request,
                        Idle::Tick => continue,
                        Idle::Closed => break,
                    }
                }
                Err(TryRecvError::Disconnected) => break,
            }
        } else {
            match queue.blocking_recv() {
                Some(request) => request,
                None => break,
            }
        };
        let mut next = Some(first);
        let mut cluster_delete = false;
        while let Some(request) = next.take() {
            match request {
                Request::Apply { mutation, reply } => {
                    // In a cluster a delete's cancellations must take the same ids on every
                    // node: its batch ends with it, and the delete runs to its end before
                    // the next record (below).
                    let ends_batch = replicated_delete(&mutation);
                    cluster_delete |= ends_batch;
                    mutations.push(mutation);
                    replies.push(reply);
                    if ends_batch {
                        break;
                    }
                }
                Request::Stop => {
                    stopping = true;
                    break;
                }
                Request::Exclusive(job) => {
                    exclusive = Some(job);
                    break;
                }
            }
            if mutations.len() < super::MAX_BATCH {
                next = queue.try_recv().ok();
            }
        }
        if !mutations.is_empty() {
            if let Some(reason) = health.degraded() {
                refuse(&mut mutations, &mut replies, &reason);
            } else {
                closing |= mutations
                    .iter()
                    .any(|m| matches!(m.inner(), Mutation::DeleteBusiness { .. }));
                commit_batch(
                    &store,
                    &stamp,
                    &mut mutations,
                    &mut replies,
                    &durable,
                    &watermark,
                    &health,
                    || store.flush(),
                );
            }
        }
        if let Some(job) = exclusive.take() {
            job(&store);
        }
        if stopping || health.is_degraded() {
            continue;
        }
        // A delete that came through the cluster's log runs to its end before the next record,
        // so its cancellations take the same ids on every node; it is not paced.
        if closing && (cluster_delete || pace.ready()) {
            (closing, purging) = closer.step(purging);
            while cluster_delete && closing && !health.is_degraded() {
                (closing, purging) = closer.step(purging);
            }
        } else if purging {
            purging = purge_step(&store, &health);
        }
    }
    // Deletes under way go on at the next start (their callers were answered).
    // Refuse whatever arrives from now on: dropping the receiver fails those senders.
    queue.close();
    while let Ok(request) = queue.try_recv() {
        if let Request::Apply { reply, .. } = request {
            let _ = reply.send(Err(StoreError::Closed));
        }
    }
    if let Err(error) = store.flush() {
        tracing::error!(%error, "final flush failed");
    }
    tracing::debug!("writer stopped");
}

/// Whether `mutation` is a delete read from the cluster's log.
fn replicated_delete(mutation: &Mutation) -> bool {
    matches!(mutation, Mutation::Replicated { .. })
        && matches!(mutation.inner(), Mutation::DeleteBusiness { .. })
}

/// Removes one chunk of a deleted business's reservations; returns whether more remain.
fn purge_step(store: &Store, health: &StoreHealth) -> bool {
    match store.purge_deleted(PURGE_CHUNK) {
        Ok(more) => more,
        Err(error) => {
            if error.is_storage_failure() {
                health.failed("purge of a deleted business", &error);
            } else {
                tracing::error!(%error, "cannot purge a deleted business; retried at next start");
            }
            false
        }
    }
}

/// What a step of a delete needs of the thread's state.
struct Closer<'a> {
    store: &'a Store,
    stamp: &'a MailStamp,
    durable: &'a AtomicU64,
    watermark: &'a watch::Sender<u64>,
    health: &'a StoreHealth,
}

impl Closer<'_> {
    /// One step of the oldest delete under way (`Store::close_step`), made durable and
    /// published like a batch. Returns whether a delete remains, and whether a purge is
    /// pending (a finished delete starts one).
    fn step(&self, purging: bool) -> (bool, bool) {
        let step = match self.store.close_step(CLOSE_CHUNK, self.stamp) {
            Ok(Some(step)) => step,
            Ok(None) => return (false, purging),
            Err(error) => {
                self.give_up(&error);
                return (false, purging);
            }
        };
        if let Err(error) = self.store.flush() {
            self.give_up(&error);
            return (false, purging);
        }
        if let Some(id) = step.newest_event {
            self.durable.store(id, Ordering::Release);
            self.watermark.send_replace(id);
        }
        if step.deleted.is_some() {
            tracing::info!(business_id = %step.business_id, "a deleted business is closed");
        }
        let more = self.store.close_pending().unwrap_or(false);
        (more, true)
    }

    /// A step failed: the server degrades on a storage failure; either way the delete
    /// resumes at the next start, after the last step that was made durable.
    fn give_up(&self, error: &StoreError) {
        if error.is_storage_failure() {
            self.health.failed("a step of a business delete", error);
        } else {
            tracing::error!(%error, "cannot go on deleting a business; retried at next start");
        }
    }
}

/// Answers a batch the degraded store will not apply: nothing of it was written.
fn refuse(mutations: &mut Vec<Mutation>, replies: &mut Vec<Reply>, reason: &str) {
    mutations.clear();
    for reply in replies.drain(..) {
        let _ = reply.send(Err(StoreError::NotWritable(reason.to_string())));
    }
}

type Reply = oneshot::Sender<Result<Applied, StoreError>>;

/// Applies a batch (`mutations[i]` answered on `replies[i]`), flushes once with `flush`,
/// raises the watermark, then answers every caller. Leaves both vectors empty.
///
/// `flush` is `Store::flush` outside tests, which stand in a failing disk with it.
#[allow(clippy::too_many_arguments)] // the thread's state, passed apart so tests build it
fn commit_batch(
    store: &Store,
    stamp: &MailStamp,
    mutations: &mut Vec<Mutation>,
    replies: &mut Vec<Reply>,
    durable: &AtomicU64,
    watermark: &watch::Sender<u64>,
    health: &StoreHealth,
    flush: impl FnOnce() -> Result<(), StoreError>,
) {
    let outcomes = store.apply_batch(mutations, stamp);
    if let Some(error) = outcomes
        .iter()
        .find_map(|outcome| outcome.as_ref().err().filter(|e| e.is_storage_failure()))
    {
        health.failed("a batch transaction", error);
    }
    mutations.clear();
    // Event ids rise in batch order, so the last one is the newest.
    let newest_event = outcomes.iter().filter_map(event_id).next_back();
    // Group commit: one fsync makes the whole batch durable before anyone hears "done"
    // (DESIGN invariant 1).
    let not_durable = match flush() {
        Ok(()) => {
            // Readers cap at this id, so a caller reads its own change once answered.
            if let Some(id) = newest_event {
                durable.store(id, Ordering::Release);
            }
            None
        }
        Err(error) => {
            health.failed("flush", &error);
            Some(match error {
                StoreError::Flush(cause) => cause,
                other => Arc::new(sled::Error::Io(std::io::Error::other(other.to_string()))),
            })
        }
    };
    for (reply, outcome) in replies.drain(..).zip(outcomes) {
        let result = match (outcome, &not_durable) {
            (Ok((applied, _)), None) => Ok(applied),
            // Applied in memory but maybe not on disk: the caller must not hear "done".
            (Ok(_), Some(cause)) => Err(StoreError::Flush(cause.clone())),
            (Err(error), _) => Err(error),
        };
        // The caller may have gone away (client disconnected); the change stands anyway.
        let _ = reply.send(result);
    }
    // Published after the answers, so the callers' tasks are queued on the runtime before
    // the bus's publisher thread queues every socket's: a 201 then waits behind no fan-out.
    if let (Some(id), None) = (newest_event, &not_durable) {
        watermark.send_replace(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use crate::store::fixtures::{create, stamp, store};
    use crate::writer::Writer;

    fn health() -> Arc<StoreHealth> {
        StoreHealth::new(Arc::new(Metrics::default()))
    }

    type Answer = oneshot::Receiver<Result<Applied, StoreError>>;

    /// A batch as `run` hands it to `commit_batch`, with the callers' ends of the replies.
    fn batch(subdomains: &[&str]) -> (Vec<Mutation>, Vec<Reply>, Vec<Answer>) {
        let mut mutations = Vec::new();
        let mut replies = Vec::new();
        let mut answers = Vec::new();
        for subdomain in subdomains {
            let (reply, answer) = oneshot::channel();
            mutations.push(create(subdomain));
            replies.push(reply);
            answers.push(answer);
        }
        (mutations, replies, answers)
    }

    /// The subdomain of a created business, or the error's text.
    fn answered(answer: Answer) -> Result<String, String> {
        match answer.blocking_recv().expect("every caller is answered") {
            Ok(Applied::Business(business)) => Ok(business.subdomain),
            Ok(other) => panic!("unexpected outcome {other:?}"),
            Err(error) => Err(error.to_string()),
        }
    }

    fn ok(subdomain: &str) -> Result<String, String> {
        Ok(subdomain.to_string())
    }

    #[test]
    fn a_batch_is_answered_in_order_and_a_refusal_fails_alone_without_a_gap_in_ids() {
        // DESIGN invariant 2: ids consecutive in commit order, a refusal takes none.
        let (_dir, store) = store();
        let (durable, (watermark, seen)) = (AtomicU64::new(0), watch::channel(0));
        let (mut mutations, mut replies, answers) = batch(&["a", "b", "a", "c"]);
        commit_batch(
            &store,
            &stamp(),
            &mut mutations,
            &mut replies,
            &durable,
            &watermark,
            &health(),
            || store.flush(),
        );
        let answers: Vec<_> = answers.into_iter().map(answered).collect();
        let taken = "this subdomain is already taken".to_string();
        let expected = [ok("a"), ok("b"), Err(taken), ok("c")];
        assert_eq!(answers, expected);
        assert!(mutations.is_empty() && replies.is_empty());
        assert_eq!(store.next_event_id().unwrap(), 4);
        assert_eq!((durable.load(Ordering::Acquire), *seen.borrow()), (3, 3));

        // A batch of refusals only takes no id and leaves the watermark where it was.
        let (mut mutations, mut replies, answers) = batch(&["a", "b"]);
        commit_batch(
            &store,
            &stamp(),
            &mut mutations,
            &mut replies,
            &durable,
            &watermark,
            &health(),
            || store.flush(),
        );
        assert!(answers.into_iter().map(answered).all(|a| a.is_err()));
        assert_eq!(store.next_event_id().unwrap(), 4);
        assert_eq!(durable.load(Ordering::Acquire), 3);
    }

    #[test]
    fn the_durable_watermark_moves_only_after_the_flush() {
        // DESIGN invariant 1: the bus publishes up to the watermark, so it must not run ahead
        // of the disk.
        let (_dir, store) = store();
        let failures = health();
        let (durable, (watermark, seen)) = (AtomicU64::new(0), watch::channel(0));
        let (mut mutations, mut replies, answers) = batch(&["a", "b"]);
        let mut flushed = false;
        commit_batch(
            &store,
            &stamp(),
            &mut mutations,
            &mut replies,
            &durable,
            &watermark,
            &failures,
            || {
                // Applied, not yet durable: nothing may announce it.
                assert_eq!(store.next_event_id().unwrap(), 3);
                assert_eq!((durable.load(Ordering::Acquire), *seen.borrow()), (0, 0));
                flushed = true;
                store.flush()
            },
        );
        assert!(flushed);
        assert_eq!((durable.load(Ordering::Acquire), *seen.borrow()), (2, 2));
        assert!(answers.into_iter().map(answered).all(|a| a.is_ok()));
    }

    #[test]
    fn a_failed_flush_fails_the_applied_mutations_as_not_durable_and_holds_the_watermark() {
        // DESIGN invariant 1: no caller hears "done" for a change that may not be on disk.
        let (_dir, store) = store();
        let failures = health();
        store.apply(&create("a"), &stamp()).unwrap();
        let (durable, (watermark, seen)) = (AtomicU64::new(1), watch::channel(1));
        let (mut mutations, mut replies, answers) = batch(&["b", "a"]);
        commit_batch(
            &store,
            &stamp(),
            &mut mutations,
            &mut replies,
            &durable,
            &watermark,
            &failures,
            || {
                let disk = std::io::Error::other("disk on fire");
                Err(StoreError::Flush(Arc::new(sled::Error::Io(disk))))
            },
        );
        let mut answers = answers
            .into_iter()
            .map(|answer| answer.blocking_recv().unwrap());
        let first = answers.next().unwrap();
        assert!(
            matches!(&first, Err(StoreError::Flush(cause)) if cause.to_string().contains("disk on fire")),
            "{first:?}"
        );
        // The refusal keeps its own reason.
        let second = answers.next().unwrap();
        assert!(
            matches!(second, Err(StoreError::Conflict { .. })),
            "{second:?}"
        );
        assert_eq!((durable.load(Ordering::Acquire), *seen.borrow()), (1, 1));
        // API.md "Storage faults": the failure is known, and the next write is refused
        // before it is applied.
        assert!(failures.is_degraded());
        let (writer, _, thread) = Writer::start(store.clone(), stamp(), failures).unwrap();
        let refused = writer.submit_blocking(create("c"));
        assert!(
            matches!(refused, Err(StoreError::NotWritable(_))),
            "{refused:?}"
        );
        assert_eq!(store.next_event_id().unwrap(), 3, "nothing applied");
        drop(writer);
        thread.join().unwrap();
    }

    #[test]
    fn stop_answers_what_was_queued_before_it_flushes_and_refuses_the_rest() {
        // DESIGN invariant 6: shutdown finishes the writes in flight and flushes.
        let (_dir, store) = store();
        let (writer, watermark, thread) = Writer::start(store.clone(), stamp(), health()).unwrap();
        let mut before = Vec::new();
        for subdomain in ["a", "b", "c"] {
            let (reply, answer) = oneshot::channel();
            let mutation = create(subdomain);
            writer
                .queue
                .blocking_send(Request::Apply { mutation, reply })
                .unwrap();
            before.push(answer);
        }
        writer.queue.blocking_send(Request::Stop).unwrap();
        let (reply, after) = oneshot::channel();
        let mutation = create("d");
        // The writer may already have closed its queue; either way "d" must not be applied.
        let queued_after = writer
            .queue
            .blocking_send(Request::Apply { mutation, reply });
        thread.join().unwrap();

        let before: Vec<_> = before.into_iter().map(answered).collect();
        assert_eq!(before, [ok("a"), ok("b"), ok("c")]);
        if queued_after.is_ok() {
            assert!(matches!(after.blocking_recv(), Ok(Err(StoreError::Closed))));
        }
        assert_eq!(store.next_event_id().unwrap(), 4);
        assert_eq!((watermark.get(), writer.durable_event_id()), (3, 3));
        assert!(matches!(
            writer.submit_blocking(create("e")),
            Err(StoreError::Closed)
        ));
    }
}
