"""Fixtures of the end-to-end tier on a real node (docs/e2e-node.md).

Enabled by SIPRTMP_E2E_NODE=1 (scripts/test.sh sets it): it needs root, the project's images, the
binaries of scripts/build-k8s.sh and scripts/build-node.sh; with the variable set it fails,
never skips, when something is missing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.e2e.node_harness import GATEWAY, Node, joined_node, missing_node_parts, started_node
from tests.e2e.release import Release


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if os.environ.get("SIPRTMP_E2E_NODE") == "1":
        return
    skip = pytest.mark.skip(reason="real-node tier: set SIPRTMP_E2E_NODE=1 (docs/e2e-node.md)")
    for item in items:
        if "tests/e2e/" in str(item.path).replace(os.sep, "/"):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def node() -> Iterator[Node]:
    missing = missing_node_parts()
    if missing:
        pytest.fail(f"missing for the real-node tier: {', '.join(missing)}")
    with started_node(os.environ.get("SIPRTMP_E2E_KEEP_DIR")) as started:
        yield started


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


@pytest.fixture(scope="session")
def second_node(node: Node, release: Release) -> Iterator[Node]:
    """A second node in its own network namespace, joined after the chart was installed (the
    operator's pods stay on the first). Only the tests of test_two_nodes.py, the tier's last
    file, ask for it: the tests before see one node."""
    with joined_node(node) as joined:
        yield joined
