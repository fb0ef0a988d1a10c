"""The operator and the bridge agree: every example resource, as the operator hands it to a
bridge pod (any networking plan), is a spec the bridge accepts, and the CRD's spec fields are
fields the bridge knows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from siprtmp_contract.spec import parse_spec
from siprtmp_operator.networking import NetworkPlan, window_for_slot
from siprtmp_operator.pod import bridge_spec
from siprtmp_operator.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(
    p for p in (ROOT / "examples").rglob("*.yaml") if "SipRtmpBridge" in p.read_text()
)


def resources(path: Path) -> list[dict[str, Any]]:
    return [
        doc
        for doc in yaml.safe_load_all(path.read_text())
        if doc and doc.get("kind") == "SipRtmpBridge"
    ]


def plans() -> list[NetworkPlan]:
    settings = Settings(host_port_min=30000, host_port_max=30099, host_port_window=8)
    return [
        NetworkPlan(mode="PodNetwork", public_address_source="None"),
        NetworkPlan(
            mode="HostNetwork",
            public_address_source="NodeExternalIP",
            window=window_for_slot(2, settings),
            node_name="n1",
            public_address="203.0.113.5",
        ),
    ]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_as_handed_to_the_bridge_are_valid_bridge_specs(path: Path) -> None:
    assert resources(path)
    for resource in resources(path):
        for plan in plans():
            handed = bridge_spec(
                resource["spec"], "uid-1", plan, Settings(stun_servers=("stun.example.test:3478",))
            )
            # The operator passes --sip-password-file exactly when there is a Secret reference.
            has_secret = "sipPasswordSecretRef" in resource["spec"].get("connection", {})
            spec = parse_spec(handed, password="from-the-secret" if has_secret else None)
            assert spec.call_id == resource["spec"].get("callId", "uid-1")
            if plan.window is not None:
                assert spec.nat.sip_port == plan.window.sip_port
                assert spec.nat.rtp_port_min == plan.window.rtp_min


def crd_spec_properties() -> dict[str, Any]:
    crd = yaml.safe_load((ROOT / "crds" / "siprtmpbridges.siprtmp.io.yaml").read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    properties: dict[str, Any] = schema["properties"]["spec"]["properties"]
    return properties


def test_every_crd_spec_field_is_known_to_the_bridge() -> None:
    """A field the CRD admits but the bridge refuses would fail every such pod (exit 2)."""
    base = {"callee": "sip:a@b", "rtmpUrl": "rtmp://h/live", "rtmpStream": "s"}
    for name, schema in crd_spec_properties().items():
        if schema.get("type") != "object" or name == "networking":
            continue
        for field in schema.get("properties", {}):
            sample = _sample(schema["properties"][field])
            if sample is None:
                continue
            document: dict[str, Any] = {**base, name: {field: sample}}
            if field == "sipPasswordSecretRef":
                # A password needs a digest user.
                parse_spec({**base, name: {field: sample, "sipLogin": "user"}}, password="x")
            elif field in {"sipRegisterRequired", "rtpPortMin", "rtpPortMax"}:
                continue  # set only with companions (CEL rules); the bridge tests cover them
            else:
                parse_spec(document, slate_image="card.png")  # where its ConfigMap is mounted


def _sample(schema: dict[str, Any]) -> Any:
    if "enum" in schema:
        return schema["enum"][0]
    if schema.get("type") == "object" and "key" not in schema.get("properties", {"key": 1}):
        # An object of objects (video.slate): a sample of each field that has one.
        samples = {name: _sample(sub) for name, sub in schema["properties"].items()}
        return {name: sample for name, sample in samples.items() if sample is not None}
    return {
        "integer": schema.get("minimum", 1) if schema.get("minimum", 1) > 0 else 1,
        "boolean": True,
        "array": ["stun.example.org:3478"],
        "object": {"name": "secret", "key": "password"},
    }.get(schema.get("type", ""))
