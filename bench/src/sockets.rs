//! A fleet of dashboard sockets: opened with bounded concurrency from several `127.0.0.x`
//! source addresses, each then run by one lean task in one of two roles.
//!
//! - [`Role::Listen`]: read every frame, trace benchmark events back to their request through
//!   the marker in the subdomain, and record for every (socket, event) pair the latency from
//!   the moment the request was *due* (not sent: a late sender is the server's fault too) to
//!   the moment the socket read the frame; count duplicates, gaps and out-of-order ids.
//! - [`Role::Ping`]: send `{"type":"ping"}` at a steady pace and record each round trip.
//!
//! Latencies go to HDR histograms sharded by socket, so tasks on different threads rarely
//! touch the same lock.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use hdrhistogram::Histogram;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::ws::{ReadOutcome, WsConn};

/// Upper bound for opening one socket (TCP connect, upgrade, first frame).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// Upper bound for one ping's answer; a ping unanswered by then counts as lost.
const PONG_TIMEOUT: Duration = Duration::from_secs(5);
/// Highest latency a histogram holds (µs); larger values are clamped to it.
const MAX_LATENCY_MICROS: u64 = 600_000_000;
/// Histogram shards: enough that two threads seldom contend for one.
const SHARDS: usize = 64;

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct Target {
    pub server: SocketAddr,
    /// Source addresses used in turn (each has its own ~28 000 ephemeral ports).
    pub sources: Vec<IpAddr>,
    /// Path and query of the channel, token included (shared: 19 500 copies would add up).
    pub path: Arc<str>,
}

/// HDR histograms of microseconds, sharded to keep lock contention low.
pub struct Latencies(Vec<Mutex<Histogram<u64>>>);

impl Latencies {
    /// Empty histograms covering 1 µs to 10 minutes at 3 significant digits.
    pub fn new() -> Self {
        Self((0..SHARDS).map(|_| Mutex::new(new_histogram())).collect())
    }

    /// Records `micros` in the shard of `key`.
    pub fn record(&self, key: usize, micros: u64) {
        let mut h = self.0[key % SHARDS]
            .lock()
            .expect("histogram lock poisoned");
        h.saturating_record(micros.clamp(1, MAX_LATENCY_MICROS));
    }

    /// All shards added together.
    pub fn merged(&self) -> Histogram<u64> {
        let mut all = new_histogram();
        for shard in &self.0 {
            let h = shard.lock().expect("histogram lock poisoned");
            all.add(&*h).expect("same bounds");
        }
        all
    }
}

impl Default for Latencies {
    fn default() -> Self {
        Self::new()
    }
}

/// An empty microsecond histogram with the bounds every benchmark uses.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_MICROS, 3).expect("valid bounds")
}

/// When each benchmark event is due: `start + seq * interval`, `start` set once by the sender.
pub struct Schedule {
    start: OnceLock<Instant>,
    pub interval: Duration,
}

impl Schedule {
    pub fn new(interval: Duration) -> Self {
        Self {
            start: OnceLock::new(),
            interval,
        }
    }

    /// Fixes the moment event 0 is due; later calls are ignored.
    pub fn begin(&self, start: Instant) -> Instant {
        *self.start.get_or_init(|| start)
    }

    /// The moment event `seq` is due, once the schedule has begun.
    pub fn due(&self, seq: u64) -> Option<Instant> {
        let start = *self.start.get()?;
        Some(start + self.interval.mul_f64(seq as f64))
    }
}

/// What listening sockets look for and where they put what they find.
pub struct Watch {
    /// The subdomain prefix of this run's events; the sequence number follows it.
    pub prefix: String,
    /// How many events the run sends.
    pub events: u64,
    /// Shared with the sender, which fixes its start.
    pub schedule: Arc<Schedule>,
    pub latencies: Latencies,
    /// Per event, the lowest latency any socket saw (µs; `u64::MAX` until one did): how
    /// long the event took to leave the server at all, before its fan-out.
    pub first_reads: Vec<AtomicU64>,
    /// Sockets that have seen every event.
    pub complete: AtomicUsize,
    /// Nanoseconds since `epoch` of the latest benchmark frame any socket read.
    pub last_frame_nanos: AtomicU64,
    pub epoch: Instant,
}

