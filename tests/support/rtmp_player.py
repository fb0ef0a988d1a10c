"""A viewer of a live stream at nginx-rtmp: every packet's track and timestamp as the server
sends them on (unlike its recordings, which nginx-rtmp starts at 0)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import av


@dataclass
class RtmpPlayer:
    url: str
    #: (track kind, decoding timestamp in ms), in arrival order.
    packets: list[tuple[str, int]] = field(default_factory=list)
    error: str | None = None

    def __post_init__(self) -> None:
        self._thread = threading.Thread(target=self._play, daemon=True)

    def start(self) -> RtmpPlayer:
        """Play from now: nginx-rtmp holds a viewer of a stream not yet published until it is."""
        self._thread.start()
        return self

    def join(self, timeout: float) -> RtmpPlayer:
        """Wait for the stream to end (its publisher gone, the viewer's read times out)."""
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the viewer did not see the stream end"
        return self

    def times(self, kind: str) -> list[int]:
        return [ms for track, ms in self.packets if track == kind]

    def _play(self) -> None:
        try:
            with av.open(self.url, options={"rtmp_live": "live"}, timeout=(30.0, 5.0)) as stream:
                for packet in stream.demux():
                    if packet.dts is not None and packet.time_base is not None:
                        ms = round(float(packet.dts * packet.time_base) * 1000)
                        self.packets.append((packet.stream.type, ms))
        except (av.FFmpegError, OSError, EOFError) as error:  # the publisher left
            self.error = str(error)
