"""DTMF into a live call through the bridge's own HTTP API, proven at the far end: tshark
decodes the RFC 2833 events the bridge sent to SIPp's RTP port."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from siprtmp_bridge.demo.ports import free_port
from tests.conftest import call_spec
from tests.operator.k8s_harness import wait_for
from tests.support.bridge_process import BridgeProcess
from tests.support.capture import LoopbackCapture, rfc2833_events
from tests.support.nginx_rtmp import NginxRtmp
from tests.support.sipp import SippPeer


def post_dtmf(port: int, body: object) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/dtmf",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def pressed_keys(events: list[tuple[str, int, bool]]) -> str:
    """The keys in order, one per event (an event is repeated in many packets)."""
    keys = ""
    previous_end = True
    for key, _duration, end in events:
        if previous_end and not end:
            keys += key
        previous_end = end
    return keys


def test_dtmf_reaches_the_far_end_as_rfc2833_events(
    tone_peer: Callable[..., SippPeer],
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
    tmp_path: Path,
) -> None:
    peer = tone_peer(8.0, "uas_dtmf.xml")
    port = free_port()
    spec = call_spec(peer.uri, rtmp_server, "dtmf", hasAudio=True)
    capture_filter = f"udp port {peer.port} or udp port {peer.media_port}"
    with LoopbackCapture(tmp_path / "dtmf.pcap", capture_filter) as capture:
        process = bridge(spec, status_port=port)
        process.wait_for(lambda s: s["call"]["state"] == "ESTABLISHED", timeout=20)
        assert post_dtmf(port, {"dtmf": "1#9a"}) == (200, {"dtmf": "1#9A", "sent": True})
        assert post_dtmf(port, {"dtmf": "12x"})[0] == 400
        assert post_dtmf(port, {"digits": "1"}) == (
            400,
            {"error": "dtmf: is required: a string of 0-9, *, #, A-D"},
        )
        # pjmedia plays the keys out in real time (160 ms each, with gaps) after queueing them.
        wait_for(
            "the four keys on the wire",
            lambda: pressed_keys(rfc2833_events(capture, peer.media_port)) == "1#9A",
            timeout=20,
            interval=0.5,
        )
        process.signal()  # hang up: SIPp's scenario ends with our BYE
        assert process.wait(20) == 0
        assert peer.wait(10) == 0
    events = rfc2833_events(capture, peer.media_port)
    assert pressed_keys(events) == "1#9A", events
    assert events[-1][2], events  # the last key ended (end-of-event bit)


def test_dtmf_is_refused_on_a_receive_only_call(
    tone_peer: Callable[..., SippPeer],
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
) -> None:
    peer = tone_peer(3.0, "uas_dtmf.xml")
    port = free_port()
    process = bridge(call_spec(peer.uri, rtmp_server, "recvonly"), status_port=port)
    process.wait_for(lambda s: s["call"]["state"] == "ESTABLISHED", timeout=20)
    code, answer = post_dtmf(port, {"dtmf": "5"})
    assert code == 409 and "hasAudio: false" in answer["error"]
    process.signal()
    assert process.wait(20) == 0
