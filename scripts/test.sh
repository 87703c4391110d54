#!/usr/bin/env bash
# The one test command: installs what the tests need (idempotently), then runs
# formatting, lints and every test in the workspace. CI (.ci/run) calls exactly
# this; it must pass on a fresh Debian machine that has only the Rust toolchain.
set -euo pipefail

cd "$(dirname "$0")/.."
. scripts/lib/install.sh

# A target dir outside the clone lets repeat CI runs of fresh clones reuse
# compiled dependencies; a fresh machine simply builds it from scratch.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/shoal/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step "toolchain components"
ensure_rustup_components rustfmt clippy

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "test services"
# Real counterparts the tests start themselves on loopback, and fail (not
# skip) without: redis-server for the tracker's Redis store, the CNCF
# distribution registry as the upstream, skopeo as a pulling and pushing
# client, promtool (Debian's prometheus) to check every /metrics.
ensure_debian_packages redis-server docker-registry skopeo prometheus

step "helm chart: lint, render, kubernetes-validate (Kubernetes 1.30, 1.33)"
scripts/check-chart.sh

step "container base image (debootstrap + docker import, cached)"
# The docker-cluster test builds the Dockerfile on it; made once per machine.
scripts/base-image.sh

step "cargo test"
cargo test --workspace --all-targets --locked

step "fuzz targets, 60 s each"
# Builds the fuzz/ workspace once (its own target dir under ~/.cache), then
# runs each target from its seed corpus; fails on any crash.
scripts/fuzz.sh 60

step "all tests passed"
