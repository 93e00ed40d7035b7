//! A lean WebSocket client (RFC 6455) for holding tens of thousands of sockets in one process.
//!
//! The benchmark client shares two cores with the server, so every byte and cycle it spends per
//! socket is taken from what it measures. This client therefore keeps no read buffer while a
//! socket is idle: it waits for readiness, reads into a per-thread buffer, and only copies a partial
//! frame into the socket's own `pending` vector. Frames are decoded in place and handed to a
//! callback as byte slices; nothing is allocated per message. It speaks the real protocol on a
//! real TCP socket (handshake, masking, ping/pong, close), bound to a chosen `127.0.0.x` source
//! address so that one process can exceed the ephemeral-port range of a single address.

use std::cell::RefCell;
use std::future::poll_fn;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::Poll;
use std::time::Instant;

use anyhow::{anyhow, bail, Context};
use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};

/// Largest message the client accepts; the server caps its own frames at 64 KiB.
const MAX_MESSAGE_BYTES: usize = 1 << 20;
/// Bytes read per `read` call, into a per-thread buffer.
const READ_CHUNK_BYTES: usize = 16 * 1024;
/// A handshake response larger than this is not a WebSocket server.
const MAX_HANDSHAKE_BYTES: usize = 16 * 1024;

/// WebSocket opcodes used here.
pub const OP_CONTINUATION: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// One decoded frame, borrowing its payload from the read buffer.
#[derive(Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    pub fin: bool,
    pub opcode: u8,
    pub payload: &'a [u8],
}

/// Decodes one server-to-client frame from the front of `buf`.
///
/// Returns the frame and the number of bytes it used, or `None` when `buf` holds only part of
/// a frame.
///
/// # Errors
/// A masked frame (servers never mask) or one larger than [`MAX_MESSAGE_BYTES`].
pub fn decode_frame(buf: &[u8]) -> anyhow::Result<Option<(Frame<'_>, usize)>> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let fin = buf[0] & 0x80 != 0;
    let opcode = buf[0] & 0x0F;
    if buf[1] & 0x80 != 0 {
        bail!("server sent a masked frame");
    }
    let (len, header) = match buf[1] & 0x7F {
        126 => {
            if buf.len() < 4 {
                return Ok(None);
            }
            (u64::from(u16::from_be_bytes([buf[2], buf[3]])), 4)
        }
        127 => {
            if buf.len() < 10 {
                return Ok(None);
            }
            let mut be = [0u8; 8];
            be.copy_from_slice(&buf[2..10]);
            (u64::from_be_bytes(be), 10)
        }
        short => (u64::from(short), 2),
    };
    let len = usize::try_from(len)
        .ok()
        .filter(|&l| l <= MAX_MESSAGE_BYTES)
        .ok_or_else(|| anyhow!("frame of {len} bytes is over the client's limit"))?;
    if buf.len() < header + len {
        return Ok(None);
    }
    let frame = Frame {
        fin,
        opcode,
        payload: &buf[header..header + len],
    };
    Ok(Some((frame, header + len)))
}

/// Encodes one client-to-server frame (always final, always masked as RFC 6455 requires).
pub fn encode_frame(opcode: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 14);
    out.push(0x80 | opcode);
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n <= usize::from(u16::MAX) => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

/// What the server did since the last read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadOutcome {
    /// Bytes arrived; complete messages (if any) were handed to the callback.
    Open,
    /// The server sent a close frame (with its code, if any) or ended the TCP stream (`None`).
    Closed(Option<u16>),
}

/// One client WebSocket connection.
pub struct WsConn {
    stream: TcpStream,
    /// Bytes of a frame that has not fully arrived; empty (no allocation) while idle.
    pending: Vec<u8>,
    /// A fragmented message being reassembled (the server normally sends single frames).
    fragment: Option<Vec<u8>>,
}

