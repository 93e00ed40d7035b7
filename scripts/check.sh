#!/usr/bin/env bash
# Every check CI runs (.ci/run calls this): formatting, lints, unit and end-to-end tests,
# headless-browser tests (installs Chromium when missing), and the benchmark smoke run.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all --check
cargo clippy --all-targets -- -D warnings
cargo test --locked -- --test-threads 2
bash scripts/browser-tests.sh
bash scripts/bench.sh --smoke
