//! The single writer: one thread applies every mutation in order and replies only after the
//! flush that makes it durable (group commit: the mutations queued at once form a batch,
//! applied as one sled transaction where no refusal splits it, then one flush).
//!
//! Because one thread takes every event id, ids are consecutive and "id order = commit order"
//! holds by construction (DESIGN invariant 2). After each flush it raises the durable
//! watermark, which the bus waits for before publishing (invariant 1).

mod pace;
mod thread;

use crate::domain::{
    Business, BusinessPatch, NewBusiness, NewReservation, NewUser, Reservation, User,
};
use crate::health::StoreHealth;
use crate::store::{Applied, MailStamp, Mutation, Store, StoreError};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

mod sessions;

pub use pace::STALL as CLOSE_STALL;
pub use sessions::sweep_sessions;
pub use thread::{CLOSE_CHUNK, PURGE_CHUNK};

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
    probe: pace::SharedProbe,
    /// In cluster mode, where changes go first: the log, which feeds them back through
    /// [`Writer::enqueue`] in the cluster's order (`crate::cluster`).
    cluster: Arc<std::sync::OnceLock<crate::cluster::Cluster>>,
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
    /// Starts the writer thread over `store`, reporting storage failures to `health` (and
    /// refusing every change while it is degraded). The thread ends when every `Writer`
    /// handle is dropped and the queue is drained; join the returned handle to wait for its
    /// last flush.
    pub fn start(
        store: Store,
        stamp: MailStamp,
        health: Arc<StoreHealth>,
    ) -> Result<(Self, DurableWatermark, std::thread::JoinHandle<()>), StoreError> {
        let (queue, rx) = mpsc::channel(QUEUE_CAPACITY);
        let newest = store.next_event_id()? - 1;
        let durable = Arc::new(AtomicU64::new(newest));
        let (watch_tx, watch_rx) = watch::channel(newest);
        let probe = pace::SharedProbe::default();
        let thread = {
            let (durable, probe) = (durable.clone(), probe.clone());
            std::thread::Builder::new()
                .name("writer".into())
                .spawn(move || {
                    thread::run(thread::Context {
                        store,
                        stamp,
                        queue: rx,
                        durable,
                        watermark: watch_tx,
                        health,
                        probe,
                    })
                })
                .map_err(|e| StoreError::Unavailable(sled::Error::Io(e)))?
        };
        let watermark = DurableWatermark {
            rx: watch_rx,
            now: durable.clone(),
        };
        let cluster = Arc::default();
        Ok((
            Self {
                queue,
                durable,
                probe,
                cluster,
            },
            watermark,
            thread,
        ))
    }

    /// Paces the cancellations of a business being deleted by the bus (`writer::pace`):
    /// `backlog` says how many published events some subscriber has not taken yet, out of a
    /// ring of `capacity`. Set once, after the bus starts (which needs the writer's
    /// watermark); until then, and in commands without a bus, nothing is paced.
    pub fn pace_closes(
        &self,
        capacity: usize,
        backlog: impl Fn() -> usize + Send + Sync + 'static,
    ) {
        let probe = pace::Probe {
            capacity,
            backlog: Box::new(backlog),
        };
        if self.probe.set(probe).is_err() {
            tracing::warn!("the writer's pacing was set twice; the first stays");
        }
    }

    /// The newest event id on disk. A read capped here shows a caller its own acknowledged
    /// change at once (the bus publishes a moment later) and nothing that could still be lost.
    pub fn durable_id(&self) -> u64 {
        self.durable.load(Ordering::Acquire)
    }

    /// Applies `mutation` and returns once it is durable.
    ///
    /// # Errors
    /// The mutation's own refusal (`NotFound`, `Conflict`), a storage failure (`Flush` when
    /// its batch could not be made durable), or `Closed` during shutdown.
    pub async fn submit(&self, mutation: Mutation) -> Result<Applied, StoreError> {
        if let Some(cluster) = self.cluster.get() {
            return cluster.submit(mutation).await;
        }
        let (reply, rx) = oneshot::channel();
        self.queue
            .send(Request::Apply { mutation, reply })
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// From now on, changes go through `cluster`'s log (set once, at start).
    pub fn join_cluster(&self, cluster: crate::cluster::Cluster) {
        if self.cluster.set(cluster).is_err() {
            tracing::warn!("the writer is already in a cluster");
        }
    }

    /// The cluster this writer's changes go through, if any.
    pub fn cluster(&self) -> Option<&crate::cluster::Cluster> {
        self.cluster.get()
    }

    /// Queues `mutation` for the writer thread as it is, answering on `reply`: how the
    /// cluster's log reaches the store, in log order.
    ///
    /// # Errors
    /// `Closed` when the writer has stopped.
    pub(crate) async fn enqueue(
        &self,
        mutation: Mutation,
        reply: oneshot::Sender<Result<Applied, StoreError>>,
    ) -> Result<(), StoreError> {
        self.queue
            .send(Request::Apply { mutation, reply })
            .await
            .map_err(|_| StoreError::Closed)
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

    /// Deletes a business and its reservations; returns the business as it was, once the
    /// delete is filed durably: from then on the business is gone to every read and change.
    /// Its future bookings are then cancelled in the background, in chunks between other
    /// batches and as fast as the bus's subscribers take the events, and the
    /// `business_deleted` event follows them (`store::mutations::closing`).
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

    /// Claims outbox rows for the mail drainer: each pending row's next attempt moves to the
    /// time given with it, durably, before the drainer hands the mail to SMTP. Returns the
    /// rows claimed (those still pending).
    ///
    /// # Errors
    /// As [`Writer::submit`].
    pub async fn claim_mails(
        &self,
        claims: Vec<(u64, crate::domain::Timestamp)>,
    ) -> Result<Vec<crate::domain::OutboxMail>, StoreError> {
        match self.submit(Mutation::ClaimMails { claims }).await? {
            Applied::Claimed(rows) => Ok(rows),
            _ => Err(mismatch("ClaimMails")),
        }
    }

    /// Records the mail drainer's failed tries (`Mutation::MailsFailed`), durably; returns
    /// the rows changed (those still under the claim each failure answers).
    ///
    /// # Errors
    /// As [`Writer::submit`].
    pub async fn record_mail_failures(
        &self,
        failures: Vec<crate::store::MailFailure>,
    ) -> Result<Vec<crate::domain::OutboxMail>, StoreError> {
        match self.submit(Mutation::MailsFailed { failures }).await? {
            Applied::Claimed(rows) => Ok(rows),
            _ => Err(mismatch("MailsFailed")),
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
