"""Benchmark: calls per node as pods, on the real-node tier (docs/e2e-node.md).

The chart installed on a real kubelet + containerd node, bridge pods made by the operator, each
calling its own SIPp on the host and publishing to nginx-rtmp there. Reported:

- **start**: `kubectl apply` of a resource → its pod exists → the pod is Running → the bridge's
  first RTMP publish reaches nginx-rtmp (its ``on_publish``; the bridge connects before it dials),
  on a warm node (images imported, earlier pods started), several times;
- **calls per node**: N bridge pods at once, every recording checked as bench/bridge_bench.py
  checks (the right tone, 98 % of it); with the chart's requests the node admits only as many
  as fit by requests, the rest wait Pending;
- **per-pod cost** during the calls' steady state, read from the pods' cgroups and /proc: the
  bridge container, the pause container, the pod's containerd shim, and kubelet's and
  containerd's growth over an idle node, per pod; memory as working set (what kubelet compares
  with limits) and the bridge container's peak.

Needs root and what the real-node tier needs. Run it alone on the machine (it measures it):

    .venv/bin/python -m bench.node_bench --concurrency 8 16 --cpu-request 50m --memory-request 96Mi
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.bridge_bench import FREQUENCY, is_clean
from siprtmp_bridge.demo.ports import free_port
from tests.e2e.node_harness import GATEWAY, Node, missing_node_parts, started_node
from tests.e2e.release import BRIDGE_LABEL, Release, manifest
from tests.operator.k8s_harness import plain, wait_for
from tests.support.nginx_rtmp import NginxRtmp
from tests.support.ports import free_udp_pair
from tests.support.publish_log import PublishLog
from tests.support.rtp_pcap import PCMU, make_tone_pcap
from tests.support.sipp import SippPeer

CGROUP = Path("/sys/fs/cgroup")
TICKS = os.sysconf("SC_CLK_TCK")
#: How long SIPp waits for its INVITE: pods started together come up over many seconds.
SIPP_WAIT_MS = 180_000


# Reading the node --------------------------------------------------------------------------
def _cgroup_dir(controller: str, pod_uid: str) -> Path | None:
    """The pod's cgroup (cgroupfs driver: kubepods[/burstable|/besteffort]/pod<uid>)."""
    for qos in ("", "burstable/", "besteffort/"):
        path = CGROUP / controller / "kubepods" / f"{qos}pod{pod_uid}"
        if path.is_dir():
            return path
    return None


def _read_int(path: Path) -> int:
    return int(path.read_text().split()[0])


def _working_set(memory_dir: Path) -> int:
    """usage - inactive file pages: what kubelet reports and evicts by (cgroup v1)."""
    stat = dict(line.split() for line in (memory_dir / "memory.stat").read_text().splitlines())
    return max(
        0, _read_int(memory_dir / "memory.usage_in_bytes") - int(stat["total_inactive_file"])
    )


@dataclass(frozen=True)
class PodCost:
    """One pod's containers at one instant: CPU-seconds so far, working set, peak (bytes)."""

    bridge_cpu: float
    pause_cpu: float
    bridge_memory: int
    pause_memory: int
    bridge_peak_memory: int


def pod_cost(pod: dict[str, Any]) -> PodCost | None:
    """The pod's bridge and pause containers from its cgroups (v1); None when gone."""
    statuses = pod.get("status", {}).get("containerStatuses") or []
    container_id = str((statuses[0] if statuses else {}).get("containerID", "")).split("//")[-1]
    cpu_dir = _cgroup_dir("cpuacct", pod["metadata"]["uid"])
    memory_dir = _cgroup_dir("memory", pod["metadata"]["uid"])
    if not container_id or cpu_dir is None or memory_dir is None:
        return None
    try:
        pause = [d.name for d in cpu_dir.iterdir() if d.is_dir() and d.name != container_id]
        return PodCost(
            bridge_cpu=_read_int(cpu_dir / container_id / "cpuacct.usage") / 1e9,
            pause_cpu=sum(_read_int(cpu_dir / p / "cpuacct.usage") for p in pause) / 1e9,
            bridge_memory=_working_set(memory_dir / container_id),
            pause_memory=sum(_working_set(memory_dir / p) for p in pause),
            bridge_peak_memory=_read_int(memory_dir / container_id / "memory.max_usage_in_bytes"),
        )
    except (OSError, KeyError, ValueError):
        return None


