"""The chart's NetworkPolicies and its admission policy for the operator's pods.

No CNI that enforces NetworkPolicies runs here, so the policies are checked by reading them as
the NetworkPolicy API defines them (``admits`` below) against the pods the operator's real
builder makes and the Deployment's pod template, and by creating them in the real API server.
The ValidatingAdmissionPolicy is proven where it acts: the API server, with the operator's own
ServiceAccount token.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import kubernetes
import pytest
from kubernetes.client.exceptions import ApiException

from siprtmp_contract.spec import parse_spec
from siprtmp_operator.names import STATUS_PORT_NAME
from siprtmp_operator.networking import NetworkPlan, window_for_slot
from siprtmp_operator.settings import Settings
from tests.operator.conftest import OPERATOR_NAMESPACE, render_chart
from tests.operator.k8s_harness import deployment_env, plain, wait_for
from tests.operator.test_operator_builders import POD_NET, SPEC, handed_spec, make_pod
from tests.operator.test_operator_chart import INGRESS_CONTROLLER

if TYPE_CHECKING:
    from tests.operator.conftest import Cluster

pytestmark = pytest.mark.k8s

JSON = dict[str, Any]
NS_NAME = "kubernetes.io/metadata.name"  # the label the API server gives every namespace


# --- NetworkPolicy semantics (networking.k8s.io/v1), for the rendered objects ---------------


@dataclass(frozen=True)
class Peer:
    """One end of a connection: a pod (namespace and labels) or an address outside pods."""

    namespace: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    ip: str = ""

    @property
    def namespace_labels(self) -> dict[str, str]:
        return {NS_NAME: self.namespace}


def selects(selector: JSON, labels: dict[str, str]) -> bool:
    """A label selector (matchLabels and matchExpressions) against labels."""
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


def peer_matches(entry: JSON, policy_namespace: str, peer: Peer) -> bool:
    if "ipBlock" in entry:
        if not peer.ip:
            return False
        address = ipaddress.ip_address(peer.ip)
        block = entry["ipBlock"]

        def inside(cidr: str) -> bool:
            net = ipaddress.ip_network(cidr)
            return net.version == address.version and address in net

        return inside(block["cidr"]) and not any(inside(c) for c in block.get("except") or [])
    if not peer.namespace:
        return False
    if "namespaceSelector" in entry:
        in_namespace = selects(entry["namespaceSelector"], peer.namespace_labels)
    else:
        in_namespace = peer.namespace == policy_namespace
    return in_namespace and selects(entry.get("podSelector") or {}, peer.labels)


def port_matches(entry: JSON, port: int, protocol: str) -> bool:
    if entry.get("protocol", "TCP") != protocol:
        return False
    if "port" not in entry:
        return True
    assert isinstance(entry["port"], int), "the chart's policies use port numbers"
    return bool(entry["port"] <= port <= entry.get("endPort", entry["port"]))


def admits(policy: JSON, direction: str, peer: Peer, port: int, protocol: str = "TCP") -> bool:
    """Whether ``policy`` lets ``peer`` in (direction "ingress") or out to it ("egress")."""
    spec = policy["spec"]
    kind = direction.capitalize()
    assert kind in spec["policyTypes"], f"{policy['metadata']['name']} leaves {direction} open"
    peers_key = "from" if direction == "ingress" else "to"
    ns = policy["metadata"]["namespace"]
    return any(
        (not rule.get(peers_key) or any(peer_matches(p, ns, peer) for p in rule[peers_key]))
        and (not rule.get("ports") or any(port_matches(e, port, protocol) for e in rule["ports"]))
        for rule in spec.get(direction) or []
    )


# --- rendered objects -------------------------------------------------------------------------


def network_policies(docs: list[JSON]) -> list[JSON]:
    return [d for d in docs if d["kind"] == "NetworkPolicy"]


def policy_selecting(docs: list[JSON], namespace: str, labels: dict[str, str]) -> JSON:
    """The one NetworkPolicy of ``namespace`` whose podSelector selects ``labels``."""
    (policy,) = [
        p
        for p in network_policies(docs)
        if p["metadata"]["namespace"] == namespace and selects(p["spec"]["podSelector"], labels)
    ]
    return policy


def operator_pod(docs: list[JSON]) -> Peer:
    """The operator's pod as the Deployment's template makes it."""
    dep = next(d for d in docs if d["kind"] == "Deployment")
    return Peer(dep["metadata"]["namespace"], dep["spec"]["template"]["metadata"]["labels"])


def bridge_settings(docs: list[JSON]) -> Settings:
    """The operator's settings as the rendered Deployment sets them."""
    env = deployment_env(docs)
    # The REST API's token comes from a Secret (absent here); the pod builder reads no API setting.
    env.pop("SIPRTMP_API_ENABLED", None)
    return Settings.from_env(env)


