"""Video passthrough against real peers: SIPp answers the bridge's delayed offer with audio and
H.264 video, nginx-rtmp records the stream, and the recording is decoded (PyAV, ffprobe) to
check the picture, the tone and how well they line up."""

from __future__ import annotations

import itertools
import re
import socket
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import pytest

from siprtmp_bridge.demo.ports import free_port
from siprtmp_bridge.video.session import VIDEO_MISSING_SECONDS
from siprtmp_bridge.video.slate import HEIGHT as SLATE_HEIGHT
from siprtmp_bridge.video.slate import WIDTH as SLATE_WIDTH
from siprtmp_contract.profiles import PROFILES
from tests.conftest import call_spec
from tests.support.baresip import BaresipPeer, camera_file
from tests.support.bridge_process import BridgeProcess
from tests.support.capture import LoopbackCapture
from tests.support.cdn_rules import cdn_problems
from tests.support.http import http_get as get
from tests.support.nginx_rtmp import NginxRtmp
from tests.support.ports import free_udp_window
from tests.support.recording import ffprobe
from tests.support.sipp import SippPeer
from tests.support.video_offer import (
    OFFERS,
    OfferedFormat,
    OfferMaker,
    VideoOffer,
    assert_answer_agrees,
    one_h264,
    several_h264,
    video_mline,
)
from tests.support.video_pcap import (
    HEIGHT,
    WIDTH,
    H264Rtp,
    continued,
    encode_h264_rtp,
    nal_unit_types,
    with_payload_type,
    write_call_pcap,
)
from tests.support.video_recording import (
    assert_picture_and_tone,
    av_offset_seconds,
    frame_sources,
    measure_video,
    runs,
    tone_in,
)

CALL_SECONDS = 6.0


@pytest.fixture(scope="session")
def h264_rtp(pcap_dir: Path) -> Callable[[int], H264Rtp]:
    made: dict[int, H264Rtp] = {}

    def make(mode: int) -> H264Rtp:
        if mode not in made:
            made[mode] = encode_h264_rtp(pcap_dir, CALL_SECONDS, packetization_mode=mode)
        return made[mode]

    return make


@pytest.fixture(scope="session")
def call_pcap(pcap_dir: Path, h264_rtp: Callable[[int], H264Rtp]) -> Callable[[int, int], Path]:
    """The call's tone and H.264 in packetization ``mode``, sent as payload type ``pt``."""

    def make(mode: int, pt: int) -> Path:
        path = pcap_dir / f"call-tone-h264-mode{mode}-pt{pt}.pcap"
        if path.exists():
            return path
        return write_call_pcap(path, with_payload_type(h264_rtp(mode), pt), CALL_SECONDS)

    return make


@pytest.fixture(params=list(OFFERS))
def offer(request: pytest.FixtureRequest) -> OfferMaker:
    """Each H.264 scenario runs with H.264 offered alone and among several formats."""
    maker: OfferMaker = OFFERS[request.param]
    return maker


def answered_pcap(path: Path, offer: VideoOffer, rtp: H264Rtp, **options: Any) -> Path:
    """``write_call_pcap`` with the video under the payload type the bridge must answer."""
    return write_call_pcap(
        path.with_name(f"{path.stem}-pt{offer.answered}.pcap"),
        with_payload_type(rtp, offer.answered),
        CALL_SECONDS,
        **options,
    )


def video_far_end(
    sipp: Callable[..., SippPeer],
    pcap: Path,
    mline: str,
    video_codec: str = "H264/90000",
    call_ms: int = int(CALL_SECONDS * 1000 + 500),
) -> SippPeer:
    """SIPp answering the bridge's delayed offer with audio and ``mline``, playing ``pcap``
    (audio and video in one: SIPp 3.6 cancels a first playback when a second starts); ``-aa``
    answers the bridge's picture_fast_update INFO."""
    return sipp(
        "uas_video_offer.xml",
        pcap=pcap,
        video_codec=video_codec,
        video_mline=mline,
        call_ms=call_ms,
        extra_args=("-aa",),
    )


def audio_only_far_end(sipp: Callable[..., SippPeer], tone_pcap: Callable[..., Path]) -> SippPeer:
    """SIPp answering the delayed offer with audio only (3 s of tone), no video m-line."""
    return video_far_end(sipp, tone_pcap("PCMU", 3.0), "a=ptime:20", "none", 3500)


def assert_acked(peer: SippPeer, offered: VideoOffer) -> None:
    """The ACK SIPp received answered the offered format it sends, alike in every line (SIPp
    streams whatever its pcap holds: a renumbered answer shows only here)."""
    (ack,) = [ack for ack in received(peer.messages(), "ACK") if "m=video" in ack]
    assert_answer_agrees(ack, offered.answered, 1)


