#!/usr/bin/env bash
# Set up the project on a fresh Debian/Ubuntu machine: a Python 3.11/3.12 virtualenv in .venv
# with the bridge and the operator installed (pjsua2 and FFmpeg come inside their wheels).
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/lib/apt.sh

pick_python() {
    for candidate in python3 python3.12 python3.11; do
        if command -v "$candidate" >/dev/null \
            && "$candidate" -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 12))'; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

if [ -f /etc/debian_version ]; then
    apt_install ca-certificates
    # Debian's own python3 needs venv support as a package; pyenv-style builds have it built in.
    if ! python3 -c 'import ensurepip' 2>/dev/null; then apt_install python3-venv; fi
fi

PYTHON=$(pick_python) || { echo "setup: need Python 3.11 or 3.12" >&2; exit 1; }
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e '.[bridge,operator,dev]'
echo "setup: ready: .venv/bin/sip-rtmp-bridge"
