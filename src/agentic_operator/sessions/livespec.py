"""Spec changes while a runner is running: repositories and workflow pushed to the runner.

Upstream (spec §2.14): when a Running session's ``spec.repos`` or ``spec.activeWorkflow`` change,
the operator tells the runner over its HTTP API (``POST /repos/add``, ``/repos/remove``,
``/workflow`` on the AG-UI Service, port 8001) and records what it applied in
``status.reconciledRepos`` / ``status.reconciledWorkflow``.

The runner got its repositories and workflow at start from the Job's environment (``REPOS_JSON``,
``ACTIVE_WORKFLOW_*``), so until the operator has recorded anything, that environment is the
baseline to diff against: a first change only sends what changed, never the whole list again.
This module is the pure part: baselines, diffs and the status entries; the reconciler makes the
calls (:class:`RunnerClient`).
"""

from __future__ import annotations

import json
import logging
from typing import Any, NamedTuple

import aiohttp

from agentic_operator.kube.resources import Obj
from agentic_operator.sessions.model import RUNNER_CONTAINER

log = logging.getLogger(__name__)

RUNNER_CALL_TIMEOUT = 10.0
"""Seconds per call to the runner (upstream's value)."""

READY = "Ready"
FAILED = "Failed"
ACTIVE = "Active"


class Repo(NamedTuple):
    url: str
    branch: str
    status: str = READY

    @property
    def name(self) -> str:
        """What the runner calls it: the URL's last path segment without ``.git``."""
        return repo_name(self.url)


class Workflow(NamedTuple):
    git_url: str
    branch: str
    path: str


def repo_name(url: str) -> str:
    last = url.rstrip("/").rsplit("/", 1)[-1]
    last = last.rsplit(":", 1)[-1]  # git@host:repo.git
    return last.removesuffix(".git")


def _repos(items: Any) -> list[Repo]:
    out: list[Repo] = []
    seen: set[str] = set()
    for item in items if isinstance(items, list) else ():
        if not isinstance(item, dict) or not isinstance(item.get("url"), str) or not item["url"]:
            continue
        if item["url"] in seen:
            continue
        seen.add(item["url"])
        branch = item.get("branch") if isinstance(item.get("branch"), str) else ""
        status = FAILED if item.get("status") == FAILED else READY
        out.append(Repo(item["url"], branch or "main", status))
    return out


def desired_repos(session: Obj) -> list[Repo]:
    return _repos((session.get("spec") or {}).get("repos"))


def _job_env(job: Obj | None) -> dict[str, str]:
    """The plain env values of the Job's runner container."""
    containers = (((job or {}).get("spec") or {}).get("template") or {}).get("spec", {})
    for container in containers.get("containers") or ():
        if container.get("name") == RUNNER_CONTAINER:
            return {
                e["name"]: e["value"]
                for e in container.get("env") or ()
                if isinstance(e.get("value"), str)
            }
    return {}


def baseline_repos(session: Obj, job: Obj | None) -> list[Repo]:
    """What the runner has: ``status.reconciledRepos`` once written, else the Job's REPOS_JSON."""
    status = session.get("status") or {}
    if "reconciledRepos" in status:
        return _repos(status.get("reconciledRepos"))
    raw = _job_env(job).get("REPOS_JSON")
    if not raw:
        return []
    try:
        return _repos(json.loads(raw))
    except ValueError:
        return []


def repo_changes(baseline: list[Repo], desired: list[Repo]) -> tuple[list[Repo], list[Repo]]:
    """``(to_add, to_remove)``: new or previously failed repos, and repos no longer wanted."""
    have = {r.url: r for r in baseline}
    wanted = {r.url for r in desired}
    to_add = [r for r in desired if r.url not in have or have[r.url].status == FAILED]
    to_remove = [r for r in baseline if r.url not in wanted]
    return to_add, to_remove


def desired_workflow(session: Obj) -> Workflow | None:
    wf = (session.get("spec") or {}).get("activeWorkflow")
    if not isinstance(wf, dict) or not isinstance(wf.get("gitUrl"), str) or not wf["gitUrl"]:
        return None
    branch = wf.get("branch") if isinstance(wf.get("branch"), str) else ""
    path = wf["path"] if isinstance(wf.get("path"), str) else ""
    return Workflow(wf["gitUrl"], branch or "main", path)


def baseline_workflow(session: Obj, job: Obj | None) -> Workflow | None:
    """The applied workflow: ``status.reconciledWorkflow`` once written (unless it failed), else
    the Job's ACTIVE_WORKFLOW_* environment."""
    status = session.get("status") or {}
    if "reconciledWorkflow" in status:
        wf = status.get("reconciledWorkflow") or {}
        if wf.get("status") == FAILED or not wf.get("gitUrl"):
            return None
        return Workflow(
            str(wf["gitUrl"]), str(wf.get("branch") or "main"), str(wf.get("path") or "")
        )
    env = _job_env(job)
    if not env.get("ACTIVE_WORKFLOW_GIT_URL"):
        return None
    return Workflow(
        env["ACTIVE_WORKFLOW_GIT_URL"],
        env.get("ACTIVE_WORKFLOW_BRANCH") or "main",
        env.get("ACTIVE_WORKFLOW_PATH", ""),
    )


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
