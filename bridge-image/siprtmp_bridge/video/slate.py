"""A still picture as an H.264 track, for CDNs that refuse audio-only streams.

It is encoded once per call (a loop of one keyframe interval: one keyframe and P-frames of a few
bytes at 10 frames/s, a few kB; its cost is libx264's at start-up: docs/measurements.md, "The
slate on an audio call") and then sent over and over: no encoder runs during the call. Under a
profile asking for constant bitrate (Twitch) the loop is encoded CBR: x264's filler data makes
each frame its share of the rate. Its raw H.264 is also opened as an input, whose stream is the
FLV track's template, so the stream has its video track from the first packet on. The picture
is the built-in card or the user's image (``video.slate``), with a line of text (the call's
title) across its lower part.
"""

from __future__ import annotations

import io
from fractions import Fraction
from typing import Any

import av

from siprtmp_bridge.rtmp.flv import with_extradata
from siprtmp_bridge.video.font import GLYPH_HEIGHT, text_mask
from siprtmp_bridge.video.h264 import parameter_sets

WIDTH, HEIGHT = 640, 360
FRAMES_PER_SECOND = 10
#: The keyframe interval CDNs ask for (Facebook, Twitch: 2 s), shorter only when the spec's
#: ``video.maxKeyframeIntervalSeconds`` is.
KEYFRAME_SECONDS = 2
BACKGROUND = (0x20, 0x30, 0x40)  # dark slate blue
BAR = (0xF0, 0xA0, 0x20)  # an amber bar across the middle: visibly a placeholder
TEXT = (0xFF, 0xFF, 0xFF)
TEXT_BAND = (0x10, 0x10, 0x10)  # behind the text, so it reads on any image
#: The text band: its top row and height; the text's largest scale (pixels per font pixel).
TEXT_TOP, TEXT_BAND_HEIGHT, TEXT_SCALE = 270, 60, 4
TEXT_MARGIN = 20


def slate_keyframe_seconds(max_keyframe_interval_seconds: int) -> int:
    return max(1, min(KEYFRAME_SECONDS, max_keyframe_interval_seconds))


def x264_params(keyframe_seconds: int, bitrate: int | None) -> str:
    """x264's settings: a fixed GOP; with ``bitrate`` (bits/s), constant bitrate as Twitch
    asks (HRD CBR: the rate and its cap the same, a one-second buffer, filler data making up
    what a still picture does not need), which the loop keeps since it repeats a CBR stretch
    that starts and ends on a GOP."""
    frames = FRAMES_PER_SECOND * keyframe_seconds
    params = f"keyint={frames}:min-keyint={frames}:scenecut=0:repeat-headers=1"
    if bitrate is None:
        return params
    kbps = bitrate // 1000
    return f"{params}:nal-hrd=cbr:bitrate={kbps}:vbv-maxrate={kbps}:vbv-bufsize={kbps}"


def encode_slate(
    picture: Any, keyframe_seconds: int = KEYFRAME_SECONDS, bitrate: int | None = None
) -> bytes:
    """One keyframe interval of the picture as Annex B H.264 (baseline: every player decodes
    it), a keyframe first; at a constant ``bitrate`` (bits/s) when one is given."""
    frames = FRAMES_PER_SECOND * keyframe_seconds
    output = io.BytesIO()
    container: Any = av.open(output, "w", format="h264")
    stream = container.add_stream("libx264", rate=FRAMES_PER_SECOND)
    stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    stream.codec_context.options = {
        "preset": "veryfast",
        "tune": "stillimage",
        "profile": "baseline",
        "x264-params": x264_params(keyframe_seconds, bitrate),
    }
    for index in range(frames):
        picture.pts = index
        for packet in stream.encode(picture):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)
    container.close()
    return output.getvalue()


def slate_picture(text: str = "", image: str | None = None) -> Any:
    """The slate in YUV 4:2:0: the user's image scaled to the slate's size (any format FFmpeg
    decodes; a PNG or a JPEG) or the built-in card, and the text over it. Drawn as RGB rows
    (no numpy in the bridge process)."""
    if image is None:
        rows = _card_rows()
    else:
        with av.open(image) as container:
            first = next(container.decode(video=0))
            scaled = first.reformat(width=WIDTH, height=HEIGHT, format="rgb24")
        plane = scaled.planes[0]
        data = bytes(plane)
        rows = [
            bytearray(data[y * plane.line_size : y * plane.line_size + WIDTH * 3])
            for y in range(HEIGHT)
        ]
    if text:
        _draw_text(rows, text)
    frame = av.VideoFrame(WIDTH, HEIGHT, "rgb24")
    plane = frame.planes[0]
    padding = bytes(plane.line_size - WIDTH * 3)
    plane.update(b"".join(bytes(row) + padding for row in rows))
    return frame.reformat(format="yuv420p")


def _card_rows() -> list[bytearray]:
    row = bytes(BACKGROUND) * WIDTH
    bar_row = (
        bytes(BACKGROUND) * (WIDTH // 4)
        + bytes(BAR) * (WIDTH // 2)
        + bytes(BACKGROUND) * (WIDTH - WIDTH // 4 - WIDTH // 2)
    )
    return [
        bytearray(bar_row if HEIGHT * 5 // 12 <= y < HEIGHT * 7 // 12 else row)
        for y in range(HEIGHT)
    ]


def _draw_text(rows: list[bytearray], text: str) -> None:
    """The text, centred in a dark band, as large as fits (TEXT_SCALE at most)."""
    mask = text_mask(text)
    columns = len(mask[0])
    scale = max(1, min(TEXT_SCALE, (WIDTH - 2 * TEXT_MARGIN) // columns))
    for y in range(TEXT_TOP, TEXT_TOP + TEXT_BAND_HEIGHT):
        rows[y][:] = bytes(TEXT_BAND) * WIDTH
    left = (WIDTH - columns * scale) // 2
    top = TEXT_TOP + (TEXT_BAND_HEIGHT - GLYPH_HEIGHT * scale) // 2
    lit = bytes(TEXT) * scale
    for mask_y, mask_row in enumerate(mask):
        spans = [left + x * scale for x, cell in enumerate(mask_row) if cell == "#"]
        for y in range(top + mask_y * scale, top + (mask_y + 1) * scale):
            row = rows[y]
            for x in spans:
                row[x * 3 : (x + scale) * 3] = lit


class Slate:
    """The encoded loop, its frames, and the input stream the FLV track is modelled on."""

    def __init__(
        self,
        text: str = "",
        image: str | None = None,
        keyframe_seconds: int = KEYFRAME_SECONDS,
        bitrate: int | None = None,
    ) -> None:
        encoded = encode_slate(slate_picture(text, image), keyframe_seconds, bitrate)
        container: Any = av.open(io.BytesIO(encoded), format="h264")
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
