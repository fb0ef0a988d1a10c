"""One bridge run: connect RTMP, place the call, bridge its audio, end it for one clear reason.

The runner is the only code that touches both sides; it turns SIP events and media state into
status transitions (pure functions in ``status``) and decides when and why the call ends.
"""

from __future__ import annotations

import random
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pjsua2 as pj

from siprtmp_bridge.counters import MediaCounters
from siprtmp_bridge.dtmf import (
    ANSWER_SETTLE_SECONDS,
    RECEIVED_KEYS_SHOWN,
    DtmfQueue,
    DtmfRefusedError,
    KeyPlayer,
    refusal,
    refuse,
)
from siprtmp_bridge.limits import CallClock, limit_reached
from siprtmp_bridge.media.encoder import AacEncoder
from siprtmp_bridge.media.keepalive import RtpKeepAlive, RtpPortClaim
from siprtmp_bridge.media.pipeline import MediaPipeline
from siprtmp_bridge.media.publisher import RtmpPublisher, StreamFormat
from siprtmp_bridge.media.rtmp_route import route_for
from siprtmp_bridge.media.silence import write_silence_wav
from siprtmp_bridge.reporter import StatusReporter
from siprtmp_bridge.sip.call import BridgeAccount, BridgeCall, account_config
from siprtmp_bridge.sip.endpoint import SipEndpoint
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
from siprtmp_bridge.srtp import require_refused
from siprtmp_bridge.status import (
    BridgeStatus,
    finished,
    now_iso,
    terminating,
    with_call,
    with_dtmf_received,
    with_stream,
    with_video,
)
from siprtmp_bridge.supervision import Supervisor
from siprtmp_bridge.video.keyframes import PICTURE_FAST_UPDATE, PICTURE_FAST_UPDATE_TYPE
from siprtmp_bridge.video.session import VideoSession
from siprtmp_bridge.video.slate import Slate
from siprtmp_contract.outcome import (
    ExitCode,
    Outcome,
    Reason,
    outcome_for_sip_failure,
    registration_failure,
)
from siprtmp_contract.spec import BridgeSpec
from siprtmp_contract.states import (
    CallState,
    StreamState,
)

