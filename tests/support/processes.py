"""Peers run as process groups of their own, so a stop ends every process they forked; the
bridge's RTMPS relay found among the processes."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path

from siprtmp_bridge.rtmp.rtmps_tunnel import RELAY_MODULE


def end_process_group(process: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """SIGTERM to ``process``'s group (started with ``start_new_session=True``), ``grace``
    seconds to exit, then SIGKILL to whatever of the group is left (a daemon's forked workers
    can outlive its main process), and reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(grace)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def relays_of(parent: int) -> set[int]:
    """The RTMPS relay processes ``parent`` has running."""
    found = set()
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
            stat = (entry / "stat").read_text()
        except (OSError, ValueError):
            continue
        if RELAY_MODULE.encode() in command and int(stat.rpartition(")")[2].split()[1]) == parent:
            found.add(int(entry.name))
    return found
