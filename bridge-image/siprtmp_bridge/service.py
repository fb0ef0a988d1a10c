"""Wires one run: status reporter, HTTP status server, runner; prints the one closing line."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import TextIO

from siprtmp_bridge.counters import MediaCounters
from siprtmp_bridge.dtmf import CONTROL_TOKEN_ENV, DtmfQueue
from siprtmp_bridge.http_api import StatusServer
from siprtmp_bridge.outcome import ExitCode
from siprtmp_bridge.redact import scrub
from siprtmp_bridge.reporter import StatusReporter
from siprtmp_bridge.runner import BridgeRunner, RunOptions
from siprtmp_bridge.spec import BridgeSpec
from siprtmp_bridge.status import initial_status
from siprtmp_bridge.supervision import Supervisor


def serve_one_call(
    spec: BridgeSpec,
    stop: threading.Event,
    status_address: tuple[str, int] | None,
    termination_log: Path | None,
    sip_log_level: int = 1,
    status_lines: TextIO = sys.stdout,
) -> int:
    reporter = StatusReporter(initial_status(spec.call_id, spec.redacted_publish_url), status_lines)
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
    secrets = (spec.connection.sip_password, spec.rtmp_stream)
    line = scrub(f"{outcome.reason}: {outcome.message}", secrets)
    print(f"sip-rtmp-bridge: {line}", file=sys.stderr)
    return int(outcome.exit_code)
