"""No ``spec.environmentVariables`` entry can make the runner pod one the API server refuses.

The API server rejects a container ``env`` entry that has both ``value`` and ``valueFrom`` (what
upstream produced when a user variable named a secret-backed one) and a name that is not a valid
variable name (validation.py refuses those first). So: a session that names every variable the
operator sets, in every container of the pod, under every configuration that adds variables,
still gets a pod whose every entry is either a plain value or a reference, named at most once per
container, and whose secret-backed entries still point at their Secrets.
"""

from __future__ import annotations

from typing import Any

import pytest

from agentic_operator.kube.resources import Obj
from agentic_operator.sessions.builders import build_job
from agentic_operator.sessions.config import SessionConfig
from agentic_operator.sessions.validation import validate_session

CONFIGS = [
    pytest.param(SessionConfig(), id="default"),
    pytest.param(
        SessionConfig(
            google_oauth_client_id="cid",
            google_oauth_client_secret="cs",
            backend_public_url="https://ui.example",
            mcp_config_file="/m.json",
            langfuse_enabled=True,
            mlflow_enabled=True,
            s3_access_key_id="AK",
            s3_secret_access_key="SK",
        ),
        id="integrations",
    ),
    pytest.param(
        SessionConfig(
            use_vertex=True,
            cloud_ml_region="r",
            vertex_project_id="p",
            google_application_credentials="/app/vertex/k.json",
        ),
        id="vertex",
    ),
]


def containers(job: Obj) -> list[Obj]:
    pod = job["spec"]["template"]["spec"]
    return [*(pod.get("initContainers") or ()), *pod["containers"]]


def session(env: dict[str, str]) -> Obj:
    return {
        "metadata": {"name": "s1", "namespace": "ns", "uid": "u1", "generation": 1},
        "spec": {"initialPrompt": "hi", "environmentVariables": env},
    }


@pytest.mark.parametrize("cfg", CONFIGS)
def test_user_variables_naming_every_operator_variable_keep_the_pod_valid(
    cfg: SessionConfig,
) -> None:
    plain, _ = build_job(session({}), cfg, run=1)
    names = {e["name"] for c in containers(plain) for e in c.get("env") or ()}
    refs = {
        (c["name"], e["name"]): e["valueFrom"]
        for c in containers(plain)
        for e in c.get("env") or ()
        if "valueFrom" in e
    }
    assert refs, "the pod has secret-backed variables to collide with"
    hostile = session(dict.fromkeys(sorted(names), "user-value"))
    assert validate_session(hostile) == [], "valid names: only the collisions are at stake"

    job, skipped = build_job(hostile, cfg, run=1)
    for container in containers(job):
        env: list[dict[str, Any]] = container.get("env") or []
        seen = [e["name"] for e in env]
        assert len(seen) == len(set(seen)), f"{container['name']}: a name twice"
        for entry in env:
            assert ("value" in entry) != ("valueFrom" in entry), (container["name"], entry)
            key = (container["name"], entry["name"])
            if key in refs:
                assert entry.get("valueFrom") == refs[key], f"{key} must still be the Secret's"
    runner_refs = {name for container, name in refs if container == "ambient-code-runner"}
    assert runner_refs <= set(skipped), "every refused override of the runner's is reported"
