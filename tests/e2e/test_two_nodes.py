"""Two real nodes: bridge pods spread over them, and a node lost mid-call ends in a redial on
the other (docs/e2e-node.md). The second node runs in its own network namespace; its pods reach
the far ends on the first node's gateway through the host.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from siprtmp_bridge.demo.ports import free_port
from siprtmp_operator.names import NODE_LOST_TAINTS
from tests.e2e.node_harness import Node
from tests.e2e.release import Release, manifest
from tests.e2e.test_node_calls import assert_tone, streaming_with_bytes
from tests.operator.k8s_harness import wait_for
from tests.support.nginx_rtmp import NginxRtmp
from tests.support.recording import measure_recording
from tests.support.sipp import SippPeer

#: The chart's default bridge.nodeLostTolerationSeconds.
TOLERATION_SECONDS = 30


@pytest.fixture
def ns(release: Release, second_node: Node, request: pytest.FixtureRequest) -> str:
    base = request.node.name.removeprefix("test_").replace("_", "-")[:40].strip("-")
    return release.namespace(base)


def node_of(release: Release, ns: str, name: str) -> str | None:
    """The node the bridge's pod is bound to (None while unscheduled or with no pod)."""
    pods = release.bridge_pods(ns, name)
    return pods[0]["spec"].get("nodeName") if len(pods) == 1 else None


def test_bridge_pods_spread_over_both_nodes_and_call_from_each(
    release: Release,
    node: Node,
    second_node: Node,
    ns: str,
    tone_peer: Callable[..., SippPeer],
    rtmp_server: NginxRtmp,
) -> None:
    """Several calls at once: the scheduler puts bridge pods on both nodes, and a call from
    either node's pod subnet reaches the far end and the RTMP server."""
    tones = {f"spread-{i}": 600.0 + 200 * i for i in range(4)}
    peers = {name: tone_peer(6.0, frequency=hz, wait_ms=60000) for name, hz in tones.items()}
    release.apply(*(manifest(ns, name, peers[name], rtmp_server) for name in tones))
    subnets = {node.name: "10.244.0.", second_node.name: "10.244.1."}
    placed: dict[str, str] = {}
    for name, hz in tones.items():
        status = release.wait_phase(ns, name, "Succeeded", timeout=90)
        assert (status["reason"], status["exitCode"]) == ("RemoteHangup", 0), name
        (pod,) = release.bridge_pods(ns, name)
        placed[name] = pod["spec"]["nodeName"]
        # SIPp saw the INVITE from the pod's own address, on its node's subnet.
        assert f"c=IN IP4 {subnets[placed[name]]}" in peers[name].messages(), name
        assert peers[name].wait(10) == 0
        assert_tone(rtmp_server, name, hz, 5.5)
    assert set(placed.values()) == {node.name, second_node.name}, placed
    print(f"\nplacement: {placed}")


def test_node_external_ip_calls_advertise_the_address_of_the_node_they_landed_on(
    release: Release,
    node: Node,
    second_node: Node,
    ns: str,
    tone_peer: Callable[..., SippPeer],
    rtmp_server: NginxRtmp,
) -> None:
    """HostNetwork with the node's ExternalIP: the operator places each pod on the node with
    the fewest bridges and advertises that node's address; each pod has its own host-port
    window, declared as host ports, and the far end's audio reaches it there."""
    external = {node.name: node.net.address, second_node.name: second_node.net.address}
    networking = {"mode": "HostNetwork", "publicAddressSource": "NodeExternalIP"}
    peers = {name: tone_peer(8.0, wait_ms=60000) for name in ("edge-a", "edge-b")}
    placed: dict[str, dict[str, Any]] = {}
    for name, peer in peers.items():  # one after the other: the second sees the first's pod
        release.apply(manifest(ns, name, peer, rtmp_server, networking=networking))
        placed[name] = streaming_with_bytes(release, ns, name, 4000)["networking"]
    assert {n["nodeName"] for n in placed.values()} == set(external), placed
    assert placed["edge-a"]["portSlot"] != placed["edge-b"]["portSlot"], placed
    for name, peer in peers.items():
        net = placed[name]
        assert net["publicAddress"] == external[net["nodeName"]], net
        (pod,) = release.bridge_pods(ns, name)
        assert pod["spec"]["nodeName"] == net["nodeName"]
        assert pod["spec"]["hostNetwork"] is True
        assert pod["status"]["podIP"] == external[net["nodeName"]]
        host_ports = {p["hostPort"] for p in pod["spec"]["containers"][0]["ports"]}
        assert {net["statusPort"], net["sipPort"]} <= host_ports, (net, host_ports)
        status = release.wait_phase(ns, name, "Succeeded", timeout=60)
        assert (status["reason"], status["exitCode"]) == ("RemoteHangup", 0), name
        # The SDP the far end got names the node's address, and its audio arrived there.
        assert f"c=IN IP4 {net['publicAddress']}" in peer.messages(), name
        assert peer.wait(10) == 0
        assert_tone(rtmp_server, name, 1000, 7.0)
    print(f"\nNodeExternalIP placement: {placed}")


