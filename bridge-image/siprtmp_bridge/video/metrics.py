"""Prometheus metrics of the bridged video, read from the status at scrape time."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from siprtmp_bridge.video.status import VideoState, VideoStatus


def video_metrics(video: VideoStatus | None) -> Iterator[Metric]:
    if video is None:
        return
    counters = (
        ("siprtmp_video_frames_received", "Video access units received", video.frames),
        ("siprtmp_video_keyframes_received", "Video keyframes received", video.keyframes),
        ("siprtmp_video_bytes_received", "Video bytes received", video.bytes_received),
        ("siprtmp_video_keyframe_requests", "Keyframe requests sent", video.keyframe_requests),
        (
            "siprtmp_video_keyframe_requests_ignored",
            "Keyframe intervals past video.maxKeyframeIntervalSeconds although a keyframe was "
            "requested in time (the far end ignores requests)",
            video.keyframe_requests_ignored,
        ),
        (
            "siprtmp_video_missing",
            "Times negotiated video sent no frame within VIDEO_MISSING_SECONDS",
            video.missing_count,
        ),
    )
    for name, doc, value in counters:
        yield CounterMetricFamily(name, doc, value=value)
    gauges = (
        ("siprtmp_video_width_pixels", "Video width", video.width),
        ("siprtmp_video_height_pixels", "Video height", video.height),
        ("siprtmp_video_frame_rate", "Video frames per second", video.frame_rate),
        (
            "siprtmp_video_keyframe_interval_seconds",
            "Time between the latest two keyframes",
            video.keyframe_interval_seconds,
        ),
        (
            "siprtmp_video_av_offset_seconds",
            "Video placement against the audio clock (RTP-predicted minus arrival)",
            None if video.av_offset_ms is None else video.av_offset_ms / 1000,
        ),
    )
    for name, doc, gauge in gauges:
        if gauge is not None:
            yield GaugeMetricFamily(name, doc, value=gauge)
    family = GaugeMetricFamily("siprtmp_video_state", "Video state", labels=["state"])
    for state in VideoState:
        family.add_metric([state.value], 1.0 if state is video.state else 0.0)
    yield family
