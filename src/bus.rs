//! The bus: a sled watcher on the `events` tree feeds a `tokio::sync::broadcast` channel that
//! every WebSocket session and the mail drainer subscribe to.
//!
//! sled 0.34's watchers have sharp edges, and this module owns all of them (DESIGN "bus"):
//! 1. they fire when a write lands in memory, before it is durable, so an event is published
//!    only once the writer's durable watermark covers it (invariant 1);
//! 2. a subscriber 1024 events behind blocks every writer, so a dedicated thread does nothing
//!    but drain it into an unbounded queue (it never waits on the watermark: that would
//!    deadlock with the writer);
//! 3. dropping a full subscriber can deadlock sled, so the thread keeps it for the life of the
//!    process;
//! 4. events of one transaction may arrive in any order, so publishing goes strictly by id,
//!    holding back an id until its predecessor has gone out (invariant 2).
//!
//! Each event's frame is rendered once (at write time) and wrapped once in a WebSocket
//! message whose clones share the bytes.

use crate::domain::{Audience, Event, EventKind};
use crate::store::{codec, Store};
use crate::writer::DurableWatermark;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// How many published events a subscriber may lag before it must catch up from the store.
pub const BROADCAST_CAPACITY: usize = 4096;

/// An event as published: metadata for filtering plus the shared, pre-rendered frame.
#[derive(Debug)]
pub struct Published {
    pub id: u64,
    pub kind: EventKind,
    pub business_id: Uuid,
    /// Who may receive it (fixed at commit; `Caller::may_receive` reads it).
    pub audience: Audience,
    /// The text frame; cloning it shares the bytes.
    pub frame: warp::ws::Message,
}

impl Published {
    /// Wraps a stored event, rendering its WebSocket message once.
    pub fn new(event: Event) -> Self {
        Self {
            id: event.id,
            kind: event.kind,
            business_id: event.business_id,
            audience: event.audience,
            frame: warp::ws::Message::text(event.frame),
        }
    }
}

/// A message for one user's open sockets (not part of the event log).
#[derive(Debug, Clone)]
pub struct UserNotice {
    pub user_id: Uuid,
    pub what: Notice,
}

/// What a [`UserNotice`] tells the user's sockets.
#[derive(Debug, Clone)]
pub enum Notice {
    /// Send this frame (a read receipt).
    Frame(warp::ws::Message),
    /// The user's tokens may have been revoked (password changed, disabled, enabled): each
    /// socket checks its own token and closes with 4401 if it is no longer good.
    Revoked,
}

impl UserNotice {
    /// A frame for every open socket of `user_id`.
    pub fn frame(user_id: Uuid, frame: warp::ws::Message) -> Self {
        Self {
            user_id,
            what: Notice::Frame(frame),
        }
    }

    /// Tells the sockets of `user_id` to re-check their tokens.
    pub fn revoked(user_id: Uuid) -> Self {
        Self {
            user_id,
            what: Notice::Revoked,
        }
    }
}

/// A cheap-to-clone handle: subscribe to events, read the published watermark, notify users.
#[derive(Clone)]
pub struct Bus {
    events: broadcast::Sender<Arc<Published>>,
    notices: broadcast::Sender<Arc<UserNotice>>,
    published: Arc<AtomicU64>,
}

