"""RTMPS as CDNs terminate it (nginx's stream module in front of nginx-rtmp, a self-signed
certificate): the server's certificate is verified by the bridge's relay process unless the
spec turns verification off, and the server is told what a direct client tells it."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import pytest

from siprtmp_bridge.demo.ports import free_port
from siprtmp_bridge.rtmp.rtmps_relay import SETUP_TIMEOUT_SECONDS, USAGE
from siprtmp_bridge.rtmp.rtmps_tunnel import RELAY_MODULE, RtmpsTunnel
from tests.conftest import call_spec
from tests.support.bridge_process import BridgeProcess
from tests.support.certificates import self_signed
from tests.support.nginx_rtmp import NginxRtmp
from tests.support.processes import relays_of
from tests.support.publish_log import PublishLog
from tests.support.recording import ffprobe, measure_recording
from tests.support.silent_callee import SilentCallee
from tests.support.sipp import SippPeer

EXIT_RTMP = 7


def gone(pids: set[int], timeout: float = 5) -> bool:
    deadline = time.monotonic() + timeout
    while any(Path(f"/proc/{pid}").exists() for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not any(Path(f"/proc/{pid}").exists() for pid in pids)


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
    relays = relays_of(process.process.pid)
    assert len(relays) == (1 if verify else 0)

    assert process.wait(30) == 0, process.stderr_text[-2000:]
    assert process.final["stream"]["url"] == f"{tls_rtmp_server.tls_url}/***"
    assert gone(relays)
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


def publishing_twice(
    peer: SippPeer, bridge: Callable[..., BridgeProcess], server: NginxRtmp
) -> BridgeProcess:
    """A call to ``peer`` published over RTMPS to ``server`` as "one" and "two", both on the
    air."""
    spec = call_spec(peer.uri, server, "one", rtmpUrl=server.tls_url)
    spec["destinations"] = [{"rtmpUrl": server.tls_url, "rtmpStream": "two"}]
    process = bridge(spec, env=server.trusting_env)
    process.wait_for(
        lambda line: [d["state"] for d in line["destinations"]] == ["PUBLISHING", "PUBLISHING"],
        15,
    )
    return process


def test_a_calls_rtmps_destinations_share_one_relay_process(
    tone_peer: Callable[..., SippPeer],
    bridge: Callable[..., BridgeProcess],
    tls_rtmp_server: NginxRtmp,
    publish_log: PublishLog,
) -> None:
    """Two RTMPS destinations, one relay process (a process each cost Python's start-up and
    its own wake-ups), each destination on its own verified connection and told its own
    server's address; the relay ends with the call."""
    process = publishing_twice(tone_peer(4.0), bridge, tls_rtmp_server)
    assert process.process is not None
    relays = relays_of(process.process.pid)
    assert len(relays) == 1
    assert process.wait(30) == 0, process.stderr_text[-2000:]
    assert gone(relays)
    assert publish_log.tc_urls() == [tls_rtmp_server.tls_url] * 2
    for stream in ("one", "two"):
        (recording,) = tls_rtmp_server.recordings_of(stream)
        tone = measure_recording(recording)
        assert abs(tone.frequency_hz - 1000) < 5, stream
        assert tone.tone_seconds > 3.0, (stream, tone)


def test_a_killed_relay_is_started_again_and_every_destination_reconnects(
    tone_peer: Callable[..., SippPeer],
    bridge: Callable[..., BridgeProcess],
    tls_rtmp_server: NginxRtmp,
) -> None:
    """The destinations share the relay's fate, and its recovery: each connection through it
    fails, each publisher reconnects within its budget, the first to ask starts a new relay."""
    process = publishing_twice(tone_peer(14.0), bridge, tls_rtmp_server)
    assert process.process is not None
    (relay,) = relays_of(process.process.pid)
    time.sleep(2)
    os.kill(relay, signal.SIGKILL)
    process.wait_for(
        lambda line: (
            [(d["state"], d["reconnects"]) for d in line["destinations"]] == [("PUBLISHING", 1)] * 2
        ),
        15,
    )
    (again,) = relays_of(process.process.pid)
    assert again != relay
    assert process.wait(30) == 0, process.stderr_text[-2000:]
    assert [d["reconnects"] for d in process.final["destinations"]] == [1, 1]
    for stream in ("one", "two"):
        before, after = tls_rtmp_server.recordings_of(stream)
        assert measure_recording(before).tone_seconds > 1.5, stream
        assert measure_recording(after).tone_seconds > 5.0, stream


