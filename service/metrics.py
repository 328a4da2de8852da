"""Prometheus metrics of one app instance (its own registry, so several apps can live in a process)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class ServiceMetrics:
    """Counters and histograms exported on ``/metrics``.

    - ``as_http_requests_total{method,route,status}`` and
      ``as_http_request_duration_seconds{method,route}`` (route = path template, not the raw path);
    - ``as_molecules_total{status}`` (ok / failed), ``as_conformers_total`` (returned);
    - ``as_failures_total{reason}``: refused requests and failed molecules by reason;
    - ``as_inflight_requests`` (computing synchronous requests), ``as_jobs_total{status}``,
      ``as_jobs_queued``, ``as_model_ready``;
    - worker processes (``AS_WORKERS``): ``as_worker_tasks_total{worker}`` (tasks finished by the
      process in slot ``worker``), ``as_worker_busy{worker}``, ``as_worker_pid{worker}``,
      ``as_worker_restarts_total{reason}`` (``timeout``: killed past the time limit, ``died``,
      ``cancelled``, ``failed_start``) and ``as_workers_ready``.
    """

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("as_http_requests", "HTTP requests", ["method", "route", "status"], registry=r)
        self.latency = Histogram(
            "as_http_request_duration_seconds",
            "HTTP request latency",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.molecules = Counter("as_molecules", "molecules processed", ["status"], registry=r)
        self.conformers = Counter("as_conformers", "conformers returned", registry=r)
        self.failures = Counter("as_failures", "refused requests and failed molecules", ["reason"], registry=r)
        self.inflight = Gauge("as_inflight_requests", "synchronous requests computing now", registry=r)
        self.jobs = Counter("as_jobs", "jobs by final or initial status", ["status"], registry=r)
        self.jobs_queued = Gauge("as_jobs_queued", "jobs waiting in the queue", registry=r)
        self.model_ready = Gauge("as_model_ready", "1 once the model is loaded and warmed up", registry=r)
        self.worker_tasks = Counter("as_worker_tasks", "tasks finished by a worker process", ["worker"], registry=r)
        self.worker_busy = Gauge("as_worker_busy", "1 while a worker process computes a task", ["worker"], registry=r)
        self.worker_pid = Gauge("as_worker_pid", "process id of a worker slot", ["worker"], registry=r)
        self.worker_restarts = Counter(
            "as_worker_restarts", "worker processes stopped and replaced", ["reason"], registry=r
        )
        self.workers_ready = Gauge("as_workers_ready", "worker processes up (idle or busy)", registry=r)

    def render(self) -> bytes:
        """The Prometheus text exposition of all metrics."""
        return generate_latest(self.registry)

    def middleware(self, app: ASGIApp) -> ASGIApp:
        """Wrap an ASGI app to count requests and time them by route template."""

        async def wrapped(
            scope: Scope, receive: Callable[[], Awaitable[Message]], send: Callable[[Message], Awaitable[None]]
        ) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            start = time.perf_counter()
            status = 500

            async def send_and_record(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = int(message["status"])
                await send(message)

            try:
                await app(scope, receive, send_and_record)
            finally:
                route = scope.get("route")
                route_name = getattr(route, "path", None) or "unmatched"
                method = scope.get("method", "")
                self.requests.labels(method, route_name, str(status)).inc()
                self.latency.labels(method, route_name).observe(time.perf_counter() - start)

        return wrapped
