"""SRTP (SDES, RFC 4568) against real far ends: baresip requiring it (``mediaenc srtp-mand``)
for audio and for audio with H.264 video, and far ends without it. Each is proven by what was
decoded from the recording, and a capture shows that no plain RTP crossed the wire."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from siprtmp_bridge.rtp.sdp import media_sections
from tests.conftest import call_spec
from tests.support.baresip import BaresipPeer, camera_file
from tests.support.bridge_process import BridgeProcess
from tests.support.capture import LoopbackCapture
from tests.support.nginx_rtmp import NginxRtmp
from tests.support.ports import free_udp_window
from tests.support.recording import measure_recording
from tests.support.sipp import SippPeer
from tests.support.srtp_wire import AUTH_TAG, assert_no_clear_h264, assert_no_clear_pcmu
from tests.support.video_recording import assert_picture_and_tone

CALL_SECONDS = 6
SUITE = "AES_CM_128_HMAC_SHA1_80"  # the first of baresip's offer, taken by pjsua too


def _srtp_spec(
    peer: BaresipPeer, rtmp: NginxRtmp, stream: str, mode: str, low: int
) -> dict[str, Any]:
    spec = call_spec(peer.uri, rtmp, stream, hasAudio=True)
    spec["connection"] = {"mediaEncryption": mode}
    spec["nat"] = {"bindAddress": "127.0.0.1", "rtpPortMin": low, "rtpPortMax": low + 3}
    return spec


def test_baresip_requiring_srtp_is_called_and_its_tone_published(
    baresip: Callable[..., BaresipPeer],
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
    tmp_path: Path,
) -> None:
    """baresip with ``srtp-mand`` accepts only RTP/SAVP: the bridge's ``require`` offer gets a
    200 with a=crypto, the tone comes through SRTP into the recording, the suite is in the
    status, and the wire shows only SRTP."""
    peer = baresip(None, CALL_SECONDS, mediaenc="srtp-mand")
    low = free_udp_window(4)
    spec = _srtp_spec(peer, rtmp_server, "srtp-audio", "require", low)
    with LoopbackCapture(tmp_path / "rtp.pcap", f"udp portrange {low}-{low + 1}") as capture:
        process = bridge(spec)
        assert process.wait(30) == 0, process.stderr_text[-3000:]
    assert peer.wait(10) == 0, peer.text()[-3000:]
    final = process.final
    assert final["reason"] == "RemoteHangup", final
    assert final["call"]["srtpSuite"] == SUITE, final["call"]
    assert "stream: audio: starting mediaenc 'srtp-mand'" in peer.text()

    (recording,) = rtmp_server.recordings_of("srtp-audio")
    tone = measure_recording(recording)
    assert abs(tone.frequency_hz - 1000) < 10, tone
    assert tone.tone_seconds > CALL_SECONDS - 2.5, tone
    assert_no_clear_pcmu(capture.udp_payloads(f"udp.port == {low}"))


def test_srtp_video_from_baresip_is_decrypted_and_published_with_its_audio(
    baresip: Callable[..., BaresipPeer],
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
    pcap_dir: Path,
    tmp_path: Path,
) -> None:
    """baresip offers RTP/SAVP audio and video (``srtp-mand``) in its 200 OK to the bridge's
    delayed offer; with the default ``allow`` the bridge answers both with keys of its own in
    the ACK, its relay decrypts the video for FFmpeg and protects its keyframe requests: the
    picture's colours and the tone are in the recording, and no clear H.264 is on the wire."""
    peer = baresip(camera_file(pcap_dir, 30), 10, mediaenc="srtp-mand")
    low = free_udp_window(4)
    spec = call_spec(peer.uri, rtmp_server, "srtp-video", video={"mode": "passthrough"})
    spec["nat"] = {"bindAddress": "127.0.0.1", "rtpPortMin": low, "rtpPortMax": low + 3}
    capture_filter = f"udp port {peer.port} or udp portrange {low}-{low + 3}"
    with LoopbackCapture(tmp_path / "call.pcap", capture_filter) as capture:
        process = bridge(spec)
        assert process.wait(40) == 0, process.stderr_text[-3000:]
    assert peer.wait(10) == 0, peer.text()[-3000:]

    final = process.final
    assert final["reason"] == "RemoteHangup", final
    assert final["call"]["srtpSuite"] == SUITE, final["call"]
    video = final["video"]
    assert video["state"] == "RECEIVING", (video, peer.text()[-3000:])
    # baresip sends an RTCP APP "PING" in clear as the call starts and a BYE at its end that
    # does not authenticate: both dropped, never forwarded.
    assert video["srtpSuite"] == SUITE and video["srtpRejected"] <= 3, video
    assert video["frames"] > 40, video
    (ack,) = capture.udp_payloads('sip.Method == "ACK"')
    sections = media_sections(ack.decode().partition("\r\n\r\n")[2])[1]
    for lines in sections:  # audio (pjsua's) and video (the bridge's): each its own key
        assert " RTP/SAVP " in lines[0], lines
        assert sum(line.startswith(f"a=crypto:1 {SUITE} inline:") for line in lines) == 1, lines

    video_port = video["localPort"]
    assert_no_clear_h264(capture.udp_payloads(f"udp.dstport == {video_port}"))
    # The bridge's keyframe requests and FFmpeg's reports leave as SRTCP: the E flag and
    # index word (4 bytes) and the 80-bit tag follow the RTCP, which never ends on them in clear.
    sent = capture.fields(
        f"udp.srcport == {video_port + 1} || (udp.srcport == {video_port} && rtcp)",
        "udp.length",
        decode_as=f"udp.port=={video_port + 1},rtcp",
    )
    assert sent and all((int(row[0]) - 8 - 4 - AUTH_TAG) % 4 == 0 for row in sent), sent

    recording = rtmp_server.recordings_of("srtp-video")[-1]
    assert_picture_and_tone(recording)


