//! `app-bench`: a load generator that drives a running `app serve` only through its real
//! interfaces (HTTP and WebSocket on loopback), like `redis-benchmark` beside Redis. It is its
//! own crate in the workspace so the server library neither exports it nor links its
//! dependencies (`hdrhistogram`).
//!
//! Layout: [`ws`] and [`http`] are lean protocol clients; [`sockets`] holds fleets of
//! dashboard sockets; [`load`] creates events over HTTP; [`procfs`] reads the server's CPU and
//! memory; [`scenarios`] are the measurements; [`report`] prints them as one table. The
//! standard suite (`app-bench suite`) is what `scripts/bench.sh` runs and `docs/bench.md`
//! shows; `--smoke` is the same suite at a size CI can afford, with no target judged.
//! [`compare`] turns several suite runs against `app serve` and the plain baseline, plus the
//! floor, into issue 16's table of ratios. [`smtp_sink`] takes the server's mails during a
//! run, as a deployment's SMTP relay would.

mod big_delete;
mod cluster;
mod compare;
mod http;
mod load;
mod mail_drain;
mod procfs;
mod report;
mod scenarios;
mod smtp_sink;
mod sockets;
mod ws;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use clap::Parser;

use report::Table;
use scenarios::Ctx;

/// Pause between two scenarios, so closed sockets are gone before the next one measures.
const SETTLE: Duration = Duration::from_secs(2);

/// Load-test a running `app serve` through its HTTP and WebSocket interfaces.
#[derive(clap::Parser, Debug)]
#[command(name = "app-bench", version, about, long_about = None)]
pub struct BenchArgs {
    /// Base URL of the running `app serve`.
    #[arg(long, env = "APP_BENCH_URL", default_value = "http://127.0.0.1:8000")]
    pub url: url::Url,
    /// Super admin email used to log in.
    #[arg(long, env = "APP_ADMIN_EMAIL", default_value = "admin@example.com")]
    pub email: String,
    /// Super admin password used to log in.
    #[arg(
        long,
        env = "APP_ADMIN_PASSWORD",
        default_value = "secret-pass-1",
        hide_env_values = true
    )]
    pub password: String,
    /// PID of the server, for its CPU time and RSS from /proc (skipped without it).
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Spread sockets over this many source addresses 127.0.0.1, 127.0.0.2, … (each has its
    /// own ~28 000 ephemeral ports).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u8).range(1..=254))]
    pub source_addrs: u8,
    /// WebSocket handshakes in flight at once while opening sockets.
    #[arg(long, default_value_t = 256)]
    pub connect_concurrency: usize,
    #[command(subcommand)]
    pub command: BenchCommand,
}

