"""The HTTP client for a session's runner (spec changes while Running, see :mod:`.livespec`)."""

from __future__ import annotations

import aiohttp

from agentic_operator.kube.resources import Obj

RUNNER_CALL_TIMEOUT = 10.0
"""Seconds per call to the runner (upstream's value)."""


class RunnerCallError(Exception):
    """A call to the runner failed (transport error or a non-2xx answer)."""


class RunnerClient:
    """POSTs JSON to a session's runner at ``endpoint`` ({session} and {namespace} filled in)."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self._http: aiohttp.ClientSession | None = None

    def base_url(self, namespace: str, session: str) -> str:
        return self.endpoint.format(session=session, namespace=namespace).rstrip("/")

    async def post(self, namespace: str, session: str, path: str, body: Obj) -> None:
        if self._http is None:
            self._http = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=RUNNER_CALL_TIMEOUT)
            )
        url = self.base_url(namespace, session) + path
        try:
            async with self._http.post(url, json=body) as response:
                if response.status >= 300:
                    text = (await response.text())[:200]
                    raise RunnerCallError(f"POST {path}: HTTP {response.status} {text}".strip())
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise RunnerCallError(f"POST {path}: {type(exc).__name__}: {exc}") from exc

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None
