//! The single writer: one thread applies every mutation in order and replies only after the
//! flush that makes it durable (group commit: the mutations queued at once form a batch,
//! applied as one sled transaction where no refusal splits it, then one flush).
//!
//! Because one thread takes every event id, ids are consecutive and "id order = commit order"
//! holds by construction (DESIGN invariant 2). After each flush it raises the durable
//! watermark, which the bus waits for before publishing (invariant 1).

use crate::domain::{
    Business, BusinessPatch, NewBusiness, NewReservation, NewUser, Reservation, User,
};
use crate::store::{Applied, MailStamp, Mutation, Store, StoreError};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

mod sessions;

pub use sessions::sweep_sessions;

/// Most mutations applied before one flush; bounds the latency a batch adds.
const MAX_BATCH: usize = 512;
/// Queued mutations before callers wait: back-pressure instead of unbounded memory.
const QUEUE_CAPACITY: usize = 4096;

enum Request {
    Apply {
        mutation: Mutation,
        reply: oneshot::Sender<Result<Applied, StoreError>>,
    },
    /// Finish what is queued before this, flush, and stop.
    Stop,
    /// Run a job alone between two batches (after the batch before it is durable, before any
    /// later mutation): a consistent view of the whole store, such as a backup's.
    Exclusive(Job),
}

/// A job for [`Request::Exclusive`].
type Job = Box<dyn FnOnce(&Store) + Send>;

/// A cheap-to-clone handle for submitting mutations.
#[derive(Clone)]
pub struct Writer {
    queue: mpsc::Sender<Request>,
    durable: Arc<AtomicU64>,
}

/// The durable watermark as the bus and readers see it: the newest event id on disk.
#[derive(Clone)]
pub struct DurableWatermark {
    rx: watch::Receiver<u64>,
    now: Arc<AtomicU64>,
}

impl DurableWatermark {
    /// The newest durable event id.
    pub fn get(&self) -> u64 {
        self.now.load(Ordering::Acquire)
    }

    /// A receiver that changes whenever the watermark rises.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.rx.clone()
    }
}

impl Writer {
    /// Starts the writer thread over `store`. The thread ends when every `Writer` handle is
    /// dropped and the queue is drained; join the returned handle to wait for its last flush.
    pub fn start(
        store: Store,
        stamp: MailStamp,
    ) -> Result<(Self, DurableWatermark, std::thread::JoinHandle<()>), StoreError> {
        let (queue, rx) = mpsc::channel(QUEUE_CAPACITY);
        let newest = store.next_event_id()? - 1;
        let durable = Arc::new(AtomicU64::new(newest));
        let (watch_tx, watch_rx) = watch::channel(newest);
        let thread = {
            let durable = durable.clone();
            std::thread::Builder::new()
                .name("writer".into())
                .spawn(move || run(store, stamp, rx, durable, watch_tx))
                .map_err(|e| StoreError::Unavailable(sled::Error::Io(e)))?
        };
        let watermark = DurableWatermark {
            rx: watch_rx,
            now: durable.clone(),
        };
        Ok((Self { queue, durable }, watermark, thread))
    }

