"""When a live call must end, and why: every limit as one pure decision.

The runner gathers the facts each tick (``CallClock``) and ends the call with the first outcome
this returns; keeping the rules here makes their order and wording testable without pjsua.
"""

from __future__ import annotations

from dataclasses import dataclass

from siprtmp_contract.outcome import (
    ExitCode,
    Outcome,
    Reason,
)
from siprtmp_contract.spec import Timeouts


@dataclass(frozen=True)
class CallClock:
    """Monotonic times (seconds) and flags the limits depend on."""

    now: float
    placed_at: float
    answered_at: float | None
    last_rtp_at: float
    remote_sending: bool
    got_response: bool
    stop_requested: bool
    rtmp_failure: str | None  # set once the publisher gave up
    pipeline_error: str | None
    worker_failure: str | None = None  # a media thread died (supervision.Supervisor)
    on_hold: bool = False  # call.state is HOLD: the far end may send nothing


def limit_reached(clock: CallClock, timeouts: Timeouts, callee: str, stream: str) -> Outcome | None:
    """The outcome that ends the call now, or None; earlier rules win."""
    if clock.stop_requested:
        return Outcome(ExitCode.OK, Reason.STOPPED, "stopped by signal: hung up")
    if clock.worker_failure is not None:  # no media flows any more: nothing else applies
        return Outcome(ExitCode.INTERNAL, Reason.INTERNAL_ERROR, clock.worker_failure)
    setup = timeouts.call_setup_seconds
    if clock.answered_at is None and clock.now - clock.placed_at > setup:
        if clock.got_response:
            return Outcome(ExitCode.NO_ANSWER, Reason.NO_ANSWER, f"no answer within {setup:g} s")
        return Outcome(
            ExitCode.UNREACHABLE,
            Reason.UNREACHABLE,
            f"no response from {callee} within {setup:g} s",
        )
    silence = silence_limit(clock, timeouts)
    if silence is not None and clock.now - clock.last_rtp_at > silence[0]:
        seconds, why = silence
        held = " while on hold" if why is Reason.HOLD_TIMEOUT else ""
        return Outcome(ExitCode.RTP_INACTIVITY, why, f"no RTP received for {seconds:g} s{held}")
    longest = timeouts.max_duration_seconds
    answered_for = None if clock.answered_at is None else clock.now - clock.answered_at
    if longest is not None and answered_for is not None and answered_for > longest:
        return Outcome(
            ExitCode.OK, Reason.MAX_DURATION, f"maximum duration of {longest:g} s reached"
        )
    if clock.rtmp_failure is not None:
        return Outcome(
            ExitCode.RTMP_FAILED, Reason.RTMP_FAILED, f"lost {stream}: {clock.rtmp_failure}"
        )
    if clock.pipeline_error is not None:
        return Outcome(ExitCode.INTERNAL, Reason.INTERNAL_ERROR, clock.pipeline_error)
    return None


def silence_limit(clock: CallClock, timeouts: Timeouts) -> tuple[float, Reason] | None:
    """How long the far end may send no RTP now, and the reason the call ends with after that;
    None while no RTP is expected at all (before the answer, or receiving nothing by our own
    choice).

    On hold the far end may rightly send nothing (baresip does), so the RTP inactivity timeout
    gives way to the longer hold limit: a far end that vanished while holding is still noticed.
    """
    if clock.answered_at is None:
        return None
    if clock.on_hold:
        return timeouts.hold_seconds, Reason.HOLD_TIMEOUT
    if clock.remote_sending:
        return timeouts.rtp_inactivity_seconds, Reason.RTP_INACTIVITY
    return None
