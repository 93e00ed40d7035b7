//! `app-bench mail-drain`: how fast the server's mail drainer empties a backlog over SMTP.
//!
//! The server must run with `--smtp-url smtp://SINK` for the `--sink` address given here. The
//! scenario binds an in-process [`Sink`] there, held shut (connections are accepted but not
//! greeted), creates N businesses — each queues one welcome mail in the outbox — then opens
//! the sink and times how long the N mails take to arrive. The figure is the drainer's
//! throughput (claims, SMTP conversations, "sent" records), not the create rate; it also
//! counts duplicates and missing mails by `Message-ID` (DESIGN invariant 4).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use tokio_util::sync::CancellationToken;

use super::http::{self, HttpConn};
use super::report::{self, Table};
use super::scenarios::Ctx;
use super::smtp_sink::{self, Sink};

/// Longest wait for the backlog once the sink opens.
const DRAIN_LIMIT: Duration = Duration::from_secs(300);

/// What one drain did.
#[derive(Debug)]
pub struct DrainOutcome {
    pub mails: u64,
    pub creates_took: Duration,
    /// From opening the sink to the last expected mail (or to giving up).
    pub drain_took: Duration,
    /// Distinct `Message-ID`s that arrived.
    pub distinct: u64,
    /// Arrivals beyond the first of a `Message-ID`.
    pub duplicates: u64,
    /// SMTP connections the server opened.
    pub connections: u64,
    /// Medians over the mails: command round trips, body with end marker, the client's time
    /// between two mails on one connection (see [`smtp_sink::Arrival`]).
    pub medians: [Duration; 3],
}

/// Creates `mails` businesses from `concurrency` clients while the sink at `sink_addr` is
/// held, then opens it and waits for the mails.
///
/// # Errors
/// The sink cannot be bound, or a create fails (the backlog would not be `mails` long).
pub async fn run(
    ctx: &Ctx,
    sink_addr: SocketAddr,
    mails: u64,
    concurrency: usize,
) -> anyhow::Result<DrainOutcome> {
    let listener = smtp_sink::bind(sink_addr).await?;
    let sink = Arc::new(Sink::held_recording());
    let stop = CancellationToken::new();
    let accepting = tokio::spawn(smtp_sink::accept(listener, sink.clone(), stop.clone()));
    let outcome = drain(ctx, &sink, mails, concurrency).await;
    stop.cancel();
    let _ = accepting.await;
    outcome
}

async fn drain(
    ctx: &Ctx,
    sink: &Sink,
    mails: u64,
    concurrency: usize,
) -> anyhow::Result<DrainOutcome> {
    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (next, token, server) = (next.clone(), ctx.token.clone(), ctx.server);
        let run = ctx.run.clone();
        clients.push(tokio::spawn(async move {
            let mut conn = HttpConn::new(server);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= mails {
                    return Ok::<_, anyhow::Error>(());
                }
                http::create_business(&mut conn, &token, &format!("md{run}-{i}")).await?;
            }
        }));
    }
    for client in clients {
        client.await??;
    }
    let creates_took = started.elapsed();
    let opened = Instant::now();
    sink.open.cancel();
    let (mut distinct, mut duplicates) = (0, 0);
    let mut last = opened;
    let mut arrivals = Vec::new();
    while opened.elapsed() < DRAIN_LIMIT {
        tokio::time::sleep(Duration::from_millis(20)).await;
        arrivals = sink.arrivals();
        let mut seen: HashMap<&str, u64> = HashMap::new();
        for arrival in &arrivals {
            *seen.entry(arrival.message_id.as_str()).or_default() += 1;
        }
        distinct = seen.len() as u64;
        duplicates = arrivals.len() as u64 - distinct;
        last = arrivals.iter().map(|a| a.at).max().unwrap_or(opened);
        if distinct >= mails {
            break;
        }
    }
    if distinct == 0 {
        bail!(
            "no mail arrived: is the server running with --smtp-url smtp://<the --sink address>?"
        );
    }
    Ok(DrainOutcome {
        mails,
        creates_took,
        drain_took: last.max(opened) - opened,
        distinct,
        duplicates,
        connections: sink.connections.load(Ordering::Relaxed),
        medians: [
            median(arrivals.iter().map(|a| a.commands)),
            median(arrivals.iter().map(|a| a.body)),
            median(arrivals.iter().filter_map(|a| a.idle)),
        ],
    })
}

fn median(durations: impl Iterator<Item = Duration>) -> Duration {
    let mut all: Vec<Duration> = durations.collect();
    all.sort_unstable();
    all.get(all.len() / 2).copied().unwrap_or_default()
}

impl DrainOutcome {
    /// Mails the drainer handed over per second once the sink opened.
    pub fn per_second(&self) -> f64 {
        self.distinct as f64 / self.drain_took.as_secs_f64().max(1e-9)
    }

    /// Row: the drainer's throughput, with losses and duplicates.
    pub fn write(&self, table: &mut Table) {
        table.row(
            format!("outbox drained over SMTP ({} queued mails)", self.mails),
            "each once",
            format!(
                "{} mails/s ({} of {} in {:.2} s, {} duplicates, {} missing)",
                report::count(self.per_second().round() as u64),
                report::count(self.distinct),
                report::count(self.mails),
                self.drain_took.as_secs_f64(),
                self.duplicates,
                self.mails.saturating_sub(self.distinct)
            ),
            Some(self.duplicates == 0 && self.distinct == self.mails),
            true,
        );
        table.notes.push(format!(
            "the {} creates that queued them took {:.2} s",
            self.mails,
            self.creates_took.as_secs_f64()
        ));
        let ms = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1e3);
        table.notes.push(format!(
            "{} SMTP connections; per mail, medians seen by the sink: MAIL→DATA {}, body and \
             end marker {}, the client's time between two mails on a connection {}",
            self.connections,
            ms(self.medians[0]),
            ms(self.medians[1]),
            ms(self.medians[2])
        ));
    }
}
