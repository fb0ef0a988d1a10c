#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what it needs (Python deps, the real
# peers: SIPp, Kamailio, nginx-rtmp, FFmpeg, tshark, Chromium), lints, type-checks, runs every tier.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup.sh
source scripts/lib/apt.sh
apt_install sip-tester kamailio kamailio-tls-modules nginx libnginx-mod-rtmp libnginx-mod-stream ffmpeg tshark coturn openssl
# The REST API's web console is driven in headless Chromium (Selenium uses Debian's driver).
apt_install chromium chromium-driver
# The real-node tier: Debian's containerd (CRI), runc, CNI plugins, iptables.
apt_install containerd runc containernetworking-plugins iptables

echo "== control plane" && ./scripts/build-k8s.sh >/dev/null   # cached after the first build
echo "== node" && ./scripts/build-node.sh >/dev/null          # kubelet, kube-scheduler (cached)
export SIPRTMP_E2E_NODE=1
echo "== images" && ./scripts/build-images.sh
echo "== ruff" && .venv/bin/ruff check . && .venv/bin/ruff format --check .
echo "== mypy" && .venv/bin/mypy
echo "== pytest"
.venv/bin/python -m pytest -p no:cacheprovider -ra "$@"
