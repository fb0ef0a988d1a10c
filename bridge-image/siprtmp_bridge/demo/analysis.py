"""Decode a published stream and measure its tone: the proof that call audio arrived.

Pure Python on the decoded samples (no numpy in the bridge's runtime): the tone's frequency is
first estimated from its upward zero crossings, then refined to the peak of the same Hann-windowed
spectrum an FFT would give, evaluated with the Goertzel recurrence at only the few DFT bins around
that estimate.
"""

from __future__ import annotations

import itertools
import math
import operator
import statistics
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import av


@dataclass(frozen=True)
class ToneMeasurement:
    """The loudest frequency over the audible part of the stream, and how long that part is."""

    frequency_hz: float
    tone_seconds: float
    total_seconds: float
    sample_rate: int
    codec: str


@dataclass(frozen=True)
class DecodedAudio:
    """A stream's audio as mono samples (full scale 1.0) and where it starts on its clock."""

    samples: Sequence[float]
    sample_rate: int
    codec: str
    start_seconds: float


# RMS (full scale 1.0) above which a window counts as audible: about -34 dBFS.
AUDIBLE_RMS = 0.02
# Half the audible RMS: a tone loud enough to be audible (peak >= sqrt(2) * AUDIBLE_RMS) swings
# past it every period; a codec's noise floor around silence stays well inside it.
CROSSING_HYSTERESIS = AUDIBLE_RMS / 2


