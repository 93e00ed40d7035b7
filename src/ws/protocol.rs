//! The WebSocket wire protocol: close codes, the server's control frames as typed structs,
//! and parsing client messages. Event frames are rendered once when the event is written
//! (`domain::Event`); every other frame a server sends is built here.

use crate::domain::{Role, Timestamp};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;
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
/// A frame that breaks RFC 6455 (unmasked, reserved bits, bad opcode or framing).
pub const CLOSE_PROTOCOL_ERROR: u16 = 1002;
/// A text frame (or close reason) that is not UTF-8.
pub const CLOSE_INVALID_PAYLOAD: u16 = 1007;

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

/// `user` in `connection_established`: who the token belongs to.
#[derive(Debug, Serialize)]
pub struct HelloUser<'a> {
    pub email: &'a str,
    pub id: Uuid,
    pub role: Role,
}

/// The payload of `connection_established`, the first frame of an accepted connection.
#[derive(Debug, Serialize)]
pub struct Hello<'a> {
    /// `dashboard`, `owner` or `business:<id>`.
    pub channel: &'a str,
    pub epoch: &'a str,
    /// When the token expires; the socket is closed with 4401 then unless refreshed.
    pub expires_at: Timestamp,
    /// The newest durable event id when the connection was accepted.
    pub last_event_id: u64,
    pub user: HelloUser<'a>,
}

/// The payload of `resync_required`: where the client stands after refetching over REST.
#[derive(Debug, Serialize)]
pub struct Resync<'a> {
    pub epoch: &'a str,
    pub last_event_id: u64,
}

/// The payload of `auth_ok`, the answer to a token refresh.
#[derive(Debug, Serialize)]
struct AuthOk {
    expires_at: Timestamp,
}

/// What went wrong with a client message (the `code` of an `error` frame).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// An `auth` message whose token is invalid, expired or another user's.
    BadToken,
    /// Not JSON, not an object, or missing a required field.
    BadMessage,
    /// A well-formed message of a type we do not know.
    UnknownType,
}

/// A control frame: `{"payload", "timestamp", "type"}`. Fields are declared in the order
/// serde_json wrote the `json!` maps these frames were built from (sorted by key), so the
/// bytes on the wire did not change when they became structs.
#[derive(Serialize)]
struct Control<'a, P> {
    payload: P,
    timestamp: Timestamp,
    #[serde(rename = "type")]
    kind: &'a str,
}

/// `{"payload": {"code", "message"}, "type": "error"}`; no timestamp.
#[derive(Serialize)]
struct ErrorFrame<'a> {
    payload: ErrorPayload<'a>,
    #[serde(rename = "type")]
    kind: &'a str,
}

#[derive(Serialize)]
struct ErrorPayload<'a> {
    code: ErrorCode,
    message: &'a str,
}

/// `{"type": "pong"}`.
#[derive(Serialize)]
struct Bare<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
}

/// `{"type": "pong"}`, the answer to a client's `ping` message.
pub fn pong() -> Message {
    text(&Bare { kind: "pong" })
}

/// `{"type": "error", "payload": {"code", "message"}}`; the connection stays open.
pub fn error_frame(code: ErrorCode, message: &str) -> Message {
    text(&ErrorFrame {
        payload: ErrorPayload { code, message },
        kind: "error",
    })
}

/// `connection_established`, stamped now.
pub fn connection_established(hello: &Hello<'_>) -> Message {
    control("connection_established", hello, Timestamp::now())
}

/// `resync_required`, stamped now: the client refetches over REST, then follows from
/// `last_event_id` (DESIGN invariant 2: never a partial replay).
pub fn resync_required(resync: &Resync<'_>) -> Message {
    control("resync_required", resync, Timestamp::now())
}

/// `auth_ok`, stamped now: the refreshed token expires at `expires_at`.
pub fn auth_ok(expires_at: Timestamp) -> Message {
    control("auth_ok", &AuthOk { expires_at }, Timestamp::now())
}

fn control(kind: &str, payload: &impl Serialize, timestamp: Timestamp) -> Message {
    text(&Control {
        payload,
        timestamp,
        kind,
    })
}

fn text(frame: &impl Serialize) -> Message {
    Message::text(
        serde_json::to_string(frame)
            .expect("server frames hold only strings, numbers, UUIDs and timestamps"),
    )
}

