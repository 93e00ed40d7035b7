#!/usr/bin/env bash
# Issue 16's benchmark: the suite (the `app-bench` load generator, bench/) against a fresh
# `app serve` and a fresh plain baseline (examples/baseline.rs), alternately, several runs per
# side, plus the floor (bench/floor/fanout_limit.c) and the machine's fsync, then one table of
# ratios from the medians with a verdict per row (docs/bench.md).
#
#   scripts/bench.sh            the standard suite, 3 runs per side (release build, then ~11 minutes)
#   scripts/bench.sh --smoke    1 small run per side for CI (debug build, under a minute); it
#                               fails only if a scenario cannot run, never on timings
#
# Options: --runs N runs per side; --release / --debug pick the build (default: release for
# the suite, debug for the smoke); --no-build uses the binaries as they are. APP_BIN, BENCH_BIN,
# BASELINE_BIN and FLOOR_BIN override the binaries. Every run's table and figures stay in
# target/bench/results-<time>/. Everything runs on loopback, every step is bounded in time, and
# the servers and their data are removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

smoke=0
runs=
profile=release
build=1
while [[ $# -gt 0 ]]; do
    case "$1" in
        --smoke) smoke=1; profile=${profile_forced:-debug} ;;
        --release) profile=release; profile_forced=release ;;
        --debug) profile=debug; profile_forced=debug ;;
        --no-build) build=0 ;;
        --runs)
            shift
            # Given last without its value there is nothing left to shift: say so, not exit 1.
            [[ -n ${1:-} ]] || { echo "bench.sh: --runs wants a positive number" >&2; exit 2; }
            runs=$1
            ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "bench.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
if [[ $smoke == 1 ]]; then
    runs=${runs:-1}
    suite_args=(--smoke)
    compare_args=(--smoke)
    # The floor at the smoke fan-out's size: (sockets, events).
    floor_sizes=("100 20")
    fsync_samples=20
    # The POST row's pace: the smoke's slowest fan-out makes 10 requests a second.
    paced_fsync_samples=4
    paced_fsync_ms=100
else
    runs=${runs:-3}
    suite_args=()
    compare_args=()
    # One floor size per fan-out scenario of the standard suite.
    floor_sizes=("1000 100" "5000 100" "10000 100")
    fsync_samples=200
    # The POST row's pace: 1 000 @ 2/s makes a request every 500 ms.
    paced_fsync_samples=30
    paced_fsync_ms=500
fi
if ! [[ $runs =~ ^[1-9][0-9]*$ ]]; then
    echo "bench.sh: --runs wants a positive number" >&2
    exit 2
fi

app=${APP_BIN:-target/$profile/app}
bench=${BENCH_BIN:-target/$profile/app-bench}
baseline=${BASELINE_BIN:-target/$profile/examples/baseline}
floor=${FLOOR_BIN:-target/bench/fanout_limit}
if [[ $build == 1 ]]; then
    cargo_profile=()
    [[ $profile == release ]] && cargo_profile=(--release)
    cargo build "${cargo_profile[@]}" --locked --quiet -p app -p app-bench --bins --example baseline
    if [[ -z ${FLOOR_BIN:-} ]]; then
        mkdir -p target/bench
        cc -O2 -o "$floor" bench/floor/fanout_limit.c
    fi
fi

# The servers and the floor hold one file per socket: use the whole allowance (19 500 + spare).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

results=target/bench/results-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$results"
scratch=$(mktemp -d)
export APP_ADMIN_EMAIL=admin@example.com
export APP_ADMIN_PASSWORD=secret-pass-1
export APP_TOKEN_TTL=86400
# The big delete books reservations for one business from one address: lift the public
# booking limits (per address and per business).
export APP_BOOKING_RATE_PER_MINUTE=100000000
export APP_BOOKING_RATE_PER_BUSINESS_PER_MINUTE=100000000
export RUST_LOG=${RUST_LOG:-warn}

