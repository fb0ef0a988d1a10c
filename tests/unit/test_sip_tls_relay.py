"""The SIP TLS relay's edits (sip/tls_relay.py) and the first hop it carries SIP to
(sip/tls_tunnel.py): what the far end and pjsua each get of a message."""

from __future__ import annotations

from pathlib import Path

import pytest

from siprtmp_bridge.sip.tls_relay import Leg, next_message, relay_uri, to_far_end, to_pjsua
from siprtmp_bridge.sip.tls_tunnel import (
    SYSTEM_CA_BUNDLE,
    first_hop,
    registers_past_the_relay,
    trust_bundle,
)
from siprtmp_contract.spec import parse_spec

LEG = Leg(relay_uri(40000), b"127.0.0.1:51000", b"10.1.2.3:47000")
SDP = b"v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 51000 RTP/AVP 0\r\n"


def message(*lines: str, body: bytes = b"") -> bytes:
    head = "\r\n".join([*lines, f"Content-Length: {len(body)}"])
    return head.encode() + b"\r\n\r\n" + body


def invite(*routes: str) -> bytes:
    return message(
        "INVITE sip:conf@pbx.example.com;transport=tls SIP/2.0",
        "Via: SIP/2.0/TLS 127.0.0.1:51000;rport;branch=z9hG4bKPj1;alias",
        *routes,
        "Contact: <sip:bridge@127.0.0.1:51000;transport=TLS;ob>",
        "CSeq: 1 INVITE",
        body=SDP,
    )


def test_a_request_loses_the_relay_route_and_names_the_connection_s_address() -> None:
    out = to_far_end(invite(f"Route: <{LEG.own_uri}>"), LEG)
    assert b"Route" not in out
    assert b"Via: SIP/2.0/TLS 10.1.2.3:47000;rport;branch=z9hG4bKPj1;alias\r\n" in out
    assert b"Contact: <sip:bridge@10.1.2.3:47000;transport=TLS;ob>\r\n" in out
    assert out.endswith(b"\r\n\r\n" + SDP)  # the body (its 127.0.0.1 too) as pjsua wrote it


@pytest.mark.parametrize(
    "routes",
    [
        (f"Route: <{relay_uri(40000)}>", "Route: <sip:proxy.example:5061;transport=tls;lr>"),
        (f"Route: <{relay_uri(40000)}>, <sip:proxy.example:5061;transport=tls;lr>",),
    ],
    ids=["two headers", "one list"],
)
def test_the_routes_after_the_relay_s_own_stay(routes: tuple[str, ...]) -> None:
    out = to_far_end(invite(*routes), LEG)
    assert out.count(b"Route:") == 1
    assert b"Route: <sip:proxy.example:5061;transport=tls;lr>\r\n" in out


def test_a_route_naming_anyone_else_first_is_left_alone() -> None:
    out = to_far_end(invite("Route: <sip:proxy.example;lr>", f"Route: <{LEG.own_uri}>"), LEG)
    assert out.count(b"Route:") == 2
    assert out.index(b"Route: <sip:proxy.example;lr>") < out.index(LEG.own_uri.encode())


def test_only_pjsua_s_own_address_is_replaced() -> None:
    """Another port that starts with pjsua's digits, or an address that ends with its, is not."""
    response = message(
        "SIP/2.0 200 OK",
        "Via: SIP/2.0/TLS 127.0.0.1:510001;branch=z9hG4bK1, SIP/2.0/UDP 2127.0.0.1:51000",
        "Contact: <sip:bridge@127.0.0.1:51000;transport=TLS>",
        "CSeq: 2 BYE",
    )
    out = to_far_end(response, LEG)
    assert (
        b"Via: SIP/2.0/TLS 127.0.0.1:510001;branch=z9hG4bK1, SIP/2.0/UDP 2127.0.0.1:51000\r\n"
        in out
    )
    assert b"Contact: <sip:bridge@10.1.2.3:47000;transport=TLS>\r\n" in out


def test_keep_alives_pass_as_they_are() -> None:
    assert to_far_end(b"\r\n\r\n", LEG) == b"\r\n\r\n"


def test_an_invite_response_gains_the_relay_s_record_route_last() -> None:
    ok = message(
        "SIP/2.0 200 OK",
        "Record-Route: <sip:p2.example;lr>",
        "Record-Route: <sip:p1.example;lr>",
        "Via: SIP/2.0/TLS 10.1.2.3:47000;rport=47000;branch=z9hG4bKPj1",
        "CSeq: 1 INVITE",
        body=SDP,
    )
    lines = to_pjsua(ok, LEG).split(b"\r\n")
    assert lines[1:4] == [
        b"Record-Route: <sip:p2.example;lr>",
        b"Record-Route: <sip:p1.example;lr>",
        f"Record-Route: <{LEG.own_uri}>".encode(),
    ]


