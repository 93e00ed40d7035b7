//! One WebSocket connection, one task: authenticate, authorize the channel, then a loop that
//! owns both halves of the socket. Each wake-up writes every frame that is ready — control
//! frames, replay chunks from the store, live events from the bus — and flushes once
//! ([`Pump`]); then one `select!` waits for shutdown, token expiry, the send timeout, the
//! socket (a client frame, or a pending flush completing), a bus event, a user notice or the
//! ping tick. Which events go out, and when to replay or resync, is the [`Cursor`]'s call;
//! what a client frame does is [`client`]'s.
//!
//! There is no per-socket queue: live events are taken from the bus's shared, bounded ring
//! only while the socket can accept more. A socket whose flush is pending takes at most one
//! more event; the rest wait in the ring, and a receiver that falls past the ring catches up
//! from the store in chunks. A peer that takes nothing for the send timeout while frames wait
//! for it is closed with 4008 and resumes from the store on reconnect. Nothing is buffered
//! without limit (DESIGN invariant 5): tungstenite holds at most its write buffer plus one
//! frame (we stop feeding when a write would block), and the session at most one replay chunk
//! and [`MAX_PENDING_FRAMES`] control frames.

use super::client::{self, Action};
use super::cursor::{Cursor, Offer, Read, Replay, Resync};
use super::ending::{self, on_read_error, Ending, CLOSE_GRACE};
use super::protocol::{
    self, CLOSE_FORBIDDEN, CLOSE_GOING_AWAY, CLOSE_NOT_FOUND, CLOSE_UNAUTHENTICATED,
};
use super::pump::{Pump, SocketIo};
use super::wake::WakeFlag;
use super::ChannelRequest;
use crate::bus::{Notice, Published, UserNotice};
use crate::domain::{Audience, EventKind};
use crate::metrics::Metrics;
use crate::state::{AppState, Caller};
use crate::store::Visibility;
use futures_util::Stream;
use std::collections::{HashMap, VecDeque};
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Poll;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::broadcast::Receiver;
use tokio::time::{Instant, Sleep};
use uuid::Uuid;
use warp::ws::{Message, WebSocket};

/// Control frames (replies, pings, notices) that may wait for a blocked socket; past them the
/// session stops reading the client, so a client that sends without reading gains nothing.
const MAX_PENDING_FRAMES: usize = 16;

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

/// Runs one connection to its end.
pub async fn run(state: AppState, params: ConnectParams, mut socket: WebSocket) {
    // Before the token is checked: a revocation committed after the check is then always
    // heard as a notice (one committed before it fails the check).
    let notices = state.bus.subscribe_notices();
    // Invariant 3: nothing is sent before the close frame of a refused connection.
    let caller = match params
        .token
        .as_deref()
        .map(|token| state.authenticate_token(token))
    {
        Some(Ok(caller)) => caller,
        _ => {
            ending::refuse(
                &mut socket,
                CLOSE_UNAUTHENTICATED,
                "invalid or expired token",
            )
            .await;
            return;
        }
    };
    let (channel_name, scope) = match authorize(&state, &caller, &params.channel) {
        Ok(channel) => channel,
        Err((code, reason)) => {
            ending::refuse(&mut socket, code, reason).await;
            return;
        }
    };
    // Subscribe before reading the watermark or replaying, or events fall in the gap
    // (DESIGN invariant 2).
    let events = state.bus.subscribe();
    // The durable watermark, not the bus's published one: the bus publishes a moment after
    // the writer answers, and an event whose write was already answered 2xx is the past for
    // a socket opened afterwards (replayed on resume, skipped when it arrives live), never news.
    let newest = state.writer.durable_event_id();

    let metrics = state.metrics.clone();
    metrics.ws_connections.fetch_add(1, Ordering::Relaxed);
    let mut session = Session {
        visibility: match scope {
            Scope::All => Visibility::All,
            Scope::Business(id) => Visibility::Businesses(vec![id]),
            // The replay applies the same audience rule as `route` (DESIGN invariant 3).
            Scope::Owner => Visibility::Audience(caller.user.email.clone()),
        },
        scope,
        state,
        caller,
        cursor: Cursor::new(newest),
        pending: VecDeque::new(),
    };
    session.start(&channel_name, &params, newest);
    let ending = session.run(&mut socket, events, notices).await;
    if ending.is_slow_consumer() {
        Metrics::inc(&metrics.ws_slow_consumers_total);
    }
    let pending = std::mem::take(&mut session.pending);
    drop(session);
    // A peer that stopped reading cannot take a close frame; drop it after the grace time.
    let _ = tokio::time::timeout(
        CLOSE_GRACE,
        ending::close(&mut socket, pending, ending, &metrics),
    )
    .await;
    metrics.ws_connections.fetch_sub(1, Ordering::Relaxed);
}

