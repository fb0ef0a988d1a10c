"""The CRD and the bridge's parser take and refuse the same resource specs, field by field.

For every field of the table (``siprtmp_contract.fields.walk``) the cases are made from what it
declares (its type, bounds, enum, lengths, list sizes) plus the values of ``SAMPLES`` (hand-picked,
required for every field with a pattern) and the documents of ``ACROSS`` (one or more for every
CEL rule of the CRD that judges a new resource). Each case is judged by the parser
(``parse_resource_spec``) and by the generated CRD read as the API server reads it: nulls pruned,
defaults written, the structural schema checked (JSON Schema, with RE2 for the patterns, as the
API server matches them), unknown fields refused (``fieldValidation=Strict``), the CEL rules
evaluated. The verdicts must be the same. tests/operator/test_crd_agreement.py sends the same
cases to a real API server.

A new field gets its generated cases for free; one with a pattern also needs a line in
``SAMPLES``, one set only with companions a line in ``COMPANIONS``, and a new CEL rule a document
in ``ACROSS`` that it refuses.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import celpy
import jsonschema  # type: ignore[import-untyped]
import pytest
import re2  # type: ignore[import-untyped]
import yaml
from celpy.adapter import json_to_cel
from celpy.evaluation import CELEvalError

from siprtmp_contract.fields import Field, walk
from siprtmp_contract.spec import SpecError, parse_resource_spec

REPO = Path(__file__).resolve().parents[2]
BASE: dict[str, Any] = {
    "callee": "sip:1000@pbx.example.com",
    "rtmpUrl": "rtmp://127.0.0.1/live",
    "rtmpStream": "s",
}
SECRET = {"name": "sip", "key": "password"}
#: Destinations of ACROSS's documents.
GENERIC = {"rtmpUrl": "rtmp://127.0.0.1/b", "rtmpStream": "t"}
FB = {"rtmpUrl": "rtmps://127.0.0.1/b", "rtmpStream": "f", "profile": "facebook"}
KEY = {"name": "c", "key": "k"}
DROP = object()

#: What a field needs beside it to be taken at all (the CEL rules' companions), by the path of
#: the field it applies to and what lies under it: dotted path → value (DROP removes the field).
COMPANIONS: dict[str, dict[str, Any]] = {
    "rtmpStreamSecretRef": {"rtmpStream": DROP, "rtmpStreamSecretRef": {"name": "c", "key": "k"}},
    "connection.sipPasswordSecretRef": {
        "connection.sipLogin": "u",
        "connection.sipPasswordSecretRef": dict(SECRET),
    },
    "connection.sipRegisterRequired": {
        "connection.sipDomain": "pbx.example.com",
        "connection.sipLogin": "u",
        "connection.sipPasswordSecretRef": dict(SECRET),
    },
    # An item of a list of objects: the fields the item requires.
    "destinations[]": {"destinations[]": {"rtmpUrl": "rtmp://127.0.0.1/b", "rtmpStream": "t"}},
    "destinations[].rtmpStreamSecretRef": {
        "destinations[]": {"rtmpUrl": "rtmp://127.0.0.1/b", "rtmpStreamSecretRef": dict(KEY)}
    },
    "nat.rtpPortMin": {"nat.rtpPortMax": 65535},
    "nat.rtpPortMax": {"nat.rtpPortMin": 1024},
    "networking.publicAddressSource": {"networking.mode": "HostNetwork"},
    "video.slate.imageConfigMapRef": {"video.slate.imageConfigMapRef": {"name": "s", "key": "k"}},
}

#: Hand-picked values of the fields, taken or refused; every field with a pattern has some.
SAMPLES: dict[str, list[Any]] = {
    "callId": ["R2fhkll5Sw3lK", "a" * 64, "a" * 65, "-x", "a b", "a\n", "é"],
    "callee": [
        "sip:1000@pbx.example.com",
        "1000@pbx.example.com",
        "sip:1000@[::1]:5060",
        "tel:+15551234567",
        "sip:1000@pbx.example.com\n",
        " sip:1000@pbx.example.com",
        "sip:\u00a01@h",
    ],
    "rtmpUrl": [
        "rtmp://cdn.example.com/live",
        "rtmps://user:pw@cdn.example.com:443/app/x?y=1",
        "rtmp://[::1]:1935/live",
        "rtmp://h",
        "rtmp://h/",
        "rtmp://h/?app",
        "rtmp://h:99999/live",
        "rtmp://h:0/live",
        "rtmp://user:pw@/live",
        "rtmp:///live",
        "http://h/live",
        "rtmp://h/live\n",
        "RTMP://h/live",
    ],
    "rtmpStream": ["key?s=1", "/key", "a b", "a\tb", "a\u00a0b", "k\n"],
    "destinations[]": [
        {"rtmpUrl": "rtmp://127.0.0.1/b", "rtmpStream": "t"},
        {"rtmpUrl": "rtmps://cdn.example.com:443/app", "rtmpStream": "k", "profile": "youtube"},
        {"rtmpUrl": "rtmp://127.0.0.1/b"},
        {"rtmpStream": "t"},
        {"rtmpUrl": "rtmp://127.0.0.1/b", "rtmpStream": "t", "name": "x"},
        {"rtmpUrl": "rtmp://127.0.0.1/b", "rtmpStreamSecretRef": KEY},
        {"rtmpUrl": "rtmp://127.0.0.1/b", "rtmpStream": "t", "rtmpStreamSecretRef": KEY},
        "rtmp://127.0.0.1/b/t",
    ],
    "destinations[].rtmpUrl": ["rtmp://cdn.example.com/live", "rtmp://h", "http://h/live", "x"],
    "destinations[].rtmpStream": ["key?s=1", "/key", "a b"],
    "destinations[].rtmpStreamSecretRef": [dict(KEY), {"name": "c"}, {"key": "k"}],
    "destinations[].rtmpStreamSecretRef.name": ["cdn", "Cdn", "-a", "a.b-c"],
    "destinations[].rtmpStreamSecretRef.key": ["stream", "a/b", ".k_1-2"],
    "destinations[].name": ["youtube-1", "a", "Main", "-a", "a_b", "a" * 63, "a" * 64],
    "dtmfAfterAnswer": ["W1234#", "w1a", "1" * 32, "1" * 33, "Ww", "12x", "1 2", "1\n"],
    "rtmpStreamSecretRef": [{"name": "c", "key": "k"}, {"name": "c"}],
    "connection.sipPasswordSecretRef": [dict(SECRET), {"key": "k"}],
    "rtmpStreamSecretRef.name": ["cdn", "Cdn", "-a", "a.b-c"],
    "rtmpStreamSecretRef.key": ["stream", "a/b", ".k_1-2"],
    "connection.sipDomain": ["pbx.example.com", "10.0.0.1", "[2001:db8::1]", "bad host", "-a"],
    "connection.sipLogin": ["me", "1000", "a b", "a\u00a0b"],
    "connection.sipAuthenticationName": ["auth", "a b"],
    "connection.sipPasswordSecretRef.name": ["sip", "SIP"],
    "connection.sipPasswordSecretRef.key": ["password", "pass word"],
    "connection.sipOutboundProxy": [
        "proxy.example.org:5080",
        "sip:proxy.example.org;lr",
        "sips:u@[::1]:5061",
        "sip:bad host",
        "proxy:99999",
        "<sip:p>",
    ],
    "connection.sipRealm": ["asterisk", 'a"b', "a\\b", "a b"],
    "codecs[]": [
        "PCMU",
        "pcma",
        "ulaw",
        "PCMU/8000/1",
        "G722/16000",
        "speex",
        "speex/32000",
        "iLBC",
        "g711u",
        "Pcmu",
        "ULAW",
        "gsm",
        "opus/48000/2",
        "PCMU/16000",
    ],
    "video.slate.text": ["Town hall, 4 Dec: Q&A", "a" * 48, "caf\u00e9", "a\nb", "<b>"],
    "video.slate.imageConfigMapRef": [{"name": "slate", "key": "card.png"}, {"name": "slate"}],
    "video.slate.imageConfigMapRef.name": ["slate", "Slate", "-a"],
    "video.slate.imageConfigMapRef.key": ["card.png", "a/b"],
    "nat.bindAddress": ["0.0.0.0", "127.0.0.1", "::", "xyz", "1.2.3"],
    "nat.publicAddress": ["203.0.113.7", "node.example.com", "-a", "a b"],
    "nat.stunServers[]": [
        "stun.example.org:3478",
        "[2001:db8::1]:3478",
        "10.0.0.1",
        "bad host:3478",
        "stun.example.org:99999",
        "stun:0",
    ],
}

#: Whole specs judged by the CRD's CEL rules (and the parser's same checks): each rule that
#: judges a new resource refuses at least one of them.
ACROSS: list[dict[str, Any]] = [
    {**BASE, "rtmpStreamSecretRef": {"name": "c", "key": "k"}},
    {k: v for k, v in BASE.items() if k != "rtmpStream"},
    {
        **BASE,
        "destinations": [{"rtmpUrl": "rtmp://h/l", "rtmpStream": "t", "rtmpStreamSecretRef": KEY}],
    },
    {**BASE, "destinations": [{"rtmpUrl": "rtmp://h/l"}]},
    {**BASE, "callee": "1000"},
    {**BASE, "callee": "1000", "connection": {"sipDomain": "pbx.example.com"}},
    {**BASE, "connection": {"sipRegisterRequired": True}},
    {**BASE, "connection": {"sipRegisterRequired": True, "sipDomain": "d", "sipLogin": "u"}},
    {
        **BASE,
        "connection": {
            "sipRegisterRequired": True,
            "sipDomain": "d",
            "sipPasswordSecretRef": SECRET,
        },
    },
    {
        **BASE,
        "connection": {
            "sipRegisterRequired": True,
            "sipLogin": "u",
            "sipPasswordSecretRef": SECRET,
        },
    },
    {**BASE, "connection": {"sipPasswordSecretRef": SECRET}},
    {**BASE, "connection": {"sipPasswordSecretRef": SECRET, "sipAuthenticationName": "a"}},
    {**BASE, "nat": {"rtpPortMin": 30000}},
    {**BASE, "nat": {"rtpPortMax": 30000}},
    {**BASE, "nat": {"rtpPortMin": 30000, "rtpPortMax": 30000}},
    {**BASE, "nat": {"rtpPortMin": 30000, "rtpPortMax": 30001}},
    {**BASE, "nat": {"rtpPortMin": 30001, "rtpPortMax": 30000}},
    {**BASE, "networking": {"publicAddressSource": "NodeExternalIP"}},
    {**BASE, "networking": {"publicAddressSource": "NodeExternalIP", "mode": "PodNetwork"}},
    {**BASE, "networking": {"publicAddressSource": "None", "mode": "PodNetwork"}},
    {**BASE, "dtmfAfterAnswer": "1", "hasAudio": False},
    {**BASE, "dtmfAfterAnswer": "1", "hasAudio": False, "dtmfMethod": "INFO"},
    {**BASE, "sipDomain": "flat.example.com"},
    {**BASE, "connection": {"sipPassword": "in clear"}},
    {**BASE, "hasAudio": None},
    # Destination profiles (siprtmp_contract.profiles): what each CDN refuses, and its defaults.
    {**BASE, "profile": "facebook"},
    {**BASE, "profile": "facebook", "rtmpUrl": "rtmps://127.0.0.1/live"},
    {**BASE, "profile": "facebook", "rtmpUrl": "rtmps://h/live", "audio": {"channels": 1}},
    {**BASE, "profile": "facebook", "rtmpUrl": "rtmps://h/live", "audio": {"channels": 2}},
    {**BASE, "profile": "facebook", "rtmpUrl": "rtmps://h/l", "video": {"whenAbsent": "audioOnly"}},
    {**BASE, "profile": "youtube", "video": {"whenAbsent": "audioOnly"}},
    {**BASE, "profile": "youtube", "video": {"mode": "passthrough"}},
    {**BASE, "profile": "youtube", "video": {"maxKeyframeIntervalSeconds": 5}},
    {
        **BASE,
        "profile": "facebook",
        "rtmpUrl": "rtmps://h/l",
        "video": {"maxKeyframeIntervalSeconds": 5},
    },
    {**BASE, "profile": "twitch", "video": {"maxKeyframeIntervalSeconds": 3}},
    {**BASE, "profile": "twitch", "video": {"whenAbsent": "audioOnly"}, "audio": {"channels": 1}},
    {**BASE, "profile": "generic", "video": {"maxKeyframeIntervalSeconds": 60}},
    # A destination's profile: its URL judged on its item, the call's stream on the spec.
    {**BASE, "destinations": [FB]},
    {**BASE, "destinations": [{**FB, "rtmpUrl": "rtmp://127.0.0.1/b"}]},
    {**BASE, "destinations": [GENERIC, {**FB, "rtmpUrl": "rtmp://127.0.0.1/b"}]},
    {**BASE, "destinations": [GENERIC, FB], "audio": {"channels": 1}},
    {**BASE, "destinations": [GENERIC, FB], "audio": {"channels": 2}},
    {**BASE, "destinations": [FB], "video": {"whenAbsent": "audioOnly"}},
    {**BASE, "destinations": [FB], "video": {"maxKeyframeIntervalSeconds": 5}},
    {**BASE, "destinations": [{**GENERIC, "profile": "youtube"}], "video": {"mode": "passthrough"}},
    {
        **BASE,
        "destinations": [{**GENERIC, "profile": "youtube"}],
        "video": {"whenAbsent": "audioOnly"},
    },
    {
        **BASE,
        "destinations": [{**GENERIC, "profile": "youtube"}],
        "video": {"maxKeyframeIntervalSeconds": 5},
    },
    {**BASE, "destinations": [{**GENERIC, "profile": "twitch"}]},
    {
        **BASE,
        "destinations": [{**GENERIC, "profile": "twitch"}],
        "video": {"maxKeyframeIntervalSeconds": 3},
    },
    # Several profiles: their defaults combine into what meets all (a 2 s keyframe for both).
    {**BASE, "profile": "youtube", "destinations": [{**GENERIC, "profile": "twitch"}, FB]},
    {
        **BASE,
        "profile": "youtube",
        "destinations": [{**GENERIC, "profile": "twitch"}],
        "video": {"maxKeyframeIntervalSeconds": 4},
    },
    {**BASE, "destinations": [GENERIC], "video": {"whenAbsent": "audioOnly"}},
]


def _generated(field: Field) -> Iterator[Any]:
    """Values from what the field declares: each side of its bounds, its enum and what is near
    it, its lengths and list sizes, and the forms of the seed the resource does not take."""
    if field.type == "boolean":
        yield from (True, False, "true", 1)
    elif field.type == "integer":
        low, high = field.bounds or (0, 1)
        yield from (low, high, low - 1, high + 1, float(low), low + 0.5, str(low), True)
        yield from field.enum or ()
        if field.enum:
            yield field.enum[0] + 1
    elif field.type == "string":
        yield from (1, "")
        if field.enum:
            yield from field.enum
            yield from (str(field.enum[0]).upper(), str(field.enum[0]).lower() + "x")
        elif field.pattern is None:
            yield from ("x", " x ")
        if field.max_length is not None:
            yield "a" * field.max_length
            yield "a" * (field.max_length + 1)
    elif field.type == "array" and field.items is not None:
        first = (SAMPLES.get(f"{path_of(field)}[]") or ["x"])[0]
        yield from (
            [],
            [first],
            [first] * (field.max_items or 1),
            [first] * ((field.max_items or 1) + 1),
        )
        yield from (first, [1])
    elif field.type == "object":
        yield from ("x", [], {}, {"unknownField": 1})


def path_of(wanted: Field) -> str:
    return next(path for path, field in walk() if field is wanted)


def _set(document: dict[str, Any], path: str, value: Any) -> None:
    """``value`` at ``path``; a parent ``name[]`` is the list ``name``'s first item (made with
    its companions by ``spec_with``), a final one the list's only item."""
    *parents, name = path.split(".")
    for parent in parents:
        if parent.endswith("[]"):
            items = document.get(parent[:-2])
            document = items[0] if isinstance(items, list) and items else {}
            continue
        child = document.get(parent)
        document = document.setdefault(parent, {}) if isinstance(child, dict | None) else {}
    if name.endswith("[]"):
        name, value = name[:-2], value if value is DROP else [value]
    if value is DROP:
        document.pop(name, None)
    else:
        document[name] = value


