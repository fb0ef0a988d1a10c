"""The REST API against the real control plane: the operator serves it under the chart's RBAC.

Calls here point at hosts nobody dials (no kubelet runs their pods); what is asserted is what the
API and the API server do: resources, Secrets, owner references, status codes and messages.
"""

from __future__ import annotations

import base64
import itertools
import json
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import kubernetes
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kubernetes.client.exceptions import ApiException

from siprtmp_contract.fields import MAX_DESTINATIONS
from siprtmp_operator import GROUP, PLURAL, VERSION
from siprtmp_operator.api.manifests import resource_name, secret_name
from siprtmp_operator.api.openapi import openapi_document
from tests.operator.api_client import ApiClient
from tests.operator.conftest import API_CORS_ORIGIN, API_MAX_CALLS, API_NAMESPACE
from tests.operator.k8s_harness import rbac_refusals, wait_for

if TYPE_CHECKING:
    from tests.operator.conftest import Cluster

pytestmark = pytest.mark.k8s
_ids = itertools.count(1)


def unique(prefix: str) -> str:
    return f"{prefix}-{next(_ids)}-{uuid.uuid4().hex[:6]}"


def seed_body(call_id: str, stream: str, **extra: Any) -> dict[str, Any]:
    """The seed article's body, strings and all."""
    return {
        "callId": call_id,
        "callee": "1000",
        "rtmpUrl": "rtmp://rtmp.example.test/live",
        "rtmpStream": stream,
        "hasAudio": "false",
        "hasVideo": "false",
        "connection": {
            "sipLogin": "myusername",
            "sipPassword": "MyPasswordPassword1",
            "sipAuthenticationName": "myusername",
            "sipDomain": "pbx.example.test",
            "sipPort": "5060",
            "sipRegisterRequired": "false",
            "appKey": "callApp",
        },
        **extra,
    }


@pytest.fixture
def api(cluster: Cluster) -> Iterator[ApiClient]:
    yield ApiClient(cluster.operator.api_url)
    # Calls left behind would keep the shared operator busy reconciling them for the rest of
    # the session (the fuzz alone starts dozens): every test ends with none.
    cluster.custom.delete_collection_namespaced_custom_object(GROUP, VERSION, API_NAMESPACE, PLURAL)


def resource(cluster: Cluster, call_id: str) -> dict[str, Any] | None:
    return cluster.bridge(API_NAMESPACE, resource_name(call_id))


def secret_exists(cluster: Cluster, name: str) -> bool:
    try:
        cluster.core.read_namespaced_secret(name, API_NAMESPACE)
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


def test_startup_creates_the_resource_and_a_secret_it_owns(
    cluster: Cluster, api: ApiClient
) -> None:
    call_id = unique("R2fhkll5Sw3lK")
    answer = api.call("startup", seed_body(call_id, unique("stream")))
    assert answer.status == 200, answer.body
    view = answer.body
    assert (view["callId"], view["status"], view["streamStatus"]) == (call_id, "NEW", "PENDING")
    assert "MyPasswordPassword1" not in str(view)

    obj = resource(cluster, call_id)
    assert obj is not None
    spec = obj["spec"]
    assert spec["callId"] == call_id and spec["callee"] == "1000"
    assert spec["hasAudio"] is False and spec["hasVideo"] is False  # the seed's strings, typed
    connection = spec["connection"]
    assert connection["sipPort"] == 5060 and connection["sipRegisterRequired"] is False
    assert "sipPassword" not in connection
    name = resource_name(call_id)
    assert connection["sipPasswordSecretRef"] == {"name": secret_name(name), "key": "password"}
    secret = cluster.core.read_namespaced_secret(secret_name(name), API_NAMESPACE)
    assert secret.data is not None and secret.metadata is not None
    assert base64.b64decode(secret.data["password"]).decode() == "MyPasswordPassword1"
    (owner,) = secret.metadata.owner_references or []
    assert (owner.kind, owner.name, owner.uid) == ("SipRtmpBridge", name, obj["metadata"]["uid"])
    # Opted in, so the operator lets a bridge mount it (it is created just after the call).
    assert (secret.metadata.labels or {}).get("siprtmp.io/bridge-usable") == "true"

    # The operator takes it from there: the bridge pod mounts that Secret.
    pod = cluster.wait_pod(API_NAMESPACE, f"{name}-bridge-0")
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["sip-password"]["secret"]["secretName"] == secret_name(name)

    found = api.call("find", {"callId": call_id})
    assert found.status == 200 and [c["callId"] for c in found.body] == [call_id]
    assert found.body[0]["phase"] in {"Pending", "Connecting"}

    gone = api.call("terminate", {"callId": call_id})
    assert gone.status == 200 and gone.body["terminating"] is True
    wait_for("resource deleted", lambda: resource(cluster, call_id) is None, timeout=60)
    # The garbage collector removes the Secret with its owner.
    wait_for("secret collected", lambda: not secret_exists(cluster, secret_name(name)), timeout=60)
    assert api.call("find", {"callId": call_id}).status == 404
    assert api.call("terminate", {"callId": call_id}).status == 404


