"""A live call's destinations, changed through the bridge's HTTP API (POST /destinations).

The operator sends the resource's ``destinations`` whenever they change; the list is the whole
set beside ``rtmpUrl/rtmpStream`` (which stays for the call's life), so a repeated or late
request changes nothing. The new keys are secrets from the moment they are read (from the
request, or from a Secret the pod mounts): the run's Scrubber masks them before any publisher
is opened. The call's stream was fixed when it was placed, so a destination whose profile it
breaks (a YouTube destination added to an audio-only call) is refused, and with it the change.
"""

from __future__ import annotations

import threading
import time
from functools import partial
from typing import Any

from siprtmp_bridge.reporter import StatusReporter
from siprtmp_bridge.rtmp.fanout import Fanout
from siprtmp_bridge.status import with_destinations
from siprtmp_contract.spec import (
    BridgeSpec,
    KeyReader,
    check_live_destinations,
    parse_destinations,
)

#: How long a removed destination may take to send its queue and close.
CLOSE_SECONDS = 1.5


class DestinationsChangeRefusedError(Exception):
    """The call cannot take a change now (not started yet, or ending)."""


class DestinationControl:
    """Shared by the HTTP server (``change``) and the runner (``attach``/``detach``)."""

    def __init__(self, reporter: StatusReporter, spec: BridgeSpec, keys: KeyReader) -> None:
        self._reporter = reporter
        self._spec = spec
        #: A new destination's ``rtmpStreamSecretRef``: its key as mounted in the pod.
        self._keys = keys
        self._lock = threading.Lock()
        self._fanout: Fanout | None = None

    def attach(self, fanout: Fanout) -> None:
        with self._lock:
            self._fanout = fanout

    def detach(self) -> None:
        """No more changes: waits for one under way (the chain is about to stop)."""
        with self._lock:
            self._fanout = None

    def change(self, listed: Any) -> list[dict[str, Any]]:
        """Publish to ``listed`` (a ``destinations`` list as the resource holds it) beside the
        first destination; the destinations' status after the change. SpecError names what
        is wrong with the list; DestinationsChangeRefusedError when the call takes none."""
        more = parse_destinations(listed, "destinations", self._keys)
        self._spec.scrubber.widen(secret for d in more for secret in d.secrets)
        check_live_destinations(self._spec, more, "destinations")
        with self._lock:
            fanout = self._fanout
            if fanout is None:
                raise DestinationsChangeRefusedError("the call is not publishing")
            fanout.set_destinations(more, CLOSE_SECONDS)
            snapshot = fanout.snapshot(time.monotonic())
        self._reporter.update(partial(with_destinations, destinations=snapshot))
        shown: list[dict[str, Any]] = self._reporter.document()["destinations"]
        return shown
