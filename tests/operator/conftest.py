"""Fixtures of the operator tests: a real control plane (session) and per-test namespaces.

The `k8s` tier fails, never skips, when the binaries are missing: the test command builds
them first with scripts/build-k8s.sh.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import kubernetes
import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from siprtmp_contract.pod import BRIDGE_USABLE_LABEL, BRIDGE_USABLE_VALUE
from tests.operator.k8s_harness import (
    REPO,
    ControlPlane,
    LocalKubelet,
    OperatorProcess,
    apply_objects,
    deployment_env,
    free_port,
    helm,
    install_crd,
    missing_binaries,
    plain,
    read_bridge,
    service_account_kubeconfig,
    wait_explained,
    wait_for,
)

GROUP, VERSION, PLURAL = "siprtmp.io", "v1alpha1", "siprtmpbridges"
OPERATOR_NAMESPACE = "siprtmp-system"
RELEASE = "srb"
#: The REST API of the shared installation: its namespace for calls and its bearer token.
API_NAMESPACE = "siprtmp-calls"
API_TOKEN = "test-token-0123456789abcdef"
API_CORS_ORIGIN = "http://tools.example.test"
API_MAX_CALLS = 8
#: The real bridge, as LocalKubelet runs it behind a pod.
BRIDGE = [str(Path(sys.executable).parent / "sip-rtmp-bridge")]
#: Timings shortened for tests; everything else comes from the chart's Deployment.
TEST_ENV = {
    "SIPRTMP_POLL_INTERVAL_SECONDS": "0.3",
    "SIPRTMP_STREAMING_POLL_INTERVAL_SECONDS": "0.6",
    "SIPRTMP_RETRY_BACKOFF_SECONDS": "0.5",
    "SIPRTMP_RETRY_BACKOFF_MAX_SECONDS": "2",
    "SIPRTMP_BRIDGE_TERMINATION_GRACE_SECONDS": "7",
    "SIPRTMP_TERMINATING_TIMEOUT_SECONDS": "60",
    "SIPRTMP_STATUS_TIMEOUT_SECONDS": "0.5",
    # A silent bridge: unreachable after 3 s, force-deleted and redialled after 15 s.
    "SIPRTMP_BRIDGE_UNREACHABLE_SECONDS": "3",
    "SIPRTMP_BRIDGE_LOST_SECONDS": "15",
    "SIPRTMP_HOST_PORT_MIN": "40000",
    "SIPRTMP_HOST_PORT_MAX": "40031",
    # The chart takes it from a Secret (secretKeyRef), which a subprocess cannot read.
    "SIPRTMP_API_TOKEN": API_TOKEN,
    # Every test's requests come from 127.0.0.1 (the fuzz alone makes over a hundred); the
    # limit itself is tested on the real app in tests/unit/test_api_ratelimit.py.
    "SIPRTMP_API_RATE_LIMIT_PER_MINUTE": "0",
    "SIPRTMP_API_MAX_CALLS": str(API_MAX_CALLS),
}


#: The Secret most test specs name (``connection.sipPasswordSecretRef``), usable by bridges.
SIP_ACCOUNT = "sip-account"


class Cluster:
    """What a test needs: admin API access, the running operator, and pod-status driving."""

    def __init__(
        self,
        cp: ControlPlane,
        operator: OperatorProcess,
        status_port: int,
        chart_docs: list[dict[str, Any]],
    ) -> None:
        assert cp.api is not None
        self.cp = cp
        self.api = cp.api
        self.core = kubernetes.client.CoreV1Api(cp.api)
        self.custom = kubernetes.client.CustomObjectsApi(cp.api)
        self.operator = operator
        self.status_port = status_port
        self.chart_docs = chart_docs
        self._ips = itertools.count(2)

    def loopback_ip(self) -> str:
        """A fresh 127.0.0.N to use as a pod IP, so no two tests read each other's status."""
        n = next(self._ips)
        return f"127.0.{n // 250}.{n % 250 + 2}"

    def namespace(self, name: str) -> str:
        """Create namespace ``name`` with the SIP_ACCOUNT Secret the test specs name (a test of
        its value, or of a Secret bridges may not use, replaces it)."""
        self.core.create_namespace(
            kubernetes.client.V1Namespace(metadata=kubernetes.client.V1ObjectMeta(name=name))
        )
        # Pods are admitted only once the namespace's default ServiceAccount exists.
        wait_for(
            f"default ServiceAccount in {name}",
            lambda: self.core.read_namespaced_service_account("default", name),
            timeout=30,
        )
        self.secret(name, SIP_ACCOUNT, "password", "test-password")
        return name

    def secret(self, ns: str, name: str, key: str, value: str, *, usable: bool = True) -> None:
        """Create (or replace) Secret ``name``; ``usable``: labelled for bridges to mount."""
        labels = {BRIDGE_USABLE_LABEL: BRIDGE_USABLE_VALUE} if usable else None
        body = kubernetes.client.V1Secret(
            metadata=kubernetes.client.V1ObjectMeta(name=name, labels=labels),
            string_data={key: value},
        )
        try:
            self.core.create_namespaced_secret(ns, body)
        except ApiException as exc:
            if exc.status != 409:
                raise
            self.core.replace_namespaced_secret(name, ns, body)

    def handed_spec(self, ns: str, pod: dict[str, Any]) -> dict[str, Any]:
        """The spec the pod's bridge reads: the key of the Secret its ``spec`` volume mounts."""
        (volume,) = [v for v in pod["spec"]["volumes"] if v["name"] == "spec"]
        secret = self.core.read_namespaced_secret(volume["secret"]["secretName"], ns)
        handed: dict[str, Any] = json.loads(base64.b64decode((secret.data or {})["spec.json"]))
        return handed

    def create_bridge(self, ns: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "SipRtmpBridge",
            "metadata": {"name": name},
            "spec": spec,
        }
        return cast(
            dict[str, Any],
            self.custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, body),
        )

    def bridge(self, ns: str, name: str) -> dict[str, Any] | None:
        return read_bridge(self.custom, ns, name)

    def delete_bridge(self, ns: str, name: str) -> None:
        self.custom.delete_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name)

    def wait_bridge(
        self,
        ns: str,
        name: str,
        pred: Callable[[dict[str, Any]], bool],
        what: str,
        timeout: float = 30,
    ) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            self.operator_alive()
            obj = self.bridge(ns, name)
            return obj if obj is not None and pred(obj) else None

        return wait_explained(
            f"{ns}/{name}: {what}",
            check,
            lambda: (
                f"last status: {(self.bridge(ns, name) or {}).get('status')}\n"
                f"operator log tail:\n{self.operator.log_text()[-3000:]}"
            ),
            timeout=timeout,
        )

    def wait_phase(self, ns: str, name: str, phase: str, timeout: float = 30) -> dict[str, Any]:
        return self.wait_bridge(
            ns,
            name,
            lambda o: (o.get("status") or {}).get("phase") == phase,
            f"phase {phase}",
            timeout,
        )

    def operator_alive(self) -> None:
        proc = self.operator.proc
        if proc is not None and not proc.alive():
            raise AssertionError(f"operator died:\n{proc.tail()}")

    def pod(self, ns: str, name: str) -> dict[str, Any] | None:
        try:
            pod = self.core.read_namespaced_pod(name, ns)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return plain(self.api, pod)

    def wait_pod(self, ns: str, name: str, timeout: float = 30) -> dict[str, Any]:
        try:
            return wait_for(f"pod {ns}/{name}", lambda: self.pod(ns, name), timeout=timeout)
        except AssertionError as exc:
            bridge = name.rsplit("-bridge-", 1)[0]
            raise AssertionError(
                f"{exc}\nbridge status: {(self.bridge(ns, bridge) or {}).get('status')}\n"
                f"operator log tail:\n{self.operator.log_text()[-3000:]}"
            ) from None

    def pods(self, ns: str, selector: str = "") -> list[dict[str, Any]]:
        items = self.core.list_namespaced_pod(ns, label_selector=selector).items
        return [plain(self.api, p) for p in items]

    def set_pod_running(self, ns: str, name: str, ip: str) -> None:
        """What a kubelet would write once the bridge container started."""
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.core.patch_namespaced_pod_status(
            name,
            ns,
            {
                "status": {
                    "phase": "Running",
                    "podIP": ip,
                    "podIPs": [{"ip": ip}],
                    "hostIP": "127.0.0.1",
                    "startTime": now,
                    "containerStatuses": [
                        {
                            "name": "bridge",
                            "ready": True,
                            "restartCount": 0,
                            "started": True,
                            "image": "sip-rtmp-bridge:test",
                            "imageID": "",
                            "state": {"running": {"startedAt": now}},
                        }
                    ],
                }
            },
        )

    def set_pod_terminated(self, ns: str, name: str, exit_code: int, message: str) -> None:
        """What a kubelet writes when the bridge exits: phase, exit code, termination message."""
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.core.patch_namespaced_pod_status(
            name,
            ns,
            {
                "status": {
                    "phase": "Succeeded" if exit_code == 0 else "Failed",
                    "containerStatuses": [
                        {
                            "name": "bridge",
                            "ready": False,
                            "restartCount": 0,
                            "started": False,
                            "image": "sip-rtmp-bridge:test",
                            "imageID": "",
                            "state": {
                                "terminated": {
                                    "exitCode": exit_code,
                                    "reason": "Completed" if exit_code == 0 else "Error",
                                    "message": message,
                                    "startedAt": now,
                                    "finishedAt": now,
                                }
                            },
                        }
                    ],
                }
            },
        )

    def bind_pod(self, ns: str, name: str, node: str) -> None:
        """What the scheduler does: bind the pod to a node (makes deletion graceful)."""
        body = kubernetes.client.V1Binding(
            metadata=kubernetes.client.V1ObjectMeta(name=name),
            target=kubernetes.client.V1ObjectReference(api_version="v1", kind="Node", name=node),
        )
        self.core.create_namespaced_pod_binding(name, ns, body, _preload_content=False)

    def events(self, ns: str, name: str) -> list[dict[str, Any]]:
        items = self.core.list_namespaced_event(
            ns, field_selector=f"involvedObject.name={name}"
        ).items
        return [plain(self.api, e) for e in items]


