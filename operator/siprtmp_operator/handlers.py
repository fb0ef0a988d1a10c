"""The kopf handlers: read the world, call the pure plan (``reconcile``), carry out its result.

Every handler is a module-level function; ``registry`` registers them into a fresh kopf
registry (the reconcile timer's interval is a setting, known only once the settings are read),
and ``operate`` runs the operator with it. Process state (the settings, the API client, the
probes, the port-slot reservations, the per-bridge locks, the HTTP servers) lives in kopf's
memo, an ``OperatorMemo``: ``operate`` seeds it with the settings, the API client and the
probes, ``startup`` fills in the rest, and kopf hands every resource's handlers a shallow
copy, so all of them share those objects.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import logging
import os
import secrets
import threading
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import kopf
from aiohttp import web
from prometheus_client import Histogram

from siprtmp_contract.outcome import Reason
from siprtmp_contract.states import Phase

from . import GROUP, PLURAL, VERSION
from .api import app as api_app
from .destinations import SEND_TIMEOUT_SECONDS, LiveDestinations, live_destinations, refusal
from .kube import Kube, PodRefusedError, load_config
from .leader import Elector, default_identity
from .livestatus import bridge_url, fetch, post, status_url
from .metrics import (
    PHASE_TRACKER,
    PODS_CREATED,
    RECONCILE_ERRORS,
    REDIALS,
    TO_POD_RUNNING,
    TO_STREAMING,
)
from .names import FINALIZER, LABEL_BRIDGE_UID, LABEL_MANAGED_BY, MANAGED_BY, pod_name
from .networking import PlacementWorld, bridges_per_node, needs_node
from .pod import PodAttempt, build_pod, disruption_budget, spec_secret_manifest
from .policy import (
    BridgeRef,
    SecretProblem,
    duplicate_owner,
    holder_shown,
    secret_problem,
    secret_refs,
    stream_key,
    stream_keys,
)
from .reconcile import Event, Plan, awaits_pod, not_created, place, plan_step, plan_stop
from .settings import Settings
from .status import TERMINAL_PHASES, PodObservation, observe_pod
from .statusmodel import BridgeStatus, read_status, status_patch
from .timeutil import now_utc, parse
from .web import Probes, keep_checking_api
from .web import start as start_probes

JSON = dict[str, Any]
Logger = logging.Logger | logging.LoggerAdapter[Any]
BRIDGES = (GROUP, VERSION, PLURAL)
log = logging.getLogger(__name__)


class SlotReservations:
    """Host-port slots handed to bridges whose status (and so the ``port_slots`` index) may not
    show them yet. Hold ``lock`` from reading the taken slots to reserving the chosen one, so
    two bridges placed at once never pick the same slot."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._slots: dict[str, int] = {}

    def taken(self, uid: str, index: Mapping[str, Iterable[int]]) -> frozenset[int]:
        """Slots held by every bridge but ``uid``: reserved here or shown in the index."""
        with self.lock:
            held = {s for u, s in self._slots.items() if u != uid}
            return frozenset(held | {s for u, store in index.items() if u != uid for s in store})

    def reserve(self, uid: str, slot: int) -> None:
        with self.lock:
            self._slots[uid] = slot

    def release(self, uid: str) -> None:
        with self.lock:
            self._slots.pop(uid, None)


