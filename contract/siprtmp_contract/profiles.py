"""Destination profiles: what each CDN's ingest accepts, in one table.

A profile (``spec.profile``) does two things. It writes the defaults its CDN expects into the
fields the spec leaves out (``with_defaults``: a video track, stereo, a bitrate, a keyframe
interval), and it names what its CDN refuses, so that the parser refuses it before anything is
dialled (``problem``) and the CRD's CEL rules refuse it too (``cel_rules``, merged in by
scripts/generate.py). docs/spec.md's profile table and the tests' check of each recording
(tests/support/cdn_rules.py) read the same rows. Both functions are pure in (profile, spec), so
one call may apply them to each of several destinations.

The rows follow what the CDNs publish: Facebook Live takes RTMPS only, audio and video, stereo
AAC-LC at 44.1 or 48 kHz and a keyframe every 2 s (at most 4 s); YouTube Live takes AAC at
44.1/48 kHz, warns past a 4 s keyframe interval and does not show audio-only streams; Twitch
asks for a 2 s keyframe interval. ``generic`` is the bridge's own defaults (nginx-rtmp and Wowza
take audio-only streams).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: The field the profile is named in, and the fields a profile's rules read.
PROFILE_FIELD = "profile"
URL_FIELD = "rtmpUrl"
WHEN_ABSENT_FIELD = "video.whenAbsent"
CHANNELS_FIELD = "audio.channels"
KEYFRAME_FIELD = "video.maxKeyframeIntervalSeconds"


@dataclass(frozen=True)
class Profile:
    """One CDN's ingest rules and the defaults that meet them."""

    name: str
    cdn: str
    #: The URL schemes its ingest takes.
    schemes: tuple[str, ...] = ("rtmp", "rtmps")
    #: The stream must carry H.264 from its start: ``video.whenAbsent`` must be ``slate``.
    video_track: bool = False
    #: Audio channel counts it takes.
    channels: tuple[int, ...] = (1, 2)
    #: AAC sample rates it takes (the spec's field takes no others either).
    sample_rates: tuple[int, ...] = (44100, 48000)
    #: The longest keyframe interval it takes, in seconds (None: any).
    max_keyframe_seconds: int | None = None
    #: Field (dotted path) → the value written when the spec leaves the field out.
    defaults: Mapping[str, Any] = field(default_factory=dict)
    #: What a recording must show (tests/support/cdn_rules.py): AAC's profile, H.264's.
    aac_profile: str = "LC"
    h264_profiles: tuple[str, ...] = ("Baseline", "Constrained Baseline", "Main", "High")

    @property
    def keyframe_seconds(self) -> int | None:
        """The keyframe interval the bridge aims at under this profile."""
        value = self.defaults.get(KEYFRAME_FIELD, self.max_keyframe_seconds)
        return None if value is None else int(value)


_CDN_DEFAULTS = {WHEN_ABSENT_FIELD: "slate", CHANNELS_FIELD: 2, "audio.bitrate": 128000}

PROFILES: dict[str, Profile] = {
    profile.name: profile
    for profile in (
        Profile("generic", "any RTMP server (nginx-rtmp, Wowza): the bridge's own defaults"),
        Profile(
            "youtube",
            "YouTube Live",
            video_track=True,
            max_keyframe_seconds=4,
            defaults={**_CDN_DEFAULTS, KEYFRAME_FIELD: 4},
        ),
        Profile(
            "facebook",
            "Facebook Live",
            schemes=("rtmps",),
            video_track=True,
            channels=(2,),
            max_keyframe_seconds=4,
            defaults={**_CDN_DEFAULTS, KEYFRAME_FIELD: 2},
        ),
        Profile(
            "twitch",
            "Twitch",
            max_keyframe_seconds=2,
            defaults={**_CDN_DEFAULTS, "audio.bitrate": 160000, KEYFRAME_FIELD: 2},
        ),
    )
}
DEFAULT_PROFILE = "generic"


def _get(document: Mapping[str, Any], path: str) -> Any:
    value: Any = document
    for name in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(name)
    return value


