"""The OpenAPI 3.1 document of the REST API, served at ``/rest-api/openapi.json``.

Field names come from the bridge's spec parser (``SPEC_FIELDS``, ``CONNECTION_FIELDS``) and
status names from its status model, so the document cannot list a field the API refuses or miss
one it accepts.
"""

from __future__ import annotations

from typing import Any

from siprtmp_contract.dtmf import (
    MAX_DIGITS,
    SEQUENCE_PATTERN,
    DtmfMethod,
)
from siprtmp_contract.spec import (
    CONNECTION_FIELDS,
    SPEC_FIELDS,
)
from siprtmp_contract.states import (
    CallState,
    Phase,
    StreamState,
)

from .bodies import BOOLEAN_FIELDS, CALL_ID, FIND_FIELDS, INTEGER_FIELDS

JSON = dict[str, Any]
REF = "#/components/schemas/"
SEED_FIELDS = ("callId", "callee", "rtmpUrl", "rtmpStream", "hasAudio", "hasVideo")
DESCRIPTIONS = {
    "callId": "Identifier of the call; generated when absent. Unique among the API's calls.",
    "callee": "SIP URI, or a user part completed with connection.sipDomain and sipPort.",
    "rtmpUrl": "RTMP(S) application URL; the call is published to rtmpUrl/rtmpStream.",
    "rtmpStream": "Stream name under rtmpUrl. One live call per rtmpUrl/rtmpStream.",
    "hasAudio": "true: the bridge sends audio (a=sendrecv; needed for DTMF); false: recvonly.",
    "hasVideo": "true: a=sendrecv video; false: recvonly.",
    "sipPassword": "Stored in a Secret owned by the call's SipRtmpBridge; never echoed.",
    "appKey": "Accepted for compatibility with the seed; unused.",
    "dtmfAfterAnswer": "Keys sent 1 s after the answer (a conference PIN): 0-9 * # A-D, pauses "
    f"w (0.5 s) and W (1 s), at most {MAX_DIGITS} keys, e.g. W1234#.",
    "dtmfMethod": "How dtmfAfterAnswer is sent: RFC2833 (default; needs hasAudio) or INFO.",
}
DTMF_METHODS = [method.value for method in DtmfMethod]


def _field(path: tuple[str, ...]) -> JSON:
    """Schema of one body field: the seed sends booleans and ports as strings too."""
    schema: JSON
    if path in BOOLEAN_FIELDS:
        schema = {"type": ["boolean", "string"], "enum": [True, False, "true", "false"]}
    elif path in INTEGER_FIELDS:
        schema = {"type": ["integer", "string"]}
    elif path[-1] in ("connection", "nat", "audio", "networking", "video"):
        schema = {"type": "object"}
    elif path[-1] == "codecs":
        schema = {"type": ["array", "string"], "items": {"type": "string"}}
    else:
        schema = {"type": "string"}
    if path == ("callId",):
        schema["pattern"] = CALL_ID.pattern
    if path == ("dtmfAfterAnswer",):
        schema["pattern"] = SEQUENCE_PATTERN
    if path == ("dtmfMethod",):
        schema["enum"] = DTMF_METHODS
    if path[-1] in DESCRIPTIONS:
        schema["description"] = DESCRIPTIONS[path[-1]]
    return schema


#: Secret references a body may not name: the API stores the password itself, and a caller
#: must not have a Secret of the namespace mounted into a bridge (bodies.parse_startup).
SECRET_REFS = frozenset({"sipPasswordSecretRef", "rtmpStreamSecretRef"})


def _connection() -> JSON:
    names = sorted(CONNECTION_FIELDS - SECRET_REFS)
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": {name: _field(("connection", name)) for name in names},
    }


def _startup() -> JSON:
    """The nested body, and the flat one (connection fields on top) of the later seed server."""
    properties: JSON = {name: _field((name,)) for name in SEED_FIELDS}
    properties["connection"] = {"$ref": f"{REF}Connection"}
    for name in sorted(SPEC_FIELDS - set(SEED_FIELDS) - {"connection"} - SECRET_REFS):
        properties[name] = {**_field((name,)), "description": "As in the SipRtmpBridge spec."}
    for name in sorted(CONNECTION_FIELDS - SECRET_REFS):
        properties[name] = {**_field(("connection", name)), "description": "Flat shape."}
    return {
        "type": "object",
        "required": ["callee", "rtmpUrl", "rtmpStream"],
        "additionalProperties": False,
        "properties": properties,
    }


