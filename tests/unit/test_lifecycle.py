"""Every path of a bridge run through its state machine, without pjsua: each test feeds the
events a run would see and checks the stage, the outcome and what the runner is told to do."""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import Future
from dataclasses import replace

import pytest

from siprtmp_bridge.dtmf import ANSWER_SETTLE_SECONDS, DtmfRequest, KeyPlayer
from siprtmp_bridge.lifecycle import (
    CONNECT_MARGIN_SECONDS,
    Action,
    CallLife,
    Crashed,
    Dial,
    DropKey,
    Event,
    HangUp,
    KeepPathOpen,
    KeyDue,
    KeysRequested,
    PipelineFailed,
    QueueKeys,
    Redial,
    RedialWithSrtp,
    RefuseKeys,
    Register,
    ReInviteForVideo,
    RtpCounted,
    SendKey,
    ShowCall,
    ShowKeyReceived,
    ShowTerminating,
    Stage,
    StartMedia,
    StopRequested,
    StreamConnected,
    StreamFailed,
    Tick,
    WorkerDied,
    begin,
    step,
)
from siprtmp_bridge.rtmp.connect import CONNECT_TIMEOUT_SECONDS
from siprtmp_bridge.sip.events import (
    CallEnded,
    CallMediaChanged,
    CallProgressed,
    DtmfReceived,
    Registered,
    SrtpNegotiated,
)
from siprtmp_bridge.sip.states import (
    INV_CONFIRMED,
    INV_EARLY,
    InviteProgress,
)
from siprtmp_contract.dtmf import DtmfMethod
from siprtmp_contract.outcome import ExitCode
from siprtmp_contract.spec import BridgeSpec, Connection, NatSettings, Timeouts, VideoSettings
from siprtmp_contract.states import CallState

SPEC = BridgeSpec(
    call_id="c1",
    callee="sip:far@127.0.0.1",
    rtmp_url="rtmp://127.0.0.1/live",
    rtmp_stream="key",
    nat=NatSettings(keep_alive_seconds=0),
    timeouts=Timeouts(
        call_setup_seconds=10,
        rtp_inactivity_seconds=5,
        max_duration_seconds=60,
        rtmp_reconnect_seconds=3,
    ),
)
RINGING = CallProgressed(InviteProgress(INV_EARLY, 180), "Ringing", "id-1", got_response=True)
ANSWER = CallProgressed(InviteProgress(INV_CONFIRMED, 200), "OK", "id-1", got_response=True)
MEDIA = CallMediaChanged(
    bridged=True, remote_sending=True, remote_hold=False, codec="PCMU/8000", rtp_path=(4000, "x")
)
BYE = CallEnded(200, "Normal call clearing", True, was_answered=True, bye_received=True)


def feed(life: CallLife, *timed: tuple[float, Event]) -> tuple[CallLife, list[Action]]:
    """The life after each (time, event) in turn, and every action on the way."""
    actions: list[Action] = []
    for now, event in timed:
        life, done = step(life, event, now)
        actions += done
    return life, actions


def at(now: float, *events: Event) -> Iterable[tuple[float, Event]]:
    return [(now, event) for event in events]


def dialling(spec: BridgeSpec = SPEC) -> CallLife:
    """Published since 0, INVITE out at 1."""
    life, _ = feed(begin(spec, 0.0), (1.0, StreamConnected()))
    assert life.stage is Stage.DIALLING
    return life


def answered(spec: BridgeSpec = SPEC) -> CallLife:
    """Answered at 2, media flowing."""
    life, _ = feed(dialling(spec), *at(2.0, ANSWER, MEDIA))
    assert life.stage is Stage.ANSWERED
    return life


def ending_with(life: CallLife, reason: str, *actions: Action) -> None:
    assert life.stage is Stage.ENDING
    assert life.outcome is not None and life.outcome.reason == reason
    assert HangUp() in actions


# -- before the call ------------------------------------------------------------------------


def test_the_stream_comes_up_first_then_the_call_is_placed_with_pending_shown() -> None:
    life, actions = feed(begin(SPEC, 0.0), (0.5, Tick()), (1.0, StreamConnected()))
    assert actions == [StartMedia(), Dial(delayed_offer=False), ShowCall({"state": "PENDING"})]
    assert (life.stage, life.placed_at) == (Stage.DIALLING, 1.0)


