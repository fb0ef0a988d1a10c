"""Throw-away TLS certificates for the tests' TLS servers (Kamailio, nginx)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def self_signed(directory: Path, address: str = "127.0.0.1") -> tuple[Path, Path]:
    """A one-day self-signed certificate for ``address`` (an IP address, or a host name):
    (cert.pem, key.pem) in ``directory``.

    The address is also a subjectAltName, which is where TLS clients that verify (Python's
    ``ssl``, the bridge's RTMPS relay, pjsip) look for it."""
    kind = "IP" if address.replace(".", "").isdigit() or ":" in address else "DNS"
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
            f"/CN={address}",
            "-addext",
            f"subjectAltName={kind}:{address}",
            "-keyout",
            str(key),
            "-out",
            str(certificate),
        ],
        check=True,
        capture_output=True,
    )
    return certificate, key
