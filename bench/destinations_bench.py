"""The destinations run of the benchmark: the same audio call published to 1, 2 and 3
destinations (streams on nginx-rtmp, each on a connection of its own). The call is encoded
once, so each extra destination should cost a small fraction of the call (issue's target:
under 0.1x of one audio call's CPU each). Every destination's recording is checked for the tone.

With ``--rtmps`` every destination is RTMPS (nginx's TLS in front of the same server), through
the call's one relay process, and each run also makes the plain one-destination call that the
costs are shares of: the first RTMPS destination's cost is then the relay's, an extra one's what
it adds to that. The whole call's figure counts the relay (the bridge waits for it), the
running one does not; the relay's own CPU is also sampled from /proc, and printed apart. So
are the publisher threads' (one per destination, by the name the kernel shows): an extra
destination's running cost without the noise of the call's other threads.

    .venv/bin/python -m bench.destinations_bench --seconds 60 --runs 3 [--rtmps]
"""

from __future__ import annotations

import argparse
import tempfile
import time
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
from siprtmp_bridge.rtmp.publisher import THREAD_NAME
from tests.support.nginx_rtmp import NginxRtmp
from tests.support.processes import relays_of
from tests.support.recording import measure_recording
from tests.support.rtp_pcap import PCMU, make_tone_pcap

COUNTS = (1, 2, 3)
#: How long the bridge may take to start its relay (the call's set-up comes first).
RELAY_START_SECONDS = 20.0


def relay_watch(parent: int) -> ProcessWatch:
    """Samples the relay ``parent`` starts, once it has."""
    deadline = time.monotonic() + RELAY_START_SECONDS
    while not (relays := relays_of(parent)):
        assert time.monotonic() < deadline, "the bridge started no RTMPS relay"
        time.sleep(0.05)
    (relay,) = relays
    return ProcessWatch(relay)


def destinations_run(
    workdir: Path, rtmp: NginxRtmp, pcap: Path, seconds: float, count: int, label: str, tls: bool
) -> tuple[Usage, float]:
    """One call to ``count`` destinations, every one over RTMPS if ``tls``: its usage, and its
    relay's CPU-seconds (0 without). Every recording must hold (almost) all the tone."""
    peer = tone_peer(workdir, pcap, seconds)
    names = [f"{label}-{index}" for index in range(count)]
    spec = bridge_spec(peer, rtmp, names[0], 64000)
    spec["rtmpUrl"] = url = rtmp.tls_url if tls else rtmp.url
    spec["destinations"] = [{"rtmpUrl": url, "rtmpStream": name} for name in names[1:]]
    process = start_bridge(workdir, spec, names[0], rtmp.trusting_env if tls else None)
    watch = ProcessWatch(process.pid)
    relay = relay_watch(process.pid) if tls else None
    usage = watch.wait(process)
    relay_cpu = relay.until_gone() if relay else 0.0
    peer.wait(10)
    for name in names:
        (recording,) = rtmp.recordings_of(name)
        tone = measure_recording(recording)
        assert abs(tone.frequency_hz - FREQUENCY) < 5, (name, tone)
        assert tone.tone_seconds >= 0.98 * seconds, (name, tone)
    return usage, relay_cpu


def report(seconds: float, workdir: Path, rtmp: NginxRtmp, runs: int = 1) -> None:
    """Each run's calls; over several runs, each count's extra as the median and range."""
    pcap = make_tone_pcap(workdir / "fan.pcap", PCMU, FREQUENCY, seconds)
    tls = rtmp.tls_port is not None
    over = ", every destination over RTMPS" if tls else ""
    print(f"one {seconds:g} s call to several destinations (encoded once{over})")
    extras: dict[int, list[Shares]] = {count: [] for count in COUNTS}
    for run in range(runs):
        calls = {
            count: destinations_run(workdir, rtmp, pcap, seconds, count, f"fan{run}-{count}", tls)
            for count in COUNTS
        }
        plain = (
            destinations_run(workdir, rtmp, pcap, seconds, 1, f"fan{run}-plain", False)[0]
            if tls
            else calls[1][0]
        )
        if runs > 1:
            print(f" run {run + 1}")
        for count, shares in report_run(calls, plain, tls).items():
            extras[count].append(shares)
    if runs > 1:
        for count, all_shares in extras.items():
            if not all_shares:  # the first destination is a share only when over RTMPS
                continue
            what = f"each extra of {count}" if count > 1 else "the first over RTMPS (the relay)"
            columns = zip(*all_shares, strict=True)
            whole, running, relay, publisher = (spread(list(column)) for column in columns)
            line = (
                f"  {what} over {runs} runs: {whole} the call, running {running} "
                f"(publisher threads {publisher})"
            )
            print(line + (f", the relay's share {relay}" if tls else ""))


#: A destination's cost as shares of the plain one-destination call: whole call, the bridge's
#: running CPU, the relay's CPU (of the call's), the publisher threads' (of the running CPU).
Shares = tuple[float, float, float, float]


def publishers_cpu_ms(usage: Usage) -> float:
    """CPU-ms/s of the call's publisher threads while running."""
    return sum(rate for name, rate in usage.steady_threads.items() if name.startswith(THREAD_NAME))


def report_run(calls: dict[int, tuple[Usage, float]], plain: Usage, tls: bool) -> dict[int, Shares]:
    """Print one run; returns each count's extra destination over the one-destination call of
    its kind as shares of ``plain`` (the one-destination call over RTMP), and over RTMPS the
    first destination's over ``plain``."""
    shares: dict[int, Shares] = {}
    if tls:
        print(f"  1 destination over RTMP: {describe(plain)}")
    for count, (usage, relay_cpu) in calls.items():
        line = f"  {count} destination(s): {describe(usage)}"
        if tls:
            line += f", the relay {relay_cpu:.3f} CPU-s"
        (base, base_relay), extra = (calls[1], count - 1) if count > 1 else ((plain, 0.0), 1)
        if count > 1 or tls:
            shares[count] = each, running, relay, publisher = (
                (usage.cpu_seconds - base.cpu_seconds) / extra / plain.cpu_seconds,
                (usage.steady_cpu_per_minute - base.steady_cpu_per_minute)
                / extra
                / plain.steady_cpu_per_minute,
                (relay_cpu - base_relay) / extra / plain.cpu_seconds,
                (publishers_cpu_ms(usage) - publishers_cpu_ms(base))
                / extra
                / (plain.steady_cpu_per_minute / 60 * 1000),
            )
            what = "each extra" if count > 1 else "over RTMP"
            line += (
                f"; {what} {each:.3f}x the call ({running:.3f}x running, "
                f"publisher {publisher:.3f}x, relay {relay:.3f}x)"
            )
        print(line)
    return shares


def describe(usage: Usage) -> str:
    return (
        f"{usage.cpu_seconds:.2f} CPU-s, {usage.steady_cpu_per_minute:.2f} CPU-s per minute "
        f"running (publishers {publishers_cpu_ms(usage):.2f} CPU-ms/s), "
        f"peak RSS {usage.peak_rss_mib:.1f} MiB"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--runs", type=int, default=1, help="repetitions, then median and range")
    parser.add_argument("--rtmps", action="store_true", help="every destination over RTMPS")
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