def test_a_call_with_video_goes_out_as_a_delayed_offer() -> None:
    spec = replace(SPEC, video=VideoSettings(mode="passthrough"))
    assert spec.video.enabled
    _, actions = feed(begin(spec, 0.0), (1.0, StreamConnected()))
    assert Dial(delayed_offer=True) in actions


@pytest.mark.parametrize(
    ("event", "reason", "message"),
    [
        (StopRequested(), "Stopped", "stopped before the call was placed"),
        (WorkerDied("rtmp-publisher thread failed"), "InternalError", "rtmp-publisher thread"),
        (StreamFailed("Connection refused"), "RtmpFailed", "/live/***: Connection refused"),
        (StreamFailed(None), "RtmpFailed", "/live/***: no connection"),
    ],
)
def test_the_stream_not_coming_up_ends_the_run_before_anything_is_dialled(
    event: Event, reason: str, message: str
) -> None:
    life, actions = feed(begin(SPEC, 0.0), (0.5, event))
    assert life.stage is Stage.ENDED
    assert actions == []  # no call to hang up
    assert life.outcome is not None
    assert life.outcome.reason == reason
    assert message in life.outcome.message


def test_a_connect_blocked_in_the_kernel_is_given_up_on_the_bridges_own_clock() -> None:
    deadline = SPEC.timeouts.rtmp_reconnect_seconds + CONNECT_MARGIN_SECONDS
    life, _ = feed(begin(SPEC, 0.0), (deadline - 0.01, Tick()))
    assert life.stage is Stage.CONNECTING
    life, _ = feed(life, (deadline, Tick()))
    assert life.outcome is not None
    assert (life.outcome.exit_code, life.outcome.message) == (
        ExitCode.RTMP_FAILED,
        "cannot publish to rtmp://127.0.0.1/live/***: no connection",
    )


def test_the_publishers_last_attempt_past_its_budget_is_waited_for() -> None:
    """An attempt begun just before the budget ends runs its whole bound: the call ends with the
    publisher's own reason (an untrusted certificate), not the bridge's "no connection"."""
    late = SPEC.timeouts.rtmp_reconnect_seconds + CONNECT_TIMEOUT_SECONDS + 0.5
    life, _ = feed(begin(SPEC, 0.0), (late, Tick()))
    assert life.stage is Stage.CONNECTING
    life, _ = feed(life, (late, StreamFailed("certificate of 127.0.0.1:1935 not trusted")))
    assert life.outcome is not None and "not trusted" in life.outcome.message


REGISTERING_SPEC = replace(
    SPEC, connection=Connection(sip_domain="example.org", sip_register_required=True)
)


def test_registration_comes_before_the_invite_and_the_set_up_time_counts_from_it() -> None:
    life, actions = feed(begin(REGISTERING_SPEC, 0.0), (1.0, StreamConnected()))
    assert (life.stage, actions) == (Stage.REGISTERING, [StartMedia(), Register()])
    life, actions = feed(life, (4.0, Registered(True, 200, "OK")))
    assert (life.stage, life.placed_at) == (Stage.DIALLING, 4.0)
    assert Dial(delayed_offer=False) in actions
    life, _ = feed(life, (13.9, Tick()))
    assert life.stage is Stage.DIALLING  # 10 s of set-up from the INVITE, not the REGISTER


@pytest.mark.parametrize(
    ("timed", "exit_code", "reason"),
    [
        ([(2.0, Registered(False, 403, "Forbidden"))], ExitCode.AUTH_FAILED, "RegistrationFailed"),
        ([(11.0, Tick())], ExitCode.UNREACHABLE, "Unreachable"),
        ([(2.0, StopRequested())], ExitCode.OK, "Stopped"),
    ],
)
def test_registration_refused_unanswered_or_stopped_ends_the_run(
    timed: list[tuple[float, Event]], exit_code: ExitCode, reason: str
) -> None:
    life, _ = feed(begin(REGISTERING_SPEC, 0.0), (1.0, StreamConnected()))
    life, actions = feed(life, *timed)
    assert life.stage is Stage.ENDED
    assert actions == []
    assert life.outcome is not None
    assert (life.outcome.exit_code, life.outcome.reason) == (exit_code, reason)