# pjsua returns from a poll as soon as a SIP message or timer is due, so this bounds only how
# late the runner notices a stop request or a limit: each wake-up costs CPU, so poll rarely.
POLL_MILLISECONDS = 250
STATS_INTERVAL_SECONDS = 0.5
HANGUP_WAIT_SECONDS = 2.0
FLUSH_SECONDS = 1.5


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
    ) -> None:
        self.spec = spec
        self.supervisor = supervisor or Supervisor()
        self.dtmf = dtmf
        self.keys = KeyPlayer()  # the spec's dtmfAfterAnswer and requests, played in turn
        self.reporter = reporter
        self.counters = counters
        self.stop_requested = stop_requested
        self.options = options
        self.events: list[SipEvent] = []
        self.pending_outcome: Outcome | None = None
        self.outcome: Outcome | None = None
        self.recorder: Any = None
        self.silence_player: Any = None
        self.call: BridgeCall | None = None
        self.account: BridgeAccount | None = None
        self.remote_sending = False
        self.call_answered_at: float | None = None
        self.last_rtp_packets = 0
        self.last_rtp_at = 0.0
        self.workdir = Path()
        self.fifo_path = Path()
        self.keepalive: RtpKeepAlive | None = None
        self.video: VideoSession | None = None

    def run(self) -> Outcome:
        self.workdir = Path(tempfile.mkdtemp(prefix="siprtmp-", dir=self.options.workdir))
        self.fifo_path = self.workdir / "call-audio.wav"
        try:
            outcome = self._run_media_and_call()
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)
            if self.dtmf is not None:
                self.dtmf.refuse_all("the call has ended")
            self.keys.refuse_all("the call has ended")
        self.reporter.update(lambda status: finished(status, outcome))
        return outcome

    def _run_media_and_call(self) -> Outcome:
        audio = self.spec.audio
        # With a slate, the stream has its video track from the first packet on.
        slate = (
            Slate() if self.spec.video.enabled and self.spec.video.when_absent == "slate" else None
        )
        publisher = RtmpPublisher(
            route_for(self.spec.publish_url, self.spec.rtmp_tls_verify),
            StreamFormat(audio.sample_rate, audio.bitrate),
            self._on_stream_state,
            self.spec.timeouts.rtmp_reconnect_seconds,
            self.supervisor,
            video=self.spec.video.enabled,
            video_template=slate.stream if slate is not None else None,
        )
        encoder = AacEncoder(self.options.clock_rate, audio.sample_rate, audio.bitrate)
        pipeline = MediaPipeline(
            self.fifo_path,
            self.options.clock_rate,
            encoder,
            publisher,
            self._on_first_audio,
            self.supervisor,
        )
        publisher.start()
        if not self._wait_connected(publisher):
            pipeline.stop(FLUSH_SECONDS)
            if self.stop_requested.is_set():
                return Outcome(ExitCode.OK, Reason.STOPPED, "stopped before the call was placed")
            if self.supervisor.failure is not None:
                return Outcome(ExitCode.INTERNAL, Reason.INTERNAL_ERROR, self.supervisor.failure)
            return Outcome(
                ExitCode.RTMP_FAILED,
                Reason.RTMP_FAILED,
                f"cannot publish to {self.spec.redacted_publish_url}: "
                f"{publisher.failure or 'no connection'}",
            )
        pipeline.start()
        if self.spec.video.enabled:
            self.video = VideoSession(
                self.spec,
                self.workdir,
                publisher.submit_video,
                publisher.add_video,
                pipeline.stream_seconds_at,
                slate,
            )
            self.reporter.update(partial(with_video, video=self.video.status))
        endpoint = SipEndpoint(self.spec, self.options.clock_rate, self.options.sip_log_level)
        try:
            self._place_and_bridge(pipeline, publisher)
        except pj.Error as error:
            self.outcome = self.outcome or Outcome(
                ExitCode.INTERNAL, Reason.INTERNAL_ERROR, f"pjsua: {error.info()}"
            )
        except OSError as error:  # no RTP port pair free in the window
            self.outcome = self.outcome or Outcome(
                ExitCode.INTERNAL, Reason.INTERNAL_ERROR, str(error)
            )
        finally:
            self._hang_up_and_wait(endpoint)
            self._release_media()
            if self.video is not None:
                self.video.stop()  # no more video packets: the publisher flushes next
            pipeline.stop(FLUSH_SECONDS)
            if self.video is not None:
                self.reporter.update(partial(with_video, video=self.video.snapshot()))
                self.video.close()
            self.counters.frames_encoded = encoder.frames_encoded
            self.call = None
            self.account = None
            endpoint.destroy()
        assert self.outcome is not None
        return self.outcome

    def _wait_connected(self, publisher: RtmpPublisher) -> bool:
        """Publish before dialling: a dead RTMP server should not cost the far end a call."""
        # The publisher gives up after the budget; a connect blocked in the kernel does not.
        deadline = time.monotonic() + self.spec.timeouts.rtmp_reconnect_seconds + 1
        while time.monotonic() < deadline and not self.stop_requested.is_set():
            if publisher.wait_connected(0.1):
                return True
            if publisher.state is StreamState.FAILED or self.supervisor.failure is not None:
                return False
        return False

    # -- SIP ---------------------------------------------------------------------------------

    def _place_and_bridge(self, pipeline: MediaPipeline, publisher: RtmpPublisher) -> None:
        if not self._dial():
            return
        self.reporter.update(lambda s: with_call(s, state=CallState.PENDING))
        placed_at = time.monotonic()
        next_stats = placed_at
        while self.outcome is None:
            self.endpoint_poll(self._poll_milliseconds())
            now = time.monotonic()
            if self.keepalive is not None:
                self.keepalive.tick(now)
            if self.video is not None:
                self.video.tick(now, self.call_answered_at is not None)
            if now >= next_stats:
                next_stats = now + STATS_INTERVAL_SECONDS
                self._refresh_counters(now, pipeline, publisher)
            if self.pending_outcome is None:
                self._check_limits(now, placed_at, pipeline, publisher)
            self._take_dtmf_requests(now)
            self._play_keys()

    def _dial(self) -> bool:
        """Register if asked, then send the INVITE; False when registration ended the run."""
        nat = self.spec.nat
        claim = None
        if nat.keep_alive_seconds > 0:
            claim = RtpPortClaim(nat.bind_address, nat.rtp_port_min, nat.rtp_port_max)
        try:
            self.account = BridgeAccount(self.events.append)
            self.account.create(account_config(self.spec, claim.port if claim else None))
            if self.spec.connection.sip_register_required and not self._register():
                return False
            self._place_call(delayed_offer=self.video is not None)
            return True
        finally:
            if claim is not None:
                claim.release()  # pjsua has bound the pair to make its offer

    def _take_dtmf_requests(self, now: float) -> None:
        """Queue each request the call can carry now, behind the keys already waiting; refuse
        the others at once."""
        if self.dtmf is None:
            return
        for request in self.dtmf.take():
            if request.future.cancelled():
                continue  # the HTTP request gave up waiting: do not send stale digits
            why = refusal(self.spec.has_audio, self.reporter.status.call.state, request.method)
            if why is None and (self.call is None or self.pending_outcome is not None):
                why = "the call is ending"
            if why is not None:
                refuse(request.future, why)
            else:
                self.keys.add(request.digits, request.method, now, request.future)

    def _play_keys(self) -> None:
        """Send the keys that are due; a request is settled by its first key."""
        while (due := self.keys.pop_due(time.monotonic())) is not None:
            if due.future is not None and not due.future.set_running_or_notify_cancel():
                self.keys.abandon(due)  # its caller gave up waiting: not sent late
                continue
            try:
                if self.call is None or self.pending_outcome is not None:
                    raise DtmfRefusedError("the call is ending")
                self.call.send_key(due.key, due.method)
            except (pj.Error, DtmfRefusedError) as error:  # e.g. no telephone-event in the SDP
                why = f"pjsua: {error.info()}" if isinstance(error, pj.Error) else str(error)
                print(f"sip-rtmp-bridge: DTMF {due.method} not sent: {why}", file=sys.stderr)
                self.keys.abandon(due)
                if due.future is not None:
                    due.future.set_exception(DtmfRefusedError(why))
            else:
                if due.future is not None:
                    due.future.set_result(None)

    def _poll_milliseconds(self) -> int:
        """As long as pjsua may wait for a message, but no later than the next key is due (a
        key late by a poll would stretch the pauses of a PIN)."""
        due = self.keys.next_at()
        if due is None:
            return POLL_MILLISECONDS
        return max(0, min(POLL_MILLISECONDS, int((due - time.monotonic()) * 1000) + 1))

    def _place_call(self, delayed_offer: bool) -> None:
        video = self.video
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
        self.call.makeCall(self.spec.callee, self._call_parameters(delayed_offer))

    def endpoint_poll(self, milliseconds: int) -> None:
        pj.Endpoint.instance().libHandleEvents(milliseconds)
        while self.events:
            self._handle(self.events.pop(0))

    def _register(self) -> bool:
        deadline = time.monotonic() + self.spec.timeouts.call_setup_seconds
        while time.monotonic() < deadline and not self.stop_requested.is_set():
            pj.Endpoint.instance().libHandleEvents(POLL_MILLISECONDS)
            for event in self.events:
                if isinstance(event, Registered):
                    self.events.clear()
                    if event.ok:
                        return True
                    self.outcome = registration_failure(event.status_code, event.reason)
                    return False
        self.outcome = (
            Outcome(ExitCode.OK, Reason.STOPPED, "stopped while registering")
            if self.stop_requested.is_set()
            else registration_failure(408, "no answer from the registrar")
        )
        return False

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

    def _handle(self, event: SipEvent) -> None:
        if isinstance(event, CallProgressed):
            state = call_state_for_progress(event.progress)
            if state is CallState.ESTABLISHED and self.call_answered_at is None:
                self.call_answered_at = time.monotonic()
                self.last_rtp_at = self.call_answered_at
                if self.spec.dtmf_after_answer:
                    settled = self.call_answered_at + ANSWER_SETTLE_SECONDS
                    self.keys.add(self.spec.dtmf_after_answer, self.spec.dtmf_method, settled)
                if self.video is not None and self.video.fell_back:
                    self._reinvite_for_video()
            if state is not None and not (
                state is CallState.ESTABLISHED and self.reporter.status.call.state is CallState.HOLD
            ):
                self.reporter.update(
                    lambda s: with_call(
                        s,
                        state=state,
                        sip_status_code=event.progress.status_code or None,
                        reason=event.reason or None,
                        sip_call_id=event.sip_call_id,
                    )
                )
        elif isinstance(event, CallMediaChanged):
            self.remote_sending = event.remote_sending
            # A re-INVITE may recreate the stream, restarting its packet counters.
            self.last_rtp_packets = 0
            self.last_rtp_at = time.monotonic()
            self._keep_media_path_open(event)
            assert self.call is not None
            if self.call_answered_at is not None:
                held_at_answer = bool(self.call.held_at_answer)
                state = answered_state(event.remote_sending, event.remote_hold, held_at_answer)
                # A far end that put the call on hold (a=sendonly) may send nothing until it
                # resumes (baresip does): no RTP is expected, so none is missed, while on HOLD.
                self.remote_sending = state is CallState.ESTABLISHED
                self.reporter.update(lambda s: with_call(s, state=state, codec=event.codec))
            else:
                self.reporter.update(
                    lambda s: with_call(
                        s, state=state_with_early_media(s.call.state), codec=event.codec
                    )
                )
        elif isinstance(event, CallEnded):
            self._call_ended(event)
        elif isinstance(event, DtmfReceived):
            self.reporter.update(
                partial(with_dtmf_received, key=event.key, shown=RECEIVED_KEYS_SHOWN)
            )
        elif isinstance(event, SrtpNegotiated):
            self.reporter.update(partial(with_call, srtp_suite=event.suite))

    def _call_ended(self, event: CallEnded) -> None:
        if (
            self.video is not None
            and not event.was_answered
            and self.video.fall_back(event.status_code, event.reason)
        ):
            # The far end refused an INVITE without SDP: call again with an audio offer, then
            # let it offer video in a re-INVITE without SDP once the call is up.
            print(
                f"sip-rtmp-bridge: delayed offer refused ({event.status_code} {event.reason}); "
                "calling again with an audio offer",
                file=sys.stderr,
            )
            self._place_call(delayed_offer=False)
            return
        state = ended_state(event.status_code, event.was_answered)
        self.reporter.update(
            lambda s: with_call(
                s, state=state, sip_status_code=event.status_code, reason=event.reason or None
            )
        )
        refused = None
        if self.spec.connection.media_encryption == "require" and self.call is not None:
            refused = require_refused(event.status_code, event.reason, self.call.remote_sdp)
        if self.pending_outcome is not None:
            self.outcome = self.pending_outcome
        elif refused is not None:
            self.outcome = refused
        elif event.was_answered:
            self.outcome = Outcome(ExitCode.OK, Reason.REMOTE_HANGUP, "the far end hung up")
        else:
            self.outcome = outcome_for_sip_failure(
                event.status_code, event.reason, got_response=event.got_response
            )

    def _reinvite_for_video(self) -> None:
        assert self.call is not None
        try:
            self.call.reinvite(self._call_parameters(delayed_offer=True))
        except pj.Error as error:
            print(f"sip-rtmp-bridge: re-INVITE for video: {error.info()}", file=sys.stderr)

    # -- limits ------------------------------------------------------------------------------

    def _check_limits(
        self, now: float, placed_at: float, pipeline: MediaPipeline, publisher: RtmpPublisher
    ) -> None:
        assert self.call is not None
        clock = CallClock(
            now=now,
            placed_at=placed_at,
            answered_at=self.call_answered_at,
            last_rtp_at=self.last_rtp_at,
            remote_sending=self.remote_sending,
            got_response=self.call.got_response,
            stop_requested=self.stop_requested.is_set(),
            rtmp_failure=(
                publisher.failure or "gave up" if publisher.state is StreamState.FAILED else None
            ),
            pipeline_error=pipeline.error,
            worker_failure=self.supervisor.failure,
        )
        outcome = limit_reached(
            clock, self.spec.timeouts, self.spec.callee, self.spec.redacted_publish_url
        )
        if outcome is None:
            return
        if clock.stop_requested:
            self.reporter.update(terminating)
        self._end(outcome)

    def _end(self, outcome: Outcome) -> None:
        """Decide the outcome now; it takes effect when pjsua reports the call disconnected."""
        self.pending_outcome = outcome
        assert self.call is not None
        self._hang_up()

    def _hang_up(self) -> None:
        if self.call is None:
            return
        try:
            if self.call.isActive():
                self.call.hangup(pj.CallOpParam(True))
        except pj.Error:
            pass

    def _hang_up_and_wait(self, endpoint: SipEndpoint) -> None:
        """BYE (or CANCEL) and wait briefly for the far end, so SIGTERM really ends the call."""
        if self.outcome is None:
            self.pending_outcome = self.pending_outcome or Outcome(
                ExitCode.INTERNAL, Reason.INTERNAL_ERROR, "the bridge stopped unexpectedly"
            )
        self._hang_up()
        deadline = time.monotonic() + HANGUP_WAIT_SECONDS
        while self.call is not None and self.call.isActive() and time.monotonic() < deadline:
            endpoint.poll(POLL_MILLISECONDS)
        self.events.clear()
        if self.outcome is None:
            self.outcome = self.pending_outcome

    def _refresh_counters(
        self, now: float, pipeline: MediaPipeline, publisher: RtmpPublisher
    ) -> None:
        """Copy live counters into metrics and status, and note when RTP last arrived."""
        self.counters.frames_encoded = pipeline.encoder.frames_encoded
        self.counters.silence_seconds = pipeline.silence_samples / pipeline.clock_rate
        video = None
        if self.video is not None:
            if self.call_answered_at is not None:
                self.video.call_media_without_video()
            video = self.video.snapshot()

        def refreshed(status: BridgeStatus) -> BridgeStatus:
            status = with_stream(
                status,
                bytes_sent=publisher.bytes_sent,
                dropped_packets=publisher.packets_dropped,
                degraded=publisher.degraded(now),
            )
            return status if video is None else with_video(status, video)

        self.reporter.update(refreshed)  # one status line for both, not one each
        if self.call is None or self.call_answered_at is None:
            return
        packets, lost, jitter = self.call.rtp_packets_received()
        if packets > self.last_rtp_packets:
            self.last_rtp_packets = packets
            self.last_rtp_at = now
        self.counters.rtp_packets = packets
        self.counters.rtp_lost = lost
        self.counters.rtp_jitter_us = jitter

    # -- media -------------------------------------------------------------------------------

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

    def _keep_media_path_open(self, event: CallMediaChanged) -> None:
        """Send NAT keep-alives from our RTP port while we send no RTP of our own."""
        if self.keepalive is not None:
            self.keepalive.close()
            self.keepalive = None
        interval = self.spec.nat.keep_alive_seconds
        if event.local_sending or event.rtp_path is None or interval <= 0:
            return
        port, remote = event.rtp_path
        try:
            self.keepalive = RtpKeepAlive(
                self.spec.nat.bind_address, port, remote, interval, ssrc=random.getrandbits(32)
            )
        except OSError as error:
            print(f"sip-rtmp-bridge: no RTP keep-alive: {error}", file=sys.stderr)

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
        self.reporter.update(lambda s: with_stream(s, state=state, bytes_sent=bytes_sent))
