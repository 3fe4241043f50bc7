#!/usr/bin/env bash
# The whole product for real, as GitLab would run it: a definitions repository made from
# examples/ (the `greeter` container of the example packages, built offline), its chain written
# by `spack-cacher chain`, run job by job by a test-only GitLab runner (tests/src/runner/) on
# the real Docker daemon: base images from a real Debian and real Spack, the build cache filled
# by Spack's own generated jobs, the container built from that cache and pushed, its SIF
# published and synced, the cache cleaned. The default branch's cache is signed with a canary key
# handed over as a protected variable. Then checked: every package in the cache is signed, the
# program runs from the image and from the SIF, real Spack installs the environment from the
# cleaned cache with signature checks, a tampered copy of the cache fails the container build, a
# second push does nothing, a schedule runs only the janitors and the cache still serves, a merge
# request fills its unsigned branch cache, and the canary key is nowhere: not in job logs,
# artifacts, generated YAML, images or SIFs.
#
# Usage: scripts/e2e.sh [--spack VERSION] [--s3] [--arch amd64|arm64] [--work DIR]
#   --spack   0.23.1 (build-cache layout v2, the default) or 1.0.2 (v3)
#   --s3      the build cache and SIFs in S3 (a moto server); default: folders under --work
#   --arch    arm64: the configuration gets an arm64 architecture beside amd64 (its own runner
#             tag, base requirement and build caches), the definitions the greeter for both,
#             the release tools image both architectures' tools (the arm64 ones cross-compiled),
#             and the pipeline a second runner, on an "arm64 machine": its jobs' containers run
#             as linux/arm64, emulated (qemu-user-static through binfmt_misc). Checked: the
#             greeter's arm64 image and its arm64 SIF print the program's output (the image
#             with `docker run --platform linux/arm64`, the SIF from its root and in
#             Apptainer), the multi-architecture indexes of the base images and of the greeter
#             serve both, both caches are signed; the figures give each stage's time. Spack is
#             slow under emulation, so the arm64 run is lean: the first pipeline and those
#             checks only (no tampering, second push, schedule, merge request or canary
#             search: they are not about the architecture, and the amd64 run does them);
#             folders only (no --s3).
#   --work    where everything goes, kept (default: a new folder under /tmp, removed when the
#             run succeeds and kept, its path printed, when it fails)
# Alone it installs and starts what it needs (registry, Docker daemon); the test command runs
# it with its own services.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SPACK_VERSION=0.23.1
STORAGE='file'
ARCH=amd64
WORK=
usage() { echo "usage: $0 [--spack 0.23.1|1.0.2] [--s3] [--arch amd64|arm64] [--work DIR]" >&2; exit 2; }
while [ $# -gt 0 ]; do
    case $1 in
        --spack) SPACK_VERSION=$2; shift 2 ;;
        --s3) STORAGE=s3; shift ;;
        --arch) ARCH=$2; shift 2 ;;
        --work) WORK=$2; shift 2 ;;
        *) usage ;;
    esac
done
case $ARCH in amd64) ;; arm64) [ "$STORAGE" = file ] || usage ;; *) usage ;; esac

# shellcheck source=scripts/services.sh
. "$ROOT/scripts/services.sh"
if [ -z "${SPACKTAINERIZAH_TEST_REGISTRY:-}" ]; then
    install_packages
    start_services
fi
[ -n "${SPACKTAINERIZAH_TEST_OS_IMAGE:-}" ] ||
    SPACKTAINERIZAH_TEST_OS_IMAGE=$("$ROOT/scripts/os-image.sh" "$SPACKTAINERIZAH_TEST_REGISTRY/debian:bookworm")
OS_IMAGE=$SPACKTAINERIZAH_TEST_OS_IMAGE
if [ "$ARCH" = arm64 ]; then
    # Both architectures' base images come from one os_image: an index of Debian for amd64
    # and arm64 (scripts/os-image.sh makes it offline).
    if [ -z "${SPACKTAINERIZAH_TEST_OS_IMAGE_MULTIARCH:-}" ]; then
        echo "NOT RUN: e2e --arch arm64: no multi-architecture OS image (SPACKTAINERIZAH_TEST_OS_IMAGE_MULTIARCH; arm64 emulation missing?)" >&2
        exit 0
    fi
    OS_IMAGE=$SPACKTAINERIZAH_TEST_OS_IMAGE_MULTIARCH
fi
REGISTRY=$SPACKTAINERIZAH_TEST_REGISTRY
SHARED=${SPACKTAINERIZAH_SHARED_TOOLS:-$ROOT/../shared/tools}
SPACK_ARCHIVE=$SHARED/spack/spack-$SPACK_VERSION.tar.xz
if [ ! -f "$SPACK_ARCHIVE" ]; then
    echo "NOT RUN: e2e with Spack $SPACK_VERSION: $SPACK_ARCHIVE is missing" >&2
    exit 0