def test_require_against_baresip_without_srtp_fails_with_its_own_reason(
    baresip: Callable[..., BaresipPeer],
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
) -> None:
    """baresip without SRTP refuses the RTP/SAVP offer: ``SrtpRefused``, exit 4, at once."""
    peer = baresip(None, 20)
    spec = _srtp_spec(peer, rtmp_server, "srtp-refused", "require", free_udp_window(4))
    started = time.monotonic()
    process = bridge(spec)
    assert process.wait(20) == 4, process.stderr_text[-3000:]
    assert time.monotonic() - started < 10
    final = process.final
    assert (final["reason"], final["exitCode"]) == ("SrtpRefused", 4), final
    assert "require accepts no plain RTP" in final["message"], final
    assert re.search(r"^m=audio \d+ RTP/SAVP ", peer.text(), re.MULTILINE), peer.text()[-2000:]


def test_require_against_a_plain_rtp_answer_fails_with_its_own_reason(
    tone_peer: Callable[..., SippPeer],
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
) -> None:
    """A SIPp far end that answers any offer with plain RTP/AVP: pjsua cannot take the answer
    to its RTP/SAVP offer, and the call ends ``SrtpRefused`` (not ``Rejected``), exit 4."""
    peer = tone_peer(3.0)
    spec = call_spec(peer.uri, rtmp_server, "srtp-plain-answer")
    spec["connection"] = {"mediaEncryption": "require"}
    started = time.monotonic()
    process = bridge(spec)
    assert process.wait(20) == 4, process.stderr_text[-3000:]
    assert time.monotonic() - started < 10
    final = process.final
    assert (final["reason"], final["exitCode"]) == ("SrtpRefused", 4), final
    assert "audio RTP/AVP without SRTP keys" in final["message"], final


