"""The far end's RTP through loss, jitter and reordering (support/netem_wire.py): the published
audio stays continuous, concealment and the jitter buffer covering what the network did."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

from tests.chaos.conftest import (
    MAX_AV_OFFSET_SECONDS,
    MAX_FROZEN_SECONDS,
    RTP_PORTS,
    ChaosCall,
    impairment,
)
from tests.support.bridge_process import BridgeProcess
from tests.support.netem import NEAR_ADDRESS
from tests.support.netem_wire import Impairment
from tests.support.recording import measure_recording, tone_gaps
from tests.support.video_offer import one_h264
from tests.support.video_pcap import encode_h264_rtp, write_call_pcap
from tests.support.video_recording import av_offset_seconds, measure_video

#: netem's "loss 5% delay 60ms 50ms reorder 10%", for the RTP the bridge receives.
#: Concealment covers a lost packet or two; the 20 ms envelope shows that as at most this.
LONGEST_GAP_SECONDS = 0.06
VIDEO_SECONDS = 8.0
LOSSY = impairment(loss=0.05, delay_seconds=0.06, jitter_seconds=0.05, reorder=0.10)


def test_audio_stays_continuous_through_loss_jitter_and_reordering(
    chaos_call: Callable[[Impairment], ChaosCall], tone_pcap: Callable[..., Path]
) -> None:
    call = chaos_call(LOSSY)
    seconds = 10.0
    peer = call.far_end(
        "uas_tone_hangup.xml",
        pcap=tone_pcap("PCMU", seconds),
        payload_type=0,
        codec="PCMU/8000",
        direction="sendonly",
        call_ms=int(seconds * 1000) + 500,
        wait_ms=30000,
    )
    process = call.bridge(peer, "lossy")
    assert process.wait(40) == 0, process.stderr_text[-2000:]
    assert process.final["reason"] == "RemoteHangup"
    assert peer.wait(10) == 0
    counts = call.network.stop_wire()
    # The network did what it was told: about 5 % lost, and reordered.
    assert 0.03 < counts.dropped / counts.impaired < 0.08, counts
    assert counts.overtaken > 0.1 * counts.impaired, counts
    (recording,) = call.rtmp.recordings_of("lossy")
    tone = measure_recording(recording)
    gaps = tone_gaps(recording)
    assert abs(tone.frequency_hz - 1000) < 5
    assert tone.tone_seconds > seconds - 0.2, tone
    assert all(length <= LONGEST_GAP_SECONDS for _, length in gaps), gaps


def lossy_video_call(call: ChaosCall, pcap_dir: Path, stream: str) -> BridgeProcess:
    """SIPp sending the tone and H.264 (a keyframe a second) through ``LOSSY``; the call done."""
    rtp = encode_h264_rtp(pcap_dir, VIDEO_SECONDS)
    pcap = write_call_pcap(pcap_dir / "chaos-call.pcap", rtp, VIDEO_SECONDS)
    peer = call.far_end(
        "uas_video_offer.xml",
        extra_args=("-aa",),  # answers the bridge's picture_fast_update INFO
        pcap=pcap,
        video_codec="H264/90000",
        video_mline=one_h264(rtp.fmtp).mline(),
        call_ms=int(VIDEO_SECONDS * 1000 + 500),
    )
    # Two RTP pairs: the video's is the audio's + 2, as SIPp sends it.
    window = {
        "bindAddress": NEAR_ADDRESS,
        "rtpPortMin": RTP_PORTS[0],
        "rtpPortMax": RTP_PORTS[0] + 3,
    }
    process = call.bridge(peer, stream, video={"mode": "passthrough"}, nat=window)
    assert process.wait(40) == 0, process.stderr_text[-3000:]
    assert peer.wait(10) == 0
    return process


def test_video_keeps_being_decoded_through_loss_jitter_and_reordering(
    chaos_call: Callable[[Impairment], ChaosCall], pcap_dir: Path
) -> None:
    call = chaos_call(LOSSY)
    process = lossy_video_call(call, pcap_dir, "lossy-video")
    counts = call.network.stop_wire()
    assert counts.dropped > 0 and counts.overtaken > 0, counts
    assert process.final["video"]["state"] == "RECEIVING", process.final["video"]
    # The last: the stream is re-opened with its video track once the far end's video comes.
    recording = call.rtmp.recordings_of("lossy-video")[-1]
    picture = measure_video(recording)
    assert picture.left_is_red and picture.right_is_blue, picture
    # Frames broken by a loss are lost until the next keyframe, never longer.
    times = [at for at, _ in picture.marker_on]
    assert max(b - a for a, b in itertools.pairwise(times)) <= MAX_FROZEN_SECONDS, times
    assert times[-1] - times[0] >= VIDEO_SECONDS - 1.5, picture


def test_video_loss_brings_a_keyframe_request_and_stays_in_step(
    chaos_call: Callable[[Impairment], ChaosCall], pcap_dir: Path
) -> None:
    call = chaos_call(LOSSY)
    process = lossy_video_call(call, pcap_dir, "lossy-video")
    video = process.final["video"]
    # The last: the stream is re-opened with its video track once the far end's video comes.
    recording = call.rtmp.recordings_of("lossy-video")[-1]
    offset = av_offset_seconds(recording)
    assert video["keyframeRequests"] >= 2, video  # the first at the start, more after loss
    assert abs(offset) <= MAX_AV_OFFSET_SECONDS, f"A/V offset {offset * 1000:.0f} ms"