def _call() -> JSON:
    string_or_null = {"type": ["string", "null"]}
    return {
        "type": "object",
        "properties": {
            "callId": {"type": "string"},
            "callee": {"type": "string"},
            "rtmpUrl": {"type": "string", "description": "Credentials removed."},
            "rtmpStream": {"type": "string"},
            "hasAudio": {"type": "boolean"},
            "hasVideo": {"type": "boolean"},
            "status": {"enum": [s.value for s in CallState], "description": "Call status."},
            "streamStatus": {"enum": [s.value for s in StreamState]},
            "phase": {"enum": [p.value for p in Phase]},
            "reason": string_or_null,
            "message": string_or_null,
            "sipStatusCode": {"type": ["integer", "null"]},
            "sipLogin": string_or_null,
            "sipDomain": string_or_null,
            "bytesSent": {"type": "integer"},
            "name": {"type": "string", "description": "The SipRtmpBridge resource."},
            "namespace": {"type": "string"},
            "createdAt": {"type": "string"},
            "terminating": {"type": "boolean"},
        },
    }


def _operation(summary: str, body: str | None, answer: JSON, errors: tuple[int, ...]) -> JSON:
    responses: JSON = {"200": {"description": "OK", "content": {"application/json": answer}}}
    texts = {
        400: "Malformed body; `field` names the offending field",
        401: "Missing or wrong bearer token",
        404: "No such call",
        409: "Conflict (callId exists, stream live, call not established)",
        502: "The bridge pod or the Kubernetes API did not answer",
    }
    for code in (400, 401, *errors):
        responses[str(code)] = {
            "description": texts[code],
            "content": {"application/json": {"schema": {"$ref": f"{REF}Error"}}},
        }
    operation: JSON = {"summary": summary, "responses": responses}
    if body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"{REF}{body}"}}},
        }
    return {"post": operation}


def openapi_document() -> JSON:
    call = {"schema": {"$ref": f"{REF}Call"}}
    calls = {"schema": {"type": "array", "items": {"$ref": f"{REF}Call"}}}
    call_ref = {
        "type": "object",
        "required": ["callId"],
        "additionalProperties": False,
        "properties": {"callId": {"type": "string"}},
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "sip-rtmp-bridge REST API",
            "version": "v1",
            "description": "The seed's call REST API over SipRtmpBridge resources: each call "
            "is a resource in the API's namespace; statuses use the seed's names.",
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Connection": _connection(),
                "Startup": _startup(),
                "CallRef": call_ref,
                "Find": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {name: {"type": "string"} for name in FIND_FIELDS},
                },
                "SendDtmf": {
                    "type": "object",
                    "required": ["callId", "dtmf"],
                    "additionalProperties": False,
                    "properties": {
                        "callId": {"type": "string"},
                        "dtmf": {
                            "type": "string",
                            "pattern": SEQUENCE_PATTERN,
                            "description": f"At most {MAX_DIGITS} keys; pauses w (0.5 s), W (1 s).",
                        },
                        "type": {
                            "enum": DTMF_METHODS,
                            "description": "RFC2833 (default): events in the call's RTP; "
                            "INFO: one SIP INFO (application/dtmf-relay) per key.",
                        },
                    },
                },
                "Call": _call(),
                "Error": {
                    "type": "object",
                    "properties": {
                        "status": {"type": "integer"},
                        "field": {"type": ["string", "null"]},
                        "error": {"type": "string"},
                    },
                },
            },
        },
        "security": [{"bearer": []}],
        "paths": {
            "/rest-api/call/startup": _operation(
                "Place a call (creates its SipRtmpBridge)", "Startup", call, (409, 502)
            ),
            "/rest-api/call/terminate": _operation(
                "Hang up (deletes the SipRtmpBridge)", "CallRef", call, (404, 502)
            ),
            "/rest-api/call/find": _operation("Calls matching every field", "Find", calls, (404,)),
            "/rest-api/call/find_all": _operation("Every call", None, calls, ()),
            "/rest-api/call/send_dtmf": _operation(
                "Send DTMF (RFC 2833 or SIP INFO) into an established call",
                "SendDtmf",
                {"schema": {"type": "object"}},
                (404, 409, 502),
            ),
        },
    }
