#!/usr/bin/env bash
# Issue 15's benchmark row: three `nats-server`s (one JetStream cluster) and three `app serve
# --nats` nodes on this machine, then `app-bench cluster`: sockets spread round-robin over the
# nodes, events paced through the first node, and creates from clients spread over the nodes
# (docs/cluster.md). It shows the cost of the log and that fan-out adds up across nodes, not
# speed: every process shares this machine's cores.
#
#   scripts/bench-cluster.sh            3 NATS servers + 3 nodes, release build (3 000 sockets,
#                                       300 events at 50/s, 64 creating clients for 10 s)
#   scripts/bench-cluster.sh --smoke    the same at CI size (150 sockets, 20 events, 6 clients
#                                       for 1 s), debug build
#   scripts/bench-cluster.sh --single   one node without NATS: the reference the cluster row is
#                                       read against (and all that runs before cluster mode)
#
# Options: --release / --debug pick the build; --no-build uses the binaries as they are.
# APP_BIN, BENCH_BIN and NATS_SERVER_BIN override the binaries. Everything runs on loopback;
# the servers and their files are removed on exit. The table is also kept in
# target/bench/cluster-<time>.md.
set -euo pipefail
cd "$(dirname "$0")/.."

smoke=0
single=0
profile=release
profile_forced=
build=1
while [[ $# -gt 0 ]]; do
    case "$1" in
        --smoke) smoke=1 ;;
        --single) single=1 ;;
        --release) profile_forced=release ;;
        --debug) profile_forced=debug ;;
        --no-build) build=0 ;;
        -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
        *) echo "bench-cluster.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
[[ $smoke == 1 ]] && profile=debug
[[ -n $profile_forced ]] && profile=$profile_forced
if [[ $smoke == 1 ]]; then
    sizes=(--sockets 150 --rate 10 --events 20 --concurrency 6 --seconds 1)
else
    sizes=(--sockets 3000 --rate 50 --events 300 --concurrency 64 --seconds 10)
fi

app=${APP_BIN:-target/$profile/app}
bench=${BENCH_BIN:-target/$profile/app-bench}
if [[ $build == 1 ]]; then
    cargo_profile=()
    [[ $profile == release ]] && cargo_profile=(--release)
    cargo build "${cargo_profile[@]}" --locked --quiet -p app -p app-bench --bins
fi
nats_bin=
if [[ $single == 0 ]]; then
    nats_bin=$(bash scripts/ensure-nats-server.sh)
fi

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
mkdir -p target/bench
table=target/bench/cluster-$(date -u +%Y%m%dT%H%M%SZ).md
scratch=$(mktemp -d)
export APP_ADMIN_EMAIL=admin@example.com
export APP_ADMIN_PASSWORD=secret-pass-1
export APP_TOKEN_TTL=86400
# One secret serves every node (API.md): a token from one node works on all.
export APP_JWT_SECRET=bench-cluster-secret-shared-by-every-node
export RUST_LOG=${RUST_LOG:-warn}

