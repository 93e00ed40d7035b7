//! `app-bench smtp-sink`: an SMTP server on loopback that takes every mail and keeps none,
//! so the server under test sends its welcome mails over SMTP, as a deployment does, instead
//! of writing one `.eml` file per create (its fallback without `--smtp-url`, whose ext4 inode
//! allocation was the largest single cost of `creates` in `perf`: docs/bench.md).
//!
//! It speaks what lettre uses (EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT), answers at once,
//! and prints how many mails it took when it is stopped (SIGTERM or SIGINT), so a run can say
//! how many of the mails its creates queued actually left during it. The same [`Sink`] serves
//! `app-bench mail-drain` (`crate::mail_drain`), held shut until released and noting when each
//! `Message-ID` arrived.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// What the sessions of one sink share.
#[derive(Debug, Default)]
pub struct Sink {
    /// Mails taken (final "." seen).
    pub taken: AtomicU64,
    /// Greetings wait until this is cancelled: a held sink keeps its clients at the door.
    pub open: CancellationToken,
    /// When set, every mail that arrived (a recording sink).
    pub arrivals: Option<Mutex<Vec<Arrival>>>,
    /// Connections accepted.
    pub connections: AtomicU64,
}

/// One mail a recording sink took, with where its conversation spent the time.
#[derive(Debug, Clone)]
pub struct Arrival {
    /// When its final "." arrived.
    pub at: Instant,
    /// Its `Message-ID` header value.
    pub message_id: String,
    /// From `MAIL` read to `DATA` read: the client's command round trips.
    pub commands: Duration,
    /// From our `354` written to the final "." read: the body and its end marker.
    pub body: Duration,
    /// From our previous `250` on this connection to this `MAIL`: the client's time between
    /// two mails (`None` for a connection's first mail).
    pub idle: Option<Duration>,
}

impl Sink {
    /// A sink that greets at once and only counts.
    pub fn counting() -> Self {
        let sink = Self::default();
        sink.open.cancel();
        sink
    }

    /// A sink that greets nobody until [`Sink::open`] is cancelled, and records arrivals.
    pub fn held_recording() -> Self {
        Self {
            arrivals: Some(Mutex::new(Vec::new())),
            ..Self::default()
        }
    }

    /// The arrivals so far (empty for a counting sink).
    pub fn arrivals(&self) -> Vec<Arrival> {
        self.arrivals
            .as_ref()
            .map(|list| list.lock().map(|list| list.clone()).unwrap_or_default())
            .unwrap_or_default()
    }
}

/// Serves on `addr` until SIGTERM or SIGINT; prints `smtp sink listening on smtp://ADDR` once
/// bound and `smtp sink took N mails` at the end.
///
/// # Errors
/// When the address cannot be bound or the signals cannot be watched.
pub async fn serve(addr: std::net::SocketAddr) -> anyhow::Result<()> {
    let listener = bind(addr).await?;
    println!("smtp sink listening on smtp://{}", listener.local_addr()?);
    let sink = Arc::new(Sink::counting());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let stop = CancellationToken::new();
    let accepting = tokio::spawn(accept(listener, sink.clone(), stop.clone()));
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    stop.cancel();
    let _ = accepting.await;
    println!(
        "smtp sink took {} mails",
        sink.taken.load(Ordering::Relaxed)
    );
    Ok(())
}

/// Binds the sink's listener.
///
/// # Errors
/// When `addr` cannot be bound.
pub async fn bind(addr: std::net::SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the SMTP sink on {addr}"))
}

/// Accepts connections into sessions of `sink` until `stop`.
pub async fn accept(listener: TcpListener, sink: Arc<Sink>, stop: CancellationToken) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let sink = sink.clone();
                // A conversation that fails only loses that connection; lettre retries.
                tokio::spawn(async move { session(stream, &sink).await });
            }
        }
    }
}

/// One SMTP conversation; returns on QUIT, a closed connection or an I/O error.
async fn session(stream: TcpStream, sink: &Sink) -> std::io::Result<()> {
    sink.connections.fetch_add(1, Ordering::Relaxed);
    let _ = stream.set_nodelay(true);
    // Timings of the mail in progress, for a recording sink's `Arrival`.
    let (mut last_accepted, mut mail_at): (Option<Instant>, _) = (None, Instant::now());
    let mut idle = None;
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    let mut line = Vec::with_capacity(1024);
    sink.open.cancelled().await;
    write.write_all(b"220 sink ESMTP ready\r\n").await?;
    loop {
        line.clear();
        if lines.read_until(b'\n', &mut line).await? == 0 {
            return Ok(());
        }
        let verb: Vec<u8> = line
            .iter()
            .take_while(|b| b.is_ascii_alphabetic())
            .map(u8::to_ascii_uppercase)
            .collect();
        let reply: &[u8] = match verb.as_slice() {
            b"MAIL" => {
                mail_at = Instant::now();
                idle = last_accepted.map(|at| mail_at - at);
                b"250 2.0.0 ok\r\n"
            }
            b"EHLO" => b"250-sink\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 SIZE 10485760\r\n",
            b"DATA" => {
                let commands = mail_at.elapsed();
                write.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
                let data_at = Instant::now();
                let mut message_id = String::new();
                let mut in_headers = true;
                loop {
                    line.clear();
                    if lines.read_until(b'\n', &mut line).await? == 0 {
                        return Ok(());
                    }
                    if line == b".\r\n" || line == b".\n" {
                        break;
                    }
                    if in_headers && sink.arrivals.is_some() {
                        let text = String::from_utf8_lossy(&line);
                        let text = text.trim_end();
                        if text.is_empty() {
                            in_headers = false;
                        } else if text.len() > 11 && text[..11].eq_ignore_ascii_case("message-id:")
                        {
                            message_id = text[11..].trim().to_owned();
                        }
                    }
                }
                sink.taken.fetch_add(1, Ordering::Relaxed);
                if let Some(arrivals) = &sink.arrivals {
                    let at = Instant::now();
                    if let Ok(mut arrivals) = arrivals.lock() {
                        arrivals.push(Arrival {
                            at,
                            message_id,
                            commands,
                            body: at - data_at,
                            idle,
                        });
                    }
                }
                write.write_all(b"250 2.0.0 queued\r\n").await?;
                last_accepted = Some(Instant::now());
                continue;
            }
            b"QUIT" => {
                write.write_all(b"221 2.0.0 bye\r\n").await?;
                return Ok(());
            }
            // HELO, MAIL, RCPT, RSET, NOOP: all accepted.
            _ => b"250 2.0.0 ok\r\n",
        };
        write.write_all(reply).await?;
    }
}
