"""pjsip's invite-session states and media directions → the seed server's call states (pure)."""

from __future__ import annotations

from dataclasses import dataclass

from siprtmp_contract.states import CallState

# pjsip_inv_state values (stable across pjproject releases).
INV_NULL, INV_CALLING, INV_INCOMING, INV_EARLY, INV_CONNECTING, INV_CONFIRMED, INV_DISCONNECTED = (
    range(7)
)


@dataclass(frozen=True)
class InviteProgress:
    """One ``onCallState`` report, reduced to what the state mapping needs."""

    inv_state: int
    status_code: int
    early_media: bool = False


def call_state_for_progress(progress: InviteProgress) -> CallState | None:
    """The call state for an invite-session change; None for DISCONNECTED (see ``ended_state``)."""
    state, code = progress.inv_state, progress.status_code
    if state == INV_NULL:
        return CallState.NEW
    if state == INV_CALLING:
        return CallState.TRYING if code == 100 else CallState.PENDING
    if state == INV_EARLY:
        if progress.early_media:
            return CallState.RING_MEDIA
        return CallState.SESSION_PROGRESS if code == 183 else CallState.RING
    if state in (INV_CONNECTING, INV_CONFIRMED):
        return CallState.ESTABLISHED
    return None


def state_with_early_media(state: CallState) -> CallState:
    """Media negotiated before the answer (a 18x with SDP): the call is ringing with media."""
    if state in (CallState.PENDING, CallState.TRYING, CallState.RING, CallState.SESSION_PROGRESS):
        return CallState.RING_MEDIA
    return state


def ended_state(status_code: int, was_answered: bool) -> CallState:
    """FINISH for a call that was answered and hung up, BUSY for 486/600, FAILED otherwise."""
    if was_answered:
        return CallState.FINISH
    if status_code in (486, 600):
        return CallState.BUSY
    return CallState.FAILED


PJMEDIA_DIR_ENCODING, PJMEDIA_DIR_DECODING = 1, 2


def remote_sends(local_direction: int) -> bool:
    """Whether the far end sends audio: our local direction includes decoding (pjmedia_dir)."""
    return bool(local_direction & PJMEDIA_DIR_DECODING)


def local_sends(local_direction: int) -> bool:
    """Whether we send RTP on the stream (sendrecv or sendonly on our side)."""
    return bool(local_direction & PJMEDIA_DIR_ENCODING)


def answered_state(remote_is_sending: bool, remote_hold: bool, held_at_answer: bool) -> CallState:
    """ESTABLISHED, or HOLD when the far end stopped sending or put us on hold after answering.

    A far end that answers ``a=sendonly`` (an IVR, a recorded message) shows in pjsua as remote
    hold from the start; that is its normal mode and its audio is bridged, so it is ESTABLISHED.
    """
    if not remote_is_sending or (remote_hold and not held_at_answer):
        return CallState.HOLD
    return CallState.ESTABLISHED