class BridgeLocks:
    """One lock per bridge: a reconcile step of a bridge never overlaps the next one."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}

    def of(self, uid: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(uid, threading.Lock())

    def forget(self, uid: str) -> None:
        with self._guard:
            self._locks.pop(uid, None)


class OperatorMemo(kopf.Memo):
    """kopf's memo, typed: what every handler shares. ``settings``, ``kube``, ``probes`` and
    the probes server come from ``operate``, the rest from ``startup``."""

    settings: Settings
    kube: Kube
    probes: Probes
    slots: SlotReservations
    locks: BridgeLocks
    #: By bridge UID, the ``destinations`` its running bridge last took and those then left
    #: out, already reported (an operator restarted sends the list once more: the bridge's
    #: change is idempotent).
    destinations_sent: dict[str, LiveDestinations]
    #: The probes/metrics server, then the REST API when enabled: stopped in reverse.
    servers: list[web.AppRunner]
    #: The bound on kopf's connections to the API server (``login``).
    kopf_connections: int


def kopf_settings(workers: int = 16, request_timeout: float = 10.0) -> kopf.OperatorSettings:
    """kopf's own settings: our finalizer and annotation prefix, standalone, a bounded pool,
    bounded requests.

    The pool bounds how many reconcile steps run at once, and so how many API connections kopf
    opens to write their patches (its connection pool is unbounded; each TLS connection costs
    memory). Its patches and connects time out as our own calls do (its default: 5 minutes);
    a watch that goes quiet is restarted after its ``inactivity_timeout`` (70 s).
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
    ks.networking.request_timeout = request_timeout
    ks.networking.connect_timeout = request_timeout
    ks.watching.connect_timeout = request_timeout
    ks.peering.standalone = True
    # No dynamic discovery of CRDs and namespaces: that would need cluster-wide list/watch on
    # both. The CRD is installed before the operator (helm's crds/), and the watched
    # namespaces are named explicitly, so startup discovery is all we need.
    ks.scanning.disabled = True
    return ks


# --- process lifecycle -------------------------------------------------------------------


async def login(memo: OperatorMemo, **kwargs: Any) -> kopf.AiohttpSession | None:
    """kopf's connection to the API server, with a bounded pool.

    The credentials come from the client library's loader, as kube.load_config uses: in a pod
    it finds the API server from KUBERNETES_SERVICE_HOST/PORT, as client-go does (kopf's own
    service-account login dials kubernetes.default.svc, which fails wherever cluster DNS is
    missing or slow to start: found on the real-node tier). kopf's own session has no bound on
    its connections: when a thousand bridges change phase at once it opens one TLS connection
    per status patch and Event. Ours holds the watch streams (``memo.kopf_connections`` counts
    them in) and as many more as reconcile steps run at once; the others wait their turn.
    """
    info = kopf.login_via_client(**kwargs)
    if info is None:
        return None
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=memo.kopf_connections, ssl=info.as_ssl_context()),
        headers=info.as_http_headers(),
        auth=info.as_aiohttp_basic_auth(),
        proxy=info.proxy_url,
        trust_env=info.trust_env,
    )
    return kopf.AiohttpSession(
        server=info.server,
        default_namespace=info.default_namespace,
        expiration=info.expiration,
        aiohttp_session=session,
    )


async def startup(memo: OperatorMemo, **_: Any) -> None:
    """Create the reconciling's shared state (and start the REST API), then turn ready."""
    settings = memo.settings
    memo.slots = SlotReservations()
    memo.locks = BridgeLocks()
    memo.destinations_sent = {}
    if settings.api_enabled:
        memo.servers.append(await api_app.start(settings, memo.kube))
    memo.probes.started = True


async def cleanup(memo: OperatorMemo, **_: Any) -> None:
    """Stop the REST API (the probes server outlives kopf: ``operate`` stops it)."""
    while len(memo.servers) > 1:
        await memo.servers.pop().cleanup()


# --- indices -----------------------------------------------------------------------------


def bridge_pods(*, body: kopf.Body, name: str, namespace: str | None, **_: Any) -> Any:
    return {(namespace, name): copy.deepcopy(dict(body))}


def _ref(meta: Mapping[str, Any], status: BridgeStatus, namespace: str | None) -> BridgeRef:
    return BridgeRef(
        namespace=namespace or "",
        name=str(meta.get("name") or ""),
        uid=str(meta.get("uid") or ""),
        created=str(meta.get("creationTimestamp") or ""),
        phase=status.phase,
        placed=bool(status.pod_name),
    )


def bridges_by_stream(
    *, spec: kopf.Spec, status: kopf.Status, meta: kopf.Meta, namespace: str | None, **_: Any
) -> Any:
    ref = _ref(meta, read_status(status), namespace)
    own = stream_key(spec)
    return {key: replace(ref, own_stream=key == own) for key in stream_keys(spec)} or None


