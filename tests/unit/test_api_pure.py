"""The REST API's pure parts: body parsing, manifests, call views, token and CORS, OpenAPI."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate

from siprtmp_contract.fields import BY_PATH
from siprtmp_contract.spec import (
    CONNECTION_FIELDS,
    SPEC_FIELDS,
    parse_destinations,
)
from siprtmp_contract.states import (
    CallState,
    StreamState,
)
from siprtmp_operator.api.auth import authorized, cors_headers
from siprtmp_operator.api.bodies import (
    BOOLEAN_FIELDS,
    CALL_ID,
    DESTINATION_FIELDS,
    INTEGER_FIELDS,
    PushRef,
    PushRequest,
    StartupRequest,
    parse_find,
    parse_json,
    parse_push,
    parse_push_ref,
    parse_send_dtmf,
    parse_startup,
)
from siprtmp_operator.api.errors import ApiError
from siprtmp_operator.api.manifests import (
    MAX_NAME,
    bridge_manifest,
    call_secret,
    call_view,
    matches,
    publishes_to,
    push_views,
    resource_name,
    secret_name,
)
from siprtmp_operator.api.openapi import openapi_document
from siprtmp_operator.settings import Settings

REPO = Path(__file__).resolve().parents[2]
SEED_BODY: dict[str, Any] = {
    "callId": "R2fhkll5Sw3lK",
    "callee": "1000",
    "rtmpUrl": "rtmp://cdn.example.com/live",
    "rtmpStream": "streamName",
    "hasAudio": "true",
    "hasVideo": "true",
    "connection": {
        "sipLogin": "myusername",
        "sipPassword": " MyPasswordPassword1 ",
        "sipAuthenticationName": "myusername",
        "sipDomain": "pbx.example.com",
        "sipOutboundProxy": "",
        "sipPort": "5060",
        "sipRegisterRequired": "false",
        "appKey": "callApp",
    },
}


def crd_leaf_types() -> dict[tuple[str, ...], str]:
    """Every typed leaf of the CRD's spec schema: path → type."""
    crd = yaml.safe_load((REPO / "crds" / "siprtmpbridges.siprtmp.io.yaml").read_text())
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    leaves: dict[tuple[str, ...], str] = {}

    def walk(schema: dict[str, Any], path: tuple[str, ...]) -> None:
        for name, sub in (schema.get("properties") or {}).items():
            if sub.get("type") == "object":
                walk(sub, (*path, name))
            else:
                leaves[(*path, name)] = sub.get("type", "")

    walk(spec, ())
    return leaves


def test_type_tables_match_the_crd() -> None:
    leaves = crd_leaf_types()
    booleans = {p for p, t in leaves.items() if t == "boolean"}
    integers = {p for p, t in leaves.items() if t == "integer"}
    assert set(BOOLEAN_FIELDS) == booleans
    # sipPasswordSecretRef has no integers; everything else typed integer is converted.
    assert set(INTEGER_FIELDS) == integers


def test_the_seed_body_becomes_a_typed_spec_and_a_password() -> None:
    request = parse_startup(SEED_BODY)
    assert request.call_id == "R2fhkll5Sw3lK"
    assert request.password == " MyPasswordPassword1 "  # as sent: spaces are the password's
    assert request.spec == {
        "callId": "R2fhkll5Sw3lK",
        "callee": "1000",
        "rtmpUrl": "rtmp://cdn.example.com/live",
        "rtmpStream": "streamName",
        "hasAudio": True,
        "hasVideo": True,
        "connection": {
            "sipLogin": "myusername",
            "sipAuthenticationName": "myusername",
            "sipDomain": "pbx.example.com",
            "sipPort": 5060,
            "sipRegisterRequired": False,
            "appKey": "callApp",
        },
    }
    assert "MyPassword" not in repr(request)


