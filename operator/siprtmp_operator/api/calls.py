"""The API's use cases: startup, terminate, find, find_all, send_dtmf over SipRtmpBridges, and
push startup/find/terminate over a call's ``spec.destinations``.

Kubernetes calls block, so each runs in a thread, and none is made holding a lock: one that
hangs (until its timeout) delays only its own request. "Is this callId or stream taken, is there
room? then create" stays atomic within the API through ``Placements``: the checks see the calls
other startups are creating as well as those listed (the operator's own duplicate-stream check
still guards against bridges created around the API).

A push changes the resource only (``spec.destinations``, written only if the resource is as it
was read: a change in between, by the operator or another API replica, means reading and
deciding again); pushes to one call take turns within the API (a lock per call: one push's
hanging Kubernetes request delays only that call's other pushes). The operator tells the call's
bridge, which opens or closes that destination's connection. Its stream key is the body's
secret: every answer and log line of a push is scrubbed of it (``PushRequest.scrubber``), the
operator's log masks it wherever a resource is printed (``redaction``), and the bridge masks it
from the moment it reads it.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import traceback
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from siprtmp_contract.fields import MAX_DESTINATIONS
from siprtmp_contract.outcome import Reason
from siprtmp_contract.redact import Scrubber
from siprtmp_contract.spec import (
    Destination,
    SpecError,
    check_live_destinations,
    parse_resource_spec,
)
from siprtmp_contract.states import (
    CallState,
    Phase,
)

from .. import KIND, livestatus
from ..policy import call_refusal
from ..settings import Settings
from ..status import LIVE_PHASES, observe_pod
from ..statusmodel import read_status
from .bodies import (
    PushRef,
    PushRequest,
    parse_call_ref,
    parse_find,
    parse_push,
    parse_push_ref,
    parse_send_dtmf,
    parse_startup,
)
from .errors import ApiError
from .manifests import (
    bridge_manifest,
    call_id_of,
    call_secret,
    call_view,
    destination_named,
    is_live,
    matches,
    publishes_to,
    push_views,
)
from .store import CallStore

JSON = dict[str, Any]
T = TypeVar("T")
log = logging.getLogger(__name__)
#: A call the settings forbid: a body asking for what the API does not offer is a 400, a
#: destination off the allowlists a 403.
REFUSAL_STATUS = {Reason.HOST_NETWORK_NOT_ALLOWED: 400, Reason.NOT_ALLOWED: 403}
#: The bridge waits up to 5 s for its poll loop to take the digits; leave room for that.
DTMF_TIMEOUT_SECONDS = 8.0
#: Reads-and-writes of one push before it gives up: each retry follows a change the operator
#: (status, finalizers) or another push made to the resource in between.
PUSH_ATTEMPTS = 5


@dataclass
class _Placing:
    manifest: JSON
    #: ``Placements.created`` once its create returned: a list begun after that shows it.
    created: int | None = None


class Placements:
    """The calls startups are creating, until a list of the calls is sure to show them.

    A startup lists the calls, then (with no await in between, so no other startup runs) checks
    ``with_pending`` of them and ``add``s its own; its create then runs unlocked. A list begun
    after a create returned shows that call: it is forgotten then, never sooner.
    """

    def __init__(self) -> None:
        self._placing: list[_Placing] = []
        #: How many creates have returned: what a list begun now is sure to show.
        self.created = 0

    def with_pending(self, listed: list[JSON], listed_at: int) -> list[JSON]:
        """``listed`` (a list begun when ``created`` was ``listed_at``) and the calls being
        created that it does not show; what it is sure to show is forgotten."""
        self._placing = [p for p in self._placing if p.created is None or p.created > listed_at]
        names = {c["metadata"]["name"] for c in listed}
        return [
            *listed,
            *(p.manifest for p in self._placing if p.manifest["metadata"]["name"] not in names),
        ]

    def add(self, manifest: JSON) -> _Placing:
        placing = _Placing(manifest)
        self._placing.append(placing)
        return placing

    def finish(self, placing: _Placing, created: bool) -> None:
        """Its create returned (``created``) or failed (forgotten at once)."""
        if created:
            self.created += 1
            placing.created = self.created
        else:
            self._placing.remove(placing)


class Calls:
    def __init__(
        self,
        store: CallStore,
        settings: Settings,
        post: Callable[[str, JSON, float, str | None], tuple[int, JSON] | None] = livestatus.post,
    ) -> None:
        self.store = store
        #: The operator's: its policies (call_refusal), the bridges' status port, the limits.
        self.settings = settings
        self.post = post
        self.placements = Placements()
        #: callId → the lock its pushes take turns on (gone when no push holds or awaits it).
        self.push_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    def _push_lock(self, call_id: str) -> asyncio.Lock:
        lock = self.push_locks.get(call_id)
        if lock is None:
            lock = self.push_locks[call_id] = asyncio.Lock()
        return lock

    async def startup(self, body: Any) -> JSON:
        request = parse_startup(body)
        refusal = call_refusal(request.spec, self.settings)
        if refusal is not None:  # the operator would fail the call with refusal.reason
            status = REFUSAL_STATUS[refusal.reason]
            raise ApiError(status, f"{refusal.field}: {refusal.message}", refusal.field)
        token = self.settings.api_token
        keys_digested_by = token if self.settings.api_stream_keys_in_secrets else ""
        manifest = bridge_manifest(self.store.namespace, request, keys_digested_by)
        listed_at = self.placements.created
        listed = await asyncio.to_thread(self.store.list_calls)
        # From here to ``add``, no await: no other startup checks or adds in between.
        calls = self.placements.with_pending(listed, listed_at)
        if any(call_id_of(c) == request.call_id for c in calls):
            raise ApiError(409, f"callId: call {request.call_id!r} exists", "callId")
        owner = next(
            (c for c in calls if is_live(c) and publishes_to(c, request.spec, token)), None
        )
        if owner is not None:
            raise ApiError(
                409,
                f"rtmpStream: rtmpUrl/rtmpStream is already live in call {call_id_of(owner)!r}",
                "rtmpStream",
            )
        # Calls being hung up (terminated, their pods stopping) leave room at once; a push
        # being written (no kind: not a call) takes none.
        live = sum(
            1
            for c in calls
            if c.get("kind") == KIND and is_live(c) and not c["metadata"].get("deletionTimestamp")
        )
        limit = self.settings.api_max_calls
        if limit and live >= limit:
            raise ApiError(
                429, f"{live} calls are live: the most this API places at once (api.maxCalls)"
            )
        placing = self.placements.add(manifest)
        try:
            created = await asyncio.to_thread(self.store.create_call, manifest)
        except BaseException:
            self.placements.finish(placing, created=False)
            raise
        self.placements.finish(placing, created=True)
        secret = call_secret(created, request)
        if secret is not None:
            try:
                await asyncio.to_thread(self.store.create_secret, secret)
            except ApiError:
                # A call whose password or key is missing would only fail later, less clearly.
                await asyncio.to_thread(self.store.delete_call, created["metadata"]["name"])
                raise
        log.info("REST API: call %s placed as %s", request.call_id, created["metadata"]["name"])
        return call_view(created)

    async def _find_one(self, call_id: str) -> JSON:
        calls = await asyncio.to_thread(self.store.list_calls)
        for call in calls:
            if call_id_of(call) == call_id:
                return call
        raise ApiError(404, f"callId: no call {call_id!r}", "callId")

    async def terminate(self, body: Any) -> JSON:
        """Delete the resource: the operator hangs up (BYE), flushes the stream, removes it."""
        call = await self._find_one(parse_call_ref(body))
        await asyncio.to_thread(self.store.delete_call, call["metadata"]["name"])
        log.info("REST API: call %s terminated", call_id_of(call))
        return {**call_view(call), "terminating": True}

    async def find(self, body: Any) -> list[JSON]:
        filters = parse_find(body)
        token = self.settings.api_token
        calls = await asyncio.to_thread(self.store.list_calls)
        found = [v for c in calls if matches(c, v := call_view(c), filters, token)]
        if not found:
            raise ApiError(404, "no call matches", None)
        return found

    async def find_all(self) -> list[JSON]:
        calls = await asyncio.to_thread(self.store.list_calls)
        return sorted((call_view(c) for c in calls), key=lambda v: str(v["createdAt"]))

    # -- pushes: a live call's further destinations ---------------------------------------------

    async def push_startup(self, body: Any) -> JSON:
        """Add a destination to a live call (its ``spec.destinations``): refused as a startup
        would be (allowlist 403, the stream live anywhere 409), and when the call is over (409),
        its list is full (409) or the name is taken (409)."""
        request = parse_push(body)
        return await _scrubbed(request.scrubber, self._push_startup(request))

    async def _push_startup(self, request: PushRequest) -> JSON:
        async with self._push_lock(request.call_id):
            return await self._push_startup_turn(request)

    async def _push_startup_turn(self, request: PushRequest) -> JSON:
        wanted = dict(request.destination)
        for _ in range(PUSH_ATTEMPTS):
            listed_at = self.placements.created
            listed = await asyncio.to_thread(self.store.list_calls)
            # From here to ``add``, no await: no startup or push checks or adds in between.
            calls = self.placements.with_pending(listed, listed_at)
            call = _live_call(calls, request.call_id)
            spec = call.get("spec") or {}
            more = list(spec.get("destinations") or [])
            if len(more) >= MAX_DESTINATIONS:
                raise ApiError(
                    409,
                    f"destinations: call {request.call_id!r} has {len(more)} destinations beside "
                    "rtmpUrl/rtmpStream, the most a call takes",
                    "destinations",
                )
            if "name" not in wanted:
                wanted["name"] = _new_name(more)
            elif destination_named(call, wanted["name"], None) is not None:
                raise ApiError(
                    409,
                    f"name: call {request.call_id!r} has a destination {wanted['name']!r}",
                    "name",
                )
            candidate = {**spec, "destinations": [*more, wanted]}
            refusal = call_refusal(candidate, self.settings)
            if refusal is not None:
                field = "rtmpUrl" if refusal.field.startswith("destinations[") else refusal.field
                status = REFUSAL_STATUS[refusal.reason]
                raise ApiError(status, f"{field}: {refusal.message}", field)
            _check_profile_is_met(spec, request.parsed)
            token = self.settings.api_token
            owner = next((c for c in calls if is_live(c) and publishes_to(c, wanted, token)), None)
            if owner is not None:
                where = "this call" if owner is call else f"call {call_id_of(owner)!r}"
                raise ApiError(
                    409, f"rtmpStream: rtmpUrl/rtmpStream is already live in {where}", "rtmpStream"
                )
            # Until a list shows it, other startups and pushes see the stream as taken.
            placing = self.placements.add(
                {
                    "metadata": {"name": f"{call['metadata']['name']}/push"},
                    "spec": {**wanted, "callId": request.call_id},
                }
            )
            try:
                written = await asyncio.to_thread(
                    self.store.set_destinations,
                    call["metadata"]["name"],
                    call["metadata"]["resourceVersion"],
                    candidate["destinations"],
                )
            except BaseException:
                self.placements.finish(placing, created=False)
                raise
            self.placements.finish(placing, created=written)
            if written:
                log.info("REST API: call %s publishes to %s too", request.call_id, wanted["name"])
                (view,) = [
                    v
                    for v in push_views({**call, "spec": candidate})
                    if v["name"] == wanted["name"]
                ]
                return view
        raise ApiError(409, f"callId: call {request.call_id!r} kept changing; retry", "callId")

    async def push_find(self, body: Any) -> list[JSON]:
        """A call's destinations with what its bridge reports of each, keys never shown."""
        ref = parse_push_ref(body, required=False)
        return await _scrubbed(ref.scrubber, self._push_find(ref))

    async def _push_find(self, ref: PushRef) -> list[JSON]:
        call = await self._find_one(ref.call_id)
        views = push_views(call)
        if ref.name is None and ref.destination is None:
            return views
        index = _index_of(call, ref, self.settings.api_token)
        return [views[index + 1]]

    async def push_terminate(self, body: Any) -> JSON:
        """Remove a destination (not rtmpUrl/rtmpStream: that is the call's, for its life)."""
        ref = parse_push_ref(body)
        return await _scrubbed(ref.scrubber, self._push_terminate(ref))

    async def _push_terminate(self, ref: PushRef) -> JSON:
        async with self._push_lock(ref.call_id):
            return await self._push_terminate_turn(ref)

    async def _push_terminate_turn(self, ref: PushRef) -> JSON:
        for _ in range(PUSH_ATTEMPTS):
            call = await self._find_one(ref.call_id)
            index = _index_of(call, ref, self.settings.api_token)
            more = list((call.get("spec") or {}).get("destinations") or [])
            view = push_views(call)[index + 1]
            del more[index]
            written = await asyncio.to_thread(
                self.store.set_destinations,
                call["metadata"]["name"],
                call["metadata"]["resourceVersion"],
                more,
            )
            if written:
                log.info(
                    "REST API: call %s no longer publishes to %s",
                    ref.call_id,
                    view["name"] or view["url"],
                )
                return {**view, "terminating": True}
        raise ApiError(409, f"callId: call {ref.call_id!r} kept changing; retry", "callId")

    async def send_dtmf(self, body: Any) -> JSON:
        """Forward to the bridge process of the call's current pod, which sends the keys as RFC
        2833 events or SIP INFOs."""
        request = parse_send_dtmf(body)
        call = await self._find_one(request.call_id)
        status = read_status(call.get("status"))
        view = call_view(call)
        pod_name = status.pod_name
        if status.phase not in LIVE_PHASES or not pod_name or view["terminating"]:
            raise ApiError(
                409,
                f"callId: call {request.call_id!r} is {view['status']} "
                f"({status.phase or Phase.PENDING.value}), not {CallState.ESTABLISHED}",
                "callId",
            )
        pod = await asyncio.to_thread(self.store.get_pod, pod_name)
        obs = observe_pod(pod) if pod is not None else None
        url = None
        if obs is not None and obs.phase == "Running":
            url = livestatus.bridge_url(
                obs, self.settings.status_scheme, self.settings.bridge_status_port, "/dtmf"
            )
        if obs is None or url is None:
            raise ApiError(409, f"callId: the bridge pod of {request.call_id!r} is not running")
        answer = await asyncio.to_thread(
            self.post,
            url,
            {"dtmf": request.digits, "type": request.method.value},
            DTMF_TIMEOUT_SECONDS,
            obs.control_token,
        )
        if answer is None:
            raise ApiError(502, "the bridge pod did not answer")
        code, doc = answer
        if code == 401:  # not the caller's fault: the pod and this API disagree on its token
            raise ApiError(502, "the bridge pod refused this operator's control token")
        if code != 200:
            reason = str(doc.get("error") or f"the bridge answered {code}")
            raise ApiError(409 if code in (400, 409) else 502, reason, "dtmf")
        return {"callId": request.call_id, "dtmf": request.digits, "type": request.method.value}


