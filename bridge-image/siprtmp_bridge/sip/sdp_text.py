"""The text of an SDP pjsua hands to ``onCallSdpCreated``, whatever its size.

pjsua2 prints each ``SdpSession`` into a buffer of ``PJSUA2_MAX_SDP_BUF_LEN`` bytes, 1024 in
the wheels' build, and gives ``wholeSdp == ""`` for a longer one. An SBC's re-offer is longer:
rtpengine offers every SRTP suite it knows (12 ``a=crypto`` lines per m-line) and a DTLS
fingerprint, 3.2 KB for baresip's audio and video, so the video answer saw no offer at all.
pjmedia's own printer, reached as payload_type.py reaches its negotiator, prints the session
the pointer names into a buffer as large as any SIP message.
"""

from __future__ import annotations

import ctypes
import functools
import logging
from typing import Any

import pjsua2

log = logging.getLogger(__name__)

#: No SDP is longer than the UDP datagram (or the TCP message pjsip accepts) that carried it.
BUFFER_BYTES = 65536


@functools.cache
def _printer() -> Any:
    """pjmedia_sdp_print(session, buffer, size) -> length, or -1 when it does not fit; None
    when the library does not export it (then a long SDP stays empty, as pjsua2 gives it)."""
    try:
        printer = ctypes.CDLL(pjsua2._pjsua2.__file__).pjmedia_sdp_print
    except (OSError, AttributeError) as error:
        log.warning("SDPs over pjsua2's 1024 bytes cannot be read: %s", error)
        return None
    printer.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
    printer.restype = ctypes.c_int
    return printer


def whole_sdp(session: Any) -> str:
    """The SDP text: pjsua2's own when it printed one, else pjmedia's print of the session it
    points at; "" when there is no session (pjsua makes an offer, nothing to answer)."""
    text = str(session.wholeSdp)
    pointer = session.pjSdpSession
    printer = _printer() if not text and pointer is not None else None
    if printer is None:
        return text
    buffer = ctypes.create_string_buffer(BUFFER_BYTES)
    length = printer(int(pointer), buffer, BUFFER_BYTES)
    return buffer.raw[:length].decode("utf-8", "replace") if length > 0 else ""
