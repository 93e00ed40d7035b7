//! SMTP delivery on connections the mailer opens itself, kept in a small pool ([`SmtpPool`]).
//!
//! Why not lettre's `AsyncSmtpTransport`: it opens its sockets with Nagle's algorithm on and
//! writes a message's end marker (`CRLF . CRLF`) as a segment of its own after the body. The
//! kernel holds that small segment until the server acknowledges the body, and a server with
//! nothing to answer yet delays its ACK (~40 ms on Linux, the same on Postfix or a cloud
//! relay), so every mail waited out that timer: 83–87 mails/s over 4 connections, ~42.8 ms
//! of each mail's ~44 ms spent between the body and its end marker (docs/bench.md, "Mail
//! over SMTP"). Here each socket is opened with `TCP_NODELAY` and handed to lettre's
//! `AsyncSmtpConnection` — the same SMTP conversation, STARTTLS, implicit TLS and AUTH — so the
//! marker leaves at once and a mail costs its four round trips.
//!
//! The pool lets [`SmtpPool::new`]'s `concurrency` conversations run at once, reuses idle
//! connections (checked with NOOP when they idled past [`CHECK_AFTER_IDLE`], closed past
//! [`MAX_IDLE`]), bounds every step by [`SMTP_TIMEOUT`] and drops a connection after any
//! error, so a half-finished conversation is never reused.

use super::{MailError, SMTP_TIMEOUT};
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
use lettre::transport::smtp::client::{AsyncSmtpConnection, AsyncTokioStream, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::time::{timeout, Instant};

/// An idle connection older than this is closed instead of reused (servers drop idle
/// clients after a few minutes; Postfix's `smtpd_timeout` is 300 s).
pub const MAX_IDLE: Duration = Duration::from_secs(60);
/// A connection idle longer than this answers a NOOP before it carries a mail, so a server
/// that closed it meanwhile costs a reconnect, not a failed try. During a burst connections
/// are reused within milliseconds and skip it.
pub const CHECK_AFTER_IDLE: Duration = Duration::from_secs(2);

/// Where and how to reach the SMTP server: the parts of `APP_SMTP_URL`, read the way
/// lettre's `from_url` reads them (same schemes, `tls=` values, default ports, EHLO name from
/// the path, percent-encoded credentials).
#[derive(Clone)]
pub struct SmtpSettings {
    host: String,
    port: u16,
    tls: Tls,
    credentials: Option<Credentials>,
    hello: ClientId,
}

impl SmtpSettings {
    /// Reads `url` (`smtp://`, `smtp://…?tls=required|opportunistic`, `smtps://user:pass@…`).
    ///
    /// # Errors
    /// [`MailError::Config`], without the URL (it may hold a password).
    pub fn from_url(url: &str) -> Result<Self, MailError> {
        let unusable = |why: &str| MailError::Config(format!("APP_SMTP_URL is unusable: {why}"));
        let parsed = url::Url::parse(url).map_err(|error| unusable(&error.to_string()))?;
        let host = parsed
            .host_str()
            .filter(|host| !host.is_empty())
            .ok_or_else(|| unusable("no host"))?;
        // `[::1]` comes back bracketed; the socket and the TLS name want it bare.
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let tls_param = parsed
            .query_pairs()
            .find(|(key, _)| key == "tls")
            .map(|(_, value)| value.into_owned());
        let tls_parameters =
            || TlsParameters::new(host.clone()).map_err(|error| unusable(&error.to_string()));
        let (port, tls) = match (parsed.scheme(), tls_param.as_deref()) {
            ("smtp", None) => (25, Tls::None),
            ("smtp", Some("required")) => (587, Tls::Required(tls_parameters()?)),
            ("smtp", Some("opportunistic")) => (587, Tls::Opportunistic(tls_parameters()?)),
            ("smtps", _) => (465, Tls::Wrapper(tls_parameters()?)),
            _ => return Err(unusable("unknown scheme or tls= value")),
        };
        let hello = match parsed.path().trim_matches('/') {
            "" => ClientId::default(),
            name => ClientId::Domain(name.to_owned()),
        };
        let credentials = parsed.password().map(|password| {
            Credentials::new(percent_decode(parsed.username()), percent_decode(password))
        });
        Ok(Self {
            port: parsed.port().unwrap_or(port),
            host,
            tls,
            credentials,
            hello,
        })
    }

    /// A new conversation: TCP with `TCP_NODELAY`, TLS as configured, EHLO, AUTH.
    async fn connect(&self) -> Result<AsyncSmtpConnection, MailError> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .and_then(|tcp| {
                // The point of this module: the end marker must not wait for the body's ACK.
                tcp.set_nodelay(true)?;
                Ok(tcp)
            })
            .map_err(|error| {
                MailError::Transient(format!("cannot connect to the SMTP server: {error}"))
            })?;
        self.converse(tcp)
            .await
            .map_err(|error| MailError::from_smtp(&error))
    }

    /// TLS as configured, EHLO and AUTH on a connected socket.
    async fn converse(
        &self,
        tcp: TcpStream,
    ) -> Result<AsyncSmtpConnection, lettre::transport::smtp::Error> {
        let stream: Box<dyn AsyncTokioStream> = match &self.tls {
            Tls::Wrapper(parameters) => Box::new(ImplicitTls::wrap(tcp, parameters).await?),
            _ => Box::new(tcp),
        };
        let mut conn = AsyncSmtpConnection::connect_with_transport(stream, &self.hello).await?;
        match &self.tls {
            Tls::Required(parameters) => conn.starttls(parameters.clone(), &self.hello).await?,
            Tls::Opportunistic(parameters) if conn.can_starttls() => {
                conn.starttls(parameters.clone(), &self.hello).await?;
            }
            _ => {}
        }
        if let Some(credentials) = &self.credentials {
            conn.auth(DEFAULT_MECHANISMS, credentials).await?;
        }
        Ok(conn)
    }
}