# -- the call: answered, refused, unanswered -------------------------------------------------


def test_an_answered_call_shows_its_states_and_ends_on_the_far_ends_bye() -> None:
    life, actions = feed(dialling(), *at(1.5, RINGING), *at(2.0, ANSWER, MEDIA))
    shown = [a.changes["state"] for a in actions if isinstance(a, ShowCall)]
    assert shown == [CallState.RING, CallState.ESTABLISHED, CallState.ESTABLISHED]
    assert KeepPathOpen(None) in actions  # no keep-alive in the spec
    assert (life.stage, life.answered_at) == (Stage.ANSWERED, 2.0)
    life, actions = feed(life, (30.0, BYE))
    assert life.stage is Stage.ENDED
    assert life.outcome is not None
    assert (life.outcome.reason, life.outcome.exit_code) == ("RemoteHangup", ExitCode.OK)
    assert actions == [
        ShowCall(
            {"state": CallState.FINISH, "sip_status_code": 200, "reason": "Normal call clearing"}
        )
    ]


@pytest.mark.parametrize(
    ("code", "phrase"),
    [
        (408, "No session refresh received."),  # pjsip's own, as the session timer expires
        (408, "Request Timeout"),  # a refresh (re-INVITE, UPDATE) nobody answered
        (481, "Call/Transaction Does Not Exist"),  # the far end forgot the dialog
        (503, "Service Unavailable"),  # the transport failed under the refresh
    ],
)
def test_an_answered_call_whose_dialog_ends_without_a_bye_is_lost_and_retryable(
    code: int, phrase: str
) -> None:
    lost = CallEnded(code, phrase, True, was_answered=True, bye_received=False)
    life, actions = feed(answered(), (100.0, lost))
    assert life.stage is Stage.ENDED
    assert life.outcome is not None
    assert (life.outcome.reason, life.outcome.exit_code) == ("DialogLost", ExitCode.DIALOG_LOST)
    assert life.outcome.reason.retryable and not life.outcome.succeeded
    assert life.outcome.message == (
        f"the dialog ended without a BYE from the far end ({code} {phrase})"
    )
    assert actions == [
        ShowCall({"state": CallState.FINISH, "sip_status_code": code, "reason": phrase})
    ]
    # A BYE from the far end is a normal end whatever cause pjsip recorded.
    bye = replace(lost, bye_received=True)
    life, _ = feed(answered(), (100.0, bye))
    assert life.outcome is not None and life.outcome.reason == "RemoteHangup"


def test_the_bridges_own_hang_up_is_never_taken_for_a_lost_dialog() -> None:
    ending, _ = feed(answered(), (5.0, StopRequested()))
    ours = CallEnded(408, "Request Timeout", True, was_answered=True, bye_received=False)
    ended, _ = feed(ending, (7.0, ours))  # our BYE went unanswered
    assert ended.outcome is not None and ended.outcome.reason == "Stopped"


@pytest.mark.parametrize(
    ("code", "got_response", "reason", "exit_code", "shown"),
    [
        (486, True, "Busy", ExitCode.REJECTED, CallState.BUSY),
        (603, True, "Declined", ExitCode.REJECTED, CallState.FAILED),
        (407, True, "AuthenticationFailed", ExitCode.AUTH_FAILED, CallState.FAILED),
        (408, False, "Unreachable", ExitCode.UNREACHABLE, CallState.FAILED),
    ],
)
def test_a_refused_call_ends_with_the_sip_reason(
    code: int, got_response: bool, reason: str, exit_code: ExitCode, shown: CallState
) -> None:
    life, actions = feed(
        dialling(),
        (2.0, CallEnded(code, "phrase", got_response, was_answered=False, bye_received=False)),
    )
    assert life.stage is Stage.ENDED
    assert life.outcome is not None
    assert (life.outcome.reason, life.outcome.exit_code) == (reason, exit_code)
    assert actions[-1] == ShowCall({"state": shown, "sip_status_code": code, "reason": "phrase"})