@dataclass(frozen=True)
class ProcessCost:
    """Processes summed: CPU-seconds (with reaped children: runc runs under the shims) and
    proportional set size (shared pages split among their users) in bytes."""

    cpu: float
    pss: int
    count: int


def process_cost(pids: list[int]) -> ProcessCost:
    cpu, pss, count = 0.0, 0, 0
    for pid in pids:
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
            (pss_kib,) = [int(line.split()[1]) for line in rollup if line.startswith("Pss:")]
            cpu += sum(int(f) for f in fields[11:15]) / TICKS
            pss += pss_kib * 1024
            count += 1
    return ProcessCost(cpu, pss, count)


def shim_pids(node: Node) -> list[int]:
    """containerd's shims of this node (one per pod sandbox)."""
    mark = str(node.dir).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                cmdline = (entry / "cmdline").read_bytes()
                if cmdline.startswith(b"/usr/bin/containerd-shim") and mark in cmdline:
                    found.append(int(entry.name))
    return found


def node_cpu_seconds() -> float:
    """The machine's busy CPU-seconds (all cores, all processes)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / TICKS


@dataclass(frozen=True)
class Snapshot:
    at: float
    pods: dict[str, PodCost]
    shims: ProcessCost
    kubelet: ProcessCost
    containerd: ProcessCost
    machine_cpu: float


def snapshot(node: Node, pods: list[dict[str, Any]]) -> Snapshot:
    assert node.kubelet is not None and node.containerd is not None
    costs = {p["metadata"]["name"]: pod_cost(p) for p in pods}
    return Snapshot(
        at=time.monotonic(),
        pods={name: cost for name, cost in costs.items() if cost is not None},
        shims=process_cost(shim_pids(node)),
        kubelet=process_cost([node.kubelet.popen.pid]),
        containerd=process_cost([node.containerd.popen.pid]),
        machine_cpu=node_cpu_seconds(),
    )


def rate(before: float, after: float, seconds: float) -> float:
    """CPU-ms per second."""
    return (after - before) / seconds * 1000


# Driving calls -----------------------------------------------------------------------------
@dataclass
class Bench:
    node: Node
    release: Release
    workdir: Path
    rtmp: NginxRtmp
    publishes: PublishLog
    seconds: float

    def peer(self, seconds: float) -> SippPeer:
        pcap = make_tone_pcap(self.workdir / f"tone-{seconds:g}.pcap", PCMU, FREQUENCY, seconds)
        return SippPeer(
            "uas_tone_hangup.xml",
            free_port(),
            free_udp_pair(),
            self.workdir,
            {
                "pcap": str(pcap),
                "payload_type": "0",
                "codec": "PCMU/8000",
                "direction": "sendonly",
                "call_ms": str(int(seconds * 1000) + 800),
                "wait_ms": str(SIPP_WAIT_MS),
            },
            host=GATEWAY,
        ).start()

    def pods(self, ns: str) -> list[dict[str, Any]]:
        listed = self.release.core.list_namespaced_pod(ns, label_selector=BRIDGE_LABEL)
        return [plain(self.release.api, p) for p in listed.items]

    def published(self, stream: str) -> bool:
        return any(n.get("name") == stream for n in self.publishes.notifications)

    def start_once(self, ns: str, name: str) -> dict[str, float]:
        """apply → pod exists → Running → first RTMP publish, in seconds (polled every 20 ms)."""
        peer = self.peer(3.0)
        marks: dict[str, float] = {}
        t0 = time.monotonic()
        self.release.apply(manifest(ns, name, peer, self.rtmp))
        marks["kubectl apply returned"] = time.monotonic() - t0
        # The API shows the pod Running only once kubelet has reported it, which may come
        # after the bridge's first publish: wait for both.
        while len(marks) < 4 and time.monotonic() - t0 < 120:
            if "pod Running" not in marks:
                pods = self.pods(ns)
                pods = [p for p in pods if p["metadata"]["labels"][BRIDGE_LABEL] == name]
                if pods:
                    marks.setdefault("pod created", time.monotonic() - t0)
                    if pods[0].get("status", {}).get("phase") == "Running":
                        marks.setdefault("pod Running", time.monotonic() - t0)
            if self.published(name):
                marks.setdefault("first RTMP publish", time.monotonic() - t0)
            time.sleep(0.02)
        self.release.wait_phase(ns, name, "Succeeded", timeout=60)
        peer.wait(10)
        return marks

    def concurrent(self, ns: str, count: int) -> None:
        """``count`` calls applied at once; the steady state's costs; every recording checked."""
        names = [f"c{count}-{i}" for i in range(count)]
        peers = [self.peer(self.seconds) for _ in names]
        idle = snapshot(self.node, [])
        time.sleep(5)
        idle_after = snapshot(self.node, [])
        t0 = time.monotonic()
        self.release.apply(
            *(manifest(ns, n, p, self.rtmp) for n, p in zip(names, peers, strict=True))
        )

        def all_streaming() -> bool:
            phases = [self.release.status(ns, n).get("phase") for n in names]
            return all(p == "Streaming" for p in phases) or (
                # With requests the node cannot fit, the rest wait Pending: measure those running.
                time.monotonic() - t0 > 60 and "Streaming" in phases
            )

        wait_for("calls Streaming", all_streaming, timeout=self.seconds + 60, interval=0.5)
        streaming_s = time.monotonic() - t0
        window = min(10.0, max(2.0, self.seconds - streaming_s - 4))
        pods = [p for p in self.pods(ns) if p.get("status", {}).get("phase") == "Running"]
        before = snapshot(self.node, pods)
        time.sleep(window)
        after = snapshot(self.node, pods)
        for name in names:
            self.release.wait_phase(ns, name, "Succeeded", timeout=self.seconds * 3 + 120)
        for peer in peers:
            peer.wait(10)
        clean = sum(is_clean(self.rtmp, name, self.seconds) for name in names)
        report_concurrent(
            count, clean, streaming_s, len(pods), (idle, idle_after), (before, after), t0
        )


