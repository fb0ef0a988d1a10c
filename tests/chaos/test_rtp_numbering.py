"""What far ends and SBCs do to RTP numbering: a new SSRC mid-call (an SBC failing over to its
standby, or a conference MCU switching speakers, each a stream of its own with no re-INVITE)
and timestamps and sequence numbers that wrap (they start at random, so some calls cross 2^32
early). The audio goes on in the recording; so does the video, in step with it, and a new
video source is asked for a keyframe."""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.bridge.test_video import video_far_end, video_spec
from tests.chaos.conftest import MAX_AV_OFFSET_SECONDS, MAX_FROZEN_SECONDS, assert_steady
from tests.conftest import call_spec
from tests.support.bridge_process import BridgeProcess
from tests.support.capture import LoopbackCapture
from tests.support.nginx_rtmp import NginxRtmp
from tests.support.recording import ffprobe, measure_recording, packet_times, tone_gaps
from tests.support.rtp_pcap import PCMU, RtpSource, make_tone_pcap
from tests.support.sipp import SippPeer
from tests.support.video_offer import one_h264
from tests.support.video_pcap import FPS, H264Rtp, encode_h264_rtp, frame_start, write_call_pcap
from tests.support.video_recording import av_offsets, measure_video

SECONDS = 8.0
PACKETS_PER_SECOND = 50
#: What concealment and a jitter buffer restarting may leave as a hole, in the 20 ms envelope.
LONGEST_GAP_SECONDS = 0.06

FAILOVER = (
    RtpSource(0, ssrc=0x11111111, first_sequence=17, first_timestamp=123_456),
    # Half-way: the standby's SSRC, sequence and timestamp bases of its own.
    RtpSource(200, ssrc=0x22222222, first_sequence=40_000, first_timestamp=3_000_000_000),
)
#: 2 s before both wrap: the timestamp at 2^32, the sequence number at 2^16, 100 packets in.
WRAP = (RtpSource(0, first_sequence=0x10000 - 100, first_timestamp=2**32 - 2 * 8000),)


@pytest.mark.parametrize("sources", [FAILOVER, WRAP], ids=["ssrc-change", "wrap"])
def test_the_audio_goes_on_through_renumbered_rtp(
    sources: tuple[RtpSource, ...],
    tmp_path: Path,
    sipp: Callable[..., SippPeer],
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
) -> None:
    pcap = make_tone_pcap(tmp_path / "renumbered.pcap", PCMU, 1000.0, SECONDS, sources)
    peer = sipp(
        "uas_tone_hangup.xml",
        pcap=pcap,
        payload_type=0,
        codec="PCMU/8000",
        direction="sendonly",
        call_ms=int(SECONDS * 1000) + 500,
        wait_ms=30000,
    )
    process = bridge(call_spec(peer.uri, rtmp_server, "renumbered"))
    assert process.wait(30) == 0, process.stderr_text[-2000:]
    assert process.final["reason"] == "RemoteHangup"
    assert peer.wait(10) == 0
    (recording,) = rtmp_server.recordings_of("renumbered")
    tone = measure_recording(recording)
    gaps = tone_gaps(recording)
    assert abs(tone.frequency_hz - 1000) < 5
    assert tone.tone_seconds > SECONDS - 0.2, tone
    assert all(length <= LONGEST_GAP_SECONDS for _, length in gaps), gaps


VIDEO_SECONDS = 8.0
#: The video source changes 4.4 s in (frame 110): between the far end's keyframes at 4 s and
#: 5 s, so the new source's first frames are not a keyframe, as after a real failover.
SWITCH_FRAME = 110
OLD_VIDEO_SSRC, NEW_VIDEO_SSRC = 0x11111111, 0x22222222
#: How soon a new source is asked for a keyframe: the runner's loop and the request's way.
REQUEST_SECONDS = 0.5
#: The A/V offset over the call's first seconds (before the change or the wrap) and over its
#: last (after): the same but for a frame's time.
SPAN_SECONDS = 3.0
MAX_SHIFT_SECONDS = 1 / FPS


def video_sources(rtp: H264Rtp, numbering: str) -> tuple[RtpSource, ...]:
    """The renumbering of the far end's video for ``numbering``."""
    if numbering == "ssrc-change":
        return (
            RtpSource(0, ssrc=OLD_VIDEO_SSRC, first_sequence=17, first_timestamp=123_456),
            # 2^31 ticks and more from the old source's: as far off as 32 bits allow.
            RtpSource(
                frame_start(rtp, SWITCH_FRAME),
                ssrc=NEW_VIDEO_SSRC,
                first_sequence=40_000,
                first_timestamp=3_000_000_000,
            ),
        )
    # 2 s in (frame 50) the timestamp reaches 2^32 and the sequence number 2^16.
    wrap_packets = frame_start(rtp, 2 * FPS)
    return (
        RtpSource(
            0,
            ssrc=OLD_VIDEO_SSRC,
            first_sequence=0x10000 - wrap_packets,
            first_timestamp=2**32 - 2 * 90_000,
        ),
    )


