#!/usr/bin/env bash
# Checks that vendor/warp is exactly the published warp 0.4.3 plus vendor/warp.patch
# (vendor/README.md), so the vendored copy carries no change the patch does not show.
#
#   scripts/check-vendor.sh            check; on a difference, print it and exit 1
#   scripts/check-vendor.sh --update   rewrite vendor/warp.patch from vendor/warp as it is now
#
# The upstream source comes through cargo itself: a throwaway project in a temporary folder
# depends on warp =0.4.3, `cargo fetch` downloads it (checksum-verified against the crates.io
# index) into the cargo cache, and `cargo metadata` says where it was unpacked. Works with a
# cold cache (needs crates.io then) and from any folder.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

version=0.4.3
vendored=vendor/warp
patch_file=vendor/warp.patch
# Packaging files cargo adds to a published crate; vendor/warp leaves them out.
packaging=(.cargo-ok .cargo_vcs_info.json Cargo.lock Cargo.toml.orig)

update=0
case "${1:-}" in
    "") ;;
    --update) update=1 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "check-vendor.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
esac

fail() {
    echo "check-vendor.sh: $*" >&2
    exit 1
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The probe lives outside this workspace, so neither our Cargo.lock nor our [patch] (which
# points warp at vendor/warp) applies to it.
mkdir -p "$tmp/probe/src"
touch "$tmp/probe/src/lib.rs"
cat >"$tmp/probe/Cargo.toml" <<EOF
[package]
name = "warp-upstream-probe"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
warp = { version = "=$version", default-features = false }
EOF
if ! cargo fetch --quiet --manifest-path "$tmp/probe/Cargo.toml" 2>"$tmp/fetch.err"; then
    cat "$tmp/fetch.err" >&2
    fail "could not download warp $version from crates.io (see cargo's message above)"
fi
manifest=$(cargo metadata --quiet --offline --format-version 1 \
    --manifest-path "$tmp/probe/Cargo.toml" 2>"$tmp/metadata.err" |
    grep -o "\"manifest_path\":\"[^\"]*/warp-$version/Cargo.toml\"" | head -n 1 |
    sed 's/^"manifest_path":"//; s/"$//') || true
if [[ -z $manifest || ! -f $manifest ]]; then
    cat "$tmp/metadata.err" >&2
    fail "cargo fetched warp $version but cargo metadata does not say where it is"
fi
upstream=$(dirname "$manifest")

# a/ is upstream without its packaging files, b/ the tree to compare with it.
mkdir -p "$tmp/a"
cp -R "$upstream/." "$tmp/a/"
for f in "${packaging[@]}"; do
    rm -f "$tmp/a/$f"
done
chmod -R u+w "$tmp/a"

if [[ $update == 1 ]]; then
    cp -R "$vendored" "$tmp/b"
    # Timestamps stripped from the headers, so an unchanged tree gives an unchanged patch.
    (cd "$tmp" && diff -ruN a b || true) |
        sed -E 's/^(---|\+\+\+) ([^\t]*)\t.*/\1 \2/' >"$patch_file"
    echo "check-vendor.sh: wrote $patch_file ($(grep -E '^[-+]' "$patch_file" | grep -cvE '^(---|\+\+\+) ') changed lines)"
    exit 0
fi

[[ -f $patch_file ]] || fail "$patch_file is missing (scripts/check-vendor.sh --update writes it)"
# git apply refuses fuzz and offsets that do not match exactly; the ceiling keeps it from
# treating an enclosing repository as the place the paths are relative to.
if ! (cd "$tmp/a" && GIT_CEILING_DIRECTORIES="$tmp" git apply --whitespace=nowarn -p1 \
    "$root/$patch_file") 2>"$tmp/apply.err"; then
    cat "$tmp/apply.err" >&2
    fail "$patch_file does not apply to warp $version as published"
fi
if ! diff -r "$tmp/a" "$vendored" >"$tmp/diff.out"; then
    sed -e "s|$tmp/a|upstream+patch|g" "$tmp/diff.out" >&2
    fail "$vendored is not warp $version plus $patch_file: the differences are above (< is
upstream with the patch applied, > is $vendored). Either undo the change in $vendored, or
keep it and record it with scripts/check-vendor.sh --update (and say why in vendor/README.md)."
fi
echo "check-vendor.sh: $vendored is warp $version plus $patch_file"