def spec_with(path: str, value: Any) -> dict[str, Any]:
    """BASE with ``value`` at ``path`` (``[]``: as the list's one item), and the companions the
    field needs."""
    document = copy.deepcopy(BASE)
    if path.startswith("connection.") or path == "callee":
        document["connection"] = {"sipDomain": "pbx.example.com"}
    for prefix, companions in COMPANIONS.items():
        if path == prefix or path.startswith(f"{prefix}."):
            for at, companion in companions.items():
                _set(document, at, companion if companion is DROP else copy.deepcopy(companion))
    _set(document, path, value)
    return document


def cases() -> list[tuple[str, dict[str, Any]]]:
    """(an id, the spec) for every case, generated and hand-picked."""
    found: list[tuple[str, dict[str, Any]]] = []
    for path, field in walk():
        if not field.in_crd:
            continue
        values = [*_generated(field), *SAMPLES.get(path, [])]
        if field.items is not None:
            found += [
                (f"{path}[]={v!r}", spec_with(f"{path}[]", v)) for v in SAMPLES.get(f"{path}[]", [])
            ]
        found += [(f"{path}={value!r}", spec_with(path, value)) for value in values]
    found += [(f"across{index}", spec) for index, spec in enumerate(ACROSS)]
    return found


CASES = cases()


