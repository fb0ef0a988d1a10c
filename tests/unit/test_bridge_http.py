"""The bridge's own HTTP server answers malformed requests instead of dropping them."""

from __future__ import annotations

import io
import socket
import threading
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


def post_dtmf(port: int, authorization: str | None) -> bytes:
    header = f"Authorization: {authorization}\r\n".encode() if authorization else b""
    body = b'{"dtmf": "1"}'
    return exchange(
        port,
        b"POST /dtmf HTTP/1.1\r\nHost: x\r\n"
        + header
        + b"Content-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body,
    )


class AnsweringCall:
    """Plays the runner's poll loop: takes queued digits and settles them as sent."""

    def __init__(self) -> None:
        self.queue = DtmfQueue()
        self.sent: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            for digits, _method, future in self.queue.take():
                if future.set_running_or_notify_cancel():
                    self.sent.append(digits)
                    future.set_result(None)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


@pytest.mark.parametrize("token", ["s3cret", None], ids=["token", "no token (local use)"])
def test_dtmf_needs_the_pods_token_when_it_has_one(token: str | None) -> None:
    """Keys are pressed in the call only by whoever holds the token the operator gave the pod;
    /status stays readable (the operator and monitoring read it)."""
    reporter = StatusReporter(initial_status("c1", "rtmp://h/live/***"), out=io.StringIO())
    call = AnsweringCall()
    running = StatusServer("127.0.0.1", 0, reporter, MediaCounters(), call.queue, token)
    running.start()
    try:
        for authorization in (
            None,
            "Bearer wrong",
            "Basic s3cret",
            "s3cret",
            "Bearer \u00e9t\u00e9",
        ):
            answer = post_dtmf(running.port, authorization)
            expected = b"401" if token else b"200"
            assert answer.split(b" ", 2)[1] == expected, (authorization, answer)
            assert (b"WWW-Authenticate: Bearer" in answer) == bool(token)
        assert call.sent == ([] if token else ["1"] * 5)
        answer = post_dtmf(running.port, "Bearer s3cret")
        assert answer.split(b" ", 2)[1] == b"200", answer
        assert exchange(running.port, b"GET /status HTTP/1.0\r\n\r\n").split(b" ", 2)[1] == b"200"
    finally:
        running.stop()
        call.close()
