"""The operator facing faults, against a real API server: a pod that never starts, a bridge it
cannot see, a pod its node never confirms gone, an eviction of a live call, an API server that
stops answering.

No kubelet runs here: every pod stays Pending unless a test writes it Running, which is exactly
what a pod with a missing Secret or an image that cannot be pulled does on a real node.
"""

from __future__ import annotations

import concurrent.futures
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import kubernetes
import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from tests.operator.api_client import ApiClient
from tests.operator.conftest import API_NAMESPACE, GROUP, PLURAL, TEST_ENV, VERSION
from tests.operator.k8s_harness import OperatorProcess, status_server, wait_for
from tests.operator.test_operator_k8s import cond, doc, spec
from tests.support.tcp_proxy import stalling_proxy

if TYPE_CHECKING:
    from tests.operator.conftest import Cluster

pytestmark = pytest.mark.k8s

LOST_SECONDS = float(TEST_ENV["SIPRTMP_BRIDGE_LOST_SECONDS"])


def gone(cluster: Cluster, ns: str, pod: str) -> bool:
    return cluster.pod(ns, pod) is None


def test_a_pod_that_never_starts_fails_pod_start_timeout_and_is_removed(
    cluster: Cluster, ns: str
) -> None:
    # No kubelet runs the pod: it stays Pending, all that matters to the deadline.
    cluster.create_bridge(ns, "never", spec(podStartTimeoutSeconds=2, maxRetries=1))
    cluster.wait_pod(ns, "never-bridge-0")
    # Waiting for room heals: the first timeout is redialled, the second is final.
    obj = cluster.wait_bridge(
        ns,
        "never",
        lambda o: (o["status"].get("lastFailure") or {}).get("reason") == "PodStartTimeout",
        "first attempt timed out",
    )
    assert obj["status"]["attempt"] == 1
    wait_for("the timed-out pod removed", lambda: gone(cluster, ns, "never-bridge-0"))
    cluster.wait_pod(ns, "never-bridge-1")
    obj = cluster.wait_phase(ns, "never", "Failed")
    assert obj["status"]["reason"] == "PodStartTimeout"
    assert "did not start within 2s" in obj["status"]["message"]
    assert "maxRetries (1) reached" in obj["status"]["message"]
    wait_for("the second pod removed", lambda: gone(cluster, ns, "never-bridge-1"))


def test_a_pod_whose_image_cannot_be_pulled_fails_without_a_redial(
    cluster: Cluster, ns: str
) -> None:
    cluster.create_bridge(ns, "nopull", spec(podStartTimeoutSeconds=6, maxRetries=2))
    cluster.wait_pod(ns, "nopull-bridge-0")
    message = 'Back-off pulling image "sip-rtmp-bridge:missing"'
    cluster.core.patch_namespaced_pod_status(
        "nopull-bridge-0",
        ns,
        {
            "status": {
                "containerStatuses": [
                    {
                        "name": "bridge",
                        "ready": False,
                        "restartCount": 0,
                        "image": "sip-rtmp-bridge:missing",
                        "imageID": "",
                        "state": {"waiting": {"reason": "ImagePullBackOff", "message": message}},
                    }
                ]
            }
        },
    )
    obj = cluster.wait_phase(ns, "nopull", "Failed")
    assert obj["status"]["reason"] == "PodStartTimeout"
    assert message in obj["status"]["message"]
    assert "ImagePullBackOff does not heal by redialling" in obj["status"]["message"]
    assert obj["status"]["attempt"] == 0
    wait_for("the pod removed", lambda: gone(cluster, ns, "nopull-bridge-0"))
    assert cluster.pod(ns, "nopull-bridge-1") is None


def test_a_pod_refused_by_pod_security_waits_then_fails_without_a_redial(
    cluster: Cluster, ns: str
) -> None:
    # Baseline refuses host networking and host ports: the API server never stores the pod.
    cluster.core.patch_namespace(
        ns, {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "baseline"}}}
    )
    cluster.create_bridge(
        ns,
        "refused",
        spec(networking={"mode": "HostNetwork"}, podStartTimeoutSeconds=3, maxRetries=2),
    )
    obj = cluster.wait_bridge(
        ns, "refused", lambda o: o["status"].get("reason") == "PodRejected", "PodRejected"
    )
    assert obj["status"]["phase"] == "Pending"
    assert "PodSecurity" in obj["status"]["message"]
    obj = cluster.wait_phase(ns, "refused", "Failed")
    assert obj["status"]["reason"] == "PodStartTimeout"
    assert "PodRejected does not heal by redialling" in obj["status"]["message"]
    assert cluster.pods(ns) == []


