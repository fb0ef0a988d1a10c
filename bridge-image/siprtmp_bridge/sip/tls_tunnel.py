"""The bridge's end of the SIP TLS relay (sip/tls_relay.py): makes this run's loopback
certificate, starts the relay, logs what it reports, and stops it with the endpoint.

The certificate (an EC key, valid two days, for 127.0.0.1 only) is made with the ``openssl``
command (Debian's ca-certificates needs it, so every image with a CA bundle has it) into a
directory only this user can read, removed at ``close``. pjsua trusts nothing else on the
loopback leg and presents it as its client certificate; the relay accepts nothing else.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import IO

from siprtmp_bridge.sip.tls_relay import CONNECTED, ERROR, LISTENING, relay_uri
from siprtmp_contract.spec import BridgeSpec

log = logging.getLogger(__name__)

#: Python's start-up and the relay's imports, and the key's making; not a network wait.
START_TIMEOUT_SECONDS = 10.0
SYSTEM_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
#: How long ``failure`` waits for the relay's report: it writes it just before it closes
#: pjsua's connection, and the report travels a pipe and a thread that pjsua does not wait for.
REPORT_WAIT_SECONDS = 0.5
_HOST_PORT = re.compile(r"sips?:(?:[^@;>]*@)?(\[[^\]]+\]|[^:;>?]+)(?::(\d+))?")


def registers_past_the_relay(spec: BridgeSpec) -> bool:
    """Whether the REGISTER goes to a registrar that is not the first hop (no outbound proxy, a
    callee on another host): the relay reaches one host, so pjsua sends that one itself, over
    its own TLS (1.2 at most)."""
    connection = spec.connection
    registrar = (connection.sip_domain, connection.port_or_default)
    return bool(
        connection.sip_register_required
        and not connection.sip_outbound_proxy
        and registrar != first_hop(spec)
    )


def trust_bundle(environ: Mapping[str, str]) -> str | None:
    """The CA bundle pjsua verifies a registrar it reaches itself against: ``SSL_CERT_FILE``
    when it names a file (the chart's CA bundle), else the system's."""
    for candidate in (environ.get("SSL_CERT_FILE") or "", SYSTEM_CA_BUNDLE):
        if candidate and os.path.isfile(candidate):
            return candidate
    return None


def first_hop(spec: BridgeSpec) -> tuple[str, int]:
    """(host, port) pjsua would open its TLS connection to: the outbound proxy's, else the
    callee's (5061 when the URI names no port); IPv6 addresses without their brackets."""
    uri = spec.connection.sip_outbound_proxy or spec.callee
    match = _HOST_PORT.match(uri)
    if match is None:
        raise ValueError(f"no host in {uri!r}")
    return match.group(1).strip("[]"), int(match.group(2) or 5061)


class SipTlsTunnel:
    """One relay process for the run, reached at ``route`` (pjsua's first outbound proxy)."""

    def __init__(self, host: str, port: int, verify: bool) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="siprtmp-siptls-"))
        self.certificate = self.directory / "cert.pem"
        self.key = self.directory / "key.pem"
        self._relay: subprocess.Popen[bytes] | None = None
        self._reported = threading.Event()
        self._failure: str | None = None
        try:
            _make_certificate(self.certificate, self.key)
            self.route = self._start(host, port, verify)
        except BaseException:
            self.close()
            raise

    def _start(self, host: str, port: int, verify: bool) -> str:
        # -P: nothing is imported from the working directory into a process that carries SIP.
        relay = self._relay = subprocess.Popen(
            [sys.executable, "-P", "-m", "siprtmp_bridge.sip.tls_relay"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert relay.stdin is not None and relay.stdout is not None
        config = {
            "host": host,
            "port": port,
            "verify": verify,
            "certificate": str(self.certificate),
            "key": str(self.key),
        }
        relay.stdin.write(json.dumps(config).encode() + b"\n")
        relay.stdin.flush()
        answer = _read_line_within(relay.stdout, START_TIMEOUT_SECONDS)
        word, _, local_port = answer.partition(" ")
        if word != LISTENING or not local_port.isdigit():
            raise OSError(f"SIP TLS relay did not start: {answer!r}")
        threading.Thread(
            target=self._log_reports, args=(relay.stdout,), name="sip-tls-relay", daemon=True
        ).start()
        return relay_uri(int(local_port))

    def trusting(self, bundle: Path) -> Path:
        """A CA file of the run's certificate and ``bundle``'s, for a pjsua that verifies both
        the relay and a server it reaches itself."""
        both = self.directory / "trusted.pem"
        both.write_bytes(self.certificate.read_bytes() + b"\n" + bundle.read_bytes())
        return both

    def failure(self) -> str | None:
        """Why the relay's last connection to the first hop failed, if it did (waiting a moment
        for the first report, which may still be on its way): what pjsua, which saw only its
        loopback connection close, cannot say."""
        self._reported.wait(REPORT_WAIT_SECONDS)
        return self._failure

    def _log_reports(self, stream: IO[bytes]) -> None:
        """The relay's reports: each ``error`` a warning of the bridge's log (scrubbed there),
        the last one kept until a connection is made."""
        for raw in stream:
            word, _, reason = raw.decode(errors="replace").strip().partition(" ")
            if word == ERROR:
                log.warning("SIP over TLS: %s", reason)
                self._failure = reason
            elif word == CONNECTED:
                self._failure = None
            self._reported.set()

    def close(self) -> None:
        """End of stdin ends the relay; it is killed if it takes longer than a moment."""
        relay, self._relay = self._relay, None
        if relay is not None:
            if relay.stdin is not None:
                relay.stdin.close()
            try:
                relay.wait(2)
            except subprocess.TimeoutExpired:
                relay.kill()
                relay.wait()
        shutil.rmtree(self.directory, ignore_errors=True)


def _make_certificate(certificate: Path, key: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise OSError("SIP over TLS needs the openssl command (for the relay's certificate)")
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
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
        timeout=START_TIMEOUT_SECONDS,
    )


def _read_line_within(stream: IO[bytes], timeout: float) -> str:
    """The relay's first line; a thread reads it so that a silent relay costs ``timeout``."""
    lines: list[bytes] = []
    reader = threading.Thread(target=lambda: lines.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    if not lines:
        raise OSError(f"SIP TLS relay did not answer within {timeout:g} s")
    return lines[0].decode(errors="replace").strip()
