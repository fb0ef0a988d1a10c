"""One call published to several RTMP servers: encoded once, each destination on its own
connection. Two real nginx-rtmp servers record; one is black-holed or stopped mid-call while
the other records on without a gap; the call fails only when every destination has."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from siprtmp_bridge.demo.ports import free_port
from siprtmp_bridge.rtmp.stall import STALL_SECONDS
from tests.bridge.test_call_failures import local_address
from tests.bridge.test_rtmp_faults import (
    EXIT_BOUND_SECONDS,
    EXIT_RTMP,
    assert_ended_rtmp_failed,
    black_hole,
    metric,
    publishing,
)
from tests.conftest import call_spec
from tests.support.bridge_process import BridgeProcess
from tests.support.http import http_get, post_json
from tests.support.nginx_rtmp import NginxRtmp
from tests.support.processes import relays_of
from tests.support.recording import measure_recording, tone_gaps
from tests.support.sipp import SippPeer

TONE_HZ = 1000


def destination_states(line: dict[str, Any]) -> list[str]:
    return [destination["state"] for destination in line["destinations"]]


def states_are(*states: str) -> Callable[[dict[str, Any]], bool]:
    return lambda line: destination_states(line) == list(states)


def assert_tone_without_gaps(recording: Path, seconds: float) -> None:
    """The tone, continuous, for about ``seconds`` (decoded from the server's own file)."""
    measured = measure_recording(recording)
    assert abs(measured.frequency_hz - TONE_HZ) < 5, measured
    assert measured.tone_seconds > seconds, measured
    assert tone_gaps(recording) == [], recording


@pytest.fixture
def second_server(tmp_path: Path) -> Iterator[NginxRtmp]:
    server = NginxRtmp(tmp_path / "second-nginx", free_port()).start()
    yield server
    server.stop()


def test_both_destinations_record_the_tone_and_each_shows_its_status(
    tone_peer: Callable[..., SippPeer],
    rtmp_server: NginxRtmp,
    second_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
) -> None:
    peer = tone_peer(6.0)
    spec = call_spec(peer.uri, rtmp_server, "first")
    spec["destinations"] = [{"rtmpUrl": second_server.url, "rtmpStream": "second?k=secret1"}]
    status_port = free_port()
    process = bridge(spec, status_port=status_port)
    process.wait_for(
        lambda line: publishing(line) and states_are("PUBLISHING", "PUBLISHING")(line), 15
    )
    time.sleep(1.5)  # the counters reach /metrics every 0.5 s
    _, metrics = http_get(f"http://127.0.0.1:{status_port}/metrics")
    assert process.wait(30) == 0
    final = process.final
    assert final["reason"] == "RemoteHangup", final
    destinations = final["destinations"]
    assert [d["id"] for d in destinations] == [0, 1]
    assert [d["url"] for d in destinations] == [
        f"{rtmp_server.url}/***",
        f"{second_server.url}/***",
    ]
    assert destination_states(final) == ["UNPUBLISHED", "UNPUBLISHED"]
    assert all(d["bytesSent"] > 10_000 for d in destinations), destinations
    assert final["stream"]["bytesSent"] == sum(d["bytesSent"] for d in destinations)
    assert metric(metrics, 'siprtmp_destination_bytes_sent_total{destination="1"}') > 0
    assert 'siprtmp_destination_state{destination="1",state="PUBLISHING"} 1.0' in metrics
    assert "secret1" not in process.stderr_text + str(process.lines) + metrics
    (first,) = rtmp_server.recordings_of("first")
    (second,) = second_server.recordings_of("second")
    for recording in (first, second):
        assert_tone_without_gaps(recording, 4.5)


@pytest.mark.parametrize("tls", [False, True], ids=["rtmp", "rtmps"])
def test_a_black_holed_destination_fails_alone_while_the_other_records_on(
    tls: bool,
    tone_peer: Callable[..., SippPeer],
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
    tmp_path: Path,
) -> None:
    """The held destination stalls, reconnects and spends its budget; the stream stays
    PUBLISHING, the other server's recording has no hole, the call ends normally. Over RTMPS
    both destinations go through the call's one relay process, where only the held one's
    connection stalls."""
    budget = 4
    seconds = 3 + STALL_SECONDS + budget + 6
    peer = tone_peer(seconds)
    with local_address() as host:
        held = NginxRtmp(
            tmp_path / "held-nginx", free_port(), free_port() if tls else None, host
        ).start()
        kept = (
            NginxRtmp(tmp_path / "kept-nginx", free_port(), free_port()).start()
            if tls
            else rtmp_server
        )
        try:
            spec = call_spec(peer.uri, kept, "kept", rtmpReconnectTimeoutSeconds=budget)
            spec["destinations"] = [{"rtmpUrl": held.url, "rtmpStream": "held"}]
            env = {}
            if tls:
                spec["rtmpUrl"], spec["destinations"][0]["rtmpUrl"] = kept.tls_url, held.tls_url
                env = trusting_both(tmp_path, held, kept)
            process = bridge(spec, env=env)
            process.wait_for(states_are("PUBLISHING", "PUBLISHING"), 15)
            assert process.process is not None
            assert len(relays_of(process.process.pid)) == (1 if tls else 0)
            time.sleep(2)
            with black_hole(host, held.tls_port or held.port):
                process.wait_for(states_are("PUBLISHING", "RECONNECTING"), STALL_SECONDS + 3)
                failed = process.wait_for(states_are("PUBLISHING", "FAILED"), budget + 8)
                assert failed["stream"]["state"] == "PUBLISHING"
                assert failed["phase"] == "Streaming"
                assert process.wait(seconds + 10) == 0
        finally:
            held.stop()
            if tls:
                kept.stop()
    final = process.final
    assert final["reason"] == "RemoteHangup", final
    assert final["stream"]["state"] == "UNPUBLISHED"
    assert final["stream"]["reconnects"] == 0  # the stream itself never went off the air
    kept_status, lost = final["destinations"]
    assert (kept_status["state"], kept_status["reconnects"]) == ("UNPUBLISHED", 0)
    assert (lost["state"], lost["reconnects"]) == ("FAILED", 1)
    assert lost["failure"]
    (recording,) = kept.recordings_of("kept")
    assert_tone_without_gaps(recording, seconds - 1.5)


def trusting_both(directory: Path, *servers: NginxRtmp) -> dict[str, str]:
    """A bridge's environment trusting each of ``servers``' certificates."""
    bundle = directory / "trusted.pem"
    bundle.write_text("".join(s.certificate.read_text() for s in servers if s.certificate))
    return {"SSL_CERT_FILE": str(bundle)}


def test_every_destination_failed_ends_the_call_rtmp_failed(
    tone_peer: Callable[..., SippPeer],
    rtmp_server: NginxRtmp,
    second_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
) -> None:
    budget = 3
    peer = tone_peer(60.0, "uas_tone_wait_bye.xml")
    spec = call_spec(peer.uri, rtmp_server, "a", rtmpReconnectTimeoutSeconds=budget)
    spec["destinations"] = [{"rtmpUrl": second_server.url, "rtmpStream": "b"}]
    process = bridge(spec)
    process.wait_for(states_are("PUBLISHING", "PUBLISHING"), 15)
    second_server.stop()
    one_down = process.wait_for(states_are("PUBLISHING", "FAILED"), budget + 8)
    assert one_down["phase"] == "Streaming"
    rtmp_server.stop()
    process.wait_for(lambda line: line["stream"]["state"] == "FAILED", budget + 8)
    assert process.wait(EXIT_BOUND_SECONDS + 10) == EXIT_RTMP
    final = assert_ended_rtmp_failed(process)
    assert destination_states(final) == ["FAILED", "FAILED"]
    assert "destination 0" in final["message"] and "destination 1" in final["message"]
    assert peer.wait(10) == 0


def test_destinations_are_added_and_removed_on_a_live_call(
    tone_peer: Callable[..., SippPeer],
    rtmp_server: NginxRtmp,
    second_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
) -> None:
    """POST /destinations: the new destination records the tone from when it joined, the
    removed one's recording ends there; the first destination records throughout."""
    peer = tone_peer(12.0)
    status_port = free_port()
    process = bridge(call_spec(peer.uri, rtmp_server, "whole"), status_port=status_port)
    process.wait_for(publishing, 15)
    time.sleep(2)
    added = [{"rtmpUrl": second_server.url, "rtmpStream": "joined?key=hidden1"}]
    code, answer = post_json(status_port, "/destinations", {"destinations": added})
    assert code == 200, answer
    assert [d["url"] for d in answer["destinations"]] == [
        f"{rtmp_server.url}/***",
        f"{second_server.url}/***",
    ]
    process.wait_for(states_are("PUBLISHING", "PUBLISHING"), 10)
    time.sleep(4)
    code, answer = post_json(status_port, "/destinations", {"destinations": []})
    assert code == 200, answer
    assert [d["id"] for d in answer["destinations"]] == [0]
    refused, problem = post_json(
        status_port, "/destinations", {"destinations": [{"rtmpUrl": "http://x/y"}]}
    )
    assert refused == 400 and "destinations[0]" in problem["error"], problem
    # The call's stream is audio-only, fixed when it was placed: YouTube's profile refused.
    youtube = [{"rtmpUrl": second_server.url, "rtmpStream": "yt", "profile": "youtube"}]
    refused, problem = post_json(status_port, "/destinations", {"destinations": youtube})
    assert refused == 400, problem
    assert problem["error"].startswith("spec.destinations[0].profile: is not met"), problem
    assert process.wait(30) == 0
    assert "hidden1" not in process.stderr_text + str(process.lines)
    (whole,) = rtmp_server.recordings_of("whole")
    assert_tone_without_gaps(whole, 11.0)
    (joined,) = second_server.recordings_of("joined")
    measured = measure_recording(joined)
    assert abs(measured.frequency_hz - TONE_HZ) < 5, measured
    assert 3.0 < measured.tone_seconds < 6.0, measured