fi
SPACK_ARCHIVE=$(cd "$(dirname "$SPACK_ARCHIVE")" && pwd)/$(basename "$SPACK_ARCHIVE")
case $SPACK_VERSION in 0.*) LAYOUT=v2 ;; *) LAYOUT=v3 ;; esac
work_folder e2e "$WORK"
# A namespace of its own: a registry that holds an earlier run's images would make this one a no-op.
NS=e2e-${SPACK_VERSION//./-}-$ARCH-$(date +%s)
STARTED=$(date +%s)
FIGURES=$WORK/figures.txt
: >"$FIGURES"
figure() { printf '%s\n' "$*" | tee -a "$FIGURES" >&2; }
fail() { echo "E2E FAILED: $*" >&2; exit 1; }

log "e2e: Spack $SPACK_VERSION (cache layout $LAYOUT), storage $STORAGE, architecture $ARCH, in $WORK"
# The time of a stage of this script, in the figures.
stage_start() { STAGE_STARTED=$(date +%s); }
stage_done() { figure "$1: $(($(date +%s) - STAGE_STARTED)) s"; }

# The tools, as the images get them.
cargo build --quiet --workspace --bins
TOOLS=$CARGO_TARGET_DIR/debug
RUNNER=$TOOLS/ci-runner
TOOLS_DIRS=(--tools-dir "amd64=$TOOLS")
RUNNERS=(--runner local:docker:run-untagged)
if [ "$ARCH" = arm64 ]; then
    # The arm64 images' tools, cross-compiled (rustup's target, Debian's cross gcc: the
    # linker .cargo/config.toml names), as scripts/test.sh builds them.
    target=aarch64-unknown-linux-gnu
    if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx "$target"; then
        rustup target add "$target"
    fi
    stage_start
    cargo build --quiet --target "$target" --bins -p spacktainerizer -p spack-cacher -p spackah \
        -p singularitah -p spackitor
    stage_done "arm64 tools cross-compiled"
    TOOLS_DIRS+=(--tools-dir "arm64=$CARGO_TARGET_DIR/$target/debug")
    # The runner on an arm64 machine (an AWS Graviton): its Docker daemon pulls and runs the
    # arm64 variant of every image, as this one does with --platform (tests/src/runner/runners.rs).
    RUNNERS+=(--runner local-arm64:docker:platform=linux/arm64)
fi

# Storage: folders, or buckets on an S3 server the containers reach (the Docker bridge's
# gateway address: build steps run on the bridge network, jobs on the host's).
#
# The address is read off the bridge's interface, not `docker network inspect`: Docker 20.10
# leaves `.IPAM.Config[].Gateway` empty for a default bridge it has just created (it is filled
# only where an earlier daemon left the interface behind), while the interface always carries it.
bridge_address() {
    local name
    name=$(docker network inspect bridge -f '{{index .Options "com.docker.network.bridge.name"}}')
    ip -4 -o addr show dev "${name:-docker0}" | awk '{ split($4, a, "/"); print a[1]; exit }'
}
SIFS_SHARED=$WORK/shared-sifs
mkdir -p "$SIFS_SHARED"
VARIABLES=$WORK/project-variables.env
: >"$VARIABLES"
chmod 600 "$VARIABLES"
if [ "$STORAGE" = s3 ]; then
    GATEWAY=$(bridge_address)
    [ -n "$GATEWAY" ] || fail "the Docker bridge has no IPv4 address: $(ip -4 -o addr show 2>&1)"
    gateway_s3_up() { curl -sf "http://$GATEWAY:$1/"; }
    serve s3 "$WORK/moto.log" gateway_s3_up run_moto "$GATEWAY" || fail "the S3 server on $GATEWAY did not start"
    S3=http://$GATEWAY:$SERVED_PORT
    # moto takes any key pair: test values, handed over as the project's masked variables.
    export AWS_ACCESS_KEY_ID=e2e-key-id AWS_SECRET_ACCESS_KEY=e2e-secret-key AWS_REGION=us-east-1
    s3() { "$VENV/bin/python" "$ROOT/scripts/e2e-s3.py" "$S3" "$@"; }
    s3 mkbucket e2e-cache
    s3 mkbucket e2e-cache-branches
    s3 mkbucket e2e-sifs
    CACHE_URL=s3://e2e-cache
    BRANCH_CACHE_URL=s3://e2e-cache-branches
    SIF_URL=s3://e2e-sifs/containers
    printf '%s\n' "BUILD_CACHE_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID" \
        "BUILD_CACHE_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY" \
        "CONTAINERS_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID" \
        "CONTAINERS_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY" >"$VARIABLES"
    CREDENTIALS="      endpoint_url: $S3
      credentials:
        user_env: BUILD_CACHE_ACCESS_KEY_ID
        secret_env: BUILD_CACHE_SECRET_ACCESS_KEY"
    SIF_CREDENTIALS="      endpoint_url: $S3
      credentials:
        user_env: CONTAINERS_ACCESS_KEY_ID
        secret_env: CONTAINERS_SECRET_ACCESS_KEY"
    STORAGE_VOLUMES=()
else
    mkdir -p "$WORK/build-cache" "$WORK/build-cache-branches" "$WORK/sifs"
    CACHE_URL=file://$WORK/build-cache
    BRANCH_CACHE_URL=file://$WORK/build-cache-branches
    SIF_URL=file://$WORK/sifs
    CREDENTIALS=
    SIF_CREDENTIALS=
    STORAGE_VOLUMES=(--volume "$WORK/build-cache" --volume "$WORK/build-cache-branches" --volume "$WORK/sifs")
    if [ "$ARCH" = arm64 ]; then
        # The arm64 packages' caches of their own (and their own keep lists).
        mkdir -p "$WORK/build-cache-arm64" "$WORK/build-cache-arm64-branches"
        STORAGE_VOLUMES+=(--volume "$WORK/build-cache-arm64" --volume "$WORK/build-cache-arm64-branches")
    fi
fi

# The canary signing key, made here: the protected project variable (base64 of the armored
# secret key, as Spack's own jobs take SPACK_SIGNING_KEY), its public half a file every job
# mounts (SPACK_DEPLOYMENT_KEY_PUBLIC). Step 9 looks for the secret key everywhere the run left
# something.
KEYS=$WORK/keys
PUBLIC_KEYS=$WORK/public-key
rm -rf "$KEYS" "$PUBLIC_KEYS"
mkdir -p "$KEYS/gnupg" "$KEYS/verify" "$PUBLIC_KEYS"
chmod -R 700 "$KEYS"
keys_gpg() { gpg --homedir "$KEYS/$1" --batch --quiet --pinentry-mode loopback --passphrase '' "${@:2}"; }
keys_gpg gnupg --quick-gen-key "Spacktainerizah e2e canary <e2e-canary@example.org>" rsa2048 sign never
keys_gpg gnupg --armor --export-secret-keys >"$KEYS/secret.asc"
keys_gpg gnupg --armor --export >"$PUBLIC_KEYS/deployment.pub"
keys_gpg verify --import "$PUBLIC_KEYS/deployment.pub"
base64 -w0 "$KEYS/secret.asc" >"$KEYS/secret.b64"
# What would betray the key: a line of its secret part (the armored data's lines 9 to 16 encode
# the secret numbers, after the public ones the public key shares), a stretch of the base64
# the variable holds, and bytes of the secret key material itself, binary (as a secret key
# import or export holds them) and as hex text.
{ sed -n '14p;16p' "$KEYS/secret.asc"; cut -c1201-1264 "$KEYS/secret.b64"; } >"$KEYS/canary"
keys_gpg gnupg --export-secret-keys >"$KEYS/secret.gpg"
keys_gpg gnupg --export >"$KEYS/public.gpg"
"$VENV/bin/python" "$ROOT/scripts/e2e-canary.py" secret-slice "$KEYS/secret.gpg" "$KEYS/public.gpg" \
    >>"$KEYS/canary"
# No agent outlives this part (the exports above start one again): one left running would
# outlive a failed run, and answer the next run's gpg in the same folder from a removed home.
gpgconf --homedir "$KEYS/gnupg" --kill gpg-agent
gpgconf --homedir "$KEYS/verify" --kill gpg-agent
printf '%s\n' "protected SPACK_SIGNING_KEY=$(cat "$KEYS/secret.b64")" \
    "SPACK_DEPLOYMENT_KEY_PUBLIC=$PUBLIC_KEYS/deployment.pub" >>"$VARIABLES"

# The definitions repository: the example template and packages, the one container every
# machine can build offline.
DEFS=$WORK/definitions
rm -rf "$DEFS"
mkdir -p "$DEFS/container_definitions/amd64"
cp -r "$ROOT/examples/spack.yaml" "$ROOT/examples/packages" "$DEFS/"
cp "$ROOT/examples/container_definitions/amd64/greeter.yaml" "$DEFS/container_definitions/amd64/"
ARM64_ARCHITECTURE=
if [ "$ARCH" = arm64 ]; then
    mkdir -p "$DEFS/container_definitions/arm64"
    # The same definition: a definition names packages, not an architecture.
    cp "$ROOT/examples/container_definitions/amd64/greeter.yaml" "$DEFS/container_definitions/arm64/"
    ARM64_ARCHITECTURE="  arm64:
    runner_tag: local-arm64
    base_requirement: \"%gcc@12 target=aarch64\"
    build_cache:
      url: file://$WORK/build-cache-arm64
      branch_url: file://$WORK/build-cache-arm64-branches
      max_age_days: {default_branch: 90, other_branches: 30}
    containers_bucket:
      url: $SIF_URL
    engine:
      host: unix:///var/run/docker.sock"
fi
SPACK_PACKAGES=
if [ "$LAYOUT" = v3 ]; then
    SPACK_PACKAGES="  spack_packages:
    archive: $SHARED/spack/spack-packages-2025.07.tar.xz"
fi
CERTS=$(find /usr/local/share/ca-certificates -name '*.crt' 2>/dev/null | sed 's/.*/"&"/' | paste -sd, -)
cat >"$DEFS/spacktainerizah.yaml" <<YAML
# The end-to-end run's configuration (scripts/e2e.sh).
default_branch: main
registry:
  url: $REGISTRY/$NS
labels:
  namespace: org.spacktainerizah.e2e
tools_image: $REGISTRY/$NS/spacktainerizah/tools:release
base_images:
  os_image: $OS_IMAGE
  spack:
    archive: $SPACK_ARCHIVE
$SPACK_PACKAGES
  ca_certificates: [$CERTS]
jobs:
  spack_builds: {timeout: 1h}
  containers: {timeout: 30m}
sif_sync:
  dir: $SIFS_SHARED
  runner_tag: local
  delete_removed: true
tags:
  default_branch: latest
  other_branches: "{date}-{branch}"
  arch_suffix: true
architectures:
  amd64:
    runner_tag: local
    base_requirement: "%gcc@12 target=x86_64"
    build_cache:
      url: $CACHE_URL
      branch_url: $BRANCH_CACHE_URL
      max_age_days: {default_branch: 90, other_branches: 30}
$CREDENTIALS
    containers_bucket:
      url: $SIF_URL
$SIF_CREDENTIALS
    engine:
      host: unix:///var/run/docker.sock
$ARM64_ARCHITECTURE
signing: {}
YAML
(cd "$DEFS" && "$TOOLS/spack-cacher" chain)
git -C "$DEFS" init -q -b main
git -C "$DEFS" add -A
git -C "$DEFS" -c user.name=e2e -c user.email=e2e@example.org commit -q -m "definitions"
rm -rf "$WORK/remote.git"
git clone -q --bare "$DEFS" "$WORK/remote.git"

# The released tools image every chain starts from, published as the project's own CI does.
# With arm64, for both architectures, each with its own tools, under one index.
# Each architecture's image under its own tag (release-amd64, release-arm64), both under the
# index's (release): one tag for both would leave it to the last one built.
RELEASE_ARCHS=(amd64)
[ "$ARCH" = amd64 ] || RELEASE_ARCHS+=(arm64)
"$ROOT/.ci/tools-image-config.sh" "$REGISTRY/$NS/spacktainerizah" release "$OS_IMAGE" \
    "${RELEASE_ARCHS[@]}" >"$WORK/release.yaml"
for arch in "${RELEASE_ARCHS[@]}"; do
    log "publishing the release tools image ($arch)"
    stage_start
    "$TOOLS/spacktainerizer" build --config "$WORK/release.yaml" --image tools --arch "$arch" \
        --branch release "${TOOLS_DIRS[@]}" --push >/dev/null
    stage_done "release tools image $arch built and pushed"
done
if [ "$ARCH" = arm64 ]; then
    "$TOOLS/spacktainerizer" index --config "$WORK/release.yaml" --image tools --branch release \
        "${TOOLS_DIRS[@]}" >/dev/null
fi

DOCKER_SOCKET=${DOCKER_HOST#unix://}
RUN_COUNT=0
# run_pipeline SOURCE [BRANCH]: the chain for a pipeline of SOURCE on BRANCH (the default
# branch; for a merge request, its source branch), on a runner tagged as the configuration
# says; the report's path in LAST_REPORT.
run_pipeline() {
    RUN_COUNT=$((RUN_COUNT + 1))
    local branch=${2:-main}
    local report=$WORK/pipeline-$RUN_COUNT-$1.json start
    start=$(date +%s)
    log "pipeline $RUN_COUNT: $1 on $branch"
    "$RUNNER" .gitlab-ci.yml --project "$DEFS" --work "$WORK/runs/$RUN_COUNT" --source "$1" \
        --branch "$branch" --default-branch main --project-url "$WORK/remote.git" \
        "${RUNNERS[@]}" \
        --variables-file "$VARIABLES" --default-image "$OS_IMAGE" --report "$report" \
        --volume "$DOCKER_SOCKET:/var/run/docker.sock" --volume "$SHARED/spack" \
        --volume /usr/local/share/ca-certificates --volume "$WORK/remote.git" \
        --volume "$SIFS_SHARED" --volume "$PUBLIC_KEYS" "${STORAGE_VOLUMES[@]}" ||
        fail "pipeline $RUN_COUNT ($1 on $branch): see $WORK/runs/$RUN_COUNT"
    figure "pipeline $RUN_COUNT ($1 on $branch): $(($(date +%s) - start)) s"
    LAST_REPORT=$report
}

# Wall time of each top-level job of a report (the chain's stages).
stage_times() {
    jq -r '.jobs[] | select(.file | endswith(".gitlab-ci.yml")) | "  \(.name): \(.seconds | floor) s"' "$1" |
        tee -a "$FIGURES" >&2
}

cache_size() { # [branches]
    local name=build-cache${1:+-$1}
    if [ "$STORAGE" = s3 ]; then s3 size "e2e-cache${1:+-$1}"; else
        echo "$(du -sb "$WORK/$name" | cut -f1) $(find "$WORK/$name" -type f | wc -l)"
    fi
}

# The janitor's own words in a pipeline's job logs.
janitor_said() { # run-number pattern
    grep -rqsE "$2" "$WORK/runs/$1" --include=job.log
}

# --- 1. A default-branch push: the whole chain.
run_pipeline push
stage_times "$LAST_REPORT"
if [ "$ARCH" = arm64 ]; then
    # Every arm64 job, the child pipelines' (Spack's own builds) among them, by its stage.
    figure "arm64 jobs of pipeline 1 (wall time, emulated):"
    jq -r '.jobs[] | select((.name + " " + .file) | test("arm64|aarch64"))
        | "  \(.file | split("/") | last): \(.name): \(.seconds | floor) s"' "$LAST_REPORT" |
        tee -a "$FIGURES" >&2
fi
for c in "spacktainerizer build" "spack ci" "spackah build" "singularitah sif" "spackitor clean"; do
    jq -e --arg c "$c" '[.jobs[] | .commands[] | select(startswith($c))] | length > 0' "$LAST_REPORT" >/dev/null ||
        fail "the first pipeline ran no \`$c\`"
done
read -r size count < <(cache_size)
figure "build cache after the first pipeline (cleaned by its janitor): $size bytes in $count objects"
# A first deployment: the branch cache has no keep list yet, which is no reason to stop.
jq -e '[.jobs[] | select(.name == "clean build cache amd64") | .success] == [true]' "$LAST_REPORT" >/dev/null ||
    fail "the first deployment's janitor did not pass"
MANIFEST_TYPES='application/vnd.oci.image.manifest.v1+json,application/vnd.docker.distribution.manifest.v2+json,application/vnd.oci.image.index.v1+json,application/vnd.docker.distribution.manifest.list.v2+json'
# registry_manifest REPOSITORY REFERENCE: what the registry serves for it.
registry_manifest() {
    curl -fsS -H "Accept: $MANIFEST_TYPES" "http://$REGISTRY/v2/$NS/$1/manifests/$2"
}
if [ "$ARCH" = amd64 ]; then
    for image in builder runtime tools greeter; do
        ref=$REGISTRY/$NS/$image:latest
        [ "$image" = greeter ] && ref=$REGISTRY/$NS/greeter:1.0
        figure "image $image: $(docker image inspect -f '{{.Size}}' "$ref") bytes"
    done
else
    jq -e '[.jobs[] | select(.name == "clean build cache arm64") | .success] == [true]' "$LAST_REPORT" >/dev/null ||
        fail "the first deployment's arm64 janitor did not pass"
    read -r size count < <(cache_size arm64)
    figure "arm64 build cache after the first pipeline (cleaned by its janitor): $size bytes in $count objects"
    # One tag, both architectures: each image's index serves amd64 and arm64, and each
    # platform's manifest (compressed layers, as pulled) is measured.
    for image in builder runtime tools greeter; do
        tag=latest
        [ "$image" = greeter ] && tag=1.0
        index=$(registry_manifest "$image" "$tag") || fail "the registry serves no $NS/$image:$tag"
        for arch in amd64 arm64; do
            digest=$(jq -r --arg a "$arch" '[.manifests[]? | select(.platform.architecture == $a) | .digest][0] // empty' <<<"$index")
            [ -n "$digest" ] || fail "$NS/$image:$tag serves no $arch image: $(jq -c '[.manifests[]?.platform]' <<<"$index")"
            bytes=$(registry_manifest "$image" "$digest" | jq '[.config.size, .layers[].size] | add')
            figure "image $image $arch: $bytes bytes compressed (one index serves amd64 and arm64)"
        done
    done
fi

# A local copy of the default branch's cache (the folder itself, or the bucket downloaded);
# with arm64, the arm64 one's (a folder).
cache_copy() { # DIR [arm64]
    rm -rf "$1"
    if [ "$STORAGE" = s3 ]; then s3 download e2e-cache "$1"; else cp -a "$WORK/build-cache${2:+-$2}" "$1"; fi
}

# Every package the default branch pushed is signed by the canary key: each spec file (v2
# `.spec.json.sig`, no unsigned `.spec.json`) or spec manifest (v3) verified by gpg with the
# public key alone.
check_signed() { # [arm64]
    local cache=$WORK/signed-check files unsigned
    cache_copy "$cache" "${1:-}"
    if [ "$LAYOUT" = v2 ]; then
        unsigned=$(find "$cache/build_cache" -name '*.spec.json' | wc -l)
        [ "$unsigned" -eq 0 ] || fail "$unsigned unsigned spec files in the signed cache"
        mapfile -t files < <(find "$cache/build_cache" -name '*.spec.json.sig')
    else
        mapfile -t files < <(find "$cache/v3/manifests/spec" -name '*.spec.manifest.json')
    fi
    [ "${#files[@]}" -gt 0 ] || fail "no spec file in the cache to check"
    for f in "${files[@]}"; do
        keys_gpg verify --verify "$f" 2>/dev/null || fail "$(basename "$f") is not signed by the deployment key"
    done
    gpgconf --homedir "$KEYS/verify" --kill gpg-agent 2>/dev/null || true
    # And the janitor's own check, which reads the signatures with the pgp crate, not gpg.
    "$TOOLS/spackitor" verify --cache "$cache" --trust "$PUBLIC_KEYS/deployment.pub" >"$WORK/verify.log" 2>&1 ||
        fail "spackitor verify --trust on the signed cache: $(tail -n 20 "$WORK/verify.log")"
    figure "signed ${1:-amd64} cache: ${#files[@]} spec files, each verified with the deployment key (gpg and spackitor verify --trust)"
    rm -rf "$cache"
}
check_signed
[ "$ARCH" = amd64 ] || check_signed arm64

# --- 2. The container runs the program by name (with arm64, each platform's image of the one
# tag, the arm64 one emulated, and it is aarch64 code).
if [ "$ARCH" = amd64 ]; then
    out=$(docker run --rm "$REGISTRY/$NS/greeter:1.0" greeter)
    echo "$out" | grep -q "Hello from libgreet" || fail "greeter in the image printed: $out"
    echo "$out" | grep -q "greeter-banner" || fail "greeter did not run greeter-banner by name: $out"
    log "docker run greeter: ok"
else
    for arch in amd64 arm64; do
        stage_start
        out=$(docker run --rm --pull always --platform "linux/$arch" "$REGISTRY/$NS/greeter:1.0" greeter 2>&1) ||
            fail "docker run --platform linux/$arch greeter: $out"
        echo "$out" | grep -q "Hello from libgreet" || fail "greeter in the $arch image printed: $out"
        echo "$out" | grep -q "greeter-banner" || fail "greeter ($arch) did not run greeter-banner by name: $out"
        stage_done "docker run --platform linux/$arch greeter (pull included)"
        machine=$(docker run --rm --platform "linux/$arch" "$REGISTRY/$NS/greeter:1.0" uname -m 2>&1)
        expected=x86_64
        [ "$arch" = arm64 ] && expected=aarch64
        [ "$machine" = "$expected" ] || fail "the $arch greeter image runs on $machine, not $expected"
        log "docker run --platform linux/$arch greeter ($machine): ok"
    done
    printf '%s\n' "$out" | sed 's/^/  arm64 greeter: /' >&2
fi

# --- 3. The SIF: synced to the shared folder; the program runs from its extracted root, and in
# Apptainer when one is installed. With arm64, the arm64 SIF too, its root's programs emulated
# (binfmt_misc's F flag: the interpreter works inside a chroot).
check_sif() { # amd64|arm64
    local arch=$1 pattern='greeter__1.0*.sif' expected=x86_64 root=$WORK/sif-root
    [ "$ARCH" = amd64 ] || pattern="greeter__1.0*-$arch.sif"
    [ "$arch" = amd64 ] || { expected=aarch64; root=$WORK/sif-root-$arch; }
    SIF=$(find "$SIFS_SHARED" -name "$pattern" | head -n1)
    [ -n "$SIF" ] || fail "no $arch greeter SIF in $SIFS_SHARED: $(ls -la "$SIFS_SHARED")"
    figure "SIF $arch: $(stat -c %s "$SIF") bytes"
    rm -rf "$root" "$WORK/sif.squashfs"
    # The squashfs partition, read with the reference siftool (Apptainer's own SIF library),
    # which also says the SIF's architecture.
    "$SPACKTAINERIZAH_TEST_SIFTOOL" list "$SIF" >"$WORK/sif-$arch.list"
    PART=$(awk '/Squashfs/ { print $1; exit }' "$WORK/sif-$arch.list")
    [ -n "$PART" ] || fail "no squashfs partition in $SIF"
    if [ "$ARCH" = arm64 ]; then
        grep -q "Squashfs.*$arch" "$WORK/sif-$arch.list" ||
            fail "the squashfs partition of $SIF is not for $arch: $(cat "$WORK/sif-$arch.list")"
    fi
    "$SPACKTAINERIZAH_TEST_SIFTOOL" dump "$PART" "$SIF" >"$WORK/sif.squashfs"
    unsquashfs -q -no-xattrs -d "$root" "$WORK/sif.squashfs" >/dev/null
    local start
    start=$(date +%s)
    out=$(chroot "$root" /opt/spacktainerizah/entrypoint.sh greeter)
    echo "$out" | grep -q "Hello from libgreet" || fail "greeter from the $arch SIF's root printed: $out"
    [ "$ARCH" = amd64 ] || figure "greeter from the $arch SIF's root: $(($(date +%s) - start)) s"
    machine=$(chroot "$root" uname -m)
    [ "$machine" = "$expected" ] || fail "the $arch SIF's root runs on $machine, not $expected"
    log "greeter from the $arch SIF's root ($machine): ok"
    if [ -n "${SPACKTAINERIZAH_TEST_APPTAINER:-}" ]; then
        # As a cluster runs it: an unprivileged user, a world-readable SIF.
        APPTAINER_DIR=$(mktemp -d /tmp/stz-apptainer.XXXXXX)
        chmod 0755 "$APPTAINER_DIR"
        cp "$SIF" "$APPTAINER_DIR/greeter.sif"
        chmod 0644 "$APPTAINER_DIR/greeter.sif"
        as_user() {
            runuser -u "$SPACKTAINERIZAH_TEST_APPTAINER_USER" -- env HOME="$APPTAINER_DIR" \
                APPTAINER_TMPDIR="$APPTAINER_DIR" "$SPACKTAINERIZAH_TEST_APPTAINER" "$@" 2>&1
        }
        local how refused=
        for how in exec run; do
            start=$(date +%s)
            if ! out=$(as_user "$how" "$APPTAINER_DIR/greeter.sif" greeter) && [ "$arch" != amd64 ]; then
                # Apptainer may refuse a SIF of another architecture than the host's.
                refused=$(printf '%s' "$out" | tail -n 3 | tr '\n' ' ')
                break
            fi
            echo "$out" | grep -q "greeter-banner" || fail "apptainer $how greeter ($arch) printed: $out"
            [ "$arch" = amd64 ] || figure "apptainer $how greeter ($arch, emulated): $(($(date +%s) - start)) s"
        done
        rm -rf "$APPTAINER_DIR"
        if [ -n "$refused" ]; then
            echo "NOT RUN: e2e: the $arch SIF in Apptainer on this $(uname -m) machine: apptainer refused it: $refused" >&2
            figure "apptainer with the $arch SIF: NOT RUN: $refused"
        else
            log "apptainer exec and run greeter ($arch): ok"
        fi
    else
        echo "NOT RUN: e2e: the SIF in Apptainer (none installed)" >&2
    fi
}
check_sif amd64
if [ "$ARCH" = arm64 ]; then
    check_sif arm64
    # The rest is not about the architecture: the amd64 run does it.
    figure "whole run (Spack $SPACK_VERSION, $STORAGE, arm64): $(($(date +%s) - STARTED)) s"
    log "e2e --arch arm64 passed; figures in $FIGURES"
    cat "$FIGURES"
    exit 0
fi

# --- 3b. What the image and its SIF say about themselves: the SBOM and provenance attached to
# the pushed image (docker-registry has no referrers API: through the referrers tag schema) and
# carried by the SIF, the same documents, valid for the SPDX project's validator and in-toto's
# own types, describing this image and this cache.
docs=$WORK/documents
rm -rf "$docs"
"$TOOLS/spackah" provenance "$REGISTRY/$NS/greeter:1.0" --extract "$docs/image" >"$docs.image.txt" 2>&1 ||
    fail "spackah provenance of the pushed greeter: $(cat "$docs.image.txt")"
"$TOOLS/spackah" provenance "$SIF" --extract "$docs/sif" >"$docs.sif.txt" 2>&1 ||
    fail "spackah provenance of the greeter's SIF: $(cat "$docs.sif.txt")"
for where in image sif; do
    "$VENV/bin/python" "$ROOT/scripts/check-documents.py" "$docs/$where" >&2 ||
        fail "the $where's SBOM or provenance did not pass the third-party validators"
done
diff -r "$docs/image" "$docs/sif" >/dev/null || fail "the SIF carries other documents than the image"
SBOM=$docs/image/sbom.spdx.json
PROVENANCE=$docs/image/provenance.intoto.json
# The amd64 manifest the registry serves for greeter:1.0 (through an index if it is one).
manifest_digest() { # REFERENCE
    curl -fsSI -H "Accept: $MANIFEST_TYPES" "http://$REGISTRY/v2/$NS/greeter/manifests/$1" |
        tr -d '\r' | awk 'tolower($1) == "docker-content-digest:" { print $2 }'
}
MANIFEST_TYPES='application/vnd.oci.image.manifest.v1+json,application/vnd.docker.distribution.manifest.v2+json,application/vnd.oci.image.index.v1+json,application/vnd.docker.distribution.manifest.list.v2+json'
digest=$(manifest_digest 1.0)
amd64=$(curl -fsS -H "Accept: $MANIFEST_TYPES" "http://$REGISTRY/v2/$NS/greeter/manifests/1.0" |
    jq -r '[.manifests[]? | select(.platform.architecture == "amd64") | .digest][0] // empty')
[ -z "$amd64" ] || digest=$amd64
[ -n "$digest" ] || fail "the registry gave no digest for greeter:1.0"
jq -e --arg d "${digest#sha256:}" '.subject[0].digest.sha256 == $d' "$PROVENANCE" >/dev/null ||
    fail "the provenance's subject is not the pushed image ($digest): $(jq -c .subject "$PROVENANCE")"
# The SBOM lists every spec the cache served, by its DAG hash, and where it came from.
LOCK=$(find "$WORK/runs/1" -path '*/envs/amd64/greeter/spack.lock' | head -n1)
[ -n "$LOCK" ] || fail "no greeter lockfile under $WORK/runs/1"
mapfile -t hashes < <(jq -r '.concrete_specs | keys[]' "$LOCK")
[ "${#hashes[@]}" -gt 0 ] || fail "no spec in $LOCK"
for hash in "${hashes[@]}"; do
    grep -q "$hash" "$SBOM" || fail "the SBOM lacks the spec $hash of the greeter's lockfile"
done
grep -qF "$CACHE_URL" "$SBOM" || fail "the SBOM does not name the build cache $CACHE_URL"
figure "greeter SBOM: $(jq '.packages | length' "$SBOM") packages ($(jq '[.packages[] | select((.externalRefs // []) | any(.referenceLocator | startswith("pkg:deb")))] | length' "$SBOM") dpkg), $(stat -c %s "$SBOM") bytes; provenance $(stat -c %s "$PROVENANCE") bytes; both valid (pyspdxtools, in-toto) and the same in the SIF"
attached=$(grep -rhoE 'attached to [^ ]+/greeter:[^ ]+ in [0-9.]+ s' "$WORK/runs/1" --include=job.log | head -n1 || true)
[ -n "$attached" ] || fail "the greeter's build job did not say it attached the documents"
figure "documents made and attached by the build job: ${attached##* in }"
log "SBOM and provenance of the image and the SIF: ok"

# --- 4. Real Spack installs the recorded environment from the cleaned cache into a new root.
spack_install_from_cache() {
    local dir=$WORK/spack-check root=$WORK/spack-check/root
    rm -rf "$dir"
    mkdir -p "$dir/env"
    local keep=_spacktainerizah/keep/main/amd64/greeter/spack.lock
    if [ "$STORAGE" = s3 ]; then s3 get e2e-cache "$keep" "$dir/env/spack.lock"
    else cp "$WORK/build-cache/$keep" "$dir/env/spack.lock"; fi
    local repos="  repos:
  - $DEFS/packages"
    [ "$LAYOUT" = v3 ] && repos="  repos:
    examples: $DEFS/packages"
    cat >"$dir/env/spack.yaml" <<YAML
spack:
  specs: [greeter]
  view: false
$repos
  config:
    install_tree:
      root: $root
  mirrors::
    e2e:
      url: $CACHE_URL
      signed: true
$( [ "$STORAGE" = s3 ] && echo "      endpoint_url: $S3" )
  # Spack's gpg commands go through its bootstrapping setup even where gpg is installed (it
  # is, so nothing is bootstrapped): enabled here, with a root of this check's own.
  bootstrap:
    enable: true
    root: $dir/bootstrap
YAML
    local spack_dir=$CACHE_DIR/e2e-spack/$SPACK_VERSION
    if [ ! -x "$spack_dir/bin/spack" ]; then
        rm -rf "$spack_dir" && mkdir -p "$spack_dir"
        tar -C "$spack_dir" --strip-components=1 -xJf "$SPACK_ARCHIVE"
        printf 'bootstrap:\n  enable: false\n' >"$spack_dir/etc/spack/bootstrap.yaml"
        if [ "$LAYOUT" = v3 ]; then
            mkdir -p "$CACHE_DIR/e2e-spack/packages"
            tar -C "$CACHE_DIR/e2e-spack/packages" --strip-components=1 \
                -xJf "$SHARED/spack/spack-packages-2025.07.tar.xz"
            printf 'repos::\n  builtin: %s\n' "$CACHE_DIR/e2e-spack/packages/repos/spack_repo/builtin" \
                >"$spack_dir/etc/spack/repos.yaml"
        fi
        PATH=/usr/bin:/bin SPACK_PYTHON=$VENV/bin/python SPACK_DISABLE_LOCAL_CONFIG=1 \
            "$spack_dir/bin/spack" compiler find --scope site >/dev/null
    fi
    # A keyring of this check's own that trusts the deployment key: the mirror is signed, so
    # every package's signature is checked.
    mkdir -p "$dir/gnupg" && chmod 700 "$dir/gnupg"
    local spack_env=(PATH=/usr/bin:/bin SPACK_PYTHON="$VENV/bin/python" SPACK_DISABLE_LOCAL_CONFIG=1
        SPACK_USER_CONFIG_PATH="$dir/user" SPACK_USER_CACHE_PATH="$dir/cache" SPACK_GNUPGHOME="$dir/gnupg")
    env "${spack_env[@]}" "$spack_dir/bin/spack" -e "$dir/env" gpg trust "$PUBLIC_KEYS/deployment.pub" \
        >"$dir/trust.log" 2>&1 ||
        fail "spack gpg trust of the deployment key: $(cat "$dir/trust.log")"
    env "${spack_env[@]}" "$spack_dir/bin/spack" -e "$dir/env" install --cache-only >"$dir/install.log" 2>&1 ||
        fail "spack install --cache-only from the cleaned cache: $(tail -n 30 "$dir/install.log")"
    local greeter
    greeter=$(find "$root" -path '*/bin/greeter' | head -n1)
    out=$(PATH=$(find "$root" -path '*greeter-banner*/bin' -type d | head -n1):$PATH "$greeter")
    echo "$out" | grep -q "Hello from libgreet" || fail "greeter installed from the cache printed: $out"
    gpgconf --homedir "$dir/gnupg" --kill gpg-agent 2>/dev/null || true
    log "spack $SPACK_VERSION install --cache-only from the cleaned, signed cache: ok"
}
spack_install_from_cache

# --- 4b. Someone who can write to the bucket changes a dependency's tarball, or its spec file:
# the container build from that cache fails and names the package. `spackah build` of the
# greeter as its job runs it, on the first pipeline's environment and lockfile pointed at a
# tampered copy of the cache.
ENVS=$(find "$WORK/runs/1" -path '*/envs/amd64/greeter/spack.lock' -printf '%h\n' | head -n1)
[ -n "$ENVS" ] || fail "no prepared greeter environment with its lockfile under $WORK/runs/1"
ENVS=$(dirname "$(dirname "$ENVS")")
# The lines of a failed build's log (LOG) where Spack refuses greetlib's tampered tarball or
# spec, printed; status 1 when there are none. A log merely naming greetlib is not enough:
# Spack says "Installing greetlib" before it checks anything.
spack_refused() { # tarball|spec LOG
    local bad='gpg: BAD signature|Failed to verify'
    if [ "$1" = tarball ]; then
        # The signature held; Spack's error line names the package: 0.23.1 "==> Error: sha256
        # checksum failed for …-greetlib-1.0-….spack" (spack/error.py NoChecksumException);
        # 1.0.2 logs a blob failing its checksum only with --debug (binary_distribution.py
        # download_tarball), then finds no binary: "==> Error: Failed to install greetlib due to
        # InstallError: No binary found when cache-only was specified" (installer.py).
        ! grep -qE "$bad" "$2" || return 1
        grep -m1 -E 'Error: (.*checksum failed for [^ ]*greetlib|Failed to install greetlib )' "$2"
    elif [ "$LAYOUT" = v2 ]; then
        # 0.23.1: "==> Warning: Failed to verify: file://…/build_cache/…-greetlib-…spec.json.sig"
        # (binary_distribution.py download_tarball).
        grep -m1 -E 'Failed to verify: [^ ]*greetlib[^ ]*\.spec\.json\.sig' "$2"
    else
        # 1.0.2: gpg's own "gpg: BAD signature from …" on the manifest (url_buildcache.py
        # try_verify), then "==> Error: Failed to install greetlib due to InstallError: …".
        awk '/gpg: BAD signature/ && !bad { bad = $0; next }
             bad && /Error: .*greetlib/ { print bad; print; found = 1; exit }
             END { exit !found }' "$2"
    fi
}
tampered_build() { # tarball|spec
    local t=$WORK/tampered-$1 changed start
    rm -rf "$t"
    mkdir -p "$t/envs/amd64"
    cache_copy "$t/cache"
    changed=$("$VENV/bin/python" "$ROOT/scripts/e2e-tamper.py" "$t/cache" greetlib "$1")
    cp -a "$ENVS/amd64/greeter" "$t/envs/amd64/"
    # The upload mirror the container installs from: the tampered copy, a folder.
    "$VENV/bin/python" - "$t/envs/amd64/greeter/spack.yaml" "file://$t/cache" <<'PY'
import sys, yaml
path, url = sys.argv[1:3]
env = yaml.safe_load(open(path))
env["spack"]["mirrors"]["buildcache-destination"] = {"url": url, "signed": True}
yaml.safe_dump(env, open(path, "w"))
PY
    start=$(date +%s)
    # The environment names its package repository under the checkout, as its job sees it.
    if (cd "$DEFS" && CI_PROJECT_DIR=$DEFS BUILD_CACHE_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-} \
        BUILD_CACHE_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-} \
        "$TOOLS/spackah" build --config spacktainerizah.yaml --repo . --lockfiles "$t/envs" \
        --branch main --environments "$t/envs" --base-tag latest --container greeter \
        --arch amd64) >"$t/build.log" 2>&1; then
        fail "the greeter was built from a cache with a tampered $1 ($changed)"
    fi
    local refused
    refused=$(spack_refused "$1" "$t/build.log") ||
        fail "the build from a tampered $1 failed, but not with Spack refusing greetlib's $1: $(tail -n 40 "$t/build.log")"
    # The janitor's check names it too, before any build would.
    if "$TOOLS/spackitor" verify --cache "$t/cache" --trust "$PUBLIC_KEYS/deployment.pub" --deep \
        >"$t/verify.log" 2>&1; then
        fail "spackitor verify --trust --deep passed a cache with a tampered $1"
    fi
    grep -q "greetlib" "$t/verify.log" ||
        fail "spackitor verify did not name greetlib in a cache with a tampered $1: $(tail -n 20 "$t/verify.log")"
    figure "tampered $1 of greetlib: the container build failed in $(($(date +%s) - start)) s, naming it: $(printf '%s' "$refused" | tr '\n' ' ' | cut -c1-300)"
    rm -rf "$t/cache"
}
tampered_build tarball
tampered_build spec

