#!/usr/bin/env bash
# Benchmark `spackitor verify --deep` against `sha256sum` on the same files: a generated v3
# cache of SPECS tarball blobs of SIZE_MIB incompressible bytes each, read from the page cache
# (each run once beforehand). Wall time and peak memory: the deep check streams, so memory must
# not grow with the blobs' sizes.
#
# Usage: scripts/bench-verify.sh [SPECS] [SIZE_MIB]   (defaults: 40 25, about 1 GiB)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SPECS=${1:-40}
SIZE_MIB=${2:-25}
CACHE_DIR=${XDG_CACHE_HOME:-$HOME/.cache}/spacktainerizah
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$CACHE_DIR/target/$(printf %s "$ROOT" | sha256sum | cut -c1-12)}
WORK=$(mktemp -d /var/tmp/stz-bench-verify.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

log() { printf '==> %s\n' "$*" >&2; }
command -v /usr/bin/time >/dev/null || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }
(cd "$ROOT" && cargo build -q --release -p spackitor -p spacktainerizah-tests --bin spackitor --bin gen_cache)
BIN=$CARGO_TARGET_DIR/release

log "generating $SPECS blobs of $SIZE_MIB MiB"
GEN_CACHE_TARBALL_KIB=$((SIZE_MIB * 1024)) "$BIN/gen_cache" "$WORK" "$SPECS" v3 >/dev/null
find "$WORK/cache/blobs" -type f -size +1M >"$WORK/files"
echo "$(wc -l <"$WORK/files") blobs, $(du -sm "$WORK/cache/blobs" | cut -f1) MiB, $(nproc) cores"

measure() { # what, command...
    local what=$1; shift
    "$@" >/dev/null 2>&1 || true # warm the page cache
    /usr/bin/time -f '%e %M' -o "$WORK/time" "$@" >/dev/null
    read -r wall rss <"$WORK/time"
    echo "$what: $wall s wall, $((rss / 1024)) MiB peak RSS"
}
measure "spackitor verify --deep" "$BIN/spackitor" verify --deep --cache "$WORK/cache"
ours=$(cut -d' ' -f1 "$WORK/time")
measure "sha256sum, one process" xargs -a "$WORK/files" sha256sum
one=$(cut -d' ' -f1 "$WORK/time")
measure "sha256sum, one process per core" xargs -a "$WORK/files" -P "$(nproc)" -n 4 sha256sum
par=$(cut -d' ' -f1 "$WORK/time")
awk -v o="$ours" -v a="$one" -v p="$par" 'BEGIN {
    printf "ratio verify --deep / sha256sum: %.2f (one process), %.2f (one per core)\n", o / a, o / p }'
