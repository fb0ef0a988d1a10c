"""The video m-line of a delayed-offer call: read the far end's offer, rewrite pjsua's answer.

pjsua's audio-only build answers an offered video stream with a disabled slot (``m=video 0``).
The bridge turns that slot into a live H.264 answer on a port of its own, which FFmpeg reads;
pjsua keeps ignoring the stream ("unsupported media type"). Everything here is text in, text
out, so each rule is unit-tested without a call.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from siprtmp_bridge.rtp.sdp import crypto_values, media_sections
from siprtmp_bridge.video.h264 import FmtpError, H264Format, h264_format

_RTPMAP = re.compile(r"^a=rtpmap:(\d+)\s+([^/\s]+)/(\d+)", re.IGNORECASE)
_FMTP = re.compile(r"^a=fmtp:(\d+)\s+(.*)$", re.IGNORECASE)
_RTCP = re.compile(r"^a=rtcp:(\d+)(?:\s+IN\s+IP[46]\s+(\S+))?", re.IGNORECASE)
_SSRC = re.compile(r"^a=ssrc:(\d+)")
_RTCP_FB = re.compile(r"^a=rtcp-fb:(\d+|\*)\s+(.*)$", re.IGNORECASE)
_DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
# Static video payload types (RFC 3551) named by number alone in an offer.
_STATIC_VIDEO = {26: "JPEG", 31: "H261", 32: "MPV", 33: "MP2T", 34: "H263"}


@dataclass(frozen=True)
class VideoOffer:
    """The far end's video m-line, as far as the bridge cares."""

    port: int
    proto: str
    address: str | None
    payload_types: tuple[int, ...]
    encodings: dict[int, str]  # payload type → "H264/90000"
    fmtps: dict[int, str]
    direction: str = "sendrecv"
    rtcp_port: int | None = None
    rtcp_address: str | None = None
    rtcp_mux: bool = False
    feedback: tuple[str, ...] = ()  # rtcp-fb values offered for the chosen or every format
    ssrc: int | None = None  # a=ssrc: the target of keyframe requests
    cryptos: tuple[str, ...] = ()  # a=crypto values: the far end's SRTP keys (SDES)

    @property
    def sends(self) -> bool:
        return self.port != 0 and self.direction in ("sendrecv", "sendonly")

    def feedback_for(self, payload_type: int) -> tuple[str, ...]:
        return tuple(
            value for pt, value in _split_feedback(self.feedback) if pt in ("*", str(payload_type))
        )


@dataclass(frozen=True)
class VideoAccepted:
    """Video the bridge receives: the format chosen and where the far end's RTCP goes."""

    offer: VideoOffer
    format: H264Format

    @property
    def remote_rtcp(self) -> tuple[str | None, int]:
        """Where RTCP feedback (PLI/FIR) for the far end's video goes."""
        if self.offer.rtcp_mux:
            return self.offer.address, self.offer.port
        return (
            self.offer.rtcp_address or self.offer.address,
            self.offer.rtcp_port or self.offer.port + 1,
        )


@dataclass(frozen=True)
class VideoDeclined:
    """No video is received; ``refused`` tells a codec problem from a far end without video."""

    reason: str
    refused: bool = False
    offered: tuple[str, ...] = field(default=())


VideoDecision = VideoAccepted | VideoDeclined


def _connection_address(lines: list[str]) -> str | None:
    for line in lines:
        if line.startswith("c="):
            parts = line[2:].split()
            if len(parts) >= 3:
                return parts[2].split("/")[0]
    return None


def parse_video_offer(sdp: str) -> VideoOffer | None:
    """The first video m-line with a port of the far end's offer; None when it has none."""
    session, sections = media_sections(sdp)
    session_address = _connection_address(session)
    for lines in sections:
        fields = lines[0][2:].split()
        if len(fields) < 4 or fields[0] != "video" or not fields[1].split("/")[0].isdigit():
            continue
        port = int(fields[1].split("/")[0])
        if port == 0:
            continue
        payload_types = tuple(int(f) for f in fields[3:] if f.isdigit())
        encodings = {pt: name for pt, name in _STATIC_VIDEO.items() if pt in payload_types}
        fmtps: dict[int, str] = {}
        direction = next(
            (d for d in _DIRECTIONS for line in session if line == f"a={d}"), "sendrecv"
        )
        rtcp_port = rtcp_address = None
        rtcp_mux = False
        ssrc = None
        feedback: list[str] = []
        for line in lines[1:]:
            if match := _RTPMAP.match(line):
                encodings[int(match[1])] = f"{match[2]}/{match[3]}"
            elif match := _FMTP.match(line):
                fmtps[int(match[1])] = match[2]
            elif match := _RTCP.match(line):
                rtcp_port, rtcp_address = int(match[1]), match[2]
            elif match := _RTCP_FB.match(line):
                feedback.append(f"{match[1]} {match[2].strip()}")
            elif (match := _SSRC.match(line)) and ssrc is None:
                ssrc = int(match[1])
            elif line == "a=rtcp-mux":
                rtcp_mux = True
            elif line[2:] in _DIRECTIONS and line.startswith("a="):
                direction = line[2:]
        return VideoOffer(
            port=port,
            proto=fields[2],
            address=_connection_address(lines[1:]) or session_address,
            payload_types=payload_types,
            encodings=encodings,
            fmtps=fmtps,
            direction=direction,
            rtcp_port=rtcp_port,
            rtcp_address=rtcp_address,
            rtcp_mux=rtcp_mux,
            feedback=tuple(feedback),
            ssrc=ssrc,
            cryptos=crypto_values(lines[1:]),
        )
    return None


