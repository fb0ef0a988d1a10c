"""NAT settings on the wire: an advertised public address, and a real STUN server (coturn)."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from siprtmp_bridge.demo.ports import free_port
from tests.conftest import call_spec
from tests.support.bridge_process import BridgeProcess
from tests.support.capture import LoopbackCapture
from tests.support.nginx_rtmp import NginxRtmp
from tests.support.recording import measure_recording
from tests.support.sipp import SippPeer

PUBLIC = "127.0.0.2"  # another loopback address: traffic to it stays on this machine


def test_public_address_is_advertised_in_sdp_and_contact_and_media_still_arrives(
    tone_peer: Callable[..., SippPeer],
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
) -> None:
    peer = tone_peer(2.0)
    spec = call_spec(
        peer.uri,
        rtmp_server,
        "public",
        nat={
            "bindAddress": "0.0.0.0",
            "publicAddress": PUBLIC,
            "rtpPortMin": 30000,
            "rtpPortMax": 40000,
        },
    )
    process = bridge(spec)
    assert process.wait(30) == 0, process.stderr_text[-2000:]
    invite = peer.messages().split("INVITE sip:", 1)[1].split("\n\n", 2)
    headers, sdp = invite[0], invite[1]
    assert f"Contact: <sip:sip-rtmp-bridge@{PUBLIC}:" in headers
    assert f"c=IN IP4 {PUBLIC}" in sdp
    # SIPp sent its RTP to the advertised address, and it reached the bridge.
    (recording,) = rtmp_server.recordings_of("public")
    assert measure_recording(recording).tone_seconds > 1.8


@pytest.fixture
def stun_server(tmp_path: Path) -> Iterator[int]:
    assert shutil.which("turnserver"), "coturn is not installed (scripts/test.sh installs it)"
    port = free_port()
    process = subprocess.Popen(
        [
            "turnserver",
            "--stun-only",
            "--listening-ip",
            "127.0.0.1",
            "--listening-port",
            str(port),
            "--no-tls",
            "--no-dtls",
            "--no-cli",
            "--log-file",
            "stdout",
            "--pidfile",
            str(tmp_path / "coturn.pid"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)
    yield port
    process.terminate()
    process.wait(5)


def test_stun_server_is_asked_for_the_public_address(
    stun_server: int,
    tone_peer: Callable[..., SippPeer],
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
    tmp_path: Path,
) -> None:
    peer = tone_peer(2.0)
    spec = call_spec(
        peer.uri,
        rtmp_server,
        "stun",
        nat={
            "bindAddress": "127.0.0.1",
            "stunServers": [f"127.0.0.1:{stun_server}"],
            "rtpPortMin": 30000,
            "rtpPortMax": 40000,
        },
    )
    with LoopbackCapture(tmp_path / "stun.pcap", f"udp port {stun_server}") as capture:
        process = bridge(spec)
        assert process.wait(30) == 0, process.stderr_text[-2000:]
    stun = capture.fields(f"stun and udp.port == {stun_server}", "stun.type", "udp.srcport")
    requests = [row for row in stun if row[0] == "0x0001"]
    answers = [row for row in stun if row[0] == "0x0101" and row[1] == str(stun_server)]
    assert requests, "the bridge sent no STUN binding request"
    assert answers, "coturn sent no binding response"
    (recording,) = rtmp_server.recordings_of("stun")
    assert measure_recording(recording).tone_seconds > 1.8
