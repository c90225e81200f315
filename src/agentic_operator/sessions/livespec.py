"""Spec changes while a runner is running: repositories and workflow pushed to the runner.

As upstream does, when a Running session's ``spec.repos`` or ``spec.activeWorkflow`` change, the
operator tells the runner over its HTTP API (``POST /repos/add``, ``/repos/remove``,
``/workflow`` on the AG-UI Service's ``agui`` port) and records what it applied in
``status.reconciledRepos`` / ``status.reconciledWorkflow``.

The runner got its repositories and workflow at start from the Job's environment (``REPOS_JSON``,
``ACTIVE_WORKFLOW_*``): when a run starts (row A6) that environment is recorded as what it has,
and later changes send only the difference. The workflow is pushed once more when the runner is
up (the deferred push: the runner answers "already active" when its environment names it), and a
push that fails is retried: after 5 s while the failure is young (the runner is still starting),
then after as long as it has lasted, up to 5 minutes. A repository the runner did not take is
recorded ``Failed``, never ``Ready``.
Everything here is pure (rows A6 and A7): baselines, diffs, the calls to make, and the status
that records their outcome; the executor makes the calls (:class:`.runner.RunnerClient`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, NamedTuple

from agentic_operator.kube.resources import Obj
from agentic_operator.sessions import model
from agentic_operator.sessions.model import RUNNER_CONTAINER
from agentic_operator.sessions.observe import Observation
from agentic_operator.sessions.plan import (
    CallRunner,
    Event,
    Plan,
    RunnerCall,
    StatusEdit,
    WriteStatus,
)
from agentic_operator.sessions.status import find_condition, now_rfc3339, parse_time

RETRY_MIN = 5.0
"""Seconds before a push the runner did not take is tried again, while the failure is young."""
RETRY_MAX = 300.0
"""The longest wait between two tries of a push that keeps failing."""

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
    """Valid entries, one per URL: a later entry of the same URL wins (in the first one's
    place); the branch defaults to ``main``."""
    by_url: dict[str, Repo] = {}
    for item in items if isinstance(items, list) else ():
        if not isinstance(item, dict) or not isinstance(item.get("url"), str) or not item["url"]:
            continue
        branch = item.get("branch") if isinstance(item.get("branch"), str) else ""
        status = FAILED if item.get("status") == FAILED else READY
        by_url[item["url"]] = Repo(item["url"], branch or "main", status)
    return list(by_url.values())


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
    return job_repos(job)


def job_repos(job: Obj | None) -> list[Repo]:
    """The repositories a run's runner was started with (its Job's REPOS_JSON)."""
    raw = _job_env(job).get("REPOS_JSON")
    if not raw:
        return []
    try:
        return _repos(json.loads(raw))
    except ValueError:
        return []


def repo_changes(baseline: list[Repo], desired: list[Repo]) -> tuple[list[Repo], list[Repo]]:
    """``(to_add, to_remove)``: repos that are new, on another branch (the runner checks the new
    one out) or failed before; and repos no longer wanted (by URL)."""
    have = {r.url: r for r in baseline}
    wanted = {r.url for r in desired}
    to_add = [
        r
        for r in desired
        if r.url not in have or have[r.url].status == FAILED or have[r.url].branch != r.branch
    ]
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


def workflow_pending(obs: Observation) -> bool:
    """A workflow is wanted and the runner has not confirmed it (``WorkflowReconciled`` absent or
    not True): the deferred push, tried until the runner answers."""
    if desired_workflow(obs.session) is None:
        return False
    cond = find_condition(obs.status.get("conditions"), model.COND_WORKFLOW_RECONCILED)
    return cond is None or cond.get("status") != model.COND_TRUE


def service_port(service: Obj | None) -> int:
    """The port of the AG-UI Service's ``agui`` port, else 8001."""
    for port in ((service or {}).get("spec") or {}).get("ports") or ():
        if port.get("name") == model.AGUI_PORT_NAME and isinstance(port.get("port"), int):
            return int(port["port"])
    return model.AGUI_PORT


# --- row A6: what a starting runner has ----------------------------------------------------------


