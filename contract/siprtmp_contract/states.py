"""The words the bridge's status uses: the phase, the call's and the stream's states.

The bridge derives them (siprtmp_bridge.status), the operator copies them into the resource's
status, the REST API and its OpenAPI document list them; each is declared here once.
"""

from __future__ import annotations

from enum import StrEnum


class Phase(StrEnum):
    PENDING = "Pending"
    CONNECTING = "Connecting"
    STREAMING = "Streaming"
    RECONNECTING = "Reconnecting"
    TERMINATING = "Terminating"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class CallState(StrEnum):
    """The seed server's call statuses."""

    NEW = "NEW"
    PENDING = "PENDING"
    TRYING = "TRYING"
    RING = "RING"
    RING_MEDIA = "RING_MEDIA"
    SESSION_PROGRESS = "SESSION_PROGRESS"
    ESTABLISHED = "ESTABLISHED"
    HOLD = "HOLD"
    BUSY = "BUSY"
    FAILED = "FAILED"
    FINISH = "FINISH"


class StreamState(StrEnum):
    PENDING = "PENDING"
    PUBLISHING = "PUBLISHING"
    RECONNECTING = "RECONNECTING"
    UNPUBLISHED = "UNPUBLISHED"
    FAILED = "FAILED"


ANSWERED_CALL_STATES = frozenset({CallState.ESTABLISHED, CallState.HOLD})
ENDED_CALL_STATES = frozenset({CallState.BUSY, CallState.FAILED, CallState.FINISH})
