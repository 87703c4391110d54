#!/usr/bin/env bash
# Makes the runtime base image that the Dockerfile names (RUNTIME_BASE,
# default shoal-base:bookworm) without pulling anything: a minimal Debian
# bookworm root filesystem made with debootstrap from Debian's mirror, then
# `docker import`ed. Our machines run a Docker Engine that can pull no image,
# so this is how the image build gets its base.
#
# Idempotent: when an image with this tag and this script's recipe version
# exists, it does nothing (no network, no root filesystem). Bump
# RECIPE_VERSION when the recipe changes so existing machines rebuild.
#
#   scripts/base-image.sh            # make shoal-base:bookworm if missing
#   SHOAL_BASE_IMAGE=x:y scripts/base-image.sh
#   SHOAL_BASE_REBUILD=1 scripts/base-image.sh   # rebuild even if present
#
# Bookworm because the test image takes the binaries that scripts/test.sh
# built on this Debian 12 host: the image's glibc must be the same release.
set -euo pipefail

cd "$(dirname "$0")/.."
. scripts/lib/install.sh

TAG="${SHOAL_BASE_IMAGE:-shoal-base:bookworm}"
SUITE="${SHOAL_BASE_SUITE:-bookworm}"
MIRROR="${SHOAL_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
RECIPE_VERSION=1
# What the binaries need at run time beyond minbase: CA roots for HTTPS
# upstream registries. Nothing else (no shell tools, no package lists).
INCLUDE="ca-certificates"

if ! docker version --format '{{.Server.Version}}' >/dev/null 2>&1; then
    echo "error: no Docker daemon answers (docker version failed); cannot make $TAG" >&2
    exit 1
fi

have=$(docker image inspect --format '{{ index .Config.Labels "dev.shoal.base.recipe" }}' "$TAG" 2>/dev/null || true)
if [ "$have" = "$RECIPE_VERSION" ] && [ -z "${SHOAL_BASE_REBUILD:-}" ]; then
    echo "base image $TAG (recipe $RECIPE_VERSION) is present"
    exit 0
fi

ensure_debian_packages debootstrap

rootfs=$(mktemp -d /tmp/shoal-base.XXXXXX)
cleanup() { as_root rm -rf --one-file-system "$rootfs"; }
trap cleanup EXIT

started=$(date +%s)
echo "debootstrap --variant=minbase $SUITE from $MIRROR (a few minutes)"
as_root debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$rootfs" "$MIRROR" \
    >"$rootfs.log" 2>&1 || {
    tail -n 30 "$rootfs.log" >&2
    exit 1
}
rm -f "$rootfs.log"

# Trim what a runtime image never reads: package caches and lists, docs,
# man pages, locales other than C, logs.
as_root rm -rf \
    "$rootfs"/var/cache/apt/* "$rootfs"/var/lib/apt/lists/* \
    "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
    "$rootfs"/usr/share/locale/* "$rootfs"/var/log/* "$rootfs"/tmp/*
# A container's resolv.conf and hosts are bind-mounted by the engine.
as_root truncate -s 0 "$rootfs/etc/resolv.conf" 2>/dev/null || true

as_root tar --numeric-owner --xattrs -C "$rootfs" -c . |
    docker import \
        --change "LABEL dev.shoal.base.recipe=$RECIPE_VERSION" \
        --change "LABEL dev.shoal.base.suite=$SUITE" \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["/bin/bash"]' \
        - "$TAG" >/dev/null

echo "made $TAG in $(($(date +%s) - started)) s: $(docker image inspect --format '{{.Size}}' "$TAG" | awk '{printf "%.0f MB", $1/1e6}')"
