//! When an outbox drainer (mail, push) runs its next pass: as soon as the bus rings (an event
//! went out, so new rows may be waiting), or when the soonest retry is due, or after the poll
//! interval, whichever comes first. The bus is only a doorbell: which event rang does not
//! matter, the pass reads the store.

use crate::bus::Bus;
use crate::domain::Timestamp;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

/// Shortest timer sleep, so a row due "now" that a pass does not return cannot spin the loop.
pub const MIN_WAIT: Duration = Duration::from_millis(10);

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
}

impl Doorbell {
    /// Starts listening now: call it before the startup pass, so no ring falls between the
    /// two.
    pub fn new(bus: &Bus) -> Self {
        Self {
            bus: Some(bus.clone()),
            heard: bus.published_id(),
        }
    }

    /// Waits for an event published since the last ring, then takes the whole burst as one
    /// wake-up. Once the bus is gone (shutdown) it never rings again and the timer keeps the
    /// drainer going.
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
