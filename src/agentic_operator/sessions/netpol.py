"""The namespace's runner NetworkPolicy ``runner-allow-backend-only``: pure, like :mod:`.decide`.

Two controllers make it. The project controller creates it when a namespace becomes managed
(:func:`namespace_policy`, with the port of every agent type the registry names), so it is in
place before the namespace's first runner and no session pays for it; the session controller
makes it true again when a run's Job is created (phase-table row P9, :func:`ensure`): created if
it went, its spec restored if it drifted, the run's port added if the registry gained one.

The policy lets only the backend's namespace (and the operator's, when it is another one) reach
runner pods, on the runner's port. It is one object per namespace, shared by all its sessions:

* absent (from the informer cache, which holds only objects of that name): created;
* carrying this operator's marker (``app.kubernetes.io/managed-by=agentic-operator``) or the
  platform's operator's (``ambient-code.io/managed-by=operator``, the same object made by
  upstream: adopted, our marker is added): its spec is restored when it drifted;
* anything else of that name (an administrator's own policy) is left alone.

Ports only grow: a namespace may run runners of different agent types on different ports, and the
policy must not close one while opening another; every port admits the same peers only.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from agentic_operator.kube.resources import NETWORK_POLICIES, Obj
from agentic_operator.sessions import agents, model, objects
from agentic_operator.sessions import metrics as m
from agentic_operator.sessions.config import SessionConfig
from agentic_operator.sessions.observe import Observation
from agentic_operator.sessions.plan import Count, Create, Event, Plan, Replace

REASON_NETWORK_POLICY_FAILED = "NetworkPolicyFailed"


def runner_port(job: Obj) -> int:
    """The runner container's ``agui`` port in a Job (8001 when it names none)."""
    pod = ((job.get("spec") or {}).get("template") or {}).get("spec") or {}
    for container in pod.get("containers") or ():
        if container.get("name") != model.RUNNER_CONTAINER:
            continue
        for port in container.get("ports") or ():
            if port.get("name") == model.AGUI_PORT_NAME and isinstance(
                port.get("containerPort"), int
            ):
                return int(port["containerPort"])
    return model.AGUI_PORT


def registry_ports(registry: Any) -> set[int]:
    """The runner port of every entry of the agent registry (the parsed file), and the default
    port (that of a runner type the registry does not name). An entry's port that is not a port
    number is the default as well, as it is for that entry's runner (:mod:`.agents`)."""
    ports = {agents.DEFAULT_PORT}
    for entry in registry if isinstance(registry, list) else ():
        container = entry.get("container") if isinstance(entry, dict) else None
        port = container.get("port") if isinstance(container, dict) else None
        if agents.is_port(port):
            ports.add(port)
    return ports


def namespace_policy(namespace: str, cfg: SessionConfig, registry: Any) -> Obj:
    """The policy a managed namespace gets before any of its sessions runs."""
    return objects.build_runner_network_policy(namespace, cfg, registry_ports(registry))


def is_ours(policy: Obj) -> bool:
    labels: dict[str, Any] = (policy.get("metadata") or {}).get("labels") or {}
    return (
        labels.get(model.LABEL_MANAGED_BY) == model.MANAGED_BY
        or labels.get(model.LABEL_UPSTREAM_MANAGED_BY) == model.UPSTREAM_MANAGED_BY
    )


def policy_ports(policy: Obj) -> set[int]:
    """The numeric TCP ports the policy admits today (kept, see the module docstring)."""
    out: set[int] = set()
    for rule in ((policy.get("spec") or {}).get("ingress")) or ():
        for port in (rule or {}).get("ports") or ():
            if (port.get("protocol") or "TCP") == "TCP" and isinstance(port.get("port"), int):
                out.add(int(port["port"]))
    return out


def ensure(obs: Observation, job: Obj) -> Create | Replace | None:
    """The action that makes the policy true for a run whose Job is ``job`` (None: it is)."""
    current = obs.network_policy
    port = runner_port(job)
    if current is None:
        body = objects.build_runner_network_policy(obs.namespace, obs.cfg, [port])
        return Create(NETWORK_POLICIES, body, cache="network_policies", on_error=_failed(obs))
    if not is_ours(current):
        return None
    want = objects.build_runner_network_policy(
        obs.namespace, obs.cfg, policy_ports(current) | {port}
    )
    labels = (current.get("metadata") or {}).get("labels") or {}
    merged = {**labels, **want["metadata"]["labels"]}
    if current.get("spec") == want["spec"] and merged == labels:
        return None
    body = copy.deepcopy(current)
    body["metadata"]["labels"] = merged
    body["spec"] = want["spec"]
    return Replace(NETWORK_POLICIES, body, cache="network_policies", on_error=_failed(obs))


def _failed(obs: Observation) -> Callable[[str], Plan]:
    def plan(message: str) -> Plan:
        text = f"NetworkPolicy {model.RUNNER_NETWORK_POLICY}: {message}"
        return Plan(
            "P9!",
            effects=(
                Count(m.SESSION_ERRORS, (obs.namespace, "Pending", "network_policy")),
                Event("Warning", REASON_NETWORK_POLICY_FAILED, text),
            ),
        )

    return plan