/// What an authorized channel follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// Every event (the dashboard).
    All,
    /// One business's events, for as long as the caller may see it.
    Business(Uuid),
    /// The events of whichever businesses the caller owned when each was committed.
    Owner,
}

/// The channel's name and what it follows — or the close code refusing it.
fn authorize(
    state: &AppState,
    caller: &Caller,
    request: &ChannelRequest,
) -> Result<(String, Scope), (u16, &'static str)> {
    let admin = caller.is_admin();
    match request {
        ChannelRequest::Dashboard if admin => Ok(("dashboard".into(), Scope::All)),
        ChannelRequest::Dashboard => Err((CLOSE_FORBIDDEN, "the dashboard is for super admins")),
        // A super admin has the dashboard; "the businesses I own" means nothing for them.
        ChannelRequest::Owner if admin => Err((CLOSE_FORBIDDEN, "the owner channel is for owners")),
        ChannelRequest::Owner => Ok(("owner".into(), Scope::Owner)),
        ChannelRequest::Business(raw) => {
            let business = Uuid::parse_str(raw)
                .ok()
                .and_then(|id| state.store.business(id).ok().flatten());
            match business {
                Some(b) if caller.may_see(&b) => {
                    Ok((format!("business:{}", b.id), Scope::Business(b.id)))
                }
                // Owners learn nothing about businesses that are not theirs.
                _ if !admin => Err((CLOSE_FORBIDDEN, "not your business")),
                _ => Err((CLOSE_NOT_FOUND, "no such business")),
            }
        }
    }
}

/// What a channel does with one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// Not for this channel or this caller.
    Skip,
    Send,
    /// Send it, then close with 4403: it ends the caller's access to the business.
    SendThenClose,
}

struct Session {
    state: AppState,
    caller: Caller,
    /// What this channel follows.
    scope: Scope,
    visibility: Visibility,
    /// Where this session stands in the event log, and its replay.
    cursor: Cursor,
    /// Frames decided on but not yet handed to tungstenite, in order: control frames, replies,
    /// and at most one live event taken while the socket was blocked.
    pending: VecDeque<Message>,
}

impl Session {
    /// Queues `connection_established`, then applies the client's resume position.
    fn start(&mut self, channel_name: &str, params: &ConnectParams, newest: u64) {
        self.pending
            .push_back(protocol::connection_established(&protocol::Hello {
                channel: channel_name,
                epoch: self.state.store.epoch(),
                expires_at: client::expires_at(&self.caller),
                last_event_id: newest,
                user: protocol::HelloUser {
                    email: &self.caller.user.email,
                    id: self.caller.user.id,
                    role: self.caller.user.role,
                },
            }));
        let resync = self.cursor.resume(
            params.last_event_id.as_deref(),
            params.epoch.as_deref(),
            self.state.store.epoch(),
            newest,
        );
        if let Some(resync) = resync {
            self.resync(resync);
        }
    }

