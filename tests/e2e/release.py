"""The chart installed on the real node, driven the way users drive it: helm and kubectl.

Resources are applied and deleted with the built kubectl (the user's path); the tests poll
statuses through the Python client only because spawning kubectl in a polling loop is slow.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes
import yaml
from kubernetes.client.exceptions import ApiException

from siprtmp_contract.pod import BRIDGE_USABLE_LABEL
from siprtmp_operator import GROUP
from siprtmp_operator.names import LABEL_OPERATOR_ROLE, ROLE_ACTIVE
from tests.e2e.node_harness import GATEWAY, Node
from tests.operator.api_client import ApiClient
from tests.operator.k8s_harness import (
    REPO,
    bin_dir,
    helm,
    plain,
    read_bridge,
    wait_explained,
    wait_for,
)
from tests.support.certificates import self_signed
from tests.support.nginx_rtmp import NginxRtmp
from tests.support.sipp import SippPeer

OPERATOR_NAMESPACE = "siprtmp-system"
RELEASE = "srb"
BRIDGE_LABEL = f"{GROUP}/bridge"
#: The images of scripts/build-images.sh, never pulled; policies shortened for the tests.
CHART_VALUES = (
    "image.repository=siprtmp/operator",
    "image.tag=dev",
    "image.pullPolicy=Never",
    "bridge.image.repository=siprtmp/bridge",
    "bridge.image.tag=dev",
    "bridge.image.pullPolicy=Never",
    "policies.retryBackoffSeconds=1",
    "policies.pollIntervalSeconds=1",
    "api.enabled=true",
    "api.token.existingSecret=srb-api-token",
    "bridge.rtmpsCaBundle.configMap=rtmps-ca",
    # Resources may ask for host networking with their node's ExternalIP (test_two_nodes.py).
    "networking.allowHostNetwork=true",
    "networking.allowNodeExternalIP=true",
)
#: The ConfigMap every namespace the tests make holds: the trust store of the bridge pods' RTMPS.
RTMPS_CA_CONFIG_MAP = "rtmps-ca"
#: The REST API's bearer token, from the Secret the chart's api.token value names.
API_TOKEN = "e2e-token-" + "0123456789abcdef"


def manifest(ns: str, name: str, peer: SippPeer, rtmp: NginxRtmp, **spec: Any) -> dict[str, Any]:
    """A SipRtmpBridge as a user writes it: no NAT settings, the pod's own address in SDP."""
    return {
        "apiVersion": "siprtmp.io/v1alpha1",
        "kind": "SipRtmpBridge",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "callee": peer.uri,
            "rtmpUrl": rtmp.url,
            "rtmpStream": name,
            "hasAudio": False,
            **spec,
        },
    }


