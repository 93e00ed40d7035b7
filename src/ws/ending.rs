//! How a session ends: the close frame it owes the peer, and whether the frames it had
//! already decided on go out first (shutdown finishes the send in flight, DESIGN invariant 6).
//! A refused connection gets its close frame as its only frame (invariant 3), and a peer that
//! stopped reading is dropped after [`CLOSE_GRACE`] instead of holding the task.

use super::protocol::{
    self, CLOSE_GOING_AWAY, CLOSE_INVALID_PAYLOAD, CLOSE_PROTOCOL_ERROR, CLOSE_SLOW_CONSUMER,
    CLOSE_TOO_BIG,
};
use crate::metrics::Metrics;
use futures_util::SinkExt;
use std::collections::VecDeque;
use std::time::Duration;
use tokio_tungstenite::tungstenite;
use warp::ws::{Message, WebSocket};

/// How long a closing socket may take to get its close frame out before it is dropped.
pub const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// How a session ends.
#[derive(Debug)]
pub struct Ending {
    /// The close frame to send, if any (none when the peer is already gone).
    close: Option<(u16, &'static str)>,
    /// Write the frames already decided on before closing (shutdown: finish the send in
    /// flight).
    drain: bool,
}

impl Ending {
    /// Close with `code` and `reason`, dropping frames not yet handed to the socket.
    pub fn close(code: u16, reason: &'static str) -> Self {
        Self {
            close: Some((code, reason)),
            drain: false,
        }
    }

    /// The peer is gone, or closed first: nothing more to send.
    pub fn silent() -> Self {
        Self {
            close: None,
            drain: false,
        }
    }

    /// The server is shutting down: send what was decided on, then 1001.
    pub fn shutdown() -> Self {
        Self {
            close: Some((CLOSE_GOING_AWAY, "server shutting down")),
            drain: true,
        }
    }

    /// Close with `code` and `reason` once the frames already decided on have gone out:
    /// an owner whose business moved away gets that event, then 4403 (DESIGN invariant 3).
    pub fn after_pending(code: u16, reason: &'static str) -> Self {
        Self {
            close: Some((code, reason)),
            drain: true,
        }
    }

    /// The peer took nothing for the send timeout: 4008, and it resumes from the store.
    pub fn slow_consumer() -> Self {
        Self::close(
            CLOSE_SLOW_CONSUMER,
            "slow consumer: reconnect with last_event_id",
        )
    }

    /// Whether this ending counts as a slow consumer in the metrics.
    pub fn is_slow_consumer(&self) -> bool {
        self.close.map(|(code, _)| code) == Some(CLOSE_SLOW_CONSUMER)
    }
}

/// Sends a close frame as the only frame of a refused connection.
pub async fn refuse(socket: &mut WebSocket, code: u16, reason: &'static str) {
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        let _ = socket.send(protocol::close(code, reason)).await;
        let _ = SinkExt::close(socket).await;
    })
    .await;
}

/// Carries out `ending`: what tungstenite already holds goes out first, then (on shutdown, or
/// an ending after pending frames) the frames the session had decided on, then the close
/// frame.
pub async fn close(
    socket: &mut WebSocket,
    pending: VecDeque<Message>,
    ending: Ending,
    metrics: &Metrics,
) {
    if ending.drain {
        for frame in pending {
            if socket.feed(frame).await.is_err() {
                return;
            }
            Metrics::inc(&metrics.ws_messages_sent_total);
        }
    }
    if let Some((code, reason)) = ending.close {
        let _ = socket.feed(protocol::close(code, reason)).await;
    }
    let _ = socket.flush().await;
    let _ = SinkExt::close(socket).await;
}

/// A write error: a full write buffer means a peer that does not read (cannot happen while
/// we stop feeding at a blocked write, but memory stays bounded either way); anything else
/// means the peer is gone.
pub fn on_write_error(error: &warp::Error) -> Ending {
    if matches!(cause(error), Some(tungstenite::Error::WriteBufferFull(_))) {
        Ending::slow_consumer()
    } else {
        Ending::silent()
    }
}

/// A read error: an oversized message is answered with 1009, text that is not UTF-8 with
/// 1007, a frame that breaks the protocol with 1002; anything else means the peer is gone.
pub fn on_read_error(error: &warp::Error) -> Ending {
    use tungstenite::error::ProtocolError;
    match cause(error) {
        Some(tungstenite::Error::Capacity(_)) => {
            Ending::close(CLOSE_TOO_BIG, "message too big (64 KiB at most)")
        }
        Some(tungstenite::Error::Utf8(_)) => {
            Ending::close(CLOSE_INVALID_PAYLOAD, "text frames must be UTF-8")
        }
        // The peer dropped the connection, or already closed it: nobody to tell.
        Some(tungstenite::Error::Protocol(
            ProtocolError::ResetWithoutClosingHandshake | ProtocolError::ReceivedAfterClosing,
        )) => Ending::silent(),
        Some(tungstenite::Error::Protocol(_)) => {
            Ending::close(CLOSE_PROTOCOL_ERROR, "WebSocket protocol error")
        }
        _ => Ending::silent(),
    }
}

/// The tungstenite error inside warp's.
fn cause(error: &warp::Error) -> Option<&tungstenite::Error> {
    std::error::Error::source(error).and_then(|source| source.downcast_ref())
}
