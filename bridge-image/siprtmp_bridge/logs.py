"""The bridge's log: stderr, through ``logging``, every line scrubbed of the run's secrets.

stdout is reserved for the status JSON lines; everything else the bridge says goes to stderr
as records of module-level loggers (``logging.getLogger(__name__)``). One handler, installed for
a run by ``logging_to_stderr``, formats them all with one ``ScrubbingFormatter``: the message,
its arguments (PyAV's errors quote the publish URL) and any traceback pass the spec's Scrubber
as one whole line, so no call site needs to take care. Uncaught exceptions in threads and
Python's warnings are routed through it too. pjsua writes its own log to the same stderr from C
(``sip.endpoint``), past Python: it carries no RTMP secret, and SIP credentials only as digests.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

from siprtmp_contract.redact import Scrubber, ScrubbingFormatter

#: ``--log-level``'s choices; INFO shows the run's closing line, WARNING and up only problems.
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
DEFAULT_LEVEL = "INFO"
# The time as pjsua's own lines show it, so that the two logs read as one.
FORMAT = "%(asctime)s.%(msecs)03d %(levelname)s sip-rtmp-bridge: %(message)s"
DATE_FORMAT = "%H:%M:%S"

log = logging.getLogger(__name__)


@contextmanager
def logging_to_stderr(
    scrubber: Scrubber, level: str = DEFAULT_LEVEL, stream: TextIO | None = None
) -> Iterator[None]:
    """Log to ``stream`` (stderr) through ``scrubber`` from ``level`` on, for as long as the
    context lasts; what was configured before comes back afterwards."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(ScrubbingFormatter(scrubber.text, FORMAT, DATE_FORMAT))
    root = logging.getLogger()
    previous_level, previous_hook = root.level, threading.excepthook
    root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)
    threading.excepthook = _log_uncaught
    try:
        yield
    finally:
        threading.excepthook = previous_hook
        logging.captureWarnings(False)
        root.removeHandler(handler)
        root.setLevel(previous_level)
        handler.flush()


def _log_uncaught(args: threading.ExceptHookArgs) -> None:
    """A thread's uncaught exception, as a log record rather than raw on stderr."""
    if args.exc_type is SystemExit:  # as the default hook: a thread may end that way
        return
    name = args.thread.name if args.thread is not None else "a"
    log.error(
        "%s thread ended by an uncaught %s",
        name,
        args.exc_type.__name__,
        exc_info=args.exc_value,
    )
