"""Keep pjsua's SDP negotiator from renumbering the bridge's H.264 answer.

pjsua builds the answer it sends from the SDP the bridge hands back in ``onCallSdpCreated``,
but first runs it through pjmedia's negotiator (``sdp_neg.c``, ``match_offer``). For a dynamic
payload type that matches any offered format of the same encoding name and clock rate, unless a
format-match callback for that name says otherwise; it then rewrites the answer's m= line,
rtpmap and fmtp (not its rtcp-fb) to the number of the first offered format it matched. A
video-enabled pjsua registers such a callback for H.264 (profile and packetization mode); this
audio-only build has none, so an offer of H.264 96 (mode 0) then 97 (mode 1) turned the bridge's
answer for 97 into ``m=video … 96`` with 97's fmtp and ``a=rtcp-fb:97``, and FFmpeg, told 97,
dropped the far end's PT 96 (baresip, room systems).

The bridge has already picked its format (``sdp.decide_video``) and answered with the offer's
own number for it, so the callback registered here accepts an offered H.264 format only with
that same number: the negotiator then keeps the answer as written.
"""

from __future__ import annotations

import ctypes
import functools
from typing import Any

import pjsua2

# pjmedia_sdp_neg_fmt_match(): set when the negotiator is building our answer (it may rewrite
# the answer); clear when it checks the far end's answer to our own offer.
ALLOW_MODIFY_ANSWER = 1
PJ_SUCCESS = 0
NO_MATCH = 1  # any status but PJ_SUCCESS: the negotiator only tells success from failure


class _PjStr(ctypes.Structure):
    _fields_ = [("ptr", ctypes.c_void_p), ("slen", ctypes.c_ssize_t)]

    def text(self) -> str:
        return ctypes.string_at(self.ptr, self.slen).decode("ascii", "replace")


class _MediaDescription(ctypes.Structure):
    """The start of ``pjmedia_sdp_media`` (its ``desc``: the m= line), as far as the format
    list; the layout has been the same since pjmedia 1.0."""

    _fields_ = [
        ("media", _PjStr),
        ("port", ctypes.c_uint16),
        ("port_count", ctypes.c_uint),
        ("transport", _PjStr),
        ("fmt_count", ctypes.c_uint),
        ("fmt", _PjStr * 32),  # PJMEDIA_MAX_SDP_FMT
    ]


_MatchCallback = ctypes.CFUNCTYPE(
    ctypes.c_int,
    ctypes.c_void_p,
    ctypes.POINTER(_MediaDescription),
    ctypes.c_uint,
    ctypes.POINTER(_MediaDescription),
    ctypes.c_uint,
    ctypes.c_uint,
)


def formats_match(offered: str, answered: str, option: int) -> bool:
    """Whether the negotiator may pair an offered H.264 format with one of ours: in our answer
    only under the same payload type; in the far end's answer to our offer, as pjmedia would."""
    return not option & ALLOW_MODIFY_ANSWER or offered.strip() == answered.strip()


def _match(
    _pool: Any, offer: Any, offer_index: int, answer: Any, answer_index: int, option: int
) -> int:
    offered = offer.contents.fmt[offer_index].text()
    answered = answer.contents.fmt[answer_index].text()
    return PJ_SUCCESS if formats_match(offered, answered, option) else NO_MATCH


_CALLBACK = _MatchCallback(_match)  # pjmedia keeps the pointer: never collected
_H264 = b"H264"
_NAME = _PjStr(ctypes.cast(ctypes.c_char_p(_H264), ctypes.c_void_p), len(_H264))  # kept too


@functools.cache
def install_h264_match() -> str | None:
    """Register the callback with pjmedia (once per process); None when done, else why not."""
    try:
        library = ctypes.CDLL(pjsua2._pjsua2.__file__)
        register = library.pjmedia_sdp_neg_register_fmt_match_cb
    except (OSError, AttributeError) as error:
        return f"pjmedia's format-match registration is not available: {error}"
    register.argtypes = [ctypes.POINTER(_PjStr), _MatchCallback]
    register.restype = ctypes.c_int
    status = register(ctypes.byref(_NAME), _CALLBACK)
    if status != PJ_SUCCESS:
        return f"pjmedia refused the H.264 format-match callback (status {status})"
    return None
