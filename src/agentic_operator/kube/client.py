"""A thin async client for the Kubernetes API on plain dicts.

Request/response calls go through a keep-alive HTTP/1.1 pool of our own (:mod:`.pool`: answers
framed by llhttp through httptools, Go's re-send rule), which costs less CPU per request than
aiohttp (docs/benchmarks.md, "One HTTP stack"). Watches go through aiohttp, and so does everything
when the kubeconfig names a proxy. Bodies are encoded and decoded with orjson, and objects stay
``dict``s (no model classes): decoding a watch event this way costs microseconds instead of the
hundreds of microseconds a model-based client spends.

How every request is throttled, authorized, counted, typed and repeated: :mod:`.transport`.
"""

from __future__ import annotations

import builtins
import contextlib
import logging
from collections.abc import AsyncGenerator, Callable, Mapping
from typing import Any, Literal, Unpack

import aiohttp

from agentic_operator.clock import Clock
from agentic_operator.kube.codec import decode_watch_line
from agentic_operator.kube.config import KubeConfig, load_config
from agentic_operator.kube.errors import Gone, error_from_status
from agentic_operator.kube.pool import ConnectionPool
from agentic_operator.kube.resources import Obj, Resource
from agentic_operator.kube.transport import Transport
from agentic_operator.kube.watch import (
    WatchLineSplitter,
    WatchOptions,
    read_lines,
    watch_query,
    watch_timeout,
)

__all__ = ["ApiClient", "PatchType", "WatchLineSplitter", "WatchOptions", "connect", "from_config"]

log = logging.getLogger(__name__)

PatchType = Literal["merge", "json", "strategic", "apply"]

_PATCH_CONTENT_TYPES: dict[str, str] = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    # Server-side apply accepts YAML, and JSON is YAML.
    "apply": "application/apply-patch+yaml",
}

_VERB_BY_METHOD = {
    "GET": "get",
    "POST": "create",
    "PUT": "update",
    "PATCH": "patch",
    "DELETE": "delete",
}


def _path_resource(path: str) -> str:
    """The metrics ``resource`` label for a raw API path (``plural`` or ``plural.group``)."""
    parts = [p for p in path.split("?", 1)[0].split("/") if p]
    if parts[:1] == ["api"] and len(parts) >= 3:
        group, rest = "", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 4:
        group, rest = parts[1], parts[3:]
    else:
        return "nonresource"
    if rest[0] == "namespaces" and len(rest) >= 3:
        rest = rest[2:]
    plural = rest[0]
    return f"{plural}.{group}" if group else plural