def test_the_flat_startup_shape_is_accepted_and_stored_nested(
    cluster: Cluster, api: ApiClient
) -> None:
    call_id = unique("flat")
    body = {
        "callId": call_id,
        "callee": "sip:room@pbx.example.test",
        "rtmpUrl": "rtmp://rtmp.example.test/live",
        "rtmpStream": unique("flat"),
        "hasAudio": "true",
        "sipLogin": "flatuser",
        "sipDomain": "pbx.example.test",
        "sipPort": "5070",
        "sipRegisterRequired": "false",
    }
    answer = api.call("startup", body)
    assert answer.status == 200, answer.body
    obj = resource(cluster, call_id)
    assert obj is not None
    assert "sipLogin" not in obj["spec"]
    sent = {
        "sipLogin": "flatuser",
        "sipDomain": "pbx.example.test",
        "sipPort": 5070,
        "sipRegisterRequired": False,
    }
    assert {k: obj["spec"]["connection"].get(k) for k in sent} == sent
    assert not secret_exists(cluster, secret_name(resource_name(call_id)))  # no password sent
    assert api.call("terminate", {"callId": call_id}).status == 200


def test_lists_and_numbers_sent_as_strings_are_stored_as_the_crd_types_them(
    cluster: Cluster, api: ApiClient
) -> None:
    """Every field the CRD types boolean, integer or list (siprtmp_contract.fields) may come as
    the seed's string; the API server admits the resource written from it."""
    call_id = unique("typed")
    extra = {
        "codecs": "PCMU, G722",
        "callSetupTimeoutSeconds": "30",
        "audio": {"sampleRate": "44100"},
        "nat": {
            "stunServers": "stun.example.test:3478",
            "rtpPortMin": "12000",
            "rtpPortMax": "12100",
        },
    }
    answer = api.call("startup", seed_body(call_id, unique("typed"), **extra))
    assert answer.status == 200, answer.body
    obj = resource(cluster, call_id)
    assert obj is not None
    spec = obj["spec"]
    assert spec["codecs"] == ["PCMU", "G722"] and spec["callSetupTimeoutSeconds"] == 30
    assert spec["audio"]["sampleRate"] == 44100
    assert spec["nat"]["stunServers"] == ["stun.example.test:3478"]
    assert (spec["nat"]["rtpPortMin"], spec["nat"]["rtpPortMax"]) == (12000, 12100)
    assert api.call("terminate", {"callId": call_id}).status == 200


def test_conflicts_are_409(cluster: Cluster, api: ApiClient) -> None:
    call_id, stream = unique("dup"), unique("dup-stream")
    assert api.call("startup", seed_body(call_id, stream)).status == 200
    again = api.call("startup", seed_body(call_id, unique("other")))
    assert again.status == 409 and again.body["field"] == "callId"
    # The same stream, spelled differently (host case, default port), by another call.
    rival = seed_body(unique("rival"), stream, rtmpUrl="rtmp://RTMP.example.test:1935/live/")
    busy = api.call("startup", rival)
    assert busy.status == 409 and busy.body["field"] == "rtmpStream"
    assert call_id in busy.body["error"]
    assert resource(cluster, rival["callId"]) is None
    assert api.call("terminate", {"callId": call_id}).status == 200


def test_a_token_is_required(api: ApiClient) -> None:
    for token in ("", "wrong-token-0123456789"):
        for name in ("find_all", "startup", "terminate", "find", "send_dtmf"):
            answer = api.call(name, seed_body(unique("x"), unique("x")), token=token)
            assert answer.status == 401, (name, answer.body)
            assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    basic = api.call("find_all", headers={"Authorization": "Basic dXNlcjpwYXNz"}, token="")
    assert basic.status == 401


