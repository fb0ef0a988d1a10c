"""The media path on the wire: silence when ``hasAudio`` is true (sendrecv, as in the seed),
nothing but NAT keep-alives when it is false (recvonly); media taken from the far end only."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from siprtmp_bridge.demo.analysis import decode_audio
from tests.conftest import call_spec
from tests.support.bridge_process import BridgeProcess
from tests.support.capture import LoopbackCapture
from tests.support.nginx_rtmp import NginxRtmp
from tests.support.ports import free_udp_pair
from tests.support.recording import measure_recording
from tests.support.rtp_pcap import PCMU, encode_payload, rtp_audio_packets, tone_pcm
from tests.support.sipp import SippPeer
from tests.support.spectrum import magnitude_spectrum

KEEPALIVE_PAYLOAD_TYPE = 20


def test_listen_only_call_keeps_its_nat_binding_open_and_still_receives_everything(
    tone_peer: Callable[..., SippPeer],
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
    tmp_path: Path,
) -> None:
    peer = tone_peer(4.0)
    rtp_port = free_udp_pair()
    spec = call_spec(
        peer.uri,
        rtmp_server,
        "keepalive",
        hasAudio=False,
        nat={
            "bindAddress": "127.0.0.1",
            "rtpPortMin": rtp_port,
            "rtpPortMax": rtp_port + 1,
            "keepAliveSeconds": 1,
        },
    )
    with LoopbackCapture(tmp_path / "rtp.pcap", f"udp port {rtp_port}") as capture:
        process = bridge(spec)
        assert process.wait(30) == 0, process.stderr_text[-2000:]
    sent = [p for p in capture.rtp(rtp_port) if p.source_port == rtp_port]
    assert {p.destination_port for p in sent} == {peer.media_port}
    assert {p.payload_type for p in sent} == {KEEPALIVE_PAYLOAD_TYPE}
    assert len(sent) >= 3  # one a second over a 4.5 s call
    assert all(p.payload == b"" for p in sent)
    received = [p for p in capture.rtp(rtp_port) if p.destination_port == rtp_port]
    assert len(received) >= 195  # SIPp's 4 s of 20 ms packets
    # The keep-alive socket shares the port but takes none of the far end's RTP.
    (recording,) = rtmp_server.recordings_of("keepalive")
    assert measure_recording(recording).tone_seconds > 3.8
    assert "a=recvonly" in peer.messages()


def test_send_receive_call_sends_real_silence(
    tone_peer: Callable[..., SippPeer],
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
    tmp_path: Path,
) -> None:
    peer = tone_peer(3.0, direction="sendrecv")
    rtp_port = free_udp_pair()
    spec = call_spec(
        peer.uri,
        rtmp_server,
        "sendrecv",
        hasAudio=True,
        nat={
            "bindAddress": "127.0.0.1",
            "rtpPortMin": rtp_port,
            "rtpPortMax": rtp_port + 1,
        },
    )
    with LoopbackCapture(tmp_path / "rtp.pcap", f"udp port {rtp_port}") as capture:
        process = bridge(spec)
        assert process.wait(30) == 0, process.stderr_text[-2000:]
    sent = [p for p in capture.rtp(rtp_port) if p.source_port == rtp_port]
    media = [p for p in sent if p.payload_type == 0]
    assert len(media) >= 140  # 50 packets a second for ~3.5 s
    assert all(set(p.payload) <= {0xFF, 0x7F} for p in media)  # G.711 µ-law silence
    assert all(len(p.payload) == 160 for p in media)
    assert "a=sendrecv" in peer.messages()
    (recording,) = rtmp_server.recordings_of("sendrecv")
    assert abs(measure_recording(recording).frequency_hz - 1000) < 5


def test_bridges_sharing_an_rtp_port_window_each_get_their_own_call(
    tone_peer: Callable[..., SippPeer],
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
) -> None:
    """The keep-alive shares pjsua's RTP port, yet no two bridges may ever share one."""
    window = free_udp_pair()
    peers = [tone_peer(3.0) for _ in range(3)]
    nat = {"bindAddress": "127.0.0.1", "rtpPortMin": window, "rtpPortMax": window + 40}
    processes = [
        bridge(call_spec(peer.uri, rtmp_server, f"shared-{index}", nat=nat))
        for index, peer in enumerate(peers)
    ]
    for process in processes:
        assert process.wait(30) == 0, process.stderr_text[-2000:]
    for index in range(len(peers)):
        (recording,) = rtmp_server.recordings_of(f"shared-{index}")
        assert measure_recording(recording).tone_seconds > 2.8


def test_audio_sent_by_anyone_but_the_far_end_never_reaches_the_stream(
    tone_peer: Callable[..., SippPeer],
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
    tmp_path: Path,
) -> None:
    """pjmedia takes RTP from the far end only: a third party (another address, 127.0.0.2)
    sending a 2.5 kHz tone to the bridge's RTP port for the whole call is not heard."""
    peer = tone_peer(4.0)  # 1 kHz
    rtp_port = free_udp_pair()
    nat = {"bindAddress": "127.0.0.1", "rtpPortMin": rtp_port, "rtpPortMax": rtp_port + 1}
    process = bridge(call_spec(peer.uri, rtmp_server, "stranger", nat=nat))
    process.wait_for(lambda line: line["phase"] == "Streaming", 10)
    payload = encode_payload(PCMU, tone_pcm(2500.0, 3.0, PCMU.sample_rate))
    stranger_packets = rtp_audio_packets(PCMU, payload, ssrc=0x0BADF00D)
    seen = f"udp dst port {rtp_port} and src host 127.0.0.2"
    with (
        LoopbackCapture(tmp_path / "stranger.pcap", seen) as capture,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger,
    ):
        stranger.bind(("127.0.0.2", 0))
        for _, _, packet in stranger_packets:
            stranger.sendto(packet, ("127.0.0.1", rtp_port))
            time.sleep(0.02)
    # They reached the bridge's RTP port (the test is not vacuous; the capture may start a
    # packet late).
    assert len(capture.udp_payloads("udp")) > 0.9 * len(stranger_packets)
    assert process.wait(20) == 0
    assert peer.wait(10) == 0
    (recording,) = rtmp_server.recordings_of("stranger")
    audio = decode_audio(str(recording))
    spectrum, frequencies = magnitude_spectrum(audio.samples, audio.sample_rate)

    def energy(hz: float) -> float:
        return float(spectrum[np.abs(frequencies - hz) < 20].sum())

    assert abs(measure_recording(recording).frequency_hz - 1000) < 5
    assert energy(2500) < energy(1000) / 100  # the stranger's tone is not in the stream
