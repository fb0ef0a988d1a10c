"""The typed status of a SipRtmpBridge, and the one way it is read from and written to the API.

``read_status`` turns the resource's ``status`` (a dict as the API returns it) into a
``BridgeStatus``; ``render_status`` turns one back into that dict; ``status_patch`` is the merge
patch that takes the stored status to a new one. Every other module works on the typed value.

JSON keys are the camelCase of the field names (``pod_name`` → ``podName``), so each key is
written once, as a field. ``None`` and empty tuples are absent from the rendered document.
The ``call``, ``stream``, ``video`` and ``destinations`` blocks are the bridge's own status
document (its ``to_document``, minus nulls): typed here as far as the operator reads them,
the rest passes through as the bridge wrote it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from enum import Enum
from typing import Any, TypedDict, TypeVar, cast

from siprtmp_contract.states import Phase

from .networking import NetworkPlan

JSON = dict[str, Any]
T = TypeVar("T")


class CallBlock(TypedDict, total=False):
    """``status.call``: the bridge's call document (only the keys the operator reads)."""

    state: str
    sipStatusCode: int
    dtmfReceived: int
    dtmfLastDigits: str


class StreamBlock(TypedDict, total=False):
    """``status.stream``: the bridge's stream document; ``url`` is always the redacted one."""

    state: str
    url: str
    bytesSent: int


class DestinationBlock(TypedDict, total=False):
    """One of ``status.destinations``: the bridge's document of one destination; ``url`` is
    the redacted form of one the spec names."""

    id: int
    url: str
    name: str
    state: str
    bytesSent: int


class VideoBlock(TypedDict, total=False):
    """``status.video``: present only with spec.video, what was negotiated and what flows."""

    state: str


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _text(value: Any) -> str:
    return str(value)


def _integer(value: Any) -> int:
    return int(value)


_PHASES = frozenset(phase.value for phase in Phase)


def _phase(value: Any) -> Phase | None:
    return Phase(value) if value in _PHASES else None


def _block(value: Any) -> Any:
    return copy.deepcopy(dict(value)) if isinstance(value, Mapping) else None


def _blocks(value: Any) -> tuple[Any, ...]:
    return tuple(_block(item) for item in value if isinstance(item, Mapping)) if value else ()


def _one(cls: type[T]) -> Callable[[Any], T | None]:
    return lambda value: _read(cls, value) if isinstance(value, Mapping) else None


def _many(cls: type[T]) -> Callable[[Any], tuple[T, ...]]:
    return lambda value: tuple(
        _read(cls, item) for item in value or () if isinstance(item, Mapping)
    )


def _as(read: Callable[[Any], Any]) -> dict[str, Callable[[Any], Any]]:
    """Field metadata: how the field's value is read from its JSON key."""
    return {"read": read}


@dataclass(frozen=True)
class Networking:
    """``status.networking``: what the pod was placed with (networking.NetworkPlan)."""

    mode: str = field(metadata=_as(_text))
    port_slot: int | None = field(default=None, metadata=_as(_integer))
    status_port: int | None = field(default=None, metadata=_as(_integer))
    sip_port: int | None = field(default=None, metadata=_as(_integer))
    rtp_port_min: int | None = field(default=None, metadata=_as(_integer))
    rtp_port_max: int | None = field(default=None, metadata=_as(_integer))
    node_name: str | None = field(default=None, metadata=_as(_text))
    public_address: str | None = field(default=None, metadata=_as(_text))

    @classmethod
    def of(cls, net: NetworkPlan) -> Networking:
        window = net.window
        return cls(
            mode=net.mode,
            port_slot=window.slot if window else None,
            status_port=window.status_port if window else None,
            sip_port=window.sip_port if window else None,
            rtp_port_min=window.rtp_min if window else None,
            rtp_port_max=window.rtp_max if window else None,
            node_name=net.node_name or None,
            public_address=net.public_address if net.node_name else None,
        )


@dataclass(frozen=True)
class LastFailure:
    """``status.lastFailure``: why the previous attempt failed, kept across the redial."""

    reason: str = field(metadata=_as(_text))
    pod: str = field(metadata=_as(_text))
    exit_code: int | None = field(default=None, metadata=_as(_integer))


