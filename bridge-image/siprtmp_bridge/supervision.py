"""Supervision of the bridge's media worker threads (the pipeline, the RTMP publisher, and
with video the relay, the receivers and the slate).

A thread that dies of an unexpected exception would otherwise leave the call up with no media:
the supervisor records the first failure (the runner ends the call with InternalError) and
logs it with its traceback. Each worker also beats while it makes progress; ``/healthz`` fails
when a running worker has not beaten for ``PROGRESS_TIMEOUT_SECONDS`` (kubelet's liveness probe
then ends a bridge that is stuck beyond what its own bounds catch). Each worker's name is also
given to its thread as the kernel knows it, so ``top -H`` and /proc tell the workers' CPU apart
(the benchmark does).
"""

from __future__ import annotations

import ctypes
import functools
import logging
import threading
import time
from collections.abc import Callable, Mapping

#: The longest a running worker may go without progress and still count as healthy. The
#: longest legitimate gap is one RTMP connect attempt (5 s, plus the RTMPS relay's 1 s margin);
#: the pipeline and the video relay beat at least every 0.5 s, the slate every frame, a video
#: receiver every 0.5 s once FFmpeg has opened its input (within 2 s).
PROGRESS_TIMEOUT_SECONDS = 10.0

log = logging.getLogger(__name__)

#: prctl(2)'s option that names the calling thread; the kernel keeps 15 bytes of the name.
PR_SET_NAME = 15
_KERNEL_NAME_BYTES = 15


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None)


def name_os_thread(name: str) -> None:
    """The calling thread's name in /proc/PID/task/TID/comm (Python's own names stay inside
    Python); a longer name is cut, as the kernel would."""
    _libc().prctl(PR_SET_NAME, name.encode()[:_KERNEL_NAME_BYTES], 0, 0, 0)


def health_problem(
    now: float, beats: Mapping[str, float], failure: str | None, bound: float
) -> str | None:
    """Why the media is unhealthy at ``now``, or None: a failed worker, or a running worker
    whose last beat is older than ``bound`` seconds."""
    if failure is not None:
        return failure
    for name, beat_at in sorted(beats.items()):
        if now - beat_at > bound:
            return f"{name}: no progress for {now - beat_at:.1f} s"
    return None


class Supervisor:
    """Shared by the workers (``supervised``, ``beat``), the runner (``failure``) and the HTTP
    server (``problem``); every method is safe from any thread."""

    def __init__(self, bound: float = PROGRESS_TIMEOUT_SECONDS) -> None:
        self.bound = bound
        self._lock = threading.Lock()
        # Invariant: a worker has an entry exactly while its thread runs.
        self._beats: dict[str, float] = {}
        self._failure: str | None = None

    def supervised(self, name: str, target: Callable[[], None]) -> Callable[[], None]:
        """``target`` as a thread body that is watched while it runs and reports its death."""

        def run() -> None:
            name_os_thread(name)
            self.beat(name)
            try:
                target()
            except Exception as error:  # any escape is the failure recorded
                self._fail(name, error)
            finally:
                with self._lock:
                    self._beats.pop(name, None)

        return run

    def beat(self, name: str) -> None:
        with self._lock:
            self._beats[name] = time.monotonic()

    @property
    def failure(self) -> str | None:
        with self._lock:
            return self._failure

    def problem(self) -> str | None:
        with self._lock:
            beats, failure = dict(self._beats), self._failure
        return health_problem(time.monotonic(), beats, failure, self.bound)

    def _fail(self, name: str, error: Exception) -> None:
        message = f"{name} thread failed: {type(error).__name__}: {error}"
        with self._lock:
            self._failure = self._failure or message
        log.error("%s", message, exc_info=error)
