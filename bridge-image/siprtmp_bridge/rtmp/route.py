"""Where FFmpeg connects to publish: the RTMP server itself, or the RTMPS relay in front of it.

Either way FFmpeg is given an address, never a name to resolve: it would resolve it inside
``av.open`` holding the GIL (rtmp/resolve.py). The name is resolved here first, within the
attempt's timeout.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from typing import Protocol
from urllib.parse import urlsplit

from siprtmp_bridge.rtmp.connect import HANDSHAKE_PACKET_BYTES, with_address
from siprtmp_bridge.rtmp.resolve import Resolver, needs_resolution
from siprtmp_bridge.rtmp.rtmps_tunnel import RtmpsTunnel
from siprtmp_contract.urls import (
    rtmp_port,
    verifies_rtmps,
)

#: C0 (version 3) and a C1 of zeros: the plain handshake every RTMP server answers with S0, S1.
PROBE_C0_C1 = b"\x03" + bytes(HANDSHAKE_PACKET_BYTES)


class RtmpRoute(Protocol):
    def open(self, timeout: float) -> str:
        """The URL FFmpeg is to open now; OSError naming the reason if the server is out of
        reach within ``timeout``."""

    def close(self) -> None:
        """Release what the route holds (the publisher is done)."""


class DirectRoute:
    """FFmpeg connects to the server itself (rtmp://, or rtmps:// with verification off).

    With a host name, FFmpeg is given the address instead, so the ``connect`` command's tcUrl
    and, for rtmps://, FFmpeg's TLS (which verifies nothing here) name the address: FFmpeg can
    be told neither a tcUrl nor an SNI name (PyAV passes no options to the connection).
    """

    def __init__(self, url: str) -> None:
        self.url = url
        parts = urlsplit(url)
        self._resolver = Resolver(parts.hostname or "", rtmp_port(parts))

    def open(self, timeout: float) -> str:
        # PyAV opens output I/O holding the GIL, without options or an interrupt callback: a
        # connect to a black-holed host would freeze the whole process (the pjsua poll loop,
        # SIGTERM handling, /status) for the kernel's SYN timeout, about two minutes, and a
        # server that accepts and never answers, for ever. A bounded TCP connect first, and for
        # plain RTMP the server's answer to a handshake, made from Python (which releases the
        # GIL), turn those into a failed attempt within ``timeout``.
        deadline = time.monotonic() + timeout
        addresses = self._resolver.resolve(timeout)
        address = reachable(self.url, addresses, deadline)
        if not needs_resolution(self._resolver.host):
            return self.url  # an address or localhost already: the URL as written
        return with_address(self.url, address)

    def close(self) -> None:
        pass


def route_for(url: str, verify_tls: bool) -> RtmpRoute:
    """RTMPS goes through the relay, which verifies the server's certificate, unless the spec
    turned verification off; then FFmpeg's own TLS, which verifies nothing, is used."""
    if verifies_rtmps(url, verify_tls):
        return RtmpsTunnel(url)
    return DirectRoute(url)


def reachable(url: str, addresses: list[str], deadline: float) -> str:
    """The first of the URL's server's ``addresses`` that opens a TCP connection before
    ``deadline`` (a ``time.monotonic()``) and, for rtmp://, answers the start of an RTMP
    handshake (S0 and S1) by then; OSError if none does.

    Loopback is not probed: it answers or refuses at once, and the probe would use up the one
    connection a single-client receiver (``ffmpeg -listen 1``, the demo's) accepts.
    """
    parts = urlsplit(url)
    if addresses[0] == "localhost" or _is_loopback(addresses[0]):
        return addresses[0]
    failure: OSError = OSError("no address to connect to")
    for address in addresses:
        try:
            _probe(parts.scheme, address, rtmp_port(parts), deadline)
        except OSError as error:
            failure = error
            continue
        return address
    raise failure


def _probe(scheme: str, address: str, port: int, deadline: float) -> None:
    timeout = max(0.01, deadline - time.monotonic())
    with socket.create_connection((address, port), timeout=timeout) as sock:
        if scheme.lower() != "rtmp":
            return  # rtmps:// unverified: FFmpeg's TLS comes first, not probed here
        sock.sendall(PROBE_C0_C1)
        answered = 0
        while answered < len(PROBE_C0_C1):
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = sock.recv(4096)
            except TimeoutError as error:
                raise OSError(f"no answer to the RTMP handshake within {timeout:g} s") from error
            if not data:
                raise OSError("the server closed the connection during the RTMP handshake")
            answered += len(data)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name
        return False