def finished_call(process: BridgeProcess, peer: SippPeer, timeout: float = 40) -> dict[str, Any]:
    """Both ends done cleanly: the bridge's final status."""
    assert process.wait(timeout) == 0, process.stderr_text[-3000:]
    assert peer.wait(10) == 0, peer.messages()[-3000:]
    return process.final


def video_spec(peer: SippPeer, server: NginxRtmp, stream: str, **video: Any) -> dict[str, Any]:
    """Loopback only; a window of two RTP pairs, so the video pair is the audio's + 2."""
    low = free_udp_window(4)
    spec = call_spec(peer.uri, server, stream, video={"mode": "passthrough", **video})
    spec["nat"] = {"bindAddress": "127.0.0.1", "rtpPortMin": low, "rtpPortMax": low + 3}
    return spec


@pytest.mark.parametrize("mode", [1, 0], ids=["packetization-mode-1", "packetization-mode-0"])
def test_far_end_h264_is_published_with_the_tone(
    mode: int,
    offer: OfferMaker,
    sipp: Callable[..., SippPeer],
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
    h264_rtp: Callable[[int], H264Rtp],
    call_pcap: Callable[[int, int], Path],
    tmp_path: Path,
) -> None:
    # Mode 0's far end offers sendrecv video, mode 1's sendonly: with the seed's hasVideo
    # (below) the bridge answers sendrecv only where the offer allows it (RFC 3264).
    direction = "sendrecv" if mode == 0 else "sendonly"
    offered = offer(h264_rtp(mode).fmtp, mode)
    pcap = call_pcap(mode, offered.answered)
    peer = video_far_end(sipp, pcap, offered.mline(direction))
    stream = f"video-mode{mode}"
    spec = video_spec(peer, rtmp_server, stream)
    spec["hasVideo"] = mode == 0  # the seed's field: the direction the bridge answers with
    with LoopbackCapture(tmp_path / "sip.pcap", f"udp port {peer.port}") as capture:
        process = bridge(spec)
        final = finished_call(process, peer)
    assert final["reason"] == "RemoteHangup"
    video = final["video"]
    assert video["state"] == "RECEIVING", video
    assert video["codec"] == "H264/90000"
    assert video["negotiation"] == "delayed offer"
    assert video["packetizationMode"] == mode
    assert video["resolution"] == f"{WIDTH}x{HEIGHT}"
    assert video["frameRate"] == pytest.approx(25, abs=1)
    assert video["keyframeIntervalSeconds"] == pytest.approx(1.0, abs=0.05)
    assert video["bytesReceived"] > 5_000
    # The INVITE went out without SDP; the ACK on the wire carried the bridge's live video
    # answer: the offered format the far end sends, under its own number, described alike in
    # every line, and the one FFmpeg was told (the status reports the receiver's).
    assert video["payloadType"] == offered.answered, video
    (ack,) = capture.udp_payloads('sip.Method == "ACK"')
    ack_text = ack.decode()
    assert_answer_agrees(ack_text, offered.answered, mode)
    answered_video = ack_text.split("m=video ", 1)[1]
    assert "profile-level-id=42C00D" in answered_video, ack_text
    assert ("a=sendrecv" if mode == 0 else "a=recvonly") in answered_video, answered_video

    recording = rtmp_server.recordings_of(stream)[-1]
    probe = ffprobe(recording)
    codecs = sorted(s["codec_name"] for s in probe["streams"])
    assert codecs == ["aac", "h264"], probe
    (h264,) = [s for s in probe["streams"] if s["codec_name"] == "h264"]
    assert (h264["width"], h264["height"]) == (WIDTH, HEIGHT)

    picture = measure_video(recording)
    assert picture.width == WIDTH and picture.height == HEIGHT
    assert picture.left_is_red and picture.right_is_blue, picture
    assert picture.seconds >= CALL_SECONDS - 1.5, picture
    # Video starts with the call: the first keyframe is at most a second after the answer.
    assert picture.first_frame_seconds - tone_in(recording).start_seconds < 1.2

    tone = tone_in(recording)
    assert abs(tone.frequency_hz - 1000) < 10, tone
    offset = av_offset_seconds(recording)
    assert abs(offset) <= 0.06, f"A/V offset {offset * 1000:.0f} ms"
    assert video["avSync"] == "arrival"  # this far end sends no sender reports


