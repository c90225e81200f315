"""Fixtures shared by the unit tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from tests.unit.rawserver import Handler, Server, start_server


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[Server]]]:
    servers: list[asyncio.Server] = []

    async def start(handler: Handler) -> Server:
        server, state = await start_server(handler)
        servers.append(server)
        return state

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()