    /// Applies `mutation` and returns once it is durable.
    ///
    /// # Errors
    /// The mutation's own refusal (`NotFound`, `Conflict`), a storage failure (`Flush` when
    /// its batch could not be made durable), or `Closed` during shutdown.
    pub async fn submit(&self, mutation: Mutation) -> Result<Applied, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.queue
            .send(Request::Apply { mutation, reply })
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// The same as [`Writer::submit`] for callers outside the async runtime (CLI commands).
    pub fn submit_blocking(&self, mutation: Mutation) -> Result<Applied, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.queue
            .blocking_send(Request::Apply { mutation, reply })
            .map_err(|_| StoreError::Closed)?;
        rx.blocking_recv().map_err(|_| StoreError::Closed)?
    }

    /// Creates a user (durable on return).
    ///
    /// # Errors
    /// As [`Writer::submit`].
    pub async fn create_user(&self, new: NewUser) -> Result<User, StoreError> {
        match self.submit(Mutation::CreateUser(new)).await? {
            Applied::User(user) => Ok(user),
            _ => Err(mismatch("CreateUser")),
        }
    }

    /// [`Writer::create_user`] for callers outside the async runtime.
    pub fn create_user_blocking(&self, new: NewUser) -> Result<User, StoreError> {
        match self.submit_blocking(Mutation::CreateUser(new))? {
            Applied::User(user) => Ok(user),
            _ => Err(mismatch("CreateUser")),
        }
    }

    /// Creates a business.
    ///
    /// # Errors
    /// `Conflict` on a taken subdomain; otherwise as [`Writer::submit`].
    pub async fn create_business(&self, new: NewBusiness) -> Result<Business, StoreError> {
        match self.submit(Mutation::CreateBusiness(new)).await? {
            Applied::Business(business) => Ok(business),
            _ => Err(mismatch("CreateBusiness")),
        }
    }

    /// Changes the given fields of a business; returns it as it now is.
    ///
    /// # Errors
    /// `NotFound`; otherwise as [`Writer::submit`].
    pub async fn update_business(
        &self,
        id: Uuid,
        patch: BusinessPatch,
    ) -> Result<Business, StoreError> {
        match self.submit(Mutation::UpdateBusiness { id, patch }).await? {
            Applied::Business(business) => Ok(business),
            _ => Err(mismatch("UpdateBusiness")),
        }
    }

    /// Deletes a business and its reservations; returns the business as it was.
    ///
    /// # Errors
    /// `NotFound`; otherwise as [`Writer::submit`].
    pub async fn delete_business(&self, id: Uuid) -> Result<Business, StoreError> {
        match self.submit(Mutation::DeleteBusiness { id }).await? {
            Applied::Deleted(business) => Ok(business),
            _ => Err(mismatch("DeleteBusiness")),
        }
    }

    /// Books a reservation at a business.
    ///
    /// # Errors
    /// `NotFound` for an unknown business; otherwise as [`Writer::submit`].
    pub async fn create_reservation(
        &self,
        business_id: Uuid,
        new: NewReservation,
    ) -> Result<Reservation, StoreError> {
        match self
            .submit(Mutation::CreateReservation { business_id, new })
            .await?
        {
            Applied::Reservation(reservation) => Ok(reservation),
            _ => Err(mismatch("CreateReservation")),
        }
    }

    /// Cancels a reservation of a business; returns it as it now is.
    ///
    /// # Errors
    /// `NotFound`, or `Conflict` when it is already cancelled; otherwise as
    /// [`Writer::submit`].
    pub async fn cancel_reservation(
        &self,
        business_id: Uuid,
        reservation_id: Uuid,
    ) -> Result<Reservation, StoreError> {
        match self
            .submit(Mutation::CancelReservation {
                business_id,
                reservation_id,
            })
            .await?
        {
            Applied::Reservation(reservation) => Ok(reservation),
            _ => Err(mismatch("CancelReservation")),
        }
    }

    /// Records that `user_id` has read everything up to `up_to`; returns the stored read
    /// position, which never moves backwards.
    ///
    /// # Errors
    /// As [`Writer::submit`].
    pub async fn mark_read(&self, user_id: Uuid, up_to: u64) -> Result<u64, StoreError> {
        match self.submit(Mutation::MarkRead { user_id, up_to }).await? {
            Applied::ReadUpTo(stored) => Ok(stored),
            _ => Err(mismatch("MarkRead")),
        }
    }

    /// Asks the writer to finish the mutations queued so far, flush and stop; later
    /// submissions fail with `Closed`. Join the thread handle to wait for it.
    pub async fn stop(&self) {
        let _ = self.queue.send(Request::Stop).await;
    }

    /// Runs `job` on the writer thread between two batches, when everything acknowledged
    /// so far is durable and nothing else writes through the writer, and returns its result.
    /// Writers wait meanwhile, so keep it short.
    ///
    /// # Errors
    /// `Closed` when the writer has stopped.
    pub async fn exclusive<T: Send + 'static>(
        &self,
        job: impl FnOnce(&Store) -> T + Send + 'static,
    ) -> Result<T, StoreError> {
        let (reply, rx) = oneshot::channel();
        let job = Box::new(move |store: &Store| {
            let _ = reply.send(job(store));
        });
        self.queue
            .send(Request::Exclusive(job))
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)
    }

    /// The newest durable event id.
    pub fn durable_event_id(&self) -> u64 {
        self.durable.load(Ordering::Acquire)
    }
}

