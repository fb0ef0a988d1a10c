"""DTMF in a live call, proven at the far end: tshark decodes the RFC 2833 events the bridge
sent to SIPp's RTP port and reads the INFOs SIPp's scenario answered; the spec's
``dtmfAfterAnswer`` arrives in order with its pauses, timed by the capture; keys SIPp presses
(RTP events and an INFO) are counted in the bridge's status and metrics."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import pytest

from siprtmp_bridge.demo.ports import free_port
from siprtmp_bridge.dtmf import ANSWER_SETTLE_SECONDS, KEY_DURATION_MS, KEY_INTERVAL_SECONDS
from siprtmp_contract.dtmf import PAUSE_SECONDS
from tests.conftest import call_spec
from tests.operator.k8s_harness import wait_for
from tests.support.bridge_process import BridgeProcess
from tests.support.capture import (
    LoopbackCapture,
    key_presses,
    pressed_keys,
    rfc2833_events,
    sip_info_keys,
)
from tests.support.http import http_get, post_dtmf
from tests.support.nginx_rtmp import NginxRtmp
from tests.support.rtp_pcap import PCMU, encode_payload, rtp_with_dtmf, tone_pcm, write_udp_pcap
from tests.support.sipp import SippPeer

#: The payload type of telephone-event in the bridge's offer (pjmedia's default): a far end
#: sends its events with it, whatever number its answer gives them.
OFFERED_EVENT_PAYLOAD_TYPE = 120


def info_signals(capture: LoopbackCapture, peer: SippPeer) -> str:
    return "".join(signal for _, signal, _ in sip_info_keys(capture, peer.port))


def capture_of(peer: SippPeer, path: Path) -> LoopbackCapture:
    return LoopbackCapture(path, f"udp port {peer.port} or udp port {peer.media_port}")


def hang_up(process: BridgeProcess, peer: SippPeer) -> None:
    process.signal()  # hang up: SIPp's scenario ends with our BYE
    assert process.wait(20) == 0
    assert peer.wait(10) == 0


def test_dtmf_reaches_the_far_end_as_rfc2833_events(
    tone_peer: Callable[..., SippPeer],
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
    tmp_path: Path,
) -> None:
    peer = tone_peer(8.0, "uas_dtmf.xml")
    port = free_port()
    spec = call_spec(peer.uri, rtmp_server, "dtmf", hasAudio=True)
    with capture_of(peer, tmp_path / "dtmf.pcap") as capture:
        process = bridge(spec, status_port=port)
        process.wait_for(lambda s: s["call"]["state"] == "ESTABLISHED", timeout=20)
        assert post_dtmf(port, {"dtmf": "1#9a"}) == (
            200,
            {"dtmf": "1#9A", "type": "RFC2833", "sent": True},
        )
        assert post_dtmf(port, {"dtmf": "12x"})[0] == 400
        assert post_dtmf(port, {"dtmf": "1", "type": "INBAND"}) == (
            400,
            {"error": "type: must be one of RFC2833, INFO, got 'INBAND'"},
        )
        code, answer = post_dtmf(port, {"digits": "1"})
        assert code == 400 and answer["error"].startswith("dtmf: is required"), answer
        # The bridge plays the keys out in real time, one every KEY_INTERVAL_SECONDS.
        wait_for(
            "the four keys on the wire",
            lambda: pressed_keys(capture, peer.media_port) == "1#9A",
            timeout=20,
            interval=0.5,
        )
        hang_up(process, peer)
    events = rfc2833_events(capture, peer.media_port)
    assert pressed_keys(capture, peer.media_port) == "1#9A", events
    assert events[-1].end, events  # the last key ended (end-of-event bit)
    assert sip_info_keys(capture, peer.port) == []


def test_dtmf_by_sip_info_sends_one_info_per_key(
    tone_peer: Callable[..., SippPeer],
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
    tmp_path: Path,
) -> None:
    """type INFO: one application/dtmf-relay INFO per key, in order, which SIPp's scenario
    receives and answers 200 (it would fail on a request it does not expect)."""
    peer = tone_peer(8.0, "uas_dtmf.xml")
    port = free_port()
    spec = call_spec(peer.uri, rtmp_server, "dtmf-info", hasAudio=True)
    with capture_of(peer, tmp_path / "info.pcap") as capture:
        process = bridge(spec, status_port=port)
        process.wait_for(lambda s: s["call"]["state"] == "ESTABLISHED", timeout=20)
        assert post_dtmf(port, {"dtmf": "1#9a", "type": "info"}) == (
            200,
            {"dtmf": "1#9A", "type": "INFO", "sent": True},
        )
        wait_for(
            "four INFOs at the far end",
            lambda: info_signals(capture, peer) == "1#9A",
            timeout=20,
            interval=0.5,
        )
        hang_up(process, peer)
    infos = sip_info_keys(capture, peer.port)
    assert [(signal, duration) for _, signal, duration in infos] == [
        (key, str(KEY_DURATION_MS)) for key in "1#9A"
    ]
    assert rfc2833_events(capture, peer.media_port) == []  # by INFO only


@pytest.mark.parametrize("method", ["RFC2833", "INFO"])
def test_dtmf_after_answer_enters_a_pin_with_its_pauses(
    method: str,
    tone_peer: Callable[..., SippPeer],
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
    tmp_path: Path,
) -> None:
    """A conference PIN: ``W12w3#`` arrives as 1, 2, 3, # with the pauses, timed from the
    capture's packets (the first key after the 200 OK, the settle and the W)."""
    peer = tone_peer(10.0, "uas_dtmf.xml")
    spec = call_spec(
        peer.uri,
        rtmp_server,
        f"pin-{method}",
        hasAudio=True,
        dtmfAfterAnswer="W12w3#",
        dtmfMethod=method,
    )

    def presses() -> list[tuple[float, str]]:
        if method == "INFO":
            return [(at, signal) for at, signal, _ in sip_info_keys(capture, peer.port)]
        return key_presses(rfc2833_events(capture, peer.media_port))

    with capture_of(peer, tmp_path / "pin.pcap") as capture:
        process = bridge(spec)
        wait_for("the PIN at the far end", lambda: len(presses()) >= 4, timeout=30, interval=0.5)
        hang_up(process, peer)
    answered = capture.fields(
        f'sip.Status-Code == 200 && sip.CSeq.method == "INVITE" && udp.srcport == {peer.port}',
        "frame.time_epoch",
    )
    keys = presses()
    assert "".join(key for _, key in keys) == "123#", keys
    times = [at for at, _ in keys]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    interval, w, big_w = KEY_INTERVAL_SECONDS, PAUSE_SECONDS["w"], PAUSE_SECONDS["W"]
    assert gaps == pytest.approx([interval, interval + w, interval], abs=0.06), gaps
    first_after_answer = times[0] - float(answered[0][0])
    assert first_after_answer == pytest.approx(ANSWER_SETTLE_SECONDS + big_w, abs=0.15)
    if method == "INFO":  # by the chosen method only
        assert rfc2833_events(capture, peer.media_port) == []
    else:
        assert sip_info_keys(capture, peer.port) == []


