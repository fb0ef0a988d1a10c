"""Destination profiles: what each CDN's ingest accepts, in one table.

A profile (``spec.profile``, and each ``destinations[].profile``) does two things. It writes
the defaults its CDN expects into the fields the spec leaves out (``with_defaults``: a video
track, stereo, a bitrate, a keyframe interval), and it names what its CDN refuses, so that the
parser refuses it before anything is dialled (``url_problem`` for a destination's URL,
``stream_problem`` for the stream the call makes) and the CRD's CEL rules refuse it too
(``cel_rules`` on the spec, ``destination_cel_rules`` on each destination; merged in by
scripts/generate.py). docs/spec.md's profile table and the tests' check of each recording
(tests/support/cdn_rules.py) read the same rows.

A call is encoded once for all its destinations, so the stream must meet every profile among
them: the defaults of several profiles combine into the strictest of each (``combined_defaults``:
the shortest keyframe interval, the larger channel count and bitrate), which meets all of them;
so a rule judges a field only where the spec writes it, in the parser and in CEL alike.

The rows follow what the CDNs publish: Facebook Live takes RTMPS only, audio and video, stereo
AAC-LC at 44.1 or 48 kHz and a keyframe every 2 s (at most 4 s); YouTube Live takes AAC at
44.1/48 kHz, warns past a 4 s keyframe interval and does not show audio-only streams; Twitch
asks for a 2 s keyframe interval and constant bitrate (CBR): where the bridge encodes the video
(the slate) it encodes it so; the far end's video under ``video.mode: passthrough`` is remuxed
as it comes (no transcoding), so its bitrate is the far end's (docs/spec.md says so).
``generic`` is the bridge's own defaults (nginx-rtmp and Wowza take audio-only streams).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: The field the profile is named in, and the fields a profile's rules read.
PROFILE_FIELD = "profile"
URL_FIELD = "rtmpUrl"
DESTINATIONS_FIELD = "destinations"
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
    #: The slate's H.264 at this constant bitrate, in bits/s (None: any; the slate's own is a
    #: few kb/s, a still picture's P-frames being nearly empty).
    video_bitrate: int | None = None


#: Twitch's constant bitrate for the slate: its guidance's low end for a 360p picture (the
#: slate's 640x360), most of it x264's filler on a still picture.
TWITCH_SLATE_BITRATE = 500_000

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
            video_bitrate=TWITCH_SLATE_BITRATE,
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


#: How the defaults of several profiles combine: the one value that meets all of them.
_STRICTEST: Mapping[str, Callable[[Iterable[Any]], Any]] = {KEYFRAME_FIELD: min}


def combined_defaults(profiles: Iterable[Profile]) -> dict[str, Any]:
    """The defaults of all ``profiles`` at once: for each field, the shortest keyframe
    interval, else the largest value (stereo over mono, the higher bitrate; ``slate`` is the
    only ``whenAbsent`` a profile writes). tests/unit/test_profiles.py checks that the result
    meets every profile of every combination."""
    values: dict[str, list[Any]] = {}
    for profile in profiles:
        for path, value in profile.defaults.items():
            values.setdefault(path, []).append(value)
    return {path: _STRICTEST.get(path, max)(found) for path, found in values.items()}


def with_defaults(profiles: Iterable[Profile], document: Mapping[str, Any]) -> dict[str, Any]:
    """``document`` (a canonical spec) with the combined defaults of ``profiles`` (the call's
    own and its destinations') in the fields it leaves out (a null is left out, as the API
    server prunes it). A field that is not an object where a default goes is left as it is,
    for the parser to refuse."""
    result = dict(document)
    for path, value in combined_defaults(profiles).items():
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


def slate_bitrate(profiles: Iterable[Profile]) -> int | None:
    """The constant bitrate the slate is encoded at: the highest any of ``profiles`` asks for
    (None: none asks)."""
    return max((p.video_bitrate for p in profiles if p.video_bitrate is not None), default=None)


@dataclass(frozen=True)
class Output:
    """The stream a call makes (the same for each of its destinations), as a profile's rules
    judge it."""

    video_track: bool
    channels: int
    max_keyframe_seconds: int
    #: The slate's constant bitrate in bits/s, None when it has none.
    video_bitrate: int | None


def url_problem(profile: Profile, rtmp_url: str) -> str | None:
    """What ``profile``'s CDN refuses in a destination's URL, or None."""
    if rtmp_url.partition("://")[0] in profile.schemes:
        return None
    wanted = " or ".join(f"{s}://" for s in profile.schemes)
    return f"must be an {wanted} URL for profile {profile.name} ({profile.cdn})"


def stream_problem(profile: Profile, output: Output) -> tuple[str, str] | None:
    """The first rule of ``profile`` the stream breaks: (the spec's field that makes it so, the
    problem), or None."""
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
    wanted = profile.video_bitrate
    if wanted is not None and output.video_track and (output.video_bitrate or 0) < wanted:
        # No spec field sets it (the profiles among the call's do, at its start): only a
        # destination added to a live call can meet this.
        return PROFILE_FIELD, (
            f"{profile.name} needs the slate at a constant {wanted // 1000} kb/s, which this "
            "call's stream does not have"
        )
    return None


def _cel_path(path: str) -> tuple[str, str]:
    """A dotted field as a CEL presence test and a value (``has(self.a) && has(self.a.b)``)."""
    names = path.split(".")
    present = " && ".join(f"has(self.{'.'.join(names[: i + 1])})" for i in range(len(names)))
    return present, f"self.{path}"


def _field_checks(profile: Profile) -> list[tuple[str, str]]:
    """(a CEL condition on the spec, what it asks) for each of the profile's rules on the
    stream's fields; a field a spec leaves out gets a default that meets them."""
    rules: list[tuple[str, str, str]] = []  # field, condition on its value, what it asks
    if profile.video_track:
        rules.append((WHEN_ABSENT_FIELD, "== 'slate'", "must be slate"))
    if profile.channels != (1, 2):
        allowed = ", ".join(map(str, profile.channels))
        rules.append((CHANNELS_FIELD, f"in [{allowed}]", f"must be {allowed}"))
    if profile.max_keyframe_seconds is not None:
        limit = profile.max_keyframe_seconds
        rules.append((KEYFRAME_FIELD, f"<= {limit}", f"must be at most {limit}"))
    checks = []
    for path, condition, asked in rules:
        present, value = _cel_path(path)
        checks.append((f"!({present}) || {value} {condition}", f"{path} {asked}"))
    return checks


