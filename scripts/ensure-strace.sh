#!/usr/bin/env bash
# Makes sure `strace` (4.16 or newer: syscall fault injection) is installed for the storage
# test that fails every fdatasync of a running server (tests/e2e/storage.rs,
# `a_201_waits_for_the_disk…`). Installs Debian's package when missing (apt-install.sh: as
# root, or through sudo). It never skips: when strace is still missing, or cannot inject
# faults, it says why and exits non-zero.
set -euo pipefail
say() { printf 'ensure-strace: %s\n' "$*" >&2; }
die() { say "FAILED: $*"; exit 1; }

if ! command -v strace >/dev/null; then
  bash "$(dirname "$0")/apt-install.sh" strace || die "strace is missing and could not be installed"
  command -v strace >/dev/null || die "strace is still missing after apt-get install"
fi
# Fault injection, and leave to trace a process: the test attaches to the server it spawned.
strace -f -o /dev/null -e trace=fdatasync -e inject=fdatasync:error=EIO true \
  || die "$(command -v strace) cannot inject faults ($(strace -V | head -n1))"
say "$(strace -V | head -n1)"
