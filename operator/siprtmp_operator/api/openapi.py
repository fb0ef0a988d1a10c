"""The OpenAPI 3.1 document of the REST API, served at ``/rest-api/openapi.json``.

The startup and push bodies' schemas are written from the spec's field table
(``siprtmp_contract.fields``, which the CRD is generated from too): its names, types, bounds,
patterns and descriptions, in the forms the seed's clients send (``_as_sent``). So the document
cannot list a field the API refuses, miss one it accepts or describe one otherwise than the CRD
does. What only the API has (its other bodies, the call and push objects, what it does with a
field beyond the spec) is declared here.
"""

from __future__ import annotations

from typing import Any

from siprtmp_contract.dtmf import (
    MAX_DIGITS,
    SEQUENCE_PATTERN,
    DtmfMethod,
)
from siprtmp_contract.fields import BY_PATH, SPEC, Field, json_schema
from siprtmp_contract.states import (
    CallState,
    Phase,
    StreamState,
)

from .bodies import (
    BOOLEAN_FIELDS,
    FIND_FIELDS,
    INTEGER_FIELDS,
    LIST_FIELDS,
    PUSH_REF_FIELDS,
    SECRET_REFS,
)

JSON = dict[str, Any]
REF = "#/components/schemas/"
#: What the API does with a spec field beyond what the spec says, by the field's path.
API_NOTES = {
    "callId": "Unique among the API's calls.",
    "rtmpStream": "One live call per rtmpUrl/rtmpStream (409 otherwise). Required by the API, "
    "which refuses rtmpStreamSecretRef.",
    "connection.sipPassword": "The API stores it in a Secret owned by the call's "
    "SipRtmpBridge (the resource gets sipPasswordSecretRef) and never echoes it.",
    "destinations[].rtmpStream": "One live call per rtmpUrl/rtmpStream, over every call's "
    "destinations (409 otherwise). Never shown in an answer or a log line.",
    "destinations[].name": "Unique within the call (409 otherwise); generated "
    "(push-<8 hex digits>) when not sent.",
}
DTMF_METHODS = [method.value for method in DtmfMethod]
#: The fields the seed's clients send as strings too (bodies._typed converts them).
_AS_STRING = {".".join(path) for path in (*BOOLEAN_FIELDS, *INTEGER_FIELDS, *LIST_FIELDS)}
#: The startup body's required fields: the spec's, and rtmpStream (no rtmpStreamSecretRef).
_REQUIRED = (*SPEC.required, "rtmpStream")
_DESTINATION = BY_PATH["destinations"].items or SPEC
#: A destination's required fields in a body: the resource's, and rtmpStream (as above).
_DESTINATION_REQUIRED = (*_DESTINATION.required, "rtmpStream")
#: Fields a body may not send empty: the required ones, a destination's too.
_NOT_EMPTY = {*_REQUIRED, *(f"destinations[].{name}" for name in _DESTINATION_REQUIRED)}


def _in_body(field: Field) -> bool:
    """A field a startup body may carry: the resource's, and the password the API moves to a
    Secret; no Secret reference."""
    return (field.in_crd or field.name == "sipPassword") and field.name not in SECRET_REFS


def _as_sent(field: Field, path: str, schema: JSON) -> JSON:
    """A field's schema in the forms the seed's clients send: booleans, integers and lists also
    as strings ("true", "5060", "PCMU,G722"), and "" for a scalar left empty (the API drops it)."""
    if path in API_NOTES:
        schema["description"] = f"{schema.get('description', '')}. {API_NOTES[path]}"
    if field.default is not None:
        schema["default"] = field.json_default
    if field.type == "object":
        schema["additionalProperties"] = False  # the parser refuses unknown fields
        return schema
    if path in _AS_STRING:
        schema["type"] = [field.type, "string"]
        if field.type == "boolean":
            schema["enum"] = [True, False, "true", "false"]
        elif "enum" in schema:
            schema["enum"] += [str(value) for value in schema["enum"]]
    if path in _NOT_EMPTY or field.type == "array" or path.endswith("[]"):
        return schema
    if "enum" in schema:
        schema["enum"].append("")
    if "pattern" in schema:
        schema["pattern"] = f"^$|{schema['pattern']}"
    return schema