def test_video_sent_by_anyone_but_the_far_end_is_dropped(
    sipp: Callable[..., SippPeer],
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
    h264_rtp: Callable[[int], H264Rtp],
    call_pcap: Callable[[int, int], Path],
) -> None:
    """A third party reaching the bridge's video port (another address: 127.0.0.2) sends the
    answered format under an SSRC of its own for the whole call: none of it is published."""
    offered = one_h264(h264_rtp(1).fmtp, 1)
    peer = video_far_end(sipp, call_pcap(1, offered.answered), offered.mline("sendonly"))
    spec = video_spec(peer, rtmp_server, "foreign")
    video_port = spec["nat"]["rtpPortMin"] + 2  # the window's second pair (video_spec)
    foreign = [
        packet[:1] + bytes([packet[1] & 0x80 | offered.answered]) + packet[2:8]
        + struct.pack("!I", 0x0BADF00D) + packet[12:]
        for packet in h264_rtp(1).packets
    ]  # fmt: skip
    process = bridge(spec)
    process.wait_for(lambda line: (line.get("video") or {}).get("state") == "RECEIVING", 15)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger:
        stranger.bind(("127.0.0.2", 0))
        for packet in foreign:  # the whole 6 s picture, in about a second
            stranger.sendto(packet, ("127.0.0.1", video_port))
            time.sleep(0.005)
    video = finished_call(process, peer)["video"]
    assert video["state"] == "RECEIVING", video
    assert video["foreignPackets"] >= len(foreign), video
    recording = rtmp_server.recordings_of("foreign")[-1]
    picture = measure_video(recording)
    assert picture.left_is_red and picture.right_is_blue, picture
    offset = av_offset_seconds(recording)
    assert abs(offset) <= 0.06, f"A/V offset {offset * 1000:.0f} ms"


def test_sender_reports_put_late_sent_video_back_beside_its_audio(
    offer: OfferMaker,
    sipp: Callable[..., SippPeer],
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
    h264_rtp: Callable[[int], H264Rtp],
    pcap_dir: Path,
) -> None:
    """A phone that sends each frame 250 ms after capturing it (encoding takes time), and says
    when it captured them in RTCP sender reports: placed by arrival the picture would be 250 ms
    behind the tone; placed by the reports it is in step."""
    rtp = h264_rtp(1)
    offered = offer(rtp.fmtp)
    pcap = answered_pcap(
        pcap_dir / "call-tone-h264-late-video-sr.pcap",
        offered,
        rtp,
        video_send_delay=0.25,
        sender_reports=True,
    )
    peer = video_far_end(sipp, pcap, offered.mline())
    process = bridge(video_spec(peer, rtmp_server, "late-video-sr"))

    video = finished_call(process, peer)["video"]
    assert_acked(peer, offered)
    assert video["state"] == "RECEIVING", video
    recording = rtmp_server.recordings_of("late-video-sr")[-1]
    assert measure_video(recording).left_is_red
    offset = av_offset_seconds(recording)
    assert abs(offset) <= 0.06, f"A/V offset {offset * 1000:.0f} ms"
    assert video["avSync"] == "sender reports", video


def test_parameter_sets_from_the_offer_alone_are_enough(
    offer: OfferMaker,
    sipp: Callable[..., SippPeer],
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
    pcap_dir: Path,
) -> None:
    """A far end that sends SPS/PPS only in its offer's sprop-parameter-sets, never in-band:
    the stream's sequence header has to come from the SDP."""
    rtp = encode_h264_rtp(pcap_dir, CALL_SECONDS, in_band_parameter_sets=False)
    assert rtp.sprop is not None and rtp.sprop.count(",") == 1, rtp.fmtp
    assert nal_unit_types(rtp.packets).isdisjoint({7, 8})  # no SPS (7) or PPS (8) in-band
    assert 5 in nal_unit_types(rtp.packets)  # IDR pictures, though
    offered = offer(rtp.fmtp)
    pcap = answered_pcap(pcap_dir / "call-tone-h264-sprop-only.pcap", offered, rtp)
    # Its fmtp carries FFmpeg's sprop-parameter-sets.
    peer = video_far_end(sipp, pcap, offered.mline())
    process = bridge(video_spec(peer, rtmp_server, "sprop-only"))

    video = finished_call(process, peer)["video"]
    assert video["state"] == "RECEIVING", video
    assert video["resolution"] == f"{WIDTH}x{HEIGHT}", video
    assert_acked(peer, offered)

    recording = rtmp_server.recordings_of("sprop-only")[-1]
    probe = ffprobe(recording)
    assert sorted(s["codec_name"] for s in probe["streams"]) == ["aac", "h264"], probe
    (h264,) = [s for s in probe["streams"] if s["codec_name"] == "h264"]
    assert (h264["width"], h264["height"]) == (WIDTH, HEIGHT)
    picture = measure_video(recording)
    assert picture.width == WIDTH and picture.height == HEIGHT
    assert picture.left_is_red and picture.right_is_blue, picture
    assert picture.seconds >= CALL_SECONDS - 1.5, picture


