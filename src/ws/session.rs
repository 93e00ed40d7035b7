//! One WebSocket connection: authenticate, authorize the channel, then one `select!` over
//! client frames, bus events, user notices, the ping tick, token expiry and shutdown.
//!
//! Outgoing frames go through a bounded queue to a writer task that writes every queued frame
//! before one flush. A full queue holds the session back while later events wait in the bus's
//! shared ring (and, past it, in the store); a client that takes no frame for the send timeout
//! is closed with 4008 and resumes from the store on reconnect. Nothing is ever buffered
//! without limit (DESIGN invariant 5).

use super::protocol::{
    self, ClientMessage, ClientMessageError, CLOSE_FORBIDDEN, CLOSE_GOING_AWAY, CLOSE_NOT_FOUND,
    CLOSE_SLOW_CONSUMER, CLOSE_TOO_BIG, CLOSE_UNAUTHENTICATED, CLOSE_UNSUPPORTED_DATA,
};
use super::ChannelRequest;
use crate::api::filters::Caller;
use crate::api::AppState;
use crate::bus::Published;
use crate::domain::{EventKind, Role, Timestamp};
use crate::metrics::Metrics;
use crate::store::Visibility;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use uuid::Uuid;
use warp::ws::{Message, WebSocket};

/// Most bytes tungstenite may hold unsent for one socket.
pub const MAX_WRITE_BUFFER_BYTES: usize = 512 * 1024;
/// Events read from the store per step of a replay (bounds a replay's memory).
const REPLAY_CHUNK: usize = 256;
/// How long the writer may take to get a close frame out before the socket is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// Stands in for "never" where a deadline would overflow the clock (about 30 years).
const FAR_FUTURE: Duration = Duration::from_secs(30 * 365 * 24 * 3600);

/// What the client asked for in the URL.
#[derive(Debug)]
pub struct ConnectParams {
    channel: ChannelRequest,
    token: Option<String>,
    last_event_id: Option<String>,
    epoch: Option<String>,
}

impl ConnectParams {
    /// Takes `token`, `last_event_id` and `epoch` from the query.
    pub fn from_query(channel: ChannelRequest, query: &HashMap<String, String>) -> Self {
        Self {
            channel,
            token: query.get("token").cloned(),
            last_event_id: query.get("last_event_id").cloned(),
            epoch: query.get("epoch").cloned(),
        }
    }
}

/// How a session ends, as the writer should carry it out.
#[derive(Debug)]
struct Ending {
    /// The close frame to send, if any (none when the peer is already gone).
    close: Option<(u16, &'static str)>,
    /// Write what is already queued before closing (shutdown: finish the send in flight).
    drain: bool,
}

impl Ending {
    fn close(code: u16, reason: &'static str) -> Self {
        Self {
            close: Some((code, reason)),
            drain: false,
        }
    }

    fn silent() -> Self {
        Self {
            close: None,
            drain: false,
        }
    }

    fn shutdown() -> Self {
        Self {
            close: Some((CLOSE_GOING_AWAY, "server shutting down")),
            drain: true,
        }
    }
}

/// Runs one connection to its end.
pub async fn run(state: AppState, params: ConnectParams, socket: WebSocket) {
    let (mut sink, stream) = socket.split();
    // Invariant 3: nothing is sent before the close frame of a refused connection.
    let caller = match params
        .token
        .as_deref()
        .map(|token| state.authenticate_token(token))
    {
        Some(Ok(caller)) => caller,
        _ => {
            refuse(&mut sink, CLOSE_UNAUTHENTICATED, "invalid or expired token").await;
            return;
        }
    };
    let (channel_name, business) = match authorize(&state, &caller, &params.channel) {
        Ok(channel) => channel,
        Err((code, reason)) => {
            refuse(&mut sink, code, reason).await;
            return;
        }
    };
    // Subscribe before reading the watermark or replaying, or events fall in the gap
    // (DESIGN invariant 2).
    let events = state.bus.subscribe();
    let notices = state.bus.subscribe_notices();
    // The durable watermark, not the bus's published one: the bus publishes a moment after
    // the writer answers, and an event whose write was already answered 2xx is the past for
    // a socket opened afterwards (replayed on resume, skipped when it arrives live), never news.
    let newest = state.writer.durable_event_id();

    let metrics = state.metrics.clone();
    metrics.ws_connections.fetch_add(1, Ordering::Relaxed);
    let (out, out_rx) = mpsc::channel(state.config.ws_send_queue);
    let (end_tx, end_rx) = oneshot::channel();
    let mut writer = tokio::spawn(write_loop(sink, out_rx, end_rx, metrics.clone()));

    let mut session = Session {
        visibility: match business {
            Some(id) => Visibility::Businesses(vec![id]),
            None => Visibility::All,
        },
        business,
        state,
        caller,
        out,
        cursor: newest,
    };
    let ending = session
        .run(
            channel_name,
            params.last_event_id,
            params.epoch,
            newest,
            stream,
            events,
            notices,
        )
        .await;
    if ending.close.map(|(code, _)| code) == Some(CLOSE_SLOW_CONSUMER) {
        Metrics::inc(&metrics.ws_slow_consumers_total);
    }
    let _ = end_tx.send(ending);
    drop(session);
    // A peer that stopped reading cannot take a close frame; drop it after the grace time.
    if tokio::time::timeout(CLOSE_GRACE, &mut writer)
        .await
        .is_err()
    {
        writer.abort();
    }
    metrics.ws_connections.fetch_sub(1, Ordering::Relaxed);
}

/// Sends a close frame as the only frame of a refused connection.
async fn refuse(sink: &mut SplitSink<WebSocket, Message>, code: u16, reason: &'static str) {
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        let _ = sink.send(protocol::close(code, reason)).await;
        let _ = sink.close().await;
    })
    .await;
}

