"""How a bridge run ends: exit codes per failure class, and SIP final codes mapped onto them.

Kept pure and in one place so the CLI, the status model, the operator and the docs agree on what
each exit code means (docs/bridge-process.md lists the same table).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes, one per failure class; the operator keys its redial policy on them."""

    OK = 0
    INTERNAL = 1
    INVALID_SPEC = 2
    AUTH_FAILED = 3
    REJECTED = 4
    NO_ANSWER = 5
    RTP_INACTIVITY = 6
    RTMP_FAILED = 7
    UNREACHABLE = 8


@dataclass(frozen=True)
class Outcome:
    """The end of a run: what the status shows as reason/message and what the process returns."""

    exit_code: ExitCode
    reason: str
    message: str

    @property
    def succeeded(self) -> bool:
        return self.exit_code is ExitCode.OK


# The reason a status shows for an exit code when nothing more specific is known (the operator
# uses it when a pod ends without a termination message).
REASON_BY_EXIT_CODE: dict[ExitCode, str] = {
    ExitCode.OK: "Completed",
    ExitCode.INTERNAL: "InternalError",
    ExitCode.INVALID_SPEC: "InvalidSpec",
    ExitCode.AUTH_FAILED: "AuthenticationFailed",
    ExitCode.REJECTED: "Rejected",
    ExitCode.NO_ANSWER: "NoAnswer",
    ExitCode.RTP_INACTIVITY: "RtpInactivity",
    ExitCode.RTMP_FAILED: "RtmpFailed",
    ExitCode.UNREACHABLE: "Unreachable",
}

REASONS_BY_SIP_CODE: dict[int, str] = {
    401: "AuthenticationFailed",
    403: "AuthenticationFailed",
    407: "AuthenticationFailed",
    404: "NotFound",
    480: "Unavailable",
    486: "Busy",
    600: "Busy",
    603: "Declined",
}


def outcome_for_sip_failure(code: int, reason_phrase: str, *, got_response: bool) -> Outcome:
    """Classify a call that ended before or without being answered.

    ``got_response`` tells a final response from the far end apart from one pjsip made up
    locally (408/503 when nothing answered or the transport failed): only the latter is
    "unreachable".
    """
    phrase = reason_phrase or "no reason given"
    if not got_response and code in (408, 502, 503, 0):
        return Outcome(
            ExitCode.UNREACHABLE, "Unreachable", f"SIP peer did not answer ({code} {phrase})"
        )
    reason = REASONS_BY_SIP_CODE.get(code, "Rejected")
    exit_code = ExitCode.AUTH_FAILED if reason == "AuthenticationFailed" else ExitCode.REJECTED
    return Outcome(exit_code, reason, f"call refused by the far end: {code} {phrase}")


def registration_failure(code: int, reason_phrase: str) -> Outcome:
    """A REGISTER that was refused or not answered; auth refusals keep their own class."""
    if code in (401, 403, 407):
        return Outcome(
            ExitCode.AUTH_FAILED,
            "RegistrationFailed",
            f"registration refused: {code} {reason_phrase}",
        )
    if code in (408, 502, 503, 0):
        return Outcome(
            ExitCode.UNREACHABLE,
            "Unreachable",
            f"registrar did not answer ({code} {reason_phrase})",
        )
    return Outcome(
        ExitCode.REJECTED, "RegistrationFailed", f"registration refused: {code} {reason_phrase}"
    )