/// Connections to one SMTP server, at most `concurrency` conversations at once.
pub struct SmtpPool {
    settings: SmtpSettings,
    /// Idle connections and when each went idle; newest last.
    idle: Mutex<Vec<(AsyncSmtpConnection, Instant)>>,
    slots: Semaphore,
}

impl SmtpPool {
    /// A pool for `settings`; `concurrency` is at least 1.
    pub fn new(settings: SmtpSettings, concurrency: usize) -> Self {
        Self {
            settings,
            idle: Mutex::new(Vec::new()),
            slots: Semaphore::new(concurrency.max(1)),
        }
    }

    /// Hands one message to the server on a pooled or new connection; `Ok` means the server
    /// answered the end of data with 2xx.
    ///
    /// # Errors
    /// [`MailError::Transient`] for connection trouble, timeouts and 4xx answers,
    /// [`MailError::Permanent`] for 5xx answers and what the server cannot take.
    pub async fn send(&self, envelope: &Envelope, bytes: &[u8]) -> Result<(), MailError> {
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| MailError::Transient("the SMTP pool is closed".into()))?;
        let mut conn = match self.reusable().await {
            Some(conn) => conn,
            None => match timeout(SMTP_TIMEOUT, self.settings.connect()).await {
                Ok(conn) => conn?,
                Err(_) => return Err(timed_out("connecting")),
            },
        };
        match timeout(SMTP_TIMEOUT, conn.send(envelope, bytes)).await {
            Ok(Ok(_)) => {
                self.park(conn);
                Ok(())
            }
            // lettre has already aborted the conversation: the connection is dropped.
            Ok(Err(error)) => Err(MailError::from_smtp(&error)),
            Err(_) => Err(timed_out("sending")),
        }
    }

    /// The newest idle connection still worth using; stale ones are closed on the way.
    async fn reusable(&self) -> Option<AsyncSmtpConnection> {
        loop {
            let (mut conn, since) = self.idle.lock().ok()?.pop()?;
            let idle = since.elapsed();
            if idle > MAX_IDLE {
                // Older ones sit below it: drop them all, quietly (QUIT is a courtesy).
                if let Ok(mut list) = self.idle.lock() {
                    list.clear();
                }
                return None;
            }
            if idle <= CHECK_AFTER_IDLE {
                return Some(conn);
            }
            if let Ok(true) = timeout(SMTP_TIMEOUT, conn.test_connected()).await {
                return Some(conn);
            }
        }
    }

    fn park(&self, conn: AsyncSmtpConnection) {
        if conn.has_broken() {
            return;
        }
        if let Ok(mut list) = self.idle.lock() {
            list.push((conn, Instant::now()));
        }
    }
}

