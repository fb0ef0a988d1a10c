"""Two operator replicas, one active (a Lease): killed, the active one is replaced in seconds.

Both replicas run as processes under the chart's ServiceAccount, with the chart's Lease
settings; each plays a pod of the Deployment (a Pod object the test creates, whose name the
process is given as the downward API would), so the role labels the REST API's Service selects
are checked on real objects. The shared operator stands down for these tests (it holds the same
Lease) and comes back at their end.
"""

from __future__ import annotations

import time
import urllib.error
from collections.abc import Iterator
from contextlib import ExitStack, closing
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from siprtmp_operator.names import LABEL_OPERATOR_ROLE
from tests.operator.api_client import ApiClient
from tests.operator.conftest import OPERATOR_NAMESPACE, Cluster
from tests.operator.k8s_harness import OperatorProcess, StatusServer, plain, wait_for
from tests.operator.test_operator_k8s import doc, spec

pytestmark = pytest.mark.k8s

LEASE = "srb-sip-rtmp-operator"
BRIDGES = 5


class Replicas:
    """Two operator processes, ``op-a`` and ``op-b``, as the chart's Deployment runs them."""

    def __init__(self, cluster: Cluster, tmp_path: Path) -> None:
        self.cluster = cluster
        self.coordination = kubernetes.client.CoordinationV1Api(cluster.api)
        env = cluster.operator.settings_env
        assert env["SIPRTMP_LEADER_ELECTION"] == "true"  # as the chart sets it
        self.ops: dict[str, OperatorProcess] = {}
        for name in ("op-a", "op-b"):
            self._pod(name)
            workdir = tmp_path / name
            workdir.mkdir()
            self.ops[name] = OperatorProcess(
                workdir, cluster.operator.kubeconfig, {**env, "SIPRTMP_POD_NAME": name}
            )
        self.service = next(
            d
            for d in cluster.chart_docs
            if d["kind"] == "Service" and d["metadata"]["name"].endswith("-api")
        )

    def _pod(self, name: str) -> None:
        """The replica's Pod object, labelled as the Deployment's template labels its pods."""
        deployment = next(d for d in self.cluster.chart_docs if d["kind"] == "Deployment")
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        self.cluster.core.create_namespaced_pod(
            OPERATOR_NAMESPACE,
            {  # type: ignore[arg-type]
                "metadata": {"name": name, "labels": labels},
                "spec": {"containers": [{"name": "operator", "image": "sip-rtmp-operator:test"}]},
            },
        )

    def lease(self) -> dict[str, Any]:
        lease = self.coordination.read_namespaced_lease(LEASE, OPERATOR_NAMESPACE)
        return plain(self.cluster.api, lease)

    def holder(self) -> str:
        return str(self.lease()["spec"].get("holderIdentity") or "")

    def role(self, pod: str) -> str | None:
        obj = self.cluster.pod(OPERATOR_NAMESPACE, pod) or {}
        return (obj.get("metadata", {}).get("labels") or {}).get(LABEL_OPERATOR_ROLE)

    def served_by(self) -> list[str]:
        """The pods the REST API's Service selects."""
        selector = ",".join(f"{k}={v}" for k, v in self.service["spec"]["selector"].items())
        pods = self.cluster.pods(OPERATOR_NAMESPACE, selector)
        return sorted(p["metadata"]["name"] for p in pods)

    def close(self) -> None:
        for op in self.ops.values():
            op.stop()
        for name in self.ops:
            self.cluster.core.delete_namespaced_pod(
                name, OPERATOR_NAMESPACE, grace_period_seconds=0
            )


@pytest.fixture
def replicas(cluster: Cluster, tmp_path: Path) -> Iterator[Replicas]:
    cluster.operator.stop()  # it holds the Lease the replicas elect with: it releases it
    made = Replicas(cluster, tmp_path)
    try:
        yield made
    finally:
        made.close()
        # Whoever holds the Lease now is gone: the shared operator takes it without waiting.
        made.coordination.delete_namespaced_lease(LEASE, OPERATOR_NAMESPACE)
        cluster.operator.start()
        assert made.holder() not in {"", *made.ops, "someone-else"}


def api_answers(op: OperatorProcess) -> int | None:
    """The REST API's answer to find_all on ``op``, None when nothing listens there."""
    try:
        return ApiClient(op.api_url).call("find_all").status
    except urllib.error.URLError:
        return None


