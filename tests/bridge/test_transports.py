"""SIP over TCP to SIPp, and over TLS 1.2 and 1.3 to Kamailio (Debian's SIPp has no TLS), each
call's tone checked at the RTMP server."""

from __future__ import annotations

import re
import signal
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from siprtmp_bridge.demo.ports import free_port
from siprtmp_bridge.sip.tls_tunnel import SipTlsTunnel
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
) -> Iterator[Callable[..., tuple[Kamailio, SippPeer]]]:
    """Kamailio over TLS ``version`` alone presenting a certificate issued for a name, and a
    SIPp far end: trusting the certificate (SSL_CERT_FILE) trusts exactly that name."""
    started: list[tuple[Kamailio, SippPeer]] = []

    def start(
        name: str, version: str = "TLSv1.2", scenario: str = "uas_tone_hangup.xml"
    ) -> tuple[Kamailio, SippPeer]:
        far_end = tone_peer(2.0, scenario)
        proxy = Kamailio(
            tmp_path / f"kamailio-{name}",
            free_port(),
            USER,
            PASSWORD,
            far_end.port,
            tls_port=free_port(),
            tls_method=version,
            tls_name=name,
        ).start()
        started.append((proxy, far_end))
        return proxy, far_end

    yield start
    for proxy, far_end in started:
        proxy.stop()
        far_end.stop()


def refuses_tls_1_2(proxy: Kamailio) -> bool:
    """Whether the TLS port refuses a client that speaks TLS 1.2 at most (pjsua's OpenSSL)."""
    assert proxy.tls_port is not None
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    try:
        with (
            socket.create_connection(("127.0.0.1", proxy.tls_port), 5) as raw,
            context.wrap_socket(raw),
        ):
            return False
    except ssl.SSLError:
        return True


@pytest.mark.parametrize("version", ["TLSv1.2", "TLSv1.3"])
def test_a_certificate_trusted_through_ssl_cert_file_and_issued_for_the_name(
    named_tls_proxy: Callable[..., tuple[Kamailio, SippPeer]],
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
    version: str,
) -> None:
    """The server's certificate is verified against SSL_CERT_FILE (the chart's CA bundle in a
    pod, as for RTMPS), chain and name; the connection is the one TLS version the server takes
    (Kamailio's own log of it): 1.3 too, which pjsua's OpenSSL 1.0.2 lacks (sip/tls_relay.py)."""
    proxy, far_end = named_tls_proxy("localhost", version)
    assert refuses_tls_1_2(proxy) == (version == "TLSv1.3")
    spec = tls_spec(proxy, rtmp_server, "tls-trusted", sipDomain="localhost")
    process = bridge(spec, env={"SSL_CERT_FILE": str(proxy.certificate)})
    assert process.wait(30) == 0, process.stderr_text[-2000:]
    assert f"AUTHORIZED INVITE {USER}" in proxy.text()
    assert f"TLS {version}\n" in proxy.text()
    assert far_end.wait(10) == 0
    (recording,) = rtmp_server.recordings_of("tls-trusted")
    assert abs(measure_recording(recording).frequency_hz - 1000) < 5


@pytest.mark.parametrize("version", ["TLSv1.2", "TLSv1.3"])
def test_a_trusted_certificate_issued_for_another_name_is_refused(
    named_tls_proxy: Callable[..., tuple[Kamailio, SippPeer]],
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
    version: str,
) -> None:
    proxy, _ = named_tls_proxy("sip.other-name.example", version)
    spec = tls_spec(proxy, rtmp_server, "misnamed", sipDomain="localhost")
    started = time.monotonic()
    process = bridge(spec, env={"SSL_CERT_FILE": str(proxy.certificate)})
    assert process.wait(30) == 8, process.stderr_text[-2000:]
    assert time.monotonic() - started < 10  # refused at once, not after the setup timeout
    assert process.final["reason"] == "Unreachable"
    assert "AUTHORIZED" not in proxy.text()
    refusal = f"certificate of localhost:{proxy.tls_port} not trusted: Hostname mismatch"
    assert f"SIP over TLS: {refusal}" in process.stderr_text
    assert refusal in process.final["message"]  # the relay's reason, not pjsua's


