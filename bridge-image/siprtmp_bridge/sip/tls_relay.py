"""SIP over TLS 1.2 and 1.3 with the server verified by Python's ``ssl``: a child process that
pjsua's own TLS transport reaches on loopback, and that carries its SIP to the first hop (the
outbound proxy, else the callee's host) over TLS made by Debian's OpenSSL.

Why: the pjsua2-python wheels link OpenSSL 1.0.2, which has no TLS 1.3, so pjsua alone cannot
reach a server that speaks only 1.3. Python's default context verifies the chain and the host
name against ``SSL_CERT_FILE`` (the chart's CA bundle in a pod) or the system's trust store, and
sends SNI; the minimum version is TLS 1.2, as pjsua's was.

Why a process: it must answer while pjsua polls, and nothing in it may wait on the GIL a
pjsua2 call holds (rtmp/rtmps_relay.py, the RTMPS twin, says more).

The loopback leg is mutual TLS with one certificate made for this run (sip/tls_tunnel.py): the
relay presents it and asks pjsua for it, so neither end talks to a stranger, which matters when
the pod shares the node's loopback (host networking).

How pjsua gets here without the far end seeing it: the relay is pjsua's first outbound proxy
(``Route: <RELAY_URI>``). Each request pjsua sends loses that Route (the first one, when it
names the relay: RFC 3261 §16.4, what a loose-routing proxy does to its own entry), and each
response to an INVITE that may set a dialog's route set (101-299) gains a Record-Route naming
the relay, last (a UAC reverses the list: RFC 3261 §12.1.2), so in-dialog requests (ACK, BYE,
re-INVITE, UPDATE) come back through the relay instead of going to the far end directly over
pjsua's own TLS 1.2. Nothing else is changed: Via, Contact, the Request-URI and the body reach
the far end as pjsua wrote them, and requests the far end sends on the connection (its BYE)
reach pjsua on the connection they belong to.

Protocol with the bridge: one JSON line on stdin (``{"host", "port", "verify", "certificate",
"key"}``), answered ``listening PORT`` on stdout; then, for each connection pjsua makes,
``connected`` or ``error REASON`` (the first hop could not be reached: the bridge logs it and
tells it for pjsua's reason). End of stdin ends the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import ssl
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

LISTENING = "listening"
CONNECTED = "connected"
ERROR = "error"
#: A connection to the first hop, TLS handshake included, within this long.
CONNECT_TIMEOUT_SECONDS = 5.0
#: A far end that takes nothing for this long counts as gone.
WRITE_TIMEOUT_SECONDS = 30.0
#: A message head that large without its end is no SIP: the connection ends.
MAX_HEAD_BYTES = 65536
#: What to do about a refused certificate, in the line the log carries.
TRUST_HINT = (
    "trust its CA with SSL_CERT_FILE (the chart's CA bundle), "
    "or skip the check with connection.sipTlsVerifyServer: false"
)
_READ = 65536
_CONTENT_LENGTH = re.compile(rb"^(?:content-length|l)[ \t]*:[ \t]*(\d+)", re.I | re.M)
_STATUS_LINE = re.compile(rb"SIP/2\.0 (\d{3}) ")
_CSEQ = re.compile(rb"^cseq[ \t]*:[ \t]*\d+[ \t]+(\S+)", re.I | re.M)


def relay_uri(port: int) -> str:
    """The relay as pjsua's outbound proxy: the one form it is named by and recognised in."""
    return f"sip:127.0.0.1:{port};transport=tls;lr"


def next_message(buffer: bytes) -> tuple[bytes, bytes] | None:
    """(one unit, what follows) off the front of a SIP stream, or None until it is whole: a
    run of CRLFs (RFC 5626 keep-alives) or a message (head, then Content-Length's body)."""
    blank = len(buffer) - len(buffer.lstrip(b"\r\n"))
    if blank:
        return buffer[:blank], buffer[blank:]
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        if len(buffer) > MAX_HEAD_BYTES:
            raise ValueError("a SIP message head without its end")
        return None
    length = _CONTENT_LENGTH.search(buffer[: end + 2])
    total = end + 4 + (int(length.group(1)) if length else 0)
    if len(buffer) < total:
        return None
    return buffer[:total], buffer[total:]