    /// The connection's loop, until shutdown, the token's expiry, the peer or a close code
    /// ends it.
    async fn run(
        &mut self,
        socket: &mut WebSocket,
        mut events: Receiver<Arc<Published>>,
        notices: Receiver<Arc<UserNotice>>,
    ) -> Ending {
        let config = self.state.config.clone();
        let mut pump = Pump::new(config.ws_frames_per_wake, self.state.metrics.clone());

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
        let expiry = tokio::time::sleep_until(client::expiry_instant(&self.caller));
        tokio::pin!(expiry);

        loop {
            let written = poll_fn(|cx| {
                Poll::Ready(pump.write_ready(cx, socket, || self.next_frame(&mut events)))
            });
            let more = match written.await {
                Ok(more) => more,
                Err(ending) => return ending,
            };
            let waiting = !self.pending.is_empty() || self.cursor.is_catching_up();
            let stall_deadline = pump.stall_deadline(waiting, config.ws_send_timeout);
            let may_read = self.pending.len() < MAX_PENDING_FRAMES;
            // The bus's ring is the queue: take an event only when there is room for it.
            let may_take = !more && self.pending.is_empty() && !self.cursor.is_catching_up();
            let step = tokio::select! {
                biased;
                () = poll_fn(|cx| cancel_flag.poll(cx, |cx| cancelled.as_mut().poll(cx))) => {
                    Err(Ending::shutdown())
                }
                () = &mut expiry => Err(Ending::close(CLOSE_UNAUTHENTICATED, "token expired")),
                () = tokio::time::sleep_until(stall_deadline.unwrap_or_else(Instant::now)),
                    if stall_deadline.is_some() => Err(Ending::slow_consumer()),
                io = poll_fn(|cx| pump.poll_socket(cx, socket, may_read)) => match io {
                    SocketIo::Flushed => Ok(()),
                    SocketIo::Gone => Err(Ending::silent()),
                    SocketIo::Read(frame) => {
                        last_heard = Instant::now();
                        match frame {
                            Some(Ok(message)) => self.on_message(&message, &mut expiry),
                            Some(Err(error)) => Err(on_read_error(&error)),
                            None => Err(Ending::silent()),
                        }
                    }
                },
                event = events.recv(), if may_take => match event {
                    Ok(event) => self.on_event(&event).map(|frame| self.pending.extend(frame)),
                    // Lag is not an error: catch up from the store (DESIGN "ws").
                    Err(RecvError::Lagged(_)) => {
                        self.cursor.lagged(self.state.bus.published_id());
                        Ok(())
                    }
                    Err(RecvError::Closed) => Err(Ending::close(CLOSE_GOING_AWAY, "server shutting down")),
                },
                notice = poll_fn(|cx| notice_flag.poll(cx, |cx| notices.as_mut().poll_next(cx))),
                    if may_read && notices_open =>
                {
                    match notice {
                        Some(Ok(notice)) if notice.user_id == self.caller.user.id => {
                            match &notice.what {
                                Notice::Frame(frame) => {
                                    self.pending.push_back(frame.clone());
                                    Ok(())
                                }
                                Notice::Revoked => self.check_token(),
                            }
                        }
                        Some(Ok(_)) => Ok(()),
                        // Missed read receipts are not replayed (best effort), but a missed
                        // revocation must not be: check the token instead.
                        Some(Err(RecvError::Lagged(_))) => self.check_token(),
                        Some(Err(RecvError::Closed)) | None => {
                            notices_open = false;
                            Ok(())
                        }
                    }
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

    /// The next frame to write, in order: pending frames, the replay, then the bus.
    fn next_frame(
        &mut self,
        events: &mut Receiver<Arc<Published>>,
    ) -> Result<Option<Message>, Ending> {
        loop {
            if let Some(frame) = self.pending.pop_front() {
                return Ok(Some(frame));
            }
            match self.cursor.next_replay() {
                Replay::Send(event) => {
                    let route = self.route(event.business_id, event.kind, &event.audience);
                    if let Some(frame) = self.deliver(route, Message::text(event.frame))? {
                        return Ok(Some(frame));
                    }
                    continue;
                }
                Replay::Read(read) => {
                    self.refill(read)?;
                    continue;
                }
                Replay::Live => {}
            }
            // Finding the ring empty takes its lock; the published id says so for free.
            if self.cursor.position() >= self.state.bus.published_id() {
                return Ok(None);
            }
            match events.try_recv() {
                Ok(event) => {
                    if let Some(frame) = self.on_event(&event)? {
                        return Ok(Some(frame));
                    }
                }
                Err(TryRecvError::Empty) => return Ok(None),
                Err(TryRecvError::Lagged(_)) => {
                    self.cursor.lagged(self.state.bus.published_id());
                }
                Err(TryRecvError::Closed) => {
                    return Err(Ending::close(CLOSE_GOING_AWAY, "server shutting down"))
                }
            }
        }
    }

    /// Reads the next chunk of the replay from the store, as the cursor asked.
    fn refill(&mut self, read: Read) -> Result<(), Ending> {
        let chunk = self
            .state
            .store
            .replay_after(&self.visibility, read.after, read.up_to, read.limit)
            .map_err(|error| {
                tracing::error!(%error, "replay failed");
                Ending::close(CLOSE_GOING_AWAY, "server error")
            })?;
        if let Some(resync) = self.cursor.refilled(read, chunk) {
            self.resync(resync);
        }
        Ok(())
    }

    fn resync(&mut self, resync: Resync) {
        self.pending
            .push_back(protocol::resync_required(&protocol::Resync {
                epoch: self.state.store.epoch(),
                last_event_id: resync.last_event_id,
            }));
    }

    /// A live event from the bus: its shared frame, if this channel sends it.
    fn on_event(&mut self, event: &Published) -> Result<Option<Message>, Ending> {
        match self.cursor.offer(event.id) {
            Offer::Next => {}
            // Already replayed, or coming from the store with the ids missing before it.
            Offer::Duplicate | Offer::Refill => return Ok(None),
        }
        let route = self.route(event.business_id, event.kind, &event.audience);
        self.deliver(route, event.frame.clone())
    }

    /// A socket whose token was revoked (password changed, user disabled) closes with 4401.
    fn check_token(&self) -> Result<(), Ending> {
        if self.state.is_revoked(&self.caller) {
            return Err(Ending::close(CLOSE_UNAUTHENTICATED, "session revoked"));
        }
        Ok(())
    }

    /// What this channel does with an event, live or replayed alike: the one ownership
    /// rule, `Caller::may_receive`, decides (DESIGN invariant 3). Events it skips still
    /// moved the cursor, so ids stay gap-free within what it may see (invariant 2).
    fn route(&self, business_id: Uuid, kind: EventKind, audience: &Audience) -> Route {
        let other_business = matches!(self.scope, Scope::Business(id) if id != business_id);
        if other_business || !self.caller.may_receive(audience) {
            return Route::Skip;
        }
        // The business moved to someone else, or was deleted: this event is the last —
        // unless (a replay of an old move) it has come back to the caller since, in which
        // case the events in between are skipped above and the channel goes on. The owner
        // channel follows the owner, not one business: the audience alone ends the
        // business's events there, and the socket stays open.
        let ends_access = matches!(self.scope, Scope::Business(_))
            && matches!(
                kind,
                EventKind::BusinessUpdated | EventKind::BusinessDeleted
            )
            && !self.caller.keeps_business_after(kind, audience)
            && self.still_allowed().is_err();
        if ends_access {
            Route::SendThenClose
        } else {
            Route::Send
        }
    }

    /// Carries out `route` for `frame`: the frame to write now, if any.
    fn deliver(&mut self, route: Route, frame: Message) -> Result<Option<Message>, Ending> {
        match route {
            Route::Skip => Ok(None),
            Route::Send => Ok(Some(frame)),
            Route::SendThenClose => {
                self.pending.push_back(frame);
                Err(Ending::after_pending(
                    CLOSE_FORBIDDEN,
                    "no longer your business",
                ))
            }
        }
    }

    /// Whether the (possibly renewed) caller may still follow this channel: `auth` re-checks
    /// it, since the business may have moved since the socket opened.
    fn still_allowed(&self) -> Result<(), Ending> {
        let request = match self.scope {
            Scope::Business(id) => ChannelRequest::Business(id.to_string()),
            Scope::All => ChannelRequest::Dashboard,
            Scope::Owner => ChannelRequest::Owner,
        };
        match authorize(&self.state, &self.caller, &request) {
            Ok(_) => Ok(()),
            Err((code, reason)) => Err(Ending::close(code, reason)),
        }
    }

    /// A client frame: queues the reply, if any.
    fn on_message(
        &mut self,
        message: &Message,
        expiry: &mut Pin<&mut Sleep>,
    ) -> Result<(), Ending> {
        match client::on_message(&self.state, &self.caller, message)? {
            Action::None => {}
            Action::Reply(reply) => self.pending.push_back(reply),
            Action::Renewed { caller, reply } => {
                self.caller = caller;
                self.still_allowed()?;
                expiry.as_mut().reset(client::expiry_instant(&self.caller));
                self.pending.push_back(reply);
            }
        }
        Ok(())
    }
}
