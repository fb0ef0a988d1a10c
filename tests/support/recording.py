"""Decode what nginx-rtmp recorded and measure it (independently of the bridge's own state)."""

from __future__ import annotations

import itertools
import json
import subprocess
from pathlib import Path
from typing import Any

import av

from siprtmp_bridge.demo.analysis import ToneMeasurement, audible_runs, decode_audio, measure_tone


def measure_recording(path: Path) -> ToneMeasurement:
    return measure_tone(decode_audio(str(path)))


def ffprobe(path: Path) -> dict[str, Any]:
    """ffprobe's view of a recording: streams and format, as JSON (a second, separate decoder)."""
    output = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, Any] = json.loads(output)
    return result


def packet_times(path: Path, kind: str = "audio") -> list[int]:
    """Decoding timestamps (ms) of one track's packets, as the file stores them."""
    with av.open(str(path)) as container:
        stream = getattr(container.streams, kind)[0]
        return [
            round(float(packet.dts * packet.time_base) * 1000)
            for packet in container.demux(stream)
            if packet.dts is not None and packet.time_base is not None
        ]


def tone_gaps(path: Path) -> list[tuple[float, float]]:
    """(start, length) in seconds of each hole in the recording's tone: the inaudible stretches
    between its first and last audible 20 ms window (a gap shorter than a window may go unseen)."""
    audio = decode_audio(str(path))
    runs = audible_runs(audio.samples, audio.sample_rate)
    rate = audio.sample_rate
    return [
        (done.stop / rate, (after.start - done.stop) / rate)
        for done, after in itertools.pairwise(runs)
    ]
