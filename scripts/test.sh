#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what it needs (Python deps, the real
# peers: SIPp, baresip, Kamailio, rtpengine, nginx-rtmp, FFmpeg, tshark, Chromium), then runs the fast checks first
# (ruff, mypy, the unit tier: a lint error fails in seconds), then builds the control plane, the
# node and the images, and runs every tier.
#
# Usage: scripts/test.sh [--cold] [TIER] [PYTEST ARGS...]
#   TIER       one of: unit bridge chaos operator image e2e (the directories under tests/); unit needs
#              no builds and stops after the fast checks.
#   --cold     as a fresh machine would: a new .venv without pip's cache, the Go builds in an
#              empty directory (SIPRTMP_CACHE), and the images built cold (SIPRTMP_COLD_IMAGES=1:
#              base, wheels and images made anew, no Docker layer cache). Apt packages already
#              installed stay installed.
set -euo pipefail
cd "$(dirname "$0")/.."

TIERS=(unit bridge chaos operator image e2e)
cold=0
if [ "${1:-}" = --cold ]; then cold=1; shift; fi
tier=""
for t in "${TIERS[@]}"; do [ "${1:-}" = "$t" ] && { tier="$t"; shift; break; }; done

if [ "$cold" = 1 ]; then
    cold_cache="$(mktemp -d /tmp/siprtmp-cold.XXXXXX)"
    trap 'rm -rf "$cold_cache"' EXIT
    export SIPRTMP_CACHE="$cold_cache" GOCACHE="$cold_cache/go-build" GOMODCACHE="$cold_cache/go-mod"
    export SIPRTMP_COLD_IMAGES=1 PIP_NO_CACHE_DIR=1
    rm -rf .venv
    echo "== cold: caches in $cold_cache, a new .venv"
fi

pytest_run() { .venv/bin/python -m pytest -p no:cacheprovider -ra "$@"; }

./scripts/setup.sh
# One command per line: under `set -e` a failure inside an `a && b` list is not fatal unless
# it is the list's last command.
echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy"
.venv/bin/mypy
echo "== imports"
.venv/bin/lint-imports --no-cache
echo "== unit"
pytest_run -q tests/unit
[ "$tier" = unit ] && exit 0

source scripts/lib/apt.sh
# rtpengine runs in userspace (tests/support/rtpengine.py): no kernel module, no iptables.
apt_install sip-tester baresip-core baresip-ffmpeg kamailio kamailio-tls-modules rtpengine-daemon nginx libnginx-mod-rtmp libnginx-mod-stream ffmpeg tshark coturn openssl
# The REST API's web console is driven in headless Chromium (Selenium uses Debian's driver).
apt_install chromium chromium-driver
# The real-node tier: Debian's containerd (CRI), runc, CNI plugins, iptables.
apt_install containerd runc containernetworking-plugins iptables

# Each build checks what it finds cached (binaries report their version; images their base and
# imports) and rebuilds what fails; the Go builds are the only slow ones.
echo "== control plane" && ./scripts/build-k8s.sh >/dev/null
echo "== node" && ./scripts/build-node.sh >/dev/null
export SIPRTMP_E2E_NODE=1
echo "== images" && ./scripts/build-images.sh
echo "== pytest"
if [ -n "$tier" ]; then pytest_run "tests/$tier" "$@"; else pytest_run "$@"; fi
