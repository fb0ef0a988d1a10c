"""The publisher's side of an RTMP connection, passed on with its ``connect`` command rewritten
(pure: bytes in, bytes out).

The RTMPS relay (rtmp/rtmps_relay.py) puts FFmpeg on a loopback address, so FFmpeg's
``connect`` command names ``rtmp://127.0.0.1:PORT/app`` as its tcUrl. Servers may route or
check on tcUrl, so the relay gives it back the server's own scheme and address, which is what
FFmpeg would have sent connecting directly. The rewritten message is longer or shorter than
FFmpeg believes, and RTMP headers are compressed against the previous message of their chunk
stream: FFmpeg sends its next command on that chunk stream with a one-byte header ("same length
as before") when the lengths happen to match, which the server would read with the rewritten
length. That next header is therefore written out in full. The parsing stops once the publisher
sends media (the server's and FFmpeg's views of every chunk stream agree again by then).

Just enough RTMP chunking and AMF0 is parsed for that; anything unexpected raises
NotRewritableError, and the caller passes the bytes on as they are.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit

from siprtmp_contract.urls import rtmp_port

#: How long one attempt to reach the RTMP server may take (TCP, TLS, the RTMP handshake): the
#: publisher's and the RTMPS relay's bound alike.
CONNECT_TIMEOUT_SECONDS = 5.0

#: RTMP's handshake packets (C1, C2 from the client; S1, S2 from the server) after the
#: one-byte version (C0, S0).
HANDSHAKE_PACKET_BYTES = 1536
#: Each side's whole handshake: C0 + C1, then C2 (passed through untouched); S0 + S1 + S2.
HANDSHAKE_BYTES = 1 + 2 * HANDSHAKE_PACKET_BYTES
DEFAULT_CHUNK_SIZE = 128
SET_CHUNK_SIZE = 1
AUDIO, VIDEO, AMF0_DATA = 8, 9, 18
AMF0_COMMAND = 20
CONNECT = b"\x02\x00\x07connect"
_HEADER_SIZES = (11, 7, 3, 0)
_EXTENDED = 0xFFFFFF


class NotRewritableError(Exception):
    """The stream is not what this module knows how to rewrite; pass it through unchanged."""


@dataclass
class _ChunkStream:
    """One chunk stream as the sender compresses against it: the last header's fields."""

    timestamp: int = 0
    length: int = 0
    type_id: int = 0
    stream_id: int = 0
    extended: bool = False
    remaining: int = 0  # bytes of the current message still to come
    payload: bytearray = field(default_factory=bytearray)


@dataclass(frozen=True)
class _Chunk:
    csid: int
    fmt: int
    basic: bytes  # the basic header as sent
    start: int  # offset of the chunk
    header_end: int  # offset of the chunk's payload
    end: int  # offset just past the chunk
    starts_message: bool
    completes_message: bool


