"""Wires one run: the log, status reporter, HTTP status server, runner; logs the closing line.

Everything the run emits passes the spec's one Scrubber: the status document (its stdout lines,
/status, the termination message) in the reporter, and every log line on stderr (the bridge's
own, PyAV's error strings it quotes, tracebacks) in the log's formatter (``logs``).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from pathlib import Path
from typing import TextIO

from siprtmp_bridge.counters import MediaCounters
from siprtmp_bridge.destinations import DestinationControl
from siprtmp_bridge.dtmf import DtmfQueue
from siprtmp_bridge.http_api import StatusServer
from siprtmp_bridge.logs import DEFAULT_LEVEL, logging_to_stderr
from siprtmp_bridge.reporter import StatusReporter
from siprtmp_bridge.runner import BridgeRunner, RunOptions
from siprtmp_bridge.status import initial_status
from siprtmp_bridge.supervision import Supervisor
from siprtmp_contract.outcome import ExitCode
from siprtmp_contract.pod import CONTROL_TOKEN_ENV
from siprtmp_contract.spec import BridgeSpec, mounted_keys

log = logging.getLogger(__name__)


def serve_one_call(
    spec: BridgeSpec,
    stop: threading.Event,
    status_address: tuple[str, int] | None,
    termination_log: Path | None,
    sip_log_level: int = 1,
    status_lines: TextIO = sys.stdout,
    log_level: str = DEFAULT_LEVEL,
) -> int:
    with logging_to_stderr(spec.scrubber, log_level):
        return _serve(spec, stop, status_address, termination_log, sip_log_level, status_lines)


def _serve(
    spec: BridgeSpec,
    stop: threading.Event,
    status_address: tuple[str, int] | None,
    termination_log: Path | None,
    sip_log_level: int,
    status_lines: TextIO,
) -> int:
    reporter = StatusReporter(
        initial_status(spec.call_id, spec.redacted_publish_url),
        status_lines,
        spec.scrubber,
    )
    counters = MediaCounters()
    dtmf = DtmfQueue()
    supervisor = Supervisor()
    destinations = DestinationControl(reporter, spec, mounted_keys(spec.stream_keys_dir))
    # Out of the environment once read: child processes (the RTMPS relay) need not have it.
    token = os.environ.pop(CONTROL_TOKEN_ENV, None) or None
    server = None
    if status_address is not None and status_address[1] > 0:
        try:
            server = StatusServer(
                *status_address, reporter, counters, dtmf, token, supervisor, destinations
            )
        except OSError as error:
            log.error("cannot serve status on %s: %s", status_address, error)
            return int(ExitCode.INTERNAL)
        server.start()
    try:
        outcome = BridgeRunner(
            spec,
            reporter,
            counters,
            stop,
            RunOptions(sip_log_level),
            dtmf,
            supervisor,
            destinations,
        ).run()
    finally:
        reporter.write_termination_message(termination_log)
        if server is not None:
            server.stop()
    log.info("%s: %s", outcome.reason, outcome.message)
    return int(outcome.exit_code)
