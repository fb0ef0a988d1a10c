"""The CRD and the bridge's parser admit the same callees: the CRD's pattern and its CEL rule
for a bare user part are written from siprtmp_contract.fields, which the parser matches with."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from siprtmp_contract.spec import SpecError, parse_spec

REPO = Path(__file__).resolve().parents[2]
BASE = {"rtmpUrl": "rtmp://127.0.0.1/live", "rtmpStream": "s"}
DOMAIN = {"connection": {"sipDomain": "pbx.example.com"}}

#: (callee, whether the bridge takes it); tests/operator applies the same list to the API server.
CALLEES: list[tuple[str, bool]] = [
    ("sip:1000@pbx.example.com", True),
    ("sip:1000@pbx.example.com:5070;transport=tcp", True),
    ("sips:alice@pbx.example.com", True),
    ("sip:pbx.example.com", True),
    ("sip:1000@[::1]:5060", True),
    ("sip:1000@[2001:db8::1]", True),
    ("1000@pbx.example.com", True),
    ("1000", True),
    ("12%2334", True),
    ("conf*42", True),
    ("tel:+15551234567", False),
    ("12#34", False),
    ("sip:1000@[zz]", False),
    ("sip:1000@pbx example.com", False),
    ("sip:1000@host:5060x", False),
    ("sip:@pbx.example.com", False),
    ("<sip:1000@pbx.example.com>", False),
    ('sip:"x"@pbx.example.com', False),
    ("http://pbx.example.com", False),
]


def bridge_accepts(spec: dict[str, Any]) -> bool:
    try:
        parse_spec(spec)
    except SpecError:
        return False
    return True


def crd_spec_schema() -> dict[str, Any]:
    crd = yaml.safe_load((REPO / "crds" / "siprtmpbridges.siprtmp.io.yaml").read_text())
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema["properties"]["spec"]  # type: ignore[no-any-return]


def crd_accepts(spec: dict[str, Any]) -> bool:
    """The CRD's pattern on callee, and its CEL rule (a ``matches`` with a literal, which RE2
    reads as Python does for these expressions) that a bare user part needs sipDomain."""
    schema = crd_spec_schema()
    callee = spec["callee"]
    if not re.search(schema["properties"]["callee"]["pattern"], callee):
        return False
    (rule,) = [r["rule"] for r in schema["x-kubernetes-validations"] if "callee" in r["rule"]]
    user_part = re.search(r'matches\("(.*)"\)', rule)
    assert user_part is not None
    return not re.search(user_part[1], callee) or "sipDomain" in spec.get("connection", {})


@pytest.mark.parametrize(("callee", "taken"), CALLEES)
@pytest.mark.parametrize("connection", [DOMAIN, {}], ids=["with-domain", "no-domain"])
def test_the_crd_and_the_bridge_take_the_same_callees(
    callee: str, taken: bool, connection: dict[str, Any]
) -> None:
    spec = {**BASE, **connection, "callee": callee}
    assert bridge_accepts(spec) == crd_accepts(spec)
    if connection:
        assert bridge_accepts(spec) is taken
