//! The four measurements, each against a running server and bounded in time:
//!
//! - [`connect`]: hold N idle dashboard sockets — connect time, failures, server RSS per socket;
//! - [`fanout`]: N sockets, M events at R per second — latency of every (socket, event) pair,
//!   lost / duplicate / out-of-order frames, frames per second, server CPU per delivered frame;
//! - [`creates`]: durable creates per second from C concurrent HTTP clients;
//! - [`ping`]: ping round trips on N sockets.
//!
//! Each returns an outcome that knows how to write itself into the report table.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use hdrhistogram::Histogram;
use tokio_util::sync::CancellationToken;

use super::load::{self, CreatesReport};
use super::procfs::{self, Meter, ProcSample, Usage};
use super::report::{self, Table};
use super::sockets::{Fleet, Latencies, PingPlan, Role, SocketReport, Target, Watch};

/// How long a fanout waits for stragglers after the last frame it read.
const QUIET_AFTER_LAST_FRAME: Duration = Duration::from_secs(3);
/// Hard bound on a fanout's wait after its last request was answered.
const MAX_DRAIN: Duration = Duration::from_secs(60);

/// What every scenario needs: where the server is, who we are, what we may read of it.
pub struct Ctx {
    pub server: SocketAddr,
    pub token: Arc<str>,
    pub sources: Vec<IpAddr>,
    pub server_pid: Option<u32>,
    /// Random per run, so the markers of two runs against one server never collide.
    pub run: String,
    pub connect_concurrency: usize,
}

impl Ctx {
    fn dashboard(&self) -> Target {
        Target {
            server: self.server,
            sources: self.sources.clone(),
            path: format!("/ws/dashboard/?token={}", self.token).into(),
        }
    }

    fn server_sample(&self) -> Option<ProcSample> {
        let pid = self.server_pid?;
        procfs::sample(&pid.to_string()).ok()
    }

    pub(crate) fn open_fleet(
        &self,
        count: usize,
        role: Role,
    ) -> impl std::future::Future<Output = Fleet> {
        let target = self.dashboard();
        let concurrency = self.connect_concurrency;
        async move { Fleet::open(&target, count, concurrency, role).await }
    }
}

/// A fleet's connect figures, shared by all socket scenarios.
#[derive(Debug)]
pub struct Opened {
    pub requested: usize,
    pub connected: usize,
    pub failed: usize,
    pub first_errors: Vec<String>,
    pub connect_time: Duration,
}

impl Opened {
    pub(crate) fn of(fleet: &Fleet) -> Self {
        Self {
            requested: fleet.requested,
            connected: fleet.connected,
            failed: fleet.failed,
            first_errors: fleet.first_errors.clone(),
            connect_time: fleet.connect_time,
        }
    }

    pub(crate) fn summary(&self) -> String {
        format!(
            "{} of {} in {:.2} s, {} failures",
            report::count(self.connected as u64),
            report::count(self.requested as u64),
            self.connect_time.as_secs_f64(),
            report::count(self.failed as u64)
        )
    }

    fn note_errors(&self, what: &str, table: &mut Table) {
        if let Some(first) = self.first_errors.first() {
            table.notes.push(format!(
                "{what}: {} sockets failed to open, e.g. {first}",
                self.failed
            ));
        }
    }
}

/// Why sockets ended before they were told to.
fn note_early_ends(what: &str, reports: &[SocketReport], table: &mut Table) {
    let ended: Vec<&String> = reports
        .iter()
        .filter_map(|r| r.ended_early.as_ref())
        .collect();
    if let Some(first) = ended.first() {
        table.notes.push(format!(
            "{what}: {} sockets were ended early, e.g. {first}",
            ended.len()
        ));
    }
}

/// What holding idle sockets costs.
#[derive(Debug)]
pub struct ConnectOutcome {
    pub opened: Opened,
    /// Server RSS growth per connected socket, KiB.
    pub server_kib_per_socket: Option<f64>,
    /// The benchmark client's own RSS growth per socket, KiB (for context).
    pub client_kib_per_socket: Option<f64>,
    pub early_ends: Vec<SocketReport>,
    /// CPU use while the sockets were being opened.
    pub usage: Usage,
}

