"""The operator's deadlines, as pure decisions: a bridge it cannot see, a pod that never starts,
a pod its node never confirms gone; and what keeps a drain from moving a live call."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from siprtmp_contract.outcome import Reason
from siprtmp_contract.states import Phase
from siprtmp_operator.api.calls import Placements
from siprtmp_operator.names import DO_NOT_DISRUPT, NODE_LOST_TAINTS
from siprtmp_operator.networking import NetworkPlan
from siprtmp_operator.pod import PodAttempt, build_pod, disruption_budget
from siprtmp_operator.reconcile import Plan, not_created, plan_step, plan_stop
from siprtmp_operator.settings import Settings
from siprtmp_operator.status import PodObservation
from siprtmp_operator.statusmodel import BridgeStatus, read_status, render_status
from siprtmp_operator.timeutil import fmt

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
SPEC: dict[str, Any] = {"callee": "sip:room@sip.example.test", "rtmpUrl": "rtmp://h/live"}
SETTINGS = Settings(
    bridge_unreachable_seconds=15, bridge_lost_seconds=45, pod_start_timeout_seconds=180
)
POD = "b-bridge-0"
RUNNING = PodObservation(phase="Running", pod_ip="10.0.0.5")
PENDING = PodObservation(phase="Pending")
STREAMING_DOC = {
    "phase": "Streaming",
    "call": {"state": "ESTABLISHED"},
    "stream": {"state": "PUBLISHING"},
}


def step(
    status: BridgeStatus,
    pod: PodObservation | None,
    live: dict[str, Any] | None,
    at: float,
    spec: dict[str, Any] | None = None,
) -> Plan:
    """One reconcile step ``at`` seconds after T0, from ``status``."""
    resource = {
        "metadata": {"name": "b", "namespace": "ns", "uid": "u", "generation": 1},
        "spec": spec or SPEC,
        "status": render_status(status),
    }
    return plan_step(resource, pod, live, T0 + timedelta(seconds=at), SETTINGS)


def streaming() -> BridgeStatus:
    """A bridge that answered its /status at T0 and is streaming."""
    plan = step(BridgeStatus(pod_name=POD, phase=Phase.CONNECTING), RUNNING, STREAMING_DOC, 0)
    assert plan.status.phase == Phase.STREAMING
    return plan.status


def conditions(status: BridgeStatus) -> dict[str, tuple[str, str]]:
    return {c.type: (c.status, c.reason) for c in status.conditions}


def test_a_silent_bridge_is_shown_unreachable_then_force_deleted_and_redialled() -> None:
    status = streaming()
    assert conditions(status)["Ready"] == ("True", "Streaming")
    silent = step(status, RUNNING, None, 2).status  # first unanswered read: the clock starts
    assert silent.unreachable_since == fmt(T0 + timedelta(seconds=2))
    assert conditions(silent)["Ready"][0] == "True"
    unseen = step(silent, RUNNING, None, 17)
    assert unseen.force_delete_pod is None
    assert unseen.status.phase == Phase.STREAMING and unseen.status.reason == "BridgeUnreachable"
    assert conditions(unseen.status) == {
        "CallEstablished": ("Unknown", "BridgeUnreachable"),
        "Streaming": ("Unknown", "BridgeUnreachable"),
        "Ready": ("False", "BridgeUnreachable"),
    }
    lost = step(unseen.status, RUNNING, None, 47)
    assert lost.force_delete_pod == POD
    assert lost.status.phase == Phase.PENDING and lost.status.reason == "RetryBackoff"
    assert lost.status.attempt == 1 and lost.status.unreachable_since is None
    assert lost.status.last_failure is not None
    assert lost.status.last_failure.reason == "BridgeLost"


def test_a_bridge_that_answers_again_is_seen_again() -> None:
    unseen = step(step(streaming(), RUNNING, None, 2).status, RUNNING, None, 20).status
    assert unseen.reason == "BridgeUnreachable"
    back = step(unseen, RUNNING, STREAMING_DOC, 22).status
    assert back.unreachable_since is None and back.reason != "BridgeUnreachable"
    assert conditions(back)["Ready"] == ("True", "Streaming")
    # The clock starts again from the next silence, not from the first one.
    again = step(step(back, RUNNING, None, 30).status, RUNNING, None, 60)
    assert again.force_delete_pod is None and again.status.reason == "BridgeUnreachable"


def test_a_lost_bridge_beyond_its_retries_ends_failed_and_is_still_force_deleted() -> None:
    status = step(streaming(), RUNNING, None, 1).status
    lost = step(status, RUNNING, None, 50, {**SPEC, "maxRetries": 0})
    assert lost.force_delete_pod == POD
    assert lost.status.phase == Phase.FAILED and lost.status.reason == "BridgeLost"


def test_a_pod_never_confirmed_deleted_is_force_deleted_past_its_grace_period() -> None:
    grace_ends = fmt(T0 + timedelta(seconds=20))
    deleting = PodObservation(phase="Running", deleting=True, deletion_at=grace_ends)
    status = streaming()
    assert step(status, deleting, None, 60).force_delete_pod is None  # 40 s past: not yet
    lost = step(status, deleting, None, 66)
    assert lost.force_delete_pod == POD
    assert lost.status.last_failure is not None
    assert lost.status.last_failure.reason == "BridgeLost"


def test_a_pod_waiting_for_room_past_its_start_timeout_is_redialled() -> None:
    created = step(BridgeStatus(), None, None, 0)
    assert created.create_pod == 0 and created.status.pending_since == fmt(T0)
    waiting = step(created.status, PENDING, None, 100).status
    assert waiting.phase == Phase.PENDING and waiting.reason == "PodPending"
    late = step(waiting, PENDING, None, 180)
    assert late.force_delete_pod == POD
    assert late.status.reason == "RetryBackoff" and late.status.attempt == 1
    assert late.status.last_failure is not None
    assert late.status.last_failure.reason == "PodStartTimeout"
    assert late.status.pending_since is None  # the next attempt's clock starts afresh


def test_a_pod_whose_image_or_secret_is_missing_fails_without_a_redial() -> None:
    created = step(BridgeStatus(), None, None, 0, {**SPEC, "podStartTimeoutSeconds": 30})
    for waiting_reason in ("ImagePullBackOff", "CreateContainerConfigError"):
        stuck = PodObservation(
            phase="Pending", waiting_reason=waiting_reason, waiting_message="not found"
        )
        spec = {**SPEC, "podStartTimeoutSeconds": 30}
        assert step(created.status, stuck, None, 29, spec).status.phase == Phase.PENDING
        late = step(created.status, stuck, None, 30, spec)
        assert late.force_delete_pod == POD
        assert late.status.phase == Phase.FAILED
        assert late.status.reason == "PodStartTimeout"
        assert late.status.message is not None
        assert f"within 30s ({waiting_reason}: not found)" in late.status.message
        assert "does not heal by redialling" in late.status.message


def test_no_placement_or_a_refused_pod_past_the_timeout_fails_on_its_own_terms() -> None:
    planned = step(BridgeStatus(), None, None, 0)
    for reason, heals in ((Reason.NO_PLACEMENT, True), (Reason.POD_REJECTED, False)):
        waiting = not_created(planned, BridgeStatus(), reason, "why").status
        assert waiting.pending_since == fmt(T0) and waiting.pod_name is None
        again = step(waiting, None, None, 100)
        assert again.create_pod == 0 and again.status.pending_since == fmt(T0)
        late = step(waiting, None, None, 180)
        assert late.create_pod is None and late.force_delete_pod is None
        if heals:
            assert late.status.reason == "RetryBackoff"
        else:
            assert late.status.phase == Phase.FAILED
            assert late.status.reason == "PodStartTimeout"


def test_a_bridge_let_go_after_the_terminating_timeout_force_deletes_its_pods() -> None:
    pods = [
        {"metadata": {"name": POD, "deletionTimestamp": fmt(T0)}, "status": {"phase": "Running"}}
    ]
    waiting = plan_stop(BridgeStatus(phase=Phase.STREAMING), pods, 10, SETTINGS)
    assert waiting.force_delete == () and waiting.wait_for == (POD,)
    gone = plan_stop(BridgeStatus(phase=Phase.STREAMING), pods, 90, SETTINGS)
    assert gone.gave_up and gone.force_delete == (POD,)


def test_bridge_pods_tolerate_a_lost_node_briefly_and_ask_not_to_be_disrupted() -> None:
    plan = NetworkPlan(mode="PodNetwork", public_address_source="None")
    pod = build_pod(
        PodAttempt("b", "ns", "u", SPEC, 0, plan, Settings(bridge_node_toleration_seconds=30)),
        control_token="t",
        spec_secret="s",
    )
    assert pod["spec"]["tolerations"] == [
        {"key": k, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 30}
        for k in NODE_LOST_TAINTS
    ]
    assert pod["metadata"]["annotations"].items() >= DO_NOT_DISRUPT.items()
    # Spread over nodes, softly: a lost node drops few calls, and no pod waits for a spread.
    (spread,) = pod["spec"]["topologySpreadConstraints"]
    assert (spread["topologyKey"], spread["whenUnsatisfiable"], spread["maxSkew"]) == (
        "kubernetes.io/hostname",
        "ScheduleAnyway",
        1,
    )
    assert spread["labelSelector"]["matchExpressions"] == [
        {"key": "siprtmp.io/bridge", "operator": "Exists"}
    ]
    budget = disruption_budget("b", "ns", "u")
    assert budget["spec"]["minAvailable"] == 1
    assert budget["spec"]["selector"] == {"matchLabels": {"siprtmp.io/bridge-uid": "u"}}
    assert budget["metadata"]["ownerReferences"][0]["uid"] == "u"
    off = Settings(bridge_disruption_budget=False)
    bare = build_pod(
        PodAttempt("b", "ns", "u", SPEC, 0, plan, off), control_token="t", spec_secret="s"
    )
    assert not set(bare["metadata"]["annotations"]) & set(DO_NOT_DISRUPT)


def test_calls_being_created_count_until_a_later_list_shows_them() -> None:
    placements = Placements()

    def call(name: str) -> dict[str, Any]:
        return {"metadata": {"name": name}, "spec": {"callId": name}}

    listed_at = placements.created
    a = placements.add(call("a"))
    # Another startup's list, begun before a's create returned: a is still counted.
    assert [c["metadata"]["name"] for c in placements.with_pending([], listed_at)] == ["a"]
    placements.finish(a, created=True)
    # A list begun before the create returned may or may not show it: kept, never doubled.
    shown = placements.with_pending([call("a")], listed_at)
    assert [c["metadata"]["name"] for c in shown] == ["a"]
    assert [c["metadata"]["name"] for c in placements.with_pending([], listed_at)] == ["a"]
    # A list begun after it returned shows it: forgotten.
    assert placements.with_pending([], placements.created) == []
    failed = placements.add(call("b"))
    placements.finish(failed, created=False)
    assert placements.with_pending([], listed_at) == []


def test_an_old_status_without_the_new_fields_starts_the_clocks_now() -> None:
    old = read_status({"phase": "Pending", "reason": "PodPending", "podName": POD})
    assert step(old, PENDING, None, 0).status.pending_since == fmt(T0)
