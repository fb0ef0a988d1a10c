"""A short silent WAV for pjsua's player: what a sendrecv bridge sends to the far end."""

from __future__ import annotations

import wave
from pathlib import Path

SILENCE_FILE = "silence.wav"


def write_silence_wav(directory: Path, sample_rate: int = 8000, seconds: float = 1.0) -> Path:
    """Write one second of 16-bit mono silence; pjsua loops it for as long as the call lasts."""
    path = directory / SILENCE_FILE
    with wave.open(str(path), "wb") as output:
        output.setnchannels(1)
        output.setsampwidth(2)
        output.setframerate(sample_rate)
        output.writeframes(b"\0\0" * int(sample_rate * seconds))
    return path
