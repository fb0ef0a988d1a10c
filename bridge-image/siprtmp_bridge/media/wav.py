"""Parse the RIFF/WAVE header pjmedia's WAV writer puts at the head of the audio FIFO."""

from __future__ import annotations

import struct
from dataclasses import dataclass

# pjmedia writes a canonical 44-byte header: RIFF, fmt (16 bytes, PCM), data.
WAV_HEADER_SIZE = 44


@dataclass(frozen=True)
class PcmFormat:
    sample_rate: int
    channels: int
    bits_per_sample: int


class WavHeaderError(ValueError):
    pass


def parse_wav_header(header: bytes) -> PcmFormat:
    """Read the PCM format; anything but 16-bit PCM would mean pjsua was configured wrongly."""
    if len(header) < WAV_HEADER_SIZE or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
        raise WavHeaderError("audio FIFO does not start with a RIFF/WAVE header")
    fmt_tag, channels, rate, _byte_rate, _align, bits = struct.unpack("<HHIIHH", header[20:36])
    if header[12:16] != b"fmt " or fmt_tag != 1 or bits != 16 or header[36:40] != b"data":
        raise WavHeaderError("audio FIFO is not 16-bit PCM WAV")
    return PcmFormat(sample_rate=rate, channels=channels, bits_per_sample=bits)
