//! The big-delete scenario (issue 12): one business with N reservations is deleted while M
//! dashboard sockets are open; meanwhile one client reads (`GET /api/businesses/?limit=1`)
//! and one writes (creates a business) back to back, and every socket sends one ping at a
//! random moment of the window. The row is the longest any of them waited: API.md wants no
//! request to wait more than 1 s on a big delete. One more dashboard socket watches the
//! business's `reservation_cancelled` frames until its `business_deleted`: the others keep
//! going until then (or the window, if longer), and the row says when the last cancellation
//! and the deletion reached it.
//!
//! Booking is public and rate limited per client address, so the server must run with a
//! high `--booking-rate-per-minute` (`scripts/bench.sh` sets one).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use tokio_util::sync::CancellationToken;

use super::http::{business_body, HttpConn};
use super::load;
use super::report::{self, Table};
use super::scenarios::{Ctx, Opened};
use super::sockets::{event_id, Latencies, PingPlan, Role};
use super::ws::{find, ReadOutcome, WsConn};

/// Clients booking the reservations side by side.
const FILL_CONCURRENCY: usize = 32;
/// Longest wait for the `business_deleted` frame after the delete was answered.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(900);

/// What the watching socket saw of the delete, from the moment the `DELETE` was sent.
#[derive(Debug, Default, Clone, Copy)]
pub struct Closed {
    /// `reservation_cancelled` frames of the business.
    pub cancelled: u64,
    /// When the last of them arrived.
    pub last_cancelled: Option<Duration>,
    /// When `business_deleted` arrived.
    pub deleted: Option<Duration>,
    /// Frames of the business whose id was not above the one before.
    pub out_of_order: u64,
}

/// What the delete cost the others.
#[derive(Debug)]
pub struct BigDeleteOutcome {
    pub reservations: u64,
    pub fill_time: Duration,
    pub opened: Opened,
    pub delete_took: Duration,
    pub window: Duration,
    pub longest_read: Duration,
    pub reads: u64,
    pub longest_write: Duration,
    pub writes: u64,
    pub longest_ping: Option<Duration>,
    pub pongs: u64,
    pub closed: Closed,
}

/// Reads one dashboard socket until the `business_deleted` frame of business `id`, counting
/// its `reservation_cancelled` frames; times are from `sent` (set when the `DELETE` goes).
async fn watch_close(
    mut socket: WsConn,
    id: String,
    sent: Arc<std::sync::OnceLock<Instant>>,
) -> anyhow::Result<Closed> {
    let mut closed = Closed::default();
    let mut last_id = 0;
    loop {
        let mut done = false;
        let outcome = socket
            .read(|msg, at| {
                if find(msg, id.as_bytes()).is_none() {
                    return;
                }
                let since = sent.get().map(|sent| at.saturating_duration_since(*sent));
                if let Some(event) = event_id(msg) {
                    closed.out_of_order += u64::from(event <= last_id);
                    last_id = last_id.max(event);
                }
                if find(msg, b"\"reservation_cancelled\"").is_some() {
                    closed.cancelled += 1;
                    closed.last_cancelled = since;
                } else if find(msg, b"\"business_deleted\"").is_some() {
                    closed.deleted = since;
                    done = true;
                }
            })
            .await?;
        if done {
            return Ok(closed);
        }
        if let ReadOutcome::Closed(code) = outcome {
            bail!("the watching socket closed ({code:?}) before business_deleted");
        }
    }
}

