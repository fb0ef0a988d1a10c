"""Call flows beyond the plain answer: early media before the answer, hold and resume by
re-INVITE. The published stream's clock never stalls through any of them."""

from __future__ import annotations

from collections.abc import Callable

from tests.conftest import call_spec
from tests.support.bridge_process import BridgeProcess
from tests.support.nginx_rtmp import NginxRtmp
from tests.support.recording import ffprobe, measure_recording
from tests.support.sipp import SippPeer


def test_early_media_is_bridged_before_the_answer(
    tone_peer: Callable[..., SippPeer],
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
) -> None:
    peer = tone_peer(3.0, "uas_early_media.xml", ring_ms=1500, call_ms=2000)
    process = bridge(call_spec(peer.uri, rtmp_server, "early"))
    assert process.wait(30) == 0, process.stderr_text[-2000:]
    states = process.call_states()
    assert states.index("RING_MEDIA") < states.index("ESTABLISHED")
    assert process.final["reason"] == "RemoteHangup"
    assert peer.wait(10) == 0
    (recording,) = rtmp_server.recordings_of("early")
    tone = measure_recording(recording)
    assert abs(tone.frequency_hz - 1000) < 5
    assert tone.tone_seconds > 2.7  # the 1.5 s heard while ringing are in the stream too


def test_hold_and_resume_by_reinvite_keep_the_call_and_the_clock(
    tone_peer: Callable[..., SippPeer],
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
) -> None:
    peer = tone_peer(5.0, "uas_hold.xml", hold_at_ms=1000, hold_ms=1500, call_ms=3000)
    process = bridge(call_spec(peer.uri, rtmp_server, "held", rtpInactivityTimeoutSeconds=1))
    assert process.wait(30) == 0, process.stderr_text[-2000:]
    states = process.call_states()
    assert states[states.index("ESTABLISHED") :][:3] == ["ESTABLISHED", "HOLD", "ESTABLISHED"]
    # No RTP inactivity while held: the far end said it would send nothing.
    assert process.final["reason"] == "RemoteHangup"
    assert peer.wait(10) == 0
    (recording,) = rtmp_server.recordings_of("held")
    tone = measure_recording(recording)
    assert abs(tone.frequency_hz - 1000) < 5
    # 1 s before the hold and 2.5 s after it; what the far end sent while inactive is dropped.
    assert 3.0 < tone.tone_seconds < 4.0, tone
    # The clock ran through the hold: the stream is as long as the call.
    assert float(ffprobe(recording)["format"]["duration"]) > 5.2