@pytest.mark.parametrize(
    ("status", "method", "edited"),
    [
        ("180 Ringing", "INVITE", True),
        ("100 Trying", "INVITE", False),
        ("486 Busy Here", "INVITE", False),
        ("200 OK", "BYE", False),
    ],
)
def test_only_responses_that_set_a_route_set_are_touched(
    status: str, method: str, edited: bool
) -> None:
    response = message(f"SIP/2.0 {status}", f"CSeq: 7 {method}")
    assert (f"<{LEG.own_uri}>".encode() in to_pjsua(response, LEG)) is edited


def test_a_far_end_request_reaches_pjsua_unchanged() -> None:
    bye = message("BYE sip:bridge@10.1.2.3:47000;transport=TLS SIP/2.0", "CSeq: 2 BYE")
    assert to_pjsua(bye, LEG) == bye


def test_messages_are_cut_at_their_content_length() -> None:
    first, second = invite(), message("ACK sip:x@y SIP/2.0", "CSeq: 1 ACK")
    stream = b"\r\n\r\n" + first + second[:20]
    keepalive, rest = next_message(stream) or (b"", b"")
    assert keepalive == b"\r\n\r\n"
    assert next_message(rest) == (first, second[:20])
    assert next_message(second[:20]) is None
    assert next_message(first[:-1]) is None  # the body not all there yet
    with pytest.raises(ValueError):
        next_message(b"X" * 70000)


@pytest.mark.parametrize(
    ("connection", "callee", "hop"),
    [
        ({"sipDomain": "pbx.example", "sipTransport": "tls"}, "conf", ("pbx.example", 5061)),
        (
            {"sipDomain": "pbx.example", "sipPort": 5071, "sipTransport": "tls"},
            "conf",
            ("pbx.example", 5071),
        ),
        ({"sipTransport": "tls"}, "sip:conf@[2001:db8::5]:5062", ("2001:db8::5", 5062)),
        (
            {"sipTransport": "tls", "sipOutboundProxy": "sip:edge.example:5063;transport=tls"},
            "sip:conf@pbx.example",
            ("edge.example", 5063),
        ),
        (
            {"sipTransport": "tls", "sipOutboundProxy": "edge.example"},
            "conf@pbx.example",
            ("edge.example", 5061),
        ),
    ],
)
def test_the_first_hop_is_the_outbound_proxy_else_the_callee_s_host(
    connection: dict[str, object], callee: str, hop: tuple[str, int]
) -> None:
    spec = parse_spec(
        {
            "callee": callee,
            "rtmpUrl": "rtmp://cdn/live",
            "rtmpStream": "s",
            "connection": connection,
        }
    )
    assert first_hop(spec) == hop


@pytest.mark.parametrize(
    ("connection", "callee", "past"),
    [
        ({"sipDomain": "pbx.example", "sipLogin": "u"}, "conf", False),
        ({"sipDomain": "pbx.example", "sipLogin": "u"}, "sip:conf@pbx.example:5061", False),
        ({"sipDomain": "reg.example", "sipLogin": "u"}, "sip:conf@pbx.example", True),
        (
            {"sipDomain": "reg.example", "sipLogin": "u", "sipOutboundProxy": "edge.example"},
            "sip:conf@pbx.example",
            False,
        ),
        (
            {"sipDomain": "reg.example", "sipLogin": "u", "sipRegisterRequired": False},
            "sip:conf@pbx.example",
            False,
        ),
    ],
    ids=["user part", "same host", "registrar elsewhere", "outbound proxy", "no REGISTER"],
)
def test_a_registrar_is_past_the_relay_only_when_it_is_not_the_first_hop(
    connection: dict[str, object], callee: str, past: bool
) -> None:
    spec = parse_spec(
        {
            "callee": callee,
            "rtmpUrl": "rtmp://cdn/live",
            "rtmpStream": "s",
            "connection": {
                "sipTransport": "tls",
                "sipPassword": "p",
                "sipRegisterRequired": True,
                **connection,
            },
        }
    )
    assert registers_past_the_relay(spec) is past


def test_the_bundle_pjsua_verifies_a_registrar_against(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("")
    assert trust_bundle({"SSL_CERT_FILE": str(bundle)}) == str(bundle)
    missing = trust_bundle({"SSL_CERT_FILE": str(tmp_path / "none.pem")})
    assert missing == (SYSTEM_CA_BUNDLE if Path(SYSTEM_CA_BUNDLE).is_file() else None)
