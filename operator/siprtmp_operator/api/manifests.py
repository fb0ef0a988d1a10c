"""Pure builders: a startup request → the SipRtmpBridge and its own Secret (the SIP password,
and with ``api.streamKeysInSecrets`` the stream key); a resource → the seed's call object and its
destinations' push objects.

Names are derived from the callId, so a second startup with the same callId collides in the API
server itself (409 AlreadyExists), even between two API replicas.

A key kept in the call's Secret is out of the resource, and the API never reads a Secret, so the
resource carries instead its ``STREAM_DIGEST_ANNOTATION``: an HMAC of the stream (URL and key,
normalised as ``stream_key`` does) under the API's token. The API compares a startup's stream and
a find's ``rtmpStream`` with it; without the token, a reader of the resource learns nothing of a
short or guessable key from it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from typing import Any

from siprtmp_contract.pod import BRIDGE_USABLE_LABEL, BRIDGE_USABLE_VALUE
from siprtmp_contract.redact import redact_url, redacted_publish_url
from siprtmp_contract.spec import default
from siprtmp_contract.states import (
    CallState,
    Phase,
    StreamState,
)

from .. import API_VERSION, KIND
from ..names import LABEL_MANAGED_BY, MANAGED_BY
from ..policy import destinations_of, stream_key, stream_keys
from ..status import TERMINAL_PHASES
from ..statusmodel import read_status
from .bodies import StartupRequest

JSON = dict[str, Any]
#: The keys of the call's own Secret.
PASSWORD_KEY = "password"
STREAM_KEY = "rtmpStream"
#: What a call object shows for a key kept in the call's Secret.
HIDDEN_KEY = "***"
LABEL_CREATED_BY = "app.kubernetes.io/created-by"
CREATED_BY = "sip-rtmp-rest-api"
ANNOTATION_CALL_ID = "siprtmp.io/call-id"
STREAM_DIGEST_ANNOTATION = "siprtmp.io/stream-digest"
DEFAULT_PROFILE = default("destinations[].profile")
#: The CRD limits names to 50 characters (the bridge pod is named ``NAME-bridge-N``).
MAX_NAME = 50


def resource_name(call_id: str) -> str:
    """``call-<readable part>-<hash>``: a DNS label, unique per callId (callIds are case-sensitive,
    names are not, hence the hash)."""
    readable = re.sub(r"[^a-z0-9]+", "-", call_id.lower()).strip("-")[:30].strip("-")
    digest = hashlib.sha256(call_id.encode()).hexdigest()[:10]
    name = f"call-{readable}-{digest}" if readable else f"call-{digest}"
    assert len(name) <= MAX_NAME
    return name


def secret_name(bridge_name: str) -> str:
    return f"{bridge_name}-secrets"


def stream_digest(token: str, spec: Mapping[str, Any]) -> str | None:
    """The HMAC-SHA256 (hex) of the stream ``spec`` (or one destination) publishes to, under
    ``token``; None when it names its key by a Secret reference."""
    key = stream_key(spec)
    if key is None:
        return None
    return hmac.new(token.encode(), key.encode(), hashlib.sha256).hexdigest()


def bridge_manifest(namespace: str, request: StartupRequest, keys_digested_by: str = "") -> JSON:
    """The SipRtmpBridge for a startup; the password is referenced, never embedded. With
    ``keys_digested_by`` (the API's token, when ``api.streamKeysInSecrets`` is on) the stream key
    too: ``rtmpStreamSecretRef`` names the call's Secret, the digest annotation stands for it."""
    name = resource_name(request.call_id)
    spec: JSON = {**request.spec}
    annotations = {ANNOTATION_CALL_ID: request.call_id}
    if request.password is not None:
        connection = dict(spec.get("connection") or {})
        connection["sipPasswordSecretRef"] = {"name": secret_name(name), "key": PASSWORD_KEY}
        spec["connection"] = connection
    if keys_digested_by:
        annotations[STREAM_DIGEST_ANNOTATION] = str(stream_digest(keys_digested_by, spec))
        del spec["rtmpStream"]
        spec["rtmpStreamSecretRef"] = {"name": secret_name(name), "key": STREAM_KEY}
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {LABEL_CREATED_BY: CREATED_BY},
            "annotations": annotations,
        },
        "spec": spec,
    }


def call_secret(bridge: Mapping[str, Any], request: StartupRequest) -> JSON | None:
    """The Secret holding what ``bridge`` (made by ``bridge_manifest`` from ``request``)
    references of it: the SIP password, the stream key; None when it references neither. Owned
    by the bridge: deleting the call deletes it. Labelled usable by a bridge, as the resource
    names it."""
    spec = bridge["spec"]
    data: dict[str, str] = {}
    if request.password is not None:
        data[PASSWORD_KEY] = request.password
    if "rtmpStreamSecretRef" in spec:
        data[STREAM_KEY] = str(request.spec["rtmpStream"])
    if not data:
        return None
    meta = bridge["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": secret_name(meta["name"]),
            "namespace": meta["namespace"],
            "labels": {
                LABEL_CREATED_BY: CREATED_BY,
                LABEL_MANAGED_BY: MANAGED_BY,
                BRIDGE_USABLE_LABEL: BRIDGE_USABLE_VALUE,
            },
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": KIND,
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "controller": True,
                }
            ],
        },
        "stringData": data,
    }


def call_id_of(resource: Mapping[str, Any]) -> str:
    """The callId the call is known by: spec.callId, else the UID (the operator's default)."""
    spec = resource.get("spec") or {}
    meta = resource.get("metadata") or {}
    return str(spec.get("callId") or meta.get("uid") or "")


