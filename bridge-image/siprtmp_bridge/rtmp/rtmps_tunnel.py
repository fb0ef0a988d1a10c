"""The bridge's end of the RTMPS relay (rtmp/rtmps_relay.py): one relay process for all of the
bridge's RTMPS destinations while any of them is open, each destination speaking to it over a
socket of its own; a verified connection asked for before each FFmpeg connect.

Every wait here is a ``select`` on the destination's socket or a lookup on a thread of its own
(rtmp/resolve.py), both of which release the GIL: the pjsua poll loop and /status keep running
while the server's name is resolved and a TLS connection is made. The relay is given the
addresses to dial; it verifies the certificate against the host name, and sends it as SNI.

``open`` runs on the publisher's thread; ``close`` may come from another one (the publisher is
being finished while an attempt is still under way): it then shuts the destination's socket,
and the waiting attempt fails on it and cleans up after itself. The relay process is shared, so
one destination's end never touches it: the last one's stops it.
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import subprocess
import sys
import threading
import time
from urllib.parse import urlsplit

from siprtmp_bridge.rtmp.connect import split_url, tc_url_prefix
from siprtmp_bridge.rtmp.resolve import Resolver
from siprtmp_bridge.rtmp.rtmps_protocol import (
    ADDRESS_SEPARATOR,
    CONNECT,
    DESTINATION_END_SECONDS,
    LISTENING,
    READY,
)
from siprtmp_contract.urls import rtmp_port

#: Python's start-up and the relay's imports, for a destination that starts the process; not a
#: network wait.
START_TIMEOUT_SECONDS = 10.0
#: Beyond the connect timeout the relay is given, for its answer to come back.
ANSWER_MARGIN_SECONDS = 1.0
#: The relay, as ``python -m`` runs it.
RELAY_MODULE = "siprtmp_bridge.rtmp.rtmps_relay"


class RelayProcess:
    """The relay process and the socket, its stdin, that hands it each destination's socket.
    Its stdin's end ends it once its destinations have ended; so does the bridge's death."""

    def __init__(self) -> None:
        # SOCK_SEQPACKET: one message, one destination's descriptor.
        self._control, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            # -P: nothing is imported from the working directory into a process that carries
            # the stream; the relay comes from the installed package. Its stdout is not the
            # bridge's (that carries the status lines).
            self.process = subprocess.Popen(
                [sys.executable, "-P", "-m", RELAY_MODULE],
                stdin=theirs.fileno(),
                stdout=subprocess.DEVNULL,
            )
        except OSError:
            self._control.close()
            raise
        finally:
            theirs.close()
        #: How many destinations hold it (SharedRelay counts them).
        self.users = 0

    def alive(self) -> bool:
        return self.process.poll() is None

    def channel(self) -> socket.socket:
        """A new destination's socket, whose other end the relay now holds."""
        mine, theirs = socket.socketpair()
        try:
            socket.send_fds(self._control, [b"d"], [theirs.fileno()])
        except OSError:
            mine.close()
            raise
        finally:
            theirs.close()
        return mine

    def stop(self) -> None:
        """End of stdin; killed if it takes longer than its destinations may."""
        self._control.close()
        try:
            self.process.wait(DESTINATION_END_SECONDS + ANSWER_MARGIN_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class SharedRelay:
    """The one relay process of the bridge, started by the first destination that needs it
    (or again, if it died) and stopped when the last one that holds it lets go."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._current: RelayProcess | None = None

    def acquire(self) -> RelayProcess:
        with self._lock:
            if self._current is None or not self._current.alive():
                self._current = RelayProcess()
            self._current.users += 1
            return self._current

    def release(self, relay: RelayProcess) -> None:
        with self._lock:
            relay.users -= 1
            if relay.users:
                return
            if self._current is relay:
                self._current = None
        relay.stop()


#: The bridge's RTMPS destinations share it.
SHARED_RELAY = SharedRelay()


class RtmpsTunnel:
    """One RTMPS destination's route through the shared relay."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self._server = {
            "host": parts.hostname or "",
            "port": rtmp_port(parts),
            "tcUrlPrefix": tc_url_prefix(url),
        }
        # FFmpeg gets the URL as written after the authority (a '#' or '?' in the stream key
        # included), on the relay's address; user:password stays for FFmpeg's RTMP logins.
        self._userinfo, _, self._after_authority = split_url(url)
        self._resolver = Resolver(parts.hostname or "", rtmp_port(parts))
        self._lock = threading.Lock()
        #: Held while the relay has this destination (both set, or neither).
        self._relay: RelayProcess | None = None
        self._channel: socket.socket | None = None
        self._asking = False
        self._closed = False
        self._local_port = 0
        self._pending = b""

    def open(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        addresses = ADDRESS_SEPARATOR.join(self._resolver.resolve(timeout))
        remaining = max(0.01, deadline - time.monotonic())
        with self._lock:
            if self._closed:
                raise OSError("the publisher is finished")
            self._asking = True
        try:
            if self._relay is None or not self._relay.alive():
                self._start()
            answer = self._ask(
                f"{CONNECT} {remaining:.3f} {addresses}", remaining + ANSWER_MARGIN_SECONDS
            )
        finally:
            with self._lock:
                self._asking = False
                closed = self._closed
        if closed:
            self._stop()
            raise OSError("the publisher is finished")
        if answer != READY:
            raise OSError(answer.partition(" ")[2] or answer)
        return f"rtmp://{self._userinfo}127.0.0.1:{self._local_port}{self._after_authority}"

    def close(self) -> None:
        with self._lock:
            self._closed = True
            asking, channel = self._asking, self._channel
        if not asking:
            self._stop()
        elif channel is not None:
            # The attempt under way sees its socket end, and stops the rest.
            with contextlib.suppress(OSError):
                channel.shutdown(socket.SHUT_RDWR)

    def _stop(self) -> None:
        """End of the destination's socket: the relay lets its connection hand the server what
        is buffered, ends it and closes its end, which is waited for."""
        relay, channel = self._relay, self._channel
        self._relay = self._channel = None
        if channel is not None:
            with contextlib.suppress(OSError):
                channel.shutdown(socket.SHUT_WR)
                self._wait_for_end(channel, DESTINATION_END_SECONDS + ANSWER_MARGIN_SECONDS)
            channel.close()
        if relay is not None:
            SHARED_RELAY.release(relay)

    def _start(self) -> None:
        self._stop()
        self._pending = b""
        try:
            self._relay = SHARED_RELAY.acquire()
            self._channel = self._relay.channel()
        except OSError as error:
            self._stop()
            raise OSError(f"RTMPS relay did not start: {error}") from error
        answer = self._ask(json.dumps(self._server), START_TIMEOUT_SECONDS)
        word, _, port = answer.partition(" ")
        if word != LISTENING or not port.isdigit():
            self._stop()
            raise OSError(f"RTMPS relay did not start: {answer!r}")
        self._local_port = int(port)

    def _ask(self, line: str, timeout: float) -> str:
        """Send one line, return the one line answered; OSError (and the destination ended) if
        it is not answered within ``timeout``, so a late answer is never taken for the next."""
        channel = self._channel
        assert channel is not None
        try:
            channel.sendall(line.encode() + b"\n")
            answer = self._read_line(channel, time.monotonic() + timeout)
        except OSError as error:
            self._stop()
            raise OSError(f"RTMPS relay failed: {error}") from error
        if answer is None:
            self._stop()
            raise OSError(f"RTMPS relay did not answer within {timeout:g} s")
        return answer

    def _read_line(self, channel: socket.socket, deadline: float) -> str | None:
        while b"\n" not in self._pending:
            if not _readable(channel, deadline):
                return None
            data = channel.recv(4096)
            if not data:
                raise OSError("the relay ended")
            self._pending += data
        line, _, self._pending = self._pending.partition(b"\n")
        return line.decode(errors="replace").strip()

    @staticmethod
    def _wait_for_end(channel: socket.socket, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while _readable(channel, deadline) and channel.recv(4096):
            pass


def _readable(channel: socket.socket, deadline: float) -> bool:
    """Whether ``channel`` has something to read (or its end) before ``deadline``."""
    remaining = deadline - time.monotonic()
    return remaining > 0 and bool(select.select([channel], [], [], remaining)[0])