def test_allow_against_a_far_end_without_srtp_bridges_plain_rtp(
    baresip: Callable[..., BaresipPeer],
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
) -> None:
    """``allow`` (the default) offers keys in RTP/AVP; baresip without SRTP ignores them and
    answers plain RTP, which the bridge takes: no suite in the status, the tone published."""
    peer = baresip(None, CALL_SECONDS)
    process = bridge(call_spec(peer.uri, rtmp_server, "srtp-allow-plain", hasAudio=True))
    assert process.wait(30) == 0, process.stderr_text[-3000:]
    final = process.final
    assert final["reason"] == "RemoteHangup", final
    assert final["call"]["srtpSuite"] is None, final["call"]
    assert re.search(r"^a=crypto:\d+ ", peer.text(), re.MULTILINE), peer.text()[-2000:]
    (recording,) = rtmp_server.recordings_of("srtp-allow-plain")
    tone = measure_recording(recording)
    assert abs(tone.frequency_hz - 1000) < 10 and tone.tone_seconds > CALL_SECONDS - 2.5, tone


def test_allow_against_baresip_requiring_srtp_offers_rtp_savp_after_the_488(
    baresip: Callable[..., BaresipPeer],
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
    tmp_path: Path,
) -> None:
    """``allow`` offers RTP/AVP with keys; baresip's ``srtp-mand`` answers 488. The bridge
    offers RTP/SAVP once more in the same attempt: the call connects, the tone is decoded
    through SRTP, the status shows the profile and suite, and the wire carries only SRTP."""
    peer = baresip(None, CALL_SECONDS, mediaenc="srtp-mand")
    low = free_udp_window(4)
    spec = _srtp_spec(peer, rtmp_server, "srtp-allow", "allow", low)
    capture_filter = f"udp port {peer.port} or udp portrange {low}-{low + 3}"
    with LoopbackCapture(tmp_path / "call.pcap", capture_filter) as capture:
        process = bridge(spec)
        assert process.wait(30) == 0, process.stderr_text[-3000:]
    assert peer.wait(10) == 0, peer.text()[-3000:]
    final = process.final
    assert final["reason"] == "RemoteHangup", final
    assert (final["call"]["rtpProfile"], final["call"]["srtpSuite"]) == ("RTP/SAVP", SUITE)

    invites = capture.udp_payloads(f'sip.Method == "INVITE" && udp.dstport == {peer.port}')
    profiles = [re.findall(r"^m=audio \d+ (\S+) ", i.decode(), re.MULTILINE) for i in invites]
    assert profiles == [["RTP/AVP"], ["RTP/SAVP"]], profiles
    (refusal,) = capture.fields(
        f"sip.Status-Code >= 300 && udp.srcport == {peer.port}", "sip.Status-Code"
    )
    assert refusal == ["488"], refusal

    (recording,) = rtmp_server.recordings_of("srtp-allow")
    tone = measure_recording(recording)
    assert abs(tone.frequency_hz - 1000) < 10, tone
    assert tone.tone_seconds > CALL_SECONDS - 2.5, tone
    # The second INVITE's RTP port is the window's next pair (pjsua moves on from the first).
    audio = f"udp.port >= {low} && udp.port <= {low + 3} && !sip"
    assert_no_clear_pcmu(capture.udp_payloads(audio))


def test_disable_against_baresip_requiring_srtp_ends_rejected(
    baresip: Callable[..., BaresipPeer],
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
) -> None:
    """``disable`` offers plain RTP/AVP only and never RTP/SAVP: baresip's 488 ends the call
    ``Rejected`` (the far end's refusal, exit 4), with one INVITE."""
    peer = baresip(None, 20, mediaenc="srtp-mand")
    spec = _srtp_spec(peer, rtmp_server, "srtp-disable", "disable", free_udp_window(4))
    process = bridge(spec)
    assert process.wait(20) == 4, process.stderr_text[-3000:]
    final = process.final
    assert (final["reason"], final["call"]["sipStatusCode"]) == ("Rejected", 488), final
    assert peer.text().count("INVITE sip:") == 1, peer.text()[-3000:]
