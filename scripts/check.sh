#!/usr/bin/env bash
# Every check CI runs (.ci/run calls this): formatting, lints, unit and end-to-end tests of
# both workspace members (the server `app` and the load generator `app-bench`, bench/), that
# vendor/warp is upstream plus vendor/warp.patch, that scripts/timeline.sh's probe
# (bench/timeline.patch) still applies, headless-browser tests (installs Chromium
# when missing), and the benchmark smoke run. The cluster-mode e2e tests need `nats-server`
# and a storage-fault test `strace`: ensure-nats-server.sh and ensure-strace.sh install them
# when missing and fail the run when they cannot.
set -euo pipefail
cd "$(dirname "$0")/.."
# CI builds every target once: incremental state would only double target/ on disk.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
NATS_SERVER_BIN=$(bash scripts/ensure-nats-server.sh)
export NATS_SERVER_BIN
bash scripts/ensure-strace.sh
cargo test --workspace --locked -- --test-threads 2
bash scripts/check-vendor.sh
git apply --check bench/timeline.patch
bash scripts/browser-tests.sh
bash scripts/bench.sh --smoke
