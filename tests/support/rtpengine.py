"""rtpengine (Debian's ``rtpengine-daemon``) as the media half of an SBC: it anchors a call's
RTP in its own ports, which Kamailio (tests/support/kamailio.py, ``KamailioSbc``) writes into
every SDP it hands to rtpengine's ng control.

Userspace forwarding only: no kernel table (``--table=-1``), so no kernel module and no
iptables rules; no config file (``--config-file=none``: Debian's /etc/rtpengine is not read);
its media ports, its ng control and everything it advertises are on 127.0.0.1.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from tests.support.processes import end_process_group


class Rtpengine:
    """One rtpengine relaying media in ``port_min``..``port_max``, controlled on ``ng_port``."""

    def __init__(self, root: Path, ng_port: int, port_min: int, port_max: int) -> None:
        self.root = root
        self.ng_port = ng_port
        self.port_min = port_min
        self.port_max = port_max
        self.log = root / "rtpengine.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def ports(self) -> range:
        """Every port rtpengine may give a call's media."""
        return range(self.port_min, self.port_max + 1)

    def start(self) -> Rtpengine:
        assert shutil.which("rtpengine"), (
            "rtpengine is not installed (scripts/test.sh installs rtpengine-daemon)"
        )
        self.root.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    "rtpengine",
                    "--config-file=none",
                    "--foreground",
                    "--log-stderr",
                    "--no-log-timestamps",
                    "--log-level=6",
                    "--table=-1",
                    "--interface=127.0.0.1",
                    f"--listen-ng=127.0.0.1:{self.ng_port}",
                    f"--port-min={self.port_min}",
                    f"--port-max={self.port_max}",
                    f"--pidfile={self.root / 'rtpengine.pid'}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._wait_until_answering()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_until_answering(self) -> None:
        """Ready once its ng control answers a ping (bencoded, after a cookie) with a pong."""
        deadline = time.monotonic() + 10
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.settimeout(0.2)
            while time.monotonic() < deadline:
                assert self.process is not None and self.process.poll() is None, self.text()
                probe.sendto(b"ready d7:command4:pinge", ("127.0.0.1", self.ng_port))
                try:
                    if probe.recv(4096) == b"ready d6:result4:ponge":
                        return
                except (TimeoutError, ConnectionRefusedError):
                    continue
        raise RuntimeError(f"rtpengine did not answer: {self.text()[-2000:]}")

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        if self.process is not None:
            end_process_group(self.process)
