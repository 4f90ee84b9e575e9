#!/usr/bin/env bash
# Builds the local base images the Dockerfiles name (no image registry is reachable here):
# `debian:bookworm-slim` from a debootstrap minbase of bookworm, imported with `docker import`.
# Docker itself is the cache: when the image already exists nothing is done.
#
# The Debian mirror is the one apt is configured with on this machine (read from
# /etc/apt/sources.list*), so no mirror host is hard-coded here.
set -euo pipefail

IMAGE="${BASE_IMAGE:-debian:bookworm-slim}"
SUITE="${BASE_SUITE:-bookworm}"

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "base-images: $IMAGE present (cached)"
  exit 0
fi

mirror_from_apt() {
  local f url=""
  # deb822 sources: "URIs: <url>" on a stanza whose Suites include the suite.
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -e "$f" ] || continue
    url=$(awk -v suite="$SUITE" '
      BEGIN { RS=""; FS="\n" }
      {
        uris=""; suites=""
        for (i = 1; i <= NF; i++) {
          if ($i ~ /^URIs:/) { sub(/^URIs:[ \t]*/, "", $i); uris=$i }
          if ($i ~ /^Suites:/) { sub(/^Suites:[ \t]*/, "", $i); suites=" " $i " " }
        }
        if (uris != "" && index(suites, " " suite " ") > 0) { split(uris, u, " "); print u[1]; exit }
      }' "$f")
    [ -n "$url" ] && { echo "$url"; return; }
  done
  # one-line sources: "deb [opts] <url> <suite> <components>"
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -e "$f" ] || continue
    url=$(awk -v suite="$SUITE" '
      $1 == "deb" {
        i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
        if ($(i+1) == suite) { print $i; exit }
      }' "$f")
    [ -n "$url" ] && { echo "$url"; return; }
  done
}

MIRROR="${DEBIAN_MIRROR:-$(mirror_from_apt)}"
if [ -z "$MIRROR" ]; then
  echo "base-images: no apt source for suite '$SUITE' in /etc/apt/sources.list*; set DEBIAN_MIRROR" >&2
  exit 1
fi

command -v debootstrap >/dev/null || {
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends debootstrap
}

ROOT=$(mktemp -d /tmp/bot-bottle-rootfs.XXXXXX)
trap 'rm -rf "$ROOT"' EXIT
echo "base-images: debootstrap $SUITE minbase from $MIRROR"
debootstrap --variant=minbase "$SUITE" "$ROOT" "$MIRROR" >/tmp/bot-bottle-debootstrap.log 2>&1 || {
  tail -n 30 /tmp/bot-bottle-debootstrap.log >&2
  exit 1
}
# Trim like the official slim image: no apt lists, no caches.
rm -rf "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/cache/apt/*.bin "$ROOT"/var/cache/apt/archives/*.deb
# Keep apt's source pointing at the same mirror for `apt-get update` inside `docker build`.
echo "deb $MIRROR $SUITE main" >"$ROOT/etc/apt/sources.list"
tar -C "$ROOT" -c . | docker import \
  --change 'CMD ["bash"]' \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  - "$IMAGE" >/dev/null
echo "base-images: imported $IMAGE"
