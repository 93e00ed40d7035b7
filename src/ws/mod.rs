//! The WebSocket routes: `/ws/dashboard/`, `/ws/business/{id}/` and `/ws/owner/`.
//!
//! The `Origin` check happens before the upgrade (403 JSON). Everything after the upgrade —
//! authentication, authorization, resume — is the session's, and failures there are close
//! codes (4401/4403/4404), never HTTP rejections (STYLE §6).

mod client;
mod cursor;
mod ending;
pub mod protocol;
mod pump;
mod session;
mod wake;

use crate::reply;
use crate::state::AppState;
use std::collections::HashMap;
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::{Filter, Reply};

/// tungstenite's read buffer per socket. Its default, 128 KiB, was allocated for every socket
/// and zero-filled on every read (136 KiB of RSS per idle socket, and a 128 KiB memset per
/// wake-up of a session); clients send only small control messages, and the buffer grows for
/// a larger frame. 1 KiB measured 9.2 KiB per idle socket, 4 KiB 12.2 KiB (docs/bench.md).
/// Set through the vendored warp's `Ws::read_buffer_size` (vendor/README.md).
const READ_BUFFER_BYTES: usize = 1024;

/// Which stream of events a socket follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelRequest {
    Dashboard,
    /// Every business the caller owns, as ownership changes (owners only).
    Owner,
    /// The raw id from the path; an id that is not a UUID is an unknown business.
    Business(String),
}

/// The WebSocket routes.
pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    let dashboard = warp::path!("ws" / "dashboard")
        .and(warp::path::end())
        .map(|| ChannelRequest::Dashboard);
    let business = warp::path!("ws" / "business" / String)
        .and(warp::path::end())
        .map(ChannelRequest::Business);
    let owner = warp::path!("ws" / "owner")
        .and(warp::path::end())
        .map(|| ChannelRequest::Owner);
    dashboard
        .or(business)
        .unify()
        .or(owner)
        .unify()
        .and(warp::get())
        .and(warp::header::optional::<String>("origin"))
        .and(warp::header::optional::<String>("host"))
        .and(warp::query::<HashMap<String, String>>())
        .and(warp::ws())
        .map(
            move |channel: ChannelRequest,
                  origin: Option<String>,
                  host: Option<String>,
                  query: HashMap<String, String>,
                  ws: warp::ws::Ws| {
                if !origin_allowed(
                    origin.as_deref(),
                    host.as_deref(),
                    &state.config.allowed_origins,
                ) {
                    return reply::error(
                        warp::http::StatusCode::FORBIDDEN,
                        "forbidden",
                        "this origin may not open WebSockets here",
                    );
                }
                let state = state.clone();
                let params = session::ConnectParams::from_query(channel, &query);
                ws.max_message_size(protocol::MAX_CLIENT_MESSAGE_BYTES)
                    .max_frame_size(protocol::MAX_CLIENT_MESSAGE_BYTES)
                    .max_write_buffer_size(pump::MAX_WRITE_BUFFER_BYTES)
                    .read_buffer_size(READ_BUFFER_BYTES)
                    .on_upgrade(move |socket| session::run(state, params, socket))
                    .into_response()
            },
        )
        .boxed()
}

/// Cross-site protection: no `Origin` (a non-browser client), the server's own origin
/// (same host as `Host`), or one listed in `APP_ALLOWED_ORIGINS`.
fn origin_allowed(origin: Option<&str>, host: Option<&str>, allowed: &[String]) -> bool {
    let Some(origin) = origin else {
        return true;
    };
    let origin = origin.trim().trim_end_matches('/').to_lowercase();
    if allowed.contains(&origin) {
        return true;
    }
    let Some(host) = host else {
        return false;
    };
    let host = host.trim().to_lowercase();
    // We serve plain HTTP; behind a TLS proxy the same host arrives as https.
    origin == format!("http://{host}") || origin == format!("https://{host}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        let allowed = vec!["https://app.example.com".to_string()];
        let host = Some("127.0.0.1:8000");
        let cases = [
            (None, true, "no origin: not a browser"),
            (Some("http://127.0.0.1:8000"), true, "own origin"),
            (
                Some("http://127.0.0.1:8000/"),
                true,
                "own origin with slash",
            ),
            (Some("https://app.example.com"), true, "listed"),
            (Some("http://evil.example"), false, "foreign"),
            (Some("http://127.0.0.1:8001"), false, "other port"),
            (Some("null"), false, "opaque origin"),
        ];
        for (origin, expected, why) in cases {
            assert_eq!(origin_allowed(origin, host, &allowed), expected, "{why}");
        }
        assert!(!origin_allowed(Some("http://x"), None, &[]));
    }
}
