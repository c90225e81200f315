"""Small helpers for end-to-end tests: make sessions, read them, wait for conditions."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from typing import Any, TypeVar

from testenv.controlplane import Cluster

T = TypeVar("T")
Obj = dict[str, Any]


def wait_for(
    what: str, fn: Callable[[], T | None], timeout: float = 30.0, interval: float = 0.2
) -> T:
    """Poll ``fn`` until it returns something truthy; fail naming ``what`` and the last value."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while True:
        last = fn()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
        time.sleep(interval)


def get_json(cluster: Cluster, *args: str) -> Obj | None:
    r = cluster.kubectl("get", *args, "-o", "json", check=False)
    if r.returncode != 0:
        return None
    out: Obj = json.loads(r.stdout)
    return out


def apply(cluster: Cluster, obj: Obj) -> None:
    cluster.kubectl("apply", "-f", "-", input=json.dumps(obj))


def create(cluster: Cluster, obj: Obj) -> None:
    cluster.kubectl("create", "-f", "-", input=json.dumps(obj))


def secret(cluster: Cluster, namespace: str, name: str, **string_data: str) -> None:
    """Create an Opaque Secret from plain strings."""
    create(
        cluster,
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": namespace},
            "stringData": string_data,
        },
    )


def runner_secret(cluster: Cluster, namespace: str) -> None:
    """The Secret a session needs before its Job is created (holds the model API key)."""
    secret(cluster, namespace, "ambient-runner-secrets", ANTHROPIC_API_KEY="test-key")


def session(
    name: str,
    namespace: str,
    *,
    outcome: str | None = None,
    duration: str | None = None,
    timeout: int | None = None,
    env: dict[str, str] | None = None,
    **spec: Any,
) -> Obj:
    environment = dict(env or {})
    if outcome:
        environment["TESTENV_RUNNER_OUTCOME"] = outcome
    if duration:
        environment["TESTENV_RUNNER_DURATION"] = duration
    body: Obj = {"initialPrompt": "say hello", "interactive": False, **spec}
    if environment:
        body["environmentVariables"] = environment
    if timeout is not None:
        body["timeout"] = timeout
    return {
        "apiVersion": "vteam.ambient-code/v1alpha1",
        "kind": "AgenticSession",
        "metadata": {"name": name, "namespace": namespace},
        "spec": body,
    }


def get_session(cluster: Cluster, namespace: str, name: str) -> Obj | None:
    return get_json(cluster, "agenticsession", name, "-n", namespace)


def phase_of(cluster: Cluster, namespace: str, name: str) -> str | None:
    s = get_session(cluster, namespace, name)
    return ((s or {}).get("status") or {}).get("phase")


def wait_phase(
    cluster: Cluster, namespace: str, name: str, *phases: str, timeout: float = 30.0
) -> Obj:
    def check() -> Obj | None:
        s = get_session(cluster, namespace, name)
        if s and (s.get("status") or {}).get("phase") in phases:
            return s
        return None

    return wait_for(f"session {namespace}/{name} in {phases}", check, timeout)


def wait_run(
    cluster: Cluster, namespace: str, name: str, run: int, phase: str, timeout: float = 60.0
) -> Obj:
    """Wait until the session's run number ``run`` is in ``phase``."""

    def check() -> Obj | None:
        s = get_session(cluster, namespace, name)
        st = (s or {}).get("status") or {}
        return s if st.get("run") == run and st.get("phase") == phase else None

    return wait_for(f"session {namespace}/{name} run {run} {phase}", check, timeout)


def condition(obj: Obj, type_: str) -> Obj:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == type_:
            return dict(c)
    raise AssertionError(f"no {type_} condition in {obj.get('status')}")


def annotate(cluster: Cluster, namespace: str, name: str, *pairs: str) -> None:
    cluster.kubectl("annotate", "--overwrite", "agenticsession", name, "-n", namespace, *pairs)


def exists(cluster: Cluster, kind: str, name: str, namespace: str) -> bool:
    r = cluster.kubectl("get", kind, name, "-n", namespace, "--ignore-not-found", "-o", "name")
    return bool(r.stdout.strip())


def events_for(cluster: Cluster, namespace: str, name: str) -> list[Obj]:
    out = get_json(
        cluster,
        "events",
        "-n",
        namespace,
        "--field-selector",
        f"involvedObject.name={name},involvedObject.kind=AgenticSession",
    )
    return list((out or {}).get("items") or [])


def scrape(url: str) -> dict[str, float]:
    """Prometheus text -> {'name{labels}': value} (labels as exposed)."""
    with urllib.request.urlopen(url, timeout=5) as r:  # noqa: S310 - loopback test URL
        text = r.read().decode()
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        try:
            samples[key] = float(value)
        except ValueError:
            continue
    return samples


def metric(samples: dict[str, float], name: str, /, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    total = 0.0
    for key, value in samples.items():
        base, _, rest = key.partition("{")
        if base != name:
            continue
        if all(f'{k}="{v}"' in rest for k, v in labels.items()):
            total += value
    return total


def wait_condition(
    cluster: Cluster, namespace: str, name: str, type_: str, status: str, timeout: float = 30.0
) -> Obj:
    """Wait until the session has condition ``type_`` with ``status``; returns the session."""

    def check() -> Obj | None:
        s = get_session(cluster, namespace, name)
        for c in ((s or {}).get("status") or {}).get("conditions") or []:
            if c.get("type") == type_ and c.get("status") == status:
                return s
        return None

    return wait_for(f"{type_}={status} on {namespace}/{name}", check, timeout)
