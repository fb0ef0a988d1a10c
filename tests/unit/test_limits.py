"""Each limit ends a call with its own reason; the first rule that applies wins."""

from __future__ import annotations

from dataclasses import replace

from siprtmp_bridge.limits import CallClock, limit_reached
from siprtmp_contract.outcome import ExitCode
from siprtmp_contract.spec import Timeouts

TIMEOUTS = Timeouts(call_setup_seconds=10, rtp_inactivity_seconds=5, max_duration_seconds=60)
RINGING = CallClock(
    now=5,
    placed_at=0,
    answered_at=None,
    last_rtp_at=0,
    remote_sending=False,
    got_response=True,
    stop_requested=False,
    rtmp_failure=None,
    pipeline_error=None,
)
ANSWERED = replace(RINGING, now=20, answered_at=10, last_rtp_at=19, remote_sending=True)


def reason(clock: CallClock, timeouts: Timeouts = TIMEOUTS) -> str | None:
    outcome = limit_reached(clock, timeouts, "sip:a@b", "rtmp://h/live/***")
    return None if outcome is None else outcome.reason


def test_nothing_ends_a_healthy_call() -> None:
    assert reason(RINGING) is None
    assert reason(ANSWERED) is None


def test_set_up_timeout_tells_no_answer_from_unreachable() -> None:
    assert reason(replace(RINGING, now=11)) == "NoAnswer"
    assert reason(replace(RINGING, now=11, got_response=False)) == "Unreachable"


def test_rtp_inactivity_only_while_the_far_end_should_send() -> None:
    silent = replace(ANSWERED, now=25, last_rtp_at=19)
    assert reason(silent) == "RtpInactivity"
    assert reason(replace(silent, remote_sending=False)) is None  # held: a=inactive


def test_max_duration_is_a_normal_end() -> None:
    outcome = limit_reached(replace(ANSWERED, now=71, last_rtp_at=70), TIMEOUTS, "c", "s")
    assert outcome is not None
    assert (outcome.reason, outcome.exit_code) == ("MaxDuration", ExitCode.OK)
    assert (
        reason(
            replace(ANSWERED, now=71, last_rtp_at=70), replace(TIMEOUTS, max_duration_seconds=None)
        )
        is None
    )


def test_rtmp_and_pipeline_failures() -> None:
    assert reason(replace(ANSWERED, rtmp_failure="Connection refused")) == "RtmpFailed"
    assert reason(replace(ANSWERED, pipeline_error="bad WAV")) == "InternalError"


def test_a_stop_request_wins_over_everything() -> None:
    everything = replace(
        ANSWERED, now=500, last_rtp_at=0, stop_requested=True, rtmp_failure="x", pipeline_error="y"
    )
    assert reason(everything) == "Stopped"


def test_on_hold_the_hold_limit_replaces_rtp_inactivity() -> None:
    held = replace(ANSWERED, remote_sending=False, on_hold=True, last_rtp_at=10)
    timeouts = replace(TIMEOUTS, hold_seconds=30)
    assert reason(replace(held, now=39), timeouts) is None  # silent 29 s: past 5 s, within 30 s
    outcome = limit_reached(replace(held, now=41), timeouts, "c", "s")
    assert outcome is not None
    assert (outcome.reason, outcome.exit_code) == ("HoldTimeout", ExitCode.RTP_INACTIVITY)
    assert outcome.message == "no RTP received for 30 s while on hold"
    assert reason(replace(held, now=41, answered_at=None), timeouts) == "NoAnswer"
