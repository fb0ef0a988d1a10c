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

from collections.abc import Callable
from pathlib import Path

from siprtmp_bridge.media.encoder import AacEncoder
from siprtmp_bridge.media.pipeline import MediaPipeline
from siprtmp_bridge.rtmp.fanout import Fanout
from siprtmp_bridge.rtmp.publisher import RtmpPublisher, StateListener, StreamFormat
from siprtmp_bridge.rtmp.route import route_for
from siprtmp_bridge.supervision import Supervisor
from siprtmp_bridge.video.session import VideoSession
from siprtmp_bridge.video.slate import Slate
from siprtmp_bridge.video.status import VideoStatus
from siprtmp_contract.spec import BridgeSpec, Destination

#: How long the pipeline may take to drain, and then the publisher to send its queue.
FLUSH_SECONDS = 1.5


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
        self.slate = Slate() if spec.video.enabled and spec.video.when_absent == "slate" else None
        stream_format = StreamFormat(audio.sample_rate, audio.bitrate)

        def publisher(
            destination: Destination, name: str, on_state: StateListener, template: object
        ) -> RtmpPublisher:
            return RtmpPublisher(
                route_for(destination.publish_url, spec.rtmp_tls_verify),
                stream_format,
                on_state,
                spec.timeouts.rtmp_reconnect_seconds,
                supervisor,
                video=spec.video.enabled,
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
        self.encoder = AacEncoder(clock_rate, audio.sample_rate, audio.bitrate)
        self.pipeline = MediaPipeline(
            fifo_path, clock_rate, self.encoder, self.fanout, on_first_audio, supervisor
        )
        self.video: VideoSession | None = None

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
                self.slate,
            )

    def stop(self) -> VideoStatus | None:
        """Flush and close everything, in order; the video's last status, when there is video.
        pjsua's recorder must be closed first (that ends the FIFO's audio)."""
        video = self.video
        if video is not None:
            video.stop()
        self.pipeline.stop(FLUSH_SECONDS)
        self.fanout.finish(FLUSH_SECONDS)
        if video is None:
            if self.slate is not None:
                self.slate.close()
            return None
        last = video.snapshot()
        video.close()  # closes the slate too
        return last