def decide_video(remote_sdp: str) -> VideoDecision:
    """Which offered format to receive: H.264 in packetization mode 1, else mode 0, else none."""
    offer = parse_video_offer(remote_sdp)
    if offer is None:
        return VideoDeclined("the far end offered no video")
    if not offer.sends:
        return VideoDeclined(f"the far end offered video {offer.direction}: it sends none")
    if offer.address is None:
        return VideoDeclined("the far end's video m-line has no connection address", True)
    candidates: list[H264Format] = []
    problems: list[str] = []
    for payload_type in offer.payload_types:
        encoding = offer.encodings.get(payload_type, f"payload type {payload_type}")
        if encoding.upper() != "H264/90000":
            continue
        try:
            candidates.append(h264_format(payload_type, offer.fmtps.get(payload_type, "")))
        except FmtpError as error:
            problems.append(f"H.264 payload type {payload_type}: {error}")
    if candidates:
        best = max(candidates, key=lambda f: f.packetization_mode)
        return VideoAccepted(offer, best)
    offered = tuple(offer.encodings.get(pt, f"payload type {pt}") for pt in offer.payload_types)
    detail = "; ".join(problems) if problems else f"the far end offered {', '.join(offered)}"
    return VideoDeclined(
        f"video refused: only H.264 (packetization-mode 0 or 1) is bridged; {detail}",
        refused=True,
        offered=offered,
    )


def answer_fmtp(chosen: H264Format) -> str:
    """Our fmtp: the far end's packetization mode and profile-level-id, never its sprop
    (sprop-parameter-sets in an answer would describe video the bridge sends)."""
    parts = []
    if chosen.profile_level_id:
        parts.append(f"profile-level-id={chosen.profile_level_id}")
    parts.append(f"packetization-mode={chosen.packetization_mode}")
    return ";".join(parts)


def video_answer_section(
    accepted: VideoAccepted, port: int, address: str, sendrecv: bool, crypto: str | None = None
) -> list[str]:
    """The live m=video section the bridge answers with (``hasVideo``: sendrecv or recvonly);
    ``crypto``: the ``a=crypto`` line of the bridge's SRTP key, when the video is SRTP."""
    chosen = accepted.format
    pt = chosen.payload_type
    family = "IP6" if ":" in address else "IP4"
    lines = [
        f"m=video {port} {accepted.offer.proto} {pt}",
        f"c=IN {family} {address}",
        f"a=rtpmap:{pt} H264/90000",
        f"a=fmtp:{pt} {answer_fmtp(chosen)}",
    ]
    # Keyframe requests the far end said it understands (RFC 4585, RFC 5104).
    for value in accepted.offer.feedback_for(pt):
        if value.lower() in ("nack pli", "ccm fir", "nack"):
            lines.append(f"a=rtcp-fb:{pt} {value}")
    # A sendonly offer can only be answered recvonly (RFC 3264, 6.1), whatever hasVideo says.
    sends_too = sendrecv and accepted.offer.direction == "sendrecv"
    lines.append("a=sendrecv" if sends_too else "a=recvonly")
    if crypto is not None:
        lines.append(crypto)
    return lines


def rewrite_answer(local_sdp: str, section: list[str]) -> str | None:
    """pjsua's answer with its disabled video slot replaced by ``section``; None if no slot.

    The slot keeps its position, as SDP offer/answer requires (RFC 3264, section 6).
    """
    session, sections = media_sections(local_sdp)
    for index, lines in enumerate(sections):
        fields = lines[0][2:].split()
        if len(fields) >= 2 and fields[0] == "video" and fields[1] == "0":
            sections[index] = section
            break
    else:
        return None
    return "\r\n".join([*session, *(line for lines in sections for line in lines)]) + "\r\n"


def local_media_address(local_sdp: str) -> str | None:
    """The address pjsua advertises for audio: the video answer advertises the same one."""
    session, sections = media_sections(local_sdp)
    for lines in sections:
        if lines[0].startswith("m=audio") and (address := _connection_address(lines[1:])):
            return address
    return _connection_address(session)


def receiver_sdp(accepted: VideoAccepted, local_port: int) -> str:
    """The SDP FFmpeg reads to receive the far end's H.264 on loopback ``local_port``.

    FFmpeg only ever talks to the bridge's relay (``relay.py``), on loopback: its RTCP receiver
    reports go where the relayed RTP comes from (``rtcp_to_source``), and the relay sends
    them on to the far end.
    """
    chosen = accepted.format
    pt = chosen.payload_type
    lines = [
        "v=0",
        "o=- 0 0 IN IP4 127.0.0.1",
        "s=sip-rtmp-bridge video",
        "c=IN IP4 127.0.0.1",
        "t=0 0",
        f"m=video {local_port} RTP/AVP {pt}",
        f"a=rtpmap:{pt} H264/90000",
    ]
    if chosen.fmtp:
        lines.append(f"a=fmtp:{pt} {chosen.fmtp}")
    return "\n".join(lines) + "\n"


def _split_feedback(values: tuple[str, ...]) -> list[tuple[str, str]]:
    pairs = []
    for value in values:
        pt, _, rest = value.partition(" ")
        pairs.append((pt, rest.strip()))
    return pairs
