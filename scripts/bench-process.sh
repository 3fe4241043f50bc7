#!/usr/bin/env bash
# Benchmark `spack-cacher process`: ENVS generated pipelines of JOBS build jobs each, drawn from
# a shared pool so environments overlap as real ones do. Prints the wall time and peak memory.
#
# Usage: scripts/bench-process.sh [ENVS] [JOBS]   (defaults: 20 500)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ENVS=${1:-20}
JOBS=${2:-500}
# One build folder per checkout: cargo would otherwise reuse what another clone compiled.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/spacktainerizah/target/$(printf %s "$ROOT" | sha256sum | cut -c1-12)}
WORK=$(mktemp -d /tmp/stz-bench-process.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
(cd "$ROOT" && cargo build -q --release -p spack-cacher)

# JSON is YAML: the generated files are read like Spack's.
python3 - "$WORK/in" "$ENVS" "$JOBS" <<'PY'
import json, os, random, sys
out, envs, jobs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
random.seed(7)
pool = [f"pkg{i}@1.{i % 7}.0 /{i:07x} %gcc@13.2.0 arch=linux-ubuntu24.04-x86_64_v3" for i in range(jobs * 4)]
for e in range(envs):
    env = f"env{e}"
    root = f"jobs_scratch_dir.amd64/{env}"
    names = random.sample(pool, jobs)
    doc = {"stages": [f"stage-{s}" for s in range(12)] + ["stage-rebuild-index"],
           "variables": {"SPACK_ARTIFACTS_ROOT": root, "SPACK_CONCRETE_ENV_DIR": f"{root}/concrete_environment"}}
    for n in names:
        stage = int(n[3:n.index("@")]) % 12
        doc[n] = {"stage": f"stage-{stage}", "script": ["spack ci rebuild"], "tags": ["kubernetes"],
                  "image": {"name": "builder:latest", "entrypoint": [""]},
                  "variables": {"SPACK_JOB_SPEC_PKG_NAME": n.split("@")[0]},
                  "needs": [{"job": f"generate {env}", "pipeline": "187421"}],
                  "artifacts": {"when": "always", "paths": [f"{root}/logs"]}, "retry": {"max": 2, "when": ["always"]}}
    doc["rebuild-index"] = {"stage": "stage-rebuild-index", "script": ["spack buildcache update-index s3://b"], "when": "always"}
    os.makedirs(f"{out}/{env}")
    json.dump(doc, open(f"{out}/{env}/pipeline.yml", "w"))
PY

cd "$WORK"
/usr/bin/time -f '%e %M' -o time.txt "$CARGO_TARGET_DIR/release/spack-cacher" process --arch amd64 \
    --config "$ROOT/examples/spacktainerizah.yaml" --out out --artifacts-job generate in >/dev/null
read -r wall rss <time.txt
echo "process: $ENVS environments x $JOBS jobs -> $(find out -name '*.yml' | wc -l) pipelines; wall ${wall} s, peak RSS $((rss / 1024)) MiB"
