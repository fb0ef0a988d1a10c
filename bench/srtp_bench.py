"""The SRTP run of the benchmark: the bridge's CPU for an SRTP call against a plain one.

SIPp's pcap playback cannot encrypt, so both calls go to baresip (its ausine tone, PCMU, the
bridge sending silence back): once plain (``mediaEncryption: disable``), once requiring SRTP
(baresip's ``srtp-mand``, the bridge's ``require``), alternating, and the bridge's CPU-seconds
(user + system, from the kernel's accounting of the exited child and what it reaped: FFmpeg's
video receiver too) are compared. With ``--video`` baresip also sends H.264 (its camera a file
of a moving picture, 320x240 at 25 frames/s, encoded by baresip at 500 kb/s), which the bridge
passes through: pjsua's libsrtp decrypts the audio, the relay's pylibsrtp the video. baresip
sends far fewer packets than a phone at 800 kb/s, so the run also times the relay's own
``SrtpChannel.unprotect`` on full-size packets, for the cost at any packet rate.

    .venv/bin/python -m bench.srtp_bench --seconds 30 --runs 3 [--video]
"""

from __future__ import annotations

import argparse
import json
import resource
import secrets
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pylibsrtp

from siprtmp_bridge.demo.ports import free_port
from siprtmp_bridge.rtp.srtp import new_crypto
from siprtmp_bridge.video.srtp import SrtpChannel
from tests.support.baresip import BUSY_PICTURE, BaresipPeer, camera_file
from tests.support.nginx_rtmp import NginxRtmp
from tests.support.ports import free_udp_window


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


SUITE = "AES_CM_128_HMAC_SHA1_80"  # baresip's first, taken by pjsua and the relay alike
# baresip's file camera gave about 8 frames/s of its 25 on the 2-core Debian 12 VM
# (2026-12-04): fewer than half of that and the video did not flow for the whole call.
MIN_FRAMES_PER_SECOND = 3


@dataclass(frozen=True)
class Call:
    cpu_seconds: float
    video_frames: int = 0
    video_kbps: float = 0.0  # what reached the bridge's video port, SRTP's tags included


def bridge_cpu(
    workdir: Path, server: NginxRtmp, name: str, seconds: int, srtp: bool, camera: Path | None
) -> Call:
    """One call of ``seconds`` to a fresh baresip (sending video from ``camera`` if given):
    the bridge's CPU-seconds and the video it received."""
    peer = BaresipPeer(
        workdir / name,
        free_port(),
        free_udp_window(10),
        camera,
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
    if camera is not None:
        spec["video"] = {"mode": "passthrough"}
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
    expected = SUITE if srtp else None
    if final["reason"] != "RemoteHangup" or final["call"]["srtpSuite"] != expected:
        raise SystemExit(f"{name}: {final['reason']} {final['call']}")
    if camera is None:
        return Call(cpu)
    video = final["video"]
    if video["srtpSuite"] != expected or video["frames"] < MIN_FRAMES_PER_SECOND * seconds:
        raise SystemExit(f"{name}: video {video}")
    return Call(cpu, video["frames"], video["bytesReceived"] * 8 / 1000 / seconds)


def unprotect_microseconds(packets: int = 20000, payload_bytes: int = 1200) -> float:
    """The relay's decryption and authentication of one SRTP packet (``payload_bytes`` of
    H.264, as a phone fills its RTP packets), in µs: ``packets`` protected with the far end's
    key, then timed through ``SrtpChannel.unprotect``."""
    remote, local = new_crypto(1, SUITE), new_crypto(1, SUITE)
    sender = pylibsrtp.Session(
        pylibsrtp.Policy(
            key=remote.key,
            ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND,
            srtp_profile=pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
        )
    )
    payload = secrets.token_bytes(payload_bytes)
    protected = [
        sender.protect(struct.pack("!BBHII", 0x80, 96, n & 0xFFFF, n * 3600, 0x1234) + payload)
        for n in range(packets)
    ]
    channel = SrtpChannel(remote, local)
    started = time.process_time()
    for packet in protected:
        channel.unprotect(packet, rtcp=False)
    elapsed = time.process_time() - started
    if channel.rejected:
        raise SystemExit(f"{channel.rejected} packets did not authenticate")
    return elapsed / packets * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--video", action="store_true", help="H.264 from baresip beside audio")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="srtp-bench-") as directory:
        workdir = Path(directory)
        camera = (
            camera_file(workdir, arguments.seconds + 5, BUSY_PICTURE) if arguments.video else None
        )
        server = NginxRtmp(workdir / "nginx", free_port(), host="127.0.0.1").start()
        try:
            figures: dict[str, list[Call]] = {"plain": [], "srtp": []}
            for run in range(arguments.runs):
                for kind, calls in figures.items():
                    calls.append(
                        bridge_cpu(
                            workdir,
                            server,
                            f"{kind}-{run}",
                            arguments.seconds,
                            kind == "srtp",
                            camera,
                        )
                    )
        finally:
            server.stop()
    plain, srtp = ([call.cpu_seconds for call in figures[kind]] for kind in ("plain", "srtp"))
    ratios = [s / p for s, p in zip(srtp, plain, strict=True)]  # run by run
    report: dict[str, object] = {
        "seconds": arguments.seconds,
        "plain_cpu_seconds": [round(v, 3) for v in plain],
        "srtp_cpu_seconds": [round(v, 3) for v in srtp],
        "srtp_over_plain": [round(r, 3) for r in ratios],
    }
    if arguments.video:
        report["unprotect_us_per_1200_byte_packet"] = round(unprotect_microseconds(), 2)
        for kind, calls in figures.items():
            report[f"{kind}_video_frames"] = [call.video_frames for call in calls]
            report[f"{kind}_video_kbps"] = [round(call.video_kbps) for call in calls]
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