def port_slots(*, status: kopf.Status, uid: str, **_: Any) -> Any:
    st = read_status(status)
    slot = st.networking.port_slot if st.networking else None
    if slot is None or st.phase in TERMINAL_PHASES:
        return None
    return {uid: slot}


# --- reconcile ---------------------------------------------------------------------------


def streaming(status: Mapping[str, Any]) -> bool:
    """Whether a bridge is reconciled at the Streaming cadence: it reported Streaming, and its
    changes reach the status through its /status read (``streaming_poll_interval_seconds``)."""
    return read_status(status).phase == Phase.STREAMING


def _observe_since_creation(metric: Histogram, created: str | None, now: datetime) -> None:
    ts = parse(created)
    if ts is not None:
        metric.observe(max(0.0, (now - ts).total_seconds()))


def reconcile(
    *,
    body: kopf.Body,
    meta: kopf.Meta,
    spec: kopf.Spec,
    status: kopf.Status,
    namespace: str | None,
    uid: str,
    patch: kopf.Patch,
    memo: OperatorMemo,
    logger: Logger,
    **kwargs: Any,
) -> None:
    """One step for one bridge (a timer): errors are counted and retried on the next tick."""
    if meta.get("deletionTimestamp"):
        return  # the delete handler (``stop``) owns a bridge being deleted
    try:
        with memo.locks.of(uid):
            _step(
                body=body,
                spec=spec,
                stored=status,
                namespace=namespace or "",
                uid=uid,
                patch=patch,
                memo=memo,
                logger=logger,
                # kopf passes each index under its indexing function's name.
                pods_index=kwargs["bridge_pods"],
                streams_index=kwargs["bridges_by_stream"],
                slots_index=kwargs["port_slots"],
            )
    except Exception:
        RECONCILE_ERRORS.labels("reconcile").inc()
        logger.exception("reconcile step failed; retrying on the next tick")


def _step(
    *,
    body: kopf.Body,
    spec: kopf.Spec,
    stored: Mapping[str, Any],
    namespace: str,
    uid: str,
    patch: kopf.Patch,
    memo: OperatorMemo,
    logger: Logger,
    pods_index: kopf.Index[Any, JSON],
    streams_index: kopf.Index[str, BridgeRef],
    slots_index: kopf.Index[str, int],
) -> None:
    settings, kube = memo.settings, memo.kube
    now = now_utc()
    resource: JSON = {
        "metadata": dict(body.metadata),
        "spec": dict(spec),
        "status": dict(stored),
    }
    prev = read_status(stored)
    name = str(body.metadata["name"])
    current = pod_name(name, prev.attempt)
    pod: JSON | None = None
    for found in pods_index.get((namespace, current), []):
        pod = found
    if pod is not None and (pod["metadata"].get("labels") or {}).get(LABEL_BRIDGE_UID) != uid:
        pod = None  # left over from an earlier bridge of the same name
    if pod is None and prev.pod_name == current and prev.phase not in TERMINAL_PHASES:
        pod = kube.get_pod(namespace, current)  # the index may lag behind a fresh create
    obs = observe_pod(pod) if pod is not None else None
    live = None
    if obs is not None and obs.phase == "Running" and not obs.deleting:
        url = status_url(obs, settings.status_scheme, settings.bridge_status_port)
        live = fetch(url, settings.status_timeout_seconds) if url else None
    me = _ref(body.metadata, prev, namespace)

    def published_by(key: str, adding: bool = False) -> str | None:
        owner = duplicate_owner(me, streams_index.get(key, []), adding=adding)
        return holder_shown(namespace, owner) if owner else None

    # Before a pod: DuplicateStream if any destination's stream is another live bridge's.
    duplicate = next(filter(None, map(published_by, stream_keys(spec))), None)

    secret = _secret_problem(spec, namespace, memo) if awaits_pod(prev, name) else None
    plan = plan_step(resource, obs, live, now, settings, duplicate_of=duplicate, secret=secret)
    if plan.delete_resource:
        logger.info("ttlSecondsAfterFinished elapsed: deleting %s/%s", namespace, name)
        kube.delete_bridge(namespace, name, uid)
        return
    if plan.force_delete_pod is not None:
        logger.warning(
            "force-deleting bridge pod %s: %s", plan.force_delete_pod, plan.status.message
        )
        kube.delete_pod(namespace, plan.force_delete_pod, 0)
    if plan.create_pod is not None:
        plan = _placed(plan, prev, spec, uid, memo, pods_index, slots_index)
    if plan.network is not None and plan.create_pod is not None:
        plan = _create_pod(plan, prev, name, namespace, uid, spec, memo, logger)
    new = plan.status
    if new.phase in TERMINAL_PHASES:
        memo.slots.release(uid)
    if new.reason == Reason.RETRY_BACKOFF and prev.reason != Reason.RETRY_BACKOFF:
        REDIALS.inc()
    created = body.metadata.get("creationTimestamp")
    if new.pod_running_at and not prev.pod_running_at:
        _observe_since_creation(TO_POD_RUNNING, created, now)
    if new.streaming_at and not prev.streaming_at:
        _observe_since_creation(TO_STREAMING, created, now)
    events = list(plan.events)
    if obs is not None and live is not None and new.phase not in TERMINAL_PHASES:
        adding = functools.partial(published_by, adding=True)
        events += _send_destinations(obs, spec, uid, memo, adding, logger)
    _write(body=body, patch=patch, stored=stored, new=new, events=events, uid=uid)