class _ChunkReader:
    """Follows the publisher's chunking: chunk size, and each chunk stream's last header."""

    def __init__(self) -> None:
        self.chunk_size = DEFAULT_CHUNK_SIZE
        self.streams: dict[int, _ChunkStream] = {}

    def read(self, data: bytes, pos: int) -> _Chunk | None:
        """The chunk at ``pos`` (its stream's state updated), or None if it is not all there.

        State changes only for a whole chunk, so a short read can be retried with more data.
        """
        if pos >= len(data):
            return None
        fmt, csid, basic_len = data[pos] >> 6, data[pos] & 0x3F, 1
        if csid in (0, 1):
            basic_len = 2 if csid == 0 else 3
            if pos + basic_len > len(data):
                return None
            csid = 64 + data[pos + 1] + (256 * data[pos + 2] if basic_len == 3 else 0)
        at = pos + basic_len
        if at + _HEADER_SIZES[fmt] > len(data):
            return None
        if fmt != 0 and csid not in self.streams:
            raise NotRewritableError("a chunk stream continued before it began")
        # A copy: a chunk that is not all there yet must leave the state as it was.
        stream = replace(self.streams.get(csid) or _ChunkStream())
        starts = stream.remaining == 0
        if not starts and fmt != 3:
            raise NotRewritableError("a new header in the middle of a message")
        if fmt <= 2:
            stream.timestamp = int.from_bytes(data[at : at + 3], "big")
            stream.extended = stream.timestamp == _EXTENDED
        if fmt <= 1:
            stream.length = int.from_bytes(data[at + 3 : at + 6], "big")
            stream.type_id = data[at + 6]
        if fmt == 0:
            stream.stream_id = int.from_bytes(data[at + 7 : at + 11], "little")
        at += _HEADER_SIZES[fmt]
        if stream.extended:
            if at + 4 > len(data):
                return None
            stream.timestamp = int.from_bytes(data[at : at + 4], "big")
            at += 4
        if starts:
            stream.remaining, stream.payload = stream.length, bytearray()
        take = min(self.chunk_size, stream.remaining)
        if at + take > len(data):
            return None
        stream.payload = stream.payload + data[at : at + take]
        stream.remaining -= take
        self.streams[csid] = stream
        completes = stream.remaining == 0
        if completes and stream.type_id == SET_CHUNK_SIZE and len(stream.payload) >= 4:
            self.chunk_size = struct.unpack(">I", bytes(stream.payload[:4]))[0] & 0x7FFFFFFF
        return _Chunk(csid, fmt, data[pos : pos + basic_len], pos, at, at + take, starts, completes)


class PublisherStream:
    """The publisher's bytes after the handshake, in; what to send the server, out."""

    def __init__(self, local_prefix: str, remote_prefix: str) -> None:
        self.local_prefix, self.remote_prefix = local_prefix, remote_prefix
        self._reader = _ChunkReader()
        self._pending = bytearray()
        self._connect_csid: int | None = None  # once the connect has gone out rewritten
        self._header_written_out = False
        self._passthrough = False
        #: The publisher has sent media or metadata: its set-up (connect, publish) is over.
        self.publishing = False

    @property
    def parsing(self) -> bool:
        """False once the rest goes on unparsed (set up and published, or not understood)."""
        return not self._passthrough

    def feed(self, data: bytes) -> bytes:
        if self._passthrough:
            return data
        self._pending += data
        out = bytearray()
        try:
            if self._connect_csid is None:
                out += self._connect()
        except NotRewritableError:
            self._passthrough = True  # nothing went out yet: all of it goes on as it is
        if self._connect_csid is not None and not self._passthrough:
            out += self._follow()
        if self._passthrough:
            out += self._pending
            self._pending.clear()
        return bytes(out)

    def _connect(self) -> bytes:
        """Everything up to and including the connect, rewritten, once it is all there. Read
        afresh on each call: nothing is sent before the connect is complete."""
        reader, pos, out, data = _ChunkReader(), 0, bytearray(), bytes(self._pending)
        while (chunk := reader.read(data, pos)) is not None:
            started_at, pos = pos, chunk.end
            stream = reader.streams[chunk.csid]
            if not chunk.completes_message:
                continue
            if stream.type_id == SET_CHUNK_SIZE:
                out += data[started_at:pos]  # a single-chunk message
                continue
            if stream.type_id != AMF0_COMMAND or not stream.payload.startswith(CONNECT):
                raise NotRewritableError(f"first command is message type {stream.type_id}")
            message = _replace_tc_url(bytes(stream.payload), self.local_prefix, self.remote_prefix)
            out += _chunk(chunk.basic, stream, message, reader.chunk_size)
            del self._pending[:pos]
            self._reader, self._connect_csid = reader, chunk.csid
            return bytes(out)
        return b""

    def _follow(self) -> bytes:
        """Chunks after the connect, as they are sent on; media or metadata from the publisher
        ends the parsing."""
        out, pos, data = bytearray(), 0, bytes(self._pending)
        try:
            while (chunk := self._reader.read(data, pos)) is not None:
                out += self._sent_as(chunk, data[pos : chunk.end])
                pos = chunk.end
                if self.publishing and self._header_written_out:
                    self._passthrough = True
                    break
        except NotRewritableError:
            self._passthrough = True  # what is left goes on as it is
        del self._pending[:pos]
        return bytes(out)

    def _sent_as(self, chunk: _Chunk, piece: bytes) -> bytes:
        """The next message on the connect's chunk stream gets a full-length header."""
        if not chunk.starts_message:
            return piece
        stream = self._reader.streams[chunk.csid]
        self.publishing |= stream.type_id in (AUDIO, VIDEO, AMF0_DATA)
        if chunk.csid != self._connect_csid or self._header_written_out:
            return piece
        self._header_written_out = True
        if chunk.fmt < 2:
            return piece
        return _type1_header(chunk.basic, stream) + piece[chunk.header_end - chunk.start :]


