"""What a reconcile knows: one :class:`Observation` per reconcile, read before anything is decided.

Everything comes from the informer caches, except two things the decision asks for explicitly
(``Plan.reads``) because they cost a request:

* ``"job"``: a Job the cache does not have is confirmed with a live GET before the decision acts on
  its absence (starting a new run, or calling a stop done). The cache may lag our own writes.
* ``"start"``: what starting a run needs beyond the caches: whether ``ambient-runner-secrets``
  exists, the shared secrets to copy and the runner token Secret. Secrets are read live, when a
  run is about to create its Job, rather than cached: a Secret informer would need list/watch on
  every Secret of the cluster and hold them all in memory.

A reconcile that has nothing to do therefore reads the caches only and makes no request.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Protocol

from agentic_operator.kube.errors import NotFound
from agentic_operator.kube.resources import JOBS, SECRETS, Obj, Resource
from agentic_operator.sessions import model
from agentic_operator.sessions.agents import (
    DEFAULT_AGENT,
    AgentSpec,
    PodFiles,
    session_agent,
    vertex_model_id,
)
from agentic_operator.sessions.builders import session_model
from agentic_operator.sessions.config import SessionConfig


class Cache(Protocol):
    """The read side of an informer store."""

    def get(self, key: str) -> Obj | None: ...


class WritableCache(Cache, Protocol):
    """Stores the executor corrects after its own writes (see :mod:`.apply`)."""

    def replace_if(self, obj: Obj, expected_resource_version: str | None) -> bool: ...

    def store_result(self, obj: Obj) -> bool: ...

    def remove(self, key: str) -> None: ...


@dataclass
class Caches:
    sessions: WritableCache
    jobs: WritableCache
    services: WritableCache
    namespaces: Cache
    pods_by_session: Callable[[str, str], list[Obj]]
    """(namespace, session name) -> runner pods; an index over the runner-pod informer."""
    project_settings: Cache
    """The ``projectsettings`` singletons (idle limit of a project's sessions)."""
    network_policies: WritableCache
    """The ``runner-allow-backend-only`` NetworkPolicies (an informer limited to that name)."""


class _NoCache:
    def get(self, key: str) -> Obj | None:
        return None


@dataclass
class PodCaches:
    """Caches only the runner pod's shape depends on."""

    config_maps: Cache = field(default_factory=_NoCache)
    """The namespaces' ``trusted-ca-bundle`` ConfigMaps (an informer limited to that name)."""


class Reader(Protocol):
    """The one read the observer makes against the API server."""

    async def get(self, res: Resource, name: str, namespace: str | None = None) -> Obj: ...


@dataclass(frozen=True)
class StartInputs:
    """Secrets that starting a run depends on (``None``: absent, or not read because not needed)."""

    runner_secret: bool
    """``ambient-runner-secrets`` exists in the session's namespace (read unless Vertex is on)."""
    vertex_source: Obj | None = None
    vertex_target: Obj | None = None
    langfuse_source: Obj | None = None
    langfuse_target: Obj | None = None
    token_secret: Obj | None = None
    """The runner token Secret; not read on a first attempt, which cannot have one yet."""
    mlflow_source: Obj | None = None
    mlflow_target: Obj | None = None
    agent: AgentSpec = DEFAULT_AGENT
    """The session's agent registry entry (``RUNNER_TYPE``), fallbacks applied."""
    vertex_model_id: str = ""
    """The models manifest's Vertex name of the session's model ("" when unknown)."""
    trusted_ca_bundle: bool = False
    """The namespace has a ``trusted-ca-bundle`` ConfigMap with ``ca-bundle.crt``."""


@dataclass(frozen=True)
class Observation:
    """The session and everything of its that the decision looks at, at one instant."""

    session: Obj
    cfg: SessionConfig
    now: datetime
    job: Obj | None
    """``<s>-job`` from the cache (or, with ``job_confirmed``, from the API server)."""
    pods: tuple[Obj, ...] = ()
    """Runner pods of the session (the decision keeps those of ``job``)."""
    service: Obj | None = None
    project_settings: Obj | None = None
    """The namespace's ``projectsettings``, from the cache."""
    network_policy: Obj | None = None
    """The namespace's ``runner-allow-backend-only`` NetworkPolicy, from the cache."""
    job_confirmed: bool = False
    start: StartInputs | None = None

    @property
    def namespace(self) -> str:
        return model.session_namespace(self.session)

    @property
    def name(self) -> str:
        return model.session_name(self.session)

    @property
    def status(self) -> Obj:
        return self.session.get("status") or {}

    @property
    def annotations(self) -> dict[str, str]:
        return model.annotations(self.session)


def first_attempt(session: Obj) -> bool:
    """A first run that never got as far as its Job (no ``SecretsReady`` condition yet) has no
    runner identity, so reading its token Secret would only answer 404."""
    return (model.session_run(session) or 1) == 1 and not any(
        c.get("type") == model.COND_SECRETS_READY
        for c in (session.get("status") or {}).get("conditions") or ()
    )


class Observer:
    """Builds observations from the caches, and makes the reads a decision asks for."""

    def __init__(
        self,
        api: Reader,
        caches: Caches,
        cfg: SessionConfig,
        now: Callable[[], datetime],
        *,
        files: PodFiles | None = None,
        pod_caches: PodCaches | None = None,
    ) -> None:
        self.api = api
        self.caches = caches
        self.cfg = cfg
        self.now = now
        self.files = files
        self.pod_caches = pod_caches or PodCaches()

    def observe(self, key: str) -> Observation | None:
        """The cached state of session ``key``; None when there is nothing to reconcile: the
        session is gone (the garbage collector removes what it owned), it is being deleted, or its
        namespace is not managed (the namespace watch enqueues it once it is) or is being deleted
        (its cleanup removes the session and its children; a reconcile would only report, or try
        to recreate, what the cleanup takes away)."""
        session = self.caches.sessions.get(key)
        if session is None or model.being_deleted(session):
            return None
        ns, name = model.session_namespace(session), model.session_name(session)
        namespace = self.caches.namespaces.get(ns)
        if namespace is None or model.namespace_terminating(namespace):
            return None
        job = self.caches.jobs.get(f"{ns}/{model.job_name(name)}")
        return Observation(
            session=session,
            cfg=self.cfg,
            now=self.now(),
            job=job,
            pods=tuple(self.caches.pods_by_session(ns, name)) if job is not None else (),
            service=self.caches.services.get(f"{ns}/{model.service_name(name)}"),
            project_settings=self.caches.project_settings.get(
                f"{ns}/{model.PROJECT_SETTINGS_NAME}"
            ),
            network_policy=self.caches.network_policies.get(f"{ns}/{model.RUNNER_NETWORK_POLICY}"),
        )

    async def read(self, obs: Observation, reads: Collection[str]) -> Observation:
        """``obs`` with the reads of ``reads`` (``"job"``, ``"start"``) made."""
        if "job" in reads and not obs.job_confirmed:
            obs = await self._confirm_job(obs)
        if "start" in reads and obs.start is None:
            obs = replace(obs, start=await self._start_inputs(obs))
        return obs

    async def _confirm_job(self, obs: Observation) -> Observation:
        if obs.job is not None:
            return replace(obs, job_confirmed=True)
        job = await self._get(JOBS, model.job_name(obs.name), obs.namespace)
        if job is None:
            return replace(obs, job_confirmed=True)
        self.caches.jobs.store_result(job)
        pods = tuple(self.caches.pods_by_session(obs.namespace, obs.name))
        return replace(obs, job=job, pods=pods, job_confirmed=True)

    async def _start_inputs(self, obs: Observation) -> StartInputs:
        ns, cfg = obs.namespace, self.cfg
        runner_secret = True
        if not cfg.use_vertex:
            runner_secret = await self._get(SECRETS, model.RUNNER_SECRETS, ns) is not None
        vertex: tuple[Obj | None, Obj | None] = (None, None)
        langfuse = vertex
        if cfg.use_vertex:
            vertex = await self._shared(model.VERTEX_SECRET, ns)
        if cfg.langfuse_enabled:
            langfuse = await self._shared(model.LANGFUSE_SECRET, ns)
        mlflow: tuple[Obj | None, Obj | None] = (None, None)
        if cfg.mlflow_enabled:
            mlflow = await self._shared(model.MLFLOW_SECRET, ns)
        token = None
        if not first_attempt(obs.session):
            token = await self._get(SECRETS, model.token_secret_name(obs.session), ns)
        return replace(
            self._pod_inputs(obs),
            runner_secret=runner_secret,
            vertex_source=vertex[0],
            vertex_target=vertex[1],
            langfuse_source=langfuse[0],
            langfuse_target=langfuse[1],
            token_secret=token,
            mlflow_source=mlflow[0],
            mlflow_target=mlflow[1],
        )

    def _pod_inputs(self, obs: Observation) -> StartInputs:
        """What the pod's shape depends on, from the mounted files (agent registry, models
        manifest: re-read at most once a minute) and the ConfigMap cache; no request."""
        registry = self.files.registry.get() if self.files else None
        manifest = self.files.models.get() if self.files else None
        ca = self.pod_caches.config_maps.get(f"{obs.namespace}/{model.TRUSTED_CA_CONFIGMAP}")
        has_ca = ca is not None and any(
            model.TRUSTED_CA_KEY in (ca.get(part) or {}) for part in ("data", "binaryData")
        )
        return StartInputs(
            runner_secret=True,
            agent=session_agent(registry, obs.session),
            vertex_model_id=vertex_model_id(manifest, session_model(obs.session)),
            trusted_ca_bundle=has_ca,
        )

    async def _shared(self, name: str, ns: str) -> tuple[Obj | None, Obj | None]:
        """A shared secret in the backend namespace and its copy in ``ns`` (the copy is not read
        when the source is missing, or when the session lives in the backend namespace)."""
        source = await self._get(SECRETS, name, self.cfg.backend_namespace)
        if source is None or self.cfg.backend_namespace == ns:
            return source, None
        return source, await self._get(SECRETS, name, ns)

    async def _get(self, res: Resource, name: str, ns: str) -> Obj | None:
        try:
            return await self.api.get(res, name, ns)
        except NotFound:
            return None
