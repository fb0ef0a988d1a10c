"""Secrets a bridge may use are opt-in (``policy.secret_problem``) and the operator's plan acts
on the answer: a Secret without the label fails the call, a missing one is waited for until
podStartTimeoutSeconds and never redialled. The API server's side: tests/operator."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from siprtmp_contract.outcome import Reason
from siprtmp_contract.pod import BRIDGE_USABLE_LABEL
from siprtmp_contract.states import Phase
from siprtmp_operator.api.bodies import StartupRequest
from siprtmp_operator.api.manifests import call_secret
from siprtmp_operator.policy import secret_problem, secret_refs
from siprtmp_operator.reconcile import plan_step
from siprtmp_operator.settings import Settings
from siprtmp_operator.statusmodel import read_status, render_status

NOW = datetime(2026, 12, 4, 5, 0, tzinfo=UTC)
SPEC: dict[str, Any] = {
    "callee": "sip:conf@pbx.example.com",
    "rtmpUrl": "rtmp://a.rtmp.example/live",
    "rtmpStreamSecretRef": {"name": "cdn", "key": "k"},
    "connection": {"sipPasswordSecretRef": {"name": "acct", "key": "password"}},
    "destinations": [
        {"rtmpUrl": "rtmp://b.rtmp.example/live", "rtmpStream": "inline"},
        {
            "rtmpUrl": "rtmp://c.rtmp.example/live",
            "rtmpStreamSecretRef": {"name": "yt", "key": "k"},
        },
    ],
}


def resource(status: dict[str, Any] | None = None) -> dict[str, Any]:
    meta = {"name": "b", "namespace": "ns", "uid": "u"}
    return {"metadata": meta, "spec": SPEC, "status": status or {}}


def test_every_secret_a_pod_mounts_is_named_with_its_field() -> None:
    assert secret_refs(SPEC) == (
        ("connection.sipPasswordSecretRef", "acct"),
        ("rtmpStreamSecretRef", "cdn"),
        ("destinations[1].rtmpStreamSecretRef", "yt"),
    )
    assert secret_refs({"callee": "sip:x@y", "rtmpStream": "s"}) == ()


def test_only_the_label_with_its_value_opts_in() -> None:
    assert secret_problem("rtmpStreamSecretRef", "cdn", {BRIDGE_USABLE_LABEL: "true"}) is None
    for labels in ({}, {BRIDGE_USABLE_LABEL: "yes"}, {"other": "true"}):
        problem = secret_problem("rtmpStreamSecretRef", "cdn", labels)
        assert problem is not None and not problem.missing
        assert problem.message == (
            "spec.rtmpStreamSecretRef: Secret cdn is not labelled siprtmp.io/bridge-usable=true "
            "(a bridge may use only Secrets that opt in)"
        )
    missing = secret_problem("connection.sipPasswordSecretRef", "acct", None)
    assert missing is not None and missing.missing
    assert missing.message == "spec.connection.sipPasswordSecretRef: Secret acct does not exist"


def test_the_rest_apis_call_secret_opts_in() -> None:
    request = StartupRequest("x", {"rtmpStream": "k"}, "pw")
    bridge = {"metadata": {"name": "call-x", "namespace": "calls", "uid": "u"}, "spec": {}}
    secret = call_secret(bridge, request)
    assert secret is not None and secret["metadata"]["labels"][BRIDGE_USABLE_LABEL] == "true"


def test_an_unlabelled_secret_fails_the_call_without_a_pod() -> None:
    problem = secret_problem("rtmpStreamSecretRef", "cdn", {})
    plan = plan_step(resource(), None, None, NOW, Settings(), secret=problem)
    assert plan.create_pod is None
    assert (plan.status.phase, plan.status.reason) == ("Failed", "SecretNotUsable")
    assert problem is not None and plan.status.message == f"{problem.message}; no pod was created"
    assert plan.events[0][:2] == ("Warning", "SecretNotUsable")
    assert plan_step(resource(), None, None, NOW, Settings()).create_pod == 0


def test_a_missing_secret_is_waited_for_then_the_attempt_times_out_for_good() -> None:
    missing = secret_problem("connection.sipPasswordSecretRef", "acct", None)
    settings = Settings(pod_start_timeout_seconds=30)
    first = plan_step(resource(), None, None, NOW, settings, secret=missing)
    assert first.create_pod is None
    assert [e[:2] for e in first.events] == [("Normal", "SecretNotUsable")]
    assert (first.status.phase, first.status.reason) == ("Pending", "SecretNotUsable")
    waited = render_status(first.status)
    # There in time: the pod is created, the clock that ran is kept.
    found = plan_step(resource(waited), None, None, NOW + timedelta(seconds=10), settings)
    assert found.create_pod == 0
    assert found.status.pending_since == first.status.pending_since
    # Never there: PodStartTimeout, naming what it waited for; not redialled.
    late = NOW + timedelta(seconds=31)
    over = plan_step(resource(waited), None, None, late, settings, secret=missing)
    assert (over.status.phase, over.status.reason) == ("Failed", "PodStartTimeout")
    assert "(SecretNotUsable: spec.connection.sipPasswordSecretRef: Secret acct" in (
        over.status.message or ""
    )
    assert "SecretNotUsable does not heal by redialling" in (over.status.message or "")
    assert over.status.attempt == 0 and over.create_pod is None


def test_a_redial_checks_its_secrets_again() -> None:
    redialing = replace(
        read_status({}), phase=Phase.PENDING, reason=Reason.RETRY_BACKOFF, attempt=1
    )
    status = render_status(redialing)
    problem = secret_problem("rtmpStreamSecretRef", "cdn", {})
    plan = plan_step(resource(status), None, None, NOW, Settings(), secret=problem)
    assert (plan.status.phase, plan.status.reason) == ("Failed", "SecretNotUsable")