/// One measurement, or the whole suite.
#[derive(clap::Subcommand, Debug)]
pub enum BenchCommand {
    /// The standard suite (what the README shows), printed as one table.
    Suite {
        /// A small run of the same suite for CI (100 sockets, 20 events); targets not judged.
        #[arg(long)]
        smoke: bool,
        /// Also write the figures as JSON here, for `compare`.
        #[arg(long)]
        json: Option<std::path::PathBuf>,
        /// Skip the big delete (the plain baseline has no reservations).
        #[arg(long)]
        without_big_delete: bool,
    },
    /// Issue 16's table: medians of the `app-N.json` and `baseline-N.json` suite runs in DIR,
    /// against the floor's `floor-SOCKETS-N.txt` and the fsync p50s in `fsync-us.txt` (back to
    /// back) and `fsync-every-MSms-us.txt` (at the POST row's pace). Needs no server.
    Compare {
        dir: std::path::PathBuf,
        /// Print the table without verdicts (the smoke sizes are too small to judge).
        #[arg(long)]
        smoke: bool,
    },
    /// The machine's fsync: p50 of writing and fsyncing 4 KiB in a file under DIR, in µs.
    /// Needs no server.
    Fsync {
        dir: std::path::PathBuf,
        #[arg(long, default_value_t = 200)]
        samples: u32,
        /// Wait this long before each sample (0: back to back), to measure the fsync of
        /// requests made at that pace.
        #[arg(long, default_value_t = 0)]
        every_ms: u64,
    },
    /// An SMTP server on loopback that takes every mail and keeps none (start `app serve`
    /// with `--smtp-url` pointing at it); prints the mails taken when stopped. Needs no
    /// server.
    SmtpSink {
        #[arg(long, default_value = "127.0.0.1:0")]
        addr: SocketAddr,
    },
    /// How fast the outbox drains over SMTP: binds a held SMTP sink on `--sink` (start the
    /// server with `--smtp-url smtp://SINK`), queues N welcome mails by creating N
    /// businesses, opens the sink and times the N mails' arrival, each once by Message-ID.
    MailDrain {
        #[arg(long, default_value = "127.0.0.1:2626")]
        sink: SocketAddr,
        #[arg(long, default_value_t = 2_000)]
        mails: u64,
        /// Creating clients.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
    },
    /// Hold N idle dashboard sockets: connect time, failures, server RSS per idle socket.
    Connect {
        #[arg(long, default_value_t = 19_500)]
        sockets: usize,
        /// Seconds to hold the sockets before reading memory.
        #[arg(long, default_value_t = 3.0)]
        hold_secs: f64,
    },
    /// N dashboard sockets, M events created over HTTP at R per second: latency of every
    /// (socket, event) pair from the request's due time, lost / duplicate / out-of-order
    /// frames, frames per second, server CPU per delivered frame.
    Fanout {
        #[arg(long, default_value_t = 5_000)]
        sockets: usize,
        /// Events per second.
        #[arg(long, default_value_t = 50.0)]
        rate: f64,
        /// Events in total.
        #[arg(long, default_value_t = 500)]
        events: u64,
    },
    /// Durable creates per second from C concurrent keep-alive HTTP clients.
    Creates {
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
    },
    /// Delete a business with N reservations while M sockets are open: the longest wait of
    /// any other request or socket meanwhile (the server needs a high
    /// --booking-rate-per-minute to book them).
    BigDelete {
        #[arg(long, default_value_t = 100_000)]
        reservations: u64,
        #[arg(long, default_value_t = 1_000)]
        sockets: usize,
        /// Seconds to watch the others after the delete is sent.
        #[arg(long, default_value_t = 10.0)]
        window_secs: f64,
    },
    /// Ping round trips: N sockets, each sending P pings one interval apart.
    Ping {
        #[arg(long, default_value_t = 1_000)]
        sockets: usize,
        #[arg(long, default_value_t = 10)]
        pings: u32,
        #[arg(long, default_value_t = 1_000)]
        interval_ms: u64,
    },
    /// Issue 15's row: N sockets spread round-robin over several cluster nodes, events paced
    /// through the first node, then creates from C clients spread over the nodes.
    Cluster {
        /// Every node's base URL, comma-separated (default: `--url` alone). `--url` is the
        /// node the benchmark logs in through.
        #[arg(long, value_delimiter = ',')]
        nodes: Vec<url::Url>,
        #[arg(long, default_value_t = 3_000)]
        sockets: usize,
        /// Events per second.
        #[arg(long, default_value_t = 50.0)]
        rate: f64,
        /// Events in total.
        #[arg(long, default_value_t = 300)]
        events: u64,
        /// Creating clients, over all nodes.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// Seconds of creates.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
    },
}

/// The sizes of one suite run.
struct SuiteSpec {
    name: &'static str,
    idle_sockets: usize,
    hold: Duration,
    /// (sockets, events per second, events, p99 target, must be lossless, over capacity)
    fanouts: Vec<(usize, f64, u64, Duration, bool, bool)>,
    creates_concurrency: usize,
    creates_for: Duration,
    ping_sockets: usize,
    pings: u32,
    ping_interval: Duration,
    /// (reservations, sockets, window) of the big delete.
    big_delete: (u64, usize, Duration),
    /// Whether the big delete runs at all.
    big_delete_too: bool,
    /// Whether the targets are judged (only at the standard sizes).
    judge: bool,
}

