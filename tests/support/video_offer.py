"""The far end's video m-line for SIPp, and what the bridge answered to it.

Phones and room systems rarely offer one H.264 payload type: baresip offers packetization mode 0
and mode 1 under two numbers, others add profiles, or list VP8 first. ``several_h264`` is such an
offer, built so that the format the bridge must pick (the stream SIPp sends) is never the
offer's first H.264 one: an answer renumbered to that first one (pjmedia's negotiator does that
unless told otherwise) shows in the ACK.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

H264 = "H264/90000"


@dataclass(frozen=True)
class OfferedFormat:
    payload_type: int
    encoding: str | None  # None: a static payload type named by its number alone
    fmtp: str | None = None


def video_mline(formats: tuple[OfferedFormat, ...], direction: str = "sendonly") -> str:
    """The m=video section for ``uas_video_offer.xml``'s ``{{video_mline}}`` (keyframe
    requests offered for every format, as baresip does)."""
    numbers = " ".join(str(f.payload_type) for f in formats)
    lines = [f"m=video [media_port+2] RTP/AVP {numbers}"]
    for offered in formats:
        pt = offered.payload_type
        if offered.encoding is not None:
            lines.append(f"a=rtpmap:{pt} {offered.encoding}")
        if offered.fmtp is not None:
            lines.append(f"a=fmtp:{pt} {offered.fmtp}")
        lines += [f"a=rtcp-fb:{pt} nack pli", f"a=rtcp-fb:{pt} ccm fir"]
    lines.append(f"a={direction}")
    return "\n".join(lines)


@dataclass(frozen=True)
class VideoOffer:
    formats: tuple[OfferedFormat, ...]
    answered: int  # the payload type the bridge must answer, SIPp's stream's

    def mline(self, direction: str = "sendonly") -> str:
        return video_mline(self.formats, direction)


def one_h264(fmtp: str, mode: int = 1) -> VideoOffer:
    """H.264 alone, under 96; ``mode`` is the stream's, already in its ``fmtp``."""
    return VideoOffer((OfferedFormat(96, H264, fmtp),), answered=96)


def several_h264(fmtp: str, mode: int = 1) -> VideoOffer:
    """VP8 first, then H.264 several times; the stream (``fmtp``, packetization ``mode``) is
    the one the bridge prefers, and an H.264 format it cannot or should not take comes first:
    mode 0 before the mode-1 stream, mode 2 (interleaved, refused) before the mode-0 one."""
    vp8 = OfferedFormat(100, "VP8/90000", "max-fr=30;max-fs=3600")
    formats: tuple[OfferedFormat, ...]
    if mode == 1:
        formats = (
            vp8,
            OfferedFormat(126, H264, "profile-level-id=42e01f;packetization-mode=0"),
            OfferedFormat(121, H264, fmtp),
            OfferedFormat(109, H264, "profile-level-id=640028;packetization-mode=1"),
            OfferedFormat(34, None),  # H.263, static
        )
        return VideoOffer(formats, answered=121)
    formats = (
        vp8,
        OfferedFormat(99, H264, "profile-level-id=42e01f;packetization-mode=2"),
        OfferedFormat(98, H264, fmtp),
        OfferedFormat(104, H264, "profile-level-id=640028"),
    )
    return VideoOffer(formats, answered=98)


class OfferMaker(Protocol):
    def __call__(self, fmtp: str, mode: int = 1) -> VideoOffer: ...


OFFERS: dict[str, OfferMaker] = {"one-h264": one_h264, "several-h264": several_h264}


def video_answer(message: str) -> list[str]:
    """The m=video section (its lines) of a SIP message's SDP body."""
    lines = message.replace("\r\n", "\n").split("\n")
    start = next(i for i, line in enumerate(lines) if line.startswith("m=video "))
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("m=")), len(lines))
    return [line for line in lines[start:end] if line]


def assert_answer_agrees(message: str, payload_type: int, mode: int) -> None:
    """The answer names one H.264 format and describes that one everywhere: the m= line,
    rtpmap, fmtp (with the offered packetization mode) and every keyframe-request line."""
    section = video_answer(message)
    assert section[0].split()[3:] == [str(payload_type)], section
    attributes = [line for line in section if line.startswith("a=")]
    rtpmaps = [line for line in attributes if line.startswith("a=rtpmap:")]
    assert rtpmaps == [f"a=rtpmap:{payload_type} {H264}"], section
    fmtps = [line for line in attributes if line.startswith("a=fmtp:")]
    assert len(fmtps) == 1 and fmtps[0].startswith(f"a=fmtp:{payload_type} "), section
    assert f"packetization-mode={mode}" in fmtps[0], section
    feedback = [line for line in attributes if line.startswith("a=rtcp-fb:")]
    assert feedback, section
    assert all(line.startswith(f"a=rtcp-fb:{payload_type} ") for line in feedback), section