def parser_takes(spec: dict[str, Any]) -> bool:
    try:
        parse_resource_spec(copy.deepcopy(spec))
    except SpecError:
        return False
    return True


@functools.cache
def crd_spec_schema() -> dict[str, Any]:
    crd = yaml.safe_load((REPO / "crds" / "siprtmpbridges.siprtmp.io.yaml").read_text())
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema["properties"]["spec"]  # type: ignore[no-any-return]


def _re2_pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[Any]:
    if isinstance(instance, str) and re2.search(pattern, instance) is None:
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


#: JSON Schema as the API server reads a CRD's: its patterns are RE2's.
_Structural = jsonschema.validators.extend(jsonschema.Draft7Validator, {"pattern": _re2_pattern})


def _admitted_shape(schema: dict[str, Any], value: Any) -> Any:
    """``value`` as the API server stores it before validating: nulls pruned, defaults written.
    A whole number written 1024.0 stays a double: the schema's integer, CEL's double."""
    if not isinstance(value, dict) or "properties" not in schema:
        if isinstance(value, list) and "items" in schema:
            return [_admitted_shape(schema["items"], item) for item in value]
        return value
    result = {k: v for k, v in value.items() if v is not None}
    for name, sub in schema["properties"].items():
        if name not in result and "default" in sub:
            result[name] = copy.deepcopy(sub["default"])
        if name in result:
            result[name] = _admitted_shape(sub, result[name])
    return result


