"""What the SIP side reports to the runner: plain values, copied out of pjsua's callbacks,
which the runner feeds to the call's state machine (``lifecycle``)."""

from __future__ import annotations

from dataclasses import dataclass

from siprtmp_bridge.sip.states import InviteProgress


@dataclass(frozen=True)
class Registered:
    ok: bool
    status_code: int
    reason: str


@dataclass(frozen=True)
class CallProgressed:
    progress: InviteProgress
    reason: str
    sip_call_id: str
    got_response: bool  # the far end has answered this INVITE with anything at all


@dataclass(frozen=True)
class CallMediaChanged:
    bridged: bool  # the audio flows, or is held by the far end
    remote_sending: bool
    remote_hold: bool
    codec: str | None
    local_sending: bool = False
    rtp_path: tuple[int, str] | None = None  # (local RTP port, far end's RTP address)


@dataclass(frozen=True)
class CallEnded:
    status_code: int
    reason: str
    got_response: bool
    was_answered: bool
    # The far end's BYE ended the call; otherwise pjsip ended it (or the bridge hung up).
    bye_received: bool
    #: The far end's latest SDP ("" when it sent none): tells an SRTP refusal from others.
    remote_sdp: str = ""


@dataclass(frozen=True)
class DtmfReceived:
    """A key the far end pressed, by either method."""

    key: str


@dataclass(frozen=True)
class SrtpNegotiated:
    """The audio's SRTP suite as the latest offer and answer have it (None: plain RTP), and its
    profile as the far end's SDP names it (``RTP/AVP`` carries keys too under ``allow``)."""

    suite: str | None
    profile: str | None = None


SipEvent = (
    Registered | CallProgressed | CallMediaChanged | CallEnded | DtmfReceived | SrtpNegotiated
)
