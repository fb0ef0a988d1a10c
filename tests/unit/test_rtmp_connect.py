"""The RTMPS relay's rewrite of FFmpeg's ``connect`` command (media/rtmp_connect.py), on RTMP
chunk streams built here the way the RTMP specification lays them out."""

from __future__ import annotations

import struct

import pytest

from siprtmp_bridge.media.rtmp_connect import NotRewritableError, rewrite_connect
from siprtmp_bridge.media.rtmp_route import DirectRoute, route_for
from siprtmp_bridge.media.rtmps_relay import server_prefix
from siprtmp_bridge.media.rtmps_tunnel import RtmpsTunnel

LOCAL = "rtmp://127.0.0.1:40000"
REMOTE = "rtmps://live.example.net:443"


def amf_string(text: str) -> bytes:
    encoded = text.encode()
    return b"\x02" + struct.pack(">H", len(encoded)) + encoded


def connect_command(tc_url: str) -> bytes:
    """FFmpeg's connect: name, transaction 1, command object (tcUrl in the middle)."""
    fields = [
        ("app", amf_string("live")),
        ("type", amf_string("nonprivate")),
        ("flashVer", amf_string("FMLE/3.0 (compatible; Lavf61.7.100)")),
        ("tcUrl", amf_string(tc_url)),
        ("fpad", b"\x01\x00"),
        ("audioCodecs", b"\x00" + struct.pack(">d", 3191.0)),
    ]
    body = b"".join(struct.pack(">H", len(k)) + k.encode() + v for k, v in fields)
    return (
        amf_string("connect") + b"\x00" + struct.pack(">d", 1.0) + b"\x03" + body + b"\x00\x00\x09"
    )


def chunked(message: bytes, type_id: int, chunk_size: int = 128, csid: int = 3) -> bytes:
    """One message as a fmt-0 chunk and fmt-3 continuations."""
    header = bytes([csid]) + b"\x00\x00\x00" + len(message).to_bytes(3, "big") + bytes([type_id])
    out = header + b"\x00\x00\x00\x00"
    for offset in range(0, len(message), chunk_size):
        out += (bytes([0xC0 | csid]) if offset else b"") + message[offset : offset + chunk_size]
    return out


def test_connect_spread_over_chunks_gets_the_servers_tc_url() -> None:
    stream = chunked(connect_command(f"{LOCAL}/live"), type_id=20)
    assert len(connect_command(LOCAL)) > 128  # the message does span chunks
    change = rewrite_connect(stream + b"more", LOCAL, REMOTE)
    assert change is not None
    assert change.data == chunked(connect_command(f"{REMOTE}/live"), type_id=20)
    assert change.consumed == len(stream)


def test_chunk_size_set_before_connect_is_kept_and_followed() -> None:
    set_chunk_size = chunked(struct.pack(">I", 4096), type_id=1, csid=2)
    stream = set_chunk_size + chunked(connect_command(f"{LOCAL}/live"), 20, chunk_size=4096)
    change = rewrite_connect(stream, LOCAL, REMOTE)
    assert change is not None
    expected = set_chunk_size + chunked(connect_command(f"{REMOTE}/live"), 20, chunk_size=4096)
    assert change.data == expected


def test_an_incomplete_connect_is_waited_for() -> None:
    stream = chunked(connect_command(f"{LOCAL}/live"), type_id=20)
    assert all(rewrite_connect(stream[:cut], LOCAL, REMOTE) is None for cut in range(len(stream)))


@pytest.mark.parametrize(
    "stream",
    [
        chunked(connect_command("rtmp://10.0.0.1:1935/live"), type_id=20),  # not the relay's
        chunked(amf_string("publish") + b"\x00" + struct.pack(">d", 2.0), type_id=20),
        chunked(b"\x00" * 8, type_id=18),  # data, not a command
    ],
    ids=["foreign tcUrl", "not connect", "not a command"],
)
def test_anything_unexpected_is_left_alone(stream: bytes) -> None:
    with pytest.raises(NotRewritableError):
        rewrite_connect(stream, LOCAL, REMOTE)


def test_server_prefix_is_what_ffmpeg_names_directly() -> None:
    assert server_prefix("live.example.net", 443) == "rtmps://live.example.net:443"
    assert server_prefix("2001:db8::1", 443) == "rtmps://[2001:db8::1]:443"


def test_only_verified_rtmps_goes_through_the_relay() -> None:
    assert isinstance(route_for("rtmps://cdn.example.net/app/key", verify_tls=True), RtmpsTunnel)
    assert isinstance(route_for("rtmps://cdn.example.net/app/key", verify_tls=False), DirectRoute)
    assert isinstance(route_for("rtmp://cdn.example.net/app/key", verify_tls=True), DirectRoute)
