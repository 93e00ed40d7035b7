//! The WebSocket wire protocol: close codes, control frames, and parsing client messages.

use serde_json::{json, Value};
use warp::ws::Message;

/// Bad, expired or missing token (the client needs a new one; no auto-reconnect).
pub const CLOSE_UNAUTHENTICATED: u16 = 4401;
/// A valid token without access to the channel.
pub const CLOSE_FORBIDDEN: u16 = 4403;
/// A super admin asked for a business that does not exist.
pub const CLOSE_NOT_FOUND: u16 = 4404;
/// The client read too slowly for its bounded send queue; reconnect and resume.
pub const CLOSE_SLOW_CONSUMER: u16 = 4008;
/// Server shutting down, or an idle peer dropped; reconnect with backoff.
pub const CLOSE_GOING_AWAY: u16 = 1001;
/// The client sent a binary frame.
pub const CLOSE_UNSUPPORTED_DATA: u16 = 1003;
/// The client sent a message over the size limit.
pub const CLOSE_TOO_BIG: u16 = 1009;

/// Largest message accepted from a client (API.md: 64 KiB).
pub const MAX_CLIENT_MESSAGE_BYTES: usize = 64 * 1024;

/// What a client may send.
#[derive(Debug, PartialEq, Eq)]
pub enum ClientMessage {
    Ping,
    /// Token refresh without reconnecting.
    Auth {
        token: String,
    },
}

/// Why a client message was refused; the connection stays open.
#[derive(Debug, PartialEq, Eq)]
pub enum ClientMessageError {
    /// Not JSON, not an object, or missing a string `type` / required field.
    Bad(String),
    /// A well-formed message of a type we do not know.
    UnknownType(String),
}

/// Parses a text frame from the client.
pub fn parse_client_message(text: &str) -> Result<ClientMessage, ClientMessageError> {
    let value: Value = serde_json::from_str(text)
        .map_err(|_| ClientMessageError::Bad("message is not valid JSON".into()))?;
    let Some(kind) = value.get("type").and_then(Value::as_str) else {
        return Err(ClientMessageError::Bad(
            "message must be a JSON object with a string \"type\"".into(),
        ));
    };
    match kind {
        "ping" => Ok(ClientMessage::Ping),
        "auth" => match value.get("token").and_then(Value::as_str) {
            Some(token) => Ok(ClientMessage::Auth {
                token: token.to_string(),
            }),
            None => Err(ClientMessageError::Bad(
                "an auth message needs a string \"token\"".into(),
            )),
        },
        other => Err(ClientMessageError::UnknownType(format!(
            "unknown message type {:?}",
            truncate(other, 64)
        ))),
    }
}

fn truncate(text: &str, max_chars: usize) -> String {
    text.chars().take(max_chars).collect()
}

/// `{"type": "pong"}`.
pub fn pong() -> Message {
    Message::text(r#"{"type":"pong"}"#)
}

/// `{"type": "error", "payload": {"code", "message"}}`.
pub fn error_frame(code: &str, message: &str) -> Message {
    Message::text(
        json!({"type": "error", "payload": {"code": code, "message": message}}).to_string(),
    )
}

/// A control frame `{"type", "payload", "timestamp"}` stamped now.
pub fn control_frame(kind: &str, payload: Value) -> Message {
    Message::text(
        json!({"type": kind, "payload": payload, "timestamp": crate::domain::Timestamp::now()})
            .to_string(),
    )
}

/// A close frame with `code` and a short reason.
pub fn close(code: u16, reason: &'static str) -> Message {
    Message::close_with(code, reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_known_messages_and_refuses_the_rest() {
        assert_eq!(
            parse_client_message(r#"{"type":"ping"}"#),
            Ok(ClientMessage::Ping)
        );
        assert_eq!(
            parse_client_message(r#"{"type":"auth","token":"t"}"#),
            Ok(ClientMessage::Auth { token: "t".into() })
        );
        let cases = [
            ("not json", "bad"),
            ("[1,2]", "bad"),
            (r#"{"type": 5}"#, "bad"),
            (r#"{"kind":"ping"}"#, "bad"),
            (r#"{"type":"auth"}"#, "bad"),
            (r#"{"type":"subscribe"}"#, "unknown"),
        ];
        for (input, expected) in cases {
            let got = match parse_client_message(input) {
                Err(ClientMessageError::Bad(_)) => "bad",
                Err(ClientMessageError::UnknownType(_)) => "unknown",
                Ok(_) => "ok",
            };
            assert_eq!(got, expected, "{input}");
        }
    }
}
