"""Fixtures of the end-to-end tier on a real node (docs/e2e-node.md).

Enabled by SIPRTMP_E2E_NODE=1 (scripts/test.sh sets it): it needs root, the project's images, the
binaries of scripts/build-k8s.sh and scripts/build-node.sh; with the variable set it fails,
never skips, when something is missing.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.node_harness import GATEWAY, Node, missing_node_parts
from tests.e2e.release import Release
from tests.operator.k8s_harness import ControlPlane, missing_binaries

IMAGES = ("siprtmp/bridge:dev", "siprtmp/operator:dev")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if os.environ.get("SIPRTMP_E2E_NODE") == "1":
        return
    skip = pytest.mark.skip(reason="real-node tier: set SIPRTMP_E2E_NODE=1 (docs/e2e-node.md)")
    for item in items:
        if "tests/e2e/" in str(item.path).replace(os.sep, "/"):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def node() -> Iterator[Node]:
    missing = missing_binaries() + missing_node_parts()
    if missing:
        pytest.fail(f"missing for the real-node tier: {', '.join(missing)}")
    keep = os.environ.get("SIPRTMP_E2E_KEEP_DIR")
    workdir = Path(keep or tempfile.mkdtemp(prefix="siprtmp-node-"))
    workdir.mkdir(parents=True, exist_ok=True)
    cp = ControlPlane(workdir)
    n = Node(cp, workdir)
    try:
        t0 = time.monotonic()
        cp.start()
        n.timings["control_plane_s"] = time.monotonic() - t0
        n.start(images=IMAGES)
        n.timings["total_start_s"] = time.monotonic() - t0
        print(f"\nreal node up in {workdir}: {n.timings}")
        yield n
    finally:
        n.stop()
        cp.stop()
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def peer_host(node: Node) -> str:
    """SIPp, Kamailio and nginx-rtmp listen on the host end of the pod network: the bridge pods
    reach them there, and nothing leaves the namespaces this run made."""
    return GATEWAY


@pytest.fixture(scope="session")
def release(node: Node, tmp_path_factory: pytest.TempPathFactory) -> Release:
    """The chart, installed once with `helm install`; its operator pod Ready."""
    node.start_workload_controllers()
    installed = Release(node, tmp_path_factory.mktemp("release"))
    installed.install()
    return installed