def test_no_answer_within_the_set_up_time_cancels_and_tells_no_answer_from_unreachable() -> None:
    life, actions = feed(dialling(), (10.9, Tick()))
    assert (life.stage, actions) == (Stage.DIALLING, [])
    silent, actions = feed(life, (11.1, Tick()))
    ending_with(silent, "Unreachable", *actions)
    ringing, actions = feed(life, (2.0, RINGING), (11.1, Tick()))
    ending_with(ringing, "NoAnswer", *actions)
    # The CANCEL's 487 ends it; the outcome decided first stands.
    ended, _ = feed(ringing, (11.2, CallEnded(487, "Request Terminated", True, False, False)))
    assert ended.stage is Stage.ENDED
    assert ended.outcome is not None
    assert (ended.outcome.reason, ended.outcome.exit_code) == ("NoAnswer", ExitCode.NO_ANSWER)


def test_early_media_shows_ringing_with_media_before_the_answer() -> None:
    life, actions = feed(dialling(), *at(1.5, RINGING, MEDIA))
    assert actions[-1] == ShowCall({"state": CallState.RING_MEDIA, "codec": "PCMU/8000"})
    assert life.stage is Stage.DIALLING


# -- limits of a live call -----------------------------------------------------------------


def test_max_duration_hangs_up_normally() -> None:
    life, actions = feed(answered(), (61.9, RtpCounted(5000)), (61.9, Tick()))
    assert (life.stage, actions) == (Stage.ANSWERED, [])
    life, actions = feed(life, (62.1, RtpCounted(5001)), (62.1, Tick()))
    ending_with(life, "MaxDuration", *actions)
    assert life.outcome is not None and life.outcome.exit_code is ExitCode.OK


def test_rtp_inactivity_counts_from_the_last_packet_that_arrived() -> None:
    life, _ = feed(answered(), (5.0, RtpCounted(100)), (9.0, RtpCounted(100)), (9.9, Tick()))
    assert life.stage is Stage.ANSWERED  # packets came until 5.0
    life, actions = feed(life, (10.1, Tick()))
    ending_with(life, "RtpInactivity", *actions)
    assert life.outcome is not None and life.outcome.exit_code is ExitCode.RTP_INACTIVITY


def test_no_rtp_inactivity_while_the_far_end_holds_the_call() -> None:
    held = replace(MEDIA, remote_sending=False, remote_hold=True)
    life, actions = feed(answered(), (3.0, held), (30.0, Tick()))
    assert life.stage is Stage.ANSWERED
    assert ShowCall({"state": CallState.HOLD, "codec": "PCMU/8000"}) in actions
    # A session refresh while held reports the call confirmed: it stays HOLD.
    life, actions = feed(life, (31.0, ANSWER))
    assert actions == []


def test_no_rtp_inactivity_while_held_with_sendonly_and_silent() -> None:
    """baresip holds with a=sendonly (it still "sends", as SDP reads) and then sends nothing."""
    held = replace(MEDIA, remote_sending=True, remote_hold=True)
    life, actions = feed(answered(), (3.0, held), (30.0, Tick()))
    assert life.stage is Stage.ANSWERED
    assert ShowCall({"state": CallState.HOLD, "codec": "PCMU/8000"}) in actions
    # Resumed: the timer counts again from the resume.
    life, _ = feed(life, (31.0, MEDIA), (31.0 + SPEC.timeouts.rtp_inactivity_seconds - 0.5, Tick()))
    assert life.stage is Stage.ANSWERED
    life, actions = feed(life, (31.0 + SPEC.timeouts.rtp_inactivity_seconds + 0.5, Tick()))
    ending_with(life, "RtpInactivity", *actions)


def test_a_far_end_silent_on_hold_past_the_hold_limit_ends_the_call() -> None:
    spec = replace(SPEC, timeouts=replace(SPEC.timeouts, hold_seconds=20))
    held = replace(MEDIA, remote_sending=True, remote_hold=True)
    life, _ = feed(answered(spec), (3.0, held), (22.5, Tick()))
    assert life.stage is Stage.ANSWERED, life.outcome  # the last packet came at the hold's start
    life, actions = feed(life, (23.5, Tick()))
    ending_with(life, "HoldTimeout", *actions)