def _unknown(schema: dict[str, Any], value: Any) -> bool:
    """A field the schema does not declare (refused under ``fieldValidation=Strict``)."""
    if isinstance(value, dict) and "properties" in schema:
        properties = schema["properties"]
        return any(k not in properties or _unknown(properties[k], v) for k, v in value.items())
    if isinstance(value, list) and "items" in schema:
        return any(_unknown(schema["items"], item) for item in value)
    return False


_CEL = celpy.Environment()


@functools.cache
def _program(rule: str) -> Any:
    return _CEL.program(_CEL.compile(rule))


def create_rules(schema: dict[str, Any]) -> Iterator[tuple[dict[str, Any], str]]:
    """(the schema a rule is on, the rule) for every CEL rule that judges a new resource (a
    rule naming ``oldSelf`` judges updates only)."""
    for rule in schema.get("x-kubernetes-validations", []):
        if "oldSelf" not in rule["rule"]:
            yield schema, rule["rule"]
    for sub in schema.get("properties", {}).values():
        yield from create_rules(sub)
    if "items" in schema:
        yield from create_rules(schema["items"])


def _double_for_int(schema: dict[str, Any], value: Any, rule: str) -> bool:
    """Whether ``rule`` reads an integer field written as a whole double (1024.0): the schema
    takes it, but the API server's CEL refuses it ("expected int, got float64")."""
    if not isinstance(value, dict):
        return False
    properties = schema.get("properties", {})
    return any(
        isinstance(item, float)
        and properties.get(name, {}).get("type") == "integer"
        and f"self.{name}" in rule
        for name, item in value.items()
    )


