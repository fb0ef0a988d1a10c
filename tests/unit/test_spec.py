"""Spec parsing: the resource's shape, the seed's REST body, and one clear line per mistake."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from siprtmp_contract.dtmf import (
    SEQUENCE_PATTERN,
    DtmfError,
    DtmfMethod,
    parse_digits,
)
from siprtmp_contract.fields import canonical_codec
from siprtmp_contract.spec import (
    BOUNDS,
    DEFAULT_CODECS,
    SpecError,
    load_spec_file,
    parse_spec,
)

REPO = Path(__file__).resolve().parents[2]
BASE = {"callee": "sip:conf@pbx.example.com", "rtmpUrl": "rtmp://cdn/live", "rtmpStream": "s"}


def test_defaults_for_a_minimal_spec() -> None:
    spec = parse_spec(BASE)
    assert spec.callee == "sip:conf@pbx.example.com"
    assert spec.publish_url == "rtmp://cdn/live/s"
    assert spec.has_audio is True
    assert spec.codecs == DEFAULT_CODECS
    assert spec.audio.sample_rate == 48000
    assert spec.call_id.startswith("call-")
    assert spec.connection.sip_transport == "udp"
    assert spec.rtmp_tls_verify is True


def test_seed_rest_body_with_string_booleans_and_ports() -> None:
    spec = parse_spec(
        {
            "callId": "R2fhkll5Sw3lK",
            "callee": "1000",
            "rtmpUrl": "rtmp://cdn/live/",
            "rtmpStream": "streamName",
            "hasAudio": "false",
            "hasVideo": "true",
            "rtmpTlsVerify": "false",
            "connection": {
                "sipLogin": "me",
                "sipPassword": "pw",
                "sipAuthenticationName": "auth",
                "sipDomain": "example.sip.twilio.com",
                "sipPort": "5060",
                "sipRegisterRequired": "false",
                "appKey": "callApp",
            },
        }
    )
    assert spec.call_id == "R2fhkll5Sw3lK"
    assert spec.callee == "sip:1000@example.sip.twilio.com:5060"
    assert spec.publish_url == "rtmp://cdn/live/streamName"
    assert (spec.has_audio, spec.has_video, spec.rtmp_tls_verify) == (False, True, False)
    assert spec.connection.auth_user == "auth"
    assert spec.connection.sip_port == 5060
    assert "pw" not in repr(spec)


def test_flat_startup_shape_puts_connection_fields_on_top() -> None:
    spec = parse_spec(
        {**BASE, "callee": "1000", "sipDomain": "pbx", "sipLogin": "me", "sipTransport": "tls"}
    )
    assert spec.callee == "sip:1000@pbx;transport=tls"
    assert spec.connection.sip_login == "me"
    assert spec.connection.port_or_default == 5061


def test_authentication_name_falls_back_to_login() -> None:
    spec = parse_spec({**BASE, "connection": {"sipLogin": "me", "sipPassword": "x"}})
    assert spec.connection.auth_user == "me"


def test_password_file_wins_over_clear_password(tmp_path: Path) -> None:
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(
        "apiVersion: siprtmp.io/v1alpha1\nkind: SipRtmpBridge\nspec:\n"
        "  callee: sip:a@b\n  rtmpUrl: rtmp://h/live\n  rtmpStream: s\n"
        "  connection:\n    sipLogin: me\n    sipPasswordSecretRef: {name: sec, key: password}\n"
    )
    secret = tmp_path / "password"
    secret.write_text("from-secret\n")
    spec = load_spec_file(spec_file, secret)
    assert spec.connection.sip_password == "from-secret"


def test_secret_ref_without_password_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="sipPasswordSecretRef: is set but no password file"):
        parse_spec(
            {
                **BASE,
                "connection": {"sipLogin": "me", "sipPasswordSecretRef": {"name": "a", "key": "b"}},
            }
        )


def test_codec_aliases_and_order() -> None:
    spec = parse_spec({**BASE, "codecs": "ulaw, alaw G722"})
    assert spec.codecs == ("PCMU", "PCMA", "G722")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"callee": ""}, "spec.callee: is required"),
        ({"callee": "sip:"}, "spec.callee: is not a valid SIP URI"),
        ({"rtmpUrl": "rtmp:///live"}, "spec.rtmpUrl: must be an rtmp:// or rtmps:// URL"),
        ({"rtmpUrl": "rtmp://h"}, "spec.rtmpUrl: must name an application"),
        ({"rtmpUrl": "rtmp://h:99999/live"}, "spec.rtmpUrl: has an invalid port"),
        ({"rtmpStream": "a b"}, "spec.rtmpStream"),
        ({"hasVideo": "yes"}, "spec.hasVideo: must be true or false"),
        ({"rtmpTlsVerify": "no"}, "spec.rtmpTlsVerify: must be true or false"),
        ({"connection": {"sipPort": 70000}}, "spec.connection.sipPort: must be between"),
        ({"connection": {"sipRegisterRequired": True}}, "needs connection.sipDomain"),
        ({"connection": {"sipPassword": "x"}}, "spec.connection.sipLogin: is required"),
        ({"connection": {"sipDomain": "bad host"}}, "spec.connection.sipDomain"),
        ({"connection": {"sipOutboundProxy": "sip:bad host"}}, "spec.connection.sipOutboundProxy"),
        ({"connection": "x"}, "spec.connection: must be an object"),
        ({"codecs": []}, "spec.codecs: must list at least one codec"),
        ({"audio": {"sampleRate": 32000}}, "spec.audio.sampleRate: must be 44100 or 48000"),
        ({"audio": {"bitrate": 1}}, "spec.audio.bitrate: must be between"),
        ({"nat": {"rtpPortMin": 5000, "rtpPortMax": 5000}}, "spec.nat.rtpPortMax"),
        ({"nat": {"stunServers": ["bad host:3478"]}}, "spec.nat.stunServers"),
        ({"nat": {"stunServers": ["stun.example.org:99999"]}}, "spec.nat.stunServers"),
        (
            {"callSetupTimeoutSeconds": 0},
            "spec.callSetupTimeoutSeconds: must be a number from 1 to 600",
        ),
        ({"maxDurationSeconds": "nan"}, "spec.maxDurationSeconds"),
        ({"unknownField": 1}, "spec.unknownField: is not a known field"),
        ({"dtmfAfterAnswer": "12x"}, "spec.dtmfAfterAnswer: has characters that are neither"),
        ({"dtmfAfterAnswer": "Ww"}, "spec.dtmfAfterAnswer: has only pauses"),
        ({"dtmfAfterAnswer": 1234}, "spec.dtmfAfterAnswer: is required: a string"),
        ({"dtmfAfterAnswer": "1", "dtmfMethod": "inband"}, "spec.dtmfMethod: must be one of"),
        ({"dtmfAfterAnswer": "1", "hasAudio": False}, "spec.dtmfAfterAnswer: RFC2833 keys"),
    ],
)
def test_each_mistake_names_its_field(change: dict[str, object], message: str) -> None:
    with pytest.raises(SpecError) as error:
        parse_spec({**BASE, **change})
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_dtmf_after_answer_and_its_method() -> None:
    spec = parse_spec({**BASE, "dtmfAfterAnswer": "W1234#", "dtmfMethod": "info"})
    assert (spec.dtmf_after_answer, spec.dtmf_method) == ("W1234#", DtmfMethod.INFO)
    assert "1234" not in repr(spec)  # a conference PIN stays out of logs
    assert parse_spec(BASE).dtmf_after_answer == ""
    assert parse_spec({**BASE, "dtmfAfterAnswer": "1"}).dtmf_method is DtmfMethod.RFC2833
    recvonly = parse_spec({**BASE, "hasAudio": False, "dtmfAfterAnswer": "1", "dtmfMethod": "INFO"})
    assert recvonly.dtmf_after_answer == "1"


def test_the_crd_checks_dtmf_after_answer_as_the_bridge_does() -> None:
    crd = yaml.safe_load((REPO / "crds" / "siprtmpbridges.siprtmp.io.yaml").read_text())
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec["properties"]["dtmfAfterAnswer"]["pattern"] == SEQUENCE_PATTERN
    assert spec["properties"]["dtmfMethod"]["enum"] == [m.value for m in DtmfMethod]
    samples = ("W1234#", "12w3", "abcd", "1" * 40, "1" * 32, "w1" * 32, "", "Ww", "12 3", "1x", "E")
    for sample in samples:
        accepted = re.match(SEQUENCE_PATTERN, sample) is not None
        try:
            parse_digits(sample)
        except DtmfError:
            parsed = False
        else:
            parsed = True
        assert accepted == parsed, sample


def test_stream_key_and_credentials_are_redacted() -> None:
    spec = parse_spec({**BASE, "rtmpUrl": "rtmps://user:pw@cdn:443/app", "rtmpStream": "key"})
    assert spec.redacted_publish_url == "rtmps://***@cdn:443/app/***"


def test_malformed_file_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "spec.json"
    path.write_text("{not json")
    with pytest.raises(SpecError, match=r"^spec.file: .* is neither valid JSON nor YAML"):
        load_spec_file(path)


def test_nat_settings_and_proxy_forms() -> None:
    spec = parse_spec(
        {
            **BASE,
            "nat": {
                "stunServers": ["stun.example.org:3478", "[2001:db8::1]:3478", "10.0.0.1"],
                "publicAddress": "203.0.113.7",
                "rtpPortMin": 40000,
                "rtpPortMax": 40009,
            },
            "connection": {"sipOutboundProxy": "proxy.example.org:5080"},
        }
    )
    assert spec.nat.stun_servers == ("stun.example.org:3478", "[2001:db8::1]:3478", "10.0.0.1")
    assert (spec.nat.rtp_port_min, spec.nat.rtp_port_max) == (40000, 40009)
    assert spec.connection.sip_outbound_proxy == "sip:proxy.example.org:5080;lr"


@pytest.mark.parametrize(
    ("written", "canonical"),
    [
        ("PCMU/8000", "PCMU"),
        ("pcma/8000/1", "PCMA"),
        ("ulaw", "PCMU"),
        ("G722/8000", "G722"),
        ("G722/16000/1", "G722"),
        ("speex", "speex/16000"),
        ("speex/32000", "speex/32000"),
        ("gsm", "GSM"),
        ("opus/48000/2", None),
        ("PCMU/16000", None),
        ("speex/11025", None),
    ],
)
def test_codec_forms(written: str, canonical: str | None) -> None:
    assert canonical_codec(written) == canonical


HOSTILE_NUMBERS = [
    "5" * 5000,  # past Python's 4300-digit limit for int()
    "\u00b2",  # a superscript two: str.isdigit() says yes, int() says no
    "\u0665\u0660\u0666\u0660",  # Arabic-Indic digits, which int() would read as 5060
    1e400,  # JSON's 1e400 is infinity
    -1e400,
    float("nan"),
    10**5000,
    "1e400",
    "inf",
    "nan",
    True,
]


@pytest.mark.parametrize("value", HOSTILE_NUMBERS, ids=range(len(HOSTILE_NUMBERS)))
@pytest.mark.parametrize(
    "path",
    ["connection.sipPort", "callSetupTimeoutSeconds", "maxDurationSeconds", "audio.bitrate"],
)
def test_a_hostile_number_is_refused_naming_its_field(path: str, value: object) -> None:
    """One SpecError with a short message, never another exception (a 500 at the REST API)."""
    *parents, name = path.split(".")
    spec: dict[str, object] = dict(BASE)
    target = spec
    for parent in parents:
        target = target.setdefault(parent, {})  # type: ignore[assignment]
    target[name] = value
    with pytest.raises(SpecError) as error:
        parse_spec(spec)
    assert f"spec.{path}: must be" in str(error.value)
    assert len(str(error.value)) < 200


def crd_numbers() -> dict[str, dict[str, Any]]:
    """Every integer or number field of the CRD's spec schema, by its path."""
    crd = yaml.safe_load((REPO / "crds" / "siprtmpbridges.siprtmp.io.yaml").read_text())
    root = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    found: dict[str, dict[str, Any]] = {}

    def walk(schema: dict[str, Any], prefix: str) -> None:
        for name, sub in (schema.get("properties") or {}).items():
            if sub.get("type") in ("integer", "number"):
                found[prefix + name] = sub
            walk(sub, f"{prefix}{name}.")

    walk(root, "")
    return found


