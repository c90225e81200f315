"""The objects ProjectSettings give a namespace (trigger RBAC, LimitRange) and the reconcile."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from typing import Any

import pytest

from agentic_operator.clock import FakeClock
from agentic_operator.kube.errors import AlreadyExists, ApiError, Forbidden, NotFound
from agentic_operator.kube.resources import (
    PROJECT_SETTINGS,
    ROLE_BINDINGS,
    ROLES,
    SERVICE_ACCOUNTS,
    Obj,
    Resource,
)
from agentic_operator.projects import objects
from agentic_operator.projects.objects import (
    LIMIT_RANGE_NAME,
    LIMIT_RANGES,
    TRIGGER_NAME,
    default_limit_range,
    grants_trigger,
    plan_object,
    trigger_role,
    trigger_role_binding,
    trigger_service_account,
)
from agentic_operator.projects.ownership import Origin
from agentic_operator.projects.reconciler import ProjectReconciler
from agentic_operator.sessions.model import LABEL_MANAGED, LABEL_MANAGED_BY, MANAGED_BY

UID = "ps-uid"
NS = "proj"
MARKED = {LABEL_MANAGED: "true", LABEL_MANAGED_BY: MANAGED_BY}
PS: Obj = {
    "apiVersion": "vteam.ambient-code/v1alpha1",
    "kind": "ProjectSettings",
    "metadata": {"name": "projectsettings", "namespace": NS, "uid": UID, "resourceVersion": "1"},
    "spec": {"groupAccess": []},
}
OWNER = {
    "apiVersion": "vteam.ambient-code/v1alpha1",
    "kind": "ProjectSettings",
    "name": "projectsettings",
    "uid": UID,
    "controller": True,
}


def test_shapes() -> None:
    for build in (trigger_service_account, trigger_role, trigger_role_binding):
        meta = build(PS)["metadata"]
        assert meta == {
            "name": TRIGGER_NAME,
            "namespace": NS,
            "labels": MARKED,
            "ownerReferences": [OWNER],
        }
    assert trigger_role(PS)["rules"] == [
        {
            "apiGroups": ["vteam.ambient-code"],
            "resources": ["agenticsessions"],
            "verbs": ["create", "get", "list", "update"],
        }
    ]
    rb = trigger_role_binding(PS)
    assert rb["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": TRIGGER_NAME,
    }
    assert rb["subjects"] == [{"kind": "ServiceAccount", "name": TRIGGER_NAME, "namespace": NS}]
    lr = default_limit_range(PS)
    assert (lr["kind"], lr["metadata"]["name"]) == ("LimitRange", LIMIT_RANGE_NAME)
    assert lr["spec"] == {
        "limits": [
            {
                "type": "Container",
                "defaultRequest": {"cpu": "250m", "memory": "256Mi"},
                "default": {"cpu": "2", "memory": "4Gi"},
            }
        ]
    }


def stored(obj: Obj, **meta: Any) -> Obj:
    out = copy.deepcopy(obj)
    out["metadata"].update(resourceVersion="5", **meta)
    return out


def platform_made(obj: Obj) -> Obj:
    """As the platform's operator leaves it: managed=true and owned by the settings, no marker."""
    return stored(obj, labels={LABEL_MANAGED: "true"})


def someone_elses(obj: Obj) -> Obj:
    return stored(obj, labels={"team": "x"}, ownerReferences=[])


def drifted_role() -> Obj:
    role = stored(trigger_role(PS))
    role["rules"][0]["verbs"] = ["get"]
    return role


def rebound(rb: Obj) -> Obj:
    rb["roleRef"] = {**rb["roleRef"], "name": "other"}
    return rb


def resubjected(rb: Obj) -> Obj:
    rb["subjects"] = [{"kind": "User", "name": "mallory"}]
    return rb


