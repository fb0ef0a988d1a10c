"""How a bridge run ends: exit codes per failure class, the reasons a status shows (each with
its exit codes and whether it is worth redialling), and SIP final codes mapped onto them.

Kept pure and in one place so the CLI, the status model, the operator and the docs agree on what
each exit code and reason means (docs/bridge-process.md lists the same table).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum


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
    DIALOG_LOST = 9


class Reason(StrEnum):
    """Every ``status.reason`` the bridge or the operator writes, with the exit codes a bridge
    run ending for it returns and whether the operator redials after it.

    Reasons given only by the operator (or by Kubernetes, copied as they are) have no exit code.
    Of the reasons sharing an exit code, the first declared is the one a bare exit code shows
    (``for_exit_code``: a pod that ended without a termination message).
    """

    _value_: str
    #: The exit codes of a run ending for this reason; the first is its usual one.
    exit_codes: tuple[ExitCode, ...]
    #: A failure worth dialling again (transient or far-end state); the rest fail the same way.
    retryable: bool

    def __new__(
        cls, value: str, exit_codes: tuple[ExitCode, ...] = (), retryable: bool = False
    ) -> Reason:
        member = str.__new__(cls, value)
        member._value_ = value
        member.exit_codes = exit_codes
        member.retryable = retryable
        return member

    # How a bridge run ends: the generic reason of each exit code first.
    COMPLETED = "Completed", (ExitCode.OK,)
    INTERNAL_ERROR = "InternalError", (ExitCode.INTERNAL,), True
    INVALID_SPEC = "InvalidSpec", (ExitCode.INVALID_SPEC,)
    AUTHENTICATION_FAILED = "AuthenticationFailed", (ExitCode.AUTH_FAILED,)
    REJECTED = "Rejected", (ExitCode.REJECTED,)
    NO_ANSWER = "NoAnswer", (ExitCode.NO_ANSWER,), True
    RTP_INACTIVITY = "RtpInactivity", (ExitCode.RTP_INACTIVITY,), True
    #: No RTP for ``holdTimeoutSeconds`` while the far end held the call: it may have vanished.
    HOLD_TIMEOUT = "HoldTimeout", (ExitCode.RTP_INACTIVITY,), True
    RTMP_FAILED = "RtmpFailed", (ExitCode.RTMP_FAILED,), True
    UNREACHABLE = "Unreachable", (ExitCode.UNREACHABLE,), True
    #: The answered call's dialog ended without a BYE from the far end: a session refresh or
    #: another in-dialog request unanswered (408) or unknown to it (481), the session timer
    #: expired, the SIP transport failed. The far end may be back; the call is not done.
    DIALOG_LOST = "DialogLost", (ExitCode.DIALOG_LOST,), True
    STOPPED = "Stopped", (ExitCode.OK,)
    REMOTE_HANGUP = "RemoteHangup", (ExitCode.OK,)
    MAX_DURATION = "MaxDuration", (ExitCode.OK,)
    #: A registrar refusing the credentials, or refusing for another cause.
    REGISTRATION_FAILED = "RegistrationFailed", (ExitCode.AUTH_FAILED, ExitCode.REJECTED)
    NOT_FOUND = "NotFound", (ExitCode.REJECTED,)
    UNAVAILABLE = "Unavailable", (ExitCode.REJECTED,)
    BUSY = "Busy", (ExitCode.REJECTED,), True
    DECLINED = "Declined", (ExitCode.REJECTED,)
    #: ``mediaEncryption: require`` and a far end that will not do SRTP (refused the RTP/SAVP
    #: offer, or answered or offered plain RTP): it will not change on a redial.
    SRTP_REFUSED = "SrtpRefused", (ExitCode.REJECTED,)
    # How the operator ends a call without the bridge saying why.
    POD_FAILED = "PodFailed", (), True
    POD_DELETED = "PodDeleted", (), True
    #: The bridge's /status went unanswered past the operator's deadline (its node lost, the
    #: process frozen): the pod was force-deleted.
    BRIDGE_LOST = "BridgeLost", (), True
    #: The pod did not start within podStartTimeoutSeconds. Redialled when it waited for room
    #: (a port window, a node); not when its image or Secrets are missing (policy.start_heals).
    POD_START_TIMEOUT = "PodStartTimeout", (), True
    DUPLICATE_STREAM = "DuplicateStream"
    NOT_ALLOWED = "NotAllowed"
    HOST_NETWORK_NOT_ALLOWED = "HostNetworkNotAllowed"
    #: A Secret the spec names lacks the opt-in label (``pod.BRIDGE_USABLE_LABEL``) or does not
    #: exist; the label does not appear by itself, so it is not redialled.
    SECRET_NOT_USABLE = "SecretNotUsable"
    # Kubernetes' own, copied from the pod or its container.
    OOM_KILLED = "OOMKilled", (), True
    EVICTED = "Evicted", (), True
    ERROR = "Error", (), True
    # On the way: the operator's steps before and after a call.
    POD_CREATING = "PodCreating"
    REDIALING = "Redialing"
    RETRY_BACKOFF = "RetryBackoff"
    NO_PLACEMENT = "NoPlacement"
    POD_PENDING = "PodPending"
    BRIDGE_STARTING = "BridgeStarting"
    #: A Running pod whose /status has not answered for a while (the conditions say so).
    BRIDGE_UNREACHABLE = "BridgeUnreachable"
    #: The API server refused to create the pod (admission: PodSecurity, a quota).
    POD_REJECTED = "PodRejected"
    STOPPING = "Stopping"
    DELETING = "Deleting"

    @classmethod
    def for_exit_code(cls, code: int) -> Reason | None:
        """The reason a bare exit code stands for; None for a code the bridge never returns."""
        return next((r for r in cls if r.exit_codes and r.exit_codes[0] == code), None)

    @classmethod
    def named(cls, text: str) -> Reason | None:
        """The reason a status spells ``text``; None for one of Kubernetes' others."""
        try:
            return cls(text)
        except ValueError:
            return None


