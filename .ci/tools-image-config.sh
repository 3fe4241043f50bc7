#!/usr/bin/env bash
# Writes the configuration `spacktainerizer build --image tools` publishes the released tools
# image with: REGISTRY/tools:VERSION, on Debian, the project registry's login by variable name.
# Usage: .ci/tools-image-config.sh REGISTRY VERSION [OS_IMAGE] > release.yaml
set -euo pipefail
registry=$1
version=$2
os_image=${3:-debian:bookworm}
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
  arch_suffix: false
base_images:
  os_image: $os_image
architectures:
  amd64:
    runner_tag: docker
    base_requirement: "%gcc@12"
    build_cache:
      url: file:///unused
YAML
