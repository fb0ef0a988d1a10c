"""Decode a published stream and measure its tone: the proof that call audio arrived."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import av
import numpy as np


@dataclass(frozen=True)
class ToneMeasurement:
    """The loudest frequency over the audible part of the stream, and how long that part is."""

    frequency_hz: float
    tone_seconds: float
    total_seconds: float
    sample_rate: int
    codec: str


def dominant_frequency(samples: np.ndarray[Any, Any], sample_rate: int) -> float:
    """The strongest frequency, interpolated between FFT bins (a Hann window keeps leakage low)."""
    if samples.size < 16:
        return 0.0
    windowed = samples * np.hanning(samples.size)
    spectrum = np.abs(np.fft.rfft(windowed))
    spectrum[0] = 0.0
    peak = int(np.argmax(spectrum))
    if 0 < peak < spectrum.size - 1:
        left, centre, right = np.log(spectrum[peak - 1 : peak + 2] + 1e-12)
        denominator = left - 2 * centre + right
        offset = 0.5 * (left - right) / denominator if denominator else 0.0
    else:
        offset = 0.0
    return float((peak + offset) * sample_rate / samples.size)


# RMS (full scale 1.0) above which a 20 ms window counts as audible: about -34 dBFS.
AUDIBLE_RMS = 0.02


WINDOW_SECONDS = 0.02


def _windows(samples: np.ndarray[Any, Any], sample_rate: int) -> np.ndarray[Any, Any]:
    """``samples`` cut into 20 ms windows, as rows (a partial last window is left out)."""
    window = max(1, int(sample_rate * WINDOW_SECONDS))
    return samples[: samples.size - samples.size % window].reshape(-1, window)


def _audible(windows: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    return np.asarray(np.sqrt(np.mean(windows**2, axis=1)) > AUDIBLE_RMS)


def audible_windows(samples: np.ndarray[Any, Any], sample_rate: int) -> np.ndarray[Any, Any]:
    """The 20 ms windows of ``samples`` louder than ``AUDIBLE_RMS``, as rows."""
    windows = _windows(samples, sample_rate)
    return np.asarray(windows[_audible(windows)])


def silent_gaps(samples: np.ndarray[Any, Any], sample_rate: int) -> list[tuple[float, float]]:
    """(start, length) in seconds of each inaudible stretch between the first and the last
    audible window: the holes in a tone that should be continuous (the envelope, in 20 ms
    steps, so a gap shorter than one window may go unseen)."""
    loud = _audible(_windows(samples, sample_rate))
    heard = np.flatnonzero(loud)
    gaps: list[tuple[float, float]] = []
    if heard.size < 2:
        return gaps
    for before, after in itertools.pairwise(heard):
        if after - before > 1:
            gaps.append(
                (float(before + 1) * WINDOW_SECONDS, float(after - before - 1) * WINDOW_SECONDS)
            )
    return gaps


def measure_tone(samples: np.ndarray[Any, Any], sample_rate: int, codec: str) -> ToneMeasurement:
    audible = audible_windows(samples, sample_rate)
    return ToneMeasurement(
        frequency_hz=dominant_frequency(audible.reshape(-1), sample_rate),
        tone_seconds=audible.size / sample_rate,
        total_seconds=samples.size / sample_rate,
        sample_rate=sample_rate,
        codec=codec,
    )


def decode_audio(
    source: str, options: dict[str, str] | None = None, timeout: float | None = None
) -> tuple[np.ndarray[Any, Any], int, str]:
    """All audio of a file or URL as mono float samples, with its rate and codec name.

    A live source (an RTMP publisher we listen for) ends with an I/O error when the publisher
    disconnects: after audio has been decoded, that is the end of the stream, not a failure.
    """
    chunks: list[np.ndarray[Any, Any]] = []
    with av.open(source, options=options or {}, timeout=timeout) as container:
        stream = container.streams.audio[0]
        codec = stream.codec_context.name
        rate = int(stream.codec_context.sample_rate or stream.rate)
        try:
            for frame in container.decode(stream):
                chunks.append(_mono_float(frame))
        except av.error.OSError:
            if not chunks:
                raise
    samples = np.concatenate(chunks) if chunks else np.zeros(0)
    return samples, rate, codec


def _mono_float(frame: Any) -> np.ndarray[Any, Any]:
    data = frame.to_ndarray().astype(np.float64)
    if frame.format.name in ("s16", "s16p"):
        data /= 32768.0
    if frame.format.is_planar:
        return np.asarray(data.mean(axis=0))
    return np.asarray(data.reshape(-1, len(frame.layout.channels)).mean(axis=1))
