#!/usr/bin/env bash
# The Docker part of CI: make sure a Docker engine runs here and the local base images exist.
# Installs Debian's docker.io when absent, starts dockerd in the background when it is not
# running, waits for it, then builds the base images (no image registry is reachable).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v dockerd >/dev/null 2>&1; then
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends docker.io
fi
command -v debootstrap >/dev/null 2>&1 || {
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends debootstrap
}

if ! docker info >/dev/null 2>&1; then
  echo "docker: starting dockerd (log: /tmp/dockerd.log)"
  nohup dockerd >/tmp/dockerd.log 2>&1 &
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    sleep 1
  done
fi
docker info >/dev/null 2>&1 || { echo "docker: dockerd did not come up" >&2; tail -n 40 /tmp/dockerd.log >&2; exit 1; }
echo "docker: engine $(docker version --format '{{.Server.Version}}')"

bash .ci/base-images.sh
