"""The bridge's end of the RTMPS relay (rtmp/rtmps_relay.py): starts it, asks it for a verified
connection before each FFmpeg connect, and stops it with the publisher.

Every wait here is a ``select`` on the relay's pipe or a lookup on a thread of its own
(rtmp/resolve.py), both of which release the GIL: the pjsua poll loop and /status keep running
while the server's name is resolved and a TLS connection is made. The relay is given the
addresses to dial; it verifies the certificate against the host name, and sends it as SNI.

``open`` runs on the publisher's thread; ``close`` may come from another one (the publisher is
being finished while an attempt is still under way): it then kills the relay, and the waiting
attempt fails on the closed pipe and cleans up after itself.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import threading
import time
from urllib.parse import urlsplit

from siprtmp_bridge.rtmp.connect import split_url, tc_url_prefix
from siprtmp_bridge.rtmp.resolve import Resolver
from siprtmp_bridge.rtmp.rtmps_protocol import (
    ADDRESS_SEPARATOR,
    CLOSE_TIMEOUT_SECONDS,
    CONNECT,
    LISTENING,
    READY,
)
from siprtmp_contract.urls import rtmp_port

#: Python's start-up and the relay's imports; not a network wait.
START_TIMEOUT_SECONDS = 10.0
#: Beyond the connect timeout the relay is given, for its answer to come back.
ANSWER_MARGIN_SECONDS = 1.0


class RtmpsTunnel:
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
        self._relay: subprocess.Popen[bytes] | None = None
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
            if self._relay is None or self._relay.poll() is not None:
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
            asking, relay = self._asking, self._relay
        if not asking:
            self._stop()
        elif relay is not None:
            relay.kill()  # the attempt under way sees its pipe end, and stops the rest

    def _stop(self) -> None:
        """End of stdin ends the relay once it has flushed; it is killed if it takes longer."""
        relay, self._relay = self._relay, None
        if relay is None:
            return
        if relay.stdin is not None:
            relay.stdin.close()
        try:
            relay.wait(CLOSE_TIMEOUT_SECONDS + 1)
        except subprocess.TimeoutExpired:
            relay.kill()
            relay.wait()
        if relay.stdout is not None:
            relay.stdout.close()

    def _start(self) -> None:
        self._stop()
        self._pending = b""
        # -P: nothing is imported from the working directory into a process that carries the
        # stream; the relay comes from the installed package.
        self._relay = subprocess.Popen(
            [sys.executable, "-P", "-m", "siprtmp_bridge.rtmp.rtmps_relay"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        answer = self._ask(json.dumps(self._server), START_TIMEOUT_SECONDS)
        word, _, port = answer.partition(" ")
        if word != LISTENING or not port.isdigit():
            self._stop()
            raise OSError(f"RTMPS relay did not start: {answer!r}")
        self._local_port = int(port)

    def _ask(self, line: str, timeout: float) -> str:
        """Send one line, return the one line answered; OSError (and the relay stopped) if it
        does not answer within ``timeout``, so a late answer is never taken for the next one."""
        relay = self._relay
        assert relay is not None and relay.stdin is not None and relay.stdout is not None
        try:
            relay.stdin.write(line.encode() + b"\n")
            relay.stdin.flush()
            answer = self._read_line(relay.stdout.fileno(), time.monotonic() + timeout)
        except (OSError, ValueError) as error:  # ValueError: a pipe closed under us
            self._stop()
            raise OSError(f"RTMPS relay failed: {error}") from error
        if answer is None:
            self._stop()
            raise OSError(f"RTMPS relay did not answer within {timeout:g} s")
        return answer

    def _read_line(self, fd: int, deadline: float) -> str | None:
        while b"\n" not in self._pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                return None
            data = os.read(fd, 4096)
            if not data:
                raise OSError("the relay ended")
            self._pending += data
        line, _, self._pending = self._pending.partition(b"\n")
        return line.decode(errors="replace").strip()
