"""Secrets a bridge may use are opt-in: the operator reads a named Secret's metadata (its
label) before each pod, under the chart's own ServiceAccount, on the real API server."""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any

import kubernetes
import pytest

from siprtmp_contract.pod import BRIDGE_USABLE_LABEL
from siprtmp_operator.kube import PARTIAL_METADATA, Kube
from tests.operator.conftest import render_chart
from tests.operator.k8s_harness import rbac_refusals, wait_for
from tests.operator.test_operator_k8s import spec

if TYPE_CHECKING:
    from tests.operator.conftest import Cluster

pytestmark = pytest.mark.k8s

VALUE = "opt-in-SECRET-value-4471"


def reason_event(cluster: Cluster, ns: str, name: str, reason: str) -> dict[str, Any]:
    return wait_for(
        f"a {reason} Event of {name}",
        lambda: next((e for e in cluster.events(ns, name) if e["reason"] == reason), None),
    )


def test_a_secret_without_the_label_fails_the_call_before_any_pod(
    cluster: Cluster, ns: str
) -> None:
    cluster.secret(ns, "plain", "password", VALUE, usable=False)
    connection = {"sipDomain": "sip.example.test", "sipLogin": "u"}
    refs = {
        "sip": spec(
            connection={**connection, "sipPasswordSecretRef": {"name": "plain", "key": "password"}}
        ),
        "key": {
            **{k: v for k, v in spec().items() if k != "rtmpStream"},
            "rtmpStreamSecretRef": {"name": "plain", "key": "password"},
        },
    }
    fields = {"sip": "spec.connection.sipPasswordSecretRef", "key": "spec.rtmpStreamSecretRef"}
    for name, body in refs.items():
        cluster.create_bridge(ns, name, body)
    for name in refs:
        status = cluster.wait_phase(ns, name, "Failed")["status"]
        assert status["reason"] == "SecretNotUsable"
        assert status["message"].startswith(f"{fields[name]}: Secret plain is not labelled")
        assert f"{BRIDGE_USABLE_LABEL}=true" in status["message"]
        assert "no pod was created" in status["message"]
        assert status["attempt"] == 0 and not status.get("nextRetryAt")  # not redialled
        event = reason_event(cluster, ns, name, "SecretNotUsable")
        assert event["type"] == "Warning" and fields[name] in event["message"]
        assert cluster.pod(ns, f"{name}-bridge-0") is None
    everything = str(cluster.events(ns, "sip")) + str(cluster.bridge(ns, "sip"))
    assert VALUE not in everything


def test_a_labelled_secret_is_mounted_and_a_missing_one_waited_for(
    cluster: Cluster, ns: str
) -> None:
    ref = {"name": "account", "key": "password"}
    connection = {"sipDomain": "sip.example.test", "sipLogin": "u", "sipPasswordSecretRef": ref}
    cluster.secret(ns, "account", "password", VALUE)
    cluster.create_bridge(ns, "labelled", spec(connection=connection))
    pod = cluster.wait_pod(ns, "labelled-bridge-0")
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["sip-password"]["secret"]["secretName"] == "account"

    # Missing: the call waits for it (the REST API creates its Secret after the call), and
    # gets its pod once the Secret is there.
    late = {**connection, "sipPasswordSecretRef": {"name": "late", "key": "password"}}
    cluster.create_bridge(ns, "late", spec(connection=late))
    waiting = cluster.wait_bridge(
        ns,
        "late",
        lambda o: (o.get("status") or {}).get("reason") == "SecretNotUsable",
        "waiting for its Secret",
    )["status"]
    assert waiting["phase"] == "Pending"
    assert waiting["message"].startswith(
        "spec.connection.sipPasswordSecretRef: Secret late does not exist"
    )
    assert cluster.pod(ns, "late-bridge-0") is None
    cluster.secret(ns, "late", "password", VALUE)
    cluster.wait_pod(ns, "late-bridge-0")

    # Missing for good: PodStartTimeout says what it waited for, and no redial.
    never = {**connection, "sipPasswordSecretRef": {"name": "never", "key": "password"}}
    cluster.create_bridge(ns, "never", spec(connection=never, podStartTimeoutSeconds=2))
    status = cluster.wait_phase(ns, "never", "Failed")["status"]
    assert status["reason"] == "PodStartTimeout"
    told = "SecretNotUsable: spec.connection.sipPasswordSecretRef: Secret never"
    assert told in status["message"]
    assert "SecretNotUsable does not heal by redialling" in status["message"]
    assert status["attempt"] == 0
    assert cluster.pod(ns, "never-bridge-0") is None
    # Every Secret read went through the chart's RBAC.
    assert rbac_refusals(cluster.operator.log_text()) == []


def can_i(api: kubernetes.client.ApiClient, verb: str, namespace: str) -> bool:
    """``kubectl auth can-i VERB secrets -n NAMESPACE``, as the client ``api`` is."""
    review = kubernetes.client.V1SelfSubjectAccessReview(
        spec=kubernetes.client.V1SelfSubjectAccessReviewSpec(
            resource_attributes=kubernetes.client.V1ResourceAttributes(
                verb=verb, resource="secrets", namespace=namespace
            )
        )
    )
    answer = kubernetes.client.AuthorizationV1Api(api).create_self_subject_access_review(review)
    return bool(answer.status and answer.status.allowed)


def test_the_operator_may_get_secrets_and_do_nothing_else_with_them(cluster: Cluster) -> None:
    """Cluster-wide (the shared installation): get, in any namespace; never list, watch or
    change. The chart's own ServiceAccount asks."""
    operator = kubernetes.config.new_client_from_config(  # type: ignore[no-untyped-call]
        str(cluster.operator.kubeconfig)
    )
    assert can_i(operator, "get", "any") and can_i(operator, "create", "any")
    for verb in ("list", "watch", "update", "patch", "delete"):
        assert not can_i(operator, verb, "any"), verb


def test_the_operator_reads_a_secrets_labels_and_never_its_data(cluster: Cluster, ns: str) -> None:
    """As the chart's ServiceAccount: the labels come back, the value does not."""
    cluster.secret(ns, "cdn", "key", VALUE)
    operator = kubernetes.client.CoreV1Api(
        kubernetes.config.new_client_from_config(  # type: ignore[no-untyped-call]
            str(cluster.operator.kubeconfig)
        )
    )
    kube = Kube()
    kube.core = operator
    assert kube.secret_labels(ns, "cdn") == {BRIDGE_USABLE_LABEL: "true"}
    assert kube.secret_labels(ns, "absent") is None
    answer: Any = operator.read_namespaced_secret(  # not preloaded: the raw answer
        "cdn", ns, _headers={"Accept": PARTIAL_METADATA}, _preload_content=False
    )
    raw: bytes = answer.data
    assert json.loads(raw)["kind"] == "PartialObjectMetadata" and "data" not in json.loads(raw)
    assert VALUE.encode() not in raw and base64.b64encode(VALUE.encode()) not in raw


def test_the_check_turned_off_grants_no_secret_read() -> None:
    docs = render_chart("secrets.requireBridgeUsableLabel=false")
    (role,) = [d for d in docs if d["kind"] == "ClusterRole"]
    verbs = [r["verbs"] for r in role["rules"] if "secrets" in r["resources"]]
    assert verbs == [["create"]]
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    env = {
        e["name"]: e.get("value")
        for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["SIPRTMP_REQUIRE_BRIDGE_USABLE_SECRETS"] == "false"