@pytest.mark.parametrize(
    ("want", "have", "action", "origin"),
    [
        pytest.param(trigger_role(PS), None, "create", None, id="missing"),
        pytest.param(trigger_role(PS), stored(trigger_role(PS)), "none", Origin.OURS, id="in-sync"),
        pytest.param(trigger_role(PS), drifted_role(), "update", Origin.OURS, id="ours-drifted"),
        pytest.param(
            trigger_role(PS),
            stored(trigger_role(PS), ownerReferences=[]),
            "update",
            Origin.OURS,
            id="ours-owner-lost",
        ),
        pytest.param(
            trigger_role_binding(PS),
            rebound(stored(trigger_role_binding(PS))),
            "recreate",
            Origin.OURS,
            id="ours-roleref-changed",
        ),
        pytest.param(
            trigger_role_binding(PS),
            platform_made(trigger_role_binding(PS)),
            "update",
            Origin.LEGACY,
            id="platform-made-same-adopted",
        ),
        pytest.param(
            trigger_service_account(PS),
            platform_made(trigger_service_account(PS)),
            "update",
            Origin.LEGACY,
            id="platform-made-sa-adopted",
        ),
        pytest.param(
            trigger_role_binding(PS),
            resubjected(platform_made(trigger_role_binding(PS))),
            "conflict",
            Origin.LEGACY,
            id="platform-made-different",
        ),
        pytest.param(
            trigger_role_binding(PS),
            someone_elses(trigger_role_binding(PS)),
            "conflict",
            Origin.FOREIGN,
            id="someone-elses-same",
        ),
        pytest.param(
            trigger_role_binding(PS),
            stored(
                trigger_role_binding(PS),
                labels={LABEL_MANAGED: "true", "app": "ambient-permission"},
            ),
            "conflict",
            Origin.BACKEND,
            id="backend",
        ),
        pytest.param(
            default_limit_range(PS),
            someone_elses(default_limit_range(PS)),
            "none",
            Origin.FOREIGN,
            id="limits-exist",
        ),
    ],
)
def test_plan_object(want: Obj, have: Obj | None, action: str, origin: Origin | None) -> None:
    before = copy.deepcopy(have)
    create_only = want["kind"] == "LimitRange"
    write = plan_object(want, have, UID, create_only=create_only)
    assert (write.action, write.origin) == (action, origin)
    assert have == before
    if action == "update":
        assert write.body is not None
        meta = write.body["metadata"]
        assert meta["labels"].items() >= MARKED.items()
        assert meta["resourceVersion"] == "5"
        assert [r["uid"] for r in meta["ownerReferences"] if r.get("controller")] == [UID]
        for key in objects.CONTENT[want["kind"]]:
            assert write.body[key] == want[key]


def test_an_edited_limit_range_of_ours_stands() -> None:
    edited = stored(default_limit_range(PS))
    edited["spec"]["limits"][0]["default"] = {"cpu": "8", "memory": "16Gi"}
    assert plan_object(default_limit_range(PS), edited, UID, create_only=True).action == "none"


def _sa_subject(**extra: str) -> dict[str, str]:
    return {"kind": "ServiceAccount", "name": TRIGGER_NAME, **extra}


@pytest.mark.parametrize(
    ("obj", "works"),
    [
        ({"kind": "ServiceAccount"}, True),
        (trigger_role(PS), True),
        (drifted_role(), False),
        (
            {
                **trigger_role(PS),
                "rules": [{**trigger_role(PS)["rules"][0], "resourceNames": ["x"]}],
            },
            False,
        ),
        (
            {
                "kind": "Role",
                "rules": [
                    {
                        "apiGroups": ["vteam.ambient-code"],
                        "resources": ["agenticsessions"],
                        "verbs": ["create", "get"],
                    },
                    {
                        "apiGroups": ["vteam.ambient-code"],
                        "resources": ["agenticsessions", "x"],
                        "verbs": ["list", "update", "patch"],
                    },
                ],
            },
            True,
        ),
        (trigger_role_binding(PS), True),
        ({**trigger_role_binding(PS), "subjects": [_sa_subject()]}, True),
        ({**trigger_role_binding(PS), "subjects": [_sa_subject(namespace="other")]}, False),
        (resubjected(trigger_role_binding(PS)), False),
        (rebound(trigger_role_binding(PS)), False),
        ({"kind": "ConfigMap"}, False),
    ],
)
def test_grants_trigger(obj: Obj, works: bool) -> None:
    assert grants_trigger(obj, NS) is works


# --- the reconcile against a fake API ----------------------------------------------------------