def _header_name(line: bytes) -> bytes:
    return line.partition(b":")[0].strip().lower()


def _first_and_rest(value: bytes) -> tuple[bytes, bytes]:
    """A header value's first element and the rest, split at the first comma outside <>."""
    depth = 0
    for index, byte in enumerate(value):
        if byte == ord("<"):
            depth += 1
        elif byte == ord(">"):
            depth -= 1
        elif byte == ord(",") and depth == 0:
            return value[:index], value[index + 1 :]
    return value, b""


@dataclass(frozen=True)
class Leg:
    """What one relayed connection's edits need to know."""

    #: The relay as pjsua names it in Route (``relay_uri``).
    own_uri: str
    #: pjsua's end of the loopback connection (``127.0.0.1:PORT``), as it writes itself.
    pjsua_address: bytes
    #: The relay's end of the connection to the far end (``ADDRESS:PORT``): what pjsua would
    #: have written had it made that connection itself.
    bridge_address: bytes


def host_port(address: tuple[Any, ...]) -> bytes:
    """A socket address as a SIP sent-by or URI writes it (IPv6 in brackets)."""
    host, port = str(address[0]), int(address[1])
    return (f"[{host}]:{port}" if ":" in host else f"{host}:{port}").encode()


def to_far_end(message: bytes, leg: Leg) -> bytes:
    """A message from pjsua as the far end gets it: a request's first Route removed when it
    names the relay; pjsua's loopback address in Via and Contact replaced by the address the
    far end sees the connection come from (pjsua writes its connection's own address there,
    and far ends that reuse connections look for it); everything else as it was."""
    if message.startswith((b"\r", b"\n")):
        return message
    head, separator, body = message.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    is_response = message.startswith(b"SIP/2.0 ")  # a response has no Route to take off
    pjsua_address = re.compile(rb"(?<![\w.:\[])" + re.escape(leg.pjsua_address) + rb"(?!\d)")
    for index, line in enumerate(lines):
        if index and _header_name(line) in (b"via", b"v", b"contact", b"m"):
            lines[index] = pjsua_address.sub(lambda _: leg.bridge_address, line)
    routes = [i for i, line in enumerate(lines) if i and _header_name(line) == b"route"]
    if routes and not is_response:
        first, rest = _first_and_rest(lines[routes[0]].partition(b":")[2])
        if first.strip() == f"<{leg.own_uri}>".encode():
            if rest.strip():
                lines[routes[0]] = b"Route: " + rest.strip()
            else:
                del lines[routes[0]]
    return b"\r\n".join(lines) + separator + body


def to_pjsua(message: bytes, leg: Leg) -> bytes:
    """A message from the far end as pjsua gets it: a response to an INVITE that may set the
    dialog's route set (101-299) gains the relay's Record-Route, after any it has."""
    status = _STATUS_LINE.match(message)
    head, separator, body = message.partition(b"\r\n\r\n")
    cseq = _CSEQ.search(head)
    if not (status and 101 <= int(status.group(1)) <= 299 and cseq and cseq.group(1) == b"INVITE"):
        return message
    lines = head.split(b"\r\n")
    record_routes = [i for i, line in enumerate(lines) if _header_name(line) == b"record-route"]
    at = record_routes[-1] + 1 if record_routes else len(lines)
    lines.insert(at, f"Record-Route: <{leg.own_uri}>".encode())
    return b"\r\n".join(lines) + separator + body


