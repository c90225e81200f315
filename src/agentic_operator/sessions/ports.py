"""What a session reconcile needs from the outside world, as protocols: the API calls
(:class:`~agentic_operator.kube.ApiClient` has them; tests use an in-memory fake), the calls to a
session's runner, and the Event recorder."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, Protocol

from agentic_operator.kube.resources import Obj, Resource
from agentic_operator.sessions import model


class SessionApi(Protocol):
    """The API calls a session reconcile makes (:class:`~agentic_operator.kube.ApiClient` has
    them; tests use an in-memory fake)."""

    async def get(self, res: Resource, name: str, namespace: str | None = None) -> Obj: ...

    async def create(self, res: Resource, body: Obj, namespace: str | None = None) -> Obj: ...

    async def replace(
        self,
        res: Resource,
        name: str,
        body: Obj,
        namespace: str | None = None,
        *,
        subresource: str | None = None,
    ) -> Obj: ...

    async def patch(
        self, res: Resource, name: str, body: Obj, namespace: str | None = None
    ) -> Obj: ...

    async def delete(
        self,
        res: Resource,
        name: str,
        namespace: str | None = None,
        *,
        propagation_policy: Literal["Foreground", "Background", "Orphan"] | None = None,
        preconditions: Mapping[str, str] | None = None,
    ) -> Any: ...

    async def request(self, method: str, path: str, *, body: Obj | None = None) -> Obj: ...


class Runner(Protocol):
    """Calls to a session's runner; a failure raises with a message that says what went wrong.
    ``token`` is sent as ``X-Ambient-Session-Token`` (omitted when None)."""

    async def post(
        self,
        namespace: str,
        session: str,
        path: str,
        body: Obj,
        *,
        token: str | None = None,
        port: int = model.AGUI_PORT,
    ) -> None: ...


class Recorder(Protocol):
    def normal(self, obj: Obj, reason: str, message: str) -> None: ...

    def warning(self, obj: Obj, reason: str, message: str) -> None: ...