pids=()
cleanup() {
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        for _ in $(seq 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$scratch"
}
trap cleanup EXIT

# Sets `port` to a loopback port nothing listens on and no earlier call picked (nats-server
# needs its ports before it starts: the routes name them). Not in a $(subshell): the taken
# list and $RANDOM's state must carry over from one call to the next. Below the kernel's
# ephemeral range: thousands of sockets just closed (a run before this one) hold ports there
# in TIME_WAIT, which a listener cannot bind though nothing answers on them.
taken=" "
port=
ephemeral_low=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
(( ephemeral_low > 12000 )) || ephemeral_low=32768
free_port() {
    for _ in $(seq 200); do
        port=$((10000 + RANDOM % (ephemeral_low - 10000)))
        [[ $taken == *" $port "* ]] && continue
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            taken+="$port "
            return 0
        fi
    done
    echo "bench-cluster.sh: no free port found" >&2
    exit 1
}

# Starts `app serve` with extra flags; appends its URL to `urls`.
urls=()
start_node() {
    local name=$1
    shift
    local data="$scratch/$name"
    mkdir -p "$data"
    "$app" serve --addr 127.0.0.1:0 --data "$data/data" "$@" >"$data/serve.out" 2>"$data/serve.err" &
    pids+=($!)
    local pid=$! url=
    for _ in $(seq 300); do
        url=$(sed -n 's/^app listening on \(http:\/\/[^ ]*\).*/\1/p' "$data/serve.out")
        if [[ -n $url ]]; then
            urls+=("$url")
            echo "bench-cluster.sh: $name (pid $pid) at $url" >&2
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "bench-cluster.sh: $name exited at startup:" >&2
            cat "$data/serve.err" >&2
            exit 1
        fi
        sleep 0.1
    done
    echo "bench-cluster.sh: $name printed no address within 30 s" >&2
    exit 1
}

if [[ $single == 1 ]]; then
    start_node node-0
else
    client_ports=() cluster_ports=() http_ports=()
    for i in 0 1 2; do
        free_port
        client_ports+=("$port")
        free_port
        cluster_ports+=("$port")
        free_port
        http_ports+=("$port")
    done
    routes=$(printf '"nats-route://127.0.0.1:%s", ' "${cluster_ports[@]}")
    routes=${routes%, }
    for i in 0 1 2; do
        dir="$scratch/nats-$i"
        mkdir -p "$dir"
        cat >"$dir/nats.conf" <<EOF
server_name: "nats-$i"
listen: "127.0.0.1:${client_ports[$i]}"
http: "127.0.0.1:${http_ports[$i]}"
log_file: "$dir/nats.log"
jetstream {
  store_dir: "$dir/store"
  max_memory_store: 256MB
  max_file_store: 4GB
}
cluster {
  name: "bench"
  listen: "127.0.0.1:${cluster_ports[$i]}"
  routes: [$routes]
}
EOF
        "$nats_bin" -c "$dir/nats.conf" >/dev/null 2>&1 &
        pids+=($!)
    done
    # JetStream is ready once every server names the same meta leader.
    leader_of() {
        # Nothing (not a failure) while the server does not answer yet.
        { curl -fsS -m 2 "http://127.0.0.1:$1/jsz" 2>/dev/null || true; } |
            sed -n 's/.*"leader": *"\([^"]*\)".*/\1/p' | head -n1
    }
    ready=0
    for _ in $(seq 300); do
        l0=$(leader_of "${http_ports[0]}") l1=$(leader_of "${http_ports[1]}") l2=$(leader_of "${http_ports[2]}")
        if [[ -n $l0 && $l0 == "$l1" && $l1 == "$l2" ]]; then
            ready=1
            break
        fi
        sleep 0.1
    done
    if [[ $ready == 0 ]]; then
        echo "bench-cluster.sh: the NATS cluster elected no JetStream leader within 30 s" >&2
        tail -n 20 "$scratch"/nats-*/nats.log >&2 || true
        exit 1
    fi
    echo "bench-cluster.sh: NATS cluster up, JetStream meta leader $l0" >&2
    nats_urls=$(printf 'nats://127.0.0.1:%s,' "${client_ports[@]}")
    nats_urls=${nats_urls%,}
    for i in 0 1 2; do
        start_node "node-$i" --nats "$nats_urls" --node-name "node-$i"
    done
fi

node_list=$(IFS=,; echo "${urls[*]}")
echo "bench-cluster.sh: app-bench cluster over $node_list" >&2
status=0
timeout 900 "$bench" --url "${urls[0]}" cluster --nodes "$node_list" "${sizes[@]}" | tee "$table" || status=$?
for log in "$scratch"/node-*/serve.err; do
    if [[ -s $log ]]; then
        echo "bench-cluster.sh: warnings of $log (last 5 lines):" >&2
        tail -n 5 "$log" >&2
    fi
done
echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown); table in $table" >&2
exit $status
