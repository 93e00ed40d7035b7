//! `SmtpSink`: a real SMTP server on a local TCP port for the mail tests, plus just enough
//! MIME reading (headers, RFC 2047 subjects, multipart parts) to check what arrived.
//!
//! It speaks the protocol lettre uses (EHLO/HELO, MAIL, RCPT, DATA with dot-stuffing, RSET,
//! NOOP, QUIT), answers RCPT with 4xx or 5xx on demand, and can go down (port closed, open
//! connections dropped) and come back up on the same port. A mail is recorded when its final
//! "." arrives, before the 250 answer — so a client killed in between resends it, like with a
//! real server.

use base64::Engine;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How the sink answers `RCPT TO`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpMode {
    /// 250: take every mail.
    Accept,
    /// 451: try again later.
    TempFail,
    /// 550: never.
    PermFail,
    /// 550, in an answer of 100 lines of 911 bytes each: about as long as lettre reads one
    /// (100 000 bytes, 1 000 a line).
    PermFailWordy,
}

/// One mail the sink took.
#[derive(Debug, Clone)]
pub struct ReceivedMail {
    /// The envelope sender (`MAIL FROM`).
    pub mail_from: String,
    /// The envelope recipients (`RCPT TO`).
    pub rcpt_to: Vec<String>,
    /// The message as sent, dot-stuffing removed.
    pub raw: String,
}

#[derive(Debug)]
struct Shared {
    mode: SmtpMode,
    /// Pause between recording a mail and answering 250 (widens the crash window).
    accept_delay: Duration,
    received: Vec<ReceivedMail>,
    /// `MAIL FROM` commands seen: one per delivery attempt.
    attempts: u64,
}

struct Running {
    stop: CancellationToken,
    sessions: TaskTracker,
}

/// A local SMTP server; stops when dropped.
pub struct SmtpSink {
    addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    running: Option<Running>,
}

impl SmtpSink {
    /// Starts accepting on a free port of 127.0.0.1.
    pub async fn start() -> Self {
        let listener = listen("127.0.0.1:0".parse().expect("address")).expect("bind the sink");
        let addr = listener.local_addr().expect("sink address");
        let mut sink = Self {
            addr,
            shared: Arc::new(Mutex::new(Shared {
                mode: SmtpMode::Accept,
                accept_delay: Duration::ZERO,
                received: Vec::new(),
                attempts: 0,
            })),
            running: None,
        };
        sink.serve(listener);
        sink
    }

    /// `smtp://127.0.0.1:PORT` (plain SMTP, for `--smtp-url`).
    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    /// Changes how `RCPT TO` is answered from now on.
    pub fn set_mode(&self, mode: SmtpMode) {
        self.shared.lock().unwrap().mode = mode;
    }

    /// Waits this long after recording each mail before answering 250.
    pub fn set_accept_delay(&self, delay: Duration) {
        self.shared.lock().unwrap().accept_delay = delay;
    }

    /// Every mail taken so far, in arrival order.
    pub fn received(&self) -> Vec<ReceivedMail> {
        self.shared.lock().unwrap().received.clone()
    }

    /// Delivery attempts so far (accepted or not).
    pub fn attempts(&self) -> u64 {
        self.shared.lock().unwrap().attempts
    }

    /// Closes the port and drops every open connection: clients get "connection refused".
    pub async fn down(&mut self) {
        if let Some(running) = self.running.take() {
            running.stop.cancel();
            running.sessions.close();
            running.sessions.wait().await;
        }
    }

    /// Listens again on the same port.
    pub async fn up(&mut self) {
        assert!(self.running.is_none(), "the sink is already up");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let listener = loop {
            match listen(self.addr) {
                Ok(listener) => break listener,
                Err(error) if tokio::time::Instant::now() < deadline => {
                    eprintln!("rebinding {}: {error}", self.addr);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(error) => panic!("cannot rebind the sink on {}: {error}", self.addr),
            }
        };
        self.serve(listener);
    }

    fn serve(&mut self, listener: TcpListener) {
        let stop = CancellationToken::new();
        let sessions = TaskTracker::new();
        sessions.spawn(accept_loop(
            listener,
            self.shared.clone(),
            stop.clone(),
            sessions.clone(),
        ));
        self.running = Some(Running { stop, sessions });
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            running.stop.cancel();
        }
    }
}

/// A listening socket with SO_REUSEADDR, so `up()` can take the same port right back.
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(128)
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Mutex<Shared>>,
    stop: CancellationToken,
    sessions: TaskTracker,
) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let (shared, stop) = (shared.clone(), stop.clone());
                sessions.spawn(async move {
                    tokio::select! {
                        () = stop.cancelled() => {}
                        _ = session(stream, shared) => {}
                    }
                });
            }
        }
    }
}

