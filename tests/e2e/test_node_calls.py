"""The whole product on the real node: a SipRtmpBridge applied with kubectl → the operator
(installed by helm, running in its pod) → a bridge pod from the bridge image → a SIP call to
SIPp on the host → the call's audio decoded from what nginx-rtmp recorded.

The far ends listen on the host end of the pod network (10.244.0.1): pods have no other way
out, and no traffic leaves the namespaces this run created.
"""

from __future__ import annotations

import base64
import itertools
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from siprtmp_bridge.demo.ports import free_port
from siprtmp_operator.api.manifests import secret_name
from tests.bridge.test_cdn_profiles import assert_the_users_green, green_card, slate_frames
from tests.e2e.release import OPERATOR_NAMESPACE, Release, manifest
from tests.operator.k8s_harness import plain, wait_for
from tests.support.kamailio import Kamailio
from tests.support.nginx_rtmp import NginxRtmp
from tests.support.recording import measure_recording
from tests.support.sipp import SippPeer

USER, PASSWORD = "alice", "secret-from-a-Kubernetes-Secret"
#: The chart's default bridge.terminationGracePeriodSeconds.
GRACE_SECONDS = 20

_namespaces = itertools.count(1)


@pytest.fixture
def ns(release: Release, request: pytest.FixtureRequest) -> str:
    base = request.node.name.removeprefix("test_").replace("_", "-")[:40].strip("-")
    return release.namespace(f"{base}-{next(_namespaces)}")


def the_pod(release: Release, ns: str, name: str) -> dict[str, Any]:
    (pod,) = release.bridge_pods(ns, name)
    return pod


def assert_tone(rtmp: NginxRtmp, stream: str, hz: float, min_seconds: float) -> None:
    (recording,) = rtmp.recordings_of(stream)
    tone = measure_recording(recording)
    assert abs(tone.frequency_hz - hz) < 5, tone
    assert tone.tone_seconds > min_seconds, tone


def bridge_log(release: Release, ns: str, name: str) -> str:
    pod = the_pod(release, ns, name)
    return release.pod_log(ns, pod["metadata"]["name"])


def streaming_with_bytes(release: Release, ns: str, name: str, more_than: int) -> dict[str, Any]:
    return release.wait_bridge(
        ns,
        name,
        lambda s: s.get("phase") == "Streaming" and s["stream"]["bytesSent"] > more_than,
        f"Streaming with more than {more_than} bytes sent",
    )


def test_bridge_streams_the_call_then_succeeds(
    release: Release, ns: str, tone_peer: Callable[..., SippPeer], rtmp_server: NginxRtmp
) -> None:
    peer = tone_peer(6.0)
    t0 = time.monotonic()
    release.apply(manifest(ns, "show", peer, rtmp_server))
    status = release.wait_phase(ns, "show", "Streaming")
    streaming_s = time.monotonic() - t0
    assert status["call"]["state"] == "ESTABLISHED"
    assert status["stream"]["state"] == "PUBLISHING"
    assert status["stream"]["url"] == f"{rtmp_server.url}/***"
    pod = the_pod(release, ns, "show")
    assert status["podName"] == pod["metadata"]["name"]
    assert pod["spec"]["containers"][0]["image"] == "siprtmp/bridge:dev"
    assert pod["status"]["podIP"].startswith("10.244.0.")
    status = release.wait_phase(ns, "show", "Succeeded")
    assert (status["reason"], status["exitCode"]) == ("RemoteHangup", 0)
    assert status["call"]["state"] == "FINISH"
    assert status["stream"]["state"] == "UNPUBLISHED"
    assert peer.wait(10) == 0
    # SIPp saw the INVITE from the pod's address: the call really came from the bridge pod.
    assert f"c=IN IP4 {pod['status']['podIP']}" in peer.messages()
    assert_tone(rtmp_server, "show", 1000, 5.5)
    # A listen-only call sends NAT keep-alives from its RTP port (a pjsua2 socket option that
    # was freed too early once made the RTP socket unshareable, in pods only).
    assert "no RTP keep-alive" not in release.pod_log(ns, pod["metadata"]["name"])
    print(f"\napplied → Streaming in {streaming_s:.1f}s")


def trusted_rtmps_server(release: Release, directory: Path, host: str) -> NginxRtmp:
    """nginx-rtmp behind TLS, presenting the certificate the chart's CA ConfigMap holds."""
    certificate = release.rtmps_certificate
    return NginxRtmp(
        directory, free_port(), tls_port=free_port(), host=host, certificate=certificate
    ).start()


