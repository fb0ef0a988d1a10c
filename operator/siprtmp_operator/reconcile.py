"""The pure decision of one reconcile step: observed world → new status and what to do.

The kopf handlers gather the inputs (the resource, its current pod, the bridge's live status,
a possible duplicate) and carry out the returned Plan; every branch of the state machine lives
here, where tests exercise it without a cluster.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from siprtmp_contract.outcome import Reason

from .names import pod_name
from .policy import call_refusal, decide_retry, ttl_remaining
from .settings import Settings
from .status import TERMINAL_PHASES, PodObservation, derive_status, with_conditions
from .timeutil import fmt, parse

JSON = dict[str, Any]


@dataclass(frozen=True)
class Plan:
    """Outcome of one step. ``status`` is the full desired status (written when it changed)."""

    status: JSON
    create_pod: int | None = None
    delete_resource: bool = False
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, reason, message)


def _finish(status: JSON, now: datetime) -> None:
    status.setdefault("finishedAt", fmt(now))
    status.pop("nextRetryAt", None)


def _dtmf_events(prev: Mapping[str, Any], new: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """An Event when the bridge counts keys the far end pressed (a participant on the
    conference, an IVR): who watches the resource sees them without polling its status."""
    call = new.get("call") or {}
    received = call.get("dtmfReceived") or 0
    if received == ((prev.get("call") or {}).get("dtmfReceived") or 0) or not received:
        return []
    last = call.get("dtmfLastDigits") or ""
    return [
        ("Normal", "DtmfReceived", f"{received} DTMF keys received from the far end, last {last}")
    ]


def plan_step(
    resource: Mapping[str, Any],
    pod: PodObservation | None,
    live: Mapping[str, Any] | None,
    now: datetime,
    settings: Settings,
    *,
    duplicate_of: str | None = None,
) -> Plan:
    """Decide the next status and action for one bridge.

    ``pod`` is the observation of the current attempt's pod, or None when that pod does not
    exist (never created, or gone). ``duplicate_of`` names the live bridge that already
    publishes the same stream (policy.holder_shown), checked only before the first dial. The
    message names neither the URL nor the key: it goes into status, an Event and REST answers.
    """
    meta = resource.get("metadata") or {}
    spec = resource.get("spec") or {}
    generation = int(meta.get("generation") or 1)
    name = str(meta["name"])
    prev: JSON = copy.deepcopy(dict(resource.get("status") or {}))
    status: JSON = copy.deepcopy(prev)
    status.setdefault("attempt", 0)
    status.setdefault("retries", 0)
    attempt = int(status["attempt"])
    current_pod = pod_name(name, attempt)
    events: list[tuple[str, str, str]] = []

    def done(**kw: Any) -> Plan:
        if pod is not None and pod.phase == "Running" and not status.get("podRunningAt"):
            status["podRunningAt"] = fmt(now)
        if status.get("phase") == "Streaming" and not status.get("streamingAt"):
            status["streamingAt"] = fmt(now)
        full = with_conditions(status, generation, now)
        if full.get("phase") != prev.get("phase"):
            kind = "Warning" if full.get("phase") == "Failed" else "Normal"
            transition = f"{prev.get('phase') or 'New'} → {full.get('phase')}"
            reason = str(full.get("reason") or full.get("phase"))
            events.append((kind, reason, f"{transition}: {full.get('message', '')}"))
        events.extend(_dtmf_events(prev, full))
        return Plan(status=full, events=events, **kw)

    if prev.get("phase") in TERMINAL_PHASES:
        remaining = ttl_remaining(spec, prev, settings, now)
        return done(delete_resource=remaining is not None and remaining <= 0)

    placed = status.get("podName") == current_pod
    if not placed:
        # Checked before every pod, redials included: the settings may have changed.
        refusal = call_refusal(spec, settings)
        if refusal is not None:
            status.update(
                phase="Failed",
                reason=refusal.reason,
                message=f"spec.{refusal.field}: {refusal.message}; no pod was created",
            )
            _finish(status, now)
            return done()
        if attempt == 0 and duplicate_of:
            status.update(
                phase="Failed",
                reason=Reason.DUPLICATE_STREAM,
                message=(
                    f"the stream is already published by {duplicate_of}; "
                    "delete one of them (no pod was created)"
                ),
            )
            _finish(status, now)
            return done()
        due = parse(status.get("nextRetryAt"))
        if due is not None and now < due:
            return done()
        status.update(
            phase="Pending",
            reason=Reason.POD_CREATING if attempt == 0 else Reason.REDIALING,
            message=f"creating bridge pod {current_pod}",
            podName=current_pod,
        )
        status.pop("nextRetryAt", None)
        status.setdefault("startedAt", fmt(now))
        return done(create_pod=attempt)

    if pod is None:
        # Our pod vanished (deleted by someone, evicted and garbage-collected): a failure.
        failed = copy.deepcopy(status)
        failed.update(
            phase="Failed",
            reason=Reason.POD_DELETED,
            message=f"bridge pod {current_pod} disappeared",
        )
    else:
        failed = derive_status(status, pod, live, str(spec.get("rtmpUrl", "")), now)
        if failed.get("phase") != "Failed":
            status = failed
            if status.get("phase") == "Succeeded":
                _finish(status, now)
            return done()

    reason = str(failed.get("reason") or Reason.POD_FAILED)
    decision = decide_retry(spec, reason, int(status.get("retries", 0)), settings)
    if not decision.retry:
        status = failed
        status["message"] = f"{failed.get('message', reason)} ({decision.why})"[:1024]
        _finish(status, now)
        return done()
    due_at = now + timedelta(seconds=decision.delay_seconds)
    status = failed
    status.pop("finishedAt", None)
    status.update(
        phase="Pending",
        reason=Reason.RETRY_BACKOFF,
        message=(
            f"attempt {attempt} failed ({reason}: {failed.get('message', '')}); "
            f"redialing in {decision.delay_seconds:g}s"
        )[:1024],
        attempt=attempt + 1,
        retries=int(status.get("retries", 0)) + 1,
        nextRetryAt=fmt(due_at),
        lastFailure={"reason": reason, "exitCode": failed.get("exitCode"), "pod": current_pod},
    )
    events.append(("Warning", "CallFailed", f"attempt {attempt} failed: {reason}; will redial"))
    return done()
