"""The operator's Prometheus registry, a leaf module every layer may register families on.

Not the library's global default registry, so tests and embedders see exactly the operator's
families: the API client's (:mod:`agentic_operator.kube.metrics`), the runtime's
(:mod:`agentic_operator.runtime.metrics`) and the sessions'
(:mod:`agentic_operator.sessions.metrics`).
"""

from __future__ import annotations

import prometheus_client
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, CollectorRegistry, generate_latest

# controller-runtime does not expose ``*_created`` series; without this every counter and histogram
# would carry an extra series per label set. Process-wide on purpose: the operator owns its process.
prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]

REGISTRY = CollectorRegistry()
"""Process/platform/GC collectors and every family of the operator."""

prometheus_client.ProcessCollector(registry=REGISTRY)
prometheus_client.PlatformCollector(registry=REGISTRY)
prometheus_client.GCCollector(registry=REGISTRY)


def render_metrics() -> tuple[bytes, str]:
    """The Prometheus text exposition of :data:`REGISTRY` and its content type.

    The body is the classic text format, announced as version 0.0.4: every Prometheus release
    (and every other scraper) parses it, which is not true of the newer 1.0.0 label.
    """
    return generate_latest(REGISTRY), CONTENT_TYPE_PLAIN_0_0_4
