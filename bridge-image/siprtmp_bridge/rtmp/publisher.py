"""RTMP(S) publishing of encoded AAC packets, with reconnects that keep timestamps continuous.

Network writes can block for seconds when the server stalls, so they run on a thread of their
own behind a bounded queue: the encoder and pjsua's media clock never wait for the network.
While the server is unreachable, packets wait in the queue and, once it is full, the oldest are
dropped (counted; the timeline keeps running on the encoder's sample count), and publishing
resumes at the current timestamp on a fresh connection. A connection that stalls without failing
is dropped by the kernel after ``stall.STALL_SECONDS`` (rtmp/stall.py), and reconnected.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import av

from siprtmp_bridge.rtmp.backoff import backoff_delay
from siprtmp_bridge.rtmp.connect import CONNECT_TIMEOUT_SECONDS
from siprtmp_bridge.rtmp.flv import VideoTrackGate
from siprtmp_bridge.rtmp.route import RtmpRoute
from siprtmp_bridge.rtmp.stall import limit_stalls, socket_inodes
from siprtmp_bridge.supervision import Supervisor
from siprtmp_contract.states import StreamState
from siprtmp_contract.urls import rtmp_port

# The queue holds one burst of packets per item (what the encoder made of one pipeline read:
# one item rather than one per packet wakes this thread once a read, not once a packet) and one
# item per video frame, all in one queue: QUEUE_BURSTS pipeline reads (``BURST_SECONDS`` each)
# of audio beyond what the connection takes, and VIDEO_QUEUE_PACKETS frames more for a call with
# video, which its audio shares. Then the oldest are dropped (counted: stream.droppedPackets).
QUEUE_BURSTS = 20
VIDEO_QUEUE_PACKETS = 300
#: The stream counts as degraded for this long after the queue last dropped media.
DEGRADED_SECONDS = 2.0
#: The idle publisher still beats this often for its supervisor.
IDLE_BEAT_SECONDS = 1.0
# How far the muxer may hold one track back waiting for the other (FFmpeg's default, 10 s,
# would stall the live audio while a video track has nothing yet).
MAX_INTERLEAVE_MICROSECONDS = 200_000
#: For tests only: the stream's first timestamp, in milliseconds (normally 0). The RTMP
#: extended-timestamp boundary (0xFFFFFF ms) lies 4 h 39 m into a call; starting the stream
#: clock near it lets a test cross it in seconds. Both tracks move together.
STREAM_START_ENV = "SIPRTMP_TEST_STREAM_START_MS"


def muxer_options(environ: Mapping[str, str]) -> dict[str, str]:
    """The FLV muxer's options: the interleaving bound, and the test-only start offset."""
    options = {"max_interleave_delta": str(MAX_INTERLEAVE_MICROSECONDS)}
    start_ms = int(environ.get(STREAM_START_ENV) or 0)
    if start_ms:
        # FFmpeg adds it to every packet's timestamps (a duration in seconds).
        options["output_ts_offset"] = f"{start_ms / 1000:.3f}"
    return options


@dataclass(frozen=True)
class StreamFormat:
    sample_rate: int
    bitrate: int
    channels: int = 1


StateListener = Callable[[StreamState, int], None]
THREAD_NAME = "rtmp-publisher"


def thread_name(destination: int) -> str:
    """The publisher thread of a destination (0: the call's first) as the supervisor names it."""
    return THREAD_NAME if destination == 0 else f"{THREAD_NAME}-{destination}"


log = logging.getLogger(__name__)


def queue_items(video: bool) -> int:
    """The queue's capacity, in items, for a call with or without video."""
    return QUEUE_BURSTS + (VIDEO_QUEUE_PACKETS if video else 0)