def _require_binaries() -> None:
    missing = missing_binaries()
    if missing:
        pytest.fail(
            f"Kubernetes binaries not built: {', '.join(missing)}. "
            "Run scripts/build-k8s.sh first (the test command does).",
            pytrace=False,
        )


def render_chart(*sets: str, release: str = RELEASE) -> list[dict[str, Any]]:
    """``helm template`` of the chart into the operator namespace, as a list of objects."""
    args = [a for kv in sets for a in ("--set", kv)]
    out = helm("template", release, str(REPO / "helm"), "--namespace", OPERATOR_NAMESPACE, *args)
    return [d for d in yaml.safe_load_all(out) if d]


@contextlib.contextmanager
def running_cluster(
    work: Path,
    chart_docs: list[dict[str, Any]],
    extra_env: dict[str, str] | None = None,
    *,
    verbose: bool = True,
) -> Iterator[Cluster]:
    """Control plane + CRD + chart objects + operator under the chart's ServiceAccount (logging
    at debug level unless not ``verbose``)."""
    _require_binaries()
    cp = ControlPlane(work)
    operator: OperatorProcess | None = None
    try:
        cp.start()
        assert cp.api is not None
        install_crd(cp.api)
        core = kubernetes.client.CoreV1Api(cp.api)
        namespaces = {OPERATOR_NAMESPACE} | {
            d["metadata"]["namespace"] for d in chart_docs if d["metadata"].get("namespace")
        }
        for name in sorted(namespaces):
            core.create_namespace(
                kubernetes.client.V1Namespace(metadata=kubernetes.client.V1ObjectMeta(name=name))
            )
        apply_objects(cp.api, chart_docs)
        sa = next(d["metadata"]["name"] for d in chart_docs if d["kind"] == "ServiceAccount")
        sa_kubeconfig = service_account_kubeconfig(
            cp, OPERATOR_NAMESPACE, sa, work / "operator.kubeconfig"
        )
        status_port = free_port()
        env = {
            **deployment_env(chart_docs),
            **TEST_ENV,
            "SIPRTMP_BRIDGE_STATUS_PORT": str(status_port),
            **(extra_env or {}),
        }
        operator = OperatorProcess(work, sa_kubeconfig, env, verbose=verbose)
        operator.start()
        yield Cluster(cp, operator, status_port, chart_docs)
    finally:
        if operator is not None:
            operator.stop()
        cp.stop()


