"""The far end's H.264 over RTP, depacketized by FFmpeg (an SDP input) and handed on unchanged.

FFmpeg's RTP demuxer reassembles access units (packetization modes 0 and 1) on its own socket;
this thread only re-times each access unit onto the stream's timeline and notes what the status
reports. No picture is decoded: that would cost what re-encoding costs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from siprtmp_bridge.rtmp.flv import with_extradata
from siprtmp_bridge.supervision import Supervisor
from siprtmp_bridge.video.h264 import first_sps, parameter_sets, parse_sps
from siprtmp_bridge.video.keyframes import KeyframePolicy
from siprtmp_bridge.video.sender_clock import plausible_capture
from siprtmp_bridge.video.timeline import RTP_VIDEO_CLOCK, ArrivalSpread, VideoTimeline

OPEN_TIMEOUT_SECONDS = 2.0
READ_TIMEOUT_SECONDS = 0.5  # how often the thread looks at its stop flag while no RTP comes
# A step in the frames' timestamps this many times the usual spacing is a gap (lost frames, a
# pause), not a spacing.
GAP_FACTOR = 3.0
MILLISECONDS = Fraction(1, 1000)
THREAD_NAME = "video-receiver"


@dataclass
class VideoStats:
    """Live figures for status and metrics (written by the receiver thread only)."""

    frames: int = 0
    keyframes: int = 0
    bytes: int = 0
    width: int | None = None
    height: int | None = None
    profile: str | None = None
    frame_rate: float | None = None
    keyframe_interval: float | None = None
    keyframe_interval_max: float | None = None  # the longest seen in the call
    av_offset_ms: float | None = None
    # What places frames against the audio: "sender reports" (RTCP SR) or "arrival".
    sync: str | None = None
    first_frame_at: float | None = None
    last_frame_at: float | None = None
    parameter_set_changes: int = 0
    losses: int = 0


class VideoReceiver:
    """Runs from ``start()`` until ``stop()``; ``close()`` frees FFmpeg's input afterwards
    (the publisher uses the input stream as its track's template until it has finished)."""

    def __init__(
        self,
        sdp_path: Path,
        bind_address: str,
        submit: Callable[[Any], None],
        add_track: Callable[[Any], None],
        stream_seconds_at: Callable[[float], float],
        capture_time: Callable[[int], float | None],
        policy: KeyframePolicy,
        audio_delay: Callable[[], float],
        supervisor: Supervisor,
    ) -> None:
        self.sdp_path = sdp_path
        self.bind_address = bind_address
        self.submit = submit
        self.add_track = add_track
        self.stream_seconds_at = stream_seconds_at
        self.capture_time = capture_time  # a frame's pts → when it was captured, if known
        self.policy = policy
        # How much later than its arrival audio reaches the stream, beyond the network's
        # queueing (the jitter buffer's wait included): read per frame, it follows the buffer.
        self.audio_delay = audio_delay
        self.stats = VideoStats()
        self.error: str | None = None
        self.timeline = VideoTimeline()
        self.spread = ArrivalSpread()
        self._container: Any = None
        self._extradata: bytes | None = None
        self._track_added = False
        self._last_pts: int | None = None
        self._last_keyframe_pts: int | None = None
        self._spacing: float | None = None  # usual frame spacing, RTP clock ticks
        self._stop = threading.Event()
        self._supervisor = supervisor
        self._thread = threading.Thread(
            target=supervisor.supervised(THREAD_NAME, self._run), name=THREAD_NAME, daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float) -> None:
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def close(self) -> None:
        container, self._container = self._container, None
        if container is not None:
            container.close()

    def _open(self) -> Any:
        options = {
            "protocol_whitelist": "file,udp,rtp",
            "localaddr": self.bind_address,
            # RTCP receiver reports go where the RTP comes from: the relay, which sends them on.
            "sdp_flags": "rtcp_to_source",
            # Hand each access unit on at once: waiting to reorder costs latency, and probing
            # would hold back the first keyframe.
            "reorder_queue_size": "0",
            "probesize": "32",
            "analyzeduration": "0",
        }
        if self.bind_address in ("0.0.0.0", "::"):
            del options["localaddr"]
        return av.open(
            str(self.sdp_path),
            format="sdp",
            options=options,
            timeout=(OPEN_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS),
        )

    def _run(self) -> None:
        """Any failure ends the receiver with its reason in ``error``, which the status shows
        as FAILED: a thread that died silently would leave the status saying RECEIVING. What
        the far end's video can cause (FFmpeg's errors, the socket's) leaves the call and its
        audio going; anything else is a bug, raised on to the supervisor, which ends the call
        (``InternalError``) and logs its traceback."""
        try:
            self._receive()
        except (av.FFmpegError, OSError) as error:
            self.error = f"video receiver: {error}"
        except Exception as error:
            self.error = f"video receiver failed: {type(error).__name__}: {error}"
            raise

    def _receive(self) -> None:
        self._container = self._open()
        stream = self._container.streams.video[0]
        if stream.codec_context.extradata:
            self._extradata = bytes(stream.codec_context.extradata)  # sprop-parameter-sets
            self._note_parameter_sets(self._extradata)
        while not self._stop.is_set():
            try:
                for packet in self._container.demux(stream):
                    self._supervisor.beat(THREAD_NAME)
                    if packet.size:
                        self._handle(packet, stream)
                    if self._stop.is_set():
                        break
                else:
                    return  # end of input: FFmpeg gave up on the stream
            except av.ExitError:  # a read timeout: look at the stop flag, then read on
                self._supervisor.beat(THREAD_NAME)

    def _handle(self, packet: Any, stream: Any) -> None:
        arrived = time.monotonic()
        pts = packet.pts if packet.pts is not None else self._guess_pts()
        keyframe = bool(packet.is_keyframe)
        self._watch(pts, bool(packet.is_corrupt))
        self._last_pts = pts
        # Only keyframes are looked into (for parameter sets): no copy of the others.
        extradata = parameter_sets(bytes(packet)) if keyframe else None
        if extradata is not None and extradata != self._extradata:
            self._extradata = extradata
            self._note_parameter_sets(extradata)
            self.stats.parameter_set_changes += 1
            with_extradata(packet, extradata)  # a new sequence header in the FLV stream
        elif keyframe and not self._track_added and self._extradata is not None:
            with_extradata(packet, self._extradata)
        if keyframe:
            self._keyframe(pts, arrived)
        if not self._track_added:
            if not keyframe or self._extradata is None:
                return  # nothing decodable before the first keyframe with its parameter sets
            self._track_added = True
            self.add_track(stream)
        captured = plausible_capture(self.capture_time(pts), arrived)
        self.stats.sync = "arrival" if captured is None else "sender reports"
        # Where the audio that was captured with the frame (else: arrived with it) is.
        moment = arrived if captured is None else captured
        delay = self.audio_delay() + self.spread.add(pts, arrived)
        milliseconds = self.timeline.place(pts, self.stream_seconds_at(moment), delay)
        packet.pts = packet.dts = milliseconds
        packet.time_base = MILLISECONDS
        self.submit(packet)
        self._count(packet.size, arrived)

    def _guess_pts(self) -> int:
        """FFmpeg leaves the very first packet's pts unset: place it one frame early."""
        if self._last_pts is None:
            return 0
        return self._last_pts + int(self._spacing or RTP_VIDEO_CLOCK / 30)

    def _watch(self, pts: int, corrupt: bool) -> None:
        """The usual frame spacing, from steps that are not gaps; a frame FFmpeg found damaged
        asks for a keyframe (lost packets are told by the relay, from sequence numbers)."""
        if self._last_pts is not None and pts > self._last_pts:
            step = pts - self._last_pts
            gap = self._spacing is not None and step > GAP_FACTOR * self._spacing
            if not gap and step < 2 * RTP_VIDEO_CLOCK:
                self._spacing = step if self._spacing is None else 0.9 * self._spacing + 0.1 * step
        if corrupt and self._track_added:
            self.stats.losses += 1
            self.policy.loss_detected()

    def _keyframe(self, pts: int, arrived: float) -> None:
        self.policy.keyframe_received(arrived)
        if self._last_keyframe_pts is not None and pts > self._last_keyframe_pts:
            interval = (pts - self._last_keyframe_pts) / RTP_VIDEO_CLOCK
            self.stats.keyframe_interval = interval
            longest = self.stats.keyframe_interval_max
            self.stats.keyframe_interval_max = (
                interval if longest is None else max(longest, interval)
            )
        self._last_keyframe_pts = pts
        self.stats.keyframes += 1

    def _note_parameter_sets(self, extradata: bytes) -> None:
        sps = first_sps(extradata)
        if sps is None:
            return
        try:
            info = parse_sps(sps)
        except ValueError:
            return
        self.stats.width, self.stats.height = info.width, info.height
        self.stats.profile = info.profile_name

    def _count(self, size: int, arrived: float) -> None:
        stats = self.stats
        stats.frames += 1
        stats.bytes += size
        stats.first_frame_at = stats.first_frame_at or arrived
        stats.last_frame_at = arrived
        if self._spacing:
            stats.frame_rate = round(RTP_VIDEO_CLOCK / self._spacing, 2)
        stats.av_offset_ms = round(self.timeline.offset_seconds * 1000, 1)
