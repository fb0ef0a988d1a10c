"""SRTP keyed in the SDP (SDES, RFC 4568): the ``a=crypto`` attributes, which suite a call
negotiated, and when ``mediaEncryption: require`` must end a call. Text in, text out.

pjsua protects the audio itself (sip/call.py sets its account's SRTP use); the bridge's own
video m-line carries keys made here (video/session.py) and the video relay applies them
(video/srtp.py).
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from siprtmp_bridge.rtp.sdp import crypto_values, media_sections
from siprtmp_contract.outcome import ExitCode, Outcome, Reason

#: The suites the video relay can apply (pylibsrtp's profiles), with the length of their
#: master key and salt together, as ``inline:`` carries them. In the order the bridge prefers
#: them when it offers; as an answerer it takes the first of the offer's it knows (RFC 4568,
#: 6.1).
SUITES: dict[str, int] = {
    "AES_CM_128_HMAC_SHA1_80": 30,
    "AES_CM_128_HMAC_SHA1_32": 30,
    "AEAD_AES_128_GCM": 28,
    "AEAD_AES_256_GCM": 44,
}
# "1 AES_CM_128_HMAC_SHA1_80 inline:KEY[|lifetime][|mki:length] [session parameters]"
_CRYPTO = re.compile(r"^(\d{1,9})\s+([A-Za-z0-9_]+)\s+inline:([^\s|;]+)((?:\|[^\s|;]+)*)")
#: SIP responses that refuse an offer for what it asks of the media (RFC 3261, 21.4.26, 21.6.4).
_NOT_ACCEPTABLE = frozenset({488, 606})


@dataclass(frozen=True)
class Crypto:
    """One ``a=crypto`` line: its tag, suite and master key + salt."""

    tag: int
    suite: str
    key: bytes

    def attribute(self) -> str:
        """The line as SDP writes it: ``a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:…``."""
        return f"a=crypto:{self.tag} {self.suite} inline:{base64.b64encode(self.key).decode()}"


def parse_crypto(value: str) -> Crypto | None:
    """The attribute's value (after ``a=crypto:``); None for a suite the bridge cannot apply, a
    key of the wrong length, or an MKI (a key index in every packet, which no one we know of
    sends and the relay does not apply)."""
    match = _CRYPTO.match(value.strip())
    if match is None or match[2] not in SUITES:
        return None
    if any(part.count(":") for part in match[4].split("|")[1:]):
        return None  # "|mki:length"
    try:
        key = base64.b64decode(match[3], validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(key) != SUITES[match[2]]:
        return None
    return Crypto(int(match[1]), match[2], key)


def new_crypto(tag: int, suite: str) -> Crypto:
    """A fresh master key and salt for ``suite``, from the system's CSPRNG."""
    return Crypto(tag, suite, secrets.token_bytes(SUITES[suite]))


def choose_crypto(offered: Iterable[str]) -> Crypto | None:
    """The far end's key the bridge answers: the first offered line it can apply."""
    return next((c for value in offered if (c := parse_crypto(value)) is not None), None)


def _audio(sdp: str) -> tuple[str, tuple[str, ...]] | None:
    """(proto, crypto values) of the first live audio m-line; None when there is none."""
    for lines in media_sections(sdp)[1]:
        fields = lines[0][2:].split()
        if len(fields) >= 3 and fields[0] == "audio" and fields[1] != "0":
            return fields[2], crypto_values(lines[1:])
    return None


def _suite(value: str) -> str:
    parts = value.split()
    return parts[1] if len(parts) > 1 else ""


def negotiated_suite(local_sdp: str, remote_sdp: str) -> str | None:
    """The audio's SRTP suite, from the latest SDP each side sent; None for plain RTP.

    Of an offer and its answer, the answer holds the one line chosen from the offer's (RFC
    4568, 5.1.2): the suite both name, taken from the side with fewer lines.
    """
    local, remote = _audio(local_sdp), _audio(remote_sdp)
    if local is None or remote is None or not local[1] or not remote[1]:
        return None
    answer, offer = sorted((local[1], remote[1]), key=len)
    offered = {_suite(value) for value in offer}
    return next((s for value in answer if (s := _suite(value)) in offered), None)


def audio_profile(remote_sdp: str) -> str | None:
    """The audio's transport profile, ``RTP/AVP`` or ``RTP/SAVP``, as the far end's latest SDP
    names it (an answer repeats its offer's); None before it sent one with live audio."""
    audio = _audio(remote_sdp)
    return audio[0] if audio is not None else None


def refuses_plain_offer(status_code: int) -> bool:
    """Whether a refusal of the bridge's RTP/AVP offer (with or without keys) may be one of SRTP
    not offered as RTP/SAVP, as far ends that require SRTP answer (baresip's ``srtp-mand``:
    488): under ``mediaEncryption: allow`` the bridge offers RTP/SAVP once more."""
    return status_code in _NOT_ACCEPTABLE


def sdp_body(message: str) -> str | None:
    """The SDP a SIP message carries (its Content-Type ``application/sdp``), else None."""
    head, separator, body = message.partition("\r\n\r\n")
    if not separator:
        head, separator, body = message.partition("\n\n")
    if not separator or not body.strip():
        return None
    for line in head.splitlines():
        name, _, value = line.partition(":")
        if name.strip().lower() in ("content-type", "c"):
            return body if value.strip().lower().startswith("application/sdp") else None
    return None


def require_refused(status_code: int, reason: str, remote_sdp: str) -> Outcome | None:
    """With ``mediaEncryption: require``, how a call that ended unanswered (or whose media
    could not be set up) is reported: the far end refused the RTP/SAVP offer (488, 606), or
    its SDP offered or answered audio without keys. None when it ended for something else."""
    audio = _audio(remote_sdp) if remote_sdp else None
    plain = audio is not None and not audio[1]
    if not plain and status_code not in _NOT_ACCEPTABLE:
        return None
    why = (
        f"the far end's SDP has audio {audio[0]} without SRTP keys" if plain and audio else ""
    ) or f"the far end refused the SRTP offer ({status_code} {reason or 'no reason given'})"
    return Outcome(
        ExitCode.REJECTED,
        Reason.SRTP_REFUSED,
        f"{why}; mediaEncryption: require accepts no plain RTP",
    )


@dataclass(frozen=True)
class VideoKeys:
    """The video m-line's SRTP: the far end's key (from its offer) and the bridge's (answered
    with the same tag and suite)."""

    remote: Crypto
    local: Crypto


def video_keys(
    mode: str, proto: str, offered: tuple[str, ...], kept: Crypto | None = None
) -> VideoKeys | str | None:
    """How the bridge answers the far end's video under ``mediaEncryption`` ``mode``: with SRTP
    keys, in plain RTP (None), or not at all (the reason, a str). ``kept`` is the bridge's key
    from an earlier answer, kept when the suite and tag stay (a re-INVITE)."""
    secure = "SAVP" in proto.upper()
    remote = choose_crypto(offered) if mode != "disable" else None
    if remote is None:
        if secure and mode == "disable":
            return f"the far end offers {proto} video and mediaEncryption is disable"
        if secure:
            suites = ", ".join(_suite(value) for value in offered) or "none"
            return f"the far end's {proto} video offers no SRTP suite the bridge applies ({suites})"
        if mode == "require":
            return "the far end offers video without SRTP keys and mediaEncryption is require"
        return None
    if kept is not None and (kept.tag, kept.suite) == (remote.tag, remote.suite):
        return VideoKeys(remote, kept)
    return VideoKeys(remote, new_crypto(remote.tag, remote.suite))