impl SuiteSpec {
    fn standard() -> Self {
        let ms = Duration::from_millis;
        Self {
            name: "standard",
            idle_sockets: 19_500,
            hold: Duration::from_secs(3),
            fanouts: vec![
                (5_000, 50.0, 500, ms(20), true, true),
                (10_000, 10.0, 200, ms(25), false, false),
                (1_000, 2.0, 30, ms(5), false, false),
            ],
            creates_concurrency: 64,
            creates_for: Duration::from_secs(10),
            ping_sockets: 1_000,
            pings: 10,
            ping_interval: Duration::from_secs(1),
            big_delete: (100_000, 1_000, Duration::from_secs(10)),
            big_delete_too: true,
            judge: true,
        }
    }

    fn smoke() -> Self {
        let ms = Duration::from_millis;
        Self {
            name: "smoke",
            idle_sockets: 200,
            hold: ms(500),
            fanouts: vec![(100, 10.0, 20, ms(20), true, false)],
            creates_concurrency: 8,
            creates_for: Duration::from_secs(1),
            ping_sockets: 50,
            pings: 3,
            ping_interval: ms(200),
            big_delete: (2_000, 50, Duration::from_secs(2)),
            big_delete_too: true,
            judge: false,
        }
    }
}

fn main() -> ExitCode {
    let args = BenchArgs::parse();
    // These two read files, not a server: no runtime, no login.
    match &args.command {
        BenchCommand::Compare { dir, smoke } => {
            return match compare::read_runs(dir) {
                Ok(runs) if !runs.app.is_empty() => {
                    let (table, _) = compare::compare(&runs, !smoke);
                    println!("{table}");
                    ExitCode::SUCCESS
                }
                Ok(_) => fail(anyhow!("no app-N.json runs in {}", dir.display())),
                Err(e) => fail(e),
            };
        }
        BenchCommand::Fsync {
            dir,
            samples,
            every_ms,
        } => {
            return match compare::fsync_p50(dir, *samples, Duration::from_millis(*every_ms)) {
                Ok(p50) => {
                    println!("{:.1}", p50.as_secs_f64() * 1e6);
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            };
        }
        BenchCommand::SmtpSink { addr } => {
            let addr = *addr;
            let outcome = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(anyhow::Error::from)
                .and_then(|runtime| runtime.block_on(smtp_sink::serve(addr)));
            return match outcome {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(e),
            };
        }
        _ => {}
    }
    let outcome = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(run(args)));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(error),
    }
}

fn fail(error: anyhow::Error) -> ExitCode {
    use std::io::Write;
    // Not `eprintln!`: it panics when stderr is closed, and the exit code must stay 1.
    let _ = writeln!(std::io::stderr(), "error: {error:#}");
    ExitCode::FAILURE
}