def report_concurrent(
    count: int,
    clean: int,
    streaming_s: float,
    running: int,
    idle_window: tuple[Snapshot, Snapshot],
    window: tuple[Snapshot, Snapshot],
    applied_at: float,
) -> None:
    """The per-pod figures of one concurrent run: CPU in the steady ``window`` (beyond the
    idle node's for kubelet and containerd), memory at its end."""
    (idle, idle_after), (before, after) = idle_window, window
    seconds, idle_s = after.at - before.at, idle_after.at - idle.at
    names = [n for n in before.pods if n in after.pods]
    n = len(names)
    bridge = [rate(before.pods[p].bridge_cpu, after.pods[p].bridge_cpu, seconds) for p in names]
    pause = [rate(before.pods[p].pause_cpu, after.pods[p].pause_cpu, seconds) for p in names]
    # One shim per pod sandbox, the operator's among them: the mean is one pod's.
    shim = rate(before.shims.cpu, after.shims.cpu, seconds) / max(1, after.shims.count)

    def growth(b: ProcessCost, a: ProcessCost, ib: ProcessCost, ia: ProcessCost) -> float:
        """CPU-ms/s per pod beyond the idle node's."""
        return (rate(b.cpu, a.cpu, seconds) - rate(ib.cpu, ia.cpu, idle_s)) / max(1, n)

    kubelet = growth(before.kubelet, after.kubelet, idle.kubelet, idle_after.kubelet)
    containerd = growth(before.containerd, after.containerd, idle.containerd, idle_after.containerd)
    machine = rate(before.machine_cpu, after.machine_cpu, seconds) / 1000
    mib = 1024 * 1024
    bridge_mem = [after.pods[p].bridge_memory / mib for p in names]
    peak_mem = [after.pods[p].bridge_peak_memory / mib for p in names]
    pause_mem = [after.pods[p].pause_memory / mib for p in names]
    shim_mem = after.shims.pss / max(1, after.shims.count) / mib
    kubelet_mem = (after.kubelet.pss - idle_after.kubelet.pss) / max(1, n) / mib
    print(
        f"{count} calls applied at once: {running} pods Running, all Streaming after "
        f"{streaming_s:.1f} s, {clean}/{count} clean recordings; machine {machine:.2f} cores busy"
    )
    if not n:
        return
    per_pod = statistics.mean(bridge) + statistics.mean(pause) + shim + kubelet + containerd
    print(
        f"  CPU-ms/s per pod: bridge {statistics.mean(bridge):.1f} "
        f"({min(bridge):.1f} to {max(bridge):.1f}), pause {statistics.mean(pause):.2f}, "
        f"shim {shim:.2f}, kubelet +{kubelet:.2f}, containerd +{containerd:.2f} "
        f"→ {per_pod:.1f} in all: {1000 / per_pod:.0f} calls per core"
    )
    # What a pod used before its steady state: the bridge's CPU by the window's start, less
    # the steady rate over the time since it was applied (longer than it ran: a lower bound).
    startup = [
        before.pods[p].bridge_cpu - r / 1000 * (before.at - applied_at)
        for p, r in zip(names, bridge, strict=True)
    ]
    print(
        f"  start-up: bridge {statistics.mean(startup):.2f} CPU-s beyond its steady rate "
        f"({min(startup):.2f} to {max(startup):.2f})"
    )
    print(
        f"  MiB per pod: bridge {statistics.mean(bridge_mem):.1f} working set "
        f"(peak {max(peak_mem):.1f}), pause {statistics.mean(pause_mem):.2f}, "
        f"shim {shim_mem:.1f} PSS, kubelet +{kubelet_mem:.2f} PSS"
    )


