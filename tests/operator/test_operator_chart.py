"""The Helm chart: lint, render variants, schema, and a namespaced install that works.

Needs the helm binary built by scripts/build-k8s.sh, hence the `k8s` marker.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import kubernetes
import pytest
from kubernetes.client.exceptions import ApiException

from siprtmp_operator.settings import Settings
from tests.operator.conftest import render_chart, running_cluster
from tests.operator.k8s_harness import REPO, deployment_env, helm, rbac_refusals, wait_for
from tests.operator.test_operator_builders import SPEC, make_pod
from tests.operator.test_operator_secrets import can_i

if TYPE_CHECKING:
    from tests.operator.conftest import Cluster

pytestmark = pytest.mark.k8s

#: The value letting an ingress controller's namespace reach the REST API through the policy.
INGRESS_CONTROLLER = (
    "networkPolicy.apiFrom[0].namespaceSelector.matchLabels.kubernetes\\.io/metadata\\.name"
)


def kinds(docs: list[dict[str, Any]]) -> list[str]:
    return sorted(f"{d['kind']}/{d['metadata'].get('namespace', '-')}" for d in docs)


def test_helm_lint_strict() -> None:
    out = helm("lint", "--strict", str(REPO / "helm"))
    assert "0 chart(s) failed" in out
    out = helm(
        "lint",
        "--strict",
        str(REPO / "helm"),
        "--set",
        "watchNamespaces={a,b}",
        "--set",
        "networking.mode=HostNetwork",
        "--set",
        "networking.allowHostNetwork=true",
        "--set",
        "metrics.podMonitor.enabled=true",
    )
    assert "0 chart(s) failed" in out


def test_default_render_is_cluster_wide_and_minimal() -> None:
    docs = render_chart()
    assert kinds(docs) == sorted(
        [
            "ServiceAccount/siprtmp-system",
            "ClusterRole/-",
            "ClusterRoleBinding/-",
            "Deployment/siprtmp-system",
            "PodDisruptionBudget/siprtmp-system",
            "Role/siprtmp-system",
            "RoleBinding/siprtmp-system",
            "NetworkPolicy/siprtmp-system",
            "ValidatingAdmissionPolicy/-",
            "ValidatingAdmissionPolicyBinding/-",
        ]
    )
    rules = [d for d in docs if d["kind"] == "ClusterRole"]
    resources = {r for role in rules for rule in role["rules"] for r in rule["resources"]}
    assert "nodes" not in resources
    # Secrets: created (each pod's spec), got (the opt-in label, as metadata), never listed or
    # changed.
    secret_rules = [
        rule for role in rules for rule in role["rules"] if "secrets" in rule["resources"]
    ]
    assert [rule["verbs"] for rule in secret_rules] == [["create"], ["get"]]
    assert all("*" not in rule["verbs"] for role in rules for rule in role["rules"])
    dep = next(d for d in docs if d["kind"] == "Deployment")
    pod = dep["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    # Two replicas, one active: the other stands by, on another node when there is one.
    assert dep["spec"]["replicas"] == 2
    assert dep["spec"]["strategy"]["type"] == "RollingUpdate"
    anti = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert anti[0]["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    (pdb,) = [d for d in docs if d["kind"] == "PodDisruptionBudget"]
    assert pdb["spec"]["minAvailable"] == 1
    # The election's rights: the one Lease, and the replicas' own pods, in their namespace.
    (leader,) = [d for d in docs if d["kind"] == "Role"]
    assert leader["metadata"]["namespace"] == "siprtmp-system"
    granted = {(*r["resources"], *r["verbs"]): r.get("resourceNames") for r in leader["rules"]}
    assert granted == {
        ("leases", "create"): None,  # create cannot name its object
        ("leases", "get", "update"): ["srb-sip-rtmp-operator"],
        ("pods", "get", "patch"): None,
    }
    one = render_chart("replicaCount=1", "leaderElection.enabled=false")
    (single,) = [d for d in one if d["kind"] == "Deployment"]
    assert single["spec"]["replicas"] == 1 and single["spec"]["strategy"]["type"] == "Recreate"
    assert not [d for d in one if d["kind"] in {"PodDisruptionBudget", "Role"}]
    with pytest.raises(AssertionError, match="leaderElection"):
        render_chart("leaderElection.enabled=false")


def test_namespaced_render_uses_roles_only_in_watched_namespaces() -> None:
    docs = render_chart("watchNamespaces={team-a,team-b}")
    roles = [
        d
        for d in docs
        if d["kind"] in {"Role", "RoleBinding"} and d["metadata"]["name"] == "srb-sip-rtmp-operator"
    ]
    assert sorted(d["metadata"]["namespace"] for d in roles) == [
        "team-a",
        "team-a",
        "team-b",
        "team-b",
    ]
    assert not [d for d in docs if d["kind"] in {"ClusterRole", "ClusterRoleBinding"}]


def test_monitors_and_schema() -> None:
    docs = render_chart("metrics.serviceMonitor.enabled=true", "metrics.podMonitor.enabled=true")
    assert {"Service", "ServiceMonitor", "PodMonitor"} <= {d["kind"] for d in docs}
    with pytest.raises(AssertionError, match="networking"):
        render_chart("networking.mode=Bridge")
    with pytest.raises(AssertionError, match="windowSize"):
        render_chart("networking.hostPorts.windowSize=2")
    # Host networking by default is host networking allowed, said so.
    with pytest.raises(AssertionError, match=r"networking\.allowHostNetwork=true"):
        render_chart("networking.mode=HostNetwork")
    render_chart("networking.mode=HostNetwork", "networking.allowHostNetwork=true")


def test_namespaced_install_reconciles_only_its_namespace(tmp_path: Path) -> None:
    """A second cluster with watchNamespaces=[team-a]: Roles suffice for the whole job."""
    docs = render_chart("watchNamespaces={team-a}")
    spec = {
        "callee": "sip:a@sip.example.test",
        "rtmpUrl": "rtmp://r.example.test/live",
        "rtmpStream": "ns-test",
    }
    with running_cluster(tmp_path, docs) as c:
        c.namespace("team-b")
        wait_for(
            "default SA in team-a",
            lambda: c.core.read_namespaced_service_account("default", "team-a"),
        )
        c.create_bridge("team-a", "watched", spec)
        c.create_bridge("team-b", "ignored", {**spec, "rtmpStream": "other"})
        c.wait_pod("team-a", "watched-bridge-0")
        c.set_pod_terminated("team-a", "watched-bridge-0", 0, "")
        c.wait_phase("team-a", "watched", "Succeeded")
        ignored = c.bridge("team-b", "ignored")
        assert ignored is not None and not ignored.get("status")
        assert c.pods("team-b") == []
        # And the operator's identity really is namespace-bound.
        op = kubernetes.config.new_client_from_config(  # type: ignore[no-untyped-call]
            str(c.operator.kubeconfig)
        )
        with pytest.raises(ApiException) as info:
            kubernetes.client.CoreV1Api(op).list_namespaced_pod("team-b")
        assert info.value.status == 403
        # Secrets' labels are read where it watches, nowhere else.
        assert can_i(op, "get", "team-a") and not can_i(op, "get", "team-b")
        assert not can_i(op, "list", "team-a")
        # Nothing the operator tried was refused by RBAC.
        assert rbac_refusals(c.operator.log_text()) == []


def test_cluster_fixture_sanity(cluster: Cluster) -> None:
    cluster.cp.assert_alive()


def test_api_render_service_ingress_token_and_least_rbac() -> None:
    docs = render_chart(
        "api.enabled=true",
        "api.token.existingSecret=srb-api-token",
        "api.namespace=calls",
        "api.corsAllowedOrigins={https://tools.example.com}",
        "api.ingress.enabled=true",
        "api.ingress.className=nginx",
        "api.ingress.host=calls.example.com",
        f"{INGRESS_CONTROLLER}=ingress-nginx",
    )
    by_kind = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    service = by_kind[("Service", "srb-sip-rtmp-operator-api")]
    assert service["spec"]["ports"] == [
        {"name": "api", "port": 80, "targetPort": "api", "protocol": "TCP"}
    ]
    ingress = by_kind[("Ingress", "srb-sip-rtmp-operator-api")]
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == "calls.example.com" and ingress["spec"]["ingressClassName"] == "nginx"
    assert rule["http"]["paths"][0]["backend"]["service"]["name"] == service["metadata"]["name"]
    role = by_kind[("Role", "srb-sip-rtmp-operator-api")]
    assert role["metadata"]["namespace"] == "calls"
    secrets = [r for r in role["rules"] if "secrets" in r["resources"]]
    assert [r["verbs"] for r in secrets] == [["create"]]  # never read back
    dep = by_kind[("Deployment", "srb-sip-rtmp-operator")]
    container = dep["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert env["SIPRTMP_API_ENABLED"]["value"] == "true"
    assert env["SIPRTMP_API_NAMESPACE"]["value"] == "calls"
    assert env["SIPRTMP_API_CORS_ORIGINS"]["value"] == "https://tools.example.com"
    assert env["SIPRTMP_API_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "srb-api-token",
        "key": "token",
    }
    assert {"name": "api", "containerPort": 8082, "protocol": "TCP"} in container["ports"]
    out = helm(
        "lint",
        "--strict",
        str(REPO / "helm"),
        "--set",
        "api.enabled=true",
        "--set",
        "api.token.existingSecret=t",
        "--set",
        "api.ingress.enabled=true",
        "--set",
        f"{INGRESS_CONTROLLER}=ingress-nginx",
    )
    assert "0 chart(s) failed" in out


def test_api_render_refuses_what_cannot_work() -> None:
    with pytest.raises(AssertionError, match=r"api\.token\.existingSecret"):
        render_chart("api.enabled=true")
    with pytest.raises(AssertionError, match="must be one of watchNamespaces"):
        render_chart(
            "api.enabled=true",
            "api.token.existingSecret=t",
            "watchNamespaces={a}",
            "api.namespace=b",
        )
    with pytest.raises(AssertionError, match="corsAllowedOrigins"):
        render_chart("api.corsAllowedOrigins={not-an-origin}")
    assert not [d for d in render_chart() if d["metadata"]["name"].endswith("-api")]


def test_bridge_pods_get_the_measured_requests_by_default() -> None:
    """The chart's bridge resources are the operator's defaults (docs/operator.md, "Sizing
    bridge pods", says where they come from), and each bridge pod asks for them."""
    chart = Settings.from_env(deployment_env(render_chart()))
    defaults = Settings.from_env({})
    resources = make_pod(chart)["spec"]["containers"][0]["resources"]
    assert resources == make_pod(defaults)["spec"]["containers"][0]["resources"]
    assert resources == {
        "requests": {"cpu": "50m", "memory": "64Mi"},
        "limits": {"cpu": "1", "memory": "512Mi"},
    }


def test_rtmps_ca_bundle_reaches_the_bridge_pods_trust_store() -> None:
    """Chart value → operator setting → each bridge pod: the ConfigMap's bundle mounted
    read-only and named by SSL_CERT_FILE, which the bridge's RTMPS relay and its SIP TLS
    verify against."""
    docs = render_chart("bridge.rtmpsCaBundle.configMap=ingest-ca", "bridge.rtmpsCaBundle.key=pem")
    settings = Settings.from_env(deployment_env(docs))
    rtmps = {**SPEC, "rtmpUrl": "rtmps://ingest.example.test/live"}
    pod = make_pod(settings, spec=rtmps)
    volume = next(v for v in pod["spec"]["volumes"] if v["name"] == "ca-bundle")
    assert volume["configMap"] == {
        "name": "ingest-ca",
        "items": [{"key": "pem", "path": "ca.crt"}],
        "optional": True,  # without it the call fails naming the certificate, not hangs
    }
    container = pod["spec"]["containers"][0]
    assert {"name": "ca-bundle", "mountPath": "/etc/siprtmp/ca", "readOnly": True} in container[
        "volumeMounts"
    ]
    assert {"name": "SSL_CERT_FILE", "value": "/etc/siprtmp/ca/ca.crt"} in container["env"]
    # The mount's own directory, not the image's: the bundle replaces the image's CAs.
    assert {"name": "SSL_CERT_DIR", "value": "/etc/siprtmp/ca"} in container["env"]
    # SIP over TLS verifies its server against the same bundle (SSL_CERT_FILE).
    sip_tls = {**SPEC, "connection": {"sipDomain": "pbx.example.test", "sipTransport": "TLS"}}
    sip_env = make_pod(settings, spec=sip_tls)["spec"]["containers"][0]["env"]
    assert {"name": "SSL_CERT_FILE", "value": "/etc/siprtmp/ca/ca.crt"} in sip_env
    # Without the value, or for calls that verify no TLS server, nothing is mounted (a missing
    # ConfigMap never holds up a plain RTMP call).
    unverified_sip = {**sip_tls["connection"], "sipTlsVerifyServer": "false"}
    for unverified in (
        make_pod(Settings.from_env({}), spec=rtmps),
        make_pod(settings),
        make_pod(settings, spec={**rtmps, "rtmpTlsVerify": False}),
        make_pod(settings, spec={**rtmps, "rtmpTlsVerify": "False"}),
        make_pod(settings, spec={**SPEC, "connection": unverified_sip}),
    ):
        names = {e["name"] for e in unverified["spec"]["containers"][0]["env"]}
        assert not names & {"SSL_CERT_FILE", "SSL_CERT_DIR"}
        assert "ca-bundle" not in {v["name"] for v in unverified["spec"]["volumes"]}
