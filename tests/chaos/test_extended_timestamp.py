"""A call 4 h 39 m long crosses RTMP's extended-timestamp boundary: 0xFFFFFF ms is the largest
timestamp a chunk header holds, later ones travel in an extra field. The stream clock starts
near it (rtmp/publisher.py's test-only start offset), so the crossing takes seconds."""

from __future__ import annotations

from collections.abc import Callable

from siprtmp_bridge.rtmp.publisher import STREAM_START_ENV
from tests.chaos.conftest import MAX_STEP_MS, assert_steady
from tests.conftest import call_spec
from tests.support.bridge_process import BridgeProcess
from tests.support.nginx_rtmp import NginxRtmp
from tests.support.recording import measure_recording, packet_times, tone_gaps
from tests.support.rtmp_player import RtmpPlayer
from tests.support.sipp import SippPeer

BOUNDARY_MS = 0xFFFFFF  # 16777215 ms = 4 h 39 m 37 s
START_MS = BOUNDARY_MS - 4000


def test_the_stream_crosses_the_extended_timestamp_boundary_without_a_glitch(
    tone_peer: Callable[..., SippPeer],
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
) -> None:
    player = RtmpPlayer(f"{rtmp_server.url}/long").start()
    peer = tone_peer(8.0)
    process = bridge(
        call_spec(peer.uri, rtmp_server, "long"), env={STREAM_START_ENV: str(START_MS)}
    )
    assert process.wait(40) == 0, process.stderr_text[-2000:]
    assert process.final["reason"] == "RemoteHangup"
    assert peer.wait(10) == 0

    # What nginx-rtmp sends a viewer: the bridge's timestamps, across the boundary, steady.
    heard = player.join(20).times("audio")
    assert heard, player.error
    assert heard[0] < BOUNDARY_MS - 2000 and heard[-1] > BOUNDARY_MS + 3000, (heard[0], heard[-1])
    assert_steady(heard, "played")

    # What it recorded (from 0): steady too, and the tone whole across the crossing.
    (recording,) = rtmp_server.recordings_of("long")
    recorded = packet_times(recording)
    assert_steady(recorded, "recorded")
    assert abs((recorded[-1] - recorded[0]) - (heard[-1] - heard[0])) < MAX_STEP_MS
    tone = measure_recording(recording)
    assert abs(tone.frequency_hz - 1000) < 5
    assert tone.tone_seconds > 7.5, tone
    assert tone_gaps(recording) == []
