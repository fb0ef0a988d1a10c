"""A real kubelet on this machine runs the project's images (the groundwork of issue 4)."""

from __future__ import annotations

import time
from typing import Any

import kubernetes
import yaml

from tests.e2e.node_harness import Node
from tests.e2e.release import Release
from tests.operator.k8s_harness import REPO, apply_objects, wait_for


def test_bridge_demo_pod_succeeds_on_the_real_node(node: Node) -> None:
    assert node.cp.api is not None
    core = kubernetes.client.CoreV1Api(node.cp.api)
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "bridge-demo", "namespace": "default"},
        "spec": {
            # Bound here: the test needs no scheduler.
            "nodeName": node.name,
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "containers": [
                {
                    "name": "bridge",
                    "image": "siprtmp/bridge:dev",
                    "imagePullPolicy": "Never",
                    "args": ["demo"],
                }
            ],
        },
    }
    t0 = time.monotonic()
    apply_objects(node.cp.api, [pod])

    def finished() -> str | None:
        p = core.read_namespaced_pod("bridge-demo", "default")
        phase = p.status.phase if p.status else None
        return phase if phase in ("Succeeded", "Failed") else None

    phase = wait_for("demo pod to finish", finished, timeout=120, interval=1)
    elapsed = time.monotonic() - t0
    log = core.read_namespaced_pod_log("bridge-demo", "default")
    print(f"\ndemo pod {phase} in {elapsed:.1f}s; log tail:\n{log[-1500:]}")
    assert phase == "Succeeded", log
    assert "demo: OK" in log


def test_chart_installs_and_the_operator_pod_becomes_ready(release: Release) -> None:
    """`helm install` of the real chart with the real image; the operator pod reaches the
    API server through the `kubernetes` Service address and turns Ready."""
    pods = [p for p in release.operator_pods() if not p["metadata"].get("deletionTimestamp")]
    chart = yaml.safe_load((REPO / "helm" / "values.yaml").read_text())
    assert len(pods) == chart["replicaCount"]  # the active replica and its standby
    assert {p["spec"]["containers"][0]["image"] for p in pods} == {"siprtmp/operator:dev"}
    # Ready: kubelet's readiness probe reached the active operator's /readyz over the pod network.
    active = release.wait_operator_ready(timeout=60)
    assert active in {p["metadata"]["name"] for p in pods}
    print(f"\noperator Ready {release.install_seconds:.1f}s after helm install")
