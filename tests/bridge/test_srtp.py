"""SRTP (SDES, RFC 4568) against real far ends: baresip requiring it, for audio and for audio
with video, and far ends without it; each proven by what was decoded from the recording."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.conftest import call_spec
from tests.support.baresip import BaresipPeer
from tests.support.bridge_process import BridgeProcess
from tests.support.nginx_rtmp import NginxRtmp
from tests.support.recording import measure_recording

CALL_SECONDS = 6


@pytest.mark.parametrize("mode", ["allow", "require"])
def test_probe(
    mode: str,
    baresip: Callable[..., BaresipPeer],
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
) -> None:
    peer = baresip(None, CALL_SECONDS, mediaenc="srtp-mand")
    stream = f"srtp-{mode}"
    spec = call_spec(peer.uri, rtmp_server, stream, hasAudio=True)
    spec["connection"] = {"mediaEncryption": mode}
    process = bridge(spec)
    process.wait(30)
    print(process.final)
    print(peer.text()[-3000:])
    print(process.stderr_text[-3000:])
    (recording,) = rtmp_server.recordings_of(stream)
    print(measure_recording(recording))
    assert 0
