"""Pure policies users expect.

Redial with bounded backoff (and which pods that never started are worth it), TTL after
finish, one live publisher per stream, calls only to the SIP and RTMP hosts an administrator
allowed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from siprtmp_contract.outcome import Reason
from siprtmp_contract.pod import BRIDGE_USABLE_LABEL, BRIDGE_USABLE_VALUE
from siprtmp_contract.spec import (
    SpecError,
    parse_resource_spec,
)
from siprtmp_contract.urls import (
    rtmp_port,
    sip_uri_host,
)

from .networking import effective_mode
from .settings import Settings
from .timeutil import parse


def max_retries(spec: Mapping[str, Any], settings: Settings) -> int:
    """The resource's maxRetries, else the operator's default."""
    value = spec.get("maxRetries")
    return int(value) if isinstance(value, int) else settings.default_max_retries


def backoff_seconds(retries_done: int, settings: Settings) -> float:
    """Exponential backoff before redial number ``retries_done + 1``, capped."""
    return float(
        min(settings.retry_backoff_seconds * (2**retries_done), settings.retry_backoff_max_seconds)
    )


@dataclass(frozen=True)
class RetryDecision:
    """Whether to redial after a failure, and when."""

    retry: bool
    delay_seconds: float = 0.0
    why: str = ""


def decide_retry(
    spec: Mapping[str, Any], reason: str, retries_done: int, settings: Settings
) -> RetryDecision:
    """Redial a retryable failure while fewer than maxRetries redials were made."""
    limit = max_retries(spec, settings)
    known = Reason.named(reason)
    if known is None or not known.retryable:
        return RetryDecision(False, why=f"{reason} is not retryable")
    if retries_done >= limit:
        return RetryDecision(False, why=f"maxRetries ({limit}) reached")
    return RetryDecision(True, backoff_seconds(retries_done, settings))


def pod_start_timeout(spec: Mapping[str, Any], settings: Settings) -> int:
    """The resource's podStartTimeoutSeconds, else the operator's default."""
    value = spec.get("podStartTimeoutSeconds")
    return value if isinstance(value, int) else settings.pod_start_timeout_seconds


#: What a pod that did not start waited for, when a new pod would wait for the same thing: its
#: image (not pulled, or misnamed), a Secret or key it mounts, the admission refusing it. A
#: redial helps only a pod that waited for room (a port window, a node's resources).
UNHEALING_START_CAUSES = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "ErrImageNeverPull",
        "CreateContainerConfigError",
        "CreateContainerError",
        Reason.POD_REJECTED.value,
        Reason.SECRET_NOT_USABLE.value,
    }
)


def start_heals(cause: str) -> bool:
    """Whether redialling a pod that did not start because of ``cause`` (its last pending
    reason) may help."""
    return cause not in UNHEALING_START_CAUSES


def ttl_seconds(spec: Mapping[str, Any], settings: Settings) -> int | None:
    """Seconds to keep a finished bridge, None for forever."""
    value = spec.get("ttlSecondsAfterFinished")
    if isinstance(value, int):
        return value
    d = settings.default_ttl_seconds_after_finished
    return d if d >= 0 else None


def ttl_remaining(
    spec: Mapping[str, Any], status: Mapping[str, Any], settings: Settings, now: datetime
) -> float | None:
    """Seconds until a finished bridge is deleted (<= 0: now), None when it is kept."""
    ttl = ttl_seconds(spec, settings)
    finished = parse(status.get("finishedAt"))
    if ttl is None or finished is None:
        return None
    return (finished + timedelta(seconds=ttl) - now).total_seconds()


def destinations_of(spec: Mapping[str, Any]) -> tuple[Mapping[str, Any], ...]:
    """Every destination of a spec: the spec itself (``rtmpUrl``/``rtmpStream``) first, then
    each of ``destinations``."""
    more = spec.get("destinations")
    listed = tuple(d for d in more if isinstance(d, Mapping)) if isinstance(more, list) else ()
    return (spec, *listed)


def rtmp_urls(spec: Mapping[str, Any]) -> tuple[str, ...]:
    """The ``rtmpUrl`` of every destination, the spec's own first."""
    return tuple(str(d.get("rtmpUrl") or "") for d in destinations_of(spec))