def received(messages: str, method: str) -> list[str]:
    """The requests of ``method`` SIPp received (its -trace_msg log), headers and body."""
    return [
        block
        for block in messages.split("\n-----")
        if "message received" in block and f"\n{method} sip:" in block
    ]


def invites(messages: str) -> list[str]:
    return received(messages, "INVITE")


def test_a_session_refresh_keeps_the_video_answered_and_flowing(
    offer: OfferMaker,
    sipp: Callable[..., SippPeer],
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
    h264_rtp: Callable[[int], H264Rtp],
    call_pcap: Callable[[int, int], Path],
) -> None:
    """Halfway through, the far end refreshes the session (RFC 4028) with a re-INVITE offering
    the same audio and video. pjsua answers video with a disabled slot again: unless the bridge
    rewrites that answer too, the far end stops its video. The answer must keep the same live
    video port, and the stream's video must run on without a gap."""
    offered = offer(h264_rtp(1).fmtp)
    peer = sipp(
        "uas_video_refresh.xml",
        pcap=call_pcap(1, offered.answered),
        video_codec="H264/90000",
        video_mline=offered.mline(),
        refresh_at_ms=3000,
        rest_ms=int(CALL_SECONDS * 1000) - 2500,
        extra_args=("-aa",),
    )
    process = bridge(video_spec(peer, rtmp_server, "video-refresh"))

    video = finished_call(process, peer)["video"]
    assert video["state"] == "RECEIVING", video
    messages = peer.messages()
    (ack,) = received(messages, "ACK")  # the first answer; SIPp acknowledges the second
    first_port = ack.split("m=video ", 1)[1].split()[0]
    (refresh_answer,) = [
        block
        for block in messages.split("\n-----")
        if "message received" in block and "SIP/2.0 200" in block and "CSeq: 2 INVITE" in block
    ]
    assert first_port != "0"
    assert f"m=video {first_port} " in refresh_answer, refresh_answer
    for answer in (ack, refresh_answer):
        assert_answer_agrees(answer, offered.answered, 1)
    assert "a=inactive" not in refresh_answer.split("m=video", 1)[1]
    recording = rtmp_server.recordings_of("video-refresh")[-1]
    picture = measure_video(recording)
    assert picture.left_is_red and picture.seconds >= CALL_SECONDS - 1.5, picture
    frame_times = [time for time, _ in frame_sources(recording, SLATE_WIDTH)]
    # No gap around the refresh (3 s in), up to the end of what the far end sent.
    sent = [time for time in frame_times if time < CALL_SECONDS - 0.5]
    gaps = [(a, round(b - a, 3)) for a, b in itertools.pairwise(sent) if b - a > 0.1]
    assert not gaps and sent[-1] - sent[0] > CALL_SECONDS - 2, (gaps, sent[0], sent[-1])


def test_far_end_without_video_gives_an_audio_only_stream(
    sipp: Callable[..., SippPeer],
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
    tone_pcap: Callable[[str, float], Path],
) -> None:
    peer = audio_only_far_end(sipp, tone_pcap)
    process = bridge(video_spec(peer, rtmp_server, "no-video"))

    video = finished_call(process, peer, timeout=30)["video"]
    assert video["state"] == "ABSENT"
    assert "offered no video" in video["reason"]
    assert video["frames"] == 0
    # The INVITE still went out without SDP (a delayed offer).
    (invite,) = invites(peer.messages())
    assert "m=audio" not in invite

    (recording,) = rtmp_server.recordings_of("no-video")  # never re-published for video
    assert [s["codec_name"] for s in ffprobe(recording)["streams"]] == ["aac"]
    tone = tone_in(recording)
    assert abs(tone.frequency_hz - 1000) < 10, tone
    assert tone.audible_seconds > 2.5


