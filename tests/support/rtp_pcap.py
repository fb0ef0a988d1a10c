"""Make pcap files of RTP carrying a known tone, for SIPp's ``play_pcap_audio``.

The audio is encoded by FFmpeg (PyAV) with the call's codec, so the far end sends exactly what a
real phone would; SIPp rewrites addresses and ports to the negotiated ones when it plays.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np

from siprtmp_contract.dtmf import DTMF_KEYS


@dataclass(frozen=True)
class RtpCodec:
    name: str  # as in SDP rtpmap
    payload_type: int
    ffmpeg_encoder: str
    sample_rate: int  # audio samples per second
    rtp_clock: int  # RTP timestamp rate (G.722 keeps 8000 for historical reasons)
    bytes_per_20ms: int


PCMU = RtpCodec("PCMU", 0, "pcm_mulaw", 8000, 8000, 160)
PCMA = RtpCodec("PCMA", 8, "pcm_alaw", 8000, 8000, 160)
G722 = RtpCodec("G722", 9, "g722", 16000, 8000, 160)


def tone_pcm(
    frequency: float, seconds: float, sample_rate: int, amplitude: float = 0.5
) -> np.ndarray[Any, Any]:
    t = np.arange(int(sample_rate * seconds)) / sample_rate
    return (amplitude * 32767 * np.sin(2 * np.pi * frequency * t)).astype("<i2")


def encode_payload(codec: RtpCodec, pcm: np.ndarray[Any, Any]) -> bytes:
    context: Any = av.CodecContext.create(codec.ffmpeg_encoder, "w")
    context.sample_rate = codec.sample_rate
    context.layout = "mono"
    context.format = "s16"
    frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = codec.sample_rate
    frame.pts = 0
    packets = [*context.encode(frame), *context.encode(None)]
    return b"".join(bytes(packet) for packet in packets)


@dataclass(frozen=True)
class RtpSource:
    """Where an RTP stream's numbering starts from at a given packet: a sender (re)starting, as
    a new SSRC after an SBC's failover, or counters close to their wrap."""

    from_packet: int
    ssrc: int = 0x5EED
    first_sequence: int = 1
    first_timestamp: int = 0


def renumbered(packets: list[bytes], sources: tuple[RtpSource, ...]) -> list[bytes]:
    """``packets`` (one stream, in sending order) renumbered by ``sources`` (ordered by
    ``from_packet``): from each source's packet on, its SSRC, its sequence numbers counting up
    from its first and its timestamps kept as far apart as the originals were."""
    out = []
    source: RtpSource | None = None
    base = 0  # the original timestamp of the current source's first packet
    for index, packet in enumerate(packets):
        latest = next((s for s in reversed(sources) if s.from_packet <= index), None)
        original: int = struct.unpack("!I", packet[4:8])[0]
        if latest is not source:
            source, base = latest, original
        if source is None:
            out.append(packet)
            continue
        header = struct.pack(
            "!HII",
            (source.first_sequence + index - source.from_packet) & 0xFFFF,
            (source.first_timestamp + original - base) & 0xFFFFFFFF,
            source.ssrc,
        )
        out.append(packet[:2] + header + packet[12:])
    return out


def rtp_audio_packets(
    codec: RtpCodec,
    payload: bytes,
    ssrc: int = 0x5EED,
    port: int = 6000,
    sources: tuple[RtpSource, ...] = (),
) -> list[tuple[int, int, bytes]]:
    """(microseconds, destination port, RTP packet) of 20 ms packets carrying ``payload``;
    ``sources`` (ordered by ``from_packet``) renumber the stream from their packet on."""
    step = codec.bytes_per_20ms
    packets = [
        struct.pack("!BBHII", 0x80, codec.payload_type, 0, index * codec.rtp_clock // 50, 0)
        + payload[offset : offset + step]
        for index, offset in enumerate(range(0, len(payload) - step + 1, step))
    ]
    numbered = renumbered(packets, (RtpSource(0, ssrc), *sources))
    return [(index * 20_000, port, rtp) for index, rtp in enumerate(numbered)]


#: A key as phones send it: 7 packets of a growing duration, then the final one 3 times with
#: the end bit (RFC 4733 §2.5.1.4), 20 ms apart.
EVENT_PACKETS = 10
EVENT_END_PACKETS = 3


def rtp_with_dtmf(
    codec: RtpCodec,
    payload: bytes,
    presses: list[tuple[float, str]],
    event_payload_type: int,
    ssrc: int = 0x5EED,
) -> list[tuple[int, int, bytes]]:
    """``rtp_audio_packets`` of ``payload`` with RFC 4733 events in place of the audio while
    each key of ``presses`` (seconds from the start, key) is held: one stream, one SSRC."""
    held: dict[int, tuple[int, str, int]] = {}  # packet index → (first index, key, nth)
    for start, key in presses:
        first = round(start * 50)
        held.update({first + n: (first, key, n) for n in range(EVENT_PACKETS)})
    packets = rtp_audio_packets(codec, payload, ssrc)
    step = codec.rtp_clock // 50
    for index, (micros, port, _audio) in enumerate(packets):
        if index not in held:
            continue
        first, key, nth = held[index]
        end = nth >= EVENT_PACKETS - EVENT_END_PACKETS
        duration = step * min(nth + 1, EVENT_PACKETS - EVENT_END_PACKETS + 1)
        header = struct.pack(
            "!BBHII",
            0x80,
            event_payload_type | (0x80 if nth == 0 else 0),  # marker: an event's first packet
            (index + 1) & 0xFFFF,
            first * step,
            ssrc,
        )
        event = struct.pack("!BBH", DTMF_KEYS.index(key), (0x80 if end else 0) | 10, duration)
        packets[index] = (micros, port, header + event)
    return packets


def write_udp_pcap(path: Path, packets: list[tuple[int, int, bytes]]) -> int:
    """A pcap of UDP datagrams on loopback, each (microseconds, destination port, payload), in
    time order. SIPp plays them keeping each one's offset from the lowest destination port."""
    with path.open("wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for micros, port, payload in sorted(packets, key=lambda p: p[0]):
            udp = struct.pack("!HHHH", port, port + 1, 8 + len(payload), 0) + payload
            ip = (
                struct.pack(
                    "!BBHHHBBH4s4s",
                    0x45,
                    0,
                    20 + len(udp),
                    0,
                    0,
                    64,
                    17,
                    0,
                    bytes([127, 0, 0, 1]),
                    bytes([127, 0, 0, 1]),
                )
                + udp
            )
            frame = b"\0" * 12 + b"\x08\x00" + ip
            out.write(
                struct.pack(
                    "<IIII", micros // 1_000_000, micros % 1_000_000, len(frame), len(frame)
                )
            )
            out.write(frame)
    return len(packets)


def make_tone_pcap(
    path: Path,
    codec: RtpCodec,
    frequency: float,
    seconds: float,
    sources: tuple[RtpSource, ...] = (),
) -> Path:
    """A pcap of 20 ms RTP packets of the tone (Ethernet/IPv4/UDP framing, 20 ms apart)."""
    payload = encode_payload(codec, tone_pcm(frequency, seconds, codec.sample_rate))
    write_udp_pcap(path, rtp_audio_packets(codec, payload, sources=sources))
    return path
