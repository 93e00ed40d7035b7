//! The network edge: our own accept loop in place of `warp::serve`, so that every connection
//! has timeouts (warp builds hyper without a timer), open connections are capped, and a stop
//! never waits on a client for longer than the shutdown grace.
//!
//! [`serve`] accepts on the listener bound by [`listener::bind`]; each connection is a task
//! of [`connection`], which serves warp's routes through hyper and hands handlers the TCP peer
//! as [`PeerAddr`] (read it with [`peer_addr`]). Past the cap a connection is accepted and
//! closed at once and counted in `app_connections_refused_total`.

mod connection;
pub mod host;
pub mod listener;

pub use connection::Timeouts;
use connection::{Routes, Shared};
use host::HostPolicy;
use listener::AcceptFailure;

use crate::metrics::Metrics;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::Filter;

/// The TCP peer of a request's connection, as the kernel reports it (no proxy header
/// consulted). Every request served by [`serve`] carries it as an extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

/// The TCP peer address of the request (`None` only for a request that did not come through
/// [`serve`], such as `warp::test`).
pub fn peer_addr() -> impl Filter<Extract = (Option<SocketAddr>,), Error = Infallible> + Clone {
    warp::ext::optional::<PeerAddr>().map(|peer: Option<PeerAddr>| peer.map(|PeerAddr(addr)| addr))
}

/// How long an accept loop that failed for want of files waits before it tries again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// At most one warning about failing accepts per this long.
const ACCEPT_WARN_EVERY: Duration = Duration::from_secs(60);

/// How the edge behaves.
#[derive(Debug, Clone)]
pub struct EdgeSettings {
    pub timeouts: Timeouts,
    /// Open client connections (HTTP and WebSocket) at most.
    pub max_connections: usize,
    /// How long a stop waits for requests in flight before it closes their connections.
    pub shutdown_grace: Duration,
    pub hosts: HostPolicy,
}

/// Serves `routes` on `listener` until `shutdown` is cancelled; then stops accepting, lets
/// requests in flight finish for at most the grace, closes what is left, and returns the
/// instant the grace ends (the rest of the shutdown is due by then too).
pub async fn serve(
    listener: TcpListener,
    routes: BoxedFilter<(Response,)>,
    settings: EdgeSettings,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> Instant {
    let slots = Arc::new(Semaphore::new(settings.max_connections));
    let connections = TaskTracker::new();
    let shared = Shared {
        routes: Routes::new(routes),
        hosts: Arc::new(settings.hosts),
        timeouts: settings.timeouts,
        shutdown: shutdown.clone(),
        abort: CancellationToken::new(),
    };
    let mut last_warning: Option<Instant> = None;
    loop {
        let accepted = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => match slots.clone().try_acquire_owned() {
                Ok(slot) => {
                    connections.spawn(connection::run(stream, peer, slot, shared.clone()));
                }
                Err(_) => {
                    // Closing at once tells the client right away; leaving it in the backlog
                    // would look like a hang.
                    Metrics::inc(&metrics.connections_refused_total);
                    drop(stream);
                }
            },
            Err(error) => {
                let failure = AcceptFailure::of(&error);
                if failure == AcceptFailure::PeerGone {
                    tracing::debug!(%error, "accept: the peer went away");
                    continue;
                }
                if last_warning.is_none_or(|at| at.elapsed() >= ACCEPT_WARN_EVERY) {
                    last_warning = Some(Instant::now());
                    tracing::warn!(%error, ?failure, "accept failed; retrying shortly");
                }
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                }
            }
        }
    }
    let grace_ends = Instant::now() + settings.shutdown_grace;
    drop(listener);
    connections.close();
    if tokio::time::timeout_at(grace_ends, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            open = connections.len(),
            "closing connections whose requests did not finish within the shutdown grace"
        );
        shared.abort.cancel();
        connections.wait().await;
    }
    grace_ends
}