#: A call the bridge accepts as it stands (SPEC, with the digest user its password needs).
CALL = {**SPEC, "connection": {**SPEC["connection"], "sipLogin": "alice"}}


def bridge_pod(docs: list[JSON], namespace: str, plan: NetworkPlan = POD_NET) -> JSON:
    """A bridge pod as the operator, configured by the rendered Deployment, builds it."""
    pod = make_pod(bridge_settings(docs), plan=plan, spec=CALL)
    pod["metadata"]["namespace"] = namespace
    return pod


def container_port(pod: JSON, name: str) -> int:
    ports = pod["spec"]["containers"][0]["ports"]
    port: int = next(p["containerPort"] for p in ports if p["name"] == name)
    return port


OUTSIDE = Peer(ip="203.0.113.9")
OUTSIDE_V6 = Peer(ip="2001:db8::9")
DNS_POD = Peer("kube-system", {"k8s-app": "kube-dns"})
METRICS_POD = Peer("monitoring", {"app.kubernetes.io/name": "prometheus"})


def test_bridge_policies_go_to_every_namespace_bridges_are_known_to_run_in() -> None:
    docs = render_chart(
        "watchNamespaces={team-a,team-b}",
        "networkPolicy.bridgeNamespaces={team-b,team-c}",
        "api.enabled=true",
        "api.token.existingSecret=t",
        "api.namespace=team-a",
        "bridge.extraLabels.tier=media",
    )
    for ns in ("team-a", "team-b", "team-c"):
        pod = bridge_pod(docs, ns)
        policy = policy_selecting(docs, ns, pod["metadata"]["labels"])
        assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    operator = operator_pod(docs)
    bridge_policies = [
        p for p in network_policies(docs) if p["metadata"]["namespace"] != operator.namespace
    ]
    assert len(bridge_policies) == 3
    # The operator's own pods are not caught by the bridges' policy, nor bridges by the operator's.
    assert policy_selecting(docs, operator.namespace, operator.labels)["spec"]["policyTypes"] == [
        "Ingress"
    ]
    assert not [p for p in bridge_policies if selects(p["spec"]["podSelector"], operator.labels)]
    # Cluster-wide, the chart knows only the REST API's namespace (and those listed).
    assert len(network_policies(render_chart())) == 1  # the operator's
    wide = render_chart("api.enabled=true", "api.token.existingSecret=t", "api.namespace=calls")
    policy_selecting(wide, "calls", bridge_pod(wide, "calls")["metadata"]["labels"])
    assert not network_policies(render_chart("networkPolicy.enabled=false"))


def test_bridge_status_port_takes_only_the_operator_and_the_metrics_namespace() -> None:
    """/status, /metrics and /dtmf (the status port, here moved by bridge.statusPort); every
    other port, UDP and TCP, is open to SIP and RTP from anywhere."""
    docs = render_chart(
        "watchNamespaces={team-a}",
        "bridge.statusPort=9191",
        "networkPolicy.metricsNamespace=monitoring",
    )
    pod = bridge_pod(docs, "team-a")
    policy = policy_selecting(docs, "team-a", pod["metadata"]["labels"])
    status = container_port(pod, STATUS_PORT_NAME)
    assert status == 9191
    operator = operator_pod(docs)
    assert admits(policy, "ingress", operator, status)
    assert admits(policy, "ingress", METRICS_POD, status)
    strangers = (
        Peer("team-a", {"app": "other"}),
        Peer(operator.namespace, {"app": "other"}),
        Peer("team-a", operator.labels),
        OUTSIDE,
        OUTSIDE_V6,
    )
    for stranger in strangers:
        assert not admits(policy, "ingress", stranger, status), stranger
    # The bridge's SIP port is any free one (pjsua's 0) and RTP takes nat.rtpPortMin..Max.
    nat = parse_spec(handed_spec(bridge_settings(docs), spec=CALL), "pw").nat
    assert nat.sip_port is None
    assert admits(policy, "ingress", OUTSIDE, nat.rtp_port_min, "UDP")
    assert admits(policy, "ingress", OUTSIDE_V6, nat.rtp_port_max, "UDP")
    assert all(admits(policy, "ingress", OUTSIDE, p, "UDP") for p in range(1, 65536))
    tcp = [p for p in range(1, 65536) if admits(policy, "ingress", OUTSIDE, p, "TCP")]
    assert tcp == [p for p in range(1, 65536) if p != status]
    # Without a metrics namespace, the operator alone.
    plain_docs = render_chart("watchNamespaces={team-a}")
    plain_policy = policy_selecting(plain_docs, "team-a", pod["metadata"]["labels"])
    assert not admits(
        plain_policy,
        "ingress",
        METRICS_POD,
        container_port(bridge_pod(plain_docs, "team-a"), STATUS_PORT_NAME),
    )