def _url_check(profile: Profile, on: str) -> str | None:
    """A CEL condition that ``on``'s ``rtmpUrl`` has one of the profile's schemes (None: any)."""
    if profile.schemes == ("rtmp", "rtmps"):
        return None
    return " || ".join(f"{on}.{URL_FIELD}.startsWith('{s}://')" for s in profile.schemes)


def _named(profile: Profile, on: str) -> str:
    return f"has({on}.{PROFILE_FIELD}) && {on}.{PROFILE_FIELD} == '{profile.name}'"


def cel_rules() -> list[dict[str, str]]:
    """The CRD's rules on the spec object for what the parser refuses: the top-level
    destination's URL under its profile, and the stream's fields under every profile the call
    names (its own or a destination's)."""
    rules: list[dict[str, str]] = []
    for profile in PROFILES.values():
        label = f"profile {profile.name} ({profile.cdn})"
        named = _named(profile, "self")
        url = _url_check(profile, "self")
        if url is not None:
            message = f"{label}: {URL_FIELD} must be {' or '.join(profile.schemes)}://"
            rules.append({"rule": f"!({named}) || {url}", "message": message})
        anywhere = (
            f"({named}) || (has(self.{DESTINATIONS_FIELD}) && "
            f"self.{DESTINATIONS_FIELD}.exists(d, {_named(profile, 'd')}))"
        )
        for check, asked in _field_checks(profile):
            message = f"{label}, the spec's or a destination's: {asked}"
            rules.append({"rule": f"!({anywhere}) || {check}", "message": message})
    return rules


def destination_cel_rules() -> list[dict[str, str]]:
    """The CRD's rules on each ``destinations[]`` item: its URL under its own profile."""
    rules: list[dict[str, str]] = []
    for profile in PROFILES.values():
        url = _url_check(profile, "self")
        if url is not None:
            message = (
                f"profile {profile.name} ({profile.cdn}): {URL_FIELD} must be "
                f"{' or '.join(profile.schemes)}://"
            )
            rules.append({"rule": f"!({_named(profile, 'self')}) || {url}", "message": message})
    return rules
