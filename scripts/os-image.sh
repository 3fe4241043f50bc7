#!/usr/bin/env bash
# A real Debian base image without pulling anything: debootstrap (minbase) once per architecture
# into the cache folder, then import it into the daemon at $DOCKER_HOST and push it as IMAGE (a
# local registry). Prints IMAGE.
# Usage: scripts/os-image.sh [--arch ARCH] REGISTRY/NAME:TAG [SUITE]
#   --arch  Debian's name of the architecture (amd64, arm64), this machine's by default; another
#           one needs its code to run here (qemu-user registered with binfmt_misc with the F
#           flag: services.sh's enable_arm64_emulation)
set -euo pipefail

host_arch=$(dpkg --print-architecture 2>/dev/null || echo amd64)
arch=$host_arch
while [ $# -gt 0 ]; do
    case $1 in
        --arch) arch=${2:?--arch needs amd64 or arm64}; shift 2 ;;
        *) break ;;
    esac
done
[ $# -ge 1 ] || { echo "usage: $0 [--arch amd64|arm64] REGISTRY/NAME:TAG [SUITE]" >&2; exit 2; }
image=$1
suite=${2:-bookworm}
cache=${XDG_CACHE_HOME:-$HOME/.cache}/spacktainerizah/os
# amd64 keeps the name it had before there were others, so existing caches stay valid.
case $arch in
    amd64) tarball=$cache/$suite-minbase.tar ;;
    *) tarball=$cache/$suite-minbase-$arch.tar ;;
esac
log() { echo "==> $*" >&2; }

# The mirror this machine's apt already uses (deb822 or one-line sources), else Debian's.
mirror() {
    local uri
    uri=$(grep -hsE '^(URIs:|deb )' /etc/apt/sources.list.d/* /etc/apt/sources.list 2>/dev/null \
        | grep -v security | grep -oE 'https?://[^ ]+' | head -n1 || true)
    echo "${uri:-http://deb.debian.org/debian}"
}

# What debootstrap's second stage (run inside the root under emulation) mounted there.
unmount_under() { # dir
    grep -o " $1/[^ ]*" /proc/mounts 2>/dev/null | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
}

if [ ! -s "$tarball" ]; then
    command -v debootstrap >/dev/null || {
        log "installing debootstrap"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
    }
    mkdir -p "$cache"
    rootfs=$(mktemp -d "$cache/rootfs.XXXXXX")
    trap 'unmount_under "$rootfs"; rm -rf "$rootfs"' EXIT
    debootstrap_log=$cache/debootstrap-$arch.log
    failed() {
        tail -n 20 "$debootstrap_log" >&2
        exit 1
    }
    log "debootstrap $suite for $arch from $(mirror) (once per machine)"
    if [ "$arch" = "$host_arch" ]; then
        debootstrap --variant=minbase "$suite" "$rootfs" "$(mirror)" >"$debootstrap_log" 2>&1 || failed
    else
        # The second stage runs the packages' own maintainer scripts, so it runs the target's
        # code: through binfmt_misc, whose F flag lets the chroot use the host's qemu without a
        # copy inside the image.
        debootstrap --arch "$arch" --foreign --variant=minbase "$suite" "$rootfs" "$(mirror)" \
            >"$debootstrap_log" 2>&1 || failed
        log "debootstrap's second stage for $arch, under emulation"
        chroot "$rootfs" /debootstrap/debootstrap --second-stage >>"$debootstrap_log" 2>&1 || failed
        unmount_under "$rootfs"
    fi
    # apt's lists are stale the moment they are written; images run apt-get update anyway.
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin
    tar --numeric-owner -C "$rootfs" -cf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
    rm -rf "$rootfs"
fi

# The daemon may hold an image of that name for another architecture (a run before this one was
# given --arch), which it would push as it is.
if [ "$(docker image inspect -f '{{.Architecture}}' "$image" 2>/dev/null)" != "$arch" ]; then
    log "importing $tarball as $image (linux/$arch)"
    if [ "$arch" = "$host_arch" ]; then
        docker import --change 'CMD ["/bin/bash"]' "$tarball" "$image" >/dev/null
    else
        # Docker 20.10 (Debian 12's) records its own architecture on whatever `docker import`
        # makes, --platform or not: the image is written as an OCI layout of that
        # architecture, pushed, and pulled back into the daemon.
        layout=$(mktemp -d "$cache/oci.XXXXXX")
        trap 'rm -rf "$layout"' EXIT
        umoci init --layout "$layout/image"
        umoci new --image "$layout/image:$arch"
        umoci config --image "$layout/image:$arch" --no-history --os linux --architecture "$arch" \
            --config.cmd /bin/bash
        umoci raw add-layer --image "$layout/image:$arch" \
            --history.created_by "debootstrap --arch $arch --variant=minbase $suite" "$tarball"
        skopeo copy -q --dest-tls-verify=false "oci:$layout/image:$arch" "docker://$image" >&2
        docker pull -q --platform "linux/$arch" "$image" >/dev/null
    fi
fi
docker push -q "$image" >/dev/null
echo "$image"
