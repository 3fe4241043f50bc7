# shellcheck shell=bash
# Sourced by the test command and the end-to-end run: installs what is missing (Debian
# packages, a moto S3 server and clingo in a virtualenv, gitlab-ci-local) and starts on
# 127.0.0.1 an S3 server, OCI registries and a Docker daemon on a private socket (and on TCP
# with TLS), stopped again when the sourcing script exits; makes arm64 code run here (qemu-user
# through binfmt_misc). Defines install_packages, start_services, make_os_image and work_folder;
# exports the SPACKTAINERIZAH_TEST_* variables the tests read.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE_DIR=${XDG_CACHE_HOME:-$HOME/.cache}/spacktainerizah
# One build folder per checkout: cargo would otherwise reuse what another clone compiled.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$CACHE_DIR/target/$(printf %s "$ROOT" | sha256sum | cut -c1-12)}
VENV=$CACHE_DIR/venv
SIFTOOL=$CACHE_DIR/bin/siftool
RUN_DIR=$(mktemp -d /tmp/stz.XXXXXX)
# shellcheck source=scripts/serve.sh
. "$ROOT/scripts/serve.sh"
# The work folder work_folder made, removed when the script succeeds.
MADE_WORK=
# The unprivileged user SIFs are run as (Apptainer refuses to run as root here).
APPTAINER_USER=spacktainerizah-user

log() { printf '==> %s\n' "$*" >&2; }

cleanup() { # [status]
    local status=${1:-$?}
    trap - EXIT INT TERM
    stop_servers
    # dockerd leaves overlay mounts behind when killed hard; unmount before removing.
    grep -o "${RUN_DIR}[^ ]*" /proc/mounts 2>/dev/null | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    # What a failed run leaves to read (its logs, the end-to-end work folders) outlives it; the
    # services' data goes.
    if [ "$status" != 0 ] && compgen -G "$RUN_DIR/*.log" >/dev/null; then
        local kept
        kept=$(mktemp -d /tmp/stz-failed.XXXXXX)
        mv "$RUN_DIR"/*.log "$kept"/ 2>/dev/null || true
        for work in "$RUN_DIR"/e2e-*/; do
            [ -d "$work" ] && mv "$work" "$kept"/
        done
        log "kept the logs and end-to-end work folders of the failed run: $kept"
    fi
    rm -rf "$RUN_DIR"
    if [ -n "$MADE_WORK" ]; then
        if [ "$status" = 0 ]; then rm -rf "$MADE_WORK"; else log "kept the work folder: $MADE_WORK"; fi
    fi
    exit "$status"
}
trap cleanup EXIT
# Interrupted is failed, whatever the status of the last command.
trap 'cleanup 130' INT
trap 'cleanup 143' TERM

# Stop before the first step when the disk cannot hold the run (GB, what a run from an empty
# cache adds at its peak): a full disk fails a run late, in mksquashfs or dockerd, with errors
# that name neither the disk nor the run. What the cache already holds counts as written.
check_free_space() { # GB
    local need=$1 dir=$CACHE_DIR held=0 free mount
    [ -d "$dir" ] && held=$(du -s -BG "$dir" 2>/dev/null | awk '{print $1+0}')
    need=$((need > held ? need - held : 0))
    while [ ! -d "$dir" ]; do dir=$(dirname "$dir"); done
    for dir in "$dir" /tmp; do
        free=$(df -P -BG "$dir" | awk 'NR==2 {print $4+0}')
        mount=$(df -P "$dir" | awk 'NR==2 {print $6}')
        if [ "$free" -lt "$need" ]; then
            log "only $free GB free on $mount ($dir): this run needs about $need GB more (the build in $CACHE_DIR, Docker's images and the end-to-end runs in /tmp); free some space first"
            exit 1
        fi
    done
}

# The script's work folder, in WORK: DIR when given, left as it is; else a new folder under
# /tmp, removed when the script succeeds and kept, its path printed, when it fails.
work_folder() { # NAME [DIR]
    if [ -n "${2:-}" ]; then
        mkdir -p "$2"
        WORK=$(cd "$2" && pwd)
    else
        WORK=$(mktemp -d "/tmp/stz-$1.XXXXXX")
        MADE_WORK=$WORK
    fi
}

