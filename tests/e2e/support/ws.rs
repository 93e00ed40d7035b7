//! WebSocket test clients: [`Ws`] connects with a token, reads frames with a deadline and
//! expects closes (optionally over a small kernel receive buffer, to play a slow reader);
//! [`SilentPeer`] reads raw frames and never writes, to play a peer that has gone quiet.

use super::SOON;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
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

    /// Connects like [`Ws::connect`], over a socket whose kernel receive buffer is fixed at
    /// `bytes`: a client that stops reading then backs up into the server after kilobytes,
    /// not the megabytes loopback would otherwise buffer for it.
    pub async fn connect_with_receive_buffer(
        ws_base: &str,
        path_and_query: &str,
        bytes: u32,
    ) -> Ws {
        let addr = ws_base
            .trim_start_matches("ws://")
            .parse()
            .expect("ws://IP:PORT");
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(bytes).expect("SO_RCVBUF");
        let stream = socket.connect(addr).await.expect("connect");
        let request = format!("{ws_base}{path_and_query}")
            .into_client_request()
            .expect("request");
        let (socket, _) = tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(stream))
            .await
            .expect("WebSocket upgrade accepted");
        Ws { socket }
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

/// A frame as a [`SilentPeer`] sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum RawFrame {
    Text(String),
    Ping,
    /// A close frame's code (1005 when it carries none).
    Close(u16),
    /// Binary, pong or continuation: opcode and payload length.
    Other(u8, usize),
}

/// A peer that completes the handshake and then only reads: it never writes a byte, not even
/// the pong a ping asks for. (A tungstenite client answers every ping as part of reading, so
/// it cannot play a silent peer.)
pub struct SilentPeer {
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl SilentPeer {
    /// Opens `path_and_query` on `addr` (`127.0.0.1:PORT`); panics unless the server upgrades.
    pub async fn connect(addr: &str, path_and_query: &str) -> SilentPeer {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let key = tokio_tungstenite::tungstenite::handshake::client::generate_key();
        let request = format!(
            "GET {path_and_query} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream
            .write_all(request.as_bytes())
            .await
            .expect("send handshake");
        let mut peer = SilentPeer {
            stream,
            buffer: Vec::new(),
        };
        let end = loop {
            if let Some(end) = peer.buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            assert!(peer.fill().await, "server closed during the handshake");
        };
        let head = String::from_utf8_lossy(&peer.buffer[..end]).to_string();
        assert!(head.starts_with("HTTP/1.1 101"), "not upgraded: {head}");
        peer.buffer.drain(..end);
        peer
    }

    /// The next frame, or `None` when the server closed the connection; panics after
    /// [`SOON`] without one.
    pub async fn frame(&mut self) -> Option<RawFrame> {
        tokio::time::timeout(SOON, self.read_frame())
            .await
            .expect("a frame or the end of the connection in time")
    }

    async fn read_frame(&mut self) -> Option<RawFrame> {
        // Server frames are unmasked (RFC 6455 §5.1) and, from this server, never fragmented.
        let (opcode, header, len) = loop {
            if let Some(parsed) = parse_header(&self.buffer) {
                break parsed;
            }
            if !self.fill().await {
                return None;
            }
        };
        while self.buffer.len() < header + len {
            if !self.fill().await {
                return None;
            }
        }
        let payload: Vec<u8> = self.buffer.drain(..header + len).skip(header).collect();
        Some(match opcode {
            0x1 => RawFrame::Text(String::from_utf8(payload).expect("text frames are UTF-8")),
            0x8 if payload.len() >= 2 => {
                RawFrame::Close(u16::from_be_bytes([payload[0], payload[1]]))
            }
            0x8 => RawFrame::Close(1005),
            0x9 => RawFrame::Ping,
            other => RawFrame::Other(other, len),
        })
    }

    /// Writes raw bytes on the socket: a frame that breaks the protocol, which no WebSocket
    /// library would send (the only time this peer writes after its handshake).
    pub async fn write_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write raw bytes");
    }

    /// Reads more bytes into the buffer; `false` at the end of the stream.
    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 4096];
        match self.stream.read(&mut chunk).await {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buffer.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }
}

/// `(opcode, header length, payload length)` of the frame at the start of `buffer`, once
/// its whole header is there.
fn parse_header(buffer: &[u8]) -> Option<(u8, usize, usize)> {
    let (&first, &second) = (buffer.first()?, buffer.get(1)?);
    assert_eq!(second & 0x80, 0, "server frames are not masked");
    let (header, len) = match second & 0x7f {
        126 => (
            4,
            u64::from(u16::from_be_bytes(buffer.get(2..4)?.try_into().ok()?)),
        ),
        127 => (10, u64::from_be_bytes(buffer.get(2..10)?.try_into().ok()?)),
        short => (2, u64::from(short)),
    };
    Some((
        first & 0x0f,
        header,
        usize::try_from(len).expect("frame fits in memory"),
    ))
}