impl Bus {
    /// A receiver of every event published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Published>> {
        self.events.subscribe()
    }

    /// A receiver of per-user notices (read receipts, revocations) sent from now on.
    pub fn subscribe_notices(&self) -> broadcast::Receiver<Arc<UserNotice>> {
        self.notices.subscribe()
    }

    /// The newest published event id: everything up to it is durable and has gone out.
    pub fn published_id(&self) -> u64 {
        self.published.load(Ordering::Acquire)
    }

    /// How many published events some subscriber has not taken yet (at most the ring's
    /// capacity), for the writer's pacing of a big delete (`writer::pace`). Holds the sender
    /// weakly: it keeps no channel open at shutdown.
    pub fn backlog_probe(&self) -> impl Fn() -> usize + Send + Sync + 'static {
        let events = self.events.downgrade();
        move || events.upgrade().map_or(0, |events| events.len())
    }

    /// Sends `notice` to the user's open sockets (best effort: nobody listening is fine).
    pub fn notify_user(&self, notice: UserNotice) {
        let _ = self.notices.send(Arc::new(notice));
    }

    /// Starts the watcher thread and the publishing thread; the ring holds `capacity` events
    /// ([`BROADCAST_CAPACITY`] unless a test shrinks it).
    ///
    /// The watcher is registered before this returns, so no event written afterwards is
    /// missed. The publisher stops on `shutdown`.
    ///
    /// The publisher has a thread of its own rather than a task on the server's runtime: it
    /// is woken from the writer thread, and a task woken from outside the runtime joins the
    /// back of the runtime's global queue — behind the thousands of sessions the previous
    /// event woke. On a busy server each event then left only once the previous one had
    /// reached every socket, and no session ever found two events to write at once
    /// (docs/bench.md, "the publisher behind the fan-out").
    pub fn start(
        store: &Store,
        watermark: DurableWatermark,
        capacity: usize,
        shutdown: CancellationToken,
    ) -> std::io::Result<(Self, std::thread::JoinHandle<()>)> {
        let (events, _) = broadcast::channel(capacity.max(1));
        let (notices, _) = broadcast::channel(256);
        let start = watermark.get();
        let published = Arc::new(AtomicU64::new(start));
        let (raw_tx, raw_rx) = mpsc::unbounded_channel();
        let subscriber = store.events_tree().watch_prefix(Vec::new());
        std::thread::Builder::new()
            .name("bus-watch".into())
            .spawn(move || drain_watcher(subscriber, raw_tx))?;
        let bus = Self {
            events,
            notices,
            published,
        };
        // Its own single-threaded runtime: `publish` awaits only channels and the token.
        let runtime = tokio::runtime::Builder::new_current_thread().build()?;
        let publishing = bus.clone();
        let publisher = std::thread::Builder::new()
            .name("bus-publish".into())
            .spawn(move || {
                runtime.block_on(publish(publishing, raw_rx, watermark, start, shutdown));
            })?;
        Ok((bus, publisher))
    }
}

/// Drains the sled subscriber as fast as events arrive (hazard 2). Never returns while the
/// database is open, which keeps the subscriber alive (hazard 3).
fn drain_watcher(subscriber: sled::Subscriber, raw: mpsc::UnboundedSender<Event>) {
    for change in subscriber {
        let sled::Event::Insert { value, .. } = change else {
            continue; // removals are retention pruning
        };
        match codec::decode::<Event>(&value) {
            // A closed receiver means the server is stopping; keep draining regardless.
            Ok(event) => drop(raw.send(event)),
            Err(error) => tracing::error!(%error, "undecodable event in the log"),
        }
    }
}

/// Publishes events strictly by id, each once it is durable (hazards 1 and 4).
async fn publish(
    bus: Bus,
    mut raw: mpsc::UnboundedReceiver<Event>,
    watermark: DurableWatermark,
    start: u64,
    shutdown: CancellationToken,
) {
    let mut durable_rx = watermark.subscribe();
    let mut order = Reorder::after(start);
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            event = raw.recv() => match event {
                Some(event) => order.hold(event.id, event),
                None => break,
            },
            changed = durable_rx.changed() => if changed.is_err() { break },
        }
        while let Some((id, event)) = order.release(watermark.get()) {
            let published = Arc::new(Published::new(event));
            bus.published.store(id, Ordering::Release);
            // No receivers is fine: nobody is watching.
            let _ = bus.events.send(published);
        }
    }
}

/// Puts events that arrive in any order back into id order: an event goes out only once
/// every id before it has gone out and the durable watermark covers it (hazards 1 and 4;
/// DESIGN invariants 1 and 2). Pure, so the rule is tested without sled.
#[derive(Debug)]
struct Reorder<T> {
    /// Events that arrived before they could go out, by id.
    held: BTreeMap<u64, T>,
    /// The id that goes out next.
    next: u64,
}

impl<T> Reorder<T> {
    /// Starts after `published`: every id up to it has already gone out.
    fn after(published: u64) -> Self {
        Self {
            held: BTreeMap::new(),
            next: published + 1,
        }
    }

    /// Holds `item`, the event with id `id`, until it can go out. An id that has gone out
    /// already is dropped (cannot happen: ids are never reused).
    fn hold(&mut self, id: u64, item: T) {
        if id >= self.next {
            self.held.insert(id, item);
        }
    }