def test_the_standby_takes_over_a_killed_operator_without_touching_the_calls(
    cluster: Cluster, ns: str, replicas: Replicas
) -> None:
    a, b = replicas.ops["op-a"], replicas.ops["op-b"]
    a.start()
    b.start()  # ready as a standby: the API server answers it
    assert replicas.holder() == "op-a"
    wait_for("role labels", lambda: replicas.role("op-b") == "standby")
    assert replicas.role("op-a") == "active" and replicas.served_by() == ["op-a"]
    assert api_answers(a) == 200 and api_answers(b) is None

    with ExitStack() as stack:
        servers: list[StatusServer] = []
        for i in range(BRIDGES):
            cluster.create_bridge(ns, f"call-{i}", spec())
            cluster.wait_pod(ns, f"call-{i}-bridge-0")
            ip = cluster.loopback_ip()
            server = stack.enter_context(closing(StatusServer(ip, cluster.status_port)))
            server.doc = doc("Streaming", "ESTABLISHED", "PUBLISHING", bytes_sent=1000)
            cluster.set_pod_running(ns, f"call-{i}-bridge-0", ip)
            servers.append(server)
        for i in range(BRIDGES):
            cluster.wait_phase(ns, f"call-{i}", "Streaming")

        assert a.proc is not None
        a.proc.popen.kill()  # SIGKILL: no release, the Lease must expire
        killed = time.monotonic()
        for server in servers:
            server.doc = doc("Streaming", "ESTABLISHED", "PUBLISHING", bytes_sent=2000)

        wait_for(
            "the standby reconciling",
            lambda: all(_sent(cluster, ns, i) == 2000 for i in range(BRIDGES)),
            timeout=40,
            interval=0.1,
        )
        failover = time.monotonic() - killed
        print(
            f"\nfailover (SIGKILL → every bridge's status written by the standby): {failover:.1f}s"
        )
        assert replicas.holder() == "op-b"
        # Seconds, not a Deployment's reschedule: the Lease's 8 s plus a renewal and start-up.
        assert failover < 20
        assert replicas.role("op-b") == "active" and replicas.role("op-a") == "standby"
        assert replicas.served_by() == ["op-b"] and api_answers(b) == 200

        # The calls did not notice: same attempt, no redial, no second pod.
        for i in range(BRIDGES):
            st = (cluster.bridge(ns, f"call-{i}") or {})["status"]
            assert (st["phase"], st["attempt"], st["retries"]) == ("Streaming", 0, 0)
            assert st["podName"] == f"call-{i}-bridge-0"
        pods = sorted(p["metadata"]["name"] for p in cluster.pods(ns))
        assert pods == sorted(f"call-{i}-bridge-0" for i in range(BRIDGES))
        assert "siprtmp_operator_pods_created_total 0.0" in b.metrics()

        # The killed replica comes back (its container restarted) as the standby; a graceful
        # stop of the active one hands over at the standby's next look, not the Lease's expiry.
        a.start()
        assert replicas.holder() == "op-b" and api_answers(a) is None
        for server in servers:
            server.doc = doc("Streaming", "ESTABLISHED", "PUBLISHING", bytes_sent=3000)
        wait_for(
            "op-b tracking", lambda: all(_sent(cluster, ns, i) == 3000 for i in range(BRIDGES))
        )
        b.stop()
        stopped = time.monotonic()
        for server in servers:
            server.doc = doc("Streaming", "ESTABLISHED", "PUBLISHING", bytes_sent=4000)
        wait_for(
            "op-a reconciling",
            lambda: all(_sent(cluster, ns, i) == 4000 for i in range(BRIDGES)),
            timeout=30,
        )
        handover = time.monotonic() - stopped
        print(f"handover (SIGTERM → every status written by the other replica): {handover:.1f}s")
        assert replicas.holder() == "op-a" and replicas.served_by() == ["op-a"]
        assert handover < 8  # within the Lease's duration: it was released, not left to expire
        assert sorted(p["metadata"]["name"] for p in cluster.pods(ns)) == pods


def test_a_replica_that_loses_its_lease_stops_at_once(cluster: Cluster, replicas: Replicas) -> None:
    a = replicas.ops["op-a"]
    a.start()
    lease = replicas.lease()
    assert lease["spec"]["holderIdentity"] == "op-a"
    lease["spec"]["holderIdentity"] = "someone-else"
    replicas.coordination.replace_namespaced_lease(LEASE, OPERATOR_NAMESPACE, lease)  # type: ignore[arg-type]
    assert a.proc is not None
    code = a.proc.popen.wait(10)  # its next renewal finds the Lease taken
    assert code == 3
    assert "lost the Lease" in a.log_text()


def _sent(cluster: Cluster, ns: str, i: int) -> Any:
    return (
        ((cluster.bridge(ns, f"call-{i}") or {}).get("status") or {})
        .get("stream", {})
        .get("bytesSent")
    )