def test_a_bridge_whose_status_stops_answering_is_unreachable_then_redialled(
    cluster: Cluster, ns: str
) -> None:
    cluster.create_bridge(ns, "silent", spec(maxRetries=1))
    cluster.wait_pod(ns, "silent-bridge-0")
    # Bound to a node: without a kubelet to confirm it, only a delete with grace 0 removes it.
    cluster.bind_pod(ns, "silent-bridge-0", "node-lost")
    ip = cluster.loopback_ip()
    with status_server(ip, cluster.status_port) as bridge:
        bridge.doc = doc("Streaming", "ESTABLISHED", "PUBLISHING")
        cluster.set_pod_running(ns, "silent-bridge-0", ip)
        obj = cluster.wait_phase(ns, "silent", "Streaming")
        assert cond(obj, "Ready")["status"] == "True"
    silenced = time.monotonic()  # the status server is closed: nothing answers on its address
    obj = cluster.wait_bridge(
        ns, "silent", lambda o: cond(o, "Ready")["status"] == "False", "Ready False", timeout=20
    )
    unreachable_after = time.monotonic() - silenced
    assert obj["status"]["reason"] == "BridgeUnreachable"
    assert (
        obj["status"]["phase"] == "Streaming"
    )  # the last the bridge said; the conditions doubt it
    for type_ in ("CallEstablished", "Streaming"):
        assert (cond(obj, type_)["status"], cond(obj, type_)["reason"]) == (
            "Unknown",
            "BridgeUnreachable",
        )
    assert cluster.pod(ns, "silent-bridge-0") is not None
    wait_for("the silent pod force-deleted", lambda: gone(cluster, ns, "silent-bridge-0"), 40)
    deleted_after = time.monotonic() - silenced
    cluster.wait_pod(ns, "silent-bridge-1", timeout=30)
    redialled_after = time.monotonic() - silenced
    after = cluster.bridge(ns, "silent")
    assert after is not None
    assert after["status"]["lastFailure"] == {"reason": "BridgeLost", "pod": "silent-bridge-0"}
    # Timestamps are whole seconds: the clock may have started up to a second early.
    assert LOST_SECONDS - 1.5 <= deleted_after < LOST_SECONDS + 10
    print(
        f"silent bridge: unreachable after {unreachable_after:.1f}s, force-deleted after "
        f"{deleted_after:.1f}s, redial pod after {redialled_after:.1f}s"
    )


def test_a_pod_its_node_never_confirms_deleted_is_force_deleted_and_redialled(
    cluster: Cluster, ns: str
) -> None:
    cluster.create_bridge(ns, "stuck", spec(maxRetries=1))
    cluster.wait_pod(ns, "stuck-bridge-0")
    cluster.bind_pod(ns, "stuck-bridge-0", "node-gone")
    cluster.set_pod_running(ns, "stuck-bridge-0", cluster.loopback_ip())
    # What the taint manager does once the not-ready toleration ran out: a graceful delete,
    # which no kubelet will ever confirm.
    cluster.core.delete_namespaced_pod("stuck-bridge-0", ns, grace_period_seconds=1)
    cluster.wait_phase(ns, "stuck", "Terminating")
    assert cluster.pod(ns, "stuck-bridge-0") is not None
    wait_for("the pod force-deleted", lambda: gone(cluster, ns, "stuck-bridge-0"), 40)
    cluster.wait_pod(ns, "stuck-bridge-1", timeout=30)
    cluster.wait_bridge(
        ns,
        "stuck",
        lambda o: (o["status"].get("lastFailure") or {}).get("reason") == "BridgeLost",
        "BridgeLost",
    )


