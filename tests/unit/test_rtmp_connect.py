"""The RTMPS relay's rewrite of FFmpeg's ``connect`` command (rtmp/connect.py), on RTMP
chunk streams built here the way FFmpeg's rtmppkt.c writes them, read back the way a server
reads them."""

from __future__ import annotations

import struct

import pytest

from siprtmp_bridge.rtmp.connect import PublisherStream, split_url, tc_url_prefix
from siprtmp_bridge.rtmp.route import DirectRoute, route_for
from siprtmp_bridge.rtmp.rtmps_tunnel import RtmpsTunnel

LOCAL = "rtmp://127.0.0.1:40000"
REMOTE = "rtmps://live.example.net:443"
COMMAND, AUDIO, SET_CHUNK_SIZE = 20, 8, 1


def amf_string(text: str) -> bytes:
    encoded = text.encode()
    return b"\x02" + struct.pack(">H", len(encoded)) + encoded


def command(name: str, transaction: float, *args: bytes) -> bytes:
    return amf_string(name) + b"\x00" + struct.pack(">d", transaction) + b"".join(args)


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
    return command("connect", 1.0, b"\x03" + body + b"\x00\x00\x09")


def chunked(
    message: bytes, type_id: int, fmt: int = 0, chunk_size: int = 128, csid: int = 3
) -> bytes:
    """One message: a first chunk with a header of type ``fmt``, then type-3 continuations."""
    header = {
        0: b"\x00\x00\x00" + len(message).to_bytes(3, "big") + bytes([type_id]) + bytes(4),
        1: b"\x00\x00\x00" + len(message).to_bytes(3, "big") + bytes([type_id]),
        2: b"\x00\x00\x00",
        3: b"",
    }[fmt]
    out = bytes([fmt << 6 | csid]) + header
    for offset in range(0, len(message), chunk_size):
        out += (bytes([0xC0 | csid]) if offset else b"") + message[offset : offset + chunk_size]
    return out


def server_reads(stream: bytes) -> list[tuple[int, bytes]]:
    """The messages a server reads from ``stream``: (type, payload), headers decompressed
    against each chunk stream's previous message as the RTMP specification says."""
    chunk_size, messages, pos = 128, [], 0
    state: dict[int, tuple[int, int]] = {}
    partial: dict[int, bytearray] = {}
    while pos < len(stream):
        fmt, csid = stream[pos] >> 6, stream[pos] & 0x3F
        pos += 1
        length, type_id = state.get(csid, (0, 0))
        if fmt <= 1:
            length, type_id = int.from_bytes(stream[pos + 3 : pos + 6], "big"), stream[pos + 6]
        pos += (11, 7, 3, 0)[fmt]
        state[csid] = (length, type_id)
        payload = partial.setdefault(csid, bytearray())
        take = min(chunk_size, length - len(payload))
        payload += stream[pos : pos + take]
        pos += take
        if len(payload) == length:
            messages.append((type_id, bytes(partial.pop(csid))))
            if type_id == SET_CHUNK_SIZE:
                chunk_size = struct.unpack(">I", payload[:4])[0]
    return messages


def test_connect_spread_over_chunks_gets_the_servers_tc_url() -> None:
    original = connect_command(f"{LOCAL}/live")
    assert len(original) > 128  # the message does span chunks
    publisher = PublisherStream(LOCAL, REMOTE)
    sent = publisher.feed(chunked(original, COMMAND))
    assert server_reads(sent) == [(COMMAND, connect_command(f"{REMOTE}/live"))]


def test_bytes_arriving_one_at_a_time_give_the_same_stream() -> None:
    stream = chunked(connect_command(f"{LOCAL}/live"), COMMAND) + chunked(
        command("releaseStream", 2.0, b"\x05", amf_string("key")), COMMAND, fmt=1
    )
    publisher = PublisherStream(LOCAL, REMOTE)
    pieces = [publisher.feed(stream[i : i + 1]) for i in range(len(stream))]
    connect_length = len(chunked(connect_command(f"{LOCAL}/live"), COMMAND))
    assert all(piece == b"" for piece in pieces[: connect_length - 1])  # held until complete
    assert b"".join(pieces) == PublisherStream(LOCAL, REMOTE).feed(stream)


