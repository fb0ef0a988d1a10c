"""A still picture as an H.264 track, for CDNs that refuse audio-only streams.

It is encoded once per call (a one-second loop: one keyframe and nine tiny P-frames at 10
frames/s, about 2 kB, 0.2 CPU-s of libx264 at start-up) and then sent over and over: no
encoder runs during the call. Its raw H.264 is also opened as an input, whose stream is the
FLV track's template, so the stream has its video track from the first packet on.
"""

from __future__ import annotations

import io
from fractions import Fraction
from typing import Any

import av

from siprtmp_bridge.rtmp.flv import with_extradata
from siprtmp_bridge.video.h264 import parameter_sets

WIDTH, HEIGHT = 640, 360
FRAMES_PER_SECOND = 10
BACKGROUND = (0x20, 0x30, 0x40)  # dark slate blue
BAR = (0xF0, 0xA0, 0x20)  # an amber bar across the middle: visibly a placeholder


def encode_slate() -> bytes:
    """One second of the still picture as Annex B H.264 (baseline: every player decodes it)."""
    output = io.BytesIO()
    container: Any = av.open(output, "w", format="h264")
    stream = container.add_stream("libx264", rate=FRAMES_PER_SECOND)
    stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    stream.codec_context.options = {
        "preset": "veryfast",
        "tune": "stillimage",
        "profile": "baseline",
        "x264-params": f"keyint={FRAMES_PER_SECOND}:min-keyint={FRAMES_PER_SECOND}"
        ":scenecut=0:repeat-headers=1",
    }
    picture = _picture()
    for index in range(FRAMES_PER_SECOND):
        picture.pts = index
        for packet in stream.encode(picture):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)
    container.close()
    return output.getvalue()


def _picture() -> Any:
    """The slate in YUV 4:2:0, drawn plane by plane (no numpy in the bridge process)."""
    frame = av.VideoFrame(WIDTH, HEIGHT, "rgb24")
    row = bytes(BACKGROUND) * WIDTH
    bar_row = (
        bytes(BACKGROUND) * (WIDTH // 4)
        + bytes(BAR) * (WIDTH // 2)
        + bytes(BACKGROUND) * (WIDTH - WIDTH // 4 - WIDTH // 2)
    )
    rows = [bar_row if HEIGHT * 5 // 12 <= y < HEIGHT * 7 // 12 else row for y in range(HEIGHT)]
    plane = frame.planes[0]
    stride = plane.line_size
    padding = bytes(stride - WIDTH * 3)
    plane.update(b"".join(r + padding for r in rows))
    return frame.reformat(format="yuv420p")


class Slate:
    """The encoded loop, its frames, and the input stream the FLV track is modelled on."""

    def __init__(self) -> None:
        container: Any = av.open(io.BytesIO(encode_slate()), format="h264")
        self._input = container
        self.stream: Any = container.streams.video[0]
        self.frames = [bytes(p) for p in container.demux(self.stream) if p.size]
        self.extradata = parameter_sets(self.frames[0])
        self.sent = 0

    def next_packet(self, milliseconds: int) -> Any:
        """The loop's next frame at stream time ``milliseconds``; keyframes carry the
        parameter sets (the muxer writes a sequence header only when they change)."""
        index = self.sent % len(self.frames)
        self.sent += 1
        packet = av.Packet(self.frames[index])
        packet.is_keyframe = index == 0
        packet.pts = packet.dts = milliseconds
        packet.time_base = Fraction(1, 1000)
        if index == 0 and self.extradata is not None:
            with_extradata(packet, self.extradata)
        return packet

    def close(self) -> None:
        self._input.close()