# --- 5. A second push: nothing to do anywhere.
run_pipeline push
NOOP_SECONDS=$(jq '[.jobs[].seconds] | add | . * 10 | floor / 10' "$LAST_REPORT")
# Trigger jobs run on no runner: GitLab counts a trigger's duration as its child pipeline's.
NOOP_RUNNER_SECONDS=$(jq '[.jobs[] | select(.commands | length > 0) | .seconds] | add | . * 10 | floor / 10' "$LAST_REPORT")
worked=$(jq -r '[.jobs[] | .commands[] | select(startswith("spacktainerizer build") or startswith("spack ci rebuild")
    or startswith("spackah build") or startswith("singularitah sif build"))] | join(", ")' "$LAST_REPORT")
[ -z "$worked" ] || fail "the second push did work: $worked"
# Its environments were not concretized again: the recorded lockfiles were reused, and no
# Spack ran at all.
janitor_said "$RUN_COUNT" "^amd64: 1 of 1 environments reused, 0 concretized" ||
    fail "the second push did not reuse the concretization of its unchanged environment"
janitor_said "$RUN_COUNT" "amd64/greeter: reused: its inputs are unchanged" ||
    fail "the second push's job log does not say why greeter was reused"
if grep -rqsF '$ spack -e ' "$WORK/runs/$RUN_COUNT" --include=job.log; then
    fail "the second push ran spack"
