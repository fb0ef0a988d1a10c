"""A call's audio reaches a real RTMP server: SIPp streams a known tone, nginx-rtmp records it,
and the recording is decoded to check the tone's frequency and duration."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import TONES, call_spec
from tests.support.bridge_process import BridgeProcess
from tests.support.nginx_rtmp import NginxRtmp
from tests.support.recording import ffprobe, measure_recording
from tests.support.sipp import SippPeer

TONE_SECONDS = 3.0


@pytest.mark.parametrize("codec", ["PCMU", "PCMA", "G722"])
def test_tone_from_far_end_is_published_over_rtmp(
    codec: str,
    sipp: Callable[..., SippPeer],
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
    tone_pcap: Callable[[str, float], Path],
) -> None:
    rtp_codec, frequency = TONES[codec]
    peer = sipp(
        "uas_tone_hangup.xml",
        pcap=tone_pcap(codec, TONE_SECONDS),
        payload_type=rtp_codec.payload_type,
        codec=f"{rtp_codec.name}/{rtp_codec.rtp_clock}",
        direction="sendonly",
        call_ms=int(TONE_SECONDS * 1000 + 600),
    )
    stream = f"tone-{codec.lower()}"
    process = bridge(call_spec(peer.uri, rtmp_server, stream, codecs=[codec]))

    assert process.wait(30) == 0, process.stderr_text
    final = process.final
    assert final["phase"] == "Succeeded"
    assert final["reason"] == "RemoteHangup"
    assert final["exitCode"] == 0
    assert final["call"]["state"] == "FINISH"
    assert final["call"]["codec"].startswith(codec)
    assert final["stream"]["state"] == "UNPUBLISHED"
    assert final["stream"]["bytesSent"] > 10_000
    assert process.phases() == ["Pending", "Connecting", "Streaming", "Terminating", "Succeeded"]
    assert "ESTABLISHED" in process.call_states()
    assert peer.wait(10) == 0

    # The far end answered a=sendonly: pjsua shows that as remote hold, yet it is bridged.
    (recording,) = rtmp_server.recordings_of(stream)
    tone = measure_recording(recording)
    assert tone.codec == "aac"
    assert tone.sample_rate == 48000
    assert abs(tone.frequency_hz - frequency) < 5, tone
    assert abs(tone.tone_seconds - TONE_SECONDS) < 0.3, tone
    probe = ffprobe(recording)
    assert [s["codec_name"] for s in probe["streams"]] == ["aac"]
    assert float(probe["format"]["duration"]) >= TONE_SECONDS
