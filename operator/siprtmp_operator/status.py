"""Pure builders: what the pod and the bridge say → the resource's status and conditions.

Inputs are the pod object (phase, IP, container state, termination message) and the bridge's
live ``/status`` document; the output is the resource's status (``statusmodel.BridgeStatus``) as
docs/operator.md's "Status" describes it. Nothing here talks to the cluster, so every mapping is
unit-tested.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, cast

from siprtmp_contract.outcome import Reason
from siprtmp_contract.pod import CONTROL_TOKEN_ENV, STREAM_KEYS_DIR
from siprtmp_contract.redact import MASK, redacted_publish_url
from siprtmp_contract.states import ANSWERED_CALL_STATES, CallState, Phase, StreamState

from .statusmodel import (
    BridgeStatus,
    CallBlock,
    Condition,
    DestinationBlock,
    StreamBlock,
    VideoBlock,
)
from .timeutil import fmt

JSON = dict[str, Any]

# The bridge's own status model is the single source of these names (its module is pure).
PHASES = tuple(phase.value for phase in Phase)
TERMINAL_PHASES = frozenset({Phase.SUCCEEDED.value, Phase.FAILED.value})
LIVE_PHASES = frozenset(
    {
        Phase.CONNECTING.value,
        Phase.STREAMING.value,
        Phase.RECONNECTING.value,
        Phase.TERMINATING.value,
    }
)
CALL_STATES = frozenset(state.value for state in CallState)
STREAM_STATES = frozenset(state.value for state in StreamState)
ESTABLISHED_CALL_STATES = frozenset(state.value for state in ANSWERED_CALL_STATES)


@dataclass(frozen=True)
class PodObservation:
    """The few facts about a bridge pod that status depends on."""

    phase: str
    pod_ip: str | None = None
    status_port: int | None = None
    deleting: bool = False
    #: The pod's deletionTimestamp: when its grace period ends.
    deletion_at: str | None = None
    waiting_reason: str | None = None
    waiting_message: str | None = None
    exit_code: int | None = None
    terminated_reason: str | None = None
    termination_message: str | None = None
    pod_reason: str | None = None
    pod_message: str | None = None
    #: What the bridge asks of a POST /dtmf (dtmf.CONTROL_TOKEN_ENV in the container's env).
    control_token: str | None = field(default=None, repr=False)
    #: The Secrets mounted for destinations' keys (each at ``STREAM_KEYS_DIR/<its name>``): a
    #: destination added to the live call may name only these.
    key_secrets: frozenset[str] = frozenset()


def observe_pod(pod: Mapping[str, Any], container: str = "bridge") -> PodObservation:
    """Reduce a Pod object (dict as the API returns it) to a PodObservation."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    st = pod.get("status") or {}
    port: int | None = None
    token: str | None = None
    key_secrets: frozenset[str] = frozenset()
    for c in spec.get("containers") or []:
        if c.get("name") == container:
            for p in c.get("ports") or []:
                if p.get("name") == "status":
                    port = int(p["containerPort"])
            for e in c.get("env") or []:
                if e.get("name") == CONTROL_TOKEN_ENV:
                    token = e.get("value")
            key_secrets = frozenset(
                str(m["mountPath"]).removeprefix(f"{STREAM_KEYS_DIR}/")
                for m in c.get("volumeMounts") or []
                if str(m.get("mountPath") or "").startswith(f"{STREAM_KEYS_DIR}/")
            )
    waiting_reason = waiting_message = terminated_reason = termination_message = None
    exit_code: int | None = None
    for cs in st.get("containerStatuses") or []:
        if cs.get("name") != container:
            continue
        state = cs.get("state") or {}
        if state.get("waiting"):
            waiting_reason = state["waiting"].get("reason")
            waiting_message = state["waiting"].get("message")
        if state.get("terminated"):
            term = state["terminated"]
            exit_code = term.get("exitCode")
            terminated_reason = term.get("reason")
            termination_message = term.get("message")
    return PodObservation(
        phase=str(st.get("phase") or "Pending"),
        pod_ip=st.get("podIP"),
        status_port=port,
        control_token=token,
        key_secrets=key_secrets,
        deleting=bool(meta.get("deletionTimestamp")),
        deletion_at=meta.get("deletionTimestamp"),
        waiting_reason=waiting_reason,
        waiting_message=waiting_message,
        exit_code=exit_code,
        terminated_reason=terminated_reason,
        termination_message=termination_message,
        pod_reason=st.get("reason"),
        pod_message=st.get("message"),
    )


