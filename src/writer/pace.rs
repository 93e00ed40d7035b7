//! Pacing the cancellations of a business being deleted (API.md "The lifecycle of a booking":
//! a delete of 100 000 bookings stalls no other request or socket).
//!
//! Each cancellation is an event every admin dashboard receives. Cancelled as fast as the
//! writer can go, they pile up in every socket's buffers (a pong or a booking's frame then
//! queues behind thousands of cancellations) and overflow the bus's ring (every socket then
//! lags and catches up from the store on its own). So the writer takes the next chunk only
//! when every subscriber has taken all but one chunk of what went out before
//! ([`Pace::ready`]): at most two chunks are in flight, and the cancellations go exactly as
//! fast as the slowest socket takes them. A subscriber that takes nothing for
//! [`STALL`] (a client that stopped reading) does not hold the delete back: the chunk goes,
//! and that one subscriber lags and catches up on its own, as any slow socket does.
//!
//! While it waits, the writer waits on its queue with a timeout ([`Pace::idle`]), so other
//! mutations go first and nothing spins.

use super::thread::CLOSE_CHUNK;
use super::Request;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// How long a full ring that does not drain at all may hold the next chunk back.
pub const STALL: Duration = Duration::from_millis(500);

/// How often a paced writer with nothing else to do looks at the ring again.
const TICK: Duration = Duration::from_millis(5);

/// What the writer learns from the bus: how many published events some subscriber has not
/// taken yet, out of a ring of `capacity`.
pub struct Probe {
    pub capacity: usize,
    pub backlog: Box<dyn Fn() -> usize + Send + Sync>,
}

/// Set once the bus runs (the writer starts before it); unset, the writer does not pace.
pub type SharedProbe = Arc<OnceLock<Probe>>;

/// The writer thread's pacing state.
pub struct Pace {
    probe: SharedProbe,
    /// The backlog when the ring was last found full, and since when it has not gone down.
    full: Option<(usize, Instant)>,
    /// Waits on the queue with a timeout; built on first use.
    runtime: Option<tokio::runtime::Runtime>,
}

/// What [`Pace::idle`] saw.
pub enum Idle {
    /// A request arrived: it goes first.
    Request(Request),
    /// Time to look at the ring again.
    Tick,
    /// Every sender is gone.
    Closed,
}

impl Pace {
    pub fn new(probe: SharedProbe) -> Self {
        Self {
            probe,
            full: None,
            runtime: None,
        }
    }

    /// Whether the next chunk of cancellations may go now. Yes when every subscriber has
    /// taken all but one chunk, or when the ring has not drained at all for [`STALL`] (a
    /// subscriber that takes nothing does not hold the delete back).
    pub fn ready(&mut self) -> bool {
        let Some(probe) = self.probe.get() else {
            return true;
        };
        let go = gate(
            probe.capacity,
            (probe.backlog)(),
            &mut self.full,
            Instant::now(),
        );
        if go {
            self.full = None;
        }
        go
    }

    /// Waits for a request, or a tick, whichever comes first.
    pub fn idle(&mut self, queue: &mut mpsc::Receiver<Request>) -> Idle {
        if self.runtime.is_none() {
            match tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
            {
                Ok(runtime) => self.runtime = Some(runtime),
                Err(error) => {
                    tracing::warn!(%error, "no timer for pacing a delete; it sleeps instead");
                    std::thread::sleep(TICK);
                    return Idle::Tick;
                }
            }
        }
        let Some(runtime) = &self.runtime else {
            return Idle::Tick;
        };
        // The timer is made inside the runtime: built outside it, it finds no clock.
        match runtime.block_on(async { tokio::time::timeout(TICK, queue.recv()).await }) {
            Ok(Some(request)) => Idle::Request(request),
            Ok(None) => Idle::Closed,
            Err(_) => Idle::Tick,
        }
    }
}

/// The rule of [`Pace::ready`], pure: `backlog` events of a ring of `capacity` are not taken
/// by every subscriber yet; `full` remembers the smallest backlog seen while waiting and since
/// when it has not gone down.
fn gate(
    capacity: usize,
    backlog: usize,
    full: &mut Option<(usize, Instant)>,
    now: Instant,
) -> bool {
    // One chunk may still be on its way while the next goes; a ring too small for that
    // (tests shrink it) waits for every subscriber to take everything.
    if backlog <= CLOSE_CHUNK.min(capacity.saturating_sub(CLOSE_CHUNK) / 2) {
        return true;
    }
    match full {
        Some((seen, since)) if backlog >= *seen => {
            let stalled = now.duration_since(*since) >= STALL;
            if stalled {
                tracing::debug!(
                    backlog,
                    "the bus's ring did not drain: the next chunk goes anyway"
                );
            }
            stalled
        }
        _ => {
            // Draining (or first seen full): wait, and time the stall from here.
            *full = Some((backlog, now));
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RING: usize = 4096;

    #[test]
    fn a_chunk_goes_once_all_but_one_chunk_is_taken_and_waits_while_the_ring_drains() {
        let (mut full, start) = (None, Instant::now());
        assert!(gate(RING, 0, &mut full, start));
        assert!(gate(RING, CLOSE_CHUNK, &mut full, start));
        assert!(!gate(RING, CLOSE_CHUNK + 1, &mut full, start));
        // Too full: it waits, however long, as long as the subscribers take frames.
        let (mut full, mut backlog, mut now) = (None, RING - 10, start);
        while backlog > CLOSE_CHUNK {
            assert!(!gate(RING, backlog, &mut full, now), "{backlog}");
            backlog = backlog.saturating_sub(100);
            now += STALL / 2;
        }
        assert!(gate(RING, backlog, &mut full, now));
    }

    #[test]
    fn a_ring_that_does_not_drain_at_all_holds_the_next_chunk_only_for_the_stall() {
        let (mut full, start) = (None, Instant::now());
        assert!(!gate(RING, RING, &mut full, start));
        assert!(!gate(RING, RING, &mut full, start + STALL / 2));
        assert!(gate(RING, RING, &mut full, start + STALL));
    }

    #[test]
    fn a_ring_smaller_than_a_chunk_waits_for_every_subscriber() {
        let (mut full, start) = (None, Instant::now());
        assert!(!gate(16, 3, &mut full, start));
        assert!(gate(16, 0, &mut full, start));
    }

    #[test]
    fn a_paced_writer_waits_on_its_queue_for_a_tick_and_takes_a_request_at_once() {
        let mut pace = Pace::new(SharedProbe::default());
        let (sender, mut queue) = mpsc::channel(4);
        let started = Instant::now();
        assert!(matches!(pace.idle(&mut queue), Idle::Tick));
        assert!(started.elapsed() >= TICK);
        sender.blocking_send(Request::Stop).unwrap();
        assert!(matches!(
            pace.idle(&mut queue),
            Idle::Request(Request::Stop)
        ));
        drop(sender);
        assert!(matches!(pace.idle(&mut queue), Idle::Closed));
    }

    #[test]
    fn without_a_probe_nothing_is_paced() {
        let mut pace = Pace::new(SharedProbe::default());
        assert!(pace.ready());
        let probe = SharedProbe::default();
        let _ = probe.set(Probe {
            capacity: RING,
            backlog: Box::new(|| RING),
        });
        let mut pace = Pace::new(probe);
        assert!(!pace.ready());
    }
}
