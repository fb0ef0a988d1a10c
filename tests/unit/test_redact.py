"""Redaction with hostile stream keys: ``?``, ``&``, ``#``, ``/``, quotes, backslashes and
non-ASCII, in every form the bridge's outputs may carry them (raw, repr'd by PyAV's errors,
JSON, percent-encoded)."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from siprtmp_contract.redact import (
    MASK,
    Scrubber,
    key_parts,
    redact_url,
    redacted_publish_url,
    url_secrets,
)
from siprtmp_contract.spec import parse_spec

# Every character a key may hold except whitespace (the spec refuses it) and the mask's own
# asterisk (a key of asterisks beside a mask would look like itself without being shown).
KEY_CHARACTERS = st.characters(
    blacklist_categories=("Zs", "Zl", "Zp", "Cc", "Cs"), blacklist_characters="*"
)
KEYS = st.text(KEY_CHARACTERS, min_size=3, max_size=40).filter(lambda k: not k.startswith("/"))
BASE = {"callee": "sip:peer@127.0.0.1", "rtmpUrl": "rtmp://127.0.0.1:1935/live"}


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        ("rtmp://h/live", "rtmp://h/live"),
        ("rtmp://u:p@h:1935/live?token=1", "rtmp://***@h:1935/live?***"),
        ("rtmp://h/live#frag", "rtmp://h/live#***"),
        ("rtmp://[::1]:1935/live", "rtmp://[::1]:1935/live"),
        ("rtmp://h:99999/live", MASK),
    ],
)
def test_redact_url_masks_credentials_and_keeps_host_port_path(url: str, redacted: str) -> None:
    assert redact_url(url) == redacted


def test_the_publish_url_is_the_redacted_application_and_a_mask() -> None:
    assert redacted_publish_url("rtmps://h.example/app/") == "rtmps://h.example/app/***"
    assert redacted_publish_url("rtmp://u:p@h/app?t=1") == "rtmp://***@h/app?***/***"


@given(KEYS, KEYS)
@example("barstream?s_bl=1&s_sc=SEKRIT7731&s_sw=0", "other")
@example("team/abc#x", "key?a=b")
def test_the_redacted_publish_url_does_not_depend_on_the_key(key: str, other: str) -> None:
    """Nothing of the key can show: two keys give the same redacted URL."""
    one = parse_spec({**BASE, "rtmpStream": key}).redacted_publish_url
    assert one == parse_spec({**BASE, "rtmpStream": other}).redacted_publish_url
    assert one == "rtmp://127.0.0.1:1935/live/***"


@given(KEYS)
@example("barstream?s_bl=1&s_sc=SEKRIT7731&s_sw=0#frag")
@example("it's\"a\\key?x=1")
@example("#?000")  # a fragment before the arguments: they still print on their own
def test_a_key_never_survives_in_any_printed_form(key: str) -> None:
    spec = parse_spec({**BASE, "rtmpStream": key})
    scrub = spec.scrubber.text
    # PyAV's error string: strerror, then the URL it was given, repr'd; the key as the repr
    # shows it is what follows the (plain ASCII) application URL in that repr.
    error = str(OSError(32, "Broken pipe", spec.publish_url))
    key_as_repr_shows_it = repr(spec.publish_url)[1:-1].removeprefix(BASE["rtmpUrl"] + "/")
    assert key_as_repr_shows_it in error
    assert key_as_repr_shows_it not in scrub(error)
    assert scrub(error).startswith("[Errno 32] Broken pipe: ")
    printed = {
        key: f"to {spec.publish_url} failed",
        quote(key, safe=""): f"GET /{quote(key, safe='')} 404",
        key.partition("?")[2]: f"name={key.partition('?')[0]} args={key.partition('?')[2]}",
    }
    for secret, text in printed.items():
        if len(secret) >= 3:
            assert secret not in scrub(text)
    document = spec.scrubber.document({"message": error, "nested": [{"k": spec.publish_url}]})
    assert key not in json.dumps(document, ensure_ascii=False)
    assert json.dumps(key)[1:-1] not in json.dumps(document)


def test_a_facebook_keys_pieces_are_masked_where_printed_alone() -> None:
    parts = key_parts("barstream?s_bl=1&s_sc=SEKRIT7731&s_sw=0#frag=FR4GTOKEN9")
    rest = "s_bl=1&s_sc=SEKRIT7731&s_sw=0#frag=FR4GTOKEN9"
    assert {"barstream", "SEKRIT7731", "FR4GTOKEN9", rest} <= set(parts)
    assert "s_bl" not in parts  # parameter names stay readable
    scrubber = Scrubber.of(parts)
    line = "nginx: publish name='barstream' args='s_bl=1&s_sc=SEKRIT7731' sig SEKRIT7731"
    assert scrubber.text(line) == "nginx: publish name='***' args='s_bl=1&s_sc=***' sig ***"


def test_url_secrets_are_userinfo_query_values_and_fragment() -> None:
    found = set(url_secrets("rtmp://user:pa55word@h/live?token=T0KEN123&x=1#F"))
    assert {"user", "pa55word", "token=T0KEN123&x=1", "T0KEN123", "F"} <= found


def test_short_secrets_are_left_alone() -> None:
    assert Scrubber.of(["ab", None, ""]).text("ab cd") == "ab cd"
    assert Scrubber.of(["hunter22"]).text("auth with hunter22 failed") == "auth with *** failed"
