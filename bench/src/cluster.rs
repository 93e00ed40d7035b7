//! Issue 15's benchmark row: several `app serve` nodes in cluster mode, measured together.
//!
//! - Fan-out across nodes: N dashboard sockets spread round-robin over the nodes, events
//!   created at a steady rate through the first node only, so every event a socket on another
//!   node reads has gone through the stream and that node's apply. Each node's sockets have
//!   their own figures, and the frames per second add up across nodes.
//! - Creates through the cluster: C closed-loop clients spread over the nodes, the cost of the
//!   log (a publish acknowledged by a quorum, then the local apply) on every create.
//!
//! With one node it measures that node alone (what `scripts/bench-cluster.sh --single` runs
//! until cluster mode exists), so the scenario can be tried anywhere.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;

use super::load::{self, CreatesReport};
use super::report::{self, Table};
use super::scenarios::Ctx;
use super::sockets::{Fleet, Role, SocketReport, Target, Watch};

/// How long the fan-out waits for stragglers after the last frame any socket read.
const QUIET_AFTER_LAST_FRAME: Duration = Duration::from_secs(3);
/// Hard bound on the fan-out's wait after its last request was answered.
const MAX_DRAIN: Duration = Duration::from_secs(60);

/// The sizes of one cluster run.
pub struct ClusterSpec {
    pub sockets: usize,
    pub rate: f64,
    pub events: u64,
    pub creates_concurrency: usize,
    pub creates_for: Duration,
}

/// One node's share of the fan-out.
struct NodeFanout {
    server: SocketAddr,
    sockets: usize,
    connected: usize,
    failed: usize,
    first_errors: Vec<String>,
    watch: Arc<Watch>,
    reports: Vec<SocketReport>,
}

/// Runs the fan-out and the creates over `nodes` and writes both rows into `table`.
///
/// # Errors
/// When no socket could be opened on any node.
pub async fn run(
    ctx: &Ctx,
    nodes: &[SocketAddr],
    spec: &ClusterSpec,
    table: &mut Table,
) -> anyhow::Result<()> {
    if nodes.is_empty() {
        bail!("no node to measure");
    }
    if !(spec.rate > 0.0 && spec.rate.is_finite()) {
        bail!("--rate must be a positive number");
    }
    fanout(ctx, nodes, spec, table).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    creates(ctx, nodes, spec, table).await;
    table.notes.push(format!(
        "{} node(s): {}; server CPU is not measured here (several processes)",
        nodes.len(),
        nodes
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    ));
    Ok(())
}

async fn fanout(
    ctx: &Ctx,
    nodes: &[SocketAddr],
    spec: &ClusterSpec,
    table: &mut Table,
) -> anyhow::Result<()> {
    let prefix = format!("bk{}-", ctx.run);
    let interval = Duration::from_secs_f64(1.0 / spec.rate);
    let first = Watch::new(prefix.clone(), spec.events, interval);
    let schedule = first.schedule.clone();
    let path: Arc<str> = format!("/ws/dashboard/?token={}", ctx.token).into();
    let mut shares = Vec::with_capacity(nodes.len());
    let mut fleets = Vec::with_capacity(nodes.len());
    for (i, &server) in nodes.iter().enumerate() {
        // Round robin: node i takes sockets i, i + k, i + 2k, …
        let sockets = (spec.sockets + nodes.len() - 1 - i) / nodes.len();
        let watch = Arc::new(Watch {
            schedule: schedule.clone(),
            ..Watch::new(prefix.clone(), spec.events, interval)
        });
        let target = Target {
            server,
            sources: ctx.sources.clone(),
            path: path.clone(),
        };
        eprintln!("bench: opening {sockets} sockets on {server}");
        let fleet = Fleet::open(
            &target,
            sockets,
            ctx.connect_concurrency,
            Role::Listen(watch.clone()),
        )
        .await;
        shares.push(NodeFanout {
            server,
            sockets,
            connected: fleet.connected,
            failed: fleet.failed,
            first_errors: fleet.first_errors.clone(),
            watch,
            reports: Vec::new(),
        });
        fleets.push(fleet);
    }
    if shares.iter().all(|s| s.connected == 0) {
        bail!("no socket could be opened: {:?}", shares[0].first_errors);
    }
    eprintln!(
        "bench: {} events at {}/s through {}",
        spec.events, spec.rate, nodes[0]
    );
    let posts = load::paced_creates_on_own_thread(
        nodes[0],
        ctx.token.clone(),
        prefix.into(),
        spec.events,
        schedule.clone(),
    )
    .await?;
    drain(&shares, &fleets).await;
    for (share, fleet) in shares.iter_mut().zip(fleets) {
        share.reports = fleet.close().await;
    }

    let start = schedule.due(0).unwrap_or_else(Instant::now);
    let mut all = super::sockets::new_histogram();
    let (mut frames, mut lost, mut duplicates, mut out_of_order) = (0u64, 0u64, 0u64, 0u64);
    let mut per_node = Vec::new();
    for share in &shares {
        let latency = share.watch.latencies.merged();
        all.add(&latency).expect("same bounds");
        let node_frames: u64 = share.reports.iter().map(|r| r.frames).sum();
        let node_lost = share
            .reports
            .iter()
            .map(|r| posts.ok.saturating_sub(r.distinct))
            .sum::<u64>()
            + posts.ok * share.failed as u64;
        frames += node_frames;
        lost += node_lost;
        duplicates += share.reports.iter().map(|r| r.duplicates).sum::<u64>();
        out_of_order += share.reports.iter().map(|r| r.out_of_order).sum::<u64>();
        let span = share
            .watch
            .last_frame()
            .map_or(Duration::ZERO, |t| t.saturating_duration_since(start));
        per_node.push(format!(
            "{}: {} of {} sockets, {}, {} lost, {} frames/s",
            share.server,
            share.connected,
            share.sockets,
            report::latency(&latency),
            report::count(node_lost),
            report::count((node_frames as f64 / span.as_secs_f64().max(1e-9)).round() as u64)
        ));
        if !share.first_errors.is_empty() {
            table.notes.push(format!(
                "cluster fan-out: sockets on {} failed: {:?}",
                share.server, share.first_errors
            ));
        }
    }
    let span = shares
        .iter()
        .filter_map(|s| s.watch.last_frame())
        .max()
        .map_or(Duration::ZERO, |t| t.saturating_duration_since(start));
    table.row(
        format!(
            "cluster fan-out: {} sockets over {} node(s) @ {} events/s",
            report::count(spec.sockets as u64),
            nodes.len(),
            spec.rate
        ),
        "0 lost, 0 out of order",
        format!(
            "{}; {} lost, {} duplicate, {} out of order of {} frames; {} frames/s",
            report::latency(&all),
            report::count(lost),
            duplicates,
            out_of_order,
            report::count(frames),
            report::count((frames as f64 / span.as_secs_f64().max(1e-9)).round() as u64)
        ),
        Some(lost == 0 && out_of_order == 0 && duplicates == 0 && posts.failed == 0),
        true,
    );
    table
        .notes
        .push(format!("cluster fan-out per node: {}", per_node.join("; ")));
    if let Some(e) = &posts.first_error {
        table.notes.push(format!(
            "cluster fan-out: {} of the event requests failed, e.g. {e}",
            posts.failed
        ));
    }
    Ok(())
}

