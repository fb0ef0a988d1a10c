"""The first RTMP message a client sends after the handshake, rewritten in flight (pure).

The RTMPS relay (media/rtmps_relay.py) puts FFmpeg on a loopback address, so FFmpeg's
``connect`` command names ``rtmp://127.0.0.1:PORT/app`` as its tcUrl. Servers may route or
check on tcUrl, so the relay gives it back the server's own scheme and address, which is what
FFmpeg would have sent connecting directly. This module parses just enough RTMP chunking and
AMF0 to do that, and says "leave it" for anything it does not expect.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

#: C0 + C1, then C2: the client's side of the handshake, passed through untouched.
HANDSHAKE_BYTES = 1 + 1536 + 1536
DEFAULT_CHUNK_SIZE = 128
SET_CHUNK_SIZE = 1
AMF0_COMMAND = 20
_HEADER_SIZES = (11, 7, 3, 0)
_EXTENDED = 0xFFFFFF


class NotRewritableError(Exception):
    """The stream is not what this module knows how to rewrite; pass it through unchanged."""


@dataclass
class _ChunkStream:
    timestamp: int = 0
    length: int = 0
    type_id: int = 0
    stream_id: int = 0
    extended: bool = False


@dataclass(frozen=True)
class Rewrite:
    """The bytes to send instead of ``consumed`` bytes of the input (handshake excluded)."""

    data: bytes
    consumed: int


def rewrite_connect(chunks: bytes, local_prefix: str, remote_prefix: str) -> Rewrite | None:
    """``chunks`` (the client's bytes after the handshake) with the ``connect`` command's tcUrl
    starting ``remote_prefix`` where it started ``local_prefix``; None while the connect
    message is not complete yet.

    Raises NotRewritableError for anything unexpected (another message interleaved with connect, an
    AMF3 connect, no tcUrl): the caller then forwards the bytes as they are.
    """
    chunk_size = DEFAULT_CHUNK_SIZE
    streams: dict[int, _ChunkStream] = {}
    pos = 0
    started_at: int | None = None
    payload = bytearray()
    current: tuple[int, bytes] | None = None  # csid, basic header bytes of the connect message
    while True:
        header = _read_chunk_header(chunks, pos, streams)
        if header is None:
            return None
        basic, csid, fmt, end = header
        stream = streams[csid]
        if current is not None and csid != current[0]:
            raise NotRewritableError("a message interleaved with connect")
        if fmt != 3 or current is None:
            # a new message starts
            if current is not None:
                raise NotRewritableError("connect cut short")
            started_at, current, payload = pos, (csid, basic), bytearray()
        take = min(chunk_size, stream.length - len(payload))
        if end + take > len(chunks):
            return None
        payload += chunks[end : end + take]
        pos = end + take
        if len(payload) < stream.length:
            continue
        if stream.type_id == SET_CHUNK_SIZE and len(payload) >= 4:
            chunk_size = struct.unpack(">I", bytes(payload[:4]))[0] & 0x7FFFFFFF
            current = None
            continue
        if stream.type_id != AMF0_COMMAND or not payload.startswith(b"\x02\x00\x07connect"):
            raise NotRewritableError(f"first command is message type {stream.type_id}, not connect")
        assert started_at is not None
        message = _replace_tc_url(bytes(payload), local_prefix, remote_prefix)
        rechunked = _chunk(current[1], stream, message, chunk_size)
        return Rewrite(chunks[:started_at] + rechunked, pos)


def _read_chunk_header(
    data: bytes, pos: int, streams: dict[int, _ChunkStream]
) -> tuple[bytes, int, int, int] | None:
    """(basic header bytes, chunk stream id, fmt, offset of the chunk data); None if short."""
    if pos >= len(data):
        return None
    fmt, csid, basic_len = data[pos] >> 6, data[pos] & 0x3F, 1
    if csid in (0, 1):
        basic_len = 2 if csid == 0 else 3
        if pos + basic_len > len(data):
            return None
        csid = 64 + data[pos + 1] + (256 * data[pos + 2] if basic_len == 3 else 0)
    basic = data[pos : pos + basic_len]
    at = pos + basic_len
    size = _HEADER_SIZES[fmt]
    if at + size > len(data):
        return None
    if fmt != 0 and csid not in streams:
        raise NotRewritableError("a chunk stream continued before it began")
    stream = streams.setdefault(csid, _ChunkStream())
    if fmt <= 2:
        timestamp = int.from_bytes(data[at : at + 3], "big")
        stream.extended = timestamp == _EXTENDED
        stream.timestamp = timestamp
    if fmt <= 1:
        stream.length = int.from_bytes(data[at + 3 : at + 6], "big")
        stream.type_id = data[at + 6]
    if fmt == 0:
        stream.stream_id = int.from_bytes(data[at + 7 : at + 11], "little")
    at += size
    if stream.extended:
        if at + 4 > len(data):
            return None
        stream.timestamp = int.from_bytes(data[at : at + 4], "big")
        at += 4
    return basic, csid, fmt, at


def _chunk(basic: bytes, stream: _ChunkStream, message: bytes, chunk_size: int) -> bytes:
    """``message`` as one fmt-0 chunk and fmt-3 continuations on the same chunk stream."""
    extended = stream.timestamp >= _EXTENDED or stream.extended
    stamp = _EXTENDED if extended else stream.timestamp
    ext = struct.pack(">I", stream.timestamp) if extended else b""
    out = bytearray(bytes([basic[0] & 0x3F]) + basic[1:])
    out += stamp.to_bytes(3, "big") + len(message).to_bytes(3, "big") + bytes([stream.type_id])
    out += stream.stream_id.to_bytes(4, "little") + ext
    continuation = bytes([0xC0 | (basic[0] & 0x3F)]) + basic[1:] + ext
    for offset in range(0, len(message), chunk_size):
        if offset:
            out += continuation
        out += message[offset : offset + chunk_size]
    return bytes(out)


def _replace_tc_url(message: bytes, local_prefix: str, remote_prefix: str) -> bytes:
    """The AMF0 ``connect`` command with the prefix of its command object's tcUrl replaced."""
    pos = _skip_value(message, 0)  # "connect"
    pos = _skip_value(message, pos)  # transaction id
    if message[pos] != 0x03:
        raise NotRewritableError("connect without a command object")
    pos += 1
    while message[pos : pos + 3] != b"\x00\x00\x09":
        key_len = int.from_bytes(message[pos : pos + 2], "big")
        key = message[pos + 2 : pos + 2 + key_len]
        value_at = pos + 2 + key_len
        value_end = _skip_value(message, value_at)
        if key == b"tcUrl":
            if message[value_at] != 0x02:
                raise NotRewritableError("tcUrl is not a string")
            old = message[value_at + 3 : value_end].decode("utf-8", "replace")
            if not old.startswith(local_prefix):
                raise NotRewritableError("tcUrl does not name the relay")
            encoded = (remote_prefix + old[len(local_prefix) :]).encode()
            value = b"\x02" + len(encoded).to_bytes(2, "big") + encoded
            return message[:value_at] + value + message[value_end:]
        pos = value_end
    raise NotRewritableError("connect names no tcUrl")


def _skip_value(data: bytes, pos: int) -> int:
    """Offset just past the AMF0 value at ``pos``."""
    marker = data[pos]
    if marker == 0x00:  # number
        return pos + 9
    if marker == 0x01:  # boolean
        return pos + 2
    if marker == 0x02:  # string
        return pos + 3 + int.from_bytes(data[pos + 1 : pos + 3], "big")
    if marker in (0x05, 0x06):  # null, undefined
        return pos + 1
    if marker in (0x03, 0x08):  # object, ECMA array: properties until the end marker
        pos += 1 if marker == 0x03 else 5
        while data[pos : pos + 3] != b"\x00\x00\x09":
            pos = _skip_value(data, pos + 2 + int.from_bytes(data[pos : pos + 2], "big"))
        return pos + 3
    if marker == 0x0C:  # long string
        return pos + 5 + int.from_bytes(data[pos + 1 : pos + 5], "big")
    raise NotRewritableError(f"AMF0 marker {marker:#x} in connect")
