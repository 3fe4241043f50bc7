#!/usr/bin/env bash
# Benchmark the commands that write the pipelines, at scale: a definitions repository of
# DEFS Spack container definitions on each of two architectures (amd64, arm64), replicated
# from the examples. Measures `spack-cacher chain`, `spack-cacher prepare`, `spack-cacher
# process` per architecture and `spackah pipeline` (the `generate containers` job), then lists
# every pipeline file written with its size.
#
# Spack's own output is real: the concretized `spack.lock` and the `spack ci generate` pipeline
# of each example environment were made once by Spack 1.0.2 (tests/fixtures/spack/generated/,
# see its README). Each container gets a copy with its own name and paths; its root specs, and
# VARY percent of the others (with everything depending on them, as Spack's hashes do), get
# hashes of their own, so environments overlap as real ones do. arm64 copies get arm64 paths,
# target and hashes.
#
# Usage: scripts/bench-chain.sh [DEFS] [VARY]   (defaults: 100 25)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEFS=${1:-100}
VARY=${2:-25}
ARCHS=(amd64 arm64)
BRANCH=main
BASE_TAG=bench
FIXTURES=$ROOT/tests/fixtures/spack/generated
# The project splits what would be larger (model::ci::MAX_FILE_BYTES).
SPLIT_BYTES=$(sed -n 's/^pub const MAX_FILE_BYTES: usize = \([0-9_]*\);/\1/p' "$ROOT/model/src/ci/mod.rs" | tr -d _)
# GitLab refuses a configuration file above `max_yaml_size_bytes`: 2 MB by default since GitLab
# 17.3 (1 MB before, which older instances keep), counted on the parsed YAML:
# https://docs.gitlab.com/administration/instance_limits/#maximum-size-and-depth-of-cicd-configuration-yaml-files
# https://gitlab.com/gitlab-org/gitlab/-/merge_requests/160826
GITLAB_LIMIT=${GITLAB_LIMIT:-$((2 * 1024 * 1024))}

