"""A far end's camera for SIPp: FFmpeg encodes a known picture to H.264 over RTP on loopback,
and the packets go into one pcap with the call's tone, for ``play_pcap_audio``.

SIPp 3.6 runs one media thread per call (a second ``play_pcap_*`` cancels the first), so audio
and video share one pcap: SIPp sends each packet to the far end's audio port plus the packet's
offset from the pcap's lowest port, i.e. video to the audio port + 2, where the bridge puts its
video when that pair is free (the tests give it a window of exactly two pairs).

The picture: left half red, right half blue, and a marker strip at the bottom that is white
while the tone sounds and black while it is silent (both switch every half second), so that
the recording's audio and video can be lined up to measure their offset.
"""

from __future__ import annotations

import itertools
import re
import socket
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tests.support.rtp_pcap import (
    PCMU,
    RtpSource,
    encode_payload,
    renumbered,
    rtp_audio_packets,
    tone_pcm,
    write_udp_pcap,
)

WIDTH, HEIGHT, FPS = 320, 240, 25
RED = (0xE0, 0x20, 0x20)
BLUE = (0x20, 0x40, 0xE0)
TONE_HZ = 1000.0
BLINK_SECONDS = 0.5  # the tone and the marker: on for this long, then off for as long
AUDIO_PORT, VIDEO_PORT = 6000, 6002
VIDEO_PAYLOAD_TYPE = 96
NTP_EPOCH_SECONDS = 3_980_000_000  # the far end's wall clock at its first frame, in 2026
# The marker strip and the box inside it that blinks.
MARKER_BOX = (100, 185, 120, 50)  # x, y, w, h


@dataclass(frozen=True)
class H264Rtp:
    packets: list[bytes]  # RTP packets in sending order
    fmtp: str  # FFmpeg's a=fmtp value: packetization-mode, profile-level-id, sprop

    @property
    def sprop(self) -> str | None:
        match = re.search(r"sprop-parameter-sets=([^;\s]+)", self.fmtp)
        return match[1] if match else None


def picture_filter() -> str:
    x, y, w, h = MARKER_BOX
    return (
        f"color=c=0x{RED[0]:02X}{RED[1]:02X}{RED[2]:02X}:s={WIDTH}x{HEIGHT}:r={FPS},"
        f"drawbox=x={WIDTH // 2}:y=0:w={WIDTH // 2}:h=180"
        f":color=0x{BLUE[0]:02X}{BLUE[1]:02X}{BLUE[2]:02X}:t=fill,"
        f"drawbox=x=0:y=180:w={WIDTH}:h={HEIGHT - 180}:color=black:t=fill,"
        f"drawbox=x={x}:y={y}:w={w}:h={h}:color=white:t=fill"
        f":enable='lt(mod(t\\,{2 * BLINK_SECONDS})\\,{BLINK_SECONDS})'"
    )