fi
GENERATE_SECONDS=$(jq '[.jobs[] | select(.name == "generate build cache amd64") | .seconds] | add | . * 10 | floor / 10' "$LAST_REPORT")
figure "no-op pipeline: ${NOOP_SECONDS} s of jobs, ${NOOP_RUNNER_SECONDS} s of them on runners (triggers aside); generate build cache amd64 ${GENERATE_SECONDS} s; reused 1 of 1 environments, no Spack run"
jq -r '.jobs[] | "  no-op job \(.name): \(.seconds * 100 | floor / 100) s"' "$LAST_REPORT" | tee -a "$FIGURES" >&2

# --- 6. A schedule: the janitors only, and the cache still serves.
run_pipeline schedule
others=$(jq -r '[.jobs[] | select(.file | endswith(".gitlab-ci.yml")) | select(.name | startswith("scheduled ") | not) | .name] | join(", ")' "$LAST_REPORT")
[ -z "$others" ] || fail "the schedule ran more than the janitors: $others"
jq -e '[.jobs[] | .commands[] | select(startswith("spackitor clean"))] | length > 0' "$LAST_REPORT" >/dev/null ||
    fail "the schedule cleaned nothing"
read -r size count < <(cache_size)
figure "build cache after the scheduled janitor: $size bytes in $count objects"
jq -e '[.jobs[] | select(.name | startswith("scheduled clean")) | .success] | length == 2 and all' "$LAST_REPORT" >/dev/null ||
    fail "the schedule did not clean both caches, the empty branch cache among them"
