"""Composition: settings -> API clients, manager, the session and project controllers. Run it.

Each controller registers its own informers, watches and reconciler with the manager
(``sessions.setup``, ``projects.setup``); this module only decides what goes together: the
managed-namespace and ProjectSettings informers both share, one Event recorder on a client of its
own, leader election when asked for, and the legacy driver instead of the session controller
with ``--legacy-watch``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid

from agentic_operator.clock import RealClock
from agentic_operator.kube.client import ApiClient, connect, from_config
from agentic_operator.kube.config import ConfigError
from agentic_operator.kube.resources import NAMESPACES, PROJECT_SETTINGS
from agentic_operator.legacy.watch import LegacyWatchLoop
from agentic_operator.projects import setup as projects
from agentic_operator.projects.setup import MANAGED_SELECTOR
from agentic_operator.runtime.events import EventRecorder
from agentic_operator.runtime.informer import Informer
from agentic_operator.runtime.leaderelection import LeaderElector
from agentic_operator.runtime.manager import EXIT_FAILURE, Manager
from agentic_operator.sessions import setup as sessions
from agentic_operator.settings import Settings

log = logging.getLogger("agentic_operator")


def _identity() -> str:
    return f"{os.environ.get('HOSTNAME') or socket.gethostname()}_{uuid.uuid4().hex[:8]}"


class Operator:
    """All parts of one operator process, assembled on a manager but not started."""

    def __init__(
        self, client: ApiClient, settings: Settings, *, events_client: ApiClient | None = None
    ) -> None:
        s = self.settings = settings
        clock = RealClock()
        elector = None
        if s.leader_elect:
            elector = LeaderElector(
                client,
                name=s.leader_election_id,
                namespace=s.leader_election_namespace,
                identity=_identity(),
            )
        self.manager = Manager(
            probe_address=s.health_probe_bind_address,
            metrics_address=s.metrics_bind_address,
            cache_sync_timeout=s.cache_sync_timeout,
            graceful_shutdown_timeout=s.graceful_shutdown_timeout,
            elector=elector,
        )
        # Events go through a client of their own (its own token bucket, like client-go's event
        # broadcaster), so a burst of Events never delays the reconciles' requests.
        self.recorder = EventRecorder(events_client or client, clock=clock)
        namespaces = Informer(
            client, NAMESPACES, label_selector=MANAGED_SELECTOR, name="namespaces"
        )
        project_settings = Informer(client, PROJECT_SETTINGS, name="projectsettings")
        self.manager.add_informer(namespaces)
        self.manager.add_informer(project_settings)
        self.sessions = sessions.setup_with_manager(
            self.manager,
            client,
            s.sessions,
            self.recorder,
            namespaces,
            project_settings,
            clock=clock,
            max_concurrent_reconciles=s.max_concurrent_reconciles,
            controller=not s.legacy_watch,
        )
        if s.legacy_watch:
            self.manager.add_runnable(
                LegacyWatchLoop(
                    client,
                    self.sessions.reconciler.reconcile,
                    self.sessions.informer.store,
                    clock=clock,
                )
            )
        projects.setup_with_manager(
            self.manager,
            client,
            self.recorder,
            namespaces,
            project_settings,
            clock=clock,
            network_policies=self.sessions.network_policies,
            runner_policy=self.sessions.reconciler.runner_network_policy,
        )


async def run(settings: Settings) -> int:
    """Connect, assemble, run until signalled. Returns the process exit code."""
    try:
        client = await connect(settings.kubeconfig, qps=settings.qps, burst=settings.burst)
    except ConfigError as exc:
        log.error("cannot load Kubernetes configuration: %s", exc)
        return EXIT_FAILURE
    events_client = await from_config(client.config, qps=settings.qps, burst=settings.burst)
    async with client, events_client:
        op = Operator(client, settings, events_client=events_client)
        op.manager.install_signal_handlers()
        log.info(
            "starting agentic-operator",
            extra={
                "mode": "legacy-watch" if settings.legacy_watch else "controller",
                "max_concurrent_reconciles": settings.max_concurrent_reconciles,
                "leader_elect": settings.leader_elect,
                "namespace": settings.sessions.operator_namespace,
                "event_loop": type(asyncio.get_running_loop()).__module__.split(".")[0],
            },
        )
        try:
            code = await op.manager.run()
        finally:
            await op.sessions.runner.close()
        await op.recorder.flush()
        log.info("stopped", extra={"exit_code": code})
        return code
