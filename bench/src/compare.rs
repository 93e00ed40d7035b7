//! Issue 16's comparison: every figure as a ratio against two references measured in the same
//! run — the plain baseline server (`examples/baseline.rs`) and the floor (`bench/floor/`, one
//! `write()` per socket from C).
//!
//! `scripts/bench.sh` runs the suite several times against each server, alternately, each run
//! writing its figures as JSON ([`Figures`]); it runs the floor beside them and measures the
//! machine's fsync ([`fsync_p50`]); then `app-bench compare DIR` reads them all, takes medians
//! and prints one table with a verdict per row ([`compare`]).

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use hdrhistogram::Histogram;
use serde_json::{json, Value};

use super::report;
use super::scenarios::{ConnectOutcome, CreatesOutcome, FanoutOutcome, PingOutcome};

/// One suite run's figures, written as JSON for [`compare`].
#[derive(Debug, Default)]
pub struct Figures {
    pub connect: Option<Value>,
    pub fanouts: Vec<Value>,
    pub ping: Option<Value>,
    pub creates: Option<Value>,
}

fn quantile(h: &Histogram<u64>, q: f64) -> Option<u64> {
    (!h.is_empty()).then(|| h.value_at_quantile(q))
}

fn micros(d: Option<Duration>) -> Option<f64> {
    d.map(|d| d.as_secs_f64() * 1e6)
}

impl Figures {
    pub fn connect(&mut self, o: &ConnectOutcome) {
        self.connect = Some(json!({
            "requested": o.opened.requested,
            "connected": o.opened.connected,
            "failed": o.opened.failed,
            "seconds": o.opened.connect_time.as_secs_f64(),
            "server_kib_per_socket": o.server_kib_per_socket,
        }));
    }

    /// `over_capacity`: the scenario is meant to exceed what the machine can deliver.
    pub fn fanout(&mut self, o: &FanoutOutcome, over_capacity: bool) {
        self.fanouts.push(json!({
            "sockets": o.opened.requested,
            "failed_sockets": o.opened.failed,
            "rate": o.rate,
            "over_capacity": over_capacity,
            "p50_us": quantile(&o.latency, 0.5),
            "p99_us": quantile(&o.latency, 0.99),
            "frames": o.frames,
            "lost": o.lost,
            "duplicates": o.duplicates,
            "out_of_order": o.out_of_order,
            "posts_failed": o.posts.failed,
            "request_p50_us": quantile(&o.posts.latency, 0.5),
            "server_cpu_per_frame_us": micros(o.server_cpu_per_frame),
            "other_cores": o.usage.other_cores(),
            "idle_cores": o.usage.idle_cores(),
            "server_waiting_threads": o.usage.server_waiting_threads(),
            "client_waiting_threads": o.usage.client_waiting_threads(),
        }));
    }

    pub fn ping(&mut self, o: &PingOutcome) {
        self.ping = Some(json!({
            "sockets": o.opened.requested,
            "p50_us": quantile(&o.latency, 0.5),
            "p99_us": quantile(&o.latency, 0.99),
            "lost": o.lost,
            "other_cores": o.usage.other_cores(),
            "server_waiting_threads": o.usage.server_waiting_threads(),
        }));
    }

    pub fn creates(&mut self, o: &CreatesOutcome) {
        self.creates = Some(json!({
            "concurrency": o.concurrency,
            "per_second": o.per_second(),
            "failed": o.report.failed,
            "idle_cores": o.usage.idle_cores(),
        }));
    }

    pub fn to_json(&self) -> Value {
        json!({
            "connect": self.connect,
            "fanouts": self.fanouts,
            "ping": self.ping,
            "creates": self.creates,
        })
    }
}

/// The median of `values` (the mean of the middle two for an even count).
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    })
}

