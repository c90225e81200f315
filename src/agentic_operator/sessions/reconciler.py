"""The AgenticSession reconcile: observe -> decide -> apply.

Level-triggered: every reconcile looks at the whole current state (session, its Job, its runner
pods, its Service) and never depends on which event woke it. The three steps:

1. :class:`~.observe.Observer` reads the caches into one :class:`~.observe.Observation`;
2. :func:`~.decide.decide`, a pure function, turns it into a :class:`~.plan.Plan` (when it needs
   a live read first, it says so, the read is made and it decides again);
3. :class:`~.apply.Executor` carries the plan out and says when to look again.

Safe to run concurrently for different sessions, repeatedly for the same one, and across operator
restarts: child names are deterministic (a second create of the Job fails with AlreadyExists, and
the Job is adopted only when its controller owner is this session and its run annotation the
current run), status writes carry the resourceVersion they were computed from, and a reconcile that
finds nothing to do makes no API call.
"""

from __future__ import annotations

import logging
import time

from agentic_operator.clock import Clock, RealClock
from agentic_operator.kube.errors import AlreadyExists, ApiError, Conflict
from agentic_operator.kube.resources import Obj
from agentic_operator.runtime.controller import Result
from agentic_operator.sessions import metrics as m
from agentic_operator.sessions import netpol
from agentic_operator.sessions.agents import PodFiles
from agentic_operator.sessions.apply import Executor
from agentic_operator.sessions.config import SessionConfig
from agentic_operator.sessions.decide import decide
from agentic_operator.sessions.model import Phase
from agentic_operator.sessions.observe import Caches, Observer, PodCaches
from agentic_operator.sessions.plan import Plan
from agentic_operator.sessions.ports import Recorder, Runner, SessionApi

log = logging.getLogger("agentic_operator.sessions")

MAX_READS = 2
"""A decision asks for at most the Job and the start inputs; more rounds would be a bug."""


class SessionReconciler:
    """``reconcile(key)`` for the ``agenticsession-controller``."""

    def __init__(
        self,
        api: SessionApi,
        caches: Caches,
        config: SessionConfig,
        recorder: Recorder,
        runner: Runner,
        *,
        clock: Clock | None = None,
        pod_caches: PodCaches | None = None,
    ) -> None:
        clock = clock or RealClock()
        files = PodFiles.at(config.agent_registry_path, config.models_manifest_path, clock)
        self.observer = Observer(
            api, caches, config, clock.wall, files=files, pod_caches=pod_caches
        )
        self.executor = Executor(api, caches, config, recorder, runner, clock)
        self._config = config
        self._files = files

    def runner_network_policy(self, namespace: str) -> Obj:
        """The runner NetworkPolicy a managed namespace gets before its first session (the
        project controller makes it; see :mod:`.netpol`)."""
        return netpol.namespace_policy(namespace, self._config, self._files.registry.get())

    async def reconcile(self, key: str) -> Result | None:
        obs = self.observer.observe(key)
        if obs is None:
            return None
        phase_label = str(obs.status.get("phase") or Phase.PENDING)
        started = time.perf_counter()
        success = "false"
        try:
            plan = decide(obs)
            for _ in range(MAX_READS):
                if not plan.reads:
                    break
                obs = await self.observer.read(obs, plan.reads)
                plan = decide(obs)
            _log_plan(plan)
            result = await self.executor.apply(obs.session, plan)
            success = "true"
            return result
        except ApiError as exc:
            if not isinstance(exc, Conflict) or isinstance(exc, AlreadyExists):
                m.SESSION_ERRORS.labels(obs.namespace, phase_label, "api_error").inc()
            raise
        finally:
            m.RECONCILE_DURATION.labels(phase_label, success).observe(time.perf_counter() - started)


def _log_plan(plan: Plan) -> None:
    if plan.reads:
        raise RuntimeError(f"decision row {plan.row} still asks for reads {sorted(plan.reads)}")
    if plan.note:
        log.warning(plan.note, extra={"row": plan.row})
    elif plan.actions and log.isEnabledFor(logging.DEBUG):
        kinds = ", ".join(type(a).__name__ for a in plan.actions)
        log.debug("row %s: %s", plan.row, kinds, extra={"row": plan.row})
