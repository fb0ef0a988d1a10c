"""Request bodies → validated requests (pure). Every refusal is a 400 naming the field.

The startup body is read as the seed's clients write it: ``siprtmp_contract.canonical.normalise``
turns its string booleans, ports and lists, its enum values in any case, codec aliases, empty
fields and flat connection fields into the canonical spec the resource holds, and the bridge's
own spec parser (``siprtmp_contract.spec``) validates that, so the API refuses exactly what a
bridge would refuse, with the same messages. What is left here is what only the API knows: the
password goes to a Secret, no Secret may be named by a caller.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from siprtmp_contract.canonical import normalise
from siprtmp_contract.dtmf import (
    DtmfError,
    DtmfMethod,
    parse_digits,
    parse_method,
)
from siprtmp_contract.fields import BY_PATH, walk
from siprtmp_contract.redact import Scrubber
from siprtmp_contract.spec import Destination, SpecError, parse_destinations, parse_spec

from .errors import bad_request

JSON = dict[str, Any]

#: ``spec.callId`` as the CRD takes it (it is also the resource name's hash input): the parser
#: refuses a given id of another form, and generates ids of this one.
CALL_ID = re.compile(BY_PATH["callId"].pattern or "")


def _typed_in_crd(json_type: str) -> tuple[tuple[str, ...], ...]:
    """The paths of the CRD's fields of one JSON type."""
    return tuple(tuple(path.split(".")) for path, f in walk() if f.type == json_type and f.in_crd)


#: Fields typed boolean / integer / array in the CRD, which the seed sends as strings ("true",
#: "5060", "PCMU,G722"); ``normalise`` turns those forms into the CRD's types.
BOOLEAN_FIELDS = _typed_in_crd("boolean")
INTEGER_FIELDS = _typed_in_crd("integer")
LIST_FIELDS = _typed_in_crd("array")
#: Secret references a body may not name: the API stores the password itself, and a caller
#: must not have a Secret of the namespace mounted into a bridge.
SECRET_REFS = frozenset({"sipPasswordSecretRef", "rtmpStreamSecretRef"})

#: What a find body may filter on: the call object's own field names.
FIND_FIELDS = ("callId", "callee", "rtmpUrl", "rtmpStream", "status", "streamStatus")

#: A destination's fields, as ``spec.destinations[]`` has them (a push body carries them).
DESTINATION_FIELDS = tuple(
    f.name
    for f in getattr(BY_PATH["destinations"].items, "fields", ())
    if f.name not in SECRET_REFS
)
#: What identifies a destination in a push/terminate body: its name, or where it publishes.
PUSH_REF_FIELDS = ("callId", "name", "rtmpUrl", "rtmpStream")


@dataclass(frozen=True)
class StartupRequest:
    """A call to place: the resource's spec (no password in it) and the password, if any."""

    call_id: str
    spec: JSON
    password: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class PushRequest:
    """A destination to add to a live call: as ``spec.destinations[]`` holds it (canonical;
    ``name`` absent when the caller gave none) and as the bridge reads it."""

    call_id: str
    destination: JSON = field(repr=False)
    parsed: Destination

    @property
    def scrubber(self) -> Scrubber:
        """What of the body no answer or log line may show: the key's pieces, the URL's
        credentials."""
        return Scrubber.of(self.parsed.secrets)


@dataclass(frozen=True)
class PushRef:
    """The destination a push/terminate (or a push/find filter) names: by ``name``, or by the
    ``rtmpUrl``/``rtmpStream`` it publishes to (``destination``)."""

    call_id: str
    name: str | None = None
    destination: JSON | None = field(default=None, repr=False)
    parsed: Destination | None = None

    @property
    def scrubber(self) -> Scrubber:
        return Scrubber.of(self.parsed.secrets if self.parsed is not None else ())


@dataclass(frozen=True)
class DtmfRequest:
    call_id: str
    digits: str
    method: DtmfMethod = DtmfMethod.RFC2833


def parse_json(raw: bytes) -> Any:
    """The body as JSON; NaN and Infinity are refused (not JSON, and no field takes them)."""
    if not raw.strip():
        raise bad_request("body", "is empty: send a JSON object")

    def refuse_constant(name: str) -> Any:
        raise bad_request("body", f"{name} is not a JSON value")

    try:
        return json.loads(raw, parse_constant=refuse_constant)
    except UnicodeDecodeError as error:
        raise bad_request("body", "is not UTF-8") from error
    except json.JSONDecodeError as error:
        raise bad_request("body", f"is not valid JSON ({error.msg} at {error.pos})") from error
    except ValueError as error:  # Python reads no integer of more than 4300 digits
        raise bad_request("body", "holds a number too long to be one") from error
    except RecursionError as error:
        raise bad_request("body", "is nested too deeply") from error


def _object(body: Any) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise bad_request("body", "must be a JSON object")
    return body


def _present(value: Any) -> bool:
    """The seed's clients send "" for fields they leave empty; so does the bridge's parser."""
    return value is not None and value != ""