def test_a_far_end_that_answers_sendonly_is_established_not_held() -> None:
    sendonly = replace(MEDIA, remote_hold=True)
    _, actions = feed(dialling(), *at(2.0, ANSWER, sendonly))
    assert actions[-1] == ShowCall({"state": CallState.ESTABLISHED, "codec": "PCMU/8000"})


@pytest.mark.parametrize(
    ("fault", "reason", "exit_code", "message"),
    [
        (StreamFailed("Broken pipe"), "RtmpFailed", ExitCode.RTMP_FAILED, "lost rtmp://"),
        (StreamFailed(None), "RtmpFailed", ExitCode.RTMP_FAILED, "/live/***: gave up"),
        (WorkerDied("media-pipeline thread failed"), "InternalError", ExitCode.INTERNAL, "media"),
        (PipelineFailed("recorder writes 8000 Hz"), "InternalError", ExitCode.INTERNAL, "8000"),
    ],
)
def test_a_media_fault_mid_call_hangs_up_with_its_reason(
    fault: Event, reason: str, exit_code: ExitCode, message: str
) -> None:
    life, actions = feed(answered(), (5.0, fault))
    ending_with(life, reason, *actions)
    assert life.outcome is not None
    assert life.outcome.exit_code is exit_code
    assert message in life.outcome.message
    life, _ = feed(life, (5.1, BYE))
    assert life.outcome is not None and life.outcome.reason == reason  # not RemoteHangup


def test_a_stop_signal_hangs_up_and_shows_terminating_before_and_after_the_answer() -> None:
    cancelled = CallEnded(487, "Request Terminated", True, was_answered=False, bye_received=False)
    for before, far_end_ends in ((dialling(), cancelled), (answered(), BYE)):
        life, actions = feed(before, (3.0, StopRequested()))
        assert actions == [ShowTerminating(), HangUp()]
        ending_with(life, "Stopped", *actions)
        assert life.outcome is not None and life.outcome.exit_code is ExitCode.OK
        ended, _ = feed(life, (3.1, far_end_ends))
        assert ended.stage is Stage.ENDED
        assert ended.outcome is not None and ended.outcome.reason == "Stopped"


def test_the_first_reason_to_end_wins_over_faults_and_signals_while_ending() -> None:
    life, actions = feed(answered(), (5.0, StreamFailed("Broken pipe")))
    ending_with(life, "RtmpFailed", *actions)
    life, actions = feed(
        life,
        (5.1, StopRequested()),
        (5.2, WorkerDied("rtmp-publisher thread failed")),
        (99.0, Tick()),
        (99.0, Crashed("pjsua: PJSIP_ESESSIONTERMINATED")),
    )
    assert actions == []  # no second hang-up, no Terminating
    assert life.stage is Stage.ENDED
    assert life.outcome is not None and life.outcome.reason == "RtmpFailed"


def test_a_stop_and_a_worker_failure_together_end_as_stopped_as_the_limits_rank_them() -> None:
    life, _ = feed(answered(), *at(5.0, StopRequested(), WorkerDied("x thread failed")))
    assert life.outcome is not None and life.outcome.reason == "Stopped"


def test_the_set_up_timeout_outranks_an_rtmp_failure_at_the_same_moment() -> None:
    life, _ = feed(dialling(), (2.0, RINGING), (11.5, StreamFailed("Broken pipe")))
    assert life.outcome is not None and life.outcome.reason == "NoAnswer"


def test_a_crash_ends_the_run_at_once_as_an_internal_error() -> None:
    life, actions = feed(answered(), (5.0, Crashed("pjsua: no transport")))
    assert (life.stage, actions) == (Stage.ENDED, [])
    assert life.outcome is not None
    assert (life.outcome.reason, life.outcome.message) == ("InternalError", "pjsua: no transport")


def test_nothing_leaves_the_end() -> None:
    life, _ = feed(answered(), (5.0, BYE))
    after, actions = feed(life, (6.0, ANSWER), (6.0, StopRequested()), (99.0, Tick()))
    assert (after, actions) == (life, [])