def test_bridge_egress_reaches_dns_and_the_internet_not_the_cluster_nor_metadata() -> None:
    def egress(*sets: str) -> Callable[[Peer, int, str], bool]:
        docs = render_chart("watchNamespaces={team-a}", *sets)
        pod = bridge_pod(docs, "team-a")
        policy = policy_selecting(docs, "team-a", pod["metadata"]["labels"])
        return lambda peer, port, proto: admits(policy, "egress", peer, port, proto)

    closed = egress()
    for port, proto in ((53, "UDP"), (53, "TCP")):
        assert closed(DNS_POD, port, proto)
    assert not closed(DNS_POD, 80, "TCP")
    assert not closed(Peer("kube-system", {"k8s-app": "other"}), 53, "UDP")
    for peer, port, proto in (
        (OUTSIDE, 5060, "UDP"),
        (OUTSIDE, 1935, "TCP"),
        (OUTSIDE_V6, 443, "TCP"),
    ):
        assert closed(peer, port, proto)
    cluster = [Peer(ip="10.96.0.1"), Peer(ip="10.244.1.7"), Peer(ip="fd12:3456::7")]
    metadata = [Peer(ip="169.254.169.254"), Peer(ip="fd00:ec2::254"), Peer(ip="fe80::1")]
    for peer in cluster + metadata:
        assert not closed(peer, 443, "TCP") and not closed(peer, 5060, "UDP"), peer
    # A switch opens the cluster (not the metadata addresses); CIDRs open what they name.
    wide = egress("networkPolicy.egress.allowClusterEgress=true")
    assert all(wide(peer, 443, "TCP") for peer in cluster)
    assert not any(wide(peer, 80, "TCP") for peer in metadata)
    listed = egress("networkPolicy.egress.allowedCIDRs={10.20.0.5/32,fd12:3456::7/128}")
    assert listed(Peer(ip="10.20.0.5"), 5060, "UDP") and listed(
        Peer(ip="fd12:3456::7"), 1935, "TCP"
    )
    assert not listed(Peer(ip="10.20.0.6"), 5060, "UDP")
    narrow = egress("networkPolicy.egress.clusterCIDRs={10.96.0.0/12}")
    assert narrow(Peer(ip="10.20.0.5"), 5060, "UDP") and not narrow(
        Peer(ip="10.96.0.1"), 443, "TCP"
    )


def test_operator_takes_its_api_and_metrics_only_from_where_the_chart_says() -> None:
    sets = ("api.enabled=true", "api.token.existingSecret=t")
    ingress_ns = f"{INGRESS_CONTROLLER}=ingress-nginx"
    docs = render_chart(*sets, ingress_ns, "networkPolicy.metricsNamespace=monitoring")
    operator = operator_pod(docs)
    policy = policy_selecting(docs, operator.namespace, operator.labels)
    dep = next(d for d in docs if d["kind"] == "Deployment")
    ports = {
        p["name"]: p["containerPort"]
        for p in dep["spec"]["template"]["spec"]["containers"][0]["ports"]
    }
    controller = Peer("ingress-nginx", {"app": "controller"})
    assert admits(policy, "ingress", controller, ports["api"])
    assert not admits(policy, "ingress", controller, ports["http"])
    assert admits(policy, "ingress", METRICS_POD, ports["http"])
    assert not admits(policy, "ingress", METRICS_POD, ports["api"])
    for stranger in (
        OUTSIDE,
        Peer(operator.namespace, {"app": "other"}),
        Peer("team-a", operator.labels),
    ):
        assert not any(admits(policy, "ingress", stranger, p) for p in ports.values())
    # By default nothing reaches the operator's pods (port-forward and the kubelet's probes do).
    default = render_chart(*sets)
    assert policy_selecting(default, operator.namespace, operator.labels)["spec"]["ingress"] == []
    # An Ingress with nobody allowed to reach the API would be dead on arrival.
    with pytest.raises(AssertionError, match=r"networkPolicy\.apiFrom"):
        render_chart(*sets, "api.ingress.enabled=true")
    render_chart(*sets, "api.ingress.enabled=true", ingress_ns)


