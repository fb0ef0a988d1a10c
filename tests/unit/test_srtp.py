"""SDES (RFC 4568) as text: a=crypto parsed and written, the suite a call negotiated, how the
video m-line is keyed under each mediaEncryption, and when ``require`` ends a call."""

from __future__ import annotations

import base64

import pytest

from siprtmp_bridge.rtp.srtp import (
    SUITES,
    Crypto,
    VideoKeys,
    audio_profile,
    choose_crypto,
    negotiated_suite,
    new_crypto,
    parse_crypto,
    refuses_plain_offer,
    require_refused,
    sdp_body,
    video_keys,
)
from siprtmp_bridge.video.sdp import parse_video_offer
from siprtmp_contract.outcome import ExitCode, Reason
from siprtmp_contract.spec import SpecError, parse_spec

KEY_80 = base64.b64encode(bytes(range(30))).decode()
KEY_GCM = base64.b64encode(bytes(range(28))).decode()


def test_a_crypto_line_is_read_and_written_back_alike() -> None:
    crypto = parse_crypto(f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_80}|2^20")
    assert crypto == Crypto(1, "AES_CM_128_HMAC_SHA1_80", bytes(range(30)))
    assert crypto.attribute() == f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_80}"
    assert parse_crypto(crypto.attribute().removeprefix("a=crypto:")) == crypto


@pytest.mark.parametrize(
    "value",
    [
        f"1 AES_256_CM_HMAC_SHA1_80 inline:{KEY_80}",  # a suite the relay does not apply
        f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_GCM}",  # a key of the wrong length
        f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_80}|2^20|1:4",  # an MKI
        "1 AES_CM_128_HMAC_SHA1_80 inline:not*base64",
        "AES_CM_128_HMAC_SHA1_80 inline:x",  # no tag
    ],
)
def test_lines_the_relay_cannot_apply_are_refused(value: str) -> None:
    assert parse_crypto(value) is None


def test_new_keys_are_random_and_of_the_suites_length() -> None:
    first, second = (new_crypto(3, "AEAD_AES_256_GCM") for _ in range(2))
    assert len(first.key) == SUITES["AEAD_AES_256_GCM"] == 44 and first.key != second.key
    assert (first.tag, first.suite) == (3, "AEAD_AES_256_GCM")


def test_the_first_offered_line_the_bridge_applies_is_answered() -> None:
    offered = [f"1 AES_256_CM_HMAC_SHA1_80 inline:{KEY_80}", f"2 AEAD_AES_128_GCM inline:{KEY_GCM}"]
    chosen = choose_crypto(offered)
    assert chosen is not None and (chosen.tag, chosen.suite) == (2, "AEAD_AES_128_GCM")
    assert choose_crypto(offered[:1]) is None


def _sdp(proto: str, *cryptos: str, media: str = "audio") -> str:
    lines = ["v=0", "c=IN IP4 127.0.0.1", f"m={media} 4000 {proto} 0"]
    return "\r\n".join([*lines, *(f"a=crypto:{c}" for c in cryptos)]) + "\r\n"


def test_the_negotiated_suite_is_the_one_the_answer_took_from_the_offer() -> None:
    offer = _sdp("RTP/SAVP", f"1 AES_256_CM_HMAC_SHA1_80 inline:{KEY_80}", f"2 X inline:{KEY_80}")
    answer = _sdp("RTP/SAVP", f"2 X inline:{KEY_80}")
    assert negotiated_suite(offer, answer) == negotiated_suite(answer, offer) == "X"
    assert negotiated_suite(_sdp("RTP/AVP", f"1 X inline:{KEY_80}"), _sdp("RTP/AVP")) is None
    assert negotiated_suite("", answer) is None


def test_the_audio_profile_is_the_far_ends_and_a_not_acceptable_refusal_may_be_srtps() -> None:
    assert audio_profile(_sdp("RTP/SAVP", f"1 X inline:{KEY_80}")) == "RTP/SAVP"
    assert audio_profile(_sdp("RTP/AVP", f"1 X inline:{KEY_80}")) == "RTP/AVP"
    assert audio_profile("") is None
    assert [code for code in (404, 415, 486, 488, 603, 606) if refuses_plain_offer(code)] == [
        488,
        606,
    ]