class FakeApi:
    """Objects by (plural, namespace, name); records every write; ``fail`` makes a call raise."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], Obj] = {}
        self.calls: list[tuple[str, str, str]] = []
        self.fail: dict[tuple[str, str], ApiError] = {}
        self._rv = 100

    def put(self, res: Resource, obj: Obj) -> Obj:
        self._rv += 1
        stored_obj = copy.deepcopy(obj)
        stored_obj["metadata"]["resourceVersion"] = str(self._rv)
        self.objects[(res.plural, NS, obj["metadata"]["name"])] = stored_obj
        return stored_obj

    def _check(self, verb: str, res: Resource, name: str) -> None:
        self.calls.append((verb, res.plural, name))
        if (verb, res.plural) in self.fail:
            raise self.fail[(verb, res.plural)]

    async def create(self, res: Resource, body: Obj, namespace: str | None = None, **_: Any) -> Obj:
        name = body["metadata"]["name"]
        self._check("create", res, name)
        if (res.plural, NS, name) in self.objects:
            raise AlreadyExists(409, "AlreadyExists", f"{res.plural} {name} exists")
        return self.put(res, body)

    async def get(self, res: Resource, name: str, namespace: str | None = None, **_: Any) -> Obj:
        self._check("get", res, name)
        try:
            return copy.deepcopy(self.objects[(res.plural, NS, name)])
        except KeyError:
            raise NotFound(404, "NotFound", name) from None

    async def replace(
        self, res: Resource, name: str, body: Obj, namespace: str | None = None, **kw: Any
    ) -> Obj:
        verb = "replace-status" if kw.get("subresource") == "status" else "replace"
        self._check(verb, res, name)
        return self.put(res, body)

    async def delete(
        self, res: Resource, name: str, namespace: str | None = None, **_: Any
    ) -> None:
        self._check("delete", res, name)
        self.objects.pop((res.plural, NS, name), None)

    def cached(self, res: Resource, namespace: str) -> Obj | None:
        name = LIMIT_RANGE_NAME if res is LIMIT_RANGES else TRIGGER_NAME
        found = self.objects.get((res.plural, namespace, name))
        return copy.deepcopy(found) if found is not None else None


class Recorder:
    def __init__(self) -> None:
        self.warnings: list[tuple[str, str]] = []

    def warning(self, obj: Obj, reason: str, message: str) -> None:
        self.warnings.append((reason, message))


class Store:
    def __init__(self, objs: dict[str, Obj]) -> None:
        self.objs = objs

    def get(self, key: str) -> Obj | None:
        return self.objs.get(key)


def reconciler(
    api: FakeApi,
    ps: Obj | None = None,
    runner_policy: Callable[[str], Obj] | None = None,
    namespace: Obj | None = None,
) -> ProjectReconciler:
    settings = ps or api.objects.get((PROJECT_SETTINGS.plural, NS, "projectsettings")) or PS
    return ProjectReconciler(
        api,  # type: ignore[arg-type]
        namespaces=Store({NS: namespace or {"metadata": {"name": NS}}}),
        settings=Store({f"{NS}/projectsettings": settings}),
        bindings_in=lambda ns: [],
        cached=api.cached,
        recorder=Recorder(),  # type: ignore[arg-type]
        clock=FakeClock(),
        runner_policy=runner_policy,
    )


def run(
    api: FakeApi, ps: Obj | None = None, runner_policy: Callable[[str], Obj] | None = None
) -> Obj:
    """One reconcile; the status it wrote (or the settings' own if none was written)."""
    asyncio.run(reconciler(api, ps, runner_policy).reconcile(NS))
    written = api.objects.get((PROJECT_SETTINGS.plural, NS, "projectsettings"))
    return dict((written or ps or PS).get("status") or {})


def conditions(status: Obj) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c.get("reason")) for c in status.get("conditions") or []}


WRITES = {"create", "replace", "delete"}


def test_a_fresh_namespace_gets_everything_and_a_second_reconcile_writes_nothing() -> None:
    api = FakeApi()
    status = run(api)
    assert [(v, p) for v, p, _ in api.calls if v in WRITES] == [
        ("create", "serviceaccounts"),
        ("create", "roles"),
        ("create", "rolebindings"),
        ("create", "limitranges"),
    ]
    assert (status["groupBindingsCreated"], status["scheduledSessionRBACReady"]) == (0, True)
    assert status["limitRangeReady"] is True
    assert conditions(status) == {
        "Ready": ("True", "BindingsReconciled"),
        "ScheduledSessionRBACReady": ("True", "Reconciled"),
        "LimitRangeReady": ("True", "Created"),
    }
    api.calls.clear()
    ps = api.objects[(PROJECT_SETTINGS.plural, NS, "projectsettings")]
    run(api, ps)
    assert [c for c in api.calls if c[0] != "replace-status"] == []


@pytest.mark.parametrize(
    "namespace",
    [
        {"metadata": {"name": NS, "deletionTimestamp": "2026-12-03T11:51:45Z"}},
        {"metadata": {"name": NS}, "status": {"phase": "Terminating"}},
    ],
    ids=["deletion-timestamp", "phase-terminating"],
)
def test_a_namespace_being_deleted_gets_nothing(namespace: Obj) -> None:
    # Its own cleanup deletes the LimitRange and the trigger RBAC; recreating them is refused.
    api = FakeApi()
    assert asyncio.run(reconciler(api, namespace=namespace).reconcile(NS)) is None
    assert api.calls == []