VALID = {
    "callee": "sip:a@h.example.test",
    "rtmpUrl": "rtmp://h.example.test/live",
    "rtmpStream": "s",
}
DROP = object()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (b"", "body"),
        (b"{not json", "body"),
        (b"[1, 2]", "body"),
        (b'{"callee": "1000", "rtmpUrl": NaN}', "body"),
        # Numbers Python will not read (over 4300 digits), or reads as infinity, or would read
        # from non-ASCII digits: each a 400, never a 500.
        (b'{"callee": "sip:a@h.example.test", "rtmpUrl": "rtmp://h/x", "rtmpStream": "s", '
         b'"connection": {"sipPort": ' + b"5" * 5000 + b"}}", "body"),
        ({"connection": {"sipPort": "5" * 5000}}, "connection.sipPort"),
        ({"connection": {"sipPort": "\u00b2"}}, "connection.sipPort"),
        ({"connection": {"sipPort": "\u0665\u0660\u0666\u0660"}}, "connection.sipPort"),
        (b'{"callee": "sip:a@h.example.test", "rtmpUrl": "rtmp://h/x", "rtmpStream": "s", '
         b'"callSetupTimeoutSeconds": 1e400}', "callSetupTimeoutSeconds"),
        ({"maxDurationSeconds": 1e300}, "maxDurationSeconds"),
        ({"maxRetries": 10**30}, "maxRetries"),
        ({"callee": DROP}, "callee"),
        ({"rtmpUrl": DROP}, "rtmpUrl"),
        ({"rtmpUrl": "http://h.example.test/live"}, "rtmpUrl"),
        ({"hasAudio": "maybe"}, "hasAudio"),
        ({"connection": {"sipPort": "abc"}}, "connection.sipPort"),
        ({"connection": "x"}, "connection"),
        ({"colour": "red"}, "colour"),
        ({"callId": "has space"}, "callId"),
        ({"callee": "1000"}, "callee"),  # a user part needs connection.sipDomain
        ({"connection": {"sipPasswordSecretRef": {"name": "x", "key": "y"}}},
         "connection.sipPasswordSecretRef"),
        # Accepted by the bridge's parser, refused by the CRD (an integer): the API server's
        # answer, still a 400 naming the field.
        ({"callSetupTimeoutSeconds": 1.5}, "callSetupTimeoutSeconds"),
    ],
)  # fmt: skip
def test_malformed_startup_bodies_are_400_naming_the_field(
    api: ApiClient, change: bytes | dict[str, Any], field: str
) -> None:
    if isinstance(change, bytes):
        raw = change
    else:
        body = {k: v for k, v in {**VALID, **change}.items() if v is not DROP}
        raw = json.dumps(body).encode()
    answer = api.request("/rest-api/call/startup", raw=raw)
    assert answer.status == 400, answer.body
    assert answer.body["field"] == field
    assert answer.body["error"].startswith(f"{field}: ")


def test_startup_past_the_live_call_limit_is_429_until_one_is_hung_up(api: ApiClient) -> None:
    placed: list[str] = []
    try:
        for _ in range(API_MAX_CALLS + 1):  # other tests' calls may already take some room
            call_id = unique("limit")
            body = {**VALID, "callId": call_id, "rtmpStream": call_id}
            answer = api.call("startup", body)
            if answer.status == 429:
                break
            assert answer.status == 200, answer.body
            placed.append(call_id)
        assert answer.status == 429, "the limit was never reached"
        assert "the most this API places at once" in answer.body["error"]
        assert api.call("terminate", {"callId": placed.pop()}).status == 200
        again = api.call("startup", body)  # the hung-up call's room is free at once
        assert again.status == 200, again.body
        placed.append(body["callId"])
    finally:
        for call_id in placed:
            api.call("terminate", {"callId": call_id})


def test_a_token_that_is_not_utf8_is_a_401_and_logged_without_its_value(
    cluster: Cluster, api: ApiClient
) -> None:
    # http.client sends header text as Latin-1: these are the bytes 0xff 0xfe, not UTF-8.
    answer = api.call("find_all", token="\xff\xfe-not-the-token")
    assert answer.status == 401, answer.body
    assert answer.headers.get("WWW-Authenticate", "").startswith("Bearer")
    wait_for(
        "the refusal in the operator's log",
        lambda: "refused a bearer token" in cluster.operator.log_text(),
    )
    log = cluster.operator.log_text()
    assert "not-the-token" not in log