/// Writes and fsyncs 4 KiB `samples` times in a file under `dir`, waiting `every` before each
/// sample (zero: back to back); the p50 of one write+fsync.
///
/// The pause matters on this machine: an fsync after the disk has been idle for a while takes
/// two to three times as long as one right after another, so a figure compared with requests
/// made at some pace is measured at that pace.
///
/// # Errors
/// The file cannot be created or written.
pub fn fsync_p50(dir: &Path, samples: u32, every: Duration) -> anyhow::Result<Duration> {
    let path = dir.join(format!("fsync-probe-{}", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&path)?;
        let block = [0x5a_u8; 4096];
        let mut times = Vec::with_capacity(samples as usize);
        for _ in 0..samples.max(1) {
            std::thread::sleep(every);
            let start = Instant::now();
            file.write_all(&block)?;
            file.sync_all()?;
            times.push(start.elapsed().as_secs_f64());
        }
        Ok::<_, std::io::Error>(times)
    })();
    let _ = std::fs::remove_file(&path);
    let times = result.with_context(|| format!("fsync probe in {}", dir.display()))?;
    let p50 = median(&times).ok_or_else(|| anyhow!("no fsync samples"))?;
    Ok(Duration::from_secs_f64(p50))
}

/// One run of the floor (`fanout_limit`'s stdout).
#[derive(Debug, Clone, PartialEq)]
pub struct FloorRun {
    pub sockets: u64,
    pub cpu_per_write_us: f64,
    /// One event (one write to every socket), mean.
    pub round_mean_ms: f64,
    pub reader_ok: bool,
}

/// Parses `writer: N sockets x R rounds x B B: C us cpu/write, … mean M ms max X ms; reader ok=K`.
pub fn parse_floor(text: &str) -> Option<FloorRun> {
    let line = text.lines().find(|l| l.starts_with("writer: "))?;
    let between = |from: &str, to: &str| -> Option<f64> {
        let start = line.find(from)? + from.len();
        let end = start + line[start..].find(to)?;
        line[start..end].trim().parse().ok()
    };
    Some(FloorRun {
        sockets: between("writer: ", " sockets")? as u64,
        cpu_per_write_us: between("B: ", " us cpu/write")?,
        round_mean_ms: between("mean ", " ms")?,
        reader_ok: line.trim_end().ends_with("ok=1"),
    })
}

/// What the comparison read from a results folder.
#[derive(Debug, Default)]
pub struct Runs {
    pub app: Vec<Value>,
    pub baseline: Vec<Value>,
    pub floor: Vec<FloorRun>,
    /// The fsync p50 back to back (`fsync-us.txt`).
    pub fsync_us: Option<f64>,
    /// The fsync p50 with a pause before each sample, and that pause in ms
    /// (`fsync-every-<ms>ms-us.txt`): the pace of the POST row's requests.
    pub fsync_paced: Option<(f64, u64)>,
    /// Floor outputs that did not parse or whose reader came up short.
    pub floor_failures: Vec<String>,
}

/// Reads `app-N.json`, `baseline-N.json`, `floor-S-N.txt`, `fsync-us.txt` and
/// `fsync-every-<ms>ms-us.txt` from `dir`.
///
/// # Errors
/// The folder cannot be read or a JSON file does not parse.
pub fn read_runs(dir: &Path) -> anyhow::Result<Runs> {
    let mut runs = Runs::default();
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .with_context(|| format!("read {}", dir.display()))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    names.sort();
    for name in names {
        let path = dir.join(&name);
        let text = || std::fs::read_to_string(&path).with_context(|| format!("read {name}"));
        let parse = |t: String| -> anyhow::Result<Value> {
            serde_json::from_str(&t).with_context(|| format!("parse {name}"))
        };
        if name.starts_with("app-") && name.ends_with(".json") {
            runs.app.push(parse(text()?)?);
        } else if name.starts_with("baseline-") && name.ends_with(".json") {
            runs.baseline.push(parse(text()?)?);
        } else if name.starts_with("floor-") && name.ends_with(".txt") {
            match parse_floor(&text()?) {
                Some(run) if run.reader_ok => runs.floor.push(run),
                _ => runs.floor_failures.push(name),
            }
        } else if name == "fsync-us.txt" {
            runs.fsync_us = text()?.trim().parse().ok();
        } else if let Some(every_ms) = name
            .strip_prefix("fsync-every-")
            .and_then(|rest| rest.strip_suffix("ms-us.txt"))
            .and_then(|ms| ms.parse().ok())
        {
            runs.fsync_paced = text()?.trim().parse().ok().map(|p50| (p50, every_ms));
        }
    }
    Ok(runs)
}

