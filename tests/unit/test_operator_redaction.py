"""The operator's log masks secret spec fields by shape, however kopf prints a resource."""

from __future__ import annotations

import json

import pytest

from siprtmp_operator.redaction import SECRET_FIELD_NAMES, mask_secret_fields

KEY = "main?s_bl=1&s_sc=SIG4410&s_sw=0"
QUOTED = "it's\"both"  # repr escapes one quote kind when it holds both


def test_the_secret_fields_come_from_the_field_model() -> None:
    assert {"rtmpUrl", "rtmpStream", "sipPassword"} <= SECRET_FIELD_NAMES
    assert "callee" not in SECRET_FIELD_NAMES


@pytest.mark.parametrize(
    "printed",
    [
        repr({"spec": {"rtmpStream": KEY, "callee": "sip:a@b"}}),
        repr({"spec": {"rtmpStream": "it's"}}),  # repr in double quotes
        repr({"spec": {"rtmpStream": QUOTED}}),
        json.dumps({"spec": {"rtmpStream": KEY, "callee": "sip:a@b"}}),
        json.dumps({"spec": {"rtmpStream": QUOTED}}),
        # kopf's last-handled-configuration annotation: JSON inside a repr'd dict...
        repr({"annotations": {"kopf/last": json.dumps({"spec": {"rtmpStream": KEY}})}}),
        # ... and JSON inside JSON.
        json.dumps({"annotations": {"kopf/last": json.dumps({"spec": {"rtmpStream": KEY}})}}),
        repr((("change", ("spec", "rtmpStream"), "old-KEYOLD1", KEY),)),
        repr((("add", ("spec", "rtmpStream"), None, KEY),)),
        repr((("change", ("spec", "destinations"), [], [{"rtmpStream": KEY, "name": "a"}]),)),
    ],
)
def test_kopf_shapes_are_masked(printed: str) -> None:
    masked = mask_secret_fields(f"Creation is in progress: {printed}")
    for piece in ("SIG4410", "main?", "KEYOLD1", "it's", "both"):
        assert piece not in masked, masked
    assert masked.startswith("Creation is in progress: ")


def test_other_fields_and_urls_stay_readable() -> None:
    text = repr({"callee": "sip:room@x.test", "rtmpUrl": "rtmp://u:pw12@h/live", "name": "a"})
    masked = mask_secret_fields(text)
    assert "sip:room@x.test" in masked and "'name': 'a'" in masked
    assert "pw12" not in masked and "'rtmpUrl': '***'" in masked