impl Watch {
    pub fn new(prefix: String, events: u64, interval: Duration) -> Self {
        Self {
            prefix,
            events,
            schedule: Arc::new(Schedule::new(interval)),
            latencies: Latencies::new(),
            first_reads: (0..events).map(|_| AtomicU64::new(u64::MAX)).collect(),
            complete: AtomicUsize::new(0),
            last_frame_nanos: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    /// The first socket's latency of every event that reached one, µs.
    pub fn first_read_latencies(&self) -> Histogram<u64> {
        let mut histogram = new_histogram();
        for first in &self.first_reads {
            match first.load(Ordering::Relaxed) {
                u64::MAX => {}
                micros => histogram.saturating_record(micros.clamp(1, MAX_LATENCY_MICROS)),
            }
        }
        histogram
    }

    /// The moment of the latest benchmark frame read by any socket.
    pub fn last_frame(&self) -> Option<Instant> {
        match self.last_frame_nanos.load(Ordering::Relaxed) {
            0 => None,
            n => Some(self.epoch + Duration::from_nanos(n)),
        }
    }
}

/// How the ping role paces itself.
pub struct PingPlan {
    pub count: u32,
    pub interval: Duration,
    /// Cancelled when every socket is connected: pinging starts then.
    pub go: CancellationToken,
    pub latencies: Latencies,
}

/// What a socket does once connected.
#[derive(Clone)]
pub enum Role {
    Listen(Arc<Watch>),
    Ping(Arc<PingPlan>),
}

/// What one socket saw.
#[derive(Debug, Default, Clone)]
pub struct SocketReport {
    /// Benchmark frames read, duplicates included.
    pub frames: u64,
    /// Distinct benchmark events read.
    pub distinct: u64,
    pub duplicates: u64,
    /// Benchmark frames whose id was lower than one read before.
    pub out_of_order: u64,
    pub pongs: u64,
    pub lost_pings: u64,
    /// Why the socket ended before it was told to stop, if it did.
    pub ended_early: Option<String>,
}

/// Per-socket bookkeeping of the listen role.
struct Tally {
    seen: Vec<u64>,
    last_id: u64,
    report: SocketReport,
}

impl Tally {
    fn new(events: u64) -> Self {
        Self {
            seen: vec![0; events.div_ceil(64) as usize],
            last_id: 0,
            report: SocketReport::default(),
        }
    }

    /// Accounts one message; returns true when it completed the set of events.
    fn on_message(&mut self, watch: &Watch, key: usize, msg: &[u8], now: Instant) -> bool {
        let Some(seq) = marker_seq(msg, watch.prefix.as_bytes()) else {
            return false;
        };
        if seq >= watch.events {
            return false;
        }
        self.report.frames += 1;
        let nanos = now.saturating_duration_since(watch.epoch).as_nanos() as u64;
        watch.last_frame_nanos.fetch_max(nanos, Ordering::Relaxed);
        if let Some(due) = watch.schedule.due(seq) {
            let micros = now.saturating_duration_since(due).as_micros() as u64;
            watch.latencies.record(key, micros);
            let first = &watch.first_reads[seq as usize];
            // Reading first keeps the line shared: only the few earliest sockets write it.
            if micros < first.load(Ordering::Relaxed) {
                first.fetch_min(micros, Ordering::Relaxed);
            }
        }
        if let Some(id) = event_id(msg) {
            if id < self.last_id {
                self.report.out_of_order += 1;
            }
            self.last_id = self.last_id.max(id);
        }
        let (word, bit) = ((seq / 64) as usize, 1u64 << (seq % 64));
        if self.seen[word] & bit != 0 {
            self.report.duplicates += 1;
            return false;
        }
        self.seen[word] |= bit;
        self.report.distinct += 1;
        self.report.distinct == watch.events
    }
}

/// The sequence number following `prefix` in `msg`, if the prefix occurs.
pub fn marker_seq(msg: &[u8], prefix: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(msg).ok()?;
    let prefix = std::str::from_utf8(prefix).ok()?;
    let at = text.find(prefix)? + prefix.len();
    parse_digits(&msg[at..])
}

/// The event id of a frame: the fast path reads a leading `{"id":N`, otherwise JSON is parsed.
pub fn event_id(msg: &[u8]) -> Option<u64> {
    if let Some(rest) = msg.strip_prefix(br#"{"id":"#) {
        let rest = rest.strip_prefix(b" ").unwrap_or(rest);
        return parse_digits(rest);
    }
    let value: serde_json::Value = serde_json::from_slice(msg).ok()?;
    value.get("id")?.as_u64()
}

fn parse_digits(bytes: &[u8]) -> Option<u64> {
    let digits = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&bytes[..digits]).ok()?.parse().ok()
}

/// Open sockets and their tasks.
pub struct Fleet {
    pub requested: usize,
    pub connected: usize,
    /// How many sockets failed to open, with the first few reasons.
    pub failed: usize,
    pub first_errors: Vec<String>,
    /// From the first connect to the last socket's first frame.
    pub connect_time: Duration,
    /// Sockets that are still open.
    pub alive: Arc<AtomicUsize>,
    stop: CancellationToken,
    tasks: Vec<JoinHandle<Option<SocketReport>>>,
}

impl Fleet {
    /// Opens `count` sockets, at most `concurrency` handshakes at a time, then runs `role`
    /// on each. Returns once every socket is open or has failed.
    pub async fn open(target: &Target, count: usize, concurrency: usize, role: Role) -> Self {
        let stop = CancellationToken::new();
        let permits = Arc::new(Semaphore::new(concurrency.max(1)));
        let alive = Arc::new(AtomicUsize::new(0));
        let (tx, mut rx) = mpsc::unbounded_channel::<Result<(), String>>();
        let started = Instant::now();
        let mut tasks = Vec::with_capacity(count);
        for i in 0..count {
            let source = target.sources[i % target.sources.len()];
            let (server, path) = (target.server, Arc::clone(&target.path));
            let (permits, tx, stop, role, alive) = (
                permits.clone(),
                tx.clone(),
                stop.clone(),
                role.clone(),
                alive.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let opened = {
                    let _permit = permits.acquire().await.expect("never closed");
                    tokio::time::timeout(CONNECT_TIMEOUT, open_one(source, server, &path)).await
                };
                let mut ws = match opened {
                    Ok(Ok(ws)) => ws,
                    Ok(Err(e)) => {
                        let _ = tx.send(Err(format!("{source}: {e:#}")));
                        return None;
                    }
                    Err(_) => {
                        let _ = tx.send(Err(format!("{source}: timed out")));
                        return None;
                    }
                };
                alive.fetch_add(1, Ordering::Relaxed);
                let _ = tx.send(Ok(()));
                drop(tx);
                let report = match role {
                    Role::Listen(watch) => listen(&mut ws, i, &watch, &stop).await,
                    Role::Ping(plan) => ping(&mut ws, i, &plan, &stop).await,
                };
                if report.ended_early.is_some() {
                    alive.fetch_sub(1, Ordering::Relaxed);
                } else {
                    ws.close_now();
                }
                Some(report)
            }));
        }
        drop(tx);
        let (mut connected, mut failed, mut first_errors) = (0, 0, Vec::new());
        let mut connect_time = Duration::ZERO;
        while let Some(result) = rx.recv().await {
            match result {
                Ok(()) => {
                    connected += 1;
                    connect_time = started.elapsed();
                }
                Err(e) => {
                    failed += 1;
                    if first_errors.len() < 5 {
                        first_errors.push(e);
                    }
                }
            }
        }
        Self {
            requested: count,
            connected,
            failed,
            first_errors,
            connect_time,
            alive,
            stop,
            tasks,
        }
    }

    /// Tells every socket to close and collects what each saw.
    pub async fn close(self) -> Vec<SocketReport> {
        self.stop.cancel();
        self.collect().await
    }

    /// Lets every socket finish its role, for at most `within`, then closes the rest.
    pub async fn finish(self, within: Duration) -> Vec<SocketReport> {
        let stop = self.stop.clone();
        let timer = tokio::spawn(async move {
            tokio::time::sleep(within).await;
            stop.cancel();
        });
        let reports = self.collect().await;
        timer.abort();
        reports
    }

    async fn collect(self) -> Vec<SocketReport> {
        let mut reports = Vec::with_capacity(self.tasks.len());
        for task in self.tasks {
            if let Ok(Some(report)) = task.await {
                reports.push(report);
            }
        }
        reports
    }
}

