//! The write pump of one socket: on each wake-up of its session it hands tungstenite every
//! frame that is ready, up to a batch, and flushes once; and it drives a pending flush and the
//! socket's read side while the session waits.
//!
//! It asks for frames only while the socket can take them: once a write would block, or a
//! flush is pending, it stops, and the frames wait where they are (the session's few control
//! frames, the store, or the bus's shared ring) rather than in a queue of this socket's. So
//! tungstenite holds at most its write buffer plus one frame (DESIGN invariant 5). The pump
//! does not know where frames come from.

use super::ending::{on_write_error, Ending};
use super::wake::WakeFlag;
use crate::metrics::Metrics;
use futures_util::{SinkExt, StreamExt};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Instant;
use warp::ws::{Message, WebSocket};

/// Most bytes tungstenite may hold unsent for one socket.
pub const MAX_WRITE_BUFFER_BYTES: usize = 512 * 1024;

/// What the socket did while the session waited on it.
pub enum SocketIo {
    /// A pending flush completed: everything written so far is with the kernel.
    Flushed,
    /// A client frame, a read error, or the end of the stream.
    Read(Option<Result<Message, warp::Error>>),
    /// A write failed: the peer is gone.
    Gone,
}

/// One socket's write state.
pub struct Pump {
    /// Frames written per wake-up at most (`--ws-frames-per-wake`), so one socket's backlog
    /// does not hold a worker thread.
    batch: u64,
    /// A flush (or a write that would block) is pending on the socket: take no more frames.
    flushing: bool,
    /// Frames handed to tungstenite since the last completed flush.
    unflushed: u64,
    /// Since when the socket has been blocked while frames wait for it (the send timeout).
    stalled_since: Option<Instant>,
    /// Whether the socket's read side signalled: a wake-up for a bus event does not run
    /// tungstenite's read path.
    readable: WakeFlag,
    metrics: Arc<Metrics>,
}

impl Pump {
    /// A pump writing at most `frames_per_wake` frames per wake-up (at least one).
    pub fn new(frames_per_wake: usize, metrics: Arc<Metrics>) -> Self {
        Self {
            batch: u64::try_from(frames_per_wake.max(1)).unwrap_or(u64::MAX),
            flushing: false,
            unflushed: 0,
            stalled_since: None,
            readable: WakeFlag::new(),
            metrics,
        }
    }

    /// Writes the frames `next` yields, up to one batch or until the socket would block, then
    /// flushes once. Returns whether the batch filled up (more may be ready).
    pub fn write_ready(
        &mut self,
        cx: &mut Context<'_>,
        socket: &mut WebSocket,
        mut next: impl FnMut() -> Result<Option<Message>, Ending>,
    ) -> Result<bool, Ending> {
        let mut fed = 0u64;
        let mut more = false;
        while !self.flushing {
            if fed == self.batch {
                more = true;
                break;
            }
            // Ready unless an earlier write would have blocked; then it retries that write.
            match socket.poll_ready_unpin(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(_)) => return Err(Ending::silent()),
                Poll::Pending => {
                    self.flushing = true;
                    break;
                }
            }
            let Some(frame) = next()? else {
                break;
            };
            socket
                .start_send_unpin(frame)
                .map_err(|e| on_write_error(&e))?;
            fed += 1;
        }
        self.unflushed += fed;
        if self.unflushed > 0 && !self.flushing {
            match socket.poll_flush_unpin(cx) {
                Poll::Ready(Ok(())) => self.flushed(),
                Poll::Ready(Err(_)) => return Err(Ending::silent()),
                Poll::Pending => self.flushing = true,
            }
        }
        Ok(more)
    }

    /// When the send timeout runs out, if the socket is blocked. `frames_waiting` says whether
    /// anything waits for it (control frames, or a replay); an idle socket never stalls.
    pub fn stall_deadline(&mut self, frames_waiting: bool, timeout: Duration) -> Option<Instant> {
        if self.flushing && frames_waiting {
            self.stalled_since.get_or_insert_with(Instant::now);
        }
        self.stalled_since.map(|since| since + timeout)
    }

    /// Drives a pending flush, and reads the client if `may_read` (there is room for a reply).
    pub fn poll_socket(
        &mut self,
        cx: &mut Context<'_>,
        socket: &mut WebSocket,
        may_read: bool,
    ) -> Poll<SocketIo> {
        if self.flushing {
            match socket.poll_flush_unpin(cx) {
                Poll::Ready(Ok(())) => {
                    self.flushed();
                    return Poll::Ready(SocketIo::Flushed);
                }
                Poll::Ready(Err(_)) => return Poll::Ready(SocketIo::Gone),
                Poll::Pending => {}
            }
        }
        if may_read {
            if let Poll::Ready(frame) = self.readable.poll(cx, |cx| socket.poll_next_unpin(cx)) {
                return Poll::Ready(SocketIo::Read(frame));
            }
        }
        Poll::Pending
    }

    /// Everything handed to tungstenite is with the kernel: the peer is taking frames.
    fn flushed(&mut self) {
        self.flushing = false;
        self.stalled_since = None;
        self.metrics
            .ws_messages_sent_total
            .fetch_add(self.unflushed, Ordering::Relaxed);
        self.unflushed = 0;
    }
}
