#!/usr/bin/env bash
# The mail drainer's throughput over SMTP (`app-bench mail-drain`, docs/bench.md): a fresh
# `app serve` whose --smtp-url points at an SMTP sink that the benchmark holds shut while it
# creates N businesses (one welcome mail each), then opens; it prints how fast the backlog
# arrived, and fails if any mail arrived twice or not at all (by Message-ID).
#
#   scripts/bench-mail.sh [--mails N] [--release|--debug] [--no-build]
#
# Defaults: 2 000 mails, debug build. APP_BIN and BENCH_BIN override the binaries; extra
# server settings come from the environment (e.g. APP_SMTP_CONCURRENCY). Loopback only; the
# server and its data are removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

mails=2000
profile=debug
build=1
while [[ $# -gt 0 ]]; do
    case "$1" in
        --mails) shift; mails=${1:-} ;;
        --release) profile=release ;;
        --debug) profile=debug ;;
        --no-build) build=0 ;;
        -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
        *) echo "bench-mail.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
if ! [[ $mails =~ ^[1-9][0-9]*$ ]]; then
    echo "bench-mail.sh: --mails wants a positive number" >&2
    exit 2
fi
app=${APP_BIN:-target/$profile/app}
bench=${BENCH_BIN:-target/$profile/app-bench}
if [[ $build == 1 ]]; then
    cargo_profile=()
    [[ $profile == release ]] && cargo_profile=(--release)
    cargo build "${cargo_profile[@]}" --locked --quiet -p app -p app-bench --bins
fi

export APP_ADMIN_EMAIL=admin@example.com
export APP_ADMIN_PASSWORD=secret-pass-1
export RUST_LOG=${RUST_LOG:-warn}
data=$(mktemp -d)
pid=
cleanup() {
    if [[ -n $pid ]]; then
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    rm -rf "$data"
}
trap cleanup EXIT

# Nothing listens on the sink's port until the benchmark binds it: the drainer finds no due
# mail before the first create, so it does not try to connect earlier.
sink=127.0.0.1:$((20000 + RANDOM % 20000))
"$app" serve --addr 127.0.0.1:0 --data "$data" --smtp-url "smtp://$sink" \
    >"$data/serve.out" 2>"$data/serve.err" &
pid=$!
url=
for _ in $(seq 300); do
    url=$(sed -n 's/^app listening on \(http:\/\/[^ ]*\).*/\1/p' "$data/serve.out")
    [[ -n $url ]] && break
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "bench-mail.sh: app exited at startup:" >&2
        cat "$data/serve.err" >&2
        exit 1
    fi
    sleep 0.1
done
if [[ -z $url ]]; then
    echo "bench-mail.sh: app printed no address within 30 s" >&2
    exit 1
fi
status=0
timeout 600 "$bench" --url "$url" --server-pid "$pid" mail-drain --sink "$sink" --mails "$mails" \
    || status=$?
if [[ -s $data/serve.err ]]; then
    echo "bench-mail.sh: server warnings (last 5 lines):" >&2
    tail -n 5 "$data/serve.err" >&2
fi
exit "$status"
