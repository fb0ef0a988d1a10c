"""RTMPS as CDNs terminate it (nginx's stream module in front of nginx-rtmp, a self-signed
certificate): the server's certificate is verified by the bridge's relay process unless the
spec turns verification off, and the server is told what a direct client tells it."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import call_spec
from tests.support.bridge_process import BridgeProcess
from tests.support.nginx_rtmp import NginxRtmp
from tests.support.publish_log import PublishLog
from tests.support.recording import ffprobe, measure_recording
from tests.support.silent_callee import SilentCallee
from tests.support.sipp import SippPeer

EXIT_RTMP = 7
RELAY_MODULE = "siprtmp_bridge.media.rtmps_relay"


def relays() -> dict[int, int]:
    """Running RTMPS relay processes: pid → parent pid."""
    found = {}
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
            stat = (entry / "stat").read_text()
        except (OSError, ValueError):
            continue
        if RELAY_MODULE.encode() in command:
            found[int(entry.name)] = int(stat.rpartition(")")[2].split()[1])
    return found


@pytest.mark.parametrize("verify", [True, False], ids=["verified", "unverified"])
def test_rtmps_publishes_at_a_cdn_friendly_encoding(
    verify: bool,
    tone_peer: Callable[..., SippPeer],
    bridge: Callable[..., BridgeProcess],
    tls_rtmp_server: NginxRtmp,
    publish_log: PublishLog,
) -> None:
    """Verified: through the relay, with the certificate trusted. Unverified
    (``rtmpTlsVerify: false``): FFmpeg's own TLS, no relay. Both at 44.1 kHz, 32 kb/s."""
    peer = tone_peer(3.0)
    spec = call_spec(
        peer.uri, tls_rtmp_server, "secure", audio={"sampleRate": 44100, "bitrate": 32000}
    )
    spec.update(rtmpUrl=tls_rtmp_server.tls_url, rtmpTlsVerify=verify)
    process = bridge(spec, env=tls_rtmp_server.trusting_env if verify else {})
    process.wait_for(lambda line: line["stream"]["state"] == "PUBLISHING", 15)
    assert process.process is not None
    assert list(relays().values()) == ([process.process.pid] if verify else [])

    assert process.wait(30) == 0, process.stderr_text[-2000:]
    assert process.final["stream"]["url"] == f"{tls_rtmp_server.tls_url}/***"
    assert relays() == {}
    # The server was told its own address, as a direct client tells it, not the relay's.
    assert publish_log.tc_urls() == [tls_rtmp_server.tls_url]
    (recording,) = tls_rtmp_server.recordings_of("secure")
    probe = ffprobe(recording)
    (stream,) = probe["streams"]
    assert stream["sample_rate"] == "44100"
    assert 24_000 < int(probe["format"]["bit_rate"]) < 48_000
    tone = measure_recording(recording)
    assert abs(tone.frequency_hz - 1000) < 5
    assert tone.tone_seconds > 2.8


def test_rtmps_server_with_an_untrusted_certificate_is_refused_before_dialling(
    silent_callee: SilentCallee,
    bridge: Callable[..., BridgeProcess],
    tls_rtmp_server: NginxRtmp,
    publish_log: PublishLog,
) -> None:
    """Verification is on by default; the self-signed certificate is in no trust store."""
    spec = call_spec(silent_callee.uri, tls_rtmp_server, "secure", rtmpReconnectTimeoutSeconds=1)
    spec["rtmpUrl"] = tls_rtmp_server.tls_url
    process = bridge(spec)
    assert process.wait(20) == EXIT_RTMP
    final = process.final
    assert (final["phase"], final["reason"]) == ("Failed", "RtmpFailed")
    assert final["stream"]["state"] == "FAILED"
    assert f"certificate of 127.0.0.1:{tls_rtmp_server.tls_port} not trusted" in final["message"]
    assert "self-signed certificate" in final["message"]
    assert "secure" not in final["message"]  # the stream key stays out of it
    assert publish_log.notifications == []
    assert silent_callee.received_nothing()
    assert relays() == {}


def test_rtmps_relay_ends_with_a_killed_bridge(
    tone_peer: Callable[..., SippPeer],
    bridge: Callable[..., BridgeProcess],
    tls_rtmp_server: NginxRtmp,
) -> None:
    """The relay lives on the bridge's stdin pipe: SIGKILL to the bridge leaves nothing behind."""
    peer = tone_peer(20.0)
    spec = call_spec(peer.uri, tls_rtmp_server, "killed", rtmpUrl=tls_rtmp_server.tls_url)
    process = bridge(spec, env=tls_rtmp_server.trusting_env)
    process.wait_for(lambda line: line["call"]["state"] == "ESTABLISHED", 15)
    (relay,) = relays()
    assert process.process is not None
    os.kill(process.process.pid, signal.SIGKILL)
    process.wait(5)
    deadline = time.monotonic() + 5
    while relay in relays() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert relay not in relays()


def test_rtmps_to_a_server_without_tls_fails_within_the_attempts_timeout(
    silent_callee: SilentCallee,
    bridge: Callable[..., BridgeProcess],
    rtmp_server: NginxRtmp,
) -> None:
    """nginx-rtmp takes the TLS ClientHello for the start of an RTMP handshake and waits for
    the rest: the TLS handshake never completes, and the attempt ends at its timeout."""
    spec = call_spec(silent_callee.uri, rtmp_server, "plain", rtmpReconnectTimeoutSeconds=1)
    spec["rtmpUrl"] = rtmp_server.url.replace("rtmp://", "rtmps://")
    process = bridge(spec)
    assert process.wait(20) == EXIT_RTMP
    assert process.final["reason"] == "RtmpFailed"
    address = f"{rtmp_server.host}:{rtmp_server.port}"
    assert f"no TLS connection to {address} within" in process.final["message"]
    assert silent_callee.received_nothing()
    assert rtmp_server.recordings_of("plain") == []
