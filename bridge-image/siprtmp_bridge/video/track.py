"""One H.264 track, two sources: the far end's video when it flows, the slate otherwise.

Switching happens only at a keyframe that carries its parameter sets: a decoder fed the other
source's P-frames would show garbage. The far end's video takes over at its first keyframe;
when it has sent nothing for ``live_timeout`` seconds (it stopped, put the call on hold, never
sent any), the slate comes back, starting with its own keyframe.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from siprtmp_bridge.rtmp.fanout import BURST_SECONDS
from siprtmp_bridge.rtmp.flv import extradata_of, with_extradata
from siprtmp_bridge.supervision import Supervisor
from siprtmp_bridge.video.slate import FRAMES_PER_SECOND, Slate

LIVE_TIMEOUT_SECONDS = 2.0
THREAD_NAME = "video-slate"


class SlatedTrack:
    def __init__(
        self,
        slate: Slate,
        submit: Callable[[Any], None],
        stream_seconds_at: Callable[[float], float],
        supervisor: Supervisor,
        live_timeout: float = LIVE_TIMEOUT_SECONDS,
    ) -> None:
        self.slate = slate
        self.submit = submit
        self.stream_seconds_at = stream_seconds_at
        self.live_timeout = live_timeout
        self.live = False
        self.live_last_at = 0.0
        self.live_extradata: bytes | None = None
        self.slate_frames = 0
        self.switches = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._supervisor = supervisor
        self._thread = threading.Thread(
            target=supervisor.supervised(THREAD_NAME, self._run), name=THREAD_NAME, daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(2.0)

    def live_packet(self, packet: Any) -> None:
        """A frame of the far end's video (from the receiver's thread)."""
        carried = extradata_of(packet)
        with self._lock:
            if carried is not None:
                self.live_extradata = carried
            if not self.live:
                if not packet.is_keyframe or self.live_extradata is None:
                    return
                if carried is None:
                    with_extradata(packet, self.live_extradata)
                self.live = True
                self.switches += 1
            self.live_last_at = time.monotonic()
            self.submit(packet)

    def _run(self) -> None:
        """Every ``BURST_SECONDS``, the slate's frames due since the last round, each stamped
        with its own moment: two wake-ups a second instead of ten (each costs this thread and
        the publisher's more than the frame; docs/measurements.md, "The slate in bursts"). The
        publisher, woken by the first frame, finds the others queued behind it. The first
        frame, a keyframe, goes out at once."""
        interval = 1.0 / FRAMES_PER_SECOND
        next_at = time.monotonic()  # when the next slate frame is due
        while not self._stop.is_set():
            self._supervisor.beat(THREAD_NAME)
            now = time.monotonic()
            due = []
            while next_at <= now:
                due.append(next_at)
                next_at += interval
            with self._lock:
                if self.live and now - self.live_last_at > self.live_timeout:
                    self.live = False
                    self.switches += 1
                    self.slate.sent = 0  # back to the slate at its keyframe
                if not self.live:
                    for moment in due:
                        milliseconds = round(self.stream_seconds_at(moment) * 1000)
                        self.submit(self.slate.next_packet(milliseconds))
                    self.slate_frames += len(due)
            self._stop.wait(BURST_SECONDS)
