"""A bridge run's life as one state machine: a stage, the facts it depends on, one transition.

``step(life, event, now)`` takes what happened (a SIP event, a tick of the clock, a media fault,
the stop signal, a DTMF request, a key falling due) and returns the next ``CallLife`` and what
the runner must do, as values (``Action``). Nothing here touches pjsua, a socket or a thread:
the runner polls, feeds events in and carries actions out, so every path of a call is testable
without a peer. The rules themselves stay where they were: limits in ``limits``, outcomes in
``outcome``, pjsip's states in ``sip.states``, DTMF's in ``dtmf``.

Stages, in order; any of them may end the run:

- ``CONNECTING``: the RTMP stream comes up before anything is dialled (a dead RTMP server costs
  the far end no call).
- ``REGISTERING``: the REGISTER is out (``connection.sipRegisterRequired``).
- ``DIALLING``: the INVITE is out; again with an audio offer when the far end refused the
  delayed offer a call with video makes, and again with an RTP/SAVP offer when, under
  ``mediaEncryption: allow``, it refused the RTP/AVP one as a far end requiring SRTP does.
- ``ANSWERED``: the far end answered; the call carries media and keys.
- ``ENDING``: the outcome is decided and the hang-up sent; pjsua reporting the call gone ends it.
- ``ENDED``: the outcome is final.

Invariants: ``outcome`` is set in ENDING and ENDED only, and never replaced once set (the first
reason to end wins); ENDED is final (no event leaves it).
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from enum import Enum

from siprtmp_bridge.dtmf import ANSWER_SETTLE_SECONDS, DtmfRequest, DueKey, refusal
from siprtmp_bridge.limits import CallClock, limit_reached
from siprtmp_bridge.rtmp.connect import CONNECT_TIMEOUT_SECONDS
from siprtmp_bridge.rtp.srtp import refuses_plain_offer, require_refused
from siprtmp_bridge.sip.events import (
    CallEnded,
    CallMediaChanged,
    CallProgressed,
    DtmfReceived,
    Registered,
    SipEvent,
    SrtpNegotiated,
)
from siprtmp_bridge.sip.states import (
    answered_state,
    call_state_for_progress,
    ended_state,
    state_with_early_media,
)
from siprtmp_bridge.video.negotiation import refuses_delayed_offer
from siprtmp_contract.dtmf import DtmfMethod
from siprtmp_contract.outcome import (
    ExitCode,
    Outcome,
    Reason,
    outcome_after_answer,
    outcome_for_sip_failure,
    registration_failure,
)
from siprtmp_contract.spec import BridgeSpec
from siprtmp_contract.states import CallState

#: The publisher gives up after its reconnect budget, but its last attempt may begin just before
#: the budget ends and run a whole attempt's bound (and the RTMPS relay's 1 s to answer): the
#: wait for the first connection ends this much later on the bridge's own clock, so the
#: publisher's own verdict ("certificate … not trusted") is what the call ends with. A connect
#: blocked in the kernel is still ended by it.
CONNECT_MARGIN_SECONDS = CONNECT_TIMEOUT_SECONDS + 1.0


class Stage(Enum):
    CONNECTING = "Connecting"
    REGISTERING = "Registering"
    DIALLING = "Dialling"
    ANSWERED = "Answered"
    ENDING = "Ending"
    ENDED = "Ended"


# -- events beside the SIP ones (sip/events.py) ---------------------------------------------


@dataclass(frozen=True)
class Tick:
    """The clock: deadlines (connect, registration, set-up, RTP inactivity, maximum duration)
    are checked against ``now``."""


@dataclass(frozen=True)
class StreamConnected:
    """The publisher is PUBLISHING."""


@dataclass(frozen=True)
class StreamFailed:
    """The publisher spent its reconnect budget; ``failure`` is its last error, if any."""

    failure: str | None


@dataclass(frozen=True)
class WorkerDied:
    """A media thread failed (``supervision.Supervisor.failure``): no media flows any more."""

    failure: str


@dataclass(frozen=True)
class PipelineFailed:
    """The audio pipeline cannot go on (the recorder writes a format it cannot take)."""

    error: str


@dataclass(frozen=True)
class StopRequested:
    """SIGTERM, SIGINT: end the call, normally."""


@dataclass(frozen=True)
class Crashed:
    """pjsua raised, or no RTP port was free: the run cannot go on."""

    error: str


@dataclass(frozen=True)
class RtpCounted:
    """The audio stream's received-packet counter, read now."""

    packets: int


