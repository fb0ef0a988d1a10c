"""The one place the live status is kept: updated from the SIP loop and the publisher thread,
printed as a JSON line on each change, served over HTTP, and written out at the end."""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from siprtmp_bridge.status import BridgeStatus, to_document
from siprtmp_bridge.video.status import VIDEO_COUNTERS
from siprtmp_contract.redact import Scrubber

# Termination messages are cut by Kubernetes at 4096 bytes; the document is well under.
TERMINATION_MESSAGE_LIMIT = 4096
STREAM_COUNTERS = frozenset({"bytesSent", "droppedPackets"})

log = logging.getLogger(__name__)


def significant(document: dict[str, Any]) -> dict[str, Any]:
    """The document minus counters that change with every packet: a change here is worth a line."""
    stream = {k: v for k, v in document["stream"].items() if k not in STREAM_COUNTERS}
    destinations = [
        {k: v for k, v in destination.items() if k not in STREAM_COUNTERS}
        for destination in document["destinations"]
    ]
    line = {**document, "stream": stream, "destinations": destinations}
    if "video" in document:
        video = {k: v for k, v in document["video"].items() if k not in VIDEO_COUNTERS}
        return {**line, "video": video}
    return line


#: The status document's fields whose values come from a fixed vocabulary (phases, reason
#: names, states, the video source): never a secret, so never masked.
FIXED_VOCABULARY = frozenset(
    {
        ("phase",),
        ("reason",),
        ("call", "state"),
        ("stream", "state"),
        ("destinations", "state"),
        ("destinations", "profile"),
        ("video", "state"),
        ("video", "source"),
    }
)


class StatusReporter:
    """Every view of the status (stdout lines, /status, /metrics, the termination message) is
    made by ``document``, and so passes ``scrubber``: a secret that reached a reason or message
    (an error string quoting the publish URL) is masked wherever the status goes."""

    def __init__(
        self, status: BridgeStatus, out: TextIO = sys.stdout, scrubber: Scrubber | None = None
    ) -> None:
        self._status = status
        self._scrubber = scrubber or Scrubber()
        self._lock = threading.Lock()
        self._out = out
        self._last_line: dict[str, Any] | None = None
        self._emit(self._document())

    def update(self, change: Callable[[BridgeStatus], BridgeStatus]) -> BridgeStatus:
        with self._lock:
            self._status = change(self._status)
            self._emit(self._document())
            return self._status

    @property
    def status(self) -> BridgeStatus:
        with self._lock:
            return self._status

    def document(self) -> dict[str, Any]:
        with self._lock:
            return self._document()

    def _document(self) -> dict[str, Any]:
        scrubbed: dict[str, Any] = self._scrubber.document(
            to_document(self._status), FIXED_VOCABULARY
        )
        return scrubbed

    def _emit(self, document: dict[str, Any]) -> None:
        line = significant(document)
        if line != self._last_line:
            self._last_line = line
            self._out.write(json.dumps(document, separators=(",", ":")) + "\n")
            self._out.flush()

    def write_termination_message(self, path: Path | None) -> None:
        if path is None:
            return
        text = json.dumps(self.document(), separators=(",", ":"))[:TERMINATION_MESSAGE_LIMIT]
        try:
            path.write_text(text, encoding="utf-8")
        except OSError as error:
            log.warning("cannot write termination message to %s: %s", path, error)