def _rules_hold(schema: dict[str, Any], value: Any, failed: set[str]) -> None:
    """Evaluate the CEL rules on ``value`` and what it holds, adding each failing rule."""
    for rule in schema.get("x-kubernetes-validations", []):
        if "oldSelf" in rule["rule"]:
            continue
        if _double_for_int(schema, value, rule["rule"]):
            failed.add(rule["rule"])
            continue
        program = _program(rule["rule"])
        try:
            result = program.evaluate({"self": json_to_cel(value)})
        except CELEvalError as error:
            result = error
        if not (isinstance(result, celpy.celtypes.BoolType) and bool(result)):
            failed.add(rule["rule"])  # false, or an evaluation error: refused either way
    if isinstance(value, dict):
        for name, sub in schema.get("properties", {}).items():
            if name in value:
                _rules_hold(sub, value[name], failed)
    if isinstance(value, list) and "items" in schema:
        for item in value:
            _rules_hold(schema["items"], item, failed)


def crd_verdict(spec: dict[str, Any]) -> tuple[bool, set[str]]:
    """Whether the CRD admits ``spec``, and the CEL rules it fails."""
    schema = crd_spec_schema()
    admitted = _admitted_shape(schema, json.loads(json.dumps(spec)))
    if _unknown(schema, admitted):
        return False, set()
    if next(_Structural(schema).iter_errors(admitted), None) is not None:
        return False, set()
    failed: set[str] = set()
    _rules_hold(schema, admitted, failed)
    return not failed, failed