/// A close frame with `code` and a short reason.
pub fn close(code: u16, reason: &'static str) -> Message {
    Message::close_with(code, reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn text_of(frame: &Message) -> &str {
        frame.to_str().expect("a text frame")
    }

    /// The typed frames write the very bytes the `json!` maps they replaced wrote, so no
    /// client sees a change (field names, nesting, and key order).
    #[test]
    fn server_frames_keep_their_json_shapes_byte_for_byte() {
        let at = Timestamp::from_micros(1_700_000_000_123_456);
        let expires_at = Timestamp::from_micros(1_700_003_600_000_000);
        let id = Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
        let hello = Hello {
            channel: "business:x",
            epoch: "e1",
            expires_at,
            last_event_id: 7,
            user: HelloUser {
                email: "owner@example.com",
                id,
                role: Role::BusinessOwner,
            },
        };
        let cases = [
            (
                control("connection_established", &hello, at),
                json!({"type": "connection_established", "payload": {
                    "channel": "business:x",
                    "user": {"id": id, "email": "owner@example.com", "role": Role::BusinessOwner},
                    "last_event_id": 7,
                    "epoch": "e1",
                    "expires_at": expires_at,
                }, "timestamp": at}),
            ),
            (
                control(
                    "resync_required",
                    &Resync {
                        epoch: "e1",
                        last_event_id: 9,
                    },
                    at,
                ),
                json!({"type": "resync_required", "payload": {"epoch": "e1", "last_event_id": 9}, "timestamp": at}),
            ),
            (
                control("auth_ok", &AuthOk { expires_at }, at),
                json!({"type": "auth_ok", "payload": {"expires_at": expires_at}, "timestamp": at}),
            ),
            (
                error_frame(ErrorCode::UnknownType, "unknown message type \"x\""),
                json!({"type": "error", "payload": {"code": "unknown_type", "message": "unknown message type \"x\""}}),
            ),
            (pong(), json!({"type": "pong"})),
        ];
        for (built, before) in cases {
            assert_eq!(text_of(&built), before.to_string());
        }
        assert_eq!(
            text_of(&control(
                "resync_required",
                &Resync {
                    epoch: "e1",
                    last_event_id: 9
                },
                at
            )),
            r#"{"payload":{"epoch":"e1","last_event_id":9},"timestamp":"2023-11-14T22:13:20.123456Z","type":"resync_required"}"#
        );
        assert_eq!(
            text_of(&error_frame(ErrorCode::BadToken, "m")),
            r#"{"payload":{"code":"bad_token","message":"m"},"type":"error"}"#
        );
        assert_eq!(text_of(&pong()), r#"{"type":"pong"}"#);
    }

    #[test]
    fn error_codes_have_their_wire_names() {
        for (code, name) in [
            (ErrorCode::BadToken, "bad_token"),
            (ErrorCode::BadMessage, "bad_message"),
            (ErrorCode::UnknownType, "unknown_type"),
        ] {
            assert_eq!(json!(code), json!(name));
        }
    }

    #[test]
    fn stamped_frames_carry_the_current_time() {
        let before = Timestamp::now();
        let frame: Value = serde_json::from_str(text_of(&auth_ok(before))).expect("JSON");
        assert_eq!(frame["type"], "auth_ok");
        let stamped: Timestamp =
            serde_json::from_value(frame["timestamp"].clone()).expect("a timestamp");
        assert!(stamped >= before);
    }

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

    /// Client frames as an attacker writes them: arbitrary text, or JSON objects with
    /// arbitrary `type` and `token` values.
    fn client_frame() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let json_ish = (
            proptest::option::of(prop_oneof![
                Just(json!("ping")),
                Just(json!("auth")),
                ".{0,80}".prop_map(Value::from),
                any::<i64>().prop_map(Value::from),
            ]),
            proptest::option::of(prop_oneof![
                ".{0,200}".prop_map(Value::from),
                any::<bool>().prop_map(Value::from),
                Just(Value::Null),
            ]),
        )
            .prop_map(|(kind, token)| {
                let mut object = serde_json::Map::new();
                object.extend(kind.map(|kind| ("type".to_string(), kind)));
                object.extend(token.map(|token| ("token".to_string(), token)));
                Value::Object(object).to_string()
            });
        prop_oneof![".{0,300}", json_ish]
    }

    proptest::proptest! {
        /// DESIGN invariant 5: every client frame is understood or answered with a typed
        /// `error` frame (the session stays open); none panics. Runs proptest's default 256
        /// cases; `PROPTEST_CASES` raises it.
        #[test]
        fn invariant_5_any_client_frame_is_a_message_or_a_typed_error(text in client_frame()) {
            let reply = match parse_client_message(&text) {
                Ok(ClientMessage::Ping | ClientMessage::Auth { .. }) => return Ok(()),
                Err(ClientMessageError::Bad(reason)) => error_frame(ErrorCode::BadMessage, &reason),
                Err(ClientMessageError::UnknownType(reason)) => {
                    // At most 64 characters of the type are echoed, each escaped to 10 at most.
                    proptest::prop_assert!(reason.len() <= 32 + 64 * 10, "a bounded echo");
                    error_frame(ErrorCode::UnknownType, &reason)
                }
            };
            let frame: Value = serde_json::from_str(reply.to_str().expect("text frame"))
                .expect("error frames are JSON");
            proptest::prop_assert_eq!(&frame["type"], "error");
        }
    }
}