def test_over_tls_1_3_the_far_end_sees_the_bridge_and_not_its_relay(
    named_tls_proxy: Callable[..., tuple[Kamailio, SippPeer]],
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
) -> None:
    """What reaches a TLS 1.3-only proxy is what pjsua would have sent it directly: no Route
    naming the relay, Via and Contact naming the address the connection comes from (a far end
    that reuses connections finds it by them). The far end's 200 goes back on that connection,
    and the bridge's ACK and BYE (it is stopped mid-call) take the proxy's Record-Route over
    the same relay, TLS 1.3 again."""
    proxy, far_end = named_tls_proxy("localhost", "TLSv1.3", "uas_tone_wait_bye.xml")
    assert refuses_tls_1_2(proxy)
    spec = tls_spec(proxy, rtmp_server, "tls13-bye", sipDomain="localhost")
    process = bridge(spec, env={"SSL_CERT_FILE": str(proxy.certificate)})
    process.wait_for(lambda line: line.get("stream", {}).get("state") == "PUBLISHING", 15)
    time.sleep(1.5)
    process.signal(signal.SIGTERM)
    assert process.wait(15) == 0, process.stderr_text[-2000:]
    assert far_end.wait(10) == 0  # its scenario completes only when the bridge's BYE arrives
    log = proxy.text()
    assert "TLS TLSv1.2" not in log
    invite = re.search(
        r"TLS INVITE FROM 127\.0\.0\.1:(\d+) VIA SIP/2\.0/TLS 127\.0\.0\.1:(\d+);rport[^ ]* "
        r"CONTACT <sip:tls-user@127\.0\.0\.1:(\d+);transport=TLS;ob> ROUTE <null>",
        log,
    )
    assert invite is not None, log[-3000:]
    assert invite.group(1) == invite.group(2) == invite.group(3)
    bye = re.search(r"TLS BYE FROM 127\.0\.0\.1:(\d+) .* ROUTE <sip:127\.0\.0\.1:(\d+);", log)
    assert bye is not None, log[-3000:]
    assert bye.group(2) == str(proxy.tls_port)
    assert "BYE sip:" in far_end.messages()
    (recording,) = rtmp_server.recordings_of("tls13-bye")
    assert abs(measure_recording(recording).frequency_hz - 1000) < 5


def test_a_registered_call_over_tls_1_3(
    named_tls_proxy: Callable[..., tuple[Kamailio, SippPeer]],
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
) -> None:
    """REGISTER (and the un-REGISTER at the end) take the relay too; every Contact the
    registrar is given names the connection the bridge is reached on."""
    proxy, far_end = named_tls_proxy("localhost", "TLSv1.3")
    spec = tls_spec(
        proxy, rtmp_server, "tls13-registered", sipDomain="localhost", sipRegisterRequired=True
    )
    process = bridge(spec, env={"SSL_CERT_FILE": str(proxy.certificate)})
    assert process.wait(30) == 0, process.stderr_text[-2000:]
    assert process.final["reason"] == "RemoteHangup"
    log = proxy.text()
    assert f"REGISTERED {USER}" in log
    assert far_end.wait(10) == 0
    sent = re.findall(
        r"TLS (REGISTER|INVITE) FROM 127\.0\.0\.1:(\d+) .* "
        r"CONTACT <sip:tls-user@127\.0\.0\.1:(\d+);",
        log,
    )
    assert {method for method, _, _ in sent} == {"REGISTER", "INVITE"}
    assert all(source == contact for _, source, contact in sent), sent
    (recording,) = rtmp_server.recordings_of("tls13-registered")
    assert abs(measure_recording(recording).frequency_hz - 1000) < 5


def test_through_an_outbound_proxy_over_tls_1_3_only_the_relay_s_route_is_taken_off(
    named_tls_proxy: Callable[..., tuple[Kamailio, SippPeer]],
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
) -> None:
    """With ``sipOutboundProxy`` the relay dials the proxy (its name verified), and the proxy
    gets its own Route as pjsua wrote it, the relay's no longer before it."""
    proxy, far_end = named_tls_proxy("localhost", "TLSv1.3")
    outbound = f"sip:localhost:{proxy.tls_port};transport=tls"
    spec = tls_spec(
        proxy, rtmp_server, "tls13-outbound", sipDomain="127.0.0.1", sipOutboundProxy=outbound
    )
    process = bridge(spec, env={"SSL_CERT_FILE": str(proxy.certificate)})
    assert process.wait(30) == 0, process.stderr_text[-2000:]
    assert far_end.wait(10) == 0
    assert "TLS INVITE FROM 127.0.0.1:" in proxy.text()
    assert f"ROUTE <{outbound};lr>\n" in proxy.text()
    (recording,) = rtmp_server.recordings_of("tls13-outbound")
    assert abs(measure_recording(recording).frequency_hz - 1000) < 5


