#!/usr/bin/env bash
# Builds a local stand-in for the official `rust:1-slim-bookworm` image, which the sidecar's
# from-source build (images/sidecar/Dockerfile.source) starts from when the host's own
# `bottle-sidecar` cannot run in the engine (a macOS host, another architecture). No image
# registry is reachable here, so like the Debian base image it is made locally: Debian slim with
# the C toolchain the official image carries (gcc, libc6-dev) and this machine's Rust toolchain
# (rustc, cargo, std; no docs or sources). Docker is the cache: nothing is done when it exists.
set -euo pipefail

IMAGE="${RUST_IMAGE:-rust:1-slim-bookworm}"
if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "rust-image: $IMAGE present (cached)"
  exit 0
fi
SYSROOT=$(rustc --print sysroot)
CTX=$(mktemp -d /tmp/bot-bottle-rust-image.XXXXXX)
trap 'rm -rf "$CTX"' EXIT
mkdir -p "$CTX/rust"
cp -a "$SYSROOT/bin" "$CTX/rust/"
mkdir -p "$CTX/rust/lib"
# The compiler's libraries and the target's std; not lib/rustlib/src or the docs.
find "$SYSROOT/lib" -maxdepth 1 -type f -exec cp -a {} "$CTX/rust/lib/" \;
mkdir -p "$CTX/rust/lib/rustlib"
HOST=$(rustc -vV | sed -n 's/^host: //p')
cp -a "$SYSROOT/lib/rustlib/$HOST" "$CTX/rust/lib/rustlib/"
cp -a "$SYSROOT/lib/rustlib/etc" "$CTX/rust/lib/rustlib/" 2>/dev/null || true
cat >"$CTX/Dockerfile" <<'DOCKERFILE'
FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
COPY rust /usr/local/rust
ENV RUSTUP_HOME=/usr/local/rustup CARGO_HOME=/usr/local/cargo \
    PATH=/usr/local/cargo/bin:/usr/local/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
RUN rustc --version && cargo --version
DOCKERFILE
echo "rust-image: building $IMAGE from $(rustc --version)"
docker build -q -t "$IMAGE" "$CTX" >/dev/null 2>&1 || docker build -t "$IMAGE" "$CTX"
echo "rust-image: built $IMAGE"
