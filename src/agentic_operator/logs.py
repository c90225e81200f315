"""Logging set-up: one JSON object per line by default, readable lines with DEV_MODE=true."""

from __future__ import annotations

import logging
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import orjson

_RECONCILE: ContextVar[tuple[tuple[str, str], ...]] = ContextVar("reconcile", default=())


@contextmanager
def reconcile_context(controller: str, key: str) -> Iterator[str]:
    """Tag every log line written while the block runs (in this task, and in tasks it starts)
    with ``controller``, ``key`` and a fresh ``reconcile_id``, which it yields; controller-runtime
    gives each reconcile's logger the same three values."""
    reconcile_id = uuid.uuid4().hex
    token = _RECONCILE.set(
        (("controller", controller), ("key", key), ("reconcile_id", reconcile_id))
    )
    try:
        yield reconcile_id
    finally:
        _RECONCILE.reset(token)


class ReconcileContextFilter(logging.Filter):
    """Adds the fields of :func:`reconcile_context` to records logged inside one (a field the
    call passed through ``extra=`` itself is left as it is)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in _RECONCILE.get():
            if name not in record.__dict__:
                setattr(record, name, value)
        return True


# Attributes every LogRecord has; anything else was passed through ``extra=`` and is emitted.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """Structured logs for log collectors: ts, level, logger, msg, extra fields, exception."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["error"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


class DevFormatter(logging.Formatter):
    """Human-readable lines with the ``extra=`` fields appended as key=value."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-5s %(name)s: %(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = [
            f"{k}={v}"
            for k, v in record.__dict__.items()
            if k not in _STANDARD and not k.startswith("_")
        ]
        return f"{line} {' '.join(extras)}" if extras else line


def setup_logging(*, dev_mode: bool, level: int | None = None) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(DevFormatter() if dev_mode else JsonFormatter())
    handler.addFilter(ReconcileContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level if level is not None else (logging.DEBUG if dev_mode else logging.INFO))
    # aiohttp's access log would log every probe and scrape; the libraries' debug output is noise.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    for noisy in ("asyncio", "kubernetes_asyncio"):
        logging.getLogger(noisy).setLevel(logging.INFO)