def test_a_live_calls_pod_may_not_be_evicted(cluster: Cluster, ns: str) -> None:
    cluster.create_bridge(ns, "kept", spec())
    pod = cluster.wait_pod(ns, "kept-bridge-0")
    annotations = pod["metadata"]["annotations"]
    assert annotations["karpenter.sh/do-not-disrupt"] == "true"
    assert annotations["cluster-autoscaler.kubernetes.io/safe-to-evict"] == "false"
    tolerations = {t["key"]: t for t in pod["spec"]["tolerations"]}
    assert tolerations["node.kubernetes.io/unreachable"]["tolerationSeconds"] == 30
    cluster.bind_pod(ns, "kept-bridge-0", "node-drained")
    cluster.set_pod_running(ns, "kept-bridge-0", cluster.loopback_ip())
    cluster.core.patch_namespaced_pod_status(
        "kept-bridge-0",
        ns,
        {"status": {"conditions": [{"type": "Ready", "status": "True"}]}},
    )
    policy = kubernetes.client.PolicyV1Api(cluster.api)

    def budget_holds() -> bool:
        pdb = policy.read_namespaced_pod_disruption_budget("kept-bridge", ns).status
        return bool(pdb and pdb.current_healthy == 1 and pdb.disruptions_allowed == 0)

    wait_for("the disruption budget counts the pod", budget_holds, timeout=30)
    eviction = kubernetes.client.V1Eviction(
        metadata=kubernetes.client.V1ObjectMeta(name="kept-bridge-0", namespace=ns)
    )
    with pytest.raises(ApiException) as refused:
        cluster.core.create_namespaced_pod_eviction("kept-bridge-0", ns, eviction)
    assert refused.value.status == 429
    assert "disruption budget" in str(refused.value.body)
    assert cluster.pod(ns, "kept-bridge-0") is not None


def _proxied_kubeconfig(source: Path, port: int, target: Path) -> Path:
    config = yaml.safe_load(source.read_text())
    config["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{port}"
    target.write_text(yaml.safe_dump(config))
    return target


def test_an_api_server_that_stops_answering_delays_no_call_for_ever(
    cluster: Cluster, tmp_path: Path
) -> None:
    """Behind a proxy that turns into a black hole: every REST call answers in bounded time
    (504 while it lasts, not one after the other), and once new connections work again, so does
    the operator: its reconcile writes status, its REST API places calls."""
    timeout = 2.0
    ns = cluster.namespace(f"stall-{uuid.uuid4().hex[:6]}")
    with stalling_proxy("127.0.0.1", cluster.cp.api_port) as proxy:
        kubeconfig = _proxied_kubeconfig(
            cluster.operator.kubeconfig, proxy.port, tmp_path / "proxied.kubeconfig"
        )
        env = cluster.operator.settings_env
        env["SIPRTMP_KUBE_REQUEST_TIMEOUT_SECONDS"] = str(timeout)
        mine = OperatorProcess(tmp_path, kubeconfig, env)
        cluster.operator.stop()  # one operator at a time reconciles the cluster
        try:
            mine.start()
            api = ApiClient(mine.api_url)
            cluster.create_bridge(ns, "during", spec())
            cluster.wait_pod(ns, "during-bridge-0")
            ip = cluster.loopback_ip()
            with status_server(ip, cluster.status_port) as bridge:
                bridge.doc = doc("Streaming", "ESTABLISHED", "PUBLISHING")
                cluster.set_pod_running(ns, "during-bridge-0", ip)
                cluster.wait_phase(ns, "during", "Streaming")

                proxy.stall()
                bridge.doc = doc("Reconnecting", "ESTABLISHED", "RECONNECTING")

                def startup(n: int) -> tuple[int, float]:
                    began = time.monotonic()
                    body = {
                        "callId": f"stalled-{n}-{uuid.uuid4().hex[:6]}",
                        "callee": "sip:1000@pbx.example.test",
                        "rtmpUrl": "rtmp://rtmp.example.test/live",
                        "rtmpStream": f"stalled-{n}-{uuid.uuid4().hex[:6]}",
                    }
                    answer = api.call("startup", body)
                    return answer.status, time.monotonic() - began

                with concurrent.futures.ThreadPoolExecutor(3) as pool:
                    answers = list(pool.map(startup, range(3)))
                # Each waited for its own request only (a lock held across the requests
                # would make the last wait for all three).
                for status, took in answers:
                    assert status == 504, answers
                    assert took < 2 * timeout + 1.5, answers
                assert api.call("find_all", method="GET").status == 504

                proxy.resume()
                obj = cluster.wait_phase(ns, "during", "Reconnecting", timeout=4 * timeout + 10)
                assert cond(obj, "Streaming")["reason"] == "Reconnecting"
            placed = api.call(
                "startup",
                {
                    "callId": f"after-{uuid.uuid4().hex[:6]}",
                    "callee": "sip:1000@pbx.example.test",
                    "rtmpUrl": "rtmp://rtmp.example.test/live",
                    "rtmpStream": f"after-{uuid.uuid4().hex[:6]}",
                },
            )
            assert placed.status == 200, placed.body
        finally:
            mine.stop()
            cluster.custom.delete_collection_namespaced_custom_object(
                GROUP, VERSION, API_NAMESPACE, PLURAL
            )
            cluster.operator.start()
