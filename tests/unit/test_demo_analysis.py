"""The demo's tone measurement (pure Python), checked against an FFT of the same audio: clean
tones as the demo's receiver decodes them (through AAC), gated tones as the video tests time them,
and the sample formats decoding meets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from siprtmp_bridge.demo.analysis import (
    DecodedAudio,
    audible_runs,
    crossing_frequency,
    decode_audio,
    joined,
    measure_tone,
    tone_frequency,
)
from tests.support.rtp_pcap import tone_pcm
from tests.support.spectrum import dominant_frequency
from tests.support.video_pcap import BLINK_SECONDS, blinking_tone_pcm

RATE = 48000  # what the demo's receiver decodes the bridge's AAC at
FFT_AGREEMENT_HZ = 0.5


def write_audio(path: Path, pcm: np.ndarray[Any, Any], codec: str, layout: str = "mono") -> Path:
    """Encode 16-bit samples (one row per channel) into a file as the bridge's peers would."""
    with av.open(str(path), "w") as container:
        stream: Any = container.add_stream(codec, rate=RATE, layout=layout)
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(pcm.reshape(1, -1)), format="s16", layout=layout
        )
        frame.sample_rate = RATE
        frame.pts = 0
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    return path


def with_silence(pcm: np.ndarray[Any, Any], before: float, after: float) -> np.ndarray[Any, Any]:
    return np.concatenate(
        [np.zeros(int(before * RATE), "<i2"), pcm, np.zeros(int(after * RATE), "<i2")]
    )


def test_tone_analysis_finds_frequency_and_length() -> None:
    t = np.arange(RATE * 2) / RATE
    signal = np.concatenate([0.5 * np.sin(2 * np.pi * 1234.5 * t), np.zeros(RATE)])
    tone = measure_tone(DecodedAudio(list(signal), RATE, "pcm", 0.0))
    assert abs(tone.frequency_hz - 1234.5) < 0.5
    assert tone.tone_seconds == pytest.approx(2.0, abs=0.02)
    assert tone.total_seconds == pytest.approx(3.0)
    assert dominant_frequency(np.zeros(4), RATE) == 0.0
    assert measure_tone(DecodedAudio([0.0] * 4, RATE, "pcm", 0.0)).frequency_hz == 0.0


@pytest.mark.parametrize("frequency", [440.0, 660.0, 880.0, 1000.0])
def test_demo_tone_through_aac_agrees_with_the_fft(frequency: float, tmp_path: Path) -> None:
    """The demo's case: a clean tone with silence around it, encoded to AAC in FLV and decoded."""
    pcm = with_silence(tone_pcm(frequency, 3.8, RATE), 0.3, 0.2)
    audio = decode_audio(str(write_audio(tmp_path / "tone.flv", pcm, "aac")))
    tone = measure_tone(audio)
    assert (tone.codec, tone.sample_rate) == ("aac", RATE)
    runs = audible_runs(audio.samples, RATE)
    audible = joined(audio.samples, runs)
    assert abs(tone.frequency_hz - dominant_frequency(audible, RATE)) < FFT_AGREEMENT_HZ
    assert abs(tone.frequency_hz - frequency) < 0.1
    # The spectrum search starts within a bin of the tone (the codec rings at its abrupt ends).
    assert abs(crossing_frequency(audio.samples, RATE, runs) - frequency) < 1 / tone.tone_seconds
    assert tone.tone_seconds == pytest.approx(3.8, abs=0.05)
    assert tone.total_seconds == pytest.approx(4.3, abs=0.05)


def test_gated_tone_in_short_windows_agrees_with_the_fft() -> None:
    """The video tests' tone: on and off every ``BLINK_SECONDS``, measured in 10 ms windows; the
    runs are joined end to end for the spectrum, as the FFT sees them."""
    samples = list(blinking_tone_pcm(4.0, RATE) / 32768.0)
    runs = audible_runs(samples, RATE, windows_per_second=100)
    assert [run.start / RATE for run in runs] == pytest.approx([0.0, 1.0, 2.0, 3.0], abs=0.011)
    audible = joined(samples, runs)
    frequency = tone_frequency(samples, RATE, runs)
    assert abs(frequency - dominant_frequency(audible, RATE)) < FFT_AGREEMENT_HZ
    assert abs(frequency - 1000.0) < 1.0
    assert len(audible) / RATE == pytest.approx(4 * BLINK_SECONDS, abs=0.05)


def test_a_weaker_second_tone_does_not_move_the_peak(tmp_path: Path) -> None:
    """The loudest tone wins, as in the FFT, when another one (a tenth as loud) is mixed in."""
    mixed = tone_pcm(1000.0, 3.0, RATE, 0.45) + tone_pcm(2500.0, 3.0, RATE, 0.045)
    audio = decode_audio(str(write_audio(tmp_path / "mixed.flv", mixed, "aac")))
    runs = audible_runs(audio.samples, RATE)
    audible = joined(audio.samples, runs)
    frequency = measure_tone(audio).frequency_hz
    assert abs(frequency - dominant_frequency(audible, RATE)) < FFT_AGREEMENT_HZ
    assert abs(frequency - 1000.0) < 0.1


def test_decoding_scales_16_bit_samples_and_averages_interleaved_channels(tmp_path: Path) -> None:
    """PCM in WAV decodes as packed s16: scaled to full scale 1.0, the two channels averaged."""
    left = tone_pcm(500.0, 1.0, RATE, 0.5)
    right = np.zeros_like(left)
    interleaved = np.stack([left, right], axis=1).reshape(-1)
    audio = decode_audio(
        str(write_audio(tmp_path / "stereo.wav", interleaved, "pcm_s16le", "stereo"))
    )
    assert audio.codec == "pcm_s16le"
    assert len(audio.samples) == RATE
    assert max(audio.samples) == pytest.approx(0.25, abs=0.001)
    assert audio.start_seconds == 0.0
    assert abs(measure_tone(audio).frequency_hz - 500.0) < 0.1