@dataclass(frozen=True)
class KeysRequested:
    """A POST /dtmf, taken from its queue."""

    request: DtmfRequest


@dataclass(frozen=True)
class KeyDue:
    """A key whose time has come (``dtmf.KeyPlayer``)."""

    due: DueKey


Event = (
    SipEvent
    | Tick
    | StreamConnected
    | StreamFailed
    | WorkerDied
    | PipelineFailed
    | StopRequested
    | Crashed
    | RtpCounted
    | KeysRequested
    | KeyDue
)

# -- actions ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class StartMedia:
    """Start the stream's clock (the pipeline) and video: the stream is up, the call is next."""


@dataclass(frozen=True)
class Register:
    """Create the SIP account, which sends the REGISTER."""


@dataclass(frozen=True)
class Dial:
    """Send the INVITE; ``delayed_offer``: without SDP, so that the far end offers video."""

    delayed_offer: bool


@dataclass(frozen=True)
class Redial:
    """The far end refused the delayed offer (``status_code`` ``reason``): call again with an
    audio offer, and ask for video by a re-INVITE once the call is up."""

    status_code: int
    reason: str


@dataclass(frozen=True)
class RedialWithSrtp:
    """The far end refused the RTP/AVP offer (``status_code`` ``reason``) that ``allow`` makes:
    call again offering RTP/SAVP, as ``require`` does, once."""

    status_code: int
    reason: str


@dataclass(frozen=True)
class ReInviteForVideo:
    """A re-INVITE without SDP: the call that fell back to an audio offer is up."""


@dataclass(frozen=True)
class ShowCall:
    """Call fields for the status (``status.with_call``); the fields not named keep theirs."""

    changes: Mapping[str, object] = field(hash=False)


@dataclass(frozen=True)
class ShowKeyReceived:
    key: str


@dataclass(frozen=True)
class ShowTerminating:
    """The status says Terminating: the stop signal is being carried out."""


@dataclass(frozen=True)
class HangUp:
    """BYE, or CANCEL before the answer."""


@dataclass(frozen=True)
class KeepPathOpen:
    """NAT keep-alives from the call's RTP port to ``rtp_path`` (local port, far end's
    address); None: stop them (the bridge sends RTP of its own, or there is no path)."""

    rtp_path: tuple[int, str] | None


@dataclass(frozen=True)
class QueueKeys:
    """Play ``digits`` from ``start_at`` on, after the keys already waiting; ``future`` (a
    request's) is settled by the first key."""

    digits: str
    method: DtmfMethod
    start_at: float
    future: Future[None] | None = None


@dataclass(frozen=True)
class RefuseKeys:
    future: Future[None]
    why: str


@dataclass(frozen=True)
class SendKey:
    due: DueKey


@dataclass(frozen=True)
class DropKey:
    """The key cannot go out: its sequence is dropped (half a PIN is no PIN)."""

    due: DueKey
    why: str


Action = (
    StartMedia
    | Register
    | Dial
    | Redial
    | RedialWithSrtp
    | ReInviteForVideo
    | ShowCall
    | ShowKeyReceived
    | ShowTerminating
    | HangUp
    | KeepPathOpen
    | QueueKeys
    | RefuseKeys
    | SendKey
    | DropKey
)
Actions = tuple[Action, ...]