fn timed_out(what: &str) -> MailError {
    MailError::Transient(format!(
        "{what} timed out after {} s",
        SMTP_TIMEOUT.as_secs()
    ))
}

/// `%XX` sequences decoded, for credentials in a URL (invalid sequences are kept as they are).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |at: usize| {
            bytes
                .get(at)
                .and_then(|b| char::from(*b).to_digit(16))
                .and_then(|d| u8::try_from(d).ok())
        };
        match (bytes[i], hex(i + 1), hex(i + 2)) {
            (b'%', Some(high), Some(low)) => {
                out.push(high * 16 + low);
                i += 3;
            }
            (byte, _, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A TCP stream wrapped in TLS before the greeting (`smtps://`), made a stream lettre's
/// `connect_with_transport` takes: lettre's own TLS upgrade does the handshake (rustls, its
/// certificate checks), this only forwards reads and writes.
#[allow(deprecated)]
#[derive(Debug)]
struct ImplicitTls(lettre::transport::smtp::client::AsyncNetworkStream);

#[allow(deprecated)]
impl ImplicitTls {
    async fn wrap(
        tcp: TcpStream,
        parameters: &TlsParameters,
    ) -> Result<Self, lettre::transport::smtp::Error> {
        use lettre::transport::smtp::client::AsyncNetworkStream;
        let mut stream = AsyncNetworkStream::use_existing_tokio1(Box::new(tcp));
        stream.upgrade_tls(parameters.clone()).await?;
        Ok(Self(stream))
    }
}

impl AsyncTokioStream for ImplicitTls {
    fn peer_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.0.peer_addr()
    }
}

impl AsyncRead for ImplicitTls {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        use futures_util::io::AsyncRead as _;
        let unfilled = buf.initialize_unfilled();
        match Pin::new(&mut self.0).poll_read(cx, unfilled) {
            Poll::Ready(Ok(read)) => {
                buf.advance(read);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncWrite for ImplicitTls {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        use futures_util::io::AsyncWrite as _;
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        use futures_util::io::AsyncWrite as _;
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        use futures_util::io::AsyncWrite as _;
        Pin::new(&mut self.0).poll_close(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_read_like_lettre_reads_them() {
        let plain = SmtpSettings::from_url("smtp://127.0.0.1:2525").unwrap();
        assert_eq!((plain.host.as_str(), plain.port), ("127.0.0.1", 2525));
        assert!(matches!(plain.tls, Tls::None));
        assert!(plain.credentials.is_none());

        let wrapped = SmtpSettings::from_url("smtps://u%40x:p%25ss@mail.example.com").unwrap();
        assert_eq!(wrapped.port, 465);
        assert!(matches!(wrapped.tls, Tls::Wrapper(_)));
        assert!(wrapped.credentials == Some(Credentials::new("u@x".into(), "p%ss".into())));

        let starttls = SmtpSettings::from_url("smtp://[::1]/relay.example?tls=required").unwrap();
        assert_eq!((starttls.host.as_str(), starttls.port), ("::1", 587));
        assert!(matches!(starttls.tls, Tls::Required(_)));
        assert_eq!(starttls.hello, ClientId::Domain("relay.example".into()));

        let opportunistic = SmtpSettings::from_url("smtp://h?tls=opportunistic").unwrap();
        assert!(matches!(opportunistic.tls, Tls::Opportunistic(_)));
    }

    #[test]
    fn unusable_urls_are_refused_without_echoing_them() {
        for url in [
            "http://h",
            "smtp://h?tls=maybe",
            "smtp://user:secret@[bad",
            "smtp:",
        ] {
            let error = SmtpSettings::from_url(url).err().unwrap();
            assert!(matches!(error, MailError::Config(_)), "{url}");
            assert!(!error.to_string().contains("secret"), "{url}");
        }
    }

    #[test]
    fn percent_decoding_keeps_what_is_not_an_escape() {
        assert_eq!(percent_decode("a%20b%2"), "a b%2");
        assert_eq!(percent_decode("%zz%41"), "%zzA");
    }
}