@pytest.mark.parametrize(
    ("name", "body", "field"),
    [
        ("terminate", {}, "callId"),
        ("terminate", {"callId": 7}, "callId"),
        ("terminate", {"callId": "a", "extra": 1}, "extra"),
        ("find", {"callee": 5}, "callee"),
        ("find", {"color": "x"}, "color"),
        ("send_dtmf", {"callId": "a"}, "dtmf"),
        ("send_dtmf", {"callId": "a", "dtmf": "12x"}, "dtmf"),
        ("send_dtmf", {"callId": "a", "dtmf": "1", "type": "INBAND"}, "type"),
    ],
)
def test_malformed_bodies_of_the_other_calls_are_400(
    api: ApiClient, name: str, body: dict[str, Any], field: str
) -> None:
    answer = api.call(name, body)
    assert answer.status == 400 and answer.body["field"] == field, answer.body


def test_find_all_and_dtmf_on_a_call_not_yet_established(cluster: Cluster, api: ApiClient) -> None:
    call_id = unique("pending")
    assert api.call("startup", seed_body(call_id, unique("pending"))).status == 200
    listed = api.call("find_all")
    assert listed.status == 200 and call_id in [c["callId"] for c in listed.body]
    assert api.request("/rest-api/call/find_all", method="GET").status == 200
    refused = api.call("send_dtmf", {"callId": call_id, "dtmf": "1"})
    assert refused.status == 409 and "not ESTABLISHED" in refused.body["error"]
    assert api.call("send_dtmf", {"callId": unique("nobody"), "dtmf": "1"}).status == 404
    assert api.call("find", {"callId": unique("nobody")}).status == 404
    assert api.call("terminate", {"callId": call_id}).status == 200


def test_openapi_and_console_are_served_without_a_token(api: ApiClient) -> None:
    doc = api.request("/rest-api/openapi.json", method="GET", token="")
    assert doc.status == 200 and doc.body == openapi_document()
    assert set(doc.body["paths"]) == {
        f"/rest-api/call/{n}" for n in ("startup", "terminate", "find", "find_all", "send_dtmf")
    } | {f"/rest-api/push/{n}" for n in ("startup", "find", "terminate")}
    page = api.request("/console/", method="GET", token="")
    assert page.status == 200 and '<form id="startup-form"' in page.body
    assert page.headers["Content-Security-Policy"].startswith("default-src 'self'")
    script = api.request("/console/console.js", method="GET", token="")
    assert script.status == 200 and "../rest-api/call/" in script.body
    assert api.request("/console/../bodies.py", method="GET", token="").status == 404
    root = api.request("/", method="GET", token="")
    assert root.status == 200 and "startup-form" in root.body  # redirected to /console/


def test_cors_only_for_the_configured_origin(api: ApiClient) -> None:
    """Pages of API_CORS_ORIGIN may call the API (the token still applies); others may not."""
    ask = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization",
    }
    preflight = api.request(
        "/rest-api/call/startup",
        method="OPTIONS",
        token="",
        headers={"Origin": API_CORS_ORIGIN, **ask},
    )
    assert preflight.status == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == API_CORS_ORIGIN
    assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
    listed = api.call("find_all", headers={"Origin": API_CORS_ORIGIN})
    assert listed.status == 200
    assert listed.headers["Access-Control-Allow-Origin"] == API_CORS_ORIGIN
    refused = api.call("find_all", token="", headers={"Origin": API_CORS_ORIGIN})
    assert refused.status == 401  # CORS lets the page ask; the token decides
    assert refused.headers["Access-Control-Allow-Origin"] == API_CORS_ORIGIN

    other = {"Origin": "http://evil.example.test"}
    preflight = api.request("/rest-api/call/startup", method="OPTIONS", headers={**other, **ask})
    assert preflight.status == 403
    assert "Access-Control-Allow-Origin" not in preflight.headers
    listed = api.call("find_all", headers=other)
    assert listed.status == 200 and "Access-Control-Allow-Origin" not in listed.headers


# -- schema-driven fuzz over HTTP -----------------------------------------------------------