def parse_status_document(text: str | None) -> JSON | None:
    """The bridge's status document from a termination message or a log tail.

    The bridge writes its final document to the termination log; with
    FallbackToLogsOnError the message may instead be the log tail, whose JSON status lines are
    one per change, so the last parseable one wins.
    """
    if not text:
        return None
    for raw in reversed(text.strip().splitlines()):
        line = raw.strip()
        if not line.startswith("{"):
            continue
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict) and "phase" in doc:
            return doc
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) and "phase" in doc else None


def _clean_call(doc: Any) -> CallBlock | None:
    if not isinstance(doc, Mapping):
        return None
    call = {k: v for k, v in doc.items() if v is not None}
    if call.get("state") not in CALL_STATES:
        call.pop("state", None)
    return cast(CallBlock, call)


def _clean_stream(doc: Any, rtmp_url: str) -> StreamBlock | None:
    if not isinstance(doc, Mapping):
        return None
    stream = {k: v for k, v in doc.items() if v is not None}
    if stream.get("state") not in STREAM_STATES:
        stream.pop("state", None)
    stream["url"] = redacted_publish_url(rtmp_url)  # never trust a key to be redacted upstream
    return cast(StreamBlock, stream)


def _clean_destinations(doc: Any, rtmp_urls: tuple[str, ...]) -> tuple[DestinationBlock, ...]:
    """Each destination as the bridge reports it; a URL shown only if it is the redacted form
    of one the spec names (never trust a key to be redacted upstream), else masked whole."""
    if not isinstance(doc, list):
        return ()
    shown = {redacted_publish_url(url) for url in rtmp_urls}
    found = []
    for item in doc:
        if not isinstance(item, Mapping):
            continue
        destination = {k: v for k, v in item.items() if v is not None}
        if destination.get("state") not in STREAM_STATES:
            destination.pop("state", None)
        if destination.get("url") not in shown:
            destination["url"] = MASK
        found.append(cast(DestinationBlock, destination))
    return tuple(found)


def _apply_document(
    status: BridgeStatus, doc: Mapping[str, Any], rtmp_urls: tuple[str, ...]
) -> BridgeStatus:
    """``status`` with what a bridge document says (its blocks replace the old ones whole);
    ``rtmp_urls``: the spec's, ``rtmpUrl`` first."""
    changes: dict[str, Any] = {}
    call = _clean_call(doc.get("call"))
    stream = _clean_stream(doc.get("stream"), rtmp_urls[0])
    if "destinations" in doc:
        changes["destinations"] = _clean_destinations(doc["destinations"], rtmp_urls)
    if call is not None:
        changes["call"] = call
    if stream is not None:
        changes["stream"] = stream
    video = doc.get("video")
    if isinstance(video, Mapping):  # only with spec.video: what video was negotiated, flowing
        changes["video"] = cast(VideoBlock, {k: v for k, v in video.items() if v is not None})
    if doc.get("reason"):
        changes["reason"] = str(doc["reason"])
    if doc.get("message"):
        changes["message"] = str(doc["message"])[:1024]
    return replace(status, **changes)


def _terminal_reason(obs: PodObservation, code: int | None) -> str:
    """A failed pod's reason when its bridge said none: OOM, the exit code's, the pod's."""
    if obs.terminated_reason == Reason.OOM_KILLED:
        return obs.terminated_reason
    return (
        Reason.for_exit_code(code if code is not None else -1)
        or obs.pod_reason
        or Reason.POD_FAILED
    )