install_packages() {
    local missing=()
    command -v docker-registry >/dev/null || missing+=(docker-registry)
    [ -x /usr/sbin/dockerd ] || missing+=(docker.io)
    command -v skopeo >/dev/null || missing+=(skopeo)
    command -v umoci >/dev/null || missing+=(umoci)
    [ -x /bin/busybox ] || missing+=(busybox-static)
    command -v mksquashfs >/dev/null || missing+=(squashfs-tools)
    command -v jq >/dev/null || missing+=(jq)
    command -v htpasswd >/dev/null || missing+=(apache2-utils)
    command -v go >/dev/null || missing+=(golang-go)
    [ -d /usr/share/gocode/src/github.com/sylabs/sif ] || missing+=(golang-github-sylabs-sif-dev)
    command -v shellcheck >/dev/null || missing+=(shellcheck)
    command -v ss >/dev/null || missing+=(iproute2)
    # arm64 images are built and run here under emulation (enable_arm64_emulation).
    [ "$(uname -m)" = aarch64 ] || [ -f "$QEMU_AARCH64_BINFMT" ] || missing+=(qemu-user-static)
    # The arm64 images' tools are cross-compiled (the linker, and the C of ring and aws-lc-sys).
    command -v aarch64-linux-gnu-gcc >/dev/null || missing+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
    # Signing keys and signatures in the tests and the end-to-end run (Spack signs with gpg too).
    { command -v gpg && command -v gpg-agent; } >/dev/null || missing+=(gnupg)
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
    enable_arm64_emulation
    if [ ! -x "$SIFTOOL" ] || [ "$ROOT/scripts/siftool/main.go" -nt "$SIFTOOL" ]; then
        log "building the reference siftool"
        mkdir -p "$(dirname "$SIFTOOL")"
        (cd "$ROOT/scripts/siftool" && GO111MODULE=off GOPATH="$CACHE_DIR/gopath:/usr/share/gocode" \
            GOCACHE="$CACHE_DIR/gocache" go build -o "$SIFTOOL" main.go)
    fi
    # Apptainer, built for these machines in the workplace's shared tools, runs SIFs as a
    # cluster does: as an unprivileged user with subordinate ids.
    local shared=${SPACKTAINERIZAH_SHARED_TOOLS:-$ROOT/../shared/tools}
    local apptainer_tar=$shared/apptainer/apptainer-1.4.5-debian12-amd64.tar.xz
    if [ -f "$apptainer_tar" ] && [ ! -x /opt/apptainer/bin/apptainer ]; then
        log "installing Apptainer 1.4.5 from the shared tools"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libsubid4 \
            libseccomp2 libsqlite3-0 libsemanage2 libpam0g uidmap fuse3 squashfuse fuse-overlayfs >/dev/null
        tar -C /opt -xJf "$apptainer_tar"
    fi
    if ! id "$APPTAINER_USER" >/dev/null 2>&1; then
        useradd --create-home --shell /bin/sh "$APPTAINER_USER"
    fi
    grep -q "^$APPTAINER_USER:" /etc/subuid 2>/dev/null || echo "$APPTAINER_USER:200000:65536" >>/etc/subuid
    grep -q "^$APPTAINER_USER:" /etc/subgid 2>/dev/null || echo "$APPTAINER_USER:200000:65536" >>/etc/subgid
    # squashfuse mounts SIFs for unprivileged users through /dev/fuse, which distributions
    # leave open to all (0666); some sandboxes do not.
    [ ! -e /dev/fuse ] || chmod 0666 /dev/fuse
    # gitlab-ci-local reads the generated CI files as GitLab would (4.56+ needs Node 22).
    if [ ! -x "$CACHE_DIR/npm/node_modules/.bin/gitlab-ci-local" ]; then
        command -v npm >/dev/null || {
            log "installing npm"
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null
        }
        log "installing gitlab-ci-local into $CACHE_DIR/npm"
        mkdir -p "$CACHE_DIR/npm"
        (cd "$CACHE_DIR/npm" && npm install --silent --no-audit --no-fund gitlab-ci-local@4.55)
    fi
    if [ ! -x "$VENV/bin/moto_server" ] || ! "$VENV/bin/python" -c 'import clingo, boto3' 2>/dev/null; then
        log "installing the moto S3 server, and clingo for real Spack, into $VENV"
        python3 -m venv "$VENV"
        "$VENV/bin/pip" install -q 'moto[s3]>=5,<6' flask flask-cors clingo boto3
    fi
    # The third-party validators of the SBOM and provenance (tests/tests/attest.rs): the SPDX
    # project's own (pyspdxtools), JSON Schema, and in-toto's own Statement/Provenance types.
    if [ ! -x "$VENV/bin/pyspdxtools" ] \
        || ! "$VENV/bin/python" -c 'import jsonschema, in_toto_attestation' 2>/dev/null; then
        log "installing spdx-tools, jsonschema and in-toto-attestation into $VENV"
        "$VENV/bin/pip" install -q 'spdx-tools==0.8.5' 'jsonschema==4.26.0' \
            'in-toto-attestation==0.9.3'
    fi
}

