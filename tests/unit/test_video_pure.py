"""Pure video rules: the timeline, keyframe requests, RTCP feedback bytes, the FLV track gate,
the spec's video settings and the status document."""

from __future__ import annotations

import socket
import struct
from typing import Any

import av
import pytest

from siprtmp_bridge.reporter import significant
from siprtmp_bridge.spec import SpecError, parse_spec
from siprtmp_bridge.status import initial_status, to_document, with_video
from siprtmp_bridge.video.flv import VideoTrackGate, extradata_of, with_extradata
from siprtmp_bridge.video.keyframes import (
    KeyframePolicy,
    RtcpFeedbackSender,
    empty_receiver_report,
    fir_packet,
    pli_packet,
)
from siprtmp_bridge.video.relay import rtp_ssrc
from siprtmp_bridge.video.status import VideoState, VideoStatus
from siprtmp_bridge.video.timeline import VideoTimeline

BASE = {"callee": "sip:a@b", "rtmpUrl": "rtmp://h/live", "rtmpStream": "s"}


def test_timeline_follows_rtp_spacing_from_the_earliest_arrival() -> None:
    timeline = VideoTimeline()
    # Frames 40 ms apart by RTP (3600 ticks); arrivals jitter by up to 30 ms.
    arrivals = [5.030, 5.040, 5.100, 5.130, 5.160]
    placed = [timeline.place(1000 + 3600 * i, a) for i, a in enumerate(arrivals)]
    # The second frame met the least delay (5.040 - 0.040 = 5.0): everything follows it.
    assert placed == [5030, 5040, 5080, 5120, 5160]
    assert timeline.reanchors == 0


def test_timeline_reanchors_on_a_timestamp_jump_and_stays_monotonic() -> None:
    timeline = VideoTimeline()
    assert timeline.place(0, 1.0) == 1000
    assert timeline.place(3600, 1.04) == 1040
    # The far end restarted its RTP clock: timestamps jump, arrivals go on.
    assert timeline.place(5_000_000, 1.08) == 1080
    assert timeline.reanchors == 1
    assert timeline.place(5_003_600, 1.12) == 1120
    # A small step back in timestamps still yields strictly increasing times.
    assert timeline.place(5_003_000, 1.13) == 1121


def test_keyframe_policy() -> None:
    policy = KeyframePolicy(retry_seconds=1.0, give_up_after=3)
    assert policy.due(0.0)  # at the start
    assert not policy.due(0.5)
    assert policy.due(1.0)  # still no keyframe
    policy.keyframe_received()
    assert not policy.due(5.0)
    policy.loss_detected()
    assert policy.due(5.1)
    assert policy.due(6.2) and policy.due(7.3)
    assert not policy.due(8.4)  # three unanswered: stop asking
    assert policy.requests == 5


def test_rtcp_feedback_packets() -> None:
    assert pli_packet(0x11111111, 0x22222222) == bytes.fromhex("81ce00021111111122222222")
    fir = fir_packet(0x11111111, 0x22222222, 7)
    assert fir == bytes.fromhex("84ce00041111111100000000222222220700 0000".replace(" ", ""))
    rr = empty_receiver_report(0x11111111)
    assert struct.unpack("!BBH", rr[:4]) == (0x80, 201, 1)


def test_rtp_ssrc_is_read_from_rtp_only() -> None:
    rtp = bytes.fromhex("80e0 0001 00000e10 bbf3c24f".replace(" ", "")) + b"payload"
    assert rtp_ssrc(rtp) == 0xBBF3C24F
    assert rtp_ssrc(pli_packet(1, 2)) is None  # RTCP (rtcp-mux) is not the media source
    assert rtp_ssrc(rtp[:11]) is None
    assert rtp_ssrc(b"\x00" + rtp[1:]) is None  # not RTP version 2


