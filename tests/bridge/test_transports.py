"""SIP over TCP to SIPp, and over TLS to Kamailio (Debian's SIPp has no TLS), each call's tone
checked at the RTMP server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from siprtmp_bridge.demo.ports import free_port
from tests.conftest import call_spec
from tests.support.bridge_process import BridgeProcess
from tests.support.kamailio import Kamailio
from tests.support.nginx_rtmp import NginxRtmp
from tests.support.recording import measure_recording
from tests.support.sipp import SippPeer

USER, PASSWORD = "tls-user", "tls-secret-42"


def test_call_over_tcp(
    tone_peer: Callable[..., SippPeer],
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
) -> None:
    peer = tone_peer(2.0, transport="t1")
    process = bridge(
        call_spec(peer.uri, rtmp_server, "over-tcp", connection={"sipTransport": "tcp"})
    )
    assert process.wait(30) == 0, process.stderr_text[-3000:]
    assert peer.wait(10) == 0
    assert f"INVITE {peer.uri};transport=tcp SIP/2.0" in peer.messages()
    assert "TCP message received" in peer.messages()
    (recording,) = rtmp_server.recordings_of("over-tcp")
    assert abs(measure_recording(recording).frequency_hz - 1000) < 5


@pytest.fixture
def tls_proxy(
    tmp_path: Path, tone_peer: Callable[..., SippPeer]
) -> Iterator[tuple[Kamailio, SippPeer]]:
    far_end = tone_peer(2.0)
    proxy = Kamailio(
        tmp_path / "kamailio", free_port(), USER, PASSWORD, far_end.port, tls_port=free_port()
    ).start()
    yield proxy, far_end
    proxy.stop()


def tls_spec(
    proxy: Kamailio, rtmp: NginxRtmp, stream: str, **connection: object
) -> dict[str, object]:
    return call_spec(
        "bridge-test",
        rtmp,
        stream,
        callSetupTimeoutSeconds=5,
        connection={
            "sipDomain": "127.0.0.1",
            "sipPort": proxy.tls_port,
            "sipTransport": "tls",
            "sipLogin": USER,
            "sipPassword": PASSWORD,
            **connection,
        },
    )


def test_call_over_tls_with_digest_auth(
    tls_proxy: tuple[Kamailio, SippPeer],
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
) -> None:
    proxy, far_end = tls_proxy
    process = bridge(tls_spec(proxy, rtmp_server, "over-tls", sipTlsVerifyServer=False))
    assert process.wait(30) == 0, process.stderr_text[-3000:]
    assert (
        f"AUTHORIZED INVITE {USER} to sip:bridge-test@127.0.0.1:{proxy.tls_port};transport=tls"
        in proxy.text()
    )
    assert far_end.wait(10) == 0
    (recording,) = rtmp_server.recordings_of("over-tls")
    assert abs(measure_recording(recording).frequency_hz - 1000) < 5


def test_tls_verification_refuses_an_untrusted_certificate(
    tls_proxy: tuple[Kamailio, SippPeer],
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
) -> None:
    proxy, _ = tls_proxy
    process = bridge(tls_spec(proxy, rtmp_server, "untrusted"))  # verification on by default
    assert process.wait(30) == 8
    assert process.final["reason"] == "Unreachable"
    assert "AUTHORIZED" not in proxy.text()


@pytest.fixture
def named_tls_proxy(
    tmp_path: Path, tone_peer: Callable[..., SippPeer]
) -> Iterator[Callable[[str], tuple[Kamailio, SippPeer]]]:
    """Kamailio over TLS 1.2 presenting a certificate issued for a name, and a SIPp far end:
    trusting the certificate (SSL_CERT_FILE) trusts exactly that name."""
    started: list[tuple[Kamailio, SippPeer]] = []

    def start(name: str) -> tuple[Kamailio, SippPeer]:
        far_end = tone_peer(2.0)
        proxy = Kamailio(
            tmp_path / f"kamailio-{name}",
            free_port(),
            USER,
            PASSWORD,
            far_end.port,
            tls_port=free_port(),
            tls_method="TLSv1.2",
            tls_name=name,
        ).start()
        started.append((proxy, far_end))
        return proxy, far_end

    yield start
    for proxy, far_end in started:
        proxy.stop()
        far_end.stop()


def test_a_certificate_trusted_through_ssl_cert_file_and_issued_for_the_name(
    named_tls_proxy: Callable[[str], tuple[Kamailio, SippPeer]],
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
) -> None:
    """The server's certificate is verified against SSL_CERT_FILE (the chart's CA bundle in a
    pod, as for RTMPS), chain and name; the connection is TLS 1.2 (Kamailio's own log of it)."""
    proxy, far_end = named_tls_proxy("localhost")
    spec = tls_spec(proxy, rtmp_server, "tls-trusted", sipDomain="localhost")
    process = bridge(spec, env={"SSL_CERT_FILE": str(proxy.certificate)})
    assert process.wait(30) == 0, process.stderr_text[-2000:]
    assert f"AUTHORIZED INVITE {USER}" in proxy.text()
    assert "TLS TLSv1.2\n" in proxy.text()
    assert far_end.wait(10) == 0
    (recording,) = rtmp_server.recordings_of("tls-trusted")
    assert abs(measure_recording(recording).frequency_hz - 1000) < 5


def test_a_trusted_certificate_issued_for_another_name_is_refused(
    named_tls_proxy: Callable[[str], tuple[Kamailio, SippPeer]],
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
) -> None:
    proxy, _ = named_tls_proxy("sip.other-name.example")
    spec = tls_spec(proxy, rtmp_server, "misnamed", sipDomain="localhost")
    process = bridge(spec, env={"SSL_CERT_FILE": str(proxy.certificate)})
    assert process.wait(30) == 8, process.stderr_text[-2000:]
    assert process.final["reason"] == "Unreachable"
    assert "AUTHORIZED" not in proxy.text()