/// The store answers each mutation with its own `Applied` variant, so another one is a bug:
/// it is reported as one (a 500 for a request), never as a refusal the client could fix.
fn mismatch(mutation: &'static str) -> StoreError {
    StoreError::Unavailable(sled::Error::ReportableBug(format!(
        "the writer answered {mutation} with the result of another mutation"
    )))
}

fn run(
    store: Store,
    stamp: MailStamp,
    mut queue: mpsc::Receiver<Request>,
    durable: Arc<AtomicU64>,
    watermark: watch::Sender<u64>,
) {
    // Reused batch after batch: a fresh pair of large vectors per batch made glibc consolidate
    // its free lists on every allocation (~5 % of this thread in a profile of creates).
    let mut mutations = Vec::with_capacity(MAX_BATCH);
    let mut replies = Vec::with_capacity(MAX_BATCH);
    let mut stopping = false;
    let mut exclusive: Option<Job> = None;
    while !stopping {
        let Some(first) = queue.blocking_recv() else {
            break;
        };
        let mut next = Some(first);
        while let Some(request) = next.take() {
            match request {
                Request::Apply { mutation, reply } => {
                    mutations.push(mutation);
                    replies.push(reply);
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
            if mutations.len() < MAX_BATCH {
                next = queue.try_recv().ok();
            }
        }
        if !mutations.is_empty() {
            commit_batch(
                &store,
                &stamp,
                &mut mutations,
                &mut replies,
                &durable,
                &watermark,
                || store.flush(),
            );
        }
        if let Some(job) = exclusive.take() {
            job(&store);
        }
    }
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

type Reply = oneshot::Sender<Result<Applied, StoreError>>;

/// Applies a batch (`mutations[i]` answered on `replies[i]`), flushes once with `flush`,
/// raises the watermark, then answers every caller. Leaves both vectors empty.
///
/// `flush` is `Store::flush` outside tests, which stand in a failing disk with it.
fn commit_batch(
    store: &Store,
    stamp: &MailStamp,
    mutations: &mut Vec<Mutation>,
    replies: &mut Vec<Reply>,
    durable: &AtomicU64,
    watermark: &watch::Sender<u64>,
    flush: impl FnOnce() -> Result<(), StoreError>,
) {
    let outcomes = store.apply_batch(mutations, stamp);
    mutations.clear();
    // Event ids rise in batch order, so the last one is the newest.
    let newest_event = outcomes
        .iter()
        .filter_map(|outcome| outcome.as_ref().ok().and_then(|(_, id)| *id))
        .next_back();
    // Group commit: one fsync makes the whole batch durable before anyone hears "done"
    // (DESIGN invariant 1).
    let not_durable = match flush() {
        Ok(()) => {
            if let Some(id) = newest_event {
                durable.store(id, Ordering::Release);
                watermark.send_replace(id);
            }
            None
        }
        Err(error) => {
            tracing::error!(%error, "flush failed; failing the batch");
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::NewBusiness;

    type Answer = oneshot::Receiver<Result<Applied, StoreError>>;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db"), 1 << 20, 100).unwrap();
        (dir, store)
    }

    fn stamp() -> MailStamp {
        MailStamp {
            epoch: "e".into(),
            domain: "example.com".into(),
        }
    }

    fn create(subdomain: &str) -> Mutation {
        Mutation::CreateBusiness(NewBusiness {
            name: format!("Salon {subdomain}"),
            subdomain: subdomain.into(),
            owner_email: "owner@example.com".into(),
        })
    }

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
    }

    #[test]
    fn stop_answers_what_was_queued_before_it_flushes_and_refuses_the_rest() {
        // DESIGN invariant 6: shutdown finishes the writes in flight and flushes.
        let (_dir, store) = store();
        let (writer, watermark, thread) = Writer::start(store.clone(), stamp()).unwrap();
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
