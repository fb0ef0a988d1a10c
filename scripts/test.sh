#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what it needs (Python deps, the real
# peers: SIPp, Kamailio, nginx-rtmp, FFmpeg, tshark), lints, type-checks, runs every tier.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup.sh
source scripts/lib/apt.sh
apt_install sip-tester kamailio kamailio-tls-modules nginx libnginx-mod-rtmp libnginx-mod-stream ffmpeg tshark coturn openssl

echo "== control plane" && ./scripts/build-k8s.sh >/dev/null   # cached after the first build
echo "== images" && ./scripts/build-images.sh
echo "== ruff" && .venv/bin/ruff check . && .venv/bin/ruff format --check .
echo "== mypy" && .venv/bin/mypy
echo "== pytest"
.venv/bin/python -m pytest -p no:cacheprovider -ra "$@"
