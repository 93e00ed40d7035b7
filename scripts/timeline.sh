#!/usr/bin/env bash
# Where an event's time goes inside both servers, for the fan-out rows of issue 16
# (docs/bench.md, "Night 2026-12-04"). Builds `app serve` and the plain baseline with
# bench/timeline.patch, a probe that stamps each step of a create (handler, writer, flush,
# broadcast) and, per event, the moments half and all of the sockets' sessions had handed its
# frame to their WebSocket; it is never in `main`, since it prints lines per event. Then runs
# alternated pairs of `app-bench fanout` against fresh servers (the SMTP sink taking the app's
# mail) and prints, per run and as medians: the client's p50 and first socket's read; the
# server's head from the create's handler to the broadcast, with its parts; and the
# broadcast to half and to all of the sockets taking the event.
#
#   scripts/timeline.sh [--pairs N] [--sockets S] [--rate R] [--events E]
#
# Defaults: 5 pairs of 1 000 sockets @ 2 events/s, 30 events (the suite's 1 000 @ 2/s row).
# The patched tree is target/timeline-src (HEAD's files), built into target/timeline; the
# first build takes as long as a release build. Each run's probe lines, the client's report
# and the tables stay in target/timeline/results-<time>/.
set -euo pipefail
cd "$(dirname "$0")/.."

pairs=5 sockets=1000 rate=2 events=30
while [[ $# -gt 0 ]]; do
    case "$1" in
        --pairs) shift; pairs=${1:-} ;;
        --sockets) shift; sockets=${1:-} ;;
        --rate) shift; rate=${1:-} ;;
        --events) shift; events=${1:-} ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) echo "timeline.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    # An option given last without its value has nothing left to shift; the check below says so.
    shift || true
done
for value in "$pairs" "$sockets" "$rate" "$events"; do
    [[ $value =~ ^[1-9][0-9]*$ ]] || {
        echo "timeline.sh: --pairs, --sockets, --rate and --events take a positive whole number, not '$value'" >&2
        exit 2
    }
done

root=$PWD
src=$root/target/timeline-src
rm -rf "$src"
mkdir -p "$src"
git archive HEAD | tar -x -C "$src"
# Its own repository, so that `git apply` resolves the patch's paths in it.
git -C "$src" init -q
git -C "$src" apply "$root/bench/timeline.patch"
export CARGO_TARGET_DIR=$root/target/timeline
(cd "$src" && cargo build --release --locked --quiet -p app -p app-bench --bins --example baseline)
bin=$CARGO_TARGET_DIR/release

scratch=$(mktemp -d)
results=$root/target/timeline/results-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$results"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$scratch"
}
trap cleanup EXIT

export APP_ADMIN_EMAIL=admin@example.com APP_ADMIN_PASSWORD=timeline-pass-1 PROBE_SOCKETS=$sockets
"$bin/app-bench" smtp-sink >"$scratch/sink.out" 2>&1 &
pids+=($!)
smtp_url=
for _ in $(seq 100); do
    smtp_url=$(sed -n 's/^smtp sink listening on \(smtp:\/\/[^ ]*\).*/\1/p' "$scratch/sink.out")
    [[ -n $smtp_url ]] && break
    sleep 0.1
done
[[ -n $smtp_url ]] || { echo "timeline.sh: the SMTP sink did not start" >&2; exit 1; }