class ApiClient(Transport):
    """Async Kubernetes API client over raw dicts. Create it with :func:`from_config`.

    Built directly on an aiohttp session (as tests do), every request goes through aiohttp;
    :func:`from_config` adds the keep-alive pool for request/response calls.
    """

    # -- typed verbs -----------------------------------------------------------------------------

    async def get(
        self,
        res: Resource,
        name: str,
        namespace: str | None = None,
        *,
        subresource: str | None = None,
    ) -> Obj:
        path = res.path(namespace, name, subresource)
        return await self._call("get", str(res), "GET", path)

    async def list(
        self,
        res: Resource,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
        continue_: str | None = None,
        resource_version: str | None = None,
    ) -> Obj:
        """One page of a LIST: the raw ``<Kind>List`` with ``metadata.continue`` if more remain."""
        params: dict[str, str] = {}
        if label_selector:
            params["labelSelector"] = label_selector
        if field_selector:
            params["fieldSelector"] = field_selector
        if limit:
            params["limit"] = str(limit)
        if continue_:
            params["continue"] = continue_
        if resource_version is not None:
            params["resourceVersion"] = resource_version
        return await self._call("list", str(res), "GET", res.path(namespace), params=params)

    async def list_all(
        self,
        res: Resource,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        page_size: int = 500,
        on_page: Callable[[builtins.list[Obj]], None] | None = None,
        on_restart: Callable[[], None] | None = None,
    ) -> tuple[builtins.list[Obj], str]:
        """Every object (following ``continue`` tokens) and the list's resourceVersion.

        Items get ``apiVersion``/``kind`` filled in (a List omits them per item) so they look like
        objects from GET or WATCH. If a continue token expires between pages (410), the list is
        restarted once without pagination, as client-go's pager does.

        With ``on_page`` each page is handed over as it arrives and not accumulated (the returned
        list is empty): a consumer that keeps a compact form never holds every decoded object at
        once. ``on_restart`` is called when the list starts over after an expired token.
        """
        items: builtins.list[Obj] = []
        token: str | None = None
        limit: int | None = page_size
        while True:
            try:
                page = await self.list(
                    res,
                    namespace,
                    label_selector=label_selector,
                    field_selector=field_selector,
                    limit=limit,
                    continue_=token,
                )
            except Gone:
                if token is None:
                    raise
                log.info("continue token for %s expired; listing without pagination", res)
                items, token, limit = [], None, None
                if on_restart is not None:
                    on_restart()
                continue
            page_items = page.get("items") or []
            for item in page_items:
                item.setdefault("apiVersion", res.api_version)
                item.setdefault("kind", res.kind)
            if on_page is not None:
                on_page(page_items)
            else:
                items.extend(page_items)
            meta = page.get("metadata") or {}
            token = meta.get("continue") or None
            if token is None or limit is None:
                return items, str(meta.get("resourceVersion") or "")

    async def watch(
        self, res: Resource, namespace: str | None = None, **options: Unpack[WatchOptions]
    ) -> AsyncGenerator[tuple[str, Obj], None]:
        """Stream ``(type, object)`` events until the server ends the watch.

        Types are ADDED, MODIFIED, DELETED and BOOKMARK; an ERROR event raises its mapped
        :class:`ApiError` (a 410 raises :class:`Gone`). Malformed lines are logged and skipped.
        Timeouts and errors of the stream are those of :meth:`watch_lines`. Use with
        ``contextlib.aclosing`` to release the connection when stopping early.
        """
        lines = self.watch_lines(res, namespace, **options)
        async with contextlib.aclosing(lines):
            async for line in lines:
                event = decode_watch_line(line)
                if event is None:
                    continue
                if event[0] == "ERROR":
                    raise error_from_status(0, event[1])
                yield event

    async def watch_lines(
        self, res: Resource, namespace: str | None = None, **options: Unpack[WatchOptions]
    ) -> AsyncGenerator[bytes, None]:
        """Stream the raw watch event lines (JSON, newline removed) until the server ends the watch.

        For callers that decode events themselves (the informer, see :mod:`.codec`). If no byte
        arrives for ``inactivity_timeout`` seconds (default ``timeout_seconds + 30``), the stream
        is presumed dead and :class:`RequestTimeout` is raised, so the caller re-watches instead of
        hanging on a half-open connection; a broken stream raises :class:`TransportError`.
        """
        params, idle = watch_query(options)
        resource = str(res)
        response = await self._send_stream(
            "watch",
            resource,
            res.path(namespace),
            params=params,
            client_timeout=watch_timeout(idle),
        )
        lines = read_lines(response, resource, idle)
        async with contextlib.aclosing(lines):
            async for line in lines:
                yield line

    async def create(
        self,
        res: Resource,
        body: Obj,
        namespace: str | None = None,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
        field_manager: str | None = None,
    ) -> Obj:
        """POST ``body``. With a ``subresource`` (e.g. ``token``, ``eviction``) the object's name is
        taken from ``body.metadata.name``."""
        name = (body.get("metadata") or {}).get("name") if subresource else None
        params = self._write_params(dry_run, field_manager)
        path = res.path(namespace, name, subresource)
        return await self._call("create", str(res), "POST", path, params=params, body=body)

    async def replace(
        self,
        res: Resource,
        name: str,
        body: Obj,
        namespace: str | None = None,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
        field_manager: str | None = None,
    ) -> Obj:
        """PUT: an optimistic update; a stale ``metadata.resourceVersion`` raises Conflict."""
        params = self._write_params(dry_run, field_manager)
        path = res.path(namespace, name, subresource)
        return await self._call("update", str(res), "PUT", path, params=params, body=body)

    async def patch(
        self,
        res: Resource,
        name: str,
        body: Obj | builtins.list[Obj],
        namespace: str | None = None,
        *,
        patch_type: PatchType = "merge",
        subresource: str | None = None,
        field_manager: str | None = None,
        force: bool = False,
        dry_run: bool = False,
    ) -> Obj:
        """PATCH with a merge, JSON (a list of operations), strategic or server-side apply patch.

        Server-side apply needs ``field_manager``; ``force`` takes over conflicting fields.
        """
        if patch_type not in _PATCH_CONTENT_TYPES:
            raise ValueError(f"unknown patch type {patch_type!r}")
        if patch_type == "apply" and not field_manager:
            raise ValueError("server-side apply needs a field_manager")
        params = self._write_params(dry_run, field_manager)
        if patch_type == "apply" and force:
            params["force"] = "true"
        return await self._call(
            "patch",
            str(res),
            "PATCH",
            res.path(namespace, name, subresource),
            params=params,
            body=body,
            content_type=_PATCH_CONTENT_TYPES[patch_type],
        )

    async def delete(
        self,
        res: Resource,
        name: str,
        namespace: str | None = None,
        *,
        propagation_policy: Literal["Foreground", "Background", "Orphan"] | None = None,
        preconditions: Mapping[str, str] | None = None,
        grace_period_seconds: int | None = None,
        dry_run: bool = False,
    ) -> Obj | None:
        """DELETE with optional preconditions (``uid``/``resourceVersion``; a mismatch raises
        Conflict). Returns the object when the server still holds it (finalizers, graceful pod
        deletion), None when it answered with a success Status."""
        options: Obj = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if propagation_policy:
            options["propagationPolicy"] = propagation_policy
        if preconditions:
            options["preconditions"] = dict(preconditions)
        if grace_period_seconds is not None:
            options["gracePeriodSeconds"] = grace_period_seconds
        if dry_run:
            options["dryRun"] = ["All"]
        result = await self._call(
            "delete", str(res), "DELETE", res.path(namespace, name), body=options
        )
        return None if result.get("kind") == "Status" else result

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Obj | builtins.list[Obj] | None = None,
        content_type: str | None = None,
    ) -> Obj:
        """Any API call by path (e.g. ``/version``, a subresource the verbs above do not cover).

        GETs are retried like other reads; other methods follow the write rules.
        """
        method = method.upper()
        verb = _VERB_BY_METHOD.get(method, method.lower())
        return await self._call(
            verb,
            _path_resource(path),
            method,
            path,
            params=params,
            body=body,
            content_type=content_type,
        )

    async def server_version(self) -> Obj:
        """``GET /version``: a cheap reachability and credentials check for start-up."""
        return await self._call("get", "nonresource", "GET", "/version")

    @staticmethod
    def _write_params(dry_run: bool, field_manager: str | None) -> dict[str, str]:
        params: dict[str, str] = {}
        if dry_run:
            params["dryRun"] = "All"
        if field_manager:
            params["fieldManager"] = field_manager
        return params