def _live_call(calls: list[JSON], call_id: str) -> JSON:
    """The call a push is for: it must exist and not be over or hanging up."""
    # A call being created is not there yet for its caller (its startup has not answered).
    call = next(
        (
            c
            for c in calls
            if c.get("kind") == KIND
            and "resourceVersion" in c["metadata"]
            and call_id_of(c) == call_id
        ),
        None,
    )
    if call is None:
        raise ApiError(404, f"callId: no call {call_id!r}", "callId")
    status = read_status(call.get("status"))
    if not is_live(call) or call["metadata"].get("deletionTimestamp"):
        phase = (status.phase or Phase.PENDING).value
        raise ApiError(
            409, f"callId: call {call_id!r} is over ({phase}): it publishes nowhere", "callId"
        )
    return call


def _index_of(call: JSON, ref: PushRef, token: str) -> int:
    """The index in ``spec.destinations`` of the destination ``ref`` names (404 when none)."""
    index = destination_named(call, ref.name, ref.destination)
    if index is not None:
        return index
    # Not one of its destinations (destination_named), so its own stream if any.
    if ref.destination is not None and publishes_to(call, ref.destination, token):
        raise ApiError(
            409,
            "rtmpStream: that is the call's own rtmpUrl/rtmpStream, fixed for its life: "
            "terminate the call",
            "rtmpStream",
        )
    field = "name" if ref.name is not None else "rtmpStream"
    raise ApiError(404, f"{field}: call {ref.call_id!r} has no such destination", field)


