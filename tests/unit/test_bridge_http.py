"""The bridge's own HTTP server answers malformed requests instead of dropping them."""

from __future__ import annotations

import io
import socket
from collections.abc import Iterator

import pytest

from siprtmp_bridge.counters import MediaCounters
from siprtmp_bridge.dtmf import DtmfQueue
from siprtmp_bridge.http_api import StatusServer
from siprtmp_bridge.reporter import StatusReporter
from siprtmp_bridge.status import initial_status


@pytest.fixture
def server() -> Iterator[StatusServer]:
    reporter = StatusReporter(initial_status("c1", "rtmp://h/live/***"), out=io.StringIO())
    running = StatusServer("127.0.0.1", 0, reporter, MediaCounters(), DtmfQueue())
    running.start()
    yield running
    running.stop()


def exchange(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(request)
        conn.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := conn.recv(4096):
            answer += chunk
    return answer


@pytest.mark.parametrize("length", [b"abc", b"-5", b"99999999"])
def test_dtmf_with_a_bad_content_length_is_a_400(server: StatusServer, length: bytes) -> None:
    answer = exchange(
        server.port,
        b"POST /dtmf HTTP/1.1\r\nHost: x\r\nContent-Length: " + length + b"\r\n\r\n{}",
    )
    assert answer.startswith(b"HTTP/1.0 400") or answer.startswith(b"HTTP/1.1 400"), answer
    assert b"at most 4096 bytes" in answer
