"""Benchmark: N SipRtmpBridge resources against a real API server.

Measures, from the moment the N resources are applied: all N bridge pods created; all N
statuses written (Pending, podName set); then, after the "kubelet" marks every pod Running and
each bridge serves a live Streaming status on its pod IP, all N statuses Streaming. Reports the
operator's RSS (current and peak) and CPU seconds. Same harness as the `k8s` test tier.

    .venv/bin/python bench/operator_bench.py [-n 100] [--poll 2]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, cast

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.operator.conftest import (
    Cluster,
    render_chart,
    running_cluster,
)
from tests.operator.k8s_harness import StatusServer, wait_for

NS = "bench"


def proc_stats(pid: int) -> dict[str, float]:
    """RSS and peak RSS (MiB) and CPU seconds of a process, from /proc."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in {"VmRSS", "VmHWM"}:
            fields[key] = int(value.split()[0]) / 1024
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(stat[11]) + int(stat[12])
    return {"rss_mib": fields["VmRSS"], "peak_rss_mib": fields["VmHWM"], "cpu_s": ticks / 100}


def count_status(c: Cluster, pred: Any) -> int:
    listing = cast(
        dict[str, Any],
        c.custom.list_namespaced_custom_object("siprtmp.io", "v1alpha1", NS, "siprtmpbridges"),
    )
    items: list[dict[str, Any]] = listing["items"]
    return sum(1 for o in items if pred(o.get("status") or {}))


def run(n: int, poll: float, env: dict[str, str]) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory() as tmp,
        running_cluster(
            Path(tmp), render_chart(), {"SIPRTMP_POLL_INTERVAL_SECONDS": str(poll), **env}
        ) as c,
    ):
        assert c.operator.proc is not None
        pid = c.operator.proc.popen.pid
        c.namespace(NS)
        idle = proc_stats(pid)
        spec = {"callee": "sip:bench@sip.example.test", "rtmpUrl": "rtmp://rtmp.example.test/live"}
        t0 = time.monotonic()
        for i in range(n):
            c.create_bridge(NS, f"b{i}", {**spec, "rtmpStream": f"s{i}"})
        t_applied = time.monotonic() - t0
        wait_for("all pods", lambda: len(c.pods(NS)) >= n or None, timeout=600, interval=0.2)
        t_pods = time.monotonic() - t0
        wait_for(
            "all statuses",
            lambda: (
                count_status(c, lambda s: s.get("podName") and s.get("phase") == "Pending") >= n
                or None
            ),
            timeout=600,
            interval=0.2,
        )
        t_status = time.monotonic() - t0

        servers = []
        doc = {
            "phase": "Streaming",
            "reason": "Streaming",
            "message": "bench",
            "call": {"state": "ESTABLISHED", "sipStatusCode": 200},
            "stream": {"state": "PUBLISHING", "bytesSent": 1, "reconnects": 0},
        }
        try:
            t1 = time.monotonic()
            for i in range(n):
                ip = f"127.0.{100 + i // 250}.{i % 250 + 2}"
                server = StatusServer(ip, c.status_port)
                server.doc = doc
                servers.append(server)
                c.set_pod_running(NS, f"b{i}-bridge-0", ip)
            t_running = time.monotonic() - t1
            wait_for(
                "all Streaming",
                lambda: count_status(c, lambda s: s.get("phase") == "Streaming") >= n or None,
                timeout=600,
                interval=0.2,
            )
            t_streaming = time.monotonic() - t1
            steady_t = time.monotonic()
            steady_cpu = proc_stats(pid)["cpu_s"]
            time.sleep(10)
            steady = (proc_stats(pid)["cpu_s"] - steady_cpu) / (time.monotonic() - steady_t)
        finally:
            for server in servers:
                server.close()
        end = proc_stats(pid)
    return {
        "bridges": n,
        "poll_interval_s": poll,
        "apply_s": round(t_applied, 2),
        "applied_to_all_pods_s": round(t_pods, 2),
        "applied_to_all_status_s": round(t_status, 2),
        "pods_marked_running_s": round(t_running, 2),
        "running_to_all_streaming_s": round(t_streaming, 2),
        "operator_rss_idle_mib": round(idle["rss_mib"], 1),
        "operator_rss_mib": round(end["rss_mib"], 1),
        "operator_peak_rss_mib": round(end["peak_rss_mib"], 1),
        "operator_cpu_s_total": round(end["cpu_s"], 1),
        "operator_cpu_steady_streaming_cores": round(steady, 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("-n", type=int, default=100, help="number of bridges (default 100)")
    parser.add_argument(
        "--poll", type=float, default=2.0, help="operator poll interval, seconds (chart default 2)"
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for the operator process",
    )
    args = parser.parse_args()
    env = dict(item.split("=", 1) for item in args.env)
    result = run(args.n, args.poll, env)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
