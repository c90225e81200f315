"""The API client against the real local API server: CRUD, typed errors, apply, pagination, auth."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agentic_operator.kube import errors
from agentic_operator.kube.client import ApiClient, connect
from agentic_operator.kube.config import ConfigError
from agentic_operator.kube.resources import EVENTS, JOBS, SECRETS, Obj, Resource
from tests.conftest import Kubectl
from tests.integration.test_informer import compact_etcd

pytestmark = pytest.mark.cluster

CONFIGMAPS = Resource("", "v1", "configmaps", "ConfigMap")
SELF_SUBJECT_REVIEWS = "/apis/authentication.k8s.io/v1/selfsubjectreviews"


@pytest.fixture
async def client(control_plane: Any) -> AsyncIterator[ApiClient]:
    c = await connect(str(control_plane.kubeconfig))
    yield c
    await c.close()


def admin_kubeconfig(control_plane: Any) -> dict[str, Any]:
    """The test environment's admin kubeconfig (JSON) as a dict."""
    config: dict[str, Any] = json.loads(Path(control_plane.kubeconfig).read_text())
    return config


def configmap(name: str, **data: str) -> Obj:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


async def whoami(client: ApiClient) -> str:
    review = await client.request(
        "POST",
        SELF_SUBJECT_REVIEWS,
        body={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
    )
    return str(review["status"]["userInfo"]["username"])


async def test_crud_and_typed_errors(client: ApiClient, namespace: str) -> None:
    created = await client.create(CONFIGMAPS, configmap("one", a="1"), namespace)
    assert created["metadata"]["uid"]
    got = await client.get(CONFIGMAPS, "one", namespace)
    assert got["data"] == {"a": "1"}

    with pytest.raises(errors.NotFound):
        await client.get(CONFIGMAPS, "absent", namespace)
    with pytest.raises(errors.AlreadyExists):
        await client.create(CONFIGMAPS, configmap("one"), namespace)

    # Optimistic concurrency: the first replace wins, the stale one conflicts.
    fresh = dict(got, data={"a": "2"})
    replaced = await client.replace(CONFIGMAPS, "one", fresh, namespace)
    assert replaced["metadata"]["resourceVersion"] != got["metadata"]["resourceVersion"]
    stale = dict(got, data={"a": "3"})
    with pytest.raises(errors.Conflict) as conflict:
        await client.replace(CONFIGMAPS, "one", stale, namespace)
    assert not isinstance(conflict.value, errors.AlreadyExists)

    with pytest.raises(errors.Invalid) as invalid:
        await client.create(CONFIGMAPS, configmap("Bad_Name"), namespace)
    assert "metadata.name" in invalid.value.fields
    assert "metadata.name" in str(invalid.value)

    patched = await client.patch(CONFIGMAPS, "one", {"data": {"b": "x"}}, namespace)
    assert patched["data"] == {"a": "2", "b": "x"}
    patched = await client.patch(
        CONFIGMAPS, "one", [{"op": "remove", "path": "/data/a"}], namespace, patch_type="json"
    )
    assert patched["data"] == {"b": "x"}
    patched = await client.patch(
        CONFIGMAPS, "one", {"metadata": {"labels": {"l": "v"}}}, namespace, patch_type="strategic"
    )
    assert patched["metadata"]["labels"] == {"l": "v"}

    with pytest.raises(errors.Conflict):
        await client.delete(CONFIGMAPS, "one", namespace, preconditions={"uid": "not-the-uid"})
    await client.delete(
        CONFIGMAPS, "one", namespace, preconditions={"uid": created["metadata"]["uid"]}
    )
    with pytest.raises(errors.NotFound):
        await client.get(CONFIGMAPS, "one", namespace)
    with pytest.raises(errors.NotFound):
        await client.delete(CONFIGMAPS, "one", namespace)


async def test_server_side_apply(client: ApiClient, namespace: str) -> None:
    applied = await client.patch(
        CONFIGMAPS,
        "ssa",
        configmap("ssa", owned="mine"),
        namespace,
        patch_type="apply",
        field_manager="agentic-operator",
    )
    assert applied["data"] == {"owned": "mine"}
    managers = {m["manager"] for m in applied["metadata"]["managedFields"]}
    assert "agentic-operator" in managers

    # Another manager changing the same field conflicts unless it forces.
    with pytest.raises(errors.Conflict):
        await client.patch(
            CONFIGMAPS,
            "ssa",
            configmap("ssa", owned="theirs"),
            namespace,
            patch_type="apply",
            field_manager="someone-else",
        )
    forced = await client.patch(
        CONFIGMAPS,
        "ssa",
        configmap("ssa", owned="theirs"),
        namespace,
        patch_type="apply",
        field_manager="someone-else",
        force=True,
    )
    assert forced["data"] == {"owned": "theirs"}


def suspended_job(name: str) -> Obj:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "suspend": True,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "c", "image": "busybox", "command": ["true"]}],
                }
            },
        },
    }