@dataclass(frozen=True)
class Outcome:
    """The end of a run: what the status shows as reason/message and what the process returns."""

    exit_code: ExitCode
    reason: Reason
    message: str

    def __post_init__(self) -> None:
        if self.exit_code not in self.reason.exit_codes:
            raise ValueError(f"{self.reason} does not end a run with exit code {self.exit_code}")

    @property
    def succeeded(self) -> bool:
        return self.exit_code is ExitCode.OK


REASONS_BY_SIP_CODE: dict[int, Reason] = {
    401: Reason.AUTHENTICATION_FAILED,
    403: Reason.AUTHENTICATION_FAILED,
    407: Reason.AUTHENTICATION_FAILED,
    404: Reason.NOT_FOUND,
    480: Reason.UNAVAILABLE,
    486: Reason.BUSY,
    600: Reason.BUSY,
    603: Reason.DECLINED,
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
            ExitCode.UNREACHABLE, Reason.UNREACHABLE, f"SIP peer did not answer ({code} {phrase})"
        )
    reason = REASONS_BY_SIP_CODE.get(code, Reason.REJECTED)
    exit_code = reason.exit_codes[0]
    return Outcome(exit_code, reason, f"call refused by the far end: {code} {phrase}")


def outcome_after_answer(code: int, reason_phrase: str, *, bye_received: bool) -> Outcome:
    """Classify the end of an answered call that the bridge did not hang up itself.

    Only the far end's BYE ends it normally. Otherwise pjsip ended the dialog on its own (RFC
    3261 §12.2.1.2, RFC 4028 §10): an in-dialog request of ours timed out or met a 481, the
    session expired unrefreshed, the transport failed; ``code`` is the cause pjsip recorded.
    """
    if bye_received:
        return Outcome(ExitCode.OK, Reason.REMOTE_HANGUP, "the far end hung up")
    phrase = reason_phrase or "no reason given"
    return Outcome(
        ExitCode.DIALOG_LOST,
        Reason.DIALOG_LOST,
        f"the dialog ended without a BYE from the far end ({code} {phrase})",
    )


def registration_failure(code: int, reason_phrase: str) -> Outcome:
    """A REGISTER that was refused or not answered; auth refusals keep their own class."""
    if code in (401, 403, 407):
        return Outcome(
            ExitCode.AUTH_FAILED,
            Reason.REGISTRATION_FAILED,
            f"registration refused: {code} {reason_phrase}",
        )
    if code in (408, 502, 503, 0):
        return Outcome(
            ExitCode.UNREACHABLE,
            Reason.UNREACHABLE,
            f"registrar did not answer ({code} {reason_phrase})",
        )
    return Outcome(
        ExitCode.REJECTED,
        Reason.REGISTRATION_FAILED,
        f"registration refused: {code} {reason_phrase}",
    )