@pytest.mark.parametrize("numbering", ["ssrc-change", "wrap"])
def test_the_video_goes_on_through_renumbered_rtp(
    numbering: str,
    sipp: Callable[..., SippPeer],
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
    pcap_dir: Path,
    tmp_path: Path,
) -> None:
    rtp = encode_h264_rtp(pcap_dir, VIDEO_SECONDS)
    sources = video_sources(rtp, numbering)
    pcap = write_call_pcap(
        tmp_path / f"renumbered-{numbering}.pcap", rtp, VIDEO_SECONDS, sources=sources
    )
    peer = video_far_end(
        sipp, pcap, one_h264(rtp.fmtp).mline(), call_ms=int(VIDEO_SECONDS * 1000 + 500)
    )
    rtcp_port = peer.media_port + 3  # the far end's video RTCP: its video port + 1
    spec = video_spec(peer, rtmp_server, "renumbered-video")
    video_port = spec["nat"]["rtpPortMin"] + 2  # the bridge's video RTP, in video_spec's window
    wire = f"udp dst port {rtcp_port} or udp dst port {video_port}"
    with LoopbackCapture(tmp_path / "video.pcap", wire) as capture:
        process = bridge(spec)
        assert process.wait(40) == 0, process.stderr_text[-3000:]
    assert peer.wait(10) == 0
    assert process.final["reason"] == "RemoteHangup"
    video = process.final["video"]
    assert video["state"] == "RECEIVING", video

    # On the wire: the far end's video as renumbered, and the bridge's keyframe requests (PLI;
    # its media source field names the SSRC asked, the FIR after it has zero there).
    received = [
        (float(at), int(ssrc, 0), int(timestamp))
        for at, ssrc, timestamp in capture.fields(
            "rtp",
            "frame.time_epoch",
            "rtp.ssrc",
            "rtp.timestamp",
            decode_as=f"udp.port=={video_port},rtp",
        )
    ]
    asked = [
        (float(at), int(ssrcs.split(",")[0], 0))
        for at, ssrcs in capture.fields(
            "rtcp.pt == 206 && rtcp.psfb.fmt == 1",
            "frame.time_epoch",
            "rtcp.mediassrc",
            decode_as=f"udp.port=={rtcp_port},rtcp",
        )
    ]
    assert received and asked, (len(received), asked)
    if numbering == "ssrc-change":
        changed = next(at for at, ssrc, _ in received if ssrc == NEW_VIDEO_SSRC)
        before = [ssrc for at, ssrc in asked if at < changed]
        after = [(at - changed, ssrc) for at, ssrc in asked if at >= changed]
        assert before and set(before) == {OLD_VIDEO_SSRC}, asked
        # Asked of the new source at once (the start's request was seconds before).
        assert after, f"no keyframe request after the new SSRC: {asked}"
        assert after[0][1] == NEW_VIDEO_SSRC and after[0][0] < REQUEST_SECONDS, after
    else:
        # The wrap is no loss: no request after it (one or two at the start, before the first
        # keyframe came), and every request names the one source.
        wrapped = next(at for at, _, timestamp in received if timestamp < 2**31)
        assert all(at < wrapped and ssrc == OLD_VIDEO_SSRC for at, ssrc in asked), asked

    # The stream is reopened when its video track arrives: the call is the largest recording.
    recording = max(rtmp_server.recordings_of("renumbered-video"), key=lambda p: p.stat().st_size)
    assert sorted(s["codec_name"] for s in ffprobe(recording)["streams"]) == ["aac", "h264"]
    # As stored: both tracks' timestamps rise steadily through the change.
    assert_steady(packet_times(recording, "video"), "video", MAX_FROZEN_SECONDS * 1000)
    assert_steady(packet_times(recording, "audio"), "audio")
    # Decoded: the picture all along, no freeze longer than until the next keyframe.
    picture = measure_video(recording)
    assert picture.left_is_red and picture.right_is_blue, picture
    times = [at for at, _ in picture.marker_on]
    assert max(b - a for a, b in itertools.pairwise(times)) <= MAX_FROZEN_SECONDS, times
    assert times[-1] - times[0] >= VIDEO_SECONDS - 1.5, picture
    # And in step with the audio after the change as before it.
    offsets = av_offsets(recording)
    early = [offset for at, offset in offsets if at <= times[0] + SPAN_SECONDS]
    late = [offset for at, offset in offsets if at >= times[-1] - SPAN_SECONDS]
    assert early and late, offsets
    assert abs(statistics.median(late)) <= MAX_AV_OFFSET_SECONDS, offsets
    assert abs(statistics.median(late) - statistics.median(early)) <= MAX_SHIFT_SECONDS, offsets