# Debian's registration of qemu-aarch64 for binfmt_misc, as systemd-binfmt would write it.
QEMU_AARCH64_BINFMT=/usr/lib/binfmt.d/qemu-aarch64.conf

# A static aarch64 program that exits with 42: registration alone does not prove the kernel runs
# aarch64 code (a sandbox may accept the entry and still refuse to execute through it).
AARCH64_EXIT_42='\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00\x01\x00\x00\x00\x78\x00\x40\x00\x00\x00\x00\x00\x40\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x40\x00\x38\x00\x01\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x05\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x40\x00\x00\x00\x00\x00\x00\x00\x40\x00\x00\x00\x00\x00\x84\x00\x00\x00\x00\x00\x00\x00\x84\x00\x00\x00\x00\x00\x00\x00\x00\x10\x00\x00\x00\x00\x00\x00\x40\x05\x80\xd2\xa8\x0b\x80\xd2\x01\x00\x00\xd4'

arm64_not_run() { # reason
    export SPACKTAINERIZAH_TEST_ARM64_NOT_RUN="$*"
    log "arm64 tests will not run: $*"
}

# arm64 code runs on this machine, natively or through qemu-user registered with binfmt_misc,
# so that arm64 images are built (RUN steps, debootstrap's second stage) and run here. No
# systemd runs here to apply Debian's binfmt.d entry, so it is written to the kernel directly,
# with the F flag kept: the kernel then opens the interpreter once, at registration, and
# containers, which do not have the host's qemu in their root, can still use it. When this is
# impossible (no permission, a kernel without binfmt_misc) the run goes on without arm64:
# SPACKTAINERIZAH_TEST_ARM64_NOT_RUN says why, and the arm64 tests print it as NOT RUN.
# Otherwise SPACKTAINERIZAH_TEST_ARM64 says how arm64 code runs (native, qemu).
enable_arm64_emulation() {
    local dir=/proc/sys/fs/binfmt_misc entry=/proc/sys/fs/binfmt_misc/qemu-aarch64 probe status error
    unset SPACKTAINERIZAH_TEST_ARM64 SPACKTAINERIZAH_TEST_ARM64_NOT_RUN
    if [ "$(uname -m)" = aarch64 ]; then
        export SPACKTAINERIZAH_TEST_ARM64=native
        return 0
    fi
    if [ ! -f "$QEMU_AARCH64_BINFMT" ]; then
        arm64_not_run "$QEMU_AARCH64_BINFMT is missing (Debian's qemu-user-static)"
        return 0
    fi
    if [ ! -e "$dir/register" ] && ! mount -t binfmt_misc binfmt_misc "$dir" 2>/dev/null; then
        arm64_not_run "binfmt_misc cannot be mounted at $dir"
        return 0
    fi
    # An entry without F (registered by hand, or from an older package) makes the kernel look
    # for the interpreter inside each container's root, where there is none.
    if [ -e "$entry" ] && ! { grep -qx enabled "$entry" && grep -q '^flags:.*F' "$entry"; }; then
        log "replacing the binfmt_misc entry qemu-aarch64 (disabled or without the F flag)"
        error=$({ echo -1 >"$entry"; } 2>&1) || {
            arm64_not_run "the stale binfmt_misc entry $entry cannot be removed: ${error##*: }"
            return 0
        }
    fi
    if [ ! -e "$entry" ]; then
        # One registration line: a blank line or comment written to `register` is refused.
        error=$({ grep -vE '^(#|$)' "$QEMU_AARCH64_BINFMT" >"$dir/register"; } 2>&1) || {
            arm64_not_run "the kernel refused to register qemu-aarch64 with binfmt_misc: ${error##*: }"
            return 0
        }
    fi
    # Not under /tmp, which may be mounted noexec.
    mkdir -p "$CACHE_DIR"
    probe=$(mktemp "$CACHE_DIR/aarch64-probe.XXXXXX")
    printf '%b' "$AARCH64_EXIT_42" >"$probe"
    chmod +x "$probe"
    status=0
    "$probe" 2>/dev/null || status=$?
    rm -f "$probe"
    if [ "$status" != 42 ]; then
        arm64_not_run "qemu-aarch64 is registered but an aarch64 program does not run (exit $status)"
        return 0
    fi
    export SPACKTAINERIZAH_TEST_ARM64=qemu
    log "arm64 code runs here through $(sed -n 's/^interpreter //p' "$entry") (binfmt_misc, flags: $(sed -n 's/^flags: //p' "$entry"))"
}

