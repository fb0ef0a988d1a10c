"""Video for one call: negotiated in pjsua's SDP callback, received beside pjsua, published
with the audio. The runner drives it with a few calls; everything video stays in this package.

Flow: the call goes out as a delayed offer (no SDP), so the far end offers audio and video in
its answer; pjsua answers the video with a disabled slot, which ``rewrite_sdp`` turns into a live
H.264 answer on a port claimed here; the relay (``VideoRelay``) receives there, learns the far
end's SSRC and feeds FFmpeg (``VideoReceiver``) on loopback, and the first keyframe adds an
H.264 track to the RTMP stream.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from siprtmp_bridge.rtp.keepalive import RtpPortClaim
from siprtmp_bridge.rtp.srtp import VideoKeys, video_keys
from siprtmp_bridge.supervision import Supervisor
from siprtmp_bridge.video.keyframes import KeyframePolicy, RtcpFeedbackSender
from siprtmp_bridge.video.payload_type import install_h264_match
from siprtmp_bridge.video.receiver import VideoReceiver
from siprtmp_bridge.video.relay import LOOPBACK, VideoRelay
from siprtmp_bridge.video.sdp import (
    VideoAccepted,
    VideoDeclined,
    decide_video,
    local_media_address,
    receiver_sdp,
    rewrite_answer,
    video_answer_section,
)
from siprtmp_bridge.video.slate import Slate
from siprtmp_bridge.video.status import VideoState, VideoStatus
from siprtmp_bridge.video.timeline import SmoothedLevel
from siprtmp_bridge.video.track import SlatedTrack
from siprtmp_contract.spec import BridgeSpec

# Audio reaches the stream later than video arriving at the same moment: pjsua's conference
# bridge and the WAV recorder hold it a frame or two, the AAC encoder adds its priming (21 ms at
# 48 kHz), and its jitter buffer holds it as long as the network's jitter needs (next to nothing
# on a clean path; measured as the call goes, ``audio_buffered``, and added on top, as is the
# network's queueing, timeline.py). Video, which FFmpeg hands on as soon as a frame is complete,
# is placed that much later to match. Calibrated end to end once the stream position was
# estimated steadily (media/clock.py): the blinking marker and tone of tests/bridge/test_video.py
# and bench/video_bench.py, +8…+11 ms in every 20-60 s call at 0.1 s.
AUDIO_PATH_DELAY_SECONDS = 0.09
# How long negotiated video may take to produce its first frame before the status calls it
# MISSING: a phone's camera and encoder start within a second or two of the answer, and by then
# the bridge has asked for a keyframe several times (keyframes.py). A far end that offers video
# and sends none, or sends what FFmpeg cannot take, would otherwise sit in NEGOTIATED.
VIDEO_MISSING_SECONDS = 5.0
_AUDIO_PORT = re.compile(r"^m=audio (\d+)", re.MULTILINE)

KeyframeInfoSender = Callable[[], bool]  # False when pjsua could not send it


class VideoSession:
    def __init__(
        self,
        spec: BridgeSpec,
        workdir: Path,
        publisher_submit: Callable[[Any], None],
        publisher_add_track: Callable[[Any], None],
        stream_seconds_at: Callable[[float], float],
        supervisor: Supervisor,
        slate: Slate | None = None,
    ) -> None:
        self.spec = spec
        # Watches the relay's, the receivers' and the slate's threads, as the pipeline's.
        self.supervisor = supervisor
        self.workdir = workdir
        self.publisher_submit = publisher_submit
        self.publisher_add_track = publisher_add_track
        self.stream_seconds_at = stream_seconds_at
        self.status = VideoStatus(mode=spec.video.mode)
        self.policy = self._new_policy()
        self.accepted: VideoAccepted | None = None
        self.port: int | None = None
        self.section: list[str] | None = None  # our live video m-line, kept for re-offers
        self.keys: VideoKeys | None = None  # the video's SRTP keys; None: plain RTP
        self.receiver: VideoReceiver | None = None
        self.relay: VideoRelay | None = None  # holds the answered port, feeds FFmpeg
        self._claim: RtpPortClaim | None = None  # the answered port, until the relay takes it
        self.feedback: RtcpFeedbackSender | None = None
        self.send_info: KeyframeInfoSender | None = None  # set by the runner: SIP INFO
        self.info_requests = 0
        self.slate = slate
        self.track: SlatedTrack | None = None
        if slate is not None:
            self.track = SlatedTrack(slate, publisher_submit, stream_seconds_at, supervisor)
            self.track.start()
        self._awaited_since: float | None = None  # the call is up, the receiver's first frame not
        self._missing = False  # the receiver's first frame is VIDEO_MISSING_SECONDS overdue
        self._retired: list[VideoReceiver] = []  # replaced by a re-INVITE, closed at the end
        self._far_ssrc: int | None = None  # the far end's video SSRC, once its RTP came
        self._audio_buffer = SmoothedLevel()
        self.audio_buffer_seconds = 0.0  # until pjsua's first figures: none on a clean path

    # -- negotiation (pjsua's thread) ---------------------------------------------------------

    def rewrite_sdp(self, local_sdp: str, remote_sdp: str) -> str | None:
        """pjsua's answer with the video slot made live, or None to leave it as pjsua made it."""
        if not remote_sdp.strip():
            # Our own offer: the fallback's audio INVITE (no video yet), or a session refresh,
            # where pjsua would offer its disabled slot and so end the video: keep it live.
            return rewrite_answer(local_sdp, self.section) if self.section else None
        decision = decide_video(remote_sdp)
        if isinstance(decision, VideoDeclined):
            state = VideoState.REFUSED if decision.refused else VideoState.ABSENT
            self.status = replace(self.status, state=state, reason=decision.reason)
            return None
        offer = decision.offer
        keys = video_keys(
            self.spec.connection.media_encryption,
            offer.proto,
            offer.cryptos,
            self.keys.local if self.keys is not None else None,
        )
        if isinstance(keys, str):  # pjsua's disabled slot stays: the video is declined
            self.status = replace(self.status, state=VideoState.REFUSED, reason=keys)
            return None
        # Without it pjsua would renumber the answer to the offer's first H.264 format.
        if (problem := install_h264_match()) is not None:
            self.status = replace(self.status, state=VideoState.FAILED, reason=problem)
            return None
        try:
            port = self._port_for(local_sdp)
        except OSError as error:
            self.status = replace(self.status, state=VideoState.FAILED, reason=str(error))
            return None
        address = local_media_address(local_sdp) or self.spec.nat.bind_address
        section = video_answer_section(
            decision,
            port,
            address,
            sendrecv=self.spec.has_video,
            crypto=keys.local.attribute() if keys is not None else None,
        )
        rewritten = rewrite_answer(local_sdp, section)
        self.section = section if rewritten is not None else None
        if rewritten is None:
            self.status = replace(
                self.status,
                state=VideoState.FAILED,
                reason="pjsua's answer has no video slot to fill",
            )
            return None
        chosen = decision.format
        self.status = replace(
            self.status,
            state=VideoState.NEGOTIATED,
            reason=None,
            codec="H264/90000",
            payload_type=chosen.payload_type,
            packetization_mode=chosen.packetization_mode,
            profile=chosen.profile_name,
            local_port=port,
            srtp_suite=keys.remote.suite if keys is not None else None,
        )
        self.keys = keys
        if self.relay is not None:
            self.relay.use_srtp(keys)  # a re-INVITE's offer may bring new keys
        self._receive(decision, port)
        return rewritten

    def _port_for(self, local_sdp: str) -> int:
        """The RTP port pair next to the audio's if free (as phones lay them out), else any
        free pair in the spec's window. A re-INVITE keeps the port already in use."""
        if self.port is not None:
            return self.port
        nat = self.spec.nat
        match = _AUDIO_PORT.search(local_sdp)
        audio = int(match[1]) if match else nat.rtp_port_min - 2
        claim = None
        if nat.rtp_port_min <= audio + 2 < nat.rtp_port_max:
            try:
                claim = RtpPortClaim(nat.bind_address, audio + 2, nat.rtp_port_max)
            except OSError:
                claim = None
        if claim is None:
            claim = RtpPortClaim(nat.bind_address, nat.rtp_port_min, nat.rtp_port_max)
        self._claim = claim  # kept: the relay receives on it
        self.port = claim.port
        return claim.port

    def _receive(self, accepted: VideoAccepted, port: int) -> None:
        if self.receiver is not None:
            if self.accepted is not None and self.accepted.format == accepted.format:
                return  # a re-INVITE that changes nothing for video
            self._stop_receiver()
        self.accepted = accepted
        relay = self._relay_for(accepted)
        sdp_path = self.workdir / f"video-{port}.sdp"
        sdp_path.write_text(receiver_sdp(accepted, relay.inner_port))
        self.policy = self._new_policy()
        self._awaited_since = None
        self._missing = False
        self.feedback = RtcpFeedbackSender(relay.send_rtcp, random.getrandbits(32))
        # What the far end sends beats what its offer says; the offer beats nothing yet.
        ssrc = relay.ssrc if relay.ssrc is not None else accepted.offer.ssrc
        if ssrc is not None:
            self.feedback.learned_ssrc(ssrc)
        self.receiver = VideoReceiver(
            sdp_path,
            LOOPBACK,
            self._live_sink(),
            self.publisher_add_track,
            self.stream_seconds_at,
            relay.capture_time,
            self.policy,
            self._audio_delay,
            self.supervisor,
        )
        self.receiver.start()

    def _new_policy(self) -> KeyframePolicy:
        return KeyframePolicy(max_interval_seconds=self.spec.video.max_keyframe_interval_seconds)

    def _relay_for(self, accepted: VideoAccepted) -> VideoRelay:
        """The relay, started with the first receiver; a later receiver (a re-INVITE) gets a
        fresh loopback port on it (``inner_port``)."""
        if self.relay is None:
            assert self._claim is not None
            self.relay = VideoRelay(
                self._claim,
                accepted.remote_rtcp,
                self._learned_ssrc,
                self._lost_packets,
                self.supervisor,
                self.keys,
            )
            self._claim = None
            self.relay.start()
        else:
            self.relay.remote_rtcp = accepted.remote_rtcp
            self.relay.latch.offered_host = accepted.remote_rtcp[0]
            self.relay.renew_inner_port()
        return self.relay

    def _learned_ssrc(self, ssrc: int) -> None:
        """The relay's thread: the far end's first video packet, or a new SSRC (a new source,
        whose pictures cannot be decoded against the old one's: a keyframe is asked for)."""
        feedback = self.feedback
        if feedback is not None:
            feedback.learned_ssrc(ssrc)
        if self._far_ssrc is not None:
            self.policy.loss_detected()
        self._far_ssrc = ssrc

    def _lost_packets(self) -> None:
        """The relay's thread: video packets were lost, so the picture is broken until the
        next keyframe: ask for one now (the policy spaces the requests)."""
        self.policy.loss_detected()

    def _audio_delay(self) -> float:
        """The receiver's thread: how much later than its arrival audio reaches the stream."""
        return AUDIO_PATH_DELAY_SECONDS + self.audio_buffer_seconds

    def audio_buffered(self, now: float, seconds: float) -> None:
        """pjsua's thread: how much audio the jitter buffer holds now (its statistics)."""
        self.audio_buffer_seconds = self._audio_buffer.add(now, seconds)

    def _live_sink(self) -> Callable[[Any], None]:
        """Where the far end's frames go: straight to the publisher, or through the slated
        track, which switches between them and the slate at keyframes."""
        if self.track is not None:
            return self.track.live_packet
        return self.publisher_submit

    # -- the runner's loop (pjsua's thread) -----------------------------------------------------

    def tick(self, now: float, call_confirmed: bool) -> None:
        """Keyframe requests while one is awaited; the SIP INFO only once the call is up; the
        status says MISSING once the call has been up VIDEO_MISSING_SECONDS without a frame."""
        if self.receiver is None or not call_confirmed:
            return
        if self._awaited_since is None:
            self._awaited_since = now
        elif (
            not self._missing
            and not self.receiver.stats.frames
            and now - self._awaited_since >= VIDEO_MISSING_SECONDS
        ):
            self._missing = True  # once per receiver: a session refresh does not count again
            self.status = replace(self.status, missing_count=self.status.missing_count + 1)
        if self.policy.due(now):
            if self.feedback is not None:
                self.feedback.request_keyframe()
            if self.send_info is not None and self.send_info():
                self.info_requests += 1

    def _missing_reason(self) -> str:
        rtp_came = self.relay is not None and self.relay.ssrc is not None
        what = (
            "video RTP arrives, but no frame was taken from it"
            if rtp_came
            else "no video RTP has arrived"
        )
        return (
            f"{what} in the {VIDEO_MISSING_SECONDS:g} s since the answer (keyframe requests go on)"
        )

    def snapshot(self) -> VideoStatus:
        """The status with the receiver's (and the slate's) live figures."""
        self.status = replace(self.status, source=self._source())
        if self.relay is not None:
            self.status = replace(
                self.status,
                foreign_packets=self.relay.latch.dropped,
                srtp_rejected=self.relay.srtp.rejected if self.relay.srtp is not None else 0,
            )
        if self.track is not None:
            self.status = replace(self.status, slate_frames=self.track.slate_frames)
        receiver = self.receiver
        if receiver is None:
            return self.status
        stats = receiver.stats
        state = self.status.state
        reason = self.status.reason
        if receiver.error is not None:
            state, reason = VideoState.FAILED, receiver.error
        elif stats.frames and state in (VideoState.NEGOTIATED, VideoState.MISSING):
            state, reason = VideoState.RECEIVING, None
        elif self._missing and state is VideoState.NEGOTIATED:
            state, reason = VideoState.MISSING, self._missing_reason()
        self.status = replace(
            self.status,
            state=state,
            reason=reason,
            width=stats.width,
            height=stats.height,
            profile=stats.profile or self.status.profile,
            frame_rate=stats.frame_rate,
            keyframe_interval_seconds=stats.keyframe_interval,
            keyframe_interval_max_seconds=stats.keyframe_interval_max,
            keyframe_requests_ignored=self.policy.ignored,
            frames=stats.frames,
            keyframes=stats.keyframes,
            bytes_received=stats.bytes,
            keyframe_requests=self.policy.requests,
            av_offset_ms=stats.av_offset_ms,
            av_sync=stats.sync,
        )
        return self.status

    def _source(self) -> str | None:
        if self.track is not None:
            return "far end" if self.track.live else "slate"
        receiver = self.receiver
        return "far end" if receiver is not None and receiver.stats.frames else None

    def fell_back(self, status_code: int, reason: str) -> None:
        """The far end refused the delayed offer: the call goes again with an audio offer and
        asks for video once it is up (the decision is the call's: ``lifecycle``)."""
        self.status = replace(
            self.status,
            negotiation=f"audio first, then a re-INVITE without SDP (the far end refused "
            f"an INVITE without SDP: {status_code} {reason})",
        )

    def call_media_without_video(self) -> None:
        """The call is up and no video was negotiated (an audio-only answer)."""
        if self.status.state is VideoState.NEGOTIATING:
            self.status = replace(
                self.status, state=VideoState.ABSENT, reason="the far end offered no video"
            )

    # -- the end ------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop receiving (before the publisher's final flush) and let go of the call."""
        self.send_info = None  # holds the pjsua2 call, which must go before libDestroy
        if self.track is not None:
            self.track.stop()
        for receiver in (*self._retired, self.receiver):
            if receiver is not None:
                receiver.stop(2.0)
        self.feedback = None
        if self.relay is not None:
            self.relay.close()
        if self._claim is not None:
            self._claim.release()
            self._claim = None

    def close(self) -> None:
        """Free FFmpeg's input, once the publisher no longer needs its stream as a template."""
        for receiver in (*self._retired, self.receiver):
            if receiver is not None:
                receiver.close()
        self._retired = []
        self.receiver = None
        if self.slate is not None:
            self.slate.close()

    def _stop_receiver(self) -> None:
        assert self.receiver is not None
        self.receiver.stop(2.0)
        # Its input stream may be the publisher's template: keep it open until the end.
        self._retired.append(self.receiver)
        self.receiver = None
