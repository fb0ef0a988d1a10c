#!/usr/bin/env bash
# Build the project's images with no container registry: a Debian base root filesystem made by
# mmdebstrap, imported into Docker, then the real Dockerfiles on top of it, installing wheels
# built on this machine (so a TLS-intercepting proxy or an offline build still works).
#
# Nothing cached is trusted unchecked: the base tarball must be a tar holding python3, the base
# image must carry the label of the current recipe and run python3 with venv and ssl, and each
# project image is rebuilt by `docker build` (from the current Dockerfile, sources and base) and
# must run its program's imports before the script succeeds.
#
# Usage: scripts/build-images.sh     (needs root for dockerd)
# Env:   SIPRTMP_CACHE (default /var/cache/siprtmp): where the base tarball is kept.
#        SIPRTMP_COLD_IMAGES=1: build as a fresh machine would (CI does, every run): the project's
#        images and base are removed from Docker first, the tarball and the wheels are made anew
#        in an empty directory, and Docker's layer cache is not used.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/apt.sh
source scripts/lib/rootfs.sh
apt_install docker.io mmdebstrap

BASE_IMAGE="siprtmp/debian-python:bookworm"
IMAGES=(siprtmp/bridge:dev siprtmp/operator:dev)
WHEELS=bridge-image/wheels
# The base's whole recipe: the image is labelled with its hash, so a change here rebuilds it.
# Only what the images run: the Essential packages (no apt: nothing is installed at run time),
# Python, the CA bundle (RTMPS), passwd (the Dockerfiles' useradd) and libstdc++ (pjsua2's C++
# wheel needs it; manylinux wheels never bundle it). /usr merged by mmdebstrap's hook, so
# Debian's usrmerge package, and the whole Perl it pulls in, stay out. No documentation beyond the
# copyright files, no manual pages, no translations.
BASE_RECIPE=(
    --variant=essential --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr
    --include=python3,python3-venv,ca-certificates,passwd,libstdc++6
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright'
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*'
    --dpkgopt='path-exclude=/usr/share/locale/*'
    bookworm
)
recipe_hash="$(printf '%s\n' "${BASE_RECIPE[@]}" | sha256sum | cut -c1-16)"
cold="${SIPRTMP_COLD_IMAGES:-0}"

if [ "$cold" = 1 ]; then
    CACHE="$(mktemp -d /tmp/siprtmp-images.XXXXXX)"
    trap 'rm -rf "$CACHE"' EXIT
else
    CACHE="${SIPRTMP_CACHE:-/var/cache/siprtmp}"
    mkdir -p "$CACHE"
fi
TARBALL="$CACHE/debian-python-$recipe_hash.tar"

if ! docker info >/dev/null 2>&1; then
    # A daemon killed without its shutdown (a machine reset, a killed CI job) leaves its pid file,
    # and dockerd then refuses to start; the file is stale when no process holds that pid.
    for pidfile in /var/run/docker.pid /var/run/docker/containerd/containerd.pid; do
        if [ -s "$pidfile" ] && ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then rm -f "$pidfile"; fi
    done
    # The daemon outlives this script: it starts with every inherited descriptor above 2 closed,
    # else it would hold for good whatever lock the caller took (`flock /tmp/siprtmp-node.lock`).
    ( (
        for fd in /proc/$BASHPID/fd/*; do
            n="${fd##*/}"
            if [ "$n" -gt 2 ]; then eval "exec $n>&-"; fi
        done
        exec dockerd >>/var/log/siprtmp-dockerd.log 2>&1
    ) & )
    for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
    docker info >/dev/null 2>&1 || { tail -20 /var/log/siprtmp-dockerd.log >&2; exit 1; }
fi

