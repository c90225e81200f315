"""The HTTP client for a session's runner (spec changes while Running, see :mod:`.livespec`).

Today's runner answers 401 to every request but ``/health`` that does not carry its session's
AG-UI token in ``X-Ambient-Session-Token`` (the token Secret's ``agui-token``, which the runner
has as ``AGUI_TOKEN``). The executor reads the token and passes it to :meth:`RunnerClient.post`;
the value is only ever put in that header, never in a log line or an error message.
"""

from __future__ import annotations

import aiohttp

from agentic_operator.kube.resources import Obj
from agentic_operator.sessions.model import AGUI_PORT, SESSION_TOKEN_HEADER

RUNNER_CALL_TIMEOUT = 10.0
"""Seconds per call to the runner (upstream's value)."""


class RunnerCallError(Exception):
    """A call to the runner failed (transport error or a non-2xx answer)."""


class RunnerClient:
    """POSTs JSON to a session's runner at ``endpoint`` ({session}, {namespace} and {port}
    filled in)."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self._http: aiohttp.ClientSession | None = None

    def base_url(self, namespace: str, session: str, port: int = AGUI_PORT) -> str:
        return self.endpoint.format(session=session, namespace=namespace, port=port).rstrip("/")

    async def post(
        self,
        namespace: str,
        session: str,
        path: str,
        body: Obj,
        *,
        token: str | None = None,
        port: int = AGUI_PORT,
    ) -> None:
        """POST ``body`` to ``path``; ``token`` goes in ``X-Ambient-Session-Token`` (no header
        when None). Raises :class:`RunnerCallError` saying what went wrong."""
        if self._http is None:
            self._http = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=RUNNER_CALL_TIMEOUT)
            )
        url = self.base_url(namespace, session, port) + path
        headers = {SESSION_TOKEN_HEADER: token} if token is not None else {}
        try:
            async with self._http.post(url, json=body, headers=headers) as response:
                if response.status >= 300:
                    text = (await response.text())[:200]
                    raise RunnerCallError(f"POST {path}: HTTP {response.status} {text}".strip())
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise RunnerCallError(f"POST {path}: {type(exc).__name__}: {exc}") from exc

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None