def test_dtmf_on_a_receive_only_call_goes_by_info_only(
    tone_peer: Callable[..., SippPeer],
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
    tmp_path: Path,
) -> None:
    """A recvonly call sends no RTP to carry RFC 2833 events; INFO needs only the dialog."""
    peer = tone_peer(6.0, "uas_dtmf.xml")
    port = free_port()
    with capture_of(peer, tmp_path / "recvonly.pcap") as capture:
        process = bridge(call_spec(peer.uri, rtmp_server, "recvonly"), status_port=port)
        process.wait_for(lambda s: s["call"]["state"] == "ESTABLISHED", timeout=20)
        code, answer = post_dtmf(port, {"dtmf": "5"})
        assert code == 409 and "hasAudio: false" in answer["error"]
        assert post_dtmf(port, {"dtmf": "5", "type": "INFO"})[0] == 200
        wait_for("the INFO", lambda: info_signals(capture, peer) == "5", timeout=10, interval=0.5)
        hang_up(process, peer)


def test_keys_from_the_far_end_are_counted_in_status_and_metrics(
    sipp: Callable[..., SippPeer],
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
    tmp_path: Path,
) -> None:
    """SIPp presses 4 and 2 as RFC 2833 events in its RTP, then 7 by INFO: the bridge's status
    counts three keys, last 4, 2, 7, and so does its metric."""
    pcap = tmp_path / "keys.pcap"
    tone = encode_payload(PCMU, tone_pcm(1000.0, 3.0, PCMU.sample_rate))
    presses = [(0.5, "4"), (1.2, "2")]
    write_udp_pcap(pcap, rtp_with_dtmf(PCMU, tone, presses, OFFERED_EVENT_PAYLOAD_TYPE))
    peer = sipp(
        "uas_sends_dtmf.xml",
        pcap=pcap,
        payload_type=0,
        codec="PCMU/8000",
        event_payload_type=OFFERED_EVENT_PAYLOAD_TYPE,
        info_after_ms=3500,
        info_key="7",
        wait_ms=30000,
    )
    port = free_port()
    with capture_of(peer, tmp_path / "received.pcap") as capture:
        process = bridge(
            call_spec(peer.uri, rtmp_server, "received", hasAudio=True), status_port=port
        )
        status = process.wait_for(lambda s: s["call"]["dtmfReceived"] >= 3, timeout=20)
        assert (status["call"]["dtmfReceived"], status["call"]["dtmfLastDigits"]) == (3, "427")
        code, metrics = http_get(f"http://127.0.0.1:{port}/metrics")
        assert code == 200 and "\nsiprtmp_dtmf_received_total 3.0\n" in metrics, metrics
        hang_up(process, peer)
    offer = capture.fields(
        f'sip.Method == "INVITE" && udp.dstport == {peer.port}', "sdp.media_attr"
    )
    assert f"rtpmap:{OFFERED_EVENT_PAYLOAD_TYPE} telephone-event/8000" in offer[0][0]
    assert pressed_keys(capture, peer.media_port) == ""  # the bridge sent none back