def encode_h264_rtp(
    workdir: Path,
    seconds: float,
    packetization_mode: int = 1,
    picture: str | None = None,
    bitrate: str | None = None,
    in_band_parameter_sets: bool = True,
    keyframe_seconds: int = 1,
) -> H264Rtp:
    """Run FFmpeg's CLI (libx264, baseline, a keyframe every ``keyframe_seconds``) sending RTP
    to a socket here.

    ``picture`` is a lavfi source (the test picture by default); ``bitrate`` e.g. ``"800k"``
    (a busy picture at a phone's bitrate, for the benchmark) is sent at 4x real time so that
    no packet is lost on the way. Without ``in_band_parameter_sets`` the SPS and PPS are only
    in the fmtp's sprop-parameter-sets, as some phones send them.
    """
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    receiver.bind(("127.0.0.1", 0))
    port = receiver.getsockname()[1]
    sdp_file = workdir / f"h264-mode{packetization_mode}-gop{keyframe_seconds}.sdp"
    # SPS/PPS before every IDR as well as in sprop-parameter-sets (or in sprop alone).
    x264 = "repeat-headers=1" if in_band_parameter_sets else "repeat-headers=0"
    in_band = ["-bsf:v", "dump_extra"] if in_band_parameter_sets else []
    rtp_flags: list[str] = []
    if packetization_mode == 0:
        x264 += ":slice-max-size=1000"  # single NAL unit mode: every NAL fits one packet
        rtp_flags = ["-rtpflags", "h264_mode0"]
    command = [
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin",
        *(["-readrate", "4"] if bitrate else []),
        "-f", "lavfi", "-i", picture or picture_filter(), "-t", str(seconds),
        *(["-b:v", bitrate, "-maxrate", bitrate, "-bufsize", bitrate] if bitrate else []),
        "-c:v", "libx264", "-profile:v", "baseline", "-preset", "ultrafast",
        "-tune", "zerolatency", "-g", str(FPS * keyframe_seconds), "-flags", "+global_header",
        "-x264-params", x264, *in_band,
        *rtp_flags,
        "-f", "rtp", "-payload_type", str(VIDEO_PAYLOAD_TYPE), "-sdp_file", str(sdp_file),
        f"rtp://127.0.0.1:{port}?pkt_size=1200",
    ]  # fmt: skip
    packets: list[bytes] = []
    with receiver:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        receiver.settimeout(0.5)
        while True:
            try:
                packets.append(receiver.recv(2048))
            except TimeoutError:
                if process.poll() is not None:
                    break
        _, errors = process.communicate()
    assert process.returncode == 0, errors.decode(errors="replace")
    sequences = [struct.unpack("!H", p[2:4])[0] for p in packets]
    assert all((b - a) & 0xFFFF == 1 for a, b in itertools.pairwise(sequences)), "RTP lost"
    fmtp = re.search(r"a=fmtp:\d+ (.*)", sdp_file.read_text())
    return H264Rtp(packets, fmtp[1].strip() if fmtp else "")


def with_payload_type(rtp: H264Rtp, payload_type: int) -> H264Rtp:
    """The same stream sent under another RTP payload type (the one the far end's offer gave
    its H.264 and the bridge answered); the marker bits are kept."""
    packets = [
        packet[:1] + bytes([packet[1] & 0x80 | payload_type]) + packet[2:] for packet in rtp.packets
    ]
    return H264Rtp(packets, rtp.fmtp)


def nal_unit_types(packets: list[bytes]) -> set[int]:
    """The H.264 NAL unit types the RTP packets carry (RFC 6184: single NAL units, STAP-A
    aggregates and the first fragment of each FU-A)."""
    types: set[int] = set()
    for packet in packets:
        csrcs = packet[0] & 0x0F
        payload = packet[12 + 4 * csrcs :]
        kind = payload[0] & 0x1F
        if kind == 24:  # STAP-A: 16-bit sizes, each followed by a NAL unit
            at = 1
            while at + 2 < len(payload):
                size = struct.unpack("!H", payload[at : at + 2])[0]
                types.add(payload[at + 2] & 0x1F)
                at += 2 + size
        elif kind == 28:  # FU-A: the fragmented unit's type is in the FU header
            if payload[1] & 0x80:
                types.add(payload[1] & 0x1F)
        else:
            types.add(kind)
    return types


def blinking_tone_pcm(seconds: float, sample_rate: int) -> np.ndarray[Any, Any]:
    """The tone, gated on and off every ``BLINK_SECONDS`` starting on."""
    pcm = tone_pcm(TONE_HZ, seconds, sample_rate)
    t = np.arange(len(pcm)) / sample_rate
    gate = (np.floor(t / BLINK_SECONDS) % 2 == 0).astype(pcm.dtype)
    return np.asarray(pcm * gate)


