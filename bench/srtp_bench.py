"""The SRTP run of the benchmark: the bridge's CPU for an SRTP audio call against a plain one.

SIPp's pcap playback cannot encrypt, so both calls go to baresip (its ausine tone, PCMU, the
bridge sending silence back): once plain (``mediaEncryption: disable``), once requiring SRTP
(baresip's ``srtp-mand``, the bridge's ``require``), alternating, and the bridge's CPU-seconds
(user + system, from the kernel's accounting of the exited child) are compared.

    .venv/bin/python -m bench.srtp_bench --seconds 30 --runs 3
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

from siprtmp_bridge.demo.ports import free_port
from tests.support.baresip import BaresipPeer
from tests.support.nginx_rtmp import NginxRtmp
from tests.support.ports import free_udp_window


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def bridge_cpu(workdir: Path, server: NginxRtmp, name: str, seconds: int, srtp: bool) -> float:
    """One call of ``seconds`` to a fresh baresip; the bridge's CPU-seconds."""
    peer = BaresipPeer(
        workdir / name,
        free_port(),
        free_udp_window(10),
        None,
        seconds,
        free_port(),
        mediaenc="srtp-mand" if srtp else None,
    )
    peer.start().wait_ready()
    spec = {
        "callee": peer.uri,
        "rtmpUrl": server.url,
        "rtmpStream": name,
        "hasAudio": True,
        "connection": {"mediaEncryption": "require" if srtp else "disable"},
        "nat": {"bindAddress": "127.0.0.1", "rtpPortMin": 30000, "rtpPortMax": 40000},
    }
    path = workdir / f"{name}.json"
    path.write_text(json.dumps(spec))
    executable = Path(sys.executable).parent / "sip-rtmp-bridge"
    before = _children_cpu()  # baresip, reaped by peer.stop(), is counted after this
    result = subprocess.run(
        [str(executable), "run", "--spec", str(path)], capture_output=True, text=True, check=False
    )
    cpu = _children_cpu() - before
    peer.stop()
    final = json.loads(result.stdout.strip().splitlines()[-1])
    expected = "AES_CM_128_HMAC_SHA1_80" if srtp else None
    if final["reason"] != "RemoteHangup" or final["call"]["srtpSuite"] != expected:
        raise SystemExit(f"{name}: {final['reason']} {final['call']}")
    return cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--runs", type=int, default=3)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="srtp-bench-") as directory:
        workdir = Path(directory)
        server = NginxRtmp(workdir / "nginx", free_port(), host="127.0.0.1").start()
        try:
            figures: dict[str, list[float]] = {"plain": [], "srtp": []}
            for run in range(arguments.runs):
                for kind, cpus in figures.items():
                    cpus.append(
                        bridge_cpu(
                            workdir, server, f"{kind}-{run}", arguments.seconds, kind == "srtp"
                        )
                    )
        finally:
            server.stop()
    plain, srtp = (sorted(figures[kind]) for kind in ("plain", "srtp"))
    ratios = sorted(s / p for s, p in zip(figures["srtp"], figures["plain"], strict=True))
    print(
        json.dumps(
            {
                "seconds": arguments.seconds,
                "plain_cpu_seconds": [round(v, 3) for v in plain],
                "srtp_cpu_seconds": [round(v, 3) for v in srtp],
                "srtp_over_plain": [round(r, 3) for r in ratios],
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
