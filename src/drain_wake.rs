//! When an outbox drainer (mail, push) runs its next pass: [`SETTLE`] after the bus rings (an
//! event went out, so new rows may be waiting), or when the soonest retry is due, or after the
//! poll interval, whichever comes first. The bus is only a doorbell: which event rang does not
//! matter, the pass reads the store.

use crate::bus::Bus;
use crate::domain::Timestamp;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

/// Shortest timer sleep, so a row due "now" that a pass does not return cannot spin the loop.
pub const MIN_WAIT: Duration = Duration::from_millis(10);

/// How long a pass waits after the bus rings. At that moment the event that rang is going out
/// to every open socket on the same cores, and a pass (store reads on the blocking pool, the
/// durable claim, an SMTP conversation, the durable record of what was sent) slows that
/// fan-out by what it costs: 1 000 sockets got an event 0.45 ms later at p50 with the pass
/// started at once, in four fresh-server pairs (docs/bench.md, "Afternoon 2026-12-04"; a whole
/// suite run's spread is wider). A mail or a push 50 ms later costs nobody anything, and
/// whatever is published meanwhile joins the same pass.
pub const SETTLE: Duration = Duration::from_millis(50);

/// The bus, heard as a doorbell.
///
/// It holds a receiver only while it waits: a receiver kept through a pass (which may send
/// thousands of mails) would pin the bus's ring as unread, and the writer paces the
/// cancellations of a deleted business by how much of the ring is unread (`writer::pace`).
pub struct Doorbell {
    /// `None` once the bus has closed (shutdown).
    bus: Option<Bus>,
    /// The newest published id when the last ring ended: anything published after it rings.
    heard: u64,
    /// [`SETTLE`], or what a test needs.
    settle: Duration,
}

impl Doorbell {
    /// Starts listening now: call it before the startup pass, so no ring falls between the
    /// two.
    pub fn new(bus: &Bus) -> Self {
        Self {
            bus: Some(bus.clone()),
            heard: bus.published_id(),
            settle: SETTLE,
        }
    }

    /// Waits for an event published since the last ring, then [`SETTLE`], and takes the whole
    /// burst as one wake-up. Once the bus is gone (shutdown) it never rings again and the timer
    /// keeps the drainer going.
    pub async fn ring(&mut self) {
        let Some(bus) = &self.bus else {
            return std::future::pending().await;
        };
        // Subscribe before reading the published id: an event sent after this reaches the
        // receiver, and one sent before raised the id first (`bus::publish`).
        let mut events = bus.subscribe();
        let published = bus.published_id();
        if published <= self.heard {
            match events.recv().await {
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => {
                    self.bus = None;
                    return;
                }
            }
        }
        // Let go of the ring before settling: an unread receiver would count as a subscriber
        // behind, and hold back the writer's pacing of a big delete.
        drop(events);
        tokio::time::sleep(self.settle).await;
        // Read after the settle, so what went out meanwhile is part of this wake-up.
        self.heard = bus.published_id();
    }

    /// Sleeps until the bus rings, `next_due` comes ([`wait_for`]) or `shutdown`; returns
    /// false on shutdown.
    pub async fn wait(
        &mut self,
        next_due: Option<Timestamp>,
        poll_interval: Duration,
        shutdown: &CancellationToken,
    ) -> bool {
        let wait = wait_for(next_due, poll_interval, Timestamp::now());
        tokio::select! {
            () = shutdown.cancelled() => false,
            () = self.ring() => true,
            () = tokio::time::sleep(wait) => true,
        }
    }
}

/// The timer: the poll interval, or sooner when a row is due sooner; never under
/// [`MIN_WAIT`], whatever the poll interval (a poll interval below it is allowed).
pub fn wait_for(next_due: Option<Timestamp>, poll_interval: Duration, now: Timestamp) -> Duration {
    let longest = poll_interval.max(MIN_WAIT);
    let Some(at) = next_due else {
        return longest;
    };
    let micros = at.as_micros().saturating_sub(now.as_micros());
    Duration::from_micros(u64::try_from(micros).unwrap_or(0)).clamp(MIN_WAIT, longest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::StoreHealth;
    use crate::metrics::Metrics;
    use crate::store::fixtures;
    use crate::writer::Writer;
    use std::sync::Arc;
    use std::time::Instant;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_ring_settles_after_the_event_holding_no_receiver_and_takes_what_came_meanwhile() {
        let (_dir, store) = fixtures::store();
        let health = StoreHealth::new(Arc::new(Metrics::default()));
        let (writer, watermark, writer_thread) =
            Writer::start(store.clone(), fixtures::stamp(), health).unwrap();
        let shutdown = CancellationToken::new();
        let (bus, publisher) = Bus::start(&store, watermark, 16, shutdown.clone()).unwrap();
        let backlog = bus.backlog_probe();
        let published = |id: u64| {
            let bus = bus.clone();
            async move {
                while bus.published_id() < id {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        };

        // The server's settle: the ring comes no sooner than SETTLE after the event.
        let mut doorbell = Doorbell::new(&bus);
        let asked = Instant::now();
        let ringing = tokio::spawn(async move {
            doorbell.ring().await;
            (doorbell, Instant::now())
        });
        writer.submit(fixtures::create("first")).await.unwrap();
        let (mut doorbell, rang) = ringing.await.unwrap();
        assert!(
            rang - asked >= SETTLE,
            "rang {:?} after the write",
            rang - asked
        );
        assert_eq!(doorbell.heard, 1);

        // A long settle, so the next event surely falls inside it.
        doorbell.settle = Duration::from_secs(2);
        let ringing = tokio::spawn(async move {
            doorbell.ring().await;
            doorbell
        });
        writer.submit(fixtures::create("second")).await.unwrap();
        published(2).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        writer.submit(fixtures::create("third")).await.unwrap();
        published(3).await;
        assert!(
            !ringing.is_finished(),
            "the ring came before its settle was over"
        );
        // Two events out and nobody reading: a receiver held through the settle would show.
        assert_eq!(backlog(), 0, "the settling doorbell pins the bus's ring");
        let doorbell = ringing.await.unwrap();
        assert_eq!(doorbell.heard, 3, "one wake-up takes both events");

        shutdown.cancel();
        drop(bus);
        writer.stop().await;
        drop(writer);
        tokio::task::spawn_blocking(move || {
            publisher.join().unwrap();
            writer_thread.join().unwrap();
        })
        .await
        .unwrap();
    }

    #[test]
    fn the_timer_waits_for_the_soonest_due_row_within_the_poll_interval() {
        let now = Timestamp::now();
        let poll = Duration::from_secs(1);
        assert_eq!(wait_for(None, poll, now), poll);
        let soon = Timestamp::from_micros(now.as_micros() + 200_000);
        assert_eq!(wait_for(Some(soon), poll, now), Duration::from_millis(200));
        let late = Timestamp::from_micros(now.as_micros() + 5_000_000);
        assert_eq!(wait_for(Some(late), poll, now), poll);
        let past = Timestamp::from_micros(now.as_micros() - 5_000_000);
        assert_eq!(wait_for(Some(past), poll, now), MIN_WAIT);
    }

    #[test]
    fn a_poll_interval_below_the_shortest_wait_never_panics_nor_spins() {
        // The push drainer's own copy clamped to (MIN_WAIT, poll) and panicked here.
        let now = Timestamp::now();
        let poll = Duration::from_millis(1);
        assert_eq!(wait_for(None, poll, now), MIN_WAIT);
        let due = Timestamp::from_micros(now.as_micros() + 3_000);
        assert_eq!(wait_for(Some(due), poll, now), MIN_WAIT);
    }
}