def test_keyframe_request_waits_for_the_far_ends_ssrc() -> None:
    """A request before the SSRC is known goes out, aimed right, as soon as it is learned."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as far_end:
        far_end.bind(("127.0.0.1", 0))
        far_end.settimeout(0.3)
        sender = RtcpFeedbackSender("127.0.0.1", far_end.getsockname(), 0x11111111)
        try:
            sender.request_keyframe()
            with pytest.raises(TimeoutError):
                far_end.recv(100)  # held: no PLI for SSRC 0
            sender.learned_ssrc(0x22222222)
            held = far_end.recv(100)
            assert pli_packet(0x11111111, 0x22222222) in held
            assert fir_packet(0x11111111, 0x22222222, 1) in held
            sender.learned_ssrc(0x22222222)  # nothing pending: nothing sent
            with pytest.raises(TimeoutError):
                far_end.recv(100)
            sender.request_keyframe()
            assert fir_packet(0x11111111, 0x22222222, 2) in far_end.recv(100)
        finally:
            sender.close()


def _packet(data: bytes, keyframe: bool) -> Any:
    packet = av.Packet(data)
    packet.is_keyframe = keyframe
    return packet


def test_flv_gate_starts_each_connection_with_a_keyframe_and_its_parameter_sets() -> None:
    gate = VideoTrackGate()
    gate.connected()
    # Held back until the stream's first audio packet has gone out, then admitted in order.
    early = with_extradata(_packet(b"idr-0", keyframe=True), b"\x00\x00\x00\x01sps")
    assert gate.admit(early) is None
    assert gate.audio_written() == [early]
    assert gate.audio_written() == []
    assert gate.admit(early) is early
    gate.connected()
    assert gate.admit(_packet(b"p-frame", keyframe=False)) is None
    first = with_extradata(_packet(b"idr", keyframe=True), b"\x00\x00\x00\x01sps")
    assert gate.admit(first) is first
    assert gate.admit(_packet(b"p", keyframe=False)) is not None
    gate.connected()  # a reconnect: a fresh stream for the server
    assert gate.admit(_packet(b"p", keyframe=False)) is None
    again = gate.admit(_packet(b"idr", keyframe=True))
    assert again is not None and extradata_of(again) == b"\x00\x00\x00\x01sps"
    assert gate.dropped == 2


def test_spec_video_settings() -> None:
    default = parse_spec(BASE)
    assert (default.video.mode, default.video.enabled) == ("disabled", False)
    spec = parse_spec({**BASE, "video": {"mode": "passthrough", "whenAbsent": "slate"}})
    assert (spec.video.mode, spec.video.when_absent, spec.video.enabled) == (
        "passthrough",
        "slate",
        True,
    )
    # YAML 1.1 reads an unquoted off as false.
    assert parse_spec({**BASE, "video": {"mode": False}}).video.mode == "disabled"
    assert parse_spec({**BASE, "video": {"mode": "off"}}).video.mode == "disabled"


@pytest.mark.parametrize(
    ("video", "message"),
    [
        ({"mode": "transcode"}, "spec.video.mode: must be one of disabled, passthrough"),
        ({"mode": 3}, "spec.video.mode: must be one of"),
        ({"whenAbsent": "black"}, "spec.video.whenAbsent: must be one of audioOnly, slate"),
        ({"codec": "vp8"}, "spec.video.codec: is not a known field"),
        ("passthrough", "spec.video: must be an object"),
    ],
)
def test_spec_video_errors(video: object, message: str) -> None:
    with pytest.raises(SpecError, match=message.replace(".", r"\.")):
        parse_spec({**BASE, "video": video})


def test_status_document_has_video_only_when_asked() -> None:
    status = initial_status("c1", "rtmp://h/live/***")
    assert "video" not in to_document(status)
    video = VideoStatus(
        mode="passthrough",
        state=VideoState.RECEIVING,
        codec="H264/90000",
        width=640,
        height=360,
        frames=10,
    )
    document = to_document(with_video(status, video))
    assert document["video"]["resolution"] == "640x360"
    assert document["video"]["state"] == "RECEIVING"
    # Per-frame counters alone do not make a new status line; a state change does.
    busier = to_document(with_video(status, VideoStatus("passthrough", frames=11)))
    assert significant(busier)["video"] != significant(document)["video"]
    more_frames = to_document(
        with_video(
            status,
            VideoStatus(
                "passthrough", VideoState.RECEIVING, codec="H264/90000", width=640, height=360
            ),
        )
    )
    assert significant(more_frames) == significant(document)
