"""One active operator among its replicas: a ``coordination.k8s.io`` Lease.

Invariant: at most one replica reconciles bridges (and serves the REST API) at a time. A
replica does so only while it holds the Lease. It takes the Lease when nobody holds it, when it
held it itself (the same pod, its container restarted), or when the holder has not renewed it
for ``leaseDurationSeconds`` as this replica's own monotonic clock measures it: the standby
watches the record *change*, it never compares its clock with the holder's. The holder renews
every ``renew_seconds`` and stops (``hold`` returns; the process exits) once it has gone
``duration - renew_seconds`` without a renewal: before any standby may take the Lease. Writes
carry the resourceVersion read, so of two replicas taking a free Lease at once one gets a
conflict and stays standby.

The pure part (``LeaseView``, ``observe``, ``may_take``, the manifests) is unit-tested; ``Elector``
runs it against the API server.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import kubernetes
from kubernetes.client.exceptions import ApiException

from .kube import UNANSWERED
from .names import LABEL_OPERATOR_ROLE, ROLE_ACTIVE, ROLE_STANDBY

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class LeaseView:
    """What of a Lease the election reads (``renew_time`` only as a value that changes)."""

    holder: str
    duration_seconds: float
    renew_time: str
    transitions: int
    resource_version: str


@dataclass(frozen=True)
class Observation:
    """The Lease as last read, and when (this replica's monotonic clock) it last changed."""

    view: LeaseView | None
    changed_at: float


def observe(prev: Observation | None, view: LeaseView | None, now: float) -> Observation:
    """``prev`` if the holder wrote nothing since (its clock keeps running), else a new one."""
    if prev is not None and _same_record(prev.view, view):
        return prev
    return Observation(view, now)


def _same_record(a: LeaseView | None, b: LeaseView | None) -> bool:
    if a is None or b is None:
        return a is b
    return (a.holder, a.renew_time, a.transitions) == (b.holder, b.renew_time, b.transitions)


def may_take(identity: str, obs: Observation, now: float) -> bool:
    """Whether ``identity`` may write itself as the holder (see the module's invariant)."""
    view = obs.view
    if view is None or not view.holder or view.holder == identity:
        return True
    return now - obs.changed_at >= view.duration_seconds


def read_view(lease: Any) -> LeaseView:
    """A ``V1Lease`` (the client's model) as a LeaseView."""
    spec = lease.spec
    return LeaseView(
        holder=spec.holder_identity or "",
        duration_seconds=float(spec.lease_duration_seconds or 0),
        renew_time=str(spec.renew_time or ""),
        transitions=int(spec.lease_transitions or 0),
        resource_version=str(lease.metadata.resource_version or ""),
    )


def lease_body(
    name: str,
    namespace: str,
    identity: str,
    duration_seconds: float,
    now: datetime,
    prev: LeaseView | None,
) -> dict[str, Any]:
    """The Lease ``identity`` writes to take or renew it over ``prev`` (None: create it).

    ``identity`` empty: released (a standby may take it at once). A change of holder counts a
    transition; acquireTime is when the current holder took it. ``now`` keeps its microseconds.
    """
    # A MicroTime: the client's model writes a datetime in ISO form, which drops a zero
    # microsecond part, and the API server then refuses it (it wants exactly six digits).
    stamp = now if now.microsecond else now.replace(microsecond=1)
    taking = prev is None or prev.holder != identity
    transitions = 0 if prev is None else prev.transitions + (1 if taking and identity else 0)
    spec: dict[str, Any] = {
        "holderIdentity": identity,
        "leaseDurationSeconds": max(1, round(duration_seconds)),
        "renewTime": stamp,
        "leaseTransitions": transitions,
    }
    if taking:
        spec["acquireTime"] = stamp
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if prev is not None:
        meta["resourceVersion"] = prev.resource_version
    body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta}
    return {**body, "spec": spec}


def default_identity(pod_name: str) -> str:
    """This replica's name in the Lease: its pod's, else host name and process id."""
    return pod_name or f"{socket.gethostname()}-{os.getpid()}"