def test_the_flat_shape_is_nested_and_nested_values_win() -> None:
    body = {
        "callee": "sip:a@pbx.example.com",
        "rtmpUrl": "rtmp://cdn.example.com/live",
        "rtmpStream": "s",
        "sipLogin": "flat",
        "sipPassword": "pw",
        "sipPort": "5080",
        "connection": {"sipLogin": "nested"},
    }
    request = parse_startup(body)
    assert request.spec["connection"] == {"sipLogin": "nested", "sipPort": 5080}
    assert request.password == "pw"
    assert CALL_ID.match(request.call_id)  # generated


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([], "body"),
        ({**SEED_BODY, "connection": []}, "connection"),
        ({**SEED_BODY, "rtmpStream": " "}, "rtmpStream"),
        ({**SEED_BODY, "hasVideo": "1"}, "hasVideo"),
        ({**SEED_BODY, "callId": "-starts-badly"}, "callId"),
        ({**SEED_BODY, "callId": "x" * 65}, "callId"),
        ({**SEED_BODY, "sipPasswordSecretRef": {}}, "connection.sipPasswordSecretRef"),
        ({**SEED_BODY, "rtmpStreamSecretRef": {"name": "a", "key": "b"}}, "rtmpStreamSecretRef"),
        ({**SEED_BODY, "nat": {"rtpPortMin": "x"}}, "nat.rtpPortMin"),
    ],
)
def test_refusals_name_the_field(body: Any, field: str) -> None:
    with pytest.raises(ApiError) as info:
        parse_startup(body)
    assert (info.value.status, info.value.field) == (400, field)
    assert info.value.message.startswith(f"{field}: ")


@pytest.mark.parametrize("raw", [b"", b"  ", b"{", b'{"a": NaN}', b'{"a": -Infinity}', b"\xff"])
def test_unusable_json_is_a_400_about_the_body(raw: bytes) -> None:
    with pytest.raises(ApiError) as info:
        parse_json(raw)
    assert (info.value.status, info.value.field) == (400, "body")


def test_deeply_nested_json_is_refused_not_crashed() -> None:
    with pytest.raises(ApiError):
        parse_startup(parse_json(b'{"connection": ' * 5000 + b"1" + b"}" * 5000))


def test_find_and_dtmf_bodies() -> None:
    assert parse_find({}) == {}
    assert parse_find({"status": "ESTABLISHED"}) == {"status": "ESTABLISHED"}
    request = parse_send_dtmf({"callId": "c", "dtmf": "12#a", "type": "rfc2833"})
    assert (request.call_id, request.digits, request.method) == ("c", "12#A", "RFC2833")
    request = parse_send_dtmf({"callId": "c", "dtmf": "1W2", "type": "info"})
    assert (request.digits, request.method) == ("1W2", "INFO")
    assert parse_send_dtmf({"callId": "c", "dtmf": "5"}).method == "RFC2833"
    with pytest.raises(ApiError) as info:
        parse_send_dtmf({"callId": "c", "dtmf": "5", "type": "INBAND"})
    assert (info.value.status, info.value.field) == (400, "type")


def test_a_list_sent_as_one_string_becomes_the_list_the_crd_declares() -> None:
    request = parse_startup({**SEED_BODY, "codecs": "PCMU, G722", "nat": {"stunServers": "a:3478"}})
    assert request.spec["codecs"] == ["PCMU", "G722"]
    assert request.spec["nat"] == {"stunServers": ["a:3478"]}
    listed = parse_startup({**SEED_BODY, "codecs": ["PCMA"]})
    assert listed.spec["codecs"] == ["PCMA"]


def test_startup_takes_dtmf_after_answer_and_writes_the_method_as_the_crd_does() -> None:
    request = parse_startup({**SEED_BODY, "dtmfAfterAnswer": "W1234#", "dtmfMethod": "info"})
    assert (request.spec["dtmfAfterAnswer"], request.spec["dtmfMethod"]) == ("W1234#", "INFO")
    with pytest.raises(ApiError) as info:
        parse_startup({**SEED_BODY, "dtmfAfterAnswer": "12x"})
    assert (info.value.status, info.value.field) == (400, "dtmfAfterAnswer")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
