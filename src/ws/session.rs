//! One WebSocket connection, one task: authenticate, authorize the channel, then a loop that
//! owns both halves of the socket. Each wake-up writes every frame that is ready — control
//! frames, replay chunks from the store, live events from the bus — and flushes once; then
//! one `select!` waits for shutdown, token expiry, the send timeout, the socket (a client
//! frame, or a pending flush completing), a bus event, a user notice or the ping tick.
//!
//! There is no per-socket queue: live events are taken from the bus's shared, bounded ring
//! only while the socket can accept more. A socket whose flush is pending takes at most one
//! more event; the rest wait in the ring, and a receiver that falls past the ring catches up
//! from the store in chunks. A peer that takes nothing for the send timeout while frames wait
//! for it is closed with 4008 and resumes from the store on reconnect. Nothing is buffered
//! without limit (DESIGN invariant 5): tungstenite holds at most its write buffer plus one
//! frame (we stop feeding when a write would block), and the session at most one replay chunk
//! and [`MAX_PENDING_FRAMES`] control frames.

use super::protocol::{
    self, ClientMessage, ClientMessageError, ErrorCode, CLOSE_FORBIDDEN, CLOSE_GOING_AWAY,
    CLOSE_NOT_FOUND, CLOSE_SLOW_CONSUMER, CLOSE_TOO_BIG, CLOSE_UNAUTHENTICATED,
    CLOSE_UNSUPPORTED_DATA,
};
use super::wake::WakeFlag;
use super::ChannelRequest;
use crate::api::filters::Caller;
use crate::api::AppState;
use crate::bus::{Published, UserNotice};
use crate::domain::{Event, EventKind, Role, Timestamp};
use crate::metrics::Metrics;
use crate::store::Visibility;
use futures_util::{SinkExt, Stream, StreamExt};
use std::collections::{HashMap, VecDeque};
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::broadcast::Receiver;
use tokio::time::{Instant, Sleep};
use uuid::Uuid;
use warp::ws::{Message, WebSocket};

/// Most bytes tungstenite may hold unsent for one socket.
pub const MAX_WRITE_BUFFER_BYTES: usize = 512 * 1024;
/// Events read from the store per step of a replay (bounds a replay's memory).
const REPLAY_CHUNK: usize = 256;
/// Control frames (replies, pings, notices) that may wait for a blocked socket; past them the
/// session stops reading the client, so a client that sends without reading gains nothing.
const MAX_PENDING_FRAMES: usize = 16;
/// How long a closing socket may take to get its close frame out before it is dropped.
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

