"""Decode a recording's video and audio with their timestamps, and line them up: the picture's
colours, the tone, and the offset between the blinking marker and the blinking tone."""

from __future__ import annotations

import itertools
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np

from siprtmp_bridge.demo.analysis import audible_runs, decode_audio, tone_frequency
from siprtmp_bridge.video.slate import BACKGROUND as SLATE_BACKGROUND
from tests.support.video_pcap import BLUE, MARKER_BOX, RED

COLOUR_TOLERANCE = 40  # per channel, after YUV 4:2:0 and back


@dataclass(frozen=True)
class VideoMeasurement:
    width: int
    height: int
    frames: int
    first_frame_seconds: float
    seconds: float
    left_rgb: tuple[int, int, int]
    right_rgb: tuple[int, int, int]
    marker_on: list[tuple[float, bool]]  # (frame time, marker white)

    @property
    def left_is_red(self) -> bool:
        return _close(self.left_rgb, RED)

    @property
    def right_is_blue(self) -> bool:
        return _close(self.right_rgb, BLUE)


def _close(measured: tuple[int, int, int], expected: tuple[int, int, int]) -> bool:
    return all(abs(a - b) <= COLOUR_TOLERANCE for a, b in zip(measured, expected, strict=True))


def _mean_rgb(image: np.ndarray[Any, Any]) -> tuple[int, int, int]:
    red, green, blue = (round(float(image[..., c].mean())) for c in range(3))
    return red, green, blue


def measure_video(path: Path) -> VideoMeasurement:
    marker: list[tuple[float, bool]] = []
    middle: Any = None
    x, y, w, h = MARKER_BOX
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [frame for frame in container.decode(stream)]
    assert frames, f"no video frames in {path}"
    for frame in frames:
        image = frame.to_ndarray(format="rgb24")
        box = image[y + 10 : y + h - 10, x + 10 : x + w - 10]
        marker.append((float(frame.time or 0.0), float(box.mean()) > 128))
    middle = frames[len(frames) // 2].to_ndarray(format="rgb24")
    height, width = middle.shape[:2]
    return VideoMeasurement(
        width=width,
        height=height,
        frames=len(frames),
        first_frame_seconds=float(frames[0].time or 0.0),
        seconds=float(frames[-1].time or 0.0) - float(frames[0].time or 0.0),
        left_rgb=_mean_rgb(middle[20:160, 20 : width // 2 - 20]),
        right_rgb=_mean_rgb(middle[20:160, width // 2 + 20 : width - 20]),
        marker_on=marker,
    )


@dataclass(frozen=True)
class ToneTrack:
    frequency_hz: float
    start_seconds: float  # when the first audible window starts
    audible_seconds: float
    onsets: list[float]  # stream times where the tone starts


def tone_in(path: Path) -> ToneTrack:
    """The tone in 10 ms windows: fine enough to time its onsets against the video's marker."""
    audio = decode_audio(str(path))
    rate = audio.sample_rate
    runs = audible_runs(audio.samples, rate, windows_per_second=100)
    return ToneTrack(
        frequency_hz=tone_frequency(audio.samples, rate, runs),
        start_seconds=audio.start_seconds + (runs[0].start / rate if runs else 0.0),
        audible_seconds=sum(len(run) for run in runs) / rate,
        onsets=[audio.start_seconds + run.start / rate for run in runs if run.start > 0],
    )


def assert_picture_and_tone(path: Path, seconds: float = 5.0) -> VideoMeasurement:
    """The test camera's picture (red left, blue right) and its 1 kHz tone, each for more than
    ``seconds``: what a far end sending tests/support's camera file puts on the stream."""
    picture = measure_video(path)
    assert picture.left_is_red and picture.right_is_blue, picture
    assert picture.seconds > seconds, picture
    tone = tone_in(path)
    assert abs(tone.frequency_hz - 1000) < 10 and tone.audible_seconds > seconds, tone
    return picture


def marker_onsets(video: VideoMeasurement) -> list[float]:
    on = video.marker_on
    return [t for (_, was), (t, now) in itertools.pairwise(on) if now and not was]


def av_offsets(path: Path) -> list[tuple[float, float]]:
    """(stream time, marker turns white minus the nearest tone onset) for each marker onset
    with a tone onset near it: positive when video is late."""
    tone = tone_in(path)
    video = measure_video(path)
    offsets = []
    for onset in marker_onsets(video):
        nearest = min(tone.onsets, key=lambda t: abs(t - onset), default=None)
        if nearest is not None and abs(onset - nearest) < 0.45:
            offsets.append((onset, onset - nearest))
    assert len(offsets) >= 3, (marker_onsets(video), tone.onsets)
    return offsets


def av_offset_seconds(path: Path) -> float:
    """The median of ``av_offsets``: the call's A/V offset."""
    return statistics.median(offset for _, offset in av_offsets(path))


def frame_sources(path: Path, slate_width: int) -> list[tuple[float, str]]:
    """Each decoded frame's time and what it shows: "slate" (the slate's size and colours),
    "live" (the test picture: red left, blue right) or "other"."""
    sources = []
    with av.open(str(path)) as container:
        for frame in container.decode(container.streams.video[0]):
            image = frame.to_ndarray(format="rgb24")
            width = image.shape[1]
            left = _mean_rgb(image[20:160, 20 : width // 2 - 20])
            if width == slate_width and _close(_mean_rgb(image[5:40, 5:100]), SLATE_BACKGROUND):
                kind = "slate"
            elif _close(left, RED):
                kind = "live"
            else:
                kind = "other"
            sources.append((float(frame.time or 0.0), kind))
    return sources


def runs(sources: list[tuple[float, str]]) -> list[tuple[str, int]]:
    """Consecutive frames of the same kind, collapsed: [("slate", 12), ("live", 100), ...]."""
    collapsed: list[tuple[str, int]] = []
    for _, kind in sources:
        if collapsed and collapsed[-1][0] == kind:
            collapsed[-1] = (kind, collapsed[-1][1] + 1)
        else:
            collapsed.append((kind, 1))
    return collapsed
