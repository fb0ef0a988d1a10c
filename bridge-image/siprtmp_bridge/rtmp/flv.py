"""The H.264 track of the FLV stream: parameter sets on every connection, keyframe first.

FLV carries H.264 parameter sets as a sequence header tag, which FFmpeg's FLV muxer writes when
a packet brings ``new_extradata`` side data. Each RTMP connection (the first, and every
reconnect) starts a fresh stream for the server, so it must open with the parameter sets and a
keyframe: a decoder joining at a P-frame shows garbage until the next IDR.
"""

from __future__ import annotations

from typing import Any, Final, Literal

from av.packet import PacketSideData, packet_sidedata_type_from_literal

NEW_EXTRADATA: Final[Literal["new_extradata"]] = "new_extradata"
# PyAV's stub omits the constructor's (type, size) arguments.
_SideData: Any = PacketSideData


def with_extradata(packet: Any, extradata: bytes) -> Any:
    """Attach parameter sets (Annex B) to a packet, for the muxer to write a sequence header."""
    side = _SideData(packet_sidedata_type_from_literal(NEW_EXTRADATA), len(extradata))
    side.update(extradata)
    packet.set_sidedata(side)
    return packet


def extradata_of(packet: Any) -> bytes | None:
    """The parameter sets a keyframe carries (only keyframes do: PyAV's side-data lookup costs
    more than the rest of a packet's handling, so other packets are not asked)."""
    if not packet.is_keyframe or not packet.has_sidedata(NEW_EXTRADATA):
        return None
    return bytes(packet.get_sidedata(NEW_EXTRADATA))


# Video that comes before the stream's first audio packet waits for it (up to this many frames).
HELD_PACKETS = 30


class VideoTrackGate:
    """Per connection: drop video until a keyframe, and give that keyframe the parameter sets.

    Before the stream's very first audio packet, video is held back: the AAC encoder stamps its
    first packet before zero (its priming) and the muxer shifts the whole stream by the first
    packet's timestamp, so a video packet first would leave that audio packet negative (EINVAL).
    """

    def __init__(self) -> None:
        self.extradata: bytes | None = None
        self._sent_extradata: bytes | None = None
        self._last_dts: int | None = None
        self._audio_written = False
        self._held: list[Any] = []
        self.dropped = 0

    def connected(self) -> None:
        self._sent_extradata = None

    def audio_written(self) -> list[Any]:
        """Audio has gone out: the video held until then, to be admitted again in order."""
        if self._audio_written:
            return []
        self._audio_written = True
        held, self._held = self._held, []
        return held

    def admit(self, packet: Any) -> Any | None:
        """The packet to mux now (parameter sets attached when needed), or None: dropped, or
        held until ``audio_written``."""
        if not self._audio_written:
            if len(self._held) < HELD_PACKETS:
                self._held.append(packet)
            return None
        carried = extradata_of(packet)
        if carried is not None:
            self.extradata = carried
        if self._sent_extradata is None:
            if not packet.is_keyframe or self.extradata is None:
                self.dropped += 1
                return None
            if carried is None:
                with_extradata(packet, self.extradata)
            self._sent_extradata = self.extradata
        elif carried is not None:
            self._sent_extradata = carried
        # Two sources (far end, slate) meet here; FLV needs strictly increasing timestamps.
        if self._last_dts is not None and packet.dts is not None and packet.dts <= self._last_dts:
            packet.pts = packet.dts = self._last_dts + 1
        self._last_dts = packet.dts
        return packet
