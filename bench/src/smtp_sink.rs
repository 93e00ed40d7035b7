//! `app-bench smtp-sink`: an SMTP server on loopback that takes every mail and keeps none,
//! so the server under test sends its welcome mails over SMTP, as a deployment does, instead
//! of writing one `.eml` file per create (its fallback without `--smtp-url`, whose ext4 inode
//! allocation was the largest single cost of `creates` in `perf`: docs/bench.md).
//!
//! It speaks what lettre uses (EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT), answers at once,
//! and prints how many mails it took when it is stopped (SIGTERM or SIGINT), so a run can say
//! how many of the mails its creates queued actually left during it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// Serves on `addr` until SIGTERM or SIGINT; prints `smtp sink listening on smtp://ADDR` once
/// bound and `smtp sink took N mails` at the end.
///
/// # Errors
/// When the address cannot be bound or the signals cannot be watched.
pub async fn serve(addr: std::net::SocketAddr) -> anyhow::Result<()> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the SMTP sink on {addr}"))?;
    println!("smtp sink listening on smtp://{}", listener.local_addr()?);
    let taken = Arc::new(AtomicU64::new(0));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let taken = taken.clone();
                // A conversation that fails only loses that connection; lettre retries.
                tokio::spawn(async move { session(stream, &taken).await });
            }
        }
    }
    println!("smtp sink took {} mails", taken.load(Ordering::Relaxed));
    Ok(())
}

/// One SMTP conversation; returns on QUIT, a closed connection or an I/O error.
async fn session(stream: TcpStream, taken: &AtomicU64) -> std::io::Result<()> {
    let _ = stream.set_nodelay(true);
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    let mut line = Vec::with_capacity(1024);
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
            b"EHLO" => b"250-sink\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 SIZE 10485760\r\n",
            b"DATA" => {
                write.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
                loop {
                    line.clear();
                    if lines.read_until(b'\n', &mut line).await? == 0 {
                        return Ok(());
                    }
                    if line == b".\r\n" || line == b".\n" {
                        break;
                    }
                }
                taken.fetch_add(1, Ordering::Relaxed);
                b"250 2.0.0 queued\r\n"
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