@pytest.fixture
def only_second_node(release: Release, node: Node) -> Iterator[None]:
    """The first node cordoned (no new pods) while a test places a pod; uncordoned after."""
    release.kubectl("cordon", node.name)
    try:
        yield
    finally:
        release.kubectl("uncordon", node.name)


def test_a_node_lost_mid_call_redials_the_call_on_the_other_node(
    release: Release,
    node: Node,
    second_node: Node,
    ns: str,
    tone_peer: Callable[..., SippPeer],
    tmp_path: Path,
    peer_host: str,
    only_second_node: None,
) -> None:
    """kubelet killed and the link cut under a live call: the operator shows the bridge
    unreachable, then declares it lost (force-delete, BridgeLost) and redials on the surviving
    node; the stream resumes on the RTMP server and the redialled call's audio is all there."""
    # A vanished publisher holds its stream name until dropped: an ingest server drops it.
    rtmp = NginxRtmp(tmp_path / "nginx", free_port(), host=peer_host, drop_idle_publisher=5)
    rtmp.start()
    try:
        _lose_the_node_under_a_call(release, node, second_node, ns, tone_peer, rtmp)
    finally:
        rtmp.stop()


def _lose_the_node_under_a_call(
    release: Release,
    node: Node,
    second_node: Node,
    ns: str,
    tone_peer: Callable[..., SippPeer],
    rtmp: NginxRtmp,
) -> None:
    tone_s = 20.0
    peer = tone_peer(tone_s, calls=2)  # the lost call, then the redial
    release.apply(manifest(ns, "moved", peer, rtmp, maxRetries=1))
    wait_for(
        "the first pod bound to the second node",
        lambda: node_of(release, ns, "moved") == second_node.name,
        timeout=30,
    )
    release.kubectl("uncordon", node.name)
    streaming_with_bytes(release, ns, "moved", 20000)
    (lost_pod,) = release.bridge_pods(ns, "moved")
    tolerations = {t["key"]: t for t in lost_pod["spec"].get("tolerations") or []}
    for taint in NODE_LOST_TAINTS:
        assert tolerations[taint]["effect"] == "NoExecute"
        assert tolerations[taint]["tolerationSeconds"] == TOLERATION_SECONDS

    t0 = time.monotonic()
    second_node.lose()
    release.wait_bridge(
        ns,
        "moved",
        lambda s: s.get("reason") == "BridgeUnreachable",
        "BridgeUnreachable",
        timeout=40,
    )
    unreachable_s = time.monotonic() - t0

    def redialled(s: dict[str, Any]) -> bool:
        return (
            s.get("phase") == "Streaming"
            and s.get("podName") == "moved-bridge-1"
            and (s.get("lastFailure") or {}).get("reason") == "BridgeLost"
            and s["stream"]["bytesSent"] > 20000
        )

    status = release.wait_bridge(ns, "moved", redialled, "Streaming again after BridgeLost", 120)
    streaming_again_s = time.monotonic() - t0
    assert status["lastFailure"]["pod"] == "moved-bridge-0"
    assert status["retries"] == 1
    (pod,) = release.bridge_pods(ns, "moved")  # the lost pod was force-deleted
    assert pod["metadata"]["name"] == "moved-bridge-1"
    assert pod["spec"]["nodeName"] == node.name
    status = release.wait_phase(ns, "moved", "Succeeded", timeout=60)
    assert (status["reason"], status["exitCode"], status["retries"]) == ("RemoteHangup", 0, 1)
    # Both INVITEs reached the far end; the redialled call's recording holds its whole tone.
    assert peer.messages().count("INVITE sip:") == 2
    recordings = rtmp.recordings_of("moved")
    assert len(recordings) == 2, recordings
    tone = measure_recording(recordings[-1])
    assert abs(tone.frequency_hz - 1000) < 5, tone
    assert tone.tone_seconds > tone_s - 1.5, tone
    print(
        f"\nnode lost: BridgeUnreachable after {unreachable_s:.1f}s, Streaming again on "
        f"{node.name} after {streaming_again_s:.1f}s"
    )
