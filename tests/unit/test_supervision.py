"""Media faults in bounded time, below the call: worker supervision and /healthz, the
publisher's end with nobody draining its queue, the kernel's stall bound on a connection."""

from __future__ import annotations

import io
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from siprtmp_bridge.counters import MediaCounters
from siprtmp_bridge.http_api import StatusServer
from siprtmp_bridge.limits import limit_reached
from siprtmp_bridge.logs import logging_to_stderr
from siprtmp_bridge.reporter import StatusReporter
from siprtmp_bridge.rtmp.publisher import (
    DEGRADED_SECONDS,
    RtmpPublisher,
    StreamFormat,
    queue_items,
)
from siprtmp_bridge.rtmp.route import DirectRoute
from siprtmp_bridge.rtmp.stall import STALL_SECONDS, limit_stalls, socket_inodes
from siprtmp_bridge.rtp.keepalive import RtpPortClaim
from siprtmp_bridge.status import initial_status
from siprtmp_bridge.supervision import Supervisor, health_problem
from siprtmp_bridge.video.relay import VideoRelay
from siprtmp_bridge.video.slate import Slate
from siprtmp_bridge.video.track import SlatedTrack
from siprtmp_contract.outcome import ExitCode
from siprtmp_contract.redact import Scrubber
from siprtmp_contract.states import StreamState
from tests.support.http import http_get
from tests.unit.test_limits import ANSWERED, TIMEOUTS


def test_health_is_a_failure_first_then_the_stalest_worker_beyond_the_bound() -> None:
    assert health_problem(100.0, {"a": 95.0, "b": 99.0}, None, 10.0) is None
    assert health_problem(100.0, {"a": 89.0}, None, 10.0) == "a: no progress for 11.0 s"
    assert health_problem(100.0, {"a": 99.0}, "a thread failed: X", 10.0) == "a thread failed: X"
    assert health_problem(100.0, {}, None, 10.0) is None  # nothing running: nothing to wait for


@pytest.mark.parametrize(
    ("name", "seen"),
    [("rtmp-publisher", "rtmp-publisher"), ("rtmp-publisher-1", "rtmp-publisher-")],
)
def test_a_worker_thread_is_named_for_the_kernel_too(name: str, seen: str) -> None:
    """What ``top -H`` and the benchmark read, cut to the kernel's 15 bytes."""
    names: list[str] = []

    def body() -> None:
        names.append(Path(f"/proc/self/task/{threading.get_native_id()}/comm").read_text())

    thread = threading.Thread(target=Supervisor().supervised(name, body))
    thread.start()
    thread.join(5)
    assert names == [seen + "\n"]


def test_a_worker_that_raises_is_recorded_reported_and_no_longer_watched(
    capsys: pytest.CaptureFixture[str],
) -> None:
    supervisor = Supervisor()

    def broken() -> None:
        raise ValueError("bad packet")

    with logging_to_stderr(Scrubber()):  # the bridge's log, as a run configures it
        thread = threading.Thread(target=supervisor.supervised("media-pipeline", broken))
        thread.start()
        thread.join(5)
    assert supervisor.failure == "media-pipeline thread failed: ValueError: bad packet"
    assert supervisor.problem() == supervisor.failure
    stderr = capsys.readouterr().err
    assert "sip-rtmp-bridge: media-pipeline thread failed: ValueError: bad packet" in stderr
    assert "Traceback" in stderr


def test_a_worker_that_ends_normally_leaves_the_media_healthy() -> None:
    supervisor = Supervisor(bound=0.01)
    thread = threading.Thread(target=supervisor.supervised("rtmp-publisher", lambda: None))
    thread.start()
    thread.join(5)
    time.sleep(0.05)
    assert (supervisor.failure, supervisor.problem()) == (None, None)


def test_a_worker_failure_ends_the_call_as_internal_error_before_other_limits() -> None:
    clock = replace(ANSWERED, rtmp_failure="gave up", worker_failure="rtmp-publisher thread failed")
    outcome = limit_reached(clock, TIMEOUTS, "c", "s")
    assert outcome is not None
    assert (outcome.exit_code, outcome.reason) == (ExitCode.INTERNAL, "InternalError")
    assert outcome.message == "rtmp-publisher thread failed"


def wait_for_failure(supervisor: Supervisor, seconds: float = 5.0) -> str | None:
    deadline = time.monotonic() + seconds
    while supervisor.failure is None and time.monotonic() < deadline:
        time.sleep(0.02)
    return supervisor.failure


