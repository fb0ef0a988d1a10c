"""The bridge's end of the RTMPS relay (media/rtmps_relay.py): starts it, asks it for a verified
connection before each FFmpeg connect, and stops it with the publisher.

Every wait here is a ``select`` on the relay's pipe, which releases the GIL: the pjsua poll loop
and /status keep running while a TLS connection is being made.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from urllib.parse import urlsplit, urlunsplit

from siprtmp_bridge.media.rtmps_relay import CONNECT, LISTENING, READY
from siprtmp_bridge.spec import rtmp_port

#: Python's start-up and the relay's imports; not a network wait.
START_TIMEOUT_SECONDS = 10.0
#: Beyond the connect timeout the relay is given, for its answer to come back.
ANSWER_MARGIN_SECONDS = 1.0


class RtmpsTunnel:
    def __init__(self, url: str) -> None:
        self._parts = urlsplit(url)
        self._host = self._parts.hostname or ""
        self._port = rtmp_port(self._parts)
        self._relay: subprocess.Popen[bytes] | None = None
        self._local_port = 0
        self._pending = b""

    def open(self, timeout: float) -> str:
        if self._relay is None or self._relay.poll() is not None:
            self._start()
        answer = self._ask(f"{CONNECT} {timeout:.3f}", timeout + ANSWER_MARGIN_SECONDS)
        if answer != READY:
            raise OSError(answer.partition(" ")[2] or answer)
        userinfo = self._parts.netloc.rpartition("@")[0]
        netloc = f"{userinfo}@" * bool(userinfo) + f"127.0.0.1:{self._local_port}"
        return urlunsplit(("rtmp", netloc, self._parts.path, self._parts.query, ""))

    def close(self) -> None:
        """End of stdin ends the relay; it is killed if it does not go at once."""
        relay, self._relay = self._relay, None
        if relay is None:
            return
        if relay.stdin is not None:
            relay.stdin.close()
        try:
            relay.wait(2)
        except subprocess.TimeoutExpired:
            relay.kill()
            relay.wait()
        if relay.stdout is not None:
            relay.stdout.close()

    def _start(self) -> None:
        self.close()
        self._pending = b""
        self._relay = subprocess.Popen(
            [sys.executable, "-m", "siprtmp_bridge.media.rtmps_relay"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        answer = self._ask(
            json.dumps({"host": self._host, "port": self._port}), START_TIMEOUT_SECONDS
        )
        word, _, port = answer.partition(" ")
        if word != LISTENING or not port.isdigit():
            self.close()
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
        except OSError as error:
            self.close()
            raise OSError(f"RTMPS relay failed: {error}") from error
        if answer is None:
            self.close()
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
