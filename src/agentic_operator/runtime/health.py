"""Probe and metrics HTTP endpoints (aiohttp).

``/healthz`` answers while the event loop runs; ``/readyz`` only once every registered readiness
check passes (the manager registers ``informers-synced``: every informer cache has synced). Both
return a short plain-text body naming the failing check, like controller-runtime's healthz
handler. ``/metrics`` serves the operator's registry in the Prometheus text format.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from aiohttp import web

from agentic_operator.registry import render_metrics

log = logging.getLogger(__name__)

Check = Callable[[], bool]


def split_bind_address(address: str) -> tuple[str, int]:
    """``:8080`` -> ("0.0.0.0", 8080); ``127.0.0.1:9`` -> ("127.0.0.1", 9); IPv6 in brackets."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]") or "0.0.0.0"  # noqa: S104 - ":port" means all interfaces, as in Go
    return host, int(port)


class ProbeChecks:
    """Named health and readiness checks."""

    def __init__(self) -> None:
        self.healthz: dict[str, Check] = {"ping": lambda: True}
        self.readyz: dict[str, Check] = {"ping": lambda: True}

    @staticmethod
    def _respond(checks: dict[str, Check], verbose: bool) -> web.Response:
        failed = []
        lines = []
        for name, check in checks.items():
            try:
                ok = check()
            except Exception:  # a broken check is a failing check
                log.exception("probe check %s raised", name)
                ok = False
            lines.append(f"[{'+' if ok else '-'}]{name} {'ok' if ok else 'failed'}")
            if not ok:
                failed.append(name)
        if failed:
            body = "\n".join(lines) + f"\nhealthz check failed: {', '.join(failed)}\n"
            return web.Response(status=500, text=body)
        return web.Response(text=("\n".join(lines) + "\nok\n") if verbose else "ok")

    async def handle_healthz(self, request: web.Request) -> web.Response:
        return self._respond(self.healthz, "verbose" in request.query)

    async def handle_readyz(self, request: web.Request) -> web.Response:
        return self._respond(self.readyz, "verbose" in request.query)


async def handle_metrics(_request: web.Request) -> web.Response:
    body, content_type = render_metrics()
    resp = web.Response(body=body)
    resp.headers["Content-Type"] = content_type
    return resp


class HttpEndpoints:
    """Starts the probe server and the metrics server (one port each; "0" disables one)."""

    def __init__(self, checks: ProbeChecks, *, probe_address: str, metrics_address: str) -> None:
        self.checks = checks
        self.probe_address = probe_address
        self.metrics_address = metrics_address
        self._runners: list[web.AppRunner] = []

    async def start(self) -> None:
        if self.probe_address != "0":
            app = web.Application()
            app.router.add_get("/healthz", self.checks.handle_healthz)
            app.router.add_get("/readyz", self.checks.handle_readyz)
            await self._serve(app, self.probe_address, "probes")
        if self.metrics_address != "0":
            app = web.Application()
            app.router.add_get("/metrics", handle_metrics)
            await self._serve(app, self.metrics_address, "metrics")

    async def _serve(self, app: web.Application, address: str, what: str) -> None:
        host, port = split_bind_address(address)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, host, port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise OSError(f"cannot serve {what} on {address}: {exc.strerror or exc}") from exc
        self._runners.append(runner)
        log.info("serving %s", what, extra={"address": address})

    async def stop(self) -> None:
        for runner in self._runners:
            await runner.cleanup()
        self._runners.clear()
