"""The video run of the benchmark: the same call with the far end's H.264 passed through.

SIPp answers the bridge's delayed offer with audio and video and plays the tone with a busy
640x360 picture (FFmpeg's testsrc2, 800 kb/s, as a phone would send), the bridge publishes
both to nginx-rtmp; its CPU is compared with the audio-only run's, and the recording's A/V
offset is measured from the blinking marker and tone when the test picture is used.

    .venv/bin/python -m bench.video_bench --seconds 60
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

from bench.bridge_bench import ProcessWatch, Usage, bridge_spec, start_bridge
from siprtmp_bridge.demo.ports import free_port
from tests.support.nginx_rtmp import NginxRtmp
from tests.support.ports import free_udp_pair, free_udp_window
from tests.support.recording import ffprobe
from tests.support.sipp import SippPeer
from tests.support.video_pcap import (
    VIDEO_PAYLOAD_TYPE,
    H264Rtp,
    encode_h264_rtp,
    write_call_pcap,
)
from tests.support.video_recording import av_offset_seconds, tone_in

BUSY_PICTURE = "testsrc2=s=640x360:r=25"
PHONE_BITRATE = "800k"


def video_peer(workdir: Path, pcap: Path, rtp: H264Rtp, seconds: float) -> SippPeer:
    pt = VIDEO_PAYLOAD_TYPE
    mline = "\n".join(
        [
            f"m=video [media_port+2] RTP/AVP {pt}",
            f"a=rtpmap:{pt} H264/90000",
            f"a=fmtp:{pt} {rtp.fmtp}",
            f"a=rtcp-fb:{pt} nack pli",
            "a=sendonly",
        ]
    )
    return SippPeer(
        "uas_video_offer.xml",
        free_port(),
        free_udp_pair(),
        workdir,
        {
            "pcap": str(pcap),
            "video_codec": "H264/90000",
            "video_mline": mline,
            "call_ms": str(int(seconds * 1000) + 800),
        },
        extra_args=("-aa",),
    ).start()


def video_spec(peer: SippPeer, rtmp: NginxRtmp, stream: str, bitrate: int) -> dict[str, Any]:
    spec = bridge_spec(peer, rtmp, stream, bitrate)
    low = free_udp_window(4)  # audio pair, then video pair: SIPp sends video to audio + 2
    spec["nat"] = {"bindAddress": "127.0.0.1", "rtpPortMin": low, "rtpPortMax": low + 3}
    spec["video"] = {"mode": "passthrough"}
    return spec


def video_run(
    workdir: Path, rtmp: NginxRtmp, seconds: float, bitrate: int, busy: bool = True
) -> tuple[Usage, float, dict[str, Any]]:
    """One call with video; (bridge usage, video kb/s received, recording facts)."""
    rtp = encode_h264_rtp(
        workdir,
        seconds,
        picture=BUSY_PICTURE if busy else None,
        bitrate=PHONE_BITRATE if busy else None,
    )
    pcap = write_call_pcap(workdir / f"video-{busy}.pcap", rtp, seconds)
    peer = video_peer(workdir, pcap, rtp, seconds)
    name = "video-busy" if busy else "video-marker"
    process = start_bridge(workdir, video_spec(peer, rtmp, name, bitrate), name)
    usage = ProcessWatch(process.pid).wait(process)
    peer.wait(10)
    recording = rtmp.recordings_of(name)[-1]
    streams = ffprobe(recording)["streams"]
    facts: dict[str, Any] = {
        "codecs": sorted(s["codec_name"] for s in streams),
        "size": next(f"{s['width']}x{s['height']}" for s in streams if s.get("width")),
        "tone_hz": tone_in(recording).frequency_hz,
    }
    if not busy:
        facts["av_offset_ms"] = av_offset_seconds(recording) * 1000
    kbps = sum(len(p) for p in rtp.packets) * 8 / seconds / 1000
    return usage, kbps, facts


def report(audio_only: Usage | None, seconds: float, workdir: Path, rtmp: NginxRtmp) -> None:
    for busy in (True, False):
        usage, kbps, facts = video_run(workdir, rtmp, seconds, 64000, busy)
        label = "busy 640x360" if busy else "test picture 320x240"
        ratio = (
            f", {usage.cpu_seconds / audio_only.cpu_seconds:.2f}x audio-only"
            if (audio_only)
            else ""
        )
        print(
            f"  bridge + H.264 passthrough ({label}, {kbps:.0f} kb/s): "
            f"{usage.cpu_seconds:.2f} CPU-s{ratio}, peak RSS {usage.peak_rss_mib:.1f} MiB, "
            f"exit {usage.exit_code}; stream {facts['codecs']} {facts['size']}, "
            f"tone {facts['tone_hz']:.1f} Hz"
            + (f", A/V offset {facts['av_offset_ms']:+.0f} ms" if "av_offset_ms" in facts else "")
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="siprtmp-video-bench-") as directory:
        workdir = Path(directory)
        rtmp = NginxRtmp(workdir / "nginx", free_port()).start()
        try:
            report(None, arguments.seconds, workdir, rtmp)
        finally:
            rtmp.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