@pytest.mark.parametrize(
    ("sent", "says"),
    [
        ("nothing", "no video RTP has arrived"),
        ("another-payload-type", "video RTP arrives, but no frame was taken from it"),
    ],
)
def test_negotiated_video_that_never_comes_is_reported_missing(
    sent: str,
    says: str,
    sipp: Callable[..., SippPeer],
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
    h264_rtp: Callable[[int], H264Rtp],
    tone_pcap: Callable[[str, float], Path],
    pcap_dir: Path,
) -> None:
    """The far end offers H.264 and sends none (its camera is off), or sends it under a payload
    type it did not offer (as if the answer had been misread): after VIDEO_MISSING_SECONDS the
    status and metrics say so, keyframe requests go on, and the audio is published as ever."""
    seconds = VIDEO_MISSING_SECONDS + 4
    rtp = h264_rtp(1)
    offered = several_h264(rtp.fmtp)
    if sent == "nothing":
        pcap = tone_pcap("PCMU", seconds)
    else:
        stray = with_payload_type(rtp, 122)  # offered nowhere
        pcap = write_call_pcap(pcap_dir / "call-tone-h264-pt122.pcap", stray, CALL_SECONDS)
    peer = video_far_end(sipp, pcap, offered.mline(), call_ms=int(seconds * 1000))
    status_port = free_port()
    started = time.monotonic()
    process = bridge(video_spec(peer, rtmp_server, f"missing-{sent}"), status_port=status_port)
    line = process.wait_for(lambda line: line.get("video", {}).get("state") == "MISSING", 20)
    assert time.monotonic() - started >= VIDEO_MISSING_SECONDS
    code, metrics = get(f"http://127.0.0.1:{status_port}/metrics")
    final = finished_call(process, peer)

    assert code == 200
    assert "siprtmp_video_missing_total 1.0" in metrics, metrics
    assert 'siprtmp_video_state{state="MISSING"} 1.0' in metrics
    video = final["video"]
    assert (video["state"], video["frames"], video["missingCount"]) == ("MISSING", 0, 1), video
    assert says in video["reason"] and f"{VIDEO_MISSING_SECONDS:g} s" in video["reason"], video
    # Requests went on after the status said MISSING (once a second while none comes).
    assert video["keyframeRequests"] > line["video"]["keyframeRequests"] >= 4, (line, video)
    (recording,) = rtmp_server.recordings_of(f"missing-{sent}")
    assert [s["codec_name"] for s in ffprobe(recording)["streams"]] == ["aac"]
    assert abs(tone_in(recording).frequency_hz - 1000) < 10


def test_video_codec_other_than_h264_is_refused_with_a_clear_status(
    sipp: Callable[..., SippPeer],
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
    tone_pcap: Callable[[str, float], Path],
    h264_rtp: Callable[[int], H264Rtp],
) -> None:
    peer = video_far_end(
        sipp,
        tone_pcap("PCMU", 3.0),
        video_mline((OfferedFormat(96, "VP8/90000", "max-fr=30"),)),
        video_codec="VP8/90000",
        call_ms=3500,
    )
    process = bridge(video_spec(peer, rtmp_server, "vp8"))

    final = finished_call(process, peer, timeout=30)
    assert final["reason"] == "RemoteHangup"
    video = final["video"]
    assert video["state"] == "REFUSED"
    assert "VP8/90000" in video["reason"] and "only H.264" in video["reason"]
    # pjsua's disabled slot went out unchanged: the far end knows video was declined.
    assert "m=video 0 " in peer.messages()
    (recording,) = rtmp_server.recordings_of("vp8")
    assert [s["codec_name"] for s in ffprobe(recording)["streams"]] == ["aac"]
    assert abs(tone_in(recording).frequency_hz - 1000) < 10


def test_far_end_refusing_the_delayed_offer_gets_audio_first_then_video_by_reinvite(
    offer: OfferMaker,
    sipp: Callable[..., SippPeer],
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
    h264_rtp: Callable[[int], H264Rtp],
    call_pcap: Callable[[int, int], Path],
) -> None:
    offered = offer(h264_rtp(1).fmtp)
    peer = sipp(
        "uas_video_refuses_delayed_offer.xml",
        calls=2,  # SIPp sees the refused INVITE and the second one as two calls
        pcap=call_pcap(1, offered.answered),
        video_mline=offered.mline(),
        call_ms=int(CALL_SECONDS * 1000 + 500),
        extra_args=("-aa",),
    )
    # Three RTP pairs: the second call's audio may take the second pair.
    low = free_udp_window(6)
    spec = video_spec(peer, rtmp_server, "fallback")
    spec["nat"] = {"bindAddress": "127.0.0.1", "rtpPortMin": low, "rtpPortMax": low + 5}
    process = bridge(spec)

    final = finished_call(process, peer)
    assert "delayed offer refused (488" in process.stderr_text
    assert final["reason"] == "RemoteHangup"
    video = final["video"]
    assert video["state"] == "RECEIVING", video
    assert video["reason"] is None
    assert "refused an INVITE without SDP: 488" in video["negotiation"]
    assert video["resolution"] == f"{WIDTH}x{HEIGHT}"
    sent = invites(peer.messages())
    assert len(sent) == 3  # delayed offer (refused), audio offer, re-INVITE without SDP
    assert "m=audio" not in sent[0] and "m=audio" in sent[1] and "m=audio" not in sent[2]
    assert_acked(peer, offered)

    recording = rtmp_server.recordings_of("fallback")[-1]
    assert sorted(s["codec_name"] for s in ffprobe(recording)["streams"]) == ["aac", "h264"]
    picture = measure_video(recording)
    assert picture.left_is_red and picture.right_is_blue, picture
    assert abs(tone_in(recording).frequency_hz - 1000) < 10