def test_status_keeps_fields_others_own() -> None:
    ps = copy.deepcopy(PS)
    ps["status"] = {"somethingElse": "kept", "conditions": [{"type": "Other", "status": "True"}]}
    status = run(FakeApi(), ps)
    assert status["somethingElse"] == "kept"
    assert status["conditions"][0] == {"type": "Other", "status": "True"}


def test_someone_elses_trigger_binding_survives_and_is_reported() -> None:
    api = FakeApi()
    theirs = resubjected(someone_elses(trigger_role_binding(PS)))
    api.put(ROLE_BINDINGS, theirs)
    before = copy.deepcopy(api.objects[(ROLE_BINDINGS.plural, NS, TRIGGER_NAME)])
    status = run(api)
    assert api.objects[(ROLE_BINDINGS.plural, NS, TRIGGER_NAME)] == before
    assert ("replace", "rolebindings", TRIGGER_NAME) not in api.calls
    assert ("delete", "rolebindings", TRIGGER_NAME) not in api.calls
    assert status["scheduledSessionRBACReady"] is False
    assert conditions(status)["ScheduledSessionRBACReady"] == ("False", "Conflict")
    assert conditions(status)["Ready"] == ("False", "ScheduledSessionRBACNotReady")


def test_someone_elses_binding_that_does_the_job_is_left_and_counts() -> None:
    api = FakeApi()
    api.put(ROLE_BINDINGS, someone_elses(trigger_role_binding(PS)))
    status = run(api)
    assert ("replace", "rolebindings", TRIGGER_NAME) not in api.calls
    assert status["scheduledSessionRBACReady"] is True
    [cond] = [c for c in status["conditions"] if c["type"] == "ScheduledSessionRBACReady"]
    assert "RoleBinding not managed by the operator" in cond["message"]


def test_the_platform_operators_objects_are_adopted() -> None:
    api = FakeApi()
    for res, build in ((SERVICE_ACCOUNTS, trigger_service_account), (ROLES, trigger_role)):
        api.put(res, platform_made(build(PS)))
    api.put(ROLE_BINDINGS, platform_made(trigger_role_binding(PS)))
    run(api)
    for plural in ("serviceaccounts", "roles", "rolebindings"):
        labels = api.objects[(plural, NS, TRIGGER_NAME)]["metadata"]["labels"]
        assert labels == MARKED, plural
    assert [c for c in api.calls if c[0] in ("create", "delete") and c[1] != "limitranges"] == []


def test_an_object_missing_from_the_cache_is_read_once_and_planned() -> None:
    api = FakeApi()
    api.put(SERVICE_ACCOUNTS, platform_made(trigger_service_account(PS)))
    r = reconciler(api)
    r.cached = lambda res, ns: None  # a cache that has not seen it yet
    asyncio.run(r.reconcile(NS))
    assert ("get", "serviceaccounts", TRIGGER_NAME) in api.calls
    sa = api.objects[("serviceaccounts", NS, TRIGGER_NAME)]
    assert sa["metadata"]["labels"] == MARKED


def test_a_limit_range_failure_is_reported_then_retried() -> None:
    api = FakeApi()
    api.fail[("create", "limitranges")] = Forbidden(403, "Forbidden", "limitranges is forbidden")
    with pytest.raises(Forbidden):
        asyncio.run(reconciler(api).reconcile(NS))
    status = api.objects[(PROJECT_SETTINGS.plural, NS, "projectsettings")]["status"]
    assert (status["limitRangeReady"], status["scheduledSessionRBACReady"]) == (False, True)
    assert conditions(status)["LimitRangeReady"] == ("False", "ApiError")
    assert conditions(status)["Ready"] == ("True", "BindingsReconciled")


def test_a_trigger_rbac_failure_is_reported_then_retried() -> None:
    api = FakeApi()
    api.fail[("create", "roles")] = Forbidden(403, "Forbidden", "attempting to grant RBAC")
    with pytest.raises(Forbidden):
        asyncio.run(reconciler(api).reconcile(NS))
    status = api.objects[(PROJECT_SETTINGS.plural, NS, "projectsettings")]["status"]
    assert status["scheduledSessionRBACReady"] is False
    assert conditions(status)["ScheduledSessionRBACReady"] == ("False", "ApiError")
    assert ("create", "rolebindings", TRIGGER_NAME) not in api.calls