def upstream_context(verify: bool) -> ssl.SSLContext:
    """TLS 1.2 or 1.3 to the first hop; verified (chain, name) unless the spec says not to."""
    context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def loopback_context(certificate: str, key: str) -> ssl.SSLContext:
    """The relay's side of the loopback leg: this run's certificate, and pjsua's must be it."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certificate, key)
    context.load_verify_locations(certificate)
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def failure_reason(host: str, port: int, error: BaseException) -> str:
    """Why the first hop could not be reached, in one line."""
    if isinstance(error, ssl.SSLCertVerificationError):
        return (
            f"certificate of {host}:{port} not trusted: "
            f"{error.verify_message or error} ({TRUST_HINT})"
        )
    if isinstance(error, TimeoutError):
        return f"no TLS connection to {host}:{port} within {CONNECT_TIMEOUT_SECONDS:g} s"
    if isinstance(error, ssl.SSLError):
        return f"TLS with {host}:{port} failed: {error.reason or error}"
    if isinstance(error, OSError) and error.errno:
        return f"connection to {host}:{port} failed: {os.strerror(error.errno)}"
    return f"connection to {host}:{port} failed: {error}"


class Relay:
    """Joins each connection pjsua makes to a verified TLS connection of its own to the first
    hop; either one ending ends both (pjsua reconnects for its next request)."""

    def __init__(self, host: str, port: int, upstream: ssl.SSLContext) -> None:
        self.host, self.port, self.upstream = host, port, upstream
        self.own_uri = ""

    async def listen(self, loopback: ssl.SSLContext) -> int:
        server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=loopback)
        port: int = server.sockets[0].getsockname()[1]
        self.own_uri = relay_uri(port)
        return port

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            far_reader, far_writer = await asyncio.wait_for(
                asyncio.open_connection(
                    self.host, self.port, ssl=self.upstream, server_hostname=self.host
                ),
                CONNECT_TIMEOUT_SECONDS,
            )
        except (OSError, TimeoutError) as error:
            _answer(f"{ERROR} {failure_reason(self.host, self.port, error)}")
            writer.close()
            return
        _answer(CONNECTED)
        leg = Leg(
            self.own_uri,
            host_port(writer.get_extra_info("peername")),
            host_port(far_writer.get_extra_info("sockname")),
        )
        directions = [
            asyncio.create_task(_carry(reader, far_writer, leg, to_far_end)),
            asyncio.create_task(_carry(far_reader, writer, leg, to_pjsua)),
        ]
        await asyncio.wait(directions, return_when=asyncio.FIRST_COMPLETED)
        for direction in directions:
            direction.cancel()
        await asyncio.gather(*directions, return_exceptions=True)
        for end in (writer, far_writer):
            end.close()
            with contextlib.suppress(OSError, TimeoutError):
                await asyncio.wait_for(end.wait_closed(), 1.0)


async def _carry(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    leg: Leg,
    edit: Callable[[bytes, Leg], bytes],
) -> None:
    """Every whole message from ``reader`` to ``writer``, passed through ``edit``."""
    pending = b""
    while data := await reader.read(_READ):
        pending += data
        while (unit := next_message(pending)) is not None:
            message, pending = unit
            writer.write(edit(message, leg))
        if writer.transport.get_write_buffer_size():
            await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT_SECONDS)


def _answer(line: str) -> None:
    sys.stdout.write(line.replace("\n", " ") + "\n")
    sys.stdout.flush()


async def _main() -> int:
    loop = asyncio.get_running_loop()
    commands = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(commands), sys.stdin)
    config = json.loads(await commands.readline())
    relay = Relay(str(config["host"]), int(config["port"]), upstream_context(config["verify"]))
    loopback = loopback_context(str(config["certificate"]), str(config["key"]))
    _answer(f"{LISTENING} {await relay.listen(loopback)}")
    while await commands.readline():
        pass
    return 0


if __name__ == "__main__":
    # The relay lives exactly as long as the bridge holds its stdin: a Ctrl-C or SIGTERM to the
    # whole process group must not cut the BYE the bridge is still sending.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sys.exit(asyncio.run(_main()))
