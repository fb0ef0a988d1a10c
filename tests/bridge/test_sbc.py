"""Kamailio with rtpengine as an SBC between the bridge and baresip: every SDP is rewritten so
that the media of both ends is anchored in rtpengine's ports, as a carrier's or an enterprise's
SBC does. Proven on the wire (tshark on loopback: the SDP each end saw names rtpengine, and RTP
flows only bridge <-> rtpengine <-> baresip) and by what was decoded from the recording. Two
cases: the bridge's normal offer (audio), and its delayed offer (video passthrough: INVITE
without SDP, rtpengine rewrites the offer in the 200 OK and the answer in the ACK)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from siprtmp_bridge.demo.ports import free_port
from siprtmp_bridge.rtp.sdp import media_sections
from tests.conftest import call_spec
from tests.support.baresip import BaresipPeer, camera_file
from tests.support.bridge_process import BridgeProcess
from tests.support.capture import LoopbackCapture
from tests.support.kamailio import KamailioSbc
from tests.support.nginx_rtmp import NginxRtmp
from tests.support.ports import free_udp_window
from tests.support.recording import ffprobe, measure_recording
from tests.support.rtpengine import Rtpengine
from tests.support.srtp_wire import assert_no_clear_h264, assert_no_clear_pcmu
from tests.support.video_pcap import HEIGHT, WIDTH
from tests.support.video_recording import assert_picture_and_tone

RTPENGINE_PORTS = 20  # media ports for one call: audio and video, RTP and RTCP, with room


@dataclass(frozen=True)
class Sbc:
    proxy: KamailioSbc
    media: Rtpengine


@pytest.fixture
def sbc(tmp_path: Path) -> Iterator[Sbc]:
    low = free_udp_window(RTPENGINE_PORTS)
    media = Rtpengine(tmp_path / "rtpengine", free_port(), low, low + RTPENGINE_PORTS - 1)
    proxy = KamailioSbc(tmp_path / "kamailio", free_port(), media.ng_port)
    try:
        media.start()
        proxy.start()
        yield Sbc(proxy, media)
    finally:
        proxy.stop()
        media.stop()


def through_sbc(spec: dict[str, Any], sbc: Sbc, bridge_ports: int) -> dict[str, Any]:
    """The spec with the SBC as outbound proxy and the bridge's RTP in its own known window."""
    spec["connection"] = {"sipOutboundProxy": f"127.0.0.1:{sbc.proxy.port}"}
    spec["nat"] = {
        "bindAddress": "127.0.0.1",
        "rtpPortMin": bridge_ports,
        "rtpPortMax": bridge_ports + 3,
    }
    return spec


def media_ports(sdp: str) -> dict[str, int]:
    """{media: port} of each m-line; every c= line must be 127.0.0.1."""
    assert set(re.findall(r"^c=IN IP4 (\S+)", sdp, re.MULTILINE)) == {"127.0.0.1"}, sdp
    return {m: int(port) for m, port in re.findall(r"^m=(\w+) (\d+) ", sdp, re.MULTILINE)}


def sip_bodies(capture: LoopbackCapture, display_filter: str) -> list[str]:
    return [m.decode() for m in capture.udp_payloads(f"{display_filter} && sdp")]


def flows(capture: LoopbackCapture) -> Counter[tuple[int, int]]:
    """Packets per (source port, destination port), all UDP on loopback."""
    return Counter((int(s), int(d)) for s, d in capture.fields("udp", "udp.srcport", "udp.dstport"))


def assert_anchored(
    traffic: Counter[tuple[int, int]],
    rtp_port: int,
    bridge_sends: bool,
    peer: BaresipPeer,
    sbc: Sbc,
) -> None:
    """The bridge's stream on ``rtp_port`` gets its RTP from rtpengine's ports (and sends its
    own there, when it sends); no packet passes between the bridge and baresip directly."""
    peer_ports = range(peer.rtp_low, peer.rtp_low + 10)
    received = sum(n for (s, d), n in traffic.items() if d == rtp_port and s in sbc.media.ports)
    sent = sum(n for (s, d), n in traffic.items() if s == rtp_port and d in sbc.media.ports)
    assert received > 40 and (sent > 40 or not bridge_sends), (rtp_port, traffic)
    direct = [
        (s, d)
        for s, d in traffic
        if {s, d} & {rtp_port, rtp_port + 1} and (s in peer_ports or d in peer_ports)
    ]
    assert not direct, (direct, traffic)