def test_keyframes_are_requested_at_the_start_and_after_loss(
    offer: OfferMaker,
    sipp: Callable[..., SippPeer],
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
    h264_rtp: Callable[[int], H264Rtp],
    pcap_dir: Path,
    tmp_path: Path,
) -> None:
    # Frames 60-63 (2.4-2.56 s, between the keyframes at 2 s and 3 s) never arrive.
    offered = offer(h264_rtp(1).fmtp)
    pcap = answered_pcap(
        pcap_dir / "call-h264-lossy.pcap",
        offered,
        h264_rtp(1),
        drop_frames=frozenset(range(60, 64)),
    )
    peer = video_far_end(sipp, pcap, offered.mline())
    rtcp_port = peer.media_port + 3  # the far end's video RTCP: its video port + 1
    status_port = free_port()
    with LoopbackCapture(tmp_path / "rtcp.pcap", f"udp dst port {rtcp_port}") as capture:
        process = bridge(video_spec(peer, rtmp_server, "lossy"), status_port=status_port)
        process.wait_for(lambda line: line.get("video", {}).get("state") == "RECEIVING", 15)
        time.sleep(1.0)
        code, metrics = get(f"http://127.0.0.1:{status_port}/metrics")
        assert process.wait(40) == 0, process.stderr_text[-3000:]
    assert peer.wait(10) == 0
    assert_acked(peer, offered)

    assert code == 200
    assert "siprtmp_video_width_pixels 320.0" in metrics
    assert 'siprtmp_video_state{state="RECEIVING"} 1.0' in metrics
    frames = [line for line in metrics.splitlines() if line.startswith("siprtmp_video_frames")]
    assert frames and float(frames[0].split()[-1]) > 10, frames

    video = process.final["video"]
    assert video["keyframeRequests"] == 2, video  # one at the start, one after the loss
    # On the wire: RTCP PLI (fmt 1) and FIR (fmt 4), each time after an empty RR.
    feedback = capture.fields(
        "rtcp.pt == 206", "rtcp.psfb.fmt", decode_as=f"udp.port=={rtcp_port},rtcp"
    )
    formats = [value for row in feedback for value in row[0].split(",")]
    assert formats.count("1") == 2 and formats.count("4") == 2, feedback
    # Both name the SSRC of SIPp's video RTP (its offer has no a=ssrc): PLI in the media
    # source field, FIR in its FCI (where the media source field is zero).
    far_end_ssrc = struct.unpack("!I", h264_rtp(1).packets[0][8:12])[0]
    targets = capture.fields(
        "rtcp.pt == 206",
        "rtcp.mediassrc",
        "rtcp.psfb.fir.fci.ssrc",
        decode_as=f"udp.port=={rtcp_port},rtcp",
    )
    media = [int(v, 0) for row in targets for v in row[0].split(",") if int(v, 0)]
    fci = [int(v, 0) for row in targets for v in row[1].split(",") if v]
    assert media == [far_end_ssrc] * 2 and fci == [far_end_ssrc] * 2, (far_end_ssrc, targets)
    # And in SIP: INFO picture_fast_update (RFC 5168), answered 200 by SIPp (-aa).
    assert peer.messages().count("<picture_fast_update/>") == 2
    # The stream decodes across the loss: the picture is intact after the next keyframe.
    picture = measure_video(rtmp_server.recordings_of("lossy")[-1])
    assert picture.left_is_red and picture.right_is_blue


