"""SRTP for the video relay: the far end's SRTP and SRTCP made plain for FFmpeg, and the
RTCP the bridge sends (FFmpeg's receiver reports, keyframe requests) protected, with libsrtp
(pylibsrtp) and the keys of the video m-line's offer and answer (siprtmp_bridge.rtp.srtp).
"""

from __future__ import annotations

import threading

import pylibsrtp

from siprtmp_bridge.rtp.srtp import Crypto

_PROFILES = {
    "AES_CM_128_HMAC_SHA1_80": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
    "AES_CM_128_HMAC_SHA1_32": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_32,
    "AEAD_AES_128_GCM": pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM,
    "AEAD_AES_256_GCM": pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_256_GCM,
}


def _session(crypto: Crypto, direction: int) -> pylibsrtp.Session:
    return pylibsrtp.Session(
        pylibsrtp.Policy(key=crypto.key, ssrc_type=direction, srtp_profile=_PROFILES[crypto.suite])
    )


class SrtpChannel:
    """One video stream's two directions: ``remote`` is the far end's key (what it sends),
    ``local`` the bridge's (what its answer gave). Receiving runs on the relay's thread only;
    sending comes from the relay's thread and the SIP side's (keyframe requests), so it locks.
    """

    def __init__(self, remote: Crypto, local: Crypto) -> None:
        self.remote = remote
        self.local = local
        self.suite = remote.suite
        self._inbound = _session(remote, pylibsrtp.Policy.SSRC_ANY_INBOUND)
        self._outbound = _session(local, pylibsrtp.Policy.SSRC_ANY_OUTBOUND)
        self._send_lock = threading.Lock()
        #: Packets that failed authentication or replay checks: dropped, never forwarded.
        self.rejected = 0

    def unprotect(self, packet: bytes, rtcp: bool) -> bytes | None:
        """The plain RTP (or RTCP) of a packet from the far end; None when it does not
        authenticate (a forgery, a replay, a key from another offer)."""
        try:
            if rtcp:
                plain: bytes = self._inbound.unprotect_rtcp(packet)
            else:
                plain = self._inbound.unprotect(packet)
        except pylibsrtp.Error:
            self.rejected += 1
            return None
        return plain

    def protect_rtcp(self, packet: bytes) -> bytes:
        with self._send_lock:
            protected: bytes = self._outbound.protect_rtcp(packet)
        return protected