/// Runs the scenario or suite `args` name and prints its table.
///
/// # Errors
/// The server cannot be reached or logged into, or a scenario could not run at all (no socket
/// opened). Missed targets are reported in the table, not as errors.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let server = resolve(&args.url)?;
    let token = http::login(server, &args.email, &args.password)
        .await
        .context("log in as the super admin")?;
    let ctx = Ctx {
        server,
        token: token.into(),
        sources: (1..=args.source_addrs)
            .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, i)))
            .collect(),
        server_pid: args.server_pid,
        run: format!("{:08x}", rand::random::<u32>()),
        connect_concurrency: args.connect_concurrency,
    };
    let (table, failed) = match args.command {
        BenchCommand::Suite {
            smoke,
            json,
            without_big_delete,
        } => {
            let mut spec = if smoke {
                SuiteSpec::smoke()
            } else {
                SuiteSpec::standard()
            };
            spec.big_delete_too = !without_big_delete;
            let mut figures = compare::Figures::default();
            let outcome = suite(&ctx, &spec, &mut figures).await;
            if let Some(path) = json {
                std::fs::write(&path, figures.to_json().to_string())
                    .with_context(|| format!("write {}", path.display()))?;
            }
            outcome
        }
        BenchCommand::Compare { .. }
        | BenchCommand::Fsync { .. }
        | BenchCommand::SmtpSink { .. } => {
            bail!("compare, fsync and smtp-sink run without a server")
        }
        BenchCommand::Connect { sockets, hold_secs } => {
            let mut table = Table::new(format!("app-bench connect --sockets {sockets}"));
            let outcome =
                scenarios::connect(&ctx, sockets, Duration::from_secs_f64(hold_secs)).await?;
            outcome.write(&mut table, false);
            (table, false)
        }
        BenchCommand::Fanout {
            sockets,
            rate,
            events,
        } => {
            if !(rate > 0.0 && rate.is_finite()) {
                bail!("--rate must be a positive number");
            }
            let mut table = Table::new(format!(
                "app-bench fanout --sockets {sockets} --rate {rate} --events {events}"
            ));
            let outcome = scenarios::fanout(&ctx, "f", sockets, rate, events).await?;
            outcome.write(&mut table, Duration::from_millis(20), true, false);
            table.notes.push(outcome.detail());
            (table, false)
        }
        BenchCommand::Creates {
            concurrency,
            seconds,
        } => {
            let mut table = Table::new(format!(
                "app-bench creates --concurrency {concurrency} --seconds {seconds}"
            ));
            let outcome =
                scenarios::creates(&ctx, concurrency.max(1), Duration::from_secs_f64(seconds))
                    .await;
            outcome.write(&mut table, false);
            (table, false)
        }
        BenchCommand::MailDrain {
            sink,
            mails,
            concurrency,
        } => {
            let mut table = Table::new(format!(
                "app-bench mail-drain --mails {mails} --concurrency {concurrency}"
            ));
            let outcome = mail_drain::run(&ctx, sink, mails, concurrency).await?;
            outcome.write(&mut table);
            let failed = outcome.duplicates > 0 || outcome.distinct < outcome.mails;
            (table, failed)
        }
        BenchCommand::BigDelete {
            reservations,
            sockets,
            window_secs,
        } => {
            let mut table = Table::new(format!(
                "app-bench big-delete --reservations {reservations} --sockets {sockets}"
            ));
            let window = Duration::from_secs_f64(window_secs);
            big_delete::big_delete(&ctx, reservations, sockets, window)
                .await?
                .write(&mut table, false);
            (table, false)
        }
        BenchCommand::Ping {
            sockets,
            pings,
            interval_ms,
        } => {
            let mut table = Table::new(format!(
                "app-bench ping --sockets {sockets} --pings {pings} --interval-ms {interval_ms}"
            ));
            let outcome =
                scenarios::ping(&ctx, sockets, pings, Duration::from_millis(interval_ms)).await?;
            outcome.write(&mut table, false);
            (table, false)
        }
        BenchCommand::Cluster {
            nodes,
            sockets,
            rate,
            events,
            concurrency,
            seconds,
        } => {
            let nodes = if nodes.is_empty() {
                vec![server]
            } else {
                nodes
                    .iter()
                    .map(resolve)
                    .collect::<anyhow::Result<Vec<_>>>()?
            };
            let mut table = Table::new(format!(
                "app-bench cluster --sockets {sockets} --rate {rate} --events {events} \
                 --concurrency {concurrency}: {} node(s)",
                nodes.len()
            ));
            let spec = cluster::ClusterSpec {
                sockets,
                rate,
                events,
                creates_concurrency: concurrency.max(1),
                creates_for: Duration::from_secs_f64(seconds),
            };
            cluster::run(&ctx, &nodes, &spec, &mut table).await?;
            (table, false)
        }
    };
    println!("{table}");
    if failed {
        bail!("a scenario could not run; see the notes above");
    }
    Ok(())
}