def split_url(url: str) -> tuple[str, str, str]:
    """(``user:password@`` or "", ``host[:port]``, the rest) of a URL, as written: FFmpeg reads
    everything after the authority as the path (a '#' or '?' in a stream key included)."""
    rest = url.split("://", 1)[1]
    cut = min((rest.index(c) for c in "/?#" if c in rest), default=len(rest))
    userinfo, at, host_port = rest[:cut].rpartition("@")
    return userinfo + at, host_port, rest[cut:]


def tc_url_prefix(url: str) -> str:
    """The start of the tcUrl FFmpeg sends connecting to ``url`` directly: scheme, host as
    written (IPv6 in brackets) and port, which it always names."""
    _, host_port, _ = split_url(url)
    bracketed = host_port.startswith("[")
    host = host_port[: host_port.index("]") + 1] if bracketed else host_port.partition(":")[0]
    parts = urlsplit(url)
    return f"{parts.scheme}://{host}:{rtmp_port(parts)}"


def with_address(url: str, address: str) -> str:
    """``url`` with its host replaced by ``address`` (IPv6 in brackets) and its port written
    out; ``user:password@`` and everything after the authority as written."""
    userinfo, _, rest = split_url(url)
    parts = urlsplit(url)
    host = f"[{address}]" if ":" in address else address
    return f"{parts.scheme}://{userinfo}{host}:{rtmp_port(parts)}{rest}"


def _type1_header(basic: bytes, stream: _ChunkStream) -> bytes:
    """A type-1 header (timestamp delta, length, type) for a message that came with a type-2 or
    type-3 one: the server must not take its length from the rewritten connect's."""
    if stream.extended:
        raise NotRewritableError("an extended timestamp on a command")
    return (
        bytes([0x40 | (basic[0] & 0x3F)])
        + basic[1:]
        + stream.timestamp.to_bytes(3, "big")
        + stream.length.to_bytes(3, "big")
        + bytes([stream.type_id])
    )


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
    try:
        return _replace_in_command_object(message, local_prefix, remote_prefix)
    except IndexError as error:  # cut short: malformed AMF0
        raise NotRewritableError("connect is not well-formed AMF0") from error


def _replace_in_command_object(message: bytes, local_prefix: str, remote_prefix: str) -> bytes:
    pos = _skip_value(message, 0)  # "connect"
    pos = _skip_value(message, pos)  # transaction id
    if message[pos] != 0x03:
        raise NotRewritableError("connect without a command object")
    pos += 1
    while message[pos : pos + 3] != b"\x00\x00\x09":
        if pos >= len(message):
            raise NotRewritableError("connect's command object has no end")
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
            if pos >= len(data):
                raise NotRewritableError("an AMF0 object has no end")
            pos = _skip_value(data, pos + 2 + int.from_bytes(data[pos : pos + 2], "big"))
        return pos + 3
    if marker == 0x0C:  # long string
        return pos + 5 + int.from_bytes(data[pos + 1 : pos + 5], "big")
    raise NotRewritableError(f"AMF0 marker {marker:#x} in connect")