impl WsConn {
    /// Connects from `source` (port chosen by the kernel) to `server`, performs the upgrade
    /// handshake for `path_and_query`, and returns the open connection.
    ///
    /// # Errors
    /// Any socket error, or a response other than `101 Switching Protocols`.
    pub async fn connect(
        source: IpAddr,
        server: SocketAddr,
        path_and_query: &str,
    ) -> anyhow::Result<Self> {
        let socket = match source {
            IpAddr::V4(_) => TcpSocket::new_v4()?,
            IpAddr::V6(_) => TcpSocket::new_v6()?,
        };
        // Lets a port in TIME_WAIT from an earlier run be reused for a new source binding.
        socket.set_reuseaddr(true)?;
        socket
            .bind(SocketAddr::new(source, 0))
            .with_context(|| format!("bind {source}"))?;
        let mut stream = socket.connect(server).await.context("connect")?;
        stream.set_nodelay(true)?;
        let key = base64_key(rand::random());
        let request = format!(
            "GET {path_and_query} HTTP/1.1\r\nHost: {server}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await?;
        let (head, rest) = read_handshake(&stream).await?;
        let status_line = head.lines().next().unwrap_or_default();
        if !status_line.starts_with("HTTP/1.1 101") {
            bail!("upgrade refused: {status_line}");
        }
        Ok(Self {
            stream,
            pending: rest,
            fragment: None,
        })
    }

    /// Waits until bytes arrive, then hands every complete text message to `on_text` along
    /// with the moment the bytes were read. Pings are answered; binary messages are ignored.
    ///
    /// # Errors
    /// Socket errors and protocol violations.
    pub async fn read<F>(&mut self, mut on_text: F) -> anyhow::Result<ReadOutcome>
    where
        F: FnMut(&[u8], Instant),
    {
        // Bytes decoded before `pending` held them: the common case needs no copy at all.
        if !self.pending.is_empty() {
            let pending = std::mem::take(&mut self.pending);
            let now = Instant::now();
            let step = self.decode_all(&pending, now, &mut on_text)?;
            self.keep_rest(&pending[step.used..]);
            if step.used > 0 {
                return Ok(self.finish(step).await?.unwrap_or(ReadOutcome::Open));
            }
        }
        let got = poll_fn(|cx| {
            READ_CHUNK.with(|cell| -> Poll<anyhow::Result<Got>> {
                let mut chunk = cell.borrow_mut();
                // `poll_read`, not `readable()` + `try_read`: after a read shorter than the
                // buffer, tokio clears the socket's readiness (the edge-triggered epoll will
                // report the next bytes), so a frame costs one `recvfrom` instead of one plus
                // an `EAGAIN` — a cost that fell only on servers whose frames do not pile up.
                let mut buf = ReadBuf::new(&mut chunk[..]);
                match Pin::new(&mut self.stream).poll_read(cx, &mut buf) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e.into())),
                    Poll::Ready(Ok(())) => {}
                }
                let n = buf.filled().len();
                if n == 0 {
                    return Poll::Ready(Ok(Got::Eof));
                }
                let now = Instant::now();
                let step = if self.pending.is_empty() {
                    let step = self.decode_all(&chunk[..n], now, &mut on_text)?;
                    self.keep_rest(&chunk[step.used..n]);
                    step
                } else {
                    let mut buf = std::mem::take(&mut self.pending);
                    buf.extend_from_slice(&chunk[..n]);
                    let step = self.decode_all(&buf, now, &mut on_text)?;
                    buf.drain(..step.used);
                    self.pending = buf;
                    step
                };
                Poll::Ready(Ok(Got::Step(step)))
            })
        })
        .await?;
        let step = match got {
            Got::Eof => return Ok(ReadOutcome::Closed(None)),
            Got::Step(step) => step,
        };
        if self.pending.is_empty() && self.pending.capacity() > READ_CHUNK_BYTES {
            self.pending = Vec::new();
        }
        Ok(self.finish(step).await?.unwrap_or(ReadOutcome::Open))
    }

    /// Sends one text message.
    ///
    /// # Errors
    /// Socket errors.
    pub async fn send_text(&mut self, text: &[u8]) -> anyhow::Result<()> {
        let frame = encode_frame(OP_TEXT, text, rand::random());
        self.stream.write_all(&frame).await?;
        Ok(())
    }

    /// Sends a normal close (1000) if the socket can take it right now, without waiting.
    pub fn close_now(&mut self) {
        let frame = encode_frame(OP_CLOSE, &1000u16.to_be_bytes(), rand::random());
        let _ = self.stream.try_write(&frame);
    }

    fn keep_rest(&mut self, rest: &[u8]) {
        self.pending.extend_from_slice(rest);
    }

    /// Answers pings collected while decoding and reports a close, if one arrived.
    async fn finish(&mut self, step: Step) -> anyhow::Result<Option<ReadOutcome>> {
        for payload in step.pings {
            let frame = encode_frame(OP_PONG, &payload, rand::random());
            self.stream.write_all(&frame).await?;
        }
        Ok(step.closed.map(ReadOutcome::Closed))
    }

    fn decode_all<F>(&mut self, buf: &[u8], now: Instant, on_text: &mut F) -> anyhow::Result<Step>
    where
        F: FnMut(&[u8], Instant),
    {
        let mut step = Step::default();
        while step.closed.is_none() {
            let Some((frame, used)) = decode_frame(&buf[step.used..])? else {
                break;
            };
            step.used += used;
            match frame.opcode {
                OP_TEXT | OP_BINARY if frame.fin => {
                    if frame.opcode == OP_TEXT {
                        on_text(frame.payload, now);
                    }
                }
                OP_TEXT | OP_BINARY => {
                    let mut first = Vec::with_capacity(frame.payload.len() * 2);
                    first.extend_from_slice(frame.payload);
                    self.fragment = Some(first);
                }
                OP_CONTINUATION => {
                    let whole = self
                        .fragment
                        .as_mut()
                        .ok_or_else(|| anyhow!("continuation frame without a first frame"))?;
                    whole.extend_from_slice(frame.payload);
                    if whole.len() > MAX_MESSAGE_BYTES {
                        bail!("fragmented message over the client's limit");
                    }
                    if frame.fin {
                        let whole = self.fragment.take().unwrap_or_default();
                        on_text(&whole, now);
                    }
                }
                OP_PING => step.pings.push(frame.payload.to_vec()),
                OP_PONG => {}
                OP_CLOSE => {
                    let code = (frame.payload.len() >= 2)
                        .then(|| u16::from_be_bytes([frame.payload[0], frame.payload[1]]));
                    step.closed = Some(code);
                }
                other => bail!("unknown opcode {other:#x}"),
            }
        }
        Ok(step)
    }
}