# -- the state --------------------------------------------------------------------------------


@dataclass(frozen=True)
class CallLife:
    """The stage and every fact the next transition may depend on (monotonic seconds)."""

    spec: BridgeSpec = field(repr=False, compare=False)
    stage: Stage = Stage.CONNECTING
    since: float = 0.0  # when CONNECTING or REGISTERING began: their deadlines count from it
    placed_at: float = 0.0  # when the first INVITE went out: set from DIALLING on
    answered_at: float | None = None
    last_rtp_at: float = 0.0
    rtp_packets: int = 0  # the counter as last read; a re-INVITE's new stream restarts it
    remote_sending: bool = False
    # Of the current INVITE: a call placed again after a refused delayed offer starts afresh.
    got_response: bool = False
    held_at_answer: bool | None = None  # the far end's hold at its first media: its normal mode
    shown: CallState = CallState.NEW  # the call state the status shows
    delayed_offer: bool = False
    fell_back: bool = False
    srtp_offered: bool = False  # allow's INVITE offered RTP/SAVP after its RTP/AVP was refused
    stop_requested: bool = False
    worker_failure: str | None = None
    stream_failed: bool = False
    stream_error: str | None = None  # the publisher's last error, when it failed with one
    pipeline_error: str | None = None
    outcome: Outcome | None = None

    @property
    def answered(self) -> bool:
        return self.answered_at is not None


def begin(spec: BridgeSpec, now: float) -> CallLife:
    """A run whose publisher has just started connecting."""
    return CallLife(spec, since=now)


def step(life: CallLife, event: Event, now: float) -> tuple[CallLife, Actions]:
    """The one transition: the life after ``event`` at ``now``, and what to do about it."""
    if life.stage is Stage.ENDED:
        return life, _after_the_end(life, event, now)
    match event:
        case StopRequested():
            return _check(replace(life, stop_requested=True), now)
        case WorkerDied(failure):
            return _check(replace(life, worker_failure=life.worker_failure or failure), now)
        case StreamFailed(last_error):
            last_error = life.stream_error or last_error
            return _check(replace(life, stream_failed=True, stream_error=last_error), now)
        case PipelineFailed(error):
            return _check(replace(life, pipeline_error=life.pipeline_error or error), now)
        case Tick():
            return _check(life, now)
        case Crashed(why):
            return _ended(life, Outcome(ExitCode.INTERNAL, Reason.INTERNAL_ERROR, why)), ()
        case StreamConnected():
            return _connected(life, now)
        case Registered():
            return _registered(life, event, now)
        case CallProgressed():
            return _progressed(life, event, now)
        case CallMediaChanged():
            return _media_changed(life, event, now)
        case CallEnded():
            return _call_ended(life, event)
        case DtmfReceived(key):
            return life, (ShowKeyReceived(key),)
        case SrtpNegotiated(suite, profile):
            return life, (ShowCall({"srtp_suite": suite, "rtp_profile": profile}),)
        case RtpCounted(packets):
            if life.answered and packets > life.rtp_packets:
                return replace(life, rtp_packets=packets, last_rtp_at=now), ()
            return life, ()
        case KeysRequested(request):
            return life, (_take_keys(life, request, now),)
        case KeyDue(due):
            if life.stage is Stage.ANSWERED:
                return life, (SendKey(due),)
            return life, (DropKey(due, "the call is ending"),)
    raise AssertionError(f"unhandled event {event!r}")


def _after_the_end(life: CallLife, event: Event, now: float) -> Actions:
    """What an ended run still answers: keys are refused, everything else is too late."""
    match event:
        case KeysRequested(request):
            return (_take_keys(life, request, now),)
        case KeyDue(due):
            return (DropKey(due, "the call is ending"),)
    return ()


def _ended(life: CallLife, outcome: Outcome) -> CallLife:
    return replace(life, stage=Stage.ENDED, outcome=life.outcome or outcome)


