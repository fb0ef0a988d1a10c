"""The bridge's status model: immutable snapshots and pure transitions.

The SIP side and the media side report events; this module turns them into the document that
is printed as JSON lines, served at ``/status`` and written as the pod's termination message.
The phase is always derived from the call and stream states, never stored on its own, so the two
cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from siprtmp_bridge.rtmp.fanout import DestinationSnapshot
from siprtmp_bridge.video.status import VideoStatus, video_document
from siprtmp_contract.outcome import Outcome
from siprtmp_contract.states import (
    ANSWERED_CALL_STATES,
    ENDED_CALL_STATES,
    CallState,
    Phase,
    StreamState,
)


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class CallStatus:
    state: CallState = CallState.NEW
    sip_status_code: int | None = None
    reason: str | None = None
    sip_call_id: str | None = None
    codec: str | None = None
    srtp_suite: str | None = None  # the audio's SRTP crypto suite; None: plain RTP
    rtp_profile: str | None = None  # the audio m-line's RTP/AVP or RTP/SAVP; None: no SDP yet
    started_at: str | None = None
    established_at: str | None = None
    ended_at: str | None = None
    dtmf_received: int = 0  # keys the far end pressed (RFC 2833 or INFO)
    dtmf_last_digits: str = ""  # the last of them, oldest first


@dataclass(frozen=True)
class StreamStatus:
    """The call's one stream, over all its destinations (rtmp/fanout.py): its state is the best
    of theirs (failed only when every one has failed), its counters their sums, its reconnects
    the times no destination was on the air; ``url`` is the first destination's."""

    url: str
    state: StreamState = StreamState.PENDING
    bytes_sent: int = 0
    reconnects: int = 0
    started_at: str | None = None
    audio_started_at: str | None = None  # when the call's own audio first reached the encoder
    # Media the publisher's queue dropped (oldest first) while the connection was behind or gone;
    # degraded while it is dropping (publisher.DEGRADED_SECONDS after the last drop).
    dropped_packets: int = 0
    degraded: bool = False


@dataclass(frozen=True)
class BridgeStatus:
    call_id: str
    call: CallStatus
    stream: StreamStatus
    terminating: bool = False
    outcome: Outcome | None = None
    video: VideoStatus | None = None  # only when the spec asks for video
    #: Each destination the stream is published to, the first (rtmpUrl/rtmpStream) first.
    destinations: tuple[DestinationSnapshot, ...] = ()

    @property
    def phase(self) -> Phase:
        return derive_phase(self)

    @property
    def ready(self) -> bool:
        return self.phase is Phase.STREAMING


def initial_status(call_id: str, redacted_url: str) -> BridgeStatus:
    return BridgeStatus(call_id=call_id, call=CallStatus(), stream=StreamStatus(url=redacted_url))


def derive_phase(status: BridgeStatus) -> Phase:
    """Pending → Connecting → Streaming → Succeeded | Failed, from the parts' states."""
    if status.outcome is not None:
        return Phase.SUCCEEDED if status.outcome.succeeded else Phase.FAILED
    call, stream = status.call.state, status.stream.state
    if status.terminating or call in ENDED_CALL_STATES:
        return Phase.TERMINATING
    if call in ANSWERED_CALL_STATES:
        if stream is StreamState.PUBLISHING:
            return Phase.STREAMING
        if stream is StreamState.RECONNECTING:
            return Phase.RECONNECTING
        return Phase.CONNECTING
    if call is CallState.NEW:
        return Phase.PENDING
    return Phase.CONNECTING


def with_call(status: BridgeStatus, **changes: Any) -> BridgeStatus:
    """Apply call changes, stamping the first time the call was placed, answered and ended."""
    call = replace(status.call, **changes)
    stamp = now_iso()
    if call.state is not CallState.NEW and call.started_at is None:
        call = replace(call, started_at=stamp)
    if call.state in ANSWERED_CALL_STATES and call.established_at is None:
        call = replace(call, established_at=stamp)
    if call.state in ENDED_CALL_STATES and call.ended_at is None:
        call = replace(call, ended_at=stamp)
    return replace(status, call=call)