@pytest.mark.parametrize(("case", "spec"), CASES, ids=[case for case, _ in CASES])
def test_the_parser_and_the_crd_take_the_same_specs(case: str, spec: dict[str, Any]) -> None:
    crd, failed = crd_verdict(spec)
    assert parser_takes(spec) == crd, (case, failed)


def test_every_field_is_both_taken_and_refused() -> None:
    """No field's cases are all of one verdict (their comparison would prove little)."""
    verdicts: dict[str, set[bool]] = {}
    for case, spec in CASES:
        if not case.startswith("across"):
            path = case.split("=", 1)[0].removesuffix("[]")
            verdicts.setdefault(path, set()).add(parser_takes(spec))
    assert [(path, seen) for path, seen in verdicts.items() if len(seen) < 2] == []


def test_every_pattern_has_samples_and_every_cel_rule_a_refused_case() -> None:
    missing = [
        path
        for path, field in walk()
        if field.in_crd and field.pattern is not None and path not in SAMPLES
    ]
    missing += [
        f"{path}[]"
        for path, field in walk()
        if field.items is not None and field.items.pattern and f"{path}[]" not in SAMPLES
    ]
    assert not missing, f"declare agreement samples in SAMPLES for {missing}"
    failed: set[str] = set()
    for _, spec in CASES:
        failed |= crd_verdict(spec)[1]
    rules = {rule for _, rule in create_rules(crd_spec_schema())}
    assert rules - failed == set(), "a CEL rule no case refuses: add a document to ACROSS"


def test_the_seeds_forms_become_specs_both_take() -> None:
    """What the resource refuses, the REST API's reading turns into what both take."""
    from siprtmp_contract.canonical import normalise

    seed = {
        **BASE,
        "hasAudio": "true",
        "codecs": "g711u, PCMA G722",
        "sipTransport": "TCP",
        "sipDomain": "pbx.example.com",
        "sipPort": "5060",
        "video": {"mode": "off"},
        "nat": {"rtpPortMin": "30000", "rtpPortMax": "30010"},
        "dtmfAfterAnswer": "1",
        "dtmfMethod": "info",
        "appKey": "",
    }
    assert not parser_takes(seed) and not crd_verdict(seed)[0]
    canonical = normalise(seed)
    assert parser_takes(canonical) and crd_verdict(canonical)[0]
    assert canonical["codecs"] == ["PCMU", "PCMA", "G722"]
    assert canonical["connection"] == {
        "sipTransport": "tcp",
        "sipDomain": "pbx.example.com",
        "sipPort": 5060,
    }
    assert (canonical["video"], canonical["dtmfMethod"]) == ({"mode": "disabled"}, "INFO")
