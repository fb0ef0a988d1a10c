"""A recording judged by its destination profile's rules (siprtmp_contract.profiles, the table
the parser and the CRD read), as the CDN's ingest would judge the stream: ffprobe for the
tracks and their codecs, PyAV for where the keyframes fall."""

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


def keyframes(path: Path) -> Keyframes:
    times: list[float] = []
    first_video = first_audio = last_video = None
    with av.open(str(path)) as container:
        for packet in container.demux():
            if packet.dts is None or packet.time_base is None or not packet.size:
                continue
            at = float(packet.dts * packet.time_base)
            if packet.stream.type == "audio":
                first_audio = at if first_audio is None else first_audio
            elif packet.stream.type == "video":
                first_video = at if first_video is None else first_video
                last_video = at
                if packet.is_keyframe:
                    times.append(at)
    return Keyframes(times, first_video, first_audio, last_video)


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
    return problems