def _secret_problem(
    spec: Mapping[str, Any], namespace: str, memo: OperatorMemo
) -> SecretProblem | None:
    """The first Secret the next pod would mount that a bridge may not use (its metadata read
    for each one); None when all may be, or the operator's settings do not check."""
    if not memo.settings.require_bridge_usable_secrets:
        return None
    for field, secret in secret_refs(spec):
        problem = secret_problem(field, secret, memo.kube.secret_labels(namespace, secret))
        if problem is not None:
            return problem
    return None


def _send_destinations(
    obs: PodObservation,
    spec: Mapping[str, Any],
    uid: str,
    memo: OperatorMemo,
    published_by: Callable[[str], str | None],
    logger: Logger,
) -> list[Event]:
    """Tell a running bridge its ``destinations`` when they differ from what it last took
    (siprtmp_operator.destinations); Warning events for a list the bridge refused, and for each
    destination newly left out (a list left unchanged by one is still a change to report)."""
    settings = memo.settings
    wanted = live_destinations(spec, settings.allowed_rtmp_hosts, published_by, obs.key_secrets)
    sent = memo.destinations_sent.get(uid)
    if sent == wanted:
        return []
    if sent is None or sent.body != wanted.body:
        url = bridge_url(obs, settings.status_scheme, settings.bridge_status_port, "/destinations")
        if url is None:
            return []
        answer = post(url, wanted.body, SEND_TIMEOUT_SECONDS, obs.control_token)
        if answer is not None and answer[0] == 400:
            memo.destinations_sent[uid] = wanted  # the same list would be refused again
            return [("Warning", *refusal(answer[1]))]
        if answer is None or answer[0] != 200:
            logger.warning("the bridge did not take its destinations: %s", answer)
            return []
    memo.destinations_sent[uid] = wanted
    reported = sent.left_out if sent is not None else ()
    return [("Warning", *left) for left in wanted.left_out if left not in reported]


