#!/usr/bin/env bash
# Benchmark `spackitor clean` on generated caches: wall time, peak memory and requests, over a
# directory and over S3 (s3s-fs, which serves a directory and so keeps the objects' backdated
# mtimes as LastModified).
#
# Usage: scripts/bench-clean.sh [SPECS] [LAYOUTS] [S3_SPECS] [KILL_SPECS]   (defaults: 100000
# "v2 v3" 20000 20000; S3_SPECS=0 skips S3, KILL_SPECS=0 the kill test)
# Each run reports what converging costs it (`convergence`: recording the plan, reading the
# indexes again after the deletes, removing the plan). The kill test kills -9 a clean of a
# KILL_SPECS-spec directory cache at several moments after it recorded its plan (KILL_POINTS,
# fractions of an uninterrupted run's wall time), reruns it, and counts the objects one uninterrupted run deletes that are still there
# (0 expected). BASELINE_BIN=path/to/an/older/spackitor adds its clean run for comparison;
# PROFILE=debug uses a debug build.
# The S3 runs use a smaller cache: s3s-fs walks its whole folder for every listing page, so its
# own listing time grows with the square of the object count.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SPECS=${1:-100000}
LAYOUTS=${2:-v2 v3}
S3_SPECS=${3:-20000}
KILL_SPECS=${4:-20000}
KILL_POINTS=${KILL_POINTS:-0 0.05 0.1 0.15 0.2 0.25 0.3 0.35 0.4 0.5}
PROFILE=${PROFILE:-release}
CACHE_DIR=${XDG_CACHE_HOME:-$HOME/.cache}/spacktainerizah
# One build folder per checkout: cargo would otherwise reuse what another clone compiled.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$CACHE_DIR/target/$(printf %s "$ROOT" | sha256sum | cut -c1-12)}
TOOLS=$CACHE_DIR/tools
WORK=$(mktemp -d /tmp/stz-bench.XXXXXX)
# shellcheck source=scripts/serve.sh
. "$ROOT/scripts/serve.sh"
trap 'stop_servers; rm -rf "$WORK"' EXIT

log() { printf '==> %s\n' "$*" >&2; }

if [ "$S3_SPECS" -gt 0 ] && [ ! -x "$TOOLS/bin/s3s-fs" ]; then
    log "installing s3s-fs 0.14.1 into $TOOLS (a few minutes, once)"
    CARGO_TARGET_DIR=$CACHE_DIR/s3s-target cargo install -q s3s-fs@0.14.1 --features binary --root "$TOOLS"
fi
command -v /usr/bin/time >/dev/null || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }
(cd "$ROOT" && cargo build -q --profile "$([ "$PROFILE" = debug ] && echo dev || echo "$PROFILE")" -p spackitor -p spacktainerizah-tests --bin spackitor --bin gen_cache)
BIN=$CARGO_TARGET_DIR/$PROFILE
SPACKITOR=$BIN/spackitor

# run NAME ARGS...: run spackitor clean with --output json, print one result line.
run() {
    local name=$1; shift
    /usr/bin/time -f '%e %M' -o "$WORK/time" "$SPACKITOR" clean --output json "$@" >"$WORK/out.json"
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
          " (listing+index+delete+writes bound: \($bound))" +
          (if .convergence then "; converging: \(.convergence.requests) requests, \(.convergence.seconds * 1000 | floor) ms" else "" end)' "$WORK/out.json"
}

# keys DIR: the cache's objects, one a line, sorted (the stores' own folders left out).
keys() {
    (cd "$1" && find . -type f -not -path './.spacktainerizah/*' -not -path './.spackitor/*' | sort)
}

