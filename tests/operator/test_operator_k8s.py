"""The operator against a real API server: pods, status flow, policies, admission, RBAC.

No kubelet and no scheduler: each test writes pod status as a kubelet would, and serves the
bridge's live status document over HTTP on the pod IP it wrote (a 127.0.0.N address).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import kubernetes
import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from tests.operator.k8s_harness import (
    OperatorProcess,
    free_port,
    rbac_refusals,
    status_server,
    wait_for,
)
from tests.support.http import http_get

if TYPE_CHECKING:
    from tests.operator.conftest import Cluster

pytestmark = pytest.mark.k8s

SPEC: dict[str, Any] = {
    "callee": "sip:room1@sip.example.test",
    "rtmpUrl": "rtmp://rtmp.example.test:1935/live",
    "rtmpStream": "webinar-1",
    "hasAudio": True,
    "connection": {
        "sipLogin": "myusername",
        "sipAuthenticationName": "myusername",
        "sipDomain": "sip.example.test",
        "sipPort": 5060,
        "sipTransport": "udp",
        "appKey": "callApp",
        "sipPasswordSecretRef": {"name": "sip-account", "key": "password"},
    },
}
SECRET_VALUE = "MyPasswordPassword1"


def spec(**changes: Any) -> dict[str, Any]:
    """SPEC with changes; each call gets its own stream unless one is given (one publisher
    per stream is enforced across the whole cluster). Random, not counted: pytest imports this
    file as a module of its own while other test files import ``tests.operator.test_operator_k8s``,
    and two counters handed out the same streams (DuplicateStream)."""
    out: dict[str, Any] = json.loads(json.dumps(SPEC))
    out["rtmpStream"] = f"stream-{uuid.uuid4().hex[:12]}"
    out.update(changes)
    return out


def doc(
    phase: str,
    call: str | None,
    stream: str | None,
    *,
    reason: str = "",
    bytes_sent: int = 0,
    exit_code: int | None = None,
) -> dict[str, Any]:
    """A bridge status document as docs/bridge-process.md defines it."""
    return {
        "phase": phase,
        "reason": reason or phase,
        "message": f"{phase.lower()} (test)",
        "exitCode": exit_code,
        "call": None
        if call is None
        else {
            "state": call,
            "sipStatusCode": 200 if call == "ESTABLISHED" else None,
            "reason": "OK" if call == "ESTABLISHED" else None,
            "sipCallId": "abc@test",
            "codec": "PCMU/8000",
            "startedAt": "2026-01-01T00:00:00Z",
        },
        "stream": None
        if stream is None
        else {
            "state": stream,
            "url": "rtmp://rtmp.example.test:1935/live/***",
            "bytesSent": bytes_sent,
            "reconnects": 0,
        },
    }


def cond(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c["type"] == type_:
            return dict(c)
    raise AssertionError(f"no condition {type_} in {obj.get('status')}")


def test_create_makes_a_locked_down_pod(cluster: Cluster, ns: str) -> None:
    cluster.secret(ns, "sip-account", "password", SECRET_VALUE)
    key = "webinar-a?s_bl=1&s_sc=SEKRIT7731&s_sw=0#frag"
    url = "rtmp://pubuser:URLPASS99@rtmp.example.test:1935/live"
    created = cluster.create_bridge(ns, "call-a", spec(rtmpUrl=url, rtmpStream=key))
    assert created["spec"]["connection"]["sipRegisterRequired"] is False  # CRD default
    pod = cluster.wait_pod(ns, "call-a-bridge-0")
    meta, pspec = pod["metadata"], pod["spec"]

    owner = meta["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
        "SipRtmpBridge",
        "call-a",
        created["metadata"]["uid"],
        True,
    )
    assert meta["labels"]["siprtmp.io/bridge"] == "call-a"
    assert meta["labels"]["app.kubernetes.io/managed-by"] == "sip-rtmp-operator"

    assert pspec["restartPolicy"] == "Never"
    assert pspec["automountServiceAccountToken"] is False
    assert pspec["terminationGracePeriodSeconds"] == 7  # from the operator's settings
    assert pspec["securityContext"]["runAsNonRoot"] is True
    assert pspec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (c,) = pspec["containers"]
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert c["resources"]["limits"] == {"cpu": "1", "memory": "512Mi"}  # chart defaults
    assert {"name": "status", "containerPort": cluster.status_port, "protocol": "TCP"} in c["ports"]
    # No service-account token anywhere in the pod, and no password in its manifest.
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    assert "/var/run/secrets/kubernetes.io/serviceaccount" not in mounts
    assert not any("projected" in v for v in pspec["volumes"])
    # Neither the password nor the stream key nor the URL's credentials: anyone who may read
    # pods (the view role) reads its annotations, env and args.
    shown = json.dumps(pod)
    assert not [s for s in (SECRET_VALUE, "webinar-a", "SEKRIT7731", "URLPASS99") if s in shown]
    # The spec as a mounted file from the operator's Secret, the password from the user's.
    assert c["args"][c["args"].index("--spec") + 1] == "/etc/siprtmp/spec/spec.json"
    assert c["args"][c["args"].index("--sip-password-file") + 1] == "/etc/siprtmp/secret/password"
    assert mounts["/etc/siprtmp/spec"]["readOnly"] and mounts["/etc/siprtmp/secret"]["readOnly"]
    vols = {v["name"]: v for v in pspec["volumes"]}
    assert vols["sip-password"]["secret"]["secretName"] == "sip-account"
    assert vols["sip-password"]["secret"]["items"] == [{"key": "password", "path": "password"}]
    handed = cluster.handed_spec(ns, pod)
    assert handed["callee"] == SPEC["callee"]
    assert (handed["rtmpUrl"], handed["rtmpStream"]) == (url, key)
    assert handed["callId"] == created["metadata"]["uid"]
    spec_secret = cluster.core.read_namespaced_secret(vols["spec"]["secret"]["secretName"], ns)
    assert spec_secret.metadata is not None
    (secret_owner,) = spec_secret.metadata.owner_references or []
    assert (secret_owner.kind, secret_owner.uid) == ("SipRtmpBridge", created["metadata"]["uid"])

    obj = cluster.wait_phase(ns, "call-a", "Pending")
    assert obj["status"]["podName"] == "call-a-bridge-0"
    assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"]
    assert cond(obj, "Ready")["status"] == "False"


def test_status_flows_to_streaming_then_succeeded(cluster: Cluster, ns: str) -> None:
    cluster.create_bridge(ns, "call-b", spec(connection={"sipDomain": "sip.example.test"}))
    cluster.wait_pod(ns, "call-b-bridge-0")
    ip = cluster.loopback_ip()
    with status_server(ip, cluster.status_port) as bridge:
        bridge.doc = doc("Connecting", "TRYING", "PENDING")
        cluster.set_pod_running(ns, "call-b-bridge-0", ip)
        obj = cluster.wait_phase(ns, "call-b", "Connecting")
        assert obj["status"]["call"]["state"] == "TRYING"
        assert cond(obj, "CallEstablished")["status"] == "False"

        bridge.doc = doc("Streaming", "ESTABLISHED", "PUBLISHING", bytes_sent=4096)
        obj = cluster.wait_phase(ns, "call-b", "Streaming")
        st = obj["status"]
        assert st["call"]["state"] == "ESTABLISHED" and st["call"]["sipStatusCode"] == 200
        assert st["stream"]["state"] == "PUBLISHING"
        assert st["stream"]["url"] == "rtmp://rtmp.example.test:1935/live/***"
        for type_ in ("CallEstablished", "Streaming", "Ready"):
            c = cond(obj, type_)
            assert c["status"] == "True", c
            assert c["observedGeneration"] == obj["metadata"]["generation"]
            assert c["lastTransitionTime"]
        ready_since = cond(obj, "Ready")["lastTransitionTime"]
        # What `kubectl get srb` shows: the server-side table with the printer columns.
        table = cluster.cp.get(
            f"/apis/siprtmp.io/v1alpha1/namespaces/{ns}/siprtmpbridges",
            accept="application/json;as=Table;v=v1;g=meta.k8s.io",
        )
        names = [c["name"] for c in table["columnDefinitions"]]
        row = dict(zip(names, table["rows"][0]["cells"], strict=True))
        assert (row["Phase"], row["Call"], row["Stream"]) == (
            "Streaming",
            "ESTABLISHED",
            "PUBLISHING",
        )

        bridge.doc = doc("Streaming", "ESTABLISHED", "PUBLISHING", bytes_sent=99999)
        obj = cluster.wait_bridge(
            ns, "call-b", lambda o: o["status"]["stream"]["bytesSent"] == 99999, "bytesSent updated"
        )
        assert cond(obj, "Ready")["lastTransitionTime"] == ready_since

        # The RTMP server drops the stream: the call stays up while the bridge reconnects.
        bridge.doc = doc("Reconnecting", "ESTABLISHED", "RECONNECTING", bytes_sent=99999)
        obj = cluster.wait_phase(ns, "call-b", "Reconnecting")
        assert cond(obj, "CallEstablished")["status"] == "True"
        assert cond(obj, "Streaming")["status"] == "False"
        assert cond(obj, "Streaming")["reason"] == "Reconnecting"
        bridge.doc = doc("Streaming", "ESTABLISHED", "PUBLISHING", bytes_sent=100000)
        cluster.wait_phase(ns, "call-b", "Streaming")

        final = doc(
            "Succeeded",
            "FINISH",
            "UNPUBLISHED",
            reason="RemoteHangup",
            bytes_sent=123456,
            exit_code=0,
        )
        cluster.set_pod_terminated(ns, "call-b-bridge-0", 0, json.dumps(final))
    obj = cluster.wait_phase(ns, "call-b", "Succeeded")
    st = obj["status"]
    assert st["reason"] == "RemoteHangup"
    assert st["call"]["state"] == "FINISH" and st["stream"]["bytesSent"] == 123456
    assert st["finishedAt"] and st["exitCode"] == 0
    assert cond(obj, "Ready")["status"] == "False"

    # Kubernetes Events on the transitions, and the metrics saw them.
    reasons = wait_for(
        "events",
        lambda: (
            {e["reason"] for e in cluster.events(ns, "call-b")}
            if len(cluster.events(ns, "call-b")) >= 3
            else None
        ),
    )
    assert {"Streaming", "RemoteHangup"} <= reasons, reasons
    metrics = cluster.operator.metrics()
    assert "siprtmp_operator_creation_to_streaming_seconds_count" in metrics
    assert 'siprtmp_operator_bridges{phase="Succeeded"}' in metrics


@pytest.mark.parametrize(
    ("exit_code", "reason", "retryable"),
    [(5, "NoAnswer", True), (3, "AuthenticationFailed", False)],
)
def test_failed_call_redials_then_gives_up(
    cluster: Cluster, ns: str, exit_code: int, reason: str, retryable: bool
) -> None:
    cluster.create_bridge(ns, "call-c", spec(maxRetries=1))
    failure = json.dumps(doc("Failed", "FAILED", "PENDING", reason=reason, exit_code=exit_code))
    cluster.wait_pod(ns, "call-c-bridge-0")
    cluster.set_pod_terminated(ns, "call-c-bridge-0", exit_code, failure)
    if retryable:
        # Redial: a new pod after the backoff, counted in status.
        cluster.wait_pod(ns, "call-c-bridge-1")
        obj = cluster.wait_bridge(
            ns,
            "call-c",
            lambda o: o["status"].get("podName") == "call-c-bridge-1",
            "second attempt placed",
        )
        assert obj["status"]["retries"] == 1 and obj["status"]["attempt"] == 1
        assert obj["status"]["lastFailure"]["reason"] == reason
        cluster.set_pod_terminated(ns, "call-c-bridge-1", exit_code, failure)
    obj = cluster.wait_phase(ns, "call-c", "Failed")
    assert obj["status"]["reason"] == reason
    assert obj["status"]["exitCode"] == exit_code
    assert ("maxRetries (1) reached" if retryable else "not retryable") in obj["status"]["message"]
    time.sleep(1.5)  # several reconcile ticks: nothing more happens to a Failed bridge
    assert sorted(p["metadata"]["name"] for p in cluster.pods(ns)) == (
        ["call-c-bridge-0", "call-c-bridge-1"] if retryable else ["call-c-bridge-0"]
    )
    assert any(e["type"] == "Warning" for e in cluster.events(ns, "call-c"))


def test_pod_failure_without_message_uses_exit_code(cluster: Cluster, ns: str) -> None:
    cluster.create_bridge(ns, "call-d", spec(maxRetries=0))
    cluster.wait_pod(ns, "call-d-bridge-0")
    cluster.set_pod_terminated(ns, "call-d-bridge-0", 7, "")
    obj = cluster.wait_phase(ns, "call-d", "Failed")
    assert obj["status"]["reason"] == "RtmpFailed"


def test_delete_mid_call_stops_pod_gracefully(cluster: Cluster, ns: str) -> None:
    cluster.create_bridge(ns, "call-e", spec())
    cluster.wait_pod(ns, "call-e-bridge-0")
    cluster.bind_pod(ns, "call-e-bridge-0", "node-1")  # bound pods are deleted gracefully
    ip = cluster.loopback_ip()
    with status_server(ip, cluster.status_port) as bridge:
        bridge.doc = doc("Streaming", "ESTABLISHED", "PUBLISHING")
        cluster.set_pod_running(ns, "call-e-bridge-0", ip)
        cluster.wait_phase(ns, "call-e", "Streaming")
        cluster.delete_bridge(ns, "call-e")
        pod = wait_for(
            "pod terminating",
            lambda: (
                (p := cluster.pod(ns, "call-e-bridge-0"))
                and p["metadata"].get("deletionTimestamp")
                and p
            ),
        )
        # SIGTERM with the configured grace period: the bridge sends BYE and flushes.
        assert pod["metadata"]["deletionGracePeriodSeconds"] == 7
        obj = cluster.wait_phase(ns, "call-e", "Terminating")
        assert obj["metadata"]["deletionTimestamp"]
        # The resource waits for its pod; the "kubelet" now reports the container gone.
        time.sleep(1)
        assert cluster.bridge(ns, "call-e") is not None
        cluster.core.delete_namespaced_pod("call-e-bridge-0", ns, grace_period_seconds=0)
    wait_for("bridge deleted", lambda: cluster.bridge(ns, "call-e") is None, timeout=30)


def test_operator_restart_mid_call(cluster: Cluster, ns: str) -> None:
    cluster.create_bridge(ns, "call-f", spec())
    cluster.wait_pod(ns, "call-f-bridge-0")
    ip = cluster.loopback_ip()
    with status_server(ip, cluster.status_port) as bridge:
        bridge.doc = doc("Streaming", "ESTABLISHED", "PUBLISHING", bytes_sent=1000)
        cluster.set_pod_running(ns, "call-f-bridge-0", ip)
        before = cluster.wait_phase(ns, "call-f", "Streaming")
        cluster.operator.stop()
        bridge.doc = doc("Streaming", "ESTABLISHED", "PUBLISHING", bytes_sent=2000)
        time.sleep(1)
        assert cluster.bridge(ns, "call-f")["status"]["stream"]["bytesSent"] == 1000  # type: ignore[index]
        cluster.operator.start()
        after = cluster.wait_bridge(
            ns,
            "call-f",
            lambda o: o["status"]["stream"]["bytesSent"] == 2000,
            "status resumed after restart",
        )
    assert [p["metadata"]["name"] for p in cluster.pods(ns)] == ["call-f-bridge-0"]
    for key in ("podName", "attempt", "startedAt", "streamingAt"):
        assert after["status"][key] == before["status"][key], key
    assert cond(after, "Ready")["lastTransitionTime"] == cond(before, "Ready")["lastTransitionTime"]


def test_duplicate_stream_is_refused(cluster: Cluster, ns: str) -> None:
    shared = "shared?s_bl=1&s_sc=SEKRIT7731&s_sw=0#f"
    cluster.create_bridge(ns, "first", spec(rtmpStream=shared))
    cluster.wait_pod(ns, "first-bridge-0")
    cluster.wait_bridge(ns, "first", lambda o: bool(o["status"].get("podName")), "placed")
    # Same stream, spelled differently (host case, default port, trailing slash).
    cluster.create_bridge(
        ns, "second", spec(rtmpUrl="rtmp://RTMP.example.test/live/", rtmpStream=shared)
    )
    obj = cluster.wait_phase(ns, "second", "Failed")
    assert obj["status"]["reason"] == "DuplicateStream"
    assert obj["status"]["message"].startswith("the stream is already published by bridge first;")
    assert cluster.pod(ns, "second-bridge-0") is None
    # Neither the status nor the Event shows the URL or the key; another namespace's bridge
    # is not named.
    elsewhere = cluster.namespace(f"{ns}-other")
    cluster.create_bridge(elsewhere, "third", spec(rtmpStream=shared))
    other = cluster.wait_phase(elsewhere, "third", "Failed")
    assert "a bridge in another namespace" in other["status"]["message"]
    events = wait_for(
        "DuplicateStream events",
        lambda: (
            found
            if len(found := cluster.events(ns, "second") + cluster.events(elsewhere, "third")) >= 2
            and all(e["reason"] == "DuplicateStream" for e in found)
            else None
        ),
    )
    shown = [obj["status"]["message"], other["status"]["message"], *(e["message"] for e in events)]
    for text in shown:
        assert not [s for s in ("shared", "SEKRIT7731", "rtmp.example", ns) if s in text], text
    # A call whose own stream is free but one of whose destinations is taken: refused alike.
    listed = [{"rtmpUrl": SPEC["rtmpUrl"], "rtmpStream": shared}]
    cluster.create_bridge(ns, "listing", spec(destinations=listed))
    listing = cluster.wait_phase(ns, "listing", "Failed")
    assert listing["status"]["reason"] == "DuplicateStream"
    assert listing["status"]["message"].startswith(
        "the stream is already published by bridge first;"
    )
    assert cluster.pod(ns, "listing-bridge-0") is None
    # A different stream on the same server is fine.
    cluster.create_bridge(ns, "third", spec())
    cluster.wait_pod(ns, "third-bridge-0")
    # Once the first has finished, the stream is free again.
    cluster.set_pod_terminated(ns, "first-bridge-0", 0, "")
    cluster.wait_phase(ns, "first", "Succeeded")
    cluster.create_bridge(ns, "fourth", spec(rtmpStream=shared))
    cluster.wait_pod(ns, "fourth-bridge-0")


def test_ttl_after_finished_deletes_bridge_and_pod(cluster: Cluster, ns: str) -> None:
    cluster.create_bridge(ns, "call-g", spec(ttlSecondsAfterFinished=1))
    cluster.create_bridge(ns, "call-h", spec())
    for name in ("call-g", "call-h"):
        cluster.wait_pod(ns, f"{name}-bridge-0")
        cluster.set_pod_terminated(ns, f"{name}-bridge-0", 0, "")
        cluster.wait_phase(ns, name, "Succeeded")
    wait_for("bridge deleted after TTL", lambda: cluster.bridge(ns, "call-g") is None, timeout=45)
    # kube-controller-manager's garbage collector removes the owned pod.
    wait_for(
        "pod garbage-collected", lambda: cluster.pod(ns, "call-g-bridge-0") is None, timeout=60
    )
    time.sleep(1)
    assert cluster.bridge(ns, "call-h") is not None  # no TTL: kept


def test_host_network_windows_and_node_external_ip(cluster: Cluster, ns: str) -> None:
    node_name = f"edge-{ns}"
    cluster.core.create_node(
        kubernetes.client.V1Node(metadata=kubernetes.client.V1ObjectMeta(name=node_name))
    )
    cluster.core.patch_node_status(
        node_name,
        {
            "status": {
                "addresses": [
                    {"type": "InternalIP", "address": "10.1.2.3"},
                    {"type": "ExternalIP", "address": "203.0.113.7"},
                ],
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "reason": "KubeletReady",
                        "message": "test",
                        "lastHeartbeatTime": None,
                    }
                ],
            }
        },
    )
    try:
        host = {"mode": "HostNetwork"}
        cluster.create_bridge(ns, "hn-a", spec(rtmpStream="a", networking=host))
        cluster.create_bridge(ns, "hn-b", spec(rtmpStream="b", networking=host))
        cluster.create_bridge(
            ns,
            "hn-c",
            spec(
                rtmpStream="c",
                networking={"mode": "HostNetwork", "publicAddressSource": "NodeExternalIP"},
            ),
        )
        windows = []
        for name in ("hn-a", "hn-b", "hn-c"):
            pod = cluster.wait_pod(ns, f"{name}-bridge-0")
            assert pod["spec"]["hostNetwork"] is True
            ports = {p["containerPort"] for p in pod["spec"]["containers"][0]["ports"]}
            handed = cluster.handed_spec(ns, pod)
            assert handed["nat"]["rtpPortMin"] in ports and handed["nat"]["rtpPortMax"] in ports
            assert all(40000 <= p <= 40031 for p in ports)
            windows.append(ports)
            status = cluster.wait_bridge(
                ns, name, lambda o: "networking" in o["status"], "networking in status"
            )["status"]["networking"]
            assert status["rtpPortMin"] == handed["nat"]["rtpPortMin"]
        assert not (windows[0] & windows[1]) and not (windows[1] & windows[2])
        assert not (windows[0] & windows[2])
        pod_c = cluster.pod(ns, "hn-c-bridge-0")
        assert pod_c is not None
        handed = cluster.handed_spec(ns, pod_c)
        assert handed["nat"]["publicAddress"] == "203.0.113.7"
        terms = pod_c["spec"]["affinity"]["nodeAffinity"][
            "requiredDuringSchedulingIgnoredDuringExecution"
        ]["nodeSelectorTerms"]
        assert terms[0]["matchFields"][0]["values"] == [node_name]
    finally:
        cluster.core.delete_node(node_name)


BAD_SPECS: list[tuple[str, dict[str, Any], str]] = [
    ("no-callee", {k: v for k, v in SPEC.items() if k != "callee"}, "spec.callee: Required"),
    ("http-url", spec(rtmpUrl="http://rtmp.example.test/live"), "spec.rtmpUrl"),
    ("bad-callee", spec(callee="sip:bad callee@x"), "spec.callee"),
    ("user-no-domain", spec(callee="alice", connection={}), "needs connection.sipDomain"),
    (
        "transport",
        spec(connection={**SPEC["connection"], "sipTransport": "sctp"}),
        "spec.connection.sipTransport: Unsupported value",
    ),
    (
        "port",
        spec(connection={**SPEC["connection"], "sipPort": 70000}),
        "spec.connection.sipPort: Invalid value",
    ),
    ("register", spec(connection={"sipRegisterRequired": True}), "sipRegisterRequired needs"),
    ("rtp-range", spec(nat={"rtpPortMin": 20000, "rtpPortMax": 10000}), "rtpPortMin must be below"),
    ("rate", spec(audio={"sampleRate": 22050}), "spec.audio.sampleRate: Unsupported value"),
    ("stream-space", spec(rtmpStream="a b"), "spec.rtmpStream"),
    (
        "external-ip",
        spec(networking={"publicAddressSource": "NodeExternalIP"}),
        "NodeExternalIP needs mode HostNetwork",
    ),
    (
        "secret-ref",
        spec(connection={"sipPasswordSecretRef": {"name": "x"}}),
        "spec.connection.sipPasswordSecretRef.key: Required",
    ),
    (
        "stream-and-stream-ref",
        spec(rtmpStreamSecretRef={"name": "cdn", "key": "fb"}),
        "give exactly one of rtmpStream and rtmpStreamSecretRef",
    ),
    ("retries", spec(maxRetries=-1), "spec.maxRetries"),
    ("video-mode", spec(video={"mode": "transcode"}), "spec.video.mode: Unsupported value"),
    ("video-absent", spec(video={"whenAbsent": "black"}), "spec.video.whenAbsent: Unsupported"),
]


@pytest.mark.parametrize(("case", "bad", "message"), BAD_SPECS, ids=[c[0] for c in BAD_SPECS])
def test_admission_rejects_bad_resources(
    cluster: Cluster, ns: str, case: str, bad: dict[str, Any], message: str
) -> None:
    with pytest.raises(ApiException) as info:
        cluster.create_bridge(ns, f"bad-{case}", bad)
    assert info.value.status == 422, info.value.body
    assert message in str(info.value.body), info.value.body


def test_admission_rejects_long_names_and_changes_to_a_placed_call(
    cluster: Cluster, ns: str
) -> None:
    with pytest.raises(ApiException) as info:
        cluster.create_bridge(ns, "x" * 51, spec())
    assert info.value.status == 422 and "at most 50 characters" in str(info.value.body)

    cluster.create_bridge(ns, "placed", spec())
    for change, message in (
        ({"callee": "sip:other@sip.example.test"}, "callee is immutable"),
        ({"rtmpStream": "other"}, "rtmpStream is immutable"),
        ({"connection": {"sipDomain": "other.test"}}, "connection is immutable"),
        ({"video": {"mode": "passthrough"}}, "video is immutable"),
    ):
        with pytest.raises(ApiException) as info:
            cluster.custom.patch_namespaced_custom_object(
                "siprtmp.io", "v1alpha1", ns, "siprtmpbridges", "placed", {"spec": change}
            )
        assert info.value.status == 422 and message in str(info.value.body), info.value.body
    # Policy fields may change: they act on what happens after the call.
    cluster.custom.patch_namespaced_custom_object(
        "siprtmp.io",
        "v1alpha1",
        ns,
        "siprtmpbridges",
        "placed",
        {"spec": {"ttlSecondsAfterFinished": 60}},
    )


def test_printer_columns_and_short_name(cluster: Cluster) -> None:
    ext = kubernetes.client.ApiextensionsV1Api(cluster.api)
    crd = ext.read_custom_resource_definition("siprtmpbridges.siprtmp.io")
    assert "srb" in (crd.spec.names.short_names or []) and crd.spec.names.categories
    cols = [c.name for c in crd.spec.versions[0].additional_printer_columns or []]
    assert cols[:4] == ["Phase", "Call", "Stream", "Age"]


def test_operator_identity_is_the_charts_service_account(cluster: Cluster) -> None:
    """The operator runs with the chart's RBAC: it can do its job and no more."""
    review = kubernetes.client.AuthorizationV1Api(cluster.api)
    sa = "system:serviceaccount:siprtmp-system:srb-sip-rtmp-operator"

    def allowed(verb: str, resource: str, group: str = "", sub: str = "") -> bool:
        attrs = kubernetes.client.V1ResourceAttributes(
            verb=verb, resource=resource, group=group, subresource=sub, namespace="any"
        )
        body = kubernetes.client.V1SubjectAccessReview(
            spec=kubernetes.client.V1SubjectAccessReviewSpec(user=sa, resource_attributes=attrs)
        )
        status = review.create_subject_access_review(body).status
        return bool(status and status.allowed)

    assert allowed("create", "pods") and allowed("patch", "siprtmpbridges", "siprtmp.io", "status")
    # The pod mounts the Secret; the operator gets it only to read its label (as metadata:
    # RBAC cannot say so), and never lists, watches or changes Secrets.
    assert allowed("get", "secrets") and allowed("create", "secrets")
    assert not allowed("list", "secrets") and not allowed("watch", "secrets")
    assert not allowed("update", "secrets") and not allowed("delete", "secrets")
    assert not allowed("update", "pods") and not allowed("create", "deployments", "apps")
    text = cluster.operator.kubeconfig.read_text()
    assert "client-certificate" not in text and "token" in text
    # Nothing the operator has done so far was refused by RBAC (admission refusals a test
    # provokes, PodSecurity's among them, say "forbidden" too).
    assert rbac_refusals(cluster.operator.log_text()) == []