janitor_said "$RUN_COUNT" "nothing recorded yet" ||
    fail "the janitor of the empty branch cache did not say that nothing was recorded there yet"
spack_install_from_cache

# --- 7. A merge request from a feature branch: the whole chain again, run as GitLab runs a
# merge-request pipeline (its children on the merge request's ref, jobs without rules left
# out), filling the branch cache; then a manual (web) pipeline of that branch, which finds
# everything done and cleans the branch cache.
git -C "$DEFS" checkout -q -b feature
git -C "$DEFS" push -q "$WORK/remote.git" feature
run_pipeline merge_request_event feature
for c in "spacktainerizer build" "spack ci" "spackah build" "singularitah sif"; do
    jq -e --arg c "$c" '[.jobs[] | .commands[] | select(startswith($c))] | length > 0' "$LAST_REPORT" >/dev/null ||
        fail "the merge-request pipeline ran no \`$c\`"
done
jq -e '[.jobs[] | select(.name | startswith("clean "))] | length == 0' "$LAST_REPORT" >/dev/null ||
    fail "the merge-request pipeline cleaned a cache"
read -r size count < <(cache_size branches)
[ "$count" -gt 0 ] || fail "the merge-request pipeline left the branch cache empty"
figure "branch build cache after the merge request: $size bytes in $count objects"
# What signing costs: the same packages built by the default branch (signed, verified) and by
# the merge request (unsigned), each from an empty cache.
stage_seconds() { jq --arg n "$2" '[.jobs[] | select(.name == $n) | .seconds] | add // 0 | floor' "$1"; }
figure "signing: the build-cache stage took $(stage_seconds "$WORK/pipeline-1-push.json" "build cache amd64") s signed (pipeline 1), $(stage_seconds "$LAST_REPORT" "build cache amd64 (branches)") s unsigned (the merge request)"
grep -rqsE "The branch build cache .* is unsigned" "$WORK/runs/$RUN_COUNT" --include=job.log ||
    fail "the merge request's build jobs did not say that the branch cache is unsigned"