known_names = [*sorted(SPEC_FIELDS | CONNECTION_FIELDS), "sipPassword"]
bodies = st.dictionaries(
    st.sampled_from(known_names) | st.text(max_size=10), json_values, max_size=8
) | st.builds(
    lambda extra: {**SEED_BODY, **extra},
    st.dictionaries(st.sampled_from(known_names), json_values, max_size=3),
)


@settings(max_examples=400, deadline=None)
@given(body=bodies)
def test_any_body_is_a_startup_request_or_a_400_naming_a_field(body: dict[str, Any]) -> None:
    """Never another exception; what is accepted is a spec the CRD's types fit and no password."""
    try:
        request = parse_startup(body)
    except ApiError as error:
        assert error.status == 400 and error.field
        assert error.message.startswith(f"{error.field}: ")
        return
    assert isinstance(request, StartupRequest)
    assert CALL_ID.match(request.call_id) and request.spec["callId"] == request.call_id
    text = json.dumps(request.spec)
    assert "sipPassword" not in text
    for path in BOOLEAN_FIELDS:
        value = _at(request.spec, path)
        assert value is None or isinstance(value, bool), (path, value)
    manifest = bridge_manifest("calls", request)
    assert len(manifest["metadata"]["name"]) <= MAX_NAME
    if request.password is not None:
        ref = manifest["spec"]["connection"]["sipPasswordSecretRef"]
        assert ref["name"].startswith(manifest["metadata"]["name"])


def _at(doc: dict[str, Any], path: tuple[str, ...]) -> Any:
    for name in path:
        if not isinstance(doc, dict):
            return None
        doc = doc.get(name)  # type: ignore[assignment]
    return doc


@given(st.from_regex(CALL_ID, fullmatch=True))
def test_resource_names_are_dns_labels_unique_per_call_id(call_id: str) -> None:
    name = resource_name(call_id)
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name) and len(name) <= MAX_NAME
    assert resource_name(call_id.swapcase()) != name or call_id.swapcase() == call_id


def test_secret_is_owned_by_the_bridge() -> None:
    request = parse_startup(SEED_BODY)
    bridge = bridge_manifest("calls", request)
    bridge["metadata"]["uid"] = "u-1"
    secret = call_secret(bridge, request)
    assert secret is not None
    (owner,) = secret["metadata"]["ownerReferences"]
    assert owner == {
        "apiVersion": "siprtmp.io/v1alpha1",
        "kind": "SipRtmpBridge",
        "name": bridge["metadata"]["name"],
        "uid": "u-1",
        "controller": True,
    }
    assert secret["stringData"] == {"password": SEED_BODY["connection"]["sipPassword"]}
    assert secret["metadata"]["namespace"] == "calls"


def test_a_stream_key_kept_in_the_calls_secret_is_out_of_the_resource() -> None:
    """``api.streamKeysInSecrets``: the key moves to the call's Secret; the resource names it
    and carries its digest, by which a startup's 409 and a find still recognise the stream."""
    key = "live_1234?s_sc=SEKRIT7731#f"
    request = parse_startup({**SEED_BODY, "rtmpStream": key})
    token = "a-token-of-the-api-0123"
    bridge = bridge_manifest("calls", request, token)
    bridge["metadata"]["uid"] = "u-1"
    assert key not in json.dumps(bridge) and "SEKRIT7731" not in json.dumps(bridge)
    name = secret_name(bridge["metadata"]["name"])
    assert bridge["spec"]["rtmpStreamSecretRef"] == {"name": name, "key": "rtmpStream"}
    secret = call_secret(bridge, request)
    assert secret is not None and secret["metadata"]["name"] == name
    assert secret["stringData"]["rtmpStream"] == key and "password" in secret["stringData"]
    url = request.spec["rtmpUrl"]
    spelled = url.replace("cdn.example.com", "CDN.example.com:1935")  # the same stream
    assert publishes_to(bridge, {"rtmpUrl": spelled, "rtmpStream": key}, token)
    assert not publishes_to(bridge, {"rtmpUrl": url, "rtmpStream": "another"}, token)
    assert not publishes_to(bridge, {"rtmpUrl": url, "rtmpStream": key}, "another-token")
    view = call_view(bridge)
    assert view["rtmpStream"] == "***"
    assert matches(bridge, view, {"rtmpStream": key}, token)
    assert not matches(bridge, view, {"rtmpStream": "***"}, token)
    assert not matches(bridge, view, {"rtmpStream": key, "callee": "2000"}, token)
    # Off, the seed's answer: the key in the resource and shown.
    plain = bridge_manifest("calls", request)
    assert plain["spec"]["rtmpStream"] == key and call_view(plain)["rtmpStream"] == key
    assert "siprtmp.io/stream-digest" not in plain["metadata"]["annotations"]
    no_password = {**SEED_BODY, "callee": "sip:1000@pbx.example.com", "connection": {}}
    assert call_secret(plain, parse_startup(no_password)) is None