pid=
data=
stop_server() {
    if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    if [[ -n $pid ]]; then
        wait "$pid" 2>/dev/null || true
    fi
    pid=
    if [[ -n $data ]]; then
        rm -rf "$data"
    fi
    data=
}
# The app's welcome mails go over SMTP to a sink, as in a deployment; without --smtp-url it
# would write one .eml file per create, whose inode allocation measured the disk's recent
# history more than the server (docs/bench.md, "Durable creates").
sink_pid=
stop_sink() {
    if [[ -n $sink_pid ]]; then
        kill -TERM "$sink_pid" 2>/dev/null || true
        wait "$sink_pid" 2>/dev/null || true
    fi
    sink_pid=
}
trap 'stop_server; stop_sink; rm -rf "$scratch"' EXIT
"$bench" smtp-sink >"$scratch/smtp-sink.out" 2>&1 &
sink_pid=$!
smtp_url=
for _ in $(seq 100); do
    smtp_url=$(sed -n 's/^smtp sink listening on \(smtp:\/\/[^ ]*\).*/\1/p' "$scratch/smtp-sink.out")
    [[ -n $smtp_url ]] && break
    sleep 0.1
done
if [[ -z $smtp_url ]]; then
    echo "bench.sh: the SMTP sink did not start:" >&2
    cat "$scratch/smtp-sink.out" >&2
    exit 1
fi

# Starts `app serve` (app) or the baseline on a free port; sets pid, data and url.
start_server() {
    data=$(mktemp -d -p "$scratch")
    if [[ $1 == app ]]; then
        "$app" serve --addr 127.0.0.1:0 --data "$data" --smtp-url "$smtp_url" \
            >"$data/serve.out" 2>"$data/serve.err" &
    else
        "$baseline" --addr 127.0.0.1:0 >"$data/serve.out" 2>"$data/serve.err" &
    fi
    pid=$!
    url=
    for _ in $(seq 300); do
        url=$(sed -n 's/^app listening on \(http:\/\/[^ ]*\).*/\1/p' "$data/serve.out")
        [[ -n $url ]] && return 0
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "bench.sh: $1 exited at startup:" >&2
            cat "$data/serve.err" >&2
            exit 1
        fi
        sleep 0.1
    done
    echo "bench.sh: $1 printed no address within 30 s" >&2
    exit 1
}

status=0
"$bench" fsync "$scratch" --samples "$fsync_samples" >"$results/fsync-us.txt" || status=1
# And at the pace of the POST row's requests: after an idle moment an fsync here takes two to
# three times as long as back to back (docs/bench.md).
"$bench" fsync "$scratch" --samples "$paced_fsync_samples" --every-ms "$paced_fsync_ms" \
    >"$results/fsync-every-${paced_fsync_ms}ms-us.txt" || status=1
for i in $(seq "$runs"); do
    for side in app baseline; do
        args=("${suite_args[@]}" --json "$results/$side-$i.json")
        # The baseline has no reservations; the app's big delete (issue 12) runs once, in the
        # smoke only (at the standard size it takes minutes: `app-bench big-delete` alone).
        if [[ $side == baseline || $smoke == 0 || $i -gt 1 ]]; then
            args+=(--without-big-delete)
        fi
        start_server "$side"
        echo "bench.sh: run $i of $runs, $side (pid $pid) at $url" >&2
        timeout 1200 "$bench" --url "$url" --server-pid "$pid" suite "${args[@]}" \
            >"$results/$side-$i.md" || { status=$?; echo "bench.sh: $side run $i failed" >&2; }
        if [[ -s $data/serve.err ]]; then
            echo "bench.sh: $side warnings (last 5 lines):" >&2
            tail -n 5 "$data/serve.err" >&2
        fi
        stop_server
    done
    for size in "${floor_sizes[@]}"; do
        read -r sockets events <<<"$size"
        echo "bench.sh: run $i of $runs, floor at $sockets sockets" >&2
        timeout 300 "$floor" "$sockets" "$events" 300 >"$results/floor-$sockets-$i.txt" \
            2>>"$results/floor.err" || { status=1; echo "bench.sh: the floor failed" >&2; }
    done
done

stop_sink
cp "$scratch/smtp-sink.out" "$results/smtp-sink.txt"
echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown); results in $results"
"$bench" compare "$results" "${compare_args[@]}" | tee "$results/table.md"
exit $status