/// The channel's name and, for a business channel, its id — or the close code refusing it.
fn authorize(
    state: &AppState,
    caller: &Caller,
    request: &ChannelRequest,
) -> Result<(String, Option<Uuid>), (u16, &'static str)> {
    let admin = caller.user.role == Role::SuperAdmin;
    match request {
        ChannelRequest::Dashboard if admin => Ok(("dashboard".into(), None)),
        ChannelRequest::Dashboard => Err((CLOSE_FORBIDDEN, "the dashboard is for super admins")),
        ChannelRequest::Business(raw) => {
            let business = Uuid::parse_str(raw)
                .ok()
                .and_then(|id| state.store.business(id).ok().flatten());
            match business {
                Some(b) if admin || b.owner_email == caller.user.email => {
                    Ok((format!("business:{}", b.id), Some(b.id)))
                }
                // Owners learn nothing about businesses that are not theirs.
                _ if !admin => Err((CLOSE_FORBIDDEN, "not your business")),
                _ => Err((CLOSE_NOT_FOUND, "no such business")),
            }
        }
    }
}

struct Session {
    state: AppState,
    caller: Caller,
    /// `None` for the dashboard (every event), else the one business this channel follows.
    business: Option<Uuid>,
    visibility: Visibility,
    out: mpsc::Sender<Message>,
    /// The newest event id this session has handled (sent or filtered out).
    cursor: u64,
}

impl Session {
    #[allow(clippy::too_many_arguments)]
    async fn run(
        &mut self,
        channel_name: String,
        requested: Option<String>,
        epoch: Option<String>,
        newest: u64,
        mut stream: SplitStream<WebSocket>,
        mut events: tokio::sync::broadcast::Receiver<Arc<Published>>,
        mut notices: tokio::sync::broadcast::Receiver<Arc<crate::bus::UserNotice>>,
    ) -> Ending {
        let config = self.state.config.clone();
        let established = protocol::control_frame(
            "connection_established",
            json!({
                "channel": channel_name,
                "user": {"id": self.caller.user.id, "email": self.caller.user.email, "role": self.caller.user.role},
                "last_event_id": newest,
                "epoch": self.state.store.epoch(),
                "expires_at": Timestamp::from_micros(self.caller.expires_at.saturating_mul(1_000_000)),
            }),
        );
        if let Err(ending) = self.send(established).await {
            return ending;
        }
        if let Err(ending) = self.resume(requested, epoch, newest).await {
            return ending;
        }

        let shutdown = self.state.shutdown.clone();
        let mut ping = tokio::time::interval_at(
            Instant::now() + config.ws_ping_interval,
            config.ws_ping_interval,
        );
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_heard = Instant::now();
        let expiry = tokio::time::sleep_until(self.expiry_instant());
        tokio::pin!(expiry);

        loop {
            let step = tokio::select! {
                biased;
                () = shutdown.cancelled() => Err(Ending::shutdown()),
                () = &mut expiry => Err(Ending::close(CLOSE_UNAUTHENTICATED, "token expired")),
                frame = stream.next() => {
                    last_heard = Instant::now();
                    match frame {
                        Some(Ok(message)) => self.on_message(message, &mut expiry).await,
                        Some(Err(error)) => Err(on_read_error(&error)),
                        None => Err(Ending::silent()),
                    }
                }
                event = events.recv() => match event {
                    Ok(event) => self.on_event(&event).await,
                    // Lag is not an error: catch up from the store (DESIGN "ws").
                    Err(RecvError::Lagged(_)) => self.catch_up().await,
                    Err(RecvError::Closed) => Err(Ending::close(CLOSE_GOING_AWAY, "server shutting down")),
                },
                notice = notices.recv() => match notice {
                    Ok(notice) if notice.user_id == self.caller.user.id => self.send(notice.frame.clone()).await,
                    _ => Ok(()),
                },
                _ = ping.tick() => {
                    if last_heard.elapsed() >= config.ws_idle_timeout {
                        Err(Ending::close(CLOSE_GOING_AWAY, "idle timeout"))
                    } else {
                        self.send(Message::ping(Vec::new())).await
                    }
                }
            };
            if let Err(ending) = step {
                return ending;
            }
        }
    }

