//! HTTP load: events created at a steady rate (open loop), and durable creates as fast as a
//! fixed number of concurrent clients can go (closed loop).
//!
//! The paced sender is open-loop on purpose: each request is issued at its due time on any idle
//! keep-alive connection (a new one if none is idle), so a slow answer never delays the next
//! request, and receivers measure from the due time — a backlog shows up as latency instead of
//! being hidden (no coordinated omission).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::http::{create_business, HttpConn};
use super::sockets::{new_histogram, Schedule};

/// Connections opened before the first paced request, so it pays no connect.
const WARM_CONNECTIONS: usize = 4;

/// What a batch of creates did.
#[derive(Debug)]
pub struct CreatesReport {
    /// Requests answered 201.
    pub ok: u64,
    /// Requests refused or failed, with the first reason.
    pub failed: u64,
    pub first_error: Option<String>,
    /// Due (paced) or send (closed loop) to answer, µs.
    pub latency: Histogram<u64>,
    /// From the first request to the last answer.
    pub elapsed: Duration,
}

/// Runs `work` on a thread and single-threaded runtime of its own, so its requests are sent
/// and their answers read at once, not after the thousands of socket frames that the shared
/// runtime has ready at the same moment. Without it the client's own backlog was measured as
/// server latency: POST → 201 at 6.9 ms p50 against the plain baseline, whose answer is not
/// durable, and 42 s "waits" of the big delete's reader and writer.
///
/// # Errors
/// When the thread or its runtime cannot start, or what `work` returns.
pub async fn on_own_thread<T, F, Fut>(name: &str, work: F) -> anyhow::Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let (done, report) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            let _ = done.send(match runtime {
                Ok(runtime) => runtime.block_on(work()),
                Err(error) => Err(error.into()),
            });
        })?;
    report.await?
}

/// [`paced_creates`] on a thread of its own ([`on_own_thread`]).
///
/// # Errors
/// When the thread, its runtime or the pacing thread cannot start.
pub async fn paced_creates_on_own_thread(
    server: SocketAddr,
    token: Arc<str>,
    prefix: Arc<str>,
    events: u64,
    schedule: Arc<Schedule>,
) -> anyhow::Result<CreatesReport> {
    on_own_thread("paced-posts", move || async move {
        paced_creates(server, token, prefix, events, schedule).await
    })
    .await
}

/// Creates `events` businesses named `<prefix><seq>`, one every `schedule.interval`, starting
/// now; returns when every request has been answered.
///
/// # Errors
/// When the pacing thread cannot start (nothing was sent).
async fn paced_creates(
    server: SocketAddr,
    token: Arc<str>,
    prefix: Arc<str>,
    events: u64,
    schedule: Arc<Schedule>,
) -> anyhow::Result<CreatesReport> {
    let pool: Arc<Mutex<Vec<HttpConn>>> = Arc::new(Mutex::new(Vec::new()));
    for _ in 0..WARM_CONNECTIONS {
        let mut conn = HttpConn::new(server);
        if conn.request("GET", "/healthz", None, None).await.is_ok() {
            pool.lock().expect("pool lock").push(conn);
        }
    }
    let start = schedule.begin(Instant::now() + Duration::from_millis(20));
    let mut fired = pace(schedule.clone(), events)?;
    let mut tasks = Vec::with_capacity(events as usize);
    while let Some(seq) = fired.recv().await {
        let due = schedule.due(seq).expect("schedule has begun");
        let (pool, token, prefix) = (pool.clone(), token.clone(), prefix.clone());
        tasks.push(tokio::spawn(async move {
            let taken = pool.lock().expect("pool lock").pop();
            let mut conn = taken.unwrap_or_else(|| HttpConn::new(server));
            let result = create_business(&mut conn, &token, &format!("{prefix}{seq}")).await;
            pool.lock().expect("pool lock").push(conn);
            (result, due.elapsed())
        }));
    }
    let mut report = CreatesReport {
        ok: 0,
        failed: 0,
        first_error: None,
        latency: new_histogram(),
        elapsed: Duration::ZERO,
    };
    for task in tasks {
        let (result, took) = match task.await {
            Ok(r) => r,
            Err(e) => (Err(e.into()), Duration::ZERO),
        };
        tally(&mut report, result, took);
    }
    report.elapsed = start.elapsed();
    Ok(report)
}