# -- video: a refused delayed offer ---------------------------------------------------------


def test_a_refused_delayed_offer_calls_again_with_audio_then_asks_for_video() -> None:
    spec = replace(SPEC, video=VideoSettings(mode="passthrough"))
    refused = CallEnded(488, "Not Acceptable Here", True, was_answered=False, bye_received=False)
    life, actions = feed(dialling(spec), (1.5, refused))
    assert actions == [Redial(488, "Not Acceptable Here")]
    assert (life.stage, life.got_response) == (Stage.DIALLING, False)
    life, actions = feed(life, (2.0, ANSWER))
    assert ReInviteForVideo() in actions
    # Only once: a second refusal ends the call (under allow, once RTP/SAVP was offered too).
    again, _ = feed(dialling(spec), (1.5, refused), (1.8, refused), (1.9, refused))
    assert again.stage is Stage.ENDED
    assert again.outcome is not None and again.outcome.reason == "Rejected"


def test_an_audio_call_refused_with_488_is_not_called_again() -> None:
    spec = replace(SPEC, connection=replace(SPEC.connection, media_encryption="disable"))
    refused = CallEnded(488, "Not Acceptable Here", True, False, False)
    life, _ = feed(dialling(spec), (1.5, refused))
    assert life.stage is Stage.ENDED
    assert life.outcome is not None and life.outcome.reason == "Rejected"


# -- NAT keep-alive -------------------------------------------------------------------------


def test_keep_alives_only_while_the_bridge_sends_no_rtp_of_its_own() -> None:
    spec = replace(SPEC, nat=NatSettings(keep_alive_seconds=15))
    _, actions = feed(dialling(spec), (2.0, MEDIA))
    assert KeepPathOpen((4000, "x")) in actions
    _, actions = feed(dialling(spec), (2.0, replace(MEDIA, local_sending=True)))
    assert KeepPathOpen(None) in actions


# -- DTMF -----------------------------------------------------------------------------------


def request(method: DtmfMethod = DtmfMethod.RFC2833) -> DtmfRequest:
    return DtmfRequest("12#", method, Future())


def test_dtmf_after_answer_is_queued_for_when_the_answer_has_settled() -> None:
    spec = replace(SPEC, dtmf_after_answer="W1234#", dtmf_method=DtmfMethod.INFO)
    _, actions = feed(dialling(spec), (2.0, ANSWER))
    assert QueueKeys("W1234#", DtmfMethod.INFO, 2.0 + ANSWER_SETTLE_SECONDS) in actions


def test_dtmf_requests_are_taken_in_the_call_and_refused_outside_it() -> None:
    asked = request()
    _, actions = feed(answered(), (5.0, KeysRequested(asked)))
    assert actions == [QueueKeys("12#", DtmfMethod.RFC2833, 5.0, asked.future)]
    _, actions = feed(dialling(), (1.5, KeysRequested(asked)))
    assert actions == [RefuseKeys(asked.future, "the call is PENDING, not ESTABLISHED")]
    ending, _ = feed(answered(), (5.0, StopRequested()))
    _, actions = feed(ending, (5.1, KeysRequested(asked)))
    assert actions == [RefuseKeys(asked.future, "the call is ending")]
    receive_only = replace(SPEC, has_audio=False)
    _, actions = feed(answered(receive_only), (5.0, KeysRequested(asked)))
    assert isinstance(actions[0], RefuseKeys) and "receive-only" in actions[0].why
    _, actions = feed(answered(receive_only), (5.0, KeysRequested(request(DtmfMethod.INFO))))
    assert isinstance(actions[0], QueueKeys)


def test_a_key_that_falls_due_is_sent_in_the_call_and_dropped_once_it_is_ending() -> None:
    player = KeyPlayer()
    player.add("1", DtmfMethod.RFC2833, 0.0)
    due = player.pop_due(0.0)
    assert due is not None
    _, actions = feed(answered(), (5.0, KeyDue(due)))
    assert actions == [SendKey(due)]
    ending, _ = feed(answered(), (5.0, StopRequested()))
    for life in (ending, feed(ending, (5.1, BYE))[0]):
        _, actions = feed(life, (5.2, KeyDue(due)))
        assert actions == [DropKey(due, "the call is ending")]


