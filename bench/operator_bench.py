"""Benchmark: N SipRtmpBridge resources against a real API server.

Measures, from the moment the N resources are applied: all N bridge pods created; all N
statuses written (Pending, podName set); then, after the "kubelet" marks every pod Running and
each bridge serves a live Streaming status on its pod IP, each status Streaming (per bridge,
from its pod marked Running). Then, with every bridge streaming: the operator's CPU and RSS,
the API server's requests per second (its ``apiserver_request_total``; the bench itself makes
none meanwhile) and the bridges' /status reads per second, over a steady window; and how long a
change a bridge reports takes to show in its status (a tenth of them turn Reconnecting).

No kubelet runs: the bench writes each pod's status as a kubelet would (``set_pod_running``), and
each bridge's /status is served over real HTTP on the pod IP written there, one listening
socket per pod address, so the operator reads N addresses as it would in a cluster. The
operator runs with the chart's settings and timings (not the test tier's shortened ones) and
logs at the chart's default level. Same harness as the `k8s` test tier.

    .venv/bin/python bench/operator_bench.py [-n 1000] [--steady 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any, cast

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from siprtmp_operator.settings import Settings, env_name
from tests.operator.conftest import TEST_ENV, Cluster, render_chart, running_cluster
from tests.operator.k8s_harness import deployment_env, wait_for

NS = "bench"
STREAMING = {
    "phase": "Streaming",
    "reason": "Streaming",
    "message": "bench",
    "call": {"state": "ESTABLISHED", "sipStatusCode": 200},
    "stream": {"state": "PUBLISHING", "bytesSent": 1, "reconnects": 0},
}
RECONNECTING = {
    **STREAMING,
    "phase": "Reconnecting",
    "reason": "RtmpReconnecting",
    "stream": {"state": "RECONNECTING", "bytesSent": 1, "reconnects": 1},
}


def proc_stats(pid: int) -> dict[str, float]:
    """RSS and peak RSS (MiB) and CPU seconds of a process, from /proc."""
    fields_ = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in {"VmRSS", "VmHWM"}:
            fields_[key] = int(value.split()[0]) / 1024
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(stat[11]) + int(stat[12])
    return {"rss_mib": fields_["VmRSS"], "peak_rss_mib": fields_["VmHWM"], "cpu_s": ticks / 100}


def chart_timings(chart: list[dict[str, Any]]) -> dict[str, str]:
    """The chart's values (else the settings' defaults) of the variables the test tier shortens."""
    chart_env = deployment_env(chart)
    defaults = {env_name(f): str(getattr(Settings(), f.name)) for f in fields(Settings)}
    return {k: chart_env.get(k) or defaults[k] for k in TEST_ENV if k in defaults}


def request_total(metrics: str) -> dict[str, float]:
    """``apiserver_request_total`` summed per verb and resource."""
    out: dict[str, float] = {}
    for line in metrics.splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
        key = f"{labels.get('verb')} {labels.get('resource')}"
        out[key] = out.get(key, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


class StatusFleet:
    """Bridges' /status, one listening socket per pod address, all served by one event loop in
    a thread: a thousand threaded servers would cost the bench more than the operator spends."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.docs: dict[str, bytes] = {}
        self.reads = 0
        self.loop = asyncio.new_event_loop()
        self.servers: list[asyncio.Server] = []
        threading.Thread(target=self.loop.run_forever, daemon=True).start()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            body = self.docs[writer.get_extra_info("sockname")[0]]
            self.reads += 1
            head = (
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode() + body)
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    def serve(self, ip: str, doc: dict[str, Any]) -> None:
        self.set(ip, doc)
        start = asyncio.start_server(self._serve, ip, self.port, backlog=64)
        self.servers.append(asyncio.run_coroutine_threadsafe(start, self.loop).result())

    def set(self, ip: str, doc: dict[str, Any]) -> None:
        self.docs[ip] = json.dumps(doc).encode()

    def close(self) -> None:
        for server in self.servers:
            self.loop.call_soon_threadsafe(server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)


def statuses(c: Cluster) -> dict[str, dict[str, Any]]:
    listing = cast(
        dict[str, Any],
        c.custom.list_namespaced_custom_object("siprtmp.io", "v1alpha1", NS, "siprtmpbridges"),
    )
    return {o["metadata"]["name"]: o.get("status") or {} for o in listing["items"]}


def seen_when(
    c: Cluster, names: set[str], pred: Callable[[dict[str, Any]], bool], what: str
) -> dict[str, float]:
    """When (monotonic) each of ``names`` was first seen satisfying ``pred``: the time a list
    returned, so at most one list period (0.5 s and the list itself) after it happened."""
    seen: dict[str, float] = {}
    deadline = time.monotonic() + 600
    while len(seen) < len(names):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: {len(seen)} of {len(names)} after 600 s")
        listed = statuses(c)
        now = time.monotonic()
        for name, st in listed.items():
            if name in names and name not in seen and pred(st):
                seen[name] = now
        time.sleep(0.5)
    return seen


