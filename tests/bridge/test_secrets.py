"""No stream key, URL credential or SIP password in anything the bridge prints or serves, on
its normal end and on its failure paths (where PyAV's errors quote the publish URL).

The key is shaped as Facebook's (``name?s_bl=1&s_sc=SIGNATURE&s_sw=0``) with a fragment added:
each of ``?``, ``&`` and ``#`` once cut the key short of its redaction.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from siprtmp_bridge.demo.ports import free_port
from tests.conftest import call_spec
from tests.support.bridge_process import BridgeProcess
from tests.support.http import http_get
from tests.support.nginx_rtmp import NginxRtmp
from tests.support.sipp import SippPeer

KEY = "barstream?s_bl=1&s_sc=SEKRIT7731&s_sw=0#frag=FR4GTOKEN9"
URL_USER, URL_PASSWORD = "pubuser", "URLPASS9911"
SIP_PASSWORD = "Sip-Secret-Pa55"
#: The key, its secret-looking pieces and the other credentials: none may appear anywhere.
SECRETS = (
    KEY,
    "SEKRIT7731",
    "FR4GTOKEN9",
    "s_bl=1&s_sc",
    "barstream?",
    URL_PASSWORD,
    f"{URL_USER}:",
    SIP_PASSWORD,
)


def secret_spec(peer: SippPeer, rtmp_server: NginxRtmp, **extra: Any) -> dict[str, Any]:
    spec = call_spec(
        peer.uri,
        rtmp_server,
        KEY,
        connection={"sipLogin": "bridge", "sipPassword": SIP_PASSWORD},
        **extra,
    )
    spec["rtmpUrl"] = rtmp_server.url.replace("rtmp://", f"rtmp://{URL_USER}:{URL_PASSWORD}@")
    return spec


def status_body(port: int) -> str:
    code, body = http_get(f"http://127.0.0.1:{port}/status")
    assert code == 200
    return body


def everything(process: BridgeProcess, *served: str) -> str:
    """stdout, stderr, the termination message and what /status answered."""
    return "\n".join(
        [
            json.dumps(process.lines),
            process.stderr_text,
            process.termination_log.read_text(),
            *served,
        ]
    )


def assert_nothing_secret(text: str) -> None:
    shown = [secret for secret in SECRETS if secret in text]
    assert not shown, f"{shown} appeared in the bridge's output"


def test_a_normal_end_prints_no_secret(
    tone_peer: Callable[..., SippPeer],
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
) -> None:
    peer = tone_peer(3.0)
    port = free_port()
    process = bridge(secret_spec(peer, rtmp_server), status_port=port)
    process.wait_for(lambda line: line["phase"] == "Streaming", 10)
    served = status_body(port)
    assert process.wait(20) == 0
    assert process.final["reason"] == "RemoteHangup"
    # The key was used whole: nginx-rtmp let the publisher in under its name part.
    assert_nothing_secret(everything(process, served))
    assert "barstream" in rtmp_server.published()
    assert (
        json.loads(served)["stream"]["url"] == f"rtmp://***@127.0.0.1:{rtmp_server.port}/live/***"
    )


def test_an_rtmp_restart_mid_call_prints_no_secret(
    tone_peer: Callable[..., SippPeer],
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
) -> None:
    peer = tone_peer(7.0)
    port = free_port()
    process = bridge(secret_spec(peer, rtmp_server), status_port=port)
    process.wait_for(lambda line: line["phase"] == "Streaming", 10)
    time.sleep(1.5)
    rtmp_server.stop()
    process.wait_for(lambda line: line["phase"] == "Reconnecting", 10)
    during = status_body(port)
    rtmp_server.start()
    process.wait_for(
        lambda line: line["phase"] == "Streaming" and line["stream"]["reconnects"] == 1, 10
    )
    assert process.wait(30) == 0
    assert_nothing_secret(everything(process, during))
    # The failure path ran: PyAV's error, which quotes the publish URL, was printed, masked.
    assert "RTMP write failed" in process.stderr_text
    assert "/live/***" in process.stderr_text


def test_rtmp_failed_with_the_server_down_prints_no_secret(
    tone_peer: Callable[..., SippPeer],
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
) -> None:
    peer = tone_peer(3.0)
    rtmp_server.stop()
    process = bridge(secret_spec(peer, rtmp_server, rtmpReconnectTimeoutSeconds=1))
    assert process.wait(20) == 7
    assert_nothing_secret(everything(process))
    final = process.final
    assert final["reason"] == "RtmpFailed"
    assert final["message"].startswith(
        f"cannot publish to rtmp://***@127.0.0.1:{rtmp_server.port}/live/***: "
    )
