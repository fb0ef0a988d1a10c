"""The status model: phases derived from call and stream states, stamps, the final outcome."""

from __future__ import annotations

import pytest

from siprtmp_bridge.status import (
    finished,
    initial_status,
    terminating,
    to_document,
    with_call,
    with_stream,
)
from siprtmp_contract.outcome import (
    ExitCode,
    Outcome,
    Reason,
    outcome_for_sip_failure,
    registration_failure,
)
from siprtmp_contract.states import (
    CallState,
    Phase,
    StreamState,
)


def test_phase_follows_call_and_stream() -> None:
    status = initial_status("c1", "rtmp://h/live/***")
    assert status.phase is Phase.PENDING
    status = with_call(status, state=CallState.RING)
    assert status.phase is Phase.CONNECTING
    status = with_call(status, state=CallState.ESTABLISHED)
    assert status.phase is Phase.CONNECTING  # answered, stream not up yet
    status = with_stream(status, state=StreamState.PUBLISHING)
    assert status.phase is Phase.STREAMING
    assert status.ready
    status = with_stream(status, state=StreamState.RECONNECTING)
    assert status.phase is Phase.RECONNECTING
    assert status.stream.reconnects == 1
    status = with_stream(status, state=StreamState.RECONNECTING)
    assert status.stream.reconnects == 1  # one outage, one reconnect
    status = with_stream(status, state=StreamState.PUBLISHING)
    status = with_call(status, state=CallState.HOLD)
    assert status.phase is Phase.STREAMING
    assert terminating(status).phase is Phase.TERMINATING


def test_timestamps_are_stamped_once() -> None:
    status = with_call(initial_status("c", "u"), state=CallState.TRYING)
    started = status.call.started_at
    assert started is not None
    status = with_call(status, state=CallState.ESTABLISHED)
    established = status.call.established_at
    status = with_call(status, state=CallState.HOLD)
    assert status.call.started_at == started
    assert status.call.established_at == established
    assert status.call.ended_at is None


def test_finished_keeps_the_first_outcome() -> None:
    status = with_call(initial_status("c", "u"), state=CallState.ESTABLISHED)
    failure = Outcome(ExitCode.RTP_INACTIVITY, Reason.RTP_INACTIVITY, "no RTP")
    status = finished(status, failure)
    status = finished(status, Outcome(ExitCode.OK, Reason.REMOTE_HANGUP, "bye"))
    document = to_document(status)
    assert document["phase"] == "Failed"
    assert document["reason"] == "RtpInactivity"
    assert document["exitCode"] == 6
    assert document["call"]["state"] == "FAILED"
    assert document["call"]["endedAt"] is not None
    assert document["stream"]["state"] == "UNPUBLISHED"


def test_success_finishes_the_call() -> None:
    status = finished(initial_status("c", "u"), Outcome(ExitCode.OK, Reason.STOPPED, "signal"))
    assert to_document(status)["call"]["state"] == "FINISH"
    assert status.phase is Phase.SUCCEEDED


@pytest.mark.parametrize(
    ("code", "got_response", "exit_code", "reason"),
    [
        (486, True, ExitCode.REJECTED, "Busy"),
        (600, True, ExitCode.REJECTED, "Busy"),
        (404, True, ExitCode.REJECTED, "NotFound"),
        (603, True, ExitCode.REJECTED, "Declined"),
        (500, True, ExitCode.REJECTED, "Rejected"),
        (401, True, ExitCode.AUTH_FAILED, "AuthenticationFailed"),
        (407, True, ExitCode.AUTH_FAILED, "AuthenticationFailed"),
        (403, True, ExitCode.AUTH_FAILED, "AuthenticationFailed"),
        (503, False, ExitCode.UNREACHABLE, "Unreachable"),
        (408, False, ExitCode.UNREACHABLE, "Unreachable"),
        (503, True, ExitCode.REJECTED, "Rejected"),  # a real 503 from the far end
    ],
)
def test_sip_failures_map_to_classes(
    code: int, got_response: bool, exit_code: ExitCode, reason: str
) -> None:
    outcome = outcome_for_sip_failure(code, "phrase", got_response=got_response)
    assert (outcome.exit_code, outcome.reason) == (exit_code, reason)
    assert str(code) in outcome.message


def test_registration_failures() -> None:
    assert registration_failure(401, "Unauthorized").exit_code is ExitCode.AUTH_FAILED
    assert registration_failure(408, "Timeout").exit_code is ExitCode.UNREACHABLE
    assert registration_failure(500, "Error").reason == "RegistrationFailed"
