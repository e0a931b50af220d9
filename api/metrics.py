"""Prometheus metrics of the API (``GET /metrics``), in the app's own registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class ApiMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "energymon_api_requests", "HTTP requests answered, by route template, method and "
            "status", ["route", "method", "status"], registry=r)
        self.latency = Histogram(
            "energymon_api_request_seconds", "Time to the response's first byte, by route "
            "template", ["route"], buckets=_LATENCY, registry=r)
        self.in_flight = Gauge(
            "energymon_api_requests_in_flight", "Requests being handled", registry=r)
        self.rate_limited = Counter(
            "energymon_api_rate_limited", "Requests answered 429, by kind of principal",
            ["kind"], registry=r)
        self.auth_failures = Counter(
            "energymon_api_auth_failures", "Requests answered 401", registry=r)
        self.token_lookups = Counter(
            "energymon_api_token_lookups", "Bearer tokens looked up in the database (requests "
            "the rate limits let through)", registry=r)
        self.export_rows = Counter(
            "energymon_api_export_rows", "History rows sent, by format", ["format"], registry=r)
        self.pool_size = Gauge(
            "energymon_api_db_pool_connections", "Connections held by the pool", registry=r)
        self.pool_available = Gauge(
            "energymon_api_db_pool_available", "Idle connections in the pool", registry=r)
        self.pool_waiting = Gauge(
            "energymon_api_db_pool_waiting", "Requests waiting for a connection", registry=r)
