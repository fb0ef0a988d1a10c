"""baresip, a real softphone, as the far end of an audio call: the codecs it answers, the DTMF it
presses and receives, and its hold, resume and re-INVITE, each proven by what was decoded from
nginx-rtmp's recording of the stream."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import pytest

from siprtmp_bridge.demo.ports import free_port
from tests.conftest import call_spec
from tests.operator.k8s_harness import wait_for
from tests.support.baresip import BaresipPeer
from tests.support.bridge_process import BridgeProcess
from tests.support.http import post_dtmf
from tests.support.nginx_rtmp import NginxRtmp
from tests.support.recording import measure_recording
from tests.support.video_recording import tone_in

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


def test_baresip_hold_resume_and_reinvite_keep_the_call_and_the_audio(
    baresip: Callable[..., BaresipPeer],
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
) -> None:
    """baresip holds the call (a re-INVITE with a=sendonly) and sends nothing for longer than
    the RTP inactivity timeout, resumes, then re-INVITEs the session unchanged: the call stays
    up throughout (HOLD, then ESTABLISHED), the stream runs on in silence, and the tone is in
    the recording again from the resume on, with no gap at the re-INVITE.

    ``hasAudio: true``: the bridge offers sendrecv, so baresip's a=sendonly means hold. Offered
    recvonly, the bridge gets a=sendonly in the answer already, and baresip 1.0 holds with
    a=sendonly again (RFC 3264 asks for a=inactive there): nothing tells that hold apart."""
    before, held, after = 3.0, 4.0, 5.0
    peer = baresip(None, 40)
    spec = call_spec(
        peer.uri, rtmp_server, "baresip-hold", hasAudio=True, rtpInactivityTimeoutSeconds=2
    )
    process = bridge(spec)
    process.wait_for(lambda s: s["call"]["state"] == "ESTABLISHED", timeout=20)
    time.sleep(before)
    assert peer.command("hold")["ok"] is True
    process.wait_for(lambda s: s["call"]["state"] == "HOLD", timeout=5)
    time.sleep(held)
    assert process.process is not None and process.process.poll() is None, process.final
    assert peer.command("resume")["ok"] is True
    time.sleep(after / 2)
    assert peer.command("reinvite")["ok"] is True
    time.sleep(after / 2)
    process.signal()
    assert process.wait(20) == 0, process.stderr_text[-3000:]
    assert process.final["reason"] == "Stopped", process.final
    states = process.call_states()
    assert states[states.index("ESTABLISHED") :] == ["ESTABLISHED", "HOLD", "ESTABLISHED", "FINISH"]
    invites = re.findall(r"^INVITE sip:sip-rtmp-bridge", peer.text(), re.MULTILINE)
    assert len(invites) == 3, peer.text()[-3000:]  # hold, resume, re-INVITE: all from baresip

    (recording,) = rtmp_server.recordings_of("baresip-hold")
    tone = tone_in(recording)
    assert abs(tone.frequency_hz - 1000) < 10, tone
    first, resumed = tone.onsets  # the tone starts twice: at the answer and at the resume
    assert abs(resumed - first - (before + held)) < 0.6, tone
    assert abs(tone.audible_seconds - (before + after)) < 0.8, tone
