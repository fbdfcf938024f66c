"""Prometheus metrics: requests, latencies per route and per pipeline stage, decisions, queue depth.

Each app gets its own CollectorRegistry (several apps in one test process must not collide).
With several uvicorn workers each process exports its own counters; scrape each worker or set
PROMETHEUS_MULTIPROC_DIR for prometheus_client's multiprocess mode (not wired yet).
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE  # noqa: N811

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "idv_http_requests_total", "HTTP requests", ["method", "route", "status"], registry=r
        )
        self.request_seconds = Histogram(
            "idv_http_request_seconds", "HTTP request latency", ["method", "route"], buckets=_LATENCY_BUCKETS, registry=r
        )
        self.stage_seconds = Histogram(
            "idv_stage_seconds", "pipeline stage latency", ["stage"], buckets=_LATENCY_BUCKETS, registry=r
        )
        self.decisions = Counter("idv_decisions_total", "final and review decisions", ["outcome"], registry=r)
        self.errors = Counter("idv_verification_errors_total", "verifications rejected as unusable", ["type"], registry=r)
        self.in_progress = Gauge("idv_verifications_in_progress", "verifications running now", registry=r)
        self.queue_depth = Gauge("idv_review_queue_depth", "open review cases", registry=r)
        self.webhooks = Counter("idv_webhooks_total", "webhook deliveries", ["result"], registry=r)
        self._depth_fn: Callable[[], int] | None = None

    def set_queue_depth_source(self, fn: Callable[[], int]) -> None:
        self._depth_fn = fn

    def render(self) -> bytes:
        if self._depth_fn is not None:
            try:
                self.queue_depth.set(self._depth_fn())
            except Exception:  # a metrics scrape must not fail on a DB hiccup
                pass
        return generate_latest(self.registry)

    def observe_stages(self, timings_ms: dict[str, float]) -> None:
        for stage, ms in timings_ms.items():
            self.stage_seconds.labels(stage=stage).observe(ms / 1000.0)


__all__ = ["CONTENT_TYPE", "Metrics"]