/// Waits until every node's sockets have every event, or nothing has arrived for a while.
async fn drain(shares: &[NodeFanout], fleets: &[Fleet]) {
    let answered = Instant::now();
    loop {
        let done = shares.iter().zip(fleets).all(|(s, f)| {
            s.watch.complete.load(Ordering::Relaxed) >= f.alive.load(Ordering::Relaxed)
        });
        if done {
            return;
        }
        let quiet_since = shares
            .iter()
            .filter_map(|s| s.watch.last_frame())
            .max()
            .unwrap_or(answered)
            .max(answered);
        if quiet_since.elapsed() >= QUIET_AFTER_LAST_FRAME || answered.elapsed() >= MAX_DRAIN {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn creates(ctx: &Ctx, nodes: &[SocketAddr], spec: &ClusterSpec, table: &mut Table) {
    eprintln!(
        "bench: creates from {} clients over {} node(s) for {:?}",
        spec.creates_concurrency,
        nodes.len(),
        spec.creates_for
    );
    // Every node's clients at once: one task per node, each running its closed loop.
    let runs: Vec<_> = nodes
        .iter()
        .enumerate()
        .map(|(i, &server)| {
            let clients = (spec.creates_concurrency + nodes.len() - 1 - i) / nodes.len();
            let prefix: Arc<str> = format!("bkc{}n{i}-", ctx.run).into();
            tokio::spawn(load::closed_loop_creates(
                server,
                ctx.token.clone(),
                prefix,
                clients.max(1),
                spec.creates_for,
            ))
        })
        .collect();
    let mut reports: Vec<CreatesReport> = Vec::with_capacity(runs.len());
    let mut answered = Vec::with_capacity(runs.len());
    for (run, node) in runs.into_iter().zip(nodes) {
        match run.await {
            Ok(report) => {
                reports.push(report);
                answered.push(node);
            }
            Err(e) => table
                .notes
                .push(format!("cluster creates: a node's clients failed: {e}")),
        }
    }
    let ok: u64 = reports.iter().map(|r| r.ok).sum();
    let failed: u64 = reports.iter().map(|r| r.failed).sum();
    let elapsed = reports.iter().map(|r| r.elapsed).max().unwrap_or_default();
    let mut latency = super::sockets::new_histogram();
    for r in &reports {
        latency.add(&r.latency).expect("same bounds");
    }
    let per_second = ok as f64 / elapsed.as_secs_f64().max(1e-9);
    table.row(
        format!(
            "cluster creates per second ({} clients over {} node(s))",
            spec.creates_concurrency,
            nodes.len()
        ),
        "every create acknowledged",
        format!(
            "{} /s ({} in {:.1} s, {} failed; latency {})",
            report::count(per_second.round() as u64),
            report::count(ok),
            elapsed.as_secs_f64(),
            failed,
            report::latency(&latency)
        ),
        Some(failed == 0 && ok > 0),
        true,
    );
    let per_node: Vec<String> = answered
        .iter()
        .zip(&reports)
        .map(|(node, r)| format!("{node}: {} ok, {} failed", r.ok, r.failed))
        .collect();
    table
        .notes
        .push(format!("cluster creates per node: {}", per_node.join("; ")));
    if let Some(e) = reports.iter().find_map(|r| r.first_error.as_ref()) {
        table
            .notes
            .push(format!("cluster creates: {failed} failed, e.g. {e}"));
    }
}
