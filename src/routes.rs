//! The one router of the server: the REST routes ([`crate::api`]), the online backup
//! ([`crate::backup::http`]), the WebSocket routes ([`crate::ws`]) and the dashboard ([`crate::web`]) side by side, then one rejection
//! handler that renders whatever no route answered in API.md's JSON error shape, the request
//! counter and the access log.

use crate::api;
use crate::metrics::Metrics;
use crate::state::AppState;
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::{Filter, Reply};

/// Every route of the server, with errors rendered as JSON.
pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    let metrics = state.metrics.clone();
    api::routes(state.clone())
        .or(crate::backup::http::routes(state.clone()))
        .unify()
        .or(crate::ws::routes(state))
        .unify()
        .or(crate::web::routes())
        .unify()
        .recover(api::error::recover)
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
