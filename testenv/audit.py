"""The API server's audit log, for tests that count writes: the policy and a reader.

``ControlPlane(audit=True)`` starts kube-apiserver with :data:`POLICY` and
``--audit-log-path=<log_dir>/kube-apiserver-audit.log``. The policy is fixed here, not a
parameter, because of what it must never do: record at level ``Request`` or
``RequestResponse``. Request bodies of TokenRequests and Secrets, and response bodies, hold the
tokens that ``tests/e2e/test_log_hygiene.py`` searches every ``*.log`` of the control plane for.
``Metadata`` records who (user, user agent), what (verb, resource, namespace, name), when
(received, completed, microseconds) and the answer's code, and nothing of the bodies.

Only writes by users outside ``system:masters`` are recorded: the operator, runner and
session-trigger ServiceAccounts, not the admin's kubectl nor the controller-manager, scheduler and
kwok (their pod and node status writes would make up nearly all of the log).
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

WRITE_VERBS = ("create", "update", "patch", "delete", "deletecollection")

POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
  - level: None
    userGroups: ["system:masters"]
  - level: Metadata
    verbs: ["create", "update", "patch", "delete", "deletecollection"]
  - level: None
"""
"""Level Metadata only (see the module docstring); one event per write, at ResponseComplete."""

Event = dict[str, Any]


def read_events(path: Path) -> list[Event]:
    """Every event of the log (one JSON object a line); a torn last line is skipped."""
    events: list[Event] = []
    with path.open(encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                events.append(json.loads(line))
            except ValueError:
                continue
    return events


def parse_time(value: str) -> float:
    """An RFC 3339 time (the audit log's and a Lease's MicroTime) as Unix seconds."""
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def writes(
    events: Iterable[Event], *, namespace: str | None = None, user: str | None = None
) -> Iterator[Event]:
    """Completed write events, optionally only in ``namespace`` and/or by ``user``."""
    for event in events:
        ref = event.get("objectRef") or {}
        if event.get("stage") != "ResponseComplete" or event.get("verb") not in WRITE_VERBS:
            continue
        if namespace is not None and ref.get("namespace") != namespace:
            continue
        if user is not None and (event.get("user") or {}).get("username") != user:
            continue
        yield event


def created(events: Iterable[Event], resource: str, namespace: str) -> Counter[str]:
    """Successful creates (code 201) of ``resource`` in ``namespace``, by object name."""
    return Counter(
        str((e.get("objectRef") or {}).get("name"))
        for e in writes(events, namespace=namespace)
        if e.get("verb") == "create"
        and (e.get("objectRef") or {}).get("resource") == resource
        and not (e.get("objectRef") or {}).get("subresource")
        and (e.get("responseStatus") or {}).get("code") == 201
    )