def parse_startup(body: Any) -> StartupRequest:
    """The seed's nested or flat startup body → the resource's spec and the password."""
    doc = _object(body)
    nested = doc.get("connection")
    nested = nested if isinstance(nested, Mapping) else {}  # the parser refuses any other
    if "sipPasswordSecretRef" in doc or "sipPasswordSecretRef" in nested:
        raise bad_request(
            "connection.sipPasswordSecretRef",
            "is managed by the API: send connection.sipPassword, it is stored in a Secret",
        )
    if "rtmpStreamSecretRef" in doc:
        # A caller of the API could otherwise have any Secret of the namespace published.
        raise bad_request("rtmpStreamSecretRef", "is not accepted by the API: send rtmpStream")
    try:
        spec = normalise(doc)
        parsed = parse_spec(spec)
    except SpecError as error:
        raise bad_request(error.field_path or "body", error.problem) from error
    except RecursionError as error:
        raise bad_request("body", "is nested too deeply") from error
    # As sent: the spec's strings are stripped, but a password's spaces are the password's.
    password = nested.get("sipPassword", doc.get("sipPassword"))
    connection = spec.pop("connection", {})
    connection.pop("sipPassword", None)
    spec["callId"] = parsed.call_id
    if connection:
        spec["connection"] = connection
    return StartupRequest(parsed.call_id, spec, str(password) if _present(password) else None)


def _call_id(doc: Mapping[str, Any]) -> str:
    value = doc.get("callId")
    if not isinstance(value, str) or not value.strip():
        raise bad_request("callId", "is required: the callId given at startup")
    return value.strip()


def _only(doc: Mapping[str, Any], known: tuple[str, ...]) -> None:
    for name in doc:
        if not name:
            raise bad_request("body", "has a field with an empty name")
        if name not in known:
            raise bad_request(str(name), f"is not a known field (known: {', '.join(known)})")


def parse_call_ref(body: Any) -> str:
    """terminate: ``{"callId": …}``."""
    doc = _object(body)
    _only(doc, ("callId",))
    return _call_id(doc)


def parse_find(body: Any) -> dict[str, str]:
    """find: equality filters on the call object's fields; ``{}`` finds every call."""
    doc = _object(body)
    _only(doc, FIND_FIELDS)
    filters: dict[str, str] = {}
    for name, value in doc.items():
        if not isinstance(value, str):
            raise bad_request(name, "must be a string")
        filters[name] = value
    return filters


def parse_send_dtmf(body: Any) -> DtmfRequest:
    """send_dtmf: ``{"callId": …, "dtmf": "123#", "type": "RFC2833"}``; ``type`` INFO sends
    one SIP INFO per key; ``dtmf`` may hold pauses (w, W) as ``dtmfAfterAnswer`` does."""
    doc = _object(body)
    _only(doc, ("callId", "dtmf", "type"))
    call_id = _call_id(doc)
    try:
        method = parse_method(doc.get("type"))
        digits = parse_digits(doc.get("dtmf"))
    except DtmfError as error:
        raise bad_request(error.field_path, error.problem) from error
    return DtmfRequest(call_id, digits, method)


def _destination(item: Mapping[str, Any]) -> tuple[JSON, Destination]:
    """One ``destinations[]`` item from a push body's fields: read as the startup body's are
    (``normalise``), checked by the bridge's own parser; a problem names the body's field."""
    if "rtmpStreamSecretRef" in item:
        raise bad_request(
            "rtmpStreamSecretRef",
            "is not accepted by the API: send rtmpStream (a caller of the API names no Secret; "
            "a destination's reference is written in the resource itself)",
        )
    canonical: JSON = normalise({"destinations": [dict(item)]}).get("destinations", [{}])[0]
    try:
        (parsed,) = parse_destinations([canonical], "destinations")
    except SpecError as error:
        path = error.field_path.removeprefix("destinations[0].").removeprefix("destinations.")
        raise bad_request(path if path in DESTINATION_FIELDS else "body", error.problem) from error
    except RecursionError as error:
        raise bad_request("body", "is nested too deeply") from error
    return canonical, parsed


def parse_push(body: Any) -> PushRequest:
    """push/startup: ``{"callId", "rtmpUrl", "rtmpStream", "profile"?, "name"?}``."""
    doc = _object(body)
    if "rtmpStreamSecretRef" not in doc:
        _only(doc, ("callId", *DESTINATION_FIELDS))
    call_id = _call_id(doc)
    canonical, parsed = _destination({k: v for k, v in doc.items() if k != "callId"})
    return PushRequest(call_id, canonical, parsed)


def parse_push_ref(body: Any, *, required: bool = True) -> PushRef:
    """push/terminate: ``{"callId", "name"}`` or ``{"callId", "rtmpUrl", "rtmpStream"}``;
    push/find (``required`` False): ``{"callId"}``, optionally narrowed the same ways."""
    doc = _object(body)
    _only(doc, PUSH_REF_FIELDS)
    call_id = _call_id(doc)
    name = doc.get("name")
    if name is not None and not isinstance(name, str):
        raise bad_request("name", "must be a string")
    by_url = "rtmpUrl" in doc or "rtmpStream" in doc
    if name is not None and by_url:
        raise bad_request("name", "names the destination: send it or rtmpUrl/rtmpStream, not both")
    if by_url:
        canonical, parsed = _destination({k: doc.get(k) for k in ("rtmpUrl", "rtmpStream")})
        return PushRef(call_id, destination=canonical, parsed=parsed)
    if name is None and required:
        raise bad_request("name", "is required: the destination's name, or rtmpUrl and rtmpStream")
    return PushRef(call_id, name=name.strip() if name else None)
