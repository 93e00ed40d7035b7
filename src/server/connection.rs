//! One client connection: hyper serves it with warp's routes as the service, and a watchdog
//! closes it when it breaks a timeout of [`Timeouts`]. The watchdog follows the connection
//! through its phases — reading a request head, busy with requests, idle between them,
//! upgrading to a WebSocket — from what the socket reads and writes ([`Tracked`]) and what
//! the service is called with. hyper's own header timer cannot do this: it also runs while
//! a keep-alive connection is idle, so it would close those at the header timeout.
//! Once hyper hands the socket to a WebSocket, this task ends and nothing here touches it.

use super::host::HostPolicy;
use super::PeerAddr;
use crate::reply;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{Notify, OwnedSemaphorePermit};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use warp::filters::BoxedFilter;
use warp::http::{Request, StatusCode};
use warp::reply::Response;

/// An answer on its way.
type Answer = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

/// The routes as a function from request to answer (warp's service type cannot be named).
#[derive(Clone)]
pub struct Routes(Arc<dyn Fn(Request<Incoming>) -> Answer + Send + Sync>);

impl Routes {
    /// Wraps warp's service for `routes`.
    pub fn new(routes: BoxedFilter<(Response,)>) -> Self {
        let service = warp::service(routes);
        Self(Arc::new(move |request| {
            Box::pin(tower_service::Service::call(&mut service.clone(), request))
        }))
    }
}

/// How long a connection may stay in each phase.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// From the first byte of a request (or the accept) to its complete head.
    pub header: Duration,
    /// From a complete head to its answer (this covers a body sent a byte at a time).
    pub request: Duration,
    /// With no request in flight and no byte either way.
    pub idle: Duration,
    /// From the `101 Switching Protocols` answer to the socket handed to the WebSocket.
    pub upgrade: Duration,
}

/// What the connection is doing, and since when.
#[derive(Debug, Clone, Copy)]
enum Phase {
    Head(Instant),
    /// Requests in flight, and since when the connection has had one.
    Busy(u32, Instant),
    Idle(Instant),
    Upgrading(Instant),
}

/// The connection's phase, shared by the socket wrapper, the service and the watchdog.
#[derive(Debug)]
struct Activity {
    phase: Mutex<Phase>,
    /// Set once hyper is done with the socket (a WebSocket now): reads and writes stop
    /// touching the lock.
    detached: AtomicBool,
    /// Wakes the watchdog when a phase starts that may end sooner than it planned.
    changed: Notify,
}

impl Activity {
    fn new() -> Self {
        Self {
            phase: Mutex::new(Phase::Head(Instant::now())),
            detached: AtomicBool::new(false),
            changed: Notify::new(),
        }
    }

    fn update(&self, step: impl FnOnce(Phase) -> Phase) {
        let mut phase = self.phase.lock().unwrap_or_else(PoisonError::into_inner);
        let before = *phase;
        *phase = step(before);
        // A new phase may end sooner than the one the watchdog sleeps on (an idle spell
        // turning into a request head).
        if std::mem::discriminant(&before) != std::mem::discriminant(&*phase) {
            self.changed.notify_one();
        }
    }

    /// Bytes arrived: after an idle spell, a new request head starts.
    fn on_read(&self) {
        if !self.detached.load(Ordering::Relaxed) {
            self.update(|phase| match phase {
                Phase::Idle(_) => Phase::Head(Instant::now()),
                other => other,
            });
        }
    }

    /// Bytes left: an idle connection is not idle while its answer is still going out.
    fn on_write(&self) {
        if !self.detached.load(Ordering::Relaxed) {
            self.update(|phase| match phase {
                Phase::Idle(_) => Phase::Idle(Instant::now()),
                other => other,
            });
        }
    }

    fn request_started(&self) {
        self.update(|phase| match phase {
            Phase::Busy(n, since) => Phase::Busy(n.saturating_add(1), since),
            _ => Phase::Busy(1, Instant::now()),
        });
    }