_SCHEMAS = openapi_document()["components"]["schemas"]
_TOP = sorted(_SCHEMAS["Startup"]["properties"])
_CONNECTION = sorted(_SCHEMAS["Connection"]["properties"])
#: Values that once made the API answer 500: huge integers, huge floats, digits int() reads
#: but a port must not have, a digit string past Python's 4300-digit limit.
_hostile = (
    st.integers(10**19, 10**40)
    | st.floats(1e300, 1e308)
    | st.sampled_from(["\u00b2", "\u0665\u0660\u0666\u0660", "5" * 5000, "1e400", "-0"])
)
_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=12)
    | _hostile,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


def _value_for(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Plausible values of the field's declared type(s), and anything at all."""
    types = schema.get("type", [])
    types = [types] if isinstance(types, str) else types
    plausible: list[st.SearchStrategy[Any]] = [_json_values]
    if "boolean" in types:
        plausible += [st.booleans(), st.sampled_from(["true", "false", "TRUE", "yes"])]
    if "integer" in types:
        plausible += [st.integers(-5, 70000), st.integers(0, 70000).map(str), _hostile]
    if "string" in types:
        plausible += [st.text(max_size=20), st.sampled_from(["sip:a@h.example.test", "rtmp://h/x"])]
    return st.one_of(plausible)


@st.composite
def mutated_startup(draw: st.DrawFn) -> dict[str, Any]:
    body: dict[str, Any] = {
        "callId": unique("fuzz"),
        "callee": "sip:fuzz@pbx.example.test",
        "rtmpUrl": "rtmp://rtmp.example.test/live",
        "rtmpStream": unique("fuzz"),
        "connection": {"sipDomain": "pbx.example.test"},
    }
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.sampled_from(["top", "connection", "drop", "unknown"]))
        if where == "top":
            name = draw(st.sampled_from(_TOP))
            body[name] = draw(_value_for(_SCHEMAS["Startup"]["properties"][name]))
        elif where == "connection" and isinstance(body.get("connection"), dict):
            name = draw(st.sampled_from(_CONNECTION))
            body["connection"][name] = draw(_value_for(_SCHEMAS["Connection"]["properties"][name]))
        elif where == "drop":
            body.pop(draw(st.sampled_from(["callee", "rtmpUrl", "rtmpStream"])), None)
        else:
            body[draw(st.text(min_size=1, max_size=8))] = draw(_json_values)
    return body


def _names_in(doc: Any) -> set[str]:
    """Every key at any depth, and the required fields a body may lack."""
    names = {"body", "callee", "rtmpUrl", "rtmpStream"}
    if isinstance(doc, dict):
        for key, value in doc.items():
            names |= {str(key)} | _names_in(value)
    elif isinstance(doc, list):
        for value in doc:
            names |= _names_in(value)
    return names


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=mutated_startup())
def test_fuzzed_startup_bodies_get_an_answer_naming_the_field(
    cluster: Cluster, api: ApiClient, body: dict[str, Any]
) -> None:
    answer = api.call("startup", body)
    assert answer.status in {200, 400, 409}, (answer.status, answer.body, body)
    if answer.status == 400:
        field = answer.body["field"]
        assert answer.body["error"].startswith(f"{field}: ")
        # A key of the body, or a field the body lacks (e.g. sipLogin once a password is
        # given); the flat shape's fields are reported under connection., where specs keep them.
        known = _names_in(body) | set(_TOP) | set(_CONNECTION)
        last = field.split("[")[0].split(".")[-1]
        assert field in known or last in known, (field, body)  # a key may itself hold a "."
    if answer.status == 200:
        call_id = answer.body["callId"]
        obj = cluster.bridge(API_NAMESPACE, resource_name(call_id))
        assert obj is not None
        # No password field (sipPasswordSecretRef, which only names the Secret, may be there).
        spec = obj["spec"]
        assert "sipPassword" not in spec and "sipPassword" not in spec.get("connection", {})
        assert api.call("terminate", {"callId": call_id}).status == 200


