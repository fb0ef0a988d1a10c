"""Request bodies → validated requests (pure). Every refusal is a 400 naming the field.

The startup body is validated by the bridge's own spec parser (``siprtmp_contract.spec``), which
already accepts the seed's nested body and its later flat ``/rest-api/call/startup`` shape, so the
API refuses exactly what a bridge would refuse, with the same messages. What is left here is what
only the API knows: the password goes to a Secret, and the seed's string booleans and ports become
the types the CRD declares.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from siprtmp_contract.dtmf import (
    DtmfError,
    DtmfMethod,
    parse_digits,
    parse_method,
)
from siprtmp_contract.spec import (
    CONNECTION_FIELDS,
    SpecError,
    parse_spec,
)

from .errors import bad_request

JSON = dict[str, Any]

#: The CRD's pattern for ``spec.callId`` (it also has to fit in a resource name's hash input).
CALL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

#: Fields typed boolean / integer in the CRD, which the seed sends as strings ("true", "5060").
#: tests/unit/test_api_requests.py checks these lists against the CRD's schema.
BOOLEAN_FIELDS: tuple[tuple[str, ...], ...] = (
    ("hasAudio",),
    ("hasVideo",),
    ("rtmpTlsVerify",),
    ("connection", "sipRegisterRequired"),
    ("connection", "sipTlsVerifyServer"),
)
INTEGER_FIELDS: tuple[tuple[str, ...], ...] = (
    ("connection", "sipPort"),
    ("callSetupTimeoutSeconds",),
    ("rtpInactivityTimeoutSeconds",),
    ("holdTimeoutSeconds",),
    ("maxDurationSeconds",),
    ("rtmpReconnectTimeoutSeconds",),
    ("maxRetries",),
    ("ttlSecondsAfterFinished",),
    ("audio", "bitrate"),
    ("audio", "sampleRate"),
    ("nat", "rtpPortMin"),
    ("nat", "rtpPortMax"),
    ("nat", "keepAliveSeconds"),
)

#: What a find body may filter on: the call object's own field names.
FIND_FIELDS = ("callId", "callee", "rtmpUrl", "rtmpStream", "status", "streamStatus")
DTMF_TYPES = tuple(method.value for method in DtmfMethod)


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
    if nested is not None and not isinstance(nested, Mapping):
        raise bad_request("connection", "must be an object")
    if "sipPasswordSecretRef" in doc or "sipPasswordSecretRef" in (nested or {}):
        raise bad_request(
            "connection.sipPasswordSecretRef",
            "is managed by the API: send connection.sipPassword, it is stored in a Secret",
        )
    if "rtmpStreamSecretRef" in doc:
        # A caller of the API could otherwise have any Secret of the namespace published.
        raise bad_request("rtmpStreamSecretRef", "is not accepted by the API: send rtmpStream")
    try:
        parsed = parse_spec(doc)
    except SpecError as error:
        raise bad_request(error.field_path or "body", error.problem) from error
    except RecursionError as error:
        raise bad_request("body", "is nested too deeply") from error
    if not CALL_ID.match(parsed.call_id):
        raise bad_request(
            "callId",
            "must be 1-64 letters, digits, '.', '_' or '-', starting with one of the first two",
        )
    connection: JSON = {
        **{k: v for k, v in doc.items() if k in CONNECTION_FIELDS},
        **(nested or {}),
    }
    # As sent: the spec parser strips strings, but a password's spaces are the password's.
    password = connection.pop("sipPassword", None)
    spec: JSON = {k: v for k, v in doc.items() if k not in CONNECTION_FIELDS and k != "connection"}
    spec["callId"] = parsed.call_id
    if connection:
        spec["connection"] = connection
    spec = _typed(_without_empty(spec))
    if "dtmfMethod" in spec:  # any case here, the CRD's enum is upper case
        spec["dtmfMethod"] = parsed.dtmf_method.value
    return StartupRequest(parsed.call_id, spec, str(password) if _present(password) else None)


def _without_empty(doc: Mapping[str, Any]) -> JSON:
    """Drop fields sent empty, one level down too (``connection``, ``nat``, ``audio``)."""
    result: JSON = {}
    for key, value in doc.items():
        kept = (
            {k: v for k, v in value.items() if _present(v)} if isinstance(value, Mapping) else value
        )
        if _present(kept) and kept != {}:
            result[key] = kept
    return result


def _typed(spec: JSON) -> JSON:
    """The seed's strings as the CRD's booleans and integers (the spec parser accepted them)."""
    for path in BOOLEAN_FIELDS:
        _convert(spec, path, _as_boolean)
    for path in INTEGER_FIELDS:
        _convert(spec, path, _as_integer)
    return spec


def _convert(doc: JSON, path: tuple[str, ...], convert: Callable[[Any], Any]) -> None:
    *parents, name = path
    for parent in parents:
        child = doc.get(parent)
        if not isinstance(child, dict):
            return
        doc = child
    if name in doc:
        doc[name] = convert(doc[name])


def _as_boolean(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return value


def _as_integer(value: Any) -> Any:
    """Whole numbers become ints; anything else is left for the API server to refuse by name."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return int(value.strip())  # the spec parser refused more digits than its bounds allow
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


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