def refused_rtmps_call(ns: str, name: str, peer: SippPeer, server: NginxRtmp) -> dict[str, Any]:
    """An RTMPS call expected to fail before dialling: no redial, a 2 s RTMP budget."""
    return manifest(
        ns,
        name,
        peer,
        server,
        rtmpUrl=server.tls_url,
        maxRetries=0,
        rtmpReconnectTimeoutSeconds=2,
    )


def assert_certificate_refused(status: dict[str, Any], server: NginxRtmp) -> None:
    assert (status["reason"], status["exitCode"]) == ("RtmpFailed", 7)
    assert f"certificate of {server.host}:{server.tls_port} not trusted" in status["message"]


def test_rtmps_with_the_charts_ca_bundle_verifies_and_publishes(
    release: Release,
    ns: str,
    tone_peer: Callable[..., SippPeer],
    tmp_path: Path,
    peer_host: str,
) -> None:
    """RTMPS from a pod: the server's certificate is trusted only through the chart's
    rtmpsCaBundle ConfigMap (SSL_CERT_FILE in the pod); a second server presenting another
    certificate for the same address is refused."""
    trusted = trusted_rtmps_server(release, tmp_path / "trusted", peer_host)
    stranger = NginxRtmp(tmp_path / "stranger", free_port(), tls_port=free_port(), host=peer_host)
    try:
        stranger.start()
        peer = tone_peer(5.0)
        release.apply(
            manifest(ns, "secure", peer, trusted, rtmpUrl=trusted.tls_url),
            refused_rtmps_call(ns, "spoofed", peer, stranger),
        )
        assert_certificate_refused(release.wait_phase(ns, "spoofed", "Failed"), stranger)
        status = release.wait_phase(ns, "secure", "Succeeded")
        assert status["stream"]["url"] == f"{trusted.tls_url}/***"
        env = the_pod(release, ns, "secure")["spec"]["containers"][0]["env"]
        assert {"name": "SSL_CERT_FILE", "value": "/etc/siprtmp/ca/ca.crt"} in env
        assert_tone(trusted, "secure", 1000, 4.5)
        assert stranger.recordings_of("spoofed") == []
    finally:
        trusted.stop()
        stranger.stop()


def test_the_slate_shows_the_users_image_from_a_configmap(
    release: Release,
    ns: str,
    tone_peer: Callable[..., SippPeer],
    rtmp_server: NginxRtmp,
    tmp_path: Path,
) -> None:
    """An audio call under YouTube's profile with ``video.slate.imageConfigMapRef``: the real
    kubelet mounts the ConfigMap's image in the pod, and the stream's pictures are its green."""
    image = green_card(tmp_path / "card.png")
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "slate", "namespace": ns},
        "binaryData": {"card.png": base64.b64encode(image.read_bytes()).decode()},
    }
    peer = tone_peer(5.0)
    slate = {"slate": {"imageConfigMapRef": {"name": "slate", "key": "card.png"}}}
    release.apply(
        config_map, manifest(ns, "carded", peer, rtmp_server, profile="youtube", video=slate)
    )
    status = release.wait_phase(ns, "carded", "Succeeded")
    assert status["video"]["source"] == "slate", status["video"]
    (recording,) = rtmp_server.recordings_of("carded")
    assert_the_users_green(slate_frames(recording)[3])


def test_rtmps_in_a_namespace_without_the_ca_bundle_fails_naming_the_certificate(
    release: Release, tone_peer: Callable[..., SippPeer], tmp_path: Path, peer_host: str
) -> None:
    """The chart names a ConfigMap this namespace lacks: the pod starts all the same (the volume
    is optional), trusts nothing, and the call fails at once saying why."""
    ns = release.namespace(f"no-ca-{next(_namespaces)}", rtmps_ca=False)
    server = trusted_rtmps_server(release, tmp_path / "nginx", peer_host)
    try:
        release.apply(refused_rtmps_call(ns, "no-ca", tone_peer(5.0), server))
        assert_certificate_refused(release.wait_phase(ns, "no-ca", "Failed"), server)
    finally:
        server.stop()


@pytest.fixture
def far_end(tone_peer: Callable[..., SippPeer]) -> SippPeer:
    return tone_peer(4.0)


@pytest.fixture
def proxy(tmp_path: Path, far_end: SippPeer, peer_host: str) -> Iterator[Kamailio]:
    server = Kamailio(
        tmp_path / "kamailio", free_port(), USER, PASSWORD, far_end.port, host=peer_host
    ).start()
    yield server
    server.stop()


