#!/usr/bin/env bash
# A real Debian base image without pulling anything: debootstrap (minbase) once into the cache
# folder, then import it into the daemon at $DOCKER_HOST and push it as IMAGE (a local registry).
# Prints IMAGE. Usage: scripts/os-image.sh REGISTRY/NAME:TAG [SUITE]
set -euo pipefail

image=$1
suite=${2:-bookworm}
cache=${XDG_CACHE_HOME:-$HOME/.cache}/spacktainerizah/os
tarball=$cache/$suite-minbase.tar
log() { echo "==> $*" >&2; }

# The mirror this machine's apt already uses (deb822 or one-line sources), else Debian's.
mirror() {
    local uri
    uri=$(grep -hsE '^(URIs:|deb )' /etc/apt/sources.list.d/* /etc/apt/sources.list 2>/dev/null \
        | grep -v security | grep -oE 'https?://[^ ]+' | head -n1 || true)
    echo "${uri:-http://deb.debian.org/debian}"
}

if [ ! -s "$tarball" ]; then
    command -v debootstrap >/dev/null || {
        log "installing debootstrap"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
    }
    mkdir -p "$cache"
    rootfs=$(mktemp -d "$cache/rootfs.XXXXXX")
    log "debootstrap $suite from $(mirror) (once per machine)"
    debootstrap --variant=minbase "$suite" "$rootfs" "$(mirror)" >"$cache/debootstrap.log" 2>&1 || {
        tail -n 20 "$cache/debootstrap.log" >&2
        exit 1
    }
    # apt's lists are stale the moment they are written; images run apt-get update anyway.
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin
    tar --numeric-owner -C "$rootfs" -cf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
    rm -rf "$rootfs"
fi

if ! docker image inspect "$image" >/dev/null 2>&1; then
    log "importing $tarball as $image"
    docker import --change 'CMD ["/bin/bash"]' "$tarball" "$image" >/dev/null
fi
docker push -q "$image" >/dev/null
echo "$image"