# One build folder per checkout: cargo would otherwise reuse what another clone compiled.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/spacktainerizah/target/$(printf %s "$ROOT" | sha256sum | cut -c1-12)}
WORK=$(mktemp -d /tmp/stz-bench-chain.XXXXXX)
REGISTRY_PID=
cleanup() {
    if [ -n "$REGISTRY_PID" ]; then kill "$REGISTRY_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT
(cd "$ROOT" && cargo build -q --release -p spack-cacher -p spackah)
BIN=$CARGO_TARGET_DIR/release
REPO=$WORK/definitions
RESULTS=$WORK/results.txt
: >"$RESULTS"

# measure LABEL COMMAND...: run it in the definitions repository, its output discarded; wall
# time and peak memory go into the results.
measure() {
    local label=$1 wall rss
    shift
    if ! (cd "$REPO" && /usr/bin/time -f '%e %M' -o "$WORK/time.txt" "$@" >"$WORK/out.log" 2>&1); then
        cat "$WORK/out.log" >&2
        echo "bench-chain: $label failed" >&2
        exit 1
    fi
    read -r wall rss <"$WORK/time.txt"
    printf '%s\t%s\t%s\n' "$label" "$wall" "$((rss / 1024))" >>"$RESULTS"
}

# A registry that has no image at all, on loopback (plain HTTP): the container plan asks it
# for every container's tag, and every container needs building, as on a first push.
start_registry() {
    python3 - "$WORK/registry.port" <<'PY' &
import http.server, json, sys
class H(http.server.BaseHTTPRequestHandler):
    def reply(self, body):
        code = 200 if self.path.rstrip("/") == "/v2" else 404
        data = b"{}" if code == 200 else json.dumps({"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]}).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body:
            self.wfile.write(data)
    def do_GET(self): self.reply(True)
    def do_HEAD(self): self.reply(False)
    def log_message(self, *a): pass
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(str(s.server_address[1]))
import os; os.rename(sys.argv[1] + ".tmp", sys.argv[1])
s.serve_forever()
PY
    REGISTRY_PID=$!
    for _ in $(seq 50); do [ -s "$WORK/registry.port" ] && break; sleep 0.1; done
    REGISTRY=127.0.0.1:$(cat "$WORK/registry.port")
}

# The definitions repository: the example template, packages and files; DEFS definitions per
# architecture, each a copy of an example environment Spack's output exists for (a plain
# `<name>.yaml` or a `<name>/spack.yaml` folder with the example epilogue), under its own
# name; the example configuration with file:// buckets and the registry above.
make_repo() {
    mkdir -p "$REPO"
    cp -r "$ROOT/examples/spack.yaml" "$ROOT/examples/packages" "$ROOT/examples/spacktainer" "$REPO/"
    local arch i kind name src
    # The example definitions Spack's output was kept for.
    local kinds=()
    for src in "$FIXTURES"/*/; do kinds+=("$(basename "$src")"); done
    for arch in "${ARCHS[@]}"; do
        for ((i = 0; i < DEFS; i++)); do
            kind=${kinds[i % ${#kinds[@]}]}
            name=$(printf '%s-%03d' "$kind" "$i")
            src=$ROOT/examples/container_definitions/amd64/$kind.yaml
            if ((i % 4 == 3)); then
                mkdir -p "$REPO/container_definitions/$arch/$name"
                cp "$src" "$REPO/container_definitions/$arch/$name/spack.yaml"
                cp "$ROOT/examples/container_definitions/amd64/neurodamus-neocortex/Dockerfile.epilogue" \
                    "$REPO/container_definitions/$arch/$name/"
            else
                mkdir -p "$REPO/container_definitions/$arch"
                cp "$src" "$REPO/container_definitions/$arch/$name.yaml"
            fi
        done
    done
    sed -e "s#registry\.example\.org/hpc/spacktainers#$REGISTRY/hpc/spacktainers#" \
        -e "s#docker\.io/bluebrain#$REGISTRY/bluebrain#" \
        -e "s#s3://\([a-z0-9/-]*\)#file://$WORK/buckets/\1#" \
        -e '/endpoint_url:/d' \
        "$ROOT/examples/spacktainerizah.yaml" >"$REPO/spacktainerizah.yaml"
}

# What `spack-cacher generate` leaves for each prepared environment: its `spack.lock` and the
# pipeline `spack ci generate` wrote, copied from the real ones with this container's names.
replicate_spack_output() {
    python3 - "$FIXTURES" "$REPO" "$VARY" "${ARCHS[@]}" <<'PY'
import hashlib, json, os, random, re, sys
fixtures, repo, vary, archs = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
B32 = "abcdefghijklmnopqrstuvwxyz234567"
# Where the fixtures were made (amd64, the example configuration), and what differs on each
# architecture: the targets (Spack chose the machine's for packages; externals keep the
# requirement's), the runner tag and the upload mirror.
FROM_ARCH = "amd64"
PER_ARCH = {
    "amd64": [],
    "arm64": [("x86_64_v4", "armv8.4a"), ("x86_64_v3", "aarch64"),  # packages, externals
              ("s3://spack-build-cache", "s3://spack-cache-arm64")],
}
TAG = re.compile(r"^(\s*- )kubernetes$", re.M)
TAGS = {"amd64": "kubernetes", "arm64": "aws_graviton"}

def new_hash(seed):
    d = hashlib.sha256(seed.encode()).digest()
    return "".join(B32[b % 32] for b in d[:32])

fix = {}
for kind in sorted(os.listdir(fixtures)):
    d = os.path.join(fixtures, kind)
    if not os.path.isdir(d):
        continue
    lock = open(os.path.join(d, "spack.lock")).read()
    specs = json.loads(lock)["concrete_specs"]
    deps = {h: [x["hash"] for x in s.get("dependencies", [])] for h, s in specs.items()}
    roots = [r["hash"] for r in json.loads(lock)["roots"]]
    fix[kind] = (lock, open(os.path.join(d, "pipeline.yml")).read(), deps, roots)

FULL = re.compile(r"(?<![a-z2-7])[a-z2-7]{32}(?![a-z2-7])")
SHORT = re.compile(r"(?<=/)[a-z2-7]{7}(?![a-z2-7])")
for arch in archs:
    envs = os.path.join(repo, "envs", arch)
    for name in sorted(os.listdir(envs)):
        kind = next(k for k in sorted(fix, key=len, reverse=True) if name.startswith(k + "-"))
        lock, pipeline, deps, roots = fix[kind]
        rnd = random.Random(f"{arch}/{name}")
        # A node of its own when it is a root, drawn, or depends on one of its own.
        own = set(roots) | {h for h in sorted(deps) if rnd.randrange(100) < vary}
        changed = True
        while changed:
            changed = False
            for h, ds in deps.items():
                if h not in own and any(x in own for x in ds):
                    own.add(h)
                    changed = True
        full = {h: new_hash(f"{arch}/{name}/{h}" if h in own else f"{arch}/{h}")
                if (h in own or arch != FROM_ARCH) else h for h in deps}
        short = {h[:7]: n[:7] for h, n in full.items()}
        def rename(text):
            text = FULL.sub(lambda m: full.get(m.group(0), m.group(0)), text)
            text = SHORT.sub(lambda m: short.get(m.group(0), m.group(0)), text)
            text = text.replace(f"{FROM_ARCH}/{kind}", f"{arch}/{name}")
            text = text.replace(f".{FROM_ARCH}", f".{arch}")
            for a, b in PER_ARCH[arch]:
                text = text.replace(a, b)
            return TAG.sub(lambda m: m.group(1) + TAGS[arch], text)
        with open(os.path.join(envs, name, "spack.lock"), "w") as f:
            f.write(rename(lock))
        out = os.path.join(repo, f"jobs_scratch_dir.{arch}", name)
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "pipeline.yml"), "w") as f:
            f.write(rename(pipeline))
PY
}

# The pipeline before recorded every environment as it concretized it (`record`: the lockfile
# and its inputs) and filled the caches (an index listing every spec of those lockfiles).
record_first_push() {
    local arch
    for arch in "${ARCHS[@]}"; do
        measure "record $arch ($DEFS lockfiles)" "$BIN/spack-cacher" record --envs envs --arch "$arch" \
            --branch "$BRANCH"
    done
    python3 - "$REPO" "$WORK/buckets" <<'PY'
import json, os, sys
repo, buckets = sys.argv[1], sys.argv[2]
caches = {"amd64": "spack-build-cache", "arm64": "spack-cache-arm64"}
for arch, cache in caches.items():
    installs = {}
    envs = os.path.join(repo, "envs", arch)
    for name in os.listdir(envs):
        for h, spec in json.load(open(os.path.join(envs, name, "spack.lock")))["concrete_specs"].items():
            spec = dict(spec, hash=h)
            installs[h] = {"spec": spec, "ref_count": 0, "in_buildcache": "external" not in spec}
    path = os.path.join(buckets, cache, "build_cache", "index.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    json.dump({"database": {"version": "7", "installs": installs}}, open(path, "w"))
PY
}

# A `spack` standing in for the real one where the benchmark must see what would be run: it
# records each call; `concretize` gives the environment its first lockfile again (kept in
# LOCKS), `ci generate` writes Spack's no-op pipeline.
make_spack_stand_in() {
    mkdir -p "$WORK/locks"
    (cd "$REPO/envs" && find . -name spack.lock -exec cp --parents {} "$WORK/locks" \;)
    cat >"$WORK/spack" <<SH
#!/bin/sh
echo "\$*" >>"$WORK/spack-calls.log"
env=\$2 out=
case "\$3" in concretize) cp "$WORK/locks/\$(basename "\$(dirname "\$env")")/\$(basename "\$env")/spack.lock" "\$env/" ;; esac
while [ \$# -gt 0 ]; do
    [ "\$1" = --output-file ] && out=\$2
    shift
done
if [ -n "\$out" ]; then
    printf 'no-specs-to-rebuild:\n  script: [echo nothing]\n' >"\$out"
fi
SH
    chmod +x "$WORK/spack"
}

# The `generate build cache ARCH` job of a pipeline: prepare (from scratch), generate reusing
# what was recorded, record, process; each measured under LABEL.
generate_job() { # LABEL
    local arch
    rm -rf "$REPO/envs" "$REPO"/jobs_scratch_dir.*
    : >"$WORK/spack-calls.log"
    measure "prepare ($1)" "$BIN/spack-cacher" prepare --out envs --branch "$BRANCH" \
        --base-tag "$BASE_TAG" --project-dir "$REPO" --builder-image "$BUILDER"
    for arch in "${ARCHS[@]}"; do
        measure "generate $arch ($1)" "$BIN/spack-cacher" generate --envs envs --arch "$arch" \
            --pipelines "jobs_scratch_dir.$arch" --branch "$BRANCH" --spack "$WORK/spack"
        measure "record $arch ($1)" "$BIN/spack-cacher" record --envs envs --arch "$arch" \
            --branch "$BRANCH"
        measure "process $arch ($1)" "$BIN/spack-cacher" process --arch "$arch" \
            --out "jobs_scratch_dir.$arch/pipelines" --artifacts-job "generate build cache $arch" \
            "jobs_scratch_dir.$arch"
    done
}

# A push that changes nothing: every environment reused, no Spack run, the no-op child
# pipelines; then a push that changes one definition: only its environment is concretized.
scenario_noop_push() {
    make_spack_stand_in
    record_first_push
    generate_job "no-op push"
    local calls
    calls=$(wc -l <"$WORK/spack-calls.log")
    NOOP_SUMMARY="no-op push: spack called $calls times; child pipelines: $(grep -l nothing-to-do "$REPO"/jobs_scratch_dir.*/pipelines/*.yml | wc -l || true) no-op of ${#ARCHS[@]}"
    # One definition changes (an environment variable set in its spack.yaml).
    local changed
    changed=$(find "$REPO/container_definitions/amd64" -maxdepth 1 -name '*.yaml' | sort | head -n 1)
    printf '  env_vars:\n    set:\n      BENCH_CHANGED: "1"\n' >>"$changed"
    generate_job "one definition changed"
    CHANGED_SUMMARY="one definition changed ($(basename "$changed" .yaml)): spack concretized $(grep -c 'concretize -f' "$WORK/spack-calls.log" || true) environment(s): $(grep 'concretize -f' "$WORK/spack-calls.log" | sed 's#.*envs/##; s# concretize.*##' | tr '\n' ' ' || true)"
}

report() {
    echo
    printf '%-28s %8s %8s\n' command "wall s" "peak MB"
    while IFS=$'\t' read -r label wall mb; do
        printf '%-28s %8s %8s\n' "$label" "$wall" "$mb"
    done <"$RESULTS"
    echo
    echo "pipeline files (split threshold $SPLIT_BYTES bytes, GitLab limit $GITLAB_LIMIT bytes):"
    local f size flag count=0 total=0
    while IFS= read -r f; do
        size=$(stat -c %s "$REPO/$f")
        count=$((count + 1))
        total=$((total + size))
        flag=
        if ((size > GITLAB_LIMIT)); then
            flag="  OVER GITLAB'S LIMIT"
        elif ((size > SPLIT_BYTES)); then
            flag="  over the split threshold"
        fi
        printf '%10d  %s%s\n' "$size" "$f" "$flag"
    done < <(cd "$REPO" && {
        echo .gitlab-ci.yml
        for arch in "${ARCHS[@]}"; do find "jobs_scratch_dir.$arch/pipelines" -type f -name '*.yml'; done | sort -V
        echo containers.yml
        # Parts of a containers pipeline too large for one file (model::ci::CONTAINER_PARTS_DIR).
        if [ -d containers-parts ]; then find containers-parts -type f | sort -V; fi
    })
    echo "$count files, $total bytes"
}

start_registry
make_repo
measure "chain" "$BIN/spack-cacher" chain --out .gitlab-ci.yml
# Pinned by digest, as in CI: each environment's concretization inputs are written beside it.
BUILDER=$REGISTRY/hpc/spacktainers/builder@sha256:$(printf bench | sha256sum | cut -c1-64)
measure "prepare ($((DEFS * ${#ARCHS[@]})) envs)" "$BIN/spack-cacher" prepare --out envs \
    --branch "$BRANCH" --base-tag "$BASE_TAG" --project-dir "$REPO" --builder-image "$BUILDER"
replicate_spack_output
for arch in "${ARCHS[@]}"; do
    measure "process $arch ($DEFS pipelines)" "$BIN/spack-cacher" process --arch "$arch" \
        --out "jobs_scratch_dir.$arch/pipelines" --artifacts-job "generate build cache $arch" \
        "jobs_scratch_dir.$arch"
done
measure "containers ($((DEFS * ${#ARCHS[@]})) plans)" "$BIN/spackah" pipeline --environments envs \
    --out containers.yml --branch "$BRANCH" --base-tag "$BASE_TAG"
report
# The pushes after it, measured apart.
: >"$RESULTS"
NOOP_SUMMARY='' CHANGED_SUMMARY=''
scenario_noop_push
echo
printf '%-44s %8s %8s\n' command "wall s" "peak MB"
while IFS=$'\t' read -r label wall mb; do
    printf '%-44s %8s %8s\n' "$label" "$wall" "$mb"
done <"$RESULTS"
for label in "no-op push" "one definition changed"; do
    printf '%s: the generate jobs took %s s in all\n' "$label" \
        "$(awk -F'\t' -v l="($label)" 'index($1, l) { s += $2 } END { print s }' "$RESULTS")"
done
echo "$NOOP_SUMMARY"
echo "$CHANGED_SUMMARY"