/// Connects one socket and waits for `connection_established`.
async fn open_one(source: IpAddr, server: SocketAddr, path: &str) -> anyhow::Result<WsConn> {
    let mut ws = WsConn::connect(source, server, path).await?;
    let mut first: Option<bool> = None;
    while first.is_none() {
        let outcome = ws
            .read(|m, _| {
                first.get_or_insert_with(|| {
                    std::str::from_utf8(m).is_ok_and(|t| t.contains("\"connection_established\""))
                });
            })
            .await?;
        if let ReadOutcome::Closed(code) = outcome {
            bail!("closed by the server with {code:?} before connection_established");
        }
    }
    match first {
        Some(true) => Ok(ws),
        _ => Err(anyhow!("first frame was not connection_established")),
    }
}

/// The listen role: runs until `stop`, or until the server ends the socket.
async fn listen(
    ws: &mut WsConn,
    key: usize,
    watch: &Watch,
    stop: &CancellationToken,
) -> SocketReport {
    let mut tally = Tally::new(watch.events);
    // Registered once, not once per frame.
    let stopped = stop.cancelled();
    tokio::pin!(stopped);
    loop {
        let mut completed = false;
        let outcome = tokio::select! {
            biased;
            () = &mut stopped => break,
            r = ws.read(|m, now| completed |= tally.on_message(watch, key, m, now)) => r,
        };
        if completed {
            watch.complete.fetch_add(1, Ordering::Relaxed);
        }
        match outcome {
            Ok(ReadOutcome::Open) => {}
            Ok(ReadOutcome::Closed(code)) => {
                tally.report.ended_early = Some(format!("closed by the server with {code:?}"));
                break;
            }
            Err(e) => {
                tally.report.ended_early = Some(format!("{e:#}"));
                break;
            }
        }
    }
    tally.report
}

