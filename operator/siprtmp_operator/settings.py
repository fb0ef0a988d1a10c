"""Every knob of the operator, read once from environment variables.

Each setting is declared once, as a field of ``Settings`` with its default, its documentation
and the chart value that sets it: the environment reader, the docs' settings table
(``settings_table``, kept in docs/operator.md by scripts/generate.py) and the chart checks in
the tests all follow from the fields, so the chart, the tests and the code agree on names and
defaults.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import Field, dataclass, field, fields
from typing import Any, get_type_hints

ENV_PREFIX = "SIPRTMP_"


def setting(
    default: Any,
    doc: str,
    *,
    chart: str | None = None,
    choices: tuple[str, ...] = (),
    env: str | None = None,
    words: bool = False,
    secret: bool = False,
) -> Any:
    """One documented setting: its default, what it does, the chart value that sets it.

    ``env`` names the variable when it is not the field's name upper-cased; ``choices`` limits a
    string; ``words`` splits a list on white space instead of commas; a ``secret`` is left out
    of the settings' repr (which logs may show) and of the docs' defaults. The docs' settings table
    and the chart checks are generated from this metadata (``settings_table``), so the field is
    the only place the setting is written down.
    """
    meta = {"doc": doc, "chart": chart, "choices": choices, "env": env, "words": words}
    meta["secret"] = secret
    if isinstance(default, dict):
        return field(default_factory=lambda: dict(default), metadata=meta, repr=not secret)
    return field(default=default, metadata=meta, repr=not secret)


@dataclass(frozen=True)
class Settings:
    """Operator configuration. Defaults suit a production cluster; tests shorten the timings."""

    # What the bridge pods run.
    bridge_image: str = setting(
        "sip-rtmp-bridge:latest", "the bridge pods' image", chart="bridge.image.repository, .tag"
    )
    bridge_image_pull_policy: str = setting(
        "IfNotPresent",
        "the bridge pods' image pull policy",
        chart="bridge.image.pullPolicy",
        choices=("Always", "IfNotPresent", "Never"),
    )
    bridge_service_account: str = setting(
        "",
        "service account of the bridge pods (its token is never mounted)",
        chart="bridge.serviceAccountName",
    )
    bridge_priority_class: str = setting(
        "", "priority class of the bridge pods", chart="bridge.priorityClassName"
    )
    bridge_cpu_request: str = setting(
        "50m", "CPU request of each bridge pod", chart="bridge.resources.requests.cpu"
    )
    bridge_memory_request: str = setting(
        "64Mi", "memory request of each bridge pod", chart="bridge.resources.requests.memory"
    )
    bridge_cpu_limit: str = setting(
        "1", "CPU limit of each bridge pod", chart="bridge.resources.limits.cpu"
    )
    bridge_memory_limit: str = setting(
        "512Mi", "memory limit of each bridge pod", chart="bridge.resources.limits.memory"
    )
    bridge_termination_grace_seconds: int = setting(
        20,
        "grace period of a bridge pod: time to send BYE and flush the stream",
        chart="bridge.terminationGracePeriodSeconds",
    )
    bridge_status_port: int = setting(
        8080, "the bridge's /status, /metrics and probes port", chart="bridge.statusPort"
    )
    bridge_run_as_user: int = setting(
        10001, "uid of the bridge container", chart="bridge.runAsUser"
    )
    bridge_extra_args: tuple[str, ...] = setting(
        (), "extra arguments of `sip-rtmp-bridge run`, split on white space", words=True
    )
    bridge_ca_bundle_config_map: str = setting(
        "",
        "a ConfigMap in the resource's namespace whose PEM bundle bridge pods verify RTMPS and "
        "SIP TLS servers against (mounted at `/etc/siprtmp/ca/ca.crt`, named by `SSL_CERT_FILE` "
        "and `SSL_CERT_DIR`, so it replaces the image's CAs). Mounted only in pods that verify "
        "an `rtmps://` or a SIP TLS server, as an optional volume: without the ConfigMap such a "
        "call fails naming the certificate; empty: the image's CAs",
        chart="bridge.rtmpsCaBundle.configMap",
    )
    bridge_ca_bundle_key: str = setting(
        "ca.crt", "the key of that ConfigMap holding the bundle", chart="bridge.rtmpsCaBundle.key"
    )
    default_video_mode: str = setting(
        "disabled",
        "`spec.video.mode` for resources that do not set it (docs/spec.md)",
        chart="bridge.video.mode",
        choices=("disabled", "passthrough"),
    )
    default_video_when_absent: str = setting(
        "audioOnly",
        "`spec.video.whenAbsent` for resources that do not set it",
        chart="bridge.video.whenAbsent",
        choices=("audioOnly", "slate"),
    )

    # Media networking defaults (per resource: spec.networking / spec.nat).
    network_mode: str = setting(
        "PodNetwork",
        "`spec.networking.mode` for resources that do not set it",
        chart="networking.mode",
        choices=("PodNetwork", "HostNetwork"),
    )
    allow_host_network: bool = setting(
        False,
        "whether bridge pods may use host networking (`networking.mode: HostNetwork`, and so "
        "NodeExternalIP): a host-network pod shares the node's network namespace, so only "
        "where an administrator says; other calls fail HostNetworkNotAllowed, and the REST API "
        "answers 400",
        chart="networking.allowHostNetwork",
    )
    public_address_source: str = setting(
        "None",
        "where a host-network bridge's public address comes from",
        chart="networking.publicAddressSource",
        choices=("None", "NodeExternalIP"),
    )
    stun_servers: tuple[str, ...] = setting(
        (), "STUN servers (host:port, comma-separated)", chart="networking.stunServers"
    )
    host_port_min: int = setting(
        30000, "lowest host port of the bridges' port windows", chart="networking.hostPorts.min"
    )
    host_port_max: int = setting(
        39999, "highest host port of the port windows", chart="networking.hostPorts.max"
    )
    host_port_window: int = setting(
        8,
        "ports per window (status, SIP, RTP, RTCP, video)",
        chart="networking.hostPorts.windowSize",
    )

    # Policies.
    default_max_retries: int = setting(
        2,
        "redials of a call that failed for a retryable reason",
        chart="policies.defaultMaxRetries",
    )
    retry_backoff_seconds: float = setting(
        10.0, "delay before the first redial (doubling)", chart="policies.retryBackoffSeconds"
    )
    retry_backoff_max_seconds: float = setting(
        300.0, "longest delay between redials", chart="policies.retryBackoffMaxSeconds"
    )
    default_ttl_seconds_after_finished: int = setting(
        -1,
        "seconds a finished resource is kept (-1: kept)",
        chart="policies.defaultTtlSecondsAfterFinished",
    )
    allowed_callee_domains: tuple[str, ...] = setting(
        (),
        "SIP hosts calls may go to (callee and outbound proxy; `*.example.com` for names below "
        "it; empty: any); other calls fail NotAllowed, and the REST API answers 403",
        chart="policies.allowedCalleeDomains",
    )
    allowed_rtmp_hosts: tuple[str, ...] = setting(
        (),
        "RTMP hosts calls may publish to (as above; empty: any)",
        chart="policies.allowedRtmpHosts",
    )
    require_bridge_usable_secrets: bool = setting(
        True,
        "whether a Secret a resource names (`connection.sipPasswordSecretRef`, "
        "`rtmpStreamSecretRef`, a destination's) must carry the label "
        '`siprtmp.io/bridge-usable: "true"`; the operator reads its metadata before each pod '
        "(RBAC `get` on Secrets), and a call naming one without it fails SecretNotUsable. Off: "
        "any Secret of the namespace may be named, and the operator has no Secret read right",
        chart="secrets.requireBridgeUsableLabel",
    )
    terminating_timeout_seconds: float = setting(
        90.0,
        "how long a deleted resource waits for its pods to stop before letting go (those still "
        "there are then force-deleted)",
    )
    pod_start_timeout_seconds: int = setting(
        180,
        "`spec.podStartTimeoutSeconds` for resources that do not set it: an attempt whose pod "
        "is not Running by then fails `PodStartTimeout`",
        chart="policies.podStartTimeoutSeconds",
    )
    bridge_disruption_budget: bool = setting(
        True,
        "give each bridge a PodDisruptionBudget (no voluntary eviction: a node drain waits for "
        "the call to end) and its pods the autoscalers' do-not-disrupt annotations",
        chart="bridge.disruptionBudget",
    )
    bridge_node_toleration_seconds: int = setting(
        30,
        "tolerationSeconds of the bridge pods for the `node.kubernetes.io/not-ready` and "
        "`unreachable` taints: how long a pod stays bound to a node that stopped reporting",
        chart="bridge.nodeLostTolerationSeconds",
    )

    # Reconciling.
    poll_interval_seconds: float = setting(
        2.0, "how often each bridge is reconciled", chart="policies.pollIntervalSeconds"
    )
    streaming_poll_interval_seconds: float = setting(
        4.0,
        "how often a `Streaming` bridge is reconciled (its /status read): what it reports shows "
        "in the status within this long; bridges in every other phase go by the poll interval",
        chart="policies.streamingPollIntervalSeconds",
    )
    status_timeout_seconds: float = setting(1.0, "timeout of one read of a bridge's /status")
    bridge_unreachable_seconds: float = setting(
        15.0,
        "a Running bridge whose /status has not answered for this long is shown unreachable "
        "(conditions `Streaming` and `CallEstablished` Unknown, `Ready` False, reason "
        "`BridgeUnreachable`)",
        chart="policies.bridgeUnreachableSeconds",
    )
    bridge_lost_seconds: float = setting(
        45.0,
        "a bridge silent for this long (or a pod still there this long after its grace period "
        "ended) is force-deleted and the attempt fails `BridgeLost` (redialled); longer than "
        "the bridge's liveness window (30 s), so the kubelet of a live node speaks first",
        chart="policies.bridgeLostSeconds",
    )
    kube_request_timeout_seconds: float = setting(
        10.0, "timeout of each Kubernetes API request the operator and its REST API make"
    )
    status_scheme: str = setting(
        "http", "scheme of the bridges' /status", choices=("http", "https")
    )
    watch_namespaces: tuple[str, ...] = setting(
        (), "namespaces watched (comma-separated; empty: all)", chart="watchNamespaces"
    )
    workers: int = setting(16, "reconcile steps run at once", chart="policies.workers")

    # Replicas: one active, the others standing by (leader.py).
    leader_election: bool = setting(
        False,
        "run only while holding the Lease below (reconciling and the REST API), so replicas "
        "stand by for one another; off: this process is the only operator",
        chart="leaderElection.enabled",
    )
    lease_namespace: str = setting(
        "default", "namespace of the Lease (and of the replicas' pods)", chart="the release's"
    )
    lease_name: str = setting(
        "sip-rtmp-operator", "name of the Lease", chart="the release's full name"
    )
    lease_duration_seconds: float = setting(
        8.0,
        "how long a standby waits after the holder's last renewal before taking the Lease; the "
        "holder stops once it has gone this long less one renewal interval without renewing",
        chart="leaderElection.leaseDurationSeconds",
    )
    lease_renew_seconds: float = setting(
        2.0,
        "how often the holder renews the Lease and a standby looks at it",
        chart="leaderElection.renewSeconds",
    )
    pod_name: str = setting(
        "",
        "this replica's pod: its name in the Lease, labelled `siprtmp.io/operator-role` active "
        "or standby; empty: the host name and process id, no label",
        chart="the pod's (downward API)",
    )

    # The operator's own endpoints.
    http_host: str = setting("0.0.0.0", "address of the metrics and probes server")
    http_port: int = setting(8081, "port of the metrics and probes server", chart="metrics.port")
    extra_labels: dict[str, str] = setting(
        {},
        "labels added to every bridge pod (key=value, comma-separated)",
        chart="bridge.extraLabels",
        env="EXTRA_POD_LABELS",
    )

    # The seed's REST API and the web console (api/), on a port of their own: the metrics port
    # is not meant to be exposed through an Ingress.
    api_enabled: bool = setting(False, "serve the REST API and the console", chart="api.enabled")
    api_host: str = setting("0.0.0.0", "address of the REST API")
    api_port: int = setting(8082, "port of the REST API", chart="api.port")
    api_namespace: str = setting(
        "default",
        "namespace of the calls the REST API starts (the chart: the release's)",
        chart="api.namespace",
    )
    api_token: str = setting(
        "",
        "the REST API's bearer token, at least 16 characters when the API is on",
        chart="api.token.existingSecret (a Secret)",
        secret=True,
    )
    api_cors_origins: tuple[str, ...] = setting(
        (), "origins allowed to call the REST API from a browser", chart="api.corsAllowedOrigins"
    )
    api_rate_limit_per_minute: int = setting(
        120,
        "REST API requests a client address may make a minute, after its burst (0: no limit); "
        "past it a 429 with Retry-After, before the token is checked",
        chart="api.rateLimit.perMinute",
    )
    api_rate_limit_burst: int = setting(
        30, "REST API requests a client address may make at once", chart="api.rateLimit.burst"
    )
    api_stream_keys_in_secrets: bool = setting(
        False,
        "store a startup's rtmpStream (the stream key) in the call's own Secret beside its SIP "
        "password, out of the resource (which holds rtmpStreamSecretRef and a digest); the "
        "call object then shows rtmpStream as ***. Off: the seed's answers, rtmpStream shown",
        chart="api.streamKeysInSecrets",
    )
    api_max_calls: int = setting(
        100,
        "calls the REST API keeps live at once in its namespace (0: no limit); past it a 429",
        chart="api.maxCalls",
    )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read settings from ``SIPRTMP_*`` variables; raise ValueError naming a bad one.

        An unset or empty variable leaves the default.
        """
        source = os.environ if env is None else env
        hints = get_type_hints(cls)
        values: dict[str, Any] = {}
        for f in fields(cls):
            name = env_name(f)
            raw = source.get(name, "").strip()
            if raw:
                values[f.name] = _parse(name, raw, hints[f.name], f.metadata)
        settings = cls(**values)
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
        if self.poll_interval_seconds <= 0 or self.streaming_poll_interval_seconds <= 0:
            raise ValueError("poll intervals must be positive")
        if not 0 < self.bridge_unreachable_seconds <= self.bridge_lost_seconds:
            raise ValueError("a bridge must be shown unreachable before it is declared lost")
        if self.kube_request_timeout_seconds <= 0:
            raise ValueError("the Kubernetes request timeout must be positive")
        if self.retry_backoff_seconds < 0 or self.retry_backoff_max_seconds < 0:
            raise ValueError("retry backoff must not be negative")
        if self.api_enabled and len(self.api_token) < 16:
            # An API that starts calls must not run open, nor behind a guessable token.
            raise ValueError(
                f"{ENV_PREFIX}API_TOKEN must hold at least 16 characters when the REST API is on"
            )
        if self.network_mode == "HostNetwork" and not self.allow_host_network:
            raise ValueError(
                f"{ENV_PREFIX}NETWORK_MODE is HostNetwork but host networking is not allowed "
                f"({ENV_PREFIX}ALLOW_HOST_NETWORK; the chart's networking.allowHostNetwork)"
            )
        if self.api_rate_limit_per_minute < 0 or self.api_max_calls < 0:
            raise ValueError("the REST API's limits must not be negative (0: no limit)")
        if self.api_rate_limit_per_minute and self.api_rate_limit_burst < 1:
            raise ValueError("the REST API's rate limit needs a burst of at least 1")
        if (
            self.lease_renew_seconds <= 0
            or self.lease_duration_seconds < 2 * self.lease_renew_seconds
        ):
            raise ValueError("the Lease must last at least two renewal intervals")
        if self.api_enabled and self.api_port == self.http_port:
            raise ValueError("the REST API port must differ from the metrics port")

    @property
    def host_port_slots(self) -> int:
        """How many non-overlapping port windows the host port range holds."""
        return (self.host_port_max - self.host_port_min + 1) // self.host_port_window


