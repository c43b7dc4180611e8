"""Prometheus metrics, one CollectorRegistry per app (so tests and several apps never clash)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

log = logging.getLogger(__name__)

# Label values must come from a closed set, or a client sending made-up methods grows /metrics
# without bound (one series per method per bucket).
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def method_label(method: str) -> str:
    """The method as a metric label: one of KNOWN_METHODS, else "other"."""
    return method if method in KNOWN_METHODS else "other"


LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    """The service's metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            "marquee_http_request_seconds",
            "Request latency by route template, method and status code.",
            ["route", "method", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.recommendations = Counter(
            "marquee_recommendations_served",
            "Recommendation slates served, per A/B arm.",
            ["arm"],
            registry=self.registry,
        )
        self.feedback = Counter(
            "marquee_feedback_events",
            "Feedback events accepted (valid), per type.",
            ["type"],
            registry=self.registry,
        )
        self.buffer_size = Gauge(
            "marquee_replay_buffer_size",
            "Transitions in the Redis replay buffer (NaN when Redis is unreachable).",
            registry=self.registry,
        )
        self.spooled = Gauge(
            "marquee_feedback_spooled",
            "Feedback events waiting in the local spool for Redis.",
            registry=self.registry,
        )
        self.policy = Gauge(
            "marquee_policy_loaded",
            "1 for each (arm, policy, version) currently loaded.",
            ["arm", "policy", "version"],
            registry=self.registry,
        )

    def watch(self, gauge: Gauge, read: Callable[[], float]) -> None:
        """Read ``gauge`` from ``read`` at scrape time; NaN when it fails (e.g. Redis down)."""

        def safe() -> float:
            try:
                return float(read())
            except Exception as exc:  # a scrape must not fail because a backend is down
                log.debug("metric %s unavailable: %s", gauge, exc)
                return float("nan")

        gauge.set_function(safe)

    def render(self) -> bytes:
        return generate_latest(self.registry)