# A CA, a server certificate for 127.0.0.1 and a client certificate, laid out as Docker's
# clients expect them (DOCKER_CERT_PATH holds ca.pem, cert.pem, key.pem).
docker_certs() { # dir
    local d=$1
    mkdir -p "$d/client"
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=spacktainerizah-test-ca \
        -keyout "$d/ca-key.pem" -out "$d/ca.pem" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout "$d/server-key.pem" \
        -out "$d/server.csr" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >"$d/server.ext"
    openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca-key.pem" -CAcreateserial \
        -days 2 -extfile "$d/server.ext" -out "$d/server-cert.pem" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj /CN=client -keyout "$d/client/key.pem" \
        -out "$d/client.csr" 2>/dev/null
    printf 'extendedKeyUsage=clientAuth\n' >"$d/client.ext"
    openssl x509 -req -in "$d/client.csr" -CA "$d/ca.pem" -CAkey "$d/ca-key.pem" -CAcreateserial \
        -days 2 -extfile "$d/client.ext" -out "$d/client/cert.pem" 2>/dev/null
    cp "$d/ca.pem" "$d/client/ca.pem"
}

# The servers, each exec'd by serve on the port it gives as the first argument.
run_moto() { # port host
    exec "$VENV/bin/moto_server" -H "$2" -p "$1"
}

run_registry() { # port name [auth: YAML]
    mkdir -p "$RUN_DIR/$2"
    cat >"$RUN_DIR/$2.yml" <<YAML
version: 0.1
log: {level: warn}
storage:
  filesystem: {rootdirectory: $RUN_DIR/$2}
  delete: {enabled: true}
http:
  addr: 127.0.0.1:$1
${3:-}
YAML
    exec docker-registry serve "$RUN_DIR/$2.yml"
}

run_token_server() { # port
    exec "$VENV/bin/python" "$ROOT/scripts/token-server.py" "$1" "$RUN_DIR/token-key.pem" \
        "$RUN_DIR/token-cert.pem" test-issuer "$SPACKTAINERIZAH_TEST_REGISTRY_USER" \
        "$SPACKTAINERIZAH_TEST_REGISTRY_PASSWORD"
}

# dockerd on a private socket, and on TCP with TLS as a Docker-in-Docker service listens.
run_dockerd() { # port
    exec /usr/sbin/dockerd --host "unix://$RUN_DIR/docker.sock" --host "tcp://127.0.0.1:$1" \
        --tlsverify --tlscacert "$RUN_DIR/docker-certs/ca.pem" \
        --tlscert "$RUN_DIR/docker-certs/server-cert.pem" --tlskey "$RUN_DIR/docker-certs/server-key.pem" \
        --data-root "$RUN_DIR/docker" --exec-root "$RUN_DIR/exec" --pidfile "$RUN_DIR/docker.pid"
}