def audible_runs(
    samples: Sequence[float], sample_rate: int, windows_per_second: int = 50
) -> list[range]:
    """The stretches of ``samples`` (as index ranges, in order) made of consecutive windows
    louder than ``AUDIBLE_RMS``; windows are 1/``windows_per_second`` s (20 ms by default)."""
    window = max(1, sample_rate // windows_per_second)
    runs: list[range] = []
    for start in range(0, len(samples) - window + 1, window):
        chunk = samples[start : start + window]
        if math.sqrt(sum(map(operator.mul, chunk, chunk)) / window) <= AUDIBLE_RMS:
            continue
        if runs and runs[-1].stop == start:
            runs[-1] = range(runs[-1].start, start + window)
        else:
            runs.append(range(start, start + window))
    return runs


def joined(samples: Sequence[float], runs: Sequence[range]) -> list[float]:
    """The ``runs`` of ``samples`` end to end: the audible part, as its spectrum is taken."""
    return [value for run in runs for value in samples[run.start : run.stop]]


def tone_frequency(samples: Sequence[float], sample_rate: int, runs: Sequence[range]) -> float:
    """The strongest frequency in the ``runs`` of ``samples`` joined: the peak of their
    Hann-windowed DFT, interpolated between bins on a log scale; 0.0 when there are too few
    samples or nothing crosses zero (no tone).

    Only the bins from the zero-crossing estimate (for a clean tone well within a bin of it) up
    to the nearest peak are computed: for one clear tone that peak is the spectrum's highest,
    where an FFT of the same samples peaks too.
    """
    audible = joined(samples, runs)
    size = len(audible)
    coarse = crossing_frequency(samples, sample_rate, runs)
    if size < 16 or not coarse:
        return 0.0
    step = 2 * math.pi / (size - 1)
    windowed = [value * (0.5 - 0.5 * math.cos(step * n)) for n, value in enumerate(audible)]
    powers: dict[int, float] = {}

    def log_power(k: int) -> float:
        # Floored: rounding can leave an empty bin's power a hair below zero.
        if k not in powers:
            powers[k] = math.log(max(_goertzel_power(windowed, 2 * math.pi * k / size), 1e-300))
        return powers[k]

    top = size // 2 - 1  # the highest bin with a neighbour above it
    peak = min(max(round(coarse * size / sample_rate), 1), top)
    direction = 1 if peak < top and log_power(peak + 1) > log_power(peak) else -1
    while 1 <= peak + direction <= top and log_power(peak + direction) > log_power(peak):
        peak += direction
    left, centre, right = log_power(peak - 1), log_power(peak), log_power(peak + 1)
    denominator = left - 2 * centre + right
    offset = 0.5 * (left - right) / denominator if denominator else 0.0
    return (peak + offset) * sample_rate / size


def crossing_frequency(samples: Sequence[float], sample_rate: int, runs: Sequence[range]) -> float:
    """The tone's frequency from its upward zero crossings: the slope of crossing time against
    period number, fitted by least squares over all runs (each run its own offset); 0.0 when no
    run holds a full period.

    Each gap between crossings counts as the whole number of periods nearest to it, in units of
    the run's median gap, so a stray crossing (a codec's ringing where a tone starts or stops
    abruptly) or a missed one shifts only the few crossings near it, which the fit outweighs.
    A crossing counts only once the signal has been below ``-CROSSING_HYSTERESIS`` since the
    last one, so noise around zero adds none; it is placed between its two samples by linear
    interpolation. Upward crossings only, so a DC offset does not bias the estimate.
    """
    covariance = variance = 0.0
    for run in runs:
        crossings = _upward_crossings(samples, run)
        gaps = [later - earlier for earlier, later in itertools.pairwise(crossings)]
        if not gaps:
            continue
        typical = statistics.median(gaps)
        periods = list(itertools.accumulate((round(gap / typical) for gap in gaps), initial=0))
        mean_period = statistics.fmean(periods)
        mean_crossing = statistics.fmean(crossings)
        for period, crossing in zip(periods, crossings, strict=True):
            covariance += (period - mean_period) * (crossing - mean_crossing)
            variance += (period - mean_period) ** 2
    # covariance / variance: samples per period (positive: crossings come in order).
    return sample_rate * variance / covariance if covariance else 0.0


def _upward_crossings(samples: Sequence[float], run: range) -> list[float]:
    crossings: list[float] = []
    armed = False
    for index in range(run.start, run.stop - 1):
        before = samples[index]
        if before < -CROSSING_HYSTERESIS:
            armed = True
        if armed and before < 0.0 <= samples[index + 1]:
            crossings.append(index + before / (before - samples[index + 1]))
            armed = False
    return crossings


def _goertzel_power(samples: Sequence[float], omega: float) -> float:
    """|X(omega)|^2 of the DFT of ``samples`` at angular frequency ``omega`` (radians/sample)."""
    coefficient = 2 * math.cos(omega)
    current = previous = 0.0
    for value in samples:
        current, previous = value + coefficient * current - previous, current
    return current * current + previous * previous - coefficient * current * previous


def measure_tone(audio: DecodedAudio) -> ToneMeasurement:
    runs = audible_runs(audio.samples, audio.sample_rate)
    return ToneMeasurement(
        frequency_hz=tone_frequency(audio.samples, audio.sample_rate, runs),
        tone_seconds=sum(len(run) for run in runs) / audio.sample_rate,
        total_seconds=len(audio.samples) / audio.sample_rate,
        sample_rate=audio.sample_rate,
        codec=audio.codec,
    )


def decode_audio(
    source: str, options: dict[str, str] | None = None, timeout: float | None = None
) -> DecodedAudio:
    """All audio of a file or URL as mono samples, with its rate, codec name and start time.

    A live source (an RTMP publisher we listen for) ends with an I/O error when the publisher
    disconnects: after audio has been decoded, that is the end of the stream, not a failure.
    """
    samples = array("d")
    start: float | None = None
    with av.open(source, options=options or {}, timeout=timeout) as container:
        stream = container.streams.audio[0]
        codec = stream.codec_context.name
        rate = int(stream.codec_context.sample_rate or stream.rate)
        try:
            for frame in container.decode(stream):
                if start is None:
                    start = float(frame.time or 0.0)
                samples.extend(_mono(frame))
        except av.error.OSError:
            if start is None:
                raise
    return DecodedAudio(samples, rate, codec, start or 0.0)


# FFmpeg's sample formats (planar or not) as array type codes, with their full scale.
_SAMPLE_FORMATS = {"s16": ("h", 32768.0), "flt": ("f", 1.0), "dbl": ("d", 1.0)}


def _mono(frame: Any) -> Sequence[float]:
    """A decoded frame's samples, channels averaged, scaled to full scale 1.0."""
    name = frame.format.name
    if name.removesuffix("p") not in _SAMPLE_FORMATS:
        raise ValueError(f"unsupported sample format {name}")
    typecode, full_scale = _SAMPLE_FORMATS[name.removesuffix("p")]
    channels = len(frame.layout.channels)
    # A plane's buffer may run past its samples (FFmpeg pads it).
    count = frame.samples if frame.format.is_planar else frame.samples * channels
    planes = []
    for plane in frame.planes:
        values = array(typecode)
        values.frombytes(bytes(plane)[: count * values.itemsize])
        planes.append(values)
    if frame.format.is_planar:
        per_channel = planes
    else:
        per_channel = [planes[0][channel::channels] for channel in range(channels)]
    return [sum(values) / (channels * full_scale) for values in zip(*per_channel, strict=True)]