def test_keys_from_the_far_end_are_shown() -> None:
    _, actions = feed(answered(), (5.0, DtmfReceived("5")))
    assert actions == [ShowKeyReceived("5")]


# -- SRTP -----------------------------------------------------------------------------------


def test_the_negotiated_srtp_suite_is_shown() -> None:
    negotiated = SrtpNegotiated("AES_CM_128_HMAC_SHA1_80", "RTP/SAVP")
    _, actions = feed(answered(), (3.0, negotiated))
    assert actions == [
        ShowCall({"srtp_suite": "AES_CM_128_HMAC_SHA1_80", "rtp_profile": "RTP/SAVP"})
    ]


REFUSED = CallEnded(
    488, "Not Acceptable Here", got_response=True, was_answered=False, bye_received=False
)


def test_allow_refused_offers_rtp_savp_once_within_the_same_attempt() -> None:
    """A far end that requires SRTP answers allow's RTP/AVP offer 488: called again offering
    RTP/SAVP, the set-up deadline still counted from the first INVITE; a second refusal ends
    the call as the far end's refusal."""
    life, actions = feed(dialling(), (1.5, REFUSED))
    assert actions == [RedialWithSrtp(488, "Not Acceptable Here")]
    assert (life.stage, life.placed_at, life.got_response) == (Stage.DIALLING, 1.0, False)
    up, actions = feed(life, *at(2.0, ANSWER, MEDIA))
    assert up.stage is Stage.ANSWERED and not any(isinstance(a, RedialWithSrtp) for a in actions)
    again, actions = feed(life, (1.8, REFUSED))
    assert actions == [ShowCall({"state": "FAILED", "sip_status_code": 488,
                                 "reason": "Not Acceptable Here"})]  # fmt: skip
    assert again.outcome is not None and again.outcome.reason == "Rejected"
    early, _ = feed(life, (10.9, Tick()))  # call_setup_seconds=10 from the first INVITE at 1
    late, _ = feed(early, (11.1, Tick()))
    assert (early.stage, late.stage) == (Stage.DIALLING, Stage.ENDING)


def test_allow_is_not_offered_again_after_an_answer_or_for_other_refusals() -> None:
    busy = replace(REFUSED, status_code=486, reason="Busy Here")
    life, actions = feed(dialling(), (1.5, busy))
    assert life.stage is Stage.ENDED and not any(isinstance(a, RedialWithSrtp) for a in actions)
    after_bye, actions = feed(answered(), (5.0, replace(REFUSED, was_answered=True)))
    assert after_bye.stage is Stage.ENDED
    assert not any(isinstance(a, RedialWithSrtp) for a in actions)


def test_a_video_call_falls_back_to_audio_then_offers_rtp_savp() -> None:
    """allow with video: the delayed offer refused, then the audio offer refused as a far end
    requiring SRTP does: RTP/SAVP is offered, and video asked for once the call is up."""
    spec = replace(SPEC, video=VideoSettings(mode="passthrough"))
    life, actions = feed(dialling(spec), (1.5, REFUSED), (1.7, REFUSED))
    assert actions == [
        Redial(488, "Not Acceptable Here"),
        RedialWithSrtp(488, "Not Acceptable Here"),
    ]
    _, actions = feed(life, (2.0, ANSWER))
    assert ReInviteForVideo() in actions


def test_require_refused_by_the_far_end_ends_srtp_refused_not_rejected() -> None:
    spec = replace(SPEC, connection=replace(SPEC.connection, media_encryption="require"))
    refused = CallEnded(
        488, "Not Acceptable Here", got_response=True, was_answered=False, bye_received=False
    )
    life, _ = feed(dialling(spec), (2.0, refused))
    assert life.outcome is not None and life.outcome.reason == "SrtpRefused"
    # The same answer under "allow", to its RTP/AVP and then its RTP/SAVP offer, is an
    # ordinary refusal.
    life, _ = feed(dialling(), (2.0, refused), (2.5, refused))
    assert life.outcome is not None and life.outcome.reason != "SrtpRefused"
