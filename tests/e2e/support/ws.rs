//! A WebSocket test client: connect with a token, read frames with a deadline, expect closes.

use super::SOON;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// What a read produced.
#[derive(Debug, Clone, PartialEq)]
pub enum WsEvent {
    /// A text frame, parsed.
    Frame(Value),
    /// A close frame with its code.
    Closed(u16),
    /// The connection ended without a close frame.
    Gone,
}

/// An open test socket.
pub struct Ws {
    pub socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Ws {
    /// Connects to `ws_base` + `path_and_query` (e.g. `/ws/dashboard/?token=…`).
    pub async fn connect(ws_base: &str, path_and_query: &str) -> Ws {
        Self::connect_with_origin(ws_base, path_and_query, None)
            .await
            .expect("WebSocket upgrade accepted")
    }

    /// Connects with an `Origin` header; `Err(status)` when the upgrade is refused.
    pub async fn connect_with_origin(
        ws_base: &str,
        path_and_query: &str,
        origin: Option<&str>,
    ) -> Result<Ws, u16> {
        let mut request = format!("{ws_base}{path_and_query}")
            .into_client_request()
            .expect("request");
        if let Some(origin) = origin {
            request
                .headers_mut()
                .insert("origin", origin.parse().expect("origin header"));
        }
        match tokio_tungstenite::connect_async(request).await {
            Ok((socket, _)) => Ok(Ws { socket }),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                Err(response.status().as_u16())
            }
            Err(error) => panic!("connect failed: {error}"),
        }
    }

    /// Connects to a channel with a token and optional resume position.
    pub async fn channel(
        ws_base: &str,
        channel_path: &str,
        token: &str,
        resume: Option<(u64, &str)>,
    ) -> Ws {
        let mut path = format!("{channel_path}?token={token}");
        if let Some((id, epoch)) = resume {
            path.push_str(&format!("&last_event_id={id}"));
            if !epoch.is_empty() {
                path.push_str(&format!("&epoch={epoch}"));
            }
        }
        Self::connect(ws_base, &path).await
    }

    /// The next text frame or close, within `within`; `None` on timeout.
    pub async fn read_within(&mut self, within: Duration) -> Option<WsEvent> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let next = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .ok()?;
            return Some(match next {
                Some(Ok(Message::Text(text))) => {
                    WsEvent::Frame(serde_json::from_str(&text).expect("server frames are JSON"))
                }
                Some(Ok(Message::Close(frame))) => {
                    WsEvent::Closed(frame.map(|f| u16::from(f.code)).unwrap_or(1005))
                }
                Some(Ok(Message::Binary(_))) => panic!("server sent a binary frame"),
                Some(Ok(_)) => continue, // ping/pong
                Some(Err(_)) | None => WsEvent::Gone,
            });
        }
    }

    /// The next text frame (panics on close or timeout).
    pub async fn frame(&mut self) -> Value {
        match self.read_within(SOON).await {
            Some(WsEvent::Frame(frame)) => frame,
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    /// The next event frame (one with an `id`), skipping control frames.
    pub async fn event(&mut self) -> Value {
        loop {
            let frame = self.frame().await;
            if frame.get("id").and_then(Value::as_u64).is_some() {
                return frame;
            }
        }
    }

    /// The next `n` event frames.
    pub async fn events(&mut self, n: usize) -> Vec<Value> {
        let mut events = Vec::with_capacity(n);
        for _ in 0..n {
            events.push(self.event().await);
        }
        events
    }

    /// Expects the connection to close with a close frame; returns its code.
    pub async fn closed(&mut self) -> u16 {
        loop {
            match self.read_within(SOON).await {
                Some(WsEvent::Closed(code)) => return code,
                Some(WsEvent::Frame(_)) => continue,
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    }

    /// Asserts that nothing arrives within `within` (used sparingly: it waits).
    pub async fn silent_for(&mut self, within: Duration) {
        if let Some(event) = self.read_within(within).await {
            panic!("expected silence, got {event:?}");
        }
    }

    /// Sends a text frame.
    pub async fn send_text(&mut self, text: &str) {
        self.socket.send(Message::text(text)).await.expect("send");
    }

    /// Sends a raw message.
    pub async fn send(&mut self, message: Message) {
        self.socket.send(message).await.expect("send");
    }
}
