"""What the operator's settings forbid of a call (``policy.call_refusal``): host networking where
it is not allowed, SIP and RTMP hosts off the allowlists. The pure policy, the operator's plan
(no pod for a refused call) and the REST API's answer: the same decision in both places."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from siprtmp_contract.urls import sip_uri_host
from siprtmp_operator.api.app import build_app
from siprtmp_operator.api.calls import Calls
from siprtmp_operator.api.store import CallStore
from siprtmp_operator.kube import Kube
from siprtmp_operator.policy import destination_refusal, host_allowed
from siprtmp_operator.reconcile import plan_step
from siprtmp_operator.settings import Settings

SPEC = {
    "callee": "sip:conf@pbx.example.com",
    "rtmpUrl": "rtmp://a.rtmp.example/live",
    "rtmpStream": "s",
}
NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("uri", "host"),
    [
        ("sip:1000@PBX.example.com:5060;transport=tcp", "pbx.example.com"),
        ("sips:conf@h.example.com?subject=x", "h.example.com"),
        ("sip:[2001:db8::1]:5060", "[2001:db8::1]"),
        ("sip:192.0.2.7", "192.0.2.7"),
        ("sip:user:pw@host.example.com", "host.example.com"),
    ],
)
def test_the_host_of_a_sip_uri(uri: str, host: str) -> None:
    assert sip_uri_host(uri) == host


def test_host_patterns() -> None:
    assert host_allowed("pbx.example.com", ["PBX.example.com"])
    assert host_allowed("a.b.example.com", ["*.example.com"])
    assert not host_allowed("example.com", ["*.example.com"])  # below it, not itself
    assert not host_allowed("evilexample.com", ["*.example.com"])
    assert not host_allowed("pbx.example.com.evil.test", ["pbx.example.com"])
    assert host_allowed("192.0.2.7", ["192.0.2.7"])


def test_every_host_the_invite_reaches_is_checked_and_the_rtmp_host() -> None:
    domains, rtmp = ("pbx.example.com",), ("*.rtmp.example",)
    assert destination_refusal(SPEC, domains, rtmp) is None
    assert destination_refusal(SPEC, (), ()) is None
    user_part = {**SPEC, "callee": "1000", "connection": {"sipDomain": "trunk.evil.test"}}
    assert destination_refusal(user_part, domains, ()) == (
        "callee",
        "trunk.evil.test is not an allowed SIP domain",
    )
    proxied = {**SPEC, "connection": {"sipOutboundProxy": "sip:proxy.evil.test;lr"}}
    assert destination_refusal(proxied, domains, ())[0] == "connection.sipOutboundProxy"  # type: ignore[index]
    registrar = {
        **SPEC,
        "connection": {
            "sipDomain": "registrar.evil.test",
            "sipRegisterRequired": True,
            "sipLogin": "u",
            "sipPasswordSecretRef": {"name": "sip", "key": "password"},
        },
    }
    assert destination_refusal(registrar, domains, ())[0] == "connection.sipDomain"  # type: ignore[index]
    elsewhere = {**SPEC, "rtmpUrl": "rtmp://10.0.0.5/live"}
    assert destination_refusal(elsewhere, (), rtmp) == (
        "rtmpUrl",
        "10.0.0.5 is not an allowed RTMP host",
    )
    # A stream key in a Secret (never read by the operator) does not take the call past them.
    keyed: dict[str, Any] = {k: v for k, v in elsewhere.items() if k != "rtmpStream"}
    keyed["rtmpStreamSecretRef"] = {"name": "cdn", "key": "key"}
    assert destination_refusal(keyed, (), rtmp) == (
        "rtmpUrl",
        "10.0.0.5 is not an allowed RTMP host",
    )
    # A spec the bridge refuses is left to the bridge, which names the field (InvalidSpec).
    assert destination_refusal({"callee": "sip:x@y"}, domains, rtmp) is None


def resource(spec: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "b", "namespace": "ns", "uid": "u"}, "spec": spec, "status": {}}


def test_the_operator_fails_a_call_it_leaves_out_without_a_pod() -> None:
    settings = Settings(
        allowed_callee_domains=("*.example.com",), allowed_rtmp_hosts=("cdn.example",)
    )
    plan = plan_step(resource(SPEC), None, None, NOW, settings)
    assert plan.create_pod is None
    status = plan.status
    assert (status.phase, status.reason) == ("Failed", "NotAllowed")
    assert (status.message or "").startswith(
        "spec.rtmpUrl: a.rtmp.example is not an allowed RTMP host ("
    )
    assert plan.events[0][:2] == ("Warning", "NotAllowed")
    allowed = Settings(
        allowed_callee_domains=("*.example.com",), allowed_rtmp_hosts=("*.rtmp.example",)
    )
    assert plan_step(resource(SPEC), None, None, NOW, allowed).create_pod == 0


def test_the_rest_api_answers_403_naming_the_field_before_creating_anything() -> None:
    async def run() -> tuple[int, Any]:
        store = CallStore(Kube(), "calls")  # never reached: refused before the cluster is asked
        calls = Calls(store, Settings(allowed_callee_domains=("pbx.example.com",)))
        app = build_app(calls, "t" * 16, ())
        body = {**SPEC, "callee": "sip:1000@trunk.evil.test"}
        async with TestClient(TestServer(app)) as client:
            response = await client.post(
                "/rest-api/call/startup", json=body, headers={"Authorization": "Bearer " + "t" * 16}
            )
            return response.status, await response.json()

    status, answer = asyncio.run(run())
    assert status == 403
    assert answer["field"] == "callee"
    assert (
        answer["error"]
        == "callee: trunk.evil.test is not an allowed SIP domain (the operator's allowlist)"
    )


def test_host_networking_only_where_the_chart_allows_it() -> None:
    host = {**SPEC, "networking": {"mode": "HostNetwork"}}
    refused = plan_step(resource(host), None, None, NOW, Settings())
    assert refused.create_pod is None
    assert (refused.status.phase, refused.status.reason) == (
        "Failed",
        "HostNetworkNotAllowed",
    )
    assert (refused.status.message or "").startswith(
        "spec.networking.mode: HostNetwork is not allowed"
    )
    allowed = plan_step(resource(host), None, None, NOW, Settings(allow_host_network=True))
    assert allowed.create_pod == 0
    with pytest.raises(ValueError, match="ALLOW_HOST_NETWORK"):
        Settings.from_env({"SIPRTMP_NETWORK_MODE": "HostNetwork"})  # a default it would refuse


def test_the_rest_api_answers_400_for_host_networking_it_may_not_give() -> None:
    async def run() -> tuple[int, Any]:
        calls = Calls(CallStore(Kube(), "calls"), Settings())
        app = build_app(calls, "t" * 16, ())
        body = {**SPEC, "networking": {"mode": "HostNetwork"}}
        async with TestClient(TestServer(app)) as client:
            response = await client.post(
                "/rest-api/call/startup", json=body, headers={"Authorization": "Bearer " + "t" * 16}
            )
            return response.status, await response.json()

    status, answer = asyncio.run(run())
    assert (status, answer["field"]) == (400, "networking.mode")