async def from_config(
    config: KubeConfig,
    *,
    qps: float = 100.0,
    burst: int = 200,
    user_agent: str = "agentic-operator",
    request_timeout: float = 30.0,
    max_read_retries: int = 4,
    clock: Clock | None = None,
) -> ApiClient:
    """A client for ``config`` with its own connections (close it with :meth:`ApiClient.close`).

    Request/response calls go through a keep-alive :class:`~.pool.ConnectionPool`; watches and,
    when the kubeconfig names a proxy, everything go through an aiohttp session. Neither limits
    connections: every watch holds one for minutes, and the token bucket, not the pool, bounds the
    request rate.
    """
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    pool = None
    if config.proxy is None:
        pool = ConnectionPool(
            config.host,
            lambda: config.ssl_context,
            server_hostname=config.tls_server_name,
            clock=clock,
        )
    return ApiClient(
        config,
        session,
        qps=qps,
        burst=burst,
        user_agent=user_agent,
        request_timeout=request_timeout,
        max_read_retries=max_read_retries,
        clock=clock,
        pool=pool,
    )


async def connect(
    kubeconfig: str | None = None, *, context: str | None = None, **kw: Any
) -> ApiClient:
    """:func:`load_config` then :func:`from_config` (keyword arguments go to the latter)."""
    return await from_config(await load_config(kubeconfig, context), **kw)