async def test_status_subresource_on_a_job(client: ApiClient, namespace: str) -> None:
    await client.create(JOBS, suspended_job("sub"), namespace)
    via_status = await client.get(JOBS, "sub", namespace, subresource="status")
    assert via_status["metadata"]["name"] == "sub"

    # A write through /status changes status only: the spec in the same patch is ignored.
    patch = {"spec": {"parallelism": 5}, "status": {"conditions": [_condition("Ready")]}}
    await client.patch(JOBS, "sub", patch, namespace, subresource="status")
    job = await client.get(JOBS, "sub", namespace)
    assert job["spec"]["parallelism"] == 1
    assert any(c["type"] == "Ready" for c in job["status"]["conditions"])

    # And a write to the main resource does not touch status.
    await client.patch(JOBS, "sub", {"status": {"conditions": []}}, namespace)
    job = await client.get(JOBS, "sub", namespace)
    assert any(c["type"] == "Ready" for c in job["status"]["conditions"])

    deleted = await client.delete(JOBS, "sub", namespace, propagation_policy="Foreground")
    assert deleted is None or deleted["metadata"]["name"] == "sub"


def _condition(kind: str) -> Obj:
    return {
        "type": kind,
        "status": "True",
        "reason": "Testing",
        "message": "set by a test",
        "lastProbeTime": "2026-01-01T00:00:00Z",
        "lastTransitionTime": "2026-01-01T00:00:00Z",
    }


async def test_list_pagination(client: ApiClient, namespace: str) -> None:
    for i in range(5):
        body = configmap(f"page-{i}")
        body["metadata"]["labels"] = {"set": "pages"}
        await client.create(CONFIGMAPS, body, namespace)
    first = await client.list(CONFIGMAPS, namespace, label_selector="set=pages", limit=2)
    assert len(first["items"]) == 2
    assert first["metadata"].get("continue")

    before = client.request_counts[("list", "configmaps")]
    items, rv = await client.list_all(
        CONFIGMAPS, namespace, label_selector="set=pages", page_size=2
    )
    assert sorted(i["metadata"]["name"] for i in items) == [f"page-{i}" for i in range(5)]
    assert {i["kind"] for i in items} == {"ConfigMap"}
    assert int(rv) > 0
    assert client.request_counts[("list", "configmaps")] - before == 3


async def test_watch_from_compacted_version_is_gone(
    client: ApiClient, control_plane: Any, namespace: str
) -> None:
    # Core Events bypass the API server's watch cache, so etcd compaction decides (see
    # test_informer.py); other kinds answer old versions from the cache while it still holds them.
    _, current = await client.list_all(EVENTS, namespace)
    await compact_etcd(control_plane, current)
    with pytest.raises(errors.Gone, match="too old"):
        async for _ in client.watch(EVENTS, namespace, resource_version="1", timeout_seconds=5):
            pass


async def test_client_certificate_auth(client: ApiClient) -> None:
    assert await whoami(client) == "admin"
    version = await client.server_version()
    assert version["gitVersion"].startswith("v1.")


async def test_service_account_token_auth(
    control_plane: Any, kubectl: Kubectl, namespace: str, tmp_path: Path
) -> None:
    kubectl("create", "serviceaccount", "reader", "-n", namespace)
    kubectl(
        "create", "role", "cm-reader", "--verb=get,list", "--resource=configmaps", "-n", namespace
    )
    kubectl(
        "create",
        "rolebinding",
        "cm-reader",
        "--role=cm-reader",
        f"--serviceaccount={namespace}:reader",
        "-n",
        namespace,
    )
    token = kubectl("create", "token", "reader", "-n", namespace).stdout.strip()
    admin = admin_kubeconfig(control_plane)
    cluster = admin["clusters"][0]["cluster"]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": cluster}],
        "users": [{"name": "sa", "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "c", "user": "sa"}}],
        "current-context": "sa",
    }
    path = tmp_path / "sa-kubeconfig"
    path.write_text(json.dumps(config))

    async with await connect(str(path)) as sa:
        assert await whoami(sa) == f"system:serviceaccount:{namespace}:reader"
        listed = await sa.list(CONFIGMAPS, namespace)
        assert listed["kind"] == "ConfigMapList"
        with pytest.raises(errors.Forbidden):
            await sa.list(SECRETS, namespace)
        with pytest.raises(errors.Forbidden):
            await sa.list(CONFIGMAPS, "kube-system")

    config["users"] = [{"name": "sa", "user": {"token": "not-a-valid-token"}}]
    path.write_text(json.dumps(config))
    async with await connect(str(path)) as bad:
        with pytest.raises(errors.Unauthorized):
            await bad.server_version()


async def test_unreachable_server_and_bad_kubeconfig(control_plane: Any, tmp_path: Path) -> None:
    admin = admin_kubeconfig(control_plane)
    admin["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:1"
    path = tmp_path / "unreachable"
    path.write_text(json.dumps(admin))
    async with await connect(str(path), request_timeout=5, max_read_retries=0) as c:
        with pytest.raises(errors.TransportError):
            await c.server_version()
    path.write_text("{not: [valid")
    with pytest.raises(ConfigError, match="invalid YAML"):
        await connect(str(path))