def test_a_first_hop_that_refuses_connections_ends_the_call_at_once(
    rtmp_server: NginxRtmp, bridge: Callable[..., BridgeProcess]
) -> None:
    port = free_port()  # nothing listens there
    spec = call_spec(
        "bridge-test",
        rtmp_server,
        "tls-unreachable",
        callSetupTimeoutSeconds=20,
        connection={"sipDomain": "127.0.0.1", "sipPort": port, "sipTransport": "tls"},
    )
    started = time.monotonic()
    process = bridge(spec)
    assert process.wait(30) == 8, process.stderr_text[-2000:]
    assert time.monotonic() - started < 10  # not the 20 s setup timeout
    assert process.final["reason"] == "Unreachable"
    assert f"connection to 127.0.0.1:{port} failed: Connection refused" in process.final["message"]


def test_the_relay_s_loopback_leg_takes_only_the_run_s_certificate() -> None:
    """Mutual TLS on loopback: a client without the run's certificate gets no connection (so
    another process on a host-networked node cannot use the relay), and one that has it is
    carried on (here to a port that refuses, which the relay reports)."""
    port = free_port()
    tunnel = SipTlsTunnel("127.0.0.1", port, verify=True)
    try:
        relay_port = int(tunnel.route.split(":")[2].split(";")[0])

        def exchange(context: ssl.SSLContext) -> bytes:
            """What the relay answers an OPTIONS with (nothing: it closes the connection)."""
            with (
                socket.create_connection(("127.0.0.1", relay_port), 5) as raw,
                context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
            ):
                tls.sendall(b"OPTIONS sip:x SIP/2.0\r\nContent-Length: 0\r\n\r\n")
                try:
                    return tls.recv(100)
                except (ssl.SSLError, ConnectionResetError):
                    return b""

        stranger = ssl.create_default_context(cafile=str(tunnel.certificate))
        assert exchange(stranger) == b""
        assert tunnel.failure() is None  # the relay never dialled for it
        member = ssl.create_default_context(cafile=str(tunnel.certificate))
        member.load_cert_chain(str(tunnel.certificate), str(tunnel.key))
        assert exchange(member) == b""
        assert tunnel.failure() == f"connection to 127.0.0.1:{port} failed: Connection refused"
    finally:
        tunnel.close()
    assert not tunnel.directory.exists()


def test_a_registrar_past_the_relay_is_registered_with_by_pjsua_itself(
    named_tls_proxy: Callable[..., tuple[Kamailio, SippPeer]],
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
    tmp_path: Path,
) -> None:
    """The relay reaches one host, the callee's: a registrar elsewhere (here TLS 1.2) gets its
    REGISTER from pjsua's own TLS, verified against the bundle as before, while the call goes
    through the relay to a TLS 1.3-only proxy."""
    registrar, _ = named_tls_proxy("localhost", "TLSv1.2")
    proxy, far_end = named_tls_proxy("127.0.0.1", "TLSv1.3")
    assert registrar.certificate is not None and proxy.certificate is not None
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(registrar.certificate.read_bytes() + proxy.certificate.read_bytes())
    spec = tls_spec(
        registrar,
        rtmp_server,
        "registrar-elsewhere",
        sipDomain="localhost",
        sipRegisterRequired=True,
    )
    spec["callee"] = f"sip:bridge-test@127.0.0.1:{proxy.tls_port};transport=tls"
    process = bridge(spec, env={"SSL_CERT_FILE": str(bundle)})
    assert process.wait(30) == 0, process.stderr_text[-2000:]
    assert f"REGISTERED {USER}" in registrar.text()
    assert "TLS TLSv1.2\n" in registrar.text()
    assert f"AUTHORIZED INVITE {USER}" in proxy.text()
    assert "TLS TLSv1.3\n" in proxy.text()
    assert far_end.wait(10) == 0
    (recording,) = rtmp_server.recordings_of("registrar-elsewhere")
    assert abs(measure_recording(recording).frequency_hz - 1000) < 5
