"""The video receiver inside a ``VideoSession``, fed real H.264 RTP (FFmpeg's encoder) on
loopback: what the status says when something past FFmpeg fails."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

from siprtmp_bridge.supervision import Supervisor
from siprtmp_bridge.video.session import VideoSession
from siprtmp_bridge.video.status import VideoState
from siprtmp_contract.spec import parse_spec
from tests.support.ports import free_udp_window
from tests.support.video_pcap import VIDEO_PAYLOAD_TYPE, H264Rtp, encode_h264_rtp

# pjsua's answer: the audio, and the video slot disabled (the session makes it live).
PJSUA_ANSWER = (
    "v=0\r\no=- 3 4 IN IP4 127.0.0.1\r\ns=pjmedia\r\nt=0 0\r\n"
    "m=audio {audio} RTP/AVP 0\r\nc=IN IP4 127.0.0.1\r\na=rtpmap:0 PCMU/8000\r\na=recvonly\r\n"
    "m=video 0 RTP/AVP 96\r\nc=IN IP4 0.0.0.0\r\n"
)


def far_end_offer(rtp: H264Rtp, video_port: int) -> str:
    pt = VIDEO_PAYLOAD_TYPE
    return (
        "v=0\r\no=far 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        "m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendonly\r\n"
        f"m=video {video_port} RTP/AVP {pt}\r\na=rtpmap:{pt} H264/90000\r\n"
        f"a=fmtp:{pt} {rtp.fmtp}\r\na=sendonly\r\n"
    )


def session_for(workdir: Path, submit: Any, supervisor: Supervisor) -> VideoSession:
    low = free_udp_window(4)
    spec = parse_spec(
        {
            "callee": "sip:far@127.0.0.1",
            "rtmpUrl": "rtmp://127.0.0.1/live",
            "rtmpStream": "s",
            "video": {"mode": "passthrough"},
            "nat": {"bindAddress": "127.0.0.1", "rtpPortMin": low, "rtpPortMax": low + 3},
        }
    )
    return VideoSession(spec, workdir, submit, lambda stream: None, lambda at: at, supervisor)


def test_an_unexpected_error_past_ffmpeg_fails_the_video_and_ends_the_call(
    pcap_dir: Path, tmp_path: Path
) -> None:
    rtp = encode_h264_rtp(pcap_dir, 2.0)

    def broken_publisher(packet: Any) -> None:
        raise RuntimeError("publisher went away")

    supervisor = Supervisor()
    session = session_for(tmp_path, broken_publisher, supervisor)
    audio = session.spec.nat.rtp_port_min
    try:
        answer = session.rewrite_sdp(PJSUA_ANSWER.format(audio=audio), far_end_offer(rtp, 40002))
        assert answer is not None and session.port == audio + 2
        assert session.snapshot().state is VideoState.NEGOTIATED
        receiver = session.receiver
        assert receiver is not None
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as far_end:
            deadline = time.monotonic() + 20
            for packet in rtp.packets:  # a keyframe's worth reaches the publisher, which fails
                far_end.sendto(packet, ("127.0.0.1", session.port))
                time.sleep(0.002)
                if not receiver.running or time.monotonic() > deadline:
                    break
        receiver.stop(10)  # joins the thread, which the failure has ended
        assert not receiver.running
        status = session.snapshot()
        assert status.state is VideoState.FAILED, status
        assert status.reason == "video receiver failed: RuntimeError: publisher went away"
        # A bug, not the far end's video: the runner ends the call with InternalError.
        assert supervisor.failure == (
            "video-receiver thread failed: RuntimeError: publisher went away"
        )
    finally:
        session.stop()
        session.close()
