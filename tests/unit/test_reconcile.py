"""The operator's pure decisions beyond one step's status: placing a pod, stopping a bridge."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from siprtmp_contract.states import Phase
from siprtmp_operator.networking import PlacementWorld, bridges_per_node, needs_node
from siprtmp_operator.reconcile import (
    NO_NODE_MESSAGE,
    Plan,
    StopPlan,
    place,
    plan_step,
    plan_stop,
)
from siprtmp_operator.settings import Settings
from siprtmp_operator.statusmodel import BridgeStatus, Networking, render_status

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
SPEC: dict[str, Any] = {"callee": "sip:room@sip.example.test", "rtmpUrl": "rtmp://h/live"}
HOST = {**SPEC, "networking": {"mode": "HostNetwork"}}
EXTERNAL = {**SPEC, "networking": {"mode": "HostNetwork", "publicAddressSource": "NodeExternalIP"}}
#: Windows of 8 ports from 40000: slot N starts at 40000 + 8 N.
SETTINGS = Settings(allow_host_network=True, host_port_min=40000, host_port_max=40031)


def first_step(spec: dict[str, Any], status: BridgeStatus | None = None) -> Plan:
    resource = {
        "metadata": {"name": "b", "namespace": "ns", "uid": "u"},
        "spec": spec,
        "status": render_status(status or BridgeStatus()),
    }
    plan = plan_step(resource, None, None, NOW, SETTINGS)
    assert plan.create_pod is not None
    return plan


def node(name: str, ip: str | None) -> dict[str, Any]:
    addresses = [{"type": "ExternalIP", "address": ip}] if ip else []
    return {
        "metadata": {"name": name},
        "status": {"addresses": addresses, "conditions": [{"type": "Ready", "status": "True"}]},
    }


def pod_on(node_name: str, phase: str = "Running") -> dict[str, Any]:
    return {"spec": {"nodeName": node_name}, "status": {"phase": phase}}


def test_a_pod_network_pod_is_placed_with_its_mode_only() -> None:
    plan = first_step(SPEC)
    placed = place(plan, BridgeStatus(), SPEC, "u", SETTINGS, PlacementWorld())
    assert placed.create_pod == 0 and placed.network is not None
    assert placed.network.window is None
    assert render_status(placed.status)["networking"] == {"mode": "PodNetwork"}
    assert placed.events == plan.events


def test_a_host_network_pod_takes_the_lowest_free_window_and_shows_it() -> None:
    plan = first_step(HOST)
    world = PlacementWorld(taken_slots=frozenset({0, 1}))
    placed = place(plan, BridgeStatus(), HOST, "u", SETTINGS, world)
    assert placed.network is not None and placed.network.window is not None
    assert placed.network.window.slot == 2
    assert render_status(placed.status)["networking"] == {
        "mode": "HostNetwork",
        "portSlot": 2,
        "statusPort": 40016,
        "sipPort": 40017,
        "rtpPortMin": 40018,
        "rtpPortMax": 40023,
    }


def test_a_redial_keeps_its_window_even_if_another_bridge_shows_it() -> None:
    prev = BridgeStatus(attempt=1, networking=Networking(mode="HostNetwork", port_slot=3))
    plan = first_step(HOST, prev)
    placed = place(plan, prev, HOST, "u", SETTINGS, PlacementWorld(taken_slots=frozenset({3})))
    assert placed.create_pod == 1
    assert placed.status.networking is not None and placed.status.networking.port_slot == 3


def test_without_a_ready_node_with_an_external_ip_no_pod_is_placed() -> None:
    prev = BridgeStatus(retries=1, networking=Networking(mode="HostNetwork", port_slot=1))
    plan = first_step(EXTERNAL, prev)
    world = PlacementWorld(nodes=(node("a", None),))
    placed = place(plan, prev, EXTERNAL, "u", SETTINGS, world)
    assert placed.create_pod is None and placed.network is None and placed.events == []
    # What the step had planned (podName, startedAt, conditions) is not written: the next
    # step tries again from the same status; only the attempt's wait has begun.
    assert placed.status == BridgeStatus(
        phase=Phase.PENDING,
        reason="NoPlacement",
        message=NO_NODE_MESSAGE,
        retries=1,
        networking=prev.networking,
        pending_since="2026-01-02T03:04:05Z",
    )


def test_the_external_ip_comes_from_the_node_with_fewest_bridges() -> None:
    plan = first_step(EXTERNAL)
    pods = [pod_on("a"), pod_on("a"), pod_on("b"), pod_on("b", "Succeeded"), pod_on("b", "Failed")]
    assert bridges_per_node(pods) == {"a": 2, "b": 1}
    world = PlacementWorld(
        nodes=(node("a", "198.51.100.1"), node("b", "198.51.100.2")),
        bridges_per_node=bridges_per_node(pods),
    )
    placed = place(plan, BridgeStatus(), EXTERNAL, "u", SETTINGS, world)
    assert placed.network is not None and placed.network.node_name == "b"
    shown = render_status(placed.status)["networking"]
    assert (shown["nodeName"], shown["publicAddress"]) == ("b", "198.51.100.2")


def test_nodes_are_read_only_for_a_pod_that_advertises_one() -> None:
    assert needs_node(EXTERNAL, SETTINGS)
    assert not needs_node(HOST, SETTINGS)
    # The source means nothing without host networking.
    assert not needs_node(
        {**SPEC, "networking": {"publicAddressSource": "NodeExternalIP"}}, SETTINGS
    )


def test_a_plan_without_a_pod_is_not_placed() -> None:
    waiting = Plan(status=BridgeStatus(phase=Phase.STREAMING))
    assert place(waiting, BridgeStatus(), EXTERNAL, "u", SETTINGS, PlacementWorld()) is waiting


def bridge_pod(name: str, phase: str = "Running", deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-02T03:04:05Z"
    return {"metadata": meta, "status": {"phase": phase}}


STREAMING = BridgeStatus(phase=Phase.STREAMING, reason="Streaming", pod_name="b-bridge-1")


def test_deleting_a_live_bridge_stops_its_pods_and_shows_terminating() -> None:
    pods = [bridge_pod("b-bridge-0", "Failed"), bridge_pod("b-bridge-1")]
    stop = plan_stop(STREAMING, pods, 0.0, SETTINGS)
    assert stop.delete_pods == ("b-bridge-0", "b-bridge-1")
    assert stop.wait_for == ("b-bridge-1",) and not stop.gave_up
    assert stop.status is not None
    assert (stop.status.phase, stop.status.reason) == (Phase.TERMINATING, "Deleting")
    assert stop.status.pod_name == "b-bridge-1"  # the rest of the status stays


def test_a_pod_already_stopping_is_not_deleted_again_nor_the_status_rewritten() -> None:
    terminating = BridgeStatus(phase=Phase.TERMINATING, reason="Deleting")
    stop = plan_stop(terminating, [bridge_pod("b-bridge-1", deleting=True)], 3.0, SETTINGS)
    assert stop.delete_pods == () and stop.wait_for == ("b-bridge-1",)
    assert stop.status is None


def test_a_finished_bridge_is_let_go_at_once_and_keeps_its_phase() -> None:
    done = BridgeStatus(phase=Phase.SUCCEEDED)
    stop = plan_stop(done, [bridge_pod("b-bridge-0", "Succeeded")], 0.0, SETTINGS)
    assert stop == StopPlan(delete_pods=("b-bridge-0",))
    # A finished bridge whose pod still runs waits for it, but its phase stays final.
    stop = plan_stop(done, [bridge_pod("b-bridge-0")], 0.0, SETTINGS)
    assert stop.wait_for == ("b-bridge-0",) and stop.status is None


def test_pods_that_outlive_the_terminating_timeout_are_let_go() -> None:
    timeout = SETTINGS.terminating_timeout_seconds
    stop = plan_stop(STREAMING, [bridge_pod("b-bridge-1")], timeout, SETTINGS)
    assert stop.gave_up and stop.wait_for == () and stop.status is None
    assert stop.delete_pods == ("b-bridge-1",)
