"""Unit tests of the pure builders: no cluster, no network."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from siprtmp_contract.pod import CONTROL_TOKEN_ENV
from siprtmp_contract.spec import parse_spec
from siprtmp_contract.states import Phase
from siprtmp_operator.livestatus import post, status_url
from siprtmp_operator.names import pod_name
from siprtmp_operator.networking import (
    NetworkPlan,
    choose_node,
    choose_slot,
    effective_mode,
    window_for_slot,
)
from siprtmp_operator.pod import PodAttempt, bridge_spec, build_pod, spec_secret_manifest
from siprtmp_operator.policy import (
    BridgeRef,
    backoff_seconds,
    decide_retry,
    duplicate_owner,
    holder_shown,
    stream_key,
    ttl_remaining,
)
from siprtmp_operator.reconcile import plan_step
from siprtmp_operator.settings import Settings
from siprtmp_operator.status import (
    PodObservation,
    derive_status,
    observe_pod,
    parse_status_document,
    with_conditions,
)
from siprtmp_operator.statusmodel import BridgeStatus, merge_patch, render_status
from siprtmp_operator.timeutil import fmt

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
SPEC: dict[str, Any] = {
    "callee": "sip:room@sip.example.test",
    "rtmpUrl": "rtmp://user:pw@rtmp.example.test:1935/live",
    "rtmpStream": "secret-key",
    "hasAudio": True,
    "hasVideo": False,
    "connection": {
        "sipDomain": "sip.example.test",
        "sipTransport": "tcp",
        "sipPasswordSecretRef": {"name": "acct", "key": "pw"},
    },
}
POD_NET = NetworkPlan(mode="PodNetwork", public_address_source="None")


def attempt_of(
    settings: Settings | None = None,
    plan: NetworkPlan = POD_NET,
    spec: dict[str, Any] | None = None,
    attempt: int = 0,
) -> PodAttempt:
    """Attempt ``attempt`` of the test bridge ``ns/b``."""
    return PodAttempt("b", "ns", "uid-1", spec or SPEC, attempt, plan, settings or Settings())


def make_spec_secret(
    settings: Settings | None = None,
    plan: NetworkPlan = POD_NET,
    spec: dict[str, Any] | None = None,
    attempt: int = 0,
) -> dict[str, Any]:
    return spec_secret_manifest(attempt_of(settings, plan, spec, attempt))


def handed_spec(
    settings: Settings | None = None,
    plan: NetworkPlan = POD_NET,
    spec: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The spec document the bridge reads: the spec Secret's one key."""
    handed: dict[str, Any] = json.loads(
        make_spec_secret(settings, plan, spec)["stringData"]["spec.json"]
    )
    return handed


def make_pod(
    settings: Settings | None = None,
    plan: NetworkPlan = POD_NET,
    spec: dict[str, Any] | None = None,
    attempt: int = 0,
) -> dict[str, Any]:
    return build_pod(
        attempt_of(settings, plan, spec, attempt),
        control_token="pod-token",
        spec_secret=make_spec_secret(settings, plan, spec, attempt)["metadata"]["name"],
    )


# --- pod builder -------------------------------------------------------------------------


def test_pod_is_named_owned_and_labelled() -> None:
    pod = make_pod(attempt=2)
    meta = pod["metadata"]
    assert meta["name"] == pod_name("b", 2) == "b-bridge-2"
    assert meta["ownerReferences"][0] == {
        "apiVersion": "siprtmp.io/v1alpha1",
        "kind": "SipRtmpBridge",
        "name": "b",
        "uid": "uid-1",
        "controller": True,
        "blockOwnerDeletion": True,
    }
    assert meta["labels"]["siprtmp.io/attempt"] == "2"
    assert meta["labels"]["siprtmp.io/bridge-uid"] == "uid-1"


