"""The bridge's HTTP side: /status for the operator, /metrics, /healthz (503 once a media thread
died or stopped making progress: supervision.py) and /readyz for kubelet,
POST /dtmf, through which the operator's REST API sends DTMF into the call, and POST
/destinations, through which the operator changes a live call's destinations (both with the
bearer token the operator gave the pod, when it gave one: siprtmp_contract.pod.CONTROL_TOKEN_ENV).

prometheus-client is imported on the first scrape, not at start: it is a good part of the
bridge's import time (docs/measurements.md, "Lazy imports"), and a bridge that nobody scrapes
never needs it.
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import TimeoutError as FutureTimeout
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from siprtmp_bridge.counters import MediaCounters
from siprtmp_bridge.destinations import DestinationControl, DestinationsChangeRefusedError
from siprtmp_bridge.dtmf import DtmfQueue, DtmfRefusedError, authorized
from siprtmp_bridge.reporter import StatusReporter
from siprtmp_bridge.supervision import Supervisor
from siprtmp_contract.dtmf import (
    DtmfError,
    parse_digits,
    parse_method,
)
from siprtmp_contract.spec import SpecError

#: How long a DTMF request waits for the runner's poll loop (it polls every 250 ms).
DTMF_WAIT_SECONDS = 5.0
MAX_BODY_BYTES = 4096
#: Room for a full destinations list (8 URLs of up to 2048 characters and their keys).
MAX_DESTINATIONS_BODY_BYTES = 32768


class StatusServer:
    """A daemon HTTP server; it never touches pjsua, only the reporter and the counters."""

    def __init__(
        self,
        host: str,
        port: int,
        reporter: StatusReporter,
        counters: MediaCounters,
        dtmf: DtmfQueue | None = None,
        control_token: str | None = None,
        supervisor: Supervisor | None = None,
        destinations: DestinationControl | None = None,
    ) -> None:
        handler = _handler(reporter, counters, dtmf, control_token, supervisor, destinations)
        self.server = ThreadingHTTPServer((host, port), handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="http", daemon=True)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _handler(
    reporter: StatusReporter,
    counters: MediaCounters,
    dtmf: DtmfQueue | None,
    control_token: str | None,
    supervisor: Supervisor | None,
    destinations: DestinationControl | None,
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/status":
                self._send(200, "application/json", json.dumps(reporter.document()).encode())
            elif path == "/metrics":
                from siprtmp_bridge.metrics import exposition

                self._send(200, *exposition(reporter, counters))
            elif path == "/healthz":
                problem = supervisor.problem() if supervisor is not None else None
                if problem is None:
                    self._send(200, "text/plain", b"ok\n")
                else:
                    self._send(503, "text/plain", f"unhealthy: {problem}\n".encode())
            elif path == "/readyz":
                ready = reporter.status.ready
                self._send(
                    200 if ready else 503, "text/plain", b"ready\n" if ready else b"not ready\n"
                )
            else:
                self._send(404, "text/plain", b"not found\n")

        def do_POST(self) -> None:
            path = self.path.split("?", 1)[0]
            served = {"/dtmf": dtmf is not None, "/destinations": destinations is not None}
            if not served.get(path):
                self._send(404, "text/plain", b"not found\n")
                return
            if not authorized(self.headers.get("Authorization"), control_token):
                answer = {"error": "Authorization: the pod's bearer token is required"}
                self._send(401, "application/json", json.dumps(answer).encode(), challenge=True)
                return
            body = self._body(MAX_BODY_BYTES if path == "/dtmf" else MAX_DESTINATIONS_BODY_BYTES)
            if isinstance(body, str):
                code, answer = 400, {"error": body}
            elif dtmf is not None and path == "/dtmf":
                code, answer = self._dtmf(dtmf, body)
            else:
                assert destinations is not None
                code, answer = self._destinations(destinations, body)
            self._send(code, "application/json", json.dumps(answer).encode())

        def _body(self, limit: int) -> dict[str, Any] | str:
            """The request's JSON object (``limit`` bytes at most), or what is wrong with it."""
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = 0
            if not 0 < length <= limit:
                return f"body: a JSON object of at most {limit} bytes"
            try:
                body = json.loads(self.rfile.read(length))
            except ValueError:
                return "body: not valid JSON"
            if not isinstance(body, dict):
                return "body: must be a JSON object"
            return body

        def _destinations(
            self, control: DestinationControl, body: dict[str, Any]
        ) -> tuple[int, dict[str, Any]]:
            """``{"destinations": [...]}`` (the resource's list: every destination beside
            rtmpUrl/rtmpStream) → 200 with each destination's status, 400 naming the field, or
            409 when the call publishes nowhere yet or any more."""
            try:
                shown = control.change(body.get("destinations") or [])
            except SpecError as error:
                return 400, {"error": str(error)}
            except DestinationsChangeRefusedError as error:
                return 409, {"error": str(error)}
            return 200, {"destinations": shown}

        def _dtmf(self, queue: DtmfQueue, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
            """``{"dtmf": "123#", "type": "INFO"}`` → 200 once the first key went out (the
            rest follow at their times), 400, 409 or 503; ``type`` RFC2833 when absent."""
            try:
                digits = parse_digits(body.get("dtmf"))
                method = parse_method(body.get("type"))
            except DtmfError as error:
                return 400, {"error": str(error)}
            future = queue.submit(digits, method)
            try:
                future.result(DTMF_WAIT_SECONDS)
            except DtmfRefusedError as error:
                return 409, {"error": str(error)}
            except FutureTimeout:
                future.cancel()  # never sent late, after the caller was told it failed
                return 503, {"error": "the call did not take the digits in time"}
            return 200, {"dtmf": digits, "type": method.value, "sent": True}

        def _send(self, code: int, content_type: str, body: bytes, challenge: bool = False) -> None:
            self.send_response(code)
            if challenge:
                self.send_header("WWW-Authenticate", "Bearer")
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            """Silence per-request logging: probes every few seconds would drown the log."""

    return Handler