@pytest.mark.parametrize("fmt", [2, 3])
def test_the_next_command_that_counts_on_connects_length_gets_its_own(fmt: int) -> None:
    """FFmpeg compresses the next header on the connect's chunk stream against the connect it
    sent (type 3: same length, type, timestamp). The server saw a connect of another length, so
    that header is written out in full."""
    original = connect_command(f"{LOCAL}/live")
    key = "k" * (len(original) - len(command("releaseStream", 2.0, b"\x05", amf_string(""))))
    release = command("releaseStream", 2.0, b"\x05", amf_string(key))
    assert len(release) == len(original)  # the key length that broke publishing
    stream = chunked(original, COMMAND) + chunked(release, COMMAND, fmt=fmt)
    publish = command("publish", 5.0, b"\x05", amf_string(key), amf_string("live"))
    stream += chunked(publish, COMMAND, fmt=1) + chunked(b"\xaf\x00\x12\x10", AUDIO, fmt=0, csid=4)
    publisher = PublisherStream(LOCAL, REMOTE)
    sent = publisher.feed(stream)
    assert server_reads(sent) == [
        (COMMAND, connect_command(f"{REMOTE}/live")),
        (COMMAND, release),
        (COMMAND, publish),
        (AUDIO, b"\xaf\x00\x12\x10"),
    ]
    assert publisher.publishing and not publisher.parsing


def test_chunk_size_set_by_the_publisher_is_followed() -> None:
    set_chunk_size = chunked(struct.pack(">I", 4096), SET_CHUNK_SIZE, csid=2)
    release = command("releaseStream", 2.0, b"\x05", amf_string("x" * 300))
    stream = chunked(connect_command(f"{LOCAL}/live"), COMMAND) + set_chunk_size
    stream += chunked(release, COMMAND, fmt=1, chunk_size=4096)
    sent = PublisherStream(LOCAL, REMOTE).feed(stream)
    assert [payload for _, payload in server_reads(sent)][2] == release


def test_an_incomplete_connect_is_waited_for() -> None:
    stream = chunked(connect_command(f"{LOCAL}/live"), COMMAND)
    assert all(
        PublisherStream(LOCAL, REMOTE).feed(stream[:cut]) == b"" for cut in range(len(stream))
    )


@pytest.mark.parametrize(
    "stream",
    [
        chunked(connect_command("rtmp://10.0.0.1:1935/live"), COMMAND),  # not the relay's
        chunked(command("publish", 2.0), COMMAND),
        chunked(b"\x00" * 8, 18),  # data, not a command
        chunked(command("connect", 1.0, b"\x03" + struct.pack(">H", 3) + b"app"), COMMAND),
    ],
    ids=["foreign tcUrl", "not connect", "not a command", "object without an end"],
)
def test_anything_unexpected_is_passed_on_as_it_is(stream: bytes) -> None:
    publisher = PublisherStream(LOCAL, REMOTE)
    assert publisher.feed(stream) == stream
    assert publisher.feed(b"more") == b"more"
    assert not publisher.parsing


@pytest.mark.parametrize(
    ("url", "prefix"),
    [
        ("rtmps://Live.Example.net/app/key", "rtmps://Live.Example.net:443"),
        ("rtmps://user:pw@live.example.net:4443/app/key", "rtmps://live.example.net:4443"),
        ("rtmps://[2001:db8::1]/app/key", "rtmps://[2001:db8::1]:443"),
    ],
)
def test_tc_url_prefix_is_what_ffmpeg_names_connecting_directly(url: str, prefix: str) -> None:
    assert tc_url_prefix(url) == prefix


def test_the_rest_of_the_url_stays_as_written() -> None:
    assert split_url("rtmps://u:p@h:1/app/key#2?x=1") == ("u:p@", "h:1", "/app/key#2?x=1")
    assert split_url("rtmps://h/app") == ("", "h", "/app")


def test_only_verified_rtmps_goes_through_the_relay() -> None:
    assert isinstance(route_for("rtmps://cdn.example.net/app/key", verify_tls=True), RtmpsTunnel)
    assert isinstance(route_for("rtmps://cdn.example.net/app/key", verify_tls=False), DirectRoute)
    assert isinstance(route_for("rtmp://cdn.example.net/app/key", verify_tls=True), DirectRoute)
