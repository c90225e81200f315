"""The API client's Prometheus families, under client-go's names (``rest_client_*``)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from agentic_operator.registry import REGISTRY

REST_CLIENT_REQUESTS = Counter(
    "rest_client_requests_total",
    "Number of HTTP requests to the API server, partitioned by verb, resource and status code "
    "(code is the HTTP status, or '<error>' when no response arrived).",
    ["verb", "resource", "code"],
    registry=REGISTRY,
)

# client-go's request latency buckets.
REST_CLIENT_LATENCY_BUCKETS = (0.005, 0.025, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0)

REST_CLIENT_LATENCY = Histogram(
    "rest_client_request_duration_seconds",
    "Request latency in seconds, partitioned by verb and resource.",
    ["verb", "resource"],
    buckets=REST_CLIENT_LATENCY_BUCKETS,
    registry=REGISTRY,
)