def with_dtmf_received(status: BridgeStatus, key: str, shown: int) -> BridgeStatus:
    """Count a key from the far end, keeping the last ``shown`` keys."""
    call = status.call
    digits = (call.dtmf_last_digits + key)[-shown:]
    return replace(
        status, call=replace(call, dtmf_received=call.dtmf_received + 1, dtmf_last_digits=digits)
    )


def with_stream(status: BridgeStatus, **changes: Any) -> BridgeStatus:
    """Apply stream changes, counting each entry into RECONNECTING as one reconnect."""
    stream = replace(status.stream, **changes)
    if (
        stream.state is StreamState.RECONNECTING
        and status.stream.state is not StreamState.RECONNECTING
    ):
        stream = replace(stream, reconnects=stream.reconnects + 1)
    if stream.state is StreamState.PUBLISHING and stream.started_at is None:
        stream = replace(stream, started_at=now_iso())
    return replace(status, stream=stream)


def with_video(status: BridgeStatus, video: VideoStatus) -> BridgeStatus:
    return replace(status, video=video)


def with_destinations(
    status: BridgeStatus, destinations: tuple[DestinationSnapshot, ...]
) -> BridgeStatus:
    return replace(status, destinations=destinations)


def terminating(status: BridgeStatus) -> BridgeStatus:
    return replace(status, terminating=True)


def finished(status: BridgeStatus, outcome: Outcome) -> BridgeStatus:
    """The final status; the first outcome recorded wins (a later BYE does not mask a failure)."""
    if status.outcome is not None:
        return status
    stream_state = (
        StreamState.UNPUBLISHED
        if status.stream.state is not StreamState.FAILED
        else StreamState.FAILED
    )
    call_state = status.call.state
    if call_state not in ENDED_CALL_STATES:
        call_state = CallState.FINISH if outcome.succeeded else CallState.FAILED
    ended = with_call(status, state=call_state)
    return replace(ended, outcome=outcome, stream=replace(ended.stream, state=stream_state))


def to_document(status: BridgeStatus) -> dict[str, Any]:
    """The JSON document of docs/bridge-process.md (camelCase, as in the resource's status)."""
    call, stream, outcome = status.call, status.stream, status.outcome
    phase = status.phase
    document: dict[str, Any] = {
        "callId": status.call_id,
        "phase": phase.value,
        "reason": outcome.reason if outcome else phase.value,
        "message": outcome.message if outcome else _message(status),
        "exitCode": int(outcome.exit_code) if outcome else None,
        "call": {
            "state": call.state.value,
            "sipStatusCode": call.sip_status_code,
            "reason": call.reason,
            "sipCallId": call.sip_call_id,
            "codec": call.codec,
            "srtpSuite": call.srtp_suite,
            "rtpProfile": call.rtp_profile,
            "startedAt": call.started_at,
            "establishedAt": call.established_at,
            "endedAt": call.ended_at,
            "dtmfReceived": call.dtmf_received,
            "dtmfLastDigits": call.dtmf_last_digits or None,
        },
        "stream": {
            "state": stream.state.value,
            "url": stream.url,
            "bytesSent": stream.bytes_sent,
            "reconnects": stream.reconnects,
            "startedAt": stream.started_at,
            "audioStartedAt": stream.audio_started_at,
            "droppedPackets": stream.dropped_packets,
            "degraded": stream.degraded,
        },
    }
    document["destinations"] = [_destination_document(d) for d in status.destinations]
    if status.video is not None:
        document["video"] = video_document(status.video)
    return document


def _destination_document(destination: DestinationSnapshot) -> dict[str, Any]:
    return {
        "id": destination.id,
        "url": destination.url,
        "profile": destination.profile,
        "name": destination.name,
        "state": destination.state.value,
        "bytesSent": destination.bytes_sent,
        "droppedPackets": destination.dropped_packets,
        "reconnects": destination.reconnects,
        "degraded": destination.degraded,
        "failure": destination.failure,
    }


def _message(status: BridgeStatus) -> str:
    return f"call {status.call.state.value}, stream {status.stream.state.value}"
