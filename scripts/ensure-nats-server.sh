#!/usr/bin/env bash
# Makes sure `nats-server` (JetStream, clustering) is installed for the cluster-mode e2e tests
# of issue 15 (tests/e2e/cluster_proof.rs, cluster.rs) and prints its path on stdout; check.sh
# exports it as NATS_SERVER_BIN. Installs Debian's package when missing (apt-install.sh: as
# root, or through sudo), as browser-tests.sh installs Chromium. It never skips: when
# nats-server is missing after the install, or too old for JetStream clustering (before
# 2.2.0), it says why and exits non-zero.
set -euo pipefail
say() { printf 'ensure-nats-server: %s\n' "$*" >&2; }
die() { say "FAILED: $*"; exit 1; }

# An explicit binary is used as it is, never replaced by an install.
if [ -n "${NATS_SERVER_BIN:-}" ] && [ ! -x "$NATS_SERVER_BIN" ]; then
  die "NATS_SERVER_BIN=$NATS_SERVER_BIN is not an executable"
fi

# Debian installs it in /usr/sbin, which is not on every user's PATH.
find_bin() {
  if [ -n "${NATS_SERVER_BIN:-}" ]; then
    echo "$NATS_SERVER_BIN"
    return 0
  fi
  command -v nats-server 2>/dev/null && return 0
  for candidate in /usr/sbin/nats-server /usr/bin/nats-server /usr/local/bin/nats-server; do
    [ -x "$candidate" ] && { echo "$candidate"; return 0; }
  done
  return 1
}

if ! bin=$(find_bin); then
  bash "$(dirname "$0")/apt-install.sh" nats-server ||
    die "nats-server is missing and could not be installed"
  bin=$(find_bin) || die "nats-server is still missing after apt-get install"
fi

# "nats-server: v2.9.10" -> 2 9 10
version=$("$bin" --version 2>&1 | sed -n 's/.*v\([0-9][0-9]*\)\.\([0-9][0-9]*\)\.\([0-9][0-9]*\).*/\1 \2 \3/p' | head -n1)
[ -n "$version" ] || die "cannot read the version of $bin ($("$bin" --version 2>&1 | head -n1))"
read -r major minor _ <<<"$version"
if [ "$major" -lt 2 ] || { [ "$major" -eq 2 ] && [ "$minor" -lt 2 ]; }; then
  die "$bin is version ${version// /.}; JetStream clustering needs 2.2.0 or newer"
fi
say "$bin, version ${version// /.}"
echo "$bin"