/// The ping role: after `go`, sends `count` pings, one per `interval` from a random phase.
async fn ping(
    ws: &mut WsConn,
    key: usize,
    plan: &PingPlan,
    stop: &CancellationToken,
) -> SocketReport {
    let mut report = SocketReport::default();
    tokio::select! {
        () = stop.cancelled() => return report,
        () = plan.go.cancelled() => {}
    }
    let phase = plan.interval.mul_f64(rand::random::<f64>());
    let start = tokio::time::Instant::now() + phase;
    for round in 0..plan.count {
        tokio::select! {
            () = stop.cancelled() => return report,
            () = tokio::time::sleep_until(start + plan.interval * round) => {}
        }
        let sent = Instant::now();
        if let Err(e) = ws.send_text(br#"{"type":"ping"}"#).await {
            report.ended_early = Some(format!("{e:#}"));
            return report;
        }
        let answer = tokio::time::timeout(PONG_TIMEOUT, async {
            loop {
                let mut pong_at = None;
                let outcome = ws
                    .read(|m, now| {
                        if pong_at.is_none() && is_pong(m) {
                            pong_at = Some(now);
                        }
                    })
                    .await?;
                if let Some(at) = pong_at {
                    return Ok(at);
                }
                if let ReadOutcome::Closed(code) = outcome {
                    bail!("closed by the server with {code:?}");
                }
            }
        })
        .await;
        match answer {
            Ok(Ok(at)) => {
                report.pongs += 1;
                let micros = at.saturating_duration_since(sent).as_micros() as u64;
                plan.latencies.record(key, micros);
            }
            Ok(Err(e)) => {
                report.ended_early = Some(format!("{e:#}"));
                return report;
            }
            Err(_) => report.lost_pings += 1,
        }
    }
    report
}

