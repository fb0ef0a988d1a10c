"""The operator's pure decisions: observed world → new status and what to do.

The kopf handlers (``handlers``) read the world (the resource, its current pod, the bridge's live
status, a possible duplicate; the slots and nodes a new pod's placement needs; the pods of a
deleted bridge), call these functions and carry out what they return. Every branch of the state
machine lives here, where tests exercise it without a cluster:

- ``plan_step``: one reconcile step (create a pod, redial, finish, delete after the TTL);
- ``place``: the networking of the pod a step creates, or ``NoPlacement``;
- ``plan_stop``: what deleting a bridge does (stop its pods, ``Terminating``, release).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from siprtmp_contract.outcome import Reason
from siprtmp_contract.states import Phase

from .names import pod_name
from .networking import NetworkPlan, PlacementWorld, plan_network
from .policy import (
    RetryDecision,
    SecretProblem,
    call_refusal,
    decide_retry,
    pod_start_timeout,
    rtmp_urls,
    start_heals,
    ttl_remaining,
)
from .settings import Settings
from .status import TERMINAL_PHASES, PodObservation, derive_status, with_conditions
from .statusmodel import BridgeStatus, LastFailure, Networking, read_status, render_status
from .timeutil import fmt, parse

Event = tuple[str, str, str]  # (type, reason, message)


@dataclass(frozen=True)
class Plan:
    """Outcome of one step. ``status`` is the full desired status (written when it changed)."""

    status: BridgeStatus
    create_pod: int | None = None
    #: How the pod ``create_pod`` asks for is networked (``place`` sets it).
    network: NetworkPlan | None = None
    #: A pod to delete at once (grace 0): lost with its node, or never started. A pod on an
    #: unreachable node is never confirmed gone otherwise.
    force_delete_pod: str | None = None
    delete_resource: bool = False
    events: list[Event] = field(default_factory=list)


def _finished(status: BridgeStatus, now: datetime) -> BridgeStatus:
    return replace(status, finished_at=status.finished_at or fmt(now), next_retry_at=None)


def _transition_events(prev: BridgeStatus, new: BridgeStatus) -> list[Event]:
    if new.phase == prev.phase:
        return []
    kind = "Warning" if new.phase == Phase.FAILED else "Normal"
    transition = f"{prev.phase or 'New'} → {new.phase}"
    return [(kind, str(new.reason or new.phase), f"{transition}: {new.message or ''}")]


def _dtmf_events(prev: BridgeStatus, new: BridgeStatus) -> list[Event]:
    """An Event when the bridge counts keys the far end pressed (a participant on the
    conference, an IVR): who watches the resource sees them without polling its status."""
    call = new.call or {}
    received = call.get("dtmfReceived") or 0
    if received == ((prev.call or {}).get("dtmfReceived") or 0) or not received:
        return []
    last = call.get("dtmfLastDigits") or ""
    return [
        ("Normal", "DtmfReceived", f"{received} DTMF keys received from the far end, last {last}")
    ]


def awaits_pod(status: BridgeStatus, name: str) -> bool:
    """Whether bridge ``name``'s current attempt has no pod yet: the next step may create one,
    so what is checked before each pod (the Secrets it mounts) is read for it."""
    return status.phase not in TERMINAL_PHASES and status.pod_name != pod_name(name, status.attempt)


def plan_step(
    resource: Mapping[str, Any],
    pod: PodObservation | None,
    live: Mapping[str, Any] | None,
    now: datetime,
    settings: Settings,
    *,
    duplicate_of: str | None = None,
    secret: SecretProblem | None = None,
) -> Plan:
    """Decide the next status and action for one bridge.

    ``pod`` is the observation of the current attempt's pod, or None when that pod does not
    exist (never created, or gone). ``duplicate_of`` names the live bridge that already
    publishes the same stream (policy.holder_shown), checked only before the first dial. The
    message names neither the URL nor the key: it goes into status, an Event and REST answers.
    ``secret`` is what is wrong with a Secret the pod would mount (read while ``awaits_pod``):
    one that does not opt in fails the call; one that does not exist yet is waited for (the
    REST API creates its call's Secret after the call) until podStartTimeoutSeconds.
    A plan that creates a pod goes through ``place`` before it is carried out.
    """
    meta = resource.get("metadata") or {}
    spec = resource.get("spec") or {}
    generation = int(meta.get("generation") or 1)
    prev = read_status(resource.get("status"))
    attempt = prev.attempt
    current_pod = pod_name(str(meta["name"]), attempt)

    def done(status: BridgeStatus, *, events: Sequence[Event] = (), **actions: Any) -> Plan:
        if pod is not None and pod.phase == "Running" and not status.pod_running_at:
            status = replace(status, pod_running_at=fmt(now))
        if status.phase == Phase.STREAMING and not status.streaming_at:
            status = replace(status, streaming_at=fmt(now))
        full = with_conditions(status, generation, now)
        timeline = [*events, *_transition_events(prev, full), *_dtmf_events(prev, full)]
        return Plan(status=full, events=timeline, **actions)

    if prev.phase in TERMINAL_PHASES:
        remaining = ttl_remaining(spec, render_status(prev), settings, now)
        return done(prev, delete_resource=remaining is not None and remaining <= 0)

    if awaits_pod(prev, str(meta["name"])):
        # Checked before every pod, redials included: the settings may have changed.
        refusal = call_refusal(spec, settings)
        if refusal is not None:
            message = f"spec.{refusal.field}: {refusal.message}; no pod was created"
            failed = replace(prev, phase=Phase.FAILED, reason=refusal.reason, message=message)
            return done(_finished(failed, now))
        if secret is not None and not secret.missing:
            message = f"{secret.message}; no pod was created"
            failed = replace(
                prev, phase=Phase.FAILED, reason=Reason.SECRET_NOT_USABLE, message=message
            )
            return done(_finished(failed, now))
        if attempt == 0 and duplicate_of:
            message = (
                f"the stream is already published by {duplicate_of}; "
                "delete one of them (no pod was created)"
            )
            failed = replace(
                prev, phase=Phase.FAILED, reason=Reason.DUPLICATE_STREAM, message=message
            )
            return done(_finished(failed, now))
        due = parse(prev.next_retry_at)
        if due is not None and now < due:
            return done(prev)
        # Waiting since an earlier step (no port window, creation refused): the clock runs on.
        waiting = replace(prev, pending_since=prev.pending_since or fmt(now))
        if secret is not None:  # missing: waited for, as a pod waits for its mounts
            waiting = replace(
                waiting,
                phase=Phase.PENDING,
                reason=Reason.SECRET_NOT_USABLE,
                message=f"{secret.message} (yet): waiting for it, no pod was created",
            )
        timed_out = _start_deadline(waiting, spec, current_pod, now, settings)
        if timed_out is None and secret is not None:
            return done(waiting)
        if timed_out is None:
            creating = replace(
                waiting,
                phase=Phase.PENDING,
                reason=Reason.POD_CREATING if attempt == 0 else Reason.REDIALING,
                message=f"creating bridge pod {current_pod}",
                pod_name=current_pod,
                next_retry_at=None,
                started_at=prev.started_at or fmt(now),
            )
            return done(creating, create_pod=attempt)
        failed, cause, kill = timed_out, str(waiting.reason), None
    elif pod is None:
        # Our pod vanished (deleted by someone, evicted and garbage-collected): a failure.
        failed = replace(
            prev,
            phase=Phase.FAILED,
            reason=Reason.POD_DELETED,
            message=f"bridge pod {current_pod} disappeared",
        )
        cause, kill = str(failed.reason), None
    else:
        derived = derive_status(prev, pod, live, rtmp_urls(spec), now)
        cause = str(derived.reason)
        failed = _deadlines(derived, pod, live, spec, current_pod, now, settings)
        if failed.phase == Phase.SUCCEEDED:
            return done(_finished(failed, now))
        if failed.phase != Phase.FAILED:
            return done(failed)
        # The deadlines' failures leave a pod behind that will not end by itself.
        kill = current_pod if failed is not derived else None

    reason = failed.reason or Reason.POD_FAILED
    decision = decide_retry(spec, reason, prev.retries, settings)
    if reason == Reason.POD_START_TIMEOUT and not start_heals(cause):
        decision = RetryDecision(False, why=f"{cause} does not heal by redialling")
    told = failed.message if failed.message is not None else reason
    if not decision.retry:
        final = replace(failed, message=f"{told} ({decision.why})"[:1024])
        return done(_finished(final, now), force_delete_pod=kill)
    due_at = now + timedelta(seconds=decision.delay_seconds)
    redial = replace(
        failed,
        finished_at=None,
        pending_since=None,
        unreachable_since=None,
        phase=Phase.PENDING,
        reason=Reason.RETRY_BACKOFF,
        message=(
            f"attempt {attempt} failed ({reason}: {failed.message or ''}); "
            f"redialing in {decision.delay_seconds:g}s"
        )[:1024],
        attempt=attempt + 1,
        retries=prev.retries + 1,
        next_retry_at=fmt(due_at),
        last_failure=LastFailure(reason=reason, exit_code=failed.exit_code, pod=current_pod),
    )
    failure = ("Warning", "CallFailed", f"attempt {attempt} failed: {reason}; will redial")
    return done(redial, events=[failure], force_delete_pod=kill)


def _seconds_since(stamp: str | None, now: datetime) -> float:
    since = parse(stamp)
    return 0.0 if since is None else (now - since).total_seconds()


def _start_deadline(
    waiting: BridgeStatus,
    spec: Mapping[str, Any],
    current_pod: str,
    now: datetime,
    settings: Settings,
) -> BridgeStatus | None:
    """``waiting`` Failed with PodStartTimeout once its attempt has waited for its pod longer
    than podStartTimeoutSeconds (its reason and message say what it waited for); else None."""
    limit = pod_start_timeout(spec, settings)
    if _seconds_since(waiting.pending_since, now) < limit:
        return None
    why = f"{waiting.reason or Reason.POD_PENDING}: {waiting.message or ''}".rstrip(": ")
    return replace(
        waiting,
        phase=Phase.FAILED,
        reason=Reason.POD_START_TIMEOUT,
        message=f"bridge pod {current_pod} did not start within {limit}s ({why})"[:1024],
    )


def _deadlines(
    status: BridgeStatus,
    pod: PodObservation,
    live: Mapping[str, Any] | None,
    spec: Mapping[str, Any],
    current_pod: str,
    now: datetime,
    settings: Settings,
) -> BridgeStatus:
    """``status`` (derived from a pod still there) with the operator's deadlines applied: a pod
    not started in time (PodStartTimeout), a running bridge whose /status stopped answering
    (BridgeUnreachable, then BridgeLost), a pod still there long after its grace period ended
    (BridgeLost: its node no longer confirms anything). The same object when none applies."""
    if status.phase in TERMINAL_PHASES:
        return status
    if pod.deleting:
        overdue = _seconds_since(pod.deletion_at, now)
        if pod.deletion_at is None or overdue < settings.bridge_lost_seconds:
            return status
        return replace(
            status,
            phase=Phase.FAILED,
            reason=Reason.BRIDGE_LOST,
            message=f"bridge pod {current_pod} still there {overdue:.0f}s after its grace "
            "period ended (its node is not reporting): force-deleted",
        )
    if pod.phase != "Running":
        waiting = replace(status, pending_since=status.pending_since or fmt(now))
        return _start_deadline(waiting, spec, current_pod, now, settings) or waiting
    status = replace(status, pending_since=None)
    if live is not None:
        if status.reason == Reason.BRIDGE_UNREACHABLE:  # the bridge's document said no reason
            status = replace(status, reason=None, message=None)
        return replace(status, unreachable_since=None)
    status = replace(status, unreachable_since=status.unreachable_since or fmt(now))
    silent = _seconds_since(status.unreachable_since, now)
    if silent >= settings.bridge_lost_seconds:
        return replace(
            status,
            phase=Phase.FAILED,
            reason=Reason.BRIDGE_LOST,
            message=f"bridge /status unanswered for {silent:.0f}s: pod {current_pod} force-deleted",
        )
    if silent >= settings.bridge_unreachable_seconds:
        return replace(
            status,
            reason=Reason.BRIDGE_UNREACHABLE,
            message=f"bridge /status unanswered for {silent:.0f}s",
        )
    return status


#: Why a pod that advertises its node's ExternalIP cannot be placed (status.message).
NO_NODE_MESSAGE = "no Ready node has an ExternalIP address"


def place(
    plan: Plan,
    prev: BridgeStatus,
    spec: Mapping[str, Any],
    uid: str,
    settings: Settings,
    world: PlacementWorld,
) -> Plan:
    """``plan`` with the pod it creates placed: its networking in the status; or, when it
    cannot be placed yet, no pod and ``prev`` marked Pending/NoPlacement (no Event: the next
    step tries again)."""
    if plan.create_pod is None:
        return plan
    slot = prev.networking.port_slot if prev.networking else None
    net = plan_network(spec, slot, uid, settings, world)
    if net is None:
        return not_created(plan, prev, Reason.NO_PLACEMENT, NO_NODE_MESSAGE)
    return replace(plan, network=net, status=replace(plan.status, networking=Networking.of(net)))


def not_created(plan: Plan, prev: BridgeStatus, reason: Reason, message: str) -> Plan:
    """``plan``'s pod not created after all (no room for it, or the API server refused it):
    ``prev`` marked Pending with ``reason``, no Event; the next step tries again, the attempt's
    podStartTimeoutSeconds running on."""
    waiting = replace(
        prev,
        phase=Phase.PENDING,
        reason=reason,
        message=message[:1024],
        pending_since=plan.status.pending_since,
    )
    return Plan(status=waiting)


@dataclass(frozen=True)
class StopPlan:
    """What one run of the delete handler does."""

    #: Pods to delete (gracefully: SIGTERM, the bridge sends BYE); those already going are left.
    delete_pods: tuple[str, ...]
    #: Pods still running: the resource keeps its finalizer until they are gone.
    wait_for: tuple[str, ...] = ()
    #: The status to write while waiting (Terminating), None when it stays as it is.
    status: BridgeStatus | None = None
    #: Pods still stop after terminatingTimeoutSeconds: the resource is let go regardless.
    gave_up: bool = False
    #: Those pods, deleted at once (grace 0): on a node that stopped reporting, nothing else
    #: ever removes them.
    force_delete: tuple[str, ...] = ()


def plan_stop(
    status: BridgeStatus,
    pods: Sequence[Mapping[str, Any]],
    waited_seconds: float,
    settings: Settings,
) -> StopPlan:
    """Deleting a bridge: stop its ``pods`` and hold the resource until they stop, at most
    ``settings.terminating_timeout_seconds`` (``waited_seconds`` since the deletion began)."""
    delete = tuple(
        p["metadata"]["name"] for p in pods if not p["metadata"].get("deletionTimestamp")
    )
    running = tuple(
        p["metadata"]["name"]
        for p in pods
        if (p.get("status") or {}).get("phase") not in {"Succeeded", "Failed"}
    )
    if not running:
        return StopPlan(delete_pods=delete)
    if waited_seconds >= settings.terminating_timeout_seconds:
        return StopPlan(delete_pods=delete, gave_up=True, force_delete=running)
    terminating = None
    if status.phase not in TERMINAL_PHASES and status.phase != Phase.TERMINATING:
        terminating = replace(
            status,
            phase=Phase.TERMINATING,
            reason=Reason.DELETING,
            message="bridge deleted: hanging up the call and flushing the stream",
        )
    return StopPlan(delete_pods=delete, wait_for=running, status=terminating)
