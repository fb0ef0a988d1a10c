"""Benchmark: the bridge against FFmpeg's own CLI doing the same media work, in one run.

Both receive the same G.711 RTP (a tone, 50 packets a second) and publish AAC over RTMP to the
same nginx-rtmp: the bridge through a real SIP call with SIPp, FFmpeg from an SDP file. Reported:
CPU-seconds and peak RSS of each process and their ratio, how soon after the answer the call's
audio is in the stream, and how many concurrent bridges this machine holds with clean audio.

    .venv/bin/python -m bench.bridge_bench --seconds 60 --concurrency 4 8 16
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import siprtmp_bridge
from siprtmp_bridge.demo.ports import free_port
from tests.support.nginx_rtmp import NginxRtmp
from tests.support.ports import free_udp_pair
from tests.support.recording import measure_recording
from tests.support.rtp_pcap import PCMU, encode_payload, make_tone_pcap, tone_pcm
from tests.support.sipp import SippPeer

FREQUENCY = 1000.0


@dataclass(frozen=True)
class Usage:
    cpu_seconds: float
    peak_rss_mib: float
    exit_code: int
    # CPU-seconds per minute once running (from 5 s after start to 2 s before the end): what
    # a longer call costs per minute, without start-up (imports, pjsua, FFmpeg's probing).
    steady_cpu_per_minute: float
    # CPU-ms per second of each thread (by name, threads of one name summed) over the same
    # window: where the running cost goes (pjmedia's "media" and "clock", the pipeline...).
    steady_threads: dict[str, float]


class ProcessWatch:
    """Samples a child's CPU time (the whole process's and each thread's) and own peak RSS
    (VmHWM) from /proc until it exits.

    wait4's ru_maxrss would also count the benchmark's own memory at fork (Linux keeps the
    forked image's high-water mark across exec)."""

    def __init__(self, pid: int) -> None:
        self.proc = Path(f"/proc/{pid}")
        self.peak_kib = 0
        self.samples: list[tuple[float, float]] = []  # (monotonic, CPU-seconds)
        # (monotonic, {(tid, name): CPU-seconds}), taken with each of ``samples``.
        self.thread_samples: list[tuple[float, dict[tuple[str, str], float]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            try:
                status = (self.proc / "status").read_text()
                cpu = cpu_seconds(self.proc)
            except OSError:
                return
            now = time.monotonic()
            self.samples.append((now, cpu))
            self.thread_samples.append((now, thread_cpu(self.proc)))
            for line in status.splitlines():
                if line.startswith("VmHWM:"):
                    self.peak_kib = max(self.peak_kib, int(line.split()[1]))

    def _window(self) -> tuple[int, int] | None:
        """Indexes of the first and last sample from 5 s after start to 2 s before the end."""
        if not self.samples:
            return None
        start, end = self.samples[0][0] + 5.0, self.samples[-1][0] - 2.0
        inside = [i for i, (moment, _) in enumerate(self.samples) if start <= moment <= end]
        return (inside[0], inside[-1]) if len(inside) >= 2 else None

    def steady_cpu_per_minute(self) -> float:
        window = self._window()
        if window is None:
            return float("nan")
        (t0, cpu0), (t1, cpu1) = self.samples[window[0]], self.samples[window[1]]
        return (cpu1 - cpu0) / (t1 - t0) * 60

    def steady_threads(self) -> dict[str, float]:
        """CPU-ms/s per thread name over the steady window (threads alive at both ends)."""
        window = self._window()
        if window is None:
            return {}
        (t0, first), (t1, last) = self.thread_samples[window[0]], self.thread_samples[window[1]]
        rates: dict[str, float] = {}
        for key, cpu in last.items():
            if key in first:
                rates[key[1]] = rates.get(key[1], 0.0) + (cpu - first[key]) / (t1 - t0) * 1000
        return dict(sorted(rates.items(), key=lambda item: -item[1]))

    def until_gone(self) -> float:
        """Waits for the process (not necessarily a child) to go; the CPU-seconds it had used
        at the last sample."""
        self._thread.join()
        return self.samples[-1][1] if self.samples else 0.0

    def wait(self, process: subprocess.Popen[bytes]) -> Usage:
        """CPU from wait4, the rest from /proc."""
        cpu_seconds = reap(process)
        self._stop.set()
        self._thread.join()
        return Usage(
            cpu_seconds,
            self.peak_kib / 1024,
            process.returncode,
            self.steady_cpu_per_minute(),
            self.steady_threads(),
        )


def stat_cpu_seconds(stat: str) -> float:
    """User + system CPU-seconds of a /proc ``stat`` line (a process's or a thread's)."""
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(proc: Path) -> float:
    """User + system CPU-seconds of the process at ``proc`` (/proc/PID) so far; OSError once
    it has gone."""
    return stat_cpu_seconds((proc / "stat").read_text())


def thread_cpu(proc: Path) -> dict[tuple[str, str], float]:
    """CPU-seconds of each of a process's threads, keyed by (tid, name)."""
    result: dict[tuple[str, str], float] = {}
    for task in proc.glob("task/*"):
        try:
            text = (task / "stat").read_text()
        except OSError:  # the thread ended meanwhile
            continue
        result[(task.name, text[text.index("(") + 1 : text.rindex(")")])] = stat_cpu_seconds(text)
    return result


def spread(ratios: list[float]) -> str:
    """Several runs' ratios as the median and the range: on a shared machine one run's figure
    moves by more than the costs the benches compare."""
    return f"median {statistics.median(ratios):.2f}x ({min(ratios):.2f} to {max(ratios):.2f}x)"


def thread_line(usage: Usage) -> str:
    """The steady per-thread split, CPU-ms/s, for a report."""
    return ", ".join(f"{name} {rate:.1f}" for name, rate in usage.steady_threads.items())


def reap(process: subprocess.Popen[bytes]) -> float:
    """Wait for the child; its CPU-seconds from wait4, which counts those of the children it
    has waited for (an RTMPS relay process) but not of any still running."""
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_utime + usage.ru_stime


def compile_bridge() -> None:
    """Bytecode for the bridge's modules, as its image ships it: with PYTHONDONTWRITEBYTECODE
    set (as in CI), each bridge would otherwise compile them again, 25 ms of CPU per start."""
    package = Path(siprtmp_bridge.__file__).parent
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(package)], check=True)


def send_rtp(payload: bytes, destination: tuple[str, int], seconds: float) -> None:
    """Pace 20 ms PCMU packets to ``destination`` like a phone would (not measured)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        start = time.monotonic()
        for index in range(int(seconds * 50)):
            chunk = payload[index * 160 : (index + 1) * 160]
            header = bytes([0x80, 0]) + (index & 0xFFFF).to_bytes(2, "big")
            header += (index * 160).to_bytes(4, "big") + (0x1234).to_bytes(4, "big")
            sender.sendto(header + chunk, destination)
            delay = start + (index + 1) * 0.02 - time.monotonic()
            if delay > 0:
                time.sleep(delay)


def ffmpeg_run(workdir: Path, rtmp: NginxRtmp, seconds: float, bitrate: int) -> Usage:
    port = free_udp_pair()
    sdp = workdir / "call.sdp"
    sdp.write_text(
        "v=0\no=- 0 0 IN IP4 127.0.0.1\ns=bench\nc=IN IP4 127.0.0.1\nt=0 0\n"
        f"m=audio {port} RTP/AVP 0\na=rtpmap:0 PCMU/8000\n"
    )
    process = subprocess.Popen(
        [
            "ffmpeg",
            "-nostdin",
            "-loglevel",
            "error",
            "-protocol_whitelist",
            "file,udp,rtp",
            "-i",
            str(sdp),
            "-c:a",
            "aac",
            "-b:a",
            str(bitrate),
            "-ar",
            "48000",
            "-ac",
            "1",
            "-f",
            "flv",
            f"{rtmp.url}/ffmpeg",
        ],
    )
    watch = ProcessWatch(process.pid)
    time.sleep(1.0)  # let it bind its RTP port
    payload = encode_payload(PCMU, tone_pcm(FREQUENCY, seconds, 8000))
    send_rtp(payload, ("127.0.0.1", port), seconds)
    time.sleep(0.5)
    process.terminate()  # ffmpeg ends an RTP input only on a signal; it flushes and exits
    return watch.wait(process)


def bridge_spec(peer: SippPeer, rtmp: NginxRtmp, stream: str, bitrate: int) -> dict[str, Any]:
    return {
        "callee": peer.uri,
        "rtmpUrl": rtmp.url,
        "rtmpStream": stream,
        "hasAudio": False,
        "codecs": ["PCMU"],
        "audio": {"bitrate": bitrate},
        "nat": {"bindAddress": "127.0.0.1", "rtpPortMin": 20000, "rtpPortMax": 30000},
    }


def start_bridge(
    workdir: Path, spec: dict[str, Any], name: str, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """The bridge for ``spec``; ``env`` added to this process's environment."""
    spec_path = workdir / f"{name}.json"
    spec_path.write_text(json.dumps(spec))
    executable = Path(sys.executable).parent / "sip-rtmp-bridge"
    return subprocess.Popen(
        [
            str(executable),
            "run",
            "--spec",
            str(spec_path),
            "--status-port",
            "0",
            "--sip-log-level",
            "0",
        ],
        stdout=(workdir / f"{name}.status").open("wb"),
        stderr=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )


def tone_peer(workdir: Path, pcap: Path, seconds: float) -> SippPeer:
    return SippPeer(
        "uas_tone_hangup.xml",
        free_port(),
        free_udp_pair(),
        workdir,
        {
            "pcap": str(pcap),
            "payload_type": "0",
            "codec": "PCMU/8000",
            "direction": "sendonly",
            "call_ms": str(int(seconds * 1000) + 800),
        },
    ).start()


def answer_to_audio_ms(workdir: Path, name: str) -> float:
    """Wall-clock time from the answer until the call's first audio reached the encoder (and so
    the RTMP connection, which is up before the call is placed)."""
    lines = (workdir / f"{name}.status").read_text().splitlines()
    final = json.loads(lines[-1])
    answered = _parse_time(final["call"]["establishedAt"])
    return (_parse_time(final["stream"]["audioStartedAt"]) - answered) * 1000


def _parse_time(stamp: str) -> float:
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()


def bridge_run(
    workdir: Path, rtmp: NginxRtmp, pcap: Path, seconds: float, bitrate: int
) -> tuple[Usage, float]:
    peer = tone_peer(workdir, pcap, seconds)
    process = start_bridge(workdir, bridge_spec(peer, rtmp, "bridge", bitrate), "bridge")
    usage = ProcessWatch(process.pid).wait(process)
    peer.wait(10)
    return usage, answer_to_audio_ms(workdir, "bridge")


def concurrent_run(
    workdir: Path, rtmp: NginxRtmp, pcap: Path, seconds: float, count: int, bitrate: int
) -> tuple[int, float]:
    """Start ``count`` bridges at once; returns how many streams had clean audio, and the CPU."""
    peers = [tone_peer(workdir, pcap, seconds) for _ in range(count)]
    names = [f"c{count}-{index}" for index in range(count)]
    processes = [
        start_bridge(workdir, bridge_spec(peer, rtmp, name, bitrate), name)
        for peer, name in zip(peers, names, strict=True)
    ]
    # CPU only: polling /proc for dozens of bridges would load the machine being measured.
    cpu_seconds: list[float] = []
    waiter = threading.Thread(target=lambda: cpu_seconds.extend(map(reap, processes)))
    waiter.start()
    waiter.join(seconds + 60)
    for peer in peers:
        peer.wait(10)
    return sum(is_clean(rtmp, name, seconds) for name in names), sum(cpu_seconds)


def is_clean(rtmp: NginxRtmp, stream: str, seconds: float) -> bool:
    """Clean: one recording of ``stream``, the right tone, and (almost) all ``seconds`` of it:
    no dropouts or stalls."""
    recordings = rtmp.recordings_of(stream)
    if len(recordings) != 1:
        return False
    tone = measure_recording(recordings[0])
    return abs(tone.frequency_hz - FREQUENCY) < 5 and tone.tone_seconds >= 0.98 * seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--bitrate", type=int, default=64000)
    parser.add_argument("--concurrency", type=int, nargs="*", default=[4, 8, 16])
    parser.add_argument("--concurrency-seconds", type=float, default=20.0)
    parser.add_argument("--no-video", action="store_true", help="skip the video run")
    parser.add_argument(
        "--no-destinations", action="store_true", help="skip the several-destinations run"
    )
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="siprtmp-bench-") as directory:
        workdir = Path(directory)
        rtmp = NginxRtmp(workdir / "nginx", free_port()).start()
        compile_bridge()
        try:
            pcap = make_tone_pcap(workdir / "tone.pcap", PCMU, FREQUENCY, arguments.seconds)
            bridge, latency_ms = bridge_run(
                workdir, rtmp, pcap, arguments.seconds, arguments.bitrate
            )
            ffmpeg = ffmpeg_run(workdir, rtmp, arguments.seconds, arguments.bitrate)
            for name in ("bridge", "ffmpeg"):
                (recording,) = rtmp.recordings_of(name)
                tone = measure_recording(recording)
                print(f"  {name} stream: {tone.tone_seconds:.2f} s of {tone.frequency_hz:.1f} Hz")
            print(
                f"one {arguments.seconds:g} s G.711 call → AAC {arguments.bitrate // 1000} kb/s "
                "→ RTMP (nginx-rtmp)"
            )
            print(
                f"  bridge : {bridge.cpu_seconds:.2f} CPU-s, peak RSS {bridge.peak_rss_mib:.1f}"
                f" MiB, exit {bridge.exit_code}"
            )
            print(
                f"  ffmpeg : {ffmpeg.cpu_seconds:.2f} CPU-s, peak RSS {ffmpeg.peak_rss_mib:.1f} MiB"
            )
            print(
                f"  ratio  : CPU {bridge.cpu_seconds / ffmpeg.cpu_seconds:.2f}x, "
                f"RSS {bridge.peak_rss_mib / ffmpeg.peak_rss_mib:.2f}x"
            )
            print(
                f"  running: bridge {bridge.steady_cpu_per_minute:.2f} CPU-s per minute, "
                f"ffmpeg {ffmpeg.steady_cpu_per_minute:.2f} "
                f"({bridge.steady_cpu_per_minute / ffmpeg.steady_cpu_per_minute:.2f}x; "
                "start-up excluded)"
            )
            print(f"  threads (CPU-ms/s running): bridge {thread_line(bridge)}")
            print(f"                              ffmpeg {thread_line(ffmpeg)}")
            print(f"  call audio published {latency_ms:.0f} ms after the answer")
            if not arguments.no_video:
                from bench.video_bench import report  # it imports this module

                report(bridge, arguments.seconds, workdir, rtmp)
            if not arguments.no_destinations:
                from bench import destinations_bench  # it imports this module

                destinations_bench.report(arguments.seconds, workdir, rtmp)
            short_pcap = make_tone_pcap(
                workdir / "short.pcap", PCMU, FREQUENCY, arguments.concurrency_seconds
            )
            for count in arguments.concurrency:
                clean, cpu = concurrent_run(
                    workdir,
                    rtmp,
                    short_pcap,
                    arguments.concurrency_seconds,
                    count,
                    arguments.bitrate,
                )
                load = cpu / arguments.concurrency_seconds / (os.cpu_count() or 1)
                print(
                    f"  {count:3d} concurrent bridges: {clean}/{count} clean streams, "
                    f"{cpu:.1f} CPU-s in {arguments.concurrency_seconds:g} s "
                    f"({load:.0%} of {os.cpu_count()} cores)"
                )
        finally:
            rtmp.stop()
    return 0


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))
    sys.exit(main())
