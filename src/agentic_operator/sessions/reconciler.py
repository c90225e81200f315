"""The AgenticSession reconciler: reads the caches, decides, ensures children, writes status.

Level-triggered: every reconcile looks at the whole current state (session, its Job, its runner
pods) and never depends on which event woke it. Rules that make it safe to run concurrently for
different sessions, repeatedly for the same one, and across operator restarts:

* Deterministic child names are the duplicate fence: a second ``create`` of the Job fails with
  AlreadyExists and the existing Job is adopted only if its controller owner is this session (UID)
  and its ``ambient-code.io/run`` annotation is the current run.
* Status is written through the ``/status`` subresource with the resourceVersion it was computed
  from; a 409 means "state moved": requeue, never overwrite.
* The cache may lag our own writes. The object a write returns is put into the cache only when the
  cache still holds the version the write was based on (so a newer watch event is never replaced by
  an older write result), and a negative cache answer ("Job missing") is confirmed with a live GET
  before acting on it.
* A no-op reconcile makes no API call at all: it only reads the caches.

Metrics are recorded after the write that makes them true succeeded, so retries never inflate them.
"""

from __future__ import annotations

import base64
import copy
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from agentic_operator.clock import Clock, RealClock
from agentic_operator.kube.client import ApiClient
from agentic_operator.kube.errors import AlreadyExists, ApiError, Conflict, NotFound
from agentic_operator.kube.resources import (
    AGENTIC_SESSIONS,
    JOBS,
    PERSISTENT_VOLUME_CLAIMS,
    ROLE_BINDINGS,
    ROLES,
    SECRETS,
    SERVICE_ACCOUNTS,
    SERVICES,
    Obj,
    Resource,
    object_key,
)
from agentic_operator.runtime.controller import Result
from agentic_operator.runtime.events import EventRecorder
from agentic_operator.sessions import builders, livespec, model
from agentic_operator.sessions import metrics as m
from agentic_operator.sessions.config import SessionConfig
from agentic_operator.sessions.model import Phase
from agentic_operator.sessions.secrets import copy_plan
from agentic_operator.sessions.status import (
    RunnerObservation,
    now_rfc3339,
    observe_runner,
    parse_rfc3339,
    upsert_condition,
)
from agentic_operator.sessions.validation import validate_session

log = logging.getLogger(__name__)

STOPPING_POLL = 2.0
"""How often a Stopping session re-checks for its Job while the garbage collector removes pods."""
SECRET_RETRY = 5.0
"""Retry interval while a required secret is missing (until the pending timeout fails the run)."""
STALE_JOB_RETRY = 1.0
SPEC_RETRY = 30.0
"""Seconds before a spec change the runner did not take (repos, workflow) is tried again."""


class Cache(Protocol):
    """The read side of an informer store."""

    def get(self, key: str) -> Obj | None: ...


class WritableCache(Cache, Protocol):
    """Stores the reconciler may correct after its own writes (see module docstring)."""

    def replace_if(self, obj: Obj, expected_resource_version: str | None) -> bool: ...

    def remove(self, key: str) -> None: ...


@dataclass
class Caches:
    sessions: WritableCache
    jobs: WritableCache
    services: WritableCache
    namespaces: Cache
    pods_by_session: Callable[[str, str], list[Obj]]
    """(namespace, session name) -> runner pods; an index over the runner-pod informer."""


class _Status:
    """A copy of ``status`` being edited; ``changed`` tells whether a write is needed."""

    def __init__(self, session: Obj, now: datetime) -> None:
        self.old: Obj = session.get("status") or {}
        self.new: Obj = copy.deepcopy(self.old)
        self.now = now

    def set(self, **fields: Any) -> None:
        for k, v in fields.items():
            if v is None:
                self.new.pop(k, None)
            else:
                self.new[k] = v

    def condition(self, type_: str, status: str, reason: str, message: str = "") -> None:
        self.new["conditions"] = upsert_condition(
            self.new.get("conditions") or [], type_, status, reason, message, self.now
        )

    @property
    def changed(self) -> bool:
        return self.new != self.old