/// One SMTP conversation. Returns on QUIT, on a closed connection or on an I/O error.
async fn session(stream: TcpStream, shared: Arc<Mutex<Shared>>) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    write.write_all(b"220 sink.test ESMTP ready\r\n").await?;
    let mut mail_from: Option<String> = None;
    let mut rcpt_to: Vec<String> = Vec::new();
    loop {
        let Some(line) = read_line(&mut lines).await? else {
            return Ok(());
        };
        let verb = line
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        let reply: String = match verb.as_str() {
            "EHLO" => "250-sink.test\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 SIZE 10485760".into(),
            "HELO" => "250 sink.test".into(),
            "MAIL" => {
                shared.lock().unwrap().attempts += 1;
                mail_from = Some(angle_address(&line));
                rcpt_to.clear();
                "250 2.1.0 sender ok".into()
            }
            "RCPT" if mail_from.is_none() => "503 5.5.1 MAIL first".into(),
            "RCPT" => match shared.lock().unwrap().mode {
                SmtpMode::Accept => {
                    rcpt_to.push(angle_address(&line));
                    "250 2.1.5 recipient ok".into()
                }
                SmtpMode::TempFail => "451 4.3.0 try again later".into(),
                SmtpMode::PermFail => "550 5.1.1 mailbox unavailable".into(),
                SmtpMode::PermFailWordy => {
                    let line = format!("550-5.1.1 {}\r\n", "x".repeat(900));
                    format!("{}550 5.1.1 mailbox unavailable", line.repeat(100))
                }
            },
            "DATA" if rcpt_to.is_empty() => "503 5.5.1 RCPT first".into(),
            "DATA" => {
                write.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
                let Some(raw) = read_data(&mut lines).await? else {
                    return Ok(());
                };
                let mail = ReceivedMail {
                    mail_from: mail_from.take().unwrap_or_default(),
                    rcpt_to: std::mem::take(&mut rcpt_to),
                    raw,
                };
                let delay = {
                    let mut shared = shared.lock().unwrap();
                    shared.received.push(mail);
                    shared.accept_delay
                };
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                "250 2.0.0 queued".into()
            }
            "RSET" => {
                mail_from = None;
                rcpt_to.clear();
                "250 2.0.0 reset".into()
            }
            "NOOP" => "250 2.0.0 ok".into(),
            "QUIT" => {
                write.write_all(b"221 2.0.0 bye\r\n").await?;
                return Ok(());
            }
            _ => "502 5.5.2 command not recognized".into(),
        };
        write.write_all(format!("{reply}\r\n").as_bytes()).await?;
    }
}

/// One line without its CRLF; `None` at end of stream.
async fn read_line<R: tokio::io::AsyncBufRead + Unpin>(
    lines: &mut R,
) -> std::io::Result<Option<String>> {
    let mut bytes = Vec::new();
    if lines.read_until(b'\n', &mut bytes).await? == 0 {
        return Ok(None);
    }
    let text = String::from_utf8_lossy(&bytes);
    Ok(Some(text.trim_end_matches(['\r', '\n']).to_string()))
}

/// The DATA section up to the lone ".", dot-stuffing undone, lines joined with CRLF.
async fn read_data<R: tokio::io::AsyncBufRead + Unpin>(
    lines: &mut R,
) -> std::io::Result<Option<String>> {
    let mut raw = String::new();
    loop {
        let Some(line) = read_line(lines).await? else {
            return Ok(None);
        };
        if line == "." {
            return Ok(Some(raw));
        }
        raw.push_str(line.strip_prefix('.').unwrap_or(&line));
        raw.push_str("\r\n");
    }
}

/// `MAIL FROM:<a@b> BODY=8BITMIME` → `a@b`.
fn angle_address(line: &str) -> String {
    let start = line.find('<').map_or(0, |i| i + 1);
    let end = line[start..].find('>').map_or(line.len(), |i| start + i);
    line[start..end].to_string()
}

/// A MIME entity (a whole message or one part): unfolded headers and the raw body.
#[derive(Debug, Clone)]
pub struct MimeEntity {
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl MimeEntity {
    /// Splits `raw` at the first blank line and unfolds the headers.
    pub fn parse(raw: &str) -> Self {
        let (head, body) = raw
            .split_once("\r\n\r\n")
            .unwrap_or((raw.trim_end_matches("\r\n"), ""));
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in head.split("\r\n") {
            if line.starts_with([' ', '\t']) {
                if let Some((_, value)) = headers.last_mut() {
                    value.push_str(line);
                }
            } else if let Some((name, value)) = line.split_once(':') {
                headers.push((name.trim().to_string(), value.trim().to_string()));
            }
        }
        Self {
            headers,
            body: body.to_string(),
        }
    }

    /// Every value of header `name` (case-insensitive), as written.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.headers
            .iter()
            .filter(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.clone())
            .collect()
    }