/// Books `reservations` at a new business, opens `sockets`, deletes the business and
/// watches other requests for `window`.
///
/// # Errors
/// When the business cannot be made, booked (e.g. rate limited) or deleted.
pub async fn big_delete(
    ctx: &Ctx,
    reservations: u64,
    sockets: usize,
    window: Duration,
) -> anyhow::Result<BigDeleteOutcome> {
    let token = ctx.token.clone();
    let mut conn = HttpConn::new(ctx.server);
    let marker = format!("bd{}", ctx.run);
    let created = conn
        .request(
            "POST",
            "/api/businesses/",
            Some(&token),
            Some(&business_body(&marker)),
        )
        .await?;
    if created.status != 201 {
        bail!("create answered {}", created.status);
    }
    let business: serde_json::Value = serde_json::from_slice(&created.body)?;
    let id = business["id"]
        .as_str()
        .ok_or_else(|| anyhow!("the created business has no id"))?
        .to_string();

    eprintln!("bench: booking {reservations} reservations");
    let fill_start = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let mut fillers = Vec::new();
    for _ in 0..FILL_CONCURRENCY {
        let (next, server, path) = (
            next.clone(),
            ctx.server,
            format!("/api/businesses/{id}/reservations/"),
        );
        fillers.push(tokio::spawn(async move {
            let mut conn = HttpConn::new(server);
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= reservations {
                    return Ok::<_, anyhow::Error>(());
                }
                let body = format!(
                    r#"{{"customer_name":"Guest {n}","customer_email":"g{n}@example.com","starts_at":"2031-06-01T10:00:00Z","service":"Cut"}}"#
                );
                let answer = conn
                    .request("POST", &path, None, Some(body.as_bytes()))
                    .await?;
                if answer.status != 201 {
                    bail!(
                        "booking answered {} (is --booking-rate-per-minute high enough?)",
                        answer.status
                    );
                }
            }
        }));
    }
    for filler in fillers {
        filler.await.context("a booking client")??;
    }
    let fill_time = fill_start.elapsed();

    let plan = Arc::new(PingPlan {
        count: 1,
        interval: window,
        go: CancellationToken::new(),
        latencies: Latencies::new(),
    });
    let fleet = ctx.open_fleet(sockets, Role::Ping(plan.clone())).await;
    let opened = Opened::of(&fleet);
    let watcher = WsConn::connect(
        ctx.sources[0],
        ctx.server,
        &format!("/ws/dashboard/?token={token}"),
    )
    .await
    .context("the watching socket")?;
    let sent_at = Arc::new(std::sync::OnceLock::new());
    let watcher = tokio::spawn(watch_close(watcher, id.clone(), sent_at.clone()));

    // The others: one reader and one writer, back to back, for the whole window, each on a
    // thread of its own so the client's backlog of frames is not measured as their wait.
    let stop = Arc::new(AtomicBool::new(false));
    let probe = |write: bool| {
        let (stop, token, server, run) = (stop.clone(), token.clone(), ctx.server, ctx.run.clone());
        let name = if write {
            "big-delete-writer"
        } else {
            "big-delete-reader"
        };
        tokio::spawn(load::on_own_thread(name, move || async move {
            let mut conn = HttpConn::new(server);
            let (mut longest, mut count) = (Duration::ZERO, 0u64);
            while !stop.load(Ordering::Relaxed) {
                let sent = Instant::now();
                let answer = if write {
                    let body = business_body(&format!("bdw{run}-{count}"));
                    conn.request("POST", "/api/businesses/", Some(&token), Some(&body))
                        .await
                } else {
                    conn.request("GET", "/api/businesses/?limit=1", Some(&token), None)
                        .await
                };
                let took = sent.elapsed();
                answer?;
                longest = longest.max(took);
                count += 1;
            }
            Ok::<_, anyhow::Error>((longest, count))
        }))
    };
    let (reader, writer) = (probe(false), probe(true));
    tokio::time::sleep(Duration::from_millis(200)).await;

    eprintln!("bench: deleting the business");
    plan.go.cancel();
    // A fresh connection: the first one idled through the booking, and the server may have
    // closed it meanwhile.
    let mut conn = HttpConn::new(ctx.server);
    let sent = Instant::now();
    let _ = sent_at.set(sent);
    let deleted = conn
        .request(
            "DELETE",
            &format!("/api/businesses/{id}/"),
            Some(&token),
            None,
        )
        .await?;
    let delete_took = sent.elapsed();
    if deleted.status != 204 && deleted.status != 200 {
        bail!("delete answered {}", deleted.status);
    }
    tokio::time::sleep(window.saturating_sub(delete_took)).await;
    // The others keep going until the delete is over.
    let closed = tokio::time::timeout(CLOSE_TIMEOUT, watcher)
        .await
        .context("no business_deleted frame in time")?
        .context("the watching socket")??;
    let window = sent.elapsed().max(window);
    stop.store(true, Ordering::Relaxed);
    let (longest_read, reads) = reader.await.context("the reader")??;
    let (longest_write, writes) = writer.await.context("the writer")??;
    let reports = fleet.finish(Duration::from_secs(10)).await;
    let latencies = plan.latencies.merged();
    Ok(BigDeleteOutcome {
        reservations,
        fill_time,
        opened,
        delete_took,
        window,
        longest_read,
        reads,
        longest_write,
        writes,
        longest_ping: (!latencies.is_empty()).then(|| Duration::from_micros(latencies.max())),
        pongs: reports.iter().map(|r| r.pongs).sum(),
        closed,
    })
}

impl BigDeleteOutcome {
    /// The longest wait any other request or socket saw.
    pub fn longest(&self) -> Duration {
        self.longest_read
            .max(self.longest_write)
            .max(self.longest_ping.unwrap_or_default())
    }

    /// Row: the longest stall during a big delete.
    pub fn write(&self, table: &mut Table, judge: bool) {
        let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1e3);
        table.row(
            format!(
                "delete a business with {} reservations, {} sockets open: longest other wait",
                report::count(self.reservations),
                report::count(self.opened.requested as u64)
            ),
            "≤ 1 s",
            format!(
                "{} (read {} of {}, write {} of {}, ping {} of {} pongs); delete answered in {}; \
                 {} cancellations, the last one {} and business_deleted {} after the DELETE",
                ms(self.longest()),
                ms(self.longest_read),
                report::count(self.reads),
                ms(self.longest_write),
                report::count(self.writes),
                self.longest_ping.map_or("-".into(), ms),
                report::count(self.pongs),
                ms(self.delete_took),
                report::count(self.closed.cancelled),
                self.closed.last_cancelled.map_or("-".into(), ms),
                self.closed.deleted.map_or("-".into(), ms)
            ),
            Some(self.longest() <= Duration::from_secs(1)),
            judge,
        );
        table.notes.push(format!(
            "big delete: {} reservations booked in {:.1} s; sockets {}; watched for {:.1} s; \
             frames of the business out of order: {}",
            report::count(self.reservations),
            self.fill_time.as_secs_f64(),
            self.opened.summary(),
            self.window.as_secs_f64(),
            self.closed.out_of_order
        ));
    }
}