/// Opens `sockets` idle dashboard sockets, holds them for `hold`, reads memory, closes them.
///
/// # Errors
/// When no socket could be opened at all.
pub async fn connect(ctx: &Ctx, sockets: usize, hold: Duration) -> anyhow::Result<ConnectOutcome> {
    let server_before = ctx.server_sample();
    let client_before = procfs::sample("self").ok();
    let watch = Arc::new(Watch::new(format!("bn{}idle-", ctx.run), 0, Duration::ZERO));
    let meter = Meter::start(ctx.server_pid);
    let fleet = ctx.open_fleet(sockets, Role::Listen(watch)).await;
    let usage = meter.stop();
    let opened = Opened::of(&fleet);
    if opened.connected == 0 {
        bail!("no socket could be opened: {:?}", opened.first_errors);
    }
    tokio::time::sleep(hold).await;
    let per_socket = |before: Option<ProcSample>, after: Option<ProcSample>| {
        let (b, a) = (before?, after?);
        Some(a.rss_kib.saturating_sub(b.rss_kib) as f64 / opened.connected as f64)
    };
    let server_kib_per_socket = per_socket(server_before, ctx.server_sample());
    let client_kib_per_socket = per_socket(client_before, procfs::sample("self").ok());
    let reports = fleet.close().await;
    Ok(ConnectOutcome {
        opened,
        server_kib_per_socket,
        client_kib_per_socket,
        early_ends: reports
            .into_iter()
            .filter(|r| r.ended_early.is_some())
            .collect(),
        usage,
    })
}

impl ConnectOutcome {
    /// Rows: sockets held, RSS per idle socket.
    pub fn write(&self, table: &mut Table, judge: bool) {
        let o = &self.opened;
        table.row(
            format!("sockets held ({})", report::count(o.requested as u64)),
            "all, connected in under 2 s, 0 failures",
            o.summary(),
            Some(o.failed == 0 && o.connected == o.requested && o.connect_time.as_secs_f64() < 2.0),
            judge,
        );
        let measured = match (self.server_kib_per_socket, self.client_kib_per_socket) {
            (Some(s), Some(c)) => format!("{s:.1} KiB (client: {c:.1} KiB)"),
            (Some(s), None) => format!("{s:.1} KiB"),
            _ => "not measured (needs --server-pid)".into(),
        };
        table.row(
            "RSS per idle socket",
            "≤ 10 KiB",
            measured,
            self.server_kib_per_socket.map(|k| k <= 10.0),
            judge,
        );
        o.note_errors("connect", table);
        note_early_ends("connect", &self.early_ends, table);
        let cpu = |s: Option<f64>| s.map_or("n/a".into(), |s| format!("{s:.2} s"));
        table.notes.push(format!(
            "connect: server CPU {}, client CPU {} to open {} sockets; {}",
            cpu(self.usage.server_seconds),
            cpu(self.usage.client_seconds),
            report::count(o.connected as u64),
            others(&self.usage)
        ));
    }
}

/// What fanning events out to many sockets did.
#[derive(Debug)]
pub struct FanoutOutcome {
    pub opened: Opened,
    pub rate: f64,
    pub posts: CreatesReport,
    /// Due time of the request → frame read, every (socket, event) pair, µs.
    pub latency: Histogram<u64>,
    /// Due time of the request → the first socket's read, per event, µs.
    pub first_read: Histogram<u64>,
    pub frames: u64,
    pub lost: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
    pub frames_per_second: f64,
    pub server_cpu_per_frame: Option<Duration>,
    pub client_cpu_per_frame: Option<Duration>,
    pub usage: Usage,
    pub reports: Vec<SocketReport>,
}

/// `sockets` dashboard sockets; `events` businesses created at `rate` per second.
///
/// # Errors
/// When no socket could be opened at all.
pub async fn fanout(
    ctx: &Ctx,
    tag: &str,
    sockets: usize,
    rate: f64,
    events: u64,
) -> anyhow::Result<FanoutOutcome> {
    let prefix = format!("bn{}{tag}-", ctx.run);
    let interval = Duration::from_secs_f64(1.0 / rate);
    let watch = Arc::new(Watch::new(prefix.clone(), events, interval));
    let fleet = ctx.open_fleet(sockets, Role::Listen(watch.clone())).await;
    let opened = Opened::of(&fleet);
    // `--sockets 0` measures the POSTs alone (POST → 201 with nothing to fan out to).
    if sockets > 0 && opened.connected == 0 {
        bail!("no socket could be opened: {:?}", opened.first_errors);
    }
    let meter = Meter::start(ctx.server_pid);
    let posts = load::paced_creates_on_own_thread(
        ctx.server,
        ctx.token.clone(),
        prefix.into(),
        events,
        watch.schedule.clone(),
    )
    .await?;
    drain(&watch, &fleet).await;
    let usage = meter.stop();
    let reports = fleet.close().await;

    let frames: u64 = reports.iter().map(|r| r.frames).sum();
    let lost = reports
        .iter()
        .map(|r| posts.ok.saturating_sub(r.distinct))
        .sum::<u64>()
        // Sockets that never opened saw nothing either.
        + posts.ok * opened.failed as u64;
    let start = watch
        .schedule
        .due(0)
        .expect("the sender began the schedule");
    let span = watch
        .last_frame()
        .map_or(Duration::ZERO, |t| t.saturating_duration_since(start));
    Ok(FanoutOutcome {
        rate,
        latency: watch.latencies.merged(),
        first_read: watch.first_read_latencies(),
        frames,
        lost,
        duplicates: reports.iter().map(|r| r.duplicates).sum(),
        out_of_order: reports.iter().map(|r| r.out_of_order).sum(),
        frames_per_second: frames as f64 / span.as_secs_f64().max(1e-9),
        server_cpu_per_frame: cpu_per(usage.server_seconds, frames),
        client_cpu_per_frame: cpu_per(usage.client_seconds, frames),
        usage,
        opened,
        posts,
        reports,
    })
}

