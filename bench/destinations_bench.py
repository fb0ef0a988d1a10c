"""The destinations run of the benchmark: the same audio call published to 1, 2 and 3
destinations (streams on nginx-rtmp, each on a connection of its own). The call is encoded
once, so each extra destination should cost a small fraction of the call (issue's target:
under 0.1x of one audio call's CPU each). Every destination's recording is checked for the tone.
With ``--rtmps`` the extra destinations are RTMPS (nginx's TLS in front of the same server), each
with its relay process: the whole call's figure counts the relays (the bridge waits for them),
the running one does not.

    .venv/bin/python -m bench.destinations_bench --seconds 60 --runs 3 [--rtmps]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from bench.bridge_bench import (
    FREQUENCY,
    ProcessWatch,
    Usage,
    bridge_spec,
    compile_bridge,
    spread,
    start_bridge,
    tone_peer,
)
from siprtmp_bridge.demo.ports import free_port
from tests.support.nginx_rtmp import NginxRtmp
from tests.support.recording import measure_recording
from tests.support.rtp_pcap import PCMU, make_tone_pcap

COUNTS = (1, 2, 3)


def destinations_run(
    workdir: Path, rtmp: NginxRtmp, pcap: Path, seconds: float, count: int, run: int
) -> Usage:
    """One call to ``count`` destinations; every recording must hold (almost) all the tone.
    The extra ones over RTMPS when ``rtmp`` has a TLS port."""
    peer = tone_peer(workdir, pcap, seconds)
    names = [f"fan{run}-{count}-{index}" for index in range(count)]
    spec = bridge_spec(peer, rtmp, names[0], 64000)
    url = rtmp.tls_url if rtmp.tls_port else rtmp.url
    spec["destinations"] = [{"rtmpUrl": url, "rtmpStream": name} for name in names[1:]]
    env = rtmp.trusting_env if rtmp.tls_port else None
    process = start_bridge(workdir, spec, names[0], env)
    usage = ProcessWatch(process.pid).wait(process)
    peer.wait(10)
    for name in names:
        (recording,) = rtmp.recordings_of(name)
        tone = measure_recording(recording)
        assert abs(tone.frequency_hz - FREQUENCY) < 5, (name, tone)
        assert tone.tone_seconds >= 0.98 * seconds, (name, tone)
    return usage


def report(seconds: float, workdir: Path, rtmp: NginxRtmp, runs: int = 1) -> None:
    """Each run's calls; over several runs, each count's extra as the median and range."""
    pcap = make_tone_pcap(workdir / "fan.pcap", PCMU, FREQUENCY, seconds)
    over = ", the extra ones over RTMPS" if rtmp.tls_port else ""
    print(f"one {seconds:g} s call to several destinations (encoded once{over})")
    extras: dict[int, list[tuple[float, float]]] = {count: [] for count in COUNTS[1:]}
    for run in range(runs):
        usages = {
            count: destinations_run(workdir, rtmp, pcap, seconds, count, run) for count in COUNTS
        }
        if runs > 1:
            print(f" run {run + 1}")
        for count, extra in report_run(usages).items():
            extras[count].append(extra)
    if runs > 1:
        for count, pairs in extras.items():
            print(
                f"  each extra of {count} over {runs} runs: {spread([p[0] for p in pairs])} the "
                f"call, running {spread([p[1] for p in pairs])}"
            )


def report_run(usages: dict[int, Usage]) -> dict[int, tuple[float, float]]:
    """Print one run; returns each count's extra per destination (whole call, running)."""
    one = usages[1]
    extras: dict[int, tuple[float, float]] = {}
    for count, usage in usages.items():
        line = (
            f"  {count} destination(s): {usage.cpu_seconds:.2f} CPU-s, "
            f"{usage.steady_cpu_per_minute:.2f} CPU-s per minute running, "
            f"peak RSS {usage.peak_rss_mib:.1f} MiB"
        )
        if count > 1:
            each = (usage.cpu_seconds - one.cpu_seconds) / (count - 1) / one.cpu_seconds
            running = (
                (usage.steady_cpu_per_minute - one.steady_cpu_per_minute)
                / (count - 1)
                / one.steady_cpu_per_minute
            )
            line += f"; each extra {each:.3f}x the call ({running:.3f}x running)"
            extras[count] = (each, running)
        print(line)
    return extras


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--runs", type=int, default=1, help="repetitions, then median and range")
    parser.add_argument("--rtmps", action="store_true", help="the extra destinations over RTMPS")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="siprtmp-bench-") as directory:
        workdir = Path(directory)
        tls_port = free_port() if arguments.rtmps else None
        rtmp = NginxRtmp(workdir / "nginx", free_port(), tls_port=tls_port).start()
        compile_bridge()
        try:
            report(arguments.seconds, workdir, rtmp, arguments.runs)
        finally:
            rtmp.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
