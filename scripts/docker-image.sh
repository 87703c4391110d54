#!/usr/bin/env bash
# Builds Shoal's container image from the repository's Dockerfile.
#
#   scripts/docker-image.sh [TAG]
#       from source inside docker (needs a Rust builder image: BUILDER_BASE,
#       default rust:1-bookworm, and the runtime base, RUNTIME_BASE)
#   scripts/docker-image.sh --prebuilt [TAG]
#       builds the release binaries on this machine with cargo, then puts them
#       in the image (the Dockerfile's `prebuilt` target); no compiler runs in
#       docker. The runtime base must be this machine's Debian release.
#
# TAG defaults to shoal:dev. The runtime base defaults to the image
# scripts/base-image.sh makes (and is made when missing).
set -euo pipefail

cd "$(dirname "$0")/.."

mode=source
if [ "${1:-}" = "--prebuilt" ]; then
    mode=prebuilt
    shift
fi
TAG="${1:-shoal:dev}"
RUNTIME_BASE="${RUNTIME_BASE:-shoal-base:bookworm}"
BINARIES=(shoal-tracker shoal-origin shoal-agent shoal)

if [ "$RUNTIME_BASE" = "shoal-base:bookworm" ]; then
    scripts/base-image.sh
fi

if [ "$mode" = source ]; then
    exec docker build --build-arg "RUNTIME_BASE=$RUNTIME_BASE" \
        ${BUILDER_BASE:+--build-arg "BUILDER_BASE=$BUILDER_BASE"} -t "$TAG" .
fi

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/shoal/target}"
cargo build --release --locked -p shoal-tracker -p shoal-origin -p shoal-agent -p shoal
context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
for bin in "${BINARIES[@]}"; do
    cp "$CARGO_TARGET_DIR/release/$bin" "$context/"
done
docker build --target prebuilt --build-arg "RUNTIME_BASE=$RUNTIME_BASE" \
    -f Dockerfile -t "$TAG" "$context"