impl FanoutOutcome {
    /// Row: delivery at this scale, judged against `p99_target` (and losslessness if asked).
    pub fn write(&self, table: &mut Table, p99_target: Duration, lossless: bool, judge: bool) {
        let p99 = (!self.latency.is_empty()).then(|| self.latency.value_at_quantile(0.99));
        let target_us = p99_target.as_micros() as u64;
        let target = if lossless {
            format!(
                "0 lost, 0 out of order, p99 ≤ {}",
                report::micros(target_us)
            )
        } else {
            format!("p99 ≤ {}", report::micros(target_us))
        };
        let clean = self.lost == 0 && self.out_of_order == 0 && self.duplicates == 0;
        table.row(
            format!(
                "{} sockets @ {} events/s",
                report::count(self.opened.requested as u64),
                self.rate
            ),
            target,
            format!(
                "{}; {} lost, {} duplicate, {} out of order of {} frames; {} frames/s",
                report::latency(&self.latency),
                report::count(self.lost),
                self.duplicates,
                self.out_of_order,
                report::count(self.frames),
                report::count(self.frames_per_second.round() as u64)
            ),
            p99.map(|p| p <= target_us && (clean || !lossless) && self.posts.failed == 0),
            judge,
        );
        self.opened.note_errors("fanout", table);
        note_early_ends("fanout", &self.reports, table);
        if let Some(e) = &self.posts.first_error {
            table.notes.push(format!(
                "fanout: {} of the event requests failed, e.g. {e}",
                self.posts.failed
            ));
        }
    }

    /// A note with the figures behind the row: connect, request latency, CPU per frame.
    pub fn detail(&self) -> String {
        let cpu = |d: Option<Duration>| d.map_or("n/a".into(), per_unit);
        format!(
            "{} sockets @ {} events/s: sockets {}; {} events, request latency {}, \
             first socket's read {}; server CPU {} per frame, client CPU {} per frame; {}",
            report::count(self.opened.requested as u64),
            self.rate,
            self.opened.summary(),
            report::count(self.posts.ok),
            report::latency(&self.posts.latency),
            report::latency(&self.first_read),
            cpu(self.server_cpu_per_frame),
            cpu(self.client_cpu_per_frame),
            others(&self.usage)
        )
    }
}