/// The median over runs of the number at `path` (object keys, `fanouts` picked by socket count
/// and rate), skipping runs that lack it.
fn med(runs: &[Value], pick: &dyn Fn(&Value) -> Option<f64>) -> Option<f64> {
    median(&runs.iter().filter_map(pick).collect::<Vec<_>>())
}

fn each(runs: &[Value], pick: &dyn Fn(&Value) -> Option<f64>) -> String {
    let values: Vec<String> = runs
        .iter()
        .map(|r| pick(r).map_or("–".into(), |v| format!("{v:.1}")))
        .collect();
    values.join(", ")
}

/// `app a, b, c · baseline d, e, f`: `pick` of every run on each side, for the notes.
fn per_side(app: &[Value], base: &[Value], pick: &dyn Fn(&Value) -> Option<f64>) -> String {
    format!("app {} · baseline {}", each(app, pick), each(base, pick))
}

fn fanout_of(run: &Value, sockets: u64, rate: f64) -> Option<&Value> {
    run["fanouts"]
        .as_array()?
        .iter()
        .find(|f| f["sockets"].as_u64() == Some(sockets) && f["rate"].as_f64() == Some(rate))
}

fn ms(us: Option<f64>) -> String {
    us.map_or("n/a".into(), |us| report::micros(us.round() as u64))
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
        _ => "n/a".into(),
    }
}

/// One row of the comparison.
struct Row {
    scenario: String,
    target: String,
    app: String,
    baseline: String,
    floor: String,
    ratio: String,
    holds: Option<bool>,
}