def _new_name(listed: list[JSON]) -> str:
    """A name no destination of the list has (``push-`` and 8 hex digits)."""
    taken = {d.get("name") for d in listed if isinstance(d, dict)}
    while (name := f"push-{secrets.token_hex(4)}") in taken:
        pass
    return name


def _check_profile_is_met(spec: JSON, destination: Destination) -> None:
    """A push whose profile the call's stream breaks is a 400 naming ``profile``: the stream was
    fixed when the call was placed (the bridge refuses the same, ``check_live_destinations``).
    The call's stream is read from its resource as it is now; a spec the parser cannot read
    (an older version's resource) is left to the bridge."""
    try:
        placed = parse_resource_spec(spec)
    except SpecError:
        return
    try:
        check_live_destinations(placed, (destination,), "destinations")
    except SpecError as error:
        raise ApiError(400, f"profile: {error.problem}", "profile") from None


async def _scrubbed(scrubber: Scrubber, work: Awaitable[T]) -> T:
    """``work``'s answer, or its refusal with the body's secrets masked; any other failure is
    logged masked too and answered as the API's 500 (the middleware would log it as raised)."""
    try:
        return await work
    except ApiError as error:
        raise ApiError(
            error.status, scrubber.text(error.message), error.field, error.retry_after
        ) from None
    except Exception:
        log.error("REST API: a push failed: %s", scrubber.text(traceback.format_exc()))
        raise ApiError(500, "internal error (logged by the operator)") from None
