"""Registration and digest authentication through Kamailio, with right and wrong credentials."""

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

USER, PASSWORD = "alice", "correct-horse-battery"
EXIT_AUTH = 3


@pytest.fixture
def far_end(tone_peer: Callable[..., SippPeer]) -> SippPeer:
    return tone_peer(2.0)


@pytest.fixture
def proxy(tmp_path: Path, far_end: SippPeer) -> Iterator[Kamailio]:
    server = Kamailio(tmp_path / "kamailio", free_port(), USER, PASSWORD, far_end.port).start()
    yield server
    server.stop()


def connection(proxy: Kamailio, password: str, **extra: object) -> dict[str, object]:
    return {
        "sipDomain": "127.0.0.1",
        "sipPort": proxy.port,
        "sipLogin": USER,
        "sipPassword": password,
        **extra,
    }


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_registered_call_with_digest_auth_is_bridged(
    transport: str,
    proxy: Kamailio,
    far_end: SippPeer,
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
) -> None:
    spec = call_spec(
        "bridge-test",
        rtmp_server,
        f"auth-{transport}",
        connection=connection(proxy, PASSWORD, sipRegisterRequired=True, sipTransport=transport),
    )
    process = bridge(spec)
    assert process.wait(30) == 0, process.stderr_text[-2000:]
    assert process.final["reason"] == "RemoteHangup"
    log = proxy.text()
    assert f"REGISTERED {USER}" in log
    assert f"AUTHORIZED INVITE {USER} to sip:bridge-test@127.0.0.1" in log
    assert far_end.wait(10) == 0
    (recording,) = rtmp_server.recordings_of(f"auth-{transport}")
    assert abs(measure_recording(recording).frequency_hz - 1000) < 5


def test_authentication_name_is_the_digest_user(
    proxy: Kamailio,
    far_end: SippPeer,
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
) -> None:
    spec = call_spec(
        "bridge-test",
        rtmp_server,
        "authname",
        connection={
            **connection(proxy, PASSWORD),
            "sipLogin": "display-login",
            "sipAuthenticationName": USER,
        },
    )
    process = bridge(spec)
    assert process.wait(30) == 0, process.stderr_text[-2000:]
    assert f"AUTHORIZED INVITE {USER}" in proxy.text()


def test_wrong_password_fails_registration(
    proxy: Kamailio,
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
) -> None:
    spec = call_spec(
        "bridge-test",
        rtmp_server,
        "badreg",
        connection=connection(proxy, "wrong", sipRegisterRequired=True),
    )
    process = bridge(spec)
    assert process.wait(30) == EXIT_AUTH
    final = process.final
    assert final["reason"] == "RegistrationFailed"
    assert final["phase"] == "Failed"
    assert "401" in final["message"]
    assert "REGISTERED" not in proxy.text()


def test_wrong_password_fails_the_invite_with_407(
    proxy: Kamailio,
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
) -> None:
    spec = call_spec("bridge-test", rtmp_server, "badinvite", connection=connection(proxy, "wrong"))
    process = bridge(spec)
    assert process.wait(30) == EXIT_AUTH
    final = process.final
    assert final["reason"] == "AuthenticationFailed"
    assert final["call"]["sipStatusCode"] == 407
    assert final["call"]["state"] == "FAILED"
    assert "AUTHORIZED" not in proxy.text()
    assert "wrong" not in process.stderr_text.splitlines()[-1]


def test_outbound_proxy_carries_the_call_to_a_sip_uri(
    proxy: Kamailio,
    far_end: SippPeer,
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
) -> None:
    spec = call_spec(
        far_end.uri,
        rtmp_server,
        "proxied",
        connection={
            "sipLogin": USER,
            "sipPassword": PASSWORD,
            "sipOutboundProxy": f"127.0.0.1:{proxy.port}",
        },
    )
    process = bridge(spec)
    assert process.wait(30) == 0, process.stderr_text[-2000:]
    assert f"AUTHORIZED INVITE {USER} to {far_end.uri}" in proxy.text()
    assert far_end.wait(10) == 0


def test_password_from_a_mounted_secret_file(
    proxy: Kamailio,
    far_end: SippPeer,
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
    tmp_path: Path,
) -> None:
    """In a pod the password is a mounted Secret key, never part of the spec."""
    secret = tmp_path / "password"
    secret.write_text(PASSWORD + "\n")
    spec = call_spec(
        "bridge-test",
        rtmp_server,
        "secret-file",
        connection={
            "sipDomain": "127.0.0.1",
            "sipPort": proxy.port,
            "sipLogin": USER,
            "sipRegisterRequired": True,
            "sipPasswordSecretRef": {"name": "sip-credentials", "key": "password"},
        },
    )
    process = bridge(spec, extra_args=["--sip-password-file", str(secret)])
    assert process.wait(30) == 0, process.stderr_text[-2000:]
    assert f"REGISTERED {USER}" in proxy.text()
    assert PASSWORD not in process.stderr_text + str(process.lines)


@pytest.mark.parametrize("answered", [False, True], ids=["other-realm", "sipRealm-given"])
def test_the_password_answers_only_its_own_realm(
    answered: bool,
    tmp_path: Path,
    far_end: SippPeer,
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
) -> None:
    """A registrar (or any server the callee names) challenging for a realm other than the
    call's gets no digest of the password; naming its realm in sipRealm makes it the call's."""
    registrar = Kamailio(
        tmp_path / "realm", free_port(), USER, PASSWORD, far_end.port, realm="pbx-realm.example"
    ).start()
    try:
        extra = {"sipRealm": "pbx-realm.example"} if answered else {}
        spec = call_spec(
            "bridge-test",
            rtmp_server,
            f"realm-{answered}",
            connection=connection(registrar, PASSWORD, sipRegisterRequired=True, **extra),
        )
        process = bridge(spec)
        code = process.wait(30)
        log = registrar.text()
    finally:
        registrar.stop()
    if answered:
        assert code == 0, process.stderr_text[-2000:]
        assert f"CREDENTIALS of {USER} for realm pbx-realm.example" in log
        assert f"REGISTERED {USER}" in log
        assert far_end.wait(10) == 0
    else:
        assert code == EXIT_AUTH, process.stderr_text[-2000:]
        assert process.final["reason"] == "RegistrationFailed"
        assert "CREDENTIALS" not in log  # challenged, never answered
        far_end.stop()
