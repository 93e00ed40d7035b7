//! The HTTP surface: every route of API.md, mounted in one tree with one rejection handler.
//!
//! Filter order in each route is path → method → auth → body, so a wrong path stays 404 and
//! a wrong method 405; handlers return `Result<_, ApiError>`, so application errors never
//! fall through to a sibling route.

mod auth_routes;
mod businesses;
pub mod error;
mod feed;
pub mod filters;
mod health;
mod rate_limit;
mod reservations;
mod users;

pub use rate_limit::RateLimiter;

use crate::auth::JwtKeys;
use crate::bus::Bus;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::store::Store;
use crate::writer::Writer;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::{Filter, Reply};

/// What a request or a task may touch. Cloning costs a few reference-count bumps.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub writer: Writer,
    pub bus: Bus,
    pub keys: Arc<JwtKeys>,
    pub metrics: Arc<Metrics>,
    pub config: Arc<Config>,
    pub booking_limiter: Arc<RateLimiter>,
    /// Cancelled on SIGINT/SIGTERM; WebSocket sessions watch it to close with 1001.
    pub shutdown: CancellationToken,
}

/// Every route of the server (REST, WebSockets, dashboard), with errors rendered as JSON.
pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    let api = auth_routes::routes(state.clone())
        .or(users::routes(state.clone()))
        .unify()
        .or(businesses::routes(state.clone()))
        .unify()
        .or(reservations::routes(state.clone()))
        .unify()
        .or(feed::routes(state.clone()))
        .unify()
        .or(health::routes(state.clone()))
        .unify()
        .or(crate::backup::http::routes(state.clone()))
        .unify()
        .boxed();
    let metrics = state.metrics.clone();
    api.or(crate::ws::routes(state.clone()))
        .unify()
        .or(crate::web::routes())
        .unify()
        .recover(error::recover)
        .unify()
        .map(move |response: Response| {
            Metrics::inc(&metrics.http_requests_total);
            response
        })
        .with(warp::log::custom(|info| {
            // The path only: query strings may carry tokens (?token=) and never reach a log.
            tracing::debug!(
                target: "app::http",
                method = %info.method(),
                path = info.path(),
                status = info.status().as_u16(),
                micros = info.elapsed().as_micros() as u64,
                "request"
            );
        }))
        .map(Reply::into_response)
        .boxed()
}

/// Renders `value` as a JSON response with `status`.
pub(crate) fn json_reply<T: serde::Serialize>(
    value: &T,
    status: warp::http::StatusCode,
) -> Response {
    warp::reply::with_status(warp::reply::json(value), status).into_response()
}
