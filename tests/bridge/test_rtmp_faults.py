"""The RTMP side failing mid-call: the server gone for good, or black-holed (every packet
dropped, nothing refused). Each must end in the truth (RtmpFailed, exit 7, the final status and
termination message saying so) within a bound, with video as with audio alone."""

from __future__ import annotations

import contextlib
import json
import math
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from siprtmp_bridge.demo.ports import free_port
from siprtmp_bridge.rtmp.fanout import BURST_SECONDS
from siprtmp_bridge.rtmp.publisher import queue_items
from siprtmp_bridge.rtmp.stall import STALL_SECONDS
from siprtmp_bridge.video.slate import FRAMES_PER_SECOND
from tests.bridge.test_call_failures import local_address
from tests.bridge.test_video import video_far_end, video_spec
from tests.conftest import call_spec
from tests.support.bridge_process import BridgeProcess
from tests.support.http import http_get
from tests.support.nginx_rtmp import NginxRtmp
from tests.support.sipp import SippPeer

EXIT_RTMP = 7
#: The far end talks for longer than any of these tests lasts: only the bridge ends the call.
FAR_END_SECONDS = 60.0
#: Seconds from the decision to end (the stream FAILED) to the process gone: the BYE and its
#: answer (2 s at most), the media threads' flush (1.5 s each) and pjsua's shutdown.
EXIT_BOUND_SECONDS = 6.0


def publishing(line: dict[str, Any]) -> bool:
    return bool(line["phase"] == "Streaming" and line["stream"]["state"] == "PUBLISHING")


def stream_state(state: str) -> Callable[[dict[str, Any]], bool]:
    return lambda line: line["stream"]["state"] == state


def assert_ended_rtmp_failed(process: BridgeProcess) -> dict[str, Any]:
    """Exit 7, and the final status line and the termination message both tell why."""
    final = process.final
    assert final["phase"] == "Failed"
    assert final["reason"] == "RtmpFailed"
    assert final["exitCode"] == EXIT_RTMP
    assert final["stream"]["state"] == "FAILED"
    assert final["call"]["state"] in ("FINISH", "FAILED")
    termination = json.loads(process.termination_log.read_text())
    assert (termination["reason"], termination["exitCode"]) == ("RtmpFailed", EXIT_RTMP)
    assert "sip-rtmp-bridge: RtmpFailed: lost rtmp" in process.stderr_text
    return final


def metric(body: str, name: str) -> float:
    return float(next(line for line in body.splitlines() if line.startswith(name)).split()[-1])


def test_server_gone_for_good_with_video_drops_media_then_ends_rtmp_failed_in_bounded_time(
    sipp: Callable[..., SippPeer],
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
    tone_pcap: Callable[..., Path],
) -> None:
    """The slate and the audio fill the publisher's queue while it reconnects; once the budget
    is spent the bridge hangs up and exits, however full the queue (it used to wait for ever to
    queue its end marker behind media nobody would send)."""
    peer = video_far_end(
        sipp, tone_pcap("PCMU", FAR_END_SECONDS), "a=ptime:20", "none", int(FAR_END_SECONDS * 1000)
    )
    # Long enough for the queue to fill: the slate's frames and the audio's bursts.
    fills_in = queue_items(video=True) / (FRAMES_PER_SECOND + 1 / BURST_SECONDS)
    budget = math.ceil(fills_in) + 3
    spec = video_spec(peer, rtmp_server, "gone", whenAbsent="slate")
    spec["rtmpReconnectTimeoutSeconds"] = budget
    status_port = free_port()
    process = bridge(spec, status_port=status_port)
    process.wait_for(publishing, 15)
    time.sleep(2)
    rtmp_server.stop()
    process.wait_for(stream_state("RECONNECTING"), 5)
    dropping = process.wait_for(lambda line: line["stream"]["degraded"], budget)
    _, metrics = http_get(f"http://127.0.0.1:{status_port}/metrics")
    assert dropping["stream"]["state"] == "RECONNECTING"
    assert metric(metrics, "siprtmp_rtmp_packets_dropped_total") > 0
    assert metric(metrics, "siprtmp_stream_degraded") == 1.0
    process.wait_for(stream_state("FAILED"), budget + 5)
    decided = time.monotonic()
    assert process.wait(EXIT_BOUND_SECONDS + 10) == EXIT_RTMP
    exited_after = time.monotonic() - decided
    final = assert_ended_rtmp_failed(process)
    assert "Connection refused" in final["message"]
    assert final["stream"]["droppedPackets"] > 0
    assert final["video"]["source"] == "slate"
    assert exited_after < EXIT_BOUND_SECONDS, exited_after
    assert "BYE sip:" in peer.messages()  # the bridge hung the call up itself
    peer.wait(10)


@contextlib.contextmanager
def black_hole(host: str, port: int) -> Iterator[None]:
    """From now on every packet to ``host:port`` is dropped: no RST, no ICMP, no FIN."""
    rule = ["INPUT", "-p", "tcp", "-d", host, "--dport", str(port), "-j", "DROP"]
    subprocess.run(["iptables", "-I", *rule], check=True, capture_output=True)
    try:
        yield
    finally:
        subprocess.run(["iptables", "-D", *rule], check=False, capture_output=True)


@pytest.mark.parametrize("tls", [False, True], ids=["rtmp", "rtmps-verified"])
def test_black_hole_mid_call_is_detected_reconnected_and_ends_rtmp_failed(
    tls: bool,
    tone_peer: Callable[..., SippPeer],
    bridge: Callable[..., BridgeProcess],
    tmp_path: Path,
) -> None:
    """An established connection whose packets vanish: TCP alone would keep the stream
    PUBLISHING for about 15 minutes. Over RTMPS the relay's connection to the server stalls."""
    budget = 4
    peer = tone_peer(FAR_END_SECONDS, "uas_tone_wait_bye.xml")
    with local_address() as host:
        server = NginxRtmp(tmp_path / "nginx", free_port(), free_port() if tls else None, host)
        server.start()
        try:
            spec = call_spec(peer.uri, server, "hole", rtmpReconnectTimeoutSeconds=budget)
            spec["rtmpUrl"] = server.tls_url if tls else server.url
            process = bridge(spec, env=server.trusting_env if tls else {})
            process.wait_for(publishing, 15)
            time.sleep(2)
            with black_hole(host, server.tls_port or server.port):
                holed = time.monotonic()
                process.wait_for(stream_state("RECONNECTING"), STALL_SECONDS + 3)
                detected_after = time.monotonic() - holed
                process.wait_for(stream_state("FAILED"), budget + 8)
                decided = time.monotonic()
                assert process.wait(EXIT_BOUND_SECONDS + 10) == EXIT_RTMP
                exited_after = time.monotonic() - decided
        finally:
            server.stop()
    final = assert_ended_rtmp_failed(process)
    assert final["stream"]["reconnects"] == 1
    assert exited_after < EXIT_BOUND_SECONDS, exited_after
    print(f"stall detected after {detected_after:.1f} s; exit {exited_after:.1f} s after FAILED")
    assert peer.wait(10) == 0  # our BYE completed the far end's scenario
