"""What an RTMP server was told by its publishers: nginx-rtmp's ``on_publish`` notifications
(the client's ``connect`` and ``publish`` fields, tcUrl among them), received over HTTP."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs


class PublishLog:
    def __init__(self) -> None:
        self.notifications: list[dict[str, str]] = []
        log = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                log.notifications.append({k: v[0] for k, v in parse_qs(body).items()})
                self.send_response(200)  # 2xx: nginx-rtmp lets the publisher in
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/on_publish"

    def tc_urls(self) -> list[str]:
        return [notification["tcurl"] for notification in self.notifications]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
