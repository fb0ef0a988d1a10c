"""One bridge run: the loop around the call's state machine (``lifecycle``).

The runner is the only code that touches both sides. It polls pjsua and the media chain, feeds
what it sees to ``lifecycle.step`` and carries out the actions that come back: every decision
about the call (when and why it ends, what the status shows, when keys may go out) is made
there. All pjsua calls and callbacks happen on this thread (``SipEndpoint``).
"""

from __future__ import annotations

import logging
import random
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pjsua2 as pj

from siprtmp_bridge.chain import MediaChain
from siprtmp_bridge.counters import MediaCounters
from siprtmp_bridge.destinations import DestinationControl
from siprtmp_bridge.dtmf import (
    RECEIVED_KEYS_SHOWN,
    DtmfQueue,
    DtmfRefusedError,
    DueKey,
    KeyPlayer,
    refuse,
)
from siprtmp_bridge.lifecycle import (
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
from siprtmp_bridge.media.silence import write_silence_wav
from siprtmp_bridge.reporter import StatusReporter
from siprtmp_bridge.rtp.keepalive import RtpKeepAlive, RtpPortClaim
from siprtmp_bridge.sip.call import BridgeAccount, BridgeCall, account_config
from siprtmp_bridge.sip.endpoint import SipEndpoint
from siprtmp_bridge.sip.events import SipEvent
from siprtmp_bridge.status import (
    BridgeStatus,
    finished,
    now_iso,
    terminating,
    with_call,
    with_destinations,
    with_dtmf_received,
    with_stream,
    with_video,
)
from siprtmp_bridge.supervision import Supervisor
from siprtmp_bridge.video.keyframes import PICTURE_FAST_UPDATE, PICTURE_FAST_UPDATE_TYPE
from siprtmp_contract.outcome import Outcome
from siprtmp_contract.spec import BridgeSpec
from siprtmp_contract.states import StreamState

# pjsua returns from a poll as soon as a SIP message or timer is due, so this bounds only how
# late the runner notices a stop request or a limit: each wake-up costs CPU, so poll rarely.
POLL_MILLISECONDS = 250
#: Before anything is dialled the runner waits on the publisher instead, this long at a time.
CONNECT_POLL_SECONDS = 0.1
STATS_INTERVAL_SECONDS = 0.5
HANGUP_WAIT_SECONDS = 2.0

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOptions:
    """Process-level settings that are not part of a call's spec."""

    sip_log_level: int = 1
    # The conference bridge's rate: 16 kHz keeps G.722 and wideband speex at full quality and
    # halves the resampling work against running it at the output rate.
    clock_rate: int = 16000
    workdir: Path | None = None


class BridgeRunner:
    def __init__(
        self,
        spec: BridgeSpec,
        reporter: StatusReporter,
        counters: MediaCounters,
        stop_requested: threading.Event,
        options: RunOptions,
        dtmf: DtmfQueue | None = None,
        supervisor: Supervisor | None = None,
        destinations: DestinationControl | None = None,
    ) -> None:
        self.spec = spec
        self.destinations = destinations  # a live call's changes (POST /destinations)
        self.supervisor = supervisor or Supervisor()
        self.dtmf = dtmf
        self.keys = KeyPlayer()  # the spec's dtmfAfterAnswer and requests, played in turn
        self.reporter = reporter
        self.counters = counters
        self.stop_requested = stop_requested
        self.options = options
        self.life: CallLife  # begins with the run
        self.chain: MediaChain  # made by the run, in its working directory
        self.events: list[SipEvent] = []  # from pjsua's callbacks, fed after each poll
        self.endpoint: SipEndpoint | None = None
        self.account: BridgeAccount | None = None
        self.rtp_claim: RtpPortClaim | None = None  # held from the account until the INVITE
        self.account_rtp_port: int | None = None  # the account's first RTP port, if claimed
        self.call: BridgeCall | None = None
        self.recorder: Any = None
        self.silence_player: Any = None
        self.keepalive: RtpKeepAlive | None = None
        self.workdir = Path()
        self.fifo_path = Path()
        self.next_stats_at = 0.0

    def run(self) -> Outcome:
        self.workdir = Path(tempfile.mkdtemp(prefix="siprtmp-", dir=self.options.workdir))
        self.fifo_path = self.workdir / "call-audio.wav"
        try:
            outcome = self._run()
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)
            if self.dtmf is not None:
                self.dtmf.refuse_all("the call has ended")
            self.keys.refuse_all("the call has ended")
        self.reporter.update(lambda status: finished(status, outcome))
        return outcome

    def _run(self) -> Outcome:
        self.chain = MediaChain(
            self.spec,
            self.workdir,
            self.fifo_path,
            self.options.clock_rate,
            self._on_stream_state,
            self._on_first_audio,
            self.supervisor,
        )
        self.life = begin(self.spec, time.monotonic())
        self.chain.connect()
        if self.destinations is not None:
            self.destinations.attach(self.chain.fanout)
        try:
            self._drive()
        except pj.Error as error:
            self._feed(Crashed(f"pjsua: {error.info()}"))
        except OSError as error:  # no RTP port pair free in the window
            self._feed(Crashed(str(error)))
        finally:
            self._tear_down()
        assert self.life.outcome is not None
        return self.life.outcome

    # -- the loop ----------------------------------------------------------------------------

    def _drive(self) -> None:
        while self.life.stage is not Stage.ENDED:
            self._wait()
            now = time.monotonic()
            if self.call is not None:
                self._tend_call(now)
            for event in self._observed():
                self._feed(event, now)
            self._feed(Tick(), now)
            self._take_dtmf_requests()
            self._play_keys()

    def _wait(self) -> None:
        """Until pjsua has something (or a key is due); before there is an endpoint, on the
        publisher's first connection."""
        if self.endpoint is None:
            self.chain.fanout.wait_connected(CONNECT_POLL_SECONDS)
            return
        self.endpoint.poll(self._poll_milliseconds())
        while self.events:
            self._feed(self.endpoint.explained(self.events.pop(0)))

    def _observed(self) -> list[Event]:
        """What the media side and the signals say that the call has not been told, in the
        order the limits rank them (``limits.limit_reached``)."""
        life, publisher, pipeline = self.life, self.chain.fanout, self.chain.pipeline
        found: list[Event] = []
        if self.stop_requested.is_set() and not life.stop_requested:
            found.append(StopRequested())
        failure = self.supervisor.failure
        if failure is not None and life.worker_failure is None:
            found.append(WorkerDied(failure))
        if publisher.state is StreamState.FAILED and not life.stream_failed:
            found.append(StreamFailed(publisher.failure))
        if pipeline.error is not None and life.pipeline_error is None:
            found.append(PipelineFailed(pipeline.error))
        if life.stage is Stage.CONNECTING and publisher.state is StreamState.PUBLISHING:
            found.append(StreamConnected())
        return found

    def _feed(self, event: Event, now: float | None = None) -> None:
        self.life, actions = step(self.life, event, time.monotonic() if now is None else now)
        for action in actions:
            self._carry_out(action)

    def _carry_out(self, action: Action) -> None:
        match action:
            case StartMedia():
                self.chain.start()
                if (shown := self.chain.video_status()) is not None:
                    self.reporter.update(partial(with_video, video=shown))
            case Register():
                self._open_account()
            case Dial(delayed_offer):
                self._open_account()
                self._place_call(delayed_offer)
            case Redial(status_code, reason):
                log.info(
                    "delayed offer refused (%s %s); calling again with an audio offer",
                    status_code,
                    reason,
                )
                if self.chain.video is not None:
                    self.chain.video.fell_back(status_code, reason)
                self._place_call(delayed_offer=False)
            case RedialWithSrtp(status_code, reason):
                log.info(
                    "RTP/AVP offer refused (%s %s); calling again offering RTP/SAVP",
                    status_code,
                    reason,
                )
                assert self.account is not None and self.endpoint is not None
                config = account_config(
                    self.spec,
                    self.account_rtp_port,
                    self.endpoint.relay_route,
                    srtp_offered=True,
                )
                self.account.modify(config)
                self._place_call(delayed_offer=False)
            case ReInviteForVideo():
                self._reinvite_for_video()
            case ShowCall(changes):
                self.reporter.update(lambda s: with_call(s, **changes))
            case ShowKeyReceived(key):
                self.reporter.update(
                    partial(with_dtmf_received, key=key, shown=RECEIVED_KEYS_SHOWN)
                )
            case ShowTerminating():
                self.reporter.update(terminating)
            case HangUp():
                self._hang_up()
            case KeepPathOpen(rtp_path):
                self._keep_media_path_open(rtp_path)
            case QueueKeys(digits, method, start_at, future):
                self.keys.add(digits, method, start_at, future)
            case RefuseKeys(future, why):
                refuse(future, why)
            case SendKey(due):
                self._send_key(due)
            case DropKey(due, why):
                self._key_not_sent(due, why)

    def _tend_call(self, now: float) -> None:
        """What runs beside the call on every round: keep-alives, video, live counters."""
        if self.keepalive is not None:
            self.keepalive.tick(now)
        if self.chain.video is not None:
            self.chain.video.tick(now, self.life.answered)
            buffered = self.call.audio_buffer_ms() if self.call is not None else None
            if buffered is not None:
                self.chain.video.audio_buffered(now, buffered / 1000)
        if now >= self.next_stats_at:
            self.next_stats_at = now + STATS_INTERVAL_SECONDS
            self._refresh_counters(now)

    def _poll_milliseconds(self) -> int:
        """As long as pjsua may wait for a message, but no later than the next key is due (a
        key late by a poll would stretch the pauses of a PIN)."""
        due = self.keys.next_at()
        if due is None:
            return POLL_MILLISECONDS
        return max(0, min(POLL_MILLISECONDS, int((due - time.monotonic()) * 1000) + 1))

    # -- SIP ---------------------------------------------------------------------------------

    def _open_account(self) -> None:
        """The endpoint and the account, once (the account registers when the spec asks)."""
        if self.endpoint is None:
            self.endpoint = SipEndpoint(
                self.spec, self.options.clock_rate, self.options.sip_log_level
            )
        if self.account is not None:
            return
        nat = self.spec.nat
        if nat.keep_alive_seconds > 0:
            self.rtp_claim = RtpPortClaim(nat.bind_address, nat.rtp_port_min, nat.rtp_port_max)
        port = self.rtp_claim.port if self.rtp_claim is not None else None
        self.account_rtp_port = port
        self.account = BridgeAccount(self.events.append)
        self.account.create(account_config(self.spec, port, self.endpoint.relay_route))

    def _place_call(self, delayed_offer: bool) -> None:
        video = self.chain.video
        assert self.account is not None
        self.call = BridgeCall(
            self.account,
            self.events.append,
            self._attach_audio,
            video.rewrite_sdp if video is not None else None,
        )
        if video is not None:
            video.send_info = partial(
                self.call.send_info, PICTURE_FAST_UPDATE_TYPE, PICTURE_FAST_UPDATE
            )
        try:
            self.call.makeCall(self.spec.callee, self._call_parameters(delayed_offer))
        finally:
            self._release_rtp_claim()  # pjsua has bound the pair to make its offer

    def _release_rtp_claim(self) -> None:
        if self.rtp_claim is not None:
            self.rtp_claim.release()
            self.rtp_claim = None

    def _call_parameters(self, delayed_offer: bool = False) -> Any:
        parameters = pj.CallOpParam(True)
        setting = parameters.opt
        setting.audioCount = 1
        setting.videoCount = 0
        # The seed's hasAudio: true → sendrecv (we send silence), false → recvonly.
        direction = (
            pj.PJMEDIA_DIR_ENCODING_DECODING if self.spec.has_audio else pj.PJMEDIA_DIR_DECODING
        )
        setting.mediaDir = pj.IntVector([direction])
        setting.flag |= pj.PJSUA_CALL_SET_MEDIA_DIR
        if delayed_offer:
            # No SDP: the far end offers audio and video in its answer (video/).
            setting.flag |= pj.PJSUA_CALL_NO_SDP_OFFER
        return parameters

    def _reinvite_for_video(self) -> None:
        assert self.call is not None
        try:
            self.call.reinvite(self._call_parameters(delayed_offer=True))
        except pj.Error as error:
            log.warning("re-INVITE for video: %s", error.info())

    def _hang_up(self) -> None:
        if self.call is None:
            return
        try:
            if self.call.isActive():
                self.call.hangup(pj.CallOpParam(True))
        except pj.Error:
            pass

    def _tear_down(self) -> None:
        """Hang up, then free pjsua's media, the media chain (in its order) and pjsua itself."""
        self._hang_up_and_wait()
        self._release_media()
        if self.destinations is not None:
            self.destinations.detach()
        video = self.chain.stop()
        if video is not None:
            self.reporter.update(partial(with_video, video=video))
        destinations = self.chain.fanout.snapshot(time.monotonic())
        self.reporter.update(partial(with_destinations, destinations=destinations))
        self.counters.frames_encoded = self.chain.encoder.frames_encoded
        self._release_rtp_claim()
        self.call = None
        self.account = None
        if self.endpoint is not None:
            self.endpoint.destroy()

    def _hang_up_and_wait(self) -> None:
        """BYE (or CANCEL) and wait briefly for the far end, so SIGTERM really ends the call."""
        self._hang_up()
        deadline = time.monotonic() + HANGUP_WAIT_SECONDS
        while (
            self.endpoint is not None
            and self.call is not None
            and self.call.isActive()
            and time.monotonic() < deadline
        ):
            self.endpoint.poll(POLL_MILLISECONDS)
        self.events.clear()

    # -- DTMF --------------------------------------------------------------------------------

    def _take_dtmf_requests(self) -> None:
        if self.dtmf is None:
            return
        for request in self.dtmf.take():
            if not request.future.cancelled():  # else the HTTP request gave up waiting
                self._feed(KeysRequested(request))

    def _play_keys(self) -> None:
        """Offer each key that is due; a request is settled by its first key."""
        while (due := self.keys.pop_due(time.monotonic())) is not None:
            if due.future is not None and not due.future.set_running_or_notify_cancel():
                self.keys.abandon(due)  # its caller gave up waiting: not sent late
                continue
            self._feed(KeyDue(due))

    def _send_key(self, due: DueKey) -> None:
        assert self.call is not None
        try:
            self.call.send_key(due.key, due.method)
        except pj.Error as error:  # e.g. no telephone-event in the SDP
            self._key_not_sent(due, f"pjsua: {error.info()}")
            return
        if due.future is not None:
            due.future.set_result(None)

    def _key_not_sent(self, due: DueKey, why: str) -> None:
        log.warning("DTMF %s not sent: %s", due.method, why)
        self.keys.abandon(due)
        if due.future is not None:
            due.future.set_exception(DtmfRefusedError(why))

    # -- media -------------------------------------------------------------------------------

    def _refresh_counters(self, now: float) -> None:
        """Copy live counters into metrics and status, and tell the call what RTP arrived."""
        pipeline, publisher, video = self.chain.pipeline, self.chain.fanout, self.chain.video
        self.counters.frames_encoded = pipeline.encoder.frames_encoded
        self.counters.silence_seconds = pipeline.silence_samples / pipeline.clock_rate
        if video is not None and self.life.answered:
            video.call_media_without_video()
        snapshot = self.chain.video_status()

        destinations = publisher.snapshot(now)

        def refreshed(status: BridgeStatus) -> BridgeStatus:
            status = with_stream(
                status,
                bytes_sent=publisher.bytes_sent,
                dropped_packets=publisher.packets_dropped,
                degraded=publisher.degraded(now),
            )
            status = with_destinations(status, destinations)
            return status if snapshot is None else with_video(status, snapshot)

        self.reporter.update(refreshed)  # one status line for both, not one each
        if self.call is None or not self.life.answered:
            return
        packets, lost, jitter = self.call.rtp_packets_received()
        self._feed(RtpCounted(packets), now)
        self.counters.rtp_packets = packets
        self.counters.rtp_lost = lost
        self.counters.rtp_jitter_us = jitter

    def _attach_audio(self, call_audio: Any) -> None:
        """Connect the call's audio to the recorder (and our silence to the call, if sending).

        pjsua sends no RTP on a sendrecv stream that nothing feeds, and some far ends hang up on
        a silent path (the seed's RTP inactivity timers), so hasAudio: true plays real silence.
        """
        if self.recorder is None:
            self.recorder = pj.AudioMediaRecorder()
            self.recorder.createRecorder(str(self.fifo_path))
        call_audio.startTransmit(self.recorder)
        if self.spec.has_audio:
            if self.silence_player is None:
                self.silence_player = pj.AudioMediaPlayer()
                self.silence_player.createPlayer(str(write_silence_wav(self.workdir)), 0)
            self.silence_player.startTransmit(call_audio)

    def _keep_media_path_open(self, rtp_path: tuple[int, str] | None) -> None:
        """Send NAT keep-alives from our RTP port while we send no RTP of our own."""
        if self.keepalive is not None:
            self.keepalive.close()
            self.keepalive = None
        if rtp_path is None:
            return
        port, remote = rtp_path
        nat = self.spec.nat
        try:
            self.keepalive = RtpKeepAlive(
                nat.bind_address, port, remote, nat.keep_alive_seconds, ssrc=random.getrandbits(32)
            )
        except OSError as error:
            log.warning("no RTP keep-alive: %s", error)

    def _release_media(self) -> None:
        """Drop pjsua media objects before libDestroy(); closing the recorder ends the FIFO."""
        self.recorder = None
        self.silence_player = None
        if self.keepalive is not None:
            self.keepalive.close()
            self.keepalive = None

    def _on_first_audio(self) -> None:
        stamp = now_iso()
        self.reporter.update(partial(with_stream, audio_started_at=stamp))

    def _on_stream_state(self, state: StreamState, bytes_sent: int) -> None:
        """A destination's state changed (from its publisher's thread): the stream's and the
        destinations' status with it."""
        destinations = self.chain.fanout.snapshot(time.monotonic())
        self.reporter.update(
            lambda s: with_destinations(
                with_stream(s, state=state, bytes_sent=bytes_sent), destinations
            )
        )