def test_call_view_uses_the_seed_status_names() -> None:
    fresh = {"metadata": {"name": "n", "uid": "u"}, "spec": {"rtmpUrl": "rtmp://u:p@h/live"}}
    view = call_view(fresh)
    assert (view["callId"], view["status"], view["streamStatus"]) == ("u", "NEW", "PENDING")
    assert view["rtmpUrl"] == "rtmp://***@h/live"
    status = {"call": {"state": "ESTABLISHED"}, "stream": {"state": "PUBLISHING"}}
    live = {**fresh, "status": {"phase": "Streaming", **status}}
    assert (call_view(live)["status"], call_view(live)["streamStatus"]) == (
        CallState.ESTABLISHED.value,
        StreamState.PUBLISHING.value,
    )


def test_token_check() -> None:
    token = "a-long-enough-token"
    assert authorized(f"Bearer {token}", token)
    assert authorized(f"bearer {token}", token)
    assert not authorized(None, token)
    assert not authorized(f"Basic {token}", token)
    assert not authorized("Bearer nope", token)
    assert not authorized("Bearer ", "")  # no token configured: nobody gets in


def test_cors_only_for_allowed_origins() -> None:
    assert cors_headers(None, ["*"]) == {}
    assert cors_headers("https://a.example", []) == {}
    assert cors_headers("https://b.example", ["https://a.example"]) == {}
    allowed = cors_headers("https://a.example", ["https://a.example"])
    assert allowed["Access-Control-Allow-Origin"] == "https://a.example"
    assert "Authorization" in allowed["Access-Control-Allow-Headers"]
    assert cors_headers("https://z.example", ["*"])["Access-Control-Allow-Origin"] == (
        "https://z.example"
    )


def test_openapi_lists_exactly_the_fields_the_parser_accepts() -> None:
    schemas = openapi_document()["components"]["schemas"]
    top = set(schemas["Startup"]["properties"])
    assert top == (SPEC_FIELDS | CONNECTION_FIELDS) - {
        "sipPasswordSecretRef",
        "rtmpStreamSecretRef",
    }
    assert set(schemas["Connection"]["properties"]) == CONNECTION_FIELDS - {"sipPasswordSecretRef"}
    assert schemas["Call"]["properties"]["status"]["enum"] == [s.value for s in CallState]
    assert set(schemas["Call"]["properties"]) == set(call_view({}))


