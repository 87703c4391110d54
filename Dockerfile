# Shoal's container image: shoal-tracker, shoal-origin, shoal-agent and the
# shoal CLI in one minimal Debian image that runs as a non-root user.
#
# Two ways to fill it, one runtime stage each:
#
#   runtime (the default, last stage): builds the workspace from source in a
#   Rust builder image, with the dependencies compiled in a layer of their
#   own that is reused until a Cargo.toml or Cargo.lock changes.
#
#     docker build --build-arg BUILDER_BASE=rust:1.95-bookworm \
#                  --build-arg RUNTIME_BASE=debian:bookworm-slim -t shoal .
#
#   prebuilt: takes binaries built on the host: the build context is a
#   directory holding exactly shoal-tracker, shoal-origin, shoal-agent and
#   shoal (scripts/docker-image.sh --prebuilt stages them; the
#   docker-cluster test does the same). No compiler runs inside docker.
#
#     docker build --target prebuilt -f Dockerfile -t shoal <binaries dir>
#
# BuildKit builds only the stages a target needs. The legacy builder builds
# every stage up to its target: the prebuilt stages come first so that it
# never needs the Rust builder for them.
#
# RUNTIME_BASE defaults to the image scripts/base-image.sh makes locally
# (debootstrap --variant=minbase bookworm + ca-certificates, docker import)
# because our machines cannot pull images. Use the same Debian release as
# the machine that built prebuilt binaries (glibc). No `# syntax=` line and
# no RUN --mount: both need things pulled or BuildKit, and this file must
# build with neither.

ARG RUNTIME_BASE=shoal-base:bookworm
ARG BUILDER_BASE=rust:1-bookworm

# --- runtime-base: the minimal runtime every variant shares ---------------
FROM ${RUNTIME_BASE} AS runtime-base
# A fixed non-root uid/gid (distroless' "nonroot" numbers) so that
# Kubernetes' runAsUser/fsGroup and volume ownership can name it; the data
# directories are the components' defaults.
RUN set -eux; \
    echo 'shoal:x:65532:65532:shoal:/var/lib/shoal:/usr/sbin/nologin' >> /etc/passwd; \
    echo 'shoal:x:65532:' >> /etc/group; \
    echo 'shoal:!:19000::::::' >> /etc/shadow; \
    mkdir -p /var/lib/shoal/agent /var/lib/shoal/origin /etc/shoal; \
    chown -R 65532:65532 /var/lib/shoal
ENV RUST_LOG=info
# No GLIBC_TUNABLES here: the agent pins glibc's malloc policy itself at
# start (agent/src/malloc.rs), so it holds however it is run.
# Registry API (agent), origin HTTP, tracker gRPC, peer ports.
EXPOSE 5050 8080 7070 7001 7002
WORKDIR /var/lib/shoal
USER 65532:65532
CMD ["shoal", "--help"]

# --- prebuilt: binaries from the build context ---------------------------
# The build context is a directory holding exactly the four binaries. The
# legacy builder (docker without buildx) builds every stage before its
# target, so a from-source build passes through here too, copying the
# repository into a throwaway image; a plain COPY of the whole context is
# the one instruction that works with both contexts.
FROM runtime-base AS prebuilt
COPY . /usr/local/bin/

# --- planner: the workspace's manifests and stub sources ------------------
# Its output changes only when a manifest or the lockfile does, so the deps
# stage below is reused across source edits.
FROM ${BUILDER_BASE} AS planner
WORKDIR /src
COPY . .
RUN set -eu; \
    mkdir -p /skeleton; \
    cp Cargo.toml Cargo.lock /skeleton/; \
    find . -name Cargo.toml -not -path './target/*' -not -path './Cargo.toml' | while read -r manifest; do \
        dir=$(dirname "$manifest"); \
        mkdir -p "/skeleton/$dir/src"; \
        cp "$manifest" "/skeleton/$dir/"; \
        echo 'fn main() {}' > "/skeleton/$dir/src/main.rs"; \
        : > "/skeleton/$dir/src/lib.rs"; \
        if [ -f "$dir/build.rs" ]; then echo 'fn main() {}' > "/skeleton/$dir/build.rs"; fi; \
        grep -E '^path *= *"[^"]+\.rs"' "$manifest" | sed -E 's/^path *= *"([^"]+)"/\1/' | while read -r target; do \
            mkdir -p "$(dirname "/skeleton/$dir/$target")"; \
            [ -f "/skeleton/$dir/$target" ] || echo 'fn main() {}' > "/skeleton/$dir/$target"; \
        done; \
    done

# --- deps: every dependency compiled, our crates still stubs --------------
FROM ${BUILDER_BASE} AS deps
WORKDIR /src
COPY --from=planner /skeleton/ ./
RUN cargo build --release --locked \
        -p shoal-tracker -p shoal-origin -p shoal-agent -p shoal

# --- build: the real sources on top of the compiled dependencies ----------
FROM deps AS build
# The release profile keeps line tables for backtraces; they are three
# quarters of each binary. STRIP_DEBUG=0 keeps them in the image.
ARG STRIP_DEBUG=1
COPY . .
# COPY keeps the context's mtimes, which can be older than the stubs' build:
# touch every workspace source so cargo rebuilds our crates (not the deps).
RUN set -eu; \
    find . -path ./target -prune -o \( -name '*.rs' -o -name '*.proto' \) -print0 | xargs -0 touch; \
    cargo build --release --locked \
        -p shoal-tracker -p shoal-origin -p shoal-agent -p shoal; \
    mkdir -p /out; \
    for bin in shoal-tracker shoal-origin shoal-agent shoal; do \
        cp "target/release/$bin" /out/; \
    done; \
    if [ "$STRIP_DEBUG" = 1 ]; then strip --strip-debug /out/*; fi

# --- runtime: the default target, built from source -----------------------
FROM runtime-base AS runtime
COPY --from=build /out/ /usr/local/bin/
