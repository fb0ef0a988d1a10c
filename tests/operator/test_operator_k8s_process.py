"""The operator with a bridge *process* behind the pod: files, HTTP status, SIGTERM, exit codes.

LocalKubelet runs the pod's own container command and arguments locally (the spec and password
files materialised from the pod's annotation and the Secret). Here the command is the stub of
tests/operator/stub_bridge.py; pass the real ``sip-rtmp-bridge`` (with SIPp and nginx-rtmp
peers) to run the same scenarios end to end.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.operator.k8s_harness import LocalKubelet, wait_for

if TYPE_CHECKING:
    from tests.operator.conftest import Cluster

pytestmark = pytest.mark.k8s

STUB = [sys.executable, str(Path(__file__).with_name("stub_bridge.py"))]


@pytest.fixture
def kubelets(tmp_path: Path) -> Iterator[list[LocalKubelet]]:
    started: list[LocalKubelet] = []
    yield started
    for k in started:
        k.stop()


def run_pod(cluster: Cluster, kubelets: list[LocalKubelet], tmp_path: Path, ns: str,
            pod_name: str) -> LocalKubelet:
    pod = cluster.wait_pod(ns, pod_name)
    kubelet = LocalKubelet(cluster.core, ns, pod_name, ip=cluster.loopback_ip(),
                           workdir=tmp_path / pod_name, command=STUB)
    kubelets.append(kubelet)
    kubelet.start(pod)
    return kubelet


def bridge_spec(stream: str, **extra: Any) -> dict[str, Any]:
    return {"callee": "sip:room@sip.example.test", "rtmpUrl": "rtmp://rtmp.example.test/live",
            "rtmpStream": stream,
            "connection": {"sipPasswordSecretRef": {"name": "acct", "key": "password"}},
            **extra}


def test_process_streams_then_stops_on_delete(
    cluster: Cluster, ns: str, kubelets: list[LocalKubelet], tmp_path: Path
) -> None:
    cluster.secret(ns, "acct", "password", "s3cret!")
    cluster.create_bridge(ns, "proc-a", bridge_spec("proc-a"))
    kubelet = run_pod(cluster, kubelets, tmp_path, ns, "proc-a-bridge-0")
    obj = cluster.wait_phase(ns, "proc-a", "Streaming")
    # The process read the mounted password file (its length only ever appears).
    assert "password file 7 bytes" in obj["status"]["message"]
    assert obj["status"]["call"]["sipCallId"] == obj["metadata"]["uid"]
    wait_for("bytes flowing", lambda: (b := cluster.bridge(ns, "proc-a")) is not None
             and b["status"]["stream"]["bytesSent"] > 3200)
    cluster.delete_bridge(ns, "proc-a")
    # SIGTERM → the process hangs up, exits 0; the pod goes; the resource follows.
    wait_for("bridge gone", lambda: cluster.bridge(ns, "proc-a") is None, timeout=30)
    assert kubelet.exit_code == 0
    final = (kubelet.dir / "termination-log").read_text()
    assert '"reason": "Stopped"' in final and "s3cret" not in final


def test_process_max_duration_succeeds(
    cluster: Cluster, ns: str, kubelets: list[LocalKubelet], tmp_path: Path
) -> None:
    cluster.secret(ns, "acct", "password", "pw")
    cluster.create_bridge(ns, "proc-b", bridge_spec("proc-b", maxDurationSeconds=2))
    run_pod(cluster, kubelets, tmp_path, ns, "proc-b-bridge-0")
    cluster.wait_phase(ns, "proc-b", "Streaming")
    obj = cluster.wait_phase(ns, "proc-b", "Succeeded")
    assert obj["status"]["reason"] == "MaxDuration" and obj["status"]["exitCode"] == 0
    assert obj["status"]["call"]["state"] == "FINISH"


def test_process_busy_is_redialled(
    cluster: Cluster, ns: str, kubelets: list[LocalKubelet], tmp_path: Path
) -> None:
    cluster.secret(ns, "acct", "password", "pw")
    cluster.create_bridge(ns, "proc-c", bridge_spec(
        "proc-c", callee="sip:busy@sip.example.test", maxRetries=1))
    run_pod(cluster, kubelets, tmp_path, ns, "proc-c-bridge-0")
    run_pod(cluster, kubelets, tmp_path, ns, "proc-c-bridge-1")
    obj = cluster.wait_phase(ns, "proc-c", "Failed")
    st = obj["status"]
    assert (st["reason"], st["exitCode"], st["retries"]) == ("Busy", 4, 1)
    assert st["call"]["state"] == "BUSY"
