"""Destination profiles on a call with several destinations: the stream, encoded once, meets
every profile among them (the defaults combine), what one of them refuses is refused naming
the field, and a live call takes only the destinations its stream meets."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from siprtmp_bridge.video.slate import x264_params
from siprtmp_contract.profiles import (
    PROFILES,
    TWITCH_SLATE_BITRATE,
    Output,
    combined_defaults,
    stream_problem,
)
from siprtmp_contract.spec import (
    SpecError,
    check_live_destinations,
    parse_destinations,
    parse_resource_spec,
    parse_spec,
)

BASE = {"callee": "sip:1@h", "rtmpUrl": "rtmp://a/live", "rtmpStream": "k"}


def destination(profile: str, url: str = "rtmps://b.example/app") -> dict[str, Any]:
    return {"rtmpUrl": url, "rtmpStream": f"k-{profile}", "profile": profile}


COMBINATIONS = [
    combination
    for size in range(1, len(PROFILES) + 1)
    for combination in itertools.combinations(PROFILES.values(), size)
]


@pytest.mark.parametrize("profiles", COMBINATIONS, ids=lambda c: "+".join(p.name for p in c))
def test_the_combined_defaults_meet_every_profile_they_combine(profiles: tuple[Any, ...]) -> None:
    """What the CEL rules rely on: a field left out never breaks a rule of the call's profiles."""
    spec = parse_resource_spec({**BASE, "destinations": [destination(p.name) for p in profiles]})
    for profile in profiles:
        assert stream_problem(profile, spec.output) is None, profile.name


def test_defaults_combine_into_the_strictest() -> None:
    youtube, facebook, twitch = (PROFILES[name] for name in ("youtube", "facebook", "twitch"))
    assert combined_defaults([youtube, twitch])["video.maxKeyframeIntervalSeconds"] == 2
    assert combined_defaults([youtube, twitch])["audio.bitrate"] == 160000
    assert combined_defaults([PROFILES["generic"]]) == {}
    assert combined_defaults([facebook, youtube]) == combined_defaults([youtube, facebook])


def test_a_destinations_profile_sets_the_calls_stream() -> None:
    spec = parse_resource_spec({**BASE, "destinations": [destination("youtube")]})
    assert spec.profile == "generic"  # the call's own destination names none
    assert [d.profile for d in spec.destinations] == ["generic", "youtube"]
    assert (spec.video.slate, spec.audio.channels, spec.audio.bitrate) == (True, 2, 128000)
    assert spec.video.max_keyframe_interval_seconds == 4
    assert spec.video.slate_bitrate is None  # only Twitch asks for a constant bitrate
    both = parse_resource_spec(
        {**BASE, "profile": "youtube", "destinations": [destination("twitch")]}
    )
    assert both.video.max_keyframe_interval_seconds == 2
    assert both.video.slate_bitrate == TWITCH_SLATE_BITRATE
    assert [d.profile for d in both.destinations] == ["youtube", "twitch"]  # status shows them
    plain = parse_resource_spec({**BASE, "destinations": [destination("generic")]})
    assert (plain.video.slate, plain.audio.channels, plain.video.slate_bitrate) == (False, 1, None)


@pytest.mark.parametrize(
    ("extra", "line"),
    [
        (
            {"destinations": [destination("generic"), destination("facebook", "rtmp://b/app")]},
            "spec.destinations[1].rtmpUrl: must be an rtmps:// URL for profile facebook "
            "(Facebook Live)",
        ),
        (
            {"destinations": [destination("youtube")], "video": {"whenAbsent": "audioOnly"}},
            "spec.video.whenAbsent: must be slate for profile youtube: YouTube Live needs a "
            "video track (the profile of destinations[0])",
        ),
        (
            {"destinations": [destination("facebook")], "audio": {"channels": 1}},
            "spec.audio.channels: must be 2 for profile facebook (Facebook Live) (the profile "
            "of destinations[0])",
        ),
        (
            {
                "profile": "youtube",
                "destinations": [destination("twitch")],
                "video": {"maxKeyframeIntervalSeconds": 4},
            },
            "spec.video.maxKeyframeIntervalSeconds: must be at most 2 for profile twitch "
            "(Twitch) (the profile of destinations[0])",
        ),
    ],
)
def test_what_a_destinations_profile_refuses_is_one_line_naming_the_field(
    extra: dict[str, Any], line: str
) -> None:
    for parse in (parse_spec, parse_resource_spec):
        with pytest.raises(SpecError) as error:
            parse({**BASE, **extra})
        assert str(error.value) == line


def test_the_rest_apis_reading_follows() -> None:
    """The seed's forms (a string port, a profile in any case), then the same rules."""
    with pytest.raises(SpecError) as error:
        parse_spec({**BASE, "destinations": [destination("Facebook", "rtmp://b/app")]})
    assert error.value.field_path == "destinations[0].rtmpUrl"
    body = {**BASE, "sipPort": "5060", "destinations": [destination("Facebook")]}
    assert parse_spec(body).video.slate


def test_a_live_call_takes_only_the_destinations_its_stream_meets() -> None:
    audio_only = parse_spec(BASE)
    generic = parse_destinations([destination("generic")], "destinations")
    check_live_destinations(audio_only, generic, "destinations")
    youtube = parse_destinations([destination("generic"), destination("youtube")], "destinations")
    with pytest.raises(SpecError) as error:
        check_live_destinations(audio_only, youtube, "destinations")
    assert error.value.field_path == "destinations[1].profile"
    assert "video.whenAbsent must be slate" in str(error.value)
    # A slate, but not at a constant bitrate: Twitch's rule, which no spec field sets.
    slated = parse_spec({**BASE, "profile": "youtube", "video": {"maxKeyframeIntervalSeconds": 2}})
    twitch = parse_destinations([destination("twitch")], "destinations")
    with pytest.raises(SpecError) as error:
        check_live_destinations(slated, twitch, "destinations")
    assert "constant 500 kb/s" in str(error.value)
    cbr = parse_spec({**BASE, "profile": "twitch"})
    check_live_destinations(cbr, twitch, "destinations")


def test_twitchs_rule_judges_only_a_stream_with_video() -> None:
    twitch = PROFILES["twitch"]
    assert stream_problem(twitch, Output(False, 2, 2, None)) is None
    assert stream_problem(twitch, Output(True, 2, 2, None)) is not None
    assert stream_problem(twitch, Output(True, 2, 2, TWITCH_SLATE_BITRATE)) is None


def test_the_slate_is_encoded_cbr_only_when_asked() -> None:
    assert "nal-hrd" not in x264_params(2, None)
    assert x264_params(2, 500_000).endswith(
        ":nal-hrd=cbr:bitrate=500:vbv-maxrate=500:vbv-bufsize=500"
    )