    /// When the caller's token expires, on the runtime's clock.
    fn expiry_instant(&self) -> Instant {
        // In microseconds: whole seconds would keep an expired token's socket open for up to
        // a second (a token is expired once `exp` <= now, API.md).
        let left = self
            .caller
            .expires_at
            .saturating_mul(1_000_000)
            .saturating_sub(Timestamp::now().as_micros());
        let left = Duration::from_micros(u64::try_from(left).unwrap_or(0));
        // `app token --ttl` can mint a token that outlives any clock.
        Instant::now()
            .checked_add(left)
            .unwrap_or_else(|| Instant::now() + FAR_FUTURE)
    }

    /// Handles `last_event_id`/`epoch`: replay what was missed, or tell the client to resync.
    async fn resume(
        &mut self,
        requested: Option<String>,
        epoch: Option<String>,
        newest: u64,
    ) -> Result<(), Ending> {
        let Some(requested) = requested else {
            return Ok(());
        };
        let same_epoch = epoch
            .as_deref()
            .is_none_or(|e| e == self.state.store.epoch());
        match requested.trim().parse::<u64>() {
            Ok(after) if same_epoch && after <= newest => {
                self.cursor = after;
                self.catch_up_to(newest).await
            }
            // An unknown position (another epoch, a future id, garbage): never a partial replay.
            _ => self.resync(newest).await,
        }
    }

    /// Catches up from the store after the broadcast receiver lagged.
    async fn catch_up(&mut self) -> Result<(), Ending> {
        let newest = self.state.bus.published_id();
        self.catch_up_to(newest).await
    }

    /// Sends every visible event in `(cursor, up_to]` from the store, or `resync_required` when
    /// part of that range is no longer retained.
    async fn catch_up_to(&mut self, up_to: u64) -> Result<(), Ending> {
        while self.cursor < up_to {
            let chunk = self
                .state
                .store
                .replay_after(&self.visibility, self.cursor, up_to, REPLAY_CHUNK)
                .map_err(|error| {
                    tracing::error!(%error, "replay failed");
                    Ending::close(CLOSE_GOING_AWAY, "server error")
                })?;
            // Pruned before (or while) we read: what went out so far is a gap-free prefix, and
            // the client refetches the rest over REST (invariant 2: never a gap).
            let Some(chunk) = chunk else {
                return self.resync(up_to).await;
            };
            let Some(last) = chunk.last().map(|event| event.id) else {
                break;
            };
            for event in chunk {
                self.send(Message::text(event.frame)).await?;
            }
            self.cursor = last;
        }
        self.cursor = self.cursor.max(up_to);
        Ok(())
    }

    async fn resync(&mut self, newest: u64) -> Result<(), Ending> {
        self.cursor = newest;
        self.send(protocol::control_frame(
            "resync_required",
            json!({"epoch": self.state.store.epoch(), "last_event_id": newest}),
        ))
        .await
    }

    /// A live event from the bus.
    async fn on_event(&mut self, event: &Published) -> Result<(), Ending> {
        if event.id <= self.cursor {
            return Ok(()); // already replayed
        }
        if event.id > self.cursor + 1 {
            // Cannot happen while subscribed, but a gap must never reach the client.
            self.catch_up_to(event.id - 1).await?;
        }
        self.cursor = event.id;
        let visible = self.business.is_none_or(|id| id == event.business_id);
        if !visible {
            return Ok(());
        }
        if event.kind == EventKind::BusinessUpdated && self.caller.user.role != Role::SuperAdmin {
            self.check_still_owner()?;
        }
        self.send(event.frame.clone()).await
    }

    /// An owner whose business was handed to someone else loses the channel (invariant 3).
    fn check_still_owner(&self) -> Result<(), Ending> {
        let Some(id) = self.business else {
            return Ok(());
        };
        match self.state.store.business(id) {
            Ok(Some(b)) if b.owner_email == self.caller.user.email => Ok(()),
            _ => Err(Ending::close(CLOSE_FORBIDDEN, "no longer your business")),
        }
    }