def test_network_policies_are_accepted_by_the_api_server(cluster: Cluster, ns: str) -> None:
    """Every variant's policies, created in the real API server, read back as rendered."""
    docs = render_chart(
        f"watchNamespaces={{{ns}}}",
        "networkPolicy.metricsNamespace=monitoring",
        "api.enabled=true",
        "api.token.existingSecret=t",
        f"api.namespace={ns}",
        f"{INGRESS_CONTROLLER}=ingress-nginx",
        "networkPolicy.egress.allowedCIDRs={10.20.0.5/32,fd12:3456::7/128}",
        "networkPolicy.egress.clusterCIDRs={10.96.0.0/12,fd00::/8}",
    )
    policies = network_policies(docs)
    assert {p["metadata"]["namespace"] for p in policies} == {ns, OPERATOR_NAMESPACE}
    net = kubernetes.client.NetworkingV1Api(cluster.api)
    for policy in policies:
        name = f"{policy['metadata']['name']}-{ns}"  # the shared install has its own
        body = {**policy, "metadata": {**policy["metadata"], "name": name}}
        net.create_namespaced_network_policy(
            policy["metadata"]["namespace"],
            body,  # type: ignore[arg-type]
        )
        stored = plain(
            cluster.api, net.read_namespaced_network_policy(name, policy["metadata"]["namespace"])
        )
        assert stored["spec"] == policy["spec"]
        if policy["metadata"]["namespace"] == OPERATOR_NAMESPACE:
            net.delete_namespaced_network_policy(name, OPERATOR_NAMESPACE)
    # The shared installation's own (defaults, REST API on) went in with the chart.
    for policy in network_policies(cluster.chart_docs):
        meta = policy["metadata"]
        net.read_namespaced_network_policy(meta["name"], meta["namespace"])


# --- the admission policy: what the operator's ServiceAccount may create ----------------------


def admission_policy(docs: list[JSON]) -> JSON:
    (policy,) = [d for d in docs if d["kind"] == "ValidatingAdmissionPolicy"]
    return policy


def policy_message(docs: list[JSON], word: str) -> str:
    """The message of the policy's one validation whose message names ``word``."""
    (message,) = [
        v["message"] for v in admission_policy(docs)["spec"]["validations"] if word in v["message"]
    ]
    assert isinstance(message, str)
    return message


def as_operator(cluster: Cluster) -> kubernetes.client.CoreV1Api:
    """The API as the operator's ServiceAccount (its TokenRequest token) sees it."""
    client = kubernetes.config.new_client_from_config(  # type: ignore[no-untyped-call]
        str(cluster.operator.kubeconfig)
    )
    return kubernetes.client.CoreV1Api(client)


def refusal(api: kubernetes.client.CoreV1Api, pod: JSON, dry_run: bool = False) -> str:
    """The API server's message refusing ``pod`` ('' when it is admitted)."""
    ns = pod["metadata"]["namespace"]
    try:
        api.create_namespaced_pod(
            ns,
            pod,  # type: ignore[arg-type]
            dry_run="All" if dry_run else None,
        )
    except ApiException as exc:
        assert exc.status == 422, exc.body
        message: str = json.loads(str(exc.body))["message"]
        return message
    return ""


def enforced(api: kubernetes.client.CoreV1Api, pod: JSON) -> str:
    """Wait until the API server refuses ``pod`` (policies load a moment after they are
    created; a dry run goes through admission and stores nothing), and return the message."""
    return wait_for("the admission policy enforced", lambda: refusal(api, pod, dry_run=True))


def renamed(pod: JSON, name: str) -> JSON:
    return {**pod, "metadata": {**pod["metadata"], "name": name}}


def privileged(pod: JSON) -> None:
    context = pod["spec"]["containers"][0]["securityContext"]
    context["privileged"] = True
    del context["allowPrivilegeEscalation"]  # the API server refuses the pair as contradictory


def other_image(pod: JSON) -> None:
    pod["spec"]["containers"][0]["image"] = "registry.example.test/miner:1"


def sidecar(pod: JSON) -> None:
    extra = {"name": "extra", "image": "busybox:1", "command": ["sh"]}
    pod["spec"]["initContainers"] = [extra]


