"""The typed status: read from and rendered to the resource's ``status`` without loss."""

from __future__ import annotations

from typing import Any

from siprtmp_contract.states import Phase
from siprtmp_operator.statusmodel import (
    BridgeStatus,
    Condition,
    LastFailure,
    Networking,
    read_status,
    render_status,
    status_patch,
)

#: Every field the operator writes, as the API stores it.
STORED: dict[str, Any] = {
    "phase": "Pending",
    "reason": "RetryBackoff",
    "message": "attempt 0 failed (NoAnswer: 480); redialing in 5s",
    "observedGeneration": 2,
    "attempt": 1,
    "retries": 1,
    "podName": "b-bridge-0",
    "nextRetryAt": "2026-01-02T03:04:10Z",
    "lastFailure": {"reason": "NoAnswer", "pod": "b-bridge-0", "exitCode": 5},
    "networking": {
        "mode": "HostNetwork",
        "portSlot": 2,
        "statusPort": 40016,
        "sipPort": 40017,
        "rtpPortMin": 40018,
        "rtpPortMax": 40023,
        "nodeName": "n1",
        "publicAddress": "198.51.100.2",
    },
    "exitCode": 5,
    "startedAt": "2026-01-02T03:04:00Z",
    "podRunningAt": "2026-01-02T03:04:01Z",
    "streamingAt": "2026-01-02T03:04:02Z",
    "finishedAt": "2026-01-02T03:04:09Z",
    "call": {"state": "FAILED", "sipStatusCode": 480, "codec": "PCMU/8000", "dtmfReceived": 0},
    "stream": {
        "state": "UNPUBLISHED",
        "url": "rtmp://h/live/***",
        "bytesSent": 5,
        "degraded": False,
    },
    "video": {"mode": "passthrough", "state": "ABSENT"},
    "conditions": [
        {
            "type": "Ready",
            "status": "False",
            "reason": "RetryBackoff",
            "message": "m",
            "lastTransitionTime": "2026-01-02T03:04:09Z",
            "observedGeneration": 2,
        }
    ],
}


def test_every_field_round_trips() -> None:
    status = read_status(STORED)
    assert render_status(status) == STORED
    assert status.phase is Phase.PENDING and status.attempt == 1
    assert status.last_failure == LastFailure(reason="NoAnswer", pod="b-bridge-0", exit_code=5)
    assert status.networking is not None and status.networking.port_slot == 2
    assert status.conditions[0] == Condition(
        type="Ready",
        status="False",
        reason="RetryBackoff",
        message="m",
        last_transition_time="2026-01-02T03:04:09Z",
        observed_generation=2,
    )
    # The bridge's blocks keep the keys the operator does not read (codec, degraded, mode).
    assert status.call_state == "FAILED" and status.stream_state == "UNPUBLISHED"
    assert status_patch(STORED, status) == {}


def test_a_new_resource_reads_as_the_defaults_and_renders_its_counters() -> None:
    assert read_status(None) == read_status({}) == BridgeStatus()
    assert render_status(BridgeStatus()) == {"attempt": 0, "retries": 0}


def test_the_patch_deletes_what_the_new_status_drops_and_keeps_keys_it_does_not_own() -> None:
    stored = {**STORED, "someoneElse": {"x": 1}}
    new = BridgeStatus(
        phase=Phase.STREAMING, attempt=1, retries=1, networking=Networking("PodNetwork")
    )
    patch = status_patch(stored, new)
    assert "someoneElse" not in patch
    assert patch["phase"] == "Streaming" and patch["nextRetryAt"] is None
    assert patch["networking"] == {
        "mode": "PodNetwork",
        **dict.fromkeys(
            ("portSlot", "statusPort", "sipPort", "rtpPortMin", "rtpPortMax", "nodeName"), None
        ),
        "publicAddress": None,
    }
    assert "attempt" not in patch and patch["conditions"] is None


def test_an_unknown_phase_reads_as_none() -> None:
    assert read_status({"phase": "Exploded"}).phase is None