def _check(life: CallLife, now: float) -> tuple[CallLife, Actions]:
    """End the run if a fact or a deadline says so; earlier rules win (``limits``)."""
    if life.stage in (Stage.CONNECTING, Stage.REGISTERING):
        ended = _before_the_call(life, now)
        return (life, ()) if ended is None else (_ended(life, ended), ())
    if life.stage is Stage.ENDING:
        return life, ()
    clock = CallClock(
        now=now,
        placed_at=life.placed_at,
        answered_at=life.answered_at,
        last_rtp_at=life.last_rtp_at,
        remote_sending=life.remote_sending,
        got_response=life.got_response,
        stop_requested=life.stop_requested,
        rtmp_failure=(life.stream_error or "gave up") if life.stream_failed else None,
        pipeline_error=life.pipeline_error,
        worker_failure=life.worker_failure,
        on_hold=life.shown is CallState.HOLD,
    )
    spec = life.spec
    outcome = limit_reached(clock, spec.timeouts, spec.callee, spec.redacted_publish_url)
    if outcome is None:
        return life, ()
    actions: Actions = (ShowTerminating(), HangUp()) if life.stop_requested else (HangUp(),)
    return replace(life, stage=Stage.ENDING, outcome=outcome), actions


def _before_the_call(life: CallLife, now: float) -> Outcome | None:
    """Why a run ends before its INVITE, or None: the order as ``limits`` ranks them."""
    spec = life.spec
    if life.stop_requested:
        where = (
            "before the call was placed" if life.stage is Stage.CONNECTING else "while registering"
        )
        return Outcome(ExitCode.OK, Reason.STOPPED, f"stopped {where}")
    if life.stage is Stage.REGISTERING:
        if now >= life.since + spec.timeouts.call_setup_seconds:
            return registration_failure(408, "no answer from the registrar")
        return None
    if life.worker_failure is not None:
        return Outcome(ExitCode.INTERNAL, Reason.INTERNAL_ERROR, life.worker_failure)
    deadline = life.since + spec.timeouts.rtmp_reconnect_seconds + CONNECT_MARGIN_SECONDS
    if life.stream_failed or now >= deadline:
        failure = life.stream_error or "no connection"
        message = f"cannot publish to {spec.redacted_publish_url}: {failure}"
        return Outcome(ExitCode.RTMP_FAILED, Reason.RTMP_FAILED, message)
    return None


def _connected(life: CallLife, now: float) -> tuple[CallLife, Actions]:
    if life.stage is not Stage.CONNECTING:
        return life, ()
    if life.spec.connection.sip_register_required:
        return replace(life, stage=Stage.REGISTERING, since=now), (StartMedia(), Register())
    dialling, actions = _dial(life, now)
    return dialling, (StartMedia(), *actions)


def _dial(life: CallLife, now: float) -> tuple[CallLife, Actions]:
    delayed = life.spec.video.enabled  # the far end offers video in its answer
    dialling = replace(
        life, stage=Stage.DIALLING, placed_at=now, delayed_offer=delayed, shown=CallState.PENDING
    )
    return dialling, (Dial(delayed), ShowCall({"state": CallState.PENDING}))


def _registered(life: CallLife, event: Registered, now: float) -> tuple[CallLife, Actions]:
    if life.stage is not Stage.REGISTERING:
        return life, ()
    if not event.ok:
        return _ended(life, registration_failure(event.status_code, event.reason)), ()
    return _dial(life, now)


