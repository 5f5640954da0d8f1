"""Prometheus metrics at ``/metrics``, in the server's own
:class:`~prometheus_client.CollectorRegistry` so two servers in one process (tests) never
share counters.  Labels are route templates, never paths: no id reaches a metric."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                   10.0, 30.0)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("schakel_http_requests", "HTTP requests answered",
                                ["route", "method", "status"], registry=self.registry)
        self.latency = Histogram("schakel_http_request_seconds", "Time to answer a request",
                                 ["route"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.events_stored = Counter("schakel_events_stored", "Case events stored",
                                     registry=self.registry)
        self.signals_stored = Counter("schakel_signals_stored", "Signals stored",
                                      registry=self.registry)
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self.sync_waiters = Gauge("schakel_sync_waiters", "Sync requests waiting (long-poll)",
                                  registry=self.registry)
        self._connections_closed = Counter(
            "schakel_connections_closed", "Connections the server closed itself, by reason "
            "(address_cap, header_timeout)", ["reason"], registry=self.registry)

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        # The labelled children, looked up once per label set (``labels()`` parses its
        # keywords and takes a lock on every call).  Routes are templates and methods and
        # statuses few, so this stays small; children are never removed from the registry.
        key = (route, method, status)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (
                self.requests.labels(route=route, method=method, status=str(status)),
                self.latency.labels(route=route))
        children[0].inc()
        children[1].observe(seconds)

    def connections_closed(self, reason: str) -> None:
        self._connections_closed.labels(reason=reason).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


__all__ = ["Metrics"]