    async fn on_message(
        &mut self,
        message: Message,
        expiry: &mut std::pin::Pin<&mut tokio::time::Sleep>,
    ) -> Result<(), Ending> {
        if message.is_close() {
            return Err(Ending::silent());
        }
        if message.is_binary() {
            return Err(Ending::close(
                CLOSE_UNSUPPORTED_DATA,
                "binary frames are not supported",
            ));
        }
        let Ok(text) = message.to_str() else {
            return Ok(()); // ping/pong frames: tungstenite answers pings itself
        };
        match protocol::parse_client_message(text) {
            Ok(ClientMessage::Ping) => self.send(protocol::pong()).await,
            Ok(ClientMessage::Auth { token }) => match self.state.authenticate_token(&token) {
                Ok(fresh) if fresh.user.id == self.caller.user.id => {
                    self.caller = fresh;
                    expiry.as_mut().reset(self.expiry_instant());
                    let expires_at =
                        Timestamp::from_micros(self.caller.expires_at.saturating_mul(1_000_000));
                    self.send(protocol::control_frame(
                        "auth_ok",
                        json!({"expires_at": expires_at}),
                    ))
                    .await
                }
                _ => {
                    self.send(protocol::error_frame(
                        "bad_token",
                        "the token is invalid, expired or another user's; the connection is unchanged",
                    ))
                    .await
                }
            },
            Err(ClientMessageError::Bad(reason)) => {
                self.send(protocol::error_frame("bad_message", &reason)).await
            }
            Err(ClientMessageError::UnknownType(reason)) => {
                self.send(protocol::error_frame("unknown_type", &reason)).await
            }
        }
    }

    /// Queues a frame for the writer task.
    ///
    /// A full queue is back-pressure, not yet a verdict: the frame waits for room while later
    /// events wait in the bus's shared ring, and a receiver that falls past the ring catches
    /// up from the store. So a burst larger than the queue, or a writer task not scheduled
    /// yet, never closes a reader that keeps up. A peer that takes no frame for
    /// `ws_send_timeout` is a slow consumer (4008); memory stays bounded either way
    /// (invariant 5).
    async fn send(&self, message: Message) -> Result<(), Ending> {
        let message = match self.out.try_send(message) {
            Ok(()) => return Ok(()),
            Err(mpsc::error::TrySendError::Closed(_)) => return Err(Ending::silent()),
            Err(mpsc::error::TrySendError::Full(message)) => message,
        };
        let room = tokio::time::timeout(self.state.config.ws_send_timeout, self.out.send(message));
        tokio::select! {
            biased;
            () = self.state.shutdown.cancelled() => Err(Ending::shutdown()),
            () = tokio::time::sleep_until(self.expiry_instant()) => {
                Err(Ending::close(CLOSE_UNAUTHENTICATED, "token expired"))
            }
            sent = room => match sent {
                Ok(Ok(())) => Ok(()),
                Ok(Err(_)) => Err(Ending::silent()),
                Err(_) => Err(Ending::close(
                    CLOSE_SLOW_CONSUMER,
                    "slow consumer: reconnect with last_event_id",
                )),
            },
        }
    }
}

/// A read error: an oversized message is answered with 1009; anything else means the peer
/// is gone.
fn on_read_error(error: &warp::Error) -> Ending {
    let source = std::error::Error::source(error);
    let too_big = source
        .and_then(|source| source.downcast_ref::<tokio_tungstenite::tungstenite::Error>())
        .is_some_and(|inner| matches!(inner, tokio_tungstenite::tungstenite::Error::Capacity(_)));
    if too_big {
        Ending::close(CLOSE_TOO_BIG, "message too big (64 KiB at most)")
    } else {
        Ending::silent()
    }
}

/// Writes queued frames, all that are ready before one flush, until the session ends.
async fn write_loop(
    mut sink: SplitSink<WebSocket, Message>,
    mut queue: mpsc::Receiver<Message>,
    mut end: oneshot::Receiver<Ending>,
    metrics: Arc<Metrics>,
) {
    loop {
        tokio::select! {
            biased;
            ending = &mut end => {
                let ending = ending.unwrap_or_else(|_| Ending::silent());
                if ending.drain {
                    while let Ok(message) = queue.try_recv() {
                        if sink.feed(message).await.is_err() {
                            return;
                        }
                        Metrics::inc(&metrics.ws_messages_sent_total);
                    }
                }
                if let Some((code, reason)) = ending.close {
                    let _ = sink.feed(protocol::close(code, reason)).await;
                }
                let _ = sink.flush().await;
                let _ = sink.close().await;
                return;
            }
            message = queue.recv() => {
                let Some(message) = message else { return };
                if sink.feed(message).await.is_err() {
                    return;
                }
                let mut sent = 1;
                while let Ok(message) = queue.try_recv() {
                    if sink.feed(message).await.is_err() {
                        return;
                    }
                    sent += 1;
                }
                if sink.flush().await.is_err() {
                    return;
                }
                metrics.ws_messages_sent_total.fetch_add(sent, Ordering::Relaxed);
            }
        }
    }
}