def record_start(st: StatusEdit, obs: Observation, job: Obj | None) -> None:
    """Into the status that records a run's start: the runner has the Job's repositories (the
    init container cloned them before it started), so they are ``reconciledRepos``; without a
    workflow that is settled too, with one ``WorkflowReconciled`` waits for the deferred push."""
    now = now_rfc3339(obs.now)
    repos = job_repos(job)
    entries = [
        {"url": r.url, "branch": r.branch, "name": r.name, "status": READY, "clonedAt": now}
        for r in repos
    ]
    st.set(reconciledRepos=entries or None)
    if repos:
        message = f"Reconciled {len(repos)} repos (added 0, removed 0, branch changed 0)"
        st.condition(model.COND_REPOS_RECONCILED, model.COND_TRUE, model.REASON_RECONCILED, message)
    else:
        st.condition(
            model.COND_REPOS_RECONCILED, model.COND_TRUE, model.REASON_NO_REPOS, "No repositories"
        )
    if desired_workflow(obs.session) is None:
        st.set(reconciledWorkflow=None)
        st.condition(
            model.COND_WORKFLOW_RECONCILED,
            model.COND_TRUE,
            model.REASON_NOT_CONFIGURED,
            "No workflow",
        )
    else:
        st.condition(
            model.COND_WORKFLOW_RECONCILED,
            model.COND_FALSE,
            model.REASON_PENDING,
            "Waiting for the runner to confirm the workflow",
        )


# --- row A7: push the change, record what the runner took ----------------------------------------


def push(obs: Observation, row: str, job: Obj | None) -> Plan:
    """The runner calls for a spec change of a Running session (or the deferred workflow push);
    the status follows their outcome.

    One status write records what was applied (``reconciledRepos``, ``reconciledWorkflow``, their
    conditions) and, when everything went through, ``observedGeneration`` and ``Reconciled=True``.
    A failed call leaves ``Reconciled=False`` and is tried again (:func:`retry_after`; a failed
    repo stays in ``reconciledRepos`` as Failed until it goes through), or at once when the spec
    changes again.
    """
    desired = desired_repos(obs.session)
    baseline = baseline_repos(obs.session, job)
    to_add, to_remove = repo_changes(baseline, desired)
    want = desired_workflow(obs.session)
    push_workflow = want is not None and (
        want != baseline_workflow(obs.session, job) or workflow_pending(obs)
    )
    calls = [
        *(
            RunnerCall("/repos/add", {"url": r.url, "branch": r.branch, "name": r.name}, r.url)
            for r in to_add
        ),
        *(RunnerCall("/repos/remove", {"name": r.name}, r.url) for r in to_remove),
    ]
    if want is not None and push_workflow:
        body = {"gitUrl": want.git_url, "branch": want.branch, "path": want.path}
        calls.append(RunnerCall("/workflow", body, "workflow"))
    changes = RepoChanges(baseline, desired, to_add, to_remove)

    def record(errors: Sequence[str | None]) -> Plan:
        return _recorded(obs, row, changes, want, tuple(zip(calls, errors, strict=True)))

    return Plan(row, (CallRunner(tuple(calls), record, service_port(obs.service)),))


class RepoChanges(NamedTuple):
    baseline: list[Repo]
    desired: list[Repo]
    to_add: list[Repo]
    to_remove: list[Repo]


Outcome = tuple[tuple[RunnerCall, str | None], ...]


def _recorded(
    obs: Observation, row: str, changes: RepoChanges, want: Workflow | None, outcome: Outcome
) -> Plan:
    """The plan that records the calls' ``outcome``: one status write, Events, and a retry."""
    st = StatusEdit(obs.session, obs.now)
    now = now_rfc3339(obs.now)
    failed = {c.label for c, err in outcome if err is not None and c.path != "/workflow"}
    problems = [_problem(c, err) for c, err in outcome if err is not None]
    pushed = [_pushed(c) for c, err in outcome if err is None]

    _record_repos(st, changes, outcome, failed, now)
    workflow_error = next((e for c, e in outcome if c.path == "/workflow"), None)
    _record_workflow(st, want, outcome, workflow_error, now)

    if not problems:
        st.set(observedGeneration=(obs.session.get("metadata") or {}).get("generation"))
        st.condition(
            model.COND_RECONCILED,
            model.COND_TRUE,
            model.REASON_SPEC_APPLIED,
            "Spec applied to the running session",
        )
    else:
        reason = (
            model.REASON_REPO_RECONCILIATION_FAILED
            if failed
            else model.REASON_WORKFLOW_RECONCILIATION_FAILED
        )
        st.condition(model.COND_RECONCILED, model.COND_FALSE, reason, "; ".join(problems))
    events: list[Event] = []
    if pushed:
        events.append(Event("Normal", model.REASON_SPEC_APPLIED, "Runner: " + ", ".join(pushed)))
    if problems:
        events.append(Event("Warning", model.REASON_UPDATE_FAILED, "; ".join(problems)))
    write = WriteStatus(st.new) if st.changed else None
    return Plan(
        row,
        (write,) if write is not None else (),
        effects=tuple(events),
        requeue_after=retry_after(st) if problems else None,
    )


