"""Every knob of the operator, read once from environment variables.

One module owns configuration so that the chart (which sets these variables), the tests (which
set them to fast values) and the code agree on names and defaults.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

ENV_PREFIX = "SIPRTMP_"


def _get(env: Mapping[str, str], name: str, default: str) -> str:
    return env.get(ENV_PREFIX + name, default)


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = _get(env, name, str(default)).strip()
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"{ENV_PREFIX}{name} must be an integer, got {raw!r}") from exc


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = _get(env, name, str(default)).strip()
    try:
        return float(raw)
    except ValueError as exc:
        raise ValueError(f"{ENV_PREFIX}{name} must be a number, got {raw!r}") from exc


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = _get(env, name, "true" if default else "false").strip().lower()
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"{ENV_PREFIX}{name} must be a boolean, got {raw!r}")


def _list(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in _get(env, name, "").split(",") if p.strip())


def _choice(env: Mapping[str, str], name: str, default: str, allowed: set[str]) -> str:
    value = _get(env, name, default).strip()
    if value not in allowed:
        raise ValueError(f"{ENV_PREFIX}{name} must be one of {sorted(allowed)}, got {value!r}")
    return value


@dataclass(frozen=True)
class Settings:
    """Operator configuration. Defaults suit a production cluster; tests shorten the timings."""

    # What the bridge pods run.
    bridge_image: str = "sip-rtmp-bridge:latest"
    bridge_image_pull_policy: str = "IfNotPresent"
    bridge_service_account: str = ""
    bridge_priority_class: str = ""
    bridge_cpu_request: str = "250m"
    bridge_memory_request: str = "128Mi"
    bridge_cpu_limit: str = "1"
    bridge_memory_limit: str = "512Mi"
    bridge_termination_grace_seconds: int = 20
    bridge_status_port: int = 8080
    bridge_run_as_user: int = 10001
    bridge_extra_args: tuple[str, ...] = ()
    # A ConfigMap (in each resource's namespace) whose key holds the CA bundle RTMPS servers'
    # certificates are verified against, instead of the image's; "" keeps the image's.
    bridge_ca_bundle_config_map: str = ""
    bridge_ca_bundle_key: str = "ca.crt"
    # spec.video for resources that do not set it (docs/spec.md, "video").
    default_video_mode: str = "disabled"
    default_video_when_absent: str = "audioOnly"

    # Media networking defaults (per resource: spec.networking / spec.nat).
    network_mode: str = "PodNetwork"
    public_address_source: str = "None"
    stun_servers: tuple[str, ...] = ()
    host_port_min: int = 30000
    host_port_max: int = 39999
    host_port_window: int = 8

    # Policies.
    default_max_retries: int = 2
    retry_backoff_seconds: float = 10.0
    retry_backoff_max_seconds: float = 300.0
    default_ttl_seconds_after_finished: int = -1
    terminating_timeout_seconds: float = 90.0

    # Reconciling.
    poll_interval_seconds: float = 2.0
    status_timeout_seconds: float = 1.0
    status_scheme: str = "http"
    watch_namespaces: tuple[str, ...] = ()
    workers: int = 16

    # The operator's own endpoints.
    http_host: str = "0.0.0.0"
    http_port: int = 8081
    extra_labels: dict[str, str] = field(default_factory=dict)

    # The seed's REST API and the web console (api/), on a port of their own: the metrics port
    # is not meant to be exposed through an Ingress.
    api_enabled: bool = False
    api_host: str = "0.0.0.0"
    api_port: int = 8082
    api_namespace: str = "default"
    api_token: str = field(default="", repr=False)
    api_cors_origins: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read settings from ``SIPRTMP_*`` variables; raise ValueError naming a bad one."""
        e = os.environ if env is None else env
        d = cls()
        labels: dict[str, str] = {}
        for item in _list(e, "EXTRA_POD_LABELS"):
            key, sep, value = item.partition("=")
            if not sep:
                raise ValueError(
                    f"{ENV_PREFIX}EXTRA_POD_LABELS entries are key=value, got {item!r}"
                )
            labels[key.strip()] = value.strip()
        settings = cls(
            bridge_image=_get(e, "BRIDGE_IMAGE", d.bridge_image),
            bridge_image_pull_policy=_choice(
                e,
                "BRIDGE_IMAGE_PULL_POLICY",
                d.bridge_image_pull_policy,
                {"Always", "IfNotPresent", "Never"},
            ),
            bridge_service_account=_get(e, "BRIDGE_SERVICE_ACCOUNT", d.bridge_service_account),
            bridge_priority_class=_get(e, "BRIDGE_PRIORITY_CLASS", d.bridge_priority_class),
            bridge_cpu_request=_get(e, "BRIDGE_CPU_REQUEST", d.bridge_cpu_request),
            bridge_memory_request=_get(e, "BRIDGE_MEMORY_REQUEST", d.bridge_memory_request),
            bridge_cpu_limit=_get(e, "BRIDGE_CPU_LIMIT", d.bridge_cpu_limit),
            bridge_memory_limit=_get(e, "BRIDGE_MEMORY_LIMIT", d.bridge_memory_limit),
            bridge_termination_grace_seconds=_int(
                e, "BRIDGE_TERMINATION_GRACE_SECONDS", d.bridge_termination_grace_seconds
            ),
            bridge_status_port=_int(e, "BRIDGE_STATUS_PORT", d.bridge_status_port),
            bridge_run_as_user=_int(e, "BRIDGE_RUN_AS_USER", d.bridge_run_as_user),
            bridge_extra_args=tuple(_get(e, "BRIDGE_EXTRA_ARGS", "").split()),
            bridge_ca_bundle_config_map=_get(e, "BRIDGE_CA_BUNDLE_CONFIG_MAP", "").strip(),
            bridge_ca_bundle_key=_get(e, "BRIDGE_CA_BUNDLE_KEY", d.bridge_ca_bundle_key).strip()
            or d.bridge_ca_bundle_key,
            network_mode=_choice(e, "NETWORK_MODE", d.network_mode, {"PodNetwork", "HostNetwork"}),
            public_address_source=_choice(
                e, "PUBLIC_ADDRESS_SOURCE", d.public_address_source, {"None", "NodeExternalIP"}
            ),
            stun_servers=_list(e, "STUN_SERVERS"),
            default_video_mode=_choice(
                e, "DEFAULT_VIDEO_MODE", d.default_video_mode, {"disabled", "passthrough"}
            ),
            default_video_when_absent=_choice(
                e,
                "DEFAULT_VIDEO_WHEN_ABSENT",
                d.default_video_when_absent,
                {"audioOnly", "slate"},
            ),
            host_port_min=_int(e, "HOST_PORT_MIN", d.host_port_min),
            host_port_max=_int(e, "HOST_PORT_MAX", d.host_port_max),
            host_port_window=_int(e, "HOST_PORT_WINDOW", d.host_port_window),
            default_max_retries=_int(e, "DEFAULT_MAX_RETRIES", d.default_max_retries),
            retry_backoff_seconds=_float(e, "RETRY_BACKOFF_SECONDS", d.retry_backoff_seconds),
            retry_backoff_max_seconds=_float(
                e, "RETRY_BACKOFF_MAX_SECONDS", d.retry_backoff_max_seconds
            ),
            default_ttl_seconds_after_finished=_int(
                e, "DEFAULT_TTL_SECONDS_AFTER_FINISHED", d.default_ttl_seconds_after_finished
            ),
            terminating_timeout_seconds=_float(
                e, "TERMINATING_TIMEOUT_SECONDS", d.terminating_timeout_seconds
            ),
            poll_interval_seconds=_float(e, "POLL_INTERVAL_SECONDS", d.poll_interval_seconds),
            status_timeout_seconds=_float(e, "STATUS_TIMEOUT_SECONDS", d.status_timeout_seconds),
            status_scheme=_choice(e, "STATUS_SCHEME", d.status_scheme, {"http", "https"}),
            watch_namespaces=_list(e, "WATCH_NAMESPACES"),
            workers=_int(e, "WORKERS", d.workers),
            http_host=_get(e, "HTTP_HOST", d.http_host),
            http_port=_int(e, "HTTP_PORT", d.http_port),
            extra_labels=labels,
            api_enabled=_bool(e, "API_ENABLED", d.api_enabled),
            api_host=_get(e, "API_HOST", d.api_host),
            api_port=_int(e, "API_PORT", d.api_port),
            api_namespace=_get(e, "API_NAMESPACE", d.api_namespace).strip() or d.api_namespace,
            api_token=_get(e, "API_TOKEN", "").strip(),
            api_cors_origins=_list(e, "API_CORS_ORIGINS"),
        )
        settings.validate()
        return settings

    def validate(self) -> None:
        """Refuse combinations that would make pods unschedulable or ports collide."""
        if not 1 <= self.bridge_status_port <= 65535:
            raise ValueError("bridge status port must be 1..65535")
        if self.host_port_window < 4:
            raise ValueError("host port window needs at least 4 ports (status, SIP, RTP, RTCP)")
        if self.host_port_min < 1024 or self.host_port_max > 65535:
            raise ValueError("host port range must lie in 1024..65535")
        if self.host_port_max - self.host_port_min + 1 < self.host_port_window:
            raise ValueError("host port range is smaller than one window")
        if self.workers < 1:
            raise ValueError("workers must be at least 1")
        if self.poll_interval_seconds <= 0:
            raise ValueError("poll interval must be positive")
        if self.retry_backoff_seconds < 0 or self.retry_backoff_max_seconds < 0:
            raise ValueError("retry backoff must not be negative")
        if self.api_enabled and len(self.api_token) < 16:
            # An API that starts calls must not run open, nor behind a guessable token.
            raise ValueError(
                f"{ENV_PREFIX}API_TOKEN must hold at least 16 characters when the REST API is on"
            )
        if self.api_enabled and self.api_port == self.http_port:
            raise ValueError("the REST API port must differ from the metrics port")

    @property
    def host_port_slots(self) -> int:
        """How many non-overlapping port windows the host port range holds."""
        return (self.host_port_max - self.host_port_min + 1) // self.host_port_window