def test_digest_auth_through_kamailio_with_the_password_from_a_secret(
    release: Release, ns: str, proxy: Kamailio, far_end: SippPeer, rtmp_server: NginxRtmp
) -> None:
    secret_ref = release.password_secret(ns, "sip-account", PASSWORD)
    connection = {
        "sipDomain": proxy.host,
        "sipPort": proxy.port,
        "sipLogin": USER,
        "sipRegisterRequired": True,
        "sipPasswordSecretRef": secret_ref,
    }
    doc = manifest(ns, "authed", far_end, rtmp_server, callee="bridge-test", connection=connection)
    release.apply(doc)
    status = release.wait_phase(ns, "authed", "Succeeded")
    assert (status["reason"], status["exitCode"]) == ("RemoteHangup", 0)
    log = proxy.text()
    assert f"REGISTERED {USER}" in log
    assert f"AUTHORIZED INVITE {USER} to sip:bridge-test@{proxy.host}" in log
    assert far_end.wait(10) == 0
    assert_tone(rtmp_server, "authed", 1000, 3.5)
    # The password reached the pod only as the Secret's file: not in the pod, the resource,
    # or anything the bridge printed.
    pod = the_pod(release, ns, "authed")
    seen = str(pod) + str(release.bridge(ns, "authed")) + bridge_log(release, ns, "authed")
    assert PASSWORD not in seen


def test_kubectl_delete_mid_call_sends_bye_and_closes_the_stream(
    release: Release, ns: str, tone_peer: Callable[..., SippPeer], rtmp_server: NginxRtmp
) -> None:
    peer = tone_peer(40.0, "uas_tone_wait_bye.xml", wait_ms=60000)
    release.apply(manifest(ns, "cut", peer, rtmp_server))
    streaming_with_bytes(release, ns, "cut", 20000)
    t0 = time.monotonic()
    # kubectl waits for the finalizer: the operator stops the pod, the bridge hangs up.
    release.kubectl("delete", "siprtmpbridge", "cut", "-n", ns)
    gone_s = time.monotonic() - t0
    assert peer.wait(GRACE_SECONDS) == 0  # SIPp's scenario ends only when our BYE arrives
    bye_s = time.monotonic() - t0
    assert bye_s < GRACE_SECONDS
    # The pod object goes once kubelet has confirmed the container's end.
    wait_for("the bridge pod gone", lambda: release.bridge_pods(ns, "cut") == [], timeout=30)
    # The stream was closed, not cut: nginx finalised one recording holding the tone.
    (recording,) = rtmp_server.recordings_of("cut")
    tone = measure_recording(recording)
    assert abs(tone.frequency_hz - 1000) < 5
    assert tone.tone_seconds > 1.5
    print(f"\nkubectl delete returned in {gone_s:.1f}s; SIPp had our BYE within {bye_s:.1f}s")


def test_operator_pod_deleted_mid_call_the_call_goes_on_without_a_duplicate_pod(
    release: Release, ns: str, tone_peer: Callable[..., SippPeer], rtmp_server: NginxRtmp
) -> None:
    peer = tone_peer(30.0)
    release.apply(manifest(ns, "steady", peer, rtmp_server))
    streaming_with_bytes(release, ns, "steady", 8000)
    (bridge_pod,) = release.bridge_pods(ns, "steady")
    old_operator = release.wait_operator_ready()
    release.kubectl("delete", "pod", old_operator, "-n", OPERATOR_NAMESPACE, "--wait=false")
    new_operator = wait_for(
        "a new operator pod Ready",
        lambda: (name := release.ready_operator_pod()) != old_operator and name,
        timeout=120,
        interval=0.5,
    )
    # The new operator took the bridge over: the status moves on from what it finds live.
    before = release.status(ns, "steady")["stream"]["bytesSent"]
    streaming_with_bytes(release, ns, "steady", before + 8000)
    status = release.wait_phase(ns, "steady", "Succeeded", timeout=60)
    assert (status["reason"], status["exitCode"], status["retries"]) == ("RemoteHangup", 0, 0)
    # The same pod all along: no second attempt, no duplicate.
    (after,) = release.bridge_pods(ns, "steady")
    assert after["metadata"]["uid"] == bridge_pod["metadata"]["uid"]
    assert status["podName"] == bridge_pod["metadata"]["name"]
    assert peer.wait(10) == 0
    # The call and the stream never stopped: one recording, the whole tone.
    assert_tone(rtmp_server, "steady", 1000, 29.0)
    print(f"\noperator {old_operator} → {new_operator}; bridge pod unchanged")


