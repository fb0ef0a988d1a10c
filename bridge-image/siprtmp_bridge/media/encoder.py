"""PCM → AAC with PyAV: resampling and encoding stay in FFmpeg's C code, one call per burst."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import av

AAC_FRAME_SAMPLES = 1024


def layout(channels: int) -> str:
    """FFmpeg's name of the published audio's channel layout."""
    return "stereo" if channels == 2 else "mono"


class AacEncoder:
    """Encodes mono 16-bit PCM at ``input_rate`` into AAC at ``output_rate``, mono or stereo
    (``channels`` 2: the call's audio at full level on both channels).

    Timestamps come from the count of samples fed in, so the encoded timeline is exactly as long
    as the audio (including inserted silence), whatever the RTMP connection does meanwhile.
    """

    def __init__(self, input_rate: int, output_rate: int, bitrate: int, channels: int = 1) -> None:
        self.codec: Any = av.CodecContext.create("aac", "w")
        self.codec.sample_rate = output_rate
        self.codec.layout = layout(channels)
        self.codec.format = "fltp"
        self.codec.bit_rate = bitrate
        self.codec.time_base = Fraction(1, output_rate)
        self.codec.open()
        self.input_rate = input_rate
        self.channels = channels
        self.samples_in = 0
        self.frames_encoded = 0

    def encode(self, pcm: bytes) -> list[Any]:
        """Feed one burst of 16-bit little-endian samples; returns the AAC packets now ready.

        The bytes go straight into the frame's buffer: no per-sample work in Python, and no
        numpy in the bridge process (it would cost 20 MiB and 0.15 CPU-s to import). PyAV's
        encoder converts the frame itself (one FFmpeg filter graph resamples to the encoder's
        rate and format and cuts the 1024-sample AAC frames): a resampler of our own in front
        of it would be a second graph doing half of that work again. Stereo is the same bytes
        in both planes of a planar frame: FFmpeg's mono-to-stereo mix would lower each channel
        by 3 dB.
        """
        samples = len(pcm) // 2
        if samples == 0:
            return []
        planar = "s16p" if self.channels > 1 else "s16"
        frame = av.AudioFrame(format=planar, layout=layout(self.channels), samples=samples)
        for plane in frame.planes:
            plane.update(pcm)
        frame.sample_rate = self.input_rate
        frame.pts = self.samples_in
        frame.time_base = Fraction(1, self.input_rate)
        self.samples_in += samples
        return self._counted(self.codec.encode(frame))

    def flush(self) -> list[Any]:
        """Drain the resampler and the encoder at the end of the stream."""
        return self._counted(self.codec.encode(None))

    def _counted(self, packets: list[Any]) -> list[Any]:
        self.frames_encoded += len(packets)
        return packets

    @property
    def extradata(self) -> bytes | None:
        data: bytes | None = self.codec.extradata
        return data
