"""One encoded stream, published to each of the call's destinations by a publisher of its own.

The call's audio is encoded once (and its video remuxed once); every packet is handed to each
destination's ``RtmpPublisher``: its own connection, reconnect budget, queue, stall limit and
RTMPS relay. Handing over never blocks, so a destination that fails or is black-holed only
fills its own queue; the others go on. The call sees one stream (``state``): on the air while
any destination is, failed only when every destination has failed.

FFmpeg's muxer takes a packet's data as it writes it (and rebases its timestamps), so a packet
goes to one publisher only: each further destination gets a copy, made before any of them is
queued. Copying an AAC packet costs a few microseconds; encoding it again would cost the call's
whole encoder.

Destinations may be added and removed while the call runs (``set_destinations``): a new one
connects on its own thread and joins the stream as a reconnect does (the AAC sequence header on
its connection, video from the next keyframe with the parameter sets the stream carries); a
removed one sends what it has queued and closes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import av

from siprtmp_bridge.rtmp.flv import extradata_of, with_extradata
from siprtmp_bridge.rtmp.publisher import RtmpPublisher, StateListener, thread_name
from siprtmp_contract.spec import Destination
from siprtmp_contract.states import StreamState

#: How often a source hands the fanout a burst (the call's audio, the slate's frames). Each
#: hand-off wakes each destination's publisher thread and passes the GIL between threads, which
#: costs more than the media it carries (docs/measurements.md, "Read the FIFO in bursts", "The
#: slate in bursts"); the stream's media leaves up to this much later (a CDN adds seconds).
BURST_SECONDS = 0.5

#: ``make(destination, thread name, listener, video template)``: a destination's publisher.
PublisherFactory = Callable[[Destination, str, StateListener, Any], RtmpPublisher]

#: The stream's state from its destinations', best first: on the air while any destination
#: is, failed only when all have failed (a call whose other destinations ended normally ends
#: unpublished, not failed).
_BEST_FIRST = (
    StreamState.PUBLISHING,
    StreamState.RECONNECTING,
    StreamState.PENDING,
    StreamState.UNPUBLISHED,
    StreamState.FAILED,
)


def aggregate_state(states: Sequence[StreamState]) -> StreamState:
    """The call's one stream state from its destinations' (at least one)."""
    return min(states, key=_BEST_FIRST.index) if states else StreamState.FAILED


@dataclass(frozen=True)
class DestinationSnapshot:
    """One destination as status and metrics show it: a number, never its key."""

    id: int  # in the order the destinations were added; 0 is rtmpUrl/rtmpStream's
    url: str  # rtmpUrl/***
    profile: str
    name: str | None  # destinations[].name: what tells two destinations of one host apart
    state: StreamState
    bytes_sent: int
    dropped_packets: int
    reconnects: int
    degraded: bool
    failure: str | None


@dataclass(frozen=True)
class _Outlet:
    id: int
    destination: Destination
    publisher: RtmpPublisher

    def snapshot(self, now: float) -> DestinationSnapshot:
        publisher = self.publisher
        return DestinationSnapshot(
            id=self.id,
            url=self.destination.redacted_url,
            profile=self.destination.profile,
            name=self.destination.name,
            state=publisher.state,
            bytes_sent=publisher.bytes_sent,
            dropped_packets=publisher.packets_dropped,
            reconnects=publisher.reconnects,
            degraded=publisher.degraded(now),
            failure=publisher.failure,
        )


def copy_packet(packet: Any) -> Any:
    """A packet of its own for one more destination: data, timestamps, flags, parameter sets."""
    copy = av.Packet(packet)
    copy.pts, copy.dts, copy.duration = packet.pts, packet.dts, packet.duration
    copy.time_base = packet.time_base
    copy.is_keyframe = packet.is_keyframe
    extradata = extradata_of(packet)
    if extradata is not None:
        with_extradata(copy, extradata)
    return copy


class Fanout:
    """The publishers of one call, behind the one publisher's interface the chain feeds."""

    def __init__(
        self,
        destinations: Sequence[Destination],
        make: PublisherFactory,
        on_state: StateListener,
        video_template: Any = None,
    ) -> None:
        """``on_state`` hears the stream's state (``aggregate_state``) and bytes on every
        change of any destination's state."""
        self._make = make
        self._on_state = on_state
        self._template = video_template
        self._extradata: bytes | None = None
        self._lock = threading.Lock()  # held while the list changes; readers take a copy
        self._changing = threading.Lock()  # one live change at a time, closing included
        self._next_id = 0
        self._started = False
        # Removed destinations still count (closing, then closed), so the stream's counters
        # never go back.
        self._closing: tuple[_Outlet, ...] = ()
        self._retired_bytes = 0
        self._retired_dropped = 0
        self._outlets: tuple[_Outlet, ...] = tuple(self._outlet(d) for d in destinations)

    # -- what the chain feeds ----------------------------------------------------------------

    def start(self) -> None:
        with self._lock:
            self._started = True
            for outlet in self._outlets:
                outlet.publisher.start()

    def submit(self, packets: list[Any], video: bool = False) -> None:
        """Queue a burst on every destination (never blocks)."""
        if not packets:
            return
        outlets = self._outlets
        if video and self._extradata is None:
            self._extradata = next(filter(None, map(extradata_of, packets)), None)
        copies = [[copy_packet(p) for p in packets] for _ in outlets[1:]]
        for outlet, burst in zip(outlets, [packets, *copies], strict=True):
            outlet.publisher.submit(burst, video)

    def submit_video(self, packet: Any) -> None:
        self.submit([packet], video=True)

    def add_video(self, template: Any) -> None:
        """An H.264 track like ``template`` from now on, on every destination."""
        with self._lock:
            if self._template is None:
                self._template = template
            for outlet in self._outlets:
                outlet.publisher.add_video(template)

    def finish(self, timeout: float) -> None:
        """Every destination sends its queue and closes, all within about ``timeout``."""
        with self._lock:
            outlets = self._outlets
        self._close(outlets, timeout)

    # -- what the call sees ------------------------------------------------------------------

    @property
    def state(self) -> StreamState:
        return aggregate_state([outlet.publisher.state for outlet in self._outlets])

    @property
    def failure(self) -> str | None:
        """Why the stream failed: the one destination's reason, or each destination's."""
        outlets = self._outlets
        if len(outlets) == 1:
            return outlets[0].publisher.failure
        failures = [
            f"destination {o.id} ({o.destination.redacted_url}): {o.publisher.failure}"
            for o in outlets
            if o.publisher.failure is not None
        ]
        return "; ".join(failures) or None

    @property
    def bytes_sent(self) -> int:
        with self._lock:  # a removed destination moves from one sum to the other under it
            counted = (*self._outlets, *self._closing)
            return self._retired_bytes + sum(o.publisher.bytes_sent for o in counted)

    @property
    def packets_dropped(self) -> int:
        with self._lock:
            counted = (*self._outlets, *self._closing)
            return self._retired_dropped + sum(o.publisher.packets_dropped for o in counted)

    def degraded(self, now: float) -> bool:
        return any(outlet.publisher.degraded(now) for outlet in self._outlets)

    def wait_connected(self, timeout: float) -> bool:
        """Until a destination publishes (True) or all have failed (False), ``timeout`` at most."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.state
            if state is StreamState.PUBLISHING or state is StreamState.FAILED:
                return state is StreamState.PUBLISHING
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)

    def snapshot(self, now: float) -> tuple[DestinationSnapshot, ...]:
        return tuple(outlet.snapshot(now) for outlet in self._outlets)

    # -- a live call's changes ---------------------------------------------------------------

    def set_destinations(self, more: Sequence[Destination], timeout: float) -> None:
        """The call's destinations are now the first one and ``more``: new ones are opened,
        those no longer listed send their queue and close (within ``timeout``). A destination
        is known by its publish URL; listed twice, it is published to once (a kept one is shown
        under its new listing's name; its connection goes on)."""
        with self._changing:
            with self._lock:
                first, *rest = self._outlets
                kept = {o.destination.publish_url: o for o in rest}
                wanted: dict[str, _Outlet] = {first.destination.publish_url: first}
                for destination in more:
                    url = destination.publish_url
                    if url in wanted:
                        continue
                    old = kept.pop(url, None)
                    wanted[url] = (
                        self._outlet(destination)
                        if old is None
                        else _Outlet(old.id, destination, old.publisher)
                    )
                removed = tuple(kept.values())
                running = {id(o.publisher) for o in self._outlets}
                added = [o for o in wanted.values() if id(o.publisher) not in running]
                self._closing += removed
                self._outlets = tuple(wanted.values())
                if self._started:
                    for outlet in added:
                        outlet.publisher.start()
            self._close(removed, timeout)
            with self._lock:
                for outlet in removed:
                    self._retired_bytes += outlet.publisher.bytes_sent
                    self._retired_dropped += outlet.publisher.packets_dropped
                self._closing = tuple(o for o in self._closing if o not in removed)
        self._changed()

    def _outlet(self, destination: Destination) -> _Outlet:
        """A destination's publisher (not started), numbered in the order of addition."""
        number, self._next_id = self._next_id, self._next_id + 1
        publisher = self._make(
            destination, thread_name(number), lambda *_: self._changed(), self._template
        )
        publisher.knows_extradata(self._extradata)
        return _Outlet(number, destination, publisher)

    def _changed(self) -> None:
        self._on_state(self.state, self.bytes_sent)

    @staticmethod
    def _close(outlets: Sequence[_Outlet], timeout: float) -> None:
        for outlet in outlets:
            outlet.publisher.end_of_stream()
        deadline = time.monotonic() + timeout
        for outlet in outlets:
            outlet.publisher.close(deadline)
