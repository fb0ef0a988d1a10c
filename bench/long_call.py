"""Benchmark: one long call (webinars run for hours), the bridge's resources sampled throughout.

SIPp streams a tone over PCMU for the whole call and the bridge publishes it to nginx-rtmp;
with ``--video`` the far end also sends the test camera's H.264 (320x240, 25 fps, a keyframe a
second), passed through. Every ``--interval`` seconds the bridge's resident memory (VmRSS),
open file descriptors, threads and CPU time are read from /proc; reported are the first and
last samples, the peak and the slope of a least-squares line over the samples after the first
minute (start-up excluded): a leak shows as a slope that a longer call would keep paying. CPU
is reported per minute of call (each whole minute's CPU-seconds), so a cost that creeps up
shows the same way. The recording is decoded at the end.

    .venv/bin/python -m bench.long_call --minutes 30 --video
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from bench.bridge_bench import (
    FREQUENCY,
    bridge_spec,
    compile_bridge,
    cpu_seconds,
    start_bridge,
    tone_peer,
)
from bench.video_bench import video_peer, video_spec
from siprtmp_bridge.demo.ports import free_port
from tests.support.nginx_rtmp import NginxRtmp
from tests.support.recording import measure_recording, packet_times, tone_gaps
from tests.support.rtp_pcap import PCMU, make_tone_pcap
from tests.support.video_pcap import encode_h264_rtp, write_call_pcap
from tests.support.video_recording import tone_in

#: Samples this early are start-up (imports, pjsua, the RTMP handshake), not the call's cost.
WARM_UP_SECONDS = 60.0


@dataclass(frozen=True)
class Sample:
    seconds: float  # since the bridge started
    rss_mib: float
    open_files: int
    threads: int
    cpu_seconds: float  # user + system since the bridge started


def sample(pid: int, started: float) -> Sample | None:
    """The process's memory, descriptors and threads now; None once it has gone."""
    proc = Path(f"/proc/{pid}")
    try:
        status = dict(
            line.split(":", 1) for line in (proc / "status").read_text().splitlines() if ":" in line
        )
        open_files = len(list((proc / "fd").iterdir()))
        cpu = cpu_seconds(proc)
    except OSError:
        return None
    return Sample(
        time.monotonic() - started,
        int(status["VmRSS"].split()[0]) / 1024,
        open_files,
        int(status["Threads"]),
        cpu,
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


def cpu_per_minute(samples: list[Sample]) -> list[tuple[float, float]]:
    """(minute's end in seconds, CPU-seconds spent in it) for each whole minute after warm-up,
    from the sample nearest each minute boundary."""
    steady = [s for s in samples if s.seconds >= WARM_UP_SECONDS]
    boundaries: list[Sample] = []
    for taken in steady:
        if not boundaries or taken.seconds - boundaries[-1].seconds >= 60.0:
            boundaries.append(taken)
    return [
        (
            after.seconds,
            (after.cpu_seconds - before.cpu_seconds) * 60 / (after.seconds - before.seconds),
        )
        for before, after in itertools.pairwise(boundaries)
    ]


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
    minutes = cpu_per_minute(samples)
    if minutes:
        costs = [cost for _, cost in minutes]
        print(
            f"  CPU       : {costs[0]:.2f} CPU-s in the first steady minute, {costs[-1]:.2f} in "
            f"the last, {min(costs):.2f} to {max(costs):.2f} over {len(costs)} minutes, "
            f"slope {slope_per_hour(minutes):+.3f} CPU-s/min per hour"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=30.0, help="the call's length")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--video", action="store_true", help="the far end sends H.264 as well")
    arguments = parser.parse_args()
    seconds = arguments.minutes * 60
    with tempfile.TemporaryDirectory(prefix="siprtmp-long-call-") as directory:
        workdir = Path(directory)
        rtmp = NginxRtmp(workdir / "nginx", free_port()).start()
        compile_bridge()
        try:
            if arguments.video:
                rtp = encode_h264_rtp(workdir, seconds)
                pcap = write_call_pcap(workdir / "call.pcap", rtp, seconds)
                peer = video_peer(workdir, pcap, rtp, seconds)
                spec = video_spec(peer, rtmp, "long", 64000)
            else:
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
            # The stream is reopened when its video track arrives: the call is the largest file.
            recording = max(rtmp.recordings_of("long"), key=lambda path: path.stat().st_size)
            outcome = describe_recording(recording, arguments.video)
        finally:
            rtmp.stop()
    kind = "G.711 + H.264 passthrough" if arguments.video else "G.711"
    print(f"one {arguments.minutes:g}-minute {kind} call, sampled every {arguments.interval:g} s")
    print(f"  exit {code}; stream: {outcome}")
    report(samples)
    return 0


def describe_recording(recording: Path, video: bool) -> str:
    """What nginx-rtmp recorded: the tone and its holes; with video, the frames and the longest
    step between them (the camera's tone blinks, so its holes are not counted)."""
    if not video:
        tone = measure_recording(recording)
        gaps = tone_gaps(recording)
        return (
            f"{tone.tone_seconds:.1f} s of {tone.frequency_hz:.1f} Hz, "
            f"{len(gaps)} gaps (longest {max((g for _, g in gaps), default=0.0):.2f} s)"
        )
    frames = packet_times(recording, "video")
    audio = packet_times(recording, "audio")
    steps = [(b - a, a) for a, b in itertools.pairwise(frames)]
    longest, at = max(steps)
    blinking = tone_in(recording)
    return (
        f"{len(frames)} video frames over {(frames[-1] - frames[0]) / 1000:.1f} s, steps "
        f"{min(steps)[0]} to {longest} ms (the longest at {at / 1000:.1f} s); "
        f"audio {(audio[-1] - audio[0]) / 1000:.1f} s, "
        f"tone {blinking.frequency_hz:.1f} Hz audible {blinking.audible_seconds:.1f} s"
    )


if __name__ == "__main__":
    raise SystemExit(main())
