"""Decode what nginx-rtmp recorded and measure it (independently of the bridge's own state)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from siprtmp_bridge.demo.analysis import ToneMeasurement, decode_audio, measure_tone


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
