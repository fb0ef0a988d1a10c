"""The call's media chain, from pjsua's recorder to the RTMP servers: its one owner, so it
starts and stops in one order.

Start: the publishers (one per destination, behind one ``Fanout``) connect first
(``connect``: before anything is dialled), then the pipeline's clock starts, the stream's time
zero, and video with it (``start``). Stop, the other way round (``stop``): video stops feeding
the publishers; the pipeline drains the FIFO and flushes the encoder into them; the publishers
send what they have queued and close their streams; only then is video's FFmpeg input freed
(the publishers' H.264 tracks were copied from it). Each step is bounded, so no end waits for
the network for more than a few seconds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import av

from siprtmp_bridge.media.encoder import AacEncoder
from siprtmp_bridge.media.pipeline import MediaPipeline
from siprtmp_bridge.rtmp.fanout import Fanout
from siprtmp_bridge.rtmp.publisher import RtmpPublisher, StateListener, StreamFormat
from siprtmp_bridge.rtmp.route import route_for
from siprtmp_bridge.supervision import Supervisor
from siprtmp_bridge.video.session import VideoSession
from siprtmp_bridge.video.slate import Slate, slate_keyframe_seconds
from siprtmp_bridge.video.status import VideoState, VideoStatus
from siprtmp_bridge.video.track import SlatedTrack
from siprtmp_contract.spec import BridgeSpec, Destination

#: How long the pipeline may take to drain, and then the publisher to send its queue.
FLUSH_SECONDS = 1.5

log = logging.getLogger(__name__)


def make_slate(spec: BridgeSpec) -> Slate | None:
    """The spec's slate, or None when it asks for none. An image FFmpeg cannot read gives the
    built-in card (and a warning): the call and its video track go on."""
    video = spec.video
    if not video.slate:
        return None
    seconds = slate_keyframe_seconds(video.max_keyframe_interval_seconds)
    try:
        return Slate(video.slate_text, video.slate_image, seconds, video.slate_bitrate)
    except (av.FFmpegError, OSError, StopIteration) as error:
        log.warning(
            "slate image %s unreadable (%s): the built-in card instead", video.slate_image, error
        )
        return Slate(video.slate_text, None, seconds, video.slate_bitrate)


class MediaChain:
    def __init__(
        self,
        spec: BridgeSpec,
        workdir: Path,
        fifo_path: Path,
        clock_rate: int,
        on_stream_state: StateListener,
        on_first_audio: Callable[[], None],
        supervisor: Supervisor,
    ) -> None:
        self.spec = spec
        self.workdir = workdir
        audio = spec.audio
        # With a slate, the stream has its video track from the first packet on.
        self.slate = make_slate(spec)
        stream_format = StreamFormat(audio.sample_rate, audio.bitrate, audio.channels)
        with_video = spec.video.enabled or self.slate is not None

        def publisher(
            destination: Destination, name: str, on_state: StateListener, template: object
        ) -> RtmpPublisher:
            return RtmpPublisher(
                route_for(destination.publish_url, spec.rtmp_tls_verify),
                stream_format,
                on_state,
                spec.timeouts.rtmp_reconnect_seconds,
                supervisor,
                video=with_video,
                video_template=template,
                name=name,
            )

        # Encoded once, published to each destination (rtmp/fanout.py).
        self.fanout = Fanout(
            spec.destinations,
            publisher,
            on_stream_state,
            self.slate.stream if self.slate is not None else None,
        )
        self.encoder = AacEncoder(clock_rate, audio.sample_rate, audio.bitrate, audio.channels)
        self.pipeline = MediaPipeline(
            fifo_path, clock_rate, self.encoder, self.fanout, on_first_audio, supervisor
        )
        self.supervisor = supervisor
        self.video: VideoSession | None = None
        #: ``video.mode: disabled`` with a slate: the slate alone is the video track.
        self.slate_track: SlatedTrack | None = None

    def connect(self) -> None:
        """Start publishing (silence until the call's audio comes)."""
        self.fanout.start()

    def start(self) -> None:
        """The stream is up: its clock starts now, and video with it when the spec asks."""
        self.pipeline.start()
        if self.spec.video.enabled:
            fanout = self.fanout
            self.video = VideoSession(
                self.spec,
                self.workdir,
                fanout.submit_video,
                fanout.add_video,
                self.pipeline.stream_seconds_at,
                self.supervisor,
                self.slate,
            )
        elif self.slate is not None:
            self.slate_track = SlatedTrack(
                self.slate,
                self.fanout.submit_video,
                self.pipeline.stream_seconds_at,
                self.supervisor,
            )
            self.slate_track.start()

    def video_status(self) -> VideoStatus | None:
        """The video part of the status: the session's, the slate's alone, or none."""
        if self.video is not None:
            return self.video.snapshot()
        if self.slate_track is None:
            return None
        return VideoStatus(
            mode=self.spec.video.mode,
            state=VideoState.ABSENT,
            reason="video.mode is disabled: the slate is the video track",
            negotiation="none (an audio offer)",
            source="slate",
            slate_frames=self.slate_track.slate_frames,
        )

    def stop(self) -> VideoStatus | None:
        """Flush and close everything, in order; the video's last status, when there is video.
        pjsua's recorder must be closed first (that ends the FIFO's audio)."""
        video = self.video
        if video is not None:
            video.stop()
        if self.slate_track is not None:
            self.slate_track.stop()
        self.pipeline.stop(FLUSH_SECONDS)
        self.fanout.finish(FLUSH_SECONDS)
        last = self.video_status()
        if video is not None:
            video.close()  # closes the slate too
        elif self.slate is not None:
            self.slate.close()
        return last
