"""Two network namespaces made for one test, joined by an impaired wire (support/netem_wire.py):
the bridge and nginx-rtmp in the near one, the far end in the far one.

Only the namespaces this creates carry the traffic (10.250.0.0/30, no route to anything else);
they, their devices and the wire are gone when the context ends.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support.netem_wire import DEVICE, Counts, Impairment

NEAR_ADDRESS, FAR_ADDRESS = "10.250.0.1", "10.250.0.2"
_made = itertools.count()


def ip(*arguments: str) -> None:
    subprocess.run(["ip", *arguments], check=True, capture_output=True, text=True)


class ChaosNetwork:
    def __init__(self, impairment: Impairment, log: Path) -> None:
        serial = f"{os.getpid()}-{next(_made)}"
        self.near, self.far = f"siprtmp-near-{serial}", f"siprtmp-far-{serial}"
        self.impairment = impairment
        self.log = log
        self.wire: subprocess.Popen[str] | None = None

    def inside(self, namespace: str) -> tuple[str, ...]:
        """The command prefix that runs a program in ``namespace`` (it ``exec``s: same pid)."""
        return ("ip", "netns", "exec", namespace)

    def __enter__(self) -> ChaosNetwork:
        for namespace in (self.near, self.far):
            ip("netns", "add", namespace)
            ip("-n", namespace, "link", "set", "lo", "up")
        with self.log.open("w") as errors:
            self.wire = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.support.netem_wire",
                    self.near,
                    self.far,
                    self.impairment.to_json(),
                ],
                stdout=subprocess.PIPE,
                stderr=errors,
                text=True,
            )
        assert self.wire.stdout is not None
        ready = self.wire.stdout.readline().strip()
        assert ready == "ready", self.log.read_text()
        for namespace, local, peer in (
            (self.near, NEAR_ADDRESS, FAR_ADDRESS),
            (self.far, FAR_ADDRESS, NEAR_ADDRESS),
        ):
            ip("-n", namespace, "addr", "add", local, "peer", peer, "dev", DEVICE)
            ip("-n", namespace, "link", "set", DEVICE, "up")
        return self

    def stop_wire(self) -> Counts:
        """Stop the wire; what it did to the impaired packets."""
        assert self.wire is not None and self.wire.stdout is not None
        self.wire.terminate()
        counts = Counts(**json.loads(self.wire.stdout.readline()))
        self.wire.wait()
        return counts

    def __exit__(self, *_exc: object) -> None:
        if self.wire is not None and self.wire.poll() is None:
            self.wire.kill()
            self.wire.wait()
        for namespace in (self.near, self.far):
            ip("netns", "del", namespace)
