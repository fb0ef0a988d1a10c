"""Prometheus metrics of the operator (not of the calls: each bridge pod serves its own)."""

from __future__ import annotations

import threading
from collections import Counter as _Counter
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from .status import PHASES

REGISTRY = CollectorRegistry(auto_describe=True)

RECONCILE_ERRORS = Counter(
    "siprtmp_operator_reconcile_errors_total",
    "Reconcile steps that raised (the step is retried on the next tick).",
    ["handler"],
    registry=REGISTRY,
)
PODS_CREATED = Counter(
    "siprtmp_operator_pods_created_total", "Bridge pods created.", registry=REGISTRY
)
REDIALS = Counter(
    "siprtmp_operator_redials_total", "Failed calls scheduled for a redial.", registry=REGISTRY
)
_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300)
TO_POD_RUNNING = Histogram(
    "siprtmp_operator_creation_to_pod_running_seconds",
    "Seconds from a bridge's creation to its first pod running.",
    buckets=_BUCKETS,
    registry=REGISTRY,
)
TO_STREAMING = Histogram(
    "siprtmp_operator_creation_to_streaming_seconds",
    "Seconds from a bridge's creation to its phase first reaching Streaming.",
    buckets=_BUCKETS,
    registry=REGISTRY,
)


class PhaseTracker(Collector):
    """Current phase of every bridge the operator knows; exported as bridges-by-phase."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._phases: dict[str, str] = {}

    def set(self, uid: str, phase: str) -> None:
        with self._lock:
            self._phases[uid] = phase

    def forget(self, uid: str) -> None:
        with self._lock:
            self._phases.pop(uid, None)

    def counts(self) -> dict[str, int]:
        with self._lock:
            c = _Counter(self._phases.values())
        return {phase: c.get(phase, 0) for phase in PHASES}

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "siprtmp_operator_bridges", "SipRtmpBridge resources by phase.", labels=["phase"]
        )
        for phase, n in self.counts().items():
            family.add_metric([phase], n)
        yield family


PHASE_TRACKER = PhaseTracker()
REGISTRY.register(PHASE_TRACKER)