/// Waits until every socket has every event, or nothing has arrived for a while.
async fn drain(watch: &Watch, fleet: &Fleet) {
    let answered = Instant::now();
    loop {
        let alive = fleet.alive.load(Ordering::Relaxed);
        if watch.complete.load(Ordering::Relaxed) >= alive {
            return;
        }
        let quiet_since = watch.last_frame().unwrap_or(answered).max(answered);
        if quiet_since.elapsed() >= QUIET_AFTER_LAST_FRAME || answered.elapsed() >= MAX_DRAIN {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// CPU seconds per unit of work.
fn cpu_per(seconds: Option<f64>, units: u64) -> Option<Duration> {
    let seconds = seconds?;
    (units > 0).then(|| Duration::from_secs_f64(seconds / units as f64))
}

/// How busy the rest of the machine was, and how long the server's and the client's threads
/// waited for a core: on a shared or saturated machine this explains noisy figures.
fn others(usage: &Usage) -> String {
    let others = usage
        .other_cores()
        .map_or("other processes: n/a".into(), |c| {
            format!(
                "other processes kept {c:.2} cores busy over {:.1} s",
                usage.wall_seconds
            )
        });
    let threads = |t: Option<f64>| t.map_or("n/a".into(), |t| format!("{t:.2}"));
    format!(
        "{others}; cores idle on average: {}; threads waiting for a core on average: server {}, \
         client {}",
        threads(usage.idle_cores()),
        threads(usage.server_waiting_threads()),
        threads(usage.client_waiting_threads())
    )
}

/// A duration per unit, in µs with two decimals.
fn per_unit(d: Duration) -> String {
    format!("{:.2} µs", d.as_secs_f64() * 1e6)
}

/// What the closed-loop creates did.
#[derive(Debug)]
pub struct CreatesOutcome {
    pub concurrency: usize,
    pub report: CreatesReport,
    pub server_cpu_per_create: Option<Duration>,
    pub usage: Usage,
}

/// `concurrency` clients creating businesses back to back for `duration`.
pub async fn creates(ctx: &Ctx, concurrency: usize, duration: Duration) -> CreatesOutcome {
    let meter = Meter::start(ctx.server_pid);
    let report = load::closed_loop_creates(
        ctx.server,
        ctx.token.clone(),
        format!("bc{}-", ctx.run).into(),
        concurrency,
        duration,
    )
    .await;
    let usage = meter.stop();
    CreatesOutcome {
        concurrency,
        server_cpu_per_create: cpu_per(usage.server_seconds, report.ok),
        report,
        usage,
    }
}

impl CreatesOutcome {
    pub fn per_second(&self) -> f64 {
        self.report.ok as f64 / self.report.elapsed.as_secs_f64().max(1e-9)
    }

    /// Row: durable creates per second.
    pub fn write(&self, table: &mut Table, judge: bool) {
        let r = &self.report;
        let mut measured = format!(
            "{} /s ({} in {:.1} s, {} failed; latency {})",
            report::count(self.per_second().round() as u64),
            report::count(r.ok),
            r.elapsed.as_secs_f64(),
            r.failed,
            report::latency(&r.latency)
        );
        if let Some(cpu) = self.server_cpu_per_create {
            measured.push_str(&format!("; server CPU {} per create", per_unit(cpu)));
        }
        table.row(
            format!(
                "durable creates per second ({} concurrent HTTP clients)",
                self.concurrency
            ),
            "≥ 10 000",
            measured,
            Some(self.per_second() >= 10_000.0 && r.failed == 0),
            judge,
        );
        if let Some(e) = &r.first_error {
            table
                .notes
                .push(format!("creates: {} failed, e.g. {e}", r.failed));
        }
        table.notes.push(format!(
            "creates from {} clients: {}",
            self.concurrency,
            others(&self.usage)
        ));
    }
}

/// What the ping round trips were.
#[derive(Debug)]
pub struct PingOutcome {
    pub opened: Opened,
    pub latency: Histogram<u64>,
    pub pongs: u64,
    pub lost: u64,
    pub reports: Vec<SocketReport>,
    pub usage: Usage,
}

/// `sockets` sockets, each sending `count` pings, one per `interval`.
///
/// # Errors
/// When no socket could be opened at all.
pub async fn ping(
    ctx: &Ctx,
    sockets: usize,
    count: u32,
    interval: Duration,
) -> anyhow::Result<PingOutcome> {
    let plan = Arc::new(PingPlan {
        count,
        interval,
        go: CancellationToken::new(),
        latencies: Latencies::new(),
    });
    let fleet = ctx.open_fleet(sockets, Role::Ping(plan.clone())).await;
    let opened = Opened::of(&fleet);
    if opened.connected == 0 {
        bail!("no socket could be opened: {:?}", opened.first_errors);
    }
    let meter = Meter::start(ctx.server_pid);
    plan.go.cancel();
    let within = interval * (count + 1) + Duration::from_secs(10);
    let reports = fleet.finish(within).await;
    let usage = meter.stop();
    Ok(PingOutcome {
        opened,
        latency: plan.latencies.merged(),
        pongs: reports.iter().map(|r| r.pongs).sum(),
        lost: reports.iter().map(|r| r.lost_pings).sum(),
        reports,
        usage,
    })
}

impl PingOutcome {
    /// Row: ping round trip.
    pub fn write(&self, table: &mut Table, judge: bool) {
        let p99 = (!self.latency.is_empty()).then(|| self.latency.value_at_quantile(0.99));
        table.row(
            format!(
                "ping round trip, {} sockets",
                report::count(self.opened.requested as u64)
            ),
            "p99 ≤ 1 ms",
            format!(
                "{} ({} pongs, {} lost)",
                report::latency(&self.latency),
                report::count(self.pongs),
                self.lost
            ),
            p99.map(|p| p <= 1_000 && self.lost == 0),
            judge,
        );
        self.opened.note_errors("ping", table);
        note_early_ends("ping", &self.reports, table);
        table.notes.push(format!("ping: {}", others(&self.usage)));
    }
}
