//! The REST routes of API.md. The server's one router (`crate::routes`) mounts them beside
//! the WebSocket and dashboard routes and renders what none of them answered with
//! [`error::recover`].
//!
//! Filter order in each route is path → method → auth → body, so a wrong path stays 404 and
//! a wrong method 405; handlers return `Result<_, ApiError>`, so application errors never
//! fall through to a sibling route. Request bodies are typed structs, read by [`body`] and
//! validated into domain values before anything reaches the writer.

mod account;
mod auth_routes;
pub mod body;
mod businesses;
pub mod error;
mod feed;
pub mod filters;
#[cfg(test)]
mod fuzz;
mod health;
mod ids;
mod push;
mod reservations;
mod users;

use crate::state::AppState;
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::Filter;

/// Every REST route; errors of their handlers are already rendered as JSON.
pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    ids::malformed()
        .or(auth_routes::routes(state.clone()))
        .unify()
        .or(users::routes(state.clone()))
        .unify()
        .or(account::routes(state.clone()))
        .unify()
        .or(businesses::routes(state.clone()))
        .unify()
        .or(reservations::routes(state.clone()))
        .unify()
        .or(feed::routes(state.clone()))
        .unify()
        .or(push::routes(state.clone()))
        .unify()
        .or(health::routes(state))
        .unify()
        .boxed()
}