def test_the_operator_identity_may_create_secrets_and_get_never_list_or_change_them(
    cluster: Cluster,
) -> None:
    review = kubernetes.client.AuthorizationV1Api(cluster.api)
    sa = "system:serviceaccount:siprtmp-system:srb-sip-rtmp-operator"

    def allowed(verb: str, resource: str, namespace: str) -> bool:
        attrs = kubernetes.client.V1ResourceAttributes(
            verb=verb, resource=resource, namespace=namespace
        )
        body = kubernetes.client.V1SubjectAccessReview(
            spec=kubernetes.client.V1SubjectAccessReviewSpec(user=sa, resource_attributes=attrs)
        )
        status = review.create_subject_access_review(body).status
        return bool(status and status.allowed)

    # Created wherever a call's pod goes (its spec and the API's passwords); got only for the
    # opt-in label of those a resource names (as metadata: tests/operator/
    # test_operator_secrets.py); never listed, changed or removed (the garbage collector removes
    # them with their SipRtmpBridge).
    for namespace in (API_NAMESPACE, "default"):
        assert allowed("create", "secrets", namespace)
        assert allowed("get", "secrets", namespace)
        for verb in ("list", "watch", "update", "patch", "delete"):
            assert not allowed(verb, "secrets", namespace), (verb, namespace)
    assert rbac_refusals(cluster.operator.log_text()) == []


# -- pushes: a live call's further destinations ----------------------------------------------

PUSH_KEY = "yt-key-0001?sig=pushsecret42"
CDN = "rtmp://pusher:cdnpass99@cdn.example.test/live2"


def push(api: ApiClient, name: str, body: object, **kwargs: Any) -> Any:
    return api.request(f"/rest-api/push/{name}", body, **kwargs)


def test_push_adds_lists_and_removes_a_live_calls_destinations(
    cluster: Cluster, api: ApiClient
) -> None:
    """The seed successor's republishing calls over spec.destinations: the resource changes,
    the operator does the rest; no answer and no log line shows a key."""
    call_id, other_id = unique("pushed"), unique("other")
    # A video track (the slate) lets the call take a YouTube destination; the other call is
    # audio-only, as its stream stays.
    slated = seed_body(call_id, unique("main"), video={"whenAbsent": "slate"})
    assert api.call("startup", slated).status == 200
    other_stream = unique("other-main")
    assert api.call("startup", seed_body(other_id, other_stream)).status == 200

    added = push(api, "startup", {"callId": call_id, "rtmpUrl": CDN, "rtmpStream": PUSH_KEY,
                                  "profile": "YouTube"})  # fmt: skip
    assert added.status == 200, added.body
    first = added.body
    assert first["name"].startswith("push-") and first["primary"] is False
    assert (first["state"], first["profile"]) == ("PENDING", "youtube")
    assert first["url"] == "rtmp://***@cdn.example.test/live2/***"
    named = push(api, "startup", {"callId": call_id, "rtmpUrl": CDN, "rtmpStream": "key-two-2",
                                  "name": "yt-2"})  # fmt: skip
    assert named.status == 200 and named.body["name"] == "yt-2", named.body
    obj = resource(cluster, call_id)
    assert obj is not None
    assert obj["spec"]["destinations"] == [
        {"rtmpUrl": CDN, "rtmpStream": PUSH_KEY, "profile": "youtube", "name": first["name"]},
        {"rtmpUrl": CDN, "rtmpStream": "key-two-2", "name": "yt-2"},
    ]

    refusals = [
        ({"callId": call_id, "rtmpUrl": CDN, "rtmpStream": "k3", "name": "yt-2"}, 409, "name"),
        # The same stream spelled otherwise (host case, default port), in this call...
        ({"callId": call_id, "rtmpUrl": "rtmp://pusher:cdnpass99@CDN.example.test:1935/live2/",
          "rtmpStream": PUSH_KEY}, 409, "rtmpStream"),
        # ... or another call's own rtmpUrl/rtmpStream.
        ({"callId": call_id, "rtmpUrl": "rtmp://rtmp.example.test/live",
          "rtmpStream": other_stream}, 409, "rtmpStream"),
        ({"callId": unique("nobody"), "rtmpUrl": CDN, "rtmpStream": "k4"}, 404, "callId"),
        ({"callId": call_id, "rtmpUrl": "http://cdn.example.test/x", "rtmpStream": "k"}, 400,
         "rtmpUrl"),
        ({"callId": call_id, "rtmpUrl": CDN, "rtmpStreamSecretRef": {"name": "a", "key": "b"}},
         400, "rtmpStreamSecretRef"),
        # YouTube needs a video track, which an audio-only call's stream (fixed) lacks.
        ({"callId": other_id, "rtmpUrl": CDN, "rtmpStream": "k6", "profile": "youtube"}, 400,
         "profile"),
    ]  # fmt: skip
    for body, status, field in refusals:
        answer = push(api, "startup", body)
        assert (answer.status, answer.body["field"]) == (status, field), (body, answer.body)
        assert answer.body["error"].startswith(f"{field}: ")
    busy = push(api, "startup", {"callId": other_id, "rtmpUrl": CDN, "rtmpStream": PUSH_KEY})
    assert busy.status == 409 and call_id in busy.body["error"]
    # A startup publishing to a stream a live call pushes to is refused as well.
    rival = seed_body(unique("rival"), "key-two-2", rtmpUrl=CDN)
    assert api.call("startup", rival).status == 409

    found = push(api, "find", {"callId": call_id})
    assert found.status == 200, found.body
    assert [(v["name"], v["primary"], v["state"]) for v in found.body] == [
        (None, True, "PENDING"),
        (first["name"], False, "PENDING"),
        ("yt-2", False, "PENDING"),
    ]
    by_stream = push(api, "find", {"callId": call_id, "rtmpUrl": CDN, "rtmpStream": PUSH_KEY})
    assert [v["name"] for v in by_stream.body] == [first["name"]]

    gone = push(api, "terminate", {"callId": call_id, "name": "yt-2"})
    assert gone.status == 200 and gone.body["terminating"] is True, gone.body
    assert push(api, "terminate", {"callId": call_id, "name": "yt-2"}).status == 404
    fixed = push(api, "terminate", {"callId": other_id, "rtmpUrl": "rtmp://rtmp.example.test/live",
                                    "rtmpStream": other_stream})  # fmt: skip
    assert fixed.status == 409 and "terminate the call" in fixed.body["error"]
    by_key = push(api, "terminate", {"callId": call_id, "rtmpUrl": CDN, "rtmpStream": PUSH_KEY})
    assert by_key.status == 200, by_key.body
    obj = resource(cluster, call_id)
    assert obj is not None and not obj["spec"].get("destinations")
    assert [v["primary"] for v in push(api, "find", {"callId": call_id}).body] == [True]

    assert api.call("terminate", {"callId": call_id}).status == 200
    late = push(api, "startup", {"callId": call_id, "rtmpUrl": CDN, "rtmpStream": "k5"})
    assert late.status in (404, 409), late.body  # hanging up, or gone
    for secret in ("pushsecret42", "yt-key-0001", "cdnpass99", "key-two-2"):
        assert secret not in cluster.operator.log_text(), secret
    for answer in (added, named, found, by_stream, gone, by_key):
        assert "pushsecret42" not in json.dumps(answer.body)
        assert "cdnpass99" not in json.dumps(answer.body)


