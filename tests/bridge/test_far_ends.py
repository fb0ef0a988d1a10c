"""baresip, a real softphone, as the far end of an audio call: the codecs it answers, the DTMF it
presses and receives, and its hold, resume and re-INVITE, each proven by what was decoded from
nginx-rtmp's recording of the stream."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import call_spec
from tests.support.baresip import BaresipPeer
from tests.support.bridge_process import BridgeProcess
from tests.support.nginx_rtmp import NginxRtmp
from tests.support.recording import measure_recording
from tests.support.http import post_dtmf
from tests.operator.k8s_harness import wait_for
from siprtmp_bridge.demo.ports import free_port
import time

CALL_SECONDS = 6


@pytest.mark.parametrize(
    ("codec", "baresip_codec", "tone_hz"),
    [("PCMU", "PCMU", 1000), ("G722", "G722/16000", 5000)],  # baresip's "G722" means 8 kHz
    ids=["PCMU-1kHz", "G722-5kHz"],
)
def test_baresip_tone_is_published(
    codec: str,
    baresip_codec: str,
    tone_hz: int,
    baresip: Callable[..., BaresipPeer],
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
) -> None:
    """baresip answers the bridge's offer with ``codec`` and plays ausine's tone until it hangs
    up. 5 kHz is above what G.711's 8 kHz sampling can carry: heard in the recording, it
    proves the call stayed wideband (16 kHz) from baresip to the AAC stream."""
    peer = baresip(None, CALL_SECONDS, audio_codec=baresip_codec, tone_hz=tone_hz)
    stream = f"baresip-{codec.lower()}"
    process = bridge(call_spec(peer.uri, rtmp_server, stream))
    assert process.wait(30) == 0, process.stderr_text[-3000:]
    assert peer.wait(10) == 0, peer.text()[-3000:]
    final = process.final
    assert final["reason"] == "RemoteHangup", final
    assert final["call"]["codec"].startswith(codec), final["call"]

    (recording,) = rtmp_server.recordings_of(stream)
    tone = measure_recording(recording)
    assert abs(tone.frequency_hz - tone_hz) < 10, tone
    assert tone.tone_seconds > CALL_SECONDS - 2.5, tone


def test_dtmf_both_ways_between_baresip_and_the_bridge(
    baresip: Callable[..., BaresipPeer],
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
) -> None:
    """baresip presses 4 then 2 (its ``sndcode``, RFC 4733 events): the bridge's status counts
    them; the bridge sends 1#9 as events and 5 by INFO (``POST /dtmf``): baresip logs each."""
    peer = baresip(None, 30)
    port = free_port()
    spec = call_spec(peer.uri, rtmp_server, "baresip-dtmf", hasAudio=True)
    process = bridge(spec, status_port=port)
    process.wait_for(lambda s: s["call"]["state"] == "ESTABLISHED", timeout=20)
    for key in "42":
        assert peer.command("sndcode", key)["ok"] is True
        time.sleep(0.5)  # baresip sends one key at a time
    status = process.wait_for(lambda s: s["call"]["dtmfReceived"] >= 2, timeout=10)
    assert (status["call"]["dtmfReceived"], status["call"]["dtmfLastDigits"]) == (2, "42")

    assert post_dtmf(port, {"dtmf": "1#9"})[0] == 200
    wait_for("events at baresip", lambda: peer.received_dtmf("RFC2833") == "1#9", timeout=10)
    assert post_dtmf(port, {"dtmf": "5", "type": "INFO"})[0] == 200
    wait_for("an INFO at baresip", lambda: peer.received_dtmf("INFO") == "5", timeout=10)
    process.signal()
    assert process.wait(20) == 0, process.stderr_text[-3000:]
    assert process.final["call"]["dtmfReceived"] == 2  # its own keys are not counted
    (recording,) = rtmp_server.recordings_of("baresip-dtmf")
    tone = measure_recording(recording)
    assert abs(tone.frequency_hz - 1000) < 10 and tone.tone_seconds > 1.5, tone
