"""Several destinations per call: the pure parts (the spec's list, the stream's state from its
destinations', what the operator sends a live bridge, what status shows of them)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from siprtmp_bridge.rtmp.fanout import aggregate_state
from siprtmp_contract.redact import Scrubber
from siprtmp_contract.spec import SpecError, parse_destinations, parse_spec
from siprtmp_contract.states import StreamState
from siprtmp_operator.destinations import live_destinations, refusal
from siprtmp_operator.policy import stream_keys
from siprtmp_operator.status import PodObservation, derive_status
from siprtmp_operator.statusmodel import BridgeStatus

BASE = {"callee": "sip:1@h", "rtmpUrl": "rtmp://a/live", "rtmpStream": "k1"}
MORE = [
    {"rtmpUrl": "rtmps://b.example:443/app", "rtmpStream": "key-two?s=sig123", "profile": "youtube"}
]


def test_the_spec_lists_its_own_destination_first_and_masks_every_key() -> None:
    spec = parse_spec({**BASE, "destinations": MORE})
    first, second = spec.destinations
    assert (first.publish_url, second.publish_url) == (
        "rtmp://a/live/k1",
        "rtmps://b.example:443/app/key-two?s=sig123",
    )
    assert second.profile == "youtube" and first.profile == "generic"
    assert second.redacted_url == "rtmps://b.example:443/app/***"
    assert spec.scrubber.text("to key-two?s=sig123 and sig123") == "to *** and ***"


@pytest.mark.parametrize(
    ("listed", "field"),
    [
        ([{"rtmpUrl": "http://x/y", "rtmpStream": "s"}], "destinations[0].rtmpUrl"),
        ([MORE[0], {"rtmpUrl": "rtmp://x/y"}], "destinations[1].rtmpStream"),
        ([{**MORE[0], "profile": "myspace"}], "destinations[0].profile"),
        ([{**MORE[0], "colour": "x"}], "destinations.colour"),
        ([{**MORE[0], "name": "Not a DNS label"}], "destinations.name"),
        ([MORE[0]] * 9, "destinations"),
        ("rtmp://x/y/s", "destinations"),
    ],
)
def test_a_bad_list_is_refused_naming_the_item(listed: object, field: str) -> None:
    with pytest.raises(SpecError) as error:
        parse_destinations(listed, "destinations")
    assert error.value.field_path == field
    assert "sig123" not in str(error.value)


def test_a_scrubber_widens_for_a_live_calls_new_key() -> None:
    scrubber = Scrubber.of(["first-key"])
    scrubber.widen(["later-key"])
    assert scrubber.text("first-key later-key") == "*** ***"


@pytest.mark.parametrize(
    ("states", "stream"),
    [
        ((StreamState.FAILED, StreamState.PUBLISHING), StreamState.PUBLISHING),
        ((StreamState.RECONNECTING, StreamState.FAILED), StreamState.RECONNECTING),
        ((StreamState.FAILED, StreamState.UNPUBLISHED), StreamState.UNPUBLISHED),
        ((StreamState.FAILED, StreamState.FAILED), StreamState.FAILED),
        ((StreamState.PENDING,), StreamState.PENDING),
    ],
)
def test_the_stream_fails_only_when_every_destination_has(
    states: tuple[StreamState, ...], stream: StreamState
) -> None:
    assert aggregate_state(states) is stream


def test_duplicate_stream_and_the_allowlist_apply_per_destination() -> None:
    spec = {**BASE, "destinations": [*MORE, {"rtmpUrl": "rtmp://c/live", "rtmpStream": "t"}]}
    assert stream_keys(spec) == (
        "rtmp://a:1935/live/k1",
        "rtmps://b.example:443/app/key-two?s=sig123",
        "rtmp://c:1935/live/t",
    )
    taken = {"rtmp://c:1935/live/t": "bridge other"}
    live = live_destinations(spec, (), taken.get)
    assert live.body == {"destinations": MORE}
    ((reason, message),) = live.left_out
    assert reason == "DuplicateStream" and "destinations[1] (rtmp://c/live/***)" in message
    refused = live_destinations(spec, ("a", "c"), lambda _: None)
    assert refused.body == {"destinations": [{"rtmpUrl": "rtmp://c/live", "rtmpStream": "t"}]}
    assert [reason for reason, _ in refused.left_out] == ["NotAllowed"]
    assert "sig123" not in str(refused.left_out)


def test_the_resource_shows_only_urls_its_spec_names() -> None:
    live = {
        "phase": "Streaming",
        "destinations": [
            {"id": 0, "url": "rtmp://a/live/***", "state": "PUBLISHING"},
            {"id": 3, "url": "rtmp://b/app/leaked-key", "state": "FAILED"},
        ],
    }
    running = PodObservation(phase="Running", pod_ip="10.0.0.1")
    status = derive_status(
        BridgeStatus(), running, live, ("rtmp://a/live", "rtmp://b/app"), datetime.now(UTC)
    )
    assert [(d["url"], d["state"]) for d in status.destinations] == [
        ("rtmp://a/live/***", "PUBLISHING"),
        ("***", "FAILED"),
    ]


def test_a_destinations_name_is_read_and_sent_to_the_bridge() -> None:
    """The name is how status and the REST API tell two destinations of one CDN apart."""
    named = [{**MORE[0], "name": "youtube-1"}, {**MORE[0], "rtmpStream": "other"}]
    first, second = parse_destinations(named, "destinations")
    assert (first.name, second.name) == ("youtube-1", None)
    assert live_destinations({**BASE, "destinations": named}, (), lambda _: None).body == {
        "destinations": named
    }


def test_a_list_the_bridge_refused_is_one_warning_quoting_its_line() -> None:
    line = "spec.destinations[0].profile: is not met by this call's stream (…)"
    assert refusal({"error": line}) == (
        "InvalidSpec",
        f"the bridge refused spec.destinations: {line}",
    )
    assert refusal({"error": 3})[1].endswith("no reason given")