def test_pushes_at_once_to_one_call_all_land_then_the_list_is_full(
    cluster: Cluster, api: ApiClient
) -> None:
    """Each push writes over the version it read: those racing are read and decided again,
    none is lost; past the most a call takes, a 409."""
    call_id = unique("crowd")
    assert api.call("startup", seed_body(call_id, unique("crowd"))).status == 200
    bodies = [
        {"callId": call_id, "rtmpUrl": CDN, "rtmpStream": f"crowd-key-{n}", "name": f"c-{n}"}
        for n in range(MAX_DESTINATIONS)
    ]
    with ThreadPoolExecutor(len(bodies)) as pool:
        answers = list(pool.map(lambda body: push(api, "startup", body), bodies))
    assert [a.status for a in answers] == [200] * len(bodies), [a.body for a in answers]
    obj = resource(cluster, call_id)
    assert obj is not None
    assert sorted(d["name"] for d in obj["spec"]["destinations"]) == sorted(
        b["name"] for b in bodies
    )
    full = push(api, "startup", {"callId": call_id, "rtmpUrl": CDN, "rtmpStream": "one-more"})
    assert (full.status, full.body["field"]) == (409, "destinations")
    assert api.call("terminate", {"callId": call_id}).status == 200


def test_the_push_calls_need_the_token(api: ApiClient) -> None:
    for name in ("startup", "find", "terminate"):
        answer = push(api, name, {"callId": "x"}, token="wrong-token-0123456789")
        assert answer.status == 401, (name, answer.body)
