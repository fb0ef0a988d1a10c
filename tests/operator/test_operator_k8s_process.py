"""The operator with the real bridge behind its pods, against SIPp and nginx-rtmp.

LocalKubelet plays the kubelet: it runs the pod's own container arguments with the real
``sip-rtmp-bridge`` (the spec file from the pod's annotation, the password from the Secret, the
status server on the pod IP it reports), then reports the exit code and termination message.
The resource's status is asserted as the operator writes it from the bridge's live status, and
the audio at the RTMP server is decoded.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import kubernetes
import pytest

from siprtmp_bridge.demo.ports import free_port
from siprtmp_contract.pod import BRIDGE_USABLE_LABEL
from siprtmp_operator.api.manifests import resource_name, secret_name
from siprtmp_operator.livestatus import bridge_url, post
from siprtmp_operator.status import observe_pod
from tests.operator.api_client import ApiClient
from tests.operator.conftest import API_NAMESPACE, run_pod
from tests.operator.k8s_harness import LocalKubelet, OperatorProcess, wait_for
from tests.support.nginx_rtmp import NginxRtmp
from tests.support.recording import measure_recording
from tests.support.sipp import SippPeer

if TYPE_CHECKING:
    from tests.operator.conftest import Cluster

pytestmark = pytest.mark.k8s

PASSWORD = "s3cret-from-the-Secret"


def bridge_spec(peer: SippPeer, rtmp: NginxRtmp, stream: str, **extra: Any) -> dict[str, Any]:
    return {
        "callee": peer.uri,
        "rtmpUrl": rtmp.url,
        "rtmpStream": stream,
        "hasAudio": False,
        "connection": {
            "sipLogin": "bridge",
            "sipPasswordSecretRef": {"name": "acct", "key": "password"},
        },
        "nat": {"bindAddress": "127.0.0.1", "rtpPortMin": 30000, "rtpPortMax": 40000},
        **extra,
    }


def place_call(
    cluster: Cluster,
    kubelets: list[LocalKubelet],
    tmp_path: Path,
    ns: str,
    name: str,
    spec: dict[str, Any],
) -> LocalKubelet:
    """The Secret and the resource, then its first pod run by the local kubelet."""
    cluster.secret(ns, "acct", "password", PASSWORD)
    cluster.create_bridge(ns, name, spec)
    return run_pod(cluster, kubelets, tmp_path, ns, f"{name}-bridge-0")


def test_real_bridge_streams_then_stops_on_delete(
    cluster: Cluster,
    ns: str,
    kubelets: list[LocalKubelet],
    tmp_path: Path,
    tone_peer: Callable[..., SippPeer],
    rtmp_server: NginxRtmp,
) -> None:
    peer = tone_peer(10.0, "uas_tone_wait_bye.xml")
    kubelet = place_call(
        cluster, kubelets, tmp_path, ns, "live", bridge_spec(peer, rtmp_server, "live")
    )
    obj = cluster.wait_phase(ns, "live", "Streaming")
    status = obj["status"]
    assert status["call"]["state"] == "ESTABLISHED"
    assert status["call"]["codec"] == "PCMU/8000"
    assert status["stream"]["state"] == "PUBLISHING"
    assert status["stream"]["url"] == f"{rtmp_server.url}/***"
    ready = {c["type"]: c["status"] for c in status["conditions"]}
    assert ready == {"CallEstablished": "True", "Streaming": "True", "Ready": "True"}
    cluster.wait_bridge(
        ns, "live", lambda o: o["status"]["stream"]["bytesSent"] > 8000, "bytes flowing", 15
    )
    # Keys are pressed only with the token the operator put in this pod: without it, or with
    # another, 401; with it, the bridge takes the request (and refuses it: receive-only call).
    pod = cluster.pod(ns, "live-bridge-0")
    assert pod is not None
    observed = observe_pod(pod)
    url = bridge_url(observed, "http", 8080, "/dtmf")
    assert url is not None and observed.control_token
    for token in (None, "another-pods-token"):
        assert (post(url, {"dtmf": "1"}, 5, token) or (0,))[0] == 401
    assert (post(url, {"dtmf": "1"}, 5, observed.control_token) or (0,))[0] == 409
    cluster.delete_bridge(ns, "live")
    # Delete → graceful pod stop → SIGTERM → the bridge sends BYE and closes the stream.
    wait_for("bridge gone", lambda: cluster.bridge(ns, "live") is None, timeout=30)
    assert kubelet.exit_code == 0
    assert peer.wait(10) == 0  # SIPp's scenario ends only when our BYE arrives
    final = (kubelet.dir / "termination-log").read_text()
    assert '"reason":"Stopped"' in final
    assert PASSWORD not in final + (kubelet.dir / "bridge.log").read_text()
    (recording,) = rtmp_server.recordings_of("live")
    assert abs(measure_recording(recording).frequency_hz - 1000) < 5


def test_real_bridge_call_ends_and_the_resource_succeeds(
    cluster: Cluster,
    ns: str,
    kubelets: list[LocalKubelet],
    tmp_path: Path,
    tone_peer: Callable[..., SippPeer],
    rtmp_server: NginxRtmp,
) -> None:
    peer = tone_peer(4.0)
    place_call(cluster, kubelets, tmp_path, ns, "ends", bridge_spec(peer, rtmp_server, "ends"))
    cluster.wait_phase(ns, "ends", "Streaming")
    obj = cluster.wait_phase(ns, "ends", "Succeeded")
    status = obj["status"]
    assert (status["reason"], status["exitCode"]) == ("RemoteHangup", 0)
    assert status["call"]["state"] == "FINISH"
    assert status["stream"]["state"] == "UNPUBLISHED"
    assert peer.wait(10) == 0
    (recording,) = rtmp_server.recordings_of("ends")
    tone = measure_recording(recording)
    assert abs(tone.frequency_hz - 1000) < 5
    assert tone.tone_seconds > 3.7


def test_real_bridge_busy_is_redialled_then_fails(
    cluster: Cluster,
    ns: str,
    kubelets: list[LocalKubelet],
    tmp_path: Path,
    sipp: Callable[..., SippPeer],
    rtmp_server: NginxRtmp,
) -> None:
    peer = sipp("uas_reject.xml", calls=2, code=486, reason_phrase="Busy Here")
    place_call(
        cluster,
        kubelets,
        tmp_path,
        ns,
        "busy",
        bridge_spec(peer, rtmp_server, "busy", maxRetries=1),
    )
    run_pod(cluster, kubelets, tmp_path, ns, "busy-bridge-1")
    obj = cluster.wait_phase(ns, "busy", "Failed")
    status = obj["status"]
    assert (status["reason"], status["exitCode"], status["retries"]) == ("Busy", 4, 1)
    assert status["call"]["state"] == "BUSY"
    assert status["call"]["sipStatusCode"] == 486
    assert peer.wait(10) == 0  # both INVITEs reached the far end
    assert peer.messages().count("INVITE sip:") == 2


def test_real_bridge_rtmp_restart_shows_reconnecting_then_streaming(
    cluster: Cluster,
    ns: str,
    kubelets: list[LocalKubelet],
    tmp_path: Path,
    tone_peer: Callable[..., SippPeer],
    rtmp_server: NginxRtmp,
) -> None:
    peer = tone_peer(12.0)
    place_call(cluster, kubelets, tmp_path, ns, "drop", bridge_spec(peer, rtmp_server, "drop"))
    cluster.wait_phase(ns, "drop", "Streaming")
    # Let audio flow first: nginx names recordings by the second (record_unique), so a restart
    # within the first publish's second would overwrite the first recording.
    cluster.wait_bridge(
        ns, "drop", lambda o: o["status"]["stream"]["bytesSent"] > 8000, "bytes flowing", 15
    )
    rtmp_server.stop()
    obj = cluster.wait_phase(ns, "drop", "Reconnecting")
    assert obj["status"]["call"]["state"] == "ESTABLISHED"  # the call stays up
    assert obj["status"]["stream"]["state"] == "RECONNECTING"
    rtmp_server.start()
    obj = cluster.wait_bridge(
        ns,
        "drop",
        lambda o: o["status"]["phase"] == "Streaming" and o["status"]["stream"]["reconnects"] == 1,
        "streaming again after one reconnect",
    )
    obj = cluster.wait_phase(ns, "drop", "Succeeded", timeout=30)
    assert obj["status"]["reason"] == "RemoteHangup"
    assert obj["status"]["stream"]["reconnects"] == 1
    assert len(rtmp_server.recordings_of("drop")) == 2


def test_patched_destinations_reach_the_running_bridge(
    cluster: Cluster,
    ns: str,
    kubelets: list[LocalKubelet],
    tmp_path: Path,
    tone_peer: Callable[..., SippPeer],
    rtmp_server: NginxRtmp,
) -> None:
    """The destinations list is the one field a live call may change: the operator POSTs it
    to the pod's bridge, which opens the new destination (the tone recorded there from then
    on) and closes it again when it is removed."""
    second = NginxRtmp(tmp_path / "second-nginx", free_port()).start()
    try:
        peer = tone_peer(20.0, "uas_tone_wait_bye.xml")
        place_call(cluster, kubelets, tmp_path, ns, "fan", bridge_spec(peer, rtmp_server, "one"))
        cluster.wait_phase(ns, "fan", "Streaming")
        added = [{"rtmpUrl": second.url, "rtmpStream": "two?k=not-shown"}]
        cluster.custom.patch_namespaced_custom_object(
            "siprtmp.io", "v1alpha1", ns, "siprtmpbridges", "fan", {"spec": {"destinations": added}}
        )

        def states(obj: dict[str, Any]) -> list[tuple[str, str]]:
            shown = obj["status"].get("destinations") or []
            return [(d.get("url", ""), d.get("state", "")) for d in shown]

        both = [(f"{rtmp_server.url}/***", "PUBLISHING"), (f"{second.url}/***", "PUBLISHING")]
        cluster.wait_bridge(ns, "fan", lambda o: states(o) == both, "two destinations", 20)
        time.sleep(3)
        cluster.custom.patch_namespaced_custom_object(
            "siprtmp.io", "v1alpha1", ns, "siprtmpbridges", "fan", {"spec": {"destinations": []}}
        )
        cluster.wait_bridge(ns, "fan", lambda o: states(o) == both[:1], "one destination", 20)
        assert "not-shown" not in json.dumps(cluster.bridge(ns, "fan"))
        # YouTube's profile needs a video track, which this audio-only call, placed without
        # one, does not have: the bridge refuses the list, the operator says so once.
        youtube = [{"rtmpUrl": second.url, "rtmpStream": "yt", "profile": "youtube"}]
        cluster.custom.patch_namespaced_custom_object(
            "siprtmp.io",
            "v1alpha1",
            ns,
            "siprtmpbridges",
            "fan",
            {"spec": {"destinations": youtube}},
        )

        def refusals() -> list[dict[str, Any]]:
            events = cluster.events(ns, "fan")
            return [e for e in events if "refused spec.destinations" in e["message"]]

        (refused,) = wait_for("the refusal's event", refusals, timeout=20)
        assert refused["reason"] == "InvalidSpec"
        assert "spec.destinations[0].profile: is not met" in refused["message"], refused
        time.sleep(2)  # further reconcile steps send nothing more
        assert [e.get("count") or 1 for e in refusals()] == [1]
        obj = cluster.bridge(ns, "fan")
        assert obj is not None and states(obj) == both[:1]
        cluster.delete_bridge(ns, "fan")
        wait_for("bridge gone", lambda: cluster.bridge(ns, "fan") is None, timeout=30)
        assert peer.wait(10) == 0
    finally:
        second.stop()
    (joined,) = second.recordings_of("two")
    tone = measure_recording(joined)
    assert abs(tone.frequency_hz - 1000) < 5
    assert tone.tone_seconds > 2.0


def test_a_destination_another_live_call_publishes_is_left_out(
    cluster: Cluster,
    ns: str,
    kubelets: list[LocalKubelet],
    tmp_path: Path,
    tone_peer: Callable[..., SippPeer],
    rtmp_server: NginxRtmp,
) -> None:
    """DuplicateStream per destination on a live call: the call placed first is given, as a
    new destination, the stream a later call has published since its start. The operator
    leaves it out with a Warning naming the field and the holder, and that stream keeps its
    one publisher."""
    first_peer = tone_peer(25.0, "uas_tone_wait_bye.xml")
    place_call(cluster, kubelets, tmp_path, ns, "early", bridge_spec(first_peer, rtmp_server, "a"))
    cluster.wait_phase(ns, "early", "Streaming")
    second_peer = tone_peer(25.0, "uas_tone_wait_bye.xml")
    held = "held?k=not-shown"
    place_call(
        cluster, kubelets, tmp_path, ns, "later", bridge_spec(second_peer, rtmp_server, held)
    )
    cluster.wait_phase(ns, "later", "Streaming")
    taken = [{"rtmpUrl": rtmp_server.url, "rtmpStream": held}]
    cluster.custom.patch_namespaced_custom_object(
        "siprtmp.io", "v1alpha1", ns, "siprtmpbridges", "early", {"spec": {"destinations": taken}}
    )

    def duplicates() -> list[dict[str, Any]]:
        return [e for e in cluster.events(ns, "early") if e["reason"] == "DuplicateStream"]

    (warning,) = wait_for("the DuplicateStream warning", duplicates, timeout=20)
    assert warning["type"] == "Warning"
    assert warning["message"].startswith("spec.destinations[0] (rtmp://127.0.0.1:"), warning
    assert "already published by bridge later; not published" in warning["message"]
    assert "held" not in warning["message"] and "not-shown" not in warning["message"]
    time.sleep(3)  # a list sent to the bridge would show as a second destination by now
    early = cluster.bridge(ns, "early")
    assert early is not None
    status = early["status"]
    assert status["phase"] == "Streaming" and len(status["destinations"]) == 1, status
    for name in ("early", "later"):
        cluster.delete_bridge(ns, name)
    wait_for(
        "both bridges gone",
        lambda: cluster.bridge(ns, "early") is None and cluster.bridge(ns, "later") is None,
        timeout=30,
    )
    assert first_peer.wait(10) == 0 and second_peer.wait(10) == 0
    (recording,) = rtmp_server.recordings_of("held")  # one publisher, one recording
    assert measure_recording(recording).tone_seconds > 3.0


def test_a_destinations_key_from_a_secret_is_published_and_shown_nowhere(
    cluster: Cluster,
    ns: str,
    kubelets: list[LocalKubelet],
    tmp_path: Path,
    tone_peer: Callable[..., SippPeer],
    rtmp_server: NginxRtmp,
) -> None:
    """Two destinations at creation, the second keyed by a Secret (mounted whole): both get the
    tone, nginx sees the Secret's stream name. A live add may take another key of that Secret;
    one naming a Secret the pod does not mount is left out with a Warning. The key is in no
    status, Event, pod field or log line."""
    second = NginxRtmp(tmp_path / "second-nginx", free_port()).start()
    keys = {"second": "keyed-7Q3z?token=SEKRIT8842", "third": "later-5R2w?token=SEKRIT1193"}
    #: Each key whole and its pieces: the stream name, the parameter's value.
    secrets = [*keys.values(), "keyed-7Q3z", "SEKRIT8842", "later-5R2w", "SEKRIT1193"]
    try:
        labels = {BRIDGE_USABLE_LABEL: "true"}
        cluster.core.create_namespaced_secret(
            ns,
            kubernetes.client.V1Secret(
                metadata=kubernetes.client.V1ObjectMeta(name="cdn-keys", labels=labels),
                string_data=keys,
            ),
        )
        peer = tone_peer(20.0, "uas_tone_wait_bye.xml")
        first = {
            "rtmpUrl": second.url,
            "rtmpStreamSecretRef": {"name": "cdn-keys", "key": "second"},
        }
        spec = bridge_spec(peer, rtmp_server, "one", destinations=[first])
        place_call(cluster, kubelets, tmp_path, ns, "keyed", spec)
        pod = cluster.wait_pod(ns, "keyed-bridge-0")
        mounts = {m["mountPath"]: m["name"] for m in pod["spec"]["containers"][0]["volumeMounts"]}
        assert "/etc/siprtmp/keys/cdn-keys" in mounts

        def states(obj: dict[str, Any]) -> list[tuple[str, str]]:
            shown = obj["status"].get("destinations") or []
            return [(d.get("url", ""), d.get("state", "")) for d in shown]

        both = [(f"{rtmp_server.url}/***", "PUBLISHING"), (f"{second.url}/***", "PUBLISHING")]
        cluster.wait_bridge(ns, "keyed", lambda o: states(o) == both, "two destinations", 20)
        # Live: another key of the mounted Secret is published; an unmounted Secret is not.
        added = [
            first,
            {"rtmpUrl": second.url, "rtmpStreamSecretRef": {"name": "cdn-keys", "key": "third"}},
            {"rtmpUrl": rtmp_server.url, "rtmpStreamSecretRef": {"name": "other", "key": "k"}},
        ]
        cluster.custom.patch_namespaced_custom_object(
            "siprtmp.io",
            "v1alpha1",
            ns,
            "siprtmpbridges",
            "keyed",
            {"spec": {"destinations": added}},
        )
        three = [*both, (f"{second.url}/***", "PUBLISHING")]
        cluster.wait_bridge(ns, "keyed", lambda o: states(o) == three, "three destinations", 20)
        left_out = wait_for(
            "a Warning for the unmounted Secret",
            lambda: next(
                (e for e in cluster.events(ns, "keyed") if e["reason"] == "SecretNotUsable"), None
            ),
        )
        assert left_out["type"] == "Warning"
        assert "spec.destinations[2]" in left_out["message"]
        assert "Secret other, which the running pod does not mount" in left_out["message"]
        time.sleep(3)
        shown = json.dumps(
            [
                cluster.bridge(ns, "keyed"),
                cluster.events(ns, "keyed"),
                cluster.pod(ns, "keyed-bridge-0"),
            ]
        )
        cluster.delete_bridge(ns, "keyed")
        wait_for("bridge gone", lambda: cluster.bridge(ns, "keyed") is None, timeout=30)
        assert peer.wait(10) == 0
    finally:
        second.stop()
    printed = shown + (tmp_path / "keyed-bridge-0" / "bridge.log").read_text()
    printed += (tmp_path / "keyed-bridge-0" / "termination-log").read_text()
    printed += cluster.operator.log_text()
    for secret in secrets:
        assert secret not in printed, secret
    for stream in ("keyed-7Q3z", "later-5R2w"):  # the stream names nginx saw: the keys
        (recording,) = second.recordings_of(stream)
        tone = measure_recording(recording)
        assert abs(tone.frequency_hz - 1000) < 5
        assert tone.tone_seconds > 2.5  # both were up for the 3 s wait at least


def test_the_rest_api_keeps_a_startups_stream_key_in_the_calls_secret(
    cluster: Cluster,
    kubelets: list[LocalKubelet],
    tmp_path: Path,
    tone_peer: Callable[..., SippPeer],
    rtmp_server: NginxRtmp,
) -> None:
    """``api.streamKeysInSecrets``: a startup's key goes into the call's own Secret, the real
    bridge reads it from there and publishes to it; the resource, the answers and the
    operator's log never hold it, and the API still knows the stream by its digest (409 for a
    second startup, find by rtmpStream)."""
    key = "webinar?s_bl=1&s_sc=K3Y7731#f"
    env = cluster.operator.settings_env
    env["SIPRTMP_API_STREAM_KEYS_IN_SECRETS"] = "true"
    mine = OperatorProcess(tmp_path, cluster.operator.kubeconfig, env)
    cluster.operator.stop()  # one operator at a time reconciles the cluster
    try:
        mine.start()
        api = ApiClient(mine.api_url)
        peer = tone_peer(8.0)
        body = bridge_spec(peer, rtmp_server, key)
        body["connection"] = {"sipLogin": "bridge", "sipPassword": PASSWORD}
        call_id = f"keyed-{uuid.uuid4().hex[:6]}"
        answer = api.call("startup", {"callId": call_id, **body})
        assert answer.status == 200, answer.body
        assert answer.body["rtmpStream"] == "***"
        name = resource_name(call_id)
        obj = cluster.bridge(API_NAMESPACE, name)
        assert obj is not None and "rtmpStream" not in obj["spec"]
        ref = {"name": secret_name(name), "key": "rtmpStream"}
        assert obj["spec"]["rtmpStreamSecretRef"] == ref
        secret = cluster.core.read_namespaced_secret(secret_name(name), API_NAMESPACE)
        assert secret.data is not None
        assert base64.b64decode(secret.data["rtmpStream"]).decode() == key
        run_pod(cluster, kubelets, tmp_path, API_NAMESPACE, f"{name}-bridge-0")
        cluster.wait_phase(API_NAMESPACE, name, "Streaming")
        again = api.call("startup", {**body, "callId": f"{call_id}-again"})
        assert again.status == 409 and again.body["field"] == "rtmpStream", again.body
        found = api.call("find", {"rtmpStream": key})
        assert found.status == 200 and [c["callId"] for c in found.body] == [call_id]
        assert api.call("find", {"rtmpStream": "webinar"}).status == 404
        done = cluster.wait_phase(API_NAMESPACE, name, "Succeeded")
        assert peer.wait(10) == 0
        shown = json.dumps(done) + json.dumps(answer.body) + json.dumps(found.body)
        shown += mine.log_text()
        for part in (key, "K3Y7731", PASSWORD):
            assert part not in shown, part
    finally:
        mine.stop()
        cluster.operator.start()
    (recording,) = rtmp_server.recordings_of("webinar")
    assert abs(measure_recording(recording).frequency_hz - 1000) < 5
