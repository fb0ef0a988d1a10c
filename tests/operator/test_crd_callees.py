"""The API server admits exactly the callees the bridge's parser takes (the CRD's pattern and
CEL rule are generated from the definition the parser matches with)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from kubernetes.client.exceptions import ApiException

from tests.unit.test_callee_agreement import BASE, CALLEES, DOMAIN, bridge_accepts

if TYPE_CHECKING:
    from tests.operator.conftest import Cluster

pytestmark = pytest.mark.k8s


def admitted(cluster: Cluster, ns: str, name: str, spec: dict[str, Any]) -> bool:
    """Whether the API server stores the resource (dry run: validated, never created)."""
    body = {
        "apiVersion": "siprtmp.io/v1alpha1",
        "kind": "SipRtmpBridge",
        "metadata": {"name": name},
        "spec": spec,
    }
    try:
        cluster.custom.create_namespaced_custom_object(
            "siprtmp.io", "v1alpha1", ns, "siprtmpbridges", body, dry_run="All"
        )
    except ApiException as error:
        assert error.status == 422, error.body
        return False
    return True


def test_the_api_server_admits_the_callees_the_bridge_takes(cluster: Cluster, ns: str) -> None:
    decided = []
    for index, (callee, _) in enumerate(CALLEES):
        for connection in (DOMAIN, {}):
            spec = {**BASE, **connection, "callee": callee}
            decided.append(
                (callee, bool(connection), admitted(cluster, ns, f"c{index}", spec), spec)
            )
    disagreements = [
        (callee, with_domain, api)
        for callee, with_domain, api, spec in decided
        if api != bridge_accepts(spec)
    ]
    assert not disagreements
    assert any(api for *_, api, _ in decided) and not all(api for *_, api, _ in decided)
