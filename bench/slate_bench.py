"""Benchmark: what the slate (``video.whenAbsent: slate`` on an audio call) adds to a call's CPU,
against what FFmpeg's CLI adds doing the same encode (a still picture, 640x360 at 10 frames/s,
a keyframe every 2 s, H.264 beside the AAC).

The same G.711 call runs four times: the bridge without and with the slate, FFmpeg without and
with a looped picture. Reported: each run's CPU-seconds, the slate's extra as a share of one
audio call (the target: under 0.2x), and the bridge's extra against FFmpeg's.

    .venv/bin/python -m bench.slate_bench --seconds 30 --runs 3
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.bridge_bench import (
    FREQUENCY,
    ProcessWatch,
    Usage,
    bridge_spec,
    compile_bridge,
    send_rtp,
    spread,
    start_bridge,
    tone_peer,
)
from siprtmp_bridge.demo.ports import free_port
from siprtmp_bridge.video.slate import FRAMES_PER_SECOND, HEIGHT, KEYFRAME_SECONDS, WIDTH
from tests.support.nginx_rtmp import NginxRtmp
from tests.support.ports import free_udp_pair
from tests.support.rtp_pcap import PCMU, encode_payload, make_tone_pcap, tone_pcm


def bridge_call(workdir: Path, rtmp: NginxRtmp, pcap: Path, seconds: float, slate: bool) -> Usage:
    name = "bridge-slate" if slate else "bridge-audio"
    peer = tone_peer(workdir, pcap, seconds)
    spec = bridge_spec(peer, rtmp, name, 64000)
    if slate:
        spec["video"] = {"whenAbsent": "slate", "slate": {"text": "Town hall"}}
    process = start_bridge(workdir, spec, name)
    usage = ProcessWatch(process.pid).wait(process)
    peer.wait(10)
    return usage


def ffmpeg_call(workdir: Path, rtmp: NginxRtmp, seconds: float, slate: bool) -> Usage:
    """FFmpeg's CLI: the RTP → AAC → RTMP of bridge_bench, with a looped picture encoded as the
    slate is (libx264, the still-image tuning, a keyframe every 2 s) when ``slate``."""
    port = free_udp_pair()
    sdp = workdir / "ffmpeg-call.sdp"
    sdp.write_text(
        "v=0\no=- 0 0 IN IP4 127.0.0.1\ns=bench\nc=IN IP4 127.0.0.1\nt=0 0\n"
        f"m=audio {port} RTP/AVP 0\na=rtpmap:0 PCMU/8000\n"
    )
    picture = [
        "-f", "lavfi", "-re", "-i", f"color=c=0x203040:s={WIDTH}x{HEIGHT}:r={FRAMES_PER_SECOND}",
    ]  # fmt: skip
    video = [
        "-map", "0:a", "-map", "1:v", "-c:v", "libx264", "-preset", "veryfast",
        "-tune", "stillimage", "-profile:v", "baseline", "-pix_fmt", "yuv420p",
        "-g", str(FRAMES_PER_SECOND * KEYFRAME_SECONDS),
    ]  # fmt: skip
    command = [
        "ffmpeg", "-nostdin", "-loglevel", "error", "-protocol_whitelist", "file,udp,rtp",
        "-i", str(sdp), *(picture if slate else []),
        "-c:a", "aac", "-b:a", "64000", "-ar", "48000", "-ac", "1", *(video if slate else []),
        "-f", "flv", f"{rtmp.url}/ffmpeg-{'slate' if slate else 'audio'}",
    ]  # fmt: skip
    process = subprocess.Popen(command)
    watch = ProcessWatch(process.pid)
    time.sleep(1.0)
    send_rtp(encode_payload(PCMU, tone_pcm(FREQUENCY, seconds, 8000)), ("127.0.0.1", port), seconds)
    time.sleep(0.5)
    process.terminate()
    return watch.wait(process)


@dataclass(frozen=True)
class SlateRun:
    """One run's four calls; the slate's extra as shares of the audio call."""

    audio: Usage
    slate: Usage
    ff_audio: Usage
    ff_slate: Usage

    @property
    def extra(self) -> float:
        return (self.slate.cpu_seconds - self.audio.cpu_seconds) / self.audio.cpu_seconds

    @property
    def running_extra(self) -> float:
        audio = self.audio.steady_cpu_per_minute
        return (self.slate.steady_cpu_per_minute - audio) / audio


def slate_run(workdir: Path, rtmp: NginxRtmp, pcap: Path, seconds: float) -> SlateRun:
    return SlateRun(
        bridge_call(workdir, rtmp, pcap, seconds, slate=False),
        bridge_call(workdir, rtmp, pcap, seconds, slate=True),
        ffmpeg_call(workdir, rtmp, seconds, slate=False),
        ffmpeg_call(workdir, rtmp, seconds, slate=True),
    )


def report(run: SlateRun) -> None:
    audio, slate, ff_audio, ff_slate = run.audio, run.slate, run.ff_audio, run.ff_slate
    extra = slate.cpu_seconds - audio.cpu_seconds
    ff_extra = ff_slate.cpu_seconds - ff_audio.cpu_seconds
    print(f"  bridge : audio {audio.cpu_seconds:.2f} CPU-s, with slate {slate.cpu_seconds:.2f}")
    print(
        f"  ffmpeg : audio {ff_audio.cpu_seconds:.2f} CPU-s, with slate {ff_slate.cpu_seconds:.2f}"
    )
    print(
        f"  slate  : +{extra:.2f} CPU-s = {run.extra:.2f}x of one audio call; "
        f"FFmpeg's CLI +{ff_extra:.2f} CPU-s "
        f"(bridge/FFmpeg {extra / ff_extra if ff_extra > 0 else float('nan'):.2f}x)"
    )
    steady = slate.steady_cpu_per_minute - audio.steady_cpu_per_minute
    print(
        f"  running: +{steady:.2f} CPU-s per minute = "
        f"{run.running_extra:.2f}x of an audio call's (start-up excluded)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--runs", type=int, default=1, help="repetitions, then median and range")
    arguments = parser.parse_args()
    seconds = arguments.seconds
    print(f"one {seconds:g} s G.711 call, with and without the slate ({WIDTH}x{HEIGHT})")
    runs: list[SlateRun] = []
    with tempfile.TemporaryDirectory(prefix="siprtmp-bench-") as directory:
        workdir = Path(directory)
        rtmp = NginxRtmp(workdir / "nginx", free_port()).start()
        compile_bridge()
        try:
            pcap = make_tone_pcap(workdir / "tone.pcap", PCMU, FREQUENCY, seconds)
            for index in range(arguments.runs):
                runs.append(slate_run(workdir, rtmp, pcap, seconds))
                print(f" run {index + 1}")
                report(runs[-1])
        finally:
            rtmp.stop()
    if len(runs) > 1:
        print(f"  the slate's extra over {len(runs)} runs: {spread([r.extra for r in runs])}")
        print(f"                             running: {spread([r.running_extra for r in runs])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