def test_normal_offer_is_anchored_in_rtpengine(
    sbc: Sbc,
    baresip: Callable[..., BaresipPeer],
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
    tmp_path: Path,
) -> None:
    """The bridge offers audio in its INVITE: rtpengine_offer there, rtpengine_answer in the
    200 OK, rtpengine_delete on baresip's BYE. The answer the bridge got names rtpengine's port,
    the offer baresip got too, and the tone crossed rtpengine into the recording."""
    peer = baresip(None, 8)
    bridge_ports = free_udp_window(4)
    spec = through_sbc(
        call_spec(peer.uri, rtmp_server, "sbc-audio", hasAudio=True), sbc, bridge_ports
    )
    with LoopbackCapture(tmp_path / "sbc.pcap", "udp") as capture:
        process = bridge(spec)
        assert process.wait(30) == 0, process.stderr_text[-3000:]
        assert peer.wait(10) == 0, peer.text()[-3000:]
    assert process.final["reason"] == "RemoteHangup", process.final

    (sent,) = sip_bodies(capture, f'sip.Method == "INVITE" && udp.dstport == {sbc.proxy.port}')
    (offer,) = sip_bodies(capture, f'sip.Method == "INVITE" && udp.dstport == {peer.port}')
    (answer,) = sip_bodies(capture, f"sip.Status-Code == 200 && udp.srcport == {sbc.proxy.port}")
    assert media_ports(sent)["audio"] == bridge_ports, sent  # the bridge's own, then rtpengine's
    assert media_ports(offer)["audio"] in sbc.media.ports, offer
    assert media_ports(answer)["audio"] in sbc.media.ports, answer
    log = sbc.proxy.text()
    assert all(f"SBC {step}" in log for step in ("offer in INVITE", "answer in 200", "delete")), log
    assert_anchored(flows(capture), bridge_ports, True, peer, sbc)

    (recording,) = rtmp_server.recordings_of("sbc-audio")
    tone = measure_recording(recording)
    assert abs(tone.frequency_hz - 1000) < 10 and tone.tone_seconds > 5, tone


def video_call_through_sbc(
    sbc: Sbc,
    peer: BaresipPeer,
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
    stream: str,
    tmp_path: Path,
) -> tuple[dict[str, Any], LoopbackCapture, int]:
    """A passthrough call to ``peer`` through the SBC, every UDP packet captured, that ended
    with baresip's BYE and received the picture: (the final status, the capture, the bridge's
    first RTP port: audio there, video two above)."""
    bridge_ports = free_udp_window(4)
    spec = through_sbc(
        call_spec(peer.uri, rtmp_server, stream, video={"mode": "passthrough"}), sbc, bridge_ports
    )
    with LoopbackCapture(tmp_path / "sbc.pcap", "udp") as capture:
        process = bridge(spec)
        assert process.wait(40) == 0, process.stderr_text[-3000:]
        assert peer.wait(10) == 0, peer.text()[-3000:]
    final = process.final
    assert final["reason"] == "RemoteHangup", final
    video = final["video"]
    assert video["state"] == "RECEIVING" and video["frames"] > 40, video
    return final, capture, bridge_ports


def test_delayed_offer_is_anchored_in_rtpengine(
    sbc: Sbc,
    baresip: Callable[..., BaresipPeer],
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
    pcap_dir: Path,
    tmp_path: Path,
) -> None:
    """Video passthrough: the bridge's INVITE has no SDP; baresip offers audio and H.264 in its
    200 OK, which rtpengine_offer rewrites; the bridge answers in its ACK, which
    rtpengine_answer rewrites. Both m-lines the bridge saw name rtpengine's ports, baresip's
    ACK too, audio and video reach the bridge from rtpengine alone, and the recording has the
    picture and the tone."""
    peer = baresip(camera_file(pcap_dir, 30), 10)
    _, capture, bridge_ports = video_call_through_sbc(
        sbc, peer, rtmp_server, bridge, "sbc-video", tmp_path
    )

    (invite,) = capture.udp_payloads(f'sip.Method == "INVITE" && udp.dstport == {sbc.proxy.port}')
    assert invite[-4:] == b"\r\n\r\n", invite  # the delayed offer: no body
    (offer,) = sip_bodies(capture, f"sip.Status-Code == 200 && udp.srcport == {sbc.proxy.port}")
    (sent,) = sip_bodies(capture, f'sip.Method == "ACK" && udp.dstport == {sbc.proxy.port}')
    (answer,) = sip_bodies(capture, f'sip.Method == "ACK" && udp.dstport == {peer.port}')
    assert media_ports(sent) == {"audio": bridge_ports, "video": bridge_ports + 2}, sent
    for sdp in (offer, answer):  # rtpengine's, in the offer the bridge got and the answer sent on
        ports = media_ports(sdp)
        assert set(ports) == {"audio", "video"}, sdp
        assert all(port in sbc.media.ports for port in ports.values()), sdp
    log = sbc.proxy.text()
    steps = ("delayed offer", "offer in 200", "answer in ACK", "delete")
    assert all(f"SBC {step}" in log for step in steps), log
    traffic = flows(capture)
    assert_anchored(traffic, bridge_ports, False, peer, sbc)
    assert_anchored(traffic, bridge_ports + 2, False, peer, sbc)  # the video pair

    # The stream is reopened once the video track arrives; the call is in the largest recording
    # (a reopening's last file can be an empty stub when the call ends at that moment).
    recording = max(rtmp_server.recordings_of("sbc-video"), key=lambda path: path.stat().st_size)
    assert sorted(s["codec_name"] for s in ffprobe(recording)["streams"]) == ["aac", "h264"]
    picture = assert_picture_and_tone(recording)
    assert (picture.width, picture.height) == (WIDTH, HEIGHT), picture