    /// The one value of header `name`, as written; panics when it is missing or repeated.
    pub fn header(&self, name: &str) -> String {
        let values = self.all(name);
        assert_eq!(values.len(), 1, "header {name} in {:?}", self.headers);
        values[0].clone()
    }

    /// A header with its RFC 2047 encoded words decoded (e.g. a UTF-8 subject).
    pub fn decoded(&self, name: &str) -> String {
        decode_words(&self.header(name))
    }

    /// The parts of a multipart entity.
    pub fn parts(&self) -> Vec<MimeEntity> {
        let content_type = self.header("Content-Type");
        let boundary = content_type
            .split(';')
            .find_map(|param| param.trim().strip_prefix("boundary="))
            .map(|value| value.trim_matches('"').to_string())
            .unwrap_or_else(|| panic!("no boundary in {content_type}"));
        let delimiter = format!("--{boundary}");
        self.body
            .split(&delimiter)
            .skip(1)
            .take_while(|chunk| !chunk.starts_with("--"))
            .map(|chunk| MimeEntity::parse(chunk.trim_start_matches("\r\n")))
            .collect()
    }

    /// The body with its Content-Transfer-Encoding undone, as UTF-8.
    pub fn text(&self) -> String {
        let encoding = self
            .all("Content-Transfer-Encoding")
            .pop()
            .unwrap_or_default();
        let bytes = match encoding.to_ascii_lowercase().as_str() {
            "base64" => base64::engine::general_purpose::STANDARD
                .decode(self.body.split_whitespace().collect::<String>())
                .expect("base64 body"),
            "quoted-printable" => decode_quoted_printable(&self.body),
            _ => self.body.clone().into_bytes(),
        };
        String::from_utf8(bytes).expect("UTF-8 body")
    }

    /// The decoded body of the part whose Content-Type starts with `mime` (e.g. `text/html`).
    pub fn part_text(&self, mime: &str) -> String {
        let parts = self.parts();
        let part = parts
            .iter()
            .find(|part| part.header("Content-Type").starts_with(mime))
            .unwrap_or_else(|| panic!("no {mime} part"));
        part.text()
    }
}

impl ReceivedMail {
    /// The message, parsed.
    pub fn mime(&self) -> MimeEntity {
        MimeEntity::parse(&self.raw)
    }

    /// Its `Message-ID` header.
    pub fn message_id(&self) -> String {
        self.mime().header("Message-ID")
    }

    /// Its decoded `Subject`.
    pub fn subject(&self) -> String {
        self.mime().decoded("Subject")
    }
}

/// Decodes RFC 2047 encoded words (`=?utf-8?b?…?=` / `=?utf-8?q?…?=`); whitespace between two
/// encoded words is dropped, as the RFC says.
pub fn decode_words(value: &str) -> String {
    let mut out = String::new();
    let mut previous_was_word = false;
    for token in value.split_whitespace() {
        let decoded = decode_word(token);
        let is_word = decoded.is_some();
        let between_words = previous_was_word && is_word;
        if !out.is_empty() && !between_words {
            out.push(' ');
        }
        out.push_str(&decoded.unwrap_or_else(|| token.to_string()));
        previous_was_word = is_word;
    }
    out
}

fn decode_word(token: &str) -> Option<String> {
    let inner = token.strip_prefix("=?")?.strip_suffix("?=")?;
    let mut pieces = inner.splitn(3, '?');
    let (_charset, encoding, text) = (pieces.next()?, pieces.next()?, pieces.next()?);
    let bytes = match encoding.to_ascii_lowercase().as_str() {
        "b" => base64::engine::general_purpose::STANDARD
            .decode(text)
            .ok()?,
        "q" => decode_quoted_printable(&text.replace('_', " ")),
        _ => return None,
    };
    String::from_utf8(bytes).ok()
}

/// Quoted-printable: `=XX` escapes and `=` soft line breaks.
pub fn decode_quoted_printable(text: &str) -> Vec<u8> {
    let text = text.replace("=\r\n", "").replace("=\n", "");
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok());
        match (bytes[i], hex) {
            (b'=', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    out
}

/// The mails grouped by Message-ID (a mail sent twice shows as a group of two).
pub fn by_message_id(
    mails: &[ReceivedMail],
) -> std::collections::BTreeMap<String, Vec<&ReceivedMail>> {
    let mut groups: std::collections::BTreeMap<String, Vec<&ReceivedMail>> =
        std::collections::BTreeMap::new();
    for mail in mails {
        groups.entry(mail.message_id()).or_default().push(mail);
    }
    groups
}