def test_the_api_needs_a_real_token_and_its_own_port() -> None:
    on = {"SIPRTMP_API_ENABLED": "true"}
    with pytest.raises(ValueError, match="SIPRTMP_API_TOKEN"):
        Settings.from_env(on)
    with pytest.raises(ValueError, match="SIPRTMP_API_TOKEN"):
        Settings.from_env({**on, "SIPRTMP_API_TOKEN": "short"})
    token = "0123456789abcdef"
    with pytest.raises(ValueError, match="port"):
        Settings.from_env({**on, "SIPRTMP_API_TOKEN": token, "SIPRTMP_API_PORT": "8081"})
    settings = Settings.from_env(
        {**on, "SIPRTMP_API_TOKEN": token, "SIPRTMP_API_CORS_ORIGINS": "https://a.example, *"}
    )
    assert settings.api_enabled and settings.api_cors_origins == ("https://a.example", "*")
    assert token not in repr(settings)
    assert not Settings.from_env({}).api_enabled  # off by default, and then no token is needed


def test_openapi_document_is_valid_openapi_3_1() -> None:
    """Checked against the OpenAPI 3.1 meta-schema, so generators and UIs can load it."""
    document = openapi_document()
    assert str(document["openapi"]).startswith("3.1")
    validate(document)  # raises on any violation


def startup_validator() -> OAS31Validator:
    """The document's startup body schema, its references resolved within the document."""
    return OAS31Validator({**openapi_document(), "$ref": "#/components/schemas/Startup"})


@pytest.mark.parametrize(
    "body",
    [
        SEED_BODY,
        {**SEED_BODY, "hasVideo": False, "dtmfAfterAnswer": "W1234#", "dtmfMethod": "INFO"},
        {
            "callee": "sip:a@pbx.example.com",
            "rtmpUrl": "rtmp://cdn.example.com/live",
            "rtmpStream": "s",
            "sipLogin": "flat",
            "sipPassword": "pw",
            "sipPort": "5080",
            "codecs": "PCMU,G722",
            "nat": {"rtpPortMin": 20000, "rtpPortMax": "20100", "bindAddress": ""},
            "audio": {"sampleRate": "44100"},
            "callSetupTimeoutSeconds": "30",
        },
    ],
)
def test_bodies_the_api_takes_are_valid_by_its_document(body: dict[str, Any]) -> None:
    """The seed's forms (strings for booleans, numbers and lists, "" for empty) are in it."""
    parse_startup(body)
    errors = [error.message for error in startup_validator().iter_errors(body)]
    assert errors == []


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"rtmpStream": None}, "rtmpStream"),
        ({"sipTransport": "smtp"}, "connection.sipTransport"),
        ({"audio": {"sampleRate": 22050}}, "audio.sampleRate"),
        ({"nat": {"rtpPortMin": 80}}, "nat.rtpPortMin"),
        ({"callee": "tel:+15551234567"}, "callee"),
        ({"nat": {"unknown": 1}}, "nat.unknown"),
    ],
)
def test_bodies_the_api_refuses_are_invalid_by_its_document(
    change: dict[str, Any], field: str
) -> None:
    body = {k: v for k, v in {**SEED_BODY, **change}.items() if v is not None}
    with pytest.raises(ApiError) as info:
        parse_startup(body)
    assert info.value.field == field
    assert not startup_validator().is_valid(body)


def test_the_startup_schema_is_written_from_the_spec_fields() -> None:
    """Descriptions, bounds, patterns and enums are the field table's (siprtmp_contract.fields)."""
    schemas = openapi_document()["components"]["schemas"]
    checked = 0
    for path, field in BY_PATH.items():
        first, *rest = path.split(".")
        schema = schemas["Connection"] if first == "connection" else schemas["Startup"]
        for name in rest if first == "connection" else [first, *rest]:
            schema = schema.get("properties", {}).get(name, {})
        if not schema or "$ref" in schema:
            continue  # a Secret reference, or a field the body does not carry
        checked += 1
        assert schema.get("description", "").startswith(field.description), path
        if field.bounds and field.enum is None:
            assert (schema["minimum"], schema["maximum"]) == field.bounds, path
        if field.pattern:
            assert schema["pattern"] in (field.pattern, f"^$|{field.pattern}"), path
        if field.enum:
            assert set(field.enum) <= set(schema["enum"]), path
    assert checked >= 40


# -- pushes: a live call's further destinations ----------------------------------------------

