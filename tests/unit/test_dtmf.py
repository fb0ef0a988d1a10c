"""DTMF digits, when a call may carry them, and the hand-over queue (pure parts)."""

from __future__ import annotations

import pytest

from siprtmp_bridge.dtmf import (
    MAX_DIGITS,
    DtmfError,
    DtmfQueue,
    DtmfRefusedError,
    parse_digits,
    refusal,
)
from siprtmp_bridge.status import CallState


def test_digits_are_keypad_keys_upper_cased() -> None:
    assert parse_digits("0123456789*#abcd") == "0123456789*#ABCD"


@pytest.mark.parametrize("value", [None, "", 5, ["1"], "12 3", "1x", "E"])
def test_bad_digits_name_the_field(value: object) -> None:
    with pytest.raises(DtmfError, match=r"^dtmf: "):
        parse_digits(value)


def test_too_many_digits() -> None:
    assert parse_digits("1" * MAX_DIGITS) == "1" * MAX_DIGITS
    with pytest.raises(DtmfError, match="at most"):
        parse_digits("1" * (MAX_DIGITS + 1))


def test_refusal_needs_an_answered_sending_call() -> None:
    assert refusal(True, CallState.ESTABLISHED) is None
    assert refusal(True, CallState.HOLD) is None
    assert "RING" in (refusal(True, CallState.RING) or "")
    assert "hasAudio: false" in (refusal(False, CallState.ESTABLISHED) or "")


def test_queue_hands_requests_over_once_and_skips_cancelled_ones() -> None:
    queue = DtmfQueue()
    first, second = queue.submit("1"), queue.submit("2")
    assert second.cancel()
    taken = queue.take()
    assert [digits for digits, _ in taken] == ["1", "2"]
    assert queue.take() == []
    assert taken[0][1] is first and taken[1][1].cancelled()


def test_refuse_all_settles_waiting_requests() -> None:
    queue = DtmfQueue()
    waiting = queue.submit("9")
    queue.refuse_all("the call has ended")
    with pytest.raises(DtmfRefusedError, match="ended"):
        waiting.result(0)