# base_ok: the base image in Docker comes from the current recipe and its Python works.
base_ok() {
    [ "$(docker image inspect -f '{{index .Config.Labels "siprtmp.base-recipe"}}' "$BASE_IMAGE" \
        2>/dev/null)" = "$recipe_hash" ] \
        && docker run --rm --network none "$BASE_IMAGE" python3 -c 'import ensurepip, ssl, venv' \
            >/dev/null 2>&1
}

if [ "$cold" = 1 ]; then
    docker image rm -f "${IMAGES[@]}" "$BASE_IMAGE" >/dev/null 2>&1 || true
    rm -f "$WHEELS"/*.whl
fi

if ! base_ok; then
    if ! tarball_ok "$TARBALL"; then
        [ -e "$TARBALL" ] && echo "images: $TARBALL is not a usable root filesystem: rebuilding" >&2
        rm -rf "$TARBALL" "$TARBALL.part"
        # --format: mmdebstrap otherwise guesses the format from the name, and "*.part" is
        # no tarball name (it would write a directory).
        mmdebstrap --quiet --format=tar "${BASE_RECIPE[@]}" "$TARBALL.part"
        mv "$TARBALL.part" "$TARBALL"
        tarball_ok "$TARBALL" || { echo "images: mmdebstrap made no usable $TARBALL" >&2; exit 1; }
    fi
    docker import --change "LABEL siprtmp.base-recipe=$recipe_hash" "$TARBALL" "$BASE_IMAGE" \
        >/dev/null
    base_ok || { echo "images: $BASE_IMAGE does not run python3 with venv and ssl" >&2; exit 1; }
fi

pip_cache=()
[ "$cold" = 1 ] && pip_cache=(--no-cache-dir)
# The project's wheel gets the last commit's time for its files: the same sources make the same
# wheel, so Docker's layer cache holds when nothing changed. setuptools builds in ./build and
# never removes what it copied there before: a module deleted from the sources would still be
# packed, so it starts from nothing.
rm -rf build
SOURCE_DATE_EPOCH="$(git log -1 --format=%ct 2>/dev/null || echo 315532800)" \
    .venv/bin/pip wheel -q "${pip_cache[@]}" -w "$WHEELS" '.[bridge,operator]' setuptools wheel
build_cache=()
[ "$cold" = 1 ] && build_cache=(--no-cache)
for image in bridge:bridge-image operator:operator; do
    name=${image%%:*} dir=${image#*:}
    previous="$(docker image inspect -f '{{.Id}}' "siprtmp/$name:dev" 2>/dev/null || true)"
    # Its output only on failure (the legacy builder, all Debian's docker.io has, warns each time).
    if ! built="$(docker build -q "${build_cache[@]}" --network host -f "$dir/Dockerfile" \
        --build-arg BASE_IMAGE="$BASE_IMAGE" --build-arg PIP_NO_INDEX=1 \
        -t "siprtmp/$name:dev" . 2>&1)"; then
        echo "$built" >&2
        exit 1
    fi
    # The image this build replaced, unless it is the same one (nothing changed) or still in use.
    if [ -n "$previous" ] && [ "$previous" != "$(docker image inspect -f '{{.Id}}' "siprtmp/$name:dev")" ]; then
        docker image rm "$previous" >/dev/null 2>&1 || true
    fi
done
# Untagged images left by earlier builds on this base (every stage inherits the base's label).
docker image prune -f --filter "label=siprtmp.base-recipe" >/dev/null
# Each image runs its own program's imports (no network, read-only root) before it is used.
docker run --rm --network none --read-only --entrypoint python3 siprtmp/bridge:dev \
    -c 'import pjsua2, av, siprtmp_bridge.cli' >/dev/null
docker run --rm --network none --read-only --entrypoint python3 siprtmp/operator:dev \
    -c 'import kopf, siprtmp_operator.cli' >/dev/null
how="cached layers"
[ "$cold" = 1 ] && how="built cold"
echo "images: ${IMAGES[*]} (on $BASE_IMAGE, recipe $recipe_hash, $how)"
