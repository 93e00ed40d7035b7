#!/usr/bin/env bash
# Runs the dashboard's tests in headless Chromium (tests/browser, `node --test` + playwright-core).
#
# Installs what is missing — Debian's chromium and chromium-driver (a browser download by
# Playwright cannot work here), the npm packages pinned in tests/browser/package-lock.json —
# builds target/debug/app, and runs every test. It never skips: anything missing or failing
# ends it with a non-zero status and says why. On a failed test, screenshots of each tab are
# in tests/browser/artifacts/.
#
#   scripts/browser-tests.sh                 # everything
#   scripts/browser-tests.sh owner.test.js   # some files (names under tests/browser)
#   SCREENSHOTS=always scripts/browser-tests.sh   # keep screenshots of passing tests too
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
say() { printf 'browser-tests: %s\n' "$*" >&2; }
die() { say "FAILED: $*"; exit 1; }

# 1. Chromium, from Debian's packages.
if [ ! -x /usr/bin/chromium ]; then
  bash scripts/apt-install.sh chromium chromium-driver ||
    die "/usr/bin/chromium is missing and could not be installed"
fi
[ -x /usr/bin/chromium ] || die "/usr/bin/chromium is still missing after apt-get install"
say "$(/usr/bin/chromium --version 2>/dev/null || echo 'chromium (version unknown)')"

# 2. Node.js (the test runner is node's own) and the pinned npm packages.
command -v node >/dev/null || die "node is not installed"
NODE_MAJOR=$(node -p 'process.versions.node.split(".")[0]')
[ "$NODE_MAJOR" -ge 20 ] || die "node >= 20 is needed, found $(node --version)"
(
  cd tests/browser
  if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi
) || die "npm could not install tests/browser's packages"

# 3. The binary under test (a no-op when it is up to date).
if [ -z "${APP_BIN:-}" ]; then
  cargo build --locked --bin app || die "cargo build failed"
  export APP_BIN="$ROOT/target/debug/app"
fi
[ -x "$APP_BIN" ] || die "no executable at $APP_BIN"

# 4. The tests, one file at a time (each starts its own server and browser).
cd tests/browser
if [ "$#" -gt 0 ]; then FILES=("$@"); else FILES=(*.test.js); fi
[ "${#FILES[@]}" -gt 0 ] && [ -f "${FILES[0]}" ] || die "no test files found in tests/browser"
say "running ${FILES[*]}"
if ! node --test --test-concurrency=1 --test-timeout=180000 "${FILES[@]}"; then
  say "screenshots and console logs of the failed tests: $ROOT/tests/browser/artifacts/"
  die "some browser tests failed"
fi
say "all browser tests passed"