@contextlib.contextmanager
def bench(arguments: argparse.Namespace, values: tuple[str, ...]) -> Iterator[Bench]:
    with (
        tempfile.TemporaryDirectory(prefix="siprtmp-node-bench-") as directory,
        started_node() as node,
    ):
        workdir = Path(directory)
        node.start_workload_controllers()
        release = Release(node, workdir, values)
        release.install()
        publishes = PublishLog()
        rtmp = NginxRtmp(
            workdir / "nginx", free_port(), host=GATEWAY, on_publish=publishes.url
        ).start()
        try:
            yield Bench(node, release, workdir, rtmp, publishes, arguments.seconds)
        finally:
            rtmp.stop()
            publishes.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0, help="each concurrent call")
    parser.add_argument("--starts", type=int, default=5, help="single starts to time")
    parser.add_argument("--concurrency", type=int, nargs="*", default=[8])
    parser.add_argument("--cpu-request", help="bridge.resources.requests.cpu (default: chart's)")
    parser.add_argument("--memory-request", help="bridge.resources.requests.memory")
    arguments = parser.parse_args()
    missing = missing_node_parts()
    if missing:
        print(f"missing for the real-node tier: {', '.join(missing)}", file=sys.stderr)
        return 2
    values: tuple[str, ...] = ()
    if arguments.cpu_request:
        values += (f"bridge.resources.requests.cpu={arguments.cpu_request}",)
    if arguments.memory_request:
        values += (f"bridge.resources.requests.memory={arguments.memory_request}",)
    with bench(arguments, values) as b:
        node = plain(b.release.api, b.release.core.read_node(b.node.name))
        allocatable = node["status"]["allocatable"]
        print(f"node allocatable: {allocatable}; chart values: {values or 'defaults'}")
        ns = b.release.namespace("bench-start", rtmps_ca=False)
        starts = [b.start_once(ns, f"start-{i}") for i in range(arguments.starts)]
        for mark in starts[0]:
            seen = sorted(s[mark] for s in starts if mark in s)
            median = statistics.median(seen)
            print(f"  applied → {mark}: median {median:.2f} s ({seen[0]:.2f} to {seen[-1]:.2f})")
        for count in arguments.concurrency:
            b.concurrent(b.release.namespace(f"bench-{count}", rtmps_ca=False), count)
    return 0


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_NOFILE, (8192, 8192))
    sys.exit(main())