def test_keyframes_further_apart_than_the_limit_are_asked_for_and_a_far_end_ignoring_is_reported(
    sipp: Callable[..., SippPeer],
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
    pcap_dir: Path,
    tmp_path: Path,
) -> None:
    """SIPp sends a keyframe every 6 s whatever it is asked (a pcap does not listen): the
    bridge asks 1 s before its 4 s run out, and again each second, and says the far end
    ignores it, in the status and in the metrics."""
    rtp = encode_h264_rtp(pcap_dir, 13.0, keyframe_seconds=6)
    offered = one_h264(rtp.fmtp)
    pcap = write_call_pcap(
        pcap_dir / "call-h264-gop6.pcap", with_payload_type(rtp, offered.answered), 13.0
    )
    peer = video_far_end(sipp, pcap, offered.mline(), call_ms=13500)
    rtcp_port = peer.media_port + 3
    status_port = free_port()
    with LoopbackCapture(tmp_path / "rtcp.pcap", f"udp dst port {rtcp_port}") as capture:
        process = bridge(video_spec(peer, rtmp_server, "gop6"), status_port=status_port)
        process.wait_for(lambda line: line.get("video", {}).get("keyframeRequestsIgnored"), 25)
        code, metrics = get(f"http://127.0.0.1:{status_port}/metrics")
        video = finished_call(process, peer)["video"]
    assert code == 200 and "siprtmp_video_keyframe_requests_ignored_total 1.0" in metrics

    assert video["keyframeRequestsIgnored"] == 2, video  # the intervals from 0 s and from 6 s
    assert abs(video["keyframeIntervalMaxSeconds"] - 6.0) < 0.1, video
    # One at the start, then three in each interval (at 3, 4 and 5 s after its keyframe).
    assert 6 <= video["keyframeRequests"] <= 8, video
    feedback = capture.fields(
        "rtcp.pt == 206", "rtcp.psfb.fmt", decode_as=f"udp.port=={rtcp_port},rtcp"
    )
    plis = [value for row in feedback for value in row[0].split(",") if value == "1"]
    assert len(plis) == video["keyframeRequests"], feedback
    assert peer.messages().count("<picture_fast_update/>") == video["keyframeRequests"]
    recording = rtmp_server.recordings_of("gop6")[-1]
    assert cdn_problems(recording, PROFILES["youtube"]) == ["keyframes 6.00 s apart, more than 4 s"]


def test_slate_stands_in_for_a_far_end_without_video(
    sipp: Callable[..., SippPeer],
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
    tone_pcap: Callable[[str, float], Path],
) -> None:
    peer = audio_only_far_end(sipp, tone_pcap)
    process = bridge(video_spec(peer, rtmp_server, "slate", whenAbsent="slate"))

    video = finished_call(process, peer, timeout=30)["video"]
    assert (video["state"], video["source"]) == ("ABSENT", "slate")
    assert video["slateFrames"] > 25

    # One recording (the track exists from the first packet on), H.264 beside the AAC.
    (recording,) = rtmp_server.recordings_of("slate")
    probe = ffprobe(recording)
    (h264,) = [s for s in probe["streams"] if s["codec_name"] == "h264"]
    assert (h264["width"], h264["height"]) == (SLATE_WIDTH, SLATE_HEIGHT)
    assert sorted(s["codec_name"] for s in probe["streams"]) == ["aac", "h264"]
    sources = frame_sources(recording, SLATE_WIDTH)
    assert runs(sources) == [("slate", len(sources))]
    assert sources[-1][0] - sources[0][0] > 3.0  # the whole call, at the slate's 10 frames/s
    tone = tone_in(recording)
    assert abs(tone.frequency_hz - 1000) < 10 and tone.audible_seconds > 2.5


def test_slate_gives_way_to_the_far_ends_video_and_comes_back_when_it_stops(
    offer: OfferMaker,
    sipp: Callable[..., SippPeer],
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
    h264_rtp: Callable[[int], H264Rtp],
    pcap_dir: Path,
) -> None:
    # The far end's camera stops after 3 s (frames 75 on never arrive); its audio goes on.
    offered = offer(h264_rtp(1).fmtp)
    pcap = answered_pcap(
        pcap_dir / "call-h264-stops.pcap",
        offered,
        h264_rtp(1),
        drop_frames=frozenset(range(75, 200)),
    )
    peer = video_far_end(sipp, pcap, offered.mline())
    process = bridge(video_spec(peer, rtmp_server, "slate-live", whenAbsent="slate"))

    video = finished_call(process, peer)["video"]
    assert_acked(peer, offered)
    assert video["state"] == "RECEIVING" and video["source"] == "slate", video
    (recording,) = rtmp_server.recordings_of("slate-live")
    kinds = [kind for kind, _ in runs(frame_sources(recording, SLATE_WIDTH))]
    assert kinds == ["slate", "live", "slate"], runs(frame_sources(recording, SLATE_WIDTH))
    live = [t for t, kind in frame_sources(recording, SLATE_WIDTH) if kind == "live"]
    assert 2.5 < live[-1] - live[0] < 3.5  # all of the far end's 3 s of video


