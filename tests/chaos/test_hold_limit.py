"""A far end that holds the call and then vanishes: nothing arrives, nothing says goodbye.
The RTP inactivity timer rightly waits while on hold; the hold limit ends the call instead."""

from __future__ import annotations

import time
from collections.abc import Callable

from tests.conftest import call_spec
from tests.support.bridge_process import BridgeProcess
from tests.support.nginx_rtmp import NginxRtmp
from tests.support.sipp import SippPeer

EXIT_RTP_INACTIVITY = 6


def test_a_far_end_silent_on_hold_ends_the_call_at_the_hold_limit(
    tone_peer: Callable[..., SippPeer],
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
) -> None:
    # The tone ends before the hold; the far end holds (a=inactive) and never resumes or hangs up.
    peer = tone_peer(1.0, "uas_hold.xml", hold_at_ms=1500, hold_ms=60000, call_ms=1000)
    spec = call_spec(
        peer.uri, rtmp_server, "vanished", rtpInactivityTimeoutSeconds=1, holdTimeoutSeconds=4
    )
    process = bridge(spec)
    process.wait_for(lambda line: line["call"]["state"] == "HOLD", 20)
    held_at = time.monotonic()
    assert process.wait(20) == EXIT_RTP_INACTIVITY, process.stderr_text[-2000:]
    held_for = time.monotonic() - held_at
    final = process.final
    assert (final["reason"], final["message"]) == (
        "HoldTimeout",
        "no RTP received for 4 s while on hold",
    )
    # Not the 1 s RTP inactivity timeout: the hold limit, counted from the hold.
    assert 3.5 < held_for < 6.5, held_for
    states = process.call_states()
    assert states[states.index("ESTABLISHED") :][:2] == ["ESTABLISHED", "HOLD"]
    assert final["phase"] == "Failed", final