/// How a session ends.
#[derive(Debug)]
struct Ending {
    /// The close frame to send, if any (none when the peer is already gone).
    close: Option<(u16, &'static str)>,
    /// Write the frames already decided on before closing (shutdown: finish the send in
    /// flight).
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

    fn slow_consumer() -> Self {
        Self::close(
            CLOSE_SLOW_CONSUMER,
            "slow consumer: reconnect with last_event_id",
        )
    }
}

/// Runs one connection to its end.
pub async fn run(state: AppState, params: ConnectParams, mut socket: WebSocket) {
    // Invariant 3: nothing is sent before the close frame of a refused connection.
    let caller = match params
        .token
        .as_deref()
        .map(|token| state.authenticate_token(token))
    {
        Some(Ok(caller)) => caller,
        _ => {
            refuse(
                &mut socket,
                CLOSE_UNAUTHENTICATED,
                "invalid or expired token",
            )
            .await;
            return;
        }
    };
    let (channel_name, business) = match authorize(&state, &caller, &params.channel) {
        Ok(channel) => channel,
        Err((code, reason)) => {
            refuse(&mut socket, code, reason).await;
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
    let mut session = Session {
        visibility: match business {
            Some(id) => Visibility::Businesses(vec![id]),
            None => Visibility::All,
        },
        business,
        batch: u64::try_from(state.config.ws_frames_per_wake.max(1)).unwrap_or(u64::MAX),
        state,
        caller,
        cursor: newest,
        pending: VecDeque::new(),
        catching_up: None,
        backlog: Vec::new().into_iter(),
        flushing: false,
        unflushed: 0,
        stalled_since: None,
        readable: WakeFlag::new(),
    };
    let ending = session
        .run(
            &mut socket,
            channel_name,
            params.last_event_id,
            params.epoch,
            newest,
            events,
            notices,
        )
        .await;
    if ending.close.map(|(code, _)| code) == Some(CLOSE_SLOW_CONSUMER) {
        Metrics::inc(&metrics.ws_slow_consumers_total);
    }
    let pending = std::mem::take(&mut session.pending);
    drop(session);
    // A peer that stopped reading cannot take a close frame; drop it after the grace time.
    let _ = tokio::time::timeout(CLOSE_GRACE, close(&mut socket, pending, ending, &metrics)).await;
    metrics.ws_connections.fetch_sub(1, Ordering::Relaxed);
}

/// Sends a close frame as the only frame of a refused connection.
async fn refuse(socket: &mut WebSocket, code: u16, reason: &'static str) {
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        let _ = socket.send(protocol::close(code, reason)).await;
        let _ = SinkExt::close(socket).await;
    })
    .await;
}

/// Carries out `ending`: what tungstenite already holds goes out first, then (on shutdown)
/// the frames the session had decided on, then the close frame.
async fn close(
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

/// When the caller's token expires, as the frames show it.
fn expires_at(caller: &Caller) -> Timestamp {
    Timestamp::from_micros(caller.expires_at.saturating_mul(1_000_000))
}

/// What the socket did while the session waited on it.
enum SocketIo {
    /// A pending flush completed: everything written so far is with the kernel.
    Flushed,
    /// A client frame, a read error, or the end of the stream.
    Read(Option<Result<Message, warp::Error>>),
    /// A write failed: the peer is gone.
    Gone,
}

struct Session {
    state: AppState,
    caller: Caller,
    /// `None` for the dashboard (every event), else the one business this channel follows.
    business: Option<Uuid>,
    visibility: Visibility,
    /// Frames written per wake-up at most (`--ws-frames-per-wake`), so one socket's backlog does
    /// not hold a worker thread.
    batch: u64,
    /// The newest event id this session has handled (sent, queued in `backlog`/`pending`, or
    /// filtered out).
    cursor: u64,
    /// Frames decided on but not yet handed to tungstenite, in order: control frames, replies,
    /// and at most one live event taken while the socket was blocked.
    pending: VecDeque<Message>,
    /// Replaying from the store up to this id (resume, or after the receiver lagged).
    catching_up: Option<u64>,
    /// The current replay chunk, sent before anything else from the store or the bus.
    backlog: std::vec::IntoIter<Event>,
    /// A flush (or a write that would block) is pending on the socket: take no more events.
    flushing: bool,
    /// Frames handed to tungstenite since the last completed flush.
    unflushed: u64,
    /// Since when the socket has been blocked while frames wait for it (the send timeout).
    stalled_since: Option<Instant>,
    /// Whether the socket's read side signalled: a wake-up for a bus event does not run
    /// tungstenite's read path.
    readable: WakeFlag,
}

impl Session {
    #[allow(clippy::too_many_arguments)]
    async fn run(
        &mut self,
        socket: &mut WebSocket,
        channel_name: String,
        requested: Option<String>,
        epoch: Option<String>,
        newest: u64,
        mut events: Receiver<Arc<Published>>,
        notices: Receiver<Arc<UserNotice>>,
    ) -> Ending {
        let config = self.state.config.clone();
        self.pending
            .push_back(protocol::connection_established(&protocol::Hello {
                channel: &channel_name,
                epoch: self.state.store.epoch(),
                expires_at: expires_at(&self.caller),
                last_event_id: newest,
                user: protocol::HelloUser {
                    email: &self.caller.user.email,
                    id: self.caller.user.id,
                    role: self.caller.user.role,
                },
            }));
        self.resume(requested, epoch, newest);

        // Sources that rarely fire are polled only once they signalled (`WakeFlag`), through
        // futures that live as long as the session, so they stay registered in between.
        let cancelled = self.state.shutdown.clone().cancelled_owned();
        tokio::pin!(cancelled);
        let cancel_flag = WakeFlag::new();
        let notices = futures_util::stream::unfold(notices, |mut notices| async move {
            let notice = notices.recv().await;
            Some((notice, notices))
        });
        tokio::pin!(notices);
        let notice_flag = WakeFlag::new();
        let mut notices_open = true;
        let mut ping = tokio::time::interval_at(
            Instant::now() + config.ws_ping_interval,
            config.ws_ping_interval,
        );
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_heard = Instant::now();
        let expiry = tokio::time::sleep_until(self.expiry_instant());
        tokio::pin!(expiry);

        loop {
            let more =
                match poll_fn(|cx| Poll::Ready(self.write_ready(cx, socket, &mut events))).await {
                    Ok(more) => more,
                    Err(ending) => return ending,
                };
            if self.flushing && (!self.pending.is_empty() || self.catching_up.is_some()) {
                self.stalled_since.get_or_insert_with(Instant::now);
            }
            let stall_deadline = self
                .stalled_since
                .map(|since| since + config.ws_send_timeout);
            let may_read = self.pending.len() < MAX_PENDING_FRAMES;
            // The bus's ring is the queue: take an event only when there is room for it.
            let may_take = !more && self.pending.is_empty() && self.catching_up.is_none();
            let step = tokio::select! {
                biased;
                () = poll_fn(|cx| cancel_flag.poll(cx, |cx| cancelled.as_mut().poll(cx))) => {
                    Err(Ending::shutdown())
                }
                () = &mut expiry => Err(Ending::close(CLOSE_UNAUTHENTICATED, "token expired")),
                () = tokio::time::sleep_until(stall_deadline.unwrap_or_else(Instant::now)),
                    if stall_deadline.is_some() => Err(Ending::slow_consumer()),
                io = poll_fn(|cx| self.poll_socket(cx, socket, may_read)) => match io {
                    SocketIo::Flushed => Ok(()),
                    SocketIo::Gone => Err(Ending::silent()),
                    SocketIo::Read(frame) => {
                        last_heard = Instant::now();
                        match frame {
                            Some(Ok(message)) => self.on_message(message, &mut expiry),
                            Some(Err(error)) => Err(on_read_error(&error)),
                            None => Err(Ending::silent()),
                        }
                    }
                },
                event = events.recv(), if may_take => match event {
                    Ok(event) => self.on_event(&event).map(|frame| self.pending.extend(frame)),
                    // Lag is not an error: catch up from the store (DESIGN "ws").
                    Err(RecvError::Lagged(_)) => {
                        self.lagged();
                        Ok(())
                    }
                    Err(RecvError::Closed) => Err(Ending::close(CLOSE_GOING_AWAY, "server shutting down")),
                },
                notice = poll_fn(|cx| notice_flag.poll(cx, |cx| notices.as_mut().poll_next(cx))),
                    if may_read && notices_open =>
                {
                    match notice {
                        Some(Ok(notice)) if notice.user_id == self.caller.user.id => {
                            self.pending.push_back(notice.frame.clone());
                        }
                        // Missed notices are not replayed (read receipts are best effort).
                        Some(Ok(_) | Err(RecvError::Lagged(_))) => {}
                        Some(Err(RecvError::Closed)) | None => notices_open = false,
                    }
                    Ok(())
                },
                _ = ping.tick() => {
                    if last_heard.elapsed() >= config.ws_idle_timeout {
                        Err(Ending::close(CLOSE_GOING_AWAY, "idle timeout"))
                    } else {
                        if may_read {
                            self.pending.push_back(Message::ping(Vec::new()));
                        }
                        Ok(())
                    }
                },
                // A full batch went out: let other tasks run before the next one.
                () = tokio::task::yield_now(), if more => Ok(()),
            };
            if let Err(ending) = step {
                return ending;
            }
        }
    }

    /// Writes every frame that is ready, up to one batch, then flushes once. Returns whether
    /// the batch filled up (more may be ready).
    fn write_ready(
        &mut self,
        cx: &mut Context<'_>,
        socket: &mut WebSocket,
        events: &mut Receiver<Arc<Published>>,
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
            let Some(frame) = self.next_frame(events)? else {
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

    /// The next frame to write, in order: pending frames, the replay, then the bus.
    fn next_frame(
        &mut self,
        events: &mut Receiver<Arc<Published>>,
    ) -> Result<Option<Message>, Ending> {
        loop {
            if let Some(frame) = self.pending.pop_front() {
                return Ok(Some(frame));
            }
            if let Some(event) = self.backlog.next() {
                return Ok(Some(Message::text(event.frame)));
            }
            if let Some(up_to) = self.catching_up {
                self.refill(up_to)?;
                continue;
            }
            // Finding the ring empty takes its lock; the published id says so for free.
            if self.cursor >= self.state.bus.published_id() {
                return Ok(None);
            }
            match events.try_recv() {
                Ok(event) => {
                    if let Some(frame) = self.on_event(&event)? {
                        return Ok(Some(frame));
                    }
                }
                Err(TryRecvError::Empty) => return Ok(None),
                Err(TryRecvError::Lagged(_)) => self.lagged(),
                Err(TryRecvError::Closed) => {
                    return Err(Ending::close(CLOSE_GOING_AWAY, "server shutting down"))
                }
            }
        }
    }

    /// Drives a pending flush, and reads the client while there is room for a reply.
    fn poll_socket(
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
        self.state
            .metrics
            .ws_messages_sent_total
            .fetch_add(self.unflushed, Ordering::Relaxed);
        self.unflushed = 0;
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
    fn resume(&mut self, requested: Option<String>, epoch: Option<String>, newest: u64) {
        let Some(requested) = requested else {
            return;
        };
        let same_epoch = epoch
            .as_deref()
            .is_none_or(|e| e == self.state.store.epoch());
        match requested.trim().parse::<u64>() {
            Ok(after) if same_epoch && after <= newest => {
                self.cursor = after;
                self.catching_up = Some(newest);
            }
            // An unknown position (another epoch, a future id, garbage): never a partial replay.
            _ => self.resync(newest),
        }
    }

    /// The broadcast receiver lagged: catch up from the store.
    fn lagged(&mut self) {
        self.catching_up = Some(self.state.bus.published_id());
    }

    /// Loads the next chunk of visible events in `(cursor, up_to]` from the store, ends the
    /// catch-up when there is none, or sends `resync_required` when part of the range is no
    /// longer retained.
    fn refill(&mut self, up_to: u64) -> Result<(), Ending> {
        if self.cursor < up_to {
            let chunk = self
                .state
                .store
                .replay_after(&self.visibility, self.cursor, up_to, REPLAY_CHUNK)
                .map_err(|error| {
                    tracing::error!(%error, "replay failed");
                    Ending::close(CLOSE_GOING_AWAY, "server error")
                })?;
            match chunk {
                Some(chunk) => {
                    if let Some(last) = chunk.last().map(|event| event.id) {
                        self.cursor = last;
                        self.backlog = chunk.into_iter();
                        return Ok(());
                    }
                }
                // Pruned before (or while) we read: what went out so far is a gap-free
                // prefix, and the client refetches the rest over REST (invariant 2).
                None => self.resync(up_to),
            }
        }
        self.cursor = self.cursor.max(up_to);
        self.catching_up = None;
        // Give the chunk's memory back; an idle socket keeps none.
        self.backlog = Vec::new().into_iter();
        Ok(())
    }

    fn resync(&mut self, newest: u64) {
        self.cursor = newest;
        self.pending
            .push_back(protocol::resync_required(&protocol::Resync {
                epoch: self.state.store.epoch(),
                last_event_id: newest,
            }));
    }

    /// A live event from the bus: its shared frame, if this channel sends it.
    fn on_event(&mut self, event: &Published) -> Result<Option<Message>, Ending> {
        if event.id <= self.cursor {
            return Ok(None); // already replayed
        }
        if event.id > self.cursor + 1 {
            // Cannot happen while subscribed, but a gap must never reach the client: take
            // the missing ids and this one from the store (it is durable once published).
            self.catching_up = Some(event.id);
            return Ok(None);
        }
        self.cursor = event.id;
        let visible = self.business.is_none_or(|id| id == event.business_id);
        if !visible {
            return Ok(None);
        }
        if event.kind == EventKind::BusinessUpdated && self.caller.user.role != Role::SuperAdmin {
            self.check_still_owner()?;
        }
        Ok(Some(event.frame.clone()))
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

    /// A client frame: queues the reply, if any.
    fn on_message(&mut self, message: Message, expiry: &mut Pin<&mut Sleep>) -> Result<(), Ending> {
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
        let reply = match protocol::parse_client_message(text) {
            Ok(ClientMessage::Ping) => protocol::pong(),
            Ok(ClientMessage::Auth { token }) => match self.state.authenticate_token(&token) {
                Ok(fresh) if fresh.user.id == self.caller.user.id => {
                    self.caller = fresh;
                    expiry.as_mut().reset(self.expiry_instant());
                    protocol::auth_ok(expires_at(&self.caller))
                }
                _ => protocol::error_frame(
                    ErrorCode::BadToken,
                    "the token is invalid, expired or another user's; the connection is unchanged",
                ),
            },
            Err(ClientMessageError::Bad(reason)) => {
                protocol::error_frame(ErrorCode::BadMessage, &reason)
            }
            Err(ClientMessageError::UnknownType(reason)) => {
                protocol::error_frame(ErrorCode::UnknownType, &reason)
            }
        };
        self.pending.push_back(reply);
        Ok(())
    }
}

/// A write error: a full write buffer means a peer that does not read (cannot happen while
/// we stop feeding at a blocked write, but memory stays bounded either way); anything else
/// means the peer is gone.
fn on_write_error(error: &warp::Error) -> Ending {
    let source = std::error::Error::source(error);
    let full = source
        .and_then(|source| source.downcast_ref::<tokio_tungstenite::tungstenite::Error>())
        .is_some_and(|inner| {
            matches!(
                inner,
                tokio_tungstenite::tungstenite::Error::WriteBufferFull(_)
            )
        });
    if full {
        Ending::slow_consumer()
    } else {
        Ending::silent()
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