def test_a_destination_that_ends_leaves_the_shared_relay_to_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A destination removed from a live call closes its tunnel while another publishes through
    the same relay process: that one's stream goes on to its end, and the relay stops only
    when the last tunnel closes."""
    server = NginxRtmp(tmp_path / "nginx", free_port(), tls_port=free_port()).start()
    monkeypatch.setenv("SSL_CERT_FILE", str(server.certificate))
    removed, kept = RtmpsTunnel(f"{server.tls_url}/removed"), RtmpsTunnel(f"{server.tls_url}/kept")
    try:
        first = _aac_output(removed.open(5))
        second = _aac_output(kept.open(5))
        relays = relays_of(os.getpid())
        assert len(relays) == 1
        _mux_tone(first, 0.5)
        first.close()
        removed.close()
        assert relays_of(os.getpid()) == relays
        _mux_tone(second, 2.0)
        second.close()
        kept.close()
        assert gone(relays, timeout=1)
    finally:
        removed.close()
        kept.close()
        server.stop()
    assert server.published() == ["removed", "kept"]
    (recording,) = server.recordings_of("kept")
    assert float(ffprobe(recording)["format"]["duration"]) > 1.8


def _aac_output(url: str) -> av.container.OutputContainer:
    container = av.open(url, mode="w", format="flv")
    stream = container.add_stream("aac", rate=48000)
    stream.layout = "mono"
    container.start_encoding()
    return container


def _mux_tone(container: av.container.OutputContainer, seconds: float) -> None:
    """``seconds`` of a 1 kHz tone, encoded and muxed as fast as FFmpeg takes it."""
    (stream,) = container.streams.audio
    samples = np.sin(2 * np.pi * 1000 * np.arange(int(48000 * seconds)) / 48000)
    frame = av.AudioFrame.from_ndarray(
        (samples * 8000).astype(np.int16).reshape(1, -1), format="s16", layout="mono"
    )
    frame.sample_rate = 48000
    for packet in [*stream.encode(frame), *stream.encode(None)]:
        container.mux(packet)


@pytest.mark.parametrize(
    ("issued_for", "trusted", "reason"),
    [
        ("127.0.0.1", False, "self-signed certificate"),
        ("10.0.0.1", True, "IP address mismatch"),
    ],
    ids=["untrusted issuer", "trusted but for another address"],
)
def test_rtmps_server_whose_certificate_does_not_hold_is_refused_before_dialling(
    issued_for: str,
    trusted: bool,
    reason: str,
    silent_callee: SilentCallee,
    bridge: Callable[..., BridgeProcess],
    tmp_path: Path,
    publish_log: PublishLog,
) -> None:
    """Verification is on by default: the chain must lead to a trusted CA, and the certificate
    must name the address connected to."""
    server = NginxRtmp(
        tmp_path / "nginx",
        free_port(),
        tls_port=free_port(),
        on_publish=publish_log.url,
        certificate=self_signed(tmp_path, issued_for),
    ).start()
    try:
        spec = call_spec(silent_callee.uri, server, "secure", rtmpReconnectTimeoutSeconds=1)
        spec["rtmpUrl"] = server.tls_url
        process = bridge(spec, env=server.trusting_env if trusted else {})
        assert process.wait(20) == EXIT_RTMP
    finally:
        server.stop()
    final = process.final
    assert (final["phase"], final["reason"]) == ("Failed", "RtmpFailed")
    assert final["stream"]["state"] == "FAILED"
    assert f"certificate of 127.0.0.1:{server.tls_port} not trusted: {reason}" in final["message"]
    assert "rtmpTlsVerify: false" in final["message"]  # and what to do about it
    assert "secure" not in final["message"]  # the stream key stays out of it
    assert publish_log.notifications == []
    assert silent_callee.received_nothing()


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
    assert process.process is not None
    relays = relays_of(process.process.pid)
    assert len(relays) == 1
    os.kill(process.process.pid, signal.SIGKILL)
    process.wait(5)
    assert gone(relays)


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


def test_every_stream_key_length_publishes_through_the_relay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FFmpeg's own RTMP client through the relay, one connection per key length: the rewritten
    connect must not break the header compression of what follows it (with this FFmpeg and app
    ``live``, a 111-character key made releaseStream as long as the original connect, and every
    attempt failed). No on_publish notification here: its HTTP server would be a thread of this
    process, which PyAV's open holds the GIL of."""
    server = NginxRtmp(tmp_path / "nginx", free_port(), tls_port=free_port()).start()
    monkeypatch.setenv("SSL_CERT_FILE", str(server.certificate))
    keys = ["k" * length for length in range(90, 131)]
    try:
        for key in keys:
            tunnel = RtmpsTunnel(f"{server.tls_url}/{key}")
            try:
                container = av.open(tunnel.open(5), mode="w", format="flv")
                container.add_stream("aac", rate=48000)
                container.start_encoding()
                container.close()
            finally:
                tunnel.close()
    finally:
        server.stop()
    assert server.published() == keys