def test_a_video_relay_that_raises_is_a_worker_failure_and_beats_while_it_runs() -> None:
    """The relay's thread calls back into the session for each new SSRC: a bug there (here,
    a callback that raises) ends the relay, and the call with it."""
    supervisor = Supervisor(bound=1.0)

    def broken(ssrc: int) -> None:
        raise RuntimeError(f"cannot take SSRC {ssrc:#x}")

    claim = RtpPortClaim("127.0.0.1", 40000, 40998)
    port = claim.port
    relay = VideoRelay(claim, ("127.0.0.1", port + 11), broken, lambda: None, supervisor)
    relay.start()
    try:
        time.sleep(1.2)  # beyond the bound: an idle relay still beats
        assert supervisor.problem() is None
        rtp = bytes.fromhex("80600001000000000000abcd") + b"payload"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as far_end:
            far_end.sendto(rtp, ("127.0.0.1", port))
        failure = wait_for_failure(supervisor)
    finally:
        relay.close()
    assert failure == "video-relay thread failed: RuntimeError: cannot take SSRC 0xabcd"


def test_a_slate_track_whose_publisher_raises_is_a_worker_failure() -> None:
    supervisor = Supervisor()

    def broken(packet: object) -> None:
        raise RuntimeError("queue gone")

    slate = Slate()
    track = SlatedTrack(slate, broken, lambda at: at, supervisor)
    track.start()
    try:
        failure = wait_for_failure(supervisor)
    finally:
        track.stop()
        slate.close()
    assert failure == "video-slate thread failed: RuntimeError: queue gone"


@pytest.fixture
def served() -> Iterator[tuple[StatusServer, Supervisor]]:
    reporter = StatusReporter(initial_status("c1", "rtmp://h/live/***"), out=io.StringIO())
    supervisor = Supervisor(bound=0.2)
    server = StatusServer("127.0.0.1", 0, reporter, MediaCounters(), supervisor=supervisor)
    server.start()
    yield server, supervisor
    server.stop()


def test_healthz_fails_once_a_running_worker_stops_making_progress(
    served: tuple[StatusServer, Supervisor],
) -> None:
    server, supervisor = served
    url = f"http://127.0.0.1:{server.port}/healthz"
    release = threading.Event()

    def stuck() -> None:
        release.wait()

    worker = threading.Thread(target=supervisor.supervised("media-pipeline", stuck))
    worker.start()
    try:
        assert http_get(url) == (200, "ok\n")
        time.sleep(0.3)  # beyond the bound, with no beat
        code, body = http_get(url)
        assert code == 503
        assert body.startswith("unhealthy: media-pipeline: no progress for")
    finally:
        release.set()
        worker.join(5)


def test_the_publisher_finishes_in_bounded_time_after_giving_up_with_a_full_queue() -> None:
    """Its thread has ended (the budget is spent), nobody drains the queue: finishing used to
    block for ever putting its end marker behind the media."""
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # bound, never listening: connections are refused
        supervisor = Supervisor()
        publisher = RtmpPublisher(
            DirectRoute(f"rtmp://127.0.0.1:{port}/live/s"),
            StreamFormat(48000, 64000),
            lambda state, sent: None,
            0.0,
            supervisor,
        )
        publisher.start()
        assert not publisher.wait_connected(5)
        assert publisher.state is StreamState.FAILED
        for _ in range(queue_items(video=False) + 5):
            publisher.submit([b"packet"])
        finishing = threading.Thread(target=publisher.finish, args=(1.0,), daemon=True)
        started = time.monotonic()
        finishing.start()
        finishing.join(10)
        assert not finishing.is_alive()
        assert time.monotonic() - started < 3
    assert publisher.packets_dropped >= 5
    assert publisher.last_drop_at is not None
    assert publisher.degraded(publisher.last_drop_at)
    assert not publisher.degraded(publisher.last_drop_at + DEGRADED_SECONDS)
    assert supervisor.failure is None


def test_the_stall_bound_is_set_on_the_new_connection_to_the_port_only() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        with socket.create_server(("127.0.0.1", 0)) as other:
            before = socket_inodes()
            to_port = socket.create_connection(("127.0.0.1", port))
            elsewhere = socket.create_connection(other.getsockname())
            with to_port, elsewhere:
                assert limit_stalls(port, before) == 1
                timeout = socket.TCP_USER_TIMEOUT
                assert to_port.getsockopt(socket.IPPROTO_TCP, timeout) == STALL_SECONDS * 1000
                assert elsewhere.getsockopt(socket.IPPROTO_TCP, timeout) == 0
                assert limit_stalls(port, socket_inodes()) == 0  # known before: left alone
