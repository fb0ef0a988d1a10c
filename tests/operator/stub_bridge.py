"""A stand-in for `sip-rtmp-bridge run` (docs/bridge-process.md), for the operator's tests only.

It follows the documented interface: reads --spec and --sip-password-file, serves the status
document on --status-host/--status-port, writes the final document to --termination-log, exits
0 on SIGTERM (after a "BYE") or at maxDurationSeconds, 4 (Busy) for a callee containing "busy".
It places no call: it exists so that the operator's path through a real process (files, HTTP,
signals, exit codes) is tested before the real bridge is wired in; swap it for the real one by
passing the real command to LocalKubelet.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["run"])
    parser.add_argument("--spec", required=True)
    parser.add_argument("--sip-password-file")
    parser.add_argument("--status-host", default="127.0.0.1")
    parser.add_argument("--status-port", type=int, default=8080)
    parser.add_argument("--termination-log")
    args = parser.parse_args(argv)
    spec: dict[str, Any] = json.loads(Path(args.spec).read_text())
    password = Path(args.sip_password_file).read_text() if args.sip_password_file else ""
    status: dict[str, Any] = {
        "phase": "Connecting", "reason": "Connecting",
        "message": f"calling; password file {len(password)} bytes", "exitCode": None,
        "call": {"state": "TRYING", "sipCallId": spec.get("callId")},
        "stream": {"state": "PENDING", "bytesSent": 0, "reconnects": 0},
    }
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with lock:
                body = json.dumps(status).encode()
            self.send_response(200 if self.path in {"/status", "/healthz"} else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            return

    server = ThreadingHTTPServer((args.status_host, args.status_port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def finish(phase: str, reason: str, code: int, call_state: str) -> int:
        with lock:
            status.update(phase=phase, reason=reason, message=reason, exitCode=code)
            status["call"]["state"] = call_state
            status["stream"]["state"] = "UNPUBLISHED"
            final = json.dumps(status)
        print(final, flush=True)
        if args.termination_log:
            Path(args.termination_log).write_text(final)
        server.shutdown()
        return code

    if stop.wait(0.5):
        return finish("Succeeded", "Stopped", 0, "FINISH")
    if "busy" in str(spec.get("callee", "")):
        return finish("Failed", "Busy", 4, "BUSY")
    with lock:
        status.update(phase="Streaming", reason="Streaming",
                      message=f"established, publishing; password file {len(password)} bytes")
        status["call"].update(state="ESTABLISHED", sipStatusCode=200)
        status["stream"]["state"] = "PUBLISHING"
    deadline = time.monotonic() + float(spec.get("maxDurationSeconds") or 3600)
    while not stop.wait(0.2):
        with lock:
            status["stream"]["bytesSent"] += 3200
        if time.monotonic() >= deadline:
            return finish("Succeeded", "MaxDuration", 0, "FINISH")
    return finish("Succeeded", "Stopped", 0, "FINISH")


if __name__ == "__main__":
    sys.exit(main())
