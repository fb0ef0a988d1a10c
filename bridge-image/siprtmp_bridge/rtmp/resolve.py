"""The RTMP server's host name, resolved by the bridge within an attempt's timeout, off the GIL.

FFmpeg resolves a URL's host inside ``av.open``, which PyAV runs holding the GIL: a slow DNS
answer froze every Python thread (the pjsua poll loop, SIGTERM handling, /status and /healthz),
long enough for a liveness probe to kill a live call. So the bridge resolves the name itself and
gives FFmpeg an address (rtmp/route.py). ``socket.getaddrinfo`` releases the GIL, and run
on a thread of its own it can be given up on when the attempt's time is spent, however long the
resolver takes: glibc's own limit is ``timeout * attempts`` per name server and per search
domain, tens of seconds with Kubernetes' ``ndots:5``.

A lookup given up on keeps running until glibc ends it; the next attempt waits for that one
rather than starting another, so a resolver that never answers costs one thread, not one per
attempt.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Callable, Sequence
from typing import Any

#: ``socket.getaddrinfo``'s signature, as far as it is used here.
AddressLookup = Callable[..., Sequence[tuple[Any, ...]]]


def needs_resolution(host: str) -> bool:
    """False for an IP literal (written bare, or IPv6 in brackets) and ``localhost``, which
    glibc answers from /etc/hosts without asking DNS (nsswitch ``files`` come first)."""
    if host.lower() == "localhost":
        return False
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return True
    return False


def addresses_of(infos: Sequence[tuple[Any, ...]]) -> list[str]:
    """The distinct addresses of ``getaddrinfo`` results, in its order (the order to try)."""
    found: list[str] = []
    for _family, _type, _proto, _canonname, sockaddr in infos:
        if (address := str(sockaddr[0])) not in found:
            found.append(address)
    return found


class _Lookup(threading.Thread):
    """One ``getaddrinfo`` on a daemon thread: nothing waits for it at exit."""

    def __init__(self, lookup: AddressLookup, host: str, port: int) -> None:
        super().__init__(name="rtmp-resolve", daemon=True)
        self._lookup, self._host, self._port = lookup, host, port
        self.addresses: list[str] = []
        self.error: OSError | None = None

    def run(self) -> None:
        try:
            self.addresses = addresses_of(
                self._lookup(self._host, self._port, type=socket.SOCK_STREAM)
            )
        except OSError as error:  # socket.gaierror among them
            self.error = error


class Resolver:
    """Resolves one host name; at most one lookup in flight."""

    def __init__(self, host: str, port: int, lookup: AddressLookup = socket.getaddrinfo) -> None:
        self.host, self.port = host, port
        self._lookup = lookup
        self._running: _Lookup | None = None

    def resolve(self, timeout: float) -> list[str]:
        """The host's addresses, best first, or ``[host]`` when it needs no resolving; OSError
        naming the host if the resolver does not answer within ``timeout``, or answers no."""
        if not needs_resolution(self.host):
            return [self.host.strip("[]")]
        lookup = self._running
        if lookup is None or not lookup.is_alive():
            # A finished lookup is not reused: a new attempt asks afresh (DNS failover).
            lookup = self._running = _Lookup(self._lookup, self.host, self.port)
            lookup.start()
        lookup.join(timeout)
        if lookup.is_alive():
            raise OSError(f"host {self.host} could not be resolved within {timeout:.3g} s")
        self._running = None
        if lookup.error is not None:
            reason = lookup.error.strerror or str(lookup.error)
            raise OSError(f"host {self.host} could not be resolved: {reason}")
        if not lookup.addresses:
            raise OSError(f"host {self.host} could not be resolved: no address")
        return lookup.addresses
