#!/usr/bin/env bash
# Build the project's images with no container registry: a Debian base root filesystem made by
# mmdebstrap (cached), imported into Docker, then the real Dockerfiles on top of it, installing
# wheels built on this machine (so a TLS-intercepting proxy or an offline build still works).
#
# Usage: scripts/build-images.sh     (needs root for dockerd; SIPRTMP_CACHE, default /var/cache/siprtmp)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/apt.sh
apt_install docker.io mmdebstrap

CACHE="${SIPRTMP_CACHE:-/var/cache/siprtmp}"
BASE_IMAGE="siprtmp/debian-python:bookworm"
mkdir -p "$CACHE"

if ! docker info >/dev/null 2>&1; then
    # A daemon killed without its shutdown (a machine reset, a killed CI job) leaves its pid file,
    # and dockerd then refuses to start; the file is stale when no process holds that pid.
    for pidfile in /var/run/docker.pid /var/run/docker/containerd/containerd.pid; do
        if [ -s "$pidfile" ] && ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then rm -f "$pidfile"; fi
    done
    (dockerd >"$CACHE/dockerd.log" 2>&1 &)
    for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
    docker info >/dev/null 2>&1 || { tail -20 "$CACHE/dockerd.log" >&2; exit 1; }
fi

if ! docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    if [ ! -s "$CACHE/debian-python.tar" ]; then
        mmdebstrap --quiet --variant=minbase --include=python3,python3-venv,ca-certificates \
            bookworm "$CACHE/debian-python.tar.part"
        mv "$CACHE/debian-python.tar.part" "$CACHE/debian-python.tar"
    fi
    docker import "$CACHE/debian-python.tar" "$BASE_IMAGE" >/dev/null
fi

.venv/bin/pip wheel -q -w bridge-image/wheels '.[operator]' setuptools wheel 2>/dev/null
for image in bridge:bridge-image operator:operator; do
    name=${image%%:*} dir=${image#*:}
    docker build -q --network host -f "$dir/Dockerfile" \
        --build-arg BASE_IMAGE="$BASE_IMAGE" --build-arg PIP_NO_INDEX=1 \
        -t "siprtmp/$name:dev" . >/dev/null
done
echo "images: siprtmp/bridge:dev siprtmp/operator:dev (on $BASE_IMAGE)"