def test_a_server_that_goes_quiet_during_set_up_costs_a_failed_attempt_not_a_frozen_bridge(
    silent_callee: SilentCallee, bridge: Callable[..., BridgeProcess], tmp_path: Path
) -> None:
    """TLS and the RTMP handshake complete, then the server answers nothing: FFmpeg waits
    holding the GIL, and the relay ends the attempt after its set-up timeout."""
    with QuietRtmpsServer(tmp_path) as server:
        spec = call_spec(silent_callee.uri, NginxRtmp(tmp_path, 1), "quiet")
        spec.update(rtmpUrl=server.url, rtmpReconnectTimeoutSeconds=1)
        started = time.monotonic()
        process = bridge(spec, env={"SSL_CERT_FILE": str(server.certificate)})
        assert process.wait(40) == EXIT_RTMP
        elapsed = time.monotonic() - started
    assert server.handshakes >= 1
    assert elapsed < SETUP_TIMEOUT_SECONDS + 12
    assert process.final["reason"] == "RtmpFailed"
    assert silent_callee.received_nothing()


def test_the_relay_started_by_hand_says_what_it_needs() -> None:
    """Its stdin must be the socket the bridge hands destinations over: a pipe gets one line and
    exit status 2, not a traceback."""
    started = subprocess.run(
        [sys.executable, "-P", "-m", RELAY_MODULE],
        input="{}\n",
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert (started.returncode, started.stderr) == (2, USAGE + "\n")


class QuietRtmpsServer:
    """Accepts TLS, answers the RTMP handshake, then reads and says nothing."""

    def __init__(self, directory: Path) -> None:
        self.certificate, key = self_signed(directory)
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(self.certificate, key)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"rtmps://127.0.0.1:{self.listener.getsockname()[1]}/live"
        self.handshakes = 0
        self._connections: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                raw, _ = self.listener.accept()
                conn = self.context.wrap_socket(raw, server_side=True)
                self._connections.append(conn)
                c0c1 = b""
                while len(c0c1) < 1537:
                    c0c1 += conn.recv(1537 - len(c0c1))
                conn.sendall(b"\x03" + bytes(1536) + c0c1[1:])
                self.handshakes += 1
            except OSError:
                if self.listener.fileno() == -1:
                    return

    def __enter__(self) -> QuietRtmpsServer:
        return self

    def __exit__(self, *_: object) -> None:
        self.listener.close()
        for conn in self._connections:
            conn.close()


def test_a_connection_the_bridge_did_not_prepare_is_dialled_on_arrival(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another local process takes the verified connection prepared for FFmpeg (as it could
    under host networking); FFmpeg's own connection is then dialled and verified when it
    arrives, and publishes (the path FFmpeg's in-open reconnects take too)."""
    server = NginxRtmp(tmp_path / "nginx", free_port(), tls_port=free_port()).start()
    monkeypatch.setenv("SSL_CERT_FILE", str(server.certificate))
    tunnel = RtmpsTunnel(f"{server.tls_url}/taken")
    try:
        url = tunnel.open(5)
        port = int(url.split(":")[2].split("/")[0])
        with socket.create_connection(("127.0.0.1", port)):  # takes what was prepared
            time.sleep(0.3)
            container = av.open(url, mode="w", format="flv")
            container.add_stream("aac", rate=48000)
            container.start_encoding()
            container.close()
    finally:
        tunnel.close()
        server.stop()
    assert server.published() == ["taken"]
