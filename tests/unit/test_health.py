"""Probe and metrics endpoints over real HTTP on loopback."""

from __future__ import annotations

import socket

import aiohttp
import pytest

from agentic_operator.runtime.health import HttpEndpoints, ProbeChecks, split_bind_address


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        (":8080", ("0.0.0.0", 8080)),  # noqa: S104 - what ":port" means
        ("127.0.0.1:9", ("127.0.0.1", 9)),
        ("[::1]:8081", ("::1", 8081)),
    ],
)
def test_split_bind_address(address: str, expected: tuple[str, int]) -> None:
    assert split_bind_address(address) == expected


async def test_readyz_follows_its_checks_and_metrics_are_served() -> None:
    checks = ProbeChecks()
    synced = False
    checks.readyz["informers-synced"] = lambda: synced
    probe, metrics = _free_port(), _free_port()
    http = HttpEndpoints(
        checks, probe_address=f"127.0.0.1:{probe}", metrics_address=f"127.0.0.1:{metrics}"
    )
    await http.start()
    try:
        async with aiohttp.ClientSession() as s:
            async with s.get(f"http://127.0.0.1:{probe}/healthz") as r:
                assert r.status == 200
            async with s.get(f"http://127.0.0.1:{probe}/readyz") as r:
                assert r.status == 500
                assert "informers-synced" in await r.text()
            synced = True
            async with s.get(f"http://127.0.0.1:{probe}/readyz?verbose") as r:
                assert r.status == 200
                assert "[+]informers-synced ok" in await r.text()
            async with s.get(f"http://127.0.0.1:{metrics}/metrics") as r:
                assert r.status == 200
                assert r.headers["Content-Type"].startswith("text/plain")
                body = await r.text()
                assert "process_cpu_seconds_total" in body
    finally:
        await http.stop()


async def test_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        http = HttpEndpoints(ProbeChecks(), probe_address=f"127.0.0.1:{port}", metrics_address="0")
        with pytest.raises(OSError, match=f"cannot serve probes on 127.0.0.1:{port}"):
            await http.start()
        await http.stop()