def spread(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "median": round(statistics.median(ordered), 2),
        "p95": round(ordered[int(0.95 * (len(ordered) - 1))], 2),
        "max": round(ordered[-1], 2),
    }


def run(n: int, steady_s: float, env: dict[str, str]) -> dict[str, Any]:
    chart = render_chart()
    with (
        tempfile.TemporaryDirectory() as tmp,
        running_cluster(Path(tmp), chart, {**chart_timings(chart), **env}, verbose=False) as c,
    ):
        assert c.operator.proc is not None
        pid = c.operator.proc.popen.pid
        c.namespace(NS)
        idle = proc_stats(pid)
        spec = {"callee": "sip:bench@sip.example.test", "rtmpUrl": "rtmp://rtmp.example.test/live"}
        names = [f"b{i}" for i in range(n)]
        t0 = time.monotonic()
        for i, name in enumerate(names):
            c.create_bridge(NS, name, {**spec, "rtmpStream": f"s{i}"})
        t_applied = time.monotonic() - t0
        wait_for("all pods", lambda: len(c.pods(NS)) >= n or None, timeout=600, interval=0.5)
        t_pods = time.monotonic() - t0
        wait_for(
            "all statuses",
            lambda: (
                sum(
                    1
                    for s in statuses(c).values()
                    if s.get("podName") and s.get("phase") == "Pending"
                )
                >= n
                or None
            ),
            timeout=600,
            interval=0.5,
        )
        t_status = time.monotonic() - t0

        fleet = StatusFleet(c.status_port)
        try:
            ips = {name: f"127.0.{100 + i // 250}.{i % 250 + 2}" for i, name in enumerate(names)}
            marked: dict[str, float] = {}
            t1 = time.monotonic()
            for name in names:
                fleet.serve(ips[name], STREAMING)
                c.set_pod_running(NS, f"{name}-bridge-0", ips[name])
                marked[name] = time.monotonic()
            t_running = time.monotonic() - t1
            streaming = seen_when(
                c, set(names), lambda s: s.get("phase") == "Streaming", "all Streaming"
            )
            t_streaming = max(streaming.values()) - t1
            time.sleep(5)  # the last transitions' patches and Events settle

            before_api = request_total(c.cp.metrics())
            reads0, cpu0, steady_t = fleet.reads, proc_stats(pid)["cpu_s"], time.monotonic()
            time.sleep(steady_s)
            elapsed = time.monotonic() - steady_t
            steady_cpu = (proc_stats(pid)["cpu_s"] - cpu0) / elapsed
            reads = (fleet.reads - reads0) / elapsed
            after_api = request_total(c.cp.metrics())
            steady_rss = proc_stats(pid)["rss_mib"]
            api = {k: (after_api[k] - before_api.get(k, 0.0)) / elapsed for k in after_api}
            api = {k: round(v, 2) for k, v in sorted(api.items()) if v >= 0.05}

            changed = names[::10]
            t_change = time.monotonic()
            for name in changed:
                fleet.set(ips[name], RECONNECTING)
            shown = seen_when(
                c, set(changed), lambda s: s.get("phase") == "Reconnecting", "changes shown"
            )
            change_latency = [shown[name] - t_change for name in changed]
        finally:
            fleet.close()
        end = proc_stats(pid)
    return {
        "bridges": n,
        "apply_s": round(t_applied, 2),
        "applied_to_all_pods_s": round(t_pods, 2),
        "applied_to_all_status_s": round(t_status, 2),
        "pods_marked_running_s": round(t_running, 2),
        "running_to_all_streaming_s": round(t_streaming, 2),
        "pod_running_to_streaming_s": spread([streaming[k] - marked[k] for k in names]),
        "operator_rss_idle_mib": round(idle["rss_mib"], 1),
        "operator_rss_steady_mib": round(steady_rss, 1),
        "operator_peak_rss_mib": round(end["peak_rss_mib"], 1),
        "operator_cpu_s_total": round(end["cpu_s"], 1),
        "steady_window_s": round(elapsed, 1),
        "operator_cpu_steady_streaming_cores": round(steady_cpu, 3),
        "bridge_status_reads_per_s": round(reads, 1),
        "api_requests_per_s": round(sum(api.values()), 2),
        "api_requests_per_s_by_verb": api,
        "change_to_status_s": {"bridges": len(changed), **spread(change_latency)},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("-n", type=int, default=1000, help="number of bridges (default 1000)")
    parser.add_argument(
        "--steady", type=float, default=30.0, help="steady-state window, seconds (default 30)"
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for the operator process (e.g. SIPRTMP_POLL_INTERVAL_SECONDS=2)",
    )
    args = parser.parse_args()
    env = dict(item.split("=", 1) for item in args.env)
    result = run(args.n, args.steady, env)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
