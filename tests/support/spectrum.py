"""The FFT view of decoded audio (numpy: a dev dependency, never the bridge's).

The tests measure tones with the demo's own pure-Python estimator
(``siprtmp_bridge.demo.analysis``); the FFT here is the independent method that estimator is
checked against, and the whole spectrum for a test that compares energies across it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt


def magnitude_spectrum(
    samples: npt.ArrayLike, sample_rate: int
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """|rfft| of the Hann-windowed samples (a Hann window keeps leakage low), and each bin's
    frequency in Hz."""
    values = np.asarray(samples, dtype=np.float64)
    magnitudes = np.abs(np.fft.rfft(values * np.hanning(values.size)))
    return magnitudes, np.fft.rfftfreq(values.size, 1 / sample_rate)


def dominant_frequency(samples: npt.ArrayLike, sample_rate: int) -> float:
    """The strongest frequency (above DC), interpolated between FFT bins on a log scale."""
    values = np.asarray(samples, dtype=np.float64)
    if values.size < 16:
        return 0.0
    spectrum, _ = magnitude_spectrum(values, sample_rate)
    spectrum[0] = 0.0
    peak = int(np.argmax(spectrum))
    if 0 < peak < spectrum.size - 1:
        left, centre, right = np.log(spectrum[peak - 1 : peak + 2] + 1e-12)
        denominator = left - 2 * centre + right
        offset = 0.5 * (left - right) / denominator if denominator else 0.0
    else:
        offset = 0.0
    return float((peak + offset) * sample_rate / values.size)