def test_pod_security_settings() -> None:
    spec = make_pod()["spec"]
    assert spec["automountServiceAccountToken"] is False
    assert spec["restartPolicy"] == "Never"
    assert spec["enableServiceLinks"] is False
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = spec["containers"][0]["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert "hostNetwork" not in spec


def test_pod_takes_resources_grace_image_and_port_from_settings() -> None:
    s = Settings(
        bridge_image="reg/bridge:1",
        bridge_cpu_limit="2",
        bridge_memory_limit="1Gi",
        bridge_termination_grace_seconds=33,
        bridge_status_port=9000,
    )
    pod = make_pod(s)
    c = pod["spec"]["containers"][0]
    assert c["image"] == "reg/bridge:1"
    assert c["resources"]["limits"] == {"cpu": "2", "memory": "1Gi"}
    assert pod["spec"]["terminationGracePeriodSeconds"] == 33
    assert c["ports"] == [{"name": "status", "containerPort": 9000, "protocol": "TCP"}]
    assert c["args"][c["args"].index("--status-port") + 1] == "9000"


def test_spec_and_password_are_mounted_files() -> None:
    pod = make_pod()
    c = pod["spec"]["containers"][0]
    assert c["command"] == ["sip-rtmp-bridge"]
    assert c["args"][:3] == ["run", "--spec", "/etc/siprtmp/spec/spec.json"]
    assert c["args"][c["args"].index("--sip-password-file") + 1] == "/etc/siprtmp/secret/password"
    vols = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert vols["sip-password"]["secret"] == {
        "secretName": "acct",
        "defaultMode": 0o440,
        "items": [{"key": "pw", "path": "password"}],
    }
    secret = make_spec_secret()
    assert vols["spec"]["secret"] == {
        "secretName": secret["metadata"]["name"],
        "defaultMode": 0o440,
        "items": [{"key": "spec.json", "path": "spec.json"}],
    }
    (owner,) = secret["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["uid"]) == ("SipRtmpBridge", "uid-1")
    handed = handed_spec()
    assert handed["callee"] == SPEC["callee"] and handed["callId"] == "uid-1"


def test_no_field_of_the_pod_shows_the_stream_key_or_url_credentials() -> None:
    """Whoever may read pods (the built-in view role) learns no key: it is in the Secret only."""
    key = "barstream?s_bl=1&s_sc=SEKRIT7731&s_sw=0#frag"
    spec = {
        **SPEC,
        "rtmpUrl": "rtmp://pubuser:URLPASS99@h:1935/live?token=T0KEN42",
        "rtmpStream": key,
    }
    pod = json.dumps(make_pod(spec=spec))
    shown = [s for s in ("barstream", "SEKRIT7731", "URLPASS99", "pubuser", "T0KEN42") if s in pod]
    assert not shown
    assert handed_spec(spec=spec)["rtmpStream"] == key
    # Another spec, another Secret: one found existing is adopted only when it holds this spec.
    assert make_spec_secret(spec=spec)["metadata"]["name"] != make_spec_secret()["metadata"]["name"]
    assert make_spec_secret(spec=spec)["metadata"]["name"].startswith("b-bridge-0-spec-")


def test_a_stream_key_secret_ref_is_mounted_as_the_password_is() -> None:
    spec = {k: v for k, v in SPEC.items() if k != "rtmpStream"}
    pod = make_pod(spec={**spec, "rtmpStreamSecretRef": {"name": "cdn", "key": "fb"}})
    c = pod["spec"]["containers"][0]
    assert c["args"][c["args"].index("--rtmp-stream-file") + 1] == "/etc/siprtmp/stream/key"
    assert {"name": "rtmp-stream", "mountPath": "/etc/siprtmp/stream", "readOnly": True} in c[
        "volumeMounts"
    ]
    vols = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert vols["rtmp-stream"]["secret"] == {
        "secretName": "cdn",
        "defaultMode": 0o440,
        "items": [{"key": "fb", "path": "key"}],
    }
    assert stream_key({**spec, "rtmpStreamSecretRef": {"name": "cdn", "key": "fb"}}) is None


def test_no_secret_ref_means_no_password_flag_or_volume() -> None:
    spec = {k: v for k, v in SPEC.items() if k != "connection"}
    pod = make_pod(spec=spec)
    assert "--sip-password-file" not in pod["spec"]["containers"][0]["args"]
    assert {v["name"] for v in pod["spec"]["volumes"]} == {"spec", "tmp"}


def test_bridge_spec_applies_the_charts_video_default_unless_the_resource_sets_video() -> None:
    assert "video" not in bridge_spec(SPEC, "uid", POD_NET, Settings())
    chart = Settings.from_env(
        {"SIPRTMP_DEFAULT_VIDEO_MODE": "passthrough", "SIPRTMP_DEFAULT_VIDEO_WHEN_ABSENT": "slate"}
    )
    handed = bridge_spec(SPEC, "uid", POD_NET, chart)
    assert handed["video"] == {"mode": "passthrough", "whenAbsent": "slate"}
    without_account = {k: v for k, v in handed.items() if k != "connection"}
    assert parse_spec(without_account).video.when_absent == "slate"  # the bridge takes it
    own = bridge_spec({**SPEC, "video": {"mode": "disabled"}}, "uid", POD_NET, chart)
    assert own["video"] == {"mode": "disabled"}
    with pytest.raises(ValueError, match="SIPRTMP_DEFAULT_VIDEO_MODE"):
        Settings.from_env({"SIPRTMP_DEFAULT_VIDEO_MODE": "transcode"})
    # Under a CDN's profile the chart's whenAbsent would override the profile's slate.
    profiled = bridge_spec({**SPEC, "profile": "youtube"}, "uid", POD_NET, chart)
    assert profiled["video"] == {"mode": "passthrough"}


def test_a_slate_image_config_map_is_mounted_and_handed_to_the_bridge() -> None:
    ref = {"name": "town-hall", "key": "card.png"}
    pod = make_pod(spec={**SPEC, "video": {"slate": {"imageConfigMapRef": ref}}})
    container = pod["spec"]["containers"][0]
    args = container["args"]
    assert args[args.index("--slate-image-file") + 1] == "/etc/siprtmp/slate/image"
    (volume,) = [v for v in pod["spec"]["volumes"] if v["name"] == "slate-image"]
    assert volume["configMap"] == {
        "name": "town-hall",
        "items": [{"key": "card.png", "path": "image"}],
    }
    mount = {"name": "slate-image", "mountPath": "/etc/siprtmp/slate", "readOnly": True}
    assert mount in container["volumeMounts"]
    assert "--slate-image-file" not in make_pod(spec=SPEC)["spec"]["containers"][0]["args"]


def test_bridge_spec_keeps_user_call_id_and_adds_operator_stun() -> None:
    s = Settings(stun_servers=("stun.example.test:3478",))
    doc = bridge_spec({**SPEC, "callId": "mine"}, "uid", POD_NET, s)
    assert doc["callId"] == "mine"
    assert doc["nat"]["stunServers"] == ["stun.example.test:3478"]
    own = bridge_spec({**SPEC, "nat": {"stunServers": ["own:1"]}}, "uid", POD_NET, s)
    assert own["nat"]["stunServers"] == ["own:1"]


def test_host_network_pod_declares_its_window_as_host_ports() -> None:
    s = Settings(host_port_min=30000, host_port_max=30099, host_port_window=8)
    w = window_for_slot(3, s)
    plan = NetworkPlan(
        mode="HostNetwork",
        public_address_source="NodeExternalIP",
        window=w,
        node_name="n1",
        public_address="203.0.113.5",
    )
    pod = make_pod(s, plan)
    assert pod["spec"]["hostNetwork"] is True
    assert pod["spec"]["dnsPolicy"] == "ClusterFirstWithHostNet"
    ports = pod["spec"]["containers"][0]["ports"]
    assert ports[0] == {"name": "status", "containerPort": 30024, "protocol": "TCP"}
    assert {"name": "sip-tcp", "containerPort": 30025, "protocol": "TCP"} in ports
    assert sorted(p["containerPort"] for p in ports if p["protocol"] == "UDP") == list(
        range(30025, 30032)
    )
    handed = handed_spec(s, plan)
    assert handed["nat"] | {} == {
        "rtpPortMin": 30026,
        "rtpPortMax": 30031,
        "publicAddress": "203.0.113.5",
    }
    assert handed["networking"]["sipLocalPort"] == 30025
    term = pod["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"
    ]["nodeSelectorTerms"][0]
    assert term["matchFields"] == [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]


# --- networking --------------------------------------------------------------------------


def test_windows_do_not_overlap_and_stay_in_range() -> None:
    s = Settings(host_port_min=30000, host_port_max=30039, host_port_window=8)
    assert s.host_port_slots == 5
    spans = [
        set(range(w.first, w.first + w.size)) for w in (window_for_slot(i, s) for i in range(5))
    ]
    assert all(not (a & b) for i, a in enumerate(spans) for b in spans[i + 1 :])
    assert max(max(x) for x in spans) <= 30039
    with pytest.raises(ValueError, match="outside"):
        window_for_slot(5, s)


def test_choose_slot_takes_lowest_free_then_wraps() -> None:
    s = Settings(host_port_min=30000, host_port_max=30023, host_port_window=8)
    assert choose_slot([0, 2], s, "x") == 1
    assert choose_slot([0, 1, 2], s, "seed") in {0, 1, 2}


def test_effective_mode_prefers_resource_then_settings() -> None:
    s = Settings(network_mode="HostNetwork", public_address_source="NodeExternalIP")
    assert effective_mode({}, s) == ("HostNetwork", "NodeExternalIP")
    assert effective_mode({"networking": {"mode": "PodNetwork"}}, s) == ("PodNetwork", "None")


def node(name: str, ip: str | None, ready: bool = True) -> dict[str, Any]:
    addresses = [{"type": "InternalIP", "address": "10.0.0.1"}]
    if ip:
        addresses.append({"type": "ExternalIP", "address": ip})
    return {
        "metadata": {"name": name},
        "status": {
            "addresses": addresses,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def test_choose_node_needs_ready_external_ip_and_balances() -> None:
    nodes = [
        node("a", "198.51.100.1"),
        node("b", "198.51.100.2"),
        node("c", None),
        node("d", "198.51.100.4", ready=False),
    ]
    assert choose_node(nodes, {"a": 3, "b": 1}) == ("b", "198.51.100.2")
    assert choose_node([node("c", None)], {}) is None


# --- status ------------------------------------------------------------------------------


NEW = BridgeStatus()


def running(ip: str = "10.1.1.1") -> PodObservation:
    return PodObservation(phase="Running", pod_ip=ip, status_port=8080)


LIVE = {
    "phase": "Streaming",
    "reason": "Streaming",
    "message": "ok",
    "call": {"state": "ESTABLISHED", "sipStatusCode": 200, "codec": "PCMU/8000"},
    "stream": {"state": "PUBLISHING", "url": "rtmp://leak/live/secret-key", "bytesSent": 5},
}


def test_observe_pod_reads_phase_ip_port_and_termination() -> None:
    pod = {
        "metadata": {"deletionTimestamp": "x"},
        "spec": {
            "containers": [
                {"name": "bridge", "ports": [{"name": "status", "containerPort": 31000}]}
            ]
        },
        "status": {
            "phase": "Failed",
            "podIP": "10.0.0.9",
            "containerStatuses": [
                {
                    "name": "bridge",
                    "state": {"terminated": {"exitCode": 4, "reason": "Error", "message": "{}"}},
                }
            ],
        },
    }
    obs = observe_pod(pod)
    assert (obs.phase, obs.pod_ip, obs.status_port, obs.deleting) == (
        "Failed",
        "10.0.0.9",
        31000,
        True,
    )
    assert (obs.exit_code, obs.terminated_reason, obs.termination_message) == (4, "Error", "{}")


def test_live_document_maps_to_status_and_redacts_the_key() -> None:
    st = derive_status(NEW, running(), LIVE, (SPEC["rtmpUrl"],), NOW)
    assert st.phase == "Streaming"
    assert st.call_state == "ESTABLISHED"
    assert (st.stream or {})["url"] == "rtmp://***@rtmp.example.test:1935/live/***"
    assert "secret-key" not in json.dumps(render_status(st))
    assert "pw" not in (st.stream or {})["url"]


def test_video_status_is_copied_only_when_the_bridge_reports_it() -> None:
    assert "video" not in render_status(
        derive_status(NEW, running(), LIVE, (SPEC["rtmpUrl"],), NOW)
    )
    video = {"mode": "passthrough", "state": "RECEIVING", "resolution": "640x360", "reason": None}
    st = derive_status(NEW, running(), {**LIVE, "video": video}, (SPEC["rtmpUrl"],), NOW)
    assert st.video == {"mode": "passthrough", "state": "RECEIVING", "resolution": "640x360"}


def test_running_pod_without_live_status_is_connecting_and_keeps_last_known() -> None:
    assert derive_status(NEW, running(), None, ("rtmp://h/a",), NOW).phase == "Connecting"
    prev = derive_status(NEW, running(), LIVE, ("rtmp://h/a",), NOW)
    again = derive_status(prev, running(), None, ("rtmp://h/a",), NOW)
    assert again.phase == "Streaming" and (again.stream or {})["bytesSent"] == 5


def test_live_terminal_phase_waits_for_the_process_to_exit() -> None:
    st = derive_status(NEW, running(), {**LIVE, "phase": "Succeeded"}, ("rtmp://h/a",), NOW)
    assert st.phase == "Terminating"


def test_pending_pod_reports_waiting_reason() -> None:
    obs = PodObservation(
        phase="Pending", waiting_reason="ImagePullBackOff", waiting_message="no such image"
    )
    st = derive_status(NEW, obs, None, ("rtmp://h/a",), NOW)
    assert (st.phase, st.reason, st.message) == (
        "Pending",
        "ImagePullBackOff",
        "no such image",
    )


@pytest.mark.parametrize(
    ("code", "reason"),
    [(2, "InvalidSpec"), (5, "NoAnswer"), (8, "Unreachable"), (137, "PodFailed")],
)
def test_exit_code_without_message_gives_reason(code: int, reason: str) -> None:
    obs = PodObservation(phase="Failed", exit_code=code)
    st = derive_status(NEW, obs, None, ("rtmp://h/a",), NOW)
    assert (st.phase, st.reason, st.exit_code) == ("Failed", reason, code)


def test_oom_killed_is_named() -> None:
    obs = PodObservation(phase="Failed", exit_code=137, terminated_reason="OOMKilled")
    assert derive_status(NEW, obs, None, ("rtmp://h/a",), NOW).reason == "OOMKilled"


def test_termination_message_document_wins() -> None:
    final = {
        **LIVE,
        "phase": "Failed",
        "reason": "Busy",
        "message": "486 Busy Here",
        "call": {"state": "BUSY", "sipStatusCode": 486},
    }
    obs = PodObservation(phase="Failed", exit_code=4, termination_message=json.dumps(final))
    st = derive_status(NEW, obs, None, ("rtmp://h/a",), NOW)
    assert (st.reason, (st.call or {})["sipStatusCode"]) == ("Busy", 486)


def test_status_document_found_in_log_tail() -> None:
    tail = 'starting\n{"phase":"Connecting"}\n{"phase":"Failed","reason":"NoAnswer"}\nbye\n'
    assert parse_status_document(tail) == {"phase": "Failed", "reason": "NoAnswer"}
    assert parse_status_document("garbage") is None
    assert parse_status_document(None) is None


def test_conditions_follow_status_and_keep_transition_times() -> None:
    st = with_conditions(derive_status(NEW, running(), LIVE, ("rtmp://h/a",), NOW), 3, NOW)
    by = {c.type: c for c in st.conditions}
    assert all(by[t].status == "True" for t in ("CallEstablished", "Streaming", "Ready"))
    assert all(c.observed_generation == 3 for c in st.conditions)
    assert st.observed_generation == 3
    later = NOW + timedelta(seconds=30)
    same = with_conditions(st, 3, later)
    assert [c.last_transition_time for c in same.conditions] == [fmt(NOW)] * 3
    reconnecting = replace(st, phase=Phase.RECONNECTING, stream={"state": "RECONNECTING"})
    flipped = {c.type: c for c in with_conditions(reconnecting, 3, later).conditions}
    assert flipped["Streaming"].status == "False"
    assert flipped["Streaming"].reason == "Reconnecting"
    assert flipped["Streaming"].last_transition_time == fmt(later)
    assert flipped["CallEstablished"].last_transition_time == fmt(NOW)


# --- policies ----------------------------------------------------------------------------


def test_backoff_grows_and_is_capped() -> None:
    s = Settings(retry_backoff_seconds=10, retry_backoff_max_seconds=35)
    assert [backoff_seconds(n, s) for n in range(4)] == [10, 20, 35, 35]


def test_retry_is_bounded_and_only_for_retryable_reasons() -> None:
    s = Settings(default_max_retries=2)
    assert decide_retry({}, "NoAnswer", 0, s).retry
    assert not decide_retry({}, "NoAnswer", 2, s).retry
    assert not decide_retry({"maxRetries": 0}, "Busy", 0, s).retry
    assert not decide_retry({}, "AuthenticationFailed", 0, s).retry
    assert not decide_retry({}, "InvalidSpec", 0, s).retry


def test_ttl() -> None:
    s = Settings(default_ttl_seconds_after_finished=-1)
    done = {"finishedAt": fmt(NOW)}
    assert ttl_remaining({}, done, s, NOW) is None
    assert ttl_remaining({"ttlSecondsAfterFinished": 10}, done, s, NOW + timedelta(seconds=4)) == 6
    assert ttl_remaining({}, done, Settings(default_ttl_seconds_after_finished=0), NOW) == 0
    assert ttl_remaining({"ttlSecondsAfterFinished": 10}, {}, s, NOW) is None


def test_stream_key_normalises_spelling() -> None:
    a = stream_key({"rtmpUrl": "rtmp://Host.Example:1935/live/", "rtmpStream": "s"})
    b = stream_key({"rtmpUrl": "rtmp://host.example/live", "rtmpStream": "s"})
    assert a == b == "rtmp://host.example:1935/live/s"
    assert stream_key({"rtmpUrl": "rtmps://h/app", "rtmpStream": "s"}) == "rtmps://h:443/app/s"


def ref(name: str, created: str, phase: str | None = None, placed: bool = False) -> BridgeRef:
    return BridgeRef("ns", name, f"uid-{name}", created, phase, placed)


def test_duplicate_owner_prefers_placed_then_older() -> None:
    me = ref("me", "2026-01-01T00:00:05Z")
    assert duplicate_owner(me, [me]) is None
    older = ref("old", "2026-01-01T00:00:01Z")
    assert duplicate_owner(me, [me, older]) == older
    newer_placed = ref("new", "2026-01-01T00:00:09Z", "Streaming", placed=True)
    assert duplicate_owner(me, [newer_placed]) == newer_placed
    finished = ref("done", "2026-01-01T00:00:01Z", "Succeeded", placed=True)
    assert duplicate_owner(me, [finished]) is None
    # The older one is not refused because of the younger one.
    assert duplicate_owner(older, [me, older]) is None


def test_a_destination_added_to_a_live_call_yields_to_the_bridge_whose_own_stream_it_is() -> None:
    """Placed first, the adding bridge would win by order and publish a stream a younger live
    bridge has published since its start: it does not."""
    adder = ref("adder", "2026-01-01T00:00:01Z", "Streaming", placed=True)
    younger = ref("younger", "2026-01-01T00:00:09Z", "Streaming", placed=True)
    own = replace(younger, own_stream=True)
    assert duplicate_owner(adder, [adder, own], adding=True) == own
    assert duplicate_owner(adder, [adder, own]) is None  # at creation the order decides
    # Another list's destination, and a finished bridge's own stream: the order decides.
    assert duplicate_owner(adder, [adder, younger], adding=True) is None
    done = replace(own, phase="Succeeded")
    assert duplicate_owner(adder, [adder, done], adding=True) is None


# --- the reconcile plan ------------------------------------------------------------------


def resource(status: BridgeStatus | None = None, **spec: Any) -> dict[str, Any]:
    """The test bridge ``ns/b`` with ``status`` as the API stores it."""
    return {
        "metadata": {
            "name": "b",
            "namespace": "ns",
            "uid": "u",
            "generation": 1,
            "creationTimestamp": fmt(NOW),
        },
        "spec": {**SPEC, **spec},
        "status": render_status(status or NEW),
    }


FAST = Settings(retry_backoff_seconds=5, default_max_retries=1)


def test_new_bridge_creates_attempt_zero() -> None:
    plan = plan_step(resource(), None, None, NOW, FAST)
    assert plan.create_pod == 0
    assert plan.status.pod_name == "b-bridge-0" and plan.status.phase == "Pending"
    assert plan.events and plan.events[0][0] == "Normal"


def test_duplicate_is_failed_without_pod_and_shows_neither_url_nor_key() -> None:
    key = "barstream?s_bl=1&s_sc=SEKRIT7731&s_sw=0#f"
    owner = BridgeRef("ns", "other", "u2", fmt(NOW), "Streaming", True)
    plan = plan_step(
        resource(rtmpStream=key), None, None, NOW, FAST, duplicate_of=holder_shown("ns", owner)
    )
    assert plan.create_pod is None
    assert (plan.status.phase, plan.status.reason) == ("Failed", "DuplicateStream")
    assert plan.status.finished_at
    (event,) = plan.events
    for text in (plan.status.message or "", event[2]):
        assert "already published by bridge other;" in text
        assert not [s for s in ("barstream", "SEKRIT7731", "pw@", "rtmp.example") if s in text]


def test_a_duplicate_elsewhere_is_not_named() -> None:
    owner = BridgeRef("tenant-b", "their-call", "u2", fmt(NOW), "Streaming", True)
    assert holder_shown("tenant-a", owner) == "a bridge in another namespace"
    assert holder_shown("tenant-b", owner) == "bridge their-call"


def test_failed_attempt_schedules_redial_then_creates_next_pod() -> None:
    placed = plan_step(resource(), None, None, NOW, FAST).status
    failed_pod = PodObservation(phase="Failed", exit_code=5)
    plan = plan_step(resource(placed), failed_pod, None, NOW, FAST)
    st = plan.status
    assert (st.phase, st.reason, st.attempt, st.retries) == (
        "Pending",
        "RetryBackoff",
        1,
        1,
    )
    assert st.next_retry_at == fmt(NOW + timedelta(seconds=5))
    assert plan.create_pod is None
    early = plan_step(resource(st), None, None, NOW + timedelta(seconds=2), FAST)
    assert early.create_pod is None
    due = plan_step(resource(st), None, None, NOW + timedelta(seconds=5), FAST)
    assert due.create_pod == 1 and due.status.pod_name == "b-bridge-1"
    assert "nextRetryAt" not in render_status(due.status)
    final = plan_step(resource(due.status), failed_pod, None, NOW + timedelta(seconds=9), FAST)
    assert (final.status.phase, final.status.reason) == ("Failed", "NoAnswer")
    assert "maxRetries (1) reached" in (final.status.message or "")


def test_vanished_pod_counts_as_failure() -> None:
    placed = plan_step(resource(), None, None, NOW, FAST).status
    plan = plan_step(resource(placed), None, None, NOW, FAST)
    assert plan.status.reason == "RetryBackoff"
    assert plan.status.last_failure is not None
    assert plan.status.last_failure.reason == "PodDeleted"


def test_streaming_records_first_times_and_success_finishes() -> None:
    placed = plan_step(resource(), None, None, NOW, FAST).status
    live = plan_step(resource(placed), running(), LIVE, NOW, FAST).status
    assert live.phase == "Streaming"
    assert live.pod_running_at == live.streaming_at == fmt(NOW)
    done = plan_step(
        resource(live),
        PodObservation(phase="Succeeded", exit_code=0),
        None,
        NOW + timedelta(seconds=60),
        FAST,
    ).status
    assert done.phase == "Succeeded" and done.finished_at == fmt(NOW + timedelta(seconds=60))
    assert done.streaming_at == fmt(NOW)


def test_keys_from_the_far_end_become_an_event_when_their_count_changes() -> None:
    placed = plan_step(resource(), None, None, NOW, FAST).status
    streaming = plan_step(resource(placed), running(), LIVE, NOW, FAST).status
    call = {"state": "ESTABLISHED", "dtmfReceived": 2, "dtmfLastDigits": "42"}
    pressed = {**LIVE, "call": call}
    plan = plan_step(resource(streaming), running(), pressed, NOW, FAST)
    assert (plan.status.call or {})["dtmfReceived"] == 2
    assert plan.events == [
        ("Normal", "DtmfReceived", "2 DTMF keys received from the far end, last 42")
    ]
    assert plan_step(resource(plan.status), running(), pressed, NOW, FAST).events == []


def test_finished_bridge_is_deleted_after_ttl_only() -> None:
    st = BridgeStatus(phase=Phase.SUCCEEDED, finished_at=fmt(NOW), pod_name="b-bridge-0")
    keep = plan_step(
        resource(st, ttlSecondsAfterFinished=30), None, None, NOW + timedelta(seconds=10), FAST
    )
    assert not keep.delete_resource and keep.create_pod is None
    gone = plan_step(
        resource(st, ttlSecondsAfterFinished=30), None, None, NOW + timedelta(seconds=30), FAST
    )
    assert gone.delete_resource


def test_merge_patch_removes_vanished_keys_at_any_depth() -> None:
    old = {"phase": "Pending", "nextRetryAt": "t", "call": {"state": "RING", "reason": "x"}}
    new = {"phase": "Streaming", "call": {"state": "ESTABLISHED"}, "conditions": []}
    assert merge_patch(old, new) == {
        "phase": "Streaming",
        "nextRetryAt": None,
        "call": {"state": "ESTABLISHED", "reason": None},
        "conditions": [],
    }
    assert merge_patch(new, new) == {}


def test_status_url_uses_pod_ip_and_declared_port() -> None:
    assert status_url(running("10.1.1.1"), "http", 8080) == "http://10.1.1.1:8080/status"
    v6 = PodObservation(phase="Running", pod_ip="fd00::5", status_port=30000)
    assert status_url(v6, "http", 8080) == "http://[fd00::5]:30000/status"
    assert status_url(PodObservation(phase="Running"), "http", 8080) is None


# --- settings ----------------------------------------------------------------------------


def test_settings_from_env_and_errors() -> None:
    s = Settings.from_env(
        {
            "SIPRTMP_BRIDGE_IMAGE": "x:1",
            "SIPRTMP_STUN_SERVERS": "a:1, b:2",
            "SIPRTMP_EXTRA_POD_LABELS": "team=voice",
            "SIPRTMP_NETWORK_MODE": "HostNetwork",
            "SIPRTMP_ALLOW_HOST_NETWORK": "true",
            "SIPRTMP_POLL_INTERVAL_SECONDS": "0.5",
        }
    )
    assert (s.bridge_image, s.stun_servers, s.extra_labels, s.network_mode) == (
        "x:1",
        ("a:1", "b:2"),
        {"team": "voice"},
        "HostNetwork",
    )
    assert s.poll_interval_seconds == 0.5
    with pytest.raises(ValueError, match="SIPRTMP_BRIDGE_STATUS_PORT"):
        Settings.from_env({"SIPRTMP_BRIDGE_STATUS_PORT": "http"})
    with pytest.raises(ValueError, match="SIPRTMP_NETWORK_MODE"):
        Settings.from_env({"SIPRTMP_NETWORK_MODE": "Bridge"})
    with pytest.raises(ValueError, match="window"):
        Settings.from_env({"SIPRTMP_HOST_PORT_WINDOW": "2"})


# --- CRD and chart files -----------------------------------------------------------------


def test_chart_ships_the_identical_crd() -> None:
    single = (REPO / "crds" / "siprtmpbridges.siprtmp.io.yaml").read_bytes()
    shipped = (REPO / "helm" / "crds" / "siprtmpbridges.siprtmp.io.yaml").read_bytes()
    assert single == shipped, "helm/crds/ must be a byte-identical copy of crds/"


def test_crd_contract_names() -> None:
    crd = yaml.safe_load((REPO / "crds" / "siprtmpbridges.siprtmp.io.yaml").read_text())
    names = crd["spec"]["names"]
    assert (crd["spec"]["group"], names["kind"], names["plural"]) == (
        "siprtmp.io",
        "SipRtmpBridge",
        "siprtmpbridges",
    )
    assert names["shortNames"] == ["srb"] and names["categories"]
    (version,) = crd["spec"]["versions"]
    assert version["name"] == "v1alpha1" and version["subresources"] == {"status": {}}
    props = version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    for field in (
        "callId",
        "callee",
        "rtmpUrl",
        "rtmpStream",
        "hasAudio",
        "hasVideo",
        "connection",
        "codecs",
        "callSetupTimeoutSeconds",
        "rtpInactivityTimeoutSeconds",
        "maxDurationSeconds",
        "audio",
        "nat",
        "maxRetries",
        "ttlSecondsAfterFinished",
        "networking",
    ):
        assert field in props, field
    conn = props["connection"]["properties"]
    for field in (
        "sipLogin",
        "sipAuthenticationName",
        "sipDomain",
        "sipPort",
        "sipRegisterRequired",
        "sipOutboundProxy",
        "sipTransport",
        "appKey",
        "sipPasswordSecretRef",
    ):
        assert field in conn, field
    assert "sipPassword" not in conn


def test_each_pod_carries_the_token_its_dtmf_endpoint_asks_for() -> None:
    """The REST API finds the token in the pod it forwards DTMF to; nothing else shows it."""
    pod = make_pod()
    env = pod["spec"]["containers"][0]["env"]
    assert {"name": CONTROL_TOKEN_ENV, "value": "pod-token"} in env
    observed = observe_pod(pod)
    assert observed.control_token == "pod-token"
    assert "pod-token" not in repr(observed)
    assert "pod-token" not in json.dumps(pod["metadata"])


def test_a_pod_without_a_control_token_is_never_built() -> None:
    with pytest.raises(ValueError, match="control token"):
        build_pod(attempt_of(), control_token="", spec_secret="b-bridge-0-spec")


def test_post_to_a_bridge_carries_its_token() -> None:
    """What the REST API sends the bridge pod: the JSON body and the pod's bearer token."""
    seen: list[tuple[str | None, bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            seen.append((self.headers.get("Authorization"), body))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *_: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/dtmf"
        assert post(url, {"dtmf": "1#"}, 5, "pod-token") == (200, {})
        assert post(url, {"dtmf": "2"}, 5) == (200, {})
    finally:
        server.shutdown()
        server.server_close()
    assert seen == [("Bearer pod-token", b'{"dtmf": "1#"}'), (None, b'{"dtmf": "2"}')]