def test_srtp_audio_through_rtpengine(
    sbc: Sbc,
    baresip: Callable[..., BaresipPeer],
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
    tmp_path: Path,
) -> None:
    """baresip requiring SRTP (``srtp-mand``) behind the SBC, the bridge's ``require`` offer:
    both SDPs the bridge sent and got are RTP/SAVP with keys, the SRTP crosses rtpengine alone,
    the suite is in the status and the decrypted tone in the recording."""
    peer = baresip(None, 8, mediaenc="srtp-mand")
    bridge_ports = free_udp_window(4)
    spec = through_sbc(
        call_spec(peer.uri, rtmp_server, "sbc-srtp", hasAudio=True), sbc, bridge_ports
    )
    spec["connection"]["mediaEncryption"] = "require"
    with LoopbackCapture(tmp_path / "sbc.pcap", "udp") as capture:
        process = bridge(spec)
        assert process.wait(30) == 0, process.stderr_text[-3000:]
        assert peer.wait(10) == 0, peer.text()[-3000:]
    final = process.final
    assert final["reason"] == "RemoteHangup", final
    assert final["call"]["srtpSuite"] == "AES_CM_128_HMAC_SHA1_80", final["call"]

    (sent,) = sip_bodies(capture, f'sip.Method == "INVITE" && udp.dstport == {sbc.proxy.port}')
    (answer,) = sip_bodies(capture, f"sip.Status-Code == 200 && udp.srcport == {sbc.proxy.port}")
    for sdp in (sent, answer):
        assert re.search(r"^m=audio \d+ RTP/SAVP ", sdp, re.MULTILINE), sdp
    assert len(re.findall(r"^a=crypto:", answer, re.MULTILINE)) == 1, answer
    assert_anchored(flows(capture), bridge_ports, True, peer, sbc)

    (recording,) = rtmp_server.recordings_of("sbc-srtp")
    tone = measure_recording(recording)
    assert abs(tone.frequency_hz - 1000) < 10 and tone.tone_seconds > 5, tone


def test_srtp_video_through_rtpengine(
    sbc: Sbc,
    baresip: Callable[..., BaresipPeer],
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
    pcap_dir: Path,
    tmp_path: Path,
) -> None:
    """baresip requiring SRTP (``srtp-mand``) offers RTP/SAVP audio and H.264 in its 200 OK to
    the bridge's delayed offer; rtpengine re-offers them with many more crypto lines and a DTLS
    fingerprint. The bridge answers both m-lines with one key each in its ACK; the picture and
    the tone are decoded from the recording, and both legs carry SRTP only."""
    peer = baresip(camera_file(pcap_dir, 30), 10, mediaenc="srtp-mand")
    final, capture, bridge_ports = video_call_through_sbc(
        sbc, peer, rtmp_server, bridge, "sbc-srtp-video", tmp_path
    )
    assert final["call"]["srtpSuite"] == "AES_CM_128_HMAC_SHA1_80", final["call"]
    video = final["video"]
    assert video["srtpSuite"] == "AES_CM_128_HMAC_SHA1_80", video

    (own,) = sip_bodies(capture, f"sip.Status-Code == 200 && udp.srcport == {peer.port}")
    (offer,) = sip_bodies(capture, f"sip.Status-Code == 200 && udp.srcport == {sbc.proxy.port}")
    (sent,) = sip_bodies(capture, f'sip.Method == "ACK" && udp.dstport == {sbc.proxy.port}')
    assert len(offer) > 1024 and "a=fingerprint:" in offer, offer  # beyond pjsua2's print
    for sdp in (offer, sent):
        sections = media_sections(sdp)[1]
        assert [lines[0].split()[2] for lines in sections] == ["RTP/SAVP"] * 2, sdp
    for lines in media_sections(sent)[1]:  # one key each, of a suite among rtpengine's 12
        assert sum(line.startswith("a=crypto:") for line in lines) == 1, sent
    traffic = flows(capture)
    assert_anchored(traffic, bridge_ports, False, peer, sbc)
    assert_anchored(traffic, bridge_ports + 2, False, peer, sbc)
    # SRTP on both legs: the bridge's (from rtpengine) and baresip's (to rtpengine).
    peer_ports = media_ports(own)
    assert_no_clear_pcmu(capture.udp_payloads(f"udp.port == {bridge_ports}"))
    assert_no_clear_pcmu(capture.udp_payloads(f"udp.port == {peer_ports['audio']}"))
    assert_no_clear_h264(capture.udp_payloads(f"udp.dstport == {bridge_ports + 2}"))
    assert_no_clear_h264(capture.udp_payloads(f"udp.srcport == {peer_ports['video']}"))

    recording = max(
        rtmp_server.recordings_of("sbc-srtp-video"), key=lambda path: path.stat().st_size
    )
    picture = assert_picture_and_tone(recording)
    assert (picture.width, picture.height) == (WIDTH, HEIGHT), picture
