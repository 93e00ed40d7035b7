//! The single writer: one thread applies every mutation in order and replies only after the
//! flush that makes it durable (group commit: the mutations queued at once form a batch,
//! applied as one sled transaction where no refusal splits it, then one flush).
//!
//! Because one thread takes every event id, ids are consecutive and "id order = commit order"
//! holds by construction (DESIGN invariant 2). After each flush it raises the durable
//! watermark, which the bus waits for before publishing (invariant 1).

use crate::store::{Applied, MailStamp, Mutation, Store, StoreError};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, watch};

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
    /// The mutation's own refusal (`NotFound`, `Conflict`), a storage failure, or `Closed`
    /// during shutdown.
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

/// Applies a batch (`mutations[i]` answered on `replies[i]`), flushes once, raises the
/// watermark, then answers every caller. Leaves both vectors empty.
fn commit_batch(
    store: &Store,
    stamp: &MailStamp,
    mutations: &mut Vec<Mutation>,
    replies: &mut Vec<Reply>,
    durable: &AtomicU64,
    watermark: &watch::Sender<u64>,
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
    let flushed = store.flush();
    match &flushed {
        Ok(()) => {
            if let Some(id) = newest_event {
                durable.store(id, Ordering::Release);
                watermark.send_replace(id);
            }
        }
        Err(error) => tracing::error!(%error, "flush failed; failing the batch"),
    }
    for (reply, outcome) in replies.drain(..).zip(outcomes) {
        let result = match outcome {
            Ok((applied, _)) if flushed.is_ok() => Ok(applied),
            Ok(_) => Err(StoreError::Closed),
            Err(error) => Err(error),
        };
        // The caller may have gone away (client disconnected); the change stands anyway.
        let _ = reply.send(result);
    }
}
