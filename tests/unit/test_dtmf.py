"""DTMF keys and pauses, their schedule, when a call may carry them, the hand-over queue and the
player that sends keys at their time (pure parts)."""

from __future__ import annotations

from concurrent.futures import Future

import pytest

from siprtmp_bridge.dtmf import (
    KEY_INTERVAL_SECONDS,
    DtmfQueue,
    DtmfRefusedError,
    KeyPlayer,
    KeyPress,
    refusal,
    schedule,
)
from siprtmp_bridge.status import initial_status, to_document, with_dtmf_received
from siprtmp_contract.dtmf import (
    MAX_DIGITS,
    PAUSE_SECONDS,
    DtmfError,
    DtmfMethod,
    parse_digits,
    parse_method,
)
from siprtmp_contract.states import CallState


def test_digits_are_keypad_keys_upper_cased() -> None:
    assert parse_digits("0123456789*#abcd") == "0123456789*#ABCD"


def test_pauses_keep_their_case() -> None:
    assert parse_digits("W12w3#") == "W12w3#"


@pytest.mark.parametrize("value", [None, "", 5, ["1"], "12 3", "1x", "E", "wW", "1,2"])
def test_bad_digits_name_the_field(value: object) -> None:
    with pytest.raises(DtmfError, match=r"^dtmf: "):
        parse_digits(value)


def test_too_many_digits_pauses_do_not_count() -> None:
    assert parse_digits("1" * MAX_DIGITS + "W") == "1" * MAX_DIGITS + "W"
    with pytest.raises(DtmfError, match="at most"):
        parse_digits("1" * (MAX_DIGITS + 1))


def test_methods_in_any_case_rfc2833_by_default() -> None:
    assert parse_method(None) is DtmfMethod.RFC2833
    assert parse_method("info") is DtmfMethod.INFO
    assert parse_method(" rfc2833 ") is DtmfMethod.RFC2833
    with pytest.raises(DtmfError, match=r"^type: must be one of RFC2833, INFO"):
        parse_method("INBAND")


def test_schedule_spaces_keys_and_adds_pauses() -> None:
    interval, w, big_w = KEY_INTERVAL_SECONDS, PAUSE_SECONDS["w"], PAUSE_SECONDS["W"]
    planned = schedule("W12w3#")
    assert [p.key for p in planned.presses] == ["1", "2", "3", "#"]
    expected = [big_w, big_w + interval, big_w + 2 * interval + w, big_w + 3 * interval + w]
    assert [p.at for p in planned.presses] == pytest.approx(expected)
    assert planned.seconds == pytest.approx(big_w + 4 * interval + w)
    assert schedule("1W").presses == (KeyPress(0.0, "1"),)
    assert schedule("1W").seconds == pytest.approx(interval + big_w)


def test_refusal_needs_an_answered_call_and_rtp_for_rfc2833() -> None:
    rfc2833, info = DtmfMethod.RFC2833, DtmfMethod.INFO
    assert refusal(True, CallState.ESTABLISHED, rfc2833) is None
    assert refusal(True, CallState.HOLD, rfc2833) is None
    assert "RING" in (refusal(True, CallState.RING, info) or "")
    assert "hasAudio: false" in (refusal(False, CallState.ESTABLISHED, rfc2833) or "")
    assert refusal(False, CallState.ESTABLISHED, info) is None  # INFO needs only the dialog


def test_queue_hands_requests_over_once_with_their_method() -> None:
    queue = DtmfQueue()
    first, second = queue.submit("1"), queue.submit("2", DtmfMethod.INFO)
    assert second.cancel()
    taken = queue.take()
    assert [(r.digits, r.method) for r in taken] == [("1", "RFC2833"), ("2", "INFO")]
    assert queue.take() == []
    assert taken[0].future is first and taken[1].future.cancelled()


def test_refuse_all_settles_waiting_requests() -> None:
    queue = DtmfQueue()
    waiting = queue.submit("9")
    queue.refuse_all("the call has ended")
    with pytest.raises(DtmfRefusedError, match="ended"):
        waiting.result(0)


def drain(player: KeyPlayer, until: float) -> list[tuple[float, str, DtmfMethod]]:
    """Step a clock in 10 ms ticks, as the runner's poll loop would, noting what is sent."""
    sent = []
    for tick in range(round(until * 100) + 1):
        now = tick / 100
        while (due := player.pop_due(now)) is not None:
            sent.append((now, due.key, due.method))
    return sent


def test_player_sends_each_key_at_its_time_and_sequences_in_turn() -> None:
    player = KeyPlayer()
    player.add("1w2", DtmfMethod.INFO, now=1.0)
    player.add("9", DtmfMethod.RFC2833, now=1.1)  # waits for the first sequence to be over
    assert player.next_at() == 1.0
    sent = drain(player, 5.0)
    second = 1.0 + KEY_INTERVAL_SECONDS + PAUSE_SECONDS["w"]
    after = second + KEY_INTERVAL_SECONDS
    assert sent == [
        (1.0, "1", DtmfMethod.INFO),
        (pytest.approx(second), "2", DtmfMethod.INFO),
        (pytest.approx(after), "9", DtmfMethod.RFC2833),
    ]
    assert player.next_at() is None


def test_a_request_is_settled_by_its_first_key_and_abandoned_keys_are_not_sent() -> None:
    player = KeyPlayer()
    future: Future[None] = Future()
    player.add("123", DtmfMethod.RFC2833, now=0.0, future=future)
    first = player.pop_due(0.0)
    assert first is not None and first.future is future
    second = player.pop_due(KEY_INTERVAL_SECONDS)
    assert second is not None and second.future is None  # the caller already has its answer
    player.abandon(second)  # pjsua refused "2": "3" must not follow
    assert player.pop_due(10.0) is None


def test_refuse_all_settles_requests_whose_keys_never_went_out() -> None:
    player = KeyPlayer()
    waiting: Future[None] = Future()
    player.add("5", DtmfMethod.INFO, now=3.0, future=waiting)
    player.refuse_all("the call has ended")
    with pytest.raises(DtmfRefusedError, match="ended"):
        waiting.result(0)
    assert player.next_at() is None


def test_keys_received_are_counted_and_the_last_ones_kept() -> None:
    status = initial_status("c", "rtmp://h/live/***")
    assert to_document(status)["call"]["dtmfReceived"] == 0
    for key in "12345":
        status = with_dtmf_received(status, key, shown=3)
    call = to_document(status)["call"]
    assert (call["dtmfReceived"], call["dtmfLastDigits"]) == (5, "345")