# Whether each answers on its port.
s3_up() { curl -sf "http://127.0.0.1:$1/"; }
registry_up() { curl -sf "http://127.0.0.1:$1/v2/"; }
auth_registry_up() {
    curl -sf -u "$SPACKTAINERIZAH_TEST_REGISTRY_USER:$SPACKTAINERIZAH_TEST_REGISTRY_PASSWORD" "http://127.0.0.1:$1/v2/"
}
token_server_up() { curl -sf "http://127.0.0.1:$1/token?service=x"; }
# Without a token it says 401, which is an answer.
token_registry_up() { curl -s -o /dev/null "http://127.0.0.1:$1/v2/"; }
# The daemon answers on its socket; serve checks that the TCP port is its own.
docker_up() { curl -sf --unix-socket "$RUN_DIR/docker.sock" http://localhost/_ping; }

start_services() {
    local s3_port registry_port auth_port token_port token_registry_port docker_tls_port
    serve s3 "$RUN_DIR/s3.log" s3_up run_moto 127.0.0.1
    s3_port=$SERVED_PORT

    serve registry "$RUN_DIR/registry.log" registry_up run_registry registry
    registry_port=$SERVED_PORT

    # A second registry that wants a login (htpasswd); the password is a test value.
    export SPACKTAINERIZAH_TEST_REGISTRY_USER=tester SPACKTAINERIZAH_TEST_REGISTRY_PASSWORD=test-password
    htpasswd -Bbn "$SPACKTAINERIZAH_TEST_REGISTRY_USER" "$SPACKTAINERIZAH_TEST_REGISTRY_PASSWORD" >"$RUN_DIR/htpasswd"
    serve auth-registry "$RUN_DIR/auth-registry.log" auth_registry_up run_registry auth-registry "auth:
  htpasswd: {realm: spacktainerizah-tests, path: $RUN_DIR/htpasswd}"
    auth_port=$SERVED_PORT

    # A third registry with token auth, and its token server (RS256 JWTs with an x5c header).
    openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=spacktainerizah-test-tokens \
        -keyout "$RUN_DIR/token-key.pem" -out "$RUN_DIR/token-cert.pem" 2>/dev/null
    serve token-server "$RUN_DIR/token-server.log" token_server_up run_token_server
    token_port=$SERVED_PORT
    serve token-registry "$RUN_DIR/token-registry.log" token_registry_up run_registry token-registry "auth:
  token:
    realm: http://127.0.0.1:$token_port/token
    service: spacktainerizah-test-registry
    issuer: test-issuer
    rootcertbundle: $RUN_DIR/token-cert.pem"
    token_registry_port=$SERVED_PORT

    docker_certs "$RUN_DIR/docker-certs"
    serve docker "$RUN_DIR/docker.log" docker_up run_dockerd
    docker_tls_port=$SERVED_PORT

    export SPACKTAINERIZAH_TEST_S3_ENDPOINT="http://127.0.0.1:$s3_port"
    export SPACKTAINERIZAH_TEST_REGISTRY="127.0.0.1:$registry_port"
    export SPACKTAINERIZAH_TEST_AUTH_REGISTRY="127.0.0.1:$auth_port"
    export SPACKTAINERIZAH_TEST_TOKEN_REGISTRY="127.0.0.1:$token_registry_port"
    export SPACKTAINERIZAH_TEST_SIFTOOL="$SIFTOOL"
    if [ -x /opt/apptainer/bin/apptainer ]; then
        export SPACKTAINERIZAH_TEST_APPTAINER=/opt/apptainer/bin/apptainer
        export SPACKTAINERIZAH_TEST_APPTAINER_USER=$APPTAINER_USER
    fi
    export SPACKTAINERIZAH_TEST_GITLAB_CI_LOCAL="$CACHE_DIR/npm/node_modules/.bin/gitlab-ci-local"
    # Real Spack runs under the virtualenv's Python (clingo, boto3).
    export SPACKTAINERIZAH_TEST_PYTHON="$VENV/bin/python"
    # The workplace's shared tools (real Spack, Apptainer), when the checkout sits beside them.
    if [ -d "$ROOT/../shared/tools" ]; then
        SPACKTAINERIZAH_SHARED_TOOLS=$(cd "$ROOT/../shared/tools" && pwd)
        export SPACKTAINERIZAH_SHARED_TOOLS
    fi
    export SPACKTAINERIZAH_TEST_DOCKER_HOST="unix://$RUN_DIR/docker.sock"
    export SPACKTAINERIZAH_TEST_DOCKER_TLS_HOST="tcp://127.0.0.1:$docker_tls_port"
    export SPACKTAINERIZAH_TEST_DOCKER_CERT_PATH="$RUN_DIR/docker-certs/client"
    export DOCKER_HOST="unix://$RUN_DIR/docker.sock"
    # moto accepts any key pair; these are test values, not secrets.
    export SPACKTAINERIZAH_TEST_ACCESS_KEY=test-access-key
    export SPACKTAINERIZAH_TEST_SECRET_KEY=test-secret-key
    export AWS_ACCESS_KEY_ID=$SPACKTAINERIZAH_TEST_ACCESS_KEY
    export AWS_SECRET_ACCESS_KEY=$SPACKTAINERIZAH_TEST_SECRET_KEY
    export AWS_REGION=us-east-1
    # Never ask a cloud metadata endpoint for credentials.
    export AWS_EC2_METADATA_DISABLED=true
    log "services: S3 $SPACKTAINERIZAH_TEST_S3_ENDPOINT, registry $SPACKTAINERIZAH_TEST_REGISTRY, docker $DOCKER_HOST"
}

# A real Debian base (debootstrap once per machine, imported, pushed to the local registry): the
# os_image the real builder, runtime and tools images are built from.
# With arm64 code emulated here, the same for arm64 (SPACKTAINERIZAH_TEST_OS_IMAGE_ARM64) and an
# index of both (SPACKTAINERIZAH_TEST_OS_IMAGE_MULTIARCH): the configuration has one os_image
# for every architecture, which must therefore be an index.
make_os_image() {
    SPACKTAINERIZAH_TEST_OS_IMAGE=$("$ROOT/scripts/os-image.sh" "$SPACKTAINERIZAH_TEST_REGISTRY/debian:bookworm")
    export SPACKTAINERIZAH_TEST_OS_IMAGE
    if [ "${SPACKTAINERIZAH_TEST_ARM64:-}" = native ]; then
        export SPACKTAINERIZAH_TEST_OS_IMAGE_ARM64=$SPACKTAINERIZAH_TEST_OS_IMAGE
    elif [ -n "${SPACKTAINERIZAH_TEST_ARM64:-}" ]; then
        # Without the arm64 base (its packages not on this machine's mirror, say) only the
        # arm64 tests cannot run: they say so.
        if ! SPACKTAINERIZAH_TEST_OS_IMAGE_ARM64=$("$ROOT/scripts/os-image.sh" --arch arm64 \
            "$SPACKTAINERIZAH_TEST_REGISTRY/debian:bookworm-arm64"); then
            arm64_not_run "the arm64 Debian base could not be made (scripts/os-image.sh --arch arm64)"
            return 0
        fi
        if ! SPACKTAINERIZAH_TEST_OS_IMAGE_MULTIARCH=$(push_image_index \
            "$SPACKTAINERIZAH_TEST_REGISTRY/debian:bookworm-multiarch" \
            "$SPACKTAINERIZAH_TEST_OS_IMAGE" "$SPACKTAINERIZAH_TEST_OS_IMAGE_ARM64"); then
            arm64_not_run "the index of the amd64 and arm64 Debian bases could not be pushed"
            return 0
        fi
        export SPACKTAINERIZAH_TEST_OS_IMAGE_ARM64 SPACKTAINERIZAH_TEST_OS_IMAGE_MULTIARCH
    fi
}

# An image index (a Docker manifest list) at INDEX over IMAGES, each of one platform, all in
# INDEX's repository of a registry the test command started (plain HTTP, no login). Built by
# hand: BuildKit resolves FROM for the target's platform, and takes a single-platform image as
# it is, so an arm64 build from an amd64 image makes an image labelled arm64 that runs x86_64
# programs; Docker 20.10 has no way of its own to write an index (`docker manifest` is
# experimental there). Prints INDEX.
push_image_index() { # REGISTRY/NAME:TAG IMAGE...
    local index=$1 registry repo image manifests=() body headers config platform
    shift
    registry=${index%%/*}
    repo=${index#*/}
    repo=${repo%:*}
    body=$(mktemp "$RUN_DIR/manifest.XXXXXX")
    headers=$(mktemp "$RUN_DIR/headers.XXXXXX")
    for image in "$@"; do
        [ "${image%:*}" = "$registry/$repo" ] || { log "$image is not in $registry/$repo"; return 1; }
        curl -fsS -D "$headers" -o "$body" \
            -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
            -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
            "http://$registry/v2/$repo/manifests/${image##*:}" || return 1
        config=$(jq -r .config.digest "$body") || return 1
        platform=$(set -o pipefail
            curl -fsS "http://$registry/v2/$repo/blobs/$config" | jq -c '{architecture, os}') || return 1
        manifests+=("$(jq -n --arg type "$(sed -n 's/^content-type: *//Ip' "$headers" | tr -d '\r')" \
            --arg digest "sha256:$(sha256sum "$body" | cut -d' ' -f1)" --argjson size "$(stat -c %s "$body")" \
            --argjson platform "$platform" \
            '{mediaType: $type, digest: $digest, size: $size, platform: $platform}')") || return 1
    done
    # Called as $(...), where errexit does not hold: every step's failure is returned.
    set -o pipefail
    printf '%s\n' "${manifests[@]}" \
        | jq -s '{schemaVersion: 2,
                  mediaType: "application/vnd.docker.distribution.manifest.list.v2+json",
                  manifests: .}' \
        | curl -fsS -X PUT -H 'Content-Type: application/vnd.docker.distribution.manifest.list.v2+json' \
            --data-binary @- "http://$registry/v2/$repo/manifests/${index##*:}" >/dev/null || return 1
    rm -f "$body" "$headers"
    echo "$index"
}
