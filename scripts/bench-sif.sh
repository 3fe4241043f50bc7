#!/usr/bin/env bash
# Benchmark `singularitah sif build`: an image of SIZE_MB of incompressible files in two layers,
# made locally with umoci and pushed to a local docker-registry, made into a SIF; then `sif
# publish` of that SIF to a directory and (multipart) to a local moto S3 server, and `sif sync`
# back into a directory. Wall time and peak memory of each (everything is streamed, so memory
# must not grow with the image).
#
# Usage: scripts/bench-sif.sh [SIZE_MB]   (default 500; needs what scripts/test.sh installs)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SIZE_MB=${1:-500}
CACHE_DIR=${XDG_CACHE_HOME:-$HOME/.cache}/spacktainerizah
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$CACHE_DIR/target/$(printf %s "$ROOT" | sha256sum | cut -c1-12)}
WORK=$(mktemp -d /var/tmp/stz-bench-sif.XXXXXX)
VENV=$CACHE_DIR/venv
# shellcheck source=scripts/serve.sh
. "$ROOT/scripts/serve.sh"
trap 'stop_servers; rm -rf "$WORK"' EXIT

log() { printf '==> %s\n' "$*" >&2; }
command -v /usr/bin/time >/dev/null || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }

run_registry() { # port
    cat >"$WORK/registry.yml" <<YML
version: 0.1
storage: {filesystem: {rootdirectory: $WORK/registry}}
http: {addr: 127.0.0.1:$1}
YML
    exec docker-registry serve "$WORK/registry.yml"
}
registry_up() { curl -sf "http://127.0.0.1:$1/v2/"; }
serve registry "$WORK/registry.log" registry_up run_registry
port=$SERVED_PORT

log "building singularitah (release)"
cargo build -q --release -p singularitah

log "making a ${SIZE_MB} MB image in two layers"
image="$WORK/oci:img"
umoci init --layout "$WORK/oci"
umoci new --image "$image"
umoci unpack --image "$image" "$WORK/bundle" >/dev/null
half=$((SIZE_MB / 2))
for layer in 1 2; do
    mkdir -p "$WORK/bundle/rootfs/data$layer"
    for i in $(seq 1 $((half / 10))); do
        head -c 10M /dev/urandom >"$WORK/bundle/rootfs/data$layer/f$i"
    done
    umoci repack --image "$image" "$WORK/bundle"
done
umoci config --image "$image" --os linux --architecture amd64
skopeo copy --quiet --dest-tls-verify=false "oci:$image" "docker://127.0.0.1:$port/bench:1"
rm -rf "$WORK/bundle" "$WORK/oci"

measure() { # what, command...
    local what=$1; shift
    /usr/bin/time -f '%e s wall, %M KiB peak RSS' -o "$WORK/time" "$@" >/dev/null
    echo "$what: $(cat "$WORK/time")"
}
stz="$CARGO_TARGET_DIR/release/singularitah"

log "singularitah sif build"
measure "sif build of a ${SIZE_MB} MB image" \
    "$stz" -q sif build "127.0.0.1:$port/bench:1" --arch amd64 -o "$WORK/bench__1.0.sif" \
    --label org.example.lockfile-sha256=bench
echo "SIF: $(du -m "$WORK/bench__1.0.sif" | cut -f1) MB"

# The same build as an ordinary user (owners and modes go to mksquashfs as pseudo-definitions),
# and mksquashfs alone on the same root: what the build costs beyond the squashfs itself.
if id spacktainerizah-user >/dev/null 2>&1; then
    chmod 0777 "$WORK"
    cp "$stz" "$WORK/singularitah"
    log "singularitah sif build as an ordinary user"
    measure "sif build of a ${SIZE_MB} MB image as an ordinary user" \
        runuser -u spacktainerizah-user -- env HOME="$WORK" "$WORK/singularitah" -q sif build \
        "127.0.0.1:$port/bench:1" --arch amd64 -o "$WORK/user.sif"
    rm -f "$WORK/user.sif"
fi
SIFTOOL=$CACHE_DIR/bin/siftool
if [ -x "$SIFTOOL" ]; then
    "$SIFTOOL" dump 4 "$WORK/bench__1.0.sif" >"$WORK/part.squashfs"
    unsquashfs -q -d "$WORK/root" "$WORK/part.squashfs" >/dev/null
    rm -f "$WORK/part.squashfs"
    log "mksquashfs alone on the same root"
    measure "mksquashfs alone on the same root" mksquashfs "$WORK/root" "$WORK/alone.squashfs" \
        -comp gzip -noappend -quiet -no-progress -mem 128M
    rm -rf "$WORK/root" "$WORK/alone.squashfs"
fi

log "singularitah sif publish to a directory"
mkdir -p "$WORK/dir"
measure "sif publish to a directory" "$stz" -q sif publish "$WORK/bench__1.0.sif" --to "$WORK/dir/"

if [ -x "$VENV/bin/moto_server" ]; then
    run_moto() { exec "$VENV/bin/moto_server" -H 127.0.0.1 -p "$1"; }
    s3_up() { curl -sf "http://127.0.0.1:$1/"; }
    serve s3 "$WORK/s3.log" s3_up run_moto
    s3_port=$SERVED_PORT
    curl -sf -X PUT "http://127.0.0.1:$s3_port/bench" >/dev/null
    export BENCH_AK=bench BENCH_SK=bench
    s3=(--s3-endpoint-url "http://127.0.0.1:$s3_port" --access-key-env BENCH_AK --secret-key-env BENCH_SK)
    log "singularitah sif publish to S3 (moto), 64 MiB parts"
    measure "sif publish to S3 (multipart)" "$stz" -q sif publish "$WORK/bench__1.0.sif" \
        --to s3://bench/containers/bench__1.0.sif "${s3[@]}"
    log "singularitah sif sync from S3 into a directory"
    mkdir -p "$WORK/shared"
    measure "sif sync from S3 (one SIF copied)" "$stz" -q sif sync --from s3://bench/containers --to "$WORK/shared" "${s3[@]}"
    measure "sif sync from S3 (up to date)" "$stz" -q sif sync --from s3://bench/containers --to "$WORK/shared" "${s3[@]}"
else
    log "no moto in $VENV (scripts/test.sh installs it): S3 publish and sync not measured"
fi