def retry_after(st: StatusEdit) -> float:
    """When to try a failed push again: :data:`RETRY_MIN` while the failure is young, then as
    long as it has lasted (so the tries thin out), at most :data:`RETRY_MAX`. The failure's age is
    the ``lastTransitionTime`` of the oldest of its False conditions, so no count is kept."""
    since = [
        parse_time(c.get("lastTransitionTime"))
        for c in st.new.get("conditions") or ()
        if c.get("type")
        in (model.COND_RECONCILED, model.COND_REPOS_RECONCILED, model.COND_WORKFLOW_RECONCILED)
        and c.get("status") == model.COND_FALSE
    ]
    times = [t for t in since if t is not None]
    age = (st.now - min(times)).total_seconds() if times else 0.0
    return min(RETRY_MAX, max(RETRY_MIN, age))


def _record_repos(
    st: StatusEdit, changes: RepoChanges, outcome: Outcome, failed: set[str], now: str
) -> None:
    """``status.reconciledRepos`` and the ``ReposReconciled`` condition after the repo calls.

    The entries are the desired repos plus those whose removal failed (the runner still has them),
    each Ready or Failed, so a failed one is tried again against the next baseline. ``clonedAt``
    is now for a repo just added (or moved to another branch) and kept from the previous entry
    otherwise (Ready entries only).
    """
    previous = {
        e.get("url"): e
        for e in st.old.get("reconciledRepos") or ()
        if isinstance(e, dict) and e.get("url")
    }
    added = {r.url for r in changes.to_add}
    entries: list[Obj] = []
    for repo in [*changes.desired, *(r for r in changes.to_remove if r.url in failed)]:
        entry: Obj = {"url": repo.url, "branch": repo.branch, "name": repo.name}
        entry["status"] = FAILED if repo.url in failed else READY
        cloned = now if repo.url in added else previous.get(repo.url, {}).get("clonedAt")
        if cloned and entry["status"] == READY:
            entry["clonedAt"] = cloned
        entries.append(entry)
    # An empty list, not a deleted field: without it the Job's REPOS_JSON would be the baseline
    # again, and repos removed since would be "removed" once more.
    st.set(reconciledRepos=entries)
    if not failed:
        had = {r.url for r in changes.baseline}
        moved = sum(1 for r in changes.to_add if r.url in had)
        message = (
            f"Reconciled {len(changes.desired)} repos (added {len(changes.to_add) - moved}, "
            f"removed {len(changes.to_remove)}, branch changed {moved})"
        )
        reason = model.REASON_RECONCILED if changes.desired else model.REASON_NO_REPOS
        if not changes.desired:
            message = "No repositories" + (
                f" (removed {len(changes.to_remove)})" if changes.to_remove else ""
            )
        st.condition(model.COND_REPOS_RECONCILED, model.COND_TRUE, reason, message)
    else:
        repo_problems = [_problem(c, e) for c, e in outcome if e and c.path != "/workflow"]
        st.condition(
            model.COND_REPOS_RECONCILED,
            model.COND_FALSE,
            model.REASON_UPDATE_FAILED,
            "; ".join(repo_problems),
        )


def _record_workflow(
    st: StatusEdit, want: Workflow | None, outcome: Outcome, error: str | None, now: str
) -> None:
    if want is None:
        st.set(reconciledWorkflow=None)
        st.condition(
            model.COND_WORKFLOW_RECONCILED,
            model.COND_TRUE,
            model.REASON_NOT_CONFIGURED,
            "No workflow",
        )
        return
    active = f"Workflow {want.git_url}@{want.branch} active"
    if error is not None:
        st.condition(
            model.COND_WORKFLOW_RECONCILED, model.COND_FALSE, model.REASON_UPDATE_FAILED, error
        )
        return
    if any(c.path == "/workflow" for c, _ in outcome):
        body = {"gitUrl": want.git_url, "branch": want.branch, "path": want.path}
        st.set(reconciledWorkflow={**body, "status": ACTIVE, "appliedAt": now})
    st.condition(model.COND_WORKFLOW_RECONCILED, model.COND_TRUE, model.REASON_RECONCILED, active)


def _pushed(call: RunnerCall) -> str:
    if call.path == "/repos/add":
        return f"added {call.body['name']}@{call.body['branch']}"
    if call.path == "/repos/remove":
        return f"removed {call.body['name']}"
    return f"workflow {call.body['gitUrl']}@{call.body['branch']}"


def _problem(call: RunnerCall, error: str | None) -> str:
    if call.path == "/repos/add":
        return f"adding {call.label}: {error}"
    if call.path == "/repos/remove":
        return f"removing {call.label}: {error}"
    return f"workflow {call.body['gitUrl']}: {error}"