@dataclass(frozen=True)
class Condition:
    """One of ``status.conditions`` (CallEstablished, Streaming, Ready)."""

    type: str = field(metadata=_as(_text))
    status: str = field(metadata=_as(_text))
    reason: str = field(default="", metadata=_as(_text))
    message: str = field(default="", metadata=_as(_text))
    last_transition_time: str = field(default="", metadata=_as(_text))
    observed_generation: int = field(default=0, metadata=_as(_integer))


@dataclass(frozen=True)
class BridgeStatus:
    """The resource's ``status`` as docs/operator.md's "Status" describes it."""

    phase: Phase | None = field(default=None, metadata=_as(_phase))
    reason: str | None = field(default=None, metadata=_as(_text))
    message: str | None = field(default=None, metadata=_as(_text))
    observed_generation: int | None = field(default=None, metadata=_as(_integer))
    #: The operator's bookkeeping: a restart of the operator resumes from these.
    attempt: int = field(default=0, metadata=_as(_integer))
    retries: int = field(default=0, metadata=_as(_integer))
    pod_name: str | None = field(default=None, metadata=_as(_text))
    next_retry_at: str | None = field(default=None, metadata=_as(_text))
    last_failure: LastFailure | None = field(default=None, metadata=_as(_one(LastFailure)))
    networking: Networking | None = field(default=None, metadata=_as(_one(Networking)))
    exit_code: int | None = field(default=None, metadata=_as(_integer))
    started_at: str | None = field(default=None, metadata=_as(_text))
    pod_running_at: str | None = field(default=None, metadata=_as(_text))
    streaming_at: str | None = field(default=None, metadata=_as(_text))
    finished_at: str | None = field(default=None, metadata=_as(_text))
    #: When the current attempt began waiting for its pod (podStartTimeoutSeconds counts from
    #: it); cleared once the pod runs.
    pending_since: str | None = field(default=None, metadata=_as(_text))
    #: When the running bridge's /status first went unanswered; cleared once it answers.
    unreachable_since: str | None = field(default=None, metadata=_as(_text))
    #: What the bridge reported last (its live document, or its final one).
    call: CallBlock | None = field(default=None, metadata=_as(_block))
    stream: StreamBlock | None = field(default=None, metadata=_as(_block))
    video: VideoBlock | None = field(default=None, metadata=_as(_block))
    destinations: tuple[DestinationBlock, ...] = field(default=(), metadata=_as(_blocks))
    conditions: tuple[Condition, ...] = field(default=(), metadata=_as(_many(Condition)))

    @property
    def call_state(self) -> str:
        return str((self.call or {}).get("state") or "")

    @property
    def stream_state(self) -> str:
        return str((self.stream or {}).get("state") or "")


def _read(cls: type[T], doc: Mapping[str, Any]) -> T:
    values = {}
    for f in fields(cast(Any, cls)):
        raw = doc.get(_camel(f.name))
        if raw is not None:
            values[f.name] = f.metadata["read"](raw)
    return cls(**values)


def read_status(doc: Mapping[str, Any] | None) -> BridgeStatus:
    """The typed status of a resource's ``status`` (keys the model does not know are ignored)."""
    return _read(BridgeStatus, doc or {})


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {
            _camel(f.name): _plain(v)
            for f in fields(value)
            if (v := getattr(value, f.name)) is not None and v != ()
        }
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return copy.deepcopy(dict(value))
    return value


def render_status(status: BridgeStatus) -> JSON:
    """``status`` as the dict the resource stores."""
    rendered: JSON = _plain(status)
    return rendered


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


#: The top-level keys the model owns; a patch leaves every other key of the stored status alone.
STATUS_KEYS = frozenset(_camel(f.name) for f in fields(BridgeStatus))


def status_patch(stored: Mapping[str, Any] | None, new: BridgeStatus) -> JSON:
    """The merge patch taking the stored ``status`` to ``new`` (empty: nothing to write)."""
    owned = {k: v for k, v in (stored or {}).items() if k in STATUS_KEYS}
    return merge_patch(owned, render_status(new))