def is_live(resource: Mapping[str, Any]) -> bool:
    return read_status(resource.get("status")).phase not in TERMINAL_PHASES


def publishes_to(resource: Mapping[str, Any], spec: Mapping[str, Any], token: str) -> bool:
    """Whether the resource publishes to any stream ``spec`` does (spelling-insensitive): its
    rtmpUrl/rtmpStream, kept in its Secret (compared by digest under ``token``) or not, or one
    of its destinations; ``spec`` may be one destination."""
    if set(stream_keys(resource.get("spec") or {})) & set(stream_keys(spec)):
        return True
    digest = _stream_digest_of(resource)
    return digest is not None and digest in {stream_digest(token, d) for d in destinations_of(spec)}


def _stream_digest_of(resource: Mapping[str, Any]) -> str | None:
    annotations = (resource.get("metadata") or {}).get("annotations") or {}
    digest = annotations.get(STREAM_DIGEST_ANNOTATION)
    return digest if isinstance(digest, str) else None


def destination_named(
    resource: Mapping[str, Any], ref_name: str | None, ref: Mapping[str, Any] | None
) -> int | None:
    """The index in ``spec.destinations`` of the destination called ``ref_name``, or (``ref``)
    publishing to the same stream (spelling-insensitive); None when none is."""
    listed = destinations_of(resource.get("spec") or {})[1:]
    key = stream_key(ref) if ref is not None else None
    for index, destination in enumerate(listed):
        if ref_name is not None and destination.get("name") == ref_name:
            return index
        if key is not None and stream_key(destination) == key:
            return index
    return None


def push_views(resource: Mapping[str, Any]) -> list[JSON]:
    """A call's destinations as push objects: rtmpUrl/rtmpStream first (``primary``), then
    ``spec.destinations`` in order, each with what ``status.destinations`` reports of it.

    Never a stream key: the URL loses its credentials, the key shows as ``***``. The bridge
    reports a destination under its name (``destinations[].name``), the first one as id 0;
    an unnamed one is matched by its redacted URL, in order. A destination the bridge has not
    reported yet (just added, or left out by the operator: its Warning event says why) is
    PENDING with nothing sent.
    """
    spec = resource.get("spec") or {}
    status = read_status(resource.get("status"))
    reported = list(status.destinations)
    call_id = call_id_of(resource)

    def take(match: Any) -> Mapping[str, Any]:
        for block in reported:
            if match(block):
                reported.remove(block)
                return block
        return {}

    views = []
    for index, destination in enumerate(destinations_of(spec)):
        url = str(destination.get("rtmpUrl") or "")
        shown = redacted_publish_url(url)
        name = destination.get("name") if index else None
        if index == 0:
            block = take(lambda b: b.get("id") == 0)
        elif name:
            block = take(lambda b, n=name: b.get("name") == n and b.get("id") != 0)
        else:
            block = take(
                lambda b, u=shown: not b.get("name") and b.get("url") == u and b.get("id") != 0
            )
        views.append(
            {
                "callId": call_id,
                "name": name,
                "primary": index == 0,
                "rtmpUrl": redact_url(url),
                "url": shown,
                "profile": destination.get("profile") or DEFAULT_PROFILE,
                "state": block.get("state") or StreamState.PENDING.value,
                "bytesSent": block.get("bytesSent", 0),
                "reconnects": block.get("reconnects", 0),
                "failure": block.get("failure"),
            }
        )
    return views


def call_view(resource: Mapping[str, Any]) -> JSON:
    """The seed's call object: its field names, its call and stream status names.

    A resource the operator has not reconciled yet is NEW / PENDING, as the seed's server reported
    a call it had just accepted. The RTMP URL loses any credentials; the stream name stays (it is
    what players need), as in the seed's answers.
    """
    spec = resource.get("spec") or {}
    status = read_status(resource.get("status"))
    meta = resource.get("metadata") or {}
    call = status.call or {}
    stream = status.stream or {}
    connection = spec.get("connection") or {}
    return {
        "callId": call_id_of(resource),
        "callee": spec.get("callee"),
        "rtmpUrl": redact_url(str(spec.get("rtmpUrl") or "")),
        "rtmpStream": HIDDEN_KEY if spec.get("rtmpStreamSecretRef") else spec.get("rtmpStream"),
        "hasAudio": spec.get("hasAudio", True),
        "hasVideo": spec.get("hasVideo", False),
        "status": status.call_state or CallState.NEW.value,
        "streamStatus": status.stream_state or StreamState.PENDING.value,
        "phase": (status.phase or Phase.PENDING).value,
        "reason": status.reason,
        "message": status.message,
        "sipStatusCode": call.get("sipStatusCode"),
        "sipLogin": connection.get("sipLogin"),
        "sipDomain": connection.get("sipDomain"),
        "bytesSent": stream.get("bytesSent", 0),
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "createdAt": meta.get("creationTimestamp"),
        "terminating": bool(meta.get("deletionTimestamp")),
    }


def matches(
    resource: Mapping[str, Any], view: Mapping[str, Any], filters: Mapping[str, str], token: str
) -> bool:
    """Whether the call object ``view`` of ``resource`` has every field ``filters`` asks for;
    an ``rtmpStream`` shown as ``***`` is compared by its digest."""
    hidden = view.get("rtmpStream") == HIDDEN_KEY and "rtmpStream" in filters
    if hidden:
        url = (resource.get("spec") or {}).get("rtmpUrl")
        asked = {"rtmpUrl": url, "rtmpStream": filters["rtmpStream"]}
        if _stream_digest_of(resource) != stream_digest(token, asked):
            return False
    return all(
        str(view.get(name)) == value
        for name, value in filters.items()
        if not (hidden and name == "rtmpStream")
    )
