//! Filters shared by every REST route: the state handle, the raw `Authorization` header,
//! bodies with a size limit, query parsing and paging. None of them rejects on bad input:
//! they hand the raw parts to handlers, which fail with an `ApiError` (authentication is
//! `AppState::authenticate`, bodies are read by `super::body`), so a bad token never falls
//! through to a sibling route (STYLE §3).

use super::error::ApiError;
use crate::client_addr::ClientKey;
use crate::domain::validate::FieldErrors;
use crate::state::{AppState, Caller};
use crate::store::PageCursor;
use bytes::Bytes;
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use warp::http::HeaderMap;
use warp::Filter;

/// Largest accepted request body (API.md: 64 KiB).
pub const MAX_BODY_BYTES: u64 = 64 * 1024;
/// Default and maximum page sizes (API.md: `limit` 1–500, default 100).
pub const DEFAULT_PAGE: usize = 100;
pub const MAX_PAGE: usize = 500;

/// Injects the state handle.
pub fn with_state(
    state: AppState,
) -> impl Filter<Extract = (AppState,), Error = Infallible> + Clone {
    warp::any().map(move || state.clone())
}

/// The raw `Authorization` header, if any.
pub fn bearer() -> impl Filter<Extract = (Option<String>,), Error = Infallible> + Clone {
    warp::header::optional::<String>("authorization")
        .or(warp::any().map(|| None))
        .unify()
}

/// The request body (at most 64 KiB) and its content type.
pub fn json_body() -> impl Filter<Extract = (Option<String>, Bytes), Error = warp::Rejection> + Clone
{
    warp::header::optional::<String>("content-type")
        .and(warp::body::content_length_limit(MAX_BODY_BYTES))
        .and(warp::body::bytes())
}

/// Who the request comes from, for every limiter: the TCP peer, or behind a trusted proxy
/// the client it forwarded for (`crate::client_addr`). The one place that reads the peer
/// address and `X-Forwarded-For`.
pub fn client_addr(
    state: &AppState,
) -> impl Filter<Extract = (ClientKey,), Error = Infallible> + Clone {
    let trusted = state.config.trusted_proxies.clone();
    crate::server::peer_addr()
        .and(warp::header::headers_cloned())
        .map(move |peer: Option<SocketAddr>, headers: HeaderMap| {
            let forwarded: Vec<&str> = headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|value| value.to_str().ok())
                .collect();
            trusted.client_key(peer, &forwarded)
        })
}

/// The query string as key → value (later duplicates win).
pub fn query() -> impl Filter<Extract = (HashMap<String, String>,), Error = warp::Rejection> + Clone
{
    warp::query::<HashMap<String, String>>()
}

// An inherent method beside the type's home in `crate::state`: the HTTP answer to a caller
// who is not a super admin is this layer's to give.
impl Caller {
    /// Fails with 403 unless the caller is a super admin.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::Forbidden("only a super admin may do this"))
        }
    }
}

/// `limit` and `cursor` of a listing.
pub fn page_params(
    query: &HashMap<String, String>,
) -> Result<(usize, Option<PageCursor>), ApiError> {
    let mut errors = FieldErrors::default();
    let limit = match query.get("limit") {
        None => DEFAULT_PAGE,
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=MAX_PAGE).contains(&n) => n,
            _ => {
                errors.add("limit", format!("must be an integer from 1 to {MAX_PAGE}"));
                DEFAULT_PAGE
            }
        },
    };
    let cursor = match query.get("cursor").map(String::as_str) {
        None | Some("") => None,
        Some(text) => {
            let cursor = PageCursor::parse(text);
            if cursor.is_none() {
                errors.add("cursor", "is not a cursor returned by this listing");
            }
            cursor
        }
    };
    if errors.is_empty() {
        Ok((limit, cursor))
    } else {
        Err(ApiError::Validation(errors))
    }
}
