"""Pure video rules: the timeline, keyframe requests, RTCP feedback bytes, the FLV track gate,
the spec's video settings and the status document."""

from __future__ import annotations

import math
import socket
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import pytest
import yaml

from siprtmp_bridge.reporter import significant
from siprtmp_bridge.rtmp.flv import VideoTrackGate, extradata_of, with_extradata
from siprtmp_bridge.rtp.keepalive import RtpPortClaim
from siprtmp_bridge.status import initial_status, to_document, with_video
from siprtmp_bridge.supervision import Supervisor
from siprtmp_bridge.video.keyframes import (
    KeyframePolicy,
    RtcpFeedbackSender,
    empty_receiver_report,
    fir_packet,
    pli_packet,
)
from siprtmp_bridge.video.relay import VideoRelay, rtp_ssrc
from siprtmp_bridge.video.sender_clock import (
    SenderReport,
    next_clock,
    plausible_capture,
    sender_report,
)
from siprtmp_bridge.video.sequence import SequenceGaps
from siprtmp_bridge.video.status import VideoState, VideoStatus
from siprtmp_bridge.video.timeline import ArrivalSpread, SmoothedLevel, VideoTimeline
from siprtmp_contract.spec import (
    SpecError,
    parse_spec,
)
from tests.support.video_pcap import sender_report as sender_report_packet

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


def test_timeline_keeps_the_frames_offset_from_their_arrival_across_a_new_numbering() -> None:
    timeline = VideoTimeline()
    # The first frame met the least delay; the next 200 arrive 100 ms after their place, the
    # last of them 80 ms later still (handed on late: the frame after it was lost).
    assert timeline.place(0, 1.0) == 1000
    placed = [timeline.place(3600 * i, 1.1 + 0.04 * i) for i in range(1, 201)]
    assert placed == [1000 + 40 * i for i in range(1, 201)]
    assert timeline.place(3600 * 201, 1.1 + 0.04 * 201 + 0.08) == 1000 + 40 * 201
    # A new SSRC, its timestamps 2^31 ticks off, arriving 2 frames on: placed about 100 ms
    # before its arrival as the frames before it were (not 180 ms, as the latest was).
    arrival = 1.1 + 0.04 * 203
    first_new = timeline.place(2**31, arrival)
    assert timeline.reanchors == 1
    assert abs(first_new - (arrival - 0.1) * 1000) <= 3, first_new
    assert timeline.place(2**31 + 3600, arrival + 0.04) == first_new + 40
    # Drift is another matter: arrivals falling behind their timestamps, 30 ms a frame, are
    # anchored afresh at their arrival once they are ``max_drift`` behind.
    drifting = VideoTimeline(max_drift=0.05)
    assert [drifting.place(3600 * i, 1.0 + 0.07 * i) for i in range(3)] == [1000, 1040, 1140]
    assert drifting.reanchors == 1


def test_timeline_adds_the_delay_after_anchoring_so_that_a_growing_delay_is_followed() -> None:
    timeline = VideoTimeline()
    assert timeline.place(0, 1.0, 0.09) == 1090
    # The anchor is the earliest arrival, whatever the delay: a larger delay moves the frames.
    assert timeline.place(3600, 1.04, 0.15) == 1190
    assert timeline.place(7200, 1.08, 0.15) == 1230
    # A delay that shrinks squeezes frames (1 ms apart) rather than going back in time.
    assert timeline.place(10800, 1.12, 0.0) == 1231


def test_arrival_spread_is_the_mean_queueing_over_the_least_delayed_frame() -> None:
    spread = ArrivalSpread(weight=0.5)
    # Frames 40 ms apart; delays 0, 60, 60 ms: transit least 0, mean moving toward 60 ms.
    assert spread.add(0, 10.0) == 0.0
    assert spread.add(3600, 10.1) == pytest.approx(0.03)
    assert spread.add(7200, 10.14) == pytest.approx(0.045)
    # The far end restarted its timestamps: the old transits say nothing about the new.
    assert spread.add(90_000_000, 10.18) == 0.0
    assert spread.least == pytest.approx(10.18 - 1000)


def test_smoothed_level_weighs_samples_by_the_time_between_them() -> None:
    level = SmoothedLevel(seconds=1.0)
    assert level.add(0.0, 0.0) == 0.0
    assert level.add(1.0, 0.1) == pytest.approx(0.1 * (1 - math.exp(-1)))
    same_moment = level.value
    assert level.add(1.0, 5.0) == same_moment  # no time passed: no weight


def _gaps(sequences: list[int], ssrc: int = 7, window: int = 3) -> tuple[list[int], SequenceGaps]:
    gaps = SequenceGaps(window=window)
    return [gaps.packet(ssrc, sequence) for sequence in sequences], gaps


