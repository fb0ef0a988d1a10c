"""Throw-away TLS certificates for the tests' TLS servers (Kamailio, nginx)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A one-day self-signed certificate for 127.0.0.1: (cert.pem, key.pem) in ``directory``.

    The address is also a subjectAltName, which is where TLS clients that verify (Python's
    ``ssl``, the bridge's RTMPS relay) look for it."""
    certificate, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(certificate),
        ],
        check=True,
        capture_output=True,
    )
    return certificate, key