    /// The next event to publish, if it has arrived and `durable` covers it.
    fn release(&mut self, durable: u64) -> Option<(u64, T)> {
        if self.next > durable {
            return None;
        }
        let item = self.held.remove(&self.next)?;
        let id = self.next;
        self.next += 1;
        Some((id, item))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::StoreHealth;
    use crate::metrics::Metrics;
    use crate::store::fixtures;
    use crate::writer::Writer;
    use std::sync::atomic::AtomicBool;
    use std::time::Duration;

    #[test]
    fn events_go_out_while_the_servers_runtime_is_busy() {
        // Invariant 1's publisher must not need a runtime worker: woken from the writer
        // thread, a task queues behind every session the last event woke (docs/bench.md,
        // "the publisher behind the fan-out").
        let (_dir, store) = fixtures::store();
        let health = StoreHealth::new(Arc::new(Metrics::default()));
        let (writer, watermark, writer_thread) =
            Writer::start(store.clone(), fixtures::stamp(), health).unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .unwrap();
        let shutdown = CancellationToken::new();
        // Started from inside the runtime, as the server starts it.
        let (bus, publisher) = {
            let _inside = runtime.enter();
            Bus::start(&store, watermark, 16, shutdown.clone()).unwrap()
        };
        let mut events = bus.subscribe();

        // The runtime's only worker stays busy until the event has arrived (at most 30 s).
        let (arrived, wait_for_arrival) = std::sync::mpsc::channel::<()>();
        let (hogging, hog_started) = std::sync::mpsc::channel();
        let hog_done = Arc::new(AtomicBool::new(false));
        let done = hog_done.clone();
        runtime.spawn(async move {
            hogging.send(()).unwrap();
            let _ = wait_for_arrival.recv_timeout(Duration::from_secs(30));
            done.store(true, Ordering::SeqCst);
        });
        hog_started.recv().unwrap();

        writer.submit_blocking(fixtures::create("busy")).unwrap();
        // Waited for on a runtime of its own, so a publisher that never publishes fails the
        // test instead of hanging it.
        let event = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
            .block_on(async { tokio::time::timeout(Duration::from_secs(60), events.recv()).await })
            .expect("the event went out within 60 s")
            .unwrap();
        assert!(
            !hog_done.load(Ordering::SeqCst),
            "the event went out only once the runtime's worker was free"
        );
        arrived.send(()).unwrap();
        assert_eq!(event.kind, EventKind::BusinessCreated);

        shutdown.cancel();
        publisher.join().unwrap();
        drop(writer);
        writer_thread.join().unwrap();
    }

    /// Everything `order` releases with the watermark at `durable`.
    fn drain(order: &mut Reorder<&'static str>, durable: u64) -> Vec<(u64, &'static str)> {
        std::iter::from_fn(|| order.release(durable)).collect()
    }

    #[test]
    fn events_of_one_transaction_go_out_by_id_whatever_order_they_arrive_in() {
        // Invariant 2: a subscriber never sees a gap or a reordering.
        let mut order = Reorder::after(0);
        order.hold(3, "c");
        order.hold(2, "b");
        assert_eq!(drain(&mut order, 3), [], "1 has not arrived: 2 and 3 wait");
        order.hold(1, "a");
        assert_eq!(drain(&mut order, 3), [(1, "a"), (2, "b"), (3, "c")]);
        assert_eq!(drain(&mut order, 3), []);
    }

    #[test]
    fn an_event_waits_for_the_durable_watermark() {
        // Invariant 1: published only after it is durable.
        let mut order = Reorder::after(0);
        order.hold(1, "a");
        order.hold(2, "b");
        assert_eq!(drain(&mut order, 0), []);
        assert_eq!(drain(&mut order, 1), [(1, "a")]);
        assert_eq!(drain(&mut order, 2), [(2, "b")]);
    }

    #[test]
    fn a_gap_holds_back_even_durable_events_after_it() {
        let mut order = Reorder::after(0);
        order.hold(1, "a");
        order.hold(3, "c");
        assert_eq!(drain(&mut order, 3), [(1, "a")]);
        order.hold(2, "b");
        assert_eq!(drain(&mut order, 3), [(2, "b"), (3, "c")]);
    }

    #[test]
    fn it_resumes_after_the_published_watermark_and_drops_what_already_went_out() {
        let mut order = Reorder::after(5);
        order.hold(5, "old");
        order.hold(4, "older");
        order.hold(6, "new");
        assert_eq!(drain(&mut order, 6), [(6, "new")]);
        order.hold(6, "again");
        assert_eq!(drain(&mut order, 7), []);
        assert!(order.held.is_empty(), "{:?}", order.held);
    }
}
