"""The bridge's own resolution of the RTMP host (rtmp/resolve.py) and what FFmpeg is given
instead of the name (rtmp/connect.py), and the relay's reading of the addresses
(rtmp/rtmps_relay.py): the pure parts and the bound, with a lookup that takes as long as the
test says (the real resolver's stalls are tests/bridge/test_rtmp_dns.py's)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest

from siprtmp_bridge.rtmp.connect import CONNECT_TIMEOUT_SECONDS, with_address
from siprtmp_bridge.rtmp.resolve import Resolver, addresses_of, needs_resolution
from siprtmp_bridge.rtmp.rtmps_relay import connect_arguments


@pytest.mark.parametrize(
    ("url", "address", "rewritten"),
    [
        ("rtmp://live.example.net/app/key", "192.0.2.7", "rtmp://192.0.2.7:1935/app/key"),
        ("rtmps://live.example.net/app/key", "192.0.2.7", "rtmps://192.0.2.7:443/app/key"),
        ("rtmp://u:p@h.example:1936/app/k#2?x", "192.0.2.7", "rtmp://u:p@192.0.2.7:1936/app/k#2?x"),
        ("rtmp://h.example/app/key", "2001:db8::1", "rtmp://[2001:db8::1]:1935/app/key"),
    ],
    ids=["rtmp default port", "rtmps default port", "login, port and key as written", "IPv6"],
)
def test_ffmpeg_is_given_the_address_and_everything_else_as_written(
    url: str, address: str, rewritten: str
) -> None:
    assert with_address(url, address) == rewritten


@pytest.mark.parametrize(
    ("host", "needs"),
    [
        ("live.example.net", True),
        ("192.0.2.7", False),
        ("2001:db8::1", False),
        ("[2001:db8::1]", False),
        ("localhost", False),
        ("LocalHost", False),
        ("localhost.example.net", True),
    ],
)
def test_only_names_other_than_localhost_are_resolved(host: str, needs: bool) -> None:
    assert needs_resolution(host) is needs


def test_addresses_keep_getaddrinfo_order_once_each() -> None:
    infos = [
        (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("2001:db8::1", 1935, 0, 0)),
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.0.2.7", 1935)),
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.0.2.7", 1935)),
    ]
    assert addresses_of(infos) == ["2001:db8::1", "192.0.2.7"]


class HeldLookup:
    """A lookup that answers 192.0.2.7 once ``release`` is set; counts its calls."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls = 0

    def __call__(self, host: str, port: int, **_: Any) -> Sequence[tuple[Any, ...]]:
        self.calls += 1
        self.release.wait(10)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.0.2.7", port))]


def test_a_lookup_that_does_not_answer_costs_the_timeout_and_is_waited_for_again() -> None:
    lookup = HeldLookup()
    resolver = Resolver("live.example.net", 1935, lookup)
    started = time.monotonic()
    with pytest.raises(
        OSError, match=r"host live\.example\.net could not be resolved within 0\.2 s"
    ):
        resolver.resolve(0.2)
    assert time.monotonic() - started < 1
    with pytest.raises(OSError, match=r"within 0\.1 s"):
        resolver.resolve(0.1)
    assert lookup.calls == 1  # the next attempt waits on the lookup still under way
    lookup.release.set()
    assert resolver.resolve(1) == ["192.0.2.7"]
    assert lookup.calls == 1  # its answer, when it comes, is the next attempt's
    assert resolver.resolve(1) == ["192.0.2.7"]
    assert lookup.calls == 2  # an answer is used once: each attempt after that asks afresh


def test_a_resolver_that_answers_no_says_why() -> None:
    def refused(host: str, port: int, **_: Any) -> Sequence[tuple[Any, ...]]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with pytest.raises(
        OSError, match=r"^host nowhere\.example could not be resolved: Name or serv"
    ):
        Resolver("nowhere.example", 1935, refused).resolve(1)


def test_an_address_needs_no_lookup() -> None:
    def never(host: str, port: int, **_: Any) -> Sequence[tuple[Any, ...]]:
        raise AssertionError("looked up")

    assert Resolver("192.0.2.7", 1935, never).resolve(0) == ["192.0.2.7"]
    assert Resolver("[2001:db8::1]", 1935, never).resolve(0) == ["2001:db8::1"]


def test_the_relay_reads_the_timeout_and_the_addresses_of_a_connect() -> None:
    assert connect_arguments("2.500 192.0.2.7,2001:db8::1") == (2.5, ["192.0.2.7", "2001:db8::1"])
    assert connect_arguments("1") == (1.0, [])  # the host as named
    assert connect_arguments("60 192.0.2.7") == (CONNECT_TIMEOUT_SECONDS, ["192.0.2.7"])
