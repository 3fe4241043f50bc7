#!/usr/bin/env bash
# Benchmark `spackitor clean` on generated caches: wall time, peak memory and requests, over a
# directory and over S3 (s3s-fs, which serves a directory and so keeps the objects' backdated
# mtimes as LastModified).
#
# Usage: scripts/bench-clean.sh [SPECS] [LAYOUTS] [S3_SPECS]   (defaults: 100000 "v2 v3" 20000;
# S3_SPECS=0 skips S3)
# The S3 runs use a smaller cache: s3s-fs walks its whole folder for every listing page, so its
# own listing time grows with the square of the object count.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SPECS=${1:-100000}
LAYOUTS=${2:-v2 v3}
S3_SPECS=${3:-20000}
CACHE_DIR=${XDG_CACHE_HOME:-$HOME/.cache}/spacktainerizah
# One build folder per checkout: cargo would otherwise reuse what another clone compiled.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$CACHE_DIR/target/$(printf %s "$ROOT" | sha256sum | cut -c1-12)}
TOOLS=$CACHE_DIR/tools
WORK=$(mktemp -d /tmp/stz-bench.XXXXXX)
S3_PID=
trap '[ -n "$S3_PID" ] && kill "$S3_PID" 2>/dev/null; rm -rf "$WORK"' EXIT

log() { printf '==> %s\n' "$*" >&2; }

if [ ! -x "$TOOLS/bin/s3s-fs" ]; then
    log "installing s3s-fs 0.14.1 into $TOOLS (a few minutes, once)"
    CARGO_TARGET_DIR=$CACHE_DIR/s3s-target cargo install -q s3s-fs@0.14.1 --features binary --root "$TOOLS"
fi
command -v /usr/bin/time >/dev/null || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }
(cd "$ROOT" && cargo build -q --release -p spackitor -p spacktainerizah-tests --bin spackitor --bin gen_cache)
BIN=$CARGO_TARGET_DIR/release

# run NAME ARGS...: run spackitor clean with --output json, print one result line.
run() {
    local name=$1; shift
    /usr/bin/time -f '%e %M' -o "$WORK/time" "$BIN/spackitor" clean --output json "$@" >"$WORK/out.json"
    read -r wall rss <"$WORK/time"
    jq -r --arg name "$name" --arg wall "$wall" --arg rss "$rss" --argjson objects "$OBJECTS" '
        def ceil1000(n): ((n + 999) / 1000 | floor);
        (.totals.objects + .totals.orphans) as $deleted
        | ([.layouts[] | length] | length) as $layouts
        | (ceil1000($objects) + $layouts + ceil1000($deleted) + .index_writes) as $bound
        | "\($name): \(.totals.specs) specs / \($deleted) objects deleted of \($objects); " +
          "wall \($wall) s, peak RSS \(($rss | tonumber) / 1024 | floor) MiB; requests: " +
          "\(.requests.list) list + \(.requests.get) get + \(.requests.head) head + \(.requests.put) put + \(.requests.delete) delete" +
          " = \(.requests.list + .requests.get + .requests.head + .requests.put + .requests.delete)" +
          " (listing+index+delete+writes bound: \($bound))"' "$WORK/out.json"
}

for layout in $LAYOUTS; do
    log "generating $SPECS specs, layout $layout"
    "$BIN/gen_cache" "$WORK/gen" "$SPECS" "$layout" >"$WORK/gen.json"
    OBJECTS=$(jq .objects "$WORK/gen.json")
    keep=$WORK/gen/keep/spack.lock
    cache=$WORK/gen/cache
    run "$layout dir   $SPECS dry-run" --cache "$cache" --keep "$keep" --max-age 30 --orphans --dry-run
    run "$layout dir   $SPECS clean  " --cache "$cache" --keep "$keep" --max-age 30 --orphans
    # Steady state: a second run on the cleaned cache (v3 reads its manifests from the memo).
    OBJECTS=$(find "$cache" -type f -not -path '*/.spacktainerizah/*' | wc -l)
    run "$layout dir   $SPECS again  " --cache "$cache" --keep "$keep" --max-age 30 --orphans
    rm -rf "$WORK/gen"

    [ "$S3_SPECS" -gt 0 ] || continue
    log "generating $S3_SPECS specs, layout $layout, served by s3s-fs"
    "$BIN/gen_cache" "$WORK/gen" "$S3_SPECS" "$layout" >"$WORK/gen.json"
    OBJECTS=$(jq .objects "$WORK/gen.json")
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    "$TOOLS/bin/s3s-fs" --host 127.0.0.1 --port "$port" --access-key AK --secret-key SK "$WORK/gen" >"$WORK/s3s.log" 2>&1 &
    S3_PID=$!
    for _ in $(seq 50); do curl -s "http://127.0.0.1:$port/" >/dev/null && break; sleep 0.2; done
    export BENCH_AK=AK BENCH_SK=SK AWS_EC2_METADATA_DISABLED=true
    s3=(--cache s3://cache --s3-endpoint-url "http://127.0.0.1:$port" --access-key-env BENCH_AK --secret-key-env BENCH_SK)
    run "$layout s3  $S3_SPECS clean  " "${s3[@]}" --keep "$WORK/gen/keep/spack.lock" --max-age 30 --orphans
    kill "$S3_PID"; wait "$S3_PID" 2>/dev/null || true; S3_PID=
    rm -rf "$WORK/gen"
done