    fn request_finished(&self, upgrading: bool) {
        self.update(|phase| match phase {
            Phase::Busy(n, since) if n > 1 => Phase::Busy(n - 1, since),
            _ if upgrading => Phase::Upgrading(Instant::now()),
            _ => Phase::Idle(Instant::now()),
        });
    }

    /// When the current phase runs out.
    fn deadline(&self, timeouts: &Timeouts) -> (Instant, &'static str) {
        match *self.phase.lock().unwrap_or_else(PoisonError::into_inner) {
            Phase::Head(since) => (since + timeouts.header, "header timeout"),
            Phase::Busy(_, since) => (since + timeouts.request, "request timeout"),
            Phase::Idle(since) => (since + timeouts.idle, "idle keep-alive timeout"),
            Phase::Upgrading(since) => (since + timeouts.upgrade, "upgrade timeout"),
        }
    }

    /// Resolves when a phase outlives its timeout, with the timeout's name.
    async fn expired(&self, timeouts: &Timeouts) -> &'static str {
        loop {
            let changed = self.changed.notified();
            match self.deadline(timeouts) {
                (deadline, what) if deadline <= Instant::now() => return what,
                (deadline, _) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(deadline) => {}
                        () = changed => {}
                    }
                }
            }
        }
    }
}

/// The TCP stream, reporting its traffic to [`Activity`] and holding the connection's slot
/// under the cap until it is closed — also after it became a WebSocket.
struct Tracked {
    stream: TcpStream,
    activity: Arc<Activity>,
    _slot: OwnedSemaphorePermit,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.on_read();
        }
        polled
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.on_write();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.on_write();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// The routes for one connection: checks `Host`, tells handlers the peer's address
/// ([`PeerAddr`]) and the watchdog when a request starts and ends.
#[derive(Clone)]
struct ConnService {
    routes: Routes,
    peer: SocketAddr,
    hosts: Arc<HostPolicy>,
    activity: Arc<Activity>,
}

/// Marks the request finished even when hyper drops its future (the client went away).
struct InFlight(Option<Arc<Activity>>);

impl InFlight {
    fn finish(mut self, upgrading: bool) {
        if let Some(activity) = self.0.take() {
            activity.request_finished(upgrading);
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(activity) = self.0.take() {
            activity.request_finished(false);
        }
    }
}

impl hyper::service::Service<Request<Incoming>> for ConnService {
    type Response = Response;
    type Error = Infallible;
    type Future = Answer;

