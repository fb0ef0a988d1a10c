"""Pure builders: a SipRtmpBridge (its spec, name, uid) → the bridge Pod and its spec Secret.

The pod holds no Kubernetes credentials and nothing it does not need: the spec arrives as a file
from a Secret the operator creates for the pod (owned by the resource, so the garbage collector
removes it), the SIP password as a file from the user's Secret, and the process runs non-root on
a read-only root filesystem with every capability dropped. No field of the pod shows the stream
key or the URL's credentials: whoever may read pods (the built-in ``view`` role) may not read
Secrets.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from siprtmp_contract.pod import (
    CA_BUNDLE_DIR,
    CA_BUNDLE_FILE,
    CA_BUNDLE_NAME,
    CONTROL_TOKEN_ENV,
    PASSWORD_FILE,
    SECRET_DIR,
    SLATE_DIR,
    SLATE_IMAGE_FILE,
    SPEC_DIR,
    SPEC_FILE,
    SPEC_KEY,
    STREAM_DIR,
    STREAM_FILE,
    STREAM_KEYS_DIR,
    TERMINATION_LOG,
)
from siprtmp_contract.profiles import DEFAULT_PROFILE
from siprtmp_contract.spec import spec_boolean
from siprtmp_contract.urls import (
    verifies_rtmps,
    verifies_sip_tls,
)

from . import API_VERSION, KIND
from .names import (
    ANNOTATION_PORT_SLOT,
    CONTAINER_NAME,
    DO_NOT_DISRUPT,
    LABEL_BRIDGE,
    LABEL_BRIDGE_UID,
    NODE_LOST_TAINTS,
    STATUS_PORT_NAME,
    disruption_budget_name,
    pod_labels,
    pod_name,
    spec_secret_name,
)
from .networking import NetworkPlan
from .policy import destination_key_refs
from .settings import Settings

JSON = dict[str, Any]


def bridge_spec(spec: Mapping[str, Any], uid: str, plan: NetworkPlan, settings: Settings) -> JSON:
    """The spec document handed to the bridge process: the resource's spec, completed.

    Adds the default ``callId`` (the resource UID), the operator's STUN servers when the
    resource names none, and the networking the operator decided (host port window, public
    address). Never contains a password: the resource cannot hold one.
    """
    doc: JSON = copy.deepcopy(dict(spec))
    doc.setdefault("callId", uid)
    nat: JSON = dict(doc.get("nat") or {})
    if settings.stun_servers and not nat.get("stunServers"):
        nat["stunServers"] = list(settings.stun_servers)
    if plan.window is not None:
        nat["rtpPortMin"] = plan.window.rtp_min
        nat["rtpPortMax"] = plan.window.rtp_max
    if plan.public_address and not nat.get("publicAddress"):
        nat["publicAddress"] = plan.public_address
    if nat:
        doc["nat"] = nat
    if "video" not in doc and settings.default_video_mode != "disabled":
        doc["video"] = {"mode": settings.default_video_mode}
        if doc.get("profile", DEFAULT_PROFILE) == DEFAULT_PROFILE:  # else the profile decides
            doc["video"]["whenAbsent"] = settings.default_video_when_absent
    networking: JSON = {"mode": plan.mode, "publicAddressSource": plan.public_address_source}
    if plan.window is not None:
        networking["sipLocalPort"] = plan.window.sip_port
        networking["statusPort"] = plan.window.status_port
    doc["networking"] = networking
    return doc


def _verifies_tls_servers(spec: Mapping[str, Any]) -> bool:
    """Whether the bridge will check an RTMPS or a SIP TLS server's certificate (the CA bundle
    is mounted only then: a missing ConfigMap must not hold up other calls)."""
    # As the bridge reads them; a value it refuses (None) fails the call before a mount matters.
    rtmp_verify = spec_boolean(spec.get("rtmpTlsVerify"), True) is not False
    connection = spec.get("connection") or {}
    sip_verify = spec_boolean(connection.get("sipTlsVerifyServer"), True) is not False
    return verifies_rtmps(str(spec.get("rtmpUrl") or ""), rtmp_verify) or verifies_sip_tls(
        str(connection.get("sipTransport") or "udp"), sip_verify
    )


def destination_key_secrets(spec: Mapping[str, Any]) -> tuple[str, ...]:
    """The Secrets ``destinations[].rtmpStreamSecretRef`` name, each once, sorted: the pod
    mounts each at ``STREAM_KEYS_DIR/<name>``. Fixed when the pod is created."""
    return tuple(sorted({name for _, name in destination_key_refs(spec)}))


def status_port(plan: NetworkPlan, settings: Settings) -> int:
    """Port the bridge serves its live status on (a window port under host networking)."""
    return plan.window.status_port if plan.window is not None else settings.bridge_status_port


def _ports(plan: NetworkPlan, settings: Settings, transport: str) -> list[JSON]:
    ports: list[JSON] = [
        {"name": STATUS_PORT_NAME, "containerPort": status_port(plan, settings), "protocol": "TCP"}
    ]
    if plan.window is None:
        return ports
    # Under hostNetwork every declared port is a host port: the scheduler's NodePorts check then
    # keeps two pods with overlapping windows off the same node.
    w = plan.window
    ports.append({"name": "sip-udp", "containerPort": w.sip_port, "protocol": "UDP"})
    if transport in {"tcp", "tls"}:
        ports.append({"name": "sip-tcp", "containerPort": w.sip_port, "protocol": "TCP"})
    for i, port in enumerate(range(w.rtp_min, w.rtp_max + 1)):
        ports.append({"name": f"rtp-{i}", "containerPort": port, "protocol": "UDP"})
    return ports


@dataclass(frozen=True)
class PodAttempt:
    """One attempt of one bridge, as both of its objects (the pod, its spec Secret) need it."""

    name: str
    namespace: str
    uid: str
    spec: Mapping[str, Any]
    attempt: int
    plan: NetworkPlan
    settings: Settings

    def parts(
        self,
    ) -> tuple[str, str, str, Mapping[str, Any], int, NetworkPlan, Settings]:
        return (
            self.name,
            self.namespace,
            self.uid,
            self.spec,
            self.attempt,
            self.plan,
            self.settings,
        )


def build_pod(call: PodAttempt, *, control_token: str, spec_secret: str) -> JSON:
    """The Pod manifest for ``call.attempt`` of bridge ``call.namespace/call.name``.

    ``control_token`` (new for each pod) is what the bridge asks of a POST /dtmf: the REST API
    reads it back from the pod, anything else reaching the pod's status port cannot press keys.
    ``spec_secret`` names the Secret ``spec_secret_manifest`` made for this attempt.
    """
    if not control_token:
        raise ValueError("a bridge pod needs a control token: without one its /dtmf is open")
    name, namespace, uid, spec, attempt, plan, settings = call.parts()
    connection = spec.get("connection") or {}
    secret_ref = connection.get("sipPasswordSecretRef")
    port = status_port(plan, settings)
    args = [
        "run",
        "--spec",
        SPEC_FILE,
        "--status-host",
        "0.0.0.0",
        "--status-port",
        str(port),
        "--termination-log",
        TERMINATION_LOG,
    ]
    stream_ref = spec.get("rtmpStreamSecretRef")
    if secret_ref:
        args += ["--sip-password-file", PASSWORD_FILE]
    if stream_ref:
        args += ["--rtmp-stream-file", STREAM_FILE]
    key_secrets = destination_key_secrets(spec)
    if key_secrets:
        args += ["--stream-keys-dir", STREAM_KEYS_DIR]
    slate_ref = ((spec.get("video") or {}).get("slate") or {}).get("imageConfigMapRef")
    if slate_ref:
        args += ["--slate-image-file", SLATE_IMAGE_FILE]
    args += list(settings.bridge_extra_args)

    mounts: list[JSON] = [
        {"name": "spec", "mountPath": SPEC_DIR, "readOnly": True},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    volumes: list[JSON] = [
        {
            "name": "spec",
            "secret": {
                "secretName": spec_secret,
                "defaultMode": 0o440,
                "items": [{"key": SPEC_KEY, "path": SPEC_KEY}],
            },
        },
        {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
    ]
    for volume, directory, ref, file in (
        ("sip-password", SECRET_DIR, secret_ref, PASSWORD_FILE),
        ("rtmp-stream", STREAM_DIR, stream_ref, STREAM_FILE),
    ):
        if ref:
            mounts.append({"name": volume, "mountPath": directory, "readOnly": True})
            volumes.append(
                {
                    "name": volume,
                    "secret": {
                        "secretName": ref["name"],
                        "defaultMode": 0o440,
                        "items": [{"key": ref["key"], "path": file.rsplit("/", 1)[1]}],
                    },
                }
            )
    for index, secret in enumerate(key_secrets):
        # Whole (no items): every key of it is there, for a destination added later too.
        volume = f"stream-keys-{index}"
        mounts.append(
            {"name": volume, "mountPath": f"{STREAM_KEYS_DIR}/{secret}", "readOnly": True}
        )
        volumes.append({"name": volume, "secret": {"secretName": secret, "defaultMode": 0o440}})
    if slate_ref:
        mounts.append({"name": "slate-image", "mountPath": SLATE_DIR, "readOnly": True})
        volumes.append(
            {
                "name": "slate-image",
                "configMap": {
                    "name": slate_ref["name"],
                    "items": [{"key": slate_ref["key"], "path": SLATE_IMAGE_FILE.rsplit("/")[-1]}],
                },
            }
        )

    env: list[JSON] = [
        {"name": "PYTHONUNBUFFERED", "value": "1"},
        {"name": "SIPRTMP_POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "SIPRTMP_HOST_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
        {"name": CONTROL_TOKEN_ENV, "value": control_token},
    ]
    if settings.bridge_ca_bundle_config_map and _verifies_tls_servers(spec):
        # The bridge's RTMPS and SIP TLS relays verify with Python's ssl, which reads these
        # two. The directory is the mount's own (no hashed links in it): the bundle replaces
        # the image's CAs rather than adding to them.
        mounts.append({"name": "ca-bundle", "mountPath": CA_BUNDLE_DIR, "readOnly": True})
        volumes.append(
            {
                "name": "ca-bundle",
                # Optional: without the ConfigMap the pod still starts, trusts nothing, and the
                # call fails at once naming the certificate (rather than waiting, unexplained).
                "configMap": {
                    "name": settings.bridge_ca_bundle_config_map,
                    "items": [{"key": settings.bridge_ca_bundle_key, "path": CA_BUNDLE_NAME}],
                    "optional": True,
                },
            }
        )
        env.append({"name": "SSL_CERT_FILE", "value": CA_BUNDLE_FILE})
        env.append({"name": "SSL_CERT_DIR", "value": CA_BUNDLE_DIR})

    annotations: dict[str, str] = dict(DO_NOT_DISRUPT) if settings.bridge_disruption_budget else {}
    if plan.window is not None:
        annotations[ANNOTATION_PORT_SLOT] = str(plan.window.slot)

    container: JSON = {
        "name": CONTAINER_NAME,
        "image": settings.bridge_image,
        "imagePullPolicy": settings.bridge_image_pull_policy,
        "command": ["sip-rtmp-bridge"],
        "args": args,
        "ports": _ports(plan, settings, str(connection.get("sipTransport", "udp"))),
        "env": env,
        "resources": {
            "requests": {
                "cpu": settings.bridge_cpu_request,
                "memory": settings.bridge_memory_request,
            },
            "limits": {"cpu": settings.bridge_cpu_limit, "memory": settings.bridge_memory_limit},
        },
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": settings.bridge_run_as_user,
            "runAsGroup": settings.bridge_run_as_user,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "privileged": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": mounts,
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": STATUS_PORT_NAME},
            "periodSeconds": 10,
            "failureThreshold": 3,
        },
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }

    pod_spec: JSON = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": settings.bridge_termination_grace_seconds,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": settings.bridge_run_as_user,
            "runAsGroup": settings.bridge_run_as_user,
            "fsGroup": settings.bridge_run_as_user,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": volumes,
        # Short, so a pod on a node that stopped reporting is deleted soon (the default is
        # 300 s); the operator force-deletes a silent bridge sooner still (reconcile).
        "tolerations": [
            {
                "key": taint,
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": settings.bridge_node_toleration_seconds,
            }
            for taint in NODE_LOST_TAINTS
        ],
        # Calls spread over nodes (a preference: never a reason to leave a pod Pending), so a
        # lost node drops as few of them as it can. The scheduler counts the bridge pods of the
        # pod's own namespace.
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {
                    "matchExpressions": [{"key": LABEL_BRIDGE, "operator": "Exists"}]
                },
            }
        ],
    }
    if settings.bridge_service_account:
        pod_spec["serviceAccountName"] = settings.bridge_service_account
    if settings.bridge_priority_class:
        pod_spec["priorityClassName"] = settings.bridge_priority_class
    if plan.mode == "HostNetwork":
        pod_spec["hostNetwork"] = True
        pod_spec["dnsPolicy"] = "ClusterFirstWithHostNet"
    if plan.node_name:
        # matchFields on metadata.name, as DaemonSets do: still scheduled (resources and host
        # ports are checked), only restricted to the node whose address is advertised.
        pod_spec["affinity"] = {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {
                            "matchFields": [
                                {
                                    "key": "metadata.name",
                                    "operator": "In",
                                    "values": [plan.node_name],
                                }
                            ]
                        }
                    ]
                }
            }
        }

    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod_name(name, attempt),
            "namespace": namespace,
            "labels": _labels(name, uid, attempt, settings),
            "annotations": annotations,
            "ownerReferences": [_owned_by(name, uid)],
        },
        "spec": pod_spec,
    }


def disruption_budget(name: str, namespace: str, uid: str) -> JSON:
    """The PodDisruptionBudget of bridge ``namespace/name``: none of its pods may be evicted
    (a drain waits for the call to end), unless it is not Ready (a pod that never started, or
    stuck, may go). Owned by the resource, so it goes with it; deleting a pod is unaffected."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {
            "name": disruption_budget_name(name),
            "namespace": namespace,
            "ownerReferences": [_owned_by(name, uid)],
        },
        "spec": {
            # minAvailable, not maxUnavailable: Kubernetes computes the latter from the pods'
            # controller's scale, which a SipRtmpBridge does not have.
            "minAvailable": 1,
            "selector": {"matchLabels": {LABEL_BRIDGE_UID: uid}},
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }


def _labels(name: str, uid: str, attempt: int, settings: Settings) -> dict[str, str]:
    return {**settings.extra_labels, **pod_labels(name, uid, attempt)}


def _owned_by(name: str, uid: str) -> JSON:
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def spec_secret_manifest(call: PodAttempt) -> JSON:
    """The Secret holding ``bridge_spec`` for ``call.attempt``, owned by the resource; its name
    (names.spec_secret_name) is what ``build_pod`` is given."""
    name, namespace, uid, spec, attempt, plan, settings = call.parts()
    content = json.dumps(
        bridge_spec(spec, uid, plan, settings), sort_keys=True, separators=(",", ":")
    )
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": spec_secret_name(pod_name(name, attempt), content),
            "namespace": namespace,
            "labels": _labels(name, uid, attempt, settings),
            "ownerReferences": [_owned_by(name, uid)],
        },
        "stringData": {SPEC_KEY: content},
    }
