"""RTMPS with the server's certificate verified: a child process that FFmpeg publishes plain RTMP
to on loopback, and that carries it to the server over TLS made by Python's ``ssl``.

Why: PyAV opens output I/O with ``avio_open`` and no options, so FFmpeg's own TLS can be given
neither ``tls_verify`` nor a CA file and accepts any certificate (a man in the middle would get
the stream key). Python's default context verifies the chain and the host name against the
system's trust store (``SSL_CERT_FILE``/``SSL_CERT_DIR`` override it) and sends SNI.

Why a process: PyAV holds the GIL while FFmpeg connects and handshakes, so a relay on threads of
the bridge's own process could never answer it: the two would wait on each other. Here the
bridge waits for this process's answer with the GIL released, and only then lets FFmpeg connect.

Why one process for all of a bridge's RTMPS destinations: a process costs Python's start-up,
and each wake-up of its event loop costs more than the bytes it carries; a call's destinations
are handed each burst at the same moment, so one wake-up here serves them all
(docs/measurements.md, "Several destinations").

Protocol (rtmp/rtmps_tunnel.py is the other end): stdin is a Unix socket. Each message on it
carries one descriptor, a destination's own socket (the bridge keeps the other end), over which:
one JSON line names the server (``{"host": ..., "port": ..., "tcUrlPrefix": ...}``; no stream
key ever reaches this process), answered ``listening PORT``. Each ``connect SECONDS
ADDRESS[,ADDRESS...]`` line then opens and verifies one TLS connection to the first of the
server's addresses that takes it (the bridge resolved the name, rtmp/resolve.py; without
addresses the host is dialled as named), answered ``ready`` or ``error REASON``; the next
connection FFmpeg makes to PORT is joined to it. The certificate is checked against the host
name, which is also sent as SNI, whatever address is dialled. The ``connect`` command's tcUrl is
given back the server's own address (rtmp/connect.py), as FFmpeg would have sent it connecting
directly. End of a destination's socket ends that destination: its connections get
CLOSE_TIMEOUT_SECONDS to hand the server what is buffered, then this end closes too. End of
stdin ends the process once its destinations have ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import ssl
import sys

from siprtmp_bridge.rtmp.connect import CONNECT_TIMEOUT_SECONDS, HANDSHAKE_BYTES, PublisherStream
from siprtmp_bridge.rtmp.rtmps_protocol import (
    ADDRESS_SEPARATOR,
    CLOSE_TIMEOUT_SECONDS,
    CONNECT,
    DESCRIPTORS_PER_MESSAGE,
    DESTINATION_END_SECONDS,
    ERROR,
    LISTENING,
    READY,
)
from siprtmp_bridge.rtmp.stall import set_stall_limit

#: The server's part of the RTMP handshake (S0, S1, S2), and then the whole set-up (connect,
#: publish) up to the publisher's first media. FFmpeg waits for the server throughout, in a call
#: that holds the bridge's GIL, so a server that accepts and then stalls costs this long.
HANDSHAKE_TIMEOUT_SECONDS = 5.0
SETUP_TIMEOUT_SECONDS = 8.0
#: A server that takes nothing for this long counts as gone (FFmpeg then sees the connection fail).
WRITE_TIMEOUT_SECONDS = 30.0
#: How long a verified connection waits for FFmpeg to come and use it.
CLAIM_TIMEOUT_SECONDS = 10.0
#: What to do about it, in the one line the status and the log carry.
TRUST_HINT = (
    "trust its CA with SSL_CERT_FILE or the chart's bridge.rtmpsCaBundle, "
    "or skip the check with rtmpTlsVerify: false"
)
_READ = 65536
USAGE = "rtmps_relay: stdin must be a Unix socket; rtmp/rtmps_tunnel.py starts this process"


class Relay:
    """Joins each connection FFmpeg makes to the verified TLS connection prepared for it."""

    def __init__(self, host: str, port: int, tc_url_prefix: str, context: ssl.SSLContext) -> None:
        self.host, self.port, self.context = host, port, context
        #: Where to dial the server, in order; the last ``connect`` names them.
        self.addresses = [host]
        self.tc_url_prefix = tc_url_prefix
        self.local_prefix = ""
        self._waiting: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._expiry: asyncio.TimerHandle | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        #: Set when the destination ends: connections still open end too.
        self._ending = asyncio.Event()

    async def listen(self) -> int:
        self._server = server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port: int = server.sockets[0].getsockname()[1]
        self.local_prefix = f"rtmp://127.0.0.1:{port}"
        return port

    async def prepare(self, timeout: float, addresses: list[str]) -> str:
        """``ready`` once a verified connection to one of ``addresses`` (the host itself if
        none) waits for FFmpeg, else ``error REASON``."""
        self._drop_waiting()
        self.addresses = addresses or [self.host]
        try:
            self._waiting = await self._dial(timeout)
        except ssl.SSLCertVerificationError as error:
            return (
                f"{ERROR} certificate of {self.host}:{self.port} not trusted: "
                f"{error.verify_message or error} ({TRUST_HINT})"
            )
        except TimeoutError:
            return f"{ERROR} no TLS connection to {self.host}:{self.port} within {timeout:g} s"
        except ssl.SSLError as error:  # a TLS handshake that went wrong otherwise
            return f"{ERROR} TLS with {self.host}:{self.port} failed: {error.reason or error}"
        except OSError as error:  # asyncio's own wording hides the errno's ("Connect call failed")
            reason = os.strerror(error.errno) if error.errno else str(error)
            return f"{ERROR} connection to {self.host}:{self.port} failed: {reason}"
        self._expiry = asyncio.get_running_loop().call_later(
            CLAIM_TIMEOUT_SECONDS, self._drop_waiting
        )
        return READY

    async def _dial(self, timeout: float) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.wait_for(self._dial_any(), timeout)
        # A stalled server ends the connection in STALL_SECONDS, not WRITE_TIMEOUT_SECONDS.
        set_stall_limit(writer.get_extra_info("socket"))
        return reader, writer

    async def _dial_any(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """The first of the addresses that takes a TCP connection; its TLS handshake's outcome
        is the server's answer (a certificate is not retried on another address)."""
        failure: OSError = OSError(f"no address for {self.host}")
        for address in self.addresses:
            try:
                return await asyncio.open_connection(
                    address, self.port, ssl=self.context, server_hostname=self.host
                )
            except ssl.SSLError:
                raise
            except OSError as error:
                failure = error
        raise failure

    def _drop_waiting(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        if self._waiting is not None:
            self._waiting[1].close()
            self._waiting = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream, self._waiting = self._waiting, None
        self._drop_waiting()
        if upstream is None:
            # FFmpeg reconnects by itself inside one open (RTMP logins with user:password in
            # the URL do): that connection is dialled and verified now.
            try:
                upstream = await self._dial(CONNECT_TIMEOUT_SECONDS)
            except (OSError, TimeoutError):
                writer.close()
                return
        server_reader, server_writer = upstream
        publisher = PublisherStream(self.local_prefix, self.tc_url_prefix)
        directions = [
            asyncio.create_task(_publisher_to_server(publisher, reader, server_writer)),
            asyncio.create_task(_server_to_publisher(server_reader, writer)),
            asyncio.create_task(_set_up_in_time(publisher)),
            asyncio.create_task(self._ending.wait()),
        ]
        this = asyncio.current_task()
        assert this is not None
        self._connections.add(this)
        # Either side ending (FFmpeg closing the stream, the server dropping it, a stall or a
        # timeout) ends both: FFmpeg then sees its connection fail and reconnects. So does the
        # destination's end.
        await asyncio.wait(directions, return_when=asyncio.FIRST_COMPLETED)
        for direction in directions:
            direction.cancel()
        await asyncio.gather(*directions, return_exceptions=True)
        writer.close()
        server_writer.close()  # after what is buffered for the server (FLV trailer) is sent
        with contextlib.suppress(OSError, TimeoutError):
            await asyncio.wait_for(server_writer.wait_closed(), CLOSE_TIMEOUT_SECONDS)
        self._connections.discard(this)

    async def finish(self) -> None:
        """Let connections still open end of themselves, for a moment, then end them; no
        longer listen. Takes at most DESTINATION_END_SECONDS."""
        if self._connections:
            await asyncio.wait(self._connections, timeout=CLOSE_TIMEOUT_SECONDS)
        self._end()
        if self._connections:  # each closes within CLOSE_TIMEOUT_SECONDS once told
            await asyncio.wait(self._connections, timeout=CLOSE_TIMEOUT_SECONDS)

    def _end(self) -> None:
        """Nothing waits for FFmpeg any more, nothing listens, connections still open end."""
        self._ending.set()
        self._drop_waiting()
        if self._server is not None:
            self._server.close()


async def _publisher_to_server(
    publisher: PublisherStream, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """The handshake as it comes, then the publisher's stream with its connect rewritten."""
    handshake_left = HANDSHAKE_BYTES  # C0 and C1 now, C2 after the server's answer
    while handshake_left:
        data = await _read_some(reader, handshake_left)
        await _send(writer, data)
        handshake_left -= len(data)
    while True:
        if out := publisher.feed(await _read_some(reader, _READ)):
            await _send(writer, out)


async def _set_up_in_time(publisher: PublisherStream) -> None:
    """Ends the connection if the publisher is not publishing by SETUP_TIMEOUT_SECONDS: FFmpeg
    waits for the server's answers holding the bridge's GIL, so a server that goes quiet
    must cost a failed attempt, not a frozen bridge."""
    await asyncio.sleep(SETUP_TIMEOUT_SECONDS)
    if publisher.publishing or not publisher.parsing:
        await asyncio.Event().wait()  # set up (or past telling): nothing more to watch


async def _server_to_publisher(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    handshake = await asyncio.wait_for(
        reader.readexactly(HANDSHAKE_BYTES), HANDSHAKE_TIMEOUT_SECONDS
    )
    await _send(writer, handshake)
    await _copy(reader, writer)


async def _read_some(reader: asyncio.StreamReader, limit: int) -> bytes:
    if data := await reader.read(limit):
        return data
    raise ConnectionResetError("the publisher closed its connection")


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(_READ):
        await _send(writer, data)


async def _send(writer: asyncio.StreamWriter, data: bytes) -> None:
    writer.write(data)
    # Most writes go straight to the kernel; waiting (a timer and a task each time) only when
    # some are left over keeps the relay's cost per audio packet low.
    if writer.transport.get_write_buffer_size():
        await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT_SECONDS)


def connect_arguments(arguments: str) -> tuple[float, list[str]]:
    """A ``connect`` command's timeout (at most CONNECT_TIMEOUT_SECONDS) and the addresses to
    dial, in order (none: the host as named)."""
    seconds, _, addresses = arguments.strip().partition(" ")
    timeout = min(float(seconds or CONNECT_TIMEOUT_SECONDS), CONNECT_TIMEOUT_SECONDS)
    return timeout, [address for address in addresses.split(ADDRESS_SEPARATOR) if address]


async def _destination(channel: socket.socket, context: ssl.SSLContext) -> None:
    """One destination, for as long as the bridge holds the other end of ``channel``."""
    reader, writer = await asyncio.open_connection(sock=channel)
    relay: Relay | None = None
    try:
        config = json.loads(await reader.readline())
        relay = Relay(str(config["host"]), int(config["port"]), str(config["tcUrlPrefix"]), context)
        await _answer(writer, f"{LISTENING} {await relay.listen()}")
        while line := await reader.readline():
            command, _, arguments = line.decode().strip().partition(" ")
            if command == CONNECT:
                await _answer(writer, await relay.prepare(*connect_arguments(arguments)))
            else:
                await _answer(writer, f"{ERROR} unknown command {command!r}")
    except (OSError, ValueError, KeyError):
        pass  # the bridge's end is gone or sent nonsense: this destination ends
    finally:
        if relay is not None:
            await relay.finish()
        writer.close()


async def _answer(writer: asyncio.StreamWriter, line: str) -> None:
    writer.write(line.replace("\n", " ").encode() + b"\n")
    await writer.drain()


async def _main() -> int:
    try:
        control = socket.socket(fileno=sys.stdin.fileno())
    except OSError:
        print(USAGE, file=sys.stderr)
        return 2
    context = ssl.create_default_context()
    control.setblocking(False)
    loop = asyncio.get_running_loop()
    ended = asyncio.Event()
    destinations: set[asyncio.Task[None]] = set()

    def receive() -> None:
        try:
            message, descriptors, _, _ = socket.recv_fds(control, 1, DESCRIPTORS_PER_MESSAGE)
        except BlockingIOError:
            return
        except OSError:
            message, descriptors = b"", []
        for descriptor in descriptors:
            task = loop.create_task(_destination(socket.socket(fileno=descriptor), context))
            destinations.add(task)
            task.add_done_callback(destinations.discard)
        if not message and not descriptors:
            loop.remove_reader(control)
            ended.set()

    loop.add_reader(control, receive)
    await ended.wait()
    # The bridge is done with every destination or gone (its ends of them closed with it).
    if destinations:
        await asyncio.wait(destinations, timeout=DESTINATION_END_SECONDS)
    return 0


if __name__ == "__main__":
    # The relay lives exactly as long as the bridge holds its stdin: a Ctrl-C or SIGTERM to the
    # whole process group must not cut the stream before the bridge has flushed and closed it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sys.exit(asyncio.run(_main()))
