"""The video part of the bridge's status: what was negotiated and what is flowing."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class VideoState(StrEnum):
    NEGOTIATING = "NEGOTIATING"  # the call's answer (the far end's offer) has not come yet
    NEGOTIATED = "NEGOTIATED"  # H.264 accepted; no keyframe received yet
    RECEIVING = "RECEIVING"  # the far end's video is being published
    MISSING = "MISSING"  # negotiated, yet no frame came within VIDEO_MISSING_SECONDS (session.py)
    ABSENT = "ABSENT"  # the far end offers or sends no video: the stream is audio-only
    REFUSED = "REFUSED"  # the far end offered only video the bridge cannot pass through
    FAILED = "FAILED"  # receiving failed; the call and its audio go on


@dataclass(frozen=True)
class VideoStatus:
    mode: str
    state: VideoState = VideoState.NEGOTIATING
    reason: str | None = None
    negotiation: str = "delayed offer"  # or how the fallback got there
    source: str | None = None  # what the H.264 track carries now: "far end" or "slate"
    slate_frames: int = 0
    codec: str | None = None  # "H264/90000"
    payload_type: int | None = None  # the offered number answered, on which FFmpeg receives
    packetization_mode: int | None = None
    profile: str | None = None
    width: int | None = None
    height: int | None = None
    frame_rate: float | None = None
    keyframe_interval_seconds: float | None = None
    #: The longest interval seen, and how many ran past ``video.maxKeyframeIntervalSeconds``
    #: although the bridge had asked for a keyframe in time (a far end that ignores requests).
    keyframe_interval_max_seconds: float | None = None
    keyframe_requests_ignored: int = 0
    frames: int = 0
    keyframes: int = 0
    bytes_received: int = 0
    keyframe_requests: int = 0
    missing_count: int = 0  # times negotiated video turned MISSING (a re-INVITE may renegotiate)
    foreign_packets: int = 0  # RTP/RTCP from others than the far end, dropped (source.py)
    srtp_suite: str | None = None  # the video's SRTP crypto suite; None: plain RTP
    srtp_rejected: int = 0  # SRTP/SRTCP packets that failed authentication, dropped
    av_offset_ms: float | None = None
    av_sync: str | None = None  # "sender reports" (RTCP SR) or "arrival"
    local_port: int | None = None


# Figures that change with every frame: a change in them alone is not worth a status line.
VIDEO_COUNTERS = frozenset(
    {
        "frameRate",
        "keyframeIntervalSeconds",
        "frames",
        "keyframes",
        "bytesReceived",
        "keyframeRequests",
        "avOffsetMs",
        "foreignPackets",
        "srtpRejected",
    }
)


def video_document(video: VideoStatus) -> dict[str, Any]:
    return {
        "mode": video.mode,
        "state": video.state.value,
        "reason": video.reason,
        "negotiation": video.negotiation,
        "source": video.source,
        "slateFrames": video.slate_frames,
        "codec": video.codec,
        "payloadType": video.payload_type,
        "packetizationMode": video.packetization_mode,
        "profile": video.profile,
        "resolution": f"{video.width}x{video.height}" if video.width and video.height else None,
        "frameRate": video.frame_rate,
        "keyframeIntervalSeconds": video.keyframe_interval_seconds,
        "keyframeIntervalMaxSeconds": video.keyframe_interval_max_seconds,
        "keyframeRequestsIgnored": video.keyframe_requests_ignored,
        "frames": video.frames,
        "foreignPackets": video.foreign_packets,
        "srtpSuite": video.srtp_suite,
        "srtpRejected": video.srtp_rejected,
        "keyframes": video.keyframes,
        "bytesReceived": video.bytes_received,
        "keyframeRequests": video.keyframe_requests,
        "missingCount": video.missing_count,
        "avOffsetMs": video.av_offset_ms,
        "avSync": video.av_sync,
        "localPort": video.local_port,
    }