def test_operator_is_not_ready_while_the_api_server_does_not_answer(
    cluster: Cluster, tmp_path: Path
) -> None:
    """Started is not ready: an operator that cannot reach the API server must not count as
    rolled out (kubelet's readiness probe gates the Deployment on it)."""
    config = yaml.safe_load(cluster.cp.admin_kubeconfig.read_text())
    config["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{free_port()}"
    dead = tmp_path / "dead.kubeconfig"
    dead.write_text(yaml.safe_dump(config))
    operator = OperatorProcess(tmp_path, dead, {})
    operator.start(wait_ready=False)
    try:
        wait_for("operator /healthz", lambda: http_get(f"{operator.url}/healthz")[0] == 200)
        # Past start-up, it says why it is not ready, and stays so.
        wait_for(
            "readyz naming the API server",
            lambda: http_get(f"{operator.url}/readyz") == (503, "no answer from the API server\n"),
        )
        time.sleep(3)
        assert http_get(f"{operator.url}/readyz")[0] == 503
    finally:
        operator.stop()


def test_operator_probes(cluster: Cluster) -> None:
    for path in ("/healthz", "/readyz"):
        with urllib.request.urlopen(cluster.operator.url + path, timeout=5) as resp:
            assert resp.status == 200
    metrics = cluster.operator.metrics()
    for name in (
        "siprtmp_operator_bridges",
        "siprtmp_operator_reconcile_errors_total",
        "siprtmp_operator_creation_to_pod_running_seconds",
    ):
        assert name in metrics


@pytest.mark.parametrize(
    "path",
    sorted(p.name for p in (Path(__file__).resolve().parents[2] / "examples").glob("*.yaml")),
)
def test_examples_are_admitted(cluster: Cluster, ns: str, path: str) -> None:
    """Every example resource passes the CRD's validation (server-side dry run)."""
    example = Path(__file__).resolve().parents[2] / "examples" / path
    for obj in yaml.safe_load_all(example.read_text()):
        if not obj or obj.get("kind") != "SipRtmpBridge":
            continue
        created = cluster.custom.create_namespaced_custom_object(
            "siprtmp.io", "v1alpha1", ns, "siprtmpbridges", obj, dry_run="All"
        )
        assert cast(dict[str, Any], created)["metadata"]["name"] == obj["metadata"]["name"]


def test_kind_example_is_admitted(cluster: Cluster) -> None:
    kind_dir = Path(__file__).resolve().parents[2] / "examples" / "kind"
    obj = yaml.safe_load((kind_dir / "bridge.yaml").read_text())
    cluster.namespace("demo")
    cluster.custom.create_namespaced_custom_object(
        "siprtmp.io", "v1alpha1", "demo", "siprtmpbridges", obj, dry_run="All"
    )