def stream_keys(spec: Mapping[str, Any]) -> tuple[str, ...]:
    """The ``stream_key`` of every destination (``DuplicateStream`` applies to each)."""
    return tuple(key for d in destinations_of(spec) if (key := stream_key(d)) is not None)


def stream_key(spec: Mapping[str, Any]) -> str | None:
    """Canonical ``scheme://host:port/app/stream`` so spelling variants collide as they should;
    None with ``rtmpStreamSecretRef``: the operator cannot read the key, so such a bridge is
    not checked for duplicates. ``spec`` may also be one of its ``destinations``."""
    if spec.get("rtmpStreamSecretRef"):
        return None
    url = str(spec.get("rtmpUrl") or "")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = rtmp_port(parts)
    host = (parts.hostname or "").lower()
    path = parts.path.strip("/")
    stream = str(spec.get("rtmpStream") or "").strip("/")
    return (
        f"{scheme}://{host}:{port}/{path}/{stream}"
        if path
        else f"{scheme}://{host}:{port}/{stream}"
    )


def secret_refs(spec: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """(field, Secret name) of every Secret a bridge of ``spec`` mounts: the SIP password's,
    the stream key's, each destination's key."""
    connection = spec.get("connection")
    password = connection.get("sipPasswordSecretRef") if isinstance(connection, Mapping) else None
    own = (
        ("connection.sipPasswordSecretRef", password),
        ("rtmpStreamSecretRef", spec.get("rtmpStreamSecretRef")),
    )
    return (*_named(own), *destination_key_refs(spec))


def destination_key_refs(spec: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """(field, Secret name) of each destination's ``rtmpStreamSecretRef``."""
    return _named(
        (f"destinations[{i}].rtmpStreamSecretRef", d.get("rtmpStreamSecretRef"))
        for i, d in enumerate(destinations_of(spec)[1:])
    )


def _named(refs: Iterable[tuple[str, Any]]) -> tuple[tuple[str, str], ...]:
    return tuple(
        (field, str(ref["name"]))
        for field, ref in refs
        if isinstance(ref, Mapping) and ref.get("name")
    )


@dataclass(frozen=True)
class SecretProblem:
    """Why a Secret the spec names may not be mounted; ``missing``: it does not exist (yet)."""

    field: str
    message: str
    missing: bool


def secret_problem(field: str, name: str, labels: Mapping[str, str] | None) -> SecretProblem | None:
    """What is wrong with Secret ``name`` named by ``field``, given its labels (None: it does not
    exist); None when a bridge may use it. The message names the field and the Secret, never
    anything of its content."""
    if labels is None:
        return SecretProblem(field, f"spec.{field}: Secret {name} does not exist", missing=True)
    if labels.get(BRIDGE_USABLE_LABEL) != BRIDGE_USABLE_VALUE:
        return SecretProblem(
            field,
            f"spec.{field}: Secret {name} is not labelled {BRIDGE_USABLE_LABEL}="
            f"{BRIDGE_USABLE_VALUE} (a bridge may use only Secrets that opt in)",
            missing=False,
        )
    return None


@dataclass(frozen=True)
class BridgeRef:
    """What the duplicate check needs to know about one bridge."""

    namespace: str
    name: str
    uid: str
    created: str
    phase: str | None
    placed: bool
    #: The stream is this bridge's own (``rtmpUrl``/``rtmpStream``, fixed for its call), not
    #: one of its ``destinations``.
    own_stream: bool = False

    @property
    def live(self) -> bool:
        return self.phase not in {"Succeeded", "Failed"}

    @property
    def order(self) -> tuple[bool, str, str, str]:
        # Bridges already placed win; then the older one; then by name for a stable answer.
        return (not self.placed, self.created, self.namespace, self.name)


def holder_shown(namespace: str, owner: BridgeRef) -> str:
    """How a DuplicateStream message names the bridge holding the stream: by name in the same
    namespace; a bridge elsewhere is not named (another tenant's resources are not ours to list)."""
    if owner.namespace != namespace:
        return "a bridge in another namespace"
    return f"bridge {owner.name}"


def duplicate_owner(
    me: BridgeRef, same_stream: Iterable[BridgeRef], *, adding: bool = False
) -> BridgeRef | None:
    """The live bridge that owns the stream before ``me``, if any (the seed answered 409).

    ``adding``: the stream is a destination added to ``me``'s running call. Then a live bridge
    whose own stream it is owns it whatever their order, since that bridge has published it
    from its start; between two ``destinations`` lists the order decides, as at creation."""
    rivals = [
        b
        for b in same_stream
        if b.uid != me.uid and b.live and (b.order < me.order or (adding and b.own_stream))
    ]
    return min(rivals, key=lambda b: b.order) if rivals else None


def host_allowed(host: str, patterns: Iterable[str]) -> bool:
    """``host`` is one of ``patterns``: a name or address as written, or ``*.domain`` for any
    name below that domain (not the domain itself). Case-insensitive."""
    host = host.lower().rstrip(".")
    for pattern in (p.lower().rstrip(".") for p in patterns):
        if host == pattern or (pattern.startswith("*.") and host.endswith(pattern[1:])):
            return True
    return False


def destination_refusal(
    spec: Mapping[str, Any], callee_domains: tuple[str, ...], rtmp_hosts: tuple[str, ...]
) -> tuple[str, str] | None:
    """The field and the reason a spec's call must not be placed, if an allowlist is set and a
    host the call would reach is not on it; None otherwise.

    The SIP side is every host the bridge sends a request to: the callee's (completed from
    ``connection.sipDomain``), the outbound proxy's, and the registrar's (``sipDomain``, when
    the call registers first: a registrar of the author's own would otherwise be answered with
    the password). A spec the bridge would refuse anyway is left to the bridge (it fails
    InvalidSpec, naming the field).
    """
    if not (callee_domains or rtmp_hosts):
        return None
    try:
        parsed = parse_resource_spec(spec)
    except SpecError:
        return None
    if callee_domains:
        connection = parsed.connection
        registrar = connection.sip_domain if connection.sip_register_required else None
        for field, uri in (
            ("callee", parsed.callee),
            ("connection.sipOutboundProxy", connection.sip_outbound_proxy),
            ("connection.sipDomain", f"sip:{registrar}" if registrar else None),
        ):
            if uri and not host_allowed(sip_uri_host(uri), callee_domains):
                return field, f"{sip_uri_host(uri)} is not an allowed SIP domain"
    for index, destination in enumerate(parsed.destinations):
        host = urlsplit(destination.rtmp_url).hostname or ""
        if rtmp_hosts and not host_allowed(host, rtmp_hosts):
            field = f"destinations[{index - 1}].rtmpUrl" if index else "rtmpUrl"
            return field, f"{host} is not an allowed RTMP host"
    return None


@dataclass(frozen=True)
class Refusal:
    """Why a call must not be placed: the resource's status reason and the spec field."""

    reason: Reason
    field: str
    message: str


def call_refusal(spec: Mapping[str, Any], settings: Settings) -> Refusal | None:
    """What the administrator's settings forbid of this call, checked before each pod (by the
    operator) and at startup (by the REST API): host networking where it is not allowed, hosts
    off the allowlists."""
    mode, _ = effective_mode(spec, settings)
    if mode == "HostNetwork" and not settings.allow_host_network:
        return Refusal(
            Reason.HOST_NETWORK_NOT_ALLOWED,
            "networking.mode",
            "HostNetwork is not allowed here (the operator's networking.allowHostNetwork)",
        )
    refused = destination_refusal(
        spec, settings.allowed_callee_domains, settings.allowed_rtmp_hosts
    )
    if refused is not None:
        field, why = refused
        return Refusal(Reason.NOT_ALLOWED, field, f"{why} (the operator's allowlist)")
    return None