/// Names each event of `schedule` at its due time, from a thread of its own that sleeps to
/// it. tokio's timer rounds every sleep up to its next 1 ms tick and then wakes the runtime:
/// `sleep_until(due)` sent requests 1–2 ms late, and since latency counts from the due time,
/// that lag was measured as the server's (POST → 201 p50 of 2.6 ms against an idle plain
/// baseline that answers in 40 µs). A thread's sleep ends within tens of µs of the due time.
///
/// # Errors
/// When the thread cannot start.
fn pace(
    schedule: Arc<Schedule>,
    events: u64,
) -> std::io::Result<tokio::sync::mpsc::UnboundedReceiver<u64>> {
    let (fire, fired) = tokio::sync::mpsc::unbounded_channel();
    let ticker = move || {
        for seq in 0..events {
            let Some(due) = schedule.due(seq) else { break };
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            if fire.send(seq).is_err() {
                break; // the sender gave up
            }
        }
    };
    std::thread::Builder::new()
        .name("pace".into())
        .spawn(ticker)?;
    Ok(fired)
}

/// Creates businesses named `<prefix><n>` from `concurrency` clients, each sending its next
/// request when the previous one is answered, for `duration`.
pub async fn closed_loop_creates(
    server: SocketAddr,
    token: Arc<str>,
    prefix: Arc<str>,
    concurrency: usize,
    duration: Duration,
) -> CreatesReport {
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let (next, token, prefix) = (next.clone(), token.clone(), prefix.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = HttpConn::new(server);
            let mut report = CreatesReport {
                ok: 0,
                failed: 0,
                first_error: None,
                latency: new_histogram(),
                elapsed: Duration::ZERO,
            };
            while Instant::now() < deadline {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let sent = Instant::now();
                let result = create_business(&mut conn, &token, &format!("{prefix}{n}")).await;
                tally(&mut report, result, sent.elapsed());
            }
            report
        }));
    }
    let mut total = CreatesReport {
        ok: 0,
        failed: 0,
        first_error: None,
        latency: new_histogram(),
        elapsed: Duration::ZERO,
    };
    for task in tasks {
        match task.await {
            Ok(r) => {
                total.ok += r.ok;
                total.failed += r.failed;
                total.first_error = total.first_error.or(r.first_error);
                total.latency.add(&r.latency).expect("same bounds");
            }
            Err(e) => tally(&mut total, Err(e.into()), Duration::ZERO),
        }
    }
    total.elapsed = start.elapsed();
    total
}

fn tally(report: &mut CreatesReport, result: anyhow::Result<()>, took: Duration) {
    match result {
        Ok(()) => {
            report.ok += 1;
            report
                .latency
                .saturating_record((took.as_micros() as u64).max(1));
        }
        Err(e) => {
            report.failed += 1;
            report.first_error.get_or_insert_with(|| format!("{e:#}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pacing_names_every_event_once_in_order_and_never_before_it_is_due() {
        let schedule = Arc::new(Schedule::new(Duration::from_millis(3)));
        schedule.begin(Instant::now() + Duration::from_millis(5));
        let mut fired = pace(schedule.clone(), 20).expect("pacing thread");
        let mut seen = Vec::new();
        while let Some(seq) = fired.recv().await {
            let due = schedule.due(seq).expect("begun");
            assert!(
                Instant::now() >= due,
                "event {seq} named before its due time"
            );
            seen.push(seq);
        }
        assert_eq!(seen, (0..20).collect::<Vec<u64>>());
    }

    #[tokio::test]
    async fn pacing_an_unbegun_schedule_names_nothing() {
        let schedule = Arc::new(Schedule::new(Duration::from_millis(1)));
        let mut fired = pace(schedule, 5).expect("pacing thread");
        assert_eq!(fired.recv().await, None);
    }
}