class Elector:
    """Takes, renews and releases the Lease ``namespace/name`` for ``identity``; labels the
    replicas' pods active or standby (``pod_names``: the identity is the pod's name) so the
    REST API's Service selects the active one only."""

    def __init__(
        self,
        api: kubernetes.client.ApiClient,
        namespace: str,
        name: str,
        identity: str,
        *,
        duration_seconds: float,
        renew_seconds: float,
        label_pods: bool,
    ) -> None:
        self.coordination = kubernetes.client.CoordinationV1Api(api)
        self.core = kubernetes.client.CoreV1Api(api)
        self.namespace, self.name, self.identity = namespace, name, identity
        self.duration, self.renew = duration_seconds, renew_seconds
        self.label_pods = label_pods
        self._held: LeaseView | None = None

    async def _call(self, timeout: float, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` (a blocking client call) in a thread, given up after ``timeout`` s."""
        loop = asyncio.get_running_loop()
        return await asyncio.wait_for(loop.run_in_executor(None, fn, *args), max(0.1, timeout))

    def _read(self) -> LeaseView | None:
        try:
            return read_view(self.coordination.read_namespaced_lease(self.name, self.namespace))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def _write(self, identity: str, prev: LeaseView | None) -> LeaseView | None:
        """Write the Lease over ``prev``; None when another replica wrote it first."""
        now = datetime.now(UTC)
        body = lease_body(self.name, self.namespace, identity, self.duration, now, prev)
        try:
            if prev is None:
                written = self.coordination.create_namespaced_lease(
                    self.namespace,
                    body,  # type: ignore[arg-type]
                )
            else:
                written = self.coordination.replace_namespaced_lease(
                    self.name,
                    self.namespace,
                    body,  # type: ignore[arg-type]
                )
        except ApiException as exc:
            if exc.status == 409:
                return None
            raise
        return read_view(written)

    def _label(self, pod: str, role: str) -> None:
        if not (self.label_pods and pod):
            return
        patch = {"metadata": {"labels": {LABEL_OPERATOR_ROLE: role}}}
        try:
            self.core.patch_namespaced_pod(pod, self.namespace, patch)
        except ApiException as exc:
            if exc.status != 404:  # a holder gone with its pod has nothing left to unlabel
                raise

    async def stand_by(self) -> None:
        """Say so on this replica's pod (a restarted leader's pod still says active)."""
        try:
            await self._call(self.renew * 2, self._label, self.identity, ROLE_STANDBY)
        except (ApiException, TimeoutError, *UNANSWERED) as exc:
            log.warning("could not label this replica standby: %s", exc)

    async def acquire(self, standing_by: Callable[[], None]) -> None:
        """Return once this replica holds the Lease (checked every ``renew`` seconds); call
        ``standing_by`` when it first finds another replica holding it."""
        obs: Observation | None = None
        waiting_for = ""
        while True:
            try:
                view = await self._call(self.renew * 2, self._read)
                obs = observe(obs, view, time.monotonic())
                if may_take(self.identity, obs, time.monotonic()):
                    written = await self._call(5, self._write, self.identity, view)
                    if written is not None:
                        self._held = written
                        await self._took_over(view)
                        return
                elif view is not None and view.holder != waiting_for:
                    if not waiting_for:
                        standing_by()
                    waiting_for = view.holder
                    log.info("standing by: the Lease is held by %s", waiting_for)
            except (ApiException, TimeoutError, *UNANSWERED) as exc:
                log.warning("Lease %s/%s not read or taken: %s", self.namespace, self.name, exc)
            await asyncio.sleep(self.renew)

    async def _took_over(self, prev: LeaseView | None) -> None:
        """Label this pod active and the previous holder's standby: a pod lost with its node
        stays Ready until the node controller says otherwise, and must not keep the API's
        traffic meanwhile."""
        log.info("holding the Lease %s/%s as %s", self.namespace, self.name, self.identity)
        try:
            await self._call(self.renew * 2, self._label, self.identity, ROLE_ACTIVE)
            if prev is not None and prev.holder and prev.holder != self.identity:
                holder = prev.holder
                await self._call(self.renew * 2, self._label, holder, ROLE_STANDBY)
        except (ApiException, TimeoutError, *UNANSWERED) as exc:
            log.error("could not label the replicas' pods (the REST API may go unserved): %s", exc)

    async def hold(self) -> None:
        """Renew the Lease until it is lost: return when another replica holds it, or when
        ``duration - renew`` seconds went by without a renewal (the caller stops at once)."""
        assert self._held is not None
        renewed = time.monotonic()
        give_up = self.duration - self.renew

        def left() -> float:
            return give_up - (time.monotonic() - renewed)

        while True:
            await asyncio.sleep(self.renew)
            started = time.monotonic()
            try:
                written = await self._call(left(), self._write, self.identity, self._held)
                if written is None:  # written by someone else since: who holds it now?
                    current = await self._call(left(), self._read)
                    if current is None or current.holder != self.identity:
                        taker = current.holder if current else "nobody"
                        log.error("the Lease was taken over by %s", taker or "nobody")
                        return
                    written = await self._call(left(), self._write, self.identity, current)
                if written is not None:
                    self._held, renewed = written, started
            except (ApiException, TimeoutError, *UNANSWERED) as exc:
                log.warning("Lease not renewed: %s", exc)
            if left() <= 0:
                log.error("Lease not renewed for %.1fs: another replica may take it", give_up)
                return

    async def release(self) -> None:
        """Hand the Lease back (a standby takes it at its next check) and say standby."""
        held = self._held
        if held is None:
            return
        try:
            await self._call(self.renew * 2, self._write, "", held)
            await self._call(self.renew * 2, self._label, self.identity, ROLE_STANDBY)
        except (ApiException, TimeoutError, *UNANSWERED) as exc:
            log.warning("Lease not released (a standby takes it when it expires): %s", exc)
        self._held = None