class Release:
    """One `helm install` of the chart on ``node``, and what the tests do with it."""

    def __init__(self, node: Node, workdir: Path, values: tuple[str, ...] = ()) -> None:
        """``values``: chart values (``key=value``) set after CHART_VALUES."""
        assert node.cp.api is not None
        self.values = CHART_VALUES + values
        #: (cert, key) of the RTMPS test servers on the pods' gateway, and the pods' only CA.
        self.rtmps_certificate = self_signed(workdir, GATEWAY)
        self.node = node
        self.api = node.cp.api
        self.core = kubernetes.client.CoreV1Api(node.cp.api)
        self.custom = kubernetes.client.CustomObjectsApi(node.cp.api)
        self.install_seconds = 0.0

    def install(self) -> None:
        t0 = time.monotonic()
        self.kubectl("create", "namespace", OPERATOR_NAMESPACE)
        self._rtmps_ca(OPERATOR_NAMESPACE)  # calls made through the REST API run there
        self.kubectl(
            *("create", "secret", "generic", "srb-api-token", "-n", OPERATOR_NAMESPACE),
            f"--from-literal=token={API_TOKEN}",
        )
        sets = [a for kv in self.values for a in ("--set", kv)]
        helm(
            *("install", RELEASE, str(REPO / "helm"), "--namespace", OPERATOR_NAMESPACE),
            *("--create-namespace", "--kubeconfig", str(self.node.cp.admin_kubeconfig), *sets),
        )
        try:
            self.wait_operator_ready()
        except AssertionError:
            for ev in self.core.list_namespaced_event(OPERATOR_NAMESPACE).items:
                print(f"event {ev.reason}: {ev.message}")
            raise
        self.install_seconds = time.monotonic() - t0

    # kubectl ----------------------------------------------------------------------------
    def kubectl(self, *args: str, stdin: str | None = None, timeout: float = 120) -> str:
        argv = [str(bin_dir() / "kubectl"), "--kubeconfig", str(self.node.cp.admin_kubeconfig)]
        proc = subprocess.run(
            [*argv, *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed:\n{proc.stderr}")
        return proc.stdout

    def apply(self, *docs: dict[str, Any]) -> None:
        self.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(docs))

    def namespace(self, name: str, rtmps_ca: bool = True) -> str:
        self.kubectl("create", "namespace", name)
        if rtmps_ca:
            self._rtmps_ca(name)
        # Pods are admitted only once the namespace's default ServiceAccount exists.
        wait_for(
            f"default ServiceAccount in {name}",
            lambda: self.core.read_namespaced_service_account("default", name),
            timeout=30,
        )
        return name

    def _rtmps_ca(self, ns: str) -> None:
        """The chart names this ConfigMap for bridge pods: it must exist where they run."""
        cert, _ = self.rtmps_certificate
        self.kubectl(
            *("create", "configmap", RTMPS_CA_CONFIG_MAP, "-n", ns),
            f"--from-file=ca.crt={cert}",
        )

    def password_secret(self, ns: str, name: str, password: str) -> dict[str, str]:
        """A Secret holding the SIP password; returns the resource's reference to it."""
        self.kubectl(
            "create", "secret", "generic", name, "-n", ns, f"--from-literal=password={password}"
        )
        self.kubectl("label", "secret", name, "-n", ns, f"{BRIDGE_USABLE_LABEL}=true")
        return {"name": name, "key": "password"}

    # reading ----------------------------------------------------------------------------
    def bridge(self, ns: str, name: str) -> dict[str, Any] | None:
        return read_bridge(self.custom, ns, name)

    def status(self, ns: str, name: str) -> dict[str, Any]:
        return dict((self.bridge(ns, name) or {}).get("status") or {})

    def wait_bridge(
        self,
        ns: str,
        name: str,
        pred: Callable[[dict[str, Any]], bool],
        what: str,
        timeout: float = 60,
    ) -> dict[str, Any]:
        """Wait until the resource's status satisfies ``pred``; fail with what was seen."""

        def matching() -> dict[str, Any] | None:
            status = self.status(ns, name)
            return status if status and pred(status) else None

        return wait_explained(
            f"{ns}/{name}: {what}",
            matching,
            lambda: (
                f"last status: {json.dumps(self.status(ns, name), indent=1)}\n"
                f"pods: {[self._pod_summary(p) for p in self.bridge_pods(ns, name)]}\n"
                f"operator log tail:\n{self.operator_log()[-3000:]}"
            ),
            timeout=timeout,
            interval=0.3,
        )

    def wait_phase(self, ns: str, name: str, phase: str, timeout: float = 60) -> dict[str, Any]:
        return self.wait_bridge(ns, name, lambda s: s.get("phase") == phase, phase, timeout)

    def bridge_pods(self, ns: str, name: str) -> list[dict[str, Any]]:
        items = self.core.list_namespaced_pod(ns, label_selector=f"{BRIDGE_LABEL}={name}").items
        return [plain(self.api, p) for p in items]

    def pod_log(self, ns: str, pod: str) -> str:
        try:
            return str(self.core.read_namespaced_pod_log(pod, ns))
        except ApiException as exc:
            return f"(no log: {exc.reason})"

    def operator_pods(self) -> list[dict[str, Any]]:
        # Calls made through the REST API run their bridge pods in this namespace too.
        selector = f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component=operator"
        items = self.core.list_namespaced_pod(OPERATOR_NAMESPACE, label_selector=selector).items
        return [plain(self.api, p) for p in items]

    def ready_operator_pod(self) -> str | None:
        """The Ready operator pod holding the Lease: the one that reconciles and serves the
        REST API (it labels itself active; the chart runs a standby beside it)."""
        for pod in self.operator_pods():
            if pod["metadata"].get("deletionTimestamp"):
                continue
            labels = pod["metadata"].get("labels") or {}
            if labels.get(LABEL_OPERATOR_ROLE) != ROLE_ACTIVE or not pod["status"].get("podIP"):
                continue
            conditions = pod.get("status", {}).get("conditions") or []
            if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
                return str(pod["metadata"]["name"])
        return None

    def wait_operator_ready(self, timeout: float = 150) -> str:
        return wait_for("operator pod Ready", self.ready_operator_pod, timeout=timeout, interval=1)

    def api_client(self) -> ApiClient:
        """The REST API of the ready operator pod, at its pod IP (there is no kube-proxy here
        for the chart's Service), with the token from the Secret."""
        name = self.wait_operator_ready()
        (pod,) = [p for p in self.operator_pods() if p["metadata"]["name"] == name]
        return ApiClient(f"http://{pod['status']['podIP']}:8082", token=API_TOKEN)

    def operator_log(self) -> str:
        name = self.ready_operator_pod()
        return self.pod_log(OPERATOR_NAMESPACE, name) if name else "(no ready operator pod)"

    @staticmethod
    def _pod_summary(pod: dict[str, Any]) -> str:
        statuses = pod.get("status", {}).get("containerStatuses") or [{}]
        return f"{pod['metadata']['name']} {pod.get('status', {}).get('phase')} {statuses[0]}"