def test_the_crd_bounds_every_number_as_the_bridge_does() -> None:
    crd = crd_numbers()
    # Set by the operator in the pod's copy of the spec only (its host-port window).
    assert set(BOUNDS) - set(crd) == {"networking.sipLocalPort"}
    assert set(crd) - set(BOUNDS) == set(), "a number of the CRD the bridge does not bound"
    for path, schema in crd.items():
        low, high = BOUNDS[path]
        if "enum" in schema:
            assert all(low <= value <= high for value in schema["enum"]), path
        else:
            assert (schema["minimum"], schema["maximum"]) == (low, high), path


def test_the_stream_key_may_come_from_its_secrets_mounted_file(tmp_path: Path) -> None:
    ref = {"name": "cdn", "key": "stream"}
    path = tmp_path / "spec.json"
    path.write_text(
        json.dumps(
            {**{k: v for k, v in BASE.items() if k != "rtmpStream"}, "rtmpStreamSecretRef": ref}
        )
    )
    key_file = tmp_path / "key"
    key_file.write_text("barstream?s_sc=SEKRIT7731\n")
    spec = load_spec_file(path, stream_file=key_file)
    assert spec.rtmp_stream == "barstream?s_sc=SEKRIT7731"
    assert "SEKRIT7731" in spec.publish_url and "SEKRIT7731" not in spec.redacted_publish_url
    with pytest.raises(SpecError, match="rtmpStreamSecretRef: is set but no stream key file"):
        load_spec_file(path)
    with pytest.raises(SpecError, match="rtmpStreamSecretRef: is an alternative to rtmpStream"):
        parse_spec({**BASE, "rtmpStreamSecretRef": ref}, rtmp_stream="k")
    with pytest.raises(SpecError, match="rtmpStreamSecretRef: must have a name and a key"):
        parse_spec({**BASE, "rtmpStream": None, "rtmpStreamSecretRef": {"name": "x"}})
