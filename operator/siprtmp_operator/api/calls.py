"""The API's use cases: startup, terminate, find, find_all, send_dtmf over SipRtmpBridges.

Kubernetes calls block, so each runs in a thread, and none is made holding a lock: one that
hangs (until its timeout) delays only its own request. "Is this callId or stream taken, is there
room? then create" stays atomic within the API through ``Placements``: the checks see the calls
other startups are creating as well as those listed (the operator's own duplicate-stream check
still guards against bridges created around the API).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from siprtmp_contract.outcome import Reason
from siprtmp_contract.states import (
    CallState,
    Phase,
)

from .. import livestatus
from ..policy import call_refusal
from ..settings import Settings
from ..status import LIVE_PHASES, observe_pod
from ..statusmodel import read_status
from .bodies import parse_call_ref, parse_find, parse_send_dtmf, parse_startup
from .errors import ApiError
from .manifests import (
    bridge_manifest,
    call_id_of,
    call_view,
    is_live,
    matches,
    password_secret,
    publishes_to,
)
from .store import CallStore

JSON = dict[str, Any]
log = logging.getLogger(__name__)
#: A call the settings forbid: a body asking for what the API does not offer is a 400, a
#: destination off the allowlists a 403.
REFUSAL_STATUS = {Reason.HOST_NETWORK_NOT_ALLOWED: 400, Reason.NOT_ALLOWED: 403}
#: The bridge waits up to 5 s for its poll loop to take the digits; leave room for that.
DTMF_TIMEOUT_SECONDS = 8.0


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

    async def startup(self, body: Any) -> JSON:
        request = parse_startup(body)
        refusal = call_refusal(request.spec, self.settings)
        if refusal is not None:  # the operator would fail the call with refusal.reason
            status = REFUSAL_STATUS[refusal.reason]
            raise ApiError(status, f"{refusal.field}: {refusal.message}", refusal.field)
        manifest = bridge_manifest(self.store.namespace, request)
        listed_at = self.placements.created
        listed = await asyncio.to_thread(self.store.list_calls)
        # From here to ``add``, no await: no other startup checks or adds in between.
        calls = self.placements.with_pending(listed, listed_at)
        if any(call_id_of(c) == request.call_id for c in calls):
            raise ApiError(409, f"callId: call {request.call_id!r} exists", "callId")
        owner = next((c for c in calls if is_live(c) and publishes_to(c, request.spec)), None)
        if owner is not None:
            raise ApiError(
                409,
                f"rtmpStream: rtmpUrl/rtmpStream is already live in call {call_id_of(owner)!r}",
                "rtmpStream",
            )
        # Calls being hung up (terminated, their pods stopping) leave room at once.
        live = sum(1 for c in calls if is_live(c) and not c["metadata"].get("deletionTimestamp"))
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
        if request.password is not None:
            try:
                secret = password_secret(created, request.password)
                await asyncio.to_thread(self.store.create_secret, secret)
            except ApiError:
                # A call whose password is missing would only fail later, less clearly.
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
        views = [call_view(c) for c in await asyncio.to_thread(self.store.list_calls)]
        found = [v for v in views if matches(v, filters)]
        if not found:
            raise ApiError(404, "no call matches", None)
        return found

    async def find_all(self) -> list[JSON]:
        calls = await asyncio.to_thread(self.store.list_calls)
        return sorted((call_view(c) for c in calls), key=lambda v: str(v["createdAt"]))

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