PUSH_KEY = "push-key-0123?sig=hunter2secret"
PUSH = {
    "callId": "c-1",
    "rtmpUrl": "rtmp://user:pw-secret@cdn.example.com/live",
    "rtmpStream": PUSH_KEY,
    "profile": "YouTube",
}


def test_a_push_body_becomes_a_destination_as_the_resource_holds_it() -> None:
    request = parse_push({**PUSH, "rtmpStream": f" {PUSH_KEY} "})
    assert request.call_id == "c-1"
    assert request.destination == {
        "rtmpUrl": PUSH["rtmpUrl"],
        "rtmpStream": PUSH_KEY,
        "profile": "youtube",
    }
    assert PUSH_KEY not in repr(request)
    assert request.scrubber.text(f"to {PUSH_KEY}, sig hunter2secret, pw-secret") == (
        "to ***, sig ***, ***"
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([], "body"),
        ({**PUSH, "callId": 5}, "callId"),
        ({k: v for k, v in PUSH.items() if k != "callId"}, "callId"),
        ({**PUSH, "rtmpUrl": "http://cdn.example.com/live"}, "rtmpUrl"),
        ({**PUSH, "rtmpStream": ""}, "rtmpStream"),
        ({**PUSH, "rtmpStream": "/leading"}, "rtmpStream"),
        ({**PUSH, "profile": "myspace"}, "profile"),
        ({**PUSH, "profile": "facebook"}, "rtmpUrl"),  # Facebook takes rtmps:// only
        ({**PUSH, "name": "Not A Label"}, "name"),
        ({**PUSH, "colour": "red"}, "colour"),
        ({**PUSH, "rtmpStreamSecretRef": {"name": "a", "key": "b"}}, "rtmpStreamSecretRef"),
    ],
)
def test_push_refusals_name_the_bodys_field_and_never_show_the_key(body: Any, field: str) -> None:
    with pytest.raises(ApiError) as info:
        parse_push(body)
    assert (info.value.status, info.value.field) == (400, field)
    assert info.value.message.startswith(f"{field}: ")
    assert "hunter2secret" not in info.value.message and "pw-secret" not in info.value.message


def test_a_push_ref_names_a_destination_by_name_or_by_stream() -> None:
    assert parse_push_ref({"callId": "c", "name": "yt"}) == PushRef("c", name="yt")
    by_stream = parse_push_ref({"callId": "c", "rtmpUrl": PUSH["rtmpUrl"], "rtmpStream": "k1"})
    assert by_stream.destination == {"rtmpUrl": PUSH["rtmpUrl"], "rtmpStream": "k1"}
    assert parse_push_ref({"callId": "c"}, required=False) == PushRef("c")
    for body, field in (
        ({"callId": "c"}, "name"),
        ({"callId": "c", "rtmpUrl": PUSH["rtmpUrl"]}, "rtmpStream"),
        ({"callId": "c", "name": "yt", "rtmpStream": "k"}, "name"),
        ({"callId": "c", "name": 3}, "name"),
        ({"callId": "c", "profile": "youtube"}, "profile"),
    ):
        with pytest.raises(ApiError) as info:
            parse_push_ref(body)
        assert (info.value.status, info.value.field) == (400, field), body


push_bodies = st.dictionaries(
    st.sampled_from(["callId", *DESTINATION_FIELDS, "rtmpStreamSecretRef"]) | st.text(max_size=8),
    json_values,
    max_size=6,
) | st.builds(
    lambda extra: {**PUSH, **extra},
    st.dictionaries(st.sampled_from(["callId", *DESTINATION_FIELDS]), json_values, max_size=3),
)