/// Builds the table of ratios from `runs`; `judge` adds verdicts (the standard sizes only).
/// Returns the Markdown and whether every judged row holds.
pub fn compare(runs: &Runs, judge: bool) -> (String, bool) {
    let (app, base) = (&runs.app[..], &runs.baseline[..]);
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    let floor_for = |sockets: u64, pick: fn(&FloorRun) -> f64| {
        let v: Vec<f64> = runs
            .floor
            .iter()
            .filter(|f| f.sockets == sockets)
            .map(pick)
            .collect();
        median(&v)
    };

    // The fan-out scenarios, in the order the first app run has them.
    let scenarios: Vec<(u64, f64, bool)> = app
        .first()
        .and_then(|r| r["fanouts"].as_array())
        .map(|fs| {
            fs.iter()
                .filter_map(|f| {
                    Some((
                        f["sockets"].as_u64()?,
                        f["rate"].as_f64()?,
                        f["over_capacity"].as_bool()?,
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    for &(sockets, rate, over) in &scenarios {
        let name = format!("{} @ {rate}/s", report::count(sockets));
        let get = |key: &'static str| {
            move |r: &Value| fanout_of(r, sockets, rate).and_then(|f| f[key].as_f64())
        };
        let worst = |key: &'static str| {
            app.iter()
                .filter_map(|r| fanout_of(r, sockets, rate).and_then(|f| f[key].as_u64()))
                .max()
        };
        let lost = worst("lost").unwrap_or(0) + worst("failed_sockets").unwrap_or(0);
        let disorder = worst("out_of_order").unwrap_or(0) + worst("duplicates").unwrap_or(0);
        let base_lost = base
            .iter()
            .filter_map(|r| fanout_of(r, sockets, rate).and_then(|f| f["lost"].as_u64()))
            .max();
        let (p50, p99) = (med(app, &get("p50_us")), med(app, &get("p99_us")));
        let (b50, b99) = (med(base, &get("p50_us")), med(base, &get("p99_us")));
        notes.push(format!(
            "{name} p99 per run (ms): {}; other cores busy: {}; cores idle: {}; server threads \
             waiting for a core: {}",
            per_side(app, base, &|r| get("p99_us")(r).map(|v| v / 1e3)),
            per_side(app, base, &get("other_cores")),
            per_side(app, base, &get("idle_cores")),
            per_side(app, base, &get("server_waiting_threads")),
        ));
        let flo = floor_for(sockets, |f| f.round_mean_ms * 1e3);
        if over {
            rows.push(Row {
                scenario: format!("{name} (over capacity), p99"),
                target: "≤ 0.5 × baseline; 0 lost".into(),
                app: format!("{}; {lost} lost", ms(p99)),
                baseline: format!("{}; {} lost", ms(b99), base_lost.unwrap_or(0)),
                floor: "–".into(),
                ratio: ratio(p99, b99),
                holds: p99.zip(b99).map(|(a, b)| a <= 0.5 * b && lost == 0),
            });
            let cpu = |r: &Value| get("server_cpu_per_frame_us")(r);
            let (a, b) = (med(app, &cpu), med(base, &cpu));
            let f = floor_for(sockets, |f| f.cpu_per_write_us);
            rows.push(Row {
                scenario: format!("{name}, server CPU per frame"),
                target: "≤ 0.8 × floor's CPU per write".into(),
                app: a.map_or("n/a".into(), |v| format!("{v:.2} µs")),
                baseline: b.map_or("n/a".into(), |v| format!("{v:.2} µs")),
                floor: f.map_or("n/a".into(), |v| format!("{v:.2} µs per write")),
                ratio: format!("{} of floor · {} of baseline", ratio(a, f), ratio(a, b)),
                holds: a.zip(f).map(|(a, f)| a <= 0.8 * f),
            });
        } else {
            rows.push(Row {
                scenario: format!("{name}, p50 / p99"),
                target: "≤ baseline's".into(),
                app: format!("{} / {}", ms(p50), ms(p99)),
                baseline: format!("{} / {}", ms(b50), ms(b99)),
                floor: "–".into(),
                ratio: format!("{} / {}", ratio(p50, b50), ratio(p99, b99)),
                holds: p50
                    .zip(b50)
                    .zip(p99.zip(b99))
                    .map(|((a50, b50), (a99, b99))| a50 <= b50 && a99 <= b99),
            });
            rows.push(Row {
                scenario: format!("{name}, p50 vs floor"),
                target: "≤ 1.3 × floor's event to all sockets".into(),
                app: ms(p50),
                baseline: ms(b50),
                floor: ms(flo),
                ratio: ratio(p50, flo),
                holds: p50.zip(flo).map(|(a, f)| a <= 1.3 * f),
            });
            rows.push(Row {
                scenario: format!("{name}, lost / out of order"),
                target: "0 / 0".into(),
                app: format!("{lost} / {disorder}"),
                baseline: format!("{} lost", base_lost.unwrap_or(0)),
                floor: "–".into(),
                ratio: "–".into(),
                holds: (!app.is_empty()).then_some(lost == 0 && disorder == 0),
            });
        }
    }

    let ping = |key: &'static str| move |r: &Value| r["ping"][key].as_f64();
    let (a, b) = (med(app, &ping("p99_us")), med(base, &ping("p99_us")));
    let ping_sockets = app.first().and_then(|r| r["ping"]["sockets"].as_u64());
    rows.push(Row {
        scenario: format!(
            "ping RTT p99, {} sockets",
            report::count(ping_sockets.unwrap_or(0))
        ),
        target: "≤ baseline's".into(),
        app: ms(a),
        baseline: ms(b),
        floor: "–".into(),
        ratio: ratio(a, b),
        holds: a.zip(b).map(|(a, b)| a <= b),
    });
    // A ping's round trip is a few µs of either server's work: its p99 is how long a woken
    // task waited for a core, so each run's neighbours go beside it (docs/bench.md, "Early
    // morning 2026-12-04").
    notes.push(format!(
        "ping p99 per run (µs): {}; other cores busy: {}; server threads waiting for a core: {}",
        per_side(app, base, &ping("p99_us")),
        per_side(app, base, &ping("other_cores")),
        per_side(app, base, &ping("server_waiting_threads")),
    ));

    // POST → 201 at low load: the request latency of the slowest-paced fan-out.
    if let Some(&(sockets, rate, _)) = scenarios
        .iter()
        .filter(|s| !s.2)
        .min_by(|x, y| x.1.total_cmp(&y.1))
    {
        let get =
            |r: &Value| fanout_of(r, sockets, rate).and_then(|f| f["request_p50_us"].as_f64());
        let (a, b) = (med(app, &get), med(base, &get));
        // The requests come one per 1/rate seconds, so their fsync is the paced one
        // (bench.sh paces it so); a results folder from before the paced probe has only the
        // back-to-back figure.
        let (fsync, floor) = match (runs.fsync_paced, runs.fsync_us) {
            (Some((paced, every_ms)), back_to_back) => (
                Some(paced),
                format!(
                    "fsync p50 {} at one per {every_ms} ms ({} back to back)",
                    ms(Some(paced)),
                    ms(back_to_back)
                ),
            ),
            (None, back_to_back) => (back_to_back, format!("fsync p50 {}", ms(back_to_back))),
        };
        rows.push(Row {
            scenario: format!("POST → 201 p50 at {rate} events/s"),
            target: "≤ 1 ms + fsync p50 at that pace".into(),
            app: ms(a),
            baseline: format!("{} (not durable)", ms(b)),
            floor,
            ratio: ratio(a, fsync.map(|f| f + 1_000.0)),
            holds: a.zip(fsync).map(|(a, f)| a <= 1_000.0 + f),
        });
    }

    let creates = |r: &Value| r["creates"]["per_second"].as_f64();
    let (a, b) = (med(app, &creates), med(base, &creates));
    let failed = app
        .iter()
        .filter_map(|r| r["creates"]["failed"].as_u64())
        .sum::<u64>();
    let concurrency = app
        .first()
        .and_then(|r| r["creates"]["concurrency"].as_u64());
    rows.push(Row {
        scenario: format!(
            "creates per second, {} HTTP clients",
            concurrency.unwrap_or(0)
        ),
        target: "≥ 10 000 and ≥ 0.5 × baseline".into(),
        app: a.map_or("n/a".into(), |v| {
            format!("{} /s durable", report::count(v as u64))
        }),
        baseline: b.map_or("n/a".into(), |v| {
            format!("{} /s not durable", report::count(v as u64))
        }),
        floor: "–".into(),
        ratio: ratio(a, b),
        holds: a
            .zip(b)
            .map(|(a, b)| a >= 10_000.0 && a >= 0.5 * b && failed == 0),
    });
    // Idle cores beside a short rate say the server leaves the machine waiting on wake-ups
    // (docs/bench.md "Night 2026-12-03"), not that it ran out of CPU.
    let idle = |r: &Value| r["creates"]["idle_cores"].as_f64();
    notes.push(format!(
        "creates per second per run: {}; cores idle: {}",
        per_side(app, base, &creates),
        per_side(app, base, &idle)
    ));

    let secs = |r: &Value| r["connect"]["seconds"].as_f64();
    let (a, b) = (med(app, &secs), med(base, &secs));
    let failures = app
        .iter()
        .filter_map(|r| r["connect"]["failed"].as_u64())
        .max()
        .unwrap_or(0);
    let requested = app.first().and_then(|r| r["connect"]["requested"].as_u64());
    rows.push(Row {
        scenario: format!(
            "{} sockets connected",
            report::count(requested.unwrap_or(0))
        ),
        target: "≤ 1.2 × baseline's time, 0 failures".into(),
        app: format!(
            "{} s, {failures} failures",
            a.map_or("n/a".into(), |v| format!("{v:.2}"))
        ),
        baseline: b.map_or("n/a".into(), |v| format!("{v:.2} s")),
        floor: "–".into(),
        ratio: ratio(a, b),
        holds: a.zip(b).map(|(a, b)| a <= 1.2 * b && failures == 0),
    });

    let kib = |r: &Value| r["connect"]["server_kib_per_socket"].as_f64();
    let (a, b) = (med(app, &kib), med(base, &kib));
    rows.push(Row {
        scenario: "idle memory per socket".into(),
        target: "≤ 10 KiB".into(),
        app: a.map_or("n/a".into(), |v| format!("{v:.1} KiB")),
        baseline: b.map_or("n/a".into(), |v| format!("{v:.1} KiB")),
        floor: "–".into(),
        ratio: ratio(a, b),
        holds: a.map(|a| a <= 10.0),
    });

    let mut out = String::new();
    let _ = writeln!(
        out,
        "app serve vs plain baseline vs floor: medians of {} app and {} baseline runs, alternated; \
         {} floor runs",
        app.len(),
        base.len(),
        runs.floor.len()
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "| scenario | target | app serve | baseline | floor | ratio (app ÷ reference) | holds |"
    );
    let _ = writeln!(out, "| --- | --- | --- | --- | --- | --- | --- |");
    let mut all = true;
    for row in &rows {
        let holds = if judge { row.holds } else { None };
        all &= holds != Some(false);
        let verdict = match holds {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "–",
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {verdict} |",
            row.scenario, row.target, row.app, row.baseline, row.floor, row.ratio
        );
    }
    let _ = writeln!(out);
    for note in notes {
        let _ = writeln!(out, "- {note}");
    }
    for bad in &runs.floor_failures {
        let _ = writeln!(
            out,
            "- floor output {bad} did not parse or its reader fell short"
        );
    }
    if !judge {
        let _ = writeln!(out, "- smoke run: sizes too small to judge; no verdicts");
    }
    (out, all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn parses_the_floor_line() {
        let text = "writer: 1000 sockets x 100 rounds x 300 B: 5.80 us cpu/write, 6.10 us \
                    wall/write, one round (event to all) mean 11.80 ms max 53.00 ms; reader ok=1\n";
        let run = parse_floor(text).expect("parses");
        assert_eq!(run.sockets, 1000);
        assert!((run.cpu_per_write_us - 5.8).abs() < 1e-9);
        assert!((run.round_mean_ms - 11.8).abs() < 1e-9);
        assert!(run.reader_ok);
        assert!(
            !parse_floor(&text.replace("ok=1", "ok=0"))
                .expect("parses")
                .reader_ok
        );
        assert_eq!(parse_floor("reader: short"), None);
    }

    fn run(p50: u64, p99: u64, creates: f64, lost: u64) -> Value {
        json!({
            "connect": {"requested": 100, "failed": 0, "seconds": 1.0, "server_kib_per_socket": 6.0},
            "fanouts": [{"sockets": 100, "rate": 2.0, "over_capacity": false, "p50_us": p50,
                         "p99_us": p99, "lost": lost, "out_of_order": 0, "duplicates": 0,
                         "failed_sockets": 0, "request_p50_us": 900}],
            "ping": {"sockets": 10, "p99_us": 500},
            "creates": {"concurrency": 8, "per_second": creates, "failed": 0},
        })
    }

    #[test]
    fn verdicts_follow_the_medians_and_losses() {
        let floor = FloorRun {
            sockets: 100,
            cpu_per_write_us: 6.0,
            round_mean_ms: 10.0,
            reader_ok: true,
        };
        let mut runs = Runs {
            app: vec![run(9_000, 20_000, 20_000.0, 0); 3],
            baseline: vec![run(10_000, 30_000, 30_000.0, 0); 3],
            floor: vec![floor],
            fsync_us: Some(250.0),
            fsync_paced: None,
            floor_failures: vec![],
        };
        let (table, _) = compare(&runs, true);
        assert!(table.contains("| 100 @ 2/s, p50 / p99 | ≤ baseline's | 9.00 ms / 20.0 ms"));
        assert!(table.contains("0.90× / 0.67× | yes |"), "{table}");
        // One lossy run out of three is enough to fail the row, whatever the medians say.
        runs.app[1] = run(9_000, 20_000, 20_000.0, 1);
        let (table, all) = compare(&runs, true);
        assert!(table.contains("| 100 @ 2/s, lost / out of order | 0 / 0 | 1 / 0 |"));
        assert!(!all);
        // Smoke: no verdicts at all.
        let (table, all) = compare(&runs, false);
        assert!(all && !table.contains("**no**"));
    }

    /// `app` against three baseline runs written before the notes' newer figures existed,
    /// which the notes must show as missing ("–") rather than as a number.
    fn beside_older_baseline_runs(app: Vec<Value>) -> Runs {
        Runs {
            app,
            baseline: vec![run(10_000, 30_000, 30_000.0, 0); 3],
            floor: vec![],
            fsync_us: None,
            fsync_paced: None,
            floor_failures: vec![],
        }
    }

    #[test]
    fn the_notes_give_each_runs_idle_cores_beside_its_rates() {
        let with_idle = |idle: f64| {
            let mut r = run(9_000, 20_000, 20_000.0, 0);
            r["creates"]["idle_cores"] = json!(idle);
            r["fanouts"][0]["idle_cores"] = json!(idle);
            r
        };
        let runs =
            beside_older_baseline_runs(vec![with_idle(0.45), with_idle(0.52), with_idle(0.61)]);
        let (table, _) = compare(&runs, true);
        assert!(
            table.contains("app 20000.0, 20000.0, 20000.0 · baseline 30000.0, 30000.0, 30000.0; cores idle: app 0.5, 0.5, 0.6 · baseline –, –, –"),
            "{table}"
        );
        assert!(
            table.contains("cores idle: app 0.5, 0.5, 0.6 · baseline –, –, –; server threads"),
            "{table}"
        );
    }

    #[test]
    fn the_notes_give_each_runs_ping_beside_its_neighbours_load() {
        let with_ping = |p99: u64, other: f64| {
            let mut r = run(9_000, 20_000, 20_000.0, 0);
            r["ping"]["p99_us"] = json!(p99);
            r["ping"]["other_cores"] = json!(other);
            r
        };
        let runs = beside_older_baseline_runs(vec![
            with_ping(2_737, 0.12),
            with_ping(8_895, 0.44),
            with_ping(4_591, 0.29),
        ]);
        let (table, _) = compare(&runs, true);
        assert!(
            table.contains(
                "ping p99 per run (µs): app 2737.0, 8895.0, 4591.0 · baseline 500.0, 500.0, \
                 500.0; other cores busy: app 0.1, 0.4, 0.3 · baseline –, –, –"
            ),
            "{table}"
        );
    }

    #[test]
    fn the_post_row_is_judged_against_the_fsync_at_the_requests_pace() {
        let mut app = run(9_000, 20_000, 20_000.0, 0);
        app["fanouts"][0]["request_p50_us"] = json!(1_500);
        let mut runs = Runs {
            app: vec![app; 3],
            baseline: vec![run(10_000, 30_000, 30_000.0, 0); 3],
            floor: vec![],
            fsync_us: Some(250.0),
            fsync_paced: Some((700.0, 500)),
            floor_failures: vec![],
        };
        let post_row = |runs: &Runs| {
            let (table, _) = compare(runs, true);
            table
                .lines()
                .find(|line| line.starts_with("| POST"))
                .expect("a POST row")
                .to_string()
        };
        let row = post_row(&runs);
        assert!(row.contains("at one per 500 ms"), "{row}");
        assert!(row.ends_with("| yes |"), "1.5 ms ≤ 1 ms + 0.7 ms: {row}");
        // A results folder without the paced figure is judged against the back-to-back one.
        runs.fsync_paced = None;
        let row = post_row(&runs);
        assert!(
            row.ends_with("| **no** |"),
            "1.5 ms > 1 ms + 0.25 ms: {row}"
        );
    }
}
