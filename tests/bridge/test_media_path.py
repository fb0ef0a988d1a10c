"""What the bridge sends on the media path, seen on the wire: silence when ``hasAudio`` is true
(sendrecv, as in the seed), nothing but NAT keep-alives when it is false (recvonly)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.conftest import call_spec
from tests.support.bridge_process import BridgeProcess
from tests.support.capture import LoopbackCapture
from tests.support.nginx_rtmp import NginxRtmp
from tests.support.ports import free_udp_pair
from tests.support.recording import measure_recording
from tests.support.sipp import SippPeer

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