thread_local! {
    /// The read buffer of every socket served by this thread: borrowed only within one poll
    /// of a read, so an idle socket owns no buffer at all.
    static READ_CHUNK: RefCell<Box<[u8]>> = RefCell::new(vec![0; READ_CHUNK_BYTES].into());
}

/// What one read got.
enum Got {
    Eof,
    Step(Step),
}

/// What one pass of decoding found.
#[derive(Default)]
struct Step {
    used: usize,
    pings: Vec<Vec<u8>>,
    closed: Option<Option<u16>>,
}

/// Reads the handshake response head; returns it and any bytes that followed it.
async fn read_handshake(stream: &TcpStream) -> anyhow::Result<(String, Vec<u8>)> {
    let mut buf = Vec::with_capacity(512);
    loop {
        stream.readable().await?;
        let mut chunk = [0u8; 2048];
        match stream.try_read(&mut chunk) {
            Ok(0) => bail!("connection closed during the handshake"),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e.into()),
        }
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return Ok((String::from_utf8_lossy(&buf).into_owned(), rest));
        }
        if buf.len() > MAX_HANDSHAKE_BYTES {
            bail!("handshake response too large");
        }
    }
}

/// Position of `needle` in `haystack`.
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A `Sec-WebSocket-Key`: 16 random bytes in base64.
fn base64_key(bytes: [u8; 16]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_frame(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
        match payload.len() {
            n if n < 126 => out.push(n as u8),
            n if n <= 65535 => {
                out.push(126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn decodes_short_medium_and_long_frames() {
        for len in [0usize, 5, 125, 126, 300, 65535, 65536, 70000] {
            let payload = vec![b'x'; len];
            let bytes = server_frame(OP_TEXT, true, &payload);
            let (frame, used) = decode_frame(&bytes).unwrap().unwrap();
            assert_eq!(used, bytes.len(), "len {len}");
            assert_eq!(frame.payload.len(), len);
            assert!(frame.fin);
            assert_eq!(frame.opcode, OP_TEXT);
        }
    }

    #[test]
    fn partial_frame_is_incomplete_not_an_error() {
        let bytes = server_frame(OP_TEXT, true, &[b'a'; 300]);
        for cut in 0..bytes.len() {
            assert!(decode_frame(&bytes[..cut]).unwrap().is_none(), "cut {cut}");
        }
    }

    #[test]
    fn masked_server_frame_is_rejected() {
        assert!(decode_frame(&[0x81, 0x80, 0, 0, 0, 0]).is_err());
    }

    #[test]
    fn encoded_client_frame_unmasks_to_the_payload() {
        let payload = br#"{"type":"ping"}"#;
        let mask = [1, 2, 3, 4];
        let bytes = encode_frame(OP_TEXT, payload, mask);
        assert_eq!(bytes[0], 0x81);
        assert_eq!(bytes[1], 0x80 | payload.len() as u8);
        assert_eq!(&bytes[2..6], &mask);
        let unmasked: Vec<u8> = bytes[6..]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ mask[i % 4])
            .collect();
        assert_eq!(unmasked, payload);
    }

    #[test]
    fn finds_needles() {
        assert_eq!(find(b"abc\r\n\r\nrest", b"\r\n\r\n"), Some(3));
        assert_eq!(find(b"abc", b"zz"), None);
    }

    #[tokio::test]
    async fn reads_messages_across_partial_writes_and_answers_pings() {
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut head = vec![0u8; 1024];
            let n = s.read(&mut head).await.unwrap();
            assert!(String::from_utf8_lossy(&head[..n]).contains("Upgrade: websocket"));
            let mut out = b"HTTP/1.1 101 Switching Protocols\r\n\r\n".to_vec();
            out.extend(server_frame(OP_TEXT, true, b"first"));
            s.write_all(&out).await.unwrap();
            let mut more = server_frame(OP_PING, true, b"p");
            more.extend(server_frame(OP_TEXT, false, b"sec"));
            more.extend(server_frame(OP_CONTINUATION, true, b"ond"));
            let big = server_frame(OP_TEXT, true, &[b'z'; 40_000]);
            more.extend_from_slice(&big[..100]);
            s.write_all(&more).await.unwrap();
            // The client answers the ping with a masked pong.
            let mut pong = [0u8; 7];
            s.read_exact(&mut pong).await.unwrap();
            assert_eq!(pong[0], 0x80 | OP_PONG);
            s.write_all(&big[100..]).await.unwrap();
            s.write_all(&server_frame(OP_CLOSE, true, &4008u16.to_be_bytes()))
                .await
                .unwrap();
        });
        let mut ws = WsConn::connect("127.0.0.1".parse().unwrap(), addr, "/ws/")
            .await
            .unwrap();
        let mut got: Vec<usize> = Vec::new();
        let mut texts: Vec<Vec<u8>> = Vec::new();
        let closed = loop {
            match ws
                .read(|m, _| {
                    got.push(m.len());
                    if m.len() < 100 {
                        texts.push(m.to_vec());
                    }
                })
                .await
                .unwrap()
            {
                ReadOutcome::Open => continue,
                ReadOutcome::Closed(code) => break code,
            }
        };
        server.await.unwrap();
        assert_eq!(texts, vec![b"first".to_vec(), b"second".to_vec()]);
        assert_eq!(got, vec![5, 6, 40_000]);
        assert_eq!(closed, Some(4008));
    }
}