def _progressed(life: CallLife, event: CallProgressed, now: float) -> tuple[CallLife, Actions]:
    life = replace(life, got_response=event.got_response)
    state = call_state_for_progress(event.progress)
    actions: list[Action] = []
    if state is CallState.ESTABLISHED and life.answered_at is None:
        if life.stage is Stage.DIALLING:
            actions += _on_answer(life, now)
            life = replace(life, stage=Stage.ANSWERED)
        life = replace(life, answered_at=now, last_rtp_at=now)
    # A session refresh (re-INVITE) while held reports CONFIRMED: the call is still held.
    if state is not None and not (state is CallState.ESTABLISHED and life.shown is CallState.HOLD):
        changes = {
            "state": state,
            "sip_status_code": event.progress.status_code or None,
            "reason": event.reason or None,
            "sip_call_id": event.sip_call_id,
        }
        actions.append(ShowCall(changes))
        life = replace(life, shown=state)
    return life, tuple(actions)


def _on_answer(life: CallLife, now: float) -> Actions:
    spec = life.spec
    actions: list[Action] = []
    if spec.dtmf_after_answer:
        settled = now + ANSWER_SETTLE_SECONDS
        actions.append(QueueKeys(spec.dtmf_after_answer, spec.dtmf_method, settled))
    if life.fell_back:
        actions.append(ReInviteForVideo())
    return tuple(actions)


def _media_changed(life: CallLife, event: CallMediaChanged, now: float) -> tuple[CallLife, Actions]:
    held_at_answer = life.held_at_answer
    if held_at_answer is None and event.bridged:
        held_at_answer = event.remote_hold
    # A re-INVITE may recreate the stream, restarting its packet counters.
    life = replace(
        life,
        remote_sending=event.remote_sending,
        rtp_packets=0,
        last_rtp_at=now,
        held_at_answer=held_at_answer,
    )
    if life.answered:
        state = answered_state(event.remote_sending, event.remote_hold, bool(held_at_answer))
    else:
        state = state_with_early_media(life.shown)
    keep_alive = life.spec.nat.keep_alive_seconds > 0 and not event.local_sending
    actions = (
        KeepPathOpen(event.rtp_path if keep_alive else None),
        ShowCall({"state": state, "codec": event.codec}),
    )
    return replace(life, shown=state), actions


def _call_ended(life: CallLife, event: CallEnded) -> tuple[CallLife, Actions]:
    if (
        life.stage is Stage.DIALLING
        and life.delayed_offer
        and not life.fell_back
        and not event.was_answered
        and refuses_delayed_offer(event.status_code)
    ):
        again = replace(
            life, delayed_offer=False, fell_back=True, got_response=False, held_at_answer=None
        )
        return again, (Redial(event.status_code, event.reason),)
    if (
        life.stage is Stage.DIALLING
        and life.spec.connection.media_encryption == "allow"
        and not life.delayed_offer
        and not life.srtp_offered
        and not event.was_answered
        and refuses_plain_offer(event.status_code)
    ):
        again = replace(life, srtp_offered=True, got_response=False, held_at_answer=None)
        return again, (RedialWithSrtp(event.status_code, event.reason),)
    state = ended_state(event.status_code, event.was_answered)
    shown = ShowCall(
        {"state": state, "sip_status_code": event.status_code, "reason": event.reason or None}
    )
    refused = (
        require_refused(event.status_code, event.reason, event.remote_sdp)
        if life.spec.connection.media_encryption == "require"
        else None
    )
    if refused is not None:
        outcome = refused
    elif event.was_answered:
        outcome = outcome_after_answer(
            event.status_code, event.reason, bye_received=event.bye_received
        )
    else:
        outcome = outcome_for_sip_failure(
            event.status_code, event.reason, got_response=event.got_response
        )
    return replace(_ended(life, outcome), shown=state), (shown,)


def _take_keys(life: CallLife, request: DtmfRequest, now: float) -> QueueKeys | RefuseKeys:
    """Queue keys the call can carry now, behind those already waiting; refuse the others."""
    why = refusal(life.spec.has_audio, life.shown, request.method)
    if why is None and life.stage is not Stage.ANSWERED:
        why = "the call is ending"
    if why is not None:
        return RefuseKeys(request.future, why)
    return QueueKeys(request.digits, request.method, now, request.future)
