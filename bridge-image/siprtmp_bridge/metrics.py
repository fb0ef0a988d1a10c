"""Prometheus metrics of one bridge, read from live counters at scrape time (no copies kept)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from siprtmp_bridge.counters import MediaCounters
from siprtmp_bridge.reporter import StatusReporter
from siprtmp_bridge.status import BridgeStatus
from siprtmp_bridge.video.metrics import video_metrics
from siprtmp_contract.states import (
    CallState,
    StreamState,
)


class BridgeCollector(Collector):
    def __init__(self, reporter: StatusReporter, counters: MediaCounters) -> None:
        self.reporter = reporter
        self.counters = counters

    def collect(self) -> Iterator[Metric]:
        status = self.reporter.status
        counters = self.counters
        yield _counter("siprtmp_rtp_packets_received", "RTP packets received", counters.rtp_packets)
        yield _counter("siprtmp_rtp_packets_lost", "RTP packets lost", counters.rtp_lost)
        yield _gauge(
            "siprtmp_rtp_jitter_seconds", "RTP interarrival jitter", counters.rtp_jitter_us / 1e6
        )
        yield _counter("siprtmp_aac_frames_encoded", "AAC frames encoded", counters.frames_encoded)
        yield _counter(
            "siprtmp_silence_inserted_seconds",
            "Silence inserted to keep the clock",
            counters.silence_seconds,
        )
        yield _counter(
            "siprtmp_rtmp_bytes_sent", "Media bytes sent over RTMP", status.stream.bytes_sent
        )
        yield _counter("siprtmp_rtmp_reconnects", "RTMP reconnects", status.stream.reconnects)
        yield _counter(
            "siprtmp_rtmp_packets_dropped",
            "Media packets dropped from the RTMP queue while the connection was behind or gone",
            status.stream.dropped_packets,
        )
        yield _gauge(
            "siprtmp_stream_degraded",
            "1 while the stream is dropping media",
            status.stream.degraded,
        )
        yield _counter(
            "siprtmp_dtmf_received",
            "DTMF keys received from the far end (RFC 2833 or SIP INFO)",
            status.call.dtmf_received,
        )
        yield _state_set(
            "siprtmp_call_state",
            "Call state",
            status.call.state.value,
            [s.value for s in CallState],
        )
        yield _state_set(
            "siprtmp_stream_state",
            "Stream state",
            status.stream.state.value,
            [s.value for s in StreamState],
        )
        yield _srtp(status)
        yield from destination_metrics(status)
        yield from video_metrics(status.video)


def destination_metrics(status: BridgeStatus) -> Iterator[Metric]:
    """Each destination's counters and state, labelled with its number (never its URL or key:
    ``status.destinations[].id``)."""
    families = {
        "bytes": CounterMetricFamily(
            "siprtmp_destination_bytes_sent",
            "Media bytes sent to one destination",
            labels=["destination"],
        ),
        "dropped": CounterMetricFamily(
            "siprtmp_destination_packets_dropped",
            "Media packets one destination's queue dropped",
            labels=["destination"],
        ),
        "reconnects": CounterMetricFamily(
            "siprtmp_destination_reconnects", "One destination's reconnects", labels=["destination"]
        ),
    }
    state = GaugeMetricFamily(
        "siprtmp_destination_state", "One destination's state", labels=["destination", "state"]
    )
    for destination in status.destinations:
        label = str(destination.id)
        families["bytes"].add_metric([label], destination.bytes_sent)
        families["dropped"].add_metric([label], destination.dropped_packets)
        families["reconnects"].add_metric([label], destination.reconnects)
        for each in StreamState:
            state.add_metric([label, each.value], 1.0 if each is destination.state else 0.0)
    yield from families.values()
    yield state


def _counter(name: str, doc: str, value: float) -> Metric:
    return CounterMetricFamily(name, doc, value=value)


def _gauge(name: str, doc: str, value: float) -> Metric:
    return GaugeMetricFamily(name, doc, value=value)


def _state_set(name: str, doc: str, current: str, states: list[str]) -> Metric:
    family = GaugeMetricFamily(name, doc, labels=["state"])
    for state in states:
        family.add_metric([state], 1.0 if state == current else 0.0)
    return family


def _srtp(status: BridgeStatus) -> Metric:
    """1 per media with the SRTP suite it negotiated (``none``: plain RTP, or not yet)."""
    family = GaugeMetricFamily(
        "siprtmp_srtp_suite",
        "SRTP crypto suite of each media (none: plain RTP)",
        labels=["media", "suite"],
    )
    family.add_metric(["audio", status.call.srtp_suite or "none"], 1.0)
    if status.video is not None:
        family.add_metric(["video", status.video.srtp_suite or "none"], 1.0)
    return family


def bridge_registry(reporter: StatusReporter, counters: MediaCounters) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(BridgeCollector(reporter, counters))
    return registry


def exposition(reporter: StatusReporter, counters: MediaCounters) -> tuple[str, bytes]:
    """The /metrics response (content type, body): the registry only reads live values, so
    building it per scrape costs nothing worth keeping it for."""
    return CONTENT_TYPE_LATEST, generate_latest(bridge_registry(reporter, counters))