    fn call(&self, mut request: Request<Incoming>) -> Self::Future {
        self.activity.request_started();
        let in_flight = InFlight(Some(self.activity.clone()));
        let host = request
            .headers()
            .get(warp::http::header::HOST)
            .and_then(|value| value.to_str().ok())
            .or_else(|| {
                request
                    .uri()
                    .authority()
                    .map(|authority| authority.as_str())
            });
        if !self.hosts.allows(host) {
            in_flight.finish(false);
            let answer = reply::error(
                StatusCode::MISDIRECTED_REQUEST,
                "misdirected_request",
                "this server does not answer to that Host (see --allowed-hosts)",
            );
            return Box::pin(std::future::ready(Ok(answer)));
        }
        request.extensions_mut().insert(PeerAddr(self.peer));
        let answer = (self.routes.0)(request);
        Box::pin(async move {
            let answer = answer.await;
            let upgrading = matches!(&answer, Ok(response)
                if response.status() == StatusCode::SWITCHING_PROTOCOLS);
            in_flight.finish(upgrading);
            answer
        })
    }
}

/// What a connection task needs besides its socket.
#[derive(Clone)]
pub struct Shared {
    pub routes: Routes,
    pub hosts: Arc<HostPolicy>,
    pub timeouts: Timeouts,
    /// Cancelled when the server stops: finish the request in flight, then close.
    pub shutdown: CancellationToken,
    /// Cancelled when the shutdown grace is over: close now.
    pub abort: CancellationToken,
}

/// The kernel send buffer asked for each connection (Linux doubles it: 64 KiB, about 200
/// event frames). Loopback's autotuned default grows to megabytes — thousands of frames per
/// socket — and a pong or any frame queued behind them waits until the client has read them
/// all: a 20 000-booking delete with 500 dashboards open held pings 9.7 s (issue 13). Kept
/// small, a slow reader shows up in its session's queue instead, where the writer's pacing
/// (`writer::pace`) and the send timeout see it. Answers and event frames are small; a large
/// download only takes more `send`s.
const SEND_BUFFER_BYTES: usize = 32 * 1024;

/// Serves one connection until it ends, breaks a timeout, or the server stops.
pub async fn run(stream: TcpStream, peer: SocketAddr, slot: OwnedSemaphorePermit, shared: Shared) {
    let _ = stream.set_nodelay(true);
    let _ = socket2::SockRef::from(&stream).set_send_buffer_size(SEND_BUFFER_BYTES);
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Tracked {
        stream,
        activity: activity.clone(),
        _slot: slot,
    });
    let service = ConnService {
        routes: shared.routes,
        peer,
        hosts: shared.hosts,
        activity: activity.clone(),
    };
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    // Our watchdog times request heads (see the module doc); hyper's header timer would
    // also close idle keep-alive connections.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(None);
    builder.http2().timer(TokioTimer::new());
    let connection = builder.serve_connection_with_upgrades(io, service);
    tokio::pin!(connection);
    let mut draining = false;
    loop {
        tokio::select! {
            served = connection.as_mut() => {
                if let Err(error) = served {
                    // Resets, early EOFs and garbage are the client's business, not ours.
                    tracing::debug!(%peer, %error, "connection ended with an error");
                }
                break;
            }
            what = activity.expired(&shared.timeouts) => {
                tracing::debug!(%peer, what, "closing a connection");
                break;
            }
            () = shared.shutdown.cancelled(), if !draining => {
                draining = true;
                connection.as_mut().graceful_shutdown();
            }
            () = shared.abort.cancelled() => break,
        }
    }
    activity.detached.store(true, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeouts() -> Timeouts {
        Timeouts {
            header: Duration::from_secs(10),
            request: Duration::from_secs(60),
            idle: Duration::from_secs(75),
            upgrade: Duration::from_secs(10),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn phases_carry_their_own_deadlines() {
        let activity = Activity::new();
        let start = Instant::now();
        let (deadline, what) = activity.deadline(&timeouts());
        assert_eq!(
            (deadline - start, what),
            (Duration::from_secs(10), "header timeout")
        );

        activity.request_started();
        activity.request_started();
        let busy = (start + Duration::from_secs(60), "request timeout");
        assert_eq!(activity.deadline(&timeouts()), busy);
        activity.request_finished(false);
        assert_eq!(activity.deadline(&timeouts()), busy, "one still in flight");
        activity.request_finished(false);
        let (deadline, what) = activity.deadline(&timeouts());
        assert_eq!(
            (deadline - start, what),
            (Duration::from_secs(75), "idle keep-alive timeout")
        );

        tokio::time::advance(Duration::from_secs(30)).await;
        activity.on_read();
        let (deadline, what) = activity.deadline(&timeouts());
        assert_eq!(
            (deadline - start, what),
            (Duration::from_secs(40), "header timeout")
        );

        activity.request_started();
        activity.request_finished(true);
        let (_, what) = activity.deadline(&timeouts());
        assert_eq!(what, "upgrade timeout");
    }

    #[tokio::test(start_paused = true)]
    async fn the_watchdog_wakes_for_a_head_that_starts_after_an_idle_spell() {
        let activity = Arc::new(Activity::new());
        activity.request_started();
        activity.request_finished(false);
        let start = Instant::now();
        let watchdog = tokio::spawn({
            let activity = activity.clone();
            async move { activity.expired(&timeouts()).await }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        activity.on_read();
        let what = watchdog.await.unwrap();
        assert_eq!(what, "header timeout");
        assert_eq!(Instant::now() - start, Duration::from_secs(11));
    }
}