def test_a_resolution_change_mid_call_is_passed_on(
    offer: OfferMaker,
    sipp: Callable[..., SippPeer],
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
    h264_rtp: Callable[[int], H264Rtp],
    pcap_dir: Path,
) -> None:
    """The far end switches from 320x240 to 640x360 after 3 s: new SPS/PPS in-band only."""
    wide = encode_h264_rtp(pcap_dir, 3.0, picture="color=c=0x20C020:s=640x360:r=25")
    both = continued(encode_h264_rtp(pcap_dir, 3.0), wide)
    offered = offer(both.fmtp)
    pcap = answered_pcap(pcap_dir / "call-h264-resize.pcap", offered, both)
    peer = video_far_end(sipp, pcap, offered.mline(), call_ms=6500)
    # The call ends about 3.5 s after the second keyframe: at the default 4 s interval the
    # cadence request (due 3 s after a keyframe) would race the hang-up, so a longer one.
    spec = video_spec(peer, rtmp_server, "resize", maxKeyframeIntervalSeconds=10)
    process = bridge(spec)

    video = finished_call(process, peer)["video"]
    assert_acked(peer, offered)
    assert video["resolution"] == "640x360", video
    assert video["keyframeRequests"] == 1  # the switch is not a loss

    recording = rtmp_server.recordings_of("resize")[-1]
    sizes: list[tuple[tuple[int, int], tuple[int, ...]]] = []
    with av.open(str(recording)) as container:
        for frame in container.decode(container.streams.video[0]):
            image = frame.to_ndarray(format="rgb24")
            colour = tuple(int(c) for c in image[20:60, 20:60].reshape(-1, 3).mean(axis=0))
            size = (frame.width, frame.height)
            if not sizes or sizes[-1][0] != size:
                sizes.append((size, colour))
    assert [size for size, _ in sizes] == [(320, 240), (640, 360)], sizes
    assert sizes[0][1][0] > 180 and sizes[1][1][1] > 160, sizes  # red, then green


def test_baresip_sending_h264_from_a_file_is_published_with_its_audio(
    baresip: Callable[..., BaresipPeer],
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
    pcap_dir: Path,
    tmp_path: Path,
) -> None:
    """A real softphone: baresip offers H.264 as 96 (mode 0) and 97 (mode 1) and sends under
    whatever number the ACK's answer gives; the bridge must answer one of them consistently,
    and the picture and the tone must both reach the recording."""
    peer = baresip(camera_file(pcap_dir, 30), 10)
    low = free_udp_window(4)
    spec = call_spec(peer.uri, rtmp_server, "baresip", video={"mode": "passthrough"})
    spec["nat"] = {"bindAddress": "127.0.0.1", "rtpPortMin": low, "rtpPortMax": low + 3}
    with LoopbackCapture(tmp_path / "sip.pcap", f"udp port {peer.port}") as capture:
        process = bridge(spec)
        assert process.wait(40) == 0, process.stderr_text[-3000:]
    assert peer.wait(10) == 0, peer.text()[-3000:]

    final = process.final
    assert final["reason"] == "RemoteHangup", final
    video = final["video"]
    assert video["state"] == "RECEIVING", (video, peer.text()[-3000:])
    (offer,) = [m.decode() for m in capture.udp_payloads("sip.Status-Code == 200 && sdp")]
    offered_modes = re.findall(r"a=fmtp:(\d+) .*packetization-mode=(\d)", offer)
    assert {mode for _, mode in offered_modes} == {"0", "1"}, offer
    (mode_1,) = [int(pt) for pt, mode in offered_modes if mode == "1"]
    assert (video["payloadType"], video["packetizationMode"]) == (mode_1, 1), video
    (ack,) = capture.udp_payloads('sip.Method == "ACK"')
    assert_answer_agrees(ack.decode(), mode_1, 1)
    assert video["frames"] > 40 and video["resolution"] == f"{WIDTH}x{HEIGHT}", video

    recording = rtmp_server.recordings_of("baresip")[-1]
    assert sorted(s["codec_name"] for s in ffprobe(recording)["streams"]) == ["aac", "h264"]
    assert_picture_and_tone(recording)


def test_baresip_which_sends_keyframes_only_when_asked_keeps_to_the_interval(
    baresip: Callable[..., BaresipPeer],
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
    pcap_dir: Path,
) -> None:
    """baresip's encoder makes one keyframe at the start and then only on request (PLI, FIR
    or the INFO): under ``profile: youtube`` (at most 4 s apart) the bridge's requests keep
    the recording's keyframes within YouTube's rule."""
    peer = baresip(camera_file(pcap_dir, 30), 13)
    low = free_udp_window(4)
    spec = call_spec(
        peer.uri, rtmp_server, "asked", profile="youtube", video={"mode": "passthrough"}
    )
    spec["nat"] = {"bindAddress": "127.0.0.1", "rtpPortMin": low, "rtpPortMax": low + 3}
    process = bridge(spec)
    assert process.wait(40) == 0, process.stderr_text[-3000:]
    assert peer.wait(10) == 0, peer.text()[-3000:]

    video = process.final["video"]
    assert video["state"] == "RECEIVING" and video["keyframeRequestsIgnored"] == 0, video
    assert video["keyframes"] >= 3 and video["keyframeIntervalMaxSeconds"] <= 4.0, video
    recording = rtmp_server.recordings_of("asked")[-1]
    assert cdn_problems(recording, PROFILES["youtube"]) == []
