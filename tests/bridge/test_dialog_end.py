"""What ended an answered call's dialog decides its outcome: the far end's BYE is a normal end;
a session refresh nobody answers, or a far end whose TCP listener died, is ``DialogLost``
(exit 9, redialled). Session timers (RFC 4028) with the bridge as refresher, against SIPp
answering ``Session-Expires: 90;refresher=uac`` (90 s is the floor pjsip and the RFC allow, so
a refresh goes out 45 s after the answer)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tests.conftest import call_spec
from tests.support.bridge_process import BridgeProcess
from tests.support.nginx_rtmp import NginxRtmp
from tests.support.sipp import SippPeer

EXIT_DIALOG_LOST = 9
REFRESH_SECONDS = 45  # half the 90 s interval
TRANSACTION_TIMEOUT_SECONDS = 32  # an unanswered request's 408 (64 T1)
#: SIPp's own global timeout is 90 s (support/sipp.py): these far ends outlive it.
LONG_LIVED = ("-timeout", "200s")


def timed_call(rtmp: NginxRtmp, peer: SippPeer, stream: str, transport: str) -> dict[str, Any]:
    """A spec whose RTP inactivity limit does not end the call first (the tone is short)."""
    return call_spec(
        peer.uri,
        rtmp,
        stream,
        rtpInactivityTimeoutSeconds=600,
        connection={"sipTransport": transport},
    )


def answered_at(process: BridgeProcess) -> float:
    process.wait_for(lambda line: line["call"]["state"] == "ESTABLISHED", 15)
    return time.monotonic()


def test_a_refreshed_session_outlives_two_intervals_and_the_far_ends_bye_ends_it_normally(
    tone_peer: Callable[..., SippPeer],
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
) -> None:
    peer = tone_peer(2.0, "uas_session_refreshed.xml", extra_args=LONG_LIVED)
    process = bridge(timed_call(rtmp_server, peer, "refreshed", "udp"))
    answered = answered_at(process)
    assert process.wait(2 * REFRESH_SECONDS + 30) == 0, process.stderr_text[-3000:]
    assert time.monotonic() - answered > 2 * REFRESH_SECONDS  # two refreshes, then its BYE
    assert (process.final["reason"], process.final["phase"]) == ("RemoteHangup", "Succeeded")
    assert peer.wait(10) == 0  # SIPp saw both refreshes and our 200 to its BYE
    messages = peer.messages()
    assert "Supported: timer" in messages.split("UPDATE sip:")[0]  # offered in the INVITE
    assert messages.count("UPDATE sip:") == 2
    assert "Session-Expires: 90;refresher=uac" in messages.split("UPDATE sip:")[1]


def test_an_unanswered_refresh_ends_the_call_as_a_lost_dialog_in_bounded_time(
    tone_peer: Callable[..., SippPeer],
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
) -> None:
    peer = tone_peer(2.0, "uas_session_refresh_ignored.xml", extra_args=LONG_LIVED)
    process = bridge(timed_call(rtmp_server, peer, "unrefreshed", "udp"))
    answered = answered_at(process)
    bound = REFRESH_SECONDS + TRANSACTION_TIMEOUT_SECONDS + 10
    assert process.wait(bound) == EXIT_DIALOG_LOST, process.stderr_text[-3000:]
    assert time.monotonic() - answered > REFRESH_SECONDS
    final = process.final
    assert (final["reason"], final["phase"], final["exitCode"]) == ("DialogLost", "Failed", 9)
    assert "without a BYE from the far end (408" in final["message"]
    assert peer.wait(10) == 0  # it received the BYE that pjsip sent on the 408


def test_a_far_end_whose_tcp_listener_dies_mid_call_is_a_lost_dialog(
    tone_peer: Callable[..., SippPeer],
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
) -> None:
    peer = tone_peer(2.0, "uas_session_refreshed.xml", transport="t1", extra_args=LONG_LIVED)
    process = bridge(timed_call(rtmp_server, peer, "tcp-lost", "tcp"))
    answered = answered_at(process)
    peer.stop()  # the connection and the listener go: refreshes cannot reach the far end
    # Refused refreshes are retried; the interval expiring unrefreshed ends the dialog.
    assert process.wait(2 * REFRESH_SECONDS + 15) == EXIT_DIALOG_LOST, process.stderr_text[-3000:]
    assert time.monotonic() - answered < 2 * REFRESH_SECONDS + 10
    final = process.final
    assert (final["reason"], final["exitCode"]) == ("DialogLost", 9)
    assert "without a BYE from the far end" in final["message"]