def with_defaults(profile: Profile, document: Mapping[str, Any]) -> dict[str, Any]:
    """``document`` (a canonical spec) with the profile's defaults in the fields it leaves out
    (a null is left out, as the API server prunes it). A field that is not an object where a
    default goes is left as it is, for the parser to refuse."""
    result = dict(document)
    for path, value in profile.defaults.items():
        *parents, name = path.split(".")
        target = result
        for parent in parents:
            child = target.get(parent)
            if child is None:
                child = {}
            elif not isinstance(child, Mapping):
                break
            target[parent] = target = dict(child)
        else:
            if target.get(name) is None:
                target[name] = value
    return result


@dataclass(frozen=True)
class Output:
    """What a stream is, as a profile's rules judge it."""

    rtmp_url: str
    video_track: bool
    channels: int
    max_keyframe_seconds: int


def problem(profile: Profile, output: Output) -> tuple[str, str] | None:
    """The first rule ``output`` breaks: (the field, the problem), or None."""
    scheme = output.rtmp_url.partition("://")[0]
    if scheme not in profile.schemes:
        wanted = " or ".join(f"{s}://" for s in profile.schemes)
        return URL_FIELD, f"must be an {wanted} URL for profile {profile.name} ({profile.cdn})"
    if profile.video_track and not output.video_track:
        return WHEN_ABSENT_FIELD, (
            f"must be slate for profile {profile.name}: {profile.cdn} needs a video track"
        )
    if output.channels not in profile.channels:
        shown = " or ".join(map(str, profile.channels))
        return CHANNELS_FIELD, f"must be {shown} for profile {profile.name} ({profile.cdn})"
    limit = profile.max_keyframe_seconds
    if limit is not None and output.max_keyframe_seconds > limit:
        return KEYFRAME_FIELD, (
            f"must be at most {limit} for profile {profile.name} ({profile.cdn})"
        )
    return None


def _cel_path(path: str) -> tuple[str, str]:
    """A dotted field as a CEL presence test and a value (``has(self.a) && has(self.a.b)``)."""
    names = path.split(".")
    present = " && ".join(f"has(self.{'.'.join(names[: i + 1])})" for i in range(len(names)))
    return present, f"self.{path}"


def _checks(profile: Profile) -> list[tuple[str, str]]:
    """(a CEL condition on the spec, what it asks) for each of the profile's rules."""
    checks: list[tuple[str, str]] = []
    if profile.schemes != ("rtmp", "rtmps"):
        starts = " || ".join(f"self.{URL_FIELD}.startsWith('{s}://')" for s in profile.schemes)
        checks.append((starts, f"{URL_FIELD} must be {' or '.join(profile.schemes)}://"))
    rules: list[tuple[str, str, str]] = []  # field, condition on its value, what it asks
    if profile.video_track:
        rules.append((WHEN_ABSENT_FIELD, "== 'slate'", "must be slate"))
    if profile.channels != (1, 2):
        allowed = ", ".join(map(str, profile.channels))
        rules.append((CHANNELS_FIELD, f"in [{allowed}]", f"must be {allowed}"))
    if profile.max_keyframe_seconds is not None:
        limit = profile.max_keyframe_seconds
        rules.append((KEYFRAME_FIELD, f"<= {limit}", f"must be at most {limit}"))
    for path, condition, asked in rules:
        present, value = _cel_path(path)
        checks.append((f"!({present}) || {value} {condition}", f"{path} {asked}"))
    return checks


def cel_rules() -> list[dict[str, str]]:
    """The CRD's rules for what ``problem`` refuses, on the spec object: a field a profile
    leaves out gets that profile's default (``with_defaults``), which meets its rules, so each
    rule judges a field only where it is written."""
    rules: list[dict[str, str]] = []
    for profile in PROFILES.values():
        named = f"has(self.{PROFILE_FIELD}) && self.{PROFILE_FIELD} == '{profile.name}'"
        for check, asked in _checks(profile):
            message = f"profile {profile.name} ({profile.cdn}): {asked}"
            rules.append({"rule": f"!({named}) || {check}", "message": message})
    return rules
