"""The API server admits exactly the resource specs the bridge's parser takes: every case of
tests/unit/test_spec_agreement.py (each field's generated and hand-picked values, each CEL rule's
documents), sent as dry-run creates with strict field validation (an unknown field is refused,
not pruned)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from kubernetes.client.exceptions import ApiException

from tests.unit.test_spec_agreement import CASES, parser_takes

if TYPE_CHECKING:
    from tests.operator.conftest import Cluster

pytestmark = pytest.mark.k8s


def admitted(cluster: Cluster, ns: str, spec: dict[str, Any]) -> bool:
    """Whether the API server would store the resource (validated, never created)."""
    body = {
        "apiVersion": "siprtmp.io/v1alpha1",
        "kind": "SipRtmpBridge",
        "metadata": {"name": "agreement"},
        "spec": spec,
    }
    try:
        cluster.custom.create_namespaced_custom_object(
            "siprtmp.io",
            "v1alpha1",
            ns,
            "siprtmpbridges",
            body,
            dry_run="All",
            field_validation="Strict",
        )
    except ApiException as error:
        # 422: the schema or a CEL rule; 400: an unknown field under strict validation.
        assert error.status in (400, 422), error.body
        return False
    return True


def test_the_api_server_admits_the_specs_the_parser_takes(cluster: Cluster, ns: str) -> None:
    verdicts = [(case, admitted(cluster, ns, spec), parser_takes(spec)) for case, spec in CASES]
    assert [(case, api) for case, api, parsed in verdicts if api != parsed] == []
    assert {api for _, api, _ in verdicts} == {True, False}