fn is_pong(msg: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(msg)
        .is_ok_and(|v| v.get("type").and_then(|t| t.as_str()) == Some("pong"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: &[u8] = br#"{"id":42,"type":"business_created","payload":{"business":{"id":"u","name":"Bench bnab12f1-17","subdomain":"bnab12f1-17"},"message":"m"},"timestamp":"t"}"#;

    #[test]
    fn finds_the_marker_and_the_id() {
        assert_eq!(marker_seq(FRAME, b"bnab12f1-"), Some(17));
        assert_eq!(marker_seq(FRAME, b"bnzz-"), None);
        assert_eq!(event_id(FRAME), Some(42));
        assert_eq!(event_id(br#"{"type":"x","id":7}"#), Some(7));
        assert_eq!(event_id(br#"{"id": 9, "type":"x"}"#), Some(9));
        assert_eq!(event_id(br#"{"type":"pong"}"#), None);
    }

    #[test]
    fn tally_counts_duplicates_and_out_of_order_ids() {
        let watch = Watch::new("bn-".into(), 3, Duration::from_millis(10));
        watch.schedule.begin(Instant::now());
        let mut t = Tally::new(3);
        let now = Instant::now();
        let f =
            |id: u64, seq: u64| format!(r#"{{"id":{id},"payload":{{"subdomain":"bn-{seq}"}}}}"#);
        assert!(!t.on_message(&watch, 0, f(5, 1).as_bytes(), now));
        assert!(!t.on_message(&watch, 0, f(4, 0).as_bytes(), now));
        assert!(!t.on_message(&watch, 0, f(5, 1).as_bytes(), now));
        assert!(!t.on_message(&watch, 0, br#"{"type":"pong"}"#, now));
        assert!(t.on_message(&watch, 0, f(6, 2).as_bytes(), now));
        assert_eq!(t.report.frames, 4);
        assert_eq!(t.report.distinct, 3);
        assert_eq!(t.report.duplicates, 1);
        assert_eq!(t.report.out_of_order, 1);
        assert_eq!(watch.latencies.merged().len(), 4);
    }

    #[test]
    fn first_read_keeps_each_events_earliest_socket() {
        let watch = Watch::new("bn-".into(), 3, Duration::from_millis(10));
        let start = Instant::now();
        watch.schedule.begin(start);
        let f = |seq: u64| {
            format!(
                r#"{{"id":{},"payload":{{"subdomain":"bn-{seq}"}}}}"#,
                seq + 1
            )
        };
        let at = |ms: u64| start + Duration::from_millis(ms);
        let (mut late, mut early) = (Tally::new(3), Tally::new(3));
        // Event 0 is due at 0 ms: read at 7 ms by one socket, at 3 ms by the other.
        late.on_message(&watch, 0, f(0).as_bytes(), at(7));
        early.on_message(&watch, 1, f(0).as_bytes(), at(3));
        // Event 1 is due at 10 ms and read at 12 ms; event 2 reaches nobody.
        late.on_message(&watch, 0, f(1).as_bytes(), at(12));
        let first = watch.first_read_latencies();
        assert_eq!(first.len(), 2, "an event nobody read is left out");
        assert_eq!(first.min(), 2_000);
        assert_eq!(
            first.value_at_quantile(1.0),
            first.highest_equivalent(3_000)
        );
    }

    #[test]
    fn schedule_spaces_events_by_the_interval() {
        let s = Schedule::new(Duration::from_millis(20));
        assert!(s.due(0).is_none());
        let t0 = Instant::now();
        s.begin(t0);
        s.begin(t0 + Duration::from_secs(9));
        assert_eq!(s.due(5), Some(t0 + Duration::from_millis(100)));
    }

    #[test]
    fn recognises_pongs() {
        assert!(is_pong(br#"{"type":"pong"}"#));
        assert!(!is_pong(br#"{"type":"ping"}"#));
    }
}
