"""A recording judged by its destination profile's rules (siprtmp_contract.profiles, the table
the parser and the CRD read), as the CDN's ingest would judge the stream: ffprobe for the
tracks and their codecs, PyAV for where the keyframes fall and how many bytes of video each
second holds."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import av

from siprtmp_contract.profiles import Profile
from tests.support.recording import ffprobe

#: How far a keyframe interval may run past the rule: one frame of 25 frames/s, FLV's
#: millisecond timestamps.
SLACK_SECONDS = 0.05
#: The video track starts with the stream: its first frame within this of the first audio.
FIRST_VIDEO_SECONDS = 0.3
#: Constant bitrate: each whole second's video within this fraction of the profile's rate
#: (a second holds 10 frames of the slate's 10/s, give or take one as the stream's clock
#: places them; the loop's first frames fill the encoder's buffer, a tenth under the rate).
CBR_BAND = 0.2


@dataclass(frozen=True)
class Keyframes:
    times: list[float]  # of each keyframe, in seconds
    first_video: float | None  # the first video packet's time
    first_audio: float | None
    last_video: float | None

    @property
    def longest_interval(self) -> float | None:
        """The longest stretch without a keyframe, the stream's end included."""
        if not self.times or self.last_video is None:
            return None
        marks = [*self.times, self.last_video]
        return max(b - a for a, b in itertools.pairwise(marks))


@dataclass(frozen=True)
class Packet:
    kind: str  # "audio" or "video"
    at: float  # its decoding time, in seconds
    size: int  # bytes
    keyframe: bool


def packets(path: Path) -> list[Packet]:
    with av.open(str(path)) as container:
        return [
            Packet(p.stream.type, float(p.dts * p.time_base), p.size, p.is_keyframe)
            for p in container.demux()
            if p.dts is not None and p.time_base is not None and p.size
        ]


def keyframes(path: Path) -> Keyframes:
    found = packets(path)
    audio = [p.at for p in found if p.kind == "audio"]
    video = [p for p in found if p.kind == "video"]
    return Keyframes(
        [p.at for p in video if p.keyframe],
        video[0].at if video else None,
        audio[0] if audio else None,
        video[-1].at if video else None,
    )


def video_bitrates(path: Path) -> list[float]:
    """Bits of video in each whole second of the track, from its first packet (the last,
    partial second left out)."""
    video = [p for p in packets(path) if p.kind == "video"]
    if not video:
        return []
    start = video[0].at
    seconds = [0.0] * int(video[-1].at - start)
    for packet in video:
        index = int(packet.at - start)
        if index < len(seconds):
            seconds[index] += packet.size * 8
    return seconds


def cdn_problems(path: Path, profile: Profile) -> list[str]:
    """What ``profile``'s CDN would object to in the recording (empty: nothing)."""
    streams = ffprobe(path)["streams"]
    audio = [s for s in streams if s["codec_type"] == "audio"]
    video = [s for s in streams if s["codec_type"] == "video"]
    problems: list[str] = []
    if len(audio) != 1 or audio[0]["codec_name"] != "aac":
        return [f"one AAC track expected, got {[s['codec_name'] for s in audio]}"]
    (track,) = audio
    if track.get("profile") != profile.aac_profile:
        problems.append(f"AAC profile {track.get('profile')}, not {profile.aac_profile}")
    if int(track["sample_rate"]) not in profile.sample_rates:
        problems.append(f"sample rate {track['sample_rate']} not in {profile.sample_rates}")
    if int(track["channels"]) not in profile.channels:
        problems.append(f"{track['channels']} channels, not {profile.channels}")
    if profile.video_track and not video:
        problems.append("no video track")
    if not video:
        return problems
    (picture,) = video
    if picture["codec_name"] != "h264" or picture.get("profile") not in profile.h264_profiles:
        problems.append(f"video {picture['codec_name']} {picture.get('profile')}")
    found = keyframes(path)
    if profile.video_track and (
        found.first_video is None
        or found.first_audio is None
        or found.first_video - found.first_audio > FIRST_VIDEO_SECONDS
    ):
        problems.append(f"video starts at {found.first_video} s, audio at {found.first_audio} s")
    longest = found.longest_interval
    limit = profile.max_keyframe_seconds
    if longest is None:
        problems.append("no keyframe")
    elif limit is not None and longest > limit + SLACK_SECONDS:
        problems.append(f"keyframes {longest:.2f} s apart, more than {limit} s")
    rate = profile.video_bitrate
    if rate is not None:
        off = [round(b) for b in video_bitrates(path) if abs(b - rate) > CBR_BAND * rate]
        if off:
            problems.append(f"video not at a constant {rate} b/s: seconds at {off} b/s")
    return problems
