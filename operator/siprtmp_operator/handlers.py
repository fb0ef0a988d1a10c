"""kopf wiring: gather inputs, call the pure builders, carry out their plan. No decisions here.

``build_registry`` returns a fresh kopf registry so the CLI and the tests each get their own
handlers bound to their own Settings.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import secrets
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

import kopf

from siprtmp_contract.outcome import Reason

from . import GROUP, PLURAL, VERSION
from .api import app as api_app
from .kube import Kube, load_config
from .livestatus import fetch, status_url
from .metrics import (
    PHASE_TRACKER,
    PODS_CREATED,
    RECONCILE_ERRORS,
    REDIALS,
    TO_POD_RUNNING,
    TO_STREAMING,
)
from .names import FINALIZER, LABEL_BRIDGE_UID, LABEL_MANAGED_BY, MANAGED_BY, pod_name
from .networking import NetworkPlan, choose_node, choose_slot, effective_mode, window_for_slot
from .pod import PodAttempt, build_pod, spec_secret_manifest
from .policy import BridgeRef, duplicate_owner, holder_shown, stream_key
from .reconcile import plan_step
from .settings import Settings
from .status import TERMINAL_PHASES, observe_pod
from .timeutil import fmt, now_utc, parse
from .web import Probes, keep_checking_api, start

JSON = dict[str, Any]
Logger = logging.Logger | logging.LoggerAdapter[Any]
log = logging.getLogger(__name__)


def merge_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> JSON:
    """RFC 7386 merge patch turning ``old`` into ``new`` (None deletes a key)."""
    patch: JSON = {}
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, Mapping) and isinstance(before, Mapping):
            sub = merge_patch(before, value)
            if sub:
                patch[key] = sub
        elif before != value:
            patch[key] = copy.deepcopy(value)
    for key in old:
        if key not in new:
            patch[key] = None
    return patch


def _values(index: Mapping[Any, Iterable[Any]]) -> list[Any]:
    return [v for store in index.values() for v in store]


def _seconds_since(created: str | None, now: datetime) -> float | None:
    ts = parse(created)
    return None if ts is None else max(0.0, (now - ts).total_seconds())


class PlacementError(Exception):
    """The bridge cannot be placed yet (e.g. no node has an ExternalIP)."""


def kopf_settings(workers: int = 16) -> kopf.OperatorSettings:
    """kopf's own settings: our finalizer and annotation prefix, standalone, a bounded pool.

    The pool bounds how many reconcile steps run at once, and so how many API connections kopf
    opens to write their patches (its connection pool is unbounded; each TLS connection costs
    memory).
    """
    ks = kopf.OperatorSettings()
    ks.persistence.finalizer = FINALIZER
    ks.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    ks.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    ks.posting.level = logging.WARNING
    ks.execution.max_workers = workers
    ks.watching.server_timeout = 300
    ks.peering.standalone = True
    # No dynamic discovery of CRDs and namespaces: that would need cluster-wide list/watch on
    # both. The CRD is installed before the operator (helm's crds/), and the watched
    # namespaces are named explicitly, so startup discovery is all we need.
    ks.scanning.disabled = True
    return ks


def build_registry(
    settings: Settings,
    kube_factory: Callable[[], Kube] | None = None,
    probes: Probes | None = None,
) -> kopf.OperatorRegistry:
    """Register every handler, bound to ``settings``, in a new kopf registry."""
    reg = kopf.OperatorRegistry()
    probes = probes or Probes()
    state: dict[str, Any] = {}
    locks: dict[str, threading.Lock] = {}
    locks_guard = threading.Lock()
    slot_guard = threading.Lock()
    reserved_slots: dict[str, int] = {}
    bridges = (GROUP, VERSION, PLURAL)

    def kube() -> Kube:
        if "kube" not in state:
            with locks_guard:
                if "kube" not in state:
                    if kube_factory is None:
                        load_config()
                        state["kube"] = Kube(pool_size=settings.workers + 4)
                    else:
                        state["kube"] = kube_factory()
        k: Kube = state["kube"]
        return k

    def lock_for(uid: str) -> threading.Lock:
        with locks_guard:
            return locks.setdefault(uid, threading.Lock())

    @kopf.on.login(registry=reg)
    def login(**kwargs: Any) -> Any:
        # The client library's loader, as kube.load_config uses: in a pod it finds the API
        # server from KUBERNETES_SERVICE_HOST/PORT, as client-go does. kopf's own service-account
        # login dials kubernetes.default.svc, which fails wherever cluster DNS is missing or
        # slow to start (found on the real-node tier: the operator never reached the API).
        return kopf.login_via_client(**kwargs)

    @kopf.on.startup(registry=reg)
    async def startup(memo: kopf.Memo, **_: Any) -> None:
        memo["web"] = await start(probes, settings.http_host, settings.http_port)
        if settings.api_enabled:
            memo["api"] = await api_app.start(settings, kube())
        memo["api_check"] = asyncio.create_task(
            keep_checking_api(probes, lambda: kube().api_answers())
        )
        probes.started = True

    @kopf.on.cleanup(registry=reg)
    async def cleanup(memo: kopf.Memo, **_: Any) -> None:
        probes.started = False
        if "api_check" in memo:
            memo["api_check"].cancel()
        for server in ("api", "web"):
            runner = memo.get(server)
            if runner is not None:
                await runner.cleanup()

    @kopf.index("pods", labels={LABEL_MANAGED_BY: MANAGED_BY}, id="bridge_pods", registry=reg)
    def bridge_pods(*, body: kopf.Body, name: str, namespace: str | None, **_: Any) -> Any:
        return {(namespace, name): copy.deepcopy(dict(body))}

    @kopf.index(*bridges, id="bridges_by_stream", registry=reg)
    def bridges_by_stream(
        *,
        spec: kopf.Spec,
        status: kopf.Status,
        meta: kopf.Meta,
        uid: str,
        name: str,
        namespace: str | None,
        **_: Any,
    ) -> Any:
        ref = BridgeRef(
            namespace=namespace or "",
            name=name,
            uid=uid,
            created=str(meta.get("creationTimestamp") or ""),
            phase=status.get("phase"),
            placed=bool(status.get("podName")),
        )
        key = stream_key(spec)
        return None if key is None else {key: ref}

    @kopf.index(*bridges, id="port_slots", registry=reg)
    def port_slots(*, status: kopf.Status, uid: str, **_: Any) -> Any:
        slot = (status.get("networking") or {}).get("portSlot")
        if slot is None or status.get("phase") in TERMINAL_PHASES:
            return None
        return {uid: int(slot)}

    def network_plan(
        *,
        spec: Mapping[str, Any],
        uid: str,
        status: Mapping[str, Any],
        slots_index: Mapping[Any, Iterable[int]],
        pods_index: Mapping[Any, Iterable[JSON]],
    ) -> NetworkPlan:
        mode, source = effective_mode(spec, settings)
        window = None
        if mode == "HostNetwork":
            with slot_guard:
                slot = (status.get("networking") or {}).get("portSlot")
                if slot is None:
                    used = {s for u, s in reserved_slots.items() if u != uid}
                    used |= {s for key, store in slots_index.items() if key != uid for s in store}
                    slot = choose_slot(used, settings, uid)
                reserved_slots[uid] = int(slot)
            window = window_for_slot(int(slot), settings)
        node = ip = None
        if source == "NodeExternalIP":
            per_node: dict[str, int] = {}
            for pod in _values(pods_index):
                n = (pod.get("spec") or {}).get("nodeName")
                if n and (pod.get("status") or {}).get("phase") not in {"Succeeded", "Failed"}:
                    per_node[n] = per_node.get(n, 0) + 1
            choice = choose_node(kube().list_nodes(), per_node)
            if choice is None:
                raise PlacementError("no Ready node has an ExternalIP address")
            node, ip = choice
        return NetworkPlan(
            mode=mode,
            public_address_source=source,
            window=window,
            node_name=node,
            public_address=ip,
        )

    @kopf.timer(*bridges, id="reconcile", interval=settings.poll_interval_seconds, registry=reg)
    def reconcile(
        *,
        body: kopf.Body,
        meta: kopf.Meta,
        spec: kopf.Spec,
        status: kopf.Status,
        name: str,
        namespace: str | None,
        uid: str,
        patch: kopf.Patch,
        logger: Logger,
        **kwargs: Any,
    ) -> None:
        # kopf passes each index under its indexing function's name.
        pods_index: kopf.Index[Any, JSON] = kwargs["bridge_pods"]
        streams_index: kopf.Index[str, BridgeRef] = kwargs["bridges_by_stream"]
        slots_index: kopf.Index[str, int] = kwargs["port_slots"]
        if meta.get("deletionTimestamp"):
            return
        try:
            with lock_for(uid):
                _reconcile(
                    body=body,
                    spec=spec,
                    status=status,
                    name=name,
                    namespace=namespace or "",
                    uid=uid,
                    patch=patch,
                    logger=logger,
                    pods_index=pods_index,
                    streams_index=streams_index,
                    slots_index=slots_index,
                )
        except Exception:
            RECONCILE_ERRORS.labels("reconcile").inc()
            logger.exception("reconcile step failed; retrying on the next tick")

    def _reconcile(
        *,
        body: kopf.Body,
        spec: kopf.Spec,
        status: kopf.Status,
        name: str,
        namespace: str,
        uid: str,
        patch: kopf.Patch,
        logger: Logger,
        pods_index: kopf.Index[Any, JSON],
        streams_index: kopf.Index[str, BridgeRef],
        slots_index: kopf.Index[str, int],
    ) -> None:
        now = now_utc()
        resource: JSON = {
            "metadata": dict(body.metadata),
            "spec": dict(spec),
            "status": copy.deepcopy(dict(status)),
        }
        prev = resource["status"]
        attempt = int(prev.get("attempt", 0))
        current = pod_name(name, attempt)
        pod: JSON | None = None
        for found in pods_index.get((namespace, current), []):
            pod = found
        if pod is not None and (pod["metadata"].get("labels") or {}).get(LABEL_BRIDGE_UID) != uid:
            pod = None  # left over from an earlier bridge of the same name
        placed = prev.get("podName") == current and prev.get("phase") not in TERMINAL_PHASES
        if pod is None and placed:
            pod = kube().get_pod(namespace, current)  # the index may lag behind a fresh create
        obs = observe_pod(pod) if pod is not None else None
        live = None
        if obs is not None and obs.phase == "Running" and not obs.deleting:
            url = status_url(obs, settings.status_scheme, settings.bridge_status_port)
            live = fetch(url, settings.status_timeout_seconds) if url else None
        duplicate = None
        if attempt == 0 and not prev.get("podName"):
            me = BridgeRef(
                namespace,
                name,
                uid,
                str(body.metadata.get("creationTimestamp") or ""),
                prev.get("phase"),
                False,
            )
            key = stream_key(spec)
            owner = duplicate_owner(me, streams_index.get(key, []) if key else [])
            duplicate = holder_shown(namespace, owner) if owner else None

        plan = plan_step(resource, obs, live, now, settings, duplicate_of=duplicate)
        new_status = plan.status
        if plan.delete_resource:
            logger.info("ttlSecondsAfterFinished elapsed: deleting %s/%s", namespace, name)
            kube().delete_bridge(namespace, name, uid)
            return
        if plan.create_pod is not None:
            try:
                net = network_plan(
                    spec=spec, uid=uid, status=prev, slots_index=slots_index, pods_index=pods_index
                )
            except PlacementError as exc:
                new_status = merge_status(
                    prev, {"phase": "Pending", "reason": Reason.NO_PLACEMENT, "message": str(exc)}
                )
                _write(body=body, patch=patch, prev=prev, new=new_status, events=[], uid=uid)
                return
            call = PodAttempt(name, namespace, uid, spec, plan.create_pod, net, settings)
            secret = spec_secret_manifest(call)
            kube().create_secret(secret)
            manifest = build_pod(
                call,
                control_token=secrets.token_urlsafe(32),
                spec_secret=secret["metadata"]["name"],
            )
            if kube().create_pod(manifest):
                PODS_CREATED.inc()
                logger.info("created bridge pod %s", manifest["metadata"]["name"])
            networking: JSON = {"mode": net.mode}
            if net.window is not None:
                networking.update(
                    portSlot=net.window.slot,
                    statusPort=net.window.status_port,
                    sipPort=net.window.sip_port,
                    rtpPortMin=net.window.rtp_min,
                    rtpPortMax=net.window.rtp_max,
                )
            if net.node_name:
                networking.update(nodeName=net.node_name, publicAddress=net.public_address)
            new_status = {**new_status, "networking": networking}
        if new_status.get("phase") in TERMINAL_PHASES:
            with slot_guard:
                reserved_slots.pop(uid, None)
        if (
            new_status.get("reason") == Reason.RETRY_BACKOFF
            and prev.get("reason") != Reason.RETRY_BACKOFF
        ):
            REDIALS.inc()
        created = body.metadata.get("creationTimestamp")
        if new_status.get("podRunningAt") and not prev.get("podRunningAt"):
            s = _seconds_since(created, now)
            if s is not None:
                TO_POD_RUNNING.observe(s)
        if new_status.get("streamingAt") and not prev.get("streamingAt"):
            s = _seconds_since(created, now)
            if s is not None:
                TO_STREAMING.observe(s)
        _write(body=body, patch=patch, prev=prev, new=new_status, events=plan.events, uid=uid)

    def merge_status(prev: Mapping[str, Any], changes: Mapping[str, Any]) -> JSON:
        return {**copy.deepcopy(dict(prev)), **changes}

    def _write(
        *,
        body: kopf.Body,
        patch: kopf.Patch,
        prev: Mapping[str, Any],
        new: Mapping[str, Any],
        events: list[tuple[str, str, str]],
        uid: str,
    ) -> None:
        diff = merge_patch(prev, new)
        if diff:
            patch.setdefault("status", {}).update(diff)
        PHASE_TRACKER.set(uid, str(new.get("phase") or "Pending"))
        for type_, reason, message in events:
            kopf.event(body, type=type_, reason=reason, message=message[:1024])

    @kopf.on.delete(*bridges, id="stop", registry=reg)
    def stop(
        *,
        name: str,
        namespace: str | None,
        uid: str,
        status: kopf.Status,
        patch: kopf.Patch,
        runtime: timedelta,
        logger: Logger,
        **_: Any,
    ) -> None:
        """Stop the bridge pods gracefully (SIGTERM → the bridge sends BYE) before letting go."""
        ns = namespace or ""
        PHASE_TRACKER.forget(uid)
        with slot_guard:
            reserved_slots.pop(uid, None)
        with locks_guard:
            locks.pop(uid, None)
        try:
            pods = kube().list_pods(ns, f"{LABEL_BRIDGE_UID}={uid}")
            for pod in pods:
                if not pod["metadata"].get("deletionTimestamp"):
                    kube().delete_pod(
                        ns, pod["metadata"]["name"], settings.bridge_termination_grace_seconds
                    )
        except Exception:
            RECONCILE_ERRORS.labels("delete").inc()
            raise
        running = [
            p for p in pods if (p.get("status") or {}).get("phase") not in {"Succeeded", "Failed"}
        ]
        if not running:
            return
        waited = runtime.total_seconds()
        if waited >= settings.terminating_timeout_seconds:
            logger.warning(
                "bridge pods of %s/%s still stopping after %.0fs; releasing",
                namespace,
                name,
                waited,
            )
            return
        if status.get("phase") not in TERMINAL_PHASES and status.get("phase") != "Terminating":
            patch.setdefault("status", {}).update(
                phase="Terminating",
                reason=Reason.DELETING,
                message="bridge deleted: hanging up the call and flushing the stream",
            )
        live = [p["metadata"]["name"] for p in running]
        still = [n for n in live if kube().get_pod(ns, n) is not None]
        if still:
            raise kopf.TemporaryError(f"waiting for {', '.join(still)} to stop", delay=1)

    _ = (login, startup, cleanup, bridge_pods, bridges_by_stream, port_slots, reconcile, stop, fmt)
    return reg
