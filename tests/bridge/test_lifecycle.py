"""A live call's life: stopping it by signal, the RTMP server restarting under it, its status
served over HTTP, and secrets kept out of everything it prints."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from siprtmp_bridge.demo.ports import free_port
from tests.conftest import call_spec
from tests.support.bridge_process import BridgeProcess
from tests.support.http import http_get
from tests.support.nginx_rtmp import NginxRtmp
from tests.support.recording import ffprobe, measure_recording
from tests.support.sipp import SippPeer


def streaming(line: dict[str, object]) -> bool:
    return line["phase"] == "Streaming"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_mid_call_sends_bye_and_closes_the_stream_cleanly(
    signum: int,
    tone_peer: Callable[..., SippPeer],
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
) -> None:
    peer = tone_peer(10.0, "uas_tone_wait_bye.xml")
    process = bridge(call_spec(peer.uri, rtmp_server, "stopped"))
    process.wait_for(streaming, 10)
    time.sleep(2)
    signalled = time.monotonic()
    process.signal(signum)
    assert process.wait(10) == 0
    assert time.monotonic() - signalled < 5
    final = process.final
    assert final["phase"] == "Succeeded"
    assert final["reason"] == "Stopped"
    assert "Terminating" in process.phases()
    assert final["stream"]["state"] == "UNPUBLISHED"
    assert peer.wait(10) == 0  # SIPp's scenario completes only when our BYE arrives
    assert "BYE sip:" in peer.messages()
    (recording,) = rtmp_server.recordings_of("stopped")
    assert float(ffprobe(recording)["format"]["duration"]) > 1.5
    assert abs(measure_recording(recording).frequency_hz - 1000) < 5
    termination = json.loads(process.termination_log.read_text())
    assert termination["reason"] == "Stopped"
    assert termination["exitCode"] == 0


@pytest.mark.parametrize("tls", [False, True], ids=["rtmp", "rtmps-verified"])
def test_rtmp_server_restart_mid_call_resumes_the_stream_and_keeps_the_call(
    tls: bool,
    tone_peer: Callable[..., SippPeer],
    bridge: Callable[..., BridgeProcess],
    request: pytest.FixtureRequest,
) -> None:
    """Over RTMPS each reconnect is a new verified connection through the relay."""
    rtmp_server: NginxRtmp = request.getfixturevalue("tls_rtmp_server" if tls else "rtmp_server")
    peer = tone_peer(9.0)
    spec = call_spec(peer.uri, rtmp_server, "restarted")
    if tls:
        spec["rtmpUrl"] = rtmp_server.tls_url
    process = bridge(spec, env=rtmp_server.trusting_env if tls else {})
    process.wait_for(streaming, 10)
    time.sleep(2)
    rtmp_server.stop()
    process.wait_for(lambda line: line["phase"] == "Reconnecting", 10)
    time.sleep(1)
    rtmp_server.start()
    process.wait_for(
        lambda line: line["phase"] == "Streaming" and line["stream"]["reconnects"] == 1, 10
    )
    assert process.wait(30) == 0
    final = process.final
    assert final["reason"] == "RemoteHangup"  # the call itself was never interrupted
    assert final["stream"]["reconnects"] == 1
    assert peer.wait(10) == 0
    first, second = rtmp_server.recordings_of("restarted")
    before, after = ffprobe(first), ffprobe(second)
    first_end = float(before["streams"][0]["start_time"]) + float(before["format"]["duration"])
    resumed_at = float(after["streams"][0]["start_time"])
    # Continuous timestamps: the new connection carries on the stream's clock, not from zero.
    assert resumed_at > 1.0
    assert abs(resumed_at - first_end) < 0.3
    tones = [measure_recording(first), measure_recording(second)]
    assert all(abs(tone.frequency_hz - 1000) < 5 for tone in tones)
    # What was encoded during the outage was queued and sent after it: no audio is lost.
    assert sum(tone.tone_seconds for tone in tones) > 8.7


def test_status_metrics_and_probes_are_served_and_secrets_never_appear(
    tone_peer: Callable[..., SippPeer],
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
) -> None:
    peer = tone_peer(4.0)
    stream_key = "live-key-5f2c9a71"
    password = "Sup3r-Secret-Pa55"
    port = free_port()
    spec = call_spec(
        peer.uri,
        rtmp_server,
        stream_key,
        connection={"sipLogin": "bridge", "sipPassword": password},
    )
    process = bridge(spec, status_port=port)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and http_get(f"{base}/healthz")[0] != 200:
        time.sleep(0.1)
    assert http_get(f"{base}/healthz")[0] == 200
    process.wait_for(streaming, 10)
    time.sleep(1.5)
    code, body = http_get(f"{base}/status")
    assert code == 200
    status = json.loads(body)
    assert status["phase"] == "Streaming"
    assert status["stream"]["url"] == f"{rtmp_server.url}/***"
    assert http_get(f"{base}/readyz")[0] == 200
    code, metrics = http_get(f"{base}/metrics")
    assert code == 200
    packets = next(
        line
        for line in metrics.splitlines()
        if line.startswith("siprtmp_rtp_packets_received_total")
    )
    assert float(packets.split()[-1]) > 20
    assert 'siprtmp_call_state{state="ESTABLISHED"} 1.0' in metrics
    assert process.wait(20) == 0
    everything = "\n".join(
        [
            json.dumps(process.lines),
            process.stderr_text,
            body,
            metrics,
            process.termination_log.read_text(),
        ]
    )
    assert stream_key not in everything
    assert password not in everything
    assert peer.wait(10) == 0


@pytest.mark.parametrize("spec_format", ["json", "yaml"])
def test_the_seeds_rest_body_is_accepted_verbatim(
    spec_format: str,
    tone_peer: Callable[..., SippPeer],
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
) -> None:
    peer = tone_peer(2.0)
    body = {  # the seed article's REST body shape: strings everywhere
        "callId": "R2fhkll5Sw3lK",
        "callee": "bridge-test",
        "rtmpUrl": rtmp_server.url,
        "rtmpStream": "streamName",
        "hasAudio": "false",
        "hasVideo": "false",
        "connection": {
            "sipLogin": "myusername",
            "sipPassword": "MyPasswordPassword1",
            "sipAuthenticationName": "myusername",
            "sipDomain": "127.0.0.1",
            "sipPort": str(peer.port),
            "sipRegisterRequired": "false",
            "appKey": "callApp",
        },
        "nat": {"bindAddress": "127.0.0.1"},
    }
    process = bridge(body, spec_format=spec_format)
    assert process.wait(20) == 0
    assert process.final["callId"] == "R2fhkll5Sw3lK"
    assert process.final["reason"] == "RemoteHangup"
    assert f"INVITE sip:bridge-test@127.0.0.1:{peer.port} SIP/2.0" in peer.messages()
    (recording,) = rtmp_server.recordings_of("streamName")
    assert abs(measure_recording(recording).frequency_hz - 1000) < 5


def test_stderr_redirected_to_a_file_is_appended_to_never_truncated(
    tone_peer: Callable[..., SippPeer],
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
    tmp_path: Path,
) -> None:
    """`sip-rtmp-bridge run ... 2>>bridge.log`: what the log held before the call stays."""
    peer = tone_peer(2.0)
    log = tmp_path / "bridge.log"
    earlier = "an earlier run's last line\n" * 40
    log.write_text(earlier)
    process = bridge(call_spec(peer.uri, rtmp_server, "appended"), stderr_file=log)
    assert process.wait(20) == 0
    written = log.read_bytes()
    assert written.startswith(earlier.encode())
    assert b"\0" not in written
    # pjsua's own log (it opens /dev/stderr itself) and the bridge's closing line both followed.
    after = written[len(earlier) :]
    assert b"sip_endpoint.c" in after
    assert after.endswith(b"sip-rtmp-bridge: RemoteHangup: the far end hung up\n")
    assert peer.wait(10) == 0
