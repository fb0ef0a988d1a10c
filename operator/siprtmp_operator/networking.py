"""Media networking choices for a bridge pod, as pure functions.

Pod IPs are private, so SIP media (whose address travels inside SDP) breaks unless the bridge
advertises an address the far end can reach and receives RTP on ports that address forwards.
Three levers, combinable: STUN (the bridge learns its public mapping), host networking with a
port window per pod (the node's address, no NAT between node and pod), and the node's ExternalIP
advertised explicitly. See docs/operator.md for when to use which.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .settings import Settings


@dataclass(frozen=True)
class PortWindow:
    """Consecutive host ports owned by one bridge pod on its node.

    Layout: ``first`` = status HTTP, ``first + 1`` = local SIP port, the rest = RTP/RTCP.
    """

    slot: int
    first: int
    size: int

    @property
    def status_port(self) -> int:
        return self.first

    @property
    def sip_port(self) -> int:
        return self.first + 1

    @property
    def rtp_min(self) -> int:
        return self.first + 2

    @property
    def rtp_max(self) -> int:
        return self.first + self.size - 1


@dataclass(frozen=True)
class NetworkPlan:
    """Everything the pod builder needs to know about one bridge's networking."""

    mode: str
    public_address_source: str
    window: PortWindow | None = None
    node_name: str | None = None
    public_address: str | None = None


@dataclass(frozen=True)
class PlacementWorld:
    """What placing a pod reads: the port slots other live bridges hold, the nodes (listed only
    when the spec needs one, ``needs_node``) and how many live bridge pods each runs."""

    taken_slots: frozenset[int] = frozenset()
    nodes: tuple[Mapping[str, Any], ...] = ()
    bridges_per_node: Mapping[str, int] = field(default_factory=dict)


def effective_mode(spec: Mapping[str, Any], settings: Settings) -> tuple[str, str]:
    """(mode, publicAddressSource) for a spec: its own choice, else the operator's default."""
    net = spec.get("networking") or {}
    mode = str(net.get("mode") or settings.network_mode)
    source = str(net.get("publicAddressSource") or settings.public_address_source)
    if mode != "HostNetwork":
        source = "None"
    return mode, source


def window_for_slot(slot: int, settings: Settings) -> PortWindow:
    """The host port window of a slot number."""
    if not 0 <= slot < settings.host_port_slots:
        raise ValueError(f"port slot {slot} outside 0..{settings.host_port_slots - 1}")
    first = settings.host_port_min + slot * settings.host_port_window
    return PortWindow(slot=slot, first=first, size=settings.host_port_window)


def choose_slot(used: Iterable[int], settings: Settings, seed: str) -> int:
    """Lowest slot no live bridge holds; when all are taken, one derived from ``seed``.

    Reusing a taken slot is still safe: each window's ports are declared as host ports, so the
    scheduler never puts two pods with the same window on one node; such a pod waits (Pending)
    until a node has the window free.
    """
    taken = set(used)
    for slot in range(settings.host_port_slots):
        if slot not in taken:
            return slot
    return sum(seed.encode()) % settings.host_port_slots


def node_external_ip(node: Mapping[str, Any]) -> str | None:
    """A node's ExternalIP address, if it has one."""
    for addr in (node.get("status") or {}).get("addresses") or []:
        if addr.get("type") == "ExternalIP" and addr.get("address"):
            return str(addr["address"])
    return None


def node_is_ready(node: Mapping[str, Any]) -> bool:
    """Ready condition True and not cordoned."""
    if (node.get("spec") or {}).get("unschedulable"):
        return False
    for cond in (node.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return bool(cond.get("status") == "True")
    return False


def choose_node(
    nodes: Iterable[Mapping[str, Any]], bridges_per_node: Mapping[str, int]
) -> tuple[str, str] | None:
    """(node name, external IP) of the ready node with an ExternalIP and the fewest bridges."""
    candidates: list[tuple[int, str, str]] = []
    for node in nodes:
        ip = node_external_ip(node)
        name = (node.get("metadata") or {}).get("name")
        if ip and name and node_is_ready(node):
            candidates.append((bridges_per_node.get(name, 0), name, ip))
    if not candidates:
        return None
    _, name, ip = min(candidates)
    return name, ip


def needs_node(spec: Mapping[str, Any], settings: Settings) -> bool:
    """Whether placing the spec's pod picks a node (it advertises the node's ExternalIP)."""
    return effective_mode(spec, settings)[1] == "NodeExternalIP"


def bridges_per_node(pods: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Bridge pods still running or to run, per node they are bound to."""
    counts: dict[str, int] = {}
    for pod in pods:
        node = (pod.get("spec") or {}).get("nodeName")
        if node and (pod.get("status") or {}).get("phase") not in {"Succeeded", "Failed"}:
            counts[node] = counts.get(node, 0) + 1
    return counts


def plan_network(
    spec: Mapping[str, Any],
    slot: int | None,
    uid: str,
    settings: Settings,
    world: PlacementWorld,
) -> NetworkPlan | None:
    """How the next pod of bridge ``uid`` is networked; None when it cannot be placed (it needs a
    node's ExternalIP and no Ready node has one).

    ``slot`` is the port slot the bridge already holds (its status): a redial keeps its window.
    """
    mode, source = effective_mode(spec, settings)
    window = None
    if mode == "HostNetwork":
        window = window_for_slot(
            slot if slot is not None else choose_slot(world.taken_slots, settings, uid), settings
        )
    node = address = None
    if source == "NodeExternalIP":
        choice = choose_node(world.nodes, world.bridges_per_node)
        if choice is None:
            return None
        node, address = choice
    return NetworkPlan(
        mode=mode,
        public_address_source=source,
        window=window,
        node_name=node,
        public_address=address,
    )