def derive_status(
    prev: BridgeStatus,
    obs: PodObservation,
    live: Mapping[str, Any] | None,
    rtmp_urls: tuple[str, ...],
    now: datetime,
) -> BridgeStatus:
    """The status an observed pod (and its live document, if reachable) stands for.

    Keeps the operator's bookkeeping fields of ``prev`` (attempt, retries, podName, networking,
    timestamps). A terminal pod yields Succeeded/Failed here; whether a failure is final is the
    retry policy's decision (``policy``).
    """
    status = replace(prev, exit_code=None, next_retry_at=None)

    if obs.phase in {"Succeeded", "Failed"}:
        doc = parse_status_document(obs.termination_message)
        if doc is not None:
            status = _apply_document(status, doc, rtmp_urls)
        code = obs.exit_code
        if code is None and doc is not None and isinstance(doc.get("exitCode"), int):
            code = doc["exitCode"]
        status = replace(status, exit_code=code, finished_at=status.finished_at or fmt(now))
        if obs.phase == "Succeeded":
            status = replace(status, phase=Phase.SUCCEEDED)
            if doc is None or not doc.get("reason"):
                status = replace(status, reason=Reason.COMPLETED, message="bridge exited 0")
            return status
        status = replace(status, phase=Phase.FAILED)
        if doc is None or not doc.get("reason") or doc.get("phase") != "Failed":
            message = obs.pod_message or obs.termination_message or f"bridge exited {code}"
            status = replace(status, reason=_terminal_reason(obs, code), message=message[:1024])
        return status

    if obs.deleting:
        status = replace(
            status,
            reason=Reason.STOPPING,
            message="bridge pod is stopping: hanging up and flushing the stream",
        )
        if live is not None:
            status = _apply_document(status, live, rtmp_urls)
        return replace(status, phase=Phase.TERMINATING)

    if obs.phase == "Running":
        if live is not None and live.get("phase") in PHASES:
            status = _apply_document(status, live, rtmp_urls)
            phase = Phase(live["phase"])
            # The pod is still up: a final phase becomes final only when the process exits.
            return replace(status, phase=Phase.TERMINATING if phase in TERMINAL_PHASES else phase)
        if prev.phase in LIVE_PHASES:
            return status
        return replace(
            status,
            phase=Phase.CONNECTING,
            reason=Reason.BRIDGE_STARTING,
            message="bridge running, live status not reachable yet",
        )

    message = obs.waiting_message or obs.pod_message or "waiting for the bridge pod to start"
    return replace(
        status,
        phase=Phase.PENDING,
        reason=obs.waiting_reason or obs.pod_reason or Reason.POD_PENDING,
        message=message[:1024],
    )


def _condition(
    prev: Mapping[str, Condition],
    *,
    type_: str,
    ok: bool | None,
    reason: str,
    message: str,
    generation: int,
    now: datetime,
) -> Condition:
    value = "Unknown" if ok is None else "True" if ok else "False"
    old = prev.get(type_)
    since = old.last_transition_time if old and old.status == value else None
    return Condition(
        type=type_,
        status=value,
        reason=reason,
        message=message[:1024],
        last_transition_time=since or fmt(now),
        observed_generation=generation,
    )


def _camel(word: str) -> str:
    return "".join(p.capitalize() for p in word.lower().split("_")) or "Unknown"


def with_conditions(status: BridgeStatus, generation: int, now: datetime) -> BridgeStatus:
    """``status`` plus observedGeneration and the CallEstablished/Streaming/Ready conditions.

    A condition's lastTransitionTime changes only when its status flips.
    """
    prev = {c.type: c for c in status.conditions}
    phase = status.phase or Phase.PENDING
    reason = status.reason or phase.value
    message = status.message or ""
    live = phase not in TERMINAL_PHASES
    call_state, stream_state = status.call_state, status.stream_state
    call_ok = live and call_state in ESTABLISHED_CALL_STATES
    stream_ok = live and stream_state == "PUBLISHING"
    ready = call_ok and stream_ok and phase == Phase.STREAMING
    # Unreachable: what the bridge last said may no longer be true; None shows Unknown.
    unseen = status.reason == Reason.BRIDGE_UNREACHABLE
    ready = ready and not unseen
    conditions = (
        _condition(
            prev,
            type_="CallEstablished",
            ok=None if unseen else call_ok,
            reason=reason
            if unseen
            else "Established"
            if call_ok
            else (_camel(call_state) if live and call_state else reason),
            message=f"call {call_state}" if call_state and not unseen else message,
            generation=generation,
            now=now,
        ),
        _condition(
            prev,
            type_="Streaming",
            ok=None if unseen else stream_ok,
            reason=reason
            if unseen
            else "Publishing"
            if stream_ok
            else (_camel(stream_state) if live and stream_state else reason),
            message=f"stream {stream_state}" if stream_state and not unseen else message,
            generation=generation,
            now=now,
        ),
        _condition(
            prev,
            type_="Ready",
            ok=ready,
            reason="Streaming" if ready else reason,
            message="call established and stream publishing" if ready else message,
            generation=generation,
            now=now,
        ),
    )
    return replace(status, conditions=conditions, observed_generation=generation)
