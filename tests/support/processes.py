"""Peers run as process groups of their own, so a stop ends every process they forked."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess


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
