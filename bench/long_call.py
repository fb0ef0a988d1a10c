"""Benchmark: one long call (webinars run for hours), the bridge's resources sampled throughout.

SIPp streams a tone over PCMU for the whole call and the bridge publishes it to nginx-rtmp.
Every ``--interval`` seconds the bridge's resident memory (VmRSS), open file descriptors and
threads are read from /proc; reported are the first and last samples, the peak and the slope
of a least-squares line over the samples after the first minute (start-up excluded): a leak
shows as a slope that a longer call would keep paying. The recording is decoded at the end.

    .venv/bin/python -m bench.long_call --minutes 30
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from bench.bridge_bench import FREQUENCY, bridge_spec, compile_bridge, start_bridge, tone_peer
from siprtmp_bridge.demo.ports import free_port
from tests.support.nginx_rtmp import NginxRtmp
from tests.support.recording import measure_recording, tone_gaps
from tests.support.rtp_pcap import PCMU, make_tone_pcap

#: Samples this early are start-up (imports, pjsua, the RTMP handshake), not the call's cost.
WARM_UP_SECONDS = 60.0


@dataclass(frozen=True)
class Sample:
    seconds: float  # since the bridge started
    rss_mib: float
    open_files: int
    threads: int


def sample(pid: int, started: float) -> Sample | None:
    """The process's memory, descriptors and threads now; None once it has gone."""
    proc = Path(f"/proc/{pid}")
    try:
        status = dict(
            line.split(":", 1) for line in (proc / "status").read_text().splitlines() if ":" in line
        )
        open_files = len(list((proc / "fd").iterdir()))
    except OSError:
        return None
    return Sample(
        time.monotonic() - started,
        int(status["VmRSS"].split()[0]) / 1024,
        open_files,
        int(status["Threads"]),
    )


def slope_per_hour(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value), per hour; 0 for fewer than two points."""
    if len(points) < 2:
        return 0.0
    mean_t = sum(t for t, _ in points) / len(points)
    mean_v = sum(v for _, v in points) / len(points)
    spread = sum((t - mean_t) ** 2 for t, _ in points)
    if spread == 0:
        return 0.0
    return sum((t - mean_t) * (v - mean_v) for t, v in points) / spread * 3600


def watch(pid: int, interval: float, samples: list[Sample]) -> None:
    started = time.monotonic()
    while (taken := sample(pid, started)) is not None:
        samples.append(taken)
        time.sleep(interval)


def report(samples: list[Sample]) -> None:
    steady = [s for s in samples if s.seconds >= WARM_UP_SECONDS] or samples
    first, last = steady[0], steady[-1]
    for name, unit, value in (
        ("RSS", " MiB", lambda s: s.rss_mib),
        ("open files", "", lambda s: float(s.open_files)),
        ("threads", "", lambda s: float(s.threads)),
    ):
        slope = slope_per_hour([(s.seconds, value(s)) for s in steady])
        peak = max(value(s) for s in samples)
        print(
            f"  {name:10}: {value(first):7.1f} at {first.seconds:4.0f} s → {value(last):7.1f} at "
            f"{last.seconds:4.0f} s, peak {peak:.1f}{unit}, slope {slope:+.2f}{unit}/h"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=30.0, help="the call's length")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between samples")
    arguments = parser.parse_args()
    seconds = arguments.minutes * 60
    with tempfile.TemporaryDirectory(prefix="siprtmp-long-call-") as directory:
        workdir = Path(directory)
        rtmp = NginxRtmp(workdir / "nginx", free_port()).start()
        compile_bridge()
        try:
            pcap = make_tone_pcap(workdir / "tone.pcap", PCMU, FREQUENCY, seconds)
            peer = tone_peer(workdir, pcap, seconds)
            spec = bridge_spec(peer, rtmp, "long", 64000)
            process = start_bridge(workdir, spec, "long")
            samples: list[Sample] = []
            watcher = threading.Thread(
                target=watch, args=(process.pid, arguments.interval, samples), daemon=True
            )
            watcher.start()
            code = process.wait(seconds + 120)
            watcher.join(arguments.interval + 5)
            peer.wait(10)
            (recording,) = rtmp.recordings_of("long")
            tone = measure_recording(recording)
            gaps = tone_gaps(recording)
        finally:
            rtmp.stop()
    print(f"one {arguments.minutes:g}-minute G.711 call, sampled every {arguments.interval:g} s")
    print(
        f"  exit {code}; stream: {tone.tone_seconds:.1f} s of {tone.frequency_hz:.1f} Hz, "
        f"{len(gaps)} gaps (longest {max((g for _, g in gaps), default=0.0):.2f} s)"
    )
    report(samples)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