@pytest.fixture(scope="session")
def chart_docs() -> list[dict[str, Any]]:
    """The chart as installed in the tests: defaults plus host networking and node access for
    NodeExternalIP (the host-port windows are tested), and the REST API creating calls in
    API_NAMESPACE, callable from pages of API_CORS_ORIGIN."""
    _require_binaries()
    return render_chart(
        "networking.allowHostNetwork=true",
        "networking.allowNodeExternalIP=true",
        "api.enabled=true",
        f"api.namespace={API_NAMESPACE}",
        "api.token.existingSecret=srb-api-token",
        f"api.corsAllowedOrigins={{{API_CORS_ORIGIN}}}",
    )


@pytest.fixture(scope="session")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, chart_docs: list[dict[str, Any]]
) -> Iterator[Cluster]:
    """The cluster-wide installation shared by most tests."""
    with running_cluster(Path(tmp_path_factory.mktemp("k8s")), chart_docs) as c:
        yield c


_ns_counter = itertools.count(1)


@pytest.fixture
def ns(cluster: Cluster, request: pytest.FixtureRequest) -> str:
    """A fresh namespace per test."""
    base = request.node.name.split("[")[0].replace("_", "-").lower()[:40].strip("-")
    return cluster.namespace(f"{base}-{next(_ns_counter)}")


@pytest.fixture
def kubelets() -> Iterator[list[LocalKubelet]]:
    """The local kubelets a test started; stopped (their bridges killed) at its end."""
    started: list[LocalKubelet] = []
    yield started
    for kubelet in started:
        kubelet.stop()


def run_pod(
    cluster: Cluster, kubelets: list[LocalKubelet], tmp_path: Path, ns: str, pod_name: str
) -> LocalKubelet:
    """Wait for the operator's pod and run the real bridge behind it on a fresh 127.0.0.N."""
    pod = cluster.wait_pod(ns, pod_name)
    kubelet = LocalKubelet(
        cluster.core,
        ns,
        pod_name,
        ip=cluster.loopback_ip(),
        workdir=tmp_path / pod_name,
        command=BRIDGE,
    )
    kubelets.append(kubelet)
    kubelet.start(pod)
    return kubelet