class SessionReconciler:
    """``reconcile(key)`` for the ``agenticsession-controller``."""

    def __init__(
        self,
        client: ApiClient,
        caches: Caches,
        config: SessionConfig,
        recorder: EventRecorder,
        *,
        clock: Clock | None = None,
        runner: livespec.RunnerClient | None = None,
    ) -> None:
        self.client = client
        self.caches = caches
        self.cfg = config
        self.events = recorder
        self.clock = clock or RealClock()
        self.runner = runner or livespec.RunnerClient(config.runner_endpoint)

    # ------------------------------------------------------------------ entry point
    async def reconcile(self, key: str) -> Result | None:
        session = self.caches.sessions.get(key)
        if session is None:
            return None  # deleted: the garbage collector removes what it owned
        ns = model.session_namespace(session)
        if self.caches.namespaces.get(ns) is None:
            return None  # not a managed namespace (the namespace watch re-enqueues on change)
        if (session.get("metadata") or {}).get("deletionTimestamp"):
            return None
        phase_label = str((session.get("status") or {}).get("phase") or Phase.PENDING)
        started = time.perf_counter()
        success = "false"
        try:
            result = await self._reconcile(session)
            success = "true"
            return result
        except Conflict as exc:
            if isinstance(exc, AlreadyExists):
                raise
            log.debug("conflict, requeueing", extra={"session": key})
            success = "true"
            return Result(requeue=True)
        except NotFound:
            # The session vanished under us (a status write 404s): nothing left to do.
            success = "true"
            return None
        except ApiError as exc:
            m.SESSION_ERRORS.labels(ns, phase_label, "api_error").inc()
            log.warning("reconcile failed: %s", exc, extra={"session": key})
            raise
        finally:
            m.RECONCILE_DURATION.labels(phase_label, success).observe(time.perf_counter() - started)

    async def _reconcile(self, session: Obj) -> Result | None:
        phase = (session.get("status") or {}).get("phase") or ""
        if phase == "":
            session = await self._initialise(session)
            phase = (session.get("status") or {}).get("phase") or ""
        if phase == Phase.PENDING:
            return await self._pending(session)
        if phase in (Phase.CREATING, Phase.RUNNING):
            return await self._active(session)
        if phase == Phase.STOPPING:
            return await self._stopping(session)
        if phase in model.TERMINAL_PHASES:
            return await self._terminal(session)
        log.warning("unknown phase %r ignored", phase, extra={"session": object_key(session)})
        return None

    # ------------------------------------------------------------------ phases
    async def _initialise(self, session: Obj) -> Obj:
        """T1: empty phase -> Pending, startTime, run 1 (an invalid spec fails in Pending)."""
        st = _Status(session, self.clock.wall())
        st.set(phase=Phase.PENDING, startTime=now_rfc3339(st.now), run=1, completionTime=None)
        st.set(observedGeneration=(session.get("metadata") or {}).get("generation"))
        st.condition(model.COND_READY, model.COND_FALSE, model.REASON_PENDING, "Provisioning")
        updated = await self._write_status(session, st)
        m.SESSIONS_TOTAL.labels(model.session_namespace(session)).inc()
        return updated

    async def _pending(self, session: Obj) -> Result | None:
        ns, name = model.session_namespace(session), model.session_name(session)
        ann = _ann(session)
        if ann.get(model.ANN_DESIRED_PHASE) == model.DESIRED_STOPPED:
            return await self._request_stop(session)

        problems = validate_session(session)
        if problems:
            message = "; ".join(str(p) for p in problems)
            await self._finish(
                session, Phase.FAILED, model.REASON_INVALID_SPEC, message, "invalid_spec"
            )
            return None

        remaining = self._pending_remaining(session)
        if remaining <= 0:
            await self._fail_pending_timeout(session)
            return None

        run = model.session_run(session) or 1
        # Cache only: a miss is normal for a new run, and the create below is the duplicate fence
        # (AlreadyExists -> the live Job is examined), so no GET is spent to confirm it.
        job = self.caches.jobs.get(_key(session, model.job_name(model.session_name(session))))
        if job is not None:
            if _job_run(job) != run or not model.is_owned_by(job, session):
                return await self._remove_stale_job(session, job)
            return await self._to_creating(session, job, adopted=True)

        if not self.cfg.use_vertex and not await self._runner_secret_present(session):
            return Result(requeue_after=min(SECRET_RETRY, remaining))
        if self.cfg.use_vertex and not await self._copy_shared_secret(
            session, model.VERTEX_SECRET, required=True
        ):
            return None
        if self.cfg.langfuse_enabled:
            await self._copy_shared_secret(session, model.LANGFUSE_SECRET, required=False)

        await self._ensure_identity(session)
        await self._ensure_service(session)
        if self.cfg.workspace_pvc:
            await self._create_if_absent(
                PERSISTENT_VOLUME_CLAIMS, builders.build_workspace_pvc(session, self.cfg)
            )
        if self.cfg.google_oauth_client_id:
            await self._create_if_absent(SECRETS, builders.build_oauth_placeholder_secret(session))

        body, skipped = builders.build_job(session, self.cfg, run=run)
        if skipped:
            self.events.warning(
                session,
                "EnvironmentOverrideIgnored",
                "spec.environmentVariables cannot replace operator-provided secret references: "
                + ", ".join(sorted(skipped)),
            )
        try:
            job = await self.client.create(JOBS, body, ns)
        except AlreadyExists:
            job = await self.client.get(JOBS, model.job_name(name), ns)
            if _job_run(job) != run or not model.is_owned_by(job, session):
                return await self._remove_stale_job(session, job)
            return await self._to_creating(session, job, adopted=True)
        except ApiError as exc:
            await self._note_job_creation_failure(session, exc)
            raise
        self.caches.jobs.replace_if(job, None)
        start = _parse_time((session.get("status") or {}).get("startTime"))
        if start is not None:
            m.POD_CREATION.labels(ns).observe(max(0.0, (self.clock.wall() - start).total_seconds()))
        return await self._to_creating(session, job, adopted=False)

    async def _to_creating(self, session: Obj, job: Obj, *, adopted: bool) -> Result | None:
        st = _Status(session, self.clock.wall())
        st.set(phase=Phase.CREATING, observedGeneration=session["metadata"].get("generation"))
        st.condition(
            model.COND_JOB_CREATED,
            model.COND_TRUE,
            model.REASON_JOB_EXISTS if adopted else model.REASON_JOB_CREATED,
            f"Job {job['metadata']['name']} created for run {model.session_run(session) or 1}",
        )
        st.condition(
            model.COND_SECRETS_READY,
            model.COND_TRUE,
            model.REASON_ALL_REQUIRED_SECRETS_FOUND,
            "All required secrets found",
        )
        st.condition(model.COND_READY, model.COND_FALSE, model.REASON_PENDING, "Runner starting")
        session = await self._write_status(session, st)
        if _ann(session).get(model.ANN_DESIRED_PHASE) == model.DESIRED_RUNNING:
            await self._clear_annotations(session, model.ANN_DESIRED_PHASE)
        # The runner may already be done (fast runners, adopted Jobs): evaluate it now.
        return await self._active(session)

    async def _active(self, session: Obj) -> Result | None:
        """Creating and Running: follow the Job and its runner pod."""
        if _ann(session).get(model.ANN_DESIRED_PHASE) == model.DESIRED_STOPPED:
            return await self._request_stop(session)
        job = await self._current_job(session)
        run = model.session_run(session) or 1
        if job is not None and (_job_run(job) != run or not model.is_owned_by(job, session)):
            job = None  # a leftover of another run is not this run's Job
        pods = (
            self.caches.pods_by_session(
                model.session_namespace(session), model.session_name(session)
            )
            if job is not None
            else []
        )
        obs = observe_runner(job, pods)
        phase = (session.get("status") or {}).get("phase")

        if obs.kind == "missing":
            return await self._job_vanished(session)
        if obs.kind == "completed":
            await self._finish(session, Phase.COMPLETED, obs.reason, obs.message, None)
            return None
        if obs.kind == "failed":
            error_type = "timeout" if obs.reason == model.REASON_TIMEOUT else "runner_failed"
            await self._finish(session, Phase.FAILED, obs.reason, obs.message, error_type)
            return None
        if obs.kind == "running":
            if phase != Phase.RUNNING:
                session = await self._to_running(session, obs)
            meta = session["metadata"]
            if meta.get("generation") != (session.get("status") or {}).get("observedGeneration"):
                return await self._apply_live_spec(session, job)
            return None
        # pending: still being scheduled / pulled / started, or exited and awaiting the Job's
        # verdict. Only a run that never started is bound by the pending timeout; a Running one is
        # bound by its Job deadline, and the Job's next update wakes us.
        if phase == Phase.RUNNING:
            return None
        remaining = self._pending_remaining(session)
        if remaining <= 0:
            await self._fail_pending_timeout(session)
            return None
        # PodScheduled is recorded with the next phase change, not in a write of its own.
        return Result(requeue_after=remaining)

    async def _to_running(self, session: Obj, obs: RunnerObservation) -> Obj:
        st = _Status(session, self.clock.wall())
        st.set(phase=Phase.RUNNING)
        if obs.node:
            st.condition(
                model.COND_POD_SCHEDULED,
                model.COND_TRUE,
                model.REASON_SCHEDULED,
                f"Scheduled on {obs.node}",
            )
        st.condition(
            model.COND_RUNNER_STARTED,
            model.COND_TRUE,
            model.REASON_CONTAINER_RUNNING,
            "Runner container is running",
        )
        st.condition(model.COND_READY, model.COND_TRUE, model.REASON_RUNNING, "Session is running")
        session = await self._write_status(session, st)
        start = _parse_time((session.get("status") or {}).get("startTime"))
        if start is not None:
            m.SESSION_STARTUP.labels(model.session_namespace(session)).observe(
                max(0.0, (st.now - start).total_seconds())
            )
        return session

    async def _apply_live_spec(self, session: Obj, job: Obj | None) -> Result | None:
        """Push repo and workflow changes of a Running session to its runner (spec §2.14).

        One status write records what was applied (``reconciledRepos``, ``reconciledWorkflow``,
        their conditions) and, when everything went through, ``observedGeneration`` and
        ``Reconciled=True``. A failed call leaves ``Reconciled=False`` and is retried after
        ``SPEC_RETRY`` (a failed repo stays in ``reconciledRepos`` as Failed until it goes
        through), or at once when the spec changes again.
        """
        ns, name = model.session_namespace(session), model.session_name(session)
        st = _Status(session, self.clock.wall())
        now = now_rfc3339(st.now)
        pushed: list[str] = []
        problems: list[str] = []

        previous = {
            e.get("url"): e
            for e in st.old.get("reconciledRepos") or ()
            if isinstance(e, dict) and e.get("url")
        }
        desired = livespec.desired_repos(session)
        to_add, to_remove = livespec.repo_changes(livespec.baseline_repos(session, job), desired)
        failed: set[str] = set()
        for repo in to_add:
            body = {"url": repo.url, "branch": repo.branch, "name": repo.name}
            try:
                await self.runner.post(ns, name, "/repos/add", body)
                pushed.append(f"added {repo.name}")
            except livespec.RunnerCallError as exc:
                failed.add(repo.url)
                problems.append(f"adding {repo.url}: {exc}")
        for repo in to_remove:
            try:
                await self.runner.post(ns, name, "/repos/remove", {"name": repo.name})
                pushed.append(f"removed {repo.name}")
            except livespec.RunnerCallError as exc:
                failed.add(repo.url)
                problems.append(f"removing {repo.url}: {exc}")
        added = {r.url for r in to_add}
        entries: list[Obj] = []
        for repo in [*desired, *(r for r in to_remove if r.url in failed)]:
            entry: Obj = {"url": repo.url, "branch": repo.branch, "name": repo.name}
            entry["status"] = livespec.FAILED if repo.url in failed else livespec.READY
            cloned = now if repo.url in added else previous.get(repo.url, {}).get("clonedAt")
            if cloned and entry["status"] == livespec.READY:
                entry["clonedAt"] = cloned
            entries.append(entry)
        # An empty list, not a deleted field: without it the Job's REPOS_JSON would be the
        # baseline again, and repos removed since would be "removed" once more.
        st.set(reconciledRepos=entries)
        repos_ok = not failed
        if repos_ok:
            reason = model.REASON_RECONCILED if desired else model.REASON_NO_REPOS
            message = f"{len(desired)} repositories applied" if desired else "No repositories"
            st.condition(model.COND_REPOS_RECONCILED, model.COND_TRUE, reason, message)
        else:
            st.condition(
                model.COND_REPOS_RECONCILED,
                model.COND_FALSE,
                model.REASON_UPDATE_FAILED,
                "; ".join(problems),
            )

        workflow_ok = True
        want = livespec.desired_workflow(session)
        if want is None:
            st.set(reconciledWorkflow=None)
            st.condition(
                model.COND_WORKFLOW_RECONCILED,
                model.COND_TRUE,
                model.REASON_NOT_CONFIGURED,
                "No workflow",
            )
        elif want != livespec.baseline_workflow(session, job):
            body = {"gitUrl": want.git_url, "branch": want.branch, "path": want.path}
            try:
                await self.runner.post(ns, name, "/workflow", body)
                pushed.append(f"workflow {want.git_url}@{want.branch}")
                st.set(reconciledWorkflow={**body, "status": livespec.ACTIVE, "appliedAt": now})
                st.condition(
                    model.COND_WORKFLOW_RECONCILED,
                    model.COND_TRUE,
                    model.REASON_RECONCILED,
                    f"Workflow {want.git_url}@{want.branch} active",
                )
            except livespec.RunnerCallError as exc:
                workflow_ok = False
                problems.append(f"workflow {want.git_url}: {exc}")
                st.condition(
                    model.COND_WORKFLOW_RECONCILED,
                    model.COND_FALSE,
                    model.REASON_UPDATE_FAILED,
                    str(exc),
                )
        else:
            st.condition(
                model.COND_WORKFLOW_RECONCILED,
                model.COND_TRUE,
                model.REASON_RECONCILED,
                f"Workflow {want.git_url}@{want.branch} active",
            )

        if repos_ok and workflow_ok:
            st.set(observedGeneration=session["metadata"].get("generation"))
            st.condition(
                model.COND_RECONCILED,
                model.COND_TRUE,
                model.REASON_SPEC_APPLIED,
                "Spec applied to the running session",
            )
        else:
            reason = (
                model.REASON_REPO_RECONCILIATION_FAILED
                if not repos_ok
                else model.REASON_WORKFLOW_RECONCILIATION_FAILED
            )
            st.condition(model.COND_RECONCILED, model.COND_FALSE, reason, "; ".join(problems))
        session = await self._write_status(session, st)
        if pushed:
            self.events.normal(session, model.REASON_SPEC_APPLIED, "Runner: " + ", ".join(pushed))
        if problems:
            self.events.warning(session, model.REASON_UPDATE_FAILED, "; ".join(problems))
            return Result(requeue_after=SPEC_RETRY)
        return None

    async def _job_vanished(self, session: Obj) -> Result | None:
        """T5/T9: the run's Job disappeared before the run ended: start a new run."""
        ns = model.session_namespace(session)
        m.SESSION_ERRORS.labels(ns, str(session["status"].get("phase")), "job_missing").inc()
        self.events.warning(
            session, model.REASON_JOB_MISSING, "Runner Job disappeared; starting a new run"
        )
        st = self._new_run(session, model.REASON_JOB_MISSING, "Runner Job not found; recreating")
        session = await self._write_status(session, st)
        return await self._pending(session)

    async def _request_stop(self, session: Obj) -> Result | None:
        """Stop from Pending, Creating or Running: delete the Job (with its pods), then Stopping."""
        job = await self._current_job(session)
        if job is None:
            return await self._stopped(session)
        await self._delete_job(session, job, propagation="Foreground")
        st = _Status(session, self.clock.wall())
        st.set(phase=Phase.STOPPING)
        st.condition(
            model.COND_READY, model.COND_FALSE, model.REASON_STOPPING, "Deleting the runner Job"
        )
        await self._write_status(session, st)
        return Result(requeue_after=STOPPING_POLL)

    async def _stopping(self, session: Obj) -> Result | None:
        job = await self._current_job(session)
        if job is None:
            return await self._stopped(session)
        if not (job.get("metadata") or {}).get("deletionTimestamp"):
            await self._delete_job(session, job, propagation="Foreground")
        return Result(requeue_after=STOPPING_POLL)

    async def _stopped(self, session: Obj) -> Result | None:
        st = _Status(session, self.clock.wall())
        st.set(phase=Phase.STOPPED, completionTime=now_rfc3339(st.now))
        st.condition(model.COND_READY, model.COND_FALSE, model.REASON_USER_STOPPED, "Stopped")
        st.condition(
            model.COND_RUNNER_STARTED, model.COND_FALSE, model.REASON_USER_STOPPED, "Stopped"
        )
        session = await self._write_status(session, st)
        await self._clear_annotations(session, model.ANN_DESIRED_PHASE, model.ANN_STOP_REQUESTED_AT)
        await self._cleanup(session)
        return None

    async def _terminal(self, session: Obj) -> Result | None:
        ann = _ann(session)
        if ann.get(model.ANN_DESIRED_PHASE) == model.DESIRED_RUNNING:
            return await self._restart(session)
        if ann.get(model.ANN_DESIRED_PHASE) == model.DESIRED_STOPPED:
            # Already finished: a stop request has nothing left to do but must not linger.
            await self._clear_annotations(
                session, model.ANN_DESIRED_PHASE, model.ANN_STOP_REQUESTED_AT
            )
        await self._cleanup(session)  # idempotent: cache reads only when nothing is left
        return None

    async def _restart(self, session: Obj) -> Result | None:
        """T12 with the intended semantics: new run, fresh startTime, no completionTime."""
        job = await self._current_job(session)
        if job is not None:
            return await self._remove_stale_job(session, job)
        st = self._new_run(session, model.REASON_RESTARTING, "Restarting")
        session = await self._write_status(session, st)
        if model.ANN_START_REQUESTED_AT in _ann(session):
            session = await self._clear_annotations(session, model.ANN_START_REQUESTED_AT)
        # desired-phase=Running stays until the new Job exists (cleared in _to_creating).
        return await self._pending(session)

    def _new_run(self, session: Obj, reason: str, message: str) -> _Status:
        """The status of a new run: Pending, next run number, fresh startTime, no completionTime."""
        st = _Status(session, self.clock.wall())
        st.set(
            phase=Phase.PENDING,
            run=(model.session_run(session) or 1) + 1,
            startTime=now_rfc3339(st.now),
            completionTime=None,
        )
        st.condition(model.COND_READY, model.COND_FALSE, reason, message)
        st.condition(model.COND_JOB_CREATED, model.COND_FALSE, reason, message)
        st.condition(model.COND_RUNNER_STARTED, model.COND_FALSE, reason, "")
        return st

    # ------------------------------------------------------------------ endings
    async def _finish(
        self,
        session: Obj,
        phase: Phase,
        reason: str,
        message: str,
        error_type: str | None,
        *,
        secrets_reason: str | None = None,
    ) -> None:
        if phase in (Phase.COMPLETED, Phase.FAILED) and reason != model.REASON_INVALID_SPEC:
            session = await self._force_interactive(session)
        st = _Status(session, self.clock.wall())
        st.set(
            phase=phase,
            completionTime=now_rfc3339(st.now),
            observedGeneration=session["metadata"].get("generation"),
        )
        st.condition(model.COND_READY, model.COND_FALSE, reason, message)
        if secrets_reason:
            st.condition(model.COND_SECRETS_READY, model.COND_FALSE, secrets_reason, message)
        if phase == Phase.FAILED and reason == model.REASON_INVALID_SPEC:
            st.condition(model.COND_VALID_SPEC, model.COND_FALSE, reason, message)
        old_phase = str((session.get("status") or {}).get("phase") or Phase.PENDING)
        session = await self._write_status(session, st)
        if error_type:
            m.SESSION_ERRORS.labels(model.session_namespace(session), old_phase, error_type).inc()
        await self._cleanup(session)

    async def _force_interactive(self, session: Obj) -> Obj:
        """Set ``spec.interactive=true`` when a run ends, as upstream does, so that a restart of a
        finished batch session continues as a chat (spec §2.11).

        Written before the terminal status, so that status can carry the new generation as its
        ``observedGeneration``. Sessions that are already interactive cost no write. An invalid
        spec is left as its author wrote it.
        """
        if (session.get("spec") or {}).get("interactive", True) is True:
            return session
        meta = session["metadata"]
        updated = await self.client.patch(
            AGENTIC_SESSIONS, meta["name"], {"spec": {"interactive": True}}, meta["namespace"]
        )
        self.caches.sessions.replace_if(updated, meta.get("resourceVersion"))
        return updated

    async def _fail_pending_timeout(self, session: Obj) -> None:
        msg = (
            f"runner did not start within {self.cfg.pending_timeout}s "
            "(see the SecretsReady and JobCreated conditions)"
        )
        job = await self._current_job(session)
        if job is not None and model.is_owned_by(job, session):
            await self._delete_job(session, job, propagation="Background")
        await self._finish(session, Phase.FAILED, model.REASON_PENDING_TIMEOUT, msg, "timeout")

    async def _cleanup(self, session: Obj) -> None:
        """Delete the run's Job and the AG-UI Service. Cache reads only when both are gone."""
        job = self.caches.jobs.get(_key(session, model.job_name(model.session_name(session))))
        if (
            job is not None
            and model.is_owned_by(job, session)
            and not (job.get("metadata") or {}).get("deletionTimestamp")
        ):
            await self._delete_job(session, job, propagation="Background")
        svc_key = _key(session, model.service_name(model.session_name(session)))
        svc = self.caches.services.get(svc_key)
        if svc is not None and model.is_owned_by(svc, session):
            try:
                await self.client.delete(
                    SERVICES,
                    svc["metadata"]["name"],
                    model.session_namespace(session),
                    preconditions={"uid": svc["metadata"]["uid"]},
                )
            except (NotFound, Conflict):
                pass
            self.caches.services.remove(svc_key)

    # ------------------------------------------------------------------ children
    async def _current_job(self, session: Obj) -> Obj | None:
        """The session's Job from the cache; a cache miss is confirmed with a live GET."""
        ns, name = model.session_namespace(session), model.job_name(model.session_name(session))
        job = self.caches.jobs.get(f"{ns}/{name}")
        if job is not None:
            return job
        try:
            job = await self.client.get(JOBS, name, ns)
        except NotFound:
            return None
        self.caches.jobs.replace_if(job, None)
        return job

    async def _delete_job(
        self, session: Obj, job: Obj, *, propagation: Literal["Foreground", "Background"]
    ) -> None:
        meta = job["metadata"]
        try:
            await self.client.delete(
                JOBS,
                meta["name"],
                meta["namespace"],
                propagation_policy=propagation,
                preconditions={"uid": meta["uid"]},
            )
        except (NotFound, Conflict):
            pass  # already gone (or replaced: the next reconcile looks again)
        if propagation == "Background":
            self.caches.jobs.remove(object_key(job))

    async def _remove_stale_job(self, session: Obj, job: Obj) -> Result:
        """A Job of an earlier run (or not ours) holds the name: remove ours, wait for it to go."""
        if not model.is_owned_by(job, session):
            msg = (
                f"Job {job['metadata']['name']} exists and is not owned by this session; "
                "delete it or rename the session"
            )
            self.events.warning(session, model.REASON_JOB_CREATION_FAILED, msg)
            st = _Status(session, self.clock.wall())
            st.condition(
                model.COND_JOB_CREATED, model.COND_FALSE, model.REASON_JOB_CREATION_FAILED, msg
            )
            if st.changed:
                await self._write_status(session, st)
            return Result(requeue_after=SECRET_RETRY)
        if not (job.get("metadata") or {}).get("deletionTimestamp"):
            await self._delete_job(session, job, propagation="Background")
        return Result(requeue_after=STALE_JOB_RETRY)

    async def _runner_secret_present(self, session: Obj) -> bool:
        ns = model.session_namespace(session)
        try:
            await self.client.get(SECRETS, model.RUNNER_SECRETS, ns)
            return True
        except NotFound:
            pass
        msg = f"Secret {model.RUNNER_SECRETS} not found in namespace {ns}"
        st = _Status(session, self.clock.wall())
        st.condition(
            model.COND_SECRETS_READY, model.COND_FALSE, model.REASON_RUNNER_SECRET_MISSING, msg
        )
        if st.changed:
            await self._write_status(session, st)
            m.SESSION_ERRORS.labels(ns, Phase.PENDING, "secret_missing").inc()
            self.events.warning(session, model.REASON_RUNNER_SECRET_MISSING, msg)
        return False

    async def _copy_shared_secret(self, session: Obj, name: str, *, required: bool) -> bool:
        """Copy ``name`` from the backend namespace (see :mod:`.secrets`); False if it failed.

        A missing required secret (Vertex) ends the run: Failed ``VertexSecretMissing``, as
        upstream. A missing optional one (Langfuse) only leaves the runner without it.
        """
        ns, src_ns = model.session_namespace(session), self.cfg.backend_namespace
        try:
            source = await self.client.get(SECRETS, name, src_ns)
        except NotFound:
            if not required:
                log.info("optional secret %s/%s not found", src_ns, name)
                return True
            msg = f"Secret {name} not found in namespace {src_ns}"
            await self._finish(
                session,
                Phase.FAILED,
                model.REASON_VERTEX_SECRET_MISSING,
                msg,
                "secret_missing",
                secrets_reason=model.REASON_VERTEX_SECRET_MISSING,
            )
            return False
        if src_ns == ns:
            return True
        try:
            target: Obj | None = await self.client.get(SECRETS, name, ns)
        except NotFound:
            target = None
        body = copy_plan(source, target, session)
        if body is None:
            return True
        if target is None:
            await self.client.create(SECRETS, body, ns)
        else:
            await self.client.replace(SECRETS, name, body, ns)
        return True

    async def _ensure_identity(self, session: Obj) -> None:
        """ServiceAccount, Role, RoleBinding and a token Secret that outlives the run.

        The runner reads ``BOT_TOKEN`` from its environment once, so refreshing the Secret during a
        run cannot reach it. Instead the token is minted to outlive the run (its deadline plus the
        pending timeout) and re-minted at the start of a run when it would not.
        """
        ns = model.session_namespace(session)
        secret_name = model.token_secret_name(session)
        lifetime = self._token_lifetime(session)
        secret: Obj | None = None
        # A first run that never got as far as its Job (no SecretsReady condition yet) has no
        # identity: skip the GET that would only answer 404. Should one exist after all (the
        # operator died mid-way), the create below reports AlreadyExists and it is replaced.
        first_attempt = (model.session_run(session) or 1) == 1 and not any(
            c.get("type") == model.COND_SECRETS_READY
            for c in (session.get("status") or {}).get("conditions") or ()
        )
        if not first_attempt:
            try:
                secret = await self.client.get(SECRETS, secret_name, ns)
            except NotFound:
                secret = None
        now = self.clock.wall()
        if (
            secret is not None
            and model.is_owned_by(secret, session)
            and _secret_value(secret, model.OAUTH_CLIENT_SECRET_KEY)
            == self.cfg.google_oauth_client_secret
        ):
            expires = _parse_time(_ann(secret).get("ambient-code.io/token-expires-at"))
            if expires is not None and (expires - now).total_seconds() > lifetime - 60:
                return  # identity provisioned, the token outlives this run, the value is current
        started = time.perf_counter()
        try:
            # The ServiceAccount, Role and RoleBinding come with the first token; a later re-mint
            # (a restart whose run would outlive the token) only recreates them if they are gone.
            if secret is None:
                await self._create_identity(session)
            try:
                review = await self._request_token(session, lifetime)
            except NotFound:
                await self._create_identity(session)
                review = await self._request_token(session, lifetime)
            token = str((review.get("status") or {}).get("token") or "")
            expires_at = str((review.get("status") or {}).get("expirationTimestamp") or "")
            body = builders.build_token_secret(
                session,
                token,
                now,
                google_oauth_client_secret=self.cfg.google_oauth_client_secret,
            )
            body["metadata"].setdefault("annotations", {})["ambient-code.io/token-expires-at"] = (
                expires_at
            )
            if secret is None:
                try:
                    await self.client.create(SECRETS, body, ns)
                except AlreadyExists:
                    secret = await self.client.get(SECRETS, secret_name, ns)
            if secret is not None:
                body["metadata"]["resourceVersion"] = secret["metadata"]["resourceVersion"]
                await self.client.replace(SECRETS, secret_name, body, ns)
        except ApiError as exc:
            m.SESSION_ERRORS.labels(ns, Phase.PENDING, "token_provision").inc()
            self.events.warning(
                session, model.REASON_TOKEN_PROVISION_FAILED, f"runner token: {exc.message}"
            )
            raise
        m.TOKEN_PROVISION.labels(ns).observe(time.perf_counter() - started)

    async def _create_identity(self, session: Obj) -> None:
        for res, body in (
            (SERVICE_ACCOUNTS, builders.build_runner_service_account(session)),
            (ROLES, builders.build_runner_role(session)),
            (ROLE_BINDINGS, builders.build_runner_role_binding(session)),
        ):
            await self._create_if_absent(res, body)

    async def _request_token(self, session: Obj, lifetime: int) -> Obj:
        ns, name = model.session_namespace(session), model.session_name(session)
        return await self.client.request(
            "POST",
            SERVICE_ACCOUNTS.path(ns, model.runner_sa_name(name), "token"),
            body={
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"expirationSeconds": lifetime},
            },
        )

    def _token_lifetime(self, session: Obj) -> int:
        timeout = (session.get("spec") or {}).get("timeout")
        deadline = timeout if isinstance(timeout, int) and timeout > 0 else self.cfg.default_timeout
        return max(self.cfg.token_lifetime, deadline + self.cfg.pending_timeout + 600)

    async def _ensure_service(self, session: Obj) -> None:
        ns, name = model.session_namespace(session), model.session_name(session)
        key = f"{ns}/{model.service_name(name)}"
        if self.caches.services.get(key) is not None:
            return
        svc = await self._create_if_absent(SERVICES, builders.build_service(session))
        if svc is not None:
            self.caches.services.replace_if(svc, None)

    async def _create_if_absent(self, res: Resource, body: Obj) -> Obj | None:
        """Create ``body``; an existing object of that name is left as it is (it may have been
        filled in by the backend, like the OAuth placeholder). Returns the created object."""
        try:
            return await self.client.create(res, body, body["metadata"]["namespace"])
        except AlreadyExists:
            return None

    async def _note_job_creation_failure(self, session: Obj, exc: ApiError) -> None:
        ns = model.session_namespace(session)
        m.SESSION_ERRORS.labels(ns, Phase.PENDING, "create_failed").inc()
        self.events.warning(session, model.REASON_JOB_CREATION_FAILED, exc.message)
        st = _Status(session, self.clock.wall())
        st.condition(
            model.COND_JOB_CREATED, model.COND_FALSE, model.REASON_CREATE_FAILED, exc.message
        )
        st.condition(
            model.COND_READY, model.COND_FALSE, model.REASON_JOB_CREATION_FAILED, exc.message
        )
        if st.changed:
            try:
                await self._write_status(session, st)
            except ApiError:
                pass  # the original error is what gets retried

    # ------------------------------------------------------------------ writes
    async def _write_status(self, session: Obj, st: _Status) -> Obj:
        """PUT /status carrying the resourceVersion the change was computed from."""
        if not st.changed:
            return session
        body = dict(session)
        body["status"] = st.new
        meta = session["metadata"]
        updated = await self.client.replace(
            AGENTIC_SESSIONS, meta["name"], body, meta["namespace"], subresource="status"
        )
        self.caches.sessions.replace_if(updated, meta.get("resourceVersion"))
        old_phase = str(st.old.get("phase") or "")
        new_phase = str(st.new.get("phase") or "")
        if old_phase != new_phase:
            self._record_transition(updated, old_phase, new_phase, st.new)
        return updated

    def _record_transition(self, session: Obj, old: str, new: str, status: Obj) -> None:
        ns = model.session_namespace(session)
        m.PHASE_TRANSITIONS.labels(ns, old or "None", new).inc()
        if new in model.TERMINAL_PHASES:
            m.SESSIONS_COMPLETED.labels(ns, new).inc()
        ready: Obj = next(
            (c for c in status.get("conditions") or () if c.get("type") == model.COND_READY), {}
        )
        reason = str(ready.get("reason") or new)
        message = str(ready.get("message") or "")
        text = f"Phase {old or 'None'} -> {new}" + (f": {message}" if message else "")
        if new == Phase.FAILED:
            self.events.warning(session, reason, text)
        else:
            self.events.normal(session, new, text)
        log.info(
            "phase %s -> %s",
            old or "None",
            new,
            extra={"session": object_key(session), "reason": reason, "run": status.get("run")},
        )

    async def _clear_annotations(self, session: Obj, *keys: str) -> Obj:
        """Remove annotations with a merge patch guarded by resourceVersion.

        The guard matters: clearing ``desired-phase=Stopped`` must not erase a restart request
        written in the meantime.
        """
        present = [k for k in keys if k in _ann(session)]
        if not present:
            return session
        meta = session["metadata"]
        patch = {
            "metadata": {
                "resourceVersion": meta.get("resourceVersion"),
                "annotations": dict.fromkeys(present),
            }
        }
        updated = await self.client.patch(AGENTIC_SESSIONS, meta["name"], patch, meta["namespace"])
        self.caches.sessions.replace_if(updated, meta.get("resourceVersion"))
        return updated

    def _pending_remaining(self, session: Obj) -> float:
        """Seconds left before a run that has not started fails with PendingTimeout."""
        start = _parse_time((session.get("status") or {}).get("startTime"))
        if start is None:
            return float(self.cfg.pending_timeout)
        elapsed = (self.clock.wall() - start).total_seconds()
        return self.cfg.pending_timeout - elapsed


def _ann(obj: Obj) -> dict[str, str]:
    ann = (obj.get("metadata") or {}).get("annotations")
    return ann if isinstance(ann, dict) else {}


def _key(session: Obj, name: str) -> str:
    return f"{model.session_namespace(session)}/{name}"


def _job_run(obj: Obj) -> int:
    raw = _ann(obj).get(model.ANN_RUN)
    try:
        return int(raw) if raw is not None else 1
    except ValueError:
        return 0


def _secret_value(secret: Obj, key: str) -> str:
    """A Secret's ``data`` value as text ("" when absent or not base64)."""
    raw = (secret.get("data") or {}).get(key)
    if not isinstance(raw, str):
        return ""
    try:
        return base64.b64decode(raw, validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return ""


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return parse_rfc3339(value)
    except ValueError:
        return None