def write_call_pcap(
    path: Path,
    video: H264Rtp,
    seconds: float,
    drop_frames: frozenset[int] = frozenset(),
    video_send_delay: float = 0.0,
    sender_reports: bool = False,
    sources: tuple[RtpSource, ...] = (),
) -> Path:
    """The blinking tone (PCMU) and the video in one pcap, each at its RTP timestamp's time;
    the video frames numbered in ``drop_frames`` are left out (lost on the way). ``sources``
    renumber the video (``renumbered``: a new SSRC, counters near their wrap) after its
    packets were timed by FFmpeg's numbering.

    ``video_send_delay`` sends each frame that much after its capture, as a phone's encoder
    does; ``sender_reports`` adds the video's RTCP sender reports (on the video port + 1, every
    second from the start), which map its RTP clock to the sender's wall clock.
    """
    audio = rtp_audio_packets(
        PCMU, encode_payload(PCMU, blinking_tone_pcm(seconds, PCMU.sample_rate)), port=AUDIO_PORT
    )
    first = struct.unpack("!I", video.packets[0][4:8])[0]
    delay_micros = int(video_send_delay * 1_000_000)
    video_packets = []
    previous, within, frame = None, 0, -1
    assert not (sources and sender_reports), "the reports would describe FFmpeg's numbering"
    for packet, sent in zip(video.packets, renumbered(video.packets, sources), strict=True):
        timestamp = struct.unpack("!I", packet[4:8])[0]
        within = within + 1 if timestamp == previous else 0
        frame += 1 if timestamp != previous else 0
        previous = timestamp
        if frame in drop_frames:
            continue
        micros = ((timestamp - first) & 0xFFFFFFFF) * 1_000_000 // 90_000
        # Packets of one frame share its timestamp: 0.1 ms apart, in sending order.
        video_packets.append((micros + delay_micros + 100 * within, VIDEO_PORT, sent))
    reports = []
    if sender_reports:
        ssrc = struct.unpack("!I", video.packets[0][8:12])[0]
        for second in range(int(seconds)):
            # Sent just before the first frame each second, describing that very moment.
            report = sender_report(ssrc, NTP_EPOCH_SECONDS + second, first + second * 90_000)
            reports.append((max(0, second * 1_000_000 - 50), VIDEO_PORT + 1, report))
    write_udp_pcap(path, audio + video_packets + reports)
    return path


def frame_start(video: H264Rtp, frame: int) -> int:
    """The index in ``video.packets`` of frame ``frame``'s first packet (frames counted from
    0, told apart by their RTP timestamps)."""
    starts = [
        index
        for index, packet in enumerate(video.packets)
        if index == 0 or packet[4:8] != video.packets[index - 1][4:8]
    ]
    return starts[frame]


def sender_report(ssrc: int, ntp_seconds: int, rtp_timestamp: int) -> bytes:
    """An RTCP SR without report blocks (RFC 3550 §6.4.1); packet and octet counts zero."""
    return struct.pack(
        "!BBHIIIIII", 0x80, 200, 6, ssrc, ntp_seconds, 0, rtp_timestamp & 0xFFFFFFFF, 0, 0
    )


def continued(first: H264Rtp, second: H264Rtp) -> H264Rtp:
    """``second`` sent on as part of ``first``'s stream (same SSRC, sequence numbers and
    timestamps running on), as a phone does when it changes resolution mid-call: the new
    parameter sets arrive in-band only, the offer's sprop-parameter-sets are ``first``'s."""
    last = first.packets[-1]
    sequence = struct.unpack("!H", last[2:4])[0]
    timestamp = struct.unpack("!I", last[4:8])[0] + 90_000 // FPS
    ssrc = last[8:12]
    base = struct.unpack("!I", second.packets[0][4:8])[0]
    packets = list(first.packets)
    for index, packet in enumerate(second.packets, start=1):
        offset = (struct.unpack("!I", packet[4:8])[0] - base) & 0xFFFFFFFF
        header = packet[:2] + struct.pack(
            "!HI", (sequence + index) & 0xFFFF, (timestamp + offset) & 0xFFFFFFFF
        )
        packets.append(header + ssrc + packet[12:])
    return H264Rtp(packets, first.fmtp)