def _create_pod(
    plan: Plan,
    prev: BridgeStatus,
    name: str,
    namespace: str,
    uid: str,
    spec: Mapping[str, Any],
    memo: OperatorMemo,
    logger: Logger,
) -> Plan:
    """Create the pod ``plan`` places (with its spec Secret and, when asked, the bridge's
    disruption budget); a pod the API server refuses leaves the attempt waiting."""
    settings, kube = memo.settings, memo.kube
    assert plan.create_pod is not None and plan.network is not None
    call = PodAttempt(name, namespace, uid, spec, plan.create_pod, plan.network, settings)
    secret = spec_secret_manifest(call)
    kube.create_secret(secret)
    if settings.bridge_disruption_budget:
        kube.create_disruption_budget(disruption_budget(name, namespace, uid))
    manifest = build_pod(
        call,
        control_token=secrets.token_urlsafe(32),
        spec_secret=secret["metadata"]["name"],
    )
    try:
        created = kube.create_pod(manifest)
    except PodRefusedError as refused:
        logger.warning("bridge pod %s refused: %s", manifest["metadata"]["name"], refused)
        return not_created(plan, prev, Reason.POD_REJECTED, str(refused))
    if created:
        PODS_CREATED.inc()
        logger.info("created bridge pod %s", manifest["metadata"]["name"])
    return plan


def _placed(
    plan: Plan,
    prev: BridgeStatus,
    spec: Mapping[str, Any],
    uid: str,
    memo: OperatorMemo,
    pods_index: kopf.Index[Any, JSON],
    slots_index: kopf.Index[str, int],
) -> Plan:
    """``reconcile.place`` fed with what it reads; the window it hands out is reserved."""
    settings = memo.settings
    nodes: Sequence[Mapping[str, Any]] = ()
    per_node: dict[str, int] = {}
    if needs_node(spec, settings):
        nodes = memo.kube.list_nodes()
        per_node = bridges_per_node(pod for store in pods_index.values() for pod in store)
    with memo.slots.lock:
        world = PlacementWorld(memo.slots.taken(uid, slots_index), tuple(nodes), per_node)
        placed = place(plan, prev, spec, uid, settings, world)
        if placed.network is not None and placed.network.window is not None:
            memo.slots.reserve(uid, placed.network.window.slot)
    return placed


def _write(
    *,
    body: kopf.Body,
    patch: kopf.Patch,
    stored: Mapping[str, Any],
    new: BridgeStatus,
    events: Sequence[Event],
    uid: str,
) -> None:
    diff = status_patch(stored, new)
    if diff:
        patch.setdefault("status", {}).update(diff)
    PHASE_TRACKER.set(uid, str(new.phase or "Pending"))
    for type_, reason, message in events:
        kopf.event(body, type=type_, reason=reason, message=message[:1024])


# --- delete ------------------------------------------------------------------------------


def stop(
    *,
    name: str,
    namespace: str | None,
    uid: str,
    status: kopf.Status,
    patch: kopf.Patch,
    runtime: timedelta,
    memo: OperatorMemo,
    logger: Logger,
    **_: Any,
) -> None:
    """Stop the bridge pods gracefully (SIGTERM → the bridge sends BYE) before letting go."""
    settings, kube = memo.settings, memo.kube
    ns = namespace or ""
    PHASE_TRACKER.forget(uid)
    memo.slots.release(uid)
    memo.locks.forget(uid)
    memo.destinations_sent.pop(uid, None)
    try:
        pods = kube.list_pods(ns, f"{LABEL_BRIDGE_UID}={uid}")
        plan = plan_stop(read_status(status), pods, runtime.total_seconds(), settings)
        for pod in plan.delete_pods:
            kube.delete_pod(ns, pod, settings.bridge_termination_grace_seconds)
        for pod in plan.force_delete:
            kube.delete_pod(ns, pod, 0)
    except Exception:
        RECONCILE_ERRORS.labels("delete").inc()
        raise
    if plan.gave_up:
        logger.warning(
            "bridge pods of %s/%s still stopping after %.0fs; releasing",
            namespace,
            name,
            runtime.total_seconds(),
        )
    if plan.status is not None:
        patch.setdefault("status", {}).update(status_patch(status, plan.status))
    still = [n for n in plan.wait_for if kube.get_pod(ns, n) is not None]
    if still:
        raise kopf.TemporaryError(f"waiting for {', '.join(still)} to stop", delay=1)


# --- registration ------------------------------------------------------------------------