def env_name(f: Field[Any]) -> str:
    """The environment variable that sets field ``f``."""
    return ENV_PREFIX + (f.metadata.get("env") or f.name.upper())


def _parse(name: str, raw: str, kind: Any, meta: Mapping[str, Any]) -> Any:
    """``raw`` (stripped, non-empty) as the field's type; ValueError naming the variable."""
    if kind is bool:
        if raw.lower() in {"1", "true", "yes", "on"}:
            return True
        if raw.lower() in {"0", "false", "no", "off"}:
            return False
        raise ValueError(f"{name} must be a boolean, got {raw!r}")
    if kind in (int, float):
        try:
            return kind(raw)
        except ValueError as exc:
            article = "an integer" if kind is int else "a number"
            raise ValueError(f"{name} must be {article}, got {raw!r}") from exc
    items = raw.split() if meta["words"] else [p.strip() for p in raw.split(",") if p.strip()]
    if kind == tuple[str, ...]:
        return tuple(items)
    if kind == dict[str, str]:
        pairs = {}
        for item in items:
            key, sep, value = item.partition("=")
            if not sep:
                raise ValueError(f"{name} entries are key=value, got {item!r}")
            pairs[key.strip()] = value.strip()
        return pairs
    if meta["choices"] and raw not in meta["choices"]:
        raise ValueError(f"{name} must be one of {sorted(meta['choices'])}, got {raw!r}")
    return raw


NOTHING = "\u2013"  # an en dash: no default, no chart value


def _shown(value: Any) -> str:
    if value in ((), {}, ""):
        return NOTHING
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return f"`{value}`" if isinstance(value, str) else str(value)


def settings_table() -> str:
    """The docs' table of every setting: variable, default, chart value, meaning."""
    rows = ["| variable | default | chart value | meaning |", "|---|---|---|---|"]
    defaults = Settings()
    for f in fields(Settings):
        meta = f.metadata
        meaning = meta["doc"]
        if meta["choices"]:
            meaning += f" ({' or '.join(meta['choices'])})"
        chart = f"`{meta['chart']}`" if meta["chart"] else NOTHING
        shown = NOTHING if meta["secret"] else _shown(getattr(defaults, f.name))
        rows.append(f"| `{env_name(f)}` | {shown} | {chart} | {meaning} |")
    return "\n".join(rows) + "\n"