class RtmpPublisher:
    """Owns the RTMP connection; reports state changes and bytes sent through ``on_state``."""

    def __init__(
        self,
        route: RtmpRoute,
        stream_format: StreamFormat,
        on_state: StateListener,
        reconnect_budget_seconds: float,
        supervisor: Supervisor,
        video: bool = False,
        video_template: Any = None,
        name: str = THREAD_NAME,
    ) -> None:
        """``video``: the call may publish video (the queue makes room for its frames);
        ``name``: its thread's, one per destination (``thread_name``)."""
        self.route = route
        self.format = stream_format
        self.on_state = on_state
        self.reconnect_budget = reconnect_budget_seconds
        self.bytes_sent = 0
        self.packets_dropped = 0
        self.reconnects = 0  # entries into RECONNECTING
        self.last_drop_at: float | None = None
        self._queue: queue.Queue[tuple[list[Any], bool] | None] = queue.Queue(
            maxsize=queue_items(video)
        )
        self._supervisor = supervisor
        self._name = name
        self._thread = threading.Thread(
            target=supervisor.supervised(name, self._run), name=name, daemon=True
        )
        self._container: Any = None
        self._stream: Any = None
        self._video_stream: Any = None
        # An input stream (the far end's, or the slate's) whose codec parameters the H.264
        # track copies; its owner keeps it open until ``finish``.
        self._video_template: Any = video_template
        self._video = VideoTrackGate()
        self._reopen = threading.Event()
        self._state = StreamState.PENDING
        self._stop = threading.Event()
        self.failure: str | None = None
        self._muxer_options = muxer_options(os.environ)

    def start(self) -> None:
        self._thread.start()

    def knows_extradata(self, extradata: bytes | None) -> None:
        """Parameter sets the stream already carried: a publisher that joins a live call sends
        them with its first keyframe, which need not bring them along."""
        if extradata is not None and self._video.extradata is None:
            self._video.extradata = extradata

    def add_video(self, template: Any) -> None:
        """Publish an H.264 track like ``template`` (an input stream, kept open by its owner
        until ``finish``) from now on. FLV declares its tracks in its header, so the stream is
        re-opened (timestamps continue) before the next packet goes out."""
        if self._video_template is None:
            self._video_template = template
            self._reopen.set()

    def submit_video(self, packet: Any) -> None:
        """Queue one H.264 packet."""
        self.submit([packet], video=True)

    def submit(self, packets: list[Any], video: bool = False) -> None:
        """Queue a burst; when the network is slower than real time the oldest are dropped."""
        if packets:
            self._enqueue((packets, video))

    def _enqueue(self, item: tuple[list[Any], bool] | None) -> None:
        """Never blocks: a full queue loses its oldest item, counted as dropped media."""
        while True:
            try:
                self._queue.put_nowait(item)
                return
            except queue.Full:
                try:
                    dropped = self._queue.get_nowait()
                except queue.Empty:
                    continue
                if dropped is not None:
                    self.packets_dropped += len(dropped[0])
                    self.last_drop_at = time.monotonic()

    def degraded(self, now: float) -> bool:
        """True while media is being dropped (within ``DEGRADED_SECONDS`` of the last drop)."""
        return self.last_drop_at is not None and now - self.last_drop_at < DEGRADED_SECONDS

    def finish(self, timeout: float) -> None:
        """Send what is queued, write the FLV trailer and close, in about ``timeout`` at most
        whatever the thread is doing. A thread that has ended (its reconnect budget was spent)
        is not waited for; one still blocked in a write when the time is up is a daemon left to
        the kernel's stall limit, and holds up nothing."""
        self.end_of_stream()
        self.close(time.monotonic() + timeout)

    def end_of_stream(self) -> None:
        """Nothing more will be queued: the thread closes the stream once it has sent the rest
        (several publishers are told first, then waited for together: ``close``)."""
        if self._thread.is_alive():
            self._enqueue(None)

    def close(self, deadline: float) -> None:
        """Wait until ``deadline`` (monotonic) for the queue to go out, then stop: the second
        half of ``finish``."""
        if self._thread.is_alive():
            self._thread.join(max(0.0, deadline - time.monotonic()))
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(0.5)
        self.route.close()

    def wait_connected(self, timeout: float) -> bool:
        """Connect before the call is placed, so the first audio packet goes out at once."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self._stop.is_set():
            if self._state is StreamState.PUBLISHING:
                return True
            if self._state is StreamState.FAILED:
                return False
            time.sleep(0.02)
        return self._state is StreamState.PUBLISHING

    @property
    def state(self) -> StreamState:
        return self._state

    def _set_state(self, state: StreamState) -> None:
        self._state = state
        self.on_state(state, self.bytes_sent)

    def _run(self) -> None:
        if not self._connect_with_backoff(StreamState.PENDING):
            return
        while True:
            self._supervisor.beat(self._name)
            try:
                item = self._queue.get(timeout=IDLE_BEAT_SECONDS)
            except queue.Empty:
                continue
            if item is None:
                self._close()
                self._set_state(StreamState.UNPUBLISHED)
                return
            if self._reopen.is_set():
                self._reopen.clear()
                self._close()
                self._open(CONNECT_TIMEOUT_SECONDS)  # on failure the write fails and reconnects
            packets, video = item
            for packet in packets:
                if not self._write(packet, video) and not self._connect_with_backoff(
                    StreamState.RECONNECTING
                ):
                    return

    def _write(self, packet: Any, video: bool = False) -> bool:
        if self._container is None:
            return False
        if video:
            if self._video_stream is None:
                return True  # video before the stream was re-opened with its track
            packet = self._video.admit(packet)
            if packet is None:
                return True
        try:
            packet.stream = self._video_stream if video else self._stream
            self._container.mux(packet)
        except (av.FFmpegError, OSError) as error:
            log.warning("RTMP write failed: %s", error)
            self._close()
            return False
        self._supervisor.beat(self._name)
        self.bytes_sent += packet.size
        if not video and self._video_stream is not None:
            return all(self._write(held, video=True) for held in self._video.audio_written())
        return True

    def _connect_with_backoff(self, waiting_state: StreamState) -> bool:
        if waiting_state is not self._state:
            if waiting_state is StreamState.RECONNECTING:
                self.reconnects += 1
            self._set_state(waiting_state)
        deadline = time.monotonic() + self.reconnect_budget
        attempt = 0
        while not self._stop.is_set():
            self._supervisor.beat(self._name)
            attempt += 1
            # An attempt never runs past the budget by more than a moment.
            error = self._open(min(CONNECT_TIMEOUT_SECONDS, max(0.5, deadline - time.monotonic())))
            if error is None:
                self._set_state(StreamState.PUBLISHING)
                return True
            if time.monotonic() >= deadline:
                self.failure = error
                self._set_state(StreamState.FAILED)
                return False
            self._stop.wait(backoff_delay(attempt))
        return False

    def _open(self, connect_timeout: float) -> str | None:
        """Open and handshake now (PyAV would otherwise connect on the first packet)."""
        try:
            url = self.route.open(connect_timeout)
            sockets_before = socket_inodes()
            container: Any = av.open(
                url,
                mode="w",
                format="flv",
                container_options=self._muxer_options,
            )
            stream: Any = container.add_stream("aac", rate=self.format.sample_rate)
            stream.codec_context.layout = "stereo" if self.format.channels == 2 else "mono"
            stream.codec_context.bit_rate = self.format.bitrate
            video_stream: Any = None
            if self._video_template is not None:
                # From a template: the stream is muxed only, no encoder is opened for it.
                video_stream = container.add_stream_from_template(self._video_template)
            container.start_encoding()
        except (av.FFmpegError, OSError) as error:
            return _describe(error)
        if not limit_stalls(rtmp_port(urlsplit(url)), sockets_before):
            log.warning("RTMP socket not found: stalls are not bounded")
        self._container, self._stream, self._video_stream = container, stream, video_stream
        self._video.connected()
        return None

    def _close(self) -> None:
        """Write the FLV trailer and close; on a dead socket this fails fast and is ignored."""
        container, self._container = self._container, None
        if container is None:
            return
        with contextlib.suppress(av.FFmpegError, OSError):
            container.close()


def _describe(error: Exception) -> str:
    strerror = getattr(error, "strerror", None) or str(error)
    return f"RTMP connection failed: {strerror}"
