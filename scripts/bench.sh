#!/usr/bin/env bash
# Runs the benchmark suite (the `app-bench` binary, bench/) against a fresh `app serve` and
# prints one table (docs/bench.md).
#
#   scripts/bench.sh            the standard suite (release build, ~2.5 minutes)
#   scripts/bench.sh --smoke    a small run of the same suite for CI (debug build, seconds);
#                               it fails only if a scenario cannot run, never on timings
#
# Options: --release / --debug pick the build (default: release for the suite, debug for the
# smoke); --no-build uses the binaries as they are. APP_BIN=path and BENCH_BIN=path override
# the server and the load generator. Everything runs on loopback, every step is bounded in
# time, and the server and its data are removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

suite_args=()
profile=release
build=1
for arg in "$@"; do
    case "$arg" in
        --smoke) suite_args=(--smoke); profile=${profile_forced:-debug} ;;
        --release) profile=release; profile_forced=release ;;
        --debug) profile=debug; profile_forced=debug ;;
        --no-build) build=0 ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "bench.sh: unknown argument $arg (see --help)" >&2; exit 2 ;;
    esac
done

app=${APP_BIN:-target/$profile/app}
bench=${BENCH_BIN:-target/$profile/app-bench}
if [[ $build == 1 && ( -z ${APP_BIN:-} || -z ${BENCH_BIN:-} ) ]]; then
    if [[ $profile == release ]]; then
        cargo build --release --locked --quiet -p app -p app-bench
    else
        cargo build --locked --quiet -p app -p app-bench
    fi
fi

# Both processes hold one file per socket: use the whole allowance (19 500 sockets + spare).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

data=$(mktemp -d)
export APP_ADMIN_EMAIL=admin@example.com
export APP_ADMIN_PASSWORD=secret-pass-1
export APP_TOKEN_TTL=86400
# The big delete books 100 000 reservations for one business from one address: lift the
# public booking limits (per address and per business).
export APP_BOOKING_RATE_PER_MINUTE=100000000
export APP_BOOKING_RATE_PER_BUSINESS_PER_MINUTE=100000000
export RUST_LOG=${RUST_LOG:-warn}

"$app" serve --addr 127.0.0.1:0 --data "$data" >"$data/serve.out" 2>"$data/serve.err" &
pid=$!

stop_server() {
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
    rm -rf "$data"
}
trap stop_server EXIT

url=
for _ in $(seq 300); do
    url=$(sed -n 's/^app listening on \(http:\/\/[^ ]*\).*/\1/p' "$data/serve.out")
    [[ -n $url ]] && break
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "bench.sh: the server exited at startup:" >&2
        cat "$data/serve.err" >&2
        exit 1
    fi
    sleep 0.1
done
if [[ -z $url ]]; then
    echo "bench.sh: the server printed no address within 30 s" >&2
    exit 1
fi

echo "bench.sh: $app serve (pid $pid) at $url" >&2
status=0
timeout 1200 "$bench" --url "$url" --server-pid "$pid" suite "${suite_args[@]}" || status=$?
if [[ -s $data/serve.err ]]; then
    echo "bench.sh: server warnings (last 20 lines):" >&2
    tail -n 20 "$data/serve.err" >&2
fi
exit $status