if [ "$LAYOUT" = v2 ] && [ "$STORAGE" = file ]; then
    [ -z "$(find "$WORK/build-cache-branches" -name '*.spec.json.sig')" ] ||
        fail "the merge request signed packages: it had the protected key"
fi
run_pipeline web feature
worked=$(jq -r '[.jobs[] | .commands[] | select(startswith("spacktainerizer build") or startswith("spack ci rebuild")
    or startswith("spackah build") or startswith("singularitah sif build"))] | join(", ")' "$LAST_REPORT")
[ -z "$worked" ] || fail "the manual pipeline of the merged branch did work again: $worked"
jq -e '[.jobs[] | select(.name == "clean branch build cache amd64") | .success] == [true]' "$LAST_REPORT" >/dev/null ||
    fail "the manual pipeline of the branch did not clean its own cache"
git -C "$DEFS" checkout -q main

# --- 9. The canary key is nowhere: job logs, artifacts and generated YAML (the runs), the
# documents, the build caches, the SIFs and their root, every image the run made (`docker save`:
# its layers, configuration and history). Searched through archives and compressed data (the
# caches' tarballs, the layers; scripts/e2e-canary.py), and no layer holds a GnuPG home's
# secret keys (`private-keys-v1.d`), whatever they are.
canary_search() { # [--private-keys] PATH...
    local log=$WORK/canary-search.log flags=()
    if [ "$1" = --private-keys ]; then flags=("$1"); shift; fi
    "$VENV/bin/python" "$ROOT/scripts/e2e-canary.py" "${flags[@]}" "$KEYS/canary" "$@" >"$log" 2>&1 ||
        fail "the signing key is in (or these could not be searched through): $(head -n 20 "$log")"
    rm -f "$log"
}
canary_search "$WORK/runs" "$WORK"/pipeline-*.json "$WORK/documents"
if [ "$STORAGE" = s3 ]; then
    for bucket in e2e-cache e2e-cache-branches e2e-sifs; do
        rm -rf "$WORK/buckets/$bucket"
        s3 download "$bucket" "$WORK/buckets/$bucket"
    done
    canary_search "$WORK/buckets/e2e-cache" "$WORK/buckets/e2e-cache-branches"
    SIF_STORES=("$WORK/buckets/e2e-sifs")
else
    canary_search "$WORK/build-cache" "$WORK/build-cache-branches"
    SIF_STORES=("$WORK/sifs")
fi
canary_search --private-keys "$SIFS_SHARED" "$WORK/sif-root" "${SIF_STORES[@]}"
rm -rf "$WORK/buckets"
mapfile -t made < <(docker images --format '{{.Repository}}:{{.Tag}}' | grep -F "$REGISTRY/$NS/" | grep -v ':<none>$')
[ "${#made[@]}" -ge 4 ] || fail "the run made only these images: ${made[*]}"
SAVED=$WORK/images.tar
docker save -o "$SAVED" "${made[@]}"
saved_bytes=$(stat -c %s "$SAVED")
canary_search --private-keys "$SAVED"
rm -f "$SAVED"
figure "canary key: in no job log, artifact, generated file, build cache, SIF or any of ${#made[@]} images ($saved_bytes bytes saved), searched through their archives; no GnuPG secret keyring in any layer"

figure "whole run (Spack $SPACK_VERSION, $STORAGE): $(($(date +%s) - STARTED)) s"
log "e2e passed; figures in $FIGURES"
cat "$FIGURES"
