#!/usr/bin/env bash
# Benchmark `singularitah sif build`: an image of SIZE_MB of incompressible files in two layers,
# made locally with umoci and pushed to a local docker-registry, made into a SIF; wall time and
# peak memory (the layers are streamed to disk, so memory must not grow with the image).
#
# Usage: scripts/bench-sif.sh [SIZE_MB]   (default 500; needs what scripts/test.sh installs)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SIZE_MB=${1:-500}
CACHE_DIR=${XDG_CACHE_HOME:-$HOME/.cache}/spacktainerizah
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$CACHE_DIR/target/$(printf %s "$ROOT" | sha256sum | cut -c1-12)}
WORK=$(mktemp -d /var/tmp/stz-bench-sif.XXXXXX)
REGISTRY_PID=
trap '[ -n "$REGISTRY_PID" ] && kill "$REGISTRY_PID" 2>/dev/null; rm -rf "$WORK"' EXIT

log() { printf '==> %s\n' "$*" >&2; }
command -v /usr/bin/time >/dev/null || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$WORK/registry.yml" <<YML
version: 0.1
storage: {filesystem: {rootdirectory: $WORK/registry}}
http: {addr: 127.0.0.1:$port}
YML
docker-registry serve "$WORK/registry.yml" >"$WORK/registry.log" 2>&1 &
REGISTRY_PID=$!

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

log "singularitah sif build"
/usr/bin/time -f '%e s wall, %M KiB peak RSS' -o "$WORK/time" \
    "$CARGO_TARGET_DIR/release/singularitah" -q sif build "127.0.0.1:$port/bench:1" --arch amd64 -o "$WORK/bench.sif"
echo "sif build of a ${SIZE_MB} MB image: $(cat "$WORK/time"); SIF $(du -m "$WORK/bench.sif" | cut -f1) MB"
