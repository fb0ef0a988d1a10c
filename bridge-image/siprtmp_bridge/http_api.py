"""The bridge's HTTP side: /status for the operator, /metrics, /healthz and /readyz for kubelet.

prometheus-client is imported on the first scrape, not at start: measured, it is about a quarter
of the bridge's import time (≈ 0.05 CPU-s), and a bridge that nobody scrapes never needs it.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from siprtmp_bridge.counters import MediaCounters
from siprtmp_bridge.reporter import StatusReporter


class StatusServer:
    """A daemon HTTP server; it never touches pjsua, only the reporter and the counters."""

    def __init__(
        self, host: str, port: int, reporter: StatusReporter, counters: MediaCounters
    ) -> None:
        handler = _handler(reporter, counters)
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


def _handler(reporter: StatusReporter, counters: MediaCounters) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/status":
                self._send(200, "application/json", json.dumps(reporter.document()).encode())
            elif path == "/metrics":
                from siprtmp_bridge.metrics import exposition

                self._send(200, *exposition(reporter, counters))
            elif path == "/healthz":
                self._send(200, "text/plain", b"ok\n")
            elif path == "/readyz":
                ready = reporter.status.ready
                self._send(
                    200 if ready else 503, "text/plain", b"ready\n" if ready else b"not ready\n"
                )
            else:
                self._send(404, "text/plain", b"not found\n")

        def _send(self, code: int, content_type: str, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            """Silence per-request logging: probes every few seconds would drown the log."""

    return Handler