def registry(settings: Settings) -> kopf.OperatorRegistry:
    """This module's handlers in a new kopf registry, the timer ticking as ``settings`` say."""
    reg = kopf.OperatorRegistry()
    kopf.on.login(registry=reg)(login)
    kopf.on.startup(registry=reg)(startup)
    kopf.on.cleanup(registry=reg)(cleanup)
    kopf.index("pods", labels={LABEL_MANAGED_BY: MANAGED_BY}, id="bridge_pods", registry=reg)(
        bridge_pods
    )
    kopf.index(*BRIDGES, id="bridges_by_stream", registry=reg)(bridges_by_stream)
    kopf.index(*BRIDGES, id="port_slots", registry=reg)(port_slots)
    # Exactly one of the two timers runs for a bridge (their filters are complementary, and
    # kopf starts and stops a timer as its filter turns): a Streaming bridge is read at the
    # slower cadence, every other one at the poll interval.
    kopf.timer(
        *BRIDGES,
        id="reconcile",
        interval=settings.poll_interval_seconds,
        when=lambda status, **_: not streaming(status),
        registry=reg,
    )(reconcile)
    kopf.timer(
        *BRIDGES,
        id="reconcile-streaming",
        interval=settings.streaming_poll_interval_seconds,
        when=lambda status, **_: streaming(status),
        registry=reg,
    )(reconcile)
    kopf.on.delete(*BRIDGES, id="stop", registry=reg)(stop)
    return reg


#: The exit code of a replica that lost the Lease (the kubelet restarts it as a standby).
LOST_LEASE_EXIT = 3


async def operate(settings: Settings, namespaces: Sequence[str]) -> None:
    """Run the operator until it is stopped: over ``namespaces``, or cluster-wide when empty.

    The probes server answers from the start; with ``leader_election`` the kopf operator (the
    handlers and the REST API) runs only while this replica holds the Lease. A holder that
    loses it exits at once, before a standby may take over, so two never reconcile together.
    """
    load_config()
    kube = Kube(pool_size=settings.workers + 4, timeout=settings.kube_request_timeout_seconds)
    probes = Probes()
    memo = OperatorMemo(settings=settings, kube=kube, probes=probes)
    # A watch stream per resource kind (two) per namespace, and one connection per worker.
    memo.kopf_connections = settings.workers + 2 * max(1, len(namespaces))
    memo.servers = [await start_probes(probes, settings.http_host, settings.http_port)]
    api_check = asyncio.create_task(keep_checking_api(probes, kube.api_answers))

    def run() -> Coroutine[Any, Any, None]:
        return kopf.operator(
            registry=registry(settings),
            settings=kopf_settings(settings.workers, settings.kube_request_timeout_seconds),
            memo=memo,
            clusterwide=not namespaces,
            namespaces=list(namespaces),
            standalone=True,
        )

    try:
        if settings.leader_election:
            await _lead(settings, kube, probes, run)
        else:
            await run()
    finally:
        api_check.cancel()
        for runner in reversed(memo.servers):
            await runner.cleanup()


async def _lead(
    settings: Settings, kube: Kube, probes: Probes, run: Callable[[], Coroutine[Any, Any, None]]
) -> None:
    """Stand by until the Lease is ours, then ``run`` while it stays ours."""
    elector = Elector(
        kube.api,
        settings.lease_namespace,
        settings.lease_name,
        default_identity(settings.pod_name),
        duration_seconds=settings.lease_duration_seconds,
        renew_seconds=settings.lease_renew_seconds,
        label_pods=bool(settings.pod_name),
    )
    await elector.stand_by()

    def standing_by() -> None:
        probes.started = True  # a standby is up: ready once the API server answers

    await elector.acquire(standing_by)
    operator = asyncio.create_task(run())
    holding = asyncio.create_task(elector.hold())
    await asyncio.wait({operator, holding}, return_when=asyncio.FIRST_COMPLETED)
    if holding.done():
        log.critical("lost the Lease: stopping at once (exit %d)", LOST_LEASE_EXIT)
        logging.shutdown()
        os._exit(LOST_LEASE_EXIT)  # no graceful stop: a step still running must not write
    holding.cancel()
    await elector.release()
    await operator  # re-raises what stopped it