def test_a_packet_lost_alone_is_found_once_the_window_has_passed_it() -> None:
    found, gaps = _gaps([10, 11, 13, 14, 15, 16, 17])
    assert found == [0, 0, 0, 0, 1, 0, 0]  # 12: missing at 13, lost once 15 came
    assert gaps.lost == 1


def test_reordering_within_the_window_is_not_loss() -> None:
    found, gaps = _gaps([10, 12, 13, 11, 14, 15, 16, 17, 17])
    assert found == [0] * 9 and gaps.lost == 0  # 11 late, 17 repeated


def test_sequence_numbers_wrap() -> None:
    found, gaps = _gaps([65534, 65535, 0, 2, 3, 4, 5])
    assert found == [0, 0, 0, 0, 0, 1, 0]  # 1 lost across the wrap
    found, gaps = _gaps([65534, 65535, 0, 1, 2, 3])
    assert gaps.lost == 0


def test_a_new_ssrc_or_a_confirmed_jump_starts_afresh() -> None:
    gaps = SequenceGaps(window=3)
    assert [gaps.packet(1, n) for n in (100, 101)] == [0, 0]
    # An SBC failover: another SSRC, numbers of its own; nothing counted lost.
    assert [gaps.packet(2, n) for n in (40_000, 40_001, 40_002, 40_003)] == [0, 0, 0, 0]
    # A restart under the same SSRC: a jump, confirmed by the next packet.
    assert [gaps.packet(2, n) for n in (9, 10, 11, 12, 13, 14)] == [0, 0, 0, 0, 0, 0]
    assert gaps.lost == 0
    # A lone stray far away is ignored, and loss is counted on from where it was.
    assert [gaps.packet(2, n) for n in (15, 30_000, 17, 18, 19, 20)] == [0, 0, 0, 0, 1, 0]


def test_keyframe_policy() -> None:
    policy = KeyframePolicy(retry_seconds=1.0, give_up_after=3)
    assert policy.due(0.0)  # at the start
    assert not policy.due(0.5)
    assert policy.due(1.0)  # still no keyframe
    policy.keyframe_received(1.5)
    assert not policy.due(5.0)
    policy.loss_detected()
    assert policy.due(5.1)
    assert policy.due(6.2) and policy.due(7.3)
    assert not policy.due(8.4)  # three unanswered: stop asking
    assert policy.requests == 5


def test_keyframe_cadence_asks_before_the_interval_runs_out_and_notes_a_far_end_ignoring() -> None:
    policy = KeyframePolicy(retry_seconds=1.0, give_up_after=10, max_interval_seconds=4)
    policy.keyframe_received(10.0)
    assert not policy.due(12.9)
    assert policy.due(13.0)  # 1 s before the 4 s run out
    policy.keyframe_received(13.2)  # honoured: 3.2 s apart
    assert (policy.ignored, policy.requests) == (0, 1)
    assert not policy.due(15.0) and policy.due(16.2)
    assert not policy.due(16.9) and policy.due(17.2)  # not honoured: asked again a second on
    assert policy.ignored == 0
    assert not policy.due(17.3) and policy.ignored == 1  # past 4 s although asked in time
    assert policy.due(18.2) and policy.ignored == 1  # counted once per interval
    policy.keyframe_received(23.2)  # its own 10 s cadence
    assert policy.cadence_requests == 0 and policy.requests == 4
    without = KeyframePolicy(max_interval_seconds=None)
    without.keyframe_received(0.0)
    assert not without.due(100.0)


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


