"""The event handlers registered on an informer, and the delivery of events to them.

Delivery is synchronous and in registration order, on the event loop, right after the informer's
store changed. Each callback is isolated: an exception is logged and the next handler (and the
informer's watch) carries on, so one broken handler cannot stop a cache the others depend on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import NamedTuple

from agentic_operator.kube.resources import Obj

OnAdd = Callable[[Obj], None]
OnUpdate = Callable[[Obj, Obj], None]
OnDelete = Callable[[Obj], None]


class _Handler(NamedTuple):
    on_add: OnAdd | None
    on_update: OnUpdate | None
    on_delete: OnDelete | None


class Handlers:
    """The callbacks of one informer; ``name`` and ``log`` say whose, when a callback fails.

    :attr:`wants_old` and :attr:`has_add` tell the informer what its hot path may skip: the old
    object of an update (only update handlers read it) and decoding an added object that no add
    handler will see.
    """

    def __init__(self, name: str, log: logging.Logger) -> None:
        self.name = name
        self._log = log
        self._handlers: list[_Handler] = []
        self.wants_old = False
        """Some handler has ``on_update``."""
        self.has_add = False
        """Some handler has ``on_add``."""

    def add(
        self, on_add: OnAdd | None, on_update: OnUpdate | None, on_delete: OnDelete | None
    ) -> None:
        self._handlers.append(_Handler(on_add, on_update, on_delete))
        self.wants_old = any(h.on_update is not None for h in self._handlers)
        self.has_add = any(h.on_add is not None for h in self._handlers)

    def notify_add(self, obj: Obj) -> None:
        for h in self._handlers:
            if h.on_add is not None:
                self.call(h.on_add, obj)

    def notify_update(self, old: Obj, new: Obj) -> None:
        for h in self._handlers:
            if h.on_update is not None:
                self.call(h.on_update, old, new)

    def notify_delete(self, obj: Obj) -> None:
        for h in self._handlers:
            if h.on_delete is not None:
                self.call(h.on_delete, obj)

    def call(self, fn: Callable[..., None], *args: Obj) -> None:
        """Run one callback; an exception is logged with its traceback and goes no further."""
        try:
            fn(*args)
        except Exception:
            self._log.exception("%s: event handler %r failed", self.name, fn)
