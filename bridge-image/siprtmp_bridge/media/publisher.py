"""RTMP(S) publishing of encoded AAC packets, with reconnects that keep timestamps continuous.

Network writes can block for seconds when the server stalls, so they run on a thread of their
own behind a bounded queue: the encoder and pjsua's media clock never wait for the network.
While the server is unreachable, packets are dropped (the timeline keeps running on the encoder's
sample count), and publishing resumes at the current timestamp on a fresh connection.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import av

from siprtmp_bridge.media.backoff import backoff_delay
from siprtmp_bridge.status import StreamState

# The queue holds one burst of packets per item (what the encoder made of one read, ~125 ms;
# one item rather than one per packet wakes this thread a few times a second, not 47): this
# many covers ~10 s of a stalled connection.
QUEUE_BURSTS = 80


@dataclass(frozen=True)
class StreamFormat:
    sample_rate: int
    bitrate: int


StateListener = Callable[[StreamState, int], None]


class RtmpPublisher:
    """Owns the RTMP connection; reports state changes and bytes sent through ``on_state``."""

    def __init__(
        self,
        url: str,
        stream_format: StreamFormat,
        on_state: StateListener,
        reconnect_budget_seconds: float,
    ) -> None:
        self.url = url
        self.format = stream_format
        self.on_state = on_state
        self.reconnect_budget = reconnect_budget_seconds
        self.bytes_sent = 0
        self.packets_dropped = 0
        self._queue: queue.Queue[list[Any] | None] = queue.Queue(maxsize=QUEUE_BURSTS)
        self._thread = threading.Thread(target=self._run, name="rtmp-publisher", daemon=True)
        self._container: Any = None
        self._stream: Any = None
        self._state = StreamState.PENDING
        self._stop = threading.Event()
        self.failure: str | None = None

    def start(self) -> None:
        self._thread.start()

    def submit(self, packets: list[Any]) -> None:
        """Queue a burst; when the network is slower than real time the oldest are dropped."""
        if not packets:
            return
        while True:
            try:
                self._queue.put_nowait(packets)
                return
            except queue.Full:
                try:
                    dropped = self._queue.get_nowait()
                    self.packets_dropped += len(dropped or ())
                except queue.Empty:
                    pass

    def finish(self, timeout: float) -> None:
        """Send what is queued, write the FLV trailer and close; bounded by ``timeout``."""
        self._queue.put(None)
        self._thread.join(timeout)
        self._stop.set()
        self._thread.join(0.5)

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
            packets = self._queue.get()
            if packets is None:
                self._close()
                self._set_state(StreamState.UNPUBLISHED)
                return
            for packet in packets:
                if not self._write(packet) and not self._connect_with_backoff(
                    StreamState.RECONNECTING
                ):
                    return

    def _write(self, packet: Any) -> bool:
        try:
            packet.stream = self._stream
            self._container.mux(packet)
        except (av.FFmpegError, OSError):
            self._close()
            return False
        self.bytes_sent += packet.size
        return True

    def _connect_with_backoff(self, waiting_state: StreamState) -> bool:
        if waiting_state is not self._state:
            self._set_state(waiting_state)
        deadline = time.monotonic() + self.reconnect_budget
        attempt = 0
        while not self._stop.is_set():
            attempt += 1
            error = self._open()
            if error is None:
                self._set_state(StreamState.PUBLISHING)
                return True
            if time.monotonic() >= deadline:
                self.failure = error
                self._set_state(StreamState.FAILED)
                return False
            self._stop.wait(backoff_delay(attempt))
        return False

    def _open(self) -> str | None:
        """Open and handshake now (PyAV would otherwise connect on the first packet)."""
        try:
            # PyAV opens output I/O without options or an interrupt callback: a connect to a
            # black-holed host blocks in the kernel, which is why this runs on its own thread.
            container: Any = av.open(self.url, mode="w", format="flv")
            stream: Any = container.add_stream("aac", rate=self.format.sample_rate)
            stream.codec_context.layout = "mono"
            stream.codec_context.bit_rate = self.format.bitrate
            container.start_encoding()
        except (av.FFmpegError, OSError) as error:
            return _describe(error)
        self._container, self._stream = container, stream
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
