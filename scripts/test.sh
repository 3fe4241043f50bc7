#!/usr/bin/env bash
# Run every check and test of the workspace against real services.
#
# Installs what is missing (Debian packages, a moto S3 server in a virtualenv), starts on 127.0.0.1
# an S3 server, an OCI registry and a Docker daemon on a private socket, runs fmt, clippy and the
# whole test suite, and stops what it started. Extra arguments go to `cargo test`.
#
# Tests that need a service are `#[ignore = "NOT RUN: needs …"]`, so a plain `cargo test` lists
# them without running them; here they run too (`--include-ignored`), and the run fails when any
# test did not run (one still ignored, or one stopped with `NOT RUN: …` because something it
# needs is missing: counted as not run, not as failed). A failed run keeps its logs and
# end-to-end work folders (the path is printed).
set -euo pipefail

# shellcheck source=scripts/services.sh
. "$(dirname "${BASH_SOURCE[0]}")/services.sh"

cd "$ROOT"
# Where the run's time goes: each phase's end, as time since the start.
at() { log "$1 done at $((SECONDS / 60)) min $((SECONDS % 60)) s"; }
# The whole run's peak with some room: from an empty cache, a run here took 25.8 GB more disk
# at its busiest, both end-to-end runs side by side, 7.5 GB of it the cache it leaves (see
# check_free_space). A selection of tests needs far less.
[ $# -gt 0 ] || check_free_space 30
install_packages
at "installing"
start_services
make_os_image
at "starting the services"

if [ -z "${SPACKTAINERIZAH_SKIP_LINT:-}" ]; then
    log "cargo fmt --check"
    cargo fmt --all -- --check
    log "cargo clippy"
    cargo clippy --workspace --all-targets --quiet -- -D warnings
    at "fmt and clippy"
fi
# The arm64 tools images carry the tools built for arm64: cross-compiled here (rustup's target,
# Debian's cross gcc), for the test that builds them (tests/tests/images.rs).
# A build that cannot be made (no rustup, no network for the target) marks that test NOT RUN,
# with why, instead of stopping the run before any test.
if [ -n "${SPACKTAINERIZAH_TEST_ARM64:-}" ]; then
    target=aarch64-unknown-linux-gnu
    # rust-toolchain.toml lists the target; an older rustup adds it only to a new toolchain.
    installed=$(rustup target list --installed 2>/dev/null || true)
    if command -v rustup >/dev/null && ! grep -qx "$target" <<<"$installed"; then
        rustup target add "$target" || true
    fi
    log "cargo build --target $target (the arm64 images' tools)"
    if cargo build --quiet --target "$target" --bins -p spacktainerizer -p spack-cacher \
        -p spackah -p singularitah -p spackitor 2>"$RUN_DIR/cross-build.log"; then
        export SPACKTAINERIZAH_TEST_TOOLS_ARM64=$CARGO_TARGET_DIR/$target/debug
    else
        tail -n 20 "$RUN_DIR/cross-build.log" >&2
        export SPACKTAINERIZAH_TEST_TOOLS_ARM64_NOT_RUN="the tools could not be cross-compiled for $target (see $RUN_DIR/cross-build.log)"
    fi
    [ "${SPACKTAINERIZAH_TEST_ARM64_BUILDER:-}" = 1 ] ||
        log "the arm64 builder is not built (~16 min under emulation; SPACKTAINERIZAH_TEST_ARM64_BUILDER=1 builds and checks it)"
    at "the arm64 build"
fi
# Arguments select tests (`-p spackitor --test clean`) and skip the end-to-end run.
E2E=yes
[ $# -gt 0 ] && E2E=
[ $# -gt 0 ] || set -- --workspace
# The ignored tests too: after the arguments' own `--` when they have one.
separator=--
for arg in "$@"; do [ "$arg" != -- ] || separator=; done
set -- "$@" ${separator:+"$separator"} --include-ignored
log "cargo test $*"
status=0
cargo test "$@" 2>&1 | tee "$RUN_DIR/cargo-test.log" || status=$?
at "cargo test"
e2e_logs=()
if [ -n "$E2E" ] && [ "$status" = 0 ]; then
    # The whole chain, as GitLab would run it: both Spack versions (build-cache layouts v2 and
    # v3), S3 and folders. Side by side: each has its own registry namespace, servers, ports
    # and work folder, and much of a run is waiting on containers and servers, which the other
    # run fills.
    pids=()
    # Interrupted, the runs go too, before the services they use.
    trap 'kill "${pids[@]}" 2>/dev/null; cleanup 130' INT
    trap 'kill "${pids[@]}" 2>/dev/null; cleanup 143' TERM
    for args in "--spack 0.23.1 --s3" "--spack 1.0.2"; do
        log "end-to-end run: $args"
        name=e2e-${args//[ .-]/}
        read -ra options <<<"$args"
        "$ROOT/scripts/e2e.sh" "${options[@]}" --work "$RUN_DIR/$name" >"$RUN_DIR/$name.log" 2>&1 &
        pids+=($!)
        e2e_logs+=("$RUN_DIR/$name.log")
    done
    for i in "${!pids[@]}"; do
        if wait "${pids[$i]}"; then e2e_ok=yes; else e2e_ok=; status=1; fi
        grep -E '^(==>|E2E|NOT RUN|ci-runner: FAIL|pipeline|  |image|build cache|SIF|whole|no-op|signed|tampered|greeter SBOM|canary|signing|reused)' \
            "${e2e_logs[$i]}" >&2 || true
        # What made a run fail (a job's log tail, a command's error) is in its last lines.
        [ -n "$e2e_ok" ] || { log "the last lines of ${e2e_logs[$i]}:"; tail -n 30 "${e2e_logs[$i]}" >&2; }
    done
    at "the end-to-end runs"
fi
# One closing line for the whole run (cargo prints one per test binary); it fails the run when
# a test failed or did not run.
"$ROOT/scripts/test-summary.sh" "$RUN_DIR/cargo-test.log" "${e2e_logs[@]}" || status=1
exit "$status"