def host_path(pod: JSON) -> None:
    pod["spec"]["volumes"].append({"name": "root", "hostPath": {"path": "/"}})


def no_owner(pod: JSON) -> None:
    del pod["metadata"]["ownerReferences"]


def another_owner(pod: JSON) -> None:
    pod["metadata"]["ownerReferences"][0]["uid"] = "someone-else"


def unlabelled(pod: JSON) -> None:
    del pod["metadata"]["labels"]["app.kubernetes.io/managed-by"]


def capability(pod: JSON) -> None:
    pod["spec"]["containers"][0]["securityContext"]["capabilities"]["add"] = ["NET_ADMIN"]


def token(pod: JSON) -> None:
    pod["spec"]["automountServiceAccountToken"] = True


def projected_token(pod: JSON) -> None:
    source = {"serviceAccountToken": {"path": "token"}}
    pod["spec"]["volumes"].append({"name": "t", "projected": {"sources": [source]}})


def host_pid(pod: JSON) -> None:
    pod["spec"]["hostPID"] = True


WRONG_SHAPES: list[tuple[Callable[[JSON], None], str]] = [
    (privileged, "privileged"),
    (other_image, "image"),
    (sidecar, "image"),
    (host_path, "hostPath"),
    (no_owner, "owned"),
    (another_owner, "owned"),
    (unlabelled, "operator's labels"),
    (capability, "capabilities"),
    (token, "token"),
    (projected_token, "token"),
    (host_pid, "process"),
]


@pytest.mark.parametrize(
    ("change", "word"), WRONG_SHAPES, ids=[c.__name__ for c, _ in WRONG_SHAPES]
)
def test_operator_account_can_create_only_bridge_pods(
    cluster: Cluster, ns: str, change: Callable[[JSON], None], word: str
) -> None:
    api = as_operator(cluster)
    good = bridge_pod(cluster.chart_docs, ns)
    bad = bridge_pod(cluster.chart_docs, ns)
    change(bad)
    assert policy_message(cluster.chart_docs, word) in enforced(api, bad)
    assert policy_message(cluster.chart_docs, word) in refusal(api, renamed(bad, "wrong-shape"))
    assert cluster.pod(ns, "wrong-shape") is None
    # The pod the operator builds goes in (created: the API server stored it), under the same
    # identity; the wrong one only binds that identity (the admin may still create it). Not read
    # back: its owner is no real SipRtmpBridge, so the garbage collector may remove it at once.
    assert refusal(api, good) == ""
    assert refusal(cluster.core, renamed(bad, "admins-pod")) == ""


def test_host_networking_only_where_the_chart_allows_it(cluster: Cluster, ns: str) -> None:
    """The shared installation allows host networking; the same chart with
    networking.allowHostNetwork=false (its policy bound to this namespace alone, for the
    same ServiceAccount) refuses the operator's own host-network pods."""
    sa = next(d for d in cluster.chart_docs if d["kind"] == "ServiceAccount")["metadata"]["name"]
    strict = render_chart(
        "serviceAccount.create=false", f"serviceAccount.name={sa}", release="strict"
    )
    policy = admission_policy(strict)
    (binding,) = [d for d in strict if d["kind"] == "ValidatingAdmissionPolicyBinding"]
    binding["spec"]["matchResources"] = {"namespaceSelector": {"matchLabels": {NS_NAME: ns}}}
    admission = kubernetes.client.AdmissionregistrationV1Api(cluster.api)
    admission.create_validating_admission_policy(policy)  # type: ignore[arg-type]
    admission.create_validating_admission_policy_binding(binding)  # type: ignore[arg-type]
    try:
        api = as_operator(cluster)
        window = window_for_slot(0, bridge_settings(cluster.chart_docs))
        host = NetworkPlan("HostNetwork", "None", window=window)
        pod = bridge_pod(cluster.chart_docs, ns, plan=host)
        message = policy_message(strict, "allowHostNetwork")
        assert message in enforced(api, pod)
        assert message in refusal(api, renamed(pod, "host-networked"))
        assert refusal(api, bridge_pod(cluster.chart_docs, ns)) == ""
        # The shared chart's policy (allowHostNetwork=true) has no such rule.
        assert not [
            v
            for v in admission_policy(cluster.chart_docs)["spec"]["validations"]
            if "allowHostNetwork" in v["message"]
        ]
    finally:
        admission.delete_validating_admission_policy_binding(binding["metadata"]["name"])
        admission.delete_validating_admission_policy(policy["metadata"]["name"])
