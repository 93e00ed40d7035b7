#!/usr/bin/env bash
# Installs Debian packages for the test run: `scripts/apt-install.sh PACKAGE...`, as root or
# through sudo. Shared by the scripts that make sure a tool the tests need is there
# (ensure-nats-server.sh, ensure-strace.sh, browser-tests.sh); each checks the result itself.
# Exits non-zero, saying why, when it cannot install.
set -euo pipefail
say() { printf 'apt-install: %s\n' "$*" >&2; }
[ $# -gt 0 ] || { say "usage: apt-install.sh PACKAGE..."; exit 2; }
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { say "FAILED: cannot install $* (not root, no sudo either)"; exit 1; }
  SUDO="sudo"
fi
say "installing $* (apt-get)"
$SUDO apt-get update >&2
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y "$@" >&2