@settings(max_examples=400, deadline=None)
@given(body=push_bodies)
def test_any_push_body_is_a_destination_or_a_400_naming_a_field(body: dict[str, Any]) -> None:
    """Hostile push bodies: never another exception, never the key in a refusal; what is
    accepted is a destination the bridge's parser takes."""
    for parse in (parse_push, parse_push_ref):
        try:
            request = parse(body)
        except ApiError as error:
            assert error.status == 400 and error.field
            assert error.message.startswith(f"{error.field}: ")
            assert "hunter2secret" not in error.message
            continue
        if isinstance(request, PushRequest):
            assert parse_destinations([request.destination], "destinations")
            assert set(request.destination) <= set(DESTINATION_FIELDS)


def _named(name: str | None, stream: str, url: str = "rtmp://cdn.example.com/live") -> Any:
    item = {"rtmpUrl": url, "rtmpStream": stream}
    return item if name is None else {**item, "name": name}


def test_push_views_match_the_bridges_report_by_name_and_never_show_a_key() -> None:
    """Two destinations at one CDN differ only by their keys: the bridge's report is matched
    to each by name (in any order), an unnamed one by its URL; the rest is PENDING."""
    shown = "rtmp://cdn.example.com/live/***"
    resource = {
        "metadata": {"name": "n", "uid": "u"},
        "spec": {
            "callId": "c",
            "rtmpUrl": "rtmp://main.example.com/app",
            "rtmpStream": "main-key-1",
            "destinations": [
                _named("yt-1", "key-one-1"),
                _named("yt-2", "key-two-2"),
                _named(None, "key-three-3", "rtmp://other.example.com/live"),
                _named("late", "key-four-4"),
            ],
        },
        "status": {
            "phase": "Streaming",
            "destinations": [
                {"id": 0, "url": "rtmp://main.example.com/app/***", "state": "PUBLISHING"},
                {"id": 2, "url": shown, "name": "yt-2", "state": "FAILED", "bytesSent": 7},
                {"id": 1, "url": shown, "name": "yt-1", "state": "PUBLISHING", "bytesSent": 9},
                {"id": 3, "url": "rtmp://other.example.com/live/***", "state": "RECONNECTING"},
            ],
        },
    }
    views = push_views(resource)
    assert [(v["name"], v["primary"], v["state"], v["bytesSent"]) for v in views] == [
        (None, True, "PUBLISHING", 0),
        ("yt-1", False, "PUBLISHING", 9),
        ("yt-2", False, "FAILED", 7),
        (None, False, "RECONNECTING", 0),
        ("late", False, "PENDING", 0),
    ]
    assert views[1]["url"] == shown and views[1]["profile"] == "generic"
    assert "key-" not in json.dumps(views)
    assert set(views[0]) <= set(
        openapi_document()["components"]["schemas"]["PushView"]["properties"]
    )


def test_a_stream_is_taken_by_any_destination_of_a_call() -> None:
    other = {"spec": {"rtmpUrl": "rtmp://a/live", "rtmpStream": "k", "destinations": [
        _named("x", "taken-key")]}}  # fmt: skip
    token = "t" * 16
    assert publishes_to(
        other, _named(None, "taken-key", "rtmp://CDN.example.com:1935/live/"), token
    )
    assert publishes_to(other, {"rtmpUrl": "rtmp://a/live", "rtmpStream": "k"}, token)
    assert not publishes_to(other, _named(None, "free-key"), token)


def test_openapi_push_bodies_are_the_destination_fields() -> None:
    document = openapi_document()
    schemas = document["components"]["schemas"]
    assert set(schemas["Push"]["properties"]) == {"callId", *DESTINATION_FIELDS}
    assert set(schemas["Push"]["required"]) == {"callId", "rtmpUrl", "rtmpStream"}
    assert {f"/rest-api/push/{n}" for n in ("startup", "find", "terminate")} <= set(
        document["paths"]
    )
    validator = OAS31Validator({**document, "$ref": "#/components/schemas/Push"})
    assert validator.is_valid({**PUSH, "profile": "youtube"}) and not validator.is_valid(
        {**PUSH, "rtmpStream": ""}
    )
    assert not validator.is_valid({**PUSH, "rtmpStreamSecretRef": {"name": "a", "key": "b"}})