# kill_test LAYOUT: one uninterrupted clean, then per delay a clean killed that long after it
# recorded its plan and a rerun; both compared with the uninterrupted one.
kill_test() {
    local layout=$1 f d pid before at_kill left extra started wall
    log "kill test: $KILL_SPECS specs, layout $layout"
    "$BIN/gen_cache" "$WORK/kill" "$KILL_SPECS" "$layout" >/dev/null
    local args=(--keep "$WORK/kill/keep/spack.lock" --max-age 30 --orphans)
    cp -a "$WORK/kill/cache" "$WORK/ref"
    started=$(date +%s.%N)
    "$SPACKITOR" clean -q --output json --cache "$WORK/ref" "${args[@]}" >/dev/null
    wall=$(echo "$(date +%s.%N) - $started" | bc -l)
    keys "$WORK/ref" >"$WORK/ref.keys"
    before=$(keys "$WORK/kill/cache" | wc -l)
    for f in $KILL_POINTS; do
        d=$(printf '%.2f' "$(echo "$f * $wall" | bc -l)")
        rm -rf "$WORK/k"
        cp -a "$WORK/kill/cache" "$WORK/k"
        "$SPACKITOR" clean -q --output json --cache "$WORK/k" "${args[@]}" >/dev/null 2>&1 &
        pid=$!
        while kill -0 "$pid" 2>/dev/null && [ ! -e "$WORK/k/_spacktainerizah/clean-plan.json" ]; do sleep 0.002; done
        sleep "$d"
        kill -9 "$pid" 2>/dev/null && state=killed || state="finished before the kill"
        wait "$pid" 2>/dev/null || true
        # The recorded plan itself is no object of the cache.
        at_kill=$(keys "$WORK/k" | grep -cv '^./_spacktainerizah/')
        "$SPACKITOR" clean -q --output json --cache "$WORK/k" "${args[@]}" >"$WORK/rerun.json"
        keys "$WORK/k" >"$WORK/k.keys"
        left=$(comm -23 "$WORK/k.keys" "$WORK/ref.keys" | wc -l)
        extra=$(comm -13 "$WORK/k.keys" "$WORK/ref.keys" | wc -l)
        printf '%s dir  %s kill at plan+%ss (%s): %s of %s objects deleted before; rerun finished %s leftover(s); left that one run deletes: %s; deleted that one run keeps: %s\n' \
            "$layout" "$KILL_SPECS" "$d" "$state" "$((before - at_kill))" "$before" \
            "$(jq .totals.leftovers "$WORK/rerun.json")" "$left" "$extra"
    done
    rm -rf "$WORK/kill" "$WORK/ref" "$WORK/k"
}

# s3s-fs serving the generated cache.
run_s3s() { # port
    exec "$TOOLS/bin/s3s-fs" --host 127.0.0.1 --port "$1" --access-key AK --secret-key SK "$WORK/gen"
}
s3s_up() { curl -s -o /dev/null "http://127.0.0.1:$1/"; }

for layout in $LAYOUTS; do
    log "generating $SPECS specs, layout $layout"
    "$BIN/gen_cache" "$WORK/gen" "$SPECS" "$layout" >"$WORK/gen.json"
    OBJECTS=$(jq .objects "$WORK/gen.json")
    keep=$WORK/gen/keep/spack.lock
    cache=$WORK/gen/cache
    run "$layout dir   $SPECS dry-run" --cache "$cache" --keep "$keep" --max-age 30 --orphans --dry-run
    if [ -n "${BASELINE_BIN:-}" ]; then
        cp -a "$cache" "$WORK/baseline"
        SPACKITOR=$BASELINE_BIN run "$layout dir   $SPECS clean   (baseline)" --cache "$WORK/baseline" --keep "$keep" --max-age 30 --orphans
        rm -rf "$WORK/baseline"
    fi
    run "$layout dir   $SPECS clean  " --cache "$cache" --keep "$keep" --max-age 30 --orphans
    # Steady state: a second run on the cleaned cache (v3 reads its manifests from the memo).
    OBJECTS=$(find "$cache" -type f -not -path '*/.spacktainerizah/*' | wc -l)
    run "$layout dir   $SPECS again  " --cache "$cache" --keep "$keep" --max-age 30 --orphans
    rm -rf "$WORK/gen"
    [ "$KILL_SPECS" -gt 0 ] && kill_test "$layout"

    [ "$S3_SPECS" -gt 0 ] || continue
    log "generating $S3_SPECS specs, layout $layout, served by s3s-fs"
    "$BIN/gen_cache" "$WORK/gen" "$S3_SPECS" "$layout" >"$WORK/gen.json"
    OBJECTS=$(jq .objects "$WORK/gen.json")
    serve s3s-fs "$WORK/s3s.log" s3s_up run_s3s
    port=$SERVED_PORT
    export BENCH_AK=AK BENCH_SK=SK AWS_EC2_METADATA_DISABLED=true
    s3=(--cache s3://cache --s3-endpoint-url "http://127.0.0.1:$port" --access-key-env BENCH_AK --secret-key-env BENCH_SK)
    run "$layout s3  $S3_SPECS clean  " "${s3[@]}" --keep "$WORK/gen/keep/spack.lock" --max-age 30 --orphans
    stop_servers
    rm -rf "$WORK/gen"
done
