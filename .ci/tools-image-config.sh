#!/usr/bin/env bash
# Writes the configuration `spacktainerizer build --image tools` publishes the released tools
# image with: REGISTRY/tools:VERSION, on Debian, the project registry's login by variable name.
# With several architectures (the default: amd64 and arm64), each one's image is tagged
# VERSION-ARCH and `spacktainerizer index` joins them under VERSION.
# Usage: .ci/tools-image-config.sh REGISTRY VERSION [OS_IMAGE [ARCH...]] > release.yaml
set -euo pipefail
registry=$1
version=$2
os_image=${3:-debian:bookworm}
shift $(($# < 3 ? $# : 3))
archs=("$@")
[ ${#archs[@]} -gt 0 ] || archs=(amd64 arm64)
# Checked before anything is written: the runner of each is tagged with its name.
seen=' '
for arch in "${archs[@]}"; do
    case $arch in
        amd64 | arm64) ;;
        *) echo "tools-image-config.sh: unknown architecture $arch (amd64, arm64)" >&2; exit 2 ;;
    esac
    case $seen in *" $arch "*) echo "tools-image-config.sh: $arch given twice" >&2; exit 2 ;; esac
    seen="$seen$arch "
done
arch_suffix=false
[ ${#archs[@]} -eq 1 ] || arch_suffix=true
cat <<YAML
# The tools image of release $version (written by .ci/tools-image-config.sh).
default_branch: release
registry:
  url: $registry
  credentials:
    user_env: CI_REGISTRY_USER
    secret_env: CI_REGISTRY_PASSWORD
labels:
  namespace: org.spacktainerizah
tags:
  default_branch: "$version"
  arch_suffix: $arch_suffix
base_images:
  os_image: $os_image
architectures:
YAML
for arch in "${archs[@]}"; do
    cat <<YAML
  $arch:
    runner_tag: $arch
    base_requirement: "%gcc@12"
    build_cache:
      url: file:///unused
YAML
done