# One run: a fresh server of side $1, the fan-out, its probe lines in $results/$1-$2.err and
# the client's report in $results/$1-$2.out.
run() {
    local side=$1 n=$2 data=$scratch/$1-$2 out=$results/$1-$2 pid url=
    mkdir -p "$data"
    if [[ $side == app ]]; then
        "$bin/app" serve --addr 127.0.0.1:0 --data "$data/db" --smtp-url "$smtp_url" \
            >"$data/serve.out" 2>"$out.err" &
    else
        "$bin/examples/baseline" --addr 127.0.0.1:0 >"$data/serve.out" 2>"$out.err" &
    fi
    pid=$!
    pids+=("$pid")
    for _ in $(seq 300); do
        url=$(sed -n 's/^app listening on \(http:\/\/[^ ]*\).*/\1/p' "$data/serve.out")
        [[ -n $url ]] && break
        sleep 0.1
    done
    [[ -n $url ]] || { echo "timeline.sh: $side printed no address" >&2; cat "$out.err" >&2; exit 1; }
    "$bin/app-bench" --url "$url" --server-pid "$pid" fanout --sockets "$sockets" \
        --rate "$rate" --events "$events" >"$out.out" 2>&1 || {
        echo "timeline.sh: app-bench failed against $side:" >&2
        cat "$out.out" >&2
        exit 1
    }
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    echo "timeline.sh: pair $n, $side done" >&2
}

for n in $(seq "$pairs"); do
    # Alternate which side goes first, so neither always runs on a machine the other warmed.
    if (( n % 2 )); then run app "$n"; run baseline "$n"; else run baseline "$n"; run app "$n"; fi
done

echo
echo "$sockets sockets @ $rate events/s, $events events, $pairs pairs (commit $(git rev-parse --short HEAD)); ms, medians of each run's events"
echo
echo "| side | run | client p50 | first socket | to writer | transaction | flush | to publisher | handler → broadcast | broadcast → half taken | → all taken | client p50 − head |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
for side in app baseline; do
    for n in $(seq "$pairs"); do
        # The client's p50 (the first one printed: the frames') and first socket, in ms.
        client=$( (grep -o -m1 "p50 [0-9.]* [mµ]*s" "$results/$side-$n.out" | head -1
            grep -o "first socket's read p50 [0-9.]* [mµ]*s" "$results/$side-$n.out") |
            awk '{ v = $(NF-1) + 0; if ($NF == "µs") v /= 1000; else if ($NF == "s") v *= 1000; printf "%s ", v }')
        awk -v side="$side" -v n="$n" -v client="$client" '
            function median(k,   i, j, t, m) {
                m = count[k]; if (m == 0) return -1
                for (i = 1; i <= m; i++) a[i] = v[k, i]
                for (i = 2; i <= m; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
                return (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
            }
            function ms(k,   x) { x = median(k); return x < 0 ? "–" : sprintf("%.2f", x / 1000) }
            /PROBE/ { for (f = 2; f <= NF; f++) { split($f, kv, "="); sub(/_us$/, "", kv[1]); v[kv[1], ++count[kv[1]]] = kv[2] } }
            END {
                split(client, c, " ")
                head = median("req_to_send")
                printf "| %s | %d | %.2f | %.2f | %s | %s | %s | %s | %s | %s | %s | %.2f |\n", side, n, c[1], c[2],
                    ms("to_writer"), ms("tx"), ms("flush"), ms("hop"), ms("req_to_send"), ms("half"), ms("all"), c[1] - head / 1000
            }' "$results/$side-$n.err"
    done
done | tee "$results/runs.md"
echo
echo "Medians over the runs:"
echo
echo "| side | client p50 | first socket | handler → broadcast | broadcast → half taken | client p50 − head |"
echo "| --- | --- | --- | --- | --- | --- |"
for side in app baseline; do
    grep "^| $side |" "$results/runs.md" | awk -F'|' -v side="$side" '
        function med(col,   i, j, t, m) {
            m = 0
            for (i = 1; i <= rows; i++) if (r[i, col] != "–") a[++m] = r[i, col] + 0
            for (i = 2; i <= m; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
            return m == 0 ? "–" : sprintf("%.2f", (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2)
        }
        { rows++; for (f = 1; f <= NF; f++) { x = $f; gsub(/ /, "", x); r[rows, f] = x } }
        END { printf "| %s | %s | %s | %s | %s | %s |\n", side, med(4), med(5), med(10), med(11), med(13) }'
done | tee "$results/medians.md"
echo
echo "Probe lines, the client's reports and these tables: $results"
