"""Each way a call can fail ends with its own exit code, status and reason, and no leftovers."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from siprtmp_bridge.demo.ports import free_port
from tests.conftest import call_spec
from tests.support.bridge_process import BridgeProcess
from tests.support.http import http_get
from tests.support.nginx_rtmp import NginxRtmp
from tests.support.silent_callee import SilentCallee
from tests.support.sipp import SippPeer

EXIT_REJECTED, EXIT_NO_ANSWER, EXIT_RTP_INACTIVITY, EXIT_RTMP, EXIT_UNREACHABLE = 4, 5, 6, 7, 8


@pytest.mark.parametrize(
    ("code", "phrase", "reason", "call_state"),
    [
        (486, "Busy Here", "Busy", "BUSY"),
        (404, "Not Found", "NotFound", "FAILED"),
        (603, "Decline", "Declined", "FAILED"),
    ],
)
def test_refused_call_fails_with_the_sip_reason(
    code: int,
    phrase: str,
    reason: str,
    call_state: str,
    sipp: Callable[..., SippPeer],
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
) -> None:
    peer = sipp("uas_reject.xml", code=code, reason_phrase=phrase)
    process = bridge(call_spec(peer.uri, rtmp_server, "refused"))
    assert process.wait(20) == EXIT_REJECTED
    final = process.final
    assert final["phase"] == "Failed"
    assert final["reason"] == reason
    assert final["exitCode"] == EXIT_REJECTED
    assert final["call"]["state"] == call_state
    assert final["call"]["sipStatusCode"] == code
    assert final["call"]["reason"] == phrase
    assert f"{code} {phrase}" in process.stderr_text.splitlines()[-1]
    assert peer.wait(10) == 0


def test_unanswered_call_is_cancelled_after_the_set_up_timeout(
    sipp: Callable[..., SippPeer],
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
) -> None:
    peer = sipp("uas_no_answer.xml", wait_ms=20000)
    process = bridge(call_spec(peer.uri, rtmp_server, "unanswered", callSetupTimeoutSeconds=2))
    assert process.wait(20) == EXIT_NO_ANSWER
    assert process.final["reason"] == "NoAnswer"
    assert process.final["phase"] == "Failed"
    assert "RING" in process.call_states()
    assert peer.wait(10) == 0  # SIPp's scenario ends only once it has received our CANCEL
    assert "CANCEL sip:" in peer.messages()


def test_peer_that_never_answers_over_udp_is_unreachable(
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        spec = call_spec(
            f"sip:nobody@127.0.0.1:{port}", rtmp_server, "void", callSetupTimeoutSeconds=2
        )
        process = bridge(spec)
        assert process.wait(20) == EXIT_UNREACHABLE
    assert process.final["reason"] == "Unreachable"
    assert process.final["call"]["state"] == "FAILED"


def test_closed_tcp_port_is_unreachable_at_once(
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
) -> None:
    spec = call_spec(
        f"sip:nobody@127.0.0.1:{free_port()}",
        rtmp_server,
        "void",
        connection={"sipTransport": "tcp"},
        callSetupTimeoutSeconds=20,
    )
    started = time.monotonic()
    process = bridge(spec)
    assert process.wait(20) == EXIT_UNREACHABLE
    assert time.monotonic() - started < 10
    assert process.final["reason"] == "Unreachable"


def test_rtp_inactivity_hangs_up_with_its_own_reason(
    tone_peer: Callable[..., SippPeer],
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
) -> None:
    peer = tone_peer(1.0, "uas_tone_wait_bye.xml")
    process = bridge(call_spec(peer.uri, rtmp_server, "inactive", rtpInactivityTimeoutSeconds=2))
    assert process.wait(20) == EXIT_RTP_INACTIVITY
    assert process.final["reason"] == "RtpInactivity"
    assert process.final["phase"] == "Failed"
    assert "Streaming" in process.phases()
    assert peer.wait(10) == 0  # it received our BYE


def test_maximum_duration_ends_the_call_normally(
    tone_peer: Callable[..., SippPeer],
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
) -> None:
    peer = tone_peer(6.0, "uas_tone_wait_bye.xml")
    process = bridge(call_spec(peer.uri, rtmp_server, "limited", maxDurationSeconds=2))
    assert process.wait(20) == 0
    assert process.final["reason"] == "MaxDuration"
    assert process.final["phase"] == "Succeeded"
    assert peer.wait(10) == 0


def test_rtmp_server_down_at_start_fails_before_dialling(
    silent_callee: SilentCallee,
    bridge: Callable[..., BridgeProcess],
    tmp_path: Path,
) -> None:
    down = NginxRtmp(tmp_path / "down", free_port())  # configured, never started
    spec = call_spec(silent_callee.uri, down, "nowhere", rtmpReconnectTimeoutSeconds=1)
    process = bridge(spec)
    assert process.wait(20) == EXIT_RTMP
    final = process.final
    assert final["reason"] == "RtmpFailed"
    assert final["phase"] == "Failed"
    assert final["stream"]["state"] == "FAILED"
    assert final["call"]["state"] in ("NEW", "FAILED")
    assert "Connection refused" in final["message"]
    assert silent_callee.received_nothing()


#: A local, non-loopback address made for the test (loopback is never probed: it cannot be
#: black-holed by a network); packets to it never leave this machine.
HOLE_ADDRESS = "10.255.254.1"


@contextlib.contextmanager
def local_address() -> Iterator[str]:
    """HOLE_ADDRESS on an empty bridge interface: this machine's, but not loopback."""
    link = "srbhole0"
    for argv in (
        ["ip", "link", "add", link, "type", "bridge"],
        ["ip", "addr", "add", f"{HOLE_ADDRESS}/32", "dev", link],
        ["ip", "link", "set", link, "up"],
    ):
        subprocess.run(argv, check=True, capture_output=True)
    try:
        yield HOLE_ADDRESS
    finally:
        subprocess.run(["ip", "link", "del", link], check=False, capture_output=True)