/// Runs every scenario of `spec` in turn; a scenario that cannot run becomes a note.
async fn suite(ctx: &Ctx, spec: &SuiteSpec, figures: &mut compare::Figures) -> (Table, bool) {
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let mut table = Table::new(format!(
        "app-bench suite ({}): {cores} cores shared by client and server",
        spec.name
    ));
    let mut failed = false;
    let mut fail = |table: &mut Table, what: &str, e: anyhow::Error| {
        table.notes.push(format!("{what} could not run: {e:#}"));
        failed = true;
    };

    eprintln!("bench: holding {} idle sockets", spec.idle_sockets);
    match scenarios::connect(ctx, spec.idle_sockets, spec.hold).await {
        Ok(outcome) => {
            figures.connect(&outcome);
            outcome.write(&mut table, spec.judge)
        }
        Err(e) => fail(&mut table, "connect", e),
    }

    let mut details = Vec::new();
    for (i, &(sockets, rate, events, p99, lossless, over)) in spec.fanouts.iter().enumerate() {
        tokio::time::sleep(SETTLE).await;
        eprintln!("bench: {sockets} sockets @ {rate} events/s, {events} events");
        match scenarios::fanout(ctx, &format!("f{i}"), sockets, rate, events).await {
            Ok(outcome) => {
                figures.fanout(&outcome, over);
                if i == 0 {
                    let cpu = outcome.server_cpu_per_frame;
                    table.row(
                        "server CPU per delivered frame",
                        "≤ 1 µs",
                        cpu.map_or("not measured (needs --server-pid)".into(), |d| {
                            format!(
                                "{:.2} µs (at {} sockets @ {} events/s)",
                                d.as_secs_f64() * 1e6,
                                report::count(sockets as u64),
                                rate
                            )
                        }),
                        cpu.map(|d| d <= Duration::from_micros(1)),
                        spec.judge,
                    );
                }
                outcome.write(&mut table, p99, lossless, spec.judge);
                details.push(outcome.detail());
            }
            Err(e) => fail(&mut table, "fanout", e),
        }
    }

    // Ping runs before creates: each create queues a welcome mail, and the drainer still
    // writing that backlog would be measured as ping latency. The rows keep the order.
    tokio::time::sleep(SETTLE).await;
    eprintln!("bench: ping on {} sockets", spec.ping_sockets);
    let ping = scenarios::ping(ctx, spec.ping_sockets, spec.pings, spec.ping_interval).await;

    tokio::time::sleep(SETTLE).await;
    eprintln!(
        "bench: creates from {} clients for {:?}",
        spec.creates_concurrency, spec.creates_for
    );
    let creates = scenarios::creates(ctx, spec.creates_concurrency, spec.creates_for).await;
    figures.creates(&creates);
    creates.write(&mut table, spec.judge);
    match ping {
        Ok(outcome) => {
            figures.ping(&outcome);
            outcome.write(&mut table, spec.judge)
        }
        Err(e) => fail(&mut table, "ping", e),
    }

    // Last: its 100 000 bookings queue 200 000 mails, which the drainer writes for a while.
    if spec.big_delete_too {
        tokio::time::sleep(SETTLE).await;
        let (reservations, sockets, window) = spec.big_delete;
        match big_delete::big_delete(ctx, reservations, sockets, window).await {
            Ok(outcome) => outcome.write(&mut table, spec.judge),
            Err(e) => fail(&mut table, "big delete", e),
        }
    }

    table.notes.extend(details);
    if !spec.judge {
        table
            .notes
            .push("smoke run: targets apply to the standard suite only and are not judged".into());
    }
    (table, failed)
}

/// The socket address of `url` (an `http://` URL on this machine).
fn resolve(url: &url::Url) -> anyhow::Result<SocketAddr> {
    if url.scheme() != "http" {
        bail!("only http:// URLs are supported (got {url})");
    }
    let addr = url
        .socket_addrs(|| Some(80))?
        .into_iter()
        .next()
        .ok_or_else(|| anyhow!("{url} resolves to no address"))?;
    if !addr.ip().is_loopback() {
        bail!("the benchmark only targets loopback addresses (got {addr})");
    }
    Ok(addr)
}