def test_five_concurrent_bridges_publish_five_clean_streams(
    release: Release,
    ns: str,
    tone_peer: Callable[..., SippPeer],
    rtmp_server: NginxRtmp,
) -> None:
    # A different tone per call: a stream carrying another call's audio would show it.
    tones = {f"call-{i}": 500.0 + 200 * i for i in range(5)}
    peers = {name: tone_peer(8.0, frequency=hz, wait_ms=60000) for name, hz in tones.items()}
    t0 = time.monotonic()
    release.apply(*(manifest(ns, name, peers[name], rtmp_server) for name in tones))
    for name in tones:
        status = release.wait_phase(ns, name, "Succeeded", timeout=90)
        assert (status["reason"], status["exitCode"]) == ("RemoteHangup", 0), name
    elapsed = time.monotonic() - t0
    for name, hz in tones.items():
        assert peers[name].wait(10) == 0
        assert_tone(rtmp_server, name, hz, 7.5)
    print(f"\nfive 8 s calls applied together: all Succeeded {elapsed:.1f}s after apply")


def test_busy_far_end_fails_the_bridge_after_the_redials_its_policy_allows(
    release: Release, ns: str, sipp: Callable[..., SippPeer], rtmp_server: NginxRtmp
) -> None:
    peer = sipp("uas_reject.xml", calls=2, code=486, reason_phrase="Busy Here")
    release.apply(manifest(ns, "busy", peer, rtmp_server, maxRetries=1))
    status = release.wait_phase(ns, "busy", "Failed", timeout=90)
    assert (status["reason"], status["exitCode"], status["retries"]) == ("Busy", 4, 1)
    assert status["call"]["state"] == "BUSY"
    assert status["call"]["sipStatusCode"] == 486
    assert peer.wait(10) == 0  # both INVITEs reached the far end
    assert peer.messages().count("INVITE sip:") == 2
    pods = {p["metadata"]["name"]: p["status"]["phase"] for p in release.bridge_pods(ns, "busy")}
    assert pods == {"busy-bridge-0": "Failed", "busy-bridge-1": "Failed"}


def test_rest_api_of_the_chart_starts_finds_and_terminates_a_call(
    release: Release, tone_peer: Callable[..., SippPeer], rtmp_server: NginxRtmp
) -> None:
    """The seed's REST POST on the real installation (chart value api.enabled, token from a
    Secret): the call is a SipRtmpBridge, its password a Secret it owns, hung up on terminate."""
    peer = tone_peer(60.0, "uas_tone_wait_bye.xml", wait_ms=90000)
    call_id = f"e2e-{uuid.uuid4().hex[:8]}"
    body = {  # the seed's nested shape, strings everywhere
        "callId": call_id,
        "callee": "bridge-test",
        "rtmpUrl": rtmp_server.url,
        "rtmpStream": "via-rest",
        "hasAudio": "false",
        "hasVideo": "false",
        "connection": {
            "sipLogin": USER,
            "sipPassword": PASSWORD,
            "sipDomain": peer.host,
            "sipPort": str(peer.port),
            "sipRegisterRequired": "false",
            "appKey": "callApp",
        },
    }
    api = release.api_client()
    answer = api.call("startup", body)
    assert answer.status == 200, answer.body
    created = answer.body
    ns, name = created["namespace"], created["name"]

    def live() -> dict[str, Any] | None:
        found = api.call("find", {"callId": call_id})
        call = found.body[0] if found.status == 200 else {}
        states = (call.get("status"), call.get("streamStatus"))
        return (
            call if states == ("ESTABLISHED", "PUBLISHING") and call["bytesSent"] > 20000 else None
        )

    wait_for("the call ESTABLISHED and PUBLISHING for a while", live, timeout=60, interval=1)
    assert api.call("startup", body).status == 409  # that callId exists
    secret = plain(release.api, release.core.read_namespaced_secret(secret_name(name), ns))
    (owner,) = secret["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"]) == ("SipRtmpBridge", name)
    assert PASSWORD not in str(release.bridge(ns, name))
    ending = api.call("terminate", {"callId": call_id})
    assert ending.status == 200 and ending.body["terminating"], ending.body
    assert peer.wait(GRACE_SECONDS) == 0  # SIPp's scenario ends only when our BYE arrives
    wait_for("the call gone", lambda: release.bridge(ns, name) is None, timeout=30)
    assert_tone(rtmp_server, "via-rest", 1000, 1.5)