def test_the_sdp_of_a_sip_message_is_its_body_when_it_says_so() -> None:
    body = _sdp("RTP/AVP")
    head = "SIP/2.0 200 OK\r\nCall-ID: x\r\n"
    assert sdp_body(f"{head}Content-Type: application/sdp\r\n\r\n{body}") == body
    assert sdp_body(f"{head}c: application/sdp\r\n\r\n{body}") == body
    assert sdp_body(f"{head}Content-Type: text/plain\r\n\r\nhello") is None
    assert sdp_body(f"{head}Content-Length: 0\r\n\r\n") is None


@pytest.mark.parametrize(
    ("mode", "proto", "cryptos", "expected"),
    [
        ("allow", "RTP/SAVP", (f"1 AES_CM_128_HMAC_SHA1_32 inline:{KEY_80}",), "keys"),
        ("require", "RTP/SAVP", (f"1 AES_CM_128_HMAC_SHA1_32 inline:{KEY_80}",), "keys"),
        ("allow", "RTP/AVP", (f"1 AES_CM_128_HMAC_SHA1_32 inline:{KEY_80}",), "keys"),
        ("disable", "RTP/AVP", (f"1 AES_CM_128_HMAC_SHA1_32 inline:{KEY_80}",), "plain"),
        ("allow", "RTP/AVP", (), "plain"),
        ("disable", "RTP/SAVP", (f"1 AES_CM_128_HMAC_SHA1_32 inline:{KEY_80}",), "declined"),
        ("allow", "RTP/SAVP", (f"1 AES_256_CM_HMAC_SHA1_80 inline:{KEY_80}",), "declined"),
        ("require", "RTP/AVP", (), "declined"),
    ],
)
def test_how_the_video_m_line_is_answered(
    mode: str, proto: str, cryptos: tuple[str, ...], expected: str
) -> None:
    keys = video_keys(mode, proto, cryptos)
    kind = {VideoKeys: "keys", type(None): "plain", str: "declined"}[type(keys)]
    assert kind == expected, keys
    if isinstance(keys, VideoKeys):  # the answer: the offer's tag and suite, a key of its own
        assert (keys.local.tag, keys.local.suite) == (keys.remote.tag, keys.remote.suite)
        assert keys.local.key != keys.remote.key
        assert video_keys(mode, proto, cryptos, keys.local) == keys  # kept on a re-INVITE


def test_the_video_offers_keys_are_read_from_its_m_line() -> None:
    sdp = _sdp("RTP/AVP") + f"m=video 5000 RTP/SAVP 96\r\na=crypto:1 X inline:{KEY_80}\r\n"
    offer = parse_video_offer(sdp)
    assert offer is not None and offer.cryptos == (f"1 X inline:{KEY_80}",)


def test_require_ends_a_call_refused_or_answered_without_keys_with_its_own_reason() -> None:
    refused = require_refused(488, "Not Acceptable Here", "")
    assert refused is not None and (refused.reason, refused.exit_code) == (
        Reason.SRTP_REFUSED,
        ExitCode.REJECTED,
    )
    plain = require_refused(200, "OK", _sdp("RTP/AVP"))
    assert plain is not None and "audio RTP/AVP without SRTP keys" in plain.message
    assert require_refused(486, "Busy Here", "") is None
    assert require_refused(200, "OK", _sdp("RTP/SAVP", f"1 X inline:{KEY_80}")) is None
    assert not Reason.SRTP_REFUSED.retryable


def test_media_encryption_is_a_connection_field_defaulting_to_allow() -> None:
    base = {"callee": "sip:a@b", "rtmpUrl": "rtmp://cdn/live", "rtmpStream": "s"}
    assert parse_spec(base).connection.media_encryption == "allow"
    nested = parse_spec({**base, "connection": {"mediaEncryption": "Require"}})
    assert nested.connection.media_encryption == "require"
    assert parse_spec({**base, "mediaEncryption": "disable"}).connection.media_encryption == (
        "disable"
    )  # the seed's flat body
    with pytest.raises(SpecError, match=r"connection\.mediaEncryption: must be one of"):
        parse_spec({**base, "connection": {"mediaEncryption": "sdes"}})
