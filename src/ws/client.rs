//! What a client frame does (API.md, "Client messages"): `ping` is answered with `pong`,
//! `auth` swaps in a fresh token of the same user (`auth_ok`), anything else gets an `error`
//! frame and the connection stays open. A close frame or a binary frame ends the session.
//! Also the caller's token expiry, which an `auth` moves.

use super::ending::Ending;
use super::protocol::{self, ClientMessage, ClientMessageError, ErrorCode, CLOSE_UNSUPPORTED_DATA};
use crate::domain::Timestamp;
use crate::state::{AppState, Caller};
use std::time::Duration;
use tokio::time::Instant;
use warp::ws::Message;

/// Stands in for "never" where a deadline would overflow the clock (about 30 years).
const FAR_FUTURE: Duration = Duration::from_secs(30 * 365 * 24 * 3600);

/// What the session does about a client frame.
pub enum Action {
    /// Nothing: a WebSocket ping or pong frame (tungstenite answers pings itself).
    None,
    /// Queue this reply.
    Reply(Message),
    /// The client refreshed its token: follow `caller` from now on, and queue `reply`.
    Renewed { caller: Caller, reply: Message },
}

/// Decides what `message` from `caller` does.
///
/// # Errors
/// The [`Ending`] of a session whose client closed, or sent a binary frame.
pub fn on_message(state: &AppState, caller: &Caller, message: &Message) -> Result<Action, Ending> {
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
        return Ok(Action::None);
    };
    let reply = match protocol::parse_client_message(text) {
        Ok(ClientMessage::Ping) => protocol::pong(),
        Ok(ClientMessage::Auth { token }) => match state.authenticate_token(&token) {
            Ok(fresh) if fresh.user.id == caller.user.id => {
                let reply = protocol::auth_ok(expires_at(&fresh));
                return Ok(Action::Renewed {
                    caller: fresh,
                    reply,
                });
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
    Ok(Action::Reply(reply))
}

/// When the caller's token expires, as the frames show it.
pub fn expires_at(caller: &Caller) -> Timestamp {
    Timestamp::from_micros(caller.expires_at.saturating_mul(1_000_000))
}

/// When the caller's token expires, on the runtime's clock.
pub fn expiry_instant(caller: &Caller) -> Instant {
    // In microseconds: whole seconds would keep an expired token's socket open for up to a
    // second (a token is expired once `exp` <= now, API.md).
    let left = caller
        .expires_at
        .saturating_mul(1_000_000)
        .saturating_sub(Timestamp::now().as_micros());
    let left = Duration::from_micros(u64::try_from(left).unwrap_or(0));
    // `app token --ttl` can mint a token that outlives any clock.
    Instant::now()
        .checked_add(left)
        .unwrap_or_else(|| Instant::now() + FAR_FUTURE)
}
