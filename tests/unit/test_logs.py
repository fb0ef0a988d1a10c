"""The bridge's log: one formatter masks the run's secrets in every line it writes, whatever
writes it (any thread, a message's arguments, a traceback, a thread's uncaught exception, a
warning), and the configuration lasts only as long as the run."""

from __future__ import annotations

import io
import logging
import threading
import warnings

from siprtmp_bridge.logs import logging_to_stderr
from siprtmp_contract.redact import Scrubber

SECRET = "SEKRIT7731"
log = logging.getLogger("siprtmp_bridge.test")


def test_every_line_is_scrubbed_across_threads_arguments_and_tracebacks() -> None:
    out = io.StringIO()
    with logging_to_stderr(Scrubber.of([SECRET]), stream=out):
        log.warning("key %s%s end", "SEKR", "IT7731")  # the secret whole only once formatted

        def fifty() -> None:
            for _ in range(50):
                log.info("x %s y", SECRET)

        threads = [threading.Thread(target=fifty) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        try:
            raise OSError(f"cannot open 'rtmp://h/live/{SECRET}'")
        except OSError:
            log.exception("RTMP write failed")
    text = out.getvalue()
    assert SECRET not in text
    lines = text.splitlines()
    assert lines[0].endswith(" WARNING sip-rtmp-bridge: key *** end")
    assert text.count("INFO sip-rtmp-bridge: x *** y\n") == 200
    assert "ERROR sip-rtmp-bridge: RTMP write failed\nTraceback" in text
    assert "OSError: cannot open 'rtmp://h/live/***'" in text


def test_uncaught_thread_exceptions_and_warnings_go_through_the_same_formatter() -> None:
    out = io.StringIO()
    with logging_to_stderr(Scrubber.of([SECRET]), stream=out):

        def broken() -> None:
            raise ValueError(f"bad key {SECRET}")

        thread = threading.Thread(target=broken, name="video-relay")
        thread.start()
        thread.join()
        warnings.warn(f"deprecated {SECRET}", UserWarning, stacklevel=1)
    text = out.getvalue()
    assert SECRET not in text
    assert "ERROR sip-rtmp-bridge: video-relay thread ended by an uncaught ValueError" in text
    assert "ValueError: bad key ***" in text
    assert "WARNING sip-rtmp-bridge: " in text and "UserWarning: deprecated ***" in text


def test_the_level_holds_and_the_previous_configuration_comes_back() -> None:
    out = io.StringIO()
    root = logging.getLogger()
    before = (root.level, list(root.handlers), threading.excepthook)
    with logging_to_stderr(Scrubber(), "WARNING", stream=out):
        log.info("not shown")
        log.warning("shown")
    log.warning("after the run")
    assert out.getvalue().count("sip-rtmp-bridge: ") == 1
    assert "shown" in out.getvalue() and "not shown" not in out.getvalue()
    assert (root.level, list(root.handlers), threading.excepthook) == before
