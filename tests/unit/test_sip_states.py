"""pjsip invite states and media directions → the seed's call states."""

from __future__ import annotations

import pytest

from siprtmp_bridge.sip.endpoint import codec_priorities
from siprtmp_bridge.sip.states import (
    INV_CALLING,
    INV_CONFIRMED,
    INV_CONNECTING,
    INV_DISCONNECTED,
    INV_EARLY,
    INV_NULL,
    InviteProgress,
    answered_state,
    call_state_for_progress,
    ended_state,
    local_sends,
    remote_sends,
    state_with_early_media,
)
from siprtmp_contract.states import CallState


@pytest.mark.parametrize(
    ("progress", "state"),
    [
        (InviteProgress(INV_NULL, 0), CallState.NEW),
        (InviteProgress(INV_CALLING, 0), CallState.PENDING),
        (InviteProgress(INV_CALLING, 100), CallState.TRYING),
        (InviteProgress(INV_EARLY, 180), CallState.RING),
        (InviteProgress(INV_EARLY, 183), CallState.SESSION_PROGRESS),
        (InviteProgress(INV_EARLY, 183, early_media=True), CallState.RING_MEDIA),
        (InviteProgress(INV_CONNECTING, 200), CallState.ESTABLISHED),
        (InviteProgress(INV_CONFIRMED, 200), CallState.ESTABLISHED),
        (InviteProgress(INV_DISCONNECTED, 486), None),
    ],
)
def test_progress(progress: InviteProgress, state: CallState | None) -> None:
    assert call_state_for_progress(progress) is state


def test_ended_states() -> None:
    assert ended_state(200, was_answered=True) is CallState.FINISH
    assert ended_state(486, was_answered=False) is CallState.BUSY
    assert ended_state(404, was_answered=False) is CallState.FAILED


def test_directions() -> None:
    assert remote_sends(2) and remote_sends(3) and not remote_sends(1)
    assert local_sends(1) and local_sends(3) and not local_sends(2)


def test_sendonly_answer_is_established_but_later_hold_is_hold() -> None:
    assert answered_state(True, remote_hold=True, held_at_answer=True) is CallState.ESTABLISHED
    assert answered_state(True, remote_hold=True, held_at_answer=False) is CallState.HOLD
    assert answered_state(False, remote_hold=True, held_at_answer=True) is CallState.HOLD
    assert answered_state(True, remote_hold=False, held_at_answer=False) is CallState.ESTABLISHED


def test_early_media_marks_ringing_calls_only() -> None:
    assert state_with_early_media(CallState.SESSION_PROGRESS) is CallState.RING_MEDIA
    assert state_with_early_media(CallState.ESTABLISHED) is CallState.ESTABLISHED


def test_codec_priorities_follow_the_spec_and_disable_the_rest() -> None:
    available = ["speex/16000/1", "PCMU/8000/1", "PCMA/8000/1", "G722/16000/1", "GSM/8000/1"]
    priorities = codec_priorities(available, ("PCMA", "speex/16000"))
    assert priorities == {
        "speex/16000/1": 254,
        "PCMU/8000/1": 0,
        "PCMA/8000/1": 255,
        "G722/16000/1": 0,
        "GSM/8000/1": 0,
    }