@contextlib.contextmanager
def black_holed(port: int) -> Iterator[str]:
    """An address whose TCP SYNs to ``port`` are dropped, as a firewalled or vanished RTMP host
    does: the local address, and an iptables DROP rule."""
    rule = ["INPUT", "-p", "tcp", "-d", HOLE_ADDRESS, "--dport", str(port), "--syn", "-j", "DROP"]
    with local_address() as host:
        subprocess.run(["iptables", "-I", *rule], check=True, capture_output=True)
        try:
            yield host
        finally:
            subprocess.run(["iptables", "-D", *rule], check=False, capture_output=True)


def test_black_holed_rtmp_server_fails_in_bounded_time_and_never_freezes_the_bridge(
    silent_callee: SilentCallee,
    bridge: Callable[..., BridgeProcess],
    tmp_path: Path,
) -> None:
    """FFmpeg's connect holds the GIL: unguarded, it froze the process for ~2 minutes."""
    status_port, rtmp_port = free_port(), free_port()
    with black_holed(rtmp_port) as host:
        spec = call_spec(silent_callee.uri, NginxRtmp(tmp_path, rtmp_port), "hole")
        spec.update(rtmpUrl=f"rtmp://{host}:{rtmp_port}/live", rtmpReconnectTimeoutSeconds=6)
        t0 = time.monotonic()
        process = bridge(spec, status_port=status_port)
        time.sleep(2)  # inside the first connect attempt
        answered = [http_get(f"http://127.0.0.1:{status_port}/status", 2)[0] for _ in range(3)]
        assert process.wait(30) == EXIT_RTMP
        elapsed = time.monotonic() - t0
    assert answered == [200, 200, 200]  # the status server kept answering during the attempts
    assert elapsed < 20
    final = process.final
    assert (final["reason"], final["stream"]["state"]) == ("RtmpFailed", "FAILED")
    assert "timed out" in final["message"]
    assert silent_callee.received_nothing()


def test_rtmp_server_that_accepts_and_never_answers_fails_in_bounded_time(
    silent_callee: SilentCallee,
    bridge: Callable[..., BridgeProcess],
    tmp_path: Path,
) -> None:
    """An overloaded or wrong server: TCP accepted, the RTMP handshake never answered. FFmpeg
    would wait for it holding the GIL, for ever; the bridge's own probe of the handshake makes
    it a failed attempt, and the status server keeps answering."""
    status_port = free_port()
    with local_address() as host, socket.create_server((host, 0)) as listener:
        port = listener.getsockname()[1]
        spec = call_spec(silent_callee.uri, NginxRtmp(tmp_path, port), "silent")
        spec.update(rtmpUrl=f"rtmp://{host}:{port}/live", rtmpReconnectTimeoutSeconds=4)
        process = bridge(spec, status_port=status_port)
        time.sleep(2)  # inside an attempt
        answered = [http_get(f"http://127.0.0.1:{status_port}/status", 2)[0] for _ in range(3)]
        assert process.wait(30) == EXIT_RTMP
    assert answered == [200, 200, 200]
    final = process.final
    assert (final["reason"], final["stream"]["state"]) == ("RtmpFailed", "FAILED")
    assert "no answer to the RTMP handshake" in final["message"]
    assert silent_callee.received_nothing()


INVALID_SPECS = [
    ({"rtmpUrl": "rtmp://h/live", "rtmpStream": "s"}, "spec.callee: is required"),
    ({"callee": "sip:a@b", "rtmpUrl": "http://h/live", "rtmpStream": "s"}, "spec.rtmpUrl"),
    (
        {"callee": "sip:a@b", "rtmpUrl": "rtmp://h/live", "rtmpStream": "s", "hasAudio": "maybe"},
        "spec.hasAudio",
    ),
    ({"callee": "1000", "rtmpUrl": "rtmp://h/live", "rtmpStream": "s"}, "spec.callee"),
    (
        {
            "callee": "sip:a@b",
            "rtmpUrl": "rtmp://h/live",
            "rtmpStream": "s",
            "connection": {"sipPort": "fifty"},
        },
        "spec.connection.sipPort",
    ),
    (
        {
            "callee": "sip:a@b",
            "rtmpUrl": "rtmp://h/live",
            "rtmpStream": "s",
            "connection": {"sipTransport": "sctp"},
        },
        "spec.connection.sipTransport",
    ),
    (
        {"callee": "sip:a@b", "rtmpUrl": "rtmp://h/live", "rtmpStream": "s", "codecs": ["opus"]},
        "spec.codecs",
    ),
    (
        {"callee": "sip:a@b", "rtmpUrl": "rtmp://h/live", "rtmpStream": "s", "colour": "red"},
        "spec.colour",
    ),
]


@pytest.mark.parametrize(("spec", "message"), INVALID_SPECS)
def test_malformed_spec_is_refused_before_any_traffic(
    spec: dict[str, object],
    message: str,
    bridge: Callable[..., BridgeProcess],
) -> None:
    process = bridge(spec)
    assert process.wait(20) == 2
    lines = process.stderr_text.strip().splitlines()
    assert len(lines) == 1
    assert message in lines[0]
    assert process.lines == []