def _startup_and_connection() -> tuple[JSON, JSON]:
    """The nested body, and the flat one (connection fields on top) of the later seed server;
    and its connection object."""
    spec = json_schema(SPEC, _as_sent, keep=_in_body)
    properties: JSON = spec["properties"]
    connection: JSON = properties["connection"]
    properties["connection"] = {"$ref": f"{REF}Connection"}
    for name, schema in connection["properties"].items():
        properties[name] = {
            **schema,
            "description": f"The flat shape's connection.{name}; the nested one wins.",
        }
    startup = {
        **spec,
        "description": "A SipRtmpBridge spec, its connection fields nested or flat.",
        "required": list(_REQUIRED),
    }
    return startup, connection


def _push() -> JSON:
    """The push/startup body: the call's callId and one ``spec.destinations[]`` item."""
    item = json_schema(_DESTINATION, _as_sent, _in_body, "destinations[]")
    return {
        **item,
        "description": "A destination to add to a live call (one of its spec.destinations).",
        "required": ["callId", *_DESTINATION_REQUIRED],
        "properties": {"callId": {"type": "string"}, **item["properties"]},
    }


def _push_view() -> JSON:
    string_or_null = {"type": ["string", "null"]}
    return {
        "type": "object",
        "description": "One destination of a call; its stream key is never shown.",
        "properties": {
            "callId": {"type": "string"},
            "name": {**string_or_null, "description": "null for rtmpUrl/rtmpStream's"},
            "primary": {
                "type": "boolean",
                "description": "The call's own rtmpUrl/rtmpStream (fixed for its life).",
            },
            "rtmpUrl": {"type": "string", "description": "Credentials removed."},
            "url": {"type": "string", "description": "rtmpUrl/*** as status shows it."},
            "profile": {"type": "string"},
            "state": {
                "enum": [s.value for s in StreamState],
                "description": "As the bridge reports it; PENDING until it does.",
            },
            "bytesSent": {"type": "integer"},
            "reconnects": {"type": "integer"},
            "failure": string_or_null,
            "terminating": {"type": "boolean", "description": "In push/terminate's answer."},
        },
    }


def _call() -> JSON:
    string_or_null = {"type": ["string", "null"]}
    return {
        "type": "object",
        "properties": {
            "callId": {"type": "string"},
            "callee": {"type": "string"},
            "rtmpUrl": {"type": "string", "description": "Credentials removed."},
            "rtmpStream": {
                "type": "string",
                "description": "As given; *** when the API keeps keys in the calls' Secrets "
                "(api.streamKeysInSecrets).",
            },
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
        403: "A host off the operator's allowlist",
        404: "No such call (or destination)",
        409: "Conflict (callId exists, stream live, call not established or over, name taken, "
        "no room for another destination)",
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
    startup, connection = _startup_and_connection()
    call = {"schema": {"$ref": f"{REF}Call"}}
    push = {"schema": {"$ref": f"{REF}PushView"}}
    pushes = {"schema": {"type": "array", "items": {"$ref": f"{REF}PushView"}}}
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
            "description": "The SIP-as-RTMP call REST API over SipRtmpBridge resources: each "
            "call is a resource in the API's namespace; statuses use that API's names.",
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Connection": connection,
                "Startup": startup,
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
                "Push": _push(),
                "PushRef": {
                    "type": "object",
                    "required": ["callId"],
                    "additionalProperties": False,
                    "description": "A call's destination: by name, or by the rtmpUrl and "
                    "rtmpStream it publishes to (push/find: callId alone lists them all).",
                    "properties": {name: {"type": "string"} for name in PUSH_REF_FIELDS},
                },
                "PushView": _push_view(),
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
            "/rest-api/push/startup": _operation(
                "Publish a live call to one more destination (adds to spec.destinations)",
                "Push",
                push,
                (403, 404, 409, 502),
            ),
            "/rest-api/push/find": _operation(
                "A call's destinations, its rtmpUrl/rtmpStream first", "PushRef", pushes, (404,)
            ),
            "/rest-api/push/terminate": _operation(
                "Stop publishing to a destination (removes it from spec.destinations)",
                "PushRef",
                push,
                (404, 409, 502),
            ),
        },
    }
