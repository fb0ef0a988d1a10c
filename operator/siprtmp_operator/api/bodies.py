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
from siprtmp_contract.spec import SpecError, parse_spec

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


@dataclass(frozen=True)
class StartupRequest:
    """A call to place: the resource's spec (no password in it) and the password, if any."""

    call_id: str
    spec: JSON
    password: str | None = field(default=None, repr=False)


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
