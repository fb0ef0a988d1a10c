"""Wires one run: status reporter, HTTP status server, runner; prints the one closing line.

Everything the run emits passes the spec's one Scrubber: the status document (its stdout lines,
/status, the termination message) in the reporter, and every line on stderr (the bridge's own,
PyAV's error strings it quotes, tracebacks) through a ScrubbedStream put in place of sys.stderr
for the whole run.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import TextIO

from siprtmp_bridge.counters import MediaCounters
from siprtmp_bridge.dtmf import DtmfQueue
from siprtmp_bridge.http_api import StatusServer
from siprtmp_bridge.reporter import StatusReporter
from siprtmp_bridge.runner import BridgeRunner, RunOptions
from siprtmp_bridge.status import initial_status
from siprtmp_bridge.supervision import Supervisor
from siprtmp_contract.outcome import ExitCode
from siprtmp_contract.pod import CONTROL_TOKEN_ENV
from siprtmp_contract.redact import ScrubbedStream
from siprtmp_contract.spec import BridgeSpec


def serve_one_call(
    spec: BridgeSpec,
    stop: threading.Event,
    status_address: tuple[str, int] | None,
    termination_log: Path | None,
    sip_log_level: int = 1,
    status_lines: TextIO = sys.stdout,
) -> int:
    stderr = sys.stderr
    sys.stderr = ScrubbedStream(stderr, spec.scrubber)
    try:
        return _serve(spec, stop, status_address, termination_log, sip_log_level, status_lines)
    finally:
        sys.stderr.flush()
        sys.stderr = stderr


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
    # Out of the environment once read: child processes (the RTMPS relay) need not have it.
    token = os.environ.pop(CONTROL_TOKEN_ENV, None) or None
    server = None
    if status_address is not None and status_address[1] > 0:
        try:
            server = StatusServer(*status_address, reporter, counters, dtmf, token, supervisor)
        except OSError as error:
            print(
                f"sip-rtmp-bridge: cannot serve status on {status_address}: {error}",
                file=sys.stderr,
            )
            return int(ExitCode.INTERNAL)
        server.start()
    try:
        outcome = BridgeRunner(
            spec, reporter, counters, stop, RunOptions(sip_log_level), dtmf, supervisor
        ).run()
    finally:
        reporter.write_termination_message(termination_log)
        if server is not None:
            server.stop()
    print(f"sip-rtmp-bridge: {outcome.reason}: {outcome.message}", file=sys.stderr)
    return int(outcome.exit_code)