def test_keyframe_request_waits_for_the_far_ends_ssrc_and_leaves_from_the_answered_port() -> None:
    """A request before the SSRC is known goes out, aimed right, as soon as it is learned; all
    leave from the answered RTCP port (a NAT in front of the far end drops anything else)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as far_end:
        far_end.bind(("127.0.0.1", 0))
        far_end.settimeout(0.3)
        claim = RtpPortClaim("127.0.0.1", 40000, 40998)
        answered_rtcp = claim.port + 1
        relay = VideoRelay(
            claim, far_end.getsockname(), lambda ssrc: None, lambda: None, Supervisor()
        )
        sender = RtcpFeedbackSender(relay.send_rtcp, 0x11111111)
        try:
            sender.request_keyframe()
            with pytest.raises(TimeoutError):
                far_end.recv(100)  # held: no PLI for SSRC 0
            sender.learned_ssrc(0x22222222)
            held, source = far_end.recvfrom(100)
            assert source == ("127.0.0.1", answered_rtcp)
            assert pli_packet(0x11111111, 0x22222222) in held
            assert fir_packet(0x11111111, 0x22222222, 1) in held
            sender.learned_ssrc(0x22222222)  # nothing pending: nothing sent
            with pytest.raises(TimeoutError):
                far_end.recv(100)
            sender.request_keyframe()
            assert fir_packet(0x11111111, 0x22222222, 2) in far_end.recv(100)
        finally:
            relay.close()
        sender.request_keyframe()  # after the call: dropped, no error


def test_a_new_ssrc_is_not_timed_by_the_old_ones_sender_reports() -> None:
    """An SBC's failover or an MCU's switch changes the SSRC with no re-INVITE: the new
    source's timestamps have their own base, so the old source's clock is dropped."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as far_end:
        far_end.bind(("127.0.0.1", 0))
        claim = RtpPortClaim("127.0.0.1", 40000, 40998)
        rtp_port = claim.port
        relay = VideoRelay(
            claim, far_end.getsockname(), lambda ssrc: None, lambda: None, Supervisor()
        )
        relay.start()

        def rtp(ssrc: int, timestamp: int) -> bytes:
            return struct.pack("!BBHII", 0x80, 96, 1, timestamp, ssrc) + b"frame"

        def until(done: Callable[[], bool]) -> None:
            deadline = time.monotonic() + 2.0
            while not done() and time.monotonic() < deadline:
                time.sleep(0.01)

        try:
            far_end.sendto(rtp(0xA, 90_000), ("127.0.0.1", rtp_port))
            until(lambda: relay.ssrc == 0xA)
            far_end.sendto(sender_report_packet(0xA, 1000, 90_000), ("127.0.0.1", rtp_port + 1))
            until(lambda: relay.capture_time(0) is not None)
            assert relay.capture_time(0) is not None
            far_end.sendto(rtp(0xB, 7), ("127.0.0.1", rtp_port))
            until(lambda: relay.ssrc == 0xB)
            assert relay.ssrc == 0xB and relay.capture_time(0) is None
        finally:
            relay.close()


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


def test_the_crd_lists_every_video_state() -> None:
    """The CRD validates status.video.state: a state it does not list would be refused when
    the operator copies the bridge's status into the resource."""
    crd = Path(__file__).parents[2] / "crds" / "siprtmpbridges.siprtmp.io.yaml"
    schema = yaml.safe_load(crd.read_text())["spec"]["versions"][0]["schema"]
    video = schema["openAPIV3Schema"]["properties"]["status"]["properties"]["video"]
    assert video["properties"]["state"]["enum"] == [state.value for state in VideoState]


def test_sender_report_is_read_from_the_head_of_a_compound_packet() -> None:
    report = sender_report_packet(0xABCDEF01, 3_980_000_000, 0xFFFFFF00)
    parsed = sender_report(report + empty_receiver_report(7))
    assert parsed == SenderReport(0xABCDEF01, 3_980_000_000.0, 0xFFFFFF00)
    half = report[:12] + struct.pack("!I", 2**31) + report[16:]  # NTP fraction: half a second
    assert sender_report(half) == SenderReport(0xABCDEF01, 3_980_000_000.5, 0xFFFFFF00)
    assert sender_report(empty_receiver_report(7)) is None
    assert sender_report(report[:20]) is None
    assert sender_report(b"\x00" + report[1:]) is None


def test_capture_clock_maps_rtp_time_to_local_time_across_the_wrap() -> None:
    sent = SenderReport(1, 1000.0, 0xFFFFFF00)  # sent at NTP 1000 s, at RTP 0xFFFFFF00
    clock = next_clock(None, sent, arrival=50.030)  # arrived 30 ms later on our clock
    assert clock.capture_time(0xFFFFFF00, 90_000) == pytest.approx(50.030)
    # 256 ticks later is across the 32-bit wrap; 9000 ticks earlier is 100 ms before.
    assert clock.capture_time(0x00000000, 90_000) == pytest.approx(50.030 + 256 / 90_000)
    assert clock.capture_time(0xFFFFFF00 - 9000, 90_000) == pytest.approx(49.930)
    # A later report that took longer on the way does not move the clock; a quicker one does.
    slow = next_clock(clock, SenderReport(1, 1001.0, 0xFFFFFF00 + 90_000), arrival=51.080)
    assert slow.capture_time(0xFFFFFF00, 90_000) == pytest.approx(50.030)
    quick = next_clock(slow, SenderReport(1, 1002.0, 0xFFFFFF00 + 180_000), arrival=52.020)
    assert quick.capture_time(0xFFFFFF00, 90_000) == pytest.approx(50.020)
    # Another source (a new SSRC) starts over.
    assert next_clock(quick, SenderReport(2, 7.0, 0), arrival=60.0).offset == pytest.approx(53.0)


def test_implausible_capture_times_fall_back_to_arrival() -> None:
    assert plausible_capture(9.8, arrived=10.0) == 9.8
    assert plausible_capture(10.03, arrived=10.0) == 10.03  # the report's own jitter
    assert plausible_capture(None, arrived=10.0) is None
    assert plausible_capture(8.5, arrived=10.0) is None  # 1.5 s to send a frame: a wrong clock
    assert plausible_capture(10.5, arrived=10.0) is None  # captured after it arrived
