"""The pjsua2 endpoint of a bridge process: one per process, configured from the spec.

All pjsua callbacks run on the thread that polls (``mainThreadOnly``): Python never runs on
pjsua's media clock thread, and no state needs locking between SIP callbacks and the runner.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pjsua2 as pj

from siprtmp_bridge.sip.events import CallEnded, Registered, SipEvent
from siprtmp_bridge.sip.tls_tunnel import (
    SipTlsTunnel,
    first_hop,
    registers_past_the_relay,
    trust_bundle,
)
from siprtmp_contract.spec import BridgeSpec

TRANSPORT_TYPES = {
    "udp": pj.PJSIP_TRANSPORT_UDP,
    "tcp": pj.PJSIP_TRANSPORT_TCP,
    "tls": pj.PJSIP_TRANSPORT_TLS,
}


def codec_priorities(available: list[str], wanted: tuple[str, ...]) -> dict[str, int]:
    """Priority per pjsua codec id: the spec's order first, everything else disabled (0)."""
    priorities = dict.fromkeys(available, 0)
    for rank, name in enumerate(wanted):
        for codec_id in available:
            if codec_id.lower().startswith(name.lower() + "/"):
                priorities[codec_id] = 255 - rank
    return priorities


@contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Point file descriptor 1 at stderr for a while: stdout is reserved for status lines."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


class SipEndpoint:
    """Owns pjsua's lifetime: create → one transport → null audio device → destroy."""

    def __init__(self, spec: BridgeSpec, clock_rate: int, log_level: int) -> None:
        self.spec = spec
        #: The SIP TLS relay, for sipTransport tls: pjsua's first outbound proxy.
        self.tls_tunnel: SipTlsTunnel | None = None
        self.endpoint: Any = pj.Endpoint()
        with stdout_to_stderr():
            # pjlib logs its start-up to stdout before any log config applies.
            self.endpoint.libCreate()
        config = pj.EpConfig()
        config.uaConfig.threadCnt = 0
        config.uaConfig.mainThreadOnly = True
        config.uaConfig.maxCalls = 4
        config.uaConfig.userAgent = "sip-rtmp-bridge"
        if spec.nat.stun_servers:
            config.uaConfig.stunServer = pj.StringVector(list(spec.nat.stun_servers))
            config.uaConfig.stunIgnoreFailure = True
        # pjsua's log goes to stderr: stdout carries only the status JSON lines.
        config.logConfig.consoleLevel = 0
        config.logConfig.level = log_level
        config.logConfig.filename = "/dev/stderr" if log_level > 0 else ""
        # Opening /dev/stderr reopens whatever stderr is; pjlib's default mode ("w") would
        # truncate a file the user redirected it to (`2>>bridge.log`) and leave NULs in it.
        config.logConfig.fileFlags = pj.PJ_O_APPEND
        config.logConfig.decor = pj.PJ_LOG_HAS_TIME | pj.PJ_LOG_HAS_SENDER | pj.PJ_LOG_HAS_NEWLINE
        media = config.medConfig
        media.clockRate = clock_rate
        media.sndClockRate = clock_rate
        media.channelCount = 1
        media.noVad = True  # sendrecv sends real silence frames, not comfort-noise gaps
        media.ecTailLen = 0  # nothing is played back, so there is no echo to cancel
        # 3-4 give the conference bridge's resampler (8 kHz codecs → the 16 kHz clock) pjmedia's
        # small filter instead of its large one, at half the clock thread's CPU (measured:
        # docs/measurements.md, "pjsua media quality 4"), and the audio goes on to an AAC
        # encoder anyway. It also caps speex's complexity,
        # which only encodes the silence a sendrecv bridge sends.
        media.quality = 4
        self.endpoint.libInit(config)
        self._create_transport()
        self.endpoint.libStart()
        self.endpoint.audDevManager().setNullDev()
        self._set_codecs()

    def _create_transport(self) -> None:
        nat = self.spec.nat
        transport = pj.TransportConfig()
        transport.port = nat.sip_port or 0
        transport.boundAddress = "" if nat.bind_address == "0.0.0.0" else nat.bind_address
        if nat.public_address:
            transport.publicAddress = nat.public_address
        kind = self.spec.connection.sip_transport
        if kind == "tls":
            # pjsua's TLS (OpenSSL 1.0.2: TLS 1.2 at most) reaches the relay, which makes the
            # connection to the first hop (TLS 1.2 or 1.3, verified: sip/tls_relay.py). The
            # loopback leg is verified both ways with the run's own certificate.
            connection = self.spec.connection
            self.tls_tunnel = SipTlsTunnel(
                *first_hop(self.spec), verify=connection.sip_tls_verify_server
            )
            tls = transport.tlsConfig
            tls.proto = pj.PJ_SSL_SOCK_PROTO_TLS1_2
            tls.verifyServer = True
            tls.CaListFile = str(self.tls_tunnel.certificate)
            tls.certFile = str(self.tls_tunnel.certificate)
            tls.privKeyFile = str(self.tls_tunnel.key)
            if registers_past_the_relay(self.spec):
                # pjsua reaches that registrar itself, and verifies it as the spec says
                # against the bundle, besides the relay against the run's certificate.
                tls.verifyServer = connection.sip_tls_verify_server
                if (bundle := trust_bundle(os.environ)) is not None:
                    tls.CaListFile = str(self.tls_tunnel.trusting(Path(bundle)))
        self.endpoint.transportCreate(TRANSPORT_TYPES[kind], transport)

    def _set_codecs(self) -> None:
        available = [info.codecId for info in self.endpoint.codecEnum2()]
        for codec_id, priority in codec_priorities(available, self.spec.codecs).items():
            self.endpoint.codecSetPriority(codec_id, priority)

    def poll(self, milliseconds: int) -> None:
        self.endpoint.libHandleEvents(milliseconds)

    @property
    def relay_route(self) -> str | None:
        """The SIP TLS relay's URI, for the account's route set; None without TLS."""
        return self.tls_tunnel.route if self.tls_tunnel is not None else None

    def explained(self, event: SipEvent) -> SipEvent:
        """The event, with the SIP TLS relay's reason for pjsua's when the first hop was never
        reached (a certificate refused, say): pjsua saw only its loopback connection close."""
        if self.tls_tunnel is None:
            return event
        unreached: CallEnded | Registered | None = None
        if (isinstance(event, CallEnded) and not event.got_response) or (
            isinstance(event, Registered) and not event.ok
        ):
            unreached = event
        failure = self.tls_tunnel.failure() if unreached is not None else None
        return replace(unreached, reason=failure) if unreached and failure else event

    def destroy(self) -> None:
        """Tear pjsua down; callers must have dropped every pjsua2 object they created first.
        The relay goes last: pjsua's last requests (a BYE, an un-REGISTER) pass through it."""
        try:
            self.endpoint.libDestroy()
        finally:
            if self.tls_tunnel is not None:
                self.tls_tunnel.close()
